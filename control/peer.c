/* SPDX-License-Identifier: BSD-3-Clause */
/* One peer's runtime: its link work, its batch programs, its swaps (peer.h says how). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nsplit/eal.h"
#include "nsplit/error.h"
#include "nsplit/loss.h"
#include "checkpoint.h"
#include "coop.h"
#include "peer.h"
#include "progress.h"
#include "record.h"

int nsl_peer_fail(struct peer *p, int rc)
{
	if (p->rc == 0) {
		p->rc = rc < 0 ? rc : -EIO;
		snprintf(p->err, sizeof(p->err), "peer %d: %s", p->rank, nsl_error_last());
	}
	atomic_store(&p->job->stop, 1);
	return p->rc;
}

/* ---- receiving ---------------------------------------------------------------------------- */

/* The slot that message `in` of role `from` (in `round`) lands in here. */
static struct rxbuf *rx_target(struct peer *p, const struct nsl_instr *in, int from, int round)
{
	struct job *j = p->job;
	int k = j->slots[nsl_job_stage_of(j, p->rank, round)], kind;

	switch ((enum nsl_op)in->op) {
	case NSL_OP_SEND_ACT: kind = RX_ACT; break;
	case NSL_OP_SEND_LABELS: kind = RX_LABELS; break;
	case NSL_OP_SEND_GRAD: kind = RX_GRAD; break;
	case NSL_OP_SEND_SAVED: kind = RX_SAVED + from; break;
	case NSL_OP_SEND_PARAMS:
		kind = RX_PARAMS + from - j->fl.fwd;
		k = j->fl.staleness + 1;
		break;
	default: return NULL;
	}
	return p->rx[kind] != NULL ? &p->rx[kind][in->micro % k] : NULL;
}

int nsl_peer_try_post(struct peer *p, struct rxbuf *r, int from)
{
	int rc;

	r->msg = (struct nsl_msg){ .data = r->data, .len = r->cap, .peer = (uint16_t)from, .user = r };
	if ((rc = nsl_link_post(p->link, &r->msg)) == -ENOBUFS)
		return 0;
	if (rc < 0)
		return rc;
	r->posted = true;
	return 1;
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
				if ((rc = nsl_peer_try_post(p, r, e->from)) <= 0)
					return rc;
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
			e->n = nsl_job_compile(j, nsl_job_stage_of(j, e->from, e->round), e->batch, e->prog);
			e->pc = 0;
			if (e->n < 0)
				return e->n;
			continue;
		}
		const struct nsl_instr *in = &e->prog[e->pc];
		int from_stage = nsl_job_stage_of(j, e->from, e->round);

		/* A slot kind may serve another sender next round (Fast N-split's roles move): a slot
		 * taken for a next round's message could hold up this round's. Posting waits for the
		 * round (its sender waits for credit meanwhile, as it would for the swap anyway). */
		if (e->round > p->round_now)
			return 0;

		if (!nsl_op_sends((enum nsl_op)in->op) || in->peer != nsl_job_stage_of(j, p->rank, e->round)) {
			e->pc++;
			continue;
		}
		struct rxbuf *r = rx_target(p, in, from_stage, e->round);
		int rc;

		if (r == NULL)
			return nsl_error_set(EINVAL, "no receive buffer for %s:%u", nsl_op_name((enum nsl_op)in->op),
					     in->micro);
		if (r->posted || r->full)
			return 0;     /* its buffer still holds an earlier micro-batch */
		if ((rc = nsl_peer_try_post(p, r, e->from)) <= 0)
			return rc;
		e->pc++;
	}
	return 0;
}

/* A neighbour that died or gave up ends this peer's work too, with a message naming it. */
static int lost_peer(struct peer *p)
{
	struct nsl_link_abort a;
	int dead = nsl_link_dead_peer(p->link);

	if (nsl_link_aborted(p->link, &a)) {
		if (a.blame == a.from)
			return nsl_error_set(ECONNABORTED, "peer %u failed (%s) after round %u", a.from, strerror(a.err),
					     a.info);
		return nsl_error_set(ECONNABORTED, "peer %u was lost (word from peer %u: %s after round %u)", a.blame,
				     a.from, strerror(a.err), a.info);
	}
	if (dead >= 0)
		return nsl_error_set(EHOSTDOWN, "peer %d was lost: it stopped answering for %u ms", dead,
				     p->job->peer_timeout_ms ? p->job->peer_timeout_ms : 5000);
	return 0;
}

