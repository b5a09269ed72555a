#!/usr/bin/env bash
# Rotation latency: the time from `vigocli secrets set` returning to the
# target file on the envoy holding the new value, with two envoys running
# their `run` loop (60 s check-in interval, so only the wait channel can
# bring the change in time).
#
#   cargo build --release --bin vigosrv --bin vigocli --bin vigoenvoy
#   benches/rotation-latency.sh            # ROUNDS=20 by default
#
# db1.example.com writes the database password to a file that watches it
# and notifies an exec; web1.example.com uses no secret. Each round sets a
# new value through stdin and polls the file every 2 ms (bash builtins
# only, no process per poll). Prints each round and min/median/p90/max.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${BIN:-$root/target/release}"
rounds="${ROUNDS:-20}"
port="${PORT:-18543}"
for b in vigosrv vigocli vigoenvoy; do
  [ -x "$bin/$b" ] || { echo "missing $bin/$b: build with cargo build --release" >&2; exit 1; }
done

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
mkdir -p out config/modules

cat > vigosrv.yaml <<YAML
listen: "127.0.0.1:$port"
data_dir: data
config_dir: config
checkin:
  interval: "60s"
YAML
cat > config/nodes.vgo <<'YAML'
envoys:
  - match: "db*.example.com"
    roles: [database]
    vars:
      db_password: "secret:vigo/db/password"
  - match: "web*.example.com"
    roles: [web]
YAML
cat > config/modules/database.vgo <<YAML
resources:
  - name: pg-config
    type: file
    target_path: $work/out/db.conf
    content: |
      password = {{ .Vars.db_password }}
    watch_secret: ["vigo/db/password"]
    notify: [pg-restart]
  - name: pg-restart
    type: exec
    command: "echo restart >> $work/out/restarts.log"
    when: changed
YAML
cat > config/modules/web.vgo <<YAML
resources: [{name: web-index, type: file, target_path: $work/out/index.html, content: "<h1>web</h1>"}]
YAML

cli() { "$bin/vigocli" --config vigosrv.yaml --log-level warn "$@"; }
cli secrets bootstrap >/dev/null
printf '%s' "initial-value" | cli secrets set vigo/db/password - >/dev/null
"$bin/vigosrv" --config vigosrv.yaml --log-level warn 2>server.log &
pids+=($!)
for _ in $(seq 1 200); do [ -s data/ca.crt ] && cli envoys list >/dev/null 2>&1 && break; sleep 0.05; done

for name in db1.example.com web1.example.com; do
  mkdir -p "envoys/$name"
  cli envoys token > "envoys/$name/token"
  chmod 600 "envoys/$name/token"
  cat > "envoys/$name/envoy.yaml" <<YAML
server: "https://localhost:$port"
name: "$name"
ca_cert: "$work/data/ca.crt"
data_dir: "$work/envoys/$name/data"
enroll_token_file: "$work/envoys/$name/token"
YAML
  "$bin/vigoenvoy" --config "envoys/$name/envoy.yaml" --log-level warn run \
    >"envoys/$name/out.log" 2>&1 &
  pids+=($!)
done

# Polls out/db.conf until it reads "password = $1"; bash builtins only.
wait_for_value() {
  local want="password = $1" line deadline=$((${EPOCHREALTIME/./} + 30000000))
  while :; do
    line=""
    [ -e out/db.conf ] && read -r line < out/db.conf || true
    [ "$line" = "$want" ] && return 0
    [ "${EPOCHREALTIME/./}" -lt "$deadline" ] || { echo "timed out waiting for the value" >&2; return 1; }
    sleep 0.002
  done
}
wait_for_value "initial-value"
# Let both envoys settle into their wait channel.
sleep 2

samples=()
for i in $(seq 1 "$rounds"); do
  value="rotated-$i-$RANDOM$RANDOM"
  printf '%s' "$value" | cli secrets set vigo/db/password - >/dev/null
  start="${EPOCHREALTIME/./}"
  wait_for_value "$value"
  end="${EPOCHREALTIME/./}"
  ms=$(( (end - start) / 1000 ))
  samples+=("$ms")
  printf 'round %2d: %5d ms\n' "$i" "$ms"
  sleep 1
done

sorted=($(printf '%s\n' "${samples[@]}" | sort -n))
n=${#sorted[@]}
p90=$(( (n * 9 + 9) / 10 - 1 ))
printf 'rounds %d  min %d ms  median %d ms  p90 %d ms  max %d ms\n' \
  "$n" "${sorted[0]}" "${sorted[$((n / 2))]}" "${sorted[$p90]}" "${sorted[$((n - 1))]}"
printf 'restarts of the stand-in service: %s (one per round plus the first converge)\n' \
  "$(wc -l < out/restarts.log)"
printf 'web1 changes applied: %s (1: its first converge only)\n' \
  "$(grep -c '^changed' envoys/web1.example.com/out.log || true)"
