#include "node/command_registry.hpp"

#include "node/command_util.hpp"

#include <algorithm>
#include <stdexcept>

namespace kura::node {

namespace {

// Bit i of a flag set is named names[i]; the order is Redis 7.0's reply order.
constexpr std::string_view command_flag_table[] = {
    "write",         "readonly",          "denyoom",          "module",   "admin",
    "pubsub",        "noscript",          "blocking",         "loading",  "stale",
    "skip_monitor",  "skip_slowlog",      "asking",           "fast",     "no_auth",
    "may_replicate", "no_mandatory_keys", "no_async_loading", "no_multi", "movablekeys",
    "allow_busy",
};
constexpr std::string_view acl_category_table[] = {
    "keyspace", "read",   "write",       "set",       "sortedset",  "list",        "hash",
    "string",   "bitmap", "hyperloglog", "geo",       "stream",     "pubsub",      "admin",
    "fast",     "slow",   "blocking",    "dangerous", "connection", "transaction", "scripting",
};
constexpr std::string_view key_flag_table[] = {
    "RO",     "RW",     "OW",      "RM",         "access",         "update",
    "insert", "delete", "not_key", "incomplete", "variable_flags",
};

template <size_t N>
std::vector<std::string_view> names_of(uint32_t bits, const std::string_view (&table)[N]) {
  std::vector<std::string_view> r;
  for (size_t i = 0; i < N; ++i)
    if (bits & (1u << i))
      r.push_back(table[i]);
  return r;
}

template <class F>
void for_each_word(std::string_view s, F&& f) {
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && s[i] == ' ')
      ++i;
    size_t j = i;
    while (j < s.size() && s[j] != ' ')
      ++j;
    if (j > i)
      f(s.substr(i, j - i));
    i = j;
  }
}

template <size_t N>
uint32_t parse_names(std::string_view names, const std::string_view (&table)[N], bool strip_at,
                     const char* what) {
  uint32_t bits = 0;
  for_each_word(names, [&](std::string_view w) {
    if (strip_at && !w.empty() && w[0] == '@')
      w.remove_prefix(1);
    for (size_t i = 0; i < N; ++i)
      if (table[i] == w) {
        bits |= 1u << i;
        return;
      }
    throw std::invalid_argument(std::string("unknown ") + what + " '" + std::string(w) + "'");
  });
  return bits;
}

} // namespace

std::vector<std::string_view> command_flag_names(uint32_t flags) {
  return names_of(flags, command_flag_table);
}
std::vector<std::string_view> acl_category_names(uint32_t cats) {
  return names_of(cats, acl_category_table);
}
std::vector<std::string_view> key_flag_names(uint32_t flags) {
  return names_of(flags, key_flag_table);
}
uint32_t parse_command_flags(std::string_view names) {
  return parse_names(names, command_flag_table, false, "command flag");
}
uint32_t parse_acl_categories(std::string_view names) {
  return parse_names(names, acl_category_table, true, "ACL category");
}
uint32_t parse_key_flags(std::string_view names) {
  return parse_names(names, key_flag_table, false, "key flag");
}

// -- builder -------------------------------------------------------------------

command_spec& command_builder::spec() {
  return reg_.spec(id_);
}

command_builder& command_builder::keys(int first, int last, int step) {
  auto& s = spec();
  s.first_key = first;
  s.last_key = last;
  s.step = step;
  return *this;
}

command_builder& command_builder::key_spec(int begin_index, int lastkey, int keystep, int limit,
                                           std::string_view flags, const char* notes) {
  node::key_spec k;
  k.notes = notes;
  k.flags = parse_key_flags(flags);
  k.begin_index = begin_index;
  k.lastkey = lastkey;
  k.keystep = keystep;
  k.limit = limit;
  spec().key_specs.push_back(k);
  return *this;
}

command_builder& command_builder::key_spec_keynum(int begin_index, int keynumidx, int firstkey,
                                                  int keystep, std::string_view flags,
                                                  const char* notes) {
  node::key_spec k;
  k.notes = notes;
  k.flags = parse_key_flags(flags);
  k.begin_index = begin_index;
  k.keynum = true;
  k.keynumidx = keynumidx;
  k.firstkey = firstkey;
  k.keystep = keystep;
  spec().key_specs.push_back(k);
  return *this;
}

command_builder& command_builder::acl(std::string_view categories) {
  spec().acl = parse_acl_categories(categories);
  return *this;
}

command_builder& command_builder::tips(std::string_view space_separated) {
  for_each_word(space_separated, [&](std::string_view w) { spec().tips.push_back(w); });
  return *this;
}

