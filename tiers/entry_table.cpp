#include "tiers/entry_table.hpp"

#include <algorithm>
#include <cstdlib>
#include <malloc.h>

namespace kura::detail {

namespace {

constexpr uint8_t meta_has_expiry = 1u << 3;
constexpr uint8_t meta_has_hlc = 1u << 4;
constexpr uint8_t meta_has_node = 1u << 5;
[[maybe_unused]] constexpr uint8_t meta_aux = 1u << 6; // documents bit 6 (aux)
constexpr uint8_t meta_hash = 1u << 7;                 ///< entry_flags::hash (bit 3 of the flags)
constexpr size_t page_target = 64 * 1024;
constexpr uint32_t max_pages = 1u << 20;

size_t varint_size(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

// The version's hlc is stored as the zigzag-encoded difference to the
// table's base (the first hlc it stored; FLUSHALL's clear starts a new one),
// in at least this many varint bytes: 35 bits, i.e. |hlc - base| < 2^34, which
// with the 16 logical bits is 2^18 ms (4.4 minutes) either side of the base.
// So the field keeps its size for 4.4 minutes after the base, then grows by
// a byte once (4.4 min) and again after 9.3 hours. It used to be a minimal
// varint of hlc ^ base, which also grew at moments that depend on the base's
// bits within the first 32 ms and 4.1 s: a value rewritten in place just then
// (INCR 20001 -> 20002) moved by a byte, and Redis' "INCR can modify objects
// in-place" (which compares DEBUG OBJECT's address of the value) failed. Costs
// an entry at most 3 bytes, and only while the table is younger than 4.1 s.
constexpr size_t hlc_min_width = 5;

uint64_t hlc_field(uint64_t hlc, uint64_t base) {
  const auto d = static_cast<int64_t>(hlc - base);
  return (static_cast<uint64_t>(d) << 1) ^ static_cast<uint64_t>(d >> 63);
}

uint64_t hlc_of_field(uint64_t x, uint64_t base) {
  return base + ((x >> 1) ^ (0 - (x & 1)));
}

size_t hlc_width(uint64_t x) {
  return std::max(varint_size(x), hlc_min_width);
}

// A varint of exactly `w` bytes (w >= varint_size(v)): zero-payload
// continuation bytes pad it; get_varint reads it as the same value.
char* put_varint_w(char* p, uint64_t v, size_t w) {
  for (size_t i = 1; i < w; ++i) {
    *p++ = static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<char>(v);
  return p;
}

char* put_varint(char* p, uint64_t v) {
  return put_varint_w(p, v, varint_size(v));
}

const char* get_varint(const char* p, uint64_t& v) {
  v = 0;
  unsigned shift = 0;
  for (;;) {
    auto b = static_cast<uint8_t>(*p++);
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80))
      return p;
    shift += 7;
  }
}

// Where the fields after the fixed header start, decoded.
struct layout {
  uint8_t meta;
  uint64_t klen, vlen;
  const char* opt; // optional fields
  const char* key; // key bytes (value follows)
  uint64_t hlc_x;  // hlc_field(version.hlc, the table's base)
  uint64_t node;   // version.node
};

layout decode(const char* n) {
  layout l;
  l.meta = static_cast<uint8_t>(n[8]);
  const char* p = get_varint(n + 9, l.klen);
  p = get_varint(p, l.vlen);
  l.opt = p;
  if (l.meta & meta_has_expiry)
    p += 8;
  l.hlc_x = 0;
  l.node = 0;
  if (l.meta & meta_has_hlc)
    p = get_varint(p, l.hlc_x);
  if (l.meta & meta_has_node)
    p = get_varint(p, l.node);
  l.key = p;
  return l;
}

// The view of a decoded node (`base`: the table's hlc_base_).
node_view view_of(const layout& l, uint64_t base) {
  node_view v;
  v.flags = static_cast<uint8_t>((l.meta & 7) | ((l.meta & meta_hash) ? entry_flags::hash : 0));
  if (l.meta & meta_has_expiry)
    v.expiry_ms = rd64(l.opt);
  if (l.meta & meta_has_hlc)
    v.ver.hlc = hlc_of_field(l.hlc_x, base);
  v.ver.node = static_cast<uint32_t>(l.node);
  v.key = std::string_view{l.key, static_cast<size_t>(l.klen)};
  v.value = std::string_view{l.key + l.klen, static_cast<size_t>(l.vlen)};
  return v;
}

} // namespace

entry_table::entry_table() {
  pages_.emplace_back(); // page 0 is never used: id 0 means "none"
}

entry_table::~entry_table() {
  for (auto& p : pages_)
    std::free(p.base);
  std::free(index_);
}

size_t entry_table::node_size(std::string_view key, size_t value_size, uint64_t expiry_ms,
                              const version& ver) const {
  const uint64_t base = hlc_base_ ? hlc_base_ : ver.hlc;
  return 9 + varint_size(key.size()) + varint_size(value_size) + (expiry_ms ? 8 : 0) +
         (ver.hlc ? hlc_width(hlc_field(ver.hlc, base)) : 0) +
         (ver.node ? varint_size(ver.node) : 0) + key.size() + value_size;
}

size_t entry_table::charge_for(size_t n) {
  if (n <= max_small)
    return std::max<size_t>(16, (n + 3) & ~size_t{3});
  // glibc: chunk = max(32, round_up(n + 8, 16)); the page record is 16 bytes.
  return ((n + 8 + 15) & ~size_t{15}) + sizeof(page);
}

// -- slab -----------------------------------------------------------------------

uint32_t entry_table::new_page() {
  if (!free_pages_.empty()) {
    uint32_t p = free_pages_.back();
    free_pages_.pop_back();
    return p;
  }
  if (pages_.size() >= max_pages)
    return 0;
  pages_.emplace_back();
  return static_cast<uint32_t>(pages_.size() - 1);
}

node_id entry_table::alloc(size_t n) {
  if (n > max_small) {
    char* mem = static_cast<char*>(std::malloc(n));
    if (!mem)
      return 0;
    uint32_t pi = new_page();
    if (pi == 0) {
      std::free(mem);
      return 0;
    }
    pages_[pi] = page{mem, static_cast<uint32_t>(n), 0xffff, 1};
    page_bytes_ += charge_for(n);
    return pi << 12;
  }
  const size_t cs = charge_for(n);
  size_class& c = classes_[cs / 4];
  if (c.free_head) {
    node_id id = c.free_head;
    c.free_head = rd32(ptr(id));
    return id;
  }
  if (c.bump_page == 0 || c.bump_next >= pages_[c.bump_page].slots) {
    uint32_t pi = new_page();
    if (pi == 0)
      return 0;
    const size_t slots = std::min<size_t>(4096, page_target / cs);
    char* mem = static_cast<char*>(std::malloc(slots * cs));
    if (!mem) {
      free_pages_.push_back(pi);
      return 0;
    }
    pages_[pi] = page{mem, static_cast<uint32_t>(cs), static_cast<uint16_t>(cs / 4),
                      static_cast<uint16_t>(slots)};
    page_bytes_ += slots * cs;
    c.bump_page = pi;
    c.bump_next = 0;
  }
  return (c.bump_page << 12) | c.bump_next++;
}

void entry_table::dealloc(node_id id) {
  page& p = pages_[id >> 12];
  if (p.cls == 0xffff) {
    page_bytes_ -= charge_for(p.slot_size);
    std::free(p.base);
    p = page{};
    free_pages_.push_back(id >> 12);
    return;
  }
  size_class& c = classes_[p.cls];
  wr32(ptr(id), c.free_head);
  c.free_head = id;
}

size_t entry_table::charge(node_id id) const {
  const page& p = pages_[id >> 12];
  return p.cls == 0xffff ? charge_for(p.slot_size) : p.slot_size;
}

// -- index ----------------------------------------------------------------------

template <class Match>
node_id entry_table::probe(uint64_t h, Match&& match) const {
  if (slots_ == 0)
    return 0;
  const uint8_t tag = tag_of(h);
  size_t i = home(h);
  for (;;) {
    const uint8_t t = tag_at(i);
    if (t == 0)
      return 0;
    if (t == tag) {
      const node_id id = id_at(i);
      ++key_compares_;
      if (match(id))
        return id;
    }
    if (++i == slots_)
      i = 0;
  }
}

node_id entry_table::peek(uint64_t h) const {
  if (slots_ == 0)
    return 0;
  const uint8_t tag = tag_of(h);
  for (size_t i = home(h);;) {
    const uint8_t t = tag_at(i);
    if (t == 0)
      return 0;
    if (t == tag)
      return id_at(i);
    if (++i == slots_)
      i = 0;
  }
}

node_id entry_table::find(std::string_view key, uint64_t h) const {
  return probe(h, [&](node_id id) { return entry_table::key(id) == key; });
}

node_id entry_table::find(std::string_view key, uint64_t h, node_view& v) const {
  return probe(h, [&](node_id id) {
    const char* n = ptr(id);
    const layout l = decode(n);
    if (l.klen != key.size() || std::memcmp(l.key, key.data(), key.size()) != 0)
      return false;
    v = view_of(l, hlc_base_);
    return true;
  });
}

void entry_table::index_insert(node_id id, uint64_t h) {
  size_t i = home(h);
  while (tag_at(i) != 0)
    if (++i == slots_)
      i = 0;
  set_tag(i, tag_of(h));
  set_id(i, id);
}

void entry_table::rehash(size_t new_slots) {
  new_slots = (new_slots + 7) & ~size_t{7};
  char* old = index_;
  const size_t old_slots = slots_;
  index_ = nullptr;
  if (new_slots > 0) {
    index_ = static_cast<char*>(std::calloc(new_slots / 8, 40));
    if (!index_)
      std::abort(); // out of memory: the process cannot continue meaningfully
  }
  slots_ = new_slots;
  for (size_t i = 0; i < old_slots; ++i) {
    const char* g = old + (i >> 3) * 40;
    if (g[i & 7] != 0) {
      const node_id id = rd32(g + 8 + (i & 7) * 4);
      index_insert(id, hash64(key(id)));
    }
  }
  std::free(old);
}

size_t entry_table::index_slot_of(node_id id) const {
  size_t i = home(hash64(key(id)));
  while (id_at(i) != id || tag_at(i) == 0)
    if (++i == slots_)
      i = 0;
  return i;
}

void entry_table::index_erase(size_t i) {
  // Backward-shift deletion: walk the run after the hole and move back every
  // entry whose home slot is not in (hole, j] (cyclically), so lookups that
  // stop at an empty slot still find it.
  size_t hole = i;
  size_t j = i;
  for (;;) {
    if (++j == slots_)
      j = 0;
    if (tag_at(j) == 0)
      break;
    const size_t k = home(hash64(key(id_at(j))));
    const bool in_range = hole <= j ? (hole < k && k <= j) : (hole < k || k <= j);
    if (!in_range) {
      set_tag(hole, tag_at(j));
      set_id(hole, id_at(j));
      hole = j;
    }
  }
  set_tag(hole, 0);
}

// -- insert / remove ---------------------------------------------------------------

node_id entry_table::insert(std::string_view key, std::string_view value, uint64_t expiry_ms,
                            const version& ver, uint8_t flags, uint64_t h) {
  if (slots_ == 0)
    rehash(min_slots);
  else if ((count_ + 1) * 5 > slots_ * 4)
    rehash(grown(slots_));
  const size_t n = node_size(key, value.size(), expiry_ms, ver);
  node_id id = alloc(n);
  if (id == 0)
    return 0;
  if (ver.hlc && hlc_base_ == 0)
    hlc_base_ = ver.hlc;
  write_node(ptr(id), key, value, expiry_ms, ver, flags);
  wr32(ptr(id), 0);
  wr32(ptr(id) + 4, 0);
  index_insert(id, h);
  ++count_;
  node_bytes_ += charge(id);
  return id;
}

bool entry_table::overwrite(node_id id, std::string_view value, uint64_t expiry_ms,
                            const version& ver, uint8_t flags) {
  const page& pg = pages_[id >> 12];
  if (pg.cls == 0xffff)
    return false;
  const std::string_view k = key(id);
  const size_t n = node_size(k, value.size(), expiry_ms, ver);
  if (charge_for(n) != pg.slot_size)
    return false;
  // The key moves only if the optional fields change size: copy it first.
  char kbuf[max_small];
  std::memcpy(kbuf, k.data(), k.size());
  const uint8_t keep = aux(id);
  write_node(ptr(id), std::string_view{kbuf, k.size()}, value, expiry_ms, ver, flags);
  set_aux(id, keep);
  return true;
}

void entry_table::write_node(char* p, std::string_view key, std::string_view value,
                             uint64_t expiry_ms, const version& ver, uint8_t flags) const {
  uint8_t meta = flags & 7;
  if (flags & entry_flags::hash)
    meta |= meta_hash;
  if (expiry_ms)
    meta |= meta_has_expiry;
  if (ver.hlc)
    meta |= meta_has_hlc;
  if (ver.node)
    meta |= meta_has_node;
  p[8] = static_cast<char>(meta);
  char* q = put_varint(p + 9, key.size());
  q = put_varint(q, value.size());
  if (expiry_ms) {
    std::memcpy(q, &expiry_ms, 8);
    q += 8;
  }
  if (ver.hlc) {
    const uint64_t x = hlc_field(ver.hlc, hlc_base_);
    q = put_varint_w(q, x, hlc_width(x));
  }
  if (ver.node)
    q = put_varint(q, ver.node);
  if (!key.empty())
    std::memcpy(q, key.data(), key.size());
  if (!value.empty())
    std::memcpy(q + key.size(), value.data(), value.size());
}

void entry_table::remove(node_id id) {
  ++removals_;
  index_erase(index_slot_of(id));
  node_bytes_ -= charge(id);
  dealloc(id);
  --count_;
  if (count_ == 0)
    rehash(0);
  else if (slots_ > min_slots && count_ * 5 < slots_)
    rehash(std::max(min_slots, count_ * 2));
}

void entry_table::clear() {
  ++removals_;
  for (auto& p : pages_)
    std::free(p.base);
  pages_.clear();
  pages_.emplace_back();
  free_pages_.clear();
  for (auto& c : classes_)
    c = size_class{};
  count_ = 0;
  node_bytes_ = 0;
  page_bytes_ = 0;
  hlc_base_ = 0;
  std::free(index_);
  index_ = nullptr;
  slots_ = 0;
}

// -- node access ---------------------------------------------------------------------

node_view entry_table::view(node_id id) const {
  return view_of(decode(ptr(id)), hlc_base_);
}

std::string_view entry_table::key(node_id id) const {
  layout l = decode(ptr(id));
  return std::string_view{l.key, static_cast<size_t>(l.klen)};
}

uint64_t entry_table::expiry(node_id id) const {
  const char* n = ptr(id);
  if (!(static_cast<uint8_t>(n[8]) & meta_has_expiry))
    return 0;
  return rd64(decode(n).opt);
}

bool entry_table::set_expiry_inplace(node_id id, uint64_t expiry_ms) {
  char* n = ptr(id);
  const bool has = static_cast<uint8_t>(n[8]) & meta_has_expiry;
  if (!has || expiry_ms == 0)
    return false; // the node must change size: caller re-inserts
  std::memcpy(const_cast<char*>(decode(n).opt), &expiry_ms, 8);
  return true;
}

entry entry_table::to_entry(node_id id) const {
  node_view v = view(id);
  entry e;
  e.key.assign(v.key.data(), v.key.size());
  e.value.assign(v.value.data(), v.value.size());
  e.expiry_ms = v.expiry_ms;
  e.ver = v.ver;
  e.flags = v.flags;
  return e;
}

} // namespace kura::detail
