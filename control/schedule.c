/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>

#include "nsplit/error.h"
#include "schedule.h"

static const char *const kind_names[] = {
	[NSL_SCHED_NSPLIT] = "nsplit",
	[NSL_SCHED_GPIPE] = "gpipe",
	[NSL_SCHED_1F1B] = "1f1b",
	[NSL_SCHED_FAST] = "fast",
};

static const char *const op_names[NSL_OP_COUNT] = {
	[NSL_OP_LOAD] = "load",
	[NSL_OP_RECV_ACT] = "recv_act",
	[NSL_OP_RECV_LABELS] = "recv_labels",
	[NSL_OP_FWD] = "fwd",
	[NSL_OP_SEND_ACT] = "send_act",
	[NSL_OP_SEND_LABELS] = "send_labels",
	[NSL_OP_LOSS] = "loss",
	[NSL_OP_RECV_GRAD] = "recv_grad",
	[NSL_OP_BWD] = "bwd",
	[NSL_OP_SEND_GRAD] = "send_grad",
	[NSL_OP_WGRAD] = "wgrad",
	[NSL_OP_STEP] = "step",
	[NSL_OP_SEND_SAVED] = "send_saved",
	[NSL_OP_RECV_SAVED] = "recv_saved",
	[NSL_OP_REFWD] = "refwd",
	[NSL_OP_SEND_PARAMS] = "send_params",
	[NSL_OP_RECV_PARAMS] = "recv_params",
};

int nsl_sched_parse(const char *s, enum nsl_sched_kind *out)
{
	for (unsigned k = 0; k < sizeof(kind_names) / sizeof(kind_names[0]); k++)
		if (strcmp(s, kind_names[k]) == 0) {
			*out = (enum nsl_sched_kind)k;
			return 0;
		}
	return nsl_error_set(EINVAL, "--schedule %s: unknown; give nsplit, gpipe, 1f1b or fast", s);
}

const char *nsl_sched_name(enum nsl_sched_kind k)
{
	return (unsigned)k < sizeof(kind_names) / sizeof(kind_names[0]) ? kind_names[k] : "?";
}

const char *nsl_op_name(enum nsl_op op)
{
	return (unsigned)op < NSL_OP_COUNT ? op_names[op] : "?";
}

static int peer_stage(int nstages, int stage, enum nsl_op op)
{
	switch (op) {
	case NSL_OP_RECV_ACT: return stage - 1;
	case NSL_OP_SEND_ACT: return stage + 1;
	case NSL_OP_RECV_GRAD: return stage + 1;
	case NSL_OP_SEND_GRAD: return stage - 1;
	case NSL_OP_SEND_LABELS: return nstages - 1;
	case NSL_OP_RECV_LABELS: return 0;
	default: return NSL_NO_PEER;
	}
}

struct emit {
	struct nsl_instr *out;
	int n, cap;
	int nstages, stage;
};

static void put_to(struct emit *e, enum nsl_op op, int m, int peer)
{
	if (e->n < e->cap)
		e->out[e->n] = (struct nsl_instr){ .op = (uint8_t)op, .peer = (uint8_t)peer, .micro = (uint16_t)m };
	e->n++;
}

static void put(struct emit *e, enum nsl_op op, int m)
{
	put_to(e, op, m, e->nstages ? peer_stage(e->nstages, e->stage, op) : NSL_NO_PEER);
}

/* Forward of micro-batch m: its input arrives, the output leaves (or the loss is taken). */
static void fwd(struct emit *e, int m)
{
	const bool first = e->stage == 0, last = e->stage == e->nstages - 1;

	if (!first)
		put(e, NSL_OP_RECV_ACT, m);
	if (last && !first)
		put(e, NSL_OP_RECV_LABELS, m);
	put(e, NSL_OP_FWD, m);
	if (!last)
		put(e, NSL_OP_SEND_ACT, m);
	/* The labels go straight to the last stage: in the rotation it is the owner's other neighbour. */
	if (first && !last)
		put(e, NSL_OP_SEND_LABELS, m);
	if (last)
		put(e, NSL_OP_LOSS, m);
}

