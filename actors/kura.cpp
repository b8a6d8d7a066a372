#include "actors/kura.hpp"

#include "actors/archive_actors.hpp"
#include "actors/store.hpp"
#include "gossip/ring.hpp"
#include "gossip/tier_store.hpp"
#include "tiers/clock.hpp"
#include "tiers/l3_lmdb.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <caf/openssl/manager.hpp>
#include <caf/openssl/publish.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

// kura-node's command execution for the commands peers forward to an
// embedded member, defined in node/cluster_embed.cpp (library kura_cluster,
// which makes every program linking it keep the definition). Weak: actors/
// may not depend on node/, and a program without kura_cluster has none.
extern "C" __attribute__((weak)) void kura_embedded_cluster_exec(kura::actors::exec_fn* out);

namespace kura::actors {

namespace {

class instance_impl final : public instance {
public:
  instance_impl(caf::actor_system& sys, store_handles h) : sys_(sys), h_(std::move(h)) {}
  ~instance_impl() override { stop(); }
  kura_actor handle() const override { return caf::actor_cast<kura_actor>(h_.broker); }
  std::shared_ptr<cluster_core> cluster() const override { return nullptr; }
  void stop() override {
    if (stopped_)
      return;
    stopped_ = true;
    stop_store(sys_, h_);
  }

private:
  caf::actor_system& sys_;
  store_handles h_;
  bool stopped_ = false;
};

bool read_file(const std::string& path, std::string& out) {
  std::ifstream f(path);
  if (!f)
    return false;
  std::stringstream ss;
  ss << f.rdbuf();
  out = ss.str();
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r' || out.back() == ' '))
    out.pop_back();
  return true;
}

std::string write_file(const std::string& path, const std::string& text) {
  auto tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << text << "\n";
    if (!f.flush())
      return "cannot write " + tmp;
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec)
    return "cannot write " + path + ": " + ec.message();
  return {};
}

// -- an embedded cluster member ------------------------------------------------

const char* cluster_down = "CLUSTERDOWN The cluster is not joined yet";

/// Runs `args` at the first of `cands` that answers (the key's live owner
/// first, then the other replicas), as kura-node does for commands run at the
/// owner: a replica that got the command but did not answer (it may have run
/// it) ends it with a TIMEOUT error unless it is safe to run twice.
void at_replicas(std::shared_ptr<cluster_core> core, std::vector<gossip::node_id> cands, size_t i,
                 std::vector<std::string> args, std::function<void(bool, std::string)> fn) {
  if (i >= cands.size())
    return fn(false, "CLUSTERDOWN No replica of the key answered");
  auto to = cands[i];
  auto copy = args;
  core->forward(to, std::move(copy),
                [core, cands = std::move(cands), i, args = std::move(args),
                 fn = std::move(fn)](bool ok, std::string r) mutable {
                  if (ok)
                    return fn(true, std::move(r));
                  if (!r.empty() && !rerun_safe(args)) // it may have run there
                    return fn(false, outcome_unknown(core->name_of(cands[i]), r));
                  at_replicas(std::move(core), std::move(cands), i + 1, std::move(args),
                              std::move(fn));
                });
}

/// A RESP reply as a kv_reply: an error reply's text, or `found` from the
/// integer (or the first integer of an array) being 1.
kv_reply from_resp(bool ok, const std::string& r) {
  kv_reply out;
  if (!ok || r.empty())
    out.error = ok ? "empty reply" : r;
  else if (r[0] == '-')
    out.error = r.substr(1, r.find("\r\n") - 1);
  else
    out.found = r.rfind(":1\r\n", 0) == 0 || r.rfind("*2\r\n:1\r\n", 0) == 0;
  return out;
}

/// The typed key/value interface of a cluster member: a broker (no sockets),
/// so it runs on the multiplexer thread with the coordinator and calls its
/// core directly, as kura-node's RESP broker does.
caf::behavior cluster_kv(caf::io::broker* self, std::shared_ptr<cluster_core> core) {
  using rp_t = caf::typed_response_promise<kv_reply>;
  auto not_ready = [] {
    kv_reply r;
    r.error = cluster_down;
    return r;
  };
  auto run_at_owner = [self, core](const std::string& key, std::vector<std::string> args) {
    auto rp = self->make_response_promise<kv_reply>();
    at_replicas(core, core->exec_candidates(key), 0, std::move(args),
                [rp](bool ok, std::string r) mutable { rp.deliver(from_resp(ok, r)); });
    return rp;
  };
  return {
      [=](kv_get_atom, const std::string& key) -> caf::result<kv_reply> {
        if (!core->ready())
          return not_ready();
        rp_t rp = self->make_response_promise<kv_reply>();
        core->read(key, [rp](const gossip::client_result& r) mutable {
          kv_reply out;
          if (!r.ok)
            out.error = read_failed(r.failure);
          else if (r.found && (r.e.flags & entry_flags::hash))
            out.error = "WRONGTYPE Operation against a key holding the wrong kind of value";
          else if (r.found)
            out = kv_reply{true, r.e.value, r.e.expiry_ms, {}};
          rp.deliver(std::move(out));
        });
        return rp;
      },
      [=](kv_set_atom, const std::string& key, const std::string& value,
          uint64_t ttl_ms) -> caf::result<kv_reply> {
        if (!core->ready())
          return not_ready();
        rp_t rp = self->make_response_promise<kv_reply>();
        uint64_t expiry = ttl_ms == 0 ? 0 : real_clock::instance().now_ms() + ttl_ms;
        core->write(key, value, expiry, false, [rp](const gossip::client_result& r) mutable {
          kv_reply out;
          out.found = r.ok;
          if (!r.ok)
            out.error =
                "NOREPLICAS Not enough replicas acknowledged the write (kura.cluster.write-acks)";
          rp.deliver(std::move(out));
        });
        return rp;
      },
      [=](kv_del_atom, const std::string& key) -> caf::result<kv_reply> {
        if (!core->ready())
          return not_ready();
        return run_at_owner(key, {"del", key});
      },
      [=](kv_expire_atom, const std::string& key, uint64_t ttl_ms) -> caf::result<kv_reply> {
        if (!core->ready())
          return not_ready();
        if (ttl_ms != 0)
          return run_at_owner(key, {"pexpire", key, std::to_string(ttl_ms)});
        // persist: "existed" is EXISTS's answer, in the same unit at the owner
        return run_at_owner(key, {"kura.node.exec", "0", "2", "exists", key, "2", "persist", key});
      },
      [=](kv_tier_atom, const std::string& key) -> kv_reply {
        auto e = core->local(key);
        bool here = e && !e->is_tombstone() && !e->expired(real_clock::instance().now_ms());
        if (!here)
          return kv_reply{false, "remote", 0, {}};
        // the tier that holds the value: L4 when L3 holds none (or a floor)
        auto where = core->core()->store().where(key);
        bool l3 = where.find("l3=value@") != std::string::npos;
        bool l4 =
            where.find(" l4=") != std::string::npos && where.find("l4=none") == std::string::npos;
        return kv_reply{true, !l3 && l4 ? "l4" : "l3", 0, {}};
      },
      [=](kv_flush_atom) -> caf::result<kv_reply> {
        if (!core->ready())
          return not_ready();
        rp_t rp = self->make_response_promise<kv_reply>();
        auto members = core->ring_members();
        auto left = std::make_shared<size_t>(members.size());
        auto failed = std::make_shared<std::string>();
        for (auto m : members)
          core->forward(m, {"kura.node.flush"}, [rp, left, failed](bool ok, std::string r) mutable {
            if (!ok || r.empty() || r[0] == '-')
              *failed = "CLUSTERDOWN A cluster member did not answer; try again";
            if (--*left == 0) {
              kv_reply out;
              out.found = failed->empty();
              out.error = *failed;
              rp.deliver(std::move(out));
            }
          });
        return rp;
      },
  };
}

/// What the cluster port publishes: peers ask it for the coordinator, `kura
/// members` for the membership (as kura-node's ops actor answers).
caf::behavior cluster_door(caf::event_based_actor* self, caf::actor coordinator) {
  auto members = [self, coordinator]() {
    auto rp = self->make_response_promise<std::string>();
    self->request(coordinator, std::chrono::seconds(10), members_atom::value)
        .then([rp](std::string& bytes) mutable { rp.deliver(std::move(bytes)); },
              [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
    return rp;
  };
  return {
      [=](coord_atom) { return coordinator; },
      [=](members_atom) { return members(); },
      [=](members_atom, const std::string&, const std::string&) { return members(); },
  };
}

class cluster_instance final : public instance {
public:
  cluster_instance(caf::actor_system& sys, cluster_handles h, l4_handles l4, caf::actor kv,
                   caf::actor door, uint16_t port, uint64_t linger_ms)
      : sys_(sys), h_(std::move(h)), l4_(std::move(l4)), kv_(std::move(kv)), door_(std::move(door)),
        port_(port), linger_ms_(linger_ms) {}
  ~cluster_instance() override { stop(); }
  kura_actor handle() const override { return caf::actor_cast<kura_actor>(kv_); }
  std::shared_ptr<cluster_core> cluster() const override { return h_.core; }
  void stop() override {
    if (stopped_)
      return;
    stopped_ = true;
    stop_cluster(sys_, h_, linger_ms_); // leaves, hands off; the store is flushed
    if (l4_.compactor)
      stop_l4(sys_, l4_); // after the store: L3's last victims are in
    if (sys_.has_openssl_manager())
      // (caf::openssl::unpublish does not compile in CAF 0.17.6)
      caf::anon_send(sys_.openssl_manager().actor_handle(), caf::close_atom::value, port_);
    else
      (void)sys_.middleman().unpublish(door_, port_);
    caf::anon_send_exit(kv_, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(door_, caf::exit_reason::user_shutdown);
  }

private:
  caf::actor_system& sys_;
  cluster_handles h_;
  l4_handles l4_;
  caf::actor kv_, door_;
  uint16_t port_;
  uint64_t linger_ms_;
  bool stopped_ = false;
};

/// The member's archive under data_dir/archive (null when disabled), from
/// kura-node's kura.archive.* settings (node/archive_node.cpp open_archive).
caf::expected<std::shared_ptr<archive::archive>> open_member_archive(const embedded_options& o) {
  auto fail = [](std::string why) { return caf::make_error(caf::sec::runtime_error, why); };
  if (!o.archive.enabled)
    return std::shared_ptr<archive::archive>{};
  archive::archive_config ac;
  ac.path = o.data_dir + "/archive";
  auto codec = archive::parse_codec(o.archive.codec);
  if (!codec)
    return fail("kura.archive.codec: " + codec.err().to_string());
  ac.codec = *codec;
  ac.level = o.archive.level >= 0 ? o.archive.level : ac.codec == archive::codec_id::lz4 ? 0 : 3;
  ac.max_bytes = o.archive.max_bytes;
  ac.segment_bytes = o.archive.segment_bytes;
  ac.ttl_days = o.archive.ttl_days;
  ac.index_memory_bytes = o.archive.index_memory;
  ac.compact_threshold = o.archive.compact_threshold;
  ac.lim.max_value_bytes = o.max_value_bytes;
  auto opened = archive::archive::open(ac, real_clock::instance());
  if (!opened)
    return fail("cannot open the archive in " + ac.path + ": " + opened.err().to_string());
  return std::shared_ptr<archive::archive>(std::move(*opened));
}

caf::expected<std::unique_ptr<instance>> spawn_cluster_member(caf::actor_system& sys,
                                                              embedded_options& opts) {
  auto& c = opts.cluster;
  auto fail = [](std::string why) { return caf::make_error(caf::sec::runtime_error, why); };
  if (opts.data_dir.empty())
    return fail("an embedded cluster member needs a data directory");
  if (c.port == 0)
    return fail("an embedded cluster member needs a cluster port");
  exec_fn exec = c.exec;
  if (!exec && kura_embedded_cluster_exec)
    kura_embedded_cluster_exec(&exec);
  if (!exec)
    return fail("an embedded cluster member runs the commands its peers forward with kura's "
                "command execution: link the library kura_cluster (or set cluster.exec)");
  std::error_code ec;
  std::filesystem::create_directories(opts.data_dir + "/l3", ec);
  if (ec)
    return fail("cannot create " + opts.data_dir + "/l3: " + ec.message());
  std::string id;
  uint64_t incarnation = 0;
  if (auto e = resolve_cluster_identity(opts.data_dir, c.node_id, id, incarnation); !e.empty())
    return fail(e);
  l3_config lc;
  lc.path = opts.data_dir + "/l3";
  lc.sync_mode = opts.l3_sync;
  lc.map_size = 1ull << 30;
  lc.lim.max_value_bytes = opts.max_value_bytes;
  lc.max_bytes = opts.l3_max_bytes;
  auto& clk = real_clock::instance();
  auto l4 = open_member_archive(opts);
  if (!l4)
    return l4.error();
  // the cluster's store (tombstones, version floors), commits off the serving thread
  auto store = gossip::tier_store::open(lc, *l4, clk, gossip::ring_config{}.seed, true);
  if (!store)
    return fail("cannot open L3 in " + lc.path + ": " + store.err().to_string());
  (*store)->set_read_cache(opts.memory_bytes); // the memory tier in front of cluster data
  l4_handles l4h;
  if (*l4) {
    // the compactor beside the store, as on kura-node: compaction, retention,
    // expiry sweeps; it shares the archive's jobs with the store
    auto gate = std::make_shared<archive::job_gate>();
    (*store)->set_job_gate(gate);
    l4_config l4c;
    l4c.compact_interval_ms = opts.archive.compact_interval_ms;
    l4c.compact_threshold = opts.archive.compact_threshold;
    l4c.compact_rate = opts.archive.compact_rate;
    l4h = spawn_l4(sys, *l4, l4c, clk, {}, gate);
    l4h.link.reset(); // no L3 actor hands it anything: L3's victims go through the store
  }
  cluster_settings s;
  s.name = id;
  s.host = c.host;
  s.port = c.port;
  s.seeds = c.seeds;
  s.replication_factor = c.replication_factor;
  s.write_acks = c.write_acks != 0 ? c.write_acks : std::min<uint32_t>(2, c.replication_factor);
  s.secret = c.secret;
  s.heartbeat_ms = c.heartbeat_ms;
  s.sync_ms = c.sync_ms;
  s.request_timeout_ms = c.request_timeout_ms;
  s.tick_ms = std::clamp<uint64_t>(c.heartbeat_ms / 10, 10, 100);
  s.near_cache = c.near_cache;
  s.exec = std::move(exec);
  auto h = spawn_cluster(sys, std::move(s), incarnation, std::move(*store));
  auto door = sys.spawn(cluster_door, h.coordinator);
  // TLS on cluster links when the application built its actor system with
  // caf::openssl::manager (as kura-node does with kura.cluster.tls)
  auto p = sys.has_openssl_manager() ? caf::openssl::publish(door, c.port, c.host.c_str(), true)
                                     : sys.middleman().publish(door, c.port, c.host.c_str(), true);
  if (!p) {
    caf::anon_send_exit(door, caf::exit_reason::user_shutdown);
    stop_cluster(sys, h, 0);
    if (l4h.compactor)
      stop_l4(sys, l4h);
    return fail("cannot listen for the cluster on " + c.host + ":" + std::to_string(c.port));
  }
  auto kv = sys.middleman().spawn_broker(cluster_kv, h.core);
  auto linger = std::clamp<uint64_t>(2 * c.heartbeat_ms, 200, 3000);
  return std::unique_ptr<instance>(new cluster_instance(
      sys, std::move(h), std::move(l4h), std::move(kv), std::move(door), c.port, linger));
}

} // namespace

void prepare_cluster_config(caf::actor_system_config& cfg, uint64_t heartbeat_ms) {
  auto& content = caf::content(cfg);
  // CAF-0.17.md §8.1: a connect whose handshake has not finished by the next
  // heartbeat tick fails, so the interval stays far above a loopback handshake.
  auto hb_ms = std::max<uint64_t>(500, heartbeat_ms / 2);
  if (!caf::get_if<caf::timespan>(&content, "middleman.heartbeat-interval") ||
      caf::get<caf::timespan>(content, "middleman.heartbeat-interval").count() == 0)
    cfg.set("middleman.heartbeat-interval", caf::timespan{std::chrono::milliseconds(hb_ms)});
  if (!caf::get_if<caf::timespan>(&content, "middleman.connection-timeout") ||
      caf::get<caf::timespan>(content, "middleman.connection-timeout").count() == 0)
    cfg.set("middleman.connection-timeout", caf::timespan{std::chrono::milliseconds(
                                                std::max<uint64_t>(4 * hb_ms, heartbeat_ms * 3))});
  // The cluster's write path crosses the network twice per write (owner ->
  // replica -> owner). With CAF's defaults each incoming BASP message is
  // deserialized by a middleman worker on the scheduler (a hop to another
  // thread and back to the multiplexer), and every such job wakes the
  // work-stealing workers, which then poll for ~25 ms (100 spins, then 500
  // polls 50 us apart) each. On a 2-core machine that cost 2-3x the CPU of
  // the write itself (bench/RESULTS.md, faces9 and cluster15):
  // --middleman.workers=0 alone cut the CPU per SET ~2x and per GET ~2x.
  // Not set here (an embedding application's own actors share the
  // scheduler): kura-node's cluster nodes get it by default
  // (node::set_cluster_transport_defaults, docs/cluster.md "Threads").
}

std::string resolve_cluster_identity(const std::string& data_dir, const std::string& configured,
                                     std::string& id, uint64_t& incarnation) {
  auto id_path = data_dir + "/cluster.id";
  auto inc_path = data_dir + "/cluster.incarnation";
  std::string recorded;
  bool have = read_file(id_path, recorded) && !recorded.empty();
  if (have && !configured.empty() && recorded != configured)
    return "data dir '" + data_dir + "' belongs to cluster node '" + recorded +
           "'; refusing to start as '" + configured +
           "' (start with --kura.cluster.node-id=" + recorded + " or use another data dir)";
  if (!configured.empty()) {
    id = configured;
  } else if (have) {
    id = recorded;
  } else {
    std::random_device rd;
    std::ostringstream os;
    os << "n-" << std::hex << rd() << rd();
    id = os.str();
  }
  if (!have)
    if (auto e = write_file(id_path, id); !e.empty())
      return e;
  std::string inc_text;
  uint64_t inc = 0;
  if (read_file(inc_path, inc_text) && !inc_text.empty() &&
      inc_text.find_first_not_of("0123456789") == std::string::npos && inc_text.size() < 19)
    inc = std::stoull(inc_text);
  incarnation = inc + 1;
  return write_file(inc_path, std::to_string(incarnation));
}

caf::expected<std::unique_ptr<instance>> spawn_kura(caf::actor_system& sys, embedded_options opts) {
  if (!opts.cluster.node_id.empty())
    return spawn_cluster_member(sys, opts);
  auto& clk = real_clock::instance();
  std::shared_ptr<l3_lmdb> db;
  if (!opts.data_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(opts.data_dir + "/l3", ec);
    if (ec)
      return caf::make_error(caf::sec::runtime_error,
                             "cannot create " + opts.data_dir + "/l3: " + ec.message());
    l3_config lc;
    lc.path = opts.data_dir + "/l3";
    lc.sync_mode = opts.l3_sync;
    lc.map_size = 1ull << 30;
    lc.lim.max_value_bytes = opts.max_value_bytes;
    auto r = l3_lmdb::open(lc, clk);
    if (!r)
      return caf::make_error(caf::sec::runtime_error, "cannot open L3: " + r.err().to_string());
    db = std::shared_ptr<l3_lmdb>(std::move(*r));
  }
  store_config sc;
  sc.ks.memory_bytes = opts.memory_bytes;
  sc.ks.shards = opts.shards;
  sc.ks.lim.max_value_bytes = opts.max_value_bytes;
  auto h = spawn_store(sys, sc, std::move(db), clk);
  return std::unique_ptr<instance>(new instance_impl(sys, std::move(h)));
}

struct blocking_client::impl {
  caf::scoped_actor self;
  kura_actor handle;
  std::chrono::milliseconds timeout;
  impl(caf::actor_system& sys, kura_actor h, std::chrono::milliseconds t)
      : self(sys), handle(std::move(h)), timeout(t) {}
  template <class... Ts>
  caf::expected<kv_reply> call(Ts&&... xs) {
    caf::expected<kv_reply> out{caf::sec::request_timeout};
    self->request(handle, timeout, std::forward<Ts>(xs)...)
        .receive([&](kv_reply& r) { out = std::move(r); }, [&](caf::error& e) { out = e; });
    if (out && !out->error.empty())
      return caf::make_error(caf::sec::runtime_error, out->error);
    return out;
  }
};

blocking_client::blocking_client(caf::actor_system& sys, kura_actor handle,
                                 std::chrono::milliseconds timeout)
    : impl_(std::make_unique<impl>(sys, std::move(handle), timeout)) {}

blocking_client::~blocking_client() = default;

caf::expected<std::optional<std::string>> blocking_client::get(const std::string& key) {
  auto r = impl_->call(kv_get_atom::value, key);
  if (!r)
    return r.error();
  if (!r->found)
    return std::optional<std::string>{};
  return std::optional<std::string>{std::move(r->value)};
}

caf::error blocking_client::set(const std::string& key, const std::string& value, uint64_t ttl_ms) {
  auto r = impl_->call(kv_set_atom::value, key, value, ttl_ms);
  return r ? caf::error{} : r.error();
}

caf::expected<bool> blocking_client::del(const std::string& key) {
  auto r = impl_->call(kv_del_atom::value, key);
  if (!r)
    return r.error();
  return r->found;
}

caf::expected<bool> blocking_client::expire(const std::string& key, uint64_t ttl_ms) {
  auto r = impl_->call(kv_expire_atom::value, key, ttl_ms);
  if (!r)
    return r.error();
  return r->found;
}

caf::expected<std::string> blocking_client::tier(const std::string& key) {
  auto r = impl_->call(kv_tier_atom::value, key);
  if (!r)
    return r.error();
  return std::move(r->value);
}

caf::error blocking_client::flush() {
  auto r = impl_->call(kv_flush_atom::value);
  return r ? caf::error{} : r.error();
}

} // namespace kura::actors
