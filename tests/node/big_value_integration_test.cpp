// 64 MiB values in a real kura-node with L3 and L4 on (issue 10): a SET and a
// GET through redis-cli return the identical bytes, from the held buffer
// (before L3 has applied it), from L3 (after a restart), and from L4 (an L3
// budget that holds one value archives the older of two). Another client is served
// while the value arrives in pieces. No timing assertion: how long other
// clients wait is measured by bench/l3/big-values.sh.
#include "node_process.hpp"

#include <doctest/doctest.h>

#include <fstream>

using namespace kura::test;

namespace {

constexpr size_t big_bytes = 64u << 20;

/// `n` pseudo-random bytes (every byte value, CR and LF included).
std::string random_bytes(size_t n, uint64_t seed) {
  std::string s(n, '\0');
  uint64_t x = seed;
  for (size_t i = 0; i < n; i += 8) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    for (size_t j = 0; j < 8 && i + j < n; ++j)
      s[i + j] = static_cast<char>(x >> (8 * j));
  }
  return s;
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

/// `redis-cli -x SET key < file`: its output.
std::string cli_set(const node_process& n, const std::string& key, const std::string& file) {
  return run_shell("redis-cli -p " + std::to_string(n.port) + " -x SET " + key + " < " + file +
                   " 2>&1");
}

/// `redis-cli GET key > file`: the bytes redis-cli printed, less the newline
/// it adds (empty when the reply was shorter than expected).
std::string cli_get(const node_process& n, const std::string& key, const std::string& file) {
  (void)run_shell("redis-cli -p " + std::to_string(n.port) + " GET " + key + " > " + file);
  auto got = read_file(file);
  if (!got.empty() && got.back() == '\n')
    got.pop_back();
  return got;
}

/// A large value is compared by size and a few slices, so that a failure
/// prints something readable instead of 64 MiB.
void check_same(const std::string& got, const std::string& want) {
  REQUIRE(got.size() == want.size());
  for (size_t at : {size_t{0}, want.size() / 2, want.size() - 64})
    CHECK(got.compare(at, 64, want, at, 64) == 0);
  CHECK(got == want);
}

} // namespace

TEST_CASE("a 64 MiB SET and GET round-trip through redis-cli with L3 and L4 on") {
  temp_dir files;
  const std::string value = random_bytes(big_bytes, 0x6b757261);
  const std::string in = files.path + "/big", out = files.path + "/got";
  write_file(in, value);
  temp_dir data;
  {
    // the defaults: L3, its write-ahead log and L4 on
    node_process n({}, data.path);
    REQUIRE_MESSAGE(n.ready, n.log());
    CHECK(n.info_field("aof_enabled") == "1");
    CHECK(cli_set(n, "big", in) == "OK\n");
    // read back at once: the held buffer or L3, whichever has it now
    check_same(cli_get(n, "big", out), value);
    client c(n.port);
    REQUIRE(c.ok());
    CHECK(*c.call({"STRLEN", "big"}) == ":" + std::to_string(big_bytes) + "\r\n");
    // while a second value arrives in pieces, another client is answered
    client w(n.port);
    REQUIRE(w.ok());
    std::string set2 = "*3\r\n$3\r\nSET\r\n$4\r\nbig2\r\n$" + std::to_string(big_bytes) + "\r\n";
    REQUIRE(w.send(set2));
    REQUIRE(w.send(std::string_view(value).substr(0, big_bytes / 2)));
    CHECK(*c.call({"PING"}) == "+PONG\r\n");
    CHECK(*c.call({"GET", "nothing"}) == "$-1\r\n");
    REQUIRE(w.send(std::string_view(value).substr(big_bytes / 2)));
    REQUIRE(w.send("\r\n"));
    CHECK(*w.reply(60000) == "+OK\r\n");
    REQUIRE(n.l3_idle(60000));
    CHECK(*c.call({"KURA.TIER", "big"}) == "$2\r\nl3\r\n");
    check_same(cli_get(n, "big2", out), value);
    CHECK(n.stop(SIGTERM) == 0);
  }
  {
    // a restart serves both from L3
    node_process n({}, data.path);
    REQUIRE_MESSAGE(n.ready, n.log());
    check_same(cli_get(n, "big", out), value);
    check_same(cli_get(n, "big2", out), value);
  }
}

TEST_CASE("a 64 MiB value archived in L4 reads back identical through redis-cli") {
  temp_dir files;
  const std::string value = random_bytes(big_bytes, 0x61726368);
  const std::string in = files.path + "/big", in2 = files.path + "/big2", out = files.path + "/got";
  write_file(in, value);
  write_file(in2, random_bytes(big_bytes, 0x6e657874));
  // an L3 budget that holds one such value but not two: the second write
  // evicts the first into L4
  node_process n({"--kura.l3.max-bytes=134217728", "--kura.archive.compact-interval=0s"});
  REQUIRE_MESSAGE(n.ready, n.log());
  CHECK(cli_set(n, "big", in) == "OK\n");
  REQUIRE(n.l3_idle(60000));
  CHECK(cli_set(n, "big2", in2) == "OK\n");
  REQUIRE(n.l3_idle(60000));
  client c(n.port);
  REQUIRE(c.ok());
  CHECK(*c.call({"KURA.TIER", "big"}) == "$2\r\nl4\r\n");
  check_same(cli_get(n, "big", out), value);
  CHECK(*c.call({"STRLEN", "big"}) == ":" + std::to_string(big_bytes) + "\r\n");
  check_same(cli_get(n, "big2", out), read_file(in2));
}
