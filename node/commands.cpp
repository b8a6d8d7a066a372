#include "node/commands.hpp"

#include "node/command_util.hpp"
#include "node/security.hpp"

#include <algorithm>

#include <random>

namespace kura::node {

// -- families ------------------------------------------------------------------
// One file per family registers its commands; adding a family is one new
// node/cmd_*.cpp (CMake picks it up) and one line in each list below.

void register_server_commands(command_registry& r);   // node/cmd_server.cpp
void register_string_commands(command_registry& r);   // node/cmd_strings.cpp
void register_keyspace_commands(command_registry& r); // node/cmd_keyspace.cpp
void register_kura_commands(command_registry& r);     // node/cmd_kura.cpp
void register_erase_commands(command_registry& r);    // node/cmd_erase.cpp
void register_subject_commands(command_registry& r);  // node/cmd_subject.cpp
void register_cluster_commands(command_registry& r);  // node/cmd_cluster.cpp
void register_hash_commands(command_registry& r);     // node/cmd_hashes.cpp
void register_multi_commands(command_registry& r);    // node/cmd_multi.cpp
void register_bit_commands(command_registry& r);      // node/cmd_bits.cpp
void register_acl_commands(command_registry& r);      // node/cmd_acl.cpp
void register_client_commands(command_registry& r);   // node/cmd_clients.cpp
void register_dump_commands(command_registry& r);     // node/cmd_dump.cpp
void register_script_commands(command_registry& r);   // node/cmd_script.cpp

command_table::command_table(keyspace& ks, node_facts& facts) : ks_(ks), facts_(facts) {
  register_server_commands(reg_);
  register_string_commands(reg_);
  register_keyspace_commands(reg_);
  register_kura_commands(reg_);
  register_erase_commands(reg_);
  register_subject_commands(reg_);
  register_cluster_commands(reg_);
  register_acl_commands(reg_);
  register_hash_commands(reg_);
  register_multi_commands(reg_);
  register_bit_commands(reg_);
  register_client_commands(reg_);
  register_dump_commands(reg_);
  register_script_commands(reg_);
  state_.hub = &hub_;
  caching_id_ = reg_.find("client|caching");
  if (facts_.run_id.empty()) {
    std::random_device rd;
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 40; ++i)
      facts_.run_id += hex[rd() % 16];
  }
  id_multi_ = reg_.find("multi");
  id_exec_ = reg_.find("exec");
  id_discard_ = reg_.find("discard");
  id_watch_ = reg_.find("watch");
  id_quit_ = reg_.find("quit");
  id_flushall_ = reg_.find("flushall");
  id_flushdb_ = reg_.find("flushdb");
  state_.run = [this](const command_args& a, session& s, out_buffer& out) {
    int id = a.empty() ? -1 : reg_.find(a[0]);
    if (id >= 0)
      run(a, id, s, out, nullptr);
  };
  state_.refusal = [this](uint32_t flags) { return refusal(flags); };
  // after every family: the ACL catalog mirrors the registry's ids
  sec_ = std::make_unique<security_state>(reg_);
  state_.security = sec_.get();
}

command_table::~command_table() = default;

std::string command_table::configure_security(const security_config& cfg) {
  return sec_->configure(cfg);
}

void command_table::reset_stats() {
  reg_.reset_stats();
  state_.reset_stats();
}

// -- planning ----------------------------------------------------------------

void command_table::plan(const command_args& a, fetch_plan& out) {
  static const session none;
  plan(a, none, out);
}

void command_table::plan(const command_args& a, const session& s, fetch_plan& out) {
  plan(a, s, out, a.empty() ? -1 : reg_.find(a[0]));
}