static void bwd(struct emit *e, int m)
{
	if (e->stage < e->nstages - 1)
		put(e, NSL_OP_RECV_GRAD, m);
	put(e, NSL_OP_BWD, m);
	if (e->stage > 0)
		put(e, NSL_OP_SEND_GRAD, m);
}

int nsl_sched_compile(enum nsl_sched_kind k, int nstages, int stage, int nmicro, struct nsl_instr *out, int cap)
{
	struct emit e = { .out = out, .cap = cap, .nstages = nstages, .stage = stage };

	if (k == NSL_SCHED_FAST)
		return nsl_error_set(EINVAL, "schedule: fast programs come from nsl_sched_compile_fast");
	if (nstages < 1 || stage < 0 || stage >= nstages || nmicro < 1 || nmicro > NSL_SCHED_MAX_MICRO)
		return nsl_error_set(EINVAL, "schedule: stage %d of %d with %d micro-batches (1..%d)", stage, nstages,
				     nmicro, NSL_SCHED_MAX_MICRO);
	if (stage == 0)
		put(&e, NSL_OP_LOAD, 0);
	switch (k) {
	case NSL_SCHED_NSPLIT:
		for (int m = 0; m < nmicro; m++) {
			fwd(&e, m);
			bwd(&e, m);
		}
		break;
	case NSL_SCHED_GPIPE:
		for (int m = 0; m < nmicro; m++)
			fwd(&e, m);
		for (int m = 0; m < nmicro; m++)
			bwd(&e, m);
		break;
	case NSL_SCHED_1F1B: {
		int warm = nstages - stage - 1 < nmicro ? nstages - stage - 1 : nmicro;

		for (int m = 0; m < warm; m++)
			fwd(&e, m);
		for (int m = 0; m + warm < nmicro; m++) {
			fwd(&e, m + warm);
			bwd(&e, m);
		}
		for (int m = nmicro - warm; m < nmicro; m++)
			bwd(&e, m);
		break;
	}
	default:
		return nsl_error_set(EINVAL, "schedule: unknown kind %d", (int)k);
	}
	/* bwd computes input gradients only; the weights' come once, over the whole batch (zero-bubble
	 * schedules' split of backward): the last stage's starts while the others still backpropagate. */
	put(&e, NSL_OP_WGRAD, 0);
	put(&e, NSL_OP_STEP, 0);
	if (e.n > cap)
		return nsl_error_set(ENOSPC, "schedule: %d instructions for room for %d", e.n, cap);
	return e.n;
}

/* Every role of one pool that bit mask `mask` names, in order, from `base`. */
static void put_each(struct emit *e, enum nsl_op op, int m, uint64_t mask, int base)
{
	for (int i = 0; i < 64; i++)
		if (mask >> i & 1)
			put_to(e, op, m, base + i);
}

/* The forward roles whose bit `b` is set in masks[0..nf). */
static uint64_t column(const uint64_t *masks, int nf, int b)
{
	uint64_t out = 0;

	for (int f = 0; f < nf; f++)
		out |= (masks[f] >> b & 1) << f;
	return out;
}

int nsl_sched_compile_fast(const struct nsl_fast_layout *l, int role, int batch, int batches, int nmicro,
			   struct nsl_instr *out, int cap)
{
	struct emit e = { .out = out, .cap = cap };
	const int F = l->fwd, B = l->bwd, N = F + B, S = l->staleness;

