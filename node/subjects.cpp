// Data subjects (node/subjects.hpp).
#include "node/subjects.hpp"

#include "actors/keyspace.hpp"
#include "tiers/seal.hpp"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <iterator>
#include <sstream>
#include <unistd.h>

namespace kura::node {

// -- patterns ---------------------------------------------------------------------------

namespace {

constexpr std::string_view placeholder = "{id}";

std::string trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return std::string{s};
}

} // namespace

std::string glob_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\')
      out += '\\';
    out += c;
  }
  return out;
}

std::string subject_patterns::parse(std::string_view list, subject_patterns& out) {
  out = subject_patterns{};
  std::stringstream ss{std::string{list}};
  std::string one;
  while (std::getline(ss, one, ',')) {
    auto p = trim(one);
    if (p.empty())
      continue;
    auto at = p.find(placeholder);
    if (at == std::string::npos)
      return "subject pattern '" + p + "' has no {id}";
    if (p.find(placeholder, at + 1) != std::string::npos)
      return "subject pattern '" + p + "' has more than one {id}";
    split sp{p.substr(0, at), p.substr(at + placeholder.size())};
    if (!sp.after.empty()) {
      char sep = sp.after.front();
      if (sep == '*' || sep == '?' || sep == '[' || sep == '\\')
        return "subject pattern '" + p +
               "': {id} must end the pattern or be followed by a literal character (the "
               "separator), not '" +
               std::string(1, sep) + "'";
    }
    out.list_.push_back(std::move(p));
    out.parts_.push_back(std::move(sp));
  }
  return {};
}

std::vector<std::string> subject_patterns::globs_for(std::string_view id) const {
  std::vector<std::string> out;
  if (id.empty())
    return out;
  for (auto& sp : parts_) {
    if (!sp.after.empty() && id.find(sp.after.front()) != std::string_view::npos)
      continue; // {id} never spans its separator
    out.push_back(sp.before + glob_escape(id) + sp.after);
  }
  return out;
}

std::vector<std::string> subject_patterns::ids_of(std::string_view key) const {
  std::vector<std::string> out;
  for (auto& sp : parts_) {
    for (size_t s = 0; s < key.size(); ++s) {
      if (!actors::glob_match(sp.before, key.substr(0, s)))
        continue;
      size_t e = sp.after.empty() ? key.size() : key.find(sp.after.front(), s);
      if (e == std::string_view::npos || e == s)
        continue;
      if (!actors::glob_match(sp.after, key.substr(e)))
        continue;
      std::string id{key.substr(s, e - s)};
      bool seen = false;
      for (auto& x : out)
        seen = seen || x == id;
      if (!seen)
        out.push_back(std::move(id));
    }
  }
  return out;
}

// -- explicit tags ----------------------------------------------------------------------
//
// File layout: one byte 'P' (plain) or 'S' (sealed), then records, each
//   u32 LE length, payload
// where the payload is u32 LE key length, key, id (plain), or that sealed
// with the active master key (aad "kura subjects v1").

namespace {

constexpr std::string_view seal_aad = "kura subjects v1";

void put_u32(std::string& s, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    s += static_cast<char>(v >> (8 * i));
}

bool get_u32(std::string_view s, size_t& i, uint32_t& v) {
  if (s.size() - i < 4)
    return false;
  v = 0;
  for (int b = 3; b >= 0; --b)
    v = (v << 8) | static_cast<uint8_t>(s[i + static_cast<size_t>(b)]);
  i += 4;
  return true;
}

std::string write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    auto n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return std::strerror(errno);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

std::string dir_of(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? std::string{"."} : path.substr(0, slash);
}

} // namespace

namespace {

/// A tag's 64-bit hash (FNV-1a over the length-prefixed key and the id,
/// then splitmix64's finalizer): the digest XORs them.
uint64_t tag_hash(std::string_view key, std::string_view id) {
  uint64_t h = 14695981039346656037ull;
  auto mix = [&](std::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ull;
    }
  };
  std::string len;
  put_u32(len, static_cast<uint32_t>(key.size()));
  mix(len);
  mix(key);
  mix(id);
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  return h ^ (h >> 31);
}

uint64_t steady_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

} // namespace

subject_index::subject_index(std::string path, std::shared_ptr<const crypto::keyring> keys)
    : path_(std::move(path)), keys_(std::move(keys)) {}