static void ring_partners(struct peer *p)
{
	for (int q = 0; p->bells && q < p->job->npeers; q++) {
		struct nsl_link_peer_stats st;

		if (!p->linked[q] || nsl_link_peer_stats(p->link, (uint16_t)q, &st) < 0 ||
		    st.frames_tx + st.acks_tx == p->tx_seen[q])
			continue;
		p->tx_seen[q] = st.frames_tx + st.acks_tx;
		nsl_bell_ring(p->job->peers[q].ring);
	}
}

int nsl_peer_poll(struct peer *p)
{
	const int work = nsl_link_poll(p->link);

	if (work > 0 && !p->hold_bells)
		ring_partners(p);
	return work;
}

/* One round of link work: poll, collect what arrived and what was sent, post more slots. */
int nsl_peer_pump(struct peer *p)
{
	struct nsl_msg *done[16];
	unsigned n;
	int work, rc;

	if ((rc = atomic_load(&p->job->stop)) != 0)
		return nsl_error_set(ECANCELED, rc == 2 ? "interrupted by a signal" : "stopped because another peer failed");
	work = nsl_peer_poll(p);
	if (work < 0)
		return nsl_error_prefix(work, "link");
	if ((rc = lost_peer(p)) < 0)
		return rc;
	n = nsl_link_recv(p->link, done, 16);
	for (unsigned i = 0; i < n; i++) {
		struct rxbuf *r = done[i]->user;

		if (done[i]->status < 0)
			return (rc = lost_peer(p)) < 0 ? rc
			       : nsl_error_set(done[i]->status, "receiving from peer %u: %s", done[i]->peer,
					       strerror(-done[i]->status));
		r->posted = false;
		r->full = true;
	}
	work += (int)n;
	n = nsl_link_sent(p->link, done, 16);
	for (unsigned i = 0; i < n; i++) {
		struct txmsg *t = done[i]->user;

		if (done[i]->status < 0)
			return (rc = lost_peer(p)) < 0 ? rc
			       : nsl_error_set(done[i]->status, "sending to peer %u: %s", done[i]->peer,
					       strerror(-done[i]->status));
		t->busy = false;
	}
	work += (int)n;
	for (int i = 0; i < p->nexpect; i++)
		if ((rc = post_expected(p, &p->expect[i])) < 0)
			return rc;
	nsl_idle_after(&p->idle, work);
	return 0;
}

int nsl_peer_wait_rx(struct peer *p, struct rxbuf *r)
{
	int rc;

	while (!r->full)
		if ((rc = nsl_peer_pump(p)) < 0)
			return rc;
	return 0;
}

int nsl_peer_wait_tx(struct peer *p, struct txmsg *t)
{
	int rc;

	while (t->busy)
		if ((rc = nsl_peer_pump(p)) < 0)
			return rc;
	return 0;
}

/*
 * The link moves frames only when polled, and this thread polls only while it waits: before it
 * computes, let what it sent leave and what it received be acknowledged, or a neighbour waits
 * for a whole forward or backward. A few polls while they find work, never a nap.
 */
static void kick(struct peer *p)
{
	for (int i = 0; i < 8 && nsl_peer_poll(p) > 0; i++)
		;
}

/* Before a computation: slots freed since the last wait become credit the neighbours see now. */
int nsl_peer_post_all(struct peer *p)
{
	int rc;

	for (int i = 0; i < p->nexpect; i++)
		if ((rc = post_expected(p, &p->expect[i])) < 0)
			return rc;
	kick(p);
	return 0;
}

int nsl_peer_send(struct peer *p, struct txmsg *t, int to, uint8_t type, const void *data, uint64_t len,
		int stage, int micro, int round, int64_t step)
{
	int rc;

	t->msg = (struct nsl_msg){ .data = (void *)(uintptr_t)data, .len = len, .peer = (uint16_t)to, .type = type,
				   .stage = (uint16_t)stage, .micro = (uint16_t)micro, .round = (uint32_t)round,
				   .step = (uint32_t)step, .user = t };
	while ((rc = nsl_link_send(p->link, &t->msg)) == -ENOBUFS)
		if ((rc = nsl_peer_pump(p)) < 0)
			return rc;
	if (rc < 0)
		return rc;
	t->busy = true;
	/* A receiver woken at the first burst, when the message takes more, may take this core
	 * before the rest is out and then wait for it: ring once the kick is done. */
	p->hold_bells = true;
	kick(p);
	p->hold_bells = false;
	ring_partners(p);
	return 0;
}

