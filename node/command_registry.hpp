// The command registry: one table of every command kura-node serves, with what
// Redis 7.0's COMMAND reply says about it (arity, flags, legacy key positions
// first/last/step, key specifications, ACL categories, tips, docs), kura's L3
// planning hints, the handler, and per-command stats. Commands live in family
// files (node/cmd_*.cpp); each family has one `register_*_commands(registry&)`
// function that commands.cpp calls. The RESP front end, COMMAND, the cluster
// router and ACL key checks all read their facts from here.
// Thread safety: not thread-safe; owned by the RESP broker with its keyspace.
#pragma once

#include "actors/keyspace.hpp"
#include "node/resp_writer.hpp"
#include "node/transaction.hpp"
#include "tiers/tier.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace kura::node {

using actors::glob_match;
using actors::keyspace;

/// The arguments of one parsed request, command name first.
using command_args = std::vector<std::string_view>;

struct acl_user;
struct security_state;

/// Per-connection state a command can change.
struct session {
  uint64_t id = 0;
  std::string name;
  std::string peer;                          ///< "ip:port" for CLIENT LIST
  std::string local;                         ///< the server's "ip:port" of this connection (laddr)
  int64_t fd = -1;                           ///< the socket
  uint64_t created_ns = 0;                   ///< monotonic, for CLIENT LIST's age
  uint64_t last_ns = 0;                      ///< monotonic time of the last command (idle)
  int last_cmd = -1;                         ///< registry id of the last command (cmd=)
  const std::string* input = nullptr;        ///< the connection's unparsed input (qbuf)
  const std::vector<char>* output = nullptr; ///< its unsent replies (omem)
  int resp = 2;                              ///< protocol version (HELLO)
  bool killed = false;                       ///< CLIENT KILL chose it: close it now
  bool no_evict = false;                     ///< CLIENT NO-EVICT (kura evicts no clients)
  enum reply_mode : uint8_t { reply_on, reply_off, reply_skip };
  reply_mode reply = reply_on;
  bool skip_this = false;      ///< CLIENT REPLY SKIP: drop the next command's reply
  uint32_t subscriptions = 0;  ///< channels (SUBSCRIBE)
  uint32_t psubscriptions = 0; ///< patterns (PSUBSCRIBE)
  uint32_t ssubscriptions = 0; ///< shard channels (SSUBSCRIBE)
  /// In subscribed mode (RESP2: only (P|S)SUBSCRIBE, PING, QUIT ... allowed)?
  bool subscribed() const noexcept { return subscriptions + psubscriptions + ssubscriptions > 0; }
  bool tracking = false;          ///< CLIENT TRACKING ON
  uint32_t tracking_flags = 0;    ///< client_hub's tracking_flag bits
  uint64_t redirect = 0;          ///< CLIENT TRACKING REDIRECT id (0 = none)
  bool caching_once = false;      ///< CLIENT CACHING YES/NO for the next command
  bool quit = false;              ///< close the connection after this reply
  transaction tx;                 ///< MULTI queue and WATCHed keys
  std::shared_ptr<acl_user> user; ///< null: the default user (set on first command)
  bool authenticated = false;     ///< as Redis's c->authenticated
  /// A script's redis.call runs now (node/cmd_script.cpp): reads record
  /// the script's keys for tracking, ACL denials log context "lua".
  bool in_script = false;
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
  uint8_t phase = 0;             ///< listing phase of `after` (actors/messages.hpp l3_list)
  void clear() {
    kind = none;
    keys.clear();
    pattern.clear();
    after.clear();
    limit = 0;
    phase = 0;
  }
};

/// L3's answer to a listing.
struct listing {
  std::vector<std::string> keys; ///< matching live keys (list_keys, list_random)
  uint64_t count = 0;            ///< live keys (list_count)
  std::string last;              ///< last key examined (SCAN cursor)
  bool done = true;              ///< no keys after `last`
  std::vector<uint8_t> flags;    ///< entry flags of each of `keys` (SCAN TYPE)
  uint8_t phase = 0;             ///< listing phase of `last`
};

