// The status page at `/` on the metrics port (node/status_page.*): served by a
// real kura-node, and rendered by Debian's headless Chromium, which runs the
// page's script against the node's /metrics and must show non-zero figures
// after some traffic.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "node_process.hpp"

#include <doctest/doctest.h>

#include <regex>

using namespace kura::test;

namespace {

/// The browser: Debian's chromium package (scripts/setup installs it).
std::string chromium() {
  for (const char* c : {"chromium", "chromium-browser", "google-chrome"}) {
    auto p = run_shell(std::string("command -v ") + c + " 2>/dev/null");
    if (!p.empty())
      return p.substr(0, p.find('\n'));
  }
  return {};
}

/// The text of the element with id `id` in a DOM dump ("" if absent).
std::string element_text(const std::string& dom, const std::string& id) {
  std::smatch m;
  std::regex re("id=\"" + id + "\"[^>]*>([^<]*)<");
  return std::regex_search(dom, m, re) ? m[1].str() : std::string{};
}

/// "12,345" -> 12345; -1 when the text holds no number.
long number(std::string s) {
  s.erase(std::remove(s.begin(), s.end(), ','), s.end());
  if (s.empty() || !std::isdigit(static_cast<unsigned char>(s[0])))
    return -1;
  return std::strtol(s.c_str(), nullptr, 10);
}

} // namespace

TEST_CASE("GET / answers the status page, other methods are refused, /metrics is unchanged") {
  node_process n;
  REQUIRE_MESSAGE(n.ready, n.log());
  auto page = http_get(n.metrics_port, "/");
  CHECK(page.find("<title>kura status</title>") != std::string::npos);
  CHECK(page.find("fetch(\"metrics\"") != std::string::npos);
  CHECK(page.find("http://") == std::string::npos); // no external assets
  CHECK(page.find("https://") == std::string::npos);
  CHECK(http_get(n.metrics_port, "/index.html") == page);

  client c(n.metrics_port);
  REQUIRE(c.ok());
  c.send("POST / HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n");
  while (c.fill(5000)) {
  }
  CHECK(c.buffer().rfind("HTTP/1.1 405", 0) == 0);

  CHECK(http_get(n.metrics_port, "/metrics").find("kura_tier_hits_total") != std::string::npos);
  CHECK(n.stop() == 0);
}

TEST_CASE("headless Chromium renders the status page with live figures") {
  auto browser = chromium();
  REQUIRE_MESSAGE(!browser.empty(),
                  "no chromium on PATH: install Debian's chromium package (scripts/setup does)");
  node_process n;
  REQUIRE_MESSAGE(n.ready, n.log());
  client c(n.port);
  for (int i = 0; i < 200; ++i) {
    auto k = "key:" + std::to_string(i);
    REQUIRE(c.call({"SET", k, "value"}).has_value());
    REQUIRE(c.call({"GET", k}).has_value());
  }
  // the front end pushes its counters to the exposer once per second
  for (int i = 0; i < 100; ++i) {
    if (http_get(n.metrics_port, "/metrics")
            .find("kura_command_calls_total{command=\"get\"} 200") != std::string::npos)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  temp_dir profile;
  // --virtual-time-budget lets the page's first fetch and render finish before
  // the DOM is dumped; the render is what the test reads.
  std::string cmd =
      browser + " --headless --no-sandbox --disable-gpu --disable-dev-shm-usage" +
      " --no-first-run --user-data-dir=" + profile.path +
      " --virtual-time-budget=5000 --dump-dom http://127.0.0.1:" + std::to_string(n.metrics_port) +
      "/ 2>/dev/null";
  std::string dom;
  for (int attempt = 0; attempt < 3; ++attempt) { // the first start of a browser can be slow
    dom = run_shell(cmd);
    if (number(element_text(dom, "calls")) > 0)
      break;
  }
  CAPTURE(dom.substr(0, 4000));
  CHECK(number(element_text(dom, "calls")) >= 400);
  CHECK(element_text(dom, "err").empty());
  CHECK(element_text(dom, "hitratio").find('%') != std::string::npos);
  CHECK(dom.find("<td>l1</td>") != std::string::npos);
  CHECK(dom.find("<td>get</td>") != std::string::npos);
  CHECK(number(element_text(dom, "clients")) >= 1);
  CHECK(n.stop() == 0);
}
