#include "node/resp_parser.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace kura::node;

namespace {

/// Feeds `input` to a parser in chunks of `chunk` bytes; returns the commands
/// (or "ERROR:<message>" for a protocol error, which ends the stream).
std::vector<std::vector<std::string>> parse_all(std::string_view input, size_t chunk,
                                                resp_limits lim = {}) {
  resp_parser p{lim};
  std::vector<std::vector<std::string>> cmds;
  std::string buf;
  size_t fed = 0;
  while (true) {
    auto st = p.next(buf);
    if (st == parse_status::ok) {
      cmds.emplace_back(p.args().begin(), p.args().end());
      buf.erase(0, p.consumed());
    } else if (st == parse_status::empty) {
      buf.erase(0, p.consumed());
    } else if (st == parse_status::error) {
      cmds.push_back({"ERROR:" + p.error()});
      return cmds;
    } else {
      if (fed >= input.size())
        return cmds;
      auto n = std::min(chunk, input.size() - fed);
      buf.append(input.substr(fed, n));
      fed += n;
    }
  }
}

using cmdlist = std::vector<std::vector<std::string>>;

} // namespace

TEST_CASE("multibulk commands parse whole and in every chunk size") {
  std::string in =
      "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n";
  cmdlist want = {{"SET", "key", "value"}, {"GET", "key"}};
  for (size_t chunk = 1; chunk <= in.size(); ++chunk)
    CHECK(parse_all(in, chunk) == want);
}

TEST_CASE("bulk strings are binary-safe: CR, LF and NUL inside values") {
  std::string v("a\r\nb\0c\n\r", 8);
  std::string in = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$8\r\n" + v + "\r\n";
  auto got = parse_all(in, 3);
  REQUIRE(got.size() == 1);
  CHECK(got[0][2] == v);
  CHECK(got[0][2].size() == 8);
}

TEST_CASE("empty bulk and empty multibulk") {
  CHECK(parse_all("*2\r\n$4\r\nECHO\r\n$0\r\n\r\n", 64) == cmdlist{{"ECHO", ""}});
  // *0 and *-1 are skipped like Redis does
  CHECK(parse_all("*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n", 64) == cmdlist{{"PING"}});
}

TEST_CASE("inline commands with Redis quoting") {
  CHECK(parse_all("PING\r\n", 64) == cmdlist{{"PING"}});
  CHECK(parse_all("set k v\n", 64) == cmdlist{{"set", "k", "v"}});
  CHECK(parse_all("  set   k   v  \r\n", 2) == cmdlist{{"set", "k", "v"}});
  CHECK(parse_all("SET k \"a b\\r\\n\\x41\"\r\n", 5) == cmdlist{{"SET", "k", "a b\r\nA"}});
  CHECK(parse_all("SET k 'it\\'s'\r\n", 64) == cmdlist{{"SET", "k", "it's"}});
  CHECK(parse_all("\r\n\r\nPING\r\n", 64) == cmdlist{{"PING"}});
}

TEST_CASE("unbalanced quotes are a protocol error") {
  CHECK(parse_all("SET k \"abc\r\n", 64) ==
        cmdlist{{"ERROR:Protocol error: unbalanced quotes in request"}});
  CHECK(parse_all("SET k 'abc\r\n", 64) ==
        cmdlist{{"ERROR:Protocol error: unbalanced quotes in request"}});
  CHECK(parse_all("SET k \"a\"b\r\n", 64) ==
        cmdlist{{"ERROR:Protocol error: unbalanced quotes in request"}});
}

