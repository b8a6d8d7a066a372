// The archive's on-disk layouts (segment header, block header, record, index
// value, segment row) with their encoders and checked decoders. Every decoder
// treats its input as untrusted: a bad length or magic is an error value.
// docs/formats-archive.md is the prose version of this file; keep them in step.
// Thread safety: free functions over values.
#pragma once

#include "archive/codec.hpp"
#include "tiers/entry.hpp"
#include "tiers/status.hpp"

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace kura::archive::format {

// -- little-endian helpers ------------------------------------------------------

inline void put_u8(std::string& s, uint8_t v) {
  s.push_back(static_cast<char>(v));
}
inline void put_u16(std::string& s, uint16_t v) {
  for (int i = 0; i < 2; ++i)
    s.push_back(static_cast<char>(v >> (8 * i)));
}
inline void put_u32(std::string& s, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    s.push_back(static_cast<char>(v >> (8 * i)));
}
inline void put_u64(std::string& s, uint64_t v) {
  for (int i = 0; i < 8; ++i)
    s.push_back(static_cast<char>(v >> (8 * i)));
}
inline uint64_t get_le(const char* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i)
    v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}
inline uint32_t get_u32(const char* p) {
  return static_cast<uint32_t>(get_le(p, 4));
}
inline uint64_t get_u64(const char* p) {
  return get_le(p, 8);
}

// -- segment header (40 bytes) ----------------------------------------------------

constexpr char segment_magic[8] = {'K', 'U', 'R', 'A', 'L', '4', 'S', 'G'};
/// 1: plaintext blocks (bytes 32..35 reserved, 0). 2: sealed blocks
/// (encryption at rest), bytes 32..35 = the key id the segment was started
/// with. Plaintext segments are still written as version 1.
constexpr uint16_t segment_format_version = 2;
constexpr uint16_t segment_format_plain = 1;
constexpr size_t segment_header_size = 40;

struct segment_header {
  codec_id codec = codec_id::lz4;
  int8_t level = 0;
  uint32_t dict_id = 0; ///< archive dictionary id (0 = none)
  uint64_t segment_id = 0;
  uint64_t created_ms = 0;
  uint32_t key_id = 0; ///< 0 = plaintext blocks; else sealed (format 2)
};

std::string encode(const segment_header& h);
/// foreign_file for a wrong magic/version, corrupt for a bad checksum.
result<segment_header> decode_segment_header(std::string_view bytes);

// -- block header (24 bytes) + payload ---------------------------------------------

constexpr uint32_t block_magic = 0x4b4c424bu; // "KBLK" read as little-endian u32
constexpr size_t block_header_size = 24;

struct block_header {
  uint32_t stored_len = 0; ///< compressed payload bytes following the header
  uint32_t raw_len = 0;    ///< decompressed bytes
  uint32_t records = 0;
  uint32_t payload_crc = 0; ///< crc32 of the payload
};

std::string encode(const block_header& h);
result<block_header> decode_block_header(std::string_view bytes);

// -- record (inside a decompressed block) -------------------------------------------

constexpr size_t record_header_size = 29;

/// Appends e's record to `raw`.
void append_record(std::string& raw, const entry& e);
/// Bytes append_record adds for e.
inline size_t record_size(const entry& e) {
  return record_header_size + e.key.size() + e.value.size();
}
/// Decodes the record at `offset` of `raw`; sets `next` to the following offset.
result<entry> decode_record(std::string_view raw, size_t offset, size_t* next = nullptr);
/// Only the key of the record at `offset` (no value copy).
result<std::string_view> record_key(std::string_view raw, size_t offset, size_t* next);

// -- index ---------------------------------------------------------------------------

/// Where an entry lives and its metadata (the value of the LMDB index).
struct location {
  uint64_t segment = 0;
  uint64_t block_offset = 0; ///< file offset of the block header
  uint32_t block_len = 0;    ///< header + payload bytes
  uint32_t record_offset = 0;
  uint32_t record_len = 0;
  uint64_t expiry_ms = 0;
  kura::version ver;
  uint8_t flags = 0;
  bool same_place(const location& o) const {
    return segment == o.segment && block_offset == o.block_offset &&
           record_offset == o.record_offset;
  }
};

/// Encoded with varints (docs/formats-archive.md); typically 20-30 bytes.
std::string encode(const location& l);
result<location> decode_location(std::string_view bytes);

/// LMDB keys are limited to 511 bytes: keys up to 400 bytes are stored as
/// 0x00 + key; longer ones as 0x01 + a 128-bit hash (the full key is in the
/// record and checked on every read, so a collision reads as a miss). With
/// encryption at rest every key is 0x02 + HMAC-SHA-256(store secret, key)
/// (archive.cpp).
std::string index_key(std::string_view key);
constexpr char index_key_sealed = 0x02;

/// "seg-00000000000000ff.kseg"
std::string segment_file_name(uint64_t id);
/// "dict-000000ff.zdict"
std::string dict_file_name(uint32_t id);
/// Parses names made by the two functions above.
bool parse_segment_file_name(std::string_view name, uint64_t& id);
bool parse_dict_file_name(std::string_view name, uint32_t& id);

// -- segment row (LMDB "segments" database) -------------------------------------------

struct segment_row {
  codec_id codec = codec_id::lz4;
  int8_t level = 0;
  uint32_t dict_id = 0;
  uint64_t created_ms = 0; ///< when the segment file was created
  uint64_t oldest_ms = 0;  ///< archive time of its oldest data
  uint64_t newest_ms = 0;  ///< archive time of its newest data
  uint64_t end_offset = 0; ///< committed file length (bytes past it are a torn tail)
  uint64_t raw_bytes = 0;  ///< decompressed bytes of all blocks
  uint64_t entries = 0;    ///< records written
  uint64_t live_entries = 0;
  uint64_t live_raw_bytes = 0;
  uint64_t max_expiry_ms = 0; ///< latest per-entry expiry; ~0 when some entry never expires
  uint32_t blocks = 0;
};

std::string encode(const segment_row& r);
result<segment_row> decode_segment_row(std::string_view bytes);

} // namespace kura::archive::format
