// kura-bench-memory: bytes per entry of L1+L2 (memory_cache) and in-process
// single-thread throughput on hits.
//
//   kura-bench-memory [--entries N] [--runs R] [--ops N] [--returning] [--shard-only]
//
// --returning: memory_cache_config::returning_keys on (the ghost history of
// recently read keys, memory_cache.cpp), for both parts.
// Part 1 (memory): N entries (default 1M) of 10-byte keys and 32-byte values
// are put into a memory_cache big enough to hold them all, in a forked child
// per variant, and we report
//   * RSS growth (from /proc/self/statm) / N  -- what the process really paid;
//   * stats().bytes / N                       -- the tier's own accounting
//     (nodes + index + sketch + shadow simulations);
//   * L1+L2 bytes / N                         -- nodes + index only.
// Variants: entries without version/expiry, with a version (hlc + node id), and
// a std::unordered_map<std::string, std::string> holding the same data as a
// reference point.
// Part 2 (throughput): on the 1M-entry cache, uniformly random hits through
// visit() (zero-copy), get() (copies the entry) and put() (overwrite of a
// resident key), R runs of `ops` operations each; the median ops/s is printed
// beside the same operations on std::unordered_map, and the ratio.
// Part 3 (hits in a shard shaped like kura-node's, where the shadow
// simulations sample far more of the reads than at 1M entries): 1 KiB values,
// uniformly random visit() hits over the resident keys, R runs of `ops`, in
//   * "not full": 16,384 entries in a 64 MiB shard (kura-node's default 256 MiB
//     over 4 shards, filled by `redis-benchmark -r 100000 -d 1024`);
//   * "full": 32,768 keys put into a 16 MiB shard (about half stay resident;
//     the simulations have seen evictions), hits over the resident ones;
// each with the default cache (shadow adaptation) and with adaptation off (a
// fixed setting, no simulations) interleaved run by run, as a floor. Timed
// by the thread's CPU time, which a loaded machine disturbs less than the
// wall clock (it still shares caches and memory bandwidth).
// --shard-only runs part 3 alone.
#include "tiers/memory_cache.hpp"
#include "tiers/random.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

uint64_t rss_bytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f)
    return 0;
  unsigned long size = 0, resident = 0;
  if (std::fscanf(f, "%lu %lu", &size, &resident) != 2)
    resident = 0;
  std::fclose(f);
  return static_cast<uint64_t>(resident) * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

std::vector<std::string> make_keys(uint64_t n) {
  std::vector<std::string> keys;
  keys.reserve(n);
  char buf[32];
  for (uint64_t i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof buf, "k%09llu", static_cast<unsigned long long>(i));
    keys.emplace_back(buf);
  }
  return keys;
}

const std::string value32(32, 'v');
bool g_returning = false;

kura::memory_cache_config big_config() {
  kura::memory_cache_config cfg;
  cfg.capacity_bytes = 4ull << 30; // room for everything: nothing is evicted
  cfg.returning_keys = g_returning;
  return cfg;
}

struct memory_result {
  double rss_per_entry = 0;
  double tier_per_entry = 0;
  double l1l2_per_entry = 0;
  uint64_t entries = 0;
};

// Runs `f` in a child process and returns what it wrote into the pipe.
template <class F>
memory_result in_child(F f) {
  int fd[2];
  if (pipe(fd) != 0)
    return {};
  pid_t pid = fork();
  if (pid == 0) {
    close(fd[0]);
    memory_result r = f();
    ssize_t w = write(fd[1], &r, sizeof r);
    _exit(w == sizeof r ? 0 : 1);
  }
  close(fd[1]);
  memory_result r;
  ssize_t got = read(fd[0], &r, sizeof r);
  close(fd[0]);
  int st = 0;
  waitpid(pid, &st, 0);
  if (got != sizeof r)
    return {};
  return r;
}

memory_result measure_kura(const std::vector<std::string>& keys, bool with_version) {
  const uint64_t before = rss_bytes();
  kura::memory_cache m(big_config());
  for (size_t i = 0; i < keys.size(); ++i) {
    kura::entry e;
    e.key = keys[i];
    e.value = value32;
    if (with_version)
      e.ver = kura::version{kura::version::make_hlc(1'700'000'000'000ull + i, 0), 7};
    (void)m.put(std::move(e), 0);
  }
  // A few reads: the shadow simulations are built on the first read, and they
  // belong to the cost of a serving cache.
  for (size_t i = 0; i < 10; ++i)
    (void)m.get(keys[i * 997 % keys.size()], 0);
  const uint64_t after = rss_bytes();
  auto s = m.stats();
  memory_result r;
  r.entries = s.entries;
  const double n = static_cast<double>(keys.size());
  r.rss_per_entry = static_cast<double>(after - before) / n;
  r.tier_per_entry = static_cast<double>(s.bytes) / n;
  r.l1l2_per_entry = static_cast<double>(m.l1_stats().bytes + m.l2_stats().bytes) / n;
  return r;
}

