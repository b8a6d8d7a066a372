// L4 archive implementation.
//
// Layout on disk (docs/formats-archive.md has the byte-level description):
//   <path>/seg-<id>.kseg     append-only segment: header, then blocks
//   <path>/dict-<id>.zdict   zstd dictionaries (raw ZDICT format)
//   <path>/index/            LMDB: "index" key -> location, "segments" id -> row,
//                            "meta" counters
//
// Why a block is the unit: values reaching L4 are mostly small (100 B - 4 KiB);
// compressing them one by one wastes most of the ratio, compressing a whole
// segment as one stream makes a get decompress megabytes. A block of
// `block_bytes` raw bytes is the middle: one read, one decompression per get,
// and enough context for lz4/zstd (a dictionary recovers most of the rest for
// small blocks).
//
// Crash safety rests on one rule: the LMDB index never points at bytes that
// are not durable, and a file is deleted only after the index stopped pointing
// at it. Flushing a block = append + fdatasync the segment, then one LMDB
// commit that moves the keys. Compaction = write the new segment, fdatasync,
// one LMDB commit that switches every still-current key from old to new
// location and deletes the old segment's row, then unlink the old file. On
// open, segment files without a row are orphans of an interrupted step and
// are removed; bytes past a row's committed end are a torn tail and are cut.
// A crash at any point therefore leaves each committed key pointing either at
// its old (still present) or its new (already durable) copy.
//
// Concurrency: one mutex (mu_) guards the index transactions, the segment table,
// the pending block and the dictionaries map. get() resolves the location under
// the mutex, then reads and decompresses the block without it (files are
// shared_ptr'd, so an unlink by compaction does not pull the data away). A
// compaction job belongs to the thread driving it: it reads input blocks,
// checks liveness in its own LMDB read transaction and writes the output
// without the mutex, and takes the mutex only to allocate ids and to switch.
#include "archive/archive.hpp"

#include "archive/format.hpp"
#include "tiers/lmdb_wipe.hpp"

#include <lmdb.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sys/stat.h>
#include <unistd.h>
#include <unordered_map>

namespace kura::archive {

namespace {

using namespace format;

constexpr uint64_t never = ~0ull;
constexpr uint64_t day_ms = 24ull * 3600 * 1000;

error mdb_error(int rc, const std::string& what) {
  errc code = errc::io_error;
  if (rc == MDB_MAP_FULL)
    code = errc::out_of_space;
  else if (rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND)
    code = errc::corrupt;
  else if (rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH)
    code = errc::foreign_file;
  return error{code, "archive index: " + what + ": " + mdb_strerror(rc)};
}

MDB_val as_val(std::string_view s) {
  return MDB_val{s.size(), const_cast<char*>(s.data())};
}

std::string_view as_view(const MDB_val& v) {
  return std::string_view(static_cast<const char*>(v.mv_data), v.mv_size);
}

std::string be64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i)
    s[static_cast<size_t>(i)] = static_cast<char>(v >> (56 - 8 * i));
  return s;
}

uint64_t from_be64(std::string_view s) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8 && i < s.size(); ++i)
    v = (v << 8) | static_cast<uint8_t>(s[i]);
  return v;
}

/// A write transaction that aborts unless committed.
struct write_txn {
  MDB_txn* t = nullptr;
  write_txn() = default;
  write_txn(const write_txn&) = delete;
  ~write_txn() {
    if (t != nullptr)
      mdb_txn_abort(t);
  }
  status commit() {
    int rc = mdb_txn_commit(t);
    t = nullptr;
    if (rc != 0)
      return mdb_error(rc, "commit");
    return {};
  }
};

/// A read transaction of the env, reset between uses (MDB_NOTLS: any thread).
struct read_txn {
  MDB_txn* t = nullptr;
  bool live = false;
  ~read_txn() {
    if (t != nullptr)
      mdb_txn_abort(t);
  }
  status begin(MDB_env* env) {
    int rc = t == nullptr ? mdb_txn_begin(env, nullptr, MDB_RDONLY, &t) : mdb_txn_renew(t);
    if (rc != 0) {
      if (t != nullptr && rc != 0) {
        mdb_txn_abort(t);
        t = nullptr;
      }
      return mdb_error(rc, "begin read");
    }
    live = true;
    return {};
  }
  void end() {
    if (live)
      mdb_txn_reset(t);
    live = false;
  }
};

uint32_t codec_level_byte(codec_id c, int level) {
  return c == codec_id::lz4 || c == codec_id::zstd || c == codec_id::zstd_dict
             ? static_cast<uint32_t>(level)
             : 0;
}

} // namespace

// -- impl -----------------------------------------------------------------------

struct archive::impl {
  struct seg_state {
    segment_row row;
    std::shared_ptr<readable_file> file;
    std::string file_error; ///< why `file` is missing, when it is
    bool committed = false; ///< has a row in LMDB
    bool compacting = false;
    bool has_corrupt = false;
    uint32_t key_id = 0; ///< from the segment header: 0 = plaintext blocks
  };

  /// One record waiting in the compaction output block.
  struct reloc {
    std::string ik;
    location old_loc;
    location new_loc;
  };

  struct job_state {
    std::vector<uint64_t> inputs;
    size_t idx = 0;
    // current input
    bool in_open = false;
    uint64_t in_id = 0;
    std::shared_ptr<readable_file> in_file;
    uint64_t in_end = 0;
    uint64_t cursor = 0;
    codec_id in_codec = codec_id::lz4;
    std::shared_ptr<const dictionary> in_dict;
    std::shared_ptr<const crypto::keyring> in_kr, out_kr;
    bool in_sealed = false;
    bool in_corrupt = false;
    uint64_t in_oldest = 0, in_newest = 0;
    // output
    uint64_t out_id = 0;
    std::unique_ptr<writable_file> out_w;
    segment_row out_row;
    bool out_committed = false;
    codec_id out_codec = codec_id::lz4;
    std::shared_ptr<const dictionary> out_dict;
    std::string out_raw;
    std::vector<reloc> out_block;                          ///< records of out_raw
    std::vector<reloc> relocs;                             ///< written since the last switch
    std::vector<std::pair<std::string, location>> expired; ///< to drop at switch
    std::string out_path;
    codec_context ctx;
    read_txn rtxn;
    compaction_progress prog;
    uint64_t start_ns = 0;
  };

  archive_config cfg;
  const clock& clk;
  env& fs;

  // Encryption at rest (kr null: plaintext). Guarded by mu; get() copies the
  // shared_ptr under it. The store secret keys the index's keyed hashes.
  std::shared_ptr<const crypto::keyring> kr;
  std::optional<crypto::store_secret> secret;
  std::map<uint32_t, std::string> sealed_secrets; // "secret.<id>" in meta
  /// The index key of `key` (keyed hash when encrypted).
  std::string ikey(std::string_view key) const {
    if (!secret)
      return index_key(key);
    return std::string(1, index_key_sealed) + secret->key_hash(key);
  }

  mutable std::mutex mu;
  MDB_env* menv = nullptr;
  MDB_dbi dbi_index = 0, dbi_segs = 0, dbi_meta = 0;
  read_txn rtxn; // guarded by mu

  std::map<uint64_t, seg_state> segs;
  uint64_t next_seg_id = 1;
  uint64_t active_id = 0;
  std::unique_ptr<writable_file> active_w;
  codec_context wctx; // guarded by mu

  std::map<uint32_t, std::shared_ptr<const dictionary>> dicts;
  uint32_t current_dict = 0;
  uint32_t next_dict_id = 1;
  uint32_t sealed_since_dict = 0;
  std::deque<std::string> samples;
  size_t sample_bytes = 0;
  uint64_t samples_seen = 0;       ///< samples taken since open
  uint64_t next_train_at_seen = 0; ///< back-off after a failed training
  bool training = false;           ///< train() runs (without mu)

  std::vector<entry> pending;
  std::unordered_map<std::string, size_t> pending_pos;
  size_t pending_raw = 0;
  size_t pending_new = 0; ///< pending keys not yet in the index
  uint64_t pending_since_ms = 0;

  std::string sweep_cursor;
  std::vector<corrupt_block> corrupt;
  std::set<std::pair<uint64_t, uint64_t>> corrupt_set;

  tier_stats counters;
  archive_info totals; // counters part only

  std::unique_ptr<job_state> job;
  std::atomic<bool> job_cancel{false};
  throttle_hook throttle;

  impl(archive_config c, const clock& k)
      : cfg(std::move(c)), clk(k), fs(cfg.fs != nullptr ? *cfg.fs : posix_env::instance()) {}

  ~impl() {
    rtxn.end();
    if (rtxn.t != nullptr) {
      mdb_txn_abort(rtxn.t);
      rtxn.t = nullptr;
    }
    if (menv != nullptr) {
      mdb_env_sync(menv, 1);
      mdb_env_close(menv);
    }
  }

  std::string seg_path(uint64_t id) const { return cfg.path + "/" + segment_file_name(id); }
  std::string dict_path(uint32_t id) const { return cfg.path + "/" + dict_file_name(id); }
  static std::string dict_aad(uint32_t id) { return "kura-l4 dictionary " + std::to_string(id); }
  uint64_t ttl_ms() const { return static_cast<uint64_t>(cfg.ttl_days) * day_ms; }

  // -- opening --------------------------------------------------------------------

