#!/usr/bin/env python3
"""Server CPU per request of redis-benchmark's own tests, Kora beside
redis-server: which commands cost Kora more CPU than Redis.

    flock /tmp/kora-bench.lock python3 bench/per_command.py [--tests set,get,zadd,...]
        [--pipeline 16] [-n 500000] [--rounds 2] [--workers 1] redis BIN [BIN...]

`redis` stands for a fresh `redis-server --save "" --appendonly no`; any
other argument is a Kora binary (run with `--workers W`). Each round starts
every server fresh on a free loopback port and runs the tests in order
against it (`redis-benchmark -c 50 -r 100000 -d 64 -P P -t TEST -n N`: the
tests fill their own keys, e.g. ZADD builds one 100k-member sorted set, so
later rounds of a test mostly update), reading the server's utime+stime
from /proc around each. Prints the lowest of the rounds (the least
disturbed by other load) and each server's ratio to the first. A test
named more than once runs that many times per round, all runs pooled.
A test with a space in it is a command line for redis-benchmark
(`--tests "sadd,SADD s m__rand_int__"`; `__rand_int__` is 12 digits).
"""
import argparse, os, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import free_port, kora_argv, redis_argv, server_cpu_seconds as cpu, wait_ready  # noqa: E402

DEFAULT = "ping_mbulk,set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,lrange_100,mset"


def start(server, port, workers):
    cmd = redis_argv(port=port) if server == "redis" else kora_argv(server, workers, port)
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(port, p, server)
    return p


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("servers", nargs="+")
    ap.add_argument("--tests", default=DEFAULT)
    ap.add_argument("--pipeline", type=int, default=16)
    ap.add_argument("-n", type=int, default=500000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1)
    a = ap.parse_args()
    tests = a.tests.split(",")
    us = {}
    for _ in range(a.rounds):
        for server in a.servers:
            port = free_port()
            p = start(server, port, a.workers)
            try:
                for t in tests:
                    c0 = cpu(p.pid)
                    # A test with a space is a command line of its own
                    # (`SADD s m__rand_int__`: 13-byte members).
                    what = t.split() if " " in t else ["-t", t]
                    subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", "50", "-r", "100000",
                                    "-d", "64", "-P", str(a.pipeline), "-q", "-n", str(a.n)] + what,
                                   check=True, capture_output=True)
                    us.setdefault((t, server), []).append((cpu(p.pid) - c0) / a.n * 1e6)
            finally:
                p.terminate()
                p.wait()
    names = [s if s == "redis" else os.path.basename(s) for s in a.servers]
    print(f"server CPU us per request, P={a.pipeline}, lowest of {a.rounds} rounds; ratio to {names[0]}")
    print("| test | " + " | ".join(names) + " | " + " | ".join(f"{n} / {names[0]}" for n in names[1:]) + " |")
    print("|---" * (1 + 2 * len(names) - 1) + "|")
    for t in tests:
        best = [min(us[(t, s)]) for s in a.servers]
        print(f"| {t} | " + " | ".join(f"{b:.2f}" for b in best) + " | "
              # A test redis-benchmark does not know runs nothing: 0 µs.
              + " | ".join(f"{b / best[0]:.2f}" if best[0] else "-" for b in best[1:]) + " |")


if __name__ == "__main__":
    main()
