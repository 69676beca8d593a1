/* SPDX-License-Identifier: BSD-3-Clause */
/* Fast N-split's job plan: pools and splits (given or the planner's), roles and their slots. */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nsplit/error.h"
#include "cli.h"
#include "cost.h"
#include "peer.h"
#include "plan.h"
#include "simulate.h"

/*
 * Neither split given: the planner's pools (unless given) and splits, from --cost FILE or from
 * the model's multiply-adds. In one process the peers share its cores (and the pools are the
 * fastest simulated: nsl_sim_fast_plan); a cluster's do not.
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
	c.slots = o->buffer > 0 ? o->buffer : NSL_FAST_BUFFER;
	struct nsl_plan_req r = { .cost = &c, .npeers = o->peers, .objective = NSL_PLAN_FAST,
				  .samples_per_shard = j->per_shard, .fwd = *F, .recompute = !o->fast_all };
	double speed[NSL_PLAN_MAX_PEERS], budget[NSL_PLAN_MAX_PEERS];

	nsl_job_plan_peers(j, &r, speed, budget);

	/* A cluster's peers must all plan the same: none looks at its own CPUs. */
	if (!o->cluster && sched_getaffinity(0, sizeof(cpus), &cpus) == 0 && CPU_COUNT(&cpus) < o->peers)
		r.cores = CPU_COUNT(&cpus);
	if ((rc = nsl_sim_fast_plan(&r, &(struct nsl_sim_fast){ .model = j->model, .batch = o->batch, .micro = j->micro,
							       .per_shard = j->per_shard, .fast_all = o->fast_all,
							       .staleness = o->staleness, .buffer = c.slots,
							       .param_share = 1.0 / (2 + j->oc.ops->state_slots) },
				    &p)) == 0) {
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
		F = nsl_fast_default_fwd(n);
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
	if (!plan && ((rc = nsl_cli_split(j->model, "split-fwd", o->split_fwd, F, j->fstarts)) < 0 ||
		      (rc = nsl_cli_split(j->model, "split-bwd", o->split_bwd, B, j->starts)) < 0))
		return rc;
	if ((j->ship = calloc((size_t)B, sizeof(*j->ship))) == NULL)
		return nsl_error_set(ENOMEM, "out of memory");
	if ((rc = nsl_fast_layout_make(j->model, F, j->fstarts, B, j->starts, o->fast_all, o->staleness, &j->fl,
					j->ship)) < 0)
		return rc;
	for (int f = 0; f < F; f++) {
		j->first[f] = j->fstarts[f];
		j->last[f] = j->fstarts[f + 1];
		j->slots[f] = FAST_TX_SLOTS;
	}
	for (int b = 0; b < B; b++) {
		j->first[F + b] = j->starts[b];
		j->last[F + b] = j->starts[b + 1];
		j->slots[F + b] = o->buffer > 0 ? o->buffer : NSL_FAST_BUFFER;
	}
	j->kmax = 0;
	for (int q = 0; q < n; q++)
		j->kmax = j->slots[q] > j->kmax ? j->slots[q] : j->kmax;
	/* Forward roles run no optimizer: their stages hold parameters alone. */
	j->foc = (struct nsl_optim_config){ .ops = &nsl_optim_none };
	return 0;
}
