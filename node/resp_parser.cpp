#include "node/resp_parser.hpp"

#include <cstring>

namespace kura::node {

namespace {} // namespace

bool parse_int64(std::string_view s, int64_t& out) noexcept {
  if (s.empty() || s.size() > 20)
    return false;
  size_t i = 0;
  bool neg = false;
  if (s[0] == '-') {
    neg = true;
    i = 1;
    if (s.size() == 1)
      return false;
  }
  if (s[i] == '0' && s.size() > i + 1)
    return false;
  uint64_t v = 0;
  for (; i < s.size(); ++i) {
    char c = s[i];
    if (c < '0' || c > '9')
      return false;
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10)
      return false;
    v = v * 10 + d;
  }
  if (neg) {
    if (v > static_cast<uint64_t>(INT64_MAX) + 1)
      return false;
    out = v == static_cast<uint64_t>(INT64_MAX) + 1 ? INT64_MIN : -static_cast<int64_t>(v);
  } else {
    if (v > static_cast<uint64_t>(INT64_MAX))
      return false;
    out = static_cast<int64_t>(v);
  }
  return true;
}

namespace {

/// Offset of "\r\n" at or after `from`, or npos.
size_t find_crlf(std::string_view buf, size_t from) {
  while (from < buf.size()) {
    const void* p = std::memchr(buf.data() + from, '\r', buf.size() - from);
    if (!p)
      return std::string_view::npos;
    size_t i = static_cast<size_t>(static_cast<const char*>(p) - buf.data());
    if (i + 1 >= buf.size())
      return std::string_view::npos;
    if (buf[i + 1] == '\n')
      return i;
    from = i + 1;
  }
  return std::string_view::npos;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

bool is_space(char c) {
  return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\v' || c == '\f';
}

} // namespace

void resp_parser::reset() {
  in_multibulk_ = false;
  pos_ = 0;
  argc_ = 0;
  bulk_len_ = -1;
  spans_.clear();
  wanted_ = 0;
}

parse_status resp_parser::fail(std::string msg) {
  reset();
  error_ = std::move(msg);
  return parse_status::error;
}

parse_status resp_parser::next(std::string_view buf) {
  args_.clear();
  consumed_ = 0;
  if (!in_multibulk_) {
    if (buf.empty())
      return parse_status::incomplete;
    if (buf[0] != '*')
      return parse_inline(buf);
  }
  return parse_multibulk(buf);
}

/// Plain decimal digits at `i` followed by "\r\n" (at most 18 digits, no
/// leading zero but "0" itself): the value in `v`, `i` moved past the CRLF.
/// False for anything else, which the general path then judges.
static bool plain_count(std::string_view buf, size_t& i, uint64_t& v) {
  const size_t start = i;
  v = 0;
  while (i < buf.size() && buf[i] >= '0' && buf[i] <= '9') {
    if (i - start == 18)
      return false;
    v = v * 10 + static_cast<uint64_t>(buf[i] - '0');
    ++i;
  }
  if (i == start || i + 1 >= buf.size() || buf[i] != '\r' || buf[i + 1] != '\n' ||
      (buf[start] == '0' && i - start > 1))
    return false;
  i += 2;
  return true;
}

/// The common case in one pass: a whole multibulk command in `buf` with
/// plain counts within the limits. Fills args_ and consumed_ as the general
/// path would; false (args_ empty, no state changed) leaves everything else
/// (pieces, errors, odd counts) to it. Saves the general path's spans, its
/// memchr per CRLF and its parse_int64 calls: a pipelined GET is parsed twice
/// (the read-ahead, then the command), and this was ~20% of its instructions.
bool resp_parser::parse_whole(std::string_view buf) {
  size_t i = 1;
  uint64_t n = 0;
  if (!plain_count(buf, i, n) || n == 0 || n > lim_.max_args || n > INT32_MAX ||
      (unauth_ && n > 10))
    return false;
  for (uint64_t a = 0; a < n; ++a) {
    uint64_t len = 0;
    if (i >= buf.size() || buf[i] != '$' || !plain_count(buf, ++i, len) ||
        len > lim_.max_bulk_bytes || (unauth_ && len > 16384) || buf.size() - i < len + 2) {
      args_.clear();
      return false;
    }
    args_.emplace_back(buf.data() + i, static_cast<size_t>(len));
    i += static_cast<size_t>(len) + 2; // like Redis, the two bytes after the payload are skipped
  }
  consumed_ = i;
  return true;
}

parse_status resp_parser::parse_multibulk(std::string_view buf) {
  if (!in_multibulk_) {
    if (parse_whole(buf))
      return parse_status::ok;
    auto e = find_crlf(buf, 1);
    if (e == std::string_view::npos) {
      if (buf.size() > lim_.max_inline_bytes)
        return fail("Protocol error: too big mbulk count string");
      return parse_status::incomplete;
    }
    int64_t n = 0;
    if (!parse_int64(buf.substr(1, e - 1), n) || n > INT32_MAX)
      return fail("Protocol error: invalid multibulk length");
    if (n > 0 && static_cast<uint64_t>(n) > lim_.max_args)
      return fail("Protocol error: invalid multibulk length");
    if (unauth_ && n > 10)
      return fail("Protocol error: unauthenticated multibulk length");
    if (n <= 0) { // "*0" and "*-1" are skipped, as Redis does
      consumed_ = e + 2;
      return parse_status::empty;
    }
    in_multibulk_ = true;
    argc_ = static_cast<uint64_t>(n);
    pos_ = e + 2;
    bulk_len_ = -1;
    spans_.clear();
    spans_.reserve(argc_ < 1024 ? argc_ : 1024);
  }
  while (spans_.size() < argc_) {
    if (bulk_len_ < 0) {
      if (pos_ >= buf.size())
        return parse_status::incomplete;
      if (buf[pos_] != '$') {
        std::string msg = "Protocol error: expected '$', got '";
        msg += buf[pos_];
        msg += "'";
        return fail(std::move(msg));
      }
      auto e = find_crlf(buf, pos_ + 1);
      if (e == std::string_view::npos) {
        if (buf.size() - pos_ > lim_.max_inline_bytes)
          return fail("Protocol error: too big bulk count string");
        return parse_status::incomplete;
      }
      int64_t len = 0;
      if (!parse_int64(buf.substr(pos_ + 1, e - pos_ - 1), len) || len < 0 ||
          static_cast<uint64_t>(len) > lim_.max_bulk_bytes)
        return fail("Protocol error: invalid bulk length");
      if (unauth_ && len > 16384)
        return fail("Protocol error: unauthenticated bulk length");
      bulk_len_ = len;
      pos_ = e + 2;
    }
    size_t need = pos_ + static_cast<size_t>(bulk_len_) + 2;
    if (buf.size() < need) {
      wanted_ = need - buf.size();
      return parse_status::incomplete;
    }
    spans_.emplace_back(pos_, static_cast<size_t>(bulk_len_));
    pos_ = need; // like Redis, the two bytes after the payload are skipped
    bulk_len_ = -1;
  }
  args_.reserve(spans_.size());
  for (auto& [off, len] : spans_)
    args_.emplace_back(buf.data() + off, len);
  consumed_ = pos_;
  in_multibulk_ = false;
  pos_ = 0;
  argc_ = 0;
  wanted_ = 0;
  spans_.clear();
  return parse_status::ok;
}

parse_status resp_parser::parse_inline(std::string_view buf) {
  const void* p = std::memchr(buf.data(), '\n', buf.size());
  if (!p) {
    if (buf.size() > lim_.max_inline_bytes)
      return fail("Protocol error: too big inline request");
    return parse_status::incomplete;
  }
  size_t nl = static_cast<size_t>(static_cast<const char*>(p) - buf.data());
  if (nl > lim_.max_inline_bytes)
    return fail("Protocol error: too big inline request");
  std::string_view line = buf.substr(0, nl);
  if (!line.empty() && line.back() == '\r')
    line.remove_suffix(1);
  inline_args_.clear();
  if (!split_inline_args(line, inline_args_))
    return fail("Protocol error: unbalanced quotes in request");
  consumed_ = nl + 1;
  if (inline_args_.empty())
    return parse_status::empty;
  if (inline_args_.size() > lim_.max_args)
    return fail("Protocol error: invalid multibulk length");
  args_.reserve(inline_args_.size());
  for (auto& a : inline_args_)
    args_.emplace_back(a);
  return parse_status::ok;
}

bool split_inline_args(std::string_view line, std::vector<std::string>& out) {
  size_t i = 0, n = line.size();
  for (;;) {
    while (i < n && is_space(line[i]))
      ++i;
    if (i >= n)
      return true;
    std::string cur;
    bool inq = false, insq = false, done = false;
    while (!done) {
      if (inq) {
        if (i >= n)
          return false; // unterminated quotes
        if (line[i] == '\\' && i + 3 < n && line[i + 1] == 'x' && hex_digit(line[i + 2]) >= 0 &&
            hex_digit(line[i + 3]) >= 0) {
          cur.push_back(static_cast<char>(hex_digit(line[i + 2]) * 16 + hex_digit(line[i + 3])));
          i += 3;
        } else if (line[i] == '\\' && i + 1 < n) {
          ++i;
          char c;
          switch (line[i]) {
          case 'n':
            c = '\n';
            break;
          case 'r':
            c = '\r';
            break;
          case 't':
            c = '\t';
            break;
          case 'b':
            c = '\b';
            break;
          case 'a':
            c = '\a';
            break;
          default:
            c = line[i];
            break;
          }
          cur.push_back(c);
        } else if (line[i] == '"') {
          // closing quote must be followed by a space or nothing
          if (i + 1 < n && !is_space(line[i + 1]))
            return false;
          done = true;
        } else {
          cur.push_back(line[i]);
        }
      } else if (insq) {
        if (i >= n)
          return false;
        if (line[i] == '\\' && i + 1 < n && line[i + 1] == '\'') {
          ++i;
          cur.push_back('\'');
        } else if (line[i] == '\'') {
          if (i + 1 < n && !is_space(line[i + 1]))
            return false;
          done = true;
        } else {
          cur.push_back(line[i]);
        }
      } else {
        if (i >= n) {
          done = true;
          break;
        }
        switch (line[i]) {
        case ' ':
        case '\n':
        case '\r':
        case '\t':
        case '\0':
          done = true;
          break;
        case '"':
          inq = true;
          break;
        case '\'':
          insq = true;
          break;
        default:
          cur.push_back(line[i]);
          break;
        }
      }
      if (i < n)
        ++i;
    }
    out.push_back(std::move(cur));
  }
}

} // namespace kura::node
