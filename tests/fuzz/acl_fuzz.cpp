// libFuzzer target: the ACL rule parser and ACL file loader (node/acl.hpp),
// over a small command catalog shaped like Redis's. Run by scripts/fuzz.
// Input: an ACL file. It is loaded (all users replaced, or nothing changed and
// the errors returned); a loaded table must save to a file that loads again
// and saves the same. Each line is also applied as the rules of one user
// (ACL SETUSER); a user's description, applied to a fresh user, must describe
// the same. Every user is checked against every command.
#include "node/acl.hpp"

#include "fuzz_util.hpp"

#include <string>
#include <vector>

using namespace kura::node;
using kura::fuzz::fuzz_check;

namespace {

uint32_t cats(std::initializer_list<const char*> names) {
  uint32_t r = 0;
  for (auto n : names)
    r |= acl_category_bit(n);
  return r;
}

const acl_catalog& catalog() {
  static acl_catalog cat = [] {
    acl_catalog c;
    c.add("get", cats({"read", "string", "fast"}));
    c.add("set", cats({"write", "string", "slow"}));
    c.add("del", cats({"keyspace", "write", "slow"}));
    c.add("flushall", cats({"keyspace", "write", "slow", "dangerous"}));
    c.add("ping", cats({"fast", "connection"}));
    c.add("config", cats({"slow"}));
    c.add("config|get", cats({"admin", "slow", "dangerous"}));
    c.add("config|set", cats({"admin", "slow", "dangerous"}));
    c.add("keys", cats({"keyspace", "read", "slow", "dangerous"}));
    c.add("hset", cats({"write", "hash", "fast"}));
    return c;
  }();
  return cat;
}

std::vector<std::string_view> words(std::string_view line) {
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

void check_all(const acl_table& t) {
  std::vector<acl_key_use> keys{acl_key_use{"k:1", acl_perm::read, 1},
                                acl_key_use{"w:2", acl_perm::write, 2}};
  for (auto& [name, u] : t.users())
    for (size_t id = 0; id < t.catalog().size(); ++id) {
      size_t denied = 0;
      (void)t.check(*u, static_cast<int>(id), keys, &denied);
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto bytes = kura::fuzz::as_view(data, size);
  acl_table t{catalog()};
  if (t.load(bytes).empty()) {
    auto saved = t.save();
    acl_table again{catalog()};
    fuzz_check(again.load(saved).empty(), "a saved ACL file loads");
    fuzz_check(again.save() == saved, "saving a loaded ACL file is stable");
    check_all(t);
  }
  acl_table r{catalog()};
  size_t at = 0;
  for (int n = 0; n < 16 && at <= bytes.size(); ++n) {
    auto nl = bytes.find('\n', at);
    auto line = bytes.substr(at, nl == std::string_view::npos ? std::string_view::npos : nl - at);
    at = nl == std::string_view::npos ? bytes.size() + 1 : nl + 1;
    std::string name = "u" + std::to_string(n);
    if (!r.set_user(name, words(line)).empty())
      continue;
    auto u = r.find(name);
    fuzz_check(u != nullptr, "a user set is found");
    auto described = r.describe(*u);
    std::string copy = "c" + std::to_string(n);
    fuzz_check(r.set_user(copy, words(described)).empty(), "a description applies");
    fuzz_check(r.describe(*r.find(copy)) == described, "a description describes the same");
  }
  check_all(r);
  return 0;
}
