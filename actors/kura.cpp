#include "actors/kura.hpp"

#include "actors/store.hpp"
#include "tiers/clock.hpp"
#include "tiers/l3_lmdb.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <filesystem>

namespace kura::actors {

namespace {

class instance_impl final : public instance {
public:
  instance_impl(caf::actor_system& sys, store_handles h) : sys_(sys), h_(std::move(h)) {}
  ~instance_impl() override { stop(); }
  kura_actor handle() const override { return caf::actor_cast<kura_actor>(h_.broker); }
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

} // namespace

caf::expected<std::unique_ptr<instance>> spawn_kura(caf::actor_system& sys, embedded_options opts) {
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
