-- SPDX-License-Identifier: BSD-3-Clause
--
-- Wireshark dissector for nsplit frames (the layout is in include/nsplit/wire.h):
-- Ethernet + IPv4 + UDP (port 7311 by default) + a 60-byte big-endian nsplit header (version 2),
-- then the payload: bytes [offset, offset + len) of a message, or, in ack frames, a 24-byte ack
-- record and its (first, count) missing frame ranges. Other versions (version 1 had a 56-byte
-- header) are shown as unsupported and not decoded.
--
-- Use it with
--   wireshark -X lua_script:scripts/wireshark/nsplit.lua cap.pcap
--   tshark -X lua_script:scripts/wireshark/nsplit.lua -r cap.pcap -V
--   tshark -X lua_script:scripts/wireshark/nsplit.lua -r cap.pcap -Y 'nsplit.type == 6'
-- or copy it into ~/.local/lib/wireshark/plugins/ (older releases: ~/.wireshark/plugins/) to
-- have it loaded every time. A session on another port: Edit > Preferences > Protocols > NSPLIT,
-- or `-o nsplit.udp_port:7400`.
--
-- Filter fields: nsplit.version, nsplit.type, nsplit.flags(.poll, .retransmit), nsplit.session,
-- nsplit.src, nsplit.dst, nsplit.stage, nsplit.micro, nsplit.round, nsplit.step, nsplit.msg_id,
-- nsplit.msg_crc (only in the frame that carries a message's last byte: elsewhere the header has
-- 0 there, shown as text), nsplit.msg_crc.status (single-frame messages, the only ones whose CRC
-- one frame can check), nsplit.total_len, nsplit.offset, nsplit.frag, nsplit.len,
-- nsplit.frame_crc, nsplit.frame_crc.status, nsplit.hdr_crc, nsplit.hdr_crc.status (statuses: 0
-- bad, 1 good), nsplit.frag_no, nsplit.nfrags, nsplit.data(.start, .end), nsplit.ack.*
-- (done_below, credit, about, status, received, nranges, flags(.complete, .has_about),
-- range.first, range.count, missing). Problems are expert infos, e.g. `nsplit.hdr_crc.bad`,
-- `nsplit.frame_crc.bad`, `nsplit.bad_offset`, `nsplit.bad_ack`.
--
-- Written for Lua 5.2 (Wireshark 4.0 in Debian 12, where it is tested by check.sh) and later: no
-- bit library; the CRC32C is plain arithmetic on non-negative integers below 2^32, exact in 5.2
-- doubles as in 5.3/5.4 numbers (the CRC code gives the same results under lua5.3 and lua5.4).

local VERSION = 2
local HDR_LEN = 60
local HDR_CRC_AT = 56 -- hdr_crc covers bytes [0, HDR_CRC_AT)
local ACK_LEN = 24
local ACK_MAX_RANGES = 64
local DEFAULT_PORT = 7311
local MAX_MSG = 2 ^ 40

local nsplit = Proto("nsplit", "nsplit frame")

local types = {
	[1] = "activation",
	[2] = "gradient",
	[3] = "labels",
	[4] = "stage",
	[5] = "control",
	[6] = "ack",
	[7] = "saved (Fast N-split: for the backward pool)",
	[8] = "params (Fast N-split: pushed to the forward pool)",
}
local type_short = { [1] = "ACT", [2] = "GRAD", [3] = "LBL", [4] = "STAGE", [5] = "CTL", [6] = "ACK", [7] = "SAVED",
	[8] = "PARAMS" }
local TYPE_ACK = 6

local crc_status = { [0] = "Bad", [1] = "Good" }
-- Linux errno values a receiver reports in an ack's status.
local ack_status = { [0] = "ok", [90] = "EMSGSIZE" }

