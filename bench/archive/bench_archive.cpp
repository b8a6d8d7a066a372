// kura-bench-archive: compression ratio of the L4 archive per codec against
// zstd on the whole corpus, L4 get latency on 1M archived entries, compaction
// throughput, and foreground p99 with and without a compaction running.
//
//   build/bin/kura-bench-archive [--csv] [--dir PATH] [--json-mb N] [--text-mb N]
//                                [--entries N] [--quick] [--explore]
//
//   --entries 0 skips the latency/compaction part; --explore prints the block
//   size x level x dictionary table on the JSON corpus instead.
//
// Ratio rows (`corpus,codec,raw_bytes,stored_bytes,ratio`): every record of
// the corpus is put into a fresh archive with the codec; stored_bytes is what
// the archive keeps for the data (segment files + dictionaries; the LMDB index
// is reported separately because it does not depend on the codec). The
// reference rows compress the concatenated corpus as one buffer with the zstd
// library at level 3 and 19: the practical ceiling for a block store.
#include "archive/archive.hpp"
#include "tiers/clock.hpp"
#include "tiers/random.hpp"

#include <zstd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace kura;
namespace ka = kura::archive;

namespace {

// -- corpus generators ------------------------------------------------------------

const char* first_names[] = {
    "Anna", "Ben",  "Chloe", "David", "Emma",   "Felix", "Greta", "Hugo",   "Ines",   "Jonas",
    "Kira", "Liam", "Mia",   "Noah",  "Olivia", "Paul",  "Quinn", "Rosa",   "Sven",   "Tara",
    "Umar", "Vera", "Wen",   "Yuki",  "Zoe",    "Akira", "Bilal", "Carmen", "Dmitri", "Elif"};
const char* last_names[] = {"Schmidt", "Tanaka",   "Garcia",    "Smith",   "Müller",
                            "Rossi",   "Kowalski", "Nguyen",    "Johnson", "Silva",
                            "Novak",   "Yilmaz",   "Andersson", "Dubois",  "Kim",
                            "Ivanova", "Okafor",   "Haddad",    "Larsen",  "Costa"};
const char* cities[] = {"Berlin", "Tokyo",  "Madrid",  "New York", "São Paulo", "Lagos",  "Mumbai",
                        "Seoul",  "Paris",  "Toronto", "Sydney",   "Istanbul",  "Warsaw", "Osaka",
                        "Lyon",   "Austin", "Nairobi", "Oslo",     "Lisbon",    "Prague"};
const char* countries[] = {"DE", "JP", "ES", "US", "BR", "NG", "IN", "KR", "FR",
                           "CA", "AU", "TR", "PL", "PT", "CZ", "NO", "KE"};
const char* locales[] = {"en-US", "de-DE", "ja-JP", "es-ES", "pt-BR", "fr-FR", "ko-KR", "pl-PL"};
const char* plans[] = {"free", "basic", "pro", "team", "enterprise"};
const char* agents[] = {
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/119.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/119.0.6045.163 Mobile Safari/537.36",
    "okhttp/4.12.0",
    "python-requests/2.31.0",
    "curl/8.4.0"};
const char* paths[] = {"/",         "/login",
                       "/cart",     "/checkout",
                       "/search",   "/account/settings",
                       "/products", "/products/reviews",
                       "/help/faq", "/orders",
                       "/wishlist", "/api/v2/recommendations"};
const char* categories[] = {"books",  "electronics", "garden", "toys",   "kitchen",
                            "sports", "fashion",     "music",  "office", "health"};
const char* currencies[] = {"EUR", "USD", "JPY", "GBP", "BRL"};

/// A word list for the text corpus and for bios/titles: ~3000 pronounceable
/// words with a Zipf-like draw, like natural text.
struct vocabulary {
  std::vector<std::string> words;
  std::vector<double> cdf;
  explicit vocabulary(rng& r) {
    const char* common[] = {
        "the",  "of",   "and",   "to",    "a",    "in",   "is",   "it",   "that",  "was",   "for",
        "on",   "are",  "with",  "as",    "be",   "at",   "this", "have", "from",  "or",    "one",
        "had",  "by",   "but",   "not",   "what", "all",  "were", "when", "we",    "there", "can",
        "an",   "your", "which", "their", "said", "if",   "do",   "will", "each",  "about", "how",
        "up",   "out",  "them",  "then",  "she",  "many", "some", "so",   "these", "would", "other",
        "into", "has",  "more",  "her",   "two",  "like"};
    for (auto* w : common)
      words.emplace_back(w);
    const char* on[] = {"b", "c", "d", "f",  "g",  "h",  "l",  "m",  "n",  "p",  "r",  "s",
                        "t", "v", "w", "st", "tr", "pl", "gr", "ch", "sh", "th", "br", "cl"};
    const char* nu[] = {"a", "e", "i", "o", "u", "ea", "ou", "ai", "io", "ee"};
    const char* co[] = {"", "n", "r", "s", "t", "l", "nd", "st", "ng", "rt", "ck", "m"};
    while (words.size() < 3000) {
      std::string w;
      int syl = 1 + static_cast<int>(r.below(3));
      for (int s = 0; s < syl; ++s) {
        w += on[r.below(sizeof(on) / sizeof(*on))];
        w += nu[r.below(sizeof(nu) / sizeof(*nu))];
      }
      w += co[r.below(sizeof(co) / sizeof(*co))];
      words.push_back(w);
    }
    double sum = 0;
    for (size_t i = 0; i < words.size(); ++i) {
      sum += 1.0 / std::pow(static_cast<double>(i + 1), 1.07);
      cdf.push_back(sum);
    }
    for (auto& c : cdf)
      c /= sum;
  }
  const std::string& word(rng& r) const {
    auto i = std::lower_bound(cdf.begin(), cdf.end(), r.uniform()) - cdf.begin();
    return words[std::min<size_t>(static_cast<size_t>(i), words.size() - 1)];
  }
  std::string sentence(rng& r, size_t min_words, size_t max_words) const {
    std::string s;
    size_t n = min_words + r.below(max_words - min_words + 1);
    for (size_t i = 0; i < n; ++i) {
      if (i)
        s += ' ';
      auto w = word(r);
      if (i == 0)
        w[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(w[0])));
      s += w;
    }
    s += r.chance(0.1) ? "?" : ".";
    return s;
  }
};

