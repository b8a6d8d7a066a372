// String commands: GET SET SETEX PSETEX SETNX GETSET GETDEL GETEX MGET MSET
// MSETNX INCR DECR INCRBY DECRBY INCRBYFLOAT APPEND STRLEN GETRANGE SETRANGE.
#include "node/command_registry.hpp"
#include "node/command_util.hpp"
#include "node/resp_parser.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

namespace kura::node {

namespace {

/// True (after the WRONGTYPE reply) when `e` holds a hash, not a string.
bool wrong_type(const std::optional<entry>& e, out_buffer& out) {
  if (!e || !(e->flags & entry_flags::hash))
    return false;
  put_error(out, err_wrongtype);
  return true;
}

template <class F>
int read_string(command_context& c, std::string_view key, F&& f) {
  return read_typed(c, key, false, f);
}

void cmd_get(const command_args& a, command_context& c) {
  auto& out = c.out;
  int r = read_string(c, a[1], [&](std::string_view v) { put_bulk(out, v); });
  if (r == 0)
    put_nil(out);
}

/// Parses "EX n | PX n | EXAT n | PXAT n" at a[i]; returns false on syntax.
enum class exp_parse { ok, syntax, not_int, invalid };

exp_parse parse_expiry(std::string_view opt, std::string_view val, uint64_t now, uint64_t& expiry) {
  int64_t v = 0;
  if (!parse_int64(val, v))
    return exp_parse::not_int;
  if (v <= 0)
    return exp_parse::invalid;
  __int128 ms;
  if (ieq(opt, "ex"))
    ms = static_cast<__int128>(v) * 1000 + now;
  else if (ieq(opt, "px"))
    ms = static_cast<__int128>(v) + now;
  else if (ieq(opt, "exat"))
    ms = static_cast<__int128>(v) * 1000;
  else if (ieq(opt, "pxat"))
    ms = v;
  else
    return exp_parse::syntax;
  if (ms > INT64_MAX)
    return exp_parse::invalid;
  expiry = static_cast<uint64_t>(ms);
  return exp_parse::ok;
}

/// Writes Redis's error reply for a parse_expiry() failure in command `name`.
void put_expiry_error(out_buffer& out, exp_parse r, std::string_view name) {
  switch (r) {
  case exp_parse::not_int:
    return put_error(out, err_not_int);
  case exp_parse::invalid:
    return invalid_expire(out, name);
  case exp_parse::ok:
  case exp_parse::syntax:
    break;
  }
  put_error(out, err_syntax);
}

bool is_expiry_opt(std::string_view s) {
  return ieq(s, "ex") || ieq(s, "px") || ieq(s, "exat") || ieq(s, "pxat");
}

void cmd_set(const command_args& a, command_context& c) {
  auto& out = c.out;
  bool nx = false, xx = false, get = false, keepttl = false, has_exp = false;
  uint64_t expiry = 0;
  auto now = c.ks.now_ms();
  for (size_t i = 3; i < a.size(); ++i) {
    auto o = a[i];
    if (ieq(o, "nx") && !xx)
      nx = true;
    else if (ieq(o, "xx") && !nx)
      xx = true;
    else if (ieq(o, "get"))
      get = true;
    else if (ieq(o, "keepttl") && !has_exp)
      keepttl = true;
    else if (is_expiry_opt(o) && !has_exp && !keepttl && i + 1 < a.size()) {
      if (auto r = parse_expiry(o, a[i + 1], now, expiry); r != exp_parse::ok)
        return put_expiry_error(out, r, "set");
      has_exp = true;
      ++i;
    } else {
      return put_error(out, err_syntax);
    }
  }
  std::optional<entry> old;
  if (nx || xx || get || keepttl)
    old = c.ks.get(a[1]);
  if (get && wrong_type(old, out))
    return;
  if ((nx && old) || (xx && !old)) {
    if (get && old)
      return put_bulk(out, old->value);
    return put_nil(out);
  }
  if (keepttl && old)
    expiry = old->expiry_ms;
  if (has_exp && expiry <= now) {
    c.ks.erase(a[1]);
  } else if (auto st = c.ks.write_arg(a[1], a[2], expiry, has_exp ? actors::asked_ttl_flag : 0);
             !st.ok()) {
    return put_error(out, "ERR " + st.message());
  }
  if (get) {
    if (old)
      put_bulk(out, old->value);
    else
      put_nil(out);
  } else {
    put_ok(out);
  }
}

void setex_generic(command_context& c, const command_args& a, out_buffer& out, int64_t unit) {
  int64_t v = 0;
  if (!parse_int64(a[2], v))
    return put_error(out, err_not_int);
  if (v <= 0 || v > INT64_MAX / unit)
    return invalid_expire(out, unit == 1000 ? "setex" : "psetex");
  auto now = c.ks.now_ms();
  if (auto st = c.ks.write(a[1], std::string{a[3]}, now + static_cast<uint64_t>(v * unit),
                           actors::asked_ttl_flag);
      !st.ok())
    return put_error(out, "ERR " + st.message());
  put_ok(out);
}

void cmd_setex(const command_args& a, command_context& c) {
  auto& out = c.out;
  setex_generic(c, a, out, 1000);
}

void cmd_psetex(const command_args& a, command_context& c) {
  auto& out = c.out;
  setex_generic(c, a, out, 1);
}

void cmd_setnx(const command_args& a, command_context& c) {
  auto& out = c.out;
  if (c.ks.exists(a[1]))
    return put_int(out, 0);
  if (auto st = c.ks.write(a[1], std::string{a[2]}, 0); !st.ok())
    return put_error(out, "ERR " + st.message());
  put_int(out, 1);
}

void cmd_getset(const command_args& a, command_context& c) {
  auto& out = c.out;
  auto old = c.ks.get(a[1]);
  if (wrong_type(old, out))
    return;
  if (auto st = c.ks.write(a[1], std::string{a[2]}, 0); !st.ok())
    return put_error(out, "ERR " + st.message());
  if (old)
    put_bulk(out, old->value);
  else
    put_nil(out);
}

void cmd_getdel(const command_args& a, command_context& c) {
  auto& out = c.out;
  auto old = c.ks.get(a[1]);
  if (!old)
    return put_nil(out);
  if (wrong_type(old, out))
    return;
  c.ks.erase(a[1]);
  put_bulk(out, old->value);
}

void cmd_getex(const command_args& a, command_context& c) {
  auto& out = c.out;
  auto now = c.ks.now_ms();
  bool persist = false, has_exp = false;
  uint64_t expiry = 0;
  for (size_t i = 2; i < a.size(); ++i) {
    if (ieq(a[i], "persist") && !has_exp && !persist) {
      persist = true;
    } else if (is_expiry_opt(a[i]) && !has_exp && !persist && i + 1 < a.size()) {
      if (auto r = parse_expiry(a[i], a[i + 1], now, expiry); r != exp_parse::ok)
        return put_expiry_error(out, r, "getex");
      has_exp = true;
      ++i;
    } else {
      return put_error(out, err_syntax);
    }
  }
  auto e = c.ks.get(a[1]);
  if (!e)
    return put_nil(out);
  if (wrong_type(e, out))
    return;
  put_bulk(out, e->value);
  if (has_exp && expiry <= now)
    c.ks.erase(a[1]);
  else if (has_exp)
    c.ks.set_expiry(a[1], expiry);
  else if (persist && e->expiry_ms != 0)
    c.ks.set_expiry(a[1], 0);
}

void cmd_mget(const command_args& a, command_context& c) {
  auto& out = c.out;
  put_array_header(out, a.size() - 1);
  for (size_t i = 1; i < a.size(); ++i)
    if (!c.ks.view(a[i], [&](const keyspace::key_view& v) {
          if (v.flags & entry_flags::hash)
            put_nil(out); // MGET answers nil for a key of another type
          else
            put_bulk(out, v.value);
        }))
      put_nil(out);
}

/// MSET's and MSETNX's check of every key/value pair before the first write:
/// false (and the error written) when one would be refused, so that nothing
/// is written (all or nothing, as in Redis).
bool admit_pairs(const command_args& a, command_context& c) {
  for (size_t i = 1; i + 1 < a.size(); i += 2)
    if (auto st = c.ks.admit(a[i], a[i + 1].size()); !st.ok()) {
      put_error(c.out, "ERR " + st.message());
      return false;
    }
  return true;
}

void cmd_mset(const command_args& a, command_context& c) {
  auto& out = c.out;
  if (a.size() % 2 != 1)
    return wrong_args(out, "mset");
  if (!admit_pairs(a, c))
    return;
  for (size_t i = 1; i + 1 < a.size(); i += 2)
    if (auto st = c.ks.write(a[i], std::string{a[i + 1]}, 0); !st.ok())
      return put_error(out, "ERR " + st.message());
  put_ok(out);
}

void cmd_msetnx(const command_args& a, command_context& c) {
  auto& out = c.out;
  if (a.size() % 2 != 1)
    return wrong_args(out, "msetnx");
  for (size_t i = 1; i + 1 < a.size(); i += 2)
    if (c.ks.exists(a[i]))
      return put_int(out, 0);
  if (!admit_pairs(a, c))
    return;
  for (size_t i = 1; i + 1 < a.size(); i += 2)
    if (auto st = c.ks.write(a[i], std::string{a[i + 1]}, 0); !st.ok())
      return put_error(out, "ERR " + st.message());
  put_int(out, 1);
}

void incr_generic(command_context& c, std::string_view key, int64_t by, out_buffer& out) {
  auto e = c.ks.get(key);
  int64_t cur = 0;
  uint64_t expiry = 0;
  if (wrong_type(e, out))
    return;
  if (e) {
    if (!parse_int64(e->value, cur))
      return put_error(out, err_not_int);
    expiry = e->expiry_ms;
  }
  if ((by < 0 && cur < 0 && by < INT64_MIN - cur) || (by > 0 && cur > 0 && by > INT64_MAX - cur))
    return put_error(out, err_overflow);
  cur += by;
  if (auto st = c.ks.write(key, std::to_string(cur), expiry); !st.ok())
    return put_error(out, "ERR " + st.message());
  put_int(out, cur);
}

void cmd_incr(const command_args& a, command_context& c) {
  auto& out = c.out;
  incr_generic(c, a[1], 1, out);
}
void cmd_decr(const command_args& a, command_context& c) {
  auto& out = c.out;
  incr_generic(c, a[1], -1, out);
}
void cmd_incrby(const command_args& a, command_context& c) {
  auto& out = c.out;
  int64_t by = 0;
  if (!parse_int64(a[2], by))
    return put_error(out, err_not_int);
  incr_generic(c, a[1], by, out);
}
void cmd_decrby(const command_args& a, command_context& c) {
  auto& out = c.out;
  int64_t by = 0;
  if (!parse_int64(a[2], by))
    return put_error(out, err_not_int);
  if (by == INT64_MIN)
    return put_error(out, "ERR decrement would overflow");
  incr_generic(c, a[1], -by, out);
}

void cmd_incrbyfloat(const command_args& a, command_context& c) {
  auto& out = c.out;
  long double by = 0, cur = 0;
  if (!parse_ld(a[2], by))
    return put_error(out, err_not_float);
  auto e = c.ks.get(a[1]);
  uint64_t expiry = 0;
  if (wrong_type(e, out))
    return;
  if (e) {
    if (!parse_ld(e->value, cur))
      return put_error(out, err_not_float);
    expiry = e->expiry_ms;
  }
  long double r = cur + by;
  if (std::isnan(r) || std::isinf(r))
    return put_error(out, "ERR increment would produce NaN or Infinity");
  auto s = format_ld(r);
  if (auto st = c.ks.write(a[1], s, expiry); !st.ok())
    return put_error(out, "ERR " + st.message());
  put_bulk(out, s);
}

/// The string at `key` was just modified in place (SETRANGE, APPEND): OBJECT
/// ENCODING says "raw" until its next write (command_state::raw_strings).
void mark_raw(std::string_view key, command_context& c) {
  auto& marks = c.state.raw_strings;
  if (marks.size() >= command_state::max_raw_marks && marks.count(std::string{key}) == 0)
    marks.erase(marks.begin());
  c.ks.view(key, [&](const keyspace::key_view& v) { marks[std::string{key}] = v.ver; });
}

void cmd_append(const command_args& a, command_context& c) {
  auto& out = c.out;
  auto e = c.ks.get(a[1]);
  std::string v;
  uint64_t expiry = 0;
  if (wrong_type(e, out))
    return;
  if (e) {
    v = std::move(e->value);
    expiry = e->expiry_ms;
  }
  if (v.size() + a[2].size() > c.facts.proto_max_bulk_len)
    return put_error(out, "ERR string exceeds maximum allowed size (proto-max-bulk-len)");
  v.append(a[2]);
  auto n = static_cast<int64_t>(v.size());
  if (auto st = c.ks.write(a[1], std::move(v), expiry); !st.ok())
    return put_error(out, "ERR " + st.message());
  if (e) // Redis: APPEND to an existing string makes it raw; a new key is encoded as by SET
    mark_raw(a[1], c);
  put_int(out, n);
}

void cmd_strlen(const command_args& a, command_context& c) {
  auto& out = c.out;
  int64_t n = 0;
  if (read_string(c, a[1], [&](std::string_view v) { n = static_cast<int64_t>(v.size()); }) >= 0)
    put_int(out, n);
}

void cmd_getrange(const command_args& a, command_context& c) {
  auto& out = c.out;
  int64_t start = 0, end = 0;
  if (!parse_int64(a[2], start) || !parse_int64(a[3], end))
    return put_error(out, err_not_int);
  int hit = read_string(c, a[1], [&](std::string_view v) {
    int64_t len = static_cast<int64_t>(v.size());
    if (start < 0 && end < 0 && start > end)
      return put_bulk(out, "");
    if (start < 0)
      start = len + start;
    if (end < 0)
      end = len + end;
    if (start < 0)
      start = 0;
    if (end < 0)
      end = 0;
    if (end >= len)
      end = len - 1;
    if (start > end || len == 0)
      return put_bulk(out, "");
    put_bulk(out, v.substr(static_cast<size_t>(start), static_cast<size_t>(end - start + 1)));
  });
  if (hit == 0)
    put_bulk(out, "");
}

void cmd_setrange(const command_args& a, command_context& c) {
  auto& out = c.out;
  int64_t off = 0;
  if (!parse_int64(a[2], off))
    return put_error(out, err_not_int);
  if (off < 0)
    return put_error(out, "ERR offset is out of range");
  auto e = c.ks.get(a[1]);
  if (wrong_type(e, out))
    return;
  if (!e && a[3].empty())
    return put_int(out, 0);
  std::string v;
  uint64_t expiry = 0;
  if (e) {
    v = std::move(e->value);
    expiry = e->expiry_ms;
  }
  if (a[3].empty())
    return put_int(out, static_cast<int64_t>(v.size()));
  if (static_cast<uint64_t>(off) + a[3].size() > c.facts.proto_max_bulk_len)
    return put_error(out, "ERR string exceeds maximum allowed size (proto-max-bulk-len)");
  size_t need = static_cast<size_t>(off) + a[3].size();
  if (v.size() < need)
    v.resize(need, '\0');
  std::copy(a[3].begin(), a[3].end(), v.begin() + off);
  auto n = static_cast<int64_t>(v.size());
  if (auto st = c.ks.write(a[1], std::move(v), expiry); !st.ok())
    return put_error(out, "ERR " + st.message());
  mark_raw(a[1], c);
  put_int(out, n);
}

/// A plain SET needs no old value; NX, XX, GET and KEEPTTL read it first.
void plan_set(const command_args& a, const command_spec& sp, const command_state&, keyspace& ks,
              fetch_plan& out) {
  for (size_t i = 3; i < a.size(); ++i)
    if (ieq(a[i], "nx") || ieq(a[i], "xx") || ieq(a[i], "get") || ieq(a[i], "keepttl"))
      return plan_key_lookup(a, sp, ks, out);
}

} // namespace

void register_string_commands(command_registry& r) {
  r.add("get", 2, "readonly fast", cmd_get)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RO access")
      .acl("@read @string @fast")
      .doc("Get the value of a key", "1.0.0", "string", "O(1)");
  r.add("set", -3, "write denyoom", cmd_set)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RW access update variable_flags",
                "RW and ACCESS due to the optional `GET` argument")
      .acl("@write @string @slow")
      .planner(plan_set)
      .doc("Set the string value of a key", "1.0.0", "string", "O(1)");
  r.add("setex", 4, "write denyoom", cmd_setex)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "OW update")
      .acl("@write @string @slow")
      .blind()
      .doc("Set the value and expiration of a key", "2.0.0", "string", "O(1)");
  r.add("psetex", 4, "write denyoom", cmd_psetex)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "OW update")
      .acl("@write @string @slow")
      .blind()
      .doc("Set the value and expiration in milliseconds of a key", "2.6.0", "string", "O(1)");
  r.add("setnx", 3, "write denyoom fast", cmd_setnx)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "OW insert")
      .acl("@write @string @fast")
      .doc("Set the value of a key, only if the key does not exist", "1.0.0", "string", "O(1)");
  r.add("getset", 3, "write denyoom fast", cmd_getset)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RW access update")
      .acl("@write @string @fast")
      .doc("Set the string value of a key and return its old value", "1.0.0", "string", "O(1)");
  r.add("getdel", 2, "write fast", cmd_getdel)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RW access delete")
      .acl("@write @string @fast")
      .doc("Get the value of a key and delete the key", "6.2.0", "string", "O(1)");
  r.add("getex", -2, "write fast", cmd_getex)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RW access update", "RW and UPDATE because it changes the TTL")
      .acl("@write @string @fast")
      .doc("Get the value of a key and optionally set its expiration", "6.2.0", "string", "O(1)");
  r.add("mget", -2, "readonly fast", cmd_mget)
      .keys(1, -1, 1)
      .key_spec(1, -1, 1, 0, "RO access")
      .acl("@read @string @fast")
      .tips("request_policy:multi_shard")
      .doc("Get the values of all the given keys", "1.0.0", "string",
           "O(N) where N is the number of keys to retrieve.");
  r.add("mset", -3, "write denyoom", cmd_mset)
      .keys(1, -1, 2)
      .key_spec(1, -1, 2, 0, "OW update")
      .acl("@write @string @slow")
      .tips("request_policy:multi_shard response_policy:all_succeeded")
      .blind()
      .doc("Set multiple keys to multiple values", "1.0.1", "string",
           "O(N) where N is the number of keys to set.");
  r.add("msetnx", -3, "write denyoom", cmd_msetnx)
      .keys(1, -1, 2)
      .key_spec(1, -1, 2, 0, "OW insert")
      .acl("@write @string @slow")
      .tips("request_policy:multi_shard response_policy:agg_min")
      .doc("Set multiple keys to multiple values, only if none of the keys exist", "1.0.1",
           "string", "O(N) where N is the number of keys to set.");
  r.add("incr", 2, "write denyoom fast", cmd_incr)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RW access update")
      .acl("@write @string @fast")
      .doc("Increment the integer value of a key by one", "1.0.0", "string", "O(1)");
  r.add("decr", 2, "write denyoom fast", cmd_decr)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RW access update")
      .acl("@write @string @fast")
      .doc("Decrement the integer value of a key by one", "1.0.0", "string", "O(1)");
  r.add("incrby", 3, "write denyoom fast", cmd_incrby)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RW access update")
      .acl("@write @string @fast")
      .doc("Increment the integer value of a key by the given amount", "1.0.0", "string", "O(1)");
  r.add("decrby", 3, "write denyoom fast", cmd_decrby)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RW access update")
      .acl("@write @string @fast")
      .doc("Decrement the integer value of a key by the given number", "1.0.0", "string", "O(1)");
  r.add("incrbyfloat", 3, "write denyoom fast", cmd_incrbyfloat)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RW access update")
      .acl("@write @string @fast")
      .doc("Increment the float value of a key by the given amount", "2.6.0", "string", "O(1)");
  r.add("append", 3, "write denyoom fast", cmd_append)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RW insert")
      .acl("@write @string @fast")
      .doc("Append a value to a key", "2.0.0", "string",
           "O(1). The amortized time complexity is O(1) assuming the appended value is small "
           "and the already present value is of any size, since the dynamic string library "
           "used by Redis will double the free space available on every reallocation.");
  r.add("strlen", 2, "readonly fast", cmd_strlen)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RO")
      .acl("@read @string @fast")
      .doc("Get the length of the value stored in a key", "2.2.0", "string", "O(1)");
  r.add("getrange", 4, "readonly", cmd_getrange)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RO access")
      .acl("@read @string @slow")
      .doc("Get a substring of the string stored at a key", "2.4.0", "string",
           "O(N) where N is the length of the returned string. The complexity is ultimately "
           "determined by the returned length, but because creating a substring from an "
           "existing string is very cheap, it can be considered O(1) for small strings.");
  r.add("setrange", 4, "write denyoom", cmd_setrange)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RW update")
      .acl("@write @string @slow")
      .doc("Overwrite part of a string at key starting at the specified offset", "2.2.0", "string",
           "O(1), not counting the time taken to copy the new string in place. Usually, this "
           "string is very small so the amortized complexity is O(1). Otherwise, complexity "
           "is O(M) with M being the length of the value argument.");
}

} // namespace kura::node
