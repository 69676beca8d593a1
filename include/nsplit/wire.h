/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The nsplit wire format: what one frame between two peers looks like, byte for byte.
 *
 * A message (one tensor, or one control record) of 1 byte to 2^40 bytes travels as frames of
 *
 *   Ethernet II (14 B, EtherType 0x0800)
 *   IPv4        (20 B, no options, DF set, protocol 17, header checksum filled)
 *   UDP         (8 B, source and destination port = the session's port, default 7311,
 *                checksum 0: the nsplit header has its own CRC and each message a CRC32C)
 *   nsplit      (60 B, below; every multi-byte field big-endian, network order)
 *   payload     (data frames: bytes [offset, offset + len) of the message;
 *                ack frames: a struct nsl_wire_ack, then its missing ranges)
 *
 * The nsplit header (struct nsl_wire_hdr):
 *
 *   off size field      meaning
 *     0    1 version    NSL_WIRE_VERSION (2); anything else is dropped
 *     1    1 type       enum nsl_msg_type
 *     2    2 flags      NSL_WIRE_F_* (poll: answer with an ack now; retransmit)
 *     4    4 session    the run's session id; frames of other runs are dropped
 *     8    2 src        sending peer id
 *    10    2 dst        receiving peer id
 *    12    2 stage      model stage the tensor belongs to
 *    14    2 micro      micro-batch within the step
 *    16    4 round      round (pass over one shard)
 *    20    4 step       optimizer step within the round
 *    24    4 msg_id     sequence number of the message on this (src, dst) pair, from 0
 *    28    4 msg_crc    CRC32C of the whole message, in the frame that carries its last byte
 *                       (0 in the others, and in acks)
 *    32    8 total_len  message length in bytes (acks: length of the ack payload)
 *    40    8 offset     where this frame's payload starts in the message
 *    48    2 frag       payload bytes of every frame of this message but the last
 *    50    2 len        payload bytes in this frame
 *    52    4 frame_crc  CRC32C of this frame's payload (data or ack)
 *    56    4 hdr_crc    CRC32C of bytes 0..55 of this header
 *
 * An ack has msg_id, stage, micro, round, step and msg_crc 0, offset 0 and frag = len =
 * total_len = the length of its payload. Flag bits not named below are sent as 0 and ignored on
 * receive.
 *
 * Two checks guard the payload: each frame's own CRC (a corrupted frame is dropped and sent
 * again alone, so a long message survives a lossy wire) and the message's, which the receiver
 * builds from the frames' CRCs as they arrive and checks when the last byte is in.
 *
 * A data frame is valid when offset is a multiple of frag and len == min(frag, total_len - offset).
 * The receiver places the payload at that offset in the slot posted for msg_id, so a frame can
 * never write outside its slot.
 */
#ifndef NSPLIT_WIRE_H
#define NSPLIT_WIRE_H

#include <stdbool.h>
#include <stdint.h>

#define NSL_WIRE_VERSION 2
#define NSL_WIRE_UDP_PORT 7311
#define NSL_WIRE_ETH_LEN 14
#define NSL_WIRE_IP_LEN 20
#define NSL_WIRE_UDP_LEN 8
#define NSL_WIRE_HDR_LEN 60
/* Ethernet + IPv4 + UDP + nsplit: every frame starts with this many header bytes. */
#define NSL_WIRE_FRAME_HDR (NSL_WIRE_ETH_LEN + NSL_WIRE_IP_LEN + NSL_WIRE_UDP_LEN + NSL_WIRE_HDR_LEN)
/* Messages are at most 2^40 bytes (1 TiB): offsets and lengths above are impossible. */
#define NSL_WIRE_MAX_MSG (1ull << 40)

