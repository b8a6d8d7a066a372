// The ACL fuzz targets' shared parts (acl_fuzz: the file loader,
// acl_rules_fuzz: the rule parser): a command catalog shaped like Redis's,
// the word splitter, and a check of every user against every command.
#pragma once

#include "node/acl.hpp"

#include "fuzz_util.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace kura::fuzz {

using namespace kura::node;

inline uint32_t acl_cats(std::initializer_list<const char*> names) {
  uint32_t r = 0;
  for (auto n : names)
    r |= acl_category_bit(n);
  return r;
}

/// A small command catalog shaped like Redis's.
inline const acl_catalog& acl_catalog_for_fuzz() {
  static acl_catalog cat = [] {
    acl_catalog c;
    c.add("get", acl_cats({"read", "string", "fast"}));
    c.add("set", acl_cats({"write", "string", "slow"}));
    c.add("del", acl_cats({"keyspace", "write", "slow"}));
    c.add("flushall", acl_cats({"keyspace", "write", "slow", "dangerous"}));
    c.add("ping", acl_cats({"fast", "connection"}));
    c.add("config", acl_cats({"slow"}));
    c.add("config|get", acl_cats({"admin", "slow", "dangerous"}));
    c.add("config|set", acl_cats({"admin", "slow", "dangerous"}));
    c.add("keys", acl_cats({"keyspace", "read", "slow", "dangerous"}));
    c.add("hset", acl_cats({"write", "hash", "fast"}));
    return c;
  }();
  return cat;
}

/// The space-separated words of `line`.
inline std::vector<std::string_view> acl_words(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && line[i] == ' ')
      ++i;
    size_t b = i;
    while (i < line.size() && line[i] != ' ')
      ++i;
    if (i > b)
      out.push_back(line.substr(b, i - b));
  }
  return out;
}

/// Checks every user of `t` against every command (must not crash).
inline void acl_check_all(const acl_table& t) {
  std::vector<acl_key_use> keys{acl_key_use{"k:1", acl_perm::read, 1},
                                acl_key_use{"w:2", acl_perm::write, 2}};
  for (auto& [name, u] : t.users())
    for (size_t id = 0; id < t.catalog().size(); ++id) {
      size_t denied = 0;
      (void)t.check(*u, static_cast<int>(id), keys, &denied);
    }
}

/// Calls `f(n, line)` for each of the first `max` lines of `bytes`.
template <class F>
void acl_lines(std::string_view bytes, int max, F f) {
  size_t at = 0;
  for (int n = 0; n < max && at <= bytes.size(); ++n) {
    auto nl = bytes.find('\n', at);
    auto line = bytes.substr(at, nl == std::string_view::npos ? std::string_view::npos : nl - at);
    at = nl == std::string_view::npos ? bytes.size() + 1 : nl + 1;
    f(n, line);
  }
}

/// User `name` of `t` was just set: its description, applied to a fresh
/// user `copy`, must be accepted and describe the same.
inline void acl_check_description(acl_table& t, const std::string& name, const std::string& copy) {
  auto u = t.find(name);
  fuzz_check(u != nullptr, "a user set is found");
  auto described = t.describe(*u);
  fuzz_check(t.set_user(copy, acl_words(described)).empty(), "a description applies");
  fuzz_check(t.describe(*t.find(copy)) == described, "a description describes the same");
}

} // namespace kura::fuzz
