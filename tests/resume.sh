#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# usage: resume.sh NSPLIT_BINARY [DATA_DIR]
# Checkpoints and resume:
#  1. a 4-peer run (adam, so optimizer state and step counts matter), killed with SIGKILL once
#     its round-5 checkpoint is complete, then resumed from its newest checkpoint, writes the
#     weights of an uninterrupted run, bitwise
#  2. a 2-peer checkpoint taken at the end of an epoch resumes as 3 peers (another split too):
#     with nothing left to train they write exactly its weights; with an epoch more they train
#  3. a checkpoint of another model is refused, naming both models
set -euo pipefail

NSPLIT=$(realpath "${1:?usage: resume.sh NSPLIT_BINARY [DATA_DIR]}")
DATA=${2:-${NSPLIT_DATA:-/usr/share/datasets/fashion-mnist}}
HERE=$(dirname "$0")

# shellcheck source=tests/need_data.sh
source "$HERE/need_data.sh"
# shellcheck source=tests/weights.sh
source "$HERE/weights.sh"
nsl_need_data "$DATA"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/nsl-resume.XXXXXX")
victim=""
cleanup() {
	[[ -z "$victim" ]] || kill -9 "$victim" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
failed=0
COMMON=(--data "$DATA" --model "$MLP" --batch 64 --seed 1 --threads 1 --no-progress --no-eval --optimizer adam
	--lr 0.001)

echo "== 1. 4 peers killed after round 5, resumed"
FOUR=(--peers 4 --epochs 3 --limit-samples 12000 "${COMMON[@]}")
"$NSPLIT" train "${FOUR[@]}" --save-weights "$tmp/whole.st" >"$tmp/whole.log" 2>&1 || {
	cat "$tmp/whole.log"
	exit 1
}
"$NSPLIT" train "${FOUR[@]}" --checkpoint "$tmp/ck4" >"$tmp/killed.log" 2>&1 &
victim=$!
for ((i = 0; i < 3000; i++)); do
	[[ -f "$tmp/ck4/round-000005/manifest.json" ]] && break
	kill -0 "$victim" 2>/dev/null || break
	sleep 0.01
done
if ! kill -9 "$victim" 2>/dev/null; then
	echo "FAIL: the run ended before it could be killed after round 5:"
	tail -n 5 "$tmp/killed.log"
	exit 1
fi
wait "$victim" || true
# A killed process leaves its DPDK runtime folder behind.
rm -rf "/var/run/dpdk/nsplit-$victim-"*
victim=""
echo "killed with $(ls "$tmp/ck4" | tr '\n' ' ')on disk"
"$NSPLIT" train "${FOUR[@]}" --checkpoint "$tmp/ck4" --resume "$tmp/ck4" --save-weights "$tmp/resumed.st" \
	>"$tmp/resumed.log" 2>&1 || {
	cat "$tmp/resumed.log"
	exit 1
}
grep "resuming from" "$tmp/resumed.log"
nsl_check_weights "killed after round 5 and resumed = uninterrupted" "$tmp/whole.st" "$tmp/resumed.st"

echo "== 2. a 2-peer checkpoint resumes as 3 peers"
"$NSPLIT" train --peers 2 --epochs 1 --limit-samples 6000 "${COMMON[@]}" --checkpoint "$tmp/ck2" \
	--checkpoint-every 2 --save-weights "$tmp/two.st" >"$tmp/two.log" 2>&1 || {
	cat "$tmp/two.log"
	exit 1
}
"$NSPLIT" train --peers 3 --split 2,3 --epochs 1 --limit-samples 6000 "${COMMON[@]}" --resume "$tmp/ck2" \
	--save-weights "$tmp/three.st" >"$tmp/three.log" 2>&1 || {
	cat "$tmp/three.log"
	exit 1
}
nsl_check_weights "2-peer checkpoint loaded by 3 peers cut elsewhere" "$tmp/two.st" "$tmp/three.st"
if "$NSPLIT" train --peers 3 --epochs 2 --limit-samples 6000 "${COMMON[@]}" --resume "$tmp/ck2" \
	>"$tmp/more.log" 2>&1 && grep -q "epoch 2/2" "$tmp/more.log"; then
	echo "ok: 3 peers train on from the 2-peer checkpoint: $(grep 'epoch 2/2' "$tmp/more.log")"
else
	echo "FAIL: 3 peers did not train on from the 2-peer checkpoint:"
	tail -n 5 "$tmp/more.log"
	failed=1
fi

echo "== 3. another model's checkpoint is refused"
if out=$("$NSPLIT" train --peers 2 --epochs 1 --limit-samples 6000 --data "$DATA" --model mlp:784-64-10 \
	--no-progress --resume "$tmp/ck2" 2>&1); then
	echo "FAIL: a checkpoint of $MLP was loaded into mlp:784-64-10"
	failed=1
elif grep -q "holds model dense:512,relu,dense:256,relu,dense:10; this job trains dense:64,relu,dense:10" <<<"$out"; then
	echo "ok: refused: $out"
else
	echo "FAIL: refused without naming both models: $out"
	failed=1
fi
exit "$failed"