enum nsl_msg_type {
	NSL_MSG_ACTIVATION = 1,
	NSL_MSG_GRADIENT = 2,
	NSL_MSG_LABELS = 3,
	NSL_MSG_STAGE = 4,        /* a whole stage: parameters and optimizer state */
	NSL_MSG_CONTROL = 5,
	NSL_MSG_ACK = 6,          /* receiver -> sender: progress, credits, missing ranges */
	NSL_MSG_SAVED = 7,        /* Fast N-split: forward -> backward pool, what backward needs */
	NSL_MSG_PARAMS = 8,       /* Fast N-split: backward -> forward pool, updated parameters */
	NSL_MSG_TYPE_MAX = 8,
};

#define NSL_WIRE_F_POLL 0x0001        /* the sender wants an ack for this message now */
#define NSL_WIRE_F_RETRANSMIT 0x0002  /* this frame was sent before */

/* The header in host order, as nsl_wire_hdr_decode returns it. */
struct nsl_wire_hdr {
	uint8_t version;
	uint8_t type;
	uint16_t flags;
	uint32_t session;
	uint16_t src;
	uint16_t dst;
	uint16_t stage;
	uint16_t micro;
	uint32_t round;
	uint32_t step;
	uint32_t msg_id;
	uint32_t msg_crc;
	uint64_t total_len;
	uint64_t offset;
	uint16_t frag;
	uint16_t len;
	uint32_t frame_crc;
};

/*
 * The payload of an ack frame (big-endian on the wire, 24 bytes), then nranges pairs of u32
 * (first missing frame, number of missing frames) of message `about`, counted in frames
 * (frame i carries bytes [i * frag, ...)). Without NSL_WIRE_ACK_HAS_ABOUT, about, status,
 * received and the ranges mean nothing. status is a Linux errno (only EMSGSIZE is sent).
 *
 *   off size field
 *     0    4 done_below  every message id below this one is complete (delivered or failed)
 *     4    4 credit      the sender may send message ids below this (slots posted)
 *     8    4 about       message the status and ranges are for
 *    12    4 status      0, or an errno the receiver gives that message (EMSGSIZE: no room)
 *    16    4 received    frames of `about` received so far
 *    20    2 nranges     missing ranges that follow (at most NSL_WIRE_ACK_MAX_RANGES)
 *    22    2 flags       NSL_WIRE_ACK_* (complete: `about` arrived whole; abort: below)
 */
#define NSL_WIRE_ACK_LEN 24
#define NSL_WIRE_ACK_MAX_RANGES 64
#define NSL_WIRE_ACK_COMPLETE 0x0001
#define NSL_WIRE_ACK_HAS_ABOUT 0x0002
/* The sender gives up the session: `about` names the peer it blames, `received` carries its
 * caller's word (nsplit: the last round completed), `status` its errno. Nothing else counts. */
#define NSL_WIRE_ACK_ABORT 0x0004

struct nsl_wire_range {
	uint32_t first;
	uint32_t count;
};

struct nsl_wire_ack {
	uint32_t done_below;
	uint32_t credit;
	uint32_t about;
	uint32_t status;
	uint32_t received;
	uint16_t nranges;
	uint16_t flags;
	struct nsl_wire_range ranges[NSL_WIRE_ACK_MAX_RANGES];
};

/* Why a received frame was dropped; each reason has its own counter. */
enum nsl_drop {
	NSL_DROP_NONE = 0,
	NSL_DROP_NOT_IPV4,        /* EtherType not IPv4, IP version/IHL wrong, or IP options */
	NSL_DROP_NOT_UDP,         /* IP protocol not UDP, a fragment, or another UDP port */
	NSL_DROP_TRUNCATED,       /* shorter than its headers, or than its IP/UDP lengths say */
	NSL_DROP_BAD_CHECKSUM,    /* IPv4 header checksum or nsplit header CRC wrong */
	NSL_DROP_BAD_VERSION,
	NSL_DROP_BAD_TYPE,
	NSL_DROP_UNKNOWN_SESSION,
	NSL_DROP_UNKNOWN_PEER,    /* src not a known peer, or dst not this peer */
	NSL_DROP_BAD_OFFSET,      /* offset/len/frag/total impossible or inconsistent */
	NSL_DROP_BAD_ACK,         /* ack payload malformed */
	NSL_DROP_DUPLICATE,       /* frame (or whole message) already received */
	NSL_DROP_NO_SLOT,         /* message id beyond the credit given: no slot for it */
	NSL_DROP_STALE,           /* message id already completed */
	NSL_DROP_MSG_CRC,         /* whole message failed its CRC32C: dropped, sent again */
	NSL_DROP_TOO_BIG,         /* frame of a message longer than its slot (failed: -EMSGSIZE) */
	NSL_DROP_FRAME_CRC,       /* data frame's payload failed its CRC32C: dropped, sent again */
	NSL_DROP_MAX,
};