void command_table::plan(const command_args& a, const session& s, fetch_plan& out, int top) {
  out.clear();
  if (!ks_.has_l3() || a.empty())
    return;
  int id = reg_.resolve(a, top);
  if (id < 0)
    return;
  if (s.tx.active && !tx_control(top))
    return; // only queued now; EXEC looks its keys up
  const command_spec& sp = reg_.spec(id);
  if (!arity_ok(sp.arity, a.size()))
    return; // runs at once and answers with the arity error
  if (!allowed(*sec_, reg_, id, a, s))
    return; // runs at once and is refused (NOAUTH, NOPERM): no L3 lookup first
  if (id == id_exec_ && s.tx.active) {
    // every key the queued commands read, and the watched keys; a listing
    // (KEYS, SCAN, DBSIZE, RANDOMKEY) inside MULTI sees memory only
    fetch_plan one;
    std::vector<std::string_view> args;
    for (auto& q : s.tx.queued) {
      args.assign(q.begin(), q.end());
      int qid = reg_.resolve(args);
      if (qid < 0 || !allowed(*sec_, reg_, qid, args, s))
        continue; // EXEC refuses it without looking its keys up
      auto& qs = reg_.spec(qid);
      one.clear();
      if (qs.planner)
        qs.planner(args, qs, state_, ks_, one);
      else if (qs.first_key != 0 && !qs.blind)
        plan_key_lookup(args, qs, ks_, one);
      if (one.kind == fetch_plan::lookup)
        out.keys.insert(out.keys.end(), one.keys.begin(), one.keys.end());
    }
    for (auto& w : s.tx.watched)
      if (!ks_.known(w.key) && ks_.maybe_in_l3(w.key))
        out.keys.push_back(w.key);
    std::sort(out.keys.begin(), out.keys.end());
    out.keys.erase(std::unique(out.keys.begin(), out.keys.end()), out.keys.end());
    if (!out.keys.empty())
      out.kind = fetch_plan::lookup;
    return;
  }
  if (sp.planner)
    return sp.planner(a, sp, state_, ks_, out);
  if (sp.first_key == 0 || sp.blind)
    return;
  plan_key_lookup(a, sp, ks_, out);
}

// -- execution -----------------------------------------------------------------