TEST_CASE("malformed multibulk headers") {
  CHECK(parse_all("*abc\r\n", 64) == cmdlist{{"ERROR:Protocol error: invalid multibulk length"}});
  CHECK(parse_all("*+1\r\n", 64) == cmdlist{{"ERROR:Protocol error: invalid multibulk length"}});
  CHECK(parse_all("*99999999999\r\n", 64) ==
        cmdlist{{"ERROR:Protocol error: invalid multibulk length"}});
  CHECK(parse_all("*1\r\n+PING\r\n", 64) ==
        cmdlist{{"ERROR:Protocol error: expected '$', got '+'"}});
  CHECK(parse_all("*1\r\n$-5\r\n", 64) == cmdlist{{"ERROR:Protocol error: invalid bulk length"}});
  CHECK(parse_all("*1\r\n$x\r\n", 64) == cmdlist{{"ERROR:Protocol error: invalid bulk length"}});
}

TEST_CASE("a 2 GB bulk header is refused before any payload arrives") {
  auto got = parse_all("*2\r\n$3\r\nSET\r\n$2147483648\r\n", 64);
  CHECK(got == cmdlist{{"ERROR:Protocol error: invalid bulk length"}});
}

TEST_CASE("limits: bulk size, argument count, inline length") {
  resp_limits lim;
  lim.max_bulk_bytes = 10;
  lim.max_args = 3;
  lim.max_inline_bytes = 16;
  CHECK(parse_all("*1\r\n$10\r\n0123456789\r\n", 64, lim) == cmdlist{{"0123456789"}});
  CHECK(parse_all("*1\r\n$11\r\n", 64, lim) ==
        cmdlist{{"ERROR:Protocol error: invalid bulk length"}});
  CHECK(parse_all("*4\r\n", 64, lim) ==
        cmdlist{{"ERROR:Protocol error: invalid multibulk length"}});
  CHECK(parse_all("a b c d\r\n", 64, lim) ==
        cmdlist{{"ERROR:Protocol error: invalid multibulk length"}});
  CHECK(parse_all(std::string(17, 'x'), 64, lim) ==
        cmdlist{{"ERROR:Protocol error: too big inline request"}});
  CHECK(parse_all("*1" + std::string(20, '1'), 64, lim) ==
        cmdlist{{"ERROR:Protocol error: too big mbulk count string"}});
  CHECK(parse_all("*1\r\n$" + std::string(20, '1'), 64, lim) ==
        cmdlist{{"ERROR:Protocol error: too big bulk count string"}});
}

TEST_CASE("incomplete input waits; bytes_wanted tells how much a bulk still needs") {
  resp_parser p;
  std::string buf = "*2\r\n$3\r\nGET\r\n$100\r\nabc";
  CHECK(p.next(buf) == parse_status::incomplete);
  CHECK(p.bytes_wanted() == 100 - 3 + 2);
  buf += std::string(97, 'x') + "\r\n";
  REQUIRE(p.next(buf) == parse_status::ok);
  CHECK(p.args().size() == 2);
  CHECK(p.args()[1].size() == 100);
  CHECK(p.consumed() == buf.size());
}

TEST_CASE("pipelined mix of inline and multibulk") {
  std::string in = "PING\r\n*1\r\n$4\r\nPING\r\nECHO hi\r\n*2\r\n$4\r\nECHO\r\n$2\r\nho\r\n";
  cmdlist want = {{"PING"}, {"PING"}, {"ECHO", "hi"}, {"ECHO", "ho"}};
  for (size_t chunk : {1, 2, 7, 100})
    CHECK(parse_all(in, chunk) == want);
}

TEST_CASE("parse_int64 is strict") {
  int64_t v = 0;
  CHECK(parse_int64("0", v));
  CHECK(v == 0);
  CHECK(parse_int64("-9223372036854775808", v));
  CHECK(v == INT64_MIN);
  CHECK(parse_int64("9223372036854775807", v));
  CHECK(!parse_int64("9223372036854775808", v));
  CHECK(!parse_int64("01", v));
  CHECK(!parse_int64("+1", v));
  CHECK(!parse_int64(" 1", v));
  CHECK(!parse_int64("1 ", v));
  CHECK(!parse_int64("-", v));
  CHECK(!parse_int64("", v));
  CHECK(!parse_int64("1a", v));
}