/* "truncated", "bad_version", ...: the counter names used in summaries and telemetry. */
const char *nsl_drop_name(enum nsl_drop d);

/* What nsl_wire_parse finds in a frame. */
struct nsl_wire_frame {
	uint8_t src_mac[6];
	uint8_t dst_mac[6];
	uint32_t src_ip;          /* host order */
	uint32_t dst_ip;
	struct nsl_wire_hdr hdr;
	uint32_t payload_off;     /* where the payload starts in the frame */
	uint32_t payload_len;
};

/*
 * Check a whole frame of `len` bytes (contiguous) against the layout above and the session's UDP
 * port, and decode it. Checks only what the frame says about itself (headers, checksums, the
 * offset/length rules); whether session, peers and message ids are known is the link's job.
 * Returns NSL_DROP_NONE or the reason to drop it. Never reads outside frame[0, len).
 */
enum nsl_drop nsl_wire_parse(const uint8_t *frame, uint32_t len, uint16_t udp_port, struct nsl_wire_frame *out);

/* Encode h into NSL_WIRE_HDR_LEN bytes at p (big-endian), with its hdr_crc. */
void nsl_wire_hdr_encode(uint8_t *p, const struct nsl_wire_hdr *h);

/*
 * Write Ethernet, IPv4 and UDP headers for a frame carrying `udp_payload` bytes (nsplit header
 * included) into p (NSL_WIRE_ETH_LEN + NSL_WIRE_IP_LEN + NSL_WIRE_UDP_LEN bytes). ip_id is the
 * IPv4 identification field (unused by nsplit, handy in captures).
 */
void nsl_wire_l2l4_encode(uint8_t *p, const uint8_t src_mac[6], const uint8_t dst_mac[6], uint32_t src_ip,
			  uint32_t dst_ip, uint16_t udp_port, uint32_t udp_payload, uint16_t ip_id);

/* Ack payload: encode a into p (returns its length); decode checks nranges against len. */
uint32_t nsl_wire_ack_encode(uint8_t *p, const struct nsl_wire_ack *a);
bool nsl_wire_ack_decode(const uint8_t *p, uint32_t len, struct nsl_wire_ack *a);

/* CRC32C (Castagnoli), as the header and message checksums use it; crc = 0 to start. */
uint32_t nsl_crc32c(uint32_t crc, const void *data, uint64_t len);

/* Copy len bytes from src to dst and return their CRC32C (continuing crc), reading src once. */
uint32_t nsl_crc32c_copy(uint32_t crc, void *dst, const void *src, uint64_t len);

/*
 * The CRC32C of A followed by B, from the CRC32C of each and B's length, without the bytes:
 * how a message's CRC is built from its frames' as they pass. The generic form costs len_b / 8
 * instructions; for a length used again and again (a message's frame size), build a table once
 * (4 KiB) and combine with four lookups.
 */
uint32_t nsl_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

struct nsl_crc32c_shift {
	uint32_t t[4][256];
};

void nsl_crc32c_shift_init(struct nsl_crc32c_shift *op, uint64_t len_b);
uint32_t nsl_crc32c_combine_with(const struct nsl_crc32c_shift *op, uint32_t crc_a, uint32_t crc_b);

#endif
