// TLS for the RESP front end, through OpenSSL with memory BIOs. The broker
// keeps its sockets; a TLS connection only puts a tls_conn between the bytes
// the scribe receives and the RESP parser (receive: ciphertext in, plaintext
// out) and between the replies and the scribe's write buffer (send). Nothing
// else in the front end knows about TLS.
//
// tls_context is one loaded certificate + key (+ CA for client certificates)
// as an SSL_CTX. tls_server holds the settings and the current context:
// CONFIG SET tls-* and SIGHUP build a new context from the files and swap it
// in only if it loads, so a bad certificate leaves the old one serving.
// Connections keep the context they started with.
//
// Thread safety: none; everything is owned by the RESP broker (one thread).
// No CAF here.
#pragma once

#include "node/command_registry.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

struct ssl_ctx_st;
struct ssl_st;
struct bio_st;

namespace kura::node {

/// kura.tls.* (docs/security.md). TLS is on when `port` is not 0.
struct tls_settings {
  uint16_t port = 0;
  std::string cert_file;
  std::string key_file;
  std::string ca_file;              ///< "" = clients are not asked for certificates
  std::string auth_clients = "yes"; ///< yes | no | optional (with a CA file, as Redis)
};

/// "" when `auth` is yes, no or optional.
std::string check_tls_auth_clients(std::string_view auth);

/// One loaded server certificate, key and optional client CA. Immutable.
class tls_context {
public:
  /// Loads the files; nullptr and `err` (one line, with the file and
  /// OpenSSL's reason) when any of them does not load or the key does not
  /// match the certificate.
  static std::shared_ptr<const tls_context> load(const tls_settings& s, std::string& err);
  ~tls_context();
  tls_context(const tls_context&) = delete;
  tls_context& operator=(const tls_context&) = delete;

  ssl_ctx_st* native() const noexcept { return ctx_; }
  /// The certificate's subject and expiry, for logs ("CN=...; expires ...").
  const std::string& description() const noexcept { return desc_; }

private:
  tls_context() = default;
  ssl_ctx_st* ctx_ = nullptr;
  std::string desc_;
};

/// The server side of one TLS connection over memory BIOs.
class tls_conn {
public:
  explicit tls_conn(std::shared_ptr<const tls_context> ctx);
  ~tls_conn();
  tls_conn(const tls_conn&) = delete;
  tls_conn& operator=(const tls_conn&) = delete;

  /// Feeds bytes read from the socket. Appends decrypted bytes to `plain`
  /// and bytes to send (handshake, alerts) to `wire`. False on a fatal
  /// error (failed handshake, untrusted certificate, plaintext, bad record):
  /// error() says why; send `wire` and close.
  bool receive(const char* data, size_t n, std::string& plain, std::vector<char>& wire);
  /// Encrypts `n` bytes of replies into `wire` (held back until the
  /// handshake is done).
  bool send(const char* data, size_t n, std::vector<char>& wire);
  /// Appends a close_notify alert to `wire`.
  void shutdown(std::vector<char>& wire);

  bool established() const noexcept { return established_; }
  /// True once the client sent close_notify.
  bool peer_closed() const noexcept { return peer_closed_; }
  const std::string& error() const noexcept { return err_; }
  /// The client certificate's subject ("" without one), and protocol/cipher.
  std::string peer_subject() const;
  std::string protocol() const;

private:
  void drain(std::vector<char>& wire);
  std::string failure(int ret, const char* what);

  std::shared_ptr<const tls_context> ctx_;
  ssl_st* ssl_ = nullptr;
  bio_st* rbio_ = nullptr; ///< socket -> OpenSSL (owned by ssl_)
  bio_st* wbio_ = nullptr; ///< OpenSSL -> socket (owned by ssl_)
  bool started_ = false;
  bool established_ = false;
  bool peer_closed_ = false;
  std::string pending_; ///< replies written before the handshake finished
  std::string err_;
};

/// The node's TLS state: settings and the context new connections get.
/// Implements CONFIG GET/SET tls-* (tls_control).
class tls_server final : public tls_control {
public:
  /// Loads the first context; "" or why not.
  std::string start(tls_settings s);
  /// Re-reads the current files (SIGHUP). On error the old context stays.
  std::string reload();

  std::shared_ptr<const tls_context> context() const { return ctx_; }
  const tls_settings& settings() const noexcept { return s_; }
  uint64_t reloads() const noexcept { return reloads_; }

  // -- tls_control -------------------------------------------------------------
  std::string get(std::string_view name) const override;
  std::string apply(const std::vector<std::pair<std::string, std::string>>& changes) override;

private:
  tls_settings s_;
  std::shared_ptr<const tls_context> ctx_;
  uint64_t reloads_ = 0;
};

} // namespace kura::node
