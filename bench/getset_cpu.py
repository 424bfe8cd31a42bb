#!/usr/bin/env python3
"""Server CPU per GET/SET of one or more Kora binaries, side by side.

    python3 bench/getset_cpu.py BINARY [BINARY...] [--rounds 3] [--requests 2000000]

Each round starts every binary fresh (--workers 2, free loopback port),
runs `redis-benchmark -P 16 -n N -t set,get -r 1000000 -q` against it and
reads the server's user+system CPU (/proc/<pid>/stat) before and after;
CPU per op = CPU delta / (2 N). Rounds go round-robin over the binaries so
that load drift on the machine hits them alike; the median is printed.
"""

import argparse
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import memory  # noqa: E402  (server start/stop helpers)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one(binary, requests):
    port = memory.free_port()
    proc = subprocess.Popen(memory.kora_argv(binary, 2, port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    memory.running[proc.pid] = proc
    try:
        memory.wait_ready(port, proc, binary)
        before = cpu_seconds(proc.pid)
        subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-P", "16", "-n", str(requests),
                        "-t", "set,get", "-r", "1000000", "-q"], check=True, capture_output=True, timeout=300)
        return (cpu_seconds(proc.pid) - before) / (2 * requests) * 1e9
    finally:
        memory.stop(proc)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binaries", nargs="+")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=2_000_000)
    args = ap.parse_args()
    results = {b: [] for b in args.binaries}
    for _ in range(args.rounds):
        for b in args.binaries:
            results[b].append(one(b, args.requests))
    for b, ns in results.items():
        print(f"{b}: median {statistics.median(ns):.0f} ns server CPU per op "
              f"(rounds: {', '.join(f'{x:.0f}' for x in ns)})")


if __name__ == "__main__":
    main()
