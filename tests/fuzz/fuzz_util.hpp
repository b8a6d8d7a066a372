// Helpers shared by the libFuzzer targets of tests/fuzz (built only with
// KURA_FUZZ=ON, see scripts/fuzz). A target states its contract with
// fuzz_check: a broken invariant aborts, and libFuzzer saves the input.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <unistd.h>

namespace kura::fuzz {

/// Aborts (libFuzzer reports a crash and saves the input) when `ok` is false.
inline void fuzz_check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz invariant broken: %s\n", what);
    std::abort();
  }
}

inline std::string_view as_view(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

/// A private directory under $TMPDIR (or /tmp) for the life of the process.
struct scratch_dir {
  std::string path;
  explicit scratch_dir(const char* prefix) {
    const char* t = std::getenv("TMPDIR");
    std::string tmpl =
        std::string(t != nullptr && *t != '\0' ? t : "/tmp") + "/" + prefix + "-XXXXXX";
    char* p = ::mkdtemp(tmpl.data());
    fuzz_check(p != nullptr, "mkdtemp");
    path = p;
  }
  ~scratch_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  scratch_dir(const scratch_dir&) = delete;
  scratch_dir& operator=(const scratch_dir&) = delete;
  std::string sub(const std::string& name) const { return path + "/" + name; }
};

/// Writes `bytes` to `path` (replacing it); false on any I/O error.
inline bool write_file(const std::string& path, std::string_view bytes) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr)
    return false;
  bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  return std::fclose(f) == 0 && ok;
}

} // namespace kura::fuzz
