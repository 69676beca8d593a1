#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Bad input from a user or a file gives a clear message and a non-zero exit, never a crash.
set -uo pipefail
nsplit=${1:?usage: cli_errors.sh path/to/nsplit}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0

# expect EXIT_CODE "message fragment" -- command...
expect() {
	local code=$1 fragment=$2
	shift 3
	local out rc
	out=$("$@" 2>&1)
	rc=$?
	if [[ $rc -ne $code ]] || [[ "$out" != *"$fragment"* ]]; then
		echo "FAIL: $* -> exit $rc (want $code), output:"
		echo "$out" | sed 's/^/    /' | head -5
		echo "    (wanted a message containing: $fragment)"
		failures=$((failures + 1))
	else
		echo "ok: $* -> $code, \"$fragment\""
	fi
}

expect 2 'unknown command "fly"' -- "$nsplit" fly
expect 2 'usage: nsplit' -- "$nsplit"
expect 0 '--lr-schedule' -- "$nsplit" train --help
expect 2 '--batch: "0"' -- "$nsplit" train --batch 0
expect 2 '--lr: "fast"' -- "$nsplit" train --lr fast
expect 2 'unexpected argument' -- "$nsplit" train stray
expect 1 'unknown optimizer "lamb"' -- "$nsplit" train --optimizer lamb --cache "$work/c" --epochs 1 --limit-samples 100
expect 1 'layer 1: unknown layer "softmax"' -- "$nsplit" train --model dense:10,softmax --cache "$work/c" --epochs 1 --limit-samples 100
expect 1 'does not match' -- "$nsplit" train --model mlp:100-10 --cache "$work/c" --epochs 1 --limit-samples 100
expect 1 '--split 2 makes 2 stages where 4 are wanted' -- "$nsplit" train --peers 4 --split 2 --cache "$work/c" --epochs 1 --limit-samples 400
expect 2 'give nsplit, gpipe, 1f1b or fast' -- "$nsplit" train --peers 2 --schedule zb
expect 2 '--replay-peers is for one peer' -- "$nsplit" train --peers 2 --replay-peers 2
printf '[job]\n[peer0]\nport = net_null0\n[peer1]\nport = net_null1\n' >"$work/two.ini"
printf '[job]\nbatch = 0\n[peer0]\nport = net_null0\n[peer1]\nport = net_null1\n' >"$work/badjob.ini"
printf '[job]\npeers = 3\n[peer0]\nport = net_null0\n[peer1]\nport = net_null1\n' >"$work/peers.ini"
printf '[peer0]\nport = net_null0\n[peer1]\nmac = 02:00:00:00:00:zz\nport = x\n' >"$work/mac.ini"
printf '[peer0]\nport = net_null0\n[peer2]\nport = net_null1\n' >"$work/gap.ini"
printf '[peer0]\nport = net_null0\n[peer1]\nmem-limit = lots\nport = x\n' >"$work/mem.ini"
expect 1 'cannot read it as an INI file' -- "$nsplit" train --cluster "$work/none.ini" --rank 0
expect 1 'needs this peer'"'"'s rank' -- env -u SLURM_PROCID -u OMPI_COMM_WORLD_RANK -u PMI_RANK "$nsplit" train --cluster "$work/two.ini"
expect 1 'rank from SLURM_PROCID' -- env SLURM_PROCID=7 "$nsplit" train --cluster "$work/two.ini"
expect 2 'in [job] of' -- "$nsplit" train --cluster "$work/badjob.ini" --rank 0
expect 1 '[job] peers' -- "$nsplit" train --cluster "$work/peers.ini" --rank 0
expect 1 'is not a MAC address' -- "$nsplit" train --cluster "$work/mac.ini" --rank 0
expect 1 'no [peer1]' -- "$nsplit" train --cluster "$work/gap.ini" --rank 0
expect 1 'is not a size' -- "$nsplit" train --cluster "$work/mem.ini" --rank 0
expect 2 'but '"$work"'/two.ini describes 2 peers' -- "$nsplit" train --cluster "$work/two.ini" --rank 0 --peers 3
printf '[peer0]\nport-to-1 = net_null0\n[peer1]\nport-to-0 = net_null1\nport-to-1 = net_null2\n' >"$work/meshself.ini"
printf '[peer0]\nport-to-1 = net_null0\n[peer1]\nport-to-0 = net_null1\n[peer2]\nport-to-0 = net_null2\n' >"$work/meshgap.ini"
printf '[peer0]\nport-to-1 = net_null0\n[peer1]\nport = net_null1\n' >"$work/meshmix.ini"
printf '[peer0]\nport = net_null0\nport-to-1 = net_null1\n[peer1]\nport = net_null1\n' >"$work/meshboth.ini"
expect 1 'port-to-1: a mesh names its ports port-to-Q, Q another peer (0 to 1)' -- "$nsplit" train --cluster "$work/meshself.ini" --rank 0
expect 1 '[peer0] is in a mesh but has no port-to-2' -- "$nsplit" train --cluster "$work/meshgap.ini" --rank 0
expect 1 '[peer0] is in a mesh (port-to-Q) and [peer1] is not' -- "$nsplit" train --cluster "$work/meshmix.ini" --rank 0
expect 1 '[peer0] mixes port, port-next/port-prev and port-to-Q' -- "$nsplit" train --cluster "$work/meshboth.ini" --rank 0
expect 2 'give --peers 9 or fewer' -- "$nsplit" launch --peers 10 --schedule fast
expect 2 'give --peers N' -- "$nsplit" launch
expect 2 'memif is the transport' -- "$nsplit" launch --peers 2 --transport ring
expect 2 'is the launcher' -- "$nsplit" launch --peers 2 --rank 1
# Memory budgets: a job that does not fit is refused before training, naming peer, stage, bytes.
expect 1 'peer 0 cannot hold stage 1 (layers 0-0): it needs 13.1 MiB' -- "$nsplit" train --peers 4 --mem-limit 2M --cache "$work/c" --epochs 1 --limit-samples 400
expect 2 '--mem-limit: "lots" is not a size' -- "$nsplit" train --peers 4 --mem-limit lots
expect 1 '--pools 2:3 for 4 peers: the pools must add up to --peers' -- "$nsplit" train --peers 4 --schedule fast --pools 2:3 --cache "$work/c" --epochs 1 --limit-samples 400
expect 2 '--pools: "3" is not F:B' -- "$nsplit" train --peers 4 --schedule fast --pools 3
expect 1 'one peer takes --staleness alone' -- "$nsplit" train --pools 1:1 --cache "$work/c" --epochs 1 --limit-samples 400
expect 1 'are Fast N-split'"'"'s: add --schedule fast' -- "$nsplit" train --peers 4 --staleness 1 --cache "$work/c" --epochs 1 --limit-samples 400
expect 1 '--schedule fast takes --split-fwd and --split-bwd' -- "$nsplit" train --peers 4 --schedule fast --split 2,3,4 --cache "$work/c" --epochs 1 --limit-samples 400
expect 1 '--split-bwd 2 makes 2 stages where 3 are wanted' -- "$nsplit" train --peers 4 --schedule fast --pools 1:3 --split-bwd 2 --cache "$work/c" --epochs 1 --limit-samples 400
expect 1 'peer 0 cannot hold forward stage 1 (layers 0-4)' -- "$nsplit" train --peers 4 --schedule fast --pools 1:3 --split-bwd 1,3 --mem-limit 3M --cache "$work/c" --epochs 1 --limit-samples 400
expect 1 "no Fast N-split fits peer 0's budget of 3145728 bytes; the smallest budget every peer needs is" -- "$nsplit" train --peers 4 --schedule fast --mem-limit 3M --cache "$work/c" --epochs 1 --limit-samples 400
printf '[job]\nmodel = mlp:784-512-256-10\n[peer0]\nport = net_null0\n[peer1]\nport = net_null1\nmem-limit = 3M\n' >"$work/budget.ini"
expect 1 'peer 1 cannot hold stage 1 (layers 0-1)' -- "$nsplit" train --cluster "$work/budget.ini" --rank 0 --cache "$work/c" --epochs 1 --limit-samples 400
expect 1 'and its budget is 3.0 MiB (mem-limit in the cluster file' -- "$nsplit" train --cluster "$work/budget.ini" --rank 0 --cache "$work/c" --epochs 1 --limit-samples 400
# Profile and plan: a cost file measured here plans; bad plans and cost files are refused.
expect 0 'cost file written to' -- "$nsplit" profile --model mlp:784-64-32-10 --batch 32 --out "$work/cost.json"
expect 0 'predicted:' -- "$nsplit" plan --cost "$work/cost.json" --model mlp:784-64-32-10 --peers 2
expect 0 '"split":[' -- "$nsplit" plan --cost "$work/cost.json" --model mlp:784-64-32-10 --peers 3 --schedule nsplit --json
expect 1 'smallest budget every peer needs is' -- "$nsplit" plan --cost "$work/cost.json" --model mlp:784-64-32-10 --peers 2 --mem-limit 10K
expect 2 'give --cost FILE' -- "$nsplit" plan --peers 2
expect 1 'was measured for model dense:64,relu,dense:32,relu,dense:10' -- "$nsplit" plan --cost "$work/cost.json" --peers 2
printf '{"format": "nsplit-cost 1", "model": "dense:64,relu,dense:32,relu,dense:10", "layers": [' >"$work/bad.json"
expect 1 'line 1:' -- "$nsplit" plan --cost "$work/bad.json" --model mlp:784-64-32-10
sed 's/"layer": 4,/"layer": 9,/' "$work/cost.json" >"$work/nine.json"
expect 1 'names layer 9, which does not exist' -- "$nsplit" plan --cost "$work/nine.json" --model mlp:784-64-32-10
sed 's/"kind": "relu"/"kind": "gelu"/' "$work/cost.json" >"$work/kind.json"
expect 1 'is gelu there, relu in the model' -- "$nsplit" plan --cost "$work/kind.json" --model mlp:784-64-32-10
expect 0 "the planner's split" -- "$nsplit" train --peers 2 --split auto --cost "$work/cost.json" --model mlp:784-64-32-10 --cache "$work/c" --epochs 1 --limit-samples 400 --no-eval --no-progress
expect 1 'needs --cost FILE' -- "$nsplit" train --cluster "$work/two.ini" --rank 0 --split auto --model mlp:784-64-32-10 --cache "$work/c" --epochs 1 --limit-samples 400
# --split auto in a cluster plans for the file's peers: a budget of its own reaches the planner.
printf '[peer0]\nport = net_null0\n[peer1]\nport = net_null1\nmem-limit = 40K\n[peer2]\nport = net_null2\n' >"$work/tight.ini"
printf '[peer0]\nport = net_null0\n[peer1]\nport = net_null1\nspeed = 4\n[peer2]\nport = net_null2\n' >"$work/fast-peer.ini"
expect 1 "no split into 3 stages fits peer 1's budget of 40960 bytes" -- "$nsplit" train --cluster "$work/tight.ini" --rank 0 --split auto --cost "$work/cost.json" --model mlp:784-64-32-10 --cache "$work/c" --epochs 1 --limit-samples 400 --dump-schedule
expect 0 "the cluster file's peers in their order" -- "$nsplit" train --cluster "$work/fast-peer.ini" --rank 0 --split auto --cost "$work/cost.json" --model mlp:784-64-32-10 --cache "$work/c" --epochs 1 --limit-samples 400 --dump-schedule
expect 0 'samples/s; utilisation' -- "$nsplit" simulate --cost "$work/cost.json" --model mlp:784-64-32-10 --peers 2 --batch 32 --samples 640
expect 0 '"bubble":' -- "$nsplit" simulate --cost "$work/cost.json" --model mlp:784-64-32-10 --peers 3 --split even --schedule gpipe --batch 32 --samples 640 --cores 1 --json
expect 0 'trace written to' -- "$nsplit" simulate --cost "$work/cost.json" --model mlp:784-64-32-10 --peers 2 --batch 32 --samples 640 --trace "$work/sim.json"
expect 2 'give --cost FILE' -- "$nsplit" simulate --peers 2
expect 1 '--split 2 makes 2 stages where 3 are wanted' -- "$nsplit" simulate --cost "$work/cost.json" --model mlp:784-64-32-10 --peers 3 --split 2
expect 0 '"pools":[' -- "$nsplit" plan --cost "$work/cost.json" --model mlp:784-64-32-10 --peers 3 --schedule fast --json
"$nsplit" plan --cost "$work/cost.json" --model mlp:784-64-32-10 --peers 3 --schedule fast --pools 1:2 --json >"$work/plan.json"
expect 0 'samples/s; utilisation' -- "$nsplit" simulate --cost "$work/cost.json" --plan "$work/plan.json" --batch 32 --samples 640
expect 0 'recomputing' -- "$nsplit" simulate --cost "$work/cost.json" --model mlp:784-64-32-10 --peers 3 --schedule fast --split-fwd even --split-bwd 2 --pools 1:2 --batch 32 --samples 640
head -c 40 "$work/plan.json" >"$work/cut-plan.json"
expect 1 "$work/cut-plan.json: line 1" -- "$nsplit" simulate --cost "$work/cost.json" --plan "$work/cut-plan.json"
sed 's/"split_bwd":\[[0-9]*\]/"split_bwd":[7]/' "$work/plan.json" >"$work/seven-plan.json"
expect 1 'seven-plan.json: "split_bwd" cuts at layer 7, which does not exist' -- "$nsplit" simulate --cost "$work/cost.json" --plan "$work/seven-plan.json"
sed 's/"pools":\[1,2\]/"pools":[2,2]/' "$work/plan.json" >"$work/pools-plan.json"
expect 1 'pools-plan.json: "pools" must be [F, B]' -- "$nsplit" simulate --cost "$work/cost.json" --plan "$work/pools-plan.json"
expect 1 'plans model dense:64,relu,dense:32,relu,dense:10; this one is dense:32,relu,dense:10' -- "$nsplit" simulate --cost "$work/cost.json" --plan "$work/plan.json" --model mlp:784-32-10
printf '[peer0]\nport = x\nhost = a\ncores = 1\n[peer1]\nport = y\nhost = a\n[peer2]\nport = z\nspeed = 2\n[link1-2]\nbandwidth-gbps = 1\nlatency-us = 50\n' >"$work/hosts.ini"
expect 0 "the cluster file's hosts and links" -- "$nsplit" simulate --cost "$work/cost.json" --model mlp:784-64-32-10 --cluster "$work/hosts.ini" --batch 32 --samples 640
expect 0 'rotation order:' -- "$nsplit" plan --cost "$work/cost.json" --model mlp:784-64-32-10 --cluster "$work/hosts.ini" --schedule fast
# The shipped cluster files stay readable: each plans (its [job] is train's, not plan's, so
# only the peers and links are read).
for ini in "$(dirname "$0")"/../examples/*.ini; do
	expect 0 'rotation order:' -- "$nsplit" plan --cost "$work/cost.json" --model mlp:784-64-32-10 --cluster "$ini"
done
printf '[peer0]\nport = x\n[peer1]\nport = y\n[link0-5]\nbandwidth-gbps = 1\n' >"$work/link5.ini"
expect 1 'link5.ini: [link0-5] is not [linkA-B] for two of peers 0 to 1' -- "$nsplit" simulate --cost "$work/cost.json" --model mlp:784-64-32-10 --cluster "$work/link5.ini"
printf '[peer0]\nport = x\nhost = a\ncores = 2\n[peer1]\nport = y\nhost = a\ncores = 3\n' >"$work/cores.ini"
expect 1 '[peer1] says host a has 3 cores, another peer on it says 2' -- "$nsplit" plan --cost "$work/cost.json" --model mlp:784-64-32-10 --cluster "$work/cores.ini"
printf '[peer0]\nport = x\n[peer1]\nport = y\n[link0-1]\nbandwidth = 1\n' >"$work/linkkey.ini"
expect 1 '[link0-1] has an unknown key bandwidth (bandwidth-gbps, latency-us)' -- "$nsplit" plan --cost "$work/cost.json" --model mlp:784-64-32-10 --cluster "$work/linkkey.ini"
echo '{"peers": 2}' >"$work/notplan.json"
expect 1 'notplan.json: not a plan' -- "$nsplit" simulate --cost "$work/cost.json" --plan "$work/notplan.json"
echo '{"a": 1}' >"$work/other.json"
expect 1 'not an nsplit cost file' -- "$nsplit" plan --cost "$work/other.json" --model mlp:784-64-32-10
expect 1 'line 1: expected a value' -- "$nsplit" plan --cost "$work/two.ini" --model mlp:784-64-32-10
expect 1 'fewer samples than the 4 shards' -- "$nsplit" train --peers 4 --cache "$work/c" --limit-samples 3
expect 1 "$work/nothing" -- "$nsplit" train --data "$work/nothing" --cache "$work/c"
expect 1 'split' -- "$nsplit" train --split 9 --cache "$work/c" --epochs 1 --limit-samples 100
expect 2 '--weights FILE is required' -- "$nsplit" eval
expect 1 "$work/none.safetensors" -- "$nsplit" eval --weights "$work/none.safetensors"

# nsplit shard: usage errors, missing files named, equal parts that --shards accepts.
expect 2 '--out DIR is required' -- "$nsplit" shard --data /usr/share/datasets/fashion-mnist
expect 2 'either --data DIR or --images' -- "$nsplit" shard --out "$work/s"
expect 2 '--images and --labels go together' -- "$nsplit" shard --images x --out "$work/s"
expect 1 "$work/none-images" -- "$nsplit" shard --images "$work/none-images" --labels x --out "$work/s"
expect 1 "no train-images-idx3-ubyte" -- "$nsplit" shard --data "$work" --out "$work/s"
expect 0 '3 shard(s) of 20000 records' -- "$nsplit" shard --data /usr/share/datasets/fashion-mnist --out "$work/s3" --parts 3
expect 1 'no train-0-of-1.nsl' -- "$nsplit" train --shards "$work/s3" --epochs 1 --cache "$work/c"

# A test set whose samples differ from the training set's is refused, naming the file; a model
# that does not fit the data names the shard it was checked against.
/usr/bin/python3 - "$work/idx" <<'PYEOF'
import gzip, os, struct, sys
d = sys.argv[1]
os.makedirs(d, exist_ok=True)
for stem, n, side in (("train", 40, 28), ("t10k", 20, 10)):
    with gzip.open(f"{d}/{stem}-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, side, side) + bytes(n * side * side))
    with gzip.open(f"{d}/{stem}-labels-idx1-ubyte.gz", "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + bytes(i % 10 for i in range(n)))
PYEOF
"$nsplit" shard --data "$work/idx" --out "$work/mixed" >/dev/null || failures=$((failures + 1))
expect 1 "test.nsl: samples are 1x10x10, the model wants 1x28x28" -- "$nsplit" train --shards "$work/mixed" --epochs 1
expect 1 "train-0-of-1.nsl: model \"mlp:100-10\"" -- "$nsplit" train --shards "$work/mixed" --model mlp:100-10 --no-eval --epochs 1

# Weights of one model do not load into another; a truncated file is refused.
"$nsplit" train --model mlp:784-32-10 --epochs 1 --limit-samples 256 --no-eval --no-progress \
	--cache "$work/c" --save-weights "$work/w.safetensors" >/dev/null || failures=$((failures + 1))
expect 1 'weights are for model' -- "$nsplit" eval --weights "$work/w.safetensors" --model mlp:784-64-10 --cache "$work/c"
head -c 1000 "$work/w.safetensors" >"$work/cut.safetensors"
expect 1 'truncated' -- "$nsplit" eval --weights "$work/cut.safetensors" --cache "$work/c"

# A corrupted shard header in a --shards folder is named.
mkdir -p "$work/shards"
cp "$work"/c/*/train-0-of-1.nsl "$work/shards/" 2>/dev/null || cp "$work"/c/train-0-of-1.nsl "$work/shards/"
cp "$work"/c/*/test.nsl "$work/shards/" 2>/dev/null || cp "$work"/c/test.nsl "$work/shards/"
printf 'XXXX' | dd of="$work/shards/train-0-of-1.nsl" bs=1 seek=0 conv=notrunc status=none
expect 1 'train-0-of-1.nsl' -- "$nsplit" train --shards "$work/shards" --epochs 1 --cache "$work/c2"

if ((failures)); then
	echo "$failures case(s) failed"
	exit 1
fi
echo "all cases passed"
