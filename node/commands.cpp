#include "node/commands.hpp"

#include "node/resp_parser.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>

#include <unistd.h>

namespace kura::node {

struct command_table::spec {
  std::string name;
  int arity;     ///< > 0 exact, < 0 at least -arity
  int first_key; ///< 0 = no keys
  int last_key;  ///< -1 = last argument
  int step;
  handler fn;
  bool blind;   ///< writes without reading: no L3 lookup
  bool listing; ///< needs an L3 key listing
};

namespace {

constexpr std::string_view err_syntax = "ERR syntax error";
constexpr std::string_view err_not_int = "ERR value is not an integer or out of range";
constexpr std::string_view err_overflow = "ERR increment or decrement would overflow";
constexpr std::string_view err_not_float = "ERR value is not a valid float";

bool ieq(std::string_view a, std::string_view b) {
  if (a.size() != b.size())
    return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i]))
        != std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

std::string lower(std::string_view s) {
  std::string r(s);
  for (auto& c : r)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

void wrong_args(out_buffer& out, std::string_view name) {
  std::string m = "ERR wrong number of arguments for '";
  m += name;
  m += "' command";
  put_error(out, m);
}

void invalid_expire(out_buffer& out, std::string_view name) {
  std::string m = "ERR invalid expire time in '";
  m += lower(name);
  m += "' command";
  put_error(out, m);
}

/// Redis's long double formatting for INCRBYFLOAT (%.17Lf, trailing zeros cut).
std::string format_ld(long double v) {
  char buf[5 * 1024];
  int n = std::snprintf(buf, sizeof(buf), "%.17Lf", v);
  if (n <= 0 || static_cast<size_t>(n) >= sizeof(buf))
    return "0";
  std::string s(buf, static_cast<size_t>(n));
  if (s.find('.') != std::string::npos) {
    while (!s.empty() && s.back() == '0')
      s.pop_back();
    if (!s.empty() && s.back() == '.')
      s.pop_back();
  }
  if (s == "-0")
    s = "0";
  return s;
}

bool parse_ld(std::string_view s, long double& out) {
  if (s.empty() || s.size() > 5000 || std::isspace(static_cast<unsigned char>(s[0])))
    return false;
  std::string tmp(s);
  char* end = nullptr;
  errno = 0;
  long double v = std::strtold(tmp.c_str(), &end);
  if (end != tmp.c_str() + tmp.size() || errno == ERANGE || std::isnan(v))
    return false;
  out = v;
  return true;
}

} // namespace

// -- table ---------------------------------------------------------------------

command_table::command_table(keyspace& ks, node_facts& facts) : ks_(ks), facts_(facts) {
  using c = command_table;
  add("ping", -1, 0, 0, 0, &c::cmd_ping);
  add("echo", 2, 0, 0, 0, &c::cmd_echo);
  add("get", 2, 1, 1, 1, &c::cmd_get);
  add("set", -3, 1, 1, 1, &c::cmd_set);
  add("setex", 4, 1, 1, 1, &c::cmd_setex, true);
  add("psetex", 4, 1, 1, 1, &c::cmd_psetex, true);
  add("setnx", 3, 1, 1, 1, &c::cmd_setnx);
  add("getset", 3, 1, 1, 1, &c::cmd_getset);
  add("getdel", 2, 1, 1, 1, &c::cmd_getdel);
  add("getex", -2, 1, 1, 1, &c::cmd_getex);
  add("mget", -2, 1, -1, 1, &c::cmd_mget);
  add("mset", -3, 1, -1, 2, &c::cmd_mset, true);
  add("msetnx", -3, 1, -1, 2, &c::cmd_msetnx);
  add("del", -2, 1, -1, 1, &c::cmd_del);
  add("unlink", -2, 1, -1, 1, &c::cmd_del);
  add("exists", -2, 1, -1, 1, &c::cmd_exists);
  add("expire", -3, 1, 1, 1, &c::cmd_expire);
  add("pexpire", -3, 1, 1, 1, &c::cmd_pexpire);
  add("expireat", -3, 1, 1, 1, &c::cmd_expireat);
  add("pexpireat", -3, 1, 1, 1, &c::cmd_pexpireat);
  add("ttl", 2, 1, 1, 1, &c::cmd_ttl);
  add("pttl", 2, 1, 1, 1, &c::cmd_pttl);
  add("expiretime", 2, 1, 1, 1, &c::cmd_expiretime);
  add("pexpiretime", 2, 1, 1, 1, &c::cmd_pexpiretime);
  add("persist", 2, 1, 1, 1, &c::cmd_persist);
  add("incr", 2, 1, 1, 1, &c::cmd_incr);
  add("decr", 2, 1, 1, 1, &c::cmd_decr);
  add("incrby", 3, 1, 1, 1, &c::cmd_incrby);
  add("decrby", 3, 1, 1, 1, &c::cmd_decrby);
  add("incrbyfloat", 3, 1, 1, 1, &c::cmd_incrbyfloat);
  add("append", 3, 1, 1, 1, &c::cmd_append);
  add("strlen", 2, 1, 1, 1, &c::cmd_strlen);
  add("getrange", 4, 1, 1, 1, &c::cmd_getrange);
  add("setrange", 4, 1, 1, 1, &c::cmd_setrange);
  add("type", 2, 1, 1, 1, &c::cmd_type);
  add("dbsize", 1, 0, 0, 0, &c::cmd_dbsize, false, true);
  add("flushall", -1, 0, 0, 0, &c::cmd_flushall);
  add("flushdb", -1, 0, 0, 0, &c::cmd_flushall);
  add("keys", 2, 0, 0, 0, &c::cmd_keys, false, true);
  add("scan", -2, 0, 0, 0, &c::cmd_scan, false, true);
  add("randomkey", 1, 0, 0, 0, &c::cmd_randomkey, false, true);
  add("rename", 3, 1, 1, 1, &c::cmd_rename);
  add("renamenx", 3, 1, 2, 1, &c::cmd_renamenx);
  add("copy", -3, 1, 2, 1, &c::cmd_copy);
  add("time", 1, 0, 0, 0, &c::cmd_time);
  add("info", -1, 0, 0, 0, &c::cmd_info);
  add("select", 2, 0, 0, 0, &c::cmd_select);
  add("config", -2, 0, 0, 0, &c::cmd_config);
  add("command", -1, 0, 0, 0, &c::cmd_command);
  add("client", -2, 0, 0, 0, &c::cmd_client);
  add("hello", -1, 0, 0, 0, &c::cmd_hello);
  add("quit", -1, 0, 0, 0, &c::cmd_quit);
  add("kura.tier", 2, 1, 1, 1, &c::cmd_kura_tier);
}

