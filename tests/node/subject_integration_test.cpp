// Data subjects in a real kura-node (issue 13): keys belong to subject 42
// through two configured patterns (user:{id}:*, order:*:{id}) and explicit
// KURA.SUBJECT tags; a tiny L3 budget pushes most of them into L4. The tags
// survive a restart; KURA.ERASE SUBJECT 42 erases exactly the subject's keys
// (not user:420:*, not order:*:421, not the keys tagged 43); after kill -9 and
// a restart no file under the data dir holds an erased key or value (archive
// blocks decompressed, the subjects file included), while the kept ones read
// back. Then `kura erase subject 43` erases the other tagged keys.
#include "tests/node/erase_test_util.hpp"

#include <doctest/doctest.h>

#include <fstream>

using namespace kura::test;

namespace {

constexpr int n_keys = 1500;

/// i % 10: 0 user:42:* and 1 order:*:42 (patterns), 2 tagged 42, 5 tagged 43,
/// 3 user:420:*, 4 order:*:421, others filler.
std::string key_of(int i) {
  char buf[48];
  switch (i % 10) {
  case 0:
    std::snprintf(buf, sizeof buf, "user:42:%05d", i);
    break;
  case 1:
    std::snprintf(buf, sizeof buf, "order:%05d:42", i);
    break;
  case 2:
  case 5:
    std::snprintf(buf, sizeof buf, "sess:%05d", i);
    break;
  case 3:
    std::snprintf(buf, sizeof buf, "user:420:%05d", i);
    break;
  case 4:
    std::snprintf(buf, sizeof buf, "order:%05d:421", i);
    break;
  default:
    std::snprintf(buf, sizeof buf, "fill:%05d", i);
  }
  return buf;
}
bool of_42(int i) {
  return i % 10 <= 2;
}
std::string value_of(int i) {
  return marked_value("SUBJ", i);
}
std::string value_marker(int i) {
  return value_of(i).substr(0, 13);
}

const std::vector<std::string> node_args = {
    "--memory-bytes=1048576",
    "--kura.l3.max-bytes=120000",
    "--kura.archive.segment-bytes=65536",
    "--kura.archive.compact-interval=0s",
    "--kura.archive.compact-rate=0",
    "--kura.security.subject-patterns=user:{id}:*, order:*:{id}"};

} // namespace

