#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# Checks the Wireshark dissector scripts/wireshark/nsplit.lua with tshark: builds the sample
# capture of make_sample.py in a temporary directory, decodes it with the dissector and compares
# the decoded fields, the Info column, the frames flagged with a bad header or frame CRC, the
# frames that carry a message CRC (the last of each message) and the version-1 frame shown as
# unsupported with the values make_sample.py put in (wire version 2).
#
# Exit status: 0 all match, 1 a mismatch (or tshark failed), 77 tshark is not installed (skipped;
# 1 instead when CI=true).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
lua="$here/nsplit.lua"

if ! command -v tshark >/dev/null 2>&1; then
	if [[ ${CI:-} == true ]]; then
		echo "check.sh: tshark is not installed (CI=true: failing instead of skipping)" >&2
		exit 1
	fi
	echo "check.sh: skipped: tshark is not installed (apt-get install tshark)"
	exit 77
fi

python=/usr/bin/python3
[[ -x $python ]] || python=python3

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$python" "$here/make_sample.py" "$tmp/sample.pcap" >/dev/null

# tshark with the dissector, away from the user's own preferences and plugins (a copy of
# nsplit.lua in ~/.local/lib/wireshark/plugins would clash with this one).
mkdir -p "$tmp/home"
run_tshark() {
	if ! env HOME="$tmp/home" XDG_CONFIG_HOME="$tmp/home/.config" \
		tshark -n -X "lua_script:$lua" -r "$tmp/sample.pcap" "$@" >"$tmp/out" 2>"$tmp/err"; then
		echo "check.sh: tshark $* failed:" >&2
		grep -v 'Running as user "root"' "$tmp/err" >&2 || true
		exit 1
	fi
	if grep -qi 'lua' "$tmp/err"; then
		echo "check.sh: tshark $* reported a Lua problem:" >&2
		cat "$tmp/err" >&2
		exit 1
	fi
	cat "$tmp/out"
}

failed=0
compare() {
	local what=$1 expected=$2 got=$3
	if diff -u "$expected" "$got" >"$tmp/diff"; then
		echo "check.sh: $what: ok"
	else
		echo "check.sh: $what differs (- expected, + decoded):" >&2
		cat "$tmp/diff" >&2
		failed=1
	fi
}

# 1. The basic fields, as asked for (of the decoded frames: frame 8, of version 1, is not).
run_tshark -Y nsplit.type -T fields -e nsplit.type -e nsplit.msg_id -e nsplit.offset >"$tmp/got_basic"
cat >"$tmp/want_basic" <<'EOF'
1	12	1412
1	12	2824
1	12	4236
6	0	0
1	12	0
1	12	2824
2	3	0
EOF
compare "nsplit.type/msg_id/offset" "$tmp/want_basic" "$tmp/got_basic"

# 2. Every header and ack field. nsplit.msg_crc only in the last frame of a message (frames 3
# and 7), checked (msg_crc.status) only in a single-frame one (7); frame_crc checked everywhere.
fields=(nsplit.version nsplit.type nsplit.flags nsplit.flags.poll nsplit.flags.retransmit nsplit.session nsplit.src
	nsplit.dst nsplit.stage nsplit.micro nsplit.round nsplit.step nsplit.msg_id nsplit.msg_crc nsplit.msg_crc.status
	nsplit.total_len nsplit.offset nsplit.frag nsplit.len nsplit.frame_crc nsplit.frame_crc.status nsplit.hdr_crc
	nsplit.hdr_crc.status nsplit.frag_no nsplit.nfrags nsplit.data.start nsplit.data.end nsplit.ack.done_below
	nsplit.ack.credit nsplit.ack.about nsplit.ack.status nsplit.ack.received nsplit.ack.nranges nsplit.ack.flags
	nsplit.ack.flags.complete nsplit.ack.flags.has_about nsplit.ack.range.first nsplit.ack.range.count
	nsplit.ack.missing)
args=()
for f in "${fields[@]}"; do
	args+=(-e "$f")
done
# Booleans print as 0/1 or, in newer tshark, False/True: compared as 0/1.
run_tshark -T fields -E header=y -E separator='|' -E occurrence=a -E aggregator=, "${args[@]}" |
	sed -e 's/|False/|0/g; s/|True/|1/g' >"$tmp/got_all"
