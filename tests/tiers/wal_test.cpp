// The L3 write-ahead log (tiers/wal.hpp): records come back in order from a
// replay, a torn or damaged tail is cut and never returned as data, sealed
// logs hold no plaintext, retired segments leave the disk, and records a
// killed process wrote survive it.
#include "tests/test_util.hpp"
#include "tiers/clock.hpp"
#include "tiers/wal.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace kura;
using kura::testing::temp_dir;

namespace {

entry make(std::string k, std::string v, uint64_t exp = 0) {
  entry e;
  e.key = std::move(k);
  e.value = std::move(v);
  e.expiry_ms = exp;
  e.ver = version{12345, 7};
  e.flags = 0;
  return e;
}

std::vector<wal_record> replay_all(const wal_config& cfg, wal_replay_stats* st = nullptr) {
  std::vector<wal_record> out;
  auto r = wal::replay(cfg, [&](wal_record&& rec) {
    out.push_back(std::move(rec));
    return status{};
  });
  std::string why = r.ok() ? std::string() : r.err().to_string();
  INFO(why);
  REQUIRE(r.ok());
  if (st)
    *st = *r;
  return out;
}

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

std::string all_bytes(const std::string& dir) {
  std::string s;
  for (auto& p : wal::segment_files(dir))
    s += slurp(p);
  return s;
}

} // namespace

TEST_CASE("crc32c: the Castagnoli check value") {
  CHECK(crc32c("123456789") == 0xE3069283u);
  CHECK(crc32c("") == 0u);
  std::string big(1000, 'x');
  // incremental == whole
  CHECK(crc32c(big) == crc32c(big.substr(500), crc32c(big.substr(0, 500))));
}

TEST_CASE("wal: records come back in order with every field") {
  temp_dir dir;
  wal_config cfg;
  cfg.dir = dir.sub("wal");
  {
    auto w = wal::open(cfg, real_clock::instance());
    REQUIRE(w.ok());
    CHECK((*w)->append_put(make("a", "1", 99), 1) == 1);
    CHECK((*w)->append_put(make("b", std::string(100000, 'z')), 1) == 2);
    CHECK((*w)->append_erase("a", 2) == 3);
    CHECK((*w)->append_clear(3) == 4);
    CHECK((*w)->append_put(make("c", ""), 3) == 5);
    REQUIRE((*w)->flush().ok());
    CHECK((*w)->synced() == 5);
    CHECK((*w)->written() == 5);
  }
  wal_replay_stats st;
  auto recs = replay_all(cfg, &st);
  REQUIRE(recs.size() == 5);
  CHECK(st.cut_bytes == 0);
  CHECK(recs[0].kind == wal_record::put);
  CHECK(recs[0].e == make("a", "1", 99));
  CHECK(recs[0].batch == 1);
  CHECK(recs[2].batch == 2);
  CHECK(recs[4].batch == 3);
  CHECK(recs[1].e.value.size() == 100000);
  CHECK(recs[2].kind == wal_record::erase);
  CHECK(recs[2].e.key == "a");
  CHECK(recs[3].kind == wal_record::clear);
  CHECK(recs[4].e == make("c", ""));
  REQUIRE(wal::remove_segments(cfg.dir).ok());
  CHECK(wal::segment_files(cfg.dir).empty());
  CHECK(replay_all(cfg).empty());
}

