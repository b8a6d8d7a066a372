#include "tiers/wal.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace kura {

// -- crc32c ----------------------------------------------------------------------------

namespace {

struct crc_table {
  uint32_t t[8][256];
  crc_table() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k)
        c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
      t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; ++i)
      for (int s = 1; s < 8; ++s)
        t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
  }
};

uint32_t crc32c_soft(const unsigned char* p, size_t n, uint32_t c) {
  static const crc_table tab;
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    w ^= c;
    c = tab.t[7][w & 0xff] ^ tab.t[6][(w >> 8) & 0xff] ^ tab.t[5][(w >> 16) & 0xff] ^
        tab.t[4][(w >> 24) & 0xff] ^ tab.t[3][(w >> 32) & 0xff] ^ tab.t[2][(w >> 40) & 0xff] ^
        tab.t[1][(w >> 48) & 0xff] ^ tab.t[0][w >> 56];
    p += 8;
    n -= 8;
  }
  while (n-- > 0)
    c = (c >> 8) ^ tab.t[0][(c ^ *p++) & 0xff];
  return c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t crc32c_hw(const unsigned char* p, size_t n, uint32_t c) {
  uint64_t c64 = c;
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    c64 = __builtin_ia32_crc32di(c64, w);
    p += 8;
    n -= 8;
  }
  c = static_cast<uint32_t>(c64);
  while (n-- > 0)
    c = __builtin_ia32_crc32qi(c, *p++);
  return c;
}
bool have_sse42() {
  static const bool yes = __builtin_cpu_supports("sse4.2");
  return yes;
}
#endif

// -- layout ------------------------------------------------------------------------------
//
// Segment file: "kura-wal" (8 bytes), format u32 LE (1), flags u32 LE (bit 0:
// sealed), then records. Record: payload length u32 LE, CRC-32C of the payload
// u32 LE, payload. Plain payload: kind u8, entry flags u8, batch u64 LE,
// expiry ms u64 LE, hlc u64 LE, node u32 LE, key length u32 LE, key, value. Sealed payload: one
// sealed blob (tiers/seal.hpp, aad "kura-wal") of the plain payload.

constexpr char magic[8] = {'k', 'u', 'r', 'a', '-', 'w', 'a', 'l'};
constexpr uint32_t format = 1;
constexpr uint32_t flag_sealed = 1;
constexpr size_t file_header = 16;
constexpr size_t rec_header = 8;
constexpr size_t plain_fixed = 1 + 1 + 8 + 8 + 8 + 4 + 4;
constexpr std::string_view seal_aad = "kura-wal";
constexpr size_t kick_bytes = 1u << 20;

void put_le(char* p, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; ++i)
    p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
uint64_t get_le(const char* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i)
    v |= static_cast<uint64_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}

std::string sys_error(const std::string& what, const std::string& path) {
  return what + " " + path + ": " + std::strerror(errno);
}

status write_all(int fd, const char* p, size_t n, const std::string& path) {
  while (n > 0) {
    auto w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return status{errno == ENOSPC ? errc::out_of_space : errc::io_error,
                    sys_error("WAL write to", path)};
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return {};
}

status sync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return status{errc::io_error, sys_error("cannot open WAL directory", dir)};
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0)
    return status{errc::io_error, sys_error("cannot fsync WAL directory", dir)};
  return {};
}

std::string segment_name(uint64_t id) {
  char b[40];
  std::snprintf(b, sizeof b, "wal-%016llx.log", static_cast<unsigned long long>(id));
  return b;
}

bool parse_segment_name(const std::string& n, uint64_t& id) {
  if (n.size() != 4 + 16 + 4 || n.compare(0, 4, "wal-") != 0 || n.compare(20, 4, ".log") != 0)
    return false;
  id = 0;
  for (size_t i = 4; i < 20; ++i) {
    char c = n[i];
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0)
      return false;
    id = (id << 4) | static_cast<uint64_t>(d);
  }
  return true;
}

status make_dir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    return status{errc::io_error, sys_error("cannot create WAL directory", dir)};
  return {};
}

