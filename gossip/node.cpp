#include "gossip/node.hpp"

#include "gossip/anti_entropy.hpp"

#include <algorithm>

namespace kura::gossip {

namespace {

/// Whether `a` is served rather than `b` (nullptr: nothing). The newer
/// version wins; at the same version a value beats a tombstone: a value and
/// a tombstone of one version are one write, the tombstone being the floor
/// that value left in L3 when it was demoted to L4 (or expired). A node whose
/// floor lost its value below (docs/cluster.md, "Known bugs", fixed in
/// session 12) must not answer nil while another replica holds the value.
bool serves_over(const entry& a, const entry* b) {
  return !b || b->ver < a.ver || (b->ver == a.ver && b->is_tombstone() && !a.is_tombstone());
}

} // namespace

node::node(node_config cfg, uint64_t rng_seed, std::unique_ptr<replica_store> store)
    : cfg_(std::move(cfg)), members_(cfg_.members, rng_seed, out_), rng_(rng_seed ^ 0x6e6f6465ull),
      hlc_(cfg_.members.self), store_(std::move(store)), hints_(cfg_.max_hints_per_node) {
  if (!store_)
    store_ = std::make_unique<memory_store>(cfg_.ring.seed);
}

// -- lifecycle ------------------------------------------------------------------

void node::start(uint64_t now, uint64_t incarnation) {
  // Never mint a version below what the store holds (a restart with its disk).
  hlc_.observe(store_->max_version(), now);
  // (what arrives before the first join's streams are planned, e.g. an
  // anti-entropy round a member started at us, does not make us a restart)
  started_empty_ = store_->size() == 0;
  members_.start(now, incarnation);
  // A node configured with the drain mark (persisted by its owner) starts
  // drained: it hands off whatever it still holds once it has joined.
  draining_ = membership::addr_drained(cfg_.members.addr);
  if (draining_ && cfg_.streaming)
    begin_drain(now);
  for (node_id sd : cfg_.members.seeds)
    catch_up_ = catch_up_ || (cfg_.catch_up_reads && sd != id());
  next_sync_ms_ =
      now + cfg_.members.sync_interval_ms / 2 + rng_.below(cfg_.members.sync_interval_ms / 2 + 1);
  next_hint_ms_ = now + cfg_.retry_ms;
  on_view_change(now, true);
}

void node::leave(uint64_t now) {
  if (left_)
    return;
  left_ = true;
  if (cfg_.streaming) {
    move_ = move_progress{};
    move_.active = true;
    move_.leaving = true;
    move_.started_ms = now;
    move_.keys_expected = store_->size();
  }
  members_.leave(now);
  on_view_change(now, true);
}

void node::drain(bool on, uint64_t now) {
  if (left_ || draining_ == on)
    return;
  draining_ = on;
  if (on && cfg_.streaming) {
    begin_drain(now);
  } else if (!on && move_.draining) {
    move_ = move_progress{}; // the ranges come back as streams (add_stream)
  }
  members_.set_drained(on, now);
  on_view_change(now, true);
}

void node::begin_drain(uint64_t now) {
  move_ = move_progress{};
  move_.active = true;
  move_.leaving = true;
  move_.draining = true;
  move_.started_ms = now;
  move_.keys_expected = store_->size();
  leave_done_ = leave_pass_done_ = false;
  leave_first_ = true;
  leave_inflight_ = 0;
}

void node::set_tokens(uint32_t tokens, uint64_t now) {
  if (left_)
    return;
  members_.set_tokens(tokens, now);
  on_view_change(now, true);
}

// -- view changes ---------------------------------------------------------------

void node::on_view_change(uint64_t now, bool from_tick) {
  // The first join's streams are due once we joined with others in the
  // ring; the members may have arrived (piggybacked on pings) before the
  // seed's answer made us joined, so that moment need not change the view.
  const bool first_join_due = cfg_.streaming && !left_ && !first_join_done_ && members_.joined() &&
                              ring_.members().size() > 1;
  if (ring_view_ == members_.view_version() && !ring_.empty() && !first_join_due)
    return;
  if (cfg_.ring_settle_ms > 0 && !ring_.empty() && (!from_tick || now < next_ring_ms_))
    return; // rebuilt by a later tick
  next_ring_ms_ = now + cfg_.ring_settle_ms;
  ring_view_ = members_.view_version();
  ring before = ring_;
  ring_ = ring(members_.ring_members(), cfg_.ring, members_.ring_tokens());
  masks_.clear();
  if (cfg_.ack_after_invalidation)
    near_.clear(); // registered with the old replicas only
  drop_foreign_streams(now);
  if (cfg_.streaming && !left_ && !first_join_done_ && members_.joined() &&
      ring_.members().size() > 1) {
    // First join: with an empty store (a new node, a restart with an empty
    // disk) pull every range we replicate from another replica of it.
    first_join_done_ = true;
    if (started_empty_) {
      key_range cur;
      node_id cur_from = no_node;
      auto flush = [&] {
        if (cur_from != no_node)
          add_stream(cur, cur_from, now);
        cur_from = no_node;
      };
      for (auto& a : ring_.arcs()) {
        node_id src = no_node, other = no_node;
        bool mine = false;
        for (node_id r : a.replicas) {
          if (r == id())
            mine = true;
          else if (src == no_node && members_.is_alive(r))
            src = r;
          else if (other == no_node)
            other = r;
        }
        if (src == no_node)
          src = other; // none alive: the stream waits for one (stream_step)
        if (!mine || src == no_node) {
          flush();
          continue;
        }
        if (cur_from == src && cur.hi == a.range.lo) {
          cur.hi = a.range.hi;
        } else {
          flush();
          cur = a.range;
          cur_from = src;
        }
      }
      flush();
    }
  }
  if (cfg_.catch_up_reads && !catch_up_ && !left_ && before.members().size() == 1 &&
      before.contains(id()) && ring_.members().size() > 1) {
    // We stood alone (started without seeds, e.g. first of a cluster that
    // restarts on its disks, or cut off from every peer) and now have
    // peers: we replicated every slot while alone, so no slot counts as
    // gained, yet we may lack what the others hold (a read through us of a
    // key we did not hold answered nil). Catch up as a node that joins
    // through seeds does.
    catch_up_ = true;
    catch_up_until_ = 0;
  }
  if (catch_up_ && catch_up_until_ == 0 && members_.joined() && ring_.members().size() > 1) {
    // Joined: catch up with every peer now instead of at the next sync.
    catch_up_until_ = now + cfg_.members.sync_interval_ms;
    sync_step(now);
  }
  if (before.empty())
    return;
  if (cfg_.catch_up_reads)
    note_gained(before, now);
  last_plan_ = transfer_plan(before, ring_);
  // A range whose old holder is not alive now (our view flapped: it was
  // suspected, declared dead, or we stood alone for a moment) still streams:
  // stream_step finds another live holder or waits for one, so the range is
  // never served from an incomplete copy as if it had arrived.
  if (cfg_.streaming && !left_ && !draining_)
    for (auto& t : last_plan_)
      if (t.to == id() && t.from != id() && t.from != no_node)
        add_stream(t.range, t.from, now);
  // Pull what we must now hold from its old holder, and push what we held to
  // its new holders; both are ordinary anti-entropy rounds (bidirectional), so
  // whichever side starts, the range converges. Ranges we no longer replicate
  // at all are handed off by handoff_step.
  std::vector<node_id> peers;
  bool lost_ranges = false;
  for (auto& t : last_plan_) {
    node_id self = id();
    if (t.to == self && t.from != self && t.from != no_node && members_.is_alive(t.from))
      peers.push_back(t.from);
    if (t.from == self && t.to != self) {
      peers.push_back(t.to);
      lost_ranges = true;
    }
  }
  std::sort(peers.begin(), peers.end());
  peers.erase(std::unique(peers.begin(), peers.end()), peers.end());
  for (node_id p : peers)
    start_anti_entropy(p);
  if ((left_ || draining_) && cfg_.streaming)
    leave_step(now);
  else if (lost_ranges || left_)
    handoff_step(now);
  for (auto& [nid, m] : members_.members())
    if (m.state == member_state::dead || m.state == member_state::left)
      invalidations_.drop_holder(nid);
}

// -- messages -------------------------------------------------------------------

status node::on_message(node_id from, std::string_view bytes, uint64_t now) {
  auto m = decode_message(bytes);
  if (!m) {
    ++stats_.decode_errors;
    return m.err();
  }
  if (from == no_node || from == id())
    return status{};
  note_time(now);
  auto refuted = members_.stats().refutations;
  if (!members_.handle(from, *m, now))
    handle(from, *m, now);
  on_view_change(now, false);
  if (members_.stats().refutations != refuted)
    catch_up_again(now); // suspected or declared dead: writes may have gone around us
  if (catch_up_ && members_.joined()) {
    std::vector<std::pair<uint64_t, std::string>> ready;
    for (auto it = reads_.begin(); it != reads_.end();)
      if (it->second.wait_join) {
        ready.emplace_back(it->first, std::move(it->second.key));
        it = reads_.erase(it);
      } else {
        ++it;
      }
    for (auto& [rid, key] : ready)
      dispatch_read(rid, key, now);
  }
  return status{};
}

void node::send(node_id to, const message& m) {
  if (to == id() || to == no_node)
    return;
  auto bytes = encode(m);
  if (std::holds_alternative<ae_digest_msg>(m) || std::holds_alternative<ae_keys_msg>(m) ||
      std::holds_alternative<ae_repair_msg>(m) || std::holds_alternative<ae_tree_msg>(m))
    stats_.ae_bytes += bytes.size();
  out_.push_back(outgoing{to, std::move(bytes)});
}

void node::count_streamed(const std::vector<wire_entry>& es) {
  stats_.streamed_entries += es.size();
  for (auto& e : es)
    stats_.streamed_bytes += e.key.size() + e.value.size();
}

bool node::apply_entry(const entry& e, uint64_t now) {
  hlc_.observe(e.ver, now);
  if (!erased_.empty() && erased_floor(e, now))
    return false;
  if (!store_->apply(e)) {
    // Not newer. The value of our own floor (the same version; its copy
    // below was lost) is taken back: the version held does not change.
    if (!e.is_tombstone())
      store_->restore(e);
    return false;
  }
  near_.erase(e.key);
  invalidations_.on_change(e.key, e.ver, now);
  if (cfg_.ack_after_invalidation) // the write waits for these: send them now, not at the tick
    for (auto& [holder, kv] : invalidations_.due_for(e.key, now, cfg_.retry_ms))
      if (!members_.is_dead(holder)) {
        ++stats_.invalidations_sent;
        send(holder, invalidate_msg{kv});
      }
  return true;
}

void node::raise_floor(const std::string& key, const version& v) {
  auto& f = floor_[key];
  if (f < v)
    f = v;
}

void node::written_elsewhere(const std::string& key, const version& v) {
  if (v.is_zero())
    return;
  raise_floor(key, v);
  if (auto it = near_.find(key); it != near_.end() && it->second.e.ver < v)
    near_.erase(it);
}

version node::floor(const std::string& key) const {
  auto it = floor_.find(key);
  version f = it == floor_.end() ? version{} : it->second;
  if (auto v = store_->version_of(key); v && f < *v)
    f = *v;
  return f;
}

node::key_state node::inspect(const std::string& key, uint64_t now) {
  key_state k;
  k.held = store_->get(key);
  k.indexed = store_->version_of(key);
  k.floor = floor(key);
  k.replica = !ring_.empty() && ring_.is_replica(id(), key);
  k.catching_up = reads_catch_up(key, now);
  if (!ring_.empty()) {
    const uint64_t pos = ring_.position(key);
    k.gained = gained(pos, now);
    k.streaming = incoming_from(pos) != no_node;
  }
  hints_.for_each([&](node_id, const entry& e) { k.hints += e.key == key; });
  k.near = near_.count(key) != 0;
  k.where = store_->where(key);
  return k;
}

const std::vector<bool>& node::shared_mask(node_id peer) {
  auto it = masks_.find(peer);
  if (it == masks_.end()) {
    auto m = ring_.shared_slots(id(), peer);
    // Ranges still streaming in are left to the stream: anti-entropy would
    // ship them unpaced (and list every key of them).
    for (size_t sl = 0; sl < incoming_.size() && sl < m.size(); ++sl)
      if (incoming_[sl] != no_node)
        m[sl] = false;
    it = masks_.emplace(peer, std::move(m)).first;
  }
  return it->second;
}

bool node::shared(node_id peer, uint64_t pos) const {
  return ring_.is_replica_at(id(), pos) && ring_.is_replica_at(peer, pos);
}

void node::handle(node_id from, message& msg, uint64_t now) {
  namespace ae = anti_entropy;
  if (auto* r = std::get_if<replicate_msg>(&msg)) {
    entry e = std::move(r->e).to_entry();
    // Applied: the store now holds exactly e.ver (no second index lookup on
    // the write path); refused: it holds something at least as new.
    version hv = e.ver;
    if (!apply_entry(e, now))
      if (auto held = store_->version_of(e.key))
        hv = *held;
    // Acking promises that we never again serve anything older. The store
    // only moves forward, so it keeps that promise for as long as it holds
    // the key; the floor is recorded when the key leaves the store (handoff,
    // tombstone collection), which keeps the floor map small on replicas.
    ++stats_.replicated;
    if (cfg_.ack_after_invalidation && invalidations_.holders(e.key) > 0) {
      deferred_acks_[e.key].emplace_back(from, r->rid);
      return;
    }
    send(from, replicate_ack_msg{r->rid, key_version{e.key, hv.hlc, hv.node}});
  } else if (auto* a = std::get_if<replicate_ack_msg>(&msg)) {
    version held = a->held.ver();
    if (hints_.acknowledge(from, a->held.key, held))
      ++stats_.hints_delivered;
    // Confirmations count only for a tombstone's collection, and only at or
    // above its version. An ack of the value this node is writing (the
    // pending write's own version) is below any tombstone we may hold since,
    // so it needs no index lookup (one per replicated SET fewer).
    auto* mine = a->rid != 0 ? writes_.find(a->rid) : nullptr;
    bool own_value = mine && !mine->e.is_tombstone() && mine->e.ver == held;
    if (!own_value && store_->holds_tombstone(a->held.key))
      tombstones_.confirm(a->held.key, from, held);
    if (a->rid != 0) {
      if (auto* w = writes_.ack(a->rid, from, held)) {
        if (!w->reported && w->acks >= w->needed)
          finish_write(*w, true);
        if (w->reported && w->waiting.empty())
          writes_.erase(a->rid);
      }
    }
  } else if (auto* hm = std::get_if<hint_msg>(&msg)) {
    entry e = hm->e.to_entry();
    hlc_.observe(e.ver, now);
    if (hm->target == id()) {
      apply_entry(e, now);
    } else if (erased_.empty() || !erased_floor(e, now)) {
      // A coordinator with an older ring picked us as a non-replica; in our
      // ring we replicate the key, so this is our copy too (else reads here
      // would miss it until anti-entropy).
      if (cfg_.catch_up_reads && ring_.is_replica(id(), e.key))
        apply_entry(e, now);
      hints_.add(hm->target, e);
      ++stats_.hints_stored;
      // The hint holder counts as a copy: it must not serve an older near copy.
      if (auto it = near_.find(e.key); it != near_.end() && it->second.e.ver < e.ver) {
        near_.erase(it);
        raise_floor(e.key, e.ver);
      }
    }
    send(from, replicate_ack_msg{hm->rid, key_version{e.key, e.ver.hlc, e.ver.node}});
  } else if (auto* f = std::get_if<fetch_msg>(&msg)) {
    fetch_reply_msg rep;
    rep.rid = f->rid;
    if (auto e = store_->get(f->key)) {
      rep.found = true;
      rep.e = wire_entry::from(*e);
      invalidations_.add_holder(f->key, from, now + cfg_.near_ttl_ms);
    } else {
      rep.unsure = !vouches_for(f->key);
    }
    send(from, rep);
  } else if (auto* fr = std::get_if<fetch_reply_msg>(&msg)) {
    auto it = reads_.find(fr->rid);
    if (it == reads_.end())
      return;
    if (it->second.gather) {
      auto& pr = it->second;
      if (std::find(pr.candidates.begin(), pr.candidates.end(), from) == pr.candidates.end() ||
          std::find(pr.answered.begin(), pr.answered.end(), from) != pr.answered.end())
        return;
      pr.answered.push_back(from);
      if (fr->found) {
        entry e = fr->e.to_entry();
        if (e.key == pr.key && serves_over(e, pr.best ? &*pr.best : nullptr))
          pr.best = std::move(e);
      } else {
        (fr->unsure ? pr.unsettled : pr.vouched) = true;
      }
      if (pr.answered.size() >= pr.candidates.size())
        finish_gather(fr->rid, now);
      return;
    }
    auto& pr = it->second;
    for (auto& [peer, sent] : pr.asked)
      if (peer == from) {
        note_fetch_time(from, now >= sent ? now - sent : 0);
        break;
      }
    if (!fr->found || fr->e.key != pr.key || version{fr->e.hlc, fr->e.node} < floor(pr.key)) {
      // (an answer older than what we acknowledged vouches for nothing)
      (fr->found || fr->unsure ? pr.unsettled : pr.vouched) = true;
      ++pr.unusable;
      if (awaits_more(pr))
        return; // a hedged ask is still out: its answer may be the value
    }
    if (!fr->found && it->second.next + 1 < it->second.candidates.size()) {
      // The owner may not have received the range yet: ask the next replica.
      it->second.unusable = it->second.asked.size(); // (no earlier ask is waited for)
      ++it->second.next;
      it->second.deadline = now + cfg_.read_timeout_ms;
      send_fetch(fr->rid, now);
      return;
    }
    std::string key = it->second.key;
    const bool vouched = it->second.vouched, unsettled = it->second.unsettled;
    reads_.erase(it);
    if (fr->found) {
      entry e = fr->e.to_entry();
      if (e.key == key && ring_.is_replica(id(), key)) {
        apply_entry(e, now); // a catch-up read: repair our copy, serve the newest
        version newest = e.ver;
        if (auto held = store_->version_of(key); held && newest < *held)
          newest = *held;
        if (!(newest < floor(key))) {
          serve_read(fr->rid, key, &e, now);
          return;
        } // (older than a version we know of: not served, as below)
      }
      if (e.key == key && !(e.ver < floor(key))) {
        keep_near(from, e, now);
        serve_read(fr->rid, key, &e, now);
        return;
      }
    }
    serve_unfound(fr->rid, key, vouched, unsettled, now);
  } else if (auto* ho = std::get_if<hold_msg>(&msg)) {
    // A near holder that fetched from another replica: we invalidate it too.
    invalidations_.add_holder(ho->copy.key, from, now + cfg_.near_ttl_ms);
    hold_ack_msg rep{ho->copy, key_version{ho->copy.key, 0, 0}};
    if (auto e = store_->get(ho->copy.key))
      rep.held = key_version{e->key, e->ver.hlc, e->ver.node};
    send(from, rep);
  } else if (auto* ha = std::get_if<hold_ack_msg>(&msg)) {
    auto it = near_.find(ha->copy.key);
    if (it == near_.end() || it->second.e.ver != ha->copy.ver())
      return; // a copy we no longer keep
    if (it->second.e.ver < ha->held.ver()) {
      raise_floor(ha->copy.key, ha->held.ver()); // already stale
      near_.erase(it);
      return;
    }
    auto& u = it->second.unconfirmed;
    u.erase(std::remove(u.begin(), u.end(), from), u.end());
  } else if (auto* inv = std::get_if<invalidate_msg>(&msg)) {
    auto it = near_.find(inv->kv.key);
    if (it != near_.end() && it->second.e.ver < inv->kv.ver())
      near_.erase(it);
    raise_floor(inv->kv.key, inv->kv.ver());
    send(from, invalidate_ack_msg{inv->kv});
  } else if (auto* ia = std::get_if<invalidate_ack_msg>(&msg)) {
    if (invalidations_.acknowledge(from, ia->kv))
      ++stats_.invalidations_acked;
    release_acks(ia->kv.key);
  } else if (auto* d = std::get_if<ae_digest_msg>(&msg)) {
    if (d->prefix_bits == 0 && !d->reply) {
      auto diff = ae::differing(ae::level1(*store_, shared_mask(from)), d->digests);
      if (diff.empty())
        return;
      std::vector<uint16_t> prefixes(diff.begin(), diff.end());
      auto l2 = ae::level2(*store_, shared_mask(from), prefixes);
      send(from, ae_digest_msg{d->sid, 8, true, std::move(prefixes), std::move(l2)});
    } else if (d->prefix_bits == 8 && d->reply) {
      auto diff = ae::differing(ae::level2(*store_, shared_mask(from), d->prefixes), d->digests);
      if (diff.empty())
        return;
      std::vector<uint16_t> buckets;
      const auto& mask = shared_mask(from);
      for (size_t i : diff) {
        auto b = static_cast<uint16_t>((d->prefixes[i / ae::fanout] << 8) | (i % ae::fanout));
        if (mask.empty() || mask[b >> 2]) // not a slot we leave to its stream
          buckets.push_back(b);
      }
      if (buckets.empty())
        return;
      auto keys = ae::list_keys(*store_, shared_mask(from), buckets);
      send(from, ae_keys_msg{d->sid, std::move(buckets), std::move(keys)});
    }
  } else if (auto* t = std::get_if<ae_tree_msg>(&msg)) {
    // Version 2: one step down the 16-ary tree (gossip/anti_entropy.hpp).
    ae_answered(from, t->sid);
    // A round's opening that ends here (equal roots, or a sender we cannot
    // place) is answered with an empty key list, so the initiator can tell
    // an answered round from a failed one (track_sync_failures); a node
    // without it ignores the empty list.
    auto answer_done = [&] {
      if (cfg_.track_sync_failures && t->bits == 0)
        send(from, ae_keys_msg{t->sid, {}, {}});
    };
    if (!ring_.contains(from)) {
      answer_done();
      // We do not place the sender (it is dead or left in our view, e.g. a
      // restart we have not seen alive yet): every slot would differ and
      // every key be listed. Start a round ourselves once the views agreed.
      ++stats_.ae_view_mismatches;
      ae_retry_.emplace(from, now + std::min<uint64_t>(500, cfg_.members.sync_interval_ms / 4));
      return;
    }
    const auto& mask = shared_mask(from);
    auto mine = ae::children(*store_, mask, t->bits, t->prefixes);
    auto diff = ae::differing(mine, t->digests);
    if (mine.size() == t->digests.size())
      note_in_sync(from, t->bits, t->prefixes, mine.size(), diff, now);
    if (diff.empty())
      return answer_done();
    auto parent = [&](size_t i) { return t->bits == 0 ? uint16_t{0} : t->prefixes[i / 16]; };
    std::vector<uint16_t> next;
    for (size_t i : diff)
      next.push_back(static_cast<uint16_t>((parent(i) << ae::tree_bits) | (i % ae::tree_fanout)));
    if (t->bits + ae::tree_bits < 16) {
      auto bits = static_cast<uint8_t>(t->bits + ae::tree_bits);
      auto d = ae::children(*store_, mask, bits, next);
      send(from, ae_tree_msg{t->sid, bits, std::move(next), std::move(d)});
      return;
    }
    std::vector<uint16_t> buckets;
    for (auto b : next)
      if (mask.empty() || mask[b >> 2]) // not a slot we leave to its stream
        buckets.push_back(b);
    if (buckets.empty())
      return;
    auto keys = ae::list_keys(*store_, mask, buckets);
    send(from, ae_keys_msg{t->sid, std::move(buckets), std::move(keys)});
  } else if (auto* k = std::get_if<ae_keys_msg>(&msg)) {
    ae_answered(from, k->sid);
    auto plan = ae::compare(*store_, shared_mask(from), k->buckets, k->keys);
    if (plan.push.empty() && plan.want.empty())
      return;
    ae_repair_msg rep;
    rep.sid = k->sid;
    for (auto& e : plan.push)
      rep.entries.push_back(wire_entry::from(e));
    rep.want = std::move(plan.want);
    count_streamed(rep.entries);
    send(from, rep);
  } else if (auto* rp = std::get_if<ae_repair_msg>(&msg)) {
    ae_answered(from, rp->sid);
    for (auto& we : rp->entries) {
      entry e = we.to_entry();
      if (apply_entry(e, now))
        ++stats_.ae_repaired;
      if (e.is_tombstone())
        tombstones_.confirm(e.key, from, e.ver);
    }
    if (!rp->want.empty()) {
      ae_repair_msg rep;
      rep.sid = rp->sid;
      for (auto& key : rp->want)
        if (auto e = store_->get(key))
          rep.entries.push_back(wire_entry::from(*e));
      if (!rep.entries.empty()) {
        count_streamed(rep.entries);
        send(from, rep);
      }
    }
  } else if (auto* h = std::get_if<handoff_msg>(&msg)) {
    handoff_ack_msg ack;
    for (auto& we : h->entries) {
      entry e = we.to_entry();
      apply_entry(e, now);
      if (auto held = store_->version_of(e.key)) // the index: no value read
        ack.held.push_back(key_version{e.key, held->hlc, held->node});
    }
    send(from, ack);
  } else if (auto* ha = std::get_if<handoff_ack_msg>(&msg)) {
    if (leave_inflight_ > 0)
      --leave_inflight_;
    for (auto& kv : ha->held) {
      auto& v = handoff_acks_[kv.key][from];
      if (v < kv.ver())
        v = kv.ver();
    }
  } else if (auto* tc = std::get_if<tomb_check_msg>(&msg)) {
    tomb_confirm_msg rep;
    for (auto& kv : tc->keys)
      if (auto e = store_->get(kv.key); e && !(e->ver < kv.ver()))
        rep.keys.push_back(key_version{kv.key, e->ver.hlc, e->ver.node});
    send(from, rep);
  } else if (auto* tcf = std::get_if<tomb_confirm_msg>(&msg)) {
    for (auto& kv : tcf->keys)
      tombstones_.confirm(kv.key, from, kv.ver());
  } else if (auto* rq = std::get_if<stream_req_msg>(&msg)) {
    serve_stream(from, *rq);
  } else if (auto* sb = std::get_if<stream_batch_msg>(&msg)) {
    auto it = streams_.find(sb->sid);
    if (it == streams_.end() || it->second.from != from || !it->second.in_flight)
      return; // a late answer to a request we gave up on
    auto& st = it->second;
    uint64_t bytes = 0, n = 0;
    for (auto& we : sb->entries) {
      entry e = we.to_entry();
      if (!st.range.contains(store_->position(e.key)))
        continue; // not what we asked for
      apply_entry(e, now);
      bytes += e.key.size() + e.value.size();
      ++n;
    }
    stats_.stream_received_entries += n;
    stats_.stream_received_bytes += bytes;
    move_.keys += n;
    move_.bytes += bytes;
    if (st.first) {
      move_.keys_expected += sb->total_keys;
      ++move_.ranges_started;
    }
    if (cfg_.stream_rate > 0)
      budget_ -= static_cast<double>(bytes);
    st.in_flight = false;
    st.failures = 0;
    st.progress_ms = now;
    st.first = false;
    st.after_pos = sb->next_pos;
    st.after_key = sb->next_key;
    if (sb->done || sb->entries.empty())
      stream_finished(sb->sid, now);
    stream_step(now); // keep the pipe full
  }
}

// -- range streaming -------------------------------------------------------------

void node::add_stream(const key_range& r, node_id from, uint64_t now) {
  for (auto& [sid, st] : streams_)
    if (st.range == r && st.from == from)
      return;
  if (streams_.empty() && !left_ && !move_.leaving) { // a new operation
    move_ = move_progress{};
    move_.started_ms = now;
  }
  move_.active = true;
  ++move_.ranges;
  stream_in st;
  st.range = r;
  st.from = from;
  st.progress_ms = now;
  streams_.emplace(next_rid_++, std::move(st));
  refresh_incoming();
}

void node::refresh_incoming() {
  masks_.clear();
  if (streams_.empty()) {
    incoming_.clear();
    return;
  }
  incoming_.assign(size_t{1} << 14, no_node);
  for (auto& [sid, st] : streams_) {
    // Ranges hold whole slots (tokens end slots): (lo, hi] = slots of lo+1 .. hi.
    uint32_t first = ring::slot_of(st.range.lo + 1), last = ring::slot_of(st.range.hi);
    for (uint32_t sl = first;; sl = (sl + 1) & 16383u) {
      if (incoming_[sl] == no_node)
        incoming_[sl] = st.from;
      if (sl == last)
        break;
    }
  }
}

void node::refill_budget(uint64_t now) {
  if (cfg_.stream_rate == 0)
    return;
  double rate = static_cast<double>(cfg_.stream_rate);
  if (budget_ms_ == 0 || now < budget_ms_) {
    budget_ms_ = now;
    budget_ = std::min(rate / 4, static_cast<double>(cfg_.stream_batch_bytes));
    return;
  }
  budget_ += rate * static_cast<double>(now - budget_ms_) / 1000.0;
  budget_ms_ = now;
  budget_ = std::min(budget_, std::max(rate / 4, static_cast<double>(cfg_.stream_batch_bytes)));
}

void node::stream_step(uint64_t now) {
  if (streams_.empty())
    return;
  refill_budget(now);
  size_t in_flight = 0;
  std::vector<uint64_t> failed;
  for (auto& [sid, st] : streams_) {
    if (st.in_flight && now >= st.deadline) {
      st.in_flight = false;
      ++st.failures;
    }
    // A source that died, left the ring or failed 5 times in a row.
    if (st.failures >= 5 || members_.is_dead(st.from) || !ring_.contains(st.from))
      failed.push_back(sid);
    else if (st.in_flight)
      ++in_flight;
  }
  const bool placed = ring_.contains(id());
  for (auto sid : failed) {
    auto& st = streams_[sid];
    if (placed && !ring_.is_replica_at(id(), st.range.hi)) {
      stream_finished(sid, now); // not ours any more (a later ring change)
      continue;
    }
    // Another live holder of the range (the current ring's replicas of its
    // last slot) continues from the same cursor: every holder orders keys
    // by (position, key).
    node_id alt = no_node;
    for (node_id r : ring_.replicas_at(st.range.hi))
      if (r != id() && r != st.from && members_.is_alive(r) && alt == no_node)
        alt = r;
    if (alt != no_node) {
      st.from = alt;
      st.failures = 0;
      st.in_flight = false;
      ++st.resourced;
      ++stats_.streams_resourced;
      refresh_incoming();
      continue;
    }
    // Nobody else holds it now. Finishing here would leave the range served
    // from what arrived so far as if it were complete (our view may only
    // have flapped: the holder suspected, declared dead and back, or every
    // peer unreachable for a moment). So the stream waits, its slots still
    // incoming (reads ask the other replicas): it goes on from the same
    // source once that answers again, or from a holder a later ring names,
    // and only a range without progress for stream_give_up_ms is given up
    // to anti-entropy.
    if (now >= st.progress_ms + stream_give_up_ms) {
      ++stats_.streams_given_up;
      stream_finished(sid, now);
      continue;
    }
    if (st.failures >= 5 && members_.is_alive(st.from) && ring_.contains(st.from))
      st.failures = 0; // alive but slow: ask it again
  }
  uint64_t per = cfg_.stream_batch_bytes;
  if (cfg_.stream_rate > 0)
    per = std::clamp<uint64_t>(cfg_.stream_rate / 4, 4096, per);
  for (auto& [sid, st] : streams_) {
    if (in_flight >= std::max<size_t>(1, cfg_.stream_parallel))
      break;
    if (cfg_.stream_rate > 0 && budget_ <= 0)
      break;
    if (st.in_flight || !members_.is_alive(st.from))
      continue;
    send(st.from,
         stream_req_msg{sid, st.range.lo, st.range.hi, st.first, st.after_pos, st.after_key, per});
    st.in_flight = true;
    st.deadline = now + 4 * cfg_.read_timeout_ms;
    ++in_flight;
  }
}

void node::stream_finished(uint64_t sid, uint64_t now) {
  if (streams_.erase(sid) == 0)
    return;
  ++move_.ranges_done;
  refresh_incoming();
  if (streams_.empty() && !move_.leaving) {
    move_.active = false;
    move_.finished_ms = now;
    // What the stream could not see (a write sent to the old replicas by a
    // coordinator with an older ring) is anti-entropy's, which now covers
    // those ranges again.
    sync_step(now);
  }
}

void node::drop_foreign_streams(uint64_t now) {
  // Not placed (left, drained): stream_step decides; nothing here.
  if (streams_.empty() || !ring_.contains(id()))
    return;
  std::vector<uint64_t> foreign;
  for (auto& [sid, st] : streams_) {
    // Ranges hold whole slots: (lo, hi] = slots of lo+1 .. hi (refresh_incoming).
    uint32_t first = ring::slot_of(st.range.lo + 1), last = ring::slot_of(st.range.hi);
    bool ours = false;
    for (uint32_t sl = first; !ours; sl = (sl + 1) & 16383u) {
      ours = ring_.is_replica_at(id(), ring::slot_base(sl));
      if (sl == last)
        break;
    }
    if (!ours)
      foreign.push_back(sid);
  }
  for (uint64_t sid : foreign) {
    ++stats_.streams_dropped;
    stream_finished(sid, now);
  }
}

void node::serve_stream(node_id from, const stream_req_msg& rq) {
  (void)from;
  key_range r{rq.lo, rq.hi};
  stream_batch_msg rep;
  rep.sid = rq.sid;
  const uint64_t max = std::clamp<uint64_t>(rq.max_bytes, 1024, uint64_t{64} << 20);
  const bool wraps = !(r.lo < r.hi); // (lo, max] then [0, hi]
  const uint64_t start = rq.first ? r.lo + 1 : rq.after_pos;
  const bool leg_b_next = wraps && start > r.hi;
  if (rq.first) {
    uint64_t n = 0;
    auto count = [&](uint64_t p, const entry&) {
      if (!r.contains(p))
        return false;
      ++n;
      return true;
    };
    store_->for_each_key_from(start, count);
    if (leg_b_next)
      store_->for_each_key_from(0, count);
    rep.total_keys = n;
  }
  bool full = false, ended = false;
  uint64_t bytes = 0;
  auto visit = [&](uint64_t p, const entry& meta) {
    if (!rq.first && p == rq.after_pos && meta.key <= rq.after_key)
      return true; // sent already
    if (!r.contains(p)) {
      ended = true;
      return false;
    }
    if (!rep.entries.empty() && bytes >= max) {
      full = true;
      return false;
    }
    auto e = store_->get(meta.key);
    if (!e)
      return true;
    bytes += e->key.size() + e->value.size();
    rep.entries.push_back(wire_entry::from(*e));
    rep.next_pos = p;
    rep.next_key = meta.key;
    return true;
  };
  store_->for_each_key_from(start, visit);
  if (leg_b_next && !full && !ended)
    store_->for_each_key_from(0, visit);
  rep.done = !full;
  count_streamed(rep.entries);
  send(from, rep);
}

void node::leave_step(uint64_t now) {
  if (!cfg_.streaming || !(left_ || draining_) || leave_done_)
    return;
  bool anyone = false;
  for (node_id m : ring_.members())
    anyone = anyone || (m != id() && members_.is_alive(m));
  if (!anyone) { // the last node: nobody to hand off to
    if (!left_ && !members_.joined())
      return; // a drained node restarting: hand off once it has joined
    leave_done_ = true;
    move_.active = false;
    move_.finished_ms = now;
    return;
  }
  refill_budget(now);
  uint64_t per = cfg_.stream_batch_bytes;
  if (cfg_.stream_rate > 0)
    per = std::clamp<uint64_t>(cfg_.stream_rate / 4, 4096, per);
  if (!leave_pass_done_ && (cfg_.stream_rate == 0 || budget_ > 0) &&
      leave_inflight_ < std::max<size_t>(1, cfg_.stream_parallel) * ring_.members().size()) {
    // One pass over everything held, in ring order: each key to its replicas.
    std::map<node_id, handoff_msg> batches;
    uint64_t bytes = 0;
    bool full = false;
    store_->for_each_key_from(leave_first_ ? 0 : leave_pos_, [&](uint64_t p, const entry& meta) {
      if (!leave_first_ && p == leave_pos_ && meta.key <= leave_key_)
        return true;
      if (bytes >= per) {
        full = true;
        return false;
      }
      auto e = store_->get(meta.key);
      leave_first_ = false;
      leave_pos_ = p;
      leave_key_ = meta.key;
      if (!e)
        return true;
      uint64_t sz = e->key.size() + e->value.size();
      for (node_id r : ring_.replicas_at(p))
        if (r != id()) {
          batches[r].entries.push_back(wire_entry::from(*e));
          bytes += sz;
        }
      ++move_.keys;
      move_.bytes += sz;
      return true;
    });
    if (!full)
      leave_pass_done_ = true;
    if (cfg_.stream_rate > 0)
      budget_ -= static_cast<double>(bytes);
    for (auto& [to, m] : batches)
      if (members_.is_alive(to)) {
        count_streamed(m.entries);
        send(to, m);
        ++leave_inflight_;
      }
  }
  if (leave_pass_done_ && now >= next_leave_retry_) {
    // Drops what every replica confirmed, resends the rest.
    next_leave_retry_ = now + std::min<uint64_t>(cfg_.retry_ms, 500);
    handoff_step(now);
    if (store_->size() == 0) {
      leave_done_ = true;
      move_.active = false;
      move_.finished_ms = now;
    }
  }
}

void node::release_acks(const std::string& key) {
  auto it = deferred_acks_.find(key);
  if (it == deferred_acks_.end() || invalidations_.holders(key) > 0)
    return;
  auto held = store_->version_of(key);
  version hv = held ? *held : version{};
  auto acks = std::move(it->second);
  deferred_acks_.erase(it);
  for (auto& [to, rid] : acks) {
    if (to != id()) {
      send(to, replicate_ack_msg{rid, key_version{key, hv.hlc, hv.node}});
    } else if (auto* w = writes_.ack(rid, to, hv)) {
      if (!w->reported && w->acks >= w->needed)
        finish_write(*w, true);
      if (w->reported && w->waiting.empty())
        writes_.erase(rid);
    }
  }
}

// -- client calls ---------------------------------------------------------------

uint64_t node::write(std::string_view key, std::string_view value, uint64_t now, bool tombstone,
                     uint64_t expiry_ms, uint8_t flags) {
  uint64_t rid = next_rid_++;
  ++stats_.writes;
  // The new version must beat whatever we already hold for the key, even if our
  // wall clock is behind the writer of that version.
  if (auto cur = store_->version_of(key))
    hlc_.observe(*cur, now);
  // ... and every version we know was written elsewhere (a command this node
  // forwarded to the key's owner: written_elsewhere). Else a SET coordinated
  // here right after a forwarded INCR of its key minted an older version
  // than the INCR's, and last-writer-wins dropped the acknowledged SET.
  if (!floor_.empty())
    if (auto it = floor_.find(key); it != floor_.end())
      hlc_.observe(it->second, now);
  entry e; // (the one copy of the key and value made here; `key` is e.key below)
  e.key = key;
  if (!tombstone)
    e.value = value;
  e.expiry_ms = tombstone ? 0 : expiry_ms;
  e.ver = hlc_.now(now);
  e.flags = tombstone ? entry_flags::tombstone : static_cast<uint8_t>(flags & entry_flags::hash);
  auto plan = plan_write(ring_, key, cfg_.write_acks);
  uint32_t acks = 0;
  std::set<node_id> waiting;
  bool local = false;
  for (node_id t : plan.targets) {
    if (t == id()) {
      local = true;
      apply_entry(e, now);
      if (cfg_.ack_after_invalidation && invalidations_.holders(e.key) > 0) {
        waiting.insert(t); // our own copy counts once its near holders dropped theirs
        deferred_acks_[e.key].emplace_back(t, rid);
      } else {
        ++acks;
      }
    } else {
      waiting.insert(t);
      out_.push_back(outgoing{t, encode_replicate(rid, e)}); // send(): the same bytes
    }
  }
  // Read-your-writes on a coordinator that is not a replica: never serve an
  // older near copy after this. (A replica's store holds the version; its
  // floor is recorded when the key leaves the store, as on replicate.)
  near_.erase(e.key);
  if (!local)
    raise_floor(e.key, e.ver);
  auto& w = writes_.add(rid, std::move(e), std::move(waiting), acks, plan.acks_needed,
                        now + cfg_.write_timeout_ms, now + cfg_.retry_ms);
  if (cfg_.sloppy_quorum)
    for (node_id t : plan.targets)
      if (t != id() && members_.is_suspect(t)) // (info() copies the member's address)
        recruit_holder(w, t, now);
  if (!plan.achievable())
    finish_write(w, false); // still replicated where possible, but not acknowledged
  else if (w.acks >= w.needed)
    finish_write(w, true);
  if (w.reported && w.waiting.empty())
    writes_.erase(rid);
  return rid;
}

void node::recruit_holder(pending_writes::write& w, node_id target, uint64_t now) {
  (void)now;
  for (auto& [h, t] : w.holders)
    if (t == target)
      return; // one holder per suspect replica
  auto replicas = ring_.replicas(w.e.key);
  auto is_replica = [&](node_id n) {
    return std::find(replicas.begin(), replicas.end(), n) != replicas.end();
  };
  auto usable = [&](node_id n) {
    auto m = members_.info(n);
    return !is_replica(n) && w.holders.count(n) == 0 && m && m->state == member_state::alive;
  };
  if (usable(id())) {
    // We coordinate and are no replica: we keep the hint and count as a copy.
    hints_.add(target, w.e);
    ++stats_.hints_stored;
    w.holders[id()] = target;
    ++w.acks;
  } else {
    // The next live node after the key's position that is no replica.
    const auto& ms = ring_.members();
    if (ms.empty())
      return;
    size_t start = static_cast<size_t>(ring_.position(w.e.key) % ms.size());
    node_id h = no_node;
    for (size_t i = 0; i < ms.size() && h == no_node; ++i)
      if (usable(ms[(start + i) % ms.size()]))
        h = ms[(start + i) % ms.size()];
    if (h == no_node)
      return;
    w.holders[h] = target;
    w.waiting.insert(h);
    send(h, hint_msg{w.rid, target, wire_entry::from(w.e)});
  }
}

void node::finish_write(pending_writes::write& w, bool ok) {
  w.reported = true;
  // Waiting for no one, the write is erased next by every caller (its entry
  // is not read again): its entry moves into the result instead of a copy.
  if (w.waiting.empty())
    results_.push_back(client_result{w.rid, true, ok, false, std::move(w.e)});
  else
    results_.push_back(client_result{w.rid, true, ok, false, w.e});
}

bool node::catching_up(uint64_t now) const {
  return catch_up_ && (catch_up_until_ == 0 || now < catch_up_until_);
}

bool node::reads_catch_up(const std::string& key, uint64_t now) {
  note_time(now);
  if (ring_.empty() || !ring_.is_replica(id(), key))
    return false;
  const uint64_t pos = ring_.position(key);
  return catching_up(now) || gained(pos, now) || incoming_from(pos) != no_node;
}

size_t node::gathering_slots(uint64_t now) const {
  if (ring_.empty())
    return 0;
  const bool all = catching_up(now);
  size_t n = 0;
  for (uint32_t sl = 0; sl < (uint32_t{1} << 14); ++sl) {
    const uint64_t pos = ring::slot_base(sl);
    if (ring_.is_replica_at(id(), pos) &&
        (all || gained(pos, now) || incoming_from(pos) != no_node))
      ++n;
  }
  return n;
}

// -- slots gained in a ring change ------------------------------------------------
//
// When a member is declared dead (or leaves), the ring gives its slots to
// nodes that did not replicate them. Such a node holds nothing of those
// slots until the stream from an old replica and anti-entropy bring them
// in, and meanwhile writes keep reaching the old replicas: a coordinator
// whose ring has not changed yet sends them there, or to a hint holder.
// Serving such a slot from its own copy would answer nil (or an old value)
// for writes that were acknowledged. So it serves them as a restarted node
// does: every other replica is asked, the newest answer repairs its copy and
// is served. Until when is decided by data, not by a timer (under load a
// stream can be given up and anti-entropy delayed for longer than any fixed
// window): until anti-entropy found the slot equal on this node and on every
// other replica of it, at least a sync interval after the gain (by then the
// other nodes dropped the dead member too, so no write for the slot goes
// around us any more), with the slot no longer streaming in and every other
// replica alive. Equal digests are learnt from the tree walk itself: each
// step a peer sends carries its digests of the children it asks about, and
// the children equal to ours are in sync at that moment.

void node::note_gained(const ring& before, uint64_t now) {
  if (left_ || !ring_.contains(id()))
    return;
  bool any = false;
  for (uint32_t sl = 0; sl < (uint32_t{1} << 14); ++sl) {
    uint64_t pos = ring::slot_base(sl);
    if (!ring_.is_replica_at(id(), pos) || before.is_replica_at(id(), pos))
      continue;
    if (gained_since_.empty())
      gained_since_.assign(size_t{1} << 14, 0);
    gained_since_[sl] = now;
    any = true;
  }
  if (!any)
    return;
  // Hints held for keys we now replicate: they are our copy now.
  std::vector<entry> mine;
  hints_.for_each([&](node_id, const entry& e) {
    if (ring_.is_replica(id(), e.key))
      mine.push_back(e);
  });
  for (auto& e : mine)
    apply_entry(e, now);
}

void node::note_in_sync(node_id from, uint8_t bits, const std::vector<uint16_t>& prefixes,
                        size_t children, const std::vector<size_t>& diff, uint64_t now) {
  if (gained_since_.empty())
    return;
  auto& at = in_sync_[from];
  if (at.empty())
    at.assign(size_t{1} << 14, 0);
  std::vector<bool> differs(children, false);
  for (size_t i : diff)
    if (i < children)
      differs[i] = true;
  const unsigned level = bits + 4u; // bits of a child's prefix (of a 16-bit bucket)
  for (size_t i = 0; i < children; ++i) {
    uint32_t parent = bits == 0 ? 0u : (i / 16 < prefixes.size() ? prefixes[i / 16] : 0u);
    uint32_t child = (parent << 4) | static_cast<uint32_t>(i % 16);
    if (level < 16) { // a whole subtree of slots (4 buckets per slot)
      if (differs[i])
        continue;
      uint32_t first = (child << (16 - level)) >> 2, last = ((child + 1) << (16 - level)) >> 2;
      for (uint32_t sl = first; sl < last && sl < at.size(); ++sl)
        at[sl] = now;
    } else if (i % 4 == 0 && i + 3 < children) { // buckets: a slot is its 4 buckets
      if (!differs[i] && !differs[i + 1] && !differs[i + 2] && !differs[i + 3])
        at[child >> 2] = now;
    }
  }
}

void node::gained_step(uint64_t now) {
  if (gained_since_.empty() || now < next_gained_ms_)
    return;
  next_gained_ms_ = now + 100;
  // Alone in the ring because every peer died (not left: a graceful leave
  // hands its keys off): the slots the dead held stay gained, as there is
  // nobody to find them in sync with, and a key not held here is no answer.
  bool orphaned = false;
  if (ring_.members().size() == 1 && ring_.contains(id()))
    for (auto& [nid, m] : members_.members())
      orphaned = orphaned || (nid != id() && m.state == member_state::dead);
  bool any = false;
  for (uint32_t sl = 0; sl < gained_since_.size(); ++sl) {
    uint64_t since = gained_since_[sl];
    if (since == 0)
      continue;
    bool done = !orphaned && (incoming_.empty() || incoming_[sl] == no_node);
    if (const node_id* reps = ring_.replicas_ptr(ring::slot_base(sl)); reps && done)
      for (size_t j = 0; j < ring_.width() && done; ++j) {
        if (reps[j] == id())
          continue;
        auto it = in_sync_.find(reps[j]);
        done = members_.is_alive(reps[j]) && it != in_sync_.end() &&
               it->second[sl] > since + cfg_.members.sync_interval_ms;
      }
    if (done)
      gained_since_[sl] = 0;
    else
      any = true;
  }
  if (!any) {
    gained_since_.clear();
    in_sync_.clear();
  }
}

void node::note_time(uint64_t now) {
  // A gap since we last ran (SIGSTOP, a stalled VM) longer than a probe
  // period: the others may have suspected or declared us dead and written
  // around us (hints elsewhere, invalidations given up on). Longer than the
  // read timeout (kura-node: request-timeout) is enough, though: a peer that
  // forwarded us a command safe to run twice (a plain SET) gave up on us
  // after that long and ran it at the next replica, whose write reaches us
  // only when we handle its message, perhaps after our own client's
  // read-modify-write of the key (which would replace the acknowledged SET).
  // Catch up: reads of our keys ask the other replicas first.
  const uint64_t gap = cfg_.read_timeout_ms == 0
                           ? cfg_.members.probe_interval_ms
                           : std::min(cfg_.members.probe_interval_ms, cfg_.read_timeout_ms);
  bool paused = last_seen_ms_ != 0 && now > last_seen_ms_ + gap;
  last_seen_ms_ = std::max(last_seen_ms_, now);
  if (paused)
    ae_open_.clear(); // our own pause: the answers may be waiting in our socket
  if (paused)
    catch_up_again(now);
}

void node::catch_up_again(uint64_t now) {
  if (!cfg_.catch_up_reads || left_ || !members_.joined())
    return;
  ++stats_.catch_ups;
  // Reads ask the other replicas and serve the newest for one sync
  // interval; near copies may have missed invalidations (a writer stops
  // retrying a holder it declared dead); anti-entropy with every peer now.
  catch_up_ = true;
  catch_up_until_ = now + cfg_.members.sync_interval_ms;
  near_.clear();
  sync_step(now);
}

uint64_t node::read(const std::string& key, uint64_t now) {
  note_time(now);
  uint64_t rid = next_rid_++;
  ++stats_.reads;
  dispatch_read(rid, key, now);
  return rid;
}

std::optional<node::local_answer> node::read_here(std::string_view key, uint64_t now,
                                                  entry& scratch) {
  note_time(now);
  // dispatch_read's cases that ask the others, or wait
  if (catching_up(now) || ring_.empty())
    return std::nullopt;
  const uint64_t pos = ring_.position(key);
  if (!ring_.is_replica_at(id(), pos) || incoming_from(pos) != no_node || gained(pos, now))
    return std::nullopt;
  auto fl = floor_.empty() ? floor_.end() : floor_.find(key);
  if (fl != floor_.end() && !fl->second.is_zero() && !(fl->second <= store_->version_of(key)))
    return std::nullopt; // behind a version written elsewhere
  if (!near_.empty() && near_.find(key) != near_.end())
    return std::nullopt; // serve_read weighs a near copy against the store's
  ++stats_.reads;
  ++stats_.local_reads;
  // serve_read: the store's copy, never older than the floor
  auto stored = store_->get_ref(key, scratch);
  local_answer a;
  // (a view into the store's memory is of version_of()'s version: no need
  // to ask for it)
  if (stored && (fl != floor_.end() || stored->key.data() == scratch.key.data())) {
    version f = fl == floor_.end() ? version{} : fl->second;
    if (auto v = store_->version_of(key); v && f < *v)
      f = *v;
    if (stored->ver < f)
      stored.reset();
  }
  if (stored) {
    a.found = !stored->is_tombstone() && !stored->expired(now);
    a.e = *stored;
  } else {
    a.e.key = key;
  }
  return a;
}

void node::dispatch_read(uint64_t rid, const std::string& key, uint64_t now) {
  if (catching_up(now) && !members_.joined()) {
    pending_read pr;
    pr.key = key;
    pr.wait_join = true;
    pr.deadline = now + cfg_.read_timeout_ms;
    reads_[rid] = std::move(pr);
    return;
  }
  if (ring_.empty() || ring_.is_replica(id(), key)) {
    std::vector<node_id> others;
    const uint64_t pos = ring_.position(key);
    // A range still streaming in: ask its source first (it holds the data).
    node_id src = incoming_from(pos);
    if (src != no_node && src != id() && members_.is_alive(src))
      others.push_back(src); // (a parked stream's source is not asked)
    const bool gather = catching_up(now) || gained(pos, now);
    // Our copy is older than a version we know was written (a command we
    // forwarded wrote it at the owner, written_elsewhere): ask the others.
    auto fl = floor_.find(key);
    const bool behind =
        fl != floor_.end() && !fl->second.is_zero() && !(fl->second <= store_->version_of(key));
    if (gather || src != no_node || behind)
      for (node_id r : ring_.replicas(key))
        if (r != id() && r != src)
          others.push_back(r);
    if (others.empty()) {
      ++stats_.local_reads;
      if (gather && !store_->version_of(key))
        return serve_unfound(rid, key, false, true, now); // nobody to ask (peers dead)
      serve_read(rid, key, nullptr, now);
      return;
    }
    pending_read pr;
    pr.key = key;
    pr.candidates = std::move(others);
    pr.deadline = now + cfg_.read_timeout_ms;
    pr.gather = gather;
    reads_[rid] = std::move(pr);
    send_fetch(rid, now);
    return;
  }
  auto it = near_.find(key);
  if (it != near_.end() && near_usable(it->second, now) && !(it->second.e.ver < floor(key))) {
    ++stats_.local_reads;
    serve_read(rid, key, nullptr, now);
    return;
  }
  pending_read pr;
  pr.key = key;
  for (node_id r : ring_.replicas(key))
    if (r != id())
      pr.candidates.push_back(r);
  if (cfg_.prefer_live_replicas)
    std::stable_partition(pr.candidates.begin(), pr.candidates.end(), [&](node_id r) {
      auto m = members_.info(r);
      return m && m->state == member_state::alive;
    });
  pr.deadline = now + cfg_.read_timeout_ms;
  reads_[rid] = std::move(pr);
  send_fetch(rid, now);
}

void node::keep_near(node_id server, const entry& e, uint64_t now) {
  auto& c = near_[e.key];
  if (c.e.ver != e.ver || c.until <= now) {
    c.e = e;
    c.until = now + cfg_.near_ttl_ms;
    c.unconfirmed.clear();
    c.hold_sent = 0;
    if (cfg_.ack_after_invalidation)
      for (node_id r : ring_.replicas(e.key))
        if (r != id() && r != server)
          c.unconfirmed.push_back(r);
  }
  // (the same version again: keep `until`, which every registration outlives)
  if (!c.unconfirmed.empty() && (c.hold_sent == 0 || now >= c.hold_sent + cfg_.retry_ms)) {
    c.hold_sent = now;
    for (node_id r : c.unconfirmed)
      send(r, hold_msg{key_version{e.key, e.ver.hlc, e.ver.node}});
  }
}

void node::peer_unreachable(node_id peer, uint64_t now) {
  members_.report_unreachable(peer, now);
  if (ae_open_.erase(peer) != 0)
    ++stats_.sync_failures_ae; // the peer went away mid-round
  if (!cfg_.prefer_live_replicas)
    return;
  // Fetches waiting on it would wait out read_timeout_ms: ask the next replica.
  // A catch-up read asks it again instead (the transport reconnects; the
  // first fetch may have gone down with the old connection): it needs every
  // replica's answer, and a peer that resumed from a pause answers at once.
  for (auto& [req, pr] : reads_)
    if (pr.gather &&
        std::find(pr.candidates.begin(), pr.candidates.end(), peer) != pr.candidates.end() &&
        std::find(pr.answered.begin(), pr.answered.end(), peer) == pr.answered.end()) {
      ++stats_.fetches;
      send(peer, fetch_msg{req, pr.key});
    }
  for (auto& [req, pr] : reads_)
    if (!pr.wait_join && !pr.gather && pr.next < pr.candidates.size() &&
        pr.candidates[pr.next] == peer && pr.next + 1 < pr.candidates.size()) {
      pr.unusable = pr.asked.size(); // the asks so far are given up on (their answer still counts)
      ++pr.next;
      pr.deadline = now + cfg_.read_timeout_ms;
      send_fetch(req, now);
    }
}

void node::send_fetch(uint64_t req, uint64_t now) {
  auto& pr = reads_[req];
  if (pr.gather) { // every candidate at once
    for (node_id c : pr.candidates) {
      ++stats_.fetches;
      send(c, fetch_msg{req, pr.key});
    }
    return;
  }
  ++stats_.fetches;
  node_id to = pr.candidates[pr.next];
  pr.asked.emplace_back(to, now);
  pr.hedge_at =
      cfg_.hedge_max_ms != 0 && pr.next + 1 < pr.candidates.size() ? now + hedge_delay(to) : 0;
  send(to, fetch_msg{req, pr.key});
}

// -- hedged reads ------------------------------------------------------------------
//
// A read fetched from another node asks one replica (the live owner first).
// When that one is frozen (SIGSTOP, a stalled VM) the read used to wait
// until it turned suspect or read_timeout_ms passed. Now, when the asked
// peer has not answered within its usual time (the p99 of its last 64 fetch
// round trips, bounded by hedge_min_ms..hedge_max_ms; hedge_max_ms until it
// answered 16), the next replica is asked too, and the first answer that
// carries a value no older than this node's floor for the key is served; an
// answer without one (not found, older) waits for the others still out.

uint64_t node::hedge_delay(node_id peer) const {
  auto it = fetch_times_.find(peer);
  if (it == fetch_times_.end() || it->second.n < 16)
    return cfg_.hedge_max_ms;
  return std::clamp(it->second.p99, cfg_.hedge_min_ms, cfg_.hedge_max_ms);
}

void node::note_fetch_time(node_id peer, uint64_t ms) {
  auto& ft = fetch_times_[peer];
  ft.ms[ft.n % ft.ms.size()] = static_cast<uint32_t>(std::min<uint64_t>(ms, UINT32_MAX));
  ++ft.n;
  if (ft.n % 16 != 0)
    return;
  size_t k = std::min(ft.n, ft.ms.size());
  std::array<uint32_t, 64> sorted = ft.ms;
  std::sort(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(k));
  ft.p99 = sorted[(k - 1) * 99 / 100];
}

bool node::awaits_more(const pending_read& pr) const {
  return pr.asked.size() > pr.unusable;
}

void node::finish_gather(uint64_t rid, uint64_t now) {
  auto it = reads_.find(rid);
  if (it == reads_.end())
    return;
  std::string key = std::move(it->second.key);
  std::optional<entry> best = std::move(it->second.best);
  // Nothing found: our own copy counts only if we may vouch for it (a
  // restarted node's disk does; a slot gained or streaming in does not).
  const bool vouched = it->second.vouched || vouches_for(key);
  const bool unsettled = it->second.unsettled;
  // The read quorum (session 14): an acknowledged write is on write_acks of
  // the key's RF replicas, so RF - write_acks + 1 of them intersect every
  // write quorum. Our own copy does not count: a gathering node is the one
  // whose copy may be old (paused, restarted, a slot it just gained), and the
  // write quorums that matter are those formed without it. With RF 2 and
  // write-acks 2 one answer is enough (as before); with RF 3 and write-acks 2
  // it takes both other replicas: one old answer (a replica that was down
  // with us) is no base for a read-modify-write (gossip_node_test, and
  // tests/cluster/catch_up_test "with RF 3 and write-acks 2 ...").
  const uint32_t acks = std::max<uint32_t>(1, cfg_.write_acks);
  const size_t quorum = std::min<size_t>(cfg_.ring.rf >= acks ? cfg_.ring.rf - acks + 1 : 1,
                                         it->second.candidates.size());
  // (an answer "not found, unsure" counts: the node is reachable and holds
  // nothing; whether "not found" may be served is serve_unfound's vouching)
  const bool too_few = it->second.answered.size() < quorum;
  // Every other replica asked is dead by now (declared while we waited):
  // what we hold is all there is (a whole-cluster restart serves its disks).
  bool others_dead = !it->second.candidates.empty();
  for (node_id r : it->second.candidates)
    others_dead = others_dead && members_.is_dead(r);
  reads_.erase(it);
  if (too_few && !others_dead) {
    // Session 14: not our own copy, not the newest of too few answers (the
    // acknowledged version may be on a replica that did not answer): the
    // client retries once the replicas answer or the silent one is declared
    // dead (it leaves the ring, and its successor is asked instead).
    if (best && ring_.is_replica(id(), key))
      apply_entry(*best, now); // still repairs our copy
    client_result r;
    r.req = rid;
    r.e.key = key;
    r.failure = read_failure::unconfirmed;
    r.unconfirmed = true;
    ++stats_.reads_failed_unconfirmed;
    results_.push_back(std::move(r));
    return;
  }
  if (best && ring_.is_replica(id(), key)) {
    apply_entry(*best, now); // repair our copy; the store answers the newest
    serve_read(rid, key, &*best, now);
  } else if (best) {
    serve_read(rid, key, &*best, now);
  } else {
    serve_unfound(rid, key, vouched, unsettled, now);
  }
  if (too_few && !results_.empty() && results_.back().req == rid)
    results_.back().unconfirmed = true;
}

bool node::vouches_for(const std::string& key) const {
  if (ring_.empty())
    return true; // alone
  if (!ring_.is_replica(id(), key))
    return false;
  const uint64_t pos = ring_.position(key);
  return !gained(pos, 0) && incoming_from(pos) == no_node;
}

void node::serve_unfound(uint64_t req, const std::string& key, bool vouched, bool unsettled,
                         uint64_t now) {
  if (vouched)
    return serve_read(req, key, nullptr, now);
  client_result r;
  r.req = req;
  r.e.key = key;
  r.failure = unsettled ? read_failure::unsettled : read_failure::no_answer;
  ++(unsettled ? stats_.reads_failed_unsettled : stats_.reads_failed_no_answer);
  results_.push_back(std::move(r));
}

void node::serve_read(uint64_t req, const std::string& key, const entry* fetched, uint64_t now) {
  // Serve the newest of what we hold (store, fresh near copy, fetched), but
  // never anything older than an invalidation or replication we acknowledged.
  std::optional<entry> stored = store_->get(key);
  const entry* best = stored ? &*stored : nullptr;
  auto nit = near_.find(key);
  if (nit != near_.end() && near_usable(nit->second, now) && serves_over(nit->second.e, best))
    best = &nit->second.e;
  if (fetched && serves_over(*fetched, best))
    best = fetched;
  if (best && best->ver < floor(key))
    best = nullptr;
  client_result r;
  r.req = req;
  r.ok = true;
  if (best) {
    r.found = !best->is_tombstone() && !best->expired(now);
    r.e = stored && best == &*stored ? std::move(*stored) : *best; // the store's copy is ours
  } else {
    r.e.key = key;
  }
  results_.push_back(std::move(r));
}

std::vector<client_result> node::take_results() {
  std::vector<client_result> out;
  out.swap(results_);
  return out;
}

// -- timers ---------------------------------------------------------------------

void node::tick(uint64_t now) {
  note_time(now);
  members_.tick(now);
  on_view_change(now, true);
  stream_step(now);
  leave_step(now);
  gained_step(now);
  // Writes in flight: retry, turn dead or slow targets into hints, time out.
  for (auto it = writes_.all().begin(); it != writes_.all().end();) {
    auto& w = it->second;
    for (auto t = w.waiting.begin(); t != w.waiting.end();) {
      if (members_.is_dead(*t)) {
        hints_.add(*t, w.e);
        ++stats_.hints_stored;
        stats_.sync_failures_replication += cfg_.track_sync_failures ? 1 : 0;
        t = w.waiting.erase(t);
      } else {
        ++t;
      }
    }
    if (cfg_.sloppy_quorum && !w.reported) {
      std::vector<node_id> suspects;
      for (node_id t : w.waiting)
        if (w.holders.count(t) == 0 && members_.is_suspect(t))
          suspects.push_back(t);
      for (node_id t : suspects)
        recruit_holder(w, t, now);
      if (w.acks >= w.needed)
        finish_write(w, true);
    }
    if (now >= w.next_retry) {
      ++w.resends;
      w.next_retry = now + (cfg_.retry_backoff ? cfg_.retry_ms << std::min<uint32_t>(w.resends, 4)
                                               : cfg_.retry_ms);
      stats_.write_resends += w.waiting.size();
      for (node_id t : w.waiting) {
        auto h = w.holders.find(t);
        if (h != w.holders.end())
          send(t, hint_msg{w.rid, h->second, wire_entry::from(w.e)});
        else
          send(t, replicate_msg{w.rid, wire_entry::from(w.e)});
      }
    }
    if (now >= w.deadline) {
      if (!w.reported)
        finish_write(w, false);
      for (node_id t : w.waiting) {
        if (t == id())
          continue; // our own copy is applied; only its ack was held back
        hints_.add(t, w.e);
        ++stats_.hints_stored;
        stats_.sync_failures_replication += cfg_.track_sync_failures ? 1 : 0;
      }
      w.waiting.clear();
    }
    if (w.reported && w.waiting.empty())
      it = writes_.all().erase(it);
    else
      ++it;
  }
  // Invalidations: resend until acknowledged or the holder is dead.
  for (auto& [holder, kv] : invalidations_.due(now, cfg_.retry_ms)) {
    if (members_.is_dead(holder)) {
      invalidations_.drop_holder(holder);
      continue;
    }
    ++stats_.invalidations_sent;
    send(holder, invalidate_msg{kv});
  }
  for (auto it = deferred_acks_.begin(); it != deferred_acks_.end();) {
    auto key = (it++)->first; // release_acks may erase the entry
    release_acks(key);
  }
  // Reads waiting on a fetch: next replica, or answer from what we have.
  for (auto it = reads_.begin(); it != reads_.end();) {
    if (it->second.wait_join && (members_.joined() || now >= it->second.deadline)) {
      uint64_t req = it->first;
      std::string key = it->second.key;
      it = reads_.erase(it);
      if (members_.joined())
        dispatch_read(req, key, now);
      else
        serve_read(req, key, nullptr, now);
      continue;
    }
    auto& pr = it->second;
    if (pr.gather) { // the newest of the answers so far, at the deadline
      uint64_t req = it->first;
      bool due = now >= pr.deadline;
      ++it;
      if (due)
        finish_gather(req, now); // erases only `req`
      continue;
    }
    if (pr.hedge_at != 0 && now >= pr.hedge_at && !pr.wait_join &&
        pr.next + 1 < pr.candidates.size() && now < pr.deadline) {
      // No answer within the peer's usual time: ask the next replica too.
      ++pr.next;
      ++stats_.hedged_reads;
      pr.deadline = now + cfg_.read_timeout_ms;
      send_fetch(it->first, now);
      ++it;
      continue;
    }
    if (cfg_.prefer_live_replicas && !pr.wait_join && pr.next + 1 < pr.candidates.size() &&
        now < pr.deadline) {
      // The replica asked turned suspect meanwhile (a missed probe: frozen,
      // overloaded): ask the next one now rather than at the deadline.
      auto m = members_.info(pr.candidates[pr.next]);
      if (!m || m->state != member_state::alive)
        pr.deadline = now;
    }
    if (now < it->second.deadline) {
      ++it;
      continue;
    }
    if (it->second.next + 1 < it->second.candidates.size()) {
      it->second.unusable = it->second.asked.size(); // given up on (their answer still counts)
      ++it->second.next;
      it->second.deadline = now + cfg_.read_timeout_ms;
      send_fetch(it->first, now);
      ++it;
    } else { // the last replica asked gave no answer in time
      uint64_t req = it->first;
      std::string key = it->second.key;
      const bool vouched = it->second.vouched, unsettled = it->second.unsettled;
      it = reads_.erase(it);
      serve_unfound(req, key, vouched, unsettled, now);
    }
  }
  // Hints: deliver to targets that membership sees alive again.
  if (now >= next_hint_ms_) {
    next_hint_ms_ = now + cfg_.retry_ms;
    std::map<node_id, std::set<std::pair<std::string, version>>> sent;
    for (node_id t : hints_.targets())
      if (members_.is_alive(t)) {
        auto& before = hints_sent_[t];
        auto& now_sent = sent[t];
        for (auto& e : hints_.peek(t, cfg_.batch)) {
          // sent at the last step and still held: not acknowledged in time
          stats_.sync_failures_hint += before.count({e.key, e.ver});
          if (cfg_.track_sync_failures)
            now_sent.emplace(e.key, e.ver);
          send(t, replicate_msg{0, wire_entry::from(e)});
        }
      }
    hints_sent_ = std::move(sent);
  }
  for (auto it = ae_open_.begin(); it != ae_open_.end();) {
    if (now < it->second.second) {
      ++it;
      continue;
    }
    ++stats_.sync_failures_ae; // no answer within read_timeout_ms
    it = ae_open_.erase(it);
  }
  for (auto it = ae_retry_.begin(); it != ae_retry_.end();) {
    if (now < it->second) {
      ++it;
      continue;
    }
    start_anti_entropy(it->first);
    it = ae_retry_.erase(it);
  }
  if (now >= next_sync_ms_) {
    next_sync_ms_ = now + cfg_.members.sync_interval_ms;
    sync_step(now);
    handoff_step(now);
    tombstone_step(now);
    for (auto it = near_.begin(); it != near_.end();)
      it = it->second.until <= now ? near_.erase(it) : std::next(it);
  }
}

void node::start_anti_entropy(node_id peer) {
  if (peer == id() || !members_.is_alive(peer))
    return;
  ++stats_.ae_rounds;
  uint64_t sid = next_rid_++;
  if (cfg_.track_sync_failures)
    ae_open_.emplace(peer, std::make_pair(sid, last_seen_ms_ + cfg_.read_timeout_ms));
  send(peer, ae_tree_msg{sid, 0, {}, anti_entropy::children(*store_, shared_mask(peer), 0, {})});
}

void node::ae_answered(node_id peer, uint64_t sid) {
  auto it = ae_open_.find(peer);
  if (it != ae_open_.end() && it->second.first == sid)
    ae_open_.erase(it);
}

void node::sync_step(uint64_t now) {
  if (left_)
    return;
  // Peers that share at least one arc with us (with vnodes: usually everyone
  // in a small cluster, about 2 x vnodes x (rf - 1) peers in a large one).
  std::vector<node_id> peers;
  const size_t w = ring_.width();
  for (size_t i = 0; i < ring_.tokens().size(); ++i) {
    const node_id* reps = ring_.token_replicas(i);
    if (std::find(reps, reps + w, id()) == reps + w)
      continue;
    for (size_t j = 0; j < w; ++j)
      if (reps[j] != id())
        peers.push_back(reps[j]);
  }
  std::sort(peers.begin(), peers.end());
  peers.erase(std::unique(peers.begin(), peers.end()), peers.end());
  if (peers.empty())
    return;
  size_t n =
      cfg_.ae_peers_per_sync == 0 ? peers.size() : std::min(cfg_.ae_peers_per_sync, peers.size());
  for (size_t i = 0; i < n; ++i)
    start_anti_entropy(peers[(ae_cursor_ + i) % peers.size()]);
  ae_cursor_ += n;
}

void node::handoff_step(uint64_t now) {
  // Keys we hold but no longer replicate (the ring moved, or we are leaving) go
  // to their replicas; once every replica confirmed our version, we drop them.
  if (ring_.empty() || (ring_.members().size() == 1 && ring_.contains(id())))
    return;
  std::map<node_id, handoff_msg> batches;
  std::vector<std::string> done;
  // Keys and versions only (no tier read per key held); a value is read only
  // when it is shipped.
  store_->for_each_key_from(0, [&](uint64_t p, const entry& e) {
    if (ring_.is_replica_at(id(), p))
      return true;
    auto reps = ring_.replicas_at(p);
    auto acks = handoff_acks_.find(e.key);
    bool all = true;
    for (node_id r : reps) {
      bool ok = false;
      if (acks != handoff_acks_.end()) {
        auto a = acks->second.find(r);
        ok = a != acks->second.end() && !(a->second < e.ver);
      }
      if (!ok) {
        all = false;
        auto& b = batches[r];
        if (b.entries.size() < cfg_.batch)
          if (auto full = store_->get(e.key))
            b.entries.push_back(wire_entry::from(*full));
      }
    }
    if (all)
      done.push_back(e.key);
    return true;
  });
  for (auto& k : done) {
    if (auto v = store_->version_of(k))
      raise_floor(k, *v);
    store_->erase(k);
    handoff_acks_.erase(k);
    tombstones_.forget(k);
    ++stats_.handed_off;
  }
  for (auto& [to, msg] : batches)
    if (members_.is_alive(to)) {
      count_streamed(msg.entries);
      send(to, msg);
    }
}

void node::tombstone_step(uint64_t now) {
  std::map<node_id, tomb_check_msg> checks;
  std::vector<std::string> collect;
  store_->for_each_key_from(0, [&](uint64_t p, const entry& e) {
    if (e.is_tombstone()) {
      if (now < e.ver.ms() + cfg_.tombstone_grace_ms)
        return true;
    } else if (!cfg_.collect_expired || e.expiry_ms == 0 ||
               now < std::max(e.expiry_ms, e.ver.ms()) + cfg_.tombstone_grace_ms) {
      return true; // a live value (or expired too recently: a floor still)
    }
    if (!ring_.is_replica_at(id(), p))
      return true; // handoff_step deals with it
    std::vector<node_id> others;
    for (node_id r : ring_.replicas_at(p))
      if (r != id())
        others.push_back(r);
    auto missing = tombstones_.missing(e.key, e.ver, others);
    if (missing.empty()) {
      collect.push_back(e.key);
      return true;
    }
    for (node_id m : missing) {
      auto& c = checks[m];
      if (c.keys.size() < cfg_.batch)
        c.keys.push_back(key_version{e.key, e.ver.hlc, e.ver.node});
    }
    return true;
  });
  for (auto& k : collect) {
    if (auto e = store_->get(k))
      raise_floor(k, e->ver);
    store_->erase(k);
    tombstones_.forget(k);
    ++stats_.tombstones_collected;
  }
  for (auto& [to, msg] : checks)
    if (members_.is_alive(to))
      send(to, msg);
  if (cfg_.collect_expired) // floors of keys gone from here, past the same grace
    for (auto it = floor_.begin(); it != floor_.end();)
      it = now >= it->second.ms() + cfg_.tombstone_grace_ms ? floor_.erase(it) : std::next(it);
}

} // namespace kura::gossip