int nsl_peer_drain(struct peer *p)
{
	const struct job *j = p->job;
	int rc;

	for (int k = 0; k < j->kmax; k++)
		if ((rc = nsl_peer_wait_tx(p, &p->tx_act[k])) < 0 || (rc = nsl_peer_wait_tx(p, &p->tx_grad[k])) < 0 ||
		    (rc = nsl_peer_wait_tx(p, &p->tx_labels[k])) < 0)
			return rc;
	for (int k = 0; j->fast && k < j->fl.bwd * FAST_TX_SLOTS; k++)
		if ((rc = nsl_peer_wait_tx(p, &p->tx_saved[k])) < 0)
			return rc;
	for (int f = 0; j->fast && f < j->fl.fwd; f++)
		if ((rc = nsl_peer_wait_tx(p, &p->tx_params[f])) < 0)
			return rc;
	return nsl_peer_wait_tx(p, &p->tx_swap);
}

/* ---- stages and swaps --------------------------------------------------------------------- */

/* The stage as made, oneDNN's scratchpads and blocked layouts included, against the budget. */
static int account(struct peer *p, int stage)
{
	struct job *j = p->job;
	struct nsl_stage_memory m;
	struct nsl_job_buffers b;
	char t[3][24];
	uint64_t held;

	nsl_stage_memory(p->stage, j->micro, &m);
	nsl_job_buffers(j, &b);
	held = m.total + b.total + p->stash.bytes;
	if (held > p->peak)
		p->peak = held;
	if (p->budget && held > p->budget)
		return nsl_error_set(ENOMEM, "stage %d takes %s here once made (with its buffers; planned %s), over peer %d's "
				     "budget of %s",
				     stage + 1, nsl_job_bytes(held, t[0], 24),
				     nsl_job_bytes(j->stage_plan[stage] + b.total, t[1], 24), p->rank,
				     nsl_job_bytes(p->budget, t[2], 24));
	return 0;
}

/* Stage `stage` here, in the memory of the last one. `loaded`: its parameters come next from a
 * record, so they are not drawn. */
static int make_stage(struct peer *p, int stage, bool loaded)
{
	struct job *j = p->job;
	struct nsl_stage_config cfg;
	int rc, rem = (int)(j->per_shard % (uint32_t)j->o->batch) % j->micro;

	nsl_stash_fini(&p->stash);
	if ((rc = nsl_arena_reset(&p->arena)) < 0)
		return rc;
	nsl_job_stage_config(j, stage, &cfg);
	cfg.alloc = &p->arena.a;
	cfg.no_init = loaded;
	p->stage = nsl_stage_create(p->cc, &cfg);
	if (p->stage == NULL)
		return -EINVAL;
	p->stage_idx = stage;
	if (j->fast && stage >= j->fl.fwd && j->fl.staleness > 0 && !j->o->no_stash &&
	    (rc = nsl_stash_init(&p->stash, p->stage, j->fl.staleness + 1, &p->arena.a)) < 0)
		return rc;
	/* Every micro-batch size the rounds will see: full ones and the short last one. */
	if ((rc = nsl_stage_prepare(p->stage, j->micro)) < 0)
		return rc;
	if (rem && (rc = nsl_stage_prepare(p->stage, rem)) < 0)
		return rc;
	rem = (int)(j->per_shard % (uint32_t)j->o->batch);
	if (rem && rem < j->micro && (rc = nsl_stage_prepare(p->stage, rem)) < 0)
		return rc;
	return account(p, stage);
}

int nsl_peer_pack_stage(struct peer *p, int64_t rounds_done, uint64_t *len)
{
	const struct job *j = p->job;
	const struct nsl_record_info info = { .model = j->model, .split = j->split_text, .peers = j->npeers,
					      .stage = p->stage_idx, .records = j->fast ? j->fl.bwd : 0,
					      .round = rounds_done, .seed = j->o->seed, .config_hash = j->config_hash };

	return nsl_record_pack(p->stage, &info, p->swap_tx_buf, p->swap_rx.cap, len);
}

