/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * `nsplit train --peers N`: N peers in one process, one thread each, joined in a ring of net_ring
 * port pairs (peer i reaches i - 1 and i + 1). Peer i owns shard i. In round r stage s is on peer
 * (r + s) mod N, so every message goes to a ring neighbour: activations forward, gradients back,
 * the labels from the owner (stage 1) straight to the last stage (its other neighbour), and at
 * the end of a round each stage, with its optimizer state, one peer on.
 *
 * Each peer runs its stage's batch program (schedule.h) one instruction at a time and polls its
 * link while it waits. Receive slots are posted in the order the neighbour sends, which both
 * sides know from the same programs; each message lands in the buffer of its micro-batch slot.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nsplit/compute.h"
#include "nsplit/eal.h"
#include "nsplit/error.h"
#include "nsplit/link.h"
#include "nsplit/loss.h"
#include "nsplit/model.h"
#include "nsplit/poll.h"
#include "nsplit/port.h"
#include "nsplit/stage.h"
#include "batcher.h"
#include "chain.h"
#include "dataset.h"
#include "evaluate.h"
#include "progress.h"
#include "schedule.h"
#include "train.h"
#include "train_peers.h"

/* A receive buffer: one micro-batch slot's activation, labels or gradient, or a stage. */
struct rxbuf {
	struct nsl_msg msg;
	void *data;
	uint64_t cap;
	bool posted;          /* given to the link, not yet filled */
	bool full;            /* filled, not yet used */
	int micro, round, batch;
};

enum { RX_ACT, RX_LABELS, RX_GRAD, RX_KINDS };

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

struct peer {
	struct job *job;
	int rank;
	pthread_t thread;
	struct nsl_port *port_next, *port_prev;
	uint8_t mac_next[6], mac_prev[6];
	struct nsl_link *link;
	struct nsl_idle idle;
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
	struct rxbuf rx[RX_KINDS][NSL_STAGE_MAX_CONTEXTS];
	struct rxbuf swap_rx;
	struct txmsg tx_act[NSL_STAGE_MAX_CONTEXTS], tx_grad[NSL_STAGE_MAX_CONTEXTS];
	struct txmsg tx_labels[NSL_STAGE_MAX_CONTEXTS], tx_swap;
	void *swap_tx_buf;
	struct expect expect[2];
	int nexpect;
	struct nsl_instr *prog;

	double loss_sum;
	int64_t correct, seen;
	int rc;
	char err[1024];
};

struct job {
	const struct nsl_train_opts *o;
	struct nsl_model *model;
	int npeers;
	int starts[NSL_CHAIN_MAX_STAGES + 1];
	struct nsl_optim_config oc;
	struct nsl_lr_schedule sched;
	struct nsl_dataset_files files;
	uint32_t shard_limit;
	uint32_t per_shard;           /* records each round trains on */
	int batches;                  /* per round */
	int rounds;
	int micro;                    /* micro-batch rows */
	int slots[NSL_CHAIN_MAX_STAGES];   /* micro-batches in flight on each stage */
	int kmax;                     /* the most of them */
	enum nsl_poll_mode poll;
	atomic_int stop;              /* a peer failed: the others give up */
	atomic_int_fast64_t samples;  /* done, for the progress line */
	struct peer *peers;
};

static int stage_of(const struct job *j, int rank, int round)
{
	return ((rank - round) % j->npeers + j->npeers) % j->npeers;
}

static int rank_of(const struct job *j, int stage, int round)
{
	return (stage + round) % j->npeers;
}

static int batch_rows(const struct job *j, int b)
{
	int rem = (int)(j->per_shard % (uint32_t)j->o->batch);

	return (b == j->batches - 1 && rem) ? rem : j->o->batch;
}

static int micro_count(const struct job *j, int rows)
{
	return (rows + j->micro - 1) / j->micro;
}

static int micro_rows(const struct job *j, int rows, int m)
{
	int left = rows - m * j->micro;

	return left < j->micro ? left : j->micro;
}

static int compile(const struct job *j, int stage, int b, struct nsl_instr *prog)
{
	return nsl_sched_compile(j->o->schedule, j->npeers, stage, micro_count(j, batch_rows(j, b)), prog,
				 NSL_SCHED_MAX_INSTR);
}


static int64_t stage_floats(const struct job *j, int stage)
{
	int64_t n = 0;

	for (int i = j->starts[stage]; i < j->starts[stage + 1]; i++)
		n += nsl_model_layer_params(j->model, i);
	return n;
}

/* A swap: the step count, then every parameter and each of its optimizer states, plain. */
static uint64_t swap_bytes(const struct job *j, int stage)
{
	return sizeof(uint64_t) +
	       (uint64_t)stage_floats(j, stage) * (1 + (uint64_t)j->oc.ops->state_slots) * sizeof(float);
}

static int fail(struct peer *p, int rc)
{
	if (p->rc == 0) {
		p->rc = rc < 0 ? rc : -EIO;
		snprintf(p->err, sizeof(p->err), "peer %d: %s", p->rank, nsl_error_last());
	}
	atomic_store(&p->job->stop, 1);
	return p->rc;
}

/* ---- receiving ---------------------------------------------------------------------------- */

static struct rxbuf *rx_target(struct peer *p, enum nsl_op op, int micro, int round)
{
	struct job *j = p->job;
	int k = j->slots[stage_of(j, p->rank, round)];

