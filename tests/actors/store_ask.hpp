// A blocking request to the store broker of spawn_store (the kv_* API) for
// tests: the reply, or a kv_reply whose error says there was none.
#pragma once

#include "actors/messages.hpp"

#include <caf/all.hpp>

#include <chrono>

namespace kura::testing {

template <class... Ts>
actors::kv_reply ask_store(caf::scoped_actor& self, const caf::actor& broker, Ts... xs) {
  actors::kv_reply out;
  out.error = "no reply";
  self->request(broker, std::chrono::seconds(10), xs...)
      .receive([&](actors::kv_reply& r) { out = std::move(r); }, [&](caf::error&) {});
  return out;
}

} // namespace kura::testing
