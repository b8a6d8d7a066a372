#include "node/acl.hpp"

#include "actors/keyspace.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <stdexcept>

namespace kura::node {

namespace {

std::string lower_copy(std::string_view s) {
  std::string r(s);
  for (auto& c : r)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

bool iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size())
    return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

/// Redis's ACLStringHasSpaces: spaces and NUL are not allowed in names and
/// patterns (the ACL file is space-separated).
bool has_spaces(std::string_view s) {
  for (char c : s)
    if (std::isspace(static_cast<unsigned char>(c)) || c == '\0')
      return true;
  return false;
}

bool valid_hash(std::string_view h) {
  if (h.size() != 64)
    return false;
  for (char c : h)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
      return false;
  return true;
}

/// Constant-time comparison of two equal-length hashes.
bool same_hash(std::string_view a, std::string_view b) {
  if (a.size() != b.size())
    return false;
  unsigned char d = 0;
  for (size_t i = 0; i < a.size(); ++i)
    d |= static_cast<unsigned char>(a[i] ^ b[i]);
  return d == 0;
}

constexpr const char* err_enoent = "Unknown command or category name in ACL";
constexpr const char* err_einval = "Syntax error";
constexpr const char* err_eexist =
    "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not "
    "have any effect. Try 'resetkeys' to start with an empty list of patterns";
constexpr const char* err_eisdir =
    "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does "
    "not have any effect. Try 'resetchannels' to start with an empty list of channels";
constexpr const char* err_enodev =
    "The password you are trying to remove from the user does not exist";
constexpr const char* err_ebadmsg = "The password hash must be exactly 64 characters and "
                                    "contain only lowercase hexadecimal characters";
constexpr const char* err_echild = "Allowing first-arg of a subcommand is not supported";

/// Splits an ACL file line at spaces, honouring "double" and 'single' quotes
/// as Redis's sdssplitargs does; false on unbalanced quotes.
bool split_args(std::string_view line, std::vector<std::string>& out) {
  size_t i = 0;
  while (true) {
    while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i])))
      ++i;
    if (i >= line.size())
      return true;
    std::string cur;
    bool inq = false, insq = false;
    while (true) {
      if (inq) {
        if (i >= line.size())
          return false;
        char c = line[i];
        if (c == '\\' && i + 1 < line.size()) {
          char n = line[i + 1];
          ++i;
          switch (n) {
          case 'n':
            cur += '\n';
            break;
          case 'r':
            cur += '\r';
            break;
          case 't':
            cur += '\t';
            break;
          case 'b':
            cur += '\b';
            break;
          case 'a':
            cur += '\a';
            break;
          default:
            cur += n;
            break;
          }
        } else if (c == '"') {
          if (i + 1 < line.size() && !std::isspace(static_cast<unsigned char>(line[i + 1])))
            return false; // closing quote must be followed by a space
          inq = false;
          ++i;
          break;
        } else {
          cur += c;
        }
      } else if (insq) {
        if (i >= line.size())
          return false;
        char c = line[i];
        if (c == '\\' && i + 1 < line.size() && line[i + 1] == '\'') {
          cur += '\'';
          ++i;
        } else if (c == '\'') {
          if (i + 1 < line.size() && !std::isspace(static_cast<unsigned char>(line[i + 1])))
            return false;
          insq = false;
          ++i;
          break;
        } else {
          cur += c;
        }
      } else {
        if (i >= line.size())
          break;
        char c = line[i];
        if (std::isspace(static_cast<unsigned char>(c)))
          break;
        if (c == '"' && cur.empty())
          inq = true;
        else if (c == '\'' && cur.empty())
          insq = true;
        else
          cur += c;
      }
      ++i;
    }
    out.push_back(std::move(cur));
  }
}

} // namespace

// -- categories -------------------------------------------------------------------

const char* const acl_category_table[] = {
    "keyspace", "read",   "write",       "set",       "sortedset",  "list",        "hash",
    "string",   "bitmap", "hyperloglog", "geo",       "stream",     "pubsub",      "admin",
    "fast",     "slow",   "blocking",    "dangerous", "connection", "transaction", "scripting",
};

uint32_t acl_category_bit(std::string_view name) {
  for (size_t i = 0; i < acl_category_count; ++i)
    if (iequal(name, acl_category_table[i]))
      return 1u << i;
  return 0;
}

// -- catalog --------------------------------------------------------------------

