#include "archive/codec.hpp"
#include "archive/format.hpp"
#include "archive_test_util.hpp"

#include <doctest/doctest.h>

using namespace kura;
using namespace kura::archive;

TEST_CASE("crc32 is the zlib CRC-32") {
  CHECK(crc32("123456789") == 0xCBF43926u);
  CHECK(crc32("") == 0u);
  // Incremental equals one shot, across the 8-byte fast path.
  std::string s = test::json_value(1, 1000);
  CHECK(crc32(s.substr(500), crc32(s.substr(0, 500))) == crc32(s));
}

TEST_CASE("every codec round-trips and rejects damaged frames") {
  std::vector<std::string> samples;
  for (uint64_t i = 0; i < 300; ++i)
    samples.push_back(test::json_value(i, 200 + i % 300));
  auto trained = train_dictionary(samples, 8 * 1024);
  REQUIRE(trained.ok());
  auto dict = dictionary::load(5, *trained, 3);
  REQUIRE(dict.ok());
  CHECK((*dict)->id() == 5);
  codec_context ctx;
  std::string src;
  for (uint64_t i = 1000; i < 1040; ++i)
    src += test::json_value(i, 300);
  for (auto c : {codec_id::none, codec_id::lz4, codec_id::zstd, codec_id::zstd_dict}) {
    CAPTURE(to_string(c));
    std::string z, back;
    REQUIRE(ctx.compress(c, 3, dict->get(), src, z).ok());
    if (c != codec_id::none)
      CHECK(z.size() < src.size() / 2);
    REQUIRE(ctx.decompress(c, dict->get(), z, src.size(), back).ok());
    CHECK(back == src);
    // A wrong length or a flipped byte is a corrupt error, never a crash.
    CHECK(ctx.decompress(c, dict->get(), z, src.size() + 1, back).code() == errc::corrupt);
    if (c != codec_id::none) {
      std::string bad = z;
      bad[bad.size() / 2] ^= 0x5a;
      bad.resize(bad.size() - 3);
      CHECK_FALSE(ctx.decompress(c, dict->get(), bad, src.size(), back).ok());
    }
  }
  CHECK(parse_codec("zstd+dictionary").ok());
  CHECK(parse_codec("gzip").code() == errc::invalid_argument);
  CHECK(dictionary::load(1, "not a dictionary", 3).code() == errc::corrupt);
  CHECK(train_dictionary({"a", "b"}, 4096).code() == errc::invalid_argument);
}

TEST_CASE("format decoders survive random bytes") {
  rng r(42);
  for (int i = 0; i < 20000; ++i) {
    std::string b(r.below(80), '\0');
    for (auto& c : b)
      c = static_cast<char>(r.next());
    if (b.size() >= 8 && r.chance(0.3))
      std::memcpy(b.data(), format::segment_magic, 8);
    (void)format::decode_segment_header(b);
    (void)format::decode_block_header(b);
    (void)format::decode_location(b);
    (void)format::decode_segment_row(b);
    (void)format::decode_record(b, r.below(b.size() + 2));
  }
  // And the encoders round-trip.
  format::location l;
  l.segment = 9;
  l.block_offset = 1234;
  l.block_len = 99;
  l.record_offset = 3;
  l.record_len = 40;
  l.expiry_ms = 77;
  l.ver = version{5, 6};
  l.flags = 1;
  auto d = format::decode_location(format::encode(l));
  REQUIRE(d.ok());
  CHECK(d->same_place(l));
  CHECK(d->expiry_ms == 77);
  CHECK(d->ver == l.ver);
  format::segment_header h;
  h.codec = codec_id::zstd_dict;
  h.dict_id = 3;
  h.segment_id = 17;
  auto hs = format::encode(h);
  CHECK(hs.size() == format::segment_header_size);
  auto hd = format::decode_segment_header(hs);
  REQUIRE(hd.ok());
  CHECK(hd->segment_id == 17);
  hs[20] ^= 1;
  CHECK(format::decode_segment_header(hs).code() == errc::corrupt);
  CHECK(format::decode_segment_header("KURAXXXXxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx").code() ==
        errc::foreign_file);
  uint64_t id;
  CHECK(format::parse_segment_file_name(format::segment_file_name(0xabc), id));
  CHECK(id == 0xabc);
  uint32_t did;
  CHECK(format::parse_dict_file_name(format::dict_file_name(0x12), did));
  CHECK(did == 0x12);
  CHECK(format::index_key(std::string(500, 'k')).size() == 17);
  CHECK(format::index_key("abc") == std::string("\0abc", 4));
}
