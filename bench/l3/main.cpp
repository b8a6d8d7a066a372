// kura-bench-l3: throughput and latency of the L3 tier (LMDB) on N entries.
//
//   build/bin/kura-bench-l3 [--entries 1000000] [--value-bytes 100] [--gets N]
//                           [--sync-entries 2000] [--batch 256] [--runs 1] [--dir PATH] [--csv]
//
// With --runs R every phase runs R times (each run on a fresh environment) and
// the printed row is the per-column median over the runs.
// Phases (each prints one row):
//   put_batched     N puts of 16-byte keys in shuffled order, group commit
//                   (batch --batch writes, fdatasync per batch: the default
//                   fsync_batches), then sync(); latency per put()
//   get_warm        --gets uniform random gets in the same open environment
//   get_reopen      close, open the environment again, --gets random gets
//                   (the kernel page cache still holds the file)
//   get_reopen_cold close, drop data.mdb from the page cache
//                   (fdatasync + posix_fadvise DONTNEED), open without
//                   verify_on_open (which would read every tree page and warm
//                   the cache), --gets gets: each first touch of a page is a
//                   disk read
//   put_sync        --sync-entries puts with sync_mode (commit + fsync each)
//   get_sync_env    --gets gets on that environment
//   put_batched_nosync  as put_batched with fsync_batches = false (MDB_NOSYNC:
//                   no fsync until sync(); safe against a killed process only)
//   open_unverified / open_verified  time of one open() of the N-entry
//                   environment without / with verify_on_open (page cache warm)
//   open_verified_cold  the same with verify_on_open after dropping the cache
// Latencies are exact quantiles of per-operation steady_clock samples.
#include "tiers/clock.hpp"
#include "tiers/l3_lmdb.hpp"
#include "tiers/random.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <string>
#include <unistd.h>
#include <vector>

using namespace kura;
namespace fs = std::filesystem;

namespace {

struct options {
  uint64_t entries = 1'000'000;
  size_t value_bytes = 100;
  uint64_t gets = 1'000'000;
  uint64_t sync_entries = 2000;
  size_t batch = 256;
  int runs = 1;
  std::string dir;
  bool csv = false;
};

uint64_t now_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

std::string key_of(uint64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "key:%012llu", static_cast<unsigned long long>(i));
  return buf;
}

struct row {
  std::string phase;
  uint64_t ops = 0;
  double seconds = 0;
  std::vector<uint32_t> lat_ns;
  uint64_t misses = 0;
};

/// One phase's numbers of one run.
struct summary {
  std::string phase;
  uint64_t ops = 0, misses = 0;
  double seconds = 0, tput = 0, p50 = 0, p99 = 0, p999 = 0;
};

double q_us(std::vector<uint32_t>& v, double q) {
  if (v.empty())
    return 0;
  size_t i = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(i), v.end());
  return v[i] / 1000.0;
}

summary summarize(row& r) {
  summary s;
  s.phase = r.phase;
  s.ops = r.ops;
  s.misses = r.misses;
  s.seconds = r.seconds;
  s.tput = r.seconds > 0 ? static_cast<double>(r.ops) / r.seconds : 0;
  s.p50 = q_us(r.lat_ns, 0.50);
  s.p99 = q_us(r.lat_ns, 0.99);
  s.p999 = q_us(r.lat_ns, 0.999);
  return s;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

/// Per-column median of the same phase over several runs.
summary median_of(const std::vector<summary>& runs) {
  summary m = runs.front();
  auto col = [&](double summary::*f) {
    std::vector<double> v;
    for (auto& r : runs)
      v.push_back(r.*f);
    return median(v);
  };
  m.seconds = col(&summary::seconds);
  m.tput = col(&summary::tput);
  m.p50 = col(&summary::p50);
  m.p99 = col(&summary::p99);
  m.p999 = col(&summary::p999);
  uint64_t miss = 0;
  for (auto& r : runs)
    miss = std::max(miss, r.misses);
  m.misses = miss;
  return m;
}

void print(const summary& r, bool csv) {
  double p50 = r.p50, p99 = r.p99, p999 = r.p999, tput = r.tput;
  if (csv)
    std::printf("%s,%llu,%.3f,%.0f,%.2f,%.2f,%.2f,%llu\n", r.phase.c_str(),
                static_cast<unsigned long long>(r.ops), r.seconds, tput, p50, p99, p999,
                static_cast<unsigned long long>(r.misses));
  else
    std::printf("%-16s %10llu %8.3f %12.0f %9.2f %9.2f %9.2f %8llu\n", r.phase.c_str(),
                static_cast<unsigned long long>(r.ops), r.seconds, tput, p50, p99, p999,
                static_cast<unsigned long long>(r.misses));
  std::fflush(stdout);
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "kura-bench-l3: %s\n", what.c_str());
  std::exit(1);
}

