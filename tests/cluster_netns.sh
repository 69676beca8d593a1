#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# usage: cluster_netns.sh NSPLIT_BINARY [DATA_DIR]
# The multi-host test: 3 peers in 3 network namespaces, each on net_af_packet over a veth, joined
# by a bridge in a fourth namespace whose nftables bridge table drops 2% of forwarded frames at
# random (this kernel has no tc netem). They train the MLP with --schedule 1f1b for one epoch of
# 6,000 samples and must write the weights that 3 peers in one process write without any loss.
# Needs root, network namespaces and nftables: skips (77) without them, fails instead when CI=true.
set -euo pipefail

NSPLIT=$(realpath "${1:?usage: cluster_netns.sh NSPLIT_BINARY [DATA_DIR]}")
DATA=${2:-${NSPLIT_DATA:-/usr/share/datasets/fashion-mnist}}
HERE=$(dirname "$0")

skip() {
	echo "cluster_netns.sh: SKIP: $*" >&2
	if [[ "${CI:-}" == true ]]; then
		echo "cluster_netns.sh: CI=true, so a skip is a failure" >&2
		exit 1
	fi
	exit 77
}

# shellcheck source=tests/need_data.sh
source "$HERE/need_data.sh"
nsl_need_data "$DATA"
((EUID == 0)) || skip "needs root for network namespaces (run as root)"
command -v ip >/dev/null || skip "no 'ip' command (Debian package iproute2; scripts/deps.sh installs it)"
command -v nft >/dev/null || skip "no 'nft' command (Debian package nftables; scripts/deps.sh installs it)"

id=$$
nbr=nsl-cbr-$id
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nsl-cnetns.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	for i in 0 1 2; do ip netns del "nsl-c$i-$id" 2>/dev/null || true; done
	ip netns del "$nbr" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

ip netns add "$nbr" 2>"$tmp/err" || skip "cannot create a network namespace: $(cat "$tmp/err")"
ip -n "$nbr" link add br0 type bridge
ip -n "$nbr" link set br0 up
{
	echo "; 3 peers in namespaces nsl-c{0,1,2}-$id, on a bridge that loses 2% of frames"
	echo "[job]"
	echo "model = mlp:784-512-256-10"
	echo "schedule = 1f1b"
	echo "micro-batch = 8"
} >"$tmp/cluster.ini"
for i in 0 1 2; do
	ns=nsl-c$i-$id
	mac=02:00:00:00:0$i:01
	ip netns add "$ns"
	ip link add "v$i-$id" netns "$ns" type veth peer name "p$i-$id" netns "$nbr"
	ip -n "$ns" link set "v$i-$id" address "$mac"
	ip -n "$ns" link set "v$i-$id" up
	ip -n "$nbr" link set "p$i-$id" master br0
	ip -n "$nbr" link set "p$i-$id" up
	printf '[peer%d]\nport = net_af_packet0,iface=v%d-%s\nmac = %s\nip = 10.77.0.%d\n' "$i" "$i" "$id" "$mac" $((i + 1)) \
		>>"$tmp/cluster.ini"
done
ip netns exec "$nbr" nft -f - <<EOF 2>"$tmp/err" || skip "nftables refused the bridge table: $(cat "$tmp/err")"
table bridge nsl_loss {
	chain forward {
		type filter hook forward priority 0; policy accept;
		numgen random mod 100 < 2 counter drop
	}
}
EOF

COMMON=(--data "$DATA" --epochs 1 --limit-samples 6000 --batch 64 --seed 1 --threads 1 --no-progress --no-eval)
for i in 0 1 2; do
	ip netns exec "nsl-c$i-$id" "$NSPLIT" train --cluster "$tmp/cluster.ini" --rank "$i" "${COMMON[@]}" \
		--save-weights "$tmp/netns.st" >"$tmp/peer$i.log" 2>&1 &
	pids+=($!)
done
rc=0
for i in 0 1 2; do
	wait "${pids[i]}" || {
		echo "FAIL: peer $i exited non-zero:"
		tail -n 20 "$tmp/peer$i.log"
		rc=1
	}
done
pids=()
echo "--- peer 0:"
cat "$tmp/peer0.log"
echo "--- bridge drops:"
ip netns exec "$nbr" nft list table bridge nsl_loss | grep counter || true
((rc == 0)) || exit 1
grep -Eq "retransmits [1-9]" "$tmp/peer0.log" "$tmp/peer1.log" "$tmp/peer2.log" || {
	echo "FAIL: no peer retransmitted anything: did the bridge drop frames?"
	exit 1
}
"$NSPLIT" train --peers 3 --model mlp:784-512-256-10 --schedule 1f1b --micro-batch 8 "${COMMON[@]}" \
	--save-weights "$tmp/ring.st" >"$tmp/ring.log" 2>&1 || {
	echo "FAIL: nsplit train --peers 3 exited non-zero:"
	tail -n 20 "$tmp/ring.log"
	exit 1
}
/usr/bin/python3 "$HERE/compare_weights.py" "$tmp/ring.st" "$tmp/netns.st" 0 || {
	echo "FAIL: 3 peers over a lossy bridge wrote other weights than 3 peers in one process"
	exit 1
}
echo "ok: 3 peers in 3 namespaces over af_packet, 2% of frames dropped, same weights as without loss"