/// Calls and latency of one command.
struct command_stats {
  uint64_t calls = 0;
  uint64_t errors = 0;
  latency_histogram latency;
};

/// Node-wide facts INFO and CONFIG GET report; the broker keeps them current.
/// TLS settings that CONFIG GET/SET tls-* reach (node/tls.hpp implements
/// it; node_facts::tls is null when TLS is off).
struct tls_control {
  virtual ~tls_control() = default;
  /// The value of a tls-* setting as CONFIG GET shows it.
  virtual std::string get(std::string_view name) const = 0;
  /// Applies tls-* changes together (a new certificate needs its key): loads
  /// the files and uses them for new connections; on error nothing changes.
  virtual std::string apply(const std::vector<std::pair<std::string, std::string>>& changes) = 0;
};

struct node_facts {
  std::string version = "0.1.0";
  std::string run_id; ///< 40 hex digits, new for every process (INFO run_id)
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
  bool cluster_enabled = false; ///< a cluster node (INFO cluster, CONFIG GET cluster-enabled)
  /// a cluster node's slots whose reads ask the other replicas
  /// (gossip::node::gathering_slots; empty on a lone node)
  std::function<uint64_t()> cluster_slots_gathering;
  std::function<tier_stats()> l3_stats;     ///< empty when L3 is off
  std::function<uint64_t()> l3_uncommitted; ///< writes L3 has not committed yet
  /// A cluster node: writes its store has not handed to L3 yet (empty: the
  /// broker's write-behind queue, `l3_queue_depth`).
  std::function<uint64_t()> l3_queue;
  /// Writes handed to L3 since start (INFO rdb_changes_since_last_save counts
  /// from `writes_at_save`, set by SAVE/BGSAVE, as Redis's dirty counter).
  std::function<uint64_t()> writes;
  uint64_t writes_at_save = 0;
  std::function<uint64_t()> l3_expires; ///< L3 entries with an expiry
  std::function<tier_stats()> l4_stats; ///< empty when L4 is off
  /// A cluster node: its memory tier's L1 and L2 (the read cache in front of
  /// cluster data) for INFO and /metrics; empty: the local keyspace's.
  std::function<std::pair<tier_stats, tier_stats>()> memory_stats;
  /// SHUTDOWN: asks the process to stop as on SIGTERM (empty: refused).
  std::function<void()> shutdown;
  /// DEBUG SET-ACTIVE-EXPIRE: turns the expiry sweeps on or off (empty: refused).
  std::function<void(bool)> set_active_expire;
  // -- settings CONFIG SET changes at run time (the broker reads them here) --
  uint64_t idle_timeout_s = 0;              ///< "timeout": close idle clients (0 = never)
  uint64_t query_buffer_limit = 1ull << 30; ///< "client-query-buffer-limit"
  uint64_t max_output_bytes = 256ull << 20; ///< unsent replies per client
  std::shared_ptr<tls_control> tls;         ///< CONFIG tls-* (null: TLS off)
  /// "maxmemory" set at run time (CONFIG SET). The memory tiers keep their
  /// start-up budget (they cannot shrink while running); a lower value is a
  /// ceiling: while L1+L2 use more, denyoom commands get Redis's OOM error.
  /// Unset (false): CONFIG GET and INFO report the tiers' budget.
  bool maxmemory_set = false;
  uint64_t maxmemory = 0;             ///< 0 = no ceiling (as Redis's 0)
  uint64_t min_replicas_to_write = 0; ///< refuse writes with fewer good replicas
  uint64_t min_replicas_max_lag = 10; ///< seconds; 0 turns the check off
  /// SAVE: hands L3 every write still pending in the broker (empty: no L3).
  std::function<void()> save;
  /// CONFIG GET appendonly, INFO aof_enabled: L3's write-ahead log is on.
  std::function<bool()> append_only;
  /// "busy-reply-threshold" (alias "lua-time-limit"): a script running longer
  /// lets other clients in, answering them -BUSY (0 = never).
  uint64_t busy_reply_threshold_ms = 5000;

