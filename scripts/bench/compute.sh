#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# Training throughput (samples/s) of one model on one peer, four ways, per batch size and
# thread count:
#   nsplit: build/nsplit train --peers 1 --epochs 1 --no-eval, its samples_per_s
#   torch:  PyTorch CPU, same model, batch, threads, data, SGD momentum, one epoch of steps
#           (scripts/bench/torch_mlp.py)
#   dnnl:   a bare C loop of the same oneDNN primitives, no nsplit code (bench_dnnl_mlp)
#   peak:   the cores' FMA peak divided by the model's training FLOPs per sample
# Prints a table, then one JSON object per line and case. Each figure is the best of
# BENCH_REPEAT runs (other load on the machine only ever slows a run down), the three measured
# sides taking turns.
#
# Environment: NSPLIT_BUILD_DIR (build), BENCH_MODEL (mlp:784-512-256-10), BENCH_BATCHES
# ("64 256"), BENCH_THREADS ("1 2"), BENCH_REPEAT (3), NSPLIT_DATA (Fashion-MNIST folder),
# BENCH_NO_BUILD (set: use the build folder as it is).
# All three run with the OpenMP environment as it is (libgomp's default: threads spin briefly,
# then sleep).
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$(pwd)
BUILD_DIR=${NSPLIT_BUILD_DIR:-build}
MODEL=${BENCH_MODEL:-mlp:784-512-256-10}
BATCHES=${BENCH_BATCHES:-64 256}
THREADS=${BENCH_THREADS:-1 2}
REPEAT=${BENCH_REPEAT:-3}
DATA=${NSPLIT_DATA:-/usr/share/datasets/fashion-mnist}
PY=/usr/bin/python3

# shellcheck source=scripts/bench/build.sh
source "$ROOT/scripts/bench/build.sh"
nsl_bench_setup "$ROOT" "$BUILD_DIR" compute.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nsl-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

NSPLIT="$BUILD_DIR/nsplit"
DNNL=""
for p in "$BUILD_DIR/scripts/bench/bench_dnnl_mlp" "$BUILD_DIR/bench_dnnl_mlp"; do
	[[ -x "$p" ]] && DNNL=$p && break
done
[[ -n "$DNNL" ]] || echo "compute.sh: bench_dnnl_mlp not built (is subdir('scripts/bench') in meson.build?)" >&2
case "$MODEL" in
mlp:*) ;;
*) DNNL="" ;; # the bare loop knows dense layers only
esac

results="$tmp/results.tsv" # case kind threads batch samples_per_s

# ---- the machine's FMA peak ----
family=$(awk -F: '/^cpu family/ {gsub(/ /, "", $2); print $2; exit}' /proc/cpuinfo)
vendor=$(awk -F: '/^vendor_id/ {gsub(/ /, "", $2); print $2; exit}' /proc/cpuinfo)
flags=" $(awk -F: '/^flags/ {print $2; exit}' /proc/cpuinfo) "
model_name=$(awk -F: '/^model name/ {sub(/^ /, "", $2); print $2; exit}' /proc/cpuinfo)
has() { [[ "$flags" == *" $1 "* ]]; }
if has avx512f && [[ "$vendor" == AuthenticAMD && "$family" == 25 ]]; then
	fpc=32
	fpc_why="Zen 4 (AMD family 0x19, avx512f): 512-bit ops double-pumped on 256-bit units, 2 FMA x 8 f32 x 2"
elif has avx512f && [[ "$vendor" == AuthenticAMD ]]; then
	fpc=64
	fpc_why="Zen 5 or later (AMD family $(printf '0x%x' "$family"), avx512f): 2 FMA x 16 f32 x 2"
elif has avx512f; then
	fpc=64
	fpc_why="AVX-512 ($vendor), assuming 2 FMA units: 2 x 16 f32 x 2"
elif has fma && has avx2; then
	fpc=32
	fpc_why="AVX2+FMA: 2 FMA x 8 f32 x 2"
else
	fpc=8
	fpc_why="no FMA: 2 units x 4 f32 (SSE)"
fi
clock_mhz=$(lscpu 2>/dev/null | awk -F: '/CPU max MHz/ {gsub(/ /, "", $2); print $2; exit}')
clock_why="lscpu max MHz"
if [[ -z "$clock_mhz" && -n "$DNNL" ]]; then
	clock_mhz=$("$DNNL" --clock | $PY -c 'import json,sys; print(json.load(sys.stdin)["clock_mhz"])')
	clock_why="measured busy clock (dependent adds; lscpu shows no max MHz, /proc/cpuinfo says $(awk -F: '/^cpu MHz/ {gsub(/ /, "", $2); print $2; exit}' /proc/cpuinfo) MHz)"
fi
if [[ -z "$clock_mhz" || "$clock_mhz" == 0 ]]; then
	clock_mhz=$(awk -F: '/^cpu MHz/ {gsub(/ /, "", $2); print $2; exit}' /proc/cpuinfo)
	clock_why="/proc/cpuinfo cpu MHz"
fi
echo "CPU: $model_name, $(nproc) cores available"
echo "peak: $fpc f32 FLOP/cycle/core [$fpc_why] x ${clock_mhz} MHz [$clock_why] x threads"

