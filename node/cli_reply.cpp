#include "node/cli_reply.hpp"

#include <algorithm>
#include <cstdio>

namespace kura::node {

using namespace actors;

std::string json_str(std::string_view s) {
  std::string o = "\"";
  for (unsigned char c : s) {
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
    default:
      if (c < 0x20 || c >= 0x7f) {
        char b[8];
        std::snprintf(b, sizeof(b), "\\u%04x", c);
        o += b;
      } else {
        o += static_cast<char>(c);
      }
    }
  }
  return o + "\"";
}

namespace {

void print_table(const node_status& s, bool json, std::ostream& out) {
  if (json) {
    out << "{";
    for (size_t i = 0; i < s.names.size() && i < s.values.size(); ++i)
      out << (i ? ", " : "") << json_str(s.names[i]) << ": " << json_str(s.values[i]);
    out << "}\n";
    return;
  }
  size_t w = 4;
  for (auto& n : s.names)
    w = std::max(w, n.size());
  out << std::string("NAME") << std::string(w - 4 + 2, ' ') << "VALUE\n";
  for (size_t i = 0; i < s.names.size() && i < s.values.size(); ++i)
    out << s.names[i] << std::string(w - s.names[i].size() + 2, ' ') << s.values[i] << "\n";
}

} // namespace

int print_reply(const kv_request& req, std::string_view answer, bool json, std::ostream& out,
                std::ostream& err) {
  if (req.op == kv_request::status || req.op == kv_request::stats || req.op == kv_request::config) {
    auto st = decode_message<node_status>(msg_type::node_status, answer);
    if (!st) {
      auto e = decode_message<kv_reply>(msg_type::kv_reply, answer);
      err << "kura: " << (e ? e->error : st.err().message) << "\n";
      return 1;
    }
    print_table(*st, json, out);
    return 0;
  }
  auto r = decode_message<kv_reply>(msg_type::kv_reply, answer);
  if (!r) {
    err << "kura: bad answer from the node: " << r.err().message << "\n";
    return 1;
  }
  if (!r->error.empty()) {
    if (json)
      out << "{\"error\": " << json_str(r->error) << "}\n";
    err << "kura: " << r->error << "\n";
    return 1;
  }
  switch (req.op) {
  case kv_request::get:
    if (json)
      out << "{\"key\": " << json_str(req.key) << ", \"found\": " << (r->found ? "true" : "false")
          << ", \"value\": " << (r->found ? json_str(r->value) : "null")
          << ", \"expiry_ms\": " << r->expiry_ms << "}\n";
    else
      out << (r->found ? r->value : "(nil)") << "\n";
    break;
  case kv_request::tier:
    out << (json ? "{\"tier\": " + json_str(r->value) + "}" : r->value) << "\n";
    break;
  case kv_request::del:
  case kv_request::expire:
    if (json)
      out << "{\"existed\": " << (r->found ? "true" : "false") << "}\n";
    else
      out << (r->found ? 1 : 0) << "\n";
    break;
  default:
    out << (json ? "{\"ok\": true}" : "OK") << "\n";
  }
  return 0;
}

} // namespace kura::node
