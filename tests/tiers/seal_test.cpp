// Encryption at rest (tiers/seal.hpp) in L3 and L4: the key file, no
// plaintext in any file, wrong / missing key refused, a tampered byte refused
// for its entry only, key rotation with re-sealing, and opening a file of the
// previous format (kura-l3 3, written here with raw LMDB).
#include "../test_util.hpp"
#include "archive/archive.hpp"
#include "archive/codec.hpp"
#include "archive/format.hpp"
#include "tiers/clock.hpp"
#include "tiers/l3_format.hpp"
#include "tiers/l3_lmdb.hpp"
#include "tiers/seal.hpp"

#include <doctest/doctest.h>
#include <lmdb.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

using namespace kura;
using kura::testing::temp_dir;

namespace {

std::shared_ptr<const crypto::keyring> keys(std::map<uint32_t, char> ids) {
  std::map<uint32_t, std::string> m;
  for (auto& [id, c] : ids)
    m[id] = std::string(32, c);
  auto kr = crypto::keyring::from_keys(std::move(m));
  REQUIRE(kr.ok());
  return *kr;
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// Every file under `dir` that contains `needle`.
std::vector<std::string> files_with(const std::string& dir, const std::string& needle) {
  std::vector<std::string> out;
  for (auto& f : std::filesystem::recursive_directory_iterator(dir))
    if (f.is_regular_file() && read_file(f.path()).find(needle) != std::string::npos)
      out.push_back(f.path().string());
  return out;
}

l3_config l3_at(const std::string& dir, std::shared_ptr<const crypto::keyring> kr) {
  l3_config c;
  c.path = dir;
  c.map_size = 64ull << 20;
  c.batch_max_writes = 16;
  c.fsync_batches = false;
  c.keys = std::move(kr);
  return c;
}

archive::archive_config l4_at(const std::string& dir, std::shared_ptr<const crypto::keyring> kr,
                              archive::codec_id codec = archive::codec_id::zstd_dict) {
  archive::archive_config c;
  c.path = dir;
  c.index_map_bytes = 64ull << 20;
  c.durable = false;
  c.codec = codec;
  c.block_bytes = 4096;
  c.segment_bytes = 64 * 1024;
  c.dict_min_samples = 64;
  c.keys = std::move(kr);
  return c;
}

entry kv(std::string k, std::string v) {
  entry e;
  e.key = std::move(k);
  e.value = std::move(v);
  return e;
}

std::string key_of(int i) {
  return "secretkey-" + std::to_string(i) + "-customer";
}
std::string value_of(int i) {
  return "plaintext-value-" + std::to_string(i) + "-credit-card-4111111111111111";
}

} // namespace

std::string hex_of(const std::string& b) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : b)
    out += d[c >> 4], out += d[c & 15];
  return out;
}

TEST_CASE("hmac_sha256 matches RFC 4231 (test cases 2 and 6), also after a key change") {
  for (int round = 0; round < 2; ++round) {
    CHECK(hex_of(crypto::hmac_sha256("Jefe", "what do ya want for nothing?")) ==
          "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    CHECK(hex_of(crypto::hmac_sha256(std::string(131, '\xaa'),
                                     "Test Using Larger Than Block-Size Key - Hash Key First")) ==
          "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  }
}