template <size_t N>
const char* pick(rng& r, const char* (&a)[N]) {
  return a[r.below(N)];
}

std::string hex(rng& r, size_t n) {
  static const char* d = "0123456789abcdef";
  std::string s(n, '0');
  for (auto& c : s)
    c = d[r.below(16)];
  return s;
}

std::string iso_time(uint64_t ms) {
  time_t t = static_cast<time_t>(ms / 1000);
  struct tm tmv;
  gmtime_r(&t, &tmv);
  char buf[96];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tmv.tm_year + 1900,
                tmv.tm_mon + 1, tmv.tm_mday, tmv.tm_hour, tmv.tm_min, tmv.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

std::string uuid(rng& r) {
  return hex(r, 8) + "-" + hex(r, 4) + "-4" + hex(r, 3) + "-a" + hex(r, 3) + "-" + hex(r, 12);
}

std::string user_profile(rng& r, const vocabulary& v, uint64_t id, uint64_t now) {
  std::string f = pick(r, first_names), l = pick(r, last_names);
  std::string s =
      "{\"id\":" + std::to_string(id) + ",\"username\":\"" + f + std::to_string(r.below(10000)) +
      "\",\"email\":\"" + f + "." + std::to_string(r.below(1000)) +
      "@example.com\",\"name\":{\"first\":\"" + f + "\",\"last\":\"" + l + "\"},\"created_at\":\"" +
      iso_time(now - r.below(3ull * 365 * 86400 * 1000)) + "\",\"locale\":\"" + pick(r, locales) +
      "\",\"address\":{\"city\":\"" + pick(r, cities) + "\",\"country\":\"" + pick(r, countries) +
      "\",\"zip\":\"" + std::to_string(10000 + r.below(89999)) + "\"},\"plan\":\"" +
      pick(r, plans) + "\",\"verified\":" + (r.chance(0.7) ? "true" : "false") +
      ",\"settings\":{\"theme\":\"" + (r.chance(0.5) ? "dark" : "light") +
      "\",\"notifications\":{\"email\":" + (r.chance(0.5) ? "true" : "false") +
      ",\"push\":" + (r.chance(0.3) ? "true" : "false") + ",\"sms\":false},\"timezone\":\"UTC" +
      (r.chance(0.5) ? "+" : "-") + std::to_string(r.below(12)) + "\"},\"interests\":[";
  int n = static_cast<int>(r.below(5));
  for (int i = 0; i < n; ++i)
    s += std::string(i ? "," : "") + "\"" + pick(r, categories) + "\"";
  s += "],\"bio\":\"";
  int sentences = static_cast<int>(r.below(r.chance(0.2) ? 30 : 4));
  for (int i = 0; i < sentences; ++i)
    s += (i ? " " : "") + v.sentence(r, 5, 18);
  s += "\",\"followers\":" + std::to_string(r.below(5000)) + "}";
  return s;
}

std::string session(rng& r, uint64_t now) {
  uint64_t start = now - r.below(86400ull * 1000);
  std::string s =
      "{\"session_id\":\"" + hex(r, 32) + "\",\"user_id\":" + std::to_string(r.below(2'000'000)) +
      ",\"ip\":\"" + std::to_string(r.below(223) + 1) + "." + std::to_string(r.below(256)) + "." +
      std::to_string(r.below(256)) + "." + std::to_string(r.below(256)) + "\",\"user_agent\":\"" +
      pick(r, agents) + "\",\"started_at\":\"" + iso_time(start) + "\",\"device\":{\"type\":\"" +
      (r.chance(0.6) ? "mobile" : "desktop") + "\",\"screen\":\"" +
      (r.chance(0.5) ? "1920x1080" : "390x844") + "\"},\"locale\":\"" + pick(r, locales) +
      "\",\"pages\":[";
  int n = 1 + static_cast<int>(r.below(r.chance(0.2) ? 30 : 6));
  uint64_t ts = start;
  for (int i = 0; i < n; ++i) {
    ts += r.below(120000);
    s += std::string(i ? "," : "") + "{\"path\":\"" + pick(r, paths) +
         (r.chance(0.4) ? "/" + std::to_string(r.below(100000)) : std::string()) +
         "\",\"ts\":" + std::to_string(ts) + ",\"duration_ms\":" + std::to_string(r.below(60000)) +
         ",\"referrer\":\"" + (i ? "internal" : (r.chance(0.5) ? "google" : "direct")) + "\"}";
  }
  s += "],\"cart_items\":" + std::to_string(r.below(8)) +
       ",\"authenticated\":" + (r.chance(0.6) ? "true" : "false") + "}";
  return s;
}

std::string api_response(rng& r, const vocabulary& v) {
  std::string s = "{\"status\":200,\"request_id\":\"" + uuid(r) +
                  "\",\"api_version\":\"2.4\","
                  "\"data\":{\"items\":[";
  int n = static_cast<int>(r.below(r.chance(0.25) ? 20 : 5));
  for (int i = 0; i < n; ++i) {
    char price[32];
    std::snprintf(price, sizeof(price), "%" PRIu64 ".%02" PRIu64, r.below(500), r.below(100));
    s += std::string(i ? "," : "") + "{\"sku\":\"SKU-" + std::to_string(100000 + r.below(900000)) +
         "\",\"title\":\"" + v.sentence(r, 2, 6) + "\",\"category\":\"" + pick(r, categories) +
         "\",\"price\":" + price + ",\"currency\":\"" + pick(r, currencies) +
         "\",\"in_stock\":" + (r.chance(0.8) ? "true" : "false") +
         ",\"rating\":" + std::to_string(1 + r.below(5)) + "." + std::to_string(r.below(10)) +
         ",\"reviews\":" + std::to_string(r.below(3000)) + "}";
  }
  s += "],\"page\":" + std::to_string(1 + r.below(20)) +
       ",\"per_page\":20,\"total\":" + std::to_string(r.below(5000)) +
       "},\"latency_ms\":" + std::to_string(r.below(250)) + "}";
  return s;
}

/// JSON-like records between 100 B and 4 KiB, until `bytes` are produced.
std::vector<std::string> json_corpus(uint64_t bytes, uint64_t seed) {
  rng r(seed);
  vocabulary v(r);
  std::vector<std::string> out;
  uint64_t total = 0, id = 1'000'000;
  const uint64_t now = 1'700'000'000'000ull;
  while (total < bytes) {
    std::string s;
    auto kind = r.below(3);
    if (kind == 0)
      s = user_profile(r, v, id++, now);
    else if (kind == 1)
      s = session(r, now);
    else
      s = api_response(r, v);
    if (s.size() < 100 || s.size() > 4096)
      continue;
    total += s.size();
    out.push_back(std::move(s));
  }
  return out;
}

/// Text records (messages, comments, articles) between 100 B and 4 KiB.
std::vector<std::string> text_corpus(uint64_t bytes, uint64_t seed) {
  rng r(seed);
  vocabulary v(r);
  std::vector<std::string> out;
  uint64_t total = 0;
  while (total < bytes) {
    std::string s;
    size_t target =
        100 + static_cast<size_t>(std::min<double>(3996, -std::log(1 - r.uniform()) * 700));
    while (s.size() < target) {
      s += v.sentence(r, 4, 22);
      s += r.chance(0.15) ? "\n\n" : " ";
    }
    s.resize(std::min<size_t>(s.size(), 4096));
    total += s.size();
    out.push_back(std::move(s));
  }
  return out;
}

// -- helpers --------------------------------------------------------------------------

struct options {
  bool csv = false;
  std::string dir;
  uint64_t json_mb = 100;
  uint64_t text_mb = 32;
  uint64_t entries = 1'000'000;
  bool explore = false;
};

std::string fresh_dir(const options& o, const std::string& name) {
  auto p = o.dir + "/" + name;
  (void)std::system(("rm -rf '" + p + "'").c_str());
  return p;
}

uint64_t dir_bytes(const std::string& path, const char* prefix) {
  auto names = ka::posix_env::instance().list_dir(path);
  uint64_t total = 0;
  if (!names)
    return 0;
  for (auto& n : *names) {
    if (n.rfind(prefix, 0) != 0)
      continue;
    auto f = ka::posix_env::instance().open_readable(path + "/" + n);
    if (f)
      total += (*f)->size().ok() ? *(*f)->size() : 0;
  }
  return total;
}

void die(const std::string& what, const error& e) {
  std::fprintf(stderr, "kura-bench-archive: %s: %s\n", what.c_str(), e.to_string().c_str());
  std::exit(1);
}

struct ratio_row {
  std::string corpus, codec;
  uint64_t raw = 0, stored = 0, index = 0;
  double seconds = 0;
  double get_p50_us = 0, get_p99_us = 0;
};

ka::archive_config base_config(const std::string& path) {
  ka::archive_config cfg;
  cfg.path = path;
  cfg.durable = false; // page cache only: the bench measures codecs, not fsync
  cfg.ttl_days = 0;
  cfg.max_bytes = ~0ull >> 1;
  cfg.segment_bytes = 256ull << 20;
  return cfg;
}

ratio_row store_corpus(const options& o, const std::string& corpus,
                       const std::vector<std::string>& recs, const std::string& codec_name,
                       ka::archive_config cfg, size_t gets = 0) {
  auto dir = fresh_dir(o, "ratio-" + corpus + "-" + codec_name);
  cfg.path = dir;
  auto a = ka::archive::open(cfg, real_clock::instance());
  if (!a)
    die("open", a.err());
  auto t0 = std::chrono::steady_clock::now();
  ratio_row row{corpus, codec_name};
  uint64_t now = real_clock::instance().now_ms();
  for (size_t i = 0; i < recs.size(); ++i) {
    entry e;
    e.key = corpus + ":" + std::to_string(i);
    e.value = recs[i];
    row.raw += recs[i].size();
    if (auto st = (*a)->put(std::move(e), now); !st)
      die("put", st.err());
  }
  if (auto st = (*a)->flush(); !st)
    die("flush", st.err());
  row.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (gets > 0) {
    rng g(5);
    std::vector<uint64_t> lat;
    for (size_t i = 0; i < gets; ++i) {
      auto k = corpus + ":" + std::to_string(g.below(recs.size()));
      auto s = std::chrono::steady_clock::now();
      auto got = (*a)->get(k, now);
      auto e = std::chrono::steady_clock::now();
      if (!got || !got->has_value())
        die("get " + k, got ? error{errc::not_found, "miss"} : got.err());
      lat.push_back(static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(e - s).count()));
    }
    std::sort(lat.begin(), lat.end());
    row.get_p50_us = static_cast<double>(lat[lat.size() / 2]) / 1000.0;
    row.get_p99_us = static_cast<double>(lat[lat.size() * 99 / 100]) / 1000.0;
  }
  a->reset();
  row.stored = dir_bytes(dir, "seg-") + dir_bytes(dir, "dict-");
  row.index = dir_bytes(dir + "/index", "data.mdb");
  (void)std::system(("rm -rf '" + dir + "'").c_str());
  return row;
}

