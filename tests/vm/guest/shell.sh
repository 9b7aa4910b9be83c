#!/bin/sh
# A command loop on the serial console for tests that drive the guest step by step: each
# line the host sends runs in sh, then "NEEP: shell-done STATUS" follows. Wayland clients
# started here find neep-wl's socket in XDG_RUNTIME_DIR.
export XDG_RUNTIME_DIR=/run/user
export HOME=/tmp
mkdir -p "$XDG_RUNTIME_DIR"
chmod 700 "$XDG_RUNTIME_DIR"
stty -echo 2>/dev/null
echo "NEEP: shell-ready"
while read -r line; do
    sh -c "$line"
    echo "NEEP: shell-done $?"
done
