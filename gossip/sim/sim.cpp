#include "gossip/sim/sim.hpp"

#include "gossip/sim/network.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <set>

namespace kura::gossip::sim {

const char* to_string(fault_mode m) {
  switch (m) {
  case fault_mode::none:
    return "none";
  case fault_mode::loss:
    return "loss";
  case fault_mode::partition:
    return "partition";
  case fault_mode::crash:
    return "crash";
  case fault_mode::skew:
    return "skew";
  case fault_mode::all:
    return "all";
  }
  return "?";
}

bool parse_fault_mode(const std::string& s, fault_mode& out) {
  for (auto m : {fault_mode::none, fault_mode::loss, fault_mode::partition, fault_mode::crash,
                 fault_mode::skew, fault_mode::all})
    if (s == to_string(m)) {
      out = m;
      return true;
    }
  return false;
}

node_config sim_node_config(node_id self, uint32_t nodes) {
  node_config c;
  c.members.self = self;
  c.members.addr = "sim:" + std::to_string(self);
  c.members.seeds = {1, 2};
  c.members.probe_interval_ms = 1'000;
  c.members.probe_timeout_ms = 400;
  c.members.indirect_checks = 3;
  c.members.suspicion_mult = 4;
  c.members.suspicion_max_mult = 3;
  c.members.retransmit_mult = 4;
  c.members.sync_interval_ms = 5'000;
  // Large simulated clusters: fewer tokens, bounded anti-entropy fan-out and
  // settled ring rebuilds keep 500 nodes affordable on one core.
  c.ring.vnodes = nodes <= 16 ? 64 : 16;
  c.ae_peers_per_sync = nodes <= 16 ? 0 : 4;
  c.ring_settle_ms = nodes <= 16 ? 0 : 1'000;
  c.ring.rf = 2;
  c.write_acks = 2; // so that an acknowledged write is on two replicas
  c.retry_ms = 500;
  c.write_timeout_ms = 3'000;
  c.read_timeout_ms = 500;
  c.near_ttl_ms = 20'000;
  c.tombstone_grace_ms = 40'000;
  return c;
}

namespace {

constexpr uint64_t epoch_ms = 1'700'000'000'000ull;
constexpr uint64_t tick_ms = 50;

// The checkers' bounds, derived from the protocol settings (stated here so that
// a failure message can say which bound was missed).
struct bounds {
  uint64_t suspicion_max;
  uint64_t detect;   ///< crash -> declared dead by every live node
  uint64_t converge; ///< last heal -> membership and ring agree
  uint64_t repair;   ///< after convergence -> replicas agree
};

bounds make_bounds(const node_config& c, uint32_t n) {
  bounds b;
  double scale = std::max(1.0, std::log10(static_cast<double>(n)));
  uint64_t probe = c.members.probe_interval_ms;
  b.suspicion_max =
      static_cast<uint64_t>(c.members.suspicion_mult * scale * static_cast<double>(probe)) *
      c.members.suspicion_max_mult;
  // Every prober reaches the crashed node within n periods (round robin), then
  // the suspicion runs out, then `dead` spreads in O(log n) periods.
  b.detect = (n + 2) * probe + b.suspicion_max + 5 * probe + c.members.sync_interval_ms;
  // Reconnect push-pulls (one per sync interval per node), refutations, and
  // suspicions of the truly dead running out.
  b.converge = 3 * c.members.sync_interval_ms + b.suspicion_max + 10 * probe;
  b.repair = 4 * c.members.sync_interval_ms;
  return b;
}

} // namespace

std::string describe_bounds(uint32_t nodes) {
  auto b = make_bounds(sim_node_config(1, nodes), nodes);
  char buf[200];
  std::snprintf(buf, sizeof buf,
                "bounds at %u nodes: agree %.0f s after last heal, crash declared dead in %.0f s, "
                "replicas repaired %.0f s later",
                nodes, b.converge / 1000.0, b.detect / 1000.0, b.repair / 1000.0);
  return buf;
}

namespace {

struct world {
  options opt;
  rng r;
  network net;
  bounds bnd;
  report rep;
  uint64_t t = 0; // simulated ms since the start
  std::vector<std::unique_ptr<node>> nodes;
  std::vector<int64_t> offset;
  std::vector<int64_t> drift_ppm;
  std::vector<uint32_t> restarts;
  std::vector<std::string> keys;
  // checker state
  std::map<std::string, entry> acked; // newest acknowledged write per key
  std::map<std::pair<node_id, std::string>, version> floors;
  std::map<std::string, version> deletes; // newest issued delete per key
  std::set<node_id> gone;                 // left for good
  uint64_t value_seq = 0;

