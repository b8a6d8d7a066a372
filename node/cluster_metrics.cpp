#include "node/cluster_metrics.hpp"

#include "gossip/tier_store.hpp"
#include "node/cluster_faces.hpp"
#include "tiers/slot.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace kura::node {

namespace {

using namespace prometheus;

struct counter_delta {
  Counter* c = nullptr;
  uint64_t last = 0;
  void set(uint64_t now) {
    if (now > last)
      c->Increment(static_cast<double>(now - last));
    last = now;
  }
};

struct cluster_metrics {
  std::map<std::string, Gauge*> members; // by state
  Gauge* slots_owned = nullptr;
  Gauge* slots_replicated = nullptr;
  Gauge* slots_gathering = nullptr;
  Gauge* hints_queued = nullptr;
  Gauge* keys_held = nullptr;
  std::map<std::string, Gauge*> tier_entries, tier_bytes; // by tier: memory, l3, l4
  Gauge* invalidations_pending = nullptr;
  Gauge* store_unapplied = nullptr;
  Gauge* cache_bytes = nullptr;
  Gauge* store_uncommitted = nullptr;
  counter_delta hints_stored, hints_delivered, forwarded, remote_reads, writes, reads, inv_sent,
      inv_acked, ae_rounds, ae_repairs, ae_bytes, streamed_bytes, streamed_entries, handed_off,
      gossip_messages, gossip_batches, decode_errors, tombstones_collected, stream_in_bytes,
      stream_in_entries, cache_hits, cache_misses, redirects_moved, redirects_ask, catch_ups,
      hedged_reads, ae_view_mismatches, streams_resourced, streams_given_up, streams_dropped,
      write_resends, reads_failed_no_answer, reads_failed_unsettled, reads_failed_unconfirmed,
      sync_failures_ae, sync_failures_replication, sync_failures_hint;
  Gauge* move_active = nullptr;
  Gauge* move_keys_expected = nullptr;
  std::vector<gossip::node_id> ring_members; ///< what slots_* were computed for
  bool computed = false;