  std::shared_ptr<class erase_book> erase; ///< KURA.ERASE (node/erase_book.hpp; null: off)
  /// KURA.SUBJECT (node/subjects.hpp; null: off, as erase)
  std::shared_ptr<class subject_index> subjects;
  std::shared_ptr<const class subject_patterns> subject_rules; ///< null: no patterns
};

class client_hub; // node/client_hub.hpp: clients, pub/sub, tracking

/// Where SCAN cursors resume: the last key a cursor's call examined, under
/// the cursor's token, for the last `capacity` cursors handed out (node-wide,
/// so a reconnected client's cursor still resumes exactly).
struct scan_cursor_table {
  static constexpr size_t capacity = 100000;
  struct slot {
    uint64_t token = 0; ///< 0 = free
    uint8_t phase = 0;
    std::string key;
  };
  std::vector<slot> ring; ///< token % capacity -> slot (allocated on first use)
  uint64_t next_token = 1;
  void clear() { ring.clear(); }
};

/// Node-wide state that commands of different families share.
struct command_state {
  client_hub* hub = nullptr; ///< owned by command_table
  uint64_t total_commands = 0;
  uint64_t keyspace_hits = 0;
  uint64_t keyspace_misses = 0;
  scan_cursor_table scan_cursors; ///< SCAN cursor tokens -> position (cmd_keyspace.cpp)
  uint64_t peak_memory = 0;       ///< highest memory use INFO has seen
  bool kills_pending = false;     ///< CLIENT KILL marked sessions `killed`
  watch_table watches;            ///< keys some connection WATCHes
  bool active_expire = true;      ///< DEBUG SET-ACTIVE-EXPIRE
  bool cron_paused = false;       ///< DEBUG PAUSE-CRON (pauses the expiry sweeps)
  /// hash-max-listpack-entries / -value (CONFIG): up to these sizes a hash
  /// reports OBJECT ENCODING "listpack" and HSCAN returns it whole.
  uint64_t hash_max_listpack_entries = 128;
  uint64_t hash_max_listpack_value = 64;
  /// Runs one command as command_table::execute does, outside any MULTI
  /// queue (EXEC runs its queued commands through it).
  std::function<void(const command_args&, session&, out_buffer&)> run;
  /// Cluster hook: the slot of a key. Set, it makes every key of a
  /// transaction (queued commands and WATCH) share one slot or CROSSSLOT.
  std::function<uint16_t(std::string_view)> slot_of;
  security_state* security = nullptr; ///< users, ACL LOG, audit (node/security.hpp)
  /// EVAL/SCRIPT: the Lua engine and the running script (node/cmd_script.cpp).
  std::shared_ptr<struct script_state> scripts;
  uint64_t lua_vm_bytes = 0;       ///< the Lua interpreter's memory (INFO, maxmemory)
  uint64_t script_cache_bytes = 0; ///< cached script bodies (INFO used_memory_scripts_eval)
  uint64_t cached_scripts = 0;     ///< INFO number_of_cached_scripts
  /// SHUTDOWN ran: a script still running (busy) stops at its next hook,
  /// even one that wrote, so the node can stop (Redis's SHUTDOWN NOSAVE).
  bool stop_script = false;
  /// Set by the RESP broker: reads what other clients sent and answers them
  /// while a script runs longer than busy-reply-threshold (argument: the
  /// session running the script).
  std::function<void(uint64_t)> busy_pump;
  /// Why a command with these flags may not run now (OOM, NOREPLICAS), or null.
  std::function<const char*(uint32_t)> refusal;
  void reset_stats() { total_commands = keyspace_hits = keyspace_misses = 0; }
  /// Strings that SETRANGE or APPEND modified in place, which Redis reports
  /// as OBJECT ENCODING "raw" whatever their size (cmd_strings.cpp): key ->
  /// the version that write gave the value, so any later write (a new
  /// version) ends the mark without being told. The memory tier's node has
  /// no free flag bit; at most max_raw_marks are kept (a dropped mark only
  /// changes what OBJECT ENCODING says).
  std::unordered_map<std::string, kura::version> raw_strings;
  static constexpr size_t max_raw_marks = 10'000;
  bool raw_string(std::string_view key, const kura::version& ver) const {
    if (raw_strings.empty())
      return false;
    auto it = raw_strings.find(std::string{key});
    return it != raw_strings.end() && it->second == ver;
  }
};

