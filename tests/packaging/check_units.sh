#!/usr/bin/env bash
# neep-wl's systemd user units, checked by systemd itself: `systemd-analyze --user verify`
# loads them as the user manager would (ExecStart pointed at the built neep-wl, since the
# installed path does not exist yet) and must find nothing to say.
#   check_units.sh NEEP_WL SOCKET_UNIT SERVICE_UNIT ENVIRONMENT_D_FILE
set -euo pipefail
neep_wl=$1 socket_unit=$2 service_unit=$3 environment_file=$4
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/units" "$work/run"
cp "$socket_unit" "$work/units/neep-wl.socket"
sed "s|^ExecStart=[^ ]*neep-wl|ExecStart=$neep_wl|" "$service_unit" >"$work/units/neep-wl.service"
grep -q "^ExecStart=$neep_wl\$" "$work/units/neep-wl.service"
# The user manager's runtime directory; there is no session bus or user manager here.
status=0
XDG_RUNTIME_DIR="$work/run" systemd-analyze --user verify --man=no \
    "$work/units/neep-wl.socket" "$work/units/neep-wl.service" >"$work/said" 2>&1 || status=$?
if [ "$status" != 0 ] || [ -s "$work/said" ]; then
    echo "systemd-analyze verify (exit status $status) said:"
    cat "$work/said"
    exit 1
fi
echo "ok: systemd-analyze --user verify has nothing to say about neep-wl.socket and .service"
# environment.d: KEY=VALUE lines only (environment.d(5)), and it names the socket's display.
if grep -v -E '^(#.*|[A-Z_][A-Z0-9_]*=[^ ]*|)$' "$environment_file"; then
    echo "$environment_file has lines environment.d(5) does not take"
    exit 1
fi
display=$(sed -n 's/^WAYLAND_DISPLAY=//p' "$environment_file")
grep -q "^ListenStream=%t/$display\$" "$socket_unit" || {
    echo "WAYLAND_DISPLAY=$display is not the socket neep-wl.socket listens on"
    exit 1
}
echo "ok: $environment_file sets WAYLAND_DISPLAY=$display, the socket unit's"
