/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Plan files: what `nsplit plan --json` prints, read back for `nsplit simulate --plan FILE`:
 *   { "model": "...", "peers": N, "schedule": "1f1b", "split": [I, J, ...], ... }
 *   { "model": "...", "peers": N, "schedule": "fast", "pools": [F, B],
 *     "split_fwd": [...], "split_bwd": [...], ... }
 * Other keys (order, predictions) are read past.
 */
#ifndef NSL_PLAN_FILE_H
#define NSL_PLAN_FILE_H

#include "nsplit/model.h"
#include "plan.h"
#include "schedule.h"

struct nsl_plan_file {
	char model[4096];
	int peers;
	enum nsl_sched_kind schedule;
	int fwd, bwd;                              /* fast: the pools */
	int starts[NSL_PLAN_MAX_PEERS + 1];        /* the split (fast: the backward pool's) */
	int fstarts[NSL_PLAN_MAX_PEERS + 1];       /* fast: the forward pool's */
};

/* Read path: 0, or -EINVAL naming the file and what is wrong (not JSON, a key missing or of the
 * wrong kind, an unknown schedule, pools that do not add up to the peers). */
int nsl_plan_file_read(const char *path, struct nsl_plan_file *out);

/* Check the splits against model m (whose text must be the file's): every cut a layer of it, rising,
 * one fewer than the stages. 0 or -EINVAL naming the file. */
int nsl_plan_file_check(const char *path, struct nsl_plan_file *pf, const struct nsl_model *m);

#endif
