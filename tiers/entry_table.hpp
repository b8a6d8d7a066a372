// The compact entry store shared by L1 (l1_lru) and L2 (l2_lfu): a slab
// allocator for entry nodes plus an open-addressing hash index from key to
// node, with 32-bit node ids instead of 8-byte pointers everywhere.
// Internal header of tiers/ (not part of the public surface).
// Thread safety: not thread-safe; owned by one tier.
//
// -- node layout ---------------------------------------------------------------
//
// One node holds header, key and value in one slab slot:
//
//   off 0  u32 prev            list links (node ids, 0 = none), owned by the tier
//   off 4  u32 next
//   off 8  u8  meta            bits 0-2 entry flags, 3 has expiry, 4 has hlc,
//                              5 has writer node id, 6 aux bit for the owning
//                              tier (L2: protected segment), 7 entry flag
//                              `hash` (entry_flags bit 3)
//   off 9  varint key length, varint value length (1 byte each below 128)
//          [u64 expiry_ms]              only when non-zero
//          [varint zigzag(version.hlc - base)]  only when hlc is non-zero;
//                                       base = the first hlc the table stored,
//                                       so the shared high bits of clustered
//                                       versions vanish; at least 5 bytes
//                                       (padded), so the field, and a value
//                                       rewritten in place, do not move for
//                                       4.4 minutes after the base
//          [varint version.node]        only when non-zero
//          key bytes, value bytes
//
// So a 10-byte key with a 32-byte value costs 11 + 42 = 53 bytes of node (a
// 56-byte slot) without version, and 11 + 5..7 + 1 + 42 = 59..61 bytes (a 60
// or 64-byte slot) with a version written within 49 days of the base (the
// hlc field has 5 bytes up to 4.4 minutes, 6 up to 9.3 hours).
//
// -- slab ----------------------------------------------------------------------
//
// Nodes up to 1024 bytes live in size classes 16, 20, ..., 1024 (4-byte steps);
// each class carves 64 KiB pages into equal slots and keeps a free list threaded
// through its free slots, so there is no per-allocation header and the rounding
// is at most 3 bytes. A larger node gets a page of its own from malloc (freed
// when the node is). A node id is (page index << 12) | slot; page 0 slot 0 is
// never handed out so that 0 means "none".
//
// -- index ---------------------------------------------------------------------
//
// Linear probing over two parallel arrays: u32 node id and an 8-bit tag (7 hash
// bits + an occupied bit), so a probe compares tags and only touches a node on
// a tag match. Slot = hash * size >> 64 ("fastrange"), which allows any table
// size: the table grows by 1.5x at 80% load and shrinks at 20%, so it stays
// 53-80% full. The tag takes the hash's LOW 7 bits: fastrange places a key by
// its high bits, so with high-bit tags every key of a probe run (whose homes
// are neighbours) had the same tag, and a lookup decoded (a cache miss on a
// random node) every node before its own, a miss every node of the run.
// Deletion shifts the following run back (no tombstones); the home slot of a
// moved entry is recomputed from its key.
//
// -- byte accounting (what bytes() reports) -----------------------------------
//
//   bytes = sum over nodes of charge(node) + index slots x 5
// (an empty table holds no index, so an empty tier is 0 bytes)
//   charge(node) = slab class size        for nodes <= 1024 bytes
//                = malloc_usable_size + 8 for larger nodes (glibc chunk header)
//                  + 16 (the page record)
//
// Free slots of partly used slab pages are not charged (they are reused by the
// next node of the same class), as memcached does not charge them either; the
// memory benchmark reports RSS beside this figure.
#pragma once

#include "tiers/entry.hpp"
#include "tiers/hash.hpp"

#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace kura::detail {

using node_id = uint32_t;

/// Decoded view of a node's header.
struct node_view {
  std::string_view key;
  std::string_view value;
  uint64_t expiry_ms = 0;
  version ver;
  uint8_t flags = 0;
};

/// An entry's fields as a node_view (no copies).
inline node_view view_of(const entry& e) {
  return node_view{e.key, e.value, e.expiry_ms, e.ver, e.flags};
}

class entry_table {
public:
  static constexpr size_t max_small = 1024;
  static constexpr size_t index_slot_bytes = 5;
  static constexpr size_t min_slots = 16;

  entry_table();
  ~entry_table();
  entry_table(const entry_table&) = delete;
  entry_table& operator=(const entry_table&) = delete;

  // -- lookup ------------------------------------------------------------------

  /// Node holding `key` (hash `h`), or 0.
  node_id find(std::string_view key, uint64_t h) const;
  /// The same, and on a match `v` is the node's view: a hit decodes the node
  /// once (the key compare's decode) instead of once more for its expiry and
  /// again for its view.
  node_id find(std::string_view key, uint64_t h, node_view& v) const;

