// Scripting: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, SCRIPT LOAD/EXISTS/FLUSH/
// KILL/HELP, FUNCTION KILL, FCALL/FCALL_RO (no FUNCTION LOAD: no function
// ever exists). The Lua side lives in node/lua_engine.*; this file is the
// host a script's redis.call reaches. Every redis.call goes through the same
// dispatcher as a client's command (command_state::run: stats, WATCH,
// tracking invalidations), after the checks Redis 7.0 makes for scripts:
// known command and arity, no `noscript` command, the caller's ACL (denials
// go to ACL LOG with context "lua"), no write from EVAL_RO or a no-writes
// script, OOM/NOREPLICAS before the first write. Scripts are atomic: they run
// to completion on the serving thread. One that runs longer than
// busy-reply-threshold lets other connections in through
// command_state::busy_pump (node/resp_server.cpp), which answers them -BUSY
// and serves SCRIPT KILL, MULTI, DISCARD ... (allow_busy commands).
// Keys: the keys a script declares (numkeys) are looked up in L3 before it
// runs, like any command's keys; a key the script did not declare is seen as
// memory holds it (Redis Cluster requires declared keys too).
#include "node/command_util.hpp"
#include "node/commands.hpp"
#include "node/lua_engine.hpp"
#include "node/resp_parser.hpp"
#include "node/security.hpp"

#include <iostream>
#include <iterator>

namespace kura::node {

/// The engine and the script that runs now (command_state::scripts).
struct script_state {
  lua_engine engine;
  bool running = false;
  uint64_t caller = 0;    ///< session id of the client whose script runs
  bool read_only = false; ///< EVAL_RO, EVALSHA_RO or a no-writes script
  bool allow_oom = false;
  bool wrote = false;     ///< a write command ran (SCRIPT KILL refuses then)
  bool killed = false;    ///< SCRIPT KILL asked
  bool timed_out = false; ///< past busy-reply-threshold
  bool read_called = false;
  uint64_t start_ns = 0;
};

namespace {

/// Publishes the engine's memory and cache size (INFO, the maxmemory check).
void note_memory(command_context& c) {
  auto& e = c.state.scripts->engine;
  c.state.lua_vm_bytes = e.memory();
  c.state.script_cache_bytes = e.cache_bytes();
  c.state.cached_scripts = e.scripts();
}

script_state& scripts_of(command_context& c) {
  if (!c.state.scripts) {
    c.state.scripts = std::make_shared<script_state>();
    note_memory(c);
  }
  return *c.state.scripts;
}

constexpr std::string_view err_busy =
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";

class script_host final : public lua_host {
public:
  script_host(command_context& c, script_state& st) : c_(c), st_(st) {}

  std::string call(const std::vector<std::string_view>& args, int resp,
                   out_buffer& reply) override {
    auto& reg = c_.registry;
    if (reg.find(args[0]) < 0)
      return "ERR Unknown Redis command called from script";
    int id = reg.resolve(args);
    auto& sp = reg.spec(id);
    if (!arity_ok(sp.arity, args.size()))
      return "ERR Wrong number of args calling Redis command from script";
    if (sp.flags & cmd_flag::noscript)
      return "ERR This Redis command is not allowed from script";
    session& s = c_.sess;
    out_buffer denied;
    if (!permit(*c_.state.security, reg, id, args, s, denied, c_.ks.clock())) {
      std::string m(denied.begin(), denied.end());
      if (m.find("run the") != std::string::npos)
        return "ERR The user executing the script can't run this command or subcommand";
      if (m.find("keys") != std::string::npos)
        return "ERR The user executing the script can't access at least one of the keys "
               "mentioned in the command arguments";
      if (m.find("channel") != std::string::npos)
        return "ERR The user executing the script can't publish to the channel mentioned in "
               "the command";
      while (!m.empty() && (m.back() == '\n' || m.back() == '\r'))
        m.pop_back();
      return m.empty() ? std::string("ERR refused") : m.substr(1);
    }
    if (st_.read_only && (sp.flags & (cmd_flag::write | cmd_flag::may_replicate)))
      return "ERR Write commands are not allowed from read-only scripts.";
    if ((sp.flags & cmd_flag::write) && !st_.wrote && c_.state.refusal) {
      uint32_t flags = sp.flags & ~(st_.allow_oom ? uint32_t{cmd_flag::denyoom} : 0u);
      if (const char* why = c_.state.refusal(flags))
        return why;
    }
    if (sp.flags & cmd_flag::write)
      st_.wrote = true;
    if (sp.flags & cmd_flag::readonly)
      st_.read_called = true;
    int resp_before = s.resp;
    s.resp = resp;
    try {
      c_.state.run(args, s, reply);
    } catch (...) {
      s.resp = resp_before;
      throw;
    }
    s.resp = resp_before;
    return {};
  }

