// Private to l3_lmdb.cpp (and its tests): the on-disk encoding of L3 records and
// index keys inside the LMDB environment. docs/formats.md, section "L3 (LMDB)",
// is the reference; change both together and bump `record_format`.
// Thread safety: pure functions.
#pragma once

#include "tiers/entry.hpp"
#include "tiers/seal.hpp"
#include "tiers/status.hpp"

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

namespace kura::l3_format {

// -- constants ------------------------------------------------------------------

/// First byte of every record in kura.main. Format 3 (kura-l3 3) added
/// tombstone records (entry_flags::tombstone, empty value, no kura.seq or
/// kura.exp entry) and the `max_version` meta record; format-2 records have the
/// same layout and are read as they are (`oldest_record_format`). Format 4
/// (kura-l3 4) added sealed records (rflag_sealed, encryption at rest); a
/// plaintext format-4 record has format 3's layout.
constexpr uint8_t record_format = 4;
/// The oldest record format this build reads.
constexpr uint8_t oldest_record_format = 2;
/// Bytes of the fixed record header.
constexpr size_t header_size = 40;
/// Record flag: the full key follows the header (the LMDB key is a hashed form).
constexpr uint8_t rflag_long_key = 1u << 0;
/// Record flag: encryption at rest. The LMDB key is HMAC-SHA-256 of the key
/// under the store secret (32 bytes); after the header comes one sealed blob
/// (tiers/seal.hpp) of: key length u32 LE, key, value.
constexpr uint8_t rflag_sealed = 1u << 1;
/// Bytes of the LMDB key of a sealed record.
constexpr size_t sealed_lkey_size = 32;

/// LMDB keys are limited to 511 bytes (MDB_MAXKEYSIZE in Debian's build). Keys
/// shorter than `lkey_long_size` are stored as they are; longer keys become
/// exactly `lkey_long_size` bytes: their first `long_key_prefix` bytes (so key
/// order is kept for keys that differ early) followed by a 128-bit hash of the
/// whole key. Raw keys are always shorter than `lkey_long_size`, hashed ones
/// exactly that long, so the two forms never collide with each other.
constexpr size_t lkey_long_size = 480;
constexpr size_t long_key_prefix = 464;

/// Value stored under "format" in kura.meta: names the program and layout.
/// kura-l3 5 dropped the kura.seq database (one B-tree insert per write): the
/// eviction order is sampled from the stamps records carry (header bytes
/// 24..32), and the next stamp is kept in kura.meta "next_seq". Records keep
/// format 4's layout and format byte.
constexpr std::string_view meta_format = "kura-l3 5";
/// Older layouts' markers: opened, upgraded in place (the marker is rewritten;
/// from 2, max_version is computed once by a scan; from 2, 3 and 4 kura.seq is
/// dropped, its last key seeding next_seq), never written.
constexpr std::string_view meta_format_v4 = "kura-l3 4";
constexpr std::string_view meta_format_v3 = "kura-l3 3";
constexpr std::string_view meta_format_v2 = "kura-l3 2";

/// Encryption at rest for one environment: the node's keyring and the
/// environment's own secret (which keys the HMAC of keys). nullptr where a
/// function takes a `const sealing*` means plaintext.
struct sealing {
  std::shared_ptr<const crypto::keyring> kr;
  crypto::store_secret secret;
};

// -- byte order helpers -----------------------------------------------------------

inline void put_le(char* p, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; ++i)
    p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
inline uint64_t get_le(const char* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i)
    v |= static_cast<uint64_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}
/// Big-endian, so that memcmp order (LMDB's default) is numeric order.
inline void put_be64(char* p, uint64_t v) {
  for (size_t i = 0; i < 8; ++i)
    p[i] = static_cast<char>((v >> (8 * (7 - i))) & 0xff);
}
inline uint64_t get_be64(const char* p) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8; ++i)
    v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

// -- keys -------------------------------------------------------------------------

inline bool is_long_key(std::string_view key) {
  return key.size() >= lkey_long_size;
}

/// The LMDB key of `key` in kura.main (see lkey_long_size); with sealing,
/// HMAC-SHA-256(store secret, key).
std::string lmdb_key(std::string_view key, const sealing* s = nullptr);

/// kura.seq key (formats 2-4; read only to upgrade them): 8-byte big-endian
/// write sequence.
inline std::string seq_key(uint64_t seq) {
  std::string k(8, '\0');
  put_be64(k.data(), seq);
  return k;
}
/// kura.exp key: 8-byte big-endian expiry ms + 8-byte big-endian sequence.
inline std::string exp_key(uint64_t expiry_ms, uint64_t seq) {
  std::string k(16, '\0');
  put_be64(k.data(), expiry_ms);
  put_be64(k.data() + 8, seq);
  return k;
}

// -- records ----------------------------------------------------------------------

/// The fixed header of a record.
struct header {
  uint8_t format = record_format;
  uint8_t flags = 0;  ///< entry_flags
  uint8_t rflags = 0; ///< rflag_*
  uint32_t node = 0;
  uint64_t hlc = 0;
  uint64_t expiry_ms = 0;
  /// Recency stamp: the write (or touched read) sequence number of the last
  /// write or touch; the eviction order. Formats 2-4 also kept it in kura.seq.
  uint64_t seq = 0;
  uint64_t checksum = 0;
};

/// Bytes of the record that encodes `e`.
size_t record_size(const entry& e, const sealing* s = nullptr);
/// record_size of an entry with a key of `key_bytes` and a value of
/// `value_bytes`, sealed or not.
size_t record_size(size_t key_bytes, size_t value_bytes, bool sealed);
/// Writes the record of `e`, stored under LMDB key `lkey`, with sequence
/// `seq` into `out` (record_size(e, s) bytes); sealed under the active key
/// when `s` is given.
void encode_record(const entry& e, std::string_view lkey, uint64_t seq, char* out,
                   const sealing* s = nullptr);
/// encode_record of an entry whose key and value are `key` and `value` (the
/// ones of `meta` are not read): record_size(key.size(), value.size(), s).
void encode_record(const entry& meta, std::string_view key, std::string_view value,
                   std::string_view lkey, uint64_t seq, char* out, const sealing* s = nullptr);
/// Parses and checks the header of a record (not its checksum).
status decode_header(std::string_view rec, header& h);
/// The checksum of a record stored under `lkey`: hash64 over the header's
/// first 24 bytes, the bytes after the header and the LMDB key. The sequence
/// is left out, so a read that renews it does not rehash the value.
uint64_t record_checksum(std::string_view lkey, std::string_view rec);
/// Whether the record's stored checksum matches (header decoded into `h`).
inline bool checksum_ok(std::string_view lkey, std::string_view rec, const header& h) {
  return record_checksum(lkey, rec) == h.checksum;
}
/// Decodes and checks a whole record stored under LMDB key `lkey` (header,
/// checksum, key). A long-key record carries its full key; other records take
/// the key from `lkey`. A sealed record is opened with `s`: without it,
/// errc::bad_key; a key id the keyring lacks, errc::bad_key; a failed
/// authentication (tampered byte, record moved), errc::corrupt. A plaintext
/// record where `s` is given is errc::corrupt (an encrypted store never holds
/// one, so it was planted).
result<entry> decode_record(std::string_view lkey, std::string_view rec,
                            const sealing* s = nullptr);
/// The full key of a record (from the record for long keys, else `lkey`),
/// without copying the value. Precondition: decode_header succeeded. A sealed
/// record's key is inside its blob: errc::bad_key (use decode_record).
result<std::string_view> record_key(std::string_view lkey, std::string_view rec, const header& h);

} // namespace kura::l3_format
