// Where the predictor's model persists: a `model_store` reads and writes one
// blob; file_model_store keeps it in a file beside the node's data (written to
// a temporary file, fsynced, renamed over the old one, so a crash leaves the
// old model or the new one, never half of one).
//
// File layout (little-endian): "KURAPRED" | u32 format version | u64 payload
// length | payload | u64 checksum (hash64 of the payload, seeded). A file
// that fails any check is reported as errc::corrupt or errc::foreign_file; the
// predictor then starts empty (see predictor::load).
// Thread safety: not thread-safe.
#pragma once

#include "tiers/status.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace kura::predictor {

constexpr uint32_t model_format_version = 2;

class model_store {
public:
  virtual ~model_store() = default;
  /// The stored blob, or nullopt when nothing was stored yet.
  virtual result<std::optional<std::string>> read() = 0;
  /// Replaces the stored blob atomically.
  virtual status write(std::string_view blob) = 0;
};

/// A model in one file.
class file_model_store final : public model_store {
public:
  explicit file_model_store(std::string path) : path_(std::move(path)) {}
  result<std::optional<std::string>> read() override;
  status write(std::string_view blob) override;
  const std::string& path() const { return path_; }

private:
  std::string path_;
};

/// Wraps a payload in the file layout.
std::string seal_model(std::string_view payload);
/// Checks the layout and returns the payload.
result<std::string> unseal_model(std::string_view blob);

} // namespace kura::predictor
