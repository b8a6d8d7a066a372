// kura-bench-hitratio: replays a real cache trace through L1+L2 (memory_cache)
// and prints its miss ratio beside a plain LRU and Belady's offline optimum.
//
//   kura-bench-hitratio --trace FILE [--sizes 0.01,0.1] [--csv] [--bytes]
//                       [--extra] [--window F] [--returning]
//                       [--fixed W,M,MAIN,AGING] [--start W,M,MAIN,AGING]
//                       [--periods FILE] [--period-misses FILE]
//                       [--reference ../shared/traces/reference.csv]
//
// FILE: one integer key per line, or the cloudPhysicsIO CSV
// `version,time,op,size,lbn` (key = lbn; chosen by --csv, a `.csv` in the file
// name or a `version,` header); either may be zstd-compressed (decompressed
// in-process). Capacity = the fraction of the trace's distinct keys (objects
// counted, each entry costs 1), or with --bytes the fraction of the distinct
// bytes (the first size seen per key) with byte-sized objects; kura then
// charges its real per-entry overhead (node, index, sketch) against that
// capacity while LRU and Belady count only the object sizes.
// Capacity = floor(share x distinct), at least 1, as libCacheSim computes it.
// --returning: the kura rows run with memory_cache_config::returning_keys on
// (a ghost history of recently read keys; off by default, see memory_cache.cpp).
// A key-per-line file may carry a size as a second integer (`key size`, the
// adaptsize-request format); --bytes then uses it.
// Output: `trace,size,policy,requests,misses,miss_ratio,best_ref,
// best_ref_miss_ratio,delta,lru_miss_ratio,delta_lru` rows for kura, lru and
// belady (and with --extra: kura-static, plain W-TinyLFU with a fixed 1% window
// and strict admission; kura-hc, the same with Caffeine's hill climbing; and
// kura-w<F>, a fixed window F with the default margin, for --window F).
// --fixed W,M,MAIN,AGING adds a `kura-fixed` row: kura without adaptation, at
// one setting of the shadow grid (window share W, admission margin M of -1..1,
// main region MAIN = slru | promote | lfu | ghost (SLRU with ghost admission),
// sketch aging AGING x capacity), e.g.
// `--fixed 0.2,-1,lfu,20`: what the adaptation would reach on a trace if it
// knew the best setting from the first request.
// --start W,M,MAIN,AGING: the `kura` row (adaptive) starts at that setting
// instead of memory_cache_config's default start (plain LRU: 1,0,promote,10).
// --periods FILE: for the `kura` row, writes one CSV row per decision period
// of the shadow adaptation to FILE (`trace,size,period,sampling_shift,setting,
// cache_misses,setting_misses,best,best_misses,switched,next`; settings in the
// --fixed spelling, quoted; misses counted on the period's sampled reads, see
// memory_cache::period_report): where the adaptation paid for choosing, and
// where for switching (cache_misses above setting_misses).
// --period-misses FILE: for the `kura` row, one CSV row per decision period
// with every grid setting's simulated misses (`trace,size,period,` then one
// column per setting of memory_cache::shadow_grid(), named in the --fixed
// spelling): replays of other decision rules offline, and which fixed setting
// the cache trailed where.
// best_ref is the published policy (Belady excluded) with the lowest miss ratio
// for this trace and size in reference.csv (`trace,size,policy,miss_ratio`),
// delta = miss_ratio - best_ref_miss_ratio; lru_miss_ratio is plain LRU's from
// this run and delta_lru = miss_ratio - lru_miss_ratio. Without a reference
// entry (or with --bytes: the references count objects) the three reference
// columns are `-`. The default --reference is relative to the repository root
// of /work/main; when it does not exist, reference.csv next to the trace is
// used.
#include "tiers/memory_cache.hpp"

#include <zstd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <list>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

