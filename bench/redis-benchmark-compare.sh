#!/usr/bin/env bash
# Kora vs Debian's redis-server through redis-benchmark, same run, same
# machine: SET and GET at -P 1 and -P 16, Kora with --workers 1 and with
# every core. Prints one table with ops/s and the Kora/Redis ratio.
# Usage: bench/redis-benchmark-compare.sh [requests]   (default 400000)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-400000}
command -v redis-server >/dev/null || { echo "needs redis-server (apt-get install -y redis-server)" >&2; exit 1; }
cargo build --release --quiet
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
wait_up() { for _ in $(seq 100); do redis-cli -p "$1" ping >/dev/null 2>&1 && return; sleep 0.05; done; exit 1; }
run() { # port P -> "set get" ops/s
  redis-benchmark -p "$1" -c 50 -n "$n" -r 100000 -d 64 -t set,get -P "$2" --csv 2>/dev/null \
    | awk -F'","' 'NR>1 {gsub(/"/,"",$2); printf "%s ", $2}'
}
declare -A result
rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --daemonize no >/dev/null &
pids+=($!); wait_up "$rport"
for P in 1 16; do result[redis,$P]=$(run "$rport" $P); done
kill "${pids[-1]}"
cores=$(nproc)
for w in 1 "$cores"; do
  port=$(free_port)
  target/release/kora --port "$port" --metrics-port 0 --workers "$w" 2>/dev/null &
  pids+=($!); wait_up "$port"
  for P in 1 16; do result[kora$w,$P]=$(run "$port" $P); done
  kill "${pids[-1]}"
done
printf "%-22s %4s %12s %12s %8s %8s\n" server P "SET ops/s" "GET ops/s" "SET x" "GET x"
for cfg in redis kora1 "kora$cores"; do
  for P in 1 16; do
    read -r s g <<<"${result[$cfg,$P]}"; read -r rs rg <<<"${result[redis,$P]}"
    name=$cfg; [ "$cfg" = redis ] && name="redis-server $(redis-server --version | grep -o 'v=[0-9.]*' | cut -c3-)"
    [ "$cfg" != redis ] && name="kora --workers ${cfg#kora}"
    python3 -c "print(f'{\"$name\":<22} {$P:>4} {$s:>12,.0f} {$g:>12,.0f} {$s/$rs:>8.2f} {$g/$rg:>8.2f}')"
  done
done
