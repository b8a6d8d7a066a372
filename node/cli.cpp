// kura: the command-line client of a kura-node's ops actor (cluster port).
//   kura [--host=H] [--port=P] [--timeout=MS] [--json] [--user=U] [--password=P] COMMAND [ARGS]
//   (credentials also from KURA_USER / KURA_PASSWORD: the node's users and ACLs apply)
//   TLS on the ops port (kura.cluster.tls): --tls-cert=F --tls-key=F --tls-ca=F or KURA_TLS_*
//   commands: status | stats | config | get KEY | set KEY VALUE [TTL_MS] | del KEY
//             | expire KEY TTL_MS | tier KEY | flush | compact | archive | members
//             | ring | join HOST:PORT | leave [NODE] | drain NODE | undrain NODE
//             | rebalance [bytes|keys]
//             (node/cli_cluster.hpp)
//             | audit [--file=PATH | --data-dir=DIR] [--since=T] | rotate-key
//             | prewarm [--dry-run] | predictor | alerts
// Human-readable tables by default, --json for scripts. Exit codes: 0 ok,
// 1 the node answered with an error (or a usage error), 2 the node is not
// reachable (connect is asynchronous and bounded by --timeout).
#include "actors/cluster.hpp"
#include "actors/messages.hpp"
#include "actors/peer_link.hpp"
#include "node/archive_node.hpp"
#include "node/cli_cluster.hpp"
#include "node/cli_predictor.hpp"
#include "node/cli_reply.hpp"
#include "node/cluster_tls.hpp"
#include "node/erase.hpp"
#include "node/json_writer.hpp"
#include "node/ops.hpp"
#include "node/rotate_key.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <cstdio>
#include <cstring>
#include <iostream>
#include <unistd.h>

using namespace kura;
using namespace kura::actors;

namespace kura::node {
int run_audit_command(const std::vector<std::string>& args, bool json); // node/cli_audit.cpp
}

namespace {

struct options {
  std::string host = "127.0.0.1";
  uint16_t port = 7379;
  int timeout_ms = 3000;
  bool json = false;
  std::vector<std::string> args;
};

[[noreturn]] void finish(int rc) {
  std::cout.flush();
  std::cerr.flush();
  // Leave without tearing down the actor system: a connect that timed out may
  // still be pending in the middleman, and waiting for it could hang (CAF-0.17.md §8).
  ::_exit(rc);
}

void usage() {
  std::cerr << "usage: kura [--host=127.0.0.1] [--port=7379] [--timeout=3000] [--json]\n"
               "            [--stall-timeout=MS]  (join/leave/drain/undrain/rebalance: exit 3\n"
               "            when nothing moves this long; default 60000, or 20 x --timeout)\n"
               "            [--user=U] [--password=P] COMMAND   (or KURA_USER, KURA_PASSWORD)\n"
               "            [--tls-cert=F --tls-key=F --tls-ca=F]  (ops port with "
               "kura.cluster.tls;\n"
               "            or KURA_TLS_CERT, KURA_TLS_KEY, KURA_TLS_CA)\n"
               "  status | stats | config | get KEY | set KEY VALUE [TTL_MS] | del KEY\n"
               "  expire KEY TTL_MS | tier KEY | flush\n"
               "  compact (progress bar; --json: final summary) | archive (L4 segments)\n"
               "  audit [--file=PATH | --data-dir=DIR] [--since=T] (the node's audit log)\n"
               "  rotate-key (re-read the key file, re-seal L3 and L4 with its newest key)\n"
               "  erase key K [K...] | prefix P | subject ID | status ID (erase from every tier "
               "and file)\n"
               "  members (cluster membership: id, address, state, incarnation, ring share)\n"
               "  ring (owned slot ranges, slots and keys per node) | join HOST:PORT\n"
               "  leave [NODE] (hand every key off, then exit; progress bar, Ctrl-C detaches)\n"
               "  drain NODE | undrain NODE (out of / back into placement, data moves)\n"
               "  rebalance [bytes|keys]    (token counts that even out bytes or keys per node)\n"
               "  prewarm [--dry-run] (run the prewarm plan with a progress bar, or show it)\n"
               "  predictor (precision, keys prewarmed, hits, bytes, TTL changes) | alerts\n";
}

bool parse_u64(const std::string& s, uint64_t& out) {
  if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos || s.size() > 19)
    return false;
  out = std::stoull(s);
  return true;
}

} // namespace

