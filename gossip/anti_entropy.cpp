#include "gossip/anti_entropy.hpp"

#include "tiers/slot.hpp"

#include <algorithm>
#include <unordered_map>

namespace kura::gossip::anti_entropy {

namespace {

bool takes_part(const slot_mask& f, uint16_t slot) {
  return f.empty() || f[slot];
}

bool bucket_takes_part(const slot_mask& f, uint16_t bucket) {
  return takes_part(f, static_cast<uint16_t>(bucket >> 2));
}

} // namespace

std::vector<uint64_t> level1(const replica_store& s, const slot_mask& f) {
  // A level-1 bucket (top 8 bits of the position) holds 64 whole slots.
  // Empty slots have a zero digest: only occupied ones are visited.
  std::vector<uint64_t> d(fanout, 0);
  s.for_each_occupied_slot([&](uint16_t slot) {
    if (takes_part(f, slot))
      d[slot >> 6] ^= s.slot_digest(slot);
  });
  return d;
}

std::vector<uint64_t> level2(const replica_store& s, const slot_mask& f,
                             const std::vector<uint16_t>& prefixes) {
  std::vector<uint64_t> d(fanout * prefixes.size(), 0);
  for (size_t i = 0; i < prefixes.size(); ++i) {
    if (prefixes[i] >= fanout)
      continue;
    for (size_t j = 0; j < fanout; ++j) {
      auto b = static_cast<uint16_t>((prefixes[i] << 8) | j);
      if (bucket_takes_part(f, b))
        d[i * fanout + j] = s.bucket_digest(b);
    }
  }
  return d;
}

std::vector<uint64_t> children(const replica_store& s, const slot_mask& f, unsigned bits,
                               const std::vector<uint16_t>& prefixes) {
  if (bits == 0) {
    // The 16 4-bit prefixes hold 1024 slots each: visit occupied slots only.
    std::vector<uint64_t> d(tree_fanout, 0);
    s.for_each_occupied_slot([&](uint16_t slot) {
      if (takes_part(f, slot))
        d[slot >> 10] ^= s.slot_digest(slot);
    });
    return d;
  }
  std::vector<uint64_t> d(tree_fanout * prefixes.size(), 0);
  const unsigned child_bits = bits + tree_bits;
  for (size_t i = 0; i < prefixes.size(); ++i) {
    if (bits > 12 || prefixes[i] >= (1u << bits))
      continue;
    for (size_t j = 0; j < tree_fanout; ++j) {
      auto child = static_cast<uint32_t>((prefixes[i] << tree_bits) | j);
      uint64_t x = 0;
      if (child_bits == 16) {
        auto b = static_cast<uint16_t>(child);
        if (bucket_takes_part(f, b))
          x = s.bucket_digest(b);
      } else {
        // A child of `child_bits` bits covers 2^(14 - child_bits) whole slots.
        const unsigned span = 1u << (14 - child_bits);
        for (uint32_t sl = child * span; sl < (child + 1) * span; ++sl)
          if (takes_part(f, static_cast<uint16_t>(sl)))
            x ^= s.slot_digest(static_cast<uint16_t>(sl));
      }
      d[i * tree_fanout + j] = x;
    }
  }
  return d;
}

std::vector<size_t> differing(const std::vector<uint64_t>& a, const std::vector<uint64_t>& b) {
  std::vector<size_t> out;
  size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i)
    if (a[i] != b[i])
      out.push_back(i);
  return out;
}

std::vector<key_version> list_keys(const replica_store& s, const slot_mask& f,
                                   const std::vector<uint16_t>& buckets) {
  std::vector<key_version> out;
  std::vector<uint16_t> sorted = buckets;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  // From the index only (key and version): listing must not read values from
  // L3/L4 (a round over a joiner's or a wiped replica's buckets lists
  // hundreds of thousands of keys on the multiplexer thread).
  for (uint16_t b : sorted)
    if (bucket_takes_part(f, b))
      s.for_each_key_from(uint64_t{b} << 48, [&](uint64_t pos, const entry& meta) {
        if (replica_store::bucket_of(pos) != b)
          return false;
        out.push_back(key_version{meta.key, meta.ver.hlc, meta.ver.node});
        return true;
      });
  std::sort(out.begin(), out.end(),
            [](const key_version& a, const key_version& b) { return a.key < b.key; });
  return out;
}

repair_plan compare(const replica_store& s, const slot_mask& f,
                    const std::vector<uint16_t>& buckets, const std::vector<key_version>& theirs) {
  repair_plan plan;
  std::unordered_map<std::string, version> their_ver;
  for (auto& kv : theirs)
    their_ver[kv.key] = kv.ver();
  // Keys only listed by us, or newer here: push. Shared keys newer there: want.
  for (auto& mine : list_keys(s, f, buckets)) {
    auto it = their_ver.find(mine.key);
    if (it == their_ver.end() || it->second < mine.ver()) {
      if (auto e = s.get(mine.key))
        plan.push.push_back(std::move(*e));
    }
    if (it != their_ver.end()) {
      if (mine.ver() < it->second)
        plan.want.push_back(mine.key);
      their_ver.erase(it);
    }
  }
  // Keys only they listed: want (if they fall in the buckets we compared).
  std::vector<uint16_t> sorted = buckets;
  std::sort(sorted.begin(), sorted.end());
  for (auto& [k, v] : their_ver) {
    uint16_t b = replica_store::bucket_of(s.position(k));
    if (std::binary_search(sorted.begin(), sorted.end(), b) && bucket_takes_part(f, b))
      plan.want.push_back(k);
  }
  std::sort(plan.want.begin(), plan.want.end());
  return plan;
}

} // namespace kura::gossip::anti_entropy
