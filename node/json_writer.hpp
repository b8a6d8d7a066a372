// The one JSON writer of the kura CLI (`--json`): objects and arrays with the
// commas placed for you, numbers as JSON numbers, strings escaped per RFC 8259.
// Strings are UTF-8: valid sequences pass through unchanged, control
// characters become \n, \t ... or \u00XX, and bytes that are not valid UTF-8
// (cache values are arbitrary bytes) become U+FFFD, as a UTF-8 decoder with
// replacement does, so the output is always valid JSON and valid UTF-8.
// Thread safety: one writer per thread.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace kura::node {

/// Appends `s` as a JSON string literal (quotes included).
inline void json_escape(std::string& o, std::string_view s) {
  o += '"';
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size();
  for (size_t i = 0; i < n;) {
    unsigned char c = p[i];
    if (c < 0x80) {
      switch (c) {
      case '"':
        o += "\\\"";
        break;
      case '\\':
        o += "\\\\";
        break;
      case '\n':
        o += "\\n";
        break;
      case '\r':
        o += "\\r";
        break;
      case '\t':
        o += "\\t";
        break;
      case '\b':
        o += "\\b";
        break;
      case '\f':
        o += "\\f";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char b[8];
          std::snprintf(b, sizeof(b), "\\u%04x", c);
          o += b;
        } else {
          o += static_cast<char>(c);
        }
      }
      ++i;
      continue;
    }
    // length and lower bound of the code point of a well-formed sequence
    size_t len = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
    bool ok = len > 0 && i + len <= n;
    uint32_t cp = len == 4 ? c & 0x07u : len == 3 ? c & 0x0fu : c & 0x1fu;
    for (size_t k = 1; ok && k < len; ++k) {
      if ((p[i + k] & 0xc0) != 0x80)
        ok = false;
      else
        cp = (cp << 6) | (p[i + k] & 0x3fu);
    }
    if (ok && ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
               (len == 4 && (cp < 0x10000 || cp > 0x10ffff))))
      ok = false; // overlong, surrogate or beyond Unicode
    if (ok) {
      o.append(s.substr(i, len));
      i += len;
    } else {
      o += "\xef\xbf\xbd"; // U+FFFD for one invalid byte
      ++i;
    }
  }
  o += '"';
}

/// True if `s` is a JSON number (so a status value "12" prints as 12).
inline bool is_json_number(std::string_view s) {
  size_t i = 0, n = s.size();
  if (i < n && s[i] == '-')
    ++i;
  if (i >= n)
    return false;
  if (s[i] == '0') {
    ++i;
  } else if (s[i] >= '1' && s[i] <= '9') {
    while (i < n && s[i] >= '0' && s[i] <= '9')
      ++i;
  } else {
    return false;
  }
  if (i < n && s[i] == '.') {
    ++i;
    size_t d = i;
    while (i < n && s[i] >= '0' && s[i] <= '9')
      ++i;
    if (i == d)
      return false;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < n && (s[i] == '+' || s[i] == '-'))
      ++i;
    size_t d = i;
    while (i < n && s[i] >= '0' && s[i] <= '9')
      ++i;
    if (i == d)
      return false;
  }
  return i == n;
}

class json_writer {
public:
  json_writer& begin_object() { return open('{'); }
  json_writer& end_object() { return close('}'); }
  json_writer& begin_array() { return open('['); }
  json_writer& end_array() { return close(']'); }

  /// The key of the next member (inside an object).
  json_writer& key(std::string_view k) {
    comma();
    json_escape(out_, k);
    out_ += ": ";
    after_key_ = true;
    return *this;
  }

  json_writer& str(std::string_view v) {
    comma();
    json_escape(out_, v);
    return *this;
  }
  json_writer& num(uint64_t v) { return raw(std::to_string(v)); }
  json_writer& num(int64_t v) { return raw(std::to_string(v)); }
  json_writer& num(uint32_t v) { return num(static_cast<uint64_t>(v)); }
  json_writer& num(int v) { return num(static_cast<int64_t>(v)); }
  /// A double with `digits` decimals (from 1e15 on: 17 significant digits
  /// with an exponent, which "%f" would spell in up to 309 digits); NaN and
  /// infinities (not JSON) as null.
  json_writer& num(double v, int digits = 6) {
    if (!std::isfinite(v))
      return null();
    char b[64];
    if (std::fabs(v) >= 1e15)
      std::snprintf(b, sizeof(b), "%.17g", v);
    else
      std::snprintf(b, sizeof(b), "%.*f", digits < 0 ? 0 : digits > 20 ? 20 : digits, v);
    return raw(b);
  }
  json_writer& boolean(bool v) { return raw(v ? "true" : "false"); }
  json_writer& null() { return raw("null"); }
  /// A number when `v` spells one, else a string.
  json_writer& auto_value(std::string_view v) { return is_json_number(v) ? raw(v) : str(v); }

  /// The document so far (complete once every object/array is closed).
  const std::string& str() const noexcept { return out_; }

private:
  json_writer& raw(std::string_view v) {
    comma();
    out_.append(v);
    return *this;
  }
  void comma() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (!first_.empty()) {
      if (!first_.back())
        out_ += ", ";
      first_.back() = false;
    }
  }
  json_writer& open(char c) {
    comma();
    out_ += c;
    first_.push_back(true);
    return *this;
  }
  json_writer& close(char c) {
    out_ += c;
    if (!first_.empty())
      first_.pop_back();
    return *this;
  }

  std::string out_;
  std::vector<bool> first_; ///< per open container: no member written yet
  bool after_key_ = false;
};

} // namespace kura::node