  world(const options& o)
      : opt(o), r(mix64(o.seed) ^ 0x73696dull), net(o.nodes, mix64(o.seed ^ 0x6e6574ull)),
        bnd(make_bounds(sim_node_config(1, o.nodes), o.nodes)) {
    nodes.resize(o.nodes + 1);
    offset.assign(o.nodes + 1, 0);
    drift_ppm.assign(o.nodes + 1, 0);
    restarts.assign(o.nodes + 1, 0);
    for (uint32_t i = 0; i < 40; ++i)
      keys.push_back("k" + std::to_string(i));
  }

  void trace(const char* what, node_id n = 0) {
    if (opt.trace)
      std::fprintf(stderr, "  t=%6.1fs %s %u\n", static_cast<double>(t) / 1000.0, what, n);
  }

  uint64_t local_now(node_id n) const {
    int64_t tt = static_cast<int64_t>(t);
    return static_cast<uint64_t>(static_cast<int64_t>(epoch_ms) + offset[n] + tt +
                                 tt * drift_ppm[n] / 1'000'000);
  }

  bool live(node_id n) const { return nodes[n] != nullptr; }

  std::vector<node_id> live_nodes() const {
    std::vector<node_id> out;
    for (node_id n = 1; n <= opt.nodes; ++n)
      if (live(n))
        out.push_back(n);
    return out;
  }

  void fail(std::string msg) {
    rep.ok = false;
    if (rep.failures.size() < 8)
      rep.failures.push_back("t=" + std::to_string(t) + "ms: " + msg);
  }

  // -- plumbing ---------------------------------------------------------------

  void observe(node_id from, const outgoing& o) {
    // The network sees the wire: a replicate_ack or invalidate_ack is a promise
    // by `from` never to serve an older version of that key again.
    if (o.bytes.size() < 4)
      return;
    auto type = static_cast<uint8_t>(o.bytes[2]);
    if (type != static_cast<uint8_t>(msg_type::replicate_ack) &&
        type != static_cast<uint8_t>(msg_type::invalidate_ack))
      return;
    auto m = decode_message(o.bytes);
    if (!m)
      return;
    key_version kv;
    if (auto* a = std::get_if<replicate_ack_msg>(&*m))
      kv = a->held;
    else if (auto* ia = std::get_if<invalidate_ack_msg>(&*m)) {
      kv = ia->kv;
      ++rep.invalidation_acks;
    }
    auto& f = floors[{from, kv.key}];
    if (f < kv.ver())
      f = kv.ver();
  }

  void drain(node_id n) {
    if (!live(n))
      return;
    auto& out = nodes[n]->out();
    for (auto& o : out) {
      observe(n, o);
      net.send(n, o.to, std::move(o.bytes), t);
    }
    out.clear();
    for (auto& res : nodes[n]->take_results()) {
      if (res.write) {
        if (res.e.is_tombstone()) {
          auto& d = deletes[res.e.key];
          if (d < res.e.ver)
            d = res.e.ver;
        }
        if (res.ok) {
          ++rep.acked_writes;
          auto it = acked.find(res.e.key);
          if (it == acked.end() || it->second.ver < res.e.ver)
            acked[res.e.key] = res.e;
        } else {
          ++rep.failed_writes;
        }
        continue;
      }
      ++rep.reads;
      if (res.e.ver.is_zero())
        continue;
      auto f = floors.find({n, res.e.key});
      if (f != floors.end() && res.e.ver < f->second)
        fail("node " + std::to_string(n) + " served " + res.e.key + " at hlc " +
             std::to_string(res.e.ver.hlc) + " after acknowledging hlc " +
             std::to_string(f->second.hlc));
    }
  }