  status open_index() {
    auto dir = cfg.path + "/index";
    if (auto st = fs.create_dir(dir); !st)
      return st;
    int rc = mdb_env_create(&menv);
    if (rc != 0)
      return mdb_error(rc, "create");
    mdb_env_set_maxdbs(menv, 4);
    mdb_env_set_mapsize(menv, cfg.index_map_bytes);
    unsigned flags = MDB_NOTLS | MDB_NORDAHEAD;
    if (!cfg.durable)
      flags |= MDB_NOSYNC;
    rc = mdb_env_open(menv, dir.c_str(), flags, 0644);
    if (rc != 0)
      return mdb_error(rc, "open " + dir);
    write_txn w;
    if ((rc = mdb_txn_begin(menv, nullptr, 0, &w.t)) != 0)
      return mdb_error(rc, "begin");
    // A foreign LMDB environment has no "meta" database with our format tag.
    MDB_dbi unnamed;
    if ((rc = mdb_dbi_open(w.t, nullptr, 0, &unnamed)) != 0)
      return mdb_error(rc, "open main db");
    MDB_stat ms;
    mdb_stat(w.t, unnamed, &ms);
    bool fresh = ms.ms_entries == 0;
    if ((rc = mdb_dbi_open(w.t, "meta", MDB_CREATE, &dbi_meta)) != 0 ||
        (rc = mdb_dbi_open(w.t, "index", MDB_CREATE, &dbi_index)) != 0 ||
        (rc = mdb_dbi_open(w.t, "segments", MDB_CREATE, &dbi_segs)) != 0)
      return mdb_error(rc, "open databases");
    MDB_val k = as_val("format"), v;
    rc = mdb_get(w.t, dbi_meta, &k, &v);
    // kura-archive-2 added encryption at rest (sealed blocks and dictionaries,
    // keyed-hash index keys, "secret.<id>" meta records); a kura-archive-1
    // index is plaintext in the same layout and is upgraded in place.
    const std::string tag = "kura-archive-2", tag_v1 = "kura-archive-1";
    MDB_val tv = as_val(tag);
    if (rc == MDB_NOTFOUND) {
      if (!fresh)
        return error{errc::foreign_file, dir + " holds an LMDB environment that is not kura's"};
      if ((rc = mdb_put(w.t, dbi_meta, &k, &tv, 0)) != 0)
        return mdb_error(rc, "write format tag");
    } else if (rc != 0) {
      return mdb_error(rc, "read format tag");
    } else if (as_view(v) == tag_v1) {
      if ((rc = mdb_put(w.t, dbi_meta, &k, &tv, 0)) != 0)
        return mdb_error(rc, "upgrade format tag");
    } else if (as_view(v) != tag) {
      return error{errc::foreign_file,
                   dir + " is format '" + std::string(as_view(v)) + "', expected '" + tag + "'"};
    }
    {
      MDB_cursor* c = nullptr;
      if ((rc = mdb_cursor_open(w.t, dbi_meta, &c)) != 0)
        return mdb_error(rc, "meta cursor");
      std::string prefix = "secret.";
      MDB_val sk = as_val(prefix), sv;
      for (rc = mdb_cursor_get(c, &sk, &sv, MDB_SET_RANGE); rc == 0;
           rc = mdb_cursor_get(c, &sk, &sv, MDB_NEXT)) {
        std::string_view name = as_view(sk);
        if (name.substr(0, prefix.size()) != prefix)
          break;
        std::string digits(name.substr(prefix.size()));
        if (digits.empty() || digits.size() > 10 ||
            digits.find_first_not_of("0123456789") != std::string::npos) {
          mdb_cursor_close(c);
          return error{errc::corrupt, dir + " has a bad meta record " + std::string(name)};
        }
        sealed_secrets[static_cast<uint32_t>(std::stoull(digits))] = std::string(as_view(sv));
      }
      mdb_cursor_close(c);
    }
    bool write_secret = false;
    if (cfg.keys) {
      if (!sealed_secrets.empty()) {
        auto sec = crypto::open_secret(*cfg.keys, sealed_secrets, "archive " + cfg.path);
        if (!sec)
          return sec.err();
        secret = std::move(*sec);
        write_secret = sealed_secrets.count(cfg.keys->active()) == 0;
      } else {
        MDB_stat is{}, ss{};
        mdb_stat(w.t, dbi_index, &is);
        mdb_stat(w.t, dbi_segs, &ss);
        if (is.ms_entries != 0 || ss.ms_entries != 0)
          return error{errc::bad_key,
                       "archive " + cfg.path + " holds " + std::to_string(is.ms_entries) +
                           " unencrypted entries; encryption at rest cannot be turned on over "
                           "them (start with an empty archive directory, see docs/security.md)"};
        secret = crypto::store_secret{crypto::random_bytes(crypto::key_bytes)};
        write_secret = true;
      }
      kr = cfg.keys;
    } else if (!sealed_secrets.empty()) {
      return error{errc::bad_key, "archive " + cfg.path +
                                      " is encrypted; set kura.security.encryption-key-file to "
                                      "the key file it was written with"};
    }
    if (write_secret)
      if (auto st = put_secret(w.t); !st)
        return st;
    return w.commit();
  }

  /// Stores the store secret sealed under the active key ("secret.<id>").
  status put_secret(MDB_txn* t) {
    std::string name = "secret." + std::to_string(kr ? kr->active() : cfg.keys->active());
    std::string blob = crypto::seal_secret(kr ? *kr : *cfg.keys, *secret);
    MDB_val k = as_val(name), v = as_val(blob);
    if (int rc = mdb_put(t, dbi_meta, &k, &v, 0); rc != 0)
      return mdb_error(rc, "write sealed secret");
    sealed_secrets[kr ? kr->active() : cfg.keys->active()] = std::move(blob);
    return {};
  }

  uint64_t meta_get(MDB_txn* t, const char* key, uint64_t dflt) {
    MDB_val k = as_val(key), v;
    if (mdb_get(t, dbi_meta, &k, &v) != 0 || v.mv_size != 8)
      return dflt;
    return from_be64(as_view(v));
  }

  status meta_put(MDB_txn* t, const char* key, uint64_t val) {
    auto s = be64(val);
    MDB_val k = as_val(key), v = as_val(s);
    if (int rc = mdb_put(t, dbi_meta, &k, &v, 0); rc != 0)
      return mdb_error(rc, std::string("write meta ") + key);
    return {};
  }

  status load() {
    if (auto st = fs.create_dir(cfg.path); !st)
      return st;
    if (auto st = open_index(); !st)
      return st;
    // Segment table and counters.
    {
      if (auto st = rtxn.begin(menv); !st)
        return st;
      MDB_cursor* c;
      mdb_cursor_open(rtxn.t, dbi_segs, &c);
      MDB_val k, v;
      int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
      while (rc == 0) {
        auto row = decode_segment_row(as_view(v));
        if (!row) {
          mdb_cursor_close(c);
          rtxn.end();
          return error{errc::corrupt, "archive index: " + row.err().message};
        }
        auto& s = segs[from_be64(as_view(k))];
        s.row = *row;
        s.committed = true;
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
      }
      mdb_cursor_close(c);
      next_seg_id = meta_get(rtxn.t, "next_segment", 1);
      next_dict_id = static_cast<uint32_t>(meta_get(rtxn.t, "next_dict", 1));
      current_dict = static_cast<uint32_t>(meta_get(rtxn.t, "current_dict", 0));
      rtxn.end();
    }
    // Files: remove orphans, cut torn tails, open the rest.
    auto names = fs.list_dir(cfg.path);
    if (!names)
      return names.err();
    std::set<uint32_t> dict_files;
    for (auto& n : *names) {
      uint64_t id;
      uint32_t did;
      if (parse_segment_file_name(n, id)) {
        next_seg_id = std::max(next_seg_id, id + 1);
        if (segs.count(id) == 0) {
          if (auto st = fs.remove(cfg.path + "/" + n); !st)
            return st;
        }
      } else if (parse_dict_file_name(n, did)) {
        next_dict_id = std::max(next_dict_id, did + 1);
        dict_files.insert(did);
      } else if (n.size() > 4 && n.substr(n.size() - 4) == ".tmp") {
        (void)fs.remove(cfg.path + "/" + n); // a dictionary write that did not finish
      }
    }
    for (auto& [id, s] : segs) {
      auto f = fs.open_readable(seg_path(id));
      if (!f) {
        s.file_error = f.err().to_string();
        continue;
      }
      std::string hb(segment_header_size, '\0');
      auto sz = (*f)->size();
      if (!sz) {
        s.file_error = sz.err().to_string();
        continue;
      }
      if (auto st = (*f)->read_at(0, hb.size(), hb.data()); !st) {
        s.file_error = "segment " + std::to_string(id) + ": " + st.message();
        continue;
      }
      auto h = decode_segment_header(hb);
      if (!h) {
        s.file_error = "segment " + std::to_string(id) + ": " + h.err().to_string();
        continue;
      }
      s.key_id = h->key_id;
      if (*sz < s.row.end_offset) {
        // Blocks before the cut still read; those after it fail as corrupt.
        s.file = *f;
        continue;
      }
      if (*sz > s.row.end_offset) {
        f->reset();
        if (auto st = fs.truncate(seg_path(id), s.row.end_offset); !st)
          return st;
        f = fs.open_readable(seg_path(id));
        if (!f)
          return f.err();
      }
      s.file = *f;
    }
    // Dictionaries: load those in use (and the current one), drop the rest.
    std::set<uint32_t> used;
    for (auto& [id, s] : segs)
      if (s.row.dict_id != 0)
        used.insert(s.row.dict_id);
    if (current_dict != 0)
      used.insert(current_dict);
    for (auto did : dict_files) {
      if (used.count(did) == 0) {
        (void)fs.remove(dict_path(did));
        continue;
      }
      if (auto st = load_dict(did); !st && did == current_dict)
        current_dict = 0; // train a new one; segments that need it report it
    }
    if (current_dict != 0 && dicts.count(current_dict) == 0)
      current_dict = 0;
    return {};
  }

  status load_dict(uint32_t did) {
    auto f = fs.open_readable(dict_path(did));
    if (!f)
      return f.err();
    auto sz = (*f)->size();
    if (!sz)
      return sz.err();
    std::string bytes(*sz, '\0');
    if (auto st = (*f)->read_at(0, bytes.size(), bytes.data()); !st)
      return st;
    if (kr) {
      std::string plain;
      if (auto st = kr->open(dict_aad(did), bytes, plain); !st)
        return status{st.code(), "dictionary " + std::to_string(did) + ": " + st.message()};
      bytes = std::move(plain);
    }
    auto d = dictionary::load(did, std::move(bytes), cfg.level);
    if (!d)
      return d.err();
    dicts[did] = *d;
    return {};
  }

  // -- index helpers ----------------------------------------------------------------

  result<std::optional<location>> index_get(MDB_txn* t, const std::string& ik) {
    MDB_val k = as_val(ik), v;
    int rc = mdb_get(t, dbi_index, &k, &v);
    if (rc == MDB_NOTFOUND)
      return std::optional<location>{};
    if (rc != 0)
      return mdb_error(rc, "get");
    auto l = decode_location(as_view(v));
    if (!l)
      return l.err();
    return std::optional<location>{*l};
  }

  status index_put(MDB_txn* t, const std::string& ik, const location& l) {
    auto s = encode(l);
    MDB_val k = as_val(ik), v = as_val(s);
    if (int rc = mdb_put(t, dbi_index, &k, &v, 0); rc != 0)
      return mdb_error(rc, "put");
    return {};
  }

  status index_del(MDB_txn* t, const std::string& ik) {
    MDB_val k = as_val(ik);
    int rc = mdb_del(t, dbi_index, &k, nullptr);
    if (rc != 0 && rc != MDB_NOTFOUND)
      return mdb_error(rc, "del");
    return {};
  }

  status row_put(MDB_txn* t, uint64_t id, const segment_row& r) {
    auto ks = be64(id);
    auto vs = encode(r);
    MDB_val k = as_val(ks), v = as_val(vs);
    if (int rc = mdb_put(t, dbi_segs, &k, &v, 0); rc != 0)
      return mdb_error(rc, "put segment row");
    return {};
  }

  status row_del(MDB_txn* t, uint64_t id) {
    auto ks = be64(id);
    MDB_val k = as_val(ks);
    int rc = mdb_del(t, dbi_segs, &k, nullptr);
    if (rc != 0 && rc != MDB_NOTFOUND)
      return mdb_error(rc, "del segment row");
    return {};
  }

