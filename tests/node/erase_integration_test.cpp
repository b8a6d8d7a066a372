// KURA.ERASE in a real kura-node, checked at the byte level (issue 13): write
// known keys and values (a tiny L3 budget pushes most of them into L4),
// restart, erase some (KEY and PREFIX), kill -9, restart; then scan every
// file under the data dir for the erased keys and values, plain and in the
// archive's compressed blocks decompressed: none may be found, while the
// scanner does find the kept ones (so the check can fail), and every kept
// key still reads back.
#include "archive/codec.hpp"
#include "archive/format.hpp"
#include "tests/node/erase_test_util.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <thread>

using namespace kura::test;

namespace {

constexpr int n_keys = 3000;

/// Erased: "gone:<i>" for i % 10 == 3 (by KEY) and every "pfx:" key (by
/// PREFIX); kept: everything else.
std::string key_of(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%s%05d", i % 7 == 0 ? "pfx:" : "gone:", i);
  return buf;
}
bool erased(int i) {
  return i % 7 == 0 || i % 10 == 3;
}
/// A marker no other value contains, then 150 pseudo-random letters (they
/// compress poorly, so segments fill up).
std::string value_of(int i) {
  return marked_value("VAL", i);
}
std::string value_marker(int i) {
  return value_of(i).substr(0, 12);
}

void byte_level_erase(const std::vector<std::string>& extra) {
  std::vector<std::string> args = {
      "--memory-bytes=1048576", "--kura.l3.max-bytes=200000", "--kura.archive.segment-bytes=65536",
      "--kura.archive.compact-interval=0s", "--kura.archive.compact-rate=0"};
  args.insert(args.end(), extra.begin(), extra.end());
  std::unique_ptr<node_process> n = std::make_unique<node_process>(args);
  REQUIRE_MESSAGE(n->ready, n->log());
  node_process& first = *n; // owns the data dir
  std::string dir = first.data_dir;
  {
    client c(first.port);
    REQUIRE(c.ok());
    std::vector<std::vector<std::string>> sets;
    for (int i = 0; i < n_keys; ++i)
      sets.push_back({"SET", key_of(i), value_of(i)});
    pipeline(c, sets);
    wait_l3_idle(first);
  }
  REQUIRE(first.stop(SIGTERM) == 0);

  auto second = std::make_unique<node_process>(args, dir);
  REQUIRE_MESSAGE(second->ready, second->log());
  {
    client c(second->port);
    REQUIRE(c.ok());
    std::vector<std::string> cmd = {"KURA.ERASE", "KEY"};
    int by_key = 0;
    for (int i = 0; i < n_keys; ++i)
      if (i % 10 == 3 && i % 7 != 0) {
        cmd.push_back(key_of(i));
        ++by_key;
      }
    cmd.push_back("gone:never-written");
    auto r1 = erase_and_wait(c, cmd);
    CAPTURE(r1);
    CHECK(field(r1, "state") == "done");
    CHECK(field(r1, "matched") == std::to_string(by_key));
    CHECK(field(r1, "requested") == std::to_string(by_key + 1));
    // most of them were archived (tiny L3), some in L3
    CHECK(std::stoi(field(r1, "l4")) > 0);
    CHECK(std::stoi(field(r1, "l3")) + std::stoi(field(r1, "l4")) +
              std::stoi(field(r1, "memory")) >=
          by_key);
    int by_prefix = 0;
    for (int i = 0; i < n_keys; ++i)
      by_prefix += i % 7 == 0;
    auto r2 = erase_and_wait(c, {"KURA.ERASE", "PREFIX", "pfx:"});
    CAPTURE(r2);
    CHECK(field(r2, "state") == "done");
    CHECK(field(r2, "matched") == std::to_string(by_prefix));
    CHECK(std::stoull(field(r2, "finished-ms")) >= std::stoull(field(r2, "started-ms")));
    CHECK(*c.call({"EXISTS", key_of(3), key_of(7)}) == ":0\r\n");
    // bad input: clear errors, nothing lost
    CHECK(c.call({"KURA.ERASE", "PREFIX", ""})->rfind("-ERR an empty prefix", 0) == 0);
    CHECK(c.call({"KURA.ERASE", "STATUS", "nope"})->rfind("-ERR no erasure", 0) == 0);
    CHECK(*c.call({"DBSIZE"}) == ":" + std::to_string(n_keys - by_key - by_prefix) + "\r\n");
    // the CLI: an erasure through the ops port, and a receipt read back
    int rc = -1;
    auto out = run_shell(bin_dir() + "/kura --port=" + std::to_string(second->cluster_port) +
                             " --timeout=20000 --json erase key " + key_of(3) + " 2>/dev/null",
                         &rc);
    CAPTURE(out);
    CHECK(rc == 0);
    CHECK(out.find("\"state\":\"done\"") != std::string::npos);
    CHECK(out.find("\"matched\":0") != std::string::npos);
    out = run_shell(bin_dir() + "/kura --port=" + std::to_string(second->cluster_port) +
                        " erase status " + field(r2, "id") + " 2>/dev/null",
                    &rc);
    CHECK(rc == 0);
    CHECK(out.find(" done: " + std::to_string(by_prefix) + " key(s) erased") != std::string::npos);
  }
  REQUIRE(second->stop(SIGKILL) == 128 + SIGKILL);

  auto third = std::make_unique<node_process>(args, dir);
  REQUIRE_MESSAGE(third->ready, third->log());
  client c(third->port);
  REQUIRE(c.ok());
  // receipts survive the restart; the erase is in the audit log
  auto files = scan_dir(dir);
  bool audited = false;
  for (auto& [name, bytes] : files)
    if (name.find("audit.log") != std::string::npos &&
        bytes.find("\"event\":\"erase\"") != std::string::npos)
      audited = true;
  CHECK(audited);
  size_t kept_found = check_erased_bytes(files, n_keys, erased, key_of, value_marker);
  CHECK(kept_found > static_cast<size_t>(n_keys) / 2);
  // the kept ones read back, the erased ones are gone
  for (int i = 0; i < n_keys; ++i) {
    auto r = c.call({"GET", key_of(i)});
    REQUIRE(r);
    if (erased(i))
      CHECK_MESSAGE(*r == "$-1\r\n", key_of(i));
    else
      CHECK_MESSAGE(*r == bulk(value_of(i)), key_of(i));
  }
}

} // namespace

TEST_CASE("KURA.ERASE leaves no byte of an erased key or value in any file (lz4)") {
  byte_level_erase({});
}

TEST_CASE("KURA.ERASE leaves no byte of an erased key or value in any file (zstd dictionaries)") {
  byte_level_erase({"--kura.archive.codec=zstd-dict"});
}
