// MULTI/EXEC/WATCH state: a connection's transaction (the commands it queued
// after MULTI, the keys it WATCHes) and the node-wide table of watched keys.
//
// WATCH notes, per key, its modification count in the watch_table (bumped by
// every write command that names the key, and by FLUSHALL for keys that were
// live) plus whether the key was live and its version. EXEC aborts when the
// count moved, or when the key's liveness or version differs (a write that
// did not come through a command, such as replication or the ops endpoint,
// or expiry). A key that was already expired when watched is "not live" both
// times, so deleting it does not abort, as in Redis 7.0.
// Thread safety: not thread-safe; owned by the RESP broker with its keyspace.
#pragma once

#include "tiers/entry.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace kura::node {

/// Keys some connection watches: key -> (watchers, modification count).
class watch_table {
public:
  bool empty() const noexcept { return keys_.empty(); }
  size_t size() const noexcept { return keys_.size(); }
  /// One more watcher of `key`; returns its modification count now.
  uint64_t acquire(std::string_view key) {
    auto& e = keys_[std::string{key}];
    ++e.watchers;
    return e.mods;
  }
  /// One watcher less; the key is forgotten with its last watcher.
  void release(const std::string& key) {
    auto i = keys_.find(key);
    if (i != keys_.end() && --i->second.watchers == 0)
      keys_.erase(i);
  }
  uint64_t mods(const std::string& key) const {
    auto i = keys_.find(key);
    return i == keys_.end() ? 0 : i->second.mods;
  }
  /// A write touched `key` (no-op unless watched).
  void touch(std::string_view key) {
    if (keys_.empty())
      return;
    auto i = keys_.find(std::string{key});
    if (i != keys_.end())
      ++i->second.mods;
  }
  /// Calls f(key) for each watched key.
  template <class F>
  void for_each(F&& f) const {
    for (auto& kv : keys_)
      f(kv.first);
  }

private:
  struct watch_entry {
    uint32_t watchers = 0;
    uint64_t mods = 0;
  };
  std::unordered_map<std::string, watch_entry> keys_;
};

/// One WATCHed key as the connection saw it.
struct watched_key {
  std::string key;
  uint64_t mods = 0; ///< watch_table count at WATCH
  bool live = false; ///< the key existed (and had not expired)
  kura::version ver; ///< its version when live
};

/// A connection's MULTI state and watched keys. Movable, not copyable; gives
/// its watches back to the table when destroyed (the connection closed).
struct transaction {
  bool active = false;    ///< between MULTI and EXEC/DISCARD
  bool aborted = false;   ///< an error while queueing: EXEC answers EXECABORT
  bool executing = false; ///< EXEC runs the queue now (ACL LOG context "multi")
  int slot = -1;          ///< cluster: the one slot all keys share (-1 = none yet)
  std::vector<std::vector<std::string>> queued;
  std::vector<watched_key> watched;
  watch_table* table = nullptr; ///< where `watched` is registered

  transaction() = default;
  transaction(const transaction&) = delete;
  transaction& operator=(const transaction&) = delete;
  transaction(transaction&& o) noexcept { *this = std::move(o); }
  transaction& operator=(transaction&& o) noexcept {
    if (this != &o) {
      unwatch();
      active = o.active;
      aborted = o.aborted;
      slot = o.slot;
      queued = std::move(o.queued);
      watched = std::move(o.watched);
      table = o.table;
      o.watched.clear();
      o.table = nullptr;
    }
    return *this;
  }
  ~transaction() { unwatch(); }

  /// Forgets the queue (MULTI state), keeps the watches.
  void discard() {
    active = false;
    aborted = false;
    queued.clear();
    if (watched.empty())
      slot = -1;
  }
  /// Forgets every watched key.
  void unwatch() {
    if (table)
      for (auto& w : watched)
        table->release(w.key);
    watched.clear();
    if (!active)
      slot = -1;
  }
};

} // namespace kura::node
