#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# N-split training throughput: samples/s of `nsplit train --peers P --schedule S` for P = 1, 2,
# 4 and every schedule, beside the single-peer reference on the same cores (--peers 1 with one
# compute thread per core) measured in the same run, for two models:
#   demo: the demo MLP, mlp:784-512-256-10, batch 64 (micro-batch: nsplit 1, else 8)
#   wide: mlp:784-1024-1024-1024-1024-10, batch 256 (micro-batch 64), whose four big layers
#         balance over four stages
# and Fast N-split at staleness 0 and 1 (schedules fast-s0, fast-s1: default pools and splits,
# every tensor shipped, micro-batch 16 for demo and 128 for wide; parameters pushed per batch).
# Each peer computes on one thread; with more peers than cores they share the cores. A run
# trains one epoch of BENCH_SAMPLES samples without evaluation; its figure is the trainer's
# own samples/s (training proper, from the last peer ready to the last one done). Each figure
# is the best of BENCH_REPEAT runs, the runs of one case spread over the sweep (other load on
# the machine only ever slows a run down).
# Prints a table, then one JSON object per line and case: model, schedule, peers, micro_batch,
# samples_per_s, vs_reference. Then the planner against the default split: the CNN over 4 peers
# under 1f1b, cut where `nsplit train` cuts by default (parameter count) and where the planner
# cuts from a `nsplit profile` taken in the same run (--split auto --cost), best of BENCH_REPEAT
# each, and their ratio (one more JSON line). With BENCH_TRACE=FILE it also writes a Chrome trace of the wide
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

# shellcheck source=scripts/bench/build.sh
source "$ROOT/scripts/bench/build.sh"
nsl_bench_setup "$ROOT" "$BUILD_DIR" nsplit.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nsl-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
NSPLIT="$BUILD_DIR/nsplit"
CORES=$(nproc)

declare -A MODEL=([demo]=mlp:784-512-256-10 [wide]=mlp:784-1024-1024-1024-1024-10)
declare -A BATCH=([demo]=64 [wide]=256)
declare -A MICRO=([demo]=8 [wide]=64)
declare -A FAST_MICRO=([demo]=16 [wide]=128)

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
		for s in fast-s0 fast-s1; do
			cases+=("$m|$p|$s|${FAST_MICRO[$m]}")
		done
	done
done

run_case() { # model peers schedule micro -> samples/s
	local m=$1 p=$2 s=$3 micro=$4 args
	args=(--model "${MODEL[$m]}" --data "$DATA" --batch "${BATCH[$m]}" --epochs 1 --limit-samples "$SAMPLES"
		--no-eval --no-progress --seed 1)
	if [[ $s == reference ]]; then
		args+=(--peers 1 --threads "$CORES")
	elif [[ $s == fast-s* ]]; then
		args+=(--peers "$p" --schedule fast --staleness "${s#fast-s}" --fast-activations all --micro-batch "$micro"
			--threads 1 --poll "$POLL")
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

# ---- the planner's split against the default one ----
CNN="conv:32x3x3,relu,maxpool:2,conv:64x3x3,relu,maxpool:2,flatten,dense:128,relu,dense:10"
"$NSPLIT" profile --model "$CNN" --batch 64 --micro-batch 8 --optimizer adam --out "$tmp/cnn-cost.json" >"$tmp/profile.log" 2>&1 ||
	cat "$tmp/profile.log" >&2
cnn_run() { # extra args -> samples/s
	"$NSPLIT" train --peers 4 --model "$CNN" --data "$DATA" --batch 64 --micro-batch 8 --schedule 1f1b --optimizer adam \
		--epochs 1 --limit-samples 12000 --no-eval --no-progress --threads 1 --poll "$POLL" "$@" 2>/dev/null |
		awk '/^training:/ {print $2}'
}
even=0 planned=0
for ((r = 0; r < REPEAT; r++)); do
	v=$(cnn_run)
	awk "BEGIN {exit !(${v:-0} > $even)}" && even=$v
	v=$(cnn_run --split auto --cost "$tmp/cnn-cost.json")
	awk "BEGIN {exit !(${v:-0} > $planned)}" && planned=$v
	printf '.' >&2
done
echo >&2
split_even=$("$NSPLIT" train --peers 4 --model "$CNN" --dump-schedule --batch 64 --micro-batch 8 |
	sed -n 's/.*(layers \([0-9]*\)-[0-9]*).*/\1/p' | tail -n +2 | paste -sd,)
split_plan=$("$NSPLIT" plan --cost "$tmp/cnn-cost.json" --model "$CNN" --peers 4 --schedule 1f1b --batch 64 --cores "$CORES" --json |
	"$PY" -c 'import json,sys; print(",".join(map(str, json.load(sys.stdin)["split"])))')

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
echo
echo "planner: the CNN over 4 peers, 1f1b, micro-batch 8 of batch 64 (adam), samples/s, best of $REPEAT"
printf '%-28s %12.0f\n' "default split ($split_even)" "$even" "planned split ($split_plan)" "$planned"
awk -v e="$even" -v p="$planned" 'BEGIN {printf "%-28s %12.2f\n", "planned / default", (e > 0 ? p / e : 0)}'
for c in "${cases[@]}"; do
	IFS='|' read -r m p s micro <<<"$c"
	ref=${best["$m|1|reference|0"]}
	awk -v m="${MODEL[$m]}" -v s="$s" -v p="$p" -v mb="$micro" -v b="${BATCH[$m]}" -v v="${best[$c]}" -v ref="$ref" \
		'BEGIN {printf "{\"model\":\"%s\",\"batch\":%d,\"schedule\":\"%s\",\"peers\":%d,\"micro_batch\":%d,\"samples_per_s\":%.1f,\"vs_reference\":%.3f}\n", m, b, s, p, mb, v, (ref > 0 ? v / ref : 0)}'
done
awk -v m="$CNN" -v e="$even" -v p="$planned" -v sp="$split_plan" \
	'BEGIN {printf "{\"case\":\"planner\",\"model\":\"%s\",\"schedule\":\"1f1b\",\"peers\":4,\"split\":\"%s\",\"default_samples_per_s\":%.1f,\"planned_samples_per_s\":%.1f,\"ratio\":%.3f}\n", m, sp, e, p, (e > 0 ? p / e : 0)}'
