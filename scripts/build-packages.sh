#!/usr/bin/env bash
# Builds neep's Debian binary packages from the files git tracks (what a clean clone has)
# and checks them with lintian, which must report no errors.
#
#   scripts/build-packages.sh OUTPUT_DIR     the .deb files, .changes and lintian.log land there
set -euo pipefail
cd "$(dirname "$0")/.."
output=$(realpath -m "${1:?usage: build-packages.sh OUTPUT_DIR}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# dpkg-buildpackage writes its results beside the source tree: build in a scratch copy.
mkdir -p "$work/neep" "$output"
git ls-files -z | tar --null -T - -cf - | tar -xf - -C "$work/neep"
(cd "$work/neep" && dpkg-buildpackage -b -uc -us >"$work/build.log" 2>&1) || {
    tail -n 60 "$work/build.log"
    echo "build-packages: dpkg-buildpackage failed"
    exit 1
}
rm -f "$output"/*.deb "$output"/*.changes "$output"/*.buildinfo
mv "$work"/*.deb "$work"/*.changes "$work"/*.buildinfo "$output/"
ls "$output"/*.deb | xargs -n1 basename

# Errors fail the build; warnings and notes are printed for the reader.
status=0
lintian --fail-on error --display-info "$output"/*.changes >"$output/lintian.log" 2>&1 || status=$?
grep -E '^[EWI]:' "$output/lintian.log" | sort | uniq -c | sort -rn || true
if [ "$status" != 0 ]; then
    echo "build-packages: lintian reports errors (exit status $status), see above"
    exit 1
fi
echo "build-packages: lintian reports no errors"
