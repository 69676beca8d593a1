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
	if (versions < 1 || versions > NSL_STASH_MAX)
		return nsl_error_set(EINVAL, "weight stash: %d versions; 1..%d", versions, NSL_STASH_MAX);
	st->buf = calloc((size_t)(versions * np + 1), sizeof(*st->buf));
	st->master = calloc((size_t)np + 1, sizeof(*st->master));
	if (st->buf == NULL || st->master == NULL)
		goto nomem;
	for (int v = 0; v < versions; v++) {
		st->held[v] = -1;
		for (int k = 0; k < np; k++) {
			size_t count, bytes;

			nsl_stage_param_data(s, k, &count);
			bytes = (count * sizeof(float) + 63) / 64 * 64;
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
	for (int i = 0; st->buf != NULL && i < st->versions * st->nparams; i++)
		nsl_alloc_free(st->alloc, st->buf[i]);
	free(st->buf);
	free(st->master);
	*st = (struct nsl_stash){ 0 };
}

void nsl_stash_keep(struct nsl_stash *st, const struct nsl_stage *s, int64_t v)
{
	const int i = (int)(v % st->versions);

	for (int k = 0; k < st->nparams; k++) {
		size_t count;
		const float *w = nsl_stage_param_data(s, k, &count);

		memcpy(st->buf[i * st->nparams + k], w, count * sizeof(float));
	}
	st->held[i] = v;
}

int nsl_stash_use(struct nsl_stash *st, struct nsl_stage *s, int64_t v)
{
	const int i = (int)(v % st->versions);

	if (st->held[i] != v)
		return nsl_error_set(ENOENT, "weight stash: version %" PRId64 " is not kept (the %d kept end at %" PRId64 ")",
				     v, st->versions, st->held[i]);
	for (int k = 0; k < st->nparams; k++) {
		size_t count;

		if (!st->aside)
			st->master[k] = nsl_stage_param_data(s, k, &count);
		nsl_stage_param_set_data(s, k, st->buf[i * st->nparams + k]);
	}
	st->aside = true;
	return 0;
}

void nsl_stash_restore(struct nsl_stash *st, struct nsl_stage *s)
{
	if (!st->aside)
		return;
	for (int k = 0; k < st->nparams; k++)
		nsl_stage_param_set_data(s, k, st->master[k]);
	st->aside = false;
}
