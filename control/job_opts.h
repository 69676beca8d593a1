/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The options nsplit plan and nsplit simulate share: a job's shape (model, peers, schedule,
 * batching, samples, cores) and the cost file it is judged by. Each command lists
 * NSL_JOB_OPTIONS in its getopt table, offers every option to nsl_job_opt first, and ends its
 * parse with nsl_job_opts_done.
 */
#ifndef NSL_JOB_OPTS_H
#define NSL_JOB_OPTS_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>

#include "nsplit/model.h"
#include "schedule.h"

struct nsl_job_opts {
	const char *model, *cost;
	struct nsl_shape input;
	int peers, batch, micro, cores;
	int64_t samples;
	enum nsl_sched_kind schedule;
	int pools_fwd, pools_bwd;     /* fast: --pools F:B (0: the planner's) */
	bool fast_all;                /* fast: --fast-activations all (else boundary: recompute) */
	int staleness;                /* fast: --staleness S */
	bool json;
};

/* Codes from 0x100 on, clear of the commands' own single letters. */
enum { NSL_JOB_OPT_COST = 0x100, NSL_JOB_OPT_MODEL, NSL_JOB_OPT_INPUT, NSL_JOB_OPT_PEERS, NSL_JOB_OPT_SCHEDULE,
       NSL_JOB_OPT_BATCH, NSL_JOB_OPT_MICRO, NSL_JOB_OPT_SAMPLES, NSL_JOB_OPT_CORES, NSL_JOB_OPT_JSON,
       NSL_JOB_OPT_POOLS, NSL_JOB_OPT_FAST_ACT, NSL_JOB_OPT_STALENESS };

#define NSL_JOB_OPTIONS                                                                                         \
	{ "cost", required_argument, NULL, NSL_JOB_OPT_COST }, { "model", required_argument, NULL, NSL_JOB_OPT_MODEL }, \
	{ "input", required_argument, NULL, NSL_JOB_OPT_INPUT }, { "peers", required_argument, NULL, NSL_JOB_OPT_PEERS }, \
	{ "schedule", required_argument, NULL, NSL_JOB_OPT_SCHEDULE },                                           \
	{ "batch", required_argument, NULL, NSL_JOB_OPT_BATCH },                                                 \
	{ "micro-batch", required_argument, NULL, NSL_JOB_OPT_MICRO },                                           \
	{ "samples", required_argument, NULL, NSL_JOB_OPT_SAMPLES },                                             \
	{ "cores", required_argument, NULL, NSL_JOB_OPT_CORES }, { "json", no_argument, NULL, NSL_JOB_OPT_JSON },   \
	{ "pools", required_argument, NULL, NSL_JOB_OPT_POOLS },                                                 \
	{ "fast-activations", required_argument, NULL, NSL_JOB_OPT_FAST_ACT },                                   \
	{ "staleness", required_argument, NULL, NSL_JOB_OPT_STALENESS }

/* Option c with argument arg: 1 when it is one of the shared ones (*rc its parse's result), else 0. */
int nsl_job_opt(int c, const char *arg, struct nsl_job_opts *o, int *rc);

/* After getopt: 0, or the exit code for a failed value (rc < 0), a missing --cost or a stray argument. */
int nsl_job_opts_done(const char *cmd, int rc, int argc, char **argv, const struct nsl_job_opts *o);

#endif
