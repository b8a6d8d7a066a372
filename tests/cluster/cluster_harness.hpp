// Multi-process cluster helpers: start kura-node processes that form a
// cluster on loopback (fresh ports, temporary data dirs), ask them for their
// membership through the real `kura members --json`, wait for conditions with
// a bound (never a timing assertion). Processes are ended by pid only.
#pragma once

#include "node/node_process.hpp"

#include <doctest/doctest.h>

#include <cctype>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace kura::test {

// -- slow builds ------------------------------------------------------------------
//
// Under ASan+UBSan a forwarded command takes 65-258 ms instead of 4-13 ms
// (session 10, load 20), so the fast timing below (a 300 ms heartbeat, whose
// probes time out after 90 ms; a 1 s request timeout) makes healthy nodes
// suspect each other and pipelines answer -TIMEOUT. A slow build sets
// KURA_TEST_SLOW=<factor> (CMake puts it into the environment of every test
// of a sanitizer build, cmake/kura_test.cmake; it may be set by hand too):
// every timing flag a test cluster starts with (heartbeat, sync-interval,
// request-timeout, hedge-delay; suspicion is a multiple of the heartbeat) and
// every bound the harness waits for are multiplied by it. What a test checks
// does not change; only how long the nodes and the test wait.

/// KURA_TEST_SLOW (1 when unset or not a number from 1 to 100).
inline int slow_factor() {
  const char* s = std::getenv("KURA_TEST_SLOW");
  int f = s ? std::atoi(s) : 1;
  return f >= 1 && f <= 100 ? f : 1;
}

/// `ms` times slow_factor(): a bound that depends on how fast nodes run.
inline int slow_ms(int ms) {
  return ms * slow_factor();
}

/// `flag` with its duration multiplied by slow_factor() when it is one of
/// the cluster's timing flags (--kura.cluster.heartbeat=300ms -> =1500ms);
/// anything else unchanged.
inline std::string slow_flag(const std::string& flag) {
  static const char* const timing[] = {
      "--kura.cluster.heartbeat=", "--kura.cluster.sync-interval=",
      "--kura.cluster.request-timeout=", "--kura.cluster.hedge-delay="};
  if (slow_factor() == 1)
    return flag;
  for (const char* t : timing) {
    std::string p = t;
    if (flag.rfind(p, 0) != 0)
      continue;
    std::string v = flag.substr(p.size());
    size_t digits = 0;
    while (digits < v.size() && std::isdigit(static_cast<unsigned char>(v[digits])))
      ++digits;
    std::string unit = v.substr(digits);
    long long per = unit == "ms" ? 1 : unit == "s" ? 1000 : unit == "min" ? 60000 : -1;
    if (digits == 0 || per < 0)
      return flag; // a form this does not know: the node parses it as given
    return p + std::to_string(std::stoll(v.substr(0, digits)) * per * slow_factor()) + "ms";
  }
  return flag;
}

/// Flags that make a test cluster react within seconds instead of the
/// production defaults (10 s heartbeat, 30 s sync); test_cluster::start
/// scales their timing by slow_factor().
inline std::vector<std::string> fast_cluster_flags() {
  return {"--kura.cluster.heartbeat=300ms",    "--kura.cluster.sync-interval=1s",
          "--kura.cluster.request-timeout=1s", "--memory-bytes=16777216",
          "--kura.archive.enabled=false",      "--kura.l3.map-size=67108864"};
}

/// Polls `pred` every 100 ms until it holds or `timeout_ms` (times
/// slow_factor()) passed.
inline bool wait_for(const std::function<bool()>& pred, int timeout_ms = 30000) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(slow_ms(timeout_ms));
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred())
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return pred();
}

/// `kura members --json` against a cluster port ("" when it fails).
inline std::string members_json(uint16_t cluster_port) {
  int rc = 0;
  auto out = run_shell(bin_dir() + "/kura --timeout=" + std::to_string(slow_ms(2000)) + " --port=" +
                           std::to_string(cluster_port) + " --json members 2>/dev/null",
                       &rc);
  return rc == 0 ? out : std::string{};
}

