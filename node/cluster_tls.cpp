// TLS on cluster links and the ops port (node/cluster_tls.hpp).
#include "node/cluster_tls.hpp"

#include <caf/actor_system.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>
#include <caf/openssl/publish.hpp>
#include <caf/send.hpp>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <cstdio>
#include <cstdlib>
#include <memory>

#include <dlfcn.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <mutex>

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

// -- failed handshakes ------------------------------------------------------------------
//
// caf::openssl calls SSL_accept/SSL_connect once on a new connection (they
// answer "want read"); the handshake then goes on inside SSL_read/SSL_write,
// and CAF drops a connection whose handshake fails without a word. The
// wrappers below notice a call that failed before the handshake finished on
// a socket (the client TLS port's sessions run over memory BIOs, without a
// socket, and audit themselves: node/tls.cpp) and report it once per
// connection: the peer's address, the side, OpenSSL's reason.

std::mutex refusal_mu;
std::function<void(const std::string&, const std::string&, const std::string&)> refusal_sink;

/// Per connection: the peer's address (taken when the handshake starts: a
/// peer that gave up may be gone when it fails) and whether it was reported.
struct handshake_note {
  std::string peer;
  bool reported = false;
};

void free_note(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<handshake_note*>(ptr);
}

int note_index() {
  static const int idx = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, free_note);
  return idx;
}

std::string peer_of(int fd) {
  sockaddr_storage sa{};
  socklen_t len = sizeof sa;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0)
    return "unknown peer";
  char host[INET6_ADDRSTRLEN] = {0};
  uint16_t port = 0;
  if (sa.ss_family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(&sa);
    ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    port = ntohs(in->sin_port);
  } else if (sa.ss_family == AF_INET6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&sa);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    port = ntohs(in6->sin6_port);
  }
  return std::string(host) + ":" + std::to_string(port);
}

/// The handshake starts (SSL_accept/SSL_connect on a socket): note the peer.
void start_handshake(SSL* ssl) {
  int fd = SSL_get_fd(ssl);
  int idx = note_index();
  if (fd < 0 || idx < 0 || SSL_get_ex_data(ssl, idx) != nullptr)
    return;
  int saved_errno = errno;
  SSL_set_ex_data(ssl, idx, new handshake_note{peer_of(fd), false});
  errno = saved_errno;
}

void check_handshake(SSL* ssl, int ret) {
  if (ret > 0 || SSL_is_init_finished(ssl))
    return;
  int idx = note_index();
  auto* note = idx < 0 ? nullptr : static_cast<handshake_note*>(SSL_get_ex_data(ssl, idx));
  if (!note || note->reported) // not a socket session of ours, or said already
    return;
  int err = SSL_get_error(ssl, ret);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
    return;
  unsigned long e = ERR_peek_error();
  long v = SSL_get_verify_result(ssl);
  // A peer that closed before saying anything is not a refusal (a port
  // probe, a CLI that gave up): only failures with a reason are reported.
  if (e == 0 && v == X509_V_OK)
    return;
  if (e != 0 && ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING && v == X509_V_OK)
    return;
  note->reported = true;
  std::string why;
  if (e != 0) {
    const char* r = ERR_reason_error_string(e);
    why = r ? r : "OpenSSL error " + std::to_string(e);
  } else {
    why = "certificate refused";
  }
  if (v != X509_V_OK)
    why += std::string(" (peer certificate: ") + X509_verify_cert_error_string(v) + ")";
  const auto& peer = note->peer;
  std::string side = SSL_is_server(ssl) ? "accept" : "connect";
  {
    std::lock_guard<std::mutex> lk(refusal_mu);
    if (refusal_sink)
      refusal_sink(peer, side, why);
  }
}

/// Calls OpenSSL's `real` with a clear error queue and notes a failed
/// handshake.
template <class Call>
int checked(SSL* ssl, Call&& real) {
  ERR_clear_error();
  int r = real();
  if (r <= 0)
    check_handshake(ssl, r);
  return r;
}

} // namespace

extern "C" {

int SSL_read(SSL* ssl, void* buf, int num) {
  using fn = int (*)(SSL*, void*, int);
  static const fn real = next_ssl_fn<fn>("SSL_read");
  return checked(ssl, [&] { return real(ssl, buf, num); });
}

int SSL_write(SSL* ssl, const void* buf, int num) {
  using fn = int (*)(SSL*, const void*, int);
  static const fn real = next_ssl_fn<fn>("SSL_write");
  return checked(ssl, [&] { return real(ssl, buf, num); });
}

int SSL_connect(SSL* ssl) {
  using fn = int (*)(SSL*);
  static const fn real = next_ssl_fn<fn>("SSL_connect");
  start_handshake(ssl);
  return checked(ssl, [&] { return real(ssl); });
}

int SSL_accept(SSL* ssl) {
  using fn = int (*)(SSL*);
  static const fn real = next_ssl_fn<fn>("SSL_accept");
  start_handshake(ssl);
  return checked(ssl, [&] { return real(ssl); });
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

void audit_forwarder::set(caf::actor resp) {
  std::lock_guard<std::mutex> lk(mu_);
  resp_ = std::move(resp);
}

void audit_forwarder::send(const std::string& event, const std::string& client,
                           const std::string& command, const std::string& result) {
  std::lock_guard<std::mutex> lk(mu_);
  if (resp_)
    caf::anon_send(resp_, audit_line_atom::value, event, client, command, result);
}

void set_cluster_tls_refusals(
    std::function<void(const std::string& peer, const std::string& side, const std::string& why)>
        sink) {
  std::lock_guard<std::mutex> lk(refusal_mu);
  refusal_sink = std::move(sink);
}

cluster_tls_refusal describe_cluster_tls_refusal(const std::string& peer, const std::string& side,
                                                 const std::string& why) {
  bool accept = side == "accept";
  return {std::string("cluster tls: ") + (accept ? "refused a connection from " : "dialing ") +
              peer + ": handshake failed: " + why,
          accept ? "TLS ACCEPT" : "TLS CONNECT", "DENIED handshake failed: " + why};
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
