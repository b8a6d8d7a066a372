// A flat open-addressing map from string keys to values, for the predictor's
// learning path (the key table, the tracked writes).
//
// Why not std::unordered_map: learning a sampled event is one or two lookups
// of a key the table mostly does not hold (a key space larger than the
// table), and a node-based map pays a pointer chase into an ~800-byte node
// per probe plus an allocation per insert; perf put ~70 % of the predictor
// thread's learning in those lookups and the heap growth behind them
// (bench/RESULTS.md, lead14 and predictor16).
//
// Layout: the entries live in one dense vector (key, value); the index is a
// power-of-two array of 8-byte slots {low 32 bits of the key's hash64, entry
// position}, linear probing, at most half full. A lookup hashes the key once
// (the caller passes the hash, so one hash serves several tables and the
// sketch), walks the index (one cache line for most probes) and touches an
// entry only when the 32 hash bits match. Erase is backward-shift deletion in
// the index and swap-with-last in the dense vector, so there are no
// tombstones and iteration is a walk over a vector. `replace` reuses an
// evicted entry's storage for a new key (its string's capacity included): a
// full table admits a key without an allocation.
//
// Iterators (entry pointers) stay valid until the next insert, erase,
// replace or clear. Iteration order is the dense order: deterministic for a
// given sequence of operations, not sorted.
// Thread safety: not thread-safe; owned by one predictor.
#pragma once

#include "tiers/hash.hpp"

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kura::predictor {

template <class V>
class flat_table {
public:
  using value_type = std::pair<std::string, V>;
  using iterator = value_type*;
  using const_iterator = const value_type*;

  /// The hash the table expects: hash64 of the key, unseeded.
  static uint64_t hash(std::string_view key) noexcept { return hash64(key); }

  /// Reserves room for `n` entries (no rehash, no reallocation below it).
  void reserve(size_t n) {
    entries_.reserve(n);
    hashes_.reserve(n);
    if (n * 2 > index_.size())
      rehash(n * 2);
  }

  size_t size() const noexcept { return entries_.size(); }
  bool empty() const noexcept { return entries_.empty(); }
  iterator begin() noexcept { return entries_.data(); }
  iterator end() noexcept { return entries_.data() + entries_.size(); }
  const_iterator begin() const noexcept { return entries_.data(); }
  const_iterator end() const noexcept { return entries_.data() + entries_.size(); }
  /// The entry at dense position `i` (< size()): uniform sampling.
  iterator at(size_t i) noexcept { return entries_.data() + i; }
  /// Bytes of the table itself (entries' heap strings not counted).
  size_t table_bytes() const noexcept {
    return entries_.capacity() * (sizeof(value_type) + sizeof(uint64_t)) +
           index_.size() * sizeof(slot);
  }

  iterator find(std::string_view key, uint64_t h) noexcept {
    const size_t i = find_slot(key, h);
    return i == npos ? end() : entries_.data() + index_[i].pos;
  }
  const_iterator find(std::string_view key, uint64_t h) const noexcept {
    const size_t i = find_slot(key, h);
    return i == npos ? end() : entries_.data() + index_[i].pos;
  }
  iterator find(std::string_view key) noexcept { return find(key, hash(key)); }
  const_iterator find(std::string_view key) const noexcept { return find(key, hash(key)); }

  /// The entry of `key` (hash `h`), inserted with a default value when absent;
  /// second: whether it was inserted.
  std::pair<iterator, bool> try_emplace(std::string&& key, uint64_t h) {
    if (auto it = find(key, h); it != end())
      return {it, false};
    if ((entries_.size() + 1) * 2 > index_.size())
      rehash(std::max<size_t>(16, index_.size() * 2));
    const auto pos = static_cast<uint32_t>(entries_.size());
    entries_.emplace_back(std::move(key), V{});
    hashes_.push_back(h);
    place(static_cast<uint32_t>(h), pos);
    return {entries_.data() + pos, true};
  }
  std::pair<iterator, bool> try_emplace(std::string_view key, uint64_t h) {
    if (auto it = find(key, h); it != end())
      return {it, false};
    return try_emplace(std::string(key), h);
  }

  /// Removes the entry `it` points to (the last entry moves into its place).
  void erase(iterator it) noexcept {
    const auto pos = static_cast<uint32_t>(it - entries_.data());
    unlink(pos);
    const auto last = static_cast<uint32_t>(entries_.size() - 1);
    if (pos != last) {
      index_[slot_of(last)].pos = pos;
      entries_[pos] = std::move(entries_[last]);
      hashes_[pos] = hashes_[last];
    }
    entries_.pop_back();
    hashes_.pop_back();
  }

  /// Replaces the entry `victim` points to by `key` (hash `h`, not in the
  /// table) with a default value, in place: no allocation when the victim's
  /// key string has the capacity. Returns the entry (same position).
  iterator replace(iterator victim, std::string_view key, uint64_t h) {
    const auto pos = static_cast<uint32_t>(victim - entries_.data());
    unlink(pos);
    victim->first.assign(key.data(), key.size());
    victim->second = V{};
    hashes_[pos] = h;
    place(static_cast<uint32_t>(h), pos);
    return victim;
  }

  void clear() noexcept {
    entries_.clear();
    hashes_.clear();
    for (auto& s : index_)
      s = slot{};
  }

private:
  struct slot {
    uint32_t h32 = 0;
    uint32_t pos = empty_pos;
  };
  static constexpr uint32_t empty_pos = UINT32_MAX;
  static constexpr size_t npos = SIZE_MAX;

  size_t mask() const noexcept { return index_.size() - 1; }

  size_t find_slot(std::string_view key, uint64_t h) const noexcept {
    if (index_.empty())
      return npos;
    const auto h32 = static_cast<uint32_t>(h);
    for (size_t i = h32 & mask();; i = (i + 1) & mask()) {
      const slot& s = index_[i];
      if (s.pos == empty_pos)
        return npos;
      if (s.h32 == h32 && entries_[s.pos].first == key)
        return i;
    }
  }
  /// The index slot that points to dense position `pos`.
  size_t slot_of(uint32_t pos) const noexcept {
    for (size_t i = static_cast<uint32_t>(hashes_[pos]) & mask();; i = (i + 1) & mask())
      if (index_[i].pos == pos)
        return i;
  }
  void place(uint32_t h32, uint32_t pos) noexcept {
    size_t i = h32 & mask();
    while (index_[i].pos != empty_pos)
      i = (i + 1) & mask();
    index_[i] = slot{h32, pos};
  }
  /// Takes dense position `pos` out of the index (backward-shift deletion).
  void unlink(uint32_t pos) noexcept {
    size_t hole = slot_of(pos);
    for (size_t j = (hole + 1) & mask();; j = (j + 1) & mask()) {
      const slot s = index_[j];
      if (s.pos == empty_pos)
        break;
      // s may fill the hole if its home is not in (hole, j] (cyclically)
      const size_t home = s.h32 & mask();
      if (((j - home) & mask()) >= ((j - hole) & mask())) {
        index_[hole] = s;
        hole = j;
      }
    }
    index_[hole] = slot{};
  }
  void rehash(size_t want) {
    size_t n = 16;
    while (n < want)
      n *= 2;
    index_.assign(n, slot{});
    for (uint32_t pos = 0; pos < entries_.size(); ++pos)
      place(static_cast<uint32_t>(hashes_[pos]), pos);
  }

  std::vector<value_type> entries_;
  std::vector<uint64_t> hashes_; ///< hash64 of entries_[i].first
  std::vector<slot> index_;
};

} // namespace kura::predictor