int acl_catalog::add(std::string_view name, uint32_t categories) {
  std::string n = lower_copy(name);
  int parent = -1;
  auto bar = n.find('|');
  if (bar != std::string::npos) {
    parent = find(n.substr(0, bar));
    if (parent < 0)
      throw std::invalid_argument("acl_catalog: subcommand before its parent: " + n);
  }
  int id = static_cast<int>(cmds_.size());
  cmds_.push_back(command{n, categories, parent, {}});
  if (parent >= 0)
    cmds_[static_cast<size_t>(parent)].subs.push_back(id);
  index_.emplace(std::move(n), id);
  return id;
}

int acl_catalog::find(std::string_view name) const {
  auto it = index_.find(lower_copy(name));
  return it == index_.end() ? -1 : it->second;
}

// -- passwords ----------------------------------------------------------------------

std::string acl_hash_password(std::string_view s) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(s.data(), s.size(), md, &len, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("SHA-256 failed");
  static const char* hex = "0123456789abcdef";
  std::string r;
  r.reserve(len * 2);
  for (unsigned i = 0; i < len; ++i) {
    r += hex[md[i] >> 4];
    r += hex[md[i] & 15];
  }
  return r;
}

std::string acl_random_hex(size_t bits) {
  size_t chars = (bits + 3) / 4;
  std::vector<unsigned char> buf((chars + 1) / 2);
  if (!buf.empty() && RAND_bytes(buf.data(), static_cast<int>(buf.size())) != 1)
    throw std::runtime_error("RAND_bytes failed");
  static const char* hex = "0123456789abcdef";
  std::string r;
  for (auto b : buf) {
    r += hex[b >> 4];
    r += hex[b & 15];
  }
  r.resize(chars);
  return r;
}

bool acl_rule_is_secret(std::string_view rule) {
  return !rule.empty() && (rule[0] == '>' || rule[0] == '<' || rule[0] == '#' || rule[0] == '!');
}

// -- table ----------------------------------------------------------------------------

acl_table::acl_table(const acl_catalog& cat) : cat_(cat) {
  default_ = make_user("default");
  for (auto r : {"+@all", "~*", "&*", "on", "nopass"})
    apply_rule(*default_, r);
  users_.emplace("default", default_);
}

std::shared_ptr<acl_user> acl_table::make_user(std::string_view name) const {
  auto u = std::make_shared<acl_user>();
  u->name.assign(name.data(), name.size());
  u->allowed.assign(cat_.size(), false);
  u->allchannels = pubsub_all_;
  return u;
}

bool acl_user::firstarg_allowed(int id, std::string_view first) const {
  auto it = firstargs.find(id);
  if (it == firstargs.end())
    return false;
  for (auto& f : it->second)
    if (f.size() == first.size() &&
        std::equal(f.begin(), f.end(), first.begin(),
                   [](char x, char y) { return x == std::tolower(static_cast<unsigned char>(y)); }))
      return true;
  return false;
}

void acl_table::set_command(acl_user& u, int id, bool allow) const {
  auto& c = cat_.at(id);
  u.allowed[static_cast<size_t>(id)] = allow;
  u.firstargs.erase(id);
  for (int s : c.subs)
    u.allowed[static_cast<size_t>(s)] = allow;
  if (!allow)
    u.allcommands = false;
}

void acl_table::set_category(acl_user& u, uint32_t bit, bool allow) const {
  for (size_t id = 0; id < cat_.size(); ++id)
    if (cat_.at(static_cast<int>(id)).categories & bit)
      set_command(u, static_cast<int>(id), allow);
}

void acl_table::all_commands(acl_user& u, bool allow) const {
  u.empty_plus = u.empty_minus = 0;
  u.allowed.assign(cat_.size(), allow);
  u.firstargs.clear();
  u.future = allow;
  u.allcommands = allow;
}

namespace {

/// Rules about the user itself, not about what it may do: refused inside a
/// selector, as Redis 7.0's ACLSetSelector refuses them.
bool user_level_rule(std::string_view op) {
  for (auto w : {"on", "off", "nopass", "resetpass", "reset", "clearselectors", "sanitize-payload",
                 "skip-sanitize-payload"})
    if (iequal(op, w))
      return true;
  return op[0] == '>' || op[0] == '<' || op[0] == '#' || op[0] == '!' || op[0] == '(';
}

} // namespace

