#include "node/client_hub.hpp"

#include "node/resp_writer.hpp"

#include <algorithm>

namespace kura::node {

namespace {

constexpr std::string_view invalidate_channel = "__redis__:invalidate";

bool starts_with(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.compare(0, p.size(), p) == 0;
}

} // namespace

void put_pubsub_message(out_buffer& out, int resp, std::string_view kind, std::string_view channel,
                        std::string_view payload) {
  put_raw(out, resp == 3 ? ">3\r\n" : "*3\r\n");
  put_bulk(out, kind);
  put_bulk(out, channel);
  put_bulk(out, payload);
}

// -- clients -------------------------------------------------------------------

session* client_hub::client(uint64_t id) const {
  auto i = clients_.find(id);
  return i == clients_.end() ? nullptr : i->second;
}

void client_hub::remove_client(uint64_t id) {
  auto i = clients_.find(id);
  if (i == clients_.end())
    return;
  session& s = *i->second;
  for (auto& ch : channels_of(id))
    unsubscribe(s, ch);
  for (auto& p : patterns_of(id))
    punsubscribe(s, p);
  for (auto& ch : shard_channels_of(id))
    sunsubscribe(s, ch);
  if (s.tracking)
    disable_tracking(s);
  clients_.erase(i);
}

// -- pub/sub -------------------------------------------------------------------

namespace {

using channel_map = std::unordered_map<std::string, std::set<uint64_t>>;

bool add_subscriber(channel_map& m, uint64_t id, std::string_view channel, uint32_t& count) {
  if (!m[std::string{channel}].insert(id).second)
    return false;
  ++count;
  return true;
}

bool remove_subscriber(channel_map& m, uint64_t id, std::string_view channel, uint32_t& count) {
  auto i = m.find(std::string{channel});
  if (i == m.end() || i->second.erase(id) == 0)
    return false;
  if (i->second.empty())
    m.erase(i);
  --count;
  return true;
}

std::vector<std::string> subscribed_to(const channel_map& m, uint64_t id) {
  std::vector<std::string> r;
  for (auto& [ch, ids] : m)
    if (ids.count(id))
      r.push_back(ch);
  std::sort(r.begin(), r.end());
  return r;
}

} // namespace

bool client_hub::subscribe(session& s, std::string_view channel) {
  return add_subscriber(channels_, s.id, channel, s.subscriptions);
}

bool client_hub::unsubscribe(session& s, std::string_view channel) {
  return remove_subscriber(channels_, s.id, channel, s.subscriptions);
}

bool client_hub::ssubscribe(session& s, std::string_view channel) {
  return add_subscriber(shard_channels_, s.id, channel, s.ssubscriptions);
}

bool client_hub::sunsubscribe(session& s, std::string_view channel) {
  return remove_subscriber(shard_channels_, s.id, channel, s.ssubscriptions);
}

std::vector<std::string> client_hub::shard_channels_of(uint64_t id) const {
  return subscribed_to(shard_channels_, id);
}

size_t client_hub::spublish(std::string_view channel, std::string_view msg) {
  size_t n = 0;
  out_buffer buf;
  if (auto i = shard_channels_.find(std::string{channel}); i != shard_channels_.end()) {
    for (uint64_t id : i->second) {
      auto* s = client(id);
      if (!s)
        continue;
      buf.clear();
      put_pubsub_message(buf, s->resp, "smessage", channel, msg);
      deliver(id, std::string_view(buf.data(), buf.size()));
      ++n;
    }
  }
  return n;
}

bool client_hub::psubscribe(session& s, std::string_view pattern) {
  auto& ids = patterns_[std::string{pattern}];
  if (!ids.insert(s.id).second)
    return false;
  ++s.psubscriptions;
  return true;
}

bool client_hub::punsubscribe(session& s, std::string_view pattern) {
  auto i = patterns_.find(std::string{pattern});
  if (i == patterns_.end() || i->second.erase(s.id) == 0)
    return false;
  if (i->second.empty())
    patterns_.erase(i);
  --s.psubscriptions;
  return true;
}

std::vector<std::string> client_hub::channels_of(uint64_t id) const {
  return subscribed_to(channels_, id);
}

std::vector<std::string> client_hub::patterns_of(uint64_t id) const {
  std::vector<std::string> r;
  for (auto& [p, ids] : patterns_)
    if (ids.count(id))
      r.push_back(p);
  return r;
}

size_t client_hub::publish(std::string_view channel, std::string_view msg) {
  size_t n = 0;
  out_buffer buf;
  if (auto i = channels_.find(std::string{channel}); i != channels_.end()) {
    for (uint64_t id : i->second) {
      auto* s = client(id);
      if (!s)
        continue;
      buf.clear();
      put_pubsub_message(buf, s->resp, "message", channel, msg);
      deliver(id, std::string_view(buf.data(), buf.size()));
      ++n;
    }
  }
  for (auto& [p, ids] : patterns_) {
    if (!glob_match(p, channel))
      continue;
    for (uint64_t id : ids) {
      auto* s = client(id);
      if (!s)
        continue;
      buf.clear();
      put_raw(buf, s->resp == 3 ? ">4\r\n" : "*4\r\n");
      put_bulk(buf, "pmessage");
      put_bulk(buf, p);
      put_bulk(buf, channel);
      put_bulk(buf, msg);
      deliver(id, std::string_view(buf.data(), buf.size()));
      ++n;
    }
  }
  return n;
}

std::vector<std::string> client_hub::active_channels(std::string_view pattern) const {
  std::vector<std::string> r;
  for (auto& [ch, ids] : channels_)
    if (!ids.empty() && (pattern.empty() || glob_match(pattern, ch)))
      r.push_back(ch);
  std::sort(r.begin(), r.end());
  return r;
}

size_t client_hub::subscribers(std::string_view channel) const {
  auto i = channels_.find(std::string{channel});
  return i == channels_.end() ? 0 : i->second.size();
}

// -- tracking ------------------------------------------------------------------

std::string client_hub::enable_tracking(session& s, uint32_t flags, uint64_t redirect,
                                        const std::vector<std::string>& prefixes) {
  using namespace tracking_flag;
  bool bc = (flags & bcast) != 0;
  if (!bc && !prefixes.empty())
    return "ERR PREFIX option requires BCAST mode to be enabled";
  if ((flags & optin) && (flags & optout))
    return "ERR You can't use both OPTIN and OPTOUT";
  if (bc && (flags & (optin | optout)))
    return "ERR OPTIN and OPTOUT are not compatible with BCAST";
  if (s.tracking) {
    if (((s.tracking_flags & bcast) != 0) != bc)
      return "ERR You can't switch BCAST mode on/off before disabling tracking for this "
             "client, and then re-enabling it with a different mode.";
    // as Redis: from OPTIN straight to OPTOUT or back is refused
    if (((flags & optin) && (s.tracking_flags & optout)) ||
        ((flags & optout) && (s.tracking_flags & optin)))
      return "ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this "
             "client, and then re-enabling it with a different mode.";
  }
  if (redirect != 0 && redirect != s.id && !client(redirect))
    return "ERR The client ID you want redirect to does not exist";
  if (bc) {
    // a client's prefixes must not overlap (Redis: one invalidation per
    // change); Redis's checks and messages, in its order
    auto mine = s.tracking ? prefixes_of(s.id) : std::vector<std::string>{};
    auto overlap = [](const std::string& a, const std::string& b) {
      return a != b && (starts_with(a, b) || starts_with(b, a));
    };
    for (size_t i = 0; i < prefixes.size(); ++i) {
      for (auto& q : mine)
        if (overlap(prefixes[i], q))
          return "ERR Prefix '" + prefixes[i] + "' overlaps with an existing prefix '" + q +
                 "'. Prefixes for a single client must not overlap.";
      for (size_t j = i + 1; j < prefixes.size(); ++j)
        if (overlap(prefixes[i], prefixes[j]))
          return "ERR Prefix '" + prefixes[i] + "' overlaps with another provided prefix '" +
                 prefixes[j] + "'. Prefixes for a single client must not overlap.";
    }
    std::vector<std::string> all = mine;
    all.insert(all.end(), prefixes.begin(), prefixes.end());
    if (all.empty())
      all.push_back("");
    for (auto& p : all)
      prefixes_[p].insert(s.id);
  }
  if (!s.tracking)
    ++tracking_clients_;
  s.tracking = true;
  s.tracking_flags = flags;
  s.redirect = redirect == s.id ? 0 : redirect;
  return {};
}

void client_hub::drop_tracking(uint64_t id) {
  for (auto i = prefixes_.begin(); i != prefixes_.end();) {
    i->second.erase(id);
    i = i->second.empty() ? prefixes_.erase(i) : std::next(i);
  }
  // default-mode pairs of this client go lazily: key_changed skips clients
  // that no longer track, and a new read re-adds the pair.
}

void client_hub::disable_tracking(session& s) {
  if (!s.tracking)
    return;
  drop_tracking(s.id);
  s.tracking = false;
  s.tracking_flags = 0;
  s.redirect = 0;
  s.caching_once = false;
  --tracking_clients_;
  if (tracking_clients_ == 0) {
    keys_.clear();
    expiries_ = {};
    bcast_expiries_ = {};
    bcast_pending_.clear();
    probe_.clear();
  }
}

std::vector<std::string> client_hub::prefixes_of(uint64_t id) const {
  std::vector<std::string> r;
  for (auto& [p, ids] : prefixes_)
    if (ids.count(id))
      r.push_back(p);
  return r;
}

bool client_hub::wants(const session& s) {
  using namespace tracking_flag;
  if (!s.tracking || (s.tracking_flags & bcast))
    return false;
  if ((s.tracking_flags & optin) && !s.caching_once)
    return false;
  return !((s.tracking_flags & optout) && s.caching_once);
}

void client_hub::key_read(session& s, std::string_view key, bool present, uint64_t expiry_ms) {
  if (wants(s))
    track_key(s, key, present, expiry_ms);
}

void client_hub::key_expires(std::string_view key, uint64_t expiry_ms) {
  if (expiry_ms != 0 && keys_.count(std::string{key}) != 0)
    expiries_.emplace(expiry_ms, std::string{key});
}

void client_hub::track_key(session& s, std::string_view key, bool present, uint64_t expiry_ms) {
  auto [it, fresh] = keys_.try_emplace(std::string{key});
  it->second.insert(s.id);
  if (fresh && expiry_ms != 0)
    expiries_.emplace(expiry_ms, it->first);
  if (fresh && present)
    probe_.push_back(it->first);
  if (fresh)
    enforce_max_keys();
}

size_t client_hub::tracked_items() const noexcept {
  size_t n = 0;
  for (auto& [k, ids] : keys_)
    n += ids.size();
  return n;
}

void client_hub::set_max_keys(uint64_t n) {
  max_keys_ = n;
  enforce_max_keys();
}

void client_hub::enforce_max_keys() {
  // Redis evicts keys of the tracking table (sending their invalidations)
  // until it is within tracking-table-max-keys
  while (max_keys_ != 0 && keys_.size() > max_keys_) {
    std::string k = keys_.begin()->first;
    key_changed(k, 0);
  }
}

void client_hub::send_invalidation(session& to, const std::vector<std::string>* keys) {
  out_buffer buf;
  auto payload = [&] {
    if (keys) {
      put_array_header(buf, keys->size());
      for (auto& k : *keys)
        put_bulk(buf, k);
    } else {
      put_raw(buf, to.resp == 3 ? "_\r\n" : "*-1\r\n");
    }
  };
  auto body = [&] {
    put_bulk(buf, "invalidate");
    payload();
  };
  if (to.redirect == 0) {
    if (to.resp != 3)
      return; // a RESP2 client without REDIRECT cannot receive pushes
    put_raw(buf, ">2\r\n");
    body();
    deliver(to.id, std::string_view(buf.data(), buf.size()));
    return;
  }
  session* target = client(to.redirect);
  if (!target) {
    to.tracking_flags |= tracking_flag::broken_redirect;
    if (to.resp == 3) {
      put_raw(buf, ">2\r\n");
      put_bulk(buf, "tracking-redir-broken");
      put_int(buf, static_cast<int64_t>(to.redirect));
      deliver(to.id, std::string_view(buf.data(), buf.size()));
    }
    return;
  }
  if (target->resp == 3) {
    put_raw(buf, ">2\r\n");
    body();
  } else {
    auto i = channels_.find(std::string{invalidate_channel});
    if (i == channels_.end() || i->second.count(target->id) == 0)
      return; // the redirect client does not listen (yet)
    put_raw(buf, "*3\r\n");
    put_bulk(buf, "message");
    put_bulk(buf, invalidate_channel);
    payload();
  }
  deliver(target->id, std::string_view(buf.data(), buf.size()));
}

void client_hub::key_changed(std::string_view key, uint64_t origin) {
  if (!active())
    return;
  std::string k(key);
  if (auto it = keys_.find(k); it != keys_.end()) {
    auto ids = std::move(it->second);
    keys_.erase(it);
    std::vector<std::string> one{k};
    for (uint64_t id : ids) {
      session* s = client(id);
      if (!s || !s->tracking || (s->tracking_flags & tracking_flag::bcast))
        continue;
      if (id == origin && (s->tracking_flags & tracking_flag::noloop))
        continue;
      send_invalidation(*s, &one);
    }
  }
  // BCAST: collected per prefix, sent by flush_bcast (one message per prefix
  // and client, as Redis sends them before it sleeps)
  for (auto& [p, ids] : prefixes_)
    if (starts_with(k, p))
      bcast_pending_[p].emplace_back(k, origin);
}

void client_hub::flush_bcast() {
  if (bcast_pending_.empty())
    return;
  auto pending = std::move(bcast_pending_);
  bcast_pending_.clear();
  for (auto& [p, changes] : pending) {
    auto pi = prefixes_.find(p);
    if (pi == prefixes_.end())
      continue;
    for (uint64_t id : pi->second) {
      session* s = client(id);
      if (!s || !s->tracking)
        continue;
      bool noloop = (s->tracking_flags & tracking_flag::noloop) != 0;
      // a key counts when someone other than this client (NOLOOP) changed it
      std::vector<std::string> keys;
      for (auto& [k, origin] : changes)
        if (!(noloop && origin == id))
          keys.push_back(k);
      std::sort(keys.begin(), keys.end());
      keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
      if (!keys.empty())
        send_invalidation(*s, &keys);
    }
  }
}

void client_hub::key_written(std::string_view key, uint64_t expiry_ms) {
  if (expiry_ms == 0 || prefixes_.empty())
    return;
  for (auto& [p, ids] : prefixes_)
    if (starts_with(key, p)) {
      bcast_expiries_.emplace(expiry_ms, std::string{key});
      return;
    }
}

void client_hub::flushed(uint64_t origin) {
  if (!active())
    return;
  keys_.clear();
  expiries_ = {};
  bcast_expiries_ = {};
  bcast_pending_.clear();
  probe_.clear();
  for (auto& [id, s] : clients_) {
    if (!s->tracking)
      continue;
    if (id == origin && (s->tracking_flags & tracking_flag::noloop))
      continue;
    send_invalidation(*s, nullptr);
  }
}

void client_hub::expire_due(uint64_t now_ms, const std::function<bool(std::string_view)>& exists) {
  while (!expiries_.empty() && expiries_.top().first <= now_ms) {
    std::string k = expiries_.top().second;
    expiries_.pop();
    key_changed(k, 0);
  }
  // BCAST: a written key whose expiry passed, unless it was written again
  // (a key that still exists after its expiry time was given a new one)
  while (!bcast_expiries_.empty() && bcast_expiries_.top().first <= now_ms) {
    std::string k = bcast_expiries_.top().second;
    bcast_expiries_.pop();
    if (!prefixes_.empty() && !(exists && exists(k)))
      key_changed(k, 0);
  }
  flush_bcast();
}

} // namespace kura::node
