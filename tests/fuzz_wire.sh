#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# usage: fuzz_wire.sh [SECONDS]   (default 30)
# Fuzzes the frame parser (dataplane/wire.c, through tests/fuzz_wire.c) with libFuzzer under
# ASan and UBSan for SECONDS, from an empty corpus and a fixed seed. Exits with the fuzzer's
# status: non-zero when it found a crash, whose input libFuzzer saves as ./fuzz_wire-crash-*.
# Needs clang and libFuzzer (Debian packages clang, libclang-rt-14-dev; scripts/deps.sh installs
# them) and an x86-64 CPU with SSE4.2: skips (77) without them, fails instead when CI=true.
set -euo pipefail

secs=${1:-30}
if [[ ! "$secs" =~ ^[1-9][0-9]*$ ]]; then
	echo "usage: fuzz_wire.sh [SECONDS]   (SECONDS a positive integer, default 30)" >&2
	exit 2
fi

skip() {
	echo "fuzz_wire.sh: SKIP: $*" >&2
	if [[ "${CI:-}" == true ]]; then
		echo "fuzz_wire.sh: CI=true, so a skip is a failure" >&2
		exit 1
	fi
	exit 77
}

root=$(cd "$(dirname "$0")/.." && pwd)

cc=""
for c in clang clang-14; do
	if command -v "$c" >/dev/null; then
		cc=$c
		break
	fi
done
[[ -n "$cc" ]] || skip "no clang (Debian package clang; scripts/deps.sh installs it)"
# crc32c.c computes CRC32C with the SSE4.2 instruction: elsewhere the fuzzer would die of SIGILL.
[[ "$(uname -m)" == x86_64 ]] || skip "crc32c.c needs x86-64 with SSE4.2, this is $(uname -m)"
grep -qw sse4_2 /proc/cpuinfo 2>/dev/null || skip "this CPU has no SSE4.2 (crc32c.c uses it)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/nsl-fuzz-wire.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

flags=(-g -O1 "-fsanitize=fuzzer,address,undefined" -fno-sanitize-recover=undefined -msse4.2 -D_GNU_SOURCE
	-std=c11 -I "$root/include")

# A do-nothing fuzz target tells a missing libFuzzer runtime apart from an error in our own code.
cat >"$tmp/probe.c" <<'END'
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	(void)d;
	(void)n;
	return 0;
}
END
if ! "$cc" "${flags[@]}" -o "$tmp/probe" "$tmp/probe.c" 2>"$tmp/probe.err"; then
	skip "$cc cannot link -fsanitize=fuzzer,address,undefined (Debian package libclang-rt-14-dev;" \
		"scripts/deps.sh installs it): $(head -n 3 "$tmp/probe.err")"
fi

# The project builds with warnings as errors (meson.build), so the fuzz build does too.
"$cc" "${flags[@]}" -Wall -Wextra -Werror -o "$tmp/fuzz_wire" \
	"$root/dataplane/wire.c" "$root/dataplane/crc32c.c" "$root/tests/fuzz_wire.c"

mkdir "$tmp/corpus"
start=$(date +%s)
rc=0
# Crash inputs go to the working directory, not $tmp, so that they outlive this script.
# libFuzzer reports a crash with status 77 unless told otherwise, which meson would count as a skip.
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1} \
	"$tmp/fuzz_wire" -max_total_time="$secs" -seed=1 -rss_limit_mb=1024 -print_final_stats=1 \
	-error_exitcode=1 -artifact_prefix="$PWD/fuzz_wire-" "$tmp/corpus" >"$tmp/log" 2>&1 || rc=$?
elapsed=$(($(date +%s) - start))

execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$tmp/log" | tail -n 1)
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$tmp/log" | tail -n 1)
if ((rc != 0)); then
	cat "$tmp/log" >&2
	saved=$(sed -n 's/.*Test unit written to //p' "$tmp/log" | tail -n 1)
	echo "fuzz_wire.sh: FAIL (status $rc) after ${execs:-?} executions in ${elapsed} s;" \
		"input: ${saved:-not saved}" >&2
	# Whatever libFuzzer or a sanitizer chose, never let a failure read as meson's "skipped".
	exit $((rc == 77 ? 1 : rc))
fi
ninputs=$(find "$tmp/corpus" -type f | wc -l)
echo "fuzz_wire.sh: PASS: ${execs:-?} executions in ${elapsed} s (${rate:-?} exec/s), $ninputs corpus inputs"
