#include "gossip/rebalance.hpp"

#include "tiers/slot.hpp"

#include <algorithm>

namespace kura::gossip {

namespace {

/// Calls f(first_slot, last_slot, replicas) for every arc of `r` (slots
/// inclusive; the first token's arc wraps past the last slot).
template <class F>
void for_each_slot_arc(const ring& r, F f) {
  const auto& t = r.tokens();
  if (t.empty())
    return;
  uint32_t last = ring::slot_of(t.back());
  // token 0's arc: (slot of the last token, slot_count) + [0, slot of token 0]
  if (last + 1 < slot_count)
    f(last + 1, slot_count - 1, r.token_replicas(0));
  f(0, ring::slot_of(t[0]), r.token_replicas(0));
  for (size_t i = 1; i < t.size(); ++i)
    f(static_cast<uint32_t>(ring::slot_of(t[i - 1])) + 1, ring::slot_of(t[i]), r.token_replicas(i));
}

std::map<node_id, uint32_t> full_tokens(const std::vector<node_id>& members,
                                        const std::map<node_id, uint32_t>& tokens,
                                        const ring_config& cfg) {
  std::map<node_id, uint32_t> out;
  for (node_id n : members) {
    auto it = tokens.find(n);
    out[n] = it == tokens.end() || it->second == 0 ? cfg.vnodes : it->second;
  }
  return out;
}

} // namespace

std::vector<double> held_load(const ring& r, const std::vector<uint64_t>& slot_load) {
  const auto& m = r.members();
  std::vector<double> out(m.size(), 0.0);
  // prefix sums make every arc O(1)
  std::vector<double> pre(slot_count + 1, 0.0);
  for (uint32_t s = 0; s < slot_count; ++s)
    pre[s + 1] = pre[s] + (s < slot_load.size() ? static_cast<double>(slot_load[s]) : 0.0);
  for_each_slot_arc(r, [&](uint32_t a, uint32_t b, const node_id* reps) {
    if (b < a)
      return;
    double sum = pre[b + 1] - pre[a];
    for (size_t j = 0; j < r.width(); ++j) {
      auto it = std::lower_bound(m.begin(), m.end(), reps[j]);
      out[static_cast<size_t>(it - m.begin())] += sum;
    }
  });
  return out;
}

double max_over_mean(const std::vector<double>& load) {
  if (load.empty())
    return 0;
  double sum = 0, mx = 0;
  for (double x : load) {
    sum += x;
    mx = std::max(mx, x);
  }
  return sum > 0 ? mx / (sum / static_cast<double>(load.size())) : 0.0;
}

rebalance_plan plan_rebalance(const std::vector<node_id>& members,
                              const std::map<node_id, uint32_t>& tokens, const ring_config& cfg,
                              const std::vector<uint64_t>& slot_load, const rebalance_limits& lim) {
  rebalance_plan p;
  auto cur = full_tokens(members, tokens, cfg);
  ring start(members, cfg, cur);
  auto load = held_load(start, slot_load);
  p.before = p.after = max_over_mean(load);
  p.tokens = cur;
  if (start.members().size() < 2 || p.before == 0)
    return p;
  static constexpr int steps[] = {1, 2, 4, 8, 16, 32, 64, 128};
  for (; p.rounds < lim.max_rounds;) {
    const auto& ms = start.members();
    double best = p.after;
    std::map<node_id, uint32_t> best_tokens;
    std::vector<double> best_load;
    // Try moving a few tokens from or to every member; keep the best move.
    for (node_id n : ms)
      for (int step : steps)
        for (int sign : {-1, 1}) {
          int64_t next = static_cast<int64_t>(cur[n]) + sign * step;
          if (next < lim.min_tokens || next > lim.max_tokens)
            continue;
          auto cand = cur;
          cand[n] = static_cast<uint32_t>(next);
          auto l = held_load(ring(members, cfg, cand), slot_load);
          double score = max_over_mean(l);
          if (score < best - 1e-12) {
            best = score;
            best_tokens = std::move(cand);
            best_load = std::move(l);
          }
        }
    if (best_tokens.empty() || p.after - best < lim.min_gain)
      break;
    cur = std::move(best_tokens);
    p.after = best;
    ++p.rounds;
  }
  p.tokens = cur;
  ring end(members, cfg, cur);
  for (uint32_t s = 0; s < slot_count; ++s) {
    auto a = start.replicas_of_slot(s), b = end.replicas_of_slot(s);
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    p.slots_moved += a != b;
  }
  return p;
}

} // namespace kura::gossip
