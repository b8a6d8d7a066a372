// Test helpers: start the real build/bin/kura-node as a child process on
// free ports with a temporary data dir, talk to it over raw sockets and
// through redis-cli, stop it with SIGTERM or SIGKILL. No CAF.
#pragma once

#include "test_util.hpp"
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace kura::test {

inline std::string bin_dir() {
  const char* d = std::getenv("KURA_BIN_DIR");
  return d ? d : "build/bin";
}

/// The first port of the kernel's ephemeral range (ip_local_port_range):
/// the ports it hands to bind(0) and to every outgoing connection.
inline int ephemeral_low() {
  std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
  int lo = 0;
  return (in >> lo) ? lo : 0;
}

/// `n` distinct free loopback ports: the sockets stay bound until all are
/// picked, so the kernel cannot hand out one port twice (free_port() called
/// three times in a row did: "bad value for metrics-port: same as port",
/// session 18). They are drawn at random from the 6,000 or so ports just below
/// the kernel's ephemeral range: a port from bind(0) lies inside that range,
/// where every outgoing connection of every concurrent test also takes its
/// local port, and a test that hands a picked port to a node later (a proxy's
/// target) found it taken ("cannot listen on 127.0.0.1:48025", CI under
/// load, session 20). When the range starts too low, bind(0) it is.
inline std::vector<uint16_t> free_ports(size_t n) {
  static std::mt19937 rng(std::random_device{}() ^ static_cast<unsigned>(::getpid()));
  const int hi = ephemeral_low();
  const int lo = std::max(1024, hi - 6000);
  const bool below = hi - lo >= 1000;
  std::vector<int> fds;
  std::vector<uint16_t> ports;
  auto try_bind = [&](uint16_t port) -> int {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    socklen_t len = sizeof(a);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      ::close(fd);
      return -1;
    }
    ports.push_back(ntohs(a.sin_port));
    return fd;
  };
  for (size_t i = 0; i < n; ++i) {
    int fd = -1;
    for (int attempt = 0; below && fd < 0 && attempt < 200; ++attempt)
      fd = try_bind(static_cast<uint16_t>(std::uniform_int_distribution<int>(lo, hi - 1)(rng)));
    if (fd < 0)
      fd = try_bind(0);
    fds.push_back(fd);
  }
  for (int fd : fds)
    ::close(fd);
  return ports;
}

/// A port nobody listens on right now (free_ports(1)).
inline uint16_t free_port() {
  return free_ports(1)[0];
}

/// A fresh temporary directory, removed with the object.
using temp_dir = kura::testing::temp_dir;

/// Runs a shell command, returns its stdout (and the exit code in `rc`).
inline std::string run_shell(const std::string& cmd, int* rc = nullptr) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p)
    return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0)
    out.append(buf, n);
  int st = ::pclose(p);
  if (rc)
    *rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

/// ioredis 5 from npm, installed once into the build tree
/// (bin_dir()/../npm-ioredis): its node_modules directory for NODE_PATH, or
/// "" when node or npm is missing. `rc` is npm's exit code (0: usable) and
/// `log` its output.
inline std::string npm_ioredis(int& rc, std::string& log) {
  run_shell("command -v node && command -v npm", &rc);
  if (rc != 0)
    return {};
  std::string dir = bin_dir() + "/../npm-ioredis";
  log = run_shell("test -d " + dir + "/node_modules/ioredis || timeout 180 npm install --prefix " +
                      dir + " ioredis@5 --no-audit --no-fund --silent 2>&1",
                  &rc);
  return dir + "/node_modules";
}

/// A connected TCP client with blocking I/O and a read timeout.
class client {
public:
  explicit client(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
    int one = 1;
    if (fd_ >= 0)
      ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  ~client() { close(); }
  client(const client&) = delete;
  client(client&& o) noexcept : fd_(o.fd_), buf_(std::move(o.buf_)) { o.fd_ = -1; }

  bool ok() const { return fd_ >= 0; }
  void close() {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = -1;
  }

  bool send(std::string_view s) {
    while (!s.empty()) {
      auto n = ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL);
      if (n <= 0)
        return false;
      s.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  /// Reads more bytes into the buffer; false on EOF, error or timeout.
  bool fill(int timeout_ms = 10000) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0)
      return false;
    char tmp[65536];
    auto n = ::recv(fd_, tmp, sizeof(tmp), 0);
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }

