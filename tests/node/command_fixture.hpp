// A command table over a real keyspace (memory shards, L3 off) that runs
// inline command lines and returns the raw RESP reply, for the node/ unit tests.
#pragma once

#include "node/commands.hpp"
#include "node/resp_parser.hpp"

#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

namespace kura::node::testing {

struct command_fixture {
  fake_clock clk;
  actors::keyspace ks{actors::keyspace_config{}, clk, nullptr};
  node_facts facts;
  command_table cmds{ks, facts};
  session sess;

  /// Runs an inline command line ("SET k v") and returns the raw reply.
  std::string run(std::string_view line) {
    std::vector<std::string> parts;
    REQUIRE(split_inline_args(line, parts));
    return run_args(parts);
  }
  std::string run_args(const std::vector<std::string>& parts) {
    std::vector<std::string_view> args(parts.begin(), parts.end());
    out_buffer out;
    cmds.execute(args, sess, out);
    return std::string(out.begin(), out.end());
  }
};

} // namespace kura::node::testing
