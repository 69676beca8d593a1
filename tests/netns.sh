# SPDX-License-Identifier: BSD-3-Clause
# Sourced by the tests that run peers in network namespaces: a bridge in a namespace of its own
# that drops a share of the frames it forwards (nftables; this kernel has no tc netem), and
# peers' namespaces joined to it by veth pairs. Needs root, iproute2 and nftables: without them
# the test skips (77), or fails when CI=true. The caller's EXIT trap should call nsl_netns_cleanup.
#   nsl_netns_require NAME            check the tools (NAME says who skips)
#   nsl_netns_bridge BRIDGE_NS PCT    the bridge namespace, br0 up, dropping PCT% of frames
#   nsl_netns_join BRIDGE_NS NS IF [MAC]  namespace NS with interface IF (MAC given or random) on br0
#   nsl_netns_drops BRIDGE_NS         the drop rule's counter line
#   nsl_netns_cleanup                 delete every namespace made here
nsl_netns_made=()

nsl_netns_skip() {
	echo "$nsl_netns_who: SKIP: $*" >&2
	if [[ "${CI:-}" == true ]]; then
		echo "$nsl_netns_who: CI=true, so a skip is a failure" >&2
		exit 1
	fi
	exit 77
}

nsl_netns_require() {
	nsl_netns_who=$1
	((EUID == 0)) || nsl_netns_skip "needs root for network namespaces (run as root)"
	command -v ip >/dev/null || nsl_netns_skip "no 'ip' command (Debian package iproute2; scripts/deps.sh installs it)"
	command -v nft >/dev/null || nsl_netns_skip "no 'nft' command (Debian package nftables; scripts/deps.sh installs it)"
}

nsl_netns_bridge() {
	local br=$1 pct=$2 err
	err=$(ip netns add "$br" 2>&1) || nsl_netns_skip "cannot create a network namespace: $err"
	nsl_netns_made+=("$br")
	ip -n "$br" link add br0 type bridge
	ip -n "$br" link set br0 up
	err=$(ip netns exec "$br" nft -f - 2>&1 <<NFT) || nsl_netns_skip "nftables refused the bridge table: $err"
table bridge nsl_loss {
	chain forward {
		type filter hook forward priority 0; policy accept;
		numgen random mod 100 < $pct counter drop
	}
}
NFT
}

nsl_netns_join() {
	local br=$1 ns=$2 ifname=$3 mac=${4:-} port="p$RANDOM$RANDOM"
	ip netns add "$ns"
	nsl_netns_made+=("$ns")
	ip link add "$ifname" netns "$ns" type veth peer name "$port" netns "$br"
	[[ -z "$mac" ]] || ip -n "$ns" link set "$ifname" address "$mac"
	ip -n "$ns" link set "$ifname" up
	ip -n "$br" link set "$port" master br0
	ip -n "$br" link set "$port" up
}

nsl_netns_drops() {
	ip netns exec "$1" nft list table bridge nsl_loss | grep counter || true
}

nsl_netns_cleanup() {
	for n in "${nsl_netns_made[@]}"; do
		ip netns del "$n" 2>/dev/null || true
	done
}
