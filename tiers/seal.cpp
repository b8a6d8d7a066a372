#include "tiers/seal.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <optional>
#include <stdexcept>
#include <sys/stat.h>
#include <unistd.h>
#include <unordered_map>

namespace kura::crypto {

namespace {

constexpr std::string_view secret_aad_prefix = "kura store secret v1 ";

uint32_t get_u32(const char* p) {
  return static_cast<uint32_t>(static_cast<uint8_t>(p[0])) |
         static_cast<uint32_t>(static_cast<uint8_t>(p[1])) << 8 |
         static_cast<uint32_t>(static_cast<uint8_t>(p[2])) << 16 |
         static_cast<uint32_t>(static_cast<uint8_t>(p[3])) << 24;
}
void put_u32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    p[i] = static_cast<char>(v >> (8 * i));
}

const auto* uc(const char* p) {
  return reinterpret_cast<const unsigned char*>(p);
}
auto* uc(char* p) {
  return reinterpret_cast<unsigned char*>(p);
}

/// Explicitly fetched algorithms: OpenSSL 3 looks an algorithm up in its
/// provider tables on every implicit use (EVP_aes_256_gcm() in an init, HMAC()),
/// which costs microseconds per call.
const EVP_CIPHER* gcm_cipher() {
  static EVP_CIPHER* c = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  if (c == nullptr)
    throw std::runtime_error("OpenSSL has no AES-256-GCM");
  return c;
}
const EVP_MD* sha256_md() {
  static EVP_MD* m = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  if (m == nullptr)
    throw std::runtime_error("OpenSSL has no SHA256");
  return m;
}

std::atomic<uint64_t> next_key_uid{1};

/// Per thread, one cipher context per (key, direction) with the AES key
/// schedule already set up; each seal/open only sets the nonce. Keys are
/// told apart by a process-unique id, never by address.
struct ctx_cache {
  std::unordered_map<uint64_t, EVP_CIPHER_CTX*> m;
  ~ctx_cache() { clear(); }
  void clear() {
    for (auto& kv : m)
      EVP_CIPHER_CTX_free(kv.second);
    m.clear();
  }
};

EVP_CIPHER_CTX* keyed_ctx(bool enc, uint64_t uid, const std::string& key) {
  thread_local ctx_cache enc_cache, dec_cache;
  auto& c = enc ? enc_cache : dec_cache;
  auto it = c.m.find(uid);
  if (it != c.m.end())
    return it->second;
  if (c.m.size() >= 64)
    c.clear(); // bounded: keyrings come and go (tests, rotations)
  EVP_CIPHER_CTX* x = EVP_CIPHER_CTX_new();
  if (x == nullptr)
    throw std::bad_alloc{};
  int ok = enc ? EVP_EncryptInit_ex(x, gcm_cipher(), nullptr,
                                    reinterpret_cast<const unsigned char*>(key.data()), nullptr)
               : EVP_DecryptInit_ex(x, gcm_cipher(), nullptr,
                                    reinterpret_cast<const unsigned char*>(key.data()), nullptr);
  if (ok != 1) {
    EVP_CIPHER_CTX_free(x);
    throw std::runtime_error("OpenSSL AES-GCM key setup failed");
  }
  c.m.emplace(uid, x);
  return x;
}

/// HMAC-SHA-256 with the inner and outer pad states of the last key kept per
/// thread (a store hashes every key with the same secret).
struct hmac_cache {
  std::string key;
  EVP_MD_CTX* inner = EVP_MD_CTX_new();
  EVP_MD_CTX* outer = EVP_MD_CTX_new();
  EVP_MD_CTX* work = EVP_MD_CTX_new();
  ~hmac_cache() {
    EVP_MD_CTX_free(inner);
    EVP_MD_CTX_free(outer);
    EVP_MD_CTX_free(work);
  }
};

int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

bool parse_hex_key(std::string_view s, std::string& out) {
  if (s.size() != 2 * key_bytes)
    return false;
  out.assign(key_bytes, '\0');
  for (size_t i = 0; i < key_bytes; ++i) {
    int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return false;
    out[i] = static_cast<char>(hi * 16 + lo);
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

/// The key file's entries: (id, material), material as written.
struct file_entry {
  uint32_t id = 0;
  std::string_view material;
  size_t line = 0;
};

result<std::vector<file_entry>> split_lines(std::string_view text) {
  std::vector<file_entry> out;
  std::vector<std::pair<size_t, std::string_view>> lines;
  size_t lineno = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = trim(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    ++lineno;
    if (line.empty() || line.front() == '#')
      continue;
    lines.emplace_back(lineno, line);
  }
  if (lines.empty())
    return error{errc::invalid_argument, "the key file holds no key"};
  for (auto& [no, line] : lines) {
    file_entry fe;
    fe.line = no;
    size_t sp = line.find_first_of(" \t");
    std::string_view first = line.substr(0, sp);
    bool numeric = !first.empty() && first.size() <= 10 &&
                   first.find_first_not_of("0123456789") == std::string_view::npos;
    if (numeric && sp != std::string_view::npos) {
      uint64_t id = std::stoull(std::string{first});
      if (id == 0 || id > 0xffffffffull)
        return error{errc::invalid_argument,
                     "key file line " + std::to_string(no) + ": key id must be 1..4294967295"};
      fe.id = static_cast<uint32_t>(id);
      fe.material = trim(line.substr(sp));
    } else if (lines.size() == 1) {
      fe.id = 1;
      fe.material = line;
    } else {
      return error{errc::invalid_argument,
                   "key file line " + std::to_string(no) +
                       ": a file with several keys needs \"<id> <key>\" on every line"};
    }
    out.push_back(fe);
  }
  return out;
}

bool is_passphrase(std::string_view material, std::string& hexkey) {
  return !parse_hex_key(material, hexkey);
}

/// A file of exactly 32 bytes holding a byte that is not printable text: one
/// raw key (a random key is text by chance with probability ~ (98/256)^32).
bool raw_binary_key(std::string_view text) {
  if (text.size() != key_bytes)
    return false;
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && u != '\n' && u != '\r' && u != '\t') || u >= 0x7f)
      return true;
  }
  return false;
}