std::string acl_merge_selectors(const std::vector<std::string_view>& in,
                                std::vector<std::string>& out) {
  out.clear();
  std::string open;
  bool inside = false;
  for (auto r : in) {
    if (inside) {
      open += ' ';
      open.append(r.data(), r.size());
      if (!r.empty() && r.back() == ')') {
        out.push_back(std::move(open));
        open.clear();
        inside = false;
      }
    } else if (!r.empty() && r[0] == '(' && r.back() != ')') {
      open.assign(r.data(), r.size());
      inside = true;
    } else {
      out.emplace_back(r);
    }
  }
  if (inside)
    return "Unmatched parenthesis in acl selector starting at '" + open + "'.";
  return {};
}

std::string acl_table::apply_rule(acl_user& u, std::string_view op) const {
  if (op.empty())
    return "";
  // (a parenthesis inside a selector would make its description ambiguous)
  if (u.is_selector && (user_level_rule(op) || op.find_first_of("()") != std::string_view::npos))
    return err_einval;
  if (op[0] == '(' && op.back() == ')') {
    // a selector: its own commands, keys and channels, starting from none
    // (channels as acl-pubsub-default), rules separated by spaces
    acl_user sel = *make_user("");
    sel.is_selector = true;
    auto body = op.substr(1, op.size() - 2);
    size_t at = 0;
    while (at <= body.size()) {
      auto sp = body.find(' ', at);
      auto word = body.substr(at, sp == std::string_view::npos ? std::string_view::npos : sp - at);
      if (auto err = apply_rule(sel, word); !err.empty())
        return err;
      if (sp == std::string_view::npos)
        break;
      at = sp + 1;
    }
    u.selectors.push_back(std::move(sel));
    return "";
  }
  if (iequal(op, "on")) {
    u.enabled = true;
  } else if (iequal(op, "off")) {
    u.enabled = false;
  } else if (iequal(op, "skip-sanitize-payload")) {
    u.payload = 2;
  } else if (iequal(op, "sanitize-payload")) {
    u.payload = 1;
  } else if (iequal(op, "nopass")) {
    u.nopass = true;
    u.passwords.clear();
  } else if (iequal(op, "resetpass")) {
    u.nopass = false;
    u.passwords.clear();
  } else if (op[0] == '>' || op[0] == '#') {
    std::string h;
    if (op[0] == '>') {
      h = acl_hash_password(op.substr(1));
    } else {
      if (!valid_hash(op.substr(1)))
        return err_ebadmsg;
      h.assign(op.substr(1));
    }
    if (std::find(u.passwords.begin(), u.passwords.end(), h) == u.passwords.end())
      u.passwords.push_back(std::move(h));
    u.nopass = false;
  } else if (op[0] == '<' || op[0] == '!') {
    std::string h;
    if (op[0] == '<') {
      h = acl_hash_password(op.substr(1));
    } else {
      if (!valid_hash(op.substr(1)))
        return err_ebadmsg;
      h.assign(op.substr(1));
    }
    auto it = std::find(u.passwords.begin(), u.passwords.end(), h);
    if (it == u.passwords.end())
      return err_enodev;
    u.passwords.erase(it);
  } else if (iequal(op, "clearselectors")) {
    u.selectors.clear();
  } else if (iequal(op, "reset")) {
    apply_rule(u, "clearselectors");
    apply_rule(u, "resetpass");
    apply_rule(u, "resetkeys");
    apply_rule(u, pubsub_all_ ? "allchannels" : "resetchannels");
    apply_rule(u, "off");
    apply_rule(u, "sanitize-payload");
    apply_rule(u, "-@all");
  } else if (iequal(op, "allkeys") || op == "~*") {
    u.allkeys = true;
    u.keys.clear();
  } else if (iequal(op, "resetkeys")) {
    u.allkeys = false;
    u.keys.clear();
  } else if (iequal(op, "allchannels") || op == "&*") {
    u.allchannels = true;
    u.channels.clear();
  } else if (iequal(op, "resetchannels")) {
    u.allchannels = false;
    u.channels.clear();
  } else if (iequal(op, "allcommands") || iequal(op, "+@all")) {
    all_commands(u, true);
  } else if (iequal(op, "nocommands") || iequal(op, "-@all")) {
    all_commands(u, false);
  } else if (op[0] == '~' || op[0] == '%') {
    if (u.allkeys)
      return err_eexist;
    uint8_t perm = 0;
    size_t off = 1;
    if (op[0] == '%') {
      bool closed = false;
      for (; off < op.size(); ++off) {
        char c = static_cast<char>(std::toupper(static_cast<unsigned char>(op[off])));
        if (c == 'R' && !(perm & acl_perm::read)) {
          perm |= acl_perm::read;
        } else if (c == 'W' && !(perm & acl_perm::write)) {
          perm |= acl_perm::write;
        } else if (op[off] == '~') {
          ++off;
          closed = true;
          break;
        } else {
          return err_einval;
        }
      }
      if (!closed || perm == 0)
        return err_einval;
    } else {
      perm = acl_perm::all;
    }
    auto pat = op.substr(off);
    if (has_spaces(pat))
      return err_einval;
    auto it = std::find_if(u.keys.begin(), u.keys.end(),
                           [&](const acl_key_pattern& k) { return k.pattern == pat; });
    if (it == u.keys.end())
      u.keys.push_back(acl_key_pattern{std::string(pat), perm});
    else
      it->perm |= perm;
    u.allkeys = false;
  } else if (op[0] == '&') {
    if (u.allchannels)
      return err_eisdir;
    auto pat = op.substr(1);
    if (has_spaces(pat))
      return err_einval;
    if (std::find(u.channels.begin(), u.channels.end(), pat) == u.channels.end())
      u.channels.emplace_back(pat);
    u.allchannels = false;
  } else if (op.size() >= 2 && (op[0] == '+' || op[0] == '-') && op[1] == '@') {
    uint32_t bit = acl_category_bit(op.substr(2));
    if (bit == 0)
      return err_enoent;
    set_category(u, bit, op[0] == '+');
    bool empty = true;
    for (size_t id = 0; empty && id < cat_.size(); ++id)
      empty = (cat_.at(static_cast<int>(id)).categories & bit) == 0;
    if (empty) {
      (op[0] == '+' ? u.empty_plus : u.empty_minus) |= bit;
      (op[0] == '+' ? u.empty_minus : u.empty_plus) &= ~bit;
    }
  } else if (op[0] == '+' || op[0] == '-') {
    auto name = op.substr(1);
    auto bar = name.rfind('|');
    if (bar != std::string_view::npos) {
      int parent = cat_.find(name.substr(0, bar));
      if (parent < 0)
        return err_enoent;
      if (cat_.at(parent).parent >= 0)
        return err_echild;
      if (bar + 1 == name.size())
        return err_einval;
      if (op[0] == '+' && cat_.at(parent).subs.empty()) {
        // a first argument of a command without subcommands (+select|0,
        // +debug|digest): Redis 7's allowed_firstargs
        std::string first(name.substr(bar + 1));
        for (auto& ch : first)
          ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        auto& v = u.firstargs[parent];
        if (std::find(v.begin(), v.end(), first) == v.end())
          v.push_back(std::move(first));
        return "";
      }
    }
    int id = cat_.find(name);
    if (id < 0)
      return err_enoent;
    set_command(u, id, op[0] == '+');
  } else {
    return err_einval;
  }
  return "";
}

