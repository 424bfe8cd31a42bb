#!/usr/bin/env python3
"""Server CPU, syscalls, context switches and membarriers per request of
one or more Kora binaries, side by side (the cross-core hop's costs).

    flock /tmp/kora-bench.lock python3 bench/hop_ab.py [--workers 2] [--pipeline 1]
        [--test get|set|publish] [-n N] [--rounds 3] BIN[@VAR=VALUE...] ...

Each round starts every binary fresh (round-robin, so load drift hits them
alike) on a free loopback port, preloads keys for GET, then runs
`redis-benchmark -c 50 -r 100000 -d 64 -P P -t TEST -n N` (`--test
publish`: `PUBLISH ch <64 bytes>` with a subscriber on every core) with
`perf stat -e raw_syscalls:sys_enter,syscalls:sys_enter_membarrier`
attached to the server, and reads the server's utime+stime and its
threads' context switches (voluntary: waits, such as a shard parking;
involuntary: preemptions) from /proc before and after. Prints medians and the
spread. `BIN@VAR=VALUE` runs BIN with VAR=VALUE in its environment (A/B of
an experimental switch in one binary), `BIN@--flag=value` with that flag. Counts do not depend on load; CPU
per request does, so compare only binaries of the same run.
"""
import argparse, os, socket, statistics, subprocess, sys, threading, time, re

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# compare.py's server helpers: a free port, a PING/+PONG readiness check,
# the server's CPU from /proc.
from compare import context_switches, free_port, kora_argv, server_cpu_seconds as cpu, wait_ready  # noqa: E402


def subscribers(port, cores):
    """One SUBSCRIBE ch connection per core (Kora's client ids are congruent
    to their core), each drained by a thread until the socket closes."""
    per = {}
    for _ in range(200):
        if len(per) == cores:
            break
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"CLIENT ID\r\n")
        core = int(s.recv(64)[1:-2]) % cores
        if core in per:
            s.close()
            continue
        s.sendall(b"SUBSCRIBE ch\r\n")
        s.recv(256)
        per[core] = s

    def drain(s):
        try:
            while s.recv(1 << 20):
                pass
        except OSError:
            pass
    for s in per.values():
        threading.Thread(target=drain, args=(s,), daemon=True).start()
    return list(per.values())


def one(binary, a, how):
    env, args = how
    port = free_port()
    p = subprocess.Popen(kora_argv(binary, a.workers, port) + a.extra + args, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, env=env)
    subs = []
    try:
        wait_ready(port, p, binary)
        if any(x.startswith("--cluster-enabled") for x in args):
            # Cluster mode (issue 16): one node serving every slot.
            subprocess.run(["redis-cli", "-p", str(port), "CLUSTER", "SETTOPOLOGY",
                            f"epoch 1\nnode 127.0.0.1:{port} 0-16383\n"], check=True, capture_output=True)
        rb = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", "50", "-r", "100000", "-d", "64", "-P", str(a.pipeline), "-q"]
        if a.test == "get":
            subprocess.run(rb + ["-t", "set", "-P", "32", "-n", "300000"], check=True, capture_output=True)
        # PUBLISH to a subscriber on every core: each publish is delivered
        # on the publisher's core and sent to the other's.
        subs = subscribers(port, a.workers) if a.test == "publish" else []
        what = ["PUBLISH", "ch", "x" * 64] if a.test == "publish" else ["-t", a.test]
        c0, (v0, i0) = cpu(p.pid), context_switches(p.pid)
        perf = subprocess.Popen(["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter,syscalls:sys_enter_membarrier", "-p", str(p.pid)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(0.2)
        t0 = time.time()
        r = subprocess.run(rb + ["-n", str(a.n)] + what, check=True, capture_output=True, text=True)
        dt = time.time() - t0
        c1, (v1, i1) = cpu(p.pid), context_switches(p.pid)
        perf.send_signal(2); err = perf.communicate()[1]
        ev = {}
        for line in err.splitlines():
            f = line.split(",")
            if len(f) > 2 and f[0].strip().isdigit(): ev[f[2]] = int(f[0])
        m = re.search(r"([\d.]+) requests per second", r.stdout.replace("\r", "\n"))
        return dict(us=(c1 - c0) / a.n * 1e6, sc=ev.get("raw_syscalls:sys_enter", 0) / a.n,
                    cs=(v1 - v0) / a.n, pre=(i1 - i0) / a.n, mb=ev.get("syscalls:sys_enter_membarrier", 0) / a.n, ops=float(m.group(1)) if m else 0)
    finally:
        for s in subs:
            s.close()
        p.terminate(); p.wait()

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bins", nargs="+")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--pipeline", type=int, default=1)
    ap.add_argument("--test", default="get", help="get, set, or publish (to a subscriber on every core)")
    ap.add_argument("-n", type=int, default=200000)
    ap.add_argument("--extra", default="")
    a = ap.parse_args()
    a.extra = a.extra.split() if a.extra else []
    bins = []
    for b in a.bins:  # BIN or BIN@ENV=VAL
        path, *es = b.split("@")
        env, args = dict(os.environ), []
        for e in es:
            if e.startswith("--"):
                args += e.split("=", 1)
            else:
                k, v = e.split("=", 1); env[k] = v
        bins.append((b, path, (env, args)))
    res = {b: [] for b, _, _ in bins}
    for _ in range(a.rounds):
        for b, path, env in bins:
            res[b].append(one(path, a, env))
    print(f"workers={a.workers} P={a.pipeline} test={a.test} n={a.n}")
    for b, rs in res.items():
        med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        spread = {k: (min(r[k] for r in rs), max(r[k] for r in rs)) for k in rs[0]}
        print(f"  {b}: us/req {med['us']:.2f} [{spread['us'][0]:.2f}-{spread['us'][1]:.2f}]  sys/req {med['sc']:.2f}  waits/req {med['cs']:.3f} [{spread['cs'][0]:.3f}-{spread['cs'][1]:.3f}]  preempted/req {med['pre']:.3f}  membarrier/req {med['mb']:.3f}  ops/s {med['ops']:.0f}")
main()
