// KURA.ERASE receipts (node/erase_book.hpp): the JSON line round-trips,
// with a cluster erasure's per-node rows, and a bad row is refused.
#include "node/erase_book.hpp"

#include <doctest/doctest.h>

using kura::node::erase_node_row;
using kura::node::erase_receipt;

TEST_CASE("a receipt with per-node rows round-trips through its JSON line") {
  erase_receipt r;
  r.id = "e1-1";
  r.node = "127.0.0.1:6401";
  r.mode = "prefix";
  r.digest = "ab";
  r.state = "purge";
  r.requested = 1;
  r.matched = 250;
  r.l3 = 7;
  r.l4 = 3;
  r.started_ms = 1000;
  r.nodes.push_back(erase_node_row{"n1", "purged", 5, 2, 1, 0, 4});
  r.nodes.push_back(erase_node_row{"n3", "pending", 0, 0, 0, 0, 0});
  auto line = r.to_json();
  auto back = erase_receipt::from_json(line);
  REQUIRE(back);
  CHECK(back->to_json() == line);
  CHECK(back->l3 == 7); // the top-level fields, not the rows' fields of the same name
  REQUIRE(back->nodes.size() == 2);
  CHECK(back->nodes[0].node == "n1");
  CHECK(back->nodes[0].l4_segments == 4);
  CHECK(back->nodes[1].state == "pending");

  r.nodes.clear(); // a single node's receipt has no rows
  auto plain = erase_receipt::from_json(r.to_json());
  REQUIRE(plain);
  CHECK(plain->nodes.empty());
  CHECK(r.to_json().find("nodes") == std::string::npos);

  auto broken = line;
  broken.replace(broken.find("\"hints\":1"), 9, "\"hints\":x");
  CHECK_FALSE(erase_receipt::from_json(broken));
}