  void start_node(node_id n, const replica_store* disk) {
    auto cfg = sim_node_config(n, opt.nodes);
    std::unique_ptr<replica_store> st = opt.make_store
                                            ? opt.make_store(n, restarts[n])
                                            : std::make_unique<memory_store>(cfg.ring.seed);
    if (disk)
      disk->for_each([&](const entry& e) { st->apply(e); });
    nodes[n] = std::make_unique<node>(cfg, mix64(opt.seed ^ (uint64_t{n} << 20) ^ restarts[n]),
                                      std::move(st));
    net.set_up(n, true);
    nodes[n]->start(local_now(n));
    drain(n);
  }

  std::map<node_id, memory_store> disks;

  void crash(node_id n, bool keep_disk) {
    if (!live(n))
      return;
    trace(keep_disk ? "crash (disk kept)" : "crash (disk lost)", n);
    if (keep_disk)
      disks[n] = memory_store::copy_of(nodes[n]->store(), nodes[n]->current_ring().config().seed);
    else
      disks.erase(n);
    nodes[n].reset();
    net.set_up(n, false);
    // A restarted process has an empty near cache and acks nothing it did not
    // see: its promises start over.
    for (auto it = floors.begin(); it != floors.end();)
      it = it->first.first == n ? floors.erase(it) : std::next(it);
  }

  void restart(node_id n) {
    if (live(n))
      return;
    trace("restart", n);
    ++restarts[n];
    auto it = disks.find(n);
    start_node(n, it == disks.end() ? nullptr : &it->second);
  }

  void step_network(uint64_t until) {
    network::delivery d;
    while (net.next(until, d)) {
      uint64_t saved = t;
      t = d.at;
      if (live(d.to)) {
        auto st = nodes[d.to]->on_message(d.from, d.bytes, local_now(d.to));
        if (!st.ok())
          fail("node " + std::to_string(d.to) + " rejected a message: " + st.message());
        drain(d.to);
      }
      t = std::max(saved, t);
    }
  }

  void tick_all() {
    for (node_id n = 1; n <= opt.nodes; ++n)
      if (live(n)) {
        nodes[n]->tick(local_now(n));
        drain(n);
      }
  }

  void client_op() {
    auto ln = live_nodes();
    if (ln.empty())
      return;
    node_id n = ln[r.below(ln.size())];
    const std::string& key = keys[r.below(keys.size())];
    double p = r.uniform();
    if (p < 0.55)
      nodes[n]->write(key, "v" + std::to_string(++value_seq), local_now(n));
    else if (p < 0.85)
      nodes[n]->read(key, local_now(n));
    else {
      nodes[n]->write(key, "", local_now(n), true);
      // Remember every delete when it is issued: if its coordinator crashes
      // before answering, the tombstone may still reach a replica and win.
      version v{nodes[n]->clock().last(), n};
      auto& d = deletes[key];
      if (d < v)
        d = v;
    }
    drain(n);
  }

  // -- checks -----------------------------------------------------------------

  /// All live nodes agree on the ring members, and those are exactly the live
  /// nodes (minus none: everyone live is expected to be in).
  bool agreed(std::string* why) const {
    auto ln = live_nodes();
    for (node_id n : ln) {
      const auto& rm = nodes[n]->members().ring_members();
      if (rm != ln) {
        if (why) {
          *why = "node " + std::to_string(n) + " sees {";
          for (auto m : rm)
            *why += std::to_string(m) + " ";
          *why += "} but live are {";
          for (auto m : ln)
            *why += std::to_string(m) + " ";
          *why += "}";
        }
        return false;
      }
      if (nodes[n]->current_ring().fingerprint() != nodes[ln[0]]->current_ring().fingerprint()) {
        if (why)
          *why = "ring fingerprints differ";
        return false;
      }
    }
    return true;
  }

  bool all_declare_dead(node_id x) const {
    for (node_id n : live_nodes())
      if (!nodes[n]->members().is_dead(x))
        return false;
    return true;
  }

