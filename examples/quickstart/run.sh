#!/usr/bin/env bash
# Vigo on one machine, in one step: a server and a local envoy converging
# the quickstart module (examples/quickstart/config) into /tmp/vigo-quickstart.
#
# Server state (master key, encrypted secrets, embedded database, CA) lives
# in .vigo-quickstart/ at the top of the checkout. Run it again at any time:
# it reuses what is there. With --exit it stops the server at the end
# instead of leaving it running in the foreground.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
state="$root/.vigo-quickstart"
config="$root/examples/quickstart/vigosrv.yaml"
keep_serving=yes
[ "${1:-}" = "--exit" ] && keep_serving=no

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "building vigosrv, vigocli and vigoenvoy (a first build takes a few minutes)"
# Cargo's own progress (compiled crates and the progress bar) on stderr.
cargo build --bins
bin="${CARGO_TARGET_DIR:-$root/target}/debug"
cli() { "$bin/vigocli" --config "$config" "$@"; }

mkdir -p "$state"
if [ ! -f "$state/master.key" ]; then
  step "first run: generating the master key, CA, server certificate and tokens"
  cli secrets bootstrap
fi
if ! cli secrets list vigo/quickstart | grep -q app_password; then
  step "storing the app password in the encrypted local store (value read from stdin)"
  # The server is not started yet (it needs this secret to start), so the
  # CLI's note that it could not notify the server is expected: drop it.
  head -c 18 /dev/urandom | base64 | cli secrets set vigo/quickstart/app_password - |
    { grep -v '^Server not reachable' || true; }
  echo "vigosrv reads it when it starts, next."
fi

step "starting vigosrv (log: .vigo-quickstart/vigosrv.log)"
"$bin/vigosrv" --config "$config" >"$state/vigosrv.log" 2>&1 &
server=$!
stop_server() { kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true; }
trap stop_server EXIT
for _ in $(seq 1 100); do
  curl -sf --cacert "$state/ca.crt" https://localhost:8443/healthz >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { cat "$state/vigosrv.log"; exit 1; }
  sleep 0.1
done
curl -s --cacert "$state/ca.crt" https://localhost:8443/healthz; echo "  (GET /healthz)"

envoy="$state/envoy"
mkdir -p "$envoy"
chmod 700 "$envoy"
if [ ! -f "$envoy/data/envoy.crt" ]; then
  step "enrolling envoy 'quickstart.local' with a one-time token"
  (umask 077; cli envoys token >"$envoy/enroll-token")
fi
cat >"$envoy/envoy.yaml" <<YAML
server: "https://localhost:8443"
name: "quickstart.local"
ca_cert: "$state/ca.crt"
data_dir: "$envoy/data"
enroll_token_file: "$envoy/enroll-token"
YAML

step "vigoenvoy run --once: check in, converge, report"
"$bin/vigoenvoy" --config "$envoy/envoy.yaml" run --once

step "the result"
ls -l /tmp/vigo-quickstart
cat /tmp/vigo-quickstart/motd

step "the catalog as the server compiles it (secrets shown as references)"
cli catalog quickstart.local

step "a second run checks every resource again and changes nothing"
"$bin/vigoenvoy" --config "$envoy/envoy.yaml" run --once

step "drift: delete the motd, chmod the secret file 0644 and edit it by hand"
rm /tmp/vigo-quickstart/motd
chmod 644 /tmp/vigo-quickstart/app.conf
echo "# edited by hand" >>/tmp/vigo-quickstart/app.conf

step "vigoenvoy run --once --noop: what differs (secret content never shown), nothing changed"
"$bin/vigoenvoy" --config "$envoy/envoy.yaml" run --once --noop

step "vigoenvoy run --once: the drift is repaired (and app-reload runs once)"
"$bin/vigoenvoy" --config "$envoy/envoy.yaml" run --once
ls -l /tmp/vigo-quickstart

if [ "$keep_serving" = yes ]; then
  cat <<TXT

vigosrv is running on https://localhost:8443 (Ctrl-C stops it). In another shell, rotate the secret
and watch the envoy rewrite the file and run the notified command:

  printf %s new-password | target/debug/vigocli --config $config secrets set vigo/quickstart/app_password -
  target/debug/vigoenvoy --config $envoy/envoy.yaml run --once
TXT
  wait "$server"
fi
