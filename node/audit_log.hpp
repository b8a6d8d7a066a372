// The audit log: append-only JSON lines, one per security-relevant event
// (authentication failures, ACL denials and changes, admin and dangerous
// commands, connections refused by protected mode). Each line holds time,
// node, client address, user, command (arguments redacted unless
// `log_args`), result. Lines are written at once (O_APPEND) and fsync'ed in
// batches: every `fsync_every` lines, and by `sync()` which the owner calls
// on a timer. When the file would pass `max_bytes` it is rotated:
// path -> path.1 -> ... -> path.<keep> (the oldest is dropped).
// `read_audit_lines` reads a log with its rotated files, oldest first (for
// `kura audit`). CAF-free.
//
// Repeated refusals. A stranger that retries every second (a bad client
// certificate, a node without the cluster secret, a wrong password, a client
// protected mode refuses) would add a line a second. The first refusal of a
// kind from an address is written at once; identical ones (same event,
// client host -- the port aside --, user, command and result) within
// `repeat_window_ms` after it are only counted, and one line with
// `"repeated": N` (the count, the time of the last one and `"since"`, the
// first one's time) is written when the window ends (by tick(), or by the
// next refusal after it). Refusal events: auth, tls, cluster-tls,
// cluster-peer, protected-mode. 0 = every refusal is written.
// Thread safety: not thread-safe; owned by the RESP broker.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace kura::node {

struct audit_event {
  uint64_t time_ms = 0;
  std::string event;  ///< "auth", "acl-denied", "command", "protected-mode", ...
  std::string client; ///< "ip:port"
  std::string user;
  std::string command;           ///< "FLUSHALL", "CONFIG SET", "ACL SETUSER", "AUTH"
  std::vector<std::string> args; ///< arguments after the command (redacted or not)
  std::string result;            ///< "ok" or the error reply
  uint64_t repeated = 0;         ///< a summary line: identical refusals it stands for
  uint64_t since_ms = 0;         ///< a summary line: the first of them
};

/// One window of identical refusals (audit_log's repeat folding).
struct repeat_state {
  uint64_t first_ms = 0; ///< the refusal that was written
  uint64_t last_ms = 0;
  uint64_t count = 0; ///< identical ones after it, not written yet
  audit_event last;   ///< the last of them (its fields go into the summary)
};

class audit_log {
public:
  struct options {
    std::string path;
    std::string node;                   ///< node name written in every line
    uint64_t max_bytes = 64ull << 20;   ///< rotate above this
    unsigned keep = 5;                  ///< rotated files kept
    unsigned fsync_every = 64;          ///< lines between fsyncs
    bool log_args = false;              ///< log arguments (secrets still redacted)
    uint64_t repeat_window_ms = 60'000; ///< repeated refusals: one line per window (0: off)
  };
  explicit audit_log(options o) : opt_(std::move(o)) {}
  ~audit_log();
  audit_log(const audit_log&) = delete;
  audit_log& operator=(const audit_log&) = delete;

  /// Opens (creates) the file for appending; "" or an error line.
  std::string open();
  /// Appends one event. Errors are counted, never thrown: the node keeps
  /// serving when its audit disk fails (`write_errors` shows it).
  void record(const audit_event& e);
  /// Fsyncs what was written since the last sync.
  void sync();
  /// Writes the summary lines of repeated refusals whose window ended by
  /// `now_ms`, then sync(). The owner calls it on its timer.
  void tick(uint64_t now_ms);
  /// Refusals counted but not written (yet: their summary line is due).
  uint64_t suppressed() const noexcept { return suppressed_; }
  /// Whether `event` is a refusal that repeats are folded for.
  static bool folded(std::string_view event);

  const options& opts() const noexcept { return opt_; }
  uint64_t lines() const noexcept { return lines_; }
  uint64_t write_errors() const noexcept { return errors_; }

  /// The JSON line for `e` (without the newline).
  static std::string to_json(const audit_event& e, std::string_view node);

private:
  void rotate();
  void write(const audit_event& e);
  /// Writes the summary line of `r` when it counted repeats.
  void summarize(repeat_state& r);
  options opt_;
  /// Open windows of repeated refusals, by (event, host, user, command, result).
  std::map<std::string, repeat_state> repeats_;
  uint64_t suppressed_ = 0;
  int fd_ = -1;
  uint64_t size_ = 0;
  unsigned unsynced_ = 0;
  uint64_t lines_ = 0;
  uint64_t errors_ = 0;
};

/// JSON string escaping (quotes included).
std::string json_quote(std::string_view s);
/// "2026-12-01T14:30:00.123Z" for a time in ms since the epoch.
std::string iso8601_ms(uint64_t ms);
/// Parses iso8601_ms's format (also without ms or 'Z', or only a date), or
/// seconds since the epoch; false if neither.
bool parse_time(std::string_view s, uint64_t& ms);

/// One parsed line of the audit log (the fields `kura audit` shows).
struct audit_line {
  std::string raw;
  uint64_t time_ms = 0;
  std::string time, event, client, user, command, result;
  uint64_t repeated = 0; ///< a summary of repeated refusals: how many
  std::string since;     ///< ... since when
  bool ok = false;       ///< parsed
};
/// Parses one JSON line written by audit_log.
audit_line parse_audit_line(std::string_view line);
/// The lines of `path` and its rotated files (path.N ... path.1, path),
/// oldest first. Missing files are skipped; an error if none exists.
std::string read_audit_lines(const std::string& path, unsigned keep, std::vector<std::string>& out);

} // namespace kura::node
