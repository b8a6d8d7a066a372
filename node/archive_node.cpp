#include "node/archive_node.hpp"

#include <caf/all.hpp>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <cmath>

namespace kura::node {

using namespace actors;

// -- opening -------------------------------------------------------------------------

result<std::shared_ptr<archive::archive>>
open_archive(const node_config& cfg, const kura::clock& clk,
             std::shared_ptr<const crypto::keyring> keys) {
  archive::archive_config ac;
  ac.keys = std::move(keys);
  ac.path = cfg.data_dir + "/archive";
  auto codec = archive::parse_codec(cfg.archive_codec);
  if (!codec)
    return codec.err();
  ac.codec = *codec;
  if (cfg.archive_level >= 0)
    ac.level = static_cast<int>(cfg.archive_level);
  else
    ac.level = ac.codec == archive::codec_id::lz4 ? 0 : 3;
  ac.max_bytes = cfg.archive_max_bytes;
  ac.segment_bytes = cfg.archive_segment_bytes;
  ac.ttl_days = static_cast<uint32_t>(cfg.archive_ttl_days);
  ac.index_memory_bytes = cfg.archive_index_memory;
  ac.compact_threshold = cfg.archive_compact_threshold;
  ac.lim.max_key_bytes = cfg.max_key_bytes;
  ac.lim.max_value_bytes = cfg.max_value_bytes;
  auto opened = archive::archive::open(ac, clk);
  if (!opened)
    return error{opened.err().code,
                 "cannot open the archive in " + ac.path + ": " + opened.err().to_string()};
  return std::shared_ptr<archive::archive>(std::move(*opened));
}

l4_config l4_settings(const node_config& cfg) {
  l4_config c;
  c.compact_interval_ms = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(cfg.archive_compact_interval).count());
  c.compact_threshold = cfg.archive_compact_threshold;
  c.compact_rate = cfg.archive_compact_rate;
  return c;
}

// -- metrics -----------------------------------------------------------------------------

namespace {

// same buckets as the command latency: 2^9 ns (512 ns) ... 2^30 ns (~1.07 s)
constexpr int first_pow = 9;
constexpr int last_pow = 30;

struct archive_metrics {
  std::mutex mtx;
  prometheus::Gauge* stored = nullptr;
  prometheus::Gauge* raw = nullptr;
  prometheus::Gauge* ratio = nullptr;
  prometheus::Gauge* segments = nullptr;
  prometheus::Gauge* entries = nullptr;
  prometheus::Gauge* dictionaries = nullptr;
  prometheus::Counter* runs = nullptr;
  prometheus::Counter* bytes = nullptr;
  prometheus::Counter* seconds = nullptr;
  prometheus::Counter* hits = nullptr;
  prometheus::Counter* misses = nullptr;
  prometheus::Counter* errors = nullptr;
  prometheus::Histogram* latency = nullptr;
  uint64_t last_runs = 0, last_bytes = 0, last_ns = 0, last_hits = 0, last_misses = 0,
           last_errors = 0;
  latency_histogram last_latency;

  static void add(prometheus::Counter& c, uint64_t& last, uint64_t now) {
    if (now > last)
      c.Increment(static_cast<double>(now - last));
    last = now;
  }

  void update(archive::archive& ar, const l4_counters& c) {
    auto info = ar.inspect();
    std::lock_guard<std::mutex> g(mtx);
    stored->Set(static_cast<double>(info.stored_bytes));
    raw->Set(static_cast<double>(info.raw_bytes));
    ratio->Set(info.ratio());
    segments->Set(static_cast<double>(info.segments.size()));
    entries->Set(static_cast<double>(info.entries));
    dictionaries->Set(static_cast<double>(info.dictionaries.size()));
    add(*runs, last_runs, c.compaction_runs.load());
    add(*bytes, last_bytes, c.compaction_bytes.load());
    auto ns = c.compaction_ns.load();
    if (ns > last_ns)
      seconds->Increment(static_cast<double>(ns - last_ns) / 1e9);
    last_ns = ns;
    add(*hits, last_hits, c.hits.load());
    add(*misses, last_misses, c.misses.load());
    add(*errors, last_errors, c.errors.load());
    auto h = c.read_latency();
    if (h.samples == last_latency.samples)
      return;
    std::vector<double> inc(last_pow - first_pow + 2, 0.0);
    for (size_t b = 0; b < latency_histogram::buckets; ++b) {
      uint64_t d = h.counts[b] - last_latency.counts[b];
      if (d == 0)
        continue;
      int p = static_cast<int>(b) + 1; // bucket b holds values below 2^(b+1) ns
      size_t j = p <= first_pow ? 0 : static_cast<size_t>(p - first_pow);
      inc[std::min(j, inc.size() - 1)] += static_cast<double>(d);
    }
    latency->ObserveMultiple(inc, static_cast<double>(h.total_ns - last_latency.total_ns) / 1e9);
    last_latency = h;
  }
};

} // namespace

