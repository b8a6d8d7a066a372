// L3's part of KURA.ERASE (node/erase.hpp): removing records for good.
//
// Removing a record from LMDB is not enough for an erasure: LMDB leaves the
// bytes of a deleted node in the unused middle of its page, puts pages it no
// longer needs on its free list, and keeps a deleted key as a separator in a
// branch page until a rebalance happens to replace it -- all still in
// data.mdb. mdb_env_copy2's compacting copy drops only the free pages (it
// copies the live pages as they are; the byte-level test in
// tests/node/erase_integration_test.cpp found erased keys in both the gaps and
// the branch separators of such a copy). So compact_rewrite() writes a
// rebuilt copy (lmdb_rebuild_copy: every record inserted in order into a new
// environment, so branch separators are live keys) and zeroes the gaps of its
// pages (wipe_lmdb_page_gaps). The copy is opened once as an L3 environment of
// its own (the full verification of open()), then renamed over data.mdb, and
// the environment is reopened on it. The old file's blocks are freed by the
// file system (they are in no file any more; wiping the disk device itself is
// out of scope, see docs/security.md).
//
// The same is done with and without encryption at rest: a removed sealed
// record could only be read with the key, but the key stays (it seals every
// other record), so cryptographic shredding would need a key per record.
#include "tiers/l3_lmdb.hpp"
#include "tiers/l3_verify.hpp"
#include "tiers/lmdb_wipe.hpp"

#include <lmdb.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace kura {

namespace {

status sys_error(const std::string& what) {
  return status{errc::io_error, what + ": " + std::strerror(errno)};
}

status fsync_path(const std::string& path, bool dir) {
  int fd = ::open(path.c_str(), (dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0)
    return sys_error("cannot open " + path);
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0)
    return sys_error("cannot fsync " + path);
  return {};
}

void remove_dir(const std::string& dir) {
  (void)::unlink((dir + "/data.mdb").c_str());
  (void)::unlink((dir + "/lock.mdb").c_str());
  (void)::rmdir(dir.c_str());
}

/// Writes a rebuilt copy of the environment at `from` into the empty
/// directory `to`. The environment must not be open in this process.
status copy_compact(const std::string& from, const std::string& to) {
  MDB_env* env = nullptr;
  int rc = mdb_env_create(&env);
  if (rc != 0)
    return status{errc::io_error, std::string{"cannot create an LMDB handle: "} + mdb_strerror(rc)};
  mdb_env_set_maxdbs(env, 8);
  rc = mdb_env_open(env, from.c_str(), MDB_RDONLY | MDB_NOTLS, 0644);
  if (rc != 0) {
    mdb_env_close(env);
    return status{errc::io_error, "cannot open " + from + " to copy it: " + mdb_strerror(rc)};
  }
  auto st = lmdb_rebuild_copy(env, to);
  mdb_env_close(env);
  return st;
}

} // namespace