/// Decodes a plain payload.
status decode_payload(std::string_view p, wal_record& r) {
  if (p.size() < plain_fixed)
    return status{errc::corrupt, "WAL record shorter than its header"};
  auto kind = static_cast<uint8_t>(p[0]);
  if (kind < wal_record::put || kind > wal_record::clear)
    return status{errc::corrupt, "WAL record of unknown kind " + std::to_string(kind)};
  r.kind = static_cast<wal_record::kind_t>(kind);
  r.e.flags = static_cast<uint8_t>(p[1]);
  r.batch = get_le(p.data() + 2, 8);
  r.e.expiry_ms = get_le(p.data() + 10, 8);
  r.e.ver.hlc = get_le(p.data() + 18, 8);
  r.e.ver.node = static_cast<uint32_t>(get_le(p.data() + 26, 4));
  uint64_t klen = get_le(p.data() + 30, 4);
  if (klen > p.size() - plain_fixed)
    return status{errc::corrupt, "WAL record key runs past the record"};
  r.e.key.assign(p.data() + plain_fixed, klen);
  r.e.value.assign(p.data() + plain_fixed + klen, p.size() - plain_fixed - klen);
  return {};
}

} // namespace

uint32_t crc32c(std::string_view data, uint32_t crc) {
  auto* p = reinterpret_cast<const unsigned char*>(data.data());
  crc = ~crc;
#if defined(__x86_64__)
  if (have_sse42())
    return ~crc32c_hw(p, data.size(), crc);
#endif
  return ~crc32c_soft(p, data.size(), crc);
}

// -- segments and replay -------------------------------------------------------------------

std::vector<std::string> wal::segment_files(const std::string& dir) {
  std::vector<std::pair<uint64_t, std::string>> found;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (auto* de = ::readdir(d)) {
      uint64_t id = 0;
      std::string n = de->d_name;
      if (parse_segment_name(n, id))
        found.emplace_back(id, n);
    }
    ::closedir(d);
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> out;
  for (auto& f : found)
    out.push_back(dir + "/" + f.second);
  return out;
}

result<wal_replay_stats> wal::replay(const wal_config& cfg,
                                     const std::function<status(wal_record&&)>& f) {
  wal_replay_stats st;
  std::string plain;
  for (auto& path : segment_files(cfg.dir)) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      return error{errc::io_error, sys_error("cannot open WAL segment", path)};
    std::string data;
    char tmp[1 << 16];
    for (;;) {
      auto n = ::read(fd, tmp, sizeof tmp);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0) {
        ::close(fd);
        return error{errc::io_error, sys_error("cannot read WAL segment", path)};
      }
      if (n == 0)
        break;
      data.append(tmp, static_cast<size_t>(n));
    }
    ::close(fd);
    ++st.segments;
    if (data.size() < file_header) {
      // a segment cut before its header was complete holds no record
      st.cut_bytes += data.size();
      if (st.cut_reason.empty() && !data.empty())
        st.cut_reason = path + ": header cut at " + std::to_string(data.size()) + " bytes";
      continue;
    }
    if (std::memcmp(data.data(), magic, sizeof magic) != 0 || get_le(data.data() + 8, 4) != format)
      return error{errc::foreign_file,
                   path + " is not a kura WAL segment of format " + std::to_string(format)};
    bool sealed = (get_le(data.data() + 12, 4) & flag_sealed) != 0;
    if (sealed && !cfg.keys)
      return error{errc::bad_key, path + " is sealed: set kura.security.encryption-key-file"};
    if (!sealed && cfg.keys)
      return error{errc::corrupt, path + " holds plaintext records but an encryption key is set"};
    size_t off = file_header;
    while (off < data.size()) {
      std::string why;
      size_t len = 0;
      if (data.size() - off < rec_header) {
        why = "record header cut";
      } else {
        len = get_le(data.data() + off, 4);
        uint32_t crc = static_cast<uint32_t>(get_le(data.data() + off + 4, 4));
        if (len > data.size() - off - rec_header)
          why = "record of " + std::to_string(len) + " bytes cut";
        else if (crc32c(std::string_view(data.data() + off + rec_header, len)) != crc)
          why = "record checksum mismatch";
      }
      wal_record r;
      if (why.empty()) {
        std::string_view payload(data.data() + off + rec_header, len);
        status ds;
        if (sealed) {
          ds = cfg.keys->open(seal_aad, payload, plain);
          if (ds.ok())
            ds = decode_payload(plain, r);
        } else {
          ds = decode_payload(payload, r);
        }
        if (ds.code() == errc::bad_key)
          return ds.err();
        if (!ds.ok())
          why = ds.message();
      }
      if (!why.empty()) {
        st.cut_bytes += data.size() - off;
        if (st.cut_reason.empty())
          st.cut_reason = path + " at offset " + std::to_string(off) + ": " + why;
        break;
      }
      if (auto fs = f(std::move(r)); !fs.ok())
        return fs.err();
      ++st.records;
      st.bytes += rec_header + len;
      off += rec_header + len;
    }
  }
  return st;
}