struct trace {
  std::string name;
  std::vector<uint64_t> keys;
  std::vector<uint32_t> sizes; // empty unless the trace has sizes
  uint64_t distinct = 0;
  uint64_t distinct_bytes = 0;
};

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "kura-bench-hitratio: %s\n", msg.c_str());
  std::exit(2);
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    die("cannot open " + path);
  std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (raw.size() < 4 || std::memcmp(raw.data(), "\x28\xb5\x2f\xfd", 4) != 0)
    return raw;
  // zstd: stream-decompress (the frame may not record its content size).
  std::string out;
  ZSTD_DStream* ds = ZSTD_createDStream();
  ZSTD_initDStream(ds);
  std::vector<char> buf(ZSTD_DStreamOutSize());
  ZSTD_inBuffer inb{raw.data(), raw.size(), 0};
  while (inb.pos < inb.size) {
    ZSTD_outBuffer outb{buf.data(), buf.size(), 0};
    size_t r = ZSTD_decompressStream(ds, &outb, &inb);
    if (ZSTD_isError(r)) {
      ZSTD_freeDStream(ds);
      die(path + ": zstd: " + ZSTD_getErrorName(r));
    }
    out.append(buf.data(), outb.pos);
    if (r == 0 && inb.pos == inb.size)
      break;
  }
  ZSTD_freeDStream(ds);
  return out;
}

trace load(const std::string& path, bool force_csv) {
  trace t;
  std::string base = path.substr(path.find_last_of('/') + 1);
  t.name = base.substr(0, base.find('.'));
  std::string data = read_all(path);
  const bool csv =
      force_csv || base.find(".csv") != std::string::npos || data.compare(0, 8, "version,") == 0;
  std::unordered_map<uint64_t, uint32_t> seen;
  size_t pos = 0, line_no = 0;
  while (pos < data.size()) {
    size_t end = data.find('\n', pos);
    if (end == std::string::npos)
      end = data.size();
    std::string line = data.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    if (line.empty())
      continue;
    uint64_t key = 0;
    uint32_t size = 1;
    if (csv) {
      if (line.compare(0, 8, "version,") == 0)
        continue;
      // version,time,op,size,lbn
      std::vector<std::string> f;
      std::stringstream ss(line);
      std::string x;
      while (std::getline(ss, x, ','))
        f.push_back(x);
      if (f.size() < 5)
        die(path + ":" + std::to_string(line_no) + ": expected 5 CSV fields");
      size = static_cast<uint32_t>(std::stoul(f[3]));
      key = std::stoull(f[4]);
      t.sizes.push_back(size);
    } else {
      char* e = nullptr;
      key = std::strtoull(line.c_str(), &e, 10);
      if (e == line.c_str())
        die(path + ":" + std::to_string(line_no) + ": not an integer key");
      char* e2 = nullptr;
      const unsigned long long sz = std::strtoull(e, &e2, 10);
      if (e2 != e) {
        if (t.sizes.size() != t.keys.size())
          die(path + ":" + std::to_string(line_no) + ": a size on some lines only");
        size = static_cast<uint32_t>(std::min<unsigned long long>(sz, UINT32_MAX));
        t.sizes.push_back(size);
      } else if (!t.sizes.empty()) {
        die(path + ":" + std::to_string(line_no) + ": a size on some lines only");
      }
    }
    t.keys.push_back(key);
    if (seen.emplace(key, size).second)
      t.distinct_bytes += size;
  }
  t.distinct = seen.size();
  return t;
}

bool g_bytes = false; // --bytes: objects carry their trace sizes

uint32_t size_at(const trace& t, size_t i) {
  return !g_bytes || t.sizes.empty() ? 1 : t.sizes[i];
}

// -- policies ----------------------------------------------------------------------

bool g_returning = false; // --returning

std::FILE* g_periods = nullptr;       // --periods
std::FILE* g_period_misses = nullptr; // --period-misses
std::string g_size;                   // the size column of the --periods rows
std::string g_trace;                  // the trace column of the --periods rows