cat >"$tmp/want_all" <<'EOF'
nsplit.version|nsplit.type|nsplit.flags|nsplit.flags.poll|nsplit.flags.retransmit|nsplit.session|nsplit.src|nsplit.dst|nsplit.stage|nsplit.micro|nsplit.round|nsplit.step|nsplit.msg_id|nsplit.msg_crc|nsplit.msg_crc.status|nsplit.total_len|nsplit.offset|nsplit.frag|nsplit.len|nsplit.frame_crc|nsplit.frame_crc.status|nsplit.hdr_crc|nsplit.hdr_crc.status|nsplit.frag_no|nsplit.nfrags|nsplit.data.start|nsplit.data.end|nsplit.ack.done_below|nsplit.ack.credit|nsplit.ack.about|nsplit.ack.status|nsplit.ack.received|nsplit.ack.nranges|nsplit.ack.flags|nsplit.ack.flags.complete|nsplit.ack.flags.has_about|nsplit.ack.range.first|nsplit.ack.range.count|nsplit.ack.missing
2|1|0x0000|0|0|0xc0ffee01|0|1|3|1|2|7|12|||5000|1412|1412|1412|0x6c042fc4|1|0xb1c1285a|1|1|4|1412|2824||||||||||||
2|1|0x0000|0|0|0xc0ffee01|0|1|3|1|2|7|12|||5000|2824|1412|1412|0x34dd8e31|0|0xc3e15355|1|2|4|2824|4236||||||||||||
2|1|0x0001|1|0|0xc0ffee01|0|1|3|1|2|7|12|0x82dfc322||5000|4236|1412|764|0x530df516|1|0x3defd2bc|1|3|4|4236|5000||||||||||||
2|6|0x0000|0|0|0xc0ffee01|1|0|0|0|0|0|0|||40|0|40|40|0x1132a332|1|0x769e3301|1|||||12|45|12|0|2|2|0x0002|0|1|0,2|1,1|2
2|1|0x0002|0|1|0xc0ffee01|0|1|3|1|2|7|12|||5000|0|1412|1412|0x285f3b68|1|0x9dd1f65f|1|0|4|0|1412||||||||||||
2|1|0x0002|0|1|0xc0ffee01|0|1|3|1|2|7|12|||5000|2824|1412|1412|0x34dd8e31|1|0x5416c370|1|2|4|2824|4236||||||||||||
2|2|0x0003|1|1|0xc0ffee01|1|0|2|0|2|7|3|0x30a9fde1|1|300|0|1412|300|0x30a9fde1|1|0x668047a7|0|0|1|0|300||||||||||||
1||||||||||||||||||||||||||||||||||||||
EOF
compare "all fields" "$tmp/want_all" "$tmp/got_all"

# 3. The Info column.
run_tshark -T fields -e frame.number -e _ws.col.Info >"$tmp/got_info"
cat >"$tmp/want_info" <<'EOF'
1	ACT 0->1 msg 12 [1412..2824)/5000 stage 3 step 7
2	ACT 0->1 msg 12 [2824..4236)/5000 stage 3 step 7 [bad frame_crc]
3	ACT 0->1 msg 12 [4236..5000)/5000 stage 3 step 7 poll
4	ACK 1->0 done<12 credit 45 about 12 missing 2 ranges
5	ACT 0->1 msg 12 [0..1412)/5000 stage 3 step 7 rtx
6	ACT 0->1 msg 12 [2824..4236)/5000 stage 3 step 7 rtx
7	GRAD 1->0 msg 3 [0..300)/300 stage 2 step 7 poll rtx [bad hdr_crc]
8	nsplit version 1 (unsupported)
EOF
compare "Info column" "$tmp/want_info" "$tmp/got_info"

# 4. Which frames each check flags (expert infos), and which carry a message CRC.
flagged() {
	local filter=$1 want=$2
	run_tshark -Y "$filter" -T fields -e frame.number | tr '\n' ' ' | sed 's/ $//' >"$tmp/got_flag"
	echo >>"$tmp/got_flag"
	echo "$want" >"$tmp/want_flag"
	compare "frames matching $filter" "$tmp/want_flag" "$tmp/got_flag"
}
flagged nsplit.hdr_crc.bad "7"
flagged nsplit.frame_crc.bad "2"
flagged nsplit.msg_crc.bad ""
flagged nsplit.msg_crc "3 7"
flagged nsplit.bad_version "8"
flagged 'nsplit.frame_crc.status == 1' "1 3 4 5 6 7"

# 5. The same in the tree (-V): the CRC markers, and msg_crc as text outside last frames.
run_tshark -V >"$tmp/verbose"
grep -oE '(Message|Frame|Header) CRC32C: (0x[0-9a-f]*|0) (\[[a-z]*|\([a-z ]*)' "$tmp/verbose" >"$tmp/got_marks" || true
cat >"$tmp/want_marks" <<'EOF'
Message CRC32C: 0 (not the last frame
Frame CRC32C: 0x6c042fc4 [correct
Header CRC32C: 0xb1c1285a [correct
Message CRC32C: 0 (not the last frame
Frame CRC32C: 0x34dd8e31 [bad
Header CRC32C: 0xc3e15355 [correct
Message CRC32C: 0x82dfc322 (of the whole message
Frame CRC32C: 0x530df516 [correct
Header CRC32C: 0x3defd2bc [correct
Message CRC32C: 0 (acks carry none
Frame CRC32C: 0x1132a332 [correct
Header CRC32C: 0x769e3301 [correct
Message CRC32C: 0 (not the last frame
Frame CRC32C: 0x285f3b68 [correct
Header CRC32C: 0x9dd1f65f [correct
Message CRC32C: 0 (not the last frame
Frame CRC32C: 0x34dd8e31 [correct
Header CRC32C: 0x5416c370 [correct
Message CRC32C: 0x30a9fde1 [correct
Frame CRC32C: 0x30a9fde1 [correct
Header CRC32C: 0x668047a7 [bad
EOF
compare "CRC markers in -V" "$tmp/want_marks" "$tmp/got_marks"
if grep -q 'Lua Error' "$tmp/verbose"; then
	echo "check.sh: the dissector raised a Lua error:" >&2
	grep 'Lua Error' "$tmp/verbose" >&2
	failed=1
fi

if ((failed)); then
	exit 1
fi
echo "check.sh: nsplit.lua decodes the sample as expected"
