#include "predictor/model_file.hpp"

#include "predictor/codec.hpp"
#include "tiers/hash.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace kura::predictor {

namespace {

constexpr char magic[8] = {'K', 'U', 'R', 'A', 'P', 'R', 'E', 'D'};
constexpr uint64_t checksum_seed = 0x707265646d6f646cull;
constexpr size_t header_bytes = 8 + 4 + 8;

std::string errno_text(const std::string& what, const std::string& path) {
  return what + " " + path + ": " + std::strerror(errno);
}

} // namespace

std::string seal_model(std::string_view payload) {
  std::string out(magic, sizeof magic);
  byte_writer w(out);
  w.u32(model_format_version);
  w.u64(payload.size());
  out.append(payload.data(), payload.size());
  w.u64(hash64(payload, checksum_seed));
  return out;
}

result<std::string> unseal_model(std::string_view blob) {
  if (blob.size() < sizeof magic || std::memcmp(blob.data(), magic, sizeof magic) != 0)
    return error{errc::foreign_file, "not a kura predictor model (bad magic)"};
  if (blob.size() < header_bytes + 8)
    return error{errc::corrupt,
                 "predictor model truncated (" + std::to_string(blob.size()) + " bytes)"};
  byte_reader r(blob.substr(sizeof magic));
  const uint32_t version = r.u32();
  const uint64_t len = r.u64();
  if (version != model_format_version)
    return error{errc::foreign_file, "predictor model format version " + std::to_string(version) +
                                         ", this build reads " +
                                         std::to_string(model_format_version)};
  if (len != blob.size() - header_bytes - 8)
    return error{errc::corrupt, "predictor model length " + std::to_string(len) +
                                    " does not match the file (" + std::to_string(blob.size()) +
                                    " bytes)"};
  std::string_view payload = blob.substr(header_bytes, len);
  byte_reader tail(blob.substr(header_bytes + len));
  if (tail.u64() != hash64(payload, checksum_seed))
    return error{errc::corrupt, "predictor model checksum mismatch"};
  return std::string(payload);
}

result<std::optional<std::string>> file_model_store::read() {
  int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT)
      return std::optional<std::string>{};
    return error{errc::io_error, errno_text("open", path_)};
  }
  std::string data;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      auto e = error{errc::io_error, errno_text("read", path_)};
      ::close(fd);
      return e;
    }
    if (n == 0)
      break;
    data.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return std::optional<std::string>{std::move(data)};
}

status file_model_store::write(std::string_view blob) {
  const std::string tmp = path_ + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return status{errc::io_error, errno_text("create", tmp)};
  size_t off = 0;
  while (off < blob.size()) {
    ssize_t n = ::write(fd, blob.data() + off, blob.size() - off);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      auto st = status{errc::io_error, errno_text("write", tmp)};
      ::close(fd);
      ::unlink(tmp.c_str());
      return st;
    }
    off += static_cast<size_t>(n);
  }
  if (::fdatasync(fd) != 0) {
    auto st = status{errc::io_error, errno_text("fdatasync", tmp)};
    ::close(fd);
    ::unlink(tmp.c_str());
    return st;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path_.c_str()) != 0) {
    auto st = status{errc::io_error, errno_text("rename", tmp)};
    ::unlink(tmp.c_str());
    return st;
  }
  return {};
}

} // namespace kura::predictor
