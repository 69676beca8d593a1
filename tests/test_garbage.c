/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Garbage input: a seeded corpus of bad frames, one group per drop reason, written to a classic
 * pcap file and replayed through a net_pcap receive port into a link (peer SELF of session
 * SESSION, knowing only peer PEER). Each frame carries exactly one defect, so after the replay
 * every drop counter equals the size of its group and no message has been delivered.
 *
 * Reasons the parser gives (wire.c) come from well-formed frames damaged after encoding: a byte
 * flipped to break a checksum, or a field changed and the header encoded again so that only the
 * field is wrong. Reasons the link gives (link_rx.c) come from frames the parser accepts but the
 * link does not expect: another session or peer, message ids outside the credit. Three slots are
 * posted: slot CRC_ID takes, again and again, a one-frame message whose CRC32C never holds
 * (msg_crc); slot DUP_ID is started by one valid "lead" frame, then hit by copies of that frame
 * (duplicate), by frames that contradict its message's shape (bad_offset, from the link) and by
 * later frames of its message whose payload fails their own CRC (frame_crc);
 * slot BIG_ID is too small for every message that comes for it (too_big). Slot CRC_ID never
 * completes, so BIG_ID's failed slot is never handed back: nothing at all is delivered.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cunit_main.h"
#include "nsplit/eal.h"
#include "nsplit/error.h"
#include "nsplit/link.h"
#include "nsplit/port.h"
#include "nsplit/rng.h"
#include "nsplit/wire.h"

#define SEED 0x6a7b2c11u
#define SESSION 0x5eed
#define SELF 1
#define PEER 0
#define PEER_IP 0x0a4d0001u     /* 10.77.0.1, the link's default for peer 0 */
#define SELF_IP 0x0a4d0002u
#define MTU 1500
#define FRAG_MAX (MTU - NSL_WIRE_IP_LEN - NSL_WIRE_UDP_LEN - NSL_WIRE_HDR_LEN)
#define FRAME_MAX (NSL_WIRE_ETH_LEN + MTU)
#define L2L4_LEN (NSL_WIRE_ETH_LEN + NSL_WIRE_IP_LEN + NSL_WIRE_UDP_LEN)
#define ACK_MAX_LEN (NSL_WIRE_ACK_LEN + 8 * NSL_WIRE_ACK_MAX_RANGES)
#define GROUP_MIN 7
#define GROUP_MAX 40
#define CORPUS_MAX 1024
#define SLOTS 4                 /* a power of two above POSTED */
#define SLOT_CAP (64u << 10)
#define BIG_CAP 4096u
#define CRC_ID 0
#define DUP_ID 1
#define BIG_ID 2
#define POSTED 3
/* The pcap PMD returns 0 frames once the file is exhausted: this many in a row ends the replay. */
#define IDLE_POLLS 1000
#define DEADLINE_S 60

struct frame {
	uint32_t len;
	enum nsl_drop want;       /* the counter this frame must land in (NONE: accepted) */
	bool past_parser;         /* nsl_wire_parse accepts it; the link drops it */
	uint8_t b[FRAME_MAX];
};

/* The one message every frame for slot CRC_ID (or DUP_ID) belongs to. */
struct shape {
	uint64_t total;
	uint16_t frag;
	uint32_t crc;
	uint8_t type;
};

static struct frame corpus[CORPUS_MAX];
static unsigned corpus_n;
static unsigned expected[NSL_DROP_MAX];
static unsigned accepted;
static uint32_t order[CORPUS_MAX];   /* corpus indices in the order of the pcap file */
static uint64_t seed = SEED;
static struct shape crc_shape, dup_shape;

static uint64_t pick(struct nsl_rng *r, uint64_t lo, uint64_t hi)
{
	return lo + nsl_rng_below(r, hi - lo + 1);
}

static uint64_t pick_not(struct nsl_rng *r, uint64_t lo, uint64_t hi, uint64_t not)
{
	uint64_t v;

	while ((v = pick(r, lo, hi)) == not)
		;
	return v;
}

