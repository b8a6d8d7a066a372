// Authentication and access control: AUTH and ACL (CAT DELUSER DRYRUN GENPASS
// GETUSER HELP LIST LOAD LOG SAVE SETUSER USERS WHOAMI), with Redis 7.0's
// replies and error texts. The users, ACL LOG and the audit log live in
// node/security.hpp (command_state::security).
#include "node/client_hub.hpp"
#include "node/command_registry.hpp"
#include "node/command_util.hpp"
#include "node/resp_parser.hpp"
#include "node/security.hpp"

#include <cstdio>
#include <fstream>
#include <sstream>

#include <unistd.h>

namespace kura::node {

namespace {

security_state& sec(command_context& c) {
  return *c.state.security;
}

uint64_t now_ms(command_context& c) {
  return c.ks.clock().now_ms();
}

// -- AUTH ------------------------------------------------------------------------

void cmd_auth(const command_args& a, command_context& c) {
  if (a.size() > 3)
    return put_error(c.out, err_syntax);
  auto& s = sec(c);
  std::string_view user = "default";
  std::string_view pass = a[1];
  if (a.size() == 2) {
    if (!s.acl->auth_required() && s.acl->default_user()->nopass)
      return put_error(c.out, "ERR AUTH <password> called without any password configured for "
                              "the default user. Are you sure your configuration is correct?");
  } else {
    user = a[1];
    pass = a[2];
  }
  if (s.authenticate(c.sess, user, pass, now_ms(c), a[0]))
    put_ok(c.out);
  else
    put_error(c.out, err_wrongpass);
}

// -- ACL -------------------------------------------------------------------------

/// Redis 7 closes the connections of `name` that are subscribed to a channel
/// or pattern the user may no longer use (after ACL SETUSER).
void kill_revoked_subscribers(std::string_view name, command_context& c) {
  auto& t = *sec(c).acl;
  auto u = t.find(name);
  if (!u || u->allchannels)
    return;
  auto& hub = *c.state.hub;
  for (auto& [id, s] : hub.clients()) {
    if (!s->subscribed() || (s->user ? s->user->name != name : name != "default"))
      continue;
    bool ok = true;
    for (auto& ch : hub.channels_of(id))
      ok = ok && t.channel_allowed(*u, ch, false);
    for (auto& ch : hub.shard_channels_of(id))
      ok = ok && t.channel_allowed(*u, ch, false);
    for (auto& p : hub.patterns_of(id))
      ok = ok && t.channel_allowed(*u, p, true);
    if (ok)
      continue;
    if (s == &c.sess)
      s->quit = true;
    else
      s->killed = true;
    c.state.kills_pending = true;
  }
}

void cmd_acl_setuser(const command_args& a, command_context& c) {
  std::vector<std::string_view> rules(a.begin() + 3, a.end());
  auto err = sec(c).acl->set_user(a[2], rules);
  if (!err.empty())
    return put_error(c.out, "ERR " + err);
  kill_revoked_subscribers(a[2], c);
  put_ok(c.out);
}

void cmd_acl_deluser(const command_args& a, command_context& c) {
  for (size_t i = 2; i < a.size(); ++i)
    if (a[i] == "default")
      return put_error(c.out, "ERR The 'default' user cannot be removed");
  int64_t n = 0;
  for (size_t i = 2; i < a.size(); ++i)
    n += sec(c).acl->del_user(a[i]) ? 1 : 0;
  put_int(c.out, n);
}

void cmd_acl_getuser(const command_args& a, command_context& c) {
  auto& t = *sec(c).acl;
  auto u = t.find(a[2]);
  if (!u)
    return put_nil(c.out);
  put_array_header(c.out, 12);
  put_bulk(c.out, "flags");
  auto fl = t.flags(*u);
  put_array_header(c.out, fl.size());
  for (auto& f : fl)
    put_bulk(c.out, f);
  put_bulk(c.out, "passwords");
  put_array_header(c.out, u->passwords.size());
  for (auto& p : u->passwords)
    put_bulk(c.out, p);
  put_bulk(c.out, "commands");
  put_bulk(c.out, t.describe_commands(*u));
  put_bulk(c.out, "keys");
  put_bulk(c.out, t.describe_keys(*u));
  put_bulk(c.out, "channels");
  put_bulk(c.out, t.describe_channels(*u));
  put_bulk(c.out, "selectors");
  put_array_header(c.out, u->selectors.size());
  for (auto& sel : u->selectors) { // Redis 7.0: a map per selector
    put_array_header(c.out, 6);
    put_bulk(c.out, "commands");
    put_bulk(c.out, t.describe_commands(sel));
    put_bulk(c.out, "keys");
    put_bulk(c.out, t.describe_keys(sel));
    put_bulk(c.out, "channels");
    put_bulk(c.out, t.describe_channels(sel));
  }
}

void cmd_acl_list(const command_args&, command_context& c) {
  auto& t = *sec(c).acl;
  put_array_header(c.out, t.users().size());
  for (auto& [name, u] : t.users())
    put_bulk(c.out, "user " + name + " " + t.describe(*u));
}

void cmd_acl_users(const command_args&, command_context& c) {
  auto& t = *sec(c).acl;
  put_array_header(c.out, t.users().size());
  for (auto& kv : t.users())
    put_bulk(c.out, kv.first);
}

void cmd_acl_whoami(const command_args&, command_context& c) {
  put_bulk(c.out, sec(c).user_of(c.sess).name);
}

constexpr std::string_view err_no_aclfile =
    "ERR This Redis instance is not configured to use an ACL file. You may want to specify users "
    "via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis "
    "configuration file set) in order to store users in the Redis configuration.";

void cmd_acl_load(const command_args&, command_context& c) {
  auto& s = sec(c);
  if (s.cfg.aclfile.empty())
    return put_error(c.out, err_no_aclfile);
  std::ifstream f(s.cfg.aclfile, std::ios::binary);
  if (!f)
    return put_error(c.out, "ERR Error loading ACLs, opening file '" + s.cfg.aclfile +
                                "': No such file or directory");
  std::stringstream ss;
  ss << f.rdbuf();
  auto err = s.acl->load(ss.str(), s.cfg.aclfile);
  if (!err.empty())
    return put_error(c.out, "ERR " + err);
  put_ok(c.out);
}

void cmd_acl_save(const command_args&, command_context& c) {
  auto& s = sec(c);
  if (s.cfg.aclfile.empty())
    return put_error(c.out, err_no_aclfile);
  // write a temporary file, fsync, rename: a crash leaves the old or the new
  auto tmp = s.cfg.aclfile + ".tmp-" + std::to_string(::getpid());
  auto text = s.acl->save();
  FILE* f = std::fopen(tmp.c_str(), "wb");
  bool ok = f && std::fwrite(text.data(), 1, text.size(), f) == text.size() &&
            std::fflush(f) == 0 && ::fsync(fileno(f)) == 0;
  if (f)
    ok = std::fclose(f) == 0 && ok;
  ok = ok && std::rename(tmp.c_str(), s.cfg.aclfile.c_str()) == 0;
  if (!ok) {
    std::remove(tmp.c_str());
    return put_error(c.out, "ERR There was an error trying to save the ACLs. Please check the "
                            "server logs for more information");
  }
  put_ok(c.out);
}

void cmd_acl_cat(const command_args& a, command_context& c) {
  if (a.size() > 3) // Redis: the subcommand handler's syntax error
    return put_error(
        c.out, "ERR unknown subcommand or wrong number of arguments for 'CAT'. Try ACL HELP.");
  if (a.size() == 2) {
    put_array_header(c.out, acl_category_count);
    for (size_t i = 0; i < acl_category_count; ++i)
      put_bulk(c.out, acl_category_table[i]);
    return;
  }
  uint32_t bit = acl_category_bit(a[2]);
  if (bit == 0)
    return put_error(c.out, "ERR Unknown category '" + std::string(a[2].substr(0, 128)) + "'");
  std::vector<std::string_view> names;
  for (size_t id = 0; id < c.registry.entries(); ++id) {
    auto& sp = c.registry.spec(static_cast<int>(id));
    if (sp.acl & bit)
      names.push_back(sp.name);
  }
  put_array_header(c.out, names.size());
  for (auto n : names)
    put_bulk(c.out, n);
}

void cmd_acl_genpass(const command_args& a, command_context& c) {
  if (a.size() > 3)
    return wrong_args(c.out, "acl|genpass");
  int64_t bits = 256;
  if (a.size() == 3 && !parse_int64(a[2], bits))
    return put_error(c.out, err_not_int);
  if (bits <= 0 || bits > 4096)
    return put_error(c.out, "ERR ACL GENPASS argument must be the number of bits for the output "
                            "password, a positive number up to 4096");
  put_bulk(c.out, acl_random_hex(static_cast<size_t>(bits)));
}

void cmd_acl_log(const command_args& a, command_context& c) {
  if (a.size() > 3)
    return wrong_args(c.out, "acl|log");
  auto& lg = sec(c).log;
  int64_t count = 10;
  if (a.size() == 3) {
    if (ieq(a[2], "reset")) {
      lg.reset();
      return put_ok(c.out);
    }
    if (!parse_int64(a[2], count))
      return put_error(c.out, err_not_int);
    if (count < 0)
      count = 0;
  }
  auto n = std::min<size_t>(static_cast<size_t>(count), lg.entries().size());
  put_array_header(c.out, n);
  auto now = now_ms(c);
  for (size_t i = 0; i < n; ++i) {
    auto& e = lg.entries()[i];
    put_array_header(c.out, 14);
    put_bulk(c.out, "count");
    put_int(c.out, static_cast<int64_t>(e.count));
    put_bulk(c.out, "reason");
    put_bulk(c.out, acl_reason_name(e.reason));
    put_bulk(c.out, "context");
    put_bulk(c.out, e.context);
    put_bulk(c.out, "object");
    put_bulk(c.out, e.object);
    put_bulk(c.out, "username");
    put_bulk(c.out, e.username);
    put_bulk(c.out, "age-seconds");
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.17g",
                  static_cast<double>(now >= e.ctime_ms ? now - e.ctime_ms : 0) / 1000.0);
    put_bulk(c.out, buf);
    put_bulk(c.out, "client-info");
    put_bulk(c.out, e.client_info);
  }
}

void cmd_acl_dryrun(const command_args& a, command_context& c) {
  auto& s = sec(c);
  auto u = s.acl->find(a[2]);
  if (!u)
    return put_error(c.out, "ERR User '" + std::string(a[2]) + "' not found");
  command_args sub(a.begin() + 3, a.end());
  int id = c.registry.resolve(sub);
  if (id < 0)
    return put_error(c.out, "ERR Command '" + std::string(a[3]) + "' not found");
  auto& sp = c.registry.spec(id);
  if (!arity_ok(sp.arity, sub.size()))
    return put_error(c.out, "ERR wrong number of arguments for '" + sp.name + "' command");
  std::vector<acl_key_use> keys;
  s.key_uses(sp, sub, keys);
  acl_channels chans;
  channel_uses(c.registry, id, sub, chans);
  size_t denied = 0;
  std::string_view first = sub.size() > 1 ? std::string_view(sub[1]) : std::string_view{};
  std::string_view channel;
  auto v = (sp.flags & cmd_flag::no_auth)
               ? acl_verdict::ok
               : s.acl->check(*u, id, keys, &denied, sub.size() > 1 ? &first : nullptr, &chans,
                              &channel);
  if (v == acl_verdict::denied_channel)
    return put_bulk(c.out, "This user has no permissions to access the '" + std::string(channel) +
                               "' channel");
  if (v == acl_verdict::denied_command)
    return put_bulk(c.out, "This user has no permissions to run the '" + sp.name + "' command");
  if (v == acl_verdict::denied_key)
    return put_bulk(c.out, "This user has no permissions to access the '" +
                               std::string(keys[denied].key) + "' key");
  put_ok(c.out);
}

void cmd_acl_help(const command_args&, command_context& c) {
  static const char* help[] = {
      "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
      "CAT [<category>]",
      "    List all commands that belong to <category>, or all command categories",
      "    when no category is specified.",
      "DELUSER <username> [<username> ...]",
      "    Delete a list of users.",
      "DRYRUN <username> <command> [<arg> ...]",
      "    Returns whether the user can execute the given command without executing the command.",
      "GETUSER <username>",
      "    Get the user's details.",
      "GENPASS [<bits>]",
      "    Generate a secure 256-bit user password. The optional `bits` argument can",
      "    be used to specify a different size.",
      "LIST",
      "    Show users details in config file format.",
      "LOAD",
      "    Reload users from the ACL file.",
      "LOG [<count> | RESET]",
      "    Show the ACL log entries.",
      "SAVE",
      "    Save the current config to the ACL file.",
      "SETUSER <username> <attribute> [<attribute> ...]",
      "    Create or modify a user with the specified attributes.",
      "USERS",
      "    List all the registered usernames.",
      "WHOAMI",
      "    Return the current connection username.",
      "HELP",
      "    Print this help.",
  };
  put_array_header(c.out, sizeof(help) / sizeof(help[0]));
  for (auto h : help)
    put_status(c.out, h);
}

} // namespace

