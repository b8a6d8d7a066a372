// KURA.ERASE receipts (node/erase_book.hpp).
#include "node/erase_book.hpp"

#include "node/audit_log.hpp"
#include "tiers/clock.hpp"

#include <openssl/evp.h>

#include <chrono>
#include <cstdio>
#include <deque>
#include <fcntl.h>
#include <fstream>
#include <iostream>
#include <set>
#include <unistd.h>

namespace kura::node {

namespace {

std::string sha256_hex(const std::vector<std::string>& parts) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  for (auto& p : parts) {
    uint64_t n = p.size();
    EVP_DigestUpdate(ctx, &n, sizeof n); // length-prefixed: ("ab","c") != ("a","bc")
    EVP_DigestUpdate(ctx, p.data(), p.size());
  }
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  static const char* hex = "0123456789abcdef";
  std::string r;
  for (unsigned i = 0; i < len; ++i) {
    r += hex[md[i] >> 4];
    r += hex[md[i] & 15];
  }
  return r;
}

/// The value of "name": in a flat JSON object of strings and numbers (as
/// to_json writes it: no nesting, no escapes but \" and \\).
std::optional<std::string> json_field(std::string_view line, std::string_view name) {
  std::string pat = "\"" + std::string{name} + "\":";
  auto at = line.find(pat);
  if (at == std::string_view::npos)
    return std::nullopt;
  size_t i = at + pat.size();
  if (i < line.size() && line[i] == '"') {
    std::string out;
    for (++i; i < line.size() && line[i] != '"'; ++i) {
      if (line[i] == '\\' && i + 1 < line.size())
        ++i;
      out += line[i];
    }
    if (i >= line.size())
      return std::nullopt;
    return out;
  }
  size_t j = i;
  while (j < line.size() && line[j] >= '0' && line[j] <= '9')
    ++j;
  if (j == i)
    return std::nullopt;
  return std::string{line.substr(i, j - i)};
}

} // namespace

std::string erase_receipt::to_json() const {
  std::string s = "{";
  auto str = [&](const char* n, const std::string& v) {
    if (s.size() > 1)
      s += ',';
    s += '"';
    s += n;
    s += "\":";
    s += json_quote(v);
  };
  auto num = [&](const char* n, uint64_t v) {
    s += ",\"";
    s += n;
    s += "\":";
    s += std::to_string(v);
  };
  str("id", id);
  str("node", node);
  str("mode", mode);
  str("digest", digest);
  str("state", state);
  str("error", error);
  num("requested", requested);
  num("matched", matched);
  num("memory", memory);
  num("l3", l3);
  num("l4", l4);
  num("l4_segments", l4_segments);
  num("started_ms", started_ms);
  num("finished_ms", finished_ms);
  if (!nodes.empty()) { // last: json_field finds the top-level fields first
    s += ",\"nodes\":[";
    for (size_t i = 0; i < nodes.size(); ++i) {
      auto& n = nodes[i];
      s += i ? ",{" : "{";
      s += "\"node\":" + json_quote(n.node) + ",\"state\":" + json_quote(n.state);
      for (auto [name, v] : {std::pair<const char*, uint64_t>{"l3", n.l3},
                             {"l4", n.l4},
                             {"hints", n.hints},
                             {"near", n.near},
                             {"l4_segments", n.l4_segments}})
        s += ",\"" + std::string{name} + "\":" + std::to_string(v);
      s += '}';
    }
    s += ']';
  }
  s += '}';
  return s;
}

namespace {

/// json_field as a string (s) or a number (u), for one flat object.
struct json_reader {
  std::string_view obj;
  bool s(const char* n, std::string& out) const {
    auto v = json_field(obj, n);
    if (!v)
      return false;
    out = std::move(*v);
    return true;
  }
  bool u(const char* n, uint64_t& out) const {
    auto v = json_field(obj, n);
    if (!v || v->empty() || v->size() > 19)
      return false;
    out = std::stoull(*v);
    return true;
  }
};

} // namespace

