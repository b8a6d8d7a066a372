// Server and connection commands: PING ECHO QUIT SELECT TIME HELLO COMMAND
// CONFIG INFO SHUTDOWN OBJECT MEMORY FUNCTION. COMMAND answers from the
// registry in Redis 7.0's reply formats; INFO reports real figures of every
// tier in Redis 7.0's field names (redis_version: the Redis whose behaviour
// kura follows), plus kura's per-tier sections. CLIENT and pub/sub live in
// node/cmd_clients.cpp.
#include "node/client_hub.hpp"
#include "node/command_registry.hpp"
#include "node/command_util.hpp"
#include "node/hash_value.hpp"
#include "node/resp_parser.hpp"
#include "node/security.hpp"
#include "tiers/hash.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

namespace kura::node {

namespace {

/// The Redis release whose behaviour kura follows (INFO, HELLO).
constexpr std::string_view redis_version = "7.0.15";

// -- connection ----------------------------------------------------------------

void cmd_ping(const command_args& a, command_context& c) {
  if (a.size() > 2)
    return wrong_args(c.out, "ping");
  if (c.sess.resp == 2 && c.sess.subscribed()) {
    put_array_header(c.out, 2); // Redis's reply in the subscribed context
    put_bulk(c.out, "pong");
    put_bulk(c.out, a.size() == 2 ? a[1] : std::string_view{});
    return;
  }
  if (a.size() == 2)
    put_bulk(c.out, a[1]);
  else
    put_raw(c.out, "+PONG\r\n");
}

void cmd_echo(const command_args& a, command_context& c) {
  put_bulk(c.out, a[1]);
}

void cmd_quit(const command_args&, command_context& c) {
  c.sess.quit = true;
  put_ok(c.out);
}

void cmd_select(const command_args& a, command_context& c) {
  int64_t db = 0;
  if (!parse_int64(a[1], db))
    return put_error(c.out, err_not_int);
  if (db != 0)
    return put_error(c.out, "ERR DB index is out of range");
  put_ok(c.out);
}

void cmd_time(const command_args&, command_context& c) {
  uint64_t ms = c.ks.clock().now_ms();
  uint64_t us = (c.ks.clock().mono_ns() / 1000) % 1000;
  put_array_header(c.out, 2);
  put_bulk(c.out, std::to_string(ms / 1000));
  put_bulk(c.out, std::to_string((ms % 1000) * 1000 + us));
}

/// HELLO's AUTH option (a[at], a[at+1] = user, password; at == 0: none), then
/// Redis's rule that HELLO needs an authenticated client. False: replied.
bool hello_auth(const command_args& a, size_t at, command_context& c) {
  auto& sec = *c.state.security;
  if (at != 0 && !sec.authenticate(c.sess, a[at], a[at + 1], c.ks.clock().now_ms(), a[0])) {
    put_error(c.out, err_wrongpass);
    return false;
  }
  if (!c.sess.authenticated && sec.acl->auth_required()) {
    put_error(c.out, "NOAUTH HELLO must be called with the client already authenticated, "
                     "otherwise the HELLO <proto> AUTH <user> <pass> option can be used to "
                     "authenticate the client and select the RESP protocol version at the same "
                     "time");
    return false;
  }
  return true;
}

void cmd_hello(const command_args& a, command_context& c) {
  auto& out = c.out;
  size_t i = 1;
  int resp = c.sess.resp;
  if (a.size() >= 2) {
    int64_t ver = 0;
    if (!parse_int64(a[1], ver))
      return put_error(out, "ERR Protocol version is not an integer or out of range");
    if (ver != 2 && ver != 3)
      return put_error(out, "NOPROTO unsupported protocol version");
    resp = static_cast<int>(ver);
    i = 2;
  }
  std::string_view setname;
  bool has_name = false;
  size_t auth_at = 0; // index of AUTH's user argument, 0 = none
  for (; i < a.size(); ++i) {
    if (ieq(a[i], "setname") && i + 1 < a.size()) {
      setname = a[i + 1];
      has_name = true;
      ++i;
    } else if (ieq(a[i], "auth") && i + 2 < a.size()) {
      auth_at = i + 1;
      i += 2;
    } else {
      std::string m = "ERR Syntax error in HELLO option '";
      m.append(a[i]);
      m += "'";
      return put_error(out, m);
    }
  }
  if (!hello_auth(a, auth_at, c))
    return;
  if (has_name)
    c.sess.name.assign(setname.data(), setname.size());
  c.sess.resp = resp;
  put_map_header(out, 7, resp);
  put_bulk(out, "server");
  put_bulk(out, "redis");
  put_bulk(out, "version");
  put_bulk(out, redis_version);
  put_bulk(out, "proto");
  put_int(out, resp);
  put_bulk(out, "id");
  put_int(out, static_cast<int64_t>(c.sess.id));
  put_bulk(out, "mode");
  put_bulk(out, "standalone");
  put_bulk(out, "role");
  put_bulk(out, "master");
  put_bulk(out, "modules");
  put_array_header(out, 0);
}

// -- COMMAND -------------------------------------------------------------------

void cmd_command(const command_args&, command_context& c) {
  auto& r = c.registry;
  put_array_header(c.out, r.size());
  for (size_t id = 0; id < r.entries(); ++id)
    if (r.spec(static_cast<int>(id)).parent < 0)
      put_command_info(c.out, r, static_cast<int>(id));
}

void cmd_command_count(const command_args&, command_context& c) {
  put_int(c.out, static_cast<int64_t>(c.registry.size()));
}

void cmd_command_info(const command_args& a, command_context& c) {
  if (a.size() == 2)
    return cmd_command(a, c);
  put_array_header(c.out, a.size() - 2);
  for (size_t i = 2; i < a.size(); ++i) {
    int id = c.registry.find(a[i]);
    if (id < 0)
      put_nil(c.out);
    else
      put_command_info(c.out, c.registry, id);
  }
}

void cmd_command_docs(const command_args& a, command_context& c) {
  auto& r = c.registry;
  if (a.size() == 2) {
    put_array_header(c.out, r.size() * 2);
    for (size_t id = 0; id < r.entries(); ++id)
      if (r.spec(static_cast<int>(id)).parent < 0)
        put_command_docs(c.out, r, static_cast<int>(id));
    return;
  }
  std::vector<int> ids;
  for (size_t i = 2; i < a.size(); ++i)
    if (int id = r.find(a[i]); id >= 0)
      ids.push_back(id);
  put_array_header(c.out, ids.size() * 2);
  for (int id : ids)
    put_command_docs(c.out, r, id);
}

void cmd_command_list(const command_args& a, command_context& c) {
  auto& r = c.registry;
  // COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN pattern]
  enum { all, module, aclcat, pattern } by = all;
  uint32_t cat = 0;
  if (a.size() != 2) {
    if (a.size() != 5 || !ieq(a[2], "filterby"))
      return put_error(c.out, err_syntax);
    if (ieq(a[3], "module")) {
      by = module;
    } else if (ieq(a[3], "aclcat")) {
      by = aclcat;
      auto names = acl_category_names(~0u);
      for (size_t i = 0; i < names.size(); ++i)
        if (ieq(names[i], a[4]))
          cat = 1u << i;
    } else if (ieq(a[3], "pattern")) {
      by = pattern;
    } else {
      return put_error(c.out, err_syntax);
    }
  }
  std::vector<int> ids;
  for (size_t i = 0; i < r.entries(); ++i) {
    auto& sp = r.spec(static_cast<int>(i));
    bool keep = by == all || (by == aclcat && (sp.acl & cat) != 0) ||
                (by == pattern && glob_match(a[4], sp.name, true));
    if (keep)
      ids.push_back(static_cast<int>(i));
  }
  put_array_header(c.out, ids.size());
  for (int id : ids)
    put_bulk(c.out, r.spec(id).name);
}

void cmd_command_getkeys(const command_args& a, command_context& c) {
  command_args sub(a.begin() + 2, a.end());
  std::vector<std::string_view> keys;
  switch (c.registry.keys_of(sub, keys)) {
  case keys_status::unknown_command:
    return put_error(c.out, "ERR Invalid command specified");
  case keys_status::wrong_arity:
    return put_error(c.out, "ERR Invalid number of arguments specified for command");
  case keys_status::no_keys:
    return put_error(c.out, "ERR The command has no key arguments");
  case keys_status::ok:
    break;
  }
  put_array_header(c.out, keys.size());
  for (auto k : keys)
    put_bulk(c.out, k);
}

// -- CONFIG --------------------------------------------------------------------
// One table: what CONFIG GET reports and, for the settings kura can change at
// run time, how CONFIG SET changes them (really: the broker reads them from
// node_facts). The others answer as Redis answers for immutable settings.

std::string set_uint(uint64_t& dst, std::string_view v, uint64_t min) {
  int64_t n = 0;
  if (!parse_int64(v, n))
    return "argument couldn't be parsed into an integer";
  if (n < static_cast<int64_t>(min))
    return "argument must be between " + std::to_string(min) + " and " + std::to_string(INT64_MAX) +
           " inclusive";
  dst = static_cast<uint64_t>(n);
  return {};
}

/// Parses a memory amount as Redis does ("1gb", "64mb", "100").
bool parse_memory(std::string_view v, uint64_t& out) {
  uint64_t mul = 1;
  std::string s = lower(v);
  auto ends = [&](const char* suf) {
    size_t n = std::char_traits<char>::length(suf);
    if (s.size() > n && s.compare(s.size() - n, n, suf) == 0) {
      s.resize(s.size() - n);
      return true;
    }
    return false;
  };
  if (ends("kb"))
    mul = 1024;
  else if (ends("mb"))
    mul = 1024 * 1024;
  else if (ends("gb"))
    mul = 1024ull * 1024 * 1024;
  else if (ends("k"))
    mul = 1000;
  else if (ends("m"))
    mul = 1000 * 1000;
  else if (ends("g"))
    mul = 1000ull * 1000 * 1000;
  int64_t n = 0;
  if (!parse_int64(s, n) || n < 0)
    return false;
  out = static_cast<uint64_t>(n) * mul;
  return true;
}

/// "maxmemory" as CONFIG GET and INFO report it: the run-time value once
/// CONFIG SET gave one, else the memory tiers' budget.
/// The memory tiers' L1 and L2: on a cluster node the read cache in front of
/// the cluster data (node_facts::memory_stats), else the local keyspace's.
std::pair<tier_stats, tier_stats> memory_tiers(command_context& c) {
  if (c.facts.memory_stats)
    return c.facts.memory_stats();
  return {c.ks.l1_stats(), c.ks.l2_stats()};
}

uint64_t maxmemory_of(const command_context& c) {
  return c.facts.maxmemory_set ? c.facts.maxmemory : c.ks.config().memory_bytes;
}

struct config_item {
  const char* name;
  std::string (*get)(command_context& c);
  /// Validates and applies; returns "" or the reason (Redis's wording). Null:
  /// immutable. `apply` false: only validate.
  std::string (*set)(command_context& c, std::string_view v, bool apply);
};

/// CONFIG GET/SET of a plain number in node_facts (at least `Min`).
template <uint64_t node_facts::*Field>
std::string get_fact(command_context& c) {
  return std::to_string(c.facts.*Field);
}
template <uint64_t node_facts::*Field, uint64_t Min>
std::string set_fact(command_context& c, std::string_view v, bool apply) {
  uint64_t n = 0;
  auto e = set_uint(n, v, Min);
  if (e.empty() && apply)
    c.facts.*Field = n;
  return e;
}

// TLS (node/tls.hpp): the tls-* values of one CONFIG SET load together
// (a new certificate needs its key) in commit_tls; a file that does not load
// fails the whole CONFIG SET and the old certificate stays in use.
std::string tls_get(command_context& c, const char* name, const char* off) {
  return c.facts.tls ? c.facts.tls->get(name) : std::string(off);
}

std::string tls_check(command_context& c) {
  return c.facts.tls ? std::string{} : std::string("TLS is off (kura.tls.port is not set)");
}

const std::vector<config_item>& config_items() {
  static const std::vector<config_item> items = {
      {"tls-port", [](command_context& c) { return tls_get(c, "tls-port", "0"); }, nullptr},
      {"tls-cert-file", [](command_context& c) { return tls_get(c, "tls-cert-file", ""); },
       [](command_context& c, std::string_view, bool) { return tls_check(c); }},
      {"tls-key-file", [](command_context& c) { return tls_get(c, "tls-key-file", ""); },
       [](command_context& c, std::string_view, bool) { return tls_check(c); }},
      {"tls-ca-cert-file", [](command_context& c) { return tls_get(c, "tls-ca-cert-file", ""); },
       [](command_context& c, std::string_view, bool) { return tls_check(c); }},
      {"tls-auth-clients", [](command_context& c) { return tls_get(c, "tls-auth-clients", "yes"); },
       [](command_context& c, std::string_view v, bool) {
         if (!ieq(v, "yes") && !ieq(v, "no") && !ieq(v, "optional"))
           return std::string("argument(s) must be one of the following: yes, no, optional");
         return tls_check(c);
       }},
      {"bind", [](command_context& c) { return c.facts.bind; }, nullptr},
      {"port", [](command_context& c) { return std::to_string(c.facts.port); }, nullptr},
      {"dir", [](command_context& c) { return c.facts.data_dir; }, nullptr},
      {"databases", [](command_context&) { return std::string("1"); }, nullptr},
      {"cluster-enabled",
       [](command_context& c) { return std::string(c.facts.cluster_enabled ? "yes" : "no"); },
       nullptr},
      {"maxmemory", [](command_context& c) { return std::to_string(maxmemory_of(c)); },
       [](command_context& c, std::string_view v, bool apply) {
         uint64_t n = 0;
         if (!parse_memory(v, n))
           return std::string("argument must be a memory value");
         if (apply) {
           c.facts.maxmemory_set = true;
           c.facts.maxmemory = n;
         }
         return std::string{};
       }},
      {"min-replicas-to-write", get_fact<&node_facts::min_replicas_to_write>,
       set_fact<&node_facts::min_replicas_to_write, 0>},
      {"min-replicas-max-lag", get_fact<&node_facts::min_replicas_max_lag>,
       set_fact<&node_facts::min_replicas_max_lag, 0>},
      {"proto-max-bulk-len",
       [](command_context& c) { return std::to_string(c.facts.proto_max_bulk_len); }, nullptr},
      {"tcp-keepalive", [](command_context&) { return std::string("0"); }, nullptr},
      // kura persists through L3, not snapshots or an append-only file: these
      // accept only the value that describes that.
      {"save", [](command_context&) { return std::string(""); },
       [](command_context&, std::string_view v, bool) {
         return v.empty() ? std::string{}
                          : std::string("kura has no snapshots; L3 keeps every write");
       }},
      // kura's append-only file is L3's write-ahead log (kura.l3.wal): "yes"
      // while it runs; it cannot be switched at run time
      {"appendonly",
       [](command_context& c) {
         return std::string(c.facts.append_only && c.facts.append_only() ? "yes" : "no");
       },
       [](command_context& c, std::string_view v, bool) {
         bool on = c.facts.append_only && c.facts.append_only();
         if (!ieq(v, "yes") && !ieq(v, "no"))
           return std::string("argument must be 'yes' or 'no'");
         if (ieq(v, on ? "yes" : "no"))
           return std::string{};
         return std::string(
             on ? "the write-ahead log (kura.l3.wal) cannot be turned off at run time"
                : "the write-ahead log (kura.l3.wal) is off; it cannot be "
                  "turned on at run time");
       }},
      {"hash-max-listpack-entries",
       [](command_context& c) { return std::to_string(c.state.hash_max_listpack_entries); },
       [](command_context& c, std::string_view v, bool apply) {
         int64_t n = 0;
         if (!parse_int64(v, n) || n < 0)
           return std::string("argument couldn't be parsed into an integer");
         if (apply)
           c.state.hash_max_listpack_entries = static_cast<uint64_t>(n);
         return std::string{};
       }},
      {"hash-max-ziplist-entries",
       [](command_context& c) { return std::to_string(c.state.hash_max_listpack_entries); },
       [](command_context& c, std::string_view v, bool apply) {
         int64_t n = 0;
         if (!parse_int64(v, n) || n < 0)
           return std::string("argument couldn't be parsed into an integer");
         if (apply)
           c.state.hash_max_listpack_entries = static_cast<uint64_t>(n);
         return std::string{};
       }},
      {"hash-max-listpack-value",
       [](command_context& c) { return std::to_string(c.state.hash_max_listpack_value); },
       [](command_context& c, std::string_view v, bool apply) {
         int64_t n = 0;
         if (!parse_int64(v, n) || n < 0)
           return std::string("argument couldn't be parsed into an integer");
         if (apply)
           c.state.hash_max_listpack_value = static_cast<uint64_t>(n);
         return std::string{};
       }},
      {"hash-max-ziplist-value",
       [](command_context& c) { return std::to_string(c.state.hash_max_listpack_value); },
       [](command_context& c, std::string_view v, bool apply) {
         int64_t n = 0;
         if (!parse_int64(v, n) || n < 0)
           return std::string("argument couldn't be parsed into an integer");
         if (apply)
           c.state.hash_max_listpack_value = static_cast<uint64_t>(n);
         return std::string{};
       }},
      {"maxmemory-policy", [](command_context&) { return std::string("allkeys-lfu"); },
       [](command_context&, std::string_view v, bool) {
         return ieq(v, "allkeys-lfu")
                    ? std::string{}
                    : std::string("kura's memory tiers are W-TinyLFU (allkeys-lfu)");
       }},
      {"requirepass", [](command_context& c) { return c.state.security->cfg.requirepass; },
       [](command_context& c, std::string_view v, bool apply) {
         if (apply) { // the default user's password ("" = nopass), as Redis
           c.state.security->cfg.requirepass.assign(v.data(), v.size());
           c.state.security->acl->set_default_password(v);
         }
         return std::string{};
       }},
      // protected mode (node/security.hpp) for RESP clients accepted from now on, as
      // Redis; the ops and metrics ports keep the binding chosen at start
      {"protected-mode",
       [](command_context& c) {
         return std::string(c.state.security->cfg.protected_mode ? "yes" : "no");
       },
       [](command_context& c, std::string_view v, bool apply) {
         if (!ieq(v, "yes") && !ieq(v, "no"))
           return std::string("argument must be 'yes' or 'no'");
         if (apply)
           c.state.security->cfg.protected_mode = ieq(v, "yes");
         return std::string{};
       }},
      {"acllog-max-len",
       [](command_context& c) { return std::to_string(c.state.security->cfg.acllog_max_len); },
       [](command_context& c, std::string_view v, bool apply) {
         uint64_t n = 0;
         auto e = set_uint(n, v, 0);
         if (e.empty() && apply) {
           c.state.security->cfg.acllog_max_len = static_cast<size_t>(n);
           c.state.security->log.set_max_len(static_cast<size_t>(n));
         }
         return e;
       }},
      {"acl-pubsub-default",
       [](command_context& c) {
         return std::string(c.state.security->acl->pubsub_default_all() ? "allchannels"
                                                                        : "resetchannels");
       },
       [](command_context& c, std::string_view v, bool apply) {
         if (!ieq(v, "allchannels") && !ieq(v, "resetchannels"))
           return std::string("argument(s) must be one of the following: allchannels, "
                              "resetchannels");
         if (apply) {
           c.state.security->acl->set_pubsub_default_all(ieq(v, "allchannels"));
           c.state.security->cfg.acl_pubsub_allchannels = ieq(v, "allchannels");
         }
         return std::string{};
       }},
      {"maxclients", get_fact<&node_facts::max_clients>, set_fact<&node_facts::max_clients, 1>},
      // a script running longer lets other clients in (-BUSY, SCRIPT KILL)
      {"busy-reply-threshold", get_fact<&node_facts::busy_reply_threshold_ms>,
       set_fact<&node_facts::busy_reply_threshold_ms, 0>},
      {"lua-time-limit", get_fact<&node_facts::busy_reply_threshold_ms>,
       set_fact<&node_facts::busy_reply_threshold_ms, 0>},
      {"timeout", get_fact<&node_facts::idle_timeout_s>, set_fact<&node_facts::idle_timeout_s, 0>},
      {"client-query-buffer-limit",
       [](command_context& c) { return std::to_string(c.facts.query_buffer_limit); },
       [](command_context& c, std::string_view v, bool apply) {
         uint64_t n = 0;
         if (!parse_memory(v, n))
           return std::string("argument must be a memory value");
         if (n < 1024 * 1024)
           return std::string("argument must be between 1048576 and 9223372036854775807 inclusive");
         if (apply)
           c.facts.query_buffer_limit = n;
         return std::string{};
       }},
      {"tracking-table-max-keys",
       [](command_context& c) { return std::to_string(c.state.hub->max_keys()); },
       [](command_context& c, std::string_view v, bool apply) {
         uint64_t n = 0;
         auto e = set_uint(n, v, 0);
         if (e.empty() && apply)
           c.state.hub->set_max_keys(n);
         return e;
       }},
      {"kura-client-output-limit",
       [](command_context& c) { return std::to_string(c.facts.max_output_bytes); },
       [](command_context& c, std::string_view v, bool apply) {
         uint64_t n = 0;
         if (!parse_memory(v, n) || n == 0)
           return std::string("argument must be a memory value");
         if (apply)
           c.facts.max_output_bytes = n;
         return std::string{};
       }},
  };
  return items;
}

/// Applies the tls-* values of `todo` together; "" or why not (`arg` names
/// the first tls-* argument).
std::string commit_tls(command_context& c,
                       const std::vector<std::pair<const config_item*, std::string_view>>& todo,
                       std::string& arg) {
  std::vector<std::pair<std::string, std::string>> changes;
  for (auto& [it, v] : todo) {
    std::string name = it->name;
    if (name.rfind("tls-", 0) != 0)
      continue;
    if (arg.empty())
      arg = name;
    std::string value(v);
    if (name == "tls-auth-clients")
      for (auto& ch : value)
        ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    changes.emplace_back(std::move(name), std::move(value));
  }
  if (changes.empty() || !c.facts.tls)
    return {};
  return c.facts.tls->apply(changes);
}

void cmd_config_get(const command_args& a, command_context& c) {
  std::vector<std::pair<std::string, std::string>> hits;
  for (auto& it : config_items()) {
    for (size_t i = 2; i < a.size(); ++i)
      if (glob_match(a[i], it.name, true)) {
        hits.emplace_back(it.name, it.get(c));
        break;
      }
  }
  put_map_header(c.out, hits.size(), c.sess.resp);
  for (auto& kv : hits) {
    put_bulk(c.out, kv.first);
    put_bulk(c.out, kv.second);
  }
}

void cmd_config_set(const command_args& a, command_context& c) {
  if (a.size() % 2 != 0)
    return wrong_args(c.out, "config|set");
  auto& items = config_items();
  auto failed = [&](std::string_view arg, std::string_view why) {
    std::string m = "ERR CONFIG SET failed (possibly related to argument '";
    m.append(arg.substr(0, 128));
    m += "') - ";
    m.append(why);
    put_error(c.out, m);
  };
  std::vector<std::pair<const config_item*, std::string_view>> todo;
  for (size_t i = 2; i + 1 < a.size(); i += 2) {
    const config_item* it = nullptr;
    for (auto& x : items)
      if (ieq(a[i], x.name))
        it = &x;
    if (!it) {
      std::string m = "ERR Unknown option or number of arguments for CONFIG SET - '";
      m.append(a[i].substr(0, 128));
      m += "'";
      return put_error(c.out, m);
    }
    for (auto& [prev, v] : todo)
      if (prev == it)
        return failed(a[i], "duplicate parameter");
    if (!it->set)
      return failed(a[i], "can't set immutable config");
    if (auto e = it->set(c, a[i + 1], false); !e.empty())
      return failed(a[i], e);
    todo.emplace_back(it, a[i + 1]);
  }
  std::string tls_arg;
  if (auto e = commit_tls(c, todo, tls_arg); !e.empty())
    return failed(tls_arg, e);
  for (auto& [it, v] : todo) // all valid: apply them together
    it->set(c, v, true);
  put_ok(c.out);
}

void cmd_config_resetstat(const command_args&, command_context& c) {
  c.registry.reset_stats();
  c.state.reset_stats();
  put_ok(c.out);
}

// -- INFO ----------------------------------------------------------------------

std::string human(uint64_t b) {
  char buf[32];
  double d = static_cast<double>(b);
  if (b < 1024)
    std::snprintf(buf, sizeof(buf), "%lluB", static_cast<unsigned long long>(b));
  else if (b < (1ull << 20))
    std::snprintf(buf, sizeof(buf), "%.2fK", d / 1024);
  else if (b < (1ull << 30))
    std::snprintf(buf, sizeof(buf), "%.2fM", d / (1 << 20));
  else
    std::snprintf(buf, sizeof(buf), "%.2fG", d / (1ull << 30));
  return buf;
}

uint64_t rss_bytes() {
  long pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2)
      resident = 0;
    std::fclose(f);
  }
  return static_cast<uint64_t>(resident) * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

void stats_lines(std::string& r, const char* tier, const tier_stats& t) {
  auto line = [&](const char* what, uint64_t v) {
    r += tier;
    r += what;
    r += std::to_string(v);
    r += "\r\n";
  };
  line("_hits:", t.hits);
  line("_misses:", t.misses);
  line("_evictions:", t.evictions);
  line("_expirations:", t.expirations);
  line("_entries:", t.entries);
  line("_bytes:", t.bytes);
  line("_capacity_bytes:", t.capacity_bytes);
}

/// Keys, keys with an expiry and their average remaining TTL (ms) in memory.
struct memory_keyspace {
  uint64_t keys = 0, expires = 0, ttl_sum = 0;
};

memory_keyspace scan_memory(keyspace& ks) {
  memory_keyspace m;
  auto now = ks.clock().now_ms();
  for (size_t i = 0; i < ks.shard_count(); ++i)
    ks.shard(i).for_each([&](const memory_cache::entry_view& v) {
      if (v.expiry_ms != 0 && v.expiry_ms <= now)
        return;
      ++m.keys;
      if (v.expiry_ms != 0) {
        ++m.expires;
        m.ttl_sum += v.expiry_ms - now;
      }
    });
  return m;
}

std::string fmt_double(double d) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.6f", d);
  return buf;
}