int main(int argc, char** argv) {
  options o;
  if (const char* u = std::getenv("KURA_USER"))
    node::cli_credentials().user = u;
  if (const char* p = std::getenv("KURA_PASSWORD"))
    node::cli_credentials().password = p;
  // TLS on the ops port (kura.cluster.tls): flags, or KURA_TLS_CERT/_KEY/_CA
  node::cluster_tls_files tls;
  if (const char* v = std::getenv("KURA_TLS_CERT"))
    tls.cert_file = v;
  if (const char* v = std::getenv("KURA_TLS_KEY"))
    tls.key_file = v;
  if (const char* v = std::getenv("KURA_TLS_CA"))
    tls.ca_file = v;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&](const char* p) { return a.substr(std::strlen(p)); };
    if (a.rfind("--host=", 0) == 0) {
      o.host = val("--host=");
    } else if (a.rfind("--port=", 0) == 0) {
      uint64_t p = 0;
      if (!parse_u64(val("--port="), p) || p == 0 || p > 65535) {
        std::cerr << "kura: bad --port\n";
        return 1;
      }
      o.port = static_cast<uint16_t>(p);
    } else if (a.rfind("--timeout=", 0) == 0) {
      uint64_t t = 0;
      if (!parse_u64(val("--timeout="), t) || t == 0) {
        std::cerr << "kura: bad --timeout (milliseconds)\n";
        return 1;
      }
      o.timeout_ms = static_cast<int>(t);
    } else if (a.rfind("--stall-timeout=", 0) == 0) {
      uint64_t t = 0;
      if (!parse_u64(val("--stall-timeout="), t) || t == 0) {
        std::cerr << "kura: bad --stall-timeout (milliseconds)\n";
        return 1;
      }
      node::cli_stall_timeout() = std::chrono::milliseconds(t);
    } else if (a.rfind("--user=", 0) == 0) {
      node::cli_credentials().user = val("--user=");
    } else if (a.rfind("--password=", 0) == 0) {
      node::cli_credentials().password = val("--password=");
    } else if (a.rfind("--tls-cert=", 0) == 0) {
      tls.cert_file = val("--tls-cert=");
    } else if (a.rfind("--tls-key=", 0) == 0) {
      tls.key_file = val("--tls-key=");
    } else if (a.rfind("--tls-ca=", 0) == 0) {
      tls.ca_file = val("--tls-ca=");
    } else if (a == "--json") {
      o.json = true;
    } else if (a == "--help" || a == "-h") {
      usage();
      return 0;
    } else if (a.rfind("--", 0) == 0 && o.args.empty()) {
      std::cerr << "kura: unknown option " << a << "\n";
      usage();
      return 1;
    } else {
      o.args.push_back(a);
    }
  }
  if (o.args.empty()) {
    usage();
    return 1;
  }
  if (o.args[0] == "audit") // a local file: no node needed
    finish(node::run_audit_command(o.args, o.json));
  kv_request req;
  const auto& cmd = o.args[0];
  auto need = [&](size_t n) {
    if (o.args.size() != n) {
      std::cerr << "kura: wrong number of arguments for '" << cmd << "'\n";
      usage();
      finish(1);
    }
  };
  if (cmd == "status") {
    need(1), req.op = kv_request::status;
  } else if (cmd == "stats") {
    need(1), req.op = kv_request::stats;
  } else if (cmd == "config") {
    need(1), req.op = kv_request::config;
  } else if (cmd == "get") {
    need(2), req.op = kv_request::get, req.key = o.args[1];
  } else if (cmd == "set") {
    if (o.args.size() != 3 && o.args.size() != 4)
      need(3);
    req.op = kv_request::set, req.key = o.args[1], req.value = o.args[2];
    if (o.args.size() == 4 && !parse_u64(o.args[3], req.ttl_ms)) {
      std::cerr << "kura: TTL must be milliseconds\n";
      return 1;
    }
  } else if (cmd == "del") {
    need(2), req.op = kv_request::del, req.key = o.args[1];
  } else if (cmd == "expire") {
    need(3), req.op = kv_request::expire, req.key = o.args[1];
    if (!parse_u64(o.args[2], req.ttl_ms)) {
      std::cerr << "kura: TTL must be milliseconds\n";
      return 1;
    }
  } else if (cmd == "tier") {
    need(2), req.op = kv_request::tier, req.key = o.args[1];
  } else if (cmd == "flush") {
    need(1), req.op = kv_request::flush;
  } else if (cmd == "compact" || cmd == "archive" || cmd == "rotate-key") {
    need(1);
  } else if (node::is_cluster_command(cmd)) {
    // arguments checked by run_cluster_command
  } else if (cmd == "prewarm" || cmd == "predictor" || cmd == "alerts" || cmd == "erase") {
    // arguments checked by run_predictor_command / run_erase_command
  } else {
    std::cerr << "kura: unknown command '" << cmd << "'\n";
    usage();
    return 1;
  }

  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  // A cluster node drops a connection that stayed silent for its
  // middleman.connection-timeout (2 s at least, actors/kura.cpp), and the CLI
  // is silent while it waits for a slow answer: it sends heartbeats, so a
  // slow node or a long watched move keeps every link. With heartbeats, a
  // connect whose handshake is not done by the next tick fails
  // (CAF-0.17.md §8, item 1): connects are tried up to 3 times.
  cfg.set("middleman.heartbeat-interval", caf::timespan{std::chrono::milliseconds(500)});
  if (!tls.cert_file.empty() || !tls.key_file.empty() || !tls.ca_file.empty()) {
    if (tls.cert_file.empty() || tls.key_file.empty() || tls.ca_file.empty()) {
      std::cerr << "kura: TLS needs --tls-cert, --tls-key and --tls-ca (or KURA_TLS_CERT, "
                   "KURA_TLS_KEY, KURA_TLS_CA)\n";
      return 1;
    }
    if (auto e = node::check_cluster_tls(tls); !e.empty()) {
      std::cerr << "kura: " << e << "\n";
      return 1;
    }
    node::configure_cluster_tls(cfg, tls);
  }
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  auto timeout = std::chrono::milliseconds(o.timeout_ms);
  caf::actor ops;
  std::string why;
  for (int attempt = 0; attempt < 3 && !ops; ++attempt)
    self->request(actors::peer_connector(sys), timeout, caf::connect_atom::value, o.host, o.port)
        .receive(
            [&](const caf::node_id&, caf::strong_actor_ptr& ptr, const std::set<std::string>&) {
              if (ptr)
                ops = caf::actor_cast<caf::actor>(std::move(ptr));
              else
                why = "no ops actor published on that port", attempt = 3;
            },
            [&](caf::error& err) { why = sys.render(err); });
  auto unreachable = [&](const std::string& reason) {
    std::cerr << "kura: cannot reach kura-node at " << o.host << ":" << o.port << " (" << reason
              << ")\n";
    finish(2);
  };
  if (!ops)
    unreachable(why);
  if (cmd == "compact" || cmd == "archive")
    finish(node::run_archive_command(sys, self, ops, cmd, o.json, timeout));
  if (node::is_cluster_command(cmd))
    finish(node::run_cluster_command(sys, self, ops, o.host, o.args, o.json, timeout));
  if (cmd == "prewarm" || cmd == "predictor" || cmd == "alerts")
    finish(node::run_predictor_command(sys, self, ops, o.args, o.json, timeout));
  if (cmd == "rotate-key")
    finish(node::run_rotate_key(sys, self, ops, o.json, timeout));
  if (cmd == "erase")
    finish(node::run_erase_command(sys, self, ops, o.args, o.json, timeout));
  std::string answer;
  bool answered = false;
  auto& cred = node::cli_credentials();
  self->request(ops, timeout, node::ops_request_atom::value, cred.user, cred.password,
                encode_message(msg_type::kv_request, req))
      .receive([&](std::string& bytes) { answer = std::move(bytes), answered = true; },
               [&](caf::error& err) { why = sys.render(err); });
  if (!answered)
    unreachable(why);
  if (cmd == "status") // a cluster node adds what it is moving
    answer = node::status_with_move(sys, self, ops, std::move(answer), timeout);
  finish(node::print_reply(req, answer, o.json, std::cout, std::cerr));
}