  status begin_write(write_txn& w) {
    if (int rc = mdb_txn_begin(menv, nullptr, 0, &w.t); rc != 0) {
      w.t = nullptr;
      return mdb_error(rc, "begin write");
    }
    return {};
  }

  /// Rows changed in a transaction, applied to `segs` only after it commits.
  struct dirty_rows {
    std::map<uint64_t, segment_row> rows;
    impl& self;
    explicit dirty_rows(impl& s) : self(s) {}
    segment_row* get(uint64_t id) {
      auto i = rows.find(id);
      if (i != rows.end())
        return &i->second;
      auto s = self.segs.find(id);
      if (s == self.segs.end())
        return nullptr;
      return &(rows[id] = s->second.row);
    }
    void unlive(const location& l) {
      if (auto* r = get(l.segment)) {
        r->live_entries -= std::min<uint64_t>(r->live_entries, 1);
        r->live_raw_bytes -= std::min<uint64_t>(r->live_raw_bytes, l.record_len);
      }
    }
    status write(MDB_txn* t) {
      for (auto& [id, r] : rows)
        if (self.segs.count(id) != 0)
          if (auto st = self.row_put(t, id, r); !st)
            return st;
      return {};
    }
    void apply() {
      for (auto& [id, r] : rows) {
        auto s = self.segs.find(id);
        if (s != self.segs.end()) {
          s->second.row = r;
          s->second.committed = true;
        }
      }
    }
  };

  // -- dictionaries -------------------------------------------------------------------

  size_t sample_cap() const {
    return static_cast<size_t>(
        std::min<uint64_t>(cfg.dict_sample_bytes, cfg.index_memory_bytes / 4));
  }

  void sample(const entry& e) {
    if (cfg.codec != codec_id::zstd_dict || e.value.size() > cfg.dict_sample_max_value)
      return;
    std::string rec;
    append_record(rec, e);
    sample_bytes += rec.size();
    ++samples_seen;
    samples.push_back(std::move(rec));
    size_t cap = sample_cap();
    while (sample_bytes > cap && !samples.empty()) {
      sample_bytes -= samples.front().size();
      samples.pop_front();
    }
  }

  /// Whether a (first or rotated) dictionary should be trained now. Under mu.
  bool training_due() const {
    if (cfg.codec != codec_id::zstd_dict || training || samples.size() < cfg.dict_min_samples ||
        samples_seen < next_train_at_seen)
      return false;
    if (current_dict == 0) // bootstrap: after the first segment, or once there is enough
      return sealed_since_dict >= 1 || sample_bytes >= sample_cap() / 4;
    return sealed_since_dict >= cfg.dict_rotate_segments;
  }

  /// Trains a dictionary from the current samples and makes it current. Called
  /// with `lk` (on mu) held; releases it while training and writing the file
  /// (training a 4 MiB sample takes around a second), so readers never wait
  /// for it. Returns with `lk` held again.
  result<uint32_t> train(std::unique_lock<std::mutex>& lk) {
    if (training)
      return error{errc::invalid_argument, "a dictionary is being trained"};
    if (samples.size() < cfg.dict_min_samples)
      return error{errc::invalid_argument, "only " + std::to_string(samples.size()) +
                                               " samples, need " +
                                               std::to_string(cfg.dict_min_samples)};
    std::vector<std::string> v(samples.begin(), samples.end());
    uint32_t did = next_dict_id++;
    training = true;
    auto seal_kr = kr;
    lk.unlock();
    auto installed = [&]() -> result<std::shared_ptr<const dictionary>> {
      auto bytes = train_dictionary(v, cfg.dict_bytes);
      if (!bytes)
        return bytes.err();
      // Write to a temporary name, fsync, rename: a dictionary file is either
      // complete or absent.
      auto tmp = dict_path(did) + ".tmp";
      auto w = fs.new_writable(tmp);
      if (!w)
        return w.err();
      if (auto st = (*w)->append(seal_kr ? seal_kr->seal(dict_aad(did), *bytes) : *bytes); !st)
        return st.err();
      if (auto st = (*w)->sync(); !st)
        return st.err();
      if (auto st = (*w)->close(); !st)
        return st.err();
      if (auto st = fs.rename(tmp, dict_path(did)); !st)
        return st.err();
      if (auto st = fs.sync_dir(cfg.path); !st)
        return st.err();
      return dictionary::load(did, std::move(*bytes), cfg.level);
    }();
    lk.lock();
    training = false;
    if (!installed) {
      // Too uniform or too few distinct samples: retry once the sample buffer
      // has turned over.
      next_train_at_seen = samples_seen + std::max<size_t>(samples.size(), 1);
      sealed_since_dict = 0;
      (void)fs.remove(dict_path(did));
      return installed.err();
    }
    write_txn w2;
    if (auto st = begin_write(w2); !st)
      return st.err();
    if (auto st = meta_put(w2.t, "next_dict", next_dict_id); !st)
      return st.err();
    if (auto st = meta_put(w2.t, "current_dict", did); !st)
      return st.err();
    if (auto st = w2.commit(); !st)
      return st.err();
    uint32_t old = current_dict;
    dicts[did] = *installed;
    current_dict = did;
    ++totals.dictionaries_trained;
    // The active segment keeps its codec; the next one uses the new dictionary.
    if (active_w)
      seal_active();
    sealed_since_dict = 0;
    release_dict_if_unused(old);
    return did;
  }

  void release_dict_if_unused(uint32_t did) {
    if (did == 0 || did == current_dict)
      return;
    for (auto& [id, s] : segs)
      if (s.row.dict_id == did)
        return;
    if (job && job->out_dict && job->out_dict->id() == did)
      return;
    dicts.erase(did);
    (void)fs.remove(dict_path(did));
  }

  void release_unused_dicts() {
    std::vector<uint32_t> ids;
    for (auto& [did, d] : dicts)
      ids.push_back(did);
    for (auto did : ids)
      release_dict_if_unused(did);
  }

  /// Codec and dictionary for a new segment.
  std::pair<codec_id, std::shared_ptr<const dictionary>> new_segment_codec() {
    if (cfg.codec != codec_id::zstd_dict)
      return {cfg.codec, nullptr};
    // Plain zstd until the first dictionary is trained (see train()).
    auto i = dicts.find(current_dict);
    if (current_dict == 0 || i == dicts.end())
      return {codec_id::zstd, nullptr};
    return {codec_id::zstd_dict, i->second};
  }

  // -- writing ---------------------------------------------------------------------

  /// Creates a segment file with its header; not in the index until its first
  /// block commits (until then it is an orphan that open() removes).
  result<std::unique_ptr<writable_file>> create_segment(uint64_t id, codec_id c,
                                                        const dictionary* d, segment_row& row) {
    segment_header h;
    h.codec = c;
    h.level = static_cast<int8_t>(codec_level_byte(c, cfg.level));
    h.dict_id = d != nullptr ? d->id() : 0;
    h.segment_id = id;
    h.created_ms = clk.now_ms();
    h.key_id = kr ? kr->active() : 0;
    auto w = fs.new_writable(seg_path(id));
    if (!w)
      return w.err();
    if (auto st = (*w)->append(encode(h)); !st)
      return st.err();
    if (cfg.durable)
      if (auto st = fs.sync_dir(cfg.path); !st)
        return st.err();
    row = segment_row{};
    row.codec = c;
    row.level = h.level;
    row.dict_id = h.dict_id;
    row.created_ms = h.created_ms;
    row.end_offset = segment_header_size;
    return std::move(*w);
  }

  status ensure_active() {
    if (active_w)
      return {};
    uint64_t id = next_seg_id++;
    auto [c, d] = new_segment_codec();
    segment_row row;
    auto w = create_segment(id, c, d.get(), row);
    if (!w)
      return w.err();
    auto f = fs.open_readable(seg_path(id));
    if (!f)
      return f.err();
    auto& s = segs[id];
    s.row = row;
    s.file = *f;
    s.committed = false;
    s.key_id = kr ? kr->active() : 0;
    active_w = std::move(*w);
    active_id = id;
    return {};
  }

  /// Starts a rewrite job over every committed, sealed segment that `pick`
  /// selects (the caller holds `mu` and has checked that no job runs).
  template <class Pick>
  compaction_progress launch_job(Pick pick) {
    auto j = std::make_unique<job_state>();
    for (auto& [id, s] : segs) {
      if (!s.committed || s.compacting || id == active_id || !s.file || !pick(s))
        continue;
      j->inputs.push_back(id);
      j->prog.bytes_total += s.row.end_offset;
    }
    j->prog.segments_total = static_cast<uint32_t>(j->inputs.size());
    if (j->inputs.empty()) {
      j->prog.done = true;
      return j->prog;
    }
    for (auto id : j->inputs)
      segs[id].compacting = true;
    j->start_ns = clk.mono_ns();
    job_cancel.store(false);
    auto prog = j->prog;
    job = std::move(j);
    totals.compaction_runs++;
    return prog;
  }

  void seal_active() {
    if (!active_w)
      return;
    (void)active_w->close();
    active_w.reset();
    auto i = segs.find(active_id);
    if (i != segs.end() && !i->second.committed)
      (void)drop_uncommitted(active_id);
    active_id = 0;
    ++sealed_since_dict;
  }

  status drop_uncommitted(uint64_t id) {
    segs.erase(id);
    return fs.remove(seg_path(id));
  }

  /// Compresses `raw` with the segment's codec into header + payload.
  /// With encryption at rest the compressed frame is sealed (compression
  /// before encryption); the blob is bound to its segment, file offset, raw
  /// length and record count.
  status make_block(codec_context& ctx, codec_id c, const dictionary* d, const std::string& raw,
                    uint32_t records, std::string& out, const crypto::keyring* sk = nullptr,
                    uint64_t seg_id = 0, uint64_t offset = 0) {
    std::string payload;
    if (auto st = ctx.compress(c, cfg.level, d, raw, payload); !st)
      return st;
    if (sk != nullptr)
      payload = sk->seal(block_aad(seg_id, offset, raw.size(), records), payload);
    block_header h;
    h.stored_len = static_cast<uint32_t>(payload.size());
    h.raw_len = static_cast<uint32_t>(raw.size());
    h.records = records;
    h.payload_crc = crc32(payload);
    out = encode(h);
    out += payload;
    return {};
  }

  /// Expiry of entries still in the pending block: the key's latest write
  /// expired, so it leaves the pending block, and an older copy in the index
  /// goes too (it must not reappear). Under mu. Returns how many were removed.
  result<size_t> expire_pending(const std::vector<std::string>& keys) {
    if (keys.empty())
      return size_t{0};
    write_txn w;
    if (auto st = begin_write(w); !st)
      return st.err();
    dirty_rows dirty(*this);
    std::vector<bool> was_indexed;
    for (auto& k : keys) {
      auto ik = ikey(k);
      auto old = index_get(w.t, ik);
      if (!old)
        return old.err();
      was_indexed.push_back(old->has_value());
      if (*old) {
        dirty.unlive(**old);
        if (auto st = index_del(w.t, ik); !st)
          return st.err();
      }
    }
    if (auto st = dirty.write(w.t); !st)
      return st.err();
    if (auto st = w.commit(); !st)
      return st.err();
    dirty.apply();
    for (size_t i = 0; i < keys.size(); ++i) {
      pending_pos.erase(keys[i]);
      if (!was_indexed[i] && pending_new > 0)
        --pending_new; // it was counted as a new entry when put
    }
    if (pending_pos.empty()) {
      pending.clear();
      pending_raw = 0;
      pending_new = 0;
    }
    counters.expirations += keys.size();
    return keys.size();
  }