TEST_CASE("KURA.ERASE SUBJECT erases a subject's keys (patterns and tags) from every tier and "
          "file") {
  auto first = std::make_unique<node_process>(node_args);
  REQUIRE_MESSAGE(first->ready, first->log());
  std::string dir = first->data_dir;
  {
    client c(first->port);
    REQUIRE(c.ok());
    std::vector<std::vector<std::string>> sets;
    for (int i = 0; i < n_keys; ++i)
      sets.push_back({"SET", key_of(i), value_of(i)});
    pipeline(c, sets);
    for (int i = 0; i < n_keys; ++i)
      if (i % 10 == 2 || i % 10 == 5) {
        auto r = c.call({"KURA.SUBJECT", key_of(i), i % 10 == 2 ? "42" : "43"});
        REQUIRE(r);
        REQUIRE(*r == ":1\r\n");
      }
    // a second tag is no news; the patterns' and the tags' subjects
    CHECK(*c.call({"KURA.SUBJECT", key_of(2), "42"}) == ":0\r\n");
    CHECK(*c.call({"KURA.SUBJECT", key_of(0)}) == "*1\r\n$2\r\n42\r\n");
    CHECK(*c.call({"KURA.SUBJECT", "user:42:a:b"}) == "*1\r\n$2\r\n42\r\n");
    CHECK(*c.call({"KURA.SUBJECT", key_of(3)}) == "*1\r\n$3\r\n420\r\n");
    CHECK(*c.call({"KURA.SUBJECT", key_of(4)}) == "*1\r\n$3\r\n421\r\n");
    CHECK(*c.call({"KURA.SUBJECT", key_of(6)}) == "*0\r\n");
    // bad input: clear errors
    CHECK(c.call({"KURA.SUBJECT", "k", ""})->rfind("-ERR an empty subject id", 0) == 0);
    CHECK(c.call({"KURA.SUBJECT", "k", "1", "2"})->rfind("-ERR wrong number", 0) == 0);
    CHECK(c.call({"KURA.ERASE", "SUBJECT", ""})->rfind("-ERR an empty subject id", 0) == 0);
    wait_l3_idle(*first);
  }
  REQUIRE(first->stop(SIGTERM) == 0);

  auto second = std::make_unique<node_process>(node_args, dir);
  REQUIRE_MESSAGE(second->ready, second->log());
  int kept = 0, of42 = 0;
  for (int i = 0; i < n_keys; ++i)
    of_42(i) ? ++of42 : ++kept;
  {
    client c(second->port);
    REQUIRE(c.ok());
    // the tags survived the restart
    CHECK(*c.call({"KURA.SUBJECT", key_of(2)}) == "*1\r\n$2\r\n42\r\n");
    CHECK(*c.call({"KURA.SUBJECT", key_of(5)}) == "*1\r\n$2\r\n43\r\n");
    auto r = erase_and_wait(c, {"KURA.ERASE", "SUBJECT", "42"});
    CAPTURE(r);
    CHECK(field(r, "state") == "done");
    CHECK(field(r, "mode") == "subject");
    CHECK(field(r, "requested") == "1");
    CHECK(field(r, "matched") == std::to_string(of42));
    CHECK(std::stoi(field(r, "l4")) > 0); // most were archived
    CHECK(*c.call({"DBSIZE"}) == ":" + std::to_string(kept) + "\r\n");
    CHECK(*c.call({"KURA.SUBJECT", key_of(2)}) == "*0\r\n"); // the tag went with the key
    // the erase is idempotent: nothing left
    auto again = erase_and_wait(c, {"KURA.ERASE", "SUBJECT", "42"});
    CHECK(field(again, "matched") == "0");
  }
  REQUIRE(second->stop(SIGKILL) == 128 + SIGKILL);

  auto third = std::make_unique<node_process>(node_args, dir);
  REQUIRE_MESSAGE(third->ready, third->log());
  client c(third->port);
  REQUIRE(c.ok());
  auto files = scan_dir(dir);
  bool audited = false, tags_file = false;
  for (auto& [name, bytes] : files) {
    if (name.find("audit.log") != std::string::npos &&
        bytes.find(R"(\"mode\":\"subject\")") != std::string::npos)
      audited = true;
    if (name == dir + "/subjects") {
      tags_file = true;
      CHECK(bytes.find(key_of(5)) != std::string::npos); // subject 43's tags are kept
    }
  }
  CHECK(audited);
  CHECK(tags_file);
  size_t kept_found = check_erased_bytes(files, n_keys, of_42, key_of, value_marker);
  CHECK(kept_found > static_cast<size_t>(kept) / 2); // the scan sees what is there
  for (int i = 0; i < n_keys; ++i) {
    auto r = c.call({"GET", key_of(i)});
    REQUIRE(r);
    if (of_42(i))
      CHECK_MESSAGE(*r == "$-1\r\n", key_of(i));
    else
      CHECK_MESSAGE(*r == bulk(value_of(i)), key_of(i));
  }
  // the CLI: subject 43 (the explicitly tagged keys) with a receipt
  int rc = -1;
  auto out = run_shell(bin_dir() + "/kura --port=" + std::to_string(third->cluster_port) +
                           " --timeout=20000 erase subject 43 2>/dev/null",
                       &rc);
  CAPTURE(out);
  CHECK(rc == 0);
  CHECK(out.find(" done: " + std::to_string(n_keys / 10) + " key(s) erased") != std::string::npos);
  CHECK(*c.call({"EXISTS", key_of(5), key_of(15)}) == ":0\r\n");
  CHECK(*c.call({"EXISTS", key_of(3), key_of(6)}) == ":2\r\n");
}

TEST_CASE("subject patterns are checked at start") {
  std::string out;
  CHECK(run_node_once({"--port=" + std::to_string(free_port()), "--cluster-port=0",
                       "--metrics-port=0", "--kura.security.subject-patterns=user:*"},
                      out) != 0);
  CHECK(out.find("bad value for kura.security.subject-patterns: subject pattern 'user:*' has no "
                 "{id}") != std::string::npos);
  CHECK(run_node_once({"--port=" + std::to_string(free_port()), "--cluster-port=0",
                       "--metrics-port=0", "--kura.security.subject-patterns=u:{id}*"},
                      out) != 0);
  CHECK(out.find("{id} must end the pattern or be followed by a literal character") !=
        std::string::npos);
}

TEST_CASE("with encryption at rest the subjects file holds no key in plaintext") {
  temp_dir keys;
  std::string key_file = keys.path + "/kura.key";
  std::ofstream(key_file, std::ios::trunc) << std::string(64, 'a') << "\n";
  std::vector<std::string> args = {"--kura.security.encryption-key-file=" + key_file};
  auto first = std::make_unique<node_process>(args);
  REQUIRE_MESSAGE(first->ready, first->log());
  std::string dir = first->data_dir;
  {
    client c(first->port);
    REQUIRE(c.ok());
    CHECK(*c.call({"SET", "customer-PLAINKEY", "v"}) == "+OK\r\n");
    CHECK(*c.call({"KURA.SUBJECT", "customer-PLAINKEY", "SUBJECTID7"}) == ":1\r\n");
  }
  REQUIRE(first->stop(SIGTERM) == 0);
  auto bytes = read_file(dir + "/subjects");
  CHECK(bytes.size() > 40);
  CHECK(bytes.find("PLAINKEY") == std::string::npos);
  CHECK(bytes.find("SUBJECTID7") == std::string::npos);
  // read back after a restart
  auto second = std::make_unique<node_process>(args, dir);
  REQUIRE_MESSAGE(second->ready, second->log());
  {
    client c(second->port);
    REQUIRE(c.ok());
    CHECK(*c.call({"KURA.SUBJECT", "customer-PLAINKEY"}) == "*1\r\n$10\r\nSUBJECTID7\r\n");
  }
  REQUIRE(second->stop(SIGTERM) == 0);
}
