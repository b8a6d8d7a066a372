#!/usr/bin/python3
"""redis-py's RedisCluster reading keys while a slot is still streaming in.

usage: move_ask_redis_py.py RESP_PORT N SKIP

Run by tests/cluster/move_ask_test.cpp with Debian's python3-redis while a
kura node joins (the joiner runs kura.cluster.redirect=moved, so every
connection to it is in cluster mode). Reads mv:FIRST .. mv:LAST through a
RedisCluster that discovered the cluster through RESP_PORT and checks every
value (the test's value_of: 200 times the letter 'a' + i % 26, then i). A key
that the slot's new primary has not received yet is answered -ASK; redis-py
must follow it (ASKING, then the command at the node named) for the read to
return the value. redis-py logs each -ASK it follows ("AskError", logger
redis.cluster); the script counts them. Prints "ok N asks M" (keys read,
-ASK answers followed) on success; any failure raises (exit status 1) with
the reason.
"""
import logging
import sys

from redis.cluster import ClusterNode, RedisCluster


def value_of(i):
    return chr(ord("a") + i % 26) * 200 + str(i)


class AskCounter(logging.Handler):
    """Counts redis-py's "AskError" log records (one per -ASK followed)."""

    def __init__(self):
        super().__init__()
        self.asks = 0

    def emit(self, record):
        if record.getMessage() == "AskError":
            self.asks += 1


def main():
    port, count, skip = (int(x) for x in sys.argv[1:4])
    counter = AskCounter()
    log = logging.getLogger("redis.cluster")
    log.addHandler(counter)
    log.propagate = False
    rc = RedisCluster(
        startup_nodes=[ClusterNode("127.0.0.1", port)],
        decode_responses=True,
        socket_timeout=10,
    )
    n = 0
    for i in range(count):
        if i == skip:
            continue
        got = rc.get(f"mv:{i}")
        assert got == value_of(i), f"mv:{i}: got {got!r:.40}"
        n += 1
    print(f"ok {n} asks {counter.asks}")


if __name__ == "__main__":
    main()