TEST_CASE("wal: shared values are written in their place, plain and sealed") {
  // append_put_shared keeps the value by reference; the writer thread
  // checksums (or seals) and writes it between the records around it
  auto kr = crypto::keyring::from_keys({{1, std::string(32, 'K')}});
  REQUIRE(kr.ok());
  for (bool sealed : {false, true}) {
    CAPTURE(sealed);
    temp_dir dir;
    wal_config cfg;
    cfg.dir = dir.sub("wal");
    if (sealed)
      cfg.keys = *kr;
    std::string big(3u << 20, '\0');
    for (size_t i = 0; i < big.size(); ++i)
      big[i] = static_cast<char>('a' + (i * 7919) % 26);
    auto shared = std::make_shared<const std::string>(big);
    auto meta = make("big-key", "", 4242);
    meta.flags = 1;
    {
      auto w = wal::open(cfg, real_clock::instance());
      REQUIRE(w.ok());
      CHECK((*w)->append_put(make("a", "1"), 1) == 1);
      CHECK((*w)->append_put_shared(meta, shared, 1) == 2);
      CHECK((*w)->append_put_shared(make("second", ""), shared, 2) == 3); // back to back
      CHECK((*w)->append_erase("a", 2) == 4);
      REQUIRE((*w)->flush().ok());
      CHECK((*w)->synced() == 4);
      CHECK((*w)->append_put_shared(make("last", ""), shared, 3) == 5); // by the writer thread
    }
    CHECK(shared.use_count() == 1); // the log let go of it
    wal_replay_stats st;
    auto recs = replay_all(cfg, &st);
    REQUIRE(recs.size() == 5);
    CHECK(st.cut_bytes == 0);
    CHECK(recs[0].e == make("a", "1"));
    CHECK(recs[1].e.key == "big-key");
    CHECK(recs[1].e.value == big);
    CHECK(recs[1].e.expiry_ms == 4242);
    CHECK(recs[1].e.flags == 1);
    CHECK(recs[1].e.ver == meta.ver);
    CHECK(recs[1].batch == 1);
    CHECK(recs[2].e.key == "second");
    CHECK(recs[2].e.value == big);
    CHECK(recs[2].batch == 2);
    CHECK(recs[3].kind == wal_record::erase);
    CHECK(recs[4].e.key == "last");
    CHECK(recs[4].e.value == big);
    auto raw = all_bytes(cfg.dir);
    CHECK((raw.find("big-key") == std::string::npos) == sealed);
    CHECK((raw.find(big.substr(0, 64)) == std::string::npos) == sealed);
  }
}

TEST_CASE("wal: a torn tail is cut, a damaged record ends its segment") {
  temp_dir dir;
  wal_config cfg;
  cfg.dir = dir.sub("wal");
  {
    auto w = wal::open(cfg, real_clock::instance());
    REQUIRE(w.ok());
    for (int i = 0; i < 10; ++i)
      (*w)->append_put(make("k" + std::to_string(i), "value-" + std::to_string(i)), 1);
    REQUIRE((*w)->flush().ok());
  }
  auto files = wal::segment_files(cfg.dir);
  REQUIRE(files.size() == 1);
  auto size = std::filesystem::file_size(files[0]);
  SUBCASE("torn tail") {
    std::filesystem::resize_file(files[0], size - 3); // a write cut by a crash
    wal_replay_stats st;
    auto recs = replay_all(cfg, &st);
    REQUIRE(recs.size() == 9);
    for (int i = 0; i < 9; ++i)
      CHECK(recs[static_cast<size_t>(i)].e.value == "value-" + std::to_string(i));
    CHECK(st.cut_bytes > 0);
    CHECK(st.cut_reason.find("cut") != std::string::npos);
  }
  SUBCASE("damaged record") {
    // flip one byte of the 5th record's value
    std::string bytes = slurp(files[0]);
    auto at = bytes.find("value-4");
    REQUIRE(at != std::string::npos);
    bytes[at + 6] = 'X';
    std::ofstream(files[0], std::ios::binary | std::ios::trunc) << bytes;
    wal_replay_stats st;
    auto recs = replay_all(cfg, &st);
    CHECK(recs.size() == 4);
    for (auto& r : recs)
      CHECK(r.e.value.find('X') == std::string::npos);
    CHECK(st.cut_reason.find("checksum") != std::string::npos);
  }
  SUBCASE("foreign file") {
    std::ofstream(files[0], std::ios::binary | std::ios::trunc) << "not a wal segment at all";
    auto r = wal::replay(cfg, [](wal_record&&) { return status{}; });
    REQUIRE(!r.ok());
    CHECK(r.code() == errc::foreign_file);
  }
}