  void check_replicas() {
    auto ln = live_nodes();
    if (ln.empty())
      return;
    const ring& rg = nodes[ln[0]]->current_ring();
    std::set<std::string> all_keys;
    for (node_id n : ln)
      nodes[n]->store().for_each([&](const entry& e) { all_keys.insert(e.key); });
    for (auto& [k, e] : acked)
      all_keys.insert(k);
    for (auto& k : all_keys) {
      auto reps = rg.replicas(k);
      std::optional<version> first;
      bool first_set = false;
      for (node_id rnode : reps) {
        auto e = nodes[rnode]->store().get(k);
        std::optional<version> eff;
        if (e && !e->is_tombstone())
          eff = e->ver;
        // A collected tombstone and a held one read the same (absent).
        if (!first_set) {
          first = eff;
          first_set = true;
        } else if (first != eff) {
          fail("replicas of " + k + " disagree after repair (node " + std::to_string(rnode) + ")");
        }
        auto a = acked.find(k);
        if (a != acked.end()) {
          // Absent is fine when the newest acknowledged write is a delete, or a
          // newer delete was issued (acknowledged or not) and then collected.
          auto d = deletes.find(k);
          bool deleted_later = d != deletes.end() && a->second.ver < d->second;
          bool lost = e ? e->ver < a->second.ver : !(a->second.is_tombstone() || deleted_later);
          if (lost)
            fail("acknowledged " + std::string(a->second.is_tombstone() ? "delete" : "write") +
                 " of " + k + " (" + describe(a->second.ver) + ") missing on replica " +
                 std::to_string(rnode) + ", which holds " + holding(rnode, k) +
                 "; holders: " + holders(k));
        }
      }
    }
  }

  static std::string describe(const version& v) {
    return "hlc " + std::to_string(v.ms()) + "." + std::to_string(v.counter()) + "@" +
           std::to_string(v.node);
  }

  std::string holding(node_id n, const std::string& k) const {
    auto e = nodes[n]->store().get(k);
    if (!e)
      return "nothing";
    return std::string(e->is_tombstone() ? "tombstone " : "value ") + describe(e->ver);
  }

  std::string holders(const std::string& k) const {
    std::string out;
    for (node_id n : live_nodes())
      out += std::to_string(n) + ":" + holding(n, k) + " ";
    return out;
  }

  void check_no_false_dead() {
    for (node_id n : live_nodes())
      for (auto& ev : nodes[n]->members().events())
        if (ev.state == member_state::dead)
          fail("node " + std::to_string(n) + " declared node " + std::to_string(ev.id) +
               " dead without any fault");
  }