int nsl_peer_unpack_stage(const struct job *j, struct nsl_stage *s, const void *buf, uint64_t len, const char *what)
{
	struct nsl_st_file *f = nsl_st_parse(buf, len, what);
	int rc = f == NULL ? -EPROTO : nsl_record_check(f, j->model, what);

	if (rc == 0 && (rc = nsl_record_load(s, &f, 1)) < 0)
		rc = nsl_error_prefix(rc, "%s", what);
	nsl_st_close(f);
	return rc;
}

/*
 * End of round r: this stage, packed as a record of len bytes in swap_tx_buf, goes to the next
 * peer; the previous peer's stage comes here.
 */
static int swap(struct peer *p, int round, uint64_t len)
{
	struct job *j = p->job;
	int next = (p->rank + 1) % j->npeers, prev = (p->rank + j->npeers - 1) % j->npeers;
	int rc, incoming = nsl_job_stage_of(j, p->rank, round + 1);
	char what[64];

	rc = nsl_peer_send(p, &p->tx_swap, next, NSL_MSG_STAGE, p->swap_tx_buf, len, p->stage_idx, 0, round, 0);
	if (rc < 0)
		return rc;
	nsl_stage_free(p->stage);
	p->stage = NULL;
	if ((rc = make_stage(p, incoming, true)) < 0)
		return rc;
	if ((rc = nsl_peer_wait_rx(p, &p->swap_rx)) < 0)
		return rc;
	if (p->swap_rx.msg.type != NSL_MSG_STAGE || p->swap_rx.msg.stage != incoming)
		return nsl_error_set(EPROTO, "peer %d sent message type %u for stage %u where stage %d was due", prev,
				     p->swap_rx.msg.type, p->swap_rx.msg.stage, incoming);
	snprintf(what, sizeof(what), "stage %d from peer %d", incoming + 1, prev);
	if ((rc = nsl_peer_unpack_stage(j, p->stage, p->swap_rx.data, p->swap_rx.msg.len, what)) < 0)
		return rc;
	p->swap_rx.full = false;
	return 0;
}

/* This peer's part of the checkpoint after `round` rounds: the record it is about to swap. */
static int checkpoint(struct peer *p, int round, uint64_t len)
{
	struct job *j = p->job;
	char manifest[8192];

	/* Fast N-split: the backward roles hold everything (the forward roles' copies equal their
	 * masters at a round's end), so a checkpoint is their records alone. */
	if (nsl_job_is_forward_role(j, p->stage_idx))
		return 0;
	nsl_job_manifest(j, round, manifest, sizeof(manifest));
	return nsl_ckpt_write_stage(j->o->checkpoint, round, p->stage_idx - (j->fast ? j->fl.fwd : 0),
				    j->fast ? j->fl.bwd : j->npeers, p->swap_tx_buf, len, manifest);
}

/* ---- one batch ---------------------------------------------------------------------------- */

int nsl_peer_check_msg(const struct rxbuf *r, uint8_t type, int micro, int round, int64_t step)
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

/* Fast N-split, a backward role: the batch runs on the weights its forwards ran on. */
static int batch_weights(struct peer *p, int b, int64_t step)
{
	struct job *j = p->job;
	const int S = j->fast ? j->fl.staleness : 0;

	p->version = step - (b < S ? b : S);
	if (!j->fast || p->stage_idx < j->fl.fwd || p->stash.buf == NULL)
		return 0;
	if (b == 0)
		nsl_stash_keep(&p->stash, p->stage, step);
	return p->version == step ? 0 : nsl_stash_use(&p->stash, p->stage, p->version);
}

