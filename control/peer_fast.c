/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fast N-split's instructions on one peer (schedule.h says the programs, fast_layout.c who
 * ships what). A forward role ships each backward role the tensors it needs, copied out of its
 * stage into a staging buffer (its stage slots are reused two micro-batches on); a backward role
 * puts them back (or runs its forward again from its input) before its backward; after each
 * step it pushes every forward role holding some of its layers their new parameters, as a
 * record.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "nsplit/error.h"
#include "peer.h"
#include "push.h"

static int send_saved(struct peer *p, const struct nsl_instr *in, int round, int rows)
{
	struct job *j = p->job;
	const int f = p->stage_idx, m = in->micro, b = in->peer - j->fl.fwd;
	const int64_t mr = nsl_job_micro_rows(j, rows, m);
	const struct nsl_fast_ship *sh = &j->ship[b];
	const int ts = b * FAST_TX_SLOTS + m % FAST_TX_SLOTS;
	float *dst = p->saved_buf[ts];
	int rc;

	/* The staging buffer of two micro-batches ago may still be on its way. */
	if ((rc = nsl_peer_wait_tx(p, &p->tx_saved[ts])) < 0)
		return rc;
	for (int i = 0; i < sh->n; i++) {
		const int t = sh->tensor[i];
		const float *src;

		if (sh->from[i] != f)
			continue;
		if ((src = nsl_stage_tensor(p->stage, m % j->slots[f], t)) == NULL)
			return nsl_error_set(EINVAL, "forward stage %d keeps no tensor %d for backward stage %d", f + 1, t,
					     b + 1);
		memcpy(dst + mr * sh->offset[i], src, (size_t)mr * (size_t)nsl_shape_size(j->model->shapes[t]) * sizeof(float));
	}
	return nsl_peer_send(p, &p->tx_saved[ts], nsl_job_rank_of(j, in->peer, round), NSL_MSG_SAVED, dst,
			     (uint64_t)mr * (uint64_t)sh->row[f] * sizeof(float), in->peer, m, round, p->version);
}

static int refwd(struct peer *p, const struct nsl_instr *in, int64_t step, int rows)
{
	struct job *j = p->job;
	const int q = p->stage_idx, m = in->micro, slot = m % j->slots[q];
	const int64_t mr = nsl_job_micro_rows(j, rows, m);
	const struct nsl_fast_ship *sh = &j->ship[q - j->fl.fwd];
	const float *t[NSL_MODEL_MAX_LAYERS + 1];
	int rc;

	for (int i = 0; i < sh->n; i++)
		t[i] = (const float *)p->rx[RX_SAVED + sh->from[i]][slot].data + mr * sh->offset[i];
	if ((rc = nsl_peer_post_all(p)) < 0)
		return rc;
	if (j->o->fast_all)
		return nsl_stage_restore_in(p->stage, slot, (int)mr, t, &p->y[slot], (uint64_t)step);
	return nsl_stage_forward_in(p->stage, slot, (int)mr, t[0], &p->y[slot], true, (uint64_t)step);
}

/* Backward role: the layers it shares with forward role `f`, [*lo, *hi). */
static void shared_layers(const struct job *j, int role, int f, int *lo, int *hi)
{
	*lo = j->first[role] > j->first[f] ? j->first[role] : j->first[f];
	*hi = j->last[role] < j->last[f] ? j->last[role] : j->last[f];
}

static int send_params(struct peer *p, const struct nsl_instr *in, int round, int64_t step)
{
	struct job *j = p->job;
	const int f = in->peer;
	uint64_t len;
	int lo, hi, rc;

	shared_layers(j, p->stage_idx, f, &lo, &hi);
	if ((rc = nsl_peer_wait_tx(p, &p->tx_params[f])) < 0 ||
	    (rc = nsl_push_pack(p->stage, lo, hi, p->params_buf[f], p->params_cap, &len)) < 0)
		return rc;
	return nsl_peer_send(p, &p->tx_params[f], nsl_job_rank_of(j, f, round), NSL_MSG_PARAMS, p->params_buf[f], len, f,
			     in->micro, round, step + 1);
}

