// The Lua side of EVAL/EVALSHA/SCRIPT: one Lua 5.1 state (the version Redis
// embeds), the script cache (SHA1 of the body -> compiled function), and the
// conversions between RESP and Lua that Redis's scripting documentation
// specifies:
//
//   RESP -> Lua (a redis.call reply)       Lua -> RESP (the script's result)
//   integer       -> number                number        -> integer (truncated)
//   bulk string   -> string                string        -> bulk string
//   nil bulk/array-> false                 false / nil   -> nil bulk
//   array         -> table (1..n)          true          -> integer 1 (RESP3: #t)
//   status        -> {ok = "..."}          {ok = "..."}  -> status
//   error         -> {err = "..."}         {err = "..."} -> error
//   RESP3 map     -> {map = {k = v}}       table (array) -> array, up to the first nil
//   RESP3 set     -> {set = {k = true}}    {double = n}, {map = ...}, {set = ...},
//   RESP3 double  -> {double = n}          {big_number = s}: RESP3 types (RESP2
//   RESP3 null    -> nil                   clients get their RESP2 forms)
//   RESP3 boolean -> true / false
//
// The engine knows nothing of commands: redis.call hands its arguments to a
// `lua_host` (node/cmd_script.cpp: ACL, read-only and no-writes checks, then
// the command registry's dispatcher) and parses the RESP reply it gets back.
// Scripts may not create globals ("Attempt to modify a readonly table") nor
// read missing ones; KEYS and ARGV are set for each run. A count hook calls
// lua_host::interrupt every `hook_instructions` VM instructions, so a long
// script can serve -BUSY to other clients and be stopped by SCRIPT KILL.
// Thread safety: not thread-safe; owned by the RESP broker with its table.
#pragma once

#include "node/resp_writer.hpp"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

struct lua_State;

namespace kura::node {

/// Shebang flags of a script ("#!lua flags=no-writes,allow-oom").
namespace script_flag {
enum : uint32_t {
  no_writes = 1u << 0,
  allow_oom = 1u << 1,
  allow_stale = 1u << 2,
  no_cluster = 1u << 3,
  allow_cross_slot_keys = 1u << 4,
  eval_compat = 1u << 5, ///< no shebang: Redis 6 semantics (flags from the commands)
};
} // namespace script_flag

/// What redis.call / redis.pcall reach.
class lua_host {
public:
  virtual ~lua_host() = default;
  /// Runs one command for the script. Either appends its RESP reply (in RESP
  /// version `resp`) to `reply` and returns "", or refuses it without running
  /// it and returns the error ("ERR Write commands are not allowed ...").
  virtual std::string call(const std::vector<std::string_view>& args, int resp,
                           out_buffer& reply) = 0;
  /// redis.acl_check_cmd: 1 allowed, 0 denied, -1 unknown command.
  virtual int acl_check(const std::vector<std::string_view>& args) = 0;
  /// Called from the instruction hook; true stops the script ("Script killed
  /// by user with SCRIPT KILL...").
  virtual bool interrupt() = 0;
  /// redis.log(level, ...): level 0 debug .. 3 warning.
  virtual void log(int level, std::string_view msg) = 0;
};

class lua_engine {
public:
  struct script {
    std::string body;
    uint32_t flags = script_flag::eval_compat;
  };

  lua_engine();
  ~lua_engine();
  lua_engine(const lua_engine&) = delete;
  lua_engine& operator=(const lua_engine&) = delete;

  /// Hex SHA1 of `s` (lower case, 40 digits), as redis.sha1hex.
  static std::string sha1hex(std::string_view s);
  /// Parses the shebang of `body`; "" or Redis's error ("Unexpected flag in
  /// script shebang: x"). No shebang: eval_compat.
  static std::string shebang_flags(std::string_view body, uint32_t& flags, size_t& shebang_len);

  /// Compiles and caches `body` (a no-op when cached); the SHA1, or "" with
  /// `err` set to Redis's error ("Error compiling script (new function): ...").
  std::string load(std::string_view body, std::string& err);
  /// The cached script `sha` (any case), or null.
  const script* find(std::string_view sha) const;
  /// SCRIPT FLUSH: forgets every script and starts a fresh Lua state.
  void flush();
  size_t scripts() const noexcept { return cache_.size(); }
  /// Bytes the Lua state and the script bodies use (INFO used_memory_lua ...).
  uint64_t memory() const;
  uint64_t cache_bytes() const noexcept { return cache_bytes_; }

  /// Runs cached script `sha` with KEYS and ARGV; its result (or error) is
  /// appended to `out` for a client that speaks RESP `client_resp`.
  void run(std::string_view sha, const std::vector<std::string_view>& keys,
           const std::vector<std::string_view>& argv, int client_resp, lua_host& host,
           out_buffer& out);

  /// True while run() is on the stack.
  bool running() const noexcept { return host_ != nullptr; }
  /// VM instructions between two lua_host::interrupt calls.
  static constexpr int hook_instructions = 100000;

  // -- for the C functions of the `redis` table (lua_engine.cpp) --
  lua_host* host() const noexcept { return host_; }
  int script_resp = 2;  ///< redis.setresp
  std::string funcname; ///< "f_<sha>" of the running script
  void start_kill_hook();

private:
  void open();
  void close();
  lua_State* L_ = nullptr;
  std::map<std::string, script, std::less<>> cache_;
  uint64_t cache_bytes_ = 0;
  lua_host* host_ = nullptr;
};

/// Appends the RESP conversion of the Lua value on top of `L`'s stack (and
/// pops it). `script_resp` is redis.setresp's version, `client_resp` the
/// caller's (exposed for the unit test).
void lua_to_resp(lua_State* L, int script_resp, int client_resp, out_buffer& out);
/// Pushes the Lua conversion of the RESP reply in `reply`; false if the bytes
/// are not one complete reply (nothing pushed then).
bool resp_to_lua(lua_State* L, std::string_view reply);

} // namespace kura::node
