// kura-bench-crypt: what encryption at rest (kura.security.encryption-key-file)
// costs. L3: puts (group commit) and gets after a reopen; L4: puts + flush,
// gets, and the archive's stored/raw ratio per codec. Each measurement runs
// plaintext and encrypted alternately, `rounds` times, and reports medians and
// the encrypted/plaintext ratio (the machine is shared: compare ratios).
//   build/bin/kura-bench-crypt [--entries N] [--rounds R] [--dir PATH]
#include "archive/archive.hpp"
#include "tiers/clock.hpp"
#include "tiers/l3_lmdb.hpp"
#include "tiers/seal.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

using namespace kura;

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

/// A JSON-ish value of about `n` bytes (compresses like cache payloads do).
std::string value_of(uint64_t i, size_t n, std::mt19937_64& rng) {
  static const char* words[] = {"user",  "session", "cart",   "item", "price", "currency",
                                "EUR",   "true",    "false",  "name", "city",  "Berlin",
                                "Tokyo", "status",  "active", "count"};
  std::string v = "{\"id\":" + std::to_string(i);
  while (v.size() < n) {
    v += ",\"";
    v += words[rng() % 16];
    v += "\":\"";
    v += words[rng() % 16];
    v += std::to_string(rng() % 1000);
    v += "\"";
  }
  v += "}";
  return v;
}

std::string key_of(uint64_t i) {
  return "bench:user:" + std::to_string(i * 2654435761u % 100000007u);
}

void die(const std::string& what) {
  std::fprintf(stderr, "kura-bench-crypt: %s\n", what.c_str());
  std::exit(1);
}

struct l3_result {
  double put_ops = 0, get_ops = 0;
};

l3_result run_l3(const std::string& dir, std::shared_ptr<const crypto::keyring> kr, size_t n,
                 const std::vector<std::string>& vals) {
  std::filesystem::remove_all(dir);
  l3_result r;
  l3_config c;
  c.path = dir;
  c.map_size = 4ull << 30;
  c.fsync_batches = false;
  c.keys = kr;
  auto& clk = real_clock::instance();
  {
    auto l3 = l3_lmdb::open(c, clk);
    if (!l3)
      die(l3.err().to_string());
    double t0 = now_s();
    for (size_t i = 0; i < n; ++i) {
      entry e;
      e.key = key_of(i);
      e.value = vals[i % vals.size()];
      if (auto st = (*l3)->put(std::move(e), 0); !st)
        die(st.message());
    }
    if (auto st = (*l3)->sync(); !st)
      die(st.message());
    r.put_ops = static_cast<double>(n) / (now_s() - t0);
  }
  auto l3 = l3_lmdb::open(c, clk);
  if (!l3)
    die(l3.err().to_string());
  std::mt19937_64 rng(7);
  double t0 = now_s();
  for (size_t i = 0; i < n; ++i) {
    auto g = (*l3)->get(key_of(rng() % n), 0, false);
    if (!g || !g->has_value())
      die("L3 lost a key");
  }
  r.get_ops = static_cast<double>(n) / (now_s() - t0);
  return r;
}

struct l4_result {
  double put_ops = 0, get_ops = 0, ratio = 0;
};

l4_result run_l4(const std::string& dir, std::shared_ptr<const crypto::keyring> kr, size_t n,
                 const std::vector<std::string>& vals, archive::codec_id codec) {
  std::filesystem::remove_all(dir);
  l4_result r;
  archive::archive_config c;
  c.path = dir;
  c.codec = codec;
  c.level = codec == archive::codec_id::lz4 ? 0 : 3;
  c.durable = false;
  c.index_map_bytes = 4ull << 30;
  c.keys = kr;
  auto& clk = real_clock::instance();
  auto ar = archive::archive::open(c, clk);
  if (!ar)
    die(ar.err().to_string());
  double t0 = now_s();
  for (size_t i = 0; i < n; ++i) {
    entry e;
    e.key = key_of(i);
    e.value = vals[i % vals.size()];
    if (auto st = (*ar)->put(std::move(e), clk.now_ms()); !st)
      die(st.message());
  }
  if (auto st = (*ar)->flush(); !st)
    die(st.message());
  r.put_ops = static_cast<double>(n) / (now_s() - t0);
  r.ratio = (*ar)->inspect().ratio();
  std::mt19937_64 rng(9);
  size_t gets = std::min<size_t>(n, 20000);
  t0 = now_s();
  for (size_t i = 0; i < gets; ++i) {
    auto g = (*ar)->get(key_of(rng() % n), clk.now_ms());
    if (!g || !g->has_value())
      die("L4 lost a key");
  }
  r.get_ops = static_cast<double>(gets) / (now_s() - t0);
  return r;
}

} // namespace