std::optional<erase_receipt> erase_receipt::from_json(std::string_view line) {
  erase_receipt r;
  json_reader j{line};
  if (!j.s("id", r.id) || r.id.empty() || !j.s("node", r.node) || !j.s("mode", r.mode) ||
      !j.s("digest", r.digest) || !j.s("state", r.state) || !j.s("error", r.error) ||
      !j.u("requested", r.requested) || !j.u("matched", r.matched) || !j.u("memory", r.memory) ||
      !j.u("l3", r.l3) || !j.u("l4", r.l4) || !j.u("l4_segments", r.l4_segments) ||
      !j.u("started_ms", r.started_ms) || !j.u("finished_ms", r.finished_ms))
    return std::nullopt;
  auto at = line.find("\"nodes\":[");
  if (at == std::string_view::npos)
    return r;
  for (auto rest = line.substr(at);;) { // one flat object per node
    auto open = rest.find('{'), close = rest.find('}');
    if (open == std::string_view::npos || close == std::string_view::npos || close < open)
      break;
    json_reader o{rest.substr(open, close - open + 1)};
    erase_node_row n;
    if (!o.s("node", n.node) || !o.s("state", n.state) || !o.u("l3", n.l3) || !o.u("l4", n.l4) ||
        !o.u("hints", n.hints) || !o.u("near", n.near) || !o.u("l4_segments", n.l4_segments))
      return std::nullopt;
    r.nodes.push_back(std::move(n));
    rest = rest.substr(close + 1);
  }
  return r;
}

// -- the book ----------------------------------------------------------------------------

erase_book::erase_book(std::string path, std::string node)
    : path_(std::move(path)), node_(std::move(node)) {}

std::string erase_book::load() {
  if (path_.empty())
    return {};
  std::ifstream in(path_);
  if (!in)
    return {}; // no erasure yet
  std::lock_guard<std::mutex> g(mu_);
  std::string line;
  size_t bad = 0;
  while (std::getline(in, line)) {
    auto r = erase_receipt::from_json(line);
    if (!r) {
      ++bad; // a torn last line after a crash
      continue;
    }
    // a job that was running when the node stopped did not finish
    if (r->finished_ms == 0) {
      r->state = "failed";
      r->error = "the node stopped before the erasure finished; run it again";
    }
    receipts_[r->id] = *r;
  }
  return bad == 0 ? std::string{}
                  : std::to_string(bad) + " unreadable line(s) in " + path_ + " skipped";
}

erase_receipt erase_book::start(uint8_t mode, std::vector<std::string> args) {
  erase_receipt r;
  r.node = node_;
  r.mode = mode == erase_kind::prefix ? "prefix" : mode == erase_kind::subject ? "subject" : "key";
  r.digest = sha256_hex(args);
  r.state = "queued";
  r.requested = mode == erase_kind::keys ? args.size() : 1;
  r.started_ms = real_clock::instance().now_ms();
  {
    std::lock_guard<std::mutex> g(mu_);
    char buf[48];
    std::snprintf(buf, sizeof buf, "e%llx-%llu", static_cast<unsigned long long>(r.started_ms),
                  static_cast<unsigned long long>(++seq_));
    r.id = buf;
  }
  put(r);
  dispatcher d;
  {
    std::lock_guard<std::mutex> g(mu_);
    d = dispatch_;
  }
  if (d)
    d(r.id, mode, std::move(args));
  else {
    r.state = "failed";
    r.error = "no erase coordinator on this node";
    r.finished_ms = r.started_ms;
    put(r);
  }
  return r;
}

void erase_book::put(const erase_receipt& r) {
  std::lock_guard<std::mutex> g(mu_);
  receipts_[r.id] = r;
  if (path_.empty())
    return;
  std::string line = r.to_json() + "\n";
  int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) {
    std::cerr << "kura-node: erase: cannot write " << path_ << std::endl;
    return;
  }
  bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  ok = ::fsync(fd) == 0 && ok;
  ::close(fd);
  if (!ok)
    std::cerr << "kura-node: erase: cannot write " << path_ << std::endl;
}

std::optional<erase_receipt> erase_book::get(const std::string& id) const {
  std::lock_guard<std::mutex> g(mu_);
  auto it = receipts_.find(id);
  if (it == receipts_.end())
    return std::nullopt;
  return it->second;
}

} // namespace kura::node
