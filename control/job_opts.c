/* SPDX-License-Identifier: BSD-3-Clause */
#include <stdio.h>

#include "cli.h"
#include "job_opts.h"
#include "plan.h"
#include "nsplit/stash.h"

int nsl_job_opt(int c, const char *arg, struct nsl_job_opts *o, int *rc)
{
	enum nsl_sched_kind k;

	switch (c) {
	case NSL_JOB_OPT_COST: o->cost = arg; break;
	case NSL_JOB_OPT_MODEL: o->model = arg; break;
	case NSL_JOB_OPT_INPUT: *rc = nsl_cli_shape("input", arg, &o->input); break;
	case NSL_JOB_OPT_PEERS: *rc = nsl_cli_int("peers", arg, 1, NSL_PLAN_MAX_PEERS, &o->peers); break;
	case NSL_JOB_OPT_SCHEDULE:
		*rc = nsl_sched_parse(arg, &k);
		o->schedule = k;
		break;
	case NSL_JOB_OPT_BATCH: *rc = nsl_cli_int("batch", arg, 1, 1 << 20, &o->batch); break;
	case NSL_JOB_OPT_MICRO: *rc = nsl_cli_int("micro-batch", arg, 1, 1 << 20, &o->micro); break;
	case NSL_JOB_OPT_SAMPLES: *rc = nsl_cli_i64("samples", arg, 1, INT64_MAX / 2, &o->samples); break;
	case NSL_JOB_OPT_CORES: *rc = nsl_cli_int("cores", arg, 0, 4096, &o->cores); break;
	case NSL_JOB_OPT_JSON: o->json = true; break;
	case NSL_JOB_OPT_POOLS: *rc = nsl_cli_pools(arg, &o->pools_fwd, &o->pools_bwd); break;
	case NSL_JOB_OPT_FAST_ACT: *rc = nsl_cli_fast_activations(arg, &o->fast_all); break;
	case NSL_JOB_OPT_STALENESS: *rc = nsl_cli_int("staleness", arg, 0, NSL_STASH_MAX - 1, &o->staleness); break;
	default: return 0;
	}
	return 1;
}

int nsl_job_opts_done(const char *cmd, int rc, int argc, char **argv, const struct nsl_job_opts *o)
{
	if (rc < 0)
		return nsl_cli_fail(cmd) + 1;
	if (optind < argc || o->cost == NULL) {
		fprintf(stderr, "nsplit %s: %s%s%s (see nsplit %s --help)\n", cmd,
			o->cost == NULL ? "give --cost FILE (made by nsplit profile)" : "unexpected argument \"",
			o->cost == NULL ? "" : argv[optind], o->cost == NULL ? "" : "\"", cmd);
		return 2;
	}
	return 0;
}
