// libFuzzer target: the RESP parser (node/resp_parser.hpp). Run by scripts/fuzz.
// Feeds the input in two chunks (split at the first byte's value) so the
// incremental path is exercised too, and checks the parser's invariants: every
// command consumes bytes within the buffer, arguments lie inside it, and a
// protocol error is final. The inline splitter (used for inline commands and
// by the tests) gets the whole input as one line.
#include "node/resp_parser.hpp"

#include "fuzz_util.hpp"

#include <string>
#include <vector>

using kura::fuzz::fuzz_check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kura::node::resp_limits lim;
  lim.max_bulk_bytes = 1 << 20;
  lim.max_args = 1024;
  lim.max_inline_bytes = 4096;
  kura::node::resp_parser p{lim};
  std::string buf;
  size_t split = size > 0 ? data[0] % (size + 1) : 0;
  auto all = kura::fuzz::as_view(data, size);
  buf.append(all.substr(0, split));
  for (int round = 0; round < 2; ++round) {
    for (;;) {
      auto st = p.next(buf);
      if (st == kura::node::parse_status::error) {
        fuzz_check(!p.error().empty(), "a protocol error says what is wrong");
        return 0;
      }
      if (st == kura::node::parse_status::incomplete)
        break;
      fuzz_check(p.consumed() > 0 && p.consumed() <= buf.size(), "consumed within buffer");
      if (st == kura::node::parse_status::ok) {
        fuzz_check(!p.args().empty(), "a command has a name");
        fuzz_check(p.args().size() <= lim.max_args, "argument count within the limit");
        for (auto& a : p.args()) {
          fuzz_check(a.size() <= lim.max_bulk_bytes, "argument within the bulk limit");
          fuzz_check(buf[0] != '*' ||
                         (a.data() >= buf.data() && a.data() + a.size() <= buf.data() + buf.size()),
                     "multibulk arguments point into the buffer");
        }
      }
      buf.erase(0, p.consumed());
    }
    if (round == 0)
      buf.append(all.substr(split));
  }
  std::vector<std::string> parts;
  (void)kura::node::split_inline_args(all, parts);
  return 0;
}