  /// Reads one complete RESP reply (raw bytes); nullopt on EOF/timeout.
  std::optional<std::string> reply(int timeout_ms = 10000) {
    for (;;) {
      size_t end = 0;
      if (complete(0, end)) {
        auto r = buf_.substr(0, end);
        buf_.erase(0, end);
        return r;
      }
      if (!fill(timeout_ms))
        return std::nullopt;
    }
  }

  /// Sends a command built from args as multibulk and reads its reply.
  std::optional<std::string> call(const std::vector<std::string>& args) {
    if (!send(multibulk(args)))
      return std::nullopt;
    return reply();
  }

  /// True once the peer closed the connection (reads until EOF or timeout).
  bool closed_by_peer(int timeout_ms = 10000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (!eof_ && std::chrono::steady_clock::now() < deadline)
      if (!fill(100) && !eof_)
        continue;
    return eof_;
  }

  std::string& buffer() { return buf_; }

  static std::string multibulk(const std::vector<std::string>& args) {
    std::string s = "*" + std::to_string(args.size()) + "\r\n";
    for (auto& a : args)
      s += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
    return s;
  }

private:
  bool complete(size_t pos, size_t& end) const {
    if (pos >= buf_.size())
      return false;
    auto nl = buf_.find("\r\n", pos);
    if (nl == std::string::npos)
      return false;
    char t = buf_[pos];
    if (t == '+' || t == '-' || t == ':' || t == '_' || t == ',' || t == '#' || t == '(') {
      end = nl + 2;
      return true;
    }
    long n = std::strtol(buf_.c_str() + pos + 1, nullptr, 10);
    if (t == '$') {
      if (n < 0) {
        end = nl + 2;
        return true;
      }
      size_t need = nl + 2 + static_cast<size_t>(n) + 2;
      if (buf_.size() < need)
        return false;
      end = need;
      return true;
    }
    if (t == '*' || t == '%' || t == '~' || t == '>') { // RESP3 maps hold 2n elements
      size_t p = nl + 2;
      for (long i = 0; i < (t == '%' ? 2 * n : n); ++i) {
        size_t e = 0;
        if (!complete(p, e))
          return false;
        p = e;
      }
      end = p;
      return true;
    }
    end = nl + 2; // unknown type: treat the line as a reply
    return true;
  }

  int fd_ = -1;
  bool eof_ = false;
  std::string buf_;
};

/// GET http://127.0.0.1:port/path with a raw socket; returns the body.
inline std::string http_get(uint16_t port, const std::string& path) {
  client c(port);
  if (!c.ok())
    return {};
  c.send("GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  while (c.fill(5000)) {
  }
  auto& all = c.buffer();
  auto p = all.find("\r\n\r\n");
  return p == std::string::npos ? std::string{} : all.substr(p + 4);
}

/// Raises this process's open-file limit (children inherit it).
inline void raise_fd_limit(rlim_t want) {
  rlimit r{};
  ::getrlimit(RLIMIT_NOFILE, &r);
  if (r.rlim_cur < want) {
    r.rlim_cur = std::min(want, r.rlim_max);
    ::setrlimit(RLIMIT_NOFILE, &r);
  }
}