status wal::remove_segments(const std::string& dir) {
  auto files = segment_files(dir);
  for (auto& p : files)
    if (::unlink(p.c_str()) != 0 && errno != ENOENT)
      return status{errc::io_error, sys_error("cannot remove WAL segment", p)};
  if (!files.empty())
    return sync_dir(dir);
  return {};
}

// -- the log ---------------------------------------------------------------------------------

wal::wal(wal_config cfg, const clock& clk) : cfg_(std::move(cfg)), clk_(clk) {}

result<std::unique_ptr<wal>> wal::open(wal_config cfg, const clock& clk) {
  if (cfg.dir.empty())
    return error{errc::invalid_argument, "WAL directory not set"};
  if (auto st = make_dir(cfg.dir); !st.ok())
    return st.err();
  std::unique_ptr<wal> w(new wal(std::move(cfg), clk));
  for (auto& p : segment_files(w->cfg_.dir)) {
    uint64_t id = 0;
    auto slash = p.rfind('/');
    if (parse_segment_name(p.substr(slash + 1), id)) {
      struct stat sb {};
      // not replayed by this process: kept until remove_segments()
      segment s{id, p, ::stat(p.c_str(), &sb) == 0 ? static_cast<uint64_t>(sb.st_size) : 0,
                UINT64_MAX};
      w->closed_.push_back(s);
      w->next_id_ = std::max(w->next_id_, id + 1);
    }
  }
  {
    std::lock_guard<std::mutex> g(w->file_mtx_);
    if (auto st = w->open_segment(); !st.ok())
      return st.err();
  }
  w->writer_ = std::thread([p = w.get()] { p->run(); });
  w->syncer_ = std::thread([p = w.get()] { p->run_syncer(); });
  return w;
}

wal::~wal() {
  // the writer writes what is buffered, then the syncer syncs it
  {
    std::lock_guard<std::mutex> g(mtx_);
    stop_ = true;
  }
  cv_.notify_one();
  if (writer_.joinable())
    writer_.join();
  {
    std::lock_guard<std::mutex> g(mtx_);
    sync_stop_ = true;
  }
  sync_cv_.notify_one();
  if (syncer_.joinable())
    syncer_.join();
  std::lock_guard<std::mutex> g(file_mtx_);
  for (auto& [fd, path] : unsynced_fds_)
    ::close(fd);
  unsynced_fds_.clear();
  if (fd_ >= 0)
    ::close(fd_);
}

status wal::open_segment() {
  if (fd_ >= 0) {
    // its last records are fdatasynced by the syncer before anything
    // written later counts as synced (sync_pass)
    unsynced_fds_.emplace_back(fd_, active_.path);
    closed_.push_back(active_);
    fd_ = -1;
  }
  segment s;
  s.id = next_id_++;
  s.path = cfg_.dir + "/" + segment_name(s.id);
  int fd = ::open(s.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0)
    return status{errc::io_error, sys_error("cannot create WAL segment", s.path)};
  char h[file_header];
  std::memcpy(h, magic, sizeof magic);
  put_le(h + 8, format, 4);
  put_le(h + 12, cfg_.keys ? flag_sealed : 0, 4);
  if (auto st = write_all(fd, h, sizeof h, s.path); !st.ok()) {
    ::close(fd);
    return st;
  }
  s.bytes = file_header;
  fd_ = fd;
  active_ = s;
  // the new name must survive a machine crash before records in it count:
  // the syncer fsyncs the directory before it publishes them as synced
  dir_dirty_ = true;
  return {};
}

