/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "nsplit/error.h"
#include "nsplit/stash.h"

int nsl_stash_init(struct nsl_stash *st, const struct nsl_stage *s, int versions, const struct nsl_allocator *a)
{
	const int np = nsl_stage_param_count(s);

	*st = (struct nsl_stash){ .versions = versions, .nparams = np, .alloc = a ? a : &nsl_allocator_libc };
	if (versions < 2 || versions > NSL_STASH_MAX)
		return nsl_error_set(EINVAL, "weight stash: %d versions; 2..%d", versions, NSL_STASH_MAX);
	st->buf = calloc((size_t)(versions * np + 1), sizeof(*st->buf));
	if (st->buf == NULL)
		goto nomem;
	for (int v = 0; v < versions; v++) {
		st->held[v] = -1;
		for (int k = 0; k < np; k++) {
			size_t count, bytes;
			float *own = nsl_stage_param_data(s, k, &count);

			bytes = (count * sizeof(float) + 63) / 64 * 64;
			if (v == 0) {
				st->buf[k] = own;
				continue;
			}
			if ((st->buf[v * np + k] = st->alloc->alloc(st->alloc->ctx, bytes, 64)) == NULL)
				goto nomem;
			st->bytes += bytes;
		}
	}
	return 0;
nomem:
	nsl_stash_fini(st);
	return nsl_error_set(ENOMEM, "weight stash: no memory for %d versions of the weights", versions);
}

void nsl_stash_fini(struct nsl_stash *st)
{
	for (int v = 0; st->buf != NULL && v < st->versions; v++)
		for (int k = 0; v != st->newest && k < st->nparams; k++)
			nsl_alloc_free(st->alloc, st->buf[v * st->nparams + k]);
	free(st->buf);
	*st = (struct nsl_stash){ 0 };
}

void nsl_stash_keep(struct nsl_stash *st, const struct nsl_stage *s, int64_t v)
{
	(void)s;
	st->held[st->newest] = v;
}

static void put_in(struct nsl_stash *st, struct nsl_stage *s, int set)
{
	for (int k = 0; k < st->nparams; k++)
		nsl_stage_param_set_data(s, k, st->buf[set * st->nparams + k]);
	st->aside = set != st->newest;
}

int nsl_stash_use(struct nsl_stash *st, struct nsl_stage *s, int64_t v)
{
	for (int i = 0; i < st->versions; i++)
		if (st->held[i] == v) {
			put_in(st, s, i);
			return 0;
		}
	return nsl_error_set(ENOENT, "weight stash: version %" PRId64 " is not kept (the newest is %" PRId64 ", %d kept)",
			     v, st->held[st->newest], st->versions);
}

void nsl_stash_restore(struct nsl_stash *st, struct nsl_stage *s)
{
	if (st->aside)
		put_in(st, s, st->newest);
}

int nsl_stash_step(struct nsl_stash *st, struct nsl_stage *s, float lr, int64_t v)
{
	int oldest = -1, rc;

	nsl_stash_restore(st, s);
	for (int i = 0; i < st->versions; i++)
		if (i != st->newest && (oldest < 0 || st->held[i] < st->held[oldest]))
			oldest = i;
	if ((rc = nsl_stage_step_into(s, lr, st->buf + oldest * st->nparams)) < 0)
		return rc;
	st->newest = oldest;
	st->held[oldest] = v;
	return 0;
}
