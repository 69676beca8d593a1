/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer target for the frame parser (dataplane/wire.c). Every frame a peer receives comes
 * from the network and reaches nsl_wire_parse and nsl_wire_ack_decode before anything else, so
 * those two must never read outside the frame and must only accept frames that keep the promises
 * wire.h makes: a payload inside the frame, and data offsets that cannot write outside a slot.
 *
 * Byte 0 of an input picks the mode. Raw (bit 0 clear): the rest of the input is the frame.
 * Skeleton (bit 0 set): the rest supplies header fields, from which a frame with correct IPv4
 * checksum and header CRC is built, so the fuzzer reaches the checks behind the CRCs without
 * having to forge a CRC32C; the other bits of byte 0 then choose what to break (see M_*).
 * Violations call __builtin_trap(), which libFuzzer reports as a crash with its input.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nsplit/wire.h"

#define M_SKELETON 0x01   /* build a valid frame from fields instead of taking the bytes as they are */
#define M_FIXUP 0x02      /* make offset/frag/len (or the ack payload) consistent, else keep them raw */
#define M_LEN_IS_HDR 0x04 /* payload length equals the header's len, else it is a field of its own */
#define M_PAD 0x08        /* bytes after the IP datagram, as Ethernet padding adds them */
#define M_FLIP 0x10       /* flip a few bits of the finished frame */
#define M_TRUNCATE 0x20   /* cut bytes off the end of the finished frame */
#define M_RAW_TYPE 0x40   /* any type byte, else only the valid types 1..NSL_MSG_TYPE_MAX */
#define M_RAW_VERSION 0x80

#define L2L4_LEN (NSL_WIRE_ETH_LEN + NSL_WIRE_IP_LEN + NSL_WIRE_UDP_LEN)
/* The most payload whose IPv4 total length still fits in 16 bits. */
#define MAX_PAYLOAD (0xffff - NSL_WIRE_IP_LEN - NSL_WIRE_UDP_LEN - NSL_WIRE_HDR_LEN)
#define MAX_FLIPS 4
#define MAX_PAD 255

#define CHECK(cond)                        \
	do {                               \
		if (!(cond))               \
			__builtin_trap();  \
	} while (0)

/* Reads fields off the input; past its end every field is 0, so short inputs still build frames. */
struct reader {
	const uint8_t *p;
	size_t n;
};

static uint8_t rd8(struct reader *r)
{
	if (r->n == 0)
		return 0;
	r->n--;
	return *r->p++;
}

static uint16_t rd16(struct reader *r)
{
	uint16_t hi = rd8(r);

	return (uint16_t)(hi << 8 | rd8(r));
}

static uint32_t rd32(struct reader *r)
{
	uint32_t hi = rd16(r);

	return hi << 16 | rd16(r);
}

static uint64_t rd64(struct reader *r)
{
	uint64_t hi = rd32(r);

	return hi << 32 | rd32(r);
}

/* A heap copy of exactly n bytes, so that ASan reports a read of even one byte past the end. */
static uint8_t *exact_copy(const uint8_t *p, size_t n)
{
	uint8_t *c = malloc(n ? n : 1);

	if (c == NULL)
		abort();
	if (n)
		memcpy(c, p, n);
	return c;
}

static void check_ack(const uint8_t *p, uint32_t len)
{
	uint8_t *c = exact_copy(p, len);
	struct nsl_wire_ack a;
	uint8_t again[NSL_WIRE_ACK_LEN + 8 * NSL_WIRE_ACK_MAX_RANGES];

	/* Garbage in, so a decoder that forgets a field cannot pass the round trip by luck. */
	memset(&a, 0xa5, sizeof(a));
	if (nsl_wire_ack_decode(c, len, &a)) {
		CHECK(len >= NSL_WIRE_ACK_LEN);
		CHECK(a.nranges <= NSL_WIRE_ACK_MAX_RANGES);
		CHECK(len == NSL_WIRE_ACK_LEN + 8u * a.nranges);
		for (uint16_t i = 0; i < a.nranges; i++)
			CHECK(a.ranges[i].count != 0);
		/* Everything accepted was decoded whole: encoding it again gives the same bytes. */
		CHECK(nsl_wire_ack_encode(again, &a) == len);
		CHECK(memcmp(again, c, len) == 0);
	}
	free(c);
}

