// The cluster-core benchmarks behind the gossip section of bench/RESULTS.md:
// failure detection time and false positives against protocol period and loss,
// dissemination time against cluster size, gossip bytes per node per second,
// ring balance. All on simulated time, so the numbers do not depend on the
// machine. Thread safety: single-threaded.
#pragma once

namespace kura::gossip::sim {

/// Prints the markdown tables; returns the process exit status.
int run_bench(bool quick);

} // namespace kura::gossip::sim
