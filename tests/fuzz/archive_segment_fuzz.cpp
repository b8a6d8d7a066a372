// libFuzzer target: the archive's segment block reader (archive/archive.cpp's
// read path over archive/format.hpp and archive/codec.hpp), i.e. a segment
// file (seg-*.kseg) that a disk error, a bad copy or a stray write damaged.
// Run by scripts/fuzz.
//
// Two archives (lz4 and zstd, archive_seed.hpp) are written once per process.
// They are then reopened on an env whose segment files read the current fuzz
// input instead of the file on disk, and every archived key is read with
// get(): a damaged block must read as errc::corrupt (or, where the damage left
// the checksums intact, as some entry of the right key), never crash, hang or
// allocate without bound. The input is also walked block by block as the
// compactor and drop_segment do (segment header, block headers, payload
// checksum, decompression, records).
#include "archive/archive.hpp"
#include "archive/format.hpp"

#include "archive_seed.hpp"
#include "fuzz_util.hpp"

#include <memory>
#include <string>
#include <vector>

using namespace kura;
using namespace kura::archive;
using kura::fuzz::fuzz_check;

namespace {

/// The bytes every segment file reads while an input runs.
std::string g_segment;

class input_file final : public readable_file {
public:
  status read_at(uint64_t offset, size_t n, char* dst) const override {
    if (offset > g_segment.size() || g_segment.size() - offset < n)
      return {errc::io_error, "short read"};
    std::memcpy(dst, g_segment.data() + offset, n);
    return {};
  }
  result<uint64_t> size() const override { return uint64_t{g_segment.size()}; }
};

/// posix_env, except that segment files read g_segment and are never cut.
class input_env final : public env {
public:
  result<std::unique_ptr<writable_file>> new_writable(const std::string& p) override {
    return base().new_writable(p);
  }
  result<std::shared_ptr<readable_file>> open_readable(const std::string& p) override {
    if (p.size() > 5 && p.compare(p.size() - 5, 5, ".kseg") == 0)
      return std::shared_ptr<readable_file>(std::make_shared<input_file>());
    return base().open_readable(p);
  }
  status remove(const std::string& p) override { return base().remove(p); }
  status rename(const std::string& f, const std::string& t) override { return base().rename(f, t); }
  status truncate(const std::string&, uint64_t) override { return {}; }
  status create_dir(const std::string& p) override { return base().create_dir(p); }
  status sync_dir(const std::string& p) override { return base().sync_dir(p); }
  result<std::vector<std::string>> list_dir(const std::string& p) override {
    return base().list_dir(p);
  }
  bool exists(const std::string& p) override { return base().exists(p); }

private:
  static env& base() { return posix_env::instance(); }
};

struct fixture {
  kura::fuzz::scratch_dir dir{"kura-fuzz-archive"};
  fake_clock clk;
  input_env fs;
  std::vector<std::unique_ptr<kura::archive::archive>> archives;
  std::vector<entry> entries = kura::fuzz::archive_seed_entries(clk.now_ms());

  fixture() {
    for (auto c : {codec_id::lz4, codec_id::zstd}) {
      auto path = dir.sub(to_string(c));
      kura::fuzz::write_archive_seed(path, c, clk);
      // Reopen with segment files reading the seed's bytes (sizes must match
      // the index at open, or the tail would be cut).
      g_segment = kura::fuzz::read_file(path + "/" + format::segment_file_name(1));
      auto cfg = kura::fuzz::archive_seed_config(path, c);
      cfg.fs = &fs;
      auto a = kura::archive::archive::open(cfg, clk);
      fuzz_check(static_cast<bool>(a), "seed archive reopens");
      archives.push_back(std::move(*a));
    }
  }
};

/// read_block of archive.cpp, as drop_segment and compaction walk a segment.
void walk_blocks(std::string_view seg) {
  auto h = format::decode_segment_header(seg);
  if (!h) {
    fuzz_check(h.err().code == errc::corrupt || h.err().code == errc::foreign_file,
               "a bad segment header is corrupt or foreign");
    return;
  }
  codec_context ctx;
  std::string raw;
  uint64_t off = format::segment_header_size;
  while (off + format::block_header_size <= seg.size()) {
    auto b = format::decode_block_header(seg.substr(off));
    if (!b)
      return;
    uint64_t len = format::block_header_size + uint64_t{b->stored_len};
    if (len > seg.size() - off)
      return;
    auto payload = seg.substr(off + format::block_header_size, b->stored_len);
    if (crc32(payload) == b->payload_crc && h->codec != codec_id::zstd_dict &&
        ctx.decompress(h->codec, nullptr, payload, b->raw_len, raw)) {
      fuzz_check(raw.size() == b->raw_len, "a block decompresses to its raw length");
      size_t p = 0;
      while (p < raw.size()) {
        size_t next = 0;
        auto e = format::decode_record(raw, p, &next);
        if (!e)
          break;
        fuzz_check(next > p && next <= raw.size(), "records advance inside the block");
        p = next;
      }
    }
    off += len;
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static fixture fx_; // built on the first input, lives for the process
  auto* fx = &fx_;
  g_segment.assign(reinterpret_cast<const char*>(data), size);
  for (auto& a : fx->archives) {
    for (auto& e : fx->entries) {
      auto r = a->get(e.key, fx->clk.now_ms(), /*touch=*/false);
      if (!r) {
        fuzz_check(r.err().code == errc::corrupt || r.err().code == errc::io_error,
                   "a damaged segment reads as corrupt");
        continue;
      }
      if (*r)
        fuzz_check((*r)->key == e.key, "get returns the key it was asked for");
    }
  }
  walk_blocks(g_segment);
  return 0;
}