  // -- prefetch (hints: no observable effect) -----------------------------------

  /// Starts loading the index group where a lookup of hash `h` begins.
  void prefetch_index(uint64_t h) const {
    if (slots_ == 0)
      return;
    const char* g = index_ + (home(h) >> 3) * 40;
    __builtin_prefetch(g);
    __builtin_prefetch(g + 39); // a group may straddle two cache lines
  }
  /// The first node of h's probe run whose tag matches h's, or 0: the node a
  /// lookup of h compares first (almost always its own), found without
  /// reading a node.
  node_id peek(uint64_t h) const;
  /// Starts loading the first `bytes` bytes of node `id` (header and key).
  void prefetch_node(node_id id, size_t bytes) const {
    const char* p = ptr(id);
    for (size_t o = 0; o < bytes; o += 64)
      __builtin_prefetch(p + o);
  }

  // -- insert / remove -----------------------------------------------------------

  /// Bytes of node an entry with these fields needs (in this table).
  size_t node_size(std::string_view key, size_t value_size, uint64_t expiry_ms,
                   const version& ver) const;
  /// What charge() will be for a node of `n` bytes.
  static size_t charge_for(size_t n);

  /// Stores a new node; `key` must be absent. Returns 0 when out of node ids.
  node_id insert(std::string_view key, std::string_view value, uint64_t expiry_ms,
                 const version& ver, uint8_t flags, uint64_t h);
  /// Rewrites node `id` (same key) in place when the new contents need the
  /// same slot size; keeps links and aux. Returns false (and changes nothing)
  /// otherwise.
  bool overwrite(node_id id, std::string_view value, uint64_t expiry_ms, const version& ver,
                 uint8_t flags);
  /// Removes a node from the index and frees it.
  void remove(node_id id);
  /// Removes everything.
  void clear();
  /// Calls of remove() and clear() since construction: while it stays the
  /// same, every key the table held is still in it.
  uint64_t removals() const noexcept { return removals_; }

  // -- node access ---------------------------------------------------------------

  char* ptr(node_id id) const {
    const page& p = pages_[id >> 12];
    return p.base + static_cast<size_t>(id & 0xfff) * p.slot_size;
  }
  node_view view(node_id id) const;
  std::string_view key(node_id id) const;
  uint64_t expiry(node_id id) const;
  bool set_expiry_inplace(node_id id, uint64_t expiry_ms);
  entry to_entry(node_id id) const;
  /// Bytes charged for this node.
  size_t charge(node_id id) const;

  node_id prev(node_id id) const { return rd32(ptr(id)); }
  node_id next(node_id id) const { return rd32(ptr(id) + 4); }
  void set_prev(node_id id, node_id v) { wr32(ptr(id), v); }
  void set_next(node_id id, node_id v) { wr32(ptr(id) + 4, v); }
  uint8_t aux(node_id id) const { return (static_cast<uint8_t>(ptr(id)[8]) >> 6) & 1; }
  /// Sets the owner's one aux bit (0 or 1).
  void set_aux(node_id id, uint8_t v) {
    char& m = ptr(id)[8];
    m = static_cast<char>((static_cast<uint8_t>(m) & ~0x40u) | ((v & 1u) << 6));
  }

  // -- iteration (for the expiry sweep) -------------------------------------------

  size_t slot_count() const { return slots_; }
  /// Node in index slot `i`, or 0 when the slot is empty.
  node_id slot(size_t i) const { return tag_at(i) ? id_at(i) : 0; }

  /// One step of the incremental active expiry shared by L1 and L2: walks the
  /// index from `cursor` (which it advances and wraps), looks at no more than
  /// budget * 16 + 64 slots, and calls remove(id) for each expired node until
  /// `budget` are removed. Returns how many were removed.
  template <class Remove>
  size_t sweep_expired(size_t& cursor, uint64_t now_ms, size_t budget, Remove&& remove) {
    size_t removed = 0;
    size_t inspect = budget * 16 + 64;
    while (removed < budget && inspect > 0 && size() > 0) {
      if (cursor >= slot_count())
        cursor = 0;
      node_id id = slot(cursor);
      --inspect;
      if (id != 0) {
        uint64_t exp = expiry(id);
        if (exp != 0 && exp <= now_ms) {
          remove(id);
          ++removed;
          continue; // a following entry may have shifted into this slot
        }
      }
      ++cursor;
    }
    return removed;
  }

  // -- accounting ----------------------------------------------------------------

