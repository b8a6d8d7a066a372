#include "tiers/tier_chain.hpp"

#include "tiers/l3_lmdb.hpp"

namespace kura {

namespace {

enum tier_index : size_t { i_l1 = 0, i_l2 = 1, i_l3 = 2, i_l4 = 3 };

} // namespace

tier_chain::tier_chain(tier_chain_config cfg, const clock& clk, std::unique_ptr<tier> l3,
                       std::unique_ptr<tier> l4)
    : cfg_(std::move(cfg)), clk_(clk), mem_(std::make_unique<memory_cache>(cfg_.memory)),
      l3_(std::move(l3)), l4_(std::move(l4)) {
  // L3 keeps every live entry; what it evicts for size moves down to the
  // archive instead of disappearing. Without an L3 the archive is fed by
  // memory evictions (a memory + archive chain).
  tier* feeder = l3_ ? l3_.get() : nullptr;
  if (feeder && l4_) {
    feeder->set_eviction_listener(
        [this](entry&& e) {
          if (e.expired(clk_.now_ms()))
            return;
          std::string key = e.key;
          if (l4_->put(std::move(e), clk_.now_ms()).ok())
            superseded_.forget(key); // the archive holds the new version now
        },
        [this] { return l4_->flush(); });
  }
}

tier_chain::~tier_chain() {
  // L3's final commit may evict into the archive: commit it while the archive
  // is still there, then detach, then close L3 before L4.
  if (l3_) {
    (void)l3_->flush();
    if (l4_)
      (void)drop_superseded();
    l3_->set_eviction_listener(nullptr);
  }
  l3_.reset();
  l4_.reset();
}

result<std::optional<entry>> tier_chain::get(std::string_view key) {
  const uint64_t now = clk_.now_ms();
  const uint64_t t0 = clk_.mono_ns();
  // Memory first. locate() is a hash probe without side effects; it tells which
  // of L1/L2 answered so the hit is booked on the right tier.
  auto region = mem_->locate(key);
  auto m = mem_->get(key, now);
  if (!m.ok())
    return m;
  if (m->has_value()) {
    size_t i = region == memory_region::l1 ? i_l1 : i_l2;
    ++hits_[i];
    lat_[i].record(clk_.mono_ns() - t0);
    return m;
  }
  ++misses_[i_l1];
  ++misses_[i_l2];
  // L3, then L4: the first tier that has it answers, and the entry is promoted.
  if (l3_) {
    auto r = l3_->get(key, now);
    if (!r.ok())
      return r;
    if (r->has_value()) {
      ++hits_[i_l3];
      (void)mem_->put(**r, now);
      lat_[i_l3].record(clk_.mono_ns() - t0);
      return r;
    }
    ++misses_[i_l3];
  }
  // A key whose archive copy a write superseded is not read from the
  // archive (L3's record of it expired or went meanwhile: the copy is older).
  if (l4_ && !superseded_.waiting(key)) {
    auto r = l4_->get(key, now);
    if (!r.ok())
      return r;
    if (r->has_value()) {
      ++hits_[i_l4];
      (void)mem_->put(**r, now);
      // Back into L3 (it makes room by pushing its coldest down); the archive
      // copy is dropped once L3 committed it, so a key lives in exactly one
      // persistent tier.
      if (l3_ && l3_->put(**r, now).ok()) {
        superseded_.add(key, (*r)->ver);
        (void)drop_superseded();
      }
      lat_[i_l4].record(clk_.mono_ns() - t0);
      return r;
    }
    ++misses_[i_l4];
  }
  // A miss everywhere still counts toward the key's frequency, so a key that is
  // read before it is written competes fairly for admission once it is.
  mem_->record_miss(key);
  return std::optional<entry>{};
}

status tier_chain::put(entry e) {
  if (auto st = cfg_.lim.check(e); !st.ok())
    return st;
  const uint64_t now = clk_.now_ms();
  // Persistent tier first: if L3 refuses (out of space, I/O), memory is not
  // changed and the caller sees the error.
  if (l3_) {
    if (auto st = l3_->put(e, now); !st.ok())
      return st;
    // A key lives in one persistent tier: the archive's older copy goes, or
    // it would come back once the new value expires or is erased from L3.
    // But only once L3 committed this write (tiers/superseded.hpp).
    if (l4_) {
      auto held = l4_->held_version(e.key);
      if (!held.ok())
        return held.to_status();
      if (held->has_value()) {
        superseded_.add(e.key, e.ver);
        (void)drop_superseded(); // tick() and flush() report its errors
      }
    }
  }
  return mem_->put(std::move(e), now);
}

result<bool> tier_chain::erase(std::string_view key) {
  bool any = false;
  auto m = mem_->erase(key);
  if (!m.ok())
    return m;
  any |= *m;
  superseded_.forget(key);
  for (tier* t : {l3_.get(), l4_.get()}) {
    if (!t)
      continue;
    auto r = t->erase(key);
    if (!r.ok())
      return r;
    any |= *r;
  }
  return any;
}

size_t tier_chain::sweep_expired(size_t budget) {
  const uint64_t now = clk_.now_ms();
  size_t done = mem_->sweep_expired(now, budget);
  for (tier* t : {l3_.get(), l4_.get()}) {
    if (t && done < budget)
      done += t->sweep_expired(now, budget - done);
  }
  return done;
}

const char* tier_chain::locate(std::string_view key) {
  switch (mem_->locate(key)) {
  case memory_region::l1:
    return "l1";
  case memory_region::l2:
    return "l2";
  case memory_region::none:
    break;
  }
  const uint64_t now = clk_.now_ms();
  if (l3_) {
    auto r = l3_->get(key, now, false);
    if (r.ok() && r->has_value())
      return "l3";
  }
  if (l4_) {
    auto r = l4_->get(key, now, false);
    if (r.ok() && r->has_value())
      return "l4";
  }
  return nullptr;
}

status tier_chain::clear() {
  if (auto st = mem_->clear(); !st.ok())
    return st;
  superseded_.clear();
  for (tier* t : {l3_.get(), l4_.get()}) {
    if (t) {
      if (auto st = t->clear(); !st.ok())
        return st;
    }
  }
  return {};
}

status tier_chain::tick() {
  const uint64_t now = clk_.now_ms();
  for (tier* t : {l3_.get(), l4_.get()}) {
    if (t) {
      if (auto st = t->maybe_flush(now); !st.ok())
        return st;
    }
  }
  return drop_superseded();
}

status tier_chain::flush() {
  // L3 first: committing its batch can evict into the archive's open block.
  for (tier* t : {l3_.get(), l4_.get()}) {
    if (t) {
      if (auto st = t->flush(); !st.ok())
        return st;
    }
  }
  return drop_superseded();
}

status tier_chain::drop_superseded() {
  if (superseded_.empty() || !l3_ || !l4_)
    return {};
  // an L3 that is not LMDB writes through (tests): nothing is pending there
  auto* batching = dynamic_cast<l3_lmdb*>(l3_.get());
  if (batching && batching->pending() != 0) {
    // Wait for L3's commit, unless the list grew long: then commit now.
    if (superseded_.size() < superseded_copies::max_waiting)
      return {};
    if (auto st = l3_->flush(); !st.ok())
      return st;
  }
  return superseded_.drop(*l4_);
}

std::vector<std::pair<std::string, tier_stats>> tier_chain::stats() const {
  std::vector<std::pair<std::string, tier_stats>> out;
  // The tiers count their own entries, bytes and evictions; the chain adds the
  // walk's view: which tier answered (hits), which was passed (misses), latency.
  auto with_walk = [&](tier_stats s, size_t i) {
    s.hits = hits_[i];
    s.misses = misses_[i];
    s.get_latency = lat_[i];
    return s;
  };
  out.emplace_back("l1", with_walk(mem_->l1_stats(), i_l1));
  out.emplace_back("l2", with_walk(mem_->l2_stats(), i_l2));
  if (l3_)
    out.emplace_back("l3", with_walk(l3_->stats(), i_l3));
  if (l4_)
    out.emplace_back("l4", with_walk(l4_->stats(), i_l4));
  return out;
}

} // namespace kura
