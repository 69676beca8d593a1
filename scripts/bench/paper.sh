#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# The paper's comparison, reproduced: for N = 1 to BENCH_MAX_PEERS (16) peers, the epoch time of
# the single-device reference, N-split (the paper's: one sample at a time), pipelined N-split
# (1f1b) and Fast N-split at staleness 0 and 1, each with its optimal split (the planner's, from a
# profile taken in the same run): measured on this machine where N <= BENCH_MEASURE_PEERS (4),
# simulated for every N.
#   - simulated: every peer a device of its own (a core each, links as net_ring measured here),
#     the paper's setting; where measured, also simulated as measured: the peers sharing this
#     machine's cores (sim_shared), which is what the measured figure should be compared with
#   - measured: nsplit train on BENCH_SAMPLES samples, one thread a peer, its samples/s scaled
#     to an epoch of 60,000 samples; the reference is --peers 1 on one thread (one device)
# Model: an MLP of nine dense layers (17 layers, so 16 peers have one each), batch 64.
# Prints a table, writes JSON lines and a PNG plot (matplotlib, installed by scripts/deps.sh) of
# epoch time against N for each scheme to BENCH_OUT (default scripts/bench/paper.*).
#
# Environment: NSPLIT_BUILD_DIR (build), BENCH_MAX_PEERS (16), BENCH_MEASURE_PEERS (4),
# BENCH_SAMPLES (7680), BENCH_OUT (scripts/bench/paper), NSPLIT_DATA, BENCH_NO_BUILD.
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$(pwd)
BUILD_DIR=${NSPLIT_BUILD_DIR:-build}
MAXN=${BENCH_MAX_PEERS:-16}
MEASN=${BENCH_MEASURE_PEERS:-4}
SAMPLES=${BENCH_SAMPLES:-7680}
OUT=${BENCH_OUT:-$ROOT/scripts/bench/paper}
DATA=${NSPLIT_DATA:-/usr/share/datasets/fashion-mnist}
PY=/usr/bin/python3
MODEL="mlp:784-512-512-512-512-512-512-512-512-10"
BATCH=64
EPOCH=60000

# shellcheck source=scripts/bench/build.sh
source "$ROOT/scripts/bench/build.sh"
nsl_bench_setup "$ROOT" "$BUILD_DIR" paper.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nsl-paper.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
NSPLIT="$BUILD_DIR/nsplit"
CORES=$(nproc)
SCHEMES="reference nsplit 1f1b fast-s0 fast-s1"

micro_of() { # scheme peers
	case $1 in
	nsplit) echo 1 ;;
	reference) echo "$BATCH" ;;
	*) echo $(((BATCH / (2 * $2)) > 0 ? BATCH / (2 * $2) : 1)) ;;
	esac
}

echo "paper.sh: profiling $MODEL on this machine" >&2
"$NSPLIT" profile --model "$MODEL" --batch "$BATCH" --micro-batch 8 --out "$tmp/cost.json" >"$tmp/profile.log"

# epoch seconds of a scheme over n peers, simulated with `cores` shared cores (0: a core each)
simulate() { # scheme n cores
	local s=$1 n=$2 cores=$3 args
	args=(--cost "$tmp/cost.json" --model "$MODEL" --batch "$BATCH" --micro-batch "$(micro_of "$s" "$n")"
		--samples "$EPOCH" --cores "$cores" --json)
	case $s in
	reference) args+=(--peers 1 --schedule 1f1b) ;;
	nsplit | 1f1b) args+=(--peers "$n" --schedule "$s") ;;
	fast-s*) args+=(--peers "$n" --schedule fast --staleness "${s#fast-s}" --fast-activations all) ;;
	esac
	if [[ $s == fast-s* && $n -lt 2 ]]; then
		echo null
		return
	fi
	"$NSPLIT" simulate "${args[@]}" 2>"$tmp/err" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["epoch_s"])' ||
		{
			echo "paper.sh: simulating $s over $n peers failed: $(tail -n 1 "$tmp/err")" >&2
			echo null
		}
}

