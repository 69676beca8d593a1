/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "nsplit/error.h"
#include "nsplit/poll.h"
#include "fast.h"
#include "simulate.h"

enum { CH_ACT, CH_GRAD, CH_LABELS, CH_STAGE, CH_SAVED, CH_PARAMS, CH_KINDS };

/* Arrival times of the messages on one channel (sender, receiver, kind), in order. */
struct chan {
	double *t;
	int head, tail, cap;
};

enum state { READY, COMPUTING, WAITING, DONE };

struct speer {
	enum state st;
	int stage, round, batch, pc, n;
	struct nsl_instr *prog;
	double remaining, t0;
	int wait;                     /* the channel waited on */
	bool swap_wait;               /* waiting for the next round's stage */
	bool credit_wait;             /* waiting for room in the channel (a Fast backward role's buffer) */
	int swap_phase;               /* 1: packing the old stage and making the new; 2: unpacking it */
	double busy;
	double cpu;                   /* the work of the span under way, at its own pace */
	bool holds;                   /* coop: holds one of the cores (a worker thread) */
	double queued;                /* coop: since when it waits for a core */
};

struct sim {
	const struct nsl_sim_conf *c;
	int n, batches;
	double now;
	double *link_free;            /* n x n: when each direction's link is free */
	struct chan *ch;              /* n x n x CH_KINDS */
	struct speer *p;
	/* Per stage (role), seconds per call at rows[k] rows: forward, a Fast backward role's forward
	 * again, backward (input gradients); the weight gradients, per row of the batch. */
	int nrows, rows[NSL_COST_MAX_ROWS];
	double fwd[NSL_PLAN_MAX_PEERS][NSL_COST_MAX_ROWS], bwd[NSL_PLAN_MAX_PEERS][NSL_COST_MAX_ROWS];
	double refwd[NSL_PLAN_MAX_PEERS][NSL_COST_MAX_ROWS];
	double wgrad_row[NSL_PLAN_MAX_PEERS];
	double step_s[NSL_PLAN_MAX_PEERS], make_s[NSL_PLAN_MAX_PEERS];   /* per batch; per swap */
	double out_bytes[NSL_PLAN_MAX_PEERS], in_bytes[NSL_PLAN_MAX_PEERS], stage_bytes[NSL_PLAN_MAX_PEERS];
	int computing_on[NSL_PLAN_MAX_PEERS];   /* peers computing now, per host */
	/* Peers of one process outnumbering their cores share a worker thread per core (coop.h):
	 * a peer holds one from when it has work until it waits, and no other runs on it. */
	bool coop;
	int held;                               /* coop: cores held */
	double freed;                           /* coop: when a core last came free */
	int peers_on[NSL_PLAN_MAX_PEERS];       /* peers per host */
	struct nsl_fast_layout fl;
	struct nsl_fast_ship *ship;   /* Fast: per backward role */
	double params_bytes[NSL_PLAN_MAX_PEERS][NSL_PLAN_MAX_PEERS];   /* Fast: backward role b to forward role f */
};

static int chan_of(const struct sim *s, int from, int to, int kind)
{
	return (from * s->n + to) * CH_KINDS + kind;
}

/* Messages sent on c not yet taken. */
static int chan_len(const struct chan *c)
{
	return c->tail - c->head;
}

static int push(struct chan *c, double t)
{
	if (c->tail == c->cap) {
		int cap = c->cap ? 2 * c->cap : 16;
		double *nt = realloc(c->t, sizeof(double) * (size_t)cap);

		if (nt == NULL)
			return nsl_error_set(ENOMEM, "simulate: out of memory");
		c->t = nt;
		c->cap = cap;
	}
	c->t[c->tail++] = t;
	if (c->head > 0 && c->head == c->tail - 1) {
		/* Drained: start the buffer over so it stays small. */
		c->t[0] = t;
		c->head = 0;
		c->tail = 1;
	}
	return 0;
}

static int send(struct sim *s, int from, int to, int kind, double bytes)
{
	const struct nsl_sim_conf *c = s->c;
	const int pair = from * s->n + to;
	const double bw = nsl_topo_bw(&c->topo, c->cost, s->n, from, to);
	const double lat = nsl_topo_lat(&c->topo, c->cost, s->n, from, to);
	double *free_at = &s->link_free[pair];
	double start = *free_at > s->now ? *free_at : s->now;

	*free_at = start + bytes / bw;
	return push(&s->ch[chan_of(s, from, to, kind)], *free_at + lat);
}

