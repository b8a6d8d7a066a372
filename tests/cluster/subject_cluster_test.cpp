// KURA.SUBJECT on cluster nodes (issue 13; node/cluster_erase.hpp): a tag
// set through one node reaches every member (n3 is killed while the tags are
// set and gets them when it returns); KURA.ERASE SUBJECT through the node that
// was down erases every tagged key and every key of the subject's pattern on
// every replica, keeps the other subject's keys, and every member drops the
// erased keys' tags (and rewrites its tag file, so no erased key name stays
// in it). A second case: a member down longer than the tag retries and a
// member that joins later get the old tags by the tag sync
// (node/subjects_sync.hpp) and are covered by KURA.ERASE SUBJECT.
#include "cluster/cluster_harness.hpp"
#define KURA_TEST_BULK_DEFINED // bulk() comes from cluster_harness.hpp
#include "node/erase_test_util.hpp"

#include <doctest/doctest.h>

#include <cstdio>
#include <thread>

using namespace kura::test;

namespace {

constexpr int per_subject = 30;

std::string key_of(char who, int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "acct:%c%03d", who, i);
  return buf;
}

std::vector<std::string> flags() {
  return {"--kura.cluster.request-timeout=2s", "--kura.security.subject-patterns=user:{id}:*"};
}

/// KURA.SUBJECT key on `port`: the ids listed.
std::vector<std::string> subjects_of(uint16_t port, const std::string& key) {
  auto r = client(port).call({"KURA.SUBJECT", key});
  if (!r || (*r)[0] != '*')
    return {"(error) " + (r ? *r : std::string("no reply"))};
  return bulk_array(*r);
}

/// Starts n1..n3 with `f`, kills n3, then tags `per_subject` keys of `a`
/// with `ida` and of `b` with `idb` through n1 and writes them (values
/// marked "S" + the letter in upper case) and `more` through n2. Returns
/// n3's data dir.
std::string tag_with_n3_down(test_cluster& c, const std::vector<std::string>& f, char a,
                             const std::string& ida, char b, const std::string& idb,
                             std::vector<std::vector<std::string>> more) {
  for (int i = 1; i <= 3; ++i)
    REQUIRE(c.start("n" + std::to_string(i), f).ready);
  INFO(c.logs());
  REQUIRE(wait_for([&] { return c.all_see_alive(3); }));
  auto n3_dir = c["n3"].data_dir;
  c["n3"].stop(SIGKILL);
  client t(c["n1"].port);
  for (int i = 0; i < per_subject; ++i) {
    REQUIRE(*t.call({"KURA.SUBJECT", key_of(a, i), ida}) == ":1\r\n");
    REQUIRE(*t.call({"KURA.SUBJECT", key_of(b, i), idb}) == ":1\r\n");
  }
  std::vector<std::vector<std::string>> sets;
  for (int i = 0; i < per_subject; ++i)
    for (char who : {a, b})
      sets.push_back(
          {"SET", key_of(who, i),
           marked_value((std::string("S") + static_cast<char>(who - 'a' + 'A')).c_str(), i)});
  sets.insert(sets.end(), more.begin(), more.end());
  client w(c["n2"].port);
  pipeline(w, sets);
  return n3_dir;
}

/// KURA.ERASE SUBJECT `id` through `port`: the finished receipt, which
/// must be done with `matched` keys and no member pending.
std::string erase_subject(uint16_t port, const std::string& id, size_t matched) {
  client e(port);
  auto first = e.call({"KURA.ERASE", "SUBJECT", id});
  REQUIRE(first);
  auto rid = field(*first, "id");
  REQUIRE(!rid.empty());
  auto r = wait_receipt(e, rid);
  CAPTURE(r);
  CHECK(field(r, "state") == "done");
  CHECK(field(r, "mode") == "subject");
  CHECK(field(r, "matched") == std::to_string(matched));
  CHECK(r.find(bulk("pending")) == std::string::npos);
  return r;
}

} // namespace

TEST_CASE("KURA.SUBJECT tags reach every member; KURA.ERASE SUBJECT erases them everywhere") {
  test_cluster c;
  // n3 is down while the tags are set and the keys written
  auto n3_dir = tag_with_n3_down(
      c, flags(), 'a', "alice", 'b', "bob",
      {{"SET", "user:alice:cart", "ALICECART"}, {"SET", "user:bob:cart", "BOBCART"}});
  INFO(c.logs());
  client t(c["n1"].port);
  CHECK(*t.call({"KURA.SUBJECT", key_of('a', 0), "alice"}) == ":0\r\n"); // already tagged
  CHECK(t.call({"KURA.SUBJECT", key_of('a', 0), ""})->rfind("-ERR", 0) == 0);

  // the tags are on n2 (sent by n1) and the patterns' ids are listed too
  REQUIRE(wait_for([&] {
    for (int i = 0; i < per_subject; ++i)
      if (subjects_of(c["n2"].port, key_of('a', i)) != std::vector<std::string>{"alice"})
        return false;
    return true;
  }));
  CHECK(subjects_of(c["n2"].port, "user:alice:cart") == std::vector<std::string>{"alice"});

  // n3 returns on its disk: n1's retries bring it the tags
  REQUIRE(c.start("n3", flags(), n3_dir, "n3b").ready);
  REQUIRE(wait_for([&] { return c.all_see_alive(3); }, 60000));
  REQUIRE(wait_for(
      [&] {
        for (char who : {'a', 'b'})
          for (int i = 0; i < per_subject; ++i)
            if (subjects_of(c["n3b"].port, key_of(who, i)).size() != 1)
              return false;
        return true;
      },
      60000));

  // the erasure, issued through the node that was down
  auto r = erase_subject(c["n3b"].port, "alice", per_subject + 1);
  CAPTURE(r);
  for (auto n : {"n1", "n2", "n3"})
    CHECK(r.find(bulk(n)) != std::string::npos);

  for (auto n : {"n1", "n2", "n3b"}) {
    CAPTURE(n);
    client g(c[n].port);
    for (int i = 0; i < per_subject; ++i) {
      CHECK(*g.call({"GET", key_of('a', i)}) == "$-1\r\n");
      CHECK(g.call({"GET", key_of('b', i)})->find(marked_value("SB", i)) != std::string::npos);
    }
    CHECK(*g.call({"GET", "user:alice:cart"}) == "$-1\r\n");
    CHECK(*g.call({"GET", "user:bob:cart"}) == bulk("BOBCART"));
    // every member dropped the erased keys' tags, kept bob's
    REQUIRE(wait_for([&] { return subjects_of(c[n].port, key_of('a', 0)).empty(); }));
    for (int i = 0; i < per_subject; ++i) {
      CHECK(subjects_of(c[n].port, key_of('a', i)).empty());
      CHECK(subjects_of(c[n].port, key_of('b', i)) == std::vector<std::string>{"bob"});
    }
    // and rewrote the tag file: no erased key name in it, bob's are there
    auto file = read_file(c[n].data_dir + "/subjects");
    CHECK(file.find("acct:a") == std::string::npos);
    CHECK(file.find(key_of('b', 7)) != std::string::npos);
  }
}