void register_acl_commands(command_registry& r) {
  r.add("auth", -2, "noscript loading stale fast no_auth allow_busy", cmd_auth)
      .acl("@fast @connection")
      .doc("Authenticate to the server", "1.0.0", "connection",
           "O(N) where N is the number of passwords defined for the user");

  r.add("acl", -2, "", nullptr)
      .acl("@slow")
      .doc("A container for Access List Control commands ", "6.0.0", "server",
           "Depends on subcommand.");
  const char* admin = "admin noscript loading stale";
  const char* plain = "noscript loading stale";
  r.add_sub("acl", "cat", -2, plain, cmd_acl_cat)
      .acl("@slow")
      .doc("List the ACL categories or the commands inside a category", "6.0.0", "server",
           "O(1) since the categories and commands are a fixed set.");
  r.add_sub("acl", "deluser", -3, admin, cmd_acl_deluser)
      .acl("@admin @slow @dangerous")
      .doc("Remove the specified ACL users and the associated rules", "6.0.0", "server",
           "O(1) amortized time considering the typical user.");
  r.add_sub("acl", "dryrun", -4, admin, cmd_acl_dryrun)
      .acl("@admin @slow @dangerous")
      .doc("Returns whether the user can execute the given command without executing the "
           "command.",
           "7.0.0", "server", "O(1).");
  r.add_sub("acl", "genpass", -2, plain, cmd_acl_genpass)
      .acl("@slow")
      .doc("Generate a pseudorandom secure password to use for ACL users", "6.0.0", "server",
           "O(1)");
  r.add_sub("acl", "getuser", 3, admin, cmd_acl_getuser)
      .acl("@admin @slow @dangerous")
      .doc("Get the rules for a specific ACL user", "6.0.0", "server",
           "O(N). Where N is the number of password, command and pattern rules that the user "
           "has.");
  r.add_sub("acl", "help", 2, "loading stale", cmd_acl_help)
      .acl("@slow")
      .doc("Show helpful text about the different subcommands", "6.0.0", "server", "O(1)");
  r.add_sub("acl", "list", 2, admin, cmd_acl_list)
      .acl("@admin @slow @dangerous")
      .doc("List the current ACL rules in ACL config file format", "6.0.0", "server",
           "O(N). Where N is the number of configured users.");
  r.add_sub("acl", "load", 2, admin, cmd_acl_load)
      .acl("@admin @slow @dangerous")
      .doc("Reload the ACLs from the configured ACL file", "6.0.0", "server",
           "O(N). Where N is the number of configured users.");
  r.add_sub("acl", "log", -2, admin, cmd_acl_log)
      .acl("@admin @slow @dangerous")
      .doc("List latest events denied because of ACLs in place", "6.0.0", "server",
           "O(N) with N being the number of entries shown.");
  r.add_sub("acl", "save", 2, admin, cmd_acl_save)
      .acl("@admin @slow @dangerous")
      .doc("Save the current ACL rules in the configured ACL file", "6.0.0", "server",
           "O(N). Where N is the number of configured users.");
  r.add_sub("acl", "setuser", -3, admin, cmd_acl_setuser)
      .acl("@admin @slow @dangerous")
      .doc("Modify or create the rules for a specific ACL user", "6.0.0", "server",
           "O(N). Where N is the number of rules provided.");
  r.add_sub("acl", "users", 2, admin, cmd_acl_users)
      .acl("@admin @slow @dangerous")
      .doc("List the username of all the configured ACL rules", "6.0.0", "server",
           "O(N). Where N is the number of configured users.");
  r.add_sub("acl", "whoami", 2, plain, cmd_acl_whoami)
      .acl("@slow")
      .doc("Return the name of the user associated to the current connection", "6.0.0", "server",
           "O(1)");
}

} // namespace kura::node
