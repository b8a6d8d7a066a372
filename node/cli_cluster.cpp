// The kura CLI's ring commands: see node/cli_cluster.hpp.
#include "node/cli_cluster.hpp"

#include "actors/cluster.hpp"
#include "actors/messages.hpp"
#include "actors/peer_link.hpp"
#include "gossip/rebalance.hpp"
#include "node/cli_reply.hpp"
#include "node/json_writer.hpp"
#include "node/ops.hpp"
#include "tiers/slot.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <map>
#include <optional>
#include <thread>
#include <unistd.h>

namespace kura::node {

std::chrono::milliseconds& cli_stall_timeout() {
  static std::chrono::milliseconds t{0};
  return t;
}

using namespace actors;

namespace {

/// Ctrl-C while a move is watched: detach, the node goes on.
extern "C" void on_detach(int) {
  static const char msg[] =
      "\nkura: detached; the operation goes on on the node ('kura status' shows it)\n";
  auto n = ::write(2, msg, sizeof(msg) - 1);
  (void)n;
  ::_exit(0);
}

std::optional<std::string> ask(caf::actor_system& sys, caf::scoped_actor& self,
                               const caf::actor& ops, caf::message req,
                               std::chrono::milliseconds timeout, std::string& why) {
  std::optional<std::string> out;
  self->request(ops, timeout, std::move(req))
      .receive([&](std::string& bytes) { out = std::move(bytes); },
               [&](caf::error& err) { why = sys.render(err); });
  return out;
}

/// The sealed T (members_reply, cluster_op_reply) `ops` answers `req` with;
/// nullopt and `why` when it did not answer (`unreachable`) or refused.
template <class T>
std::optional<T> ask_sealed(caf::actor_system& sys, caf::scoped_actor& self, const caf::actor& ops,
                            caf::message req, cluster_msg_type type,
                            std::chrono::milliseconds timeout, std::string& why,
                            bool& unreachable) {
  unreachable = false;
  auto bytes = ask(sys, self, ops, std::move(req), timeout, why);
  if (!bytes) {
    unreachable = true;
    return std::nullopt;
  }
  auto env = decode_envelope(*bytes);
  if (!env || env->type != static_cast<uint32_t>(type)) {
    why = "bad answer from the node";
    return std::nullopt;
  }
  auto rep = from_msgpack<T>(env->payload);
  if (!rep) {
    why = "bad answer from the node: " + rep.err().message;
    return std::nullopt;
  }
  if (!rep->error.empty()) {
    why = rep->error;
    return std::nullopt;
  }
  return std::move(*rep);
}

std::optional<members_reply> ask_members(caf::actor_system& sys, caf::scoped_actor& self,
                                         const caf::actor& ops, std::chrono::milliseconds timeout,
                                         std::string& why, bool& unreachable) {
  auto& cred = cli_credentials();
  return ask_sealed<members_reply>(sys, self, ops,
                                   caf::make_message(members_atom::value, cred.user, cred.password),
                                   cluster_msg_type::members, timeout, why, unreachable);
}

std::optional<cluster_op_reply> ask_cop(caf::actor_system& sys, caf::scoped_actor& self,
                                        const caf::actor& ops, const std::string& op,
                                        std::vector<std::string> args,
                                        std::chrono::milliseconds timeout, std::string& why,
                                        bool& unreachable) {
  auto& cred = cli_credentials();
  return ask_sealed<cluster_op_reply>(
      sys, self, ops,
      caf::make_message(cop_atom::value, cred.user, cred.password, op, std::move(args)),
      cluster_msg_type::op_reply, timeout, why, unreachable);
}

/// The ops actor published on host:port (null when it cannot be reached).
caf::actor connect_ops(caf::actor_system& sys, caf::scoped_actor& self, const std::string& hp,
                       std::chrono::milliseconds timeout, int tries = 3) {
  std::string host;
  uint16_t port = 0;
  if (!split_host_port(hp, host, port))
    return {};
  caf::actor out;
  // 3 tries: a connect can lose the race with the CLI's heartbeat (node/cli.cpp)
  for (int attempt = 0; attempt < tries && !out; ++attempt)
    self->request(actors::peer_connector(sys), timeout, caf::connect_atom::value, host, port)
        .receive(
            [&](const caf::node_id&, caf::strong_actor_ptr& ptr, const std::set<std::string>&) {
              if (ptr)
                out = caf::actor_cast<caf::actor>(std::move(ptr));
            },
            [&](caf::error&) {});
  return out;
}

/// ask_cop against the member at `address` (its ops actor in `peer`); a
/// member that does not answer (a slow node, a dropped link) is dialed again
/// and asked again, `tries` times in all.
std::optional<cluster_op_reply> ask_peer(caf::actor_system& sys, caf::scoped_actor& self,
                                         caf::actor& peer, const std::string& address,
                                         const std::string& op, std::vector<std::string> args,
                                         std::chrono::milliseconds timeout, std::string& why,
                                         bool& unreachable, int tries = 3) {
  for (int i = 0;; ++i) {
    auto rep = ask_cop(sys, self, peer, op, args, timeout, why, unreachable);
    if (rep || !unreachable || i + 1 >= tries)
      return rep;
    if (auto again = connect_ops(sys, self, address, timeout))
      peer = again;
  }
}

int fail(bool json, const std::string& why, int rc = 1) {
  if (json)
    std::cout << json_writer{}.begin_object().key("error").str(why).end_object().str() << "\n";
  std::cerr << "kura: " << why << "\n";
  return rc;
}

void write_move(json_writer& j, const move_row& m) {
  j.begin_object().key("active").boolean(m.active).key("leaving").boolean(m.leaving);
  j.key("ranges").num(m.ranges).key("ranges_done").num(m.ranges_done);
  j.key("keys").num(m.keys).key("bytes").num(m.bytes).key("keys_expected").num(m.keys_expected);
  j.key("elapsed_ms").num(m.elapsed_ms).key("rate_bytes_per_s").num(m.rate);
  j.key("eta_ms");
  if (m.eta_ms < 0)
    j.null();
  else
    j.num(m.eta_ms);
  j.key("stream_rate").num(m.stream_rate).key("keys_held").num(m.keys_held).end_object();
}

double move_fraction(const move_row& m) {
  if (!m.active)
    return 1.0;
  if (m.keys_expected > 0)
    return std::min(1.0, static_cast<double>(m.keys) / static_cast<double>(m.keys_expected));
  return m.ranges == 0 ? 0.0 : static_cast<double>(m.ranges_done) / static_cast<double>(m.ranges);
}

std::string move_detail(const move_row& m) {
  char eta[32] = "-";
  if (m.eta_ms >= 0)
    std::snprintf(eta, sizeof(eta), "%.0f s", static_cast<double>(m.eta_ms) / 1000.0);
  std::string keys = std::to_string(m.keys);
  if (m.keys_expected > 0)
    keys += "/" + std::to_string(m.keys_expected);
  return "keys " + keys + "  " + human_bytes(static_cast<double>(m.bytes)) + "  " +
         human_bytes(static_cast<double>(m.rate)) + "/s  ETA " + eta;
}

/// How long a watched move may show no change at all (keys, bytes, ranges
/// moved, keys held, ring) before the CLI gives up and says so (exit 3);
/// 20 x --timeout when that is longer; --stall-timeout sets it exactly.
constexpr std::chrono::seconds move_stall{60};

std::chrono::milliseconds stall_limit(std::chrono::milliseconds timeout) {
  if (cli_stall_timeout().count() > 0)
    return cli_stall_timeout();
  return std::max<std::chrono::milliseconds>(move_stall, timeout * 20);
}

std::string seconds_text(std::chrono::milliseconds d) {
  if (d.count() % 1000 != 0) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(d.count()) / 1000.0);
    return buf;
  }
  return std::to_string(std::chrono::duration_cast<std::chrono::seconds>(d).count()) + " s";
}

