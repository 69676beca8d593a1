#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# usage: link_netns.sh NSPLIT_BINARY
# Two peers in two network namespaces, each on net_af_packet over a veth, joined by a bridge in a
# third namespace whose nftables bridge table drops 5% of forwarded frames at random (this kernel
# has no tc netem); nsplit's own receive injector also duplicates, reorders and corrupts frames.
# Peer 0 sends 200 messages of seeded random sizes up to 256 KiB; peer 1 checks every byte.
# Needs root, network namespaces and nftables: skips (77) without them, fails instead when CI=true.
set -euo pipefail

NSPLIT=$(realpath "${1:?usage: link_netns.sh NSPLIT_BINARY}")

skip() {
	echo "link_netns.sh: SKIP: $*" >&2
	if [[ "${CI:-}" == true ]]; then
		echo "link_netns.sh: CI=true, so a skip is a failure" >&2
		exit 1
	fi
	exit 77
}

((EUID == 0)) || skip "needs root for network namespaces (run as root)"
command -v ip >/dev/null || skip "no 'ip' command (Debian package iproute2; scripts/deps.sh installs it)"
command -v nft >/dev/null || skip "no 'nft' command (Debian package nftables; scripts/deps.sh installs it)"

id=$$
na=nsl-a-$id nb=nsl-b-$id nbr=nsl-br-$id
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nsl-netns.XXXXXX")
rx_pid=""
cleanup() {
	[[ -z "$rx_pid" ]] || kill "$rx_pid" 2>/dev/null || true
	for n in "$na" "$nb" "$nbr"; do
		ip netns del "$n" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

ip netns add "$na" 2>"$tmp/err" || skip "cannot create a network namespace: $(cat "$tmp/err")"
ip netns add "$nb"
ip netns add "$nbr"
ip link add "va$id" netns "$na" type veth peer name "pa$id" netns "$nbr"
ip link add "vb$id" netns "$nb" type veth peer name "pb$id" netns "$nbr"
ip -n "$nbr" link add br0 type bridge
for p in "pa$id" "pb$id"; do
	ip -n "$nbr" link set "$p" master br0
	ip -n "$nbr" link set "$p" up
done
ip -n "$nbr" link set br0 up
ip -n "$na" link set "va$id" up
ip -n "$nb" link set "vb$id" up
ip netns exec "$nbr" nft -f - <<EOF 2>"$tmp/err" || skip "nftables refused the bridge table: $(cat "$tmp/err")"
table bridge nsl_loss {
	chain forward {
		type filter hook forward priority 0; policy accept;
		numgen random mod 100 < 5 counter drop
	}
}
EOF

common=(--count 200 --size 256K --random-sizes --seed 5 --deadline 300 --peer-timeout 20000)
ip netns exec "$nb" "$NSPLIT" link --self 1 --port "net_af_packet0,iface=vb$id" "${common[@]}" \
	--faults dup=2,reorder=32,corrupt=1,seed=11 -- --file-prefix "nsl-netns-b-$id" >"$tmp/rx.log" 2>&1 &
rx_pid=$!
rc=0
ip netns exec "$na" "$NSPLIT" link --self 0 --port "net_af_packet0,iface=va$id" "${common[@]}" \
	--faults dup=2,reorder=32,corrupt=1,seed=12 -- --file-prefix "nsl-netns-a-$id" || rc=$?
wait "$rx_pid" || rc=$?
rx_pid=""
echo "--- receiver (peer 1):"
cat "$tmp/rx.log"
echo "--- bridge drops:"
ip netns exec "$nbr" nft list table bridge nsl_loss | grep counter || true
grep -q "peer 1 received 200 messages" "$tmp/rx.log" || {
	echo "link_netns.sh: peer 1 did not receive all 200 messages intact" >&2
	rc=1
}
exit "$rc"
