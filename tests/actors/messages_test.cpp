// Golden bytes pin the wire encoding of every actor message (envelope
// [schema, type, bin payload] around the MSGPACK_DEFINE'd struct); decoding
// garbage, truncated input, a wrong type or a wrong shape returns an error.
#include "actors/messages.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>

#include <doctest/doctest.h>

using namespace kura::actors;

namespace {

std::string hex(const std::string& s) {
  static const char* d = "0123456789abcdef";
  std::string o;
  for (unsigned char c : s) {
    o += d[c >> 4];
    o += d[c & 15];
  }
  return o;
}

std::string unhex(std::string_view h) {
  std::string o;
  for (size_t i = 0; i + 1 < h.size(); i += 2)
    o += static_cast<char>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16));
  return o;
}

const wire_entry sample_entry{"k", "v", 1700000000000ull, (1700000000000ull << 16) | 1, 7, 0};

} // namespace

TEST_CASE("golden bytes of every message") {
  l3_batch b{
      1,
      {l3_op{l3_op::put, sample_entry}, l3_op{l3_op::erase, wire_entry{"gone", "", 0, 0, 0, 0}}}};
  CHECK(hex(encode_message(msg_type::l3_batch, b)) ==
        "930101c42b920192920096a16ba176cf0000018bcfe56800cf018bcfe5680000010700920196a4676f"
        "6e65a000000000");
  CHECK(hex(encode_message(msg_type::l3_lookup, l3_lookup{9, {"a", "b"}})) ==
        "930102c407920992a161a162");
  CHECK(hex(encode_message(msg_type::l3_found, l3_found{9, {sample_entry}})) ==
        "930103c41c92099196a16ba176cf0000018bcfe56800cf018bcfe5680000010700");
  CHECK(
      hex(encode_message(msg_type::l3_list, l3_list{l3_list::keys, "user:*", "user:1", 100, 0})) ==
      "930104c4129500a6757365723a2aa6757365723a316400");
  CHECK(hex(encode_message(msg_type::l3_listing, l3_listing{{"x", "y"}, 0, "y", false, {}, 0})) ==
        "930105c40d9692a178a17900a179c2c40000");
  CHECK(hex(encode_message(msg_type::kv_request, kv_request{kv_request::set, "k", "v", 5000})) ==
        "930106c4099401a16ba176cd1388");
  CHECK(hex(encode_message(msg_type::kv_reply, kv_reply{true, "v", 42, ""})) ==
        "930107c40694c3a1762aa0");
  CHECK(hex(encode_message(msg_type::node_status, node_status{{"state"}, {"up"}})) ==
        "930108c40c9291a5737461746591a27570");
}

TEST_CASE("round trips") {
  auto e = decode_message<l3_found>(
      msg_type::l3_found, encode_message(msg_type::l3_found, l3_found{3, {sample_entry}}));
  REQUIRE(e);
  CHECK(e->seq == 3);
  REQUIRE(e->entries.size() == 1);
  CHECK(e->entries[0] == sample_entry);
  auto back = wire_entry(e->entries[0]).to_entry();
  CHECK(back.ver.hlc == sample_entry.hlc);
  CHECK(back.ver.node == 7);
  CHECK(wire_entry::from(back) == sample_entry);
  std::string bin("\0\r\n\xff", 4);
  auto r = decode_message<kv_request>(
      msg_type::kv_request,
      encode_message(msg_type::kv_request, kv_request{kv_request::get, bin, bin, 0}));
  REQUIRE(r);
  CHECK(r->key == bin);
}

TEST_CASE("garbage, truncation, wrong type and wrong shape are errors") {
  auto good = encode_message(msg_type::kv_reply, kv_reply{true, "v", 42, ""});
  CHECK(!decode_message<kv_reply>(msg_type::kv_reply, ""));
  CHECK(!decode_message<kv_reply>(msg_type::kv_reply, "garbage"));
  for (size_t n = 0; n < good.size(); ++n)
    CHECK(!decode_message<kv_reply>(msg_type::kv_reply, good.substr(0, n)));
  auto wrong = decode_message<kv_reply>(msg_type::kv_request, good);
  REQUIRE(!wrong);
  CHECK(wrong.err().message.find("expected 6") != std::string::npos);
  // the right envelope type but a payload of another shape
  auto shape = kura::encode_envelope(kura::envelope{kura::envelope_schema_version,
                                                    static_cast<uint32_t>(msg_type::kv_reply),
                                                    kura::to_msgpack(l3_lookup{1, {"a"}})});
  CHECK(!decode_message<kv_reply>(msg_type::kv_reply, shape));
  // a future schema version is refused
  auto future = unhex("930207c40694c3a1762aa0");
  CHECK(!decode_message<kv_reply>(msg_type::kv_reply, future));
  // random bytes never crash
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (int i = 0; i < 3000; ++i) {
    std::string junk = good;
    for (int k = 0; k < 3; ++k) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      junk[x % junk.size()] = static_cast<char>(x >> 32);
    }
    (void)decode_message<kv_reply>(msg_type::kv_reply, junk);
    (void)decode_message<l3_batch>(msg_type::l3_batch, junk);
  }
}

TEST_CASE("CAF's inspect carries the same fields") {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  kv_reply in{true, std::string("a\0b", 3), 99, "err"};
  std::vector<char> buf;
  caf::binary_serializer sink{sys, buf};
  REQUIRE(!sink(in));
  kv_reply out;
  caf::binary_deserializer src{sys, buf};
  REQUIRE(!src(out));
  CHECK(out == in);
}