/// A kura-node child process.
class node_process {
public:
  /// Starts kura-node with `args` (plus --port/--metrics-port/--cluster-port/
  /// --data-dir unless given) and waits until it answers PING. `bin`: the
  /// kura-node to run (default bin_dir()/kura-node; another version's for
  /// mixed-version tests).
  explicit node_process(std::vector<std::string> args = {}, std::string data_dir = {},
                        std::string bin = {})
      : bin_(bin.empty() ? bin_dir() + "/kura-node" : std::move(bin)) {
    pick_ports();
    if (data_dir.empty()) {
      own_dir_ = std::make_unique<temp_dir>();
      data_dir = own_dir_->path;
    }
    this->data_dir = data_dir;
    log_path = data_dir + ".log";
    user_args_ = std::move(args);
    // A port picked by free_port() can be taken by someone else's connection
    // before the node binds it: pick new ports and try again.
    for (int attempt = 0; attempt < 3; ++attempt) {
      if (attempt > 0)
        pick_ports();
      build_args();
      start();
      if (ready || log().find("cannot listen") == std::string::npos)
        break;
      std::error_code ec;
      std::filesystem::remove(log_path, ec);
    }
  }

  void pick_ports() {
    auto p = free_ports(3);
    port = p[0];
    metrics_port = p[1];
    cluster_port = p[2];
  }

  void build_args() {
    auto args = user_args_;
    auto has = [&](const char* p) {
      for (auto& a : args)
        if (a.rfind(p, 0) == 0)
          return true;
      return false;
    };
    if (!has("--port="))
      args.push_back("--port=" + std::to_string(port));
    if (!has("--metrics-port="))
      args.push_back("--metrics-port=" + std::to_string(metrics_port));
    if (!has("--cluster-port="))
      args.push_back("--cluster-port=" + std::to_string(cluster_port));
    if (!has("--data-dir="))
      args.push_back("--data-dir=" + data_dir);
    args_ = args;
  }

  ~node_process() {
    if (pid > 0 && !reaped_) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    if (std::getenv("KURA_TEST_KEEP_DIRS") != nullptr)
      return; // the log stays beside the kept data dir (<data dir>.log)
    std::error_code ec;
    std::filesystem::remove(log_path, ec);
  }

