// Hash commands against the command table (memory keyspace, L3 off): replies
// byte for byte as Redis 7.0 gives them, WRONGTYPE both ways, expiry of the
// whole hash, TYPE/COPY/RENAME, HSCAN's stateless cursor, and the encoding.
#include "command_fixture.hpp"
#include "node/hash_value.hpp"

#include <doctest/doctest.h>

#include <set>
#include <string>
#include <vector>

using namespace kura;
using namespace kura::node;
using fixture = kura::node::testing::command_fixture;

namespace {

/// Splits a flat RESP2 array of bulk strings ("*2\r\n$1\r\na\r\n...").
std::vector<std::string> bulks(const std::string& r) {
  std::vector<std::string> out;
  size_t p = 0;
  while ((p = r.find('$', p)) != std::string::npos) {
    size_t eol = r.find("\r\n", p);
    long n = std::stol(r.substr(p + 1, eol - p - 1));
    if (n < 0) {
      out.emplace_back("(nil)");
      p = eol + 2;
      continue;
    }
    out.push_back(r.substr(eol + 2, static_cast<size_t>(n)));
    p = eol + 2 + static_cast<size_t>(n) + 2;
  }
  return out;
}

} // namespace

TEST_CASE("hash encoding round-trips and rejects damaged bytes") {
  std::string long_field(200, 'f');
  std::vector<hashval::field_view> in{{"a", "1"}, {"", ""}, {long_field, "x"}};
  auto enc = hashval::encode(in);
  std::vector<hashval::field_view> out;
  REQUIRE(hashval::decode(enc, out));
  CHECK(out == in);
  uint64_t n = 0;
  CHECK(hashval::size(enc, n));
  CHECK(n == 3);
  for (size_t cut = 0; cut < enc.size(); ++cut)
    CHECK_FALSE(hashval::decode(std::string_view(enc).substr(0, cut), out));
  auto bad = enc;
  bad[0] = 0x7f;
  CHECK_FALSE(hashval::decode(bad, out));
  CHECK(std::string(hashval::redis_encoding(enc)) == "hashtable"); // a 200-byte field
  CHECK(std::string(hashval::redis_encoding(hashval::encode({{"a", "1"}}))) == "listpack");
}

TEST_CASE_FIXTURE(fixture, "HSET, HGET, HMGET, HGETALL, HLEN, HEXISTS, HSTRLEN") {
  CHECK(run("HSET h a 1 b 2") == ":2\r\n");
  CHECK(run("HSET h a 10 c 3") == ":1\r\n");
  CHECK(run("HSET h a 1 a 2") == ":0\r\n"); // a repeated field counts once, last wins
  CHECK(run("HGET h a") == "$1\r\n2\r\n");
  CHECK(run("HGET h nope") == "$-1\r\n");
  CHECK(run("HGET nokey a") == "$-1\r\n");
  CHECK(run("HMGET h a nope c") == "*3\r\n$1\r\n2\r\n$-1\r\n$1\r\n3\r\n");
  CHECK(run("HMGET nokey a") == "*1\r\n$-1\r\n");
  CHECK(bulks(run("HGETALL h")) == std::vector<std::string>{"a", "2", "b", "2", "c", "3"});
  CHECK(run("HGETALL nokey") == "*0\r\n");
  CHECK(bulks(run("HKEYS h")) == std::vector<std::string>{"a", "b", "c"});
  CHECK(bulks(run("HVALS h")) == std::vector<std::string>{"2", "2", "3"});
  CHECK(run("HLEN h") == ":3\r\n");
  CHECK(run("HLEN nokey") == ":0\r\n");
  CHECK(run("HEXISTS h a") == ":1\r\n");
  CHECK(run("HEXISTS h z") == ":0\r\n");
  CHECK(run("HSTRLEN h c") == ":1\r\n");
  CHECK(run("HSTRLEN h z") == ":0\r\n");
  CHECK(run("HSET h a") == "-ERR wrong number of arguments for 'hset' command\r\n");
  CHECK(run("HSET h a 1 b") == "-ERR wrong number of arguments for 'hset' command\r\n");
  CHECK(run("HMSET h x 1 y") == "-ERR wrong number of arguments for 'hmset' command\r\n");
  CHECK(run("HMSET h x 1 y 2") == "+OK\r\n");
  CHECK(run("HLEN h") == ":5\r\n");
  CHECK(run("TYPE h") == "+hash\r\n");
  CHECK(run("EXISTS h") == ":1\r\n");
}

