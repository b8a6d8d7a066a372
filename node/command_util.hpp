// Small helpers the command families share: case-insensitive comparison and
// Redis's common error replies (wording matches Redis, clients match on it).
// Thread safety: stateless functions.
#pragma once

#include "node/command_registry.hpp"
#include "node/resp_writer.hpp"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace kura::node {

constexpr std::string_view err_syntax = "ERR syntax error";
constexpr std::string_view err_not_int = "ERR value is not an integer or out of range";
constexpr std::string_view err_overflow = "ERR increment or decrement would overflow";
constexpr std::string_view err_not_float = "ERR value is not a valid float";
constexpr std::string_view err_wrongtype =
    "WRONGTYPE Operation against a key holding the wrong kind of value";

/// Reads `key` in place when it holds the wanted type (a hash when `hash`,
/// else a string): calls f(value bytes). Returns 1 (found), 0 (no such key)
/// or -1 (the WRONGTYPE reply is written). Counts keyspace hits and misses.
template <class F>
int read_typed(command_context& c, std::string_view key, bool hash, F&& f) {
  int r = 0;
  c.ks.view(key, [&](const keyspace::key_view& v) {
    if (((v.flags & entry_flags::hash) != 0) != hash) {
      r = -1;
      return;
    }
    r = 1;
    f(v.value);
  });
  if (r < 0)
    put_error(c.out, err_wrongtype);
  if (r != 0)
    ++c.state.keyspace_hits;
  else
    ++c.state.keyspace_misses;
  return r;
}

/// Parses a SCAN-family cursor (unsigned decimal) as Redis does.
inline bool parse_cursor(std::string_view s, uint64_t& out) {
  if (s.empty() || s.size() > 20)
    return false;
  uint64_t v = 0;
  for (char ch : s) {
    if (ch < '0' || ch > '9')
      return false;
    uint64_t d = static_cast<uint64_t>(ch - '0');
    if (v > (UINT64_MAX - d) / 10)
      return false;
    v = v * 10 + d;
  }
  out = v;
  return true;
}

/// ASCII case-insensitive equality.
inline bool ieq(std::string_view a, std::string_view b) {
  if (a.size() != b.size())
    return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

inline std::string lower(std::string_view s) {
  std::string r(s);
  for (auto& c : r)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

inline std::string upper(std::string_view s) {
  std::string r(s);
  for (auto& c : r)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return r;
}

/// "ERR wrong number of arguments for 'name' command".
inline void wrong_args(out_buffer& out, std::string_view name) {
  std::string m = "ERR wrong number of arguments for '";
  m += name;
  m += "' command";
  put_error(out, m);
}

/// "ERR invalid expire time in 'name' command".
inline void invalid_expire(out_buffer& out, std::string_view name) {
  std::string m = "ERR invalid expire time in '";
  m += lower(name);
  m += "' command";
  put_error(out, m);
}

/// "ERR unknown subcommand 'sub'. Try PARENT HELP.".
inline void unknown_subcommand(out_buffer& out, std::string_view parent, std::string_view sub) {
  std::string m = "ERR unknown subcommand '";
  m.append(sub.substr(0, 128));
  m += "'. Try ";
  m += upper(parent);
  m += " HELP.";
  for (auto& ch : m)
    if (ch == '\r' || ch == '\n')
      ch = ' ';
  put_error(out, m);
}

/// Redis's long double formatting for INCRBYFLOAT (%.17Lf, trailing zeros cut).
inline std::string format_ld(long double v) {
  char buf[5 * 1024];
  int n = std::snprintf(buf, sizeof(buf), "%.17Lf", v);
  if (n <= 0 || static_cast<size_t>(n) >= sizeof(buf))
    return "0";
  std::string s(buf, static_cast<size_t>(n));
  if (s.find('.') != std::string::npos) {
    while (!s.empty() && s.back() == '0')
      s.pop_back();
    if (!s.empty() && s.back() == '.')
      s.pop_back();
  }
  if (s == "-0")
    s = "0";
  return s;
}

inline bool parse_ld(std::string_view s, long double& out) {
  if (s.empty() || s.size() > 5000 || std::isspace(static_cast<unsigned char>(s[0])))
    return false;
  std::string tmp(s);
  char* end = nullptr;
  errno = 0;
  long double v = std::strtold(tmp.c_str(), &end);
  if (end != tmp.c_str() + tmp.size() || errno == ERANGE || std::isnan(v))
    return false;
  out = v;
  return true;
}

} // namespace kura::node
