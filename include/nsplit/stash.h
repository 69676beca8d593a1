/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Weight stashing (PipeDream's): a stage whose backward may run on micro-batches that an older
 * version of its weights made keeps those versions, so each gradient is the true gradient of
 * the weights that made it. The master weights stay the ones the optimizer updates.
 *
 *     nsl_stash_keep(st, s, v);     after the step that made version v (and v = first at start)
 *     nsl_stash_use(st, s, v);      before forward/backward with version v: the master moves aside
 *     nsl_stash_restore(st, s);     before the step, and before the stage is freed
 *
 * Versions are the optimizer steps the weights have had; a stash of `versions` keeps the newest
 * that many. Keeping copies the internal layouts once; using and restoring swap buffers, no
 * copy. A stash belongs to one stage object.
 */
#ifndef NSPLIT_STASH_H
#define NSPLIT_STASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nsplit/alloc.h"
#include "nsplit/stage.h"

#define NSL_STASH_MAX 16

struct nsl_stash {
	int versions, nparams;
	float **buf;              /* versions x nparams buffers, each its parameter's size */
	float **master;           /* nparams: the stage's own buffers while another version is in */
	int64_t held[NSL_STASH_MAX];   /* the version in each copy, -1 none */
	bool aside;
	size_t bytes;             /* all the copies */
	const struct nsl_allocator *alloc;
};

/* Room for `versions` (1..NSL_STASH_MAX) versions of stage s's weights, from `a` (NULL: libc).
 * 0 or -ENOMEM/-EINVAL. */
int nsl_stash_init(struct nsl_stash *st, const struct nsl_stage *s, int versions, const struct nsl_allocator *a);
void nsl_stash_fini(struct nsl_stash *st);

/* Keep the stage's current weights as version v (replacing the oldest). */
void nsl_stash_keep(struct nsl_stash *st, const struct nsl_stage *s, int64_t v);

/* Run on version v: 0, or -ENOENT with a message when it is no longer kept. */
int nsl_stash_use(struct nsl_stash *st, struct nsl_stage *s, int64_t v);

/* The master weights back in the stage (nothing when they never left). */
void nsl_stash_restore(struct nsl_stash *st, struct nsl_stage *s);

#endif
