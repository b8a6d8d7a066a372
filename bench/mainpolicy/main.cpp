// kura-bench-mainpolicy: the measurement behind l2_lfu's choice of main-region
// policy. Simulates (keys only, objects counted) W-TinyLFU with a 1% window and
// strict admission, once with an SLRU main region (detail::policy_sim, what
// l2_lfu implements) and once with a sampled LFU with aging (Redis-style: evict
// the least frequent of 5 random main entries, frequency from the same aged
// count-min sketch), and prints both miss ratios at 1% and 10% of the distinct
// keys.
//
//   zstd -dc /work/shared/traces/web07.txt.zst > /tmp/web07.txt
//   build/bin/kura-bench-mainpolicy /tmp/web07.txt
//
// Input: one integer key per line, or CSV whose last field is the key.
#include "tiers/frequency_sketch.hpp"
#include "tiers/hash.hpp"
#include "tiers/policy_sim.hpp"
#include "tiers/random.hpp"
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <list>
#include <string>
#include <unordered_map>
#include <vector>
using namespace kura;
struct lfu_sim {
  uint32_t cap, wcap, mcap;
  frequency_sketch sk;
  rng r{1};
  std::list<uint64_t> window;
  std::unordered_map<uint64_t, std::list<uint64_t>::iterator> win;
  std::vector<uint64_t> main;
  std::unordered_map<uint64_t, size_t> pos;
  lfu_sim(uint32_t c) : cap(c), wcap(std::max<uint32_t>(1, c / 100)), mcap(c - wcap), sk(c) {}
  void main_erase(uint64_t k) {
    size_t i = pos[k];
    pos[main.back()] = i;
    main[i] = main.back();
    main.pop_back();
    pos.erase(k);
  }
  bool access(uint64_t h) {
    sk.increment(h);
    if (auto it = win.find(h); it != win.end()) {
      window.splice(window.begin(), window, it->second);
      return true;
    }
    if (pos.count(h))
      return true;
    window.push_front(h);
    win[h] = window.begin();
    if (window.size() > wcap) {
      uint64_t c = window.back();
      window.pop_back();
      win.erase(c);
      if (main.size() < mcap) {
        pos[c] = main.size();
        main.push_back(c);
        return false;
      }
      uint64_t v = 0;
      uint32_t vf = 99;
      for (int s = 0; s < 5; ++s) {
        uint64_t k = main[r.below(main.size())];
        uint32_t f = sk.frequency(k);
        if (f < vf) {
          vf = f;
          v = k;
        }
      }
      if (sk.frequency(c) > vf) {
        main_erase(v);
        pos[c] = main.size();
        main.push_back(c);
      }
    }
    return false;
  }
};
int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: kura-bench-mainpolicy DECOMPRESSED_TRACE\n");
    return 2;
  }
  std::ifstream in(argv[1]);
  if (!in) {
    std::fprintf(stderr, "kura-bench-mainpolicy: cannot open %s\n", argv[1]);
    return 2;
  }
  std::vector<uint64_t> keys;
  std::string l;
  std::unordered_map<uint64_t, int> d;
  while (std::getline(in, l)) {
    if (l.empty() || l[0] == 'v')
      continue;
    auto p = l.rfind(',');
    char* e = nullptr;
    std::string f = p == std::string::npos ? l : l.substr(p + 1);
    uint64_t k = std::strtoull(f.c_str(), &e, 10);
    if (e == f.c_str()) {
      std::fprintf(stderr, "kura-bench-mainpolicy: not a key: %s\n", l.c_str());
      return 2;
    }
    keys.push_back(hash64(std::to_string(k)));
    d[k];
  }
  for (double f : {0.01, 0.1}) {
    uint32_t c = std::max<uint32_t>(1, uint32_t(f * d.size() + 0.5));
    detail::policy_sim slru(c, std::max<uint32_t>(1, c / 100), 0, false);
    lfu_sim lfu(c);
    uint64_t m1 = 0, m2 = 0;
    for (auto h : keys) {
      m1 += !slru.access(h);
      m2 += !lfu.access(h);
    }
    std::printf("%s %.2f slru %.4f sampled-lfu %.4f\n", argv[1], f, double(m1) / keys.size(),
                double(m2) / keys.size());
  }
}
