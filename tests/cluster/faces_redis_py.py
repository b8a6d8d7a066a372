#!/usr/bin/python3
"""A scripted redis-py RedisCluster session against a kura cluster.

usage: faces_redis_py.py RESP_PORT,RESP_PORT,... PID,PID,...

Run by tests/cluster/faces_test.cpp with Debian's python3-redis. It discovers
the cluster through the first port (CLUSTER SLOTS), writes and reads keys over
every slot range, uses hash tags with MSET/MGET, deletes, lets a key expire,
reads through READONLY connections, then SIGKILLs one of the nodes (PID i
listens on RESP_PORT i; kura-nodes the test started) mid-session and checks
that the same client object recovers: every key written before the kill is
read back and new writes succeed. Prints "ok" on success; any failure raises
(exit status 1) with the reason.

The victim is a node that is not the primary of slot 0: redis-py 4.3.4
(Debian 12) refreshes its slot map from the nodes in CLUSTER SLOTS order and
cannot reconnect to the first one once it lost it (NodesManager.initialize
deep-copies connection kwargs that hold a bound method and fails with
"cannot pickle '_thread.lock' object"); the same happens against Redis.
"""
import os
import signal
import sys
import time

from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisError


def retry(what, fn, deadline_s=40):
    """Calls fn until it returns without a redis error (the cluster is
    healing) or the deadline passes."""
    end = time.monotonic() + deadline_s
    while True:
        try:
            return fn()
        except RedisError as e:  # ConnectionError, ClusterDownError, ...
            if time.monotonic() > end:
                raise AssertionError(f"{what}: still failing after {deadline_s}s: {e!r}")
            time.sleep(0.2)


def main():
    ports = [int(p) for p in sys.argv[1].split(",")]
    pids = [int(p) for p in sys.argv[2].split(",")]
    rc = RedisCluster(
        startup_nodes=[ClusterNode("127.0.0.1", p) for p in ports],
        decode_responses=True,
        socket_timeout=5,
    )
    info = rc.cluster_info()
    assert info["cluster_state"] == "ok", info
    hosts = sorted(n.port for n in rc.get_nodes())
    assert hosts == sorted(ports), (hosts, ports)

    # set/get across every node's slots
    keys = [f"user:{i}" for i in range(300)]
    owners = {rc.get_node_from_key(k).port for k in keys}
    assert owners == set(ports), f"300 keys should hit every node, got {owners}"
    for k in keys:
        assert rc.set(k, "v-" + k)
    for k in keys:
        assert rc.get(k) == "v-" + k, k

    # hash tags: one slot, so MSET/MGET go to one node in one command
    tagged = {"{account:7}:name": "alice", "{account:7}:mail": "a@x", "{account:7}:n": "3"}
    assert rc.keyslot("{account:7}:name") == rc.keyslot("{account:7}:n")
    assert rc.cluster_keyslot("{account:7}:name") == rc.keyslot("account:7")
    assert rc.mset(tagged)
    assert rc.mget(list(tagged)) == list(tagged.values())
    assert rc.incr("{account:7}:n") == 4
    # keys of several slots, split by the client
    assert rc.mget_nonatomic(["user:1", "user:2", "nope"]) == ["v-user:1", "v-user:2", None]

    # delete
    assert rc.delete("user:0") == 1
    assert rc.get("user:0") is None
    assert rc.exists("user:0") == 0
    keys.remove("user:0")

    # expiry
    assert rc.set("session:x", "tmp", px=400)
    assert 0 < rc.pttl("session:x") <= 400
    end = time.monotonic() + 15
    while rc.get("session:x") is not None:
        assert time.monotonic() < end, "session:x did not expire"
        time.sleep(0.1)

    # READONLY connections: reads may be served by a replica of the slot
    ro = RedisCluster(
        startup_nodes=[ClusterNode("127.0.0.1", ports[0])],
        decode_responses=True,
        read_from_replicas=True,
        socket_timeout=5,
    )
    for k in keys[:100]:
        assert ro.get(k) == "v-" + k, k
    ro.close()

    # a node killed mid-session: the same client recovers
    first = rc.nodes_manager.slots_cache[0][0].port
    victim_port = next(p for p in ports if p != first)
    os.kill(pids[ports.index(victim_port)], signal.SIGKILL)
    moved = [k for k in keys if rc.get_node_from_key(k).port == victim_port]
    assert moved, "some keys were owned by the victim"
    for k in moved + keys:
        v = retry(f"GET {k} after the kill", lambda: rc.get(k))
        assert v == "v-" + k, (k, v)
    for i in range(50):
        retry("SET after the kill", lambda: rc.set(f"after:{i}", str(i)))
    for i in range(50):
        assert retry("GET after the kill", lambda: rc.get(f"after:{i}")) == str(i)
    assert victim_port not in {rc.get_node_from_key(k).port for k in moved}
    rc.close()
    print("ok")


if __name__ == "__main__":
    main()
