// The kura CLI's predictor commands (node/cli_predictor.cpp): `kura prewarm
// [--dry-run]`, `kura predictor`, `kura alerts`, and the printers of their
// answers (bytes from the network: they never trust them).
// Thread safety: free functions; they write only to the streams passed in.
#pragma once

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>

#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace kura::node {

/// Runs `args[0]` (prewarm, predictor or alerts) against the ops actor;
/// returns the exit code (0 ok, 1 error answer or usage, 2 node unreachable).
int run_predictor_command(caf::actor_system& sys, caf::scoped_actor& self, const caf::actor& ops,
                          const std::vector<std::string>& args, bool json, caf::timespan timeout);

/// Printers of the answers (exit code 0, or 1 for an error answer).
int print_prewarm_report(std::string_view answer, bool json, std::ostream& out, std::ostream& err);
int print_predictor_report(std::string_view answer, bool json, std::ostream& out,
                           std::ostream& err);
int print_alerts_report(std::string_view answer, bool json, std::ostream& out, std::ostream& err);

} // namespace kura::node
