#include "node/cluster_exec.hpp"

#include "node/commands.hpp"
#include "tiers/clock.hpp"

#include <unordered_map>

namespace kura::node {

namespace {

/// The scratch keyspace's write-behind port: keeps the last write or delete
/// of every key while a run is on (clear() is the keyspace's own reset).
class recorder final : public actors::l3_port {
public:
  bool on = false;
  std::vector<std::string> order;
  std::unordered_map<std::string, std::optional<entry>> last;

  void write(const entry& e) override {
    if (on)
      note(e.key) = e;
  }
  void erase(std::string_view key) override {
    if (on)
      note(std::string(key)).reset();
  }
  void clear() override {}

  void reset() {
    order.clear();
    last.clear();
  }

private:
  std::optional<entry>& note(const std::string& key) {
    auto [it, fresh] = last.try_emplace(key);
    if (fresh)
      order.push_back(key);
    return it->second;
  }
};

actors::keyspace_config scratch_config() {
  actors::keyspace_config k;
  k.shards = 1;
  k.memory_bytes = 16ull << 20; // bigger values stay in the overlay
  k.filter_bits = 1ull << 12;
  k.lazy_expire_below = false; // a read must not record a delete to replicate
  return k;
}

} // namespace

struct cluster_exec::impl {
  recorder rec;
  actors::keyspace ks{scratch_config(), real_clock::instance(), &rec};
  node_facts facts;
  command_table table{ks, facts};
  session sess;
  /// What the current run staged (null between runs).
  const actors::staged_entries* staged = nullptr;

  /// Commands a script calls (and EXEC's queued ones) may only name keys the
  /// run staged: the script's declared KEYS (EXEC: every queued command's
  /// keys). Any other key may live on another node, and this node's scratch
  /// keyspace would answer it as absent; Redis Cluster refuses it too.
  bool keys_staged(const command_args& a, out_buffer& out) const {
    std::vector<std::string_view> keys;
    (void)table.registry().keys_of(a, keys);
    for (auto k : keys)
      if (staged->count(std::string(k)) == 0) {
        put_error(out, "ERR Script attempted to access a non local key in a cluster node: '" +
                           std::string(k) +
                           "' is not in KEYS (on a cluster, a script must declare every key it "
                           "uses, all in one slot)");
        return false;
      }
    return true;
  }
};

cluster_exec::cluster_exec() : impl_(std::make_unique<impl>()) {
  impl_->sess.authenticated = true;
  auto& st = impl_->table.state();
  st.run = [x = impl_.get(), inner = st.run](const command_args& a, session& s, out_buffer& out) {
    if (x->staged && !x->keys_staged(a, out))
      return;
    inner(a, s, out);
  };
}

cluster_exec::~cluster_exec() = default;

const command_registry& cluster_exec::registry() const {
  return impl_->table.registry();
}

void cluster_exec::run(const std::vector<std::vector<std::string>>& cmds,
                       actors::staged_entries& staged, out_buffer& out,
                       std::vector<change>& changes) {
  auto& x = *impl_;
  x.rec.reset();
  x.rec.on = true;
  x.ks.set_overlay(&staged);
  x.staged = &staged;
  command_args args;
  for (auto& c : cmds) {
    args.assign(c.begin(), c.end());
    x.table.execute(args, x.sess, out);
  }
  x.ks.set_overlay(nullptr);
  x.staged = nullptr;
  x.rec.on = false;
  x.ks.clear();
  if (x.sess.tx.active || !x.sess.tx.watched.empty()) { // a stray MULTI/WATCH in the commands
    x.sess.tx.discard();
    x.sess.tx.unwatch();
  }
  for (auto& k : x.rec.order)
    changes.push_back(change{k, std::move(x.rec.last[k])});
  x.rec.reset();
}

cluster_exec& cluster_executor() {
  static thread_local cluster_exec x;
  return x;
}

} // namespace kura::node
