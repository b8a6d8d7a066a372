#include "node/audit_log.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace kura::node {

std::string json_quote(std::string_view s) {
  std::string r = "\"";
  for (unsigned char c : s) {
    switch (c) {
    case '"':
      r += "\\\"";
      break;
    case '\\':
      r += "\\\\";
      break;
    case '\n':
      r += "\\n";
      break;
    case '\r':
      r += "\\r";
      break;
    case '\t':
      r += "\\t";
      break;
    default:
      if (c < 0x20 || c >= 0x7f) { // keep the file ASCII: bytes as \u00XX
        char buf[8];
        std::snprintf(buf, sizeof(buf), "\\u%04x", c);
        r += buf;
      } else {
        r += static_cast<char>(c);
      }
    }
  }
  r += '"';
  return r;
}

std::string iso8601_ms(uint64_t ms) {
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[96];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<unsigned>(ms % 1000));
  return buf;
}

bool parse_time(std::string_view s, uint64_t& ms) {
  if (s.empty())
    return false;
  bool digits = true;
  for (char c : s)
    digits = digits && c >= '0' && c <= '9';
  if (digits) {
    if (s.size() > 12)
      return false;
    ms = std::stoull(std::string(s)) * 1000;
    return true;
  }
  std::string str(s);
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  unsigned frac = 0;
  int n =
      std::sscanf(str.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%3u", &y, &mo, &d, &h, &mi, &sec, &frac);
  if (n < 3 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
    return false;
  if (n > 3 && n < 5)
    return false;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  auto t = timegm(&tm);
  if (t < 0)
    return false;
  ms = static_cast<uint64_t>(t) * 1000 + (n == 7 ? frac : 0);
  return true;
}

// -- writing ---------------------------------------------------------------------------

audit_log::~audit_log() {
  if (fd_ >= 0) {
    tick(UINT64_MAX); // repeats counted so far get their line
    ::close(fd_);
  }
}

std::string audit_log::open() {
  auto parent = std::filesystem::path(opt_.path).parent_path();
  std::error_code ec;
  if (!parent.empty())
    std::filesystem::create_directories(parent, ec);
  fd_ = ::open(opt_.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd_ < 0)
    return "cannot open audit log " + opt_.path + ": " + std::strerror(errno);
  struct stat st {};
  if (::fstat(fd_, &st) == 0)
    size_ = static_cast<uint64_t>(st.st_size);
  return {};
}

std::string audit_log::to_json(const audit_event& e, std::string_view node) {
  std::string r = "{\"time\":";
  r += json_quote(iso8601_ms(e.time_ms));
  r += ",\"node\":";
  r += json_quote(node);
  r += ",\"event\":";
  r += json_quote(e.event);
  r += ",\"client\":";
  r += json_quote(e.client);
  r += ",\"user\":";
  r += json_quote(e.user);
  r += ",\"command\":";
  r += json_quote(e.command);
  r += ",\"args\":[";
  for (size_t i = 0; i < e.args.size(); ++i) {
    if (i)
      r += ',';
    r += json_quote(e.args[i]);
  }
  r += "],\"result\":";
  r += json_quote(e.result);
  if (e.repeated > 0) {
    r += ",\"repeated\":" + std::to_string(e.repeated);
    r += ",\"since\":" + json_quote(iso8601_ms(e.since_ms));
  }
  r += '}';
  return r;
}

void audit_log::rotate() {
  sync();
  ::close(fd_);
  fd_ = -1;
  std::error_code ec;
  namespace fs = std::filesystem;
  if (opt_.keep == 0) {
    fs::remove(opt_.path, ec);
  } else {
    fs::remove(opt_.path + "." + std::to_string(opt_.keep), ec);
    for (unsigned i = opt_.keep; i > 1; --i)
      fs::rename(opt_.path + "." + std::to_string(i - 1), opt_.path + "." + std::to_string(i), ec);
    fs::rename(opt_.path, opt_.path + ".1", ec);
  }
  size_ = 0;
  if (!open().empty())
    ++errors_;
}

bool audit_log::folded(std::string_view event) {
  return event == "auth" || event == "tls" || event == "cluster-tls" || event == "cluster-peer" ||
         event == "protected-mode";
}

namespace {

/// "1.2.3.4" of "1.2.3.4:5678" ("[::1]" of "[::1]:5678"): a retry comes from
/// another port.
std::string_view host_of(std::string_view client) {
  auto colon = client.rfind(':');
  if (colon == std::string_view::npos)
    return client;
  if (client[0] != '[' && client.find(':') != colon)
    return client; // a bare IPv6 address
  return client.substr(0, colon);
}

} // namespace

void audit_log::summarize(repeat_state& r) {
  if (r.count == 0)
    return;
  audit_event s = r.last;
  s.client.assign(host_of(r.last.client));
  s.repeated = r.count;
  s.since_ms = r.first_ms;
  s.time_ms = r.last_ms;
  r.count = 0;
  write(s);
}

void audit_log::record(const audit_event& e) {
  if (opt_.repeat_window_ms == 0 || !folded(e.event)) {
    write(e);
    return;
  }
  std::string key = e.event;
  for (std::string_view part : {host_of(e.client), std::string_view(e.user),
                                std::string_view(e.command), std::string_view(e.result)}) {
    key += '\0';
    key += part;
  }
  auto it = repeats_.find(key);
  if (it != repeats_.end() && e.time_ms < it->second.first_ms + opt_.repeat_window_ms) {
    auto& r = it->second; // within the window: counted
    ++r.count;
    ++suppressed_;
    r.last_ms = std::max(r.last_ms, e.time_ms);
    r.last = e;
    return;
  }
  if (it != repeats_.end()) {
    summarize(it->second);
    repeats_.erase(it);
  }
  if (repeats_.size() >= 4096) // a flood from many addresses: bounded memory
    tick(UINT64_MAX);
  write(e);
  auto& r = repeats_[key];
  r.first_ms = r.last_ms = e.time_ms;
}

void audit_log::tick(uint64_t now_ms) {
  for (auto it = repeats_.begin(); it != repeats_.end();) {
    if (now_ms == UINT64_MAX || now_ms >= it->second.first_ms + opt_.repeat_window_ms) {
      summarize(it->second);
      it = repeats_.erase(it);
    } else {
      ++it;
    }
  }
  sync();
}

void audit_log::write(const audit_event& e) {
  auto line = to_json(e, opt_.node);
  line += '\n';
  if (fd_ >= 0 && size_ > 0 && size_ + line.size() > opt_.max_bytes)
    rotate();
  if (fd_ < 0) {
    ++errors_;
    return;
  }
  size_t off = 0;
  while (off < line.size()) {
    auto n = ::write(fd_, line.data() + off, line.size() - off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      ++errors_;
      return;
    }
    off += static_cast<size_t>(n);
  }
  size_ += line.size();
  ++lines_;
  if (++unsynced_ >= opt_.fsync_every)
    sync();
}

void audit_log::sync() {
  if (fd_ < 0 || unsynced_ == 0)
    return;
  if (::fdatasync(fd_) != 0)
    ++errors_;
  unsynced_ = 0;
}

// -- reading ------------------------------------------------------------------------------

namespace {

/// The string value of "key" in one of our JSON lines ("" if absent).
bool json_string_field(std::string_view line, std::string_view key, std::string& out) {
  std::string pat = "\"";
  pat.append(key);
  pat += "\":\"";
  auto p = line.find(pat);
  if (p == std::string_view::npos)
    return false;
  p += pat.size();
  out.clear();
  while (p < line.size() && line[p] != '"') {
    char c = line[p];
    if (c == '\\' && p + 1 < line.size()) {
      char n = line[++p];
      switch (n) {
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'u':
        if (p + 4 < line.size()) {
          out += static_cast<char>(
              std::strtoul(std::string(line.substr(p + 1, 4)).c_str(), nullptr, 16));
          p += 4;
        }
        break;
      default:
        out += n;
      }
    } else {
      out += c;
    }
    ++p;
  }
  return p < line.size();
}

} // namespace

audit_line parse_audit_line(std::string_view line) {
  audit_line r;
  r.raw.assign(line.data(), line.size());
  r.ok = json_string_field(line, "time", r.time) && parse_time(r.time, r.time_ms);
  json_string_field(line, "event", r.event);
  json_string_field(line, "client", r.client);
  json_string_field(line, "user", r.user);
  json_string_field(line, "command", r.command);
  json_string_field(line, "result", r.result);
  json_string_field(line, "since", r.since);
  if (auto p = line.find("\"repeated\":"); p != std::string_view::npos)
    r.repeated = std::strtoull(std::string(line.substr(p + 11, 20)).c_str(), nullptr, 10);
  return r;
}

std::string read_audit_lines(const std::string& path, unsigned keep,
                             std::vector<std::string>& out) {
  bool any = false;
  for (unsigned i = keep + 1; i-- > 0;) {
    auto p = i == 0 ? path : path + "." + std::to_string(i);
    std::ifstream f(p);
    if (!f)
      continue;
    any = true;
    std::string line;
    while (std::getline(f, line))
      if (!line.empty())
        out.push_back(line);
  }
  if (!any)
    return "cannot read audit log " + path + ": " + std::strerror(ENOENT);
  return {};
}

} // namespace kura::node
