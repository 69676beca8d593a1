/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fast N-split's layout (schedule.h says how it runs): the pools, each pool's split, and which
 * forward role ships which tensors to which backward role.
 *
 * A backward role of layers [first, last) needs, per micro-batch, its input alone
 * (--fast-activations boundary: it runs the forward again from there) or every tensor its backward
 * reads (all: nsl_model_stage_tensors, no forward to redo). Tensor L (the input of layer L) comes
 * from the forward role that computes it, the one holding layer L - 1 (the input, for L = 0, from
 * forward role 0, which loads the batch). Forward roles keep every tensor (stages made with
 * no_fuse) so each can be shipped whatever the backward split.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nsplit/error.h"
#include "cost.h"
#include "peer.h"
#include "plan.h"

/* The forward role holding layer `layer`. */
static int forward_role_of(const struct job *j, int layer)
{
	int f = 0;

	while (f + 1 < j->fl.fwd && j->fstarts[f + 1] <= layer)
		f++;
	return f;
}

static int pool_split(const struct job *j, const char *text, const char *opt, int n, int *starts)
{
	int rc;

	if (text == NULL)
		return nsl_model_even_split(j->model, n, starts);
	rc = nsl_model_parse_split(j->model, text, starts, NSL_CHAIN_MAX_STAGES);
	if (rc >= 0 && rc != n)
		return nsl_error_set(EINVAL, "--%s %s makes %d stages for a pool of %d; give %d layer numbers", opt, text, rc,
				     n, n - 1);
	return rc < 0 ? rc : 0;
}

static int plan_ship(struct job *j, int b, bool all)
{
	struct nsl_fast_ship *sh = &j->ship[b];
	const int first = j->starts[b], last = j->starts[b + 1];

	if (all) {
		sh->n = nsl_model_stage_tensors(j->model, first, last, sh->tensor);
	} else {
		sh->n = 1;
		sh->tensor[0] = first;
	}
	for (int i = 0; i < sh->n; i++) {
		const int t = sh->tensor[i], f = t == 0 ? 0 : forward_role_of(j, t - 1);

		sh->from[i] = f;
		sh->offset[i] = sh->row[f];
		sh->row[f] += nsl_shape_size(j->model->shapes[t]);
		j->fl.saved_to[f] |= 1ull << b;
	}
	return 0;
}

/*
 * Neither split given: the planner's pools (unless given) and splits, from --cost FILE or from
 * the model's multiply-adds. In one process the peers share its cores.
 */
static int planned(struct job *j, const struct nsl_train_opts *o, int *F, int *B)
{
	struct nsl_cost c;
	struct nsl_plan p;
	cpu_set_t cpus;
	int rc;

	if (o->cost) {
		rc = nsl_cost_read(o->cost, j->model, &c);
		c.micro = j->micro;
	} else {
		rc = nsl_cost_estimate(j->model, j->micro, j->oc.ops->state_slots, &c);
	}
	if (rc < 0)
		return rc;
	c.slots = o->buffer > 0 ? o->buffer : 4;
	struct nsl_plan_req r = { .cost = &c, .npeers = o->peers, .objective = NSL_PLAN_FAST,
				  .samples_per_shard = j->per_shard, .fwd = *F, .recompute = !o->fast_all };

	if (sched_getaffinity(0, sizeof(cpus), &cpus) == 0 && CPU_COUNT(&cpus) < o->peers)
		r.cores = CPU_COUNT(&cpus);
	if ((rc = nsl_plan_solve(&r, &p)) == 0) {
		*F = p.fwd;
		*B = p.bwd;
		memcpy(j->fstarts, p.starts, sizeof(int) * (size_t)(p.fwd + 1));
		memcpy(j->starts, p.bstarts, sizeof(int) * (size_t)(p.bwd + 1));
	}
	free(c.layer);
	return rc < 0 ? nsl_error_prefix(rc, "planning Fast N-split") : 0;
}