std::unique_ptr<l3_lmdb> open_or_die(const l3_config& c) {
  auto r = l3_lmdb::open(c, real_clock::instance());
  if (!r)
    die(r.err().to_string());
  return std::move(*r);
}

row run_gets(l3_lmdb& t, const char* phase, uint64_t n, uint64_t universe, uint64_t seed) {
  rng g(seed);
  row r;
  r.phase = phase;
  r.ops = n;
  r.lat_ns.reserve(n);
  std::vector<std::string> keys; // keys made outside the timed region
  keys.reserve(std::min<uint64_t>(n, 1u << 20));
  uint64_t total = 0;
  for (uint64_t done = 0; done < n;) {
    keys.clear();
    for (uint64_t i = 0; i < std::min<uint64_t>(n - done, 1u << 20); ++i)
      keys.push_back(key_of(g.below(universe)));
    uint64_t t0 = now_ns();
    for (auto& k : keys) {
      uint64_t a = now_ns();
      auto e = t.get(k, 0);
      uint64_t b = now_ns();
      if (!e)
        die("get: " + e.err().to_string());
      if (!*e)
        ++r.misses;
      r.lat_ns.push_back(static_cast<uint32_t>(std::min<uint64_t>(b - a, UINT32_MAX)));
    }
    total += now_ns() - t0;
    done += keys.size();
  }
  r.seconds = total / 1e9;
  return r;
}

row run_puts(l3_lmdb& t, const char* phase, uint64_t n, size_t value_bytes, uint64_t seed) {
  std::vector<uint64_t> order(n);
  for (uint64_t i = 0; i < n; ++i)
    order[i] = i;
  rng g(seed);
  for (uint64_t i = n; i > 1; --i)
    std::swap(order[i - 1], order[g.below(i)]);
  row r;
  r.phase = phase;
  r.ops = n;
  r.lat_ns.reserve(n);
  std::string value(value_bytes, 'v');
  uint64_t t0 = now_ns();
  for (uint64_t i : order) {
    entry e;
    e.key = key_of(i);
    e.value = value;
    std::memcpy(e.value.data(), &i, std::min<size_t>(8, value.size()));
    e.ver = version{i + 1, 1};
    uint64_t a = now_ns();
    auto st = t.put(std::move(e), 0);
    uint64_t b = now_ns();
    if (!st)
      die("put: " + st.message());
    r.lat_ns.push_back(static_cast<uint32_t>(std::min<uint64_t>(b - a, UINT32_MAX)));
  }
  if (auto st = t.sync(); !st)
    die("sync: " + st.message());
  r.seconds = (now_ns() - t0) / 1e9;
  return r;
}

void drop_page_cache(const std::string& file) {
  int fd = ::open(file.c_str(), O_RDONLY);
  if (fd < 0)
    die("open " + file + ": " + std::strerror(errno));
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

} // namespace