  void start() {
    reaped_ = false; // a restart on the same object (stop(), then start())
    exit_code_ = -1;
    exit_note_.clear();
    pid = ::fork();
    if (pid == 0) {
      int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(fd, 2);
      ::dup2(fd, 1);
      std::vector<std::string> all{bin_};
      all.insert(all.end(), args_.begin(), args_.end());
      std::vector<char*> argv;
      for (auto& a : all)
        argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ready = wait_ready();
    if (!ready) // a test may expect it; CI's output shows why when it did not
      std::fprintf(stderr,
                   "node_process: kura-node on port %u did not answer PING (%s); its log:\n%s\n",
                   static_cast<unsigned>(port), state().c_str(), log().c_str());
  }

  // generous: a loaded CI machine (two tests at once, ASan) can take many
  // seconds to start a node; the bound only matters when the node never
  // answers
  bool wait_ready(int timeout_ms = 60000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < deadline) {
      int st = 0;
      if (::waitpid(pid, &st, WNOHANG) == pid) {
        note_exit(st);
        pid = -1;
        return false;
      }
      client c(port);
      if (c.ok()) {
        auto r = c.call({"PING"});
        if (r && (*r == "+PONG\r\n" || r->rfind("-NOAUTH", 0) == 0)) // NOAUTH: a password is set
          return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

  /// Sends `sig` and waits for the exit; returns the exit code (or 128+signal).
  int stop(int sig = SIGTERM) {
    if (pid <= 0)
      return -1;
    if (reaped_) { // alive() saw it end before: no signal to a pid that may be reused
      pid = -1;
      return exit_code_;
    }
    ::kill(pid, sig);
    int st = 0;
    ::waitpid(pid, &st, 0);
    note_exit(st);
    pid = -1;
    return exit_code_;
  }

  /// True while the process runs; reaps it (and notes how it ended) once it
  /// has ended, after which `pid` is never signalled again by this object.
  bool alive() {
    if (pid <= 0 || reaped_)
      return false;
    int st = 0;
    if (::waitpid(pid, &st, WNOHANG) != pid)
      return true;
    note_exit(st);
    return false;
  }

  /// "running", or how the process ended ("exited with status N", "killed by
  /// signal N (name)"): a test's failure output says whether a node died.
  std::string state() {
    if (alive())
      return "running";
    return exit_note_.empty() ? "stopped" : exit_note_;
  }

  std::string log() const {
    std::ifstream f(log_path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }

  /// redis-cli against this node; returns stdout.
  std::string cli(const std::string& args, int* rc = nullptr) const {
    return run_shell("redis-cli -p " + std::to_string(port) + " " + args + " 2>&1", rc);
  }

  /// Waits (up to `timeout_ms`) until L3 has applied and committed every
  /// write (INFO's write-behind queue and uncommitted writes are 0).
  bool l3_idle(int timeout_ms = 10000) {
    for (int waited = 0; waited <= timeout_ms; waited += 25) {
      if (info_field("l3_write_behind_queue") == "0" && info_field("l3_uncommitted_writes") == "0")
        return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    return false;
  }

  /// Value of "field:" in INFO's output.
  std::string info_field(const std::string& field) {
    client c(port);
    auto r = c.call({"INFO"});
    if (!r)
      return {};
    auto p = r->find(field + ":");
    if (p == std::string::npos)
      return {};
    auto e = r->find("\r\n", p);
    return r->substr(p + field.size() + 1, e - p - field.size() - 1);
  }

  uint16_t port = 0, metrics_port = 0, cluster_port = 0;
  std::string data_dir;
  std::string log_path;
  pid_t pid = -1;
  bool ready = false;

private:
  void note_exit(int st) {
    reaped_ = true;
    if (WIFEXITED(st)) {
      exit_code_ = WEXITSTATUS(st);
      exit_note_ = "exited with status " + std::to_string(exit_code_);
    } else {
      exit_code_ = 128 + WTERMSIG(st);
      exit_note_ = "killed by signal " + std::to_string(WTERMSIG(st)) + " (" +
                   ::strsignal(WTERMSIG(st)) + ")";
    }
  }

  bool reaped_ = false; ///< waitpid returned it: the pid is no longer ours
  int exit_code_ = -1;
  std::string exit_note_;
  std::unique_ptr<temp_dir> own_dir_;
  std::vector<std::string> user_args_;
  std::string bin_; ///< the kura-node binary
  std::vector<std::string> args_;
};

/// Runs kura-node to completion (for start-up failures); returns exit code and
/// stderr+stdout in `out`.
inline int run_node_once(const std::vector<std::string>& args, std::string& out) {
  std::string cmd = "timeout 20 " + bin_dir() + "/kura-node";
  for (auto& a : args)
    cmd += " '" + a + "'";
  int rc = 0;
  out = run_shell(cmd + " 2>&1", &rc);
  return rc;
}

/// A whole number of hours (<= 0) that, added to the wall clock, lands in
/// the last Wednesday's 12:00-12:59 UTC at the wall clock's minute; fixed for
/// the process. The predictor tests shift the node's clock by it
/// (kura.prewarm.clock-offset-ms) on top of their own hours: the model keeps
/// weekdays and the weekend apart (predictor/time_profile.hpp), so a test
/// that learned on Friday evening and planned into Saturday found no habit
/// there (predictor_node_test failed on Friday 23:xx UTC, session 23).
inline int64_t predictor_weekday_shift_ms() {
  static const int64_t shift = [] {
    constexpr int64_t hour = 3600 * 1000, day = 24 * hour, week = 7 * day;
    const int64_t wall = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
    const int64_t wall_hour = wall / hour * hour;
    // 1970-01-05 was a Monday; Wednesday 12:00 is 2 days 12 hours later
    int64_t wednesday = (wall_hour - 4 * day) / week * week + 4 * day + 2 * day + 12 * hour;
    if (wednesday > wall_hour)
      wednesday -= week;
    return wednesday - wall_hour;
  }();
  return shift;
}

/// The integer after "\"name\": " in a JSON object such as the kura CLI's
/// --json output (-1 when missing).
inline long long json_int(const std::string& js, const std::string& name) {
  auto p = js.find("\"" + name + "\": ");
  if (p == std::string::npos)
    return -1;
  return std::atoll(js.c_str() + p + name.size() + 4);
}

} // namespace kura::test