uint64_t wal::append(wal_record::kind_t kind, const entry* e, std::string_view key, uint64_t batch,
                     const version& ver) {
  std::string_view value = e ? std::string_view(e->value) : std::string_view{};
  size_t plain_len = plain_fixed + key.size() + value.size();
  std::unique_lock<std::mutex> lk(mtx_); // cfg_.keys changes under it (set_keys)
  size_t payload_len = cfg_.keys ? plain_len + crypto::overhead : plain_len;
  bool was_empty = buf_.empty() && buf_large_.empty();
  size_t at = buf_.size();
  buf_.resize(at + rec_header + payload_len);
  char* rec = buf_.data() + at;
  char fixed[plain_fixed];
  fixed[0] = static_cast<char>(kind);
  fixed[1] = static_cast<char>(e ? e->flags : 0);
  put_le(fixed + 2, batch, 8);
  put_le(fixed + 10, e ? e->expiry_ms : 0, 8);
  put_le(fixed + 18, e ? e->ver.hlc : ver.hlc, 8);
  put_le(fixed + 26, e ? e->ver.node : ver.node, 4);
  put_le(fixed + 30, key.size(), 4);
  char* payload = rec + rec_header;
  if (cfg_.keys) {
    cfg_.keys->seal(seal_aad, {std::string_view(fixed, plain_fixed), key, value}, payload);
  } else {
    std::memcpy(payload, fixed, plain_fixed);
    if (!key.empty())
      std::memcpy(payload + plain_fixed, key.data(), key.size());
    if (!value.empty())
      std::memcpy(payload + plain_fixed + key.size(), value.data(), value.size());
  }
  put_le(rec, payload_len, 4);
  put_le(rec + 4, crc32c(std::string_view(payload, payload_len)), 4);
  return appended_record(lk, was_empty, buffered() - (rec_header + payload_len), batch);
}

uint64_t wal::appended_record(std::unique_lock<std::mutex>& lk, bool was_empty, uint64_t before,
                              uint64_t batch) {
  buf_max_batch_ = std::max(buf_max_batch_, batch);
  uint64_t lsn = ++lsn_;
  buf_last_lsn_ = lsn;
  appended_.store(lsn, std::memory_order_release);
  unwritten_.store(buffered(), std::memory_order_relaxed);
  if (was_empty && first_unwritten_ns_.load(std::memory_order_relaxed) == 0)
    first_unwritten_ns_.store(std::max<uint64_t>(1, clk_.mono_ns()), std::memory_order_relaxed);
  bool wake = buffered() >= kick_bytes && before < kick_bytes;
  lk.unlock();
  if (wake)
    cv_.notify_one();
  return lsn;
}

uint64_t wal::append_put_shared(const entry& meta, shared_bytes value, uint64_t batch) {
  deferred d;
  d.fixed_key.resize(plain_fixed + meta.key.size());
  char* fixed = d.fixed_key.data();
  fixed[0] = static_cast<char>(wal_record::put);
  fixed[1] = static_cast<char>(meta.flags);
  put_le(fixed + 2, batch, 8);
  put_le(fixed + 10, meta.expiry_ms, 8);
  put_le(fixed + 18, meta.ver.hlc, 8);
  put_le(fixed + 26, meta.ver.node, 4);
  put_le(fixed + 30, meta.key.size(), 4);
  if (!meta.key.empty())
    std::memcpy(fixed + plain_fixed, meta.key.data(), meta.key.size());
  d.value = std::move(value);
  std::unique_lock<std::mutex> lk(mtx_);
  d.keys = cfg_.keys;
  bool was_empty = buf_.empty() && buf_large_.empty();
  uint64_t before = buffered();
  d.at = buf_.size();
  buf_large_bytes_ +=
      rec_header + d.fixed_key.size() + d.value.size() + (d.keys ? crypto::overhead : 0);
  buf_large_.push_back(std::move(d));
  return appended_record(lk, was_empty, before, batch);
}

uint64_t wal::append_put(const entry& e, uint64_t batch) {
  return append(wal_record::put, &e, e.key, batch);
}
uint64_t wal::append_erase(std::string_view key, uint64_t batch, const version& ver) {
  return append(wal_record::erase, nullptr, key, batch, ver);
}
uint64_t wal::append_clear(uint64_t batch) {
  return append(wal_record::clear, nullptr, {}, batch);
}

void wal::kick() {
  {
    std::lock_guard<std::mutex> g(mtx_);
    kicked_ = true;
  }
  cv_.notify_one();
}