TEST_CASE("key file: hex, passphrase with salt, several ids, errors") {
  std::string hex(64, 'a');
  auto one = crypto::keyring::parse(hex + "\n", "");
  REQUIRE(one.ok());
  CHECK((*one)->active() == 1);
  auto many = crypto::keyring::parse("# keys\n1 " + hex + "\n3 passphrase:correct horse battery\n",
                                     std::string(16, 's'));
  REQUIRE(many.ok());
  CHECK((*many)->active() == 3);
  CHECK((*many)->ids() == std::vector<uint32_t>{1, 3});
  CHECK(crypto::keyring::needs_salt("1 " + hex + "\n3 passphrase:correct horse battery\n"));
  CHECK_FALSE(crypto::keyring::needs_salt(hex));
  // a passphrase without salt, a short passphrase, duplicate ids, missing ids
  CHECK(crypto::keyring::parse("correct horse battery", "").code() == errc::invalid_argument);
  CHECK(crypto::keyring::parse("short", "0123456789abcdef").code() == errc::invalid_argument);
  CHECK(crypto::keyring::parse("1 " + hex + "\n1 " + hex, "").code() == errc::invalid_argument);
  CHECK(crypto::keyring::parse(hex + "\n" + hex, "").code() == errc::invalid_argument);
  CHECK(crypto::keyring::parse("# nothing\n", "").code() == errc::invalid_argument);
  // the same passphrase with another salt is another key
  auto a = crypto::keyring::parse("correct horse battery", std::string(16, 'x'));
  auto b = crypto::keyring::parse("correct horse battery", std::string(16, 'y'));
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  std::string blob = (*a)->seal("aad", "hello");
  std::string plain;
  CHECK((*a)->open("aad", blob, plain).ok());
  CHECK(plain == "hello");
  CHECK((*b)->open("aad", blob, plain).code() == errc::corrupt);
  CHECK((*a)->open("other aad", blob, plain).code() == errc::corrupt);
  // load(): a passphrase creates the salt file once, then reuses it
  temp_dir d;
  { std::ofstream(d.sub("key")) << "correct horse battery staple\n"; }
  auto l1 = crypto::keyring::load(d.sub("key"), d.sub("salt"));
  REQUIRE(l1.ok());
  CHECK(std::filesystem::file_size(d.sub("salt")) == crypto::salt_bytes);
  auto l2 = crypto::keyring::load(d.sub("key"), d.sub("salt"));
  REQUIRE(l2.ok());
  CHECK((*l2)->open("x", (*l1)->seal("x", "same key"), plain).ok());
  CHECK(crypto::keyring::load(d.sub("missing"), d.sub("salt")).code() == errc::io_error);
}

TEST_CASE("l3 encrypted: no plaintext on disk, wrong or missing key refused, tamper refused") {
  temp_dir d;
  fake_clock clk;
  auto k1 = keys({{1, 'A'}});
  std::string long_key(600, 'L');
  {
    auto l3 = l3_lmdb::open(l3_at(d.sub("l3"), k1), clk);
    REQUIRE(l3.ok());
    CHECK((*l3)->encrypted());
    for (int i = 0; i < 200; ++i)
      REQUIRE((*l3)->put(kv(key_of(i), value_of(i)), clk.now_ms()).ok());
    REQUIRE((*l3)->put(kv(long_key, "long-key-value"), clk.now_ms()).ok());
    REQUIRE((*l3)->sync().ok());
    auto got = (*l3)->get(key_of(7), clk.now_ms());
    REQUIRE(got.ok());
    REQUIRE(got->has_value());
    CHECK((*got)->value == value_of(7));
  }
  for (int i : {0, 7, 199}) {
    CHECK(files_with(d.path, key_of(i)).empty());
    CHECK(files_with(d.path, value_of(i)).empty());
  }
  CHECK(files_with(d.path, "secretkey-").empty());
  CHECK(files_with(d.path, "credit-card").empty());
  CHECK(files_with(d.path, std::string(40, 'L')).empty());

  // missing key, wrong key (same id), unknown id: refused at open
  auto none = l3_lmdb::open(l3_at(d.sub("l3"), nullptr), clk);
  CHECK(none.code() == errc::bad_key);
  auto wrong = l3_lmdb::open(l3_at(d.sub("l3"), keys({{1, 'B'}})), clk);
  CHECK(wrong.code() == errc::bad_key);
  auto other = l3_lmdb::open(l3_at(d.sub("l3"), keys({{9, 'A'}})), clk);
  CHECK(other.code() == errc::bad_key);
  INFO(wrong.err().message);

  // a plaintext store refuses a key; an empty one is adopted
  {
    auto plain = l3_lmdb::open(l3_at(d.sub("plain"), nullptr), clk);
    REQUIRE(plain.ok());
    REQUIRE((*plain)->put(kv("a", "b"), 0).ok());
  }
  CHECK(l3_lmdb::open(l3_at(d.sub("plain"), k1), clk).code() == errc::bad_key);
  { REQUIRE(l3_lmdb::open(l3_at(d.sub("empty"), nullptr), clk).ok()); }
  CHECK(l3_lmdb::open(l3_at(d.sub("empty"), k1), clk).ok());

  // tamper with one byte of one record's ciphertext: that entry is corrupt,
  // never garbage; the others still read
  {
    MDB_env* env = nullptr;
    REQUIRE(mdb_env_create(&env) == 0);
    mdb_env_set_maxdbs(env, 8);
    REQUIRE(mdb_env_open(env, d.sub("l3").c_str(), 0, 0644) == 0);
    MDB_txn* txn = nullptr;
    REQUIRE(mdb_txn_begin(env, nullptr, 0, &txn) == 0);
    MDB_dbi main;
    REQUIRE(mdb_dbi_open(txn, "kura.main", 0, &main) == 0);
    std::string lkey;
    {
      // the victim: the first record in LMDB order (its key is a keyed hash)
      MDB_cursor* c;
      REQUIRE(mdb_cursor_open(txn, main, &c) == 0);
      MDB_val k, v;
      REQUIRE(mdb_cursor_get(c, &k, &v, MDB_FIRST) == 0);
      lkey.assign(static_cast<char*>(k.mv_data), k.mv_size);
      mdb_cursor_close(c);
    }
    MDB_val k{lkey.size(), lkey.data()}, v;
    REQUIRE(mdb_get(txn, main, &k, &v) == 0);
    std::string rec(static_cast<char*>(v.mv_data), v.mv_size);
    rec[rec.size() - 20] ^= 0x01; // inside the ciphertext
    // make the (non-cryptographic) checksum right, so GCM is what refuses it
    l3_format::put_le(rec.data() + 32, l3_format::record_checksum(lkey, rec), 8);
    MDB_val nv{rec.size(), rec.data()};
    REQUIRE(mdb_put(txn, main, &k, &nv, 0) == 0);
    REQUIRE(mdb_txn_commit(txn) == 0);
    mdb_env_close(env);
  }
  auto l3 = l3_lmdb::open(l3_at(d.sub("l3"), k1), clk);
  REQUIRE(l3.ok());
  int corrupt = 0, good = 0;
  for (int i = 0; i < 200; ++i) {
    auto g = (*l3)->get(key_of(i), clk.now_ms(), false);
    if (!g.ok()) {
      CHECK(g.code() == errc::corrupt);
      ++corrupt;
    } else {
      REQUIRE(g->has_value());
      CHECK((*g)->value == value_of(i));
      ++good;
    }
  }
  auto lk = (*l3)->get(long_key, clk.now_ms(), false);
  if (lk.ok()) {
    REQUIRE(lk->has_value());
    CHECK((*lk)->value == "long-key-value");
    ++good;
  } else {
    ++corrupt;
  }
  CHECK(corrupt == 1);
  CHECK(good == 200);
}

