/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fast N-split's pools on shared cores, chosen by simulation. Measured on the wide MLP over 4
 * peers on 2 cores: the planner's 1:3 ran at 0.70 of the reference, 2:2 at 0.74-0.79; the
 * simulator ranks them so.
 */
#include <stddef.h>

#include "nsplit/error.h"
#include "simulate.h"

int nsl_sim_fast_plan(const struct nsl_plan_req *r, const struct nsl_sim_fast *f, struct nsl_plan *out)
{
	double fastest = -1;
	int rc = nsl_plan_solve(r, out);

	if (rc < 0 || r->fwd != 0 || r->cores <= 0 || r->topo.host != NULL)
		return rc;
	for (int F = 1; F < r->npeers; F++) {
		struct nsl_plan_req rf = *r;
		struct nsl_plan p;
		struct nsl_sim_result res;

		rf.fwd = F;
		if (nsl_plan_solve(&rf, &p) < 0) {
			nsl_error_clear();   /* that pool size fits no budget, or has too few layers */
			continue;
		}
		struct nsl_sim_conf sc = { .cost = r->cost, .npeers = r->npeers, .starts = p.bstarts, .cores = r->cores,
					   .speed = r->speed, .schedule = NSL_SCHED_FAST, .batch = f->batch,
					   .micro = f->micro, .per_shard = f->per_shard, .rounds = r->npeers,
					   .model = f->model, .fwd = F, .fstarts = p.starts, .fast_all = f->fast_all,
					   .staleness = f->staleness, .buffer = f->buffer, .param_share = f->param_share };

		if ((rc = nsl_simulate(&sc, &res)) < 0)
			return nsl_error_prefix(rc, "simulating Fast N-split pools %d:%d", F, r->npeers - F);
		if (res.samples_per_s > fastest * (1 + 1e-9)) {
			fastest = res.samples_per_s;
			*out = p;
		}
	}
	return 0;
}
