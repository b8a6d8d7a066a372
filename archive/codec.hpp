// Block codecs of the archive: lz4 (LZ4 frame format), zstd at a level, and zstd
// with a trained dictionary. Every compressed block is one complete, standard
// frame, so `lz4 -d` / `zstd -d [-D dict]` can decompress a block cut out of a
// segment file (docs/formats-archive.md).
// Thread safety: a `dictionary` is immutable after creation and safe to share
// between threads; a `codec_context` is owned by one thread.
#pragma once

#include "tiers/status.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace kura::archive {

/// On-disk codec ids (stored in the segment header; never renumber).
enum class codec_id : uint8_t {
  none = 0,      ///< stored as is (used for data that does not compress)
  lz4 = 1,       ///< LZ4 frame
  zstd = 2,      ///< zstd frame
  zstd_dict = 3, ///< zstd frame compressed with a dictionary
};

/// "lz4", "zstd", "zstd+dictionary", "none".
const char* to_string(codec_id c) noexcept;
/// Parses the names above ("zstd-dict" is accepted too).
result<codec_id> parse_codec(std::string_view name);

/// A trained zstd dictionary with the archive's id for it.
class dictionary {
public:
  /// Wraps raw dictionary bytes (ZDICT format, as `zstd --train` writes).
  static result<std::shared_ptr<const dictionary>> load(uint32_t id, std::string bytes, int level);
  ~dictionary();
  uint32_t id() const { return id_; }
  const std::string& bytes() const { return bytes_; }
  /// The dictionary id zstd stores in each frame header.
  uint32_t zstd_dict_id() const;

private:
  friend class codec_context;
  dictionary() = default;
  uint32_t id_ = 0;
  std::string bytes_;
  void* cdict_ = nullptr; // ZSTD_CDict*
  void* ddict_ = nullptr; // ZSTD_DDict*
};

/// Trains a dictionary of at most `capacity` bytes from `samples`. Fails
/// (invalid_argument) when the samples are too few or too uniform to help.
result<std::string> train_dictionary(const std::vector<std::string>& samples, size_t capacity);

/// Reusable compression state (zstd contexts, lz4 frame context).
class codec_context {
public:
  codec_context();
  ~codec_context();
  codec_context(const codec_context&) = delete;
  codec_context& operator=(const codec_context&) = delete;

  /// Compresses `src` into `out` (replacing its contents) as one frame.
  status compress(codec_id c, int level, const dictionary* dict, std::string_view src,
                  std::string& out);
  /// Decompresses one frame of exactly `raw_len` bytes into `out`.
  status decompress(codec_id c, const dictionary* dict, std::string_view src, size_t raw_len,
                    std::string& out);

private:
  void* cctx_ = nullptr; // ZSTD_CCtx*
  void* dctx_ = nullptr; // ZSTD_DCtx*
  void* lz4d_ = nullptr; // LZ4F_dctx*
};

/// CRC-32 (the IEEE/zlib polynomial, so Python's zlib.crc32 checks it too).
uint32_t crc32(std::string_view data, uint32_t crc = 0);

} // namespace kura::archive