std::string info_text(command_context& c, std::string_view section) {
  bool everything = ieq(section, "all") || ieq(section, "everything");
  bool dflt = section.empty() || ieq(section, "default");
  auto want = [&](const char* s, bool in_default = true) {
    return everything || (dflt && in_default) || ieq(section, s);
  };
  auto& facts = c.facts;
  auto& hub = *c.state.hub;
  std::string r;
  auto kv = [&](std::string_view k, const std::string& v) {
    r.append(k);
    r += ':';
    r += v;
    r += "\r\n";
  };
  auto num = [&](std::string_view k, uint64_t v) { kv(k, std::to_string(v)); };
  auto now = c.ks.clock().now_ms();
  auto [l1, l2] = memory_tiers(c);
  tier_stats l3, l4;
  if (facts.l3_stats)
    l3 = facts.l3_stats();
  if (facts.l4_stats)
    l4 = facts.l4_stats();
  if (want("server")) {
    r += "# Server\r\n";
    kv("redis_version", std::string(redis_version));
    kv("kura_version", facts.version);
    kv("redis_mode", "standalone");
    struct utsname u {};
    ::uname(&u);
    kv("os", std::string(u.sysname) + " " + u.release + " " + u.machine);
    num("arch_bits", sizeof(void*) * 8);
    kv("multiplexing_api", "epoll");
    kv("gcc_version", std::to_string(__GNUC__) + "." + std::to_string(__GNUC_MINOR__) + "." +
                          std::to_string(__GNUC_PATCHLEVEL__));
    num("process_id", static_cast<uint64_t>(::getpid()));
    kv("run_id", facts.run_id);
    num("tcp_port", facts.port);
    num("server_time_usec", now * 1000);
    num("uptime_in_seconds", (now - facts.start_ms) / 1000);
    num("uptime_in_days", (now - facts.start_ms) / 86'400'000);
    r += "\r\n";
  }
  if (want("clients")) {
    uint64_t max_in = 0, max_out = 0;
    for (auto& [id, s] : hub.clients()) {
      if (s->input)
        max_in = std::max<uint64_t>(max_in, s->input->size());
      if (s->output)
        max_out = std::max<uint64_t>(max_out, s->output->size());
    }
    r += "# Clients\r\n";
    num("connected_clients", facts.connected_clients);
    num("cluster_connections", 0);
    num("maxclients", facts.max_clients);
    num("client_recent_max_input_buffer", max_in);
    num("client_recent_max_output_buffer", max_out);
    num("blocked_clients", 0);
    num("tracking_clients", hub.tracking_clients());
    num("tracking_total_keys", hub.tracked_keys());
    num("tracking_total_items", hub.tracked_items());
    num("tracking_total_prefixes", hub.tracked_prefixes());
    num("clients_in_timeout_table", 0);
    r += "\r\n";
  }
  if (want("memory")) {
    // the data in memory, plus the Lua interpreter and the script cache
    uint64_t used = l1.bytes + l2.bytes + c.state.lua_vm_bytes + c.state.script_cache_bytes;
    uint64_t rss = rss_bytes();
    c.state.peak_memory = std::max(c.state.peak_memory, used);
    r += "# Memory\r\n";
    num("used_memory", used);
    num("lazyfree_pending_objects", 0); // kura frees synchronously
    kv("used_memory_human", human(used));
    num("used_memory_rss", rss);
    kv("used_memory_rss_human", human(rss));
    num("used_memory_peak", c.state.peak_memory);
    kv("used_memory_peak_human", human(c.state.peak_memory));
    num("maxmemory", maxmemory_of(c));
    kv("maxmemory_human", human(maxmemory_of(c)));
    kv("maxmemory_policy", "allkeys-lfu");
    kv("mem_fragmentation_ratio",
       used ? fmt_double(static_cast<double>(rss) / static_cast<double>(used)).substr(0, 4) : "0");
    kv("mem_allocator", "libc");
    num("used_memory_lua", c.state.lua_vm_bytes);
    num("used_memory_vm_eval", c.state.lua_vm_bytes);
    num("used_memory_scripts_eval", c.state.script_cache_bytes);
    num("number_of_cached_scripts", c.state.cached_scripts);
    num("kura_tracked_keys", hub.tracked_keys());
    r += "\r\n";
  }
  if (want("persistence")) {
    uint64_t pending = facts.l3_uncommitted ? facts.l3_uncommitted() : 0;
    r += "# Persistence\r\n";
    num("loading", 0);
    num("async_loading", 0);
    num("rdb_changes_since_last_save",
        facts.writes ? facts.writes() - facts.writes_at_save : pending + facts.l3_queue_depth);
    num("rdb_bgsave_in_progress", 0);
    num("aof_enabled", facts.append_only && facts.append_only() ? 1 : 0);
    num("aof_rewrite_in_progress", 0);
    num("kura_l3_enabled", facts.l3_stats ? 1 : 0);
    num("kura_l4_enabled", facts.l4_stats ? 1 : 0);
    num("kura_l3_write_behind_queue", facts.l3_queue_depth);
    num("kura_l3_uncommitted_writes", pending);
    r += "\r\n";
  }
  if (want("stats")) {
    // A key is evicted when it leaves the last tier that holds it: memory
    // without L3, L3 without L4 (with L4 an L3 victim is archived), L4.
    uint64_t evicted = facts.l4_stats   ? l4.evictions
                       : facts.l3_stats ? l3.evictions
                                        : l1.evictions + l2.evictions;
    r += "# Stats\r\n";
    num("total_connections_received", facts.total_connections);
    num("total_commands_processed", c.state.total_commands);
    num("rejected_connections", facts.rejected_connections);
    num("expired_keys", l1.expirations + l2.expirations + l3.expirations + l4.expirations);
    num("evicted_keys", evicted);
    num("keyspace_hits", c.state.keyspace_hits);
    num("keyspace_misses", c.state.keyspace_misses);
    num("pubsub_channels", hub.channel_count());
    num("pubsub_patterns", hub.pattern_count());
    num("total_error_replies", [&] {
      uint64_t n = 0;
      for (auto& s : c.registry.stats())
        n += s.errors;
      return n;
    }());
    r += "\r\n";
  }
  if (want("replication")) {
    r += "# Replication\r\n";
    kv("role", "master");
    num("connected_slaves", 0);
    kv("master_failover_state", "no-failover");
    kv("master_replid", facts.run_id);
    kv("master_replid2", std::string(40, '0'));
    num("master_repl_offset", 0);
    kv("second_repl_offset", "-1");
    num("repl_backlog_active", 0);
    num("repl_backlog_size", 0);
    r += "\r\n";
  }
  if (want("cpu")) {
    struct rusage self {
    }, kids{};
    ::getrusage(RUSAGE_SELF, &self);
    ::getrusage(RUSAGE_CHILDREN, &kids);
    auto secs = [](const timeval& t) {
      return fmt_double(static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6);
    };
    r += "# CPU\r\n";
    kv("used_cpu_sys", secs(self.ru_stime));
    kv("used_cpu_user", secs(self.ru_utime));
    kv("used_cpu_sys_children", secs(kids.ru_stime));
    kv("used_cpu_user_children", secs(kids.ru_utime));
    r += "\r\n";
  }
  if (want("modules", false) || ieq(section, "everything"))
    r += "# Modules\r\n\r\n";
  if (want("commandstats", false)) {
    r += "# Commandstats\r\n";
    auto& st = c.registry.stats();
    for (size_t i = 0; i < st.size(); ++i) {
      if (st[i].calls == 0)
        continue;
      std::string name = c.registry.names()[i];
      uint64_t usec = st[i].latency.total_ns / 1000;
      r += "cmdstat_" + name + ":calls=" + std::to_string(st[i].calls) +
           ",usec=" + std::to_string(usec) + ",usec_per_call=" +
           fmt_double(static_cast<double>(usec) / static_cast<double>(st[i].calls)).substr(0, 8) +
           ",rejected_calls=0,failed_calls=" + std::to_string(st[i].errors) + "\r\n";
    }
    r += "\r\n";
  }
  if (want("cluster")) {
    r += "# Cluster\r\n";
    num("cluster_enabled", c.facts.cluster_enabled ? 1 : 0);
    if (c.facts.cluster_slots_gathering) // 0 once a ring change settled here
      num("cluster_slots_gathering", c.facts.cluster_slots_gathering());
    r += "\r\n";
  }
  if (want("l1")) {
    r += "# L1\r\n";
    stats_lines(r, "l1", l1);
    r += "\r\n";
  }
  if (want("l2")) {
    r += "# L2\r\n";
    stats_lines(r, "l2", l2);
    r += "\r\n";
  }
  if (want("l3")) {
    r += "# L3\r\nl3_enabled:" + std::string(facts.l3_stats ? "1" : "0") + "\r\n";
    if (facts.l3_stats) {
      stats_lines(r, "l3", l3);
      r += "l3_write_behind_queue:" + std::to_string(facts.l3_queue_depth) + "\r\n";
      if (facts.l3_uncommitted)
        r += "l3_uncommitted_writes:" + std::to_string(facts.l3_uncommitted()) + "\r\n";
    }
    r += "\r\n";
  }
  if (want("l4")) {
    r += "# L4\r\nl4_enabled:" + std::string(facts.l4_stats ? "1" : "0") + "\r\n";
    if (facts.l4_stats)
      stats_lines(r, "l4", l4);
    r += "\r\n";
  }
  if (want("keyspace")) {
    // L3 holds every live entry and L4 the ones aged out of L3 (an entry is
    // in one of them, never both); without L3, memory is all there is. TTLs
    // are averaged over the entries memory holds (Redis samples too).
    auto mem = scan_memory(c.ks);
    uint64_t keys = facts.l3_stats ? l3.entries + l4.entries : mem.keys;
    uint64_t expires = facts.l3_expires ? facts.l3_expires() : mem.expires;
    if (facts.l3_stats && !facts.l3_expires)
      expires = mem.expires;
    uint64_t avg_ttl = mem.expires ? mem.ttl_sum / mem.expires : 0;
    r += "# Keyspace\r\n";
    if (keys > 0)
      r += "db0:keys=" + std::to_string(keys) + ",expires=" + std::to_string(expires) +
           ",avg_ttl=" + std::to_string(avg_ttl) + "\r\n";
    r += "\r\n";
  }
  if (r.size() >= 2)
    r.resize(r.size() - 2);
  return r;
}

