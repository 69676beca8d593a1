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
#include <stdio.h>

#include "nsplit/error.h"
#include "fast.h"

/* The forward role holding layer `layer`. */
static int forward_role_of(int fwd, const int *fstarts, int layer)
{
	int f = 0;

	while (f + 1 < fwd && fstarts[f + 1] <= layer)
		f++;
	return f;
}

int nsl_fast_layout_make(const struct nsl_model *m, int fwd, const int *fstarts, int bwd, const int *bstarts,
			 bool all, int staleness, struct nsl_fast_layout *l, struct nsl_fast_ship *ship)
{
	if (fwd < 1 || bwd < 1 || fwd + bwd > NSL_FAST_MAX_ROLES || fstarts[fwd] != m->nlayers ||
	    bstarts[bwd] != m->nlayers)
		return nsl_error_set(EINVAL, "Fast N-split: pools %d:%d (at most %d peers) over a %d-layer model", fwd, bwd,
				     NSL_FAST_MAX_ROLES, m->nlayers);
	*l = (struct nsl_fast_layout){ .fwd = fwd, .bwd = bwd, .staleness = staleness };
	for (int b = 0; b < bwd; b++) {
		struct nsl_fast_ship *sh = &ship[b];

		*sh = (struct nsl_fast_ship){ 0 };
		if (all) {
			sh->n = nsl_model_stage_tensors(m, bstarts[b], bstarts[b + 1], sh->tensor);
		} else {
			sh->n = 1;
			sh->tensor[0] = bstarts[b];
		}
		for (int i = 0; i < sh->n; i++) {
			const int t = sh->tensor[i], f = t == 0 ? 0 : forward_role_of(fwd, fstarts, t - 1);

			sh->from[i] = f;
			sh->offset[i] = sh->row[f];
			sh->row[f] += nsl_shape_size(m->shapes[t]);
			l->saved_to[f] |= 1ull << b;
		}
		for (int f = 0; f < fwd; f++)
			if (bstarts[b] < fstarts[f + 1] && fstarts[f] < bstarts[b + 1])
				l->params_to[b] |= 1ull << f;
	}
	return 0;
}

int nsl_fast_split_text(int fwd, const int *fstarts, int bwd, const int *bstarts, char *out, size_t cap)
{
	int n = snprintf(out, cap, "fwd ");

	for (int f = 1; f < fwd && n > 0 && (size_t)n < cap; f++)
		n += snprintf(out + n, cap - (size_t)n, "%s%d", f > 1 ? "," : "", fstarts[f]);
	if (n > 0 && (size_t)n < cap)
		n += snprintf(out + n, cap - (size_t)n, "%s| bwd ", fwd > 1 ? " " : "");
	for (int b = 1; b < bwd && n > 0 && (size_t)n < cap; b++)
		n += snprintf(out + n, cap - (size_t)n, "%s%d", b > 1 ? "," : "", bstarts[b]);
	return n > 0 && (size_t)n < cap ? 0 : nsl_error_set(EINVAL, "split text too long");
}

