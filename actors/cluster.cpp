#include "actors/cluster.hpp"
#include "actors/peer_link.hpp"

#include "tiers/clock.hpp"
#include "tiers/slot.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <deque>
#include <iostream>
#include <random>

namespace kura::actors {

// -- cluster_core -----------------------------------------------------------------

namespace {

gossip::node_config make_node_config(const cluster_settings& s, gossip::node_id gid) {
  gossip::node_config nc;
  nc.members.self = gid;
  nc.members.addr = gossip::membership::tagged_addr(
      member_addr(s.name, s.advertise.empty() ? s.host + ":" + std::to_string(s.port) : s.advertise,
                  s.resp_addr),
      s.marks.tokens, s.marks.drained);
  nc.members.probe_interval_ms = s.heartbeat_ms;
  nc.members.probe_timeout_ms = std::max<uint64_t>(1, s.heartbeat_ms * 3 / 10);
  nc.members.sync_interval_ms = s.sync_ms;
  nc.ring.rf = s.replication_factor;
  nc.write_acks = s.write_acks;
  nc.retry_ms = std::max<uint64_t>(50, s.request_timeout_ms / 4);
  nc.retry_backoff = true;
  nc.write_timeout_ms = 2 * s.request_timeout_ms;
  nc.read_timeout_ms = s.request_timeout_ms;
  nc.near_ttl_ms = s.near_cache ? 60'000 : 0;
  nc.ack_after_invalidation = true;
  nc.sloppy_quorum = true;
  nc.catch_up_reads = true;
  nc.track_sync_failures = true;
  nc.collect_expired = true;
  nc.prefer_live_replicas = true;
  nc.hedge_max_ms = s.hedge_max_ms;
  nc.hedge_min_ms = std::min<uint64_t>(10, s.hedge_max_ms);
  nc.streaming = true;
  nc.stream_rate = s.stream_rate;
  return nc;
}

const char* state_name(gossip::member_state st) {
  return gossip::to_string(st);
}

} // namespace

cluster_core::cluster_core(cluster_settings s, std::unique_ptr<gossip::replica_store> store)
    : s_(std::move(s)), gid_(gossip_id_of(s_.name)), store_(std::move(store)) {}

void cluster_core::start(uint64_t now, std::vector<gossip::node_id> seeds, uint64_t incarnation) {
  auto nc = make_node_config(s_, gid_);
  nc.members.seeds = std::move(seeds);
  std::random_device rd;
  uint64_t seed = (static_cast<uint64_t>(rd()) << 32) ^ rd() ^ now;
  // gossip::node::start seeds the HLC with the store's max_version (L3's
  // persisted high-water mark), so versions keep rising across restarts.
  node_.emplace(nc, seed, std::move(store_));
  node_->store_for_maintenance().on_store = [this](const entry& e) {
    if (on_store_change)
      on_store_change(e);
  };
  node_->start(now, incarnation);
  pump();
}

std::vector<std::string> cluster_core::owners(std::string_view key) const {
  std::vector<std::string> out;
  if (!node_)
    return out;
  for (auto id : node_->current_ring().replicas(key))
    out.push_back(name_of(id));
  return out;
}

void cluster_core::write(std::string_view key, std::string_view value, uint64_t expiry_ms,
                         bool tombstone, result_fn fn, uint8_t flags, uint64_t at_ms) {
  if (!node_) {
    gossip::client_result r;
    r.write = true;
    fn(r);
    return;
  }
  auto now = at_ms != 0 ? at_ms : real_clock::instance().now_ms();
  if (!tombstone && s_.cap_expiry) // retention, sensitive keys (node/cluster_security.hpp)
    expiry_ms = s_.cap_expiry(key, expiry_ms, now);
  auto rid = node_->write(key, value, now, tombstone, expiry_ms, flags);
  waiting_.emplace(rid, std::move(fn));
  pump_deferred();
}

void cluster_core::read(const std::string& key, result_fn fn) {
  if (!node_) {
    gossip::client_result r;
    fn(r);
    return;
  }
  auto now = real_clock::instance().now_ms();
  auto rid = node_->read(key, now);
  waiting_.emplace(rid, std::move(fn));
  pump_deferred();
}

size_t cluster_core::slots_gathering() const {
  return node_ ? node_->gathering_slots(real_clock::instance().now_ms()) : 0;
}

std::optional<gossip::node::local_answer> cluster_core::read_here(std::string_view key,
                                                                  entry& scratch) {
  if (!node_)
    return std::nullopt;
  return node_->read_here(key, real_clock::instance().now_ms(), scratch);
}

std::optional<entry> cluster_core::local(std::string_view key) const {
  if (!node_)
    return std::nullopt;
  return node_->store().get(key);
}

std::vector<gossip::node_id> cluster_core::ring_members() const {
  if (!node_)
    return {};
  return node_->current_ring().members();
}

std::vector<gossip::node_id> cluster_core::replica_ids(std::string_view key) const {
  if (!node_)
    return {};
  return node_->current_ring().replicas(key);
}

std::vector<gossip::node_id> cluster_core::exec_candidates(std::string_view key) const {
  auto ids = replica_ids(key);
  if (!node_)
    return ids;
  std::stable_partition(ids.begin(), ids.end(), [&](gossip::node_id id) {
    if (id == gid_)
      return true;
    auto m = node_->members().info(id);
    return m && m->state == gossip::member_state::alive;
  });
  return ids;
}

bool rerun_safe(const std::vector<std::string>& args) {
  if (args.empty())
    return false;
  std::string name;
  for (char ch : args[0])
    name.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(ch))));
  if (name == "setex" || name == "psetex" || name == "hmset" || name == "kura.node.watch")
    return true;
  if (name != "set")
    return false;
  for (size_t i = 3; i < args.size(); ++i) {
    std::string o;
    for (char ch : args[i])
      o.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(ch))));
    if (o == "nx" || o == "xx" || o == "get")
      return false;
  }
  return true;
}

std::string read_failed(gossip::read_failure why) {
  if (why == gossip::read_failure::unsettled)
    return "TRYAGAIN The key's replicas are changing (the ring moved) and none could vouch "
           "for it yet; try again";
  if (why == gossip::read_failure::unconfirmed)
    return "TRYAGAIN This node is catching up and too few of the key's replicas answered within "
           "kura.cluster.request-timeout to confirm its newest version; try again";
  return "CLUSTERDOWN No replica of the key answered within kura.cluster.request-timeout; "
         "try again";
}

std::string tag_written(const std::vector<std::pair<std::string, version>>& written,
                        std::string reply) {
  if (written.empty())
    return reply;
  std::string t = "\x01" + std::to_string(written.size()) + "\n";
  for (auto& [key, v] : written)
    t += std::to_string(v.hlc) + " " + std::to_string(v.node) + " " + std::to_string(key.size()) +
         "\n" + key;
  return t + reply;
}

bool untag_written(std::string& reply, std::vector<std::pair<std::string, version>>& written) {
  if (reply.empty() || reply[0] != '\x01')
    return true;
  size_t p = 1;
  auto number = [&](char end, uint64_t& out) {
    auto e = reply.find(end, p);
    if (e == std::string::npos || e == p || e - p > 20)
      return false;
    auto [ptr, ec] = std::from_chars(reply.data() + p, reply.data() + e, out);
    if (ec != std::errc{} || ptr != reply.data() + e)
      return false;
    p = e + 1;
    return true;
  };
  uint64_t n = 0;
  if (!number('\n', n) || n > reply.size())
    return false;
  std::vector<std::pair<std::string, version>> got;
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t hlc = 0, node = 0, len = 0;
    if (!number(' ', hlc) || !number(' ', node) || !number('\n', len) || node > UINT32_MAX ||
        len > reply.size() - p)
      return false;
    got.emplace_back(reply.substr(p, len), version{hlc, static_cast<uint32_t>(node)});
    p += len;
  }
  reply.erase(0, p);
  for (auto& w : got)
    written.push_back(std::move(w));
  return true;
}

std::string outcome_unknown(const std::string& who, const std::string& why) {
  return "TIMEOUT the key's owner " + who + " gave no answer (" + why +
         "); the command may have run there and was not run again";
}