status lmdb_rebuild_copy(void* src_env, const std::string& dst_dir) {
  auto* src = static_cast<MDB_env*>(src_env);
  auto fail = [](int rc, const std::string& what) {
    return status{errc::io_error, "rebuilding an LMDB copy: " + what + ": " + mdb_strerror(rc)};
  };
  MDB_envinfo info{};
  mdb_env_info(src, &info);
  MDB_env* dst = nullptr;
  int rc = mdb_env_create(&dst);
  if (rc != 0)
    return fail(rc, "create");
  struct closer {
    MDB_env* e;
    ~closer() { mdb_env_close(e); }
  } close_dst{dst};
  mdb_env_set_maxdbs(dst, 16);
  mdb_env_set_mapsize(dst, info.me_mapsize);
  if ((rc = mdb_env_open(dst, dst_dir.c_str(), MDB_NOTLS | MDB_NOSYNC, 0644)) != 0)
    return fail(rc, "open " + dst_dir);
  MDB_txn* rt = nullptr;
  if ((rc = mdb_txn_begin(src, nullptr, MDB_RDONLY, &rt)) != 0)
    return fail(rc, "read transaction");
  struct aborter {
    MDB_txn* t;
    ~aborter() { mdb_txn_abort(t); }
  } abort_rt{rt};
  MDB_dbi unnamed;
  if ((rc = mdb_dbi_open(rt, nullptr, 0, &unnamed)) != 0)
    return fail(rc, "main database");
  std::vector<std::string> names;
  {
    MDB_cursor* c = nullptr;
    if ((rc = mdb_cursor_open(rt, unnamed, &c)) != 0)
      return fail(rc, "cursor");
    MDB_val k, v;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
      names.emplace_back(static_cast<const char*>(k.mv_data), k.mv_size);
    mdb_cursor_close(c);
  }
  for (auto& name : names) {
    MDB_dbi sd;
    if ((rc = mdb_dbi_open(rt, name.c_str(), 0, &sd)) != 0)
      return fail(rc, "database " + name + " (a plain record in the main database?)");
    unsigned flags = 0;
    mdb_dbi_flags(rt, sd, &flags);
    MDB_txn* wt = nullptr;
    if ((rc = mdb_txn_begin(dst, nullptr, 0, &wt)) != 0)
      return fail(rc, "write transaction");
    MDB_dbi dd;
    if ((rc = mdb_dbi_open(wt, name.c_str(), (flags & ~unsigned{MDB_CREATE}) | MDB_CREATE, &dd)) !=
        0) {
      mdb_txn_abort(wt);
      return fail(rc, "create " + name);
    }
    MDB_cursor* c = nullptr;
    if ((rc = mdb_cursor_open(rt, sd, &c)) != 0) {
      mdb_txn_abort(wt);
      return fail(rc, "cursor");
    }
    MDB_val k, v;
    size_t in_txn = 0;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
      int prc = mdb_put(wt, dd, &k, &v, MDB_APPEND);
      if (prc != 0) {
        mdb_cursor_close(c);
        mdb_txn_abort(wt);
        return fail(prc, "copy a record of " + name);
      }
      if (++in_txn == 20000) { // bounded dirty pages per transaction
        if ((prc = mdb_txn_commit(wt)) != 0) {
          mdb_cursor_close(c);
          return fail(prc, "commit");
        }
        in_txn = 0;
        if ((prc = mdb_txn_begin(dst, nullptr, 0, &wt)) != 0) {
          mdb_cursor_close(c);
          return fail(prc, "write transaction");
        }
      }
    }
    mdb_cursor_close(c);
    if (rc != MDB_NOTFOUND) {
      mdb_txn_abort(wt);
      return fail(rc, "read " + name);
    }
    if ((rc = mdb_txn_commit(wt)) != 0)
      return fail(rc, "commit");
  }
  if ((rc = mdb_env_sync(dst, 1)) != 0)
    return fail(rc, "sync");
  return wipe_lmdb_page_gaps(dst_dir + "/data.mdb");
}

status wipe_lmdb_page_gaps(const std::string& file) {
  auto meta = l3_verify::read_meta(file);
  if (!meta)
    return meta.err();
  const uint32_t psize = meta->psize;
  int fd = ::open(file.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0)
    return sys_error("cannot open " + file);
  struct stat sb {};
  if (::fstat(fd, &sb) != 0) {
    ::close(fd);
    return sys_error("cannot stat " + file);
  }
  // LMDB's page header (64-bit builds): pgno u64, pad u16, flags u16, then
  // lower u16 + upper u16 (branch and leaf pages) or the page count u32
  // (overflow pages). Offsets are from the start of the page.
  constexpr uint16_t p_branch = 0x01, p_leaf = 0x02, p_overflow = 0x04, p_leaf2 = 0x20;
  constexpr size_t header = 16;
  const uint64_t pages = static_cast<uint64_t>(sb.st_size) / psize;
  std::string page(psize, '\0');
  status st;
  for (uint64_t pg = 2; pg < pages && st.ok();) { // 0 and 1 are the meta pages
    auto off = static_cast<off_t>(pg * psize);
    if (::pread(fd, page.data(), psize, off) != static_cast<ssize_t>(psize)) {
      st = sys_error("cannot read " + file);
      break;
    }
    auto u16 = [&](size_t at) {
      return static_cast<uint16_t>(static_cast<uint8_t>(page[at]) |
                                   static_cast<uint8_t>(page[at + 1]) << 8);
    };
    uint16_t flags = u16(10);
    if (flags & p_overflow) {
      uint32_t n = static_cast<uint32_t>(u16(12)) | static_cast<uint32_t>(u16(14)) << 16;
      pg += n == 0 ? 1 : n;
      continue;
    }
    if ((flags & (p_branch | p_leaf)) && !(flags & p_leaf2)) {
      uint16_t lower = u16(12), upper = u16(14);
      if (lower >= header && lower <= upper && upper <= psize && upper > lower) {
        bool dirty = false;
        for (size_t i = lower; i < upper; ++i)
          dirty = dirty || page[i] != 0;
        if (dirty) {
          std::fill(page.begin() + lower, page.begin() + upper, '\0');
          if (::pwrite(fd, page.data() + lower, upper - lower, off + lower) !=
              static_cast<ssize_t>(upper - lower))
            st = sys_error("cannot write " + file);
        }
      }
    }
    ++pg;
  }
  if (st.ok() && ::fsync(fd) != 0)
    st = sys_error("cannot fsync " + file);
  ::close(fd);
  return st;
}