static void fill(struct nsl_rng *r, uint8_t *p, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		p[i] = (uint8_t)nsl_rng_next(r);
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint8_t *ip_of(struct frame *f)
{
	return f->b + NSL_WIRE_ETH_LEN;
}

static uint8_t *udp_of(struct frame *f)
{
	return f->b + NSL_WIRE_ETH_LEN + NSL_WIRE_IP_LEN;
}

static uint8_t *nh_of(struct frame *f)
{
	return f->b + L2L4_LEN;
}

/* After an IP field is changed on purpose, so that the checksum is not what the parser trips on. */
static void ip_fix(struct frame *f)
{
	uint8_t *ip = ip_of(f);
	uint32_t sum = 0;

	put16(ip + 10, 0);
	for (int i = 0; i < NSL_WIRE_IP_LEN; i += 2)
		sum += get16(ip + i);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	put16(ip + 10, (uint16_t)~sum);
}

/* Ethernet, IPv4 and UDP for `udp_payload` bytes; MACs and the IP id vary, the link reads neither. */
static void l2l4(struct nsl_rng *r, struct frame *f, uint32_t udp_payload)
{
	uint8_t src[6], dst[6];

	fill(r, src, 6);
	fill(r, dst, 6);
	src[0] &= 0xfe;
	nsl_wire_l2l4_encode(f->b, src, dst, PEER_IP, SELF_IP, NSL_WIRE_UDP_PORT, udp_payload,
			     (uint16_t)nsl_rng_next(r));
	f->len = L2L4_LEN + udp_payload;
}

/* A header from PEER to SELF in this session, tags and message id drawn from the seed. */
static void base_hdr(struct nsl_rng *r, struct nsl_wire_hdr *h, uint8_t type)
{
	*h = (struct nsl_wire_hdr){
		.version = NSL_WIRE_VERSION,
		.type = type,
		.flags = (uint16_t)nsl_rng_below(r, 4),
		.session = SESSION,
		.src = PEER,
		.dst = SELF,
		.stage = (uint16_t)nsl_rng_below(r, 16),
		.micro = (uint16_t)nsl_rng_below(r, 16),
		.round = (uint32_t)nsl_rng_below(r, 100),
		.step = (uint32_t)nsl_rng_below(r, 100000),
		.msg_id = (uint32_t)nsl_rng_next(r),
		.msg_crc = (uint32_t)nsl_rng_next(r),
	};
}

static uint16_t frame_len_of(const struct nsl_wire_hdr *h)
{
	uint64_t left = h->total_len - h->offset;

	return (uint16_t)(left < h->frag ? left : h->frag);
}

/* A data header that obeys the offset/length rules, for small messages and 1 TiB ones alike. */
static void data_hdr(struct nsl_rng *r, struct nsl_wire_hdr *h)
{
	uint64_t nframes;

	base_hdr(r, h, (uint8_t)pick(r, NSL_MSG_ACTIVATION, NSL_MSG_CONTROL));
	h->frag = (uint16_t)pick(r, 1, FRAG_MAX);
	h->total_len = nsl_rng_below(r, 2) ? pick(r, 1, 8ull * h->frag) : pick(r, 1, NSL_WIRE_MAX_MSG);
	nframes = (h->total_len + h->frag - 1) / h->frag;
	h->offset = nsl_rng_below(r, nframes) * h->frag;
	h->len = frame_len_of(h);
}

/* Encode h into f with the CRC32C of the payload f now holds (`payload` bytes). */
static void seal(struct frame *f, const struct nsl_wire_hdr *h, uint32_t payload)
{
	struct nsl_wire_hdr c = *h;

	c.frame_crc = nsl_crc32c(0, f->b + NSL_WIRE_FRAME_HDR, payload);
	nsl_wire_hdr_encode(nh_of(f), &c);
}

/* A frame of h with `payload` random bytes (h->len may say otherwise, on purpose), its own CRC right. */
static void emit_data(struct nsl_rng *r, struct frame *f, const struct nsl_wire_hdr *h, uint32_t payload)
{
	l2l4(r, f, NSL_WIRE_HDR_LEN + payload);
	fill(r, f->b + NSL_WIRE_FRAME_HDR, payload);
	seal(f, h, payload);
}

/* A well-formed ack payload with `nranges` ranges; range `zero_at` (if < nranges) counts 0. */
static uint32_t ack_body(struct nsl_rng *r, uint8_t *p, uint16_t nranges, uint32_t zero_at)
{
	struct nsl_wire_ack a = {
		.done_below = (uint32_t)nsl_rng_next(r),
		.credit = (uint32_t)nsl_rng_next(r),
		.about = (uint32_t)nsl_rng_next(r),
		.status = nsl_rng_below(r, 2) ? EMSGSIZE : 0,
		.received = (uint32_t)nsl_rng_below(r, 1u << 20),
		.nranges = nranges,
		.flags = (uint16_t)nsl_rng_below(r, 4),
	};

	for (uint32_t i = 0; i < nranges; i++)
		a.ranges[i] = (struct nsl_wire_range){ (uint32_t)nsl_rng_next(r), i == zero_at ? 0 : (uint32_t)pick(r, 1, 4096) };
	return nsl_wire_ack_encode(p, &a);
}

/* An ack header as wire.h lays it out for a payload of `len` bytes at body. */
static void ack_hdr(struct nsl_rng *r, struct nsl_wire_hdr *h, const uint8_t *body, uint32_t len)
{
	base_hdr(r, h, NSL_MSG_ACK);
	h->stage = h->micro = 0;
	h->round = h->step = h->msg_id = 0;
	h->offset = 0;
	h->total_len = len;
	h->frag = h->len = (uint16_t)len;
	h->msg_crc = 0;
	h->frame_crc = nsl_crc32c(0, body, len);
}

static void emit_ack(struct nsl_rng *r, struct frame *f, const struct nsl_wire_hdr *h, const uint8_t *body,
		     uint32_t len)
{
	l2l4(r, f, NSL_WIRE_HDR_LEN + len);
	nsl_wire_hdr_encode(nh_of(f), h);
	memcpy(f->b + NSL_WIRE_FRAME_HDR, body, len);
}

/* A frame the link would take (a data frame, or one time in four an ack), and its header. */
static void good_frame(struct nsl_rng *r, struct frame *f, struct nsl_wire_hdr *h)
{
	uint8_t body[ACK_MAX_LEN];
	uint32_t len;

	if (nsl_rng_below(r, 4) == 0) {
		len = ack_body(r, body, (uint16_t)nsl_rng_below(r, NSL_WIRE_ACK_MAX_RANGES + 1), UINT32_MAX);
		ack_hdr(r, h, body, len);
		emit_ack(r, f, h, body, len);
	} else {
		data_hdr(r, h);
		emit_data(r, f, h, h->len);
	}
}

/* ---- one maker per drop reason: each returns a frame with exactly that defect ---- */

static void make_not_ipv4(struct nsl_rng *r, struct frame *f)
{
	static const uint16_t others[] = { 0x86dd, 0x0806, 0x8100, 0x88cc, 0x88b5, 0x0000, 0xffff, 0x0801 };
	struct nsl_wire_hdr h;

	good_frame(r, f, &h);
	switch (nsl_rng_below(r, 3)) {
	case 0:
		put16(f->b + 12, others[nsl_rng_below(r, sizeof(others) / sizeof(others[0]))]);
		break;
	case 1:
		/* Short frames of another protocol: the EtherType is read before any IP length. */
		f->len = (uint32_t)pick(r, NSL_WIRE_ETH_LEN, 120);
		fill(r, f->b, f->len);
		put16(f->b + 12, (uint16_t)pick_not(r, 0, 0xffff, 0x0800));
		break;
	default:
		/* IP options (IHL above 5) or another IP version. */
		ip_of(f)[0] = (uint8_t)pick_not(r, 0, 0xff, 0x45);
		ip_fix(f);
	}
}

static void make_not_udp(struct nsl_rng *r, struct frame *f)
{
	struct nsl_wire_hdr h;
	uint16_t off;

	good_frame(r, f, &h);
	switch (nsl_rng_below(r, 3)) {
	case 0:
		ip_of(f)[9] = (uint8_t)pick_not(r, 0, 0xff, 17);
		ip_fix(f);
		/* The protocol is read before the lengths, so a cut does not change the verdict. */
		if (nsl_rng_below(r, 2))
			f->len = (uint32_t)pick(r, NSL_WIRE_ETH_LEN + NSL_WIRE_IP_LEN, f->len);
		break;
	case 1:
		/* A fragment: more-fragments set, or an offset, with or without DF. */
		off = (uint16_t)nsl_rng_below(r, 0x2000);
		put16(ip_of(f) + 6, (uint16_t)((nsl_rng_below(r, 2) ? 0x4000 : 0) |
					     (off == 0 || nsl_rng_below(r, 2) ? 0x2000 : 0) | off));
		ip_fix(f);
		break;
	default:
		/* Another UDP destination port: not covered by any checksum nsplit uses. */
		put16(udp_of(f) + 2, (uint16_t)pick_not(r, 0, 0xffff, NSL_WIRE_UDP_PORT));
	}
}

static void make_truncated(struct nsl_rng *r, struct frame *f)
{
	struct nsl_wire_hdr h;
	uint16_t ip_len;
	uint32_t payload;

	good_frame(r, f, &h);
	ip_len = get16(ip_of(f) + 2);
	switch (nsl_rng_below(r, 7)) {
	case 0:
		f->len = (uint32_t)pick(r, 1, NSL_WIRE_ETH_LEN - 1);
		break;
	case 1:
		f->len = (uint32_t)pick(r, NSL_WIRE_ETH_LEN, NSL_WIRE_ETH_LEN + NSL_WIRE_IP_LEN - 1);
		break;
	case 2:
		/* Cut anywhere after the IP header: shorter than the IP length says. */
		f->len = (uint32_t)pick(r, NSL_WIRE_ETH_LEN + NSL_WIRE_IP_LEN, f->len - 1);
		break;
	case 3:
		put16(ip_of(f) + 2, (uint16_t)pick(r, 0, NSL_WIRE_IP_LEN + NSL_WIRE_UDP_LEN - 1));
		ip_fix(f);
		break;
	case 4:
		put16(udp_of(f) + 4, (uint16_t)pick_not(r, 0, 0xffff, ip_len - NSL_WIRE_IP_LEN));
		break;
	case 5:
		/* IP and UDP agree, but leave no room for a whole nsplit header; its first bytes stay. */
		l2l4(r, f, (uint32_t)pick(r, 0, NSL_WIRE_HDR_LEN - 1));
		break;
	default:
		/* A valid header whose len is not the payload that follows it. */
		payload = (uint32_t)pick_not(r, 0, FRAG_MAX, h.len);
		l2l4(r, f, NSL_WIRE_HDR_LEN + payload);
		fill(r, f->b + NSL_WIRE_FRAME_HDR, payload);
	}
}

static void make_bad_checksum(struct nsl_rng *r, struct frame *f)
{
	/* IP header bytes no earlier check reads: TOS, id, TTL, checksum, addresses. */
	static const uint8_t ip_bytes[] = { 1, 4, 5, 8, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19 };
	struct nsl_wire_hdr h;

	good_frame(r, f, &h);
	/* One flipped byte: the IP sum and CRC32C both catch every single-byte error. */
	if (nsl_rng_below(r, 2))
		ip_of(f)[ip_bytes[nsl_rng_below(r, sizeof(ip_bytes))]] ^= (uint8_t)pick(r, 1, 255);
	else
		nh_of(f)[nsl_rng_below(r, NSL_WIRE_HDR_LEN)] ^= (uint8_t)pick(r, 1, 255);
}

static void make_bad_version(struct nsl_rng *r, struct frame *f)
{
	struct nsl_wire_hdr h;

	good_frame(r, f, &h);
	h.version = (uint8_t)pick_not(r, 0, 0xff, NSL_WIRE_VERSION);
	nsl_wire_hdr_encode(nh_of(f), &h);
}

static void make_bad_type(struct nsl_rng *r, struct frame *f)
{
	struct nsl_wire_hdr h;

	good_frame(r, f, &h);
	h.type = nsl_rng_below(r, 3) == 0 ? 0 : (uint8_t)pick(r, NSL_MSG_TYPE_MAX + 1, 0xff);
	nsl_wire_hdr_encode(nh_of(f), &h);
}

static void make_unknown_session(struct nsl_rng *r, struct frame *f)
{
	struct nsl_wire_hdr h;

	good_frame(r, f, &h);
	h.session = (uint32_t)pick_not(r, 0, UINT32_MAX, SESSION);
	/* The session is checked before the peers: strangers of another run count as the session. */
	if (nsl_rng_below(r, 3) == 0) {
		h.src = (uint16_t)nsl_rng_next(r);
		h.dst = (uint16_t)nsl_rng_next(r);
	}
	nsl_wire_hdr_encode(nh_of(f), &h);
	f->past_parser = true;
}

static void make_unknown_peer(struct nsl_rng *r, struct frame *f)
{
	struct nsl_wire_hdr h;

	good_frame(r, f, &h);
	if (nsl_rng_below(r, 2))
		h.dst = (uint16_t)pick_not(r, 0, 0xffff, SELF);
	else
		h.src = (uint16_t)pick_not(r, 0, 0xffff, PEER);    /* SELF included: never its own peer */
	nsl_wire_hdr_encode(nh_of(f), &h);
	f->past_parser = true;
}

/* A frame for slot DUP_ID, well-formed on its own, whose total, frag or type is not the lead's. */
static void contradict_lead(struct nsl_rng *r, struct nsl_wire_hdr *h)
{
	base_hdr(r, h, dup_shape.type);
	h->msg_id = DUP_ID;
	h->total_len = dup_shape.total;
	h->frag = dup_shape.frag;
	h->msg_crc = dup_shape.crc;
	switch (nsl_rng_below(r, 3)) {
	case 0:
		h->total_len = pick_not(r, 1, nsl_rng_below(r, 2) ? SLOT_CAP : NSL_WIRE_MAX_MSG, dup_shape.total);
		break;
	case 1:
		h->frag = (uint16_t)pick_not(r, 1, FRAG_MAX, dup_shape.frag);
		break;
	default:
		h->type = (uint8_t)pick_not(r, NSL_MSG_ACTIVATION, NSL_MSG_CONTROL, dup_shape.type);
	}
	h->offset = nsl_rng_below(r, (h->total_len + h->frag - 1) / h->frag) * h->frag;
	h->len = frame_len_of(h);
}

static void make_bad_offset(struct nsl_rng *r, struct frame *f)
{
	struct nsl_wire_hdr h;

	data_hdr(r, &h);
	switch (nsl_rng_below(r, 7)) {
	case 0:
		h.total_len = 0;
		break;
	case 1:
		h.total_len = NSL_WIRE_MAX_MSG + pick(r, 1, NSL_WIRE_MAX_MSG);
		h.offset = 0;
		h.len = h.frag;
		break;
	case 2:
		h.frag = 0;
		break;
	case 3:
		h.offset = h.total_len + nsl_rng_below(r, 1ull << 32);
		break;
	case 4:
		/* Inside the message but not on a frame boundary. */
		h.frag = (uint16_t)pick(r, 2, FRAG_MAX);
		h.total_len = pick(r, h.frag + 1u, NSL_WIRE_MAX_MSG);
		h.offset = nsl_rng_below(r, (h.total_len - 1) / h.frag + 1) * h.frag + pick(r, 1, h.frag - 1u);
		if (h.offset >= h.total_len)
			h.offset = pick(r, 1, h.frag - 1u);
		h.len = frame_len_of(&h);
		break;
	case 5:
		h.len = (uint16_t)pick_not(r, 0, FRAG_MAX, frame_len_of(&h));
		break;
	default:
		contradict_lead(r, &h);
		f->past_parser = true;
	}
	emit_data(r, f, &h, h.len);
}

static void make_bad_ack(struct nsl_rng *r, struct frame *f)
{
	uint8_t body[FRAG_MAX];
	struct nsl_wire_hdr h;
	uint32_t len, n;

	switch (nsl_rng_below(r, 8)) {
	case 0:
		len = ack_body(r, body, (uint16_t)nsl_rng_below(r, 9), UINT32_MAX);
		ack_hdr(r, &h, body, len);
		h.offset = pick(r, 1, UINT64_MAX - 1);
		break;
	case 1:
		len = ack_body(r, body, (uint16_t)nsl_rng_below(r, 9), UINT32_MAX);
		ack_hdr(r, &h, body, len);
		h.total_len = pick_not(r, 0, NSL_WIRE_MAX_MSG, len);
		break;
	case 2:
		len = (uint32_t)nsl_rng_below(r, NSL_WIRE_ACK_LEN);
		fill(r, body, len);
		ack_hdr(r, &h, body, len);
		break;
	/* The rest pass the parser; the link reads the payload and refuses it. */
	case 3:
		len = ack_body(r, body, (uint16_t)nsl_rng_below(r, NSL_WIRE_ACK_MAX_RANGES + 1), UINT32_MAX);
		ack_hdr(r, &h, body, len);
		h.frame_crc ^= (uint32_t)pick(r, 1, UINT32_MAX);
		f->past_parser = true;
		break;
	case 4:
		len = ack_body(r, body, (uint16_t)nsl_rng_below(r, 9), UINT32_MAX);
		put16(body + 20, (uint16_t)pick(r, NSL_WIRE_ACK_MAX_RANGES + 1, 0xffff));
		ack_hdr(r, &h, body, len);
		f->past_parser = true;
		break;
	case 5:
		/* Bytes after the last range. */
		len = ack_body(r, body, (uint16_t)nsl_rng_below(r, 60), UINT32_MAX);
		n = (uint32_t)pick(r, 1, 7);
		fill(r, body + len, n);
		len += n;
		ack_hdr(r, &h, body, len);
		f->past_parser = true;
		break;
	case 6:
		n = (uint32_t)pick(r, 1, NSL_WIRE_ACK_MAX_RANGES);
		len = ack_body(r, body, (uint16_t)n, (uint32_t)nsl_rng_below(r, n));
		ack_hdr(r, &h, body, len);
		f->past_parser = true;
		break;
	default:
		/* Longer than any ack can be. */
		len = (uint32_t)pick(r, ACK_MAX_LEN + 1, FRAG_MAX);
		fill(r, body, len);
		ack_hdr(r, &h, body, len);
		f->past_parser = true;
	}
	emit_ack(r, f, &h, body, len);
}

static void make_no_slot(struct nsl_rng *r, struct frame *f)
{
	struct nsl_wire_hdr h;

	data_hdr(r, &h);
	h.msg_id = (uint32_t)pick(r, POSTED, INT32_MAX);
	emit_data(r, f, &h, h.len);
	f->past_parser = true;
}

static void make_stale(struct nsl_rng *r, struct frame *f)
{
	struct nsl_wire_hdr h;

	/* Ids compare as serial numbers: with nothing received yet, the upper half lies in the past. */
	data_hdr(r, &h);
	h.msg_id = (uint32_t)pick(r, 1u << 31, UINT32_MAX);
	emit_data(r, f, &h, h.len);
	f->past_parser = true;
}

static void shape_hdr(struct nsl_rng *r, struct nsl_wire_hdr *h, const struct shape *s, uint32_t id)
{
	base_hdr(r, h, s->type);
	h->msg_id = id;
	h->total_len = s->total;
	h->frag = s->frag;
	h->msg_crc = s->crc;
	h->offset = 0;
	h->len = frame_len_of(h);
}

static void make_msg_crc(struct nsl_rng *r, struct frame *f)
{
	struct nsl_wire_hdr h;
	uint8_t *payload = f->b + NSL_WIRE_FRAME_HDR;

	shape_hdr(r, &h, &crc_shape, CRC_ID);
	emit_data(r, f, &h, h.len);
	/* A payload that happened to match would be delivered. Its own frame CRC holds: the message's does not. */
	while (nsl_crc32c(0, payload, h.len) == crc_shape.crc)
		fill(r, payload, h.len);
	seal(f, &h, h.len);
	f->past_parser = true;
}

/* A later frame of slot DUP_ID's message whose payload fails its frame CRC (so none is ever taken). */
static void make_frame_crc(struct nsl_rng *r, struct frame *f)
{
	struct nsl_wire_hdr h;
	uint64_t nframes = (dup_shape.total + dup_shape.frag - 1) / dup_shape.frag;

	shape_hdr(r, &h, &dup_shape, DUP_ID);
	h.offset = pick(r, 1, nframes - 1) * dup_shape.frag;
	h.len = frame_len_of(&h);
	l2l4(r, f, NSL_WIRE_HDR_LEN + h.len);
	fill(r, f->b + NSL_WIRE_FRAME_HDR, h.len);
	h.frame_crc = nsl_crc32c(0, f->b + NSL_WIRE_FRAME_HDR, h.len) ^ (uint32_t)pick(r, 1, UINT32_MAX);
	nsl_wire_hdr_encode(nh_of(f), &h);
	f->past_parser = true;
}

/* Any frame of a message longer than slot BIG_ID: the first fails the slot, the rest find it failed. */
static void make_too_big(struct nsl_rng *r, struct frame *f)
{
	struct nsl_wire_hdr h;

	do {
		data_hdr(r, &h);
	} while (h.total_len <= BIG_CAP);
	h.msg_id = BIG_ID;
	emit_data(r, f, &h, h.len);
	f->past_parser = true;
}

/* Frame 0 of slot DUP_ID's message: the first copy (the lead) is taken, every later one is not. */
static void make_duplicate(struct nsl_rng *r, struct frame *f)
{
	struct nsl_wire_hdr h;

	shape_hdr(r, &h, &dup_shape, DUP_ID);
	emit_data(r, f, &h, h.len);
	f->past_parser = true;
}

static const struct group {
	enum nsl_drop reason;
	void (*make)(struct nsl_rng *r, struct frame *f);
} groups[] = {
	{ NSL_DROP_NOT_IPV4, make_not_ipv4 },
	{ NSL_DROP_NOT_UDP, make_not_udp },
	{ NSL_DROP_TRUNCATED, make_truncated },
	{ NSL_DROP_BAD_CHECKSUM, make_bad_checksum },
	{ NSL_DROP_BAD_VERSION, make_bad_version },
	{ NSL_DROP_BAD_TYPE, make_bad_type },
	{ NSL_DROP_UNKNOWN_SESSION, make_unknown_session },
	{ NSL_DROP_UNKNOWN_PEER, make_unknown_peer },
	{ NSL_DROP_BAD_OFFSET, make_bad_offset },
	{ NSL_DROP_BAD_ACK, make_bad_ack },
	{ NSL_DROP_DUPLICATE, make_duplicate },
	{ NSL_DROP_NO_SLOT, make_no_slot },
	{ NSL_DROP_STALE, make_stale },
	{ NSL_DROP_MSG_CRC, make_msg_crc },
	{ NSL_DROP_TOO_BIG, make_too_big },
	{ NSL_DROP_FRAME_CRC, make_frame_crc },
};

_Static_assert(1 + sizeof(groups) / sizeof(groups[0]) * GROUP_MAX <= CORPUS_MAX, "room for every group and the lead");

static struct frame *corpus_next(enum nsl_drop want)
{
	struct frame *f = &corpus[corpus_n++];

	memset(f, 0, sizeof(*f));
	f->want = want;
	return f;
}

/* The lead frame first (duplicates and contradictions need its slot started), the rest shuffled. */
static void corpus_build(uint64_t s)
{
	struct nsl_rng r;
	struct frame *f;

	nsl_rng_seed(&r, s, 0);
	crc_shape.frag = (uint16_t)pick(&r, 1, FRAG_MAX);
	crc_shape.total = pick(&r, 1, crc_shape.frag);
	crc_shape.crc = (uint32_t)nsl_rng_next(&r);
	crc_shape.type = (uint8_t)pick(&r, NSL_MSG_ACTIVATION, NSL_MSG_CONTROL);
	dup_shape.frag = (uint16_t)pick(&r, 1, FRAG_MAX);
	dup_shape.total = pick(&r, dup_shape.frag + 1u, 16u * dup_shape.frag);
	dup_shape.crc = (uint32_t)nsl_rng_next(&r);
	dup_shape.type = (uint8_t)pick(&r, NSL_MSG_ACTIVATION, NSL_MSG_CONTROL);
	f = corpus_next(NSL_DROP_NONE);
	make_duplicate(&r, f);
	accepted = 1;
	for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
		unsigned n = (unsigned)pick(&r, GROUP_MIN, GROUP_MAX);

		for (unsigned i = 0; i < n; i++)
			groups[g].make(&r, corpus_next(groups[g].reason));
		expected[groups[g].reason] += n;
	}
	for (uint32_t i = 0; i < corpus_n; i++)
		order[i] = i;
	nsl_rng_shuffle_u32(&r, order + 1, corpus_n - 1);
}