static void check_frame(const uint8_t *f, uint32_t len)
{
	struct nsl_wire_frame fr;
	const struct nsl_wire_hdr *h = &fr.hdr;
	const char *name;
	uint8_t hdr[NSL_WIRE_HDR_LEN];
	enum nsl_drop d;

	memset(&fr, 0xa5, sizeof(fr));
	d = nsl_wire_parse(f, len, NSL_WIRE_UDP_PORT, &fr);
	CHECK((unsigned)d < NSL_DROP_MAX);
	/* Every reason is counted under its own name; a hole in the table would print "(null)". */
	name = nsl_drop_name(d);
	CHECK(name != NULL && strcmp(name, "unknown") != 0);
	if (d != NSL_DROP_NONE)
		return;

	CHECK((uint64_t)fr.payload_off + fr.payload_len <= len);
	CHECK(fr.payload_off >= NSL_WIRE_FRAME_HDR);
	CHECK(fr.payload_len == h->len);
	CHECK(h->version == NSL_WIRE_VERSION);
	CHECK(h->type >= 1 && h->type <= NSL_MSG_TYPE_MAX);
	/* The header CRC matched, so encoding the decoded header must reproduce its bytes. */
	nsl_wire_hdr_encode(hdr, h);
	CHECK(memcmp(hdr, f + L2L4_LEN, NSL_WIRE_HDR_LEN) == 0);
	CHECK(memcmp(fr.dst_mac, f, 6) == 0 && memcmp(fr.src_mac, f + 6, 6) == 0);

	if (h->type != NSL_MSG_ACK) {
		uint64_t left;

		/* The receiver writes len bytes at offset into a slot of total_len bytes. */
		CHECK(h->total_len > 0 && h->total_len <= NSL_WIRE_MAX_MSG);
		CHECK(h->frag != 0);
		CHECK(h->offset < h->total_len);
		CHECK(h->offset % h->frag == 0);
		CHECK(h->offset + h->len <= h->total_len);
		left = h->total_len - h->offset;
		CHECK(h->len == (left < h->frag ? left : h->frag));
	} else {
		CHECK(h->offset == 0 && h->total_len == h->len && h->len >= NSL_WIRE_ACK_LEN);
		check_ack(f + fr.payload_off, fr.payload_len);
	}
}

