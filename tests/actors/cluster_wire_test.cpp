// Peer batches as one buffer (actors/cluster_wire.hpp): the framing round-trips,
// and a truncated or corrupt buffer is refused whole with a clear error
// (never a crash, never a partly handled batch); the handshake's capability
// announcement parses and an older node's plain address announces none.
#include "actors/cluster_wire.hpp"

#include <doctest/doctest.h>

#include <random>

using namespace kura;
using namespace kura::actors;

namespace {

std::vector<std::string> frames_of(std::string_view buf, result<size_t>* res = nullptr) {
  std::vector<std::string> out;
  auto r = for_each_frame(buf, [&](std::string_view e) { out.emplace_back(e); });
  if (res)
    *res = r;
  return out;
}

} // namespace

TEST_CASE("peer batch framing round-trips envelopes of every length class") {
  std::vector<std::string> in{"a",
                              std::string(127, 'x'),
                              std::string(128, 'y'),
                              std::string(16384, 'z'),
                              std::string(300000, '\0'),
                              "last"};
  std::string buf;
  for (auto& e : in)
    append_frame(buf, e);
  CHECK(static_cast<uint8_t>(buf[0]) == frames_version);
  // 1 version byte + lengths 1,1,2,3,3,1 bytes
  CHECK(buf.size() == 1 + 1 + 1 + 2 + 3 + 3 + 1 + 1 + 127 + 128 + 16384 + 300000 + 4);
  result<size_t> r = size_t{0};
  auto out = frames_of(buf, &r);
  REQUIRE(r.ok());
  CHECK(r.value() == in.size());
  CHECK(out == in);
  CHECK(split_frames(buf) == in);
}

TEST_CASE("a truncated or corrupt peer batch is refused whole, with a reason") {
  std::string good;
  append_frame(good, "first envelope");
  append_frame(good, std::string(200, 'q'));

  SUBCASE("empty") {
    result<size_t> r = size_t{0};
    CHECK(frames_of("", &r).empty());
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().code == errc::decode_error);
    CHECK(r.err().message.find("empty") != std::string::npos);
  }
  SUBCASE("unknown version") {
    auto bad = good;
    bad[0] = 7;
    result<size_t> r = size_t{0};
    CHECK(frames_of(bad, &r).empty());
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().message.find("unknown version 7") != std::string::npos);
  }
  SUBCASE("every truncation: nothing handled, never a crash") {
    for (size_t n = 1; n < good.size(); ++n) {
      if (n == 1 + 1 + 14) // the cut falls exactly between the two frames: a valid batch of one
        continue;
      result<size_t> r = size_t{0};
      auto out = frames_of(std::string_view(good).substr(0, n), &r);
      INFO("cut at " << n);
      if (n == 1) { // the version byte alone: a batch of none
        CHECK(r.ok());
        continue;
      }
      CHECK_FALSE(r.ok());
      CHECK(out.empty()); // the first, whole frame was not handed out either
      CHECK(split_frames(std::string_view(good).substr(0, n)).empty());
    }
  }
  SUBCASE("a length past the end") {
    std::string bad(1, static_cast<char>(frames_version));
    bad += static_cast<char>(100);
    bad += "short";
    result<size_t> r = size_t{0};
    frames_of(bad, &r);
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().message.find("exceeds the 5 bytes left") != std::string::npos);
  }
  SUBCASE("a zero length") {
    std::string bad(1, static_cast<char>(frames_version));
    bad += '\0';
    result<size_t> r = size_t{0};
    frames_of(bad, &r);
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().message.find("out of range") != std::string::npos);
  }
  SUBCASE("an overlong length (more than 5 bytes of varint, or over the envelope bound)") {
    std::string bad(1, static_cast<char>(frames_version));
    bad += std::string(6, static_cast<char>(0xff));
    result<size_t> r = size_t{0};
    frames_of(bad, &r);
    CHECK_FALSE(r.ok());
    std::string big(1, static_cast<char>(frames_version));
    big += std::string(4, static_cast<char>(0xff)) + static_cast<char>(0x0f); // 2^32 - 1
    frames_of(big, &r);
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().message.find("out of range") != std::string::npos);
  }
  SUBCASE("random garbage never crashes and never hands out a frame past the buffer") {
    std::mt19937 rng(22);
    for (int i = 0; i < 20000; ++i) {
      std::string g(rng() % 64, '\0');
      for (auto& c : g)
        c = static_cast<char>(rng());
      if (!g.empty() && rng() % 2)
        g[0] = static_cast<char>(frames_version);
      size_t total = 0;
      auto r = for_each_frame(g, [&](std::string_view e) { total += e.size(); });
      CHECK(total <= g.size());
      if (!r.ok())
        CHECK(total == 0);
    }
  }
}

TEST_CASE("the handshake's capability announcement") {
  CHECK(caps_of_addr("127.0.0.1:7000") == 0); // an older node: none
  CHECK(caps_of_addr(addr_with_caps("127.0.0.1:7000", own_caps)) == own_caps);
  CHECK((own_caps & cap_framed_batch) != 0);
  CHECK(addr_without_caps(addr_with_caps("h:1", 5)) == "h:1");
  CHECK(addr_without_caps("h:1") == "h:1");
  CHECK(caps_of_addr("h:1 caps=") == 0);
  CHECK(caps_of_addr("h:1 caps=1x") == 0);
  CHECK(caps_of_addr("h:1 caps=99999999999") == 0);
}
