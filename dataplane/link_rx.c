/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The receiving half of a link: every frame checked before use, payloads copied once into the
 * slot of their message at their offset, whole messages checked against their CRC32C, and the
 * receiver's state reported to the sender in acks.
 */
#include <errno.h>
#include <string.h>

#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include "link_pvt.h"

static inline void drop(struct nsl_link *l, enum nsl_drop d)
{
	l->st.drops[d]++;
}

static bool bit_get(const uint64_t *b, uint32_t i)
{
	return (b[i >> 6] >> (i & 63)) & 1;
}

/* Up to NSL_WIRE_ACK_MAX_RANGES runs of frames that have not arrived. */
static uint16_t missing_ranges(const struct rx_slot *s, struct nsl_wire_range *out)
{
	uint16_t n = 0;
	uint32_t i = 0;

	while (i < s->nframes && n < NSL_WIRE_ACK_MAX_RANGES) {
		uint64_t w = ~s->bits[i >> 6] >> (i & 63);

		if (w == 0) {
			i = (i | 63) + 1;	/* the rest of this word arrived */
			continue;
		}
		i += (uint32_t)__builtin_ctzll(w);
		if (i >= s->nframes)
			break;
		uint32_t first = i;

		while (i < s->nframes && !bit_get(s->bits, i))
			i++;
		out[n++] = (struct nsl_wire_range){ first, i - first };
	}
	return n;
}

void link_fill_ack(const struct peer *p, struct nsl_wire_ack *a, const struct rx_slot *about, uint32_t about_id)
{
	memset(a, 0, offsetof(struct nsl_wire_ack, ranges));
	a->done_below = p->rx_done;
	a->credit = p->rx_posted;
	if (about == NULL && id_diff(about_id, p->rx_done) >= 0)
		return;
	a->flags = NSL_WIRE_ACK_HAS_ABOUT;
	a->about = about_id;
	if (about == NULL || about->complete) {
		/* Delivered already, or complete: the sender may let go. */
		a->flags |= NSL_WIRE_ACK_COMPLETE;
		if (about != NULL && about->status < 0)
			a->status = (uint32_t)-about->status;
		return;
	}
	a->received = about->received;
	a->nranges = about->started ? missing_ranges(about, a->ranges) : 0;
}

static void ack_about(struct nsl_link *l, struct peer *p, const struct rx_slot *s, uint32_t id)
{
	struct nsl_wire_ack a;

	link_fill_ack(p, &a, s, id);
	link_send_ack(l, p, &a, 0);
}

static void slot_fail(struct nsl_link *l, struct peer *p, struct rx_slot *s, uint32_t id, int status)
{
	s->complete = true;
	s->status = status;
	ack_about(l, p, s, id);
}

/* First frame of a message: learn its size and tags. False when it cannot fit. */
static bool slot_start(struct peer *p, struct rx_slot *s, const struct nsl_wire_hdr *h)
{
	uint64_t nframes = (h->total_len + h->frag - 1) / h->frag;

	s->started = true;
	s->total = h->total_len;
	s->frag = h->frag;
	s->crc = 0;
	s->has_crc = false;
	s->tags = *h;
	crc_chain_use(&p->rx_crc, h->frag);
	s->received = 0;
	s->crc_run = 0;
	s->crc_next = 0;
	if (h->total_len > s->m->len || nframes > s->nbits)
		return false;
	s->nframes = (uint32_t)nframes;
	memset(s->bits, 0, ((s->nframes + 63) / 64) * sizeof(uint64_t));
	return true;
}

/*
 * Extend the message's CRC32C over the frames now in order from crc_next, joining their own
 * CRCs: frame i's was just taken (c); frames that came early are read again from the slot.
 */
static void crc_advance(const struct peer *p, struct rx_slot *s, uint32_t i, uint32_t c)
{
	const uint8_t *data = s->m->data;

	while (s->crc_next < s->nframes && bit_get(s->bits, s->crc_next)) {
		uint32_t k = s->crc_next;
		uint64_t off = (uint64_t)k * s->frag;
		uint64_t len = s->total - off < s->frag ? s->total - off : s->frag;
		uint32_t fc = k == i ? c : nsl_crc32c(0, data + off, len);

		s->crc_run = crc_chain_join(&p->rx_crc, s->crc_run, k, fc, len);
		s->crc_next++;
	}
}

/* Every frame is in: deliver it if its CRC32C holds, otherwise ask for all of it again. */
static void slot_check(struct nsl_link *l, struct peer *p, struct rx_slot *s, uint32_t id)
{
	if (s->has_crc && s->crc_run == s->crc) {
		s->complete = true;
		s->status = 0;
		p->st.msgs_rx++;
		p->st.bytes_rx += s->total;
		ack_about(l, p, s, id);
		return;
	}
	p->st.crc_failures++;
	drop(l, NSL_DROP_MSG_CRC);
	s->received = 0;
	s->crc_run = 0;
	s->crc_next = 0;
	s->has_crc = false;
	memset(s->bits, 0, ((s->nframes + 63) / 64) * sizeof(uint64_t));
	ack_about(l, p, s, id);
}

