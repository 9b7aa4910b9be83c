#!/usr/bin/env bash
# Sets up and runs every test of neep: the suite with gcc, the Debian packages (lintian) and
# neep-gpu's package under a real libvirtd, the suite again with clang under ASan+UBSan, each
# fuzz target for a bounded time, and the formatting check. Ends with one
# line "N passed, N failed" over all of them. Exit status 0 only if nothing failed.
#
#   NEEP_FUZZ_SECONDS   seconds per fuzz target (default 30)
#   NEEP_SKIP_INSTALL=1 skip installing Debian packages (they are already there)
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
fuzz_seconds=${NEEP_FUZZ_SECONDS:-30}

if [ "${NEEP_SKIP_INSTALL:-0}" != 1 ]; then
    ./scripts/install-deps.sh
fi

results=$(mktemp)
trap 'rm -f "$results"' EXIT
# One line per check: "<passed> <failed> <label>".
record() { echo "$1 $2 $3" >>"$results"; }

# Configures (or reconfigures) a build directory and runs its meson tests.
run_suite() {
    local label=$1 dir=$2
    shift 2
    if [ -d "$dir/meson-private" ]; then
        meson setup --reconfigure "$dir" "$@" >/dev/null
    else
        meson setup "$dir" "$@" >/dev/null
    fi
    ninja -C "$dir" >/dev/null
    local status=0
    meson test -C "$dir" --print-errorlogs --num-processes 2 || status=$?
    python3 scripts/summarize-meson-tests.py "$label" "$dir/meson-logs/testlog.json" >>"$results"
    return 0
}

echo "== gcc build"
CC=gcc run_suite gcc build/gcc --buildtype=debugoptimized

echo "== Debian packages (lintian), and neep-gpu's package under libvirt"
if scripts/build-packages.sh build/debs; then
    record 1 0 packages
    # A real libvirtd with QEMU 10 boots the test guest on the installed package.
    as_root=()
    [ "$(id -u)" = 0 ] || as_root=(sudo -E)
    tests/vm/build-test-initramfs.sh build/gcc build/gcc/vm-guest/initrd.cpio
    libvirt_log=build/libvirt-test.log
    "${as_root[@]}" python3 tests/packaging/libvirt_test.py --debs build/debs \
        --initrd build/gcc/vm-guest/initrd.cpio 2>&1 | tee "$libvirt_log" || true
    counts=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$libvirt_log" | tail -n 1)
    read -r libvirt_passed libvirt_failed <<<"${counts:-0 1}"
    record "$libvirt_passed" "$libvirt_failed" libvirt
else
    record 0 1 packages
fi

echo "== clang build with ASan+UBSan (and the fuzz targets)"
CC=clang run_suite asan-ubsan build/sanitize --buildtype=debug \
    -Db_sanitize=address,undefined -Db_lundef=false -Dfuzzing=true \
    -Dc_args=-fno-sanitize-recover=all -Dc_link_args=-fno-sanitize-recover=all

echo "== fuzzing, ${fuzz_seconds}s per target"
# Leaks inside Mesa (under fuzz_virgl) are Mesa's; tests/lsan.supp names them.
export LSAN_OPTIONS="suppressions=$top/tests/lsan.supp:print_suppressions=0"
corpus_root=$(mktemp -d)
python3 scripts/make-fuzz-seeds.py "$corpus_root"
for target in build/sanitize/fuzz/fuzz_*; do
    [ -f "$target" ] && [ -x "$target" ] || continue
    name=$(basename "$target" | sed 's/^fuzz_//')
    if [ "$name" = gfxstream ]; then
        # On gfxstream's real backend (in neep's server process), where its snapshot is here.
        if ! NEEP_GFXSTREAM_LIBRARY=$(scripts/build-gfxstream.sh); then
            echo "fuzz gfxstream: skipped (gfxstream's source snapshot is not on this machine)"
            continue
        fi
        export NEEP_GFXSTREAM_LIBRARY
        export NEEP_GFXSTREAM_SERVER="$top/build/sanitize/src/neep-gfxstream-server"
    fi
    mkdir -p "$corpus_root/$name"
    # The corpus kept from long campaigns (scripts/fuzz-campaign.sh) seeds the short run.
    if [ -d "fuzz/corpus/$name" ]; then
        cp -r "fuzz/corpus/$name/." "$corpus_root/$name/"
    fi
    log="build/sanitize/fuzz-$name.log"
    # A connection's input is a sequence of events, each message up to 4096 bytes.
    max_len=4096
    [ "$name" = neep_wl_connection ] && max_len=16384
    if "$target" -max_total_time="$fuzz_seconds" -max_len="$max_len" -rss_limit_mb=2048 \
        -print_final_stats=1 "$corpus_root/$name" >"$log" 2>&1; then
        runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
        echo "fuzz $name: ok, $runs inputs"
        record 1 0 "fuzz-$name"
    else
        echo "fuzz $name: FAILED (log: $log)"
        tail -n 40 "$log"
        record 0 1 "fuzz-$name"
    fi
done
rm -rf "$corpus_root"

echo "== clang-format"
unformatted=$(git -C "$top" ls-files '*.c' '*.h' | xargs clang-format --dry-run 2>&1 | grep -c 'warning:' || true)
if [ "$unformatted" = 0 ]; then
    echo "clang-format: clean"
    record 1 0 clang-format
else
    git -C "$top" ls-files "*.c" "*.h" | xargs clang-format --dry-run 2>&1 | head -n 20 || true
    record 0 1 clang-format
fi

echo "== summary"
awk '{ printf "  %-14s %d passed, %d failed\n", $3, $1, $2; p += $1; f += $2 }
     END { printf "%d passed, %d failed\n", p, f; exit (f > 0 || p == 0) }' "$results"
