// libFuzzer target: the ACL rule parser alone (ACL SETUSER, node/acl.hpp),
// beside acl_fuzz (the ACL file loader). Input: lines of rules, applied one
// after the other to the same user, as successive ACL SETUSER calls (reset,
// keys, channels, commands, passwords added and removed). After every call
// that succeeds the user's description, applied to a fresh user, must
// describe the same; a refused call must leave the user as it was; every
// user is checked against every command. Run by scripts/fuzz.
#include "acl_fuzz_catalog.hpp"

using namespace kura::node;
using kura::fuzz::acl_words;
using kura::fuzz::fuzz_check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto bytes = kura::fuzz::as_view(data, size);
  acl_table t{kura::fuzz::acl_catalog_for_fuzz()};
  kura::fuzz::acl_lines(bytes, 32, [&](int n, std::string_view line) {
    auto before = t.find("u");
    std::string was = before ? t.describe(*before) : std::string{};
    if (!t.set_user("u", acl_words(line)).empty()) {
      auto after = t.find("u");
      fuzz_check((after ? t.describe(*after) : std::string{}) == was,
                 "a refused ACL SETUSER changes nothing");
      return;
    }
    kura::fuzz::acl_check_description(t, "u", "c" + std::to_string(n));
  });
  kura::fuzz::acl_check_all(t);
  return 0;
}
