#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# usage: cluster_memif.sh NSPLIT_BINARY [DATA_DIR]
# Peers as separate processes on one host, joined by memif:
#  1. equivalence: `nsplit launch --peers 3` writes the weights of `nsplit train --peers 3` (one
#     process, net_ring) bitwise, and those of the single-peer reference replaying the 3-peer
#     sample sequence: MLP under 1f1b and gpipe, CNN (adam) under 1f1b, cuts at odd places,
#     one epoch of 6,000 samples, one compute thread per peer
#     and Fast N-split (4 peers, pools 2:2, staleness 1) over a mesh of memif connections (every
#     pair of peers joined: forward and backward roles message each other all to all)
#  2. hello: a peer started with another batch size is refused, and the message says so
#  3. failure: killing one of 3 peers mid-round makes the other two exit non-zero within 2 s,
#     naming the lost peer and the last round completed
# memif needs no root on its own, but DPDK's runtime folders here are root's: skips (77) as
# another user, fails instead when CI=true.
set -euo pipefail

NSPLIT=$(realpath "${1:?usage: cluster_memif.sh NSPLIT_BINARY [DATA_DIR]}")
DATA=${2:-${NSPLIT_DATA:-/usr/share/datasets/fashion-mnist}}
HERE=$(dirname "$0")

# shellcheck source=tests/need_data.sh
source "$HERE/need_data.sh"
# shellcheck source=tests/weights.sh
source "$HERE/weights.sh"
nsl_need_data "$DATA"
if ((EUID != 0)); then
	echo "SKIP: cluster_memif.sh runs DPDK processes that need root here"
	[[ "${CI:-}" == true ]] && exit 1
	exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/nsl-cluster.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT
failed=0
COMMON=(--data "$DATA" --epochs 1 --limit-samples 6000 --batch 64 --seed 1 --threads 1 --no-progress)

train() { # out command args...
	local out=$1
	shift
	"$NSPLIT" "$@" "${COMMON[@]}" --no-eval --save-weights "$out" >"$out.log" 2>&1 || {
		echo "FAIL: nsplit $* exited non-zero:"
		tail -n 20 "$out.log"
		failed=1
		return 1
	}
}

echo "== 1. three processes over memif, against one process and the reference"
cases=("mlp-1f1b|--model $MLP --split 1,4 --schedule 1f1b --micro-batch 10 --optimizer sgd --lr 0.02 --momentum 0.9"
	"mlp-gpipe|--model $MLP --split 3,4 --schedule gpipe --micro-batch 10 --optimizer sgd --lr 0.02 --momentum 0.9"
	"cnn-1f1b|--model $CNN --split 2,7 --schedule 1f1b --micro-batch 16 --optimizer adam --lr 0.001")