void cluster_core::forward(gossip::node_id to, std::vector<std::string> args, forward_fn fn) {
  if (to == gid_) {
    if (!s_.exec)
      return fn(false, {});
    return s_.exec(*this, std::move(args), [fn](std::string r) { fn(true, std::move(r)); });
  }
  if (!send_exec)
    return fn(false, {});
  ++forwarded_;
  auto token = next_token_++;
  forwards_.emplace(token, std::move(fn));
  auto bytes = seal(
      static_cast<uint32_t>(cluster_msg_type::exec),
      exec_request{std::move(args), real_clock::instance().now_ms() + s_.request_timeout_ms, true});
  if (!schedule_flush || !send_exec_batch)
    return send_exec(to, std::move(bytes), token);
  // Held until the current event is done: a pipeline's forwarded commands to
  // one peer travel as one request (answered in order, as one reply).
  held_exec_[to].emplace_back(std::move(bytes), token);
  if (!flush_scheduled_) {
    flush_scheduled_ = true;
    schedule_flush();
  }
}

void cluster_core::flush_exec() {
  if (held_exec_.empty())
    return;
  std::map<gossip::node_id, std::vector<std::pair<std::string, uint64_t>>> batch;
  batch.swap(held_exec_);
  for (auto& [to, reqs] : batch) {
    if (reqs.size() == 1) {
      send_exec(to, std::move(reqs[0].first), reqs[0].second);
      continue;
    }
    std::vector<std::string> bytes;
    std::vector<uint64_t> tokens;
    for (auto& [b, t] : reqs) {
      bytes.push_back(std::move(b));
      tokens.push_back(t);
    }
    send_exec_batch(to, std::move(bytes), std::move(tokens));
  }
}

void cluster_core::on_exec_reply(uint64_t token, bool ok, std::string reply) {
  auto it = forwards_.find(token);
  if (it == forwards_.end())
    return;
  if (ok) { // what the command wrote there: our reads never serve older
    std::vector<std::pair<std::string, version>> written;
    if (!untag_written(reply, written))
      reply = "-ERR malformed reply of a forwarded command\r\n";
    if (node_)
      for (auto& [key, v] : written)
        node_->written_elsewhere(key, v);
  }
  auto fn = std::move(it->second);
  forwards_.erase(it);
  fn(ok, std::move(reply));
}

status cluster_core::on_message(gossip::node_id from, std::string_view bytes, uint64_t now) {
  if (!node_)
    return status{};
  auto st = node_->on_message(from, bytes, now);
  pump();
  return st;
}

status cluster_core::on_messages(gossip::node_id from, std::vector<std::string>& msgs,
                                 uint64_t now) {
  if (!node_)
    return status{};
  status first;
  for (auto& m : msgs)
    if (auto st = node_->on_message(from, m, now); !st && first)
      first = st;
  pump();
  return first;
}

bool cluster_core::on_frames(gossip::node_id from, std::string_view frames, uint64_t now,
                             status& why) {
  why = status{};
  if (!node_)
    return true;
  auto n = for_each_frame(frames, [&](std::string_view m) {
    if (auto st = node_->on_message(from, m, now); !st && why)
      why = st;
  });
  if (!n) {
    why = status{n.err()};
    return false;
  }
  pump();
  return true;
}

void cluster_core::after(uint64_t ms, std::function<void()> fn) {
  timers_.emplace(real_clock::instance().now_ms() + ms, std::move(fn));
}

void cluster_core::tick(uint64_t now) {
  while (!timers_.empty() && timers_.begin()->first <= now) {
    auto fn = std::move(timers_.begin()->second);
    timers_.erase(timers_.begin());
    fn();
  }
  if (!node_)
    return;
  node_->tick(now);
  // The store's group commit (L3 write-behind: one LMDB transaction per batch,
  // never one per SET) and, once a second, a bounded expiry sweep.
  size_t sweep = 0;
  if (now >= next_sweep_ms_) {
    next_sweep_ms_ = now + 1000;
    sweep = 256;
  }
  if (auto st = node_->store_for_maintenance().tick(sweep); !st) {
    if (++store_errors_ <= 10 || store_errors_ % 1000 == 0)
      std::cerr << "kura-node: cluster: store: " << st.message() << std::endl;
  }
  if (s_.maintain)
    s_.maintain(*this, now);
  pump();
  if (s_.report && now >= next_report_ms_) {
    next_report_ms_ = now + 1000;
    s_.report(*this);
  }
}

void cluster_core::join_via(gossip::node_id seed, uint64_t now) {
  if (!node_)
    return;
  node_->join_via(seed, now);
  pump();
}

std::string cluster_core::keep_marks(const ring_marks& m) {
  if (!s_.marks_dir.empty())
    if (auto why = save_ring_marks(s_.marks_dir, m); !why.empty())
      return why;
  s_.marks = m;
  return {};
}

std::string cluster_core::drain(bool on, uint64_t now) {
  if (!node_)
    return "not joined yet";
  if (node_->drained() == on)
    return {};
  auto m = s_.marks;
  m.drained = on;
  if (auto why = keep_marks(m); !why.empty())
    return why;
  node_->drain(on, now);
  pump();
  return {};
}

std::string cluster_core::set_tokens(uint32_t tokens, uint64_t now) {
  if (!node_)
    return "not joined yet";
  if (node_->tokens() == tokens)
    return {};
  auto m = s_.marks;
  m.tokens = tokens;
  if (auto why = keep_marks(m); !why.empty())
    return why;
  node_->set_tokens(tokens, now);
  pump();
  return {};
}

void cluster_core::flush_store() {
  auto* st = node_ ? &node_->store_for_maintenance() : store_.get();
  if (!st)
    return;
  if (auto r = st->flush(); !r)
    std::cerr << "kura-node: cluster: store flush: " << r.message() << std::endl;
}

void cluster_core::peer_unreachable(gossip::node_id peer, uint64_t now) {
  if (!node_)
    return;
  node_->peer_unreachable(peer, now);
  pump();
}

void cluster_core::leave(uint64_t now) {
  if (!node_)
    return;
  node_->leave(now);
  pump();
}

void cluster_core::take_outbox() {
  auto& out = node_->out();
  for (auto& o : out) {
    auto& h = held_[o.to];
    if (h.frames.empty()) {
      auto hint = frames_hint_.find(o.to);
      if (hint != frames_hint_.end())
        h.frames.reserve(hint->second);
    }
    append_frame(h.frames, o.bytes);
    ++h.count;
  }
  out.clear();
}

void cluster_core::pump_deferred() {
  if (!node_)
    return;
  take_outbox();
  if (!held_.empty() && schedule_flush && !flush_scheduled_) {
    flush_scheduled_ = true;
    schedule_flush();
  }
  if (!schedule_flush)
    return pump();
  deliver_results();
}

void cluster_core::deliver_results() {
  std::vector<gossip::client_result> results;
  results.swap(spare_results_); // (empty when a call delivering a batch holds it)
  node_->take_results(results);
  if (!results.empty())
    deliver(results);
  results.clear();
  if (results.capacity() > spare_results_.capacity())
    spare_results_.swap(results);
}

void cluster_core::deliver(std::vector<gossip::client_result>& results) {
  struct scope { // delivering() until the batch is out, even when a callback throws
    cluster_core& c;
    explicit scope(cluster_core& core) : c(core) { ++c.delivering_; }
    ~scope() {
      if (--c.delivering_ == 0 && c.after_delivery) {
        try {
          c.after_delivery();
        } catch (...) { // the front end's replies wait for the next batch
        }
      }
    }
  } in_batch(*this);
  for (auto& r : results) {
    auto it = waiting_.find(r.req);
    if (it == waiting_.end())
      continue;
    auto fn = std::move(it->second);
    waiting_.erase(it);
    fn(r);
  }
}

void cluster_core::pump() {
  flush_exec();
  if (!node_)
    return;
  take_outbox();
  flush_scheduled_ = false;
  if (!held_.empty()) {
    std::map<gossip::node_id, held_out> batch;
    batch.swap(held_);
    for (auto& [to, h] : batch) {
      gossip_sent_ += h.count;
      ++gossip_batches_;
      frames_hint_[to] = std::min<size_t>(h.frames.size(), size_t{1} << 20);
      if (send_frames)
        send_frames(to, std::move(h.frames), h.count);
    }
  }
  deliver_results();
}

std::string cluster_core::addr_of(gossip::node_id id) const {
  if (!node_)
    return {};
  auto m = node_->members().info(id);
  return m ? m->addr : std::string{};
}

