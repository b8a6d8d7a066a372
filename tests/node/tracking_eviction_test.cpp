// Client tracking hears of keys the node loses for good (issue 11): an L3
// eviction when no L4 is below it, and an L4 segment dropped by its size
// budget (retention). Memory's own evictions do not count (L3 still holds
// the key). A real kura-node; pushes are awaited with a deadline.
#include "node/node_process.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <vector>

using namespace kura::test;

namespace {

/// `n` incompressible bytes (a fixed LCG: the archive cannot shrink them).
std::string noise(size_t n, uint64_t seed) {
  std::string s(n, '\0');
  uint64_t x = seed * 6364136223846793005ull + 1442695040888963407ull;
  for (auto& ch : s) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    ch = static_cast<char>(x >> 56);
  }
  return s;
}

/// Writes `count` keys "fill:<i>" of `bytes` each through `c`, pipelined.
void fill(client& c, int count, size_t bytes) {
  const int batch = 200;
  for (int i = 0; i < count; i += batch) {
    std::string out;
    int n = std::min(batch, count - i);
    for (int j = 0; j < n; ++j)
      out += client::multibulk({"SET", "fill:" + std::to_string(i + j), noise(bytes, i + j)});
    REQUIRE(c.send(out));
    for (int j = 0; j < n; ++j)
      REQUIRE(c.reply(30000) == std::optional<std::string>("+OK\r\n"));
  }
}

/// Waits up to `ms` for a push on `a` that names `key` or invalidates
/// every key (a null); replies in between are skipped.
bool invalidated(client& a, const std::string& key, int ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < deadline) {
    auto r = a.reply(500);
    if (!r)
      continue;
    if (r->rfind(">2\r\n$10\r\ninvalidate\r\n", 0) != 0)
      continue;
    if (r->find("\r\n" + key + "\r\n") != std::string::npos ||
        r->find("\r\n_\r\n") != std::string::npos)
      return true;
  }
  return false;
}

void track(client& a, const std::string& key) {
  REQUIRE(a.call({"HELLO", "3"}));
  REQUIRE(a.call({"CLIENT", "TRACKING", "on"}) == std::optional<std::string>("+OK\r\n"));
  REQUIRE(a.call({"SET", key, "tracked"}) == std::optional<std::string>("+OK\r\n"));
  REQUIRE(a.call({"GET", key}) == std::optional<std::string>("$7\r\ntracked\r\n"));
}

} // namespace

TEST_CASE("an L3 eviction without L4 invalidates the tracked key") {
  node_process n(
      {"--memory-bytes=4194304", "--kura.l3.max-bytes=200000", "--kura.archive.enabled=false"});
  REQUIRE_MESSAGE(n.ready, n.log());
  client a(n.port), b(n.port);
  track(a, "evicted");
  fill(b, 2000, 400); // 800 KB through a 200 KB L3: the oldest keys go
  CHECK_MESSAGE(invalidated(a, "evicted", 60000), n.log());
}

TEST_CASE("memory evictions alone do not invalidate: L3 still answers") {
  node_process n({"--memory-bytes=1048576", "--kura.archive.enabled=false"});
  REQUIRE_MESSAGE(n.ready, n.log());
  client a(n.port), b(n.port);
  track(a, "kept");
  fill(b, 3000, 1000); // 3 MB through 1 MB of memory, all of it in L3
  // the key is still readable: a change of value would need a write
  REQUIRE(b.call({"GET", "kept"}) == std::optional<std::string>("$7\r\ntracked\r\n"));
  REQUIRE(b.call({"SET", "kept", "changed"}) == std::optional<std::string>("+OK\r\n"));
  // the first invalidation a sees is the one of that write
  auto r = a.reply(30000);
  REQUIRE(r);
  CHECK(*r == ">2\r\n$10\r\ninvalidate\r\n*1\r\n$4\r\nkept\r\n");
}

TEST_CASE("an L4 segment dropped by the archive's size budget invalidates") {
  node_process n({"--memory-bytes=1048576", "--kura.l3.max-bytes=200000",
                  "--kura.archive.max-bytes=1048576", "--kura.archive.segment-bytes=65536",
                  "--kura.archive.compact-interval=0s", "--kura.archive.compact-rate=0"});
  REQUIRE_MESSAGE(n.ready, n.log());
  client a(n.port), b(n.port);
  track(a, "archived");
  fill(b, 3000, 1000); // 3 MB of noise: L3 -> L4 -> over L4's 1 MiB
  CHECK_MESSAGE(invalidated(a, "archived", 60000), n.log());
}
