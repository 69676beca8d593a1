#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# The simulator's fidelity: each schedule with 4 peers on this machine, measured (nsplit train)
# and simulated (nsplit simulate) from profiles taken just before and just after it,
# BENCH_REPEAT times over, on the same split (the default one; for Fast N-split, staleness 1
# with every tensor shipped, the planner's pools and splits from a first profile) and cores.
# Prints a table, then one JSON object per line:
# schedule, measured_samples_per_s, simulated_samples_per_s (medians), error (the median of
# simulated / measured - 1 over the repeats) and errors (each repeat's).
# Then the time a 64-peer simulation of one epoch takes (a deep MLP profiled here).
#
# Environment: NSPLIT_BUILD_DIR (build), BENCH_MODEL (mlp:784-1024-1024-1024-1024-10),
# BENCH_BATCH (256), BENCH_MICRO (64), BENCH_SAMPLES (30720), BENCH_REPEAT (5), NSPLIT_DATA,
# BENCH_NO_BUILD.
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$(pwd)
BUILD_DIR=${NSPLIT_BUILD_DIR:-build}
MODEL=${BENCH_MODEL:-mlp:784-1024-1024-1024-1024-10}
BATCH=${BENCH_BATCH:-256}
MICRO=${BENCH_MICRO:-64}
SAMPLES=${BENCH_SAMPLES:-30720}
REPEAT=${BENCH_REPEAT:-5}
DATA=${NSPLIT_DATA:-/usr/share/datasets/fashion-mnist}
PY=/usr/bin/python3

# shellcheck source=scripts/bench/build.sh
source "$ROOT/scripts/bench/build.sh"
nsl_bench_setup "$ROOT" "$BUILD_DIR" simulate.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nsl-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
NSPLIT="$BUILD_DIR/nsplit"

"$NSPLIT" profile --model "$MODEL" --batch "$BATCH" --micro-batch "$MICRO" --out "$tmp/cost.json" >"$tmp/profile.log"
echo "simulator fidelity: $MODEL, batch $BATCH, 4 peers, $SAMPLES samples, $(nproc) cores; $REPEAT repeats of profile, measure, simulate"
"$NSPLIT" plan --cost "$tmp/cost.json" --model "$MODEL" --peers 4 --schedule fast --fast-activations all \
	--batch "$BATCH" --micro-batch "$((2 * MICRO))" --samples "$SAMPLES" --cores "$(nproc)" --json >"$tmp/plan.json"
fast=$("$PY" - "$tmp/plan.json" <<'PYEOF'
import json, sys
p = json.load(open(sys.argv[1]))
cuts = lambda a: ",".join(map(str, a)) or "even"
print("--pools %d:%d --split-fwd %s --split-bwd %s" % (p["pools"][0], p["pools"][1], cuts(p["split_fwd"]), cuts(p["split_bwd"])))
PYEOF
)
# The machine's pace drifts by 10-40% over minutes: each measurement is bracketed by a profile
# taken just before and one just after it, and set against the mean of what the two simulate.
simulated() {
	"$NSPLIT" simulate --cost "$1" --model "$MODEL" --peers 4 "${extra[@]}" --schedule "$s" \
		--batch "$BATCH" --micro-batch "$micro" --samples "$SAMPLES" --json |
		"$PY" -c 'import json,sys; print(json.load(sys.stdin)["samples_per_s"])'
}
for ((r = 0; r < REPEAT; r++)); do
	for s in nsplit gpipe 1f1b fast; do
		micro=$MICRO
		[[ $s == nsplit ]] && micro=$((BATCH / 16))
		extra=(--split even)
		if [[ $s == fast ]]; then
			micro=$((2 * MICRO))
			# shellcheck disable=SC2206
			extra=($fast --staleness 1 --fast-activations all)
		fi
		train_extra=("${extra[@]}")
		[[ $s == fast ]] || train_extra=()
		"$NSPLIT" profile --model "$MODEL" --batch "$BATCH" --micro-batch "$MICRO" --out "$tmp/before.json" >"$tmp/profile.log"
		v=$("$NSPLIT" train --peers 4 --model "$MODEL" --data "$DATA" --batch "$BATCH" --micro-batch "$micro" \
			--schedule "$s" --epochs 1 --limit-samples "$SAMPLES" --no-eval --no-progress --threads 1 \
			"${train_extra[@]}" | awk '/^training:/ {print $2}')
		"$NSPLIT" profile --model "$MODEL" --batch "$BATCH" --micro-batch "$MICRO" --out "$tmp/after.json" >"$tmp/profile.log"
		sim=$(awk -v a="$(simulated "$tmp/before.json")" -v b="$(simulated "$tmp/after.json")" 'BEGIN {print (a + b) / 2}')
		echo "$s $micro ${v:-0} $sim" >>"$tmp/pairs"
	done
done
# Per schedule: the medians of the measured and simulated figures, and the median of the
# repeats' errors (simulated / measured - 1), each repeat's error listed.
"$PY" - "$tmp/pairs" <<'PYEOF'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    s, micro, m, sim = line.split()
    rows.setdefault(s, (int(micro), []))[1].append((float(m), float(sim)))
print("%-8s %6s %12s %12s %8s  %s" % ("schedule", "micro", "measured", "simulated", "error", "each repeat"))
out = []
for s, (micro, pairs) in rows.items():
    errs = [sim / m - 1 if m > 0 else 0 for m, sim in pairs]
    med_m = statistics.median(m for m, _ in pairs)
    med_s = statistics.median(sim for _, sim in pairs)
    err = statistics.median(errs)
    print("%-8s %6d %12.0f %12.0f %8.3f  %s" % (s, micro, med_m, med_s, err, " ".join("%+.3f" % e for e in errs)))
    out.append({"schedule": s, "micro_batch": micro, "measured_samples_per_s": round(med_m),
                "simulated_samples_per_s": round(med_s), "error": round(err, 3), "errors": [round(e, 3) for e in errs]})
for o in out:
    print(json.dumps(o, separators=(",", ":")))
PYEOF
# 64 peers need 64 layers at least: an MLP of 35 hidden layers (71 layers), profiled here.
deep="mlp:784$(printf -- '-64%.0s' $(seq 35))-10"
"$NSPLIT" profile --model "$deep" --batch 64 --micro-batch 8 --out "$tmp/deep.json" >/dev/null
t0=$(date +%s.%N)
"$NSPLIT" simulate --cost "$tmp/deep.json" --model "$deep" --peers 64 --schedule 1f1b --batch 64 --micro-batch 8 \
	--samples 60000 --cores 0 >"$tmp/deep.log"
echo "64 peers, one epoch of 60000 samples of a 71-layer MLP simulated in $(awk -v a="$t0" -v b="$(date +%s.%N)" \
	'BEGIN {printf "%.2f", b - a}') s: $(grep '^round' "$tmp/deep.log")"