  int acl_check(const std::vector<std::string_view>& args) override {
    auto& reg = c_.registry;
    if (reg.find(args[0]) < 0)
      return -1;
    int id = reg.resolve(args);
    if (!arity_ok(reg.spec(id).arity, args.size()))
      return -1;
    // a dry run: the check without ACL LOG entries or audit lines
    return allowed(*c_.state.security, reg, id, args, c_.sess) ? 1 : 0;
  }

  bool interrupt() override {
    uint64_t limit_ms = c_.facts.busy_reply_threshold_ms;
    if (!st_.timed_out) {
      uint64_t now = c_.ks.clock().mono_ns();
      if (limit_ms == 0 || now - st_.start_ns < limit_ms * 1'000'000ull)
        return false;
      st_.timed_out = true;
      std::cerr << "kura-node: slow script detected: still in execution after " << limit_ms
                << " milliseconds; SCRIPT KILL stops it (script " << st_.engine.funcname << ")"
                << std::endl;
    }
    if (c_.state.busy_pump)
      c_.state.busy_pump(st_.caller);
    return st_.killed || c_.state.stop_script;
  }

  void log(int level, std::string_view msg) override {
    if (level >= 2) // notice and warning, as Redis's default verbosity
      std::cerr << "kura-node: script: " << msg << std::endl;
  }

private:
  command_context& c_;
  script_state& st_;
};

/// numkeys of EVAL/FCALL (argument 2), or false after the error reply.
bool numkeys_of(const command_args& a, command_context& c, size_t& n) {
  int64_t v = 0;
  if (!parse_int64(a[2], v))
    return put_error(c.out, "ERR value is not an integer or out of range"), false;
  if (v > static_cast<int64_t>(a.size()) - 3)
    return put_error(c.out, "ERR Number of keys can't be greater than number of args"), false;
  if (v < 0)
    return put_error(c.out, "ERR Number of keys can't be negative"), false;
  n = static_cast<size_t>(v);
  return true;
}

void eval_generic(const command_args& a, command_context& c, bool by_sha, bool ro) {
  size_t numkeys = 0;
  if (!numkeys_of(a, c, numkeys))
    return;
  auto& st = scripts_of(c);
  std::string sha;
  if (by_sha) {
    if (!st.engine.find(a[1]))
      return put_error(c.out, "NOSCRIPT No matching script. Please use EVAL.");
    sha.assign(a[1]);
  } else {
    std::string err;
    sha = st.engine.load(a[1], err);
    if (sha.empty())
      return put_error(c.out, "ERR " + err);
    note_memory(c);
  }
  uint32_t flags = st.engine.find(sha)->flags;
  if (!(flags & script_flag::eval_compat)) {
    if ((flags & script_flag::no_cluster) && c.facts.cluster_enabled)
      return put_error(c.out, "ERR Can not run script on cluster, 'no-cluster' flag is set.");
    if (!(flags & script_flag::no_writes)) {
      if (ro)
        return put_error(c.out, "ERR Can not execute a script with write flag using *_ro command.");
      if (c.state.refusal)
        if (const char* why = c.state.refusal(cmd_flag::write);
            why && std::string_view(why).substr(0, 10) == "NOREPLICAS")
          return put_error(c.out, why);
    }
    if (!(flags & (script_flag::allow_oom | script_flag::no_writes)) && c.state.refusal &&
        c.state.refusal(cmd_flag::denyoom))
      return put_error(c.out, "OOM allow-oom flag is not set on the script, can not run it when "
                              "used memory > 'maxmemory'");
  }
  std::vector<std::string_view> keys(a.begin() + 3, a.begin() + 3 + static_cast<long>(numkeys));
  std::vector<std::string_view> argv(a.begin() + 3 + static_cast<long>(numkeys), a.end());
  st.running = true;
  st.caller = c.sess.id;
  st.read_only = ro || (!(flags & script_flag::eval_compat) && (flags & script_flag::no_writes));
  st.allow_oom = !(flags & script_flag::eval_compat) && (flags & script_flag::allow_oom);
  st.wrote = st.killed = st.timed_out = st.read_called = false;
  st.start_ns = c.ks.clock().mono_ns();
  // the script's commands run with the caller's user and session, but
  // always answer it (CLIENT REPLY OFF applies to EVAL's own reply)
  auto& s = c.sess;
  auto reply_mode = s.reply;
  bool skip = s.skip_this;
  int last_cmd = s.last_cmd;
  s.reply = session::reply_on;
  s.skip_this = false;
  s.in_script = true;
  script_host host(c, st);
  auto restore = [&] {
    s.in_script = false;
    s.reply = reply_mode;
    s.skip_this = skip;
    s.last_cmd = last_cmd;
    st.running = false;
  };
  try {
    st.engine.run(sha, keys, argv, s.resp, host, c.out);
  } catch (...) {
    restore();
    throw;
  }
  restore();
  note_memory(c);
  // tracking: a script that read records the keys it declared (Redis 7.0)
  if (st.read_called && s.tracking && c.state.hub)
    for (auto k : keys) {
      uint64_t expiry = 0;
      bool present = c.ks.read(k, [&](std::string_view, uint64_t e) { expiry = e; });
      c.state.hub->key_read(s, k, present, expiry);
    }
}

void cmd_eval(const command_args& a, command_context& c) {
  eval_generic(a, c, false, false);
}
void cmd_eval_ro(const command_args& a, command_context& c) {
  eval_generic(a, c, false, true);
}
void cmd_evalsha(const command_args& a, command_context& c) {
  eval_generic(a, c, true, false);
}
void cmd_evalsha_ro(const command_args& a, command_context& c) {
  eval_generic(a, c, true, true);
}

void cmd_script_load(const command_args& a, command_context& c) {
  std::string err;
  auto sha = scripts_of(c).engine.load(a[2], err);
  if (sha.empty())
    return put_error(c.out, "ERR " + err);
  note_memory(c);
  put_bulk(c.out, sha);
}

void cmd_script_exists(const command_args& a, command_context& c) {
  auto& st = scripts_of(c);
  put_array_header(c.out, a.size() - 2);
  for (size_t i = 2; i < a.size(); ++i)
    put_int(c.out, st.engine.find(a[i]) ? 1 : 0);
}

void cmd_script_flush(const command_args& a, command_context& c) {
  if (a.size() > 3 || (a.size() == 3 && !ieq(a[2], "sync") && !ieq(a[2], "async")))
    return put_error(c.out, "ERR SCRIPT FLUSH only support SYNC|ASYNC option");
  scripts_of(c).engine.flush(); // ASYNC too: a fresh state is cheap
  note_memory(c);
  put_ok(c.out);
}

void cmd_script_kill(const command_args&, command_context& c) {
  auto& st = scripts_of(c);
  if (!st.running)
    return put_error(c.out, "NOTBUSY No scripts in execution right now.");
  if (st.wrote)
    return put_error(c.out,
                     "UNKILLABLE Sorry the script already executed write commands against the "
                     "dataset. You can either wait the script termination or kill the server in "
                     "a hard way using the SHUTDOWN NOSAVE command.");
  st.killed = true;
  put_ok(c.out);
}

void cmd_function_kill(const command_args&, command_context& c) {
  auto& st = scripts_of(c);
  if (!st.running)
    return put_error(c.out, "NOTBUSY No scripts in execution right now.");
  put_error(c.out, err_busy); // an EVAL runs: only SCRIPT KILL stops it
}

void cmd_fcall(const command_args& a, command_context& c) {
  size_t numkeys = 0;
  if (!numkeys_of(a, c, numkeys))
    return;
  put_error(c.out, "ERR Function not found"); // kura loads no functions
}

void cmd_script_help(const command_args&, command_context& c) {
  static const char* const lines[] = {
      "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
      "EXISTS <sha1> [<sha1> ...]",
      "    Return information about the existence of the scripts in the script cache.",
      "FLUSH [ASYNC|SYNC]",
      "    Flush the Lua scripts cache.",
      "KILL",
      "    Kill the currently executing Lua script.",
      "LOAD <script>",
      "    Load a script into the scripts cache without executing it.",
      "HELP",
      "    Print this help."};
  put_array_header(c.out, std::size(lines));
  for (auto* l : lines)
    put_status(c.out, l);
}

/// L3: the declared keys memory does not hold.
void plan_script_keys(const command_args& a, const command_spec& sp, const command_state&,
                      keyspace& ks, fetch_plan& out) {
  for (auto& k : sp.key_specs)
    k.for_each(a, [&](size_t i) {
      if (!ks.known(a[i]) && ks.maybe_in_l3(a[i]))
        out.keys.emplace_back(a[i]);
    });
  if (!out.keys.empty())
    out.kind = fetch_plan::lookup;
}

} // namespace

void register_script_commands(command_registry& r) {
  const char* keys_rw = "We cannot tell how the keys will be used so we assume the worst, RW and "
                        "UPDATE";
  const char* keys_ro = "We cannot tell how the keys will be used so we assume the worst, RO and "
                        "ACCESS";
  r.add("eval", -3, "noscript skip_monitor may_replicate no_mandatory_keys stale movablekeys",
        cmd_eval)
      .key_spec_keynum(2, 0, 1, 1, "RW access update", keys_rw)
      .acl("@slow @scripting")
      .planner(plan_script_keys)
      .doc("Execute a Lua script server side", "2.6.0", "scripting",
           "Depends on the script that is executed.");
  r.add("evalsha", -3, "noscript skip_monitor may_replicate no_mandatory_keys stale movablekeys",
        cmd_evalsha)
      .key_spec_keynum(2, 0, 1, 1, "RW access update")
      .acl("@slow @scripting")
      .planner(plan_script_keys)
      .doc("Execute a Lua script server side", "2.6.0", "scripting",
           "Depends on the script that is executed.");
  r.add("eval_ro", -3, "readonly noscript skip_monitor no_mandatory_keys stale movablekeys",
        cmd_eval_ro)
      .key_spec_keynum(2, 0, 1, 1, "RO access", keys_ro)
      .acl("@read @slow @scripting")
      .planner(plan_script_keys)
      .doc("Execute a read-only Lua script server side", "7.0.0", "scripting",
           "Depends on the script that is executed.");
  r.add("evalsha_ro", -3, "readonly noscript skip_monitor no_mandatory_keys stale movablekeys",
        cmd_evalsha_ro)
      .key_spec_keynum(2, 0, 1, 1, "RO access")
      .acl("@read @slow @scripting")
      .planner(plan_script_keys)
      .doc("Execute a read-only Lua script server side", "7.0.0", "scripting",
           "Depends on the script that is executed.");
  r.add("fcall", -3, "noscript skip_monitor may_replicate no_mandatory_keys stale movablekeys",
        cmd_fcall)
      .key_spec_keynum(2, 0, 1, 1, "RW access update", keys_rw)
      .acl("@slow @scripting")
      .doc("Invoke a function", "7.0.0", "scripting", "Depends on the function that is executed.");
  r.add("fcall_ro", -3, "readonly noscript skip_monitor no_mandatory_keys stale movablekeys",
        cmd_fcall)
      .key_spec_keynum(2, 0, 1, 1, "RO access", keys_ro)
      .acl("@read @slow @scripting")
      .doc("Invoke a read-only function", "7.0.0", "scripting",
           "Depends on the function that is executed.");

  r.add("script", -2, "", nullptr)
      .acl("@slow")
      .doc("A container for Lua scripts management commands", "2.6.0", "scripting",
           "Depends on subcommand.");
  r.add_sub("script", "load", 3, "noscript stale", cmd_script_load)
      .acl("@slow @scripting")
      .tips("request_policy:all_nodes response_policy:all_succeeded")
      .doc("Load the specified Lua script into the script cache.", "2.6.0", "scripting",
           "O(N) with N being the length in bytes of the script body.");
  r.add_sub("script", "exists", -3, "noscript", cmd_script_exists)
      .acl("@slow @scripting")
      .tips("request_policy:all_shards response_policy:agg_logical_and")
      .doc("Check existence of scripts in the script cache.", "2.6.0", "scripting",
           "O(N) with N being the number of scripts to check (so checking a single script is an "
           "O(1) operation).");
  r.add_sub("script", "flush", -2, "noscript", cmd_script_flush)
      .acl("@slow @scripting")
      .tips("request_policy:all_nodes response_policy:all_succeeded")
      .doc("Remove all the scripts from the script cache.", "2.6.0", "scripting",
           "O(N) with N being the number of scripts in cache");
  r.add_sub("script", "kill", 2, "noscript allow_busy", cmd_script_kill)
      .acl("@slow @scripting")
      .tips("request_policy:all_shards response_policy:one_succeeded")
      .doc("Kill the script currently in execution.", "2.6.0", "scripting", "O(1)");
  r.add_sub("script", "help", 2, "loading stale", cmd_script_help)
      .acl("@slow @scripting")
      .doc("Show helpful text about the different subcommands", "5.0.0", "scripting", "O(1)");
  r.add_sub("function", "kill", 2, "noscript allow_busy", cmd_function_kill)
      .acl("@slow @scripting")
      .tips("request_policy:all_shards response_policy:one_succeeded")
      .doc("Kill the function currently in execution.", "7.0.0", "scripting", "O(1)");
}

std::optional<std::string> command_table::script_body(std::string_view sha) const {
  if (!state_.scripts)
    return std::nullopt;
  auto* sc = state_.scripts->engine.find(sha);
  if (!sc)
    return std::nullopt;
  return sc->body;
}

} // namespace kura::node