int main(int argc, char** argv) {
  size_t n = 100000;
  int rounds = 3;
  std::string dir = "/tmp/kura-bench-crypt";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--entries" && i + 1 < argc)
      n = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--rounds" && i + 1 < argc)
      rounds = std::atoi(argv[++i]);
    else if (a == "--dir" && i + 1 < argc)
      dir = argv[++i];
    else {
      std::fprintf(stderr, "usage: kura-bench-crypt [--entries N] [--rounds R] [--dir PATH]\n");
      return a == "--help" ? 0 : 2;
    }
  }
  std::filesystem::create_directories(dir);
  auto kr = crypto::keyring::from_keys({{1, crypto::random_bytes(32)}});
  if (!kr)
    die(kr.err().to_string());
  std::mt19937_64 rng(42);
  std::vector<std::string> vals;
  for (int i = 0; i < 1024; ++i)
    vals.push_back(value_of(static_cast<uint64_t>(i), 100 + rng() % 900, rng));
  std::printf("kura-bench-crypt: %zu entries, values 100..1000 B JSON-like, %d rounds, "
              "plaintext and encrypted alternating\n\n",
              n, rounds);

  std::vector<double> pp, pe, gp, ge;
  for (int r = 0; r < rounds; ++r) {
    auto a = run_l3(dir + "/l3-plain", nullptr, n, vals);
    auto b = run_l3(dir + "/l3-enc", *kr, n, vals);
    pp.push_back(a.put_ops), pe.push_back(b.put_ops);
    gp.push_back(a.get_ops), ge.push_back(b.get_ops);
  }
  std::printf("%-28s %14s %14s %8s\n", "L3 (median ops/s)", "plaintext", "encrypted", "enc/pt");
  std::printf("%-28s %14.0f %14.0f %8.3f\n", "put (group commit, sync)", median(pp), median(pe),
              median(pe) / median(pp));
  std::printf("%-28s %14.0f %14.0f %8.3f\n", "get (after reopen)", median(gp), median(ge),
              median(ge) / median(gp));
  std::printf("\n%-28s %14s %14s %8s\n", "L4 (median)", "plaintext", "encrypted", "enc/pt");
  for (auto codec : {archive::codec_id::lz4, archive::codec_id::zstd}) {
    std::vector<double> ap, ae, bp, be, rp, re;
    for (int r = 0; r < rounds; ++r) {
      auto a = run_l4(dir + "/l4-plain", nullptr, n, vals, codec);
      auto b = run_l4(dir + "/l4-enc", *kr, n, vals, codec);
      ap.push_back(a.put_ops), ae.push_back(b.put_ops);
      bp.push_back(a.get_ops), be.push_back(b.get_ops);
      rp.push_back(a.ratio), re.push_back(b.ratio);
    }
    std::string c = archive::to_string(codec);
    std::printf("%-28s %14.0f %14.0f %8.3f\n", (c + " put ops/s").c_str(), median(ap), median(ae),
                median(ae) / median(ap));
    std::printf("%-28s %14.0f %14.0f %8.3f\n", (c + " get ops/s").c_str(), median(bp), median(be),
                median(be) / median(bp));
    std::printf("%-28s %14.4f %14.4f %8.3f\n", (c + " stored/raw").c_str(), median(rp), median(re),
                median(re) / median(rp));
  }
  std::filesystem::remove_all(dir);
  return 0;
}
