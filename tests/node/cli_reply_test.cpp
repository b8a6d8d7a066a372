// The kura CLI's reply side (node/cli_reply.hpp) without a node: answers as
// bytes, output and exit code as the CLI prints them.
#include "actors/archive_actors.hpp"
#include "node/cli_reply.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <sstream>

using namespace kura::actors;
using namespace kura::node;

TEST_CASE("get, del and errors, as text and JSON") {
  kv_request get;
  get.op = kv_request::get;
  get.key = "k\n";
  std::ostringstream out, err;
  auto hit = encode_message(msg_type::kv_reply, kv_reply{true, "v\"1", 5, ""});
  CHECK(print_reply(get, hit, true, out, err) == 0);
  CHECK(out.str() ==
        "{\"key\": \"k\\n\", \"found\": true, \"value\": \"v\\\"1\", \"expiry_ms\": 5}\n");
  out.str("");
  CHECK(print_reply(get, hit, false, out, err) == 0);
  CHECK(out.str() == "v\"1\n");
  kv_request del;
  del.op = kv_request::del;
  out.str("");
  auto failed = encode_message(msg_type::kv_reply, kv_reply{false, "", 0, "key too large"});
  CHECK(print_reply(del, failed, true, out, err) == 1);
  CHECK(out.str() == "{\"error\": \"key too large\"}\n");
  CHECK(err.str() == "kura: key too large\n");
  err.str("");
  CHECK(print_reply(del, "garbage", false, out, err) == 1);
  CHECK(err.str().rfind("kura: bad answer from the node: ", 0) == 0);
}

// Found by tests/fuzz/cli_reply_fuzz: a ratio or live fraction that is not a
// finite number printed as "nan", which is not JSON.
TEST_CASE("kura archive --json prints null for numbers that are not finite") {
  archive_report r;
  r.enabled = true;
  r.codec = "lz4";
  r.ratio = std::nan("");
  r.live_fraction = INFINITY;
  r.segments.push_back(archive_segment_row{1, "lz4", 0, 1, 2, 3, 4, -INFINITY, 0, true});
  std::ostringstream out, err;
  CHECK(print_archive_answer(encode_message(msg_archive_report, r), true, out, err) == 0);
  auto s = out.str();
  CHECK(s.find("\"ratio\": null") != std::string::npos);
  CHECK(s.find("\"live_fraction\": null") != std::string::npos);
  CHECK(s.find("nan") == std::string::npos);
  CHECK(s.find("inf") == std::string::npos);
  r.ratio = 0.25;
  out.str("");
  CHECK(print_archive_answer(encode_message(msg_archive_report, r), true, out, err) == 0);
  CHECK(out.str().find("\"ratio\": 0.2500") != std::string::npos);
}
