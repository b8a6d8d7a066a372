#include "archive/env.hpp"

#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace kura::archive {

namespace {

error sys_error(const char* what, const std::string& path) {
  return error{errc::io_error, std::string(what) + " " + path + ": " + std::strerror(errno)};
}

class posix_writable final : public writable_file {
public:
  posix_writable(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~posix_writable() override {
    if (fd_ >= 0)
      ::close(fd_);
  }
  status append(std::string_view data) override {
    if (fd_ < 0)
      return {errc::closed, "append to closed file " + path_};
    const char* p = data.data();
    size_t n = data.size();
    while (n > 0) {
      auto w = ::write(fd_, p, n);
      if (w < 0) {
        if (errno == EINTR)
          continue;
        return sys_error("write", path_);
      }
      p += w;
      n -= static_cast<size_t>(w);
      size_ += static_cast<uint64_t>(w);
    }
    return {};
  }
  status sync() override {
    if (fd_ < 0)
      return {errc::closed, "sync of closed file " + path_};
    if (::fdatasync(fd_) != 0)
      return sys_error("fdatasync", path_);
    return {};
  }
  status close() override {
    if (fd_ < 0)
      return {};
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0)
      return sys_error("close", path_);
    return {};
  }
  uint64_t size() const override { return size_; }

private:
  int fd_;
  std::string path_;
  uint64_t size_ = 0;
};

class posix_readable final : public readable_file {
public:
  posix_readable(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~posix_readable() override { ::close(fd_); }
  status read_at(uint64_t offset, size_t n, char* dst) const override {
    while (n > 0) {
      auto r = ::pread(fd_, dst, n, static_cast<off_t>(offset));
      if (r < 0) {
        if (errno == EINTR)
          continue;
        return sys_error("pread", path_);
      }
      if (r == 0)
        return {errc::corrupt,
                path_ + " ends before offset " + std::to_string(offset) + " (truncated file)"};
      dst += r;
      n -= static_cast<size_t>(r);
      offset += static_cast<uint64_t>(r);
    }
    return {};
  }
  result<uint64_t> size() const override {
    struct stat st;
    if (::fstat(fd_, &st) != 0)
      return sys_error("fstat", path_);
    return static_cast<uint64_t>(st.st_size);
  }

private:
  int fd_;
  std::string path_;
};

} // namespace

result<std::unique_ptr<writable_file>> posix_env::new_writable(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return sys_error("open", path);
  return std::unique_ptr<writable_file>(new posix_writable(fd, path));
}

result<std::shared_ptr<readable_file>> posix_env::open_readable(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT)
      return error{errc::not_found, "no file " + path};
    return sys_error("open", path);
  }
  return std::shared_ptr<readable_file>(new posix_readable(fd, path));
}

status posix_env::remove(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    return sys_error("unlink", path);
  return {};
}

status posix_env::rename(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0)
    return sys_error("rename", from + " -> " + to);
  return {};
}

status posix_env::truncate(const std::string& path, uint64_t size) {
  if (::truncate(path.c_str(), static_cast<off_t>(size)) != 0)
    return sys_error("truncate", path);
  return {};
}

status posix_env::create_dir(const std::string& path) {
  std::string cur;
  for (size_t i = 0; i <= path.size(); ++i) {
    if (i == path.size() || (path[i] == '/' && i > 0)) {
      cur = path.substr(0, i);
      if (::mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST)
        return sys_error("mkdir", cur);
    }
  }
  return {};
}

status posix_env::sync_dir(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return sys_error("open dir", path);
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0)
    return sys_error("fsync dir", path);
  return {};
}

result<std::vector<std::string>> posix_env::list_dir(const std::string& path) {
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr)
    return sys_error("opendir", path);
  std::vector<std::string> out;
  while (auto* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..")
      out.push_back(std::move(n));
  }
  ::closedir(d);
  return out;
}

bool posix_env::exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

posix_env& posix_env::instance() {
  static posix_env e;
  return e;
}

} // namespace kura::archive