	switch (op) {
	case NSL_OP_SEND_ACT: return &p->rx[RX_ACT][micro % k];
	case NSL_OP_SEND_LABELS: return &p->rx[RX_LABELS][micro % k];
	case NSL_OP_SEND_GRAD: return &p->rx[RX_GRAD][micro % k];
	default: return NULL;
	}
}

/*
 * Post slots for what neighbour e->from sends next, in its order, while their buffers are free.
 * The neighbour's programs are walked from the same schedule this peer runs, so both sides agree
 * on the order without a word.
 */
static int post_expected(struct peer *p, struct expect *e)
{
	struct job *j = p->job;

	while (!e->done) {
		if (e->pc == e->n) {
			if (e->batch + 1 < j->batches) {
				e->batch++;
			} else if (!e->swap_done && e->from == (p->rank + j->npeers - 1) % j->npeers &&
				   e->round + 1 < j->rounds) {
				struct rxbuf *r = &p->swap_rx;
				int rc;

				if (r->posted || r->full)
					return 0;
				r->msg = (struct nsl_msg){ .data = r->data, .len = r->cap, .peer = (uint16_t)e->from,
							   .user = r };
				if ((rc = nsl_link_post(p->link, &r->msg)) == -ENOBUFS)
					return 0;
				if (rc < 0)
					return rc;
				r->posted = true;
				r->round = e->round;
				e->swap_done = true;
				continue;
			} else if (e->round + 1 < j->rounds) {
				e->round++;
				e->batch = 0;
				e->swap_done = false;
			} else {
				e->done = true;
				break;
			}
			e->n = compile(j, stage_of(j, e->from, e->round), e->batch, e->prog);
			e->pc = 0;
			if (e->n < 0)
				return e->n;
			continue;
		}
		const struct nsl_instr *in = &e->prog[e->pc];
		int from_stage = stage_of(j, e->from, e->round);
		int to = nsl_instr_peer_stage(j->npeers, from_stage, (enum nsl_op)in->op);
		bool send = in->op == NSL_OP_SEND_ACT || in->op == NSL_OP_SEND_GRAD || in->op == NSL_OP_SEND_LABELS;

		if (!send || to != stage_of(j, p->rank, e->round)) {
			e->pc++;
			continue;
		}
		struct rxbuf *r = rx_target(p, (enum nsl_op)in->op, in->micro, e->round);
		int rc;

		if (r == NULL)
			return nsl_error_set(EINVAL, "no receive buffer for %s:%u", nsl_op_name((enum nsl_op)in->op),
					     in->micro);
		if (r->posted || r->full)
			return 0;     /* its buffer still holds an earlier micro-batch */
		r->msg = (struct nsl_msg){ .data = r->data, .len = r->cap, .peer = (uint16_t)e->from, .user = r };
		if ((rc = nsl_link_post(p->link, &r->msg)) == -ENOBUFS)
			return 0;
		if (rc < 0)
			return rc;
		r->posted = true;
		r->micro = in->micro;
		r->round = e->round;
		r->batch = e->batch;
		e->pc++;
	}
	return 0;
}

/* One round of link work: poll, collect what arrived and what was sent, post more slots. */
static int pump(struct peer *p)
{
	struct nsl_msg *done[16];
	unsigned n;
	int work, rc;

	if (atomic_load(&p->job->stop))
		return nsl_error_set(ECANCELED, "stopped because another peer failed");
	work = nsl_link_poll(p->link);
	if (work < 0)
		return nsl_error_prefix(work, "link");
	n = nsl_link_recv(p->link, done, 16);
	for (unsigned i = 0; i < n; i++) {
		struct rxbuf *r = done[i]->user;

		if (done[i]->status < 0)
			return nsl_error_set(done[i]->status, "receiving from peer %u: %s", done[i]->peer,
					     done[i]->status == -EHOSTDOWN ? "the peer stopped answering"
								      : strerror(-done[i]->status));
		r->posted = false;
		r->full = true;
	}
	work += (int)n;
	n = nsl_link_sent(p->link, done, 16);
	for (unsigned i = 0; i < n; i++) {
		struct txmsg *t = done[i]->user;

		if (done[i]->status < 0)
			return nsl_error_set(done[i]->status, "sending to peer %u: %s", done[i]->peer,
					     done[i]->status == -EHOSTDOWN ? "the peer stopped answering"
								      : strerror(-done[i]->status));
		t->busy = false;
	}
	work += (int)n;
	for (int i = 0; i < p->nexpect; i++)
		if ((rc = post_expected(p, &p->expect[i])) < 0)
			return rc;
	nsl_idle_after(&p->idle, work);
	return 0;
}

static int wait_rx(struct peer *p, struct rxbuf *r)
{
	int rc;

	while (!r->full)
		if ((rc = pump(p)) < 0)
			return rc;
	return 0;
}

static int wait_tx(struct peer *p, struct txmsg *t)
{
	int rc;

	while (t->busy)
		if ((rc = pump(p)) < 0)
			return rc;
	return 0;
}

static int send(struct peer *p, struct txmsg *t, int to, uint8_t type, const void *data, uint64_t len,
		int stage, int micro, int round, int64_t step)
{
	int rc;

	t->msg = (struct nsl_msg){ .data = (void *)(uintptr_t)data, .len = len, .peer = (uint16_t)to, .type = type,
				   .stage = (uint16_t)stage, .micro = (uint16_t)micro, .round = (uint32_t)round,
				   .step = (uint32_t)step, .user = t };
	while ((rc = nsl_link_send(p->link, &t->msg)) == -ENOBUFS)
		if ((rc = pump(p)) < 0)
			return rc;
	if (rc < 0)
		return rc;
	t->busy = true;
	return 0;
}

