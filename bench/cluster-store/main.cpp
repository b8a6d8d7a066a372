// kura-bench-cluster-store: the storage side of the cluster, measured side by
// side in one run (medians of --runs runs, ratios printed):
//
//   build/bin/kura-bench-cluster-store [--keys 200000] [--runs 5] [--dir PATH]
//
//   digest_scan      one level-1 anti-entropy digest computed the old way:
//                    every key held, its position and item digest (what each
//                    sync round cost per peer before the digests were kept)
//   digest_kept      the same 256 digests from the incrementally kept slot
//                    digests (what a round costs now); both over the same
//                    memory_store, and they must agree
//   l3_put           --keys puts into a fresh L3 (group commit, no fsync)
//   l3_apply         the same entries through apply() (last-writer-wins: one
//                    extra version lookup per write)
//   tier_store_apply the same through gossip::tier_store (L3 + L4, index and
//                    digests kept)
//   tier_store_open  reopening that store: the index and digests rebuilt from
//                    L3's scan and L4's key iterator
// Times are wall time on a shared, loaded machine: compare the ratios of one
// run, not absolute numbers across runs.
#include "gossip/anti_entropy.hpp"
#include "gossip/store.hpp"
#include "gossip/tier_store.hpp"
#include "tiers/clock.hpp"
#include "tiers/l3_lmdb.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <unistd.h>
#include <vector>

using namespace kura;
using namespace kura::gossip;
namespace fs = std::filesystem;

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

entry make(size_t i) {
  entry e;
  e.key = "user:" + std::to_string(i * 2654435761u % 100'000'007u);
  e.value = std::string(100, static_cast<char>('a' + i % 26));
  e.ver = version{version::make_hlc(1'700'000'000'000ull + i, 0), 1};
  return e;
}

l3_config l3_at(const std::string& dir) {
  l3_config c;
  c.path = dir;
  c.map_size = 4ull << 30;
  c.fsync_batches = false;
  c.verify_on_open = false;
  return c;
}

archive::archive_config l4_at(const std::string& dir) {
  archive::archive_config c;
  c.path = dir;
  c.durable = false;
  c.index_map_bytes = 4ull << 30;
  return c;
}

} // namespace

int main(int argc, char** argv) {
  size_t keys = 200'000;
  int runs = 5;
  std::string dir;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--keys" && i + 1 < argc)
      keys = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--runs" && i + 1 < argc)
      runs = std::atoi(argv[++i]);
    else if (a == "--dir" && i + 1 < argc)
      dir = argv[++i];
    else {
      std::fprintf(stderr, "usage: kura-bench-cluster-store [--keys N] [--runs R] [--dir PATH]\n");
      return 2;
    }
  }
  if (keys == 0 || runs < 1) {
    std::fprintf(stderr, "kura-bench-cluster-store: --keys and --runs must be positive\n");
    return 2;
  }
  if (dir.empty()) {
    char tmpl[] = "/tmp/kura-bench-cs-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) {
      std::perror("mkdtemp");
      return 1;
    }
    dir = tmpl;
  }
  std::vector<entry> es;
  es.reserve(keys);
  for (size_t i = 0; i < keys; ++i)
    es.push_back(make(i));

  // -- digests --------------------------------------------------------------------
  memory_store ms;
  for (auto& e : es)
    ms.apply(e);
  std::vector<double> t_scan, t_kept;
  bool agree = true;
  for (int r = 0; r < runs; ++r) {
    double t0 = now_s();
    std::vector<uint64_t> scan(anti_entropy::fanout, 0);
    ms.for_each(
        [&](const entry& e) { scan[ms.position(e.key) >> 56] ^= replica_store::item_digest(e); });
    double t1 = now_s();
    auto kept = anti_entropy::level1(ms, anti_entropy::slot_mask{});
    double t2 = now_s();
    agree = agree && scan == kept;
    t_scan.push_back(t1 - t0);
    t_kept.push_back(t2 - t1);
  }

  // -- L3 put vs apply vs tier_store ----------------------------------------------------
  const kura::clock& clk = real_clock::instance();
  std::vector<double> t_put, t_apply, t_store, t_open;
  for (int r = 0; r < runs; ++r) {
    std::string base = dir + "/run" + std::to_string(r);
    fs::create_directories(base);
    {
      auto l3 = l3_lmdb::open(l3_at(base + "/put"), clk);
      if (!l3) {
        std::fprintf(stderr, "%s\n", l3.err().to_string().c_str());
        return 1;
      }
      double t0 = now_s();
      for (auto& e : es)
        if (!(*l3)->put(e, clk.now_ms()))
          return 1;
      (void)(*l3)->flush();
      t_put.push_back(now_s() - t0);
    }
    {
      auto l3 = l3_lmdb::open(l3_at(base + "/apply"), clk);
      if (!l3)
        return 1;
      double t0 = now_s();
      for (auto& e : es)
        if (!(*l3)->apply(e, clk.now_ms()))
          return 1;
      (void)(*l3)->flush();
      t_apply.push_back(now_s() - t0);
    }
    {
      auto s = tier_store::open(l3_at(base + "/ts-l3"), l4_at(base + "/ts-l4"), clk);
      if (!s)
        return 1;
      double t0 = now_s();
      for (auto& e : es)
        (*s)->apply(e);
      (void)(*s)->flush();
      t_store.push_back(now_s() - t0);
    }
    {
      double t0 = now_s();
      auto s = tier_store::open(l3_at(base + "/ts-l3"), l4_at(base + "/ts-l4"), clk);
      if (!s || (*s)->size() != keys)
        return 1;
      t_open.push_back(now_s() - t0);
    }
    fs::remove_all(base);
  }
  fs::remove_all(dir);

  double scan = median(t_scan), kept = median(t_kept);
  double put = median(t_put), apply = median(t_apply), store = median(t_store);
  std::printf(
      "kura-bench-cluster-store: %zu keys (100-byte values), medians of %d runs (wall time)\n\n",
      keys, runs);
  std::printf("| measure | median | per key | ratio |\n|---|---|---|---|\n");
  std::printf("| level-1 digest, scanning every key | %.3f ms | %.1f ns | 1 |\n", scan * 1e3,
              scan * 1e9 / static_cast<double>(keys));
  std::printf("| level-1 digest, kept incrementally | %.3f ms | - | %.4f (%.0fx faster)%s |\n",
              kept * 1e3, kept / scan, scan / kept, agree ? "" : " DISAGREE");
  std::printf("| L3 put | %.3f s | %.2f us | 1 |\n", put, put * 1e6 / static_cast<double>(keys));
  std::printf("| L3 apply (last-writer-wins) | %.3f s | %.2f us | %.2f |\n", apply,
              apply * 1e6 / static_cast<double>(keys), apply / put);
  std::printf("| tier_store apply (L3 + L4, index, digests) | %.3f s | %.2f us | %.2f |\n", store,
              store * 1e6 / static_cast<double>(keys), store / put);
  std::printf("| tier_store open (index + digests rebuilt) | %.3f s | %.2f us | - |\n",
              median(t_open), median(t_open) * 1e6 / static_cast<double>(keys));
  return agree ? 0 : 1;
}
