#include "predictor/key_pattern.hpp"

#include "tiers/hash.hpp"

#include <algorithm>
#include <cctype>

namespace kura::predictor {

namespace {

bool is_delimiter(char c) {
  switch (c) {
  case ':':
  case '/':
  case '.':
  case '?':
  case '&':
  case '=':
  case '-':
  case '_':
  case ',':
  case ';':
  case '|':
  case '#':
  case '@':
  case ' ':
    return true;
  default:
    return false;
  }
}

constexpr uint64_t skeleton_overhead = 96;

} // namespace

key_patterns::key_patterns(uint32_t max_values, uint64_t max_bytes)
    : max_values_(std::max<uint32_t>(1, max_values)), max_bytes_(max_bytes) {}

void key_patterns::split(std::string_view key, split_key& s) {
  s.segments.clear();
  s.delimiters.clear();
  size_t start = 0;
  for (size_t i = 0; i <= key.size(); ++i) {
    if (i == key.size() || is_delimiter(key[i])) {
      s.segments.push_back(key.substr(start, i - start));
      if (i < key.size())
        s.delimiters.push_back(key[i]);
      start = i + 1;
    }
  }
  // The skeleton: the delimiter sequence plus the first non-empty segment (the
  // "table name" of most key schemes), unless that segment is itself variable.
  std::string_view first;
  for (auto seg : s.segments) {
    if (!seg.empty()) {
      first = seg;
      break;
    }
  }
  s.skeleton_id = s.delimiters;
  s.skeleton_id.push_back('\0');
  if (!variable_by_shape(first))
    s.skeleton_id.append(first.data(), first.size());
}

bool key_patterns::variable_by_shape(std::string_view seg) {
  if (seg.empty())
    return false;
  if (std::any_of(seg.begin(), seg.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return true;
  return seg.size() >= 24; // tokens, hashes, base64 ids
}

std::string key_patterns::render(const split_key& s, uint32_t wildcards) {
  std::string out;
  for (size_t i = 0; i < s.segments.size(); ++i) {
    const bool wild =
        variable_by_shape(s.segments[i]) || (i < max_positions && (wildcards >> i) & 1u);
    if (wild)
      out.push_back('*');
    else
      out.append(s.segments[i].data(), s.segments[i].size());
    if (i < s.delimiters.size())
      out.push_back(s.delimiters[i]);
  }
  return out;
}

std::string key_patterns::pattern_of(std::string_view key) const {
  split_key s;
  split(key, s);
  auto it = table_.find(s.skeleton_id);
  return render(s, it == table_.end() ? 0 : it->second.wildcards);
}

std::string key_patterns::learn(std::string_view key) {
  split_key& s = scratch_;
  split(key, s);
  auto it = table_.find(s.skeleton_id);
  if (it == table_.end()) {
    if (bytes_ + skeleton_overhead + s.skeleton_id.size() > max_bytes_)
      return render(s, 0); // table full: shape rules only
    it = table_.emplace(s.skeleton_id, skeleton{}).first;
    bytes_ += skeleton_overhead + s.skeleton_id.size();
  }
  skeleton& sk = it->second;
  const size_t n = std::min(s.segments.size(), max_positions);
  if (sk.values.size() < n)
    sk.values.resize(n);
  for (size_t i = 0; i < n; ++i) {
    if ((sk.wildcards >> i) & 1u || variable_by_shape(s.segments[i]))
      continue;
    auto& vals = sk.values[i];
    const uint64_t h = hash64(s.segments[i], 0x70617474ull);
    if (std::find(vals.begin(), vals.end(), h) != vals.end())
      continue;
    if (vals.size() >= max_values_) {
      // Too many distinct values: a variable position. Its value list is no
      // longer needed.
      sk.wildcards |= 1u << i;
      bytes_ -= vals.size() * sizeof(uint64_t);
      std::vector<uint64_t>().swap(vals);
      continue;
    }
    vals.push_back(h);
    bytes_ += sizeof(uint64_t);
  }
  return render(s, sk.wildcards);
}

void key_patterns::encode(byte_writer& w) const {
  w.u32(max_values_);
  w.u32(static_cast<uint32_t>(table_.size()));
  for (const auto& [id, sk] : table_) {
    w.str(id);
    w.u32(sk.wildcards);
    w.u32(static_cast<uint32_t>(sk.values.size()));
    for (const auto& vals : sk.values) {
      w.u32(static_cast<uint32_t>(vals.size()));
      for (uint64_t h : vals)
        w.u64(h);
    }
  }
}

bool key_patterns::decode(byte_reader& r) {
  table_.clear();
  bytes_ = 0;
  max_values_ = std::max<uint32_t>(1, r.u32());
  const uint32_t n = r.u32();
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    std::string id = r.str(64 * 1024);
    skeleton sk;
    sk.wildcards = r.u32();
    const uint32_t positions = r.u32();
    if (positions > max_positions) {
      r.fail();
      break;
    }
    sk.values.resize(positions);
    for (auto& vals : sk.values) {
      const uint32_t m = r.u32();
      if (m > max_values_) {
        r.fail();
        break;
      }
      for (uint32_t j = 0; j < m && r.ok(); ++j)
        vals.push_back(r.u64());
      bytes_ += m * sizeof(uint64_t);
    }
    bytes_ += skeleton_overhead + id.size();
    table_.emplace(std::move(id), std::move(sk));
  }
  return r.ok();
}

} // namespace kura::predictor
