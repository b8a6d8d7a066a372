// node_config (node/config.cpp): flags and config file, parsed as kura-node
// parses them. Also the clang build's regression test for CAF 0.17's option
// meta state (see config.cpp): parsing a size_t option, ours or CAF's own,
// crashed a clang-built binary (found by tests/fuzz/config_fuzz).
#include "node/config.hpp"

#include "test_util.hpp"

#include <doctest/doctest.h>

#include <fstream>
#include <string>
#include <vector>

using kura::node::node_config;

namespace {

std::string parse(node_config& cfg, std::vector<std::string> args) {
  args.insert(args.begin(), "kura-node");
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  return cfg.parse_and_validate(static_cast<int>(args.size()), argv.data());
}

} // namespace

TEST_CASE("flags of every option type parse, CAF's own included") {
  kura::testing::temp_dir dir{"kura-config-test"};
  node_config cfg;
  auto err = parse(cfg, {"--data-dir=" + dir.sub("data"), "--kura.memory.shards=2",
                         "--scheduler.max-threads=2", "--middleman.heartbeat-interval=1s",
                         "--port=6400", "--kura.l3.batch-max-age=7ms", "--kura.l3.sync=true",
                         "--kura.prewarm.min-confidence=0.5", "--kura.archive.level=3",
                         "--kura.archive.codec=zstd"});
  CHECK(err == "");
  CHECK(cfg.shards == 2);
  CHECK(cfg.port == 6400);
  CHECK(cfg.l3_batch_max_age == std::chrono::milliseconds(7));
  CHECK(cfg.l3_sync);
  CHECK(cfg.min_confidence == doctest::Approx(0.5));
  CHECK(cfg.archive_level == 3);
  CHECK(cfg.archive_codec == "zstd");
}

TEST_CASE("a config file: sections, CAF's keys, unknown keys refused, flags win") {
  kura::testing::temp_dir dir{"kura-config-test"};
  auto file = dir.sub("kura.conf");
  std::ofstream(file) << "[scheduler]\nmax-threads=2\n[kura.memory]\nshards=3\n"
                         "[kura.l3]\nbatch-max-writes=7\n";
  node_config cfg;
  CHECK(parse(cfg, {"--config-file=" + file, "--data-dir=" + dir.sub("data"),
                    "--kura.memory.shards=5"}) == "");
  CHECK(cfg.shards == 5);
  CHECK(cfg.l3_batch_max_writes == 7);
  std::ofstream(file) << "[kura.l3]\nsnyc=true\n";
  node_config bad;
  auto err = parse(bad, {"--config-file=" + file, "--data-dir=" + dir.sub("data")});
  CHECK(err.find("unknown key 'kura.l3.snyc'") != std::string::npos);
  CHECK(err.find('\n') == std::string::npos);
}