void cmd_info(const command_args& a, command_context& c) {
  if (a.size() <= 2) {
    put_bulk(c.out, info_text(c, a.size() == 2 ? a[1] : std::string_view{}));
    return;
  }
  std::string r;
  for (size_t i = 1; i < a.size(); ++i) {
    auto t = info_text(c, a[i]);
    if (!t.empty()) {
      r += t;
      r += "\r\n";
    }
  }
  put_bulk(c.out, r);
}

// -- SAVE ----------------------------------------------------------------------

void cmd_save(const command_args&, command_context& c) {
  // kura's snapshot is L3 itself: SAVE hands L3 the writes the broker still
  // holds (write-behind) at once instead of at the next tick; L3 commits
  // them with its next group commit (docs/protocol.md).
  if (!c.facts.save)
    return put_error(c.out, "ERR kura runs without L3: there is nothing to save to");
  c.facts.save();
  if (c.facts.writes)
    c.facts.writes_at_save = c.facts.writes();
  put_ok(c.out);
}

// -- SHUTDOWN ------------------------------------------------------------------

void cmd_shutdown(const command_args& a, command_context& c) {
  // SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]. kura has no snapshot to
  // save or skip: L3 is the store, and like SIGTERM every SHUTDOWN hands L3
  // the write-behind queue and syncs it (as Redis does with its append-only
  // file even under NOSAVE). NOW and FORCE concern replicas and failed saves,
  // which a standalone kura has not.
  bool save = false, nosave = false, abort = false;
  for (size_t i = 1; i < a.size(); ++i) {
    if (ieq(a[i], "save"))
      save = true;
    else if (ieq(a[i], "nosave"))
      nosave = true;
    else if (ieq(a[i], "abort"))
      abort = true;
    else if (!ieq(a[i], "now") && !ieq(a[i], "force"))
      return put_error(c.out, err_syntax);
  }
  if ((save && nosave) || (abort && a.size() != 2))
    return put_error(c.out, err_syntax);
  if (abort)
    return put_error(c.out, "ERR No shutdown in progress.");
  if (!c.facts.shutdown)
    return put_error(c.out, "ERR Errors trying to SHUTDOWN. Check logs.");
  c.facts.shutdown();
  c.state.stop_script = true; // a busy script ends now (cmd_script.cpp)
  c.sess.quit = true;         // no reply: the connection closes, as with Redis
}