// --fixed: one setting of the shadow grid, adaptation off.
struct fixed_setting {
  double window = 0;
  int margin = 0;
  kura::main_region_policy main = kura::main_region_policy::slru_promote_reused;
  uint32_t aging = 10;
};

fixed_setting parse_fixed(const std::string& spec, const char* flag = "--fixed") {
  std::vector<std::string> f;
  std::stringstream ss(spec);
  std::string x;
  while (std::getline(ss, x, ','))
    f.push_back(x);
  const std::string usage =
      std::string(flag) + " " + spec + ": expected W,M,MAIN,AGING (e.g. 0.2,-1,lfu,20)";
  if (f.size() != 4)
    die(usage);
  fixed_setting s;
  char* end = nullptr;
  s.window = std::strtod(f[0].c_str(), &end);
  if (end == f[0].c_str() || *end != '\0' || !(s.window >= 0 && s.window <= 1))
    die(usage + "; W is a share in [0, 1]");
  if (f[1] == "-1" || f[1] == "0" || f[1] == "1" || f[1] == "+1")
    s.margin = std::stoi(f[1]);
  else
    die(usage + "; M is -1, 0 or 1");
  if (f[2] == "slru")
    s.main = kura::main_region_policy::slru;
  else if (f[2] == "promote")
    s.main = kura::main_region_policy::slru_promote_reused;
  else if (f[2] == "lfu")
    s.main = kura::main_region_policy::sampled_lfu;
  else if (f[2] == "ghost")
    s.main = kura::main_region_policy::slru_ghost;
  else
    die(usage + "; MAIN is slru, promote, lfu or ghost");
  const unsigned long aging = std::strtoul(f[3].c_str(), &end, 10);
  if (end == f[3].c_str() || *end != '\0' || aging < 1 || aging > 1000)
    die(usage + "; AGING is an integer in [1, 1000]");
  s.aging = static_cast<uint32_t>(aging);
  return s;
}

std::string spell(const kura::memory_cache::shadow_setting& s) {
  const char* main = s.main == kura::main_region_policy::slru                  ? "slru"
                     : s.main == kura::main_region_policy::slru_promote_reused ? "promote"
                     : s.main == kura::main_region_policy::sampled_lfu         ? "lfu"
                                                                               : "ghost";
  char buf[64];
  std::snprintf(buf, sizeof buf, "\"%g,%d,%s,%u\"", s.window, s.margin, main, s.aging);
  return buf;
}

void write_period(const kura::memory_cache::period_report& r) {
  if (g_period_misses) {
    std::fprintf(g_period_misses, "%s,%s,%u", g_trace.c_str(), g_size.c_str(), r.period);
    for (const uint64_t n : r.all_misses)
      std::fprintf(g_period_misses, ",%llu", static_cast<unsigned long long>(n));
    std::fprintf(g_period_misses, "\n");
  }
  if (!g_periods)
    return;
  std::fprintf(g_periods, "%s,%s,%u,%u,%s,%llu,%llu,%s,%llu,%d,%s\n", g_trace.c_str(),
               g_size.c_str(), r.period, r.sampling_shift, spell(r.setting).c_str(),
               static_cast<unsigned long long>(r.cache_misses),
               static_cast<unsigned long long>(r.setting_misses), spell(r.best).c_str(),
               static_cast<unsigned long long>(r.best_misses), r.switched ? 1 : 0,
               spell(r.next).c_str());
}

