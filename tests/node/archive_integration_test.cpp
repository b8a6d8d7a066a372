// L4 in a real kura-node: a tiny L3 budget pushes entries into the archive;
// reads bring them back (KURA.TIER says l4, then the key is promoted), DEL
// reaches the archive, a SIGKILL + restart keeps archived keys, and
// `kura compact --json` / `kura archive --json` work against a live node and
// fail clearly against a dead one.
#include "node_process.hpp"

#include <doctest/doctest.h>

#include <algorithm>

using namespace kura::test;

namespace {

std::string kura_cli(uint16_t port, const std::string& args, int& rc) {
  return run_shell(bin_dir() + "/kura --port=" + std::to_string(port) + " --timeout=10000 " + args +
                       " 2>&1",
                   &rc);
}

std::string key_of(int i) {
  return "key:" + std::to_string(i);
}

/// 200 pseudo-random letters after a prefix: compresses poorly, so the small
/// segments fill up after a few hundred entries.
std::string value_of(int i) {
  std::string v = "value-" + std::to_string(i) + "-";
  uint64_t x = 0x9e3779b97f4a7c15ull * static_cast<uint64_t>(i + 1);
  for (int j = 0; j < 200; ++j) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    v += static_cast<char>('a' + x % 26);
  }
  return v;
}

/// Sends `cmds` pipelined in chunks and returns the replies.
std::vector<std::string> pipeline(client& c, const std::vector<std::vector<std::string>>& cmds) {
  std::vector<std::string> out;
  for (size_t i = 0; i < cmds.size(); i += 500) {
    std::string buf;
    size_t end = std::min(cmds.size(), i + 500);
    for (size_t j = i; j < end; ++j)
      buf += client::multibulk(cmds[j]);
    REQUIRE(c.send(buf));
    for (size_t j = i; j < end; ++j) {
      auto r = c.reply(20000);
      REQUIRE(r);
      out.push_back(*r);
    }
  }
  return out;
}

/// Waits (bounded) until L3 applied and committed every write.
void wait_l3_idle(node_process& n) {
  if (!n.l3_idle())
    FAIL("L3 did not drain its write-behind queue");
}

std::string bulk(const std::string& s) {
  return "$" + std::to_string(s.size()) + "\r\n" + s + "\r\n";
}

constexpr int n_keys = 5000;

std::vector<std::string> l4_args() {
  return {"--memory-bytes=1048576", "--kura.l3.max-bytes=200000",
          "--kura.archive.segment-bytes=65536", "--kura.archive.compact-interval=0s",
          "--kura.archive.compact-rate=0"};
}

} // namespace

