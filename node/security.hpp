// Authentication, authorisation and audit in the command dispatcher, CAF-free.
// `security_state` ties the ACL core (node/acl.hpp) to the command registry:
// its catalog has one entry per registry entry (same ids), so a permission
// check is a bit test plus glob matches for the keys the registry's key
// specifications name (read or write by their flags). command_table calls
// `permit` before every handler, so every command, present and future, is
// covered; AUTH, HELLO and QUIT (no_auth) run before authentication.
// Audited: authentication failures, every refusal (NOAUTH, NOPERM), admin
// and @dangerous commands, every ACL subcommand, protected-mode refusals.
// Thread safety: not thread-safe; owned by the RESP broker with the table.
#pragma once

#include "actors/model_keys.hpp"
#include "node/acl.hpp"
#include "node/audit_log.hpp"
#include "node/command_registry.hpp"

#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace kura::node {

/// Security settings (kura.security.*).
struct security_config {
  std::string requirepass; ///< default user's password ("" = nopass)
  std::string aclfile;     ///< ACL file ("" = none); loaded at start
  bool protected_mode = true;
  std::string audit_log; ///< path ("" = no audit log)
  uint64_t audit_max_bytes = 64ull << 20;
  unsigned audit_keep = 5;
  unsigned audit_fsync_every = 64;
  bool audit_args = false;                  ///< log arguments (secrets stay redacted)
  uint64_t audit_repeat_window_ms = 60'000; ///< audit_log::options::repeat_window_ms
  /// hash-keys-in-models: the HMAC secret; with audit_args, key arguments
  /// are logged as keyed hashes ("" = as they are).
  std::string key_hash_secret;
  std::string node_name; ///< written in every audit line
  size_t acllog_max_len = 128;
  bool acl_pubsub_allchannels = false; ///< acl-pubsub-default allchannels
};

/// Redis's protected-mode refusal, the whole reply line.
extern const char* const protected_mode_denied;

/// True if `addr` (an IP literal, or "localhost") is a loopback address.
bool is_loopback(std::string_view addr);

struct security_state {
  explicit security_state(const command_registry& reg);
  /// Applies settings: loads the ACL file, sets requirepass, opens the audit
  /// log. "" or one line saying what is wrong.
  std::string configure(const security_config& cfg);

  acl_catalog catalog;
  std::unique_ptr<acl_table> acl;
  acl_log log;
  std::unique_ptr<audit_log> audit;
  security_config cfg;
  const command_registry& registry;
  /// hash-keys-in-models: hashes the audit log's key arguments (null = off).
  std::unique_ptr<actors::model_keys> key_hashes;

  /// Would protected mode refuse a client from `peer_ip` now?
  bool refuses(std::string_view bind, std::string_view peer_ip) const;

  /// Records an audit event (no-op without an audit log). `a` are the full
  /// arguments, command name first; `words` of them name the command.
  void audit_command(std::string_view event, const session& s, const command_args& a, size_t words,
                     std::string_view result, uint64_t now_ms);
  void audit_plain(std::string_view event, std::string_view client, std::string_view user,
                   std::string_view command, std::string_view result, uint64_t now_ms);
  /// ACL LOG + audit for a failed authentication as `user`.
  void auth_failed(const session& s, std::string_view user, std::string_view cmd, uint64_t now_ms);
  /// Tries `user`/`pass` for session `s`; true and the session switched on
  /// success, else logged (ACL LOG, audit) and false.
  bool authenticate(session& s, std::string_view user, std::string_view pass, uint64_t now_ms,
                    std::string_view cmd);

  /// The session's user (the default user for a new session).
  acl_user& user_of(session& s);
  /// The keys `a` uses (registry key specs, or legacy positions) for checks.
  void key_uses(const command_spec& sp, const command_args& a, std::vector<acl_key_use>& out);
  /// Redis's client-info line for ACL LOG.
  static std::string client_info(const session& s);

  std::vector<acl_key_use> scratch;
};

/// The dispatcher's check before command `id` (a registry id) runs with
/// arguments `a`: authentication (NOAUTH), a deleted user (the connection
/// closes), the command and its keys (NOPERM). True if it may run; else the
/// error reply is in `out` and the refusal is in ACL LOG and the audit log.
/// The clock is read only for a refusal's log lines.
bool permit(security_state& sec, const command_registry& reg, int id, const command_args& a,
            session& s, out_buffer& out, const kura::clock& clk);
bool permit(security_state& sec, const command_registry& reg, int id, const command_args& a,
            session& s, out_buffer& out, uint64_t now_ms);
/// The channels (or PSUBSCRIBE's patterns) pub/sub command `id` names in `a`.
void channel_uses(const command_registry& reg, int id, const command_args& a, acl_channels& out);
/// permit()'s answer without its side effects (no reply, no ACL LOG or
/// audit line): the command planner asks it first, so that a command that
/// will be refused makes no tier lookup (L3, L4) before the refusal.
bool allowed(security_state& sec, const command_registry& reg, int id, const command_args& a,
             const session& s);
/// May `user`/`pass` (both empty: the default user without a password) run
/// RESP command `cmd` ("get", "config|set") on `key` ("" = none)? For the
/// ops port (kura CLI). "" or the refusal (WRONGPASS, NOAUTH, NOPERM text);
/// refusals and audited commands go to ACL LOG and the audit log.
std::string ops_permit(security_state& sec, const command_registry& reg, std::string_view user,
                       std::string_view pass, std::string_view cmd, std::string_view key,
                       uint64_t now_ms);
/// True if command `id` is audited when it runs (admin, @dangerous, ACL).
bool audited(const command_registry& reg, int id);

/// "WRONGPASS invalid username-password pair or user is disabled."
constexpr std::string_view err_wrongpass =
    "WRONGPASS invalid username-password pair or user is disabled.";
constexpr std::string_view err_noauth = "NOAUTH Authentication required.";

} // namespace kura::node