command_builder& command_builder::doc(const char* summary, const char* since, const char* group,
                                      const char* complexity) {
  auto& s = spec();
  s.summary = summary;
  s.since = since;
  s.group = group;
  s.complexity = complexity;
  return *this;
}

command_builder& command_builder::blind() {
  spec().blind = true;
  return *this;
}

command_builder& command_builder::listing(command_planner p) {
  spec().listing = true;
  spec().planner = p;
  return *this;
}

command_builder& command_builder::planner(command_planner p) {
  spec().planner = p;
  return *this;
}

// -- registry ------------------------------------------------------------------

namespace {

/// ASCII lower case (the "C" locale's tolower), without a library call.
inline char fold(char c) noexcept {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c + ('a' - 'A')) : c;
}

/// FNV-1a of the lower-cased bytes of `s`.
inline uint32_t folded_hash(std::string_view s) noexcept {
  uint32_t h = 2166136261u;
  for (char c : s)
    h = (h ^ static_cast<unsigned char>(fold(c))) * 16777619u;
  return h;
}

} // namespace

void command_registry::index_name(int id) {
  auto place = [this](int i) {
    uint32_t h = folded_hash(names_[static_cast<size_t>(i)]);
    size_t mask = table_.size() - 1;
    size_t at = h & mask;
    while (table_[at].id >= 0)
      at = (at + 1) & mask;
    table_[at] = name_slot{h, i};
  };
  if (names_.size() * 2 > table_.size()) { // grow, then place every name again
    table_.assign(std::max<size_t>(64, table_.size() * 2), name_slot{});
    for (int i = 0; i < id; ++i)
      place(i);
  }
  place(id);
}

int command_registry::insert(std::string name, int arity, std::string_view flags,
                             command_handler h) {
  if (find(name) >= 0)
    throw std::invalid_argument("command '" + name + "' registered twice");
  int id = static_cast<int>(specs_.size());
  command_spec s;
  s.name = name;
  s.arity = arity;
  s.flags = parse_command_flags(flags);
  s.handler = h;
  specs_.push_back(std::move(s));
  names_.push_back(name);
  stats_.emplace_back();
  index_name(id);
  return id;
}

command_builder command_registry::add(const char* name, int arity, std::string_view flags,
                                      command_handler h) {
  int id = insert(lower(name), arity, flags, h);
  ++top_level_;
  return {*this, id};
}

command_builder command_registry::add_sub(const char* parent, const char* sub, int arity,
                                          std::string_view flags, command_handler h) {
  int p = find(parent);
  if (p < 0 || specs_[static_cast<size_t>(p)].parent >= 0)
    throw std::invalid_argument(std::string("no container command '") + parent + "'");
  std::string full = lower(parent);
  full += '|';
  full += lower(sub);
  int id = insert(std::move(full), arity, flags, h);
  specs_[static_cast<size_t>(id)].parent = p;
  specs_[static_cast<size_t>(p)].subcommands.push_back(id);
  return {*this, id};
}

int command_registry::find(std::string_view name) const noexcept {
  if (name.size() > 64 || table_.empty())
    return -1;
  uint32_t h = folded_hash(name);
  size_t mask = table_.size() - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    const name_slot& s = table_[i];
    if (s.id < 0)
      return -1;
    if (s.hash != h)
      continue;
    const std::string& n = names_[static_cast<size_t>(s.id)];
    if (n.size() != name.size())
      continue;
    size_t k = 0;
    while (k < n.size() && n[k] == fold(name[k]))
      ++k;
    if (k == n.size())
      return s.id;
  }
}

int command_registry::find_sub(int parent, std::string_view sub) const {
  auto plen = specs_[static_cast<size_t>(parent)].name.size() + 1;
  for (int id : specs_[static_cast<size_t>(parent)].subcommands)
    if (ieq(std::string_view{specs_[static_cast<size_t>(id)].name}.substr(plen), sub))
      return id;
  return -1;
}

int command_registry::resolve(const command_args& a, int id) const {
  if (id < 0 || a.size() < 2 || specs_[static_cast<size_t>(id)].subcommands.empty())
    return id;
  int sub = find_sub(id, a[1]);
  return sub < 0 ? id : sub;
}

void command_registry::reset_stats() {
  for (auto& s : stats_)
    s = command_stats{};
}

