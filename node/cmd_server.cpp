// Server and connection commands: PING ECHO QUIT SELECT TIME HELLO CLIENT
// COMMAND CONFIG INFO. COMMAND answers from the registry in Redis 7.0's
// reply formats.
#include "node/command_registry.hpp"
#include "node/command_util.hpp"
#include "node/resp_parser.hpp"
#include "node/security.hpp"

#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

namespace kura::node {

namespace {

// -- connection ----------------------------------------------------------------

void cmd_ping(const command_args& a, command_context& c) {
  if (a.size() > 2)
    return wrong_args(c.out, "ping");
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
  if (at != 0 && !sec.authenticate(c.sess, a[at], a[at + 1], c.ks.clock().now_ms(), "hello")) {
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
  if (a.size() >= 2) {
    int64_t ver = 0;
    if (!parse_int64(a[1], ver))
      return put_error(out, "ERR Protocol version is not an integer or out of range");
    if (ver != 2)
      return put_error(out, "NOPROTO unsupported protocol version");
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
  put_array_header(out, 14);
  put_bulk(out, "server");
  put_bulk(out, "redis");
  put_bulk(out, "version");
  put_bulk(out, "7.0.0");
  put_bulk(out, "proto");
  put_int(out, 2);
  put_bulk(out, "id");
  put_int(out, static_cast<int64_t>(c.sess.id));
  put_bulk(out, "mode");
  put_bulk(out, "standalone");
  put_bulk(out, "role");
  put_bulk(out, "master");
  put_bulk(out, "modules");
  put_array_header(out, 0);
}

// -- CLIENT --------------------------------------------------------------------

void cmd_client_setname(const command_args& a, command_context& c) {
  for (char ch : a[2])
    if (ch < '!' || ch > '~')
      return put_error(c.out, "ERR Client names cannot contain spaces, newlines or "
                              "special characters.");
  c.sess.name.assign(a[2].data(), a[2].size());
  put_ok(c.out);
}

void cmd_client_getname(const command_args&, command_context& c) {
  if (c.sess.name.empty())
    return put_nil(c.out);
  put_bulk(c.out, c.sess.name);
}

void cmd_client_id(const command_args&, command_context& c) {
  put_int(c.out, static_cast<int64_t>(c.sess.id));
}

void cmd_client_info(const command_args&, command_context& c) {
  std::string line = "id=" + std::to_string(c.sess.id) + " addr=" + c.sess.peer +
                     " name=" + c.sess.name + " db=0 resp=2\n";
  put_bulk(c.out, line);
}

void cmd_client_setinfo(const command_args&, command_context& c) {
  // Client libraries announce their name and version (Redis 7.2); kura does
  // not report them, so there is nothing to keep.
  put_ok(c.out);
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

void cmd_config_get(const command_args& a, command_context& c) {
  std::vector<std::pair<std::string, std::string>> all = {
      {"save", ""},
      {"appendonly", "no"},
      {"databases", "1"},
      {"port", std::to_string(c.facts.port)},
      {"bind", c.facts.bind},
      {"dir", c.facts.data_dir},
      {"maxmemory", std::to_string(c.ks.config().memory_bytes)},
      {"maxmemory-policy", "allkeys-lfu"},
      {"maxclients", std::to_string(c.facts.max_clients)},
      {"proto-max-bulk-len", std::to_string(c.facts.proto_max_bulk_len)},
      {"timeout", "0"},
      {"tcp-keepalive", "0"},
      {"cluster-enabled", "no"},
  };
  std::vector<std::pair<std::string, std::string>> hits;
  for (auto& kv : all) {
    for (size_t i = 2; i < a.size(); ++i)
      if (glob_match(a[i], kv.first, true)) {
        hits.push_back(kv);
        break;
      }
  }
  put_array_header(c.out, hits.size() * 2);
  for (auto& kv : hits) {
    put_bulk(c.out, kv.first);
    put_bulk(c.out, kv.second);
  }
}

void cmd_config_set(const command_args& a, command_context& c) {
  if (a.size() % 2 != 0)
    return wrong_args(c.out, "config|set");
  std::string m = "ERR Unknown option or number of arguments for CONFIG SET - '";
  m.append(a[2].substr(0, 128));
  m += "'";
  put_error(c.out, m);
}

void cmd_config_resetstat(const command_args&, command_context& c) {
  c.registry.reset_stats();
  c.state.reset_stats();
  put_ok(c.out);
}

// -- INFO ----------------------------------------------------------------------

void stats_lines(std::string& r, const char* tier, const tier_stats& t) {
  r += tier;
  r += "_hits:" + std::to_string(t.hits) + "\r\n";
  r += tier;
  r += "_misses:" + std::to_string(t.misses) + "\r\n";
  r += tier;
  r += "_evictions:" + std::to_string(t.evictions) + "\r\n";
  r += tier;
  r += "_expirations:" + std::to_string(t.expirations) + "\r\n";
  r += tier;
  r += "_entries:" + std::to_string(t.entries) + "\r\n";
  r += tier;
  r += "_bytes:" + std::to_string(t.bytes) + "\r\n";
  r += tier;
  r += "_capacity_bytes:" + std::to_string(t.capacity_bytes) + "\r\n";
}

std::string info_text(command_context& c, std::string_view section) {
  bool all = section.empty() || ieq(section, "all") || ieq(section, "everything") ||
             ieq(section, "default");
  auto want = [&](const char* s) { return all || ieq(section, s); };
  auto& facts = c.facts;
  std::string r;
  auto now = c.ks.clock().now_ms();
  auto l1 = c.ks.l1_stats();
  auto l2 = c.ks.l2_stats();
  if (want("server")) {
    r += "# Server\r\nredis_version:7.0.0\r\nkura_version:" + facts.version +
         "\r\nredis_mode:standalone\r\nos:Linux\r\nprocess_id:" +
         std::to_string(static_cast<long>(::getpid())) +
         "\r\ntcp_port:" + std::to_string(facts.port) +
         "\r\nuptime_in_seconds:" + std::to_string((now - facts.start_ms) / 1000) + "\r\n\r\n";
  }
  if (want("clients")) {
    r += "# Clients\r\nconnected_clients:" + std::to_string(facts.connected_clients) +
         "\r\nmaxclients:" + std::to_string(facts.max_clients) + "\r\n\r\n";
  }
  if (want("memory")) {
    r += "# Memory\r\nused_memory:" + std::to_string(l1.bytes + l2.bytes) +
         "\r\nmaxmemory:" + std::to_string(c.ks.config().memory_bytes) +
         "\r\nmaxmemory_policy:allkeys-lfu\r\n\r\n";
  }
  if (want("stats")) {
    r += "# Stats\r\ntotal_connections_received:" + std::to_string(facts.total_connections) +
         "\r\ntotal_commands_processed:" + std::to_string(c.state.total_commands) +
         "\r\nrejected_connections:" + std::to_string(facts.rejected_connections) +
         "\r\nexpired_keys:" + std::to_string(l1.expirations + l2.expirations) +
         "\r\nkeyspace_hits:" + std::to_string(c.state.keyspace_hits) +
         "\r\nkeyspace_misses:" + std::to_string(c.state.keyspace_misses) + "\r\n\r\n";
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
      stats_lines(r, "l3", facts.l3_stats());
      r += "l3_write_behind_queue:" + std::to_string(facts.l3_queue_depth) + "\r\n";
      if (facts.l3_uncommitted)
        r += "l3_uncommitted_writes:" + std::to_string(facts.l3_uncommitted()) + "\r\n";
    }
    r += "\r\n";
  }
  if (want("keyspace")) {
    uint64_t keys = facts.l3_stats ? facts.l3_stats().entries : l1.entries + l2.entries;
    r += "# Keyspace\r\n";
    if (keys > 0)
      r += "db0:keys=" + std::to_string(keys) + ",expires=0,avg_ttl=0\r\n";
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

  r.add("client", -2, "", nullptr)
      .acl("@slow")
      .doc("A container for client connection commands", "2.4.0", "connection",
           "Depends on subcommand.");
  r.add_sub("client", "setname", 3, "noscript loading stale", cmd_client_setname)
      .acl("@slow @connection")
      .doc("Set the current connection name", "2.6.9", "connection", "O(1)");
  r.add_sub("client", "getname", 2, "noscript loading stale", cmd_client_getname)
      .acl("@slow @connection")
      .doc("Get the current connection name", "2.6.9", "connection", "O(1)");
  r.add_sub("client", "id", 2, "noscript loading stale", cmd_client_id)
      .acl("@slow @connection")
      .doc("Returns the client ID for the current connection", "5.0.0", "connection", "O(1)");
  r.add_sub("client", "info", 2, "noscript loading stale", cmd_client_info)
      .acl("@slow @connection")
      .tips("nondeterministic_output")
      .doc("Returns information about the current client connection.", "6.2.0", "connection",
           "O(1)");
  r.add_sub("client", "setinfo", 4, "noscript loading stale", cmd_client_setinfo)
      .acl("@slow @connection")
      .tips("request_policy:all_nodes response_policy:all_succeeded")
      .doc("Set client or connection specific info", "7.2.0", "connection", "O(1)");

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

  r.add("info", -1, "loading stale", cmd_info)
      .acl("@slow @dangerous")
      .tips("nondeterministic_output request_policy:all_shards response_policy:special")
      .doc("Get information and statistics about the server", "1.0.0", "server", "O(1)");
}

} // namespace kura::node
