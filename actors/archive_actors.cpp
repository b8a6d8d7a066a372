#include "actors/archive_actors.hpp"
#include "actors/erase_tiers.hpp"
#include "archive/job_gate.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <thread>

namespace kura::actors {

namespace {

uint64_t steady_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

void log_error(const char* what, const std::string& msg) {
  std::cerr << "kura-node: L4 " << what << ": " << msg << std::endl;
}

// -- the L4 reader ---------------------------------------------------------------

struct l4_reader_state {
  static inline const char* name = "kura.l4";
};

caf::behavior l4_reader(caf::stateful_actor<l4_reader_state>* self,
                        std::shared_ptr<archive::archive> ar, std::shared_ptr<l4_counters> counters,
                        const kura::clock* clk) {
  self->set_default_handler(caf::drop);
  return {
      [=](l4_lookup_atom, l3_found& found, std::vector<std::string>& keys) -> l3_found {
        auto now = clk->now_ms();
        for (auto& k : keys) {
          auto t0 = steady_ns();
          try {
            auto r = ar->get(k, now, true);
            counters->record_read(steady_ns() - t0);
            if (!r) {
              // a corrupt block fails only its own keys: answer as a miss
              ++counters->errors;
              log_error("read failed for a key", r.err().to_string());
              continue;
            }
            if (*r && !(*r)->is_tombstone()) {
              ++counters->hits;
              entry e = std::move(**r);
              e.flags |= from_archive_flag;
              found.entries.push_back(wire_entry::from(std::move(e)));
            } else {
              ++counters->misses;
            }
          } catch (const std::exception& e) {
            ++counters->errors;
            log_error("read failed", e.what());
          }
        }
        return std::move(found);
      },
  };
}

// -- the compactor ------------------------------------------------------------------

/// Token bucket behind archive::set_throttle: sleeps the compaction thread so
/// that it reads at most `rate` bytes per second on average (bursts up to 1/10 s).
class token_bucket {
public:
  explicit token_bucket(uint64_t rate) : rate_(rate) {}
  void take(uint64_t bytes) {
    if (rate_ == 0)
      return;
    auto cap = static_cast<double>(std::max<uint64_t>(rate_ / 10, 64 * 1024));
    auto now = steady_ns();
    if (last_ns_ != 0)
      tokens_ = std::min(cap, tokens_ + static_cast<double>(now - last_ns_) * 1e-9 *
                                            static_cast<double>(rate_));
    else
      tokens_ = cap;
    last_ns_ = now;
    tokens_ -= static_cast<double>(bytes);
    if (tokens_ < 0) {
      auto wait_s = -tokens_ / static_cast<double>(rate_);
      std::this_thread::sleep_for(std::chrono::duration<double>(wait_s));
      last_ns_ = steady_ns();
      tokens_ = 0;
    }
  }

private:
  uint64_t rate_;
  double tokens_ = 0;
  uint64_t last_ns_ = 0;
};

struct compactor_state {
  std::shared_ptr<archive::archive> ar;
  std::shared_ptr<l4_counters> counters;
  const kura::clock* clk = nullptr;
  l4_config cfg;
  l4_tick_hook on_tick;
  compaction_report cur;  ///< the running job
  compaction_report last; ///< the last finished job
  uint64_t runs = 0;
  uint64_t started_ns = 0;
  uint64_t last_retention_ms = 0;
  /// Shared with another driver of the archive's jobs (a cluster node's
  /// store, archive/job_gate.hpp); null: this actor is the only one.
  std::shared_ptr<archive::job_gate> gate;
  uint64_t job_generation = 0; ///< the gate's generation when the job began
  static inline const char* name = "kura.compactor";

  /// Held around every call that drives a job (nothing without a gate).
  std::unique_lock<std::mutex> hold() const {
    return gate ? std::unique_lock<std::mutex>(gate->mu) : std::unique_lock<std::mutex>();
  }