TEST_CASE_FIXTURE(fixture, "HSETNX, HDEL, and an emptied hash is gone") {
  CHECK(run("HSETNX h a 1") == ":1\r\n");
  CHECK(run("HSETNX h a 2") == ":0\r\n");
  CHECK(run("HGET h a") == "$1\r\n1\r\n");
  CHECK(run("HSET h b 2") == ":1\r\n");
  CHECK(run("HDEL h a nope") == ":1\r\n");
  CHECK(run("HDEL nokey a") == ":0\r\n");
  CHECK(run("HDEL h b") == ":1\r\n");
  CHECK(run("EXISTS h") == ":0\r\n");
  CHECK(run("TYPE h") == "+none\r\n");
}

TEST_CASE_FIXTURE(fixture, "HINCRBY and HINCRBYFLOAT") {
  CHECK(run("HINCRBY h n 5") == ":5\r\n");
  CHECK(run("HINCRBY h n -7") == ":-2\r\n");
  CHECK(run("HINCRBY h n x") == "-ERR value is not an integer or out of range\r\n");
  CHECK(run("HSET h s abc") == ":1\r\n");
  CHECK(run("HINCRBY h s 1") == "-ERR hash value is not an integer\r\n");
  CHECK(run("HSET h big 9223372036854775807") == ":1\r\n");
  CHECK(run("HINCRBY h big 1") == "-ERR increment or decrement would overflow\r\n");
  CHECK(run("HINCRBYFLOAT h f 10.5") == "$4\r\n10.5\r\n");
  CHECK(run("HINCRBYFLOAT h f 0.1") == "$4\r\n10.6\r\n");
  CHECK(run("HINCRBYFLOAT h n 1.5") == "$4\r\n-0.5\r\n");
  CHECK(run("HINCRBYFLOAT h s 1") == "-ERR hash value is not a float\r\n");
  CHECK(run("HINCRBYFLOAT h f abc") == "-ERR value is not a valid float\r\n");
  CHECK(run("HINCRBYFLOAT h f +inf") == "-ERR value is NaN or Infinity\r\n");
}

TEST_CASE_FIXTURE(fixture, "WRONGTYPE both ways, as Redis words it") {
  const std::string wt = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";
  CHECK(run("SET s v") == "+OK\r\n");
  CHECK(run("HSET h f v") == ":1\r\n");
  for (auto cmd : {"HGET s f", "HSET s f v", "HSETNX s f v", "HMGET s f", "HGETALL s", "HDEL s f",
                   "HEXISTS s f", "HLEN s", "HSTRLEN s f", "HKEYS s", "HVALS s", "HINCRBY s f 1",
                   "HINCRBYFLOAT s f 1", "HRANDFIELD s", "HSCAN s 0", "HMSET s f v"})
    CHECK_MESSAGE(run(cmd) == wt, cmd);
  for (auto cmd :
       {"GET h", "GETSET h v", "GETDEL h", "GETEX h", "INCR h", "DECRBY h 2", "INCRBYFLOAT h 1",
        "APPEND h x", "STRLEN h", "GETRANGE h 0 1", "SETRANGE h 0 x", "SET h v GET"})
    CHECK_MESSAGE(run(cmd) == wt, cmd);
  CHECK(run("MGET s h") == "*2\r\n$1\r\nv\r\n$-1\r\n"); // MGET: nil for another type
  CHECK(run("HGET h f") == "$1\r\nv\r\n");              // nothing was lost
  CHECK(run("SET h plain") == "+OK\r\n");               // SET replaces any type
  CHECK(run("TYPE h") == "+string\r\n");
  CHECK(run("GET h") == "$5\r\nplain\r\n");
}