memory_result measure_map(const std::vector<std::string>& keys) {
  const uint64_t before = rss_bytes();
  std::unordered_map<std::string, std::string> map;
  for (const auto& k : keys)
    map.emplace(k, value32);
  const uint64_t after = rss_bytes();
  memory_result r;
  r.entries = map.size();
  r.rss_per_entry = static_cast<double>(after - before) / static_cast<double>(keys.size());
  return r;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

template <class F>
double ops_per_sec(uint64_t ops, F f) {
  auto t0 = std::chrono::steady_clock::now();
  f();
  auto t1 = std::chrono::steady_clock::now();
  return static_cast<double>(ops) / std::chrono::duration<double>(t1 - t0).count();
}

// Operations per second of this thread's CPU time (not wall time): on a
// shared, loaded machine the wall clock also counts the time other processes
// ran on our core.
template <class F>
double ops_per_cpu_sec(uint64_t ops, F f) {
  auto cpu = [] {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
  };
  const double t0 = cpu();
  f();
  return static_cast<double>(ops) / (cpu() - t0);
}

// Part 3: visit() hits in a kura-node-shaped shard, shadow adaptation on and off.
int shard_hits(int runs, uint64_t ops) {
  struct shape {
    const char* name;
    uint64_t keys;
    uint64_t capacity;
  };
  const shape shapes[] = {{"not full", 16384, 64ull << 20}, {"full", 32768, 16ull << 20}};
  const std::string value(1024, 'v');
  std::printf("# throughput on visit() hits in a kura-node-like shard, 1 KiB values, median of "
              "%d runs x %llu ops, per second of thread CPU time\n",
              runs, static_cast<unsigned long long>(ops));
  std::printf("shard,resident,shadow_ops_per_s,fixed_ops_per_s,shadow_to_fixed\n");
  uint64_t sink = 0;
  for (const shape& sp : shapes) {
    const auto keys = make_keys(sp.keys);
    kura::memory_cache_config cfg;
    cfg.capacity_bytes = sp.capacity;
    cfg.returning_keys = g_returning;
    kura::memory_cache shadow(cfg);
    cfg.adaptive_window = false;
    kura::memory_cache fixed(cfg);
    kura::rng fill(7);
    for (kura::memory_cache* m : {&shadow, &fixed}) {
      for (const auto& k : keys) {
        kura::entry e;
        e.key = k;
        e.value = value;
        (void)m->put(std::move(e), 0);
      }
      // Some reads of random keys, as a node's clients would make, so the
      // simulations are built and running; a miss is put back (read-through).
      for (uint64_t i = 0; i < 4 * sp.keys; ++i) {
        const auto& k = keys[fill.below(keys.size())];
        if (!m->visit(k, 0,
                      [&](const kura::memory_cache::entry_view& v) { sink += v.value.size(); })) {
          kura::entry e;
          e.key = k;
          e.value = value;
          (void)m->put(std::move(e), 0);
        }
      }
    }
    // Hits only: keys resident in both caches.
    std::vector<std::string> resident;
    for (const auto& k : keys)
      if (shadow.locate(k) != kura::memory_region::none &&
          fixed.locate(k) != kura::memory_region::none)
        resident.push_back(k);
    if (resident.empty())
      continue;
    std::vector<double> a, b;
    for (int r = 0; r < runs; ++r) {
      for (kura::memory_cache* m : {&shadow, &fixed}) {
        kura::rng g(static_cast<uint64_t>(r) + 11);
        const double x = ops_per_cpu_sec(ops, [&] {
          for (uint64_t i = 0; i < ops; ++i)
            m->visit(resident[g.below(resident.size())], 0,
                     [&](const kura::memory_cache::entry_view& v) { sink += v.value.size(); });
        });
        (m == &shadow ? a : b).push_back(x);
      }
    }
    std::printf("%s,%zu,%.0f,%.0f,%.2f\n", sp.name, resident.size(), median(a), median(b),
                median(a) / median(b));
  }
  return sink == 42 ? 1 : 0; // keep `sink` alive
}

} // namespace

