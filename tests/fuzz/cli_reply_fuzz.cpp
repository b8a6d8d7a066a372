// libFuzzer target: the kura CLI's reply parser (node/cli_reply.hpp), i.e. the
// bytes a node -- or anything listening on the port the CLI was pointed at --
// answers. Run by scripts/fuzz. Input: one byte choosing the command and
// --json, then the answer bytes. Contract: the CLI prints the answer or a
// one-line error and exits 0 or 1, never crashes; with --json, whatever it
// prints on stdout is valid JSON (scripts parse it).
#include "node/cli_reply.hpp"

#include "fuzz_util.hpp"

#include <cctype>
#include <sstream>
#include <string>

using namespace kura::actors;
using kura::fuzz::fuzz_check;

namespace {

// -- a strict JSON checker (RFC 8259) -------------------------------------------

struct json_checker {
  std::string_view s;
  size_t i = 0;
  int depth = 0;

  void ws() {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
      ++i;
  }
  bool lit(std::string_view w) {
    if (s.substr(i, w.size()) != w)
      return false;
    i += w.size();
    return true;
  }
  bool str() {
    if (!lit("\""))
      return false;
    while (i < s.size()) {
      auto c = static_cast<unsigned char>(s[i++]);
      if (c == '"')
        return true;
      if (c < 0x20)
        return false;
      if (c == '\\') {
        if (i >= s.size())
          return false;
        char e = s[i++];
        if (e == 'u') {
          for (int k = 0; k < 4; ++k)
            if (i >= s.size() || !std::isxdigit(static_cast<unsigned char>(s[i++])))
              return false;
        } else if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos) {
          return false;
        }
      }
    }
    return false;
  }
  bool digits() {
    size_t b = i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])))
      ++i;
    return i > b;
  }
  bool number() {
    lit("-");
    if (lit("0")) {
    } else if (!digits()) {
      return false;
    }
    if (lit(".") && !digits())
      return false;
    if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
      ++i;
      if (!lit("+"))
        lit("-");
      if (!digits())
        return false;
    }
    return true;
  }
  bool value() {
    if (++depth > 64)
      return false;
    ws();
    bool ok = false;
    if (i >= s.size()) {
      ok = false;
    } else if (s[i] == '{') {
      ++i;
      ws();
      ok = lit("}");
      while (!ok) {
        ws();
        if (!str())
          break;
        ws();
        if (!lit(":") || !value())
          break;
        ws();
        if (lit("}"))
          ok = true;
        else if (!lit(","))
          break;
      }
    } else if (s[i] == '[') {
      ++i;
      ws();
      ok = lit("]");
      while (!ok) {
        if (!value())
          break;
        ws();
        if (lit("]"))
          ok = true;
        else if (!lit(","))
          break;
      }
    } else if (s[i] == '"') {
      ok = str();
    } else if (lit("true") || lit("false") || lit("null")) {
      ok = true;
    } else {
      ok = number();
    }
    --depth;
    return ok;
  }
};

/// Every line of `out` is one JSON value (the CLI prints one per line).
bool json_lines(const std::string& out) {
  size_t at = 0;
  while (at < out.size()) {
    auto nl = out.find('\n', at);
    if (nl == std::string::npos)
      return false; // every line ends with a newline
    json_checker c{std::string_view(out).substr(at, nl - at)};
    if (!c.value())
      return false;
    c.ws();
    if (c.i != c.s.size())
      return false;
    at = nl + 1;
  }
  return true;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0)
    return 0;
  bool json = (data[0] & 0x80) != 0;
  int cmd = (data[0] & 0x7f) % 11;
  auto answer = kura::fuzz::as_view(data, size).substr(1);
  std::ostringstream out, err;
  int rc;
  if (cmd == 9) {
    rc = kura::node::print_archive_answer(answer, json, out, err);
  } else if (cmd == 10) {
    rc = kura::node::print_compaction_answer(answer, json, out, err);
  } else {
    kv_request req;
    const uint8_t ops[] = {kv_request::status, kv_request::stats, kv_request::config,
                           kv_request::get,    kv_request::set,   kv_request::del,
                           kv_request::expire, kv_request::tier,  kv_request::flush};
    req.op = ops[cmd];
    req.key = "k\x01\xff\"";
    rc = kura::node::print_reply(req, answer, json, out, err);
  }
  fuzz_check(rc == 0 || rc == 1, "exit code 0 or 1");
  // (a failed compaction is reported on stdout, as its summary)
  fuzz_check(rc == 0 || cmd == 10 || !err.str().empty(), "a failure says why on stderr");
  if (json)
    fuzz_check(json_lines(out.str()), "--json prints valid JSON");
  return 0;
}
