/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fast N-split's layout, from the model and the two pools' splits: which tensors each backward
 * role needs of a micro-batch and which forward role ships each (fast.c says why), and which
 * forward roles each backward role pushes parameters to. The runtime and the simulator share it.
 */
#ifndef NSL_FAST_H
#define NSL_FAST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nsplit/model.h"
#include "schedule.h"

/* What backward role b needs of each micro-batch, and who ships it. */
struct nsl_fast_ship {
	int n;
	int tensor[NSL_MODEL_MAX_LAYERS + 1];      /* model tensor numbers (nsl_stage_tensor) */
	int from[NSL_MODEL_MAX_LAYERS + 1];        /* the forward role that has it */
	int64_t offset[NSL_MODEL_MAX_LAYERS + 1];  /* floats per row before it in that role's message */
	int64_t row[NSL_FAST_MAX_ROLES];           /* floats per row of each forward role's message */
};

/* Micro-batches a backward role buffers unless --buffer says. */
#define NSL_FAST_BUFFER 4

/* The forward pool when neither the pools nor the planner say: a backward costs about two
 * forwards, so a third of the peers (at least one). */
static inline int nsl_fast_default_fwd(int peers)
{
	return (peers + 1) / 3 > 0 ? (peers + 1) / 3 : 1;
}

/*
 * Fill l (pools, staleness, who ships and pushes to whom) and ship[0..bwd) from the forward
 * split fstarts[0..fwd] and the backward split bstarts[0..bwd]; `all`: every tensor a backward
 * needs, else its input alone. 0 or -EINVAL with a message.
 */
int nsl_fast_layout_make(const struct nsl_model *m, int fwd, const int *fstarts, int bwd, const int *bstarts,
			 bool all, int staleness, struct nsl_fast_layout *l, struct nsl_fast_ship *ship);

/* "fwd 2 | bwd 1,3": both pools' cuts, for records and messages. */
int nsl_fast_split_text(int fwd, const int *fstarts, int bwd, const int *bstarts, char *out, size_t cap);

#endif