TEST_CASE("l3 encrypted: key rotation re-seals every record, then the old key is not needed") {
  temp_dir d;
  fake_clock clk;
  auto k1 = keys({{1, 'A'}});
  auto k12 = keys({{1, 'A'}, {2, 'C'}});
  auto k2 = keys({{2, 'C'}});
  {
    auto l3 = l3_lmdb::open(l3_at(d.sub("l3"), k1), clk);
    REQUIRE(l3.ok());
    for (int i = 0; i < 300; ++i)
      REQUIRE((*l3)->put(kv(key_of(i), value_of(i)), 0).ok());
  }
  // a key file without key 1 cannot open it yet
  CHECK(l3_lmdb::open(l3_at(d.sub("l3"), k2), clk).code() == errc::bad_key);
  {
    auto l3 = l3_lmdb::open(l3_at(d.sub("l3"), k1), clk);
    REQUIRE(l3.ok());
    CHECK((*l3)->rotate_keys(keys({{1, 'Z'}, {2, 'C'}})).code() == errc::bad_key);
    REQUIRE((*l3)->rotate_keys(k12).ok());
    REQUIRE((*l3)->put(kv("new", "after rotation"), 0).ok());
    CHECK((*l3)->key_ids() == std::vector<uint32_t>{1, 2});
    reseal_progress p;
    int steps = 0;
    do {
      auto r = (*l3)->reseal_step(64);
      REQUIRE(r.ok());
      p = *r;
      ++steps;
    } while (!p.done);
    CHECK(steps >= 4);
    CHECK(p.resealed == 300);
    CHECK(p.records_done == 301);
    CHECK((*l3)->key_ids() == std::vector<uint32_t>{2});
  }
  auto l3 = l3_lmdb::open(l3_at(d.sub("l3"), k2), clk);
  REQUIRE(l3.ok());
  for (int i = 0; i < 300; i += 37) {
    auto g = (*l3)->get(key_of(i), 0, false);
    REQUIRE(g.ok());
    REQUIRE(g->has_value());
    CHECK((*g)->value == value_of(i));
  }
}

