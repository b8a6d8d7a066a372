// Key rotation of the cluster store (gossip::tier_store::rotate_keys and
// reseal_step, what `kura rotate-key` runs on a cluster node) killed with
// SIGKILL at a chosen step, deterministically: a forked child opens the store
// on real LMDB and archive files (background commits, a small L3 so that most
// values live in sealed archive segments), starts the rotation from key 1 to
// key 2 and writes new versions between the re-seal's slices; it dies at the
// nth passage of one of the archive compaction's crash points (block written,
// output synced, index switched, input removed) or after the nth slice (L3's
// pass, then L4's). The parent then reopens with keys 1 and 2: every key
// reads (its first value or one written during the rotation, never nil, never
// corrupt); the rotation runs again to its end; reopened with key 2 only,
// every key still reads the same, and L3 holds secrets under key 2 only.
#include "../archive/archive_test_util.hpp"
#include "../test_util.hpp"
#include "gossip/tier_store.hpp"

#include <doctest/doctest.h>

#include <csignal>
#include <map>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

using namespace kura;
using namespace kura::gossip;

namespace {

constexpr int n_keys = 600;

std::shared_ptr<const crypto::keyring> keys_of(std::vector<uint32_t> ids) {
  std::map<uint32_t, std::string> m;
  for (auto id : ids)
    m[id] = std::string(32, static_cast<char>('a' + id));
  auto kr = crypto::keyring::from_keys(std::move(m));
  REQUIRE(kr.ok());
  return *kr;
}

std::string key_of(int i) {
  return "rk" + std::to_string(i);
}

/// A value that names its key and its generation (0: the first write).
std::string value_of(int i, int gen) {
  std::string v = "v" + std::to_string(gen) + ":" + key_of(i) + ":";
  uint64_t x = 0x9e3779b97f4a7c15ull * static_cast<uint64_t>(i + 1 + gen * 7919);
  while (v.size() < 1200) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    v += static_cast<char>('a' + x % 26);
  }
  return v;
}

/// Opens the store in `dir` with `keys` (background commits, a small L3);
/// `fs` injects the crash points (null: plain files).
result<std::unique_ptr<tier_store>> open_at(const std::string& dir,
                                            std::shared_ptr<const crypto::keyring> keys,
                                            const kura::clock& clk, archive::env* fs = nullptr) {
  l3_config l3;
  l3.path = dir + "/l3";
  l3.map_size = 64ull << 20;
  l3.max_bytes = 150'000;
  l3.batch_max_writes = 64;
  l3.fsync_batches = false;
  l3.keys = keys;
  archive::archive_config ac;
  ac.path = dir + "/archive";
  ac.durable = false;
  ac.index_map_bytes = 32ull << 20;
  ac.block_bytes = 4096;
  ac.segment_bytes = 32 * 1024;
  ac.codec = archive::codec_id::lz4;
  ac.keys = std::move(keys);
  ac.fs = fs;
  auto a = archive::archive::open(ac, clk);
  if (!a)
    return a.err();
  return tier_store::open(l3, std::shared_ptr<archive::archive>(std::move(*a)), clk,
                          ring_config{}.seed, true);
}

entry val(int i, int gen, uint64_t hlc) {
  entry e;
  e.key = key_of(i);
  e.value = value_of(i, gen);
  e.ver = version{hlc, 1};
  return e;
}

/// Every key reads a value of its own (generation 0 or later); "" or the first
/// problem. `values` gets what was read.
std::string check_all(const tier_store& s, std::map<int, std::string>& values) {
  for (int i = 0; i < n_keys; ++i) {
    auto e = s.get(key_of(i));
    if (!e || e->is_tombstone())
      return key_of(i) + " reads nil";
    if (e->value.find(":" + key_of(i) + ":") == std::string::npos || e->value[0] != 'v')
      return key_of(i) + " reads a value that is not its own";
    values[i] = e->value;
  }
  if (auto& err = s.last_error())
    return "store error: " + err->to_string();
  return {};
}

/// Where the child dies: the nth passage of an archive crash point, or
/// ("slice", n) after the nth re-seal slice.
struct kill_at {
  const char* point;
  int nth;
};

