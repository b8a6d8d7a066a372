// The single-node write path (spawn_store + the L3 actor + the archive link)
// killed with SIGKILL right after L3 applied writes that supersede archived
// copies, before L3 committed them: a forked child opens real LMDB and
// archive files whose keys all live in the archive, overwrites some keys
// (kv_set) and reads others (kv_get: an archive hit is written back to L3),
// waits until the L3 actor has applied every one of those writes (its batch
// is not due for an hour), and dies. The parent reopens the files as a
// restarting node does (the write-ahead log replayed, when there is one) and
// reads every key: each must read its old value or the new one, never nil
// (the promise is that the newest write may be lost, never that an older
// value vanishes). With a commit before the kill, every key reads its new
// value and the archive no longer holds the superseded copies.
#include "actors/archive_actors.hpp"
#include "test_util.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace kura;
using namespace kura::actors;

namespace {

using temp_dir = kura::testing::temp_dir;

constexpr int n_keys = 40; // k0..k19 are overwritten, k20..k39 read

std::string key_of(int i) {
  return "k" + std::to_string(i);
}

std::string value_of(int i, int gen) {
  return "v" + std::to_string(gen) + ":" + key_of(i) + ":" + std::string(200, 'a' + i % 26);
}

std::shared_ptr<archive::archive> open_archive(const std::string& dir, const kura::clock& clk) {
  archive::archive_config ac;
  ac.path = dir + "/archive";
  ac.segment_bytes = 64 * 1024;
  ac.durable = false; // a killed process keeps what it wrote; no machine crash here
  auto a = archive::archive::open(ac, clk);
  REQUIRE(a);
  return std::shared_ptr<archive::archive>(std::move(*a));
}

std::shared_ptr<l3_lmdb> open_l3(const std::string& dir, const kura::clock& clk) {
  l3_config lc;
  lc.path = dir + "/l3";
  lc.map_size = 64ull << 20;
  lc.batch_max_writes = 1u << 20;
  lc.batch_max_ms = 3'600'000; // never due during the test: only sync() commits
  auto l3 = l3_lmdb::open(lc, clk);
  if (!l3)
    return nullptr;
  return std::shared_ptr<l3_lmdb>(std::move(*l3));
}

wal_config log_config(const std::string& dir) {
  return node_wal_config(dir + "/wal", 1000, false, nullptr);
}

/// The child: serves the files in `dir` through the actors, overwrites
/// k0..k19, reads k20..k39, waits until L3 applied those 40 writes, commits
/// L3 first when `commit`, and dies by SIGKILL. Exit codes name a failure.
[[noreturn]] void child(const std::string& dir, bool with_log, bool commit) {
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  caf::actor_system sys{cfg};
  auto& clk = real_clock::instance();
  auto l3 = open_l3(dir, clk);
  if (!l3)
    _exit(10);
  auto ar = open_archive(dir, clk);
  auto l4 = spawn_l4(sys, ar, l4_config{}, clk);
  l4.link->attach(*l3, clk);
  std::unique_ptr<wal> log;
  if (with_log) {
    auto r = recover_wal(*l3, l4.link.get(), log_config(dir), clk, nullptr);
    if (!r)
      _exit(11);
    log = std::move(*r);
  }
  store_config sc;
  sc.ks.memory_bytes = 16ull << 20;
  auto h = spawn_store(sys, sc, l3, clk, l4.link, std::move(log));
  caf::scoped_actor self{sys};
  auto ask = [&](auto... xs) {
    kv_reply out;
    out.error = "no reply";
    self->request(h.broker, std::chrono::seconds(10), xs...)
        .receive([&](kv_reply& r) { out = std::move(r); }, [&](caf::error&) {});
    return out;
  };
  for (int i = 0; i < n_keys / 2; ++i)
    if (!ask(kv_set_atom::value, key_of(i), value_of(i, 1), uint64_t{0}).error.empty())
      _exit(12);
  for (int i = n_keys / 2; i < n_keys; ++i) {
    auto r = ask(kv_get_atom::value, key_of(i));
    if (!r.found || r.value != value_of(i, 0))
      _exit(13);
  }
  // every write applied by the L3 actor (in its pending batch, not committed)
  for (int spin = 0; h.core->l3_stats->get().applied < static_cast<uint64_t>(n_keys); ++spin) {
    if (spin > 4000)
      _exit(14);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (h.core->l3_stats->get().pending == 0 && !commit)
    _exit(15); // the test would prove nothing: L3 committed on its own
  if (commit)
    stop_store(sys, h); // commits and syncs L3
  ::raise(SIGKILL);
  _exit(16);
}

std::string run(const std::string& dir, bool with_log, bool commit) {
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0)
    child(dir, with_log, commit);
  int ws = 0;
  REQUIRE(::waitpid(pid, &ws, 0) == pid);
  if (WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL)
    return "";
  return WIFEXITED(ws) ? "child exited with " + std::to_string(WEXITSTATUS(ws))
                       : "child died by signal " + std::to_string(WTERMSIG(ws));
}

} // namespace

TEST_CASE("kill -9 before L3 committed writes that supersede archived copies loses no key") {
  bool with_log = false;
  bool commit = false;
  SUBCASE("no write-ahead log, killed before L3's commit") {}
  SUBCASE("write-ahead log, killed before L3's commit") {
    with_log = true;
  }
  SUBCASE("no write-ahead log, killed after L3's commit") {
    commit = true;
  }
  temp_dir d;
  INFO("dir " << d.path << " log " << with_log << " commit " << commit);
  auto& clk = real_clock::instance();
  {
    // generation 0 of every key, in the archive only (older than any write)
    auto ar = open_archive(d.path, clk);
    for (int i = 0; i < n_keys; ++i) {
      entry e;
      e.key = key_of(i);
      e.value = value_of(i, 0);
      e.ver = kura::version{static_cast<uint64_t>(i + 1) << 16, 1};
      REQUIRE(ar->put(std::move(e), clk.now_ms()).ok());
    }
    REQUIRE(ar->flush().ok());
  }
  auto died = run(d.path, with_log, commit);
  REQUIRE(died == "");
  // restart: open L3 and L4 as a node does (the log replayed)
  auto l3 = open_l3(d.path, clk);
  REQUIRE(l3);
  auto ar = open_archive(d.path, clk);
  auto counters = std::make_shared<l4_counters>();
  archive_link link(ar, caf::actor{}, counters);
  link.attach(*l3, clk);
  if (with_log) {
    auto r = recover_wal(*l3, &link, log_config(d.path), clk, nullptr);
    REQUIRE(r);
  }
  for (int i = 0; i < n_keys; ++i) {
    INFO(key_of(i));
    auto in3 = l3->get(key_of(i), clk.now_ms(), false);
    REQUIRE(in3);
    auto in4 = ar->get(key_of(i), clk.now_ms(), false);
    REQUIRE(in4);
    if (*in3) {
      // overwritten keys: the new value; read keys: the value they had
      CHECK((*in3)->value == value_of(i, i < n_keys / 2 ? 1 : 0));
    } else {
      CHECK_MESSAGE(*in4, "the key reads nil");
      if (*in4)
        CHECK((*in4)->value == value_of(i, 0));
    }
    if (commit) {
      CHECK(*in3);       // committed before the kill
      CHECK_FALSE(*in4); // and the superseded copy was dropped
    }
  }
  CHECK(counters->errors == 0);
}
