// `kura compact` and `kura archive`: the archive commands of the kura CLI.
//   kura compact          starts a compaction (or joins the running one), shows
//                         a progress bar (bytes done/total, rate) on stderr and
//                         a one-line summary; --json prints only the summary
//                         as a JSON object on stdout.
//   kura archive          segments, live fraction, raw vs stored bytes,
//                         dictionaries and the oldest entry; --json for scripts.
#include "node/archive_node.hpp"
#include "node/cli_reply.hpp"
#include "node/json_writer.hpp"
#include "node/ops.hpp"

#include <caf/all.hpp>

#include <cmath>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <sstream>
#include <thread>

#include <unistd.h>

namespace kura::node {

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4)
    b /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof(buf), u == 0 ? "%.0f %s" : "%.1f %s", b, units[u]);
  return buf;
}

void draw_progress(std::ostream& err, double frac, const std::string& detail) {
  frac = std::clamp(frac, 0.0, 1.0);
  constexpr int width = 30;
  int fill = static_cast<int>(frac * width);
  std::string bar(static_cast<size_t>(fill), '#');
  bar += std::string(static_cast<size_t>(width - fill), '-');
  char pct[16];
  std::snprintf(pct, sizeof(pct), "%5.1f%%", frac * 100);
  err << "\r[" << bar << "] " << pct << "  " << detail << "   " << std::flush;
}

ops_credentials& cli_credentials() {
  static ops_credentials c;
  return c;
}

