#include "tiers/tier.hpp"

namespace kura {

uint64_t latency_histogram::quantile_ns(double q) const {
  if (samples == 0)
    return 0;
  auto want = static_cast<uint64_t>(q * static_cast<double>(samples));
  if (want >= samples)
    want = samples - 1;
  uint64_t seen = 0;
  for (size_t i = 0; i < buckets; ++i) {
    seen += counts[i];
    if (seen > want)
      return i + 1 >= 64 ? ~0ull : (1ull << (i + 1));
  }
  return ~0ull;
}

void latency_histogram::merge(const latency_histogram& o) {
  for (size_t i = 0; i < buckets; ++i)
    counts[i] += o.counts[i];
  total_ns += o.total_ns;
  samples += o.samples;
}

} // namespace kura