void wal::set_on_synced(std::function<void()> f) {
  std::lock_guard<std::mutex> g(mtx_);
  on_synced_ = std::move(f);
}

void wal::retire(uint64_t batch) {
  uint64_t cur = retired_.load(std::memory_order_relaxed);
  while (batch > cur && !retired_.compare_exchange_weak(cur, batch, std::memory_order_relaxed)) {
  }
}

uint64_t wal::unwritten_since_ns() const noexcept {
  uint64_t writing = writing_since_ns_.load(std::memory_order_relaxed);
  uint64_t buffered = first_unwritten_ns_.load(std::memory_order_relaxed);
  return writing != 0 && (buffered == 0 || writing < buffered) ? writing : buffered;
}

uint64_t wal::unwritten_age_ms() const noexcept {
  uint64_t first = unwritten_since_ns();
  if (first == 0)
    return 0;
  uint64_t now = clk_.mono_ns();
  return now > first ? (now - first) / 1000000 : 0;
}

uint64_t wal::segments() const {
  std::lock_guard<std::mutex> g(file_mtx_);
  return closed_.size() + (fd_ >= 0 ? 1 : 0);
}

uint64_t wal::disk_bytes() const {
  std::lock_guard<std::mutex> g(file_mtx_);
  uint64_t n = fd_ >= 0 ? active_.bytes : 0;
  for (auto& s : closed_)
    n += s.bytes;
  return n;
}

status wal::last_error() const {
  std::lock_guard<std::mutex> g(file_mtx_);
  return error_;
}

void wal::note_unlocked(const status& st) {
  if (st.ok())
    return;
  std::lock_guard<std::mutex> g(file_mtx_);
  note(st);
}

void wal::note(const status& st) {
  if (st.ok())
    return;
  if (error_.ok() || error_.message() != st.message())
    std::fprintf(stderr, "kura-node: WAL error: %s\n", st.message().c_str());
  error_ = st;
}

status wal::write_chunk(const chunk_t& chunk, uint64_t max_batch) {
  if (chunk.empty())
    return {};
  if (fd_ < 0 || active_.bytes >= cfg_.segment_bytes)
    if (auto st = open_segment(); !st.ok())
      return st;
  // the buffer's bytes with the deferred records in their places
  size_t from = 0;
  for (const auto& d : chunk.large) {
    if (d.at > from) {
      if (auto st = write_all(fd_, chunk.bytes.data() + from, d.at - from, active_.path); !st.ok())
        return st;
      from = d.at;
    }
    if (auto st = write_deferred(d); !st.ok())
      return st;
  }
  if (chunk.bytes.size() > from)
    if (auto st =
            write_all(fd_, chunk.bytes.data() + from, chunk.bytes.size() - from, active_.path);
        !st.ok())
      return st;
  active_.bytes += chunk.size();
  active_.max_batch = std::max(active_.max_batch, max_batch);
  return {};
}

status wal::write_deferred(const deferred& d) {
  const std::string_view value = d.value.view();
  size_t plain_len = d.fixed_key.size() + value.size();
  char head[rec_header];
  if (d.keys) {
    std::string sealed(plain_len + crypto::overhead, '\0');
    try {
      d.keys->seal(seal_aad, {d.fixed_key, value}, sealed.data());
    } catch (const std::exception& e) {
      return status{errc::io_error, std::string("WAL seal failed: ") + e.what()};
    }
    put_le(head, sealed.size(), 4);
    put_le(head + 4, crc32c(sealed), 4);
    if (auto st = write_all(fd_, head, rec_header, active_.path); !st.ok())
      return st;
    return write_all(fd_, sealed.data(), sealed.size(), active_.path);
  }
  put_le(head, plain_len, 4);
  put_le(head + 4, crc32c(value, crc32c(d.fixed_key)), 4);
  std::string first(head, rec_header);
  first += d.fixed_key;
  if (auto st = write_all(fd_, first.data(), first.size(), active_.path); !st.ok())
    return st;
  return write_all(fd_, value.data(), value.size(), active_.path);
}

int wal::sync_fd(int fd) const {
  return cfg_.sync_fn ? cfg_.sync_fn(fd) : ::fdatasync(fd);
}

