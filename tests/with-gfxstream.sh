#!/usr/bin/env bash
# Runs a test program on gfxstream's host backend, built from ../shared/deps by
# scripts/build-gfxstream.sh (cached) and named in NEEP_GFXSTREAM_LIBRARY. Without the source
# snapshot the test is reported skipped (meson's exit status 77), with the reason.
#   with-gfxstream.sh PROGRAM [ARGS...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
status=0
library=$("$here/../scripts/build-gfxstream.sh") || status=$?
if [ "$status" = 2 ]; then
    echo "SKIPPED: gfxstream's source snapshot (../shared/deps/gfxstream) is not on this machine"
    exit 77
elif [ "$status" != 0 ]; then
    exit "$status"
fi
export NEEP_GFXSTREAM_LIBRARY="$library"
exec "$@"