  void update(const actors::cluster_core& c) {
    const gossip::node* n = c.core();
    if (!n)
      return;
    std::map<std::string, double> by_state{{"alive", 0}, {"suspect", 0}, {"dead", 0}, {"left", 0}};
    for (auto& [id, m] : n->members().members())
      by_state[gossip::to_string(m.state)] += 1;
    for (auto& [state, g] : members)
      g->Set(by_state[state]);
    auto& r = n->current_ring();
    if (!computed || ring_members != r.members()) {
      // 16384 placements: recomputed only when the ring's members changed.
      computed = true;
      ring_members = r.members();
      double owned = 0, replicated = 0;
      for (uint32_t s = 0; s < slot_count && !r.empty(); ++s) {
        auto reps = r.replicas_of_slot(s);
        for (size_t i = 0; i < reps.size(); ++i)
          if (reps[i] == n->id()) {
            replicated += 1;
            owned += i == 0 ? 1 : 0;
          }
      }
      slots_owned->Set(owned);
      slots_replicated->Set(replicated);
    }
    slots_gathering->Set(static_cast<double>(c.slots_gathering()));
    hints_queued->Set(static_cast<double>(n->hints().size()));
    if (auto* ts = dynamic_cast<const gossip::tier_store*>(&n->store())) {
      store_unapplied->Set(static_cast<double>(ts->unapplied()));
      cache_bytes->Set(static_cast<double>(ts->cache_bytes()));
      store_uncommitted->Set(static_cast<double>(ts->uncommitted()));
      cache_hits.set(ts->cache_hits());
      cache_misses.set(ts->cache_misses());
      auto h = ts->report_holdings(false);
      keys_held->Set(static_cast<double>(h.keys));
      for (auto& [tier, st] : {std::pair<std::string, const tier_stats*>{"memory", &h.memory},
                               {"l3", &h.l3},
                               {"l4", &h.l4}}) {
        tier_entries[tier]->Set(static_cast<double>(st->entries));
        tier_bytes[tier]->Set(static_cast<double>(st->bytes));
      }
    }
    auto& st = n->stats();
    hints_stored.set(st.hints_stored);
    hints_delivered.set(st.hints_delivered);
    write_resends.set(st.write_resends);
    forwarded.set(c.forwarded());
    remote_reads.set(st.fetches);
    writes.set(st.writes);
    reads.set(st.reads);
    inv_sent.set(st.invalidations_sent);
    inv_acked.set(st.invalidations_acked);
    ae_rounds.set(st.ae_rounds);
    ae_repairs.set(st.ae_repaired);
    ae_bytes.set(st.ae_bytes);
    catch_ups.set(st.catch_ups);
    hedged_reads.set(st.hedged_reads);
    reads_failed_no_answer.set(st.reads_failed_no_answer);
    reads_failed_unsettled.set(st.reads_failed_unsettled);
    reads_failed_unconfirmed.set(st.reads_failed_unconfirmed);
    sync_failures_ae.set(st.sync_failures_ae);
    sync_failures_replication.set(st.sync_failures_replication);
    sync_failures_hint.set(st.sync_failures_hint);
    ae_view_mismatches.set(st.ae_view_mismatches);
    streamed_bytes.set(st.streamed_bytes);
    streamed_entries.set(st.streamed_entries);
    handed_off.set(st.handed_off);
    gossip_messages.set(c.gossip_sent());
    gossip_batches.set(c.gossip_batches());
    decode_errors.set(st.decode_errors);
    tombstones_collected.set(st.tombstones_collected);
    stream_in_bytes.set(st.stream_received_bytes);
    stream_in_entries.set(st.stream_received_entries);
    streams_resourced.set(st.streams_resourced);
    streams_given_up.set(st.streams_given_up);
    streams_dropped.set(st.streams_dropped);
    redirects_moved.set(moved_redirects());
    redirects_ask.set(ask_redirects());
    auto& mv = n->progress();
    move_active->Set(mv.active ? (mv.leaving ? 2 : 1) : 0);
    move_keys_expected->Set(static_cast<double>(mv.active ? mv.keys_expected : 0));
  }
};

Counter* counter(Registry& r, const std::string& name, const std::string& help) {
  return &BuildCounter().Name(name).Help(help).Register(r).Add({});
}

Gauge* gauge(Registry& r, const std::string& name, const std::string& help) {
  return &BuildGauge().Name(name).Help(help).Register(r).Add({});
}

} // namespace

