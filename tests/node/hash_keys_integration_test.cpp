// kura.security.hash-keys-in-models in a real kura-node (issue 13): with
// encryption at rest on (so L3, L4 and the WAL hold no plaintext keys), the
// predictor's model and the audit log (arguments logged) are the remaining
// places a key could land. With the setting on no file under the data dir
// (the audit log is there) holds a written key; with it off the same run
// leaves keys in the model and the audit log, so the scan can fail.
// Conditions are polled with generous deadlines (no timing assertions).
#include "tests/node/erase_test_util.hpp"

#include <doctest/doctest.h>

using namespace kura::test;

namespace {

constexpr int n_keys = 40;

std::string key_of(int i) {
  return "hkplain:" + std::to_string(i) + ":zq";
}

/// Runs the workload on a fresh node and returns every file under its data
/// dir after a clean stop.
std::map<std::string, std::string> run(bool hash_keys) {
  temp_dir keys;
  std::string key_file = keys.sub("kura.key");
  std::ofstream(key_file, std::ios::trunc) << "1 " + std::string(64, '7') + "\n";
  temp_dir data;
  {
    node_process n(
        {"--kura.security.encryption-key-file=" + key_file, "--kura.security.audit-args=true",
         "--kura.prewarm.enabled=true", "--kura.prewarm.interval=100ms",
         "--kura.prewarm.sample-one-in=1",
         std::string("--kura.security.hash-keys-in-models=") + (hash_keys ? "true" : "false")},
        data.path);
    REQUIRE_MESSAGE(n.ready, n.log());
    client c(n.port);
    REQUIRE(c.ok());
    std::vector<std::vector<std::string>> sets;
    for (int i = 0; i < n_keys; ++i)
      sets.push_back({"SET", key_of(i), "value-" + std::to_string(i)});
    pipeline(c, sets);
    // reads the predictor samples (every one: sample-one-in=1)
    for (int r = 0; r < 20; ++r)
      for (int i = 0; i < n_keys; ++i)
        REQUIRE(c.call({"GET", key_of(i)}));
    // the audit log: a NOPERM naming keys, a KURA.ERASE naming one, CONFIG SET
    REQUIRE(*c.call({"ACL", "SETUSER", "bob", "on", ">pw", "~other:*", "+@all"}) == "+OK\r\n");
    client b(n.port);
    REQUIRE(b.ok());
    REQUIRE(*b.call({"AUTH", "bob", "pw"}) == "+OK\r\n");
    auto denied = b.call({"GET", key_of(1)});
    REQUIRE(denied);
    CHECK(denied->rfind("-NOPERM", 0) == 0);
    erase_and_wait(c, {"KURA.ERASE", "KEY", key_of(0)});
    REQUIRE(c.call({"CONFIG", "SET", "maxmemory-policy", "allkeys-lru"}));
    wait_l3_idle(n);
    // the predictor saves its model every 10 cycles (and at the stop)
    const std::string model_path = data.path + "/predictor.model";
    for (int i = 0; i < 600 && !std::filesystem::exists(model_path); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    CHECK(n.stop() == 0); // saves the model
  }
  auto files = scan_dir(data.path);
  bool model = false;
  for (auto& [name, bytes] : files)
    model = model || (name.find("predictor.model") != std::string::npos && !bytes.empty());
  CHECK_MESSAGE(model, "the predictor saved no model");
  return files;
}

/// Files holding any written key in plaintext.
std::vector<std::string> holding_keys(const std::map<std::string, std::string>& files) {
  std::vector<std::string> out;
  for (auto& [name, bytes] : files)
    for (int i = 0; i < n_keys; ++i)
      if (bytes.find(key_of(i)) != std::string::npos) {
        out.push_back(name + " holds " + key_of(i));
        break;
      }
  return out;
}

} // namespace

TEST_CASE("hash-keys-in-models: no plaintext key in the predictor's model or the audit log") {
  auto found = holding_keys(run(true));
  for (auto& f : found)
    FAIL_CHECK(f);
  CHECK(found.empty());
}

TEST_CASE("without hash-keys-in-models the model and the audit log hold the keys") {
  auto found = holding_keys(run(false));
  std::string all;
  for (auto& f : found)
    all += f + "\n";
  INFO(all);
  CHECK(all.find("predictor.model") != std::string::npos);
  CHECK(all.find("audit.log") != std::string::npos);
}
