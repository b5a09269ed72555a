#!/bin/sh
# Peak RSS of `vigoenvoy apply` on a catalog of 1,000 file resources:
# once to converge, once more with everything unchanged. Goal: < 15 MiB.
#
# Usage (from the workspace root):
#   cargo build --release --bin vigoenvoy
#   sh crates/vigo-engine/benches/rss.sh [path/to/vigoenvoy]
set -eu

bin=${1:-${CARGO_TARGET_DIR:-target}/release/vigoenvoy}
[ -x "$bin" ] || { echo "error: $bin not found; run cargo build --release --bin vigoenvoy" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "error: /usr/bin/time (GNU time) is needed" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/targets"

# The catalog: 1,000 files of ~220 bytes each.
{
    printf '{"envoy":"rss","resources":['
    i=0
    while [ $i -lt 1000 ]; do
        [ $i -gt 0 ] && printf ','
        printf '{"name":"file-%d","type":"file","target_path":"%s/targets/f%d.conf","content":[{"text":"setting_%d = %0200d\\n"}],"mode":"0644"}' \
            $i "$work" $i $i 0
        i=$((i + 1))
    done
    printf ']}\n'
} > "$work/catalog.json"

for run in converge unchanged; do
    /usr/bin/time -v "$bin" --config "$work/none.yaml" apply --catalog "$work/catalog.json" \
        --data-dir "$work/data" > "$work/$run.out" 2> "$work/$run.time"
    kib=$(sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): //p' "$work/$run.time")
    summary=$(tail -n 1 "$work/$run.out")
    echo "$run: max RSS ${kib} KiB ($(awk "BEGIN { printf \"%.1f\", $kib / 1024 }") MiB); $summary"
done
