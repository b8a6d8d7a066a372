#include "node/commands.hpp"

#include "node/command_util.hpp"

#include <random>

namespace kura::node {

// -- families ------------------------------------------------------------------
// One file per family registers its commands; adding a family is one new
// node/cmd_*.cpp (CMake picks it up) and one line in each list below.

void register_server_commands(command_registry& r);   // node/cmd_server.cpp
void register_string_commands(command_registry& r);   // node/cmd_strings.cpp
void register_keyspace_commands(command_registry& r); // node/cmd_keyspace.cpp
void register_kura_commands(command_registry& r);     // node/cmd_kura.cpp
void register_client_commands(command_registry& r);   // node/cmd_clients.cpp

command_table::command_table(keyspace& ks, node_facts& facts) : ks_(ks), facts_(facts) {
  register_server_commands(reg_);
  register_string_commands(reg_);
  register_keyspace_commands(reg_);
  register_kura_commands(reg_);
  register_client_commands(reg_);
  state_.hub = &hub_;
  flushall_id_ = reg_.find("flushall");
  flushdb_id_ = reg_.find("flushdb");
  caching_id_ = reg_.find("client|caching");
  if (facts_.run_id.empty()) {
    std::random_device rd;
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 40; ++i)
      facts_.run_id += hex[rd() % 16];
  }
}

void command_table::reset_stats() {
  reg_.reset_stats();
  state_.reset_stats();
}

// -- planning ----------------------------------------------------------------

void command_table::plan(const command_args& a, fetch_plan& out) {
  out.clear();
  if (!ks_.has_l3() || a.empty())
    return;
  int id = reg_.resolve(a);
  if (id < 0)
    return;
  const command_spec& sp = reg_.spec(id);
  if (!arity_ok(sp.arity, a.size()))
    return; // runs at once and answers with the arity error
  if (sp.planner)
    return sp.planner(a, sp, state_, ks_, out);
  if (sp.first_key == 0 || sp.blind)
    return;
  plan_key_lookup(a, sp, ks_, out);
}

// -- execution -----------------------------------------------------------------

void command_table::execute(const command_args& a, session& s, out_buffer& out,
                            const listing* lst) {
  if (a.empty())
    return;
  int id = reg_.find(a[0]);
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
  ++state_.total_commands;
  const command_spec* sp = &reg_.spec(id);
  if (!sp->subcommands.empty() && a.size() >= 2) {
    int sub = reg_.find_sub(id, a[1]);
    if (sub < 0) {
      auto& st = reg_.stats()[static_cast<size_t>(id)];
      ++st.calls;
      ++st.errors;
      return unknown_subcommand(out, sp->name, a[1]);
    }
    id = sub;
    sp = &reg_.spec(id);
  }
  auto& st = reg_.stats()[static_cast<size_t>(id)];
  ++st.calls;
  size_t before = out.size();
  if (!arity_ok(sp->arity, a.size()) || !sp->handler) {
    wrong_args(out, sp->name);
  } else if (s.resp == 2 && s.subscriptions + s.psubscriptions > 0 &&
             sp->name.find("subscribe") == std::string::npos && sp->name != "ping" &&
             sp->name != "quit" && sp->name != "reset") {
    std::string m = "ERR Can't execute '";
    m += sp->name;
    m += "': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in "
         "this context";
    put_error(out, m);
  } else {
    command_context c{ks_, facts_, s, out, lst, state_, reg_};
    auto t0 = ks_.clock().mono_ns();
    s.last_ns = t0;
    s.last_cmd = id;
    sp->handler(a, c);
    st.latency.record(ks_.clock().mono_ns() - t0);
  }
  bool failed = out.size() > before && out[before] == '-';
  if (failed)
    ++st.errors;
  if (s.resp == 3)
    resp3_nulls(out, before);
  // CLIENT REPLY OFF|SKIP: the reply is dropped (pushes delivered to other
  // connections are not affected)
  if (s.reply != session::reply_on || s.skip_this) {
    if (s.reply == session::reply_skip) {
      s.reply = session::reply_on;
      s.skip_this = true; // this reply (CLIENT REPLY SKIP's) and the next one
    } else if (s.reply == session::reply_on) {
      s.skip_this = false;
    }
    out.resize(before);
  }
  if (hub_.active() || id == flushall_id_ || id == flushdb_id_)
    after_command(a, *sp, id, s, failed);
}

/// Tracking: a successful write changes its keys (one entry point, the
/// hub's key_changed); a read of a tracking client records its keys.
void command_table::after_command(const command_args& a, const command_spec& sp, int id, session& s,
                                  bool failed) {
  if (failed)
    return;
  if (id == flushall_id_ || id == flushdb_id_) {
    hub_.flushed(s.id);
    return;
  }
  if (sp.flags & cmd_flag::write) {
    for_each_key_index(sp, a.size(), [&](size_t i) { hub_.key_changed(a[i], s.id); });
  } else if (s.tracking && (sp.flags & cmd_flag::readonly)) {
    for_each_key_index(sp, a.size(), [&](size_t i) {
      uint64_t expiry = 0;
      bool present = ks_.read(a[i], [&](std::string_view, uint64_t e) { expiry = e; });
      hub_.key_read(s, a[i], present, expiry);
    });
  }
  if (id != caching_id_)
    s.caching_once = false;
}

// -- RESP3 ---------------------------------------------------------------------

void resp3_nulls(out_buffer& out, size_t from) {
  // Walk the frames; the payload of a bulk string is skipped, so "$-1" inside
  // a value is never touched. Most replies hold no null: copy only then.
  auto line_end = [&](size_t i) {
    while (i + 1 < out.size() && !(out[i] == '\r' && out[i + 1] == '\n'))
      ++i;
    return i;
  };
  std::vector<std::pair<size_t, size_t>> nulls; // [start, end) of "$-1\r\n" / "*-1\r\n"
  size_t i = from;
  while (i < out.size()) {
    char t = out[i];
    size_t e = line_end(i);
    if ((t == '$' || t == '*') && e == i + 3 && out[i + 1] == '-' && out[i + 2] == '1') {
      nulls.emplace_back(i, e + 2);
    } else if (t == '$' || t == '=' || t == '!') {
      uint64_t n = 0;
      for (size_t j = i + 1; j < e; ++j)
        n = n * 10 + static_cast<uint64_t>(out[j] - '0');
      e += static_cast<size_t>(n) + 2; // the payload and its CRLF
    }
    i = e + 2;
  }
  if (nulls.empty())
    return;
  out_buffer r(out.begin(), out.begin() + static_cast<long>(from));
  size_t pos = from;
  for (auto [b, e] : nulls) {
    r.insert(r.end(), out.begin() + static_cast<long>(pos), out.begin() + static_cast<long>(b));
    put_raw(r, "_\r\n");
    pos = e;
  }
  r.insert(r.end(), out.begin() + static_cast<long>(pos), out.end());
  out.swap(r);
}

} // namespace kura::node
