// Helpers shared by the archive tests: a temporary directory, a fault-injecting
// env and entry builders.
#pragma once

#include "archive/archive.hpp"
#include "tiers/random.hpp"

#include <atomic>
#include <cstdlib>
#include <functional>
#include <string>
#include <unistd.h>

namespace kura::archive::test {

/// A fresh directory under $TMPDIR, removed at scope end.
struct temp_dir {
  std::string path;
  temp_dir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base != nullptr ? base : "/tmp") + "/kura-archive-XXXXXX";
    char* p = ::mkdtemp(tmpl.data());
    path = p != nullptr ? p : "";
  }
  ~temp_dir() {
    if (!path.empty())
      (void)std::system(("rm -rf '" + path + "'").c_str());
  }
};

/// posix_env plus faults: appends fail once `fail_appends` is set, and a
/// callback runs at every crash point.
class fault_env : public posix_env {
public:
  std::atomic<bool> fail_appends{false};
  std::atomic<bool> fail_syncs{false};
  std::function<void(std::string_view)> on_crash_point;

  result<std::unique_ptr<writable_file>> new_writable(const std::string& path) override {
    auto f = posix_env::new_writable(path);
    if (!f)
      return f;
    return std::unique_ptr<writable_file>(new faulty_file(std::move(*f), *this));
  }
  void crash_point(std::string_view where) override {
    if (on_crash_point)
      on_crash_point(where);
  }

private:
  class faulty_file : public writable_file {
  public:
    faulty_file(std::unique_ptr<writable_file> f, fault_env& e) : f_(std::move(f)), e_(e) {}
    status append(std::string_view d) override {
      if (e_.fail_appends.load()) {
        // Half the bytes reach the file, as with a full disk.
        (void)f_->append(d.substr(0, d.size() / 2));
        return {errc::io_error, "injected write failure"};
      }
      return f_->append(d);
    }
    status sync() override {
      if (e_.fail_syncs.load())
        return {errc::io_error, "injected fsync failure"};
      return f_->sync();
    }
    status close() override { return f_->close(); }
    uint64_t size() const override { return f_->size(); }

  private:
    std::unique_ptr<writable_file> f_;
    fault_env& e_;
  };
};

/// JSON-ish compressible value of about `n` bytes, varying with `seed`.
inline std::string json_value(uint64_t seed, size_t n) {
  rng r(seed);
  std::string s = "{\"user_id\":" + std::to_string(seed) + ",\"name\":\"user" +
                  std::to_string(r.below(100000)) + "\",\"tags\":[";
  while (s.size() < n) {
    s += "\"t" + std::to_string(r.below(50)) + "\",";
  }
  s.resize(n);
  return s;
}

inline entry make_entry(std::string key, std::string value, uint64_t expiry = 0, uint64_t hlc = 1) {
  entry e;
  e.key = std::move(key);
  e.value = std::move(value);
  e.expiry_ms = expiry;
  e.ver.hlc = hlc;
  e.ver.node = 7;
  return e;
}

inline archive_config small_config(const std::string& path, codec_id c = codec_id::lz4) {
  archive_config cfg;
  cfg.path = path;
  cfg.codec = c;
  cfg.block_bytes = 4096;
  cfg.segment_bytes = 64 * 1024;
  cfg.durable = false; // tests never crash the machine, only processes
  cfg.dict_min_samples = 64;
  cfg.dict_bytes = 8 * 1024;
  return cfg;
}

} // namespace kura::archive::test
