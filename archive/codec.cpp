#include "archive/codec.hpp"

#include <lz4frame.h>
#include <zdict.h>
#include <zstd.h>

#include <array>

namespace kura::archive {

const char* to_string(codec_id c) noexcept {
  switch (c) {
  case codec_id::none:
    return "none";
  case codec_id::lz4:
    return "lz4";
  case codec_id::zstd:
    return "zstd";
  case codec_id::zstd_dict:
    return "zstd+dictionary";
  }
  return "unknown";
}

result<codec_id> parse_codec(std::string_view name) {
  if (name == "lz4")
    return codec_id::lz4;
  if (name == "zstd")
    return codec_id::zstd;
  if (name == "zstd+dictionary" || name == "zstd-dict" || name == "zstd_dict")
    return codec_id::zstd_dict;
  if (name == "none")
    return codec_id::none;
  return error{errc::invalid_argument,
               "unknown codec '" + std::string(name) + "' (lz4, zstd, zstd+dictionary, none)"};
}

// -- dictionary -----------------------------------------------------------------

result<std::shared_ptr<const dictionary>> dictionary::load(uint32_t id, std::string bytes,
                                                           int level) {
  if (ZDICT_getDictID(bytes.data(), bytes.size()) == 0)
    return error{errc::corrupt, "dictionary " + std::to_string(id) + " is not a zstd dictionary"};
  std::shared_ptr<dictionary> d(new dictionary);
  d->id_ = id;
  d->bytes_ = std::move(bytes);
  d->cdict_ = ZSTD_createCDict(d->bytes_.data(), d->bytes_.size(), level);
  d->ddict_ = ZSTD_createDDict(d->bytes_.data(), d->bytes_.size());
  if (d->cdict_ == nullptr || d->ddict_ == nullptr)
    return error{errc::corrupt, "dictionary " + std::to_string(id) + " rejected by zstd"};
  return std::shared_ptr<const dictionary>(std::move(d));
}

dictionary::~dictionary() {
  ZSTD_freeCDict(static_cast<ZSTD_CDict*>(cdict_));
  ZSTD_freeDDict(static_cast<ZSTD_DDict*>(ddict_));
}

uint32_t dictionary::zstd_dict_id() const {
  return ZDICT_getDictID(bytes_.data(), bytes_.size());
}

result<std::string> train_dictionary(const std::vector<std::string>& samples, size_t capacity) {
  std::string flat;
  std::vector<size_t> sizes;
  sizes.reserve(samples.size());
  for (auto& s : samples) {
    flat += s;
    sizes.push_back(s.size());
  }
  if (samples.size() < 8)
    return error{errc::invalid_argument, "too few samples to train a dictionary"};
  std::string dict(capacity, '\0');
  auto n = ZDICT_trainFromBuffer(dict.data(), dict.size(), flat.data(), sizes.data(),
                                 static_cast<unsigned>(sizes.size()));
  if (ZDICT_isError(n))
    return error{errc::invalid_argument,
                 std::string("dictionary training failed: ") + ZDICT_getErrorName(n)};
  dict.resize(n);
  return dict;
}

// -- codec_context ----------------------------------------------------------------

codec_context::codec_context() {
  cctx_ = ZSTD_createCCtx();
  dctx_ = ZSTD_createDCtx();
  LZ4F_dctx* d = nullptr;
  if (!LZ4F_isError(LZ4F_createDecompressionContext(&d, LZ4F_VERSION)))
    lz4d_ = d;
}

codec_context::~codec_context() {
  ZSTD_freeCCtx(static_cast<ZSTD_CCtx*>(cctx_));
  ZSTD_freeDCtx(static_cast<ZSTD_DCtx*>(dctx_));
  if (lz4d_ != nullptr)
    LZ4F_freeDecompressionContext(static_cast<LZ4F_dctx*>(lz4d_));
}

status codec_context::compress(codec_id c, int level, const dictionary* dict, std::string_view src,
                               std::string& out) {
  switch (c) {
  case codec_id::none:
    out.assign(src.data(), src.size());
    return {};
  case codec_id::lz4: {
    LZ4F_preferences_t prefs{};
    prefs.frameInfo.contentSize = src.size();
    // Blocks of up to 4 MiB, linked so that matches cross LZ4's internal blocks.
    prefs.frameInfo.blockSizeID = LZ4F_max4MB;
    prefs.frameInfo.blockMode = LZ4F_blockLinked;
    prefs.compressionLevel = level > 0 ? level : 0;
    out.resize(LZ4F_compressFrameBound(src.size(), &prefs));
    auto n = LZ4F_compressFrame(out.data(), out.size(), src.data(), src.size(), &prefs);
    if (LZ4F_isError(n))
      return {errc::io_error, std::string("lz4 compression failed: ") + LZ4F_getErrorName(n)};
    out.resize(n);
    return {};
  }
  case codec_id::zstd:
  case codec_id::zstd_dict: {
    auto* cctx = static_cast<ZSTD_CCtx*>(cctx_);
    out.resize(ZSTD_compressBound(src.size()));
    size_t n;
    if (c == codec_id::zstd_dict) {
      if (dict == nullptr)
        return {errc::invalid_argument, "zstd+dictionary without a dictionary"};
      n = ZSTD_compress_usingCDict(cctx, out.data(), out.size(), src.data(), src.size(),
                                   static_cast<const ZSTD_CDict*>(dict->cdict_));
    } else {
      n = ZSTD_compressCCtx(cctx, out.data(), out.size(), src.data(), src.size(), level);
    }
    if (ZSTD_isError(n))
      return {errc::io_error, std::string("zstd compression failed: ") + ZSTD_getErrorName(n)};
    out.resize(n);
    return {};
  }
  }
  return {errc::invalid_argument, "unknown codec"};
}

status codec_context::decompress(codec_id c, const dictionary* dict, std::string_view src,
                                 size_t raw_len, std::string& out) {
  out.resize(raw_len);
  switch (c) {
  case codec_id::none:
    if (src.size() != raw_len)
      return {errc::corrupt, "stored block length differs from its raw length"};
    out.assign(src.data(), src.size());
    return {};
  case codec_id::lz4: {
    auto* d = static_cast<LZ4F_dctx*>(lz4d_);
    if (d == nullptr)
      return {errc::io_error, "no lz4 decompression context"};
    LZ4F_resetDecompressionContext(d);
    size_t in_done = 0, out_done = 0;
    while (true) {
      size_t in_n = src.size() - in_done;
      size_t out_n = out.size() - out_done;
      auto hint =
          LZ4F_decompress(d, out.data() + out_done, &out_n, src.data() + in_done, &in_n, nullptr);
      if (LZ4F_isError(hint))
        return {errc::corrupt, std::string("lz4 frame: ") + LZ4F_getErrorName(hint)};
      in_done += in_n;
      out_done += out_n;
      if (hint == 0)
        break;
      if (in_n == 0 && out_n == 0)
        return {errc::corrupt, "lz4 frame truncated or longer than recorded"};
    }
    if (out_done != raw_len || in_done != src.size())
      return {errc::corrupt, "lz4 frame size differs from the block header"};
    return {};
  }
  case codec_id::zstd:
  case codec_id::zstd_dict: {
    auto* dctx = static_cast<ZSTD_DCtx*>(dctx_);
    size_t n;
    if (c == codec_id::zstd_dict) {
      if (dict == nullptr)
        return {errc::corrupt, "zstd+dictionary block without its dictionary"};
      n = ZSTD_decompress_usingDDict(dctx, out.data(), out.size(), src.data(), src.size(),
                                     static_cast<const ZSTD_DDict*>(dict->ddict_));
    } else {
      n = ZSTD_decompressDCtx(dctx, out.data(), out.size(), src.data(), src.size());
    }
    if (ZSTD_isError(n))
      return {errc::corrupt, std::string("zstd frame: ") + ZSTD_getErrorName(n)};
    if (n != raw_len)
      return {errc::corrupt, "zstd frame size differs from the block header"};
    return {};
  }
  }
  return {errc::corrupt, "unknown codec id " + std::to_string(static_cast<int>(c))};
}

// -- crc32 ------------------------------------------------------------------------

namespace {

struct crc_tables {
  std::array<std::array<uint32_t, 256>, 8> t{};
  crc_tables() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k)
        c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; ++i)
      for (size_t s = 1; s < 8; ++s)
        t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
  }
};

const crc_tables& tables() {
  static const crc_tables ct;
  return ct;
}

} // namespace

uint32_t crc32(std::string_view data, uint32_t crc) {
  const auto& t = tables().t;
  auto p = reinterpret_cast<const uint8_t*>(data.data());
  size_t n = data.size();
  crc = ~crc;
  // Slicing-by-8 (little-endian hosts): eight table lookups per 8 input bytes.
  while (n >= 8) {
    uint32_t a =
        crc ^ (uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24);
    crc = t[7][a & 0xff] ^ t[6][(a >> 8) & 0xff] ^ t[5][(a >> 16) & 0xff] ^ t[4][a >> 24] ^
          t[3][p[4]] ^ t[2][p[5]] ^ t[1][p[6]] ^ t[0][p[7]];
    p += 8;
    n -= 8;
  }
  while (n-- > 0)
    crc = t[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return ~crc;
}

} // namespace kura::archive