ratio_row whole(const std::string& corpus, const std::vector<std::string>& recs, int level) {
  std::string all;
  for (auto& r : recs)
    all += r;
  std::string out(ZSTD_compressBound(all.size()), '\0');
  auto t0 = std::chrono::steady_clock::now();
  auto n = ZSTD_compress(out.data(), out.size(), all.data(), all.size(), level);
  ratio_row row{corpus, "zstd-" + std::to_string(level) + "-whole"};
  row.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  row.raw = all.size();
  row.stored = ZSTD_isError(n) ? 0 : n;
  return row;
}

double pct(std::vector<uint64_t>& v, double q) {
  if (v.empty())
    return 0;
  std::sort(v.begin(), v.end());
  auto i = static_cast<size_t>(q * static_cast<double>(v.size() - 1));
  return static_cast<double>(v[i]) / 1000.0; // ns -> us
}

struct metric {
  std::string name;
  double value;
  std::string unit;
};

} // namespace

int main(int argc, char** argv) {
  options o;
  char tmpl[] = "/tmp/kura-bench-archive-XXXXXX";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "missing value for %s\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--csv")
      o.csv = true;
    else if (a == "--dir")
      o.dir = next();
    else if (a == "--json-mb")
      o.json_mb = std::stoull(next());
    else if (a == "--text-mb")
      o.text_mb = std::stoull(next());
    else if (a == "--entries")
      o.entries = std::stoull(next());
    else if (a == "--explore")
      o.explore = true;
    else if (a == "--quick")
      o.json_mb = 8, o.text_mb = 4, o.entries = 50'000;
    else {
      std::fprintf(stderr,
                   "usage: kura-bench-archive [--csv] [--dir PATH] [--json-mb N] [--text-mb N] "
                   "[--entries N] [--quick] [--explore]\n");
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  bool own_dir = o.dir.empty();
  if (own_dir) {
    if (::mkdtemp(tmpl) == nullptr) {
      std::perror("mkdtemp");
      return 1;
    }
    o.dir = tmpl;
  } else {
    (void)ka::posix_env::instance().create_dir(o.dir);
  }

  if (o.explore) {
    // Block size x level x dictionary on the JSON corpus: ratio and get latency.
    auto recs = json_corpus(o.json_mb << 20, 1);
    auto ref = whole("json", recs, 19);
    std::printf("zstd-19-whole ratio %.4f\n",
                static_cast<double>(ref.stored) / static_cast<double>(ref.raw));
    std::printf("%-16s %8s %6s %9s %7s %8s %8s %8s\n", "codec", "block", "level", "dict", "ratio",
                "put_s", "get_p50", "get_p99");
    const char* only = std::getenv("EXPLORE_CODEC"); // e.g. zstd+dictionary
    for (auto c : {ka::codec_id::lz4, ka::codec_id::zstd, ka::codec_id::zstd_dict})
      for (size_t block : {size_t{4} << 10, size_t{16} << 10, size_t{64} << 10, size_t{256} << 10,
                           size_t{1} << 20})
        for (int level : {3, 9, 19})
          for (size_t dict : {size_t{64} << 10, size_t{112} << 10}) {
            if (c != ka::codec_id::zstd_dict && dict != (size_t{64} << 10))
              continue;
            if (only != nullptr && std::string(only) != ka::to_string(c))
              continue;
            if (block > (size_t{256} << 10) && c == ka::codec_id::zstd_dict)
              continue;
            if (c == ka::codec_id::lz4 && level != 3)
              continue;
            if (level == 19 && block < (size_t{16} << 10))
              continue;
            auto cfg = base_config("");
            cfg.codec = c;
            cfg.level = c == ka::codec_id::lz4 ? 0 : level;
            cfg.block_bytes = block;
            cfg.dict_bytes = dict;
            cfg.dict_sample_bytes = 100 * dict;
            cfg.segment_bytes = 32ull << 20;
            auto r = store_corpus(o, "json", recs, ka::to_string(c), cfg, 5000);
            std::printf("%-16s %8zu %6d %9zu %7.4f %8.1f %8.1f %8.1f\n", ka::to_string(c), block,
                        cfg.level, c == ka::codec_id::zstd_dict ? dict : 0,
                        static_cast<double>(r.stored) / static_cast<double>(r.raw), r.seconds,
                        r.get_p50_us, r.get_p99_us);
            std::fflush(stdout);
          }
    if (own_dir)
      (void)std::system(("rm -rf '" + o.dir + "'").c_str());
    return 0;
  }

  // -- ratio ------------------------------------------------------------------------
  std::vector<ratio_row> rows;
  struct codec_setup {
    const char* name;
    ka::codec_id codec;
    int level;
    size_t block;
  };
  // The archive's settings per codec (see bench/RESULTS.md for why these).
  const codec_setup setups[] = {
      {"lz4", ka::codec_id::lz4, 0, 64 * 1024},
      {"zstd", ka::codec_id::zstd, 9, 64 * 1024},
      {"zstd+dictionary", ka::codec_id::zstd_dict, 19, 64 * 1024},
  };
  for (auto corpus : {"json", "text"}) {
    bool is_json = std::string(corpus) == "json";
    auto recs = is_json ? json_corpus(o.json_mb << 20, 1) : text_corpus(o.text_mb << 20, 2);
    for (auto& s : setups) {
      auto cfg = base_config("");
      cfg.codec = s.codec;
      cfg.level = s.level > 0 ? s.level : 3;
      if (s.codec == ka::codec_id::lz4)
        cfg.level = 0;
      cfg.block_bytes = s.block;
      rows.push_back(store_corpus(o, corpus, recs, s.name, cfg));
      std::fprintf(stderr, "  %s %s done in %.1fs\n", corpus, s.name, rows.back().seconds);
    }
    rows.push_back(whole(corpus, recs, 3));
    rows.push_back(whole(corpus, recs, 19));
    std::fprintf(stderr, "  %s whole-file references done\n", corpus);
  }
  if (o.csv)
    std::printf("corpus,codec,raw_bytes,stored_bytes,ratio\n");
  else
    std::printf("%-6s %-16s %12s %12s %7s %12s %8s\n", "corpus", "codec", "raw_bytes",
                "stored_bytes", "ratio", "index_bytes", "seconds");
  for (auto& r : rows) {
    double ratio = r.raw == 0 ? 0 : static_cast<double>(r.stored) / static_cast<double>(r.raw);
    if (o.csv)
      std::printf("%s,%s,%" PRIu64 ",%" PRIu64 ",%.4f\n", r.corpus.c_str(), r.codec.c_str(), r.raw,
                  r.stored, ratio);
    else
      std::printf("%-6s %-16s %12" PRIu64 " %12" PRIu64 " %7.4f %12" PRIu64 " %8.1f\n",
                  r.corpus.c_str(), r.codec.c_str(), r.raw, r.stored, ratio, r.index, r.seconds);
  }
  std::fflush(stdout);

  // -- latency and compaction on `entries` archived entries -----------------------------
  std::vector<metric> metrics;
  if (o.entries > 0) {
    auto dir = fresh_dir(o, "latency");
    auto cfg = base_config(dir);
    cfg.codec = ka::codec_id::lz4;
    cfg.segment_bytes = 16ull << 20;
    auto opened = ka::archive::open(cfg, real_clock::instance());
    if (!opened)
      die("open", opened.err());
    auto& a = **opened;
    rng r(7);
    vocabulary v(r);
    uint64_t now = real_clock::instance().now_ms();
    auto key = [](uint64_t i) {
      return "user:" + std::to_string(i * 2654435761ull % 1'000'000'007ull);
    };
    auto t0 = std::chrono::steady_clock::now();
    uint64_t raw = 0;
    for (uint64_t i = 0; i < o.entries; ++i) {
      entry e;
      e.key = key(i);
      e.value = i % 3 == 0 ? session(r, now) : api_response(r, v);
      if (e.value.size() > 600)
        e.value.resize(100 + r.below(500)); // keep 1M entries around 300 MB raw
      raw += e.value.size();
      if (auto st = a.put(std::move(e), now); !st)
        die("put", st.err());
    }
    if (auto st = a.flush(); !st)
      die("flush", st.err());
    double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    metrics.push_back({"l4_entries", static_cast<double>(o.entries), "entries"});
    metrics.push_back({"l4_load_raw_mb", static_cast<double>(raw) / 1e6, "MB"});
    metrics.push_back({"l4_load_rate", static_cast<double>(o.entries) / load_s, "puts/s"});
    bool erased_some = false, erased_more = false;
    // Wall time per get, and (in cpu_lat) the thread's CPU time per get: on a
    // shared 2-core VM the wall-time tail is mostly time spent descheduled.
    std::vector<uint64_t> cpu_lat;
    auto thread_cpu_ns = [] {
      timespec ts;
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
      return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull +
             static_cast<uint64_t>(ts.tv_nsec);
    };
    auto measure = [&](uint64_t n, rng& g) {
      std::vector<uint64_t> lat;
      lat.reserve(n);
      cpu_lat.clear();
      for (uint64_t i = 0; i < n; ++i) {
        uint64_t pick_i = g.below(o.entries);
        while ((erased_some && (pick_i % 5 == 1 || pick_i % 5 == 2)) ||
               (erased_more && pick_i % 5 == 3))
          pick_i = g.below(o.entries);
        auto k = key(pick_i);
        auto c0 = thread_cpu_ns();
        auto s = std::chrono::steady_clock::now();
        auto got = a.get(k, now);
        auto e = std::chrono::steady_clock::now();
        cpu_lat.push_back(thread_cpu_ns() - c0);
        if (!got || !got->has_value())
          die("get " + k, got ? error{errc::not_found, "miss"} : got.err());
        lat.push_back(static_cast<uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(e - s).count()));
      }
      return lat;
    };
    rng g(11);
    (void)measure(20'000, g); // warm up
    auto lat = measure(200'000, g);
    metrics.push_back({"l4_get_p50", pct(lat, 0.5), "us"});
    metrics.push_back({"l4_get_p99", pct(lat, 0.99), "us"});
    metrics.push_back({"l4_get_p999", pct(lat, 0.999), "us"});
    metrics.push_back({"l4_get_cpu_p50", pct(cpu_lat, 0.5), "us"});
    metrics.push_back({"l4_get_cpu_p99", pct(cpu_lat, 0.99), "us"});
    // Make 60% of the data dead (overwrite half of it with short values, erase
    // the rest of that share), then compact in a thread while measuring gets.
    for (uint64_t i = 0; i < o.entries; ++i) {
      if (i % 5 >= 3)
        continue;
      if (i % 5 == 0) {
        entry e;
        e.key = key(i);
        e.value = "v2:" + std::to_string(i);
        (void)a.put(std::move(e), now);
      } else {
        (void)a.erase(key(i));
      }
    }
    (void)a.flush();
    erased_some = true;
    auto before = a.inspect();
    std::atomic<bool> running{true};
    ka::compaction_progress prog;
    double comp_s = 0;
    std::thread compactor([&] {
      auto s = std::chrono::steady_clock::now();
      auto p = a.compact(0.5);
      comp_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - s).count();
      if (p)
        prog = *p;
      running = false;
    });
    std::vector<uint64_t> during, during_cpu;
    while (running.load()) {
      auto l = measure(1000, g);
      during.insert(during.end(), l.begin(), l.end());
      during_cpu.insert(during_cpu.end(), cpu_lat.begin(), cpu_lat.end());
    }
    compactor.join();
    auto after = a.inspect();
    auto idle = measure(200'000, g);
    metrics.push_back({"compaction_input_mb", static_cast<double>(prog.bytes_done) / 1e6, "MB"});
    metrics.push_back(
        {"compaction_output_mb", static_cast<double>(prog.bytes_written) / 1e6, "MB"});
    metrics.push_back({"compaction_seconds", comp_s, "s"});
    metrics.push_back(
        {"compaction_throughput", static_cast<double>(prog.bytes_done) / 1e6 / comp_s, "MB/s"});
    metrics.push_back(
        {"stored_mb_before_compaction", static_cast<double>(before.stored_bytes) / 1e6, "MB"});
    metrics.push_back(
        {"stored_mb_after_compaction", static_cast<double>(after.stored_bytes) / 1e6, "MB"});
    metrics.push_back({"fg_get_p50_idle", pct(idle, 0.5), "us"});
    metrics.push_back({"fg_get_p99_idle", pct(idle, 0.99), "us"});
    metrics.push_back({"fg_get_cpu_p99_idle", pct(cpu_lat, 0.99), "us"});
    metrics.push_back(
        {"fg_get_samples_during_compaction", static_cast<double>(during.size()), "gets"});
    metrics.push_back({"fg_get_p50_during_compaction", pct(during, 0.5), "us"});
    metrics.push_back({"fg_get_p99_during_compaction", pct(during, 0.99), "us"});
    metrics.push_back({"fg_get_cpu_p99_during_compaction", pct(during_cpu, 0.99), "us"});
    // Second round with the throttle hook holding compaction to 4 MB/s (what
    // the compactor actor does): erase another fifth of the keys, compact the
    // now sparse segments again, measure the foreground meanwhile.
    for (uint64_t i = 3; i < o.entries; i += 5)
      (void)a.erase(key(i));
    erased_more = true;
    const double rate = 4e6; // bytes per second
    auto t_start = std::chrono::steady_clock::now();
    uint64_t throttled_bytes = 0;
    a.set_throttle([&](uint64_t n) {
      throttled_bytes += n;
      auto due =
          t_start + std::chrono::duration<double>(static_cast<double>(throttled_bytes) / rate);
      std::this_thread::sleep_until(due);
    });
    running = true;
    ka::compaction_progress prog2;
    double comp2_s = 0;
    std::thread compactor2([&] {
      auto s = std::chrono::steady_clock::now();
      auto p = a.compact(0.6);
      comp2_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - s).count();
      if (p)
        prog2 = *p;
      running = false;
    });
    std::vector<uint64_t> during2, during2_cpu;
    while (running.load()) {
      auto l = measure(1000, g);
      during2.insert(during2.end(), l.begin(), l.end());
      during2_cpu.insert(during2_cpu.end(), cpu_lat.begin(), cpu_lat.end());
    }
    compactor2.join();
    a.set_throttle({});
    metrics.push_back(
        {"throttled_compaction_input_mb", static_cast<double>(prog2.bytes_done) / 1e6, "MB"});
    metrics.push_back({"throttled_compaction_throughput",
                       static_cast<double>(prog2.bytes_done) / 1e6 / comp2_s, "MB/s"});
    metrics.push_back(
        {"fg_get_samples_during_throttled", static_cast<double>(during2.size()), "gets"});
    metrics.push_back({"fg_get_p50_during_throttled", pct(during2, 0.5), "us"});
    metrics.push_back({"fg_get_p99_during_throttled", pct(during2, 0.99), "us"});
    metrics.push_back({"fg_get_cpu_p99_during_throttled", pct(during2_cpu, 0.99), "us"});
    opened->reset();
    (void)std::system(("rm -rf '" + dir + "'").c_str());
  }
  if (metrics.empty()) {
    if (own_dir)
      (void)std::system(("rm -rf '" + o.dir + "'").c_str());
    return 0;
  }
  if (o.csv)
    std::printf("\nmetric,value,unit\n");
  else
    std::printf("\n%-34s %12s %s\n", "metric", "value", "unit");
  for (auto& m : metrics) {
    if (o.csv)
      std::printf("%s,%.2f,%s\n", m.name.c_str(), m.value, m.unit.c_str());
    else
      std::printf("%-34s %12.2f %s\n", m.name.c_str(), m.value, m.unit.c_str());
  }
  if (own_dir)
    (void)std::system(("rm -rf '" + o.dir + "'").c_str());
  return 0;
}
