// RESP2 request parser: multibulk (`*N\r\n$len\r\n...`) and inline commands
// (`SET k "a b"\r\n`, quoting rules of Redis's sdssplitargs). Binary-safe,
// incremental and bounded: a command that arrives in pieces is scanned once
// (the parser keeps its position between calls), bulk lengths, argument
// counts and inline line lengths are checked against `resp_limits` before any
// byte of the payload is buffered. Protocol errors carry Redis's wording
// ("Protocol error: invalid bulk length") without the "ERR " prefix.
// No CAF here: the RESP broker and the fuzzer drive the same code.
// Thread safety: not thread-safe; one parser per connection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kura::node {

/// Bounds on what one request may claim.
struct resp_limits {
  /// Largest bulk string accepted (Redis: proto-max-bulk-len, 512 MiB).
  uint64_t max_bulk_bytes = 512ull << 20;
  /// Most arguments per command (multibulk count).
  uint64_t max_args = 1024 * 1024;
  /// Longest inline request line (Redis: 64 KiB).
  size_t max_inline_bytes = 64 * 1024;
};

/// Outcome of one parse step.
enum class parse_status : uint8_t {
  ok,         ///< one complete command: args() and consumed() are valid
  incomplete, ///< need more bytes; call again with the same bytes plus more
  empty,      ///< an empty inline line was skipped (consumed() bytes); go on
  error,      ///< protocol error: error() says what; the connection must close
};

class resp_parser {
public:
  explicit resp_parser(resp_limits lim = {}) : lim_(lim) {}

  /// Parses the next command from `buf`, which starts at the first byte not
  /// yet consumed. After `incomplete`, the next call must pass the same bytes
  /// (possibly moved) followed by new ones. After `ok`, `args()` views point
  /// into `buf` (or into the parser for inline commands) and stay valid until
  /// the next call or until `buf` changes; the caller drops `consumed()` bytes.
  parse_status next(std::string_view buf);

  /// Arguments of the last complete command (args()[0] is the command name).
  const std::vector<std::string_view>& args() const noexcept { return args_; }

  /// Bytes the last complete command (or skipped empty line) occupied.
  size_t consumed() const noexcept { return consumed_; }

  /// Protocol error text after `error` (e.g. "Protocol error: invalid bulk length").
  const std::string& error() const noexcept { return error_; }

  /// Bytes the pending incomplete command still needs at least (0 if unknown):
  /// lets the caller reserve buffer space for a large bulk.
  size_t bytes_wanted() const noexcept { return wanted_; }

  /// Forgets any partial command.
  void reset();

  const resp_limits& limits() const noexcept { return lim_; }

  /// While the client has not authenticated (and must), Redis's tighter
  /// bounds apply: at most 10 arguments and 16 KiB per bulk string, so that a
  /// stranger cannot make the server buffer much.
  void set_unauthenticated(bool on) noexcept { unauth_ = on; }

private:
  bool parse_whole(std::string_view buf);
  parse_status parse_multibulk(std::string_view buf);
  parse_status parse_inline(std::string_view buf);
  parse_status fail(std::string msg);

  resp_limits lim_;
  bool unauth_ = false;
  // -- state of a partially parsed multibulk command ---------------------------
  bool in_multibulk_ = false;
  size_t pos_ = 0;        ///< next unread byte, relative to the command start
  uint64_t argc_ = 0;     ///< announced argument count
  int64_t bulk_len_ = -1; ///< length of the bulk being read, -1 = need header
  std::vector<std::pair<size_t, size_t>> spans_; ///< (offset, length) per arg
  // -- output --------------------------------------------------------------
  std::vector<std::string_view> args_;
  std::vector<std::string> inline_args_;
  size_t consumed_ = 0;
  size_t wanted_ = 0;
  std::string error_;
};

/// Strict decimal integer like Redis's string2ll: optional '-', no '+', no
/// leading zeros or spaces, must fit int64. Used for every numeric argument.
bool parse_int64(std::string_view s, int64_t& out) noexcept;

/// Splits an inline request line like Redis's sdssplitargs: whitespace
/// separated, "double quotes" with \n \r \t \b \a \\ \" \xHH escapes,
/// 'single quotes' with \' escapes. Returns false on unbalanced quotes (or a
/// closing quote not followed by a space).
bool split_inline_args(std::string_view line, std::vector<std::string>& out);

} // namespace kura::node