namespace {

using namespace actors;

std::string iso_time(uint64_t ms) {
  if (ms == 0)
    return "-";
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string fixed(double v, int digits = 3) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

/// Decodes a T or prints the node's error; returns false on error.
template <class T>
bool decode_or_report(msg_type type, std::string_view bytes, T& msg, bool json, std::ostream& out,
                      std::ostream& err) {
  auto r = decode_message<T>(type, bytes);
  if (r) {
    msg = std::move(*r);
    return true;
  }
  auto e = decode_message<kv_reply>(msg_type::kv_reply, bytes);
  std::string why = e ? e->error : "bad answer from the node: " + r.err().message;
  if (json)
    out << json_writer{}.begin_object().key("error").str(why).end_object().str() << "\n";
  err << "kura: " << why << "\n";
  return false;
}

void progress_bar(const compaction_report& r) {
  double frac =
      r.bytes_total == 0
          ? 1.0
          : std::min(1.0, static_cast<double>(r.bytes_done) / static_cast<double>(r.bytes_total));
  draw_progress(std::cerr, frac,
                human_bytes(static_cast<double>(r.bytes_done)) + " / " +
                    human_bytes(static_cast<double>(r.bytes_total)) + "  " +
                    human_bytes(static_cast<double>(r.rate_bytes_per_s)) + "/s  segments " +
                    std::to_string(r.segments_done) + "/" + std::to_string(r.segments_total));
}

void print_compaction(const compaction_report& r, bool json, std::ostream& out) {
  if (json) {
    json_writer j;
    j.begin_object().key("run").num(r.run).key("ok").boolean(r.ok).key("error");
    if (r.error.empty())
      j.null();
    else
      j.str(r.error);
    j.key("trigger").str(r.trigger).key("bytes_done").num(r.bytes_done);
    j.key("bytes_total").num(r.bytes_total).key("bytes_written").num(r.bytes_written);
    j.key("entries_moved").num(r.entries_moved).key("segments_done").num(r.segments_done);
    j.key("segments_total").num(r.segments_total).key("elapsed_ms").num(r.elapsed_ms);
    j.key("rate_bytes_per_s").num(r.rate_bytes_per_s);
    j.key("rate_limit_bytes_per_s").num(r.rate_limit).end_object();
    out << j.str() << "\n";
    return;
  }
  if (!r.ok) {
    out << "compaction " << r.run << " failed: " << r.error << "\n";
    return;
  }
  if (r.segments_total == 0) {
    out << "compaction " << r.run << ": nothing to compact\n";
    return;
  }
  out << "compaction " << r.run << " done: " << r.segments_done << " segments, "
      << human_bytes(static_cast<double>(r.bytes_done)) << " read, "
      << human_bytes(static_cast<double>(r.bytes_written)) << " written, " << r.entries_moved
      << " entries moved in " << fixed(r.elapsed_ms / 1000.0, 1) << " s ("
      << human_bytes(static_cast<double>(r.rate_bytes_per_s)) << "/s)\n";
}

int run_compact(caf::actor_system& sys, caf::scoped_actor& self, const caf::actor& ops, bool json,
                caf::timespan timeout) {
  std::string why;
  auto unreachable = [&] {
    std::cerr << "\nkura: lost the kura-node during compaction (" << why << ")\n";
    return 2;
  };
  auto a = ask_ops(sys, self, ops, archive_ops::compact, timeout, why);
  if (!a)
    return unreachable();
  compaction_report r;
  if (!decode_or_report(msg_compaction_report, *a, r, json, std::cout, std::cerr))
    return 1;
  auto run = r.run;
  bool bar = !json || ::isatty(2);
  while (r.running) {
    if (bar)
      progress_bar(r);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    a = ask_ops(sys, self, ops, archive_ops::compact_status, timeout, why);
    if (!a)
      return unreachable();
    if (!decode_or_report(msg_compaction_report, *a, r, json, std::cout, std::cerr))
      return 1;
    if (r.run != run && !r.running) {
      why = "the job's result was replaced by a newer one";
      return unreachable();
    }
  }
  if (bar && r.segments_total > 0) {
    progress_bar(r);
    std::cerr << "\n";
  }
  print_compaction(r, json, std::cout);
  return r.ok ? 0 : 1;
}

int run_archive(caf::actor_system& sys, caf::scoped_actor& self, const caf::actor& ops, bool json,
                caf::timespan timeout) {
  std::string why;
  auto a = ask_ops(sys, self, ops, archive_ops::archive, timeout, why);
  if (!a) {
    std::cerr << "kura: the kura-node did not answer (" << why << ")\n";
    return 2;
  }
  return print_archive_answer(*a, json, std::cout, std::cerr);
}

} // namespace

int print_archive_answer(std::string_view answer, bool json, std::ostream& out, std::ostream& err) {
  archive_report r;
  if (!decode_or_report(msg_archive_report, answer, r, json, out, err))
    return 1;
  if (json) {
    json_writer j; // ratios with 4 decimals; not finite: null
    j.begin_object().key("codec").str(r.codec).key("entries").num(r.entries);
    j.key("stored_bytes").num(r.stored_bytes).key("raw_bytes").num(r.raw_bytes);
    j.key("live_raw_bytes").num(r.live_raw_bytes).key("ratio").num(r.ratio, 4);
    j.key("live_fraction").num(r.live_fraction, 4);
    j.key("oldest_entry_ms").num(r.oldest_entry_ms).key("max_bytes").num(r.max_bytes);
    j.key("ttl_days").num(r.ttl_days).key("corrupt_blocks").num(r.corrupt_blocks);
    j.key("compaction_runs").num(r.compaction_runs).key("l4_hits").num(r.l4_hits);
    j.key("l4_misses").num(r.l4_misses).key("segments").begin_array();
    for (auto& s : r.segments) {
      j.begin_object().key("id").num(s.id).key("codec").str(s.codec);
      j.key("dict_id").num(s.dict_id).key("stored_bytes").num(s.stored_bytes);
      j.key("raw_bytes").num(s.raw_bytes).key("entries").num(s.entries);
      j.key("live_entries").num(s.live_entries).key("live_fraction").num(s.live_fraction, 4);
      j.key("oldest_ms").num(s.oldest_ms).key("active").boolean(s.active).end_object();
    }
    j.end_array().key("dictionaries").begin_array();
    for (auto& d : r.dictionaries) {
      j.begin_object().key("id").num(d.id).key("bytes").num(d.bytes);
      j.key("segments").num(d.segments).key("current").boolean(d.current).end_object();
    }
    j.end_array().end_object();
    out << j.str() << "\n";
    return 0;
  }
  out << "codec " << r.codec << ", " << r.entries << " entries, "
      << human_bytes(static_cast<double>(r.raw_bytes)) << " raw in "
      << human_bytes(static_cast<double>(r.stored_bytes)) << " stored (ratio " << fixed(r.ratio)
      << "), live fraction " << fixed(r.live_fraction) << ", oldest entry "
      << iso_time(r.oldest_entry_ms) << "\n"
      << "limits: " << human_bytes(static_cast<double>(r.max_bytes)) << ", " << r.ttl_days
      << " days; compactions " << r.compaction_runs << "; L4 hits " << r.l4_hits << ", misses "
      << r.l4_misses << "; corrupt blocks " << r.corrupt_blocks << "\n\n";
  char line[256];
  std::snprintf(line, sizeof(line), "%-8s %-16s %5s %12s %12s %9s %9s %6s  %-20s %s\n", "SEGMENT",
                "CODEC", "DICT", "STORED", "RAW", "ENTRIES", "LIVE", "LIVE%", "OLDEST", "");
  out << line;
  for (auto& s : r.segments) {
    std::snprintf(
        line, sizeof(line), "%-8llu %-16s %5u %12llu %12llu %9llu %9llu %6.1f  %-20s %s\n",
        static_cast<unsigned long long>(s.id), s.codec.c_str(), s.dict_id,
        static_cast<unsigned long long>(s.stored_bytes),
        static_cast<unsigned long long>(s.raw_bytes), static_cast<unsigned long long>(s.entries),
        static_cast<unsigned long long>(s.live_entries), s.live_fraction * 100,
        iso_time(s.oldest_ms).c_str(), s.active ? "active" : "");
    out << line;
  }
  if (!r.dictionaries.empty()) {
    out << "\nDICTIONARY      BYTES  SEGMENTS  CURRENT\n";
    for (auto& d : r.dictionaries) {
      std::snprintf(line, sizeof(line), "%-10u %10llu %9u  %s\n", d.id,
                    static_cast<unsigned long long>(d.bytes), d.segments, d.current ? "yes" : "");
      out << line;
    }
  }
  return 0;
}

int print_compaction_answer(std::string_view answer, bool json, std::ostream& out,
                            std::ostream& err) {
  compaction_report r;
  if (!decode_or_report(msg_compaction_report, answer, r, json, out, err))
    return 1;
  print_compaction(r, json, out);
  return r.ok ? 0 : 1;
}

int run_archive_command(caf::actor_system& sys, caf::scoped_actor& self, const caf::actor& ops,
                        const std::string& cmd, bool json, caf::timespan timeout) {
  if (cmd == "compact")
    return run_compact(sys, self, ops, json, timeout);
  return run_archive(sys, self, ops, json, timeout);
}

std::optional<std::string> ask_ops(caf::actor_system& sys, caf::scoped_actor& self,
                                   const caf::actor& ops, uint8_t op, caf::timespan timeout,
                                   std::string& why) {
  actors::kv_request req;
  req.op = op;
  std::optional<std::string> answer;
  auto& cred = cli_credentials();
  self->request(ops, timeout, ops_request_atom::value, cred.user, cred.password,
                actors::encode_message(actors::msg_type::kv_request, req))
      .receive([&](std::string& bytes) { answer = std::move(bytes); },
               [&](caf::error& err) { why = sys.render(err); });
  return answer;
}

} // namespace kura::node
