#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# usage: fast.sh NSPLIT_BINARY [DATA_DIR]
# Fast N-split (--schedule fast) in one process over net_ring:
#   - staleness 0 gives the weights of the single-peer reference replaying the same samples
#     (--replay-peers N, same micro-batches), within 1e-5, for N = 3 (pools 1:2) and N = 4
#     (pools 1:3 and 2:2), the MLP (sgd with momentum) and the CNN (adam), with both
#     --fast-activations modes;
#   - staleness 1 (4 peers) gives the weights of the reference replaying the same delayed
#     updates with weight stashing (--replay-peers 4 --staleness 1) within 1e-5, and, as a
#     control, the same run without stashing (--no-stash) does not: backward on the newest
#     weights is not the gradient of the weights that made the forward;
#   - a model with dropout and pooling (whose saved state a backward role remakes), batches and
#     micro-batches that do not divide evenly, staleness 1: the stashed replay's weights;
#   - a run resumed from its round-4 checkpoint (the backward roles' records: parameters and
#     adam's state) writes the uninterrupted run's weights, bitwise (pools 2:2, staleness 1).
# One thread per peer (oneDNN's sums depend on the thread count); the first 6,000 samples for
# the MLP, 1,200 for the CNN.
set -euo pipefail

NSPLIT=${1:?usage: fast.sh NSPLIT_BINARY [DATA_DIR]}
DATA=${2:-${NSPLIT_DATA:-/usr/share/datasets/fashion-mnist}}
HERE=$(dirname "$0")

# shellcheck source=tests/need_data.sh
source "$HERE/need_data.sh"
# shellcheck source=tests/weights.sh
source "$HERE/weights.sh"
nsl_need_data "$DATA"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/nsl-fast.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
failed=0

run() { # out args...
	nsl_train_save "$1" --epochs 1 --batch 64 --micro-batch 16 --seed 1 --threads 1 "${@:2}"
}

MLP_ARGS=(--model "$MLP" --limit-samples 6000 --optimizer sgd --lr 0.02 --momentum 0.9)
CNN_ARGS=(--model "$CNN" --limit-samples 1200 --optimizer adam)
for model in mlp cnn; do
	if [ $model = mlp ]; then args=("${MLP_ARGS[@]}"); else args=("${CNN_ARGS[@]}"); fi
	for n in 3 4; do
		ref="$tmp/$model-ref$n.safetensors"
		run "$ref" --peers 1 --replay-peers "$n" "${args[@]}" || { failed=1; continue; }
		if [ "$n" = 3 ]; then pools="1:2"; else pools="1:3 2:2"; fi
		for p in $pools; do
			for act in boundary all; do
				got="$tmp/$model-$n-$p-$act.safetensors"
				run "$got" --peers "$n" --schedule fast --pools "$p" --fast-activations "$act" "${args[@]}" &&
					nsl_check_weights "$model, $n peers, pools $p, $act activations" "$ref" "$got" 1e-5 ||
					failed=1
			done
		done
	done
done

ref="$tmp/stale-ref.safetensors"
run "$ref" --peers 1 --replay-peers 4 --staleness 1 "${MLP_ARGS[@]}" || failed=1
for p in 1:3 2:2; do
	for act in boundary all; do
		got="$tmp/stale-$p-$act.safetensors"
		run "$got" --peers 4 --schedule fast --pools "$p" --staleness 1 --fast-activations "$act" "${MLP_ARGS[@]}" &&
			nsl_check_weights "mlp, 4 peers, pools $p, staleness 1, $act activations, stashed" "$ref" "$got" 1e-5 ||
			failed=1
	done
done
got="$tmp/stale-nostash.safetensors"
if run "$got" --peers 4 --schedule fast --pools 1:3 --staleness 1 --no-stash "${MLP_ARGS[@]}"; then
	if verdict=$(/usr/bin/python3 "$HERE/compare_weights.py" "$ref" "$got" 1e-5 2>&1); then
		echo "FAIL: staleness 1 without stashing matches the stashed replay ($verdict): the control shows nothing"
		failed=1
	else
		echo "ok: staleness 1 without stashing differs from the stashed replay as it must: $verdict"
	fi
else
	failed=1
fi
ODD=(--model "conv:8x3x3,relu,maxpool:2,flatten,dropout:0.2,dense:32,relu,dense:10" --limit-samples 1000
	--optimizer adam --staleness 1)
if run "$tmp/odd-ref.safetensors" --peers 1 --replay-peers 4 "${ODD[@]}" --batch 48 --micro-batch 10; then
	for p in 1:3 2:2; do
		got="$tmp/odd-$p.safetensors"
		run "$got" --peers 4 --schedule fast --pools "$p" --fast-activations all "${ODD[@]}" --batch 48 \
			--micro-batch 10 &&
			nsl_check_weights "dropout and pooling, batch 48 in micro-batches of 10, pools $p, staleness 1" \
				"$tmp/odd-ref.safetensors" "$got" 1e-5 || failed=1
	done
else
	failed=1
fi

CK=(--peers 4 --schedule fast --pools 2:2 --staleness 1 --fast-activations all --epochs 2 --limit-samples 4000
	--optimizer adam --checkpoint-every 2)
if run "$tmp/whole.safetensors" "${CK[@]}" --checkpoint "$tmp/ck"; then
	mkdir "$tmp/ck4" && cp -r "$tmp/ck/round-000004" "$tmp/ck4/"
	run "$tmp/resumed.safetensors" "${CK[@]}" --checkpoint "$tmp/ck4" --resume "$tmp/ck4" &&
		nsl_check_weights "fast 2:2, staleness 1, resumed after round 4 against uninterrupted" \
			"$tmp/whole.safetensors" "$tmp/resumed.safetensors" 0 || failed=1
else
	failed=1
fi
exit $failed