std::string acl_table::set_user(std::string_view name, const std::vector<std::string_view>& rules) {
  if (has_spaces(name))
    return "Usernames can't contain spaces or null characters";
  std::vector<std::string> merged;
  if (auto err = acl_merge_selectors(rules, merged); !err.empty())
    return err;
  auto existing = find(name);
  acl_user tmp = existing ? *existing : *make_user(name);
  for (auto& r : merged) {
    auto err = apply_rule(tmp, r);
    if (!err.empty()) {
      std::string m = "Error in ACL SETUSER modifier '";
      m.append(r.data(), r.size());
      m += "': ";
      m += err;
      return m;
    }
  }
  if (existing) {
    *existing = std::move(tmp);
  } else {
    auto u = std::make_shared<acl_user>(std::move(tmp));
    users_.emplace(u->name, u);
  }
  return "";
}

bool acl_table::del_user(std::string_view name) {
  if (name == "default")
    return false;
  auto it = users_.find(name);
  if (it == users_.end())
    return false;
  it->second->removed = true;
  users_.erase(it);
  return true;
}

std::shared_ptr<acl_user> acl_table::find(std::string_view name) const {
  auto it = users_.find(name);
  return it == users_.end() ? nullptr : it->second;
}

void acl_table::set_default_password(std::string_view pass) {
  apply_rule(*default_, "resetpass");
  if (pass.empty()) {
    apply_rule(*default_, "nopass");
  } else {
    std::string r = ">";
    r.append(pass.data(), pass.size());
    apply_rule(*default_, r);
  }
}

