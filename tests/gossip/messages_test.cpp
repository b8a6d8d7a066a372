#include "gossip/messages.hpp"

#include "tiers/random.hpp"

#include <doctest/doctest.h>

using namespace kura;
using namespace kura::gossip;

TEST_CASE("every message type round-trips through the envelope") {
  std::vector<message> all = {
      ping_msg{1, 2, 3, {member_update{4, "a:1", 5, 1, 6}}},
      ack_msg{7, 8, {}},
      ping_req_msg{9, 10, {}},
      nack_msg{11, 12},
      push_pull_msg{true, false, {member_update{1, "x", 2, 3, 1}}},
      replicate_msg{13, wire_entry{"k", "v", 0, 99, 2, 0}},
      replicate_ack_msg{14, key_version{"k", 99, 2}},
      fetch_msg{15, "k"},
      fetch_reply_msg{16, true, wire_entry{"k", "v", 5, 6, 7, 1}},
      invalidate_msg{key_version{"k", 1, 2}},
      invalidate_ack_msg{key_version{"k", 1, 2}},
      ae_digest_msg{17, 0, false, {}, std::vector<uint64_t>(256, 3)},
      ae_keys_msg{18, {1, 2}, {key_version{"a", 1, 1}}},
      ae_repair_msg{19, {wire_entry{"a", "b", 0, 1, 1, 0}}, {"c"}},
      handoff_msg{{wire_entry{"a", "b", 0, 1, 1, 0}}},
      handoff_ack_msg{{key_version{"a", 1, 1}}},
      tomb_check_msg{{key_version{"a", 1, 1}}},
      tomb_confirm_msg{{key_version{"a", 1, 1}}},
      hint_msg{20, 7, wire_entry{"k", "v", 0, 99, 2, 0}},
      hold_msg{key_version{"h", 5, 3}},
      hold_ack_msg{key_version{"h", 5, 3}, key_version{"h", 6, 1}},
      ae_tree_msg{21, 0, {}, std::vector<uint64_t>(16, 5)},
      ae_tree_msg{22, 8, {3, 255}, std::vector<uint64_t>(32, 6)},
  };
  for (auto& m : all) {
    auto bytes = encode(m);
    auto back = decode_message(bytes);
    REQUIRE(back.ok());
    CHECK(back->index() == m.index());
    CHECK(type_of(*back) == type_of(m));
    CHECK(encode(*back) == bytes);
  }
  auto r = decode_message(encode(ping_msg{1, 2, 3, {member_update{4, "a:1", 5, 1, 6}}}));
  auto& p = std::get<ping_msg>(*r);
  CHECK(p.gossip.at(0).addr == "a:1");
  CHECK(p.gossip.at(0).inc == 5);
}

TEST_CASE("garbage, truncation and bad values are decode errors, never crashes") {
  rng r(42);
  for (int i = 0; i < 20'000; ++i) {
    std::string junk(r.below(64), '\0');
    for (auto& c : junk)
      c = static_cast<char>(r.next());
    auto res = decode_message(junk);
    if (!res.ok())
      CHECK(res.code() == errc::decode_error);
  }
  // Truncations and bit flips of a valid message.
  auto good = encode(push_pull_msg{false, true, {member_update{1, "x", 2, 0, 1}}});
  for (size_t n = 0; n < good.size(); ++n)
    CHECK(!decode_message(good.substr(0, n)).ok());
  for (int i = 0; i < 5'000; ++i) {
    auto bad = good;
    bad[r.below(bad.size())] ^= static_cast<char>(1 + r.below(255));
    auto res = decode_message(bad);
    if (!res.ok())
      CHECK(res.code() == errc::decode_error);
  }
  CHECK(decode_message(seal(150, ping_msg{})).code() == errc::decode_error); // unknown type
  CHECK(decode_message(seal(static_cast<uint32_t>(msg_type::ping), std::string("x"))).code() ==
        errc::decode_error); // wrong payload shape
  CHECK(decode_message(encode(ping_msg{1, 2, 0, {member_update{4, "", 5, 9, 6}}})).code() ==
        errc::decode_error); // state out of range
  CHECK(decode_message(encode(ae_digest_msg{1, 0, false, {}, {1, 2, 3}})).code() ==
        errc::decode_error); // digest vector of the wrong size
  // Version-2 tree steps: bits 0/4/8/12 only, 16 digests per prefix, prefixes in range.
  CHECK(decode_message(encode(ae_tree_msg{1, 16, {1}, std::vector<uint64_t>(16)})).code() ==
        errc::decode_error);
  CHECK(decode_message(encode(ae_tree_msg{1, 4, {1}, std::vector<uint64_t>(15)})).code() ==
        errc::decode_error);
  CHECK(decode_message(encode(ae_tree_msg{1, 4, {16}, std::vector<uint64_t>(16)})).code() ==
        errc::decode_error);
  CHECK(decode_message(encode(ae_tree_msg{1, 0, {0}, std::vector<uint64_t>(16)})).code() ==
        errc::decode_error);
  CHECK(decode_message(encode(ae_tree_msg{1, 4, {}, {}})).code() == errc::decode_error);
}

TEST_CASE("encode_replicate writes encode(replicate_msg)'s bytes, and they decode back") {
  // the SET path packs views of the entry (no wire_entry copy): the bytes on
  // the wire must stay those of replicate_msg (older peers decode them)
  std::string big(1024, 'x');
  big[7] = '\0';
  std::vector<entry> es = {
      entry{"k", "v", 0, version{99, 2}, 0},
      entry{"key:{t}:000001", big, 1'700'000'000'123, version{~uint64_t{0} >> 1, 0xffffffffu}, 0},
      entry{"", "", 0, version{}, entry_flags::tombstone},
      entry{std::string(300, 'k'), std::string(70000, 'v'), 5, version{1, 1}, entry_flags::hash},
  };
  uint64_t rid = 0;
  for (auto& e : es) {
    rid = rid * 1000 + 77;
    auto bytes = encode_replicate(rid, e);
    CHECK(bytes == encode(replicate_msg{rid, wire_entry::from(e)}));
    auto m = decode_message(bytes);
    REQUIRE(m);
    auto* r = std::get_if<replicate_msg>(&*m);
    REQUIRE(r);
    CHECK(r->rid == rid);
    auto back = r->e.to_entry();
    CHECK(back.key == e.key);
    CHECK(back.value == e.value);
    CHECK(back.expiry_ms == e.expiry_ms);
    CHECK(back.ver == e.ver);
    CHECK(back.flags == e.flags);
  }
}