command_table::~command_table() {
  for (auto* s : specs_)
    delete s;
}

void command_table::add(const char* name, int arity, int first_key, int last_key, int step,
                        handler h, bool blind, bool listing) {
  index_.emplace(name, static_cast<int>(specs_.size()));
  names_.emplace_back(name);
  specs_.push_back(new spec{name, arity, first_key, last_key, step, h, blind, listing});
  stats_.emplace_back();
}

int command_table::find(std::string_view name) const {
  if (name.size() > 32)
    return -1;
  auto& l = const_cast<std::string&>(lower_);
  l.assign(name.data(), name.size());
  for (auto& ch : l)
    ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  auto i = index_.find(l);
  return i == index_.end() ? -1 : i->second;
}

void command_table::reset_stats() {
  for (auto& s : stats_)
    s = command_stats{};
  total_commands_ = 0;
  keyspace_hits_ = keyspace_misses_ = 0;
}

// -- planning ----------------------------------------------------------------

void command_table::plan(const std::vector<std::string_view>& a, fetch_plan& out) {
  out.clear();
  if (!ks_.has_l3() || a.empty())
    return;
  int id = find(a[0]);
  if (id < 0)
    return;
  const spec& sp = *specs_[static_cast<size_t>(id)];
  int n = static_cast<int>(a.size());
  if ((sp.arity > 0 && n != sp.arity) || (sp.arity < 0 && n < -sp.arity))
    return; // runs at once and answers with the arity error
  if (sp.listing) {
    out.kind = fetch_plan::listing;
    if (sp.name == "dbsize") {
      out.mode = fetch_plan::list_count;
    } else if (sp.name == "randomkey") {
      out.mode = fetch_plan::list_random;
    } else if (sp.name == "keys") {
      out.mode = fetch_plan::list_keys;
      out.pattern.assign(a[1].data(), a[1].size());
    } else { // scan cursor [MATCH p] [COUNT n] [TYPE t]
      out.mode = fetch_plan::list_keys;
      int64_t cursor = 0;
      if (!parse_int64(a[1], cursor) || cursor < 0) {
        out.clear();
        return; // execute answers "invalid cursor"
      }
      if (cursor != 0) {
        auto i = cursors_.find(static_cast<uint64_t>(cursor));
        if (i == cursors_.end()) {
          out.clear();
          return; // unknown cursor: the iteration is over
        }
        out.after = i->second;
      }
      out.limit = 10;
      for (size_t i = 2; i + 1 < a.size(); i += 2) {
        if (ieq(a[i], "match"))
          out.pattern.assign(a[i + 1].data(), a[i + 1].size());
        else if (ieq(a[i], "count")) {
          int64_t c = 0;
          if (parse_int64(a[i + 1], c) && c > 0)
            out.limit = static_cast<uint64_t>(c);
        }
      }
    }
    return;
  }
  if (sp.first_key == 0 || sp.blind)
    return;
  if (sp.name == "set") { // a plain SET needs no old value
    bool reads = false;
    for (size_t i = 3; i < a.size(); ++i)
      if (ieq(a[i], "nx") || ieq(a[i], "xx") || ieq(a[i], "get") || ieq(a[i], "keepttl"))
        reads = true;
    if (!reads)
      return;
  }
  int last = sp.last_key < 0 ? n + sp.last_key : sp.last_key;
  for (int i = sp.first_key; i <= last && i < n; i += sp.step) {
    auto k = a[static_cast<size_t>(i)];
    if (ks_.known(k) || !ks_.maybe_in_l3(k))
      continue;
    out.keys.emplace_back(k);
  }
  if (!out.keys.empty())
    out.kind = fetch_plan::lookup;
}

// -- execution -----------------------------------------------------------------

