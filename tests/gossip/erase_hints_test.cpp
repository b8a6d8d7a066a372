// KURA.ERASE's hook in the hint queues (gossip/hints.hpp): an erasure's
// tombstone replaces older hinted copies of the key for every target, a newer
// hint stays, and the collect step drops the tombstone hints.
#include "gossip/hints.hpp"

#include <doctest/doctest.h>

#include <algorithm>

using namespace kura;
using namespace kura::gossip;

namespace {

entry make(const std::string& key, uint64_t hlc, bool tomb = false) {
  entry e;
  e.key = key;
  e.ver = version{hlc, 1};
  if (tomb)
    e.flags = entry_flags::tombstone;
  else
    e.value = "value-" + std::to_string(hlc);
  return e;
}

} // namespace

TEST_CASE("an erasure's tombstone supersedes older hints, then collect drops them") {
  hint_store h;
  h.add(1, make("k", 10));
  h.add(2, make("k", 12));
  h.add(3, make("k", 30)); // written after the erasure: stays
  h.add(1, make("other", 11));
  auto tomb = make("k", 20, true);
  CHECK(h.supersede("k", tomb) == 2);
  for (node_id t : {1u, 2u}) {
    auto hs = h.peek(t, 10);
    bool found = false;
    for (auto& e : hs)
      if (e.key == "k") {
        found = true;
        CHECK(e.is_tombstone());
        CHECK(e.value.empty());
        CHECK(e.ver == tomb.ver);
      }
    CHECK(found);
  }
  CHECK(h.peek(3, 10).front().ver.hlc == 30);
  auto keys = h.keys();
  CHECK(std::count(keys.begin(), keys.end(), "k") == 3);
  CHECK(h.drop("k", tomb.ver) == 2); // the tombstones; the newer write stays
  CHECK(h.size() == 2);
  CHECK(h.size(2) == 0);
  CHECK(h.peek(3, 10).front().ver.hlc == 30);
  CHECK(h.peek(1, 10).front().key == "other");
}