/* A call's seconds on `rows` rows from a stage's table: between two row counts measured, on the
 * line between them; outside, in proportion to the nearest. */
static double at_rows(const struct sim *s, const double *t, int rows)
{
	const int *r = s->rows, n = s->nrows;
	int k = 0;

	if (rows <= r[0])
		return t[0] * rows / r[0];
	if (rows >= r[n - 1])
		return t[n - 1] * rows / r[n - 1];
	while (r[k + 1] < rows)
		k++;
	return t[k] + (t[k + 1] - t[k]) * (rows - r[k]) / (r[k + 1] - r[k]);
}

/* The row counts the cost's per-call timings have; a cost file without them gives per-sample
 * times, one row's worth, with backward split evenly between input and weight gradients. */
static void rows_of(struct sim *s, const struct nsl_cost *c)
{
	s->nrows = c->nrows > 0 ? c->nrows : 1;
	if (c->nrows > 0)
		memcpy(s->rows, c->rows, sizeof(int) * (size_t)c->nrows);
	else
		s->rows[0] = 1;
}

/* Layer i's costs added to a stage's: its forward (fwd, may be NULL), backward and weight gradients. */
static void add_layer(struct sim *s, const struct nsl_cost_layer *l, double *fwd, double *bwd, double *wgrad_row)
{
	const struct nsl_cost *c = s->c->cost;

	for (int k = 0; k < s->nrows; k++) {
		if (fwd != NULL)
			fwd[k] += c->nrows > 0 ? l->fwd_at[k] : l->fwd_s;
		if (bwd != NULL)
			bwd[k] += c->nrows > 0 ? l->bwd_at[k] : l->bwd_s / 2;
	}
	if (wgrad_row != NULL)
		*wgrad_row += c->nrows > 0 ? l->wgrad_s / c->wgrad_rows : l->bwd_s / 2;
}

static int batch_rows(const struct sim *s, int b)
{
	return nsl_sched_batch_rows(s->c->per_shard, s->c->batch, s->batches, b);
}

static int compile(struct sim *s, struct speer *p)
{
	int rows = batch_rows(s, p->batch), nmicro = (rows + s->c->micro - 1) / s->c->micro;

	if (s->ship != NULL)
		p->n = nsl_sched_compile_fast(&s->fl, p->stage, p->batch, s->batches, nmicro, p->prog, NSL_SCHED_MAX_INSTR);
	else
		p->n = nsl_sched_compile(s->c->schedule, s->n, p->stage, nmicro, p->prog, NSL_SCHED_MAX_INSTR);
	p->pc = 0;
	return p->n < 0 ? p->n : 0;
}

static double speed(const struct sim *s, int rank)
{
	return s->c->speed != NULL && s->c->speed[rank] > 0 ? s->c->speed[rank] : 1.0;
}

static void span(struct sim *s, int rank, int op, double t0)
{
	struct speer *p = &s->p[rank];

	if (s->c->traces != NULL)
		nsl_trace_add(&s->c->traces[rank], op, p->stage, p->round, p->batch,
			      op < NSL_OP_COUNT ? p->prog[p->pc].micro : 0, t0, s->now, p->cpu);
	p->cpu = 0;
}

/* `seconds` of work for p, on a core it holds or (coop) queues for. */
static void work(struct sim *s, struct speer *p, double seconds)
{
	p->remaining = seconds;
	p->cpu += seconds;
	p->st = COMPUTING;
	if (!p->holds)
		p->queued = s->now;
}

/* An instruction's work: a span from now, or none, and on to the next instruction. */
static void compute(struct sim *s, struct speer *p, double seconds)
{
	if (seconds > 0) {
		work(s, p, seconds);
		p->t0 = s->now;
	} else {
		p->pc++;
	}
}

/* Coop: a peer that waits (or is done) hands its core on. */
static void release(struct sim *s, struct speer *p)
{
	if (p->holds) {
		p->holds = false;
		s->held--;
		s->freed = s->now;
	}
}

