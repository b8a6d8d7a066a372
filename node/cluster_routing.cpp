#include "node/cluster_routing.hpp"

#include "actors/keyspace.hpp"
#include "node/cluster_faces.hpp"
#include "node/command_util.hpp"
#include "node/resp_parser.hpp"
#include "tiers/clock.hpp"
#include "tiers/slot.hpp"

#include <algorithm>
#include <charconv>
#include <limits>
#include <memory>
#include <random>
#include <set>
#include <string>

namespace kura::node {

namespace {

using actors::cluster_core;
using gossip::client_result;

/// A reply buffer with room reserved (GCC 12's -Warray-bounds misfires on
/// small appends to an empty vector).
out_buffer fresh_buffer() {
  out_buffer o;
  o.reserve(64);
  return o;
}

out_buffer error_reply(std::string_view msg) {
  std::string s = "-";
  s.append(msg);
  s += "\r\n";
  return out_buffer(s.begin(), s.end());
}

out_buffer arity_error(std::string_view name) {
  return error_reply("ERR wrong number of arguments for '" + lower(name) + "' command");
}

const char* not_acked =
    "NOREPLICAS Not enough replicas acknowledged the write (kura.cluster.write-acks)";
const char* down = "CLUSTERDOWN The cluster is not joined yet";

/// Collects the answers of several per-key calls and replies once all are in.
struct fan_out {
  std::vector<client_result> results;
  size_t pending = 0;
  bool issued = false;
  std::function<void(std::vector<client_result>&)> finish;
  void done_one(size_t i, const client_result& r) {
    results[i] = r;
    --pending;
    maybe_finish();
  }
  void maybe_finish() {
    if (issued && pending == 0 && finish) {
      auto f = std::move(finish);
      finish = nullptr;
      f(results);
    }
  }
};

/// Reads every key of `keys`; `then(results)` in key order.
void read_all(cluster_core& c, std::vector<std::string> keys,
              std::function<void(std::vector<client_result>&)> then) {
  auto fo = std::make_shared<fan_out>();
  fo->results.resize(keys.size());
  fo->finish = std::move(then);
  fo->pending = keys.size();
  for (size_t i = 0; i < keys.size(); ++i)
    c.read(keys[i], [fo, i](const client_result& r) { fo->done_one(i, r); });
  fo->issued = true;
  fo->maybe_finish();
}

struct kv_write {
  std::string key, value;
  uint64_t expiry_ms = 0;
  bool tombstone = false;
};

void write_all(cluster_core& c, std::vector<kv_write> ws,
               std::function<void(std::vector<client_result>&)> then) {
  auto fo = std::make_shared<fan_out>();
  fo->results.resize(ws.size());
  fo->finish = std::move(then);
  fo->pending = ws.size();
  for (size_t i = 0; i < ws.size(); ++i)
    c.write(ws[i].key, ws[i].value, ws[i].expiry_ms, ws[i].tombstone,
            [fo, i](const client_result& r) { fo->done_one(i, r); });
  fo->issued = true;
  fo->maybe_finish();
}

bool all_ok(const std::vector<client_result>& rs) {
  for (auto& r : rs)
    if (!r.ok)
      return false;
  return true;
}

/// Writes `ws`; answers +OK once every write is acknowledged, NOREPLICAS if not.
void write_then_ok(cluster_core& c, std::vector<kv_write> ws,
                   std::function<void(out_buffer&&)> done) {
  write_all(c, std::move(ws), [done](std::vector<client_result>& rs) {
    auto o = fresh_buffer();
    if (all_ok(rs))
      put_ok(o);
    else
      put_error(o, not_acked);
    done(std::move(o));
  });
}

std::vector<std::string> keys_of(const std::vector<std::string_view>& a, size_t first,
                                 size_t step) {
  std::vector<std::string> ks;
  for (size_t i = first; i < a.size(); i += step)
    ks.emplace_back(a[i]);
  return ks;
}

uint64_t now_ms() {
  return real_clock::instance().now_ms();
}

/// SET key value [EX s | PX ms | EXAT s | PXAT ms]
void cmd_set(cluster_core& c, const std::vector<std::string_view>& a,
             std::function<void(out_buffer&&)> done) {
  if (a.size() < 3)
    return done(arity_error(a[0]));
  uint64_t expiry = 0;
  for (size_t i = 3; i < a.size(); ++i) {
    auto opt = lower(a[i]);
    if (opt == "ex" || opt == "px" || opt == "exat" || opt == "pxat") {
      int64_t v = 0;
      if (i + 1 >= a.size() || expiry != 0)
        return done(error_reply("ERR syntax error"));
      if (!parse_int64(a[++i], v))
        return done(error_reply("ERR value is not an integer or out of range"));
      if (v <= 0)
        return done(error_reply("ERR invalid expire time in 'set' command"));
      auto u = static_cast<uint64_t>(v);
      expiry = opt == "ex"     ? now_ms() + u * 1000
               : opt == "px"   ? now_ms() + u
               : opt == "exat" ? u * 1000
                               : u;
    } else {
      return done(error_reply("ERR syntax error"));
    }
  }
  write_then_ok(c, {kv_write{std::string(a[1]), std::string(a[2]), expiry, false}},
                std::move(done));
}

void cmd_setex(cluster_core& c, const std::vector<std::string_view>& a, int64_t unit_ms,
               std::function<void(out_buffer&&)> done) {
  if (a.size() != 4)
    return done(arity_error(a[0]));
  int64_t v = 0;
  if (!parse_int64(a[2], v))
    return done(error_reply("ERR value is not an integer or out of range"));
  if (v <= 0)
    return done(error_reply("ERR invalid expire time in '" + lower(a[0]) + "' command"));
  uint64_t expiry = now_ms() + static_cast<uint64_t>(v) * static_cast<uint64_t>(unit_ms);
  write_then_ok(c, {kv_write{std::string(a[1]), std::string(a[3]), expiry, false}},
                std::move(done));
}

/// DEL / UNLINK: reads (for the count) then writes tombstones for every key.
void cmd_del(cluster_core& c, const std::vector<std::string_view>& a,
             std::function<void(out_buffer&&)> done) {
  if (a.size() < 2)
    return done(arity_error(a[0]));
  auto keys = keys_of(a, 1, 1);
  auto* cp = &c;
  read_all(c, keys, [cp, keys, done](std::vector<client_result>& found) {
    int64_t n = 0;
    std::vector<kv_write> ws;
    for (size_t i = 0; i < keys.size(); ++i) {
      if (found[i].found) {
        ++n;
        ws.push_back(kv_write{keys[i], {}, 0, true});
      }
    }
    if (ws.empty()) {
      auto o = fresh_buffer();
      put_int(o, 0);
      return done(std::move(o));
    }
    write_all(*cp, std::move(ws), [n, done](std::vector<client_result>& rs) {
      auto o = fresh_buffer();
      if (all_ok(rs))
        put_int(o, n);
      else
        put_error(o, not_acked);
      done(std::move(o));
    });
  });
}

void cmd_ttl(cluster_core& c, const std::vector<std::string_view>& a, bool ms,
             std::function<void(out_buffer&&)> done) {
  if (a.size() != 2)
    return done(arity_error(a[0]));
  read_all(c, {std::string(a[1])}, [ms, done](std::vector<client_result>& rs) {
    auto o = fresh_buffer();
    auto& r = rs[0];
    if (!r.found) {
      put_int(o, -2);
    } else if (r.e.expiry_ms == 0) {
      put_int(o, -1);
    } else {
      auto now = now_ms();
      int64_t left = r.e.expiry_ms > now ? static_cast<int64_t>(r.e.expiry_ms - now) : 0;
      put_int(o, ms ? left : (left + 500) / 1000);
    }
    done(std::move(o));
  });
}

// -- commands that run at one node (the key's owner, or each member) ---------------

using reply_fn = std::function<void(std::string)>;

std::string as_string(const out_buffer& o) {
  return std::string(o.begin(), o.end());
}

std::string err_str(std::string_view m) {
  std::string s = "-";
  s.append(m);
  s += "\r\n";
  return s;
}

std::string int_str(int64_t v) {
  return ":" + std::to_string(v) + "\r\n";
}

std::string bulk_str(std::string_view v) {
  auto o = fresh_buffer();
  put_bulk(o, v);
  return as_string(o);
}

const std::string nil_str = "$-1\r\n";

/// The live value this node holds for `key` (none for a tombstone or an
/// expired entry).
std::optional<entry> live(cluster_core& c, const std::string& key) {
  auto e = c.local(key);
  if (!e || e->is_tombstone() || e->expired(now_ms()))
    return std::nullopt;
  return e;
}

/// Writes a new version of `key` (replicated as any write); replies
/// `ok_reply` once write-acks copies hold it.
void write_reply(cluster_core& c, const std::string& key, std::string value, uint64_t expiry,
                 bool tombstone, std::string ok_reply, const reply_fn& reply) {
  c.write(key, std::move(value), expiry, tombstone,
          [ok_reply = std::move(ok_reply), reply](const client_result& r) {
            reply(r.ok ? ok_reply : err_str(not_acked));
          });
}

/// EX/PX/EXAT/PXAT value -> absolute ms; false with `err` set when invalid.
bool expiry_of(std::string_view opt, std::string_view v, std::string_view cmd, uint64_t& abs,
               std::string& err) {
  int64_t n = 0;
  if (!parse_int64(v, n)) {
    err = err_str(err_not_int);
    return false;
  }
  auto o = lower(opt);
  bool ms = o == "px" || o == "pxat";
  bool at = o == "exat" || o == "pxat";
  const int64_t lim = std::numeric_limits<int64_t>::max() / 1000 - 1;
  if (n <= 0 || (!ms && n > lim) || (!at && n > lim)) {
    out_buffer b;
    invalid_expire(b, cmd);
    err = as_string(b);
    return false;
  }
  auto u = static_cast<uint64_t>(n) * (ms ? 1 : 1000);
  abs = at ? u : now_ms() + u;
  return true;
}

void owner_incr(cluster_core& c, const std::string& key, int64_t by, const reply_fn& reply) {
  auto e = live(c, key);
  int64_t cur = 0;
  uint64_t exp = 0;
  if (e) {
    if (!parse_int64(e->value, cur))
      return reply(err_str(err_not_int));
    exp = e->expiry_ms;
  }
  if ((by > 0 && cur > std::numeric_limits<int64_t>::max() - by) ||
      (by < 0 && cur < std::numeric_limits<int64_t>::min() - by))
    return reply(err_str(err_overflow));
  int64_t n = cur + by;
  write_reply(c, key, std::to_string(n), exp, false, int_str(n), reply);
}

/// SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]
void owner_set(cluster_core& c, const std::vector<std::string>& a, const reply_fn& reply) {
  bool nx = false, xx = false, get = false, keepttl = false, has_exp = false;
  uint64_t expiry = 0;
  for (size_t i = 3; i < a.size(); ++i) {
    auto o = lower(a[i]);
    if (o == "nx" && !xx)
      nx = true;
    else if (o == "xx" && !nx)
      xx = true;
    else if (o == "get")
      get = true;
    else if (o == "keepttl" && !has_exp)
      keepttl = true;
    else if ((o == "ex" || o == "px" || o == "exat" || o == "pxat") && !has_exp && !keepttl &&
             i + 1 < a.size()) {
      std::string err;
      if (!expiry_of(o, a[++i], "set", expiry, err))
        return reply(err);
      has_exp = true;
    } else {
      return reply(err_str(err_syntax));
    }
  }
  auto e = live(c, a[1]);
  std::string old = get ? (e ? bulk_str(e->value) : nil_str) : std::string();
  if ((nx && e) || (xx && !e))
    return reply(get ? old : nil_str);
  if (keepttl && e)
    expiry = e->expiry_ms;
  write_reply(c, a[1], a[2], expiry, false, get ? old : std::string("+OK\r\n"), reply);
}

/// EXPIRE/PEXPIRE/EXPIREAT/PEXPIREAT key t [NX|XX|GT|LT]
void owner_expire(cluster_core& c, const std::vector<std::string>& a, const reply_fn& reply) {
  auto name = lower(a[0]);
  int64_t n = 0;
  if (!parse_int64(a[2], n))
    return reply(err_str(err_not_int));
  bool nx = false, xx = false, gt = false, lt = false;
  for (size_t i = 3; i < a.size(); ++i) {
    auto o = lower(a[i]);
    if (o == "nx")
      nx = true;
    else if (o == "xx")
      xx = true;
    else if (o == "gt")
      gt = true;
    else if (o == "lt")
      lt = true;
    else
      return reply(err_str("ERR Unsupported option " + a[i]));
  }
  if (nx && (xx || gt || lt))
    return reply(err_str("ERR NX and XX, GT or LT options at the same time are not compatible"));
  if (gt && lt)
    return reply(err_str("ERR GT and LT options at the same time are not compatible"));
  bool ms = name == "pexpire" || name == "pexpireat";
  bool at = name == "expireat" || name == "pexpireat";
  const int64_t lim = std::numeric_limits<int64_t>::max() / 1000 - 1;
  if ((!ms && (n > lim || n < -lim)) || (!at && n > lim)) {
    out_buffer b;
    invalid_expire(b, name);
    return reply(as_string(b));
  }
  int64_t scaled = n * (ms ? 1 : 1000);
  int64_t abs = at ? scaled : static_cast<int64_t>(now_ms()) + scaled;
  auto e = live(c, a[1]);
  if (!e)
    return reply(int_str(0));
  bool has = e->expiry_ms != 0;
  auto cur = static_cast<int64_t>(e->expiry_ms);
  if ((nx && has) || (xx && !has) || (gt && (!has || abs <= cur)) || (lt && has && abs >= cur))
    return reply(int_str(0));
  if (abs <= static_cast<int64_t>(now_ms())) // in the past: the key goes (Redis)
    return write_reply(c, a[1], {}, 0, true, int_str(1), reply);
  write_reply(c, a[1], e->value, static_cast<uint64_t>(abs), false, int_str(1), reply);
}

/// The ring's owner of a position is this node.
bool primary_here(cluster_core& c, uint64_t pos) {
  auto* n = c.core();
  if (!n || n->current_ring().empty())
    return true;
  auto reps = n->current_ring().replicas_at(pos);
  return !reps.empty() && reps[0] == c.self_id();
}

/// Calls f(pos, meta) for every live key this node owns as primary, from
/// position `from`, until f returns false.
template <class F>
void for_owned(cluster_core& c, uint64_t from, F&& f) {
  auto* n = c.core();
  if (!n)
    return;
  auto now = now_ms();
  n->store().for_each_key_from(from, [&](uint64_t pos, const entry& m) {
    if (m.is_tombstone() || m.expired(now) || !primary_here(c, pos))
      return true;
    return f(pos, m);
  });
}

/// The per-node part of DBSIZE, KEYS, SCAN, FLUSHALL and RANDOMKEY: the keys
/// this node owns as primary (so each key is counted once over the cluster).
void node_part(cluster_core& c, const std::vector<std::string>& a, const reply_fn& reply) {
  auto sub = lower(a[0]);
  if (sub == "kura.node.dbsize") {
    int64_t n = 0;
    for_owned(c, 0, [&](uint64_t, const entry&) {
      ++n;
      return true;
    });
    return reply(int_str(n));
  }
  if (sub == "kura.node.keys" && a.size() == 2) {
    std::vector<std::string> keys;
    for_owned(c, 0, [&](uint64_t, const entry& m) {
      if (actors::glob_match(a[1], m.key))
        keys.push_back(m.key);
      return true;
    });
    auto o = fresh_buffer();
    put_array_header(o, keys.size());
    for (auto& k : keys)
      put_bulk(o, k);
    return reply(as_string(o));
  }
  if (sub == "kura.node.scan" && a.size() == 3) {
    uint64_t from = 0, count = 0;
    if (!parse_cursor(a[1], from) || !parse_cursor(a[2], count) || count == 0)
      return reply(err_str(err_syntax));
    std::vector<std::pair<uint64_t, std::string>> got;
    for_owned(c, from, [&](uint64_t pos, const entry& m) {
      got.emplace_back(pos, m.key);
      return got.size() < count;
    });
    auto o = fresh_buffer();
    put_array_header(o, 2 * got.size());
    for (auto& [pos, k] : got) {
      put_bulk(o, std::to_string(pos));
      put_bulk(o, k);
    }
    return reply(as_string(o));
  }
  if (sub == "kura.node.randomkey") {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    uint64_t from = rng();
    std::optional<std::string> pick;
    for (uint64_t start : {from, uint64_t{0}}) {
      for_owned(c, start, [&](uint64_t, const entry& m) {
        pick = m.key;
        return false;
      });
      if (pick)
        break;
    }
    return reply(pick ? bulk_str(*pick) : nil_str);
  }
  if (sub == "kura.node.flush") {
    std::vector<kv_write> ws;
    for_owned(c, 0, [&](uint64_t, const entry& m) {
      ws.push_back(kv_write{m.key, {}, 0, true});
      return true;
    });
    return write_all(c, std::move(ws), [reply](std::vector<client_result>& rs) {
      reply(all_ok(rs) ? std::string("+OK\r\n") : err_str(not_acked));
    });
  }
  reply(err_str("ERR unknown node command '" + sub + "'"));
}

/// Runs `a` at the first replica of `key` that answers: here when this node
/// is the owner, else forwarded (one hop); on a timeout the next replica.
void at_owner(cluster_core& c, std::vector<std::string> a, std::vector<gossip::node_id> cands,
              size_t i, std::function<void(out_buffer&&)> done) {
  if (i >= cands.size())
    return done(error_reply("CLUSTERDOWN No replica of the key answered"));
  auto to = cands[i];
  auto* cp = &c;
  auto args = a;
  c.forward(
      to, std::move(args),
      [cp, a = std::move(a), cands = std::move(cands), i, done](bool ok, std::string r) mutable {
        if (ok)
          return done(out_buffer(r.begin(), r.end()));
        at_owner(*cp, std::move(a), std::move(cands), i + 1, std::move(done));
      });
}

/// Parses a RESP array of bulk strings (what node_part answers).
bool parse_bulks(const std::string& r, std::vector<std::string>& out) {
  if (r.empty() || r[0] != '*')
    return false;
  size_t p = r.find("\r\n");
  if (p == std::string::npos)
    return false;
  long n = std::strtol(r.c_str() + 1, nullptr, 10);
  for (long i = 0; i < n; ++i) {
    p += 2;
    if (p >= r.size() || r[p] != '$')
      return false;
    auto nl = r.find("\r\n", p);
    if (nl == std::string::npos)
      return false;
    auto len = std::strtoul(r.c_str() + p + 1, nullptr, 10);
    if (nl + 2 + len > r.size())
      return false;
    out.push_back(r.substr(nl + 2, len));
    p = nl + 2 + len;
  }
  return true;
}

/// Sends `a` to every member of the ring (this node included) and calls
/// `then(replies)` once all answered; a member that did not answer in time
/// gives a CLUSTERDOWN error instead.
void fan_out_members(cluster_core& c, std::vector<std::string> a,
                     std::function<void(std::vector<std::string>&)> then,
                     std::function<void(out_buffer&&)> done) {
  struct state {
    std::vector<std::string> replies;
    size_t pending = 0;
    bool issued = false, failed = false;
  };
  auto members = c.ring_members();
  auto st = std::make_shared<state>();
  st->replies.resize(members.size());
  st->pending = members.size();
  auto finish = [st, then, done] {
    if (!st->issued || st->pending != 0)
      return;
    if (st->failed)
      return done(error_reply("CLUSTERDOWN A cluster member did not answer; try again"));
    then(st->replies);
  };
  for (size_t i = 0; i < members.size(); ++i)
    c.forward(members[i], a, [st, i, finish](bool ok, std::string r) {
      st->replies[i] = std::move(r);
      st->failed = st->failed || !ok || (!st->replies[i].empty() && st->replies[i][0] == '-');
      --st->pending;
      finish();
    });
  st->issued = true;
  finish();
}

/// DBSIZE, KEYS, SCAN, RANDOMKEY, FLUSHALL/FLUSHDB over the whole cluster.
void keyspace_wide(cluster_core& c, const std::string& name, const std::vector<std::string_view>& a,
                   std::function<void(out_buffer&&)> done) {
  if (name == "dbsize") {
    if (a.size() != 1)
      return done(arity_error(a[0]));
    return fan_out_members(
        c, {"kura.node.dbsize"},
        [done](std::vector<std::string>& rs) {
          int64_t n = 0;
          for (auto& r : rs)
            n += std::strtoll(r.c_str() + 1, nullptr, 10);
          auto o = fresh_buffer();
          put_int(o, n);
          done(std::move(o));
        },
        done);
  }
  if (name == "keys") {
    if (a.size() != 2)
      return done(arity_error(a[0]));
    return fan_out_members(
        c, {"kura.node.keys", std::string(a[1])},
        [done](std::vector<std::string>& rs) {
          std::vector<std::string> keys;
          for (auto& r : rs)
            parse_bulks(r, keys);
          auto o = fresh_buffer();
          put_array_header(o, keys.size());
          for (auto& k : keys)
            put_bulk(o, k);
          done(std::move(o));
        },
        done);
  }
  if (name == "scan") {
    // The cursor is a ring position: every member lists the keys it owns
    // from there in ring order; the smallest COUNT positions are returned and
    // the next cursor follows the last of them (0: done). A key present for
    // the whole scan is returned once (by its owner at the time).
    if (a.size() < 2)
      return done(arity_error(a[0]));
    uint64_t cursor = 0, count = 10;
    std::string match, type;
    if (!parse_cursor(a[1], cursor))
      return done(error_reply("ERR invalid cursor"));
    for (size_t i = 2; i < a.size(); ++i) {
      auto o = lower(a[i]);
      if (i + 1 >= a.size())
        return done(error_reply(err_syntax));
      if (o == "match") {
        match = std::string(a[++i]);
      } else if (o == "count") {
        int64_t n = 0;
        if (!parse_int64(a[++i], n))
          return done(error_reply(err_not_int));
        if (n < 1)
          return done(error_reply(err_syntax));
        count = static_cast<uint64_t>(std::min<int64_t>(n, 100000));
      } else if (o == "type") {
        type = lower(a[++i]);
      } else {
        return done(error_reply(err_syntax));
      }
    }
    return fan_out_members(
        c, {"kura.node.scan", std::to_string(cursor), std::to_string(count)},
        [done, count, match, type](std::vector<std::string>& rs) {
          std::vector<std::pair<uint64_t, std::string>> all;
          bool more = false;
          for (auto& r : rs) {
            std::vector<std::string> flat;
            parse_bulks(r, flat);
            more = more || flat.size() / 2 >= count;
            for (size_t i = 0; i + 1 < flat.size(); i += 2)
              all.emplace_back(std::strtoull(flat[i].c_str(), nullptr, 10), flat[i + 1]);
          }
          std::sort(all.begin(), all.end());
          if (all.size() > count) {
            all.resize(count);
            more = true;
          }
          uint64_t next = more && !all.empty() ? all.back().first + 1 : 0;
          auto o = fresh_buffer();
          put_array_header(o, 2);
          put_bulk(o, std::to_string(next));
          std::vector<std::string> keys;
          for (auto& [pos, k] : all)
            if ((match.empty() || actors::glob_match(match, k)) &&
                (type.empty() || type == "string"))
              keys.push_back(k);
          put_array_header(o, keys.size());
          for (auto& k : keys)
            put_bulk(o, k);
          done(std::move(o));
        },
        done);
  }
  if (name == "randomkey") {
    if (a.size() != 1)
      return done(arity_error(a[0]));
    return fan_out_members(
        c, {"kura.node.randomkey"},
        [done](std::vector<std::string>& rs) {
          std::vector<std::string> found;
          for (auto& r : rs)
            if (r != nil_str)
              found.push_back(r);
          if (found.empty())
            return done(out_buffer(nil_str.begin(), nil_str.end()));
          static thread_local std::mt19937 rng{std::random_device{}()};
          auto& r = found[rng() % found.size()];
          done(out_buffer(r.begin(), r.end()));
        },
        done);
  }
  // flushall / flushdb [ASYNC|SYNC]
  for (size_t i = 1; i < a.size(); ++i) {
    auto o = lower(a[i]);
    if (o != "async" && o != "sync")
      return done(error_reply(err_syntax));
  }
  fan_out_members(
      c, {"kura.node.flush"},
      [done](std::vector<std::string>&) {
        auto o = fresh_buffer();
        put_ok(o);
        done(std::move(o));
      },
      done);
}

} // namespace

void exec_owned(actors::cluster_core& c, std::vector<std::string> a,
                std::function<void(std::string)> reply) {
  auto name = lower(a[0]);
  if (name.rfind("kura.node.", 0) == 0)
    return node_part(c, a, reply);
  if (a.size() < 2)
    return reply(err_str("ERR wrong number of arguments for '" + name + "' command"));
  const std::string& key = a[1];
  auto arity = [&](size_t n) { return a.size() == n; };
  auto bad_arity = [&] {
    reply(err_str("ERR wrong number of arguments for '" + name + "' command"));
  };
  if (name == "incr" || name == "decr") {
    if (!arity(2))
      return bad_arity();
    return owner_incr(c, key, name == "incr" ? 1 : -1, reply);
  }
  if (name == "incrby" || name == "decrby") {
    if (!arity(3))
      return bad_arity();
    int64_t by = 0;
    if (!parse_int64(a[2], by))
      return reply(err_str(err_not_int));
    if (name == "decrby") {
      if (by == std::numeric_limits<int64_t>::min())
        return reply(err_str("ERR decrement would overflow"));
      by = -by;
    }
    return owner_incr(c, key, by, reply);
  }
  if (name == "incrbyfloat") {
    if (!arity(3))
      return bad_arity();
    long double by = 0, cur = 0;
    if (!parse_ld(a[2], by))
      return reply(err_str(err_not_float));
    auto e = live(c, key);
    uint64_t exp = 0;
    if (e) {
      if (!parse_ld(e->value, cur))
        return reply(err_str(err_not_float));
      exp = e->expiry_ms;
    }
    long double r = cur + by;
    if (std::isnan(r) || std::isinf(r))
      return reply(err_str("ERR increment would produce NaN or Infinity"));
    auto v = format_ld(r);
    return write_reply(c, key, v, exp, false, bulk_str(v), reply);
  }
  if (name == "append") {
    if (!arity(3))
      return bad_arity();
    auto e = live(c, key);
    std::string v = e ? e->value : std::string();
    v += a[2];
    auto len = static_cast<int64_t>(v.size());
    return write_reply(c, key, std::move(v), e ? e->expiry_ms : 0, false, int_str(len), reply);
  }
  if (name == "setrange") {
    if (!arity(4))
      return bad_arity();
    int64_t off = 0;
    if (!parse_int64(a[2], off))
      return reply(err_str(err_not_int));
    if (off < 0)
      return reply(err_str("ERR offset is out of range"));
    auto e = live(c, key);
    std::string v = e ? e->value : std::string();
    if (a[3].empty())
      return reply(int_str(static_cast<int64_t>(v.size())));
    if (static_cast<uint64_t>(off) + a[3].size() > 512ull * 1024 * 1024)
      return reply(err_str("ERR string exceeds maximum allowed size (proto-max-bulk-len)"));
    auto uoff = static_cast<size_t>(off);
    if (v.size() < uoff + a[3].size())
      v.resize(uoff + a[3].size(), '\0');
    v.replace(uoff, a[3].size(), a[3]);
    auto len = static_cast<int64_t>(v.size());
    return write_reply(c, key, std::move(v), e ? e->expiry_ms : 0, false, int_str(len), reply);
  }
  if (name == "getset") {
    if (!arity(3))
      return bad_arity();
    auto e = live(c, key);
    return write_reply(c, key, a[2], 0, false, e ? bulk_str(e->value) : nil_str, reply);
  }
  if (name == "getdel") {
    if (!arity(2))
      return bad_arity();
    auto e = live(c, key);
    if (!e)
      return reply(nil_str);
    return write_reply(c, key, {}, 0, true, bulk_str(e->value), reply);
  }
  if (name == "setnx") {
    if (!arity(3))
      return bad_arity();
    if (live(c, key))
      return reply(int_str(0));
    return write_reply(c, key, a[2], 0, false, int_str(1), reply);
  }
  if (name == "set") {
    if (a.size() < 3)
      return bad_arity();
    return owner_set(c, a, reply);
  }
  if (name == "getex") {
    uint64_t expiry = 0;
    bool change = false;
    for (size_t i = 2; i < a.size(); ++i) {
      auto o = lower(a[i]);
      if (o == "persist" && !change) {
        change = true;
      } else if ((o == "ex" || o == "px" || o == "exat" || o == "pxat") && !change &&
                 i + 1 < a.size()) {
        std::string err;
        if (!expiry_of(o, a[++i], "getex", expiry, err))
          return reply(err);
        change = true;
      } else {
        return reply(err_str(err_syntax));
      }
    }
    auto e = live(c, key);
    if (!e)
      return reply(nil_str);
    if (!change)
      return reply(bulk_str(e->value));
    return write_reply(c, key, e->value, expiry, false, bulk_str(e->value), reply);
  }
  if (name == "expire" || name == "pexpire" || name == "expireat" || name == "pexpireat") {
    if (a.size() < 3)
      return bad_arity();
    return owner_expire(c, a, reply);
  }
  if (name == "persist") {
    if (!arity(2))
      return bad_arity();
    auto e = live(c, key);
    if (!e || e->expiry_ms == 0)
      return reply(int_str(0));
    return write_reply(c, key, e->value, 0, false, int_str(1), reply);
  }
  reply(err_str("ERR '" + name + "' cannot be forwarded"));
}

route classify(const command_registry& reg, const std::vector<std::string_view>& args) {
  int id = reg.resolve(args);
  if (id < 0)
    return route::local; // the command table answers unknown commands
  auto& sp = reg.spec(id);
  if (sp.first_key > 0 || !sp.key_specs.empty())
    return route::cluster;
  // keyspace-wide commands, and transactions (MULTI/WATCH are not routed yet)
  if (is_face_command(args[0]))
    return route::face; // CLUSTER, READONLY ... (node/cluster_faces.hpp)
  static const char* keyspace_wide[] = {"wait",     "dbsize",  "keys",  "scan", "randomkey",
                                        "flushall", "flushdb", "multi", "watch"};
  auto name = lower(args[0]);
  for (auto* k : keyspace_wide)
    if (name == k)
      return route::cluster;
  return route::local;
}

void run_clustered(cluster_core& c, const std::vector<std::string_view>& a,
                   std::function<void(out_buffer&&)> done) {
  auto name = lower(a[0]);
  if (!c.ready())
    return done(error_reply(down));
  if (name == "get") {
    if (a.size() != 2)
      return done(arity_error(a[0]));
    return read_all(c, {std::string(a[1])}, [done](std::vector<client_result>& rs) {
      auto o = fresh_buffer();
      if (rs[0].found)
        put_bulk(o, rs[0].e.value);
      else
        put_nil(o);
      done(std::move(o));
    });
  }
  if (name == "mget") {
    if (a.size() < 2)
      return done(arity_error(a[0]));
    return read_all(c, keys_of(a, 1, 1), [done](std::vector<client_result>& rs) {
      auto o = fresh_buffer();
      put_array_header(o, rs.size());
      for (auto& r : rs)
        if (r.found)
          put_bulk(o, r.e.value);
        else
          put_nil(o);
      done(std::move(o));
    });
  }
  if (name == "exists" || name == "touch") {
    if (a.size() < 2)
      return done(arity_error(a[0]));
    return read_all(c, keys_of(a, 1, 1), [done](std::vector<client_result>& rs) {
      int64_t n = 0;
      for (auto& r : rs)
        n += r.found ? 1 : 0;
      auto o = fresh_buffer();
      put_int(o, n);
      done(std::move(o));
    });
  }
  if (name == "set") {
    bool conditional = false;
    for (size_t i = 3; i < a.size(); ++i) {
      auto o = lower(a[i]);
      conditional = conditional || o == "nx" || o == "xx" || o == "get" || o == "keepttl";
    }
    if (!conditional)
      return cmd_set(c, a, std::move(done));
  }
  if (name == "setex")
    return cmd_setex(c, a, 1000, std::move(done));
  if (name == "psetex")
    return cmd_setex(c, a, 1, std::move(done));
  if (name == "mset") {
    if (a.size() < 3 || a.size() % 2 == 0)
      return done(arity_error(a[0]));
    std::vector<kv_write> ws;
    for (size_t i = 1; i + 1 < a.size(); i += 2)
      ws.push_back(kv_write{std::string(a[i]), std::string(a[i + 1]), 0, false});
    return write_then_ok(c, std::move(ws), std::move(done));
  }
  if (name == "del" || name == "unlink")
    return cmd_del(c, a, std::move(done));
  if (name == "ttl" || name == "pttl")
    return cmd_ttl(c, a, name == "pttl", std::move(done));
  if (name == "wait") {
    // Every write of this connection was answered after write-acks copies
    // (the owner and write-acks - 1 replicas) held it, so that many replicas
    // acknowledged them all. More are not tracked: asking for more waits the
    // timeout (0 = for ever, as Redis) and answers the same count.
    if (a.size() != 3)
      return done(arity_error(a[0]));
    int64_t want = 0, timeout = 0;
    if (!parse_int64(a[1], want) || !parse_int64(a[2], timeout))
      return done(error_reply("ERR value is not an integer or out of range"));
    if (timeout < 0)
      return done(error_reply("ERR timeout is negative"));
    int64_t have = static_cast<int64_t>(c.settings().write_acks) - 1;
    auto reply = [have, done] {
      auto o = fresh_buffer();
      put_int(o, have);
      done(std::move(o));
    };
    if (want <= have)
      return reply();
    if (timeout > 0)
      c.after(static_cast<uint64_t>(timeout), reply);
    return; // timeout 0: blocks for ever, as Redis does without enough replicas
  }
  if (name == "kura.owners") {
    if (a.size() != 2)
      return done(arity_error(a[0]));
    auto o = fresh_buffer();
    auto owners = c.owners(a[1]);
    put_array_header(o, owners.size());
    for (auto& n : owners)
      put_bulk(o, n);
    return done(std::move(o));
  }
  static const char* at_owner_cmds[] = {
      "incr",   "decr",  "incrby", "decrby", "incrbyfloat", "append",   "setrange",  "getset",
      "getdel", "setnx", "getex",  "expire", "pexpire",     "expireat", "pexpireat", "persist"};
  bool rmw = name == "set";
  for (auto* k : at_owner_cmds)
    rmw = rmw || name == k;
  if (rmw) {
    // Read-modify-write: atomic per key because only the key's owner runs it
    // (against its copy, writing a new version replicated like any write).
    if (a.size() < 2)
      return done(arity_error(a[0]));
    std::vector<std::string> args(a.begin(), a.end());
    auto cands = c.replica_ids(a[1]);
    return at_owner(c, std::move(args), std::move(cands), 0, std::move(done));
  }
  if (name == "dbsize" || name == "keys" || name == "scan" || name == "randomkey" ||
      name == "flushall" || name == "flushdb")
    return keyspace_wide(c, name, a, std::move(done));
  if (name == "msetnx" || name == "rename" || name == "renamenx" || name == "copy") {
    size_t step = name == "msetnx" ? 2 : 1;
    size_t last = name == "msetnx" ? a.size() : std::min<size_t>(a.size(), 3);
    bool cross = false;
    for (size_t i = 1 + step; i < last; i += step)
      cross = cross || kura::key_slot(a[i]) != kura::key_slot(a[1]);
    if (cross)
      return done(error_reply("CROSSSLOT Keys in request don't hash to the same slot"));
  }
  done(error_reply("ERR '" + name +
                   "' is not available on a cluster node yet (see docs/cluster.md)"));
}

} // namespace kura::node
