// Bit operations and LCS on strings: SETBIT GETBIT BITCOUNT BITPOS BITOP
// BITFIELD BITFIELD_RO LCS. Bit 0 is the most significant bit of byte 0, as
// in Redis; a missing key is an empty string (all zero bits); writes grow
// the string with zero bytes and keep its expiry (BITOP's destination, a new
// value, has none). Offsets are bounded by proto-max-bulk-len as in Redis.
#include "node/command_registry.hpp"
#include "node/command_util.hpp"
#include "node/resp_parser.hpp"

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

namespace kura::node {

namespace {

constexpr std::string_view err_offset = "ERR bit offset is not an integer or out of range";

/// Parses a bit offset ("#n" = n * bits when `bits` > 0, for BITFIELD).
bool parse_offset(std::string_view s, uint64_t max_bytes, int bits, uint64_t& out) {
  bool hash = bits > 0 && !s.empty() && s[0] == '#';
  int64_t v = 0;
  if (!parse_int64(hash ? s.substr(1) : s, v))
    return false;
  if (hash) {
    if (v > INT64_MAX / bits || v < INT64_MIN / bits)
      return false;
    v *= bits;
  }
  if (v < 0 || (static_cast<uint64_t>(v) >> 3) >= max_bytes)
    return false;
  out = static_cast<uint64_t>(v);
  return true;
}

bool bit_at(std::string_view s, uint64_t bit) {
  uint64_t byte = bit >> 3;
  if (byte >= s.size())
    return false;
  return (static_cast<uint8_t>(s[byte]) >> (7 - (bit & 7))) & 1;
}

void set_bit(std::string& s, uint64_t bit, bool on) {
  auto& b = reinterpret_cast<uint8_t&>(s[bit >> 3]);
  uint8_t m = static_cast<uint8_t>(1u << (7 - (bit & 7)));
  b = on ? static_cast<uint8_t>(b | m) : static_cast<uint8_t>(b & ~m);
}

/// Loads string `key` for a bit write (empty when missing). False after the
/// WRONGTYPE reply.
bool load_string(command_context& c, std::string_view key, std::string& v, uint64_t& expiry) {
  auto e = c.ks.get(key);
  if (!e)
    return true;
  if (e->flags & entry_flags::hash) {
    put_error(c.out, err_wrongtype);
    return false;
  }
  v = std::move(e->value);
  expiry = e->expiry_ms;
  return true;
}

bool store_string(command_context& c, std::string_view key, std::string v, uint64_t expiry) {
  if (auto st = c.ks.write(key, std::move(v), expiry); !st.ok()) {
    put_error(c.out, "ERR " + st.message());
    return false;
  }
  return true;
}

void cmd_setbit(const command_args& a, command_context& c) {
  uint64_t off = 0;
  if (!parse_offset(a[2], c.facts.proto_max_bulk_len, 0, off))
    return put_error(c.out, err_offset);
  if (a[3] != "0" && a[3] != "1")
    return put_error(c.out, "ERR bit is not an integer or out of range");
  std::string v;
  uint64_t expiry = 0;
  if (!load_string(c, a[1], v, expiry))
    return;
  if (v.size() <= (off >> 3))
    v.resize((off >> 3) + 1, '\0');
  bool old = bit_at(v, off);
  set_bit(v, off, a[3] == "1");
  if (store_string(c, a[1], std::move(v), expiry))
    put_int(c.out, old ? 1 : 0);
}

void cmd_getbit(const command_args& a, command_context& c) {
  uint64_t off = 0;
  if (!parse_offset(a[2], c.facts.proto_max_bulk_len, 0, off))
    return put_error(c.out, err_offset);
  bool bit = false;
  if (read_typed(c, a[1], false, [&](std::string_view v) { bit = bit_at(v, off); }) >= 0)
    put_int(c.out, bit ? 1 : 0);
}

/// Resolves Redis's start/end (negative from the end) over `total` units
/// into [s, e]; false when the range is empty.
bool resolve_range(int64_t s, int64_t e, int64_t total, int64_t& rs, int64_t& re) {
  if (s < 0)
    s += total;
  if (e < 0)
    e += total;
  s = std::max<int64_t>(s, 0);
  e = std::max<int64_t>(e, 0);
  e = std::min<int64_t>(e, total - 1);
  rs = s, re = e;
  return s <= e;
}

/// Parses BYTE|BIT; false after the syntax error.
bool parse_unit(std::string_view s, bool& bits, out_buffer& out) {
  if (ieq(s, "bit"))
    bits = true;
  else if (ieq(s, "byte"))
    bits = false;
  else {
    put_error(out, err_syntax);
    return false;
  }
  return true;
}

uint64_t count_bits(std::string_view v, uint64_t from_bit, uint64_t to_bit) {
  uint64_t n = 0;
  uint64_t b = from_bit;
  for (; b <= to_bit && (b & 7); ++b)
    n += bit_at(v, b);
  for (; b + 7 <= to_bit; b += 8)
    n += static_cast<uint64_t>(__builtin_popcount(static_cast<uint8_t>(v[b >> 3])));
  for (; b <= to_bit; ++b)
    n += bit_at(v, b);
  return n;
}

void cmd_bitcount(const command_args& a, command_context& c) {
  auto& out = c.out;
  int64_t s = 0, e = -1;
  bool bits = false;
  if (a.size() == 3 || a.size() > 5)
    return put_error(out, err_syntax);
  if (a.size() >= 4) {
    if (!parse_int64(a[2], s) || !parse_int64(a[3], e))
      return put_error(out, err_not_int);
    if (a.size() == 5 && !parse_unit(a[4], bits, out))
      return;
  }
  uint64_t n = 0;
  int r = read_typed(c, a[1], false, [&](std::string_view v) {
    auto len = static_cast<int64_t>(v.size());
    int64_t rs = 0, re = 0;
    if (s < 0 && e < 0 && s > e)
      return;
    if (!resolve_range(s, e, bits ? len * 8 : len, rs, re))
      return;
    if (bits)
      n = count_bits(v, static_cast<uint64_t>(rs), static_cast<uint64_t>(re));
    else
      n = count_bits(v, static_cast<uint64_t>(rs) * 8, static_cast<uint64_t>(re) * 8 + 7);
  });
  if (r >= 0)
    put_int(out, static_cast<int64_t>(n));
}

void cmd_bitpos(const command_args& a, command_context& c) {
  auto& out = c.out;
  int64_t want = 0;
  if (!parse_int64(a[2], want))
    return put_error(out, err_not_int);
  if (want != 0 && want != 1)
    return put_error(out, "ERR The bit argument must be 1 or 0.");
  if (a.size() > 6)
    return put_error(out, err_syntax);
  int64_t s = 0, e = -1;
  bool bits = false, end_given = false;
  if (a.size() >= 4 && !parse_int64(a[3], s))
    return put_error(out, err_not_int);
  if (a.size() == 6 && !parse_unit(a[5], bits, out))
    return;
  if (a.size() >= 5) {
    if (!parse_int64(a[4], e))
      return put_error(out, err_not_int);
    end_given = true;
  }
  int64_t pos = want ? -1 : 0;
  int r = read_typed(c, a[1], false, [&](std::string_view v) {
    auto len = static_cast<int64_t>(v.size());
    int64_t rs = 0, re = 0;
    pos = -1;
    if (!resolve_range(s, e, bits ? len * 8 : len, rs, re))
      return;
    uint64_t from = bits ? static_cast<uint64_t>(rs) : static_cast<uint64_t>(rs) * 8;
    uint64_t to = bits ? static_cast<uint64_t>(re) : static_cast<uint64_t>(re) * 8 + 7;
    uint8_t skip = want ? 0x00 : 0xff; // bytes that cannot hold the bit sought
    for (uint64_t b = from; b <= to;) {
      if ((b & 7) == 0 && b + 7 <= to && static_cast<uint8_t>(v[b >> 3]) == skip) {
        b += 8;
        continue;
      }
      if (bit_at(v, b) == (want == 1)) {
        pos = static_cast<int64_t>(b);
        return;
      }
      ++b;
    }
    // looking for 0 without an explicit end: the string continues with zeros
    if (!want && !end_given)
      pos = static_cast<int64_t>(to + 1);
  });
  if (r >= 0)
    put_int(out, pos);
}

void cmd_bitop(const command_args& a, command_context& c) {
  auto& out = c.out;
  enum { op_and, op_or, op_xor, op_not } op;
  if (ieq(a[1], "and"))
    op = op_and;
  else if (ieq(a[1], "or"))
    op = op_or;
  else if (ieq(a[1], "xor"))
    op = op_xor;
  else if (ieq(a[1], "not"))
    op = op_not;
  else
    return put_error(out, err_syntax);
  if (op == op_not && a.size() != 4)
    return put_error(out, "ERR BITOP NOT must be called with a single source key.");
  std::vector<std::string> src;
  size_t maxlen = 0;
  for (size_t i = 3; i < a.size(); ++i) {
    auto e = c.ks.get(a[i]);
    if (e && (e->flags & entry_flags::hash))
      return put_error(out, err_wrongtype);
    src.push_back(e ? std::move(e->value) : std::string{});
    maxlen = std::max(maxlen, src.back().size());
  }
  if (maxlen == 0) {
    c.ks.erase(a[2]);
    return put_int(out, 0);
  }
  std::string r(maxlen, '\0');
  for (size_t j = 0; j < maxlen; ++j) {
    auto byte = [&](size_t k) -> uint8_t {
      return j < src[k].size() ? static_cast<uint8_t>(src[k][j]) : 0;
    };
    uint8_t x = byte(0);
    for (size_t k = 1; k < src.size(); ++k)
      x = op == op_and ? (x & byte(k)) : op == op_or ? (x | byte(k)) : (x ^ byte(k));
    if (op == op_not)
      x = static_cast<uint8_t>(~x);
    r[j] = static_cast<char>(x);
  }
  if (store_string(c, a[2], std::move(r), 0))
    put_int(out, static_cast<int64_t>(maxlen));
}

// -- BITFIELD ------------------------------------------------------------------------

enum class overflow_kind { wrap, sat, fail };

struct bf_op {
  enum kind_t { get, set, incrby } kind;
  bool sign;
  int bits;
  uint64_t offset;
  int64_t arg;
  overflow_kind ov;
};

uint64_t get_field(std::string_view v, uint64_t off, int bits) {
  uint64_t x = 0;
  for (int i = 0; i < bits; ++i)
    x = (x << 1) | (bit_at(v, off + static_cast<uint64_t>(i)) ? 1 : 0);
  return x;
}

void set_field(std::string& v, uint64_t off, int bits, uint64_t x) {
  for (int i = 0; i < bits; ++i)
    set_bit(v, off + static_cast<uint64_t>(i), (x >> (bits - 1 - i)) & 1);
}

/// Value of a field as the op's type sees it.
int64_t as_value(uint64_t raw, const bf_op& o) {
  if (!o.sign || o.bits == 64)
    return static_cast<int64_t>(raw);
  uint64_t sign_bit = 1ull << (o.bits - 1);
  return (raw & sign_bit) ? static_cast<int64_t>(raw | ~((sign_bit << 1) - 1))
                          : static_cast<int64_t>(raw);
}

/// Fits `x` into the op's type per its overflow policy; false on FAIL.
bool fit(__int128 x, const bf_op& o, int64_t& out) {
  __int128 lo, hi;
  if (o.sign) {
    hi = (static_cast<__int128>(1) << (o.bits - 1)) - 1;
    lo = -hi - 1;
  } else {
    hi = (static_cast<__int128>(1) << o.bits) - 1;
    lo = 0;
  }
  if (x >= lo && x <= hi) {
    out = static_cast<int64_t>(x);
    return true;
  }
  switch (o.ov) {
  case overflow_kind::fail:
    return false;
  case overflow_kind::sat:
    out = static_cast<int64_t>(x > hi ? hi : lo);
    return true;
  case overflow_kind::wrap:
    break;
  }
  auto low = static_cast<uint64_t>(x); // the low 64 bits, two's complement
  if (o.bits < 64)
    low &= (1ull << o.bits) - 1;
  out = o.sign ? as_value(low, o) : static_cast<int64_t>(low);
  return true;
}

void bitfield_generic(const command_args& a, command_context& c, bool ro) {
  auto& out = c.out;
  std::vector<bf_op> ops;
  overflow_kind ov = overflow_kind::wrap;
  bool writes = false;
  for (size_t j = 2; j < a.size(); ++j) {
    size_t rem = a.size() - j - 1;
    bf_op o{};
    if (ieq(a[j], "get") && rem >= 2) {
      o.kind = bf_op::get;
    } else if (ieq(a[j], "set") && rem >= 3) {
      o.kind = bf_op::set;
    } else if (ieq(a[j], "incrby") && rem >= 3) {
      o.kind = bf_op::incrby;
    } else if (ieq(a[j], "overflow") && rem >= 1) {
      ++j;
      if (ieq(a[j], "wrap"))
        ov = overflow_kind::wrap;
      else if (ieq(a[j], "sat"))
        ov = overflow_kind::sat;
      else if (ieq(a[j], "fail"))
        ov = overflow_kind::fail;
      else
        return put_error(out, "ERR Invalid OVERFLOW type specified");
      continue;
    } else {
      return put_error(out, err_syntax);
    }
    auto type = a[j + 1];
    int64_t bits = 0;
    if (type.empty() || (type[0] != 'i' && type[0] != 'u') || !parse_int64(type.substr(1), bits) ||
        bits < 1 || bits > (type[0] == 'i' ? 64 : 63))
      return put_error(out, "ERR Invalid bitfield type. Use something like i16 u8. Note that "
                            "u64 is not supported but i64 is.");
    o.sign = type[0] == 'i';
    o.bits = static_cast<int>(bits);
    if (!parse_offset(a[j + 2], c.facts.proto_max_bulk_len, o.bits, o.offset))
      return put_error(out, err_offset);
    if (o.kind != bf_op::get) {
      writes = true;
      if (!parse_int64(a[j + 3], o.arg))
        return put_error(out, err_not_int);
    }
    o.ov = ov;
    ops.push_back(o);
    j += o.kind == bf_op::get ? 2 : 3;
  }
  if (!writes) {
    std::string v;
    if (read_typed(c, a[1], false, [&](std::string_view x) { v.assign(x); }) < 0)
      return;
    put_array_header(out, ops.size());
    for (auto& o : ops)
      put_int(out, as_value(get_field(v, o.offset, o.bits), o));
    return;
  }
  if (ro)
    return put_error(out, "ERR BITFIELD_RO only supports the GET subcommand");
  std::string v;
  uint64_t expiry = 0;
  if (!load_string(c, a[1], v, expiry))
    return;
  uint64_t need = 0;
  for (auto& o : ops)
    if (o.kind != bf_op::get)
      need = std::max(need, ((o.offset + static_cast<uint64_t>(o.bits) - 1) >> 3) + 1);
  if (v.size() < need)
    v.resize(need, '\0');
  out_buffer replies;
  for (auto& o : ops) {
    int64_t old = as_value(get_field(v, o.offset, o.bits), o);
    if (o.kind == bf_op::get) {
      put_int(replies, old);
      continue;
    }
    __int128 want = o.kind == bf_op::incrby ? static_cast<__int128>(old) + o.arg
                    : o.sign                ? static_cast<__int128>(o.arg)
                                            : static_cast<__int128>(static_cast<uint64_t>(o.arg));
    int64_t nv = 0;
    if (!fit(want, o, nv)) {
      put_nil(replies);
      continue;
    }
    set_field(v, o.offset, o.bits, static_cast<uint64_t>(nv));
    put_int(replies, o.kind == bf_op::incrby ? nv : old);
  }
  if (!store_string(c, a[1], std::move(v), expiry))
    return;
  put_array_header(out, ops.size());
  out.insert(out.end(), replies.begin(), replies.end());
}

void cmd_bitfield(const command_args& a, command_context& c) {
  bitfield_generic(a, c, false);
}
void cmd_bitfield_ro(const command_args& a, command_context& c) {
  bitfield_generic(a, c, true);
}

// -- LCS ------------------------------------------------------------------------------

void cmd_lcs(const command_args& a, command_context& c) {
  auto& out = c.out;
  auto ea = c.ks.get(a[1]);
  auto eb = c.ks.get(a[2]);
  if ((ea && (ea->flags & entry_flags::hash)) || (eb && (eb->flags & entry_flags::hash)))
    return put_error(out, "ERR The specified keys must contain string values");
  bool getlen = false, getidx = false, withmatchlen = false;
  int64_t minmatch = 0;
  for (size_t j = 3; j < a.size(); ++j) {
    if (ieq(a[j], "idx")) {
      getidx = true;
    } else if (ieq(a[j], "len")) {
      getlen = true;
    } else if (ieq(a[j], "withmatchlen")) {
      withmatchlen = true;
    } else if (ieq(a[j], "minmatchlen") && j + 1 < a.size()) {
      if (!parse_int64(a[++j], minmatch))
        return put_error(out, err_not_int);
      minmatch = std::max<int64_t>(minmatch, 0);
    } else {
      return put_error(out, err_syntax);
    }
  }
  if (getlen && getidx)
    return put_error(out, "ERR If you want both the length and indexes, please just use IDX.");
  std::string_view x = ea ? std::string_view{ea->value} : std::string_view{};
  std::string_view y = eb ? std::string_view{eb->value} : std::string_view{};
  if (x.size() >= UINT32_MAX - 1 || y.size() >= UINT32_MAX - 1)
    return put_error(out, "ERR String too long for LCS");
  // the classic dynamic-programming table, (|x|+1) * (|y|+1) lengths
  size_t w = y.size() + 1;
  unsigned __int128 cells = static_cast<unsigned __int128>(x.size() + 1) * w;
  if (cells * sizeof(uint32_t) > c.facts.proto_max_bulk_len)
    return put_error(out, "ERR Insufficient memory, transient memory for LCS exceeds "
                          "proto-max-bulk-len");
  std::vector<uint32_t> t(static_cast<size_t>(cells), 0);
  for (size_t i = 1; i <= x.size(); ++i)
    for (size_t j = 1; j <= y.size(); ++j)
      t[i * w + j] = x[i - 1] == y[j - 1] ? t[(i - 1) * w + j - 1] + 1
                                          : std::max(t[(i - 1) * w + j], t[i * w + j - 1]);
  uint32_t len = t[x.size() * w + y.size()];
  if (getlen && !getidx)
    return put_int(out, len);
  // walk back from the end; matching runs become ranges (last run first)
  std::string common(len, '\0');
  struct range {
    size_t as, ae, bs, be;
  };
  std::vector<range> ranges;
  std::optional<range> cur;
  auto emit = [&] {
    if (cur && (minmatch == 0 || static_cast<int64_t>(cur->ae - cur->as + 1) >= minmatch))
      ranges.push_back(*cur);
    cur.reset();
  };
  size_t i = x.size(), j = y.size(), k = len;
  while (i > 0 && j > 0) {
    if (x[i - 1] == y[j - 1]) {
      common[--k] = x[i - 1];
      if (!cur)
        cur = range{i - 1, i - 1, j - 1, j - 1};
      else
        cur->as = i - 1, cur->bs = j - 1;
      --i, --j;
      if (cur->as == 0 || cur->bs == 0)
        emit();
    } else {
      if (t[(i - 1) * w + j] > t[i * w + j - 1])
        --i;
      else
        --j;
      emit();
    }
  }
  if (!getidx)
    return put_bulk(out, common);
  put_array_header(out, 4);
  put_bulk(out, "matches");
  put_array_header(out, ranges.size());
  for (auto& r : ranges) {
    put_array_header(out, withmatchlen ? 3 : 2);
    put_array_header(out, 2);
    put_int(out, static_cast<int64_t>(r.as));
    put_int(out, static_cast<int64_t>(r.ae));
    put_array_header(out, 2);
    put_int(out, static_cast<int64_t>(r.bs));
    put_int(out, static_cast<int64_t>(r.be));
    if (withmatchlen)
      put_int(out, static_cast<int64_t>(r.ae - r.as + 1));
  }
  put_bulk(out, "len");
  put_int(out, len);
}

} // namespace

void register_bit_commands(command_registry& r) {
  r.add("setbit", 4, "write denyoom", cmd_setbit)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RW access update variable_flags")
      .acl("@write @bitmap @slow")
      .doc("Sets or clears the bit at offset in the string value stored at key", "2.2.0", "bitmap",
           "O(1)");
  r.add("getbit", 3, "readonly fast", cmd_getbit)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RO access")
      .acl("@read @bitmap @fast")
      .doc("Returns the bit value at offset in the string value stored at key", "2.2.0", "bitmap",
           "O(1)");
  r.add("bitcount", -2, "readonly", cmd_bitcount)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RO access")
      .acl("@read @bitmap @slow")
      .doc("Count set bits in a string", "2.6.0", "bitmap", "O(N)");
  r.add("bitpos", -3, "readonly", cmd_bitpos)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RO access")
      .acl("@read @bitmap @slow")
      .doc("Find first bit set or clear in a string", "2.8.7", "bitmap", "O(N)");
  r.add("bitop", -4, "write denyoom", cmd_bitop)
      .keys(2, -1, 1)
      .key_spec(2, 0, 1, 0, "OW update")
      .key_spec(3, -1, 1, 0, "RO access")
      .acl("@write @bitmap @slow")
      .doc("Perform bitwise operations between strings", "2.6.0", "bitmap", "O(N)");
  r.add("bitfield", -2, "write denyoom", cmd_bitfield)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RW update access variable_flags",
                "This command allows both access and modification of the key")
      .acl("@write @bitmap @slow")
      .doc("Perform arbitrary bitfield integer operations on strings", "3.2.0", "bitmap",
           "O(1) for each subcommand specified");
  r.add("bitfield_ro", -2, "readonly fast", cmd_bitfield_ro)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RO access")
      .acl("@read @bitmap @fast")
      .doc("Perform arbitrary bitfield integer operations on strings. Read-only variant of "
           "BITFIELD",
           "6.0.0", "bitmap", "O(1) for each subcommand specified");
  r.add("lcs", -3, "readonly", cmd_lcs)
      .keys(1, 2, 1)
      .key_spec(1, 1, 1, 0, "RO access")
      .acl("@read @string @slow")
      .doc("Find longest common substring", "7.0.0", "string",
           "O(N*M) where N and M are the lengths of s1 and s2, respectively");
}

} // namespace kura::node