for c in "${cases[@]}"; do
	name=${c%%|*}
	read -r -a opts <<<"${c#*|}"
	train "$tmp/$name-launch.st" launch --peers 3 --transport memif "${opts[@]}" || continue
	train "$tmp/$name-ring.st" train --peers 3 "${opts[@]}" || continue
	nsl_check_weights "$name: 3 processes over memif = 3 peers in one process" "$tmp/$name-ring.st" "$tmp/$name-launch.st"
	ref=()
	for ((i = 0; i < ${#opts[@]}; i++)); do
		case ${opts[i]} in
		--split | --schedule) ((i++)) || true ;;
		*) ref+=("${opts[i]}") ;;
		esac
	done
	train "$tmp/$name-ref.st" train --peers 1 --replay-peers 3 "${ref[@]}" || continue
	nsl_check_weights "$name: 3 processes over memif = reference replaying their samples" "$tmp/$name-ref.st" "$tmp/$name-launch.st"
done
FAST=(--model "$MLP" --schedule fast --pools 2:2 --staleness 1 --micro-batch 16 --optimizer sgd --lr 0.02 --momentum 0.9)
if train "$tmp/fast-launch.st" launch --peers 4 --transport memif "${FAST[@]}" &&
	train "$tmp/fast-ring.st" train --peers 4 "${FAST[@]}"; then
	nsl_check_weights "fast 2:2: 4 processes over a memif mesh = 4 peers in one process" "$tmp/fast-ring.st" \
		"$tmp/fast-launch.st"
	# Peer 0 (a forward role) talks to peer 2, no ring neighbour of it, over their own connection.
	awk '/^peer 0: copied/ { own = 1; next } /^[^ ]/ { own = 0 } own' "$tmp/fast-launch.st.log" |
		grep -q "to/from peer 2: msgs [1-9]" || {
		echo "FAIL: peer 0 of the Fast N-split job exchanged no messages with peer 2"
		failed=1
	}
fi
grep -q "peer 1: copied by nsplit: 0 B on send" "$tmp/mlp-1f1b-launch.st.log" || {
	echo "FAIL: peer 1 did not report its link counters (or copied on send)"
	failed=1
}
grep -q "^port net_memif" "$tmp/mlp-1f1b-launch.st.log" || {
	echo "FAIL: no port extended statistics at exit"
	failed=1
}

# A ring of memif links for peers started by hand.
cluster() { # file peers
	local n=$2
	{
		echo "[job]"
		for ((i = 0; i < n; i++)); do
			echo "[peer$i]"
			if ((n == 2)); then
				role=$([[ $i == 0 ]] && echo server || echo client)
				echo "port-next = net_memif0,role=$role,socket=$tmp/l$n-0.sock,socket-abstract=no"
			else
				echo "port-next = net_memif0,role=server,socket=$tmp/l$n-$i.sock,socket-abstract=no"
				echo "port-prev = net_memif1,role=client,socket=$tmp/l$n-$(((i + n - 1) % n)).sock,socket-abstract=no"
			fi
		done
	} >"$1"
}

echo "== 2. a peer with another configuration is refused"
cluster "$tmp/two.ini" 2
"$NSPLIT" train --cluster "$tmp/two.ini" --rank 0 "${COMMON[@]}" --model "$MLP" >"$tmp/h0.log" 2>&1 &
pids=($!)
rc1=0
"$NSPLIT" train --cluster "$tmp/two.ini" --rank 1 "${COMMON[@]}" --model "$MLP" --batch 32 >"$tmp/h1.log" 2>&1 || rc1=$?
rc0=0
wait "${pids[0]}" || rc0=$?
pids=()
cat "$tmp/h0.log" "$tmp/h1.log" | grep "nsplit train:" || true
if ((rc0 == 0 || rc1 == 0)) || ! grep -q "another configuration: .*batch is" "$tmp/h0.log" "$tmp/h1.log"; then
	echo "FAIL: peers of different batch sizes were not both refused with the difference named (exit $rc0, $rc1)"
	failed=1
else
	echo "ok: different configurations refused, naming the batch size"
fi

echo "== 3. a peer killed mid-round stops the others within 2 s"
cluster "$tmp/three.ini" 3
for r in 0 1 2; do
	"$NSPLIT" train --cluster "$tmp/three.ini" --rank "$r" "${COMMON[@]}" --model "$MLP" --limit-samples 60000 \
		--epochs 50 --no-eval >"$tmp/f$r.log" 2>&1 &
	pids+=($!)
done
# Well into training (a round of 20,000 samples takes about a second here), then no warning.
sleep 4
victim=${pids[1]}
kill -0 "$victim" || {
	echo "FAIL: peer 1 ended before it could be killed:"
	tail -n 5 "$tmp/f1.log"
	failed=1
}
kill -9 "$victim"
t0=$(date +%s%N)
for r in 0 2; do
	rc=0
	wait "${pids[r]}" || rc=$?
	ms=$((($(date +%s%N) - t0) / 1000000))
	msg=$(grep "nsplit train:" "$tmp/f$r.log" || true)
	echo "peer $r: exit $rc after $ms ms: $msg"
	if ((rc == 0 || ms > 2000)) || ! grep -q "peer 1 was lost" <<<"$msg" || ! grep -q "last round completed was" <<<"$msg"; then
		echo "FAIL: peer $r did not stop within 2 s naming peer 1 and the last round"
		tail -n 5 "$tmp/f$r.log"
		failed=1
	fi
done
pids=()
# A killed process leaves its DPDK runtime folder behind.
rm -rf "/var/run/dpdk/nsplit-$victim-"*
exit "$failed"