// -- flags, in the order Redis 7.0 lists them --------------------------------

/// Command flags (COMMAND INFO's third element). `blocking` is Redis's name for
/// a command that may block the client.
namespace cmd_flag {
enum : uint32_t {
  write = 1u << 0,
  readonly = 1u << 1,
  denyoom = 1u << 2,
  module = 1u << 3,
  admin = 1u << 4,
  pubsub = 1u << 5,
  noscript = 1u << 6,
  blocking = 1u << 7, ///< may block
  loading = 1u << 8,
  stale = 1u << 9,
  skip_monitor = 1u << 10,
  skip_slowlog = 1u << 11,
  asking = 1u << 12,
  fast = 1u << 13,
  no_auth = 1u << 14,
  may_replicate = 1u << 15,
  no_mandatory_keys = 1u << 16,
  no_async_loading = 1u << 17,
  no_multi = 1u << 18,
  movablekeys = 1u << 19,
  allow_busy = 1u << 20,
};
constexpr uint32_t may_block = blocking;
} // namespace cmd_flag

/// ACL categories (COMMAND INFO's seventh element, "@read" ...).
namespace acl_cat {
enum : uint32_t {
  keyspace = 1u << 0,
  read = 1u << 1,
  write = 1u << 2,
  set = 1u << 3,
  sortedset = 1u << 4,
  list = 1u << 5,
  hash = 1u << 6,
  string = 1u << 7,
  bitmap = 1u << 8,
  hyperloglog = 1u << 9,
  geo = 1u << 10,
  stream = 1u << 11,
  pubsub = 1u << 12,
  admin = 1u << 13,
  fast = 1u << 14,
  slow = 1u << 15,
  blocking = 1u << 16,
  dangerous = 1u << 17,
  connection = 1u << 18,
  transaction = 1u << 19,
  scripting = 1u << 20,
};
} // namespace acl_cat

/// Key specification flags ("RO", "access", ...).
namespace key_flag {
enum : uint32_t {
  ro = 1u << 0,
  rw = 1u << 1,
  ow = 1u << 2,
  rm = 1u << 3,
  access = 1u << 4,
  update = 1u << 5,
  insert = 1u << 6,
  del = 1u << 7,
  not_key = 1u << 8,
  incomplete = 1u << 9,
  variable_flags = 1u << 10,
};
} // namespace key_flag

/// Names of the bits of a flag set, in Redis's order ("write", "@read", "RO").
std::vector<std::string_view> command_flag_names(uint32_t flags);
std::vector<std::string_view> acl_category_names(uint32_t cats); ///< without '@'
std::vector<std::string_view> key_flag_names(uint32_t flags);
/// Parses a space-separated list of names ("@read @fast" or "read fast").
/// Throws std::invalid_argument on an unknown name (a bug in a registration).
uint32_t parse_command_flags(std::string_view names);
uint32_t parse_acl_categories(std::string_view names);
uint32_t parse_key_flags(std::string_view names);

/// One key specification (begin_search "index", find_keys "range"), as in
/// Redis 7.0: keys start at argument `begin_index`; `lastkey` is relative to
/// it (negative: from the end), every `keystep`th argument is a key.
struct key_spec {
  const char* notes = nullptr;
  uint32_t flags = 0; ///< key_flag bits
  int begin_index = 0;
  int lastkey = 0;
  int keystep = 1;
  int limit = 0;
  /// find_keys "keynum" instead of "range" (EVAL): the key count is argument
  /// begin_index + keynumidx, the keys start at begin_index + firstkey.
  bool keynum = false;
  int keynumidx = 0;
  int firstkey = 1;
  /// Calls f(index) for each key argument of `argc` arguments `a` this spec names.
  template <class Args, class F>
  void for_each(const Args& a, F&& f) const;
};