// -- OBJECT / MEMORY -----------------------------------------------------------

/// Redis's string encodings: "int" for a value that is a 64-bit integer in
/// canonical form, "embstr" up to 44 bytes, "raw" above.
const char* string_encoding(std::string_view v) {
  int64_t n = 0;
  if (v.size() <= 20 && parse_int64(v, n) && std::to_string(n) == v)
    return "int";
  return v.size() <= 44 ? "embstr" : "raw";
}

void cmd_object_encoding(const command_args& a, command_context& c) {
  const char* enc = nullptr;
  c.ks.view(a[2], [&](const keyspace::key_view& v) {
    enc = (v.flags & entry_flags::hash)
              ? hashval::redis_encoding(v.value, c.state.hash_max_listpack_entries,
                                        c.state.hash_max_listpack_value)
          : c.state.raw_string(a[2], v.ver) ? "raw"
                                            : string_encoding(v.value);
  });
  if (!enc)
    return put_nil(c.out);
  put_bulk(c.out, enc);
}

void cmd_object_freq(const command_args& a, command_context& c) {
  if (!c.ks.exists(a[2]))
    return put_nil(c.out);
  put_int(c.out, c.ks.shard_for(a[2]).frequency(a[2]));
}

void cmd_object_idletime(const command_args& a, command_context& c) {
  if (!c.ks.exists(a[2]))
    return put_nil(c.out);
  // what Redis answers under an LFU policy, which kura's memory tiers are
  put_error(c.out, "ERR An LRU maxmemory policy is not selected, no access time available.");
}

