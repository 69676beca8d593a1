/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * One peer of an N-split job, whatever carries its messages: the state and the runtime that
 * `nsplit train --peers N` (every peer a thread of one process) and `nsplit train --cluster`
 * (one peer per process or host) share.
 *
 * Peer i owns shard i. In round r stage s is on peer (r + s) mod N, so every message goes to a
 * ring neighbour: activations forward, gradients back, the labels from the owner (stage 1)
 * straight to the last stage (its other neighbour), and at the end of a round each stage, with
 * its optimizer state, one peer on.
 *
 * Each peer runs its stage's batch program (schedule.h) one instruction at a time and polls its
 * link while it waits. Receive slots are posted in the order the neighbour sends, which both
 * sides know from the same programs; each message lands in the buffer of its micro-batch slot.
 */
#ifndef NSL_PEER_H
#define NSL_PEER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "nsplit/arena.h"
#include "nsplit/compute.h"
#include "nsplit/link.h"
#include "nsplit/model.h"
#include "nsplit/optim.h"
#include "nsplit/poll.h"
#include "nsplit/stage.h"
#include "nsplit/stash.h"
#include "batcher.h"
#include "chain.h"
#include "dataset.h"
#include "checkpoint.h"
#include "record.h"
#include "schedule.h"
#include "fast.h"
#include "progress.h"
#include "trace.h"
#include "train.h"

struct rxbuf {
	struct nsl_msg msg;
	void *data;
	uint64_t cap;
	bool posted;          /* given to the link, not yet filled */
	bool full;            /* filled, not yet used; msg says what it holds */
};

/* Receive slots by kind; Fast N-split adds one kind per forward role that ships a backward role
 * its tensors, and one per backward role that pushes parameters. */
enum { RX_ACT, RX_LABELS, RX_GRAD, RX_SAVED, RX_PARAMS = RX_SAVED + NSL_FAST_MAX_ROLES,
       RX_KINDS = RX_PARAMS + NSL_FAST_MAX_ROLES };

/* Where the messages from one neighbour stand: its programs, walked in its send order. */
struct expect {
	int from;             /* the neighbour's rank */
	int round, batch, pc, n;
	bool swap_done;       /* this round's stage message was posted */
	bool done;
	struct nsl_instr *prog;
};

struct txmsg {
	struct nsl_msg msg;
	bool busy;
};

struct job;

/* What the last stage saw in one round. */
struct nsl_round_stat {
	double loss_sum;
	int64_t correct, seen;
	double t_end;             /* nsl_now() on the peer that filled it */
};

struct peer {
	struct job *job;
	int rank;
	pthread_t thread;
	struct nsl_port *port_next, *port_prev;   /* the same port when one reaches both */
	uint8_t mac_next[6], mac_prev[6];
	bool mac_next_set, mac_prev_set;          /* else broadcast (point-to-point ports) */
	uint32_t ip_next, ip_prev, ip_self;       /* 0: 10.77.0.<rank + 1> */
	struct nsl_link *link;
	struct nsl_idle idle;
	/* Peers of one process: each has a bell (poll.h), and rings a napping partner's when it
	 * moved frames or acks to it since the last look (tx_seen: frames and acks sent to each). */
	struct nsl_bell bell;
	struct nsl_bell *ring;        /* what partners ring to wake this peer: its bell, or its workers' (coop) */
	struct fiber *fiber;          /* --poll coop: the coroutine it runs as (coop.h), else NULL */
	bool bells;
	bool hold_bells;              /* sending: ring once the message is out, not at its first frames */
	bool linked[NSL_DATASET_MAX_PARTS];
	uint64_t tx_seen[NSL_DATASET_MAX_PARTS];
	struct nsl_compute *cc;
	struct nsl_batcher data;
	bool data_ok;
	struct nsl_stage *stage;
	int stage_idx;