std::shared_ptr<acl_user> acl_table::authenticate(std::string_view name,
                                                  std::string_view pass) const {
  auto u = find(name);
  if (!u || !u->enabled)
    return nullptr;
  if (u->nopass)
    return u;
  auto h = acl_hash_password(pass);
  bool ok = false;
  for (auto& p : u->passwords)
    ok |= same_hash(h, p);
  return ok ? u : nullptr;
}

bool acl_table::auth_required() const {
  return !default_->nopass || !default_->enabled;
}

bool acl_table::open() const {
  return users_.size() == 1 && default_->nopass && default_->enabled;
}

acl_verdict acl_table::check_one(const acl_user& s, int id, const std::vector<acl_key_use>& keys,
                                 size_t& denied, const std::string_view* first_arg,
                                 const acl_channels* channels,
                                 std::string_view& denied_channel) const {
  if (!s.can_run(id) && !(first_arg && s.firstarg_allowed(id, *first_arg)))
    return acl_verdict::denied_command;
  if (!s.allkeys)
    for (size_t i = 0; i < keys.size(); ++i) {
      bool ok = false;
      for (auto& p : s.keys) {
        if ((p.perm & keys[i].perm) != keys[i].perm)
          continue;
        if (actors::glob_match(p.pattern, keys[i].key)) {
          ok = true;
          break;
        }
      }
      if (!ok) {
        denied = i;
        return acl_verdict::denied_key;
      }
    }
  if (channels)
    for (auto ch : channels->names)
      if (!channel_allowed(s, ch, channels->patterns)) {
        denied_channel = ch;
        return acl_verdict::denied_channel;
      }
  return acl_verdict::ok;
}

acl_verdict acl_table::check(const acl_user& u, int id, const std::vector<acl_key_use>& keys,
                             size_t* denied, const std::string_view* first_arg,
                             const acl_channels* channels, std::string_view* denied_channel) const {
  // Redis 7.0's ACLCheckAllUserCommandPerm: the root selector, then the
  // others; the most relevant refusal is reported
  auto rank = [](acl_verdict v) {
    return v == acl_verdict::denied_command ? 1 : v == acl_verdict::denied_key ? 2 : 4;
  };
  size_t best_key = 0;
  std::string_view best_channel;
  auto best = check_one(u, id, keys, best_key, first_arg, channels, best_channel);
  for (size_t i = 0; best != acl_verdict::ok && i < u.selectors.size(); ++i) {
    size_t k = 0;
    std::string_view ch;
    auto v = check_one(u.selectors[i], id, keys, k, first_arg, channels, ch);
    if (v == acl_verdict::ok || rank(v) > rank(best) ||
        (v == best && v == acl_verdict::denied_key && k > best_key)) {
      best = v;
      best_key = k;
      best_channel = ch;
    }
  }
  if (denied)
    *denied = best_key;
  if (denied_channel)
    *denied_channel = best_channel;
  return best;
}

bool acl_table::channel_allowed(const acl_user& u, std::string_view channel,
                                bool is_pattern) const {
  if (u.allchannels)
    return true;
  for (auto& p : u.channels)
    if (is_pattern ? p == channel : actors::glob_match(p, channel))
      return true;
  return false;
}

// -- descriptions -------------------------------------------------------------------------

std::vector<std::string> acl_table::flags(const acl_user& u) const {
  std::vector<std::string> r;
  r.emplace_back(u.enabled ? "on" : "off");
  if (u.nopass)
    r.emplace_back("nopass");
  if (u.payload == 2)
    r.emplace_back("skip-sanitize-payload");
  if (u.payload == 1)
    r.emplace_back("sanitize-payload");
  return r;
}

