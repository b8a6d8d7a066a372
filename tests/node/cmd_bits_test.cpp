// Bit commands and LCS against the command table (memory keyspace, L3 off):
// replies byte for byte as Redis 7.0 gives them (values taken from Redis's
// documentation examples and its unit/bitops.tcl cases).
#include "command_fixture.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace kura;
using namespace kura::node;
using fixture = kura::node::testing::command_fixture;

TEST_CASE_FIXTURE(fixture, "SETBIT and GETBIT") {
  CHECK(run("SETBIT k 7 1") == ":0\r\n");
  CHECK(run("GET k") == "$1\r\n\x01\r\n");
  CHECK(run("SETBIT k 7 0") == ":1\r\n");
  CHECK(run("SETBIT k 0 1") == ":0\r\n");
  CHECK(run("GET k") == "$1\r\n\x80\r\n");
  CHECK(run("SETBIT k 17 1") == ":0\r\n"); // grows with zero bytes
  CHECK(run("STRLEN k") == ":3\r\n");
  CHECK(run("GETBIT k 0") == ":1\r\n");
  CHECK(run("GETBIT k 17") == ":1\r\n");
  CHECK(run("GETBIT k 1000") == ":0\r\n");
  CHECK(run("GETBIT nokey 3") == ":0\r\n");
  CHECK(run("SETBIT k -1 1") == "-ERR bit offset is not an integer or out of range\r\n");
  CHECK(run("SETBIT k 4294967296 1") == "-ERR bit offset is not an integer or out of range\r\n");
  CHECK(run("SETBIT k 1 2") == "-ERR bit is not an integer or out of range\r\n");
  CHECK(run("SETBIT k 1 -1") == "-ERR bit is not an integer or out of range\r\n");
  CHECK(run("GETBIT k x") == "-ERR bit offset is not an integer or out of range\r\n");
  CHECK(run("SET e v EX 100") == "+OK\r\n");
  CHECK(run("SETBIT e 0 1") == ":0\r\n");
  CHECK(run("TTL e") == ":100\r\n"); // expiry kept
  CHECK(run("HSET h f v") == ":1\r\n");
  CHECK(run("SETBIT h 0 1") ==
        "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
}

TEST_CASE_FIXTURE(fixture, "BITCOUNT with BYTE and BIT ranges") {
  CHECK(run("SET mykey foobar") == "+OK\r\n");
  CHECK(run("BITCOUNT mykey") == ":26\r\n");
  CHECK(run("BITCOUNT mykey 0 0") == ":4\r\n");
  CHECK(run("BITCOUNT mykey 1 1") == ":6\r\n");
  CHECK(run("BITCOUNT mykey 1 1 BYTE") == ":6\r\n");
  CHECK(run("BITCOUNT mykey 5 30 BIT") == ":17\r\n");
  CHECK(run("BITCOUNT mykey -2 -1") == ":7\r\n");
  CHECK(run("BITCOUNT mykey -1 -2") == ":0\r\n");
  CHECK(run("BITCOUNT mykey 0 1000") == ":26\r\n");
  CHECK(run("BITCOUNT mykey 0") == "-ERR syntax error\r\n");
  CHECK(run("BITCOUNT mykey 0 1 WORD") == "-ERR syntax error\r\n");
  CHECK(run("BITCOUNT mykey a 1") == "-ERR value is not an integer or out of range\r\n");
  CHECK(run("BITCOUNT nokey") == ":0\r\n");
}

TEST_CASE_FIXTURE(fixture, "BITPOS") {
  CHECK(run_args({"SET", "mykey", std::string("\xff\xf0\x00", 3)}) == "+OK\r\n");
  CHECK(run("BITPOS mykey 0") == ":12\r\n");
  CHECK(run_args({"SET", "mykey", std::string("\x00\xff\xf0", 3)}) == "+OK\r\n");
  CHECK(run("BITPOS mykey 1 0") == ":8\r\n");
  CHECK(run("BITPOS mykey 1 2") == ":16\r\n");
  CHECK(run("BITPOS mykey 1 2 -1 BYTE") == ":16\r\n");
  CHECK(run("BITPOS mykey 1 7 15 BIT") == ":8\r\n");
  CHECK(run("BITPOS mykey 1 7 -3 BIT") == ":8\r\n");
  CHECK(run_args({"SET", "ones", std::string("\xff\xff\xff", 3)}) == "+OK\r\n");
  CHECK(run("BITPOS ones 0") == ":24\r\n");      // zero padding to the right
  CHECK(run("BITPOS ones 0 0 -1") == ":-1\r\n"); // explicit end: no padding
  CHECK(run("BITPOS ones 0 1") == ":24\r\n");
  CHECK(run("BITPOS nokey 0") == ":0\r\n");
  CHECK(run("BITPOS nokey 1") == ":-1\r\n");
  CHECK(run("BITPOS mykey 2") == "-ERR The bit argument must be 1 or 0.\r\n");
  CHECK(run("BITPOS mykey 1 0 -1 WORD") == "-ERR syntax error\r\n");
  CHECK(run("BITPOS mykey 1 2 1") == ":-1\r\n"); // empty range
}

TEST_CASE_FIXTURE(fixture, "BITOP AND OR XOR NOT") {
  CHECK(run("SET key1 foobar") == "+OK\r\n");
  CHECK(run("SET key2 abcdef") == "+OK\r\n");
  CHECK(run("BITOP AND dest key1 key2") == ":6\r\n");
  CHECK(run("GET dest") == "$6\r\n`bc`ab\r\n");
  CHECK(run("BITOP OR dest key1 key2") == ":6\r\n");
  CHECK(run("GET dest") == "$6\r\ngoofev\r\n");
  CHECK(run_args({"SET", "a", std::string("\x01\x02\xff", 3)}) == "+OK\r\n");
  CHECK(run_args({"SET", "b", std::string("\x01", 1)}) == "+OK\r\n");
  CHECK(run("BITOP XOR dest a b") == ":3\r\n");
  CHECK(run("GET dest") == "$3\r\n" + std::string("\x00\x02\xff", 3) + "\r\n");
  CHECK(run("BITOP AND dest a b nokey") == ":3\r\n"); // a missing key is zeros
  CHECK(run("GET dest") == "$3\r\n" + std::string("\x00\x00\x00", 3) + "\r\n");
  CHECK(run("BITOP NOT dest a") == ":3\r\n");
  CHECK(run("GET dest") == "$3\r\n" + std::string("\xfe\xfd\x00", 3) + "\r\n");
  CHECK(run("BITOP NOT dest a b") == "-ERR BITOP NOT must be called with a single source key.\r\n");
  CHECK(run("BITOP NAND dest a b") == "-ERR syntax error\r\n");
  CHECK(run("BITOP OR dest nokey1 nokey2") == ":0\r\n");
  CHECK(run("EXISTS dest") == ":0\r\n"); // an empty result deletes the destination
  CHECK(run("HSET h f v") == ":1\r\n");
  CHECK(run("BITOP OR dest a h") ==
        "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
}

TEST_CASE_FIXTURE(fixture, "BITFIELD GET SET INCRBY with OVERFLOW, and BITFIELD_RO") {
  CHECK(run("BITFIELD mykey INCRBY i5 100 1 GET u4 0") == "*2\r\n:1\r\n:0\r\n");
  CHECK(run("BITFIELD bits SET i8 0 -100 GET i8 0 GET u8 0") == "*3\r\n:0\r\n:-100\r\n:156\r\n");
  CHECK(run("BITFIELD ov INCRBY u2 100 1 OVERFLOW SAT INCRBY u2 102 1") == "*2\r\n:1\r\n:1\r\n");
  CHECK(run("BITFIELD ov INCRBY u2 100 1 OVERFLOW SAT INCRBY u2 102 1") == "*2\r\n:2\r\n:2\r\n");
  CHECK(run("BITFIELD ov INCRBY u2 100 1 OVERFLOW SAT INCRBY u2 102 1") == "*2\r\n:3\r\n:3\r\n");
  CHECK(run("BITFIELD ov INCRBY u2 100 1 OVERFLOW SAT INCRBY u2 102 1") == "*2\r\n:0\r\n:3\r\n");
  CHECK(run("BITFIELD ov OVERFLOW FAIL INCRBY u2 102 1") == "*1\r\n$-1\r\n");
  CHECK(run("BITFIELD s SET i8 0 127 OVERFLOW WRAP INCRBY i8 0 1") == "*2\r\n:0\r\n:-128\r\n");
  CHECK(run("BITFIELD s OVERFLOW SAT INCRBY i8 0 -1000") == "*1\r\n:-128\r\n");
  CHECK(run("BITFIELD s OVERFLOW SAT SET u8 0 -1 GET u8 0") == "*2\r\n:128\r\n:255\r\n");
  CHECK(run("BITFIELD s SET u8 0 256 GET u8 0") == "*2\r\n:255\r\n:0\r\n"); // wrap
  CHECK(run("BITFIELD s SET i64 0 -1 GET i64 0 GET u63 1") ==
        "*3\r\n:0\r\n:-1\r\n:9223372036854775807\r\n");
  CHECK(run("BITFIELD s INCRBY i64 0 -9223372036854775807 OVERFLOW FAIL INCRBY i64 0 -1") ==
        "*2\r\n:-9223372036854775808\r\n$-1\r\n");
  CHECK(run("BITFIELD h SET u8 #1 200 GET u8 8 GET u8 #1") == "*3\r\n:0\r\n:200\r\n:200\r\n");
  CHECK(run("BITFIELD nokey GET u8 0") == "*1\r\n:0\r\n");
  CHECK(run("EXISTS nokey") == ":0\r\n");
  CHECK(run("BITFIELD_RO h GET u8 8") == "*1\r\n:200\r\n");
  CHECK(run("BITFIELD_RO h SET u8 8 1") == "-ERR BITFIELD_RO only supports the GET subcommand\r\n");
  CHECK(run("BITFIELD h GET u64 0") ==
        "-ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not "
        "supported but i64 is.\r\n");
  CHECK(run("BITFIELD h GET i0 0").find("-ERR Invalid bitfield type") == 0);
  CHECK(run("BITFIELD h GET x8 0").find("-ERR Invalid bitfield type") == 0);
  CHECK(run("BITFIELD h GET u8 -1") == "-ERR bit offset is not an integer or out of range\r\n");
  CHECK(run("BITFIELD h OVERFLOW MAYBE") == "-ERR Invalid OVERFLOW type specified\r\n");
  CHECK(run("BITFIELD h SET u8 0") == "-ERR syntax error\r\n");
  CHECK(run("BITFIELD h SET u8 0 x") == "-ERR value is not an integer or out of range\r\n");
  CHECK(run("BITFIELD h") == "*0\r\n");
}

TEST_CASE_FIXTURE(fixture, "LCS") {
  CHECK(run("MSET key1 ohmytext key2 mynewtext") == "+OK\r\n");
  CHECK(run("LCS key1 key2") == "$6\r\nmytext\r\n");
  CHECK(run("LCS key1 key2 LEN") == ":6\r\n");
  CHECK(run("LCS key1 key2 IDX") == "*4\r\n$7\r\nmatches\r\n*2\r\n"
                                    "*2\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n"
                                    "*2\r\n*2\r\n:2\r\n:3\r\n*2\r\n:0\r\n:1\r\n"
                                    "$3\r\nlen\r\n:6\r\n");
  CHECK(run("LCS key1 key2 IDX MINMATCHLEN 4 WITHMATCHLEN") ==
        "*4\r\n$7\r\nmatches\r\n*1\r\n*3\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n:4\r\n"
        "$3\r\nlen\r\n:6\r\n");
  CHECK(run("LCS key1 nokey") == "$0\r\n\r\n");
  CHECK(run("LCS key1 key2 LEN IDX") ==
        "-ERR If you want both the length and indexes, please just use IDX.\r\n");
  CHECK(run("LCS key1 key2 BOGUS") == "-ERR syntax error\r\n");
  CHECK(run("HSET h f v") == ":1\r\n");
  CHECK(run("LCS key1 h") == "-ERR The specified keys must contain string values\r\n");
}