namespace {

/// Lines of `log` that contain `what`.
size_t count_lines(const std::string& log, const std::string& what) {
  size_t n = 0;
  for (auto p = log.find(what); p != std::string::npos; p = log.find(what, p + what.size()))
    ++n;
  return n;
}

} // namespace

// Subject tags survive a member's long outage and reach a member that joins
// later (node/subjects_sync.hpp): the retries of a new tag are cut short
// (kura.security.subject-tag-retry=2s) and the periodic digest comparison is
// off for the test's length (subject-sync-interval=1h), so only the pulls at
// start and at a member's return can bring the tags.
TEST_CASE("subject tags reach a member down longer than the retries and one that joins later") {
  auto sync_flags = flags();
  sync_flags.push_back("--kura.security.subject-tag-retry=2s");
  sync_flags.push_back("--kura.security.subject-sync-interval=1h");
  test_cluster c;
  auto n3_dir = tag_with_n3_down(c, sync_flags, 'c', "carol", 'd', "dave", {});
  INFO(c.logs());
  // n1 gave up sending every tag to n3 (the window is over for all of them)
  REQUIRE(wait_for(
      [&] { return count_lines(c["n1"].log(), "subject tag not stored on n3") >= 2 * per_subject; },
      60000));

  // n3 returns on its disk after the retries: it pulls the tags it lacks
  REQUIRE(c.start("n3", sync_flags, n3_dir, "n3b").ready);
  REQUIRE(wait_for([&] { return c.all_see_alive(3); }, 60000));
  auto has_all = [&](const std::string& node) {
    for (int i = 0; i < per_subject; ++i)
      if (subjects_of(c[node].port, key_of('c', i)) != std::vector<std::string>{"carol"} ||
          subjects_of(c[node].port, key_of('d', i)) != std::vector<std::string>{"dave"})
        return false;
    return true;
  };
  CHECK(wait_for([&] { return has_all("n3b"); }, 30000));

  // n4 joins later: it gets every old tag
  REQUIRE(c.start("n4", sync_flags).ready);
  REQUIRE(wait_for([&] { return c.all_see_alive(4); }, 60000));
  CHECK(wait_for([&] { return has_all("n4"); }, 30000));
  // and a tag set through n4 reaches the others
  client t4(c["n4"].port);
  REQUIRE(*t4.call({"KURA.SUBJECT", key_of('c', 999), "carol"}) == ":1\r\n");
  REQUIRE(*t4.call({"SET", key_of('c', 999), "CAROL999"}) == "+OK\r\n");
  for (auto n : {"n1", "n2", "n3b"})
    CHECK(wait_for([&] {
      return subjects_of(c[n].port, key_of('c', 999)) == std::vector<std::string>{"carol"};
    }));

  // the erasure, issued through the node that joined: every member is covered
  auto r = erase_subject(c["n4"].port, "carol", per_subject + 1);
  CAPTURE(r);
  for (auto n : {"n1", "n2", "n3", "n4"})
    CHECK(r.find(bulk(n)) != std::string::npos);
  for (auto n : {"n1", "n2", "n3b", "n4"}) {
    CAPTURE(n);
    client g(c[n].port);
    for (int i = 0; i < per_subject; ++i) {
      CHECK(*g.call({"GET", key_of('c', i)}) == "$-1\r\n");
      CHECK(g.call({"GET", key_of('d', i)})->find(marked_value("SD", i)) != std::string::npos);
      CHECK(subjects_of(c[n].port, key_of('c', i)).empty());
      CHECK(subjects_of(c[n].port, key_of('d', i)) == std::vector<std::string>{"dave"});
    }
    CHECK(*g.call({"GET", key_of('c', 999)}) == "$-1\r\n");
    CHECK(subjects_of(c[n].port, key_of('c', 999)).empty());
    auto file = read_file(c[n].data_dir + "/subjects");
    CHECK(file.find("acct:c") == std::string::npos);
    CHECK(file.find(key_of('d', 7)) != std::string::npos);
  }
}
