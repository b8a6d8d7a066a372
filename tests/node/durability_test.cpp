// The durability promise of L3 (issue 10), with SIGKILL of a real kura-node
// under load: after kill -9 a restarted node has every write acknowledged more
// than kura.l3.max-loss-window before the kill (the default, write-behind),
// and with kura.l3.sync every acknowledged write.
//
// Writers pipeline SETs of increasing keys ("w<writer>:<n>") and note when
// each reply arrived; after the kill the restarted node must hold, for each
// writer, every key up to the last one acknowledged early enough.
#include "node_process.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>

#include "tiers/wal.hpp"

using namespace kura::test;

namespace {

using steady = std::chrono::steady_clock;

/// One writer: acknowledged key count over time.
struct writer_log {
  std::mutex mtx;
  std::vector<std::pair<steady::time_point, uint64_t>> acked; ///< (when, keys 0..n-1 acked)
};

void write_until(uint16_t port, int id, std::atomic<bool>& stop, writer_log& log) {
  client c(port);
  if (!c.ok())
    return;
  const std::string value(64, 'v');
  uint64_t next = 0;
  while (!stop.load()) {
    std::string batch;
    for (int i = 0; i < 16; ++i)
      batch += client::multibulk(
          {"SET", "w" + std::to_string(id) + ":" + std::to_string(next + static_cast<uint64_t>(i)),
           value + std::to_string(next + static_cast<uint64_t>(i))});
    if (!c.send(batch))
      return;
    for (int i = 0; i < 16; ++i) {
      auto r = c.reply(5000);
      if (!r || *r != "+OK\r\n")
        return; // the node was killed
    }
    next += 16;
    std::lock_guard<std::mutex> g(log.mtx);
    log.acked.emplace_back(steady::now(), next);
  }
}

/// Keys of writer `id` acknowledged at or before `when`.
uint64_t acked_by(writer_log& log, steady::time_point when) {
  std::lock_guard<std::mutex> g(log.mtx);
  uint64_t n = 0;
  for (auto& [t, k] : log.acked)
    if (t <= when)
      n = k;
  return n;
}

/// A restart replays the log into LMDB and syncs it (or verifies LMDB)
/// before it serves: on a busy disk that can take longer than
/// node_process's 20 s, so a node still starting gets more time.
void wait_restarted(node_process& n) {
  if (!n.ready && n.pid > 0) // wait_ready() saw it exit otherwise
    n.ready = n.wait_ready(180000);
}

/// When key `k` of a writer was acknowledged.
steady::time_point acked_at(writer_log& log, uint64_t k) {
  std::lock_guard<std::mutex> g(log.mtx);
  for (auto& [t, n] : log.acked)
    if (n > k)
      return t;
  return steady::time_point::max();
}

uint64_t mono_ms(steady::time_point t) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count());
}

/// The values of an MGET reply ("" for a nil), or nullopt if it is not one.
std::optional<std::vector<std::optional<std::string>>> mget_values(const std::string& r) {
  if (r.empty() || r[0] != '*')
    return std::nullopt;
  std::vector<std::optional<std::string>> out;
  size_t p = r.find("\r\n");
  size_t n = std::stoul(r.substr(1, p - 1));
  p += 2;
  for (size_t i = 0; i < n; ++i) {
    if (p >= r.size() || r[p] != '$')
      return std::nullopt;
    size_t e = r.find("\r\n", p);
    long len = std::stol(r.substr(p + 1, e - p - 1));
    p = e + 2;
    if (len < 0) {
      out.emplace_back(std::nullopt);
      continue;
    }
    out.emplace_back(r.substr(p, static_cast<size_t>(len)));
    p += static_cast<size_t>(len) + 2;
  }
  return out;
}

/// The node's last "L3 durability lag" report before it was killed, if it
/// was not followed by "lag over": when (monotonic ms) the oldest write that
/// waited for the disk was handed over. The loss window does not hold while
/// the disk does not keep up (docs/operations.md, "Durability"), and the
/// node says so in its log.
std::optional<uint64_t> open_lag_since(const std::string& log) {
  std::optional<uint64_t> since;
  std::istringstream in(log);
  std::string line;
  while (std::getline(in, line)) {
    if (line.find("L3 durability lag over") != std::string::npos) {
      since.reset();
    } else if (auto p = line.find("(since monotonic "); p != std::string::npos) {
      since = std::stoull(line.substr(p + 17));
    }
  }
  return since;
}