static int drain_tx(struct peer *p)
{
	int rc;

	for (int k = 0; k < p->job->kmax; k++)
		if ((rc = wait_tx(p, &p->tx_act[k])) < 0 || (rc = wait_tx(p, &p->tx_grad[k])) < 0 ||
		    (rc = wait_tx(p, &p->tx_labels[k])) < 0)
			return rc;
	return wait_tx(p, &p->tx_swap);
}

/* ---- stages and swaps --------------------------------------------------------------------- */

static int make_stage(struct peer *p, int stage, int round)
{
	struct job *j = p->job;
	int k = j->slots[stage];
	struct nsl_stage_config cfg = { .model = j->model, .first = j->starts[stage], .last = j->starts[stage + 1],
					.max_batch = j->micro, .contexts = k, .seed = j->o->seed, .optim = j->oc,
					.alloc = &nsl_allocator_dp };
	int rc, rem = (int)(j->per_shard % (uint32_t)j->o->batch) % j->micro;

	(void)round;
	p->stage = nsl_stage_create(p->cc, &cfg);
	if (p->stage == NULL)
		return -EINVAL;
	p->stage_idx = stage;
	/* Every micro-batch size the rounds will see: full ones and the short last one. */
	if ((rc = nsl_stage_prepare(p->stage, j->micro)) < 0)
		return rc;
	if (rem && (rc = nsl_stage_prepare(p->stage, rem)) < 0)
		return rc;
	rem = (int)(j->per_shard % (uint32_t)j->o->batch);
	if (rem && rem < j->micro && (rc = nsl_stage_prepare(p->stage, rem)) < 0)
		return rc;
	return 0;
}

static int swap_pack(const struct nsl_stage *s, void *buf)
{
	float *f = (float *)((uint64_t *)buf + 1);
	int slots = nsl_stage_state_slots(s), rc;

	*(uint64_t *)buf = nsl_stage_steps(s);
	for (int k = 0; k < nsl_stage_param_count(s); k++) {
		struct nsl_param_info pi;

		nsl_stage_param_info(s, k, &pi);
		if ((rc = nsl_stage_param_export(s, k, f)) < 0)
			return rc;
		f += pi.numel;
		for (int q = 0; q < slots; q++) {
			if ((rc = nsl_stage_state_export(s, k, q, f)) < 0)
				return rc;
			f += pi.numel;
		}
	}
	return 0;
}

static int swap_unpack(struct nsl_stage *s, const void *buf, uint64_t len)
{
	const float *f = (const float *)((const uint64_t *)buf + 1);
	int slots = nsl_stage_state_slots(s), rc;
	uint64_t need = sizeof(uint64_t);

	for (int k = 0; k < nsl_stage_param_count(s); k++) {
		struct nsl_param_info pi;

		nsl_stage_param_info(s, k, &pi);
		need += (uint64_t)pi.numel * (1 + (uint64_t)slots) * sizeof(float);
	}
	if (len != need)
		return nsl_error_set(EPROTO, "a stage of %" PRIu64 " bytes arrived where %" PRIu64 " were expected",
				     len, need);
	nsl_stage_set_steps(s, *(const uint64_t *)buf);
	for (int k = 0; k < nsl_stage_param_count(s); k++) {
		struct nsl_param_info pi;

		nsl_stage_param_info(s, k, &pi);
		if ((rc = nsl_stage_param_import(s, k, f)) < 0)
			return rc;
		f += pi.numel;
		for (int q = 0; q < slots; q++) {
			if ((rc = nsl_stage_state_import(s, k, q, f)) < 0)
				return rc;
			f += pi.numel;
		}
	}
	return 0;
}

/* End of round r: this stage goes to the next peer, the previous peer's stage comes here. */
static int swap(struct peer *p, int round)
{
	struct job *j = p->job;
	int next = (p->rank + 1) % j->npeers, prev = (p->rank + j->npeers - 1) % j->npeers;
	int rc, incoming = stage_of(j, p->rank, round + 1);

	if ((rc = drain_tx(p)) < 0)
		return rc;
	if ((rc = swap_pack(p->stage, p->swap_tx_buf)) < 0)
		return rc;
	rc = send(p, &p->tx_swap, next, NSL_MSG_STAGE, p->swap_tx_buf, swap_bytes(j, p->stage_idx), p->stage_idx, 0,
		  round, 0);
	if (rc < 0)
		return rc;
	nsl_stage_free(p->stage);
	p->stage = NULL;
	if ((rc = make_stage(p, incoming, round + 1)) < 0)
		return rc;
	if ((rc = wait_rx(p, &p->swap_rx)) < 0)
		return rc;
	if (p->swap_rx.msg.type != NSL_MSG_STAGE || p->swap_rx.msg.stage != incoming)
		return nsl_error_set(EPROTO, "peer %d sent message type %u for stage %u where stage %d was due", prev,
				     p->swap_rx.msg.type, p->swap_rx.msg.stage, incoming);
	if ((rc = swap_unpack(p->stage, p->swap_rx.data, p->swap_rx.msg.len)) < 0)
		return rc;
	p->swap_rx.full = false;
	return 0;
}

/* ---- one batch ---------------------------------------------------------------------------- */