TEST_CASE("wal: sealed records hold no plaintext") {
  temp_dir dir;
  auto kr = crypto::keyring::from_keys({{1, std::string(32, 'K')}});
  REQUIRE(kr.ok());
  wal_config cfg;
  cfg.dir = dir.sub("wal");
  cfg.keys = *kr;
  {
    auto w = wal::open(cfg, real_clock::instance());
    REQUIRE(w.ok());
    (*w)->append_put(make("secret-key-name", "secret-value-bytes"), 1);
    (*w)->append_erase("another-secret-key", 1);
    REQUIRE((*w)->flush().ok());
  }
  auto raw = all_bytes(cfg.dir);
  CHECK(raw.find("secret-key-name") == std::string::npos);
  CHECK(raw.find("secret-value-bytes") == std::string::npos);
  CHECK(raw.find("another-secret-key") == std::string::npos);
  auto recs = replay_all(cfg);
  REQUIRE(recs.size() == 2);
  CHECK(recs[0].e.value == "secret-value-bytes");
  CHECK(recs[1].e.key == "another-secret-key");
  auto plain_cfg = cfg;
  plain_cfg.keys = nullptr;
  auto r = wal::replay(plain_cfg, [](wal_record&&) { return status{}; });
  REQUIRE(!r.ok());
  CHECK(r.code() == errc::bad_key);
  // and a plaintext log is refused when a key is set
  temp_dir dir2;
  wal_config p2;
  p2.dir = dir2.sub("wal");
  {
    auto w = wal::open(p2, real_clock::instance());
    REQUIRE(w.ok());
    (*w)->append_put(make("k", "v"), 1);
  }
  p2.keys = *kr;
  auto r2 = wal::replay(p2, [](wal_record&&) { return status{}; });
  REQUIRE(!r2.ok());
  CHECK(r2.code() == errc::corrupt);
}

TEST_CASE("wal: segments whose batches LMDB committed are deleted") {
  temp_dir dir;
  wal_config cfg;
  cfg.dir = dir.sub("wal");
  cfg.segment_bytes = 256; // a few records per segment
  auto w = wal::open(cfg, real_clock::instance());
  REQUIRE(w.ok());
  for (uint64_t b = 1; b <= 20; ++b) {
    (*w)->append_put(make("key" + std::to_string(b), std::string(100, 'v')), b);
    REQUIRE((*w)->flush().ok()); // one write per batch: segments fill up
  }
  auto before = wal::segment_files(cfg.dir).size();
  CHECK(before >= 5);
  // LMDB committed batches up to 10: rotate() deletes their segments now
  REQUIRE((*w)->rotate(10).ok());
  auto after = wal::segment_files(cfg.dir);
  CHECK(after.size() < before);
  // every batch above 10 is still in the log
  std::set<std::string> keys;
  auto recs = replay_all(cfg);
  for (auto& r : recs)
    keys.insert(r.e.key);
  for (uint64_t b = 11; b <= 20; ++b)
    CHECK(keys.count("key" + std::to_string(b)) == 1);
  CHECK(keys.count("key1") == 0);
  // everything committed: only the fresh active segment is left
  REQUIRE((*w)->rotate(20).ok());
  CHECK(wal::segment_files(cfg.dir).size() == 1);
  CHECK(replay_all(cfg).empty());
}