static void dump_frame(const struct frame *f)
{
	for (uint32_t i = 0; i < f->len; i++)
		printf("%02x%s", f->b[i], i % 32 == 31 || i + 1 == f->len ? "\n" : " ");
}

/* The corpus itself: every frame is what its group says, so the replay's counts mean something. */
static void test_corpus(void)
{
	unsigned bad = 0, same = 0;

	for (unsigned i = 0; i < corpus_n; i++) {
		const struct frame *f = &corpus[i];
		enum nsl_drop want = f->past_parser ? NSL_DROP_NONE : f->want;
		struct nsl_wire_frame wf;
		enum nsl_drop got = nsl_wire_parse(f->b, f->len, NSL_WIRE_UDP_PORT, &wf);

		CU_ASSERT(f->len >= 1 && f->len <= FRAME_MAX);
		if (got != want) {
			printf("\nframe %u of group %s (%u bytes): nsl_wire_parse says %s, expected %s\n", i,
			       nsl_drop_name(f->want), f->len, nsl_drop_name(got), nsl_drop_name(want));
			dump_frame(f);
			bad++;
		}
		/* Cuts of a few bytes may meet by chance; anything with an Ethernet header must differ. */
		for (unsigned j = 0; j < i && f->len >= NSL_WIRE_ETH_LEN; j++)
			if (corpus[j].len == f->len && memcmp(corpus[j].b, f->b, f->len) == 0)
				same++;
	}
	for (int d = 1; d < NSL_DROP_MAX; d++)
		if (expected[d] != 0)
			CU_ASSERT(expected[d] >= GROUP_MIN && expected[d] <= GROUP_MAX);
	CU_ASSERT_EQUAL(bad, 0);
	CU_ASSERT_EQUAL(same, 0);
}

