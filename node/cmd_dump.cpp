// DUMP and RESTORE with Redis 7.0's serialization (RDB version 10), so a value
// DUMPed by kura RESTOREs on redis-server and the other way round:
//
//   u8 type | payload | u16 RDB version (LE) | u64 CRC-64/Jones of all before (LE)
//
// kura writes strings as type 0 (a plain length-prefixed string) and hashes
// as type 4 (field count, then field and value strings). RESTORE also reads
// what redis-server writes: strings in the integer encodings and LZF
// compressed, and hashes as listpack (type 16) or ziplist (type 13, RDB 9).
// Lists, sets, sorted sets, streams and modules: `ERR Bad data format`
// (kura has no such types). A payload of a newer RDB version or with a wrong
// checksum: `ERR DUMP payload version or checksum are wrong`.
#include "node/command_registry.hpp"
#include "node/command_util.hpp"
#include "node/hash_value.hpp"
#include "node/resp_parser.hpp"

#include <array>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

namespace kura::node {

namespace {

constexpr uint16_t rdb_version = 10;
constexpr uint8_t type_string = 0;
constexpr uint8_t type_hash = 4;
constexpr uint8_t type_hash_ziplist = 13;
constexpr uint8_t type_hash_listpack = 16;

/// CRC-64/Jones as Redis computes it (reflected, polynomial 0xad93d23594c935a9,
/// init 0, no final xor): crc64("123456789") == 0xe9c6d914c4b8d9ca.
uint64_t crc64(uint64_t crc, std::string_view s) {
  static const std::array<uint64_t, 256> table = [] {
    std::array<uint64_t, 256> t{};
    for (uint64_t i = 0; i < 256; ++i) {
      uint64_t c = i;
      for (int k = 0; k < 8; ++k)
        c = (c & 1) ? (c >> 1) ^ 0x95ac9329ac4bc9b5ull : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  for (unsigned char b : s)
    crc = table[(crc ^ b) & 0xff] ^ (crc >> 8);
  return crc;
}

void put_len(std::string& s, uint64_t n) {
  if (n < (1u << 6)) {
    s.push_back(static_cast<char>(n));
  } else if (n < (1u << 14)) {
    s.push_back(static_cast<char>(0x40 | (n >> 8)));
    s.push_back(static_cast<char>(n & 0xff));
  } else if (n <= 0xffffffffull) {
    s.push_back(static_cast<char>(0x80));
    for (int i = 3; i >= 0; --i)
      s.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  } else {
    s.push_back(static_cast<char>(0x81));
    for (int i = 7; i >= 0; --i)
      s.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  }
}

void put_string(std::string& s, std::string_view v) {
  put_len(s, v.size());
  s.append(v);
}

/// Reads a payload; every read checks the bytes left (false: bad format).
struct reader {
  std::string_view in;
  size_t pos = 0;

  bool byte(uint8_t& b) {
    if (pos >= in.size())
      return false;
    b = static_cast<uint8_t>(in[pos++]);
    return true;
  }
  bool bytes(size_t n, std::string_view& out) {
    if (in.size() - pos < n)
      return false;
    out = in.substr(pos, n);
    pos += n;
    return true;
  }
  /// A length, or (`special` set) an encoding of a string (0-3).
  bool len(uint64_t& n, int& special) {
    special = -1;
    uint8_t b = 0;
    if (!byte(b))
      return false;
    switch (b >> 6) {
    case 0:
      n = b & 0x3f;
      return true;
    case 1: {
      uint8_t c = 0;
      if (!byte(c))
        return false;
      n = (static_cast<uint64_t>(b & 0x3f) << 8) | c;
      return true;
    }
    case 2: {
      int w = b == 0x80 ? 4 : b == 0x81 ? 8 : 0;
      if (w == 0)
        return false;
      n = 0;
      for (int i = 0; i < w; ++i) {
        uint8_t c = 0;
        if (!byte(c))
          return false;
        n = (n << 8) | c;
      }
      return true;
    }
    default:
      special = b & 0x3f;
      return true;
    }
  }
  bool string(std::string& out) {
    uint64_t n = 0;
    int special = -1;
    if (!len(n, special))
      return false;
    std::string_view raw;
    if (special < 0) {
      if (!bytes(n, raw))
        return false;
      out.assign(raw);
      return true;
    }
    if (special <= 2) { // INT8 / INT16 / INT32, little endian, signed
      int w = 1 << special;
      if (!bytes(static_cast<size_t>(w), raw))
        return false;
      uint64_t u = 0;
      for (int i = w - 1; i >= 0; --i)
        u = (u << 8) | static_cast<uint8_t>(raw[static_cast<size_t>(i)]);
      int64_t v = w == 1   ? static_cast<int8_t>(u)
                  : w == 2 ? static_cast<int16_t>(u)
                           : static_cast<int32_t>(u);
      out = std::to_string(v);
      return true;
    }
    if (special != 3)
      return false;
    uint64_t clen = 0, ulen = 0;
    int sp = -1;
    if (!len(clen, sp) || sp >= 0 || !len(ulen, sp) || sp >= 0 || !bytes(clen, raw))
      return false;
    return lzf_decompress(raw, ulen, out);
  }
  /// LZF (liblzf's format, as Redis compresses strings).
  static bool lzf_decompress(std::string_view in, uint64_t ulen, std::string& out) {
    if (ulen > (512ull << 20))
      return false;
    out.clear();
    out.reserve(static_cast<size_t>(ulen));
    size_t i = 0;
    while (i < in.size()) {
      unsigned ctrl = static_cast<uint8_t>(in[i++]);
      if (ctrl < 32) { // literal run of ctrl+1 bytes
        size_t n = ctrl + 1;
        if (in.size() - i < n || out.size() + n > ulen)
          return false;
        out.append(in.substr(i, n));
        i += n;
        continue;
      }
      size_t n = ctrl >> 5;
      if (n == 7) {
        if (i >= in.size())
          return false;
        n += static_cast<uint8_t>(in[i++]);
      }
      if (i >= in.size())
        return false;
      size_t back = ((ctrl & 0x1f) << 8) + static_cast<uint8_t>(in[i++]) + 1;
      n += 2;
      if (back > out.size() || out.size() + n > ulen)
        return false;
      size_t from = out.size() - back;
      for (size_t k = 0; k < n; ++k) // may overlap: byte by byte
        out.push_back(out[from + k]);
    }
    return out.size() == ulen;
  }
};

/// The entries of a listpack (Redis 7's small-collection encoding).
bool listpack_entries(std::string_view lp, std::vector<std::string>& out) {
  if (lp.size() < 7)
    return false;
  size_t i = 6; // u32 total bytes, u16 count
  while (i < lp.size()) {
    uint8_t b = static_cast<uint8_t>(lp[i]);
    if (b == 0xff)
      return i + 1 == lp.size();
    size_t head = 0, len = 0;
    bool is_int = false;
    int64_t iv = 0;
    auto need = [&](size_t n) { return lp.size() - i >= n; };
    auto le = [&](size_t at, int w) {
      uint64_t u = 0;
      for (int k = w - 1; k >= 0; --k)
        u = (u << 8) | static_cast<uint8_t>(lp[at + static_cast<size_t>(k)]);
      return u;
    };
    if ((b & 0x80) == 0) { // 7-bit uint
      is_int = true;
      iv = b & 0x7f;
      head = 1;
    } else if ((b & 0xc0) == 0x80) { // 6-bit string length
      head = 1;
      len = b & 0x3f;
    } else if ((b & 0xe0) == 0xc0) { // 13-bit int
      if (!need(2))
        return false;
      is_int = true;
      uint64_t u = (static_cast<uint64_t>(b & 0x1f) << 8) | static_cast<uint8_t>(lp[i + 1]);
      iv = u >= (1u << 12) ? static_cast<int64_t>(u) - (1 << 13) : static_cast<int64_t>(u);
      head = 2;
    } else if ((b & 0xf0) == 0xe0) { // 12-bit string length
      if (!need(2))
        return false;
      len = (static_cast<size_t>(b & 0x0f) << 8) | static_cast<uint8_t>(lp[i + 1]);
      head = 2;
    } else if (b == 0xf0) { // 32-bit string length
      if (!need(5))
        return false;
      len = static_cast<size_t>(le(i + 1, 4));
      head = 5;
    } else if (b >= 0xf1 && b <= 0xf4) { // 16/24/32/64-bit int
      int w = b == 0xf1 ? 2 : b == 0xf2 ? 3 : b == 0xf3 ? 4 : 8;
      if (!need(1 + static_cast<size_t>(w)))
        return false;
      uint64_t u = le(i + 1, w);
      if (w < 8 && (u >> (8 * w - 1)) != 0)
        u |= ~0ull << (8 * w); // sign extension
      is_int = true;
      iv = static_cast<int64_t>(u);
      head = 1 + static_cast<size_t>(w);
    } else {
      return false;
    }
    size_t entry = head + len;
    if (!need(entry))
      return false;
    out.push_back(is_int ? std::to_string(iv) : std::string(lp.substr(i + head, len)));
    // the backlen: 1 byte per 7 bits of `entry`
    size_t back = entry < 128         ? 1
                  : entry < 16384     ? 2
                  : entry < 2097152   ? 3
                  : entry < 268435456 ? 4
                                      : 5;
    if (!need(entry + back))
      return false;
    i += entry + back;
  }
  return false;
}

/// The entries of a ziplist (RDB 9's small-hash encoding).
bool ziplist_entries(std::string_view zl, std::vector<std::string>& out) {
  if (zl.size() < 11)
    return false;
  size_t i = 10; // u32 bytes, u32 tail offset, u16 count
  auto le = [&](size_t at, int w) {
    uint64_t u = 0;
    for (int k = w - 1; k >= 0; --k)
      u = (u << 8) | static_cast<uint8_t>(zl[at + static_cast<size_t>(k)]);
    return u;
  };
  while (i < zl.size()) {
    if (static_cast<uint8_t>(zl[i]) == 0xff)
      return i + 1 == zl.size();
    i += static_cast<uint8_t>(zl[i]) < 254 ? 1 : 5; // prevlen
    if (i >= zl.size())
      return false;
    uint8_t b = static_cast<uint8_t>(zl[i]);
    size_t left = zl.size() - i;
    if ((b >> 6) == 0 || (b >> 6) == 1 || (b >> 6) == 2) {
      size_t head = 0, len = 0;
      if ((b >> 6) == 0) {
        head = 1;
        len = b & 0x3f;
      } else if ((b >> 6) == 1) {
        if (left < 2)
          return false;
        head = 2;
        len = (static_cast<size_t>(b & 0x3f) << 8) | static_cast<uint8_t>(zl[i + 1]);
      } else {
        if (left < 5)
          return false;
        head = 5;
        len = (static_cast<size_t>(static_cast<uint8_t>(zl[i + 1])) << 24) |
              (static_cast<size_t>(static_cast<uint8_t>(zl[i + 2])) << 16) |
              (static_cast<size_t>(static_cast<uint8_t>(zl[i + 3])) << 8) |
              static_cast<uint8_t>(zl[i + 4]);
      }
      if (left < head + len)
        return false;
      out.emplace_back(zl.substr(i + head, len));
      i += head + len;
      continue;
    }
    int64_t v = 0;
    size_t w = 0;
    if (b == 0xc0) {
      w = 2;
    } else if (b == 0xd0) {
      w = 4;
    } else if (b == 0xe0) {
      w = 8;
    } else if (b == 0xf0) {
      w = 3;
    } else if (b == 0xfe) {
      w = 1;
    } else if (b >= 0xf1 && b <= 0xfd) {
      v = (b & 0x0f) - 1;
    } else {
      return false;
    }
    if (left < 1 + w)
      return false;
    if (w > 0) {
      uint64_t u = le(i + 1, static_cast<int>(w));
      if (w < 8 && (u >> (8 * w - 1)) != 0)
        u |= ~0ull << (8 * w);
      v = static_cast<int64_t>(u);
    }
    out.push_back(std::to_string(v));
    i += 1 + w;
  }
  return false;
}

/// Redis's serialization of a live value.
std::string dump_value(std::string_view value, bool hash) {
  std::string s;
  if (hash) {
    std::vector<hashval::field_view> fields;
    hashval::decode(value, fields);
    s.push_back(static_cast<char>(type_hash));
    put_len(s, fields.size());
    for (auto& [f, v] : fields) {
      put_string(s, f);
      put_string(s, v);
    }
  } else {
    s.push_back(static_cast<char>(type_string));
    put_string(s, value);
  }
  s.push_back(static_cast<char>(rdb_version & 0xff));
  s.push_back(static_cast<char>(rdb_version >> 8));
  uint64_t crc = crc64(0, s);
  for (int i = 0; i < 8; ++i)
    s.push_back(static_cast<char>((crc >> (8 * i)) & 0xff));
  return s;
}

/// Parses a DUMP payload into kura's value (hash encoding when `hash`);
/// "" or the error.
std::string parse_payload(std::string_view p, std::string& value, bool& hash) {
  if (p.size() < 10)
    return "ERR DUMP payload version or checksum are wrong";
  size_t foot = p.size() - 10;
  uint16_t ver = static_cast<uint16_t>(static_cast<uint8_t>(p[foot]) |
                                       (static_cast<uint8_t>(p[foot + 1]) << 8));
  uint64_t crc = 0;
  for (int i = 7; i >= 0; --i)
    crc = (crc << 8) | static_cast<uint8_t>(p[foot + 2 + static_cast<size_t>(i)]);
  if (ver > rdb_version || crc64(0, p.substr(0, foot + 2)) != crc)
    return "ERR DUMP payload version or checksum are wrong";
  reader r{p.substr(0, foot)};
  uint8_t type = 0;
  if (!r.byte(type))
    return "ERR Bad data format";
  std::vector<std::string> items;
  if (type == type_string) {
    hash = false;
    if (!r.string(value))
      return "ERR Bad data format";
  } else if (type == type_hash) {
    uint64_t n = 0;
    int sp = -1;
    if (!r.len(n, sp) || sp >= 0 || n > p.size())
      return "ERR Bad data format";
    for (uint64_t i = 0; i < 2 * n; ++i) {
      items.emplace_back();
      if (!r.string(items.back()))
        return "ERR Bad data format";
    }
  } else if (type == type_hash_listpack || type == type_hash_ziplist) {
    std::string blob;
    if (!r.string(blob))
      return "ERR Bad data format";
    bool ok =
        type == type_hash_listpack ? listpack_entries(blob, items) : ziplist_entries(blob, items);
    if (!ok || items.size() % 2 != 0)
      return "ERR Bad data format";
  } else {
    return "ERR Bad data format";
  }
  if (r.pos != r.in.size())
    return "ERR Bad data format";
  if (type != type_string) {
    hash = true;
    std::vector<hashval::field_view> fields;
    for (size_t i = 0; i + 1 < items.size(); i += 2) {
      for (auto& f : fields)
        if (f.first == items[i])
          return "ERR Bad data format"; // a field twice
      fields.emplace_back(items[i], items[i + 1]);
    }
    if (fields.empty())
      return "ERR Bad data format"; // Redis never stores an empty hash
    value = hashval::encode(fields);
  }
  return {};
}

void cmd_dump(const command_args& a, command_context& c) {
  bool found = c.ks.view(a[1], [&](const keyspace::key_view& v) {
    put_bulk(c.out, dump_value(v.value, (v.flags & entry_flags::hash) != 0));
  });
  if (!found)
    put_nil(c.out);
}

// RESTORE key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds] [FREQ frequency]
void cmd_restore(const command_args& a, command_context& c) {
  bool replace = false, absttl = false;
  for (size_t i = 4; i < a.size(); ++i) {
    if (ieq(a[i], "replace")) {
      replace = true;
    } else if (ieq(a[i], "absttl")) {
      absttl = true;
    } else if ((ieq(a[i], "idletime") || ieq(a[i], "freq")) && i + 1 < a.size()) {
      // accepted as Redis accepts them; kura's W-TinyLFU keeps its own
      // recency and frequency (OBJECT IDLETIME / FREQ)
      int64_t n = 0;
      if (!parse_int64(a[i + 1], n))
        return put_error(c.out, err_not_int);
      if (n < 0 || (ieq(a[i], "freq") && n > 255))
        return put_error(c.out, ieq(a[i], "freq")
                                    ? "ERR Invalid FREQ value, must be >= 0 and <= 255"
                                    : "ERR Invalid IDLETIME value, must be >= 0");
      ++i;
    } else {
      return put_error(c.out, err_syntax);
    }
  }
  int64_t ttl = 0;
  if (!parse_int64(a[2], ttl))
    return put_error(c.out, err_not_int);
  if (ttl < 0)
    return put_error(c.out, "ERR Invalid TTL value, must be >= 0");
  if (!replace && c.ks.exists(a[1]))
    return put_error(c.out, "BUSYKEY Target key name already exists.");
  std::string value;
  bool hash = false;
  if (auto e = parse_payload(a[3], value, hash); !e.empty())
    return put_error(c.out, e);
  uint64_t now = c.ks.clock().now_ms();
  uint64_t expiry = ttl == 0 ? 0
                    : absttl ? static_cast<uint64_t>(ttl)
                             : now + static_cast<uint64_t>(ttl);
  if (expiry != 0 && expiry <= now) { // already expired: the key goes, as in Redis
    c.ks.erase(a[1]);
    return put_ok(c.out);
  }
  if (auto st = c.ks.write(a[1], std::move(value), expiry, hash ? entry_flags::hash : 0); !st.ok())
    return put_error(c.out, "ERR " + st.message());
  put_ok(c.out);
}

} // namespace

void register_dump_commands(command_registry& r) {
  r.add("dump", 2, "readonly", cmd_dump)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RO access")
      .acl("@keyspace @read @slow")
      .tips("nondeterministic_output")
      .doc("Return a serialized version of the value stored at the specified key.", "2.6.0",
           "generic", "O(1) to access the key and additional O(N*M) to serialize it");
  r.add("restore", -4, "write denyoom", cmd_restore)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "OW update")
      .acl("@keyspace @write @slow @dangerous")
      .doc("Create a key using the provided serialized value, previously obtained using DUMP.",
           "2.6.0", "generic",
           "O(1) to create the new key and additional O(N*M) to reconstruct it");
}

} // namespace kura::node
