// kura.security.hash-keys-in-models: the keyed hashes that stand in for keys
// in what the predictor keeps (its statistics and its model file) and in the
// audit log's arguments. A key becomes the hex of the first 16 bytes of
// HMAC-SHA-256(secret, key) (32 hex digits). The secret is per node and
// lives in the data dir (`model-keys.secret`, mode 0600), sealed with the
// encryption key when kura.security.encryption-key-file is set.
//
// The prewarm must turn a hash back into its key to load it: the store keeps
// the hashes of the keys it handed out in memory (never on disk), in two
// bounded generations; a hash whose key is no longer remembered (after a
// restart, or a long time without being read) is treated as absent until the
// key is read again.
// No CAF in this file.
// Thread safety: hash() is const and thread-safe; remember()/key_of() are
// not (owned by the store broker's thread).
#pragma once

#include "tiers/seal.hpp"
#include "tiers/status.hpp"

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

namespace kura::actors {

class model_keys {
public:
  /// `secret`: 32 bytes. `remember_cap`: hashes kept per generation.
  explicit model_keys(std::string secret, size_t remember_cap = 1 << 18);

  /// The keyed hash standing in for `key` (32 lowercase hex digits).
  std::string hash(std::string_view key) const;
  /// hash(key), and remembers which key it stands for.
  std::string remember(std::string_view key);
  /// The key `h` stands for, or nullptr when it is not remembered.
  const std::string* key_of(const std::string& h) const;
  size_t remembered() const noexcept { return cur_.size() + old_.size(); }

  /// Loads `<data_dir>/model-keys.secret`, creating it (32 random bytes,
  /// mode 0600, fsynced) when missing. With `keys`, the file holds the secret
  /// sealed under the active key (an existing plain file is refused, as is a
  /// sealed one without keys).
  static result<std::string> load_secret(const std::string& data_dir,
                                         const std::shared_ptr<const crypto::keyring>& keys);

private:
  std::string secret_;
  size_t cap_;
  std::unordered_map<std::string, std::string> cur_, old_; // hash -> key
};

} // namespace kura::actors