status wal::sync_pass() {
  std::lock_guard<std::mutex> pass(sync_mtx_);
  std::vector<std::pair<int, std::string>> old;
  bool dir = false;
  int fd = -1;
  std::string path;
  uint64_t upto = 0;
  {
    // only a look under the file mutex: the writer goes on writing while
    // the disk syncs
    std::lock_guard<std::mutex> fl(file_mtx_);
    upto = unsynced_lsn_;
    old.swap(unsynced_fds_);
    dir = dir_dirty_;
    dir_dirty_ = false;
    if (fd_ >= 0 && upto > synced_.load(std::memory_order_relaxed)) {
      fd = ::dup(fd_);
      path = active_.path;
      if (fd < 0) {
        auto st = status{errc::io_error, sys_error("WAL cannot dup the descriptor of", path)};
        unsynced_fds_.insert(unsynced_fds_.begin(), old.begin(), old.end());
        dir_dirty_ = dir_dirty_ || dir;
        note(st);
        return st;
      }
    }
  }
  status st;
  std::vector<std::pair<int, std::string>> failed;
  for (auto& [ofd, opath] : old) {
    if (sync_fd(ofd) != 0) {
      st = status{errc::io_error, sys_error("WAL fdatasync of", opath)};
      failed.emplace_back(ofd, opath); // kept: retried at the next pass
    } else {
      ::close(ofd);
    }
  }
  if (dir && st.ok())
    st = sync_dir(cfg_.dir);
  bool dir_failed = dir && !st.ok();
  if (fd >= 0) {
    if (st.ok() && sync_fd(fd) != 0)
      st = status{errc::io_error, sys_error("WAL fdatasync of", path)};
    ::close(fd);
  }
  if (!failed.empty() || dir_failed) {
    std::lock_guard<std::mutex> fl(file_mtx_);
    unsynced_fds_.insert(unsynced_fds_.begin(), failed.begin(), failed.end());
    dir_dirty_ = dir_dirty_ || dir_failed;
  }
  if (!st.ok()) {
    note_unlocked(st);
    return st;
  }
  if (fd >= 0 || !old.empty() || dir)
    syncs_.fetch_add(1, std::memory_order_relaxed);
  if (upto > synced_.load(std::memory_order_relaxed)) {
    synced_.store(upto, std::memory_order_release); // only this pass stores it
    std::function<void()> cb;
    {
      std::lock_guard<std::mutex> g(mtx_);
      cb = on_synced_;
    }
    if (cb)
      cb();
  }
  return {};
}

void wal::delete_retired() {
  uint64_t upto = retired_.load(std::memory_order_relaxed);
  std::vector<segment> gone;
  {
    std::lock_guard<std::mutex> fl(file_mtx_);
    for (auto it = closed_.begin(); it != closed_.end();) {
      if (it->max_batch <= upto) {
        gone.push_back(*it);
        it = closed_.erase(it);
      } else {
        ++it;
      }
    }
  }
  if (gone.empty())
    return;
  // unlinks and the directory's fsync outside the file mutex: the writer
  // does not wait for them
  std::vector<segment> kept;
  for (auto& g : gone)
    if (::unlink(g.path.c_str()) != 0 && errno != ENOENT) {
      note_unlocked(status{errc::io_error, sys_error("cannot remove WAL segment", g.path)});
      kept.push_back(g);
    }
  if (!kept.empty()) {
    std::lock_guard<std::mutex> fl(file_mtx_);
    closed_.insert(closed_.begin(), kept.begin(), kept.end());
  }
  // a deleted segment whose name comes back after a machine crash is
  // replayed: harmless (blind writes LMDB already holds)
  if (kept.size() < gone.size())
    note_unlocked(sync_dir(cfg_.dir));
}

void wal::request_sync() {
  {
    std::lock_guard<std::mutex> g(mtx_);
    sync_wanted_ = true;
  }
  sync_cv_.notify_one();
}

