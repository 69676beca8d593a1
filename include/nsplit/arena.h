/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * An arena: an allocator whose blocks come from a few big chunks of a parent allocator and are
 * given back all at once. A peer makes its stage of each round in one, so the memory of last
 * round's stage is reused instead of returned and mapped again.
 *
 *     nsl_arena_init(&ar, &nsl_allocator_dp);
 *     s = nsl_stage_create(cc, &(struct nsl_stage_config){ ..., .alloc = &ar.a });
 *     nsl_stage_free(s);
 *     nsl_arena_reset(&ar);          every block freed: start over
 *     ...
 *     nsl_arena_fini(&ar);
 *
 * Freeing a block only counts it; its memory comes back at the reset. When one use spread over
 * several chunks, the reset makes them one of the most bytes ever in use. Not thread-safe.
 */
#ifndef NSPLIT_ARENA_H
#define NSPLIT_ARENA_H

#include <stddef.h>
#include <stdint.h>

#include "nsplit/alloc.h"

#define NSL_ARENA_MAX_CHUNKS 64

struct nsl_arena_chunk {
	uint8_t *base;
	size_t size, used;
};

struct nsl_arena {
	struct nsl_allocator a;         /* hand this out */
	const struct nsl_allocator *parent;
	struct nsl_arena_chunk chunk[NSL_ARENA_MAX_CHUNKS];
	int nchunks;
	size_t live;                    /* blocks given and not yet freed */
	size_t used, high;              /* bytes taken since the reset, and the most ever */
};

void nsl_arena_init(struct nsl_arena *ar, const struct nsl_allocator *parent);

/* 0, or -EBUSY with a message when a block is still in use. */
int nsl_arena_reset(struct nsl_arena *ar);

/* One chunk of at least `bytes`, now, when no block is in use: what every use will need, known
 * in advance, so none spills. 0, -EBUSY or -ENOMEM with a message. */
int nsl_arena_reserve(struct nsl_arena *ar, size_t bytes);

/* Bytes held from the parent. */
size_t nsl_arena_bytes(const struct nsl_arena *ar);

void nsl_arena_fini(struct nsl_arena *ar);

#endif