static int check_msg(const struct rxbuf *r, uint8_t type, int micro, int round, int64_t step)
{
	if (r->msg.type != type || r->msg.micro != micro || r->msg.round != (uint32_t)round ||
	    r->msg.step != (uint32_t)step)
		return nsl_error_set(EPROTO,
				     "from peer %u: message type %u for round %u step %u micro-batch %u where type %u "
				     "for round %d step %" PRId64 " micro-batch %d was due",
				     r->msg.peer, r->msg.type, r->msg.round, r->msg.step, r->msg.micro, type, round, step,
				     micro);
	return 0;
}

static int run_batch(struct peer *p, int round, int b, int64_t step)
{
	struct job *j = p->job;
	const int n = j->npeers, s = p->stage_idx, rows = batch_rows(j, b);
	const int next = (p->rank + 1) % n, prev = (p->rank + n - 1) % n;
	const int64_t in_size = nsl_stage_in_size(p->stage), out_size = nsl_stage_out_size(p->stage);
	const int classes = j->model->classes;
	const int len = compile(j, s, b, p->prog), k = j->slots[s];
	const float lr = nsl_lr_at(&j->sched, step);
	int rc = len < 0 ? len : 0;

	for (int i = 0; i < len && rc == 0; i++) {
		const int m = p->prog[i].micro, slot = m % k, mr = micro_rows(j, rows, m);
		struct rxbuf *act = &p->rx[RX_ACT][slot], *lab = &p->rx[RX_LABELS][slot], *grad = &p->rx[RX_GRAD][slot];

		switch ((enum nsl_op)p->prog[i].op) {
		case NSL_OP_LOAD:
			for (int q = 0; q < j->kmax && rc == 0; q++)
				rc = wait_tx(p, &p->tx_labels[q]);
			if (rc == 0 && (rc = nsl_batcher_next(&p->data, rows, p->x, p->labels)) >= 0)
				rc = rc == rows ? 0
						: nsl_error_set(EIO, "shard %d gave %d of %d records for batch %d", p->rank,
								rc, rows, b);
			break;
		case NSL_OP_RECV_ACT:
			if ((rc = wait_rx(p, act)) == 0)
				rc = check_msg(act, NSL_MSG_ACTIVATION, m, round, step);
			break;
		case NSL_OP_RECV_LABELS:
			if ((rc = wait_rx(p, lab)) == 0)
				rc = check_msg(lab, NSL_MSG_LABELS, m, round, step);
			break;
		case NSL_OP_RECV_GRAD:
			if ((rc = wait_rx(p, grad)) == 0)
				rc = check_msg(grad, NSL_MSG_GRADIENT, m, round, step);
			break;
		case NSL_OP_FWD: {
			const float *x = s == 0 ? p->x + (int64_t)m * j->micro * in_size : act->data;

			/* The output buffer of this slot may still be on its way to the next peer. */
			if ((rc = wait_tx(p, &p->tx_act[slot])) == 0)
				rc = nsl_stage_forward_in(p->stage, slot, mr, x, &p->y[slot], true, (uint64_t)step);
			break;
		}
		case NSL_OP_SEND_ACT:
			rc = send(p, &p->tx_act[slot], next, NSL_MSG_ACTIVATION, p->y[slot],
				  (uint64_t)mr * (uint64_t)out_size * sizeof(float), s + 1, m, round, step);
			break;
		case NSL_OP_SEND_LABELS:
			rc = send(p, &p->tx_labels[slot], prev, NSL_MSG_LABELS, p->labels + m * j->micro,
				  (uint64_t)mr * sizeof(int32_t), n - 1, m, round, step);
			break;
		case NSL_OP_LOSS: {
			const int32_t *y = n == 1 ? p->labels + m * j->micro : lab->data;
			int correct = 0;

			rc = nsl_softmax_xent(p->y[slot], y, mr, classes, 1.0f / (float)rows,
					      p->dlogits + (int64_t)slot * j->micro * classes, &correct, &p->loss_sum);
			p->correct += correct;
			p->seen += mr;
			lab->full = false;
			break;
		}
		case NSL_OP_BWD: {
			const float *dy = s == n - 1 ? p->dlogits + (int64_t)slot * j->micro * classes : grad->data;

			/* This slot's last input gradient may still be on its way to the previous peer. */
			if ((rc = wait_tx(p, &p->tx_grad[slot])) == 0)
				rc = nsl_stage_backward_in(p->stage, slot, mr, dy, &p->dx[slot]);
			/* The input and the gradient of this micro-batch are used up: their slots may refill. */
			act->full = false;
			grad->full = false;
			break;
		}
		case NSL_OP_SEND_GRAD:
			rc = send(p, &p->tx_grad[slot], prev, NSL_MSG_GRADIENT, p->dx[slot],
				  (uint64_t)mr * (uint64_t)in_size * sizeof(float), s - 1, m, round, step);
			break;
		case NSL_OP_STEP:
			rc = nsl_stage_step(p->stage, lr);
			break;
		default:
			rc = nsl_error_set(EINVAL, "instruction %u", p->prog[i].op);
		}
	}
	return rc;
}

/* ---- a peer's thread ---------------------------------------------------------------------- */

