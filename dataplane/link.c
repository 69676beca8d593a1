/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A link's set-up, the compute thread's calls (rings of message pointers in both directions) and
 * the dataplane thread's poll loop, which ties link_rx.c and link_tx.c together.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_malloc.h>
#include <rte_ring.h>

#include "nsplit/eal.h"
#include "nsplit/error.h"
#include "link_pvt.h"
#include "telemetry_pvt.h"

#define DEFAULT_SLOTS 32
#define DEFAULT_MAX_MSG (256ull << 20)
#define DEFAULT_RTO_US 2000
#define DEFAULT_PEER_TIMEOUT_MS 5000
#define MAX_SLOTS 4096

static uint32_t default_ip(uint16_t peer)
{
	return (10u << 24) | (77u << 16) | (uint32_t)((peer + 1) >> 8) << 8 | (uint32_t)((peer + 1) & 0xff);
}

/* The rings between the two threads; each has one producer and one consumer. */
static struct rte_ring *make_ring(struct nsl_link *l, const char *what, unsigned size)
{
	static atomic_uint seq;
	char name[RTE_RING_NAMESIZE];
	struct rte_ring *r;

	snprintf(name, sizeof(name), "nsl%u_%u_%s", l->c.self, atomic_fetch_add(&seq, 1), what);
	r = rte_ring_create(name, size, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ | RING_F_EXACT_SZ);
	if (r == NULL)
		nsl_error_set(rte_errno ? rte_errno : ENOMEM, "link of peer %u: cannot make ring %s: %s", l->c.self,
			      name, rte_strerror(rte_errno));
	return r;
}

struct nsl_link *nsl_link_create(const struct nsl_link_conf *c)
{
	struct nsl_link *l;
	unsigned ring_size;

	if (!nsl_eal_ready()) {
		nsl_error_set(EINVAL, "nsl_link_create before nsl_eal_init");
		return NULL;
	}
	if (c->slots != 0 && (c->slots > MAX_SLOTS || (c->slots & (c->slots - 1)) != 0)) {
		nsl_error_set(EINVAL, "link: %u slots per peer; give a power of two up to %u", c->slots, MAX_SLOTS);
		return NULL;
	}
	if (c->max_msg > NSL_WIRE_MAX_MSG) {
		nsl_error_set(EINVAL, "link: largest message %" PRIu64 " bytes is above the wire's %llu", c->max_msg,
			      NSL_WIRE_MAX_MSG);
		return NULL;
	}
	if ((l = calloc(1, sizeof(*l))) == NULL || (l->index = calloc(65536, 1)) == NULL) {
		free(l);
		nsl_error_set(ENOMEM, "link: out of memory");
		return NULL;
	}
	l->c = *c;
	l->c.slots = c->slots ? c->slots : DEFAULT_SLOTS;
	l->c.max_msg = c->max_msg ? c->max_msg : DEFAULT_MAX_MSG;
	l->c.rto_us = c->rto_us ? c->rto_us : DEFAULT_RTO_US;
	l->c.peer_timeout_ms = c->peer_timeout_ms ? c->peer_timeout_ms : DEFAULT_PEER_TIMEOUT_MS;
	l->c.self_ip = c->self_ip ? c->self_ip : default_ip(c->self);
	l->udp_port = c->udp_port ? c->udp_port : NSL_WIRE_UDP_PORT;
	l->mask = l->c.slots - 1u;
	l->hz = rte_get_tsc_hz();
	l->rto_tsc = l->hz / 1000000 * l->c.rto_us;
	l->dead_tsc = l->hz / 1000 * l->c.peer_timeout_ms;
	l->beat_tsc = l->hz / 1000 * l->c.heartbeat_ms;
	l->dead_peer = -1;
	/* Room for every message of every peer in flight, so handing back never waits. */
	ring_size = (unsigned)l->c.slots * LINK_MAX_PEERS * 2;
	l->tx_req = make_ring(l, "txq", ring_size);
	l->tx_done = make_ring(l, "txd", ring_size);
	l->rx_post = make_ring(l, "rxq", ring_size);
	l->rx_done = make_ring(l, "rxd", ring_size);
	if (l->tx_req == NULL || l->tx_done == NULL || l->rx_post == NULL || l->rx_done == NULL) {
		nsl_link_free(l);
		return NULL;
	}
	telemetry_link_add(l);
	return l;
}

