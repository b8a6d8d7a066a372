// Small helpers the command families share: case-insensitive comparison and
// Redis's common error replies (wording matches Redis, clients match on it).
// Thread safety: stateless functions.
#pragma once

#include "node/resp_writer.hpp"

#include <cctype>
#include <string>
#include <string_view>

namespace kura::node {

constexpr std::string_view err_syntax = "ERR syntax error";
constexpr std::string_view err_not_int = "ERR value is not an integer or out of range";
constexpr std::string_view err_overflow = "ERR increment or decrement would overflow";
constexpr std::string_view err_not_float = "ERR value is not a valid float";

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

} // namespace kura::node