  uint64_t stored_bytes_locked() const {
    uint64_t total = 0;
    for (auto& [id, s] : segs)
      total += s.row.end_offset;
    return total;
  }

  status flush_locked() {
    if (pending.empty())
      return {};
    // Segments span at most segment_max_age_ms of archive time, so that
    // retention by age (which works on whole segments) is that precise.
    if (active_w && cfg.segment_max_age_ms != 0 &&
        segs[active_id].row.created_ms + cfg.segment_max_age_ms <= clk.now_ms())
      seal_active();
    if (auto st = ensure_active(); !st)
      return st;
    auto& seg = segs[active_id];
    const dictionary* d = nullptr;
    if (seg.row.dict_id != 0) {
      auto di = dicts.find(seg.row.dict_id);
      d = di != dicts.end() ? di->second.get() : nullptr;
    }
    // Only the newest pending write of each key goes out.
    std::string raw;
    raw.reserve(pending_raw);
    struct out_rec {
      size_t idx;
      uint32_t off;
      uint32_t len;
    };
    std::vector<out_rec> recs;
    for (size_t i = 0; i < pending.size(); ++i) {
      auto pp = pending_pos.find(pending[i].key);
      if (pp == pending_pos.end() || pp->second != i)
        continue; // superseded by a later put, or expired while pending
      auto off = raw.size();
      append_record(raw, pending[i]);
      recs.push_back({i, static_cast<uint32_t>(off), static_cast<uint32_t>(raw.size() - off)});
    }
    std::string block;
    uint64_t block_off = active_w->size();
    if (auto st = make_block(wctx, seg.row.codec, d, raw, static_cast<uint32_t>(recs.size()), block,
                             seg.key_id != 0 ? kr.get() : nullptr, active_id, block_off);
        !st)
      return st;
    auto st = active_w->append(block);
    if (st && cfg.durable)
      st = active_w->sync();
    if (!st) {
      // The segment's tail is now unknown: seal it (its committed part stays
      // good, open() cuts the tail) and keep the pending entries for a retry.
      seal_active();
      return st;
    }
    fs.crash_point("flush.block_synced");
    auto now = clk.now_ms();
    write_txn w;
    if (auto s2 = begin_write(w); !s2)
      return s2;
    dirty_rows dirty(*this);
    auto* row = dirty.get(active_id);
    for (auto& r : recs) {
      const entry& e = pending[r.idx];
      auto ik = ikey(e.key);
      auto old = index_get(w.t, ik);
      if (!old)
        return old.err();
      if (*old)
        dirty.unlive(**old);
      location l;
      l.segment = active_id;
      l.block_offset = block_off;
      l.block_len = static_cast<uint32_t>(block.size());
      l.record_offset = r.off;
      l.record_len = r.len;
      l.expiry_ms = e.expiry_ms;
      l.ver = e.ver;
      l.flags = e.flags;
      if (auto s2 = index_put(w.t, ik, l); !s2)
        return s2;
      row = dirty.get(active_id);
      row->entries++;
      row->live_entries++;
      row->live_raw_bytes += r.len;
      row->max_expiry_ms = e.expiry_ms == 0 ? never : std::max(row->max_expiry_ms, e.expiry_ms);
    }
    row->raw_bytes += raw.size();
    row->end_offset = active_w->size();
    row->blocks++;
    if (row->oldest_ms == 0)
      row->oldest_ms = now;
    row->newest_ms = now;
    if (auto s2 = dirty.write(w.t); !s2)
      return s2;
    if (auto s2 = meta_put(w.t, "next_segment", next_seg_id); !s2)
      return s2;
    if (auto s2 = w.commit(); !s2)
      return s2;
    fs.crash_point("flush.index_committed");
    dirty.apply();
    pending.clear();
    pending_pos.clear();
    pending_raw = 0;
    pending_new = 0;
    if (segs[active_id].row.end_offset >= cfg.segment_bytes)
      seal_active();
    return {};
  }

  // -- reading ----------------------------------------------------------------------

  void report_corrupt(uint64_t seg, uint64_t off, const std::string& msg) {
    if (corrupt_set.insert({seg, off}).second)
      corrupt.push_back(corrupt_block{seg, off, msg});
    auto i = segs.find(seg);
    if (i != segs.end())
      i->second.has_corrupt = true;
  }

  /// Reads, checks and decompresses one block.
  static std::string block_aad(uint64_t seg, uint64_t off, uint64_t raw_len, uint32_t records) {
    std::string a = "kura-l4 block ";
    format::put_u64(a, seg);
    format::put_u64(a, off);
    format::put_u64(a, raw_len);
    format::put_u32(a, records);
    return a;
  }

  /// Where a block is and how to open it: `sk` (non-null for a sealed
  /// segment, i.e. one whose header names a key id) and the segment id.
  struct block_seal {
    const crypto::keyring* sk = nullptr;
    uint64_t seg = 0;
    bool sealed = false; ///< the segment says its blocks are sealed
  };

  /// Reads, checks and decompresses one block.
  static status read_block(const readable_file& f, uint64_t off, uint64_t len, codec_id c,
                           const dictionary* d, codec_context& ctx, std::string& raw,
                           block_header* hdr_out, const block_seal& bs) {
    if (len < block_header_size)
      return {errc::corrupt, "block length below header size"};
    std::string buf(len, '\0');
    if (auto st = f.read_at(off, len, buf.data()); !st)
      return st;
    auto h = decode_block_header(buf);
    if (!h)
      return h.err();
    if (block_header_size + uint64_t{h->stored_len} != len)
      return {errc::corrupt, "block length differs from the index"};
    std::string_view payload(buf.data() + block_header_size, h->stored_len);
    if (crc32(payload) != h->payload_crc)
      return {errc::corrupt, "block payload checksum mismatch"};
    if (hdr_out != nullptr)
      *hdr_out = *h;
    if (bs.sealed != (bs.sk != nullptr))
      return bs.sealed ? status{errc::corrupt, "sealed segment in an unencrypted archive"}
                       : status{errc::corrupt, "unencrypted segment in an encrypted archive"};
    if (bs.sk != nullptr) {
      std::string frame;
      if (auto st = bs.sk->open(block_aad(bs.seg, off, h->raw_len, h->records), payload, frame);
          !st)
        return st;
      return ctx.decompress(c, d, frame, h->raw_len, raw);
    }
    return ctx.decompress(c, d, payload, h->raw_len, raw);
  }

  // -- dropping segments ---------------------------------------------------------------

  /// Removes a whole segment: its keys leave the index (those still pointing
  /// into it), its row goes, then its file. Called without mu, on a segment
  /// reserved (compacting = true) by the caller: its blocks are read and
  /// decompressed without the lock, which is taken only for the index commit.
  /// Keys in corrupt blocks stay as dangling index entries that read as
  /// misses (unknown segment) and that sweep_expired() collects.
  result<uint64_t> drop_segment(uint64_t id) {
    std::shared_ptr<readable_file> file;
    std::shared_ptr<const dictionary> dict;
    std::shared_ptr<const crypto::keyring> sk;
    segment_row row;
    bool sealed = false;
    {
      std::lock_guard<std::mutex> g(mu);
      if (id == active_id)
        seal_active();
      auto si = segs.find(id);
      if (si == segs.end())
        return uint64_t{0};
      file = si->second.file;
      row = si->second.row;
      sk = kr;
      sealed = si->second.key_id != 0;
      if (row.dict_id != 0 && dicts.count(row.dict_id) != 0)
        dict = dicts[row.dict_id];
    }
    std::vector<std::string> keys;
    if (file && row.live_entries > 0) {
      codec_context ctx;
      uint64_t off = segment_header_size;
      std::string hb(block_header_size, '\0'), raw;
      while (off + block_header_size <= row.end_offset) {
        if (!file->read_at(off, hb.size(), hb.data()))
          break;
        auto h = decode_block_header(hb);
        if (!h)
          break; // block boundaries lost: the rest is collected lazily
        uint64_t len = block_header_size + uint64_t{h->stored_len};
        if (read_block(*file, off, len, row.codec, dict.get(), ctx, raw, nullptr,
                       block_seal{sk.get(), id, sealed})) {
          size_t p = 0;
          while (p < raw.size()) {
            size_t next;
            auto k = record_key(raw, p, &next);
            if (!k)
              break;
            keys.push_back(ikey(*k));
            p = next;
          }
        }
        off += len;
      }
    }
    uint64_t dropped = 0;
    {
      std::lock_guard<std::mutex> g(mu);
      if (segs.count(id) == 0)
        return uint64_t{0}; // cleared meanwhile
      write_txn w;
      if (auto st = begin_write(w); !st)
        return st.err();
      for (auto& ik : keys) {
        auto l = index_get(w.t, ik);
        if (!l)
          return l.err();
        if (*l && (*l)->segment == id) {
          if (auto st = index_del(w.t, ik); !st)
            return st.err();
          ++dropped;
        }
      }
      if (auto st = row_del(w.t, id); !st)
        return st.err();
      if (auto st = w.commit(); !st)
        return st.err();
      fs.crash_point("drop.index_committed");
      segs.erase(id);
    }
    if (auto st = fs.remove(seg_path(id)); !st)
      return st.err();
    fs.crash_point("drop.file_removed");
    std::lock_guard<std::mutex> g(mu);
    release_dict_if_unused(row.dict_id);
    return dropped;
  }

  // -- compaction ----------------------------------------------------------------------

  status job_open_input(job_state& j) {
    std::lock_guard<std::mutex> g(mu);
    j.in_id = j.inputs[j.idx];
    auto i = segs.find(j.in_id);
    j.in_open = true;
    j.in_corrupt = false;
    if (i == segs.end() || !i->second.file) {
      j.in_file.reset();
      j.in_end = 0;
      j.cursor = 0;
      if (i != segs.end())
        j.in_corrupt = true; // unreadable file: leave it alone
      return {};
    }
    j.in_file = i->second.file;
    j.in_end = i->second.row.end_offset;
    j.cursor = segment_header_size;
    j.prog.bytes_done += segment_header_size;
    j.in_codec = i->second.row.codec;
    j.in_kr = kr;
    j.in_sealed = i->second.key_id != 0;
    j.in_oldest = i->second.row.oldest_ms;
    j.in_newest = i->second.row.newest_ms;
    j.in_dict.reset();
    if (i->second.row.dict_id != 0) {
      auto d = dicts.find(i->second.row.dict_id);
      if (d == dicts.end())
        j.in_corrupt = true, j.cursor = j.in_end; // cannot decode: leave it alone
      else
        j.in_dict = d->second;
    }
    return {};
  }