void command_table::execute(const std::vector<std::string_view>& a, session& s,
                            out_buffer& out, const listing* lst) {
  if (a.empty())
    return;
  int id = find(a[0]);
  if (id < 0) {
    std::string m = "ERR unknown command '";
    m.append(a[0].substr(0, 128));
    m += "', with args beginning with: ";
    for (size_t i = 1; i < a.size() && m.size() < 1024; ++i) {
      m += "'";
      m.append(a[i].substr(0, 128));
      m += "' ";
    }
    for (auto& ch : m)
      if (ch == '\r' || ch == '\n')
        ch = ' ';
    put_error(out, m);
    return;
  }
  auto& sp = *specs_[static_cast<size_t>(id)];
  auto& st = stats_[static_cast<size_t>(id)];
  int n = static_cast<int>(a.size());
  ++total_commands_;
  ++st.calls;
  if ((sp.arity > 0 && n != sp.arity) || (sp.arity < 0 && n < -sp.arity)) {
    ++st.errors;
    wrong_args(out, sp.name);
    return;
  }
  auto t0 = ks_.clock().mono_ns();
  size_t before = out.size();
  (this->*sp.fn)(a, s, out, lst);
  st.latency.record(ks_.clock().mono_ns() - t0);
  if (out.size() > before && out[before] == '-')
    ++st.errors;
}

// -- connection / server -------------------------------------------------------

void command_table::cmd_ping(const std::vector<std::string_view>& a, session&, out_buffer& out,
                             const listing*) {
  if (a.size() > 2)
    return wrong_args(out, "ping");
  if (a.size() == 2)
    put_bulk(out, a[1]);
  else
    put_raw(out, "+PONG\r\n");
}

void command_table::cmd_echo(const std::vector<std::string_view>& a, session&, out_buffer& out,
                             const listing*) {
  put_bulk(out, a[1]);
}

void command_table::cmd_quit(const std::vector<std::string_view>&, session& s, out_buffer& out,
                             const listing*) {
  s.quit = true;
  put_ok(out);
}

void command_table::cmd_select(const std::vector<std::string_view>& a, session&,
                               out_buffer& out, const listing*) {
  int64_t db = 0;
  if (!parse_int64(a[1], db))
    return put_error(out, err_not_int);
  if (db != 0)
    return put_error(out, "ERR DB index is out of range");
  put_ok(out);
}

void command_table::cmd_time(const std::vector<std::string_view>&, session&, out_buffer& out,
                             const listing*) {
  uint64_t ms = ks_.clock().now_ms();
  uint64_t us = (ks_.clock().mono_ns() / 1000) % 1000;
  put_array_header(out, 2);
  put_bulk(out, std::to_string(ms / 1000));
  put_bulk(out, std::to_string((ms % 1000) * 1000 + us));
}

void command_table::cmd_hello(const std::vector<std::string_view>& a, session& s,
                              out_buffer& out, const listing*) {
  size_t i = 1;
  if (a.size() >= 2) {
    int64_t ver = 0;
    if (!parse_int64(a[1], ver))
      return put_error(out, "ERR Protocol version is not an integer or out of range");
    if (ver != 2)
      return put_error(out, "NOPROTO unsupported protocol version");
    i = 2;
  }
  for (; i < a.size(); ++i) {
    if (ieq(a[i], "setname") && i + 1 < a.size()) {
      s.name.assign(a[i + 1].data(), a[i + 1].size());
      ++i;
    } else if (ieq(a[i], "auth") && i + 2 < a.size()) {
      return put_error(out, "ERR AUTH <password> called without any password configured "
                            "for the default user. Are you sure your configuration is "
                            "correct?");
    } else {
      std::string m = "ERR Syntax error in HELLO option '";
      m.append(a[i]);
      m += "'";
      return put_error(out, m);
    }
  }
  put_array_header(out, 14);
  put_bulk(out, "server");
  put_bulk(out, "redis");
  put_bulk(out, "version");
  put_bulk(out, "7.0.0");
  put_bulk(out, "proto");
  put_int(out, 2);
  put_bulk(out, "id");
  put_int(out, static_cast<int64_t>(s.id));
  put_bulk(out, "mode");
  put_bulk(out, "standalone");
  put_bulk(out, "role");
  put_bulk(out, "master");
  put_bulk(out, "modules");
  put_array_header(out, 0);
}

void command_table::cmd_client(const std::vector<std::string_view>& a, session& s,
                               out_buffer& out, const listing*) {
  auto sub = a[1];
  if (ieq(sub, "setname")) {
    if (a.size() != 3)
      return wrong_args(out, "client|setname");
    for (char ch : a[2])
      if (ch < '!' || ch > '~')
        return put_error(out, "ERR Client names cannot contain spaces, newlines or "
                              "special characters.");
    s.name.assign(a[2].data(), a[2].size());
    return put_ok(out);
  }
  if (ieq(sub, "getname")) {
    if (a.size() != 2)
      return wrong_args(out, "client|getname");
    if (s.name.empty())
      return put_nil(out);
    return put_bulk(out, s.name);
  }
  if (ieq(sub, "id")) {
    if (a.size() != 2)
      return wrong_args(out, "client|id");
    return put_int(out, static_cast<int64_t>(s.id));
  }
  if (ieq(sub, "info")) {
    std::string line = "id=" + std::to_string(s.id) + " addr=" + s.peer
                       + " name=" + s.name + " db=0 resp=2\n";
    return put_bulk(out, line);
  }
  if (ieq(sub, "setinfo"))
    return put_ok(out);
  std::string m = "ERR unknown subcommand '";
  m.append(sub.substr(0, 128));
  m += "'. Try CLIENT HELP.";
  put_error(out, m);
}

