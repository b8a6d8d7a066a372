// Runs key commands of a cluster node with kura's own command table against
// copies of their keys. The owner of a slot uses it for every command that
// reads and writes (INCR, HSET, SETBIT, RENAME, MULTI/EXEC ...): it stages
// what it holds for the command's keys, runs the command exactly as a lone
// node would, and gets back the reply plus the final state of every key the
// command wrote or deleted, which the caller then writes as new cluster
// versions (replicated, last-writer-wins). A coordinator uses it for read-only
// commands (HGET, BITCOUNT, STRLEN ...) on entries it read from the replicas.
// So a cluster node answers every command with the same code and the same
// Redis semantics as a lone node, without a second implementation per command.
//
// The scratch keyspace behind it holds nothing between runs: its write-behind
// port (actors/keyspace.hpp l3_port) records the changes, its overlay is the
// staged copies, and it is cleared after every run.
// Thread safety: not thread-safe; one per thread (cluster_executor()), used on
// the multiplexer thread.
#pragma once

#include "actors/keyspace.hpp"
#include "node/command_registry.hpp"
#include "node/resp_writer.hpp"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kura::node {

class cluster_exec {
public:
  cluster_exec();
  ~cluster_exec();
  cluster_exec(const cluster_exec&) = delete;
  cluster_exec& operator=(const cluster_exec&) = delete;

  /// The command registry (key positions, flags) of the table it runs.
  const command_registry& registry() const;

  /// The final state of one key a run wrote (`e`) or deleted (nullopt).
  struct change {
    std::string key;
    std::optional<entry> e;
  };

  /// Runs `cmds` one after the other against `staged` (key -> live entry, or
  /// nullopt when absent; it must hold every key the commands name) and
  /// appends each reply (RESP2) to `out`. `changes` gets, in order of first
  /// change, the final state of every key written or deleted.
  void run(const std::vector<std::vector<std::string>>& cmds, actors::staged_entries& staged,
           out_buffer& out, std::vector<change>& changes);

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// This thread's executor (made on first use).
cluster_exec& cluster_executor();

} // namespace kura::node