std::function<void(const actors::cluster_core&)> cluster_metrics_hook(node_metrics* m) {
  if (!m)
    return {};
  auto cm = std::make_shared<cluster_metrics>();
  auto& r = m->registry();
  auto& fam = BuildGauge()
                  .Name("kura_cluster_members")
                  .Help("Cluster members this node knows, by state")
                  .Register(r);
  for (auto state : {"alive", "suspect", "dead", "left"})
    cm->members[state] = &fam.Add({{"state", state}});
  auto& ent =
      BuildGauge()
          .Name("kura_cluster_tier_entries")
          .Help("Cluster data this node holds: entries per tier (memory read cache, L3, L4)")
          .Register(r);
  auto& byt = BuildGauge()
                  .Name("kura_cluster_tier_bytes")
                  .Help("Cluster data this node holds: bytes per tier (memory read cache, L3, L4)")
                  .Register(r);
  for (auto tier : {"memory", "l3", "l4"}) {
    cm->tier_entries[tier] = &ent.Add({{"tier", tier}});
    cm->tier_bytes[tier] = &byt.Add({{"tier", tier}});
  }
  cm->keys_held =
      gauge(r, "kura_cluster_keys",
            "Keys of cluster data this node holds as a replica (values and tombstones)");
  cm->slots_owned = gauge(r, "kura_cluster_slots_owned", "Slots (of 16384) this node owns");
  cm->slots_replicated =
      gauge(r, "kura_cluster_slots_replicated", "Slots this node holds a replica of (owned too)");
  cm->slots_gathering = gauge(r, "kura_cluster_slots_gathering",
                              "Slots whose reads here ask the other replicas: all while the node "
                              "catches up (after a join or a pause), else those gained in a ring "
                              "change and not yet in sync (0: settled)");
  cm->hints_queued =
      gauge(r, "kura_cluster_hints_queued", "Hinted writes held here for unreachable replicas");
  cm->store_unapplied = gauge(r, "kura_cluster_store_unapplied_writes",
                              "Writes applied in memory, not yet handed to L3's batch");
  cm->store_uncommitted =
      gauge(r, "kura_cluster_store_uncommitted_writes",
            "Writes applied in memory or in L3's batch, not yet committed to LMDB");
  cm->cache_bytes = gauge(r, "kura_cluster_read_cache_bytes",
                          "Bytes the memory tier uses as the read cache of cluster data");
  cm->cache_hits.c = counter(r, "kura_cluster_read_cache_hits_total",
                             "Reads of cluster data the memory tier answered");
  cm->cache_misses.c = counter(r, "kura_cluster_read_cache_misses_total",
                               "Reads of cluster data that went to the overlay, L3 or L4");
  cm->hints_stored.c = counter(r, "kura_cluster_hints_stored_total", "Hinted writes taken");
  cm->hints_delivered.c =
      counter(r, "kura_cluster_hints_delivered_total", "Hinted writes handed to their replica");
  cm->write_resends.c =
      counter(r, "kura_cluster_write_resends_total",
              "Replicated writes sent to a replica (or hint holder) again: no ack in time");
  cm->forwarded.c = counter(r, "kura_cluster_forwarded_commands_total",
                            "Commands forwarded to the key's owner or to every member");
  auto& redirects = BuildCounter()
                        .Name("kura_cluster_redirects_total")
                        .Help("-MOVED and -ASK answers sent to cluster-mode connections")
                        .Register(r);
  cm->redirects_moved.c = &redirects.Add({{"kind", "moved"}});
  cm->redirects_ask.c = &redirects.Add({{"kind", "ask"}});
  cm->remote_reads.c =
      counter(r, "kura_cluster_remote_reads_total", "Reads fetched from another node's replica");
  cm->writes.c = counter(r, "kura_cluster_writes_total", "Writes this node coordinated");
  cm->reads.c = counter(r, "kura_cluster_reads_total", "Reads this node coordinated");
  cm->inv_sent.c = counter(r, "kura_cluster_invalidations_sent_total",
                           "Near-cache invalidations sent (retries included)");
  cm->inv_acked.c = counter(r, "kura_cluster_invalidations_acknowledged_total",
                            "Near-cache invalidations acknowledged by their holder");
  cm->ae_rounds.c =
      counter(r, "kura_cluster_anti_entropy_rounds_total", "Anti-entropy rounds started");
  cm->ae_repairs.c = counter(r, "kura_cluster_anti_entropy_repairs_total",
                             "Entries anti-entropy repaired here (newer versions applied)");
  cm->ae_bytes.c = counter(r, "kura_cluster_anti_entropy_bytes_total",
                           "Bytes of anti-entropy messages sent (digests, key lists, repairs)");
  cm->catch_ups.c =
      counter(r, "kura_cluster_catch_ups_total",
              "Catch-ups after a pause or a refuted suspicion (reads ask every replica)");
  cm->hedged_reads.c =
      counter(r, "kura_cluster_hedged_reads_total",
              "Reads that also asked the next replica (no answer within kura.cluster.hedge-delay)");
  auto& failed = BuildCounter()
                     .Name("kura_cluster_reads_failed_total")
                     .Help("Reads answered with an error instead of nil: no replica answered in "
                           "time (CLUSTERDOWN), or none could vouch for the key's absence while "
                           "the ring moved (TRYAGAIN), or too few answered a catching-up node to "
                           "confirm the newest version (TRYAGAIN)")
                     .Register(r);
  cm->reads_failed_no_answer.c = &failed.Add({{"reason", "no_answer"}});
  cm->reads_failed_unsettled.c = &failed.Add({{"reason", "unsettled"}});
  cm->reads_failed_unconfirmed.c = &failed.Add({{"reason", "unconfirmed"}});
  auto& sync_failed =
      BuildCounter()
          .Name("kura_cluster_sync_failures_total")
          .Help("Syncs with a peer that failed: anti-entropy rounds not answered within "
                "kura.cluster.request-timeout or whose peer went away (kind=anti_entropy), "
                "replicated writes a replica did not acknowledge by the write's deadline or "
                "that was declared dead meanwhile (kind=replication), hint handoffs not "
                "acknowledged by the next handoff step (kind=hint)")
          .Register(r);
  cm->sync_failures_ae.c = &sync_failed.Add({{"kind", "anti_entropy"}});
  cm->sync_failures_replication.c = &sync_failed.Add({{"kind", "replication"}});
  cm->sync_failures_hint.c = &sync_failed.Add({{"kind", "hint"}});
  cm->ae_view_mismatches.c =
      counter(r, "kura_cluster_anti_entropy_view_mismatches_total",
              "Anti-entropy steps dropped because the sender is not in this node's ring");
  cm->streamed_bytes.c = counter(r, "kura_cluster_streamed_bytes_total",
                                 "Key and value bytes sent to peers by repair and handoff");
  cm->streamed_entries.c = counter(r, "kura_cluster_streamed_entries_total",
                                   "Entries sent to peers by repair and handoff");
  cm->handed_off.c =
      counter(r, "kura_cluster_handed_off_total", "Keys handed off and dropped (ring moved)");
  cm->gossip_messages.c =
      counter(r, "kura_cluster_gossip_messages_total", "Cluster messages sent to peers");
  cm->gossip_batches.c = counter(r, "kura_cluster_gossip_batches_total",
                                 "Transport messages that carried them (one per peer per batch)");
  cm->decode_errors.c =
      counter(r, "kura_cluster_decode_errors_total", "Cluster messages dropped as undecodable");
  cm->tombstones_collected.c = counter(r, "kura_cluster_tombstones_collected_total",
                                       "Tombstones removed once every replica held them");
  cm->stream_in_bytes.c =
      counter(r, "kura_cluster_stream_received_bytes_total",
              "Key and value bytes received by range streaming (join, restart, re-replication)");
  cm->stream_in_entries.c = counter(r, "kura_cluster_stream_received_entries_total",
                                    "Entries received by range streaming");
  cm->streams_resourced.c =
      counter(r, "kura_cluster_streams_resourced_total",
              "Incoming range streams that went on from another holder (source lost)");
  cm->streams_given_up.c =
      counter(r, "kura_cluster_streams_given_up_total",
              "Incoming range streams given up to anti-entropy (no live holder for 60 s)");
  cm->streams_dropped.c =
      counter(r, "kura_cluster_streams_dropped_total",
              "Incoming range streams ended by a ring change that gives this node no slot of "
              "their range (planned during a view flap)");
  cm->move_active = gauge(r, "kura_cluster_move_in_progress",
                          "1 while ranges stream in, 2 while a graceful leave hands off, else 0");
  cm->move_keys_expected = gauge(r, "kura_cluster_move_keys_expected",
                                 "Keys the move in progress transfers (as their holders counted)");
  return [cm](const actors::cluster_core& c) { cm->update(c); };
}

cluster_write_queue write_queue_of(const actors::cluster_core& c) {
  cluster_write_queue q;
  const gossip::node* n = c.core();
  if (auto* ts = n ? dynamic_cast<const gossip::tier_store*>(&n->store()) : nullptr) {
    q.queued = ts->unapplied();
    q.uncommitted = ts->uncommitted() - q.queued;
  }
  return q;
}

cluster_holdings holdings_of(const actors::cluster_core& c, bool kinds) {
  cluster_holdings out;
  const gossip::node* n = c.core();
  if (!n)
    return out;
  if (auto* ts = dynamic_cast<const gossip::tier_store*>(&n->store())) {
    auto h = ts->report_holdings(kinds);
    out.keys = h.keys;
    out.expires = h.expires;
    out.l1 = h.memory_l1;
    out.l2 = h.memory_l2;
    out.l3 = h.l3;
    out.l4 = h.l4;
  } else {
    out.keys = n->store().size();
  }
  return out;
}

} // namespace kura::node