std::string cluster_core::name_of(gossip::node_id id) const {
  if (id == gid_)
    return s_.name;
  std::string name, hp;
  split_member_addr(addr_of(id), name, hp);
  return name.empty() ? std::to_string(id) : name;
}

members_reply cluster_core::members() const {
  members_reply rep;
  if (!node_) {
    rep.error = "not joined yet (waiting for a seed)";
    return rep;
  }
  // Share: the fraction of ring positions whose owner (first replica) is the member.
  std::map<gossip::node_id, long double> share;
  auto& r = node_->current_ring();
  auto& toks = r.tokens();
  for (size_t i = 0; i < toks.size(); ++i) {
    uint64_t prev = i == 0 ? toks.back() : toks[i - 1];
    uint64_t len = toks[i] - prev; // wraps for i == 0
    if (toks.size() == 1)
      len = ~uint64_t{0};
    share[r.token_replicas(i)[0]] += static_cast<long double>(len);
  }
  for (auto& [id, m] : node_->members().members()) {
    member_row row;
    split_member_addr(m.addr, row.id, row.address);
    if (row.id.empty())
      row.id = std::to_string(id);
    row.state = state_name(m.state);
    row.incarnation = m.inc;
    row.share = static_cast<double>(share[id] / 18446744073709551616.0L);
    row.gossip_id = id;
    row.self = id == gid_;
    row.drained = gossip::membership::addr_drained(m.addr);
    rep.members.push_back(std::move(row));
  }
  rep.move = move_report();
  return rep;
}

move_row cluster_core::move_report() const {
  if (!node_)
    return {};
  auto m = move_row_of(node_->progress(), real_clock::instance().now_ms());
  m.stream_rate = s_.stream_rate;
  m.keys_held = node_->store().size();
  return m;
}

std::vector<ring_row> cluster_core::ring_report() const {
  std::vector<ring_row> rows;
  if (!node_)
    return rows;
  auto& r = node_->current_ring();
  std::map<gossip::node_id, size_t> at;
  for (auto id : r.members()) {
    at[id] = rows.size();
    ring_row row;
    std::string hp;
    split_member_addr(addr_of(id), row.id, row.address);
    if (id == gid_)
      row.id = s_.name;
    if (row.id.empty())
      row.id = std::to_string(id);
    auto info = node_->members().info(id);
    row.state = info ? state_name(info->state) : "alive";
    row.tokens = r.tokens_of(id);
    rows.push_back(std::move(row));
  }
  for (uint32_t slot = 0; slot < 16384; ++slot) {
    auto reps = r.replicas_of_slot(slot);
    for (size_t i = 0; i < reps.size(); ++i) {
      auto it = at.find(reps[i]);
      if (it == at.end())
        continue;
      auto& row = rows[it->second];
      ++row.slots_replicated;
      if (i != 0)
        continue;
      ++row.slots_owned;
      if (!row.ranges.empty() && row.ranges.back() + 1 == slot)
        row.ranges.back() = slot;
      else
        row.ranges.insert(row.ranges.end(), {slot, slot});
    }
  }
  return rows;
}

std::vector<uint64_t> cluster_core::slot_stats() const {
  std::vector<uint64_t> out;
  if (!node_)
    return out;
  std::vector<uint64_t> keys(kura::slot_count, 0), bytes(kura::slot_count, 0);
  auto now = real_clock::instance().now_ms();
  auto& st = node_->store();
  // From the store's index: reading every value (L3, the archive) here
  // stalled the multiplexer for 11 s on 1 GB, long enough for the peers'
  // links to time out (bench/cluster-move at 1 GB).
  st.for_each_key_sized_from(0, [&](uint64_t pos, const entry& meta, uint64_t value_bytes) {
    if (meta.is_tombstone() || meta.expired(now))
      return true;
    auto slot = gossip::ring::slot_of(pos);
    ++keys[slot];
    bytes[slot] += meta.key.size() + value_bytes;
    return true;
  });
  for (uint32_t s = 0; s < kura::slot_count; ++s)
    if (keys[s] > 0)
      out.insert(out.end(), {s, keys[s], bytes[s]});
  return out;
}

std::string cluster_mac(const std::string& key, const std::string& data) {
  if (key.empty())
    return {};
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &len);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 15];
  }
  return out;
}

// -- the coordinator broker ----------------------------------------------------------

namespace {

using tick_atom = caf::atom_constant<caf::atom("ctick")>;
using fwd_atom = caf::atom_constant<caf::atom("cfwd")>;
using leave_atom = caf::atom_constant<caf::atom("cleave")>;
using flush_atom = caf::atom_constant<caf::atom("cflush")>;
using leaveq_atom = caf::atom_constant<caf::atom("cleaveq")>;
using flushq_atom = caf::atom_constant<caf::atom("cflushq")>;

constexpr size_t max_queued_per_peer = 1024;

/// Forwarded commands (one, or a pipeline's as one request) that wait for
/// the handshake with their peer: sent once it proved itself, failed ("",
/// never sent) when the handshake fails or `deadline` (request-timeout after
/// they were held) passes first.
struct held_fwd {
  std::vector<std::string> bytes;
  std::vector<uint64_t> tokens;
  bool batch = false; ///< sent as a vector (exec_atom's pipeline form)
  uint64_t deadline = 0;
};
constexpr size_t max_held_fwds_per_peer = 4096; ///< commands (tokens)

struct peer_conn {
  caf::actor hdl;
  uint32_t caps = 0; ///< what `hdl`'s node announced in the handshake (cluster_wire.hpp)
  bool connecting = false;
  uint64_t next_attempt = 0;
  std::deque<std::string> queue; ///< messages waiting for the connection
  std::deque<held_fwd> fwds;     ///< forwarded commands waiting for it
  size_t fwd_tokens = 0;         ///< commands in `fwds`
};

/// The answering side's half of a handshake: one per hello, so that two
/// handshakes with the same peer in flight at once (both sides dialling,
/// or a re-dial) each find their own nonces when their auth arrives.
struct pending_hello {
  std::string id, addr, nonce_a, nonce_b;
};
constexpr size_t max_pending_hellos = 8; ///< per peer node; the oldest goes first

/// Messages from a peer that has not (yet) proven itself: hold_unproven.
/// `exec` set: a forwarded command (or a pipeline of them) in `msgs`, run
/// (true) or refused (false) once the handshake ended.
using held_exec = std::function<void(bool, std::vector<std::string>&)>;
struct unproven_msg {
  uint32_t from = 0;
  std::vector<std::string> msgs;
  held_exec exec;
};
struct unproven_peer {
  std::vector<unproven_msg> msgs;
  size_t bytes = 0;
  bool proving = false;       ///< its handshake is running
  uint64_t refused_until = 0; ///< after a failed handshake: its messages are dropped
};
constexpr size_t max_unproven_bytes = 4u << 20;
constexpr uint64_t unproven_retry_ms = 5000;
constexpr size_t max_unproven_peers = 64;

struct seed_state {
  std::string host;
  uint16_t port = 0;
  gossip::node_id gid = gossip::no_node;
  bool connecting = false;
  uint64_t next_attempt = 0;
};

struct coord_state {
  std::shared_ptr<cluster_core> core;
  std::map<gossip::node_id, peer_conn> peers;
  std::map<caf::node_id, gossip::node_id> authed;
  std::map<caf::node_id, std::deque<pending_hello>> hellos;
  std::map<caf::node_id, unproven_peer> unproven;
  std::vector<seed_state> seeds;
  uint64_t incarnation = 0;
  uint64_t started_ms = 0;
  /// Started alone because no seed answered (a restart on its data while the
  /// seeds were down): join through the first seed that answers.
  bool alone = false;
  bool leaving = false;
  std::map<std::string, uint64_t> log_counts;
  static inline const char* name = "kura.cluster";
};

using coord_ptr = caf::stateful_actor<coord_state, caf::io::broker>*;

uint64_t now_ms() {
  return real_clock::instance().now_ms();
}

/// Why a forwarded command got no answer, for cluster_core::forward's
/// callback: "" when it certainly did not run there (the peer refused it),
/// else what happened (it may have run).
std::string unanswered(const caf::error& e, uint64_t timeout_ms) {
  if (e == caf::sec::request_timeout)
    return "no answer within " + std::to_string(timeout_ms) + " ms";
  if (e == caf::sec::request_receiver_down)
    return "connection lost";
  return {};
}

/// A forwarded command that arrives after its sender stopped waiting is not
/// started (the sender may have answered the client already).
constexpr const char* late_reply = "-TIMEOUT the command arrived after its deadline; not run\r\n";

bool too_late(const exec_request& r) {
  return r.deadline_ms != 0 && now_ms() > r.deadline_ms;
}

/// Logs a line; repeated kinds are thinned out (1st..10th, then every 1000th).
void log_line(coord_ptr self, const std::string& kind, const std::string& text) {
  if (kind == "refused" || kind == "badhello" || kind == "dupid")
    if (auto& f = self->state.core->settings().on_refused)
      f(text); // the audit log (every one; the log line below is rate-limited)
  auto n = ++self->state.log_counts[kind];
  if (n <= 10 || n % 1000 == 0)
    std::cerr << "kura-node: cluster: " << text
              << (n > 10 ? " (" + std::to_string(n) + " times)" : std::string{}) << std::endl;
}

std::string random_nonce() {
  static thread_local std::random_device rd;
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < 32; ++i)
    s += hex[rd() & 15];
  return s;
}