	float *x;             /* stage 0: the batch */
	int32_t *labels;      /* stage 0: its labels (they travel) */
	float *dlogits;       /* last stage: one micro-batch of logit gradients per slot */
	const float *y[NSL_STAGE_MAX_CONTEXTS];   /* each slot's forward output */
	const float *dx[NSL_STAGE_MAX_CONTEXTS];  /* each slot's input gradient */
	struct rxbuf *rx[RX_KINDS];              /* nsl_job_buffers' rx_slots[kind] each */
	struct rxbuf swap_rx;
	struct txmsg tx_act[NSL_STAGE_MAX_CONTEXTS], tx_grad[NSL_STAGE_MAX_CONTEXTS];
	struct txmsg tx_labels[NSL_STAGE_MAX_CONTEXTS], tx_swap;
	void *swap_tx_buf;
	/* Fast N-split: what a forward role ships each backward role (FAST_TX_SLOTS a role), and the
	 * parameters a backward role pushes each forward role, staged for sending. */
	struct txmsg *tx_saved, tx_params[NSL_FAST_MAX_ROLES];
	void **saved_buf, *params_buf[NSL_FAST_MAX_ROLES];
	uint64_t params_cap;
	/* A forward role reads pushed parameters where they arrived (with staleness, a push's slot
	 * has a sibling to take the next): the slot it reads from, per backward role (-1: none),
	 * held until the next push from there, and each parameter's own buffer meanwhile. */
	int push_held[NSL_FAST_MAX_ROLES];
	float **push_own;
	struct nsl_stash stash;               /* a backward role's weight versions (--staleness) */
	struct nsl_arena arena;               /* the stage's and stash's memory, kept across rounds */
	struct expect *expect;                /* one per peer that sends this one anything */
	int nexpect;
	/* Fast N-split: a port to every other peer (a pair each in one process; one reaching all in
	 * a cluster), its MAC (else broadcast) and IPv4 address (0: the default) */
	struct nsl_port *port_to[NSL_FAST_MAX_ROLES];
	uint8_t mac_to[NSL_FAST_MAX_ROLES][6];
	bool mac_to_set[NSL_FAST_MAX_ROLES];
	uint32_t ip_to[NSL_FAST_MAX_ROLES];
	struct nsl_instr *prog;
	int64_t version;      /* this batch's weights: the optimizer steps they have had */

	double loss_sum;
	int64_t correct, seen;
	atomic_int rounds_done;
	int round_now;            /* the round this peer trains (or swaps after) */
	double t_ready, t_done;   /* set up, and done training (nsl_now) */
	struct nsl_trace trace;   /* --trace: this peer's spans */
	uint64_t budget;          /* bytes, 0 = none */
	uint64_t peak;            /* the largest stage made here plus the buffers */
	int rc;
	char err[1024];
};

#define FAST_TX_SLOTS 2

struct nsl_cluster;

struct job {
	const struct nsl_train_opts *o;
	const struct nsl_cluster *cluster;      /* --cluster: its peers and links (--split auto plans for them) */
	struct nsl_model *model;
	int npeers;
	int starts[NSL_CHAIN_MAX_STAGES + 1];   /* the stages; Fast N-split: the backward pool's */
	/* Every role's layers [first, last): stage s's, or Fast N-split's forward role f (f < fwd) and
	 * backward role fwd + b. Roles rotate as stages do. */
	int first[NSL_CHAIN_MAX_STAGES], last[NSL_CHAIN_MAX_STAGES];
	bool fast;
	struct nsl_fast_layout fl;
	int fstarts[NSL_CHAIN_MAX_STAGES + 1];  /* the forward pool's split */
	struct nsl_fast_ship *ship;             /* per backward role */
	struct nsl_optim_config foc;            /* forward roles: parameters only, no optimizer state */
	struct nsl_optim_config oc;
	struct nsl_lr_schedule sched;
	struct nsl_dataset_files files;
	uint64_t stage_plan[NSL_CHAIN_MAX_STAGES];   /* planned bytes of each stage */
	uint32_t shard_limit;
	uint32_t per_shard;           /* records each round trains on */
	int batches;                  /* per round */
	int rounds;
	int first_round;              /* > 0 when resumed from a checkpoint */
	struct nsl_ckpt *resume;      /* the checkpoint resumed from, or NULL */
	char split_text[256];         /* "1,2,3" */
	char config[3072];            /* what every peer must agree on, key=value lines */
	uint64_t config_hash;
	struct nsl_round_stat *round_stats;   /* per round, filled by the peer holding the last stage */
	atomic_int *round_ready;              /* in one process: round_stats[r] is filled */
	FILE *metrics;                        /* --metrics, open for the whole job */
	double t_train;                       /* when training began (nsl_now) */
	int micro;                    /* micro-batch rows */
	int slots[NSL_CHAIN_MAX_STAGES];   /* micro-batches in flight on each stage */
	int kmax;                     /* the most of them */
	enum nsl_poll_mode poll;
	uint32_t peer_timeout_ms;     /* link: a silent peer is dead after this long (0: link default) */
	uint32_t heartbeat_ms;        /* link heartbeats (0: off, peers in one process) */
	bool count_every_batch;       /* progress: each peer counts every batch (one peer per process) */
	atomic_int stop;              /* a peer failed: the others give up */
	atomic_int_fast64_t samples;  /* done, for the progress line */
	struct peer *peers;
};

