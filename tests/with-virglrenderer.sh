#!/usr/bin/env bash
# Runs a test program on virglrenderer 1.2.0 (scripts/build-virglrenderer.sh builds and
# caches it), with NEEP_TEST_VENUS=1 so the program expects venus to work.
#   with-virglrenderer.sh PROGRAM [ARGS...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
libdir=$("$here/../scripts/build-virglrenderer.sh")
export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export NEEP_TEST_VENUS=1
exec "$@"