TEST_CASE("random garbage never crashes and always ends in ok, incomplete or error") {
  uint64_t x = 88172645463325252ull;
  for (int round = 0; round < 2000; ++round) {
    std::string in;
    size_t n = (x % 64) + 1;
    for (size_t i = 0; i < n; ++i) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      const char alphabet[] = "*$\r\n0123456789-abc \"'\\x";
      in.push_back(alphabet[x % (sizeof(alphabet) - 1)]);
    }
    resp_limits lim;
    lim.max_bulk_bytes = 64;
    auto got = parse_all(in, (x % 5) + 1, lim);
    CHECK(got.size() <= in.size());
  }
}

TEST_CASE("unauthenticated clients: at most 10 arguments and 16 KiB per bulk, as Redis") {
  resp_parser p;
  p.set_unauthenticated(true);
  CHECK(p.next("*11\r\n") == parse_status::error);
  CHECK(p.error() == "Protocol error: unauthenticated multibulk length");
  p.reset();
  CHECK(p.next("*1\r\n$16385\r\n") == parse_status::error);
  CHECK(p.error() == "Protocol error: unauthenticated bulk length");
  p.reset();
  std::string ok = "*2\r\n$4\r\nAUTH\r\n$16384\r\n" + std::string(16384, 'p') + "\r\n";
  CHECK(p.next(ok) == parse_status::ok);
  p.set_unauthenticated(false); // authenticated: the normal limits
  p.reset();
  CHECK(p.next("*11\r\n") == parse_status::incomplete);
}

TEST_CASE("a whole command in the buffer parses as it does byte by byte") {
  // A multibulk command wholly in the buffer takes a one-pass path; fed
  // byte by byte it takes the incremental one. Both must agree on every
  // input: pipelines of commands with bytes replaced by protocol characters
  // (counts with leading zeros, signs, missing CRLFs, short payloads), with
  // the limits and the unauthenticated bounds in play.
  uint64_t x = 0x9e3779b97f4a7c15ull;
  auto rnd = [&x] {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    return x;
  };
  for (int round = 0; round < 20000; ++round) {
    std::string in;
    for (uint64_t c = 0, nc = rnd() % 3 + 1; c < nc; ++c) {
      uint64_t argc = rnd() % 4 + 1;
      in += "*" + std::to_string(argc) + "\r\n";
      for (uint64_t a = 0; a < argc; ++a) {
        std::string arg(rnd() % 20, static_cast<char>('a' + rnd() % 26));
        in += "$" + std::to_string(arg.size()) + "\r\n" + arg + "\r\n";
      }
    }
    for (uint64_t m = 0, nm = rnd() % 3; m < nm; ++m) { // replace or insert a byte
      const char alphabet[] = "*$\r\n0123456789-+ ";
      const char b = alphabet[rnd() % (sizeof(alphabet) - 1)];
      const size_t at = rnd() % in.size();
      if (rnd() % 2)
        in[at] = b;
      else
        in.insert(at, 1, b);
    }
    resp_limits lim;
    lim.max_bulk_bytes = 12;
    lim.max_args = 3;
    INFO(in);
    CHECK(parse_all(in, in.size(), lim) == parse_all(in, 1, lim));
    resp_parser whole{lim}, bytewise{lim};
    whole.set_unauthenticated(true);
    bytewise.set_unauthenticated(true);
    auto st = whole.next(in);
    parse_status sb = parse_status::incomplete;
    for (size_t n = 1; n <= in.size() && sb == parse_status::incomplete; ++n)
      sb = bytewise.next(std::string_view(in).substr(0, n));
    CHECK(st == sb);
    if (st == sb && st == parse_status::ok) {
      CHECK(whole.args() == bytewise.args());
      CHECK(whole.consumed() == bytewise.consumed());
    }
  }
}
