#include "node/cluster_faces.hpp"

#include "node/cluster_routing.hpp"
#include "node/command_util.hpp"
#include "node/resp_parser.hpp"
#include "tiers/clock.hpp"
#include "tiers/slot.hpp"

#include <openssl/sha.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>

namespace kura::node {

namespace {

using actors::cluster_core;
using gossip::member_state;
using gossip::node_id;
using gossip::ring;

constexpr uint32_t n_slots = 16384;

std::atomic<uint64_t> n_moved{0}, n_ask{0};

/// How a member is reached and what it is, as the faces show it.
struct face_node {
  node_id gid = gossip::no_node;
  std::string rid;   ///< Redis node id (40 hex)
  std::string ip;    ///< RESP host
  uint16_t port = 0; ///< RESP port (0: the member did not gossip one)
  uint16_t cport = 0;
  member_state state = member_state::alive;
  uint64_t inc = 0;
  bool self = false;
};

face_node node_of(const cluster_core& c, const gossip::member_info& m) {
  face_node n;
  n.gid = m.id;
  n.state = m.state;
  n.inc = m.inc;
  n.self = m.id == c.self_id();
  std::string name, hp, host;
  actors::split_member_addr(m.addr, name, hp);
  n.rid = redis_node_id(name.empty() ? std::to_string(m.id) : name);
  uint16_t port = 0;
  if (actors::split_host_port(hp, host, port))
    n.cport = port;
  n.ip = host;
  if (actors::split_host_port(actors::member_resp_addr(m.addr), host, port)) {
    n.ip = host;
    n.port = port;
  }
  return n;
}

/// The slot map of the current view, rebuilt when the ring or a member's
/// liveness changes (the signature), kept per core on this thread.
struct view_cache {
  const cluster_core* core = nullptr;
  uint64_t sig = 0;
  std::vector<slot_range> ranges;
  std::vector<uint32_t> range_of; ///< slot -> index into ranges
};

bool is_down(const gossip::node& n, node_id id) {
  auto& ms = n.members().members();
  auto it = ms.find(id);
  return it == ms.end() || it->second.state != member_state::alive;
}

const view_cache& current_view(const cluster_core& c) {
  static thread_local std::map<const cluster_core*, view_cache> caches;
  auto& v = caches[&c];
  auto* n = c.core();
  uint64_t sig = n ? n->current_ring().fingerprint() : 0;
  if (n)
    for (auto& [id, m] : n->members().members())
      if (m.state != member_state::alive)
        sig = (sig ^ (uint64_t{id} << 8 | static_cast<uint64_t>(m.state))) * 0x100000001b3ull;
  if (v.core == &c && v.sig == sig && (n == nullptr) == v.ranges.empty())
    return v;
  v.core = &c;
  v.sig = sig;
  v.ranges.clear();
  v.range_of.assign(n_slots, 0);
  if (n) {
    v.ranges = slot_ranges(n->current_ring(), [n](node_id id) { return is_down(*n, id); });
    for (uint32_t i = 0; i < v.ranges.size(); ++i)
      for (uint32_t s = v.ranges[i].first; s <= v.ranges[i].last; ++s)
        v.range_of[s] = i;
  }
  return v;
}

/// Every member that is not gone, by gossip id (self included).
std::map<node_id, face_node> known_nodes(const cluster_core& c) {
  std::map<node_id, face_node> out;
  if (auto* n = c.core())
    for (auto& [id, m] : n->members().members())
      if (m.state != member_state::left)
        out[id] = node_of(c, m);
  return out;
}

void put_node_entry(out_buffer& o, const face_node& n) {
  put_array_header(o, 4); // Redis 7: ip, port, id, networking metadata
  put_bulk(o, n.ip);
  put_int(o, n.port);
  put_bulk(o, n.rid);
  put_array_header(o, 0);
}

void cluster_slots(const cluster_core& c, out_buffer& o) {
  auto& v = current_view(c);
  auto nodes = known_nodes(c);
  put_array_header(o, v.ranges.size());
  for (auto& r : v.ranges) {
    put_array_header(o, 2 + r.nodes.size());
    put_int(o, r.first);
    put_int(o, r.last);
    for (auto id : r.nodes)
      put_node_entry(o, nodes[id]);
  }
}

const char* health_of(member_state s) {
  return s == member_state::alive ? "online" : "failed";
}

void cluster_shards(const cluster_core& c, int resp, out_buffer& o) {
  auto& v = current_view(c);
  auto nodes = known_nodes(c);
  // one shard per node list, in order of its first slot
  std::vector<std::pair<std::vector<node_id>, std::vector<const slot_range*>>> shards;
  for (auto& r : v.ranges) {
    auto it = std::find_if(shards.begin(), shards.end(),
                           [&](const auto& s) { return s.first == r.nodes; });
    if (it == shards.end())
      shards.push_back({r.nodes, {&r}});
    else
      it->second.push_back(&r);
  }
  put_array_header(o, shards.size());
  for (auto& [ids, rs] : shards) {
    put_map_header(o, 2, resp);
    put_bulk(o, "slots");
    put_array_header(o, 2 * rs.size());
    for (auto* r : rs) {
      put_int(o, r->first);
      put_int(o, r->last);
    }
    put_bulk(o, "nodes");
    put_array_header(o, ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
      auto& n = nodes[ids[i]];
      put_map_header(o, 7, resp);
      put_bulk(o, "id");
      put_bulk(o, n.rid);
      put_bulk(o, "port");
      put_int(o, n.port);
      put_bulk(o, "ip");
      put_bulk(o, n.ip);
      put_bulk(o, "endpoint");
      put_bulk(o, n.ip);
      put_bulk(o, "role");
      put_bulk(o, i == 0 ? "master" : "replica");
      put_bulk(o, "replication-offset");
      put_int(o, 0);
      put_bulk(o, "health");
      put_bulk(o, health_of(n.state));
    }
  }
}

std::string cluster_nodes_text(const cluster_core& c) {
  auto& v = current_view(c);
  auto now = real_clock::instance().now_ms();
  std::string out;
  for (auto& [id, n] : known_nodes(c)) {
    std::string flags = n.self ? "myself,master" : "master";
    if (n.state == member_state::suspect)
      flags += ",fail?";
    else if (n.state == member_state::dead)
      flags += ",fail";
    bool up = n.self || n.state == member_state::alive;
    out += n.rid + " " + n.ip + ":" + std::to_string(n.port) + "@" + std::to_string(n.cport) + " " +
           flags + " - 0 " + std::to_string(up ? now : 0) + " " + std::to_string(n.inc) + " " +
           (up ? "connected" : "disconnected");
    auto slots = owned_slots_text(v.ranges, id);
    if (!slots.empty())
      out += " " + slots;
    out += "\n";
  }
  return out;
}

std::string cluster_info_text(const cluster_core& c) {
  auto& v = current_view(c);
  auto* n = c.core();
  uint64_t ok = 0, pfail = 0, fail = 0, known = 0, alive = 0, size = 0;
  std::map<node_id, bool> serving;
  for (auto& r : v.ranges) {
    uint64_t cnt = r.last - r.first + 1u;
    auto st = is_down(*n, r.nodes[0]) ? n->members().info(r.nodes[0]) : std::nullopt;
    if (!st)
      ok += cnt;
    else if (st->state == member_state::suspect)
      pfail += cnt;
    else
      fail += cnt;
    serving[r.nodes[0]] = true;
  }
  size = serving.size();
  if (n)
    for (auto& [id, m] : n->members().members()) {
      known += m.state != member_state::left ? 1 : 0;
      alive += m.state == member_state::alive ? 1 : 0;
    }
  uint64_t assigned = ok + pfail + fail;
  // ok while every slot has a live primary and enough live nodes to
  // acknowledge a write (write-acks copies).
  bool state_ok = n && n->members().joined() && ok == n_slots && alive >= c.settings().write_acks;
  std::string r;
  auto kv = [&](const char* k, const std::string& val) {
    r += std::string(k) + ":" + val + "\r\n";
  };
  kv("cluster_state", state_ok ? "ok" : "fail");
  kv("cluster_slots_assigned", std::to_string(assigned));
  kv("cluster_slots_ok", std::to_string(ok));
  kv("cluster_slots_pfail", std::to_string(pfail));
  kv("cluster_slots_fail", std::to_string(fail));
  kv("cluster_known_nodes", std::to_string(known));
  kv("cluster_size", std::to_string(size));
  kv("cluster_current_epoch", std::to_string(n ? n->members().view_version() : 0));
  kv("cluster_my_epoch", std::to_string(n ? n->members().incarnation() : 0));
  kv("kura_replication_factor", std::to_string(c.settings().replication_factor));
  kv("kura_redirect", c.settings().redirect_moved ? "moved" : "proxy");
  return r;
}

/// Live keys of `slot` this node holds (any role), up to `max`.
template <class F>
void for_slot_keys(const cluster_core& c, uint32_t slot, F&& f) {
  auto* n = c.core();
  if (!n)
    return;
  auto now = real_clock::instance().now_ms();
  n->store().for_each_key_from(ring::slot_base(slot), [&](uint64_t pos, const entry& m) {
    if (ring::slot_of(pos) != slot)
      return false;
    if (m.is_tombstone() || m.expired(now))
      return true;
    return f(m.key);
  });
}

bool parse_slot(std::string_view s, int64_t& slot) {
  return parse_int64(s, slot) && slot >= 0 && slot < static_cast<int64_t>(n_slots);
}

void cluster_command(cluster_core& c, face_state& f, const std::vector<std::string_view>& a,
                     int resp, out_buffer& o) {
  if (a.size() < 2)
    return put_error(o, "ERR wrong number of arguments for 'cluster' command");
  auto sub = lower(a[1]);
  auto arity = [&](size_t n) {
    if (a.size() == n)
      return true;
    put_error(o, "ERR wrong number of arguments for 'cluster|" + sub + "' command");
    return false;
  };
  if (sub == "slots" || sub == "shards" || sub == "nodes") {
    if (!arity(2))
      return;
    f.aware = true;
    if (sub == "slots")
      return cluster_slots(c, o);
    if (sub == "shards")
      return cluster_shards(c, resp, o);
    return put_bulk(o, cluster_nodes_text(c));
  }
  if (sub == "info")
    return arity(2) ? put_bulk(o, cluster_info_text(c)) : void();
  if (sub == "myid")
    return arity(2) ? put_bulk(o, redis_node_id(c.settings().name)) : void();
  if (sub == "keyslot")
    return arity(3) ? put_int(o, kura::key_slot(a[2])) : void();
  if (sub == "countkeysinslot") {
    if (!arity(3))
      return;
    int64_t slot = 0;
    if (!parse_slot(a[2], slot))
      return put_error(o, "ERR Invalid slot");
    int64_t cnt = 0;
    for_slot_keys(c, static_cast<uint32_t>(slot), [&](const std::string&) {
      ++cnt;
      return true;
    });
    return put_int(o, cnt);
  }
  if (sub == "getkeysinslot") {
    if (!arity(4))
      return;
    int64_t slot = 0, max = 0;
    if (!parse_slot(a[2], slot) || !parse_int64(a[3], max) || max < 0)
      return put_error(o, "ERR Invalid slot or number of keys");
    std::vector<std::string> keys;
    if (max > 0)
      for_slot_keys(c, static_cast<uint32_t>(slot), [&](const std::string& k) {
        keys.push_back(k);
        return static_cast<int64_t>(keys.size()) < max;
      });
    put_array_header(o, keys.size());
    for (auto& k : keys)
      put_bulk(o, k);
    return;
  }
  if (sub == "help") {
    static const char* lines[] = {
        "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "COUNTKEYSINSLOT <slot>",
        "    Return the number of keys this node holds in <slot>.",
        "GETKEYSINSLOT <slot> <count>",
        "    Return up to <count> keys this node holds in <slot>.",
        "INFO",
        "    Return information about the cluster.",
        "KEYSLOT <key>",
        "    Return the hash slot for <key>.",
        "MYID",
        "    Return this node's id.",
        "NODES",
        "    Return the cluster's nodes and the slots each is primary of.",
        "SHARDS",
        "    Return the slot ranges with their primary and replicas, per shard.",
        "SLOTS",
        "    Return the slot ranges with their primary and replicas.",
        "HELP",
        "    Print this help.",
        "Slots are placed by kura's ring: use the kura CLI (members, ring) to operate it."};
    put_array_header(o, std::size(lines));
    for (auto* l : lines)
      put_status(o, l);
    return;
  }
  static const char* managed[] = {"addslots",   "addslotsrange",   "delslots",   "delslotsrange",
                                  "failover",   "forget",          "meet",       "replicate",
                                  "reset",      "setslot",         "flushslots", "bumpepoch",
                                  "saveconfig", "set-config-epoch"};
  for (auto* m : managed)
    if (sub == m)
      return put_error(o, "ERR CLUSTER " + std::string(a[1]) +
                              " is not supported: kura places slots on its ring by itself");
  put_error(o, "ERR unknown subcommand '" + std::string(a[1]) + "'. Try CLUSTER HELP.");
}

void face_command(cluster_core& c, face_state& f, const std::vector<std::string_view>& a, int resp,
                  out_buffer& o) {
  auto name = lower(a[0]);
  if (name == "cluster")
    return cluster_command(c, f, a, resp, o);
  if (a.size() != 1)
    return put_error(o, "ERR wrong number of arguments for '" + name + "' command");
  // READONLY/READWRITE: reads are served by every replica anyway; ASKING:
  // the next key command is served here, never redirected (after an -ASK)
  f.aware = true;
  if (name == "asking")
    f.asking = true;
  put_ok(o);
}

/// -ASK for a read this node would serve from its own copy of `slot` while
/// the slot is still streaming in: when none of `keys` has arrived yet, the
/// member it streams from (which holds them) answers, as a Redis node
/// migrating a slot sends a client on for the keys it no longer holds.
/// Empty when the read is served here.
std::string ask_redirect(cluster_core& c, const std::vector<std::string_view>& keys,
                         uint32_t slot) {
  auto* n = c.core();
  auto src = n->streaming_from(slot);
  if (src == gossip::no_node || src == c.self_id() || is_down(*n, src))
    return {};
  auto& st = n->store();
  for (auto k : keys)
    if (st.version_of(k))
      return {}; // here already (maybe newer than the source's copy)
  auto m = n->members().info(src);
  if (!m)
    return {};
  auto to = node_of(c, *m);
  if (to.port == 0)
    return {};
  return "ASK " + std::to_string(slot) + " " + to.ip + ":" + std::to_string(to.port);
}

/// A cluster-mode connection's DBSIZE, KEYS and RANDOMKEY: the keys this
/// node is the ring's primary of (node/cluster_routing.cpp's per-node part),
/// as a Redis Cluster node answers for its own keys. SCAN and FLUSHALL/FLUSHDB
/// stay cluster-wide: a client sends them to every node it believes is a
/// primary, and with kura's map (every node is a primary of some ranges and a
/// replica of others) clients such as redis-py mark some nodes replicas and
/// skip them; cluster-wide, SCAN still returns every key (maybe more than
/// once, which SCAN allows) and FLUSHALL flushes everything. False when
/// `name` is none of the three.
bool this_node_only(cluster_core& c, const std::string& name,
                    const std::vector<std::string_view>& a,
                    const std::function<void(out_buffer&&)>& done) {
  if (name != "dbsize" && name != "randomkey" && name != "keys")
    return false;
  if (a.size() != (name == "keys" ? 2u : 1u)) {
    out_buffer o;
    put_error(o, "ERR wrong number of arguments for '" + name + "' command");
    done(std::move(o));
    return true;
  }
  std::vector<std::string> args{"kura.node." + name};
  if (name == "keys")
    args.emplace_back(a[1]);
  exec_owned(c, std::move(args), [done](std::string r) { done(out_buffer(r.begin(), r.end())); });
  return true;
}

} // namespace

bool is_face_command(std::string_view name) {
  return ieq(name, "cluster") || ieq(name, "readonly") || ieq(name, "readwrite") ||
         ieq(name, "asking");
}

bool faces_first(cluster_core& c, const command_registry& reg, face_state& f,
                 const std::vector<std::string_view>& a, int resp,
                 const std::function<void(out_buffer&&)>& done) {
  if (is_face_command(a[0])) {
    out_buffer o;
    face_command(c, f, a, resp, o);
    done(std::move(o));
    return true;
  }
  if (!(f.aware || c.settings().redirect_moved) || !c.ready())
    return false;
  // ASKING holds for the one command after it (Redis clears it after any
  // command): that command is served or proxied here, never redirected.
  bool asking = f.asking;
  f.asking = false;
  auto name = lower(a[0]);
  if (name.rfind("kura.", 0) == 0)
    return false; // kura's own commands (KURA.OWNERS ...) answer anywhere
  if (this_node_only(c, name, a, done))
    return true;
  if (asking)
    return false;
  std::vector<std::string_view> keys;
  if (reg.keys_of(a, keys) != keys_status::ok || keys.empty())
    return false;
  auto slot = kura::key_slot(keys[0]);
  for (auto k : keys)
    if (kura::key_slot(k) != slot)
      return false; // keys of several slots: split and served here
  auto& v = current_view(c);
  if (v.ranges.empty())
    return false;
  auto& nodes = v.ranges[v.range_of[slot]].nodes;
  // kura serves reads from any replica's copy (plain clients too), so a
  // read for a slot this node replicates is served here, READONLY or not:
  // clients such as ioredis see a kura node as a master (it is the primary
  // of other slots) and never send it READONLY. Writes are served by the
  // primary. A read of keys still streaming in is sent on with -ASK.
  int id = reg.resolve(a);
  bool read = id >= 0 && (reg.spec(id).flags & cmd_flag::readonly) != 0;
  bool here = nodes[0] == c.self_id() ||
              (read && std::find(nodes.begin(), nodes.end(), c.self_id()) != nodes.end());
  if (here) {
    auto ask = read ? ask_redirect(c, keys, slot) : std::string();
    if (ask.empty())
      return false;
    n_ask.fetch_add(1, std::memory_order_relaxed);
    out_buffer o;
    put_error(o, ask);
    done(std::move(o));
    return true;
  }
  auto* n = c.core();
  auto m = n->members().info(nodes[0]);
  if (!m)
    return false;
  auto to = node_of(c, *m);
  if (to.port == 0)
    return false; // it never told us its RESP address: proxy instead
  n_moved.fetch_add(1, std::memory_order_relaxed);
  out_buffer o;
  put_error(o, "MOVED " + std::to_string(slot) + " " + to.ip + ":" + std::to_string(to.port));
  done(std::move(o));
  return true;
}

uint64_t moved_redirects() {
  return n_moved.load(std::memory_order_relaxed);
}

uint64_t ask_redirects() {
  return n_ask.load(std::memory_order_relaxed);
}

std::vector<slot_range> slot_ranges(const gossip::ring& r,
                                    const std::function<bool(gossip::node_id)>& down) {
  std::vector<slot_range> out;
  if (r.empty())
    return out;
  std::vector<node_id> v;
  for (uint32_t s = 0; s < n_slots; ++s) {
    auto* p = r.replicas_ptr(ring::slot_base(s));
    v.assign(p, p + r.width());
    std::stable_partition(v.begin(), v.end(), [&](node_id id) { return !down(id); });
    if (!out.empty() && out.back().nodes == v)
      out.back().last = static_cast<uint16_t>(s);
    else
      out.push_back(slot_range{static_cast<uint16_t>(s), static_cast<uint16_t>(s), v});
  }
  return out;
}

std::string redis_node_id(std::string_view name) {
  unsigned char md[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(name.data()), name.size(), md);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (auto b : md) {
    out += hex[b >> 4];
    out += hex[b & 15];
  }
  return out;
}

std::string owned_slots_text(const std::vector<slot_range>& ranges, gossip::node_id id) {
  std::string out;
  auto put = [&](uint32_t a, uint32_t b) {
    if (!out.empty())
      out += ' ';
    out += std::to_string(a);
    if (b != a)
      out += "-" + std::to_string(b);
  };
  bool open = false;
  uint32_t first = 0, last = 0;
  for (auto& r : ranges) {
    if (r.nodes.empty() || r.nodes[0] != id)
      continue;
    if (open && r.first == last + 1) {
      last = r.last;
      continue;
    }
    if (open)
      put(first, last);
    open = true;
    first = r.first;
    last = r.last;
  }
  if (open)
    put(first, last);
  return out;
}

} // namespace kura::node
