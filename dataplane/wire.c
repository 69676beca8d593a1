/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Encoding and checking of nsplit frames. Plain C on byte arrays, with no DPDK in it, so that the
 * fuzz target and the Wireshark dissector's tests can use it as it is.
 */
#include <endian.h>
#include <string.h>

#include "nsplit/wire.h"

#define ETHERTYPE_IPV4 0x0800
#define IPPROTO_UDP_NUM 17
#define IP_TTL 64
#define IP_DF 0x4000
#define IP_MF_OFF_MASK 0x3fff

static const char *const drop_names[NSL_DROP_MAX] = {
	[NSL_DROP_NONE] = "none",
	[NSL_DROP_NOT_IPV4] = "not_ipv4",
	[NSL_DROP_NOT_UDP] = "not_udp",
	[NSL_DROP_TRUNCATED] = "truncated",
	[NSL_DROP_BAD_CHECKSUM] = "bad_checksum",
	[NSL_DROP_BAD_VERSION] = "bad_version",
	[NSL_DROP_BAD_TYPE] = "bad_type",
	[NSL_DROP_UNKNOWN_SESSION] = "unknown_session",
	[NSL_DROP_UNKNOWN_PEER] = "unknown_peer",
	[NSL_DROP_BAD_OFFSET] = "bad_offset",
	[NSL_DROP_BAD_ACK] = "bad_ack",
	[NSL_DROP_DUPLICATE] = "duplicate",
	[NSL_DROP_NO_SLOT] = "no_slot",
	[NSL_DROP_STALE] = "stale",
	[NSL_DROP_MSG_CRC] = "msg_crc",
	[NSL_DROP_TOO_BIG] = "too_big",
	[NSL_DROP_FRAME_CRC] = "frame_crc",
};

const char *nsl_drop_name(enum nsl_drop d)
{
	return (unsigned)d < NSL_DROP_MAX ? drop_names[d] : "unknown";
}

/*
 * Whole-word stores: the header CRC reads the words back at once, and a load that spans several
 * smaller stores still in flight cannot be forwarded from them (it waits for them to retire).
 */
static void put16(uint8_t *p, uint16_t v)
{
	v = htobe16(v);
	memcpy(p, &v, 2);
}

static void put32(uint8_t *p, uint32_t v)
{
	v = htobe32(v);
	memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
	v = htobe64(v);
	memcpy(p, &v, 8);
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)get16(p) << 16 | get16(p + 2);
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) << 32 | get32(p + 4);
}

