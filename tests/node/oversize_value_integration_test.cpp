// A value larger than a real kura-node can hold is refused when it is written,
// and the key keeps its older value (issue 10): with L3, larger than the whole
// L3 budget (kura.l3.max-bytes); without L3, larger than a memory shard. Before
// the fix the SET answered +OK, L3 refused the record later ("more than the
// whole L3 budget") and the write was lost; after a kill -9 the write-ahead
// log replayed the record and the node would not start again.
#include "node_process.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

using namespace kura::test;

namespace {

constexpr size_t l3_budget = 1u << 20;

void write_file(const std::string& path, size_t bytes, char fill) {
  std::ofstream f(path, std::ios::binary);
  std::string s(bytes, fill);
  f.write(s.data(), static_cast<std::streamsize>(s.size()));
}

std::string bulk(const std::string& v) {
  return "$" + std::to_string(v.size()) + "\r\n" + v + "\r\n";
}

bool refused_for_l3(const std::optional<std::string>& r) {
  return r && r->rfind("-ERR out_of_space: value of ", 0) == 0 &&
         r->find("kura.l3.max-bytes") != std::string::npos;
}

} // namespace

TEST_CASE("a value larger than the whole L3 budget is refused at write time and loses nothing") {
  temp_dir files;
  const std::string ten_mib = files.path + "/ten-mib";
  write_file(ten_mib, 10u << 20, 'v');
  const std::string too_big(2 * l3_budget, 'b');
  temp_dir data;
  const std::vector<std::string> args{"--kura.l3.max-bytes=" + std::to_string(l3_budget)};
  {
    node_process n(args, data.path);
    REQUIRE_MESSAGE(n.ready, n.log());
    client c(n.port);
    REQUIRE(c.ok());
    REQUIRE(*c.call({"SET", "big", "old"}) == "+OK\r\n");
    // redis-cli -x SET of a 10 MiB file: an error naming the limit, not +OK
    auto out = n.cli("-x SET big < " + ten_mib);
    CHECK(out.rfind("ERR out_of_space: value of 10485760 bytes is too large for L3", 0) == 0);
    CHECK(out.find("kura.l3.max-bytes") != std::string::npos);
    CHECK(refused_for_l3(c.call({"SET", "big", too_big})));
    CHECK(refused_for_l3(c.call({"SET", "fresh", too_big})));
    // APPEND and SETRANGE growing a value past the budget
    const std::string half(l3_budget / 2, 'h');
    REQUIRE(*c.call({"SET", "grow", half}) == "+OK\r\n");
    CHECK(refused_for_l3(c.call({"APPEND", "grow", half})));
    CHECK(refused_for_l3(c.call({"SETRANGE", "grow", std::to_string(l3_budget), "x"})));
    // MSET is all or nothing
    CHECK(refused_for_l3(c.call({"MSET", "m1", "one", "big", too_big})));
    CHECK(refused_for_l3(c.call({"MSETNX", "m2", "two", "big2", too_big})));
    // in a transaction the refused write is an error in EXEC's answer
    REQUIRE(*c.call({"MULTI"}) == "+OK\r\n");
    REQUIRE(*c.call({"SET", "t1", "one"}) == "+QUEUED\r\n");
    REQUIRE(*c.call({"SET", "big", too_big}) == "+QUEUED\r\n");
    auto exec = c.call({"EXEC"});
    REQUIRE(exec);
    CHECK(exec->rfind("*2\r\n+OK\r\n-ERR out_of_space: value of ", 0) == 0);
    REQUIRE(n.l3_idle(30000));
    CHECK(*c.call({"GET", "big"}) == bulk("old"));
    CHECK(*c.call({"EXISTS", "fresh", "m1", "m2", "big2"}) == ":0\r\n");
    CHECK(*c.call({"STRLEN", "grow"}) == ":" + std::to_string(half.size()) + "\r\n");
    CHECK(*c.call({"GET", "t1"}) == bulk("one"));
    // the node lives, and a value that fits is still taken
    CHECK(*c.call({"SET", "fits", std::string(100000, 'f')}) == "+OK\r\n");
    CHECK(n.log().find("more than the whole L3 budget") == std::string::npos);
    // after kill -9 (once L3 has it all: an acknowledged write may be lost
    // for the loss window) the node starts again and has the older values
    REQUIRE(n.l3_idle(30000));
    CHECK(n.stop(SIGKILL) == 128 + SIGKILL);
  }
  node_process n(args, data.path);
  REQUIRE_MESSAGE(n.ready, n.log());
  client c(n.port);
  REQUIRE(c.ok());
  CHECK(*c.call({"GET", "big"}) == bulk("old"));
  CHECK(*c.call({"STRLEN", "grow"}) == ":" + std::to_string(l3_budget / 2) + "\r\n");
  CHECK(*c.call({"STRLEN", "fits"}) == ":100000\r\n");
}

