// libFuzzer target for the message decoder (clang only, not in ctest):
//   CXX=clang++ BUILD_DIR=build-fuzz scripts/build && cmake --build build-fuzz --target message_decoder_fuzz
//   build-fuzz/bin/message_decoder_fuzz -max_total_time=60
// Every message type is decoded from the same bytes; decoding must return a
// value or an error, never crash or throw; a decoded value must re-encode.
#include "actors/messages.hpp"

#include <cstdlib>

using namespace kura::actors;

template <class T>
void probe(msg_type t, std::string_view bytes) {
  auto r = decode_message<T>(t, bytes);
  if (r) {
    auto again = encode_message(t, *r);
    auto back = decode_message<T>(t, again);
    if (!back)
      std::abort();
  }
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  probe<l3_batch>(msg_type::l3_batch, bytes);
  probe<l3_lookup>(msg_type::l3_lookup, bytes);
  probe<l3_found>(msg_type::l3_found, bytes);
  probe<l3_list>(msg_type::l3_list, bytes);
  probe<l3_listing>(msg_type::l3_listing, bytes);
  probe<kv_request>(msg_type::kv_request, bytes);
  probe<kv_reply>(msg_type::kv_reply, bytes);
  probe<node_status>(msg_type::node_status, bytes);
  return 0;
}