int main(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc)
        die("missing value after " + a);
      return argv[++i];
    };
    if (a == "--entries")
      o.entries = std::stoull(next());
    else if (a == "--value-bytes")
      o.value_bytes = std::stoull(next());
    else if (a == "--gets")
      o.gets = std::stoull(next());
    else if (a == "--sync-entries")
      o.sync_entries = std::stoull(next());
    else if (a == "--batch")
      o.batch = std::stoull(next());
    else if (a == "--runs")
      o.runs = std::max(1, std::stoi(next()));
    else if (a == "--dir")
      o.dir = next();
    else if (a == "--csv")
      o.csv = true;
    else if (a == "--help" || a == "-h") {
      std::printf("usage: kura-bench-l3 [--entries N] [--value-bytes B] [--gets N] "
                  "[--sync-entries N] [--batch N] [--runs R] [--dir PATH] [--csv]\n");
      return 0;
    } else
      die("unknown argument " + a);
  }
  if (o.entries == 0 || o.batch == 0)
    die("--entries and --batch must be positive");
  bool own_dir = o.dir.empty();
  if (own_dir) {
    char tmpl[] = "/tmp/kura-bench-l3-XXXXXX";
    if (!::mkdtemp(tmpl))
      die("mkdtemp failed");
    o.dir = tmpl;
  }
  std::string env_dir = o.dir + "/batched", sync_dir = o.dir + "/sync";

  if (o.csv)
    std::printf("phase,ops,seconds,ops_per_s,p50_us,p99_us,p999_us,misses\n");
  else
    std::printf("# kura-bench-l3 entries=%llu value_bytes=%zu batch=%zu gets=%llu runs=%d"
                " (rows: median over runs)\n"
                "%-16s %10s %8s %12s %9s %9s %9s %8s\n",
                static_cast<unsigned long long>(o.entries), o.value_bytes, o.batch,
                static_cast<unsigned long long>(o.gets), o.runs, "phase", "ops", "seconds", "ops/s",
                "p50_us", "p99_us", "p999_us", "misses");

  std::vector<std::vector<summary>> all; // [phase][run]
  auto record = [&](size_t idx, row& r) {
    if (all.size() <= idx)
      all.resize(idx + 1);
    all[idx].push_back(summarize(r));
    if (o.runs == 1)
      print(all[idx].back(), o.csv);
  };
  for (int run = 0; run < o.runs; ++run) {
    fs::remove_all(env_dir);
    fs::remove_all(sync_dir);
    l3_config c;
    c.path = env_dir;
    c.map_size = 16ull << 30;
    c.batch_max_writes = o.batch;
    uint64_t seed = 100 * static_cast<uint64_t>(run);
    {
      auto t = open_or_die(c);
      auto r = run_puts(*t, "put_batched", o.entries, o.value_bytes, seed + 1);
      record(0, r);
      auto g = run_gets(*t, "get_warm", o.gets, o.entries, seed + 2);
      record(1, g);
    }
    for (bool verify : {false, true}) { // time open() itself
      l3_config vc = c;
      vc.verify_on_open = verify;
      row r;
      r.phase = verify ? "open_verified" : "open_unverified";
      r.ops = 1;
      uint64_t a = now_ns();
      auto t = open_or_die(vc);
      uint64_t b = now_ns();
      r.seconds = (b - a) / 1e9;
      r.lat_ns.push_back(static_cast<uint32_t>(std::min<uint64_t>(b - a, UINT32_MAX)));
      record(verify ? 8 : 7, r);
    }
    {
      auto t = open_or_die(c);
      auto g = run_gets(*t, "get_reopen", o.gets, o.entries, seed + 3);
      record(2, g);
    }
    drop_page_cache(env_dir + "/data.mdb");
    {
      // verify_on_open would read every tree page and warm the cache again
      l3_config cc = c;
      cc.verify_on_open = false;
      auto t = open_or_die(cc);
      auto g = run_gets(*t, "get_reopen_cold", o.gets, o.entries, seed + 4);
      record(3, g);
      auto s = t->stats();
      if (run == 0)
        std::fprintf(
            stderr, "# l3 stats: entries=%llu bytes=%llu (%.1f per entry) budget_est=%llu\n",
            static_cast<unsigned long long>(s.entries), static_cast<unsigned long long>(s.bytes),
            static_cast<double>(s.bytes) / static_cast<double>(std::max<uint64_t>(1, s.entries)),
            static_cast<unsigned long long>(t->budget_bytes_used()));
    }
    drop_page_cache(env_dir + "/data.mdb");
    {
      row r;
      r.phase = "open_verified_cold";
      r.ops = 1;
      uint64_t a = now_ns();
      auto t = open_or_die(c);
      uint64_t b = now_ns();
      r.seconds = (b - a) / 1e9;
      r.lat_ns.push_back(static_cast<uint32_t>(std::min<uint64_t>(b - a, UINT32_MAX)));
      record(9, r);
    }
    if (o.sync_entries > 0) {
      l3_config sc = c;
      sc.path = sync_dir;
      sc.sync_mode = true;
      auto t = open_or_die(sc);
      auto r = run_puts(*t, "put_sync", o.sync_entries, o.value_bytes, seed + 5);
      record(4, r);
      auto g = run_gets(*t, "get_sync_env", std::min(o.gets, o.sync_entries * 100), o.sync_entries,
                        seed + 6);
      record(5, g);
    }
    {
      std::string nosync_dir = o.dir + "/nosync";
      fs::remove_all(nosync_dir);
      l3_config nc = c;
      nc.path = nosync_dir;
      nc.fsync_batches = false;
      auto t = open_or_die(nc);
      auto r = run_puts(*t, "put_batched_nosync", o.entries, o.value_bytes, seed + 7);
      record(6, r);
      t.reset();
      fs::remove_all(nosync_dir);
    }
  }
  if (o.runs > 1)
    for (auto& runs : all)
      print(median_of(runs), o.csv);
  if (own_dir)
    fs::remove_all(o.dir);
  return 0;
}