void command_table::execute(const command_args& a, session& s, out_buffer& out, const listing* lst,
                            int id) {
  if (a.empty())
    return;
  if (id < 0) {
    if (s.tx.active)
      s.tx.aborted = true; // EXEC answers EXECABORT
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
  if (s.tx.active && !tx_control(id))
    return queue(a, id, s, out);
  if (facts_.maxmemory != 0 || facts_.min_replicas_to_write != 0) {
    // OOM / NOREPLICAS, as Redis's processCommand: EXEC answers for the
    // flags of its queued commands
    uint32_t flags = 0;
    bool exec = id == id_exec_ && s.tx.active && !s.tx.aborted;
    if (exec) {
      std::vector<std::string_view> args;
      for (auto& q : s.tx.queued) {
        args.assign(q.begin(), q.end());
        int qid = reg_.resolve(args);
        if (qid >= 0)
          flags |= reg_.spec(qid).flags;
      }
    } else if (int rid = reg_.resolve(a, id); rid >= 0) {
      flags = reg_.spec(rid).flags;
    }
    if (const char* why = refusal(flags)) {
      if (!exec)
        return put_error(out, why);
      s.tx.discard();
      s.tx.unwatch();
      return put_error(out, std::string("EXECABORT Transaction discarded because of: ") + why);
    }
  }
  // a whole command's (EXEC's: transaction's) invalidations go after its reply
  hub_.begin_command(s.id);
  try {
    run(a, id, s, out, lst);
  } catch (...) {
    hub_.end_command();
    throw;
  }
  hub_.end_command();
}

void command_table::execute_busy(const command_args& a, session& s, out_buffer& out) {
  if (a.empty())
    return;
  int id = reg_.find(a[0]);
  if (id < 0)
    return execute(a, s, out); // the unknown-command error (no script state touched)
  int rid = reg_.resolve(a);
  if (reg_.spec(rid).flags & cmd_flag::allow_busy) {
    // no hub begin/end_command: the script's caller holds the hub meanwhile
    if (s.tx.active && !tx_control(id))
      return queue(a, id, s, out);
    return run(a, id, s, out, nullptr);
  }
  static constexpr std::string_view busy =
      "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
  if (s.tx.active) {
    if (id == id_exec_) {
      s.tx.discard();
      s.tx.unwatch();
      return put_error(out, "EXECABORT Transaction discarded because of: " + std::string(busy));
    }
    s.tx.aborted = true;
  }
  put_error(out, busy);
}

namespace {

/// The keys of `a` share the transaction's slot (cluster hook); false after
/// the CROSSSLOT reply.
bool same_slot(const command_spec& sp, const command_args& a, session& s, const command_state& st,
               out_buffer& out) {
  if (!st.slot_of)
    return true;
  bool ok = true;
  for_each_key_index(sp, a.size(), [&](size_t i) {
    int slot = st.slot_of(a[i]);
    if (s.tx.slot < 0)
      s.tx.slot = slot;
    else if (slot != s.tx.slot)
      ok = false;
  });
  if (!ok)
    put_error(out, "CROSSSLOT Keys in request don't hash to the same slot");
  return ok;
}

} // namespace

void command_table::queue(const command_args& a, int id, session& s, out_buffer& out) {
  const command_spec* sp = &reg_.spec(id);
  if (!sp->subcommands.empty() && a.size() >= 2) {
    int sub = reg_.find_sub(id, a[1]);
    if (sub < 0) {
      s.tx.aborted = true;
      return unknown_subcommand(out, sp->name, a[1]);
    }
    id = sub;
    sp = &reg_.spec(sub);
  }
  if (!arity_ok(sp->arity, a.size()) || !sp->handler) {
    s.tx.aborted = true;
    return wrong_args(out, sp->name);
  }
  // ACL at queue time, as Redis: a denied command aborts the transaction
  if (!permit(*sec_, reg_, id, a, s, out, ks_.clock())) {
    s.tx.aborted = true;
    return;
  }
  if (sp->flags & cmd_flag::no_multi) {
    s.tx.aborted = true;
    return put_error(out, "ERR Command not allowed inside a transaction");
  }
  if (const char* why = refusal(sp->flags)) {
    s.tx.aborted = true;
    return put_error(out, why);
  }
  if (auto why = queue_check_ ? queue_check_(a) : std::string(); !why.empty()) {
    s.tx.aborted = true;
    return put_error(out, why);
  }
  if (!same_slot(*sp, a, s, state_, out)) {
    s.tx.aborted = true;
    return;
  }
  s.tx.queued.emplace_back(a.begin(), a.end());
  put_status(out, "QUEUED");
}

const char* command_table::refusal(uint32_t flags) const {
  if ((flags & cmd_flag::denyoom) && facts_.maxmemory != 0 &&
      facts_.maxmemory < ks_.config().memory_bytes &&
      ks_.l1_stats().bytes + ks_.l2_stats().bytes + state_.lua_vm_bytes +
              state_.script_cache_bytes >
          facts_.maxmemory)
    return "OOM command not allowed when used memory > 'maxmemory'.";
  // kura has no Redis-protocol replicas: every good-replica count is 0
  if ((flags & cmd_flag::write) && facts_.min_replicas_to_write != 0 &&
      facts_.min_replicas_max_lag != 0)
    return "NOREPLICAS Not enough good replicas to write.";
  return nullptr;
}

void command_table::run(const command_args& a, int id, session& s, out_buffer& out,
                        const listing* lst) {
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
  } else if (!permit(*sec_, reg_, id, a, s, out, ks_.clock())) {
    // permit wrote the denial
  } else if (id == id_watch_ && !same_slot(*sp, a, s, state_, out)) {
    // CROSSSLOT written
  } else if (s.resp == 2 && s.subscribed() && sp->name.find("subscribe") == std::string::npos &&
             sp->name != "ping" && sp->name != "quit" && sp->name != "reset") {
    std::string m = "ERR Can't execute '";
    m += sp->name;
    m += "': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in "
         "this context";
    put_error(out, m);
  } else {
    if (!state_.watches.empty()) {
      // WATCH: writes touch the keys they name; FLUSHALL the live watched ones
      if (id == id_flushall_ || id == id_flushdb_)
        state_.watches.for_each([&](const std::string& k) {
          if (ks_.exists(k))
            state_.watches.touch(k);
        });
      else if (sp->flags & cmd_flag::write)
        for_each_key_index(*sp, a.size(), [&](size_t i) { state_.watches.touch(a[i]); });
    }
    command_context c{ks_, facts_, s, out, lst, state_, reg_};
    auto t0 = ks_.clock().mono_ns();
    s.last_ns = t0;
    s.last_cmd = id;
    // One wall-clock reading serves the commands of the next 100 µs (a
    // pipeline): keyspace::now_ms() returns it while the handler runs, so an
    // expiry is seen at most that late, far below its 1 ms resolution.
    if (t0 < pinned_mono_ || t0 - pinned_mono_ > pin_reuse_ns) {
      pinned_ms_ = ks_.clock().now_ms();
      pinned_mono_ = t0;
    }
    struct pin_guard {
      keyspace& ks;
      uint64_t was;
      ~pin_guard() { ks.pin_now(was); }
    } pin{ks_, ks_.pin_now(pinned_ms_)};
    // reads note the memory tier that answered them (the anomaly detector's
    // L1/L2 latency: keyspace::open_read_probe; nothing without the predictor)
    const bool probe = (sp->flags & cmd_flag::readonly) != 0;
    if (probe)
      ks_.open_read_probe();
    sp->handler(a, c);
    const uint64_t ns = ks_.clock().mono_ns() - t0;
    st.latency.record(ns);
    if (probe)
      ks_.close_read_probe(ns);
    if (sec_->audit && audited(reg_, id)) {
      std::string_view result = "ok";
      if (out.size() > before && out[before] == '-') {
        std::string_view o(out.data() + before + 1, out.size() - before - 1);
        result = o.substr(0, o.find('\r'));
      }
      sec_->audit_command("command", s, a, sp->parent >= 0 ? 2 : 1, result, ks_.clock().now_ms());
    }
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
  if (hub_.active() || id == id_flushall_ || id == id_flushdb_)
    after_command(a, *sp, id, s, failed);
}

/// Tracking: a successful write changes its keys (one entry point, the
/// hub's key_changed); a read of a tracking client records its keys.
void command_table::after_command(const command_args& a, const command_spec& sp, int id, session& s,
                                  bool failed) {
  if (failed)
    return;
  if (id == id_flushall_ || id == id_flushdb_) {
    hub_.flushed(s.id);
    return;
  }
  if (sp.flags & cmd_flag::write) {
    for_each_key_index(sp, a.size(), [&](size_t i) {
      hub_.key_changed(a[i], s.id);
      if (hub_.has_bcast()) { // BCAST hears of the expiry too
        bool found =
            ks_.read(a[i], [&](std::string_view, uint64_t exp) { hub_.key_written(a[i], exp); });
        // A SET PX 1 whose expiry passed before this look (a slow machine, a
        // MULTI that sleeps): its expiry is due now, and the timer sends it
        // as nobody's change (NOLOOP does not hide it), as Redis's lazy expiry
        if (!found &&
            (sp.name == "set" || sp.name == "setex" || sp.name == "psetex" || sp.name == "getex"))
          hub_.key_written(a[i], 1);
      }
    });
  } else if (s.tracking && !s.in_script && (sp.flags & cmd_flag::readonly)) {
    // (a script's reads record the keys the script declared: cmd_script.cpp)
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

resp3_shape resp3_shape_of(const std::vector<std::string_view>& a) {
  if (a.size() == 2 && ieq(a[0], "hgetall"))
    return resp3_shape::map;
  if (a.size() == 4 && ieq(a[0], "hrandfield") && ieq(a[3], "withvalues"))
    return resp3_shape::pairs;
  return resp3_shape::plain;
}

void resp3_routed(resp3_shape shape, out_buffer& out) {
  resp3_nulls(out, 0);
  if (shape == resp3_shape::plain || out.size() < 4 || out[0] != '*')
    return;
  bool hgetall = shape == resp3_shape::map;
  bool pairs = shape == resp3_shape::pairs;
  // the reply: *2n followed by 2n bulk strings (field, value, ...)
  size_t eol = 1;
  while (eol + 1 < out.size() && !(out[eol] == '\r' && out[eol + 1] == '\n'))
    ++eol;
  uint64_t n = 0;
  for (size_t i = 1; i < eol; ++i) {
    if (out[i] < '0' || out[i] > '9')
      return;
    n = n * 10 + static_cast<uint64_t>(out[i] - '0');
  }
  if (n % 2 != 0)
    return;
  out_buffer r;
  r.reserve(out.size() + (pairs ? 4 * n / 2 : 0));
  if (hgetall) {
    r.push_back('%');
  } else {
    r.push_back('*');
  }
  put_int_raw(r, static_cast<int64_t>(n / 2));
  put_raw(r, "\r\n");
  size_t p = eol + 2;
  for (uint64_t i = 0; i < n; ++i) { // copy each bulk, a pair header before a field
    if (p >= out.size() || out[p] != '$')
      return; // not the expected shape: leave it
    size_t e = p + 1;
    uint64_t len = 0;
    while (e < out.size() && out[e] >= '0' && out[e] <= '9')
      len = len * 10 + static_cast<uint64_t>(out[e++] - '0');
    size_t end = e + 2 + static_cast<size_t>(len) + 2;
    if (e + 1 >= out.size() || out[e] != '\r' || end > out.size())
      return;
    if (pairs && i % 2 == 0)
      put_raw(r, "*2\r\n");
    r.insert(r.end(), out.begin() + static_cast<long>(p), out.begin() + static_cast<long>(end));
    p = end;
  }
  if (p != out.size())
    return;
  out.swap(r);
}

} // namespace kura::node