void command_table::put_command_info(out_buffer& out, size_t id) {
  auto& sp = *specs_[id];
  put_array_header(out, 10);
  put_bulk(out, sp.name);
  put_int(out, sp.arity);
  put_array_header(out, 0); // flags
  put_int(out, sp.first_key);
  put_int(out, sp.first_key == 0 ? 0 : sp.last_key);
  put_int(out, sp.step);
  put_array_header(out, 0); // acl categories
  put_array_header(out, 0); // tips
  put_array_header(out, 0); // key specs
  put_array_header(out, 0); // subcommands
}

void command_table::cmd_command(const std::vector<std::string_view>& a, session&,
                                out_buffer& out, const listing*) {
  if (a.size() == 1) {
    put_array_header(out, specs_.size());
    for (size_t i = 0; i < specs_.size(); ++i)
      put_command_info(out, i);
    return;
  }
  auto sub = a[1];
  if (ieq(sub, "count"))
    return put_int(out, static_cast<int64_t>(specs_.size()));
  if (ieq(sub, "docs")) {
    // redis-cli asks for docs to build its hints; none is a valid answer
    return put_array_header(out, 0);
  }
  if (ieq(sub, "info")) {
    put_array_header(out, a.size() - 2);
    for (size_t i = 2; i < a.size(); ++i) {
      int id = find(a[i]);
      if (id < 0)
        put_nil_array(out);
      else
        put_command_info(out, static_cast<size_t>(id));
    }
    return;
  }
  if (ieq(sub, "list")) {
    put_array_header(out, specs_.size());
    for (auto* sp : specs_)
      put_bulk(out, sp->name);
    return;
  }
  std::string m = "ERR unknown subcommand '";
  m.append(sub.substr(0, 128));
  m += "'. Try COMMAND HELP.";
  put_error(out, m);
}

void command_table::cmd_config(const std::vector<std::string_view>& a, session&,
                               out_buffer& out, const listing*) {
  auto sub = a[1];
  if (ieq(sub, "get")) {
    if (a.size() < 3)
      return wrong_args(out, "config|get");
    std::vector<std::pair<std::string, std::string>> all = {
      {"save", ""},
      {"appendonly", "no"},
      {"databases", "1"},
      {"port", std::to_string(facts_.port)},
      {"bind", facts_.bind},
      {"dir", facts_.data_dir},
      {"maxmemory", std::to_string(ks_.config().memory_bytes)},
      {"maxmemory-policy", "allkeys-lfu"},
      {"maxclients", std::to_string(facts_.max_clients)},
      {"proto-max-bulk-len", std::to_string(facts_.proto_max_bulk_len)},
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
    put_array_header(out, hits.size() * 2);
    for (auto& kv : hits) {
      put_bulk(out, kv.first);
      put_bulk(out, kv.second);
    }
    return;
  }
  if (ieq(sub, "set")) {
    if (a.size() < 4 || a.size() % 2 != 0)
      return wrong_args(out, "config|set");
    std::string m = "ERR Unknown option or number of arguments for CONFIG SET - '";
    m.append(a[2].substr(0, 128));
    m += "'";
    return put_error(out, m);
  }
  if (ieq(sub, "resetstat")) {
    reset_stats();
    return put_ok(out);
  }
  std::string m = "ERR unknown subcommand '";
  m.append(sub.substr(0, 128));
  m += "'. Try CONFIG HELP.";
  put_error(out, m);
}

namespace {

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

} // namespace

std::string command_table::info_text(std::string_view section) {
  bool all = section.empty() || ieq(section, "all") || ieq(section, "everything")
             || ieq(section, "default");
  auto want = [&](const char* s) { return all || ieq(section, s); };
  std::string r;
  auto now = ks_.clock().now_ms();
  auto l1 = ks_.l1_stats();
  auto l2 = ks_.l2_stats();
  if (want("server")) {
    r += "# Server\r\nredis_version:7.0.0\r\nkura_version:" + facts_.version
         + "\r\nredis_mode:standalone\r\nos:Linux\r\nprocess_id:"
         + std::to_string(static_cast<long>(::getpid()))
         + "\r\ntcp_port:" + std::to_string(facts_.port)
         + "\r\nuptime_in_seconds:" + std::to_string((now - facts_.start_ms) / 1000)
         + "\r\n\r\n";
  }
  if (want("clients")) {
    r += "# Clients\r\nconnected_clients:" + std::to_string(facts_.connected_clients)
         + "\r\nmaxclients:" + std::to_string(facts_.max_clients) + "\r\n\r\n";
  }
  if (want("memory")) {
    r += "# Memory\r\nused_memory:" + std::to_string(l1.bytes + l2.bytes)
         + "\r\nmaxmemory:" + std::to_string(ks_.config().memory_bytes)
         + "\r\nmaxmemory_policy:allkeys-lfu\r\n\r\n";
  }
  if (want("stats")) {
    r += "# Stats\r\ntotal_connections_received:" + std::to_string(facts_.total_connections)
         + "\r\ntotal_commands_processed:" + std::to_string(total_commands_)
         + "\r\nrejected_connections:" + std::to_string(facts_.rejected_connections)
         + "\r\nexpired_keys:" + std::to_string(l1.expirations + l2.expirations)
         + "\r\nkeyspace_hits:" + std::to_string(keyspace_hits_)
         + "\r\nkeyspace_misses:" + std::to_string(keyspace_misses_) + "\r\n\r\n";
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
    r += "# L3\r\nl3_enabled:" + std::string(facts_.l3_stats ? "1" : "0") + "\r\n";
    if (facts_.l3_stats) {
      stats_lines(r, "l3", facts_.l3_stats());
      r += "l3_write_behind_queue:" + std::to_string(facts_.l3_queue_depth) + "\r\n";
      if (facts_.l3_uncommitted)
        r += "l3_uncommitted_writes:" + std::to_string(facts_.l3_uncommitted()) + "\r\n";
    }
    r += "\r\n";
  }
  if (want("keyspace")) {
    uint64_t keys = facts_.l3_stats ? facts_.l3_stats().entries : l1.entries + l2.entries;
    r += "# Keyspace\r\n";
    if (keys > 0)
      r += "db0:keys=" + std::to_string(keys) + ",expires=0,avg_ttl=0\r\n";
    r += "\r\n";
  }
  if (r.size() >= 2)
    r.resize(r.size() - 2);
  return r;
}

void command_table::cmd_info(const std::vector<std::string_view>& a, session&, out_buffer& out,
                             const listing*) {
  if (a.size() <= 2) {
    put_bulk(out, info_text(a.size() == 2 ? a[1] : std::string_view{}));
    return;
  }
  std::string r;
  for (size_t i = 1; i < a.size(); ++i) {
    auto t = info_text(a[i]);
    if (!t.empty()) {
      r += t;
      r += "\r\n";
    }
  }
  put_bulk(out, r);
}

// -- strings -------------------------------------------------------------------

void command_table::cmd_get(const std::vector<std::string_view>& a, session&, out_buffer& out,
                            const listing*) {
  if (!ks_.read(a[1], [&](std::string_view v, uint64_t) { put_bulk(out, v); })) {
    ++keyspace_misses_;
    put_nil(out);
  } else {
    ++keyspace_hits_;
  }
}

namespace {

/// Parses "EX n | PX n | EXAT n | PXAT n" at a[i]; returns false on syntax.
enum class exp_parse { ok, syntax, not_int, invalid };

exp_parse parse_expiry(std::string_view opt, std::string_view val, uint64_t now,
                       uint64_t& expiry) {
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
    case exp_parse::not_int: return put_error(out, err_not_int);
    case exp_parse::invalid: return invalid_expire(out, name);
    case exp_parse::ok:
    case exp_parse::syntax: break;
  }
  put_error(out, err_syntax);
}

bool is_expiry_opt(std::string_view s) {
  return ieq(s, "ex") || ieq(s, "px") || ieq(s, "exat") || ieq(s, "pxat");
}

} // namespace

