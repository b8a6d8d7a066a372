#include "archive/format.hpp"

#include "tiers/hash.hpp"

#include <cstdio>

namespace kura::archive::format {

std::string encode(const segment_header& h) {
  std::string s(segment_magic, 8);
  put_u16(s, h.key_id != 0 ? segment_format_version : segment_format_plain);
  put_u8(s, static_cast<uint8_t>(h.codec));
  put_u8(s, static_cast<uint8_t>(h.level));
  put_u32(s, h.dict_id);
  put_u64(s, h.segment_id);
  put_u64(s, h.created_ms);
  put_u32(s, h.key_id); // 0 (reserved) in format 1
  put_u32(s, crc32(s));
  return s;
}

result<segment_header> decode_segment_header(std::string_view b) {
  if (b.size() < segment_header_size || std::memcmp(b.data(), segment_magic, 8) != 0)
    return error{errc::foreign_file, "not a kura archive segment (bad magic)"};
  auto ver = get_le(b.data() + 8, 2);
  if (ver != segment_format_version && ver != segment_format_plain)
    return error{errc::foreign_file,
                 "segment format version " + std::to_string(ver) + " is not supported"};
  if (crc32(b.substr(0, 36)) != get_u32(b.data() + 36))
    return error{errc::corrupt, "segment header checksum mismatch"};
  segment_header h;
  auto c = static_cast<uint8_t>(b[10]);
  if (c > static_cast<uint8_t>(codec_id::zstd_dict))
    return error{errc::corrupt, "segment header names unknown codec " + std::to_string(c)};
  h.codec = static_cast<codec_id>(c);
  h.level = static_cast<int8_t>(b[11]);
  h.dict_id = get_u32(b.data() + 12);
  h.segment_id = get_u64(b.data() + 16);
  h.created_ms = get_u64(b.data() + 24);
  h.key_id = ver == segment_format_plain ? 0 : get_u32(b.data() + 32);
  if (ver != segment_format_plain && h.key_id == 0)
    return error{errc::corrupt, "sealed segment header names key id 0"};
  return h;
}

std::string encode(const block_header& h) {
  std::string s;
  s.reserve(block_header_size);
  put_u32(s, block_magic);
  put_u32(s, h.stored_len);
  put_u32(s, h.raw_len);
  put_u32(s, h.records);
  put_u32(s, h.payload_crc);
  put_u32(s, crc32(s));
  return s;
}

result<block_header> decode_block_header(std::string_view b) {
  if (b.size() < block_header_size)
    return error{errc::corrupt, "block header truncated"};
  if (get_u32(b.data()) != block_magic)
    return error{errc::corrupt, "block header magic mismatch"};
  if (crc32(b.substr(0, 20)) != get_u32(b.data() + 20))
    return error{errc::corrupt, "block header checksum mismatch"};
  block_header h;
  h.stored_len = get_u32(b.data() + 4);
  h.raw_len = get_u32(b.data() + 8);
  h.records = get_u32(b.data() + 12);
  h.payload_crc = get_u32(b.data() + 16);
  return h;
}

void append_record(std::string& raw, const entry& e) {
  put_u32(raw, static_cast<uint32_t>(e.key.size()));
  put_u32(raw, static_cast<uint32_t>(e.value.size()));
  put_u64(raw, e.expiry_ms);
  put_u64(raw, e.ver.hlc);
  put_u32(raw, e.ver.node);
  put_u8(raw, e.flags);
  raw += e.key;
  raw += e.value;
}

result<std::string_view> record_key(std::string_view raw, size_t offset, size_t* next) {
  if (offset > raw.size() || raw.size() - offset < record_header_size)
    return error{errc::corrupt, "record header out of block bounds"};
  const char* p = raw.data() + offset;
  uint64_t klen = get_u32(p), vlen = get_u32(p + 4);
  if (klen + vlen > raw.size() - offset - record_header_size)
    return error{errc::corrupt, "record body out of block bounds"};
  if (next != nullptr)
    *next = offset + record_header_size + klen + vlen;
  return raw.substr(offset + record_header_size, klen);
}

result<entry> decode_record(std::string_view raw, size_t offset, size_t* next) {
  auto k = record_key(raw, offset, next);
  if (!k)
    return k.err();
  const char* p = raw.data() + offset;
  entry e;
  e.key.assign(k->data(), k->size());
  uint32_t vlen = get_u32(p + 4);
  e.value.assign(p + record_header_size + k->size(), vlen);
  e.expiry_ms = get_u64(p + 8);
  e.ver.hlc = get_u64(p + 16);
  e.ver.node = get_u32(p + 24);
  e.flags = static_cast<uint8_t>(p[28]);
  return e;
}

namespace {

// LEB128: 7 bits per byte, high bit = more bytes follow.
void put_varint(std::string& s, uint64_t v) {
  while (v >= 0x80) {
    s.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  s.push_back(static_cast<char>(v));
}

bool get_varint(std::string_view b, size_t& pos, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64 && pos < b.size(); shift += 7) {
    auto byte = static_cast<uint8_t>(b[pos++]);
    v |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0)
      return shift < 63 || byte <= 1;
  }
  return false;
}

} // namespace

