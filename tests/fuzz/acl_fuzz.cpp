// libFuzzer target: the ACL rule parser and ACL file loader (node/acl.hpp),
// over a small command catalog shaped like Redis's. Run by scripts/fuzz.
// Input: an ACL file. It is loaded (all users replaced, or nothing changed and
// the errors returned); a loaded table must save to a file that loads again
// and saves the same. Each line is also applied as the rules of one user
// (ACL SETUSER); a user's description, applied to a fresh user, must describe
// the same. Every user is checked against every command.
#include "acl_fuzz_catalog.hpp"

using namespace kura::node;
using kura::fuzz::fuzz_check;

using kura::fuzz::acl_check_all;
using kura::fuzz::acl_words;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto bytes = kura::fuzz::as_view(data, size);
  acl_table t{kura::fuzz::acl_catalog_for_fuzz()};
  if (t.load(bytes).empty()) {
    auto saved = t.save();
    acl_table again{kura::fuzz::acl_catalog_for_fuzz()};
    fuzz_check(again.load(saved).empty(), "a saved ACL file loads");
    fuzz_check(again.save() == saved, "saving a loaded ACL file is stable");
    acl_check_all(t);
  }
  acl_table r{kura::fuzz::acl_catalog_for_fuzz()};
  kura::fuzz::acl_lines(bytes, 16, [&](int n, std::string_view line) {
    std::string name = "u" + std::to_string(n);
    if (r.set_user(name, acl_words(line)).empty())
      kura::fuzz::acl_check_description(r, name, "c" + std::to_string(n));
  });
  acl_check_all(r);
  return 0;
}
