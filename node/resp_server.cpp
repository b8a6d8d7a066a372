#include "node/resp_server.hpp"
#include "node/cluster_tls.hpp"

#include "actors/lost_keys.hpp"
#include "node/backpressure.hpp"
#include "node/cluster_faces.hpp"
#include "node/cluster_routing.hpp"
#include "node/cluster_tracking.hpp"
#include "node/erase.hpp"
#include "node/metrics.hpp"
#include "node/ops.hpp"
#include "node/security.hpp"
#include "tiers/slot.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <algorithm>
#include <deque>
#include <iostream>
#include <unordered_map>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

using namespace caf;
using namespace caf::io;

namespace kura::node {

namespace {

using housekeeping_atom = atom_constant<atom("housekeep")>;
using resume_atom = atom_constant<atom("resume")>;
/// Runs the connections a busy script's pump read from (after the script).
using pumped_atom = atom_constant<atom("pumped")>;

constexpr uint32_t housekeeping_ms = 100;
/// A read that leaves this many write-behind ops pending sends them to L3 at
/// once (if L3 has credit); smaller batches leave with the next ack or tick.
constexpr size_t batch_eager_ops = 256;
/// Tracked keys checked for eviction per housekeeping tick (L3 off).
constexpr size_t tracking_probe_budget = 1000;
/// Routed commands in flight per connection (cluster nodes): beyond this the
/// connection's later commands wait in its input.
constexpr size_t max_routed_in_flight = 4096;

/// A reply of a pipelined connection that may not be ready yet (cluster
/// nodes): replies leave in command order, each as soon as it and all before
/// it are done.
struct reply_slot {
  bool done = false;
  out_buffer bytes;
};

struct conn {
  std::string in; ///< unconsumed input; a waiting command stays at its front
  resp_parser parser;
  /// The arguments of a command the read-ahead parsed, while it runs (a
  /// command may run another connection's commands: not shared).
  std::vector<std::string_view> ahead_args;
  session sess;
  bool waiting = false; ///< the command at the front waits for L3
  bool closing = false;
  bool halted = false;          ///< commands paused for back-pressure
  std::deque<reply_slot> slots; ///< replies in command order, oldest first
  uint64_t first_slot = 0;      ///< number of the slot at slots.front()
  bool in_process = false;      ///< process() is on the stack for this connection
  /// kura.l3.sync: the replies in the output buffer wait until L3 committed
  /// write-behind batch `durable_ticket` (no command runs meanwhile);
  /// `dirty`: a command run outside process() wrote.
  /// The held replies live in `held`, not in the scribe's buffer: CAF 0.17
  /// goes on writing that buffer by itself when an earlier write completes.
  bool durable = false;
  bool dirty = false;
  uint64_t durable_ticket = 0;
  out_buffer held;
  /// TLS connections: the session between the scribe's bytes and `in`, and
  /// the plaintext replies that flush_conn encrypts into the scribe's buffer.
  std::unique_ptr<tls_conn> tls;
  out_buffer tls_out;
  face_state face; ///< cluster nodes: what the client told us (node/cluster_faces.hpp)
  /// The busy pump (a long script runs) read this connection's socket: its
  /// input must be processed once the script ends.
  bool pumped = false;
  /// A direct send of the pump was short: later replies queue behind it.
  bool busy_fallback = false;
  /// CAF's scribe may still hold bytes of this connection (handed over by
  /// flush() and not yet reported written by data_transferred_msg): replies
  /// must queue behind them instead of being sent directly (flush_conn).
  bool caf_writing = false;
  /// Replies completed while the cluster delivered a batch of results wait
  /// in the output for flush_delivered (one send() per connection per batch).
  bool deferred = false;
};

struct resp_state {
  std::shared_ptr<actors::store_core> core;
  resp_server_config cfg;
  node_facts facts;
  std::unique_ptr<command_table> cmds;
  node_metrics* metrics = nullptr;
  std::unordered_map<connection_handle, conn> conns;
  std::unordered_map<uint64_t, connection_handle> by_id; ///< session id -> connection
  fetch_plan plan;
  /// prefetch_ahead's parser, the keys it found, and what it read of each
  /// command, by offset in the input.
  resp_parser ahead;
  std::vector<std::string_view> ahead_keys;
  /// The arguments of the commands read ahead, one after the other: views
  /// into the input at ahead_base, which process() runs without parsing
  /// them again while the input has not moved.
  std::vector<std::string_view> ahead_args;
  const char* ahead_base = nullptr;
  struct ahead_command {
    size_t off;            ///< where the command starts in the input
    size_t len;            ///< its bytes (the parser's consumed())
    int id;                ///< registry find() of its name
    uint32_t args_end = 0; ///< its arguments end here in ahead_args (after the previous one's)
    uint32_t keys_end = 0; ///< its keys end here in ahead_keys (they follow the previous one's)
    bool resident = false; ///< no L3 lookup to plan: its keys were all in memory (ahead_removals)
  };
  std::vector<ahead_command> ahead_ids;
  uint64_t ahead_round = 0;    ///< prefetch_ahead calls so far (whose ahead_ids these are)
  uint64_t ahead_removals = 0; ///< keyspace::removals() when it ran
  uint64_t next_id = 1;
  int get_id = -1; ///< the registry's id of GET (a cluster node's fast path)
  std::vector<connection_handle> stalled;
  /// kura.l3.sync on a single node: replies to writes leave once committed.
  bool sync_replies = false;
  std::vector<connection_handle> durable; ///< connections holding replies
  bool resume_armed = false;
  bool resuming = false;
  uint32_t ticks = 0;
  uint64_t max_query_bytes = 0;
  std::shared_ptr<tls_server> tls;       ///< null when kura.tls.port is 0
  std::vector<connection_handle> pumped; ///< connections the busy pump read
  bool pump_armed = false;               ///< a pumped_atom is on its way
  accept_handle tls_acceptor;
  /// Client tracking on a cluster node (node/cluster_tracking.hpp); after
  /// `cmds`, whose hub it uses.
  std::shared_ptr<cluster_tracking> tracking;
  /// Connections (and their session ids) whose replies complete_slot held
  /// while the cluster delivered a batch of results (flush_delivered).
  std::vector<std::pair<connection_handle, uint64_t>> deferred;
  static inline const char* name = "kura.resp";
  ~resp_state() {
    if (core)
      core->external_change = nullptr; // the hub goes with this broker
    if (cfg.cluster && cfg.cluster->delivery_owner == this) {
      cfg.cluster->after_delivery = nullptr;
      cfg.cluster->delivery_owner = nullptr;
    }
  }
};

using self_ptr = stateful_actor<resp_state, broker>*;

void process(self_ptr self, connection_handle hdl);
void hold_replies(self_ptr self, connection_handle hdl, conn& c);
void release_held(self_ptr self, connection_handle hdl, conn& c);
void complete_slot(self_ptr self, connection_handle hdl, uint64_t conn_id, uint64_t n,
                   out_buffer&& reply);

/// Where replies to `c` go: the scribe's write buffer, or for a TLS
/// connection the plaintext buffer that flush_conn encrypts.
out_buffer& out_of(self_ptr self, connection_handle hdl, conn& c) {
  return c.tls ? c.tls_out : self->wr_buf(hdl);
}

/// Replies up to this size are sent directly (flush_conn); a larger one (a
/// 64 MiB GET) goes to CAF, which writes it from where the socket stopped
/// instead of having the unsent rest moved to the buffer's front.
constexpr size_t direct_send_bytes = 1 << 20;

/// Sends the replies in out_of(c), through TLS when `c` speaks it; `last`
/// adds TLS's close_notify before the connection is closed.
///
/// A plain connection's replies go out with one send() right here, as Redis
/// writes its replies before it waits for events again. Handing them to CAF
/// instead costs, per flush, an epoll_ctl to watch the socket for writing,
/// one more event-loop pass to write, and an epoll_ctl to stop watching (at
/// -P 1 that is three syscalls per command). Only what the socket does not
/// take goes to CAF's buffer; until CAF reports it written (ack_writes:
/// data_transferred_msg with nothing remaining), later replies queue behind
/// it there, so bytes never overtake each other. While part of a command is
/// still arriving (a pipeline split over several reads), the replies so far
/// go to CAF too, which writes them together with the rest at the end of
/// the event-loop pass instead of one send() per read.
void flush_conn(self_ptr self, connection_handle hdl, conn& c, bool last = false) {
  auto& wire = self->wr_buf(hdl);
  if (c.tls) {
    if (!c.tls_out.empty()) {
      c.tls->send(c.tls_out.data(), c.tls_out.size(), wire);
      c.tls_out.clear();
    }
    if (last)
      c.tls->shutdown(wire);
  } else if (!wire.empty() && wire.size() <= direct_send_bytes && c.in.empty() && !c.caf_writing &&
             !c.busy_fallback && c.sess.fd >= 0) {
    auto n =
        ::send(static_cast<int>(c.sess.fd), wire.data(), wire.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) { // an error (EAGAIN, a reset) leaves it to CAF, which reports it
      if (static_cast<size_t>(n) == wire.size())
        wire.clear();
      else
        wire.erase(wire.begin(), wire.begin() + n);
    }
  }
  if (wire.empty())
    return;
  c.caf_writing = true;
  self->flush(hdl);
}

/// Forgets a connection (already closed or being closed).
void drop_conn(resp_state& st, std::unordered_map<connection_handle, conn>::iterator it) {
  st.cmds->hub().remove_client(it->second.sess.id);
  st.by_id.erase(it->second.sess.id);
  st.conns.erase(it);
}

/// Closes the connections CLIENT KILL marked (never the one running: a
/// client that kills itself quits after its reply).
void reap_killed(self_ptr self) {
  auto& st = self->state;
  for (auto it = st.conns.begin(); it != st.conns.end();) {
    auto next = std::next(it);
    if (it->second.sess.killed) {
      flush_conn(self, it->first, it->second, true);
      self->close(it->first);
      drop_conn(st, it);
    }
    it = next;
  }
}

void update_facts(resp_state& st) {
  st.facts.connected_clients = st.conns.size();
  st.facts.l3_queue_depth = st.facts.l3_queue ? st.facts.l3_queue() : st.core->queue_depth();
}

void push_metrics(resp_state& st) {
  if (!st.metrics)
    return;
  auto& ks = st.core->ks();
  if (st.facts.memory_stats) { // a cluster node: the tiers of cluster data
    auto [l1, l2] = st.facts.memory_stats();
    st.metrics->set_tier("l1", l1);
    st.metrics->set_tier("l2", l2);
  } else {
    st.metrics->set_tier("l1", ks.l1_stats());
    st.metrics->set_tier("l2", ks.l2_stats());
  }
  if (st.core->has_l3()) {
    auto snap = st.core->l3_stats->get();
    st.metrics->set_tier("l3", snap.stats);
    st.metrics->set_l3_queue(st.core->queue_depth(), snap.pending);
  } else if (st.facts.memory_stats && st.facts.l3_stats) {
    st.metrics->set_tier("l3", st.facts.l3_stats());
    st.metrics->set_l3_queue(st.facts.l3_queue ? st.facts.l3_queue() : 0,
                             st.facts.l3_uncommitted ? st.facts.l3_uncommitted() : 0);
  } else {
    st.metrics->set_l3_queue(0, 0);
  }
  st.metrics->set_commands(st.cmds->names(), st.cmds->stats());
  st.metrics->set_connections(st.conns.size(), st.facts.total_connections,
                              st.facts.rejected_connections);
}

/// CONFIG SET timeout: closes clients idle longer than that (not those
/// waiting for L3, nor RESP2 subscribers, as Redis spares them).
void close_idle(self_ptr self) {
  auto& st = self->state;
  auto now = st.core->ks().clock().mono_ns();
  uint64_t limit = st.facts.idle_timeout_s * 1'000'000'000ull;
  for (auto it = st.conns.begin(); it != st.conns.end();) {
    auto next = std::next(it);
    auto& s = it->second.sess;
    uint64_t last = std::max(s.last_ns, s.created_ns);
    bool subscriber = s.resp == 2 && s.subscribed();
    if (!it->second.waiting && !subscriber && now > last && now - last > limit) {
      self->close(it->first);
      drop_conn(st, it);
    }
    it = next;
  }
  update_facts(st);
}

/// Stops running commands of `hdl` until L3 catches up. The connection keeps
/// reading into its input buffer (bounded by the query buffer limit): CAF
/// 0.17's halt()/trigger() pair did not resume reading a halted connection in
/// our tests, and clients that wait for replies stop sending on their own.
void stall(self_ptr self, connection_handle hdl, conn& c) {
  auto& st = self->state;
  st.core->flush_writes(false); // hand L3 what is pending now, not at the next tick
  if (!c.halted) {
    c.halted = true;
    st.stalled.push_back(hdl);
  }
  // the ack that drains the queue wakes us; the timer is the fallback
  st.core->wake_when_drained(caf::actor_cast<caf::actor>(self));
  if (!st.resume_armed) {
    st.resume_armed = true;
    self->delayed_send(self, std::chrono::milliseconds(10), resume_atom::value);
  }
}

/// Reports an L3 failure for the command at the front of `c` and drops it.
void fail_front(self_ptr self, connection_handle hdl, conn& c, std::string_view why) {
  auto ps = c.parser.next(c.in);
  put_error(out_of(self, hdl, c), why);
  if (ps == parse_status::ok)
    c.in.erase(0, c.parser.consumed());
  else
    c.closing = true;
}

void on_lookup(self_ptr self, connection_handle hdl, actors::staged_entries& staged, uint64_t seq,
               actors::lookup_outcome o) {
  auto& st = self->state;
  auto& ks = st.core->ks();
  auto it = st.conns.find(hdl);
  if (it == st.conns.end()) { // the client left while L3 looked
    if (o == actors::lookup_outcome::ok)
      actors::finish_lookup(*st.core, staged, seq);
    return;
  }
  conn& c = it->second;
  c.waiting = false;
  if (o == actors::lookup_outcome::failed) {
    fail_front(self, hdl, c, "ERR L3 lookup failed or timed out");
  } else if (o == actors::lookup_outcome::ok) {
    try {
      if (c.parser.next(c.in) == parse_status::ok) {
        ks.set_overlay(&staged);
        uint64_t w0 = st.core->writes();
        st.cmds->execute(c.parser.args(), c.sess, out_of(self, hdl, c));
        c.dirty = c.dirty || st.core->writes() != w0;
        ks.set_overlay(nullptr);
        c.in.erase(0, c.parser.consumed());
        if (c.sess.quit)
          c.closing = true;
      }
    } catch (const std::exception& e) {
      ks.set_overlay(nullptr);
      put_error(out_of(self, hdl, c), std::string("ERR internal error: ") + e.what());
      c.closing = true;
    }
    actors::finish_lookup(*st.core, staged, seq);
  }
  process(self, hdl); // retry: plans the same command again
}

void on_listing(self_ptr self, connection_handle hdl, const listing* lst, bool ok) {
  auto& st = self->state;
  auto it = st.conns.find(hdl);
  if (it == st.conns.end())
    return;
  conn& c = it->second;
  c.waiting = false;
  if (!ok) {
    fail_front(self, hdl, c, "ERR L3 listing failed or timed out");
  } else {
    try {
      if (c.parser.next(c.in) == parse_status::ok) {
        st.cmds->execute(c.parser.args(), c.sess, out_of(self, hdl, c), lst);
        c.in.erase(0, c.parser.consumed());
      }
    } catch (const std::exception& e) {
      put_error(out_of(self, hdl, c), std::string("ERR internal error: ") + e.what());
      c.closing = true;
    }
  }
  process(self, hdl);
}

void start_fetch(self_ptr self, connection_handle hdl, const fetch_plan& plan) {
  auto& st = self->state;
  if (plan.kind == fetch_plan::lookup) {
    actors::lookup_l3(
        self, *st.core, plan.keys,
        [self, hdl](actors::staged_entries& staged, uint64_t seq, actors::lookup_outcome o) {
          on_lookup(self, hdl, staged, seq, o);
        });
    return;
  }
  st.core->flush_writes(true);
  actors::l3_list q;
  q.mode = plan.mode == fetch_plan::list_count    ? actors::l3_list::count
           : plan.mode == fetch_plan::list_random ? actors::l3_list::random
                                                  : actors::l3_list::keys;
  q.pattern = plan.pattern;
  q.after = plan.after;
  q.limit = plan.limit;
  q.phase = plan.phase;
  self->request(st.core->l3, std::chrono::milliseconds(st.core->config().l3_timeout_ms),
                std::move(q))
      .then(
          [self, hdl](actors::l3_listing& l) {
            listing lst;
            lst.keys = std::move(l.keys);
            lst.count = l.count;
            lst.last = std::move(l.last);
            lst.done = l.done;
            lst.flags = std::move(l.flags);
            lst.phase = l.phase;
            on_listing(self, hdl, &lst, true);
          },
          [self, hdl](caf::error&) { on_listing(self, hdl, nullptr, false); });
}

/// A routed command's reply is in: send it and every finished one behind it.
void complete_slot(self_ptr self, connection_handle hdl, uint64_t conn_id, uint64_t n,
                   out_buffer&& reply) {
  auto& st = self->state;
  auto it = st.conns.find(hdl);
  // The client left: its handle (the socket's fd) may belong to a newer
  // connection by now, whose slots this reply must not touch.
  if (it == st.conns.end() || it->second.sess.id != conn_id || n < it->second.first_slot ||
      n - it->second.first_slot >= it->second.slots.size())
    return;
  conn& c = it->second;
  auto& slot = c.slots[n - c.first_slot];
  slot.done = true;
  slot.bytes = std::move(reply);
  auto& out = out_of(self, hdl, c);
  bool sent = false;
  while (!c.slots.empty() && c.slots.front().done) {
    auto& b = c.slots.front().bytes;
    out.insert(out.end(), b.begin(), b.end());
    c.slots.pop_front();
    ++c.first_slot;
    sent = true;
  }
  if (c.in_process)
    return; // process() flushes and goes on by itself
  if (st.cfg.cluster && st.cfg.cluster->delivering() && st.cfg.cluster->delivery_owner == &st) {
    // one of a batch of results (a peer's acks): flush_delivered sends
    // what the batch completed for this connection at once
    if (!c.deferred) {
      c.deferred = true;
      st.deferred.emplace_back(hdl, conn_id);
    }
    return;
  }
  if (sent)
    flush_conn(self, hdl, c);
  if (!c.in.empty() && !c.waiting && !c.halted)
    process(self, hdl); // commands held back by max_routed_in_flight
}

/// The cluster delivered a batch of results: send each connection's
/// replies complete_slot held (in order: they are in its output already)
/// and go on with its commands held back by max_routed_in_flight.
void flush_delivered(self_ptr self) {
  auto& st = self->state;
  while (!st.deferred.empty()) {
    auto batch = std::move(st.deferred);
    st.deferred.clear();
    for (auto& [hdl, id] : batch) {
      auto it = st.conns.find(hdl);
      if (it == st.conns.end() || it->second.sess.id != id || !it->second.deferred)
        continue;
      conn& c = it->second;
      c.deferred = false;
      if (c.in_process)
        continue; // process() flushes and goes on by itself
      flush_conn(self, hdl, c);
      if (!c.in.empty() && !c.waiting && !c.halted)
        process(self, hdl);
    }
  }
}

// -- serving others while a script runs long ------------------------------------
// A script holds the multiplexer thread until it ends (scripts are atomic).
// Past busy-reply-threshold its instruction hook calls busy_pump, which does
// what the multiplexer cannot do meanwhile: it reads each other connection's
// socket itself (non-blocking), answers its complete commands through
// command_table::execute_busy (-BUSY, or SCRIPT KILL, MULTI, DISCARD ...), and
// writes those replies straight to the socket. The bytes it read never reach
// CAF, so those connections are processed again after the script
// (pumped_atom). A reply goes through CAF's buffer instead (sent after the
// script) when that buffer still holds bytes for the connection, so replies
// never overtake each other.

/// Sends `bytes` to `c` now if nothing of it waits in CAF's buffer.
void send_now(self_ptr self, connection_handle hdl, conn& c, const out_buffer& bytes) {
  out_buffer wire;
  const out_buffer* data = &bytes;
  if (c.tls) {
    c.tls->send(bytes.data(), bytes.size(), wire);
    data = &wire;
  }
  auto& caf_buf = self->wr_buf(hdl);
  size_t sent = 0;
  if (!c.busy_fallback && !c.caf_writing && caf_buf.empty()) {
    auto n = ::send(static_cast<int>(c.sess.fd), data->data(), data->size(),
                    MSG_DONTWAIT | MSG_NOSIGNAL);
    sent = n > 0 ? static_cast<size_t>(n) : 0;
  }
  if (sent < data->size()) {
    c.busy_fallback = true;
    c.caf_writing = true;
    caf_buf.insert(caf_buf.end(), data->begin() + static_cast<long>(sent), data->end());
    self->flush(hdl);
  }
}

void busy_pump(self_ptr self, uint64_t running) {
  auto& st = self->state;
  for (auto& [hdl, c] : st.conns) {
    if (c.sess.id == running || c.closing || c.sess.fd < 0)
      continue;
    char buf[4096];
    bool got = false;
    while (c.in.size() <= st.facts.query_buffer_limit) {
      auto n = ::recv(static_cast<int>(c.sess.fd), buf, sizeof buf, MSG_DONTWAIT);
      if (n <= 0)
        break; // nothing more now, or EOF / an error that CAF reports later
      got = true;
      if (c.tls) {
        out_buffer wire;
        if (!c.tls->receive(buf, static_cast<size_t>(n), c.in, wire))
          break;
        if (!wire.empty()) {
          auto& caf_buf = self->wr_buf(hdl);
          caf_buf.insert(caf_buf.end(), wire.begin(), wire.end());
          self->flush(hdl);
          c.busy_fallback = true;
        }
      } else {
        c.in.append(buf, static_cast<size_t>(n));
      }
    }
    if (got && !c.pumped) {
      c.pumped = true;
      st.pumped.push_back(hdl);
      if (!st.pump_armed) {
        st.pump_armed = true;
        self->send(self, pumped_atom::value);
      }
    }
    if (c.waiting || c.halted || c.durable || !c.slots.empty() || c.in.empty())
      continue;
    out_buffer reply;
    while (!c.sess.quit) {
      c.parser.set_unauthenticated(!c.sess.authenticated &&
                                   st.cmds->security().acl->auth_required());
      auto ps = c.parser.next(c.in);
      if (ps == parse_status::incomplete || ps == parse_status::error)
        break; // an error is reported by process() after the script
      if (ps == parse_status::ok)
        st.cmds->execute_busy(c.parser.args(), c.sess, reply);
      c.in.erase(0, c.parser.consumed());
    }
    c.parser.reset();
    if (!reply.empty())
      send_now(self, hdl, c, reply);
  }
}

/// After a busy script: what the pump read but did not run, and the quits.
void run_pumped(self_ptr self) {
  auto& st = self->state;
  st.pump_armed = false;
  auto list = std::move(st.pumped);
  st.pumped.clear();
  for (auto hdl : list) {
    auto it = st.conns.find(hdl);
    if (it == st.conns.end())
      continue;
    conn& c = it->second;
    c.pumped = false;
    c.busy_fallback = false;
    if (c.sess.quit) {
      flush_conn(self, hdl, c, true);
      self->close(hdl);
      drop_conn(st, it);
      update_facts(st);
      continue;
    }
    if (!c.in.empty() && !c.waiting && !c.halted && !c.durable)
      process(self, hdl);
  }
}

/// Runs every complete command of `hdl` that can run now.
/// Bulk arguments from this size on get their whole room in the input buffer
/// when their length is known (Redis: PROTO_MBULK_BIG_ARG).
constexpr size_t big_arg_bytes = 32 * 1024;

/// Commands read ahead per prefetch, and the input bytes read ahead at most
/// (see prefetch_ahead).
constexpr size_t prefetch_commands = 32;
constexpr size_t prefetch_window_bytes = 16 * 1024;

/// Pipelined reads without waiting on memory, one after the other: reads the
/// complete commands of c.in from `off` on (up to prefetch_commands, with a
/// parser of its own) and hands their keys to keyspace::prefetch, which
/// starts loading the index slots, nodes and filter words their lookups will
/// touch. The lookups then find them in cache: for GET -P 16 on 100 MB of
/// values each lookup was ~4 dependent cache misses, one after the other.
/// Returns the offset after the last command read (commands up to there are
/// prefetched); the command ids it looked up stay in st.ahead_ids for the
/// commands to run (one name lookup per command), with whether memory held
/// every key of the command: while no node left memory since (keyspace::
/// removals), such a command needs no L3 lookup, and process() runs it
/// without planning one (with L3 on, the plan's memory lookup per key was
/// ~550 instructions of a GET, a second lookup of the key). A hint only: it
/// changes no state but the cache's. It reads
/// no further than prefetch_window_bytes past `off`: unlike the connection's
/// parser it starts afresh each time, and a huge command arriving in pieces
/// (an MSET of a million keys) must not be scanned again with every piece.
size_t prefetch_ahead(resp_state& st, conn& c, size_t off) {
  auto& keys = st.ahead_keys;
  keys.clear();
  st.ahead_ids.clear();
  st.ahead_args.clear();
  st.ahead_base = c.in.data();
  ++st.ahead_round;
  auto& ks = st.core->ks();
  // only where the plan is the default one (plan_key_lookup over these keys)
  const bool plans = ks.has_l3();
  auto& p = st.ahead;
  p.reset();
  size_t end = off;
  const size_t stop = std::min(c.in.size(), off + prefetch_window_bytes);
  const auto& reg = st.cmds->registry();
  for (size_t n = 0; n < prefetch_commands && end < stop && c.in[end] == '*'; ++n) {
    if (p.next(std::string_view(c.in.data() + end, stop - end)) != parse_status::ok)
      break;
    const auto& a = p.args();
    int id = a.empty() ? -1 : reg.find(a[0]);
    st.ahead_args.insert(st.ahead_args.end(), a.begin(), a.end());
    st.ahead_ids.push_back({end, p.consumed(), id, static_cast<uint32_t>(st.ahead_args.size())});
    end += p.consumed();
    if (a.size() >= 2 && id >= 0) {
      const auto& sp = reg.spec(id);
      const size_t first = keys.size();
      for_each_key_index(sp, a.size(), [&](size_t i) { keys.push_back(a[i]); });
      // a candidate: plan() would call plan_key_lookup on exactly these keys
      st.ahead_ids.back().resident = plans && sp.first_key != 0 && !sp.planner &&
                                     sp.subcommands.empty() && keys.size() > first;
    }
    st.ahead_ids.back().keys_end = static_cast<uint32_t>(keys.size());
  }
  if (!plans) {
    if (keys.size() > 1)
      ks.prefetch(keys.data(), keys.size());
    return end;
  }
  // prefetch_commands x a few keys each: one array on the stack, or none
  constexpr size_t max_keys = 256;
  bool resident[max_keys];
  const bool exact = keys.size() <= max_keys;
  if (keys.size() > 1 || exact)
    ks.prefetch(keys.data(), keys.size(), exact ? resident : nullptr);
  st.ahead_removals = ks.removals();
  uint32_t from = 0;
  for (auto& cmd : st.ahead_ids) {
    if (cmd.resident)
      cmd.resident =
          exact && std::all_of(resident + from, resident + cmd.keys_end, [](bool r) { return r; });
    from = cmd.keys_end;
  }
  return end;
}

void process(self_ptr self, connection_handle hdl) {
  auto& st = self->state;
  auto it = st.conns.find(hdl);
  if (it == st.conns.end())
    return;
  conn& c = it->second;
  c.in_process = true;
  size_t off = 0;
  auto& out = out_of(self, hdl, c);
  st.facts.l3_queue_depth = st.facts.l3_queue ? st.facts.l3_queue() : st.core->queue_depth();
  uint64_t writes_before = st.core->writes();
  // Not for strangers (AUTH first) nor on cluster nodes, whose keys mostly
  // live elsewhere.
  const bool read_ahead =
      !st.cfg.cluster && (c.sess.authenticated || !st.cmds->security().acl->auth_required());
  size_t ahead = 0;      // commands before this offset are prefetched
  size_t ahead_next = 0; // the next of st.ahead_ids to match
  uint64_t round = 0;    // st.ahead_ids are ours while st.ahead_round is this
  const auto& reg = st.cmds->registry();
  try {
    while (!c.waiting && !c.closing && !c.durable) {
      if (out.size() > st.facts.max_output_bytes ||
          (c.tls && self->wr_buf(hdl).size() > st.facts.max_output_bytes)) {
        out.clear(); // the client does not read: drop what it would not take
        if (c.tls)   // whole TLS records only; the client cannot read the error
          self->wr_buf(hdl).clear();
        put_error(out, "ERR max output buffer size reached for this client");
        c.closing = true;
        break;
      }
      if (off >= c.in.size())
        break; // nothing left to run
      if (read_ahead && off >= ahead) {
        ahead = prefetch_ahead(st, c, off);
        ahead_next = 0;
        round = st.ahead_round;
      }
      // the read-ahead's command when it read this one (and no other
      // connection's read-ahead ran since, from inside a command)
      const auto& ids = st.ahead_ids;
      if (round != st.ahead_round)
        ahead_next = ids.size();
      while (ahead_next < ids.size() && ids[ahead_next].off < off)
        ++ahead_next;
      const bool ahead_read = ahead_next < ids.size() && ids[ahead_next].off == off;
      const bool unauth = !c.sess.authenticated && st.cmds->security().acl->auth_required();
      // parsed already by the read-ahead (a parser with the same limits,
      // authenticated): its arguments, while they still point into c.in
      const bool handed = ahead_read && !unauth && c.in.data() == st.ahead_base;
      size_t consumed = 0;
      if (handed) {
        const auto& cmd = ids[ahead_next];
        const uint32_t from = ahead_next ? ids[ahead_next - 1].args_end : 0;
        c.ahead_args.assign(st.ahead_args.begin() + from, st.ahead_args.begin() + cmd.args_end);
        c.parser.reset(); // what an earlier call read of this command in pieces
        consumed = cmd.len;
      } else {
        std::string_view view(c.in.data() + off, c.in.size() - off);
        c.parser.set_unauthenticated(unauth);
        auto ps = c.parser.next(view);
        if (ps == parse_status::incomplete)
          break;
        if (ps == parse_status::empty) {
          off += c.parser.consumed();
          continue;
        }
        if (ps == parse_status::error) {
          put_error(out, "ERR " + c.parser.error());
          c.closing = true;
          break;
        }
        consumed = c.parser.consumed();
      }
      const auto& args = handed ? c.ahead_args : c.parser.args();
      const int id = ahead_read ? ids[ahead_next].id : args.empty() ? -1 : reg.find(args[0]);
      // Back-pressure (node/backpressure.hpp): over the write-behind mark a
      // command that may write waits, and while others wait newcomers'
      // writes queue behind them (fairness); reads go on. The command stays
      // in c.in and is parsed again on resume.
      if ((st.core->backlogged() || (!st.stalled.empty() && !st.resuming)) &&
          waits_at_high_water(reg, args, id)) {
        c.parser.reset();
        stall(self, hdl, c);
        break;
      }
      if (st.cfg.cluster) {
        if (c.slots.size() >= max_routed_in_flight) {
          c.parser.reset();
          break; // resumed when replies drain
        }
        // GET outside MULTI is route::cluster: no classify (its lookups)
        const bool get = id >= 0 && id == st.get_id && !c.sess.tx.active;
        auto rt = get ? route::cluster : classify(st.cmds->registry(), args, c.sess);
        if (rt == route::transaction && !c.slots.empty()) {
          c.parser.reset();
          break; // WATCH/EXEC wait for earlier replies (a WATCH's versions); resumed then
        }
        if (rt != route::local) {
          uint64_t n = c.first_slot + c.slots.size();
          c.slots.emplace_back();
          off += consumed;
          // the same AUTH / ACL check the command table makes before a handler
          out_buffer refused;
          if (!permit(st.cmds->security(), reg, reg.resolve(args, id), args, c.sess, refused,
                      st.core->ks().clock())) {
            complete_slot(self, hdl, c.sess.id, n, std::move(refused));
            if (c.sess.quit)
              c.closing = true;
            continue;
          }
          // A GET this node answers from its own copy at once (get_here):
          // into the output when no routed reply is ahead of it, else into
          // its slot; no callback. (Not for tracking connections: their
          // reads are recorded by st.tracking.)
          if (get && args.size() == 2 && !c.sess.tracking) {
            const bool alone = c.slots.size() == 1;
            if (get_here(*st.cfg.cluster, args[1], c.sess.resp == 3,
                         alone ? out : c.slots.back().bytes)) {
              c.face.asking = false; // ASKING covers one command (faces_first)
              if (alone)
                c.slots.pop_back();
              else
                c.slots.back().done = true;
              continue;
            }
          }
          bool resp3 = c.sess.resp == 3;
          auto shape = resp3 ? resp3_shape_of(args) : resp3_shape::plain;
          std::function<void(out_buffer &&)> done = [self, hdl, n, id = c.sess.id, resp3,
                                                     shape](out_buffer&& reply) {
            if (resp3) // routed replies are built in RESP2
              resp3_routed(shape, reply);
            complete_slot(self, hdl, id, n, std::move(reply));
          };
          if (rt == route::transaction) {
            if (!st.tracking->transaction(reg, args, c.sess, done))
              run_transaction(
                  *st.cfg.cluster, args, c.sess,
                  [self, hdl, id = c.sess.id](const std::function<void(session&)>& f) {
                    auto i = self->state.conns.find(hdl);
                    if (i != self->state.conns.end() && i->second.sess.id == id)
                      f(i->second.sess);
                  },
                  std::move(done));
          } else if (!faces_first(*st.cfg.cluster, reg, c.face, args, c.sess.resp, done) &&
                     !st.tracking->routed(reg, args, c.sess, done))
            run_clustered(*st.cfg.cluster, args, std::move(done));
          continue;
        }
        if (!c.slots.empty()) { // a local reply behind routed ones waits its turn
          c.slots.emplace_back();
          c.slots.back().done = true;
          st.cmds->execute(args, c.sess, c.slots.back().bytes);
          off += consumed;
          if (c.sess.quit)
            c.closing = true;
          continue;
        }
      }
      // every key in memory when read ahead, and none left since: nothing to
      // look up in L3 (the plan would find each key in memory again)
      if (ahead_read && ids[ahead_next].resident && st.core->ks().removals() == st.ahead_removals)
        st.plan.clear();
      else
        st.cmds->plan(args, c.sess, st.plan, id);
      if (st.plan.kind == fetch_plan::none) {
        // a large SET value takes the input buffer over (keyspace::write_arg);
        // the bytes after this command stay the connection's input
        auto& ks = st.core->ks();
        if (!st.cfg.cluster)
          ks.set_input(&c.in);
        st.cmds->execute(args, c.sess, out, nullptr, id);
        ks.set_input(nullptr);
        if (auto taken = ks.take_input()) {
          size_t end = off + consumed;
          c.in.assign(taken->data() + end, taken->size() - end);
          off = 0;
          ahead = 0;
          round = 0;
          if (c.sess.quit)
            c.closing = true;
          continue;
        }
        off += consumed;
        if (c.sess.quit)
          c.closing = true;
        continue;
      }
      c.waiting = true; // the command stays in c.in until L3 answered
      c.parser.reset();
      start_fetch(self, hdl, st.plan);
    }
  } catch (const std::exception& e) {
    st.core->ks().set_input(nullptr);
    (void)st.core->ks().take_input(); // the connection closes: its input goes
    put_error(out, std::string("ERR internal error: ") + e.what());
    c.closing = true;
  }
  if (off > 0)
    c.in.erase(0, off);
  // A large bulk argument still arriving (a 64 MiB SET): room for all of it
  // at once, as Redis does, instead of doubling the buffer (and copying and
  // faulting in the bytes so far) a dozen times on the serving thread.
  if (size_t want = c.parser.bytes_wanted(); want >= big_arg_bytes && !c.closing)
    c.in.reserve(c.in.size() + want);
  c.in_process = false;
  if (st.core->pending_ops() >= batch_eager_ops)
    st.core->flush_writes(false);
  if (st.sync_replies && !c.closing && (c.dirty || st.core->writes() != writes_before)) {
    hold_replies(self, hdl, c);
  } else if (!c.durable || c.closing) {
    release_held(self, hdl, c);
    flush_conn(self, hdl, c, c.closing);
  }
  if (c.closing) {
    self->close(hdl);
    drop_conn(st, it);
    update_facts(st);
  }
  if (st.cmds->take_kills()) {
    reap_killed(self);
    update_facts(st);
  }
}

/// Puts the held replies of `c` back in front of its output.
void release_held(self_ptr self, connection_handle hdl, conn& c) {
  if (c.held.empty())
    return;
  auto& out = out_of(self, hdl, c);
  out.insert(out.begin(), c.held.begin(), c.held.end());
  c.held.clear();
}

/// kura.l3.sync: keeps the replies of `c` (its commands wrote) until the
/// write-ahead log has fdatasynced them (without a log: until L3 has
/// committed and fsynced the batch carrying those writes); release_durable
/// sends them. The connection runs no further command meanwhile.
void hold_replies(self_ptr self, connection_handle hdl, conn& c) {
  auto& st = self->state;
  c.dirty = false;
  c.durable_ticket = st.core->durable_ticket();
  if (st.core->durable_done() >= c.durable_ticket) {
    c.durable = false;
    release_held(self, hdl, c);
    flush_conn(self, hdl, c);
    return;
  }
  auto& out = out_of(self, hdl, c); // everything unsent so far is older: keep the order
  c.held.insert(c.held.end(), out.begin(), out.end());
  out.clear();
  if (!c.durable) {
    c.durable = true;
    st.durable.push_back(hdl);
  }
  st.core->request_durable(); // the rest leave with the next ack (or log sync)
  st.core->wake_on_ack(caf::actor_cast<caf::actor>(self));
  if (!st.resume_armed) { // the fallback if an ack is missed
    st.resume_armed = true;
    self->delayed_send(self, std::chrono::milliseconds(10), resume_atom::value);
  }
}

/// Sends the held replies whose writes L3 committed, and runs what those
/// connections sent meanwhile.
void release_durable(self_ptr self) {
  auto& st = self->state;
  if (st.durable.empty())
    return;
  uint64_t done = st.core->durable_done();
  std::vector<connection_handle> ready;
  for (size_t i = 0; i < st.durable.size();) {
    auto it = st.conns.find(st.durable[i]);
    if (it == st.conns.end() || it->second.durable_ticket <= done) {
      if (it != st.conns.end())
        ready.push_back(st.durable[i]);
      st.durable[i] = st.durable.back();
      st.durable.pop_back();
    } else {
      ++i;
    }
  }
  if (st.durable.empty())
    st.core->wake_on_ack(caf::actor{});
  else
    st.core->request_durable();
  for (auto hdl : ready) {
    auto it = st.conns.find(hdl);
    if (it == st.conns.end())
      continue;
    conn& c = it->second;
    c.durable = false;
    release_held(self, hdl, c);
    flush_conn(self, hdl, c);
    if (!c.in.empty() && !c.waiting && !c.halted)
      process(self, hdl);
  }
}

/// Runs the connections that waited for L3 to catch up, oldest first.
void resume_stalled(self_ptr self) {
  auto& st = self->state;
  if (st.stalled.empty())
    return;
  if (st.core->backlogged()) {
    st.core->wake_when_drained(caf::actor_cast<caf::actor>(self));
    if (!st.resume_armed) {
      st.resume_armed = true;
      self->delayed_send(self, std::chrono::milliseconds(10), resume_atom::value);
    }
    return;
  }
  auto stalled = std::move(st.stalled);
  st.stalled.clear();
  st.resuming = true;
  for (size_t i = 0; i < stalled.size(); ++i) {
    auto it = st.conns.find(stalled[i]);
    if (it == st.conns.end())
      continue;
    if (st.core->backlogged()) { // full again: the rest keep their turn
      st.stalled.insert(st.stalled.begin(), stalled.begin() + static_cast<long>(i), stalled.end());
      break;
    }
    it->second.halted = false;
    process(self, stalled[i]);
  }
  st.resuming = false;
  if (!st.stalled.empty())
    resume_stalled(self); // arms the wake-up
}

/// A TLS connection failed (handshake, untrusted or missing client
/// certificate, plaintext on the TLS port, bad record): sends the alert
/// OpenSSL wrote, closes that connection only, logs and audits it.
void refuse_tls(self_ptr self, connection_handle hdl,
                std::unordered_map<connection_handle, conn>::iterator it) {
  auto& st = self->state;
  std::string peer = it->second.sess.peer;
  std::string why = it->second.tls->error();
  std::cerr << "kura-node: tls: closed " << peer << ": " << why << std::endl;
  st.cmds->security().audit_plain("tls", peer, "", "", "DENIED " + why,
                                  st.core->ks().clock().now_ms());
  self->flush(hdl);
  self->close(hdl);
  drop_conn(st, it);
  update_facts(st);
}

/// SIGHUP: re-reads the certificate, key and CA files.
void reload_tls(self_ptr self) {
  auto& st = self->state;
  if (!st.tls) {
    std::cerr << "kura-node: SIGHUP: TLS is off, nothing to reload" << std::endl;
    return;
  }
  if (auto err = st.tls->reload(); !err.empty())
    std::cerr << "kura-node: SIGHUP: TLS reload failed, the old certificate stays in use: " << err
              << std::endl;
  else
    std::cerr << "kura-node: SIGHUP: TLS certificate reloaded: " << st.tls->context()->description()
              << std::endl;
}

behavior resp_broker(self_ptr self, std::shared_ptr<actors::store_core> core,
                     resp_server_config cfg, node_metrics* metrics,
                     std::shared_ptr<std::promise<std::string>> listening) {
  auto& st = self->state;
  st.core = std::move(core);
  st.cfg = cfg;
  st.ahead = resp_parser{cfg.limits};
  st.sync_replies = st.core->has_l3() && st.core->config().sync_writes && !cfg.cluster;
  st.facts = cfg.facts;
  st.facts.port = cfg.port;
  st.facts.bind = cfg.bind;
  st.facts.cluster_enabled = cfg.cluster != nullptr;
  if (cfg.cluster)
    st.facts.cluster_slots_gathering = [c = cfg.cluster]() -> uint64_t {
      return c->slots_gathering();
    };
  st.facts.max_clients = cfg.max_clients;
  st.facts.proto_max_bulk_len = cfg.limits.max_bulk_bytes;
  st.max_query_bytes = cfg.limits.max_bulk_bytes + (64ull << 20);
  st.facts.query_buffer_limit = st.max_query_bytes;
  st.facts.max_output_bytes = cfg.max_output_bytes;
  if (st.core->has_l3()) {
    auto snap = st.core->l3_stats;
    st.facts.l3_stats = [snap] {
      auto d = snap->get();
      return d.stats;
    };
    st.facts.l3_uncommitted = [snap] { return snap->get().pending; };
    st.facts.l3_expires = [snap] { return snap->get().expires; };
    st.facts.save = [core = st.core] { core->flush_writes(true); };
    st.facts.writes = [core = st.core] { return core->writes(); };
    st.facts.append_only = [core = st.core] { return core->log() != nullptr; };
  }
  if (cfg.tls.port != 0) {
    st.tls = std::make_shared<tls_server>();
    if (auto err = st.tls->start(cfg.tls); !err.empty()) {
      listening->set_value(err);
      self->quit();
      return {};
    }
    st.facts.tls = st.tls;
    std::cerr << "kura-node: tls: certificate " << st.tls->context()->description()
              << (cfg.tls.ca_file.empty() ? std::string("; client certificates not asked")
                                          : "; client certificates: " + cfg.tls.auth_clients)
              << std::endl;
  }
  st.facts.set_active_expire = [flag = st.core->active_expire](bool on) { flag->store(on); };
  // writes of the store broker (ops port, `kura set/del`, embedding API) reach
  // tracking clients too; both brokers run on the multiplexer thread
  st.core->external_change = [self](const std::string* key) {
    auto& hub = self->state.cmds->hub();
    if (key)
      hub.key_changed(*key, 0);
    else
      hub.flushed(0);
    hub.flush_bcast();
  };
  st.cmds = std::make_unique<command_table>(st.core->ks(), st.facts);
  if (cfg.cluster) { // a transaction's keys share one slot (CROSSSLOT), as Redis Cluster
    st.cmds->set_slot_function([](std::string_view k) { return kura::key_slot(k); });
    st.cmds->set_queue_check(queue_refusal); // keyspace-wide commands inside MULTI
    // EVALSHA of a script loaded here reaches the key's owner as EVAL (only
    // this broker's routed commands ask, so `self` is alive then)
    cfg.cluster->delivery_owner = &st;
    cfg.cluster->after_delivery = [self] { flush_delivered(self); };
    cfg.cluster->script_source = [self](std::string_view sha) {
      return self->state.cmds->script_body(sha);
    };
    st.tracking = cluster_tracking::attach(*cfg.cluster, st.cmds->hub());
    st.get_id = st.cmds->registry().find("get");
  }
  if (auto err = st.cmds->configure_security(cfg.security); !err.empty()) {
    listening->set_value(err);
    self->quit();
    return {};
  }
  // pushes (pub/sub messages, invalidations) to any connection
  st.cmds->hub().set_deliver([self](uint64_t id, std::string_view bytes) {
    auto& st = self->state;
    auto i = st.by_id.find(id);
    if (i == st.by_id.end())
      return;
    auto c = st.conns.find(i->second);
    if (c == st.conns.end())
      return;
    auto& buf = out_of(self, i->second, c->second);
    buf.insert(buf.end(), bytes.begin(), bytes.end());
    flush_conn(self, i->second, c->second);
  });
  st.cmds->set_busy_pump([self](uint64_t running) { busy_pump(self, running); });
  st.metrics = metrics;
  if (cfg.port != 0) { // the plain port (0: TLS only)
    auto res = self->add_tcp_doorman(cfg.port, cfg.bind.c_str(), true);
    if (!res) {
      listening->set_value("cannot listen on " + cfg.bind + ":" + std::to_string(cfg.port) + ": " +
                           self->system().render(res.error()));
      self->quit();
      return {};
    }
  }
  if (st.tls) {
    auto res = self->add_tcp_doorman(cfg.tls.port, cfg.bind.c_str(), true);
    if (!res) {
      listening->set_value("cannot listen on " + cfg.bind + ":" + std::to_string(cfg.tls.port) +
                           " (tls): " + self->system().render(res.error()));
      self->quit();
      return {};
    }
    st.tls_acceptor = res->first;
  }
  listening->set_value("");
  self->set_default_handler(caf::drop);
  self->delayed_send(self, std::chrono::milliseconds(housekeeping_ms), housekeeping_atom::value);
  return {
      [=](const new_connection_msg& msg) {
        auto& st = self->state;
        ++st.facts.total_connections;
        bool tls = st.tls && msg.source == st.tls_acceptor;
        if (st.conns.size() >= st.facts.max_clients) {
          ++st.facts.rejected_connections;
          if (!tls) // a TLS client could not read it before the handshake
            put_error(self->wr_buf(msg.handle), "ERR max number of clients reached");
          self->flush(msg.handle);
          self->close(msg.handle);
          return;
        }
        auto peer_ip = self->remote_addr(msg.handle);
        auto& sec = st.cmds->security();
        if (sec.refuses(st.cfg.bind, peer_ip)) { // protected mode, as Redis
          ++st.facts.rejected_connections;
          if (!tls)
            put_error(self->wr_buf(msg.handle), protected_mode_denied);
          self->flush(msg.handle);
          self->close(msg.handle);
          sec.audit_plain("protected-mode",
                          peer_ip + ":" + std::to_string(self->remote_port(msg.handle)), "", "",
                          "DENIED protected mode", st.core->ks().clock().now_ms());
          return;
        }
        self->configure_read(msg.handle, receive_policy::at_most(st.cfg.read_buffer_bytes));
        self->ack_writes(msg.handle, true); // flush_conn: when CAF's buffer is empty
        int one = 1; // replies leave at once, as Redis sets it (flush_conn sends directly)
        (void)::setsockopt(static_cast<int>(msg.handle.id()), IPPROTO_TCP, TCP_NODELAY, &one,
                           sizeof one);
        auto& c = st.conns[msg.handle];
        c.parser = resp_parser{st.cfg.limits};
        c.sess.id = st.next_id++;
        c.sess.peer = peer_ip + ":" + std::to_string(self->remote_port(msg.handle));
        c.sess.local =
            st.facts.bind + ":" + std::to_string(tls ? st.tls->settings().port : st.facts.port);
        c.sess.fd = msg.handle.id();
        c.sess.created_ns = st.core->ks().clock().mono_ns();
        c.sess.input = &c.in;
        if (tls)
          c.tls = std::make_unique<tls_conn>(st.tls->context());
        c.sess.output = tls ? &c.tls_out : &self->wr_buf(msg.handle);
        st.by_id[c.sess.id] = msg.handle;
        st.cmds->hub().add_client(c.sess);
        update_facts(st);
      },
      [=](new_data_msg& msg) {
        auto& st = self->state;
        auto it = st.conns.find(msg.handle);
        if (it == st.conns.end())
          return;
        auto& c = it->second;
        if (c.tls) { // decrypt into c.in; handshake bytes go straight back
          auto& wire = self->wr_buf(msg.handle);
          if (!c.tls->receive(msg.buf.data(), msg.buf.size(), c.in, wire))
            return refuse_tls(self, msg.handle, it);
          if (!wire.empty())
            self->flush(msg.handle);
        } else {
          c.in.append(msg.buf.data(), msg.buf.size());
        }
        if (c.in.size() > st.facts.query_buffer_limit) {
          put_error(out_of(self, msg.handle, c), "ERR Protocol error: query buffer limit reached");
          flush_conn(self, msg.handle, c, true);
          self->close(msg.handle);
          drop_conn(st, it);
          update_facts(st);
          return;
        }
        if (!c.waiting && !c.halted)
          process(self, msg.handle);
      },
      [=](const data_transferred_msg& msg) {
        if (msg.remaining != 0)
          return;
        auto it = self->state.conns.find(msg.handle);
        if (it != self->state.conns.end())
          it->second.caf_writing = false; // CAF wrote all it had: send directly again
      },
      [=](const connection_closed_msg& msg) {
        auto& st = self->state;
        if (auto it = st.conns.find(msg.handle); it != st.conns.end())
          drop_conn(st, it);
        update_facts(st);
      },
      [=](const acceptor_closed_msg&) { self->quit(); },
      [=](ops_auth_atom, const std::string& user, const std::string& pass, const std::string& cmd,
          const std::string& key) -> std::string {
        auto& st = self->state;
        return ops_permit(st.cmds->security(), st.cmds->registry(), user, pass, cmd, key,
                          st.core->ks().clock().now_ms());
      },
      [=](resume_atom) {
        self->state.resume_armed = false;
        release_durable(self);
        resume_stalled(self);
        if (!self->state.durable.empty() && !self->state.resume_armed) {
          self->state.resume_armed = true;
          self->delayed_send(self, std::chrono::milliseconds(10), resume_atom::value);
        }
      },
      [=](actors::wake_atom) {
        release_durable(self);
        resume_stalled(self);
      },
      [=](tls_reload_atom) { reload_tls(self); },
      [=](pumped_atom) { run_pumped(self); },
      [=](erase_audit_atom, const std::string& receipt) { // KURA.ERASE (node/erase.hpp)
        auto& st = self->state;
        st.cmds->security().audit_plain("erase", "", "", "KURA.ERASE", receipt,
                                        st.core->ks().clock().now_ms());
      },
      [=](audit_line_atom, const std::string& event, const std::string& client,
          const std::string& command, const std::string& result) { // node/cluster_tls.hpp
        auto& st = self->state;
        st.cmds->security().audit_plain(event, client, "", command, result,
                                        st.core->ks().clock().now_ms());
      },
      [=](housekeeping_atom) {
        auto& st = self->state;
        update_facts(st);
        auto& hub = st.cmds->hub();
        if (st.core->lost) { // gone from L3 (no L4) or L4: GET no longer finds them
          std::vector<std::string> lost;
          bool all = st.core->lost->take(lost);
          if (hub.active()) {
            if (all)
              hub.flushed(0);
            else
              for (auto& k : lost)
                hub.key_changed(k, 0);
            hub.flush_bcast();
          }
        }
        if (hub.active()) {
          auto& ks = st.core->ks();
          hub.expire_due(ks.clock().now_ms(), [&ks](std::string_view k) { return ks.exists(k); });
          if (!ks.has_l3() && !st.cfg.cluster) // memory is the only tier: an eviction changes GET
            hub.probe(tracking_probe_budget, [&ks](std::string_view k) {
              return ks.shard_for(k).locate(k) != memory_region::none;
            });
        }
        if (st.facts.idle_timeout_s > 0)
          close_idle(self);
        if (auto& audit = st.cmds->security().audit)
          audit->tick(st.core->ks().clock().now_ms()); // batched fsync, repeated refusals
        if (++st.ticks * housekeeping_ms >= st.cfg.metrics_interval_ms) {
          st.ticks = 0;
          try {
            push_metrics(st);
          } catch (const std::exception& e) {
            std::cerr << "kura-node: metrics update failed: " << e.what() << std::endl;
          }
        }
        self->delayed_send(self, std::chrono::milliseconds(housekeeping_ms),
                           housekeeping_atom::value);
      },
  };
}

} // namespace

caf::actor spawn_resp_server(caf::actor_system& sys, std::shared_ptr<actors::store_core> core,
                             resp_server_config cfg, node_metrics* metrics,
                             std::shared_ptr<std::promise<std::string>> listening) {
  return sys.middleman().spawn_broker(resp_broker, std::move(core), std::move(cfg), metrics,
                                      std::move(listening));
}

} // namespace kura::node
