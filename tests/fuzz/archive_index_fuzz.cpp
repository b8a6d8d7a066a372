// libFuzzer target: the archive's index value decoder and segment row decoder
// (archive/format.hpp), i.e. the values of the LMDB index that L4 reads back.
// Run by scripts/fuzz. Decoding must give a value or errc::corrupt; a decoded
// value must encode and decode back to itself.
#include "archive/format.hpp"

#include "fuzz_util.hpp"

using namespace kura;
using namespace kura::archive::format;
using kura::fuzz::fuzz_check;

namespace {

bool same(const location& a, const location& b) {
  return a.same_place(b) && a.block_len == b.block_len && a.record_len == b.record_len &&
         a.expiry_ms == b.expiry_ms && a.ver == b.ver && a.flags == b.flags;
}

bool same(const segment_row& a, const segment_row& b) {
  return encode(a) == encode(b);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto bytes = kura::fuzz::as_view(data, size);
  if (auto l = decode_location(bytes)) {
    auto back = decode_location(encode(*l));
    fuzz_check(back && same(*back, *l), "an index value round-trips");
  } else {
    fuzz_check(l.err().code == errc::corrupt, "a bad index value is corrupt");
  }
  if (auto r = decode_segment_row(bytes)) {
    auto back = decode_segment_row(encode(*r));
    fuzz_check(back && same(*back, *r), "a segment row round-trips");
    fuzz_check(encode(*r) == bytes, "segment rows have one encoding");
  } else {
    fuzz_check(r.err().code == errc::corrupt, "a bad segment row is corrupt");
  }
  return 0;
}
