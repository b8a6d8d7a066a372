// TLS on cluster links and the ops port (node/cluster_tls.hpp).
#include "node/cluster_tls.hpp"

#include <caf/actor_system.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>
#include <caf/openssl/publish.hpp>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <cstdio>
#include <cstdlib>
#include <memory>

#include <dlfcn.h>

// -- OpenSSL's per-thread error queue and CAF ----------------------------------------
//
// SSL_get_error() reads the calling thread's error queue, which must be empty
// before each SSL I/O call. caf::openssl (0.17.6) never clears it: when one
// connection fails (a CLI that exits without close_notify: OpenSSL 3 queues
// "unexpected eof"; a peer with an untrusted certificate), the next
// SSL_read()/SSL_write() on *another* connection of the same multiplexer
// thread that only wants to read or write more sees that stale entry,
// SSL_get_error() answers SSL_ERROR_SSL and CAF closes a healthy cluster link.
// Measured: every `kura members` over TLS dropped the link between two nodes.
// These definitions in the executable take precedence over libssl's for
// libcaf_openssl (and for node/tls.cpp): they clear the queue, then call
// OpenSSL's own function (dlsym RTLD_NEXT).
namespace {

template <class F>
F next_ssl_fn(const char* name) {
  void* p = ::dlsym(RTLD_NEXT, name);
  if (p == nullptr) {
    std::fprintf(stderr, "kura: cannot find OpenSSL's %s: %s\n", name, ::dlerror());
    std::abort();
  }
  return reinterpret_cast<F>(p);
}

} // namespace

extern "C" {

int SSL_read(SSL* ssl, void* buf, int num) {
  using fn = int (*)(SSL*, void*, int);
  static const fn real = next_ssl_fn<fn>("SSL_read");
  ERR_clear_error();
  return real(ssl, buf, num);
}

int SSL_write(SSL* ssl, const void* buf, int num) {
  using fn = int (*)(SSL*, const void*, int);
  static const fn real = next_ssl_fn<fn>("SSL_write");
  ERR_clear_error();
  return real(ssl, buf, num);
}

int SSL_connect(SSL* ssl) {
  using fn = int (*)(SSL*);
  static const fn real = next_ssl_fn<fn>("SSL_connect");
  ERR_clear_error();
  return real(ssl);
}

int SSL_accept(SSL* ssl) {
  using fn = int (*)(SSL*);
  static const fn real = next_ssl_fn<fn>("SSL_accept");
  ERR_clear_error();
  return real(ssl);
}

} // extern "C"

namespace kura::node {

namespace {

std::string ssl_errors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty())
      out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

struct ctx_free {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct store_ctx_free {
  void operator()(X509_STORE_CTX* c) const { X509_STORE_CTX_free(c); }
};

} // namespace

std::string check_cluster_tls(const cluster_tls_files& f) {
  ERR_clear_error();
  std::unique_ptr<SSL_CTX, ctx_free> ctx(SSL_CTX_new(TLS_method()));
  if (!ctx)
    return "cannot create a TLS context: " + ssl_errors();
  // the key first: a certificate that does not match it then fails the check below
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), f.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
    return "cannot load private key '" + f.key_file + "': " + ssl_errors();
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), f.cert_file.c_str()) != 1)
    return "cannot load certificate '" + f.cert_file + "': " + ssl_errors();
  if (SSL_CTX_check_private_key(ctx.get()) != 1)
    return "private key '" + f.key_file + "' does not match certificate '" + f.cert_file +
           "': " + ssl_errors();
  if (SSL_CTX_load_verify_locations(ctx.get(), f.ca_file.c_str(), nullptr) != 1)
    return "cannot load CA file '" + f.ca_file + "': " + ssl_errors();
  // Our own certificate must chain to the CA: peers check it against theirs.
  X509* cert = SSL_CTX_get0_certificate(ctx.get());
  STACK_OF(X509)* chain = nullptr;
  SSL_CTX_get0_chain_certs(ctx.get(), &chain);
  std::unique_ptr<X509_STORE_CTX, store_ctx_free> vctx(X509_STORE_CTX_new());
  if (!cert || !vctx ||
      X509_STORE_CTX_init(vctx.get(), SSL_CTX_get_cert_store(ctx.get()), cert, chain) != 1)
    return "cannot check certificate '" + f.cert_file + "': " + ssl_errors();
  if (X509_verify_cert(vctx.get()) != 1)
    return "certificate '" + f.cert_file + "' does not verify against CA file '" + f.ca_file +
           "': " + X509_verify_cert_error_string(X509_STORE_CTX_get_error(vctx.get()));
  return {};
}

void configure_cluster_tls(caf::actor_system_config& cfg, const cluster_tls_files& f) {
  cfg.openssl_certificate = f.cert_file;
  cfg.openssl_key = f.key_file;
  cfg.openssl_cafile = f.ca_file; // any openssl.* set: mutual authentication (CAF-0.17.md §6)
  cfg.load<caf::openssl::manager>();
}

caf::expected<uint16_t> publish_ops_port(const caf::actor& a, uint16_t port, const char* bind) {
  auto& sys = a.home_system();
  if (sys.has_openssl_manager())
    return caf::openssl::publish(a, port, bind, true);
  return sys.middleman().publish(a, port, bind, true);
}

} // namespace kura::node