TEST_CASE("wal: the writer thread writes without flush(), and a killed process keeps it") {
  temp_dir dir;
  wal_config cfg;
  cfg.dir = dir.sub("wal");
  cfg.write_interval_ms = 5;
  cfg.sync_interval_ms = 60000; // no fdatasync: the page cache is enough for kill -9
  constexpr int n = 5000;
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    auto w = wal::open(cfg, real_clock::instance());
    if (!w.ok())
      ::_exit(3);
    for (int i = 0; i < n; ++i)
      (*w)->append_put(make("k" + std::to_string(i), "v" + std::to_string(i)), 1);
    while ((*w)->written() < static_cast<uint64_t>(n))
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ::raise(SIGKILL);
    ::_exit(4);
  }
  int wst = 0;
  REQUIRE(::waitpid(pid, &wst, 0) == pid);
  REQUIRE(WIFSIGNALED(wst));
  CHECK(WTERMSIG(wst) == SIGKILL);
  auto recs = replay_all(cfg);
  REQUIRE(recs.size() == static_cast<size_t>(n));
  for (int i = 0; i < n; i += 499)
    CHECK(recs[static_cast<size_t>(i)].e.value == "v" + std::to_string(i));
}

TEST_CASE("wal: sync_each fdatasyncs what kick() asks for and reports it") {
  temp_dir dir;
  wal_config cfg;
  cfg.dir = dir.sub("wal");
  cfg.sync_each = true;
  cfg.write_interval_ms = 1000; // only kick() makes it write soon
  auto w = wal::open(cfg, real_clock::instance());
  REQUIRE(w.ok());
  std::atomic<int> calls{0};
  (*w)->set_on_synced([&] { ++calls; });
  auto lsn = (*w)->append_put(make("k", "v"), 1);
  (*w)->kick();
  for (int i = 0; i < 5000 && (*w)->synced() < lsn; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  CHECK((*w)->synced() >= lsn);
  CHECK(calls.load() >= 1);
  CHECK((*w)->syncs() >= 1);
}

TEST_CASE("wal: key rotation seals later records with the new key in a new segment") {
  temp_dir dir;
  auto k1 = crypto::keyring::from_keys({{1, std::string(32, 'A')}});
  auto k12 = crypto::keyring::from_keys({{1, std::string(32, 'A')}, {2, std::string(32, 'B')}});
  auto k2 = crypto::keyring::from_keys({{2, std::string(32, 'B')}});
  REQUIRE((k1.ok() && k12.ok() && k2.ok()));
  wal_config cfg;
  cfg.dir = dir.sub("wal");
  cfg.keys = *k1;
  {
    auto w = wal::open(cfg, real_clock::instance());
    REQUIRE(w.ok());
    (*w)->append_put(make("old", "sealed-with-1"), 1);
    REQUIRE((*w)->set_keys(*k12).ok());
    (*w)->append_put(make("new", "sealed-with-2"), 2);
    REQUIRE((*w)->flush().ok());
    CHECK(wal::segment_files(cfg.dir).size() == 2);
    // LMDB committed batch 1: the segment sealed with key 1 goes
    REQUIRE((*w)->rotate(1).ok());
  }
  cfg.keys = *k2; // key 1 retired from the key file
  auto recs = replay_all(cfg);
  REQUIRE(recs.size() == 1);
  CHECK(recs[0].e.value == "sealed-with-2");
}

namespace {

/// A disk whose fdatasync blocks until the test opens the gate (no sleeps):
/// counts the calls that entered it and records the inodes it synced.
struct slow_disk {
  std::mutex mtx;
  std::condition_variable cv;
  bool open = false;
  int entered = 0;
  int fail_next = 0; ///< calls that fail with EIO
  std::set<ino_t> synced;
  int sync(int fd) {
    std::unique_lock<std::mutex> lk(mtx);
    ++entered;
    cv.notify_all();
    cv.wait(lk, [&] { return open; });
    if (fail_next > 0) {
      --fail_next;
      errno = EIO;
      return -1;
    }
    struct stat sb {};
    if (::fstat(fd, &sb) == 0)
      synced.insert(sb.st_ino);
    return ::fdatasync(fd);
  }
  void set_open(bool o) {
    std::lock_guard<std::mutex> g(mtx);
    open = o;
    cv.notify_all();
  }
  int calls() {
    std::lock_guard<std::mutex> g(mtx);
    return entered;
  }
};

/// Polls `f` until it holds or a generous deadline passes.
template <class F>
bool eventually(F f) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!f()) {
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

} // namespace

TEST_CASE("wal: records keep reaching the file while an fdatasync waits on the disk") {
  for (bool sync_each : {false, true}) {
    INFO("sync_each=" << sync_each);
    temp_dir dir;
    slow_disk disk;
    wal_config cfg;
    cfg.dir = dir.sub("wal");
    cfg.write_interval_ms = 1;
    cfg.sync_interval_ms = 1;
    cfg.sync_each = sync_each;
    cfg.sync_fn = [&](int fd) { return disk.sync(fd); };
    auto w = wal::open(cfg, real_clock::instance());
    REQUIRE(w.ok());
    (*w)->append_put(make("first", "v"), 1);
    (*w)->kick();
    // the syncer is now stuck in the disk's fdatasync
    REQUIRE(eventually([&] { return disk.calls() >= 1; }));
    for (int i = 0; i < 100; ++i) {
      (*w)->append_put(make("k" + std::to_string(i), std::string(100, 'x')), 1);
      if (i % 10 == 0)
        (*w)->kick();
    }
    // every record is written (a killed process keeps it), none is synced
    CHECK(eventually([&] { return (*w)->written() == 101; }));
    CHECK((*w)->unwritten_bytes() == 0);
    CHECK((*w)->unwritten_age_ms() == 0);
    CHECK((*w)->synced() == 0);
    CHECK(replay_all(cfg).size() == 101);
    disk.set_open(true);
    CHECK(eventually([&] { return (*w)->synced() == 101; }));
  }
}

TEST_CASE("wal: a segment closed at rotation is fdatasynced before later records count") {
  temp_dir dir;
  slow_disk disk;
  disk.set_open(true);
  wal_config cfg;
  cfg.dir = dir.sub("wal");
  cfg.segment_bytes = 4096;
  cfg.write_interval_ms = 1;
  cfg.sync_fn = [&](int fd) { return disk.sync(fd); };
  auto w = wal::open(cfg, real_clock::instance());
  REQUIRE(w.ok());
  for (int i = 0; i < 300; ++i) {
    (*w)->append_put(make("k" + std::to_string(i), std::string(100, 'x')), 1);
    if (i % 20 == 0) // the writer writes one chunk per round: several segments
      REQUIRE(eventually([&] { return (*w)->written() == static_cast<uint64_t>(i + 1); }));
  }
  REQUIRE((*w)->flush().ok());
  CHECK((*w)->synced() == 300);
  auto segs = wal::segment_files(cfg.dir);
  CHECK(segs.size() >= 4);
  std::lock_guard<std::mutex> g(disk.mtx);
  for (auto& p : segs) {
    struct stat sb {};
    REQUIRE(::stat(p.c_str(), &sb) == 0);
    INFO(p << " was never fdatasynced");
    CHECK(disk.synced.count(sb.st_ino) == 1);
  }
}

TEST_CASE("wal: a failed fdatasync is reported and retried, and synced() waits for it") {
  temp_dir dir;
  slow_disk disk;
  disk.fail_next = 1 << 30; // until the test mends the disk
  disk.set_open(true);
  wal_config cfg;
  cfg.dir = dir.sub("wal");
  cfg.write_interval_ms = 1;
  cfg.sync_interval_ms = 1;
  cfg.sync_fn = [&](int fd) { return disk.sync(fd); };
  auto w = wal::open(cfg, real_clock::instance());
  REQUIRE(w.ok());
  (*w)->append_put(make("a", "1"), 1);
  auto first = (*w)->flush();
  CHECK(!first.ok());
  CHECK((*w)->synced() == 0);
  CHECK((*w)->last_error().message().find("fdatasync") != std::string::npos);
  {
    std::lock_guard<std::mutex> g(disk.mtx);
    disk.fail_next = 0;
  }
  // the syncer retries on its own
  CHECK(eventually([&] { return (*w)->synced() == 1; }));
  CHECK((*w)->flush().ok());
}