// `fixed`: the setting (adaptation off) or, with `adaptive`, the start.
uint64_t run_kura(const trace& t, uint64_t cap, bool bytes, bool adaptive, double window,
                  kura::window_adaptation how = kura::window_adaptation::shadow, int margin = 0,
                  const fixed_setting* fixed = nullptr) {
  kura::memory_cache_config cfg;
  if (fixed) {
    cfg.main_policy = fixed->main;
    cfg.sketch_aging = fixed->aging;
  }
  cfg.adaptation = how;
  cfg.admission_margin = margin;
  cfg.capacity_bytes = cap;
  cfg.count_objects = !bytes;
  cfg.adaptive_window = adaptive;
  cfg.window_fraction = window;
  cfg.returning_keys = g_returning;
  kura::memory_cache m(cfg);
  if ((g_periods || g_period_misses) && adaptive && how == kura::window_adaptation::shadow)
    m.on_period(write_period);
  uint64_t misses = 0;
  std::string value;
  for (size_t i = 0; i < t.keys.size(); ++i) {
    std::string key = std::to_string(t.keys[i]);
    if (m.visit(key, 0, [](const kura::memory_cache::entry_view&) {}))
      continue;
    ++misses;
    kura::entry e;
    e.key = std::move(key);
    if (bytes)
      e.value.assign(size_at(t, i), 'v');
    (void)m.put(std::move(e), 0); // too big for the cache: not cached
  }
  return misses;
}

uint64_t run_lru(const trace& t, uint64_t cap) {
  std::list<std::pair<uint64_t, uint64_t>> order; // key, size; front = MRU
  std::unordered_map<uint64_t, decltype(order)::iterator> where;
  uint64_t used = 0, misses = 0;
  for (size_t i = 0; i < t.keys.size(); ++i) {
    const uint64_t k = t.keys[i], sz = size_at(t, i);
    auto it = where.find(k);
    if (it != where.end()) {
      order.splice(order.begin(), order, it->second);
      used = used - it->second->second + sz;
      it->second->second = sz;
    } else {
      ++misses;
      if (sz > cap)
        continue;
      order.emplace_front(k, sz);
      where[k] = order.begin();
      used += sz;
    }
    while (used > cap) {
      used -= order.back().second;
      where.erase(order.back().first);
      order.pop_back();
    }
  }
  return misses;
}

// Belady: evict the object whose next use is farthest (objects never used
// again first). Exact for unit sizes; with sizes it is the usual heuristic
// (the exact byte-sized optimum is NP-hard).
uint64_t run_belady(const trace& t, uint64_t cap) {
  const size_t n = t.keys.size();
  std::vector<uint64_t> next(n);
  {
    std::unordered_map<uint64_t, uint64_t> last;
    for (size_t i = n; i-- > 0;) {
      auto it = last.find(t.keys[i]);
      next[i] = it == last.end() ? n + i : it->second; // distinct "never" ranks
      last[t.keys[i]] = i;
    }
  }
  std::set<std::pair<uint64_t, uint64_t>> by_next;                // (next use, key)
  std::unordered_map<uint64_t, std::pair<uint64_t, uint64_t>> in; // key -> (next, size)
  uint64_t used = 0, misses = 0;
  for (size_t i = 0; i < n; ++i) {
    const uint64_t k = t.keys[i], sz = size_at(t, i);
    auto it = in.find(k);
    if (it != in.end()) {
      by_next.erase({it->second.first, k});
      used = used - it->second.second + sz;
      it->second = {next[i], sz};
      by_next.insert({next[i], k});
    } else {
      ++misses;
      in[k] = {next[i], sz};
      by_next.insert({next[i], k});
      used += sz;
    }
    while (used > cap) {
      auto last = std::prev(by_next.end());
      used -= in[last->second].second;
      in.erase(last->second);
      by_next.erase(last);
    }
  }
  return misses;
}

// -- published references ------------------------------------------------------------

struct reference_point {
  std::string trace;
  double size;
  std::string policy;
  double miss_ratio;
};