/// Runs `writers` writers against a node started with `args`, kills it with
/// SIGKILL after `load`, restarts it on the same data and checks that every
/// key acknowledged `window` before the kill is there with its value. With
/// `disk_excuse`, a write the node reported as waiting for a disk that did
/// not keep up, until the kill, may be lost (the documented limit of the
/// window); nothing else may.
void kill_and_check(const std::string& name, std::vector<std::string> args,
                    std::chrono::milliseconds window, std::chrono::milliseconds load, int writers,
                    bool disk_excuse) {
  INFO("case: " << name);
  temp_dir dir;
  std::string data = dir.path + "/node";
  std::vector<writer_log> logs(static_cast<size_t>(writers));
  steady::time_point killed_at;
  std::string killed_log;
  {
    node_process n(args, data);
    REQUIRE(n.ready);
    std::atomic<bool> stop{false};
    std::vector<std::thread> ts;
    for (int w = 0; w < writers; ++w)
      ts.emplace_back(write_until, n.port, w, std::ref(stop),
                      std::ref(logs[static_cast<size_t>(w)]));
    // the load runs from the first acknowledgement of every writer: a node's
    // first fdatasync can wait seconds behind a busy disk (another test's
    // dirty pages), which says nothing about what a kill loses
    auto first_acks = steady::now() + std::chrono::seconds(60);
    auto all_acked = [&] {
      for (auto& log : logs)
        if (acked_by(log, steady::now()) == 0)
          return false;
      return true;
    };
    while (!all_acked() && steady::now() < first_acks)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::this_thread::sleep_for(load);
    killed_at = steady::now();
    CHECK(n.stop(SIGKILL) == 128 + SIGKILL);
    stop = true;
    for (auto& t : ts)
      t.join();
    killed_log = n.log();
  }
  node_process again(args, data);
  wait_restarted(again);
  REQUIRE_MESSAGE(again.ready, again.log());
  client c(again.port);
  REQUIRE(c.ok());
  auto lag = open_lag_since(killed_log);
  uint64_t checked = 0;
  for (int w = 0; w < writers; ++w) {
    auto& log = logs[static_cast<size_t>(w)];
    uint64_t must = acked_by(log, killed_at - window);
    uint64_t all = acked_by(log, killed_at);
    INFO("writer " << w << ": " << all << " keys acknowledged, " << must
                   << " of them more than the window before the kill");
    CHECK(all > 0);
    uint64_t lost = 0, wrong = 0, first_lost = UINT64_MAX;
    for (uint64_t i = 0; i < must; i += 500) {
      std::vector<std::string> mget{"MGET"};
      uint64_t end = std::min(must, i + 500);
      for (uint64_t k = i; k < end; ++k)
        mget.push_back("w" + std::to_string(w) + ":" + std::to_string(k));
      auto r = c.call(mget);
      REQUIRE(r);
      auto vals = mget_values(*r);
      REQUIRE_MESSAGE(vals, *r);
      REQUIRE(vals->size() == end - i);
      for (uint64_t k = i; k < end; ++k) {
        auto& v = (*vals)[k - i];
        if (!v) {
          ++lost;
          first_lost = std::min(first_lost, k);
        } else if (*v != std::string(64, 'v') + std::to_string(k)) {
          ++wrong;
        }
      }
      checked += end - i;
    }
    CHECK_MESSAGE(wrong == 0, wrong << " keys came back with a wrong value");
    if (lost == 0)
      continue;
    auto at = acked_at(log, first_lost);
    auto before_kill =
        std::chrono::duration_cast<std::chrono::milliseconds>(killed_at - at).count();
    std::string what = std::to_string(lost) + " keys lost, the first w" + std::to_string(w) + ":" +
                       std::to_string(first_lost) + " acknowledged " + std::to_string(before_kill) +
                       " ms before the kill";
    if (disk_excuse && lag && *lag <= mono_ms(at)) {
      MESSAGE(what << ": the node reported that they waited for a disk that did not keep up "
                      "(since monotonic "
                   << *lag << " ms), the documented limit of the window");
      continue;
    }
    FAIL_CHECK(what << "; the killed node's log:\n" << killed_log);
  }
  MESSAGE(name << ": keys checked after the restart: " << checked);
}

} // namespace