static int peer_buffers(struct peer *p)
{
	struct job *j = p->job;
	int64_t widest_in = 1, widest_out = 1;
	uint64_t swap_cap = 0;

	for (int s = 0; s < j->npeers; s++) {
		int64_t in = nsl_shape_size(j->model->shapes[j->starts[s]]);
		int64_t out = nsl_shape_size(j->model->shapes[j->starts[s + 1]]);

		widest_in = in > widest_in ? in : widest_in;
		widest_out = out > widest_out ? out : widest_out;
		swap_cap = swap_bytes(j, s) > swap_cap ? swap_bytes(j, s) : swap_cap;
	}
	for (int k = 0; k < j->kmax; k++) {
		const uint64_t caps[RX_KINDS] = {
			[RX_ACT] = (uint64_t)j->micro * (uint64_t)widest_in * sizeof(float),
			[RX_LABELS] = (uint64_t)j->micro * sizeof(int32_t),
			[RX_GRAD] = (uint64_t)j->micro * (uint64_t)widest_out * sizeof(float),
		};

		for (int q = 0; q < RX_KINDS; q++) {
			p->rx[q][k].cap = caps[q];
			if ((p->rx[q][k].data = nsl_dp_alloc(caps[q], 64)) == NULL)
				return -ENOMEM;
		}
	}
	p->swap_rx.cap = swap_cap;
	if ((p->swap_rx.data = nsl_dp_alloc(swap_cap, 64)) == NULL || (p->swap_tx_buf = nsl_dp_alloc(swap_cap, 64)) == NULL)
		return -ENOMEM;
	if ((p->labels = nsl_dp_alloc((size_t)j->o->batch * sizeof(int32_t), 64)) == NULL)
		return -ENOMEM;
	p->x = malloc((size_t)j->o->batch * (size_t)nsl_shape_size(j->model->input) * sizeof(float));
	p->dlogits = malloc((size_t)j->kmax * (size_t)j->micro * (size_t)j->model->classes * sizeof(float));
	p->prog = malloc(NSL_SCHED_MAX_INSTR * sizeof(*p->prog));
	for (int i = 0; i < 2; i++)
		p->expect[i].prog = malloc(NSL_SCHED_MAX_INSTR * sizeof(*p->prog));
	if (p->x == NULL || p->dlogits == NULL || p->prog == NULL || p->expect[0].prog == NULL ||
	    p->expect[1].prog == NULL)
		return nsl_error_set(ENOMEM, "out of memory for peer %d's buffers", p->rank);
	return 0;
}

static void peer_free(struct peer *p)
{
	for (int k = 0; k < NSL_STAGE_MAX_CONTEXTS; k++)
		for (int q = 0; q < RX_KINDS; q++)
			nsl_dp_free(p->rx[q][k].data);
	nsl_dp_free(p->swap_rx.data);
	nsl_dp_free(p->swap_tx_buf);
	nsl_dp_free(p->labels);
	free(p->x);
	free(p->dlogits);
	free(p->prog);
	for (int i = 0; i < 2; i++)
		free(p->expect[i].prog);
	nsl_link_free(p->link);
	nsl_stage_free(p->stage);
	if (p->data_ok)
		nsl_batcher_close(&p->data);
	nsl_compute_free(p->cc);
}

static int peer_setup(struct peer *p)
{
	struct job *j = p->job;
	const int n = j->npeers, next = (p->rank + 1) % n, prev = (p->rank + n - 1) % n;
	struct nsl_shard_reader_opts ro = { .depth = j->o->read_ahead, .direct = j->o->direct, .shuffle = true,
					    .seed = j->o->seed };
	struct nsl_link_conf lc = { .session = (uint32_t)(j->o->seed * 2654435761u) ^ 0x6e73706cu,
				    .self = (uint16_t)p->rank, .slots = 64 };
	int rc;

	p->cc = nsl_compute_create(j->o->threads > 0 ? j->o->threads : 1);
	if (p->cc == NULL)
		return -EINVAL;
	if ((rc = nsl_batcher_open(&p->data, j->files.train[p->rank], &ro, j->shard_limit)) < 0)
		return rc;
	p->data_ok = true;
	if (p->data.limit != j->per_shard)
		return nsl_error_set(EINVAL, "%s has %u records where every shard must have %u",
				     j->files.train[p->rank], p->data.limit, j->per_shard);
	if ((rc = peer_buffers(p)) < 0)
		return rc;
	lc.max_msg = p->swap_rx.cap > p->rx[RX_ACT][0].cap ? p->swap_rx.cap : p->rx[RX_ACT][0].cap;
	if (p->rx[RX_GRAD][0].cap > lc.max_msg)
		lc.max_msg = p->rx[RX_GRAD][0].cap;
	p->link = nsl_link_create(&lc);
	if (p->link == NULL)
		return -EINVAL;
	if ((rc = nsl_link_add_peer(p->link, (uint16_t)next, p->port_next, p->mac_next, 0)) < 0)
		return rc;
	if (prev != next && (rc = nsl_link_add_peer(p->link, (uint16_t)prev, p->port_prev, p->mac_prev, 0)) < 0)
		return rc;
	p->nexpect = prev == next ? 1 : 2;
	p->expect[0].from = prev;
	p->expect[1].from = next;
	for (int i = 0; i < p->nexpect; i++) {
		struct expect *e = &p->expect[i];

		e->n = compile(j, stage_of(j, e->from, 0), 0, e->prog);
		if (e->n < 0)
			return e->n;
	}
	nsl_idle_init(&p->idle, j->poll);
	return make_stage(p, stage_of(j, p->rank, 0), 0);
}