TEST_CASE("a log record that no longer fits a lowered L3 budget is skipped at start") {
  temp_dir data;
  const std::string two_mib(2 * l3_budget, 'b');
  {
    node_process n({}, data.path); // the default budget takes it
    REQUIRE_MESSAGE(n.ready, n.log());
    client c(n.port);
    REQUIRE(c.ok());
    REQUIRE(*c.call({"SET", "k", "kept"}) == "+OK\r\n");
    REQUIRE(n.l3_idle(30000));
    REQUIRE(*c.call({"SET", "k", two_mib}) == "+OK\r\n");
    // The log's writer thread writes its buffer every 10 ms (a 2 MiB value is
    // encoded there): a kill right after the reply can come before the record
    // is in the file, and then there is nothing to skip (allowed within
    // kura.l3.max-loss-window; this failed 3 of 3 on a fast machine, session
    // 21). Wait until the segment holds it.
    // (and the record is whole: a file already 2 MiB long can still lack the
    // record's last bytes, and a torn tail is cut at start, not skipped)
    auto logged_bytes = [&] {
      std::error_code ec;
      uintmax_t bytes = 0;
      for (auto& f : std::filesystem::recursive_directory_iterator(data.path, ec))
        if (f.path().filename().string().rfind("wal-", 0) == 0)
          bytes += f.file_size(ec);
      return bytes;
    };
    uintmax_t seen = 0;
    for (int i = 0; i < 1000; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      auto now = logged_bytes();
      if (now > two_mib.size() && now == seen)
        break; // 20 ms without growth past the value's size
      seen = now;
    }
    REQUIRE(seen > two_mib.size());
    // killed before L3 applied it (LMDB is applied behind the log, up to 1 s
    // later): the record is only in the write-ahead log
    CHECK(n.stop(SIGKILL) == 128 + SIGKILL);
  }
  node_process n({"--kura.l3.max-bytes=" + std::to_string(l3_budget)}, data.path);
  REQUIRE_MESSAGE(n.ready, n.log());
  client c(n.port);
  REQUIRE(c.ok());
  CHECK(*c.call({"PING"}) == "+PONG\r\n");
  auto got = c.call({"STRLEN", "k"});
  REQUIRE(got);
  // the log's record was skipped (the key keeps L3's older value), or LMDB
  // had applied it before the kill: either way the node serves
  if (n.log().find("skipped 1 write-ahead log records larger than the whole L3 budget") !=
      std::string::npos)
    CHECK(*got == ":4\r\n");
  else
    CHECK(*got == ":" + std::to_string(two_mib.size()) + "\r\n");
}

TEST_CASE("without L3 a value larger than a memory shard is refused and the old value stays") {
  node_process n({"--kura.l3.enabled=false", "--memory-bytes=1048576", "--kura.memory.shards=1"});
  REQUIRE_MESSAGE(n.ready, n.log());
  client c(n.port);
  REQUIRE(c.ok());
  REQUIRE(*c.call({"SET", "k", "old"}) == "+OK\r\n");
  auto r = c.call({"SET", "k", std::string(2u << 20, 'b')});
  REQUIRE(r);
  CHECK(r->rfind("-ERR out_of_space: value of 2097152 bytes is too large for memory", 0) == 0);
  CHECK(r->find("memory-bytes") != std::string::npos);
  CHECK(*c.call({"GET", "k"}) == bulk("old"));
}
