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