std::string acl_table::describe_commands(const acl_user& u) const {
  // Redis 7.0's ACLDescribeSelectorCommandRules: a fake user starts from
  // +@all or -@all; the category that covers most of the remaining difference
  // (and more commands that agree than differ) is applied, repeatedly; then
  // single commands fix what is left.
  acl_user fake = *make_user(u.name);
  bool additive = !u.future;
  std::string rules = additive ? "-@all " : "+@all ";
  all_commands(fake, !additive);
  // categories kura has no command in, as the rules named them
  for (size_t j = 0; j < acl_category_count; ++j)
    if ((additive ? u.empty_plus : u.empty_minus) & (1u << j)) {
      rules += additive ? "+@" : "-@";
      rules += acl_category_table[j];
      rules += ' ';
    }
  acl_user temp = u;
  bool applied[acl_category_count] = {};
  while (true) {
    int best = -1;
    unsigned long mindiff = INT_MAX, maxsame = 0;
    for (size_t j = 0; j < acl_category_count; ++j) {
      if (applied[j])
        continue;
      unsigned long on = 0, off = 0;
      for (size_t id = 0; id < cat_.size(); ++id)
        if (cat_.at(static_cast<int>(id)).categories & (1u << j))
          (temp.allowed[id] ? on : off)++;
      unsigned long diff = additive ? off : on;
      unsigned long same = additive ? on : off;
      if (same > diff && (diff < mindiff || (diff == mindiff && same > maxsame))) {
        best = static_cast<int>(j);
        mindiff = diff;
        maxsame = same;
      }
    }
    if (best < 0)
      break;
    set_category(fake, 1u << best, additive);
    set_category(temp, 1u << best, !additive);
    rules += additive ? "+@" : "-@";
    rules += acl_category_table[best];
    rules += ' ';
    applied[best] = true;
  }
  for (size_t id = 0; id < cat_.size(); ++id) {
    bool ub = u.allowed[id], fb = fake.allowed[id];
    if (ub != fb) {
      rules += ub ? '+' : '-';
      rules += cat_.at(static_cast<int>(id)).name;
      rules += ' ';
      set_command(fake, static_cast<int>(id), ub);
    }
    // first arguments allowed of this otherwise blocked command
    auto fa = u.firstargs.find(static_cast<int>(id));
    if (fa != u.firstargs.end())
      for (auto& f : fa->second) {
        rules += '+';
        rules += cat_.at(static_cast<int>(id)).name;
        rules += '|';
        rules += f;
        rules += ' ';
      }
  }
  rules.pop_back();
  return rules;
}

std::string acl_table::describe_keys(const acl_user& u) const {
  if (u.allkeys)
    return "~*";
  std::string r;
  for (auto& k : u.keys) {
    if (!r.empty())
      r += ' ';
    // A pattern "*" with both permissions (from %RW~* or %R~* %W~*) is a
    // pattern, not allkeys: written "~*" it would read back as allkeys, which
    // refuses every pattern after it (Redis describes it so; the fuzzer's
    // round trip caught it).
    r += k.perm == acl_perm::all    ? (k.pattern == "*" ? "%RW~" : "~")
         : k.perm == acl_perm::read ? "%R~"
                                    : "%W~";
    r += k.pattern;
  }
  return r;
}

std::string acl_table::describe_channels(const acl_user& u) const {
  if (u.allchannels)
    return "&*";
  std::string r;
  for (auto& c : u.channels) {
    if (!r.empty())
      r += ' ';
    r += '&';
    r += c;
  }
  return r;
}

std::string acl_table::describe_selector(const acl_user& s) const {
  std::string r;
  if (s.allkeys) {
    r += "~* ";
  } else {
    auto k = describe_keys(s);
    if (!k.empty()) {
      r += k;
      r += ' ';
    }
  }
  if (s.allchannels) {
    r += "&* ";
  } else {
    r += "resetchannels ";
    for (auto& c : s.channels) {
      r += '&';
      r += c;
      r += ' ';
    }
  }
  r += describe_commands(s);
  return r;
}

std::string acl_table::describe(const acl_user& u) const {
  std::string r;
  for (auto& f : flags(u)) {
    r += f;
    r += ' ';
  }
  for (auto& p : u.passwords) {
    r += '#';
    r += p;
    r += ' ';
  }
  r += describe_selector(u);
  for (auto& sel : u.selectors) {
    r += " (";
    r += describe_selector(sel);
    r += ')';
  }
  return r;
}

// -- ACL file ----------------------------------------------------------------------------