static int run_batch(struct peer *p, int round, int b, int64_t step)
{
	struct job *j = p->job;
	const int n = j->npeers, s = p->stage_idx, rows = nsl_job_batch_rows(j, b);
	const int64_t in_size = nsl_stage_in_size(p->stage), out_size = nsl_stage_out_size(p->stage);
	const int classes = j->model->classes;
	const int len = nsl_job_compile(j, s, b, p->prog), k = j->slots[s];
	const bool fwd_role = nsl_job_is_forward_role(j, s);
	const float lr = nsl_lr_at(&j->sched, step);
	int rc = len < 0 ? len : batch_weights(p, b, step);

	for (int i = 0; i < len && rc == 0; i++) {
		const struct nsl_instr *in = &p->prog[i];
		const int m = in->micro, slot = m % k, mr = nsl_job_micro_rows(j, rows, m);
		const int to = in->peer != NSL_NO_PEER ? nsl_job_rank_of(j, in->peer, round) : -1;
		const double t0 = p->trace.s ? nsl_now() : 0, c0 = p->trace.s ? nsl_coop_cpu(p) : 0;
		struct rxbuf *act = &p->rx[RX_ACT][slot], *lab = &p->rx[RX_LABELS][slot], *grad = &p->rx[RX_GRAD][slot];

		switch ((enum nsl_op)in->op) {
		case NSL_OP_LOAD:
			for (int q = 0; q < j->kmax && rc == 0; q++)
				rc = nsl_peer_wait_tx(p, &p->tx_labels[q]);
			if (rc == 0 && (rc = nsl_batcher_next(&p->data, rows, p->x, p->labels)) >= 0)
				rc = rc == rows ? 0
						: nsl_error_set(EIO, "shard %d gave %d of %d records for batch %d", p->rank,
								rc, rows, b);
			break;
		case NSL_OP_RECV_ACT:
			if ((rc = nsl_peer_wait_rx(p, act)) == 0)
				rc = nsl_peer_check_msg(act, NSL_MSG_ACTIVATION, m, round, step);
			break;
		case NSL_OP_RECV_LABELS:
			if ((rc = nsl_peer_wait_rx(p, lab)) == 0)
				rc = nsl_peer_check_msg(lab, NSL_MSG_LABELS, m, round, step);
			break;
		case NSL_OP_RECV_GRAD:
			if ((rc = nsl_peer_wait_rx(p, grad)) == 0)
				rc = nsl_peer_check_msg(grad, NSL_MSG_GRADIENT, m, round, step);
			break;
		case NSL_OP_FWD: {
			const float *x = s == 0 ? p->x + (int64_t)m * j->micro * in_size : act->data;

			/* The output buffer of this slot may still be on its way to the next peer. */
			if ((rc = nsl_peer_wait_tx(p, &p->tx_act[slot])) == 0 && (rc = nsl_peer_post_all(p)) == 0)
				rc = nsl_stage_forward_in(p->stage, slot, mr, x, &p->y[slot], true, (uint64_t)step);
			/* A forward role ships what it computed, not its input: that is free now. */
			if (fwd_role)
				act->full = false;
			break;
		}
		case NSL_OP_SEND_ACT:
			rc = nsl_peer_send(p, &p->tx_act[slot], to, NSL_MSG_ACTIVATION, p->y[slot],
				  (uint64_t)mr * (uint64_t)out_size * sizeof(float), in->peer, m, round, step);
			break;
		case NSL_OP_SEND_LABELS:
			/* Its descriptor may still carry the labels of k micro-batches ago. */
			if ((rc = nsl_peer_wait_tx(p, &p->tx_labels[slot])) == 0)
				rc = nsl_peer_send(p, &p->tx_labels[slot], to, NSL_MSG_LABELS, p->labels + m * j->micro,
						   (uint64_t)mr * sizeof(int32_t), in->peer, m, round, step);
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
			if ((rc = nsl_peer_wait_tx(p, &p->tx_grad[slot])) == 0 && (rc = nsl_peer_post_all(p)) == 0)
				rc = nsl_stage_backward_rows(p->stage, slot, m * j->micro, mr, dy, &p->dx[slot]);
			/* The input and the gradient of this micro-batch are used up: their slots may refill. */
			act->full = false;
			grad->full = false;
			for (int f = 0; j->fast && f < j->fl.fwd; f++)
				if (j->ship[s - j->fl.fwd].row[f])
					p->rx[RX_SAVED + f][slot].full = false;
			break;
		}
		case NSL_OP_SEND_GRAD:
			rc = nsl_peer_send(p, &p->tx_grad[slot], to, NSL_MSG_GRADIENT, p->dx[slot],
				  (uint64_t)mr * (uint64_t)in_size * sizeof(float), in->peer, m, round, step);
			break;
		case NSL_OP_WGRAD:
			rc = nsl_stage_weight_grads(p->stage);
			break;
		case NSL_OP_STEP:
			/* The gradient of stashed weights updates the newest ones, into the oldest's buffers. */
			rc = p->stash.buf != NULL ? nsl_stash_step(&p->stash, p->stage, lr, step + 1)
						  : nsl_stage_step(p->stage, lr);
			break;
		case NSL_OP_SEND_SAVED:
		case NSL_OP_RECV_SAVED:
		case NSL_OP_REFWD:
		case NSL_OP_SEND_PARAMS:
		case NSL_OP_RECV_PARAMS:
			rc = nsl_peer_fast_op(p, in, round, b, step, rows);
			break;
		default:
			rc = nsl_error_set(EINVAL, "instruction %u", in->op);
		}
		if (p->trace.s)
			nsl_trace_add(&p->trace, in->op, s, round, b, m, t0, nsl_now(), nsl_coop_cpu(p) - c0);
	}
	return rc;
}