/// OBJECT REFCOUNT as Redis answers it: a string holding an integer 0-9999
/// in canonical form is one of Redis's shared integers (refcount INT_MAX)
/// while no maxmemory is set (Redis stops sharing them under a maxmemory
/// LRU/LFU policy); every other value has one reference.
int64_t redis_refcount(const keyspace::key_view& v, const node_facts& f) {
  int64_t n = 0;
  if (!(v.flags & entry_flags::hash) && f.maxmemory == 0 && v.value.size() <= 4 &&
      parse_int64(v.value, n) && n >= 0 && n < 10000 && std::to_string(n) == v.value)
    return 2147483647;
  return 1;
}

void cmd_object_refcount(const command_args& a, command_context& c) {
  int64_t refs = 0;
  c.ks.view(a[2], [&](const keyspace::key_view& v) { refs = redis_refcount(v, c.facts); });
  if (refs == 0)
    return put_nil(c.out);
  put_int(c.out, refs);
}

void put_help(command_context& c, const std::vector<const char*>& lines) {
  put_array_header(c.out, lines.size());
  for (auto* l : lines)
    put_status(c.out, l);
}

void cmd_object_help(const command_args&, command_context& c) {
  put_help(c, {"OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:", "ENCODING <key>",
               "    Return the kind of internal representation used in order to store the value",
               "    associated with a <key>.", "FREQ <key>",
               "    Return the access frequency index of the <key>. The returned integer is",
               "    proportional to the logarithm of the recent access frequency of the key.",
               "IDLETIME <key>",
               "    Return the idle time of the <key>, that is the approximated number of",
               "    seconds elapsed since the last access to the key.", "REFCOUNT <key>",
               "    Return the number of references of the value associated with the specified",
               "    <key>.", "HELP", "    Print this help."});
}