static int recv_params(struct peer *p, const struct nsl_instr *in, int round)
{
	struct job *j = p->job;
	const int b = in->peer - j->fl.fwd, slots = j->fl.staleness + 1, slot = in->micro % slots;
	struct rxbuf *r = &p->rx[RX_PARAMS + b][slot];
	/* Read in place, the slot held until the next push lands in its sibling: without
	 * staleness there is no sibling, and the next push would wait for this one to go. */
	const bool adopt = slots > 1 && p->push_own != NULL;
	char what[64];
	int lo, hi, k0, k1, rc;

	if ((rc = nsl_peer_wait_rx(p, r)) < 0 ||
	    (rc = nsl_peer_check_msg(r, NSL_MSG_PARAMS, in->micro, round, (int64_t)round * j->batches + in->micro + 1)) < 0)
		return rc;
	snprintf(what, sizeof(what), "parameters from backward stage %d", b + 1);
	shared_layers(j, in->peer, p->stage_idx, &lo, &hi);
	nsl_stage_param_range(p->stage, lo, hi, &k0, &k1);
	for (int k = k0; adopt && k < k1; k++)
		if (p->push_own[k] == NULL)
			p->push_own[k] = nsl_stage_param_data(p->stage, k, NULL);
	if ((rc = nsl_push_load(p->stage, lo, hi, r->data, r->msg.len, what, adopt)) < 0)
		return rc;
	if (rc == 0) {
		r->full = false;
		return 0;
	}
	if (p->push_held[b] >= 0 && p->push_held[b] != slot)
		p->rx[RX_PARAMS + b][p->push_held[b]].full = false;
	p->push_held[b] = slot;
	return 0;
}

void nsl_peer_fast_settle(struct peer *p)
{
	for (int k = 0; p->stage != NULL && p->push_own != NULL && k < nsl_stage_param_count(p->stage); k++) {
		size_t count;
		float *now = nsl_stage_param_data(p->stage, k, &count);

		if (p->push_own[k] == NULL)
			continue;
		if (now != p->push_own[k]) {
			memcpy(p->push_own[k], now, count * sizeof(float));
			nsl_stage_param_set_data(p->stage, k, p->push_own[k]);
		}
		p->push_own[k] = NULL;
	}
	for (int b = 0; b < NSL_FAST_MAX_ROLES; b++) {
		if (p->push_held[b] >= 0 && p->rx[RX_PARAMS + b] != NULL)
			p->rx[RX_PARAMS + b][p->push_held[b]].full = false;
		p->push_held[b] = -1;
	}
}

int nsl_peer_fast_op(struct peer *p, const struct nsl_instr *in, int round, int b, int64_t step, int rows)
{
	struct job *j = p->job;
	struct rxbuf *r;
	int rc;

	(void)b;
	switch ((enum nsl_op)in->op) {
	case NSL_OP_SEND_SAVED:
		return send_saved(p, in, round, rows);
	case NSL_OP_RECV_SAVED:
		r = &p->rx[RX_SAVED + in->peer][in->micro % j->slots[p->stage_idx]];
		if ((rc = nsl_peer_wait_rx(p, r)) < 0)
			return rc;
		return nsl_peer_check_msg(r, NSL_MSG_SAVED, in->micro, round, p->version);
	case NSL_OP_REFWD:
		return refwd(p, in, step, rows);
	case NSL_OP_SEND_PARAMS:
		return send_params(p, in, round, step);
	case NSL_OP_RECV_PARAMS:
		return recv_params(p, in, round);
	default:
		return nsl_error_set(EINVAL, "instruction %u is not Fast N-split's", in->op);
	}
}