/* Builds a frame in buf (room for any length this makes) from the fields in r; returns its length. */
static uint32_t build_skeleton(uint8_t mode, struct reader *r, uint8_t *buf)
{
	struct nsl_wire_hdr h;
	uint8_t src_mac[6], dst_mac[6];
	uint32_t src_ip, dst_ip, plen, pad = 0, trunc = 0, n;
	uint16_t ip_id;
	uint8_t type, nflips = 0;
	struct {
		uint16_t pos;
		uint8_t bit;
	} flips[MAX_FLIPS];
	uint8_t *payload = buf + NSL_WIRE_FRAME_HDR;

	memset(&h, 0, sizeof(h));
	h.version = mode & M_RAW_VERSION ? rd8(r) : NSL_WIRE_VERSION;
	type = rd8(r);
	h.type = mode & M_RAW_TYPE ? type : (uint8_t)(1 + type % NSL_MSG_TYPE_MAX);
	h.flags = rd16(r);
	h.session = rd32(r);
	h.src = rd16(r);
	h.dst = rd16(r);
	h.stage = rd16(r);
	h.micro = rd16(r);
	h.round = rd32(r);
	h.step = rd32(r);
	h.msg_id = rd32(r);
	h.msg_crc = rd32(r);
	h.total_len = rd64(r);
	h.offset = rd64(r);
	h.frag = rd16(r);
	h.len = rd16(r);
	for (int i = 0; i < 6; i++)
		src_mac[i] = rd8(r);
	for (int i = 0; i < 6; i++)
		dst_mac[i] = rd8(r);
	src_ip = rd32(r);
	dst_ip = rd32(r);
	ip_id = rd16(r);
	plen = rd16(r);
	if (mode & M_PAD)
		pad = rd8(r);
	if (mode & M_TRUNCATE)
		trunc = rd16(r);
	if (mode & M_FLIP) {
		nflips = rd8(r) % (MAX_FLIPS + 1);
		for (int i = 0; i < nflips; i++) {
			flips[i].pos = rd16(r);
			flips[i].bit = rd8(r) & 7;
		}
	}

	if ((mode & M_FIXUP) && h.type == NSL_MSG_ACK) {
		struct nsl_wire_ack a;

		a.done_below = rd32(r);
		a.credit = rd32(r);
		a.about = rd32(r);
		a.status = rd32(r);
		a.received = rd32(r);
		a.nranges = rd8(r) % (NSL_WIRE_ACK_MAX_RANGES + 1);
		a.flags = rd16(r);
		for (int i = 0; i < a.nranges; i++) {
			a.ranges[i].first = rd32(r);
			a.ranges[i].count = rd32(r);
		}
		h.len = (uint16_t)nsl_wire_ack_encode(payload, &a);
		h.offset = 0;
		h.total_len = h.len;
	} else if (mode & M_FIXUP) {
		uint64_t nfrags;

		h.total_len = 1 + h.total_len % NSL_WIRE_MAX_MSG;
		h.frag = (uint16_t)(1 + h.frag % MAX_PAYLOAD);
		nfrags = (h.total_len - 1) / h.frag + 1;
		/* The last frame, the short one, is the interesting one: the top bit asks for it. */
		h.offset = (h.offset >> 63 ? nfrags - 1 : h.offset % nfrags) * h.frag;
		h.len = (uint16_t)(h.total_len - h.offset < h.frag ? h.total_len - h.offset : h.frag);
	}
	if ((mode & M_LEN_IS_HDR) || ((mode & M_FIXUP) && h.type == NSL_MSG_ACK))
		plen = h.len;
	/* Leave an encoded ack payload in place; any other payload is whatever input is left. */
	if (!((mode & M_FIXUP) && h.type == NSL_MSG_ACK)) {
		uint32_t have = r->n < plen ? (uint32_t)r->n : plen;

		memcpy(payload, r->p, have);
		memset(payload + have, 0, plen - have);
	}

	/* plen above MAX_PAYLOAD wraps the 16-bit IP and UDP lengths: frames that lie about their size. */
	nsl_wire_l2l4_encode(buf, src_mac, dst_mac, src_ip, dst_ip, NSL_WIRE_UDP_PORT,
			     NSL_WIRE_HDR_LEN + plen, ip_id);
	nsl_wire_hdr_encode(buf + L2L4_LEN, &h);
	n = NSL_WIRE_FRAME_HDR + plen;
	memset(buf + n, 0, pad);
	n += pad;
	n = trunc >= n ? 0 : n - trunc;
	for (int i = 0; i < nflips && n > 0; i++)
		buf[flips[i].pos % n] ^= (uint8_t)(1u << flips[i].bit);
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[NSL_WIRE_FRAME_HDR + 0xffff + MAX_PAD];
	struct reader r = { size ? data + 1 : data, size ? size - 1 : 0 };
	uint8_t mode = size ? data[0] : 0;
	uint8_t *frame;
	uint32_t n;

	/* An ack payload arrives on its own too: the link decodes it from wherever the frame put it. */
	check_ack(data, (uint32_t)size);

	if (mode & M_SKELETON) {
		n = build_skeleton(mode, &r, buf);
		frame = exact_copy(buf, n);
	} else {
		n = (uint32_t)r.n;
		frame = exact_copy(r.p, n);
	}
	check_frame(frame, n);
	free(frame);

	/* Any value has a printable name, so a summary never prints "(null)"; past the enum, "unknown". */
	if (size) {
		unsigned v = data[size - 1];
		const char *name = nsl_drop_name((enum nsl_drop)v);

		CHECK(name != NULL);
		CHECK((v < NSL_DROP_MAX) == (strcmp(name, "unknown") != 0));
	}
	return 0;
}