TEST_CASE("l3 opens a kura-l3 3 environment (previous format), upgrades it, reads it") {
  temp_dir d;
  fake_clock clk;
  std::string dir = d.sub("v3");
  std::filesystem::create_directories(dir);
  {
    MDB_env* env = nullptr;
    REQUIRE(mdb_env_create(&env) == 0);
    mdb_env_set_maxdbs(env, 8);
    mdb_env_set_mapsize(env, 64ull << 20);
    REQUIRE(mdb_env_open(env, dir.c_str(), 0, 0644) == 0);
    MDB_txn* txn = nullptr;
    REQUIRE(mdb_txn_begin(env, nullptr, 0, &txn) == 0);
    MDB_dbi meta, main, seq, exp;
    REQUIRE(mdb_dbi_open(txn, "kura.meta", MDB_CREATE, &meta) == 0);
    REQUIRE(mdb_dbi_open(txn, "kura.main", MDB_CREATE, &main) == 0);
    REQUIRE(mdb_dbi_open(txn, "kura.seq", MDB_CREATE, &seq) == 0);
    REQUIRE(mdb_dbi_open(txn, "kura.exp", MDB_CREATE, &exp) == 0);
    auto put = [&](MDB_dbi db, std::string k, std::string v) {
      MDB_val kv{k.size(), k.data()}, vv{v.size(), v.data()};
      REQUIRE(mdb_put(txn, db, &kv, &vv, 0) == 0);
    };
    put(meta, "format", "kura-l3 3");
    std::string est(8, '\0'), mv(12, '\0');
    l3_format::put_le(est.data(), 1000, 8);
    l3_format::put_le(mv.data(), 5000, 8);
    put(meta, "est_bytes", est);
    put(meta, "max_version", mv);
    for (int i = 0; i < 10; ++i) {
      entry e = kv(key_of(i), value_of(i));
      e.ver = version{1000u + i, 1};
      std::string lkey = l3_format::lmdb_key(e.key);
      std::string rec(l3_format::record_size(e), '\0');
      l3_format::encode_record(e, lkey, i + 1, rec.data());
      rec[0] = 3; // format 3: the same layout as a plaintext format-4 record
      l3_format::put_le(rec.data() + 32, l3_format::record_checksum(lkey, rec), 8);
      put(main, lkey, rec);
      put(seq, l3_format::seq_key(i + 1), lkey);
    }
    REQUIRE(mdb_txn_commit(txn) == 0);
    mdb_env_close(env);
  }
  // with a key: refused (plaintext data), without: read and upgraded
  CHECK(l3_lmdb::open(l3_at(dir, keys({{1, 'A'}})), clk).code() == errc::bad_key);
  {
    auto l3 = l3_lmdb::open(l3_at(dir, nullptr), clk);
    REQUIRE(l3.ok());
    CHECK((*l3)->max_version() == version{5000, 0});
    for (int i = 0; i < 10; ++i) {
      auto g = (*l3)->get(key_of(i), 0, false);
      REQUIRE(g.ok());
      REQUIRE(g->has_value());
      CHECK((*g)->value == value_of(i));
      CHECK((*g)->ver == version{1000u + i, 1});
    }
  }
  MDB_env* env = nullptr;
  REQUIRE(mdb_env_create(&env) == 0);
  mdb_env_set_maxdbs(env, 8);
  REQUIRE(mdb_env_open(env, dir.c_str(), MDB_RDONLY, 0644) == 0);
  MDB_txn* txn = nullptr;
  REQUIRE(mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn) == 0);
  MDB_dbi meta;
  REQUIRE(mdb_dbi_open(txn, "kura.meta", 0, &meta) == 0);
  MDB_val k{6, const_cast<char*>("format")}, v;
  REQUIRE(mdb_get(txn, meta, &k, &v) == 0);
  CHECK(std::string(static_cast<char*>(v.mv_data), v.mv_size) ==
        std::string{l3_format::meta_format});
  mdb_txn_abort(txn);
  mdb_env_close(env);
}

