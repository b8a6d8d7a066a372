// Used by tests/predictor/predictor_test.cpp ("a model saved before the flat key table"):
// built against main 08545a6 it wrote model-v2-main-08545a6.bin beside it.
//   g++ -std=c++17 -I. tests/predictor/data/gen.cpp
//     build/lib/libkura_predictor.a build/lib/libkura_tiers.a && ./a.out model.bin
// Writes a predictor model with the predictor core it is compiled against.
#include "predictor/predictor.hpp"
#include <cstdio>
#include <fstream>
#include <string>
using namespace kura::predictor;
int main(int argc, char** argv) {
  if (argc < 2)
    return 2; // usage: gen MODEL_FILE
  constexpr uint64_t monday = 1'699'833'600'000ull;
  predictor_config cfg;
  cfg.memory_bytes = 64 * 1024; // the key table holds ~40 keys: eviction happens
  predictor pr(cfg);
  for (int week = 0; week < 2; ++week)
    for (int d = 0; d < 7; ++d)
      for (int k = 0; k < 60; ++k) {
        const uint64_t t = monday + week * week_ms + d * day_ms + (8 + k % 3) * hour_ms + k * 1000;
        if (d < 5 || k % 2)
          for (int rep = 0; rep < 1 + k % 3; ++rep) {
            access_event e;
            std::string key = "m:" + std::to_string(k);
            e.key = key;
            e.time_ms = t + rep;
            e.size = 100 + k;
            pr.record(e);
          }
        if (k % 5 == 0)
          pr.record_write("m:" + std::to_string(k), t + 10, k % 10 ? 0 : 5000, 50);
      }
  pr.tick(monday + 2 * week_ms);
  std::ofstream(argv[1], std::ios::binary) << pr.serialize();
  std::printf("tracked %zu patterns %zu\n", pr.stats().tracked_keys, pr.stats().patterns);
  const uint64_t now = monday + 2 * week_ms + 7 * hour_ms;
  for (int k = 0; k < 60; ++k)
    if (auto p = pr.key_probability("m:" + std::to_string(k), now, now + hour_ms, now))
      std::printf("m:%d %.9f\n", k, *p);
}
