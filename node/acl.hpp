// Users and access control lists with Redis 7.0's semantics, CAF-free.
//
// An `acl_catalog` lists the commands the checker knows (name, ACL categories,
// parent for "parent|sub" subcommands); the node builds it from the command
// registry, tests and the fuzzer build small ones by hand. An `acl_table` holds
// the users: each has on/off, passwords (SHA-256, hex, as Redis stores them),
// key patterns (~, %R~, %W~), channel patterns (&) and a bit per catalog
// command. Rules are Redis's ACL SETUSER words; applying a list of rules is
// all-or-nothing (a copy is changed, then swapped in). Permission is a bit
// test for the command plus a glob match per key; `+@all` also sets the
// "future commands" bit, so such a user can run commands added later.
//
// Describing a user's command rules follows Redis 7.0: start from +@all or
// -@all, greedily apply the category that best covers the difference, then
// list single commands that still differ. The result re-applied gives the
// same bits.
//
// `acl_table::load` takes the bytes of an ACL file (Redis's format: lines of
// `user <name> <rule>...`) and either replaces every user or changes nothing
// and returns the errors. It and `set_user` accept any bytes without crashing
// (fuzz entry points).
//
// `acl_log` is ACL LOG: recent denials, grouped like Redis's.
// Thread safety: not thread-safe; owned by the RESP broker.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace kura::node {

// -- catalog --------------------------------------------------------------------

/// ACL category names in Redis's order (bit i of a category mask).
extern const char* const acl_category_table[];
constexpr size_t acl_category_count = 21;
/// Bit of category `name` (without '@', any case); 0 if unknown.
uint32_t acl_category_bit(std::string_view name);

/// The commands an ACL can name.
class acl_catalog {
public:
  struct command {
    std::string name;    ///< lower case; "config|get" for a subcommand
    uint32_t categories; ///< acl_category bits
    int parent;          ///< catalog id of the container, -1 = top level
    std::vector<int> subs;
  };
  /// Adds a command; a subcommand's name is "parent|sub" and its parent must
  /// have been added before. Returns its id.
  int add(std::string_view name, uint32_t categories);
  /// Id of `name` (any case, "parent|sub" for a subcommand), -1 if unknown.
  int find(std::string_view name) const;
  const command& at(int id) const { return cmds_[static_cast<size_t>(id)]; }
  size_t size() const noexcept { return cmds_.size(); }

private:
  std::vector<command> cmds_;
  std::unordered_map<std::string, int> index_;
};

// -- users ----------------------------------------------------------------------

namespace acl_perm {
enum : uint8_t { read = 1, write = 2, all = 3 };
}

struct acl_key_pattern {
  std::string pattern;
  uint8_t perm = acl_perm::all; ///< acl_perm bits
  bool operator==(const acl_key_pattern& o) const { return pattern == o.pattern && perm == o.perm; }
};

struct acl_user {
  std::string name;
  bool enabled = false;
  bool nopass = false;
  uint8_t payload = 0;                ///< 0: unset, 1: sanitize-payload, 2: skip-sanitize-payload
  std::vector<std::string> passwords; ///< SHA-256, 64 lower-case hex digits
  bool allkeys = false;
  std::vector<acl_key_pattern> keys;
  bool allchannels = false;
  std::vector<std::string> channels;
  std::vector<bool> allowed; ///< per catalog id
  bool future = false;       ///< +@all / allcommands: commands added later too (only
                             ///< +@all/-@all change it, as Redis's reserved bit)
  bool allcommands = false;  ///< every bit set (fast path); any '-' clears it
  bool removed = false;      ///< deleted or replaced by ACL LOAD: sessions end
  /// Allowed first arguments of an otherwise blocked command without
  /// subcommands (+select|0, +debug|digest), lower case, per catalog id.
  std::map<int, std::vector<std::string>> firstargs;
  /// Redis 7.0 selectors (`(~key* +get)` rules): more sets of commands, keys
  /// and channels; a command runs when the user's own rules (the root
  /// selector) or any one selector allow all of it. Only the permission
  /// fields of a selector are used.
  std::vector<acl_user> selectors;
  /// +@cat / -@cat rules of categories without a command in the catalog
  /// (@set, @list ... kura has none of their commands): kept so that the
  /// description names them as Redis's does ("+@all -@set").
  uint32_t empty_plus = 0, empty_minus = 0;
  bool is_selector = false; ///< a selector: user-level rules are refused

