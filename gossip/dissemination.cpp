#include "gossip/dissemination.hpp"

#include <algorithm>
#include <cmath>

namespace kura::gossip {

void dissemination_queue::push(member_update u) {
  for (auto& it : items_)
    if (it.u.id == u.id) {
      it = item{std::move(u), 0, next_order_++};
      return;
    }
  items_.push_back(item{std::move(u), 0, next_order_++});
}

uint32_t dissemination_queue::limit(size_t n) const {
  return mult_ * static_cast<uint32_t>(std::ceil(std::log10(static_cast<double>(n) + 1.0)));
}

std::vector<member_update> dissemination_queue::take(size_t max, size_t n) {
  std::vector<member_update> out;
  if (items_.empty() || max == 0)
    return out;
  std::sort(items_.begin(), items_.end(), [](const item& a, const item& b) {
    return a.sent != b.sent ? a.sent < b.sent : a.order > b.order;
  });
  uint32_t lim = std::max<uint32_t>(1, limit(n));
  for (size_t i = 0; i < items_.size() && out.size() < max; ++i) {
    out.push_back(items_[i].u);
    ++items_[i].sent;
  }
  items_.erase(std::remove_if(items_.begin(), items_.end(),
                              [lim](const item& it) { return it.sent >= lim; }),
               items_.end());
  return out;
}

} // namespace kura::gossip
