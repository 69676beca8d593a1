#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# Installs what is missing, builds nsplit and trains the MLP on Fashion-MNIST over 4 peers in
# this process (N-split learning over net_ring, 1f1b schedule, the stages rotating one peer on
# each round), printing its test accuracy. Extra arguments go to `nsplit train` after the defaults and
# override them (e.g. scripts/demo.sh --epochs 1).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD_DIR=${NSPLIT_BUILD_DIR:-build}
DATA=/usr/share/datasets/fashion-mnist

# shellcheck source=scripts/deps.sh
source "$ROOT/scripts/deps.sh"
if ! nsl_install_deps; then
	echo "demo.sh: cannot install the dependencies; stopping" >&2
	exit 1
fi

echo "== demo.sh: build $BUILD_DIR"
if [[ -f "$BUILD_DIR/meson-private/coredata.dat" ]]; then
	meson setup --reconfigure "$BUILD_DIR" >/dev/null
else
	meson setup "$BUILD_DIR" >/dev/null
fi
ninja -C "$BUILD_DIR"

if [[ ! -f "$DATA/train-images-idx3-ubyte.gz" ]]; then
	echo "demo.sh: Fashion-MNIST not found in $DATA (package dataset-fashion-mnist)" >&2
	exit 1
fi

cmd=("$BUILD_DIR/nsplit" train --peers 4 --model mlp:784-512-256-10 --data "$DATA"
	--epochs 10 --batch 64 --optimizer sgd --lr 0.02 --lr-schedule cosine --momentum 0.9
	--seed 1 "$@")
echo "== demo.sh: ${cmd[*]}"
# nsplit's last line is "test accuracy: 0.XXXX".
"${cmd[@]}"
