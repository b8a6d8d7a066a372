#!/usr/bin/env python3
"""fault_proxy: a fault-injecting TCP proxy on loopback for the cluster tests.

    fault_proxy.py CONTROL_PORT LISTEN_PORT:TARGET_PORT [LISTEN_PORT:TARGET_PORT ...]

Forwards every LISTEN_PORT on 127.0.0.1 to TARGET_PORT on 127.0.0.1. A line on
the control port (one TCP connection per command, answered "ok\\n") changes
what happens to the traffic of every route:

    pass        forward bytes (the start state)
    delay MS    hold every chunk MS milliseconds before forwarding it
    drop        read and discard everything; connections stay open (a
                partition without resets: only timeouts notice it)
    cut         reset every open connection and every new one (a partition
                with resets, as when a link or a host goes away)
    heal        back to pass; connections that lost bytes while dropped are
                reset, so both ends reconnect cleanly

Prints "ready" on stdout once every port listens. Ends on SIGTERM or EOF of
stdin is not watched; the test ends it by pid.
"""
import os
import signal
import socket
import struct
import sys
import threading
import time

lock = threading.Lock()
mode = "pass"
delay_s = 0.0
conns = set()  # open Pair objects


class Pair:
    """A proxied connection: the client side, the upstream side, and whether
    bytes were lost while dropping."""

    def __init__(self, client, up):
        self.client, self.up, self.lost = client, up, False


def reset(sock):
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


def close_pair(pair):
    with lock:
        conns.discard(pair)
    reset(pair.client)
    reset(pair.up)


def pump(src, dst, pair):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            with lock:
                m, d = mode, delay_s
            if m == "drop":
                pair.lost = True
                continue
            if m == "cut":
                break
            if m == "delay" and d > 0:
                time.sleep(d)
            dst.sendall(data)
    except OSError:
        pass
    close_pair(pair)


def serve(listener, target_port):
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        with lock:
            m = mode
        if m == "cut":
            reset(client)
            continue
        try:
            up = socket.create_connection(("127.0.0.1", target_port), timeout=5)
            up.settimeout(None)
        except OSError:
            reset(client)
            continue
        for s in (client, up):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pair = Pair(client, up)
        with lock:
            conns.add(pair)
        threading.Thread(target=pump, args=(client, up, pair), daemon=True).start()
        threading.Thread(target=pump, args=(up, client, pair), daemon=True).start()


def control(listener):
    global mode, delay_s
    while True:
        c, _ = listener.accept()
        try:
            line = c.makefile().readline().strip().split()
            victims = []
            with lock:
                if line and line[0] in ("pass", "heal"):
                    victims = [p for p in conns if p.lost]
                    mode, delay_s = "pass", 0.0
                elif line and line[0] == "delay" and len(line) == 2:
                    mode, delay_s = "delay", int(line[1]) / 1000.0
                elif line and line[0] == "drop":
                    mode = "drop"
                elif line and line[0] == "cut":
                    mode = "cut"
                    victims = list(conns)
                else:
                    c.sendall(b"error: pass | delay MS | drop | cut | heal\n")
                    continue
            for p in victims:
                close_pair(p)
            c.sendall(b"ok\n")
        except OSError:
            pass
        finally:
            c.close()


def listen(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(128)
    return s


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        sys.exit(1)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    ctl = listen(int(sys.argv[1]))
    for route in sys.argv[2:]:
        lp, tp = route.split(":")
        threading.Thread(target=serve, args=(listen(int(lp)), int(tp)), daemon=True).start()
    print("ready", flush=True)
    control(ctl)


if __name__ == "__main__":
    main()