static void wait_for(struct sim *s, struct speer *p, int from, int rank, int kind)
{
	p->wait = chan_of(s, from, rank, kind);
	p->swap_wait = false;
	p->st = WAITING;
	p->t0 = s->now;
	release(s, p);
}

/* The channel kind an instruction's message travels on. */
static int kind_of(enum nsl_op op)
{
	switch (op) {
	case NSL_OP_SEND_ACT: case NSL_OP_RECV_ACT: return CH_ACT;
	case NSL_OP_SEND_GRAD: case NSL_OP_RECV_GRAD: return CH_GRAD;
	case NSL_OP_SEND_LABELS: case NSL_OP_RECV_LABELS: return CH_LABELS;
	case NSL_OP_SEND_SAVED: case NSL_OP_RECV_SAVED: return CH_SAVED;
	default: return CH_PARAMS;
	}
}

/* Bytes of the message instruction `in` sends or receives on stage q. */
static double msg_bytes(const struct sim *s, const struct nsl_instr *in, int q, int rows)
{
	switch ((enum nsl_op)in->op) {
	case NSL_OP_SEND_ACT: return rows * s->out_bytes[q];
	case NSL_OP_RECV_ACT: return rows * s->in_bytes[q];
	case NSL_OP_SEND_GRAD: return rows * s->in_bytes[q];
	case NSL_OP_RECV_GRAD: return rows * s->out_bytes[q];
	case NSL_OP_SEND_LABELS: case NSL_OP_RECV_LABELS: return rows * 4.0;
	case NSL_OP_SEND_SAVED: return rows * 4.0 * (double)s->ship[in->peer - s->fl.fwd].row[q];
	case NSL_OP_RECV_SAVED: return rows * 4.0 * (double)s->ship[q - s->fl.fwd].row[in->peer];
	case NSL_OP_SEND_PARAMS: return s->params_bytes[q - s->fl.fwd][in->peer];
	case NSL_OP_RECV_PARAMS: return s->params_bytes[in->peer - s->fl.fwd][q];
	default: return 0;
	}
}

/* A rate for messages of `bytes`: `small`'s up to NSL_COPY_SMALL, `large`'s from
 * NSL_COPY_LARGE (when measured), and between them along log(bytes). */
static double rate_at(double small, double large, double bytes)
{
	double f;

	if (large <= 0 || bytes <= NSL_COPY_SMALL)
		return small;
	if (bytes >= NSL_COPY_LARGE)
		return large;
	f = log(bytes / NSL_COPY_SMALL) / log((double)NSL_COPY_LARGE / NSL_COPY_SMALL);
	return small + f * (large - small);
}

/*
 * What a message of `bytes` costs its sender or receiver on its own core: what the profile
 * measured each end of a link pay per byte (frames, CRC, the copy out of the frames), or from
 * an older profile a pass over it at the copy rate; a parameter push another pass (packing it,
 * and loading it without staleness) at the copy rate or, from a profile that did not measure
 * it, the link's.
 */
static double msg_cpu(const struct sim *s, const struct nsl_instr *in, double bytes)
{
	const struct nsl_cost *c = s->c->cost;
	const bool push = in->op == NSL_OP_SEND_PARAMS || in->op == NSL_OP_RECV_PARAMS;
	const bool sending = nsl_op_sends((enum nsl_op)in->op);
	const double pass = c->copy_bw > 0 ? bytes / rate_at(c->copy_bw, c->copy_large_bw, bytes) : 0;
	double t = pass;

	if (sending && c->send_bw > 0)
		t = bytes / rate_at(c->send_bw, c->send_large_bw, bytes);
	else if (!sending && c->recv_bw > 0)
		t = bytes / rate_at(c->recv_bw, c->recv_large_bw, bytes);
	/* packing a push; loading one only without staleness (with it, a forward role reads the
	 * push where it arrived) */
	if (push && (sending || s->c->staleness == 0))
		t += c->copy_bw > 0 ? pass : bytes / c->link_bw;
	return t;
}

