#include "gossip/store.hpp"

#include "tiers/hash.hpp"

namespace kura::gossip {

// -- replica_store ----------------------------------------------------------------

replica_store::replica_store(uint64_t ring_seed)
    : buckets_(bucket_count, 0), slots_(bucket_count / 4, 0), counts_(bucket_count / 4, 0),
      occupied_(bucket_count / 4 / 64, 0) {
  cfg_.seed = ring_seed;
}

uint64_t replica_store::item_digest(const entry& e) {
  // Key and version only: a version names one write, and whether a replica
  // holds it as a value or (expired, demoted) as a tombstone floor of the
  // same version is its own representation, not a difference to repair.
  return mix64(hash64(e.key, 0x61652d6b6579ull) ^ mix64(e.ver.hlc) ^ (uint64_t{e.ver.node} << 8));
}

void replica_store::changed(const entry* before, const entry* after) {
  for (const entry* e : {before, after})
    if (e) {
      uint16_t b = bucket_of(position(e->key));
      uint64_t d = item_digest(*e);
      buckets_[b] ^= d;
      slots_[b >> 2] ^= d;
    }
  if (after) {
    note_version(after->ver);
    if (on_store)
      on_store(*after);
  }
  if ((before == nullptr) != (after == nullptr)) {
    const entry* e = before ? before : after;
    uint16_t slot = static_cast<uint16_t>(bucket_of(position(e->key)) >> 2);
    counts_[slot] += before ? uint32_t(-1) : 1u;
    if (counts_[slot] == 0)
      occupied_[slot / 64] &= ~(uint64_t{1} << (slot % 64));
    else
      occupied_[slot / 64] |= uint64_t{1} << (slot % 64);
  }
}

void replica_store::reset_digests() {
  buckets_.assign(bucket_count, 0);
}

// -- memory_store -------------------------------------------------------------------

bool memory_store::restore(const entry& e) {
  auto it = map_.find(std::make_pair(position(e.key), e.key));
  if (it == map_.end() || e.is_tombstone() || !it->second.is_tombstone() || it->second.ver != e.ver)
    return false;
  it->second = e; // the same version: the digests do not change
  return true;
}

bool memory_store::apply(const entry& e) {
  auto k = std::make_pair(position(e.key), e.key);
  auto it = map_.find(k);
  if (it == map_.end()) {
    map_.emplace(std::move(k), e);
    changed(nullptr, &e);
    return true;
  }
  if (e.ver > it->second.ver) {
    changed(&it->second, &e);
    it->second = e;
    return true;
  }
  return false;
}

std::optional<entry> memory_store::get(std::string_view key) const {
  auto it = map_.find(std::make_pair(position(key), std::string(key)));
  if (it == map_.end())
    return std::nullopt;
  return it->second;
}

bool memory_store::erase(std::string_view key) {
  auto it = map_.find(std::make_pair(position(key), std::string(key)));
  if (it == map_.end())
    return false;
  changed(&it->second, nullptr);
  map_.erase(it);
  return true;
}

void memory_store::for_each(const visitor& f) const {
  for (auto& [k, e] : map_)
    f(e);
}

void memory_store::for_each_in_buckets(uint16_t first, uint16_t last, const visitor& f) const {
  auto it = map_.lower_bound(std::make_pair(uint64_t{first} << 48, std::string()));
  for (; it != map_.end() && bucket_of(it->first.first) <= last; ++it)
    f(it->second);
}

void memory_store::for_each_key_from(uint64_t from, const key_visitor& f) const {
  for_each_key_sized_from(from, [&](uint64_t pos, const entry& m, uint64_t) { return f(pos, m); });
}

void memory_store::for_each_key_sized_from(uint64_t from, const sized_key_visitor& f) const {
  entry m;
  for (auto it = map_.lower_bound(std::make_pair(from, std::string())); it != map_.end(); ++it) {
    m.key = it->second.key;
    m.ver = it->second.ver;
    m.flags = it->second.flags;
    m.expiry_ms = it->second.expiry_ms;
    if (!f(it->first.first, m, it->second.value.size()))
      return;
  }
}

void memory_store::clear() {
  map_.clear();
  reset_digests();
}

memory_store memory_store::copy_of(const replica_store& s, uint64_t ring_seed) {
  memory_store out(ring_seed);
  s.for_each([&](const entry& e) { out.apply(e); });
  return out;
}

} // namespace kura::gossip
