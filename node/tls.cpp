#include "node/tls.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>

namespace kura::node {

namespace {

/// OpenSSL's queued errors as one line (and the queue emptied).
std::string openssl_errors() {
  std::string out;
  unsigned long e;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    const char* reason = ERR_reason_error_string(e);
    if (!out.empty())
      out += "; ";
    out += reason ? reason : buf;
  }
  return out;
}

std::string name_of(X509_NAME* n) {
  if (!n)
    return {};
  char buf[512];
  X509_NAME_oneline(n, buf, sizeof(buf));
  return buf;
}

std::string not_after(X509* cert) {
  BIO* b = BIO_new(BIO_s_mem());
  if (!b)
    return {};
  ASN1_TIME_print(b, X509_get0_notAfter(cert));
  char* p = nullptr;
  long n = BIO_get_mem_data(b, &p);
  std::string s(p, static_cast<size_t>(n > 0 ? n : 0));
  BIO_free(b);
  return s;
}

/// Can `path` be opened for reading? (OpenSSL's "system lib" says less.)
std::string readable(const std::string& what, const std::string& path) {
  if (path.empty())
    return what + " is not set";
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f)
    return "cannot read " + what + " '" + path + "'";
  std::fclose(f);
  return {};
}

} // namespace

std::string check_tls_auth_clients(std::string_view auth) {
  if (auth == "yes" || auth == "no" || auth == "optional")
    return {};
  return "yes, no or optional";
}

// -- tls_context ----------------------------------------------------------------

tls_context::~tls_context() {
  SSL_CTX_free(ctx_);
}

std::shared_ptr<const tls_context> tls_context::load(const tls_settings& s, std::string& err) {
  ERR_clear_error();
  err = readable("tls cert-file", s.cert_file);
  if (err.empty())
    err = readable("tls key-file", s.key_file);
  if (err.empty() && !s.ca_file.empty())
    err = readable("tls ca-file", s.ca_file);
  if (err.empty())
    err = check_tls_auth_clients(s.auth_clients).empty() ? ""
                                                         : "tls auth-clients: yes, no or optional";
  if (!err.empty())
    return nullptr;
  std::shared_ptr<tls_context> c(new tls_context);
  c->ctx_ = SSL_CTX_new(TLS_server_method());
  if (!c->ctx_) {
    err = "cannot create a TLS context: " + openssl_errors();
    return nullptr;
  }
  SSL_CTX* ctx = c->ctx_;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                               SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  static const unsigned char sid[] = "kura";
  SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1);
  if (SSL_CTX_use_certificate_chain_file(ctx, s.cert_file.c_str()) != 1) {
    err = "cannot load tls cert-file '" + s.cert_file + "': " + openssl_errors();
    return nullptr;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, s.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    bool mismatch = ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH;
    err = (mismatch ? "tls key-file '" + s.key_file + "' does not match cert-file '" + s.cert_file
                    : "cannot load tls key-file '" + s.key_file) +
          "': " + openssl_errors();
    return nullptr;
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    err = "tls key-file '" + s.key_file + "' does not match cert-file '" + s.cert_file +
          "': " + openssl_errors();
    return nullptr;
  }
  if (!s.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, s.ca_file.c_str(), nullptr) != 1) {
      err = "cannot load tls ca-file '" + s.ca_file + "': " + openssl_errors();
      return nullptr;
    }
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(s.ca_file.c_str());
    if (!names) {
      err = "no CA certificate in tls ca-file '" + s.ca_file + "': " + openssl_errors();
      return nullptr;
    }
    SSL_CTX_set_client_CA_list(ctx, names);
    int mode = s.auth_clients == "yes"        ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
               : s.auth_clients == "optional" ? SSL_VERIFY_PEER
                                              : SSL_VERIFY_NONE;
    SSL_CTX_set_verify(ctx, mode, nullptr);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }
  if (X509* cert = SSL_CTX_get0_certificate(ctx)) {
    c->desc_ = name_of(X509_get_subject_name(cert)) + "; expires " + not_after(cert);
    if (X509_cmp_current_time(X509_get0_notAfter(cert)) < 0)
      c->desc_ += " (EXPIRED)";
  }
  ERR_clear_error();
  return c;
}

// -- tls_conn -------------------------------------------------------------------

tls_conn::tls_conn(std::shared_ptr<const tls_context> ctx) : ctx_(std::move(ctx)) {
  ssl_ = SSL_new(ctx_->native());
  rbio_ = BIO_new(BIO_s_mem());
  wbio_ = BIO_new(BIO_s_mem());
  if (!ssl_ || !rbio_ || !wbio_) {
    err_ = "cannot create a TLS session: " + openssl_errors();
    BIO_free(rbio_);
    BIO_free(wbio_);
    SSL_free(ssl_);
    ssl_ = nullptr;
    rbio_ = wbio_ = nullptr;
    return;
  }
  // an empty memory BIO says "retry" rather than EOF
  BIO_set_mem_eof_return(rbio_, -1);
  BIO_set_mem_eof_return(wbio_, -1);
  SSL_set_bio(ssl_, rbio_, wbio_); // ssl_ owns both now
  SSL_set_accept_state(ssl_);
}

tls_conn::~tls_conn() {
  SSL_free(ssl_);
}

void tls_conn::drain(std::vector<char>& wire) {
  size_t n = BIO_ctrl_pending(wbio_);
  if (n == 0)
    return;
  auto old = wire.size();
  wire.resize(old + n);
  int got = BIO_read(wbio_, wire.data() + old, static_cast<int>(n));
  wire.resize(old + static_cast<size_t>(got > 0 ? got : 0));
}

