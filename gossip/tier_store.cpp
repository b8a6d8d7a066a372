#include "gossip/tier_store.hpp"

namespace kura::gossip {

tier_store::tier_store(std::unique_ptr<l3_lmdb> l3, std::shared_ptr<archive::archive> l4,
                       const clock& clk, uint64_t ring_seed)
    : replica_store(ring_seed), l3_(std::move(l3)), l4_(std::move(l4)), clk_(clk) {
  if (l4_) {
    // As in the tier chain: L3's victims go down, and the archive commits them
    // before L3 commits their removal.
    l3_->set_eviction_listener(
        [this](entry&& e) {
          if (!e.expired(clk_.now_ms()))
            (void)l4_->put(std::move(e), clk_.now_ms());
        },
        [this] { return l4_->flush(); });
  }
}

tier_store::~tier_store() {
  if (l3_) {
    (void)l3_->flush();
    l3_->set_eviction_listener(nullptr);
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

result<std::unique_ptr<tier_store>> tier_store::open(l3_config l3,
                                                     std::shared_ptr<archive::archive> l4,
                                                     const clock& clk, uint64_t ring_seed) {
  l3.tombstones = true;
  auto t3 = l3_lmdb::open(std::move(l3), clk);
  if (!t3)
    return t3.err();
  std::unique_ptr<tier_store> s(new tier_store(std::move(*t3), std::move(l4), clk, ring_seed));
  if (auto st = s->build_index(); !st)
    return st.err();
  return s;
}

status tier_store::build_index() {
  // L3 first: every key L3 ever held is there (values, tombstones, floors).
  std::string after;
  for (;;) {
    auto r = l3_->scan(after, 4096, [&](const entry& e) {
      auto& m = index_[{position(e.key), e.key}];
      m = meta{e.ver, e.flags, e.expiry_ms};
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
        auto [it, fresh] =
            index_.try_emplace({position(ki.key), ki.key}, meta{ki.ver, ki.flags, ki.expiry_ms});
        if (!fresh && !(ki.ver < it->second.ver))
          it->second = meta{ki.ver, ki.flags, ki.expiry_ms};
      });
      if (!r)
        return r.err();
      if (!r->has_value())
        break;
      after = std::move(**r);
    }
  }
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

std::optional<entry> tier_store::read(std::string_view key, const version& want) const {
  auto r = l3_->get_versioned(key);
  if (!r) {
    last_error_ = r.err();
    return std::nullopt;
  }
  if (*r && !(*r)->is_tombstone())
    return std::move(**r);
  // A tombstone floor of a demoted entry, or nothing in L3: the archive's copy
  // when it has the version we hold (expired copies read as absent there).
  if (l4_) {
    auto held = l4_->held_version(key);
    if (held && *held && **held == want && (!*r || (*r)->ver == want)) {
      auto got = l4_->get(key, clk_.now_ms(), false);
      if (got && *got)
        return std::move(**got);
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
  auto it = index_.find({position(key), std::string(key)});
  if (it == index_.end())
    return std::nullopt;
  return read(key, it->second.ver);
}

bool tier_store::apply(const entry& e) {
  auto k = std::make_pair(position(e.key), e.key);
  auto it = index_.find(k);
  if (it != index_.end() && !(it->second.ver < e.ver))
    return false; // the index covers L3 and L4: no disk read
  auto r = l3_->apply(e, clk_.now_ms());
  if (!r) {
    last_error_ = r.err();
    return false;
  }
  if (!*r)
    return false;
  if (it != index_.end() && l4_) {
    // The older copy in the archive is superseded: one persistent tier per key.
    auto held = l4_->held_version(e.key);
    if (held && *held && **held < e.ver)
      (void)l4_->erase(e.key);
  }
  entry before;
  if (it != index_.end()) {
    before.key = e.key;
    before.ver = it->second.ver;
    before.flags = it->second.flags;
    it->second = meta{e.ver, e.flags, e.is_tombstone() ? 0 : e.expiry_ms};
    changed(&before, &e);
  } else {
    index_.emplace(std::move(k), meta{e.ver, e.flags, e.is_tombstone() ? 0 : e.expiry_ms});
    changed(nullptr, &e);
  }
  return true;
}

bool tier_store::erase(std::string_view key) {
  auto it = index_.find({position(key), std::string(key)});
  if (it == index_.end())
    return false;
  auto r = l3_->erase(key);
  if (!r) {
    last_error_ = r.err();
    return false;
  }
  if (l4_)
    if (auto r4 = l4_->erase(key); !r4) {
      last_error_ = r4.err();
      return false;
    }
  entry before;
  before.key = std::string(key);
  before.ver = it->second.ver;
  before.flags = it->second.flags;
  changed(&before, nullptr);
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
  entry m;
  for (auto it = index_.lower_bound({from, std::string()}); it != index_.end(); ++it) {
    m.key = it->first.second;
    m.ver = it->second.ver;
    m.flags = it->second.flags;
    m.expiry_ms = it->second.expiry_ms;
    if (!f(it->first.first, m))
      return;
  }
}

status tier_store::tick(size_t sweep_budget) {
  uint64_t now = clk_.now_ms();
  if (auto s = l3_->maybe_flush(now); !s)
    return s;
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
  if (auto s = l3_->flush(); !s)
    return s;
  return l4_ ? l4_->flush() : status{};
}

} // namespace kura::gossip