void nsl_link_free(struct nsl_link *l)
{
	if (l == NULL)
		return;
	telemetry_link_remove(l);
	for (int i = 0; i < l->nports; i++) {
		struct link_port *lp = &l->ports[i];

		rte_pktmbuf_free_bulk(lp->pend, lp->npend);
		link_tx_release(lp);
	}
	for (int i = 0; i < l->npeers; i++) {
		struct peer *p = &l->peers[i];

		if (p->rx != NULL)
			for (uint32_t s = 0; s < l->c.slots; s++)
				free(p->rx[s].bits);
		free(p->rx);
		free(p->tx);
	}
	rte_ring_free(l->tx_req);
	rte_ring_free(l->tx_done);
	rte_ring_free(l->rx_post);
	rte_ring_free(l->rx_done);
	free(l->index);
	free(l);
}

static struct link_port *port_of(struct nsl_link *l, struct nsl_port *port)
{
	for (int i = 0; i < l->nports; i++)
		if (l->ports[i].port == port)
			return &l->ports[i];
	if (l->nports == LINK_MAX_PORTS)
		return NULL;
	l->ports[l->nports].port = port;
	return &l->ports[l->nports++];
}

/* Nothing is attached to a message's shinfo but its frames; the callback never runs (we hold one). */
static void ext_free_cb(void *addr, void *opaque)
{
	(void)addr;
	(void)opaque;
}

int nsl_link_add_peer(struct nsl_link *l, uint16_t id, struct nsl_port *port, const uint8_t mac[6], uint32_t ip)
{
	static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	uint32_t bits = (uint32_t)((l->c.max_msg + LINK_MIN_FRAG - 1) / LINK_MIN_FRAG);
	struct peer *p;

	if (id == l->c.self)
		return nsl_error_set(EINVAL, "link of peer %u: cannot add itself as a peer", id);
	if (l->index[id] != 0)
		return nsl_error_set(EEXIST, "link of peer %u: peer %u added twice", l->c.self, id);
	if (l->npeers == LINK_MAX_PEERS)
		return nsl_error_set(ENOSPC, "link of peer %u: at most %d peers", l->c.self, LINK_MAX_PEERS);
	if (port->mtu < NSL_WIRE_IP_LEN + NSL_WIRE_UDP_LEN + NSL_WIRE_HDR_LEN + LINK_MIN_FRAG)
		return nsl_error_set(EINVAL, "link: port %s MTU %u leaves less than %d payload bytes per frame",
				     port->name, port->mtu, LINK_MIN_FRAG);
	p = &l->peers[l->npeers];
	memset(p, 0, sizeof(*p));
	p->id = id;
	if ((p->lp = port_of(l, port)) == NULL)
		return nsl_error_set(ENOSPC, "link of peer %u: at most %d ports", l->c.self, LINK_MAX_PORTS);
	memcpy(p->mac, mac ? mac : bcast, 6);
	p->ip = ip ? ip : default_ip(id);
	p->tx = calloc(l->c.slots, sizeof(*p->tx));
	p->rx = calloc(l->c.slots, sizeof(*p->rx));
	if (p->tx == NULL || p->rx == NULL)
		goto nomem;
	for (uint32_t s = 0; s < l->c.slots; s++) {
		p->rx[s].nbits = bits;
		if ((p->rx[s].bits = calloc((bits + 63) / 64, sizeof(uint64_t))) == NULL)
			goto nomem;
	}
	l->npeers++;
	l->index[id] = (uint8_t)l->npeers;
	return 0;
nomem:
	if (p->rx != NULL)
		for (uint32_t s = 0; s < l->c.slots; s++)
			free(p->rx[s].bits);
	free(p->rx);
	free(p->tx);
	p->rx = NULL;
	p->tx = NULL;
	return nsl_error_set(ENOMEM, "link of peer %u: out of memory for peer %u's %u slots of %" PRIu64 " bytes",
			     l->c.self, id, l->c.slots, l->c.max_msg);
}

