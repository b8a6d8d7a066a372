// RESP over TLS against the real kura-node, with real clients: redis-cli
// --tls, redis-benchmark --tls and python3-redis with ssl=True. A throwaway
// PKI (a CA, server and client certificates, and a stranger CA with its own
// client certificate) is made with the openssl CLI for every run; no private
// key is committed. Covers: plain GET/SET over TLS; a client with an untrusted
// or no certificate, and plaintext on the TLS port, refused, logged and
// audited while the node keeps serving; CONFIG SET tls-* and SIGHUP reloading
// the certificate (and a bad one refused, the old one kept); TLS alone with
// --port=0; start-up errors for bad settings.
#include "node/node_process.hpp"

#include <doctest/doctest.h>

using namespace kura::test;

namespace {

/// Makes the test PKI in `dir` with the openssl CLI (EC P-256 keys: fast).
/// Files: ca.crt, server.{crt,key} (CN kura-server), server2.{crt,key}
/// (CN kura-server-2), client.{crt,key}, rogue-ca.crt, rogue.{crt,key}.
bool make_pki(const std::string& dir) {
  std::string sh = "set -e; cd '" + dir +
                   "'\n"
                   "key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $1 "
                   "2>/dev/null; }\n"
                   "ca() { key $1.key; openssl req -x509 -new -key $1.key -out $1.crt -days 2 "
                   "-subj \"/CN=$2\" 2>/dev/null; }\n"
                   "cert() { key $1.key; openssl req -new -key $1.key -out $1.csr -subj \"/CN=$2\" "
                   "2>/dev/null; printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > $1.ext; "
                   "openssl x509 -req -in $1.csr -CA $3.crt -CAkey $3.key -CAcreateserial "
                   "-out $1.crt -days 2 -extfile $1.ext 2>/dev/null; }\n"
                   "ca ca 'kura test CA'; ca rogue-ca 'stranger CA'\n"
                   "cert server kura-server ca; cert server2 kura-server-2 ca\n"
                   "cert client kura-client ca; cert rogue rogue-client rogue-ca\n"
                   "echo pki-ok\n";
  std::ofstream(dir + "/make.sh") << sh;
  int rc = -1;
  auto out = run_shell("bash '" + dir + "/make.sh' 2>&1", &rc);
  return rc == 0 && out.find("pki-ok") != std::string::npos;
}

std::vector<std::string> tls_args(const std::string& pki, uint16_t tls_port,
                                  const std::string& cert = "server") {
  return {"--kura.tls.port=" + std::to_string(tls_port),
          "--kura.tls.cert-file=" + pki + "/" + cert + ".crt",
          "--kura.tls.key-file=" + pki + "/" + cert + ".key",
          "--kura.tls.ca-file=" + pki + "/ca.crt"};
}

/// redis-cli over TLS with the CA and (unless `cert` is empty) a client
/// certificate; returns stdout+stderr.
std::string tls_cli(uint16_t port, const std::string& pki, const std::string& cert,
                    const std::string& args, int* rc = nullptr) {
  std::string cmd =
      "timeout 20 redis-cli -p " + std::to_string(port) + " --tls --cacert " + pki + "/ca.crt";
  if (!cert.empty())
    cmd += " --cert " + pki + "/" + cert + ".crt --key " + pki + "/" + cert + ".key";
  return run_shell(cmd + " " + args + " 2>&1", rc);
}

/// The subject of the certificate the server presents to a new connection.
std::string server_subject(uint16_t port, const std::string& pki) {
  auto out = run_shell("timeout 20 openssl s_client -connect 127.0.0.1:" + std::to_string(port) +
                       " -cert " + pki + "/client.crt -key " + pki +
                       "/client.key </dev/null 2>/dev/null | grep '^subject='");
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r'))
    out.pop_back();
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

/// Polls `pred` for up to 10 s.
template <class F>
bool eventually(F pred) {
  for (int i = 0; i < 200; ++i) {
    if (pred())
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

size_t count(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (auto p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1))
    ++n;
  return n;
}

} // namespace

TEST_CASE("TLS: redis-cli, redis-benchmark and python3-redis; strangers refused, node serves on") {
  temp_dir pki;
  REQUIRE(make_pki(pki.path));
  uint16_t tls_port = free_port();
  node_process n(tls_args(pki.path, tls_port));
  REQUIRE(n.ready);
  INFO(n.log());

  // plain GET/SET over TLS with redis-cli
  CHECK(tls_cli(tls_port, pki.path, "client", "SET greeting hello") == "OK\n");
  CHECK(tls_cli(tls_port, pki.path, "client", "GET greeting") == "hello\n");
  CHECK(n.cli("GET greeting") == "hello\n"); // the plain port sees the same data
  CHECK(tls_cli(tls_port, pki.path, "client", "CONFIG GET tls-port") ==
        "tls-port\n" + std::to_string(tls_port) + "\n");

  // a certificate from a stranger CA, and no certificate: refused
  int rc = 0;
  auto rogue = tls_cli(tls_port, pki.path, "rogue", "GET greeting", &rc);
  CHECK(rogue.find("hello") == std::string::npos);
  auto none = tls_cli(tls_port, pki.path, "", "GET greeting", &rc);
  CHECK(none.find("hello") == std::string::npos);
  // plaintext RESP on the TLS port: closed without an answer
  {
    client plain(tls_port);
    REQUIRE(plain.ok());
    plain.send("*1\r\n$4\r\nPING\r\n");
    CHECK(plain.closed_by_peer());
    CHECK(plain.buffer().find("PONG") == std::string::npos);
  }
  CHECK(eventually([&] { return count(n.log(), "kura-node: tls: closed") >= 3; }));
  auto log = n.log();
  CHECK(log.find("certificate verify failed") != std::string::npos);
  CHECK(log.find("peer did not return a certificate") != std::string::npos);
  CHECK(log.find("not a TLS handshake") != std::string::npos);
  CHECK(eventually(
      [&] { return count(read_file(n.data_dir + "/audit.log"), "\"event\":\"tls\"") >= 3; }));
  CHECK(read_file(n.data_dir + "/audit.log").find("DENIED handshake failed") != std::string::npos);

  // the node keeps serving TLS and plain clients
  CHECK(tls_cli(tls_port, pki.path, "client", "GET greeting") == "hello\n");
  CHECK(n.cli("PING") == "PONG\n");

  // redis-benchmark --tls
  auto bench =
      run_shell("timeout 60 redis-benchmark -p " + std::to_string(tls_port) + " --tls --cacert " +
                pki.path + "/ca.crt --cert " + pki.path + "/client.crt --key " + pki.path +
                "/client.key -t set,get -n 2000 -c 4 -P 4 -q 2>&1");
  INFO(bench);
  CHECK(bench.find("SET: ") != std::string::npos);
  CHECK(bench.find("GET: ") != std::string::npos);
  CHECK(count(bench, "requests per second") == 2);

  // python3-redis with ssl=True (Debian's python3, which has python3-redis)
  std::string script = pki.path + "/client.py";
  std::ofstream(script) << "import redis, sys\n"
                           "d = sys.argv[2]\n"
                           "r = redis.Redis(host='127.0.0.1', port=int(sys.argv[1]), ssl=True,\n"
                           "    ssl_ca_certs=d + '/ca.crt', ssl_certfile=d + '/client.crt',\n"
                           "    ssl_keyfile=d + '/client.key')\n"
                           "r.set('py', 'x' * 200000)\n"
                           "print('len', len(r.get('py')))\n"
                           "p = r.pipeline(transaction=False)\n"
                           "for i in range(500): p.set('k%d' % i, i)\n"
                           "for i in range(500): p.get('k%d' % i)\n"
                           "res = p.execute()\n"
                           "print('pipeline', sum(1 for x in res[500:] if x is not None))\n"
                           "print('greeting', r.get('greeting'))\n";
  auto py = run_shell("timeout 60 /usr/bin/python3 " + script + " " + std::to_string(tls_port) +
                          " " + pki.path + " 2>&1",
                      &rc);
  INFO(py);
  CHECK(rc == 0);
  CHECK(py.find("len 200000") != std::string::npos);
  CHECK(py.find("pipeline 500") != std::string::npos);
  CHECK(py.find("greeting b'hello'") != std::string::npos);
  CHECK(n.alive());
}

TEST_CASE("TLS: CONFIG SET tls-* and SIGHUP reload the certificate; a bad one keeps the old") {
  temp_dir pki;
  REQUIRE(make_pki(pki.path));
  // the node reads live.crt/live.key, which SIGHUP re-reads after we replace them
  std::filesystem::copy_file(pki.sub("server.crt"), pki.sub("live.crt"));
  std::filesystem::copy_file(pki.sub("server.key"), pki.sub("live.key"));
  uint16_t tls_port = free_port();
  node_process n(tls_args(pki.path, tls_port, "live"));
  REQUIRE(n.ready);
  INFO(n.log());
  CHECK(server_subject(tls_port, pki.path).find("CN = kura-server") != std::string::npos);

  // CONFIG SET: certificate and key together
  auto set = n.cli("CONFIG SET tls-cert-file " + pki.sub("server2.crt") + " tls-key-file " +
                   pki.sub("server2.key"));
  CHECK(set == "OK\n");
  CHECK(server_subject(tls_port, pki.path).find("CN = kura-server-2") != std::string::npos);
  CHECK(n.cli("CONFIG GET tls-cert-file") == "tls-cert-file\n" + pki.sub("server2.crt") + "\n");
  CHECK(tls_cli(tls_port, pki.path, "client", "PING") == "PONG\n");

  // a certificate without its key, a missing file, garbage: refused, old one stays
  auto mismatch = n.cli("CONFIG SET tls-cert-file " + pki.sub("server.crt"));
  CHECK(mismatch.find("ERR CONFIG SET failed") != std::string::npos);
  CHECK(mismatch.find("does not match") != std::string::npos);
  auto missing = n.cli("CONFIG SET tls-ca-cert-file " + pki.sub("nope.crt"));
  CHECK(missing.find("cannot read tls ca-file") != std::string::npos);
  std::ofstream(pki.sub("garbage.crt")) << "not a certificate\n";
  auto garbage = n.cli("CONFIG SET tls-cert-file " + pki.sub("garbage.crt") + " tls-key-file " +
                       pki.sub("server.key"));
  CHECK(garbage.find("cannot load tls cert-file") != std::string::npos);
  CHECK(n.cli("CONFIG SET tls-auth-clients maybe").find("yes, no, optional") != std::string::npos);
  CHECK(n.cli("CONFIG GET tls-cert-file") == "tls-cert-file\n" + pki.sub("server2.crt") + "\n");
  CHECK(server_subject(tls_port, pki.path).find("CN = kura-server-2") != std::string::npos);

  // tls-auth-clients no: a client without a certificate gets in; yes again: refused
  CHECK(n.cli("CONFIG SET tls-auth-clients no") == "OK\n");
  CHECK(tls_cli(tls_port, pki.path, "", "PING") == "PONG\n");
  CHECK(n.cli("CONFIG SET tls-auth-clients yes") == "OK\n");
  CHECK(tls_cli(tls_port, pki.path, "", "PING").find("PONG") == std::string::npos);

  // SIGHUP re-reads the configured files: back to live.* with server2 in them
  CHECK(n.cli("CONFIG SET tls-cert-file " + pki.sub("live.crt") + " tls-key-file " +
              pki.sub("live.key")) == "OK\n");
  CHECK(server_subject(tls_port, pki.path).find("CN = kura-server") != std::string::npos);
  std::filesystem::copy_file(pki.sub("server2.crt"), pki.sub("live.crt"),
                             std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(pki.sub("server2.key"), pki.sub("live.key"),
                             std::filesystem::copy_options::overwrite_existing);
  ::kill(n.pid, SIGHUP);
  CHECK(eventually([&] { return n.log().find("TLS certificate reloaded") != std::string::npos; }));
  CHECK(server_subject(tls_port, pki.path).find("CN = kura-server-2") != std::string::npos);

  // a broken file and SIGHUP: logged, the old certificate stays in use
  std::ofstream(pki.sub("live.crt"), std::ios::trunc) << "broken\n";
  ::kill(n.pid, SIGHUP);
  CHECK(eventually([&] { return n.log().find("TLS reload failed") != std::string::npos; }));
  CHECK(server_subject(tls_port, pki.path).find("CN = kura-server-2") != std::string::npos);
  CHECK(tls_cli(tls_port, pki.path, "client", "PING") == "PONG\n");
  CHECK(n.alive());
  CHECK(n.stop() == 0);
}

TEST_CASE("TLS alone (--port=0) with auth-clients optional") {
  temp_dir pki;
  REQUIRE(make_pki(pki.path));
  temp_dir data;
  uint16_t tls_port = free_port();
  auto args = tls_args(pki.path, tls_port);
  args.push_back("--kura.tls.auth-clients=optional");
  args.push_back("--port=0");
  args.push_back("--metrics-port=0");
  args.push_back("--cluster-port=0");
  args.push_back("--data-dir=" + data.path);
  std::string log_path = data.path + ".log";
  pid_t pid = ::fork();
  if (pid == 0) {
    int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    std::vector<std::string> all{bin_dir() + "/kura-node"};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  REQUIRE(pid > 0);
  bool ready = eventually([&] { return read_file(log_path).find("ready:") != std::string::npos; });
  INFO(read_file(log_path));
  CHECK(ready);
  CHECK(read_file(log_path).find("RESP on -, RESP over TLS on 127.0.0.1:" +
                                 std::to_string(tls_port)) != std::string::npos);
  // optional: no certificate is fine, a trusted one is fine, a stranger's is not
  CHECK(tls_cli(tls_port, pki.path, "", "SET a 1") == "OK\n");
  CHECK(tls_cli(tls_port, pki.path, "client", "GET a") == "1\n");
  CHECK(tls_cli(tls_port, pki.path, "rogue", "GET a").find("1\n") == std::string::npos);
  CHECK(tls_cli(tls_port, pki.path, "", "CONFIG GET port") == "port\n0\n");
  ::kill(pid, SIGTERM);
  int st = 0;
  ::waitpid(pid, &st, 0);
  CHECK(WIFEXITED(st));
  CHECK(WEXITSTATUS(st) == 0);
  std::error_code ec;
  std::filesystem::remove(log_path, ec);
}

TEST_CASE("TLS settings that cannot work stop the node at start with one line") {
  temp_dir pki;
  REQUIRE(make_pki(pki.path));
  temp_dir data;
  auto base = [&] {
    return std::vector<std::string>{"--port=" + std::to_string(free_port()), "--metrics-port=0",
                                    "--cluster-port=0", "--data-dir=" + data.path};
  };
  // The node must exit 1 and name the setting; on failure the node's output
  // is printed (an ASan run once exited 1 without the expected line, and the
  // test did not say what it printed instead).
  auto refuses = [](const std::vector<std::string>& args, const std::string& says) {
    std::string out;
    int rc = run_node_once(args, out);
    INFO("expected \"", says, "\"; kura-node printed:\n", out);
    CHECK(rc == 1);
    CHECK(out.find(says) != std::string::npos);
  };
  auto a = base();
  a.push_back("--kura.tls.port=" + std::to_string(free_port()));
  refuses(a, "needs kura.tls.cert-file and kura.tls.key-file");

  a = base();
  auto t = tls_args(pki.path, free_port());
  t[2] = "--kura.tls.key-file=" + pki.sub("server2.key"); // not server.crt's key
  a.insert(a.end(), t.begin(), t.end());
  refuses(a, "does not match");

  a = base();
  t = tls_args(pki.path, free_port());
  t[1] = "--kura.tls.cert-file=" + pki.sub("missing.crt");
  a.insert(a.end(), t.begin(), t.end());
  refuses(a, "cannot read tls cert-file");

  a = base();
  a[0] = "--port=0";
  refuses(a, "0 only with kura.tls.port");

  a = base();
  t = tls_args(pki.path, free_port());
  t.push_back("--kura.tls.auth-clients=sometimes");
  a.insert(a.end(), t.begin(), t.end());
  refuses(a, "kura.tls.auth-clients");
}