std::string aes_key_of(std::string_view master) {
  return hmac_sha256(master, "kura seal v1 aes-256-gcm");
}

} // namespace

// -- primitives ---------------------------------------------------------------------

std::string random_bytes(size_t n) {
  std::string out(n, '\0');
  if (n > 0 && RAND_bytes(uc(out.data()), static_cast<int>(n)) != 1)
    throw std::runtime_error("OpenSSL RAND_bytes failed");
  return out;
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  thread_local hmac_cache h;
  if (h.inner == nullptr || h.outer == nullptr || h.work == nullptr)
    throw std::bad_alloc{};
  const EVP_MD* md = sha256_md();
  unsigned int len = 32;
  if (h.key.size() != key.size() || h.key.compare(0, std::string::npos, key.data(), key.size())) {
    // RFC 2104: K' = K (hashed when longer than the 64-byte block), padded
    unsigned char block[64] = {};
    if (key.size() > 64) {
      if (EVP_Digest(key.data(), key.size(), block, &len, md, nullptr) != 1)
        throw std::runtime_error("OpenSSL SHA-256 failed");
    } else {
      std::memcpy(block, key.data(), key.size());
    }
    unsigned char ipad[64], opad[64];
    for (int i = 0; i < 64; ++i) {
      ipad[i] = static_cast<unsigned char>(block[i] ^ 0x36);
      opad[i] = static_cast<unsigned char>(block[i] ^ 0x5c);
    }
    h.key.clear();
    if (EVP_DigestInit_ex(h.inner, md, nullptr) != 1 || EVP_DigestUpdate(h.inner, ipad, 64) != 1 ||
        EVP_DigestInit_ex(h.outer, md, nullptr) != 1 || EVP_DigestUpdate(h.outer, opad, 64) != 1)
      throw std::runtime_error("OpenSSL HMAC setup failed");
    h.key.assign(key.data(), key.size());
  }
  unsigned char ih[32];
  std::string out(32, '\0');
  if (EVP_MD_CTX_copy_ex(h.work, h.inner) != 1 ||
      EVP_DigestUpdate(h.work, data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(h.work, ih, &len) != 1 || EVP_MD_CTX_copy_ex(h.work, h.outer) != 1 ||
      EVP_DigestUpdate(h.work, ih, 32) != 1 ||
      EVP_DigestFinal_ex(h.work, uc(out.data()), &len) != 1)
    throw std::runtime_error("OpenSSL HMAC failed");
  return out;
}

std::string derive_key(std::string_view passphrase, std::string_view salt, uint32_t iterations) {
  std::string out(key_bytes, '\0');
  if (PKCS5_PBKDF2_HMAC(passphrase.data(), static_cast<int>(passphrase.size()), uc(salt.data()),
                        static_cast<int>(salt.size()), static_cast<int>(iterations), EVP_sha256(),
                        static_cast<int>(key_bytes), uc(out.data())) != 1)
    throw std::runtime_error("OpenSSL PBKDF2 failed");
  return out;
}

// -- keyring ------------------------------------------------------------------------

result<std::shared_ptr<const keyring>> keyring::from_keys(std::map<uint32_t, std::string> keys) {
  if (keys.empty())
    return error{errc::invalid_argument, "no encryption key"};
  std::shared_ptr<keyring> kr{new keyring};
  for (auto& [id, k] : keys) {
    if (id == 0)
      return error{errc::invalid_argument, "encryption key id 0 is reserved"};
    if (k.size() != key_bytes)
      return error{errc::invalid_argument, "encryption key " + std::to_string(id) + " has " +
                                               std::to_string(k.size()) + " bytes, not 32"};
    kr->keys_[id] = aes_key_of(k);
    kr->uids_[id] = next_key_uid.fetch_add(1);
  }
  kr->active_ = kr->keys_.rbegin()->first;
  return std::shared_ptr<const keyring>{kr};
}

bool keyring::needs_salt(std::string_view text) {
  if (raw_binary_key(text))
    return false;
  auto entries = split_lines(text);
  if (!entries)
    return false;
  std::string tmp;
  for (auto& fe : *entries)
    if (is_passphrase(fe.material, tmp))
      return true;
  return false;
}

result<std::shared_ptr<const keyring>> keyring::parse(std::string_view text,
                                                      std::string_view salt) {
  std::map<uint32_t, std::string> keys;
  std::string hexkey;
  // A file of exactly 32 bytes that is not text: one raw key, id 1.
  if (raw_binary_key(text)) {
    keys[1] = std::string{text};
    return from_keys(std::move(keys));
  }
  auto entries = split_lines(text);
  if (!entries)
    return entries.err();
  for (auto& fe : *entries) {
    if (keys.count(fe.id) != 0)
      return error{errc::invalid_argument, "key file line " + std::to_string(fe.line) +
                                               ": key id " + std::to_string(fe.id) +
                                               " appears twice"};
    if (!is_passphrase(fe.material, hexkey)) {
      keys[fe.id] = hexkey;
      continue;
    }
    std::string_view pass = fe.material;
    if (pass.substr(0, 11) == "passphrase:")
      pass.remove_prefix(11);
    if (pass.size() < 8)
      return error{errc::invalid_argument,
                   "key file line " + std::to_string(fe.line) +
                       ": neither 64 hex digits nor a passphrase of at least 8 characters"};
    if (salt.empty())
      return error{errc::invalid_argument, "a passphrase key needs a salt"};
    keys[fe.id] = derive_key(pass, salt);
  }
  return from_keys(std::move(keys));
}

result<std::shared_ptr<const keyring>> keyring::load(const std::string& key_file,
                                                     const std::string& salt_file) {
  auto read_all = [](const std::string& path, std::string& out) -> status {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      return status{errc::io_error, "cannot open " + path + ": " + std::strerror(errno)};
    char buf[4096];
    for (;;) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0) {
        int e = errno;
        ::close(fd);
        return status{errc::io_error, "cannot read " + path + ": " + std::strerror(e)};
      }
      if (n == 0)
        break;
      out.append(buf, static_cast<size_t>(n));
      if (out.size() > (1u << 20)) {
        ::close(fd);
        return status{errc::invalid_argument, path + " is larger than 1 MiB: not a key file"};
      }
    }
    ::close(fd);
    return {};
  };
  std::string text;
  if (auto st = read_all(key_file, text); !st)
    return st.err();
  std::string salt;
  if (needs_salt(text)) {
    if (salt_file.empty())
      return error{errc::invalid_argument, "a passphrase key needs a salt file"};
    struct stat sb {};
    if (::stat(salt_file.c_str(), &sb) != 0) {
      if (errno != ENOENT)
        return error{errc::io_error, "cannot stat " + salt_file + ": " + std::strerror(errno)};
      std::string fresh = random_bytes(salt_bytes);
      std::string tmp = salt_file + ".tmp";
      int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      if (fd < 0)
        return error{errc::io_error, "cannot create " + tmp + ": " + std::strerror(errno)};
      bool ok = ::write(fd, fresh.data(), fresh.size()) == static_cast<ssize_t>(fresh.size()) &&
                ::fsync(fd) == 0;
      ::close(fd);
      if (!ok || ::rename(tmp.c_str(), salt_file.c_str()) != 0)
        return error{errc::io_error, "cannot write " + salt_file + ": " + std::strerror(errno)};
    }
    if (auto st = read_all(salt_file, salt); !st)
      return st.err();
    if (salt.size() != salt_bytes)
      return error{errc::corrupt, salt_file + " holds " + std::to_string(salt.size()) +
                                      " bytes, not a " + std::to_string(salt_bytes) + "-byte salt"};
  }
  auto kr = parse(text, salt);
  if (!kr)
    return error{kr.err().code, key_file + ": " + kr.err().message};
  return kr;
}

