#include "gossip/tier_store.hpp"

#include <algorithm>
#include <chrono>

namespace kura::gossip {

tier_store::tier_store(std::unique_ptr<l3_lmdb> l3, std::shared_ptr<archive::archive> l4,
                       const clock& clk, uint64_t ring_seed,
                       std::function<bool(std::string_view)> never_archive)
    : replica_store(ring_seed), l3_(std::move(l3)), l4_(std::move(l4)), clk_(clk),
      never_archive_(std::move(never_archive)) {
  if (l4_) {
    // As in the tier chain: L3's victims go down, and the archive commits them
    // before L3 commits their removal. Sensitive keys are dropped instead.
    l3_->set_eviction_listener(
        [this](entry&& e) {
          if (!e.is_tombstone() && !e.expired(clk_.now_ms()) && // L4 holds no tombstones
              !(never_archive_ && never_archive_(e.key)))
            (void)l4_->put(std::move(e), clk_.now_ms());
        },
        [this] { return l4_->flush(); });
  }
}

tier_store::~tier_store() {
  if (worker_.joinable()) {
    {
      std::lock_guard<std::mutex> lk(q_mu_);
      stop_ = true;
    }
    q_cv_.notify_all();
    worker_.join(); // it applies what is queued and commits
  }
  if (l3_) {
    bool committed = l3_->flush().ok();
    drop_superseded(true);
    l3_->set_eviction_listener(nullptr);
    if (wal_) { // LMDB holds every change: a clean stop leaves no log to replay
      wal_.reset();
      if (committed)
        (void)wal::remove_segments(wal_dir_);
    }
  }
  l3_.reset();
  l4_.reset();
}

result<std::unique_ptr<tier_store>> tier_store::open(l3_config l3,
                                                     std::optional<archive::archive_config> l4,
                                                     const clock& clk, uint64_t ring_seed) {
  std::shared_ptr<archive::archive> t4;
  if (l4) {
    auto a = archive::archive::open(std::move(*l4), clk);
    if (!a)
      return a.err();
    t4 = std::move(*a);
  }
  return open(std::move(l3), std::move(t4), clk, ring_seed);
}

result<std::unique_ptr<tier_store>>
tier_store::open(l3_config l3, std::shared_ptr<archive::archive> l4, const clock& clk,
                 uint64_t ring_seed, bool background, std::function<bool(std::string_view)> never,
                 std::optional<wal_config> log, wal_replay_stats* replayed) {
  if (log && !background)
    return error{errc::invalid_argument, "the cluster store's write-ahead log needs background "
                                         "commits"};
  l3.tombstones = true;
  auto t3 = l3_lmdb::open(std::move(l3), clk);
  if (!t3)
    return t3.err();
  std::unique_ptr<tier_store> s(
      new tier_store(std::move(*t3), std::move(l4), clk, ring_seed, std::move(never)));
  if (log)
    if (auto st = s->recover_log(*log, replayed); !st)
      return st.err();
  if (auto st = s->build_index(); !st)
    return st.err();
  if (background)
    s->start_worker();
  return s;
}

status tier_store::recover_log(const wal_config& cfg, wal_replay_stats* replayed) {
  // Records up to L3's mark are in LMDB (committed with it). The others go
  // to L3 as the worker applies changes: last-writer-wins by version, so a
  // record L3 holds already changes nothing, and in log order, so the end
  // state is the one the changes left. The archive's copies they supersede
  // go once L3 committed them (drop_superseded), as in the worker.
  const uint64_t mark = l3_->log_mark();
  uint64_t top = mark;
  auto r = wal::replay(cfg, [&](wal_record&& rec) -> status {
    if (rec.batch <= mark)
      return {};
    top = std::max(top, rec.batch);
    bool ok = true;
    last_error_.reset();
    if (rec.kind == wal_record::put)
      ok = apply_tiers(rec.e, true);
    else if (rec.kind == wal_record::erase)
      ok = erase_tiers(rec.e.key, rec.e.ver);
    // a record L3 refuses (too large for its limits) was refused when it
    // was made too; an I/O error stops the replay
    if (!ok && last_error_ && last_error_->code != errc::key_too_large &&
        last_error_->code != errc::value_too_large)
      return *last_error_;
    return {};
  });
  last_error_.reset();
  if (!r)
    return error{r.err().code, "write-ahead log replay from " + cfg.dir + ": " + r.err().message};
  if (top > mark) {
    l3_->set_log_mark(top);
    if (auto st = l3_->sync(); !st)
      return error{st.code(), "write-ahead log replay: L3 sync: " + st.message()};
    drop_superseded(true);
    if (l4_)
      if (auto st = l4_->flush(); !st)
        return error{st.code(), "write-ahead log replay: L4 flush: " + st.message()};
  }
  if (replayed)
    *replayed = *r;
  if (auto st = wal::remove_segments(cfg.dir); !st)
    return st;
  auto w = wal::open(cfg, clk_);
  if (!w)
    return w.err();
  wal_ = std::move(*w);
  wal_dir_ = cfg.dir;
  // changes go on numbering after the mark (the log's records name them)
  next_seq_ = applied_seq_ = committed_seq_ = top;
  return {};
}

status tier_store::build_index() {
  // L3 first: every key L3 ever held is there (values, tombstones, floors).
  std::string after;
  for (;;) {
    auto r = l3_->scan(after, 4096, [&](const entry& e) {
      auto& m = index_[{position(e.key), e.key}];
      m = meta{e.ver, e.flags, clamp_bytes(e.value.size()), e.expiry_ms};
    });
    if (!r)
      return r.err();
    if (!r->has_value())
      break;
    after = std::move(**r);
  }
  // Then L4: a value newer than L3's record, or at the floor's version.
  if (l4_) {
    after.clear();
    for (;;) {
      auto r = l4_->scan_keys(after, 4096, [&](const archive::archive::key_info& ki) {
        meta m{ki.ver, ki.flags, clamp_bytes(ki.value_bytes), ki.expiry_ms};
        auto [it, fresh] = index_.try_emplace({position(ki.key), ki.key}, m);
        if (!fresh && !(ki.ver < it->second.ver))
          it->second = m;
      });
      if (!r)
        return r.err();
      if (!r->has_value())
        break;
      after = std::move(**r);
    }
  }
  by_key_.rebuild();
  for (auto& [k, m] : index_) {
    entry e;
    e.key = k.second;
    e.ver = m.ver;
    e.flags = m.flags;
    changed(nullptr, &e);
  }
  // L3 remembers versions it no longer holds (collected, erased) as well.
  note_version(l3_->max_version());
  return {};
}

std::optional<entry> tier_store::read(std::string_view key, const version& want,
                                      uint8_t* tier) const {
  std::optional<entry> e;
  if (tier)
    *tier = 2;
  if (!worker_.joinable()) {
    e = read_tiers(key, want, false, tier);
  } else if (auto it = overlay_.find(std::string(key)); it != overlay_.end()) {
    if (it->second.erased)
      return std::nullopt;
    e = it->second.e;
  } else {
    // Not in the overlay: the key's last change is committed. Read L3's
    // committed state beside the worker, never waiting for its commits.
    e = read_tiers(key, want, true, tier);
  }
  if (e)
    cap_age(*e);
  return e;
}

std::optional<entry> tier_store::read_tiers(std::string_view key, const version& want,
                                            bool concurrent, uint8_t* tier) const {
  auto r = concurrent ? l3_->get_committed_concurrent(key) : l3_->get_versioned(key);
  if (!r) {
    std::unique_lock<std::mutex> lk(tiers_mu_, std::defer_lock);
    if (concurrent)
      lk.lock(); // the worker sets last_error_ too
    last_error_ = r.err();
    return std::nullopt;
  }
  if (*r && !(*r)->is_tombstone() && !((*r)->ver < want))
    return std::move(**r);
  // A tombstone floor of a demoted entry, or nothing in L3: the archive's copy
  // when it has the version we hold (expired copies read as absent there).
  // Also when L3's record is older than that copy: a kill -9 between the
  // archive's commit of a demoted value and L3's commit of its write and
  // demotion leaves L3's previous record (an older floor or value) above the
  // newer copy in L4 (build_index then holds L4's version).
  if (l4_) {
    auto held = l4_->held_version(key);
    if (held && *held && **held == want && (!*r || !(want < (*r)->ver))) {
      auto got = l4_->get(key, clk_.now_ms(), false);
      if (got && *got) {
        if (tier)
          *tier = 3;
        return std::move(**got);
      }
    }
  }
  if (*r)
    return std::move(**r); // a tombstone (a delete, or the floor of a value gone)
  if (!want.is_zero()) {
    // Held per the index but in neither tier any more (L4 retention dropped it
    // without a floor): its version is all that is left.
    entry e;
    e.key = std::string(key);
    e.ver = want;
    e.flags = entry_flags::tombstone;
    return e;
  }
  return std::nullopt;
}

std::optional<entry> tier_store::get(std::string_view key) const {
  entry scratch;
  auto r = get_ref(key, scratch);
  if (!r)
    return std::nullopt;
  if (r->key.data() == scratch.key.data())
    return scratch; // the tiers' copy
  return entry{std::string(r->key), std::string(r->value), r->expiry_ms, r->ver, r->flags};
}

std::optional<entry_ref> tier_store::get_ref(std::string_view key, entry& scratch) const {
  auto it = find_key(key);
  if (it == index_.end())
    return std::nullopt;
  const version want = it->second.ver;
  std::optional<entry> e;
  if (!cache_ && !tap_) {
    e = read(key, want);
  } else {
    auto now = clk_.now_ms();
    if (auto hit = cache_hit(key, want, now))
      return hit;
    e = read_missed(key, want, now);
  }
  if (!e)
    return std::nullopt;
  scratch = std::move(*e);
  return entry_ref::of(scratch);
}

std::optional<entry_ref> tier_store::cache_hit(std::string_view key, const version& want,
                                               uint64_t now) const {
  if (!cache_)
    return std::nullopt;
  std::optional<entry_ref> hit;
  bool l2 = false;
  cache_->visit(key, now, [&](const memory_cache::entry_view& v) {
    if (v.ver == want) { // the version we hold, nothing older
      hit = entry_ref{v.key, v.value, v.expiry_ms, v.ver, v.flags};
      l2 = v.l2;
    }
  });
  if (!hit)
    return std::nullopt;
  cap_age(*hit);
  ++cache_hits_;
  if (tap_)
    tap_->on_read(key, now, l2 ? 1 : 0, hit->value.size());
  return hit;
}

std::optional<entry> tier_store::read_missed(std::string_view key, const version& want,
                                             uint64_t now) const {
  uint8_t tier = 2;
  auto e = read(key, want, &tier);
  const bool live = e && !e->is_tombstone() && !e->expired(now);
  if (cache_) {
    ++cache_misses_;
    if (live && e->ver == want)
      (void)cache_->put(*e, now); // too big for the cache: not cached
  }
  if (tap_ && live)
    tap_->on_read(key, now, tier, e->value.size());
  return e;
}

tier_store::prewarm_outcome tier_store::prewarm(std::string_view key, uint64_t& bytes) {
  bytes = 0;
  auto it = find_key(key);
  if (it == index_.end() || (it->second.flags & entry_flags::tombstone))
    return prewarm_outcome::absent;
  if (!cache_)
    return prewarm_outcome::refused;
  if (cache_->locate(key) != memory_region::none)
    return prewarm_outcome::resident;
  const auto now = clk_.now_ms();
  const bool had_error = last_error_.has_value();
  auto e = read(key, it->second.ver);
  if (!e)
    return !had_error && last_error_ ? prewarm_outcome::failed : prewarm_outcome::absent;
  if (e->is_tombstone() || e->expired(now) || e->ver != it->second.ver)
    return prewarm_outcome::absent;
  bytes = e->key.size() + e->value.size();
  if (!cache_->put_predicted(std::move(*e), now).ok() || cache_->locate(key) == memory_region::none)
    return prewarm_outcome::refused;
  return prewarm_outcome::loaded;
}

bool tier_store::cached(std::string_view key) const {
  return cache_ && cache_->locate(key) != memory_region::none;
}

bool tier_store::drop_cached(std::string_view key) {
  if (!cache_)
    return false;
  auto r = cache_->erase(key);
  return r.ok() && *r;
}

void tier_store::set_read_cache(uint64_t bytes) {
  if (bytes == 0) {
    cache_.reset();
    return;
  }
  memory_cache_config mc;
  mc.capacity_bytes = bytes;
  cache_ = std::make_unique<memory_cache>(mc);
}

tier_store::holdings tier_store::report_holdings(bool kinds) const {
  holdings h;
  h.keys = index_.size();
  for (auto it = kinds ? index_.begin() : index_.end(); it != index_.end(); ++it) {
    auto& m = it->second;
    if (m.flags & entry_flags::tombstone)
      ++h.tombstones;
    else if (m.expiry_ms != 0)
      ++h.expires;
  }
  if (cache_) {
    h.memory = cache_->stats();
    h.memory_l1 = cache_->l1_stats();
    h.memory_l2 = cache_->l2_stats();
  }
  std::lock_guard<std::mutex> lk(tiers_mu_);
  h.l3 = l3_->stats();
  if (l4_) {
    h.has_l4 = true;
    h.l4 = l4_->stats();
  }
  return h;
}

uint64_t tier_store::cache_bytes() const {
  return cache_ ? cache_->stats().bytes : 0;
}

std::string tier_store::where(std::string_view key) const {
  auto ver = version_text;
  std::string s;
  if (auto it = overlay_.find(std::string(key)); it != overlay_.end())
    s += "overlay=" + std::string(it->second.erased ? "erased" : ver(it->second.e.ver)) + " ";
  std::lock_guard<std::mutex> lk(tiers_mu_);
  auto r = l3_->get_versioned(key);
  s += "l3=";
  if (!r)
    s += "error(" + r.err().message + ")";
  else if (!*r)
    s += "none";
  else
    s += std::string((*r)->is_tombstone() ? "tombstone@" : "value@") + ver((*r)->ver);
  if (l4_) {
    auto held = l4_->held_version(key);
    s += " l4=";
    if (!held)
      s += "error(" + held.err().message + ")";
    else if (!*held)
      s += "none";
    else
      s += ver(**held);
  }
  return s;
}

std::optional<version> tier_store::version_of(std::string_view key) const {
  auto it = find_key(key);
  if (it == index_.end())
    return std::nullopt;
  return it->second.ver;
}

bool tier_store::holds_tombstone(std::string_view key) const {
  auto it = find_key(key);
  if (it == index_.end())
    return false;
  if (it->second.flags & entry_flags::tombstone)
    return true;
  if (it->second.expiry_ms == 0 && max_age_ms_ == 0)
    return false; // a live value (get() would read it only to say so)
  return replica_store::holds_tombstone(key);
}

bool tier_store::apply_tiers(const entry& e, bool known) {
  auto r = l3_->apply(e, clk_.now_ms());
  if (!r) {
    last_error_ = r.err();
    return false;
  }
  if (!*r)
    return false;
  if (known && l4_) {
    // The older copy in the archive is superseded: one persistent tier per
    // key. But not before L3 committed the new version: the archive's erase
    // commits at once, L3's write waits in its batch, and a kill -9 in
    // between left L3's floor of the old version with no copy below it (the
    // key read nil, and anti-entropy saw the same version on every replica).
    // A superseded copy is never read meanwhile (L3's newer record wins).
    auto held = l4_->held_version(e.key);
    if (held && *held && **held < e.ver)
      l4_superseded_.emplace_back(e.key, e.ver);
  }
  return true;
}

void tier_store::drop_superseded(bool commit_l3) {
  if (l4_superseded_.empty())
    return;
  if (l3_->pending() != 0) {
    // Wait for L3's commit, unless the list grew long (steady writes keep a
    // batch pending): then commit now, one extra commit per that many writes.
    if (!commit_l3 && l4_superseded_.size() < max_superseded)
      return;
    if (auto st = l3_->flush(); !st) {
      last_error_ = st.err();
      return;
    }
  }
  for (auto& [key, newer] : l4_superseded_) {
    // only a copy older than the write that superseded it (L3 may have
    // demoted the new version meanwhile: that copy stays)
    auto held = l4_->held_version(key);
    if (held && *held && **held < newer)
      (void)l4_->erase(key);
  }
  l4_superseded_.clear();
}

bool tier_store::restore(const entry& e) {
  auto it = find_key(e.key);
  auto now = clk_.now_ms();
  if (!l4_ || it == index_.end() || e.is_tombstone() || e.expired(now) || it->second.ver != e.ver ||
      !(it->second.flags & entry_flags::tombstone))
    return false;
  if (worker_.joinable()) {
    change c;
    c.e = e;
    c.restore = true;
    c.seq = ++next_seq_;
    overlay_[e.key] = shadow{c.e, false, c.seq};
    enqueue(std::move(c));
  } else {
    auto r = l4_->apply(e, now);
    if (!r) {
      last_error_ = r.err();
      return false;
    }
  }
  if (cache_ && !cache_->put(e, now))
    (void)cache_->erase(e.key);
  it->second = meta_of(e); // the same version: no digest change
  return true;
}

bool tier_store::apply(const entry& e) {
  const uint64_t pos = position(e.key);
  auto it = by_key_.find(pos, e.key);
  if (it != index_.end() && !(it->second.ver < e.ver))
    return false; // the index covers L3 and L4: no disk read
  if (cache_) {
    // Write-through: the new value replaces the cached copy (older than it),
    // so the next read of the key is a memory hit, not an L3 read.
    auto now = clk_.now_ms();
    if (e.is_tombstone() || e.expired(now) || !cache_->put(e, now))
      (void)cache_->erase(e.key);
  }
  bool known = it != index_.end();
  if (tap_ && !e.is_tombstone()) {
    auto now = clk_.now_ms();
    tap_->on_write(e.key, now, e.expiry_ms > now ? e.expiry_ms - now : 0, e.value.size());
  }
  if (worker_.joinable()) {
    change c;
    c.e = e;
    if (c.e.is_tombstone()) { // as L3 stores it
      c.e.value.clear();
      c.e.expiry_ms = 0;
    }
    c.known = known;
    c.seq = ++next_seq_;
    if (wal_) // durable once the log's writer wrote it (a few ms), before L3 has it
      wal_->append_put(c.e, c.seq);
    overlay_[e.key] = shadow{c.e, false, c.seq};
    enqueue(std::move(c));
  } else if (!apply_tiers(e, known)) {
    return false;
  }
  entry before;
  if (it != index_.end()) {
    before.key = e.key;
    before.ver = it->second.ver;
    before.flags = it->second.flags;
    it->second = meta_of(e);
    changed(&before, &e);
  } else {
    by_key_.insert(index_.emplace(std::make_pair(pos, e.key), meta_of(e)).first);
    changed(nullptr, &e);
  }
  return true;
}

bool tier_store::erase_tiers(std::string_view key, const version& upto) {
  auto r = l3_->erase(key);
  if (!r) {
    last_error_ = r.err();
    return false;
  }
  if (!l4_)
    return true;
  auto held = l4_->held_version(key);
  if (held && *held && **held == upto) {
    // The archive holds the value of L3's floor (one write): it goes once L3
    // committed the erase (drop_superseded), as for a newer write. Its erase
    // commits at once and L3's waits in its batch, so erasing it first left,
    // after a kill -9 in between, L3's floor with no copy below it (the key
    // read nil after the restart; rotate_cluster_test, session 12). Only
    // copies up to that version go (the key may come back meanwhile).
    l4_superseded_.emplace_back(std::string(key), upto.node == UINT32_MAX
                                                      ? version{upto.hlc + 1, 0}
                                                      : version{upto.hlc, upto.node + 1});
    return true;
  }
  // An older copy (superseded by L3's newer record, a tombstone maybe) goes
  // first: L3's record must outlive it, or a kill -9 between the two would
  // bring the older value back.
  if (auto r4 = l4_->erase(key); !r4) {
    last_error_ = r4.err();
    return false;
  }
  return true;
}

bool tier_store::erase(std::string_view key) {
  auto it = find_key(key);
  if (it == index_.end())
    return false;
  if (cache_)
    (void)cache_->erase(key);
  if (worker_.joinable()) {
    change c;
    c.e.key = std::string(key);
    c.e.ver = it->second.ver; // what the archive's copy may be, at most
    c.erase = true;
    c.seq = ++next_seq_;
    if (wal_)
      wal_->append_erase(c.e.key, c.seq, c.e.ver);
    overlay_[c.e.key] = shadow{entry{}, true, c.seq};
    enqueue(std::move(c));
  } else if (!erase_tiers(key, it->second.ver)) {
    return false;
  } else {
    drop_superseded(false); // at once when L3 has nothing pending
  }
  entry before;
  before.key = std::string(key);
  before.ver = it->second.ver;
  before.flags = it->second.flags;
  changed(&before, nullptr);
  by_key_.erase(it);
  index_.erase(it);
  return true;
}

void tier_store::for_each(const visitor& f) const {
  for (auto& [k, m] : index_)
    if (auto e = read(k.second, m.ver))
      f(*e);
}

void tier_store::for_each_in_buckets(uint16_t first, uint16_t last, const visitor& f) const {
  auto it = index_.lower_bound({uint64_t{first} << 48, std::string()});
  for (; it != index_.end() && bucket_of(it->first.first) <= last; ++it)
    if (auto e = read(it->first.second, it->second.ver))
      f(*e);
}

void tier_store::for_each_key_from(uint64_t from, const key_visitor& f) const {
  for_each_key_sized_from(from, [&](uint64_t pos, const entry& m, uint64_t) { return f(pos, m); });
}

void tier_store::for_each_key_sized_from(uint64_t from, const sized_key_visitor& f) const {
  entry m;
  for (auto it = index_.lower_bound({from, std::string()}); it != index_.end(); ++it) {
    m.key = it->first.second;
    m.ver = it->second.ver;
    m.flags = it->second.flags;
    m.expiry_ms = it->second.expiry_ms;
    cap_age(m);
    if (!f(it->first.first, m, m.is_tombstone() ? 0 : it->second.value_bytes))
      return;
  }
}

status tier_store::tick(size_t sweep_budget) {
  if (worker_.joinable()) {
    // The worker commits and sweeps on its own; drop what it has committed
    // from the overlay (reads of it go to L3's committed state now).
    uint64_t committed;
    std::optional<error> err;
    {
      std::lock_guard<std::mutex> lk(q_mu_);
      committed = committed_seq_;
      err.swap(worker_error_);
      if (!queue_.empty()) // below wake_at: apply() did not wake the worker
        q_cv_.notify_one();
    }
    // L3 commits about once a second: walk the overlay only after a commit.
    if (committed != overlay_dropped_seq_) {
      overlay_dropped_seq_ = committed;
      for (auto it = overlay_.begin(); it != overlay_.end();)
        it = it->second.seq <= committed ? overlay_.erase(it) : std::next(it);
    }
    if (err)
      return *err;
    return {};
  }
  uint64_t now = clk_.now_ms();
  if (auto s = l3_->maybe_flush(now); !s)
    return s;
  drop_superseded(false);
  if (sweep_budget > 0)
    l3_->sweep_expired(now, sweep_budget);
  if (l4_) {
    if (auto s = l4_->maybe_flush(now); !s)
      return s;
    if (sweep_budget > 0)
      l4_->sweep_expired(now, sweep_budget);
  }
  return {};
}

status tier_store::flush() {
  if (worker_.joinable()) {
    std::unique_lock<std::mutex> lk(q_mu_);
    uint64_t want = ++flush_req_;
    q_cv_.notify_all();
    done_cv_.wait(lk, [&] { return flush_done_ >= want; });
    if (worker_error_) {
      error e = *worker_error_;
      worker_error_.reset();
      return e;
    }
    return {};
  }
  if (auto s = l3_->flush(); !s)
    return s;
  drop_superseded(true);
  return l4_ ? l4_->flush() : status{};
}

result<uint64_t> tier_store::rewrite_for_erase(const std::function<bool(std::string_view)>& erased,
                                               bool retire_dictionaries) {
  if (auto st = flush(); !st)
    return st;
  auto gl = hold_gate();
  std::lock_guard<std::mutex> lk(tiers_mu_);
  if (auto st = l3_->compact_rewrite(); !st)
    return error{st.err().code, "L3 rewrite: " + st.message()};
  uint64_t segments = 0;
  if (l4_) {
    if (auto st = l4_->flush(); !st)
      return st;
    if (l4_reseal_job_) { // the erasure first; the re-seal plans what is left again
      l4_->abort_compaction();
      l4_reseal_job_ = false;
    }
    preempt_jobs("an erasure"); // a scheduled compaction too
    auto p = l4_->begin_erase_rewrite(erased, retire_dictionaries);
    while (p && !p->done)
      p = l4_->compaction_step(4u << 20);
    if (!p) {
      l4_->abort_compaction();
      return error{p.err().code, "L4 rewrite: " + p.err().to_string()};
    }
    segments = p->segments_done;
    if (auto st = l4_->compact_index(); !st)
      return error{st.err().code, "L4 index rewrite: " + st.message()};
  }
  if (wal_) // the erased keys' records leave the log: LMDB has everything (flush above)
    if (auto st = rotate_log(); !st)
      return st.err();
  return segments;
}

status tier_store::rotate_log() {
  uint64_t committed;
  {
    std::lock_guard<std::mutex> ql(q_mu_);
    committed = committed_seq_;
  }
  if (auto st = wal_->rotate(committed); !st)
    return error{st.code(), "write-ahead log rotation: " + st.message()};
  return {};
}

void tier_store::preempt_jobs(const char* why) {
  if (!gate_ || !l4_)
    return;
  l4_->abort_compaction(); // the compactor's job, if one runs (it is between steps)
  ++gate_->generation;
  gate_->reason = why;
}

status tier_store::rotate_keys(std::shared_ptr<const crypto::keyring> keys) {
  if (auto st = flush(); !st)
    return st;
  auto gl = hold_gate();
  std::lock_guard<std::mutex> lk(tiers_mu_);
  if (l4_) {
    if (l4_reseal_job_) { // a rotation again: its job restarts with the new active key
      l4_->abort_compaction();
      l4_reseal_job_ = false;
    }
    preempt_jobs("a key rotation's re-seal");
    if (gate_)
      gate_->busy = true; // until reseal_step finished the L4 pass
    if (auto st = l4_->rotate_keys(keys); !st)
      return error{st.err().code, "L4: " + st.message()};
  }
  if (auto st = l3_->rotate_keys(keys); !st)
    return error{st.err().code, "L3: " + st.message()};
  if (wal_) {
    // Later records are sealed with the new key. The segments sealed with
    // the older ones go at once: they hold only changes LMDB committed (the
    // flush above; nothing was appended since), and a restart after the
    // re-seal may come with the new key alone.
    if (auto st = wal_->set_keys(std::move(keys)); !st)
      return error{st.code(), "write-ahead log: " + st.message()};
    if (auto st = rotate_log(); !st)
      return st;
  }
  reseal_ = reseal_report{};
  return {};
}

result<tier_store::reseal_report> tier_store::reseal_step(size_t l3_records, uint64_t l4_bytes) {
  auto gl = hold_gate();
  std::lock_guard<std::mutex> lk(tiers_mu_);
  auto r = reseal_slice(l3_records, l4_bytes);
  if (gate_ && (!r || r->done))
    gate_->busy = false; // the compactor may start jobs again
  return r;
}

result<tier_store::reseal_report> tier_store::reseal_slice(size_t l3_records, uint64_t l4_bytes) {
  if (!reseal_)
    return error{errc::invalid_argument, "no key rotation was started"};
  auto& r = *reseal_;
  if (r.done)
    return r;
  if (!r.l3.done) {
    auto p = l3_->reseal_step(l3_records);
    if (!p)
      return error{p.err().code, "L3: " + p.err().to_string()};
    r.l3 = *p;
  } else if (l4_ && !r.l4.done) {
    // A job KURA.ERASE aborted (rewrite_for_erase) is planned again: it takes
    // the segments still sealed with an older key.
    auto p = l4_reseal_job_ ? l4_->compaction_step(l4_bytes) : l4_->begin_reseal();
    if (!p) {
      if (l4_reseal_job_)
        l4_->abort_compaction();
      l4_reseal_job_ = false;
      return error{p.err().code, "L4: " + p.err().to_string()};
    }
    l4_reseal_job_ = !p->done;
    r.l4 = *p;
    r.l4_started = true;
    if (p->done)
      if (auto ids = l4_->drop_old_secrets(); !ids)
        return error{ids.err().code, "L4: " + ids.err().to_string()};
  }
  r.done = r.l3.done && (!l4_ || r.l4.done);
  return r;
}

bool tier_store::archived(std::string_view key) const {
  if (!l4_)
    return false;
  std::lock_guard<std::mutex> lk(tiers_mu_);
  auto v = l4_->held_version(key);
  return v && *v;
}

// -- background commits ------------------------------------------------------------

void tier_store::start_worker() {
  worker_ = std::thread([this] { run_worker(); });
}

void tier_store::enqueue(change c) {
  std::unique_lock<std::mutex> lk(q_mu_);
  if (queue_.size() >= max_queue) // the disk is that far behind: wait for room
    room_cv_.wait(lk, [&] { return queue_.size() < max_queue / 2; });
  queue_.push_back(std::move(c));
  // Not one wake-up per write: the worker takes what is queued when the queue
  // reaches wake_at, at the owner's next tick(), or on its own timeout.
  if (queue_.size() == wake_at)
    q_cv_.notify_one();
}

tier_store::worker_stats tier_store::stats_of_worker() const {
  std::lock_guard<std::mutex> lk(q_mu_);
  return wstats_;
}

void tier_store::run_worker() {
  // Applies in chunks, so a reader that missed the overlay waits for at most
  // one chunk (or one commit, when a chunk fills L3's batch).
  constexpr size_t chunk = 64;
  std::vector<change> batch;
  uint64_t next_sweep = 0;
  for (;;) {
    uint64_t want_flush = 0;
    bool stopping = false, asked = false;
    uint64_t wait_ms = 1000; // the sweep's period
    {
      std::lock_guard<std::mutex> tl(tiers_mu_); // (never held with q_mu_)
      if (auto due = l3_->flush_due_in(clk_.now_ms()))
        wait_ms = std::max<uint64_t>(1, std::min<uint64_t>(*due, wait_ms));
    }
    {
      std::unique_lock<std::mutex> lk(q_mu_);
      q_cv_.wait_for(lk, std::chrono::milliseconds(wait_ms),
                     [&] { return !queue_.empty() || stop_ || flush_req_ != flush_done_; });
      batch.swap(queue_);
      want_flush = flush_req_;
      stopping = stop_;
      asked = stopping || flush_done_ < want_flush;
    }
    room_cv_.notify_all();
    auto t0 = std::chrono::steady_clock::now();
    std::optional<error> err;
    auto note = [&](const status& st) {
      if (!st && !err)
        err = st.err();
    };
    // Everything applied is committed whenever L3's batch is empty (a commit
    // inside apply, or the flush below).
    uint64_t committed = 0;
    for (size_t i = 0; i < batch.size(); i += chunk) {
      size_t end = std::min(batch.size(), i + chunk);
      {
        std::lock_guard<std::mutex> tl(tiers_mu_);
        for (size_t j = i; j < end; ++j) {
          auto& c = batch[j];
          bool ok = true;
          if (c.restore) {
            auto r = l4_->apply(c.e, clk_.now_ms());
            if (!r)
              last_error_ = r.err();
            ok = r.ok();
          } else {
            ok = c.erase ? erase_tiers(c.e.key, c.e.ver) : apply_tiers(c.e, c.known);
          }
          if (!ok && last_error_ && !err)
            err = *last_error_;
          // the next L3 commit holds every change up to here (one that
          // apply/erase made itself recorded the previous mark: a replay
          // applies this change again, which changes nothing)
          if (wal_)
            l3_->set_log_mark(c.seq);
          if (l3_->pending() == 0)
            committed = c.seq;
        }
      }
      std::lock_guard<std::mutex> lk(q_mu_);
      applied_seq_ = batch[end - 1].seq;
      committed_seq_ = std::max(committed_seq_, committed);
      wstats_.applied += end - i;
    }
    {
      std::lock_guard<std::mutex> tl(tiers_mu_);
      uint64_t now = clk_.now_ms();
      note(l3_->maybe_flush(now));
      if (l4_)
        note(l4_->maybe_flush(now));
      if (now >= next_sweep) {
        next_sweep = now + 1000;
        l3_->sweep_expired(now, 256);
        if (l4_ && !gate_) // else the L4 compactor sweeps, under the gate
          l4_->sweep_expired(now, 256);
      }
      drop_superseded(asked);
      if (asked) {
        note(l3_->flush());
        if (l4_)
          note(l4_->flush());
      }
      l3_pending_ = l3_->pending();
    }
    if (l3_pending_ == 0) {
      std::lock_guard<std::mutex> lk(q_mu_);
      committed_seq_ = applied_seq_;
    }
    if (wal_) { // segments whose changes LMDB committed leave the disk
      std::lock_guard<std::mutex> lk(q_mu_);
      wal_->retire(committed_seq_);
    }
    uint64_t us = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0)
            .count());
    batch.clear();
    {
      std::lock_guard<std::mutex> lk(q_mu_);
      ++wstats_.rounds;
      wstats_.busy_us += us;
      if (flush_done_ < want_flush)
        flush_done_ = want_flush;
      if (err)
        worker_error_ = err;
      if (stopping && queue_.empty())
        break;
    }
    done_cv_.notify_all();
  }
  done_cv_.notify_all();
}

} // namespace kura::gossip
