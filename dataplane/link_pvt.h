/* SPDX-License-Identifier: BSD-3-Clause */
/* The link's state, shared by link.c (set-up, the compute thread's calls), link_tx.c and link_rx.c. */
#ifndef NSL_LINK_PVT_H
#define NSL_LINK_PVT_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_mbuf.h>
#include <rte_ring.h>

#include "nsplit/link.h"
#include "nsplit/wire.h"
#include "port_pvt.h"

#define LINK_MAX_PEERS 64
#define LINK_MAX_PORTS 8
#define LINK_BURST 32
/* Frames waiting for a full port: a few bursts. */
#define LINK_PEND 128
/* Header and attach mbufs taken from their pools this many at a time. */
#define LINK_STASH 32
/* Peers may send frames this small (a small MTU); a slot's frame bitmap is sized for them. */
#define LINK_MIN_FRAG 512
/* An extbuf's reference count is 16 bits: frames of one message in flight at once stay below. */
#define LINK_MAX_FRAMES_IN_FLIGHT 32768
#define LINK_MAX_BACKOFF 64

/* Message ids wrap: compare them as serial numbers. */
static inline int32_t id_diff(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b);
}

struct tx_msg {
	struct nsl_msg *m;
	struct rte_mbuf_ext_shared_info shinfo;   /* counts this message's frames in flight, +1 */
	uint32_t nframes;
	uint32_t next;            /* frames sent for the first time */
	uint16_t frag;
	bool done;                /* acknowledged whole, or failed (status) */
	int status;
	uint32_t acked_frames;    /* the receiver's latest count, to spot progress */
	uint64_t last_tsc;        /* last progress, or last probe */
	uint32_t backoff;         /* rto multiplier, doubled on each probe without progress */
	uint16_t refs;            /* references taken ahead for frames about to be sent (see link_tx.c) */
	uint32_t crc_run;         /* CRC32C of the frames sent once so far, [0, next) */
	/* Ranges the receiver reported missing, sent again in order; last, so a reset can skip it. */
	uint16_t nrtx, rtx_i;
	uint32_t rtx_off;
	struct nsl_wire_range rtx[NSL_WIRE_ACK_MAX_RANGES];
};

struct rx_slot {
	struct nsl_msg *m;
	uint64_t *bits;           /* one bit per frame received */
	uint32_t nbits;           /* capacity of bits */
	bool started;
	bool complete;
	int status;
	uint32_t nframes, received;
	uint64_t total;
	uint16_t frag;
	uint32_t crc;             /* what the sender says the message's CRC32C is (in its last frame) */
	bool has_crc;             /* the last frame is in, so crc is known */
	uint32_t crc_run;         /* CRC32C of frames [0, crc_next), taken while they are in cache */
	uint32_t crc_next;
	struct nsl_wire_hdr tags; /* type, stage, micro, round, step of the first frame */
};

struct link_port {
	struct nsl_port *port;
	struct rte_mbuf *pend[LINK_PEND];
	uint16_t npend;
	uint16_t ip_id;
	bool reclaim;             /* a sent message waits for the port to free its frames */
	uint16_t n_hdr, n_ext;    /* mbufs left in the stashes */
	struct rte_mbuf *hdr_stash[LINK_STASH], *ext_stash[LINK_STASH];
};

/*
 * A message's CRC32C built from its frames' as they pass in order. Frames of the usual size are
 * joined with a table built for that size, once per peer and direction (the sender's MTU sets
 * it); any other length (a short last frame) with the generic combine.
 */
struct crc_chain {
	uint16_t frag;            /* the frame size op is for (0: none yet) */
	struct nsl_crc32c_shift op;
};

static inline void crc_chain_use(struct crc_chain *cc, uint16_t frag)
{
	if (cc->frag != frag) {
		nsl_crc32c_shift_init(&cc->op, frag);
		cc->frag = frag;
	}
}

/* The CRC32C of frames [0, k] from that of frames [0, k) and frame k's own (c, over len bytes). */
static inline uint32_t crc_chain_join(const struct crc_chain *cc, uint32_t run, uint32_t k, uint32_t c, uint64_t len)
{
	if (k == 0)
		return c;
	return len == cc->frag ? nsl_crc32c_combine_with(&cc->op, run, c) : nsl_crc32c_combine(run, c, len);
}

struct peer {
	uint16_t id;
	struct link_port *lp;
	uint8_t mac[6];
	uint32_t ip;
	bool dead;
	uint64_t last_heard;
	uint64_t wait_since;      /* when work with this peer began after a quiet spell */
	uint64_t last_beat;       /* when the last heartbeat went out */
	struct crc_chain tx_crc, rx_crc;   /* frame size used each way */
	/* sending to the peer */
	struct tx_msg *tx;        /* message id i at tx[i & mask] */
	uint32_t tx_head;         /* oldest message not handed back */
	uint32_t tx_tail;         /* next id to give */
	uint32_t credit;          /* the peer takes ids below this */
	uint64_t credit_probe_tsc;
	/* receiving from the peer */
	struct rx_slot *rx;
	uint32_t rx_posted;       /* slots ever posted = the credit we give */
	uint32_t rx_done;         /* ids below are handed back to the caller */
	bool ack_due;             /* credit or progress to report, coalesced to one ack per poll */
	struct nsl_link_peer_stats st;
};

struct nsl_link {
	struct nsl_link_conf c;
	uint32_t mask;            /* slots - 1 */
	uint16_t udp_port;
	uint64_t hz, rto_tsc, dead_tsc, beat_tsc;
	struct peer peers[LINK_MAX_PEERS];
	int npeers;
	uint8_t *index;           /* peer id -> index + 1 (0: unknown), 65536 entries */
	struct link_port ports[LINK_MAX_PORTS];
	int nports;
	struct rte_ring *tx_req, *tx_done, *rx_post, *rx_done;
	struct nsl_msg *held_send, *held_post;  /* taken from a ring, waiting for room */
	int dead_peer;
	bool aborted;
	struct nsl_link_abort abort;
	uint16_t rr;
	struct nsl_link_stats st;
};

static inline struct peer *peer_of(struct nsl_link *l, uint16_t id)
{
	uint8_t i = l->index[id];

	return i ? &l->peers[i - 1] : NULL;
}

/* link_tx.c */
int link_tx_flush(struct nsl_link *l, struct link_port *lp);
void link_tx_reclaim(struct link_port *lp);
void link_tx_release(struct link_port *lp);
int link_tx_peer(struct nsl_link *l, struct peer *p, uint64_t now);
int link_send_ack(struct nsl_link *l, struct peer *p, const struct nsl_wire_ack *a, uint16_t flags);
/* The peer is gone: its messages and slots fail with `status` (-EHOSTDOWN, -ECONNABORTED). */
void link_declare_dead(struct nsl_link *l, struct peer *p, int status);
void link_tx_on_ack(struct nsl_link *l, struct peer *p, const struct nsl_wire_ack *a, uint64_t now);

/* link_rx.c */
int link_rx_port(struct nsl_link *l, struct link_port *lp, uint64_t now);
/* The receiver's state for p; about_id == p->rx_done with about NULL: no message in particular. */
void link_fill_ack(const struct peer *p, struct nsl_wire_ack *a, const struct rx_slot *about, uint32_t about_id);

#endif