TEST_CASE_FIXTURE(fixture, "expiry applies to the whole hash; COPY and RENAME keep the type") {
  CHECK(run("HSET h a 1 b 2") == ":2\r\n");
  CHECK(run("EXPIRE h 10") == ":1\r\n");
  CHECK(run("HSET h c 3") == ":1\r\n"); // a field write keeps the hash's TTL
  CHECK(run("TTL h") == ":10\r\n");
  CHECK(run("TYPE h") == "+hash\r\n"); // EXPIRE kept the type
  CHECK(run("COPY h h2") == ":1\r\n");
  CHECK(run("TYPE h2") == "+hash\r\n");
  CHECK(run("TTL h2") == ":10\r\n");
  CHECK(run("RENAME h2 h3") == "+OK\r\n");
  CHECK(run("HGET h3 c") == "$1\r\n3\r\n");
  CHECK(run("PERSIST h3") == ":1\r\n");
  CHECK(run("HLEN h3") == ":3\r\n");
  clk.advance_ms(10'001);
  CHECK(run("HGET h a") == "$-1\r\n");
  CHECK(run("HLEN h") == ":0\r\n");
  CHECK(run("EXISTS h") == ":0\r\n");
  CHECK(run("HLEN h3") == ":3\r\n");
}

TEST_CASE_FIXTURE(fixture, "HRANDFIELD") {
  CHECK(run("HRANDFIELD nokey") == "$-1\r\n");
  CHECK(run("HRANDFIELD nokey 3") == "*0\r\n");
  CHECK(run("HSET h a 1 b 2 c 3") == ":3\r\n");
  auto one = bulks(run("HRANDFIELD h"));
  REQUIRE(one.size() == 1);
  CHECK(std::set<std::string>{"a", "b", "c"}.count(one[0]) == 1);
  auto all = bulks(run("HRANDFIELD h 10"));
  CHECK(std::set<std::string>(all.begin(), all.end()) == std::set<std::string>{"a", "b", "c"});
  CHECK(all.size() == 3);
  auto two = bulks(run("HRANDFIELD h 2 WITHVALUES"));
  REQUIRE(two.size() == 4);
  CHECK(two[0] != two[2]);
  CHECK(bulks(run("HRANDFIELD h -7")).size() == 7);
  auto wv = bulks(run("HRANDFIELD h -5 WITHVALUES"));
  REQUIRE(wv.size() == 10);
  for (size_t i = 0; i < wv.size(); i += 2)
    CHECK(wv[i + 1] == std::string(1, static_cast<char>('1' + (wv[i][0] - 'a'))));
  CHECK(run("HRANDFIELD h 0") == "*0\r\n");
  CHECK(run("HRANDFIELD h 1 bogus") == "-ERR syntax error\r\n");
  CHECK(run("HRANDFIELD h x") == "-ERR value is not an integer or out of range\r\n");
  CHECK(run("HRANDFIELD h -9223372036854775807 WITHVALUES") == "-ERR value is out of range\r\n");
}

TEST_CASE_FIXTURE(fixture, "HSCAN: whole small hashes, stateless cursors over big ones") {
  CHECK(run("HSCAN nokey 0") == "*2\r\n$1\r\n0\r\n*0\r\n");
  CHECK(run("HSET h a 1 b 2 ab 3") == ":3\r\n");
  CHECK(bulks(run("HSCAN h 0 MATCH a*")) == std::vector<std::string>{"0", "a", "1", "ab", "3"});
  CHECK(run("HSCAN h x") == "-ERR invalid cursor\r\n");
  CHECK(run("HSCAN h -1") == "-ERR invalid cursor\r\n");
  CHECK(run("HSCAN h 0 COUNT 0") == "-ERR syntax error\r\n");
  CHECK(run("HSCAN h 0 BOGUS 1") == "-ERR syntax error\r\n");
  // a big hash: 1000 fields, scanned 7 at a time while fields come and go;
  // every field present throughout is returned at least once
  std::vector<std::string> args{"HSET", "big"};
  for (int i = 0; i < 1000; ++i) {
    args.push_back("f" + std::to_string(i));
    args.push_back(std::to_string(i));
  }
  CHECK(run_args(args) == ":1000\r\n");
  std::set<std::string> seen;
  std::string cursor = "0";
  int calls = 0, churn = 0;
  do {
    auto r = bulks(run_args({"HSCAN", "big", cursor, "COUNT", "7"}));
    REQUIRE(!r.empty());
    cursor = r[0];
    for (size_t i = 1; i + 1 < r.size(); i += 2)
      seen.insert(r[i]);
    // churn: add and delete fields that are not part of the "throughout" set
    run("HSET big tmp" + std::to_string(churn) + " x");
    if (churn > 0)
      run("HDEL big tmp" + std::to_string(churn - 1));
    ++churn;
    REQUIRE(++calls < 2000);
  } while (cursor != "0");
  for (int i = 0; i < 1000; ++i)
    CHECK_MESSAGE(seen.count("f" + std::to_string(i)) == 1, i);
  CHECK(calls > 100); // it iterated, not dumped
}
