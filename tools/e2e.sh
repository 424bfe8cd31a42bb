#!/usr/bin/env bash
# End-to-end checks with real, unmodified clients against a real server on
# loopback: redis-cli, redis-benchmark, redis-py, and promtool on a live
# scrape. Usage: tools/e2e.sh [path/to/kora]
set -uo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/kora}
passed=0
failed=0

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; [ -n "${2:-}" ] && echo "$2" | sed 's/^/     /'; }
expect() { # name expected actual
  if [ "$2" == "$3" ]; then ok "$1"; else bad "$1" "expected: $2"$'\n'"got:      $3"; fi
}

port=$(free_port)
mport=$(free_port)
"$bin" --port "$port" --metrics-port "$mport" --workers 2 2>/tmp/kora-e2e.log &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null' EXIT
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
cli() { redis-cli -p "$port" "$@"; }

# redis-cli, as an operator would type it.
expect "redis-cli PING" "PONG" "$(cli ping)"
expect "redis-cli SET" "OK" "$(cli set greeting hello)"
expect "redis-cli GET" "hello" "$(cli get greeting)"
expect "redis-cli INCRBY" "42" "$(cli incrby answer 42)"
cli mset a 1 b 2 c 3 d 4 e 5 >/dev/null
expect "redis-cli MGET across shards" $'1\n2\n3\n4\n5' "$(cli mget a b c d e)"
expect "redis-cli --scan sees every key" "7" "$(cli --scan | sort -u | wc -l | tr -d ' ')"
expect "redis-cli DBSIZE" "7" "$(cli dbsize)"
expect "redis-cli CONFIG GET save (empty value)" "save" "$(cli config get save)"
expect "redis-cli wrong type" "WRONGTYPE Operation against a key holding the wrong kind of value" "$(cli lpush greeting x 2>&1)"
expect "redis-cli unknown command" "ERR unknown command 'nosuch', with args beginning with: 'x' " "$(cli nosuch x 2>&1)"
count=$(cli command count)
[ "$count" -gt 100 ] && ok "redis-cli COMMAND COUNT ($count)" || bad "redis-cli COMMAND COUNT" "$count"
info=$(cli info keyspace | tr -d '\r')
[[ "$info" == *"db0:keys=7,expires=0"* ]] && ok "redis-cli INFO keyspace" || bad "redis-cli INFO keyspace" "$info"
expect "inline command over a raw socket" "+PONG" "$(printf 'PING\r\n' | python3 -c '
import socket,sys
s=socket.create_connection(("127.0.0.1",'"$port"')); s.sendall(sys.stdin.buffer.read()); print(s.recv(100).decode().strip())')"
# Introspection as an operator uses it.
expect "redis-cli CONFIG SET slowlog-log-slower-than" "OK" "$(cli config set slowlog-log-slower-than 0)"
cli get greeting >/dev/null
expect "redis-cli SLOWLOG GET shows the last command" $'get\ngreeting' "$(cli slowlog get 1 | sed -n 4,5p)"
cli config set slowlog-log-slower-than 10000 >/dev/null
expect "redis-cli OBJECT ENCODING" "int" "$(cli object encoding answer)"
usage=$(cli memory usage greeting)
[ "$usage" -gt 5 ] 2>/dev/null && ok "redis-cli MEMORY USAGE ($usage)" || bad "redis-cli MEMORY USAGE" "$usage"
errs=$(cli info errorstats | tr -d '\r')
[[ "$errs" == *"errorstat_WRONGTYPE:count=1"* ]] && ok "redis-cli INFO errorstats" || bad "redis-cli INFO errorstats" "$errs"
cli flushall >/dev/null

# redis-benchmark: every test it runs must complete without errors.
tests=ping_inline,ping_mbulk,set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,lrange_100,mset
if out=$(timeout 120 redis-benchmark -p "$port" -c 20 -n 20000 -r 10000 -P 4 -t "$tests" --csv 2>&1); then
  rows=$(echo "$out" | grep -c '^"' )
  zero=$(echo "$out" | awk -F'","' 'NR>1 && $2+0 <= 0' | wc -l)
  if [ "$rows" -ge 14 ] && [ "$zero" -eq 0 ]; then ok "redis-benchmark ran $((rows - 1)) tests"; else bad "redis-benchmark" "$out"; fi
