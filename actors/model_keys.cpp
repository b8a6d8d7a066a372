#include "actors/model_keys.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <iterator>
#include <sys/stat.h>
#include <unistd.h>

namespace kura::actors {

namespace {

constexpr size_t hash_bytes = 16; // of the 32 HMAC-SHA-256 bytes
constexpr std::string_view aad = "kura model-keys secret v1";

std::string hex(std::string_view b) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(b.size() * 2);
  for (unsigned char c : b) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

} // namespace

model_keys::model_keys(std::string secret, size_t remember_cap)
    : secret_(std::move(secret)), cap_(remember_cap == 0 ? 1 : remember_cap) {}

std::string model_keys::hash(std::string_view key) const {
  auto mac = crypto::hmac_sha256(secret_, key);
  return hex(std::string_view{mac}.substr(0, hash_bytes));
}

std::string model_keys::remember(std::string_view key) {
  auto h = hash(key);
  if (cur_.count(h) == 0) {
    if (cur_.size() >= cap_) {
      old_ = std::move(cur_);
      cur_.clear();
    }
    cur_.emplace(h, std::string{key});
  }
  return h;
}

const std::string* model_keys::key_of(const std::string& h) const {
  if (auto it = cur_.find(h); it != cur_.end())
    return &it->second;
  if (auto it = old_.find(h); it != old_.end())
    return &it->second;
  return nullptr;
}

result<std::string> model_keys::load_secret(const std::string& data_dir,
                                            const std::shared_ptr<const crypto::keyring>& keys) {
  const std::string path = data_dir + "/model-keys.secret";
  std::ifstream in(path, std::ios::binary);
  if (in) {
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!keys) {
      if (bytes.size() != crypto::key_bytes)
        return error{errc::corrupt,
                     path + " holds " + std::to_string(bytes.size()) +
                         " bytes, not a 32-byte secret (sealed with an encryption key?)"};
      return bytes;
    }
    if (bytes.size() != crypto::key_bytes + crypto::overhead)
      return error{errc::corrupt, path + " is not a sealed 32-byte secret (written without "
                                         "kura.security.encryption-key-file?)"};
    std::string plain;
    if (auto st = keys->open(aad, bytes, plain); !st)
      return error{st.code(), path + ": " + st.err().message};
    return plain;
  }
  if (errno != ENOENT)
    return error{errc::io_error, "cannot read " + path + ": " + std::strerror(errno)};
  std::string secret = crypto::random_bytes(crypto::key_bytes);
  std::string bytes = keys ? keys->seal(aad, secret) : secret;
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return error{errc::io_error, "cannot create " + tmp + ": " + std::strerror(errno)};
  bool ok = ::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()) &&
            ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0)
    return error{errc::io_error, "cannot write " + path + ": " + std::strerror(errno)};
  return secret;
}

} // namespace kura::actors
