// Encryption at rest: the master keys of a node (the key file), AES-256-GCM
// sealing of L3 records and L4 blocks, and keyed hashes (HMAC-SHA-256) that
// stand in for keys on disk. Everything goes through OpenSSL's libcrypto.
// docs/security.md ("Encryption at rest") and docs/formats.md describe the
// key file, the sealed layouts and what is (not) hidden.
// Thread safety: a keyring is immutable after creation and safe to share
// between threads (each call uses thread-local cipher contexts).
#pragma once

#include "tiers/status.hpp"

#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace kura::crypto {

// -- constants ----------------------------------------------------------------------

constexpr size_t key_bytes = 32;   ///< AES-256 / HMAC-SHA-256 key size
constexpr size_t id_bytes = 4;     ///< key id (u32 LE) in front of every sealed blob
constexpr size_t nonce_bytes = 12; ///< GCM nonce, random per seal
constexpr size_t tag_bytes = 16;   ///< GCM authentication tag
/// Bytes a sealed blob adds to its plaintext: key id, nonce, tag.
constexpr size_t overhead = id_bytes + nonce_bytes + tag_bytes;
/// PBKDF2-HMAC-SHA-256 iterations for passphrase keys.
constexpr uint32_t pbkdf2_iterations = 200000;
/// Bytes of the random salt for passphrase keys.
constexpr size_t salt_bytes = 16;

// -- primitives ---------------------------------------------------------------------

/// `n` bytes from OpenSSL's CSPRNG.
std::string random_bytes(size_t n);
/// HMAC-SHA-256(key, data): 32 bytes.
std::string hmac_sha256(std::string_view key, std::string_view data);
/// PBKDF2-HMAC-SHA-256 of a passphrase: key_bytes bytes.
std::string derive_key(std::string_view passphrase, std::string_view salt,
                       uint32_t iterations = pbkdf2_iterations);

// -- keyring --------------------------------------------------------------------------

/// The master keys a node holds, by id; the highest id is the active one
/// (new data is sealed with it), the others still open older data.
///
/// Sealed blob layout: key id u32 LE, 12-byte nonce, ciphertext (as long as
/// the plaintext), 16-byte GCM tag. The additional authenticated data (aad)
/// binds a blob to where it lives (LMDB key, segment and offset, ...), so a
/// blob copied elsewhere fails like a tampered one. The AES key of master key
/// K is HMAC-SHA-256(K, "kura seal v1 aes-256-gcm"), so a master key is never
/// used directly.
class keyring {
public:
  /// Builds a keyring from raw 32-byte keys (id -> key). Ids are 1..2^32-1.
  static result<std::shared_ptr<const keyring>> from_keys(std::map<uint32_t, std::string> keys);
  /// Parses a key file's contents (see docs/security.md). Passphrases are
  /// derived with PBKDF2 and `salt`; a file with a passphrase and an empty
  /// salt is refused (invalid_argument).
  static result<std::shared_ptr<const keyring>> parse(std::string_view text, std::string_view salt);
  /// Whether the key file's contents name a passphrase (which needs a salt).
  static bool needs_salt(std::string_view text);
  /// Reads `key_file`; when it holds a passphrase, the salt comes from
  /// `salt_file` (created with random bytes, fsynced, if it does not exist).
  static result<std::shared_ptr<const keyring>> load(const std::string& key_file,
                                                     const std::string& salt_file);

  uint32_t active() const { return active_; }
  std::vector<uint32_t> ids() const;
  bool has(uint32_t id) const { return keys_.count(id) != 0; }

  /// Seals the concatenation of `parts` under the active key into `out`,
  /// which must have room for the parts' total size + overhead bytes.
  void seal(std::string_view aad, std::initializer_list<std::string_view> parts, char* out) const;
  /// The same, returned as a string.
  std::string seal(std::string_view aad, std::string_view plain) const;
  /// Opens a sealed blob: errc::bad_key when its key id is not held,
  /// errc::corrupt when authentication fails (a tampered byte, a blob moved
  /// to another place, or a wrong key), never partial plaintext.
  status open(std::string_view aad, std::string_view sealed, std::string& plain) const;
  /// The key id of a sealed blob (0 when shorter than the overhead).
  static uint32_t key_id_of(std::string_view sealed);

private:
  keyring() = default;
  std::map<uint32_t, std::string> keys_; // id -> AES key (derived)
  std::map<uint32_t, uint64_t> uids_;    // id -> process-unique id (cipher context cache)
  uint32_t active_ = 0;
};

// -- store secret --------------------------------------------------------------------

/// What a store (L3, L4) keeps beside its data: a random 32-byte secret that
/// keys the HMAC standing in for every cache key on disk. It is stored sealed
/// under each master key it was sealed with ("secret.<id>" records), so a
/// store opens with any key that sealed it, a wrong key is refused at open,
/// and rotating the master key keeps every keyed hash (LMDB key) stable.
struct store_secret {
  std::string secret; ///< 32 bytes
  /// HMAC-SHA-256(secret, key): the on-disk stand-in for `key` (32 bytes).
  std::string key_hash(std::string_view key) const { return hmac_sha256(secret, key); }
};

/// Opens the store's secret from its sealed copies (key id -> sealed blob).
/// No copy under any held key: bad_key naming the ids the store needs. A copy
/// under a held key that fails to open: bad_key (the key file's key with that
/// id is not the one the store was sealed with).
result<store_secret> open_secret(const keyring& kr, const std::map<uint32_t, std::string>& sealed,
                                 std::string_view what);
/// A sealed copy of `s` under the active key (stored as "secret.<active>").
std::string seal_secret(const keyring& kr, const store_secret& s);

} // namespace kura::crypto