local F = {
	version = ProtoField.uint8("nsplit.version", "Version", base.DEC),
	type = ProtoField.uint8("nsplit.type", "Type", base.DEC, types),
	flags = ProtoField.uint16("nsplit.flags", "Flags", base.HEX),
	f_poll = ProtoField.bool("nsplit.flags.poll", "Poll", 16, { "Set", "Not set" }, 0x0001,
		"The sender wants an ack for this message now"),
	f_rtx = ProtoField.bool("nsplit.flags.retransmit", "Retransmit", 16, { "Set", "Not set" }, 0x0002,
		"This frame was sent before"),
	session = ProtoField.uint32("nsplit.session", "Session", base.HEX),
	src = ProtoField.uint16("nsplit.src", "Source peer", base.DEC),
	dst = ProtoField.uint16("nsplit.dst", "Destination peer", base.DEC),
	stage = ProtoField.uint16("nsplit.stage", "Stage", base.DEC),
	micro = ProtoField.uint16("nsplit.micro", "Micro-batch", base.DEC),
	round = ProtoField.uint32("nsplit.round", "Round", base.DEC),
	step = ProtoField.uint32("nsplit.step", "Step", base.DEC),
	msg_id = ProtoField.uint32("nsplit.msg_id", "Message id", base.DEC),
	msg_crc = ProtoField.uint32("nsplit.msg_crc", "Message CRC32C", base.HEX, nil, nil,
		"CRC32C of the whole message, carried by the frame with its last byte"),
	msg_crc_status = ProtoField.uint8("nsplit.msg_crc.status", "Message CRC32C status", base.DEC, crc_status),
	total_len = ProtoField.uint64("nsplit.total_len", "Message length", base.DEC),
	offset = ProtoField.uint64("nsplit.offset", "Offset", base.DEC),
	frag = ProtoField.uint16("nsplit.frag", "Fragment size", base.DEC),
	len = ProtoField.uint16("nsplit.len", "Payload length", base.DEC),
	frame_crc = ProtoField.uint32("nsplit.frame_crc", "Frame CRC32C", base.HEX, nil, nil,
		"CRC32C of this frame's payload (data or ack)"),
	frame_crc_status = ProtoField.uint8("nsplit.frame_crc.status", "Frame CRC32C status", base.DEC, crc_status),
	hdr_crc = ProtoField.uint32("nsplit.hdr_crc", "Header CRC32C", base.HEX, nil, nil,
		"CRC32C of header bytes 0..55"),
	hdr_crc_status = ProtoField.uint8("nsplit.hdr_crc.status", "Header CRC32C status", base.DEC, crc_status),
	frag_no = ProtoField.uint32("nsplit.frag_no", "Frame of message", base.DEC, nil, nil,
		"offset / frag: the frame number ack ranges count in"),
	nfrags = ProtoField.uint32("nsplit.nfrags", "Frames in message", base.DEC),
	data = ProtoField.bytes("nsplit.data", "Data"),
	data_start = ProtoField.uint64("nsplit.data.start", "First byte", base.DEC),
	data_end = ProtoField.uint64("nsplit.data.end", "End (exclusive)", base.DEC),

	ack = ProtoField.bytes("nsplit.ack", "Ack"),
	done_below = ProtoField.uint32("nsplit.ack.done_below", "Done below", base.DEC, nil, nil,
		"Every message id below this one is complete"),
	credit = ProtoField.uint32("nsplit.ack.credit", "Credit", base.DEC, nil, nil,
		"The sender may send message ids below this"),
	about = ProtoField.uint32("nsplit.ack.about", "About message", base.DEC),
	status = ProtoField.uint32("nsplit.ack.status", "Status", base.DEC, ack_status),
	received = ProtoField.uint32("nsplit.ack.received", "Frames received", base.DEC),
	nranges = ProtoField.uint16("nsplit.ack.nranges", "Missing ranges", base.DEC),
	ack_flags = ProtoField.uint16("nsplit.ack.flags", "Ack flags", base.HEX),
	af_complete = ProtoField.bool("nsplit.ack.flags.complete", "Complete", 16, { "Set", "Not set" }, 0x0001),
	af_about = ProtoField.bool("nsplit.ack.flags.has_about", "Has about", 16, { "Set", "Not set" }, 0x0002),
	af_abort = ProtoField.bool("nsplit.ack.flags.abort", "Abort (the sender gives up; about = peer it blames)", 16,
		{ "Set", "Not set" }, 0x0004),
	range = ProtoField.bytes("nsplit.ack.range", "Range"),
	range_first = ProtoField.uint32("nsplit.ack.range.first", "First missing frame", base.DEC),
	range_count = ProtoField.uint32("nsplit.ack.range.count", "Missing frames", base.DEC),
	missing = ProtoField.uint32("nsplit.ack.missing", "Missing frames in all ranges", base.DEC),
}
local field_list = {}
for _, f in pairs(F) do
	field_list[#field_list + 1] = f
end
nsplit.fields = field_list

local E = {
	hdr_crc = ProtoExpert.new("nsplit.hdr_crc.bad", "Bad nsplit header CRC32C",
		expert.group.CHECKSUM, expert.severity.ERROR),
	frame_crc = ProtoExpert.new("nsplit.frame_crc.bad", "Bad nsplit frame CRC32C (receivers drop the frame)",
		expert.group.CHECKSUM, expert.severity.ERROR),
	msg_crc = ProtoExpert.new("nsplit.msg_crc.bad", "Bad message CRC32C (receivers drop the message)",
		expert.group.CHECKSUM, expert.severity.ERROR),
	truncated = ProtoExpert.new("nsplit.truncated", "nsplit frame truncated",
		expert.group.MALFORMED, expert.severity.ERROR),
	version = ProtoExpert.new("nsplit.bad_version", "Unsupported nsplit version, not decoded (receivers drop it)",
		expert.group.PROTOCOL, expert.severity.WARN),
	type = ProtoExpert.new("nsplit.bad_type", "Unknown nsplit message type (receivers drop it)",
		expert.group.PROTOCOL, expert.severity.WARN),
	len = ProtoExpert.new("nsplit.bad_len", "len differs from the payload the datagram carries",
		expert.group.MALFORMED, expert.severity.ERROR),
	offset = ProtoExpert.new("nsplit.bad_offset", "offset/len/frag/total_len inconsistent (receivers drop it)",
		expert.group.PROTOCOL, expert.severity.WARN),
	ack = ProtoExpert.new("nsplit.bad_ack", "Malformed ack (receivers drop it)",
		expert.group.MALFORMED, expert.severity.WARN),
	failed = ProtoExpert.new("nsplit.ack.failed", "The receiver failed the message",
		expert.group.RESPONSE_CODE, expert.severity.NOTE),
	poll = ProtoExpert.new("nsplit.poll", "Poll: the sender asks for an ack",
		expert.group.SEQUENCE, expert.severity.CHAT),
	rtx = ProtoExpert.new("nsplit.retransmit", "Retransmitted frame",
		expert.group.SEQUENCE, expert.severity.NOTE),
}
nsplit.experts = { E.hdr_crc, E.frame_crc, E.msg_crc, E.truncated, E.version, E.type, E.len, E.offset, E.ack,
	E.failed, E.poll, E.rtx }

nsplit.prefs.udp_port = Pref.uint("UDP port", DEFAULT_PORT, "UDP port of the nsplit session (both ends use it)")
nsplit.prefs.check_crc = Pref.bool("Verify CRC32C", true,
	"Check the header CRC32C, the frame (payload) CRC32C and, in single-frame messages, the message CRC32C")

------------------------------------------------------------------------------------------------
-- CRC32C (Castagnoli, reflected polynomial 0x82F63B78), table driven, with xor done in
-- arithmetic: 4 bits at a time through a 16x16 table to build the tables, then a byte at a time
-- through a 256x256 one in the loop (every frame's payload is checked, so the loop must be
-- quick). Values stay integers in [0, 2^32).

local XOR4 = {}
for x = 0, 15 do
	for y = 0, 15 do
		local r, m, a, b = 0, 1, x, y
		for _ = 1, 4 do
			if a % 2 ~= b % 2 then
				r = r + m
			end
			a, b, m = (a - a % 2) / 2, (b - b % 2) / 2, m * 2
		end
		XOR4[x * 16 + y] = r
	end
end

local function bxor(a, b)
	local r, m = 0, 1
	while a > 0 or b > 0 do
		local x, y = a % 16, b % 16
		r = r + XOR4[x * 16 + y] * m
		a, b, m = (a - x) / 16, (b - y) / 16, m * 16
	end
	return r
end

local POLY = 0x82F63B78
local CRC_TABLE = {}
for n = 0, 255 do
	local c = n
	for _ = 1, 8 do
		if c % 2 == 1 then
			c = bxor((c - 1) / 2, POLY)
		else
			c = c / 2
		end
	end
	CRC_TABLE[n] = c
end

-- XOR8[x * 256 + y] = x xor y, for bytes.
local XOR8 = {}
for x = 0, 255 do
	local xh, xl = (x - x % 16) / 16, x % 16
	for y = 0, 255 do
		local yh, yl = (y - y % 16) / 16, y % 16
		XOR8[x * 256 + y] = XOR4[xh * 16 + yh] * 16 + XOR4[xl * 16 + yl]
	end
end

-- CRC_TABLE[n] split into its bytes, lowest first; T0..T2 times 256, ready to index XOR8.
local T0, T1, T2, T3 = {}, {}, {}, {}
for n = 0, 255 do
	local v = CRC_TABLE[n]
	local v0 = v % 256
	v = (v - v0) / 256
	local v1 = v % 256
	v = (v - v1) / 256
	local v2 = v % 256
	T0[n], T1[n], T2[n], T3[n] = v0 * 256, v1 * 256, v2 * 256, (v - v2) / 256
end

-- CRC32C of a Lua string, starting from 0 (as nsl_crc32c(0, p, len) does). The running value is
-- kept as four bytes b0 (lowest) .. b3: c = TABLE[(c xor byte) % 256] xor (c >> 8).
local byte = string.byte
local function crc32c(s)
	local b0, b1, b2, b3 = 255, 255, 255, 255
	for i = 1, #s do
		local n = XOR8[b0 * 256 + byte(s, i)]
		b0, b1, b2, b3 = XOR8[T0[n] + b1], XOR8[T1[n] + b2], XOR8[T2[n] + b3], T3[n]
	end
	return ((255 - b3) * 256 + 255 - b2) * 65536 + (255 - b1) * 256 + 255 - b0
end

-- Self-check at load time: the standard CRC32C check value.
assert(crc32c("123456789") == 0xE3069283, "nsplit.lua: CRC32C self-check failed")

local function hex32(v)
	return string.format("0x%08x", v)
end

------------------------------------------------------------------------------------------------

local function dissect_ack(tvb, pinfo, tree, h)
	local avail = tvb:len() - HDR_LEN
	if avail < ACK_LEN then
		tree:add_proto_expert_info(E.ack, string.format("ack payload of %d bytes, at least %d needed",
			avail, ACK_LEN))
		return "ACK (short)"
	end
	local r = tvb(HDR_LEN, avail)
	local at = tree:add(F.ack, r)
	at:set_text(string.format("Ack (%d bytes)", avail))
	local done_below = r(0, 4):uint()
	local credit = r(4, 4):uint()
	local about = r(8, 4):uint()
	local status = r(12, 4):uint()
	local received = r(16, 4):uint()
	local nranges = r(20, 2):uint()
	local aflags = r(22, 2):uint()
	at:add(F.done_below, r(0, 4))
	at:add(F.credit, r(4, 4))
	at:add(F.about, r(8, 4))
	local st = at:add(F.status, r(12, 4))
	at:add(F.received, r(16, 4))
	local nr = at:add(F.nranges, r(20, 2))
	local ft = at:add(F.ack_flags, r(22, 2))
	ft:add(F.af_complete, r(22, 2))
	ft:add(F.af_about, r(22, 2))
	ft:add(F.af_abort, r(22, 2))
	local complete, has_about, abort = aflags % 2 == 1, aflags % 4 >= 2, aflags % 8 >= 4
	local names = {}
	if complete then names[#names + 1] = "complete" end
	if has_about then names[#names + 1] = "has_about" end
	if abort then names[#names + 1] = "abort" end
	if #names > 0 then ft:append_text(" (" .. table.concat(names, ", ") .. ")") end
	if abort then
		ft:add_proto_expert_info(E.failed, string.format("Peer gives up the session, blaming peer %d after round %d",
			about, received))
	elseif status ~= 0 then
		st:add_proto_expert_info(E.failed, string.format("The receiver failed message %d: %s", about,
			ack_status[status] or string.format("errno %d", status)))
	end

	if nranges > ACK_MAX_RANGES then
		nr:add_proto_expert_info(E.ack, string.format("more than %d ranges", ACK_MAX_RANGES))
	end
	local want = ACK_LEN + 8 * nranges
	if avail ~= want and tvb:reported_len() - HDR_LEN ~= want then
		at:add_proto_expert_info(E.ack, string.format("%d ranges need %d payload bytes, there are %d",
			nranges, want, tvb:reported_len() - HDR_LEN))
	end
	local missing, shown = 0, 0
	for i = 0, nranges - 1 do
		local o = ACK_LEN + 8 * i
		if o + 8 > avail then
			break
		end
		local first, count = r(o, 4):uint(), r(o + 4, 4):uint()
		local rt = at:add(F.range, r(o, 8))
		rt:set_text(string.format("Range %d: frames [%d, %d) (%d missing)", i, first, first + count, count))
		rt:add(F.range_first, r(o, 4))
		local ci = rt:add(F.range_count, r(o + 4, 4))
		if count == 0 then
			ci:add_proto_expert_info(E.ack, "empty range")
		end
		missing = missing + count
		shown = shown + 1
	end
	if shown > 0 then
		at:add(F.missing, missing):set_generated()
	end
	if h.offset ~= 0 or h.total_len ~= h.len or h.len < ACK_LEN then
		tree:add_proto_expert_info(E.ack, "ack header wants offset 0 and total_len == len >= 24")
	end

	local info = string.format("ACK %d->%d done<%d credit %d", h.src, h.dst, done_below, credit)
	if has_about then
		info = info .. string.format(" about %d", about)
		if complete then
			info = info .. " complete"
		elseif nranges > 0 then
			info = info .. string.format(" missing %d range%s", nranges, nranges == 1 and "" or "s")
		end
		if status ~= 0 then
			info = info .. " status " .. (ack_status[status] or string.format("%d", status))
		end
	end
	at:append_text(": " .. info:sub(5))
	return info
end

local function dissect_data(tvb, pinfo, tree, h)
	local avail = tvb:len() - HDR_LEN
	local first, last = h.offset, h.offset + h.len
	local ok = h.total_len > 0 and h.total_len <= MAX_MSG and h.frag > 0 and h.offset < h.total_len
		and h.offset % h.frag == 0
	if ok then
		local left = h.total_len - h.offset
		ok = h.len == (left < h.frag and left or h.frag)
	end
	if h.frag > 0 then
		tree:add(F.frag_no, math.floor(h.offset / h.frag)):set_generated()
		tree:add(F.nfrags, math.ceil(h.total_len / h.frag)):set_generated()
	end
	if not ok then
		tree:add_proto_expert_info(E.offset, string.format(
			"offset %.0f frag %d len %d total_len %.0f: want offset %% frag == 0 and len == min(frag, total_len - offset)",
			h.offset, h.frag, h.len, h.total_len))
	end
	if avail > 0 then
		local dt = tree:add(F.data, tvb(HDR_LEN, avail))
		local n = string.format("%d bytes", avail)
		if avail < h.len then
			n = string.format("%d bytes, %d captured", h.len, avail)
		end
		dt:set_text(string.format("Data: bytes [%.0f, %.0f) of %.0f (%s)", first, last, h.total_len, n))
		dt:add(F.data_start, tvb(HDR_LEN, avail), UInt64.fromhex(string.format("%x", first))):set_generated()
		dt:add(F.data_end, tvb(HDR_LEN, avail), UInt64.fromhex(string.format("%x", last))):set_generated()
	end
	return string.format("%s %d->%d msg %d [%.0f..%.0f)/%.0f stage %d step %d",
		type_short[h.type] or string.format("TYPE%d", h.type), h.src, h.dst, h.msg_id, first, last, h.total_len, h.stage, h.step)
end

-- The msg_crc field (offset 28): the whole message's CRC32C in the frame that carries its last
-- byte, 0 in every other frame and in acks (shown as text there, so that nsplit.msg_crc only
-- matches frames that carry a message CRC). A single-frame message is its own payload: its CRC
-- is checked against pc, the payload's CRC32C (nil when not computed). True when it is bad.
local function add_msg_crc(ht, tvb, h, pc)
	local r = tvb(28, 4)
	if h.type == TYPE_ACK or h.offset + h.len ~= h.total_len then
		local why = h.type == TYPE_ACK and "acks carry none" or "not the last frame"
		if h.msg_crc == 0 then
			ht:add(r, string.format("Message CRC32C: 0 (%s)", why))
		else
			ht:add(r, string.format("Message CRC32C: %s (%s: should be 0, receivers ignore it)",
				hex32(h.msg_crc), why))
		end
		return false
	end
	local mi = ht:add(F.msg_crc, r)
	if h.offset ~= 0 then
		mi:append_text(string.format(" (of the whole message, %.0f bytes)", h.total_len))
		return false
	end
	if pc == nil then
		return false
	end
	local bad = pc ~= h.msg_crc
	if bad then
		mi:append_text(string.format(" [bad, computed %s]", hex32(pc)))
		mi:add_proto_expert_info(E.msg_crc, string.format("Bad message CRC32C: %s, computed %s",
			hex32(h.msg_crc), hex32(pc)))
	else
		mi:append_text(" [correct]")
	end
	ht:add(F.msg_crc_status, r, bad and 0 or 1):set_generated()
	return bad
end

function nsplit.dissector(tvb, pinfo, tree)
	pinfo.cols.protocol = "nsplit"
	local t = tree:add(nsplit, tvb())
	if tvb:len() < 1 then
		t:add_proto_expert_info(E.truncated, "no nsplit header at all")
		pinfo.cols.info = "nsplit (truncated)"
		return tvb:len()
	end
	local version = tvb(0, 1):uint()
	if version ~= VERSION then
		local vi = t:add(F.version, tvb(0, 1))
		vi:add_proto_expert_info(E.version, string.format(
			"Unsupported nsplit version %d: this dissector decodes version %d%s (receivers drop it)",
			version, VERSION, version == 1 and ", version 1 had a 56-byte header" or ""))
		if tvb:len() > 1 then
			t:add(tvb(1, tvb:len() - 1), string.format("Not decoded (%d bytes)", tvb:len() - 1))
		end
		local info = string.format("nsplit version %d (unsupported)", version)
		pinfo.cols.info = info
		t:append_text(", " .. info)
		return tvb:len()
	end
	if tvb:len() < HDR_LEN then
		t:add_proto_expert_info(E.truncated, string.format("%d bytes, the header alone is %d", tvb:len(), HDR_LEN))
		pinfo.cols.info = "nsplit (truncated)"
		return tvb:len()
	end

	local h = {
		version = version,
		type = tvb(1, 1):uint(),
		flags = tvb(2, 2):uint(),
		session = tvb(4, 4):uint(),
		src = tvb(8, 2):uint(),
		dst = tvb(10, 2):uint(),
		stage = tvb(12, 2):uint(),
		micro = tvb(14, 2):uint(),
		round = tvb(16, 4):uint(),
		step = tvb(20, 4):uint(),
		msg_id = tvb(24, 4):uint(),
		msg_crc = tvb(28, 4):uint(),
		-- Numbers, not UInt64: exact below 2^53, and a valid frame stays below 2^40.
		total_len = tvb(32, 8):uint64():tonumber(),
		offset = tvb(40, 8):uint64():tonumber(),
		frag = tvb(48, 2):uint(),
		len = tvb(50, 2):uint(),
		frame_crc = tvb(52, 4):uint(),
		hdr_crc = tvb(HDR_CRC_AT, 4):uint(),
	}

	-- The payload's CRC32C, once, for frame_crc (and msg_crc in a single-frame message): only
	-- when the datagram carries len bytes and all of them were captured.
	local payload = tvb:reported_len() - HDR_LEN
	local avail = tvb:len() - HDR_LEN
	local pc
	if nsplit.prefs.check_crc and payload == h.len and avail == h.len then
		pc = avail > 0 and crc32c(tvb(HDR_LEN, avail):raw()) or 0
	end

	local ht = t:add(tvb(0, HDR_LEN), "Header")
	ht:add(F.version, tvb(0, 1))
	local ti = ht:add(F.type, tvb(1, 1))
	if h.type == 0 or h.type > TYPE_ACK then
		ti:add_proto_expert_info(E.type)
	end
	local fi = ht:add(F.flags, tvb(2, 2))
	fi:add(F.f_poll, tvb(2, 2))
	fi:add(F.f_rtx, tvb(2, 2))
	local poll, rtx = h.flags % 2 == 1, h.flags % 4 >= 2
	local fnames = {}
	if poll then fnames[#fnames + 1] = "poll" end
	if rtx then fnames[#fnames + 1] = "retransmit" end
	if #fnames > 0 then fi:append_text(" (" .. table.concat(fnames, ", ") .. ")") end
	if poll then fi:add_proto_expert_info(E.poll) end
	if rtx then fi:add_proto_expert_info(E.rtx) end
	ht:add(F.session, tvb(4, 4))
	ht:add(F.src, tvb(8, 2))
	ht:add(F.dst, tvb(10, 2))
	ht:add(F.stage, tvb(12, 2))
	ht:add(F.micro, tvb(14, 2))
	ht:add(F.round, tvb(16, 4))
	ht:add(F.step, tvb(20, 4))
	ht:add(F.msg_id, tvb(24, 4))
	local msg_bad = add_msg_crc(ht, tvb, h, pc)
	ht:add(F.total_len, tvb(32, 8))
	ht:add(F.offset, tvb(40, 8))
	ht:add(F.frag, tvb(48, 2))
	local li = ht:add(F.len, tvb(50, 2))

	local fci = ht:add(F.frame_crc, tvb(52, 4))
	local frame_bad = false
	if pc ~= nil then
		frame_bad = pc ~= h.frame_crc
		if frame_bad then
			fci:append_text(string.format(" [bad, computed %s]", hex32(pc)))
			fci:add_proto_expert_info(E.frame_crc, string.format("Bad nsplit frame CRC32C: %s, computed %s",
				hex32(h.frame_crc), hex32(pc)))
		else
			fci:append_text(" [correct]")
		end
		ht:add(F.frame_crc_status, tvb(52, 4), frame_bad and 0 or 1):set_generated()
	elseif nsplit.prefs.check_crc then
		fci:append_text(payload ~= h.len and " [not checked: len differs from the payload]"
			or " [not checked: payload not captured whole]")
	end

	local ci = ht:add(F.hdr_crc, tvb(HDR_CRC_AT, 4))
	local hdr_bad = false
	if nsplit.prefs.check_crc then
		local c = crc32c(tvb(0, HDR_CRC_AT):raw())
		hdr_bad = c ~= h.hdr_crc
		if hdr_bad then
			ci:append_text(string.format(" [bad, computed %s]", hex32(c)))
			ci:add_proto_expert_info(E.hdr_crc, string.format("Bad nsplit header CRC32C: %s, computed %s",
				hex32(h.hdr_crc), hex32(c)))
		else
			ci:append_text(" [correct]")
		end
		ht:add(F.hdr_crc_status, tvb(HDR_CRC_AT, 4), hdr_bad and 0 or 1):set_generated()
	end

	if payload ~= h.len then
		li:add_proto_expert_info(E.len, string.format("len %d, the datagram carries %d payload bytes",
			h.len, payload))
	end

	local info
	if h.type == TYPE_ACK then
		info = dissect_ack(tvb, pinfo, t, h)
	else
		info = dissect_data(tvb, pinfo, t, h)
	end
	if poll then info = info .. " poll" end
	if rtx then info = info .. " rtx" end
	if frame_bad then info = info .. " [bad frame_crc]" end
	if msg_bad then info = info .. " [bad msg_crc]" end
	if hdr_bad then info = info .. " [bad hdr_crc]" end
	pinfo.cols.info = info
	t:append_text(", " .. info)
	return tvb:len()
end

------------------------------------------------------------------------------------------------

local udp_table = DissectorTable.get("udp.port")
local current_port = nsplit.prefs.udp_port
udp_table:add(current_port, nsplit)

function nsplit.prefs_changed()
	if current_port ~= nsplit.prefs.udp_port then
		if current_port ~= 0 then
			udp_table:remove(current_port, nsplit)
		end
		current_port = nsplit.prefs.udp_port
		if current_port ~= 0 then
			udp_table:add(current_port, nsplit)
		end
	end
end
