#include "node/cli_reply.hpp"

#include "node/json_writer.hpp"

#include <algorithm>
#include <cstdio>

namespace kura::node {

using namespace actors;

namespace {

void print_table(const node_status& s, bool json, std::ostream& out) {
  if (json) {
    json_writer j; // figures as JSON numbers, the rest as strings
    j.begin_object();
    for (size_t i = 0; i < s.names.size() && i < s.values.size(); ++i)
      j.key(s.names[i]).auto_value(s.values[i]);
    out << j.end_object().str() << "\n";
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
      out << json_writer{}.begin_object().key("error").str(r->error).end_object().str() << "\n";
    err << "kura: " << r->error << "\n";
    return 1;
  }
  switch (req.op) {
  case kv_request::get:
    if (json) {
      json_writer j;
      j.begin_object().key("key").str(req.key).key("found").boolean(r->found).key("value");
      if (r->found)
        j.str(r->value);
      else
        j.null();
      out << j.key("expiry_ms").num(r->expiry_ms).end_object().str() << "\n";
    } else
      out << (r->found ? r->value : "(nil)") << "\n";
    break;
  case kv_request::tier:
    out << (json ? json_writer{}.begin_object().key("tier").str(r->value).end_object().str()
                 : r->value)
        << "\n";
    break;
  case kv_request::del:
  case kv_request::expire:
    if (json)
      out << json_writer{}.begin_object().key("existed").boolean(r->found).end_object().str()
          << "\n";
    else
      out << (r->found ? 1 : 0) << "\n";
    break;
  default:
    out << (json ? json_writer{}.begin_object().key("ok").boolean(true).end_object().str() : "OK")
        << "\n";
  }
  return 0;
}

} // namespace kura::node
