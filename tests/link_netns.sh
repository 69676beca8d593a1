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

# shellcheck source=tests/netns.sh
source "$(dirname "$0")/netns.sh"
nsl_netns_require link_netns.sh

id=$$
na=nsl-a-$id nb=nsl-b-$id nbr=nsl-br-$id
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nsl-netns.XXXXXX")
rx_pid=""
cleanup() {
	[[ -z "$rx_pid" ]] || kill "$rx_pid" 2>/dev/null || true
	nsl_netns_cleanup
	rm -rf "$tmp"
}
trap cleanup EXIT

nsl_netns_bridge "$nbr" 5
nsl_netns_join "$nbr" "$na" "va$id"
nsl_netns_join "$nbr" "$nb" "vb$id"

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
nsl_netns_drops "$nbr"
grep -q "peer 1 received 200 messages" "$tmp/rx.log" || {
	echo "link_netns.sh: peer 1 did not receive all 200 messages intact" >&2
	rc=1
}
exit "$rc"