  /// May the user run `id` with `first` as its first argument (a first-arg
  /// rule only; can_run() is the bitmap)?
  bool firstarg_allowed(int id, std::string_view first) const;

  bool can_run(int id) const {
    return id >= 0 && static_cast<size_t>(id) < allowed.size() && allowed[static_cast<size_t>(id)];
  }
};

/// Why a check failed (ACL LOG's "reason").
enum class acl_verdict { ok, denied_command, denied_key, denied_channel, denied_auth };

/// A key argument of a command and what the command does with it.
struct acl_key_use {
  std::string_view key;
  uint8_t perm = acl_perm::all; ///< acl_perm bits needed
  size_t arg_index = 0;         ///< position in the arguments (ACL LOG, DRYRUN)
};

/// The channels a pub/sub command names, for the checks: channel names
/// (PUBLISH, SUBSCRIBE) or patterns (PSUBSCRIBE).
struct acl_channels {
  std::vector<std::string_view> names;
  bool patterns = false;
};

/// SHA-256 of `s` as 64 lower-case hex digits.
std::string acl_hash_password(std::string_view s);
/// `bits` random bits as (bits+3)/4 hex digits (ACL GENPASS).
std::string acl_random_hex(size_t bits);

class acl_table {
public:
  /// Creates the table with the default user ("on nopass ~* &* +@all").
  /// The catalog must outlive the table.
  explicit acl_table(const acl_catalog& cat);

  // -- users --

  /// Applies `rules` to user `name` (created if missing), all or nothing.
  /// Returns "" or Redis's error ("Error in ACL SETUSER modifier '...': ...").
  std::string set_user(std::string_view name, const std::vector<std::string_view>& rules);
  /// Applies one rule to `u`; returns "" or the reason ("Syntax error", ...).
  std::string apply_rule(acl_user& u, std::string_view rule) const;
  /// Removes a user (not "default"); true if it existed.
  bool del_user(std::string_view name);
  std::shared_ptr<acl_user> find(std::string_view name) const;
  std::shared_ptr<acl_user> default_user() const { return default_; }
  /// Users in name order.
  const std::map<std::string, std::shared_ptr<acl_user>, std::less<>>& users() const {
    return users_;
  }
  /// acl-pubsub-default: new users (and `reset`) get every channel (true) or
  /// none (false, Redis 7's default). Existing users keep theirs.
  void set_pubsub_default_all(bool all) noexcept { pubsub_all_ = all; }
  bool pubsub_default_all() const noexcept { return pubsub_all_; }
  /// requirepass: a password for the default user, or none ("" = nopass).
  void set_default_password(std::string_view pass);

  /// The user if `name`/`pass` are valid and the user is on, else null.
  std::shared_ptr<acl_user> authenticate(std::string_view name, std::string_view pass) const;
  /// True if a new connection must authenticate (default user off or with
  /// a password), as Redis's authRequired().
  bool auth_required() const;
  /// True if only the default user exists and it has no password.
  bool open() const;

  // -- checks --

  /// May `u` run command `id` on these keys? On denial `*denied` is the index
  /// into `keys` of the refused key (denied_key).
  /// `first_arg`: the command's first argument, for first-arg rules
  /// (+select|0); null when there is none.
  /// `channels` (null: none): the channels the command names; on a
  /// denied_channel verdict `*denied_channel` is the refused one. The user's
  /// own rules are tried, then each selector; the first that allows the
  /// command, every key and every channel wins. Otherwise the refusal is the
  /// one Redis 7.0 reports: the furthest along (command < key < channel;
  /// between two key refusals the later key).
  acl_verdict check(const acl_user& u, int id, const std::vector<acl_key_use>& keys,
                    size_t* denied = nullptr, const std::string_view* first_arg = nullptr,
                    const acl_channels* channels = nullptr,
                    std::string_view* denied_channel = nullptr) const;

