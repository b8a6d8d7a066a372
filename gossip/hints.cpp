#include "gossip/hints.hpp"

namespace kura::gossip {

void hint_store::add(node_id target, const entry& e) {
  auto& m = hints_[target];
  auto it = m.find(e.key);
  if (it != m.end()) {
    if (it->second.ver < e.ver)
      it->second = e;
    return;
  }
  if (m.size() >= max_) {
    ++dropped_;
    return;
  }
  m.emplace(e.key, e);
}

std::vector<entry> hint_store::peek(node_id target, size_t max) const {
  std::vector<entry> out;
  auto it = hints_.find(target);
  if (it == hints_.end())
    return out;
  for (auto& [k, e] : it->second) {
    if (out.size() >= max)
      break;
    out.push_back(e);
  }
  return out;
}

bool hint_store::acknowledge(node_id target, const std::string& key, const version& held) {
  auto it = hints_.find(target);
  if (it == hints_.end())
    return false;
  auto h = it->second.find(key);
  if (h == it->second.end() || held < h->second.ver)
    return false;
  it->second.erase(h);
  if (it->second.empty())
    hints_.erase(it);
  return true;
}

size_t hint_store::supersede(const std::string& key, const entry& tomb) {
  size_t n = 0;
  for (auto& [t, m] : hints_)
    if (auto h = m.find(key); h != m.end() && h->second.ver < tomb.ver) {
      h->second = tomb;
      ++n;
    }
  return n;
}

size_t hint_store::drop(const std::string& key, const version& upto) {
  size_t n = 0;
  for (auto it = hints_.begin(); it != hints_.end();) {
    auto h = it->second.find(key);
    if (h != it->second.end() && !(upto < h->second.ver)) {
      it->second.erase(h);
      ++n;
    }
    it = it->second.empty() ? hints_.erase(it) : std::next(it);
  }
  return n;
}

std::vector<std::string> hint_store::keys() const {
  std::vector<std::string> out;
  for (auto& [t, m] : hints_)
    for (auto& [k, e] : m)
      out.push_back(k);
  return out;
}

std::vector<node_id> hint_store::targets() const {
  std::vector<node_id> out;
  for (auto& [t, m] : hints_)
    out.push_back(t);
  return out;
}

size_t hint_store::size() const {
  size_t n = 0;
  for (auto& [t, m] : hints_)
    n += m.size();
  return n;
}

size_t hint_store::size(node_id target) const {
  auto it = hints_.find(target);
  return it == hints_.end() ? 0 : it->second.size();
}

} // namespace kura::gossip