void cmd_memory_usage(const command_args& a, command_context& c) {
  // MEMORY USAGE key [SAMPLES count]
  if (a.size() != 3 && a.size() != 5)
    return put_error(c.out, err_syntax);
  if (a.size() == 5) {
    int64_t n = 0;
    if (!ieq(a[3], "samples"))
      return put_error(c.out, err_syntax);
    if (!parse_int64(a[4], n) || n < 0)
      return put_error(c.out, err_not_int);
  }
  uint64_t payload = 0;
  if (!c.ks.read(a[2], [&](std::string_view v, uint64_t) { payload = v.size(); }))
    return put_nil(c.out);
  // the bytes memory charges for the entry; an entry only L3 holds (staged
  // for this command) is reported as memory would charge it: its payload
  uint64_t b = c.ks.shard_for(a[2]).charged_bytes(a[2]);
  put_int(c.out, static_cast<int64_t>(b ? b : a[2].size() + payload));
}

void cmd_memory_help(const command_args&, command_context& c) {
  put_help(c, {"MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:", "DOCTOR",
               "    Return memory problems reports.", "STATS",
               "    Return information about the memory usage of the server.",
               "USAGE <key> [SAMPLES <count>]",
               "    Return memory in bytes used by <key> and its value. Nested values are",
               "    sampled up to <count> times (default: 5, 0 means sample all).", "HELP",
               "    Print this help."});
}

/// MEMORY STATS: Redis's fields that kura has figures for (memory tiers L1+L2;
/// kura keeps no allocator statistics), plus kura's per-tier bytes.
void cmd_memory_stats(const command_args&, command_context& c) {
  auto [l1, l2] = memory_tiers(c);
  uint64_t used = l1.bytes + l2.bytes, keys = l1.entries + l2.entries;
  c.state.peak_memory = std::max(c.state.peak_memory, used);
  std::vector<std::pair<const char*, uint64_t>> f{
      {"peak.allocated", c.state.peak_memory},
      {"total.allocated", used},
      {"startup.allocated", 0},
      {"replication.backlog", 0},
      {"clients.slaves", 0},
      {"aof.buffer", 0},
      {"keys.count", keys},
      {"keys.bytes-per-key", keys ? used / keys : 0},
      {"dataset.bytes", used},
      {"kura.l1.bytes", l1.bytes},
      {"kura.l2.bytes", l2.bytes},
  };
  put_map_header(c.out, f.size(), c.sess.resp);
  for (auto& [k, v] : f) {
    put_bulk(c.out, k);
    put_int(c.out, static_cast<int64_t>(v));
  }
}

/// MEMORY DOCTOR: the few memory conditions kura can see.
void cmd_memory_doctor(const command_args&, command_context& c) {
  auto [l1, l2] = memory_tiers(c);
  uint64_t used = l1.bytes + l2.bytes, max = maxmemory_of(c);
  std::string r;
  if (used == 0)
    r = "Hi Sam, this instance is empty or is using very little memory, my issues detector "
        "can't be used in these conditions. Please, leave for your mission on Earth and fill it "
        "with some data. The new Sam and I will be back to our programming as soon as I "
        "finished rebooting.";
  else if (max && used > max)
    r = "Sam, I detected a few issues in this kura instance memory implants:\n\n * The memory "
        "tiers hold " +
        std::to_string(used) + " bytes, above the run-time maxmemory ceiling (" +
        std::to_string(max) +
        "): commands that add data get OOM until DEL frees memory or "
        "CONFIG SET maxmemory raises it.\n";
  else
    r = "Hi Sam, I can't find any memory issue in your instance. I can only account for what "
        "occurs on this base.";
  put_bulk(c.out, r);
}

// -- FUNCTION ------------------------------------------------------------------
// kura runs no scripts: there are never functions, so FLUSH has nothing to
// remove and LIST nothing to list.

void cmd_function_flush(const command_args& a, command_context& c) {
  if (a.size() == 3 && !ieq(a[2], "async") && !ieq(a[2], "sync"))
    return put_error(c.out, "ERR FUNCTION FLUSH only supports SYNC|ASYNC option");
  if (a.size() > 3)
    return put_error(c.out, err_syntax);
  put_ok(c.out);
}

void cmd_function_list(const command_args& a, command_context& c) {
  for (size_t i = 2; i < a.size(); ++i) {
    if (ieq(a[i], "withcode"))
      continue;
    if (ieq(a[i], "libraryname") && i + 1 < a.size()) {
      ++i;
      continue;
    }
    std::string m = "ERR Unknown argument ";
    m.append(a[i].substr(0, 128));
    return put_error(c.out, m);
  }
  put_array_header(c.out, 0);
}

// -- LATENCY HISTOGRAM -------------------------------------------------------------
//
// Redis 7's reply from each command's latency histogram (the same one INFO
// latencystats reads): a map of command name -> {calls, histogram_usec}, the
// latter cumulative counts at power-of-two bounds as Redis's HDR iterator
// gives them (first bound 1024 ns shown as 1 usec, then 2, 4, 8 ...; a bound
// appears only where the count grows). kura's histogram has log2 ns buckets,
// so the bounds are exact bucket edges.

void put_command_histogram(out_buffer& out, int resp, const std::string& name,
                           const command_stats& st) {
  put_bulk(out, name);
  std::vector<std::pair<uint64_t, uint64_t>> cdf; // usec bound -> cumulative calls
  const auto& h = st.latency;
  uint64_t cum = 0, prev = 0;
  for (size_t i = 0; i < latency_histogram::buckets; ++i) {
    cum += h.counts[i];
    if (i < 9)
      continue; // buckets below 1024 ns fold into the first bound
    if (cum > prev) {
      uint64_t bound_ns = (i + 1 < 64) ? (uint64_t{1} << (i + 1)) - 1 : UINT64_MAX;
      cdf.emplace_back(bound_ns / 1000, cum);
      prev = cum;
    }
  }
  put_map_header(out, 2, resp);
  put_bulk(out, "calls");
  put_int(out, static_cast<int64_t>(st.calls));
  put_bulk(out, "histogram_usec");
  put_map_header(out, cdf.size(), resp);
  for (auto& [b, n] : cdf) {
    put_int(out, static_cast<int64_t>(b));
    put_int(out, static_cast<int64_t>(n));
  }
}

void cmd_latency_histogram(const command_args& a, command_context& c) {
  auto& reg = c.registry;
  std::vector<int> ids;
  if (a.size() == 2) {
    for (size_t id = 0; id < reg.entries(); ++id)
      if (reg.stats()[id].latency.samples > 0)
        ids.push_back(static_cast<int>(id));
  } else {
    for (size_t i = 2; i < a.size(); ++i) {
      int id = reg.find(a[i]);
      if (id >= 0 && reg.stats()[static_cast<size_t>(id)].latency.samples > 0 &&
          std::find(ids.begin(), ids.end(), id) == ids.end())
        ids.push_back(id);
    }
  }
  put_map_header(c.out, ids.size(), c.sess.resp);
  for (int id : ids)
    put_command_histogram(c.out, c.sess.resp, reg.spec(id).name,
                          reg.stats()[static_cast<size_t>(id)]);
}

void cmd_latency_help(const command_args&, command_context& c) {
  static const char* lines[] = {
      "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
      "HISTOGRAM [COMMAND ...]",
      ("    Return a cumulative distribution of latencies in the format of a histogram for the "
       "specified command names."),
      "    If no commands are specified then all histograms are replied.",
      "HELP",
      "    Print this help."};
  put_array_header(c.out, std::size(lines));
  for (auto* l : lines)
    put_status(c.out, l);
}

// -- DEBUG -----------------------------------------------------------------------
//
// The subcommands of Redis's DEBUG that clients and test suites use and that
// mean something in kura: SLEEP (blocks the node's front end, as it blocks
// redis-server), SET-ACTIVE-EXPIRE (the sweeps of memory and L3; expiry stays
// lazy on read), PAUSE-CRON (pauses those sweeps), PROTOCOL (sample replies of each RESP3 type),
// DIGEST-VALUE, OBJECT (the encoding OBJECT ENCODING reports) and HELP.

/// A 40-hex-digit digest of a value and its type (DEBUG DIGEST-VALUE): equal
/// for equal values, 40 zeros for a missing key, as Redis's.
std::string value_digest(std::string_view v, bool hash) {
  char buf[49];
  uint64_t a = hash64(v, hash ? 0x68617368ull : 0x73747269ull);
  uint64_t b = hash64(v, a ^ 0x6b757261ull);
  uint64_t d = hash64(v, b ^ 0x64696765ull);
  std::snprintf(buf, sizeof buf, "%016llx%016llx%016llx", static_cast<unsigned long long>(a),
                static_cast<unsigned long long>(b), static_cast<unsigned long long>(d));
  return std::string(buf, 40);
}