  /// May `u` use `channel` (PUBLISH, SUBSCRIBE: matched against the user's
  /// channel patterns) or subscribe to the pattern `channel` (PSUBSCRIBE:
  /// allowed only by an identical pattern), as Redis 7's channel checks.
  bool channel_allowed(const acl_user& u, std::string_view channel, bool is_pattern) const;

  // -- descriptions --

  /// ACL LIST's rules for `u` ("on nopass ~* &* +@all").
  std::string describe(const acl_user& u) const;
  /// The command part ("+@all -flushall", "-@all +get").
  std::string describe_commands(const acl_user& u) const;
  /// The key part ("~* ", "~a %R~b"), and the channel part ("&*", "&a &b").
  std::string describe_keys(const acl_user& u) const;
  std::string describe_channels(const acl_user& u) const;
  /// The permission part of a selector or of the user's own rules
  /// ("~a* resetchannels -@all +get"), as Redis 7.0's ACLDescribeSelector.
  std::string describe_selector(const acl_user& s) const;
  /// Flag names in Redis's order ("on", "nopass", ...).
  std::vector<std::string> flags(const acl_user& u) const;

  // -- ACL file --

  /// Replaces every user with the file's, or changes nothing and returns the
  /// errors (Redis's wording; `source` names the file in messages).
  std::string load(std::string_view bytes, std::string_view source = "acl file");
  /// The users as ACL file lines ("user default on nopass ~* &* +@all\n").
  std::string save() const;

  const acl_catalog& catalog() const noexcept { return cat_; }

private:
  std::shared_ptr<acl_user> make_user(std::string_view name) const;
  acl_verdict check_one(const acl_user& s, int id, const std::vector<acl_key_use>& keys,
                        size_t& denied, const std::string_view* first_arg,
                        const acl_channels* channels, std::string_view& denied_channel) const;
  void set_command(acl_user& u, int id, bool allow) const;
  void set_category(acl_user& u, uint32_t bit, bool allow) const;
  void all_commands(acl_user& u, bool allow) const;
  const acl_catalog& cat_;
  std::map<std::string, std::shared_ptr<acl_user>, std::less<>> users_;
  std::shared_ptr<acl_user> default_;
  bool pubsub_all_ = false;
};

/// Joins Redis 7.0 selector rules that arrive in pieces (`(~a*`, `+get)`)
/// into one rule each (`(~a* +get)`), as ACL SETUSER and the ACL file take
/// them. "" or the error (an unmatched parenthesis).
std::string acl_merge_selectors(const std::vector<std::string_view>& in,
                                std::vector<std::string>& out);

/// Rules that carry a secret (">pass", "<pass", "#hash", "!hash") for
/// redaction in logs.
bool acl_rule_is_secret(std::string_view rule);

// -- ACL LOG --------------------------------------------------------------------

class acl_log {
public:
  struct entry {
    uint64_t count = 1;
    acl_verdict reason = acl_verdict::denied_command;
    std::string context = "toplevel";
    std::string object;
    std::string username;
    uint64_t ctime_ms = 0;
    std::string client_info;
  };
  explicit acl_log(size_t max_len = 128) : max_(max_len) {}
  /// Records a denial; an entry equal in reason, context, object and user
  /// among the 10 newest (and younger than 60 s) is bumped instead.
  void add(entry e, uint64_t now_ms);
  void reset() { entries_.clear(); }
  /// Newest first.
  const std::deque<entry>& entries() const noexcept { return entries_; }
  void set_max_len(size_t n);

private:
  std::deque<entry> entries_;
  size_t max_;
};

/// ACL LOG's reason name ("command", "key", "channel", "auth").
const char* acl_reason_name(acl_verdict v);

} // namespace kura::node