std::string acl_table::load(std::string_view bytes, std::string_view source) {
  std::map<std::string, std::shared_ptr<acl_user>, std::less<>> fresh;
  std::string errors;
  std::string src(source);
  size_t linenum = 0;
  size_t pos = 0;
  while (pos <= bytes.size()) {
    auto nl = bytes.find('\n', pos);
    auto line = bytes.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? bytes.size() + 1 : nl + 1;
    ++linenum;
    auto ln = std::to_string(linenum);
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.front())))
      line.remove_prefix(1);
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back())))
      line.remove_suffix(1);
    if (line.empty())
      continue;
    std::vector<std::string> argv;
    if (!split_args(line, argv)) {
      errors += src + ":" + ln + ": unbalanced quotes in acl line. ";
      continue;
    }
    if (argv.empty())
      continue;
    if (argv[0] != "user" || argv.size() < 2) {
      errors += src + ":" + ln + " should start with user keyword followed by the username. ";
      continue;
    }
    if (has_spaces(argv[1]) || argv[1].empty()) {
      errors += "'" + src + ":" + ln + ": username '" + argv[1] + "' contains invalid characters. ";
      continue;
    }
    if (fresh.count(argv[1])) {
      errors += "WARNING: Duplicate user '" + argv[1] + "' found on line " + ln + ". ";
      continue;
    }
    auto u = make_user(argv[1]);
    bool syntax_error = false;
    std::vector<std::string_view> words(argv.begin() + 2, argv.end());
    std::vector<std::string> rules;
    if (auto err = acl_merge_selectors(words, rules); !err.empty()) {
      errors += src + ":" + ln + ": " + err + " ";
      continue;
    }
    for (auto& rule : rules) {
      auto err = apply_rule(*u, rule);
      if (err.empty())
        continue;
      if (err == err_enoent)
        errors += src + ":" + ln + ": Error in applying operation '" + rule + "': " + err + ". ";
      else if (!syntax_error)
        errors += src + ":" + ln + ": " + err + ". ";
      syntax_error = syntax_error || err != err_enoent;
    }
    fresh.emplace(u->name, u);
  }
  if (!errors.empty()) {
    errors += "WARNING: ACL errors detected, no change to the previously active ACL rules was "
              "performed";
    return errors;
  }
  // the default user object stays (sessions hold it); its rules are replaced
  auto def = fresh.find("default");
  if (def == fresh.end()) {
    acl_user d = *make_user("default");
    for (auto r : {"+@all", "~*", "&*", "on", "nopass"})
      apply_rule(d, r);
    *default_ = std::move(d);
  } else {
    *default_ = std::move(*def->second);
    fresh.erase(def);
  }
  for (auto& [n, u] : users_)
    if (u != default_)
      u->removed = true;
  users_ = std::move(fresh);
  users_.emplace("default", default_);
  return "";
}

std::string acl_table::save() const {
  std::string r;
  for (auto& [n, u] : users_) {
    r += "user ";
    if (!n.empty() && (n[0] == '"' || n[0] == '\'')) {
      // a name that starts with a quote is written quoted, or the loader's
      // split (Redis's sdssplitargs) would take it for a quoted string
      r += '"';
      for (char c : n) {
        if (c == '"' || c == '\\')
          r += '\\';
        r += c;
      }
      r += '"';
    } else {
      r += n;
    }
    r += ' ';
    r += describe(*u);
    r += '\n';
  }
  return r;
}

// -- ACL LOG ----------------------------------------------------------------------------

const char* acl_reason_name(acl_verdict v) {
  switch (v) {
  case acl_verdict::denied_command:
    return "command";
  case acl_verdict::denied_key:
    return "key";
  case acl_verdict::denied_channel:
    return "channel";
  case acl_verdict::denied_auth:
    return "auth";
  default:
    return "unknown";
  }
}

void acl_log::add(entry e, uint64_t now_ms) {
  e.ctime_ms = now_ms;
  size_t scan = std::min<size_t>(10, entries_.size());
  for (size_t i = 0; i < scan; ++i) {
    auto& cur = entries_[i];
    if (cur.reason == e.reason && cur.context == e.context && cur.object == e.object &&
        cur.username == e.username && now_ms - cur.ctime_ms <= 60000) {
      entry m = std::move(cur);
      entries_.erase(entries_.begin() + static_cast<long>(i));
      m.client_info = std::move(e.client_info);
      m.ctime_ms = now_ms;
      ++m.count;
      entries_.push_front(std::move(m));
      return;
    }
  }
  entries_.push_front(std::move(e));
  while (entries_.size() > max_)
    entries_.pop_back();
}

void acl_log::set_max_len(size_t n) {
  max_ = n;
  while (entries_.size() > max_)
    entries_.pop_back();
}

} // namespace kura::node
