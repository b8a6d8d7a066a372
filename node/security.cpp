#include "node/security.hpp"

#include "node/command_util.hpp"

#include <fstream>
#include <sstream>

namespace kura::node {

const char* const protected_mode_denied =
    "DENIED Redis is running in protected mode because protected mode is enabled and no "
    "password is set for the default user. In this mode connections are only accepted from the "
    "loopback interface. If you want to connect from external computers to Redis you may adopt "
    "one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG "
    "SET protected-mode no' from the loopback interface by connecting to Redis from the same "
    "host the server is running, however MAKE SURE Redis is not publicly accessible from "
    "internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively "
    "you can just disable the protected mode by editing the Redis configuration file, and "
    "setting the protected mode option to 'no', and then restarting the server. 3) If you "
    "started the server manually just for testing, restart it with the '--protected-mode no' "
    "option. 4) Setup a an authentication password for the default user. NOTE: You only need to "
    "do one of the above things in order for the server to start accepting connections from the "
    "outside.";

bool is_loopback(std::string_view a) {
  if (a.rfind("::ffff:", 0) == 0)
    a.remove_prefix(7);
  return a.rfind("127.", 0) == 0 || a == "::1" || a == "localhost";
}

security_state::security_state(const command_registry& reg) : registry(reg) {
  for (size_t id = 0; id < reg.entries(); ++id) {
    auto& sp = reg.spec(static_cast<int>(id));
    catalog.add(sp.name, sp.acl);
  }
  acl = std::make_unique<acl_table>(catalog);
}

std::string security_state::configure(const security_config& c) {
  cfg = c;
  log.set_max_len(c.acllog_max_len);
  acl->set_pubsub_default_all(c.acl_pubsub_allchannels); // before the file's users
  if (!c.aclfile.empty()) {
    if (!c.requirepass.empty())
      return "kura.security.requirepass and kura.security.aclfile are mutually exclusive: set "
             "the default user's password in the ACL file";
    std::ifstream f(c.aclfile, std::ios::binary);
    if (f) {
      std::stringstream ss;
      ss << f.rdbuf();
      auto err = acl->load(ss.str(), c.aclfile);
      if (!err.empty())
        return "cannot load ACL file: " + err;
    } else {
      // Redis refuses to start without the file; kura starts with the
      // default user and creates the file on ACL SAVE
      std::ofstream probe(c.aclfile, std::ios::app);
      if (!probe)
        return "ACL file " + c.aclfile + " can neither be read nor created";
    }
  }
  if (!c.requirepass.empty())
    acl->set_default_password(c.requirepass);
  if (!c.audit_log.empty()) {
    audit_log::options o;
    o.path = c.audit_log;
    o.node = c.node_name;
    o.max_bytes = c.audit_max_bytes;
    o.keep = c.audit_keep;
    o.fsync_every = c.audit_fsync_every;
    o.log_args = c.audit_args;
    o.repeat_window_ms = c.audit_repeat_window_ms;
    if (!c.key_hash_secret.empty())
      key_hashes = std::make_unique<actors::model_keys>(c.key_hash_secret);
    auto a = std::make_unique<audit_log>(o);
    if (auto err = a->open(); !err.empty())
      return err;
    audit = std::move(a);
  }
  return {};
}

bool security_state::refuses(std::string_view bind, std::string_view peer_ip) const {
  return cfg.protected_mode && !is_loopback(bind) && acl->open() && !is_loopback(peer_ip);
}

acl_user& security_state::user_of(session& s) {
  if (!s.user) {
    s.user = acl->default_user();
    s.authenticated = !acl->auth_required();
  }
  return *s.user;
}

std::string security_state::client_info(const session& s) {
  std::string r = "id=" + std::to_string(s.id) + " addr=" + s.peer +
                  " laddr= fd=-1 name=" + s.name +
                  " age=0 idle=0 flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 "
                  "argv-mem=0 multi-mem=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd=unknown "
                  "user=";
  r += s.user ? s.user->name : std::string("default");
  r += " library-name= library-ver= resp=2";
  return r;
}

void security_state::audit_command(std::string_view event, const session& s, const command_args& a,
                                   size_t words, std::string_view result, uint64_t now_ms) {
  if (!audit)
    return;
  audit_event e;
  e.time_ms = now_ms;
  e.event.assign(event);
  e.client = s.peer;
  e.user = s.user ? s.user->name : "default";
  for (size_t i = 0; i < words && i < a.size(); ++i) {
    if (i)
      e.command += ' ';
    e.command += upper(a[i].substr(0, 64));
  }
  bool secret_cmd = ieq(a[0], "auth") || ieq(a[0], "hello") || ieq(a[0], "migrate");
  bool config_set = e.command == "CONFIG SET";
  // hash-keys-in-models: the key arguments (the registry's key positions) as
  // keyed hashes; a command whose keys cannot be told hashes every argument
  std::vector<std::string_view> keys;
  bool hash_all = false;
  if (key_hashes && cfg.audit_args) {
    auto ks = registry.keys_of(a, keys);
    // commands without key positions (KURA.ERASE, KURA.SUBJECT ...) may name
    // keys anywhere: all their arguments, except the settings and rules of
    // CONFIG and ACL
    hash_all = ks != keys_status::ok && !ieq(a[0], "config") && !ieq(a[0], "acl");
  }
  auto is_key = [&](std::string_view v) {
    for (auto k : keys)
      if (k.data() == v.data())
        return true;
    return false;
  };
  for (size_t i = words; i < a.size(); ++i) {
    std::string_view v = a[i];
    bool secret = secret_cmd || acl_rule_is_secret(v) ||
                  (config_set && i > words && (i - words) % 2 == 1 &&
                   (ieq(a[i - 1], "requirepass") || ieq(a[i - 1], "masterauth")));
    if (!cfg.audit_args || secret)
      e.args.emplace_back("(redacted)");
    else if (key_hashes && (hash_all || is_key(v)))
      e.args.emplace_back("hmac:" + key_hashes->hash(v));
    else
      e.args.emplace_back(v.substr(0, 256));
  }
  e.result.assign(result.substr(0, 256));
  audit->record(e);
}

void security_state::audit_plain(std::string_view event, std::string_view client,
                                 std::string_view user, std::string_view command,
                                 std::string_view result, uint64_t now_ms) {
  if (!audit)
    return;
  audit_event e;
  e.time_ms = now_ms;
  e.event.assign(event);
  e.client.assign(client);
  e.user.assign(user);
  e.command.assign(command);
  e.result.assign(result);
  audit->record(e);
}

void security_state::auth_failed(const session& s, std::string_view user, std::string_view cmd,
                                 uint64_t now_ms) {
  acl_log::entry le;
  le.reason = acl_verdict::denied_auth;
  le.object.assign(cmd); // as the client typed it, as Redis
  le.username.assign(user);
  le.client_info = client_info(s);
  log.add(std::move(le), now_ms);
  audit_plain("auth", s.peer, user, upper(cmd), std::string(err_wrongpass), now_ms);
}

bool security_state::authenticate(session& s, std::string_view user, std::string_view pass,
                                  uint64_t now_ms, std::string_view cmd) {
  auto u = acl->authenticate(user, pass);
  if (!u) {
    auth_failed(s, user, cmd, now_ms);
    return false;
  }
  s.user = std::move(u);
  s.authenticated = true;
  return true;
}

namespace {

/// Commands whose key access depends on their arguments (Redis 7.0's
/// VARIABLE_FLAGS key specs): SET reads its key only with GET, BITFIELD
/// writes it only with SET or INCRBY. The access `perm` the registry's key
/// spec gives, narrowed to what these arguments do.
uint8_t variable_access(const command_spec& sp, const command_args& a, uint8_t perm) {
  auto any = [&](size_t from, std::initializer_list<std::string_view> words) {
    for (size_t i = from; i < a.size(); ++i)
      for (auto w : words)
        if (a[i].size() == w.size() &&
            std::equal(w.begin(), w.end(), a[i].begin(), [](char x, char y) {
              return x == std::tolower(static_cast<unsigned char>(y));
            }))
          return true;
    return false;
  };
  if (sp.name == "set" && !any(3, {"get"}))
    return acl_perm::write;
  if (sp.name == "bitfield" && !any(2, {"set", "incrby"}))
    return acl_perm::read;
  return perm;
}

} // namespace

void security_state::key_uses(const command_spec& sp, const command_args& a,
                              std::vector<acl_key_use>& out) {
  out.clear();
  if (!sp.key_specs.empty()) {
    for (auto& ks : sp.key_specs) {
      uint8_t perm = 0;
      if (ks.flags & key_flag::access)
        perm |= acl_perm::read;
      if (ks.flags & (key_flag::insert | key_flag::del | key_flag::update))
        perm |= acl_perm::write;
      if (ks.flags & key_flag::variable_flags)
        perm = variable_access(sp, a, perm);
      ks.for_each(a, [&](size_t i) { out.push_back(acl_key_use{a[i], perm, i}); });
    }
    return;
  }
  uint8_t perm = (sp.flags & cmd_flag::write)      ? acl_perm::write
                 : (sp.flags & cmd_flag::readonly) ? acl_perm::read
                                                   : acl_perm::all;
  for_each_key_index(sp, a.size(), [&](size_t i) { out.push_back(acl_key_use{a[i], perm, i}); });
}

std::string ops_permit(security_state& sec, const command_registry& reg, std::string_view user,
                       std::string_view pass, std::string_view cmd, std::string_view key,
                       uint64_t now_ms) {
  session s;
  s.peer = "ops";
  if (!user.empty() || !pass.empty()) {
    if (!sec.authenticate(s, user.empty() ? "default" : user, pass, now_ms, "ops"))
      return std::string(err_wrongpass);
  }
  int id = reg.find(cmd);
  if (id < 0)
    return "ERR unknown command '" + std::string(cmd) + "'";
  auto& sp = reg.spec(id);
  command_args a;
  auto bar = cmd.find('|');
  if (bar != std::string_view::npos) {
    a.push_back(cmd.substr(0, bar));
    a.push_back(cmd.substr(bar + 1));
  } else {
    a.push_back(cmd);
  }
  if (sp.first_key > 0)
    a.push_back(key);
  while (!arity_ok(sp.arity, a.size()) && a.size() < 8)
    a.emplace_back("0");
  out_buffer out;
  if (!permit(sec, reg, id, a, s, out, now_ms)) {
    std::string e(out.begin(), out.end());
    if (!e.empty() && e[0] == '-')
      e.erase(0, 1);
    while (!e.empty() && (e.back() == '\n' || e.back() == '\r'))
      e.pop_back();
    return e.empty() ? std::string("ERR refused") : e;
  }
  if (audited(reg, id))
    sec.audit_command("ops", s, a, sp.parent >= 0 ? 2 : 1, "ok", now_ms);
  return {};
}

bool audited(const command_registry& reg, int id) {
  auto& sp = reg.spec(id);
  if ((sp.flags & cmd_flag::admin) || (sp.acl & acl_cat::dangerous))
    return !(sp.flags & cmd_flag::readonly);
  int top = sp.parent >= 0 ? sp.parent : id;
  const std::string& name = reg.spec(top).name; // per command: no strlen and compare call
  return name.size() == 3 && name == "acl";
}

void channel_uses(const command_registry& reg, int id, const command_args& a, acl_channels& out) {
  // the pub/sub commands name channels (or patterns) instead of keys
  auto& sp = reg.spec(id);
  auto& top = reg.spec(sp.parent >= 0 ? sp.parent : id).name;
  out.names.clear();
  out.patterns = top == "psubscribe";
  size_t last = 0; // the channels are a[1, last)
  if (top == "publish" || top == "spublish")
    last = std::min<size_t>(a.size(), 2);
  else if (top == "subscribe" || top == "ssubscribe" || out.patterns)
    last = a.size();
  for (size_t i = 1; i < last; ++i)
    out.names.push_back(a[i]);
}

namespace {

enum class gate { run, removed, noauth, acl };

/// permit()'s decision without its side effects: `v`, `denied` (the key's
/// index in sec.scratch) and `channel` say why for gate::acl.
gate decide(security_state& sec, const command_registry& reg, int id, const command_args& a,
            const acl_user& u, bool authenticated, acl_verdict& v, size_t& denied,
            std::string_view& channel) {
  auto& sp = reg.spec(id);
  if (u.removed) // deleted by ACL DELUSER or replaced by ACL LOAD: Redis closes
    return gate::removed;
  bool no_auth = (sp.flags & cmd_flag::no_auth) != 0;
  if (!authenticated && !no_auth && sec.acl->auth_required())
    return gate::noauth;
  v = acl_verdict::ok;
  if (no_auth || (u.allcommands && u.allkeys && u.allchannels))
    return gate::run;
  if (u.allkeys && u.selectors.empty())
    sec.scratch.clear(); // no key can be refused
  else
    sec.key_uses(sp, a, sec.scratch);
  acl_channels chans;
  channel_uses(reg, id, a, chans);
  std::string_view first = a.size() > 1 ? std::string_view(a[1]) : std::string_view{};
  v = sec.acl->check(u, id, sec.scratch, &denied, a.size() > 1 ? &first : nullptr, &chans,
                     &channel);
  return v == acl_verdict::ok ? gate::run : gate::acl;
}

} // namespace

bool allowed(security_state& sec, const command_registry& reg, int id, const command_args& a,
             const session& s) {
  if (id < 0)
    return true; // unknown: the dispatcher answers
  const acl_user* u = s.user ? s.user.get() : sec.acl->default_user().get();
  bool authenticated = s.user ? s.authenticated : !sec.acl->auth_required();
  acl_verdict v;
  size_t denied = 0;
  std::string_view channel;
  return decide(sec, reg, id, a, *u, authenticated, v, denied, channel) == gate::run;
}

bool permit(security_state& sec, const command_registry& reg, int id, const command_args& a,
            session& s, out_buffer& out, uint64_t at_ms) {
  struct fixed_time final : kura::clock {
    uint64_t ms;
    explicit fixed_time(uint64_t m) : ms(m) {}
    uint64_t now_ms() const override { return ms; }
    uint64_t mono_ns() const override { return 0; }
  } at{at_ms};
  return permit(sec, reg, id, a, s, out, at);
}

bool permit(security_state& sec, const command_registry& reg, int id, const command_args& a,
            session& s, out_buffer& out, const kura::clock& clk) {
  auto& u = sec.user_of(s);
  auto& sp = reg.spec(id);
  size_t words = sp.parent >= 0 ? 2 : 1;
  acl_verdict v = acl_verdict::ok;
  size_t denied = 0;
  std::string_view channel;
  switch (decide(sec, reg, id, a, u, s.authenticated, v, denied, channel)) {
  case gate::run:
    return true;
  case gate::removed:
    s.quit = true;
    return false;
  case gate::noauth:
    put_error(out, err_noauth);
    sec.audit_command("noauth", s, a, words, err_noauth, clk.now_ms());
    return false;
  case gate::acl:
    break;
  }
  acl_log::entry le;
  le.reason = v;
  if (s.in_script)
    le.context = "lua";
  else if (s.tx.active || s.tx.executing)
    le.context = "multi"; // refused while queueing or when EXEC runs it
  le.username = u.name;
  le.client_info = security_state::client_info(s);
  std::string msg;
  if (v == acl_verdict::denied_command) {
    le.object = sp.name;
    msg = "NOPERM this user has no permissions to run the '" + sp.name + "' command";
  } else if (v == acl_verdict::denied_channel) {
    le.object.assign(channel.data(), channel.size());
    msg = "NOPERM this user has no permissions to access one of the channels used as arguments";
  } else {
    le.object.assign(sec.scratch[denied].key);
    msg = "NOPERM this user has no permissions to access one of the keys used as arguments";
  }
  const uint64_t now_ms = clk.now_ms();
  sec.log.add(std::move(le), now_ms);
  put_error(out, msg);
  sec.audit_command("acl-denied", s, a, words, msg, now_ms);
  return false;
}

} // namespace kura::node
