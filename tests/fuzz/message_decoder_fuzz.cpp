// libFuzzer target: the msgpack message decoder of the actor graph
// (actors/messages.hpp, plus the archive reports of actors/archive_actors.hpp).
// Run by scripts/fuzz. The input is decoded as an envelope of every message
// type and, for deeper coverage of msgpack's object conversion, as a bare
// payload of every type. Decoding must return a value or an error, never crash
// or throw; a decoded value must re-encode and decode to the same bytes.
#include "actors/archive_actors.hpp"
#include "actors/messages.hpp"

#include "fuzz_util.hpp"

using namespace kura::actors;
using kura::fuzz::fuzz_check;

namespace {

template <class T>
void probe(msg_type t, std::string_view bytes) {
  if (auto r = decode_message<T>(t, bytes)) {
    auto again = encode_message(t, *r);
    auto back = decode_message<T>(t, again);
    fuzz_check(static_cast<bool>(back), "a decoded message re-encodes");
    fuzz_check(encode_message(t, *back) == again, "re-encoding is stable");
  }
  if (auto p = kura::from_msgpack<T>(bytes)) {
    auto again = kura::to_msgpack(*p);
    fuzz_check(static_cast<bool>(kura::from_msgpack<T>(again)), "a decoded payload re-encodes");
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto bytes = kura::fuzz::as_view(data, size);
  probe<l3_batch>(msg_type::l3_batch, bytes);
  probe<l3_lookup>(msg_type::l3_lookup, bytes);
  probe<l3_found>(msg_type::l3_found, bytes);
  probe<l3_list>(msg_type::l3_list, bytes);
  probe<l3_listing>(msg_type::l3_listing, bytes);
  probe<kv_request>(msg_type::kv_request, bytes);
  probe<kv_reply>(msg_type::kv_reply, bytes);
  probe<node_status>(msg_type::node_status, bytes);
  probe<compaction_report>(msg_compaction_report, bytes);
  probe<archive_report>(msg_archive_report, bytes);
  return 0;
}
