// libFuzzer target: kura-node's config file loader (node/config.cpp: CAF's
// config file parser, kura's unknown-key check, flag conversion and value
// checks). Run by scripts/fuzz. The input is written as a config file and
// loaded as `kura-node --config-file=FILE --data-dir=SCRATCH` would load it
// (the command line wins, so the data directory stays in scratch space).
// Contract: the loader accepts the file or returns one line saying what is
// wrong; it never crashes, throws or hangs.
#include "node/config.hpp"

#include "fuzz_util.hpp"

#include <string>
#include <vector>

using kura::fuzz::fuzz_check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static kura::fuzz::scratch_dir dir{"kura-fuzz-config"};
  auto file = dir.sub("kura.conf");
  fuzz_check(kura::fuzz::write_file(file, kura::fuzz::as_view(data, size)), "write config");
  std::string a0 = "kura-node", a1 = "--config-file=" + file, a2 = "--data-dir=" + dir.sub("data");
  std::vector<char*> argv{a0.data(), a1.data(), a2.data(), nullptr};
  kura::node::node_config cfg;
  auto err = cfg.parse_and_validate(3, argv.data());
  fuzz_check(err.find('\n') == std::string::npos, "a config error is one line");
  if (err.empty() && !cfg.cli_helptext_printed) {
    fuzz_check(cfg.data_dir == dir.sub("data"), "the command line wins");
    fuzz_check(!cfg.summary().empty(), "an accepted config has a summary");
  }
  return 0;
}