static inline int nsl_job_stage_of(const struct job *j, int rank, int round)
{
	return nsl_sched_stage_of(j->npeers, rank, round);
}

static inline int nsl_job_rank_of(const struct job *j, int stage, int round)
{
	return (stage + round) % j->npeers;
}

static inline int nsl_job_batch_rows(const struct job *j, int b)
{
	return nsl_sched_batch_rows(j->per_shard, j->o->batch, j->batches, b);
}

static inline int nsl_job_micro_count(const struct job *j, int rows)
{
	return (rows + j->micro - 1) / j->micro;
}

static inline int nsl_job_micro_rows(const struct job *j, int rows, int m)
{
	return nsl_sched_micro_rows(rows, j->micro, m);
}

static inline int nsl_job_compile(const struct job *j, int stage, int b, struct nsl_instr *prog)
{
	int nmicro = nsl_job_micro_count(j, nsl_job_batch_rows(j, b));

	if (j->fast)
		return nsl_sched_compile_fast(&j->fl, stage, b, j->batches, nmicro, prog, NSL_SCHED_MAX_INSTR);
	return nsl_sched_compile(j->o->schedule, j->npeers, stage, nmicro, prog, NSL_SCHED_MAX_INSTR);
}

static inline bool nsl_job_is_forward_role(const struct job *j, int role)
{
	return j->fast && role < j->fl.fwd;
}

/* The optimizer a role's stage is made with. */
static inline const struct nsl_optim_config *nsl_job_optim(const struct job *j, int role)
{
	return nsl_job_is_forward_role(j, role) ? &j->foc : &j->oc;
}

/* The most a swap of this role (a record, record.h) takes. */
static inline uint64_t nsl_job_swap_bytes(const struct job *j, int stage)
{
	return nsl_record_cap(j->model, j->first[stage], j->last[stage], nsl_job_optim(j, stage)->ops->state_slots);
}

/* The stage of role `role` as made (nsl_stage_create), allocator aside. */
void nsl_job_stage_config(const struct job *j, int role, struct nsl_stage_config *cfg);

/* ---- planning (job.c) ---- */

/* The buffers every peer holds whatever its stage: receive slots per micro-batch in flight, the
 * two swap buffers, the batch and its labels, the logit gradients. */
struct nsl_job_buffers {
	uint64_t rx_cap[RX_KINDS];    /* one slot of each kind */
	int rx_slots[RX_KINDS];       /* slots of each kind */
	uint64_t saved_cap, params_cap;   /* Fast N-split's staging buffers, one each */
	uint64_t swap_cap;
	uint64_t batch_x, batch_labels, dlogits;
	uint64_t total;
};
void nsl_job_buffers(const struct job *j, struct nsl_job_buffers *out);

/*
 * Every peer's budget (budgets[i] bytes, 0 = none; `source` says where it was given) against
 * every stage the rotation brings it, planned from the model: 0, or -ENOMEM naming the peer,
 * the stage, the bytes it needs and the budget. Records each stage's planned bytes.
 */
int nsl_job_check_memory(struct job *j, const uint64_t *budgets, const char *source);

/* One line: each peer's peak (the largest stage it held, as made, plus its buffers) and budget. */
void nsl_job_print_peaks(const struct peer *peers, int n);

/* The manifest of the checkpoint after `round` rounds (JSON). */
void nsl_job_manifest(const struct job *j, int round, char *out, size_t cap);

/* Open --resume's newest complete checkpoint and choose the round to start from. */
int nsl_job_resume(struct job *j);

/* Free what the plan and the resume made. */
void nsl_job_end(struct job *j);

/* While the peers train: the progress line, and the --metrics lines of rounds completed. */
struct nsl_job_watch {
	struct nsl_progress prog;
	int next_round;           /* the first round without its metrics line */
	int64_t done0;            /* samples done before this run (a resume) */
	double loss;              /* the last completed round's */
};
void nsl_job_watch_start(struct job *j, struct nsl_job_watch *w);
void nsl_job_watch_tick(struct job *j, struct nsl_job_watch *w);
void nsl_job_watch_end(struct job *j, struct nsl_job_watch *w);

/* Make the per-round records and, if `metrics`, open --metrics (before training). */
int nsl_job_records_open(struct job *j, bool metrics);