struct pcap_file_hdr {
	uint32_t magic;
	uint16_t major, minor;
	int32_t zone;
	uint32_t sigfigs, snaplen, linktype;
};

struct pcap_rec_hdr {
	uint32_t sec, usec, caplen, len;
};

_Static_assert(sizeof(struct pcap_file_hdr) == 24, "pcap global header is 24 bytes");
_Static_assert(sizeof(struct pcap_rec_hdr) == 16, "pcap record header is 16 bytes");

/* Classic pcap in host order (the magic tells readers which), LINKTYPE_ETHERNET. 0 or -errno. */
static int pcap_write(const char *path, const uint32_t *order, unsigned n)
{
	const struct pcap_file_hdr fh = { 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1 };
	FILE *fp = fopen(path, "wb");
	int rc = 0;

	if (fp == NULL)
		return -errno;
	if (fwrite(&fh, sizeof(fh), 1, fp) != 1)
		rc = -EIO;
	for (unsigned i = 0; i < n && rc == 0; i++) {
		const struct frame *f = &corpus[order[i]];
		const struct pcap_rec_hdr rh = { 1700000000u + i / 1000000u, i % 1000000u, f->len, f->len };

		if (fwrite(&rh, sizeof(rh), 1, fp) != 1 || fwrite(f->b, f->len, 1, fp) != 1)
			rc = -EIO;
	}
	if (fclose(fp) != 0 && rc == 0)
		rc = -errno;
	return rc;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Poll until the file is exhausted: 0, a port's negative errno, or -ETIMEDOUT. */
static int replay(struct nsl_link *l, unsigned *polls)
{
	unsigned idle = 0;
	double t0 = now_s();
	int rc;

	*polls = 0;
	while (idle < IDLE_POLLS) {
		if (now_s() - t0 > DEADLINE_S)
			return -ETIMEDOUT;
		if ((rc = nsl_link_poll(l)) < 0)
			return rc;
		idle = rc == 0 ? idle + 1 : 0;
		(*polls)++;
	}
	return 0;
}

static void check_counts(struct nsl_link *l)
{
	struct nsl_link_stats st;
	struct nsl_link_peer_stats ps = { 0 };
	struct nsl_msg *m[POSTED];
	uint64_t dropped = 0;

	nsl_link_stats(l, &st);
	printf("\n  seed %#" PRIx64 ", %u frames (%u accepted)\n  %-16s %8s %8s\n", seed, corpus_n, accepted, "reason",
	       "frames", "counted");
	for (int d = 1; d < NSL_DROP_MAX; d++) {
		printf("  %-16s %8u %8" PRIu64 "%s\n", nsl_drop_name(d), expected[d], st.drops[d],
		       st.drops[d] == expected[d] ? "" : "   <-- MISMATCH");
		CU_ASSERT_EQUAL(st.drops[d], expected[d]);
		dropped += st.drops[d];
	}
	CU_ASSERT_EQUAL(st.drops[NSL_DROP_NONE], 0);
	/* Every frame of the file was read, and counted once. */
	CU_ASSERT_EQUAL(dropped + accepted, corpus_n);
	CU_ASSERT_EQUAL(nsl_link_recv(l, m, POSTED), 0);
	CU_ASSERT_EQUAL(nsl_link_sent(l, m, POSTED), 0);
	CU_ASSERT_EQUAL(nsl_link_peer_stats(l, PEER, &ps), 0);
	CU_ASSERT_EQUAL(ps.msgs_rx, 0);
	CU_ASSERT_EQUAL(ps.acks_rx, 0);
	/* msg_crc frames are copied into their slot before the whole message fails its CRC. */
	CU_ASSERT_EQUAL(ps.frames_rx, accepted + expected[NSL_DROP_MSG_CRC]);
	CU_ASSERT_EQUAL(ps.crc_failures, expected[NSL_DROP_MSG_CRC]);
	CU_ASSERT_EQUAL(nsl_link_dead_peer(l), -1);
	printf("  acks sent back: %" PRIu64 "\n", ps.acks_tx);
}

/* SELF's link with PEER on port, and slots CRC_ID, DUP_ID and BIG_ID posted. NULL with a message. */
static struct nsl_link *link_up(struct nsl_port *port, struct nsl_msg slots[POSTED])
{
	/* A long peer timeout: the started slots are work pending, and a slow (ASan) run must not kill PEER. */
	struct nsl_link_conf c = { .session = SESSION, .self = SELF, .slots = SLOTS, .max_msg = SLOT_CAP,
				   .peer_timeout_ms = 600000 };
	struct nsl_link *l = nsl_link_create(&c);

	if (l == NULL)
		return NULL;
	if (nsl_link_add_peer(l, PEER, port, NULL, 0) < 0)
		goto fail;
	for (int i = 0; i < POSTED; i++) {
		uint64_t cap = i == BIG_ID ? BIG_CAP : SLOT_CAP;

		slots[i] = (struct nsl_msg){ .data = nsl_dp_alloc(cap, 0), .len = cap, .peer = PEER };
		if (slots[i].data == NULL || nsl_link_post(l, &slots[i]) < 0)
			goto fail;
	}
	return l;
fail:
	nsl_link_free(l);
	return NULL;
}

static void test_replay(void)
{
	char dir[] = "/tmp/nsl-garbage-XXXXXX", rx[64], tx[64], devargs[192];
	struct nsl_msg slots[POSTED] = { 0 };
	struct nsl_port *port = NULL;
	struct nsl_link *link = NULL;
	unsigned polls;
	double t0;
	int rc;

	CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
	snprintf(rx, sizeof(rx), "%s/rx.pcap", dir);
	snprintf(tx, sizeof(tx), "%s/tx.pcap", dir);
	snprintf(devargs, sizeof(devargs), "net_pcap0,rx_pcap=%s,tx_pcap=%s", rx, tx);
	if ((rc = pcap_write(rx, order, corpus_n)) < 0) {
		printf("\ntest_garbage: cannot write %s: %s\n", rx, strerror(-rc));
		CU_FAIL("pcap file not written");
		goto out;
	}
	if ((port = nsl_port_open(devargs, &(struct nsl_port_conf){ .mtu = MTU })) == NULL) {
		printf("\ntest_garbage: %s\n  This test needs DPDK's pcap PMD (librte_net_pcap.so, which EAL loads from "
		       "/usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0 on Debian, and libpcap); it does not skip without it.\n",
		       nsl_error_last());
		CU_FAIL("net_pcap port did not open");
		goto out;
	}
	if ((link = link_up(port, slots)) == NULL) {
		printf("\ntest_garbage: %s\n", nsl_error_last());
		CU_FAIL("link did not come up");
		goto out;
	}
	t0 = now_s();
	rc = replay(link, &polls);
	if (rc < 0)
		printf("\ntest_garbage: replay stopped: %s\n", rc == -ETIMEDOUT ? "the port never went idle" : nsl_error_last());
	CU_ASSERT_EQUAL(rc, 0);
	printf("\n  replayed %s in %.1f ms, %u polls", rx, 1e3 * (now_s() - t0), polls);
	check_counts(link);
out:
	/* The link holds the posted slots and mbufs of the port's pools: it goes first. */
	nsl_link_free(link);
	for (int i = 0; i < POSTED; i++)
		nsl_dp_free(slots[i].data);
	nsl_port_close(port);
	unlink(rx);
	unlink(tx);
	rmdir(dir);
}

int main(void)
{
	static const struct nsl_test_case cases[] = {
		{ "corpus: each frame carries exactly its group's defect", test_corpus },
		{ "replayed through net_pcap: every drop counter equals its group", test_replay },
		{ NULL, NULL },
	};
	const char *s = getenv("NSL_TEST_SEED");
	int rc;

	/* NSL_TEST_SEED=<n> replays another corpus; the default keeps runs comparable. */
	if (s != NULL)
		seed = strtoull(s, NULL, 0);
	corpus_build(seed);
	if (nsl_eal_init(&(struct nsl_eal_conf){ 0 }) < 0) {
		fprintf(stderr, "test_garbage: %s\n", nsl_error_last());
		return 1;
	}
	rc = nsl_test_run("garbage", cases);
	nsl_eal_cleanup();
	return rc;
}
