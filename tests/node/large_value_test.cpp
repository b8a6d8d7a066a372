// Large values (kura.memory.max-value-bytes, issue 10): with L3, a value of
// the threshold or more is not copied into memory; the keyspace shares the
// written buffer with the L3 port and serves it from there until L3 has
// applied its batch, then L3 serves it. Commands see their own writes
// throughout (MULTI/EXEC), overwrites and deletes drop the held buffer.
#include "command_fixture.hpp"

#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

using namespace kura;
using namespace kura::node;

namespace {

/// The write-behind port: small writes by copy, large ones by reference,
/// each large one in a batch of its own (numbered 1, 2, ...).
struct sharing_port final : actors::l3_port {
  std::vector<std::string> writes, erases;
  std::vector<shared_bytes> shared;
  uint64_t batch = 0;
  void write(const entry& e) override { writes.push_back(e.key); }
  uint64_t write_shared(const entry& meta, shared_bytes v) override {
    CHECK(meta.value.empty());
    writes.push_back(meta.key);
    shared.push_back(std::move(v));
    return ++batch;
  }
  void erase(std::string_view key) override { erases.emplace_back(key); }
  void clear() override {}
};

actors::keyspace_config config() {
  actors::keyspace_config k;
  k.shards = 2;
  k.filter_bits = 1u << 12;
  k.memory_max_value_bytes = 1000;
  return k;
}

struct fixture {
  fake_clock clk;
  sharing_port port;
  actors::keyspace ks{config(), clk, &port};
  node_facts facts;
  command_table cmds{ks, facts};
  session sess;
  fixture() { clk.set_ms(1'000'000); }
  std::string run(std::vector<std::string> parts) {
    std::vector<std::string_view> args(parts.begin(), parts.end());
    out_buffer out;
    cmds.execute(args, sess, out);
    return std::string(out.begin(), out.end());
  }
  uint64_t memory_entries() const { return ks.l1_stats().entries + ks.l2_stats().entries; }
};

std::string bulk(const std::string& v) {
  return "$" + std::to_string(v.size()) + "\r\n" + v + "\r\n";
}

} // namespace

TEST_CASE("a large value is shared with L3, not copied into memory, and read back") {
  fixture f;
  std::string big(5000, 'b');
  CHECK(f.run({"SET", "small", "v"}) == "+OK\r\n");
  CHECK(f.run({"SET", "big", big}) == "+OK\r\n");
  REQUIRE(f.port.shared.size() == 1);
  CHECK(f.port.shared[0].view() == big);
  CHECK(f.memory_entries() == 1); // only "small"
  CHECK(f.ks.large_count() == 1);
  CHECK(f.ks.large_bytes() == 5000);
  // held by reference: the keyspace and the port share one buffer
  CHECK(f.port.shared[0].buf.use_count() == 2);
  CHECK(f.run({"GET", "big"}) == bulk(big));
  CHECK(f.run({"STRLEN", "big"}) == ":5000\r\n");
  CHECK(std::string(f.ks.tier_of("big")) == "l3");
  CHECK(f.ks.known("big"));
  // L3 applied its batch: the keyspace lets go, L3 serves it from now on
  f.ks.release_large(1);
  CHECK(f.ks.large_count() == 0);
  CHECK(f.port.shared[0].buf.use_count() == 1);
  CHECK(!f.ks.known("big"));
  CHECK(f.ks.maybe_in_l3("big"));
  // an L3 answer of a large value is not promoted into memory
  entry e;
  e.key = "big";
  e.value = big;
  f.ks.promote(e, f.ks.begin_lookup());
  f.ks.end_lookup();
  CHECK(f.memory_entries() == 1);
  // values below the threshold go into memory as before
  CHECK(f.run({"SET", "mid", std::string(999, 'm')}) == "+OK\r\n");
  CHECK(f.memory_entries() == 2);
  CHECK(f.port.shared.size() == 1);
}

