#!/usr/bin/env bash
# Long fuzzing, outside CI: runs each fuzz target (or those named) for a given time, starting
# from the corpus kept in fuzz/corpus/<target> plus the generated seeds, then minimises what it
# found back into fuzz/corpus/<target> (commit that: CI seeds its short runs from it).
# Crashes are kept under build/fuzz-findings/<target>/. Prints one line per target:
# executions, coverage (edges), corpus size, and findings.
#
#   scripts/fuzz-campaign.sh SECONDS [TARGET...]     e.g. scripts/fuzz-campaign.sh 1800 relay
#   NEEP_FUZZ_JOBS=2 runs that many workers per target (default 1)
#   NEEP_FUZZ_VIRGL_NOOP=1 fuzzes virgl on Mesa's no-op gallium wrapper (GALLIUM_NOOP=1: the real
#       llvmpipe screen answers for caps and formats, contexts and resources do not draw). Under
#       ASan 90% of fuzz_virgl's time is llvmpipe making contexts; this runs 6x the inputs. The
#       minimising and the edge count still run every kept input on llvmpipe itself.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:?usage: fuzz-campaign.sh SECONDS [TARGET...]}
shift
jobs=${NEEP_FUZZ_JOBS:-1}
build=build/sanitize

if [ ! -d "$build/meson-private" ]; then
    CC=clang meson setup "$build" --buildtype=debug -Db_sanitize=address,undefined \
        -Db_lundef=false -Dfuzzing=true -Dc_args=-fno-sanitize-recover=all \
        -Dc_link_args=-fno-sanitize-recover=all >/dev/null
fi
ninja -C "$build" >/dev/null

targets=("$@")
if [ ${#targets[@]} = 0 ]; then
    for binary in "$build"/fuzz/fuzz_*; do
        [ -x "$binary" ] && [ -f "$binary" ] && targets+=("$(basename "$binary" | sed 's/^fuzz_//')")
    done
fi

# Leaks inside Mesa (under fuzz_virgl) are Mesa's; tests/lsan.supp names them.
export LSAN_OPTIONS="suppressions=$(pwd)/tests/lsan.supp:print_suppressions=0"
# fuzz_gfxstream needs gfxstream's backend (scripts/build-gfxstream.sh builds and caches it).
if [ -z "${NEEP_GFXSTREAM_LIBRARY:-}" ] && { [ ${#targets[@]} = 0 ] || [[ " ${targets[*]} " == *" gfxstream "* ]]; }; then
    NEEP_GFXSTREAM_LIBRARY=$(scripts/build-gfxstream.sh 2>/dev/null) || true
    export NEEP_GFXSTREAM_LIBRARY
fi
export NEEP_GFXSTREAM_SERVER="${NEEP_GFXSTREAM_SERVER:-$(pwd)/$build/src/neep-gfxstream-server}"
seeds=$(mktemp -d)
trap 'rm -rf "$seeds"' EXIT
python3 scripts/make-fuzz-seeds.py "$seeds"

printf '%-18s %14s %8s %8s %s\n' target executions edges corpus findings
for name in "${targets[@]}"; do
    binary="$build/fuzz/fuzz_$name"
    corpus="fuzz/corpus/$name"
    findings="build/fuzz-findings/$name"
    work=$(mktemp -d)
    mkdir -p "$corpus" "$findings" "$seeds/$name"
    log="build/fuzz-campaign-$name.log"
    # As in run-tests.sh: a connection's input is a sequence of messages of up to 4096 bytes.
    max_len=4096
    [ "$name" = neep_wl_connection ] && max_len=16384
    fuzz_env=()
    [ "$name" = virgl ] && [ "${NEEP_FUZZ_VIRGL_NOOP:-0}" = 1 ] && fuzz_env=(GALLIUM_NOOP=1)
    # The sanitised gfxstream server cannot start ASan's symbolizer (its sandbox refuses the
    # exec) and tries again on every backend crash a guest causes: a third of the campaign's
    # time. Reports stay unsymbolised; the crashing input reproduces them.
    [ "$name" = gfxstream ] && fuzz_env=("ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}symbolize=0")
    # Every gfxstream_server input starts two threads, and ASan keeps about 0.4 KB of its own
    # bookkeeping per input (without ASan the same inputs stay at 29 MB): 2 GiB after ~5M
    # inputs. Its bound is higher; -malloc_limit_mb still stops any one allocation past 2 GiB.
    rss_limit_mb=2048
    [ "$name" = gfxstream_server ] && rss_limit_mb=8192
    if [ "$jobs" -gt 1 ]; then
        # -fork keeps going after a crash and counts executions across workers.
        env "${fuzz_env[@]}" "$binary" -fork="$jobs" -ignore_crashes=1 \
            -max_total_time="$seconds" -max_len="$max_len" -rss_limit_mb="$rss_limit_mb" \
            -malloc_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$findings/" \
            "$work" "$corpus" "$seeds/$name" >"$log" 2>&1 || true
        executions=$(grep -oE '^#[0-9]+:' "$log" | tail -n 1 | tr -d '#:' || true)
    else
        # One process is the fastest; a crash ends the run (its input is in $findings).
        env "${fuzz_env[@]}" "$binary" -max_total_time="$seconds" -max_len="$max_len" \
            -rss_limit_mb="$rss_limit_mb" -malloc_limit_mb=2048 \
            -print_final_stats=1 -artifact_prefix="$findings/" \
            "$work" "$corpus" "$seeds/$name" >"$log" 2>&1 || true
        executions=$(grep -oE 'number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || true)
    fi
    # Minimise everything seen into a fresh corpus.
    merged=$(mktemp -d)
    "$binary" -merge=1 -max_len="$max_len" -rss_limit_mb=2048 "$merged" "$corpus" "$work" \
        "$seeds/$name" >>"$log" 2>&1 || true
    if [ -n "$(ls -A "$merged")" ]; then
        rm -rf "$corpus"
        mv "$merged" "$corpus"
    else
        rm -rf "$merged"
    fi
    rm -rf "$work"
    # Edges reached by the kept corpus, counted as a plain run counts them.
    edges=$("$binary" -runs=0 -max_len="$max_len" "$corpus" 2>&1 | grep -oE 'INITED cov: [0-9]+' |
        grep -oE '[0-9]+$' || true)
    found=$(find "$findings" -type f | wc -l)
    printf '%-18s %14s %8s %8s %s\n' "$name" "${executions:-?}" "${edges:-?}" \
        "$(ls "$corpus" | wc -l)" "$found (in $findings)"
done
