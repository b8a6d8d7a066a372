// libFuzzer target: the cluster message decoder (gossip/messages.hpp), which
// reads every byte another node (or a stranger on the cluster port) sends.
// Run by scripts/fuzz. Decoding must give a message or a decode_error, never
// crash or throw; a decoded message must re-encode, decode again, and encode
// to the same bytes.
#include "gossip/messages.hpp"

#include "fuzz_util.hpp"

using kura::fuzz::fuzz_check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto m = kura::gossip::decode_message(kura::fuzz::as_view(data, size));
  if (!m) {
    fuzz_check(m.err().code == kura::errc::decode_error, "garbage is a decode_error");
    return 0;
  }
  auto again = kura::gossip::encode(*m);
  auto back = kura::gossip::decode_message(again);
  fuzz_check(static_cast<bool>(back), "a decoded message re-encodes");
  fuzz_check(back->index() == m->index(), "the type survives a round trip");
  fuzz_check(kura::gossip::encode(*back) == again, "re-encoding is stable");
  return 0;
}
