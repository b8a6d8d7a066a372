// `kura prewarm`, `kura predictor` and `kura alerts`: the predictor commands
// of the kura CLI.
//   kura prewarm [--dry-run] [--json]
//       without --dry-run: starts a prewarm now (or joins the running one),
//       shows a progress bar (keys and bytes loaded, rate) on stderr, then a
//       summary and the keys it planned; --json prints only the final report.
//       --dry-run: what the model predicts over the prediction window (keys
//       and learned patterns, confidence, bytes); nothing is loaded.
//   kura predictor [--json]   precision, keys prewarmed, hits they served,
//       bytes loaded, TTL changes, the model's size, alerts by kind
//   kura alerts [--json]      active and recent alerts
#include "node/cli_predictor.hpp"
#include "actors/predictor.hpp"
#include "node/json_writer.hpp"
#include "node/ops.hpp"

#include <caf/all.hpp>

#include <cstdio>
#include <ctime>
#include <iostream>
#include <thread>

#include <unistd.h>

namespace kura::node {

namespace {

using namespace actors;

std::string when(uint64_t ms) {
  if (ms == 0)
    return "-";
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string mib(uint64_t b) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f MiB", static_cast<double>(b) / (1 << 20));
  return buf;
}

template <class T>
bool decode_answer(msg_type type, std::string_view bytes, T& out, bool json, std::ostream& o,
                   std::ostream& e) {
  auto r = decode_message<T>(type, bytes);
  if (r) {
    out = std::move(*r);
    return true;
  }
  auto err = decode_message<kv_reply>(msg_type::kv_reply, bytes);
  std::string why = err ? err->error : "bad answer from the node: " + r.err().message;
  if (json)
    o << json_writer{}.begin_object().key("error").str(why).end_object().str() << "\n";
  e << "kura: " << why << "\n";
  return false;
}

void progress(const prewarm_report& r) {
  const double frac =
      r.keys_total == 0
          ? 1.0
          : std::min(1.0, static_cast<double>(r.keys_done) / static_cast<double>(r.keys_total));
  constexpr int width = 30;
  const int fill = static_cast<int>(frac * width);
  std::string bar(static_cast<size_t>(fill), '#');
  bar += std::string(static_cast<size_t>(width - fill), '-');
  const double secs = r.elapsed_ms / 1000.0;
  char line[200];
  std::snprintf(line, sizeof(line), "\r[%s] %5.1f%%  keys %llu/%llu  %s loaded  %.1f MiB/s   ",
                bar.c_str(), frac * 100, static_cast<unsigned long long>(r.keys_done),
                static_cast<unsigned long long>(r.keys_total), mib(r.bytes_loaded).c_str(),
                secs > 0 ? static_cast<double>(r.bytes_loaded) / (1 << 20) / secs : 0.0);
  std::cerr << line << std::flush;
}

void rows_json(json_writer& j, const std::vector<prewarm_row>& items) {
  j.key("items").begin_array();
  for (auto& it : items) {
    j.begin_object().key("key").str(it.key).key("pattern").str(it.pattern);
    j.key("is_pattern").boolean(it.is_pattern).key("confidence").num(it.confidence, 4);
    j.key("bytes").num(it.bytes).end_object();
  }
  j.end_array();
}

void rows_table(const std::vector<prewarm_row>& items, size_t limit, std::ostream& out) {
  if (items.empty())
    return;
  size_t w = 3;
  for (size_t i = 0; i < items.size() && i < limit; ++i)
    w = std::max(w, std::min<size_t>(60, items[i].key.size()));
  char line[512];
  std::snprintf(line, sizeof(line), "%-*s  %-7s  %10s  %10s  %s\n", static_cast<int>(w), "KEY",
                "KIND", "CONFIDENCE", "BYTES", "PATTERN");
  out << line;
  for (size_t i = 0; i < items.size() && i < limit; ++i) {
    auto& it = items[i];
    std::snprintf(line, sizeof(line), "%-*s  %-7s  %10.3f  %10llu  %s\n", static_cast<int>(w),
                  it.key.substr(0, 60).c_str(), it.is_pattern ? "pattern" : "key", it.confidence,
                  static_cast<unsigned long long>(it.bytes), it.pattern.c_str());
    out << line;
  }
  if (items.size() > limit)
    out << "... " << items.size() - limit << " more (--json lists up to 1000)\n";
}

} // namespace

int print_prewarm_report(std::string_view answer, bool json, std::ostream& out, std::ostream& err) {
  prewarm_report r;
  if (!decode_answer(msg_prewarm_report, answer, r, json, out, err))
    return 1;
  if (json) {
    json_writer j;
    j.begin_object().key("run").num(r.run).key("dry_run").boolean(r.dry_run);
    j.key("running").boolean(r.running).key("trigger").str(r.trigger).key("error");
    if (r.error.empty())
      j.null();
    else
      j.str(r.error);
    j.key("at_ms").num(r.at_ms).key("horizon_ms").num(r.horizon_ms);
    j.key("keys_total").num(r.keys_total).key("keys_done").num(r.keys_done);
    j.key("loaded").num(r.loaded).key("bytes_planned").num(r.bytes_planned);
    j.key("bytes_loaded").num(r.bytes_loaded).key("resident").num(r.resident);
    j.key("absent").num(r.absent).key("candidates").num(r.candidates);
    j.key("held_back").num(r.held_back).key("cold_dropped").num(r.dropped);
    j.key("not_replicated").num(r.not_replicated);
    j.key("elapsed_ms").num(r.elapsed_ms);
    j.key("rate_limit_bytes_per_s").num(r.rate_limit);
    rows_json(j, r.items);
    out << j.end_object().str() << "\n";
    return r.error.empty() ? 0 : 1;
  }
  if (r.dry_run) {
    size_t keys = 0;
    for (auto& it : r.items)
      keys += it.is_pattern ? 0 : 1;
    out << "prewarm plan over the next " << r.horizon_ms / 3600000.0 << " h: " << keys << " keys ("
        << mib(r.bytes_planned) << ") and " << r.items.size() - keys
        << " patterns above the minimum confidence; nothing loaded (--dry-run)\n";
    rows_table(r.items, 50, out);
    return 0;
  }
  if (r.run == 0) {
    out << "no prewarm has run yet\n";
    return 0;
  }
  out << "prewarm " << r.run << " (" << r.trigger << ", " << when(r.at_ms) << "): " << r.loaded
      << " of " << r.keys_total << " planned keys loaded, " << mib(r.bytes_loaded) << " in "
      << r.elapsed_ms / 1000.0 << " s; " << r.resident << " already in memory, " << r.absent
      << " gone; " << r.candidates << " candidates, " << r.held_back
      << " held back for hotter residents, " << r.dropped
      << " predicted-cold keys dropped from memory; horizon " << r.horizon_ms / 60000 << " min\n";
  if (r.not_replicated > 0)
    out << r.not_replicated
        << " predicted keys skipped: this cluster node does not replicate them\n";
  if (!r.error.empty())
    err << "kura: " << r.error << "\n";
  rows_table(r.items, 20, out);
  return r.error.empty() ? 0 : 1;
}

int print_predictor_report(std::string_view answer, bool json, std::ostream& out,
                           std::ostream& err) {
  predictor_report r;
  if (!decode_answer(msg_predictor_report, answer, r, json, out, err))
    return 1;
  auto kinds = [](json_writer& j, const char* name, const std::vector<uint64_t>& v) {
    j.key(name).begin_object();
    for (size_t k = 0; k < v.size() && k < predictor::alert_kinds; ++k)
      j.key(predictor::to_string(static_cast<predictor::alert_kind>(k))).num(v[k]);
    j.end_object();
  };
  if (json) {
    json_writer j;
    j.begin_object().key("enabled").boolean(r.enabled).key("precision").num(r.precision, 4);
    j.key("prewarm_runs").num(r.prewarm_runs).key("plans").num(r.plans);
    j.key("keys_prewarmed").num(r.prewarm_loads).key("prewarm_hits").num(r.prewarm_hits);
    j.key("prewarm_lost").num(r.prewarm_lost).key("bytes_loaded").num(r.prewarm_bytes);
    j.key("cold_dropped").num(r.cold_dropped);
    j.key("cluster").boolean(r.cluster).key("not_replicated").num(r.not_replicated);
    j.key("sync_failures").num(r.sync_failures);
    j.key("ttl_longer").num(r.ttl_longer).key("ttl_shorter").num(r.ttl_shorter);
    j.key("adjust_ttl").boolean(r.adjust_ttl).key("ttl_rules").begin_array();
    for (auto& rule : r.ttl_rules)
      j.str(rule);
    j.end_array();
    j.key("tier_choice").boolean(r.tier_choice).key("tier_l3_only").num(r.tier_l3_only);
    j.key("tier_rules").begin_array();
    for (auto& rule : r.tier_rules)
      j.str(rule);
    j.end_array();
    j.key("events").num(r.events).key("writes").num(r.writes);
    j.key("sample_one_in").num(r.sample_one_in).key("dropped").num(r.dropped);
    j.key("tracked_keys").num(r.tracked_keys).key("patterns").num(r.patterns);
    j.key("model_bytes").num(r.model_bytes).key("model_budget").num(r.model_budget);
    j.key("horizon_ms").num(r.horizon_ms).key("interval_ms").num(r.interval_ms);
    j.key("min_confidence").num(r.min_confidence, 4).key("model_path").str(r.model_path);
    j.key("model_status").str(r.model_status).key("last_plan_ms").num(r.last_plan_ms);
    j.key("last_save_ms").num(r.last_save_ms);
    kinds(j, "alerts_active", r.alerts_active);
    kinds(j, "alerts_raised", r.alerts_raised);
    out << j.end_object().str() << "\n";
    return 0;
  }
  char line[256];
  auto row = [&](const char* name, const std::string& v) {
    std::snprintf(line, sizeof(line), "%-22s %s\n", name, v.c_str());
    out << line;
  };
  auto n = [](uint64_t v) { return std::to_string(v); };
  char prec[32];
  std::snprintf(prec, sizeof(prec), "%.3f", r.precision);
  row("precision", r.prewarm_loads ? prec : "- (nothing prewarmed yet)");
  row("keys prewarmed", n(r.prewarm_loads));
  row("prewarm hits", n(r.prewarm_hits));
  row("evicted before read", n(r.prewarm_lost));
  row("bytes loaded", mib(r.prewarm_bytes));
  row("cold keys dropped", n(r.cold_dropped) + " (from memory, for loads)");
  row("prewarm runs", n(r.prewarm_runs));
  if (r.cluster) {
    row("not replicated here",
        n(r.not_replicated) + " predicted keys skipped (other nodes' slots)");
    row("cluster sync failures", n(r.sync_failures) + " since start");
  }
  row("TTL changes", n(r.ttl_longer) + " longer, " + n(r.ttl_shorter) + " shorter" +
                         (r.adjust_ttl ? "" : " (kura.prewarm.adjust-ttl off)"));
  for (auto& rule : r.ttl_rules)
    row(r.adjust_ttl ? "  TTL rule" : "  TTL suggestion", rule);
  row("Tier choice", n(r.tier_l3_only) + " new writes to L3 only" +
                         (r.tier_choice ? "" : " (kura.prewarm.tier-choice off)"));
  for (auto& rule : r.tier_rules)
    row("  tier rule", rule);
  row("events learned", n(r.events) + " reads, " + n(r.writes) + " writes (1 in " +
                            n(r.sample_one_in) + " sampled, " + n(r.dropped) + " dropped)");
  row("model", n(r.tracked_keys) + " keys, " + n(r.patterns) + " patterns, " + mib(r.model_bytes) +
                   " of " + mib(r.model_budget));
  row("model file", r.model_path + " (" + r.model_status + ", saved " + when(r.last_save_ms) + ")");
  std::snprintf(prec, sizeof(prec), "%.2f", r.min_confidence);
  row("plan", "every " + n(r.interval_ms / 1000) + " s, horizon " + n(r.horizon_ms / 60000) +
                  " min, min confidence " + prec + ", last " + when(r.last_plan_ms));
  std::string active;
  for (size_t k = 0; k < r.alerts_active.size() && k < predictor::alert_kinds; ++k)
    if (r.alerts_active[k])
      active += std::string(active.empty() ? "" : ", ") +
                predictor::to_string(static_cast<predictor::alert_kind>(k)) + " " +
                n(r.alerts_active[k]);
  row("alerts active", active.empty() ? "none" : active);
  return 0;
}

int print_alerts_report(std::string_view answer, bool json, std::ostream& out, std::ostream& err) {
  alerts_report r;
  if (!decode_answer(msg_alerts_report, answer, r, json, out, err))
    return 1;
  if (json) {
    json_writer j;
    auto list = [&](const char* name, const std::vector<alert_row>& v) {
      j.key(name).begin_array();
      for (auto& a : v) {
        j.begin_object().key("kind").str(a.kind).key("severity").str(a.severity);
        j.key("reason").str(a.reason).key("start_ms").num(a.start_ms).key("end_ms");
        if (a.end_ms)
          j.num(a.end_ms);
        else
          j.null();
        j.key("value").num(a.value, 4).key("threshold").num(a.threshold, 4).end_object();
      }
      j.end_array();
    };
    j.begin_object();
    list("active", r.active);
    list("recent", r.recent);
    out << j.end_object().str() << "\n";
    return 0;
  }
  auto table = [&](const char* title, const std::vector<alert_row>& v) {
    out << title << ": " << (v.empty() ? "none" : std::to_string(v.size())) << "\n";
    for (auto& a : v)
      out << "  " << a.kind << "  " << a.severity << "  " << when(a.start_ms) << " .. "
          << (a.end_ms ? when(a.end_ms) : std::string("now")) << "  " << a.reason << "\n";
  };
  table("active alerts", r.active);
  table("recent alerts", r.recent);
  return 0;
}

int run_predictor_command(caf::actor_system& sys, caf::scoped_actor& self, const caf::actor& ops,
                          const std::vector<std::string>& args, bool json, caf::timespan timeout) {
  const std::string& cmd = args[0];
  bool dry = false;
  for (size_t i = 1; i < args.size(); ++i) {
    if (cmd == "prewarm" && args[i] == "--dry-run") {
      dry = true;
    } else {
      std::cerr << "kura: unexpected argument '" << args[i] << "' for '" << cmd << "'\n";
      return 1;
    }
  }
  std::string why;
  auto lost = [&] {
    std::cerr << "kura: the kura-node did not answer (" << why << ")\n";
    return 2;
  };
  if (cmd == "predictor" || cmd == "alerts") {
    auto a = ask_ops(sys, self, ops,
                     cmd == "alerts" ? predictor_ops::alerts : predictor_ops::report, timeout, why);
    if (!a)
      return lost();
    return cmd == "alerts" ? print_alerts_report(*a, json, std::cout, std::cerr)
                           : print_predictor_report(*a, json, std::cout, std::cerr);
  }
  if (dry) {
    auto a = ask_ops(sys, self, ops, predictor_ops::prewarm_plan, timeout, why);
    if (!a)
      return lost();
    return print_prewarm_report(*a, json, std::cout, std::cerr);
  }
  auto a = ask_ops(sys, self, ops, predictor_ops::prewarm_run, timeout, why);
  if (!a)
    return lost();
  prewarm_report r;
  if (!decode_answer(msg_prewarm_report, *a, r, json, std::cout, std::cerr))
    return 1;
  const auto run = r.run;
  const bool bar = !json || ::isatty(2);
  bool drawn = false;
  while (r.running) {
    if (bar)
      progress(r), drawn = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    a = ask_ops(sys, self, ops, predictor_ops::prewarm_status, timeout, why);
    if (!a)
      return lost();
    prewarm_report last = r;
    if (!decode_answer(msg_prewarm_report, *a, r, json, std::cout, std::cerr))
      return 1;
    if (r.run != run) {
      // The node runs one prewarm at a time (a new one starts only after the
      // running one ended): ours is done, and the node's periodic cycle
      // started the next before this poll. Its last figures are shown.
      std::cerr << "\nkura: prewarm " << run << " ended and prewarm " << r.run
                << " started before its final figures were read; figures as last seen\n";
      r = std::move(last);
      r.running = false;
      break;
    }
  }
  if (bar && (drawn || r.keys_total > 0)) {
    progress(r);
    std::cerr << "\n";
  }
  return print_prewarm_report(encode_message(msg_prewarm_report, r), json, std::cout, std::cerr);
}

} // namespace kura::node
