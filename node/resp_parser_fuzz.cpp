// libFuzzer target for the RESP parser (built with clang only, not in ctest):
//   CXX=clang++ BUILD_DIR=build-fuzz scripts/build && cmake --build build-fuzz --target resp_parser_fuzz
//   build-fuzz/bin/resp_parser_fuzz -max_total_time=60
// Feeds the input in two chunks (split at the first byte's value) so the
// incremental path is exercised too, and checks the parser's invariants.
#include "node/resp_parser.hpp"

#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kura::node::resp_limits lim;
  lim.max_bulk_bytes = 1 << 20;
  lim.max_args = 1024;
  lim.max_inline_bytes = 4096;
  kura::node::resp_parser p{lim};
  std::string buf;
  size_t split = size > 0 ? data[0] % (size + 1) : 0;
  std::string_view all(reinterpret_cast<const char*>(data), size);
  buf.append(all.substr(0, split));
  for (int round = 0; round < 2; ++round) {
    for (;;) {
      auto st = p.next(buf);
      if (st == kura::node::parse_status::error)
        return 0;
      if (st == kura::node::parse_status::incomplete)
        break;
      if (p.consumed() == 0 || p.consumed() > buf.size())
        std::abort();
      for (auto& a : p.args())
        if (a.size() > buf.size() && st == kura::node::parse_status::ok && buf[0] == '*')
          std::abort();
      buf.erase(0, p.consumed());
    }
    if (round == 0)
      buf.append(all.substr(split));
  }
  return 0;
}
