// make_corpus DIR: writes the seed corpus of every fuzz target into
// DIR/<target>/ (tests/fuzz/corpus is its output, committed). Run it after a
// wire or file format changes:
//   scripts/fuzz --corpus
// Seeds are small, valid examples of what each decoder reads (plus a few
// near misses); libFuzzer mutates from there.
#include "actors/archive_actors.hpp"
#include "actors/messages.hpp"
#include "archive/format.hpp"
#include "gossip/messages.hpp"
#include "tiers/l3_format.hpp"
#include "tiers/l3_lmdb.hpp"

#include "archive_seed.hpp"
#include "fuzz_util.hpp"

#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

using namespace kura;
using kura::fuzz::fuzz_check;

namespace {

std::string root;

void seed(const std::string& target, const std::string& name, std::string_view bytes) {
  std::filesystem::create_directories(root + "/" + target);
  fuzz_check(kura::fuzz::write_file(root + "/" + target + "/" + name, bytes), "write seed");
}

std::string resp(std::initializer_list<std::string> args) {
  std::string s = "*" + std::to_string(args.size()) + "\r\n";
  for (auto& a : args)
    s += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
  return s;
}

void resp_seeds() {
  const char* t = "resp_parser_fuzz";
  seed(t, "ping", resp({"PING"}));
  seed(t, "set_get", resp({"SET", "k", "v"}) + resp({"GET", "k"}));
  seed(t, "inline", "PING\r\nSET \"a b\" 'c d' \"\\x41\\n\"\r\n\r\nGET k\n");
  seed(t, "binary", resp({"SET", std::string("b\0\r\n", 4), std::string(40, 'x')}));
  seed(t, "empty_arrays", "*0\r\n*-1\r\n" + resp({"ECHO", ""}));
  seed(t, "partial", "*2\r\n$4\r\nECHO\r\n$10\r\nabc");
  seed(t, "bad_length", "*1\r\n$-5\r\nPING\r\n");
}

void command_seeds() {
  const char* t = "command_fuzz";
  seed(t, "strings",
       resp({"SET", "k", "v", "EX", "10"}) + resp({"GET", "k"}) + resp({"APPEND", "k", "xyz"}) +
           resp({"STRLEN", "k"}) + resp({"GETRANGE", "k", "0", "-2"}) +
           resp({"SETRANGE", "k", "5", "ab"}) + resp({"GETSET", "k", "w"}) + resp({"GETDEL", "k"}) +
           resp({"SETNX", "n", "1"}) + resp({"GETEX", "n", "PX", "50"}) +
           resp({"MSET", "a", "1", "b", "2"}) + resp({"MGET", "a", "b", "c"}) +
           resp({"MSETNX", "c", "3", "a", "9"}) + resp({"SET", "k", "v2", "XX", "GET", "KEEPTTL"}));
  seed(t, "counters",
       resp({"INCR", "c"}) + resp({"INCRBY", "c", "-7"}) + resp({"DECR", "c"}) +
           resp({"DECRBY", "c", "9223372036854775807"}) + resp({"INCRBYFLOAT", "f", "1.5e3"}) +
           resp({"INCR", "f"}) + resp({"SET", "s", "abc"}) + resp({"INCR", "s"}));
  seed(t, "expiry",
       resp({"SET", "e", "v"}) + resp({"EXPIRE", "e", "100", "NX"}) + resp({"PEXPIRE", "e", "5"}) +
           resp({"TTL", "e"}) + resp({"PTTL", "e"}) + resp({"EXPIRETIME", "e"}) +
           resp({"PEXPIRETIME", "e"}) + resp({"EXPIREAT", "e", "1"}) +
           resp({"PEXPIREAT", "e", "99999999999999"}) + resp({"PERSIST", "e"}) +
           resp({"SETEX", "x", "1", "v"}) + resp({"PSETEX", "y", "1", "v"}) +
           resp({"EXISTS", "e", "x", "y"}) + resp({"DEL", "e", "x"}) + resp({"TYPE", "y"}));
  seed(t, "keyspace",
       resp({"MSET", "a1", "1", "a2", "2", "b1", "3"}) + resp({"KEYS", "a*"}) +
           resp({"SCAN", "0", "MATCH", "*1", "COUNT", "1"}) + resp({"DBSIZE"}) +
           resp({"RANDOMKEY"}) + resp({"RENAME", "a1", "z"}) + resp({"RENAMENX", "a2", "z"}) +
           resp({"COPY", "z", "q", "REPLACE"}) + resp({"FLUSHALL"}) + resp({"DBSIZE"}));
  seed(t, "server",
       resp({"PING", "hi"}) + resp({"ECHO", "e"}) + resp({"TIME"}) + resp({"INFO", "keyspace"}) +
           resp({"SELECT", "0"}) + resp({"CONFIG", "GET", "*max*"}) + resp({"COMMAND", "COUNT"}) +
           resp({"COMMAND", "INFO", "get"}) + resp({"CLIENT", "SETNAME", "fz"}) +
           resp({"CLIENT", "LIST"}) + resp({"HELLO", "2"}) + resp({"KURA.TIER", "k"}) +
           resp({"NOPE", "x"}) + resp({"QUIT"}));
  seed(t, "inline", "SET k 12\r\nINCR k\r\nGET k\r\nTTL k\r\n");
}

template <class T>
void actor_msg(const std::string& name, actors::msg_type type, const T& m) {
  seed("message_decoder_fuzz", name, actors::encode_message(type, m));
}

void message_seeds() {
  using namespace kura::actors;
  wire_entry we{"key", "value", 1700000000000ull, 42, 7, 0};
  l3_batch b;
  b.seq = 3;
  b.ops = {l3_op{l3_op::put, we}, l3_op{l3_op::erase, wire_entry{"gone", "", 0, 0, 0, 0}},
           l3_op{l3_op::clear, {}}};
  actor_msg("l3_batch", msg_type::l3_batch, b);
  actor_msg("l3_lookup", msg_type::l3_lookup, l3_lookup{4, {"a", "b"}});
  actor_msg("l3_found", msg_type::l3_found, l3_found{4, {we}});
  actor_msg("l3_list", msg_type::l3_list, l3_list{l3_list::keys, "a*", "a1", 10, 0});
  actor_msg("l3_listing", msg_type::l3_listing, l3_listing{{"a1", "a2"}, 2, "a2", true, {0, 0}, 0});
  actor_msg("kv_request", msg_type::kv_request, kv_request{kv_request::set, "k", "v", 1000});
  actor_msg("kv_reply", msg_type::kv_reply, kv_reply{true, "v", 5, ""});
  actor_msg("node_status", msg_type::node_status, node_status{{"a", "b"}, {"1", "2"}});
  compaction_report cr;
  cr.run = 2;
  cr.trigger = "cli";
  cr.segments_total = 3;
  actor_msg("compaction_report", msg_compaction_report, cr);
  archive_report ar;
  ar.enabled = true;
  ar.codec = "lz4";
  ar.segments.push_back(archive_segment_row{1, "lz4", 0, 100, 200, 3, 2, 0.5, 1, true});
  ar.dictionaries.push_back(archive_dict_row{1, 4096, 1, true});
  actor_msg("archive_report", msg_archive_report, ar);
}

void gossip_seeds() {
  using namespace kura::gossip;
  std::vector<member_update> g{{2, "127.0.0.1:7001", 1, 0, 1}, {3, "127.0.0.1:7002", 4, 1, 2}};
  wire_entry we{"key", "value", 0, 99, 2, 0};
  key_version kv{"key", 99, 2};
  ae_digest_msg root;
  root.sid = 1;
  root.digests.assign(256, 0x1234);
  ae_digest_msg sub;
  sub.sid = 1;
  sub.prefix_bits = 8;
  sub.reply = true;
  sub.prefixes = {7};
  sub.digests.assign(256, 0x99);
  ae_tree_msg tree_root; // version 2 anti-entropy: the root's 16 children
  tree_root.sid = 2;
  tree_root.digests.assign(16, 0x5151);
  ae_tree_msg tree_step; // one step down: two differing prefixes at 4 bits
  tree_step.sid = 2;
  tree_step.bits = 4;
  tree_step.prefixes = {3, 12};
  tree_step.digests.assign(32, 0x77);
  std::vector<std::pair<std::string, message>> all = {
      {"ping", ping_msg{1, 2, 0, g}},
      {"ack", ack_msg{1, 2, g}},
      {"ping_req", ping_req_msg{1, 3, g}},
      {"nack", nack_msg{1, 3}},
      {"push_pull", push_pull_msg{true, false, g}},
      {"replicate", replicate_msg{5, we}},
      {"replicate_ack", replicate_ack_msg{5, kv}},
      {"fetch", fetch_msg{6, "key"}},
      {"fetch_reply", fetch_reply_msg{6, true, we}},
      {"invalidate", invalidate_msg{kv}},
      {"invalidate_ack", invalidate_ack_msg{kv}},
      {"ae_digest_root", root},
      {"ae_digest_sub", sub},
      {"ae_keys", ae_keys_msg{1, {7, 300}, {kv}}},
      {"ae_repair", ae_repair_msg{1, {we}, {"want"}}},
      {"handoff", handoff_msg{{we}}},
      {"handoff_ack", handoff_ack_msg{{kv}}},
      {"tomb_check", tomb_check_msg{{kv}}},
      {"tomb_confirm", tomb_confirm_msg{{kv}}},
      {"stream_req", stream_req_msg{1, 5, 9, false, 7, "key", 65536}},
      {"stream_batch", stream_batch_msg{1, {we}, false, 7, "key", 3}},
      {"ae_tree_root", tree_root},
      {"ae_tree_step", tree_step},
      {"hint", hint_msg{5, 3, we}},
      {"hold", hold_msg{kv}},
      {"hold_ack", hold_ack_msg{kv, kv}},
  };
  for (auto& [name, m] : all)
    seed("gossip_message_fuzz", name, encode(m));
}

void l3_record_seeds() {
  auto rec = [](const entry& e) {
    auto lk = l3_format::lmdb_key(e.key);
    std::string r(l3_format::record_size(e), '\0');
    l3_format::encode_record(e, lk, 77, r.data());
    return std::make_pair(lk, r);
  };
  entry small{"key", "value", 1700000000000ull, version{123, 4}, 0};
  auto [lk, r] = rec(small);
  seed("l3_record_fuzz", "short_key", std::string(1, static_cast<char>(lk.size())) + lk + r);
  entry tomb{"dead", "", 0, version{124, 4}, entry_flags::tombstone};
  auto [lk2, r2] = rec(tomb);
  seed("l3_record_fuzz", "tombstone", std::string(1, static_cast<char>(lk2.size())) + lk2 + r2);
  entry big{std::string(500, 'k'), "v", 0, version{125, 4}, 0};
  seed("l3_record_fuzz", "long_key", std::string(1, '\xff') + rec(big).second);
}

void l3_verify_seeds() {
  kura::fuzz::scratch_dir dir{"kura-corpus-l3"};
  fake_clock clk;
  for (int variant = 0; variant < 2; ++variant) {
    l3_config cfg;
    cfg.path = dir.sub("l3-" + std::to_string(variant));
    cfg.map_size = 16ull << 20;
    {
      auto l3 = l3_lmdb::open(cfg, clk);
      fuzz_check(static_cast<bool>(l3), "seed L3 opens");
      int n = variant == 0 ? 3 : 12;
      for (int i = 0; i < n; ++i) {
        entry e{"key:" + std::to_string(i), std::string(static_cast<size_t>(10 + i * 20), 'v'),
                i % 3 == 0 ? clk.now_ms() + 60'000 : 0,
                version{1000u + static_cast<unsigned>(i), 1}, 0};
        if (variant == 1 && i == 11)
          e.key = std::string(480, 'L'); // a hashed (long) key
        fuzz_check(static_cast<bool>((*l3)->put(e, clk.now_ms())), "seed L3 put");
      }
      if (variant == 1)
        (void)(*l3)->erase("key:1");
      fuzz_check(static_cast<bool>((*l3)->sync()), "seed L3 sync");
    }
    seed("l3_verify_fuzz", variant == 0 ? "three_entries" : "twelve_entries",
         kura::fuzz::read_file(cfg.path + "/data.mdb"));
  }
}

void archive_seeds() {
  kura::fuzz::scratch_dir dir{"kura-corpus-archive"};
  fake_clock clk;
  for (auto c : {archive::codec_id::lz4, archive::codec_id::zstd}) {
    auto path = dir.sub(archive::to_string(c));
    kura::fuzz::write_archive_seed(path, c, clk);
    seed("archive_segment_fuzz", std::string("segment_") + archive::to_string(c),
         kura::fuzz::read_file(path + "/" + archive::format::segment_file_name(1)));
  }
  using namespace kura::archive::format;
  location l;
  l.segment = 3;
  l.block_offset = 40;
  l.block_len = 900;
  l.record_offset = 120;
  l.record_len = 64;
  l.expiry_ms = 1700000000000ull;
  l.ver = version{(1700000000000ull << 16) | 5, 2};
  l.flags = 0;
  seed("archive_index_fuzz", "location", encode(l));
  location z;
  seed("archive_index_fuzz", "location_zero", encode(z));
  segment_row r;
  r.codec = archive::codec_id::zstd;
  r.level = 3;
  r.created_ms = r.oldest_ms = r.newest_ms = 1700000000000ull;
  r.end_offset = 4096;
  r.entries = r.live_entries = 10;
  r.raw_bytes = r.live_raw_bytes = 2000;
  r.blocks = 2;
  seed("archive_index_fuzz", "segment_row", encode(r));
}

void config_seeds() {
  const char* t = "config_fuzz";
  seed(t, "top_level", "port=6400\nbind=\"127.0.0.1\"\nmetrics-port=0\nmemory-bytes=16777216\n");
  seed(t, "sections",
       "[kura.memory]\nshards=2\n[kura.limits]\nmax-key-bytes=1024\nmax-value-bytes=1048576\n"
       "[kura.l3]\nenabled=true\nsync=false\nbatch-max-age=5ms\nmap-size=1073741824\n"
       "[kura.expiry]\nsweep-interval=100ms\n[kura.archive]\ncodec=\"zstd\"\nlevel=3\n"
       "compact-threshold=0.5\n[kura.prewarm]\nmin-confidence=0.7\n[kura.cluster]\n"
       "replication-factor=2\nheartbeat=10s\n");
  seed(t, "nested", "kura {\n  l3 {\n    fsync-batches = false\n  }\n  memory.shards = 8\n}\n");
  seed(t, "unknown_key", "[kura.l3]\nsnyc=true\n");
  seed(t, "bad_values", "port=0\n[kura.archive]\ncodec=\"brotli\"\nlevel=99\n");
  seed(t, "caf", "[scheduler]\nmax-threads=2\n[middleman]\nheartbeat-interval=1s\n");
  seed(t, "comments_lists", "# comment\nbind = \"::1\" ; trailing\n[kura.limits]\nmax-args = 2\n");
}

template <class T>
void cli_seed(const std::string& name, uint8_t cmd, actors::msg_type type, const T& m) {
  seed("cli_reply_fuzz", name,
       std::string(1, static_cast<char>(cmd)) + actors::encode_message(type, m));
}

void cli_seeds() {
  using namespace kura::actors;
  node_status st{{"version", "keys", "l3.bytes"}, {"0.1.0", "12", "4096"}};
  cli_seed("status", 0, msg_type::node_status, st);
  cli_seed("status_json", 0x80, msg_type::node_status, st);
  cli_seed("stats_error", 1, msg_type::kv_reply, kv_reply{false, "", 0, "no stats"});
  cli_seed("get_hit_json", 0x83, msg_type::kv_reply, kv_reply{true, "va\"l\n", 17, ""});
  cli_seed("get_miss", 3, msg_type::kv_reply, kv_reply{false, "", 0, ""});
  cli_seed("del_json", 0x85, msg_type::kv_reply, kv_reply{true, "", 0, ""});
  cli_seed("tier", 7, msg_type::kv_reply, kv_reply{true, "l2", 0, ""});
  archive_report ar;
  ar.enabled = true;
  ar.codec = "zstd";
  ar.entries = 10;
  ar.ratio = 0.4;
  ar.live_fraction = 0.9;
  ar.oldest_entry_ms = 1700000000000ull;
  ar.segments.push_back(
      archive_segment_row{1, "zstd", 0, 100, 250, 10, 9, 0.9, 1700000000000ull, false});
  ar.segments.push_back(archive_segment_row{2, "zstd+dictionary", 1, 10, 25, 1, 1, 1.0, 0, true});
  ar.dictionaries.push_back(archive_dict_row{1, 4096, 1, true});
  cli_seed("archive", 9, msg_archive_report, ar);
  cli_seed("archive_json", 0x89, msg_archive_report, ar);
  compaction_report cr;
  cr.run = 1;
  cr.trigger = "cli";
  cr.segments_done = cr.segments_total = 2;
  cr.bytes_done = cr.bytes_total = 5000;
  cr.elapsed_ms = 20;
  cli_seed("compact", 10, msg_compaction_report, cr);
  cr.ok = false;
  cr.error = "disk full";
  cli_seed("compact_failed_json", 0x8a, msg_compaction_report, cr);
}

void acl_seeds() {
  const char* t = "acl_fuzz";
  seed(t, "file",
       "user default on nopass ~* &* +@all\n"
       "user alice on >secret ~cache:* %R~ro:* -@all +get +set +config|get\n"
       "user bob off resetchannels &news:* +@read -keys\n");
  seed(t, "rules",
       "on >p1 >p2 <p1 ~a* %W~w* allkeys -@dangerous +flushall\n"
       "on #2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b nopass resetpass\n"
       "reset on allcommands -config|set allchannels resetkeys ~x\n"
       "off +@all -@write +hset sanitize-payload\n");
  seed(t, "bad", "user default on nopass ~* +@all\nuser x on +nosuchcommand\nnotauser\n");
  seed(t, "selectors",
       "user default on nopass ~* &* +@all\n"
       "user sel on nopass ~r:* resetchannels -@all +get (~w:* resetchannels -@all +set) "
       "(%R~x:* &chan -@all +publish)\n"
       "user open on nopass (~a +get\n");
  // acl_rules_fuzz: successive ACL SETUSER rule lists for one user
  seed("acl_rules_fuzz", "rules",
       "on >p1 >p2 <p1 ~a* %W~w* allkeys -@dangerous +flushall\n"
       "on #2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b nopass resetpass\n"
       "reset on allcommands -config|set allchannels resetkeys ~x\n"
       "off +@all -@write +hset sanitize-payload\n");
  seed("acl_rules_fuzz", "steps",
       "on >pw ~k:* +get\n%R~r:* %W~w:* +@write -set\n+select|0 +config|get -@all\n"
       "resetkeys resetchannels &ch:* nocommands +ping\nreset\n(~x +get)\n+nosuch\n");
  seed("acl_rules_fuzz", "selectors",
       "on nopass ~r:* +get (~w:* +set) (%R~x:* &chan +publish)\n(~a +get\n+del)\n"
       "clearselectors (allkeys allchannels +@all) reset\n(on) (>pw) ((~x)) () (~a) +get)\n");
}

} // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: make_corpus DIR\n";
    return 1;
  }
  root = argv[1];
  resp_seeds();
  command_seeds();
  message_seeds();
  gossip_seeds();
  l3_record_seeds();
  l3_verify_seeds();
  archive_seeds();
  config_seeds();
  cli_seeds();
  acl_seeds();
  return 0;
}
