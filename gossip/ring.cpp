#include "gossip/ring.hpp"

#include "tiers/hash.hpp"
#include "tiers/slot.hpp"

#include <algorithm>
#include <cstddef>
#include <iterator>
#include <numeric>
#include <tuple>

namespace kura::gossip {

uint64_t ring::hash_position(std::string_view key, uint64_t seed) {
  return slot_base(key_slot(key)) | (hash64(key, seed) >> (64 - slot_shift));
}

std::vector<bool> ring::shared_slots(node_id a, node_id b) const {
  std::vector<bool> out(slot_count, false);
  if (tokens_.empty())
    return out;
  // Token i ends the arc of slots (slot of token i-1, slot of token i]; the
  // first token's arc wraps around from the last token's slot.
  auto both = [&](size_t i) {
    const node_id* reps = token_replicas(i);
    return std::find(reps, reps + width_, a) != reps + width_ &&
           std::find(reps, reps + width_, b) != reps + width_;
  };
  uint32_t from = static_cast<uint32_t>(slot_of(tokens_.back())) + 1; // wrapping arc
  if (both(0)) {
    for (uint32_t s = from; s < slot_count; ++s)
      out[s] = true;
    for (uint32_t s = 0; s <= slot_of(tokens_[0]); ++s)
      out[s] = true;
  }
  for (size_t i = 1; i < tokens_.size(); ++i)
    if (both(i))
      for (uint32_t s = slot_of(tokens_[i - 1]) + 1u; s <= slot_of(tokens_[i]); ++s)
        out[s] = true;
  return out;
}

std::vector<uint32_t> ring::owned_slots() const {
  std::vector<uint32_t> out(members_.size(), 0);
  if (tokens_.empty())
    return out;
  for (uint32_t s = 0; s < slot_count; ++s) {
    node_id o = token_node_[token_index(slot_base(s))];
    auto it = std::lower_bound(members_.begin(), members_.end(), o);
    ++out[static_cast<size_t>(it - members_.begin())];
  }
  return out;
}

uint32_t ring::tokens_of(node_id n) const {
  auto it = std::lower_bound(members_.begin(), members_.end(), n);
  if (it == members_.end() || *it != n)
    return 0;
  return member_tokens_[static_cast<size_t>(it - members_.begin())];
}

ring::ring(std::vector<node_id> members, ring_config cfg,
           const std::map<node_id, uint32_t>& weights)
    : cfg_(cfg) {
  std::sort(members.begin(), members.end());
  members.erase(std::unique(members.begin(), members.end()), members.end());
  members.erase(std::remove(members.begin(), members.end(), no_node), members.end());
  members_ = std::move(members);
  if (cfg_.vnodes == 0)
    cfg_.vnodes = 1;
  if (cfg_.rf == 0)
    cfg_.rf = 1;
  // Tokens depend only on (seed, node id, vnode index), so a node's tokens do
  // not move when others join or leave: only the arcs next to its tokens change
  // hands, which is what keeps data movement proportional to 1/n per change.
  std::vector<std::pair<uint64_t, node_id>> toks;
  toks.reserve(members_.size() * cfg_.vnodes);
  // Each token is snapped to the last position of its slot, so that no token
  // cuts a slot in two.
  constexpr uint64_t in_slot = (uint64_t{1} << slot_shift) - 1;
  std::vector<std::tuple<uint64_t, uint64_t, node_id>> raw; // snapped, unsnapped, node
  raw.reserve(members_.size() * cfg_.vnodes);
  member_tokens_.reserve(members_.size());
  for (node_id n : members_) {
    auto w = weights.find(n);
    member_tokens_.push_back(w == weights.end() || w->second == 0 ? cfg_.vnodes : w->second);
  }
  for (size_t m = 0; m < members_.size(); ++m)
    for (uint32_t i = 0, n = members_[m]; i < member_tokens_[m]; ++i) {
      uint64_t t = mix64(cfg_.seed ^ mix64((uint64_t{n} << 32) | i));
      raw.emplace_back(t | in_slot, t, n);
    }
  // Tokens that land in the same slot: the one first clockwise (lowest
  // unsnapped position, then lowest node id) keeps the slot; the choice is
  // random per slot, so no node is favoured, and a function of the member set.
  std::sort(raw.begin(), raw.end());
  for (size_t i = 0; i < raw.size(); ++i)
    if (i == 0 || std::get<0>(raw[i]) != std::get<0>(raw[i - 1]))
      toks.emplace_back(std::get<0>(raw[i]), std::get<2>(raw[i]));
  tokens_.reserve(toks.size());
  token_node_.reserve(toks.size());
  for (auto& [t, n] : toks) {
    tokens_.push_back(t);
    token_node_.push_back(n);
  }
  width_ = static_cast<uint32_t>(std::min<size_t>(cfg_.rf, members_.size()));
  replicas_.assign(tokens_.size() * width_, no_node);
  for (size_t i = 0; i < tokens_.size(); ++i) {
    node_id* out = &replicas_[i * width_];
    uint32_t got = 0;
    for (size_t j = 0; j < tokens_.size() && got < width_; ++j) {
      node_id cand = token_node_[(i + j) % tokens_.size()];
      if (std::find(out, out + got, cand) == out + got)
        out[got++] = cand;
    }
  }
  uint64_t fp = mix64(cfg_.seed ^ (uint64_t{cfg_.vnodes} << 32) ^ cfg_.rf);
  for (size_t m = 0; m < members_.size(); ++m) {
    fp = mix64(fp ^ members_[m]);
    if (member_tokens_[m] != cfg_.vnodes) // unweighted rings keep their fingerprints
      fp = mix64(fp ^ (uint64_t{member_tokens_[m]} << 32));
  }
  fingerprint_ = fp;
}

size_t ring::token_index(uint64_t pos) const {
  auto it = std::lower_bound(tokens_.begin(), tokens_.end(), pos);
  return it == tokens_.end() ? 0 : static_cast<size_t>(it - tokens_.begin());
}

std::vector<node_id> ring::replicas_at(uint64_t pos) const {
  if (tokens_.empty())
    return {};
  size_t i = token_index(pos);
  return {replicas_.begin() + static_cast<std::ptrdiff_t>(i * width_),
          replicas_.begin() + static_cast<std::ptrdiff_t>((i + 1) * width_)};
}

node_id ring::owner(std::string_view key) const {
  if (tokens_.empty())
    return no_node;
  return token_node_[token_index(position(key))];
}

bool ring::is_replica_at(node_id n, uint64_t pos) const {
  if (tokens_.empty())
    return false;
  size_t i = token_index(pos);
  auto first = replicas_.begin() + static_cast<std::ptrdiff_t>(i * width_);
  return std::find(first, first + width_, n) != first + width_;
}

bool ring::contains(node_id n) const {
  return std::binary_search(members_.begin(), members_.end(), n);
}

std::vector<ring::arc> ring::arcs() const {
  std::vector<arc> out;
  out.reserve(tokens_.size());
  for (size_t i = 0; i < tokens_.size(); ++i) {
    uint64_t lo = tokens_[(i + tokens_.size() - 1) % tokens_.size()];
    out.push_back(arc{key_range{lo, tokens_[i]}, replicas_at(tokens_[i])});
  }
  return out;
}

std::vector<transfer> transfer_plan(const ring& before, const ring& after) {
  std::vector<transfer> out;
  if (after.empty())
    return out;
  // The union of both rings' tokens cuts the circle into arcs on which both
  // rings are constant; the arc ending at b has the replicas of position b.
  std::vector<uint64_t> bounds;
  bounds.reserve(before.tokens().size() + after.tokens().size());
  std::merge(before.tokens().begin(), before.tokens().end(), after.tokens().begin(),
             after.tokens().end(), std::back_inserter(bounds));
  bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
  const size_t ow = before.width(), nw = after.width();
  const auto& bt = before.tokens();
  const auto& at = after.tokens();
  size_t bi = 0, ai = 0; // first token >= the current bound, walked in step
  for (size_t i = 0; i < bounds.size(); ++i) {
    uint64_t hi = bounds[i];
    uint64_t lo = bounds[(i + bounds.size() - 1) % bounds.size()];
    while (bi < bt.size() && bt[bi] < hi)
      ++bi;
    while (ai < at.size() && at[ai] < hi)
      ++ai;
    const node_id* old_reps =
        bt.empty() ? nullptr : before.token_replicas(bi == bt.size() ? 0 : bi);
    const node_id* new_reps = after.token_replicas(ai == at.size() ? 0 : ai);
    const node_id* old_end = old_reps ? old_reps + ow : nullptr;
    node_id source = no_node;
    for (const node_id* o = old_reps; o != old_end; ++o)
      if (after.contains(*o)) {
        source = *o;
        break;
      }
    if (source == no_node && old_reps)
      source = old_reps[0];
    for (size_t j = 0; j < nw; ++j) {
      node_id t = new_reps[j];
      if (old_reps && std::find(old_reps, old_end, t) != old_end)
        continue;
      // Merge with the previous transfer when contiguous and same endpoints.
      bool merged = false;
      for (auto it = out.rbegin(); it != out.rend() && it->range.hi == lo; ++it)
        if (it->from == source && it->to == t) {
          it->range.hi = hi;
          merged = true;
          break;
        }
      if (!merged)
        out.push_back(transfer{key_range{lo, hi}, source, t});
    }
  }
  return out;
}

} // namespace kura::gossip
