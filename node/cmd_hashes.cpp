// Hash commands: HSET HSETNX HGET HMGET HMSET HGETALL HDEL HEXISTS HLEN
// HSTRLEN HKEYS HVALS HINCRBY HINCRBYFLOAT HRANDFIELD HSCAN.
//
// A hash is one entry (flag entry_flags::hash, value in node/hash_value.hpp's
// encoding), so it moves between memory, L3 and L4 as any string does and its
// expiry is the entry's. Reads walk the encoded bytes in place; writes decode
// the fields as views, change them and encode the entry anew (O(fields), like
// Redis's listpack). A write that leaves no field deletes the key, as Redis does.
#include "node/command_registry.hpp"
#include "node/command_util.hpp"
#include "node/hash_value.hpp"
#include "node/resp_parser.hpp"
#include "tiers/hash.hpp"

#include <algorithm>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

namespace kura::node {

namespace {

using hashval::field_view;

constexpr std::string_view err_corrupt = "ERR hash value is damaged (kura: cannot decode it)";

template <class F>
int read_hash(command_context& c, std::string_view key, F&& f) {
  return read_typed(c, key, true, f);
}

/// A hash loaded for a write: its bytes, fields (views into bytes or into
/// the command's arguments) and expiry.
struct loaded_hash {
  std::string bytes;
  std::vector<field_view> fields;
  uint64_t expiry_ms = 0;
  bool existed = false;
  std::unordered_map<std::string_view, size_t> index; ///< built for many lookups

