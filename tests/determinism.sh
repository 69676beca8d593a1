#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# usage: determinism.sh NSPLIT_BINARY [DATA_DIR]
# The same seed gives bitwise-identical weights, run after run; another seed gives other weights.
# For the reference MLP and a CNN, on 2 threads (the thread count fixes the order of oneDNN's sums).
set -euo pipefail

NSPLIT=${1:?usage: determinism.sh NSPLIT_BINARY [DATA_DIR]}
DATA=${2:-${NSPLIT_DATA:-/usr/share/datasets/fashion-mnist}}
MODELS=(
	"mlp:784-512-256-10"
	"conv:32x3x3,relu,maxpool:2,conv:64x3x3,relu,maxpool:2,flatten,dense:128,relu,dense:10"
)

# shellcheck source=tests/need_data.sh
source "$(dirname "$0")/need_data.sh"
nsl_need_data "$DATA"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/nsl-determinism.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

train() { # model seed out
	"$NSPLIT" train --peers 1 --model "$1" --data "$DATA" --epochs 1 --limit-samples 6000 \
		--batch 64 --optimizer sgd --lr 0.02 --momentum 0.9 --seed "$2" --threads 2 \
		--save-weights "$3" --no-progress --no-eval >"$3.log" 2>&1 || {
		echo "FAIL: nsplit train --model $1 --seed $2 exited non-zero:"
		tail -n 20 "$3.log"
		return 1
	}
}

failed=0
for i in "${!MODELS[@]}"; do
	model=${MODELS[$i]}
	a="$tmp/m$i-seed1-a.safetensors"
	b="$tmp/m$i-seed1-b.safetensors"
	c="$tmp/m$i-seed2.safetensors"
	if ! { train "$model" 1 "$a" && train "$model" 1 "$b" && train "$model" 2 "$c"; }; then
		failed=1
		continue
	fi
	if cmp -s "$a" "$b"; then
		echo "ok: $model: seed 1 twice -> identical weights ($(stat -c %s "$a") bytes)"
	else
		echo "FAIL: $model: seed 1 twice -> different weights ($(cmp "$a" "$b" 2>&1 | head -1))"
		failed=1
	fi
	if cmp -s "$a" "$c"; then
		echo "FAIL: $model: seeds 1 and 2 -> identical weights"
		failed=1
	else
		echo "ok: $model: seeds 1 and 2 -> different weights"
	fi
done
exit "$failed"