std::vector<uint32_t> keyring::ids() const {
  std::vector<uint32_t> out;
  for (auto& kv : keys_)
    out.push_back(kv.first);
  return out;
}

uint32_t keyring::key_id_of(std::string_view sealed) {
  return sealed.size() < overhead ? 0 : get_u32(sealed.data());
}

void keyring::seal(std::string_view aad, std::initializer_list<std::string_view> parts,
                   char* out) const {
  const std::string& key = keys_.at(active_);
  put_u32(out, active_);
  char* nonce = out + id_bytes;
  if (RAND_bytes(uc(nonce), static_cast<int>(nonce_bytes)) != 1)
    throw std::runtime_error("OpenSSL RAND_bytes failed");
  EVP_CIPHER_CTX* c = keyed_ctx(true, uids_.at(active_), key);
  int len = 0;
  if (EVP_EncryptInit_ex(c, nullptr, nullptr, nullptr, uc(nonce)) != 1 ||
      (!aad.empty() &&
       EVP_EncryptUpdate(c, nullptr, &len, uc(aad.data()), static_cast<int>(aad.size())) != 1))
    throw std::runtime_error("OpenSSL AES-GCM init failed");
  char* p = out + id_bytes + nonce_bytes;
  for (auto part : parts) {
    if (part.empty())
      continue;
    if (EVP_EncryptUpdate(c, uc(p), &len, uc(part.data()), static_cast<int>(part.size())) != 1)
      throw std::runtime_error("OpenSSL AES-GCM encrypt failed");
    p += len;
  }
  if (EVP_EncryptFinal_ex(c, uc(p), &len) != 1)
    throw std::runtime_error("OpenSSL AES-GCM final failed");
  p += len;
  if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, static_cast<int>(tag_bytes), p) != 1)
    throw std::runtime_error("OpenSSL AES-GCM tag failed");
}

