// Everything the archive does with files goes through `env`, so tests can swap
// in a fault-injecting one: a write that fails after N bytes, an fsync that
// fails, a crash point that kills the process between two steps of compaction.
// (The LMDB index is the one exception: LMDB does its own file I/O on its own
// environment directory; the archive's crash-safety argument relies only on
// LMDB's own atomic commits.)
// Thread safety: posix_env and the files it returns are safe for concurrent use
// (readable files use pread); a writable file is used by one thread at a time.
#pragma once

#include "tiers/status.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace kura::archive {

/// A file opened for appending (segments, dictionaries).
class writable_file {
public:
  virtual ~writable_file() = default;
  /// Appends `data` at the end.
  virtual status append(std::string_view data) = 0;
  /// Makes everything appended so far durable (fdatasync).
  virtual status sync() = 0;
  /// Closes the file; further calls fail.
  virtual status close() = 0;
  /// Bytes appended so far (plus the size at open when appending).
  virtual uint64_t size() const = 0;
};

/// A file opened for positional reads.
class readable_file {
public:
  virtual ~readable_file() = default;
  /// Reads exactly `n` bytes at `offset` into `dst`; a short read is io_error.
  virtual status read_at(uint64_t offset, size_t n, char* dst) const = 0;
  /// Current size of the file in bytes.
  virtual result<uint64_t> size() const = 0;
};

/// The archive's window to the outside world.
class env {
public:
  virtual ~env() = default;
  /// Creates (truncating) `path` for appending.
  virtual result<std::unique_ptr<writable_file>> new_writable(const std::string& path) = 0;
  /// Opens `path` for reading.
  virtual result<std::shared_ptr<readable_file>> open_readable(const std::string& path) = 0;
  /// Removes a file; removing a missing file is ok.
  virtual status remove(const std::string& path) = 0;
  /// Atomically renames `from` to `to` (replacing `to`).
  virtual status rename(const std::string& from, const std::string& to) = 0;
  /// Shrinks `path` to `size` bytes.
  virtual status truncate(const std::string& path, uint64_t size) = 0;
  /// Creates a directory (and parents); existing is ok.
  virtual status create_dir(const std::string& path) = 0;
  /// fsyncs a directory so creations, renames and removals in it are durable.
  virtual status sync_dir(const std::string& path) = 0;
  /// File names (not paths) in a directory.
  virtual result<std::vector<std::string>> list_dir(const std::string& path) = 0;
  /// Whether `path` exists.
  virtual bool exists(const std::string& path) = 0;
  /// Named points between the steps of multi-step operations (compaction,
  /// segment drop). The default does nothing; a test's env kills the process
  /// here to prove every step is crash-safe. See docs/formats-archive.md for
  /// the list of names.
  virtual void crash_point(std::string_view /*where*/) {}
};

/// The real file system (POSIX calls).
class posix_env : public env {
public:
  result<std::unique_ptr<writable_file>> new_writable(const std::string& path) override;
  result<std::shared_ptr<readable_file>> open_readable(const std::string& path) override;
  status remove(const std::string& path) override;
  status rename(const std::string& from, const std::string& to) override;
  status truncate(const std::string& path, uint64_t size) override;
  status create_dir(const std::string& path) override;
  status sync_dir(const std::string& path) override;
  result<std::vector<std::string>> list_dir(const std::string& path) override;
  bool exists(const std::string& path) override;
  /// A process-wide instance.
  static posix_env& instance();
};

} // namespace kura::archive