int main(int argc, char** argv) {
  uint64_t n = 1'000'000, ops = 2'000'000;
  int runs = 5;
  bool shard_only = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--entries" && i + 1 < argc)
      n = std::stoull(argv[++i]);
    else if (a == "--runs" && i + 1 < argc)
      runs = std::stoi(argv[++i]);
    else if (a == "--ops" && i + 1 < argc)
      ops = std::stoull(argv[++i]);
    else if (a == "--returning")
      g_returning = true;
    else if (a == "--shard-only")
      shard_only = true;
    else {
      std::fprintf(stderr, "usage: kura-bench-memory [--entries N] [--runs R] [--ops N] "
                           "[--returning] [--shard-only]\n");
      return 2;
    }
  }
  if (n == 0 || n > 999'999'999 || runs <= 0 || ops == 0) {
    std::fprintf(stderr, "kura-bench-memory: --entries (at most 999999999, keys are 10 bytes), "
                         "--runs and --ops must be positive\n");
    return 2;
  }
  if (shard_only)
    return shard_hits(runs, ops);
  const auto keys = make_keys(n);

  std::printf("# memory: %llu entries, 10-byte keys, 32-byte values%s\n",
              static_cast<unsigned long long>(n), g_returning ? ", returning keys on" : "");
  std::printf("variant,entries,rss_bytes_per_entry,accounted_bytes_per_entry,"
              "l1l2_bytes_per_entry\n");
  auto a = in_child([&] { return measure_kura(keys, false); });
  std::printf("kura (no version),%llu,%.1f,%.1f,%.1f\n", static_cast<unsigned long long>(a.entries),
              a.rss_per_entry, a.tier_per_entry, a.l1l2_per_entry);
  auto b = in_child([&] { return measure_kura(keys, true); });
  std::printf("kura (with version),%llu,%.1f,%.1f,%.1f\n",
              static_cast<unsigned long long>(b.entries), b.rss_per_entry, b.tier_per_entry,
              b.l1l2_per_entry);
  auto c = in_child([&] { return measure_map(keys); });
  std::printf("std::unordered_map<string,string>,%llu,%.1f,-,-\n",
              static_cast<unsigned long long>(c.entries), c.rss_per_entry);
  std::fflush(stdout);

  // -- throughput on hits -----------------------------------------------------------
  kura::memory_cache m(big_config());
  std::unordered_map<std::string, std::string> map;
  for (const auto& k : keys) {
    kura::entry e;
    e.key = k;
    e.value = value32;
    (void)m.put(std::move(e), 0);
    map.emplace(k, value32);
  }
  std::vector<double> visit_r, get_r, put_r, map_get_r, map_put_r;
  uint64_t sink = 0;
  for (int r = 0; r < runs; ++r) {
    kura::rng g(static_cast<uint64_t>(r) + 1);
    visit_r.push_back(ops_per_sec(ops, [&] {
      for (uint64_t i = 0; i < ops; ++i)
        m.visit(keys[g.below(n)], 0,
                [&](const kura::memory_cache::entry_view& v) { sink += v.value.size(); });
    }));
    get_r.push_back(ops_per_sec(ops, [&] {
      for (uint64_t i = 0; i < ops; ++i) {
        auto e = m.get(keys[g.below(n)], 0);
        sink += e.ok() && e->has_value() ? (*e)->value.size() : 0;
      }
    }));
    put_r.push_back(ops_per_sec(ops, [&] {
      for (uint64_t i = 0; i < ops; ++i) {
        kura::entry e;
        e.key = keys[g.below(n)];
        e.value = value32;
        sink += m.put(std::move(e), 0).ok();
      }
    }));
    map_get_r.push_back(ops_per_sec(ops, [&] {
      for (uint64_t i = 0; i < ops; ++i) {
        auto it = map.find(keys[g.below(n)]);
        sink += it != map.end() ? it->second.size() : 0;
      }
    }));
    map_put_r.push_back(ops_per_sec(ops, [&] {
      for (uint64_t i = 0; i < ops; ++i)
        map[keys[g.below(n)]] = value32;
    }));
  }
  const auto st = m.stats();
  std::printf("# throughput on hits, single thread, median of %d runs x %llu ops "
              "(cache holds %llu entries)\n",
              runs, static_cast<unsigned long long>(ops),
              static_cast<unsigned long long>(st.entries));
  std::printf("operation,kura_ops_per_s,unordered_map_ops_per_s,ratio\n");
  const double mg = median(map_get_r), mp = median(map_put_r);
  std::printf("visit (zero-copy hit),%.0f,%.0f,%.2f\n", median(visit_r), mg, median(visit_r) / mg);
  std::printf("get (copying hit),%.0f,%.0f,%.2f\n", median(get_r), mg, median(get_r) / mg);
  std::printf("put (overwrite),%.0f,%.0f,%.2f\n", median(put_r), mp, median(put_r) / mp);
  std::fflush(stdout);
  return shard_hits(runs, ops) + (sink == 42 ? 1 : 0); // keep `sink` alive
}
