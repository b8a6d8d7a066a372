// Data subjects' patterns and explicit tags (node/subjects.hpp), without a node.
#include "node/subjects.hpp"

#include "actors/keyspace.hpp"
#include "tests/test_util.hpp"
#include "tiers/seal.hpp"

#include <doctest/doctest.h>

#include <fstream>
#include <iterator>

using namespace kura::node;

namespace {

std::string slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

} // namespace

TEST_CASE("subject patterns: {id} stops at its separator") {
  subject_patterns sp;
  REQUIRE(subject_patterns::parse(" user:{id}:* ,order:*:{id}, acct/{id}", sp).empty());
  CHECK(sp.list().size() == 3);
  CHECK(sp.ids_of("user:42:a:b") == std::vector<std::string>{"42"});
  CHECK(sp.ids_of("user:42:") == std::vector<std::string>{"42"});
  CHECK(sp.ids_of("user::a").empty()); // an empty id is none
  CHECK(sp.ids_of("order:7:99") == std::vector<std::string>{"99"});
  CHECK(sp.ids_of("acct/x:y") == std::vector<std::string>{"x:y"});
  CHECK(sp.ids_of("other").empty());
  auto g = sp.globs_for("4*2");
  REQUIRE(g.size() == 3);
  CHECK(g[0] == "user:4\\*2:*");
  CHECK(kura::actors::glob_match(g[0], "user:4*2:x"));
  CHECK(!kura::actors::glob_match(g[0], "user:4772:x"));
  // an id holding a pattern's separator matches nothing by that pattern
  CHECK(sp.globs_for("a:b") == std::vector<std::string>{"order:*:a:b", "acct/a:b"});
  CHECK(sp.globs_for("").empty());
  // globs_for and ids_of agree
  for (const char* key : {"user:42:x", "user:420:x", "order:1:42", "order:1:421", "acct/42"})
    for (auto& gl : sp.globs_for("42")) {
      auto ids = sp.ids_of(key);
      bool has42 = std::find(ids.begin(), ids.end(), "42") != ids.end();
      if (kura::actors::glob_match(gl, key))
        CHECK_MESSAGE(has42, key);
    }
}

TEST_CASE("subject patterns: bad ones are refused with the reason") {
  subject_patterns sp;
  CHECK(subject_patterns::parse("user:*", sp).find("has no {id}") != std::string::npos);
  CHECK(subject_patterns::parse("{id}:{id}", sp).find("more than one") != std::string::npos);
  CHECK(subject_patterns::parse("u:{id}*", sp).find("followed by a literal") != std::string::npos);
  CHECK(subject_patterns::parse("", sp).empty());
  CHECK(sp.empty());
}

TEST_CASE("subject index: tags persist, a torn tail is dropped, forget rewrites the file") {
  kura::testing::temp_dir d;
  std::string path = d.path + "/subjects";
  std::string err;
  {
    subject_index ix(path, nullptr);
    REQUIRE(ix.load().empty());
    CHECK(ix.tag("k1", "alice", err) == 1);
    CHECK(ix.tag("k1", "alice", err) == 0);
    CHECK(ix.tag("k2", "alice", err) == 1);
    CHECK(ix.tag("k2", "bob", err) == 1);
    CHECK(err.empty());
  }
  std::ofstream(path, std::ios::app | std::ios::binary) << std::string("\x20\x00\x00", 3); // torn
  subject_index ix(path, nullptr);
  REQUIRE(ix.load().empty());
  CHECK(ix.size() == 3);
  CHECK(ix.keys_of("alice") == std::vector<std::string>{"k1", "k2"});
  CHECK(ix.ids_of("k2") == std::vector<std::string>{"alice", "bob"});
  REQUIRE(ix.forget("alice", {"k2"}).empty());
  CHECK(ix.size() == 0);
  auto bytes = slurp(path);
  CHECK(bytes == "P");
  subject_index again(path, nullptr);
  REQUIRE(again.load().empty());
  CHECK(again.size() == 0);
  // not a subjects file: a clear error
  std::ofstream(path, std::ios::trunc) << "garbage";
  subject_index bad(path, nullptr);
  CHECK(bad.load().find("is not a subjects file") != std::string::npos);
}