  size_t size() const { return count_; }
  /// Sum of node charges.
  uint64_t node_bytes() const { return node_bytes_; }
  /// Bytes of the index arrays.
  uint64_t index_bytes() const { return slots_ * index_slot_bytes; }
  /// Index bytes once one more node is inserted (growth included).
  uint64_t index_bytes_after_insert() const {
    if (slots_ == 0)
      return min_slots * index_slot_bytes;
    if ((count_ + 1) * 5 > slots_ * 4)
      return grown(slots_) * index_slot_bytes;
    return slots_ * index_slot_bytes;
  }
  uint64_t bytes() const { return node_bytes_ + index_bytes(); }
  /// Slab pages held (for the memory benchmark).
  uint64_t page_bytes() const { return page_bytes_; }
  /// Nodes whose key a lookup (find) compared since construction: one per
  /// hit plus the tag collisions, which should be rare (1/128 per slot).
  uint64_t key_compares() const { return key_compares_; }

  static uint32_t rd32(const char* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
  }
  static void wr32(char* p, uint32_t v) { std::memcpy(p, &v, 4); }

private:
  struct page {
    char* base = nullptr;
    uint32_t slot_size = 0; // bytes per slot (node size for a large page)
    uint16_t cls = 0;       // size class; 0xffff = large page
    uint16_t slots = 0;
  };
  struct size_class {
    node_id free_head = 0;  // threaded through free slots
    uint32_t bump_page = 0; // page being carved (0 = none)
    uint32_t bump_next = 0; // next uncarved slot in bump_page
  };

  static uint8_t tag_of(uint64_t h) { return static_cast<uint8_t>(h | 0x80); }
  size_t home(uint64_t h) const {
    return static_cast<size_t>((static_cast<__uint128_t>(h) * slots_) >> 64);
  }
  /// Linear probe from h's home slot: the first id with h's tag for which
  /// match(id) holds, or 0.
  template <class Match>
  node_id probe(uint64_t h, Match&& match) const;
  node_id alloc(size_t n);
  void write_node(char* p, std::string_view key, std::string_view value, uint64_t expiry_ms,
                  const version& ver, uint8_t flags) const;
  void dealloc(node_id id);
  uint32_t new_page();
  void rehash(size_t new_slots);
  void index_insert(node_id id, uint64_t h);
  void index_erase(size_t slot);
  size_t index_slot_of(node_id id) const;

  std::vector<page> pages_;
  std::vector<uint32_t> free_pages_;
  size_class classes_[max_small / 4 + 1];
  uint64_t hlc_base_ = 0;
  // Index slots in groups of 8: 8 tag bytes then 8 u32 ids (40 bytes), so a
  // probe finds a slot's tag and id in the same cache line (mostly).
  char* index_ = nullptr;
  uint8_t tag_at(size_t i) const { return static_cast<uint8_t>(index_[(i >> 3) * 40 + (i & 7)]); }
  void set_tag(size_t i, uint8_t t) { index_[(i >> 3) * 40 + (i & 7)] = static_cast<char>(t); }
  node_id id_at(size_t i) const { return rd32(index_ + (i >> 3) * 40 + 8 + (i & 7) * 4); }
  void set_id(size_t i, node_id id) { wr32(index_ + (i >> 3) * 40 + 8 + (i & 7) * 4, id); }
  static size_t grown(size_t slots) { return (slots + slots / 2 + 7) & ~size_t{7}; }
  size_t slots_ = 0;
  size_t count_ = 0;
  uint64_t node_bytes_ = 0;
  uint64_t page_bytes_ = 0;
  mutable uint64_t key_compares_ = 0;
  uint64_t removals_ = 0;
};

/// A doubly linked list of nodes threaded through the prev/next fields
/// (head = most recently used).
struct node_list {
  node_id head = 0;
  node_id tail = 0;
  uint64_t count = 0;
  uint64_t bytes = 0; // sum of charges of the nodes in the list

  void push_front(entry_table& t, node_id id, uint64_t charge) {
    t.set_prev(id, 0);
    t.set_next(id, head);
    if (head)
      t.set_prev(head, id);
    else
      tail = id;
    head = id;
    ++count;
    bytes += charge;
  }
  void unlink(entry_table& t, node_id id, uint64_t charge) {
    node_id p = t.prev(id), n = t.next(id);
    if (p)
      t.set_next(p, n);
    else
      head = n;
    if (n)
      t.set_prev(n, p);
    else
      tail = p;
    --count;
    bytes -= charge;
  }
  void move_front(entry_table& t, node_id id) {
    if (head == id)
      return;
    node_id p = t.prev(id), n = t.next(id);
    t.set_next(p, n); // p != 0 since id is not the head
    if (n)
      t.set_prev(n, p);
    else
      tail = p;
    t.set_prev(id, 0);
    t.set_next(id, head);
    t.set_prev(head, id);
    head = id;
  }
  void reset() { *this = node_list{}; }
};

} // namespace kura::detail
