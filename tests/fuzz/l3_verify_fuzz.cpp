// libFuzzer target: L3's open-time verifier (tiers/l3_verify.hpp) on a damaged
// data.mdb, and behind it L3's open and reads (tiers/l3_lmdb.hpp, whose record
// decoder is tiers/l3_format.hpp). Run by scripts/fuzz.
//
// The input is a whole data.mdb (the seeds are small real environments that
// kura wrote; scripts/fuzz's corpus tool makes them). It is written into a
// fresh L3 directory, checked with read_meta and verify_trees, then opened as
// L3 (which verifies again): the contract is "a corrupt file gives
// errc::corrupt or errc::foreign_file, never a crash", so when the verifier
// passes a file, LMDB must be able to open it and read every entry without
// reading outside its map. Every entry is then read (for_each, get) and the
// expiry sweep runs over the file.
#include "tiers/l3_lmdb.hpp"
#include "tiers/l3_verify.hpp"

#include "fuzz_util.hpp"

#include <filesystem>
#include <string>
#include <vector>

using namespace kura;
using kura::fuzz::fuzz_check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static kura::fuzz::scratch_dir dir{"kura-fuzz-l3"};
  static fake_clock clk;
  auto env_dir = dir.sub("l3");
  std::error_code ec;
  std::filesystem::remove_all(env_dir, ec);
  std::filesystem::create_directories(env_dir, ec);
  auto file = env_dir + "/data.mdb";
  fuzz_check(kura::fuzz::write_file(file, kura::fuzz::as_view(data, size)), "write data.mdb");
  if (size > 0) {
    auto m = l3_verify::read_meta(file);
    if (!m) {
      fuzz_check(m.err().code == errc::corrupt || m.err().code == errc::foreign_file,
                 "bad meta pages are corrupt or foreign");
    } else if (auto st = l3_verify::verify_trees(file, *m); !st) {
      fuzz_check(st.code() == errc::corrupt, "bad trees are corrupt");
    }
  }
  l3_config cfg;
  cfg.path = env_dir;
  cfg.map_size = 16ull << 20;
  cfg.fsync_batches = false;
  auto l3 = l3_lmdb::open(cfg, clk);
  if (!l3)
    return 0;
  std::vector<std::string> keys;
  (void)(*l3)->for_each([&](const entry& e) {
    keys.push_back(e.key);
    return keys.size() < 10000;
  });
  for (auto& k : keys)
    (void)(*l3)->get(k, clk.now_ms(), /*touch=*/false);
  (void)(*l3)->get("key:1", clk.now_ms(), false);
  (void)(*l3)->sweep_expired(clk.now_ms() + 86'400'000ull, 1000);
  (void)(*l3)->stats();
  return 0;
}
