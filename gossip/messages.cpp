#include "gossip/messages.hpp"

namespace kura::gossip {

const char* to_string(member_state s) {
  switch (s) {
  case member_state::alive:
    return "alive";
  case member_state::suspect:
    return "suspect";
  case member_state::dead:
    return "dead";
  case member_state::left:
    return "left";
  }
  return "?";
}

namespace {

template <class T>
struct type_id;
#define KURA_GOSSIP_TYPE(T, id)                                                                    \
  template <>                                                                                      \
  struct type_id<T> {                                                                              \
    static constexpr msg_type value = msg_type::id;                                                \
  };
KURA_GOSSIP_TYPE(ping_msg, ping)
KURA_GOSSIP_TYPE(ack_msg, ack)
KURA_GOSSIP_TYPE(ping_req_msg, ping_req)
KURA_GOSSIP_TYPE(nack_msg, nack)
KURA_GOSSIP_TYPE(push_pull_msg, push_pull)
KURA_GOSSIP_TYPE(replicate_msg, replicate)
KURA_GOSSIP_TYPE(replicate_ack_msg, replicate_ack)
KURA_GOSSIP_TYPE(fetch_msg, fetch)
KURA_GOSSIP_TYPE(fetch_reply_msg, fetch_reply)
KURA_GOSSIP_TYPE(invalidate_msg, invalidate)
KURA_GOSSIP_TYPE(invalidate_ack_msg, invalidate_ack)
KURA_GOSSIP_TYPE(ae_digest_msg, ae_digest)
KURA_GOSSIP_TYPE(ae_keys_msg, ae_keys)
KURA_GOSSIP_TYPE(ae_repair_msg, ae_repair)
KURA_GOSSIP_TYPE(handoff_msg, handoff)
KURA_GOSSIP_TYPE(handoff_ack_msg, handoff_ack)
KURA_GOSSIP_TYPE(tomb_check_msg, tomb_check)
KURA_GOSSIP_TYPE(tomb_confirm_msg, tomb_confirm)
KURA_GOSSIP_TYPE(hint_msg, hint)
KURA_GOSSIP_TYPE(hold_msg, hold)
KURA_GOSSIP_TYPE(hold_ack_msg, hold_ack)
KURA_GOSSIP_TYPE(stream_req_msg, stream_req)
KURA_GOSSIP_TYPE(stream_batch_msg, stream_batch)
KURA_GOSSIP_TYPE(ae_tree_msg, ae_tree)
#undef KURA_GOSSIP_TYPE

bool valid_updates(const std::vector<member_update>& us) {
  for (auto& u : us)
    if (u.state > static_cast<uint8_t>(member_state::left) || u.id == no_node)
      return false;
  return true;
}

template <class T>
result<message> decode_as(std::string_view payload) {
  auto r = from_msgpack<T>(payload);
  if (!r)
    return r.err();
  if constexpr (std::is_same_v<T, ping_msg> || std::is_same_v<T, ack_msg> ||
                std::is_same_v<T, ping_req_msg>) {
    if (!valid_updates(r->gossip))
      return error{errc::decode_error, "member update with bad state or id"};
  }
  if constexpr (std::is_same_v<T, push_pull_msg>) {
    if (!valid_updates(r->members))
      return error{errc::decode_error, "member update with bad state or id"};
  }
  if constexpr (std::is_same_v<T, ae_digest_msg>) {
    if ((r->prefix_bits != 0 && r->prefix_bits != 8) ||
        r->digests.size() != 256 * std::max<size_t>(1, r->prefixes.size()) ||
        (r->prefix_bits == 0 && !r->prefixes.empty()))
      return error{errc::decode_error, "anti-entropy digest of the wrong shape"};
    for (auto p : r->prefixes)
      if (p > 255)
        return error{errc::decode_error, "anti-entropy prefix out of range"};
  }
  if constexpr (std::is_same_v<T, ae_tree_msg>) {
    auto bits = r->bits;
    if ((bits != 0 && bits != 4 && bits != 8 && bits != 12) ||
        (bits == 0 ? !r->prefixes.empty() || r->digests.size() != 16
                   : r->prefixes.empty() || r->digests.size() != 16 * r->prefixes.size()))
      return error{errc::decode_error, "anti-entropy tree message of the wrong shape"};
    for (auto p : r->prefixes)
      if (p >= (1u << bits))
        return error{errc::decode_error, "anti-entropy tree prefix out of range"};
  }
  return message{std::move(*r)};
}

} // namespace

msg_type type_of(const message& m) {
  return std::visit([](const auto& x) { return type_id<std::decay_t<decltype(x)>>::value; }, m);
}

std::string encode(const message& m) {
  return std::visit(
      [](const auto& x) {
        return seal(static_cast<uint32_t>(type_id<std::decay_t<decltype(x)>>::value), x);
      },
      m);
}

namespace {

/// wire_entry's and replicate_msg's msgpack layout over views of an entry.
struct wire_entry_view {
  std::string_view key, value;
  uint64_t expiry_ms = 0;
  uint64_t hlc = 0;
  uint32_t node = 0;
  uint8_t flags = 0;
  MSGPACK_DEFINE(key, value, expiry_ms, hlc, node, flags);
};
struct replicate_view {
  uint64_t rid = 0;
  wire_entry_view e;
  MSGPACK_DEFINE(rid, e);
};

} // namespace

std::string encode_replicate(uint64_t rid, const entry& e) {
  return seal(static_cast<uint32_t>(msg_type::replicate),
              replicate_view{rid, wire_entry_view{e.key, e.value, e.expiry_ms, e.ver.hlc,
                                                  e.ver.node, e.flags}});
}

result<message> decode_message(std::string_view bytes) {
  auto env = decode_envelope_view(bytes); // (the payload is not copied)
  if (!env)
    return env.err();
  std::string_view p = env->payload;
  switch (static_cast<msg_type>(env->type)) {
  case msg_type::ping:
    return decode_as<ping_msg>(p);
  case msg_type::ack:
    return decode_as<ack_msg>(p);
  case msg_type::ping_req:
    return decode_as<ping_req_msg>(p);
  case msg_type::nack:
    return decode_as<nack_msg>(p);
  case msg_type::push_pull:
    return decode_as<push_pull_msg>(p);
  case msg_type::replicate:
    return decode_as<replicate_msg>(p);
  case msg_type::replicate_ack:
    return decode_as<replicate_ack_msg>(p);
  case msg_type::fetch:
    return decode_as<fetch_msg>(p);
  case msg_type::fetch_reply:
    return decode_as<fetch_reply_msg>(p);
  case msg_type::invalidate:
    return decode_as<invalidate_msg>(p);
  case msg_type::invalidate_ack:
    return decode_as<invalidate_ack_msg>(p);
  case msg_type::ae_digest:
    return decode_as<ae_digest_msg>(p);
  case msg_type::ae_keys:
    return decode_as<ae_keys_msg>(p);
  case msg_type::ae_repair:
    return decode_as<ae_repair_msg>(p);
  case msg_type::handoff:
    return decode_as<handoff_msg>(p);
  case msg_type::handoff_ack:
    return decode_as<handoff_ack_msg>(p);
  case msg_type::tomb_check:
    return decode_as<tomb_check_msg>(p);
  case msg_type::tomb_confirm:
    return decode_as<tomb_confirm_msg>(p);
  case msg_type::hint:
    return decode_as<hint_msg>(p);
  case msg_type::hold:
    return decode_as<hold_msg>(p);
  case msg_type::hold_ack:
    return decode_as<hold_ack_msg>(p);
  case msg_type::stream_req:
    return decode_as<stream_req_msg>(p);
  case msg_type::stream_batch:
    return decode_as<stream_batch_msg>(p);
  case msg_type::ae_tree:
    return decode_as<ae_tree_msg>(p);
  }
  return error{errc::decode_error, "unknown gossip message type " + std::to_string(env->type)};
}

} // namespace kura::gossip