/// The "state" of member `id` in members JSON ("" when absent).
inline std::string member_state(const std::string& json, const std::string& id) {
  auto p = json.find("{\"id\": \"" + id + "\"");
  if (p == std::string::npos)
    return {};
  auto s = json.find("\"state\": \"", p);
  if (s == std::string::npos)
    return {};
  s += 10;
  return json.substr(s, json.find('"', s) - s);
}

/// The number of members in `state`.
inline size_t count_state(const std::string& json, const std::string& state) {
  size_t n = 0;
  std::string needle = "\"state\": \"" + state + "\"";
  for (auto p = json.find(needle); p != std::string::npos; p = json.find(needle, p + 1))
    ++n;
  return n;
}

/// The sum of every member's "share".
inline double share_sum(const std::string& json) {
  double sum = 0;
  std::string needle = "\"share\": ";
  for (auto p = json.find(needle); p != std::string::npos; p = json.find(needle, p + 1))
    sum += std::strtod(json.c_str() + p + needle.size(), nullptr);
  return sum;
}

/// The ids in a RESP array of bulk strings.
inline std::vector<std::string> bulk_array(const std::string& r) {
  std::vector<std::string> out;
  size_t p = r.find("\r\n");
  while (p != std::string::npos && p + 2 < r.size()) {
    p += 2;
    if (r[p] != '$')
      break;
    auto nl = r.find("\r\n", p);
    auto n = std::stoul(r.substr(p + 1, nl - p - 1));
    out.push_back(r.substr(nl + 2, n));
    p = nl + 2 + n;
  }
  return out;
}

/// The value of metric `name` (with its labels, as printed) on /metrics of
/// the node whose metrics port is `port`; -1 when absent.
inline double metric_value(uint16_t port, const std::string& name) {
  auto body = http_get(port, "/metrics");
  for (size_t p = body.find(name + " "); p != std::string::npos; p = body.find(name + " ", p + 1))
    if (p == 0 || body[p - 1] == '\n')
      return std::strtod(body.c_str() + p + name.size() + 1, nullptr);
  return -1;
}

/// A set of kura-node processes forming one cluster.
class test_cluster {
public:
  /// Starts node `id` joining through the first node (unless it is the
  /// first); it is known as `key` here (default: its id; a restarted node
  /// needs a new key).
  /// `bin`: another kura-node binary (a previous version's, for rolling upgrades).
  node_process& start(const std::string& id, std::vector<std::string> extra = {},
                      const std::string& data_dir = {}, std::string key = {},
                      const std::string& bin = {}) {
    if (key.empty())
      key = id;
    auto args = fast_cluster_flags();
    args.push_back("--kura.cluster.node-id=" + id);
    if (!nodes.empty() && !has_seed(extra))
      args.push_back("--kura.cluster.seeds=127.0.0.1:" +
                     std::to_string(nodes.at(order.front())->cluster_port));
    args.insert(args.end(), extra.begin(), extra.end());
    for (auto& a : args)
      a = slow_flag(a);
    auto n = std::make_unique<node_process>(args, data_dir, bin);
    auto& ref = *n;
    for (auto& x : extra) // an explicit cluster port (node_process keeps its own pick)
      if (x.rfind("--cluster-port=", 0) == 0)
        ref.cluster_port = static_cast<uint16_t>(std::stoi(x.substr(15)));
    nodes[key] = std::move(n);
    order.push_back(key);
    return ref;
  }

  node_process& operator[](const std::string& id) { return *nodes.at(id); }

  /// n1 ... n<count>, each joining through n1 (with `extra` flags, which
  /// override fast_cluster_flags()); waits until all see them alive.
  void start_ring(size_t count, const std::vector<std::string>& extra = {}) {
    for (size_t i = 1; i <= count; ++i) {
      auto& n = start("n" + std::to_string(i), extra);
      REQUIRE_MESSAGE(n.ready, "n" << i << " did not answer PING; its log:\n" << n.log());
    }
    INFO(logs());
    REQUIRE(wait_for([&] { return all_see_alive(count); }));
  }

