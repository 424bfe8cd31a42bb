#!/usr/bin/env bash
# The operator kit end to end, with a real Prometheus: the shipped
# prometheus.yml, alerts.yml and Grafana dashboard are checked by promtool
# and then used for real. Kora starts from kora.service's ExecStart (and
# its limits, as a non-root user when we are root) on free loopback ports;
# a bounded redis-benchmark workload with a skewed key and a few errors
# runs; a Prometheus on loopback scrapes every second with alerts.yml
# loaded; every PromQL expression of the dashboard and the alerts is
# queried and its answer judged (tools/prometheus-e2e-check.py). Finally
# Kora is stopped and KoraDown must go pending. Everything started here is
# stopped by pid. Usage: tools/prometheus-e2e.sh [path/to/kora]
set -uo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "${1:-target/release/kora}")
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; [ -n "${2:-}" ] && echo "$2" | sed 's/^/     /'; }
indent() { sed 's/^/       | /'; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Adds the "checks: P passed, F failed" line of the Python checker to ours.
tally() {
  local line
  line=$(grep '^checks: ' <<<"$1" | tail -1)
  if [[ $line =~ ^checks:\ ([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
    passed=$((passed + BASH_REMATCH[1]))
    failed=$((failed + BASH_REMATCH[2]))
  else
    bad "checker ran to its summary line" "$1"
  fi
}

tmp=$(mktemp -d /tmp/kora-prometheus-e2e.XXXXXX)
chmod 755 "$tmp"
kora_pid=
prom_pid=
cleanup() {
  for pid in $kora_pid $prom_pid; do
    kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  rm -rf "$tmp"
}
trap cleanup EXIT

# --- The shipped files, statically --------------------------------------
for check in "check config tools/prometheus.yml" "check rules tools/alerts.yml" "test rules tools/alerts.test.yml"; do
  # shellcheck disable=SC2086
  if out=$(promtool $check 2>&1); then ok "promtool $check"; else bad "promtool $check"; fi
  echo "$out" | indent
done
out=$(python3 tools/prometheus-e2e-check.py dashboard --dashboard tools/grafana/kora-dashboard.json 2>&1)
echo "$out" | grep -v '^checks: '
tally "$out"

# --- Kora, started the way kora.service starts it ------------------------
port=$(free_port)
mport=$(free_port)
pport=$(free_port)
read -r -a exec_start <<<"$(sed -n 's/^ExecStart=//p' tools/kora.service)"
# The unit runs /usr/local/bin/kora with /etc/kora/kora.toml: here the built
# binary and the shipped kora.toml, copied where an unprivileged user can
# read them, plus loopback ports for this test (flags win over the file).
cp "$bin" "$tmp/kora"
cp tools/kora.toml "$tmp/kora.toml"
chmod 755 "$tmp/kora"
chmod 644 "$tmp/kora.toml"
cmd=()
for word in "${exec_start[@]}"; do
  case $word in
    /usr/local/bin/kora) cmd+=("$tmp/kora") ;;
    /etc/kora/kora.toml) cmd+=("$tmp/kora.toml") ;;
    *) cmd+=("$word") ;;
  esac
done
if [ "${cmd[*]}" == "$tmp/kora --config $tmp/kora.toml" ]; then
  ok "kora.service ExecStart runs kora with the config file: ${exec_start[*]}"
else
  bad "kora.service ExecStart is the one this test knows how to run" "${exec_start[*]}"
fi
cmd+=(--bind 127.0.0.1 --port "$port" --metrics-bind 127.0.0.1 --metrics-port "$mport" --workers 2)
nofile=$(sed -n 's/^LimitNOFILE=//p' tools/kora.service)
memlock=$(sed -n 's/^LimitMEMLOCK=//p' tools/kora.service)
[ "$memlock" == infinity ] && memlock=unlimited
# As systemd would: the unit's limits, then a user without privileges (the
# unit's own user does not exist on a test machine; nobody does). Raising
# hard limits needs CAP_SYS_RESOURCE, which containers often drop; then
# Kora runs under the limits it was given, and the line below says so.
launch=()
limits="the unit's limits not applied (no CAP_SYS_RESOURCE): nofile $(ulimit -Hn), memlock $(ulimit -Hl) KiB"
if prlimit "--nofile=$nofile:$nofile" "--memlock=$memlock:$memlock" -- true 2>/dev/null; then
  launch=(prlimit "--nofile=$nofile:$nofile" "--memlock=$memlock:$memlock" --)
  limits="LimitNOFILE=$nofile, LimitMEMLOCK=$memlock"
fi
if [ "$(id -u)" -eq 0 ]; then
  launch+=(setpriv --reuid=nobody --regid=nogroup --clear-groups --)
  as="as nobody, $limits"
else
  as="as $(id -un), $limits"
fi
"${launch[@]}" "${cmd[@]}" 2>"$tmp/kora.log" &
kora_pid=$!
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
if [ "$(redis-cli -p "$port" ping 2>&1)" == PONG ]; then
  ok "kora started from the unit's command line $as"
else
  bad "kora started from the unit's command line" "$(cat "$tmp/kora.log")"
  echo "prometheus-e2e: $passed passed, $failed failed"
  exit 1
fi
user=$(stat -c %U "/proc/$kora_pid")
[ "$(id -u)" -ne 0 ] || [ "$user" == nobody ] && ok "kora runs as $user" || bad "kora runs as nobody" "$user"

# --- Prometheus, configured from the shipped prometheus.yml --------------
# Only the intervals (1 s instead of 15 s) and the target change.
sed -e 's/^\( *scrape_interval:\).*/\1 1s/' \
    -e 's/^\( *evaluation_interval:\).*/\1 1s/' \
    -e 's/^\( *scrape_timeout:\).*/\1 1s/' \
    -e "s/\"localhost:9090\"/\"127.0.0.1:$mport\"/" \
    tools/prometheus.yml >"$tmp/prometheus.yml"
cp tools/alerts.yml "$tmp/alerts.yml"
if grep -q "\"127.0.0.1:$mport\"" "$tmp/prometheus.yml" && [ "$(grep -c ': 1s$' "$tmp/prometheus.yml")" -eq 3 ] &&
  promtool check config "$tmp/prometheus.yml" >/dev/null 2>&1; then
  ok "test prometheus.yml derived from the shipped one (1 s scrape, target 127.0.0.1:$mport)"
else
  bad "test prometheus.yml derived from the shipped one" "$(cat "$tmp/prometheus.yml")"
fi
prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/data" \
  --web.listen-address="127.0.0.1:$pport" --log.level=warn >"$tmp/prometheus.log" 2>&1 &
prom_pid=$!
prom="http://127.0.0.1:$pport"
up_query="$prom/api/v1/query?query=up%7Bjob%3D%22kora%22%7D"
for _ in $(seq 150); do
  python3 -c "import json,sys,urllib.request; r=json.load(urllib.request.urlopen('$up_query')); sys.exit(not any(s['value'][1]=='1' for s in r['data']['result']))" 2>/dev/null && break
  sleep 0.2
done
if python3 -c "import json,sys,urllib.request; r=json.load(urllib.request.urlopen('$up_query')); sys.exit(not any(s['value'][1]=='1' for s in r['data']['result']))" 2>/dev/null; then
  ok "prometheus $(prometheus --version 2>&1 | head -1 | awk '{print $3}') on 127.0.0.1:$pport scrapes kora (up == 1)"
else
  bad "prometheus scrapes kora" "$(tail -20 "$tmp/prometheus.log")"
fi

# --- A bounded workload: spread keys, one hot key, errors, expiring keys --
# Two rounds, a few scrapes apart, so rates and quantiles cover more than
# one burst.
ran=get,set,incr,lpush,lpop,sadd,hset,mset
bench() { timeout 60 redis-benchmark -p "$port" "$@" >"$tmp/bench.out" 2>&1; }
redis-cli -p "$port" set hot:item hello >/dev/null
for round in 1 2; do
  bench -c 8 -n 20000 -r 10000 -P 2 -q -t "$ran" && ok "round $round: redis-benchmark -n 20000 -r 10000 -t $ran" || bad "redis-benchmark $ran" "$(tail -5 "$tmp/bench.out")"
  bench -c 4 -n 80000 -P 8 -q get hot:item && ok "round $round: redis-benchmark, 80000 GETs of one hot key" || bad "hot-key load" "$(tail -5 "$tmp/bench.out")"
  [ $round == 1 ] && sleep 3
done
errors=$(for _ in $(seq 200); do echo "lpush hot:item x"; done | redis-cli -p "$port" | grep -c WRONGTYPE)
[ "$errors" -eq 200 ] && ok "200 LPUSH on a string key answered WRONGTYPE" || bad "WRONGTYPE errors" "$errors"
# Writes refused at maxmemory (noeviction, the default policy): a few -OOM
# replies for KoraOutOfMemory to measure; then a limit far above what this
# run holds, so the rest of it is untouched and kora_maxmemory_bytes is set
# (KoraMemoryNearLimit stays quiet on a server with a limit).
redis-cli -p "$port" config set maxmemory 1mb >/dev/null
ooms=$(for _ in $(seq 20); do echo "set oom:key x"; done | redis-cli -p "$port" | grep -c '^OOM')
redis-cli -p "$port" config set maxmemory 4gb >/dev/null
[ "$ooms" -eq 20 ] && ok "20 SETs over maxmemory (noeviction) answered OOM" || bad "OOM errors" "$ooms"
bench -c 5 -n 2000 -r 1000 -q set ttl:__rand_int__ v px 300 && ok "redis-benchmark: 2000 SET PX 300 (expiring keys)" || bad "expiring keys" "$(tail -5 "$tmp/bench.out")"
# An idle client stays connected, so connected clients are not 0.
exec 3<>"/dev/tcp/127.0.0.1/$port"
# Let the TTL keys expire and the key count settle, then a few more scrapes.
prev=-1
for _ in $(seq 50); do
  dbsize=$(redis-cli -p "$port" dbsize)
  [ "$dbsize" == "$prev" ] && break
  prev=$dbsize
  sleep 0.5
done
sleep 4

# --- Every dashboard and alert expression against the live Prometheus ---
out=$(python3 tools/prometheus-e2e-check.py healthy --prometheus "$prom" \
  --dashboard tools/grafana/kora-dashboard.json --metrics-url "http://127.0.0.1:$mport/metrics" \
  --ran "$ran" --failed lpush --shards 2 --dbsize "$dbsize" 2>&1)
echo "$out" | grep -v '^checks: '
tally "$out"

# --- HOTKEYS and kora top see the skewed key -----------------------------
hot=$(redis-cli -p "$port" hotkeys count 1 | head -1)
[ "$hot" == hot:item ] && ok "HOTKEYS COUNT 1 is hot:item" || bad "HOTKEYS COUNT 1" "$hot"
top_out=$(timeout 20 "$bin" top --port "$port" --metrics-port "$mport" --iterations 1 --interval 0.5 2>&1)
if [[ $top_out == *"keys $dbsize "* ]] && grep -Eq '^ +1  hot:item ' <<<"$top_out"; then
  ok "kora top shows keys $dbsize and hot:item first"
else
  bad "kora top shows the key count and hot:item first" "$top_out"
fi

# --- promtool on a live scrape --------------------------------------------
# kora_keys_total is a gauge by the product's metric contract, which
# promtool's naming lint flags. That one line must be the whole output, so
# any new finding fails here (README, "Observability").
known='kora_keys_total non-counter metrics should not have "_total" suffix'
python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:$mport/metrics').read().decode(), end='')" >"$tmp/scrape.txt"
lint=$(promtool check metrics <"$tmp/scrape.txt" 2>&1)
[ "$lint" == "$known" ] && ok "promtool check metrics: exactly the contract's one finding" || bad "promtool check metrics" "$lint"
echo "$lint" | indent

# --- Stop Kora as systemd would; KoraDown must go pending ----------------
exec 3>&-
kill -TERM "$kora_pid"
wait "$kora_pid"
code=$?
kora_pid=
[ "$code" -eq 0 ] && ok "kora exits 0 on SIGTERM (the unit's KillSignal)" || bad "kora exit status on SIGTERM" "$code"
out=$(python3 tools/prometheus-e2e-check.py down --prometheus "$prom" --instance "127.0.0.1:$mport" 2>&1)
echo "$out" | grep -v '^checks: '
tally "$out"

echo "prometheus-e2e: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
