// The kura CLI's reply side: turns the bytes the ops actor answers (msgpack
// envelopes, actors/messages.hpp and actors/archive_actors.hpp) into what
// `kura` prints, and into its exit code. Split from cli.cpp and
// cli_archive.cpp so that tests and the fuzzer (tests/fuzz/cli_reply_fuzz.cpp)
// reach it without a node: the answer is bytes from the network.
// Thread safety: free functions; they write only to the streams passed in.
#pragma once

#include "actors/messages.hpp"

#include <ostream>
#include <string>
#include <string_view>

namespace kura::node {

/// Prints the answer to `req` (status, stats, config, get, set, del, expire,
/// tier, flush) as a table or text, or as JSON. Returns the exit code: 0 ok,
/// 1 when the node answered with an error or with bytes that do not decode.
int print_reply(const actors::kv_request& req, std::string_view answer, bool json,
                std::ostream& out, std::ostream& err);

/// The answer to `kura archive` (an archive_report). Exit code as above.
int print_archive_answer(std::string_view answer, bool json, std::ostream& out, std::ostream& err);

/// A final compaction_report of `kura compact`. Exit code: 0 when the
/// compaction succeeded, 1 otherwise.
int print_compaction_answer(std::string_view answer, bool json, std::ostream& out,
                            std::ostream& err);

// The two below are defined with the CLI's other shared pieces in
// node/cli_archive.cpp (linked wherever a progress bar is drawn).

/// "1.5 MiB": bytes in binary units.
std::string human_bytes(double b);

/// The CLI's progress bar for long operations (compact, ring moves): one
/// line on `err`, redrawn in place: "[#####-----]  42.0%  <detail>".
void draw_progress(std::ostream& err, double frac, const std::string& detail);

} // namespace kura::node
