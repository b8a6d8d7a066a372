// The kura CLI's printers for `kura prewarm | predictor | alerts`
// (node/cli_predictor.cpp): tables, JSON with numbers as numbers, and bytes
// from the network that do not decode (an error, exit code 1, no crash).
#include "actors/predictor.hpp"
#include "node/cli_predictor.hpp"

#include <doctest/doctest.h>

#include <sstream>

using namespace kura;
using namespace kura::actors;

TEST_CASE("kura prewarm prints the plan and the run") {
  prewarm_report r;
  r.run = 3;
  r.trigger = "cli";
  r.horizon_ms = 3600000;
  r.keys_total = 2;
  r.keys_done = 2;
  r.loaded = 2;
  r.bytes_loaded = 250;
  r.items.push_back(prewarm_row{"user:1:profile", "user:*:profile", 0.91, 120, false});
  r.items.push_back(prewarm_row{"user:2:profile", "user:*:profile", 0.8, 130, false});
  std::ostringstream out, err;
  CHECK(node::print_prewarm_report(encode_message(msg_prewarm_report, r), true, out, err) == 0);
  auto js = out.str();
  CHECK(js.find("\"run\": 3") != std::string::npos);
  CHECK(js.find("\"loaded\": 2") != std::string::npos);
  CHECK(js.find("\"error\": null") != std::string::npos);
  CHECK(js.find("{\"key\": \"user:1:profile\", \"pattern\": \"user:*:profile\", \"is_pattern\": "
                "false, \"confidence\": 0.9100, \"bytes\": 120}") != std::string::npos);
  std::ostringstream human;
  CHECK(node::print_prewarm_report(encode_message(msg_prewarm_report, r), false, human, err) == 0);
  CHECK(human.str().find("prewarm 3 (cli") != std::string::npos);
  CHECK(human.str().find("2 of 2 planned keys loaded") != std::string::npos);
  CHECK(human.str().find("user:2:profile") != std::string::npos);
  r.error = "an L3 lookup failed";
  std::ostringstream o2, e2;
  CHECK(node::print_prewarm_report(encode_message(msg_prewarm_report, r), false, o2, e2) == 1);
  CHECK(e2.str().find("an L3 lookup failed") != std::string::npos);
}

TEST_CASE("kura predictor and kura alerts print their reports") {
  predictor_report p;
  p.enabled = true;
  p.prewarm_loads = 40;
  p.prewarm_hits = 30;
  p.precision = 0.75;
  p.alerts_active = {1, 0, 0, 0, 0, 0, 0};
  p.alerts_raised = {2, 0, 0, 1, 0, 0, 0};
  std::ostringstream out, err;
  CHECK(node::print_predictor_report(encode_message(msg_predictor_report, p), true, out, err) == 0);
  CHECK(out.str().find("\"precision\": 0.7500") != std::string::npos);
  CHECK(out.str().find("\"keys_prewarmed\": 40") != std::string::npos);
  CHECK(out.str().find("\"alerts_active\": {\"hit_ratio\": 1, ") != std::string::npos);
  CHECK(out.str().find("\"storage\": 1") != std::string::npos); // raised
  std::ostringstream human;
  CHECK(node::print_predictor_report(encode_message(msg_predictor_report, p), false, human, err) ==
        0);
  CHECK(human.str().find("precision              0.750") != std::string::npos);
  CHECK(human.str().find("alerts active          hit_ratio 1") != std::string::npos);

  alerts_report a;
  a.active.push_back(
      alert_row{"storage", "warning", "L3 at 95 % of its budget", 1000, 0, 0.95, 0.9});
  a.recent.push_back(
      alert_row{"hit_ratio", "critical", "hit ratio 0.10 < 0.85", 500, 900, 0.1, 0.85});
  std::ostringstream aj, ah;
  CHECK(node::print_alerts_report(encode_message(msg_alerts_report, a), true, aj, err) == 0);
  CHECK(aj.str().find("\"active\": [{\"kind\": \"storage\"") != std::string::npos);
  CHECK(aj.str().find("\"end_ms\": null") != std::string::npos);
  CHECK(aj.str().find("\"end_ms\": 900") != std::string::npos);
  CHECK(node::print_alerts_report(encode_message(msg_alerts_report, a), false, ah, err) == 0);
  CHECK(ah.str().find("active alerts: 1") != std::string::npos);
  CHECK(ah.str().find("L3 at 95 % of its budget") != std::string::npos);
}

TEST_CASE("answers that are errors or garbage: exit code 1, the reason, no crash") {
  kv_reply off;
  off.error = "the predictor is off on this node (kura.prewarm.enabled=false)";
  for (bool json : {false, true}) {
    std::ostringstream out, err;
    CHECK(node::print_predictor_report(encode_message(msg_type::kv_reply, off), json, out, err) ==
          1);
    CHECK(err.str().find("the predictor is off") != std::string::npos);
    if (json)
      CHECK(out.str().find("{\"error\": \"the predictor is off") != std::string::npos);
  }
  const std::string junk[] = {"",
                              "x",
                              std::string(3, '\0'),
                              "\x93\x01\x02\x03",
                              encode_message(msg_predictor_report, predictor_report{}).substr(0, 9),
                              encode_message(msg_alerts_report, alerts_report{})};
  for (auto& j : junk) {
    std::ostringstream out, err;
    CHECK(node::print_prewarm_report(j, false, out, err) == 1);
    CHECK(node::print_alerts_report(j == junk[5] ? junk[0] : j, true, out, err) == 1);
  }
}
