// What the predictor's tap costs the cluster store's hot path
// (gossip::tier_store::get and apply, issue 12: "as small as the store's
// tap"), in one process, without the network: the same store (L3 in a temp
// dir, background commits as kura-node runs it, a read cache holding every
// key) with no tap and with the node's tap (actors/predictor_cluster_tap.hpp,
// 1 in 8 sampled), interleaved round by round. Per round and mode: the
// thread CPU time per get() of a key the read cache holds (the common case
// of a cluster GET served here) and per apply() of a new version (a SET this
// node stores). The tap's batch is taken (as the node's tick does) between
// rounds. Prints the medians and the with/without ratios.
//   build/bin/kura-bench-cluster-tap [--keys 20000] [--rounds 9] [--reads 2000000]
//                                    [--max-event-rate 2500]   (0: every 8th access sampled)
//                                    [--aa 1]   (A/A: no tap in either pass)
#include "actors/predictor_cluster_tap.hpp"
#include "gossip/tier_store.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <string>
#include <vector>

using namespace kura;

namespace {

double cpu_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

} // namespace

int main(int argc, char** argv) {
  size_t keys = 20000, rounds = 9, reads = 2000000;
  uint32_t max_rate = 2500;
  bool aa = false; // --aa 1: the "with" passes run without the tap too (the noise of the method)
  for (int i = 1; i + 1 < argc; i += 2) {
    size_t v = std::strtoull(argv[i + 1], nullptr, 10);
    if (!std::strcmp(argv[i], "--keys"))
      keys = v;
    else if (!std::strcmp(argv[i], "--rounds"))
      rounds = v;
    else if (!std::strcmp(argv[i], "--reads"))
      reads = v;
    else if (!std::strcmp(argv[i], "--aa"))
      aa = v != 0;
    else if (!std::strcmp(argv[i], "--max-event-rate"))
      max_rate = static_cast<uint32_t>(v);
  }
  char tmpl[] = "/tmp/kura-bench-cluster-tap-XXXXXX";
  if (!::mkdtemp(tmpl))
    return 1;
  const std::string dir = tmpl;
  real_clock clk;
  l3_config c;
  c.path = dir + "/l3";
  c.map_size = 1ull << 30;
  c.fsync_batches = false;
  auto opened = gossip::tier_store::open(c, nullptr, clk, gossip::ring_config{}.seed, true);
  if (!opened) {
    std::fprintf(stderr, "cannot open the store: %s\n", opened.err().to_string().c_str());
    return 1;
  }
  auto& s = **opened;
  s.set_read_cache(256ull << 20);
  std::vector<std::string> names;
  for (size_t k = 0; k < keys; ++k)
    names.push_back("user:" + std::to_string(k) + ":profile");
  const std::string value(100, 'v');
  uint64_t hlc = 1;
  auto write_all = [&] {
    for (auto& k : names) {
      entry e;
      e.key = k;
      e.value = value;
      e.ver = version{++hlc, 1};
      (void)s.apply(e);
    }
  };
  write_all();           // every key in the read cache (write-through)
  actors::tap_config tc; // kura-node's defaults (actors/predictor.hpp, predictor_settings)
  tc.sample_one_in = 8;
  tc.max_events_per_second = max_rate;
  actors::cluster_tap tap(tc);
  std::vector<double> get_ns[2], apply_ns[2];
  size_t sink = 0;
  for (size_t r = 0; r < rounds; ++r)
    for (int pass = 0; pass < 2; ++pass) {
      const int with = (r % 2 == 0) ? pass : 1 - pass; // alternate the order
      s.set_tap(with && !aa ? &tap : nullptr);
      double t0 = cpu_ns();
      for (size_t i = 0; i < reads; ++i)
        sink += s.get(names[i % keys])->value.size();
      double t1 = cpu_ns();
      write_all();
      double t2 = cpu_ns();
      get_ns[with].push_back((t1 - t0) / static_cast<double>(reads));
      apply_ns[with].push_back((t2 - t1) / static_cast<double>(keys));
      (void)tap.tap().take(); // the tick's shipment
      (void)s.tick();
    }
  s.set_tap(nullptr);
  (void)s.flush();
  std::printf("keys %zu, rounds %zu, reads per round %zu, tap 1 in %u, at most %u events/s, "
              "%llu sampled, %llu dropped (sink %zu)\n\n",
              keys, rounds, reads, tc.sample_one_in, max_rate,
              static_cast<unsigned long long>(tap.tap().sampled()),
              static_cast<unsigned long long>(tap.tap().dropped()), sink % 10);
  // the two passes of a round ran back to back: their ratio is the steadier figure
  auto per_round = [](const std::vector<double>& with, const std::vector<double>& without) {
    std::vector<double> r;
    for (size_t i = 0; i < with.size() && i < without.size(); ++i)
      r.push_back(with[i] / without[i]);
    return median(r);
  };
  auto best = [](const std::vector<double>& v) {
    return v.empty() ? 0.0 : *std::min_element(v.begin(), v.end());
  };
  std::printf("| call | without tap ns (median) | with tap ns (median) | with/without | "
              "with/without, median of rounds | without, best | with, best | best/best |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  const double g0 = median(get_ns[0]), g1 = median(get_ns[1]);
  const double a0 = median(apply_ns[0]), a1 = median(apply_ns[1]);
  std::printf("| get (read-cache hit) | %.1f | %.1f | %.3f | %.3f | %.1f | %.1f | %.3f |\n", g0, g1,
              g1 / g0, per_round(get_ns[1], get_ns[0]), best(get_ns[0]), best(get_ns[1]),
              best(get_ns[1]) / best(get_ns[0]));
  std::printf("| apply (new version) | %.1f | %.1f | %.3f | %.3f | %.1f | %.1f | %.3f |\n", a0, a1,
              a1 / a0, per_round(apply_ns[1], apply_ns[0]), best(apply_ns[0]), best(apply_ns[1]),
              best(apply_ns[1]) / best(apply_ns[0]));
  opened->reset();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return 0;
}
