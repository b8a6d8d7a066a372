// node/tls.hpp in one process: a real OpenSSL client (memory BIOs) against
// tls_conn, with certificates made here with libcrypto. Covers the
// handshake, replies written before it finished, large transfers both ways,
// plaintext refused, client certificates required, optional and untrusted,
// and tls_server's all-or-nothing reload.
#include "node/tls.hpp"

#include "test_util.hpp"

#include <doctest/doctest.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

using kura::node::tls_conn;
using kura::node::tls_context;
using kura::node::tls_server;
using kura::node::tls_settings;
using kura::testing::temp_dir;

namespace {

/// A P-256 key and a certificate for `cn`, signed by `ca` (self-signed when
/// null), written as PEM to `dir`/`name`.crt and .key.
struct made_cert {
  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;
  ~made_cert() {
    X509_free(cert);
    EVP_PKEY_free(key);
  }
};

std::unique_ptr<made_cert> make_cert(const std::string& dir, const std::string& name,
                                     const std::string& cn, const made_cert* ca) {
  auto m = std::make_unique<made_cert>();
  m->key = EVP_EC_gen("P-256");
  REQUIRE(m->key != nullptr);
  m->cert = X509_new();
  X509_set_version(m->cert, 2);
  static long serial = 1;
  ASN1_INTEGER_set(X509_get_serialNumber(m->cert), serial++);
  X509_gmtime_adj(X509_getm_notBefore(m->cert), -60);
  X509_gmtime_adj(X509_getm_notAfter(m->cert), 86400);
  X509_NAME* n = X509_get_subject_name(m->cert);
  X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(m->cert, ca ? X509_get_subject_name(ca->cert) : n);
  X509_set_pubkey(m->cert, m->key);
  if (!ca) { // a CA: verifiers want basicConstraints CA:TRUE
    X509_EXTENSION* ext =
        X509V3_EXT_conf_nid(nullptr, nullptr, NID_basic_constraints, "critical,CA:TRUE");
    REQUIRE(ext != nullptr);
    X509_add_ext(m->cert, ext, -1);
    X509_EXTENSION_free(ext);
  }
  REQUIRE(X509_sign(m->cert, ca ? ca->key : m->key, EVP_sha256()) > 0);
  FILE* f = std::fopen((dir + "/" + name + ".crt").c_str(), "w");
  PEM_write_X509(f, m->cert);
  std::fclose(f);
  f = std::fopen((dir + "/" + name + ".key").c_str(), "w");
  PEM_write_PrivateKey(f, m->key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
  return m;
}

struct pki {
  temp_dir dir;
  std::unique_ptr<made_cert> ca, server, server2, client, rogue_ca, rogue;
  pki() {
    ca = make_cert(dir.path, "ca", "test CA", nullptr);
    server = make_cert(dir.path, "server", "kura-server", ca.get());
    server2 = make_cert(dir.path, "server2", "kura-server-2", ca.get());
    client = make_cert(dir.path, "client", "kura-client", ca.get());
    rogue_ca = make_cert(dir.path, "rogue-ca", "stranger CA", nullptr);
    rogue = make_cert(dir.path, "rogue", "rogue-client", rogue_ca.get());
  }
  std::string f(const std::string& name) const { return dir.sub(name); }
  tls_settings settings(bool with_ca, const std::string& auth = "yes") const {
    tls_settings s;
    s.port = 1;
    s.cert_file = f("server.crt");
    s.key_file = f("server.key");
    if (with_ca)
      s.ca_file = f("ca.crt");
    s.auth_clients = auth;
    return s;
  }
};

/// An OpenSSL client over memory BIOs, trusting the test CA, with an
/// optional client certificate.
struct client {
  SSL_CTX* ctx = nullptr;
  SSL* ssl = nullptr;
  BIO* in = nullptr;  // server -> client
  BIO* out = nullptr; // client -> server
  client(const pki& p, const std::string& cert) {
    ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_load_verify_locations(ctx, p.f("ca.crt").c_str(), nullptr);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    if (!cert.empty()) {
      SSL_CTX_use_certificate_file(ctx, p.f(cert + ".crt").c_str(), SSL_FILETYPE_PEM);
      SSL_CTX_use_PrivateKey_file(ctx, p.f(cert + ".key").c_str(), SSL_FILETYPE_PEM);
    }
    ssl = SSL_new(ctx);
    in = BIO_new(BIO_s_mem());
    out = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(in, -1);
    BIO_set_mem_eof_return(out, -1);
    SSL_set_bio(ssl, in, out);
    SSL_set_connect_state(ssl);
  }
  ~client() {
    SSL_free(ssl);
    SSL_CTX_free(ctx);
  }
  std::string take_output() {
    std::string s(BIO_ctrl_pending(out), '\0');
    if (!s.empty())
      BIO_read(out, s.data(), static_cast<int>(s.size()));
    return s;
  }
  void feed(const std::vector<char>& wire) {
    if (!wire.empty())
      BIO_write(in, wire.data(), static_cast<int>(wire.size()));
  }
  /// Reads whatever plaintext is available.
  std::string read_all() {
    std::string got;
    char buf[16384];
    int r;
    while ((r = SSL_read(ssl, buf, sizeof(buf))) > 0)
      got.append(buf, static_cast<size_t>(r));
    return got;
  }
  std::string subject() const {
    X509* c = SSL_get0_peer_certificate(ssl);
    char buf[256] = {0};
    if (c)
      X509_NAME_oneline(X509_get_subject_name(c), buf, sizeof(buf));
    return buf;
  }
};

/// Moves bytes both ways until neither side has anything to say. False when
/// the server side failed.
bool pump(client& c, tls_conn& s, std::string& plain) {
  for (int i = 0; i < 100; ++i) {
    SSL_do_handshake(c.ssl); // no-op once established
    auto bytes = c.take_output();
    std::vector<char> wire;
    if (!bytes.empty() && !s.receive(bytes.data(), bytes.size(), plain, wire)) {
      c.feed(wire);
      return false;
    }
    c.feed(wire);
    if (bytes.empty() && wire.empty())
      return true;
  }
  return true;
}

} // namespace

TEST_CASE("tls_conn: handshake, early replies, large transfers both ways") {
  pki p;
  std::string err;
  auto ctx = tls_context::load(p.settings(true), err);
  REQUIRE_MESSAGE(ctx, err);
  CHECK(ctx->description().find("CN=kura-server") != std::string::npos);
  tls_conn s(ctx);
  client c(p, "client");
  std::vector<char> wire;
  CHECK(s.send("+early\r\n", 8, wire)); // held back until the handshake is done
  CHECK(wire.empty());
  std::string plain;
  REQUIRE_MESSAGE(pump(c, s, plain), s.error());
  CHECK(s.established());
  CHECK(SSL_is_init_finished(c.ssl));
  CHECK(s.peer_subject().find("CN=kura-client") != std::string::npos);
  CHECK(s.protocol().find("TLSv1.3") != std::string::npos);
  CHECK(c.subject().find("CN=kura-server") != std::string::npos);
  CHECK(c.read_all() == "+early\r\n");

  // 1 MiB from the client, in pieces the size of socket reads
  std::string big(1 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i)
    big[i] = static_cast<char>('a' + i % 26);
  REQUIRE(SSL_write(c.ssl, big.data(), static_cast<int>(big.size())) ==
          static_cast<int>(big.size()));
  auto bytes = c.take_output();
  plain.clear();
  for (size_t off = 0; off < bytes.size(); off += 4096) {
    wire.clear();
    REQUIRE(s.receive(bytes.data() + off, std::min<size_t>(4096, bytes.size() - off), plain, wire));
  }
  CHECK(plain == big);

  // 1 MiB back
  wire.clear();
  REQUIRE(s.send(big.data(), big.size(), wire));
  CHECK(wire.size() > big.size()); // records add headers and tags
  c.feed(wire);
  CHECK(c.read_all() == big);

  // close_notify reaches the client, and the client's reaches us
  wire.clear();
  s.shutdown(wire);
  c.feed(wire);
  c.read_all();
  CHECK((SSL_get_shutdown(c.ssl) & SSL_RECEIVED_SHUTDOWN) != 0);
  SSL_shutdown(c.ssl);
  auto bye = c.take_output();
  wire.clear();
  plain.clear();
  CHECK(s.receive(bye.data(), bye.size(), plain, wire));
  CHECK(s.peer_closed());
}

TEST_CASE("tls_conn: plaintext, missing and untrusted client certificates are refused") {
  pki p;
  std::string err;
  auto ctx = tls_context::load(p.settings(true), err);
  REQUIRE(ctx);
  {
    tls_conn s(ctx);
    std::string plain;
    std::vector<char> wire;
    std::string ping = "*1\r\n$4\r\nPING\r\n";
    CHECK_FALSE(s.receive(ping.data(), ping.size(), plain, wire));
    CHECK(s.error().find("not a TLS handshake") != std::string::npos);
    CHECK(plain.empty());
  }
  {
    tls_conn s(ctx);
    client c(p, "");
    std::string plain;
    CHECK_FALSE(pump(c, s, plain));
    CHECK(s.error().find("peer did not return a certificate") != std::string::npos);
  }
  {
    tls_conn s(ctx);
    client c(p, "rogue");
    std::string plain;
    CHECK_FALSE(pump(c, s, plain));
    CHECK(s.error().find("certificate verify failed") != std::string::npos);
    CHECK_FALSE(s.established());
  }
  {
    // a record changed on the way: the session ends with an error, nothing decrypted
    tls_conn s(ctx);
    client c(p, "client");
    std::string plain;
    REQUIRE(pump(c, s, plain));
    REQUIRE(SSL_write(c.ssl, "*1\r\n$4\r\nPING\r\n", 14) == 14);
    auto bytes = c.take_output();
    bytes.back() = static_cast<char>(bytes.back() ^ 1);
    std::vector<char> wire;
    CHECK_FALSE(s.receive(bytes.data(), bytes.size(), plain, wire));
    CHECK(s.error().find("TLS read failed") != std::string::npos);
    CHECK(plain.empty());
  }
  // optional: no certificate is fine, an untrusted one is not
  auto opt = tls_context::load(p.settings(true, "optional"), err);
  REQUIRE(opt);
  {
    tls_conn s(opt);
    client c(p, "");
    std::string plain;
    CHECK(pump(c, s, plain));
    CHECK(s.established());
    CHECK(s.peer_subject().empty());
  }
  {
    tls_conn s(opt);
    client c(p, "rogue");
    std::string plain;
    CHECK_FALSE(pump(c, s, plain));
  }
  // no CA file: no certificate asked for
  auto none = tls_context::load(p.settings(false), err);
  REQUIRE(none);
  tls_conn s(none);
  client c(p, "");
  std::string plain;
  CHECK(pump(c, s, plain));
  CHECK(s.established());
}

TEST_CASE("tls_context and tls_server: bad files are refused and change nothing") {
  pki p;
  std::string err;
  auto s = p.settings(true);
  s.key_file = p.f("server2.key");
  CHECK_FALSE(tls_context::load(s, err));
  CHECK(err.find("does not match") != std::string::npos);
  s = p.settings(true);
  s.cert_file = p.f("missing.crt");
  CHECK_FALSE(tls_context::load(s, err));
  CHECK(err.find("cannot read tls cert-file") != std::string::npos);
  std::ofstream(p.f("garbage.crt")) << "-----BEGIN CERTIFICATE-----\nnot base64\n";
  s = p.settings(true);
  s.cert_file = p.f("garbage.crt");
  CHECK_FALSE(tls_context::load(s, err));
  CHECK(err.find("cannot load tls cert-file") != std::string::npos);
  s = p.settings(true);
  s.ca_file = p.f("server.key"); // not a certificate
  CHECK_FALSE(tls_context::load(s, err));
  s = p.settings(true, "sometimes");
  CHECK_FALSE(tls_context::load(s, err));

  tls_server srv;
  REQUIRE(srv.start(p.settings(true)).empty());
  auto first = srv.context();
  CHECK(srv.get("tls-cert-file") == p.f("server.crt"));
  CHECK(srv.get("tls-port") == "1");
  CHECK(srv.get("tls-auth-clients") == "yes");
  // a certificate without its key: refused, nothing changes
  CHECK_FALSE(srv.apply({{"tls-cert-file", p.f("server2.crt")}}).empty());
  CHECK(srv.context() == first);
  CHECK(srv.get("tls-cert-file") == p.f("server.crt"));
  // both together: applied; new connections get the new certificate
  CHECK(srv.apply({{"tls-cert-file", p.f("server2.crt")}, {"tls-key-file", p.f("server2.key")}})
            .empty());
  CHECK(srv.context() != first);
  CHECK(srv.context()->description().find("CN=kura-server-2") != std::string::npos);
  CHECK(srv.reloads() == 1);
  // a connection made before keeps its context
  tls_conn old(first);
  client c(p, "client");
  std::string plain;
  CHECK(pump(c, old, plain));
  CHECK(c.subject().find("CN=kura-server") != std::string::npos);
  CHECK(c.subject().find("kura-server-2") == std::string::npos);
  // reload() re-reads the same paths; a broken file keeps the old context
  auto cur = srv.context();
  std::ofstream(p.f("server2.crt"), std::ios::trunc) << "broken\n";
  CHECK_FALSE(srv.reload().empty());
  CHECK(srv.context() == cur);
}