std::string keyring::seal(std::string_view aad, std::string_view plain) const {
  std::string out(plain.size() + overhead, '\0');
  seal(aad, {plain}, out.data());
  return out;
}

status keyring::open(std::string_view aad, std::string_view sealed, std::string& plain) const {
  if (sealed.size() < overhead)
    return status{errc::corrupt, "sealed data of " + std::to_string(sealed.size()) +
                                     " bytes is shorter than its " + std::to_string(overhead) +
                                     "-byte envelope"};
  uint32_t id = get_u32(sealed.data());
  auto it = keys_.find(id);
  if (it == keys_.end())
    return status{errc::bad_key, "data is sealed with encryption key id " + std::to_string(id) +
                                     ", which the key file does not hold"};
  const char* nonce = sealed.data() + id_bytes;
  std::string_view ct = sealed.substr(id_bytes + nonce_bytes, sealed.size() - overhead);
  std::string tag{sealed.substr(sealed.size() - tag_bytes)};
  EVP_CIPHER_CTX* c = keyed_ctx(false, uids_.at(id), it->second);
  int len = 0;
  plain.resize(ct.size());
  if (EVP_DecryptInit_ex(c, nullptr, nullptr, nullptr, uc(nonce)) != 1 ||
      (!aad.empty() &&
       EVP_DecryptUpdate(c, nullptr, &len, uc(aad.data()), static_cast<int>(aad.size())) != 1) ||
      (!ct.empty() && EVP_DecryptUpdate(c, uc(plain.data()), &len, uc(ct.data()),
                                        static_cast<int>(ct.size())) != 1) ||
      EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, static_cast<int>(tag_bytes), tag.data()) != 1 ||
      EVP_DecryptFinal_ex(c, uc(plain.data()) + (ct.empty() ? 0 : len), &len) != 1) {
    plain.clear();
    return status{errc::corrupt, "sealed data (key id " + std::to_string(id) +
                                     ") fails authentication: tampered, moved, or sealed with "
                                     "another key of that id"};
  }
  return {};
}

// -- store secret -------------------------------------------------------------------

result<store_secret> open_secret(const keyring& kr, const std::map<uint32_t, std::string>& sealed,
                                 std::string_view what) {
  std::string held;
  for (auto& [id, blob] : sealed) {
    if (!held.empty())
      held += ", ";
    held += std::to_string(id);
  }
  std::optional<store_secret> got;
  for (auto& [id, blob] : sealed) {
    if (!kr.has(id))
      continue;
    std::string plain;
    std::string aad = std::string{secret_aad_prefix} + std::to_string(id);
    if (auto st = kr.open(aad, blob, plain); !st || plain.size() != key_bytes)
      return error{errc::bad_key, std::string{what} + " is encrypted and the key file's key " +
                                      std::to_string(id) +
                                      " does not open it (wrong key for that id)"};
    if (got && got->secret != plain)
      return error{errc::corrupt, std::string{what} + ": its sealed secrets differ"};
    got = store_secret{plain};
  }
  if (!got)
    return error{errc::bad_key, std::string{what} + " is encrypted with key id(s) " + held +
                                    "; the key file holds none of them"};
  return *got;
}

std::string seal_secret(const keyring& kr, const store_secret& s) {
  std::string aad = std::string{secret_aad_prefix} + std::to_string(kr.active());
  return kr.seal(aad, s.secret);
}

} // namespace kura::crypto
