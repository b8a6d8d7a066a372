// Helpers shared by the test suites (no CAF).
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>
#include <unistd.h>

namespace kura::testing {

/// A fresh directory under /tmp, removed with everything in it at the end.
struct temp_dir {
  std::string path;
  explicit temp_dir(const char* prefix = "kura-test") {
    std::string tmpl = std::string("/tmp/") + prefix + "-XXXXXX";
    char* p = ::mkdtemp(tmpl.data());
    path = p != nullptr ? p : "";
  }
  ~temp_dir() {
    if (std::getenv("KURA_TEST_KEEP_DIRS") != nullptr)
      return; // to look at a failed run's files (tests print the paths they use)
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  /// `path`/`name`
  std::string sub(const std::string& name) const { return path + "/" + name; }
};

} // namespace kura::testing
