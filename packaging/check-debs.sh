#!/bin/sh
# Builds vigo-server and vigo-envoy (packaging/build-debs.sh) and checks
# them: files and modes (`dpkg-deb -c`), control data, conffiles and
# maintainer scripts (`dpkg-deb -I` / `-e`), and lintian, whose errors fail
# the check (its warnings are listed in docs/operations.md). Run by .ci/run
# when dpkg-deb is present; installs lintian with apt-get when missing.
set -eu

cd "$(dirname "$0")/.."
log() { printf 'check-debs: %s\n' "$*" >&2; }
fail() { printf 'check-debs: FAILED: %s\n' "$*" >&2; exit 1; }

if ! command -v lintian >/dev/null 2>&1; then
    log "installing lintian"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends lintian >&2
fi

debs="$(./packaging/build-debs.sh)"
server_deb="$(printf '%s\n' "$debs" | grep '/vigo-server_.*\.deb$' | tail -n 1)"
envoy_deb="$(printf '%s\n' "$debs" | grep '/vigo-envoy_.*\.deb$' | tail -n 1)"
[ -f "$server_deb" ] || fail "no vigo-server .deb in: $debs"
[ -f "$envoy_deb" ] || fail "no vigo-envoy .deb in: $debs"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# has_entry DEB MODE PATH: `dpkg-deb -c` lists PATH with MODE (e.g. -rwxr-xr-x).
has_entry() {
    dpkg-deb -c "$1" | awk -v mode="$2" -v path="./$3" \
        '$1 == mode && $6 == path { found = 1 } END { exit !found }' \
        || fail "$(basename "$1"): no $2 $3 in:
$(dpkg-deb -c "$1")"
}

# check_control DEB NAME CONFFILE: package name, conffile and maintainer scripts.
# unit_has DEB UNIT LINE WHAT: the systemd unit UNIT of DEB has the line LINE,
# else fails saying "UNIT WHAT".
unit_has() {
    dpkg-deb --fsys-tarfile "$1" | tar -xO "./usr/lib/systemd/system/$2" | grep -qx "$3" \
        || fail "$2 $4"
}

check_control() {
    deb="$1"; name="$2"; conffile="$3"
    [ "$(dpkg-deb -f "$deb" Package)" = "$name" ] || fail "$deb: Package is not $name"
    dpkg-deb -I "$deb" >"$work/info"
    rm -rf "$work/control" && dpkg-deb -e "$deb" "$work/control"
    grep -qx "$conffile" "$work/control/conffiles" \
        || fail "$name: $conffile is not a conffile: $(cat "$work/control/conffiles")"
    for script in postinst prerm postrm; do
        [ -x "$work/control/$script" ] || fail "$name: no executable $script"
        grep -q "$script" "$work/info" || fail "$name: dpkg-deb -I does not list $script"
        sh -n "$work/control/$script" || fail "$name: $script is not valid sh"
    done
}

log "checking $(basename "$server_deb")"
for bin in vigosrv vigocli; do
    has_entry "$server_deb" -rwxr-xr-x "usr/bin/$bin"
    has_entry "$server_deb" -rw-r--r-- "usr/share/man/man1/$bin.1.gz"
done
has_entry "$server_deb" -rw-r--r-- usr/share/man/man1/vigocli-secrets-set.1.gz
has_entry "$server_deb" -rw-r--r-- usr/lib/systemd/system/vigosrv.service
has_entry "$server_deb" -rw-r--r-- etc/vigo/vigosrv.yaml
has_entry "$server_deb" -rw-r--r-- usr/share/bash-completion/completions/vigocli
has_entry "$server_deb" -rw-r--r-- usr/share/zsh/vendor-completions/_vigocli
has_entry "$server_deb" -rw-r--r-- usr/share/fish/vendor_completions.d/vigocli.fish
if dpkg-deb -c "$server_deb" | grep -q vigoenvoy; then
    fail "vigo-server holds vigoenvoy"
fi
check_control "$server_deb" vigo-server /etc/vigo/vigosrv.yaml
grep -q 'adduser --system' "$work/control/postinst" || fail "vigo-server: postinst creates no vigo user"
grep -q 'install -d -o vigo -g vigo -m 0700 /var/lib/vigo$' "$work/control/postinst" \
    || fail "vigo-server: postinst does not make /var/lib/vigo 0700 vigo's"
unit_has "$server_deb" vigosrv.service 'ExecStart=/usr/bin/vigosrv --config /etc/vigo/vigosrv.yaml' \
    "does not start /usr/bin/vigosrv"
unit_has "$server_deb" vigosrv.service 'ReadWritePaths=/var/lib/vigo' "cannot write /var/lib/vigo"
unit_has "$server_deb" vigosrv.service 'User=vigo' "does not run as vigo"

log "checking $(basename "$envoy_deb")"
has_entry "$envoy_deb" -rwxr-xr-x usr/bin/vigoenvoy
has_entry "$envoy_deb" -rw-r--r-- usr/share/man/man1/vigoenvoy.1.gz
has_entry "$envoy_deb" -rw-r--r-- usr/lib/systemd/system/vigoenvoy.service
has_entry "$envoy_deb" -rw-r--r-- etc/vigo/envoy.yaml
if dpkg-deb -c "$envoy_deb" | grep -q 'vigosrv\|vigocli'; then
    fail "vigo-envoy holds a server binary"
fi
check_control "$envoy_deb" vigo-envoy /etc/vigo/envoy.yaml
grep -q 'install -d -o root -g root -m 0700 /var/lib/vigo-envoy' "$work/control/postinst" \
    || fail "vigo-envoy: postinst does not make /var/lib/vigo-envoy 0700"
unit_has "$envoy_deb" vigoenvoy.service 'ExecStart=/usr/bin/vigoenvoy --config /etc/vigo/envoy.yaml run' \
    "does not start /usr/bin/vigoenvoy"
unit_has "$envoy_deb" vigoenvoy.service 'StateDirectory=vigo-envoy' "has no /var/lib/vigo-envoy"

# The installed binaries work and name their commit.
dpkg-deb -x "$server_deb" "$work/root"
"$work/root/usr/bin/vigocli" --version | grep -q '^vigocli .* (commit ' || fail "vigocli --version"

log "lintian"
status=0
lintian --fail-on error --tag-display-limit 0 "$server_deb" "$envoy_deb" || status=$?
[ "$status" -eq 0 ] || fail "lintian found errors (above)"
log "ok: $(basename "$server_deb") $(basename "$envoy_deb")"