void command_table::cmd_set(const std::vector<std::string_view>& a, session&, out_buffer& out,
                            const listing*) {
  bool nx = false, xx = false, get = false, keepttl = false, has_exp = false;
  uint64_t expiry = 0;
  auto now = ks_.clock().now_ms();
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
    old = ks_.get(a[1]);
  if ((nx && old) || (xx && !old)) {
    if (get && old)
      return put_bulk(out, old->value);
    return put_nil(out);
  }
  if (keepttl && old)
    expiry = old->expiry_ms;
  if (has_exp && expiry <= now) {
    ks_.erase(a[1]);
  } else if (auto st = ks_.write(a[1], std::string{a[2]}, expiry); !st.ok()) {
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

void command_table::setex_generic(const std::vector<std::string_view>& a, out_buffer& out,
                                  int64_t unit) {
  int64_t v = 0;
  if (!parse_int64(a[2], v))
    return put_error(out, err_not_int);
  if (v <= 0 || v > INT64_MAX / unit)
    return invalid_expire(out, unit == 1000 ? "setex" : "psetex");
  auto now = ks_.clock().now_ms();
  if (auto st = ks_.write(a[1], std::string{a[3]}, now + static_cast<uint64_t>(v * unit));
      !st.ok())
    return put_error(out, "ERR " + st.message());
  put_ok(out);
}

void command_table::cmd_setex(const std::vector<std::string_view>& a, session&,
                              out_buffer& out, const listing*) {
  setex_generic(a, out, 1000);
}

void command_table::cmd_psetex(const std::vector<std::string_view>& a, session&,
                               out_buffer& out, const listing*) {
  setex_generic(a, out, 1);
}

void command_table::cmd_setnx(const std::vector<std::string_view>& a, session&,
                              out_buffer& out, const listing*) {
  if (ks_.exists(a[1]))
    return put_int(out, 0);
  if (auto st = ks_.write(a[1], std::string{a[2]}, 0); !st.ok())
    return put_error(out, "ERR " + st.message());
  put_int(out, 1);
}

void command_table::cmd_getset(const std::vector<std::string_view>& a, session&,
                               out_buffer& out, const listing*) {
  auto old = ks_.get(a[1]);
  if (auto st = ks_.write(a[1], std::string{a[2]}, 0); !st.ok())
    return put_error(out, "ERR " + st.message());
  if (old)
    put_bulk(out, old->value);
  else
    put_nil(out);
}

void command_table::cmd_getdel(const std::vector<std::string_view>& a, session&,
                               out_buffer& out, const listing*) {
  auto old = ks_.get(a[1]);
  if (!old)
    return put_nil(out);
  ks_.erase(a[1]);
  put_bulk(out, old->value);
}

void command_table::cmd_getex(const std::vector<std::string_view>& a, session&,
                              out_buffer& out, const listing*) {
  auto now = ks_.clock().now_ms();
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
  auto e = ks_.get(a[1]);
  if (!e)
    return put_nil(out);
  put_bulk(out, e->value);
  if (has_exp && expiry <= now)
    ks_.erase(a[1]);
  else if (has_exp)
    ks_.set_expiry(a[1], expiry);
  else if (persist && e->expiry_ms != 0)
    ks_.set_expiry(a[1], 0);
}

void command_table::cmd_mget(const std::vector<std::string_view>& a, session&,
                             out_buffer& out, const listing*) {
  put_array_header(out, a.size() - 1);
  for (size_t i = 1; i < a.size(); ++i)
    if (!ks_.read(a[i], [&](std::string_view v, uint64_t) { put_bulk(out, v); }))
      put_nil(out);
}

void command_table::cmd_mset(const std::vector<std::string_view>& a, session&,
                             out_buffer& out, const listing*) {
  if (a.size() % 2 != 1)
    return wrong_args(out, "mset");
  for (size_t i = 1; i + 1 < a.size(); i += 2)
    if (auto st = ks_.write(a[i], std::string{a[i + 1]}, 0); !st.ok())
      return put_error(out, "ERR " + st.message());
  put_ok(out);
}

void command_table::cmd_msetnx(const std::vector<std::string_view>& a, session&,
                               out_buffer& out, const listing*) {
  if (a.size() % 2 != 1)
    return wrong_args(out, "msetnx");
  for (size_t i = 1; i + 1 < a.size(); i += 2)
    if (ks_.exists(a[i]))
      return put_int(out, 0);
  for (size_t i = 1; i + 1 < a.size(); i += 2)
    if (auto st = ks_.write(a[i], std::string{a[i + 1]}, 0); !st.ok())
      return put_error(out, "ERR " + st.message());
  put_int(out, 1);
}

void command_table::cmd_del(const std::vector<std::string_view>& a, session&, out_buffer& out,
                            const listing*) {
  int64_t n = 0;
  for (size_t i = 1; i < a.size(); ++i)
    if (ks_.erase(a[i]))
      ++n;
  put_int(out, n);
}

void command_table::cmd_exists(const std::vector<std::string_view>& a, session&,
                               out_buffer& out, const listing*) {
  int64_t n = 0;
  for (size_t i = 1; i < a.size(); ++i)
    if (ks_.exists(a[i]))
      ++n;
  put_int(out, n);
}

void command_table::expire_generic(const std::vector<std::string_view>& a, out_buffer& out,
                                   uint64_t base_ms, int64_t unit_ms) {
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
  if ((unit_ms > 1 && (v > INT64_MAX / unit_ms || v < INT64_MIN / unit_ms)) || when > INT64_MAX
      || when < INT64_MIN)
    return invalid_expire(out, a[0]);
  auto e = ks_.get(a[1]);
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
  auto now = ks_.clock().now_ms();
  if (nw <= static_cast<int64_t>(now)) {
    ks_.erase(a[1]);
    return put_int(out, 1);
  }
  ks_.set_expiry(a[1], static_cast<uint64_t>(nw));
  put_int(out, 1);
}

void command_table::cmd_expire(const std::vector<std::string_view>& a, session&,
                               out_buffer& out, const listing*) {
  expire_generic(a, out, ks_.clock().now_ms(), 1000);
}
void command_table::cmd_pexpire(const std::vector<std::string_view>& a, session&,
                                out_buffer& out, const listing*) {
  expire_generic(a, out, ks_.clock().now_ms(), 1);
}
void command_table::cmd_expireat(const std::vector<std::string_view>& a, session&,
                                 out_buffer& out, const listing*) {
  expire_generic(a, out, 0, 1000);
}
void command_table::cmd_pexpireat(const std::vector<std::string_view>& a, session&,
                                  out_buffer& out, const listing*) {
  expire_generic(a, out, 0, 1);
}

void command_table::ttl_generic(std::string_view key, out_buffer& out, bool ms,
                                bool absolute) {
  uint64_t expiry = 0;
  if (!ks_.read(key, [&](std::string_view, uint64_t x) { expiry = x; }))
    return put_int(out, -2);
  if (expiry == 0)
    return put_int(out, -1);
  int64_t now = static_cast<int64_t>(ks_.clock().now_ms());
  int64_t t = absolute ? static_cast<int64_t>(expiry) : static_cast<int64_t>(expiry) - now;
  if (t < 0)
    t = 0;
  put_int(out, ms ? t : (t + 500) / 1000);
}

void command_table::cmd_ttl(const std::vector<std::string_view>& a, session&, out_buffer& out,
                            const listing*) {
  ttl_generic(a[1], out, false, false);
}
void command_table::cmd_pttl(const std::vector<std::string_view>& a, session&, out_buffer& out,
                             const listing*) {
  ttl_generic(a[1], out, true, false);
}
void command_table::cmd_expiretime(const std::vector<std::string_view>& a, session&,
                                   out_buffer& out, const listing*) {
  ttl_generic(a[1], out, false, true);
}
void command_table::cmd_pexpiretime(const std::vector<std::string_view>& a, session&,
                                    out_buffer& out, const listing*) {
  ttl_generic(a[1], out, true, true);
}

void command_table::cmd_persist(const std::vector<std::string_view>& a, session&,
                                out_buffer& out, const listing*) {
  auto e = ks_.get(a[1]);
  if (!e || e->expiry_ms == 0)
    return put_int(out, 0);
  ks_.set_expiry(a[1], 0);
  put_int(out, 1);
}

void command_table::incr_generic(std::string_view key, int64_t by, out_buffer& out) {
  auto e = ks_.get(key);
  int64_t cur = 0;
  uint64_t expiry = 0;
  if (e) {
    if (!parse_int64(e->value, cur))
      return put_error(out, err_not_int);
    expiry = e->expiry_ms;
  }
  if ((by < 0 && cur < 0 && by < INT64_MIN - cur) || (by > 0 && cur > 0 && by > INT64_MAX - cur))
    return put_error(out, err_overflow);
  cur += by;
  if (auto st = ks_.write(key, std::to_string(cur), expiry); !st.ok())
    return put_error(out, "ERR " + st.message());
  put_int(out, cur);
}

void command_table::cmd_incr(const std::vector<std::string_view>& a, session&, out_buffer& out,
                             const listing*) {
  incr_generic(a[1], 1, out);
}
void command_table::cmd_decr(const std::vector<std::string_view>& a, session&, out_buffer& out,
                             const listing*) {
  incr_generic(a[1], -1, out);
}
void command_table::cmd_incrby(const std::vector<std::string_view>& a, session&,
                               out_buffer& out, const listing*) {
  int64_t by = 0;
  if (!parse_int64(a[2], by))
    return put_error(out, err_not_int);
  incr_generic(a[1], by, out);
}
void command_table::cmd_decrby(const std::vector<std::string_view>& a, session&,
                               out_buffer& out, const listing*) {
  int64_t by = 0;
  if (!parse_int64(a[2], by))
    return put_error(out, err_not_int);
  if (by == INT64_MIN)
    return put_error(out, "ERR decrement would overflow");
  incr_generic(a[1], -by, out);
}

void command_table::cmd_incrbyfloat(const std::vector<std::string_view>& a, session&,
                                    out_buffer& out, const listing*) {
  long double by = 0, cur = 0;
  if (!parse_ld(a[2], by))
    return put_error(out, err_not_float);
  auto e = ks_.get(a[1]);
  uint64_t expiry = 0;
  if (e) {
    if (!parse_ld(e->value, cur))
      return put_error(out, err_not_float);
    expiry = e->expiry_ms;
  }
  long double r = cur + by;
  if (std::isnan(r) || std::isinf(r))
    return put_error(out, "ERR increment would produce NaN or Infinity");
  auto s = format_ld(r);
  if (auto st = ks_.write(a[1], s, expiry); !st.ok())
    return put_error(out, "ERR " + st.message());
  put_bulk(out, s);
}

void command_table::cmd_append(const std::vector<std::string_view>& a, session&,
                               out_buffer& out, const listing*) {
  auto e = ks_.get(a[1]);
  std::string v;
  uint64_t expiry = 0;
  if (e) {
    v = std::move(e->value);
    expiry = e->expiry_ms;
  }
  if (v.size() + a[2].size() > facts_.proto_max_bulk_len)
    return put_error(out, "ERR string exceeds maximum allowed size (proto-max-bulk-len)");
  v.append(a[2]);
  auto n = static_cast<int64_t>(v.size());
  if (auto st = ks_.write(a[1], std::move(v), expiry); !st.ok())
    return put_error(out, "ERR " + st.message());
  put_int(out, n);
}

void command_table::cmd_strlen(const std::vector<std::string_view>& a, session&,
                               out_buffer& out, const listing*) {
  int64_t n = 0;
  ks_.read(a[1], [&](std::string_view v, uint64_t) { n = static_cast<int64_t>(v.size()); });
  put_int(out, n);
}

void command_table::cmd_getrange(const std::vector<std::string_view>& a, session&,
                                 out_buffer& out, const listing*) {
  int64_t start = 0, end = 0;
  if (!parse_int64(a[2], start) || !parse_int64(a[3], end))
    return put_error(out, err_not_int);
  bool hit = ks_.read(a[1], [&](std::string_view v, uint64_t) {
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
  if (!hit)
    put_bulk(out, "");
}

void command_table::cmd_setrange(const std::vector<std::string_view>& a, session&,
                                 out_buffer& out, const listing*) {
  int64_t off = 0;
  if (!parse_int64(a[2], off))
    return put_error(out, err_not_int);
  if (off < 0)
    return put_error(out, "ERR offset is out of range");
  auto e = ks_.get(a[1]);
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
  if (static_cast<uint64_t>(off) + a[3].size() > facts_.proto_max_bulk_len)
    return put_error(out, "ERR string exceeds maximum allowed size (proto-max-bulk-len)");
  size_t need = static_cast<size_t>(off) + a[3].size();
  if (v.size() < need)
    v.resize(need, '\0');
  std::copy(a[3].begin(), a[3].end(), v.begin() + off);
  auto n = static_cast<int64_t>(v.size());
  if (auto st = ks_.write(a[1], std::move(v), expiry); !st.ok())
    return put_error(out, "ERR " + st.message());
  put_int(out, n);
}

void command_table::cmd_type(const std::vector<std::string_view>& a, session&, out_buffer& out,
                             const listing*) {
  put_status(out, ks_.exists(a[1]) ? "string" : "none");
}

void command_table::cmd_kura_tier(const std::vector<std::string_view>& a, session&,
                                  out_buffer& out, const listing*) {
  put_bulk(out, ks_.tier_of(a[1]));
}

// -- keyspace ----------------------------------------------------------------

void command_table::collect_keys(const listing* lst, std::string_view pattern,
                                 std::vector<std::string>& keys) {
  if (lst) {
    keys = lst->keys;
    return;
  }
  ks_.memory_keys([&](std::string_view k) {
    if (pattern.empty() || glob_match(pattern, k))
      keys.emplace_back(k);
  });
}

void command_table::cmd_dbsize(const std::vector<std::string_view>&, session&,
                               out_buffer& out, const listing* lst) {
  if (lst)
    return put_int(out, static_cast<int64_t>(lst->count));
  int64_t n = 0;
  ks_.memory_keys([&](std::string_view) { ++n; });
  put_int(out, n);
}

void command_table::cmd_flushall(const std::vector<std::string_view>& a, session&,
                                 out_buffer& out, const listing*) {
  if (a.size() > 2 || (a.size() == 2 && !ieq(a[1], "async") && !ieq(a[1], "sync")))
    return put_error(out, err_syntax);
  ks_.clear();
  cursors_.clear();
  put_ok(out);
}

void command_table::cmd_keys(const std::vector<std::string_view>& a, session&,
                             out_buffer& out, const listing* lst) {
  std::vector<std::string> keys;
  collect_keys(lst, a[1], keys);
  put_array_header(out, keys.size());
  for (auto& k : keys)
    put_bulk(out, k);
}

void command_table::cmd_scan(const std::vector<std::string_view>& a, session&,
                             out_buffer& out, const listing* lst) {
  int64_t cursor = 0;
  if (!parse_int64(a[1], cursor) || cursor < 0)
    return put_error(out, "ERR invalid cursor");
  std::string_view pattern;
  int64_t count = 10;
  bool other_type = false;
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
      other_type = !ieq(a[i + 1], "string");
    } else {
      return put_error(out, err_syntax);
    }
  }
  std::string after;
  if (cursor != 0) {
    auto i = cursors_.find(static_cast<uint64_t>(cursor));
    if (i == cursors_.end()) { // unknown or finished cursor: nothing more
      put_array_header(out, 2);
      put_bulk(out, "0");
      return put_array_header(out, 0);
    }
    after = i->second;
    cursors_.erase(i);
  }
  std::vector<std::string> keys;
  std::string last;
  bool done = true;
  if (lst) {
    keys = lst->keys;
    last = lst->last;
    done = lst->done;
  } else { // memory only: sorted, resumable by key
    std::vector<std::string> all;
    ks_.memory_keys([&](std::string_view k) {
      if (k > after || (after.empty() && cursor == 0))
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
  uint64_t next = 0;
  if (!done) {
    next = next_cursor_++;
    cursors_[next] = last;
    while (cursors_.size() > 10000)
      cursors_.erase(cursors_.begin());
  }
  put_array_header(out, 2);
  put_bulk(out, std::to_string(next));
  if (other_type)
    return put_array_header(out, 0);
  put_array_header(out, keys.size());
  for (auto& k : keys)
    put_bulk(out, k);
}

void command_table::cmd_randomkey(const std::vector<std::string_view>&, session&,
                                  out_buffer& out, const listing* lst) {
  if (lst) {
    if (lst->keys.empty())
      return put_nil(out);
    return put_bulk(out, lst->keys.front());
  }
  std::vector<std::string> keys;
  collect_keys(nullptr, {}, keys);
  if (keys.empty())
    return put_nil(out);
  static std::mt19937_64 rng{0x6b757261};
  put_bulk(out, keys[rng() % keys.size()]);
}

void command_table::rename_generic(const std::vector<std::string_view>& a, out_buffer& out,
                                   bool nx) {
  auto e = ks_.get(a[1]);
  if (!e)
    return put_error(out, "ERR no such key");
  if (a[1] == a[2])
    return nx ? put_int(out, 0) : put_ok(out);
  if (nx && ks_.exists(a[2]))
    return put_int(out, 0);
  if (auto st = ks_.write(a[2], std::move(e->value), e->expiry_ms); !st.ok())
    return put_error(out, "ERR " + st.message());
  ks_.erase(a[1]);
  if (nx)
    put_int(out, 1);
  else
    put_ok(out);
}

void command_table::cmd_rename(const std::vector<std::string_view>& a, session&,
                               out_buffer& out, const listing*) {
  rename_generic(a, out, false);
}
void command_table::cmd_renamenx(const std::vector<std::string_view>& a, session&,
                                 out_buffer& out, const listing*) {
  rename_generic(a, out, true);
}

void command_table::cmd_copy(const std::vector<std::string_view>& a, session&,
                             out_buffer& out, const listing*) {
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
  auto e = ks_.get(a[1]);
  if (!e)
    return put_int(out, 0);
  if (!replace && ks_.exists(a[2]))
    return put_int(out, 0);
  if (auto st = ks_.write(a[2], std::move(e->value), e->expiry_ms); !st.ok())
    return put_error(out, "ERR " + st.message());
  put_int(out, 1);
}

} // namespace kura::node
