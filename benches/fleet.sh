#!/bin/sh
# A fleet holding waits against one vigosrv (docs/performance.md, "A fleet
# holding waits"): N envoys enrolled through the API, each holding
# `GET /v1/wait`; prints, for that N,
#   - vigosrv's RSS before and after the waits open (per connected envoy),
#   - the CPU vigosrv (and PostgreSQL) burn while nothing happens,
#   - unchanged check-ins per second without and with the waits held,
#   - the fan-out: a rotation of a secret used by K of the N envoys, timed
#     from `vigocli secrets set` returning to each envoy holding its new
#     catalog (p50 / p99 / max over the K, several rounds).
#
# The client sockets come from SOURCES loopback addresses (default 8), as a
# fleet's come from many hosts: vigosrv admits at most 64 connections per
# address until their handshake shows a certificate.
#
# Usage (from the workspace root):
#   cargo build --release --bin vigosrv --bin vigocli -p vigo-loadgen
#   sh benches/fleet.sh N [K] [sqlite|postgres]
# With postgres, VIGO_BENCH_POSTGRES names the server
# (default postgres://postgres@127.0.0.1:5432/test); a fresh schema is
# made and dropped. Scratch files go under SCRATCH (default the current
# folder). Both processes raise their open-file limit to the hard limit:
# run as root or raise `ulimit -Hn` above 2 × N + 1,000.
set -eu

envoys=${1:?usage: sh benches/fleet.sh N [K] [sqlite|postgres]}
fanout=${2:-$((envoys / 10))}
database=${3:-sqlite}
bin=${BIN:-${CARGO_TARGET_DIR:-target}/release}
for b in vigosrv vigocli vigo-loadgen; do
    [ -x "$bin/$b" ] || { echo "error: $bin/$b not found; run cargo build --release --bin vigosrv --bin vigocli -p vigo-loadgen" >&2; exit 1; }
done
need=$((4 * envoys + 4096))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
    ulimit -Hn "$need" 2>/dev/null || echo "warning: open-file hard limit $hard is below $need; raise it (as root: ulimit -Hn $need)" >&2
fi
ulimit -n "$(ulimit -Hn)"
port=$((20000 + $$ % 10000))
work=$(mktemp -d "${SCRATCH:-$PWD}/fleet-bench.XXXXXX")
work=$(cd "$work" && pwd)
server_pid=""
schema="vigo_fleet_$$"
pg=${VIGO_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    [ "$database" = postgres ] && psql -q "$pg" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

cat > vigosrv.yaml <<YAML
listen: "127.0.0.1:$port"
data_dir: data
config_dir: config
database:
  dsn: "secret:vigo/db/dsn"
YAML
mkdir -p config/modules out
cat > config/nodes.vgo <<'YAML'
envoys:
  - match: "fan-load-*.example.com"
    roles: [fan]
    vars:
      token: "secret:load/fanout"
  - match: "web-load-*.example.com"
    roles: [web]
YAML
cat > config/modules/fan.vgo <<YAML
resources: [{name: token, type: file, target_path: $work/out/token, content: "{{ .Vars.token }}", watch_secret: [load/fanout]}]
YAML
cat > config/modules/web.vgo <<YAML
resources: [{name: page, type: file, target_path: $work/out/page, content: hello}]
YAML

cli() { "$bin/vigocli" --config vigosrv.yaml --log-level warn "$@"; }
cli secrets bootstrap >/dev/null
if [ "$database" = postgres ]; then
    psql -q "$pg" -c "CREATE SCHEMA $schema" >/dev/null
    printf '%s' "$pg?options=-csearch_path%3D$schema" | cli secrets set vigo/db/dsn - >/dev/null
fi
echo first | cli secrets set load/fanout - >/dev/null
cli secrets get vigo/server/admin_token > admin-token
chmod 600 admin-token

"$bin/vigosrv" --config vigosrv.yaml --log-level warn 2> vigosrv.log &
server_pid=$!
i=0
until [ -s data/ca.crt ] && curl -sk "https://127.0.0.1:$port/healthz" >/dev/null 2>&1; do
    i=$((i + 1)); [ "$i" -lt 100 ] || { cat vigosrv.log >&2; exit 1; }
    sleep 0.1
done

rss_kib() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$server_pid/status"; }
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
pg_ticks() {
    # CPU of every PostgreSQL backend, in clock ticks.
    total=0
    for p in $(pgrep -x postgres); do total=$((total + $(ticks "$p" 2>/dev/null || echo 0))); done
    echo "$total"
}
hz=$(getconf CLK_TCK)
loadgen() {
    "$bin/vigo-loadgen" --server "https://localhost:$port" --ca data/ca.crt \
        --admin-token-file admin-token --cache-dir envoys --envoys "$envoys" \
        --fanout-envoys "$fanout" --source-addresses "${SOURCES:-8}" "$@"
}

echo "== $envoys envoys ($fanout fan-out), $database, load average $(cut -d' ' -f1-3 /proc/loadavg)"
# Enroll every envoy and send its first check-in (the catalogs get cached).
loadgen --mode burst --duration 1s --concurrency 32 > enroll.out 2>&1 || { cat enroll.out >&2; exit 1; }
before=$(rss_kib)
echo "vigosrv RSS with $envoys envoys enrolled, no wait held: $before KiB"

# Idle: every envoy holds a wait and checks in once an hour (so almost
# nothing happens) for 60 s (after 20 s of
# opening); CPU of vigosrv (and PostgreSQL) over those 60 s.
loadgen --mode steady --interval 1h --duration 80s --hold-waits > idle.out 2>&1 &
idle=$!
sleep 20
held=$(rss_kib)
s0=$(ticks "$server_pid"); p0=$(pg_ticks)
sleep 60
s1=$(ticks "$server_pid"); p1=$(pg_ticks)
wait "$idle" || { cat idle.out >&2; exit 1; }
echo "vigosrv RSS with $envoys waits held: $held KiB ($(( (held - before) * 1024 / envoys )) bytes per held wait)"
awk -v s=$((s1 - s0)) -v p=$((p1 - p0)) -v hz="$hz" -v db="$database" 'BEGIN {
    printf "idle CPU over 60 s: vigosrv %.1f%% of a core", 100 * s / hz / 60
    if (db == "postgres") printf ", PostgreSQL %.1f%%", 100 * p / hz / 60
    printf "\n" }'
grep -v "^enrolled\|^first check-in\|^open-file" idle.out

echo "-- unchanged check-ins, no wait held"
loadgen --mode burst --duration 20s --concurrency 32 2>&1 | tail -n 3
echo "-- unchanged check-ins, every envoy holding a wait"
loadgen --mode burst --duration 20s --concurrency 32 --hold-waits 2>&1 | grep -v "^enrolled\|^first check-in\|hold a wait\|^open-file"
echo "-- fan-out: a rotation reaching $fanout of $envoys envoys"
loadgen --mode fanout --hold-waits --rounds 5 --server-config vigosrv.yaml \
    --vigocli "$bin/vigocli" 2>&1 | grep -v "^enrolled\|^first check-in\|hold a wait\|^open-file"
echo "vigosrv RSS at the end: $(rss_kib) KiB"
echo "vigosrv warnings: $(grep -c WARN vigosrv.log || true)"
grep WARN vigosrv.log | sed 's/^.*WARN //; s/ remote=[^ ]*//g' | cut -c1-120 | sort | uniq -c | sort -rn | head -n 3
