#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# N-split training throughput: samples/s of `nsplit train --peers P --schedule S` for P = 1, 2,
# 4 and every schedule, beside the single-peer reference on the same cores (--peers 1 with one
# compute thread per core) measured in the same run, for two models:
#   demo: the demo MLP, mlp:784-512-256-10, batch 64 (micro-batch: nsplit 1, else 8)
#   wide: mlp:784-1024-1024-1024-1024-10, batch 256 (micro-batch 64), whose four big layers
#         balance over four stages
# Each peer computes on one thread; with more peers than cores they share the cores. A run
# trains one epoch of BENCH_SAMPLES samples without evaluation; its figure is the trainer's
# own samples/s (training proper, from the last peer ready to the last one done). Each figure
# is the best of BENCH_REPEAT runs, the runs of one case spread over the sweep (other load on
# the machine only ever slows a run down).
# Prints a table, then one JSON object per line and case: model, schedule, peers, micro_batch,
# samples_per_s, vs_reference. With BENCH_TRACE=FILE it also writes a Chrome trace of the wide
# model's 1f1b 4-peer run and, with matplotlib, a picture of one batch of it (FILE.png).
#
# Environment: NSPLIT_BUILD_DIR (build), BENCH_SAMPLES (30720), BENCH_REPEAT (3), BENCH_POLL
# (auto), BENCH_MODELS ("demo wide"), NSPLIT_DATA (Fashion-MNIST folder), BENCH_NO_BUILD.
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$(pwd)
BUILD_DIR=${NSPLIT_BUILD_DIR:-build}
SAMPLES=${BENCH_SAMPLES:-30720}
REPEAT=${BENCH_REPEAT:-3}
POLL=${BENCH_POLL:-auto}
MODELS=${BENCH_MODELS:-demo wide}
DATA=${NSPLIT_DATA:-/usr/share/datasets/fashion-mnist}
PY=/usr/bin/python3

# shellcheck source=scripts/deps.sh
source "$ROOT/scripts/deps.sh"
nsl_install_deps
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nsl-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# shellcheck source=scripts/bench/build.sh
source "$ROOT/scripts/bench/build.sh"
nsl_bench_build "$BUILD_DIR" nsplit.sh
NSPLIT="$BUILD_DIR/nsplit"
CORES=$(nproc)

declare -A MODEL=([demo]=mlp:784-512-256-10 [wide]=mlp:784-1024-1024-1024-1024-10)
declare -A BATCH=([demo]=64 [wide]=256)
declare -A MICRO=([demo]=8 [wide]=64)

# case list: model|peers|schedule|micro
cases=()
for m in $MODELS; do
	cases+=("$m|1|reference|0")
	for p in 2 4; do
		for s in nsplit gpipe 1f1b; do
			micro=${MICRO[$m]}
			[[ $s == nsplit ]] && micro=1
			# The paper's schedule moves one sample at a time: 1/64 of a batch per message.
			[[ $s == nsplit && $m == wide ]] && micro=16
			cases+=("$m|$p|$s|$micro")
		done
	done
done

run_case() { # model peers schedule micro -> samples/s
	local m=$1 p=$2 s=$3 micro=$4 args
	args=(--model "${MODEL[$m]}" --data "$DATA" --batch "${BATCH[$m]}" --epochs 1 --limit-samples "$SAMPLES"
		--no-eval --no-progress --seed 1)
	if [[ $s == reference ]]; then
		args+=(--peers 1 --threads "$CORES")
	else
		args+=(--peers "$p" --schedule "$s" --micro-batch "$micro" --threads 1 --poll "$POLL")
	fi
	"$NSPLIT" train "${args[@]}" "${@:5}" 2>"$tmp/err" | awk '/^training:/ {print $2}' || {
		cat "$tmp/err" >&2
		echo 0
	}
}

declare -A best
for ((r = 0; r < REPEAT; r++)); do
	for c in "${cases[@]}"; do
		IFS='|' read -r m p s micro <<<"$c"
		v=$(run_case "$m" "$p" "$s" "$micro")
		[[ -n "$v" ]] || v=0
		if [[ -z "${best[$c]:-}" ]] || awk "BEGIN {exit !($v > ${best[$c]})}"; then
			best[$c]=$v
		fi
		printf '.' >&2
	done
done
echo >&2

if [[ -n "${BENCH_TRACE:-}" && " $MODELS " == *" wide "* ]]; then
	run_case wide 4 1f1b "${MICRO[wide]}" --trace "$BENCH_TRACE" >/dev/null
	"$PY" "$ROOT/scripts/plot_trace.py" "$BENCH_TRACE" "$BENCH_TRACE.png" --round 2 --batch 5 ||
		echo "nsplit.sh: no picture of the trace (matplotlib?)" >&2
fi

cpu=$(awk -F: '/^model name/ {sub(/^ /, "", $2); print $2; exit}' /proc/cpuinfo)
echo "N-split training, samples/s, best of $REPEAT; $CORES cores ($cpu); one epoch of $SAMPLES samples; poll $POLL"
printf '%-6s %-10s %5s %6s %12s %12s\n' model schedule peers micro samples/s vs_reference
for c in "${cases[@]}"; do
	IFS='|' read -r m p s micro <<<"$c"
	ref=${best["$m|1|reference|0"]}
	ratio=$(awk -v v="${best[$c]}" -v ref="$ref" 'BEGIN {printf "%.2f", (ref > 0 ? v / ref : 0)}')
	printf '%-6s %-10s %5s %6s %12.0f %12s\n' "$m" "$s" "$p" "$([[ $s == reference ]] && echo - || echo "$micro")" \
		"${best[$c]}" "$ratio"
done
for c in "${cases[@]}"; do
	IFS='|' read -r m p s micro <<<"$c"
	ref=${best["$m|1|reference|0"]}
	awk -v m="${MODEL[$m]}" -v s="$s" -v p="$p" -v mb="$micro" -v b="${BATCH[$m]}" -v v="${best[$c]}" -v ref="$ref" \
		'BEGIN {printf "{\"model\":\"%s\",\"batch\":%d,\"schedule\":\"%s\",\"peers\":%d,\"micro_batch\":%d,\"samples_per_s\":%.1f,\"vs_reference\":%.3f}\n", m, b, s, p, mb, v, (ref > 0 ? v / ref : 0)}'
done