void debug_protocol(std::string_view type, command_context& c) {
  auto& out = c.out;
  bool r3 = c.sess.resp == 3;
  if (ieq(type, "string")) {
    put_bulk(out, "Hello World");
  } else if (ieq(type, "integer")) {
    put_int(out, 12345);
  } else if (ieq(type, "double")) {
    if (r3)
      put_raw(out, ",3.141\r\n");
    else
      put_bulk(out, "3.141");
  } else if (ieq(type, "bignum")) {
    if (r3)
      put_raw(out, "(1234567999999999999999999999999999999\r\n");
    else
      put_bulk(out, "1234567999999999999999999999999999999");
  } else if (ieq(type, "null")) {
    put_raw(out, r3 ? "_\r\n" : "$-1\r\n");
  } else if (ieq(type, "array") || ieq(type, "set")) {
    if (ieq(type, "set"))
      put_set_header(out, 3, c.sess.resp);
    else
      put_array_header(out, 3);
    for (int i = 0; i < 3; ++i)
      put_int(out, i);
  } else if (ieq(type, "map")) {
    put_map_header(out, 3, c.sess.resp);
    for (int i = 0; i < 3; ++i) {
      put_int(out, i);
      if (r3)
        put_raw(out, i == 1 ? "#t\r\n" : "#f\r\n");
      else
        put_int(out, i == 1 ? 1 : 0);
    }
  } else if (ieq(type, "attrib")) {
    if (r3) {
      put_raw(out, "|1\r\n");
      put_bulk(out, "key-popularity");
      put_array_header(out, 2);
      put_bulk(out, "key:123");
      put_int(out, 90);
    }
    put_bulk(out, "Some real reply following the attribute");
  } else if (ieq(type, "push")) {
    if (!r3)
      return put_error(out, "ERR RESP2 is not supported by this command");
    put_raw(out, ">2\r\n");
    put_bulk(out, "server-cpu-usage");
    put_int(out, 42);
    put_bulk(out, "Some real reply following the push reply");
  } else if (ieq(type, "true") || ieq(type, "false")) {
    bool t = ieq(type, "true");
    if (r3)
      put_raw(out, t ? "#t\r\n" : "#f\r\n");
    else
      put_int(out, t ? 1 : 0);
  } else if (ieq(type, "verbatim")) {
    if (r3)
      put_raw(out, "=29\r\ntxt:This is a verbatim\nstring\r\n");
    else
      put_bulk(out, "This is a verbatim\nstring");
  } else {
    put_error(out, "ERR Wrong protocol type name. Please use one of the following: "
                   "string|integer|double|bignum|null|array|set|map|attrib|push|verbatim|"
                   "true|false");
  }
}

void cmd_debug(const command_args& a, command_context& c) {
  auto& out = c.out;
  auto sub = a[1];
  auto wrong = [&] {
    std::string m = "ERR unknown subcommand or wrong number of arguments for '";
    m.append(sub.substr(0, 128));
    m += "'. Try DEBUG HELP.";
    put_error(out, m);
  };
  if (ieq(sub, "help") && a.size() == 2) {
    static const char* lines[] = {
        "DEBUG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "DIGEST-VALUE <key> [<key> ...]",
        "    Output a hex digest of each key's value (40 zeros for a missing key).",
        "OBJECT <key>",
        "    Show low level info about the key and associated value.",
        "PAUSE-CRON <0|1>",
        "    Pause (1) or resume (0) the server's periodic data work: the expiry sweeps.",
        "LOADAOF",
        "    Hand L3 every pending write, then empty the memory tiers: each key is read",
        "    again from L3 or L4 (kura's append-only file is L3's write-ahead log).",
        "PROTOCOL <type>",
        "    Reply with a test value of the specified type: string, integer, double,",
        "    bignum, null, array, set, map, attrib, push, verbatim, true, false.",
        "RELOAD",
        "    The same as LOADAOF: kura's snapshot is L3 itself.",
        "SET-ACTIVE-EXPIRE <0|1>",
        "    Setting it to 0 disables the expiry sweeps of memory and L3 (expiry stays",
        "    lazy, on read).",
        "SLEEP <seconds>",
        "    Stop the server's front end for <seconds>. Decimals allowed.",
        "HELP",
        "    Print this help."};
    put_array_header(out, std::size(lines));
    for (auto* l : lines)
      put_status(out, l);
    return;
  }
  if (ieq(sub, "sleep") && a.size() == 3) {
    char* end = nullptr;
    std::string arg(a[2]);
    double secs = std::strtod(arg.c_str(), &end);
    if (arg.empty() || *end != '\0' || !(secs >= 0) || secs > 3600)
      return put_error(out, "ERR value is not a valid float");
    std::this_thread::sleep_for(std::chrono::microseconds(static_cast<int64_t>(secs * 1e6)));
    return put_ok(out);
  }
  if (ieq(sub, "set-active-expire") && a.size() == 3) {
    int64_t on = 0;
    if (!parse_int64(a[2], on))
      return put_error(out, err_not_int);
    if (!c.facts.set_active_expire)
      return put_error(out, "ERR active expiry cannot be changed in this process");
    c.state.active_expire = on != 0;
    c.facts.set_active_expire(c.state.active_expire && !c.state.cron_paused);
    return put_ok(out);
  }
  if (ieq(sub, "pause-cron") && a.size() == 3) {
    // kura's cron work that changes data is the active expiry sweep: it
    // stops while paused (and stays off after unpausing if SET-ACTIVE-EXPIRE 0)
    int64_t on = 0;
    if (!parse_int64(a[2], on))
      return put_error(out, err_not_int);
    if (!c.facts.set_active_expire)
      return put_error(out, "ERR the cron cannot be paused in this process");
    c.state.cron_paused = on != 0;
    c.facts.set_active_expire(c.state.active_expire && !c.state.cron_paused);
    return put_ok(out);
  }
  if (ieq(sub, "protocol") && a.size() == 3)
    return debug_protocol(a[2], c);
  if ((ieq(sub, "reload") || ieq(sub, "loadaof")) && a.size() == 2) {
    // kura's snapshot and append-only file are L3 (behind its write-ahead
    // log): hand L3 the write-behind queue, then empty the memory tiers, so
    // every key is loaded again from L3 or L4 on its next read, with the
    // absolute expiry L3 holds (docs/protocol.md).
    if (!c.facts.save)
      return put_error(out, "ERR kura runs without L3: there is nothing to reload from");
    if (c.facts.cluster_enabled)
      return put_error(out, "ERR DEBUG " + upper(sub) + " is not supported on a cluster node");
    c.facts.save();
    c.ks.drop_memory();
    return put_ok(out);
  }
  if (ieq(sub, "digest-value") && a.size() >= 2) {
    put_array_header(out, a.size() - 2);
    for (size_t i = 2; i < a.size(); ++i) {
      std::string d(40, '0');
      c.ks.view(a[i], [&](const keyspace::key_view& v) {
        d = value_digest(v.value, (v.flags & entry_flags::hash) != 0);
      });
      put_bulk(out, d);
    }
    return;
  }
  if (ieq(sub, "object") && a.size() == 3) {
    std::string line;
    c.ks.view(a[2], [&](const keyspace::key_view& v) {
      const char* enc = (v.flags & entry_flags::hash)
                            ? hashval::redis_encoding(v.value, c.state.hash_max_listpack_entries,
                                                      c.state.hash_max_listpack_value)
                        : c.state.raw_string(a[2], v.ver) ? "raw"
                                                          : string_encoding(v.value);
      // "at:" is where the value's bytes are: the memory tier's node (an
      // overwrite of the same size, such as INCR of 20001, keeps it there) or
      // the staged copy of an L3/L4 answer
      char at[32];
      std::snprintf(at, sizeof at, "%p", static_cast<const void*>(v.value.data()));
      line = "Value at:" + std::string(at) +
             " refcount:" + std::to_string(redis_refcount(v, c.facts)) +
             " encoding:" + std::string(enc) +
             " serializedlength:" + std::to_string(v.value.size());
    });
    if (line.empty())
      return put_error(out, "ERR no such key");
    return put_status(out, line);
  }
  wrong();
}

} // namespace

