#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# usage: link_memif.sh NSPLIT_BINARY
# Two processes, two EAL instances (--no-huge, a file prefix each), one memif link: peer 1 is
# the memif server and receives, peer 0 is the client and sends 1 GiB as 64 messages of 16 MiB;
# peer 1 checks every byte. Both must exit 0, and nothing may be left in /var/run/dpdk.
# memif runs in copy mode here: the client's zero-copy mode (zero-copy=yes with
# --single-file-segments) corrupted chained frames in our runs (the link's CRC caught it).
set -euo pipefail

NSPLIT=${1:?usage: link_memif.sh NSPLIT_BINARY}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nsl-memif.XXXXXX")
server_pid=""
cleanup() {
	[[ -z "$server_pid" ]] || kill "$server_pid" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

prefix=nsl-memif-$$
sock="$tmp/memif.sock"
common=(--count 64 --size 16M --deadline 300 --peer-timeout 20000)

"$NSPLIT" link --self 1 --port "net_memif0,role=server,socket=$sock" "${common[@]}" -- \
	--file-prefix "$prefix-server" >"$tmp/server.log" 2>&1 &
server_pid=$!
# The server makes the socket; the client would otherwise wait for it in its own retries.
for _ in $(seq 100); do
	[[ -S "$sock" ]] && break
	sleep 0.1
done
rc=0
"$NSPLIT" link --self 0 --port "net_memif0,role=client,socket=$sock" "${common[@]}" -- \
	--file-prefix "$prefix-client" || rc=$?
wait "$server_pid" || rc=$?
server_pid=""
echo "--- server (peer 1):"
cat "$tmp/server.log"
grep -q "peer 1 received 64 messages, 1073741824 bytes" "$tmp/server.log" || {
	echo "link_memif.sh: the server did not receive 1 GiB intact" >&2
	rc=1
}
left=$(ls -d /var/run/dpdk/"$prefix"-* "${XDG_RUNTIME_DIR:-/nonexistent}"/dpdk/"$prefix"-* 2>/dev/null || true)
if [[ -n "$left" ]]; then
	echo "link_memif.sh: EAL runtime folders left behind: $left" >&2
	rc=1
fi
exit "$rc"