static int peer_train(struct peer *p)
{
	struct job *j = p->job;
	int rc;

	for (int r = 0; r < j->rounds; r++) {
		const bool owner = p->stage_idx == 0;

		if (owner && (rc = nsl_batcher_begin_epoch(&p->data, (uint64_t)(r / j->npeers))) < 0)
			return rc;
		for (int b = 0; b < j->batches; b++) {
			if ((rc = run_batch(p, r, b, (int64_t)r * j->batches + b)) < 0)
				return nsl_error_prefix(rc, "round %d batch %d, stage %d", r + 1, b, p->stage_idx + 1);
			if (owner)
				atomic_fetch_add(&j->samples, batch_rows(j, b));
		}
		if (r + 1 < j->rounds && (rc = swap(p, r)) < 0)
			return nsl_error_prefix(rc, "swap after round %d", r + 1);
	}
	return drain_tx(p);
}

static atomic_int finished;

static void *peer_main(void *arg)
{
	struct peer *p = arg;
	struct job *j = p->job;
	int rc = nsl_eal_thread_register();

	if (rc == 0 && (rc = peer_setup(p)) == 0)
		rc = peer_train(p);
	if (rc < 0)
		fail(p, rc);
	atomic_fetch_add(&finished, 1);
	/* Keep answering until every peer is done: a neighbour may still wait for an ack. */
	while (rc == 0 && atomic_load(&finished) < j->npeers && !atomic_load(&j->stop))
		if (p->link)
			nsl_idle_after(&p->idle, nsl_link_poll(p->link));
	nsl_eal_thread_unregister();
	return NULL;
}

/* ---- the job ------------------------------------------------------------------------------ */

static void dump_schedule(const struct job *j, struct nsl_instr *prog)
{
	printf("schedule %s: %d peers, batch %d in micro-batches of %d; round 1 (every round the stages move one peer on)\n",
	       nsl_sched_name(j->o->schedule), j->npeers, j->o->batch, j->micro);
	for (int s = 0; s < j->npeers; s++) {
		int n = compile(j, s, 0, prog);

		printf("peer %d, stage %d (layers %d-%d), %d micro-batch%s in flight:\n", rank_of(j, s, 0), s + 1,
		       j->starts[s], j->starts[s + 1] - 1, j->slots[s], j->slots[s] == 1 ? "" : "es");
		nsl_sched_print(stdout, prog, n);
	}
	printf("end of round: each peer sends its stage (parameters and optimizer state) to the next peer\n");
}

/* Plan the job: shards, split, micro-batches, slots. */
static int job_plan(struct job *j, const struct nsl_train_opts *o, float *base_lr)
{
	struct nsl_instr *prog = malloc(NSL_SCHED_MAX_INSTR * sizeof(*prog));
	struct nsl_batcher probe;
	struct nsl_shard_reader_opts ro = { .depth = 1, .direct = false };
	int rc;

	j->o = o;
	j->npeers = o->peers;
	if (prog == NULL)
		return nsl_error_set(ENOMEM, "out of memory");
	if (o->peers > NSL_DATASET_MAX_PARTS || o->peers > NSL_CHAIN_MAX_STAGES) {
		rc = nsl_error_set(EINVAL, "--peers %d: at most %d in one process", o->peers, NSL_DATASET_MAX_PARTS);
		goto out;
	}
	rc = nsl_dataset_prepare(o->data_dir, o->cache_dir ? o->cache_dir : nsl_default_cache_dir(), o->peers,
				 &j->files);
	if (rc < 0 || (rc = nsl_train_shard_limit(o, o->peers, &j->shard_limit)) < 0)
		goto out;
	if ((rc = nsl_batcher_open(&probe, j->files.train[0], &ro, j->shard_limit)) < 0)
		goto out;
	j->per_shard = probe.limit;
	j->model = nsl_model_parse(o->model, probe.shape);
	nsl_batcher_close(&probe);
	if (j->model == NULL) {
		rc = nsl_error_prefix(EINVAL, "%s", j->files.train[0]);
		goto out;
	}
	if (o->split && *o->split) {
		rc = nsl_model_parse_split(j->model, o->split, j->starts, NSL_CHAIN_MAX_STAGES);
		if (rc >= 0 && rc != o->peers)
			rc = nsl_error_set(EINVAL, "--split %s makes %d stages for %d peers; give %d layer numbers", o->split,
					   rc, o->peers, o->peers - 1);
	} else {
		rc = nsl_model_even_split(j->model, o->peers, j->starts);
	}
	if (rc < 0 || (rc = nsl_train_setup_optim(o, &j->oc, base_lr)) < 0)
		goto out;
	j->batches = (int)((j->per_shard + (uint32_t)o->batch - 1) / (uint32_t)o->batch);
	j->rounds = o->epochs * o->peers;
	j->micro = o->micro_batch > 0 ? o->micro_batch
		 : o->schedule == NSL_SCHED_NSPLIT ? 1 : (o->batch / (2 * o->peers) > 0 ? o->batch / (2 * o->peers) : 1);
	if (j->micro > o->batch)
		j->micro = o->batch;
	if ((o->batch + j->micro - 1) / j->micro > NSL_SCHED_MAX_MICRO) {
		rc = nsl_error_set(EINVAL, "--micro-batch %d: batch %d would make more than %d micro-batches", j->micro,
				   o->batch, NSL_SCHED_MAX_MICRO);
		goto out;
	}
	for (int s = 0; s < o->peers; s++) {
		int n = compile(j, s, 0, prog);

		if (n < 0) {
			rc = n;
			goto out;
		}
		j->slots[s] = nsl_sched_in_flight(prog, n);
		if (j->slots[s] > NSL_STAGE_MAX_CONTEXTS) {
			rc = nsl_error_set(EINVAL, "%s with %d micro-batches keeps %d in flight; at most %d (use larger micro-batches)",
					   nsl_sched_name(o->schedule), (o->batch + j->micro - 1) / j->micro, j->slots[s],
					   NSL_STAGE_MAX_CONTEXTS);
			goto out;
		}
		j->kmax = j->slots[s] > j->kmax ? j->slots[s] : j->kmax;
	}
	nsl_train_lr_schedule(o, *base_lr, (int64_t)j->batches * o->peers, &j->sched);
	if (o->dump_schedule)
		dump_schedule(j, prog);
	rc = 0;
out:
	free(prog);
	return rc;
}

