// kura-bench-predictor: what the prewarm predictor buys, measured against the
// same cache without it, in one run.
//
//   kura-bench-predictor --trace FILE [--memory 0.05] [--csv] [--restart-at F]
//   kura-bench-predictor --generate [--seed N] [--weeks W] [--memory ...] [--csv]
//                        [--restart-at F] [--write-trace FILE]
//   kura-bench-predictor --anomaly [--seed N] [--memory 0.5]
//   --write-only N (with --generate): N new `log:N:event` keys per hour, written, never read
//   --tier-choice: a third row per share, `predictor+tier`: the predictor with
//                  new writes placed by predictor::choose_tier (L3 only for a
//                  pattern written and never read)
//   feature switches for experiments: --coaccess --min-confidence X
//                                     --horizon-min M --min-history-h H --imminent-min M
//                                     --lift-evidence N
//                                     --no-shadow-below-bar --no-reload
//
// A trace (the CSV `timestamp_ms,key,size` of shared/traces/timestamped, zstd
// or plain) is replayed in simulated time (a fake clock set to each request's
// timestamp) through the tier chain (tiers/tier_chain.hpp): memory (L1+L2)
// sized at `--memory` times the trace's distinct keys (objects counted, as
// the hit-ratio benchmarks do), and a real L3 (LMDB, in a temporary
// directory) that holds every key ever written; each key's first request is a
// write. It runs twice: `none` (no predictor) and `predictor` (a plan every
// simulated minute, loaded through the chain's normal promotion L3 -> memory).
// `--memory` takes a comma list. `--restart-at F` restarts the "process" at
// fraction F of the trace's time span: memory starts empty, L3 is reopened,
// and with the predictor the model is saved to a file and loaded again, and
// the first prewarm runs at once.
//
// Output (CSV with --csv, a table otherwise):
//   trace,memory_share,mode,requests,memory_hits,memory_hit_ratio,prewarmed,prewarm_used,precision
// precision = prewarm_used / prewarmed; a prewarmed key counts as used if it
// is read while still in memory.
//
// --generate: a seeded workload with known weekly structure (weekday-morning
// key set, daily evening set, weekend set, Zipf background); its parameters
// are printed on stderr. --anomaly: replays it for three weeks with faults
// injected in the third and reports when each alert was raised, and the
// alerts per hour of a fault-free week.
#include "predictor/predictor.hpp"
#include "tiers/clock.hpp"
#include "tiers/l3_lmdb.hpp"
#include "tiers/random.hpp"
#include "tiers/tier_chain.hpp"

#include <zstd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <unistd.h>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace pred = kura::predictor;

namespace {

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "kura-bench-predictor: %s\n", msg.c_str());
  std::exit(2);
}

struct request {
  uint64_t t;
  uint32_t key; // index into trace::names
  uint32_t size;
};

struct trace {
  std::string name;
  std::vector<std::string> names;
  std::vector<request> reqs;
};

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    die("cannot open " + path);
  std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (raw.size() < 4 || std::memcmp(raw.data(), "\x28\xb5\x2f\xfd", 4) != 0)
    return raw;
  std::string out;
  ZSTD_DStream* ds = ZSTD_createDStream();
  ZSTD_initDStream(ds);
  std::vector<char> buf(ZSTD_DStreamOutSize());
  ZSTD_inBuffer inb{raw.data(), raw.size(), 0};
  while (inb.pos < inb.size) {
    ZSTD_outBuffer outb{buf.data(), buf.size(), 0};
    size_t r = ZSTD_decompressStream(ds, &outb, &inb);
    if (ZSTD_isError(r)) {
      ZSTD_freeDStream(ds);
      die(path + ": zstd: " + ZSTD_getErrorName(r));
    }
    out.append(buf.data(), outb.pos);
  }
  ZSTD_freeDStream(ds);
  return out;
}