/// The child: rotation to key 2 with writes between slices, killed at `k`.
/// Exits 0 when the rotation finished before the kill point, 2+ on errors.
[[noreturn]] void child(const std::string& dir, kill_at k) {
  archive::test::fault_env fe;
  int seen = 0;
  fe.on_crash_point = [&](std::string_view where) {
    if (where == k.point && ++seen == k.nth)
      ::raise(SIGKILL);
  };
  real_clock clk;
  auto s = open_at(dir, keys_of({1, 2}), clk, &fe);
  if (!s)
    ::_exit(2);
  auto& st = **s;
  if (!st.rotate_keys(keys_of({1, 2})))
    ::_exit(3);
  uint64_t hlc = 1'000'000;
  for (int slice = 1;; ++slice) {
    for (int j = 0; j < 7; ++j) { // writes between slices (some reach L3, some not)
      int i = (slice * 37 + j * 101) % n_keys;
      (void)st.apply(val(i, slice, hlc++));
    }
    (void)st.tick();
    auto p = st.reseal_step(40, 8 * 1024);
    if (!p)
      ::_exit(4);
    if (std::string_view(k.point) == "slice" && slice == k.nth)
      ::raise(SIGKILL);
    if (p->done)
      ::_exit(0);
  }
}

} // namespace

TEST_CASE("tier_store key rotation killed with SIGKILL at any step: data under both keys, a "
          "rerun finishes, then the new key alone reads everything") {
  for (kill_at k : {kill_at{"slice", 2}, kill_at{"slice", 9}, kill_at{"slice", 18},
                    kill_at{"compact.block_written", 1}, kill_at{"compact.block_written", 5},
                    kill_at{"compact.output_synced", 1}, kill_at{"compact.index_switched", 1},
                    kill_at{"compact.index_switched", 3}, kill_at{"compact.input_removed", 2}}) {
    std::string point = k.point;
    CAPTURE(point);
    CAPTURE(k.nth);
    testing::temp_dir d("kura-rotate");
    real_clock clk;
    {
      auto s = open_at(d.path, keys_of({1}), clk);
      REQUIRE_MESSAGE(s.ok(), s.err().to_string());
      for (int i = 0; i < n_keys; ++i)
        REQUIRE((*s)->apply(val(i, 0, 1000 + i)));
      REQUIRE((*s)->flush().ok());
      REQUIRE((*s)->l4()->stats().entries > n_keys / 2); // most values are archived
    }
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0)
      child(d.path, k);
    int wst = 0;
    REQUIRE(::waitpid(pid, &wst, 0) == pid);
    REQUIRE_MESSAGE(WIFSIGNALED(wst), "the child was not killed (exit " << WEXITSTATUS(wst) << ")");
    CHECK(WTERMSIG(wst) == SIGKILL);

    std::map<int, std::string> after_kill, after_rerun, key2_only;
    {
      auto s = open_at(d.path, keys_of({1, 2}), clk);
      REQUIRE_MESSAGE(s.ok(), s.err().to_string());
      auto& st = **s;
      auto why = check_all(st, after_kill);
      CHECK_MESSAGE(why.empty(), "after the kill, keys 1+2: " << why);
      REQUIRE(st.rotate_keys(keys_of({1, 2})).ok());
      for (int n = 0; n < 100'000; ++n) {
        auto p = st.reseal_step(40, 8 * 1024);
        REQUIRE_MESSAGE(p.ok(), p.err().to_string());
        if (p->done)
          break;
      }
      CHECK_FALSE(st.resealing());
      why = check_all(st, after_rerun);
      CHECK_MESSAGE(why.empty(), "after the rerun, keys 1+2: " << why);
      CHECK(after_rerun == after_kill);
      REQUIRE(st.flush().ok());
    }
    {
      auto s = open_at(d.path, keys_of({2}), clk);
      REQUIRE_MESSAGE(s.ok(), s.err().to_string());
      auto why = check_all(**s, key2_only);
      CHECK_MESSAGE(why.empty(), "key 2 only: " << why);
      CHECK(key2_only == after_rerun);
      CHECK((*s)->l3().key_ids() == std::vector<uint32_t>{2});
    }
  }
}
