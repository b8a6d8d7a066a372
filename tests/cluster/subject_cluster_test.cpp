// KURA.SUBJECT on cluster nodes (issue 13; node/cluster_erase.hpp): a tag
// set through one node reaches every member (n3 is killed while the tags are
// set and gets them when it returns); KURA.ERASE SUBJECT through the node that
// was down erases every tagged key and every key of the subject's pattern on
// every replica, keeps the other subject's keys, and every member drops the
// erased keys' tags (and rewrites its tag file, so no erased key name stays
// in it).
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

} // namespace

TEST_CASE("KURA.SUBJECT tags reach every member; KURA.ERASE SUBJECT erases them everywhere") {
  test_cluster c;
  for (int i = 1; i <= 3; ++i)
    REQUIRE(c.start("n" + std::to_string(i), flags()).ready);
  INFO(c.logs());
  REQUIRE(wait_for([&] { return c.all_see_alive(3); }));

  // n3 is down while the tags are set and the keys written
  auto n3_dir = c["n3"].data_dir;
  c["n3"].stop(SIGKILL);

  client t(c["n1"].port);
  for (int i = 0; i < per_subject; ++i) {
    REQUIRE(*t.call({"KURA.SUBJECT", key_of('a', i), "alice"}) == ":1\r\n");
    REQUIRE(*t.call({"KURA.SUBJECT", key_of('b', i), "bob"}) == ":1\r\n");
  }
  CHECK(*t.call({"KURA.SUBJECT", key_of('a', 0), "alice"}) == ":0\r\n"); // already tagged
  CHECK(t.call({"KURA.SUBJECT", key_of('a', 0), ""})->rfind("-ERR", 0) == 0);
  client w(c["n2"].port);
  std::vector<std::vector<std::string>> sets;
  for (int i = 0; i < per_subject; ++i) {
    sets.push_back({"SET", key_of('a', i), marked_value("SA", i)});
    sets.push_back({"SET", key_of('b', i), marked_value("SB", i)});
  }
  sets.push_back({"SET", "user:alice:cart", "ALICECART"});
  sets.push_back({"SET", "user:bob:cart", "BOBCART"});
  pipeline(w, sets);

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
  client e(c["n3b"].port);
  auto first = e.call({"KURA.ERASE", "SUBJECT", "alice"});
  REQUIRE(first);
  auto id = field(*first, "id");
  REQUIRE(!id.empty());
  auto r = wait_receipt(e, id);
  CAPTURE(r);
  CHECK(field(r, "state") == "done");
  CHECK(field(r, "mode") == "subject");
  CHECK(field(r, "matched") == std::to_string(per_subject + 1));
  for (auto n : {"n1", "n2", "n3"})
    CHECK(r.find(bulk(n)) != std::string::npos);
  CHECK(r.find(bulk("pending")) == std::string::npos);

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
