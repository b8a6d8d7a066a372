// kura.retention.max-age below memory (actors/retention.hpp).
#include "actors/retention.hpp"

#include <iostream>
#include <vector>

namespace kura::actors {

void retention_sweep::step(l3_lmdb& db, l3_below* below, uint64_t now_ms, size_t budget) {
  if (!enabled() || budget == 0)
    return;
  std::vector<std::string> old;
  if (!in_l4_) {
    // scan_live: pending writes included, nothing committed for the listing
    auto r = db.scan_live(after_, budget, now_ms, [&](const entry& e) {
      if (!e.is_tombstone() && aged(e.ver, now_ms))
        old.push_back(e.key);
    });
    if (!r) {
      std::cerr << "kura-node: retention: L3 scan failed: " << r.err().to_string() << std::endl;
      return;
    }
    if (!old.empty()) {
      auto n = db.erase_keys(old);
      if (!n) {
        std::cerr << "kura-node: retention: L3 erase failed: " << n.err().to_string() << std::endl;
        return;
      }
      removed_l3_ += *n;
    }
    if (*r) {
      after_ = std::move(**r);
    } else {
      after_.clear();
      in_l4_ = below != nullptr;
      passes_ += in_l4_ ? 0 : 1;
    }
    return;
  }
  auto r = below->scan_keys(after_, budget, [&](const l3_below::key_info& k) {
    if (aged(k.ver, now_ms))
      old.push_back(k.key);
  });
  if (!r) {
    std::cerr << "kura-node: retention: L4 scan failed: " << r.err().to_string() << std::endl;
    return;
  }
  for (auto& k : old)
    below->erase(k);
  if (!old.empty())
    below->settle();
  removed_l4_ += old.size();
  if (*r) {
    after_ = std::move(**r);
  } else {
    after_.clear();
    in_l4_ = false;
    ++passes_;
  }
}

} // namespace kura::actors