keys_status command_registry::keys_of(const command_args& a,
                                      std::vector<std::string_view>& out) const {
  int id = find(a.empty() ? std::string_view{} : a[0]);
  if (id < 0)
    return keys_status::unknown_command;
  if (!specs_[static_cast<size_t>(id)].subcommands.empty() && a.size() >= 2) {
    int sub = find_sub(id, a[1]);
    if (sub < 0)
      return keys_status::unknown_command;
    id = sub;
  }
  auto& sp = specs_[static_cast<size_t>(id)];
  if (!arity_ok(sp.arity, a.size()))
    return keys_status::wrong_arity;
  if (sp.first_key <= 0) { // movable keys (EVAL's numkeys) only in key specs
    for (auto& k : sp.key_specs)
      if (k.keynum)
        k.for_each(a, [&](size_t i) { out.push_back(a[i]); });
    return out.empty() ? keys_status::no_keys : keys_status::ok;
  }
  command_keys(sp, a, out);
  return keys_status::ok;
}

void command_keys(const command_spec& sp, const command_args& a,
                  std::vector<std::string_view>& out) {
  for_each_key_index(sp, a.size(), [&](size_t i) { out.push_back(a[i]); });
}

void plan_key_lookup(const command_args& a, const command_spec& sp, keyspace& ks, fetch_plan& out) {
  for_each_key_index(sp, a.size(), [&](size_t i) {
    auto k = a[i];
    if (!ks.known(k) && ks.maybe_in_l3(k))
      out.keys.emplace_back(k);
  });
  if (!out.keys.empty())
    out.kind = fetch_plan::lookup;
}

// -- COMMAND replies -------------------------------------------------------------

namespace {

void put_status_list(out_buffer& out, const std::vector<std::string_view>& names,
                     const char* prefix = "") {
  put_array_header(out, names.size());
  std::string tmp;
  for (auto n : names) {
    tmp = prefix;
    tmp.append(n);
    put_status(out, tmp);
  }
}

void put_key_spec(out_buffer& out, const key_spec& k) {
  put_array_header(out, k.notes ? 8 : 6);
  if (k.notes) {
    put_bulk(out, "notes");
    put_bulk(out, k.notes);
  }
  put_bulk(out, "flags");
  put_status_list(out, key_flag_names(k.flags));
  put_bulk(out, "begin_search");
  put_array_header(out, 4);
  put_bulk(out, "type");
  put_bulk(out, "index");
  put_bulk(out, "spec");
  put_array_header(out, 2);
  put_bulk(out, "index");
  put_int(out, k.begin_index);
  put_bulk(out, "find_keys");
  put_array_header(out, 4);
  put_bulk(out, "type");
  if (k.keynum) {
    put_bulk(out, "keynum");
    put_bulk(out, "spec");
    put_array_header(out, 6);
    put_bulk(out, "keynumidx");
    put_int(out, k.keynumidx);
    put_bulk(out, "firstkey");
    put_int(out, k.firstkey);
    put_bulk(out, "keystep");
    put_int(out, k.keystep);
    return;
  }
  put_bulk(out, "range");
  put_bulk(out, "spec");
  put_array_header(out, 6);
  put_bulk(out, "lastkey");
  put_int(out, k.lastkey);
  put_bulk(out, "keystep");
  put_int(out, k.keystep);
  put_bulk(out, "limit");
  put_int(out, k.limit);
}

} // namespace

void put_command_info(out_buffer& out, const command_registry& r, int id) {
  auto& sp = r.spec(id);
  put_array_header(out, 10);
  put_bulk(out, sp.name);
  put_int(out, sp.arity);
  put_status_list(out, command_flag_names(sp.flags));
  put_int(out, sp.first_key);
  put_int(out, sp.last_key);
  put_int(out, sp.step);
  put_status_list(out, acl_category_names(sp.acl), "@");
  put_array_header(out, sp.tips.size());
  for (auto t : sp.tips)
    put_bulk(out, t);
  put_array_header(out, sp.key_specs.size());
  for (auto& k : sp.key_specs)
    put_key_spec(out, k);
  put_array_header(out, sp.subcommands.size());
  for (int sub : sp.subcommands)
    put_command_info(out, r, sub);
}

void put_command_docs(out_buffer& out, const command_registry& r, int id) {
  auto& sp = r.spec(id);
  put_bulk(out, sp.name);
  put_array_header(out, sp.subcommands.empty() ? 8 : 10);
  put_bulk(out, "summary");
  put_bulk(out, sp.summary);
  put_bulk(out, "since");
  put_bulk(out, sp.since);
  put_bulk(out, "group");
  put_bulk(out, sp.group);
  put_bulk(out, "complexity");
  put_bulk(out, sp.complexity);
  if (!sp.subcommands.empty()) {
    put_bulk(out, "subcommands");
    put_array_header(out, sp.subcommands.size() * 2);
    for (int sub : sp.subcommands)
      put_command_docs(out, r, sub);
  }
}

} // namespace kura::node
