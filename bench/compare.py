#!/usr/bin/env python3
"""Kora vs Debian's redis-server, side by side, on this machine.

Run through bench/compare.sh (which builds release and installs redis-server
when missing). Every measurement gets a fresh server on a free loopback
port, so every server starts from the same state and no idle server runs
beside the measured one; each is stopped by pid right after its run (and
all of them on any exit). Every client run is bounded in time.

Rows: SET and GET at P=1 and P=16 (50 clients, 100k keys, 64-byte values),
a zipf:0.99 1:10 SET:GET mix at P=1 and P=16, against redis-server, Kora
--workers 1 and Kora with every core; Kora with --no-instrumentation on the
same rows for the observability cost; redis-benchmark for a second opinion.
With --rounds R every cell is measured R times, round-robin over the
servers so that load drift hits them alike, and the median is shown.
--kora-before BINARY adds an older build (x1 and every core) to the same
rounds, so a change is shown before/after from one run; --perf adds the
server's syscalls and migrations per request (perf stat counts, steadier
than times on a noisy machine); --only-get-set keeps the four SET/GET rows
and the goal table. Every row shows the server's context switches per
request from /proc, voluntary (it waited) and involuntary (it was
preempted: with the client on the same cores, mostly by the client's
threads). --server-cpus / --client-cpus put servers and clients on CPUs of
their own (taskset), to see what the sharing costs.
"""

import argparse
import atexit
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KORA = os.path.join(ROOT, "target/release/kora")
KORA_BENCH = os.path.join(ROOT, "target/release/kora-bench")

CLIENTS = 50
KEYSPACE = 100_000
VALUE_SIZE = 64

# (label, kora-bench arguments, whether keys must exist first)
WORKLOADS = [
    ("SET", 1, ["--ratio", "1:0"], False),
    ("GET", 1, ["--ratio", "0:1"], True),
    ("SET", 16, ["--ratio", "1:0"], False),
    ("GET", 16, ["--ratio", "0:1"], True),
    ("zipf:0.99 SET:GET 1:10", 1, ["--ratio", "1:10", "--distribution", "zipf:0.99"], True),
    ("zipf:0.99 SET:GET 1:10", 16, ["--ratio", "1:10", "--distribution", "zipf:0.99"], True),
]

# perf stat events counted on the server with --perf (software events and
# tracepoints: they work where hardware counters are not exposed, as in VMs).
# Context switches are read from /proc instead (see `context_switches`),
# split into the server's own waits and preemptions.
PERF_EVENTS = ["raw_syscalls:sys_enter", "cpu-migrations"]

running = {}  # pid -> Popen
# `taskset -c CPUS` before every client command (--client-cpus), or nothing.
client_prefix = []


def stop(proc):
    """Stops one server by its pid and waits for it."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            # A server holding millions of keys may take a while to exit.
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    running.pop(proc.pid, None)


def stop_all():
    for proc in list(running.values()):
        stop(proc)


def on_signal(signum, _frame):
    stop_all()
    sys.exit(128 + signum)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port, proc, what):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"compare: {what} exited during startup")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    stop(proc)
    sys.exit(f"compare: {what} did not answer PING on port {port}")


def server_cpu_seconds(pid):
    """user + system CPU the process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def context_switches(pid):
    """(voluntary, involuntary) context switches of all the server's threads
    so far. Voluntary: a thread waited (a shard parking, Redis in
    epoll_wait). Involuntary: the kernel preempted a runnable thread, which
    on a machine shared with the client is mostly the client's threads
    taking the CPU."""
    voluntary = involuntary = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return 0, 0
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        voluntary += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches:"):
                        involuntary += int(line.split()[1])
        except FileNotFoundError:
            pass  # a thread that ended meanwhile
    return voluntary, involuntary