# epoch seconds measured here (samples/s over SAMPLES samples, scaled to the epoch)
measure() { # scheme n
	local s=$1 n=$2 args rate
	args=(--model "$MODEL" --data "$DATA" --batch "$BATCH" --epochs 1 --limit-samples "$SAMPLES" --no-eval
		--no-progress --seed 1 --threads 1 --micro-batch "$(micro_of "$s" "$n")")
	case $s in
	reference) args+=(--peers 1) ;;
	nsplit | 1f1b) args+=(--peers "$n" --schedule "$s" --split auto --cost "$tmp/cost.json") ;;
	fast-s*) args+=(--peers "$n" --schedule fast --staleness "${s#fast-s}" --fast-activations all
		--cost "$tmp/cost.json") ;;
	esac
	if [[ $s != reference && $n -lt 2 ]] || [[ $s == reference && $n -gt 1 ]]; then
		echo null
		return
	fi
	rate=$("$NSPLIT" train "${args[@]}" 2>"$tmp/err" | awk '/^training:/ {print $2}') || true
	if [[ -z "$rate" ]]; then
		echo "paper.sh: $s over $n peers failed: $(tail -n 1 "$tmp/err")" >&2
		echo null
		return
	fi
	awk -v r="$rate" -v e="$EPOCH" 'BEGIN {printf "%.4f", e / r}'
}

: >"$OUT.jsonl"
printf '%-10s %5s %14s %14s %14s\n' scheme peers measured_s simulated_s sim_shared_s
for n in $(seq 1 "$MAXN"); do
	for s in $SCHEMES; do
		[[ $s == reference && $n -gt 1 ]] && continue
		[[ $s != reference && $n -lt 2 ]] && continue
		meas=null shared=null
		if ((n <= MEASN)); then
			meas=$(measure "$s" "$n")
			shared=$(simulate "$s" "$n" "$((n > CORES ? CORES : 0))")
		fi
		sim=$(simulate "$s" "$n" 0)
		printf '%-10s %5d %14s %14s %14s\n' "$s" "$n" "$meas" "$sim" "$shared"
		echo "{\"scheme\":\"$s\",\"peers\":$n,\"model\":\"$MODEL\",\"batch\":$BATCH,\"micro_batch\":$(micro_of "$s" "$n"),\"epoch_samples\":$EPOCH,\"measured_epoch_s\":$meas,\"simulated_epoch_s\":$sim,\"simulated_shared_epoch_s\":$shared,\"cores\":$CORES}" >>"$OUT.jsonl"
	done
done
echo "JSON lines: $OUT.jsonl"

"$PY" - "$OUT.jsonl" "$OUT.png" "$CORES" <<'PYEOF'
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
fig, ax = plt.subplots(figsize=(8, 5))
names = {"reference": "single device", "nsplit": "N-split", "1f1b": "pipelined N-split (1f1b)",
         "fast-s0": "Fast N-split, S = 0", "fast-s1": "Fast N-split, S = 1"}
for i, (s, label) in enumerate(names.items()):
    pts = sorted((r["peers"], r) for r in rows if r["scheme"] == s)
    if not pts:
        continue
    color = f"C{i}"
    if s == "reference":
        ax.axhline(pts[0][1]["simulated_epoch_s"], color=color, ls=":", label=label + " (simulated)")
        if pts[0][1]["measured_epoch_s"] is not None:
            ax.axhline(pts[0][1]["measured_epoch_s"], color=color, ls="--", lw=0.8, label=label + " (measured)")
        continue
    ax.plot([n for n, _ in pts], [r["simulated_epoch_s"] for _, r in pts], "-", color=color, label=label)
    m = [(n, r["measured_epoch_s"]) for n, r in pts if r["measured_epoch_s"] is not None]
    if m:
        ax.plot([n for n, _ in m], [v for _, v in m], "o", color=color, mfc="none")
ax.set_yscale("log")
ax.set_xticks(sorted({r["peers"] for r in rows}))
ax.set_xlabel("peers N")
ax.set_ylabel("epoch time, s (60,000 samples; log scale)")
ax.set_title("Epoch time against N: lines simulated (a device each), circles measured here "
             f"({sys.argv[3]} cores shared)", fontsize=9)
ax.grid(True, which="both", alpha=0.3)
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
print(f"plot: {sys.argv[2]}")
PYEOF
