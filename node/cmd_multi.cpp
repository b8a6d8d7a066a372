// Transactions: MULTI EXEC DISCARD WATCH UNWATCH, atomic on one node.
//
// Between MULTI and EXEC, command_table::execute checks each command (known,
// right arity, and in a cluster the transaction's one slot) and queues a copy
// (+QUEUED); an error while queueing makes EXEC answer EXECABORT. EXEC's plan
// looks up in L3 every key the queued commands and the watched keys need, so
// that EXEC then runs the whole queue back to back on the multiplexer thread
// with no hop in between: nobody else's command interleaves. WATCH is
// described in node/transaction.hpp; a broken watch makes EXEC answer a null
// array and run nothing. EXEC and DISCARD forget the watches, as in Redis.
#include "node/command_registry.hpp"
#include "node/command_util.hpp"

#include <string>
#include <vector>

namespace kura::node {

namespace {

void cmd_multi(const command_args&, command_context& c) {
  auto& tx = c.sess.tx;
  if (tx.active)
    return put_error(c.out, "ERR MULTI calls can not be nested");
  tx.active = true;
  tx.aborted = false;
  tx.queued.clear();
  put_ok(c.out);
}

void cmd_discard(const command_args&, command_context& c) {
  auto& tx = c.sess.tx;
  if (!tx.active)
    return put_error(c.out, "ERR DISCARD without MULTI");
  tx.discard();
  tx.unwatch();
  put_ok(c.out);
}

/// True when a watched key changed since WATCH (see node/transaction.hpp).
bool watch_broken(command_context& c) {
  for (auto& w : c.sess.tx.watched) {
    if (c.state.watches.mods(w.key) != w.mods)
      return true;
    bool live = false;
    kura::version ver;
    c.ks.view(w.key, [&](const keyspace::key_view& v) {
      live = true;
      ver = v.ver;
    });
    if (live != w.live || (live && ver != w.ver))
      return true;
  }
  return false;
}

void cmd_exec(const command_args&, command_context& c) {
  auto& tx = c.sess.tx;
  if (!tx.active)
    return put_error(c.out, "ERR EXEC without MULTI");
  if (tx.aborted) {
    tx.discard();
    tx.unwatch();
    return put_error(c.out, "EXECABORT Transaction discarded because of previous errors.");
  }
  bool broken = watch_broken(c);
  auto queued = std::move(tx.queued);
  tx.discard();
  tx.unwatch();
  if (broken)
    return put_nil_array(c.out);
  put_array_header(c.out, queued.size());
  command_args args;
  tx.executing = true;
  try {
    for (auto& q : queued) {
      args.assign(q.begin(), q.end());
      c.state.run(args, c.sess, c.out);
    }
  } catch (...) {
    tx.executing = false;
    throw;
  }
  tx.executing = false;
}

void cmd_watch(const command_args& a, command_context& c) {
  auto& tx = c.sess.tx;
  if (tx.active)
    return put_error(c.out, "ERR WATCH inside MULTI is not allowed");
  tx.table = &c.state.watches;
  for (size_t i = 1; i < a.size(); ++i) {
    bool dup = false;
    for (auto& w : tx.watched)
      dup = dup || w.key == a[i];
    if (dup)
      continue;
    watched_key w;
    w.key.assign(a[i].data(), a[i].size());
    w.mods = c.state.watches.acquire(a[i]);
    c.ks.view(a[i], [&](const keyspace::key_view& v) {
      w.live = true;
      w.ver = v.ver;
    });
    tx.watched.push_back(std::move(w));
  }
  put_ok(c.out);
}

void cmd_unwatch(const command_args&, command_context& c) {
  c.sess.tx.unwatch();
  put_ok(c.out);
}

} // namespace

void register_multi_commands(command_registry& r) {
  r.add("multi", 1, "noscript loading stale fast allow_busy", cmd_multi)
      .acl("@fast @transaction")
      .doc("Mark the start of a transaction block", "1.2.0", "transactions", "O(1)");
  r.add("exec", 1, "noscript loading stale skip_slowlog", cmd_exec)
      .acl("@slow @transaction")
      .doc("Execute all commands issued after MULTI", "1.2.0", "transactions",
           "Depends on commands in the transaction");
  r.add("discard", 1, "noscript loading stale fast allow_busy", cmd_discard)
      .acl("@fast @transaction")
      .doc("Discard all commands issued after MULTI", "2.0.0", "transactions",
           "O(N), when N is the number of queued commands");
  r.add("watch", -2, "noscript loading stale fast allow_busy", cmd_watch)
      .keys(1, -1, 1)
      .key_spec(1, -1, 1, 0, "RO")
      .acl("@fast @transaction")
      .doc("Watch the given keys to determine execution of the MULTI/EXEC block", "2.2.0",
           "transactions", "O(1) for every key.");
  r.add("unwatch", 1, "noscript loading stale fast allow_busy", cmd_unwatch)
      .acl("@fast @transaction")
      .doc("Forget about all watched keys", "2.2.0", "transactions", "O(1)");
}

} // namespace kura::node
