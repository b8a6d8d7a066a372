#include "tiers/envelope.hpp"
#include "tiers/random.hpp"

#include <doctest/doctest.h>

#include <map>
#include <vector>

using namespace kura;

namespace {
struct sample_msg {
  std::string key;
  uint64_t n = 0;
  MSGPACK_DEFINE(key, n);
};
} // namespace

TEST_CASE("envelope golden bytes") {
  auto bytes = seal(7, sample_msg{"k", 1});
  // [1, 7, bin8(4) [0x92, 0xa1 'k', 0x01]]
  const unsigned char want[] = {0x93, 0x01, 0x07, 0xc4, 0x04, 0x92, 0xa1, 'k', 0x01};
  REQUIRE(bytes.size() == sizeof(want));
  CHECK(std::equal(bytes.begin(), bytes.end(), reinterpret_cast<const char*>(want)));
  auto env = decode_envelope(bytes);
  REQUIRE(env.ok());
  CHECK(env->type == 7);
  auto msg = from_msgpack<sample_msg>(env->payload);
  REQUIRE(msg.ok());
  CHECK(msg->key == "k");
  CHECK(msg->n == 1);
}

TEST_CASE("envelope rejects garbage, truncation and other versions") {
  CHECK(decode_envelope("").code() == errc::decode_error);
  CHECK(decode_envelope("\xc1").code() == errc::decode_error);
  auto good = seal(1, sample_msg{"key", 9});
  for (size_t n = 0; n < good.size(); ++n)
    CHECK(decode_envelope(good.substr(0, n)).code() == errc::decode_error);
  CHECK(decode_envelope(good + "x").code() == errc::decode_error);
  auto v2 = encode_envelope(envelope{2, 1, "x"});
  CHECK(decode_envelope(v2).err().message.find("schema version 2") != std::string::npos);
  // payload of the wrong shape
  auto env = decode_envelope(seal(1, std::string("not a struct")));
  REQUIRE(env.ok());
  CHECK(from_msgpack<sample_msg>(env->payload).code() == errc::decode_error);
}

TEST_CASE("envelope survives random bytes") {
  rng r{1234};
  for (int i = 0; i < 20000; ++i) {
    std::string s(r.below(40), '\0');
    for (auto& c : s)
      c = static_cast<char>(r.next());
    if (r.chance(0.5) && !s.empty())
      s[0] = static_cast<char>(0x93);
    auto env = decode_envelope(s);
    if (env.ok())
      (void)from_msgpack<sample_msg>(env->payload);
  }
  CHECK(true);
}

// Found by tests/fuzz/message_decoder_fuzz (as slowness): msgpack allocates an
// array's elements when it reads the header, so six bytes claiming a million
// elements cost 16 MB per decode. A container cannot have more elements than
// there are bytes left, and that is now the limit.
TEST_CASE("an array header claiming more elements than bytes is refused up front") {
  std::string claim("\xdd\x00\x0f\xff\xff\x01", 6); // array32 of 1048575, one element
  auto r = kura::from_msgpack<std::vector<int>>(claim);
  REQUIRE_FALSE(r.ok());
  CHECK(r.err().code == kura::errc::decode_error);
  CHECK(r.err().message.find("array size overflow") != std::string::npos);
  std::string map_claim("\xdf\x00\x00\x00\x04\x01\x01", 7); // map32 of 4 pairs, one pair
  auto m = kura::from_msgpack<std::map<int, int>>(map_claim);
  REQUIRE_FALSE(m.ok());
  CHECK(m.err().message.find("map size overflow") != std::string::npos);
  std::vector<int> ok(1000, 7);
  auto back = kura::from_msgpack<std::vector<int>>(kura::to_msgpack(ok));
  REQUIRE(back.ok());
  CHECK(*back == ok);
}

TEST_CASE("decode_envelope_view reads what decode_envelope reads, the payload in place") {
  std::string payload(2000, 'p');
  auto bytes = encode_envelope(envelope{envelope_schema_version, 42, payload});
  auto v = decode_envelope_view(bytes);
  REQUIRE(v);
  CHECK(v->type == 42);
  CHECK(v->payload == payload);
  CHECK(v->payload.data() >= bytes.data());
  CHECK(v->payload.data() + v->payload.size() <= bytes.data() + bytes.size());
  CHECK(decode_envelope_view("").code() == errc::decode_error);
  CHECK(decode_envelope_view(bytes + "x").code() == errc::decode_error);
}