/* ---- the compute thread ---- */

static int check_msg(struct nsl_link *l, const struct nsl_msg *m, const char *what)
{
	if (l->index[m->peer] == 0)
		return nsl_error_set(EINVAL, "%s: peer %u is not a peer of this link", what, m->peer);
	if (m->data == NULL || m->len == 0 || m->len > l->c.max_msg)
		return nsl_error_set(EINVAL, "%s: %" PRIu64 " bytes; give 1 to %" PRIu64 " (the link's max_msg)", what,
				     m->len, l->c.max_msg);
	if (!nsl_dp_is_dma_memory(m->data, m->len))
		return nsl_error_set(EINVAL, "%s: memory at %p is not from DPDK's main heap; allocate messages "
				     "with nsl_dp_alloc", what, m->data);
	return 0;
}

int nsl_link_send(struct nsl_link *l, struct nsl_msg *m)
{
	int rc;

	if ((rc = check_msg(l, m, "send")) < 0)
		return rc;
	if (m->type == 0 || m->type == NSL_MSG_ACK || m->type > NSL_MSG_TYPE_MAX)
		return nsl_error_set(EINVAL, "send: message type %u; use an enum nsl_msg_type other than ack", m->type);
	m->crc = 0;	/* taken frame by frame as they first go out */
	m->status = 0;
	if (rte_ring_sp_enqueue(l->tx_req, m) != 0)
		return nsl_error_set(ENOBUFS, "send: the queue to the dataplane is full; take back sent messages");
	return 0;
}

int nsl_link_post(struct nsl_link *l, struct nsl_msg *m)
{
	int rc;

	if ((rc = check_msg(l, m, "post")) < 0)
		return rc;
	m->status = 0;
	if (rte_ring_sp_enqueue(l->rx_post, m) != 0)
		return nsl_error_set(ENOBUFS, "post: the queue to the dataplane is full; take back received messages");
	return 0;
}

unsigned int nsl_link_sent(struct nsl_link *l, struct nsl_msg **out, unsigned int n)
{
	return rte_ring_sc_dequeue_burst(l->tx_done, (void **)out, n, NULL);
}

unsigned int nsl_link_recv(struct nsl_link *l, struct nsl_msg **out, unsigned int n)
{
	return rte_ring_sc_dequeue_burst(l->rx_done, (void **)out, n, NULL);
}

/* ---- the dataplane thread ---- */

static void hand_back(struct rte_ring *r, struct nsl_msg *m)
{
	/* The rings hold every message that can be in flight, so this cannot fail. */
	rte_ring_sp_enqueue(r, m);
}

/* Take new slots and messages from the compute thread while there is room for them. */
static int intake(struct nsl_link *l, uint64_t now)
{
	struct nsl_msg *m;
	int n = 0;

	while ((m = l->held_post) != NULL || rte_ring_sc_dequeue(l->rx_post, (void **)&m) == 0) {
		struct peer *p = peer_of(l, m->peer);
		struct rx_slot *s;

		l->held_post = NULL;
		if (p->dead) {
			m->status = -EHOSTDOWN;
			hand_back(l->rx_done, m);
			continue;
		}
		if (p->rx_posted - p->rx_done == l->c.slots) {
			l->held_post = m;
			break;
		}
		s = &p->rx[p->rx_posted & l->mask];
		s->m = m;
		s->started = s->complete = false;
		s->status = 0;
		p->rx_posted++;
		p->ack_due = true;	/* new credit */
		n++;
	}
	while ((m = l->held_send) != NULL || rte_ring_sc_dequeue(l->tx_req, (void **)&m) == 0) {
		struct peer *p = peer_of(l, m->peer);
		struct tx_msg *t;

		l->held_send = NULL;
		if (p->tx_tail - p->tx_head == l->c.slots) {
			l->held_send = m;
			break;
		}
		if (p->tx_head == p->tx_tail)
			p->wait_since = now;
		t = &p->tx[p->tx_tail & l->mask];
		memset(t, 0, offsetof(struct tx_msg, rtx));
		t->m = m;
		m->id = p->tx_tail++;
		t->frag = (uint16_t)(p->lp->port->mtu - NSL_WIRE_IP_LEN - NSL_WIRE_UDP_LEN - NSL_WIRE_HDR_LEN);
		t->nframes = (uint32_t)((m->len + t->frag - 1) / t->frag);
		crc_chain_use(&p->tx_crc, t->frag);
		t->backoff = 1;
		t->last_tsc = now;
		t->shinfo.free_cb = ext_free_cb;
		rte_mbuf_ext_refcnt_set(&t->shinfo, 1);
		if (p->dead) {
			t->done = true;
			t->status = -EHOSTDOWN;
		}
		n++;
	}
	return n;
}

