/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "nsplit/error.h"
#include "simulate.h"

enum { CH_ACT, CH_GRAD, CH_LABELS, CH_STAGE, CH_KINDS };

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
	double busy;
};

struct sim {
	const struct nsl_sim_conf *c;
	int n, batches;
	double now;
	double *link_free;            /* n x n: when each direction's link is free */
	struct chan *ch;              /* n x n x CH_KINDS */
	struct speer *p;
	double fwd[NSL_PLAN_MAX_PEERS], bwd[NSL_PLAN_MAX_PEERS];   /* per sample, per stage */
	double out_bytes[NSL_PLAN_MAX_PEERS], in_bytes[NSL_PLAN_MAX_PEERS], stage_bytes[NSL_PLAN_MAX_PEERS];
};

static int chan_of(const struct sim *s, int from, int to, int kind)
{
	return (from * s->n + to) * CH_KINDS + kind;
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
	const struct nsl_cost *cost = s->c->cost;
	double *free_at = &s->link_free[from * s->n + to];
	double start = *free_at > s->now ? *free_at : s->now;

	*free_at = start + bytes / cost->link_bw;
	return push(&s->ch[chan_of(s, from, to, kind)], *free_at + cost->link_lat);
}

static int batch_rows(const struct sim *s, int b)
{
	return nsl_sched_batch_rows(s->c->per_shard, s->c->batch, s->batches, b);
}

static int compile(struct sim *s, struct speer *p)
{
	int rows = batch_rows(s, p->batch);

	p->n = nsl_sched_compile(s->c->schedule, s->n, p->stage, (rows + s->c->micro - 1) / s->c->micro, p->prog,
				 NSL_SCHED_MAX_INSTR);
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
			      op < NSL_OP_COUNT ? p->prog[p->pc].micro : 0, t0, s->now);
}

/* Run a ready peer's instructions that take no time, up to one that does or that must wait. */
static int step(struct sim *s, int rank)
{
	struct speer *p = &s->p[rank];
	const int n = s->n, next = (rank + 1) % n, prev = (rank + n - 1) % n;
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
				break;
			}
			/* The swap: this stage to the next peer, the previous peer's here. */
			if (n > 1 && (rc = send(s, rank, next, CH_STAGE, s->stage_bytes[p->stage])) < 0)
				return rc;
			p->stage = nsl_sched_stage_of(n, rank, p->round);
			p->batch = 0;
			if ((rc = compile(s, p)) < 0)
				return rc;
			if (n > 1) {
				p->st = WAITING;
				p->swap_wait = true;
				p->wait = chan_of(s, prev, rank, CH_STAGE);
				p->t0 = s->now;
			}
			continue;
		}
		const struct nsl_instr *in = &p->prog[p->pc];
		const int rows = nsl_sched_micro_rows(batch_rows(s, p->batch), s->c->micro, in->micro);
		const double v = speed(s, rank);

		switch ((enum nsl_op)in->op) {
		case NSL_OP_FWD:
		case NSL_OP_BWD:
		case NSL_OP_WGRAD:
			p->remaining = in->op == NSL_OP_FWD ? rows * s->fwd[p->stage] / v
				     : in->op == NSL_OP_BWD ? rows * s->bwd[p->stage] / (2 * v)
							    : batch_rows(s, p->batch) * s->bwd[p->stage] / (2 * v);
			if (p->remaining > 0) {
				p->st = COMPUTING;
				p->t0 = s->now;
			} else {
				p->pc++;
			}
			break;
		case NSL_OP_SEND_ACT:
			rc = send(s, rank, next, CH_ACT, rows * s->out_bytes[p->stage]);
			p->pc++;
			break;
		case NSL_OP_SEND_GRAD:
			rc = send(s, rank, prev, CH_GRAD, rows * s->in_bytes[p->stage]);
			p->pc++;
			break;
		case NSL_OP_SEND_LABELS:
			rc = send(s, rank, prev, CH_LABELS, rows * 4.0);
			p->pc++;
			break;
		case NSL_OP_RECV_ACT:
		case NSL_OP_RECV_GRAD:
		case NSL_OP_RECV_LABELS:
			/* Labels come from stage 1, the last stage's other neighbour: the next peer. */
			p->wait = chan_of(s, in->op == NSL_OP_RECV_ACT ? prev : next, rank,
					  in->op == NSL_OP_RECV_ACT ? CH_ACT : in->op == NSL_OP_RECV_GRAD ? CH_GRAD : CH_LABELS);
			p->swap_wait = false;
			p->st = WAITING;
			p->t0 = s->now;
			break;
		default:
			p->pc++;
		}
		if (in->op == NSL_OP_SEND_ACT || in->op == NSL_OP_SEND_GRAD || in->op == NSL_OP_SEND_LABELS) {
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

/* A waiting peer whose message has come takes it and goes on. */
static bool wake(struct sim *s, int rank)
{
	struct speer *p = &s->p[rank];
	struct chan *c = &s->ch[p->wait];

	if (p->st != WAITING || c->head == c->tail || c->t[c->head] > s->now + 1e-15)
		return false;
	c->head++;
	span(s, rank, p->swap_wait ? NSL_TRACE_SWAP : p->prog[p->pc].op, p->t0);
	if (!p->swap_wait)
		p->pc++;
	p->swap_wait = false;
	p->st = READY;
	return true;
}

static int run(struct sim *s, struct nsl_sim_result *out)
{
	const int n = s->n;
	int rc;

	for (;;) {
		bool moved = true;
		int computing = 0, done = 0;
		double dt = INFINITY, rate;

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
		for (int q = 0; q < n; q++) {
			computing += s->p[q].st == COMPUTING;
			done += s->p[q].st == DONE;
		}
		if (done == n)
			break;
		rate = s->c->cores > 0 && computing > s->c->cores ? (double)s->c->cores / computing : 1.0;
		for (int q = 0; q < n; q++) {
			const struct speer *p = &s->p[q];
			const struct chan *c = &s->ch[p->wait];

			if (p->st == COMPUTING && p->remaining / rate < dt)
				dt = p->remaining / rate;
			else if (p->st == WAITING && c->head < c->tail && c->t[c->head] - s->now < dt)
				dt = c->t[c->head] - s->now;
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
			p->remaining -= dt * rate;
			p->busy += dt * rate;
			if (p->remaining <= 1e-15) {
				span(s, q, p->prog[p->pc].op, p->t0);
				p->pc++;
				p->st = READY;
			}
		}
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
	for (int k = 0; k < n; k++) {
		for (int i = c->starts[k]; i < c->starts[k + 1]; i++) {
			s.fwd[k] += c->cost->layer[i].fwd_s;
			s.bwd[k] += c->cost->layer[i].bwd_s;
			s.stage_bytes[k] += c->cost->layer[i].fixed_bytes;
		}
		s.out_bytes[k] = c->cost->layer[c->starts[k + 1] - 1].act_bytes;
		s.in_bytes[k] = k > 0 ? c->cost->layer[c->starts[k] - 1].act_bytes : 0;
	}
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
	return rc;
}
