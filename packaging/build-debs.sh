#!/bin/sh
# Builds the Debian packages vigo-server and vigo-envoy into
# target/debian/ (docs/operations.md, "Install from the packages").
#
# 1. a release build of the three binaries;
# 2. their man pages, vigocli's shell completions and the package units
#    (packaging/systemd with /usr/bin and /var/lib paths) under
#    target/release/packaging/;
# 3. `cargo deb --no-build` for each variant of the root crate (Cargo.toml,
#    [package.metadata.deb]).
#
# Installs cargo-deb 3 with `cargo install --locked` when it is missing.
# Prints the two .deb paths on stdout, one a line.
set -eu

cd "$(dirname "$0")/.."
log() { printf 'build-debs: %s\n' "$*" >&2; }

if ! cargo deb --version 2>/dev/null | grep -q ' 3\.'; then
    log "installing cargo-deb 3"
    cargo install --locked --version '^3' cargo-deb >&2
fi

target_dir="$(cargo metadata --format-version 1 --no-deps \
    | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
release="${target_dir}/release"

log "cargo build --release --locked --bins"
cargo build --release --locked --bins >&2

assets="${release}/packaging"
rm -rf "$assets"
mkdir -p "$assets/man" "$assets/completions" "$assets/systemd"

"$release/vigosrv" --manpages "$assets/man"
"$release/vigocli" manpages "$assets/man"
"$release/vigoenvoy" manpages "$assets/man"
gzip -9n "$assets"/man/*.1

"$release/vigocli" completions bash >"$assets/completions/vigocli"
"$release/vigocli" completions zsh >"$assets/completions/_vigocli"
"$release/vigocli" completions fish >"$assets/completions/vigocli.fish"

# The units in packaging/systemd are written for a hand install
# (/usr/local/bin, /srv/vigo); the packages put the binaries in /usr/bin
# and the data in /var/lib/vigo and /var/lib/vigo-envoy.
sed -e 's#/usr/local/bin/#/usr/bin/#g' \
    -e 's#/srv/vigo#/var/lib/vigo#g' \
    -e 's#/usr/share/doc/vigo/#/usr/share/doc/vigo-server/#' \
    -e '/^# Vigo server\. Install the binary/,/^# See docs\/operations.md\./c\
# Vigo server, from the vigo-server package (docs/operations.md).' \
    packaging/systemd/vigosrv.service >"$assets/systemd/vigosrv.service"
sed -e 's#/usr/local/bin/#/usr/bin/#g' \
    -e 's#^StateDirectory=vigoenvoy$#StateDirectory=vigo-envoy#' \
    -e 's#/usr/share/doc/vigo/#/usr/share/doc/vigo-envoy/#' \
    -e '/^# Vigo envoy\. Install the binary/,/^# See docs\/operations.md\./c\
# Vigo envoy, from the vigo-envoy package (docs/operations.md).' \
    packaging/systemd/vigoenvoy.service >"$assets/systemd/vigoenvoy.service"

for variant in server envoy; do
    log "cargo deb --variant $variant"
    cargo deb --no-build --locked --variant "$variant" 2>&1 | tail -n 1
done