trace load(const std::string& path) {
  trace t;
  std::string base = path.substr(path.find_last_of('/') + 1);
  t.name = base.substr(0, base.find(".csv"));
  std::string data = read_all(path);
  std::unordered_map<std::string, uint32_t> ids;
  size_t pos = 0, line_no = 0;
  uint64_t last_t = 0;
  while (pos < data.size()) {
    size_t end = data.find('\n', pos);
    if (end == std::string::npos)
      end = data.size();
    std::string_view line(data.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r')
      line.remove_suffix(1);
    if (line.empty() || line.compare(0, 12, "timestamp_ms") == 0)
      continue;
    const size_t c1 = line.find(','), c2 = line.rfind(',');
    if (c1 == std::string_view::npos || c2 == c1)
      die(path + ":" + std::to_string(line_no) + ": expected timestamp_ms,key,size");
    char* e = nullptr;
    std::string ts(line.substr(0, c1)), sz(line.substr(c2 + 1));
    const uint64_t when = std::strtoull(ts.c_str(), &e, 10);
    if (e == ts.c_str())
      die(path + ":" + std::to_string(line_no) + ": bad timestamp");
    const uint32_t size = static_cast<uint32_t>(std::strtoul(sz.c_str(), nullptr, 10));
    std::string key(line.substr(c1 + 1, c2 - c1 - 1));
    auto [it, fresh] = ids.emplace(key, static_cast<uint32_t>(t.names.size()));
    if (fresh)
      t.names.push_back(std::move(key));
    t.reqs.push_back(request{std::max(when, last_t), it->second, size});
    last_t = std::max(when, last_t);
  }
  if (t.reqs.empty())
    die(path + ": no requests");
  return t;
}

// -- the generated weekly workload -------------------------------------------------

struct gen_params {
  uint64_t seed = 1;
  int weeks = 4;
  int morning_keys = 2000;     ///< read on weekdays 07:00-09:00
  int evening_keys = 2000;     ///< read every day 18:00-22:00
  int weekend_keys = 1000;     ///< read Saturday and Sunday 10:00-14:00
  double reads_per_period = 6; ///< mean reads of an active key in its period
  double active_share = 0.95;  ///< share of a set active on a given day
  int background_keys = 50'000;
  double background_zipf = 0.9;
  int background_per_hour = 500;
  /// `log:N:event` keys written (each once, a new key) and never read, per
  /// hour (--write-only N; 0: none): a write-only pattern for the tier choice.
  int write_only_per_hour = 0;
};

trace generate(const gen_params& g) {
  trace t;
  t.name = "generated-weekly-seed" + std::to_string(g.seed);
  kura::rng r(g.seed);
  const uint64_t start = 1'699'833'600'000ull; // Monday 2023-11-13 00:00 UTC
  auto add_set = [&](const char* prefix, const char* suffix, int n) {
    const uint32_t first = static_cast<uint32_t>(t.names.size());
    for (int i = 0; i < n; ++i)
      t.names.push_back(std::string(prefix) + std::to_string(100000 + i * 7) + suffix);
    return first;
  };
  const uint32_t morning = add_set("report:", ":daily", g.morning_keys);
  const uint32_t evening = add_set("feed:", ":home", g.evening_keys);
  const uint32_t weekend = add_set("recipe:", ":full", g.weekend_keys);
  const uint32_t bg = add_set("item:", "", g.background_keys);
  const uint32_t logs = static_cast<uint32_t>(t.names.size()); // written once each, never read
  if (g.write_only_per_hour > 0)
    add_set("log:", ":event", g.write_only_per_hour * 24 * 7 * g.weeks);
  // Zipf sampler over the background keys (inverse CDF table).
  std::vector<double> cdf(g.background_keys);
  double sum = 0;
  for (int i = 0; i < g.background_keys; ++i)
    cdf[i] = sum += 1.0 / std::pow(i + 1.0, g.background_zipf);
  for (auto& c : cdf)
    c /= sum;
  auto sizes = [&](uint32_t k) { return 200 + static_cast<uint32_t>(kura::mix64(k) % 1800); };
  auto period = [&](uint32_t first, int n, uint64_t from, uint64_t len) {
    for (int i = 0; i < n; ++i) {
      if (!r.chance(g.active_share))
        continue;
      // 1 + geometric reads, mean reads_per_period.
      int reads = 1;
      while (r.chance(1 - 1 / g.reads_per_period))
        ++reads;
      for (int j = 0; j < reads; ++j)
        t.reqs.push_back(request{from + r.below(len), first + i, sizes(first + i)});
    }
  };
  for (int d = 0; d < 7 * g.weeks; ++d) {
    const uint64_t day = start + d * pred::day_ms;
    const int wd = d % 7;
    if (wd < 5)
      period(morning, g.morning_keys, day + 7 * pred::hour_ms, 2 * pred::hour_ms);
    period(evening, g.evening_keys, day + 18 * pred::hour_ms, 4 * pred::hour_ms);
    if (wd >= 5)
      period(weekend, g.weekend_keys, day + 10 * pred::hour_ms, 4 * pred::hour_ms);
    for (int h = 0; h < 24; ++h)
      for (int j = 0; j < g.write_only_per_hour; ++j) {
        const uint32_t k = logs + static_cast<uint32_t>((d * 24 + h) * g.write_only_per_hour + j);
        t.reqs.push_back(request{day + h * pred::hour_ms + r.below(pred::hour_ms), k, sizes(k)});
      }
    for (int h = 0; h < 24; ++h)
      for (int j = 0; j < g.background_per_hour; ++j) {
        const double u = r.uniform();
        const uint32_t k =
            bg + static_cast<uint32_t>(std::lower_bound(cdf.begin(), cdf.end(), u) - cdf.begin());
        t.reqs.push_back(request{day + h * pred::hour_ms + r.below(pred::hour_ms), k, sizes(k)});
      }
  }
  std::stable_sort(t.reqs.begin(), t.reqs.end(),
                   [](const request& a, const request& b) { return a.t < b.t; });
  std::fprintf(stderr,
               "generated: seed=%llu weeks=%d morning_keys=%d (weekdays 07-09) evening_keys=%d "
               "(daily 18-22) weekend_keys=%d (Sat+Sun 10-14) reads_per_period=%.1f "
               "active_share=%.2f background_keys=%d zipf=%.2f background_per_hour=%d "
               "write_only_per_hour=%d (log:N:event, written once, never read) "
               "requests=%zu keys=%zu\n",
               static_cast<unsigned long long>(g.seed), g.weeks, g.morning_keys, g.evening_keys,
               g.weekend_keys, g.reads_per_period, g.active_share, g.background_keys,
               g.background_zipf, g.background_per_hour, g.write_only_per_hour, t.reqs.size(),
               t.names.size());
  return t;
}

// -- replay ------------------------------------------------------------------------------

struct options {
  std::vector<double> shares{0.05};
  bool csv = false;
  double restart_at = -1;
  bool coaccess = false;
  bool tier_choice = false;
  bool shadow_below_bar = true; ///< --no-shadow-below-bar turns it off
  bool reload_evicted = true;   ///< --no-reload turns it off
  bool skip_none = false; ///< --predictor-only: experiments (the `none` rows are deterministic)
  double min_confidence = 0.7;
  double horizon_min = 60;
  double history_h = -1;     ///< --min-history-h (-1: the core's default)
  double imminent_min = -1;  ///< --imminent-min (-1: the core's default)
  double lift_evidence = -1; ///< --lift-evidence (-1: the core's default)
  uint64_t seed = 1;
};

struct outcome {
  uint64_t requests = 0, memory_hits = 0, prewarmed = 0, prewarm_used = 0;
  uint64_t l3_only = 0; ///< first writes the tier choice sent to L3 only (stderr)
};

struct temp_dir {
  std::string path;
  temp_dir() {
    std::string tmpl = "/tmp/kura-bench-predictor-XXXXXX";
    char* p = ::mkdtemp(tmpl.data());
    if (!p)
      die("mkdtemp failed");
    path = p;
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

struct memory_adapter final : pred::memory_view {
  kura::tier_chain* chain = nullptr;
  uint64_t cap = 0;
  bool resident(std::string_view key) const override {
    return chain->memory().locate(key) != kura::memory_region::none;
  }
  uint64_t capacity_bytes() const override { return cap; }
};

pred::predictor_config predictor_config_for(const options& o) {
  pred::predictor_config c;
  c.coaccess_prefetch = o.coaccess;
  c.tier_choice = o.tier_choice;
  c.shadow_below_bar = o.shadow_below_bar;
  c.reload_evicted = o.reload_evicted;
  c.min_confidence = o.min_confidence;
  c.load_horizon_ms = static_cast<uint64_t>(o.horizon_min * pred::minute_ms);
  if (o.history_h >= 0)
    c.min_history_ms = static_cast<uint64_t>(o.history_h * pred::hour_ms);
  if (o.imminent_min >= 0)
    c.imminent_ms = static_cast<uint64_t>(o.imminent_min * pred::minute_ms);
  if (o.lift_evidence >= 0)
    c.lift_evidence = o.lift_evidence;

  c.seed = o.seed;
  return c;
}

/// Simulation state of one replay: chain, predictor, prewarm bookkeeping.
class replay {
public:
  replay(const trace& t, uint64_t capacity, bool with_predictor, const options& o)
      : t_(t), cap_(capacity), on_(with_predictor), opt_(o), clk_(t.reqs.front().t),
        pcfg_(predictor_config_for(o)) {
    open_chain();
    // Cycles on whole simulated minutes, from the first request on.
    next_cycle_ =
        (t.reqs.front().t + pcfg_.interval_ms - 1) / pcfg_.interval_ms * pcfg_.interval_ms;
    if (on_)
      pr_ = std::make_unique<pred::predictor>(pcfg_);
    value_.assign(64, 'v');
  }

  /// Replays requests [from, to) of the trace.
  void run(size_t from, size_t to, const std::function<void(uint64_t)>& each_cycle = {}) {
    for (size_t i = from; i < to; ++i) {
      const request& rq = t_.reqs[i];
      while (next_cycle_ <= rq.t) {
        clk_.set_ms(next_cycle_);
        if (each_cycle)
          each_cycle(next_cycle_);
        cycle(next_cycle_);
        next_cycle_ += pcfg_.interval_ms;
      }
      clk_.set_ms(rq.t);
      serve(rq);
    }
  }

  /// A restart: memory is lost, L3 reopened, the model saved and loaded.
  void restart(uint64_t now) {
    if (on_) {
      pred::file_model_store store(dir_.path + "/predictor.model");
      if (auto st = pr_->save(store); !st.ok())
        die("saving the model: " + st.message());
      pr_ = std::make_unique<pred::predictor>(pcfg_);
      if (auto st = pr_->load(store); !st.ok())
        std::fprintf(stderr, "predictor: model discarded: %s\n", st.message().c_str());
    }
    chain_.reset();
    open_chain();
    pending_.clear();
    clk_.set_ms(now);
    cycle(now, true); // the first prewarm runs at once, for the whole horizon
    next_cycle_ = now + pcfg_.interval_ms;
  }

  outcome result() const { return out_; }
  uint64_t lost() const { return lost_; }
  /// Reads by key prefix (before the first ':') and by whether the read
  /// starts a period (the key's previous read is over an hour ago): requests
  /// and memory hits (KURA_BENCH_VERBOSE only).
  struct read_class {
    uint64_t first_reads = 0, first_hits = 0, later_reads = 0, later_hits = 0;
  };
  std::map<std::string, read_class> classes;
  uint64_t candidates_ = 0, held_back_ = 0, demoted_ = 0;
  kura::tier_chain& chain() { return *chain_; }
  pred::predictor* model() { return pr_.get(); }
  uint64_t window_requests = 0, window_hits = 0;

private:
  void open_chain() {
    kura::l3_config l3c;
    l3c.path = dir_.path + "/l3";
    std::filesystem::create_directories(l3c.path);
    l3c.map_size = 4ull << 30;
    l3c.fsync_batches = false;
    l3c.verify_on_open = false;
    auto l3 = kura::l3_lmdb::open(l3c, clk_);
    if (!l3.ok())
      die("L3: " + l3.err().to_string());
    kura::tier_chain_config cc;
    cc.memory.capacity_bytes = cap_;
    cc.memory.count_objects = true;
    chain_ = std::make_unique<kura::tier_chain>(cc, clk_, std::move(*l3));
    view_.chain = chain_.get();
    view_.cap = cap_;
  }

  void load(const std::string& key, uint64_t now, bool prefetch) {
    auto r = chain_->l3()->get(key, now);
    if (!r.ok() || !r->has_value())
      return;
    (void)chain_->memory().put_predicted(std::move(**r), now);
    pending_[key] = load_info{now, prefetch};
    ++out_.prewarmed;
    pr_->on_loaded(key, 1, now, prefetch);
  }

  void cycle(uint64_t now, bool restart = false) {
    (void)chain_->tick();
    if (!on_)
      return;
    pr_->tick(now);
    auto plan = pr_->make_plan(now, view_, restart);
    candidates_ += plan.candidates;
    held_back_ += plan.held_back;
    for (const auto& k : plan.demote)
      (void)chain_->memory().erase(k); // L3 keeps it
    demoted_ += plan.demote.size();
    for (const auto& it : plan.items)
      load(it.key, now, false);
  }

  void serve(const request& rq) {
    const std::string& key = t_.names[rq.key];
    ++out_.requests;
    ++window_requests;
    if (seen_.size() <= rq.key)
      seen_.resize(t_.names.size(), false);
    pred::access_event ev;
    ev.key = key;
    ev.time_ms = rq.t;
    ev.size = 1; // objects counted: each entry costs one unit of memory
    if (!seen_[rq.key]) {
      seen_[rq.key] = true;
      kura::entry e;
      e.key = key;
      e.value = value_;
      bool memory = true;
      if (on_ && pcfg_.tier_choice && pr_->choose_tier(key) == pred::tier_choice::l3) {
        memory = false;
        ++l3_only_;
      }
      if (memory) {
        if (auto st = chain_->put(std::move(e)); !st.ok())
          die("put: " + st.message());
      } else if (auto st = chain_->l3()->put(std::move(e), rq.t); !st.ok()) {
        die("put: " + st.message());
      }
      if (on_) {
        // the request that missed, then the fill it caused (a cache-aside
        // client): the write is followed from here, so a key never requested
        // again counts as written and never read (the tier choice's evidence)
        ev.tier = pred::access_tier::miss;
        pr_->record(ev);
        pr_->record_write(key, rq.t, 0, 1);
      }
      return;
    }
    const bool resident = chain_->memory().locate(key) != kura::memory_region::none;
    auto p = pending_.find(key);
    if (p != pending_.end()) {
      if (resident)
        ++out_.prewarm_used;
      else
        ++lost_;
      if (std::getenv("KURA_BENCH_LOADS"))
        std::fprintf(stderr, "load %s at h%llu read +%llu min %s window %llu\n", key.c_str(),
                     (unsigned long long)((p->second.at_ms / pred::hour_ms + 72) % 168),
                     (unsigned long long)((rq.t - p->second.at_ms) / pred::minute_ms),
                     resident ? "hit" : "LOST",
                     (unsigned long long)chain_->memory().window_capacity());
      pr_->on_load_read(key, rq.t - p->second.at_ms, resident, p->second.prefetch);
      pending_.erase(p);
    }
    if (resident) {
      ++out_.memory_hits;
      ++window_hits;
    }
    if (verbose_)
      classify(rq, resident);
    auto r = chain_->get(key);
    if (!r.ok())
      die("get: " + r.err().to_string());
    if (!on_)
      return;
    ev.tier = resident ? pred::access_tier::l1 : pred::access_tier::l3;
    pr_->record(ev);
    if (pcfg_.coaccess_prefetch)
      for (const auto& f : pr_->prefetch_for(key, rq.t, view_))
        load(f, rq.t, true);
  }

  void classify(const request& rq, bool resident) {
    const std::string& key = t_.names[rq.key];
    read_class& c = classes[key.substr(0, key.find(':'))];
    if (last_read_.size() <= rq.key)
      last_read_.resize(t_.names.size(), 0);
    const bool first = last_read_[rq.key] == 0 || rq.t - last_read_[rq.key] > pred::hour_ms;
    last_read_[rq.key] = rq.t;
    (first ? c.first_reads : c.later_reads) += 1;
    (first ? c.first_hits : c.later_hits) += resident ? 1 : 0;
  }

  const bool verbose_ = std::getenv("KURA_BENCH_VERBOSE") != nullptr;
  std::vector<uint64_t> last_read_;
  const trace& t_;
  uint64_t cap_;
  bool on_;
  options opt_;
  temp_dir dir_;
  kura::fake_clock clk_;
  pred::predictor_config pcfg_;
  std::unique_ptr<kura::tier_chain> chain_;
  std::unique_ptr<pred::predictor> pr_;
  memory_adapter view_;
  struct load_info {
    uint64_t at_ms;
    bool prefetch;
  };

public:
  /// KURA_BENCH_LOADS: the loads never read, as the read ones are printed.
  void print_unread() const {
    for (const auto& [key, l] : pending_)
      std::fprintf(stderr, "load %s at h%llu never read\n", key.c_str(),
                   (unsigned long long)pred::hour_of_week(l.at_ms));
  }

private:
  std::unordered_map<std::string, load_info> pending_; // loaded, not read yet
  std::vector<bool> seen_;
  std::string value_;
  outcome out_;
  uint64_t lost_ = 0; // loads read after they were evicted again

public:
  uint64_t l3_only_ = 0; // first writes the tier choice sent to L3 only

private:
  uint64_t next_cycle_ = 0;
};

size_t restart_index(const trace& t, double at) {
  const uint64_t t0 = t.reqs.front().t, t1 = t.reqs.back().t;
  const uint64_t when = t0 + static_cast<uint64_t>((t1 - t0) * at);
  return std::lower_bound(t.reqs.begin(), t.reqs.end(), when,
                          [](const request& r, uint64_t w) { return r.t < w; }) -
         t.reqs.begin();
}

outcome run_mode(const trace& t, uint64_t cap, bool with_predictor, const options& o) {
  replay rp(t, cap, with_predictor, o);
  if (o.restart_at < 0) {
    rp.run(0, t.reqs.size());
  } else {
    const size_t cut = restart_index(t, o.restart_at);
    rp.run(0, cut);
    rp.restart(cut < t.reqs.size() ? t.reqs[cut].t : t.reqs.back().t);
    rp.run(cut, t.reqs.size());
  }
  if (std::getenv("KURA_BENCH_LOADS"))
    rp.print_unread();
  if (std::getenv("KURA_BENCH_VERBOSE"))
    for (const auto& [prefix, c] : rp.classes)
      std::fprintf(stderr,
                   "  %s %-8s first reads of a period %llu, memory hits %llu; later reads %llu, "
                   "memory hits %llu\n",
                   with_predictor ? "predictor" : "none", prefix.c_str(),
                   (unsigned long long)c.first_reads, (unsigned long long)c.first_hits,
                   (unsigned long long)c.later_reads, (unsigned long long)c.later_hits);
  if (with_predictor && std::getenv("KURA_BENCH_VERBOSE")) {
    auto st = rp.model()->stats();
    std::fprintf(stderr,
                 "  loads %llu: used %llu, evicted before their read %llu, never read %llu; "
                 "horizon now %llu min; model %llu bytes, %zu keys, %zu patterns\n",
                 (unsigned long long)rp.result().prewarmed,
                 (unsigned long long)rp.result().prewarm_used, (unsigned long long)rp.lost(),
                 (unsigned long long)(rp.result().prewarmed - rp.result().prewarm_used - rp.lost()),
                 (unsigned long long)(rp.model()->effective_horizon_ms() / pred::minute_ms),
                 (unsigned long long)st.model_bytes, st.tracked_keys, st.patterns);
    std::fprintf(stderr,
                 "  plan candidates %llu, held back for hotter residents %llu, cold residents "
                 "demoted %llu\n",
                 (unsigned long long)rp.candidates_, (unsigned long long)rp.held_back_,
                 (unsigned long long)rp.demoted_);
    std::fprintf(stderr, "  memory window %llu of %llu\n",
                 (unsigned long long)rp.chain().memory().window_capacity(),
                 (unsigned long long)cap);
    double q = pred::predictor::calibration_floor;
    for (const auto& [used, loads] : rp.model()->calibration_table()) {
      std::fprintf(stderr, "  planned q in [%.2f, %.2f): %.0f used of %.0f loads\n", q, q + 0.05,
                   used, loads);
      q += 0.05;
    }
    for (const auto& row : rp.model()->survival_table())
      std::fprintf(stderr, "  lead <= %4llu min: survived %.0f, lost %.0f\n",
                   (unsigned long long)(row.lead_bound_ms / pred::minute_ms), row.survived,
                   row.lost);
  }
  outcome r = rp.result();
  r.l3_only = rp.l3_only_;
  return r;
}

void print_row(const options& o, const std::string& name, double share, const char* mode,
               const outcome& r) {
  const double ratio = r.requests ? static_cast<double>(r.memory_hits) / r.requests : 0;
  const double precision = r.prewarmed ? static_cast<double>(r.prewarm_used) / r.prewarmed : 0;
  if (o.csv)
    std::printf("%s,%g,%s,%llu,%llu,%.4f,%llu,%llu,%.4f\n", name.c_str(), share, mode,
                static_cast<unsigned long long>(r.requests),
                static_cast<unsigned long long>(r.memory_hits), ratio,
                static_cast<unsigned long long>(r.prewarmed),
                static_cast<unsigned long long>(r.prewarm_used), precision);
  else
    std::printf("%-40s %6g %-9s %9llu %9llu %8.4f %9llu %9llu %8.4f\n", name.c_str(), share, mode,
                static_cast<unsigned long long>(r.requests),
                static_cast<unsigned long long>(r.memory_hits), ratio,
                static_cast<unsigned long long>(r.prewarmed),
                static_cast<unsigned long long>(r.prewarm_used), precision);
  std::fflush(stdout);
}

void bench(const trace& t, const options& o) {
  std::string name = t.name;
  if (o.restart_at >= 0) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "@restart%g", o.restart_at);
    name += buf;
  }
  for (double share : o.shares) {
    const uint64_t cap = std::max<uint64_t>(1, static_cast<uint64_t>(share * t.names.size()));
    if (!o.skip_none)
      print_row(o, name, share, "none", run_mode(t, cap, false, o));
    options plain = o;
    plain.tier_choice = false;
    print_row(o, name, share, "predictor", run_mode(t, cap, true, plain));
    if (o.tier_choice) { // the same predictor, and new writes placed by the tier choice
      const outcome r = run_mode(t, cap, true, o);
      print_row(o, name, share, "predictor+tier", r);
      std::fprintf(stderr, "%s %g predictor+tier: %llu of %zu keys' first writes went to L3 only\n",
                   name.c_str(), share, static_cast<unsigned long long>(r.l3_only), t.names.size());
    }
  }
}

// -- anomaly replay ------------------------------------------------------------------------

int anomaly_replay(const options& o) {
  gen_params g;
  g.seed = o.seed;
  g.weeks = 3;
  trace t = generate(g);
  const double share = o.shares.empty() ? 0.5 : o.shares.front();
  const uint64_t cap = std::max<uint64_t>(1, static_cast<uint64_t>(share * t.names.size()));
  options po = o;
  replay rp(t, cap, true, po);
  const uint64_t start = t.reqs.front().t - t.reqs.front().t % pred::day_ms;
  auto at = [&](int week, int day, int hour) {
    return start + week * pred::week_ms + day * pred::day_ms + hour * pred::hour_ms;
  };
  struct fault {
    const char* name;
    pred::alert_kind kind;
    uint64_t from, to;
    uint64_t raised_at = 0;
  };
  // Week 3 (index 2), during traffic.
  std::vector<fault> faults = {
      {"hit-ratio drop (memory flushed every cycle)", pred::alert_kind::hit_ratio, at(2, 1, 19),
       at(2, 1, 19) + 20 * pred::minute_ms},
      {"L1 latency rise (observed 3.5 ms)", pred::alert_kind::l1_latency, at(2, 2, 11),
       at(2, 2, 11) + 20 * pred::minute_ms},
      {"L2 latency rise (observed 15 ms)", pred::alert_kind::l2_latency, at(2, 2, 15),
       at(2, 2, 15) + 20 * pred::minute_ms},
      {"disk filling (1 MiB filler values into L3)", pred::alert_kind::storage, at(2, 3, 12),
       at(2, 3, 12) + 30 * pred::minute_ms},
      {"cluster sync failure (3 failed rounds per cycle)", pred::alert_kind::sync, at(2, 4, 9),
       at(2, 4, 9) + 10 * pred::minute_ms},
  };
  uint64_t storage_budget = 0;
  uint64_t filler = 0;
  uint64_t week2_alerts = 0;
  std::vector<pred::alert> all;
  kura::rng noise(o.seed ^ 0xa1e7);
  uint64_t prev = 0;
  auto each_cycle = [&](uint64_t now) {
    if (prev == 0) {
      prev = now;
      return;
    }
    auto active = [&](const fault& f) { return now > f.from && now <= f.to + 1; };
    pred::observation ob;
    ob.now_ms = now;
    ob.cycle_ms = now - prev;
    ob.requests = rp.window_requests;
    ob.memory_hits = rp.window_hits;
    rp.window_requests = rp.window_hits = 0;
    // Latencies are not measurable in simulated time: typical values with
    // noise, raised during the latency faults.
    ob.l1_latency_ms = 0.02 + 0.02 * noise.uniform();
    ob.l2_latency_ms = 0.05 + 0.05 * noise.uniform();
    auto l3 = rp.chain().l3()->stats();
    if (storage_budget == 0 && now >= at(2, 0, 0))
      storage_budget = 2 * l3.bytes + (64ull << 20); // the week-3 budget
    ob.storage_bytes = l3.bytes;
    ob.storage_budget = storage_budget;
    for (const auto& f : faults) {
      // Each fault acts on the cycle that just ended.
      if (!(now > f.from && now <= f.to))
        continue;
      switch (f.kind) {
      case pred::alert_kind::l1_latency:
        ob.l1_latency_ms = 3.5;
        break;
      case pred::alert_kind::l2_latency:
        ob.l2_latency_ms = 15;
        break;
      case pred::alert_kind::sync:
        ob.sync_failures = 3;
        break;
      default:
        break;
      }
    }
    (void)active;
    auto started = rp.model()->observe(ob);
    for (auto& a : started) {
      if (now > at(1, 0, 0) && now <= at(2, 0, 0))
        ++week2_alerts;
      for (auto& f : faults)
        if (f.kind == a.kind && f.raised_at == 0 && now > f.from && now <= f.to + pred::hour_ms)
          f.raised_at = now;
      all.push_back(a);
    }
    prev = now;
    // Faults that act on the cache itself, for the coming cycle.
    for (const auto& f : faults) {
      if (now < f.from || now >= f.to)
        continue;
      if (f.kind == pred::alert_kind::hit_ratio)
        (void)rp.chain().memory().clear();
      if (f.kind == pred::alert_kind::storage) {
        // Fill the disk: enough 1 MiB values per cycle to pass 90 % in minutes.
        for (int i = 0; i < 64 && l3.bytes < storage_budget; ++i) {
          kura::entry e;
          e.key = "filler:" + std::to_string(filler++);
          e.value.assign(1 << 20, 'f');
          (void)rp.chain().l3()->put(std::move(e), now);
        }
        (void)rp.chain().flush();
      }
    }
    if (now == faults[3].to + pred::minute_ms) {
      for (uint64_t i = 0; i < filler; ++i)
        (void)rp.chain().l3()->erase("filler:" + std::to_string(i));
      (void)rp.chain().flush();
    }
  };
  rp.run(0, t.reqs.size(), each_cycle);
  const auto r = rp.result();
  std::printf("anomaly replay: generated workload seed %llu, 3 weeks, memory share %g, memory hit "
              "ratio %.4f\n",
              static_cast<unsigned long long>(o.seed), share,
              static_cast<double>(r.memory_hits) / r.requests);
  std::printf("fault-free week 2: %llu alerts in 168 simulated hours (%.3f per hour)\n",
              static_cast<unsigned long long>(week2_alerts), week2_alerts / 168.0);
  int missed = 0;
  std::printf("%-50s %-12s %-14s %s\n", "fault (week 3)", "alert", "raised after",
              "within one cycle");
  for (const auto& f : faults) {
    const bool ok = f.raised_at != 0 && f.raised_at - f.from <= pred::minute_ms;
    missed += ok ? 0 : 1;
    std::printf("%-50s %-12s %-14s %s\n", f.name, pred::to_string(f.kind),
                f.raised_at ? (std::to_string((f.raised_at - f.from) / 1000) + " s").c_str()
                            : "never",
                ok ? "yes" : "NO");
  }
  std::printf("all alerts raised:\n");
  for (const auto& a : all)
    std::printf("  %s %s at +%.1f h: %s\n", pred::to_string(a.kind), pred::to_string(a.level),
                (a.start_ms - start) / 3.6e6, a.reason.c_str());
  return missed == 0 && week2_alerts < 168 ? 0 : 1;
}

std::vector<double> parse_shares(const std::string& s) {
  std::vector<double> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t c = s.find(',', pos);
    std::string x = s.substr(pos, c == std::string::npos ? std::string::npos : c - pos);
    char* e = nullptr;
    double v = std::strtod(x.c_str(), &e);
    if (e == x.c_str() || *e != '\0' || !(v > 0 && v <= 1))
      die("--memory wants shares in (0, 1], got '" + x + "'");
    out.push_back(v);
    if (c == std::string::npos)
      break;
    pos = c + 1;
  }
  return out;
}

} // namespace

