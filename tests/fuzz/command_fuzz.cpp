// libFuzzer target: the command dispatcher (node/commands.hpp). The input is a
// RESP byte stream, as a client would send it, parsed with the real parser and
// run command by command against an in-process command table over a
// memory-only keyspace (L3 off, a fake clock that moves 1 ms per command).
// Run by scripts/fuzz. Contract: every command appends exactly one complete,
// well-formed reply (RESP2, or RESP3 after HELLO 3; an error reply for bad
// input; a RESP3 push may precede it), and nothing crashes,
// hangs or allocates without bound; a protocol error ends the stream, as it
// closes the connection in kura-node.
#include "node/commands.hpp"
#include "node/resp_parser.hpp"

#include "fuzz_util.hpp"

#include <memory>
#include <string>
#include <vector>

using namespace kura;
using namespace kura::node;
using kura::fuzz::fuzz_check;

namespace {

/// Length of the one RESP2 or RESP3 reply at the start of `s`, 0 when
/// malformed or incomplete.
size_t reply_length(std::string_view s, int depth = 0) {
  if (s.empty() || depth > 64)
    return 0;
  auto eol = s.find("\r\n");
  if (eol == std::string_view::npos)
    return 0;
  auto line = s.substr(1, eol - 1);
  if (line.find('\n') != std::string_view::npos || line.find('\r') != std::string_view::npos)
    return 0;
  size_t head = eol + 2;
  auto number = [&](int64_t& v) { return parse_int64(line, v); };
  int64_t n = 0;
  switch (s[0]) {
  case '+':
  case '-':
    return head;
  case '_': // RESP3 null
    return line.empty() ? head : 0;
  case '#': // RESP3 boolean
    return line == "t" || line == "f" ? head : 0;
  case ',': // RESP3 double
  case '(': // RESP3 big number
    return line.empty() ? 0 : head;
  case ':':
    return number(n) ? head : 0;
  case '$':
  case '=': // RESP3 verbatim string
  case '!': // RESP3 blob error
    if (!number(n) || n < -1)
      return 0;
    if (n == -1)
      return head;
    if (s.size() - head < static_cast<uint64_t>(n) + 2 ||
        s.substr(head + static_cast<size_t>(n), 2) != "\r\n")
      return 0;
    return head + static_cast<size_t>(n) + 2;
  case '*':
  case '~':   // RESP3 set
  case '>':   // RESP3 push
  case '%': { // RESP3 map: n pairs
    if (!number(n) || n < -1 || n > (int64_t{1} << 32))
      return 0;
    const int64_t items = s[0] == '%' ? 2 * n : n;
    size_t at = head;
    for (int64_t i = 0; i < items; ++i) {
      auto len = reply_length(s.substr(at), depth + 1);
      if (len == 0)
        return 0;
      at += len;
    }
    return at;
  }
  default:
    return 0;
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fake_clock clk;
  actors::keyspace_config kc;
  kc.shards = 2;
  kc.memory_bytes = 8ull << 20;
  kc.lim.max_key_bytes = 1024;
  kc.lim.max_value_bytes = 1ull << 20;
  kc.filter_bits = 1 << 12;
  actors::keyspace ks{kc, clk, nullptr};
  node_facts facts;
  facts.proto_max_bulk_len = 1ull << 20;
  command_table cmds{ks, facts};
  session sess;
  resp_limits lim;
  lim.max_bulk_bytes = 1ull << 20;
  lim.max_args = 4096;
  lim.max_inline_bytes = 4096;
  resp_parser parser{lim};
  std::string_view in = kura::fuzz::as_view(data, size);
  fetch_plan plan;
  out_buffer out;
  while (!in.empty() && !sess.quit) {
    auto st = parser.next(in);
    if (st == parse_status::error || st == parse_status::incomplete)
      break;
    if (st == parse_status::ok) {
      plan.clear();
      cmds.plan(parser.args(), plan);
      fuzz_check(plan.kind != fetch_plan::lookup, "no L3 lookups with L3 off");
      out.clear();
      cmds.execute(parser.args(), sess, out);
      std::string_view reply(out.data(), out.size());
      // RESP3 pushes (tracking invalidations) may come before the reply
      while (!reply.empty() && reply[0] == '>') {
        auto len = reply_length(reply);
        if (len == 0 || len == reply.size())
          break;
        reply.remove_prefix(len);
      }
      if (reply_length(reply) != reply.size()) {
        for (auto& a : parser.args())
          std::fprintf(stderr, "arg: %.*s\n", static_cast<int>(a.size()), a.data());
        std::fprintf(stderr, "reply: %.*s\n", static_cast<int>(reply.size()), reply.data());
        fuzz_check(false, "one well-formed reply per command");
      }
      clk.advance_ms(1);
    }
    in.remove_prefix(parser.consumed());
  }
  return 0;
}