std::vector<reference_point> load_reference(const std::string& path) {
  std::vector<reference_point> out;
  std::ifstream in(path);
  if (!in)
    return out;
  std::string line;
  size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    if (line.empty() || line[0] == '#' || line.compare(0, 6, "trace,") == 0)
      continue;
    std::vector<std::string> f;
    std::stringstream ss(line);
    std::string x;
    while (std::getline(ss, x, ','))
      f.push_back(x);
    char* e1 = nullptr;
    char* e2 = nullptr;
    reference_point p;
    if (f.size() == 4) {
      p.size = std::strtod(f[1].c_str(), &e1);
      p.miss_ratio = std::strtod(f[3].c_str(), &e2);
    }
    if (f.size() != 4 || e1 == f[1].c_str() || e2 == f[3].c_str())
      die(path + ":" + std::to_string(line_no) + ": expected trace,size,policy,miss_ratio");
    p.trace = f[0];
    p.policy = f[2];
    out.push_back(std::move(p));
  }
  return out;
}

/// The best published (online) policy for trace/size; nullptr if none.
const reference_point* best_reference(const std::vector<reference_point>& ref,
                                      const std::string& trace, double size) {
  const reference_point* best = nullptr;
  for (const auto& p : ref)
    if (p.trace == trace && std::fabs(p.size - size) < 1e-9 && p.policy != "belady" &&
        (!best || p.miss_ratio < best->miss_ratio))
      best = &p;
  return best;
}

struct row_context {
  const reference_point* best = nullptr;
  uint64_t lru_misses = 0;
};

/// Rounded to the 4 printed decimals, so that no "-0.0000" appears.
double r4(double x) {
  return std::round(x * 1e4) / 1e4 + 0.0;
}

void row(const trace& t, const std::string& size, const char* policy, uint64_t misses,
         const row_context& ctx) {
  const double n = static_cast<double>(t.keys.size());
  const double ratio = static_cast<double>(misses) / n;
  const double lru = static_cast<double>(ctx.lru_misses) / n;
  std::printf("%s,%s,%s,%zu,%llu,%.4f,", t.name.c_str(), size.c_str(), policy, t.keys.size(),
              static_cast<unsigned long long>(misses), ratio);
  if (ctx.best)
    std::printf("%s,%.4f,%+.4f,", ctx.best->policy.c_str(), ctx.best->miss_ratio,
                r4(ratio) - r4(ctx.best->miss_ratio) + 0.0);
  else
    std::printf("-,-,-,");
  std::printf("%.4f,%+.4f\n", lru, r4(ratio) - r4(lru) + 0.0);
  std::fflush(stdout);
}

} // namespace

