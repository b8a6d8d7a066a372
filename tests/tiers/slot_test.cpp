#include "tiers/slot.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace kura;

TEST_CASE("crc16 is CRC16-XMODEM (the Redis Cluster spec's check value)") {
  CHECK(crc16("123456789") == 0x31C3);
  CHECK(crc16("") == 0);
}

TEST_CASE("key_slot matches Redis Cluster's CLUSTER KEYSLOT") {
  // Values from the Redis documentation and a redis-server in cluster mode.
  CHECK(key_slot("somekey") == 11058);
  CHECK(key_slot("foo") == 12182);
  CHECK(key_slot("bar") == 5061);
  CHECK(key_slot("foo{hash_tag}") == 2515);
  CHECK(key_slot("bar{hash_tag}") == 2515);
  CHECK(key_slot("123456789") == (0x31C3 & 16383));
  for (int i = 0; i < 1000; ++i)
    CHECK(key_slot("key:" + std::to_string(i)) < slot_count);
}

TEST_CASE("hash tags follow the Redis rules: first {, next }, non-empty") {
  CHECK(hash_tag("{user1000}.following") == "user1000");
  CHECK(key_slot("{user1000}.following") == key_slot("{user1000}.followers"));
  CHECK(hash_tag("foo{}{bar}") == "foo{}{bar}"); // empty first tag: whole key
  CHECK(hash_tag("foo{{bar}}zap") == "{bar");    // the tag starts after the first {
  CHECK(hash_tag("foo{bar}{zap}") == "bar");     // only the first tag counts
  CHECK(hash_tag("foo{bar") == "foo{bar");       // no closing brace
  CHECK(hash_tag("foo}bar{") == "foo}bar{");     // } before { does not close it
  CHECK(hash_tag("{a}") == "a");
  CHECK(key_slot("{a}x") == key_slot("a"));
  CHECK(hash_tag(std::string_view("\0{x}", 4)) == "x");
}
