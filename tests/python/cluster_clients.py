"""Cluster clients against a three-node Kora cluster (issue 16).

Usage: python3 cluster_clients.py PORT0 PORT1 PORT2  (three Kora nodes on
127.0.0.1 that already share one topology; tools/e2e.sh starts them from
one topology file). The script owns that cluster: it FLUSHALLs it first.

1. redis-py's RedisCluster, entered through the first node, writes 100k
   keys through its cluster pipeline (grouped by node, MOVED followed by
   the client), then reads every key back through a RedisCluster entered
   at each node in turn; every value must be the one written.
2. The keys landed where the topology says: per node, DBSIZE equals the
   number of written keys whose slot (CLUSTER KEYSLOT's function) the node
   serves, and the three add up to 100k.
3. `redis-cli -c` (a subprocess, as an operator types it) writes keys
   through one node and reads them through each other node, following the
   MOVED redirections itself.

Prints a one-line summary; exits non-zero on the first wrong value.
"""

import subprocess
import sys
import time

import redis
from redis.cluster import RedisCluster

KEYS = 100_000
BATCH = 5_000


def crc16(data: bytes) -> int:
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def key_slot(key: str) -> int:
    k = key.encode()
    start = k.find(b"{")
    if start >= 0:
        end = k.find(b"}", start + 1)
        if end > start + 1:
            k = k[start + 1 : end]
    return crc16(k) % 16384


def fail(msg):
    print(f"cluster_clients: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def main():
    ports = [int(p) for p in sys.argv[1:4]]
    if len(ports) != 3:
        fail("usage: cluster_clients.py PORT0 PORT1 PORT2")
    started = time.monotonic()
    key = lambda i: f"ck:{i}"
    value = lambda i: f"v{i}:{i * 7919 % 1000003}"

    # The cluster is this test's: empty it, so that step 2 can count keys.
    for p in ports:
        redis.Redis(host="127.0.0.1", port=p, socket_timeout=10).flushall()

    # 1. Write through the first node, pipelined by the cluster pipeline.
    rc = RedisCluster(host="127.0.0.1", port=ports[0], socket_timeout=10)
    nodes = sorted(n.port for n in rc.get_primaries())
    if nodes != sorted(ports):
        fail(f"RedisCluster discovered {nodes}, expected {sorted(ports)}")
    for lo in range(0, KEYS, BATCH):
        pipe = rc.pipeline(transaction=False)
        for i in range(lo, min(lo + BATCH, KEYS)):
            pipe.set(key(i), value(i))
        replies = pipe.execute()
        if not all(r is True for r in replies):
            fail(f"SET batch at {lo}: {[r for r in replies if r is not True][:3]}")
    wrote = time.monotonic() - started
    rc.close()

    # ... and read everything back through each entry node.
    for entry in ports:
        rc = RedisCluster(host="127.0.0.1", port=entry, socket_timeout=10)
        for lo in range(0, KEYS, BATCH):
            pipe = rc.pipeline(transaction=False)
            for i in range(lo, min(lo + BATCH, KEYS)):
                pipe.get(key(i))
            for i, got in zip(range(lo, KEYS), pipe.execute()):
                if got != value(i).encode():
                    fail(f"GET {key(i)} via entry node {entry}: {got!r}, wrote {value(i)!r}")
        # Single commands too (not only the pipeline), a sample of them.
        for i in range(0, KEYS, 997):
            if rc.get(key(i)) != value(i).encode():
                fail(f"GET {key(i)} via entry node {entry} (no pipeline)")
        # A multi-key command within one slot, and across slots refused.
        rc.mset({"{ck}a": "1", "{ck}b": "2"})
        if rc.mget("{ck}a", "{ck}b") != [b"1", b"2"]:
            fail("MGET of a hash tag")
        rc.close()

    # 2. Where the keys are: each node holds exactly the keys of its slots.
    ranges = {}
    plain = [redis.Redis(host="127.0.0.1", port=p, socket_timeout=10) for p in ports]
    for start, end, *hosts in plain[0].execute_command("CLUSTER SLOTS"):
        ranges[(start, end)] = hosts[0][1]
    expected = dict.fromkeys(ports, 0)
    for i in range(KEYS):
        s = key_slot(key(i))
        for (start, end), port in ranges.items():
            if start <= s <= end:
                expected[port] += 1
                break
        else:
            fail(f"slot {s} unserved in CLUSTER SLOTS")
    expected[[p for (a, b), p in ranges.items() if a <= key_slot("{ck}a") <= b][0]] += 2
    for p, c in zip(ports, plain):
        if c.dbsize() != expected[p]:
            fail(f"node {p} holds {c.dbsize()} keys, its slots hold {expected[p]} written keys")
    if sum(expected.values()) != KEYS + 2:
        fail("keys lost between nodes")

    # 3. redis-cli -c: writes through one node, reads through the others.
    cli_keys = [f"cli:{i}" for i in range(300)]
    script = "".join(f"SET {k} val-{k}\n" for k in cli_keys)
    out = subprocess.run(
        ["redis-cli", "-c", "-p", str(ports[1])],
        input=script,
        capture_output=True,
        text=True,
        timeout=60,
    )
    oks = [l for l in out.stdout.splitlines() if not l.startswith("-> Redirected")]
    if out.returncode != 0 or oks != ["OK"] * len(cli_keys):
        fail(f"redis-cli -c SET: rc {out.returncode}, {out.stdout[-300:]!r} {out.stderr[-300:]!r}")
    redirected = sum(l.startswith("-> Redirected") for l in out.stdout.splitlines())
    if redirected == 0:
        fail("redis-cli -c was never redirected (are the keys all on one node?)")
    for entry in (ports[0], ports[2]):
        out = subprocess.run(
            ["redis-cli", "-c", "-p", str(entry)],
            input="".join(f"GET {k}\n" for k in cli_keys),
            capture_output=True,
            text=True,
            timeout=60,
        )
        got = [l for l in out.stdout.splitlines() if not l.startswith("-> Redirected")]
        if got != [f"val-{k}" for k in cli_keys]:
            fail(f"redis-cli -c GET via {entry}: {got[:5]}...")
    # One command per process, as typed at a shell.
    for i, entry in enumerate(ports):
        k = f"cli:one:{i}"
        set_out = subprocess.run(
            ["redis-cli", "-c", "-p", str(entry), "SET", k, "x"],
            capture_output=True, text=True, timeout=10,
        ).stdout.strip().splitlines()
        get_out = subprocess.run(
            ["redis-cli", "-c", "-p", str(ports[(i + 1) % 3]), "GET", k],
            capture_output=True, text=True, timeout=10,
        ).stdout.strip().splitlines()
        if set_out[-1:] != ["OK"] or get_out[-1:] != ["x"]:
            fail(f"redis-cli -c one-shot {k}: {set_out} {get_out}")

    print(
        f"{KEYS} keys via RedisCluster pipeline (write {wrote:.1f}s), read back from all "
        f"3 entry nodes, {len(cli_keys)} via redis-cli -c ({redirected} redirections); "
        f"{time.monotonic() - started:.1f}s"
    )


if __name__ == "__main__":
    main()
