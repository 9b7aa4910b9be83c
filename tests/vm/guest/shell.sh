#!/bin/sh
# A command loop on the serial console for tests that drive the guest step by step: each
# line the host sends runs in sh, then "NEEP: shell-done STATUS" follows. Wayland clients
# started here find neep-wl's socket in XDG_RUNTIME_DIR.
export XDG_RUNTIME_DIR=/run/user
export HOME=/tmp
mkdir -p "$XDG_RUNTIME_DIR" /dev/shm
chmod 700 "$XDG_RUNTIME_DIR"
mount -t tmpfs tmpfs /dev/shm # shm_open, as some clients make their pools
mkdir -p /dev/pts
mount -t devpts devpts /dev/pts # terminals
stty -echo 2>/dev/null
echo "NEEP: shell-ready"
while read -r line; do
    sh -c "$line"
    # On a line of its own even when the output did not end with one.
    printf '\nNEEP: shell-done %s\n' $?
done
