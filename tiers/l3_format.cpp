#include "tiers/l3_format.hpp"

#include "tiers/hash.hpp"

namespace kura::l3_format {

namespace {

/// What a sealed record's blob authenticates besides its contents: the LMDB
/// key and the header fields before the sequence (format, flags, version,
/// expiry), so neither can be changed or the blob moved to another key.
std::string sealed_aad(std::string_view lkey, const char* rec) {
  std::string aad = "kura-l3 record ";
  aad.append(rec, 24);
  aad.append(lkey);
  return aad;
}

} // namespace

std::string lmdb_key(std::string_view key, const sealing* s) {
  if (s != nullptr)
    return s->secret.key_hash(key);
  if (!is_long_key(key))
    return std::string{key};
  std::string k;
  k.reserve(lkey_long_size);
  k.append(key.substr(0, long_key_prefix));
  char h[16];
  // Two independently seeded 64-bit hashes: a 128-bit fingerprint. A collision
  // is still detected on read (the record carries the full key) and then reads
  // as a miss, never as another key's value.
  put_be64(h, hash64(key, 0x6b7572612d6c3301ull));
  put_be64(h + 8, hash64(key, 0x6b7572612d6c3302ull));
  k.append(h, 16);
  return k;
}

size_t record_size(size_t key_bytes, size_t value_bytes, bool sealed) {
  if (sealed)
    return header_size + crypto::overhead + 4 + key_bytes + value_bytes;
  size_t n = header_size + value_bytes;
  if (key_bytes >= lkey_long_size) // is_long_key
    n += 4 + key_bytes;
  return n;
}

size_t record_size(const entry& e, const sealing* s) {
  return record_size(e.key.size(), e.value.size(), s != nullptr);
}

uint64_t record_checksum(std::string_view lkey, std::string_view rec) {
  uint64_t h = hash64(rec.substr(0, 24), 0x6b7572612d6c3363ull);
  h = hash64(rec.substr(header_size), h);
  return hash64(lkey, h);
}

void encode_record(const entry& e, std::string_view lkey, uint64_t seq, char* out,
                   const sealing* s) {
  encode_record(e, e.key, e.value, lkey, seq, out, s);
}

void encode_record(const entry& e, std::string_view key, std::string_view value,
                   std::string_view lkey, uint64_t seq, char* out, const sealing* s) {
  bool long_key = s == nullptr && is_long_key(key);
  out[0] = static_cast<char>(record_format);
  out[1] = static_cast<char>(e.flags);
  out[2] = static_cast<char>(s != nullptr ? rflag_sealed : long_key ? rflag_long_key : 0);
  out[3] = 0;
  put_le(out + 4, e.ver.node, 4);
  put_le(out + 8, e.ver.hlc, 8);
  put_le(out + 16, e.expiry_ms, 8);
  put_le(out + 24, seq, 8);
  char* p = out + header_size;
  const size_t size = record_size(key.size(), value.size(), s != nullptr);
  if (s != nullptr) {
    char klen[4];
    put_le(klen, key.size(), 4);
    s->kr->seal(sealed_aad(lkey, out), {std::string_view{klen, 4}, key, value}, p);
    put_le(out + 32, record_checksum(lkey, {out, size}), 8);
    return;
  }
  if (long_key) {
    put_le(p, key.size(), 4);
    std::memcpy(p + 4, key.data(), key.size());
    p += 4 + key.size();
  }
  if (!value.empty())
    std::memcpy(p, value.data(), value.size());
  put_le(out + 32, record_checksum(lkey, {out, size}), 8);
}

status decode_header(std::string_view rec, header& h) {
  if (rec.size() < header_size)
    return status{errc::corrupt, "L3 record of " + std::to_string(rec.size()) +
                                     " bytes is shorter than its " + std::to_string(header_size) +
                                     "-byte header"};
  const char* p = rec.data();
  h.format = static_cast<uint8_t>(p[0]);
  if (h.format < oldest_record_format || h.format > record_format)
    return status{errc::corrupt, "L3 record has format byte " + std::to_string(h.format) +
                                     ", expected " + std::to_string(oldest_record_format) + ".." +
                                     std::to_string(record_format)};
  h.flags = static_cast<uint8_t>(p[1]);
  h.rflags = static_cast<uint8_t>(p[2]);
  if ((h.rflags & ~(rflag_long_key | rflag_sealed)) != 0 || p[3] != 0 ||
      h.rflags == (rflag_long_key | rflag_sealed) || ((h.rflags & rflag_sealed) && h.format < 4))
    return status{errc::corrupt, "L3 record has unknown record flags"};
  h.node = static_cast<uint32_t>(get_le(p + 4, 4));
  h.hlc = get_le(p + 8, 8);
  h.expiry_ms = get_le(p + 16, 8);
  h.seq = get_le(p + 24, 8);
  h.checksum = get_le(p + 32, 8);
  if ((h.rflags & rflag_sealed) && rec.size() < header_size + crypto::overhead + 4)
    return status{errc::corrupt,
                  "L3 sealed record of " + std::to_string(rec.size()) + " bytes is too short"};
  if (h.rflags & rflag_long_key) {
    if (rec.size() < header_size + 4)
      return status{errc::corrupt, "L3 long-key record is missing its key length"};
    uint64_t klen = get_le(p + header_size, 4);
    if (klen < lkey_long_size || klen > rec.size() - header_size - 4)
      return status{errc::corrupt,
                    "L3 long-key record has a bad key length " + std::to_string(klen)};
  }
  return {};
}

result<std::string_view> record_key(std::string_view lkey, std::string_view rec, const header& h) {
  if (h.rflags & rflag_sealed)
    return error{errc::bad_key, "L3 record is sealed (encryption at rest): its key is inside"};
  if (!(h.rflags & rflag_long_key)) {
    if (lkey.size() >= lkey_long_size)
      return error{errc::corrupt, "L3 record under a hashed key lacks its full key"};
    return lkey;
  }
  size_t klen = get_le(rec.data() + header_size, 4);
  std::string_view full = rec.substr(header_size + 4, klen);
  if (lkey.size() != lkey_long_size ||
      lkey.substr(0, long_key_prefix) != full.substr(0, long_key_prefix))
    return error{errc::corrupt, "L3 long-key record does not match its LMDB key"};
  return full;
}

result<entry> decode_record(std::string_view lkey, std::string_view rec, const sealing* s) {
  header h;
  if (auto st = decode_header(rec, h); !st)
    return st;
  if (!checksum_ok(lkey, rec, h))
    return error{errc::corrupt,
                 "L3 record of " + std::to_string(rec.size()) + " bytes fails its checksum"};
  bool sealed = (h.rflags & rflag_sealed) != 0;
  if (sealed && s == nullptr)
    return error{errc::bad_key, "L3 record is encrypted and no encryption key is configured"};
  if (!sealed && s != nullptr)
    return error{errc::corrupt, "L3 record in an encrypted store is not sealed"};
  if (sealed) {
    std::string plain;
    if (auto st = s->kr->open(sealed_aad(lkey, rec.data()), rec.substr(header_size), plain); !st)
      return error{st.code(), "L3 record: " + st.err().message};
    uint64_t klen = plain.size() >= 4 ? get_le(plain.data(), 4) : ~0ull;
    if (klen > plain.size() - 4)
      return error{errc::corrupt, "L3 sealed record has a bad key length"};
    entry e;
    e.key.assign(plain.data() + 4, klen);
    e.value.assign(plain.data() + 4 + klen, plain.size() - 4 - klen);
    e.expiry_ms = h.expiry_ms;
    e.ver = version{h.hlc, h.node};
    e.flags = h.flags;
    return e;
  }
  auto k = record_key(lkey, rec, h);
  if (!k)
    return k.err();
  entry e;
  e.key.assign(k->data(), k->size());
  size_t off = header_size + ((h.rflags & rflag_long_key) ? 4 + k->size() : 0);
  e.value.assign(rec.data() + off, rec.size() - off);
  e.expiry_ms = h.expiry_ms;
  e.ver = version{h.hlc, h.node};
  e.flags = h.flags;
  return e;
}

} // namespace kura::l3_format