	if (F < 1 || B < 1 || N > NSL_FAST_MAX_ROLES || role < 0 || role >= N || nmicro < 1 ||
	    nmicro > NSL_SCHED_MAX_MICRO || batch < 0 || batch >= batches || S < 0)
		return nsl_error_set(EINVAL, "fast schedule: role %d of pools %d:%d, batch %d of %d, %d micro-batches, "
				     "staleness %d", role, F, B, batch, batches, nmicro, S);
	if (role < F) {
		const int f = role;
		const uint64_t from = column(l->params_to, B, f);

		if (f == 0)
			put(&e, NSL_OP_LOAD, 0);
		if (batch >= S + 1)
			put_each(&e, NSL_OP_RECV_PARAMS, batch - S - 1, from, F);
		for (int m = 0; m < nmicro; m++) {
			if (f > 0)
				put_to(&e, NSL_OP_RECV_ACT, m, f - 1);
			put(&e, NSL_OP_FWD, m);
			if (f < F - 1)
				put_to(&e, NSL_OP_SEND_ACT, m, f + 1);
			put_each(&e, NSL_OP_SEND_SAVED, m, l->saved_to[f], F);
			if (f == 0)
				put_to(&e, NSL_OP_SEND_LABELS, m, N - 1);
		}
		for (int b = batches - S - 1 > 0 ? batches - S - 1 : 0; batch == batches - 1 && b < batches; b++)
			put_each(&e, NSL_OP_RECV_PARAMS, b, from, F);
	} else {
		const int b = role - F;
		const uint64_t from = column(l->saved_to, F, b);

		for (int m = 0; m < nmicro; m++) {
			put_each(&e, NSL_OP_RECV_SAVED, m, from, 0);
			if (b == B - 1)
				put_to(&e, NSL_OP_RECV_LABELS, m, 0);
			put(&e, NSL_OP_REFWD, m);
			if (b == B - 1)
				put(&e, NSL_OP_LOSS, m);
			else
				put_to(&e, NSL_OP_RECV_GRAD, m, role + 1);
			put(&e, NSL_OP_BWD, m);
			if (b > 0)
				put_to(&e, NSL_OP_SEND_GRAD, m, role - 1);
		}
		put(&e, NSL_OP_WGRAD, 0);
		put(&e, NSL_OP_STEP, 0);
		put_each(&e, NSL_OP_SEND_PARAMS, batch, l->params_to[b], 0);
	}
	if (e.n > cap)
		return nsl_error_set(ENOSPC, "fast schedule: %d instructions for room for %d (fewer micro-batches)", e.n,
				     cap);
	return e.n;
}

int nsl_sched_in_flight(const struct nsl_instr *prog, int n)
{
	int now = 0, most = 0;

	for (int i = 0; i < n; i++) {
		if (prog[i].op == NSL_OP_FWD && ++now > most)
			most = now;
		else if (prog[i].op == NSL_OP_BWD)
			now--;
	}
	return most;
}

int nsl_sched_most_in_flight(enum nsl_sched_kind k, int nstages, int nmicro)
{
	struct nsl_instr *prog = malloc(sizeof(*prog) * NSL_SCHED_MAX_INSTR);
	int most = 0;

	for (int s = 0; prog != NULL && s < nstages; s++) {
		int n = nsl_sched_compile(k, nstages, s, nmicro, prog, NSL_SCHED_MAX_INSTR), f;

		if (n > 0 && (f = nsl_sched_in_flight(prog, n)) > most)
			most = f;
	}
	free(prog);
	return most > 0 ? most : 1;
}

void nsl_sched_print(FILE *f, const struct nsl_instr *prog, int n)
{
	int col = 0;

	for (int i = 0; i < n; i++) {
		char tok[32];
		int len;

		if (prog[i].op == NSL_OP_LOAD || prog[i].op == NSL_OP_WGRAD || prog[i].op == NSL_OP_STEP)
			len = snprintf(tok, sizeof(tok), "%s", nsl_op_name(prog[i].op));
		else if (prog[i].op >= NSL_OP_SEND_SAVED && prog[i].peer != NSL_NO_PEER)
			len = snprintf(tok, sizeof(tok), "%s:%u@%u", nsl_op_name(prog[i].op), prog[i].micro, prog[i].peer);
		else
			len = snprintf(tok, sizeof(tok), "%s:%u", nsl_op_name(prog[i].op), prog[i].micro);
		if (col > 0 && col + 1 + len > 96) {
			fputc('\n', f);
			col = 0;
		}
		col += fprintf(f, "%s%s", col ? " " : "    ", tok);
	}
	if (col)
		fputc('\n', f);
}