struct command_context;

/// A command's handler. Plain function pointer: no allocation per call.
using command_handler = void (*)(const command_args& a, command_context& c);

/// Decides what a command needs from L3 (listing commands, or commands whose
/// need depends on options such as SET's). `plan_key_lookup` is the default.
struct command_spec;
using command_planner = void (*)(const command_args& a, const command_spec& sp,
                                 const command_state& st, keyspace& ks, fetch_plan& out);

/// Everything known about one command (or subcommand, named "parent|sub").
struct command_spec {
  std::string name; ///< lower case; "config|get" for a subcommand
  int arity = 0;    ///< > 0 exact, < 0 at least -arity (subcommand: counts the parent)
  uint32_t flags = 0;
  int first_key = 0; ///< 0 = no keys
  int last_key = 0;  ///< negative: from the end (-1 = last argument)
  int step = 0;
  std::vector<key_spec> key_specs;
  uint32_t acl = 0;
  std::vector<std::string_view> tips;
  const char* summary = "";
  const char* since = "";
  const char* group = "";
  const char* complexity = "";
  command_handler handler = nullptr;
  bool blind = false;   ///< L3 hint: writes without reading, no L3 lookup
  bool listing = false; ///< L3 hint: needs a key listing (planner fills it)
  command_planner planner = nullptr;
  int parent = -1;              ///< id of the container command, -1 = top level
  std::vector<int> subcommands; ///< ids, in registration order
};

/// What a handler gets: the keyspace, node facts, the session, the output
/// buffer, L3's listing (when the plan asked for one), shared state and the
/// registry itself (COMMAND, CONFIG RESETSTAT).
struct command_context {
  keyspace& ks;
  node_facts& facts;
  session& sess;
  out_buffer& out;
  const listing* lst;
  command_state& state;
  class command_registry& registry;
};

/// Builder returned by command_registry::add, to fill in the optional facts.
class command_builder {
public:
  command_builder(class command_registry& r, int id) : reg_(r), id_(id) {}
  /// Legacy key positions; negative last counts from the end.
  command_builder& keys(int first, int last, int step);
  /// One key specification; `flags` as in Redis ("RO access").
  command_builder& key_spec(int begin_index, int lastkey, int keystep, int limit,
                            std::string_view flags, const char* notes = nullptr);
  /// One key specification with find_keys "keynum" (EVAL's numkeys).
  command_builder& key_spec_keynum(int begin_index, int keynumidx, int firstkey, int keystep,
                                   std::string_view flags, const char* notes = nullptr);
  command_builder& acl(std::string_view categories);
  command_builder& tips(std::string_view space_separated);
  command_builder& doc(const char* summary, const char* since, const char* group,
                       const char* complexity);
  command_builder& blind();
  command_builder& listing(command_planner p);
  command_builder& planner(command_planner p);
  int id() const noexcept { return id_; }

private:
  command_spec& spec();
  class command_registry& reg_;
  int id_;
};

/// Result of command_registry::keys_of.
enum class keys_status { ok, unknown_command, wrong_arity, no_keys };

class command_registry {
public:
  /// Registers a top-level command. `flags` as in Redis ("write denyoom").
  /// `h` may be null for a container whose subcommands do the work.
  command_builder add(const char* name, int arity, std::string_view flags, command_handler h);
  /// Registers `parent|sub`; the parent must exist.
  command_builder add_sub(const char* parent, const char* sub, int arity, std::string_view flags,
                          command_handler h);

  /// Id of a command (any case; "config|get" finds a subcommand), -1 if unknown.
  /// No copy of the name: one case-folding hash pass and one probe.
  int find(std::string_view name) const noexcept;
  /// Id of the subcommand `sub` (any case) of container `parent`, -1 if none.
  int find_sub(int parent, std::string_view sub) const;
  /// The command `a` invokes: a subcommand when a[0] is a container and a[1]
  /// names one of its subcommands, else a[0]; -1 if unknown.
  int resolve(const command_args& a) const { return resolve(a, a.empty() ? -1 : find(a[0])); }
  /// The same when find(a[0]) is already known (`top`).
  int resolve(const command_args& a, int top) const;