void wal::run() {
  for (;;) {
    bool stopping = false;
    bool kicked = false;
    {
      std::unique_lock<std::mutex> lk(mtx_);
      cv_.wait_for(lk, std::chrono::milliseconds(cfg_.write_interval_ms),
                   [&] { return stop_ || kicked_ || buffered() >= kick_bytes; });
    }
    bool unsynced = false;
    {
      // file mutex before the buffer's, as rotate() and flush() take them:
      // a chunk taken from the buffer is written before any later one
      std::lock_guard<std::mutex> fl(file_mtx_);
      {
        std::lock_guard<std::mutex> g(mtx_);
        kicked = kicked_;
        kicked_ = false;
        stopping = stop_;
      }
      note(write_buffer());
      unsynced = unsynced_lsn_ > synced_.load(std::memory_order_relaxed);
    }
    // the syncer syncs every sync_interval_ms on its own; a kura.l3.sync
    // writer (kick) or sync_each wants its records synced now
    if (unsynced && (cfg_.sync_each || kicked))
      request_sync();
    if (stopping)
      return;
  }
}

void wal::run_syncer() {
  for (;;) {
    bool stopping = false;
    {
      std::unique_lock<std::mutex> lk(mtx_);
      sync_cv_.wait_for(lk, std::chrono::milliseconds(cfg_.sync_interval_ms),
                        [&] { return sync_stop_ || sync_wanted_; });
      sync_wanted_ = false;
      stopping = sync_stop_;
    }
    (void)sync_pass(); // errors are noted; retried at the next pass
    delete_retired();
    if (stopping)
      return;
  }
}

void wal::take(chunk_t& chunk, uint64_t& max_batch, uint64_t& last_lsn) {
  size_t shift = chunk.bytes.size();
  if (chunk.bytes.empty())
    chunk.bytes.swap(buf_);
  else
    chunk.bytes.append(buf_);
  buf_.clear();
  for (auto& d : buf_large_) {
    d.at += shift;
    chunk.large.push_back(std::move(d));
  }
  buf_large_.clear();
  chunk.large_bytes += buf_large_bytes_;
  buf_large_bytes_ = 0;
  // the age of the oldest record taken moves along with it, until written
  uint64_t first = first_unwritten_ns_.load(std::memory_order_relaxed);
  if (first != 0 && writing_since_ns_.load(std::memory_order_relaxed) == 0)
    writing_since_ns_.store(first, std::memory_order_relaxed);
  first_unwritten_ns_.store(0, std::memory_order_relaxed);
  max_batch = std::max(max_batch, buf_max_batch_);
  last_lsn = std::max(last_lsn, buf_last_lsn_);
  unwritten_.store(0, std::memory_order_relaxed);
}

status wal::rotate(uint64_t committed_batch) {
  retire(committed_batch);
  {
    std::lock_guard<std::mutex> fl(file_mtx_);
    if (auto st = write_buffer(); !st.ok())
      return st;
    if (auto st = open_segment(); !st.ok())
      return st;
  }
  delete_retired();
  return sync_dir(cfg_.dir);
}

status wal::flush() {
  {
    std::lock_guard<std::mutex> fl(file_mtx_);
    if (auto st = write_buffer(); !st.ok())
      return st;
  }
  return sync_pass();
}

status wal::set_keys(std::shared_ptr<const crypto::keyring> keys) {
  std::lock_guard<std::mutex> fl(file_mtx_);
  // the records buffered so far were sealed with the old keys: they go to
  // the old segment, and the new key starts a new one
  std::unique_lock<std::mutex> g(mtx_);
  if (auto st = write_buffer(&g); !st.ok())
    return st;
  cfg_.keys = std::move(keys);
  return open_segment();
}

status wal::write_buffer(std::unique_lock<std::mutex>* held) {
  {
    std::unique_lock<std::mutex> g(mtx_, std::defer_lock);
    if (!held)
      g.lock();
    take(carry_, carry_max_batch_, carry_last_lsn_);
  }
  if (carry_.empty())
    return {};
  if (auto st = write_chunk(carry_, carry_max_batch_); !st.ok()) {
    // kept and retried at the next round; the age keeps growing, so the
    // front end pauses writers (actors/store.hpp) rather than lose them
    carried_.store(carry_.size(), std::memory_order_relaxed);
    return st;
  }
  // the records are in the page cache now: a killed process keeps them
  unsynced_lsn_ = carry_last_lsn_;
  written_.store(carry_last_lsn_, std::memory_order_release);
  carry_.clear();
  carried_.store(0, std::memory_order_relaxed);
  writing_since_ns_.store(0, std::memory_order_relaxed);
  return {};
}

} // namespace kura
