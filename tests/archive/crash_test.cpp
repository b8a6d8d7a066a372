// Crash tests: a child process runs a flush, a compaction or a retention drop
// and is SIGKILLed at a named crash point; the parent reopens the archive and
// checks every committed key. Each crash point must really be reached (the
// child must die by SIGKILL), so a renamed or skipped step fails the test.
#include "archive/archive.hpp"
#include "archive/format.hpp"
#include "archive_test_util.hpp"

#include <doctest/doctest.h>

#include <csignal>
#include <map>
#include <set>
#include <sys/wait.h>
#include <unistd.h>

using namespace kura;
using namespace kura::archive;
using test::make_entry;

namespace {

using model = std::map<std::string, std::string>;

archive_config crash_config(const std::string& path) {
  auto cfg = test::small_config(path);
  cfg.segment_bytes = 12 * 1024;
  cfg.block_bytes = 2048;
  // A SIGKILL keeps the page cache, so fsyncs cannot change what these tests
  // observe (they check the order of steps); skipping them keeps CI fast.
  // The fsync path itself is covered by the failing-write test.
  cfg.durable = false;
  return cfg;
}

/// Committed state: 600 keys, then 2/3 of them erased or overwritten, so that
/// most segments are sparse and compaction has several inputs.
model prepare(const std::string& path, const kura::clock& clk) {
  model m;
  auto a = kura::archive::open(crash_config(path), clk);
  REQUIRE(a.ok());
  auto now = clk.now_ms();
  for (int i = 0; i < 600; ++i) {
    auto k = "k" + std::to_string(i);
    m[k] = test::json_value(i, 150 + i % 200);
    REQUIRE((*a)->put(make_entry(k, m[k]), now).ok());
  }
  REQUIRE((*a)->flush().ok());
  for (int i = 0; i < 600; ++i) {
    auto k = "k" + std::to_string(i);
    if (i % 3 == 1) {
      REQUIRE((*a)->erase(k).ok());
      m.erase(k);
    } else if (i % 3 == 2) {
      m[k] = "second-" + k;
      REQUIRE((*a)->put(make_entry(k, m[k], 0, 2), now).ok());
    }
  }
  REQUIRE((*a)->flush().ok());
  return m;
}

/// Checks every key of the model (and that nothing else reads as present).
void verify(kura::archive::archive& a, const model& m, uint64_t now, bool allow_dropped = false) {
  for (int i = 0; i < 600; ++i) {
    auto k = "k" + std::to_string(i);
    auto r = a.get(k, now);
    REQUIRE_MESSAGE(r.ok(), r.err().to_string());
    auto it = m.find(k);
    if (it == m.end()) {
      CHECK_MESSAGE(!r->has_value(), k);
    } else if (r->has_value()) {
      CHECK_MESSAGE((*r)->value == it->second, k);
    } else {
      CHECK_MESSAGE(allow_dropped, "committed key lost: " << k);
    }
  }
}

/// Every segment file on disk is known to the index and vice versa.
void verify_no_orphans(kura::archive::archive& a, const std::string& path) {
  std::set<uint64_t> files, rows;
  auto names = posix_env::instance().list_dir(path);
  REQUIRE(names.ok());
  for (auto& n : *names) {
    uint64_t id;
    if (format::parse_segment_file_name(n, id))
      files.insert(id);
  }
  for (auto& s : a.inspect().segments)
    rows.insert(s.id);
  CHECK(files == rows);
}

enum class action { flush, compact, drop };

/// Runs `act` in a child that dies at the nth passage of `point`.
void crash_at(const std::string& path, const kura::clock& clk, action act, const char* point,
              int nth) {
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    test::fault_env fe;
    int seen = 0;
    fe.on_crash_point = [&](std::string_view where) {
      if (where == point && ++seen == nth)
        ::raise(SIGKILL);
    };
    auto cfg = crash_config(path);
    cfg.fs = &fe;
    if (act == action::drop)
      cfg.max_bytes = 20 * 1024; // forces retention to drop the oldest segments
    auto a = kura::archive::open(cfg, clk);
    if (!a.ok())
      ::_exit(2);
    auto now = clk.now_ms();
    if (act == action::flush) {
      for (int i = 0; i < 10; ++i)
        (void)(*a)->put(make_entry("new" + std::to_string(i), "fresh"), now);
      (void)(*a)->flush();
    } else if (act == action::compact) {
      (void)(*a)->compact(0.9);
    } else {
      (void)(*a)->enforce_retention(now);
    }
    ::_exit(0); // the crash point was not reached
  }
  int wst = 0;
  REQUIRE(::waitpid(pid, &wst, 0) == pid);
  REQUIRE_MESSAGE(WIFSIGNALED(wst), "child was not killed at " << point << " #" << nth << " (exit "
                                                               << WEXITSTATUS(wst) << ")");
  CHECK(WTERMSIG(wst) == SIGKILL);
}

} // namespace