  status job_write_out_block(job_state& j) {
    if (j.out_raw.empty())
      return {};
    if (!j.out_w) {
      std::lock_guard<std::mutex> g(mu);
      j.out_id = next_seg_id++;
      auto [c, d] = new_segment_codec();
      j.out_codec = c;
      j.out_dict = d;
      auto w = create_segment(j.out_id, c, d.get(), j.out_row);
      if (!w)
        return w.err();
      j.out_kr = kr;
      j.out_w = std::move(*w);
      j.out_committed = false;
      j.out_path = seg_path(j.out_id);
      j.out_row.oldest_ms = j.in_oldest;
      j.out_row.newest_ms = j.in_newest;
    }
    std::string block;
    uint64_t off = j.out_w->size();
    if (auto st = make_block(j.ctx, j.out_codec, j.out_dict.get(), j.out_raw,
                             static_cast<uint32_t>(j.out_block.size()), block, j.out_kr.get(),
                             j.out_id, off);
        !st)
      return st;
    if (auto st = j.out_w->append(block); !st)
      return st;
    for (auto& r : j.out_block) {
      r.new_loc.segment = j.out_id;
      r.new_loc.block_offset = off;
      r.new_loc.block_len = static_cast<uint32_t>(block.size());
      j.relocs.push_back(std::move(r));
    }
    j.out_row.raw_bytes += j.out_raw.size();
    j.out_row.entries += j.out_block.size();
    j.out_row.blocks++;
    j.out_row.end_offset = j.out_w->size();
    j.prog.bytes_written += block.size();
    j.out_block.clear();
    j.out_raw.clear();
    fs.crash_point("compact.block_written");
    return {};
  }

  /// Makes the output durable and switches the finished input's live keys to it.
  status job_switch(job_state& j) {
    if (auto st = job_write_out_block(j); !st)
      return st;
    if (j.out_w && cfg.durable)
      if (auto st = j.out_w->sync(); !st)
        return st;
    fs.crash_point("compact.output_synced");
    bool delete_input = false;
    {
      std::lock_guard<std::mutex> g(mu);
      auto in = segs.find(j.in_id);
      if (job_cancel.load() || in == segs.end()) {
        j.relocs.clear();
        j.expired.clear();
        return {};
      }
      write_txn w;
      if (auto st = begin_write(w); !st)
        return st;
      dirty_rows dirty(*this);
      segment_row out_row = j.out_row;
      if (j.out_w) {
        // The output's own row carries what is in the file; live counts are
        // what the switch below really moved.
        auto cur = segs.find(j.out_id);
        if (cur != segs.end()) {
          out_row.live_entries = cur->second.row.live_entries;
          out_row.live_raw_bytes = cur->second.row.live_raw_bytes;
        }
        out_row.oldest_ms = std::min(out_row.oldest_ms, j.in_oldest);
        out_row.newest_ms = std::max(out_row.newest_ms, j.in_newest);
      }
      uint64_t moved = 0;
      for (auto& r : j.relocs) {
        auto cur = index_get(w.t, r.ik);
        if (!cur)
          return cur.err();
        if (!*cur || !(*cur)->same_place(r.old_loc))
          continue; // overwritten or erased meanwhile: the copy is dead
        location l = **cur;
        l.segment = r.new_loc.segment;
        l.block_offset = r.new_loc.block_offset;
        l.block_len = r.new_loc.block_len;
        l.record_offset = r.new_loc.record_offset;
        if (auto st = index_put(w.t, r.ik, l); !st)
          return st;
        dirty.unlive(**cur);
        out_row.live_entries++;
        out_row.live_raw_bytes += l.record_len;
        out_row.max_expiry_ms =
            l.expiry_ms == 0 ? never : std::max(out_row.max_expiry_ms, l.expiry_ms);
        ++moved;
      }
      uint64_t expired = 0;
      for (auto& [ik, old] : j.expired) {
        auto cur = index_get(w.t, ik);
        if (!cur)
          return cur.err();
        if (*cur && (*cur)->same_place(old)) {
          if (auto st = index_del(w.t, ik); !st)
            return st;
          dirty.unlive(old);
          ++expired;
        }
      }
      delete_input = !j.in_corrupt && !in->second.has_corrupt;
      if (j.out_w)
        if (auto st = row_put(w.t, j.out_id, out_row); !st)
          return st;
      if (delete_input) {
        if (auto st = row_del(w.t, j.in_id); !st)
          return st;
        dirty.rows.erase(j.in_id);
      }
      if (auto st = dirty.write(w.t); !st)
        return st;
      if (auto st = meta_put(w.t, "next_segment", next_seg_id); !st)
        return st;
      if (auto st = w.commit(); !st)
        return st;
      dirty.apply();
      if (j.out_w) {
        auto& os = segs[j.out_id];
        os.row = out_row;
        os.committed = true;
        os.compacting = true;
        // as its header says (create_segment): without it, reads of the moved
        // records took the sealed blocks for plaintext ("unencrypted segment in
        // an encrypted archive") until a restart read the header
        os.key_id = j.out_kr ? j.out_kr->active() : 0;
        if (!os.file) {
          auto f = fs.open_readable(j.out_path);
          if (f)
            os.file = *f;
          else
            os.file_error = f.err().to_string();
        }
        j.out_committed = true;
        j.out_row = out_row;
      }
      j.prog.entries_moved += moved;
      counters.expirations += expired;
      if (delete_input)
        segs.erase(j.in_id);
      else if (in != segs.end())
        in->second.compacting = false;
    }
    fs.crash_point("compact.index_switched");
    j.relocs.clear();
    j.expired.clear();
    if (delete_input) {
      if (auto st = fs.remove(seg_path(j.in_id)); !st)
        return st;
      fs.crash_point("compact.input_removed");
      if (cfg.durable)
        (void)fs.sync_dir(cfg.path);
      std::lock_guard<std::mutex> g(mu);
      release_unused_dicts();
    }
    if (j.out_w && j.out_row.end_offset >= cfg.segment_bytes)
      job_seal_output(j);
    return {};
  }

  void job_seal_output(job_state& j) {
    if (!j.out_w)
      return;
    (void)j.out_w->close();
    j.out_w.reset();
    std::lock_guard<std::mutex> g(mu);
    if (!j.out_committed) {
      (void)fs.remove(j.out_path);
    } else {
      auto i = segs.find(j.out_id);
      if (i != segs.end())
        i->second.compacting = false;
    }
    j.out_dict.reset();
    j.out_row = segment_row{};
    j.out_committed = false;
  }

  /// Processes one block of the current input.
  status job_block(job_state& j, uint64_t& done_bytes) {
    std::string hb(block_header_size, '\0');
    if (j.cursor + block_header_size > j.in_end) {
      j.cursor = j.in_end;
      return {};
    }
    if (auto st = j.in_file->read_at(j.cursor, hb.size(), hb.data()); !st)
      return st;
    auto h = decode_block_header(hb);
    if (!h) {
      // Block boundaries are lost from here on: keep the segment as it is.
      std::lock_guard<std::mutex> g(mu);
      report_corrupt(j.in_id, j.cursor, h.err().message);
      j.in_corrupt = true;
      done_bytes += j.in_end - j.cursor;
      j.prog.bytes_done += j.in_end - j.cursor;
      j.cursor = j.in_end;
      return {};
    }
    uint64_t len = block_header_size + uint64_t{h->stored_len};
    std::string raw;
    auto st = read_block(*j.in_file, j.cursor, len, j.in_codec, j.in_dict.get(), j.ctx, raw,
                         nullptr, block_seal{j.in_kr.get(), j.in_id, j.in_sealed});
    if (!st) {
      if (st.code() != errc::corrupt)
        return st;
      std::lock_guard<std::mutex> g(mu);
      report_corrupt(j.in_id, j.cursor, st.err().message);
      j.in_corrupt = true;
    } else {
      if (auto s2 = j.rtxn.begin(menv); !s2)
        return s2;
      auto now = clk.now_ms();
      size_t p = 0;
      while (p < raw.size()) {
        size_t next;
        auto k = record_key(raw, p, &next);
        if (!k)
          break;
        auto ik = ikey(*k);
        auto cur = index_get(j.rtxn.t, ik);
        if (!cur) {
          j.rtxn.end();
          return cur.err();
        }
        if (*cur && (*cur)->segment == j.in_id && (*cur)->block_offset == j.cursor &&
            (*cur)->record_offset == p) {
          const location& l = **cur;
          if (l.expiry_ms != 0 && l.expiry_ms <= now) {
            j.expired.emplace_back(ik, l);
          } else {
            reloc r;
            r.ik = std::move(ik);
            r.old_loc = l;
            r.new_loc.record_offset = static_cast<uint32_t>(j.out_raw.size());
            r.new_loc.record_len = static_cast<uint32_t>(next - p);
            j.out_raw.append(raw, p, next - p);
            j.out_block.push_back(std::move(r));
          }
        }
        p = next;
      }
      j.rtxn.end();
      if (j.out_raw.size() >= cfg.block_bytes)
        if (auto s2 = job_write_out_block(j); !s2)
          return s2;
    }
    j.cursor += len;
    done_bytes += len;
    j.prog.bytes_done += len;
    throttle_hook t;
    {
      std::lock_guard<std::mutex> g(mu);
      t = throttle; // set_throttle() may be called from another thread
    }
    if (t)
      t(len); // may sleep: never under the lock
    return {};
  }

  void job_cleanup(job_state& j) {
    if (j.out_w)
      job_seal_output(j);
    std::lock_guard<std::mutex> g(mu);
    for (auto id : j.inputs) {
      auto i = segs.find(id);
      if (i != segs.end())
        i->second.compacting = false;
    }
    release_unused_dicts();
  }
};

// -- archive ---------------------------------------------------------------------------