TEST_CASE("subject index: sealed with a master key, refused without it") {
  kura::testing::temp_dir d;
  std::string path = d.path + "/subjects";
  auto kr = kura::crypto::keyring::from_keys({{1, std::string(32, 'k')}});
  REQUIRE(kr);
  std::string err;
  {
    subject_index ix(path, *kr);
    REQUIRE(ix.load().empty());
    CHECK(ix.tag("secret-key-name", "person-9", err) == 1);
  }
  auto bytes = slurp(path);
  CHECK(bytes[0] == 'S');
  CHECK(bytes.find("secret-key-name") == std::string::npos);
  CHECK(bytes.find("person-9") == std::string::npos);
  subject_index ix(path, *kr);
  REQUIRE(ix.load().empty());
  CHECK(ix.keys_of("person-9") == std::vector<std::string>{"secret-key-name"});
  subject_index plain(path, nullptr);
  CHECK(plain.load().find("is sealed") != std::string::npos);
  auto other = kura::crypto::keyring::from_keys({{1, std::string(32, 'x')}});
  subject_index wrong(path, *other);
  CHECK(!wrong.load().empty());
}

TEST_CASE("subject index: digest, pages and merge (the cluster tag sync)") {
  kura::testing::temp_dir d;
  std::string err;
  subject_index a(d.path + "/a", nullptr), b(d.path + "/b", nullptr);
  REQUIRE(a.load().empty());
  REQUIRE(b.load().empty());
  CHECK(a.digest() == b.digest());
  for (int i = 0; i < 500; ++i)
    REQUIRE(a.tag("key:" + std::to_string(i), i % 2 ? "odd" : "even", err) == 1);
  REQUIRE(a.tag("key:7", "seven", err) == 1);
  REQUIRE(b.tag("only-b", "bob", err) == 1);
  CHECK(a.digest() != b.digest());
  // b pulls a's tags page by page, as kura.subject.pull does
  std::string after;
  size_t pages = 0;
  long added = 0;
  for (bool more = true; more; ++pages) {
    auto page = a.page(after, 1024, more);
    REQUIRE(!page.empty());
    REQUIRE(page.size() % 2 == 0);
    long n = b.merge(page, err);
    REQUIRE(err.empty());
    added += n;
    after = page[page.size() - 2];
  }
  CHECK(pages > 5); // 1 KiB pages
  CHECK(added == 501);
  CHECK(b.ids_of("key:7") == std::vector<std::string>{"odd", "seven"});
  CHECK(b.size() == 502);
  // merging again adds nothing; the same set gives the same digest, in any order
  bool more = false;
  CHECK(b.merge(a.page({}, 1 << 20, more), err) == 0);
  CHECK(!more);
  REQUIRE(a.tag("only-b", "bob", err) == 1);
  CHECK(a.digest() == b.digest());
  // forget changes the digest back; merged tags were written (one append per page)
  REQUIRE(b.forget({}, {"only-b"}).empty());
  REQUIRE(a.forget({}, {"only-b"}).empty());
  CHECK(a.digest() == b.digest());
  subject_index reread(d.path + "/b", nullptr);
  REQUIRE(reread.load().empty());
  CHECK(reread.size() == 501);
  CHECK(reread.digest() == b.digest());
}

TEST_CASE("subject index: merge refuses what forget dropped, for the fence time") {
  kura::testing::temp_dir d;
  std::string err;
  subject_index ix(d.path + "/s", nullptr);
  REQUIRE(ix.load().empty());
  REQUIRE(ix.tag("k1", "alice", err) == 1);
  REQUIRE(ix.tag("k2", "bob", err) == 1);
  REQUIRE(ix.forget("alice", {"k2"}).empty());
  CHECK(ix.size() == 0);
  // a peer that has not collected yet hands them back: refused
  CHECK(ix.merge({"k1", "alice", "k2", "bob", "k3", "alice", "k4", "carol"}, err) == 1);
  CHECK(err.empty());
  CHECK(ix.ids_of("k4") == std::vector<std::string>{"carol"});
  CHECK(ix.ids_of("k1").empty());
  CHECK(ix.ids_of("k2").empty());
  // a new KURA.SUBJECT is not fenced (only the pulls are)
  CHECK(ix.tag("k2", "bob", err) == 1);
  // with no fence the pulls take what a later forget dropped (k1 stays
  // fenced by the first one)
  ix.set_fence_ms(0);
  REQUIRE(ix.forget("dave", {"k9"}).empty());
  CHECK(ix.merge({"k9", "dave", "k1", "alice"}, err) == 1);
  CHECK(ix.ids_of("k9") == std::vector<std::string>{"dave"});
  CHECK(ix.ids_of("k1").empty());
}
