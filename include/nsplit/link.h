/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Links: reliable, zero-copy messages between peers over DPDK ports.
 *
 * A link is one peer's end of a session. It knows the other peers (an id, the port that reaches
 * each, its MAC and IPv4 address) and moves messages: one message is one tensor, or one control
 * record, of 1 byte to 2^40 bytes, cut into frames laid out as nsplit/wire.h says.
 *
 * Two threads use a link. The compute thread (one per link) hands messages over with
 * nsl_link_send and nsl_link_post and takes them back with nsl_link_sent and nsl_link_recv; the
 * dataplane thread calls nsl_link_poll in a loop. Between the two, messages move as pointers
 * through single-producer single-consumer rte_rings: never copied, and safe when both threads
 * share a core. One thread may also do both, polling between its own calls (as the tests do).
 *
 *   struct nsl_msg out = { .data = t, .len = bytes, .peer = 1, .type = NSL_MSG_ACTIVATION };
 *   nsl_link_send(l, &out);           // t must stay untouched until out comes back
 *   struct nsl_msg slot = { .data = buf, .len = cap, .peer = 1 };
 *   nsl_link_post(l, &slot);          // room for the next message from peer 1
 *   ... nsl_link_poll(l) on the dataplane thread ...
 *   nsl_link_sent(l, done, 8);        // &out, with out.status 0 once peer 1 has it whole
 *   nsl_link_recv(l, got, 8);         // &slot, with slot.len = bytes received
 *
 * Guarantees, per pair of peers: messages are delivered whole, intact (a CRC32C over each
 * message; a corrupted one is sent again, never delivered), exactly once and in the order they
 * were sent. Lost frames are sent again: the receiver reports the ranges it misses, and the
 * sender probes when a message sees no progress for `rto_us`. Credits: message k from a peer
 * goes into the k-th slot posted for that peer, and the sender sends no message before its slot
 * exists, so no sender can overrun a receiver. A message longer than its slot fails on both
 * sides with -EMSGSIZE. A peer silent for `peer_timeout_ms` while there is work with it is
 * declared dead: its messages and slots come back with -EHOSTDOWN and nsl_link_dead_peer names it.
 * With heartbeats on, silence alone is enough, so a waiting peer learns of a dead one it expects
 * a message from. A peer that gives up says so (nsl_link_abort) and the others learn at once.
 *
 * Zero copy: sent frames are header mbufs chained to mbufs that point into the message's own
 * memory, which therefore must come from nsl_dp_alloc (DPDK's main heap). A message comes back
 * from nsl_link_sent only when the last of its frames has been freed by the port. The receiver
 * copies each payload once, into its slot. The counters tx_copy_bytes and rx_copy_bytes count
 * every payload byte nsplit itself copies (tx_copy_bytes stays 0 on ports that send chained
 * mbufs); copies that a PMD makes internally (memif's server side, af_packet) are not nsplit's.
 */
#ifndef NSPLIT_LINK_H
#define NSPLIT_LINK_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "nsplit/wire.h"

struct nsl_port;

struct nsl_link_conf {
	uint32_t session;         /* the run's id; frames of other sessions are dropped */
	uint16_t self;            /* this peer's id */
	uint16_t udp_port;        /* 0 = NSL_WIRE_UDP_PORT */
	uint32_t self_ip;         /* host order (0 = 10.77.0.<self+1>) */
	uint16_t slots;           /* messages in flight per peer and direction, a power of two (0 = 32) */
	uint64_t max_msg;         /* largest message a slot may take (0 = 256 MiB) */
	uint32_t rto_us;          /* no progress for this long: probe the receiver (0 = 2000) */
	uint32_t peer_timeout_ms; /* silence with work pending: the peer is dead (0 = 5000) */
	uint32_t heartbeat_ms;    /* 0 = off. Else an ack to every peer this often, and a peer once
				     heard and then silent for peer_timeout_ms is dead, work or not
				     (processes whose peers may die without a word) */
};

/* What a peer said when it gave up the session (nsl_link_abort). */
struct nsl_link_abort {
	uint16_t from;            /* the peer that sent it */
	uint16_t blame;           /* the peer it blames (itself when its own work failed) */
	uint32_t info;            /* the caller's word, e.g. the last round completed */
	int err;                  /* the errno it failed with */
};

/* A message: the sender fills the first part; the link fills the rest. */
struct nsl_msg {
	void *data;               /* send: the bytes; post: the slot (both from nsl_dp_alloc) */
	uint64_t len;             /* send: bytes to send; post: slot capacity, then bytes received */
	uint16_t peer;            /* send: destination; post: the peer whose next message fills it */
	uint8_t type;             /* enum nsl_msg_type (send: not NSL_MSG_ACK); post: filled in */
	uint16_t stage;           /* tags, carried in every frame; filled in on receive */
	uint16_t micro;
	uint32_t round;
	uint32_t step;
	void *user;               /* the caller's, untouched */
	/* filled in by the link */
	int status;               /* 0, or -EMSGSIZE, -EHOSTDOWN, -EINVAL (see nsl_link_send) */
	uint32_t id;              /* message id on this pair and direction */
	uint32_t crc;             /* CRC32C of the payload */
};

struct nsl_link_peer_stats {
	uint64_t msgs_tx, msgs_rx;
	uint64_t bytes_tx, bytes_rx;      /* payload of messages completed */
	uint64_t frames_tx, frames_rx;    /* data frames, first sends and retransmissions */
	uint64_t retransmits;             /* data frames sent again */
	uint64_t probes;                  /* sends after an rto without progress */
	uint64_t acks_tx, acks_rx;
	uint64_t credit_stalls;           /* polls that found messages waiting for a slot */
	uint64_t crc_failures;            /* whole messages that failed their CRC32C */
};

struct nsl_link_stats {
	uint64_t tx_copy_bytes;           /* payload bytes nsplit copied to send */
	uint64_t rx_copy_bytes;           /* payload bytes nsplit copied on receive (once each) */
	uint64_t tx_full;                 /* frames the port would not take at once (sent later) */
	uint64_t mbuf_exhausted;          /* polls that found no free mbufs */
	uint64_t drops[NSL_DROP_MAX];     /* received frames dropped, by reason */
};

struct nsl_link;

/* NULL with a message on bad configuration or when memory runs out. Free with nsl_link_free. */
struct nsl_link *nsl_link_create(const struct nsl_link_conf *c);

/*
 * Messages that are still in flight are abandoned; the ports stay open (they are the caller's).
 * NULL-safe.
 */
void nsl_link_free(struct nsl_link *l);

/*
 * Reach peer `peer` through `port`, at `mac` (NULL = broadcast, fine on point-to-point ports)
 * and `ip` (0 = 10.77.0.<peer+1>). Before the first poll. 0, -EINVAL (own id, bad MTU), -EEXIST.
 */
int nsl_link_add_peer(struct nsl_link *l, uint16_t peer, struct nsl_port *port, const uint8_t mac[6], uint32_t ip);

/*
 * Compute thread. Queue m for sending. 0, -ENOBUFS when the queue to the dataplane thread is
 * full (poll, take back what was sent, try again), -EINVAL (unknown peer, empty or too long
 * message, memory not from nsl_dp_alloc). m and its data belong to the link until nsl_link_sent
 * gives m back.
 */
int nsl_link_send(struct nsl_link *l, struct nsl_msg *m);

/* Compute thread. Give a slot for the next message from m->peer. 0, -ENOBUFS, -EINVAL. */
int nsl_link_post(struct nsl_link *l, struct nsl_msg *m);

/* Compute thread. Up to n messages whose sending ended (check each status). Returns how many. */
unsigned int nsl_link_sent(struct nsl_link *l, struct nsl_msg **out, unsigned int n);

/* Compute thread. Up to n filled slots, in the order each peer sent them. Returns how many. */
unsigned int nsl_link_recv(struct nsl_link *l, struct nsl_msg **out, unsigned int n);

/*
 * Dataplane thread: receive, acknowledge, send, retransmit, check timers, once. Never blocks.
 * Returns the number of frames handled (0: idle), or a negative errno if a port failed.
 */
int nsl_link_poll(struct nsl_link *l);

/* Dataplane thread, or either thread when the other is stopped. -1 when none, else a dead peer's id. */
int nsl_link_dead_peer(const struct nsl_link *l);

/*
 * Dataplane thread. Tell every live peer that this one gives up the session, blaming peer `blame`
 * with the caller's `info` and errno `err`: one frame each, no reply. Call it a few times, polling
 * between, where frames may be lost. The peers' messages with this one fail with -ECONNABORTED.
 */
void nsl_link_abort(struct nsl_link *l, uint16_t blame, uint32_t info, int err);

/* Dataplane thread, or either thread when the other is stopped. Whether a peer gave up; *out its word. */
bool nsl_link_aborted(const struct nsl_link *l, struct nsl_link_abort *out);

/* Counters (copies; read from any thread, values may be a poll behind). */
void nsl_link_stats(const struct nsl_link *l, struct nsl_link_stats *out);
int nsl_link_peer_stats(const struct nsl_link *l, uint16_t peer, struct nsl_link_peer_stats *out);

/* The counters as text, one peer per line and the non-zero drop reasons. */
void nsl_link_print_stats(const struct nsl_link *l, FILE *f);

#endif