  void inject_divergence() {
    auto ln = live_nodes();
    if (ln.empty())
      return;
    node_id x = ln[r.below(ln.size())];
    trace("divergence injected at", x);
    auto& st = nodes[x]->store_for_test();
    // Only drop keys another live replica also holds (same or newer version):
    // divergence, not a second loss on top of a crash that lost a disk.
    std::vector<std::string> held;
    st.for_each([&](const entry& e) {
      for (node_id o : nodes[x]->current_ring().replicas(e.key))
        if (o != x && live(o)) {
          auto other = nodes[o]->store().get(e.key);
          if (other && !(other->ver < e.ver)) {
            held.push_back(e.key);
            return;
          }
        }
    });
    std::sort(held.begin(), held.end());
    for (int i = 0; i < 3 && !held.empty(); ++i) {
      size_t j = r.below(held.size());
      st.erase(held[j]);
      held.erase(held.begin() + static_cast<std::ptrdiff_t>(j));
    }
    for (int i = 0; i < 2; ++i) {
      const std::string& k = keys[r.below(keys.size())];
      if (!nodes[x]->current_ring().is_replica(x, k))
        continue;
      entry e{k, "diverged", 0, nodes[x]->clock().now(local_now(x)), 0};
      st.apply(e);
    }
  }
};

} // namespace

report run(const options& opt) {
  world w(opt);
  const uint32_t n = opt.nodes;
  rng& r = w.r;
  fault_mode fm = opt.faults;
  bool skew = fm == fault_mode::skew || fm == fault_mode::all;
  if (skew)
    for (node_id i = 1; i <= n; ++i) {
      w.offset[i] = static_cast<int64_t>(r.below(6001)) - 3000;
      w.drift_ppm[i] = static_cast<int64_t>(r.below(20'001)) - 10'000; // +-1%
    }

  // -- the schedule ------------------------------------------------------------
  const uint64_t f0 = 10'000 + 100 * n;
  uint64_t last_heal = f0;
  struct action {
    uint64_t at;
    int kind; // 0 loss on, 1 loss off, 2 partition, 3 heal, 4 crash, 5 restart, 6 leave, 7 stop
    node_id who;
    bool flag;
  };
  std::vector<action> plan;
  std::vector<node_id> minority;
  std::optional<std::pair<node_id, uint64_t>> long_crash; // who, when
  uint64_t fault_start = f0;
  bool loss = fm == fault_mode::loss || fm == fault_mode::all;
  bool part = fm == fault_mode::partition || fm == fault_mode::all;
  bool crash = fm == fault_mode::crash || fm == fault_mode::all;
  if (loss) {
    double rate = fm == fault_mode::all ? 0.05 : 0.05 + 0.15 * r.uniform();
    w.net.cfg.loss = 0;
    plan.push_back({f0, 0, 0, false});
    plan.push_back({f0 + 30'000, 1, 0, false});
    last_heal = std::max(last_heal, f0 + 30'000);
    // remember the rate in `who` (per mille)
    plan[plan.size() - 2].who = static_cast<node_id>(rate * 1000);
  }
  if (part) {
    uint64_t at = f0 + r.below(5'000);
    int episodes = 1 + static_cast<int>(r.below(2));
    for (int e = 0; e < episodes; ++e) {
      uint64_t dur = 5'000 + r.below(15'001);
      node_id size = static_cast<node_id>(1 + r.below(std::max<uint32_t>(1, n / 2)));
      plan.push_back({at, 2, size, false});
      plan.push_back({at + dur, 3, 0, false});
      at += dur + 2'000 + r.below(3'000);
      last_heal = std::max(last_heal, at);
    }
    fault_start = at;
  }
  if (crash) {
    uint64_t at = std::max(fault_start, f0) + r.below(10'000);
    node_id who = static_cast<node_id>(1 + r.below(n));
    bool is_long = r.chance(0.5) && n >= 2;
    uint64_t down = is_long ? w.bnd.detect + 1'000 + r.below(4'000) : 2'000 + r.below(6'000);
    bool keep = r.chance(0.5);
    plan.push_back({at, 4, who, keep});
    plan.push_back({at + down, 5, who, false});
    if (is_long)
      long_crash = std::make_pair(who, at);
    last_heal = std::max(last_heal, at + down);
  }
  if (fm == fault_mode::none && n >= 3) {
    // A graceful leave; half the time the node comes back (new incarnation).
    node_id who = static_cast<node_id>(3 + r.below(n - 2));
    uint64_t at = f0 + 5'000;
    plan.push_back({at, 6, who, false});
    plan.push_back({at + 6'000, 7, who, false});
    if (r.chance(0.5)) {
      plan.push_back({at + 15'000, 5, who, false});
      last_heal = at + 15'000;
    } else {
      last_heal = at + 6'000;
    }
  }
  std::sort(plan.begin(), plan.end(), [](const action& a, const action& b) { return a.at < b.at; });
  last_heal = std::max(last_heal, f0 + 30'000);
  const uint64_t workload_end = last_heal;
  const uint64_t converge_check = last_heal + w.bnd.converge;
  const uint64_t end = converge_check + w.bnd.repair;
  bool diverged = false, converge_checked = false, detect_checked = false;

  // -- the run -------------------------------------------------------------------
  size_t next_action = 0;
  uint32_t started = 0;
  uint64_t next_op = 8'000 + r.below(100);
  for (uint64_t now = 0; now <= end; now += tick_ms) {
    w.step_network(now);
    w.t = now;
    // Nodes come up one after another, 100 ms apart, joining through the seeds.
    for (; started < n && now >= started * 100; ++started)
      w.start_node(started + 1, nullptr);
    while (next_action < plan.size() && plan[next_action].at <= now) {
      const action& a = plan[next_action++];
      switch (a.kind) {
      case 0:
        w.net.cfg.loss = a.who / 1000.0;
        w.trace("loss on (per mille)", a.who);
        break;
      case 1:
        w.net.cfg.loss = 0;
        w.trace("loss off");
        break;
      case 2: {
        std::vector<node_id> all(n);
        for (node_id i = 0; i < n; ++i)
          all[i] = i + 1;
        for (size_t i = all.size(); i > 1; --i)
          std::swap(all[i - 1], all[r.below(i)]);
        for (node_id i = 0; i < a.who; ++i)
          w.net.set_group(all[i], 1);
        w.trace("partition, minority size", a.who);
        break;
      }
      case 3:
        w.net.heal();
        w.trace("heal");
        break;
      case 4:
        // The nastiest moment to crash: right after the victim coordinated
        // a write of a key it owns, with the replication still in flight.
        if (w.live(a.who)) {
          // A key nobody else writes, owned by the victim (in its view).
          std::string k;
          for (int i = 0; i < 1000; ++i) {
            k = "last-words-" + std::to_string(i);
            if (w.nodes[a.who]->current_ring().owner(k) == a.who)
              break;
          }
          w.nodes[a.who]->write(k, "last-words", w.local_now(a.who));
          w.drain(a.who);
        }
        w.crash(a.who, a.flag);
        break;
      case 5:
        if (w.gone.count(a.who)) {
          w.gone.erase(a.who);
          w.trace("rejoin", a.who);
          ++w.restarts[a.who];
          auto it = w.disks.find(a.who);
          w.start_node(a.who, it == w.disks.end() ? nullptr : &it->second);
        } else {
          w.restart(a.who);
        }
        break;
      case 6:
        if (w.live(a.who)) {
          w.trace("leave", a.who);
          w.nodes[a.who]->leave(w.local_now(a.who));
          w.drain(a.who);
        }
        break;
      case 7:
        if (w.live(a.who)) {
          w.trace("stop (after leave)", a.who);
          w.disks[a.who] = memory_store::copy_of(w.nodes[a.who]->store(),
                                                 w.nodes[a.who]->current_ring().config().seed);
          w.crash(a.who, true);
          w.gone.insert(a.who);
        }
        break;
      }
    }
    while (next_op <= now && now < workload_end) {
      w.client_op();
      next_op += 40 + r.below(120);
    }
    if (next_op <= now)
      next_op = now + tick_ms;
    if (!diverged && now >= last_heal + 1'000) {
      diverged = true;
      w.inject_divergence();
    }
    w.tick_all();
    // -- checkers on the way --
    if (now >= last_heal && w.rep.converge_ms < 0 && now % 250 == 0 && w.agreed(nullptr))
      w.rep.converge_ms = static_cast<int64_t>(now - last_heal);
    if (long_crash && w.rep.detect_ms < 0 && now > long_crash->second &&
        !w.live(long_crash->first) && w.all_declare_dead(long_crash->first))
      w.rep.detect_ms = static_cast<int64_t>(now - long_crash->second);
    if (long_crash && !detect_checked && now >= long_crash->second + w.bnd.detect) {
      detect_checked = true;
      if (!w.live(long_crash->first) && !w.all_declare_dead(long_crash->first))
        w.fail("crashed node " + std::to_string(long_crash->first) + " not declared dead by all" +
               " live nodes within " + std::to_string(w.bnd.detect) + " ms");
    }
    if (!converge_checked && now >= converge_check) {
      converge_checked = true;
      std::string why;
      if (!w.agreed(&why))
        w.fail("membership/ring not agreed " + std::to_string(w.bnd.converge) +
               " ms after the last heal: " + why);
    }
  }
  // -- final checks ----------------------------------------------------------
  std::string why;
  if (!w.agreed(&why))
    w.fail("membership/ring not agreed at the end: " + why);
  else
    w.check_replicas();
  if (fm == fault_mode::none || fm == fault_mode::skew)
    w.check_no_false_dead();
  for (node_id i = 1; i <= n; ++i)
    if (w.live(i))
      w.rep.repaired += w.nodes[i]->stats().ae_repaired;
  w.rep.messages = w.net.sent;
  w.rep.dropped = w.net.dropped;
  w.rep.sim_ms = end;
  return w.rep;
}

} // namespace kura::gossip::sim