std::string tls_conn::failure(int ret, const char* what) {
  int e = SSL_get_error(ssl_, ret);
  std::string why;
  if (e == SSL_ERROR_SSL) {
    why = openssl_errors();
    long v = SSL_get_verify_result(ssl_);
    if (v != X509_V_OK)
      why += std::string(" (client certificate: ") + X509_verify_cert_error_string(v) + ")";
  } else if (e == SSL_ERROR_SYSCALL) {
    why = "unexpected end of stream";
  } else {
    why = "SSL error " + std::to_string(e);
  }
  ERR_clear_error();
  return std::string(what) + ": " + (why.empty() ? "unknown error" : why);
}

bool tls_conn::receive(const char* data, size_t n, std::string& plain, std::vector<char>& wire) {
  if (!ssl_)
    return false;
  if (!err_.empty())
    return false;
  if (n == 0)
    return true;
  if (!started_) {
    started_ = true;
    // A TLS connection opens with a handshake record (content type 22).
    // Anything else is most likely a plaintext client on the TLS port.
    if (static_cast<unsigned char>(data[0]) != 0x16) {
      err_ = "not a TLS handshake (plaintext client on the TLS port?)";
      return false;
    }
  }
  if (BIO_write(rbio_, data, static_cast<int>(n)) != static_cast<int>(n)) {
    err_ = "TLS input buffer: " + openssl_errors();
    return false;
  }
  if (!established_) {
    int r = SSL_do_handshake(ssl_);
    if (r != 1) {
      int e = SSL_get_error(ssl_, r);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        drain(wire);
        return true;
      }
      err_ = failure(r, "handshake failed");
      drain(wire); // the alert tells the client why
      return false;
    }
    established_ = true;
  }
  char buf[16384];
  for (;;) {
    int r = SSL_read(ssl_, buf, sizeof(buf));
    if (r > 0) {
      plain.append(buf, static_cast<size_t>(r));
      continue;
    }
    int e = SSL_get_error(ssl_, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
      break;
    if (e == SSL_ERROR_ZERO_RETURN) {
      peer_closed_ = true;
      break;
    }
    err_ = failure(r, "TLS read failed");
    drain(wire);
    return false;
  }
  if (!pending_.empty()) {
    std::string p;
    p.swap(pending_);
    if (!send(p.data(), p.size(), wire))
      return false;
  }
  drain(wire);
  return true;
}

bool tls_conn::send(const char* data, size_t n, std::vector<char>& wire) {
  if (!ssl_ || !err_.empty())
    return false;
  if (!established_) {
    pending_.append(data, n);
    return true;
  }
  while (n > 0) {
    int chunk = static_cast<int>(std::min<size_t>(n, 1u << 30));
    int r = SSL_write(ssl_, data, chunk);
    if (r <= 0) {
      err_ = failure(r, "TLS write failed");
      drain(wire);
      return false;
    }
    data += r;
    n -= static_cast<size_t>(r);
  }
  drain(wire);
  return true;
}

void tls_conn::shutdown(std::vector<char>& wire) {
  if (!ssl_ || !established_ || !err_.empty())
    return;
  SSL_shutdown(ssl_);
  ERR_clear_error();
  drain(wire);
}

std::string tls_conn::peer_subject() const {
  if (!ssl_)
    return {};
  X509* cert = SSL_get0_peer_certificate(ssl_);
  return cert ? name_of(X509_get_subject_name(cert)) : std::string{};
}

std::string tls_conn::protocol() const {
  if (!ssl_ || !established_)
    return {};
  return std::string(SSL_get_version(ssl_)) + " " + SSL_get_cipher_name(ssl_);
}

// -- tls_server -----------------------------------------------------------------

std::string tls_server::start(tls_settings s) {
  std::string err;
  auto ctx = tls_context::load(s, err);
  if (!ctx)
    return err;
  s_ = std::move(s);
  ctx_ = std::move(ctx);
  return {};
}

std::string tls_server::reload() {
  std::string err;
  auto ctx = tls_context::load(s_, err);
  if (!ctx)
    return err;
  ctx_ = std::move(ctx);
  ++reloads_;
  return {};
}

std::string tls_server::get(std::string_view name) const {
  if (name == "tls-port")
    return std::to_string(s_.port);
  if (name == "tls-cert-file")
    return s_.cert_file;
  if (name == "tls-key-file")
    return s_.key_file;
  if (name == "tls-ca-cert-file")
    return s_.ca_file;
  if (name == "tls-auth-clients")
    return s_.auth_clients;
  return {};
}

std::string tls_server::apply(const std::vector<std::pair<std::string, std::string>>& changes) {
  tls_settings next = s_;
  for (auto& [name, value] : changes) {
    if (name == "tls-cert-file")
      next.cert_file = value;
    else if (name == "tls-key-file")
      next.key_file = value;
    else if (name == "tls-ca-cert-file")
      next.ca_file = value;
    else if (name == "tls-auth-clients")
      next.auth_clients = value;
    else
      return "unknown TLS setting '" + name + "'";
  }
  std::string err;
  auto ctx = tls_context::load(next, err);
  if (!ctx)
    return err;
  s_ = std::move(next);
  ctx_ = std::move(ctx);
  ++reloads_;
  return {};
}

} // namespace kura::node
