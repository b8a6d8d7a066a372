#include "node/cluster_routing.hpp"

#include "actors/keyspace.hpp"
#include "node/cluster_exec.hpp"
#include "node/cluster_faces.hpp"
#include "node/command_util.hpp"
#include "node/resp_parser.hpp"
#include "tiers/clock.hpp"
#include "tiers/slot.hpp"

#include <algorithm>
#include <charconv>
#include <deque>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>

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
  void done_one(size_t i, client_result& r) {
    results[i] = std::move(r);
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

bool behind_gate(cluster_core& c, const std::vector<std::string>& keys,
                 std::function<void(std::function<void()>)> run_then);
bool gates_idle(const cluster_core& c);
std::vector<uint16_t> read_started(cluster_core& c, const std::vector<std::string>& keys);
void read_finished(cluster_core& c, const std::vector<uint16_t>& slots);
void drain_order(cluster_core& c);
bool behind_forwarded(cluster_core& c, const std::vector<std::string>& keys,
                      std::function<void()> run);
std::function<void(out_buffer&&)> forwarding(cluster_core& c, uint16_t slot,
                                             const std::vector<gossip::node_id>& cands,
                                             std::function<void(out_buffer&&)> done);

/// The error of the first read in `rs` that no replica could answer
/// (CLUSTERDOWN: none answered in time; TRYAGAIN: none could vouch that the
/// key is absent while the ring moves), never nil; nullopt when all were.
std::optional<out_buffer> read_error(const std::vector<client_result>& rs) {
  for (auto& r : rs)
    if (!r.ok)
      return error_reply(actors::read_failed(r.failure));
  return std::nullopt;
}

/// Reads every key of `keys`; `then(results)` in key order.
void read_all_now(cluster_core& c, std::vector<std::string> keys,
                  std::function<void(std::vector<client_result>&)> then) {
  auto fo = std::make_shared<fan_out>();
  fo->results.resize(keys.size());
  fo->finish = std::move(then);
  fo->pending = keys.size();
  for (size_t i = 0; i < keys.size(); ++i)
    c.read(keys[i], [fo, i](client_result& r) { fo->done_one(i, r); });
  fo->issued = true;
  fo->maybe_finish();
}

void read_all_gated(cluster_core& c, std::vector<std::string> keys,
                    std::function<void(std::vector<client_result>&)> then);

/// read_all_gated, after the commands of the keys' slots this node forwarded
/// before (read-your-writes, `forwarding` below); read_all_gated:
/// read_all_now, after the read-modify-write commands of the keys' slot
/// that wait here (owner_gate below): a pipelined GET after an INCR or EXEC
/// that waits for its keys' newest versions reads what it wrote.
void read_all(cluster_core& c, std::vector<std::string> keys,
              std::function<void(std::vector<client_result>&)> then) {
  if (auto slots = read_started(c, keys); !slots.empty()) {
    auto* cp = &c;
    then = [cp, slots = std::move(slots), then = std::move(then)](std::vector<client_result>& rs) {
      then(rs);
      read_finished(*cp, slots);
    };
  }
  if (gates_idle(c)) // the common case: nothing to wait for, no closures built
    return read_all_now(c, std::move(keys), std::move(then));
  auto* cp = &c;
  if (behind_forwarded(c, keys, [cp, keys, then] { read_all_gated(*cp, keys, then); }))
    return;
  read_all_gated(c, std::move(keys), std::move(then));
}

void read_all_gated(cluster_core& c, std::vector<std::string> keys,
                    std::function<void(std::vector<client_result>&)> then) {
  auto* cp = &c;
  auto run = [cp, keys, then](std::function<void()> done) {
    read_all_now(*cp, keys, [then, done](std::vector<client_result>& rs) {
      then(rs);
      done(); // the next command of the slot runs after this read
    });
  };
  if (!behind_gate(c, keys, run))
    read_all_now(c, std::move(keys), std::move(then));
}

struct kv_write {
  std::string key, value;
  uint64_t expiry_ms = 0;
  bool tombstone = false;
  uint8_t flags = 0; ///< entry_flags::hash for a hash
};

/// `at_ms`: the wall time the versions are minted at (0: the clock's now;
/// cluster_core::write).
void write_all(cluster_core& c, std::vector<kv_write> ws,
               std::function<void(std::vector<client_result>&)> then, uint64_t at_ms = 0) {
  auto fo = std::make_shared<fan_out>();
  fo->results.resize(ws.size());
  fo->finish = std::move(then);
  fo->pending = ws.size();
  for (size_t i = 0; i < ws.size(); ++i)
    c.write(
        ws[i].key, ws[i].value, ws[i].expiry_ms, ws[i].tombstone,
        [fo, i](client_result& r) { fo->done_one(i, r); }, ws[i].flags, at_ms);
  fo->issued = true;
  fo->maybe_finish();
}

/// The error of the first value in `ws` this node's store would refuse
/// (cluster_settings::admit: larger than L3's whole budget), as
/// `-ERR out_of_space: ...` as on a lone node; nullopt when all fit. Each
/// replica's store checks the same at apply time, but there the writer has
/// its acknowledgement already: the value was acknowledged and then held
/// only in memory (lost on a restart; session 20).
std::string err_str(std::string_view m);

std::optional<std::string> refused_value(const cluster_core& c, std::string_view key,
                                         size_t bytes) {
  if (auto& admit = c.settings().admit)
    if (auto st = admit(key, bytes); !st.ok())
      return err_str("ERR " + st.message());
  return std::nullopt;
}

std::optional<std::string> refused_value(const cluster_core& c, const std::vector<kv_write>& ws) {
  for (auto& w : ws)
    if (!w.tombstone)
      if (auto why = refused_value(c, w.key, w.value.size()))
        return why;
  return std::nullopt;
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
  if (auto why = refused_value(c, ws))
    return done(out_buffer(why->begin(), why->end()));
  write_all(c, std::move(ws), [done](std::vector<client_result>& rs) {
    auto o = fresh_buffer();
    if (all_ok(rs))
      put_ok(o);
    else
      put_error(o, not_acked);
    done(std::move(o));
  });
}

/// write_then_ok of one value (SET, SETEX): the key and value are written
/// from the command's arguments (one copy, node::write's), without a fan_out.
void write_one_then_ok(cluster_core& c, std::string_view key, std::string_view value,
                       uint64_t expiry, std::function<void(out_buffer&&)> done) {
  if (auto why = refused_value(c, key, value.size()))
    return done(out_buffer(why->begin(), why->end()));
  c.write(key, value, expiry, false, [done = std::move(done)](client_result& r) {
    auto o = fresh_buffer();
    if (r.ok)
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

/// KURA.HELD key: what this node holds and knows of `key`, no network (a
/// debugging aid; the tests name it for a key that does not read back).
std::string held_text(cluster_core& c, const std::string& key) {
  auto* n = c.core_mut();
  if (!n)
    return "not ready";
  auto k = n->inspect(key, now_ms());
  std::string s = "held=";
  if (!k.held)
    s += "none";
  else
    s += (k.held->is_tombstone() ? "tombstone ver=" : "value ver=") +
         gossip::version_text(k.held->ver) + " expiry=" + std::to_string(k.held->expiry_ms) +
         " bytes=" + std::to_string(k.held->value.size());
  s += " index=" + (k.indexed ? gossip::version_text(*k.indexed) : std::string("none"));
  s += " floor=" + gossip::version_text(k.floor);
  s += " replica=" + std::to_string(k.replica) + " catching_up=" + std::to_string(k.catching_up) +
       " gained=" + std::to_string(k.gained) + " streaming=" + std::to_string(k.streaming) +
       " hints=" + std::to_string(k.hints) + " near=" + std::to_string(k.near);
  if (!k.where.empty())
    s += " " + k.where;
  s += " replicas=";
  for (auto& o : c.owners(key))
    s += o + ",";
  return s;
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
  write_one_then_ok(c, a[1], a[2], expiry, std::move(done));
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
  write_one_then_ok(c, a[1], a[3], expiry, std::move(done));
}

void at_owner(cluster_core& c, std::vector<std::string> a, std::vector<gossip::node_id> cands,
              size_t i, std::function<void(out_buffer&&)> done);

/// DEL / UNLINK: each key is deleted at its owner (which counts it only if
/// it was live there, atomically with the delete); the counts are summed.
void cmd_del(cluster_core& c, const std::vector<std::string_view>& a,
             std::function<void(out_buffer&&)> done) {
  if (a.size() < 2)
    return done(arity_error(a[0]));
  struct state {
    int64_t n = 0;
    size_t left = 0;
    std::string err;
  };
  auto st = std::make_shared<state>();
  st->left = a.size() - 1;
  auto name = lower(a[0]);
  for (size_t i = 1; i < a.size(); ++i) {
    auto cands = c.exec_candidates(a[i]);
    auto fdone = forwarding(c, kura::key_slot(a[i]), cands, [st, done](out_buffer&& r) {
      if (!r.empty() && r[0] == ':')
        st->n += std::strtoll(std::string(r.begin() + 1, r.end()).c_str(), nullptr, 10);
      else if (st->err.empty())
        st->err.assign(r.begin(), r.end());
      if (--st->left > 0)
        return;
      if (!st->err.empty())
        return done(out_buffer(st->err.begin(), st->err.end()));
      auto o = fresh_buffer();
      put_int(o, st->n);
      done(std::move(o));
    });
    at_owner(c, {name, std::string(a[i])}, std::move(cands), 0, std::move(fdone));
  }
}

void cmd_ttl(cluster_core& c, const std::vector<std::string_view>& a, bool ms,
             std::function<void(out_buffer&&)> done) {
  if (a.size() != 2)
    return done(arity_error(a[0]));
  read_all(c, {std::string(a[1])}, [ms, done](std::vector<client_result>& rs) {
    if (auto err = read_error(rs))
      return done(std::move(*err));
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

/// The keys `cmd` names (the registry's key positions), added to `staged`
/// with what this node holds for them.
void stage_keys(cluster_core& c, const std::vector<std::string>& cmd,
                actors::staged_entries& staged) {
  std::vector<std::string_view> keys;
  command_args args(cmd.begin(), cmd.end());
  (void)cluster_executor().registry().keys_of(args, keys);
  for (auto k : keys) {
    std::string key(k);
    if (staged.count(key) == 0)
      staged.emplace(key, live(c, key));
  }
}

/// The keys `cmds` name (the registry's key positions), each once.
std::vector<std::string> keys_named(const std::vector<std::vector<std::string>>& cmds) {
  actors::staged_entries seen;
  std::vector<std::string> out;
  for (auto& cmd : cmds) {
    std::vector<std::string_view> keys;
    command_args args(cmd.begin(), cmd.end());
    (void)cluster_executor().registry().keys_of(args, keys);
    for (auto k : keys)
      if (seen.emplace(std::string(k), std::nullopt).second)
        out.emplace_back(k);
  }
  return out;
}

// -- read-modify-write on a node that is catching up ----------------------------
//
// A command that runs here against this node's copy (INCR, APPEND, EXEC, a
// WATCH's version read) must act on the newest version. A node that is
// catching up (resumed after SIGSTOP, restarted, or holding a slot it just
// gained; gossip::node::reads_catch_up) may hold an old copy while another
// replica took writes meanwhile. So such a command first reads its keys
// through the cluster (a gathering read: every replica is asked, the newest
// answer repairs our copy) and then runs, exactly as it would have. Commands
// of one slot run in arrival order: while one waits for its reads, later
// ones of its slot wait behind it (the commands queued when the reads start
// share them), so a pipeline's INCRs or APPENDs keep their order and their
// replies. A command whose sender stopped waiting meanwhile (its deadline,
// cluster_core::exec_deadline_ms) is not run, as one that arrived late.

struct owner_gate {
  struct job {
    std::vector<std::string> keys;
    uint64_t deadline_ms = 0; ///< the sender's (0: none)
    std::function<void()> run;
    reply_fn refuse; ///< answers "not run" when it is too late
    /// A read queued behind them (read_all): runs, and the slot's next job
    /// waits until it calls its argument (its answers are in).
    std::function<void(std::function<void()>)> run_then;
    bool started = false;
  };
  std::unordered_map<uint16_t, std::deque<job>> slots;
  /// The sender's side (forwarding below): per slot, the commands this node
  /// forwarded to the slot's owner that have not answered yet (by issue
  /// number), and the reads that wait for those issued before them.
  struct forwarded {
    uint64_t issued = 0;
    std::set<uint64_t> open;
    std::vector<std::pair<uint64_t, std::function<void()>>> reads; ///< (last issued, run)
  };
  std::unordered_map<uint16_t, forwarded> forwarding;
  /// A connection's order (below, "a connection's order"): per slot, the reads started
  /// here whose answers are not in yet, and the commands that wait.
  std::vector<uint32_t> reads_at; ///< by slot (sized on the first read)
  uint64_t reads_out = 0;
  struct waiting {
    std::vector<uint16_t> slots;
    bool read = false, coordinated = false;
    bool here = false; ///< a write that runs at this node, its keys' owner (behind its gate)
    std::vector<std::string> args;
    std::function<void(out_buffer&&)> done;
  };
  std::deque<waiting> waits;
  bool draining = false, again = false;
};

owner_gate& gate_of(cluster_core& c) {
  if (!c.exec_gate)
    c.exec_gate = std::make_shared<owner_gate>();
  return *std::static_pointer_cast<owner_gate>(c.exec_gate);
}

/// No command waits here and none this node forwarded is out: a read needs
/// neither behind_forwarded nor behind_gate (both would answer false).
bool gates_idle(const cluster_core& c) {
  if (!c.exec_gate)
    return true;
  auto& g = *std::static_pointer_cast<owner_gate>(c.exec_gate);
  return g.slots.empty() && g.forwarding.empty() && g.waits.empty();
}

constexpr const char* late_not_run =
    "-TIMEOUT the command waited here for its keys' newest versions past its deadline; not "
    "run\r\n";

/// Which of `keys` this node may hold an old copy of.
std::vector<std::string> keys_behind(cluster_core& c, const std::vector<std::string>& keys) {
  std::vector<std::string> out;
  auto* n = c.core_mut();
  if (!n)
    return out;
  auto now = now_ms();
  for (auto& k : keys)
    if (n->reads_catch_up(k, now))
      out.push_back(k);
  return out;
}

void gate_pump(cluster_core& c, uint16_t slot);

/// Why a job's gathering read gives it no base to build on (nullopt: it
/// has one): the error of a key no replica could answer, or CLUSTERDOWN
/// when none of the other replicas answered and only this node's own copy,
/// perhaps older than the cluster's, came back (client_result::unconfirmed).
using gather_failures = std::unordered_map<std::string, std::string>;

std::optional<std::string> base_missing(const gather_failures& failed,
                                        const std::vector<std::string>& keys) {
  for (auto& k : keys)
    if (auto it = failed.find(k); it != failed.end())
      return it->second;
  return std::nullopt;
}

/// Runs the first `n` jobs of `slot` (their keys were read; a job with a key
/// in `failed` is refused with its error instead), then the rest.
void gate_run(cluster_core& c, uint16_t slot, size_t n, const gather_failures& failed = {}) {
  auto& g = gate_of(c);
  for (size_t i = 0; i < n; ++i) {
    auto it = g.slots.find(slot);
    if (it == g.slots.end() || it->second.empty())
      break;
    if (auto& front = it->second.front(); front.run_then) {
      front.started = true;
      auto fn = front.run_then;
      auto* cp = &c;
      return fn([cp, slot] {
        auto& g2 = gate_of(*cp);
        auto at = g2.slots.find(slot);
        if (at != g2.slots.end() && !at->second.empty() && at->second.front().started)
          at->second.pop_front();
        gate_pump(*cp, slot);
      });
    }
    auto job = std::move(it->second.front());
    it->second.pop_front();
    if (job.deadline_ms != 0 && now_ms() > job.deadline_ms)
      job.refuse(late_not_run);
    else if (auto why = base_missing(failed, job.keys))
      job.refuse(err_str(*why));
    else
      job.run();
  }
  gate_pump(c, slot);
}

/// Starts the queued jobs of `slot`: those whose keys are all current run at
/// once; the first that needs reads starts them for every job queued now.
void gate_pump(cluster_core& c, uint16_t slot) {
  auto& g = gate_of(c);
  for (;;) {
    auto it = g.slots.find(slot);
    if (it == g.slots.end())
      return;
    auto& q = it->second;
    if (q.empty()) {
      g.slots.erase(it);
      if (!g.waits.empty()) // a write coordinated here may wait for them
        drain_order(c);
      return;
    }
    if (q.front().started)
      return; // a read in flight: it pumps when its answers are in
    std::vector<std::string> all;
    for (auto& j : q)
      all.insert(all.end(), j.keys.begin(), j.keys.end());
    auto behind = keys_behind(c, all);
    if (behind.empty()) {
      gate_run(c, slot, q.size());
      return;
    }
    std::sort(behind.begin(), behind.end());
    behind.erase(std::unique(behind.begin(), behind.end()), behind.end());
    auto* cp = &c;
    read_all_now(c, behind, [cp, slot, n = q.size(), behind](std::vector<client_result>& rs) {
      gather_failures failed;
      for (size_t i = 0; i < rs.size() && i < behind.size(); ++i)
        if (!rs[i].ok || rs[i].unconfirmed)
          failed.emplace(behind[i], actors::read_failed(rs[i].ok ? gossip::read_failure::no_answer
                                                                 : rs[i].failure));
      gate_run(*cp, slot, n, failed);
    });
    return;
  }
}

// -- read-your-writes through a forwarding node -----------------------------------
//
// A connection's pipelined commands start at once, their replies kept in
// order; an INCR runs at its key's owner (forwarded), a GET here. So a GET
// right after a forwarded INCR read before the INCR had run and answered the
// older value. Now a read of a slot waits while a command this node
// forwarded for that slot has not answered (every connection's read: the
// node does not tell them apart). Once the owner answered, the replicas
// and near holders here have the new version or were invalidated (the
// owner's replication and invalidations leave before its reply).

/// `done` of a command forwarded for `slot` to `cands` (at_owner), counted
/// while it is out. One that runs here (this node is the owner) is not:
/// the owner's gate keeps its slot's commands and reads in order.
std::function<void(out_buffer&&)> forwarding(cluster_core& c, uint16_t slot,
                                             const std::vector<gossip::node_id>& cands,
                                             std::function<void(out_buffer&&)> done) {
  if (cands.empty() || cands[0] == c.self_id())
    return done;
  auto& f = gate_of(c).forwarding[slot];
  uint64_t n = ++f.issued;
  f.open.insert(n);
  auto* cp = &c;
  return [cp, slot, n, done](out_buffer&& r) {
    done(std::move(r));
    auto& g = gate_of(*cp);
    auto it = g.forwarding.find(slot);
    if (it == g.forwarding.end())
      return;
    auto& fw = it->second;
    fw.open.erase(n);
    // the reads all of whose earlier forwarded commands answered
    const uint64_t low = fw.open.empty() ? UINT64_MAX : *fw.open.begin();
    std::vector<std::function<void()>> runs;
    auto keep = fw.reads.begin();
    for (auto& w : fw.reads)
      if (w.first < low)
        runs.push_back(std::move(w.second));
      else
        *keep++ = std::move(w);
    fw.reads.erase(keep, fw.reads.end());
    if (fw.open.empty() && fw.reads.empty())
      g.forwarding.erase(it);
    for (auto& run : runs)
      run();
    if (!g.waits.empty()) // a write of the slot may wait for this answer
      drain_order(*cp);
  };
}

/// Queues `run` until the commands this node forwarded so far for the slots
/// of `keys` answered (true), or does nothing when none are out (false).
bool behind_forwarded(cluster_core& c, const std::vector<std::string>& keys,
                      std::function<void()> run) {
  if (!c.exec_gate)
    return false;
  auto& g = gate_of(c);
  if (g.forwarding.empty())
    return false;
  std::set<uint16_t> slots;
  for (auto& k : keys) {
    auto it = g.forwarding.find(kura::key_slot(k));
    if (it != g.forwarding.end() && !it->second.open.empty())
      slots.insert(it->first);
  }
  if (slots.empty())
    return false;
  auto left = std::make_shared<size_t>(slots.size());
  auto shared_run = std::make_shared<std::function<void()>>(std::move(run));
  for (auto slot : slots) {
    auto& fw = g.forwarding[slot];
    fw.reads.emplace_back(fw.issued, [left, shared_run] {
      if (--*left == 0)
        (*shared_run)();
    });
  }
  return true;
}

/// Queues `run` behind the commands of a slot of `keys` that wait here
/// (true), or does nothing when none wait (false).
bool behind_gate(cluster_core& c, const std::vector<std::string>& keys,
                 std::function<void(std::function<void()>)> run_then) {
  if (!c.exec_gate || keys.empty())
    return false;
  auto& g = gate_of(c);
  for (auto& k : keys) {
    auto it = g.slots.find(kura::key_slot(k));
    if (it != g.slots.end() && !it->second.empty()) {
      owner_gate::job j;
      j.run_then = std::move(run_then);
      it->second.push_back(std::move(j));
      return true;
    }
  }
  return false;
}

// -- a connection's order: a reply reflects the writes before it, never a later one --
//
// A connection's pipelined commands start at once, their replies kept in
// order. A write is applied (its version minted) when it starts; a read
// that is not answered from this node's copy at once (it asks a replica, it
// gathers while this node catches up, it waits behind a forwarded command)
// is answered when its answers are in. So in `SET k m1`, `GET k`, `SET k m2`
// the GET used to answer m2 (it read after the second SET was applied here
// and at the replicas) or TRYAGAIN (a non-replica's floor had risen to m2's
// version, so the replica's m1 vouched for nothing); Redis answers m1. And
// `INCR k`, `SET k 5` through a non-owner applied the SET before the INCR
// ran at the owner (also at the owner: an INCR waiting at its gate while
// the node catches up). Now, per slot, a write waits while a read started
// here before it is out (one that runs here, at its keys' owner, does not:
// the owner's gate orders it with reads, and holding it back past the
// node's catch-up would let it run on an old copy, catch_up_test), a write
// coordinated here (SET, SETEX, PSETEX, MSET) also while a command
// forwarded for its slot is out or one waits at this owner's gate (those
// keep their order among themselves: one link, the owner's gate), and any
// command waits while one of its slot waits before it. The node does not
// tell connections apart: a write of another connection waits too, which
// keeps every connection's order. Nothing out, nothing waiting (the common
// case): one test.

/// The distinct slots of `keys`, each counted as read out until
/// read_finished (on a node that is not ready the read answers at once,
/// which uncounts them).
std::vector<uint16_t> read_started(cluster_core& c, const std::vector<std::string>& keys) {
  std::vector<uint16_t> slots;
  for (auto& k : keys) {
    auto s = kura::key_slot(k);
    if (std::find(slots.begin(), slots.end(), s) == slots.end())
      slots.push_back(s);
  }
  auto& g = gate_of(c);
  if (g.reads_at.empty())
    g.reads_at.assign(kura::slot_count, 0);
  for (auto s : slots)
    ++g.reads_at[s];
  g.reads_out += slots.size();
  return slots;
}

void read_finished(cluster_core& c, const std::vector<uint16_t>& slots) {
  auto& g = gate_of(c);
  for (auto s : slots)
    --g.reads_at[s];
  g.reads_out -= slots.size();
  if (!g.waits.empty())
    drain_order(c);
}

/// Whether `w` must wait now: a command of one of its slots waits before it
/// (`blocked`: their slots), or it writes while a read of its slots is out
/// (or, coordinated here, while a command forwarded for them is).
bool order_blocks(const owner_gate& g, const owner_gate::waiting& w,
                  const std::vector<uint16_t>& blocked) {
  for (auto s : w.slots) {
    if (std::find(blocked.begin(), blocked.end(), s) != blocked.end())
      return true;
    if (w.read)
      continue;
    if (!w.here && !g.reads_at.empty() && g.reads_at[s] > 0)
      return true;
    if (w.coordinated) {
      if (auto it = g.forwarding.find(s); it != g.forwarding.end() && !it->second.open.empty())
        return true;
      if (g.slots.count(s) != 0) // commands of the slot wait at this owner's gate
        return true;
    }
  }
  return false;
}

void run_now(cluster_core& c, const std::vector<std::string_view>& a,
             std::function<void(out_buffer&&)> done);

/// Runs the waiting commands that may run now, in their order.
void drain_order(cluster_core& c) {
  auto& g = gate_of(c);
  if (g.draining) {
    g.again = true; // (a command run below finished a read)
    return;
  }
  g.draining = true;
  do {
    g.again = false;
    std::vector<uint16_t> blocked;
    for (size_t i = 0; i < g.waits.size();) {
      if (order_blocks(g, g.waits[i], blocked)) {
        auto& ss = g.waits[i].slots;
        blocked.insert(blocked.end(), ss.begin(), ss.end());
        ++i;
        continue;
      }
      auto w = std::move(g.waits[i]);
      g.waits.erase(g.waits.begin() + static_cast<std::ptrdiff_t>(i));
      std::vector<std::string_view> views(w.args.begin(), w.args.end());
      run_now(c, views, std::move(w.done));
    }
  } while (g.again);
  g.draining = false;
}

/// The slots of the commands that wait.
std::vector<uint16_t> queued_slots(const owner_gate& g) {
  std::vector<uint16_t> out;
  for (auto& w : g.waits)
    out.insert(out.end(), w.slots.begin(), w.slots.end());
  return out;
}

/// Describes `a` for the order gate; false when it has no keys (it is not
/// ordered: PING, the keyspace-wide commands ...).
bool order_of(cluster_core& c, const std::vector<std::string_view>& a, owner_gate::waiting& w) {
  auto& reg = cluster_executor().registry();
  std::vector<std::string_view> keys;
  if (reg.keys_of(a, keys) != keys_status::ok || keys.empty())
    return false;
  for (auto k : keys) {
    auto s = kura::key_slot(k);
    if (std::find(w.slots.begin(), w.slots.end(), s) == w.slots.end())
      w.slots.push_back(s);
  }
  int id = reg.resolve(a);
  w.read = id >= 0 && (reg.spec(id).flags & cmd_flag::readonly) != 0;
  auto name = lower(a[0]);
  w.coordinated = name == "set" || name == "setex" || name == "psetex" || name == "mset";
  if (!w.read && !w.coordinated) {
    w.here = true;
    for (auto k : keys) {
      auto cands = c.exec_candidates(k);
      w.here = w.here && !cands.empty() && cands[0] == c.self_id();
    }
  }
  return true;
}

/// Runs `run` now when none of `keys` may be behind here and nothing of
/// their slot waits; else queues it (see above).
void gated(cluster_core& c, std::vector<std::string> keys, std::function<void()> run,
           reply_fn refuse) {
  if (keys.empty())
    return run();
  auto slot = kura::key_slot(keys[0]);
  auto& g = gate_of(c);
  const bool first = g.slots.count(slot) == 0;
  if (first && keys_behind(c, keys).empty())
    return run();
  owner_gate::job j;
  j.keys = std::move(keys);
  j.deadline_ms = c.exec_deadline_ms;
  j.run = std::move(run);
  j.refuse = std::move(refuse);
  g.slots[slot].push_back(std::move(j));
  if (first) // else it waits its turn
    gate_pump(c, slot);
}

constexpr const char* late_write =
    "-TIMEOUT the command reached its write after its deadline; not run\r\n";
constexpr const char* spanned_write =
    "-TIMEOUT the command ran longer than kura.cluster.request-timeout between reading and "
    "writing its keys (a long script or a pause); nothing was written\r\n";

/// Runs `cmds` here, against this node's own copies, with the command table
/// (node/cluster_exec.hpp), then writes what they changed as new versions
/// (replicated like any write); `reply` gets their replies (as one array when
/// `as_tx`: EXEC) once write-acks copies hold every change. Nothing else runs
/// in between on this node, so they are atomic as on a lone node.
///
/// `deadline_ms` (a forwarded command's, cluster_core::exec_deadline_ms; 0:
/// none) is checked once more where the versions are minted, and they are
/// minted at the time of that check: a node paused (SIGSTOP, a stalled VM) or
/// busy (a long script) after the command passed its first checks used to
/// write on resuming, with versions newer than what the next replica wrote
/// meanwhile for the sender that had given up, and last-writer-wins replaced
/// those acknowledged writes (forward_timeout_test, session 20). Now such a
/// command changes nothing and answers -TIMEOUT, and one paused after the
/// check writes versions older than the deadline, which lose to the writes
/// the next replica made after it.
///
/// A command from this node's own client has no sender's deadline; it gets
/// one from the moment its keys are read here: request-timeout later (with
/// the default heartbeat, before the probe timeout after which the others may
/// suspect this node and let the next replica write its keys). A command that
/// spans more than that between reading its keys and writing them (a long
/// script, a pause) answers -TIMEOUT and writes nothing: its read-modify-write
/// would otherwise replace what the next replica acknowledged meanwhile.
void run_here(cluster_core& c, std::vector<std::vector<std::string>> cmds, bool as_tx,
              reply_fn reply, bool tag = false, uint64_t deadline_ms = 0) {
  const uint64_t read_at = now_ms();
  const uint64_t local_deadline = read_at + c.settings().request_timeout_ms;
  actors::staged_entries staged;
  for (auto& cmd : cmds)
    stage_keys(c, cmd, staged);
  auto out = fresh_buffer();
  if (as_tx)
    put_array_header(out, cmds.size());
  std::vector<cluster_exec::change> changes;
  cluster_executor().run(cmds, staged, out, changes);
  if (changes.empty())
    return reply(as_string(out));
  std::vector<kv_write> ws;
  ws.reserve(changes.size());
  for (auto& ch : changes) {
    if (ch.e)
      ws.push_back(kv_write{std::move(ch.key), std::move(ch.e->value), ch.e->expiry_ms, false,
                            static_cast<uint8_t>(ch.e->flags & entry_flags::hash)});
    else
      ws.push_back(kv_write{std::move(ch.key), {}, 0, true, 0});
  }
  if (auto why = refused_value(c, ws)) // nothing of the commands is written
    return reply(*why);                // a transaction too: EXEC answers the error

  const uint64_t now = now_ms();
  if (deadline_ms != 0 && now > deadline_ms)
    return reply(late_write);
  if (now > local_deadline)
    return reply(spanned_write);
  write_all(
      c, std::move(ws),
      [r = as_string(out), reply, tag](std::vector<client_result>& rs) {
        std::vector<std::pair<std::string, version>> written;
        if (tag) // a forwarded command: its sender's reads never serve older (tag_written)
          for (auto& w : rs)
            if (!w.e.ver.is_zero())
              written.emplace_back(w.e.key, w.e.ver);
        reply(actors::tag_written(written, all_ok(rs) ? r : err_str(not_acked)));
      },
      now);
}

/// kura.node.watch key...: per key "1"/"0" (live), hlc, node of what this
/// node (the slot's owner) holds.
std::string watch_versions(cluster_core& c, const std::vector<std::string>& a) {
  auto o = fresh_buffer();
  put_array_header(o, 3 * (a.size() - 1));
  for (size_t i = 1; i < a.size(); ++i) {
    auto e = live(c, a[i]);
    put_bulk(o, e ? "1" : "0");
    put_bulk(o, std::to_string(e ? e->ver.hlc : 0));
    put_bulk(o, std::to_string(e ? e->ver.node : 0));
  }
  return as_string(o);
}

/// kura.node.exec nwatched (key live hlc node)... (argc arg...)...: a
/// transaction forwarded to its slot's owner. A watched key whose liveness or
/// version differs here aborts it (null array), as EXEC after a broken WATCH.
void exec_transaction(cluster_core& c, const std::vector<std::string>& a, const reply_fn& reply,
                      bool tag, uint64_t deadline_ms) {
  auto bad = [&] { reply(err_str("ERR malformed kura.node.exec")); };
  size_t p = 1;
  auto number = [&](uint64_t& v) { return p < a.size() && parse_cursor(a[p++], v); };
  uint64_t nw = 0;
  if (!number(nw))
    return bad();
  bool broken = false;
  for (uint64_t i = 0; i < nw; ++i) {
    if (p + 4 > a.size())
      return bad();
    const std::string& key = a[p++];
    bool was_live = a[p++] == "1";
    uint64_t hlc = 0, node = 0;
    if (!number(hlc) || !number(node))
      return bad();
    auto e = live(c, key);
    if (e.has_value() != was_live ||
        (e && (e->ver.hlc != hlc || e->ver.node != static_cast<uint32_t>(node))))
      broken = true;
  }
  std::vector<std::vector<std::string>> cmds;
  while (p < a.size()) {
    uint64_t argc = 0;
    if (!number(argc) || argc == 0 || p + argc > a.size())
      return bad();
    cmds.emplace_back(a.begin() + static_cast<std::ptrdiff_t>(p),
                      a.begin() + static_cast<std::ptrdiff_t>(p + argc));
    p += argc;
  }
  if (broken)
    return reply("*-1\r\n");
  run_here(c, std::move(cmds), true, reply, tag, deadline_ms);
}

/// exec_transaction once its keys are current here (see owner_gate).
void exec_transaction_gated(cluster_core& c, std::vector<std::string> a, reply_fn reply) {
  std::vector<std::string> keys;
  uint64_t nw = 0;
  if (a.size() > 1 && parse_cursor(a[1], nw))
    for (uint64_t i = 0; i < nw && 2 + 4 * i < a.size(); ++i)
      keys.push_back(a[2 + 4 * i]);
  if (nw <= a.size() && 2 + 4 * nw <= a.size()) {
    std::vector<std::vector<std::string>> cmds;
    for (size_t p = 2 + 4 * nw; p < a.size();) {
      uint64_t argc = 0;
      if (!parse_cursor(a[p], argc) || argc == 0 || p + 1 + argc > a.size())
        break; // exec_transaction answers it
      cmds.emplace_back(a.begin() + static_cast<std::ptrdiff_t>(p + 1),
                        a.begin() + static_cast<std::ptrdiff_t>(p + 1 + argc));
      p += 1 + argc;
    }
    for (auto& k : keys_named(cmds))
      keys.push_back(std::move(k));
  }
  auto* cp = &c;
  gated(
      c, std::move(keys),
      [cp, a = std::move(a), reply, tag = c.exec_tag_versions, dl = c.exec_deadline_ms]() mutable {
        exec_transaction(*cp, a, reply, tag, dl);
      },
      reply);
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
  if (c.tracking_exec && c.tracking_exec(a, reply)) // node/cluster_tracking.hpp
    return;
  if (sub == "kura.node.watch" && a.size() >= 2) {
    auto* cp = &c;
    return gated(
        c, std::vector<std::string>(a.begin() + 1, a.end()),
        [cp, a, reply] { reply(watch_versions(*cp, a)); }, reply);
  }
  if (sub == "kura.node.exec")
    return exec_transaction_gated(c, a, reply);
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
    std::vector<std::tuple<uint64_t, std::string, bool>> got; // position, key, is a hash
    for_owned(c, from, [&](uint64_t pos, const entry& m) {
      got.emplace_back(pos, m.key, (m.flags & entry_flags::hash) != 0);
      return got.size() < count;
    });
    auto o = fresh_buffer();
    put_array_header(o, 3 * got.size());
    for (auto& [pos, k, hash] : got) {
      put_bulk(o, std::to_string(pos));
      put_bulk(o, k);
      put_bulk(o, hash ? "hash" : "string");
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

/// Runs `a` at the first replica of `key` that answers (`cands`:
/// exec_candidates, the live owner first): here when this node is the owner,
/// else forwarded (one hop). When a replica cannot be reached the next one
/// runs it; when one got the command but gave no answer (a timeout, a lost
/// connection: it may have run it) only a command that is safe to run twice
/// goes on to the next (actors::rerun_safe), the others answer -TIMEOUT.
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
        if (!r.empty() && !actors::rerun_safe(a))
          return done(error_reply(actors::outcome_unknown(cp->name_of(cands[i]), r)));
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
          std::vector<std::tuple<uint64_t, std::string, std::string>> all; // pos, key, type
          bool more = false;
          for (auto& r : rs) {
            std::vector<std::string> flat;
            parse_bulks(r, flat);
            more = more || flat.size() / 3 >= count;
            for (size_t i = 0; i + 2 < flat.size(); i += 3)
              all.emplace_back(std::strtoull(flat[i].c_str(), nullptr, 10), flat[i + 1],
                               flat[i + 2]);
          }
          std::sort(all.begin(), all.end());
          if (all.size() > count) {
            all.resize(count);
            more = true;
          }
          uint64_t next = more && !all.empty() ? std::get<0>(all.back()) + 1 : 0;
          auto o = fresh_buffer();
          put_array_header(o, 2);
          put_bulk(o, std::to_string(next));
          std::vector<std::string> keys;
          for (auto& [pos, k, t] : all)
            if ((match.empty() || actors::glob_match(match, k)) && (type.empty() || type == t))
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

const char* crossslot = "CROSSSLOT Keys in request don't hash to the same slot";

/// DBSIZE KEYS SCAN RANDOMKEY FLUSHALL FLUSHDB: every member answers.
bool is_keyspace_wide(std::string_view name) {
  static const char* names[] = {"dbsize", "keys", "scan", "randomkey", "flushall", "flushdb"};
  auto n = lower(name);
  for (auto* k : names)
    if (n == k)
      return true;
  return false;
}

/// EVALSHA / EVALSHA_RO: scripts live in each node's cache, as on a Redis
/// Cluster node (SCRIPT LOAD goes to the node the client talks to), but the
/// command runs at the key's owner, which may not know the script: it
/// travels there as EVAL / EVAL_RO with the body this node cached. A script
/// this node does not know gets NOSCRIPT here (false: answered).
bool evalsha_to_eval(cluster_core& c, std::vector<std::string>& args,
                     const std::function<void(out_buffer&&)>& done) {
  auto name = lower(args[0]);
  if ((name != "evalsha" && name != "evalsha_ro") || args.size() < 2)
    return true;
  auto body = c.script_source ? c.script_source(args[1]) : std::nullopt;
  if (!body) {
    done(error_reply("NOSCRIPT No matching script. Please use EVAL."));
    return false;
  }
  args[0] = name == "evalsha" ? "eval" : "eval_ro";
  args[1] = std::move(*body);
  return true;
}

/// Every other key command, by the registry's key positions: keys in more
/// than one slot get CROSSSLOT (the commands that may be split were split
/// above); a read-only command runs here on what the key's replicas answer
/// (locally when this node is one); anything that writes runs at the slot's
/// owner (forwarded, one hop), atomic there as on a lone node.
void run_by_keys(cluster_core& c, const std::vector<std::string_view>& a,
                 std::function<void(out_buffer&&)> done) {
  auto& x = cluster_executor();
  auto& reg = x.registry();
  std::vector<std::string_view> keys;
  auto ks = reg.keys_of(a, keys);
  if (ks == keys_status::wrong_arity)
    return done(arity_error(a[0]));
  std::vector<std::string> args(a.begin(), a.end());
  if (!evalsha_to_eval(c, args, done))
    return;
  if (ks != keys_status::ok || keys.empty()) // no key given: nothing to place
    return run_here(c, {std::move(args)}, false,
                    [done](std::string r) { done(out_buffer(r.begin(), r.end())); });
  auto slot = kura::key_slot(keys[0]);
  for (auto k : keys)
    if (kura::key_slot(k) != slot)
      return done(error_reply(crossslot));
  if (reg.spec(reg.resolve(a)).flags & cmd_flag::readonly) {
    std::vector<std::string> ks_read;
    for (auto k : keys)
      if (std::find(ks_read.begin(), ks_read.end(), k) == ks_read.end())
        ks_read.emplace_back(k);
    return read_all(
        c, ks_read, [ks_read, args = std::move(args), done](std::vector<client_result>& rs) {
          if (auto err = read_error(rs))
            return done(std::move(*err));
          actors::staged_entries staged;
          for (size_t i = 0; i < ks_read.size(); ++i)
            staged.emplace(ks_read[i], rs[i].found ? std::optional<entry>(rs[i].e) : std::nullopt);
          auto o = fresh_buffer();
          std::vector<cluster_exec::change> changes; // none: read-only
          cluster_executor().run({args}, staged, o, changes);
          done(std::move(o));
        });
  }
  auto cands = c.exec_candidates(keys[0]);
  auto fdone = forwarding(c, slot, cands, std::move(done));
  at_owner(c, std::move(args), std::move(cands), 0, std::move(fdone));
}

} // namespace

std::string queue_refusal(const std::vector<std::string_view>& args) {
  if (args.empty() || !is_keyspace_wide(args[0]))
    return {};
  return "ERR '" + lower(args[0]) +
         "' inside MULTI is not supported on a cluster node: a transaction runs as one unit on "
         "its slot's owner, and this command needs every member (send it outside MULTI)";
}

void exec_owned(actors::cluster_core& c, std::vector<std::string> a,
                std::function<void(std::string)> reply) {
  if (a.empty())
    return reply(err_str("ERR empty command"));
  auto name = lower(a[0]);
  if (name.rfind("kura.node.", 0) == 0)
    return node_part(c, a, reply);
  std::vector<std::vector<std::string>> cmds;
  cmds.push_back(std::move(a));
  auto keys = keys_named(cmds);
  auto* cp = &c;
  gated(
      c, std::move(keys),
      [cp, cmds = std::move(cmds), reply, tag = c.exec_tag_versions,
       dl = c.exec_deadline_ms]() mutable {
        run_here(*cp, std::move(cmds), false, std::move(reply), tag, dl);
      },
      reply);
}

route classify(const command_registry& reg, const std::vector<std::string_view>& args) {
  int id = reg.resolve(args);
  if (id < 0)
    return route::local; // the command table answers unknown commands
  if (lower(args[0]) == "kura.erase" || lower(args[0]) == "kura.subject")
    return route::local; // the issuer runs it cluster-wide (node/cluster_erase.hpp)
  auto& sp = reg.spec(id);
  if (sp.first_key > 0 || !sp.key_specs.empty())
    return route::cluster;
  // keyspace-wide commands
  if (is_face_command(args[0]))
    return route::face; // CLUSTER, READONLY ... (node/cluster_faces.hpp)
  return lower(args[0]) == "wait" || is_keyspace_wide(args[0]) ? route::cluster : route::local;
}

bool get_here(cluster_core& c, std::string_view key, bool resp3, out_buffer& out) {
  if (!c.ready() || !gates_idle(c))
    return false;
  entry scratch; // (filled only when the store's answer is not in memory)
  auto a = c.read_here(key, scratch);
  if (!a)
    return false;
  if (a->found && (a->e.flags & entry_flags::hash))
    put_error(out, err_wrongtype);
  else if (a->found)
    put_bulk(out, a->e.value);
  else if (resp3)
    put_raw(out, "_\r\n");
  else
    put_nil(out);
  return true;
}

void run_clustered(cluster_core& c, const std::vector<std::string_view>& a,
                   std::function<void(out_buffer&&)> done) {
  if (c.exec_gate && c.ready()) {
    auto& g = gate_of(c);
    if (g.reads_out != 0 || !g.waits.empty() || !g.forwarding.empty() || !g.slots.empty()) {
      owner_gate::waiting w;
      if (order_of(c, a, w) && order_blocks(g, w, queued_slots(g))) {
        w.args.assign(a.begin(), a.end());
        w.done = std::move(done);
        g.waits.push_back(std::move(w));
        return;
      }
    }
  }
  run_now(c, a, std::move(done));
}

namespace {

void run_now(cluster_core& c, const std::vector<std::string_view>& a,
             std::function<void(out_buffer&&)> done) {
  auto name = lower(a[0]);
  if (!c.ready())
    return done(error_reply(down));
  if (name == "get") {
    if (a.size() != 2)
      return done(arity_error(a[0]));
    return read_all(c, {std::string(a[1])},
                    [done = std::move(done)](std::vector<client_result>& rs) {
                      if (auto err = read_error(rs))
                        return done(std::move(*err));
                      auto o = fresh_buffer();
                      if (rs[0].found && (rs[0].e.flags & entry_flags::hash))
                        put_error(o, err_wrongtype);
                      else if (rs[0].found)
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
      if (auto err = read_error(rs))
        return done(std::move(*err));
      auto o = fresh_buffer();
      put_array_header(o, rs.size());
      for (auto& r : rs)
        if (r.found && !(r.e.flags & entry_flags::hash))
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
      if (auto err = read_error(rs))
        return done(std::move(*err));
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
  if (name == "kura.held") {
    if (a.size() != 2)
      return done(arity_error(a[0]));
    auto o = fresh_buffer();
    put_bulk(o, held_text(c, std::string(a[1])));
    return done(std::move(o));
  }
  if (name == "dbsize" || name == "keys" || name == "scan" || name == "randomkey" ||
      name == "flushall" || name == "flushdb")
    return keyspace_wide(c, name, a, std::move(done));
  run_by_keys(c, a, std::move(done));
}

} // namespace

route classify(const command_registry& reg, const std::vector<std::string_view>& args,
               const session& s) {
  int id = reg.resolve(args);
  if (id >= 0) {
    const auto& name = reg.spec(id).name;
    if (name == "watch")
      return s.tx.active ? route::local : route::transaction; // inside MULTI: its error
    if (name == "exec")
      return s.tx.active && !s.tx.aborted && s.tx.slot >= 0
                 ? route::transaction
                 : route::local; // no keys: the queue runs here
    if (s.tx.active)
      return route::local; // queued (and slot-checked) by the command table
  }
  return classify(reg, args);
}

void run_transaction(cluster_core& c, const std::vector<std::string_view>& a, session& s,
                     session_fn with_session, std::function<void(out_buffer&&)> done) {
  if (!c.ready())
    return done(error_reply(down));
  auto name = lower(a[0]);
  if (name == "watch") {
    if (a.size() < 2)
      return done(arity_error(a[0]));
    int slot = s.tx.slot;
    for (size_t i = 1; i < a.size(); ++i) {
      int k = kura::key_slot(a[i]);
      if (slot >= 0 && k != slot)
        return done(error_reply(crossslot));
      slot = k;
    }
    s.tx.slot = slot;
    std::vector<std::string> args{"kura.node.watch"};
    for (size_t i = 1; i < a.size(); ++i)
      args.emplace_back(a[i]);
    auto cands = c.exec_candidates(a[1]);
    return at_owner(c, args, std::move(cands), 0, [args, with_session, done](out_buffer&& r) {
      std::string rs(r.begin(), r.end());
      std::vector<std::string> flat;
      if (!parse_bulks(rs, flat) || flat.size() != 3 * (args.size() - 1))
        return done(std::move(r)); // an error (CLUSTERDOWN ...)
      with_session([&](session& s) {
        for (size_t i = 1; i < args.size(); ++i) {
          bool dup = false;
          for (auto& w : s.tx.watched)
            dup = dup || w.key == args[i];
          if (dup)
            continue;
          watched_key w;
          w.key = args[i];
          w.live = flat[3 * (i - 1)] == "1";
          w.ver.hlc = std::strtoull(flat[3 * (i - 1) + 1].c_str(), nullptr, 10);
          w.ver.node =
              static_cast<uint32_t>(std::strtoul(flat[3 * (i - 1) + 2].c_str(), nullptr, 10));
          s.tx.watched.push_back(std::move(w));
        }
      });
      auto o = fresh_buffer();
      put_ok(o);
      done(std::move(o));
    });
  }
  // EXEC of a transaction with keys: forwarded as a unit to its slot's owner
  auto queued = std::move(s.tx.queued);
  auto watched = std::move(s.tx.watched);
  s.tx.watched.clear();
  s.tx.discard();
  s.tx.unwatch();
  s.tx.slot = -1;
  std::string slot_key;
  std::vector<std::string> args{"kura.node.exec", std::to_string(watched.size())};
  for (auto& w : watched) {
    if (slot_key.empty())
      slot_key = w.key;
    args.push_back(w.key);
    args.emplace_back(w.live ? "1" : "0");
    args.push_back(std::to_string(w.ver.hlc));
    args.push_back(std::to_string(w.ver.node));
  }
  auto& reg = cluster_executor().registry();
  for (auto& q : queued) {
    std::vector<std::string_view> keys;
    command_args qa(q.begin(), q.end());
    (void)reg.keys_of(qa, keys);
    if (slot_key.empty() && !keys.empty())
      slot_key = std::string(keys[0]);
    args.push_back(std::to_string(q.size()));
    args.insert(args.end(), q.begin(), q.end());
  }
  if (slot_key.empty()) { // watched keys released meanwhile: nothing to place
    auto o = fresh_buffer();
    put_array_header(o, 0);
    return done(std::move(o));
  }
  auto cands = c.exec_candidates(slot_key);
  auto fdone = forwarding(c, kura::key_slot(slot_key), cands, std::move(done));
  at_owner(c, std::move(args), std::move(cands), 0, std::move(fdone));
}

} // namespace kura::node
