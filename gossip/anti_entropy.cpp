#include "gossip/anti_entropy.hpp"

#include <algorithm>
#include <unordered_map>

namespace kura::gossip::anti_entropy {

namespace {

uint16_t bucket16(uint64_t pos) {
  return static_cast<uint16_t>(pos >> 48);
}

} // namespace

std::vector<uint64_t> level1(const replica_store& s, const position_fn& pos, const key_filter& f) {
  std::vector<uint64_t> d(fanout, 0);
  s.for_each([&](const entry& e) {
    uint64_t p = pos(e.key);
    if (f(p))
      d[p >> 56] ^= replica_store::item_digest(e);
  });
  return d;
}

std::vector<uint64_t> level2(const replica_store& s, const position_fn& pos, const key_filter& f,
                             const std::vector<uint16_t>& prefixes) {
  std::vector<uint64_t> d(fanout * prefixes.size(), 0);
  std::vector<int> slot(fanout, -1);
  for (size_t i = 0; i < prefixes.size(); ++i)
    if (prefixes[i] < fanout)
      slot[prefixes[i]] = static_cast<int>(i);
  s.for_each([&](const entry& e) {
    uint64_t p = pos(e.key);
    int sl = slot[p >> 56];
    if (sl >= 0 && f(p))
      d[static_cast<size_t>(sl) * fanout + ((p >> 48) & 0xff)] ^= replica_store::item_digest(e);
  });
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

std::vector<key_version> list_keys(const replica_store& s, const position_fn& pos,
                                   const key_filter& f, const std::vector<uint16_t>& buckets) {
  std::vector<key_version> out;
  std::vector<uint16_t> sorted = buckets;
  std::sort(sorted.begin(), sorted.end());
  s.for_each([&](const entry& e) {
    uint64_t p = pos(e.key);
    if (std::binary_search(sorted.begin(), sorted.end(), bucket16(p)) && f(p))
      out.push_back(key_version{e.key, e.ver.hlc, e.ver.node});
  });
  std::sort(out.begin(), out.end(),
            [](const key_version& a, const key_version& b) { return a.key < b.key; });
  return out;
}

repair_plan compare(const replica_store& s, const position_fn& pos, const key_filter& f,
                    const std::vector<uint16_t>& buckets, const std::vector<key_version>& theirs) {
  repair_plan plan;
  std::unordered_map<std::string, version> their_ver;
  for (auto& kv : theirs)
    their_ver[kv.key] = kv.ver();
  // Keys only listed by us, or newer here: push. Shared keys newer there: want.
  for (auto& mine : list_keys(s, pos, f, buckets)) {
    auto it = their_ver.find(mine.key);
    if (it == their_ver.end() || it->second < mine.ver()) {
      if (auto* e = s.get(mine.key))
        plan.push.push_back(*e);
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
    if (std::binary_search(sorted.begin(), sorted.end(), bucket16(pos(k))))
      plan.want.push_back(k);
  }
  std::sort(plan.want.begin(), plan.want.end());
  return plan;
}

} // namespace kura::gossip::anti_entropy
