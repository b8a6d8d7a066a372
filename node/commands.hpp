// The Redis command set kura serves, CAF-free: for each parsed request,
// `plan` says what must come from L3 first (the keys the command reads that
// memory does not hold, or a key listing for KEYS/SCAN/DBSIZE/RANDOMKEY), and
// `execute` runs it against the keyspace and appends the RESP2 reply. Error
// replies use Redis's wording, because clients and Redis's test suite match
// on them. The RESP broker drives this; unit tests drive it directly.
// Thread safety: not thread-safe; owned by the RESP broker with its keyspace.
#pragma once

#include "actors/keyspace.hpp"
#include "node/resp_writer.hpp"
#include "tiers/tier.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace kura::node {

using actors::keyspace;
using actors::staged_entries;
using actors::glob_match;

/// Per-connection state a command can change.
struct session {
  uint64_t id = 0;
  std::string name;
  std::string peer; ///< "ip:port" for CLIENT LIST
  bool quit = false; ///< close the connection after this reply
};

/// What L3 must answer before a command can run.
struct fetch_plan {
  enum kind_t : uint8_t { none, lookup, listing };
  enum list_mode : uint8_t { list_keys, list_count, list_random };
  kind_t kind = none;
  std::vector<std::string> keys; ///< kind == lookup: keys to look up
  list_mode mode = list_keys;    ///< kind == listing
  std::string pattern;           ///< glob; empty = all
  std::string after;             ///< list keys strictly after this one
  uint64_t limit = 0;            ///< keys to examine at most (0 = all)
  void clear() {
    kind = none;
    keys.clear();
    pattern.clear();
    after.clear();
    limit = 0;
  }
};

/// L3's answer to a listing.
struct listing {
  std::vector<std::string> keys; ///< matching live keys (list_keys, list_random)
  uint64_t count = 0;            ///< live keys (list_count)
  std::string last;              ///< last key examined (SCAN cursor)
  bool done = true;              ///< no keys after `last`
};

/// Calls and latency of one command.
struct command_stats {
  uint64_t calls = 0;
  uint64_t errors = 0;
  latency_histogram latency;
};

/// Node-wide facts INFO and CONFIG GET report; the broker keeps them current.
struct node_facts {
  std::string version = "0.1.0";
  std::string bind = "127.0.0.1";
  uint16_t port = 6379;
  std::string data_dir;
  uint64_t start_ms = 0;
  uint64_t connected_clients = 0;
  uint64_t total_connections = 0;
  uint64_t rejected_connections = 0;
  uint64_t max_clients = 10000;
  uint64_t proto_max_bulk_len = 512ull << 20;
  uint64_t l3_queue_depth = 0;
  std::function<tier_stats()> l3_stats; ///< empty when L3 is off
  std::function<uint64_t()> l3_uncommitted; ///< writes L3 has not committed yet
};


class command_table {
public:
  command_table(keyspace& ks, node_facts& facts);

  /// Fills `out` with what `args` needs from L3 (kind none: run it now).
  void plan(const std::vector<std::string_view>& args, fetch_plan& out);

  /// Runs `args` and appends the reply. `lst` is L3's answer when plan asked
  /// for a listing (nullptr otherwise, or when L3 is off).
  void execute(const std::vector<std::string_view>& args, session& s, out_buffer& out,
               const listing* lst = nullptr);

  /// Command names (lower case) in id order, and their stats.
  const std::vector<std::string>& names() const noexcept { return names_; }
  const std::vector<command_stats>& stats() const noexcept { return stats_; }
  void reset_stats();
  uint64_t total_commands() const noexcept { return total_commands_; }

  /// Id of a command name (any case), -1 if unknown.
  int find(std::string_view name) const;

  struct spec; ///< one command's arity, keys and handler

private:
  using handler = void (command_table::*)(const std::vector<std::string_view>&, session&,
                                          out_buffer&, const listing*);
  void add(const char* name, int arity, int first_key, int last_key, int step, handler h,
           bool blind = false, bool listing = false);

  // -- handlers ----------------------------------------------------------------
#define KURA_CMD(fn)                                                                  \
  void fn(const std::vector<std::string_view>& a, session& s, out_buffer& out,        \
          const listing* lst)
  KURA_CMD(cmd_ping); KURA_CMD(cmd_echo); KURA_CMD(cmd_get); KURA_CMD(cmd_set);
  KURA_CMD(cmd_setex); KURA_CMD(cmd_psetex); KURA_CMD(cmd_setnx); KURA_CMD(cmd_getset);
  KURA_CMD(cmd_getdel); KURA_CMD(cmd_getex); KURA_CMD(cmd_mget); KURA_CMD(cmd_mset);
  KURA_CMD(cmd_msetnx); KURA_CMD(cmd_del); KURA_CMD(cmd_exists); KURA_CMD(cmd_expire);
  KURA_CMD(cmd_pexpire); KURA_CMD(cmd_expireat); KURA_CMD(cmd_pexpireat); KURA_CMD(cmd_ttl);
  KURA_CMD(cmd_pttl); KURA_CMD(cmd_expiretime); KURA_CMD(cmd_pexpiretime);
  KURA_CMD(cmd_persist); KURA_CMD(cmd_incr); KURA_CMD(cmd_decr); KURA_CMD(cmd_incrby);
  KURA_CMD(cmd_decrby); KURA_CMD(cmd_incrbyfloat); KURA_CMD(cmd_append);
  KURA_CMD(cmd_strlen); KURA_CMD(cmd_getrange); KURA_CMD(cmd_setrange); KURA_CMD(cmd_type);
  KURA_CMD(cmd_dbsize); KURA_CMD(cmd_flushall); KURA_CMD(cmd_keys); KURA_CMD(cmd_scan);
  KURA_CMD(cmd_randomkey); KURA_CMD(cmd_rename); KURA_CMD(cmd_renamenx); KURA_CMD(cmd_copy);
  KURA_CMD(cmd_time); KURA_CMD(cmd_info); KURA_CMD(cmd_select); KURA_CMD(cmd_config);
  KURA_CMD(cmd_command); KURA_CMD(cmd_client); KURA_CMD(cmd_hello); KURA_CMD(cmd_quit);
  KURA_CMD(cmd_kura_tier);
#undef KURA_CMD

  void expire_generic(const std::vector<std::string_view>& a, out_buffer& out,
                      uint64_t base_ms, int64_t unit_ms);
  void ttl_generic(std::string_view key, out_buffer& out, bool ms, bool absolute);
  void incr_generic(std::string_view key, int64_t by, out_buffer& out);
  void rename_generic(const std::vector<std::string_view>& a, out_buffer& out, bool nx);
  void setex_generic(const std::vector<std::string_view>& a, out_buffer& out, int64_t unit);
  void collect_keys(const listing* lst, std::string_view pattern,
                    std::vector<std::string>& keys);
  void put_command_info(out_buffer& out, size_t id);
  std::string info_text(std::string_view section);

  keyspace& ks_;
  node_facts& facts_;
  std::vector<std::string> names_;
  std::vector<spec*> specs_;
  std::vector<command_stats> stats_;
  std::unordered_map<std::string, int> index_;
  uint64_t total_commands_ = 0;
  std::map<uint64_t, std::string> cursors_; ///< SCAN cursor -> last key returned
  uint64_t next_cursor_ = 1;
  std::string lower_;
  uint64_t keyspace_hits_ = 0;
  uint64_t keyspace_misses_ = 0;

public:
  ~command_table();
};

} // namespace kura::node