void subject_index::add_locked(const std::string& key, const std::string& id) {
  if (by_key_[key].insert(id).second) {
    by_id_[id].insert(key);
    ++tags_;
    digest_ ^= tag_hash(key, id);
  }
}

std::string subject_index::record(std::string_view key, std::string_view id) const {
  std::string plain;
  put_u32(plain, static_cast<uint32_t>(key.size()));
  plain += key;
  plain += id;
  if (keys_)
    plain = keys_->seal(seal_aad, plain);
  std::string rec;
  put_u32(rec, static_cast<uint32_t>(plain.size()));
  rec += plain;
  return rec;
}

std::string subject_index::load() {
  std::lock_guard<std::mutex> g(mu_);
  if (path_.empty())
    return {};
  std::ifstream in(path_, std::ios::binary);
  if (!in)
    return {}; // no tag yet
  std::string data{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (data.empty())
    return {};
  char form = data[0];
  if (form != 'P' && form != 'S')
    return path_ + " is not a subjects file";
  if (form == 'S' && !keys_)
    return path_ +
           " is sealed (encryption at rest); set kura.security.encryption-key-file to read it";
  bool again = form == 'P' && keys_ != nullptr; // encryption turned on: seal it now
  size_t i = 1;
  while (i < data.size()) {
    uint32_t n = 0;
    size_t at = i;
    if (!get_u32(data, i, n) || data.size() - i < n) {
      again = true; // a torn last record
      break;
    }
    std::string plain{data.substr(i, n)};
    i += n;
    if (form == 'S') {
      std::string opened;
      if (auto st = keys_->open(seal_aad, plain, opened); !st)
        return path_ + ": record at byte " + std::to_string(at) + ": " + st.message();
      if (crypto::keyring::key_id_of(plain) != keys_->active())
        again = true; // re-seal with the active key
      plain = std::move(opened);
    }
    size_t j = 0;
    uint32_t kn = 0;
    if (!get_u32(plain, j, kn) || plain.size() - j < kn)
      return path_ + ": bad record at byte " + std::to_string(at);
    add_locked(plain.substr(j, kn), plain.substr(j + kn));
  }
  return again ? rewrite_locked() : std::string{};
}

std::string subject_index::rewrite_locked() {
  if (path_.empty())
    return {};
  std::string data(1, keys_ ? 'S' : 'P');
  for (auto& [key, ids] : by_key_)
    for (auto& id : ids)
      data += record(key, id);
  auto tmp = path_ + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return "cannot write " + tmp + ": " + std::strerror(errno);
  auto err = write_all(fd, data);
  if (err.empty() && ::fsync(fd) != 0)
    err = std::strerror(errno);
  ::close(fd);
  if (err.empty() && ::rename(tmp.c_str(), path_.c_str()) != 0)
    err = std::strerror(errno);
  if (!err.empty()) {
    ::unlink(tmp.c_str());
    return "cannot write " + path_ + ": " + err;
  }
  int dfd = ::open(dir_of(path_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return {};
}

int subject_index::tag(std::string_view key, std::string_view id, std::string& error,
                       bool announce) {
  int added = tag_locked(key, id, error);
  if (error.empty() && announce && on_tag)
    on_tag(std::string{key}, std::string{id});
  return added;
}

int subject_index::tag_locked(std::string_view key, std::string_view id, std::string& error) {
  std::lock_guard<std::mutex> g(mu_);
  error.clear();
  auto it = by_key_.find(std::string{key});
  if (it != by_key_.end() && it->second.count(std::string{id}) != 0)
    return 0;
  error = append_locked(record(key, id));
  if (!error.empty())
    return 0;
  add_locked(std::string{key}, std::string{id});
  return 1;
}

std::string subject_index::append_locked(std::string data) {
  if (path_.empty())
    return {};
  int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0)
    return "cannot write " + path_ + ": " + std::strerror(errno);
  if (::lseek(fd, 0, SEEK_END) == 0)
    data.insert(data.begin(), keys_ ? 'S' : 'P');
  auto error = write_all(fd, data);
  if (error.empty() && ::fsync(fd) != 0)
    error = std::strerror(errno);
  ::close(fd);
  return error.empty() ? error : "cannot write " + path_ + ": " + error;
}

bool subject_index::fenced_locked(const std::string& key, const std::string& id, uint64_t now) {
  auto live = [now](std::map<std::string, uint64_t>& m, const std::string& name) {
    auto it = m.find(name);
    if (it == m.end())
      return false;
    if (it->second > now)
      return true;
    m.erase(it);
    return false;
  };
  return live(fenced_keys_, key) || live(fenced_ids_, id);
}

std::string subject_index::digest() const {
  std::lock_guard<std::mutex> g(mu_);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%zu:%016llx", tags_, static_cast<unsigned long long>(digest_));
  return buf;
}

std::vector<std::string> subject_index::page(std::string_view after, size_t max_bytes,
                                             bool& more) const {
  std::lock_guard<std::mutex> g(mu_);
  std::vector<std::string> out;
  size_t bytes = 0;
  auto it = after.empty() ? by_key_.begin() : by_key_.upper_bound(std::string{after});
  for (; it != by_key_.end() && (out.empty() || bytes < max_bytes); ++it)
    for (auto& id : it->second) {
      out.push_back(it->first);
      out.push_back(id);
      bytes += it->first.size() + id.size() + 8;
    }
  more = it != by_key_.end();
  return out;
}

long subject_index::merge(const std::vector<std::string>& pairs, std::string& error) {
  std::lock_guard<std::mutex> g(mu_);
  error.clear();
  uint64_t now = steady_ms();
  std::set<std::pair<std::string, std::string>> fresh;
  std::string data;
  for (size_t i = 0; i + 1 < pairs.size(); i += 2) {
    auto& key = pairs[i];
    auto& id = pairs[i + 1];
    if (id.empty() || fenced_locked(key, id, now))
      continue;
    auto it = by_key_.find(key);
    if (it != by_key_.end() && it->second.count(id) != 0)
      continue;
    if (fresh.emplace(key, id).second)
      data += record(key, id);
  }
  if (fresh.empty())
    return 0;
  error = append_locked(std::move(data));
  if (!error.empty())
    return -1;
  for (auto& [key, id] : fresh)
    add_locked(key, id);
  return static_cast<long>(fresh.size());
}

void subject_index::set_fence_ms(uint64_t ms) {
  std::lock_guard<std::mutex> g(mu_);
  fence_ms_ = ms;
}

std::vector<std::string> subject_index::ids_of(std::string_view key) const {
  std::lock_guard<std::mutex> g(mu_);
  auto it = by_key_.find(std::string{key});
  if (it == by_key_.end())
    return {};
  return {it->second.begin(), it->second.end()};
}

std::vector<std::string> subject_index::keys_of(std::string_view id) const {
  std::lock_guard<std::mutex> g(mu_);
  auto it = by_id_.find(std::string{id});
  if (it == by_id_.end())
    return {};
  return {it->second.begin(), it->second.end()};
}

std::string subject_index::forget(std::string_view id, const std::vector<std::string>& keys) {
  std::lock_guard<std::mutex> g(mu_);
  size_t before = tags_;
  // a member that has not forgotten them yet must not hand them back (merge)
  uint64_t until = steady_ms() + fence_ms_;
  if (!id.empty())
    fenced_ids_[std::string{id}] = until;
  for (auto& k : keys)
    fenced_keys_[k] = until;
  auto drop = [&](const std::string& key, const std::string& sid) {
    auto k = by_key_.find(key);
    if (k != by_key_.end() && k->second.erase(sid) != 0) {
      --tags_;
      digest_ ^= tag_hash(key, sid);
      if (k->second.empty())
        by_key_.erase(k);
    }
    auto s = by_id_.find(sid);
    if (s != by_id_.end()) {
      s->second.erase(key);
      if (s->second.empty())
        by_id_.erase(s);
    }
  };
  if (!id.empty()) {
    auto s = by_id_.find(std::string{id});
    if (s != by_id_.end()) {
      auto ks = s->second; // copy: drop() edits the set
      for (auto& k : ks)
        drop(k, std::string{id});
    }
  }
  for (auto& k : keys) {
    auto it = by_key_.find(k);
    if (it == by_key_.end())
      continue;
    auto ids = it->second;
    for (auto& sid : ids)
      drop(k, sid);
  }
  return tags_ == before ? std::string{} : rewrite_locked();
}

size_t subject_index::size() const {
  std::lock_guard<std::mutex> g(mu_);
  return tags_;
}

} // namespace kura::node
