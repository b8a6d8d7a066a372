#include "gossip/membership.hpp"

#include <algorithm>
#include <cmath>

namespace kura::gossip {

membership::membership(membership_config cfg, uint64_t rng_seed, outbox& out)
    : cfg_(std::move(cfg)), rng_(rng_seed), out_(out), queue_(cfg_.retransmit_mult) {}

// -- lifecycle ------------------------------------------------------------------

void membership::start(uint64_t now, uint64_t inc) {
  started_ = true;
  inc_ = inc;
  members_[cfg_.self] = member_info{cfg_.self, cfg_.addr, inc_, member_state::alive, now};
  recompute_view();
  queue_.push(self_update());
  bool any_seed = false;
  for (node_id s : cfg_.seeds)
    if (s != cfg_.self) {
      send_push_pull(s, true, false);
      any_seed = true;
    }
  // A node that is its own only seed founds the cluster.
  joined_ = !any_seed;
  next_join_ms_ = now + cfg_.probe_interval_ms;
  next_probe_ms_ = now + cfg_.probe_interval_ms / 2 + rng_.below(cfg_.probe_interval_ms / 2 + 1);
  next_sync_ms_ = now + cfg_.sync_interval_ms / 2 + rng_.below(cfg_.sync_interval_ms / 2 + 1);
  alone_since_ms_ = now;
}

void membership::join_via(node_id seed, uint64_t now) {
  (void)now;
  if (seed == cfg_.self || seed == no_node || !started_)
    return;
  if (std::find(cfg_.seeds.begin(), cfg_.seeds.end(), seed) == cfg_.seeds.end())
    cfg_.seeds.push_back(seed);
  send_push_pull(seed, true, false);
}

void membership::leave(uint64_t now) {
  if (leaving_)
    return;
  leaving_ = true;
  auto& me = members_[cfg_.self];
  me.state = member_state::left;
  me.since_ms = now;
  recompute_view();
  queue_.push(self_update());
  // Tell a few members directly so the news does not depend on our next probe.
  for (node_id n : random_members(cfg_.indirect_checks + 1, cfg_.self, no_node))
    send_push_pull(n, false, false);
}

size_t membership::addr_tag(std::string_view addr, std::string_view name) {
  auto at = addr.rfind('@');
  for (size_t p = addr.find('#', at == std::string_view::npos ? 0 : at); p != npos_tag;
       p = addr.find('#', p + 1)) {
    auto end = addr.find('#', p + 1);
    auto tag = addr.substr(p + 1, end == npos_tag ? npos_tag : end - p - 1);
    if (tag == name ||
        (tag.size() > name.size() && tag.substr(0, name.size()) == name && tag[name.size()] == '='))
      return p;
  }
  return npos_tag;
}

std::string_view membership::addr_base(std::string_view addr) {
  auto at = addr.rfind('@');
  return addr.substr(0, addr.find('#', at == std::string_view::npos ? 0 : at));
}

uint32_t membership::addr_tokens(std::string_view addr) {
  auto p = addr_tag(addr, "t");
  if (p == npos_tag)
    return 0;
  uint64_t v = 0;
  for (size_t i = p + 3; i < addr.size() && addr[i] >= '0' && addr[i] <= '9'; ++i)
    v = std::min<uint64_t>(v * 10 + static_cast<uint64_t>(addr[i] - '0'), 1u << 20);
  return static_cast<uint32_t>(v);
}

void membership::set_self_addr(std::string addr, uint64_t now) {
  if (addr == cfg_.addr)
    return;
  cfg_.addr = std::move(addr);
  ++inc_;
  auto& me = members_[cfg_.self];
  me.addr = cfg_.addr;
  me.inc = inc_;
  me.since_ms = now;
  recompute_view();
  queue_.push(self_update());
  for (node_id n : random_members(cfg_.indirect_checks + 1, cfg_.self, no_node))
    send_push_pull(n, false, false);
}

std::string membership::tagged_addr(std::string_view base, uint32_t tokens, bool drained) {
  std::string a(base);
  if (tokens > 0)
    a += "#t=" + std::to_string(tokens);
  if (drained)
    a += "#drained";
  return a;
}

void membership::set_drained(bool on, uint64_t now) {
  if (leaving_ || addr_drained(cfg_.addr) == on)
    return;
  set_self_addr(tagged_addr(addr_base(cfg_.addr), addr_tokens(cfg_.addr), on), now);
}

void membership::set_tokens(uint32_t tokens, uint64_t now) {
  if (leaving_ || addr_tokens(cfg_.addr) == tokens)
    return;
  set_self_addr(tagged_addr(addr_base(cfg_.addr), tokens, addr_drained(cfg_.addr)), now);
}

// -- messages -------------------------------------------------------------------

status membership::on_message(node_id from, std::string_view bytes, uint64_t now) {
  auto m = decode_message(bytes);
  if (!m)
    return m.err();
  if (!handle(from, *m, now))
    return status{errc::invalid_argument, "not a membership message"};
  return status{};
}

bool membership::handle(node_id from, const message& msg, uint64_t now) {
  if (!started_ || from == cfg_.self || from == no_node)
    return std::holds_alternative<ping_msg>(msg) || std::holds_alternative<ack_msg>(msg) ||
           std::holds_alternative<ping_req_msg>(msg) || std::holds_alternative<nack_msg>(msg) ||
           std::holds_alternative<push_pull_msg>(msg);
  if (auto* p = std::get_if<ping_msg>(&msg)) {
    for (auto& u : p->gossip)
      apply(u, now, false);
    // A leaving node still answers, so nobody suspects it while `left` spreads.
    if (p->target == cfg_.self)
      send(from, ack_msg{p->seq, cfg_.self, piggyback()});
    return true;
  }
  if (auto* a = std::get_if<ack_msg>(&msg)) {
    ++stats_.acks;
    for (auto& u : a->gossip)
      apply(u, now, false);
    if (probe_ && probe_->seq == a->seq && probe_->target == a->target) {
      if (!probe_->acked)
        health_.succeeded();
      probe_->acked = true;
    }
    auto r = relays_.find(a->seq);
    if (r != relays_.end() && r->second.target == a->target) {
      send(r->second.requester, ack_msg{r->second.their_seq, a->target, piggyback()});
      relays_.erase(r);
    }
    return true;
  }
  if (auto* pr = std::get_if<ping_req_msg>(&msg)) {
    for (auto& u : pr->gossip)
      apply(u, now, false);
    if (pr->target == cfg_.self) {
      // Someone could not reach us directly: answer the requester ourselves.
      send(from, ack_msg{pr->seq, cfg_.self, piggyback()});
      return true;
    }
    uint64_t seq = next_seq_++;
    uint64_t timeout = health_.scale(cfg_.probe_timeout_ms);
    relays_[seq] = relay{
        from, pr->seq, pr->target, now + timeout * 4 / 5, now + cfg_.probe_interval_ms * 2, false};
    send(pr->target, ping_msg{seq, pr->target, from, piggyback()});
    return true;
  }
  if (auto* nk = std::get_if<nack_msg>(&msg)) {
    if (probe_ && probe_->seq == nk->seq)
      ++probe_->nacks;
    return true;
  }
  if (auto* pp = std::get_if<push_pull_msg>(&msg)) {
    ++stats_.push_pulls;
    for (auto& u : pp->members)
      apply(u, now, true);
    if (pp->reply)
      joined_ = true;
    else
      send_push_pull(from, false, true);
    return true;
  }
  return false;
}

void membership::tick(uint64_t now) {
  if (!started_)
    return;
  // Suspicion timeouts: suspected and not refuted in time -> dead.
  for (auto [id, inc] : suspicions_.expired(now)) {
    auto it = members_.find(id);
    if (it != members_.end() && it->second.state == member_state::suspect &&
        it->second.inc == inc) {
      set_state(it->second, member_state::dead, inc, now, cfg_.self);
      queue_.push(update_of(it->second, cfg_.self));
    }
  }
  // Relayed probes: Lifeguard nack when the target stayed silent; expiry.
  for (auto it = relays_.begin(); it != relays_.end();) {
    if (!it->second.nacked && now >= it->second.nack_at) {
      it->second.nacked = true;
      send(it->second.requester, nack_msg{it->second.their_seq, it->second.target});
    }
    if (now >= it->second.expires)
      it = relays_.erase(it);
    else
      ++it;
  }
  if (leaving_)
    return;
  // Join retries until a seed answered.
  if (!joined_ && now >= next_join_ms_) {
    next_join_ms_ = now + cfg_.probe_interval_ms;
    for (node_id s : cfg_.seeds)
      if (s != cfg_.self)
        send_push_pull(s, true, false);
  }
  // Probe: indirect step when the direct ack is late, new probe each period.
  if (probe_ && !probe_->acked && !probe_->indirect_sent &&
      now >= probe_->started + health_.scale(cfg_.probe_timeout_ms)) {
    probe_->indirect_sent = true;
    auto helpers = random_members(cfg_.indirect_checks, cfg_.self, probe_->target);
    probe_->indirect_count = static_cast<uint32_t>(helpers.size());
    for (node_id h : helpers) {
      ++stats_.ping_reqs;
      send(h, ping_req_msg{probe_->seq, probe_->target, piggyback()});
    }
  }
  if (now >= next_probe_ms_) {
    finish_probe(now);
    start_probe(now);
    next_probe_ms_ =
        now + (cfg_.lifeguard ? health_.scale(cfg_.probe_interval_ms) : cfg_.probe_interval_ms);
  }
  // Periodic full sync with a random live member, and a reconnect attempt to a
  // random dead one: after a partition heals, each side believes the other dead
  // and would never probe it again; this is what brings them back together.
  if (now >= next_sync_ms_) {
    next_sync_ms_ = now + cfg_.sync_interval_ms;
    auto live = random_members(1, cfg_.self, no_node);
    for (node_id n : live)
      send_push_pull(n, false, false);
    std::vector<node_id> dead;
    for (auto& [id, m] : members_)
      if (m.state == member_state::dead)
        dead.push_back(id);
    if (!dead.empty())
      send_push_pull(dead[rng_.below(dead.size())], false, false);
    // Alone for a whole sync interval (everyone else dead): ask the seeds again.
    if (live.empty()) {
      if (now >= alone_since_ms_ + cfg_.sync_interval_ms)
        for (node_id s : cfg_.seeds)
          if (s != cfg_.self)
            send_push_pull(s, true, false);
    } else {
      alone_since_ms_ = now;
    }
    // Forget members dead for long enough.
    for (auto it = members_.begin(); it != members_.end();) {
      if (it->first != cfg_.self &&
          (it->second.state == member_state::dead || it->second.state == member_state::left) &&
          now >= it->second.since_ms + cfg_.dead_reap_ms)
        it = members_.erase(it);
      else
        ++it;
    }
  }
}

// -- probing --------------------------------------------------------------------

std::optional<node_id> membership::next_probe_target() {
  // Randomised round robin (SWIM §4.3): a shuffled pass over all members, so
  // every member is probed by each prober within a bounded number of periods.
  for (int pass = 0; pass < 2; ++pass) {
    while (probe_pos_ < probe_order_.size()) {
      node_id n = probe_order_[probe_pos_++];
      if (n != cfg_.self && is_alive(n))
        return n;
    }
    probe_order_.clear();
    for (auto& [id, m] : members_)
      if (id != cfg_.self && (m.state == member_state::alive || m.state == member_state::suspect))
        probe_order_.push_back(id);
    for (size_t i = probe_order_.size(); i > 1; --i)
      std::swap(probe_order_[i - 1], probe_order_[rng_.below(i)]);
    probe_pos_ = 0;
  }
  return std::nullopt;
}

void membership::start_probe(uint64_t now) {
  auto target = next_probe_target();
  if (!target) {
    probe_.reset();
    return;
  }
  probe p;
  p.target = *target;
  p.seq = next_seq_++;
  p.started = now;
  p.target_inc = members_[*target].inc;
  probe_ = p;
  ++stats_.pings;
  send(*target, ping_msg{p.seq, *target, no_node, piggyback()});
}

void membership::finish_probe(uint64_t now) {
  if (!probe_ || probe_->acked) {
    probe_.reset();
    return;
  }
  ++stats_.failed_probes;
  if (cfg_.lifeguard) {
    health_.failed();
    // Missing nacks mean our own links are bad, not only the target's.
    if (probe_->indirect_sent && probe_->nacks < probe_->indirect_count)
      health_.failed();
  }
  auto it = members_.find(probe_->target);
  if (it != members_.end() && it->second.state == member_state::alive)
    suspect(probe_->target, it->second.inc, cfg_.self, now);
  probe_.reset();
}

std::vector<node_id> membership::random_members(size_t k, node_id ex1, node_id ex2) {
  std::vector<node_id> cand;
  for (auto& [id, m] : members_)
    if (id != ex1 && id != ex2 && id != cfg_.self && m.state == member_state::alive)
      cand.push_back(id);
  for (size_t i = 0; i < cand.size() && i < k; ++i)
    std::swap(cand[i], cand[i + rng_.below(cand.size() - i)]);
  if (cand.size() > k)
    cand.resize(k);
  return cand;
}

// -- merging news ---------------------------------------------------------------

void membership::refute(uint64_t seen_inc, uint64_t now) {
  inc_ = std::max(inc_, seen_inc) + 1;
  auto& me = members_[cfg_.self];
  me.inc = inc_;
  me.state = member_state::alive;
  me.since_ms = now;
  ++stats_.refutations;
  if (cfg_.lifeguard)
    health_.failed();
  queue_.push(self_update());
}

void membership::set_state(member_info& m, member_state st, uint64_t inc, uint64_t now,
                           node_id by) {
  bool changed = m.state != st || m.inc != inc;
  m.inc = inc;
  if (m.state != st) {
    m.state = st;
    m.since_ms = now;
  }
  if (st != member_state::suspect)
    suspicions_.stop(m.id);
  if (changed) {
    events_.push_back(member_event{m.id, inc, st, now});
    if (st == member_state::dead)
      ++stats_.deaths;
    recompute_view();
  }
}

void membership::report_unreachable(node_id id, uint64_t now) {
  auto it = members_.find(id);
  if (!started_ || id == cfg_.self || it == members_.end() ||
      it->second.state != member_state::alive)
    return;
  suspect(id, it->second.inc, cfg_.self, now);
}

void membership::suspect(node_id id, uint64_t inc, node_id by, uint64_t now) {
  auto& m = members_[id];
  set_state(m, member_state::suspect, inc, now, by);
  ++stats_.suspicions;
  double n = static_cast<double>(std::max<size_t>(cluster_size(), 1));
  double scale = std::max(1.0, std::log10(n));
  uint64_t min_ms = static_cast<uint64_t>(cfg_.suspicion_mult * scale *
                                          static_cast<double>(cfg_.probe_interval_ms));
  uint64_t max_ms = min_ms * cfg_.suspicion_max_mult;
  uint32_t k = cfg_.suspicion_mult > 2 ? cfg_.suspicion_mult - 2 : 0;
  if (cluster_size() >= 2 && k > cluster_size() - 2)
    k = static_cast<uint32_t>(cluster_size() - 2);
  suspicions_.start(id, inc, by, now, min_ms, max_ms, k);
  queue_.push(update_of(m, by));
}

void membership::apply(const member_update& u, uint64_t now, bool from_sync) {
  auto st = static_cast<member_state>(u.state);
  if (u.id == cfg_.self) {
    if (leaving_)
      return;
    // Anything but "alive at our incarnation" that is at least as new as our
    // incarnation must be refuted, or it would win and we would be dropped.
    // So must another address at our incarnation: a previous life of this
    // node (a restart on other ports) may have reached it in memory (drain
    // and token changes raise it, and only the start is persisted), and
    // until we are newer, members keep taking that life's address.
    if (u.inc > inc_ ||
        (u.inc == inc_ && (st != member_state::alive || (!u.addr.empty() && u.addr != cfg_.addr))))
      refute(u.inc, now);
    return;
  }
  auto it = members_.find(u.id);
  if (it == members_.end()) {
    member_info m{u.id, u.addr, u.inc, st, now};
    if (st == member_state::suspect)
      m.state = member_state::alive; // start it below so the timer runs
    it = members_.emplace(u.id, m).first;
    events_.push_back(member_event{u.id, u.inc, it->second.state, now});
    recompute_view();
    if (st == member_state::suspect)
      suspect(u.id, u.inc, u.from, now);
    else
      queue_.push(update_of(it->second, u.from));
    return;
  }
  member_info& m = it->second;
  // The address of the newest incarnation wins. An older update never
  // changes it: it would undo a newer one's tags (drain, tokens), and one
  // from a previous life of a restarted member (its old ports; still queued
  // for piggybacking, or in a push-pull) would send everyone back to a dead
  // port. Session 16-19: "a new address is taken at once" let such updates
  // win, members passed the old port around, and `kura undrain` could not
  // reach the node (move_ring_test under ASan). A restarted member whose
  // incarnation is not above its previous life's refutes that life's
  // updates when it hears them (above), so its address wins then.
  if (!u.addr.empty() && u.inc >= m.inc)
    m.addr = u.addr;
  switch (st) {
  case member_state::alive:
    if (u.inc > m.inc) { // a dead or left member rejoins only with a newer incarnation
      set_state(m, member_state::alive, u.inc, now, u.from);
      queue_.push(update_of(m, u.from));
    }
    break;
  case member_state::suspect:
    if (m.state == member_state::alive && u.inc >= m.inc) {
      suspect(u.id, u.inc, u.from, now);
    } else if (m.state == member_state::suspect && u.inc > m.inc) {
      suspect(u.id, u.inc, u.from, now);
    } else if (m.state == member_state::suspect && u.inc == m.inc) {
      // Lifeguard: an independent confirmation shortens the timeout; pass
      // it on so others can count it too.
      if (suspicions_.confirm(u.id, u.from))
        queue_.push(u);
    }
    break;
  case member_state::dead:
    if (from_sync) {
      // A full-state sync may carry a stale or one-sided verdict (the other
      // side of a healed partition): treat it as a suspicion the member can
      // still refute, as memberlist does.
      if ((m.state == member_state::alive && u.inc >= m.inc) ||
          (m.state == member_state::suspect && u.inc > m.inc))
        suspect(u.id, u.inc, u.from, now);
      break;
    }
    if ((m.state == member_state::alive || m.state == member_state::suspect) && u.inc >= m.inc) {
      set_state(m, member_state::dead, u.inc, now, u.from);
      queue_.push(update_of(m, u.from));
    }
    break;
  case member_state::left:
    if (m.state != member_state::left && u.inc >= m.inc) {
      set_state(m, member_state::left, u.inc, now, u.from);
      queue_.push(update_of(m, u.from));
    }
    break;
  }
}

void membership::recompute_view() {
  std::vector<node_id> v;
  std::map<node_id, uint32_t> t;
  for (auto& [id, m] : members_)
    if ((m.state == member_state::alive || m.state == member_state::suspect) &&
        !addr_drained(m.addr)) {
      v.push_back(id);
      if (auto n = addr_tokens(m.addr); n > 0)
        t[id] = n;
    }
  if (v != ring_members_ || t != ring_tokens_) {
    ring_members_ = std::move(v);
    ring_tokens_ = std::move(t);
    ++view_version_;
  }
}

// -- helpers --------------------------------------------------------------------

std::optional<member_info> membership::info(node_id id) const {
  auto it = members_.find(id);
  if (it == members_.end())
    return std::nullopt;
  return it->second;
}

bool membership::is_alive(node_id id) const {
  auto it = members_.find(id);
  return it != members_.end() &&
         (it->second.state == member_state::alive || it->second.state == member_state::suspect);
}

bool membership::is_suspect(node_id id) const {
  auto it = members_.find(id);
  return it != members_.end() && it->second.state == member_state::suspect;
}

bool membership::is_dead(node_id id) const {
  auto it = members_.find(id);
  return it != members_.end() &&
         (it->second.state == member_state::dead || it->second.state == member_state::left);
}

member_update membership::self_update() const {
  auto it = members_.find(cfg_.self);
  uint8_t st = it == members_.end() ? 0 : static_cast<uint8_t>(it->second.state);
  return member_update{cfg_.self, cfg_.addr, inc_, st, cfg_.self};
}

member_update membership::update_of(const member_info& m, node_id from) const {
  return member_update{m.id, m.addr, m.inc, static_cast<uint8_t>(m.state),
                       from == no_node ? cfg_.self : from};
}

std::vector<member_update> membership::piggyback() {
  return queue_.take(cfg_.max_piggyback, cluster_size());
}

void membership::send(node_id to, const message& m) {
  if (to == cfg_.self || to == no_node)
    return;
  out_.push_back(outgoing{to, encode(m)});
}

void membership::send_push_pull(node_id to, bool join, bool reply) {
  push_pull_msg pp;
  pp.join = join;
  pp.reply = reply;
  for (auto& [id, m] : members_)
    pp.members.push_back(update_of(m, cfg_.self));
  send(to, pp);
}

} // namespace kura::gossip
