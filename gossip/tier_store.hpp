// The replicated store over the real tiers: L3 (LMDB) and L4 (the archive),
// synchronously, for the cluster core (gossip::node) in one thread -- tests run
// kura-sim seeds on it, and an embedded single-threaded node can use it as is.
// (kura-node's tiers live in actors; its coordinator calls the same tier
// methods -- l3_lmdb::apply/get_versioned/collect/scan, archive::apply/
// held_version/scan_keys -- through them.)
//
// What it holds. L3 runs in cluster mode (l3_config::tombstones): deletes are
// tombstone records, expired entries become tombstones of their version, and
// every entry L3 demotes to L4 leaves a tombstone "floor" of its version
// behind. So L3 alone answers "what version do we hold" for every key, and the
// value of a demoted key is read from L4 when L4's copy has the floor's
// version. A newer write lands in L3 and removes L4's older copy (a key lives
// in one persistent tier).
//
// Digests and listing. An in-memory index (ring position, key) -> version,
// covering L3 and L4, is built at open by one pass over L3 (l3_lmdb::scan) and
// the L4 key iterator (archive::scan_keys), and kept up to date by apply() and
// erase(); it feeds the base class's incremental digests and the bucket
// listings, so neither a sync round nor a listing scans the tiers. Cost: about
// key bytes + 80 bytes of memory per key held.
//
// get()/for_each() read the tiers (an entry is read when it is shipped).
// Thread safety: not thread-safe; one owner.
#pragma once

#include "archive/archive.hpp"
#include "gossip/store.hpp"
#include "tiers/clock.hpp"
#include "tiers/l3_lmdb.hpp"

#include <map>
#include <memory>

namespace kura::gossip {

class tier_store final : public replica_store {
public:
  /// Opens L3 (forced into cluster mode) and, when `l4` is given, the archive
  /// below it (L3's eviction victims go there), then builds the index.
  static result<std::unique_ptr<tier_store>> open(l3_config l3,
                                                  std::optional<archive::archive_config> l4,
                                                  const clock& clk,
                                                  uint64_t ring_seed = ring_config{}.seed);
  /// The same over an archive opened by the caller (kura-node: its settings);
  /// `l4` may be null. The store must be the archive's only user.
  static result<std::unique_ptr<tier_store>> open(l3_config l3,
                                                  std::shared_ptr<archive::archive> l4,
                                                  const clock& clk,
                                                  uint64_t ring_seed = ring_config{}.seed);
  ~tier_store() override;

  bool apply(const entry& e) override;
  std::optional<entry> get(std::string_view key) const override;
  /// Removes the key from L3 and L4 (tombstone collection, handoff).
  bool erase(std::string_view key) override;
  size_t size() const override { return index_.size(); }
  void for_each(const visitor& f) const override;
  void for_each_in_buckets(uint16_t first, uint16_t last, const visitor& f) const override;
  void for_each_key_from(uint64_t from, const key_visitor& f) const override;

  /// Group commits that are due, bounded expiry sweeps (call on a timer).
  status tick(size_t sweep_budget = 256) override;
  /// Commits everything now.
  status flush() override;

  /// The last I/O error met by apply/erase/get (they answer false/nullopt).
  const std::optional<error>& last_error() const { return last_error_; }

  l3_lmdb& l3() { return *l3_; }
  archive::archive* l4() { return l4_.get(); }

private:
  tier_store(std::unique_ptr<l3_lmdb> l3, std::shared_ptr<archive::archive> l4, const clock& clk,
             uint64_t ring_seed);
  status build_index();
  std::optional<entry> read(std::string_view key, const version& want) const;

  std::unique_ptr<l3_lmdb> l3_;
  std::shared_ptr<archive::archive> l4_;
  const clock& clk_;
  struct meta {
    version ver;
    uint8_t flags = 0;
    uint64_t expiry_ms = 0;
  };
  std::map<std::pair<uint64_t, std::string>, meta> index_;
  mutable std::optional<error> last_error_;
};

} // namespace kura::gossip