TEST_CASE("a command sees its own large writes; overwrites and deletes drop the buffer") {
  fixture f;
  std::string big(3000, 'x');
  CHECK(f.run({"MULTI"}) == "+OK\r\n");
  CHECK(f.run({"SET", "k", big}) == "+QUEUED\r\n");
  CHECK(f.run({"APPEND", "k", "yz"}) == "+QUEUED\r\n");
  CHECK(f.run({"GET", "k"}) == "+QUEUED\r\n");
  CHECK(f.run({"EXEC"}) == "*3\r\n+OK\r\n:3002\r\n" + bulk(big + "yz"));
  REQUIRE(f.port.shared.size() == 2); // both writes shared
  CHECK(f.ks.large_count() == 1);     // the newest one held
  CHECK(f.port.shared[0].buf.use_count() == 1);
  // an older batch's ack does not release a newer write of the key
  f.ks.release_large(1);
  CHECK(f.ks.large_count() == 1);
  CHECK(f.run({"GET", "k"}) == bulk(big + "yz"));
  // a small overwrite goes to memory and drops the held buffer
  CHECK(f.run({"SET", "k", "small"}) == "+OK\r\n");
  CHECK(f.ks.large_count() == 0);
  CHECK(f.ks.large_bytes() == 0);
  CHECK(f.run({"GET", "k"}) == bulk("small"));
  // a large overwrite drops memory's copy
  CHECK(f.run({"SET", "k", big}) == "+OK\r\n");
  CHECK(f.memory_entries() == 0);
  CHECK(f.run({"GET", "k"}) == bulk(big));
  CHECK(f.run({"DEL", "k"}) == ":1\r\n");
  CHECK(f.ks.large_count() == 0);
  CHECK(f.port.erases == std::vector<std::string>{"k"});
  CHECK(f.run({"GET", "k"}) == "$-1\r\n");
  // an expired large value is not served
  CHECK(f.run({"SET", "e", big, "PX", "100"}) == "+OK\r\n");
  CHECK(f.run({"GET", "e"}) == bulk(big));
  f.clk.advance_ms(200);
  CHECK(f.run({"GET", "e"}) == "$-1\r\n");
  CHECK(f.run({"FLUSHALL"}) == "+OK\r\n");
  CHECK(f.ks.large_count() == 0);
}

TEST_CASE("a large argument takes the request buffer over instead of being copied") {
  fixture f;
  std::string big(4000, 'q');
  std::string in = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4000\r\n" + big + "\r\n*1\r\n$4\r\nPING\r\n";
  const char* bytes = in.data();
  size_t at = in.find(big);
  std::string_view key(in.data() + in.find("k\r\n"), 1);
  std::string_view value(in.data() + at, big.size());
  // a small value in the buffer, and a large one outside it, are copied
  f.ks.set_input(&in);
  CHECK(f.ks.write_arg("s", value.substr(0, 10), 0).ok());
  std::string elsewhere(big);
  CHECK(f.ks.write_arg("e", elsewhere, 0).ok());
  CHECK((in.data() == bytes));
  CHECK(!bool(f.ks.take_input()));
  // a large value in the buffer: the buffer is the value's now
  CHECK(f.ks.write_arg(key, value, 0).ok());
  CHECK(in.empty());
  auto taken = f.ks.take_input();
  REQUIRE(bool(taken));
  CHECK((taken->data() == bytes)); // moved, not copied
  CHECK(!bool(f.ks.take_input()));
  REQUIRE(f.port.shared.size() == 2);
  CHECK((f.port.shared[1].buf.get() == taken.get()));
  CHECK(f.port.shared[1].view() == big);
  CHECK((f.port.shared[1].view().data() == bytes + at));
  CHECK(f.run({"GET", "k"}) == bulk(big));
  CHECK(f.run({"GET", "s"}) == bulk(big.substr(0, 10)));
  CHECK(f.run({"GET", "e"}) == bulk(big));
  // what follows the command stays readable in the taken buffer
  CHECK(taken->substr(taken->size() - 14) == "*1\r\n$4\r\nPING\r\n");
  // the next write does not find a buffer offered any more
  CHECK(f.ks.write_arg("k2", value, 0).ok());
  CHECK(!bool(f.ks.take_input()));
  CHECK(f.port.shared.size() == 3);
  CHECK((f.port.shared[2].buf.get() != taken.get()));
  f.ks.set_input(nullptr);
}