std::string own_addr(const cluster_settings& s) {
  return s.advertise.empty() ? s.host + ":" + std::to_string(s.port) : s.advertise;
}

std::string mac_b(const cluster_settings& s, const std::string& nonce_a, const std::string& nonce_b,
                  const std::string& id_a) {
  return cluster_mac(s.secret, "kura-b|" + nonce_a + "|" + nonce_b + "|" + s.name + "|" + id_a);
}

std::string mac_a(const std::string& secret, const std::string& nonce_b, const std::string& nonce_a,
                  const std::string& id_a, const std::string& id_b) {
  return cluster_mac(secret, "kura-a|" + nonce_b + "|" + nonce_a + "|" + id_a + "|" + id_b);
}

bool mac_equal(const std::string& a, const std::string& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

void send_to(coord_ptr self, gossip::node_id to, std::string bytes) {
  auto& p = self->state.peers[to];
  if (p.hdl) {
    caf::send_as(caf::actor_cast<caf::actor>(self), p.hdl, gossip_atom::value,
                 self->state.core->self_id(), std::move(bytes));
    return;
  }
  p.queue.push_back(std::move(bytes));
  if (p.queue.size() > max_queued_per_peer)
    p.queue.pop_front();
}

/// The `count` messages framed in `frames` to `to`: the buffer as it is to
/// a peer that announced cap_framed_batch, else (a peer of an older version,
/// or no link yet: the queue) one string per message.
void send_frames_to(coord_ptr self, gossip::node_id to, std::string frames, size_t count) {
  auto& p = self->state.peers[to];
  if (p.hdl && (p.caps & cap_framed_batch) != 0) {
    caf::send_as(caf::actor_cast<caf::actor>(self), p.hdl, gbatch_atom::value,
                 self->state.core->self_id(), std::move(frames));
    return;
  }
  auto msgs = split_frames(frames);
  if (p.hdl && count > 1) {
    caf::send_as(caf::actor_cast<caf::actor>(self), p.hdl, gossip_atom::value,
                 self->state.core->self_id(), std::move(msgs));
    return;
  }
  for (auto& m : msgs)
    send_to(self, to, std::move(m));
}

/// Forgets the link to the coordinator `source` (its connection dropped, or
/// it sent a corrupt batch): its trust (a new handshake is needed before its
/// messages count again), its handle, and the members it served become
/// suspect. CAF 0.17 has no call to close one BASP connection, so a link
/// that misbehaves is dropped here, not on the socket.
void drop_link(coord_ptr self, const caf::actor_addr& source, const std::string& what,
               const std::string& why) {
  auto& st = self->state;
  for (auto& [gid, p] : st.peers) {
    if (p.hdl && p.hdl.address() == source) {
      self->demonitor(p.hdl);
      p.hdl = nullptr;
      p.caps = 0;
      log_line(self, "lost:" + std::to_string(gid),
               what + st.core->name_of(gid) + why + ": suspect");
      st.core->peer_unreachable(gid, now_ms());
    }
  }
  st.authed.erase(source.node());
  st.hellos.erase(source.node());
}

/// True if the current message comes from the peer authenticated as `from`
/// (else see hold_unproven).
bool from_authed_peer(coord_ptr self, uint32_t from) {
  auto& st = self->state;
  auto sender = self->current_sender();
  auto it = sender ? st.authed.find(sender->node()) : st.authed.end();
  return it != st.authed.end() && it->second == from;
}

/// Logs a message the gossip core refused.
template <class Result>
void log_bad(coord_ptr self, uint32_t from, const Result& res) {
  if (!res)
    log_line(self, "bad:" + std::to_string(from),
             "dropped a bad message from " + self->state.core->name_of(from) + ": " +
                 res.message());
}

/// Answers held forwarded commands as not run (they were never sent).
void fail_fwds(coord_ptr self, std::deque<held_fwd> fwds) {
  auto core = self->state.core;
  for (auto& f : fwds)
    for (auto t : f.tokens)
      core->on_exec_reply(t, false, {});
}

/// Takes `p`'s held forwarded commands out.
std::deque<held_fwd> take_fwds(peer_conn& p) {
  std::deque<held_fwd> out;
  out.swap(p.fwds);
  p.fwd_tokens = 0;
  return out;
}

/// Sends forwarded commands to the proven coordinator `hdl`; the answers go
/// to cluster_core::on_exec_reply. What is past its deadline is not sent.
void request_fwd(coord_ptr self, const caf::actor& hdl, held_fwd f) {
  auto core = self->state.core;
  auto now = now_ms();
  if (now >= f.deadline) {
    for (auto t : f.tokens)
      core->on_exec_reply(t, false, {});
    return;
  }
  auto left = f.deadline - now;
  auto timeout = std::chrono::milliseconds(left);
  if (!f.batch) {
    auto token = f.tokens.front();
    self->request(hdl, timeout, exec_atom::value, core->self_id(), std::move(f.bytes.front()))
        .then([core, token](std::string& reply) { core->on_exec_reply(token, true, reply); },
              [core, token, left](caf::error& e) {
                core->on_exec_reply(token, false, unanswered(e, left));
              });
    return;
  }
  self->request(hdl, timeout, exec_atom::value, core->self_id(), std::move(f.bytes))
      .then(
          [core, tokens = f.tokens](std::vector<std::string>& replies) {
            for (size_t i = 0; i < tokens.size(); ++i)
              core->on_exec_reply(tokens[i], i < replies.size(),
                                  i < replies.size() ? std::move(replies[i]) : std::string{});
          },
          [core, tokens = f.tokens, left](caf::error& e) {
            auto why = unanswered(e, left);
            for (auto t : tokens)
              core->on_exec_reply(t, false, why);
          });
}

/// Sends what waited for `gid` while it had no authenticated handle: its
/// gossip queue, then the forwarded commands held for its handshake.
void flush_queue(coord_ptr self, gossip::node_id gid) {
  auto& st = self->state;
  auto it = st.peers.find(gid);
  if (it == st.peers.end() || !it->second.hdl)
    return;
  auto& p = it->second;
  while (!p.queue.empty()) {
    caf::send_as(caf::actor_cast<caf::actor>(self), p.hdl, gossip_atom::value, st.core->self_id(),
                 std::move(p.queue.front()));
    p.queue.pop_front();
  }
  auto hdl = p.hdl;
  for (auto& f : take_fwds(p))
    request_fwd(self, hdl, std::move(f));
}

/// Forwarded commands whose handshake did not end within their deadline.
void expire_fwds(coord_ptr self, uint64_t now) {
  std::deque<held_fwd> late;
  for (auto& [gid, p] : self->state.peers) {
    for (auto it = p.fwds.begin(); it != p.fwds.end();) {
      if (now < it->deadline) {
        ++it;
        continue;
      }
      p.fwd_tokens -= it->tokens.size();
      late.push_back(std::move(*it));
      it = p.fwds.erase(it);
    }
  }
  fail_fwds(self, std::move(late));
}

/// `answering_auth`: this node is the handshake's answering side, inside the
/// handler of the peer's auth. The peer trusts us only once our ok reaches
/// it, so the queue goes out after that reply (a message to ourselves is
/// handled after the reply left; one connection keeps the order): sent from
/// the handler, it overtook the ok and the peer dropped all of it as coming
/// from an unauthenticated peer (every restarted member lost what its peers
/// had queued for it, fetch requests of catching-up reads included).
/// `caps`: what the peer announced in the handshake (cluster_wire.hpp).
void on_authed(coord_ptr self, gossip::node_id gid, const std::string& id, caf::actor coord,
               bool answering_auth, uint32_t caps) {
  auto& st = self->state;
  st.authed[coord.node()] = gid;
  auto& p = st.peers[gid];
  bool fresh = p.hdl != coord;
  p.hdl = coord;
  p.caps = caps;
  p.connecting = false;
  if (fresh) {
    self->monitor(coord);
    log_line(self, "connected:" + id, "connected to " + id + " (" + to_string(coord.node()) + ")");
  }
  if (answering_auth)
    self->send(self, flushq_atom::value, gid);
  else
    flush_queue(self, gid);
}

/// Runs the handshake with the coordinator `coord` (reached at `where`):
/// hello, the peer's proof of the secret, ours, its ok. `done(gid)` runs on
/// success (after on_authed), `failed(why)` otherwise.
template <class Done, class Failed>
void handshake_with(coord_ptr self, caf::actor coord, const std::string& where, Done done,
                    Failed failed) {
  auto& s = self->state.core->settings();
  auto timeout = std::chrono::milliseconds(s.request_timeout_ms);
  auto on_err = [self, failed, where](caf::error& err) mutable {
    failed(where + ": " + self->system().render(err));
  };
  auto nonce_a = random_nonce();
  self->request(coord, timeout, hello_atom::value, s.name, addr_with_caps(own_addr(s), own_caps),
                nonce_a)
      .then(
          [=](std::string& id_b, std::string& addr_b, std::string& nonce_b,
              std::string& mb) mutable {
            auto& s = self->state.core->settings();
            if (id_b.empty() || id_b == s.name) {
              failed(where + ": peer has " + (id_b.empty() ? "no" : "our own") + " node id");
              return;
            }
            auto expect = cluster_mac(s.secret, "kura-b|" + nonce_a + "|" + nonce_b + "|" + id_b +
                                                    "|" + s.name);
            if (!s.secret.empty() && !mac_equal(expect, mb)) {
              log_line(self, "refused",
                       "refused peer " + id_b + " at " + where +
                           ": it does not know the cluster secret");
              failed(where + ": cluster secret mismatch");
              return;
            }
            auto ma = mac_a(s.secret, nonce_b, nonce_a, s.name, id_b);
            self->request(coord, timeout, auth_atom::value, ma)
                .then(
                    [=](caf::ok_atom) mutable {
                      auto gid = gossip_id_of(id_b);
                      on_authed(self, gid, id_b, coord, false, caps_of_addr(addr_b));
                      done(gid);
                    },
                    on_err);
          },
          on_err);
}

/// Connects to host:port, fetches the coordinator and runs the handshake.
/// `done(gid)` runs on success, `failed(why)` otherwise.
template <class Done, class Failed>
void handshake(coord_ptr self, const std::string& host, uint16_t port, Done done, Failed failed) {
  auto& s = self->state.core->settings();
  auto timeout = std::chrono::milliseconds(s.request_timeout_ms);
  auto mm = peer_connector(self->system()); // TLS when configured (actors/peer_link.hpp)
  auto where = host + ":" + std::to_string(port);
  auto on_err = [self, failed, where](caf::error& err) mutable {
    failed(where + ": " + self->system().render(err));
  };
  self->request(mm, timeout, caf::connect_atom::value, host, port)
      .then(
          [=](const caf::node_id&, caf::strong_actor_ptr& ptr,
              const std::set<std::string>&) mutable {
            if (!ptr) {
              failed(where + ": nothing published on that port");
              return;
            }
            auto ops = caf::actor_cast<caf::actor>(std::move(ptr));
            self->request(ops, timeout, coord_atom::value)
                .then(
                    [=](caf::actor coord) mutable {
                      if (!coord) {
                        failed(where + ": that node is not in a cluster");
                        return;
                      }
                      handshake_with(self, coord, where, done, failed);
                    },
                    on_err);
          },
          on_err);
}

/// The CAF node `node` proved itself as member `gid`: handles what
/// hold_unproven kept for it (what claimed another sender is dropped).
void release_unproven(coord_ptr self, const caf::node_id& node, gossip::node_id gid) {
  auto& st = self->state;
  auto it = st.unproven.find(node);
  if (it == st.unproven.end())
    return;
  auto held = std::move(it->second.msgs);
  st.unproven.erase(it);
  for (auto& h : held) {
    if (h.from != gid)
      log_line(self, "stranger",
               "dropped cluster messages from " + st.core->name_of(gid) +
                   " that claimed another sender");
    if (h.exec)
      h.exec(h.from == gid, h.msgs);
    else if (h.from == gid)
      log_bad(self, h.from, st.core->on_messages(h.from, h.msgs, now_ms()));
  }
}

/// A message from a peer this node does not trust (any more). A member whose
/// link dropped while it was frozen (SIGSTOP, a partition) sends on as soon
/// as it resumes, before either side has run a new handshake; this node
/// dropped the link's trust with the link (the down message), so those
/// messages, a catching-up read's fetches among them, used to be dropped
/// and the read answered -TRYAGAIN after request-timeout. Now they wait
/// (at most max_unproven_bytes per peer, 4 times that in all) while this node runs the handshake
/// with the sender's coordinator; they are handled once it proves the
/// secret, and dropped and logged if it does not (then the peer's messages
/// are dropped for unproven_retry_ms before another try). `exec` set: a
/// forwarded command (its bytes in `msgs`), held the same way in the same
/// order: exec(true) runs it once the sender proved itself as `from`,
/// exec(false) refuses it. Before session 17 it was refused at once, and a
/// member that resumed after a SIGSTOP lost the first command it forwarded
/// (seen with middleman.workers=0, catch_up_test).
/// `sender`: the message's sender when the handler took it already (a
/// response promise takes it out of the current message); else read here.
void hold_unproven(coord_ptr self, uint32_t from, std::vector<std::string> msgs,
                   held_exec exec = {}, caf::strong_actor_ptr sender = nullptr) {
  auto& st = self->state;
  if (!sender)
    sender = self->current_sender();
  auto refuse = [&exec, &msgs] {
    if (exec)
      exec(false, msgs);
  };
  if (!sender) {
    log_line(self, "stranger", "dropped cluster messages from an unauthenticated peer (anonymous)");
    return refuse();
  }
  auto node = sender->node();
  auto who = to_string(node);
  auto now = now_ms();
  if (!st.unproven.count(node)) {
    // Strangers come with a new CAF node id per connection: forget those
    // whose refusal ran out, and keep at most max_unproven_peers.
    for (auto it = st.unproven.begin(); it != st.unproven.end();)
      it = !it->second.proving && now >= it->second.refused_until ? st.unproven.erase(it)
                                                                  : std::next(it);
    if (st.unproven.size() >= max_unproven_peers) {
      log_line(self, "stranger",
               "dropped cluster messages from an unauthenticated peer " + who +
                   " (too many peers wait for their handshake)");
      return refuse();
    }
  }
  auto& u = st.unproven[node];
  if (now < u.refused_until) {
    log_line(self, "stranger", "dropped cluster messages from an unauthenticated peer " + who);
    return refuse();
  }
  size_t bytes = 0;
  for (auto& m : msgs)
    bytes += m.size();
  size_t all = 0;
  for (auto& [n, other] : st.unproven)
    all += other.bytes;
  if (u.bytes + bytes > max_unproven_bytes || all + bytes > 4 * max_unproven_bytes) {
    log_line(self, "stranger",
             "dropped cluster messages from an unauthenticated peer " + who + " (more than " +
                 std::to_string(max_unproven_bytes) + " bytes wait for its handshake)");
    refuse();
  } else if (!msgs.empty() || exec) {
    u.bytes += bytes;
    u.msgs.push_back(unproven_msg{from, std::move(msgs), std::move(exec)});
  }
  if (u.proving)
    return;
  u.proving = true;
  handshake_with(
      self, caf::actor_cast<caf::actor>(sender), who,
      [self, node](gossip::node_id gid) { release_unproven(self, node, gid); },
      [self, node, who](const std::string& why) {
        // Another handshake with the same node (its own dial, answered
        // here) may have proven it meanwhile: then this one was redundant
        // and what it held is released, not refused.
        if (auto a = self->state.authed.find(node); a != self->state.authed.end())
          return release_unproven(self, node, a->second);
        auto& u = self->state.unproven[node];
        auto held = std::move(u.msgs);
        u.msgs.clear();
        u.bytes = 0;
        u.proving = false;
        u.refused_until = now_ms() + unproven_retry_ms;
        log_line(self, "stranger",
                 "dropped cluster messages from an unauthenticated peer " + who + ": " + why);
        for (auto& h : held)
          if (h.exec)
            h.exec(false, h.msgs);
      });
}

/// Runs a forwarded command of the member `from` (authenticated); the reply
/// goes to `rp`.
void run_exec(coord_ptr self, uint32_t from, const std::string& bytes,
              caf::typed_response_promise<std::string> rp) {
  auto& st = self->state;
  auto env = decode_envelope(bytes);
  result<exec_request> req =
      env && env->type == static_cast<uint32_t>(cluster_msg_type::exec)
          ? from_msgpack<exec_request>(env->payload)
          : result<exec_request>(error{errc::decode_error, "not an exec request"});
  if (!req || req->args.empty() || !st.core->settings().exec || !st.core->ready()) {
    log_line(self, "badexec:" + std::to_string(from),
             "dropped a bad forwarded command from " + st.core->name_of(from));
    rp.deliver(caf::make_error(caf::sec::invalid_argument, "bad exec request"));
    return;
  }
  if (too_late(*req)) {
    rp.deliver(std::string(late_reply));
    return;
  }
  st.core->exec_deadline_ms = req->deadline_ms;
  st.core->exec_tag_versions = req->versions;
  st.core->settings().exec(*st.core, std::move(req->args),
                           [rp](std::string reply) mutable { rp.deliver(std::move(reply)); });
  st.core->exec_deadline_ms = 0;
  st.core->exec_tag_versions = false;
}

/// Runs a pipeline's forwarded commands of the member `from` (authenticated)
/// in order; the replies go to `rp` together.
void run_exec_batch(coord_ptr self, uint32_t from, std::vector<std::string>& batch,
                    caf::response_promise rp) {
  auto& st = self->state;
  if (!st.core->settings().exec || !st.core->ready() || batch.empty()) {
    rp.deliver(caf::make_error(caf::sec::invalid_argument, "bad exec request"));
    return;
  }
  struct pending {
    std::vector<std::string> replies;
    size_t left = 0;
    caf::response_promise rp;
  };
  auto p = std::make_shared<pending>();
  p->replies.resize(batch.size());
  p->left = batch.size();
  p->rp = std::move(rp);
  auto done = [p](size_t i, std::string reply) {
    p->replies[i] = std::move(reply);
    if (--p->left == 0)
      p->rp.deliver(std::move(p->replies));
  };
  for (size_t i = 0; i < batch.size(); ++i) {
    auto env = decode_envelope(batch[i]);
    result<exec_request> req =
        env && env->type == static_cast<uint32_t>(cluster_msg_type::exec)
            ? from_msgpack<exec_request>(env->payload)
            : result<exec_request>(error{errc::decode_error, "not an exec request"});
    if (!req || req->args.empty()) {
      log_line(self, "badexec:" + std::to_string(from),
               "dropped a bad forwarded command from " + st.core->name_of(from));
      done(i, "-ERR bad forwarded command\r\n");
      continue;
    }
    if (too_late(*req)) {
      done(i, late_reply);
      continue;
    }
    st.core->exec_deadline_ms = req->deadline_ms;
    st.core->exec_tag_versions = req->versions;
    st.core->settings().exec(*st.core, std::move(req->args),
                             [done, i](std::string reply) { done(i, std::move(reply)); });
    st.core->exec_deadline_ms = 0;
    st.core->exec_tag_versions = false;
  }
}

/// Whether a handshake with member `gid` runs: our dial, its dial that
/// this node answers (a hello of it waits for its auth), or one this node
/// started to prove a sender claiming to be it (hold_unproven).
bool handshake_in_flight(coord_ptr self, gossip::node_id gid) {
  auto& st = self->state;
  if (auto it = st.peers.find(gid); it != st.peers.end() && it->second.connecting)
    return true;
  for (auto& [node, q] : st.hellos)
    for (auto& h : q)
      if (gossip_id_of(h.id) == gid)
        return true;
  for (auto& [node, u] : st.unproven)
    if (u.proving)
      for (auto& m : u.msgs)
        if (m.from == gid)
          return true;
  return false;
}

void connect_peer(coord_ptr self, gossip::node_id gid) {
  auto& st = self->state;
  auto& p = st.peers[gid];
  auto now = now_ms();
  if (p.hdl || p.connecting || now < p.next_attempt)
    return;
  std::string name, hp, host;
  uint16_t port = 0;
  split_member_addr(st.core->addr_of(gid), name, hp);
  if (!split_host_port(hp, host, port))
    return; // never heard of it yet: gossip will tell us
  p.connecting = true;
  p.next_attempt = now + std::min<uint64_t>(st.core->settings().heartbeat_ms, 1000);
  handshake(
      self, host, port,
      [self, gid, name](gossip::node_id got) {
        if (got == gid)
          return;
        log_line(self, "mismatch", "expected " + name + " but found another node at its address");
        auto& p = self->state.peers[gid];
        p.connecting = false;
        if (!p.hdl && !handshake_in_flight(self, gid))
          fail_fwds(self, take_fwds(p));
      },
      [self, gid](const std::string& why) {
        auto& p = self->state.peers[gid];
        p.connecting = false;
        if (p.hdl)
          return;        // a handshake of the peer's own dial proved it meanwhile
        p.queue.clear(); // gossip retries what matters
        log_line(self, "connect:" + std::to_string(gid), "cannot reach peer " + why);
        if (!handshake_in_flight(self, gid))
          fail_fwds(self, take_fwds(p));
      });
}

/// Sends forwarded commands to `to` once it is proven: now when it is,
/// else held (in order, bounded) while a handshake with it runs (ours,
/// started here if none runs, or its own dial that this node answers); they
/// go out when it ends well and are answered as not run when it fails or
/// request-timeout passes first. Before session 18 they failed at once when
/// the handshake had not ended yet, and a command forwarded by a member that
/// had just learnt its owner ran at the next replica instead
/// (tracking_cluster_test, session 17).
void forward_to(coord_ptr self, gossip::node_id to, held_fwd f) {
  auto& st = self->state;
  auto& p = st.peers[to];
  if (p.hdl)
    return request_fwd(self, p.hdl, std::move(f));
  if (!handshake_in_flight(self, to))
    connect_peer(self, to);
  if (!handshake_in_flight(self, to) || p.fwd_tokens + f.tokens.size() > max_held_fwds_per_peer) {
    std::deque<held_fwd> now;
    now.push_back(std::move(f));
    return fail_fwds(self, std::move(now));
  }
  p.fwd_tokens += f.tokens.size();
  p.fwds.push_back(std::move(f));
}

void try_seeds(coord_ptr self) {
  auto& st = self->state;
  auto now = now_ms();
  for (size_t i = 0; i < st.seeds.size(); ++i) {
    auto& sd = st.seeds[i];
    if (sd.gid != gossip::no_node || sd.connecting || now < sd.next_attempt)
      continue;
    sd.connecting = true;
    sd.next_attempt = now + std::min<uint64_t>(st.core->settings().heartbeat_ms, 1000);
    handshake(
        self, sd.host, sd.port,
        [self, i](gossip::node_id gid) {
          auto& st = self->state;
          st.seeds[i].gid = gid;
          st.seeds[i].connecting = false;
          if (st.alone) {
            st.alone = false;
            st.core->join_via(gid, now_ms());
            std::cerr << "kura-node: cluster: seed " << st.seeds[i].host << ":" << st.seeds[i].port
                      << " answered; joining its cluster" << std::endl;
          } else if (!st.core->ready()) {
            std::vector<gossip::node_id> ids;
            for (auto& s : st.seeds)
              if (s.gid != gossip::no_node)
                ids.push_back(s.gid);
            st.core->start(now_ms(), std::move(ids), st.incarnation);
            std::cerr << "kura-node: cluster: joining through " << st.seeds[i].host << ":"
                      << st.seeds[i].port << std::endl;
          }
        },
        [self, i](const std::string& why) {
          self->state.seeds[i].connecting = false;
          log_line(self, "seed", "seed not reachable yet: " + why);
        });
  }
}

caf::behavior coordinator(coord_ptr self, std::shared_ptr<cluster_core> core,
                          uint64_t incarnation) {
  auto& st = self->state;
  st.core = std::move(core);
  st.incarnation = incarnation;
  st.started_ms = now_ms();
  auto& s = st.core->settings();
  for (auto& hp : s.seeds) {
    seed_state sd;
    if (!split_host_port(hp, sd.host, sd.port))
      continue;
    if ((sd.port == s.port &&
         (sd.host == s.host || sd.host == "127.0.0.1" || sd.host == "localhost")) ||
        hp == s.advertise)
      continue; // ourselves
    st.seeds.push_back(sd);
  }
  st.core->send_frames = [self](gossip::node_id to, std::string frames, size_t count) {
    send_frames_to(self, to, std::move(frames), count);
  };
  // Called from the RESP broker's context: pump once its event is done.
  st.core->schedule_flush = [self] {
    caf::anon_send(caf::actor_cast<caf::actor>(self), flush_atom::value);
  };
  // Called from the RESP broker's context: the request itself is made in ours.
  st.core->send_exec_batch = [self](gossip::node_id to, std::vector<std::string> bytes,
                                    std::vector<uint64_t> tokens) {
    auto deadline = now_ms() + self->state.core->settings().request_timeout_ms;
    forward_to(self, to, held_fwd{std::move(bytes), std::move(tokens), true, deadline});
  };
  st.core->send_exec = [self](gossip::node_id to, std::string bytes, uint64_t token) {
    caf::anon_send(caf::actor_cast<caf::actor>(self), fwd_atom::value, to, std::move(bytes), token);
  };
  if (st.seeds.empty()) {
    st.core->start(now_ms(), {}, incarnation);
    std::cerr << "kura-node: cluster: founded as " << s.name << std::endl;
  } else {
    try_seeds(self);
  }
  self->set_down_handler([self](caf::down_msg& dm) {
    drop_link(self, dm.source, "lost connection to ",
              " (" + self->system().render(dm.reason) + ")");
  });
  self->set_default_handler([self](caf::scheduled_actor*, caf::message_view& mv) {
    log_line(self, "unexpected",
             "dropped an unexpected message " + to_string(mv.content()).substr(0, 120));
    return caf::result<caf::message>{caf::sec::unexpected_message};
  });
  // An exception escaping a handler ends the coordinator (CAF's rule): say
  // which, so that a node that drops out of its cluster tells why.
  self->set_exception_handler([](caf::scheduled_actor*, std::exception_ptr& x) -> caf::error {
    try {
      std::rethrow_exception(x);
    } catch (const std::exception& e) {
      std::cerr << "kura-node: cluster: coordinator stopped by an exception: " << e.what()
                << std::endl;
    } catch (...) {
      std::cerr << "kura-node: cluster: coordinator stopped by an unknown exception" << std::endl;
    }
    return caf::sec::runtime_error;
  });
  // Commit what the store holds when the coordinator stops (runs on the
  // multiplexer thread, like every other use of the store).
  self->attach_functor([self, core = st.core](const caf::error& reason) {
    if (reason && reason != caf::exit_reason::user_shutdown && reason != caf::exit_reason::kill)
      std::cerr << "kura-node: cluster: coordinator ended: " << self->system().render(reason)
                << std::endl;
    core->flush_store();
  });
  self->send(self, tick_atom::value);
  return {
      [self](tick_atom) {
        auto& st = self->state;
        auto now = now_ms();
        auto& cs = st.core->settings();
        if (!st.core->ready() && st.incarnation > 1 &&
            now >= st.started_ms + 2 * cs.request_timeout_ms) {
          // A restart (not a first start) whose seeds do not answer: serve
          // what this node's disk holds as a cluster of one (reads only when
          // write-acks > 1) and keep dialing the seeds to merge back.
          for (auto& sd : st.seeds)
            sd.gid = gossip::no_node;
          st.alone = true;
          st.core->start(now, {}, st.incarnation);
          std::cerr << "kura-node: cluster: no seed answers; serving this node's data alone "
                       "until one does"
                    << std::endl;
        }
        if (!st.core->ready() || st.alone)
          try_seeds(self);
        expire_fwds(self, now);
        if (st.core->ready()) {
          st.core->tick(now);
          for (auto& [gid, p] : st.peers)
            if (!p.hdl && !p.queue.empty())
              connect_peer(self, gid);
        }
        self->delayed_send(self, std::chrono::milliseconds(st.core->settings().tick_ms),
                           tick_atom::value);
      },
      [self](hello_atom, std::string& id_a, std::string& addr_a, std::string& nonce_a)
          -> caf::result<std::string, std::string, std::string, std::string> {
        auto& st = self->state;
        auto& s = st.core->settings();
        auto sender = self->current_sender();
        if (!sender)
          return caf::make_error(caf::sec::invalid_argument, "anonymous hello");
        if (id_a.empty() || id_a.size() > 256 || nonce_a.size() != 32 || addr_a.size() > 300) {
          log_line(self, "badhello", "refused a malformed hello from " + to_string(sender->node()));
          return caf::make_error(caf::sec::invalid_argument, "malformed hello");
        }
        if (id_a == s.name) {
          log_line(self, "dupid",
                   "refused peer at " + std::string(addr_without_caps(addr_a)) +
                       ": it claims our own node id " + id_a);
          return caf::make_error(caf::sec::invalid_argument, "node id in use");
        }
        auto nonce_b = random_nonce();
        auto& q = st.hellos[sender->node()];
        q.push_back(pending_hello{id_a, addr_a, nonce_a, nonce_b});
        if (q.size() > max_pending_hellos)
          q.pop_front();
        // An older dialer ignores the answer's address (and so its caps).
        return {s.name, addr_with_caps(own_addr(s), own_caps), nonce_b,
                mac_b(s, nonce_a, nonce_b, id_a)};
      },
      [self](auth_atom, std::string& ma) -> caf::result<caf::ok_atom> {
        auto& st = self->state;
        auto& s = st.core->settings();
        auto sender = self->current_sender();
        if (!sender)
          return caf::make_error(caf::sec::invalid_argument, "anonymous auth");
        auto it = st.hellos.find(sender->node());
        if (it == st.hellos.end() || it->second.empty()) {
          log_line(self, "refused",
                   "refused an auth without hello from " + to_string(sender->node()));
          return caf::make_error(caf::sec::invalid_argument, "no hello");
        }
        // The auth answers one of the peer's hellos in flight (two when both
        // sides dial at once or it re-dials): the one whose nonces its mac
        // covers; with no secret every mac is empty and the oldest is taken.
        auto& q = it->second;
        auto match = std::find_if(q.begin(), q.end(), [&](const pending_hello& h) {
          return s.secret.empty() ||
                 mac_equal(mac_a(s.secret, h.nonce_b, h.nonce_a, h.id, s.name), ma);
        });
        if (match == q.end()) {
          auto h = std::move(q.front());
          q.pop_front();
          if (q.empty())
            st.hellos.erase(it);
          log_line(self, "refused",
                   "refused peer " + h.id + " at " + std::string(addr_without_caps(h.addr)) +
                       ": it does not know the cluster secret");
          return caf::make_error(caf::sec::invalid_argument, "cluster secret mismatch");
        }
        auto h = std::move(*match);
        q.erase(match);
        if (q.empty())
          st.hellos.erase(it);
        on_authed(self, gossip_id_of(h.id), h.id, caf::actor_cast<caf::actor>(sender), true,
                  caps_of_addr(h.addr));
        return caf::ok_atom::value;
      },
      [self](gossip_atom, uint32_t from, std::string& bytes) {
        if (from_authed_peer(self, from))
          log_bad(self, from, self->state.core->on_message(from, bytes, now_ms()));
        else
          hold_unproven(self, from, {std::move(bytes)});
      },
      [self](gossip_atom, uint32_t from, std::vector<std::string>& msgs) {
        if (from_authed_peer(self, from))
          log_bad(self, from, self->state.core->on_messages(from, msgs, now_ms()));
        else if (!msgs.empty())
          hold_unproven(self, from, std::move(msgs));
      },
      [self](gbatch_atom, uint32_t from, std::string& frames) {
        auto& st = self->state;
        if (!from_authed_peer(self, from)) {
          std::vector<std::string> msgs;
          auto n = for_each_frame(frames, [&](std::string_view m) { msgs.emplace_back(m); });
          if (!n)
            log_line(self, "stranger",
                     "dropped a corrupt batch from an unauthenticated peer (" +
                         n.err().to_string() + ")");
          else
            hold_unproven(self, from, std::move(msgs));
          return;
        }
        status why;
        if (st.core->on_frames(from, frames, now_ms(), why))
          return log_bad(self, from, why);
        log_line(self, "corrupt:" + std::to_string(from),
                 "dropped a corrupt batch from " + st.core->name_of(from) + " (" + why.message() +
                     "); dropping the link");
        if (auto sender = self->current_sender())
          drop_link(self, caf::actor_cast<caf::actor_addr>(sender), "dropped the link to ",
                    " (corrupt batch)");
      },
      [self](flush_atom) { self->state.core->pump(); },
      [self](flushq_atom, uint32_t gid) { flush_queue(self, gid); },
      [self](fwd_atom, uint32_t to, std::string& bytes, uint64_t token) {
        auto deadline = now_ms() + self->state.core->settings().request_timeout_ms;
        forward_to(self, to, held_fwd{{std::move(bytes)}, {token}, false, deadline});
      },
      [self](exec_atom, uint32_t from, std::string& bytes) -> caf::result<std::string> {
        bool authed = from_authed_peer(self, from);
        auto sender = self->current_sender(); // before the promise takes it
        auto rp = self->make_response_promise<std::string>();
        if (authed) {
          run_exec(self, from, bytes, rp);
        } else {
          hold_unproven(
              self, from, {std::move(bytes)},
              [self, from, rp](bool ok, std::vector<std::string>& held) mutable {
                if (ok)
                  run_exec(self, from, held.front(), rp);
                else
                  rp.deliver(caf::make_error(caf::sec::invalid_argument, "not authenticated"));
              },
              std::move(sender));
        }
        return rp;
      },
      [self](exec_atom, uint32_t from,
             std::vector<std::string>& batch) -> caf::result<std::vector<std::string>> {
        // A pipeline's forwarded commands: run in order, answered together.
        bool authed = from_authed_peer(self, from);
        auto sender = self->current_sender(); // before the promise takes it
        auto rp = self->make_response_promise();
        if (authed)
          run_exec_batch(self, from, batch, rp);
        else
          hold_unproven(
              self, from, std::move(batch),
              [self, from, rp](bool ok, std::vector<std::string>& held) mutable {
                if (ok)
                  run_exec_batch(self, from, held, rp);
                else
                  rp.deliver(caf::make_error(caf::sec::invalid_argument, "not authenticated"));
              },
              std::move(sender));
        return caf::delegated<std::vector<std::string>>{};
      },
      [self](members_atom) -> std::string {
        return seal(static_cast<uint32_t>(cluster_msg_type::members), self->state.core->members());
      },
      [self](leave_atom) -> caf::ok_atom {
        auto& st = self->state;
        if (!st.leaving) {
          st.leaving = true;
          st.core->leave(now_ms());
          st.core->flush_store();
        }
        return caf::ok_atom::value;
      },
      [self](leaveq_atom) -> caf::result<bool, uint64_t, uint64_t> {
        // (handed everything off, keys still held, keys handed off so far)
        auto& core = *self->state.core;
        auto m = core.move_report();
        return {core.leave_done() || !core.ready(), m.keys_held, m.keys};
      },
      [self](cop_atom, const std::string& op, std::vector<std::string>& args) -> std::string {
        auto& st = self->state;
        cluster_op_reply rep;
        auto seal_rep = [&] {
          rep.move = st.core->move_report();
          return seal(static_cast<uint32_t>(cluster_msg_type::op_reply), rep);
        };
        if (!st.core->ready() && op != "status") {
          rep.error = "not joined yet (waiting for a seed)";
        } else if (op == "status") {
          // rep.move says it all
        } else if (op == "ring") {
          rep.ring = st.core->ring_report();
          if (auto* c = st.core->core()) {
            rep.rf = c->current_ring().config().rf;
            rep.vnodes = c->current_ring().config().vnodes;
          }
        } else if (op == "slots") {
          rep.slot_stats = st.core->slot_stats();
        } else if (op == "tokens") {
          uint32_t n = 0;
          if (args.size() != 1 || args[0].empty() || args[0].size() > 5 ||
              args[0].find_first_not_of("0123456789") != std::string::npos ||
              (n = static_cast<uint32_t>(std::stoul(args[0]))) > 16384) {
            rep.error = "tokens needs a token count 0..16384 (0: the default)";
          } else if (st.leaving) {
            rep.error = "this node is leaving";
          } else {
            rep.error = st.core->set_tokens(n, now_ms());
            rep.note = "tokens " + std::to_string(n);
          }
        } else if (op == "leave") {
          if (!st.core->settings().on_leave) {
            rep.error = "this node cannot be told to leave (embedded)";
          } else if (st.leaving) {
            rep.note = "already leaving";
          } else {
            st.leaving = true;
            st.core->leave(now_ms());
            rep.note = "leaving: handing off every key it holds, then exiting";
            st.core->settings().on_leave(); // the process shuts down once handed off
          }
        } else if (op == "drain" || op == "undrain") {
          if (st.leaving) {
            rep.error = "this node is leaving";
          } else {
            bool on = op == "drain";
            bool was = st.core->core()->drained();
            rep.error = st.core->drain(on, now_ms());
            rep.note = was == on ? std::string(on ? "already drained" : "not drained")
                       : on      ? "draining: out of placement, handing every key off"
                                 : "undrained: back in placement, streaming its ranges in";
          }
        } else if (op == "join") {
          seed_state sd;
          if (args.size() != 1 || !split_host_port(args[0], sd.host, sd.port)) {
            rep.error = "join needs HOST:PORT (a cluster port of a member of the cluster to join)";
          } else if (st.leaving) {
            rep.error = "this node is leaving";
          } else if (st.core->ring_members().size() > 1 && !st.alone) {
            rep.error = "this node is already in a cluster of " +
                        std::to_string(st.core->ring_members().size()) +
                        " members (kura leave it first)";
          } else {
            st.seeds.push_back(sd);
            st.alone = true;
            try_seeds(self);
            rep.note = "joining through " + args[0];
          }
        } else if (!st.core->settings().local_op ||
                   !st.core->settings().local_op(*st.core, op, args, rep)) {
          rep.error = "unknown ring operation '" + op + "'";
        }
        return seal_rep();
      },
  };
}

} // namespace