/* DPDK heap for every peer's stage, slots and swap buffers, and the ports' mbufs. */
static size_t job_dp_mem_mb(const struct job *j)
{
	uint64_t params = 0, widest = 0;

	for (int i = 0; i < j->model->nlayers; i++) {
		params += (uint64_t)nsl_model_layer_params(j->model, i);
		if ((uint64_t)nsl_shape_size(j->model->shapes[i + 1]) > widest)
			widest = (uint64_t)nsl_shape_size(j->model->shapes[i + 1]);
	}
	/* per peer: the biggest stage can be the whole model (params, grads, state, two swap copies),
	 * each layer's outputs per slot, and the receive slots */
	uint64_t per_peer = params * 4 * (2 + 2 * 3) +
			    (uint64_t)j->kmax * (uint64_t)j->micro * widest * 4 * (uint64_t)(j->model->nlayers + 4);
	return (size_t)((per_peer * (uint64_t)j->npeers) >> 20) + 128 + 64 * (size_t)j->npeers;
}

static int open_ports(struct job *j, struct nsl_port **ports)
{
	const int n = j->npeers, pairs = n == 2 ? 1 : n;

	for (int i = 0; i < pairs; i++) {
		char name[32];
		struct peer *a = &j->peers[i], *b = &j->peers[(i + 1) % n];
		int rc;

		snprintf(name, sizeof(name), "peers%d", i);
		if ((rc = nsl_port_ring_pair(name, &(struct nsl_port_conf){ 0 }, &ports[2 * i])) < 0)
			return rc;
		a->port_next = ports[2 * i];
		b->port_prev = ports[2 * i + 1];
		nsl_port_mac(ports[2 * i + 1], a->mac_next);
		nsl_port_mac(ports[2 * i], b->mac_prev);
		if (n == 2) {
			b->port_next = b->port_prev;
			memcpy(b->mac_next, b->mac_prev, 6);
			a->port_prev = a->port_next;
			memcpy(a->mac_prev, a->mac_next, 6);
		}
	}
	return 0;
}

/* The final weights, gathered from the peers into one chain (for evaluation and saving). */
static int gather(struct job *j, struct nsl_chain *c, struct nsl_compute *cc)
{
	int rc = nsl_chain_init(c, cc, j->model, j->starts, j->npeers, j->o->batch, j->o->seed, &j->oc);

	for (int s = 0; rc == 0 && s < j->npeers; s++) {
		const struct nsl_stage *from = j->peers[rank_of(j, s, j->rounds - 1)].stage;

		for (int k = 0; rc == 0 && k < nsl_stage_param_count(from); k++) {
			struct nsl_param_info pi;
			float *buf;

			nsl_stage_param_info(from, k, &pi);
			if ((buf = malloc((size_t)pi.numel * sizeof(float))) == NULL)
				return nsl_error_set(ENOMEM, "out of memory gathering %s", pi.name);
			rc = nsl_stage_param_export(from, k, buf);
			if (rc == 0)
				rc = nsl_stage_param_import(c->stages[s], k, buf);
			free(buf);
		}
	}
	return rc;
}

static int finish(struct job *j, double train_time, double t_start)
{
	const struct nsl_train_opts *o = j->o;
	struct nsl_compute *cc = nsl_compute_create(o->threads);
	struct nsl_chain c = { 0 };
	struct nsl_eval_result ev = { 0 };
	struct nsl_batcher test;
	struct nsl_shard_reader_opts ro = { .depth = o->read_ahead, .direct = o->direct };
	double loss = 0;
	int64_t correct = 0, seen = 0, step = (int64_t)j->rounds * j->batches;
	const double rate = (double)j->per_shard * j->rounds / train_time;
	float *x = NULL;
	int32_t *labels = NULL;
	bool have_eval = false;
	FILE *mf = NULL;
	int rc;

	for (int i = 0; i < j->npeers; i++) {
		loss += j->peers[i].loss_sum;
		correct += j->peers[i].correct;
		seen += j->peers[i].seen;
	}
	if (cc == NULL)
		return -EINVAL;
	if ((rc = gather(j, &c, cc)) < 0)
		goto out;
	if (o->eval) {
		x = malloc((size_t)o->batch * (size_t)nsl_shape_size(j->model->input) * sizeof(float));
		labels = malloc((size_t)o->batch * sizeof(int32_t));
		if (x == NULL || labels == NULL) {
			rc = nsl_error_set(ENOMEM, "out of memory for evaluation");
			goto out;
		}
		if ((rc = nsl_batcher_open(&test, j->files.test, &ro, 0)) < 0)
			goto out;
		rc = nsl_shard_check_shape(nsl_shard_reader_info(test.r), j->model->input, j->files.test);
		if (rc == 0)
			rc = nsl_evaluate(&c, &test, o->batch, x, labels, NULL, 0, &ev);
		nsl_batcher_close(&test);
		if (rc < 0)
			goto out;
		have_eval = true;
	}
	printf("epoch %d/%d  loss %.4f  train_acc %.4f", o->epochs, o->epochs, seen ? loss / (double)seen : 0,
	       seen ? (double)correct / (double)seen : 0);
	if (have_eval)
		printf("  test_loss %.4f  test_acc %.4f", ev.loss, ev.accuracy);
	printf("  %.0f samples/s  %.1f s\n", rate, nsl_now() - t_start);
	if (o->metrics) {
		if ((mf = fopen(o->metrics, "w")) == NULL) {
			rc = nsl_error_set(errno, "--metrics %s: %s", o->metrics, strerror(errno));
			goto out;
		}
		nsl_train_metrics_line(mf, "final", o->epochs, step, seen ? loss / (double)seen : 0,
				       seen ? (double)correct / (double)seen : 0, &ev, have_eval,
				       nsl_lr_at(&j->sched, step - 1), rate, nsl_now() - t_start);
		fclose(mf);
	}
	if (o->save_weights) {
		if ((rc = nsl_chain_save(&c, o->save_weights)) < 0)
			goto out;
		printf("weights saved to %s\n", o->save_weights);
	}
	if (have_eval)
		printf("test accuracy: %.4f (%" PRId64 "/%" PRId64 ")\n", ev.accuracy, ev.correct, ev.total);
	printf("training: %.0f samples/s over %.1f s\n", rate, train_time);
out:
	free(x);
	free(labels);
	if (c.m != NULL)
		nsl_chain_fini(&c);
	nsl_compute_free(cc);
	return rc;
}