/* Hand back, in id order, what is finished: slots filled (or failed), messages acknowledged. */
static void finish_peer(struct nsl_link *l, struct peer *p)
{
	while (p->rx_done != p->rx_posted) {
		struct rx_slot *s = &p->rx[p->rx_done & l->mask];
		struct nsl_msg *m = s->m;

		if (!s->complete)
			break;
		m->status = s->status;
		m->id = p->rx_done;
		if (s->status == 0) {
			m->len = s->total;
			m->crc = s->crc;
		}
		m->type = s->tags.type;
		m->stage = s->tags.stage;
		m->micro = s->tags.micro;
		m->round = s->tags.round;
		m->step = s->tags.step;
		s->m = NULL;
		s->started = s->complete = false;
		p->rx_done++;
		p->ack_due = true;
		hand_back(l->rx_done, m);
	}
	while (p->tx_head != p->tx_tail) {
		struct tx_msg *t = &p->tx[p->tx_head & l->mask];

		/* Done, and no frame of it left in a port or a ring: its memory is the caller's again. */
		if (!t->done)
			break;
		if (rte_mbuf_ext_refcnt_read(&t->shinfo) != 1) {
			p->lp->reclaim = true;
			break;
		}
		t->m->status = t->status;
		hand_back(l->tx_done, t->m);
		p->tx_head++;
	}
}

static bool has_work(const struct nsl_link *l, const struct peer *p)
{
	const struct rx_slot *s = &p->rx[p->rx_done & l->mask];

	return p->tx_head != p->tx_tail || (p->rx_done != p->rx_posted && s->started && !s->complete);
}

void link_declare_dead(struct nsl_link *l, struct peer *p, int status)
{
	p->dead = true;
	if (l->dead_peer < 0)
		l->dead_peer = p->id;
	for (uint32_t id = p->tx_head; id != p->tx_tail; id++) {
		struct tx_msg *t = &p->tx[id & l->mask];

		if (!t->done) {
			t->done = true;
			t->status = status;
		}
	}
	for (uint32_t id = p->rx_done; id != p->rx_posted; id++) {
		struct rx_slot *s = &p->rx[id & l->mask];

		s->complete = true;
		s->status = status;
	}
	if (status == -EHOSTDOWN)
		nsl_error_set(EHOSTDOWN, "peer %u has not answered peer %u for %u ms; its messages fail", p->id,
			      l->c.self, l->c.peer_timeout_ms);
}

static void check_alive(struct nsl_link *l, struct peer *p, uint64_t now)
{
	uint64_t since;

	if (p->dead)
		return;
	if (l->beat_tsc) {
		/* Heartbeats: a peer is alive while it is heard, work or not; one never heard yet may
		 * simply not have started. */
		if (now - p->last_beat > l->beat_tsc) {
			struct nsl_wire_ack a;

			link_fill_ack(p, &a, NULL, p->rx_done);
			if (link_send_ack(l, p, &a, 0) == 0)
				p->last_beat = now;
		}
		if (p->last_heard != 0 && now - p->last_heard > l->dead_tsc)
			link_declare_dead(l, p, -EHOSTDOWN);
		return;
	}
	if (!has_work(l, p)) {
		p->wait_since = 0;
		return;
	}
	if (p->wait_since == 0)
		p->wait_since = now;
	since = p->last_heard > p->wait_since ? p->last_heard : p->wait_since;
	if (now - since > l->dead_tsc)
		link_declare_dead(l, p, -EHOSTDOWN);
}