/* --metrics lines for the rounds from *next on that are complete: a round line each, an epoch
 * line after the last round of each epoch; *next moves on. In one process rounds are complete
 * as round_ready says; after a gather (one peer per process) every round is. */
void nsl_job_metrics_rounds(struct job *j, int *next, bool all_complete);

/* "1.5 MiB": b in binary units, for messages. */
const char *nsl_job_bytes(uint64_t b, char *buf, size_t cap);

/* Shards, split, micro-batches and slots of the job o describes; prints the schedule if asked. */
int nsl_job_plan(struct job *j, const struct nsl_train_opts *o, float *base_lr);

/* MiB of DPDK heap that `peers_here` peers of the job need in one process. */
size_t nsl_job_dp_mem_mb(const struct job *j, int peers_here);

/*
 * The peers a plan request is for (r->npeers of them; speed and budget hold as many): with
 * --cluster the file's speeds, budgets (--mem-limit where a peer gives none), hosts and links,
 * in the order the job runs them, stage s of round r on peer (r + s) mod N (r->fixed_order; the
 * best order nsplit plan may print is applied only by renumbering the peers); else equal peers
 * of --mem-limit each.
 */
struct nsl_plan_req;
void nsl_job_plan_peers(const struct job *j, struct nsl_plan_req *r, double *speed, double *budget);

/* What the peers' last stages saw in training, summed over the job. */
struct nsl_job_totals {
	double loss_sum;
	int64_t correct, seen;
};

/* Evaluate the gathered model c, print the summary, write --metrics and --save-weights. */
int nsl_job_finish(struct job *j, struct nsl_chain *c, const struct nsl_job_totals *t, double train_time,
		   double t_start);

/* ---- Fast N-split (fast.c, peer_fast.c) ---- */

/* Pools, splits (--split-fwd/--split-bwd, or the planner's), what each forward role ships each
 * backward role, roles' layers and slots. 0 or -EINVAL with a message. */
int nsl_fast_plan(struct job *j, const struct nsl_train_opts *o);

/* One Fast N-split instruction of peer p (send_saved, recv_saved, refwd, send_params,
 * recv_params) in batch b of `round`, global step `step`, of `rows` rows. */
int nsl_peer_fast_op(struct peer *p, const struct nsl_instr *in, int round, int b, int64_t step, int rows);

/* Round's end: parameters read from pushes' slots back in the stage's own buffers, the slots
 * free for the next round. */
void nsl_peer_fast_settle(struct peer *p);

/* ---- one peer (peer.c) ---- */

/* Buffers, shard, link (ports and neighbours set by the caller) and the first round's stage. */
int nsl_peer_setup(struct peer *p);
/* Every round of the job; 0 or a negative errno (message set). */
int nsl_peer_train(struct peer *p);
void nsl_peer_free(struct peer *p);

/* Record the peer's first failure (with the last error) and tell the job to stop. */
int nsl_peer_fail(struct peer *p, int rc);

/* Give r to the link for the next message from peer `from`: 1 posted, 0 no room yet, or an errno. */
int nsl_peer_try_post(struct peer *p, struct rxbuf *r, int from);

/* Link work while waiting: poll, collect what arrived and what was sent, post more slots. */
int nsl_peer_pump(struct peer *p);

/* Poll the link once, ringing the partners it gave work to (the bells of peers in one process). */
int nsl_peer_poll(struct peer *p);
int nsl_peer_wait_rx(struct peer *p, struct rxbuf *r);
int nsl_peer_wait_tx(struct peer *p, struct txmsg *t);
int nsl_peer_send(struct peer *p, struct txmsg *t, int to, uint8_t type, const void *data, uint64_t len, int stage,
		  int micro, int round, int64_t step);
/* That r holds the message of this type, micro-batch, round and step: 0, or -EPROTO saying what came. */
int nsl_peer_check_msg(const struct rxbuf *r, uint8_t type, int micro, int round, int64_t step);
/* Before a computation: post the slots freed since the last wait, let frames go. */
int nsl_peer_post_all(struct peer *p);
/* Wait until everything this peer sent has arrived. */
int nsl_peer_drain(struct peer *p);

/* This peer's stage, after rounds_done rounds, as a record (record.h) in swap_tx_buf: *len bytes. */
int nsl_peer_pack_stage(struct peer *p, int64_t rounds_done, uint64_t *len);
/* Fill s from a record of job j's model received into buf; `what` names it in messages. */
int nsl_peer_unpack_stage(const struct job *j, struct nsl_stage *s, const void *buf, uint64_t len, const char *what);

#endif