TEST_CASE("l4 encrypted: sealed blocks and dictionaries, rotation by compaction, refusals") {
  temp_dir d;
  fake_clock clk;
  auto k1 = keys({{1, 'A'}});
  auto k12 = keys({{1, 'A'}, {2, 'C'}});
  auto k2 = keys({{2, 'C'}});
  const int n = 2000;
  {
    auto ar = archive::archive::open(l4_at(d.sub("l4"), k1), clk);
    REQUIRE(ar.ok());
    for (int i = 0; i < n; ++i)
      REQUIRE((*ar)->put(kv(key_of(i), value_of(i)), clk.now_ms()).ok());
    REQUIRE((*ar)->flush().ok());
    auto id = (*ar)->train_dictionary_now();
    REQUIRE(id.ok());
    for (int i = n; i < 2 * n; ++i)
      REQUIRE((*ar)->put(kv(key_of(i), value_of(i)), clk.now_ms()).ok());
    REQUIRE((*ar)->flush().ok());
    CHECK_FALSE((*ar)->inspect().dictionaries.empty());
    // the key iterator still yields every key (order: keyed hash)
    size_t seen = 0;
    std::optional<std::string> after = std::string{};
    while (after) {
      auto r = (*ar)->scan_keys(*after, 500, [&](const archive::archive::key_info&) { ++seen; });
      REQUIRE(r.ok());
      after = *r;
    }
    CHECK(seen == static_cast<size_t>(2 * n));
  }
  CHECK(files_with(d.path, "secretkey-").empty());
  CHECK(files_with(d.path, "credit-card").empty());
  CHECK(files_with(d.path, "customer").empty());
  CHECK(archive::archive::open(l4_at(d.sub("l4"), nullptr), clk).code() == errc::bad_key);
  CHECK(archive::archive::open(l4_at(d.sub("l4"), keys({{1, 'B'}})), clk).code() == errc::bad_key);
  CHECK(archive::archive::open(l4_at(d.sub("l4"), k2), clk).code() == errc::bad_key);
  {
    auto ar = archive::archive::open(l4_at(d.sub("l4"), k1), clk);
    REQUIRE(ar.ok());
    REQUIRE((*ar)->rotate_keys(k12).ok());
    auto p = (*ar)->begin_reseal();
    REQUIRE(p.ok());
    CHECK(p->segments_total > 0);
    while (!p->done) {
      p = (*ar)->compaction_step(64 * 1024);
      REQUIRE(p.ok());
    }
    auto ids = (*ar)->drop_old_secrets();
    REQUIRE(ids.ok());
    CHECK(*ids == std::vector<uint32_t>{2});
  }
  CHECK(files_with(d.path, "credit-card").empty());
  auto ar = archive::archive::open(l4_at(d.sub("l4"), k2), clk);
  REQUIRE(ar.ok());
  for (int i = 0; i < 2 * n; i += 97) {
    auto g = (*ar)->get(key_of(i), clk.now_ms());
    REQUIRE(g.ok());
    REQUIRE(g->has_value());
    CHECK((*g)->value == value_of(i));
  }
  // tamper with one byte inside a sealed block (CRCs made right again, so
  // that GCM is what refuses it): that block's keys are corrupt, the rest read
  ar->reset();
  {
    std::string seg;
    for (auto& f : std::filesystem::directory_iterator(d.sub("l4")))
      if (f.path().extension() == ".kseg" && seg.empty())
        seg = f.path().string();
    REQUIRE_FALSE(seg.empty());
    std::string bytes = read_file(seg);
    size_t off = archive::format::segment_header_size;
    auto h = archive::format::decode_block_header(bytes.substr(off, 24));
    REQUIRE(h.ok());
    size_t payload = off + archive::format::block_header_size;
    bytes[payload + h->stored_len - 20] ^= 0x01;
    archive::format::block_header nh = *h;
    nh.payload_crc = archive::crc32(std::string_view(bytes).substr(payload, h->stored_len));
    bytes.replace(off, archive::format::block_header_size, archive::format::encode(nh));
    std::ofstream(seg, std::ios::binary | std::ios::trunc) << bytes;
  }
  auto ar2 = archive::archive::open(l4_at(d.sub("l4"), k2), clk);
  REQUIRE(ar2.ok());
  int corrupt = 0, good = 0;
  for (int i = 0; i < 2 * n; ++i) {
    auto g = (*ar2)->get(key_of(i), clk.now_ms());
    if (!g.ok()) {
      CHECK(g.code() == errc::corrupt);
      ++corrupt;
    } else if (g->has_value()) {
      CHECK((*g)->value == value_of(i));
      ++good;
    }
  }
  CHECK(corrupt > 0);
  CHECK(good > n);
  CHECK(corrupt + good == 2 * n);
  // a plaintext archive with entries refuses a key
  {
    auto plain = archive::archive::open(l4_at(d.sub("plain"), nullptr), clk);
    REQUIRE(plain.ok());
    REQUIRE((*plain)->put(kv("a", "b"), 0).ok());
    REQUIRE((*plain)->flush().ok());
  }
  CHECK(archive::archive::open(l4_at(d.sub("plain"), k1), clk).code() == errc::bad_key);
}
