// Keyspace commands: DEL UNLINK EXISTS EXPIRE PEXPIRE EXPIREAT PEXPIREAT TTL
// PTTL EXPIRETIME PEXPIRETIME PERSIST TYPE DBSIZE FLUSHALL FLUSHDB KEYS SCAN
// RANDOMKEY RENAME RENAMENX COPY. With L3 on, KEYS, SCAN, DBSIZE and
// RANDOMKEY run on a key listing that L3 answers first (their planners).
#include "node/command_registry.hpp"
#include "node/command_util.hpp"
#include "node/resp_parser.hpp"

#include <algorithm>
#include <random>
#include <string>
#include <tuple>
#include <vector>

namespace kura::node {

namespace {

void cmd_del(const command_args& a, command_context& c) {
  auto& out = c.out;
  int64_t n = 0;
  for (size_t i = 1; i < a.size(); ++i)
    if (c.ks.erase(a[i]))
      ++n;
  put_int(out, n);
}

void cmd_exists(const command_args& a, command_context& c) {
  auto& out = c.out;
  int64_t n = 0;
  for (size_t i = 1; i < a.size(); ++i)
    if (c.ks.exists(a[i]))
      ++n;
  put_int(out, n);
}

void expire_generic(command_context& c, const command_args& a, out_buffer& out, uint64_t base_ms,
                    int64_t unit_ms) {
  int64_t v = 0;
  if (!parse_int64(a[2], v))
    return put_error(out, err_not_int);
  bool nx = false, xx = false, gt = false, lt = false;
  for (size_t i = 3; i < a.size(); ++i) {
    if (ieq(a[i], "nx"))
      nx = true;
    else if (ieq(a[i], "xx"))
      xx = true;
    else if (ieq(a[i], "gt"))
      gt = true;
    else if (ieq(a[i], "lt"))
      lt = true;
    else {
      std::string m = "ERR Unsupported option ";
      m.append(a[i].substr(0, 128));
      return put_error(out, m);
    }
  }
  if (nx && (xx || gt || lt))
    return put_error(out, "ERR NX and XX, GT or LT options at the same time are not "
                          "compatible");
  if (gt && lt)
    return put_error(out, "ERR GT and LT options at the same time are not compatible");
  __int128 when = static_cast<__int128>(v) * unit_ms + base_ms;
  if ((unit_ms > 1 && (v > INT64_MAX / unit_ms || v < INT64_MIN / unit_ms)) || when > INT64_MAX ||
      when < INT64_MIN)
    return invalid_expire(out, a[0]);
  auto e = c.ks.get(a[1]);
  if (!e)
    return put_int(out, 0);
  int64_t cur = e->expiry_ms == 0 ? -1 : static_cast<int64_t>(e->expiry_ms);
  int64_t nw = static_cast<int64_t>(when);
  if (nx && cur != -1)
    return put_int(out, 0);
  if (xx && cur == -1)
    return put_int(out, 0);
  if (gt && (cur == -1 || nw <= cur))
    return put_int(out, 0);
  if (lt && cur != -1 && nw >= cur)
    return put_int(out, 0);
  auto now = c.ks.clock().now_ms();
  if (nw <= static_cast<int64_t>(now)) {
    c.ks.erase(a[1]);
    return put_int(out, 1);
  }
  c.ks.set_expiry(a[1], static_cast<uint64_t>(nw));
  put_int(out, 1);
}

void cmd_expire(const command_args& a, command_context& c) {
  auto& out = c.out;
  expire_generic(c, a, out, c.ks.clock().now_ms(), 1000);
}
void cmd_pexpire(const command_args& a, command_context& c) {
  auto& out = c.out;
  expire_generic(c, a, out, c.ks.clock().now_ms(), 1);
}
void cmd_expireat(const command_args& a, command_context& c) {
  auto& out = c.out;
  expire_generic(c, a, out, 0, 1000);
}
void cmd_pexpireat(const command_args& a, command_context& c) {
  auto& out = c.out;
  expire_generic(c, a, out, 0, 1);
}

void ttl_generic(command_context& c, std::string_view key, out_buffer& out, bool ms,
                 bool absolute) {
  uint64_t expiry = 0;
  if (!c.ks.read(key, [&](std::string_view, uint64_t x) { expiry = x; }))
    return put_int(out, -2);
  if (expiry == 0)
    return put_int(out, -1);
  int64_t now = static_cast<int64_t>(c.ks.clock().now_ms());
  int64_t t = absolute ? static_cast<int64_t>(expiry) : static_cast<int64_t>(expiry) - now;
  if (t < 0)
    t = 0;
  put_int(out, ms ? t : (t + 500) / 1000);
}

void cmd_ttl(const command_args& a, command_context& c) {
  auto& out = c.out;
  ttl_generic(c, a[1], out, false, false);
}
void cmd_pttl(const command_args& a, command_context& c) {
  auto& out = c.out;
  ttl_generic(c, a[1], out, true, false);
}
void cmd_expiretime(const command_args& a, command_context& c) {
  auto& out = c.out;
  ttl_generic(c, a[1], out, false, true);
}
void cmd_pexpiretime(const command_args& a, command_context& c) {
  auto& out = c.out;
  ttl_generic(c, a[1], out, true, true);
}

void cmd_persist(const command_args& a, command_context& c) {
  auto& out = c.out;
  auto e = c.ks.get(a[1]);
  if (!e || e->expiry_ms == 0)
    return put_int(out, 0);
  c.ks.set_expiry(a[1], 0);
  put_int(out, 1);
}

void cmd_type(const command_args& a, command_context& c) {
  auto& out = c.out;
  const char* t = "none";
  c.ks.view(a[1], [&](const keyspace::key_view& v) {
    t = (v.flags & entry_flags::hash) ? "hash" : "string";
  });
  put_status(out, t);
}

void collect_keys(command_context& c, const listing* lst, std::string_view pattern,
                  std::vector<std::string>& keys) {
  if (lst) {
    keys = lst->keys;
    return;
  }
  c.ks.memory_keys([&](std::string_view k) {
    if (pattern.empty() || glob_match(pattern, k))
      keys.emplace_back(k);
  });
}

void cmd_dbsize(const command_args&, command_context& c) {
  auto& out = c.out;
  auto* lst = c.lst;
  if (lst)
    return put_int(out, static_cast<int64_t>(lst->count));
  // O(1): the memory tiers' entry counts (expired keys not yet swept count,
  // as in Redis)
  put_int(out, static_cast<int64_t>(c.ks.l1_stats().entries + c.ks.l2_stats().entries));
}

void cmd_flushall(const command_args& a, command_context& c) {
  auto& out = c.out;
  if (a.size() > 2 || (a.size() == 2 && !ieq(a[1], "async") && !ieq(a[1], "sync")))
    return put_error(out, err_syntax);
  c.ks.clear();
  c.state.scan_cursors.clear();
  put_ok(out);
}

void cmd_keys(const command_args& a, command_context& c) {
  auto& out = c.out;
  auto* lst = c.lst;
  std::vector<std::string> keys;
  collect_keys(c, lst, a[1], keys);
  put_array_header(out, keys.size());
  for (auto& k : keys)
    put_bulk(out, k);
}

// -- SCAN cursors ------------------------------------------------------------------
//
// A cursor is a position in the listing order of actors/store.cpp (phase 0:
// L3's keys and L4's keys up to 400 bytes merged in byte order; phase 1: L4's
// longer keys by hash; memory only: byte order). Bit 62 holds the phase, bits
// 41-61 a token under which the node remembers the last key examined (for the
// last 100000 cursors, node-wide), bits 0-40 a prefix of that key: 6
// printable characters (base 96, bit 40 set) when the key starts with them,
// else its first 5 bytes. A cursor whose token is remembered resumes exactly
// after its key, whichever connection sends it. Any other number (a cursor
// from before a restart, or one older than the last 100000) resumes after its
// prefix, which sorts before the key (phase 1: from the start of phase 1):
// keys may then come twice, but none present for the whole iteration is
// missed, and the call hands out a remembered token again, so a full
// iteration still ends.

constexpr int cursor_token_shift = 41;
constexpr uint64_t cursor_token_bits = 21;
constexpr uint64_t cursor_phase_bit = 1ull << 62;
constexpr uint64_t cursor_printable_bit = 1ull << 40;

std::string cursor_prefix(uint64_t cursor) {
  std::string p;
  if (cursor & cursor_printable_bit) {
    uint64_t v = cursor & (cursor_printable_bit - 1);
    char d[6];
    for (int i = 5; i >= 0; --i, v /= 96)
      d[i] = static_cast<char>(v % 96);
    for (char x : d) {
      if (x == 0)
        break;
      p.push_back(static_cast<char>(x + 0x1f));
    }
    return p;
  }
  for (int i = 4; i >= 0; --i)
    p.push_back(static_cast<char>((cursor >> (8 * i)) & 0xff));
  while (!p.empty() && p.back() == '\0')
    p.pop_back();
  return p;
}

/// The prefix bits of a cursor at `last` (cursor_prefix decodes them).
uint64_t encode_prefix(const std::string& last) {
  auto printable = [](char ch) { return ch >= 0x20 && ch <= 0x7e; };
  if (!last.empty() && printable(last[0])) {
    uint64_t v = 0;
    bool end = false;
    for (size_t i = 0; i < 6; ++i) {
      end = end || i >= last.size() || !printable(last[i]);
      v = v * 96 + (end ? 0 : static_cast<uint8_t>(last[i]) - 0x1f);
    }
    return cursor_printable_bit | v;
  }
  uint64_t p = 0;
  for (size_t i = 0; i < 5; ++i)
    p = (p << 8) | (i < last.size() ? static_cast<uint8_t>(last[i]) : 0u);
  return p;
}

uint64_t make_cursor(scan_cursor_table& t, const std::string& last, uint8_t phase) {
  uint64_t token = t.next_token++ & ((1ull << cursor_token_bits) - 1);
  if (token == 0)
    token = t.next_token++ & ((1ull << cursor_token_bits) - 1);
  if (t.ring.empty())
    t.ring.resize(scan_cursor_table::capacity);
  auto& slot = t.ring[token % scan_cursor_table::capacity];
  slot.token = token;
  slot.phase = phase;
  slot.key = last;
  uint64_t p = phase == 0 ? encode_prefix(last) : 0;
  return (phase != 0 ? cursor_phase_bit : 0) | (token << cursor_token_shift) | p;
}

/// Where a cursor resumes: (phase, key to list after; empty = the phase's start).
std::pair<uint8_t, std::string> resume_after(const scan_cursor_table& t, uint64_t cursor) {
  uint8_t phase = (cursor & cursor_phase_bit) != 0 ? 1 : 0;
  auto prefix = phase == 0 ? cursor_prefix(cursor) : std::string{};
  uint64_t token = (cursor >> cursor_token_shift) & ((1ull << cursor_token_bits) - 1);
  if (token != 0 && !t.ring.empty()) {
    auto& slot = t.ring[token % scan_cursor_table::capacity];
    if (slot.token == token && slot.phase == phase &&
        slot.key.compare(0, prefix.size(), prefix) == 0)
      return {phase, slot.key};
  }
  return {phase, prefix};
}

void cmd_scan(const command_args& a, command_context& c) {
  auto& out = c.out;
  auto* lst = c.lst;
  uint64_t cursor = 0;
  if (!parse_cursor(a[1], cursor))
    return put_error(out, "ERR invalid cursor");
  std::string_view pattern, type;
  int64_t count = 10;
  for (size_t i = 2; i < a.size(); i += 2) {
    if (i + 1 >= a.size())
      return put_error(out, err_syntax);
    if (ieq(a[i], "match")) {
      pattern = a[i + 1];
    } else if (ieq(a[i], "count")) {
      if (!parse_int64(a[i + 1], count))
        return put_error(out, err_not_int);
      if (count < 1)
        return put_error(out, err_syntax);
    } else if (ieq(a[i], "type")) {
      type = a[i + 1];
    } else {
      return put_error(out, err_syntax);
    }
  }
  uint8_t phase = 0;
  std::string after;
  std::tie(phase, after) = resume_after(c.state.scan_cursors, cursor);
  std::vector<std::string> keys;
  std::vector<uint8_t> flags;
  std::string last;
  bool done = true;
  if (lst) {
    keys = lst->keys;
    flags = lst->flags;
    last = lst->last;
    phase = lst->phase;
    done = lst->done;
  } else if (phase == 0) { // memory only: sorted, resumable by key
    std::vector<std::string> all;
    c.ks.memory_keys([&](std::string_view k) {
      if (k > after || after.empty())
        all.emplace_back(k);
    });
    std::sort(all.begin(), all.end());
    size_t n = std::min(all.size(), static_cast<size_t>(count));
    for (size_t i = 0; i < n; ++i)
      if (pattern.empty() || glob_match(pattern, all[i]))
        keys.push_back(all[i]);
    done = n == all.size();
    if (n > 0)
      last = all[n - 1];
  }
  uint64_t next = done ? 0 : make_cursor(c.state.scan_cursors, last, phase);
  if (!type.empty()) {
    // TYPE: memory's flags when it holds the key, else the listing's
    auto want_hash = ieq(type, "hash");
    bool known_type = want_hash || ieq(type, "string");
    std::vector<std::string> kept;
    for (size_t i = 0; i < keys.size(); ++i) {
      bool hash = i < flags.size() && (flags[i] & entry_flags::hash) != 0;
      c.ks.view(keys[i],
                [&](const keyspace::key_view& v) { hash = (v.flags & entry_flags::hash) != 0; });
      if (known_type && hash == want_hash)
        kept.push_back(std::move(keys[i]));
    }
    keys = std::move(kept);
  }
  put_array_header(out, 2);
  put_bulk(out, std::to_string(next));
  put_array_header(out, keys.size());
  for (auto& k : keys)
    put_bulk(out, k);
}

void cmd_randomkey(const command_args&, command_context& c) {
  auto& out = c.out;
  auto* lst = c.lst;
  if (lst) {
    if (lst->keys.empty())
      return put_nil(out);
    return put_bulk(out, lst->keys.front());
  }
  std::vector<std::string> keys;
  collect_keys(c, nullptr, {}, keys);
  if (keys.empty())
    return put_nil(out);
  static std::mt19937_64 rng{0x6b757261};
  put_bulk(out, keys[rng() % keys.size()]);
}

void rename_generic(command_context& c, const command_args& a, out_buffer& out, bool nx) {
  auto e = c.ks.get(a[1]);
  if (!e)
    return put_error(out, "ERR no such key");
  if (a[1] == a[2])
    return nx ? put_int(out, 0) : put_ok(out);
  if (nx && c.ks.exists(a[2]))
    return put_int(out, 0);
  if (auto st = c.ks.write(a[2], std::move(e->value), e->expiry_ms, e->flags); !st.ok())
    return put_error(out, "ERR " + st.message());
  c.ks.erase(a[1]);
  if (nx)
    put_int(out, 1);
  else
    put_ok(out);
}

void cmd_rename(const command_args& a, command_context& c) {
  auto& out = c.out;
  rename_generic(c, a, out, false);
}
void cmd_renamenx(const command_args& a, command_context& c) {
  auto& out = c.out;
  rename_generic(c, a, out, true);
}

void cmd_copy(const command_args& a, command_context& c) {
  auto& out = c.out;
  bool replace = false;
  for (size_t i = 3; i < a.size(); ++i) {
    if (ieq(a[i], "replace")) {
      replace = true;
    } else if (ieq(a[i], "db") && i + 1 < a.size()) {
      int64_t db = 0;
      if (!parse_int64(a[i + 1], db))
        return put_error(out, err_not_int);
      if (db != 0)
        return put_error(out, "ERR DB index is out of range");
      ++i;
    } else {
      return put_error(out, err_syntax);
    }
  }
  if (a[1] == a[2])
    return put_error(out, "ERR source and destination objects are the same");
  auto e = c.ks.get(a[1]);
  if (!e)
    return put_int(out, 0);
  if (!replace && c.ks.exists(a[2]))
    return put_int(out, 0);
  if (auto st = c.ks.write(a[2], std::move(e->value), e->expiry_ms, e->flags); !st.ok())
    return put_error(out, "ERR " + st.message());
  put_int(out, 1);
}

// -- L3 listings -----------------------------------------------------------------

void plan_dbsize(const command_args&, const command_spec&, const command_state&, keyspace&,
                 fetch_plan& out) {
  out.kind = fetch_plan::listing;
  out.mode = fetch_plan::list_count;
}

void plan_randomkey(const command_args&, const command_spec&, const command_state&, keyspace&,
                    fetch_plan& out) {
  out.kind = fetch_plan::listing;
  out.mode = fetch_plan::list_random;
}

void plan_keys(const command_args& a, const command_spec&, const command_state&, keyspace&,
               fetch_plan& out) {
  out.kind = fetch_plan::listing;
  out.mode = fetch_plan::list_keys;
  out.pattern.assign(a[1].data(), a[1].size());
}

/// SCAN cursor [MATCH p] [COUNT n] [TYPE t]: list from where the cursor stopped.
void plan_scan(const command_args& a, const command_spec&, const command_state& st, keyspace&,
               fetch_plan& out) {
  uint64_t cursor = 0;
  if (!parse_cursor(a[1], cursor))
    return; // execute answers "invalid cursor"
  if (cursor != 0)
    std::tie(out.phase, out.after) = resume_after(st.scan_cursors, cursor);
  out.kind = fetch_plan::listing;
  out.mode = fetch_plan::list_keys;
  out.limit = 10;
  for (size_t i = 2; i + 1 < a.size(); i += 2) {
    if (ieq(a[i], "match"))
      out.pattern.assign(a[i + 1].data(), a[i + 1].size());
    else if (ieq(a[i], "count")) {
      int64_t n = 0;
      if (parse_int64(a[i + 1], n) && n > 0)
        out.limit = static_cast<uint64_t>(n);
    }
  }
}

} // namespace

void register_keyspace_commands(command_registry& r) {
  r.add("del", -2, "write", cmd_del)
      .keys(1, -1, 1)
      .key_spec(1, -1, 1, 0, "RM delete")
      .acl("@keyspace @write @slow")
      .tips("request_policy:multi_shard response_policy:agg_sum")
      .doc("Delete a key", "1.0.0", "generic",
           "O(N) where N is the number of keys that will be removed. When a key to remove "
           "holds a value other than a string, the individual complexity for this key is O(M) "
           "where M is the number of elements in the list, set, sorted set or hash. Removing "
           "a single key that holds a string value is O(1).");
  r.add("unlink", -2, "write fast", cmd_del)
      .keys(1, -1, 1)
      .key_spec(1, -1, 1, 0, "RM delete")
      .acl("@keyspace @write @fast")
      .tips("request_policy:multi_shard response_policy:agg_sum")
      .doc("Delete a key asynchronously in another thread. Otherwise it is just as DEL, but "
           "non blocking.",
           "4.0.0", "generic",
           "O(1) for each key removed regardless of its size. Then the command does O(N) work "
           "in a different thread in order to reclaim memory, where N is the number of "
           "allocations the deleted objects where composed of.");
  r.add("exists", -2, "readonly fast", cmd_exists)
      .keys(1, -1, 1)
      .key_spec(1, -1, 1, 0, "RO")
      .acl("@keyspace @read @fast")
      .tips("request_policy:multi_shard response_policy:agg_sum")
      .doc("Determine if a key exists", "1.0.0", "generic",
           "O(N) where N is the number of keys to check.");
  r.add("expire", -3, "write fast", cmd_expire)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RW update")
      .acl("@keyspace @write @fast")
      .doc("Set a key's time to live in seconds", "1.0.0", "generic", "O(1)");
  r.add("pexpire", -3, "write fast", cmd_pexpire)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RW update")
      .acl("@keyspace @write @fast")
      .doc("Set a key's time to live in milliseconds", "2.6.0", "generic", "O(1)");
  r.add("expireat", -3, "write fast", cmd_expireat)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RW update")
      .acl("@keyspace @write @fast")
      .doc("Set the expiration for a key as a UNIX timestamp", "1.2.0", "generic", "O(1)");
  r.add("pexpireat", -3, "write fast", cmd_pexpireat)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RW update")
      .acl("@keyspace @write @fast")
      .doc("Set the expiration for a key as a UNIX timestamp specified in milliseconds", "2.6.0",
           "generic", "O(1)");
  r.add("ttl", 2, "readonly fast", cmd_ttl)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RO access")
      .acl("@keyspace @read @fast")
      .tips("nondeterministic_output")
      .doc("Get the time to live for a key in seconds", "1.0.0", "generic", "O(1)");
  r.add("pttl", 2, "readonly fast", cmd_pttl)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RO access")
      .acl("@keyspace @read @fast")
      .tips("nondeterministic_output")
      .doc("Get the time to live for a key in milliseconds", "2.6.0", "generic", "O(1)");
  r.add("expiretime", 2, "readonly fast", cmd_expiretime)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RO access")
      .acl("@keyspace @read @fast")
      .doc("Get the expiration Unix timestamp for a key", "7.0.0", "generic", "O(1)");
  r.add("pexpiretime", 2, "readonly fast", cmd_pexpiretime)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RO access")
      .acl("@keyspace @read @fast")
      .doc("Get the expiration Unix timestamp for a key in milliseconds", "7.0.0", "generic",
           "O(1)");
  r.add("persist", 2, "write fast", cmd_persist)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RW update")
      .acl("@keyspace @write @fast")
      .doc("Remove the expiration from a key", "2.2.0", "generic", "O(1)");
  r.add("type", 2, "readonly fast", cmd_type)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RO")
      .acl("@keyspace @read @fast")
      .doc("Determine the type stored at key", "1.0.0", "generic", "O(1)");
  r.add("dbsize", 1, "readonly fast", cmd_dbsize)
      .acl("@keyspace @read @fast")
      .tips("request_policy:all_shards response_policy:agg_sum")
      .listing(plan_dbsize)
      .doc("Return the number of keys in the selected database", "1.0.0", "server", "O(1)");
  r.add("flushall", -1, "write", cmd_flushall)
      .acl("@keyspace @write @slow @dangerous")
      .tips("request_policy:all_shards response_policy:all_succeeded")
      .doc("Remove all keys from all databases", "1.0.0", "server",
           "O(N) where N is the total number of keys in all databases");
  r.add("flushdb", -1, "write", cmd_flushall)
      .acl("@keyspace @write @slow @dangerous")
      .tips("request_policy:all_shards response_policy:all_succeeded")
      .doc("Remove all keys from the current database", "1.0.0", "server",
           "O(N) where N is the number of keys in the selected database");
  r.add("keys", 2, "readonly", cmd_keys)
      .acl("@keyspace @read @slow @dangerous")
      .tips("request_policy:all_shards nondeterministic_output_order")
      .listing(plan_keys)
      .doc("Find all keys matching the given pattern", "1.0.0", "generic",
           "O(N) with N being the number of keys in the database, under the assumption that "
           "the key names in the database and the given pattern have limited length.");
  r.add("scan", -2, "readonly", cmd_scan)
      .acl("@keyspace @read @slow")
      .tips("nondeterministic_output request_policy:special")
      .listing(plan_scan)
      .doc("Incrementally iterate the keys space", "2.8.0", "generic",
           "O(1) for every call. O(N) for a complete iteration, including enough command "
           "calls for the cursor to return back to 0. N is the number of elements inside the "
           "collection.");
  r.add("randomkey", 1, "readonly", cmd_randomkey)
      .acl("@keyspace @read @slow")
      .tips("request_policy:all_shards nondeterministic_output")
      .listing(plan_randomkey)
      .doc("Return a random key from the keyspace", "1.0.0", "generic", "O(1)");
  r.add("rename", 3, "write", cmd_rename)
      .keys(1, 2, 1)
      .key_spec(1, 0, 1, 0, "RW access delete")
      .key_spec(2, 0, 1, 0, "OW update")
      .acl("@keyspace @write @slow")
      .doc("Rename a key", "1.0.0", "generic", "O(1)");
  r.add("renamenx", 3, "write fast", cmd_renamenx)
      .keys(1, 2, 1)
      .key_spec(1, 0, 1, 0, "RW access delete")
      .key_spec(2, 0, 1, 0, "OW insert")
      .acl("@keyspace @write @fast")
      .doc("Rename a key, only if the new key does not exist", "1.0.0", "generic", "O(1)");
  r.add("copy", -3, "write denyoom", cmd_copy)
      .keys(1, 2, 1)
      .key_spec(1, 0, 1, 0, "RO access")
      .key_spec(2, 0, 1, 0, "OW update")
      .acl("@keyspace @write @slow")
      .doc("Copy a key", "6.2.0", "generic",
           "O(N) worst case for collections, where N is the number of nested items. O(1) for "
           "string values.");
}

} // namespace kura::node