TEST_CASE("kill -9 under load loses no write acknowledged more than max-loss-window before") {
  // default settings: write-behind, kura.l3.max-loss-window = 1s
  kill_and_check("default", {"--memory-bytes=268435456"}, std::chrono::milliseconds(1000),
                 std::chrono::milliseconds(2500), 3, true);
}

TEST_CASE("kura.l3.sync: kill -9 under load loses no acknowledged write") {
  // every acknowledged write, whatever the disk: the reply waits for it
  kill_and_check("kura.l3.sync", {"--memory-bytes=268435456", "--kura.l3.sync"},
                 std::chrono::milliseconds(0), std::chrono::milliseconds(1500), 3, false);
}

TEST_CASE("kura.l3.wal=false: the loss window holds on the LMDB-only path too") {
  kill_and_check("kura.l3.wal=false", {"--memory-bytes=268435456", "--kura.l3.wal=false"},
                 std::chrono::milliseconds(1000), std::chrono::milliseconds(2000), 2, true);
}

TEST_CASE("a torn write-ahead log tail is cut at restart; the intact records are served") {
  temp_dir dir;
  std::string data = dir.path + "/node";
  std::vector<std::string> args{"--memory-bytes=268435456", "--kura.l3.sync"};
  constexpr int n_keys = 300;
  {
    node_process n(args, data);
    REQUIRE(n.ready);
    client c(n.port);
    REQUIRE(c.ok());
    for (int i = 0; i < n_keys; ++i) // each reply comes after the log's fdatasync
      REQUIRE(*c.call({"SET", "torn:" + std::to_string(i), "value-" + std::to_string(i)}) ==
              "+OK\r\n");
    CHECK(n.stop(SIGKILL) == 128 + SIGKILL);
  }
  // a record cut by the crash: a length that runs past the end, and junk
  auto segs = kura::wal::segment_files(data + "/l3-wal");
  REQUIRE(!segs.empty());
  {
    std::ofstream f(segs.back(), std::ios::binary | std::ios::app);
    f << std::string("\x40\x00\x00\x00\x12\x34\x56\x78torn-value-never-served", 31);
  }
  node_process again(args, data);
  wait_restarted(again);
  REQUIRE_MESSAGE(again.ready, again.log());
  CHECK(again.log().find("cut") != std::string::npos);
  client c(again.port);
  REQUIRE(c.ok());
  for (int i = 0; i < n_keys; ++i)
    CHECK(*c.call({"GET", "torn:" + std::to_string(i)}) ==
          "$" + std::to_string(6 + std::to_string(i).size()) + "\r\nvalue-" + std::to_string(i) +
              "\r\n");
  CHECK(*c.call({"DBSIZE"}) == ":" + std::to_string(n_keys) + "\r\n");
}

TEST_CASE("verify-on-open: lazy and full restarts serve L3 data and stop cleanly") {
  temp_dir dir;
  std::string data = dir.path + "/node";
  constexpr int n_keys = 20000; // several slices of the lazy background scan
  {
    node_process n({"--memory-bytes=268435456"}, data);
    REQUIRE(n.ready);
    client c(n.port);
    REQUIRE(c.ok());
    std::string batch;
    for (int i = 0; i < n_keys; ++i)
      batch += client::multibulk({"SET", "lazy:" + std::to_string(i), "v" + std::to_string(i)});
    REQUIRE(c.send(batch));
    for (int i = 0; i < n_keys; ++i)
      REQUIRE(c.reply(10000));
    CHECK(n.stop(SIGTERM) == 0);
  }
  for (const char* mode : {"lazy", "full", "lazy"}) {
    INFO("verify-on-open=" << mode);
    node_process n({"--memory-bytes=268435456", std::string("--kura.l3.verify-on-open=") + mode},
                   data);
    wait_restarted(n);
    REQUIRE(n.ready);
    client c(n.port);
    REQUIRE(c.ok());
    // memory starts empty: these come from L3, while the lazy scan may still run
    for (int i = 0; i < n_keys; i += 997)
      CHECK(*c.call({"GET", "lazy:" + std::to_string(i)}) ==
            "$" + std::to_string(1 + std::to_string(i).size()) + "\r\nv" + std::to_string(i) +
                "\r\n");
    CHECK(*c.call({"DBSIZE"}) == ":" + std::to_string(n_keys) + "\r\n");
    CHECK(n.stop(SIGTERM) == 0);
  }
}
