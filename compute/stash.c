/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "nsplit/error.h"
#include "nsplit/stash.h"

int nsl_stash_init(struct nsl_stash *st, const struct nsl_stage *s, int versions)
{
	*st = (struct nsl_stash){ 0 };
	if (versions < 1 || versions > NSL_STASH_MAX)
		return nsl_error_set(EINVAL, "weight stash: %d versions; 1..%d", versions, NSL_STASH_MAX);
	st->floats = nsl_stage_weights_floats(s);
	st->versions = versions;
	st->buf = malloc((st->floats ? st->floats : 1) * (size_t)(versions + 1) * sizeof(float));
	if (st->buf == NULL)
		return nsl_error_set(ENOMEM, "weight stash: no memory for %d copies of %zu floats", versions + 1,
				     st->floats);
	for (int i = 0; i < versions; i++)
		st->held[i] = -1;
	return 0;
}

void nsl_stash_fini(struct nsl_stash *st)
{
	free(st->buf);
	*st = (struct nsl_stash){ 0 };
}

void nsl_stash_keep(struct nsl_stash *st, const struct nsl_stage *s, int64_t v)
{
	int i = (int)(v % st->versions);

	nsl_stage_weights_get(s, st->buf + (size_t)i * st->floats);
	st->held[i] = v;
}

int nsl_stash_use(struct nsl_stash *st, struct nsl_stage *s, int64_t v)
{
	int i = (int)(v % st->versions);

	if (st->held[i] != v)
		return nsl_error_set(ENOENT, "weight stash: version %" PRId64 " is not kept (the %d kept end at %" PRId64 ")",
				     v, st->versions, st->held[i]);
	if (!st->aside)
		nsl_stage_weights_get(s, st->buf + (size_t)st->versions * st->floats);
	nsl_stage_weights_set(s, st->buf + (size_t)i * st->floats);
	st->aside = true;
	return 0;
}

void nsl_stash_restore(struct nsl_stash *st, struct nsl_stage *s)
{
	if (!st->aside)
		return;
	nsl_stage_weights_set(s, st->buf + (size_t)st->versions * st->floats);
	st->aside = false;
}
