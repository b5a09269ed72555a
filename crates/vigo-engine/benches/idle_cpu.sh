#!/bin/sh
# CPU used by a running `vigoenvoy run` loop between cycles.
#
#   sh crates/vigo-engine/benches/idle_cpu.sh ENVOY_BINARY ENVOY_YAML [SECONDS]
#
# Starts the loop on ENVOY_YAML (its server must be running, e.g. the one
# examples/quickstart/run.sh leaves in the foreground), lets the first
# cycle finish, then reads utime+stime from /proc/PID/stat at the start and
# the end of the window (default 60 s; enforcement cycles at the server's
# check-in interval fall inside it). Prints the CPU time used and its share
# of one core.
set -eu
binary=$1
config=$2
window=${3:-60}
ticks=$(getconf CLK_TCK)

"$binary" --config "$config" --log-level warn run >/dev/null 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
sleep 5

cpu() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }
start=$(cpu)
sleep "$window"
end=$(cpu)
used=$((end - start))
awk -v used="$used" -v ticks="$ticks" -v window="$window" 'BEGIN {
  secs = used / ticks
  printf "vigoenvoy run: %.2f s of CPU in %d s (%.3f%% of one core)\n", secs, window, 100 * secs / window
}'
