/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Weight stashing (PipeDream's): a stage whose backward may run on micro-batches that an older
 * version of its weights made keeps those versions, so each gradient is the true gradient of
 * the weights that made it. The newest weights are the ones the optimizer updates.
 *
 *     nsl_stash_keep(st, s, v);        the stage's weights are version v (at the start)
 *     nsl_stash_use(st, s, v);         before forward/backward with version v
 *     nsl_stash_step(st, s, lr, v);    the step: the newest weights in, the new ones, version v,
 *                                      written over the oldest version kept
 *     nsl_stash_restore(st, s);        the newest weights in (before the stage is freed)
 *
 * Versions are the optimizer steps the weights have had; a stash of `versions` buffers per
 * parameter, the stage's own among them, keeps the newest that many. Nothing is copied: the
 * optimizer writes each new version beside the last (nsl_stage_step_into), and using one swaps
 * the stage's buffer pointers. Buffers change hands between the stash and the stage, so the
 * stash must allocate from the stage's allocator. A stash belongs to one stage object.
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
	int64_t held[NSL_STASH_MAX];   /* the version in each, -1 none */
	int newest;               /* the buffer set holding the newest version */
	bool aside;               /* another version is in the stage */
	size_t bytes;             /* the buffers the stash allocated (all but the stage's own) */
	const struct nsl_allocator *alloc;
};

/* Room for `versions` (2..NSL_STASH_MAX) versions of stage s's weights, its own buffers one of
 * them, the others from `a` (the allocator s was made with; NULL: libc). 0 or -ENOMEM/-EINVAL. */
int nsl_stash_init(struct nsl_stash *st, const struct nsl_stage *s, int versions, const struct nsl_allocator *a);

/* Free what the stash holds: every buffer but those of the newest version, which the stage
 * holds (call nsl_stash_restore first if another version is in). */
void nsl_stash_fini(struct nsl_stash *st);

/* The stage's current weights (the newest) are version v. */
void nsl_stash_keep(struct nsl_stash *st, const struct nsl_stage *s, int64_t v);

/* Run on version v: 0, or -ENOENT with a message when it is no longer kept. */
int nsl_stash_use(struct nsl_stash *st, struct nsl_stage *s, int64_t v);

/* The newest weights back in the stage (nothing when they never left). */
void nsl_stash_restore(struct nsl_stash *st, struct nsl_stage *s);

/* nsl_stage_step with learning rate lr from the newest weights into the oldest version's
 * buffers, which become the stage's: version v, the newest. 0 or an errno. */
int nsl_stash_step(struct nsl_stash *st, struct nsl_stage *s, float lr, int64_t v);

#endif