  uint64_t slice_bytes() const {
    return cfg.compact_rate == 0 ? (4ull << 20)
                                 : std::max<uint64_t>(cfg.compact_rate / 10, 256 * 1024);
  }
  void update(const archive::compaction_progress& p) {
    cur.bytes_done = p.bytes_done;
    cur.bytes_total = p.bytes_total;
    cur.bytes_written = p.bytes_written;
    cur.entries_moved = p.entries_moved;
    cur.segments_done = p.segments_done;
    cur.segments_total = p.segments_total;
    auto ns = steady_ns() - started_ns;
    cur.elapsed_ms = ns / 1'000'000;
    cur.rate_bytes_per_s =
        ns == 0 ? 0 : static_cast<uint64_t>(static_cast<double>(p.bytes_done) * 1e9 / ns);
  }
  void finish(bool ok, std::string error) {
    cur.running = false;
    cur.ok = ok;
    cur.error = std::move(error);
    ++counters->compaction_runs;
    counters->compaction_bytes += cur.bytes_done;
    counters->compaction_ns += steady_ns() - started_ns;
    if (!ok)
      log_error("compaction failed", cur.error);
    last = cur;
  }
};

caf::behavior compactor(caf::stateful_actor<compactor_state>* self,
                        std::shared_ptr<archive::archive> ar, l4_config cfg,
                        std::shared_ptr<l4_counters> counters, const kura::clock* clk,
                        l4_tick_hook on_tick, std::shared_ptr<archive::job_gate> gate) {
  auto& st = self->state;
  st.ar = ar;
  st.gate = gate;
  st.cfg = cfg;
  st.counters = std::move(counters);
  st.clk = clk;
  st.on_tick = std::move(on_tick);
  st.last_retention_ms = clk->now_ms();
  auto bucket = std::make_shared<token_bucket>(cfg.compact_rate);
  ar->set_throttle([bucket](uint64_t bytes) { bucket->take(bytes); });
  // a job must not outlive its driver (archive.hpp)
  self->attach_functor([ar, gate] {
    std::unique_lock<std::mutex> lk;
    if (gate)
      lk = std::unique_lock<std::mutex>(gate->mu);
    ar->abort_compaction();
    ar->set_throttle({});
  });
  self->set_default_handler(caf::drop);
  self->send(self, maintain_atom::value);
  if (cfg.compact_interval_ms > 0)
    self->delayed_send(self, std::chrono::milliseconds(cfg.compact_interval_ms),
                       compact_atom::value, std::string{"schedule"});
  // an erase job ends with a compacted copy of the index (KURA.ERASE)
  auto finish_job = [self]() {
    auto& s = self->state;
    if (s.cur.trigger == "rotate")
      if (auto ids = s.ar->drop_old_secrets(); !ids) {
        s.finish(false, ids.err().to_string());
        return;
      }
    if (s.cur.trigger == "erase")
      if (auto st2 = s.ar->compact_index(); !st2) {
        s.finish(false, st2.message());
        return;
      }
    s.finish(true, {});
  };
  auto start =
      [self, finish_job](
          const std::string& trigger,
          std::function<result<archive::compaction_progress>()> begin = {}) -> compaction_report {
    auto& s = self->state;
    if (s.cur.running)
      return s.cur;
    s.cur = compaction_report{};
    s.cur.run = ++s.runs;
    s.cur.trigger = trigger;
    s.cur.rate_limit = s.cfg.compact_rate;
    s.started_ns = steady_ns();
    try {
      auto lk = s.hold();
      if (s.gate && s.gate->busy) { // the store's re-seal runs (kura rotate-key)
        s.finish(false, "the archive is busy with " + s.gate->reason + "; try again later");
        return s.cur;
      }
      if (s.gate)
        s.job_generation = s.gate->generation;
      auto p = begin                 ? begin()
               : trigger == "rotate" ? s.ar->begin_reseal()
                                     : s.ar->begin_compaction(s.cfg.compact_threshold);
      if (!p) {
        s.finish(false, p.err().to_string());
        return s.cur;
      }
      s.update(*p);
      if (p->done) {
        finish_job();
        return s.cur;
      }
    } catch (const std::exception& e) {
      s.finish(false, e.what());
      return s.cur;
    }
    s.cur.running = true;
    self->send(self, compact_step_atom::value);
    return s.cur;
  };
  return {
      [=](compact_atom) -> compaction_report { return start("cli"); },
      [=](compact_atom, const std::string& trigger) {
        start(trigger);
        auto& s = self->state;
        if (s.cfg.compact_interval_ms > 0)
          self->delayed_send(self, std::chrono::milliseconds(s.cfg.compact_interval_ms),
                             compact_atom::value, std::string{"schedule"});
      },
      [=](compact_step_atom) {
        auto& s = self->state;
        if (!s.cur.running)
          return;
        try {
          auto lk = s.hold();
          if (s.gate && s.gate->generation != s.job_generation) {
            // the store aborted it for its own job (archive/job_gate.hpp)
            s.finish(false, "aborted for " + s.gate->reason);
            return;
          }
          auto p = s.ar->compaction_step(s.slice_bytes());
          if (!p) {
            s.ar->abort_compaction();
            s.finish(false, p.err().to_string());
            return;
          }
          s.update(*p);
          if (p->done) {
            finish_job();
            return;
          }
        } catch (const std::exception& e) {
          s.ar->abort_compaction();
          s.finish(false, e.what());
          return;
        }
        self->send(self, compact_step_atom::value); // status requests get in between
      },
      [=](l4_rotate_atom, const std::string& key_file,
          const std::string& salt_file) -> compaction_report {
        auto& s = self->state;
        compaction_report failed;
        failed.trigger = "rotate";
        failed.ok = false;
        auto kr = crypto::keyring::load(key_file, salt_file);
        if (!kr) {
          failed.error = kr.err().to_string();
          return failed;
        }
        if (s.cur.running) { // re-sealing comes first; finished segments stay compacted
          s.ar->abort_compaction();
          s.finish(false, "aborted for a key rotation");
        }
        if (auto st2 = s.ar->rotate_keys(std::move(*kr)); !st2) {
          failed.error = st2.message();
          return failed;
        }
        return start("rotate");
      },
      [=](l4_erase_atom, uint8_t mode, const std::vector<std::string>& args,
          const std::vector<std::string>& keys, bool retire) -> compaction_report {
        auto& s = self->state; // KURA.ERASE (actors/erase_tiers.hpp)
        if (s.cur.running) {   // the erasure comes first; finished segments stay compacted
          s.ar->abort_compaction();
          s.finish(false, "aborted for an erasure");
        }
        auto match = erase_matcher(mode, args, keys);
        return start("erase",
                     [ar = s.ar, match, retire] { return ar->begin_erase_rewrite(match, retire); });
      },
      [=](compact_status_atom) -> compaction_report {
        auto& s = self->state;
        return s.cur.running ? s.cur : s.last;
      },
      [=](archive_info_atom) -> caf::result<archive_report> {
        auto& s = self->state;
        try {
          return make_archive_report(*s.ar, *s.counters);
        } catch (const std::exception& e) {
          return caf::make_error(caf::sec::runtime_error, e.what());
        }
      },
      [=](maintain_atom) {
        auto& s = self->state;
        auto now = s.clk->now_ms();
        try {
          if (auto st2 = s.ar->maybe_flush(now); !st2.ok())
            log_error("flush failed", st2.message());
          if (now - s.last_retention_ms >= s.cfg.retention_interval_ms) {
            s.last_retention_ms = now;
            auto lk = s.hold();
            if (auto r = s.ar->enforce_retention(now); !r)
              log_error("retention failed", r.err().to_string());
            s.ar->sweep_expired(now, 10000);
          }
          if (s.on_tick)
            s.on_tick(*s.ar, *s.counters);
        } catch (const std::exception& e) {
          log_error("maintenance failed", e.what());
        }
        self->delayed_send(self, std::chrono::milliseconds(s.cfg.flush_interval_ms),
                           maintain_atom::value);
      },
  };
}

} // namespace

// -- archive_link ------------------------------------------------------------------

archive_link::archive_link(std::shared_ptr<archive::archive> ar, caf::actor reader,
                           std::shared_ptr<l4_counters> counters)
    : ar_(std::move(ar)), reader_(std::move(reader)), counters_(std::move(counters)) {
  nonempty_ = ar_->stats().entries > 0;
}

void archive_link::attach(l3_lmdb& l3, const kura::clock& clk,
                          std::function<bool(std::string_view)> never_archive) {
  // Captures the archive, not `this`: l3_lmdb's destructor may still evict.
  auto ar = ar_;
  auto counters = counters_;
  auto dirty = dirty_;
  auto* c = &clk;
  auto failed = std::make_shared<bool>(false);
  // The second callback runs inside L3's commit, before the victims' removal
  // from L3 is durable: commit them in the archive first (see tier.hpp), or
  // make L3 keep them when they could not be archived.
  auto make_durable = [ar, counters, failed]() -> status {
    if (*failed) {
      *failed = false;
      return status{errc::io_error, "an evicted entry could not be archived"};
    }
    try {
      auto st = ar->flush();
      if (!st.ok()) {
        ++counters->errors;
        log_error("flush failed", st.message());
        return st;
      }
    } catch (const std::exception& ex) {
      ++counters->errors;
      log_error("flush failed", ex.what());
      return status{errc::io_error, ex.what()};
    }
    return {}; // `dirty` stays set: settle() marks the archive non-empty
  };
  l3.set_eviction_listener(
      [ar, counters, dirty, c, failed, sup = superseded_,
       never = std::move(never_archive)](entry&& e) {
        if (e.is_tombstone() || (never && never(e.key)))
          return;
        status st;
        std::string key = sup->empty() ? std::string{} : e.key;
        try {
          st = ar->put(std::move(e), c->now_ms());
        } catch (const std::exception& ex) {
          st = status{errc::io_error, ex.what()};
        }
        if (!st.ok()) {
          ++counters->errors;
          *failed = true;
          log_error("cannot archive an entry evicted from L3", st.message());
          return;
        }
        if (!key.empty())
          sup->forget(key); // the archive holds the new version now
        *dirty = true;
      },
      make_durable);
}

// Every call below runs inside an L3 actor handler: nothing may escape.

void archive_link::settle() {
  if (!*dirty_)
    return;
  *dirty_ = false;
  nonempty_ = true;
  try {
    if (auto st = ar_->flush(); !st.ok()) {
      ++counters_->errors;
      log_error("flush failed", st.message());
    }
  } catch (const std::exception& e) {
    ++counters_->errors;
    log_error("flush failed", e.what());
  }
}

void archive_link::written(std::string_view key, const kura::version& ver) {
  if (!nonempty_ && !*dirty_)
    return;
  try {
    auto held = ar_->held_version(key);
    if (!held) {
      ++counters_->errors;
      log_error("index lookup failed", held.err().to_string());
    } else if (*held && **held <= ver) {
      superseded_->add(key, ver);
    }
  } catch (const std::exception& e) {
    ++counters_->errors;
    log_error("index lookup failed", e.what());
  }
}

void archive_link::l3_committed() {
  if (superseded_->empty())
    return;
  try {
    if (auto st = superseded_->drop(*ar_); !st.ok()) {
      ++counters_->errors;
      log_error("erase failed", st.message());
    }
  } catch (const std::exception& e) {
    superseded_->clear();
    ++counters_->errors;
    log_error("erase failed", e.what());
  }
}

void archive_link::erase(std::string_view key) {
  if (!nonempty_ && !*dirty_)
    return;
  superseded_->forget(key);
  try {
    auto r = ar_->erase(key);
    if (!r) {
      ++counters_->errors;
      log_error("erase failed", r.err().to_string());
    }
  } catch (const std::exception& e) {
    ++counters_->errors;
    log_error("erase failed", e.what());
  }
}

void archive_link::clear() {
  try {
    if (auto st = ar_->clear(); !st.ok()) {
      ++counters_->errors;
      log_error("clear failed", st.message());
    }
  } catch (const std::exception& e) {
    ++counters_->errors;
    log_error("clear failed", e.what());
  }
  nonempty_ = false;
  *dirty_ = false;
  superseded_->clear();
}

uint64_t archive_link::entries() const {
  try {
    return ar_->stats().entries;
  } catch (const std::exception& e) {
    log_error("stats failed", e.what());
    return 0;
  }
}

result<std::optional<std::string>>
archive_link::scan_keys(std::string_view after, size_t max,
                        const std::function<void(const key_info&)>& f) {
  try {
    return ar_->scan_keys(after, max, [&](const archive::archive::key_info& k) {
      key_info ki;
      ki.key = k.key;
      ki.ver = k.ver;
      ki.expiry_ms = k.expiry_ms;
      ki.flags = k.flags;
      f(ki);
    });
  } catch (const std::exception& e) {
    ++counters_->errors;
    log_error("key scan failed", e.what());
    return error{errc::io_error, e.what()};
  }
}

// -- spawning and stopping -----------------------------------------------------------

l4_handles spawn_l4(caf::actor_system& sys, std::shared_ptr<archive::archive> ar, l4_config cfg,
                    const kura::clock& clk, l4_tick_hook on_tick,
                    std::shared_ptr<archive::job_gate> gate) {
  l4_handles h;
  h.ar = ar;
  h.counters = std::make_shared<l4_counters>();
  h.reader = sys.spawn<caf::detached>(l4_reader, ar, h.counters, &clk);
  h.compactor = sys.spawn<caf::detached>(compactor, ar, cfg, h.counters, &clk, std::move(on_tick),
                                         std::move(gate));
  h.link = std::make_shared<archive_link>(ar, h.reader, h.counters);
  return h;
}

void stop_l4(caf::actor_system& sys, const l4_handles& h) {
  caf::scoped_actor self{sys};
  if (h.compactor)
    self->send_exit(h.compactor, caf::exit_reason::user_shutdown);
  if (h.reader)
    self->send_exit(h.reader, caf::exit_reason::user_shutdown);
  if (h.ar)
    if (auto st = h.ar->flush(); !st.ok())
      log_error("flush at shutdown failed", st.message());
}

archive_report make_archive_report(archive::archive& ar, const l4_counters& c) {
  auto info = ar.inspect();
  archive_report r;
  r.enabled = true;
  r.codec = archive::to_string(ar.config().codec);
  r.entries = info.entries;
  r.stored_bytes = info.stored_bytes;
  r.raw_bytes = info.raw_bytes;
  r.live_raw_bytes = info.live_raw_bytes;
  r.ratio = info.ratio();
  r.live_fraction = info.raw_bytes == 0 ? 1.0
                                        : static_cast<double>(info.live_raw_bytes) /
                                              static_cast<double>(info.raw_bytes);
  r.oldest_entry_ms = info.oldest_entry_ms;
  r.max_bytes = ar.config().max_bytes;
  r.ttl_days = ar.config().ttl_days;
  r.corrupt_blocks = info.corrupt_blocks.size();
  r.compaction_runs = c.compaction_runs.load();
  r.l4_hits = c.hits.load();
  r.l4_misses = c.misses.load();
  for (auto& s : info.segments) {
    archive_segment_row row;
    row.id = s.id;
    row.codec = archive::to_string(s.codec);
    row.dict_id = s.dict_id;
    row.stored_bytes = s.stored_bytes;
    row.raw_bytes = s.raw_bytes;
    row.entries = s.entries;
    row.live_entries = s.live_entries;
    row.live_fraction = s.live_fraction;
    row.oldest_ms = s.oldest_ms;
    row.active = s.active;
    r.segments.push_back(std::move(row));
  }
  for (auto& d : info.dictionaries)
    r.dictionaries.push_back(archive_dict_row{d.id, d.bytes, d.segments, d.current});
  return r;
}

} // namespace kura::actors
