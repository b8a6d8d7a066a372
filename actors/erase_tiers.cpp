// The tiers' side of KURA.ERASE (actors/erase_tiers.hpp).
#include "actors/erase_tiers.hpp"

#include "actors/keyspace.hpp"

#include <memory>
#include <unordered_set>

namespace kura::actors {

std::function<bool(std::string_view)> erase_matcher(uint8_t mode,
                                                    const std::vector<std::string>& args,
                                                    const std::vector<std::string>& keys) {
  auto set = std::make_shared<std::unordered_set<std::string>>(keys.begin(), keys.end());
  auto globs = std::make_shared<std::vector<std::string>>();
  if (mode == erase_mode::keys)
    set->insert(args.begin(), args.end());
  if (mode == erase_mode::subject)
    for (auto& a : args) {
      if (a.size() > 1 && a[0] == 'g')
        globs->push_back(a.substr(1));
      else if (a.size() > 1 && a[0] == 'k')
        set->insert(a.substr(1));
    }
  std::string prefix = mode == erase_mode::prefix && !args.empty() ? args[0] : std::string{};
  bool by_prefix = mode == erase_mode::prefix;
  return [set, globs, prefix, by_prefix](std::string_view k) {
    if (by_prefix && k.substr(0, prefix.size()) == prefix)
      return true;
    for (auto& g : *globs)
      if (glob_match(g, k))
        return true;
    return set->count(std::string{k}) != 0;
  };
}

std::tuple<uint64_t, uint64_t, std::vector<std::string>, std::string>
erase_in_l3(l3_lmdb& db, l3_below* below, uint8_t mode, const std::vector<std::string>& args) {
  auto match = erase_matcher(mode, args);
  std::vector<std::string> found;
  uint64_t n3 = 0, n4 = 0;
  // L3: every record, tombstones and expired ones included
  if (mode == erase_mode::keys) {
    for (auto& k : args) {
      auto held = db.get_versioned(k);
      if (held && *held)
        found.push_back(k);
    }
    auto r = db.erase_keys(args);
    if (!r)
      return {0, 0, {}, "L3: " + r.err().to_string()};
    n3 = *r;
  } else { // prefix, subject: a scan
    std::string after;
    while (true) {
      auto r = db.scan(after, 4096, [&](const entry& e) {
        if (match(e.key))
          found.push_back(e.key);
      });
      if (!r)
        return {0, 0, {}, "L3: " + r.err().to_string()};
      if (!*r)
        break;
      after = std::move(**r);
    }
    auto r = db.erase_keys(found);
    if (!r)
      return {0, 0, {}, "L3: " + r.err().to_string()};
    n3 = *r;
  }
  // L4's index: its key iterator (expired entries included)
  std::vector<std::string> archived;
  if (below) {
    below->settle();
    std::string after;
    while (true) {
      auto r = below->scan_keys(after, 4096, [&](const l3_below::key_info& k) {
        if (match(k.key))
          archived.push_back(k.key);
      });
      if (!r)
        return {n3, 0, {}, "L4: " + r.err().to_string()};
      if (!*r)
        break;
      after = std::move(**r);
    }
    for (auto& k : archived)
      below->erase(k);
    below->settle();
    n4 = archived.size();
  }
  found.insert(found.end(), archived.begin(), archived.end());
  return {n3, n4, std::move(found), {}};
}

std::string finish_erase_in_l3(l3_lmdb& db, l3_below* below, const std::vector<std::string>& keys) {
  auto r = db.erase_keys(keys);
  if (!r)
    return "L3: " + r.err().to_string();
  if (below) {
    for (auto& k : keys)
      below->erase(k);
    below->settle();
  }
  if (auto st = db.compact_rewrite(); !st)
    return "L3: " + st.message();
  return {};
}

std::vector<std::string> erase_in_memory(store_core& core, uint8_t mode,
                                         const std::vector<std::string>& args) {
  std::vector<std::string> keys;
  if (mode != erase_mode::keys) {
    auto match = erase_matcher(mode, args);
    core.ks().memory_keys([&](std::string_view k) {
      if (match(k))
        keys.emplace_back(k);
    });
  } else {
    keys = args;
  }
  std::vector<std::string> erased; // the keys memory held
  for (auto& k : keys) {
    std::string_view tier = core.ks().tier_of(k);
    if (tier == "l1" || tier == "l2")
      erased.push_back(k);
    // erase() queues the L3 delete too (when L3 may hold the key)
    if (core.ks().erase(k))
      core.changed(&k);
  }
  core.flush_writes(true);
  return erased;
}

} // namespace kura::actors