TEST_CASE("a crash at any step of compaction leaves every committed key readable") {
  struct point {
    const char* name;
    int nth;
  };
  for (auto p : {point{"compact.block_written", 1}, point{"compact.block_written", 4},
                 point{"compact.output_synced", 1}, point{"compact.output_synced", 2},
                 point{"compact.index_switched", 1}, point{"compact.index_switched", 3},
                 point{"compact.input_removed", 1}, point{"compact.input_removed", 2}}) {
    CAPTURE(p.name);
    CAPTURE(p.nth);
    test::temp_dir dir;
    fake_clock clk;
    auto m = prepare(dir.path, clk);
    crash_at(dir.path, clk, action::compact, p.name, p.nth);
    {
      auto a = kura::archive::open(crash_config(dir.path), clk);
      REQUIRE(a.ok());
      verify(**a, m, clk.now_ms());
      verify_no_orphans(**a, dir.path);
      CHECK((*a)->stats().entries == m.size());
      // The interrupted job can be run again to its end.
      auto done = (*a)->compact(0.9);
      REQUIRE(done.ok());
      verify(**a, m, clk.now_ms());
      for (auto& s : (*a)->inspect().segments)
        CHECK(s.live_fraction >= 0.9);
    }
    auto a = kura::archive::open(crash_config(dir.path), clk);
    REQUIRE(a.ok());
    verify(**a, m, clk.now_ms());
    verify_no_orphans(**a, dir.path);
  }
}

TEST_CASE("a crash while flushing loses only the block being flushed") {
  for (auto p : {"flush.block_synced", "flush.index_committed"}) {
    CAPTURE(p);
    test::temp_dir dir;
    fake_clock clk;
    auto m = prepare(dir.path, clk);
    crash_at(dir.path, clk, action::flush, p, 1);
    auto a = kura::archive::open(crash_config(dir.path), clk);
    REQUIRE(a.ok());
    verify(**a, m, clk.now_ms());
    verify_no_orphans(**a, dir.path);
    auto fresh = (*a)->get("new3", clk.now_ms());
    REQUIRE(fresh.ok());
    // Committed means the index commit happened: before it the block is an
    // unreferenced tail, after it the entries are there.
    CHECK(fresh->has_value() == (std::string(p) == "flush.index_committed"));
    // New writes after the crash work and survive.
    REQUIRE((*a)->put(make_entry("after", "crash"), clk.now_ms()).ok());
    REQUIRE((*a)->flush().ok());
    CHECK((*(*a)->get("after", clk.now_ms()))->value == "crash");
  }
}

TEST_CASE("a crash while retention drops a segment leaves the rest readable") {
  for (auto p : {"drop.index_committed", "drop.file_removed"}) {
    CAPTURE(p);
    test::temp_dir dir;
    fake_clock clk;
    auto m = prepare(dir.path, clk);
    crash_at(dir.path, clk, action::drop, p, 1);
    auto a = kura::archive::open(crash_config(dir.path), clk);
    REQUIRE(a.ok());
    // Dropped keys are gone, the others read with their committed values.
    verify(**a, m, clk.now_ms(), true);
    verify_no_orphans(**a, dir.path);
    size_t present = 0;
    for (auto& [k, v] : m)
      present += (*a)->get(k, clk.now_ms())->has_value();
    CHECK(present < m.size());
    CHECK(present > 0);
    CHECK((*a)->stats().entries == present);
  }
}