int main(int argc, char** argv) {
  options o;
  std::string trace_path, write_trace;
  bool gen = false, anomaly = false;
  gen_params g;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc)
        die(a + " needs a value");
      return argv[++i];
    };
    if (a == "--trace")
      trace_path = val();
    else if (a == "--memory")
      o.shares = parse_shares(val());
    else if (a == "--csv")
      o.csv = true;
    else if (a == "--restart-at")
      o.restart_at = std::stod(val());
    else if (a == "--generate")
      gen = true;
    else if (a == "--anomaly")
      anomaly = true;
    else if (a == "--seed")
      g.seed = o.seed = std::stoull(val());
    else if (a == "--weeks")
      g.weeks = std::stoi(val());
    else if (a == "--write-only")
      g.write_only_per_hour = std::stoi(val());
    else if (a == "--write-trace")
      write_trace = val();
    else if (a == "--coaccess")
      o.coaccess = true;
    else if (a == "--no-shadow-below-bar")
      o.shadow_below_bar = false;
    else if (a == "--no-reload")
      o.reload_evicted = false;
    else if (a == "--predictor-only")
      o.skip_none = true;
    else if (a == "--tier-choice")
      o.tier_choice = true;
    else if (a == "--min-confidence")
      o.min_confidence = std::stod(val());
    else if (a == "--horizon-min")
      o.horizon_min = std::stod(val());
    else if (a == "--min-history-h")
      o.history_h = std::stod(val());
    else if (a == "--imminent-min")
      o.imminent_min = std::stod(val());
    else if (a == "--lift-evidence")
      o.lift_evidence = std::stod(val());
    else if (a == "-h" || a == "--help") {
      std::printf("usage: kura-bench-predictor --trace FILE [--memory 0.05] [--csv] "
                  "[--restart-at F]\n       kura-bench-predictor --generate [--seed N] "
                  "[--weeks W] [--memory ...] [--csv] [--restart-at F]\n"
                  "       kura-bench-predictor --anomaly [--seed N] [--memory 0.5]\n");
      return 0;
    } else
      die("unknown argument " + a);
  }
  if (o.restart_at >= 1)
    die("--restart-at wants a fraction in [0, 1)");
  if (anomaly) {
    if (o.shares.size() == 1 && o.shares[0] == 0.05)
      o.shares = {0.5};
    return anomaly_replay(o);
  }
  trace t;
  if (gen)
    t = generate(g);
  else if (!trace_path.empty())
    t = load(trace_path);
  else
    die("--trace FILE, --generate or --anomaly (see --help)");
  if (!write_trace.empty()) {
    std::ofstream out(write_trace);
    out << "timestamp_ms,key,size\n";
    for (const auto& r : t.reqs)
      out << r.t << ',' << t.names[r.key] << ',' << r.size << '\n';
  }
  if (o.csv)
    std::printf("trace,memory_share,mode,requests,memory_hits,memory_hit_ratio,prewarmed,"
                "prewarm_used,precision\n");
  else
    std::printf("%-40s %6s %-9s %9s %9s %8s %9s %9s %8s\n", "trace", "share", "mode", "requests",
                "mem_hits", "ratio", "prewarm", "used", "precis.");
  bench(t, o);
  return 0;
}