else
  bad "redis-benchmark exited non-zero" "$out"
fi

# redis-py.
if out=$(python3 tests/python/redis_py_smoke.py "$port" 2>&1); then ok "redis-py smoke"; else bad "redis-py smoke" "$out"; fi
if out=$(timeout 120 python3 tests/python/redis_py_transactions.py "$port" 2>&1); then ok "redis-py transactions ($out)"; else bad "redis-py transactions" "$out"; fi
if out=$(timeout 120 python3 tests/python/redis_py_lock.py "$port" 2>&1); then ok "redis-py Lock ($out)"; else bad "redis-py Lock" "$out"; fi

# promtool on a live scrape. kora_keys_total is a gauge by the product's
# metric contract, which promtool's naming lint flags; that is the only
# finding allowed (see README, "Metrics").
python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:$mport/metrics').read().decode(), end='')" >/tmp/kora-e2e.metrics
lint=$(promtool check metrics </tmp/kora-e2e.metrics 2>&1)
other=$(echo "$lint" | grep -v '^kora_keys_total non-counter metrics should not have "_total" suffix$' | grep -v '^$')
[ -z "$other" ] && ok "promtool check metrics (only the contract's kora_keys_total finding)" || bad "promtool check metrics" "$lint"

# Cluster mode (issue 16): three nodes form one cluster from one topology
# file (each node gets its own copy: a node writes pushed topologies back
# to its file), then redis-py's RedisCluster (100k keys through its
# pipeline, read back from every entry node) and redis-cli -c.
cdir=$(mktemp -d)
cports=("$(free_port)" "$(free_port)" "$(free_port)")
cpids=()
trap 'kill "$pid" "${cpids[@]}" 2>/dev/null; wait "$pid" "${cpids[@]}" 2>/dev/null; rm -rf "$cdir"' EXIT
printf 'epoch 1\nnode 127.0.0.1:%s 0-5460\nnode 127.0.0.1:%s 5461-10922\nnode 127.0.0.1:%s 10923-16383\n' \
  "${cports[@]}" >"$cdir/topology.conf"
for i in 0 1 2; do
  cp "$cdir/topology.conf" "$cdir/node$i.conf"
  "$bin" --port "${cports[$i]}" --metrics-port 0 --workers 2 --cluster-enabled yes \
    --cluster-config-file "$cdir/node$i.conf" 2>"$cdir/node$i.log" &
  cpids+=($!)
done
for p in "${cports[@]}"; do
  for _ in $(seq 100); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
done
expect "cluster: CLUSTER INFO state from the topology file" "cluster_state:ok" \
  "$(redis-cli -p "${cports[1]}" cluster info | head -n 1 | tr -d '\r')"
expect "cluster: redis-cli without -c gets MOVED" "MOVED 12182 127.0.0.1:${cports[2]}" \
  "$(redis-cli -p "${cports[0]}" get foo 2>&1)"
redis-cli -c -p "${cports[0]}" set foo bar >/dev/null
expect "cluster: redis-cli -c follows MOVED" "bar" "$(redis-cli -c -p "${cports[1]}" get foo | tail -n 1)"
if out=$(timeout 120 python3 tests/python/cluster_clients.py "${cports[@]}" 2>&1); then
  ok "cluster: redis-py RedisCluster + redis-cli -c ($out)"
else
  bad "cluster: redis-py RedisCluster + redis-cli -c" "$out"
fi
kill "${cpids[@]}" 2>/dev/null
wait "${cpids[@]}" 2>/dev/null
cpids=()
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null' EXIT
rm -rf "$cdir"

# SIGTERM: clean exit with status 0.
kill -TERM "$pid"
wait "$pid"
code=$?
trap - EXIT
expect "exit status after SIGTERM" "0" "$code"

echo "e2e: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