archive::archive(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

archive::~archive() {
  if (impl_->job) {
    impl_->job_cleanup(*impl_->job);
    impl_->job.reset();
  }
  std::lock_guard<std::mutex> g(impl_->mu);
  (void)impl_->flush_locked();
  if (impl_->active_w)
    (void)impl_->active_w->close();
}

result<std::unique_ptr<archive>> archive::open(archive_config cfg, const clock& clk) {
  if (cfg.path.empty())
    return error{errc::invalid_argument, "archive path is empty"};
  if (cfg.block_bytes == 0 || cfg.segment_bytes == 0)
    return error{errc::invalid_argument, "block_bytes and segment_bytes must be > 0"};
  if ((cfg.codec == codec_id::zstd || cfg.codec == codec_id::zstd_dict) &&
      (cfg.level < 1 || cfg.level > 22))
    return error{errc::invalid_argument, "zstd level must be 1..22"};
  auto p = std::make_unique<impl>(std::move(cfg), clk);
  if (auto st = p->load(); !st)
    return st.err();
  return std::unique_ptr<archive>(new archive(std::move(p)));
}

const archive_config& archive::config() const {
  return impl_->cfg;
}

result<std::optional<entry>> archive::get(std::string_view key, uint64_t now_ms, bool) {
  auto& m = *impl_;
  std::shared_ptr<readable_file> file;
  std::shared_ptr<const dictionary> dict;
  std::shared_ptr<const crypto::keyring> sk;
  bool sealed = false;
  codec_id codec;
  location loc;
  {
    std::lock_guard<std::mutex> g(m.mu);
    auto pi = m.pending_pos.find(std::string(key));
    if (pi != m.pending_pos.end()) {
      const entry& e = m.pending[pi->second];
      if (e.expired(now_ms)) {
        auto n = m.expire_pending({e.key}); // lazy expiry, as for flushed entries
        if (!n)
          return n.err();
        m.counters.misses++;
        return std::optional<entry>{};
      }
      m.counters.hits++;
      return std::optional<entry>{e};
    }
    auto ik = m.ikey(key);
    if (auto st = m.rtxn.begin(m.menv); !st)
      return st.err();
    auto l = m.index_get(m.rtxn.t, ik);
    m.rtxn.end();
    if (!l)
      return l.err();
    if (!*l) {
      m.counters.misses++;
      return std::optional<entry>{};
    }
    loc = **l;
    auto si = m.segs.find(loc.segment);
    bool expired = loc.expiry_ms != 0 && loc.expiry_ms <= now_ms;
    bool dangling = si == m.segs.end();
    if (expired || dangling) {
      // Lazy expiry: the entry leaves the index now.
      write_txn w;
      if (auto st = m.begin_write(w); !st)
        return st.err();
      impl::dirty_rows dirty(m);
      if (!dangling)
        dirty.unlive(loc);
      if (auto st = m.index_del(w.t, ik); !st)
        return st.err();
      if (auto st = dirty.write(w.t); !st)
        return st.err();
      if (auto st = w.commit(); !st)
        return st.err();
      dirty.apply();
      if (expired)
        m.counters.expirations++;
      m.counters.misses++;
      return std::optional<entry>{};
    }
    auto& seg = si->second;
    if (m.cfg.ttl_days != 0 && seg.row.newest_ms + m.ttl_ms() <= now_ms) {
      m.counters.misses++; // past retention; enforce_retention() removes it
      return std::optional<entry>{};
    }
    if (!seg.file)
      return error{errc::corrupt, "archive segment " + std::to_string(loc.segment) +
                                      " unreadable: " + seg.file_error};
    file = seg.file;
    codec = seg.row.codec;
    sk = m.kr;
    sealed = seg.key_id != 0;
    if (seg.row.dict_id != 0) {
      auto di = m.dicts.find(seg.row.dict_id);
      if (di == m.dicts.end())
        return error{errc::corrupt, "archive segment " + std::to_string(loc.segment) +
                                        " needs dictionary " + std::to_string(seg.row.dict_id) +
                                        ", which is missing"};
      dict = di->second;
    }
  }
  thread_local codec_context ctx;
  std::string raw;
  auto st = impl::read_block(*file, loc.block_offset, loc.block_len, codec, dict.get(), ctx, raw,
                             nullptr, impl::block_seal{sk.get(), loc.segment, sealed});
  result<entry> e = st ? format::decode_record(raw, loc.record_offset) : result<entry>(st.err());
  if (e && e->key != key)
    e = error{errc::corrupt, "record key differs from the index"};
  std::lock_guard<std::mutex> g(m.mu);
  if (!e) {
    if (e.code() != errc::corrupt)
      return e.err();
    auto msg = "archive segment " + std::to_string(loc.segment) + " block at offset " +
               std::to_string(loc.block_offset) + ": " + e.err().message;
    m.report_corrupt(loc.segment, loc.block_offset, msg);
    return error{errc::corrupt, msg};
  }
  m.counters.hits++;
  return std::optional<entry>{std::move(*e)};
}

status archive::put(entry e, uint64_t now_ms) {
  auto& m = *impl_;
  if (auto st = m.cfg.lim.check(e); !st)
    return st;
  if (format::record_size(e) > m.cfg.max_bytes)
    return {errc::out_of_space, "entry of " + std::to_string(e.payload_bytes()) +
                                    " bytes exceeds the archive's max size"};
  std::unique_lock<std::mutex> lk(m.mu);
  if (m.training_due())
    (void)m.train(lk); // a failure leaves the current dictionary (or plain zstd)
  m.counters.puts++;
  if (e.expired(now_ms)) {
    // Already expired: nothing to keep, but an older copy must not survive.
    bool had = m.pending_pos.count(e.key) != 0;
    if (had)
      if (auto st = m.flush_locked(); !st)
        return st;
    write_txn w;
    if (auto st = m.begin_write(w); !st)
      return st;
    auto ik = m.ikey(e.key);
    auto old = m.index_get(w.t, ik);
    if (!old)
      return old.err();
    if (*old) {
      impl::dirty_rows dirty(m);
      dirty.unlive(**old);
      if (auto st = m.index_del(w.t, ik); !st)
        return st;
      if (auto st = dirty.write(w.t); !st)
        return st;
      if (auto st = w.commit(); !st)
        return st;
      dirty.apply();
    }
    return {};
  }
  auto it = m.pending_pos.find(e.key);
  if (it == m.pending_pos.end()) {
    if (auto st = m.rtxn.begin(m.menv); !st)
      return st;
    auto old = m.index_get(m.rtxn.t, m.ikey(e.key));
    m.rtxn.end();
    if (old && !*old)
      m.pending_new++;
  }
  if (m.pending.empty())
    m.pending_since_ms = now_ms;
  m.sample(e);
  m.pending_raw += format::record_size(e);
  m.pending_pos[e.key] = m.pending.size();
  m.pending.push_back(std::move(e));
  // The pending block is bounded by block_bytes and, for many tiny entries,
  // by the index memory budget (its key map lives in memory).
  if (m.pending_raw >= m.cfg.block_bytes ||
      m.pending.size() * 96 + m.pending_raw >= m.cfg.index_memory_bytes / 2) {
    if (auto st = m.flush_locked(); !st)
      return st;
    // Over max_bytes: the oldest segments go now (the lock is released: the
    // drop reads the victims without it). Between two flushes the archive can
    // exceed max_bytes by at most one block.
    if (m.stored_bytes_locked() > m.cfg.max_bytes) {
      lk.unlock();
      auto rep = enforce_retention(now_ms);
      if (!rep)
        return rep.err();
    }
  }
  return {};
}

result<bool> archive::erase(std::string_view key) {
  auto& m = *impl_;
  std::lock_guard<std::mutex> g(m.mu);
  if (m.pending_pos.count(std::string(key)) != 0)
    if (auto st = m.flush_locked(); !st)
      return st.err();
  write_txn w;
  if (auto st = m.begin_write(w); !st)
    return st.err();
  auto ik = m.ikey(key);
  auto old = m.index_get(w.t, ik);
  if (!old)
    return old.err();
  if (!*old)
    return false;
  impl::dirty_rows dirty(m);
  dirty.unlive(**old);
  if (auto st = m.index_del(w.t, ik); !st)
    return st.err();
  if (auto st = dirty.write(w.t); !st)
    return st.err();
  if (auto st = w.commit(); !st)
    return st.err();
  dirty.apply();
  m.counters.erases++;
  return true;
}

// -- last-writer-wins and iteration -------------------------------------------------

result<std::optional<version>> archive::held_version(std::string_view key) {
  auto& m = *impl_;
  std::lock_guard<std::mutex> g(m.mu);
  auto pi = m.pending_pos.find(std::string(key));
  if (pi != m.pending_pos.end())
    return std::optional<version>{m.pending[pi->second].ver};
  if (auto st = m.rtxn.begin(m.menv); !st)
    return st.err();
  auto l = m.index_get(m.rtxn.t, m.ikey(key));
  m.rtxn.end();
  if (!l)
    return l.err();
  if (!*l)
    return std::optional<version>{};
  return std::optional<version>{(*l)->ver};
}

result<bool> archive::apply(entry e, uint64_t now_ms) {
  if (e.is_tombstone())
    return error{errc::invalid_argument, "the archive (L4) holds no tombstones; apply "
                                         "deletes to L3"};
  auto held = held_version(e.key);
  if (!held)
    return held.err();
  if (*held && !(**held < e.ver))
    return false;
  if (auto st = put(std::move(e), now_ms); !st)
    return st.err();
  return true;
}

result<std::optional<std::string>>
archive::scan_keys(std::string_view after, size_t max,
                   const std::function<void(const key_info&)>& f) {
  auto& m = *impl_;
  std::vector<key_info> out;
  std::optional<std::string> resume;
  {
    std::lock_guard<std::mutex> g(m.mu);
    if (auto st = m.flush_locked(); !st)
      return st.err();
    if (auto st = m.rtxn.begin(m.menv); !st)
      return st.err();
    MDB_cursor* c = nullptr;
    int rc = mdb_cursor_open(m.rtxn.t, m.dbi_index, &c);
    if (rc != 0) {
      m.rtxn.end();
      return error{errc::io_error, std::string("archive index cursor: ") + mdb_strerror(rc)};
    }
    std::string from = after.empty() ? std::string() : m.ikey(after);
    MDB_val k = as_val(from), v;
    rc = from.empty() ? mdb_cursor_get(c, &k, &v, MDB_FIRST)
                      : mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    if (rc == 0 && !from.empty() && as_view(k) == from)
      rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    error failed{};
    bool bad = false;
    std::map<std::pair<uint64_t, uint64_t>, std::string> blocks;
    for (size_t n = 0; rc == 0 && n < max; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT), ++n) {
      std::string_view ik = as_view(k);
      auto l = format::decode_location(as_view(v));
      if (!l || ik.empty()) {
        failed = error{errc::corrupt, "archive index row is unreadable"};
        bad = true;
        break;
      }
      key_info ki;
      ki.ver = l->ver;
      ki.expiry_ms = l->expiry_ms;
      ki.flags = l->flags;
      if (ik[0] == 0) {
        ki.key.assign(ik.substr(1));
      } else {
        // A hashed long key: the full key is only in the record.
        auto si = m.segs.find(l->segment);
        if (si == m.segs.end() || !si->second.file)
          continue; // dangling: sweep_expired removes it
        std::shared_ptr<const dictionary> dict;
        if (si->second.row.dict_id != 0) {
          auto di = m.dicts.find(si->second.row.dict_id);
          if (di == m.dicts.end())
            continue;
          dict = di->second;
        }
        // A hashed key (long, or every key when encrypted): the full key is
        // only in the record. Blocks read in this call are kept, so keys
        // that share a block cost one read and one decryption.
        thread_local codec_context ctx;
        auto bk = std::make_pair(l->segment, l->block_offset);
        auto cached = blocks.find(bk);
        status st;
        if (cached == blocks.end()) {
          std::string raw;
          st = impl::read_block(*si->second.file, l->block_offset, l->block_len,
                                si->second.row.codec, dict.get(), ctx, raw, nullptr,
                                impl::block_seal{m.kr.get(), l->segment, si->second.key_id != 0});
          if (st) {
            if (blocks.size() >= 64)
              blocks.erase(blocks.begin());
            cached = blocks.emplace(bk, std::move(raw)).first;
          }
        }
        auto rec =
            st ? format::decode_record(cached->second, l->record_offset) : result<entry>(st.err());
        if (!rec)
          continue; // a corrupt block: its keys read as errors, get() reports them
        ki.key = std::move(rec->key);
      }
      if (l->record_len > format::record_header_size + ki.key.size())
        ki.value_bytes = l->record_len - format::record_header_size - ki.key.size();
      resume = ki.key;
      out.push_back(std::move(ki));
    }
    mdb_cursor_close(c);
    m.rtxn.end();
    if (bad)
      return failed;
    if (rc != 0 && rc != MDB_NOTFOUND)
      return error{errc::io_error, std::string("archive index scan: ") + mdb_strerror(rc)};
    if (rc == MDB_NOTFOUND)
      resume.reset();
    else if (!resume)
      resume = std::string(after);
  }
  for (const auto& ki : out)
    f(ki);
  return resume;
}

