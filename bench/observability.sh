#!/usr/bin/env bash
# Measures the cost of Kora's observability on this machine (the
# throughput cost, instrumentation on vs off, is a table of
# bench/compare.sh):
#   1. scrape cost: /metrics latency with all 32 command slots active and
#      1M keys loaded, while redis-benchmark runs, and the benchmark's p99
#      with and without a scraper hammering /metrics;
#   2. memory accuracy: kora_memory_used_bytes against RSS growth after
#      loading 1M keys with 100-byte values.
# Usage: bench/observability.sh [workers] (needs redis-tools, python3)
set -euo pipefail
cd "$(dirname "$0")/.."
workers=${1:-2}
bin=target/release/kora
cargo build --release --quiet
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

start() { # extra flags...; sets $port $mport $pid
  port=$(free_port); mport=$(free_port)
  "$bin" --port "$port" --metrics-port "$mport" --workers "$workers" "$@" 2>/dev/null &
  pid=$!; pids+=("$pid")
  for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && return; sleep 0.05; done
  echo "server did not start" >&2; exit 1
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; }

echo "== 1. scrape cost (1M keys, all 32 slots active, redis-benchmark running)"
start
python3 - "$port" <<'PY'
import socket, sys
port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port))
val = b"x" * 100
batch = []
for i in range(1_000_000):
    k = b"key:%d" % i
    batch.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$100\r\n%s\r\n" % (len(k), k, val))
    if len(batch) == 10_000:
        s.sendall(b"".join(batch)); need = 5 * len(batch); got = 0
        while got < need: got += len(s.recv(1 << 20))
        batch = []
PY
for cmd in "get key:1" "set k v" "del nokey" "incr c" "decr c" "mget key:1 key:2" "mset a 1 b 2" "exists key:1" "expire a 100" "ttl a" \
           "lpush l x" "rpush l y" "lpop l" "rpop l" "hset h f v" "hget h f" "hgetall h" "sadd s m" "srem s m" "ping" "info" "dbsize" \
           "setex e 100 v" "lrange l 0 -1" "spop s" "hdel h f" "smembers s" "sismember s m" "hmget h f" "scan 0" "append z q"; do
  redis-cli -p "$port" $cmd >/dev/null
done
echo "keys: $(redis-cli -p "$port" dbsize)"
scrape_ms() { python3 - "$mport" <<'PY'
import sys, time, urllib.request
port = sys.argv[1]; times = []
for _ in range(50):
    t = time.perf_counter(); urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read(); times.append((time.perf_counter() - t) * 1000)
    time.sleep(0.02)
times.sort(); print(f"/metrics latency over 50 scrapes: median {times[25]:.2f} ms, p90 {times[45]:.2f} ms, max {times[-1]:.2f} ms")
PY
}
scrape_ms
p99() { redis-benchmark -p "$port" -c 50 -n 400000 -r 1000000 -d 100 -t get -P 1 --csv 2>/dev/null | awk -F'","' 'NR>1 {print $2" ops/s p50="$5"ms p99="$7"ms"}'; }
echo "benchmark alone:            $(p99)"
python3 -c "
import time, urllib.request
while True:
    urllib.request.urlopen('http://127.0.0.1:$mport/metrics').read(); time.sleep(0.1)" &
scraper=$!; pids+=("$scraper")
echo "benchmark + 10 scrapes/s:   $(p99)"
kill "$scraper"
( redis-benchmark -p "$port" -c 50 -n 2000000 -r 1000000 -d 100 -t get -q >/dev/null 2>&1 ) &
bench=$!; pids+=("$bench")
sleep 1
echo -n "under load: "; scrape_ms
kill "$bench" 2>/dev/null || true
stop

echo "== 2. memory accounting vs RSS (1M keys, 100-byte values)"
start
rss() { awk '/VmRSS/ {print $2 * 1024}' /proc/"$pid"/status; }
before=$(rss)
python3 - "$port" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
val = b"v" * 100
for base in range(0, 1_000_000, 10_000):
    cmds = [b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$100\r\n%s\r\n" % (len(k), k, val) for k in (b"mem:%07d" % i for i in range(base, base + 10_000))]
    s.sendall(b"".join(cmds)); got = 0
    while got < 5 * 10_000: got += len(s.recv(1 << 20))
PY
after=$(rss)
tracked=$(python3 -c "import urllib.request,re; t=urllib.request.urlopen('http://127.0.0.1:$mport/metrics').read().decode(); print(re.search(r'^kora_memory_used_bytes (\d+)', t, re.M).group(1))")
python3 -c "g=$after-$before; t=$tracked; print(f'RSS growth {g/1e6:.1f} MB, kora_memory_used_bytes {t/1e6:.1f} MB, tracked/RSS = {t/g:.3f} ({100*(t-g)/g:+.1f}%)')"
stop
