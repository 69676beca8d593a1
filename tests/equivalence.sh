#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# usage: equivalence.sh NSPLIT_BINARY [DATA_DIR]
# N-split training over N peers (one process, net_ring) writes the weights of the single-peer
# reference trained on the same sample sequence (--replay-peers N): for N = 2, 3, 4, cuts at
# arbitrary layer boundaries (one between a dense layer and its relu), under every schedule,
# for the MLP and the CNN (adam, as the foundation issue trains it). Bitwise against a reference
# that runs the same micro-batches; for the MLP bitwise against the plain reference too (weight
# gradients are computed over the whole batch at the step, and a dense layer's rows do not
# depend on each other). (The CNN's convolutions sum differently for other micro-batch sizes,
# which can flip a max-pooling choice or a relu at zero: against the plain reference it drifts
# beyond 1e-5 within an epoch.) Every process computes on one thread, since oneDNN's sums
# depend on the thread count. One epoch of the first 6,000 samples. Peers that outnumber the
# CPUs share them as coroutines (coop.h); the 4-peer MLP also runs as threads.
set -euo pipefail

NSPLIT=${1:?usage: equivalence.sh NSPLIT_BINARY [DATA_DIR]}
DATA=${2:-${NSPLIT_DATA:-/usr/share/datasets/fashion-mnist}}
HERE=$(dirname "$0")

# shellcheck source=tests/need_data.sh
source "$HERE/need_data.sh"
# shellcheck source=tests/weights.sh
source "$HERE/weights.sh"
nsl_need_data "$DATA"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/nsl-equivalence.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
failed=0

run() { # out args...
	nsl_train_save "$1" --epochs 1 --limit-samples 6000 --batch 64 --seed 1 --threads 1 "${@:2}"
}

SGD=(--optimizer sgd --lr 0.02 --momentum 0.9)
declare -A SPLIT=([2]=3 [3]=1,4 [4]=2,3,4)
declare -A MICRO=([nsplit]=1 [gpipe]=10 [1f1b]=10)
for n in 2 3 4; do
	plain="$tmp/mlp-ref$n.safetensors"
	run "$plain" --peers 1 --replay-peers "$n" --model "$MLP" "${SGD[@]}" || { failed=1; continue; }
	for mb in 1 10; do
		run "$tmp/mlp-ref$n-mb$mb.safetensors" --peers 1 --replay-peers "$n" --micro-batch $mb --model "$MLP" \
			"${SGD[@]}" || failed=1
	done
	for s in nsplit gpipe 1f1b; do
		mb=${MICRO[$s]}
		got="$tmp/mlp-$n-$s.safetensors"
		run "$got" --peers "$n" --split "${SPLIT[$n]}" --schedule "$s" --micro-batch "$mb" --model "$MLP" \
			"${SGD[@]}" || { failed=1; continue; }
		nsl_check_weights "mlp, $n peers split at ${SPLIT[$n]}, $s, micro-batch $mb" "$tmp/mlp-ref$n-mb$mb.safetensors" "$got"
		nsl_check_weights "mlp, $n peers, $s, against the plain reference" "$plain" "$got" 0
	done
done
# Every polling mode runs the same programs: peers as threads of their own (adaptive) and as
# coroutines sharing a thread per CPU (coop, the default when they outnumber the CPUs), here
# on two worker threads for four peers wherever the machine has two CPUs or more.
for poll in adaptive coop; do
	got="$tmp/mlp-4-1f1b-$poll.safetensors"
	run "$got" --peers 4 --split "${SPLIT[4]}" --schedule 1f1b --micro-batch 10 --model "$MLP" "${SGD[@]}" \
		--poll "$poll" || { failed=1; continue; }
	nsl_check_weights "mlp, 4 peers, 1f1b, --poll $poll" "$tmp/mlp-ref4-mb10.safetensors" "$got"
done

CNN_OPT=(--optimizer adam)
for mb in 1 10; do
	run "$tmp/cnn-ref4-mb$mb.safetensors" --peers 1 --replay-peers 4 --micro-batch $mb --model "$CNN" \
		"${CNN_OPT[@]}" || failed=1
done
for s in nsplit gpipe 1f1b; do
	mb=${MICRO[$s]}
	got="$tmp/cnn-4-$s.safetensors"
	run "$got" --peers 4 --split 2,5,8 --schedule "$s" --micro-batch "$mb" --model "$CNN" "${CNN_OPT[@]}" &&
		nsl_check_weights "cnn (adam), 4 peers split at 2,5,8, $s, micro-batch $mb" "$tmp/cnn-ref4-mb$mb.safetensors" "$got" ||
		failed=1
done
exit $failed