  /// Position of `f`, or npos.
  size_t find(std::string_view f) {
    if (fields.size() > 16 && index.empty())
      for (size_t i = 0; i < fields.size(); ++i)
        index.emplace(fields[i].first, i);
    if (!index.empty()) {
      auto i = index.find(f);
      return i == index.end() ? std::string_view::npos : i->second;
    }
    for (size_t i = 0; i < fields.size(); ++i)
      if (fields[i].first == f)
        return i;
    return std::string_view::npos;
  }
  /// Sets `f` to `v`; returns true when the field is new.
  bool set(std::string_view f, std::string_view v) {
    auto i = find(f);
    if (i != std::string_view::npos) {
      fields[i].second = v;
      return false;
    }
    fields.emplace_back(f, v);
    if (!index.empty())
      index.emplace(f, fields.size() - 1);
    return true;
  }
  bool remove(std::string_view f) {
    auto i = find(f);
    if (i == std::string_view::npos)
      return false;
    fields.erase(fields.begin() + static_cast<long>(i));
    index.clear();
    return true;
  }
};

/// Loads `key` for a write. False (with the error reply written) when it
/// holds a string or a damaged hash; a missing key loads as an empty hash.
bool load_hash(command_context& c, std::string_view key, loaded_hash& h) {
  auto e = c.ks.get(key);
  if (!e)
    return true;
  if (!(e->flags & entry_flags::hash)) {
    put_error(c.out, err_wrongtype);
    return false;
  }
  h.bytes = std::move(e->value);
  h.expiry_ms = e->expiry_ms;
  h.existed = true;
  if (!hashval::decode(h.bytes, h.fields)) {
    put_error(c.out, err_corrupt);
    return false;
  }
  return true;
}

/// Writes `h` back (deletes the key when no field is left). False with the
/// error reply written when the value breaks a limit.
bool store_hash(command_context& c, std::string_view key, const loaded_hash& h) {
  if (h.fields.empty()) {
    if (h.existed)
      c.ks.erase(key);
    return true;
  }
  auto st = c.ks.write(key, hashval::encode(h.fields), h.expiry_ms, entry_flags::hash);
  if (!st.ok()) {
    put_error(c.out, "ERR " + st.message());
    return false;
  }
  return true;
}

void hset_generic(const command_args& a, command_context& c, bool reply_ok) {
  if (a.size() % 2 != 0)
    return wrong_args(c.out, lower(a[0]));
  loaded_hash h;
  if (!load_hash(c, a[1], h))
    return;
  int64_t added = 0;
  for (size_t i = 2; i + 1 < a.size(); i += 2)
    added += h.set(a[i], a[i + 1]) ? 1 : 0;
  if (!store_hash(c, a[1], h))
    return;
  if (reply_ok)
    put_ok(c.out);
  else
    put_int(c.out, added);
}

void cmd_hset(const command_args& a, command_context& c) {
  hset_generic(a, c, false);
}
void cmd_hmset(const command_args& a, command_context& c) {
  hset_generic(a, c, true);
}

void cmd_hsetnx(const command_args& a, command_context& c) {
  loaded_hash h;
  if (!load_hash(c, a[1], h))
    return;
  if (h.find(a[2]) != std::string_view::npos)
    return put_int(c.out, 0);
  h.set(a[2], a[3]);
  if (store_hash(c, a[1], h))
    put_int(c.out, 1);
}

/// The value of `field` in encoded hash `v`, if present.
bool find_field(std::string_view v, std::string_view field, std::string_view& out) {
  bool found = false;
  hashval::for_each(v, [&](std::string_view f, std::string_view x) {
    if (f != field)
      return true;
    out = x;
    found = true;
    return false;
  });
  return found;
}

void cmd_hget(const command_args& a, command_context& c) {
  bool found = false;
  int r = read_hash(c, a[1], [&](std::string_view v) {
    std::string_view x;
    if ((found = find_field(v, a[2], x)))
      put_bulk(c.out, x);
  });
  if (r >= 0 && !found)
    put_nil(c.out);
}

void cmd_hmget(const command_args& a, command_context& c) {
  std::vector<field_view> fields;
  bool ok = true;
  int r = read_hash(c, a[1], [&](std::string_view v) { ok = hashval::decode(v, fields); });
  if (r < 0)
    return;
  if (!ok)
    return put_error(c.out, err_corrupt);
  std::unordered_map<std::string_view, std::string_view> idx;
  if (fields.size() > 16 && a.size() > 3)
    for (auto& f : fields)
      idx.emplace(f.first, f.second);
  put_array_header(c.out, a.size() - 2);
  for (size_t i = 2; i < a.size(); ++i) {
    const std::string_view* hit = nullptr;
    if (!idx.empty()) {
      auto j = idx.find(a[i]);
      if (j != idx.end())
        hit = &j->second;
    } else {
      for (auto& f : fields)
        if (f.first == a[i]) {
          hit = &f.second;
          break;
        }
    }
    if (hit)
      put_bulk(c.out, *hit);
    else
      put_nil(c.out);
  }
}

/// HGETALL, HKEYS, HVALS: what = 3 (both), 1 (fields), 2 (values).
void hgetall_generic(const command_args& a, command_context& c, int what) {
  std::vector<field_view> fields;
  bool ok = true;
  int r = read_hash(c, a[1], [&](std::string_view v) { ok = hashval::decode(v, fields); });
  if (r < 0)
    return;
  if (!ok)
    return put_error(c.out, err_corrupt);
  if (what == 3) // HGETALL: a map in RESP3, as Redis
    put_map_header(c.out, fields.size(), c.sess.resp);
  else
    put_array_header(c.out, fields.size());
  for (auto& f : fields) {
    if (what & 1)
      put_bulk(c.out, f.first);
    if (what & 2)
      put_bulk(c.out, f.second);
  }
}

void cmd_hgetall(const command_args& a, command_context& c) {
  hgetall_generic(a, c, 3);
}
void cmd_hkeys(const command_args& a, command_context& c) {
  hgetall_generic(a, c, 1);
}
void cmd_hvals(const command_args& a, command_context& c) {
  hgetall_generic(a, c, 2);
}

void cmd_hdel(const command_args& a, command_context& c) {
  loaded_hash h;
  if (!load_hash(c, a[1], h))
    return;
  int64_t n = 0;
  for (size_t i = 2; i < a.size(); ++i)
    n += h.remove(a[i]) ? 1 : 0;
  if (n > 0 && !store_hash(c, a[1], h))
    return;
  put_int(c.out, n);
}

void cmd_hexists(const command_args& a, command_context& c) {
  bool found = false;
  int r = read_hash(c, a[1], [&](std::string_view v) {
    std::string_view x;
    found = find_field(v, a[2], x);
  });
  if (r >= 0)
    put_int(c.out, found ? 1 : 0);
}

void cmd_hlen(const command_args& a, command_context& c) {
  uint64_t n = 0;
  int r = read_hash(c, a[1], [&](std::string_view v) { hashval::size(v, n); });
  if (r >= 0)
    put_int(c.out, static_cast<int64_t>(n));
}

void cmd_hstrlen(const command_args& a, command_context& c) {
  std::string_view x;
  int r = read_hash(c, a[1], [&](std::string_view v) {
    if (!find_field(v, a[2], x))
      x = {};
  });
  if (r >= 0)
    put_int(c.out, static_cast<int64_t>(x.size()));
}

void cmd_hincrby(const command_args& a, command_context& c) {
  int64_t by = 0;
  if (!parse_int64(a[3], by))
    return put_error(c.out, err_not_int);
  loaded_hash h;
  if (!load_hash(c, a[1], h))
    return;
  int64_t cur = 0;
  auto i = h.find(a[2]);
  if (i != std::string_view::npos && !parse_int64(h.fields[i].second, cur))
    return put_error(c.out, "ERR hash value is not an integer");
  if ((by < 0 && cur < 0 && by < INT64_MIN - cur) || (by > 0 && cur > 0 && by > INT64_MAX - cur))
    return put_error(c.out, err_overflow);
  cur += by;
  std::string s = std::to_string(cur);
  h.set(a[2], s);
  if (store_hash(c, a[1], h))
    put_int(c.out, cur);
}

void cmd_hincrbyfloat(const command_args& a, command_context& c) {
  long double by = 0, cur = 0;
  if (!parse_ld(a[3], by))
    return put_error(c.out, err_not_float);
  if (std::isinf(by))
    return put_error(c.out, "ERR value is NaN or Infinity");
  loaded_hash h;
  if (!load_hash(c, a[1], h))
    return;
  auto i = h.find(a[2]);
  if (i != std::string_view::npos && !parse_ld(h.fields[i].second, cur))
    return put_error(c.out, "ERR hash value is not a float");
  long double r = cur + by;
  if (std::isnan(r) || std::isinf(r))
    return put_error(c.out, "ERR increment would produce NaN or Infinity");
  std::string s = format_ld(r);
  h.set(a[2], s);
  if (store_hash(c, a[1], h))
    put_bulk(c.out, s);
}

std::mt19937_64& hash_rng() {
  static std::mt19937_64 rng{0x6b757261686173ull};
  return rng;
}

void cmd_hrandfield(const command_args& a, command_context& c) {
  auto& out = c.out;
  int64_t count = 0;
  bool with_count = a.size() >= 3, withvalues = false;
  if (with_count) {
    if (!parse_int64(a[2], count))
      return put_error(out, err_not_int);
    if (count == INT64_MIN)
      return put_error(out, "ERR value is out of range, value must between "
                            "-9223372036854775807 and 9223372036854775807");
    if (a.size() > 4 || (a.size() == 4 && !ieq(a[3], "withvalues")))
      return put_error(out, err_syntax);
    if (a.size() == 4) {
      withvalues = true;
      if (count < -(INT64_MAX / 2) || count > INT64_MAX / 2)
        return put_error(out, "ERR value is out of range");
    }
  }
  std::vector<field_view> fields;
  bool ok = true;
  int r = read_hash(c, a[1], [&](std::string_view v) { ok = hashval::decode(v, fields); });
  if (r < 0)
    return;
  if (!ok)
    return put_error(out, err_corrupt);
  auto& rng = hash_rng();
  if (!with_count) {
    if (fields.empty())
      return put_nil(out);
    return put_bulk(out, fields[rng() % fields.size()].first);
  }
  if (fields.empty() || count == 0)
    return put_array_header(out, 0);
  // RESP3 with WITHVALUES: one [field, value] pair per element, as Redis 7
  bool pairs = withvalues && c.sess.resp == 3;
  auto put_one = [&](const field_view& f) {
    if (pairs)
      put_array_header(out, 2);
    put_bulk(out, f.first);
    if (withvalues)
      put_bulk(out, f.second);
  };
  if (count < 0) { // repeats allowed, exactly -count answers
    auto n = static_cast<uint64_t>(-count);
    if (n > c.facts.proto_max_bulk_len / 8) // a reply no client could take
      return put_error(out, "ERR value is out of range");
    put_array_header(out, n * (withvalues && !pairs ? 2 : 1));
    for (uint64_t i = 0; i < n; ++i)
      put_one(fields[rng() % fields.size()]);
    return;
  }
  // distinct fields: a random sample of min(count, size), in random order
  size_t n = std::min(fields.size(), static_cast<size_t>(count));
  for (size_t i = 0; i < n; ++i)
    std::swap(fields[i], fields[i + rng() % (fields.size() - i)]);
  put_array_header(out, n * (withvalues && !pairs ? 2 : 1));
  for (size_t i = 0; i < n; ++i)
    put_one(fields[i]);
}

// -- HSCAN -------------------------------------------------------------------------
//
// Stateless cursor: every field has a position, an odd 64-bit hash of its
// name; a call returns the fields whose position is >= the cursor, lowest
// first, about COUNT of them, and the next cursor is the last position + 1
// (0 when none is left). Positions do not depend on the other fields, so a
// field present for the whole iteration is returned whatever else changes,
// and a cursor stays valid across connections and restarts. A hash Redis
// would keep as a listpack (hash-max-listpack-entries/-value, see
// hashval::redis_encoding) comes back whole in one call, as Redis answers it.

constexpr uint64_t hscan_seed = 0x6b7572615f687363ull; // "kura_hsc"

uint64_t field_pos(std::string_view f) {
  return hash64(f, hscan_seed) | 1;
}

void cmd_hscan(const command_args& a, command_context& c) {
  auto& out = c.out;
  uint64_t cursor = 0;
  if (!parse_cursor(a[2], cursor))
    return put_error(out, "ERR invalid cursor");
  std::string_view pattern;
  int64_t count = 10;
  for (size_t i = 3; i < a.size(); i += 2) {
    if (i + 1 >= a.size())
      return put_error(out, err_syntax);
    if (ieq(a[i], "match")) {
      pattern = a[i + 1];
    } else if (ieq(a[i], "count")) {
      if (!parse_int64(a[i + 1], count))
        return put_error(out, err_not_int);
      if (count < 1)
        return put_error(out, err_syntax);
    } else {
      return put_error(out, err_syntax);
    }
  }
  std::vector<field_view> fields;
  bool ok = true;
  int r = read_hash(c, a[1], [&](std::string_view v) { ok = hashval::decode(v, fields); });
  if (r < 0)
    return;
  if (!ok)
    return put_error(out, err_corrupt);
  auto matches = [&](std::string_view f) { return pattern.empty() || glob_match(pattern, f); };
  std::vector<field_view> reply;
  uint64_t next = 0;
  bool whole = fields.size() <= c.state.hash_max_listpack_entries;
  for (size_t i = 0; whole && i < fields.size(); ++i)
    whole = fields[i].first.size() <= c.state.hash_max_listpack_value &&
            fields[i].second.size() <= c.state.hash_max_listpack_value;
  if (whole) {
    for (auto& f : fields)
      if (matches(f.first))
        reply.push_back(f);
  } else {
    std::vector<std::pair<uint64_t, size_t>> pos;
    for (size_t i = 0; i < fields.size(); ++i) {
      uint64_t p = field_pos(fields[i].first);
      if (p >= cursor)
        pos.emplace_back(p, i);
    }
    std::sort(pos.begin(), pos.end());
    auto n = std::min(pos.size(), static_cast<size_t>(count));
    while (n < pos.size() && pos[n].first == pos[n - 1].first)
      ++n; // fields sharing a position go together
    if (n < pos.size())
      next = pos[n - 1].first + 1;
    for (size_t i = 0; i < n; ++i)
      if (matches(fields[pos[i].second].first))
        reply.push_back(fields[pos[i].second]);
  }
  put_array_header(out, 2);
  put_bulk(out, std::to_string(next));
  put_array_header(out, reply.size() * 2);
  for (auto& f : reply) {
    put_bulk(out, f.first);
    put_bulk(out, f.second);
  }
}

} // namespace

void register_hash_commands(command_registry& r) {
  r.add("hset", -4, "write denyoom fast", cmd_hset)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RW update")
      .acl("@write @hash @fast")
      .doc("Set the string value of a hash field", "2.0.0", "hash",
           "O(1) for each field/value pair added, so O(N) to add N field/value pairs when the "
           "command is called with multiple field/value pairs.");
  r.add("hsetnx", 4, "write denyoom fast", cmd_hsetnx)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RW insert")
      .acl("@write @hash @fast")
      .doc("Set the value of a hash field, only if the field does not exist", "2.0.0", "hash",
           "O(1)");
  r.add("hget", 3, "readonly fast", cmd_hget)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RO access")
      .acl("@read @hash @fast")
      .doc("Get the value of a hash field", "2.0.0", "hash", "O(1)");
  r.add("hmget", -3, "readonly fast", cmd_hmget)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RO access")
      .acl("@read @hash @fast")
      .doc("Get the values of all the given hash fields", "2.0.0", "hash",
           "O(N) where N is the number of fields being requested.");
  r.add("hmset", -4, "write denyoom fast", cmd_hmset)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RW update")
      .acl("@write @hash @fast")
      .doc("Set multiple hash fields to multiple values", "2.0.0", "hash",
           "O(N) where N is the number of fields being set.");
  r.add("hgetall", 2, "readonly", cmd_hgetall)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RO access")
      .acl("@read @hash @slow")
      .tips("nondeterministic_output_order")
      .doc("Get all the fields and values in a hash", "2.0.0", "hash",
           "O(N) where N is the size of the hash.");
  r.add("hdel", -3, "write fast", cmd_hdel)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RW delete")
      .acl("@write @hash @fast")
      .doc("Delete one or more hash fields", "2.0.0", "hash",
           "O(N) where N is the number of fields to be removed.");
  r.add("hexists", 3, "readonly fast", cmd_hexists)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RO")
      .acl("@read @hash @fast")
      .doc("Determine if a hash field exists", "2.0.0", "hash", "O(1)");
  r.add("hlen", 2, "readonly fast", cmd_hlen)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RO")
      .acl("@read @hash @fast")
      .doc("Get the number of fields in a hash", "2.0.0", "hash", "O(1)");
  r.add("hstrlen", 3, "readonly fast", cmd_hstrlen)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RO")
      .acl("@read @hash @fast")
      .doc("Get the length of the value of a hash field", "3.2.0", "hash", "O(1)");
  r.add("hkeys", 2, "readonly", cmd_hkeys)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RO")
      .acl("@read @hash @slow")
      .tips("nondeterministic_output_order")
      .doc("Get all the fields in a hash", "2.0.0", "hash",
           "O(N) where N is the size of the hash.");
  r.add("hvals", 2, "readonly", cmd_hvals)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RO access")
      .acl("@read @hash @slow")
      .tips("nondeterministic_output_order")
      .doc("Get all the values in a hash", "2.0.0", "hash",
           "O(N) where N is the size of the hash.");
  r.add("hincrby", 4, "write denyoom fast", cmd_hincrby)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RW access update")
      .acl("@write @hash @fast")
      .doc("Increment the integer value of a hash field by the given number", "2.0.0", "hash",
           "O(1)");
  r.add("hincrbyfloat", 4, "write denyoom fast", cmd_hincrbyfloat)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RW access update")
      .acl("@write @hash @fast")
      .doc("Increment the float value of a hash field by the given amount", "2.6.0", "hash",
           "O(1)");
  r.add("hrandfield", -2, "readonly", cmd_hrandfield)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RO access")
      .acl("@read @hash @slow")
      .tips("nondeterministic_output")
      .doc("Get one or multiple random fields from a hash", "6.2.0", "hash",
           "O(N) where N is the number of fields returned");
  r.add("hscan", -3, "readonly", cmd_hscan)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RO access")
      .acl("@read @hash @slow")
      .tips("nondeterministic_output")
      .doc("Incrementally iterate hash fields and associated values", "2.8.0", "hash",
           "O(1) for every call. O(N) for a complete iteration, including enough command "
           "calls for the cursor to return back to 0. N is the number of elements inside the "
           "collection..");
}

} // namespace kura::node
