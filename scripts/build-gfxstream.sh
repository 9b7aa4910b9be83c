#!/usr/bin/env bash
# Builds gfxstream's host backend (a test dependency: Debian does not package it) from the
# source snapshot in ../shared/deps, and caches it outside the work tree. neep loads the
# library at run time (NEEP_GFXSTREAM_LIBRARY names it); nothing links against it.
#
#   build-gfxstream.sh     prints the path of libgfxstream_backend.so.0
#
# The cache key is the archive's hash and this script's; a changed key rebuilds (about 3 to 5
# minutes on 2 cores). NEEP_DEPS_DIR overrides where the archive is looked for. Exit status 2
# (and a line saying why) when the snapshot is not there: callers report gfxstream as skipped.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
name=gfxstream-host-9fcff254b
archive=""
for deps in ${NEEP_DEPS_DIR:+"$NEEP_DEPS_DIR"} "$here/../../shared/deps" /work/shared/deps; do
    if [ -f "$deps/gfxstream/$name.tar.xz" ]; then
        archive="$deps/gfxstream/$name.tar.xz"
        break
    fi
done
if [ -z "$archive" ]; then
    echo "gfxstream's source is missing: expected ../shared/deps/gfxstream/$name.tar.xz beside" \
        "the work tree (or set NEEP_DEPS_DIR)" >&2
    exit 2
fi
# Contents only: the same sources and script give the same key wherever they are.
key=$( (sha256sum <"$archive"; sha256sum <"$here/build-gfxstream.sh") | sha256sum | cut -c1-12)
cache_root=${NEEP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/neep}
prefix="$cache_root/$name-$key"
library="$prefix/libgfxstream_backend.so.0"
if [ -f "$prefix/.complete" ]; then
    echo "$library"
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$prefix"
mkdir -p "$prefix"
{
    tar xf "$archive" -C "$work"
    meson setup "$work/build" "$work/src" --buildtype=release
    ninja -C "$work/build" -j2
} >"$work/build.log" 2>&1 || {
    echo "building gfxstream failed; the end of the log:" >&2
    tail -n 40 "$work/build.log" >&2
    exit 1
}
cp -L "$work/build/host/libgfxstream_backend.so.0" "$library"
touch "$prefix/.complete"
echo "$library"