/* ---- a peer's thread ---------------------------------------------------------------------- */

static int peer_buffers(struct peer *p)
{
	struct job *j = p->job;
	struct nsl_job_buffers b;

	nsl_job_buffers(j, &b);
	for (int q = 0; q < RX_KINDS; q++) {
		if (b.rx_slots[q] == 0)
			continue;
		if ((p->rx[q] = calloc((size_t)b.rx_slots[q], sizeof(*p->rx[q]))) == NULL)
			return nsl_error_set(ENOMEM, "out of memory for peer %d's buffers", p->rank);
		for (int k = 0; k < b.rx_slots[q]; k++) {
			p->rx[q][k].cap = b.rx_cap[q];
			if ((p->rx[q][k].data = nsl_dp_alloc(b.rx_cap[q] ? b.rx_cap[q] : 64, 64)) == NULL)
				return -ENOMEM;
		}
	}
	if (j->fast) {
		const int nsaved = j->fl.bwd * FAST_TX_SLOTS;

		p->tx_saved = calloc((size_t)nsaved, sizeof(*p->tx_saved));
		p->saved_buf = calloc((size_t)nsaved, sizeof(*p->saved_buf));
		if (p->tx_saved == NULL || p->saved_buf == NULL)
			return nsl_error_set(ENOMEM, "out of memory for peer %d's buffers", p->rank);
		for (int k = 0; k < nsaved; k++)
			if (b.saved_cap && (p->saved_buf[k] = nsl_dp_alloc(b.saved_cap, 64)) == NULL)
				return -ENOMEM;
		p->params_cap = b.params_cap;
		for (int f = 0; f < j->fl.fwd; f++)
			if (b.params_cap && (p->params_buf[f] = nsl_dp_alloc(b.params_cap, 64)) == NULL)
				return -ENOMEM;
		for (int r = 0; r < NSL_FAST_MAX_ROLES; r++)
			p->push_held[r] = -1;
		/* at most a weight and a bias a layer */
		if ((p->push_own = calloc(2 * (size_t)j->model->nlayers, sizeof(*p->push_own))) == NULL)
			return nsl_error_set(ENOMEM, "out of memory for peer %d's buffers", p->rank);
	}
	p->swap_rx.cap = b.swap_cap;
	if ((p->swap_rx.data = nsl_dp_alloc(b.swap_cap, 64)) == NULL || (p->swap_tx_buf = nsl_dp_alloc(b.swap_cap, 64)) == NULL)
		return -ENOMEM;
	if ((p->labels = nsl_dp_alloc(b.batch_labels, 64)) == NULL)
		return -ENOMEM;
	p->x = malloc(b.batch_x);
	p->dlogits = malloc(b.dlogits);
	p->prog = malloc(NSL_SCHED_MAX_INSTR * sizeof(*p->prog));
	p->expect = calloc((size_t)j->npeers, sizeof(*p->expect));
	for (int i = 0; p->expect != NULL && i < j->npeers; i++)
		if ((p->expect[i].prog = malloc(NSL_SCHED_MAX_INSTR * sizeof(*p->prog))) == NULL)
			return nsl_error_set(ENOMEM, "out of memory for peer %d's buffers", p->rank);
	if (p->x == NULL || p->dlogits == NULL || p->prog == NULL || p->expect == NULL)
		return nsl_error_set(ENOMEM, "out of memory for peer %d's buffers", p->rank);
	return 0;
}

