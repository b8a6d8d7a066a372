// The kura CLI against a running kura-node and against a dead one.
#include "node_process.hpp"

#include <doctest/doctest.h>

#include <cctype>

using namespace kura::test;

namespace {

std::string kura_cli(uint16_t port, const std::string& args, int& rc) {
  return run_shell(bin_dir() + "/kura --port=" + std::to_string(port) + " --timeout=5000 " + args +
                       " 2>&1",
                   &rc);
}

} // namespace

TEST_CASE("kura CLI against a running node") {
  node_process n;
  REQUIRE(n.ready);
  int rc = -1;
  auto out = kura_cli(n.cluster_port, "status", rc);
  CHECK(rc == 0);
  CHECK(out.find("state") != std::string::npos);
  CHECK(out.find("up") != std::string::npos);
  CHECK(kura_cli(n.cluster_port, "set greeting hello", rc) == "OK\n");
  CHECK(rc == 0);
  CHECK(kura_cli(n.cluster_port, "get greeting", rc) == "hello\n");
  CHECK(kura_cli(n.cluster_port, "--json get greeting", rc) ==
        "{\"key\": \"greeting\", \"found\": true, \"value\": \"hello\", \"expiry_ms\": 0}\n");
  auto tier = kura_cli(n.cluster_port, "tier greeting", rc);
  CHECK((tier == "l1\n" || tier == "l2\n"));
  // the CLI and RESP see the same data
  CHECK(n.cli("GET greeting") == "hello\n");
  CHECK(n.cli("SET fromresp 1") == "OK\n");
  CHECK(kura_cli(n.cluster_port, "get fromresp", rc) == "1\n");
  CHECK(kura_cli(n.cluster_port, "set t x 60000", rc) == "OK\n");
  auto ttl = std::stol(n.cli("TTL t"));
  CHECK(ttl > 50);
  CHECK(kura_cli(n.cluster_port, "del greeting", rc) == "1\n");
  CHECK(kura_cli(n.cluster_port, "del greeting", rc) == "0\n");
  CHECK(kura_cli(n.cluster_port, "get greeting", rc) == "(nil)\n");
  // UTF-8 passes through unescaped, invalid bytes become U+FFFD, numbers are numbers
  CHECK(n.cli("SET utf \"caf\xc3\xa9 \xe8\x94\xb5 \xff\"") == "OK\n");
  CHECK(kura_cli(n.cluster_port, "--json get utf", rc) ==
        "{\"key\": \"utf\", \"found\": true, \"value\": \"caf\xc3\xa9 \xe8\x94\xb5 "
        "\xef\xbf\xbd\", \"expiry_ms\": 0}\n");
  out = kura_cli(n.cluster_port, "--json stats", rc);
  CHECK(rc == 0);
  CHECK(out.rfind("{\"state\": \"up\"", 0) == 0);
  auto q = out.find("\"l3.write_behind_queue\": ");
  REQUIRE(q != std::string::npos);
  CHECK(std::isdigit(static_cast<unsigned char>(out[q + 25]))); // a number, not "..."
  CHECK(out.find("\"l3.write_behind_queue\"") != std::string::npos);
  out = kura_cli(n.cluster_port, "config", rc);
  CHECK(out.find("memory-bytes") != std::string::npos);
  CHECK(out.find(std::to_string(n.port)) != std::string::npos);
  CHECK(kura_cli(n.cluster_port, "flush", rc) == "OK\n");
  CHECK(n.cli("DBSIZE") == "0\n");
  kura_cli(n.cluster_port, "bogus", rc);
  CHECK(rc == 1);
  kura_cli(n.cluster_port, "get", rc);
  CHECK(rc == 1);
}

TEST_CASE("kura CLI against a dead node: clear message, non-zero exit") {
  int rc = -1;
  auto port = free_port();
  auto out = kura_cli(port, "status", rc);
  CHECK(rc == 2);
  CHECK(out.find("cannot reach kura-node at 127.0.0.1:" + std::to_string(port)) !=
        std::string::npos);
  // a node that went away
  node_process n;
  REQUIRE(n.ready);
  auto cport = n.cluster_port;
  CHECK(n.stop() == 0);
  out = kura_cli(cport, "get x", rc);
  CHECK(rc == 2);
  CHECK(out.find("cannot reach") != std::string::npos);
}