size_t archive::sweep_expired(uint64_t now_ms, size_t budget) {
  auto& m = *impl_;
  std::lock_guard<std::mutex> g(m.mu);
  if (budget == 0)
    return 0;
  // The pending block first (it is small: at most one block of entries).
  size_t pending_removed = 0;
  {
    std::vector<std::string> keys;
    for (auto& [k, idx] : m.pending_pos)
      if (keys.size() < budget && m.pending[idx].expired(now_ms))
        keys.push_back(k);
    auto n = m.expire_pending(keys);
    if (!n)
      return 0;
    pending_removed = *n;
    budget -= pending_removed;
    if (budget == 0)
      return pending_removed;
  }
  write_txn w;
  if (!m.begin_write(w))
    return pending_removed;
  MDB_cursor* c;
  if (mdb_cursor_open(w.t, m.dbi_index, &c) != 0)
    return 0;
  impl::dirty_rows dirty(m);
  MDB_val k = as_val(m.sweep_cursor), v;
  int rc = m.sweep_cursor.empty() ? mdb_cursor_get(c, &k, &v, MDB_FIRST)
                                  : mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
  size_t removed = 0, examined = 0, expired = 0;
  bool wrapped = false;
  // Examine at most 8x the budget so one call stays bounded even when little
  // has expired.
  while (removed < budget && examined < budget * 8) {
    if (rc == MDB_NOTFOUND) {
      if (wrapped)
        break;
      wrapped = true;
      rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
      continue;
    }
    if (rc != 0)
      break;
    ++examined;
    auto l = format::decode_location(as_view(v));
    bool dangling = l && m.segs.count(l->segment) == 0;
    bool is_expired = l && l->expiry_ms != 0 && l->expiry_ms <= now_ms;
    if (!l || dangling || is_expired) {
      if (l && !dangling)
        dirty.unlive(*l);
      if (mdb_cursor_del(c, 0) != 0)
        break;
      ++removed;
      if (is_expired)
        ++expired;
      rc = mdb_cursor_get(c, &k, &v, MDB_GET_CURRENT);
      if (rc == EINVAL || rc == MDB_NOTFOUND)
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
      continue;
    }
    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
  }
  m.sweep_cursor = rc == 0 ? std::string(as_view(k)) : std::string();
  mdb_cursor_close(c);
  if (!dirty.write(w.t) || !w.commit())
    return pending_removed;
  dirty.apply();
  m.counters.expirations += expired;
  return pending_removed + removed;
}

status archive::clear() {
  auto& m = *impl_;
  m.job_cancel.store(true);
  std::lock_guard<std::mutex> g(m.mu);
  m.pending.clear();
  m.pending_pos.clear();
  m.pending_raw = 0;
  m.pending_new = 0;
  m.seal_active();
  write_txn w;
  if (auto st = m.begin_write(w); !st)
    return st;
  if (int rc = mdb_drop(w.t, m.dbi_index, 0); rc != 0)
    return mdb_error(rc, "clear index");
  std::vector<uint64_t> ids;
  for (auto& [id, s] : m.segs)
    ids.push_back(id);
  for (auto id : ids)
    if (auto st = m.row_del(w.t, id); !st)
      return st;
  if (auto st = w.commit(); !st)
    return st;
  for (auto id : ids) {
    m.segs.erase(id);
    (void)m.fs.remove(m.seg_path(id));
  }
  m.release_unused_dicts();
  m.sweep_cursor.clear();
  return {};
}

tier_stats archive::stats() const {
  auto& m = *impl_;
  std::lock_guard<std::mutex> g(m.mu);
  tier_stats s = m.counters;
  uint64_t live = 0, bytes = 0;
  for (auto& [id, seg] : m.segs) {
    live += seg.row.live_entries;
    bytes += seg.row.end_offset;
  }
  for (auto& [id, d] : m.dicts)
    bytes += d->bytes().size();
  MDB_envinfo info;
  MDB_stat st;
  if (mdb_env_info(m.menv, &info) == 0 && mdb_env_stat(m.menv, &st) == 0)
    bytes += (info.me_last_pgno + 1) * st.ms_psize;
  s.entries = live + m.pending_new;
  s.bytes = bytes + m.pending_raw;
  s.capacity_bytes = m.cfg.max_bytes;
  return s;
}

status archive::flush() {
  std::lock_guard<std::mutex> g(impl_->mu);
  return impl_->flush_locked();
}

status archive::maybe_flush(uint64_t now_ms) {
  std::lock_guard<std::mutex> g(impl_->mu);
  if (impl_->pending.empty() || now_ms < impl_->pending_since_ms + impl_->cfg.flush_max_ms)
    return {};
  return impl_->flush_locked();
}

result<retention_report> archive::enforce_retention(uint64_t now_ms) {
  auto& m = *impl_;
  struct victim {
    uint64_t id;
    bool by_ttl;
    bool by_size;
    uint64_t live;
    uint64_t bytes;
  };
  std::vector<victim> victims;
  {
    // Choose under the lock and reserve the victims (compacting = true, so
    // that compaction and a concurrent retention leave them alone); the reads
    // needed to drop them happen without the lock.
    std::lock_guard<std::mutex> g(m.mu);
    uint64_t total = 0;
    for (auto& [id, s] : m.segs)
      total += s.row.end_offset;
    std::vector<std::pair<uint64_t, uint64_t>> by_age; // (oldest_ms, id)
    for (auto& [id, s] : m.segs) {
      if (!s.committed || s.compacting)
        continue;
      bool too_old = m.cfg.ttl_days != 0 && s.row.newest_ms + m.ttl_ms() <= now_ms;
      // Every entry's own expiry passed, or nothing in it is live any more.
      bool all_expired =
          s.row.max_expiry_ms != 0 && s.row.max_expiry_ms != never && s.row.max_expiry_ms <= now_ms;
      bool empty = s.row.live_entries == 0 && id != m.active_id;
      if (too_old || all_expired || empty) {
        victims.push_back({id, too_old, false, s.row.live_entries, s.row.end_offset});
        total -= s.row.end_offset;
      } else {
        by_age.emplace_back(s.row.oldest_ms, id);
      }
    }
    // Size: the oldest data goes first.
    std::sort(by_age.begin(), by_age.end());
    for (auto& [oldest, id] : by_age) {
      if (total <= m.cfg.max_bytes)
        break;
      auto& s = m.segs[id];
      victims.push_back({id, false, true, s.row.live_entries, s.row.end_offset});
      total -= s.row.end_offset;
    }
    for (auto& v : victims) {
      if (v.id == m.active_id)
        m.seal_active(); // no new writes into a segment about to go
      m.segs[v.id].compacting = true;
    }
  }
  retention_report rep;
  for (size_t i = 0; i < victims.size(); ++i) {
    auto& v = victims[i];
    auto n = m.drop_segment(v.id);
    if (!n) {
      std::lock_guard<std::mutex> g(m.mu);
      for (size_t k = i; k < victims.size(); ++k) {
        auto s = m.segs.find(victims[k].id);
        if (s != m.segs.end())
          s->second.compacting = false;
      }
      return n.err();
    }
    std::lock_guard<std::mutex> g(m.mu);
    rep.segments_dropped++;
    rep.entries_dropped += *n;
    rep.bytes_freed += v.bytes;
    if (v.by_ttl) {
      m.totals.segments_dropped_ttl++;
      m.counters.expirations += v.live;
    } else if (v.by_size) {
      m.totals.segments_dropped_size++;
      m.counters.evictions += v.live;
    }
  }
  return rep;
}

result<compaction_progress> archive::begin_compaction(double threshold) {
  auto& m = *impl_;
  std::lock_guard<std::mutex> g(m.mu);
  if (m.job)
    return error{errc::invalid_argument, "a compaction is already running"};
  if (threshold < 0)
    threshold = m.cfg.compact_threshold;
  // A sparse active segment is sealed so that it can be compacted too.
  if (m.active_w) {
    auto& row = m.segs[m.active_id].row;
    if (m.segs[m.active_id].committed && row.raw_bytes > 0 &&
        static_cast<double>(row.live_raw_bytes) < threshold * static_cast<double>(row.raw_bytes))
      m.seal_active();
  }
  return m.launch_job([threshold](const impl::seg_state& s) {
    return !s.has_corrupt && s.row.raw_bytes != 0 &&
           static_cast<double>(s.row.live_raw_bytes) / static_cast<double>(s.row.raw_bytes) <
               threshold;
  });
}

// -- encryption at rest ----------------------------------------------------------------

bool archive::encrypted() const {
  std::lock_guard<std::mutex> g(impl_->mu);
  return impl_->kr != nullptr;
}

status archive::rotate_keys(std::shared_ptr<const crypto::keyring> keys) {
  auto& m = *impl_;
  std::lock_guard<std::mutex> g(m.mu);
  if (!m.kr)
    return {errc::invalid_argument,
            "archive " + m.cfg.path + " is not encrypted (no key file at start)"};
  if (!keys)
    return {errc::invalid_argument, "no keyring"};
  auto sec = crypto::open_secret(*keys, m.sealed_secrets, "archive " + m.cfg.path);
  if (!sec)
    return sec.err();
  if (sec->secret != m.secret->secret)
    return {errc::bad_key, "archive " + m.cfg.path + ": the new key file opens another secret"};
  // Blocks of the pending block go out under the old key, in the old segment.
  if (auto st = m.flush_locked(); !st)
    return st;
  m.seal_active();
  auto old = m.kr;
  m.kr = keys;
  // Dictionaries are small: re-seal each file under the new key now.
  for (auto& [did, d] : m.dicts) {
    auto tmp = m.dict_path(did) + ".tmp";
    auto w = m.fs.new_writable(tmp);
    status st = w ? (*w)->append(keys->seal(impl::dict_aad(did), d->bytes())) : w.err();
    if (st)
      st = (*w)->sync();
    if (st)
      st = (*w)->close();
    if (st)
      st = m.fs.rename(tmp, m.dict_path(did));
    if (!st) {
      m.kr = old;
      return st;
    }
  }
  if (auto st = m.fs.sync_dir(m.cfg.path); !st) {
    m.kr = old;
    return st;
  }
  write_txn w;
  if (auto st = m.begin_write(w); !st) {
    m.kr = old;
    return st;
  }
  if (auto st = m.put_secret(w.t); !st) {
    m.kr = old;
    return st;
  }
  if (auto st = w.commit(); !st) {
    m.kr = old;
    return st;
  }
  return {};
}