static uint16_t fold16(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/* The IPv4 header checksum: ones' complement of the ones' complement sum of 16-bit words. */
static uint16_t ip_checksum(const uint8_t *p)
{
	uint32_t sum = 0;

	for (int i = 0; i < NSL_WIRE_IP_LEN; i += 2)
		sum += get16(p + i);
	return (uint16_t)~fold16(sum);
}

void nsl_wire_hdr_encode(uint8_t *p, const struct nsl_wire_hdr *h)
{
	put64(p, (uint64_t)h->version << 56 | (uint64_t)h->type << 48 | (uint64_t)h->flags << 32 | h->session);
	put64(p + 8, (uint64_t)h->src << 48 | (uint64_t)h->dst << 32 | (uint64_t)h->stage << 16 | h->micro);
	put64(p + 16, (uint64_t)h->round << 32 | h->step);
	put64(p + 24, (uint64_t)h->msg_id << 32 | h->msg_crc);
	put64(p + 32, h->total_len);
	put64(p + 40, h->offset);
	put64(p + 48, (uint64_t)h->frag << 48 | (uint64_t)h->len << 32 | h->frame_crc);
	put32(p + 56, nsl_crc32c(0, p, 56));
}

void nsl_wire_l2l4_encode(uint8_t *p, const uint8_t src_mac[6], const uint8_t dst_mac[6], uint32_t src_ip,
			  uint32_t dst_ip, uint16_t udp_port, uint32_t udp_payload, uint16_t ip_id)
{
	uint8_t *ip = p + NSL_WIRE_ETH_LEN;
	uint8_t *udp = ip + NSL_WIRE_IP_LEN;
	uint16_t ip_len = (uint16_t)(NSL_WIRE_IP_LEN + NSL_WIRE_UDP_LEN + udp_payload);
	/* Summed from the fields, not read back from the frame: the checksum of the words below. */
	uint32_t sum = 0x4500u + ip_len + ip_id + IP_DF + (IP_TTL << 8 | IPPROTO_UDP_NUM) + (src_ip >> 16) +
		       (src_ip & 0xffff) + (dst_ip >> 16) + (dst_ip & 0xffff);

	memcpy(p, dst_mac, 6);
	memcpy(p + 6, src_mac, 6);
	put16(p + 12, ETHERTYPE_IPV4);
	put64(ip, 0x4500ull << 48 | (uint64_t)ip_len << 32 | (uint64_t)ip_id << 16 | IP_DF);
	put32(ip + 8, (uint32_t)IP_TTL << 24 | (uint32_t)IPPROTO_UDP_NUM << 16 | (uint16_t)~fold16(sum));
	put32(ip + 12, src_ip);
	put32(ip + 16, dst_ip);
	put64(udp, (uint64_t)udp_port << 48 | (uint64_t)udp_port << 32 | (uint64_t)(uint16_t)(NSL_WIRE_UDP_LEN + udp_payload) << 16);
}

static void hdr_decode(const uint8_t *p, struct nsl_wire_hdr *h)
{
	h->version = p[0];
	h->type = p[1];
	h->flags = get16(p + 2);
	h->session = get32(p + 4);
	h->src = get16(p + 8);
	h->dst = get16(p + 10);
	h->stage = get16(p + 12);
	h->micro = get16(p + 14);
	h->round = get32(p + 16);
	h->step = get32(p + 20);
	h->msg_id = get32(p + 24);
	h->msg_crc = get32(p + 28);
	h->total_len = get64(p + 32);
	h->offset = get64(p + 40);
	h->frag = get16(p + 48);
	h->len = get16(p + 50);
	h->frame_crc = get32(p + 52);
}

/* The offset/length rules of a data frame (see wire.h). */
static bool data_frame_ok(const struct nsl_wire_hdr *h)
{
	uint64_t left;

	if (h->total_len == 0 || h->total_len > NSL_WIRE_MAX_MSG || h->frag == 0 || h->offset >= h->total_len ||
	    h->offset % h->frag != 0)
		return false;
	left = h->total_len - h->offset;
	return h->len == (left < h->frag ? left : h->frag);
}

enum nsl_drop nsl_wire_parse(const uint8_t *f, uint32_t len, uint16_t udp_port, struct nsl_wire_frame *out)
{
	const uint8_t *ip = f + NSL_WIRE_ETH_LEN;
	const uint8_t *udp = ip + NSL_WIRE_IP_LEN;
	const uint8_t *nh = udp + NSL_WIRE_UDP_LEN;
	uint32_t ip_len, udp_len;
	struct nsl_wire_hdr *h = &out->hdr;

	if (len < NSL_WIRE_ETH_LEN)
		return NSL_DROP_TRUNCATED;
	if (get16(f + 12) != ETHERTYPE_IPV4)
		return NSL_DROP_NOT_IPV4;
	if (len < NSL_WIRE_ETH_LEN + NSL_WIRE_IP_LEN)
		return NSL_DROP_TRUNCATED;
	if (ip[0] != 0x45)
		return NSL_DROP_NOT_IPV4;
	if (ip[9] != IPPROTO_UDP_NUM || (get16(ip + 6) & IP_MF_OFF_MASK & ~IP_DF) != 0)
		return NSL_DROP_NOT_UDP;
	ip_len = get16(ip + 2);
	if (ip_len < NSL_WIRE_IP_LEN + NSL_WIRE_UDP_LEN || NSL_WIRE_ETH_LEN + ip_len > len)
		return NSL_DROP_TRUNCATED;
	if (ip_checksum(ip) != 0)
		return NSL_DROP_BAD_CHECKSUM;
	if (get16(udp + 2) != udp_port)
		return NSL_DROP_NOT_UDP;
	udp_len = get16(udp + 4);
	if (udp_len != ip_len - NSL_WIRE_IP_LEN || udp_len < NSL_WIRE_UDP_LEN + NSL_WIRE_HDR_LEN)
		return NSL_DROP_TRUNCATED;
	if (nsl_crc32c(0, nh, 56) != get32(nh + 56))
		return NSL_DROP_BAD_CHECKSUM;
	hdr_decode(nh, h);
	if (h->version != NSL_WIRE_VERSION)
		return NSL_DROP_BAD_VERSION;
	if (h->type == 0 || h->type > NSL_MSG_TYPE_MAX)
		return NSL_DROP_BAD_TYPE;
	out->payload_off = NSL_WIRE_FRAME_HDR;
	out->payload_len = udp_len - NSL_WIRE_UDP_LEN - NSL_WIRE_HDR_LEN;
	if (out->payload_len != h->len)
		return NSL_DROP_TRUNCATED;
	if (h->type == NSL_MSG_ACK) {
		if (h->offset != 0 || h->total_len != h->len || h->len < NSL_WIRE_ACK_LEN)
			return NSL_DROP_BAD_ACK;
	} else if (!data_frame_ok(h)) {
		return NSL_DROP_BAD_OFFSET;
	}
	memcpy(out->dst_mac, f, 6);
	memcpy(out->src_mac, f + 6, 6);
	out->src_ip = get32(ip + 12);
	out->dst_ip = get32(ip + 16);
	return NSL_DROP_NONE;
}

uint32_t nsl_wire_ack_encode(uint8_t *p, const struct nsl_wire_ack *a)
{
	uint16_t n = a->nranges > NSL_WIRE_ACK_MAX_RANGES ? NSL_WIRE_ACK_MAX_RANGES : a->nranges;

	put32(p, a->done_below);
	put32(p + 4, a->credit);
	put32(p + 8, a->about);
	put32(p + 12, a->status);
	put32(p + 16, a->received);
	put16(p + 20, n);
	put16(p + 22, a->flags);
	for (uint16_t i = 0; i < n; i++) {
		put32(p + NSL_WIRE_ACK_LEN + 8 * i, a->ranges[i].first);
		put32(p + NSL_WIRE_ACK_LEN + 8 * i + 4, a->ranges[i].count);
	}
	return NSL_WIRE_ACK_LEN + 8u * n;
}

bool nsl_wire_ack_decode(const uint8_t *p, uint32_t len, struct nsl_wire_ack *a)
{
	if (len < NSL_WIRE_ACK_LEN)
		return false;
	a->done_below = get32(p);
	a->credit = get32(p + 4);
	a->about = get32(p + 8);
	a->status = get32(p + 12);
	a->received = get32(p + 16);
	a->nranges = get16(p + 20);
	a->flags = get16(p + 22);
	if (a->nranges > NSL_WIRE_ACK_MAX_RANGES || len != NSL_WIRE_ACK_LEN + 8u * a->nranges)
		return false;
	for (uint16_t i = 0; i < a->nranges; i++) {
		a->ranges[i].first = get32(p + NSL_WIRE_ACK_LEN + 8 * i);
		a->ranges[i].count = get32(p + NSL_WIRE_ACK_LEN + 8 * i + 4);
		if (a->ranges[i].count == 0)
			return false;
	}
	return true;
}
