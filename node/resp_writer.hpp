// Appends RESP2 replies (and the RESP3 headers handlers choose by protocol) to an output buffer
// (the broker's write buffer). Thread safety: stateless free functions.
#pragma once

#include <charconv>
#include <cstdint>
#include <string_view>
#include <vector>

namespace kura::node {

using out_buffer = std::vector<char>;

inline void put_raw(out_buffer& out, std::string_view s) {
  out.insert(out.end(), s.begin(), s.end());
}

inline void put_int_raw(out_buffer& out, int64_t v) {
  char tmp[24];
  auto r = std::to_chars(tmp, tmp + sizeof(tmp), v);
  out.insert(out.end(), tmp, r.ptr);
}

/// +OK style status reply.
inline void put_status(out_buffer& out, std::string_view s) {
  out.push_back('+');
  put_raw(out, s);
  put_raw(out, "\r\n");
}

inline void put_ok(out_buffer& out) {
  put_raw(out, "+OK\r\n");
}

/// Error reply; `msg` includes its prefix ("ERR syntax error", "WRONGTYPE ...").
/// CR and LF in `msg` (which may quote client input) become spaces, as in
/// Redis: an error is one line, or the client reads the rest as more replies.
inline void put_error(out_buffer& out, std::string_view msg) {
  out.push_back('-');
  size_t at = out.size();
  put_raw(out, msg);
  for (size_t i = at; i < out.size(); ++i)
    if (out[i] == '\r' || out[i] == '\n')
      out[i] = ' ';
  put_raw(out, "\r\n");
}

inline void put_int(out_buffer& out, int64_t v) {
  out.push_back(':');
  put_int_raw(out, v);
  put_raw(out, "\r\n");
}

inline void put_bulk(out_buffer& out, std::string_view s) {
  out.push_back('$');
  put_int_raw(out, static_cast<int64_t>(s.size()));
  put_raw(out, "\r\n");
  put_raw(out, s);
  put_raw(out, "\r\n");
}

inline void put_nil(out_buffer& out) {
  put_raw(out, "$-1\r\n");
}

inline void put_nil_array(out_buffer& out) {
  put_raw(out, "*-1\r\n");
}

inline void put_array_header(out_buffer& out, size_t n) {
  out.push_back('*');
  put_int_raw(out, static_cast<int64_t>(n));
  put_raw(out, "\r\n");
}

/// A map of n pairs: RESP3's %n, or a flat array of 2n elements in RESP2.
inline void put_map_header(out_buffer& out, size_t n, int resp) {
  out.push_back(resp == 3 ? '%' : '*');
  put_int_raw(out, static_cast<int64_t>(resp == 3 ? n : 2 * n));
  put_raw(out, "\r\n");
}

/// A set of n elements: RESP3's ~n, or an array in RESP2.
inline void put_set_header(out_buffer& out, size_t n, int resp) {
  out.push_back(resp == 3 ? '~' : '*');
  put_int_raw(out, static_cast<int64_t>(n));
  put_raw(out, "\r\n");
}

} // namespace kura::node
