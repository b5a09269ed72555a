#!/bin/sh
# Whole-process times of `vigoenvoy apply` on N file resources (200-byte
# contents, mode 0644, one folder): the first converge (every file
# written), a no-op run (everything in sync) and a one-file drift (one
# target deleted, then restored). Prints the median, lowest and highest of
# ROUNDS runs of each.
#
# Usage (from the workspace root; the targets and the envoy's data folder
# go under SCRATCH, default a new folder in the current directory, so the
# disk measured is the one the checkout is on):
#   cargo build --release --bin vigoenvoy
#   sh crates/vigo-engine/benches/converge.sh [path/to/vigoenvoy] [N] [ROUNDS]
set -eu

bin=${1:-${CARGO_TARGET_DIR:-target}/release/vigoenvoy}
files=${2:-1000}
rounds=${3:-10}
[ -x "$bin" ] || { echo "error: $bin not found; run cargo build --release --bin vigoenvoy" >&2; exit 1; }

work=$(mktemp -d "${SCRATCH:-$PWD}/converge-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The catalog of round $1: its targets in their own folder, so that no round
# writes where an earlier one deleted files (ext4 then searches its inode
# tables around recently deleted inodes, which measures the file system,
# not the envoy).
catalog() {
    printf '{"envoy":"bench","resources":['
    i=0
    while [ "$i" -lt "$files" ]; do
        [ "$i" -gt 0 ] && printf ','
        printf '{"name":"file-%d","type":"file","target_path":"%s/r%d/targets/f%d.conf","content":[{"text":"setting_%06d = %0182d\\n"}],"mode":"0644"}' \
            "$i" "$work" "$1" "$i" "$i" 0
        i=$((i + 1))
    done
    printf ']}\n'
}

# Milliseconds one `apply` takes, whole process.
apply_ms() {
    start=$(date +%s%N)
    "$bin" --config "$work/none.yaml" apply --catalog "$work/r$r/catalog.json" \
        --data-dir "$work/r$r/data" > "$work/out" 2>&1 || { cat "$work/out" >&2; exit 1; }
    end=$(date +%s%N)
    echo $(((end - start) / 1000000))
}

# median, lowest, highest of the numbers on stdin
stats() {
    sort -n | awk '{ v[NR] = $1 } END { printf "median %d ms, low %d ms, high %d ms", v[int((NR + 1) / 2)], v[1], v[NR] }'
}

first=""; noop=""; drift=""
r=0
while [ "$r" -lt "$rounds" ]; do
    mkdir -p "$work/r$r/targets"
    catalog "$r" > "$work/r$r/catalog.json"
    sync
    first="$first $(apply_ms)"
    noop="$noop $(apply_ms)"
    rm "$work/r$r/targets/f0.conf"
    drift="$drift $(apply_ms)"
    r=$((r + 1))
done
tail -n 1 "$work/out"
echo "first converge of $files files: $(echo $first | tr ' ' '\n' | stats)"
echo "no-op run:                      $(echo $noop | tr ' ' '\n' | stats)"
echo "one file drifted:               $(echo $drift | tr ' ' '\n' | stats)"
