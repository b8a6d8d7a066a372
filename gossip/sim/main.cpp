// kura-sim: runs seeded simulations of the cluster core and its checkers.
//   kura-sim --nodes N --seed-from S --seeds K [--faults none|loss|partition|crash|skew|all]
//            [--max-nodes M]   cycle cluster sizes N..M over the seeds
//            [--trace]         print each seed's fault timeline
//            [--jobs J]        run seeds on J threads (results do not depend on J)
//   kura-sim --bench           the tables of bench/RESULTS.md (gossip section)
// Exit status 0 only when every seed passed. The last line is the summary
// "K seeds, F failed, ..."; each failing seed is printed with the command that
// replays it.
#include "gossip/sim/bench.hpp"
#include "gossip/sim/sim.hpp"

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

using namespace kura::gossip;

namespace {

int usage() {
  std::fprintf(stderr, "usage: kura-sim --nodes N --seed-from S --seeds K "
                       "[--faults none|loss|partition|crash|skew|all] [--max-nodes M] [--trace]\n"
                       "       kura-sim --bench [--quick]\n");
  return 2;
}

bool parse_u64(const char* s, uint64_t& out) {
  char* end = nullptr;
  out = std::strtoull(s, &end, 10);
  return end && *end == '\0' && end != s;
}

} // namespace

int main(int argc, char** argv) {
  uint64_t nodes = 5, max_nodes = 0, seed_from = 1, seeds = 1, jobs = 1;
  sim::fault_mode faults = sim::fault_mode::all;
  bool trace = false, bench = false, quick = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&](uint64_t& out) { return i + 1 < argc && parse_u64(argv[++i], out); };
    if (a == "--nodes") {
      if (!val(nodes) || nodes < 1 || nodes > 100'000)
        return usage();
    } else if (a == "--max-nodes") {
      if (!val(max_nodes))
        return usage();
    } else if (a == "--seed-from") {
      if (!val(seed_from))
        return usage();
    } else if (a == "--seeds") {
      if (!val(seeds))
        return usage();
    } else if (a == "--faults") {
      if (i + 1 >= argc || !sim::parse_fault_mode(argv[++i], faults))
        return usage();
    } else if (a == "--jobs") {
      if (!val(jobs) || jobs < 1 || jobs > 256)
        return usage();
    } else if (a == "--trace") {
      trace = true;
    } else if (a == "--bench") {
      bench = true;
    } else if (a == "--quick") {
      quick = true;
    } else {
      return usage();
    }
  }
  if (bench)
    return sim::run_bench(quick);
  if (max_nodes < nodes)
    max_nodes = nodes;
  auto t0 = std::chrono::steady_clock::now();
  uint64_t failed = 0, acked = 0, messages = 0, detect_n = 0;
  int64_t worst_converge = 0, worst_detect = 0;
  std::mutex mu;
  std::atomic<uint64_t> next{0};
  auto worker = [&] {
    for (uint64_t k = next++; k < seeds; k = next++) {
      sim::options opt;
      opt.seed = seed_from + k;
      opt.nodes = static_cast<uint32_t>(nodes + k % (max_nodes - nodes + 1));
      opt.faults = faults;
      opt.trace = trace;
      if (trace)
        std::fprintf(stderr, "seed %llu (%u nodes, faults %s)\n",
                     static_cast<unsigned long long>(opt.seed), opt.nodes,
                     sim::to_string(faults));
      auto rep = sim::run(opt);
      std::lock_guard<std::mutex> lock(mu);
      acked += rep.acked_writes;
      messages += rep.messages;
      worst_converge = std::max(worst_converge, rep.converge_ms);
      if (rep.detect_ms >= 0) {
        ++detect_n;
        worst_detect = std::max(worst_detect, rep.detect_ms);
      }
      if (!rep.ok) {
        ++failed;
        std::printf("seed %llu FAILED (%u nodes, faults %s):\n",
                    static_cast<unsigned long long>(opt.seed), opt.nodes, sim::to_string(faults));
        for (auto& f : rep.failures)
          std::printf("  %s\n", f.c_str());
        std::printf("  replay: build/bin/kura-sim --nodes %u --seed-from %llu --seeds 1 --faults %s"
                    " --trace\n",
                    opt.nodes, static_cast<unsigned long long>(opt.seed), sim::to_string(faults));
        std::fflush(stdout);
      }
    }
  };
  std::vector<std::thread> pool;
  for (uint64_t j = 1; j < jobs; ++j)
    pool.emplace_back(worker);
  worker();
  for (auto& th : pool)
    th.join();
  double secs =
    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%llu seeds, %llu failed, nodes %llu-%llu, faults %s, %llu acked writes, "
              "%llu messages, worst convergence %.1f s after heal, worst crash detection %.1f s "
              "(%llu crashes), %s, %.1f s\n",
              static_cast<unsigned long long>(seeds), static_cast<unsigned long long>(failed),
              static_cast<unsigned long long>(nodes), static_cast<unsigned long long>(max_nodes),
              sim::to_string(faults), static_cast<unsigned long long>(acked),
              static_cast<unsigned long long>(messages), worst_converge / 1000.0,
              worst_detect / 1000.0, static_cast<unsigned long long>(detect_n),
              sim::describe_bounds(static_cast<uint32_t>(max_nodes)).c_str(), secs);
  return failed == 0 ? 0 : 1;
}