def children_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def commands_processed(port):
    """INFO stats total_commands_processed: what the server itself counted."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"*2\r\n$4\r\nINFO\r\n$5\r\nstats\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            header, crlf, body = data.partition(b"\r\n")
            if crlf and len(body) >= int(header[1:]) + 2:
                break
    for line in data.decode().splitlines():
        if line.startswith("total_commands_processed:"):
            return int(line.split(":")[1])
    sys.exit(f"compare: no total_commands_processed in INFO stats from port {port}")


class Measured:
    """CPU per command of the server and of the client over one client run:
    less sensitive to other load on the machine than ops/s."""

    def __init__(self, port, proc, perf=False):
        self.port, self.proc, self.perf = port, proc, perf
        self.counts = {}

    def __enter__(self):
        self.commands = commands_processed(self.port)
        self.server_cpu = server_cpu_seconds(self.proc.pid)
        self.client_cpu = children_cpu_seconds()
        self.switches = context_switches(self.proc.pid)
        self.perf_proc = None
        if self.perf:
            # Counts, not times: steady whatever else the machine does.
            self.perf_proc = subprocess.Popen(
                ["perf", "stat", "-x", ",", "-e", ",".join(PERF_EVENTS), "-p", str(self.proc.pid)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            time.sleep(0.2)  # perf attaches before the run starts
        return self

    def __exit__(self, *exc):
        if self.perf_proc is not None:
            self.perf_proc.send_signal(signal.SIGINT)
            _, err = self.perf_proc.communicate(timeout=30)
            for line in err.splitlines():
                cells = line.split(",")
                if len(cells) > 2 and cells[2] in PERF_EVENTS and cells[0].strip().isdigit():
                    self.counts[cells[2]] = int(cells[0])
        if exc[0] is None:
            n = max(1, commands_processed(self.port) - self.commands - 1)
            self.server_us = (server_cpu_seconds(self.proc.pid) - self.server_cpu) / n * 1e6
            self.client_us = (children_cpu_seconds() - self.client_cpu) / n * 1e6
            self.per_request = {event: count / n for event, count in self.counts.items()}
            voluntary, involuntary = context_switches(self.proc.pid)
            self.per_request["voluntary-cs"] = (voluntary - self.switches[0]) / n
            self.per_request["involuntary-cs"] = (involuntary - self.switches[1]) / n


def redis_argv(binary="redis-server", port="{port}"):
    """A redis-server on loopback that keeps nothing on disk ("{port}" is
    filled in by Server.start)."""
    return [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--daemonize", "no"]


def kora_argv(binary, workers, port="{port}"):
    """A Kora server on loopback with W shards and no metrics listener."""
    return [binary, "--bind", "127.0.0.1", "--port", str(port), "--metrics-port", "0", "--workers", str(workers)]


class Server:
    def __init__(self, key, name, argv):
        self.key, self.name, self.argv = key, name, argv

    def start(self):
        port = free_port()
        argv = [a.replace("{port}", str(port)) for a in self.argv]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        running[proc.pid] = proc
        wait_ready(port, proc, self.name)
        return port, proc


def servers(cores, before=None):
    redis_version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
    redis_version = next((w[2:] for w in redis_version.split() if w.startswith("v=")), "?")
    main = [
        Server("redis", f"redis-server {redis_version}", redis_argv()),
        Server("kora1", "kora --workers 1", kora_argv(KORA, 1)),
        Server(f"kora{cores}", f"kora --workers {cores}", kora_argv(KORA, cores)),
    ]
    off = Server("kora-off", f"kora --workers {cores} --no-instrumentation",
                 kora_argv(KORA, cores) + ["--no-instrumentation"])
    if before is None:
        return main + [off], []
    extra = [Server("before1", "before: kora --workers 1", kora_argv(before, 1)),
             Server(f"before{cores}", f"before: kora --workers {cores}", kora_argv(before, cores))]
    return main + [off] + extra, extra


def preload(port):
    """Writes every key once, outside the measured (and CPU-counted) run."""
    argv = [KORA_BENCH, "--port", str(port), "--keyspace", str(KEYSPACE), "--value-size", str(VALUE_SIZE),
            "--preload", "--requests", "1", "--ratio", "1:0", "--clients", str(CLIENTS)]
    out = subprocess.run(client_prefix + argv, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        sys.exit(f"compare: preload failed ({out.returncode}): {out.stderr.strip()}")


def kora_bench(port, pipeline, extra, args):
    argv = [KORA_BENCH, "--port", str(port), "--clients", str(CLIENTS), "--pipeline", str(pipeline),
            "--keyspace", str(KEYSPACE), "--value-size", str(VALUE_SIZE),
            "--duration", str(args.seconds), "--warmup", str(args.warmup), "--json"]
    if args.client_threads:
        argv += ["--threads", str(args.client_threads)]
    argv += extra
    out = subprocess.run(client_prefix + argv, capture_output=True, text=True,
                         timeout=args.seconds + args.warmup + 60)
    if out.returncode not in (0, 3):
        sys.exit(f"compare: kora-bench failed ({out.returncode}): {out.stderr.strip()}")
    result = json.loads(out.stdout)
    get_or_set = [c for c in ("get", "set") if c in result["commands"]]
    # The latency of the mixed workload is the GET latency (9 in 10).
    cmd = result["commands"][get_or_set[0]]
    return {"ops": result["ops_per_sec"], "p50": cmd["p50_us"] / 1000, "p99": cmd["p99_us"] / 1000,
            "errors": result["errors"]}


def redis_benchmark(port, pipeline, requests):
    argv = ["redis-benchmark", "-p", str(port), "-c", str(CLIENTS), "-n", str(requests),
            "-r", str(KEYSPACE), "-d", str(VALUE_SIZE), "-t", "set,get", "-P", str(pipeline), "--csv"]
    out = subprocess.run(client_prefix + argv, capture_output=True, text=True, timeout=300)
    rows = {}
    for line in out.stdout.splitlines()[1:]:
        cells = [c.strip('"') for c in line.split('","')]
        # test, rps, avg, min, p50, p95, p99, max (ms)
        rows[cells[0]] = {"ops": float(cells[1]), "p50": float(cells[4]), "p99": float(cells[6])}
    if set(rows) != {"SET", "GET"}:
        sys.exit(f"compare: unexpected redis-benchmark output: {out.stdout} {out.stderr}")
    return rows


def median_run(runs):
    """The run with the median ops/s (its latencies belong to it)."""
    ordered = sorted(runs, key=lambda r: r["ops"])
    return ordered[(len(ordered) - 1) // 2]


def fmt_ops(v):
    return f"{v:,.0f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4.0, help="measured seconds per run (default 4)")
    parser.add_argument("--warmup", type=float, default=1.0, help="warmup seconds per run (default 1)")
    parser.add_argument("--rounds", type=int, default=2, help="runs per cell, median shown (default 2)")
    parser.add_argument("--client-threads", type=int, default=0,
                        help="kora-bench --threads (default: kora-bench's own, one per core)")
    parser.add_argument("--rb-requests", type=int, default=200_000,
                        help="redis-benchmark -n at P=1; 5x that at P=16 (default 200000)")
    parser.add_argument("--json", metavar="FILE", help="also write every measurement to FILE")
    parser.add_argument("--kora-before", metavar="BINARY",
                        help="also measure this older kora binary (x1 and every core) in the same rounds: "
                             "before/after from one run")
    parser.add_argument("--perf", action="store_true",
                        help="count the server's syscalls and migrations per request with perf stat "
                             "(needs perf; context switches are read from /proc on every run)")
    parser.add_argument("--server-cpus", metavar="CPUS",
                        help="run every server under taskset -c CPUS (e.g. 0): with --client-cpus, the client "
                             "no longer preempts the server, which the shared default measures too; Kora's "
                             "shards then share those CPUs (two shards on CPU 0 are not two cores)")
    parser.add_argument("--client-cpus", metavar="CPUS", help="run every client under taskset -c CPUS (e.g. 1)")
    parser.add_argument("--only-get-set", action="store_true",
                        help="only the SET/GET rows (no zipf mix, no redis-benchmark): the issue's goal table")
    args = parser.parse_args()
    if not (0 < args.seconds <= 60 and 0 <= args.warmup <= 30 and 1 <= args.rounds <= 9):
        sys.exit("compare: --seconds in (0, 60], --warmup in [0, 30], --rounds in [1, 9]")

    atexit.register(stop_all)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    cores = os.cpu_count() or 1
    all_servers, before = servers(cores, args.kora_before)
    if args.server_cpus:
        for server in all_servers:
            server.argv = ["taskset", "-c", args.server_cpus] + server.argv
    if args.client_cpus:
        client_prefix[:] = ["taskset", "-c", args.client_cpus]
    placement = "client and server on the same machine"
    if args.server_cpus or args.client_cpus:
        placement += f" (server on CPUs {args.server_cpus or 'all'}, client on CPUs {args.client_cpus or 'all'})"
    workloads = WORKLOADS[:4] if args.only_get_set else WORKLOADS
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or "?"
    load_before = open("/proc/loadavg").read().split()[:3]
    started = time.monotonic()
    print(f"# Kora vs redis-server on {cores} cores, {placement}; "
          f"{time.strftime('%Y-%m-%d')}, commit {commit}, load average {' '.join(load_before)}", flush=True)
    print(f"# kora-bench: {CLIENTS} clients, {KEYSPACE:,} keys, {VALUE_SIZE}-byte values, "
          f"{args.warmup:g} s warmup + {args.seconds:g} s per run, median of {args.rounds}", flush=True)

    results = {}  # (workload index, server key) -> [runs]
    for i, (label, pipeline, extra, needs_keys) in enumerate(workloads):
        for _ in range(args.rounds):
            for server in all_servers:
                port, proc = server.start()
                try:
                    if needs_keys:
                        preload(port)
                    with Measured(port, proc, args.perf) as cpu:
                        run = kora_bench(port, pipeline, extra, args)
                    run["server_us"], run["client_us"] = cpu.server_us, cpu.client_us
                    run["per_request"] = cpu.per_request
                finally:
                    stop(proc)
                results.setdefault((i, server.key), []).append(run)
        print(f"#   done: {label} P={pipeline}", file=sys.stderr, flush=True)

    rb = {}
    for server in ([] if args.only_get_set else all_servers[:3]):
        for pipeline in (1, 16):
            port, proc = server.start()
            try:
                n = args.rb_requests * (5 if pipeline == 16 else 1)
                with Measured(port, proc) as cpu:
                    rb[(server.key, pipeline)] = redis_benchmark(port, pipeline, n)
                rb[(server.key, pipeline)]["client_us"] = cpu.client_us
            finally:
                stop(proc)
    print("#   done: redis-benchmark", file=sys.stderr, flush=True)

    # Table 1: kora-bench, every workload against every server.
    print()
    # The server's waits and preemptions come from /proc on every run.
    counted = (PERF_EVENTS if args.perf else []) + ["voluntary-cs", "involuntary-cs"]
    print("| workload | P | server | ops/s | p50 ms | p99 ms | vs Redis | server CPU µs/op |"
          + "".join(f" {e.split(':')[-1]}/op |" for e in counted))
    print("|---|---|---|---|---|---|---|---|" + "---|" * len(counted))
    errors = 0
    shown = all_servers[:3] + before
    for i, (label, pipeline, _, _) in enumerate(workloads):
        redis = median_run(results[(i, "redis")])
        for server in shown:
            runs = results[(i, server.key)]
            r = median_run(runs)
            errors += sum(run["errors"] for run in runs)
            cpu = statistics.median(run["server_us"] for run in runs)
            extra = "".join(f" {statistics.median(run['per_request'].get(e, 0) for run in runs):.2f} |"
                            for e in counted)
            print(f"| {label} | {pipeline} | {server.name} | {fmt_ops(r['ops'])} | {r['p50']:.3f} | "
                  f"{r['p99']:.3f} | {r['ops'] / redis['ops']:.2f} | {cpu:.2f} |{extra}")

    # Table 1b: the per-core efficiency goals (issue 15), as ratios of medians.
    def cpu_of(i, key):
        return statistics.median(run["server_us"] for run in results[(i, key)])

    def ops_of(i, key):
        return median_run(results[(i, key)])["ops"]

    print()
    print(f"| workload | P | CPU/op x1 / Redis (goal <= 0.77) | CPU/op x{cores} / x1 (goal <= 1.2) | "
          f"ops/s x{cores} / Redis (goal >= 1) |")
    print("|---|---|---|---|---|")
    for i, (label, pipeline, _, _) in enumerate(workloads[:4]):
        cells = []
        for pre in ([""] + (["before"] if before else [])):
            one, many = (pre or "kora") + "1", f"{pre or 'kora'}{cores}"
            cells.append((cpu_of(i, one) / cpu_of(i, "redis"), cpu_of(i, many) / cpu_of(i, one),
                          ops_of(i, many) / ops_of(i, "redis")))
        now = cells[0]
        was = cells[1] if before else None
        print(f"| {label} | {pipeline} | " + " | ".join(
            f"{now[k]:.2f}" + (f" (before {was[k]:.2f})" if was else "") for k in range(3)) + " |")

    # Table 2: the cost of observability, same workloads, same run.
    on_key, off_key = all_servers[2].key, all_servers[3].key
    print()
    print(f"| workload | P | kora --workers {cores} ops/s | with --no-instrumentation | on/off | "
          f"p99 ms on | p99 ms off | server CPU µs/op on | off |")
    print("|---|---|---|---|---|---|---|---|---|")
    for i, (label, pipeline, _, _) in enumerate(workloads):
        on, off = median_run(results[(i, on_key)]), median_run(results[(i, off_key)])
        cpu_on = statistics.median(run["server_us"] for run in results[(i, on_key)])
        cpu_off = statistics.median(run["server_us"] for run in results[(i, off_key)])
        print(f"| {label} | {pipeline} | {fmt_ops(on['ops'])} | {fmt_ops(off['ops'])} | "
              f"{on['ops'] / off['ops']:.2f} | {on['p99']:.3f} | {off['p99']:.3f} | {cpu_on:.2f} | {cpu_off:.2f} |")

    if args.only_get_set:
        return finish(args, started, load_before, errors, results, rb, commit, workloads)

    # Table 3: redis-benchmark's opinion on the same three servers.
    print()
    print(f"| redis-benchmark -c {CLIENTS} -r {KEYSPACE} -d {VALUE_SIZE} | P | SET ops/s | GET ops/s | "
          f"SET vs Redis | GET vs Redis | SET p99 ms | GET p99 ms |")
    print("|---|---|---|---|---|---|---|---|")
    for server in all_servers[:3]:
        for pipeline in (1, 16):
            r, base = rb[(server.key, pipeline)], rb[("redis", pipeline)]
            print(f"| {server.name} | {pipeline} | {fmt_ops(r['SET']['ops'])} | {fmt_ops(r['GET']['ops'])} | "
                  f"{r['SET']['ops'] / base['SET']['ops']:.2f} | {r['GET']['ops'] / base['GET']['ops']:.2f} | "
                  f"{r['SET']['p99']:.3f} | {r['GET']['p99']:.3f} |")

    # Table 4: is kora-bench a fast enough client? Both tools against redis-server.
    print()
    print("| client check, against redis-server | P | kora-bench ops/s | redis-benchmark ops/s | ratio | "
          "client CPU µs/op: kora-bench | redis-benchmark (SET+GET) |")
    print("|---|---|---|---|---|---|---|")
    for i, (label, pipeline, _, _) in enumerate(WORKLOADS[:4]):
        ours = median_run(results[(i, "redis")])["ops"]
        ours_cpu = statistics.median(run["client_us"] for run in results[(i, "redis")])
        theirs = rb[("redis", pipeline)][label]["ops"]
        print(f"| {label} | {pipeline} | {fmt_ops(ours)} | {fmt_ops(theirs)} | {ours / theirs:.2f} | "
              f"{ours_cpu:.2f} | {rb[('redis', pipeline)]['client_us']:.2f} |")

    return finish(args, started, load_before, errors, results, rb, commit, workloads)


def finish(args, started, load_before, errors, results, rb, commit, workloads):
    load_after = open("/proc/loadavg").read().split()[:3]
    print()
    print(f"# {time.monotonic() - started:.0f} s; load average before {' '.join(load_before)}, "
          f"after {' '.join(load_after)}; kora-bench errors: {errors}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"kora_bench": {f"{workloads[i][0]} P={workloads[i][1]} {k}": v
                                      for (i, k), v in results.items()},
                       "redis_benchmark": {f"{k} P={p}": v for (k, p), v in rb.items()},
                       "load_before": load_before, "load_after": load_after, "commit": commit}, f, indent=1)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
