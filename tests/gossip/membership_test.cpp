// SWIM membership on a simulated network (no data plane). Time is simulated:
// "within N ms" below is a bound on simulated time, not a wall-clock timing.
#include "gossip/membership.hpp"
#include "gossip/sim/network.hpp"

#include <doctest/doctest.h>

#include <memory>

using namespace kura;
using namespace kura::gossip;

namespace {

constexpr uint64_t epoch = 1'700'000'000'000ull;

membership_config test_config() {
  membership_config c;
  c.seeds = {1};
  c.probe_interval_ms = 1'000;
  c.probe_timeout_ms = 300;
  c.sync_interval_ms = 5'000;
  c.suspicion_max_mult = 3;
  return c;
}

struct harness {
  uint32_t n;
  sim::network net;
  std::vector<std::unique_ptr<outbox>> outs;
  std::vector<std::unique_ptr<membership>> m;
  std::vector<uint32_t> lives;
  uint64_t t = 0;

  explicit harness(uint32_t nodes, uint64_t seed = 1)
      : n(nodes), net(nodes, seed), outs(nodes + 1), m(nodes + 1), lives(nodes + 1, 0) {
    for (node_id i = 1; i <= n; ++i)
      boot(i);
    run(15'000);
  }

  void boot(node_id i) {
    outs[i] = std::make_unique<outbox>();
    auto c = test_config();
    c.self = i;
    c.addr = "h:" + std::to_string(i);
    m[i] = std::make_unique<membership>(c, mix64(i * 1000 + ++lives[i]), *outs[i]);
    net.set_up(i, true);
    m[i]->start(epoch + t);
    drain(i);
  }

  void drain(node_id i) {
    for (auto& o : *outs[i])
      net.send(i, o.to, std::move(o.bytes), t);
    outs[i]->clear();
  }

  void run(uint64_t ms) {
    uint64_t end = t + ms;
    while (t < end) {
      uint64_t next = t + 10;
      sim::network::delivery d;
      while (net.next(next, d)) {
        t = d.at;
        if (net.up(d.to)) {
          REQUIRE(m[d.to]->on_message(d.from, d.bytes, epoch + t).ok());
          drain(d.to);
        }
      }
      t = next;
      for (node_id i = 1; i <= n; ++i)
        if (net.up(i)) {
          m[i]->tick(epoch + t);
          drain(i);
        }
    }
  }

  template <class F>
  bool eventually(F pred, uint64_t limit_ms) {
    for (uint64_t waited = 0; waited <= limit_ms; waited += 100) {
      if (pred())
        return true;
      run(100);
    }
    return false;
  }

  bool all_up_see(std::vector<node_id> want) {
    for (node_id i = 1; i <= n; ++i)
      if (net.up(i) && m[i]->ring_members() != want)
        return false;
    return true;
  }

  size_t dead_events_about(node_id x) {
    size_t k = 0;
    for (node_id i = 1; i <= n; ++i)
      if (i != x)
        for (auto& e : m[i]->events())
          if (e.id == x && e.state == member_state::dead)
            ++k;
    return k;
  }
};

} // namespace

TEST_CASE("nodes join through a seed and agree on the view") {
  harness h(6);
  CHECK(h.all_up_see({1, 2, 3, 4, 5, 6}));
  for (node_id i = 1; i <= 6; ++i) {
    CHECK(h.m[i]->joined());
    CHECK(h.m[i]->incarnation() == 0);
  }
  // A quiet cluster declares nobody dead and keeps everyone alive.
  h.run(60'000);
  for (node_id i = 1; i <= 6; ++i)
    CHECK(h.dead_events_about(i) == 0);
  CHECK(h.all_up_see({1, 2, 3, 4, 5, 6}));
}

TEST_CASE("a crashed member is suspected, then declared dead by everyone") {
  harness h(5);
  h.net.set_up(5, false);
  REQUIRE(h.eventually(
      [&] {
        for (node_id i = 1; i <= 4; ++i)
          if (!h.m[i]->is_dead(5))
            return false;
        return true;
      },
      60'000));
  CHECK(h.all_up_see({1, 2, 3, 4}));
  // It went through suspicion first somewhere.
  bool suspected = false;
  for (node_id i = 1; i <= 4; ++i)
    for (auto& e : h.m[i]->events())
      suspected |= e.id == 5 && e.state == member_state::suspect;
  CHECK(suspected);
  CHECK(h.m[1]->info(5)->state == member_state::dead);
}

TEST_CASE("a live member refutes a suspicion with a higher incarnation") {
  harness h(4);
  // Node 3 tells node 1 (falsely) that node 2 is suspect.
  ping_msg lie{
      999, 1, 0, {member_update{2, "", 0, static_cast<uint8_t>(member_state::suspect), 3}}};
  REQUIRE(h.m[1]->on_message(3, encode(lie), epoch + h.t).ok());
  h.drain(1);
  CHECK(h.m[1]->info(2)->state == member_state::suspect);
  REQUIRE(h.eventually(
      [&] {
        for (node_id i = 1; i <= 4; ++i)
          if (i != 2 && (h.m[i]->info(2)->state != member_state::alive || h.m[i]->info(2)->inc < 1))
            return false;
        return true;
      },
      30'000));
  CHECK(h.m[2]->incarnation() >= 1);
  CHECK(h.m[2]->stats().refutations >= 1);
  CHECK(h.dead_events_about(2) == 0);
}

TEST_CASE("a graceful leave is gossiped as left, not dead") {
  harness h(5);
  h.m[4]->leave(epoch + h.t);
  h.drain(4);
  REQUIRE(h.eventually(
      [&] {
        for (node_id i : {1u, 2u, 3u, 5u})
          if (!h.m[i]->info(4) || h.m[i]->info(4)->state != member_state::left)
            return false;
        return true;
      },
      30'000));
  h.net.set_up(4, false);
  h.run(30'000);
  CHECK(h.dead_events_about(4) == 0);
  for (node_id i : {1u, 2u, 3u, 5u})
    CHECK(h.m[i]->ring_members() == std::vector<node_id>{1, 2, 3, 5});
}

TEST_CASE("a restarted member rejoins with a new incarnation") {
  harness h(5);
  h.net.set_up(3, false);
  REQUIRE(h.eventually([&] { return h.m[1]->is_dead(3) && h.m[2]->is_dead(3); }, 60'000));
  uint64_t dead_inc = h.m[1]->info(3)->inc;
  h.boot(3); // a fresh process: incarnation 0, joins through the seed
  REQUIRE(h.eventually([&] { return h.all_up_see({1, 2, 3, 4, 5}); }, 60'000));
  CHECK(h.m[3]->incarnation() > dead_inc);
  for (node_id i : {1u, 2u, 4u, 5u})
    CHECK(h.m[i]->info(3)->inc == h.m[3]->incarnation());
}

TEST_CASE("both sides of a healed partition merge again") {
  harness h(5);
  h.net.set_group(1, 1);
  h.net.set_group(2, 1);
  REQUIRE(h.eventually([&] { return h.m[1]->is_dead(4) && h.m[4]->is_dead(1); }, 90'000));
  h.net.heal();
  REQUIRE(h.eventually([&] { return h.all_up_see({1, 2, 3, 4, 5}); }, 90'000));
}

TEST_CASE("lifeguard: an isolated member raises its own health score") {
  harness h(4);
  CHECK(h.m[1]->health_score() == 0);
  h.net.set_group(1, 1); // node 1 hears nobody and nobody hears it
  h.run(5'000);
  CHECK(h.m[1]->health_score() > 0);
  h.net.heal();
  REQUIRE(h.eventually(
      [&] {
        return h.all_up_see({1, 2, 3, 4}) && h.m[1]->health_score() == 0;
      },
      120'000));
}

TEST_CASE("garbage bytes are an error and change nothing") {
  harness h(3);
  auto before = h.m[1]->members().size();
  rng r(7);
  for (int i = 0; i < 2'000; ++i) {
    std::string junk(r.below(40), '\0');
    for (auto& c : junk)
      c = static_cast<char>(r.next());
    CHECK(!h.m[1]->on_message(2, junk, epoch + h.t).ok());
  }
  CHECK(h.m[1]->members().size() == before);
  CHECK(h.all_up_see({1, 2, 3}));
}

// -- a restarted member's address (move_ring_test, session 19) ------------------

namespace {

member_update about(node_id id, std::string addr, uint64_t inc, member_state st, node_id from) {
  return member_update{id, std::move(addr), inc, static_cast<uint8_t>(st), from};
}

std::string push_pull_of(std::vector<member_update> ms) {
  push_pull_msg pp;
  pp.reply = true; // no answer wanted
  pp.members = std::move(ms);
  return encode(pp);
}

/// One membership fed by hand (no network), member 1 its seed.
struct lone_member {
  outbox out;
  membership m;
  lone_member(node_id self, const std::string& addr, uint64_t seed)
      : m(config_of(self, addr), seed, out) {}
  static membership_config config_of(node_id self, const std::string& addr) {
    auto c = test_config();
    c.self = self;
    c.addr = addr;
    return c;
  }
};

std::string ping_with(std::vector<member_update> gossip) {
  ping_msg p;
  p.seq = 1;
  p.target = 1;
  p.gossip = std::move(gossip);
  return encode(p);
}

} // namespace

TEST_CASE("an older update never moves a member back to the address of its previous life") {
  // Member 3 restarted on other ports ("h:new") and refuted its previous
  // life's updates (incarnation 3); that life's updates ("h:old", drained, at
  // incarnation 2) are still on their way: piggybacked or in a push-pull.
  lone_member one(1, "h:1", 7);
  auto& m = one.m;
  m.start(epoch);
  REQUIRE(m.on_message(2,
                       push_pull_of({about(2, "h:2", 1, member_state::alive, 2),
                                     about(3, "h:new#drained", 3, member_state::alive, 2)}),
                       epoch + 10)
              .ok());
  REQUIRE(m.info(3));
  REQUIRE(m.info(3)->addr == "h:new#drained");
  for (auto st : {member_state::alive, member_state::suspect, member_state::dead}) {
    CAPTURE(static_cast<int>(st));
    REQUIRE(m.on_message(2, ping_with({about(3, "h:old#drained", 2, st, 2)}), epoch + 20).ok());
    CHECK(m.info(3)->addr == "h:new#drained");
    REQUIRE(m.on_message(2, push_pull_of({about(3, "h:old#drained", 2, st, 2)}), epoch + 30).ok());
    CHECK(m.info(3)->addr == "h:new#drained");
  }
  CHECK(m.info(3)->inc == 3);
  CHECK(m.info(3)->state == member_state::alive);
  // A newer incarnation's address is taken (a later drain, undrain or restart).
  REQUIRE(
      m.on_message(2, ping_with({about(3, "h:new", 4, member_state::alive, 3)}), epoch + 40).ok());
  CHECK(m.info(3)->addr == "h:new");
}

TEST_CASE("a restarted member refutes its previous life's address at its own incarnation") {
  // The previous life reached incarnation 2 in memory (a drain); the restart
  // starts at the persisted count + 1 = 2 as well, on other ports.
  lone_member one(3, "h:new#drained", 9);
  auto& m = one.m;
  m.start(epoch, 2);
  // The seed still holds the old life alive at incarnation 2.
  REQUIRE(m.on_message(1,
                       push_pull_of({about(1, "h:1", 1, member_state::alive, 1),
                                     about(3, "h:old#drained", 2, member_state::alive, 1)}),
                       epoch + 10)
              .ok());
  CHECK(m.incarnation() > 2);
  // Its own address at the same incarnation is no reason to refute.
  auto inc = m.incarnation();
  REQUIRE(m.on_message(1, ping_with({about(3, "h:new#drained", inc, member_state::alive, 1)}),
                       epoch + 20)
              .ok());
  CHECK(m.incarnation() == inc);
}

TEST_CASE("a member restarted on other ports at an old incarnation: every member ends at its "
          "new address and stays there") {
  // A drain raised member 3's incarnation in memory; it crashes and comes back
  // on other ports with the incarnation its disk remembers (lower), while
  // the others still gossip its previous life.
  harness h(5);
  h.m[3]->set_drained(true, epoch + h.t);
  h.run(10'000);
  for (node_id i : {1u, 2u, 4u, 5u})
    REQUIRE(h.m[i]->info(3)->addr == "h:3#drained");
  uint64_t mem_inc = h.m[3]->incarnation();
  // The persisted count + 1: below the old life's incarnation, or equal to it
  // (one drain after a first start: 1 on disk, 2 in memory; the restart: 2).
  uint64_t restart_inc = mem_inc - 1;
  SUBCASE("equal") {
    restart_inc = mem_inc;
  }
  SUBCASE("below") {
    restart_inc = mem_inc - 1;
  }
  h.net.set_up(3, false);
  h.run(1'500); // suspected, not yet dead everywhere: suspect/dead updates in flight
  auto c = test_config();
  c.self = 3;
  c.addr = "h:3b#drained";
  h.outs[3] = std::make_unique<outbox>();
  h.m[3] = std::make_unique<membership>(c, mix64(3 * 1000 + 99), *h.outs[3]);
  h.net.set_up(3, true);
  h.m[3]->start(epoch + h.t, restart_inc);
  h.drain(3);
  auto all_new = [&] {
    for (node_id i : {1u, 2u, 4u, 5u})
      if (h.m[i]->info(3)->addr != "h:3b#drained" || !h.m[i]->is_alive(3))
        return false;
    return true;
  };
  REQUIRE(h.eventually(all_new, 60'000));
  for (int k = 0; k < 300; ++k) { // 30 s of gossip, push-pulls included: it stays
    h.run(100);
    REQUIRE(all_new());
  }
}