static void on_data(struct nsl_link *l, struct peer *p, struct rte_mbuf *m, const struct nsl_wire_frame *f)
{
	const struct nsl_wire_hdr *h = &f->hdr;
	uint32_t id = h->msg_id, i, c;
	bool poll = h->flags & NSL_WIRE_F_POLL;
	struct rx_slot *s;
	uint8_t *dst;
	const void *src;

	if (id_diff(id, p->rx_done) < 0) {
		drop(l, NSL_DROP_STALE);
		if (poll)
			ack_about(l, p, NULL, id);
		return;
	}
	if (id_diff(id, p->rx_posted) >= 0) {
		/* The sender ran past its credit (or a lost ack left it behind): say where it stands. */
		drop(l, NSL_DROP_NO_SLOT);
		p->ack_due = true;
		return;
	}
	s = &p->rx[id & l->mask];
	if (s->complete) {
		drop(l, s->status == -EMSGSIZE ? NSL_DROP_TOO_BIG : NSL_DROP_DUPLICATE);
		if (poll)
			ack_about(l, p, s, id);
		return;
	}
	if (!s->started) {
		if (!slot_start(p, s, h)) {
			drop(l, NSL_DROP_TOO_BIG);
			slot_fail(l, p, s, id, -EMSGSIZE);
			return;
		}
	} else if (h->total_len != s->total || h->frag != s->frag || h->type != s->tags.type) {
		drop(l, NSL_DROP_BAD_OFFSET);
		return;
	}
	i = (uint32_t)(h->offset / h->frag);
	if (bit_get(s->bits, i)) {
		drop(l, NSL_DROP_DUPLICATE);
		if (poll)
			ack_about(l, p, s, id);
		return;
	}
	/*
	 * The one copy: into the slot, at the frame's offset (wire.c checked offset + len <= total),
	 * taking the frame's CRC32C on the way. A bad frame's bytes are overwritten by its resend.
	 */
	dst = (uint8_t *)s->m->data + h->offset;
	src = rte_pktmbuf_read(m, f->payload_off, h->len, dst);
	if (src == NULL) {
		drop(l, NSL_DROP_TRUNCATED);
		return;
	}
	if (src != dst)
		c = nsl_crc32c_copy(0, dst, src, h->len);
	else
		c = nsl_crc32c(0, dst, h->len);	/* scattered frame: rte_pktmbuf_read copied it */
	l->st.rx_copy_bytes += h->len;
	if (c != h->frame_crc) {
		drop(l, NSL_DROP_FRAME_CRC);
		if (poll)
			ack_about(l, p, s, id);
		return;
	}
	if (h->offset + h->len == s->total) {
		s->crc = h->msg_crc;
		s->has_crc = true;
	}
	s->bits[i >> 6] |= 1ull << (i & 63);
	s->received++;
	p->st.frames_rx++;
	crc_advance(p, s, i, c);
	if (s->received == s->nframes)
		slot_check(l, p, s, id);
	else if (poll)
		ack_about(l, p, s, id);
}

static void on_ack(struct nsl_link *l, struct peer *p, struct rte_mbuf *m, const struct nsl_wire_frame *f,
		   uint64_t now)
{
	uint8_t buf[NSL_WIRE_ACK_LEN + 8 * NSL_WIRE_ACK_MAX_RANGES];
	struct nsl_wire_ack a;
	const uint8_t *body;

	if (f->payload_len > sizeof(buf) ||
	    (body = rte_pktmbuf_read(m, f->payload_off, f->payload_len, buf)) == NULL ||
	    nsl_crc32c(0, body, f->payload_len) != f->hdr.frame_crc || !nsl_wire_ack_decode(body, f->payload_len, &a)) {
		drop(l, NSL_DROP_BAD_ACK);
		return;
	}
	p->st.acks_rx++;
	if (a.flags & NSL_WIRE_ACK_ABORT) {
		if (!l->aborted) {
			l->aborted = true;
			l->abort = (struct nsl_link_abort){ .from = p->id, .blame = (uint16_t)a.about, .info = a.received,
							    .err = (int)a.status };
		}
		link_declare_dead(l, p, -ECONNABORTED);
		return;
	}
	link_tx_on_ack(l, p, &a, now);
	if (f->hdr.flags & NSL_WIRE_F_POLL)
		p->ack_due = true;
}

static void on_frame(struct nsl_link *l, struct rte_mbuf *m, uint64_t now)
{
	uint8_t tmp[NSL_WIRE_FRAME_HDR];
	uint32_t len = rte_pktmbuf_pkt_len(m);
	const uint8_t *head = rte_pktmbuf_read(m, 0, len < NSL_WIRE_FRAME_HDR ? len : NSL_WIRE_FRAME_HDR, tmp);
	struct nsl_wire_frame f;
	enum nsl_drop d;
	struct peer *p;

	if (head == NULL) {
		drop(l, NSL_DROP_TRUNCATED);
		return;
	}
	if ((d = nsl_wire_parse(head, len, l->udp_port, &f)) != NSL_DROP_NONE) {
		drop(l, d);
		return;
	}
	if (f.hdr.session != l->c.session) {
		drop(l, NSL_DROP_UNKNOWN_SESSION);
		return;
	}
	if (f.hdr.dst != l->c.self || (p = peer_of(l, f.hdr.src)) == NULL || p->dead) {
		drop(l, NSL_DROP_UNKNOWN_PEER);
		return;
	}
	p->last_heard = now;
	if (f.hdr.type == NSL_MSG_ACK)
		on_ack(l, p, m, &f, now);
	else
		on_data(l, p, m, &f);
}

int link_rx_port(struct nsl_link *l, struct link_port *lp, uint64_t now)
{
	struct rte_mbuf *pkts[LINK_BURST];
	uint16_t n = rte_eth_rx_burst(lp->port->id, 0, pkts, LINK_BURST);

	for (uint16_t i = 0; i < n; i++)
		on_frame(l, pkts[i], now);
	if (n > 0)
		rte_pktmbuf_free_bulk(pkts, n);
	return n;
}