cluster_handles spawn_cluster(caf::actor_system& sys, cluster_settings s, uint64_t incarnation,
                              std::unique_ptr<gossip::replica_store> store) {
  cluster_handles h;
  h.core = std::make_shared<cluster_core>(std::move(s), std::move(store));
  h.coordinator = sys.middleman().spawn_broker(coordinator, h.core, incarnation);
  return h;
}

void stop_cluster(caf::actor_system& sys, const cluster_handles& h, uint64_t wait_ms) {
  if (!h.coordinator)
    return;
  caf::scoped_actor self{sys};
  self->request(h.coordinator, std::chrono::milliseconds(1000), leave_atom::value)
      .receive([](caf::ok_atom) {}, [](caf::error&) {});
  // Keep ticking so `left` spreads (at least wait_ms) and every key held is
  // handed off to its new replicas (at most kura.cluster.leave-timeout).
  if (wait_ms > 0) {
    auto t0 = std::chrono::steady_clock::now();
    auto limit = std::max<uint64_t>(wait_ms, h.core->settings().leave_timeout_ms);
    bool done = false;
    uint64_t held = 0, moved = 0;
    for (;;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      auto elapsed = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                               std::chrono::steady_clock::now() - t0)
                                               .count());
      self->request(h.coordinator, std::chrono::milliseconds(1000), leaveq_atom::value)
          .receive(
              [&](bool d, uint64_t h_, uint64_t m_) {
                done = d;
                held = h_;
                moved = m_;
              },
              [&](caf::error&) { done = true; });
      if (done && elapsed >= wait_ms) {
        std::cerr << "kura-node: cluster: left the ring; " << moved << " keys handed off in "
                  << elapsed << " ms" << std::endl;
        break;
      }
      if (elapsed >= limit) {
        std::cerr << "kura-node: cluster: kura.cluster.leave-timeout reached with " << held
                  << " keys not confirmed by their new replicas; exiting (anti-entropy and "
                     "the other replicas cover them)"
                  << std::endl;
        break;
      }
    }
  }
  caf::anon_send_exit(h.coordinator, caf::exit_reason::user_shutdown);
}

} // namespace kura::actors
