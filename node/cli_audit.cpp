// `kura audit`: reads the node's audit log (a local file, with its rotated
// files) and prints the events, oldest first.
//   kura audit [--file=PATH | --data-dir=DIR] [--since=T] [--json]
// T is an ISO 8601 time (2026-12-01T14:00:00Z, or a date), seconds since the
// epoch, or an age: 30s, 15m, 2h, 7d. --json prints the raw JSON lines.
#include "node/audit_log.hpp"

#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

namespace kura::node {

namespace {

bool parse_since(const std::string& s, uint64_t& ms) {
  if (s.size() >= 2) {
    char unit = s.back();
    uint64_t mul = unit == 's'   ? 1000
                   : unit == 'm' ? 60000
                   : unit == 'h' ? 3600000
                   : unit == 'd' ? 86400000
                                 : 0;
    auto num = s.substr(0, s.size() - 1);
    bool digits = mul != 0 && !num.empty() && num.size() < 10;
    for (char c : num)
      digits = digits && c >= '0' && c <= '9';
    if (digits) {
      auto now = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                           std::chrono::system_clock::now().time_since_epoch())
                                           .count());
      uint64_t age = std::stoull(num) * mul;
      ms = age > now ? 0 : now - age;
      return true;
    }
  }
  return parse_time(s, ms);
}

} // namespace

int run_audit_command(const std::vector<std::string>& args, bool json) {
  std::string file = "kura-data/audit.log";
  uint64_t since = 0;
  unsigned keep = 1000;
  for (size_t i = 1; i < args.size(); ++i) {
    const auto& a = args[i];
    auto value = [&](const char* name, std::string& out) {
      std::string p = std::string(name) + "=";
      if (a.rfind(p, 0) == 0) {
        out = a.substr(p.size());
        return true;
      }
      if (a == name && i + 1 < args.size()) {
        out = args[++i];
        return true;
      }
      return false;
    };
    std::string v;
    if (value("--file", v)) {
      file = v;
    } else if (value("--data-dir", v)) {
      file = v + "/audit.log";
    } else if (value("--since", v)) {
      if (!parse_since(v, since)) {
        std::cerr << "kura: bad --since '" << v
                  << "' (ISO 8601 time, epoch seconds, or an age like 15m, 2h, 7d)\n";
        return 1;
      }
    } else if (a == "--json") {
      json = true;
    } else {
      std::cerr << "kura: unknown audit option '" << a << "'\n";
      return 1;
    }
  }
  std::vector<std::string> lines;
  if (auto err = read_audit_lines(file, keep, lines); !err.empty()) {
    std::cerr << "kura: " << err << "\n";
    return 1;
  }
  if (!json)
    std::printf("%-24s %-14s %-21s %-12s %-16s %s\n", "TIME", "EVENT", "CLIENT", "USER", "COMMAND",
                "RESULT");
  for (auto& l : lines) {
    auto p = parse_audit_line(l);
    if (!p.ok || p.time_ms < since)
      continue;
    if (json)
      std::cout << l << "\n";
    else
      std::printf(
          "%-24s %-14s %-21s %-12s %-16s %s%s\n", p.time.c_str(), p.event.c_str(), p.client.c_str(),
          p.user.c_str(), p.command.c_str(), p.result.c_str(),
          p.repeated == 0
              ? ""
              : (" (" + std::to_string(p.repeated) + " more since " + p.since + ")").c_str());
  }
  return 0;
}

} // namespace kura::node
