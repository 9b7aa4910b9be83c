#!/usr/bin/env bash
# Builds virglrenderer 1.2.0 (a test dependency: Debian 12's 0.10.4 speaks a venus wire format
# that current guest venus drivers refuse) from the source archive in ../shared/deps, and
# caches it outside the work tree. It keeps Debian's SONAME, so neep built against Debian's
# headers runs on it with LD_LIBRARY_PATH set to the printed directory.
#
#   build-virglrenderer.sh     prints the directory holding libvirglrenderer.so.1
#
# The cache key is the archive's hash and this script's; a changed key rebuilds (about half a
# minute on 2 cores). NEEP_DEPS_DIR overrides where the archive is looked for.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# The shared deps sit beside the work tree (../shared/deps); /work/shared/deps is where this
# workplace keeps them for clones made elsewhere.
archive=""
for deps in ${NEEP_DEPS_DIR:+"$NEEP_DEPS_DIR"} "$here/../../shared/deps" /work/shared/deps; do
    if [ -f "$deps/virglrenderer/virglrenderer-1.2.0.tar.xz" ]; then
        archive="$deps/virglrenderer/virglrenderer-1.2.0.tar.xz"
        break
    fi
done
if [ -z "$archive" ]; then
    echo "virglrenderer's source is missing: expected ../shared/deps/virglrenderer/" \
        "virglrenderer-1.2.0.tar.xz beside the work tree (or set NEEP_DEPS_DIR)" >&2
    exit 1
fi
# Contents only: the same sources and script give the same key wherever they are.
key=$( (sha256sum <"$archive"; sha256sum <"$here/build-virglrenderer.sh") | sha256sum | cut -c1-12)
cache_root=${NEEP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/neep}
prefix="$cache_root/virglrenderer-1.2.0-$key"
libdir="$prefix/lib/x86_64-linux-gnu"
# The render server's path is compiled into the library, so the build installs straight into
# the cache; the stamp file says the install finished.
if [ -f "$prefix/.complete" ]; then
    echo "$libdir"
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$prefix"
{
    tar xf "$archive" -C "$work"
    meson setup "$work/build" "$work/virglrenderer-1.2.0" -Dvenus=true -Drender-server=true \
        --prefix="$prefix" --buildtype=release
    ninja -C "$work/build"
    ninja -C "$work/build" install
} >"$work/build.log" 2>&1 || {
    echo "building virglrenderer failed; the end of the log:" >&2
    tail -n 40 "$work/build.log" >&2
    exit 1
}
touch "$prefix/.complete"
echo "$libdir"