static int run_peers(struct job *j, double t_start)
{
	const int n = j->npeers;
	struct nsl_port *ports[2 * NSL_DATASET_MAX_PARTS] = { 0 };
	struct nsl_progress prog = { 0 };
	double t0;
	int rc, started = 0;
	cpu_set_t cpus;

	j->peers = calloc((size_t)n, sizeof(*j->peers));
	if (j->peers == NULL)
		return nsl_error_set(ENOMEM, "out of memory");
	sched_getaffinity(0, sizeof(cpus), &cpus);
	j->poll = nsl_poll_mode_resolve((enum nsl_poll_mode)j->o->poll, (unsigned)n, (unsigned)CPU_COUNT(&cpus));
	rc = nsl_eal_init(&(struct nsl_eal_conf){ .mem_mb = job_dp_mem_mb(j) });
	if (rc < 0)
		goto out;
	for (int i = 0; i < n; i++) {
		j->peers[i].job = j;
		j->peers[i].rank = i;
	}
	if ((rc = open_ports(j, ports)) < 0)
		goto out;
	printf("model %s: %d layers in %d stages (split at", j->model->text, j->model->nlayers, n);
	for (int s = 1; s < n; s++)
		printf("%s%d", s > 1 ? "," : " ", j->starts[s]);
	printf("); %d peers, %u samples each, %s schedule, micro-batch %d of batch %d; %s, %d round%s\n", n, j->per_shard,
	       nsl_sched_name(j->o->schedule), j->micro, j->o->batch, j->oc.ops->name, j->rounds,
	       j->rounds == 1 ? "" : "s");
	fflush(stdout);
	atomic_store(&finished, 0);
	t0 = nsl_now();
	for (; started < n; started++)
		if ((rc = -pthread_create(&j->peers[started].thread, NULL, peer_main, &j->peers[started])) < 0) {
			nsl_error_set(rc, "cannot start peer %d's thread", started);
			atomic_store(&j->stop, 1);
			break;
		}
	nsl_progress_init(&prog, j->o->progress, (int64_t)j->per_shard * j->rounds);
	while (atomic_load(&finished) < started) {
		int64_t done = atomic_load(&j->samples);
		double el = nsl_now() - t0;

		nsl_progress_update(&prog, (int)(done / ((int64_t)j->per_shard * n)) + 1, j->o->epochs, done,
				    el > 0 ? (double)done / el : 0, 0);
		usleep(100000);
	}
	for (int i = 0; i < started; i++)
		pthread_join(j->peers[i].thread, NULL);
	nsl_progress_clear(&prog);
	/* Report the peer that failed first, not those that stopped because of it. */
	for (int pass = 0; pass < 2 && rc == 0; pass++)
		for (int i = 0; i < n && rc == 0; i++)
			if (j->peers[i].rc < 0 && (pass == 1 || j->peers[i].rc != -ECANCELED))
				rc = nsl_error_set(j->peers[i].rc, "%s", j->peers[i].err);
	if (rc == 0)
		rc = finish(j, nsl_now() - t0, t_start);
out:
	for (int i = 0; i < n; i++)
		peer_free(&j->peers[i]);
	for (int i = 2 * n - 1; i >= 0; i--)
		nsl_port_close(ports[i]);
	free(j->peers);
	nsl_eal_cleanup();
	return rc;
}

int nsl_train_peers(const struct nsl_train_opts *o)
{
	struct job j = { 0 };
	float base_lr;
	double t_start = nsl_now();
	int rc;

	if (o->peers < 2)
		return nsl_error_set(EINVAL, "--peers %d: the N-split trainer needs at least 2", o->peers);
	if (o->batch < 1 || o->epochs < 1)
		return nsl_error_set(EINVAL, "--batch and --epochs must be at least 1 (got %d and %d)", o->batch, o->epochs);
	rc = job_plan(&j, o, &base_lr);
	if (rc == 0 && !o->dump_schedule)
		rc = run_peers(&j, t_start);
	nsl_model_free(j.model);
	return rc;
}