one_run() { # prints the samples_per_s of one run of "$@" (JSON lines; the last one counts), or nothing
	local out
	if ! out=$("$@" 2>"$tmp/err"); then
		echo "compute.sh: failed: $*" >&2
		tail -n 5 "$tmp/err" >&2
		return 0
	fi
	printf '%s\n' "$out" | $PY -c '
import json, sys
v = None
for line in sys.stdin:
    line = line.strip()
    if line.startswith("{"):
        rec = json.loads(line)
        if rec.get("samples_per_s") is not None:
            v = rec["samples_per_s"]
print("" if v is None else v)'
}

better() { # the larger of two figures, either possibly empty
	if [[ -z "$1" ]]; then
		printf '%s' "$2"
	elif [[ -z "$2" ]] || $PY -c "import sys; sys.exit(0 if $1 >= $2 else 1)"; then
		printf '%s' "$1"
	else
		printf '%s' "$2"
	fi
}

nsplit_run() { # threads batch -> the last samples_per_s of --metrics, as a JSON line
	local m="$tmp/metrics.jsonl"
	rm -f "$m"
	"$NSPLIT" train --peers 1 --model "$MODEL" --data "$DATA" \
		--threads "$1" --batch "$2" --epochs 1 --optimizer sgd --lr 0.02 --momentum 0.9 \
		--seed 1 --no-eval --no-progress --metrics "$m" >"$tmp/nsplit.out" 2>&1 || {
		cat "$tmp/nsplit.out" >&2
		return 1
	}
	grep '"samples_per_s"' "$m" | tail -n 1
}

nsplit_ok=0
if [[ -x "$NSPLIT" ]] && "$NSPLIT" train --help >/dev/null 2>&1; then
	nsplit_ok=1
else
	echo "compute.sh: $NSPLIT train is not available; nsplit's column stays empty" >&2
fi

for t in $THREADS; do
	if ((t > $(nproc))); then
		echo "compute.sh: skipping $t threads: only $(nproc) cores" >&2
		continue
	fi
	for b in $BATCHES; do
		name="${MODEL%%:*} b$b t$t"
		echo "running: $name" >&2
		# The three take turns, run after run: the machine's pace drifts over minutes, and runs
		# of one side in a block of their own met another pace than the other sides' blocks.
		n="" tr="" d=""
		for ((i = 0; i < REPEAT; i++)); do
			((nsplit_ok)) && n=$(better "$n" "$(one_run nsplit_run "$t" "$b")")
			tr=$(better "$tr" "$(one_run $PY "$ROOT/scripts/bench/torch_mlp.py" --model "$MODEL" \
				--data "$DATA" --threads "$t" --batch "$b")")
			[[ -n "$DNNL" ]] && d=$(better "$d" "$(one_run "$DNNL" --dims "${MODEL#mlp:}" --data "$DATA" \
				--threads "$t" --batch "$b")")
		done
		printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$t" "$b" "${n:-}" "${tr:-}" "${d:-}" >>"$results"
	done
done

$PY - "$results" "$MODEL" "$fpc" "$clock_mhz" "$ROOT/scripts" <<'PYEOF'
import json
import sys

path, model, fpc, clock_mhz, scripts = sys.argv[1:6]
sys.path.insert(0, scripts)
import torch_model as tm  # noqa: E402

fwd, bwd = tm.training_macs(model)
flops = 2 * (fwd + bwd)
print(f"model {model}: {flops / 1e6:.3f} MFLOP per training sample "
      f"(2 x {fwd} forward MACs + 2 x {bwd} backward MACs, no input gradient for layer 0)")


def num(s):
    return float(s) if s else None


def ratio(a, b):
    return round(a / b, 3) if a and b else None


rows = []
with open(path) as f:
    for line in f:
        name, t, b, n, tr, d = line.rstrip("\n").split("\t")
        peak = int(t) * float(clock_mhz) * 1e6 * int(fpc) / flops
        n, tr, d = num(n), num(tr), num(d)
        rows.append({
            "case": name, "nsplit_samples_per_s": n, "torch_samples_per_s": tr,
            "dnnl_samples_per_s": d, "peak_samples_per_s": round(peak, 1),
            "vs_torch": ratio(n, tr), "vs_dnnl": ratio(n, d), "vs_peak": ratio(n, peak),
            "dnnl_vs_peak": ratio(d, peak),
        })


def cell(v, width, fmt):
    return ("-" if v is None else format(v, fmt)).rjust(width)


cols = [("nsplit", "nsplit_samples_per_s", 10, ".0f"), ("torch", "torch_samples_per_s", 10, ".0f"),
        ("dnnl", "dnnl_samples_per_s", 10, ".0f"), ("peak", "peak_samples_per_s", 10, ".0f"),
        ("vs_torch", "vs_torch", 9, ".2f"), ("vs_dnnl", "vs_dnnl", 9, ".2f"),
        ("vs_peak", "vs_peak", 9, ".2f"), ("dnnl/peak", "dnnl_vs_peak", 10, ".2f")]
hdr = "samples/s".ljust(14) + "".join(title.rjust(w) for title, _, w, _ in cols)
print(hdr)
print("-" * len(hdr))
for r in rows:
    print(r["case"].ljust(14) + "".join(cell(r[key], w, fmt) for _, key, w, fmt in cols))
for r in rows:
    if r["case"].endswith(" b64 t1"):
        for key, want in (("vs_torch", 1.3), ("vs_dnnl", 0.95)):
            v = r[key]
            verdict = "n/a" if v is None else ("met" if v >= want else "MISSED")
            print(f"target {r['case']}: {key} >= {want}: {verdict} ({v})")
for r in rows:
    print(json.dumps(r))
PYEOF