  /// True when every running node sees `n` members alive.
  bool all_see_alive(size_t n) {
    for (auto& [id, p] : nodes) {
      if (!p->alive())
        continue;
      if (count_state(members_json(p->cluster_port), "alive") != n)
        return false;
    }
    return true;
  }

  std::string logs() const {
    std::string all;
    for (auto& [id, p] : nodes)
      all += "---- " + id + " (" + p->state() + ") ----\n" + p->log();
    return all;
  }

  std::map<std::string, std::unique_ptr<node_process>> nodes;
  std::vector<std::string> order;

private:
  static bool has_seed(const std::vector<std::string>& extra) {
    for (auto& a : extra)
      if (a.rfind("--kura.cluster.seeds=", 0) == 0)
        return true;
    return false;
  }
};

/// A RESP bulk string.
inline std::string bulk(const std::string& s) {
  return "$" + std::to_string(s.size()) + "\r\n" + s + "\r\n";
}

} // namespace kura::test

namespace kura::test {

/// tests/cluster/fault_proxy.py as a child process: routes listen -> target
/// on loopback, faults switched through its control port.
class fault_proxy {
public:
  /// `routes`: (listen port, target port) pairs.
  explicit fault_proxy(const std::vector<std::pair<uint16_t, uint16_t>>& routes) {
    const char* src = std::getenv("KURA_SOURCE_DIR");
    std::string script = std::string(src ? src : ".") + "/tests/cluster/fault_proxy.py";
    control_port = free_port();
    std::vector<std::string> args{"python3", script, std::to_string(control_port)};
    for (auto& [l, t] : routes)
      args.push_back(std::to_string(l) + ":" + std::to_string(t));
    int fds[2];
    if (::pipe(fds) != 0)
      return;
    pid = ::fork();
    if (pid == 0) {
      ::dup2(fds[1], 1);
      ::close(fds[0]);
      std::vector<char*> argv;
      for (auto& a : args)
        argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execvp("python3", argv.data());
      ::_exit(127);
    }
    ::close(fds[1]);
    char buf[64];
    auto n = ::read(fds[0], buf, sizeof(buf)); // "ready\n" once every port listens
    ready = n > 0 && std::string(buf, static_cast<size_t>(n)).find("ready") != std::string::npos;
    out_fd_ = fds[0]; // kept open: a closed pipe would kill the proxy's next write
  }
  ~fault_proxy() {
    if (pid > 0) {
      ::kill(pid, SIGTERM);
      ::waitpid(pid, nullptr, 0);
    }
    if (out_fd_ >= 0)
      ::close(out_fd_);
  }
  fault_proxy(const fault_proxy&) = delete;
  fault_proxy& operator=(const fault_proxy&) = delete;

  /// Sends one control command ("cut", "drop", "delay 200", "heal"); true on "ok".
  bool command(const std::string& cmd) {
    client c(control_port);
    if (!c.ok() || !c.send(cmd + "\n"))
      return false;
    while (c.buffer().find('\n') == std::string::npos)
      if (!c.fill(5000))
        break;
    return c.buffer().rfind("ok", 0) == 0;
  }

  pid_t pid = -1;
  uint16_t control_port = 0;
  bool ready = false;

private:
  int out_fd_ = -1;
};

/// A key whose replicas are exactly `owner`, `replica` (hash tag `{tag<i>}`).
inline std::string key_owned(client& k, const std::string& owner, const std::string& replica,
                             const std::string& tag) {
  for (int i = 0; i < 5000; ++i) {
    auto key = "{" + tag + std::to_string(i) + "}n";
    auto own = bulk_array(k.call({"KURA.OWNERS", key}).value_or(""));
    if (own.size() == 2 && own[0] == owner && own[1] == replica)
      return key;
  }
  return {};
}

} // namespace kura::test
