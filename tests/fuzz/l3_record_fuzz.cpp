// libFuzzer target: L3's record decoder (tiers/l3_format.hpp), i.e. the bytes
// of an LMDB value in kura.main as L3 reads them back. Run by scripts/fuzz.
// Input: one byte n, then (n < 255) an LMDB key of n bytes and the record, or
// (n == 255) the record alone under the LMDB key its own long key hashes to.
// Each record is decoded as it is and once more with its checksum made right,
// so that the decoder's checks behind the checksum are reached too. Decoding
// must give an entry or errc::corrupt (errc::bad_key for a sealed record read
// without a key); a decoded entry must encode and decode back to itself. The
// same runs once more with a fixed encryption key (encryption at rest): a
// record must then fail authentication unless it was sealed, and whatever
// decodes must round-trip through a sealed encode.
#include "tiers/l3_format.hpp"

#include "fuzz_util.hpp"

#include <string>

using namespace kura;
using kura::fuzz::fuzz_check;

namespace {

const l3_format::sealing* sealer() {
  static l3_format::sealing s = [] {
    l3_format::sealing x;
    x.kr = *crypto::keyring::from_keys({{1, std::string(32, 'k')}});
    x.secret.secret = std::string(32, 's');
    return x;
  }();
  return &s;
}

void decode(std::string_view lkey, std::string_view rec, const l3_format::sealing* s) {
  l3_format::header h;
  if (auto st = l3_format::decode_header(rec, h); !st) {
    fuzz_check(st.code() == errc::corrupt, "a bad header is corrupt");
    return;
  }
  auto k = l3_format::record_key(lkey, rec, h);
  auto e = l3_format::decode_record(lkey, rec, s);
  if (!e) {
    fuzz_check(e.err().code == errc::corrupt || e.err().code == errc::bad_key,
               "a bad record is corrupt (or sealed without a key)");
    return;
  }
  if (s == nullptr)
    fuzz_check(k && *k == e->key, "record_key agrees with decode_record");
  std::string again(l3_format::record_size(*e, s), '\0');
  auto lk = l3_format::lmdb_key(e->key, s);
  l3_format::encode_record(*e, lk, h.seq, again.data(), s);
  auto back = l3_format::decode_record(lk, again, s);
  fuzz_check(back && *back == *e, "a decoded record round-trips");
}

void decode(std::string_view lkey, std::string_view rec) {
  decode(lkey, rec, nullptr);
  decode(lkey, rec, sealer());
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0)
    return 0;
  auto in = kura::fuzz::as_view(data, size).substr(1);
  size_t n = data[0];
  std::string lkey;
  std::string rec;
  if (n < 255) {
    if (in.size() < n)
      return 0;
    lkey.assign(in.substr(0, n));
    rec.assign(in.substr(n));
  } else {
    rec.assign(in);
    l3_format::header h;
    if (l3_format::decode_header(rec, h) && (h.rflags & l3_format::rflag_long_key)) {
      size_t klen = l3_format::get_le(rec.data() + l3_format::header_size, 4);
      lkey = l3_format::lmdb_key(std::string_view(rec).substr(l3_format::header_size + 4, klen));
    }
  }
  decode(lkey, rec);
  if (rec.size() >= l3_format::header_size) {
    // The same record with a checksum that matches (bytes 32..39 of the header).
    l3_format::put_le(rec.data() + 32, l3_format::record_checksum(lkey, rec), 8);
    decode(lkey, rec);
  }
  return 0;
}