/// Polls the node's move until `done` holds (or the node went away: its
/// last answer is returned with `gone`; or nothing changed for
/// stall_limit: `stalled`), drawing the bar unless `json`.
template <class Done>
move_row watch(caf::actor_system& sys, caf::scoped_actor& self, const caf::actor& ops,
               std::chrono::milliseconds timeout, bool json, bool& gone, bool& stalled, Done done) {
  std::signal(SIGINT, on_detach);
  move_row last;
  gone = stalled = false;
  bool drawn = false;
  auto limit = stall_limit(timeout);
  auto last_change = std::chrono::steady_clock::now();
  std::optional<std::tuple<bool, uint64_t, uint64_t, uint64_t, uint64_t>> last_sig;
  for (;;) {
    std::string why;
    bool unreachable = false;
    auto rep = ask_cop(sys, self, ops, "status", {}, timeout, why, unreachable);
    if (!rep) {
      gone = true;
      break;
    }
    last = rep->move;
    if (!json) {
      draw_progress(std::cerr, move_fraction(last), move_detail(last));
      drawn = true;
    }
    if (done(*rep))
      break;
    auto sig =
        std::make_tuple(last.active, last.keys, last.bytes, last.ranges_done, last.keys_held);
    auto t = std::chrono::steady_clock::now();
    if (sig != last_sig) {
      last_sig = sig;
      last_change = t;
    } else if (t - last_change >= limit) {
      stalled = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  if (drawn)
    std::cerr << "\n";
  std::signal(SIGINT, SIG_DFL);
  return last;
}

/// The members (as `ops`'s node lists them) that keep a move from going
/// on: "n2 does not answer (127.0.0.1:7402)" for a live or suspect member
/// whose ops port does not answer `status` (a SIGSTOPped or hung process, a
/// cut link), "n3 is suspect" for one the node suspects; empty when all
/// answer (or the node itself does not).
std::string silent_members(caf::actor_system& sys, caf::scoped_actor& self, const caf::actor& ops,
                           std::chrono::milliseconds timeout) {
  std::string why;
  bool unreachable = false;
  auto mem = ask_members(sys, self, ops, timeout, why, unreachable);
  if (!mem)
    return {};
  std::string out;
  for (auto& r : mem->members) {
    if (r.self || (r.state != "alive" && r.state != "suspect"))
      continue;
    bool answers = false;
    if (auto peer = connect_ops(sys, self, r.address, timeout, 1))
      answers = ask_cop(sys, self, peer, "status", {}, timeout, why, unreachable).has_value() ||
                !unreachable;
    std::string text;
    if (!answers)
      text = r.id + " does not answer (" + r.address + ")";
    else if (r.state == "suspect")
      text = r.id + " is suspect";
    if (!text.empty())
      out += (out.empty() ? "" : ", ") + text;
  }
  return out;
}

/// The error of a watched move that stopped changing; names the members
/// that do not answer (they hold up hand-offs and streams).
std::string stalled_text(caf::actor_system& sys, caf::scoped_actor& self, const caf::actor& ops,
                         const std::string& what, const move_row& m,
                         std::chrono::milliseconds timeout) {
  auto silent = silent_members(sys, self, ops, timeout);
  return what + ": nothing moved for " + seconds_text(stall_limit(timeout)) + " (" +
         std::to_string(m.ranges_done) + "/" + std::to_string(m.ranges) + " ranges, " +
         std::to_string(m.keys) + " keys moved, " + std::to_string(m.keys_held) + " keys held" +
         (silent.empty() ? std::string{} : "; waiting for: " + silent) +
         "); it goes on on the node ('kura status' shows it)";
}

int print_members(caf::actor_system& sys, caf::scoped_actor& self, const caf::actor& ops, bool json,
                  std::chrono::milliseconds timeout) {
  std::string why;
  bool unreachable = false;
  auto rep = ask_members(sys, self, ops, timeout, why, unreachable);
  if (!rep) {
    if (unreachable) {
      std::cerr << "kura: no answer from the node (" << why << ")\n";
      return 2;
    }
    return fail(json, why);
  }
  if (json) {
    json_writer j;
    j.begin_array();
    for (auto& m : rep->members) {
      j.begin_object().key("id").str(m.id).key("address").str(m.address);
      j.key("state").str(m.state).key("incarnation").num(static_cast<uint64_t>(m.incarnation));
      j.key("share").num(m.share, 6).key("self").boolean(m.self).key("drained").boolean(m.drained);
      if (m.self) {
        j.key("move");
        write_move(j, rep->move);
      }
      j.end_object();
    }
    std::cout << j.end_array().str() << "\n";
    return 0;
  }
  size_t w_id = 2, w_addr = 7;
  for (auto& m : rep->members) {
    w_id = std::max(w_id, m.id.size() + 1);
    w_addr = std::max(w_addr, m.address.size());
  }
  auto pad = [](const std::string& s, size_t w) { return s + std::string(w - s.size() + 2, ' '); };
  std::cout << pad("ID", w_id) << pad("ADDRESS", w_addr) << "STATE    INCARNATION  SHARE\n";
  for (auto& m : rep->members) {
    char share[32];
    std::snprintf(share, sizeof(share), "%.1f%%", m.share * 100);
    std::cout << pad(m.id + (m.self ? "*" : ""), w_id) << pad(m.address, w_addr)
              << pad(m.drained && m.state == "alive" ? "drained" : m.state, 7)
              << pad(std::to_string(m.incarnation), 11) << share << "\n";
  }
  if (auto d = describe_move(rep->move); !d.empty())
    std::cout << "moving (this node): " << d << "\n";
  return 0;
}

std::string ranges_text(const std::vector<uint32_t>& r, size_t max_chars) {
  std::string out;
  for (size_t i = 0; i + 1 < r.size(); i += 2) {
    std::string one = r[i] == r[i + 1] ? std::to_string(r[i])
                                       : std::to_string(r[i]) + "-" + std::to_string(r[i + 1]);
    if (out.size() + one.size() + 1 > max_chars) {
      out += " ...";
      break;
    }
    out += (out.empty() ? "" : " ") + one;
  }
  return out;
}

int print_ring(caf::actor_system& sys, caf::scoped_actor& self, const caf::actor& ops, bool json,
               std::chrono::milliseconds timeout) {
  std::string why;
  bool unreachable = false;
  auto rep = ask_cop(sys, self, ops, "ring", {}, timeout, why, unreachable);
  if (!rep)
    return unreachable ? fail(json, "no answer from the node (" + why + ")", 2) : fail(json, why);
  // Keys per node: each member's own count, from its ops port; bytes: the
  // live keys' key + value bytes it holds (its slot stats).
  std::map<std::string, std::optional<uint64_t>> keys, bytes;
  for (auto& r : rep->ring) {
    auto peer = connect_ops(sys, self, r.address, timeout);
    if (!peer)
      continue;
    std::string w;
    bool u = false;
    if (auto st = ask_cop(sys, self, peer, "status", {}, timeout, w, u))
      keys[r.id] = st->move.keys_held;
    if (auto st = ask_cop(sys, self, peer, "slots", {}, timeout, w, u)) {
      uint64_t b = 0;
      for (size_t i = 0; i + 2 < st->slot_stats.size(); i += 3)
        b += st->slot_stats[i + 2];
      bytes[r.id] = b;
    }
  }
  double slot_mean = 0, slot_max = 0;
  for (auto& r : rep->ring) {
    slot_mean += r.slots_owned;
    slot_max = std::max(slot_max, static_cast<double>(r.slots_owned));
  }
  slot_mean /= std::max<size_t>(1, rep->ring.size());
  auto max_mean = [&](std::map<std::string, std::optional<uint64_t>>& per) {
    std::vector<double> v;
    for (auto& r : rep->ring)
      if (auto k = per[r.id])
        v.push_back(static_cast<double>(*k));
    return gossip::max_over_mean(v);
  };
  double keys_mm = max_mean(keys), bytes_mm = max_mean(bytes);
  if (json) {
    json_writer j;
    j.begin_object().key("nodes").begin_array();
    for (auto& r : rep->ring) {
      j.begin_object().key("id").str(r.id).key("address").str(r.address).key("state").str(r.state);
      j.key("slots_owned").num(r.slots_owned).key("slots_replicated").num(r.slots_replicated);
      j.key("tokens").num(r.tokens);
      for (auto* f : {&keys, &bytes}) {
        j.key(f == &keys ? "keys" : "bytes");
        if (auto k = (*f)[r.id])
          j.num(*k);
        else
          j.null();
      }
      j.key("ranges").begin_array();
      for (size_t i = 0; i + 1 < r.ranges.size(); i += 2)
        j.begin_array().num(r.ranges[i]).num(r.ranges[i + 1]).end_array();
      j.end_array().end_object();
    }
    j.end_array();
    j.key("slots_max_over_mean").num(slot_mean > 0 ? slot_max / slot_mean : 0.0, 4);
    j.key("keys_max_over_mean").num(keys_mm, 4).key("bytes_max_over_mean").num(bytes_mm, 4);
    std::cout << j.end_object().str() << "\n";
    return 0;
  }
  char line[512];
  std::snprintf(line, sizeof(line), "%-12s %-22s %-8s %6s %6s %6s %10s %10s  %s\n", "ID", "ADDRESS",
                "STATE", "TOKENS", "SLOTS", "COPIES", "KEYS", "BYTES", "OWNED SLOT RANGES");
  std::cout << line;
  for (auto& r : rep->ring) {
    auto k = keys[r.id];
    auto b = bytes[r.id];
    std::snprintf(line, sizeof(line), "%-12s %-22s %-8s %6u %6u %6u %10s %10s  %s\n", r.id.c_str(),
                  r.address.c_str(), r.state.c_str(), r.tokens, r.slots_owned, r.slots_replicated,
                  k ? std::to_string(*k).c_str() : "-",
                  b ? human_bytes(static_cast<double>(*b)).c_str() : "-",
                  ranges_text(r.ranges, 60).c_str());
    std::cout << line;
  }
  std::snprintf(line, sizeof(line), "balance (max/mean): slots %.3f, keys %.3f, bytes %.3f\n",
                slot_mean > 0 ? slot_max / slot_mean : 0.0, keys_mm, bytes_mm);
  std::cout << line;
  return 0;
}

int print_done(bool json, const std::string& op, const std::string& node, const std::string& note,
               const move_row& m, bool detached_state) {
  if (json) {
    json_writer j;
    j.begin_object().key("op").str(op).key("node").str(node).key("note").str(note);
    j.key("finished").boolean(detached_state).key("move");
    write_move(j, m);
    std::cout << j.end_object().str() << "\n";
  } else {
    std::cout << note << "\n";
  }
  return 0;
}

/// The ops actor of member `name` (looked up in `ops`'s membership);
/// returns 0 and sets `target`, or the exit code after printing why.
int member_ops(caf::actor_system& sys, caf::scoped_actor& self, const caf::actor& ops,
               const std::string& name, bool json, std::chrono::milliseconds timeout,
               caf::actor& target) {
  std::string why;
  bool u = false;
  auto mem = ask_members(sys, self, ops, timeout, why, u);
  if (!mem)
    return fail(json, why, u ? 2 : 1);
  const member_row* row = nullptr;
  for (auto& m : mem->members)
    if (m.id == name)
      row = &m;
  if (!row)
    return fail(json, "no member '" + name + "' in this node's view ('kura members')");
  if (row->self) {
    target = ops;
    return 0;
  }
  target = connect_ops(sys, self, row->address, timeout);
  return target ? 0 : fail(json, "cannot reach " + name + " at " + row->address, 2);
}

int run_leave(caf::actor_system& sys, caf::scoped_actor& self, const caf::actor& ops,
              const std::vector<std::string>& args, bool json, std::chrono::milliseconds timeout) {
  caf::actor target = ops;
  std::string name;
  if (args.size() == 2) { // another member: reach its own ops port
    name = args[1];
    if (int rc = member_ops(sys, self, ops, name, json, timeout, target); rc != 0)
      return rc;
  }
  std::string why;
  bool unreachable = false;
  auto rep = ask_cop(sys, self, target, "leave", {}, timeout, why, unreachable);
  if (!rep)
    return fail(json, why, unreachable ? 2 : 1);
  if (!json)
    std::cerr << "kura: " << rep->note << " (Ctrl-C detaches; the leave goes on)\n";
  bool gone = false, stalled = false;
  auto last = watch(sys, self, target, timeout, json, gone, stalled,
                    [](const cluster_op_reply& r) { return r.move.leaving && !r.move.active; });
  if (stalled)
    return fail(json, stalled_text(sys, self, target, "the leave", last, timeout), 3);
  return print_done(json, "leave", name,
                    "left the ring: " + std::to_string(last.keys) + " keys (" +
                        human_bytes(static_cast<double>(last.bytes)) + ") handed off",
                    last, true);
}

/// kura drain NODE / undrain NODE: progress until the node handed its keys
/// off (drain) or streamed its ranges back in (undrain).
int run_drain(caf::actor_system& sys, caf::scoped_actor& self, const caf::actor& ops,
              const std::vector<std::string>& args, bool json, std::chrono::milliseconds timeout) {
  caf::actor target;
  if (int rc = member_ops(sys, self, ops, args[1], json, timeout, target); rc != 0)
    return rc;
  std::string why;
  bool unreachable = false;
  auto rep = ask_cop(sys, self, target, args[0], {}, timeout, why, unreachable);
  if (!rep)
    return fail(json, why, unreachable ? 2 : 1);
  if (!json)
    std::cerr << "kura: " << args[1] << ": " << rep->note << " (Ctrl-C detaches)\n";
  bool gone = false, stalled = false;
  auto last = watch(sys, self, target, timeout, json, gone, stalled,
                    [](const cluster_op_reply& r) { return !r.move.active; });
  if (gone)
    return fail(json, args[1] + " stopped answering", 2);
  if (stalled)
    return fail(json,
                stalled_text(sys, self, target, "the " + args[0] + " of " + args[1], last, timeout),
                3);
  bool drain = args[0] == "drain";
  return print_done(json, args[0], args[1],
                    args[1] + (drain ? " drained: " : " undrained: ") + std::to_string(last.keys) +
                        " keys (" + human_bytes(static_cast<double>(last.bytes)) +
                        (drain ? ") handed off" : ") streamed in"),
                    last, true);
}

int run_join(caf::actor_system& sys, caf::scoped_actor& self, const caf::actor& ops,
             const std::vector<std::string>& args, bool json, std::chrono::milliseconds timeout) {
  std::string why;
  bool unreachable = false;
  auto rep = ask_cop(sys, self, ops, "join", {args[1]}, timeout, why, unreachable);
  if (!rep)
    return fail(json, why, unreachable ? 2 : 1);
  if (!json)
    std::cerr << "kura: " << rep->note << " (Ctrl-C detaches; the join goes on)\n";
  auto t0 = std::chrono::steady_clock::now();
  bool joined = false, gone = false, stalled = false;
  auto last = watch(sys, self, ops, timeout, json, gone, stalled, [&](const cluster_op_reply&) {
    std::string w;
    bool u = false;
    auto ring = ask_cop(sys, self, ops, "ring", {}, timeout, w, u);
    joined = joined || (ring && ring->ring.size() > 1);
    if (!joined)
      return std::chrono::steady_clock::now() - t0 > std::chrono::seconds(30);
    auto st = ask_cop(sys, self, ops, "status", {}, timeout, w, u);
    return !st || !st->move.active;
  });
  if (gone)
    return fail(json, "the node stopped answering", 2);
  if (!joined)
    return fail(json, "not joined after 30 s; the node keeps dialing " + args[1]);
  if (stalled)
    return fail(json, stalled_text(sys, self, ops, "the join's streams", last, timeout), 3);
  return print_done(json, "join", args[1],
                    "joined through " + args[1] + ": " + std::to_string(last.keys) + " keys (" +
                        human_bytes(static_cast<double>(last.bytes)) + ") streamed in",
                    last, true);
}

/// kura rebalance [bytes|keys]: plans token counts that even out the load
/// each member holds (gossip/rebalance.hpp) from every member's slot stats,
/// sets them on the members whose count changes (each gossips and persists
/// its own), and draws the streams' progress until every member runs the
/// new ring and none is streaming.
int run_rebalance(caf::actor_system& sys, caf::scoped_actor& self, const caf::actor& ops,
                  const std::vector<std::string>& args, bool json,
                  std::chrono::milliseconds timeout) {
  std::string by = args.size() == 2 ? args[1] : "bytes";
  if (by != "bytes" && by != "keys")
    return fail(json, "usage: kura rebalance [bytes|keys]");
  std::string why;
  bool unreachable = false;
  auto rep = ask_cop(sys, self, ops, "ring", {}, timeout, why, unreachable);
  if (!rep)
    return fail(json, unreachable ? "no answer from the node (" + why + ")" : why,
                unreachable ? 2 : 1);
  if (rep->ring.size() < 2 || rep->rf == 0)
    return fail(json, "nothing to rebalance: the ring has fewer than 2 members");
  // The load of a slot: its largest copy among the members (one copy).
  std::vector<uint64_t> load(slot_count, 0);
  std::vector<caf::actor> peers;
  std::vector<gossip::node_id> ids;
  std::map<gossip::node_id, uint32_t> tokens;
  for (auto& r : rep->ring) {
    auto peer = connect_ops(sys, self, r.address, timeout);
    if (!peer)
      return fail(json, "cannot reach " + r.id + " at " + r.address, 2);
    auto st = ask_peer(sys, self, peer, r.address, "slots", {}, timeout * 4, why, unreachable);
    if (!st)
      return fail(json, r.id + ": " + why, unreachable ? 2 : 1);
    for (size_t i = 0; i + 2 < st->slot_stats.size(); i += 3) {
      auto slot = st->slot_stats[i];
      if (slot < slot_count)
        load[slot] = std::max(load[slot], st->slot_stats[i + (by == "keys" ? 1 : 2)]);
    }
    peers.push_back(peer);
    ids.push_back(gossip_id_of(r.id));
    tokens[ids.back()] = r.tokens;
  }
  gossip::ring_config rc;
  rc.rf = rep->rf;
  rc.vnodes = rep->vnodes;
  auto plan = gossip::plan_rebalance(ids, tokens, rc, load);
  auto report = [&](const std::string& note, const move_row& m, bool changed) {
    if (!json) {
      std::cout << note << "\n";
      return 0;
    }
    json_writer j;
    j.begin_object().key("op").str("rebalance").key("by").str(by).key("note").str(note);
    j.key("changed").boolean(changed).key("max_over_mean_before").num(plan.before, 4);
    j.key("max_over_mean_planned").num(plan.after, 4).key("slots_moved").num(plan.slots_moved);
    j.key("tokens").begin_object();
    for (size_t i = 0; i < ids.size(); ++i)
      j.key(rep->ring[i].id).num(plan.tokens[ids[i]]);
    j.end_object().key("move");
    write_move(j, m);
    std::cout << j.end_object().str() << "\n";
    return 0;
  };
  char text[160];
  if (plan.rounds == 0 || plan.slots_moved == 0) {
    std::snprintf(text, sizeof(text), "balanced: %s max/mean %.3f, nothing to move", by.c_str(),
                  plan.before);
    return report(text, move_row{}, false);
  }
  if (!json) {
    std::snprintf(text, sizeof(text),
                  "kura: rebalancing by %s: max/mean %.3f -> %.3f planned, %u slots change hands "
                  "(Ctrl-C detaches)",
                  by.c_str(), plan.before, plan.after, plan.slots_moved);
    std::cerr << text << "\n";
  }
  // Each member sets (persists, gossips) its own token count.
  std::string set_on; // members whose new count is set already
  for (size_t i = 0; i < ids.size(); ++i) {
    uint32_t want = plan.tokens[ids[i]] == rc.vnodes ? 0 : plan.tokens[ids[i]];
    uint32_t have = rep->ring[i].tokens == rc.vnodes ? 0 : rep->ring[i].tokens;
    if (want == have)
      continue;
    if (!ask_peer(sys, self, peers[i], rep->ring[i].address, "tokens", {std::to_string(want)},
                  timeout, why, unreachable))
      return fail(json,
                  rep->ring[i].id + ": " + why +
                      (set_on.empty() ? std::string(" (no token count changed)")
                                      : " (new token counts already set on" + set_on +
                                            ": run 'kura rebalance' again to finish)"),
                  unreachable ? 2 : 1);
    set_on += " " + rep->ring[i].id;
  }
  // Progress: the members' streams together, until each runs the new ring
  // and none streams. A member that stops answering is dialed again; when
  // nothing moves toward that end for stall_limit, the CLI gives up and
  // says what is missing (the counts are set: the ring goes on by itself).
  std::signal(SIGINT, on_detach);
  move_row sum;
  bool drawn = false;
  std::vector<bool> seen_active(peers.size(), false); // members that streamed for us
  auto limit = stall_limit(timeout);
  auto last_change = std::chrono::steady_clock::now();
  std::string last_sig;
  // each member's last answer, as far as progress goes (a member that does
  // not answer keeps its last one: flapping answers are no progress)
  std::vector<std::string> member_sig(peers.size());
  std::vector<std::string> missing; // what keeps the rebalance from being done
  for (;;) {
    move_row now;
    bool all_new = true, any_active = false;
    int64_t eta = -1;
    missing.clear();
    for (size_t i = 0; i < peers.size(); ++i) {
      const auto& name = rep->ring[i].id;
      auto st = ask_peer(sys, self, peers[i], rep->ring[i].address, "ring", {}, timeout, why,
                         unreachable, 2);
      if (!st) {
        all_new = false;
        missing.push_back(name + ": no answer (" + why + ")");
        continue;
      }
      std::string stale;
      for (size_t k = 0; k < ids.size(); ++k) {
        bool seen = false;
        for (auto& r : st->ring)
          if (r.id == rep->ring[k].id) {
            seen = true;
            if (r.tokens != plan.tokens[ids[k]])
              stale += " " + r.id + "=" + std::to_string(r.tokens) + " (planned " +
                       std::to_string(plan.tokens[ids[k]]) + ")";
          }
        if (!seen)
          stale += " " + rep->ring[k].id + " not in its ring";
      }
      if (!stale.empty()) {
        all_new = false;
        missing.push_back(name + " still runs" + stale);
      }
      auto& m = st->move;
      if (m.active && !m.leaving) {
        any_active = true;
        seen_active[i] = true;
        now.keys += m.keys;
        now.bytes += m.bytes;
        now.keys_expected += m.keys_expected;
        now.rate += m.rate;
        now.ranges += m.ranges;
        now.ranges_done += m.ranges_done;
        eta = std::max(eta, m.eta_ms);
        missing.push_back(name + " still streaming (" + std::to_string(m.ranges_done) + "/" +
                          std::to_string(m.ranges) + " ranges, " + std::to_string(m.keys) +
                          " keys in)");
      } else if (!m.leaving && seen_active[i]) { // this member's streams are done
        now.keys += m.keys;
        now.bytes += m.bytes;
        now.keys_expected += std::max(m.keys, m.keys_expected);
        now.ranges += m.ranges;
        now.ranges_done += m.ranges_done;
      }
      member_sig[i] = stale + "|" + std::to_string(m.active) + "," + std::to_string(m.keys) + "," +
                      std::to_string(m.bytes) + "," + std::to_string(m.ranges_done);
    }
    std::string sig;
    for (auto& ms : member_sig)
      sig += ms + ";";
    now.active = any_active || !all_new;
    now.eta_ms = now.active ? eta : -1;
    sum = now;
    if (!json) {
      draw_progress(std::cerr, move_fraction(sum), move_detail(sum));
      drawn = true;
    }
    if (!now.active)
      break;
    auto t = std::chrono::steady_clock::now();
    if (sig != last_sig) {
      last_sig = sig;
      last_change = t;
    } else if (t - last_change >= limit) {
      if (drawn)
        std::cerr << "\n";
      std::signal(SIGINT, SIG_DFL);
      std::string what;
      for (auto& m : missing)
        what += (what.empty() ? "" : "; ") + m;
      return fail(json,
                  "the rebalance did not converge: nothing changed for " + seconds_text(limit) +
                      ": " + what +
                      " (the token counts are set; the ring goes on by itself: 'kura ring')",
                  3);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  if (drawn)
    std::cerr << "\n";
  std::signal(SIGINT, SIG_DFL);
  std::snprintf(text, sizeof(text), "rebalanced by %s: max/mean %.3f -> %.3f planned; ", by.c_str(),
                plan.before, plan.after);
  return report(text + std::to_string(sum.keys) + " keys (" +
                    human_bytes(static_cast<double>(sum.bytes)) +
                    ") streamed ('kura ring' shows the result)",
                sum, true);
}

} // namespace

bool is_cluster_command(const std::string& cmd) {
  return cmd == "members" || cmd == "ring" || cmd == "join" || cmd == "leave" || cmd == "drain" ||
         cmd == "undrain" || cmd == "rebalance";
}

std::string describe_move(const move_row& m) {
  if (m.elapsed_ms == 0 && !m.active)
    return {};
  std::string what = m.draining ? "draining" : m.leaving ? "handing off" : "receiving";
  std::string ranges =
      m.leaving ? std::string()
                : " " + std::to_string(m.ranges_done) + "/" + std::to_string(m.ranges) + " ranges";
  return (m.active ? what + ranges
                   : std::string(m.leaving ? "handed off" : "received") + ranges + " (done)") +
         ": " + move_detail(m);
}

int run_cluster_command(caf::actor_system& sys, caf::scoped_actor& self, const caf::actor& ops,
                        const std::string& host, const std::vector<std::string>& args, bool json,
                        std::chrono::milliseconds timeout) {
  (void)host;
  const auto& cmd = args[0];
  auto usage = [&](const char* u) { return fail(json, std::string("usage: kura ") + u); };
  if (cmd == "members")
    return args.size() == 1 ? print_members(sys, self, ops, json, timeout) : usage("members");
  if (cmd == "ring")
    return args.size() == 1 ? print_ring(sys, self, ops, json, timeout) : usage("ring");
  if (cmd == "join")
    return args.size() == 2 ? run_join(sys, self, ops, args, json, timeout)
                            : usage("join HOST:PORT");
  if (cmd == "leave")
    return args.size() <= 2 ? run_leave(sys, self, ops, args, json, timeout)
                            : usage("leave [NODE]");
  if (cmd == "drain" || cmd == "undrain")
    return args.size() == 2 ? run_drain(sys, self, ops, args, json, timeout)
                            : usage(cmd == "drain" ? "drain NODE" : "undrain NODE");
  if (cmd == "rebalance")
    return args.size() <= 2 ? run_rebalance(sys, self, ops, args, json, timeout)
                            : usage("rebalance [bytes|keys]");
  return usage("members | ring | join HOST:PORT | leave [NODE] | drain NODE | undrain NODE | "
               "rebalance [bytes|keys]");
}

std::string status_with_move(caf::actor_system& sys, caf::scoped_actor& self, const caf::actor& ops,
                             std::string answer, std::chrono::milliseconds timeout) {
  auto st = decode_message<node_status>(msg_type::node_status, answer);
  if (!st)
    return answer;
  std::string why;
  bool unreachable = false;
  auto rep = ask_cop(sys, self, ops, "status", {}, timeout, why, unreachable);
  if (!rep)
    return answer; // not a cluster node (or it refused): the plain status
  auto& m = rep->move;
  auto add = [&](const char* n, std::string v) {
    st->names.emplace_back(n);
    st->values.push_back(std::move(v));
  };
  add("move_in_progress", m.active ? (m.leaving ? "leave" : "stream") : "none");
  add("move_ranges", std::to_string(m.ranges));
  add("move_ranges_done", std::to_string(m.ranges_done));
  add("move_keys", std::to_string(m.keys));
  add("move_keys_expected", std::to_string(m.keys_expected));
  add("move_bytes", std::to_string(m.bytes));
  add("move_rate_bytes_per_s", std::to_string(m.rate));
  add("move_eta_ms", m.eta_ms < 0 ? std::string("-") : std::to_string(m.eta_ms));
  add("cluster_keys_held", std::to_string(m.keys_held));
  add("cluster_stream_rate", std::to_string(m.stream_rate));
  return encode_message(msg_type::node_status, *st);
}

} // namespace kura::node
