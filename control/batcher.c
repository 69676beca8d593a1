/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <string.h>

#include "nsplit/error.h"
#include "batcher.h"

int nsl_batcher_open(struct nsl_batcher *b, const char *path, const struct nsl_shard_reader_opts *o,
		     uint32_t limit)
{
	const struct nsl_shard_info *info;

	memset(b, 0, sizeof(*b));
	b->r = nsl_shard_reader_open(path, o);
	if (b->r == NULL)
		return -EINVAL;
	info = nsl_shard_reader_info(b->r);
	b->path = path;
	b->shape = info->shape;
	b->classes = info->classes;
	b->sample_bytes = nsl_shape_size(info->shape);
	b->limit = (limit == 0 || limit > info->count) ? (uint32_t)info->count : limit;
	return 0;
}

void nsl_batcher_close(struct nsl_batcher *b)
{
	nsl_shard_reader_free(b->r);
	b->r = NULL;
}

int nsl_batcher_begin_epoch(struct nsl_batcher *b, uint64_t epoch)
{
	b->nrecs = b->pos = 0;
	return nsl_shard_reader_begin_epoch(b->r, epoch);
}

int nsl_batcher_next(struct nsl_batcher *b, int batch, float *x, int32_t *labels)
{
	int n = 0;

	while (n < batch) {
		const struct nsl_record *rec;

		if (b->pos == b->nrecs) {
			/* Records point into the reader's window: convert each before asking for more. */
			int got = nsl_shard_reader_next(b->r, b->recs, NSL_BATCHER_CHUNK);

			if (got < 0)
				return got;
			if (got == 0)
				break;
			b->nrecs = got;
			b->pos = 0;
		}
		rec = &b->recs[b->pos++];
		/* The next record is a random place in the reader's window: start pulling it in now. */
		if (b->pos < b->nrecs)
			for (int64_t off = 0; off < b->sample_bytes; off += 64)
				__builtin_prefetch(b->recs[b->pos].sample + off);
		if (rec->index >= b->limit)
			continue;
		if (rec->label >= b->classes)
			return nsl_error_set(EINVAL, "%s: record %u has label %u but the shard declares %u classes",
					     b->path, rec->index, rec->label, b->classes);
		float *row = x + (int64_t)n * b->sample_bytes;

		/* Division, not multiplication by 1/255, so inputs match torchvision's ToTensor bit for bit. */
		for (int64_t i = 0; i < b->sample_bytes; i++)
			row[i] = (float)rec->sample[i] / 255.0f;
		labels[n++] = (int32_t)rec->label;
	}
	return n;
}