result<uint64_t> l3_lmdb::erase_where(const std::function<bool(std::string_view)>& match) {
  std::vector<std::string> found;
  std::string after;
  while (true) {
    auto r = scan(after, 4096, [&](const entry& e) {
      if (match(e.key))
        found.push_back(e.key);
    });
    if (!r)
      return r.err();
    if (!*r)
      break;
    after = std::move(**r);
  }
  for (auto& k : found)
    if (auto r = erase(k); !r)
      return r.err();
  if (auto s = sync(); !s)
    return s.err();
  return static_cast<uint64_t>(found.size());
}

result<uint64_t> l3_lmdb::erase_keys(const std::vector<std::string>& keys) {
  uint64_t n = 0;
  for (auto& k : keys) {
    auto held = get_versioned(k);
    if (!held)
      return held.err();
    if (!*held)
      continue;
    if (auto r = erase(k); !r)
      return r.err();
    ++n;
  }
  if (auto s = sync(); !s)
    return s.err();
  return n;
}

status l3_lmdb::compact_rewrite() {
  if (auto s = sync(); !s)
    return s;
  l3_config cfg = current_config();
  const clock& clk = clock_source();
  const std::string dir = cfg.path;
  const std::string tmp = dir + "/erase-compact.tmp";
  remove_dir(tmp); // left over by a crash in the middle of an earlier erase
  if (::mkdir(tmp.c_str(), 0755) != 0)
    return sys_error("cannot create " + tmp);
  // One open environment per path and process (an LMDB rule): close ours.
  close_environment();
  auto reopen = [&](const status& why) -> status {
    auto r = open(cfg, clk);
    if (!r)
      return status{errc::io_error,
                    why.message() + "; reopening L3 failed too: " + r.err().message};
    std::swap(impl_, (*r)->impl_);
    return why;
  };
  auto st = copy_compact(dir, tmp);
  if (st) {
    // the copy must open as an L3 environment before it replaces the file
    l3_config probe = cfg;
    probe.path = tmp;
    probe.verify_on_open = true;
    auto r = open(probe, clk);
    if (!r)
      st = status{errc::corrupt,
                  "the compacted copy of " + dir + " does not open: " + r.err().message};
  }
  if (!st) {
    remove_dir(tmp);
    return reopen(st);
  }
  if (::rename((tmp + "/data.mdb").c_str(), (dir + "/data.mdb").c_str()) != 0) {
    auto e = sys_error("cannot replace " + dir + "/data.mdb");
    remove_dir(tmp);
    return reopen(e);
  }
  remove_dir(tmp);
  if (auto s = fsync_path(dir, true); !s)
    return reopen(s);
  auto r = open(cfg, clk);
  if (!r)
    return status{errc::io_error, "L3 " + dir + " does not reopen after its compacting rewrite: " +
                                      r.err().message};
  std::swap(impl_, (*r)->impl_);
  return {};
}

} // namespace kura