l4_tick_hook archive_metrics_hook(node_metrics* m) {
  if (!m)
    return {};
  using namespace prometheus;
  auto am = std::make_shared<archive_metrics>();
  auto& r = m->registry();
  am->stored = &BuildGauge()
                    .Name("kura_archive_stored_bytes")
                    .Help("Bytes of all archive segment files")
                    .Register(r)
                    .Add({});
  am->raw = &BuildGauge()
                 .Name("kura_archive_raw_bytes")
                 .Help("Archive blocks decompressed, in bytes")
                 .Register(r)
                 .Add({});
  am->ratio = &BuildGauge()
                   .Name("kura_archive_compression_ratio")
                   .Help("Archive stored bytes / raw bytes")
                   .Register(r)
                   .Add({});
  am->segments =
      &BuildGauge().Name("kura_archive_segments").Help("Archive segment files").Register(r).Add({});
  am->entries = &BuildGauge()
                     .Name("kura_archive_entries")
                     .Help("Live entries in the archive")
                     .Register(r)
                     .Add({});
  am->dictionaries = &BuildGauge()
                          .Name("kura_archive_dictionaries")
                          .Help("zstd dictionaries kept by the archive")
                          .Register(r)
                          .Add({});
  am->runs = &BuildCounter()
                  .Name("kura_archive_compaction_runs_total")
                  .Help("Archive compaction jobs finished")
                  .Register(r)
                  .Add({});
  am->bytes = &BuildCounter()
                   .Name("kura_archive_compaction_bytes_total")
                   .Help("Segment bytes read by archive compaction")
                   .Register(r)
                   .Add({});
  am->seconds = &BuildCounter()
                     .Name("kura_archive_compaction_seconds_total")
                     .Help("Time spent in archive compaction jobs")
                     .Register(r)
                     .Add({});
  am->hits = &BuildCounter()
                  .Name("kura_l4_hits_total")
                  .Help("L3 misses served by the archive")
                  .Register(r)
                  .Add({});
  am->misses = &BuildCounter()
                    .Name("kura_l4_misses_total")
                    .Help("L3 misses the archive did not hold either")
                    .Register(r)
                    .Add({});
  am->errors = &BuildCounter()
                    .Name("kura_l4_errors_total")
                    .Help("Failed archive operations (corrupt blocks, I/O)")
                    .Register(r)
                    .Add({});
  Histogram::BucketBoundaries b;
  for (int p = first_pow; p <= last_pow; ++p)
    b.push_back(std::ldexp(1.0, p) / 1e9);
  am->latency = &BuildHistogram()
                     .Name("kura_l4_read_duration_seconds")
                     .Help("Archive read time of one key (index lookup, block read, decompression)")
                     .Register(r)
                     .Add({}, b);
  return [am, m](archive::archive& ar, const l4_counters& c) {
    am->update(ar, c);
    m->set_tier("l4", ar.stats());
  };
}

// -- ops ------------------------------------------------------------------------------------

bool handle_archive_op(caf::event_based_actor* self, const caf::actor& compactor, uint8_t op,
                       caf::typed_response_promise<std::string> rp) {
  if (op != archive_ops::archive && op != archive_ops::compact && op != archive_ops::compact_status)
    return false;
  if (!compactor) {
    kv_reply r;
    r.error = "the archive (L4) is off on this node (kura.archive.enabled=false or L3 off)";
    rp.deliver(encode_message(msg_type::kv_reply, r));
    return true;
  }
  auto on_err = [rp, self](caf::error& err) mutable {
    kv_reply r;
    r.error = self->system().render(err);
    rp.deliver(encode_message(msg_type::kv_reply, r));
  };
  auto timeout = std::chrono::seconds(10);
  if (op == archive_ops::archive) {
    self->request(compactor, timeout, archive_info_atom::value)
        .then(
            [rp](archive_report& r) mutable { rp.deliver(encode_message(msg_archive_report, r)); },
            on_err);
  } else {
    auto reply = [rp](compaction_report& r) mutable {
      rp.deliver(encode_message(msg_compaction_report, r));
    };
    if (op == archive_ops::compact)
      self->request(compactor, timeout, compact_atom::value).then(reply, on_err);
    else
      self->request(compactor, timeout, compact_status_atom::value).then(reply, on_err);
  }
  return true;
}

} // namespace kura::node