int main(int argc, char** argv) {
  std::string path;
  std::string sizes = "0.01,0.1";
  std::string reference = "../shared/traces/reference.csv";
  bool reference_given = false;
  bool csv = false, bytes = false, extra = false;
  double window = -1;
  std::optional<fixed_setting> fixed, start;
  std::string periods;
  std::string period_misses;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto need = [&]() -> std::string {
      if (i + 1 >= argc)
        die(a + " needs a value");
      return argv[++i];
    };
    if (a == "--trace")
      path = need();
    else if (a == "--sizes")
      sizes = need();
    else if (a == "--csv")
      csv = true;
    else if (a == "--bytes")
      bytes = true;
    else if (a == "--returning")
      g_returning = true;
    else if (a == "--extra")
      extra = true;
    else if (a == "--window")
      window = std::stod(need());
    else if (a == "--fixed")
      fixed = parse_fixed(need());
    else if (a == "--start")
      start = parse_fixed(need(), "--start");
    else if (a == "--periods")
      periods = need();
    else if (a == "--period-misses")
      period_misses = need();
    else if (a == "--reference") {
      reference = need();
      reference_given = true;
    } else
      die("unknown argument " + a +
          " (usage: --trace FILE [--sizes 0.01,0.1] [--csv] [--bytes] [--extra] [--returning]"
          " [--window F] [--fixed W,M,MAIN,AGING] [--start W,M,MAIN,AGING] [--periods FILE] "
          "[--period-misses FILE]"
          " [--reference FILE])");
  }
  if (path.empty())
    die("--trace FILE is required");
  trace t = load(path, csv);
  if (t.keys.empty())
    die(path + ": no requests");
  if (bytes && t.sizes.empty())
    die("--bytes needs a trace with sizes (the CSV format or `key size` lines)");
  if (!std::ifstream(reference)) {
    if (reference_given)
      die("cannot open reference " + reference);
    const size_t slash = path.find_last_of('/');
    reference =
        (slash == std::string::npos ? std::string(".") : path.substr(0, slash)) + "/reference.csv";
  }
  // The references count objects: no reference columns in byte mode.
  const std::vector<reference_point> ref =
      bytes ? std::vector<reference_point>{} : load_reference(reference);
  g_bytes = bytes;
  g_trace = t.name;
  if (!periods.empty()) {
    g_periods = std::fopen(periods.c_str(), "w");
    if (!g_periods)
      die("cannot write " + periods);
    std::fprintf(g_periods, "trace,size,period,sampling_shift,setting,cache_misses,"
                            "setting_misses,best,best_misses,switched,next\n");
  }
  if (!period_misses.empty()) {
    g_period_misses = std::fopen(period_misses.c_str(), "w");
    if (!g_period_misses)
      die("cannot write " + period_misses);
    std::fprintf(g_period_misses, "trace,size,period");
    for (const auto& s : kura::memory_cache::shadow_grid())
      std::fprintf(g_period_misses, ",%s", spell(s).c_str());
    std::fprintf(g_period_misses, "\n");
  }
  std::fprintf(stderr, "%s: %zu requests, %llu distinct keys, %llu distinct bytes\n",
               t.name.c_str(), t.keys.size(), static_cast<unsigned long long>(t.distinct),
               static_cast<unsigned long long>(t.distinct_bytes));
  std::printf("trace,size,policy,requests,misses,miss_ratio,best_ref,best_ref_miss_ratio,delta,"
              "lru_miss_ratio,delta_lru\n");
  std::stringstream ss(sizes);
  std::string f;
  while (std::getline(ss, f, ',')) {
    const double frac = std::stod(f);
    if (!(frac > 0))
      die("sizes must be positive fractions");
    const double base = static_cast<double>(bytes ? t.distinct_bytes : t.distinct);
    // floor, as libCacheSim (its cs 1% is 14 of 1,409)
    const uint64_t cap =
        std::max<uint64_t>(1, static_cast<uint64_t>(std::floor(frac * base + 1e-9)));
    row_context ctx;
    g_size = f;
    ctx.best = best_reference(ref, t.name, frac);
    ctx.lru_misses = run_lru(t, cap);
    row(t, f, "kura",
        start ? run_kura(t, cap, bytes, true, start->window, kura::window_adaptation::shadow,
                         start->margin, &*start)
              : run_kura(t, cap, bytes, true, kura::memory_cache_config{}.window_fraction),
        ctx);
    row(t, f, "lru", ctx.lru_misses, ctx);
    row(t, f, "belady", run_belady(t, cap), ctx);
    if (fixed)
      row(t, f, "kura-fixed",
          run_kura(t, cap, bytes, false, fixed->window, kura::window_adaptation::shadow,
                   fixed->margin, &*fixed),
          ctx);
    if (extra) {
      row(t, f, "kura-static", run_kura(t, cap, bytes, false, 0.01, {}, 0), ctx);
      row(t, f, "kura-hc",
          run_kura(t, cap, bytes, true, 0.01, kura::window_adaptation::hill_climbing, 0), ctx);
      if (window >= 0) {
        std::string name = "kura-w" + std::to_string(window);
        row(t, f, name.c_str(), run_kura(t, cap, bytes, false, window), ctx);
      }
    }
  }
  if (g_periods && std::fclose(g_periods) != 0)
    die("cannot write " + periods);
  if (g_period_misses && std::fclose(g_period_misses) != 0)
    die("cannot write " + period_misses);
  return 0;
}