int nsl_fast_plan(struct job *j, const struct nsl_train_opts *o)
{
	const int n = o->peers;
	int F = o->pools_fwd, B = o->pools_bwd, rc;
	const bool plan = o->split_fwd == NULL && o->split_bwd == NULL;

	if (F != 0 && F + B != n)
		return nsl_error_set(EINVAL, "--pools %d:%d for %d peers: the pools must add up to --peers, one or more each",
				     F, B, n);
	if (plan && n <= NSL_PLAN_MAX_PEERS && (rc = planned(j, o, &F, &B)) < 0)
		return rc;
	if (F == 0) {
		/* A backward costs about two forwards: a third of the peers forward. */
		F = (n + 1) / 3 > 0 ? (n + 1) / 3 : 1;
		B = n - F;
	}
	if (F + B != n || B < 1)
		return nsl_error_set(EINVAL, "--pools %d:%d for %d peers: the pools must add up to --peers, one or more each",
				     F, B, n);
	if (n > NSL_FAST_MAX_ROLES)
		return nsl_error_set(EINVAL, "--schedule fast: at most %d peers", NSL_FAST_MAX_ROLES);
	if (F > j->model->nlayers || B > j->model->nlayers)
		return nsl_error_set(EINVAL, "--pools %d:%d: the model has only %d layers to share in a pool", F, B,
				     j->model->nlayers);
	j->fast = true;
	j->fl = (struct nsl_fast_layout){ .fwd = F, .bwd = B, .staleness = o->staleness };
	if (!plan && ((rc = pool_split(j, o->split_fwd, "split-fwd", F, j->fstarts)) < 0 ||
		      (rc = pool_split(j, o->split_bwd, "split-bwd", B, j->starts)) < 0))
		return rc;
	if ((j->ship = calloc((size_t)B, sizeof(*j->ship))) == NULL)
		return nsl_error_set(ENOMEM, "out of memory");
	for (int f = 0; f < F; f++) {
		j->first[f] = j->fstarts[f];
		j->last[f] = j->fstarts[f + 1];
		j->slots[f] = FAST_TX_SLOTS;
	}
	for (int b = 0; b < B; b++) {
		j->first[F + b] = j->starts[b];
		j->last[F + b] = j->starts[b + 1];
		j->slots[F + b] = o->buffer > 0 ? o->buffer : 4;
		if ((rc = plan_ship(j, b, o->fast_all)) < 0)
			return rc;
		for (int f = 0; f < F; f++)
			if (j->starts[b] < j->fstarts[f + 1] && j->fstarts[f] < j->starts[b + 1])
				j->fl.params_to[b] |= 1ull << f;
	}
	j->kmax = 0;
	for (int q = 0; q < n; q++)
		j->kmax = j->slots[q] > j->kmax ? j->slots[q] : j->kmax;
	/* Forward roles run no optimizer: their stages hold parameters alone. */
	j->foc = (struct nsl_optim_config){ .ops = &nsl_optim_none };
	return 0;
}

int nsl_fast_split_text(const struct job *j, char *out, size_t cap)
{
	int n = snprintf(out, cap, "fwd ");

	for (int f = 1; f < j->fl.fwd && n > 0 && (size_t)n < cap; f++)
		n += snprintf(out + n, cap - (size_t)n, "%s%d", f > 1 ? "," : "", j->fstarts[f]);
	if (n > 0 && (size_t)n < cap)
		n += snprintf(out + n, cap - (size_t)n, "%s| bwd ", j->fl.fwd > 1 ? " " : "");
	for (int b = 1; b < j->fl.bwd && n > 0 && (size_t)n < cap; b++)
		n += snprintf(out + n, cap - (size_t)n, "%s%d", b > 1 ? "," : "", j->starts[b]);
	return n > 0 && (size_t)n < cap ? 0 : nsl_error_set(EINVAL, "split text too long");
}
