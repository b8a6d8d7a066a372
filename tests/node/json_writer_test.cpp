// The CLI's JSON writer: structure, numbers, and UTF-8-correct escaping.
#include "node/json_writer.hpp"

#include <doctest/doctest.h>

#include <string>

using kura::node::is_json_number;
using kura::node::json_writer;

namespace {
std::string esc(std::string_view s) {
  std::string o;
  kura::node::json_escape(o, s);
  return o;
}
} // namespace

TEST_CASE("json_writer places commas and nests") {
  json_writer j;
  j.begin_object().key("a").num(uint64_t{1}).key("b").begin_array();
  j.str("x").num(int64_t{-2}).boolean(false).null();
  j.end_array().key("c").begin_object().end_object().key("d").num(0.5, 2).end_object();
  CHECK(j.str() == R"({"a": 1, "b": ["x", -2, false, null], "c": {}, "d": 0.50})");
}

TEST_CASE("numbers as numbers, strings as strings") {
  CHECK(is_json_number("0"));
  CHECK(is_json_number("-12"));
  CHECK(is_json_number("3.25"));
  CHECK(is_json_number("1e9"));
  CHECK_FALSE(is_json_number(""));
  CHECK_FALSE(is_json_number("012"));
  CHECK_FALSE(is_json_number("1."));
  CHECK_FALSE(is_json_number("up"));
  CHECK_FALSE(is_json_number("127.0.0.1"));
  json_writer j;
  j.begin_object().key("n").auto_value("42").key("s").auto_value("up").end_object();
  CHECK(j.str() == R"({"n": 42, "s": "up"})");
  json_writer k;
  k.num(0.0 / 0.0);
  CHECK(k.str() == "null");
}

TEST_CASE("huge doubles stay valid JSON numbers (cli_reply_fuzz found '…6784.' cut at 64 bytes)") {
  for (double v : {9.2397995979631635e61, -1.7976931348623157e308, 1e15, 123456.789}) {
    json_writer j;
    j.num(v, 4);
    CAPTURE(j.str());
    CHECK(is_json_number(j.str()));
    CHECK(std::stod(j.str()) == doctest::Approx(v));
  }
  json_writer j;
  j.num(0.5, 4);
  CHECK(j.str() == "0.5000");
}

TEST_CASE("UTF-8 passes through, control characters and invalid bytes are escaped") {
  CHECK(esc("plain") == "\"plain\"");
  CHECK(esc("q\"b\\") == "\"q\\\"b\\\\\"");
  CHECK(esc("a\nb\tc\x01") == "\"a\\nb\\tc\\u0001\"");
  CHECK(esc("caf\xc3\xa9") == "\"caf\xc3\xa9\"");                           // é: 2 bytes
  CHECK(esc("\xe8\x94\xb5") == "\"\xe8\x94\xb5\"");                         // 蔵: 3 bytes
  CHECK(esc("\xf0\x9f\x98\x80") == "\"\xf0\x9f\x98\x80\"");                 // emoji: 4 bytes
  CHECK(esc("\xff") == "\"\xef\xbf\xbd\"");                                 // not UTF-8
  CHECK(esc("\xc3") == "\"\xef\xbf\xbd\"");                                 // truncated
  CHECK(esc("\xc0\xaf") == "\"\xef\xbf\xbd\xef\xbf\xbd\"");                 // overlong
  CHECK(esc("\xed\xa0\x80") == "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""); // surrogate
  CHECK(esc("\xe8\x94") == "\"\xef\xbf\xbd\xef\xbf\xbd\"");                 // cut short
}