int nsl_link_poll(struct nsl_link *l)
{
	uint64_t now = rte_get_tsc_cycles();
	int work = intake(l, now), rc;

	for (int i = 0; i < l->nports; i++)
		work += link_rx_port(l, &l->ports[i], now);
	for (int i = 0; i < l->nports; i++)
		link_tx_flush(l, &l->ports[i]);
	/* Round robin, so one busy peer cannot starve the others of the port. */
	for (int k = 0; k < l->npeers; k++) {
		struct peer *p = &l->peers[(l->rr + k) % l->npeers];

		if ((rc = link_tx_peer(l, p, now)) < 0)
			return rc;
		work += rc;
	}
	if (l->npeers > 0)
		l->rr = (uint16_t)((l->rr + 1) % l->npeers);
	for (int k = 0; k < l->npeers; k++) {
		struct peer *p = &l->peers[k];

		finish_peer(l, p);
		if (p->ack_due && !p->dead) {
			struct nsl_wire_ack a;

			link_fill_ack(p, &a, NULL, p->rx_done);
			if (link_send_ack(l, p, &a, 0) == 0)
				p->ack_due = false;
		}
		check_alive(l, p, now);
	}
	for (int i = 0; i < l->nports; i++) {
		link_tx_flush(l, &l->ports[i]);
		link_tx_reclaim(&l->ports[i]);
	}
	return work;
}

int nsl_link_dead_peer(const struct nsl_link *l)
{
	return l->dead_peer;
}

void nsl_link_abort(struct nsl_link *l, uint16_t blame, uint32_t info, int err)
{
	for (int k = 0; k < l->npeers; k++) {
		struct peer *p = &l->peers[k];
		struct nsl_wire_ack a = { .flags = NSL_WIRE_ACK_ABORT, .about = blame, .received = info,
					  .status = (uint32_t)(err < 0 ? -err : err) };

		if (!p->dead)
			link_send_ack(l, p, &a, 0);
	}
	for (int i = 0; i < l->nports; i++)
		link_tx_flush(l, &l->ports[i]);
}

bool nsl_link_aborted(const struct nsl_link *l, struct nsl_link_abort *out)
{
	if (l->aborted && out != NULL)
		*out = l->abort;
	return l->aborted;
}

void nsl_link_stats(const struct nsl_link *l, struct nsl_link_stats *out)
{
	*out = l->st;
}

int nsl_link_peer_stats(const struct nsl_link *l, uint16_t peer, struct nsl_link_peer_stats *out)
{
	uint8_t i = l->index[peer];

	if (i == 0)
		return nsl_error_set(EINVAL, "link of peer %u: no peer %u", l->c.self, peer);
	*out = l->peers[i - 1].st;
	return 0;
}

void nsl_link_print_stats(const struct nsl_link *l, FILE *f)
{
	fprintf(f, "peer %u: copied by nsplit: %" PRIu64 " B on send, %" PRIu64 " B on receive; port full %" PRIu64
		", mbufs exhausted %" PRIu64 "\n", l->c.self, l->st.tx_copy_bytes, l->st.rx_copy_bytes, l->st.tx_full,
		l->st.mbuf_exhausted);
	for (int i = 0; i < l->npeers; i++) {
		const struct nsl_link_peer_stats *s = &l->peers[i].st;

		fprintf(f, "  to/from peer %u%s: msgs %" PRIu64 "/%" PRIu64 ", bytes %" PRIu64 "/%" PRIu64
			", frames %" PRIu64 "/%" PRIu64 ", retransmits %" PRIu64 ", probes %" PRIu64 ", acks %" PRIu64
			"/%" PRIu64 ", credit stalls %" PRIu64 ", crc failures %" PRIu64 "\n",
			l->peers[i].id, l->peers[i].dead ? " (dead)" : "", s->msgs_tx, s->msgs_rx, s->bytes_tx,
			s->bytes_rx, s->frames_tx, s->frames_rx, s->retransmits, s->probes, s->acks_tx, s->acks_rx,
			s->credit_stalls, s->crc_failures);
	}
	for (int d = 1; d < NSL_DROP_MAX; d++)
		if (l->st.drops[d])
			fprintf(f, "  dropped %s: %" PRIu64 "\n", nsl_drop_name((enum nsl_drop)d), l->st.drops[d]);
}
