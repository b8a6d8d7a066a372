#include "node/cluster_routing.hpp"

#include "node/resp_parser.hpp"
#include "tiers/clock.hpp"
#include "tiers/slot.hpp"

#include <charconv>
#include <memory>
#include <string>

namespace kura::node {

namespace {

using actors::cluster_core;
using gossip::client_result;

std::string lower(std::string_view s) {
  std::string o(s);
  for (auto& ch : o)
    if (ch >= 'A' && ch <= 'Z')
      ch = static_cast<char>(ch - 'A' + 'a');
  return o;
}

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
    } else if (opt == "nx" || opt == "xx" || opt == "get" || opt == "keepttl") {
      return done(error_reply("ERR SET " + lower(a[i]) +
                              " is not available on a cluster node yet (see docs/cluster.md)"));
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

} // namespace

route classify(const command_registry& reg, const std::vector<std::string_view>& args) {
  int id = reg.resolve(args);
  if (id < 0)
    return route::local; // the command table answers unknown commands
  auto& sp = reg.spec(id);
  if (sp.first_key > 0 || !sp.key_specs.empty())
    return route::cluster;
  // keyspace-wide commands, and transactions (MULTI/WATCH are not routed yet)
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
  if (name == "set")
    return cmd_set(c, a, std::move(done));
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