void register_server_commands(command_registry& r) {
  r.add("ping", -1, "fast", cmd_ping)
      .acl("@fast @connection")
      .tips("request_policy:all_shards response_policy:all_succeeded")
      .doc("Ping the server", "1.0.0", "connection", "O(1)");
  r.add("echo", 2, "loading stale fast", cmd_echo)
      .acl("@fast @connection")
      .doc("Echo the given string", "1.0.0", "connection", "O(1)");
  r.add("quit", -1, "noscript loading stale fast no_auth allow_busy", cmd_quit)
      .acl("@fast @connection")
      .doc("Close the connection", "1.0.0", "connection", "O(1)");
  r.add("select", 2, "loading stale fast", cmd_select)
      .acl("@fast @connection")
      .doc("Change the selected database for the current connection", "1.0.0", "connection",
           "O(1)");
  r.add("time", 1, "loading stale fast", cmd_time)
      .acl("@fast")
      .tips("nondeterministic_output")
      .doc("Return the current server time", "2.6.0", "server", "O(1)");
  r.add("hello", -1, "noscript loading stale fast no_auth allow_busy", cmd_hello)
      .acl("@fast @connection")
      .doc("Handshake with Redis", "6.0.0", "connection", "O(1)");

  r.add("command", -1, "loading stale", cmd_command)
      .acl("@slow @connection")
      .tips("nondeterministic_output_order")
      .doc("Get array of Redis command details", "2.8.13", "server",
           "O(N) where N is the total number of Redis commands");
  r.add_sub("command", "count", 2, "loading stale", cmd_command_count)
      .acl("@slow @connection")
      .doc("Get total number of Redis commands", "2.8.13", "server", "O(1)");
  r.add_sub("command", "docs", -2, "loading stale", cmd_command_docs)
      .acl("@slow @connection")
      .tips("nondeterministic_output_order")
      .doc("Get array of specific Redis command documentation", "7.0.0", "server",
           "O(N) where N is the number of commands to look up");
  r.add_sub("command", "info", -2, "loading stale", cmd_command_info)
      .acl("@slow @connection")
      .tips("nondeterministic_output_order")
      .doc("Get array of specific Redis command details, or all when no argument is given.",
           "2.8.13", "server", "O(N) where N is the number of commands to look up");
  r.add_sub("command", "list", -2, "loading stale", cmd_command_list)
      .acl("@slow @connection")
      .tips("nondeterministic_output_order")
      .doc("Get an array of Redis command names", "7.0.0", "server",
           "O(N) where N is the total number of Redis commands");
  r.add_sub("command", "getkeys", -4, "loading stale", cmd_command_getkeys)
      .acl("@slow @connection")
      .doc("Extract keys given a full Redis command", "2.8.13", "server",
           "O(N) where N is the number of arguments to the command");

  r.add("config", -2, "", nullptr)
      .acl("@slow")
      .doc("A container for server configuration commands", "2.0.0", "server",
           "Depends on subcommand.");
  r.add_sub("config", "get", -3, "admin noscript loading stale", cmd_config_get)
      .acl("@admin @slow @dangerous")
      .doc("Get the values of configuration parameters", "2.0.0", "server",
           "O(N) when N is the number of configuration parameters provided");
  r.add_sub("config", "set", -4, "admin noscript loading stale", cmd_config_set)
      .acl("@admin @slow @dangerous")
      .tips("request_policy:all_nodes response_policy:all_succeeded")
      .doc("Set configuration parameters to the given values", "2.0.0", "server",
           "O(N) when N is the number of configuration parameters provided");
  r.add_sub("config", "resetstat", 2, "admin noscript loading stale", cmd_config_resetstat)
      .acl("@admin @slow @dangerous")
      .doc("Reset the stats returned by INFO", "2.0.0", "server", "O(1)");

  r.add("save", 1, "admin noscript no_async_loading no_multi", cmd_save)
      .acl("@admin @slow @dangerous")
      .doc("Synchronously save the dataset to disk", "1.0.0", "server",
           "O(N) where N is the total number of keys in all databases");

  r.add("shutdown", -1, "admin noscript loading stale no_multi allow_busy", cmd_shutdown)
      .acl("@admin @slow @dangerous")
      .doc("Synchronously save the dataset to disk and then shut down the server", "1.0.0",
           "server", "O(N) when saving, where N is the total number of keys in all databases");

  r.add("latency", -2, "", nullptr)
      .acl("@slow")
      .doc("A container for latency diagnostics commands", "2.8.13", "server",
           "Depends on subcommand.");
  r.add_sub("latency", "histogram", -2, "admin noscript loading stale", cmd_latency_histogram)
      .acl("@admin @slow @dangerous")
      .tips("nondeterministic_output request_policy:all_nodes response_policy:special")
      .doc("Return the cumulative distribution of latencies of a subset of commands or all "
           "commands.",
           "7.0.0", "server",
           "O(N) where N is the number of commands with latency information being retrieved.");
  r.add_sub("latency", "help", 2, "loading stale", cmd_latency_help)
      .acl("@slow")
      .doc("Show helpful text about the different subcommands.", "2.8.13", "server", "O(1)");

  r.add("debug", -2, "admin noscript loading stale", cmd_debug)
      .acl("@admin @slow @dangerous")
      .doc("A container for debugging commands", "1.0.0", "server", "Depends on subcommand.");

  r.add("object", -2, "", nullptr)
      .acl("@slow")
      .doc("A container for object introspection commands", "2.2.3", "generic",
           "Depends on subcommand.");
  r.add_sub("object", "encoding", 3, "readonly", cmd_object_encoding)
      .keys(2, 2, 1)
      .key_spec(2, 0, 1, 0, "RO")
      .acl("@keyspace @read @slow")
      .tips("nondeterministic_output")
      .doc("Inspect the internal encoding of a Redis object", "2.2.3", "generic", "O(1)");
  r.add_sub("object", "freq", 3, "readonly", cmd_object_freq)
      .keys(2, 2, 1)
      .key_spec(2, 0, 1, 0, "RO")
      .acl("@keyspace @read @slow")
      .tips("nondeterministic_output")
      .doc("Get the logarithmic access frequency counter of a Redis object", "4.0.0", "generic",
           "O(1)");
  r.add_sub("object", "idletime", 3, "readonly", cmd_object_idletime)
      .keys(2, 2, 1)
      .key_spec(2, 0, 1, 0, "RO")
      .acl("@keyspace @read @slow")
      .tips("nondeterministic_output")
      .doc("Get the time since a Redis object was last accessed", "2.2.3", "generic", "O(1)");
  r.add_sub("object", "refcount", 3, "readonly", cmd_object_refcount)
      .keys(2, 2, 1)
      .key_spec(2, 0, 1, 0, "RO")
      .acl("@keyspace @read @slow")
      .tips("nondeterministic_output")
      .doc("Get the number of references to the value of the key", "2.2.3", "generic", "O(1)");
  r.add_sub("object", "help", 2, "loading stale", cmd_object_help)
      .acl("@keyspace @slow")
      .doc("Show helpful text about the different subcommands", "6.2.0", "generic", "O(1)");

  r.add("memory", -2, "", nullptr)
      .acl("@slow")
      .doc("A container for memory diagnostics commands", "4.0.0", "server",
           "Depends on subcommand.");
  r.add_sub("memory", "usage", -3, "readonly", cmd_memory_usage)
      .keys(2, 2, 1)
      .key_spec(2, 0, 1, 0, "RO")
      .acl("@read @slow")
      .doc("Estimate the memory usage of a key", "4.0.0", "server",
           "O(N) where N is the number of samples.");
  r.add_sub("memory", "stats", 2, "", cmd_memory_stats)
      .acl("@slow")
      .doc("Show memory usage details", "4.0.0", "server", "O(1)");
  r.add_sub("memory", "doctor", 2, "", cmd_memory_doctor)
      .acl("@slow")
      .doc("Outputs memory problems report", "4.0.0", "server", "O(1)");
  r.add_sub("memory", "help", 2, "loading stale", cmd_memory_help)
      .acl("@slow")
      .doc("Show helpful text about the different subcommands", "4.0.0", "server", "O(1)");

  r.add("function", -2, "", nullptr)
      .acl("@slow")
      .doc("A container for function commands", "7.0.0", "scripting", "Depends on subcommand.");
  r.add_sub("function", "flush", -2, "write noscript", cmd_function_flush)
      .acl("@write @slow @scripting")
      .tips("request_policy:all_shards response_policy:all_succeeded")
      .doc("Deleting all functions", "7.0.0", "scripting",
           "O(N) where N is the number of functions deleted");
  r.add_sub("function", "list", -2, "noscript", cmd_function_list)
      .acl("@slow @scripting")
      .tips("nondeterministic_output_order")
      .doc("List information about all the functions", "7.0.0", "scripting",
           "O(N) where N is the number of functions");

  r.add("info", -1, "loading stale", cmd_info)
      .acl("@slow @dangerous")
      .tips("nondeterministic_output request_policy:all_shards response_policy:special")
      .doc("Get information and statistics about the server", "1.0.0", "server", "O(1)");
}

} // namespace kura::node