void nsl_peer_free(struct peer *p)
{
	const struct job *j = p->job;
	struct nsl_job_buffers b;

	nsl_job_buffers(j, &b);
	if (j->fast)
		nsl_peer_fast_settle(p);   /* before the slots its parameters may be read from go */
	for (int q = 0; q < RX_KINDS; q++) {
		for (int k = 0; p->rx[q] != NULL && k < b.rx_slots[q]; k++)
			nsl_dp_free(p->rx[q][k].data);
		free(p->rx[q]);
		p->rx[q] = NULL;
	}
	for (int k = 0; p->saved_buf != NULL && k < j->fl.bwd * FAST_TX_SLOTS; k++)
		nsl_dp_free(p->saved_buf[k]);
	free(p->saved_buf);
	free(p->tx_saved);
	for (int f = 0; f < NSL_FAST_MAX_ROLES; f++)
		nsl_dp_free(p->params_buf[f]);
	free(p->push_own);
	if (p->stage != NULL)
		nsl_stash_restore(&p->stash, p->stage);   /* the stage frees its own buffers */
	nsl_stash_fini(&p->stash);
	nsl_dp_free(p->swap_rx.data);
	nsl_dp_free(p->swap_tx_buf);
	nsl_dp_free(p->labels);
	free(p->x);
	free(p->dlogits);
	free(p->prog);
	for (int i = 0; p->expect != NULL && i < j->npeers; i++)
		free(p->expect[i].prog);
	free(p->expect);
	nsl_link_free(p->link);
	nsl_stage_free(p->stage);
	nsl_arena_fini(&p->arena);
	nsl_trace_free(&p->trace);
	if (p->data_ok)
		nsl_batcher_close(&p->data);
	nsl_compute_free(p->cc);
}

/* The planned bytes of the largest stage this peer will hold: its arena's size, so that no
 * round's stage spills into memory mapped anew (the plan counts scratch that comes from
 * elsewhere too, so it is room to spare). */
static uint64_t largest_stage(const struct peer *p)
{
	const struct job *j = p->job;
	uint64_t most = 0;

	for (int r = j->first_round; r < j->rounds; r++) {
		const uint64_t b = j->stage_plan[nsl_job_stage_of(j, p->rank, r)];

		most = b > most ? b : most;
	}
	return most;
}

int nsl_peer_setup(struct peer *p)
{
	struct job *j = p->job;
	const int n = j->npeers, next = (p->rank + 1) % n, prev = (p->rank + n - 1) % n;
	struct nsl_shard_reader_opts ro = { .depth = j->o->read_ahead, .direct = j->o->direct, .shuffle = true,
					    .seed = j->o->seed };
	struct nsl_link_conf lc = { .session = (uint32_t)(j->o->seed * 2654435761u) ^ 0x6e73706cu,
				    .self = (uint16_t)p->rank, .slots = 64, .peer_timeout_ms = j->peer_timeout_ms,
				    .heartbeat_ms = j->heartbeat_ms, .self_ip = p->ip_self };
	int rc;

	nsl_arena_init(&p->arena, &nsl_allocator_dp);
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
	if (j->o->trace) {
		/* Every instruction of every batch left, and a swap per round; past a million, count only. */
		size_t spans = (size_t)(j->rounds - j->first_round) *
			       ((size_t)j->batches * (6 * (size_t)nsl_job_micro_count(j, j->o->batch) + 4) + 2);

		if ((rc = nsl_trace_init(&p->trace, p->rank, spans < (1u << 20) ? spans : (1u << 20))) < 0)
			return rc;
	}
	lc.max_msg = p->swap_rx.cap;
	for (int q = 0; q < RX_KINDS; q++)
		if (p->rx[q] != NULL && p->rx[q][0].cap > lc.max_msg)
			lc.max_msg = p->rx[q][0].cap;
	p->link = nsl_link_create(&lc);
	if (p->link == NULL)
		return -EINVAL;
	if (j->fast) {
		/* Every role may message every other: a port to each peer. */
		for (int q = 0; q < n; q++)
			if (q != p->rank && (rc = nsl_link_add_peer(p->link, (uint16_t)q, p->port_to[q],
								    p->mac_to_set[q] ? p->mac_to[q] : NULL, p->ip_to[q])) < 0)
				return rc;
	} else {
		rc = nsl_link_add_peer(p->link, (uint16_t)next, p->port_next, p->mac_next_set ? p->mac_next : NULL,
				       p->ip_next);
		if (rc < 0)
			return rc;
		if (prev != next && (rc = nsl_link_add_peer(p->link, (uint16_t)prev, p->port_prev,
							    p->mac_prev_set ? p->mac_prev : NULL, p->ip_prev)) < 0)
			return rc;
	}
	/* Where each sender's messages stand, walked from its programs: ring neighbours, or everyone. */
	p->nexpect = 0;
	for (int q = 0; q < n; q++) {
		struct expect *e = &p->expect[p->nexpect];

		if (q == p->rank || (!j->fast && q != prev && q != next))
			continue;
		e->from = q;
		e->round = j->first_round;
		e->done = j->first_round >= j->rounds;
		e->n = e->done ? 0 : nsl_job_compile(j, nsl_job_stage_of(j, e->from, e->round), 0, e->prog);
		if (e->n < 0)
			return e->n;
		p->nexpect++;
	}
	nsl_idle_init(&p->idle, j->poll);
	if (p->bells) {
		struct nsl_link_peer_stats st;

		nsl_idle_set_bell(&p->idle, &p->bell);
		nsl_coop_attach(p);
		for (int q = 0; q < j->npeers; q++)
			p->linked[q] = q != p->rank && nsl_link_peer_stats(p->link, (uint16_t)q, &st) == 0;
		nsl_error_clear();
	}
	p->rounds_done = j->first_round;
	p->round_now = j->first_round;
	if ((rc = nsl_arena_reserve(&p->arena, largest_stage(p))) < 0)
		return nsl_error_prefix(rc, "peer %d", p->rank);
	if ((rc = make_stage(p, nsl_job_stage_of(j, p->rank, j->first_round), j->resume != NULL)) < 0)
		return rc;
	if (j->resume != NULL && nsl_job_is_forward_role(j, p->stage_idx))
		rc = nsl_record_load_params(p->stage, j->resume->f, j->resume->n);
	else if (j->resume != NULL)
		rc = nsl_record_load(p->stage, j->resume->f, j->resume->n);
	if (rc < 0)
		return nsl_error_prefix(rc, "resuming stage %d from %s", p->stage_idx + 1, j->resume->path);
	return 0;
}