  const command_spec& spec(int id) const { return specs_[static_cast<size_t>(id)]; }
  command_spec& spec(int id) { return specs_[static_cast<size_t>(id)]; }
  /// Every entry (commands and subcommands) in id order.
  size_t entries() const noexcept { return specs_.size(); }
  /// Number of top-level commands (COMMAND COUNT).
  size_t size() const noexcept { return top_level_; }

  /// Names (lower case) of every entry in id order, and their stats.
  const std::vector<std::string>& names() const noexcept { return names_; }
  std::vector<command_stats>& stats() noexcept { return stats_; }
  const std::vector<command_stats>& stats() const noexcept { return stats_; }
  void reset_stats();

  /// The key arguments of `a` as the command's key positions give them.
  keys_status keys_of(const command_args& a, std::vector<std::string_view>& out) const;

private:
  int insert(std::string name, int arity, std::string_view flags, command_handler h);
  std::vector<command_spec> specs_;
  std::vector<std::string> names_;
  std::vector<command_stats> stats_;
  /// find()'s index: open addressing over names_ (lower case), linear
  /// probing, at most half full; a slot holds the name's hash and id (-1: free).
  struct name_slot {
    uint32_t hash = 0;
    int id = -1;
  };
  std::vector<name_slot> table_;
  void index_name(int id);
  size_t top_level_ = 0;
};

/// True if `n` arguments satisfy `arity` (Redis convention).
inline bool arity_ok(int arity, size_t n) {
  auto m = static_cast<int64_t>(n);
  return arity > 0 ? m == arity : m >= -static_cast<int64_t>(arity);
}

/// Calls f(index) for each key argument of `a` per sp's first/last/step.
template <class F>
void for_each_key_index(const command_spec& sp, size_t argc, F&& f) {
  if (sp.first_key <= 0 || sp.step <= 0)
    return;
  auto n = static_cast<int64_t>(argc);
  int64_t last = sp.last_key < 0 ? n + sp.last_key : sp.last_key;
  for (int64_t i = sp.first_key; i <= last && i < n; i += sp.step)
    f(static_cast<size_t>(i));
}

template <class Args, class F>
void key_spec::for_each(const Args& a, F&& f) const {
  auto argc = static_cast<int64_t>(a.size());
  int64_t first = begin_index;
  if (first <= 0 || first >= argc)
    return;
  int64_t step = keystep > 0 ? keystep : 1;
  int64_t last = 0;
  if (keynum) {
    int64_t at = first + keynumidx;
    if (at >= argc)
      return;
    int64_t n = 0;
    for (char ch : a[static_cast<size_t>(at)]) {
      if (ch < '0' || ch > '9' || n > argc)
        return;
      n = n * 10 + (ch - '0');
    }
    first += firstkey;
    last = first + (n - 1) * step;
  } else {
    last = lastkey >= 0 ? first + lastkey : argc + lastkey;
  }
  for (int64_t i = first; i <= last && i < argc; i += step)
    f(static_cast<size_t>(i));
}

/// Appends the key arguments of `a` (sp's key positions) to `out`.
void command_keys(const command_spec& sp, const command_args& a,
                  std::vector<std::string_view>& out);

/// The default plan: the keys of `a` that memory does not hold and L3 may.
void plan_key_lookup(const command_args& a, const command_spec& sp, keyspace& ks, fetch_plan& out);

// -- replies from the registry (COMMAND) --------------------------------------

/// COMMAND INFO's 10-element entry for `id`.
void put_command_info(out_buffer& out, const command_registry& r, int id);
/// COMMAND DOCS's name + field array for `id` (2 elements).
void put_command_docs(out_buffer& out, const command_registry& r, int id);

} // namespace kura::node
