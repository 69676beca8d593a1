#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# usage: accuracy.sh NSPLIT_BINARY mlp|cnn|mlp-peers4|mlp-fast-stale1 [DATA_DIR]
# Full training runs on Fashion-MNIST reach their final test accuracy:
#   mlp: the reference run (MLP 784-512-256-10, SGD momentum, cosine, 10 epochs) >= 0.885
#   mlp-peers4: the same over 4 peers (40 rounds, 1f1b, the demo) >= 0.885; measured 0.8947
#   mlp-fast-stale1: the same over 4 peers under Fast N-split with staleness 1 (forwards a batch
#   ahead of the updates, weight stashing) >= 0.88
#   cnn: conv32-pool-conv64-pool-dense128, Adam lr 0.001, batch 64, 5 epochs, the rate cut to a
#   tenth for the fifth epoch >= 0.91
# The accuracy is the "final" line of --metrics, not the best epoch.
# The bars, from the same recipes measured here:
#   mlp: nsplit 0.8944 (seed 1); PyTorch 1.13 0.8918 (seed 1).
#   cnn: with the step, 0.9128, 0.9128, 0.9149, 0.9150, 0.9160, 0.9160 (seeds 1-6, one thread);
#   0.9122, 0.9134, 0.9163 (seeds 1-3, two threads, as here); PyTorch 0.9080 and 0.9044 (seeds
#   1, 2; its default initialisation is smaller than nsplit's He-uniform).
#   At constant lr nsplit gave 0.9017 (seed 1) and PyTorch 0.896 and 0.904 (seeds 1, 2); a cosine
#   decay 0.9072-0.9120 (seeds 1-4), straddling 0.91; cutting after epoch 3 instead of 4, 0.909.
#   The fifth epoch at a tenth of the rate settles what four epochs at full rate fitted.
set -euo pipefail

NSPLIT=${1:?usage: accuracy.sh NSPLIT_BINARY mlp|cnn|mlp-peers4|mlp-fast-stale1 [DATA_DIR]}
CASE=${2:?usage: accuracy.sh NSPLIT_BINARY mlp|cnn|mlp-peers4|mlp-fast-stale1 [DATA_DIR]}
peers=1
DATA=${3:-${NSPLIT_DATA:-/usr/share/datasets/fashion-mnist}}

case "$CASE" in
mlp)
	want=0.885
	args=(--model mlp:784-512-256-10 --epochs 10 --batch 64 --optimizer sgd --lr 0.02
		--lr-schedule cosine --momentum 0.9 --seed 1)
	;;
mlp-peers4)
	want=0.885
	peers=4
	args=(--model mlp:784-512-256-10 --epochs 10 --batch 64 --optimizer sgd --lr 0.02
		--lr-schedule cosine --momentum 0.9 --seed 1)
	;;
mlp-fast-stale1)
	want=0.88
	peers=4
	args=(--model mlp:784-512-256-10 --epochs 10 --batch 64 --optimizer sgd --lr 0.02
		--lr-schedule cosine --momentum 0.9 --seed 1 --schedule fast --staleness 1)
	;;
cnn)
	want=0.91
	args=(--model "conv:32x3x3,relu,maxpool:2,conv:64x3x3,relu,maxpool:2,flatten,dense:128,relu,dense:10"
		--epochs 5 --batch 64 --optimizer adam --lr 0.001 --lr-schedule step --lr-step 4 --lr-gamma 0.1
		--seed 1)
	;;
*)
	echo "accuracy.sh: unknown case '$CASE' (mlp, cnn, mlp-peers4 or mlp-fast-stale1)" >&2
	exit 2
	;;
esac

# shellcheck source=tests/need_data.sh
source "$(dirname "$0")/need_data.sh"
nsl_need_data "$DATA"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/nsl-accuracy.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
metrics="$tmp/metrics.jsonl"

cmd=("$NSPLIT" train --peers "$peers" --data "$DATA" "${args[@]}" --metrics "$metrics" --no-progress)
echo "$ ${cmd[*]}"
start=$SECONDS
"${cmd[@]}"
echo "accuracy.sh: $CASE trained in $((SECONDS - start)) s"

/usr/bin/python3 - "$metrics" "$want" "$CASE" <<'PYEOF'
import json
import sys

path, want, case = sys.argv[1], float(sys.argv[2]), sys.argv[3]
final = None
with open(path) as f:
    for line in f:
        line = line.strip()
        if not line:
            continue
        rec = json.loads(line)
        if rec.get("event") == "epoch":
            print(f"  epoch {rec.get('epoch')}: loss {rec.get('loss')}, "
                  f"test_acc {rec.get('test_acc')}, {rec.get('samples_per_s')} samples/s")
        elif rec.get("event") == "final":
            final = rec
if final is None or final.get("test_acc") is None:
    print(f"FAIL: {case}: no final line with test_acc in {path}")
    sys.exit(1)
acc = float(final["test_acc"])
verdict = "ok" if acc >= want else "FAIL"
print(f"{verdict}: {case}: final test accuracy {acc:.4f} (needs >= {want}), "
      f"wall {final.get('wall_s')} s")
sys.exit(0 if acc >= want else 1)
PYEOF