result<compaction_progress> archive::begin_reseal() {
  auto& m = *impl_;
  std::lock_guard<std::mutex> g(m.mu);
  if (!m.kr)
    return error{errc::invalid_argument,
                 "archive " + m.cfg.path + " is not encrypted (no key file at start)"};
  if (m.job)
    return error{errc::invalid_argument, "a compaction is already running"};
  uint32_t active = m.kr->active();
  if (m.active_w && m.segs[m.active_id].key_id != active)
    m.seal_active();
  return m.launch_job([active](const impl::seg_state& s) { return s.key_id != active; });
}

result<std::vector<uint32_t>> archive::drop_old_secrets() {
  auto& m = *impl_;
  std::lock_guard<std::mutex> g(m.mu);
  if (!m.kr)
    return std::vector<uint32_t>{};
  std::set<uint32_t> needed{m.kr->active()};
  for (auto& [id, s] : m.segs)
    if (s.key_id != 0)
      needed.insert(s.key_id);
  write_txn w;
  if (auto st = m.begin_write(w); !st)
    return st.err();
  std::vector<uint32_t> drop;
  for (auto& kv : m.sealed_secrets)
    if (needed.count(kv.first) == 0)
      drop.push_back(kv.first);
  for (auto id : drop) {
    std::string name = "secret." + std::to_string(id);
    MDB_val k = as_val(name);
    int rc = mdb_del(w.t, m.dbi_meta, &k, nullptr);
    if (rc != 0 && rc != MDB_NOTFOUND)
      return mdb_error(rc, "drop sealed secret");
  }
  if (auto st = w.commit(); !st)
    return st.err();
  for (auto id : drop)
    m.sealed_secrets.erase(id);
  return std::vector<uint32_t>(needed.begin(), needed.end());
}

result<compaction_progress> archive::compaction_step(uint64_t budget_bytes) {
  auto& m = *impl_;
  if (!m.job)
    return error{errc::invalid_argument, "no compaction is running"};
  auto& j = *m.job;
  auto finish = [&]() -> compaction_progress {
    m.job_cleanup(j);
    j.prog.done = true;
    auto prog = j.prog;
    std::lock_guard<std::mutex> g(m.mu);
    m.totals.compaction_bytes_in += prog.bytes_done;
    m.totals.compaction_bytes_out += prog.bytes_written;
    m.totals.compaction_ns += m.clk.mono_ns() - j.start_ns;
    m.job.reset();
    return prog;
  };
  uint64_t done = 0;
  while (true) {
    if (m.job_cancel.load() || j.idx >= j.inputs.size())
      return finish();
    if (!j.in_open)
      if (auto st = m.job_open_input(j); !st)
        return st.err();
    if (!j.in_file || j.cursor >= j.in_end) {
      if (j.in_file)
        if (auto st = m.job_switch(j); !st) {
          auto err = st.err();
          finish();
          return err;
        }
      {
        std::lock_guard<std::mutex> g(m.mu);
        auto i = m.segs.find(j.in_id);
        if (i != m.segs.end())
          i->second.compacting = false;
      }
      j.in_open = false;
      j.in_file.reset();
      j.in_dict.reset();
      j.idx++;
      j.prog.segments_done++;
      if (j.idx >= j.inputs.size())
        return finish();
      if (done >= budget_bytes)
        return j.prog;
      continue;
    }
    if (done >= budget_bytes && done > 0)
      return j.prog;
    if (auto st = m.job_block(j, done); !st) {
      auto err = st.err();
      finish();
      return err;
    }
  }
}

void archive::abort_compaction() {
  auto& m = *impl_;
  if (!m.job)
    return;
  m.job_cleanup(*m.job);
  std::lock_guard<std::mutex> g(m.mu);
  m.job.reset();
}

result<compaction_progress> archive::compact(double threshold) {
  auto p = begin_compaction(threshold);
  if (!p || p->done)
    return p;
  while (true) {
    auto s = compaction_step(4 << 20);
    if (!s || s->done)
      return s;
  }
}

void archive::set_throttle(throttle_hook hook) {
  std::lock_guard<std::mutex> g(impl_->mu);
  impl_->throttle = std::move(hook);
}

result<uint32_t> archive::train_dictionary_now() {
  std::unique_lock<std::mutex> lk(impl_->mu);
  if (impl_->cfg.codec != codec_id::zstd_dict)
    return error{errc::invalid_argument, "the archive's codec does not use dictionaries"};
  return impl_->train(lk);
}

archive_info archive::inspect() const {
  auto& m = *impl_;
  std::lock_guard<std::mutex> g(m.mu);
  archive_info a = m.totals;
  a.segments.clear();
  a.dictionaries.clear();
  std::map<uint32_t, uint32_t> dict_use;
  for (auto& [id, s] : m.segs) {
    if (!s.committed)
      continue;
    segment_info si;
    si.id = id;
    si.codec = s.row.codec;
    si.level = s.row.level;
    si.dict_id = s.row.dict_id;
    si.created_ms = s.row.created_ms;
    si.oldest_ms = s.row.oldest_ms;
    si.newest_ms = s.row.newest_ms;
    si.stored_bytes = s.row.end_offset;
    si.raw_bytes = s.row.raw_bytes;
    si.entries = s.row.entries;
    si.live_entries = s.row.live_entries;
    si.live_raw_bytes = s.row.live_raw_bytes;
    si.blocks = s.row.blocks;
    si.live_fraction = s.row.raw_bytes == 0 ? 1.0
                                            : static_cast<double>(s.row.live_raw_bytes) /
                                                  static_cast<double>(s.row.raw_bytes);
    si.active = id == m.active_id;
    si.compacting = s.compacting;
    a.stored_bytes += si.stored_bytes;
    a.raw_bytes += si.raw_bytes;
    a.live_raw_bytes += si.live_raw_bytes;
    a.entries += si.live_entries;
    if (si.live_entries > 0 && (a.oldest_entry_ms == 0 || si.oldest_ms < a.oldest_entry_ms))
      a.oldest_entry_ms = si.oldest_ms;
    if (si.dict_id != 0)
      dict_use[si.dict_id]++;
    a.segments.push_back(si);
  }
  for (auto& [did, d] : m.dicts)
    a.dictionaries.push_back(
        dictionary_info{did, d->bytes().size(), dict_use[did], did == m.current_dict});
  a.corrupt_blocks = m.corrupt;
  a.entries += m.pending_new;
  a.pending_entries = m.pending.size();
  a.index_memory_bytes = m.pending.size() * 96 + m.pending_raw + m.sample_bytes +
                         m.segs.size() * (sizeof(impl::seg_state) + 64);
  return a;
}

// -- erasure (KURA.ERASE) ---------------------------------------------------------------

result<compaction_progress>
archive::begin_erase_rewrite(const std::function<bool(std::string_view)>& erased,
                             bool retire_dictionaries) {
  auto& m = *impl_;
  std::lock_guard<std::mutex> g(m.mu);
  if (m.job)
    return error{errc::invalid_argument, "a compaction is already running"};
  if (m.training)
    return error{errc::invalid_argument, "a dictionary is being trained; retry the erasure"};
  bool purged = false;
  for (auto it = m.samples.begin(); it != m.samples.end();) {
    size_t next = 0;
    auto k = record_key(*it, 0, &next);
    if (!k || erased(*k)) {
      m.sample_bytes -= std::min(m.sample_bytes, it->size());
      it = m.samples.erase(it);
      purged = true;
    } else {
      ++it;
    }
  }
  bool retire = retire_dictionaries || purged;
  if (retire && m.current_dict != 0) {
    write_txn w;
    if (auto st = m.begin_write(w); !st)
      return st.err();
    if (auto st = m.meta_put(w.t, "current_dict", 0); !st)
      return st.err();
    if (auto st = w.commit(); !st)
      return st.err();
    m.current_dict = 0;
  }
  if (m.active_w) {
    auto& a = m.segs[m.active_id];
    if (a.committed && (a.row.live_raw_bytes < a.row.raw_bytes || (retire && a.row.dict_id != 0)))
      m.seal_active();
  }
  m.release_unused_dicts();
  return m.launch_job([retire](const impl::seg_state& s) {
    return !s.has_corrupt && s.row.raw_bytes != 0 &&
           (s.row.live_raw_bytes < s.row.raw_bytes || (retire && s.row.dict_id != 0));
  });
}

status archive::compact_index() {
  auto& m = *impl_;
  std::lock_guard<std::mutex> g(m.mu);
  if (m.job)
    return status{errc::invalid_argument, "a compaction is running"};
  const std::string dir = m.cfg.path + "/index";
  const std::string tmp = m.cfg.path + "/index.erase-tmp";
  auto clean_tmp = [&] {
    (void)::unlink((tmp + "/data.mdb").c_str());
    (void)::unlink((tmp + "/lock.mdb").c_str());
    (void)::rmdir(tmp.c_str());
  };
  clean_tmp();
  if (::mkdir(tmp.c_str(), 0755) != 0)
    return status{errc::io_error, "cannot create " + tmp + ": " + std::strerror(errno)};
  // a rebuilt copy: no free pages, no deleted rows' bytes in page gaps, no
  // deleted keys left as branch separators (tiers/lmdb_wipe.hpp)
  if (auto st = lmdb_rebuild_copy(m.menv, tmp); !st) {
    clean_tmp();
    return st;
  }
  if (m.rtxn.t != nullptr) {
    mdb_txn_abort(m.rtxn.t);
    m.rtxn.t = nullptr;
    m.rtxn.live = false;
  }
  mdb_env_close(m.menv);
  m.menv = nullptr;
  status moved;
  if (::rename((tmp + "/data.mdb").c_str(), (dir + "/data.mdb").c_str()) != 0)
    moved = status{errc::io_error, "cannot replace " + dir + "/data.mdb: " + std::strerror(errno)};
  clean_tmp();
  if (moved)
    (void)m.fs.sync_dir(dir);
  // reopen with the keyring in use (a rotation may have replaced the one of open())
  auto opened_with = m.cfg.keys;
  m.cfg.keys = m.kr;
  auto st = m.open_index();
  m.cfg.keys = opened_with;
  if (!st)
    return st;
  return moved;
}

} // namespace kura::archive