TEST_CASE("L4 in a live node: archive, read back, promote, delete, compact, restart") {
  node_process n(l4_args());
  REQUIRE_MESSAGE(n.ready, n.log());
  client c(n.port);
  REQUIRE(c.ok());
  std::vector<std::vector<std::string>> sets;
  for (int i = 0; i < n_keys; ++i)
    sets.push_back({"SET", key_of(i), value_of(i)});
  for (auto& r : pipeline(c, sets))
    REQUIRE(r == "+OK\r\n");
  wait_l3_idle(n);

  int rc = -1;
  auto js = kura_cli(n.cluster_port, "--json archive", rc);
  CAPTURE(js);
  REQUIRE(rc == 0);
  auto archived = json_int(js, "entries");
  CHECK(archived > n_keys / 2); // most entries no longer fit in L3 or memory
  CHECK(json_int(js, "stored_bytes") > 0);
  CHECK(json_int(js, "raw_bytes") > json_int(js, "stored_bytes")); // compressed
  CHECK(js.find("\"segments\": [{\"id\": ") != std::string::npos);
  CHECK(json_int(js, "oldest_entry_ms") > 0);
  // every key counts, wherever it lives
  CHECK(*c.call({"DBSIZE"}) == ":" + std::to_string(n_keys) + "\r\n");

  // find archived keys (KURA.TIER reads through to L4, which promotes them,
  // so every probe is a fresh key)
  std::vector<int> in_l4;
  for (int i = 0; i < n_keys && in_l4.size() < 3; ++i)
    if (*c.call({"KURA.TIER", key_of(i)}) == bulk("l4"))
      in_l4.push_back(i);
  REQUIRE(in_l4.size() == 3);
  // read back through redis-cli: the value, then the key was promoted
  auto a = in_l4[0];
  CHECK(n.cli("GET " + key_of(a)) == value_of(a) + "\n");
  auto tier = n.cli("KURA.TIER " + key_of(a));
  CHECK(tier != "l4\n");
  CHECK(tier != "none\n");
  // an archived key read with GET straight away
  CHECK(*c.call({"GET", key_of(in_l4[2])}) == bulk(value_of(in_l4[2])));
  // DEL of an archived key reaches L4
  auto b = in_l4[1];
  CHECK(n.cli("DEL " + key_of(b)) == "1\n");
  CHECK(n.cli("GET " + key_of(b)) == "\n");
  CHECK(n.cli("EXISTS " + key_of(b)) == "0\n");
  CHECK(n.cli("KURA.TIER " + key_of(b)) == "none\n");
  CHECK(*c.call({"DBSIZE"}) == ":" + std::to_string(n_keys - 1) + "\r\n");

  // delete the first fifth (archived first, so whole segments lose their data)
  constexpr int n_del = n_keys / 5;
  std::vector<std::vector<std::string>> dels;
  for (int i = 0; i < n_del; ++i)
    if (i != b)
      dels.push_back({"DEL", key_of(i)});
  for (auto& r : pipeline(c, dels))
    CHECK(r == ":1\r\n");
  wait_l3_idle(n);
  CHECK(*c.call({"DBSIZE"}) == ":" + std::to_string(n_keys - n_del) + "\r\n");
  js = kura_cli(n.cluster_port, "--json archive", rc);
  CHECK(rc == 0);
  CHECK(json_int(js, "entries") < archived);

  // compaction through the CLI
  js = kura_cli(n.cluster_port, "--json compact", rc);
  CAPTURE(js);
  CHECK(rc == 0);
  CHECK(js.find("\"ok\": true") != std::string::npos);
  CHECK(json_int(js, "segments_done") > 0);
  CHECK(json_int(js, "segments_done") == json_int(js, "segments_total"));
  CHECK(json_int(js, "bytes_done") == json_int(js, "bytes_total"));
  CHECK(json_int(js, "bytes_written") < json_int(js, "bytes_done"));
  // the human form of a second run (nothing left below the threshold)
  auto human = kura_cli(n.cluster_port, "compact", rc);
  CHECK(rc == 0);
  CHECK(human.find("compaction ") != std::string::npos);
  auto table = kura_cli(n.cluster_port, "archive", rc);
  CHECK(rc == 0);
  CHECK(table.find("SEGMENT") != std::string::npos);
  CHECK(table.find("lz4") != std::string::npos);

  // every surviving key still reads back correctly (many from L4)
  std::vector<std::vector<std::string>> gets;
  for (int i = n_del; i < n_keys; ++i)
    gets.push_back({"GET", key_of(i)});
  auto replies = pipeline(c, gets);
  for (int i = n_del; i < n_keys; ++i)
    CHECK(replies[static_cast<size_t>(i - n_del)] == bulk(value_of(i)));

  // metrics: archive figures and L4 hits, in a format promtool accepts
  std::string body;
  for (int i = 0; i < 100; ++i) { // pushed once per second
    body = http_get(n.metrics_port, "/metrics");
    if (body.find("kura_archive_compaction_runs_total 2") != std::string::npos)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CAPTURE(body.substr(0, 2000));
  CHECK(body.find("kura_archive_compaction_runs_total 2") != std::string::npos);
  CHECK(body.find("kura_archive_stored_bytes ") != std::string::npos);
  CHECK(body.find("kura_archive_raw_bytes ") != std::string::npos);
  CHECK(body.find("kura_archive_compression_ratio ") != std::string::npos);
  CHECK(body.find("kura_archive_segments ") != std::string::npos);
  CHECK(body.find("kura_archive_compaction_bytes_total ") != std::string::npos);
  CHECK(body.find("kura_archive_compaction_seconds_total ") != std::string::npos);
  CHECK(body.find("kura_l4_hits_total 0\n") == std::string::npos);
  CHECK(body.find("kura_l4_read_duration_seconds_bucket") != std::string::npos);
  CHECK(body.find("kura_tier_entries{tier=\"l4\"}") != std::string::npos);
  if (!run_shell("command -v promtool").empty()) {
    temp_dir d;
    {
      std::ofstream f(d.path + "/m.txt");
      f << body;
    }
    auto out = run_shell("promtool check metrics < " + d.path + "/m.txt 2>&1", &rc);
    CAPTURE(out);
    CHECK(rc == 0);
  }

  // SIGKILL + restart: archived keys survive, deleted ones stay deleted
  wait_l3_idle(n);
  c.close();
  CHECK(n.stop(SIGKILL) == 128 + SIGKILL);
  n.start();
  REQUIRE_MESSAGE(n.ready, n.log());
  client c2(n.port);
  CHECK(*c2.call({"DBSIZE"}) == ":" + std::to_string(n_keys - n_del) + "\r\n");
  replies = pipeline(c2, gets);
  int from_l4 = 0;
  for (int i = n_del; i < n_keys; ++i)
    CHECK(replies[static_cast<size_t>(i - n_del)] == bulk(value_of(i)));
  for (int i = 0; i < 50; ++i)
    CHECK(*c2.call({"GET", key_of(i)}) == "$-1\r\n");
  CHECK(*c2.call({"GET", key_of(b)}) == "$-1\r\n");
  js = kura_cli(n.cluster_port, "--json archive", rc);
  CHECK(rc == 0);
  from_l4 = static_cast<int>(json_int(js, "l4_hits"));
  CHECK(from_l4 > 0); // the restarted node served archived keys from L4

  // FLUSHALL empties L4 too
  CHECK(*c2.call({"FLUSHALL"}) == "+OK\r\n");
  wait_l3_idle(n);
  CHECK(*c2.call({"DBSIZE"}) == ":0\r\n");
  CHECK(*c2.call({"GET", key_of(n_keys - 1)}) == "$-1\r\n");
  js = kura_cli(n.cluster_port, "--json archive", rc);
  CHECK(json_int(js, "entries") == 0);

  // against a dead node: a clear message and exit code 2
  c2.close();
  auto port = n.cluster_port;
  CHECK(n.stop() == 0);
  auto out = kura_cli(port, "--json compact", rc);
  CHECK(rc == 2);
  CHECK(out.find("cannot reach kura-node") != std::string::npos);
  out = kura_cli(port, "archive", rc);
  CHECK(rc == 2);
  CHECK(out.find("cannot reach kura-node") != std::string::npos);
}

TEST_CASE("L4 off: the archive commands say so") {
  node_process n({"--kura.archive.enabled=false"});
  REQUIRE_MESSAGE(n.ready, n.log());
  int rc = -1;
  auto out = kura_cli(n.cluster_port, "archive", rc);
  CHECK(rc == 1);
  CHECK(out.find("archive (L4) is off") != std::string::npos);
  out = kura_cli(n.cluster_port, "--json compact", rc);
  CHECK(rc == 1);
  CHECK(out.find("{\"error\": ") == 0);
  CHECK(n.cli("SET k v") == "OK\n");
  CHECK(n.cli("GET k") == "v\n");
  CHECK(!std::filesystem::exists(n.data_dir + "/archive"));
}

TEST_CASE("bad kura.archive.* settings: one line, non-zero exit") {
  temp_dir d;
  auto expect_fail = [&](const std::string& arg, const std::string& says) {
    std::string out;
    int rc = run_node_once({"--port=" + std::to_string(free_port()), "--metrics-port=0",
                            "--cluster-port=0", "--data-dir=" + d.path, arg},
                           out);
    CAPTURE(arg);
    CAPTURE(out);
    CHECK(rc != 0);
    CHECK(out.find(says) != std::string::npos);
    CHECK(std::count(out.begin(), out.end(), '\n') == 1);
  };
  expect_fail("--kura.archive.codec=snappy", "kura.archive.codec");
  expect_fail("--kura.archive.level=99", "kura.archive.level");
  expect_fail("--kura.archive.compact-threshold=1.5", "kura.archive.compact-threshold");
  expect_fail("--kura.archive.enabled=maybe", "kura.archive.enabled");
  expect_fail("--kura.archive.max-bytes=10", "kura.archive.max-bytes");
  expect_fail("--kura.archive.segment-bytes=1", "kura.archive.segment-bytes");
  expect_fail("--kura.archive.compact-rate=fast", "error");
}
