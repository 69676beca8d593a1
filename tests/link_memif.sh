#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# usage: link_memif.sh NSPLIT_BINARY
# Two processes, two EAL instances (--no-huge, a file prefix each), one memif link: peer 1 is
# the memif server and receives, peer 0 is the client and sends 1 GiB as 64 messages of 16 MiB;
# peer 1 checks every byte. Both must exit 0, and nothing may be left in /var/run/dpdk.
# The client runs memif's zero-copy mode (it sends straight from the tensors, which live in the
# heap it shares with the server); shorter runs cover copy mode and a zero-copy client on a
# 4096-slot ring (rsize=12: its receive side refills the whole ring from nsplit's pool at once,
# so a pool sized for the default 1024 slots never refilled it and nothing arrived).
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

# run_pair NAME COUNT ZERO_COPY [DEVARGS]: peer 1 serves and receives COUNT messages of 16 MiB
# from peer 0; DEVARGS (",key=value...") go to both ports.
rc=0
run_pair() {
	local name=$1 count=$2 zc=$3 extra=${4:-} bytes
	local common=(--count "$count" --size 16M --deadline 300 --peer-timeout 20000)
	bytes=$((count * 16 * 1024 * 1024))
	rm -f "$sock"
	"$NSPLIT" link --self 1 --port "net_memif0,role=server,socket=$sock,socket-abstract=no$extra" "${common[@]}" -- \
		--file-prefix "$prefix-$name-server" >"$tmp/server.log" 2>&1 &
	server_pid=$!
	# The server makes the socket (a file: socket-abstract=no, DPDK 22.11 defaults to an abstract
	# one, which -S cannot see); the client would otherwise wait for it in its own retries.
	for _ in $(seq 100); do
		[[ -S "$sock" ]] && break
		sleep 0.1
	done
	"$NSPLIT" link --self 0 --port "net_memif0,role=client,socket=$sock,socket-abstract=no,zero-copy=$zc$extra" "${common[@]}" -- \
		--file-prefix "$prefix-$name-client" || rc=$?
	wait "$server_pid" || rc=$?
	server_pid=""
	echo "--- $name: server (peer 1):"
	cat "$tmp/server.log"
	grep -q "peer 1 received $count messages, $bytes bytes" "$tmp/server.log" || {
		echo "link_memif.sh: $name: the server did not receive $bytes bytes intact" >&2
		rc=1
	}
}

run_pair zero-copy 64 yes
run_pair copy 16 no
run_pair zero-copy-rsize12 16 yes ",rsize=12"
left=$(ls -d /var/run/dpdk/"$prefix"-* "${XDG_RUNTIME_DIR:-/nonexistent}"/dpdk/"$prefix"-* 2>/dev/null || true)
if [[ -n "$left" ]]; then
	echo "link_memif.sh: EAL runtime folders left behind: $left" >&2
	rc=1
fi
exit "$rc"
