// Client and pub/sub commands: CLIENT (LIST INFO ID SETNAME GETNAME KILL
// NO-EVICT REPLY TRACKING CACHING GETREDIR TRACKINGINFO SETINFO), RESET,
// SUBSCRIBE UNSUBSCRIBE PSUBSCRIBE PUNSUBSCRIBE PUBLISH PUBSUB. The state they
// share lives in node/client_hub.hpp.
#include "node/acl.hpp"
#include "node/client_hub.hpp"
#include "node/command_registry.hpp"
#include "node/command_util.hpp"
#include "node/resp_parser.hpp"
#include "node/security.hpp"

#include <string>
#include <vector>

namespace kura::node {

namespace {

// -- CLIENT LIST / INFO --------------------------------------------------------

/// The ACL user a connection runs as (no user yet: "default").
std::string_view user_name(const session& s) {
  return s.user ? std::string_view{s.user->name} : std::string_view{"default"};
}

std::string client_flags(const session& s) {
  std::string f;
  if (s.subscribed())
    f += 'P';
  if (s.tracking)
    f += 't';
  if (s.tracking_flags & tracking_flag::broken_redirect)
    f += 'R';
  if (s.tracking_flags & tracking_flag::bcast)
    f += 'B';
  if (s.quit || s.killed)
    f += 'c';
  if (s.no_evict)
    f += 'e';
  if (f.empty())
    f = "N";
  return f;
}

/// One line of CLIENT LIST in Redis 7.0's field order.
std::string client_line(const session& s, const command_context& c) {
  auto now = c.ks.clock().mono_ns();
  auto secs = [&](uint64_t t) { return t == 0 || t > now ? 0 : (now - t) / 1'000'000'000; };
  uint64_t qbuf = s.input ? s.input->size() : 0;
  uint64_t qcap = s.input ? s.input->capacity() : 0;
  uint64_t omem = s.output ? s.output->size() : 0;
  uint64_t ocap = s.output ? s.output->capacity() : 0;
  std::string cmd = "NULL";
  if (s.last_cmd >= 0)
    cmd = c.registry.spec(s.last_cmd).name;
  std::string r;
  r.reserve(320);
  r += "id=" + std::to_string(s.id);
  r += " addr=" + s.peer;
  r += " laddr=" + s.local;
  r += " fd=" + std::to_string(s.fd);
  r += " name=" + s.name;
  r += " age=" + std::to_string(secs(s.created_ns));
  r += " idle=" + std::to_string(secs(s.last_ns ? s.last_ns : s.created_ns));
  r += " flags=" + client_flags(s);
  r += " db=0 sub=" + std::to_string(s.subscriptions);
  r += " psub=" + std::to_string(s.psubscriptions);
  r += " ssub=" + std::to_string(s.ssubscriptions) + " multi=-1";
  r += " qbuf=" + std::to_string(qbuf);
  r += " qbuf-free=" + std::to_string(qcap - qbuf);
  r += " argv-mem=0 multi-mem=0"; // arguments are views into qbuf; no MULTI queue
  r += " rbs=" + std::to_string(qcap);
  r += " rbp=" + std::to_string(qcap);
  r += " obl=0 oll=0 omem=" + std::to_string(omem);
  r += " tot-mem=" + std::to_string(qcap + ocap + sizeof(session) + s.name.capacity());
  r += omem > 0 ? " events=rw" : " events=r";
  r += " cmd=" + cmd;
  r += " user=";
  r += user_name(s);
  r += " redir=" + std::to_string(s.tracking ? static_cast<int64_t>(s.redirect) : -1);
  r += " resp=" + std::to_string(s.resp);
  return r;
}

void cmd_client_list(const command_args& a, command_context& c) {
  auto& hub = *c.state.hub;
  std::vector<uint64_t> ids;
  size_t i = 2;
  if (a.size() > 2) {
    if (ieq(a[2], "type") && a.size() == 4) {
      if (ieq(a[3], "pubsub")) {
        for (auto& [id, s] : hub.clients())
          if (s->subscribed())
            ids.push_back(id);
      } else if (ieq(a[3], "normal")) {
        for (auto& [id, s] : hub.clients())
          if (!s->subscribed())
            ids.push_back(id);
      } else if (ieq(a[3], "master") || ieq(a[3], "replica") || ieq(a[3], "slave")) {
        // a standalone node has neither
      } else {
        std::string m = "ERR Unknown client type '";
        m.append(a[3]);
        m += "'";
        return put_error(c.out, m);
      }
    } else if (ieq(a[2], "id") && a.size() >= 4) {
      for (i = 3; i < a.size(); ++i) {
        int64_t id = 0;
        if (!parse_int64(a[i], id) || id <= 0)
          return put_error(c.out, "ERR Invalid client ID");
        if (hub.client(static_cast<uint64_t>(id)))
          ids.push_back(static_cast<uint64_t>(id));
      }
    } else {
      return put_error(c.out, err_syntax);
    }
  } else {
    for (auto& [id, s] : hub.clients())
      ids.push_back(id);
  }
  std::string r;
  for (auto id : ids)
    if (auto* s = hub.client(id)) {
      r += client_line(*s, c);
      r += '\n';
    }
  put_bulk(c.out, r);
}

void cmd_client_info(const command_args&, command_context& c) {
  put_bulk(c.out, client_line(c.sess, c) + "\n");
}

void cmd_client_setname(const command_args& a, command_context& c) {
  for (char ch : a[2])
    if (ch < '!' || ch > '~')
      return put_error(c.out, "ERR Client names cannot contain spaces, newlines or "
                              "special characters.");
  c.sess.name.assign(a[2].data(), a[2].size());
  put_ok(c.out);
}

void cmd_client_getname(const command_args&, command_context& c) {
  if (c.sess.name.empty())
    return put_nil(c.out);
  put_bulk(c.out, c.sess.name);
}

void cmd_client_id(const command_args&, command_context& c) {
  put_int(c.out, static_cast<int64_t>(c.sess.id));
}

void cmd_client_setinfo(const command_args& a, command_context& c) {
  // Redis 7.2's LIB-NAME / LIB-VER: client libraries announce themselves.
  // kura follows 7.0, which does not report them; accept the known attributes.
  if (!ieq(a[2], "lib-name") && !ieq(a[2], "lib-ver")) {
    std::string m = "ERR Unrecognized option '";
    m.append(a[2].substr(0, 128));
    m += "'";
    return put_error(c.out, m);
  }
  put_ok(c.out);
}

// -- CLIENT KILL ---------------------------------------------------------------

/// Marks `s` killed; the broker closes it after this command (its own
/// connection: after the reply).
void kill(session& s, command_context& c) {
  if (&s == &c.sess)
    s.quit = true;
  else
    s.killed = true;
  c.state.kills_pending = true;
}

void cmd_client_kill(const command_args& a, command_context& c) {
  auto& hub = *c.state.hub;
  if (a.size() == 3) { // old form: CLIENT KILL addr:port
    for (auto& [id, s] : hub.clients())
      if (s->peer == a[2]) {
        kill(*s, c);
        return put_ok(c.out);
      }
    return put_error(c.out, "ERR No such client");
  }
  if (a.size() % 2 != 0)
    return put_error(c.out, err_syntax);
  // new form: filters, all of which a client must match
  int64_t id = 0;
  int type = -1; // 0 normal, 1 pubsub, 2 master/replica (none here)
  std::string_view user, addr, laddr;
  bool has_user = false, has_addr = false, has_laddr = false, skipme = true;
  int64_t maxage = 0;
  for (size_t i = 2; i + 1 < a.size(); i += 2) {
    auto opt = a[i];
    auto val = a[i + 1];
    if (ieq(opt, "id")) {
      if (!parse_int64(val, id) || id <= 0)
        return put_error(c.out, "ERR client-id should be greater than 0");
    } else if (ieq(opt, "type")) {
      if (ieq(val, "normal"))
        type = 0;
      else if (ieq(val, "pubsub"))
        type = 1;
      else if (ieq(val, "master") || ieq(val, "replica") || ieq(val, "slave"))
        type = 2;
      else {
        std::string m = "ERR Unknown client type '";
        m.append(val);
        m += "'";
        return put_error(c.out, m);
      }
    } else if (ieq(opt, "user")) {
      if (!c.state.security || !c.state.security->acl->find(val)) {
        std::string m = "ERR No such user '";
        m.append(val);
        m += "'";
        return put_error(c.out, m);
      }
      user = val, has_user = true;
    } else if (ieq(opt, "addr")) {
      addr = val, has_addr = true;
    } else if (ieq(opt, "laddr")) {
      laddr = val, has_laddr = true;
    } else if (ieq(opt, "skipme")) {
      if (ieq(val, "yes"))
        skipme = true;
      else if (ieq(val, "no"))
        skipme = false;
      else
        return put_error(c.out, err_syntax);
    } else if (ieq(opt, "maxage")) {
      if (!parse_int64(val, maxage) || maxage < 0)
        return put_error(c.out, err_not_int);
    } else {
      return put_error(c.out, err_syntax);
    }
  }
  auto now = c.ks.clock().mono_ns();
  auto matches = [&](const session& s) {
    if (id != 0 && s.id != static_cast<uint64_t>(id))
      return false;
    bool pubsub = s.subscribed();
    if (type == 2 || (type == 0 && pubsub) || (type == 1 && !pubsub))
      return false;
    if (has_user && user_name(s) != user)
      return false;
    if (has_addr && s.peer != addr)
      return false;
    if (has_laddr && s.local != laddr)
      return false;
    if (skipme && &s == &c.sess)
      return false;
    if (maxage > 0 && now - s.created_ns < static_cast<uint64_t>(maxage) * 1'000'000'000)
      return false;
    return true;
  };
  int64_t n = 0;
  for (auto& [cid, s] : hub.clients())
    if (!s->killed && matches(*s)) {
      kill(*s, c);
      ++n;
    }
  put_int(c.out, n);
}

// -- CLIENT NO-EVICT / REPLY ---------------------------------------------------

void cmd_client_no_evict(const command_args& a, command_context& c) {
  if (ieq(a[2], "on"))
    c.sess.no_evict = true;
  else if (ieq(a[2], "off"))
    c.sess.no_evict = false;
  else
    return put_error(c.out, err_syntax);
  put_ok(c.out);
}

void cmd_client_reply(const command_args& a, command_context& c) {
  if (ieq(a[2], "on")) {
    c.sess.reply = session::reply_on;
    c.sess.skip_this = false;
    put_ok(c.out);
  } else if (ieq(a[2], "off")) {
    c.sess.reply = session::reply_off;
  } else if (ieq(a[2], "skip")) {
    if (c.sess.reply != session::reply_off)
      c.sess.reply = session::reply_skip;
  } else {
    put_error(c.out, err_syntax);
  }
}

// -- tracking ------------------------------------------------------------------

void cmd_client_tracking(const command_args& a, command_context& c) {
  auto& hub = *c.state.hub;
  bool on;
  if (ieq(a[2], "on"))
    on = true;
  else if (ieq(a[2], "off"))
    on = false;
  else
    return put_error(c.out, err_syntax);
  uint32_t flags = 0;
  uint64_t redirect = 0;
  std::vector<std::string> prefixes;
  for (size_t i = 3; i < a.size(); ++i) {
    if (ieq(a[i], "redirect") && i + 1 < a.size()) {
      int64_t id = 0;
      if (!parse_int64(a[++i], id) || id <= 0)
        return put_error(c.out, "ERR Invalid client ID");
      redirect = static_cast<uint64_t>(id);
    } else if (ieq(a[i], "bcast")) {
      flags |= tracking_flag::bcast;
    } else if (ieq(a[i], "optin")) {
      flags |= tracking_flag::optin;
    } else if (ieq(a[i], "optout")) {
      flags |= tracking_flag::optout;
    } else if (ieq(a[i], "noloop")) {
      flags |= tracking_flag::noloop;
    } else if (ieq(a[i], "prefix") && i + 1 < a.size()) {
      prefixes.emplace_back(a[++i]);
    } else {
      return put_error(c.out, err_syntax);
    }
  }
  if (!on) {
    hub.disable_tracking(c.sess);
    return put_ok(c.out);
  }
  if (auto err = hub.enable_tracking(c.sess, flags, redirect, prefixes); !err.empty())
    return put_error(c.out, err);
  put_ok(c.out);
}

void cmd_client_caching(const command_args& a, command_context& c) {
  auto& s = c.sess;
  if (!s.tracking || !(s.tracking_flags & (tracking_flag::optin | tracking_flag::optout)))
    return put_error(c.out, "ERR CLIENT CACHING can be called only when the client is in "
                            "tracking mode with OPTIN or OPTOUT mode enabled");
  if (ieq(a[2], "yes")) {
    if (!(s.tracking_flags & tracking_flag::optin))
      return put_error(
          c.out, "ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.");
  } else if (ieq(a[2], "no")) {
    if (!(s.tracking_flags & tracking_flag::optout))
      return put_error(
          c.out, "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.");
  } else {
    return put_error(c.out, err_syntax);
  }
  s.caching_once = true;
  put_ok(c.out);
}

void cmd_client_getredir(const command_args&, command_context& c) {
  put_int(c.out, c.sess.tracking ? static_cast<int64_t>(c.sess.redirect) : -1);
}

void cmd_client_trackinginfo(const command_args&, command_context& c) {
  auto& s = c.sess;
  auto& out = c.out;
  put_map_header(out, 3, s.resp);
  put_bulk(out, "flags");
  std::vector<const char*> f;
  if (!s.tracking) {
    f.push_back("off");
  } else {
    f.push_back("on");
    if (s.tracking_flags & tracking_flag::bcast)
      f.push_back("bcast");
    if (s.tracking_flags & tracking_flag::optin) {
      f.push_back("optin");
      if (s.caching_once)
        f.push_back("caching-yes");
    }
    if (s.tracking_flags & tracking_flag::optout) {
      f.push_back("optout");
      if (s.caching_once)
        f.push_back("caching-no");
    }
    if (s.tracking_flags & tracking_flag::noloop)
      f.push_back("noloop");
    if (s.tracking_flags & tracking_flag::broken_redirect)
      f.push_back("broken_redirect");
  }
  put_set_header(out, f.size(), s.resp);
  for (auto* x : f)
    put_bulk(out, x);
  put_bulk(out, "redirect");
  put_int(out, s.tracking ? static_cast<int64_t>(s.redirect) : -1);
  put_bulk(out, "prefixes");
  auto p = c.state.hub->prefixes_of(s.id); // BCAST without PREFIX: the empty prefix, as Redis
  put_array_header(out, p.size());
  for (auto& x : p)
    put_bulk(out, x);
}

// -- RESET ---------------------------------------------------------------------

void cmd_reset(const command_args&, command_context& c) {
  auto& s = c.sess;
  auto& hub = *c.state.hub;
  for (auto& ch : hub.channels_of(s.id))
    hub.unsubscribe(s, ch);
  for (auto& p : hub.patterns_of(s.id))
    hub.punsubscribe(s, p);
  hub.disable_tracking(s);
  s.name.clear();
  s.reply = session::reply_on;
  s.skip_this = false;
  s.no_evict = false;
  s.resp = 2;
  put_status(c.out, "RESET");
}

// -- pub/sub -------------------------------------------------------------------

void put_sub_reply(command_context& c, std::string_view kind, const std::string_view* channel) {
  auto& s = c.sess;
  put_raw(c.out, s.resp == 3 ? ">3\r\n" : "*3\r\n");
  put_bulk(c.out, kind);
  if (channel)
    put_bulk(c.out, *channel);
  else
    put_nil(c.out);
  // shard subscriptions count apart, as Redis 7's replies do
  bool shard = kind == "ssubscribe" || kind == "sunsubscribe";
  put_int(c.out,
          static_cast<int64_t>(shard ? s.ssubscriptions : s.subscriptions + s.psubscriptions));
}

void cmd_subscribe(const command_args& a, command_context& c) {
  for (size_t i = 1; i < a.size(); ++i) {
    c.state.hub->subscribe(c.sess, a[i]);
    put_sub_reply(c, "subscribe", &a[i]);
  }
}

void cmd_psubscribe(const command_args& a, command_context& c) {
  for (size_t i = 1; i < a.size(); ++i) {
    c.state.hub->psubscribe(c.sess, a[i]);
    put_sub_reply(c, "psubscribe", &a[i]);
  }
}

void cmd_ssubscribe(const command_args& a, command_context& c) {
  for (size_t i = 1; i < a.size(); ++i) {
    c.state.hub->ssubscribe(c.sess, a[i]);
    put_sub_reply(c, "ssubscribe", &a[i]);
  }
}

enum class sub_kind { channel, pattern, shard };

void unsubscribe_all(const command_args& a, command_context& c, sub_kind k) {
  auto& hub = *c.state.hub;
  const char* kind = k == sub_kind::pattern ? "punsubscribe"
                     : k == sub_kind::shard ? "sunsubscribe"
                                            : "unsubscribe";
  std::vector<std::string> names;
  if (a.size() > 1)
    names.assign(a.begin() + 1, a.end());
  else
    names = k == sub_kind::pattern ? hub.patterns_of(c.sess.id)
            : k == sub_kind::shard ? hub.shard_channels_of(c.sess.id)
                                   : hub.channels_of(c.sess.id);
  if (names.empty())
    return put_sub_reply(c, kind, nullptr);
  for (auto& n : names) {
    if (k == sub_kind::pattern)
      hub.punsubscribe(c.sess, n);
    else if (k == sub_kind::shard)
      hub.sunsubscribe(c.sess, n);
    else
      hub.unsubscribe(c.sess, n);
    std::string_view v = n;
    put_sub_reply(c, kind, &v);
  }
}

void cmd_unsubscribe(const command_args& a, command_context& c) {
  unsubscribe_all(a, c, sub_kind::channel);
}

void cmd_punsubscribe(const command_args& a, command_context& c) {
  unsubscribe_all(a, c, sub_kind::pattern);
}

void cmd_sunsubscribe(const command_args& a, command_context& c) {
  unsubscribe_all(a, c, sub_kind::shard);
}

void cmd_spublish(const command_args& a, command_context& c) {
  put_int(c.out, static_cast<int64_t>(c.state.hub->spublish(a[1], a[2])));
}

void cmd_publish(const command_args& a, command_context& c) {
  put_int(c.out, static_cast<int64_t>(c.state.hub->publish(a[1], a[2])));
}

void cmd_pubsub_channels(const command_args& a, command_context& c) {
  if (a.size() > 3)
    return wrong_args(c.out, "pubsub|channels");
  auto ch = c.state.hub->active_channels(a.size() == 3 ? a[2] : std::string_view{});
  put_array_header(c.out, ch.size());
  for (auto& x : ch)
    put_bulk(c.out, x);
}

void cmd_pubsub_numsub(const command_args& a, command_context& c) {
  put_array_header(c.out, (a.size() - 2) * 2);
  for (size_t i = 2; i < a.size(); ++i) {
    put_bulk(c.out, a[i]);
    put_int(c.out, static_cast<int64_t>(c.state.hub->subscribers(a[i])));
  }
}

void cmd_pubsub_numpat(const command_args&, command_context& c) {
  put_int(c.out, static_cast<int64_t>(c.state.hub->pattern_count()));
}

} // namespace

void register_client_commands(command_registry& r) {
  r.add("client", -2, "", nullptr)
      .acl("@slow")
      .doc("A container for client connection commands", "2.4.0", "connection",
           "Depends on subcommand.");
  r.add_sub("client", "setname", 3, "noscript loading stale", cmd_client_setname)
      .acl("@slow @connection")
      .doc("Set the current connection name", "2.6.9", "connection", "O(1)");
  r.add_sub("client", "getname", 2, "noscript loading stale", cmd_client_getname)
      .acl("@slow @connection")
      .doc("Get the current connection name", "2.6.9", "connection", "O(1)");
  r.add_sub("client", "id", 2, "noscript loading stale", cmd_client_id)
      .acl("@slow @connection")
      .doc("Returns the client ID for the current connection", "5.0.0", "connection", "O(1)");
  r.add_sub("client", "info", 2, "noscript loading stale", cmd_client_info)
      .acl("@slow @connection")
      .tips("nondeterministic_output")
      .doc("Returns information about the current client connection.", "6.2.0", "connection",
           "O(1)");
  r.add_sub("client", "list", -2, "admin noscript loading stale", cmd_client_list)
      .acl("@admin @slow @dangerous @connection")
      .tips("nondeterministic_output")
      .doc("Get the list of client connections", "2.4.0", "connection",
           "O(N) where N is the number of client connections");
  r.add_sub("client", "kill", -3, "admin noscript loading stale", cmd_client_kill)
      .acl("@admin @slow @dangerous @connection")
      .doc("Kill the connection of a client", "2.4.0", "connection",
           "O(N) where N is the number of client connections");
  r.add_sub("client", "no-evict", 3, "admin noscript loading stale", cmd_client_no_evict)
      .acl("@admin @slow @dangerous @connection")
      .doc("Set client eviction mode for the current connection", "7.0.0", "connection", "O(1)");
  r.add_sub("client", "reply", 3, "noscript loading stale", cmd_client_reply)
      .acl("@slow @connection")
      .doc("Instruct the server whether to reply to commands", "3.2.0", "connection", "O(1)");
  r.add_sub("client", "tracking", -3, "noscript loading stale", cmd_client_tracking)
      .acl("@slow @connection")
      .doc("Enable or disable server assisted client side caching support", "6.0.0", "connection",
           "O(1). Some options may introduce additional complexity.");
  r.add_sub("client", "caching", 3, "noscript loading stale", cmd_client_caching)
      .acl("@slow @connection")
      .doc("Instruct the server about tracking or not keys in the next request", "6.0.0",
           "connection", "O(1)");
  r.add_sub("client", "getredir", 2, "noscript loading stale", cmd_client_getredir)
      .acl("@slow @connection")
      .doc("Get tracking notifications redirection client ID if any", "6.0.0", "connection",
           "O(1)");
  r.add_sub("client", "trackinginfo", 2, "noscript loading stale", cmd_client_trackinginfo)
      .acl("@slow @connection")
      .doc("Return information about server assisted client side caching for the current "
           "connection",
           "6.2.0", "connection", "O(1)");
  r.add_sub("client", "setinfo", 4, "noscript loading stale", cmd_client_setinfo)
      .acl("@slow @connection")
      .tips("request_policy:all_nodes response_policy:all_succeeded")
      .doc("Set client or connection specific info", "7.2.0", "connection", "O(1)");

  r.add("reset", 1, "noscript loading stale fast no_auth allow_busy", cmd_reset)
      .acl("@fast @connection")
      .doc("Reset the connection", "6.2.0", "connection", "O(1)");

  r.add("subscribe", -2, "pubsub noscript loading stale", cmd_subscribe)
      .acl("@pubsub @slow")
      .doc("Listen for messages published to the given channels", "2.0.0", "pubsub",
           "O(N) where N is the number of channels to subscribe to.");
  r.add("unsubscribe", -1, "pubsub noscript loading stale", cmd_unsubscribe)
      .acl("@pubsub @slow")
      .doc("Stop listening for messages posted to the given channels", "2.0.0", "pubsub",
           "O(N) where N is the number of clients already subscribed to a channel.");
  r.add("psubscribe", -2, "pubsub noscript loading stale", cmd_psubscribe)
      .acl("@pubsub @slow")
      .doc("Listen for messages published to channels matching the given patterns", "2.0.0",
           "pubsub", "O(N) where N is the number of patterns the client is already subscribed to.");
  r.add("punsubscribe", -1, "pubsub noscript loading stale", cmd_punsubscribe)
      .acl("@pubsub @slow")
      .doc("Stop listening for messages posted to channels matching the given patterns", "2.0.0",
           "pubsub",
           "O(N+M) where N is the number of patterns the client is already subscribed and M is "
           "the number of total patterns subscribed in the system (by any client).");
  r.add("publish", 3, "pubsub loading stale fast may_replicate", cmd_publish)
      .acl("@pubsub @fast")
      .doc("Post a message to a channel", "2.0.0", "pubsub",
           "O(N+M) where N is the number of clients subscribed to the receiving channel and M is "
           "the total number of subscribed patterns (by any client).");
  // shard pub/sub (Redis 7): on one node, SPUBLISH reaches this node's
  // SSUBSCRIBE clients; in a cluster each node delivers its own subscribers
  r.add("ssubscribe", -2, "pubsub noscript loading stale", cmd_ssubscribe)
      .acl("@pubsub @slow")
      .doc("Listen for messages published to the given shard channels", "7.0.0", "pubsub",
           "O(N) where N is the number of shard channels to subscribe to.");
  r.add("sunsubscribe", -1, "pubsub noscript loading stale", cmd_sunsubscribe)
      .acl("@pubsub @slow")
      .doc("Stop listening for messages posted to the given shard channels", "7.0.0", "pubsub",
           "O(N) where N is the number of clients already subscribed to a shard channel.");
  r.add("spublish", 3, "pubsub loading stale fast may_replicate", cmd_spublish)
      .acl("@pubsub @fast")
      .doc("Post a message to a shard channel", "7.0.0", "pubsub",
           "O(N) where N is the number of clients subscribed to the receiving shard channel.");
  r.add("pubsub", -2, "", nullptr)
      .acl("@slow")
      .doc("A container for Pub/Sub commands", "2.8.0", "pubsub", "Depends on subcommand.");
  r.add_sub("pubsub", "channels", -2, "pubsub loading stale", cmd_pubsub_channels)
      .acl("@pubsub @slow")
      .doc("List active channels", "2.8.0", "pubsub",
           "O(N) where N is the number of active channels, and assuming constant time pattern "
           "matching (relatively short channels and patterns)");
  r.add_sub("pubsub", "numsub", -2, "pubsub loading stale", cmd_pubsub_numsub)
      .acl("@pubsub @slow")
      .doc("Get the count of subscribers for channels", "2.8.0", "pubsub",
           "O(N) for the NUMSUB subcommand, where N is the number of requested channels");
  r.add_sub("pubsub", "numpat", 2, "pubsub loading stale", cmd_pubsub_numpat)
      .acl("@pubsub @slow")
      .doc("Get the count of unique patterns pattern subscriptions", "2.8.0", "pubsub", "O(1)");
}

} // namespace kura::node
