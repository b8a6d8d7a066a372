#include "node/cluster_tracking.hpp"

#include "node/cluster_routing.hpp"
#include "tiers/clock.hpp"

#include <algorithm>
#include <cstdlib>

namespace kura::node {

namespace {

constexpr uint64_t announce_every_ms = 2'000; ///< BCAST prefixes refreshed
constexpr uint64_t prefixes_kept_ms = 6'000;  ///< by the receiver, without a refresh
constexpr uint64_t tick_ms = 250;
constexpr uint64_t reregister_ms = 10'000;  ///< a registered key read again is registered again
constexpr size_t max_peer_keys = 1'000'000; ///< as tracking-table-max-keys

uint64_t now_ms() {
  return real_clock::instance().now_ms();
}

bool starts_with(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.compare(0, p.size(), p) == 0;
}

/// The commands that run a script (their KEYS are what it reads).
bool is_script(std::string_view name) {
  return name == "eval" || name == "evalsha" || name == "eval_ro" || name == "evalsha_ro" ||
         name == "fcall" || name == "fcall_ro";
}

std::string lower(std::string_view s) {
  std::string o(s);
  for (auto& ch : o)
    ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return o;
}

/// The integers of a RESP array of integers ("*2\r\n:5\r\n:0\r\n").
std::vector<uint64_t> parse_ints(const std::string& r) {
  std::vector<uint64_t> out;
  size_t p = r.find("\r\n");
  while (p != std::string::npos && p + 2 < r.size() && r[p + 2] == ':') {
    out.push_back(std::strtoull(r.c_str() + p + 3, nullptr, 10));
    p = r.find("\r\n", p + 2);
  }
  return out;
}

} // namespace

/// A tracked read that registered at remote replicas first.
struct cluster_tracking::read_job {
  uint64_t client = 0;
  std::vector<std::string> keys;
  std::map<std::string, uint64_t> expiry; ///< what the replicas answered
  size_t pending = 0;                     ///< registrations not answered yet
  uint64_t epoch = 0;                     ///< member_epoch_ when the read started
  bool stale = false; ///< a member came back during the read: invalidate after the reply
};

std::shared_ptr<cluster_tracking> cluster_tracking::attach(actors::cluster_core& c,
                                                           client_hub& hub) {
  std::shared_ptr<cluster_tracking> t(new cluster_tracking(c, hub));
  std::weak_ptr<cluster_tracking> w = t;
  c.on_store_change = [w](const entry& e) {
    if (auto t = w.lock())
      t->on_store(e);
  };
  c.tracking_exec = [w](const std::vector<std::string>& a,
                        const std::function<void(std::string)>& reply) {
    auto t = w.lock();
    return t && t->exec(a, reply);
  };
  t->tick(); // starts the timer
  return t;
}

cluster_tracking::~cluster_tracking() {
  c_.on_store_change = nullptr;
  c_.tracking_exec = nullptr;
}

bool cluster_tracking::replicates(std::string_view key) const {
  auto reps = c_.replica_ids(key);
  return std::find(reps.begin(), reps.end(), c_.self_id()) != reps.end();
}

bool cluster_tracking::routed(const command_registry& reg, const std::vector<std::string_view>& a,
                              session& s, done_fn& done) {
  if (!hub_.active())
    return false;
  int id = reg.resolve(a);
  if (id < 0)
    return false;
  const auto& spec = reg.spec(id);
  // A script's keys (EVAL's KEYS) count as read: it runs at the keys' owner,
  // where its reads cannot be seen; a key it only writes is invalidated once
  // more, which is safe.
  bool script = is_script(spec.name);
  bool tracked_read =
      s.tracking && ((spec.flags & cmd_flag::readonly) || script) && client_hub::wants(s);
  if (s.tracking)
    s.caching_once = false; // CLIENT CACHING covers one command
  std::vector<std::string_view> keys;
  if (reg.keys_of(a, keys) != keys_status::ok || keys.empty())
    return false;
  if (spec.flags & cmd_flag::write) { // NOLOOP: the change that comes back is this client's
    mark_self_writes(s.id, keys, now_ms());
    return false;
  }
  if (!tracked_read)
    return false;
  auto args = std::make_shared<std::vector<std::string>>(a.begin(), a.end());
  std::weak_ptr<cluster_tracking> w = weak_from_this();
  track_reads(
      s, keys,
      [w, args](done_fn d) {
        auto t = w.lock();
        if (!t)
          return; // the broker is gone, and the connection with it
        std::vector<std::string_view> views(args->begin(), args->end());
        run_clustered(t->c_, views, std::move(d));
      },
      std::move(done));
  return true;
}

bool cluster_tracking::transaction(const command_registry& reg,
                                   const std::vector<std::string_view>& a, session& s,
                                   done_fn& done) {
  if (!hub_.active() || !s.tracking || !s.tx.active || lower(a[0]) != "exec")
    return false;
  bool wants = client_hub::wants(s);
  s.caching_once = false;
  auto now = now_ms();
  std::vector<std::string> reads; // owns the keys: the queue moves below
  for (auto& q : s.tx.queued) {
    command_args qa(q.begin(), q.end());
    int id = reg.resolve(qa);
    std::vector<std::string_view> keys;
    if (id < 0 || reg.keys_of(qa, keys) != keys_status::ok)
      continue;
    const auto& spec = reg.spec(id);
    if (spec.flags & cmd_flag::write)
      mark_self_writes(s.id, keys, now);
    else if (wants && ((spec.flags & cmd_flag::readonly) || is_script(spec.name)))
      reads.insert(reads.end(), keys.begin(), keys.end());
  }
  if (reads.empty())
    return false;
  // The transaction leaves the session now (the connection's next commands
  // are not queued into it), and runs once the registrations are in.
  auto held = std::make_shared<session>();
  held->id = s.id;
  held->tx = std::move(s.tx);
  s.tx.discard();
  s.tx.unwatch();
  s.tx.slot = -1;
  auto args = std::make_shared<std::vector<std::string>>(a.begin(), a.end());
  std::weak_ptr<cluster_tracking> w = weak_from_this();
  std::vector<std::string_view> keys(reads.begin(), reads.end());
  track_reads(
      s, keys,
      [w, args, held](done_fn d) {
        auto t = w.lock();
        if (!t)
          return;
        std::vector<std::string_view> views(args->begin(), args->end());
        run_transaction(
            t->c_, views, *held, [](const std::function<void(session&)>&) {}, std::move(d));
      },
      std::move(done));
  return true;
}

void cluster_tracking::mark_self_writes(uint64_t client, const std::vector<std::string_view>& keys,
                                        uint64_t now) {
  uint64_t until = now + 2 * c_.settings().request_timeout_ms + 1'000;
  for (auto k : keys)
    self_writes_[std::string(k)] = {client, until};
}

void cluster_tracking::track_reads(session& s, const std::vector<std::string_view>& keys,
                                   std::function<void(done_fn)> run, done_fn done) {
  auto now = now_ms();
  // Membership news that arrived before this read concerns the keys tracked
  // so far, not this read (it registers with today's ring): take it now, not
  // at the next tick, or the flush it causes would drop this read's keys.
  watch_members(now);
  auto job = std::make_shared<read_job>();
  job->client = s.id;
  job->epoch = member_epoch_;
  std::map<gossip::node_id, std::vector<std::string>> per_peer;
  for (auto k : keys) {
    std::string key(k);
    if (std::find(job->keys.begin(), job->keys.end(), key) != job->keys.end())
      continue;
    job->keys.push_back(key);
    ++inflight_[key];
    auto reps = c_.replica_ids(key);
    if (std::find(reps.begin(), reps.end(), c_.self_id()) != reps.end())
      continue; // our own store tells us
    auto r = registered_.find(key);
    if (r != registered_.end() && now < r->second + reregister_ms)
      continue;
    registered_[key] = now;
    for (auto rep : reps)
      per_peer[rep].push_back(key);
  }
  std::weak_ptr<cluster_tracking> w = weak_from_this();
  done_fn wrapped = [w, job, done = std::move(done)](out_buffer&& reply) {
    auto t = w.lock();
    if (t)
      t->read_done(*job, reply);
    done(std::move(reply));
    if (t)
      t->after_reply(*job);
  };
  if (per_peer.empty())
    return run(std::move(wrapped));
  // register first, run once every replica answered (or failed)
  job->pending = per_peer.size();
  auto go = std::make_shared<std::pair<std::function<void(done_fn)>, done_fn>>(std::move(run),
                                                                               std::move(wrapped));
  for (auto& [peer, ks] : per_peer) {
    std::vector<std::string> m{"kura.node.track", std::to_string(c_.self_id())};
    m.insert(m.end(), ks.begin(), ks.end());
    c_.forward(peer, std::move(m), [w, job, ks = ks, go](bool ok, std::string r) {
      if (!w.lock())
        return; // the broker is gone, and the connection with it
      if (ok) {
        auto ex = parse_ints(r);
        for (size_t i = 0; i < ks.size() && i < ex.size(); ++i)
          job->expiry[ks[i]] = std::max(job->expiry[ks[i]], ex[i]);
      }
      if (--job->pending != 0)
        return;
      go->first(std::move(go->second));
    });
  }
}

void cluster_tracking::read_done(read_job& job, const out_buffer& reply) {
  auto now = now_ms();
  watch_members(now); // flushes the keys tracked before, not these
  job.stale = job.epoch != member_epoch_;
  if (reply.empty() || reply[0] == '-')
    return; // nothing was read
  session* s = hub_.client(job.client);
  if (!s || !s->tracking)
    return;
  for (auto& k : job.keys) {
    uint64_t expiry = 0;
    if (auto it = job.expiry.find(k); it != job.expiry.end()) {
      expiry = it->second;
    } else if (replicates(k)) {
      auto e = c_.local(k);
      if (e && !e->is_tombstone() && !e->expired(now))
        expiry = e->expiry_ms;
    }
    hub_.track_key(*s, k, false, expiry);
    hub_.key_expires(k, expiry);
  }
}

void cluster_tracking::after_reply(read_job& job) {
  bool any = false;
  for (auto& k : job.keys) {
    auto it = inflight_.find(k);
    if (it != inflight_.end() && --it->second <= 0)
      inflight_.erase(it);
    bool last = inflight_.count(k) == 0;
    bool dirty = dirty_.count(k) != 0; // changed while the read was on its way
    if (dirty && last)
      dirty_.erase(k);
    if (dirty || job.stale) { // or a member came back meanwhile (watch_members)
      hub_.key_changed(k, 0);
      any = true;
    }
  }
  if (any)
    hub_.flush_bcast();
}

void cluster_tracking::changed_here(const std::string& key, uint64_t expiry_ms) {
  registered_.erase(key); // the replica that told us forgot us
  if (inflight_.count(key) != 0)
    dirty_.insert(key);
  uint64_t origin = 0;
  if (auto w = self_writes_.find(key); w != self_writes_.end()) {
    if (now_ms() <= w->second.second)
      origin = w->second.first;
    self_writes_.erase(w);
  }
  hub_.key_changed(key, origin);
  if (expiry_ms != 0 && hub_.has_bcast()) // BCAST hears of the expiry too
    hub_.key_written(key, expiry_ms);
  hub_.flush_bcast();
}

void cluster_tracking::on_store(const entry& e) {
  uint64_t expiry = e.is_tombstone() ? 0 : e.expiry_ms;
  if (hub_.active())
    changed_here(e.key, expiry);
  if (peer_keys_.empty() && peer_prefixes_.empty())
    return;
  auto now = now_ms();
  std::set<gossip::node_id> to;
  auto kit = peer_keys_.find(e.key);
  for (auto& [peer, pp] : peer_prefixes_)
    if (pp.until >= now)
      for (auto& p : pp.prefixes)
        if (starts_with(e.key, p)) {
          to.insert(peer);
          break;
        }
  if (kit == peer_keys_.end() && to.empty())
    return;
  auto cands = c_.exec_candidates(e.key);
  bool first = !cands.empty() && cands[0] == c_.self_id();
  if (kit != peer_keys_.end()) {
    if (first)
      to.insert(kit->second.begin(), kit->second.end());
    peer_keys_.erase(kit); // the first live replica tells them; all forget
  }
  if (!first)
    return;
  auto reps = c_.replica_ids(e.key);
  for (auto peer : to) {
    if (peer == c_.self_id() || std::find(reps.begin(), reps.end(), peer) != reps.end())
      continue; // a replica hears of it from its own store
    c_.forward(peer, {"kura.node.invalidate", e.key, std::to_string(expiry)},
               [](bool, std::string) {});
  }
}

bool cluster_tracking::exec(const std::vector<std::string>& a,
                            const std::function<void(std::string)>& reply) {
  auto sub = lower(a[0]);
  if (sub == "kura.node.track" && a.size() >= 3) {
    auto from = static_cast<gossip::node_id>(std::strtoul(a[1].c_str(), nullptr, 10));
    auto now = now_ms();
    std::string r = "*" + std::to_string(a.size() - 2) + "\r\n";
    for (size_t i = 2; i < a.size(); ++i) {
      auto& set = peer_keys_[a[i]];
      set.insert(from);
      while (peer_keys_.size() > max_peer_keys) { // as Redis: evict with an invalidation
        auto victim = peer_keys_.begin();
        if (victim->first == a[i])
          victim = std::next(victim);
        for (auto peer : victim->second)
          c_.forward(peer, {"kura.node.invalidate", victim->first, "0"}, [](bool, std::string) {});
        peer_keys_.erase(victim);
      }
      auto e = c_.local(a[i]);
      uint64_t expiry = e && !e->is_tombstone() && !e->expired(now) ? e->expiry_ms : 0;
      r += ":" + std::to_string(expiry) + "\r\n";
    }
    reply(std::move(r));
    return true;
  }
  if (sub == "kura.node.track-prefixes" && a.size() >= 3) {
    auto from = static_cast<gossip::node_id>(std::strtoul(a[1].c_str(), nullptr, 10));
    uint64_t keep = std::strtoull(a[2].c_str(), nullptr, 10);
    if (a.size() == 3) {
      peer_prefixes_.erase(from);
    } else {
      auto& pp = peer_prefixes_[from];
      pp.prefixes.assign(a.begin() + 3, a.end());
      pp.until = now_ms() + keep;
    }
    reply("+OK\r\n");
    return true;
  }
  if (sub == "kura.node.invalidate" && a.size() == 3) {
    if (hub_.active())
      changed_here(a[1], std::strtoull(a[2].c_str(), nullptr, 10));
    else
      registered_.erase(a[1]);
    reply("+OK\r\n");
    return true;
  }
  return false;
}

void cluster_tracking::announce(const std::vector<std::string>& prefixes) {
  std::vector<std::string> m{"kura.node.track-prefixes", std::to_string(c_.self_id()),
                             std::to_string(prefixes_kept_ms)};
  m.insert(m.end(), prefixes.begin(), prefixes.end());
  for (auto peer : c_.ring_members())
    if (peer != c_.self_id())
      c_.forward(peer, m, [](bool, std::string) {});
}

void cluster_tracking::watch_members(uint64_t now) {
  auto* core = c_.core();
  if (!core)
    return;
  const auto& events = core->members().events();
  if (events_seen_ > events.size())
    events_seen_ = events.size();
  bool back = false;
  for (size_t i = events_seen_; i < events.size(); ++i)
    back = back || (events[i].id != c_.self_id() && events[i].state == gossip::member_state::alive);
  events_seen_ = events.size();
  if (!back)
    return;
  ++member_epoch_;
  // Its registrations are gone (a restart), or keys moved to it or away from
  // this node: tracked keys may change unheard. Redis's answer to "every key may
  // have changed" is the null invalidation (as after FLUSHALL); BCAST
  // prefixes are announced again at once.
  if (!registered_.empty() || hub_.tracked_keys() != 0 || hub_.has_bcast())
    hub_.flushed();
  registered_.clear();
  next_announce_ms_ = now;
}

void cluster_tracking::tick() {
  auto now = now_ms();
  watch_members(now);
  if (c_.ready()) {
    auto prefixes = hub_.all_prefixes();
    if (prefixes != announced_ || (!prefixes.empty() && now >= next_announce_ms_)) {
      announce(prefixes);
      announced_ = std::move(prefixes);
      next_announce_ms_ = now + announce_every_ms;
    }
  }
  for (auto it = self_writes_.begin(); it != self_writes_.end();)
    it = now > it->second.second ? self_writes_.erase(it) : std::next(it);
  for (auto it = peer_prefixes_.begin(); it != peer_prefixes_.end();)
    it = now > it->second.until ? peer_prefixes_.erase(it) : std::next(it);
  std::weak_ptr<cluster_tracking> w = weak_from_this();
  c_.after(tick_ms, [w] {
    if (auto t = w.lock())
      t->tick();
  });
}

} // namespace kura::node