std::string encode(const location& l) {
  // Varints: an index entry is read and written once per key, and its size
  // is most of the index's size (about 20 bytes instead of 50 fixed).
  std::string s;
  s.reserve(32);
  put_u8(s, 1);
  put_varint(s, l.segment);
  put_varint(s, l.block_offset);
  put_varint(s, l.block_len);
  put_varint(s, l.record_offset);
  put_varint(s, l.record_len);
  put_varint(s, l.expiry_ms);
  put_u64(s, l.ver.hlc);
  put_varint(s, l.ver.node);
  put_u8(s, l.flags);
  return s;
}

result<location> decode_location(std::string_view b) {
  if (b.empty() || b[0] != 1)
    return error{errc::corrupt, "index value has a bad version"};
  size_t pos = 1;
  uint64_t seg, off, blen, roff, rlen, expiry, node;
  if (!get_varint(b, pos, seg) || !get_varint(b, pos, off) || !get_varint(b, pos, blen) ||
      !get_varint(b, pos, roff) || !get_varint(b, pos, rlen) || !get_varint(b, pos, expiry) ||
      b.size() - pos < 8)
    return error{errc::corrupt, "index value truncated"};
  uint64_t hlc = get_u64(b.data() + pos);
  pos += 8;
  if (!get_varint(b, pos, node) || b.size() - pos != 1 || blen > 0xffffffffu ||
      roff > 0xffffffffu || rlen > 0xffffffffu || node > 0xffffffffu)
    return error{errc::corrupt, "index value malformed"};
  location l;
  l.segment = seg;
  l.block_offset = off;
  l.block_len = static_cast<uint32_t>(blen);
  l.record_offset = static_cast<uint32_t>(roff);
  l.record_len = static_cast<uint32_t>(rlen);
  l.expiry_ms = expiry;
  l.ver.hlc = hlc;
  l.ver.node = static_cast<uint32_t>(node);
  l.flags = static_cast<uint8_t>(b[pos]);
  return l;
}

std::string index_key(std::string_view key) {
  std::string s;
  if (key.size() <= 400) {
    s.reserve(key.size() + 1);
    s.push_back('\0');
    s.append(key.data(), key.size());
  } else {
    s.push_back('\1');
    put_u64(s, hash64(key, 0x6b757261));
    put_u64(s, hash64(key, 0x61727568));
  }
  return s;
}

std::string segment_file_name(uint64_t id) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "seg-%016llx.kseg", static_cast<unsigned long long>(id));
  return buf;
}

std::string dict_file_name(uint32_t id) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "dict-%08x.zdict", id);
  return buf;
}

namespace {
bool parse_hex(std::string_view s, uint64_t& out) {
  if (s.empty())
    return false;
  out = 0;
  for (char c : s) {
    int d;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else
      return false;
    out = (out << 4) | static_cast<uint64_t>(d);
  }
  return true;
}
} // namespace

bool parse_segment_file_name(std::string_view n, uint64_t& id) {
  return n.size() == 25 && n.substr(0, 4) == "seg-" && n.substr(20) == ".kseg" &&
         parse_hex(n.substr(4, 16), id);
}

bool parse_dict_file_name(std::string_view n, uint32_t& id) {
  uint64_t v;
  if (n.size() == 19 && n.substr(0, 5) == "dict-" && n.substr(13) == ".zdict" &&
      parse_hex(n.substr(5, 8), v)) {
    id = static_cast<uint32_t>(v);
    return true;
  }
  return false;
}

std::string encode(const segment_row& r) {
  std::string s;
  put_u8(s, 1);
  put_u8(s, static_cast<uint8_t>(r.codec));
  put_u8(s, static_cast<uint8_t>(r.level));
  put_u32(s, r.dict_id);
  put_u64(s, r.created_ms);
  put_u64(s, r.oldest_ms);
  put_u64(s, r.newest_ms);
  put_u64(s, r.end_offset);
  put_u64(s, r.raw_bytes);
  put_u64(s, r.entries);
  put_u64(s, r.live_entries);
  put_u64(s, r.live_raw_bytes);
  put_u64(s, r.max_expiry_ms);
  put_u32(s, r.blocks);
  return s;
}

result<segment_row> decode_segment_row(std::string_view b) {
  if (b.size() != 3 + 4 + 9 * 8 + 4 || b[0] != 1)
    return error{errc::corrupt, "segment row has a bad size or version"};
  segment_row r;
  auto c = static_cast<uint8_t>(b[1]);
  if (c > static_cast<uint8_t>(codec_id::zstd_dict))
    return error{errc::corrupt, "segment row names unknown codec"};
  r.codec = static_cast<codec_id>(c);
  r.level = static_cast<int8_t>(b[2]);
  const char* p = b.data() + 3;
  r.dict_id = get_u32(p);
  p += 4;
  r.created_ms = get_u64(p);
  r.oldest_ms = get_u64(p + 8);
  r.newest_ms = get_u64(p + 16);
  r.end_offset = get_u64(p + 24);
  r.raw_bytes = get_u64(p + 32);
  r.entries = get_u64(p + 40);
  r.live_entries = get_u64(p + 48);
  r.live_raw_bytes = get_u64(p + 56);
  r.max_expiry_ms = get_u64(p + 64);
  r.blocks = get_u32(p + 72);
  return r;
}

} // namespace kura::archive::format
