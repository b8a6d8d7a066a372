# bench/cluster/kclus.py: what bench/cluster's Python scripts share: start
# kura-node processes as a cluster on loopback (temporary data dirs, ports from
# PORT_BASE), a minimal RESP client, `kura members --json`, /metrics scrapes.
# Processes are ended by pid only (SIGTERM, then SIGKILL), never by name.
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(os.environ.get("BUILD_DIR", os.path.join(ROOT, "build")), "bin")


class Resp:
    """One RESP2 connection; call() sends a command and returns the decoded reply
    (bytes, int, list, None, or an Exception instance for an error reply)."""

    def __init__(self, port, timeout=10.0):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self):
        self.s.close()

    def _line(self):
        while b"\r\n" not in self.buf:
            d = self.s.recv(65536)
            if not d:
                raise ConnectionError("closed")
            self.buf += d
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _read(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest
        if t == b"-":
            return Exception(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                d = self.s.recv(65536)
                if not d:
                    raise ConnectionError("closed")
                self.buf += d
            v, self.buf = self.buf[:n], self.buf[n + 2:]
            return v
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise ValueError("bad reply %r" % line)

    def send(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.s.sendall(b"".join(out))

    def call(self, *args):
        self.send(*args)
        return self._read()

    def pipeline(self, cmds):
        self.s.sendall(b"".join(
            b"*%d\r\n" % len(c) + b"".join(
                b"$%d\r\n%s\r\n" % (len(x), x)
                for x in (a if isinstance(a, bytes) else str(a).encode() for a in c))
            for c in cmds))
        return [self._read() for _ in cmds]


class Node:
    def __init__(self, cluster, name, idx):
        self.cluster, self.name, self.idx = cluster, name, idx
        base = cluster.base
        self.port, self.cport, self.mport = base + idx, base + 100 + idx, base + 200 + idx
        self.dir = os.path.join(cluster.dir, name)
        self.proc = None

    def start(self, seeds=True):
        args = [os.path.join(BIN, "kura-node"), "--port=%d" % self.port,
                "--cluster-port=%d" % self.cport, "--metrics-port=%d" % self.mport,
                "--data-dir=" + self.dir, "--kura.cluster.node-id=" + self.name]
        if seeds and self.idx > 1:
            args.append("--kura.cluster.seeds=127.0.0.1:%d" % (self.cluster.base + 101))
        if seeds and self.idx == 1 and self.cluster.started_once.get(self.name):
            # a restarted founder rejoins through the others
            args.append("--kura.cluster.seeds=" + ",".join(
                "127.0.0.1:%d" % n.cport for n in self.cluster.nodes if n is not self))
        args += self.cluster.flags
        self.log = open(os.path.join(self.cluster.dir, self.name + ".log"), "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log)
        self.cluster.started_once[self.name] = True

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self):
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def members(self, timeout_ms=2000):
        r = subprocess.run([os.path.join(BIN, "kura"), "--timeout=%d" % timeout_ms,
                            "--port=%d" % self.cport, "--json", "members"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            return None
        try:
            return {m["id"]: m for m in json.loads(r.stdout)}
        except (ValueError, KeyError, TypeError):
            return None

    def metrics(self):
        out = {}
        try:
            txt = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.mport,
                                         timeout=5).read().decode()
        except OSError:
            return out
        for line in txt.splitlines():
            if line.startswith("#") or " " not in line:
                continue
            k, v = line.rsplit(" ", 1)
            try:
                out[k] = float(v)
            except ValueError:
                pass
        return out


class Cluster:
    def __init__(self, n, flags):
        self.base = int(os.environ.get("PORT_BASE", "26600"))
        self.dir = tempfile.mkdtemp(prefix="kura-bench-cluster-")
        self.flags = flags
        self.started_once = {}
        self.nodes = [Node(self, "n%d" % i, i) for i in range(1, n + 1)]

    def __enter__(self):
        for nd in self.nodes:
            nd.start()
        if not self.wait_alive(len(self.nodes), 60):
            raise RuntimeError("cluster did not form (logs in %s)" % self.dir)
        return self

    def __exit__(self, *exc):
        for nd in self.nodes:
            try:
                nd.stop()
            except Exception:
                pass
        if os.environ.get("KEEP") is None:
            shutil.rmtree(self.dir, ignore_errors=True)

    def wait_alive(self, n, timeout_s, nodes=None):
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            ok = True
            for nd in nodes or self.nodes:
                m = nd.members()
                if not m or sum(1 for x in m.values() if x["state"] == "alive") != n:
                    ok = False
                    break
            if ok:
                return True
            time.sleep(0.2)
        return False


def owners(port, key):
    c = Resp(port)
    try:
        r = c.call("kura.owners", key)
        return [x.decode() for x in r]
    finally:
        c.close()


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def median(xs):
    return statistics.median(xs) if xs else float("nan")