/* Run a ready peer's instructions that take no time, up to one that does or that must wait. */
static int step(struct sim *s, int rank)
{
	struct speer *p = &s->p[rank];
	const int n = s->n, next = (rank + 1) % n;
	int rc = 0;

	while (p->st == READY) {
		if (p->pc == p->n) {
			if (++p->batch < s->batches) {
				if ((rc = compile(s, p)) < 0)
					return rc;
				continue;
			}
			if (++p->round == s->c->rounds) {
				p->st = DONE;
				release(s, p);
				break;
			}
			/* The swap: this stage packed and sent to the next peer, the incoming one made here, the
			 * previous peer's record awaited and unpacked into it. */
			const int old = p->stage;

			if (n > 1 && (rc = send(s, rank, next, CH_STAGE, s->stage_bytes[old])) < 0)
				return rc;
			p->stage = nsl_sched_stage_of(n, rank, p->round);
			p->batch = 0;
			if ((rc = compile(s, p)) < 0)
				return rc;
			if (n > 1) {
				p->swap_phase = 1;
				work(s, p, (s->stage_bytes[old] / s->c->cost->link_bw + s->make_s[p->stage]) / speed(s, rank));
				p->t0 = s->now;
			}
			continue;
		}
		const struct nsl_instr *in = &p->prog[p->pc];
		const int rows = nsl_sched_micro_rows(batch_rows(s, p->batch), s->c->micro, in->micro);
		const int to = in->peer != NSL_NO_PEER ? (in->peer + p->round) % n : -1, q = p->stage;
		const double v = speed(s, rank);

		switch ((enum nsl_op)in->op) {
		case NSL_OP_FWD:
			compute(s, p, at_rows(s, s->fwd[q], rows) / v);
			break;
		case NSL_OP_REFWD:
			compute(s, p, at_rows(s, s->refwd[q], rows) / v);
			break;
		case NSL_OP_BWD:
			compute(s, p, at_rows(s, s->bwd[q], rows) / v);
			break;
		case NSL_OP_WGRAD:
			compute(s, p, batch_rows(s, p->batch) * s->wgrad_row[q] / v);
			break;
		case NSL_OP_STEP:
			compute(s, p, s->step_s[q] / v);
			break;
		case NSL_OP_SEND_SAVED:
			if (chan_len(&s->ch[chan_of(s, rank, to, CH_SAVED)]) >= s->c->buffer) {
				/* The backward role's buffer is full: wait for it to take one. */
				wait_for(s, p, rank, to, CH_SAVED);
				p->credit_wait = true;
				break;
			}
			/* fall through */
		case NSL_OP_SEND_ACT:
		case NSL_OP_SEND_GRAD:
		case NSL_OP_SEND_LABELS:
		case NSL_OP_SEND_PARAMS: {
			const double bytes = msg_bytes(s, in, q, rows);

			rc = send(s, rank, to, kind_of((enum nsl_op)in->op), bytes);
			compute(s, p, msg_cpu(s, in, bytes) / v);
			break;
		}
		case NSL_OP_RECV_ACT:
		case NSL_OP_RECV_GRAD:
		case NSL_OP_RECV_LABELS:
		case NSL_OP_RECV_SAVED:
		case NSL_OP_RECV_PARAMS:
			wait_for(s, p, to, rank, kind_of((enum nsl_op)in->op));
			break;
		default:
			p->pc++;
		}
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Host h's cores: the cluster's, or the job's `cores` (0: a core per peer). */
static int host_cores(const struct sim *s, int h)
{
	return s->c->topo.host ? s->c->topo.host_cores[h] : s->c->cores;
}

/*
 * When a peer waiting since `since` sees a message that arrived at `at`. Peers of one process
 * outnumbering its cores run coop (coop.h; below). Peers of a cluster's host outnumbering its
 * cores poll adaptively (poll.h) and nap blind, each nap twice the last from
 * NSL_IDLE_NAP_MIN_US to NSL_IDLE_NAP_MAX_US, so a message waits for the end of the nap it came
 * in; then, if every core is computing, for the scheduler to hand the receiver one (the
 * profile's shared-core latency, measured with the core busy). With a core each they spin:
 * they see it at once.
 */
static double seen_at(const struct sim *s, int rank, double since, double at)
{
	const double cap = NSL_IDLE_NAP_MAX_US * 1e-6;
	const int h = nsl_topo_host(&s->c->topo, rank), cores = host_cores(s, h);
	const double busy = s->computing_on[h] >= cores ? s->c->cost->shared_lat : 0;
	double t = 0, nap = NSL_IDLE_NAP_MIN_US * 1e-6, d = at - since;

	/* Coop: a worker whose core came free polls its peers, rounds of empty polls at about the
	 * link's latency each, then naps on the bell (poll.h's ladder); a message coming to a
	 * free core after that waits the profile's wake latency. A busy worker frees its core
	 * for it only when its peer waits (run's grants). Measured against the runtime, N-split
	 * at 16 micro-batches a batch (a core mostly free): +0.13..+0.20 without the latency,
	 * +0.02..+0.10 with it. */
	if (s->coop) {
		const double polls = (NSL_IDLE_SPINS + NSL_IDLE_YIELDS) * (double)s->n * s->c->cost->link_lat;

		return at + (s->held < cores && d > 0 && at - s->freed > polls ? s->c->cost->wake_lat : 0);
	}
	if (cores <= 0 || s->peers_on[h] <= cores || d <= 0)
		return at;
	while (t < d && nap < cap) {
		t += nap;
		nap *= 2;
	}
	if (t < d)
		t += ceil((d - t) / cap) * cap;
	return since + t + busy;
}

/* A waiting peer whose message has come takes it and goes on. */
static bool wake(struct sim *s, int rank)
{
	struct speer *p = &s->p[rank];
	struct chan *c = &s->ch[p->wait];

	if (p->st != WAITING)
		return false;
	if (p->credit_wait) {
		if (chan_len(c) >= s->c->buffer)
			return false;
		span(s, rank, p->prog[p->pc].op, p->t0);
		p->credit_wait = false;
		p->st = READY;   /* the send goes now */
		return true;
	}
	if (c->head == c->tail || seen_at(s, rank, p->t0, c->t[c->head]) > s->now + 1e-15)
		return false;
	c->head++;
	if (!p->swap_wait) {
		/* Taking the message out of its frames (and loading pushed parameters) takes a pass,
		 * within the receive's span as in a real run's trace. */
		const struct nsl_instr *in = &p->prog[p->pc];
		const int rows = nsl_sched_micro_rows(batch_rows(s, p->batch), s->c->micro, in->micro);
		const double cpu = msg_cpu(s, in, msg_bytes(s, in, p->stage, rows)) / speed(s, rank);

		if (cpu > 0) {
			work(s, p, cpu);   /* the span goes on from the wait's start */
			return true;
		}
		span(s, rank, in->op, p->t0);
		p->pc++;
		p->st = READY;
		return true;
	}
	span(s, rank, NSL_TRACE_SWAP, p->t0);
	/* the incoming stage's record, unpacked */
	p->swap_wait = false;
	p->swap_phase = 2;
	work(s, p, s->stage_bytes[p->stage] / s->c->cost->link_bw / speed(s, rank));
	return true;
}

/* Coop: free cores go to the peers with work, the longest queued first. */
static void grant(struct sim *s)
{
	while (s->held < s->c->cores) {
		struct speer *next = NULL;

		for (int q = 0; q < s->n; q++) {
			struct speer *p = &s->p[q];

			if (p->st == COMPUTING && !p->holds && (next == NULL || p->queued < next->queued))
				next = p;
		}
		if (next == NULL)
			return;
		next->holds = true;
		s->held++;
		/* An instruction starts when it gets its core (a receive's span starts at its wait). */
		if (next->t0 == next->queued)
			next->t0 = s->now;
	}
}

/* Each peer's pace: the peers computing on a host of C cores share them (C / k each when k > C),
 * or under coop those holding a core run and the others stand; slower still by the profile's
 * busy_factor when every core is busy. */
static void host_rates(const struct sim *s, double *rate)
{
	for (int q = 0; q < s->n; q++) {
		const int h = nsl_topo_host(&s->c->topo, q), k = s->computing_on[h], cores = host_cores(s, h);

		if (s->coop)
			rate[q] = s->p[q].holds ? 1.0 : 0.0;
		else
			rate[q] = cores > 0 && k > cores ? (double)cores / k : 1.0;
		if (cores > 0 && k >= cores && s->c->cost->busy_factor > 1)
			rate[q] /= s->c->cost->busy_factor;
	}
}

static int run(struct sim *s, struct nsl_sim_result *out)
{
	const int n = s->n;
	int rc;

	for (;;) {
		bool moved = true;
		int done = 0;
		double dt = INFINITY, rate[NSL_PLAN_MAX_PEERS];

		while (moved) {
			moved = false;
			for (int q = 0; q < n; q++) {
				if (s->p[q].st == READY) {
					if ((rc = step(s, q)) < 0)
						return rc;
					moved = true;
				}
				moved |= wake(s, q);
			}
		}
		memset(s->computing_on, 0, sizeof(s->computing_on));
		for (int q = 0; q < n; q++) {
			s->computing_on[nsl_topo_host(&s->c->topo, q)] += s->p[q].st == COMPUTING;
			done += s->p[q].st == DONE;
		}
		if (done == n)
			break;
		if (s->coop)
			grant(s);
		host_rates(s, rate);
		for (int q = 0; q < n; q++) {
			const struct speer *p = &s->p[q];
			const struct chan *c = &s->ch[p->wait];

			if (p->st == COMPUTING && rate[q] > 0)
				dt = fmin(dt, p->remaining / rate[q]);
			else if (p->st == WAITING && !p->credit_wait && c->head < c->tail)
				dt = fmin(dt, seen_at(s, q, p->t0, c->t[c->head]) - s->now);
		}
		if (isinf(dt))
			return nsl_error_set(EDEADLK, "simulate: every peer waits for a message no one sends (at %.6f s)", s->now);
		if (dt < 0)
			dt = 0;
		s->now += dt;
		out->events++;
		for (int q = 0; q < n; q++) {
			struct speer *p = &s->p[q];

			if (p->st != COMPUTING)
				continue;
			p->remaining -= dt * rate[q];
			p->busy += dt * rate[q];
			if (p->remaining > 1e-15)
				continue;
			if (p->swap_phase == 1) {
				/* made: now the previous peer's record */
				p->swap_phase = 0;
				const double t0 = p->t0;   /* the swap's span runs from its start */

				wait_for(s, p, (q + n - 1) % n, q, CH_STAGE);
				p->swap_wait = true;
				p->t0 = t0;
				continue;
			}
			if (p->swap_phase == 2) {
				p->swap_phase = 0;
				p->st = READY;
				continue;
			}
			span(s, q, p->prog[p->pc].op, p->t0);
			p->pc++;
			p->st = READY;
		}
	}
	return 0;
}

/* Fast N-split: roles' costs, what they ship and push, from the layout the runtime uses. */
static int fast_costs(const struct nsl_sim_conf *c, struct sim *s)
{
	const int F = c->fwd, B = c->npeers - c->fwd;
	const double share = c->param_share > 0 ? c->param_share : 1.0 / 3;
	const struct nsl_cost_layer *l = c->cost->layer;
	int rc;

	if (c->model == NULL || c->fstarts == NULL || F < 1 || B < 1 || c->buffer < 1)
		return nsl_error_set(EINVAL, "simulate: Fast N-split needs the model, both splits and a buffer");
	if ((s->ship = calloc((size_t)B, sizeof(*s->ship))) == NULL)
		return nsl_error_set(ENOMEM, "simulate: out of memory");
	if ((rc = nsl_fast_layout_make(c->model, F, c->fstarts, B, c->starts, c->fast_all, c->staleness, &s->fl, s->ship)) < 0)
		return rc;
	for (int f = 0; f < F; f++) {
		for (int i = c->fstarts[f]; i < c->fstarts[f + 1]; i++) {
			add_layer(s, &l[i], s->fwd[f], NULL, NULL);
			s->stage_bytes[f] += l[i].fixed_bytes * share;
			s->make_s[f] += l[i].make_s;
		}
		s->out_bytes[f] = l[c->fstarts[f + 1] - 1].act_bytes;
		s->in_bytes[f] = f > 0 ? l[c->fstarts[f] - 1].act_bytes : 0;
	}
	for (int b = 0; b < B; b++) {
		const int q = F + b;

		for (int i = c->starts[b]; i < c->starts[b + 1]; i++) {
			add_layer(s, &l[i], c->fast_all ? NULL : s->refwd[q], s->bwd[q], &s->wgrad_row[q]);
			s->stage_bytes[q] += l[i].fixed_bytes;
			/* with staleness, the step writes into the weight stash */
			s->step_s[q] += c->staleness > 0 && l[i].stash_step_s > 0 ? l[i].stash_step_s : l[i].step_s;
			s->make_s[q] += l[i].make_s;
		}
		s->in_bytes[q] = b > 0 ? l[c->starts[b] - 1].act_bytes : 0;
		s->out_bytes[q] = l[c->starts[b + 1] - 1].act_bytes;
		for (int f = 0; f < F; f++)
			for (int i = c->starts[b]; i < c->starts[b + 1]; i++)
				if (i >= c->fstarts[f] && i < c->fstarts[f + 1])
					s->params_bytes[b][f] += l[i].fixed_bytes * share;
	}
	return 0;
}

int nsl_simulate(const struct nsl_sim_conf *c, struct nsl_sim_result *out)
{
	const int n = c->npeers;
	struct sim s = { .c = c, .n = n };
	double busy = 0;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (n < 1 || n > NSL_PLAN_MAX_PEERS || c->batch < 1 || c->micro < 1 || c->per_shard < 1 || c->rounds < 1 ||
	    c->cost->link_bw <= 0)
		return nsl_error_set(EINVAL, "simulate: %d peers, batch %d, micro-batch %d, %lld samples, %d rounds", n,
				     c->batch, c->micro, (long long)c->per_shard, c->rounds);
	s.batches = (int)((c->per_shard + c->batch - 1) / c->batch);
	rows_of(&s, c->cost);
	if (c->schedule == NSL_SCHED_FAST && (rc = fast_costs(c, &s)) < 0)
		goto out;
	for (int k = 0; k < n && c->schedule != NSL_SCHED_FAST; k++) {
		for (int i = c->starts[k]; i < c->starts[k + 1]; i++) {
			add_layer(&s, &c->cost->layer[i], s.fwd[k], s.bwd[k], &s.wgrad_row[k]);
			s.stage_bytes[k] += c->cost->layer[i].fixed_bytes;
			s.step_s[k] += c->cost->layer[i].step_s;
			s.make_s[k] += c->cost->layer[i].make_s;
		}
		s.out_bytes[k] = c->cost->layer[c->starts[k + 1] - 1].act_bytes;
		s.in_bytes[k] = k > 0 ? c->cost->layer[c->starts[k] - 1].act_bytes : 0;
	}
	for (int q = 0; q < n; q++)
		s.peers_on[nsl_topo_host(&c->topo, q)]++;
	s.coop = c->topo.host == NULL && c->cores > 0 && n > c->cores;
	s.link_free = calloc((size_t)n * (size_t)n, sizeof(double));
	s.ch = calloc((size_t)n * (size_t)n * CH_KINDS, sizeof(*s.ch));
	s.p = calloc((size_t)n, sizeof(*s.p));
	if (s.link_free == NULL || s.ch == NULL || s.p == NULL) {
		rc = nsl_error_set(ENOMEM, "simulate: out of memory");
		goto out;
	}
	for (int q = 0; q < n && rc == 0; q++) {
		s.p[q].stage = q;   /* round 0: stage s on peer s */
		if ((s.p[q].prog = malloc(sizeof(struct nsl_instr) * NSL_SCHED_MAX_INSTR)) == NULL)
			rc = nsl_error_set(ENOMEM, "simulate: out of memory");
		else
			rc = compile(&s, &s.p[q]);
	}
	if (rc == 0)
		rc = run(&s, out);
	if (rc == 0) {
		out->total_s = s.now;
		out->round_s = s.now / c->rounds;
		out->samples_per_s = s.now > 0 ? (double)c->per_shard * c->rounds / s.now : 0;
		for (int q = 0; q < n; q++) {
			out->busy_s[q] = s.p[q].busy;
			busy += s.p[q].busy;
		}
		out->utilisation = s.now > 0 ? busy / (n * s.now) : 0;
		out->bubble = s.now > 0 ? 1 - busy / ((c->cores > 0 && c->cores < n ? c->cores : n) * s.now) : 0;
	}
out:
	for (int q = 0; s.p != NULL && q < n; q++)
		free(s.p[q].prog);
	for (int k = 0; s.ch != NULL && k < n * n * CH_KINDS; k++)
		free(s.ch[k].t);
	free(s.ch);
	free(s.link_free);
	free(s.p);
	free(s.ship);
	return rc;
}
