#include "actors/keyspace.hpp"

#include "tiers/hash.hpp"

#include <algorithm>
#include <cctype>

namespace kura::actors {

namespace {
constexpr uint64_t shard_seed = 0x6b7572615f736864ull;  // "kura_shd"
constexpr uint64_t filter_seed = 0x6b7572615f666c74ull; // "kura_flt"
constexpr int filter_hashes = 4;
} // namespace

keyspace::keyspace(keyspace_config cfg, const kura::clock& clk, l3_port* l3)
    : cfg_(cfg), clk_(clk), l3_(l3) {
  if (cfg_.shards == 0)
    cfg_.shards = 1;
  for (size_t i = 0; i < cfg_.shards; ++i) {
    memory_cache_config mc;
    mc.capacity_bytes = cfg_.memory_bytes / cfg_.shards;
    mc.lim = cfg_.lim;
    mc.sketch_seed = 0x6b757261 + i;
    shards_.push_back(std::make_unique<memory_cache>(mc));
    if (l3_ && cfg_.lazy_expire_below)
      shards_.back()->on_lazy_expire([this](std::string_view key) { expired_in_memory(key); });
  }
  if (l3_) {
    uint64_t words = (cfg_.filter_bits + 63) / 64;
    filter_.assign(words ? words : 1, 0);
  }
}

size_t keyspace::shard_of(std::string_view key) const noexcept {
  return shards_.size() == 1 ? 0 : hash64(key, shard_seed) % shards_.size();
}

bool keyspace::maybe_in_l3(std::string_view key) const noexcept {
  if (!l3_)
    return false;
  if (filter_loading_)
    return true;
  uint64_t h = hash64(key, filter_seed);
  uint64_t h2 = mix64(h) | 1;
  uint64_t bits = filter_.size() * 64;
  for (int i = 0; i < filter_hashes; ++i) {
    uint64_t b = (h + static_cast<uint64_t>(i) * h2) % bits;
    if ((filter_[b / 64] & (1ull << (b % 64))) == 0)
      return false;
  }
  return true;
}

uint64_t keyspace::removals() const noexcept {
  uint64_t n = 0;
  for (const auto& s : shards_)
    n += s->removals();
  return n;
}

void keyspace::prefetch(const std::string_view* keys, size_t n, bool* resident_out) const {
  constexpr size_t chunk = 32;
  std::string_view mine[chunk];
  size_t at[chunk]; // mine[j] is keys[at[j]]
  bool resident[chunk];
  bool exact[chunk];
  uint32_t shard[chunk];
  const bool filter = l3_ && !filter_loading_;
  const uint64_t bits = filter_.size() * 64;
  for (size_t base = 0; base < n; base += chunk) {
    const size_t k = std::min(chunk, n - base);
    for (size_t i = 0; i < k; ++i)
      shard[i] = static_cast<uint32_t>(shard_of(keys[base + i]));
    for (size_t s = 0; s < shards_.size(); ++s) {
      size_t m = 0;
      for (size_t i = 0; i < k; ++i)
        if (shard[i] == s) {
          at[m] = base + i;
          mine[m++] = keys[base + i];
        }
      if (m == 0)
        continue;
      shards_[s]->prefetch(mine, m, resident, resident_out ? exact : nullptr);
      if (resident_out)
        for (size_t i = 0; i < m; ++i)
          resident_out[at[i]] = exact[i];
      if (!filter)
        continue;
      // A key memory lacks is looked up in the filter (plan_key_lookup); the
      // first two words answer for almost every key never written.
      for (size_t i = 0; i < m; ++i) {
        if (resident[i])
          continue;
        const uint64_t h = hash64(mine[i], filter_seed);
        const uint64_t h2 = mix64(h) | 1;
        __builtin_prefetch(&filter_[(h % bits) / 64]);
        __builtin_prefetch(&filter_[((h + h2) % bits) / 64]);
      }
    }
  }
}

void keyspace::saturate_filter() noexcept {
  std::fill(filter_.begin(), filter_.end(), ~uint64_t{0});
}

void keyspace::note_in_l3(std::string_view key) noexcept {
  if (!l3_)
    return;
  uint64_t h = hash64(key, filter_seed);
  uint64_t h2 = mix64(h) | 1;
  uint64_t bits = filter_.size() * 64;
  for (int i = 0; i < filter_hashes; ++i) {
    uint64_t b = (h + static_cast<uint64_t>(i) * h2) % bits;
    filter_[b / 64] |= 1ull << (b % 64);
  }
}

bool keyspace::known(std::string_view key) const {
  if (shards_[shard_of(key)]->locate(key) != memory_region::none)
    return true;
  if (!large_.empty() && large_.count(std::string{key}) > 0)
    return true;
  return overlay_ && overlay_->count(std::string{key}) > 0;
}

uint64_t keyspace::begin_lookup() {
  ++lookups_in_flight_;
  return ++seq_;
}

void keyspace::end_lookup() {
  if (lookups_in_flight_ > 0 && --lookups_in_flight_ == 0)
    touched_.clear();
}

bool keyspace::touched_after(std::string_view key, uint64_t seq) const {
  if (seq < last_clear_seq_)
    return true;
  auto i = touched_.find(std::string{key});
  return i != touched_.end() && i->second > seq;
}

void keyspace::touch(std::string_view key) {
  ++seq_;
  if (lookups_in_flight_ > 0)
    touched_[std::string{key}] = seq_;
}

void keyspace::promote(entry e, uint64_t seq) {
  auto now = now_ms();
  e.expiry_ms = retention_cap(e.expiry_ms, e.ver.ms());
  if (e.expired(now))
    return;
  if (seq < last_clear_seq_)
    return;
  auto i = touched_.find(e.key);
  if (i != touched_.end() && i->second > seq)
    return;
  auto& sh = shard_for(e.key);
  if (sh.locate(e.key) != memory_region::none)
    return;
  if (l3_ && cfg_.memory_max_value_bytes != 0 && e.value.size() >= cfg_.memory_max_value_bytes)
    return; // L3 keeps serving a large value (keyspace_config::memory_max_value_bytes)
  (void)sh.put(std::move(e), now); // too big for memory: L3 keeps serving it
}

const entry* keyspace::overlay_entry(std::string_view key, uint64_t now) const {
  if (!overlay_)
    return nullptr;
  auto i = overlay_->find(std::string{key});
  if (i == overlay_->end() || !i->second || i->second->expired(now) ||
      (cfg_.max_age_ms != 0 && i->second->ver.ms() + cfg_.max_age_ms <= now))
    return nullptr; // expired, or older than kura.retention.max-age
  return &*i->second;
}

void keyspace::drop_expired_below(std::string_view key, uint64_t now) {
  if (!overlay_ || !l3_ || !cfg_.lazy_expire_below)
    return;
  auto i = overlay_->find(std::string{key});
  if (i == overlay_->end() || !i->second || !i->second->expired(now))
    return;
  i->second.reset();
  touch(key);
  l3_->erase(key);
}

void keyspace::expired_in_memory(std::string_view key) {
  // memory holds the newest write of a key it holds, so L3's copy is the
  // same write (or older): expired as well
  touch(key);
  if (overlay_) {
    auto i = overlay_->find(std::string{key});
    if (i != overlay_->end())
      i->second.reset();
  }
  l3_->erase(key);
}

std::optional<entry> keyspace::get(std::string_view key) {
  auto now = now_ms();
  auto r = shard_for(key).get(key, now, true);
  if (r.ok() && *r)
    return std::move(**r);
  if (auto* b = large_entry(key, now)) {
    entry e;
    e.key.assign(key.data(), key.size());
    e.value.assign(b->value.view());
    e.expiry_ms = b->expiry_ms;
    e.ver = b->ver;
    e.flags = b->flags;
    return e;
  }
  if (auto* e = overlay_entry(key, now))
    return *e;
  drop_expired_below(key, now);
  return std::nullopt;
}

void keyspace::tap_read_below(std::string_view key, uint64_t now, const entry& e) {
  tap_->on_read(key, now, (e.flags & from_archive_flag) != 0 ? tap_tier::l4 : tap_tier::l3,
                e.value.size());
}

bool keyspace::exists(std::string_view key) {
  return read(key, [](std::string_view, uint64_t) {});
}

kura::version keyspace::next_version(uint64_t now) {
  uint64_t hlc = version::make_hlc(now, 0);
  if (hlc <= last_hlc_)
    hlc = last_hlc_ + 1;
  last_hlc_ = hlc;
  return kura::version{hlc, cfg_.node_id};
}

uint64_t keyspace::adjust_ttl(std::string_view key, uint64_t now, uint64_t expiry_ms) {
  const uint64_t asked = expiry_ms - now;
  const uint64_t ttl = ttl_rules_->apply(key, asked);
  if (ttl == asked)
    return expiry_ms;
  ++(ttl > asked ? ttl_longer_ : ttl_shorter_);
  return ttl > UINT64_MAX - now ? UINT64_MAX : now + ttl;
}

bool keyspace::large(size_t value_bytes) const noexcept {
  return l3_ && cfg_.memory_max_value_bytes != 0 && value_bytes >= cfg_.memory_max_value_bytes;
}

status keyspace::write_arg(std::string_view key, std::string_view value, uint64_t expiry_ms,
                           uint8_t flags) {
  auto at = reinterpret_cast<uintptr_t>(value.data());
  auto in = input_ ? reinterpret_cast<uintptr_t>(input_->data()) : 0;
  if (!large(value.size())) { // copied into memory and the write-behind batch
    if (auto st = admit(key, value.size()); !st.ok())
      return st;
    return write_entry(key, value, nullptr, {}, expiry_ms, flags);
  }
  if (!input_ || at < in || at + value.size() > in + input_->size())
    return write(key, std::string{value}, expiry_ms, flags);
  if (auto st = admit(key, value.size()); !st.ok())
    return st;
  // the request's buffer becomes the value's: no copy (see set_input)
  size_t off = static_cast<size_t>(value.data() - input_->data());
  taken_input_ = std::make_shared<const std::string>(std::move(*input_));
  *input_ = std::string{};
  input_ = nullptr;
  return write_entry(key, {}, nullptr, shared_bytes{taken_input_, off, value.size()}, expiry_ms,
                     flags);
}

status keyspace::admit(std::string_view key, size_t value_bytes) const {
  if (auto st = cfg_.lim.check(key, value_bytes); !st.ok())
    return st;
  if (l3_) // the widest entry: with an expiry
    return cfg_.l3_sizing.check(key, value_bytes, true);
  auto st = shards_[shard_of(key)]->admits(key, value_bytes);
  if (!st.ok())
    return status{st.code(), "value of " + std::to_string(value_bytes) +
                                 " bytes is too large for memory: " + st.message() +
                                 " (one shard's part of memory-bytes)"};
  return st;
}

status keyspace::write(std::string_view key, std::string value, uint64_t expiry_ms, uint8_t flags) {
  if (auto st = admit(key, value.size()); !st.ok())
    return st;
  if (large(value.size()))
    return write_entry(key, {}, nullptr, std::make_shared<const std::string>(std::move(value)),
                       expiry_ms, flags);
  return write_entry(key, value, &value, {}, expiry_ms, flags);
}

status keyspace::write_entry(std::string_view key, std::string_view small, std::string* owned,
                             shared_bytes big, uint64_t expiry_ms, uint8_t flags) {
  const size_t value_bytes = big ? big.size() : small.size();
  auto now = now_ms();
  touch(key);
  // the predictor learns from the asked TTL; the retention and sensitive-key
  // caps below apply to the adjusted one
  const uint64_t asked_ttl = expiry_ms > now ? expiry_ms - now : 0;
  if (ttl_rules_ && asked_ttl && (flags & asked_ttl_flag) != 0)
    expiry_ms = adjust_ttl(key, now, expiry_ms);
  expiry_ms = retention_cap(expiry_ms, now);
  if (!cfg_.sensitive_patterns.empty() && sensitive(key)) {
    if (cfg_.sensitive_max_ttl_ms != 0 &&
        (expiry_ms == 0 || expiry_ms > now + cfg_.sensitive_max_ttl_ms))
      expiry_ms = now + cfg_.sensitive_max_ttl_ms;
    if (expiry_ms != 0)
      sensitive_due_.emplace(expiry_ms, std::string{key});
  }
  if (tap_)
    tap_->on_write(key, now,
                   ttl_rules_        ? asked_ttl
                   : expiry_ms > now ? expiry_ms - now
                                     : 0,
                   value_bytes);
  // the entry memory and the write-behind batch copy from: reused, so a
  // write allocates nothing here
  entry& e = scratch_;
  e.key.assign(key.data(), key.size());
  e.value.clear();
  e.expiry_ms = expiry_ms;
  e.ver = next_version(now);
  e.flags = flags & entry_flags::hash;
  auto& sh = shard_for(key);
  if (!large_.empty())
    forget_large(key);
  if (big) {
    // A large value: one buffer (moved, not copied) that the write-ahead log
    // and the L3 batch share by reference; memory drops any older copy and
    // serves this one from the buffer until L3 has applied it.
    (void)sh.erase(key);
    large_value lv{big, e.expiry_ms, e.ver, e.flags, 0};
    lv.batch = l3_->write_shared(e, std::move(big));
    large_bytes_ += lv.value.size();
    note_in_l3(key);
    if (overlay_) { // the large value shadows it; a later erase resets it
      auto i = overlay_->find(e.key);
      if (i != overlay_->end())
        i->second.reset();
    }
    large_.emplace(std::move(e.key), std::move(lv));
    return status{};
  }
  if (owned)
    e.value = std::move(*owned);
  else
    e.value.assign(small.data(), small.size());
  // A key memory holds is in the presence filter already (it was written
  // or promoted from L3 or L4, and a clear() empties both): setting its
  // bits again cost ~10% of the serving thread's time on SET -P 16, a
  // cache miss per bit in a 4 MiB filter (bench/RESULTS.md, persist19).
  const bool resident = l3_ && sh.locate(key) != memory_region::none;
  if (l3_ && !resident)
    note_in_l3(key);
  if (overlay_) {
    auto i = overlay_->find(e.key);
    if (i != overlay_->end())
      i->second = e;
  }
  // the predictor's tier choice: a new key of a pattern written and never
  // read goes to L3 only (a later read promotes it as after an eviction)
  status st;
  if (l3_ && !resident && ttl_rules_ && ttl_rules_->has_tier_rules() && ttl_rules_->l3_only(key))
    ++tier_l3_only_;
  else if (st = sh.store(e, now); !st.ok())
    (void)sh.erase(key); // never leave an older value behind in memory
  if (l3_)
    l3_->write(e);
  if (e.value.capacity() > scratch_max_bytes) // a big value's buffer is not kept
    std::string().swap(e.value);
  return l3_ ? status{} : st;
}

bool keyspace::erase(std::string_view key) {
  bool was = exists(key);
  touch(key);
  if (!large_.empty())
    forget_large(key);
  (void)shard_for(key).erase(key);
  if (overlay_) {
    auto i = overlay_->find(std::string{key});
    if (i != overlay_->end())
      i->second.reset();
  }
  if (l3_ && (was || maybe_in_l3(key)))
    l3_->erase(key);
  return was;
}

bool keyspace::set_expiry(std::string_view key, uint64_t expiry_ms) {
  auto e = get(key);
  if (!e)
    return false;
  auto st = write(key, std::move(e->value), expiry_ms, e->flags);
  return st.ok();
}

const char* keyspace::tier_of(std::string_view key) {
  switch (shard_for(key).locate(key)) {
  case memory_region::l1:
    return "l1";
  case memory_region::l2:
    return "l2";
  default:
    break;
  }
  if (large_entry(key, now_ms()))
    return "l3"; // on its way there; memory does not copy it
  if (auto* e = overlay_entry(key, now_ms()))
    return (e->flags & from_archive_flag) != 0 ? "l4" : "l3";
  return "none";
}

void keyspace::clear() {
  ++seq_;
  for (auto& s : shards_)
    (void)s->clear();
  large_.clear();
  large_bytes_ = 0;
  if (overlay_)
    for (auto& kv : *overlay_)
      kv.second.reset();
  std::fill(filter_.begin(), filter_.end(), 0);
  // everything in-flight lookups return is now stale
  last_clear_seq_ = seq_;
  if (l3_)
    l3_->clear();
}

bool keyspace::drop_memory() {
  if (!l3_)
    return false; // memory is all there is
  ++seq_;
  for (auto& s : shards_)
    (void)s->clear();
  large_.clear(); // the caller handed L3 the write-behind queue first
  large_bytes_ = 0;
  return true;
}

void keyspace::forget_large(std::string_view key) {
  auto i = large_.find(std::string{key});
  if (i == large_.end())
    return;
  large_bytes_ -= i->second.value.size();
  large_.erase(i);
}

void keyspace::release_large(uint64_t batch) {
  for (auto i = large_.begin(); i != large_.end();) {
    if (i->second.batch <= batch) {
      large_bytes_ -= i->second.value.size();
      i = large_.erase(i);
    } else {
      ++i;
    }
  }
}

void keyspace::memory_keys(const std::function<void(std::string_view)>& f) {
  auto now = now_ms();
  for (auto& s : shards_)
    s->for_each([&](const memory_cache::entry_view& v) {
      if (v.expiry_ms == 0 || v.expiry_ms > now)
        f(v.key);
    });
}

size_t keyspace::sweep(size_t budget) {
  auto now = now_ms();
  size_t removed = 0;
  for (size_t n = 0; n < shards_.size() && removed < budget; ++n) {
    removed += shards_[sweep_next_]->sweep_expired(now, budget - removed);
    sweep_next_ = (sweep_next_ + 1) % shards_.size();
  }
  return removed;
}

bool keyspace::sensitive(std::string_view key) const {
  for (auto& p : cfg_.sensitive_patterns)
    if (glob_match(p, key))
      return true;
  return false;
}

void keyspace::expire_sensitive(const std::function<void(const std::string&)>& f) {
  auto now = now_ms();
  while (!sensitive_due_.empty() && sensitive_due_.top().first <= now) {
    // a key written again since is reported anyway: an invalidation is
    // advisory (the client reads the key again)
    auto key = sensitive_due_.top().second;
    sensitive_due_.pop();
    f(key);
  }
}

tier_stats keyspace::l1_stats() const {
  tier_stats t;
  for (auto& s : shards_) {
    auto x = s->l1_stats();
    t.hits += x.hits, t.misses += x.misses, t.puts += x.puts, t.erases += x.erases;
    t.evictions += x.evictions, t.expirations += x.expirations;
    t.entries += x.entries, t.bytes += x.bytes, t.capacity_bytes += x.capacity_bytes;
  }
  return t;
}

tier_stats keyspace::l2_stats() const {
  tier_stats t;
  for (auto& s : shards_) {
    auto x = s->l2_stats();
    t.hits += x.hits, t.misses += x.misses, t.puts += x.puts, t.erases += x.erases;
    t.evictions += x.evictions, t.expirations += x.expirations;
    t.entries += x.entries, t.bytes += x.bytes, t.capacity_bytes += x.capacity_bytes;
  }
  return t;
}

// -- glob ----------------------------------------------------------------------

bool glob_match(std::string_view p, std::string_view s, bool nocase) {
  auto eqc = [nocase](char a, char b) {
    return nocase ? std::tolower(static_cast<unsigned char>(a)) ==
                        std::tolower(static_cast<unsigned char>(b))
                  : a == b;
  };
  size_t pi = 0, si = 0;
  size_t star_p = std::string_view::npos, star_s = 0;
  while (si < s.size()) {
    if (pi < p.size()) {
      char c = p[pi];
      if (c == '*') {
        while (pi < p.size() && p[pi] == '*')
          ++pi;
        if (pi == p.size())
          return true;
        star_p = pi;
        star_s = si;
        continue;
      }
      if (c == '?') {
        ++pi, ++si;
        continue;
      }
      if (c == '[') {
        size_t j = pi + 1;
        bool neg = false;
        if (j < p.size() && p[j] == '^')
          neg = true, ++j;
        bool match = false;
        while (j < p.size() && p[j] != ']') {
          if (p[j] == '\\' && j + 1 < p.size()) {
            ++j;
            if (eqc(p[j], s[si]))
              match = true;
          } else if (j + 2 < p.size() && p[j + 1] == '-' && p[j + 2] != ']') {
            unsigned char lo = static_cast<unsigned char>(p[j]);
            unsigned char hi = static_cast<unsigned char>(p[j + 2]);
            if (lo > hi)
              std::swap(lo, hi);
            unsigned char x = static_cast<unsigned char>(s[si]);
            if (nocase) {
              lo = static_cast<unsigned char>(std::tolower(lo));
              hi = static_cast<unsigned char>(std::tolower(hi));
              x = static_cast<unsigned char>(std::tolower(x));
            }
            if (x >= lo && x <= hi)
              match = true;
            j += 2;
          } else if (eqc(p[j], s[si])) {
            match = true;
          }
          ++j;
        }
        if (neg)
          match = !match;
        if (match) {
          pi = j < p.size() ? j + 1 : j;
          ++si;
          continue;
        }
      } else {
        char want = c;
        size_t adv = 1;
        if (c == '\\' && pi + 1 < p.size())
          want = p[pi + 1], adv = 2;
        if (eqc(want, s[si])) {
          pi += adv, ++si;
          continue;
        }
      }
    }
    if (star_p == std::string_view::npos)
      return false;
    pi = star_p;
    si = ++star_s;
  }
  while (pi < p.size() && p[pi] == '*')
    ++pi;
  return pi == p.size();
}

} // namespace kura::actors