int nsl_peer_train(struct peer *p)
{
	struct job *j = p->job;
	int rc;

	for (int r = j->first_round; r < j->rounds; r++) {
		p->round_now = r;
		const bool owner = p->stage_idx == 0, last = p->stage_idx == j->npeers - 1;
		bool more = r + 1 < j->rounds, ckpt = j->o->checkpoint && (r + 1) % j->o->checkpoint_every == 0;
		const struct nsl_round_stat before = { p->loss_sum, p->correct, p->seen, 0 };
		uint64_t len = 0;
		double t0;

		if (owner && (rc = nsl_batcher_begin_epoch(&p->data, (uint64_t)(r / j->npeers))) < 0)
			return rc;
		for (int b = 0; b < j->batches; b++) {
			if ((rc = run_batch(p, r, b, (int64_t)r * j->batches + b)) < 0)
				return nsl_error_prefix(rc, "round %d batch %d, stage %d", r + 1, b, p->stage_idx + 1);
			if (owner || j->count_every_batch)
				atomic_fetch_add(&j->samples, nsl_job_batch_rows(j, b));
		}
		if (last) {
			j->round_stats[r] = (struct nsl_round_stat){ p->loss_sum - before.loss_sum, p->correct - before.correct,
								     p->seen - before.seen, nsl_now() };
			atomic_store(&j->round_ready[r], 1);
		}
		p->rounds_done = r + 1;
		if (j->fast)
			nsl_peer_fast_settle(p);
		t0 = nsl_now();
		/* A swap and a checkpoint are the same record; the last send must be done with its buffer. */
		if ((more || ckpt) && ((rc = nsl_peer_drain(p)) < 0 || (rc = nsl_peer_pack_stage(p, r + 1, &len)) < 0))
			return nsl_error_prefix(rc, "packing stage %d after round %d", p->stage_idx + 1, r + 1);
		if (ckpt && (rc = checkpoint(p, r + 1, len)) < 0)
			return nsl_error_prefix(rc, "checkpoint after round %d", r + 1);
		if (ckpt)
			nsl_trace_add(&p->trace, NSL_TRACE_CHECKPOINT, p->stage_idx, r, j->batches, 0, t0, nsl_now(), -1);
		t0 = nsl_now();
		if (more && (rc = swap(p, r, len)) < 0)
			return nsl_error_prefix(rc, "swap after round %d", r + 1);
		if (more)
			nsl_trace_add(&p->trace, NSL_TRACE_SWAP, p->stage_idx, r, j->batches, 0, t0, nsl_now(), -1);
	}
	return nsl_peer_drain(p);
}
