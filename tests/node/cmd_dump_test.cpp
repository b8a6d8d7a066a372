// DUMP / RESTORE: kura's payloads are Redis 7.0's (RDB 10, CRC-64/Jones), and
// payloads made by redis-server 7.0.15 (integer-encoded and LZF-compressed
// strings, listpack hashes) restore in kura.
#include "command_fixture.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace kura;
using namespace kura::node;
using fixture = kura::node::testing::command_fixture;

namespace {

std::string bytes(const char* s, size_t n) {
  return std::string(s, n);
}
#define B(lit) bytes(lit, sizeof(lit) - 1)

/// The bulk string's payload of a reply "$n\r\n...\r\n".
std::string bulk(const std::string& reply) {
  REQUIRE(reply.size() > 3);
  REQUIRE(reply[0] == '$');
  auto crlf = reply.find("\r\n");
  return reply.substr(crlf + 2, reply.size() - crlf - 4);
}

} // namespace

TEST_CASE_FIXTURE(fixture, "DUMP writes what redis-server 7.0.15 writes for a plain string") {
  CHECK(run("SET s1 hello") == "+OK\r\n");
  CHECK(bulk(run("DUMP s1")) ==
        B("\x00\x05\x68\x65\x6c\x6c\x6f\x0a\x00\x63\x72\xdf\x76\x65\x34\x20\x0a"));
  CHECK(run("DUMP nokey") == "$-1\r\n");
}

TEST_CASE_FIXTURE(fixture, "RESTORE reads redis-server's payloads") {
  // integer encodings (INT16 12345, INT32 -70000), LZF ("abc" x 20)
  CHECK(run_args({"RESTORE", "s2", "0",
                  B("\x00\xc1\x39\x30\x0a\x00\x9d\x94\xea\x27\x93\xfc\x08\xb9")}) == "+OK\r\n");
  CHECK(run("GET s2") == "$5\r\n12345\r\n");
  CHECK(run_args({"RESTORE", "s4", "0",
                  B("\x00\xc2\x90\xee\xfe\xff\x0a\x00\x28\x75\xde\x7b\x13\xeb\x28\x00")}) ==
        "+OK\r\n");
  CHECK(run("GET s4") == "$6\r\n-70000\r\n");
  CHECK(run_args({"RESTORE", "s3", "0",
                  B("\x00\xc3\x0b\x3c\x03\x61\x62\x63\x61\xe0\x2d\x02\x01\x62\x63\x0a\x00\x6f\x60"
                    "\x29\xe4\xaf\xd7\x64\xac")}) == "+OK\r\n");
  std::string abc;
  for (int i = 0; i < 20; ++i)
    abc += "abc";
  CHECK(run("GET s3") == "$60\r\n" + abc + "\r\n");
  // a listpack hash: f1 v1, f2 300 (13-bit int), f3 -5 (7-bit... negative: 13-bit)
  CHECK(run_args({"RESTORE", "h", "0",
                  B("\x10\x1d\x1d\x00\x00\x00\x06\x00\x82\x66\x31\x03\x82\x76\x31\x03\x82\x66\x32"
                    "\x03\xc1\x2c\x02\x82\x66\x33\x03\xdf\xfb\x02\xff\x0a\x00\x3f\xa1\xa3\x54\x30"
                    "\x9b\xc9\x02")}) == "+OK\r\n");
  CHECK(run("TYPE h") == "+hash\r\n");
  CHECK(run("HGET h f1") == "$2\r\nv1\r\n");
  CHECK(run("HGET h f2") == "$3\r\n300\r\n");
  CHECK(run("HGET h f3") == "$2\r\n-5\r\n");
  CHECK(run("HLEN h") == ":3\r\n");
}

TEST_CASE_FIXTURE(fixture, "DUMP/RESTORE round trip, TTL, REPLACE and errors") {
  CHECK(run("HSET h a 1 b 2") == ":2\r\n");
  CHECK(run("SET s value") == "+OK\r\n");
  std::string dh = bulk(run("DUMP h"));
  std::string ds = bulk(run("DUMP s"));
  CHECK(run_args({"RESTORE", "h", "0", dh}) == "-BUSYKEY Target key name already exists.\r\n");
  CHECK(run_args({"RESTORE", "h2", "0", dh}) == "+OK\r\n");
  CHECK(run("HGETALL h2") == "*4\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n");
  CHECK(run_args({"RESTORE", "h", "0", ds, "REPLACE"}) == "+OK\r\n");
  CHECK(run("TYPE h") == "+string\r\n");
  CHECK(run_args({"RESTORE", "t", "5000", ds}) == "+OK\r\n");
  CHECK(run("PTTL t") == ":5000\r\n");
  uint64_t now = clk.now_ms();
  CHECK(run_args({"RESTORE", "t2", std::to_string(now + 7000), ds, "ABSTTL"}) == "+OK\r\n");
  CHECK(run("PTTL t2") == ":7000\r\n");
  CHECK(run_args({"RESTORE", "t3", "1", ds, "ABSTTL"}) == "+OK\r\n"); // already expired
  CHECK(run("EXISTS t3") == ":0\r\n");
  CHECK(run_args({"RESTORE", "x", "-1", ds}) == "-ERR Invalid TTL value, must be >= 0\r\n");
  CHECK(run_args({"RESTORE", "x", "0", ds, "NOSUCH"}) == "-ERR syntax error\r\n");
  CHECK(run_args({"RESTORE", "x", "0", ds, "FREQ", "300"}) ==
        "-ERR Invalid FREQ value, must be >= 0 and <= 255\r\n");
  std::string bad = ds;
  bad[2] ^= 1; // checksum no longer matches
  CHECK(run_args({"RESTORE", "x", "0", bad}) ==
        "-ERR DUMP payload version or checksum are wrong\r\n");
  CHECK(run_args({"RESTORE", "x", "0", "short"}) ==
        "-ERR DUMP payload version or checksum are wrong\r\n");
  CHECK(run("EXISTS x") == ":0\r\n");
}
