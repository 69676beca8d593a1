/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <limits.h>
#include <stdio.h>

#include "nsplit/error.h"
#include "shard_pvt.h"

int nsl_shard_write_parts(const struct nsl_dataset *d, const char *dir, const char *stem, int parts,
			  bool single_name)
{
	struct nsl_shard_info info = {
		.shape = d->shape,
		.dtype = NSL_SHARD_DTYPE_U8,
		.label_type = NSL_SHARD_LABEL_U8,
		.classes = d->classes,
	};
	uint64_t sample_bytes = (uint64_t)nsl_shape_size(d->shape);
	uint32_t per;

	if (parts < 1 || (uint32_t)parts > d->count)
		return nsl_error_set(EINVAL, "cannot cut %u samples into %d shards", d->count, parts);
	per = d->count / (uint32_t)parts;
	for (int p = 0; p < parts; p++) {
		char path[PATH_MAX];
		struct nsl_shard_writer *w;
		int n, rc;

		if (parts == 1 && single_name)
			n = snprintf(path, sizeof(path), "%s/%s.nsl", dir, stem);
		else
			n = snprintf(path, sizeof(path), "%s/%s-%d-of-%d.nsl", dir, stem, p, parts);
		if (n < 0 || (size_t)n >= sizeof(path))
			return nsl_error_set(ENAMETOOLONG, "shard path too long under %s", dir);
		w = nsl_shard_writer_open(path, &info);
		if (w == NULL)
			return -EINVAL;
		for (uint32_t i = (uint32_t)p * per; i < (uint32_t)(p + 1) * per; i++) {
			rc = nsl_shard_writer_append(w, d->samples + i * sample_bytes, d->labels[i]);
			if (rc < 0) {
				nsl_shard_writer_abort(w);
				return rc;
			}
		}
		if ((rc = nsl_shard_writer_close(w)) < 0)
			return rc;
	}
	return 0;
}
