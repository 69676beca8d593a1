/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Turns a shard reader's records into training batches: pixels scaled to [0, 1] as f32 rows and
 * int32 labels. `limit` keeps only records whose index in the shard is below it, so a short run
 * trains on a fixed subset (the first `limit` samples) in the reader's seeded order.
 */
#ifndef NSL_BATCHER_H
#define NSL_BATCHER_H

#include <stdbool.h>
#include <stdint.h>

#include "nsplit/model.h"
#include "nsplit/shard.h"

#define NSL_BATCHER_CHUNK 256

struct nsl_batcher {
	struct nsl_shard_reader *r;
	const char *path;
	uint32_t limit;          /* records used per epoch */
	int64_t sample_bytes;
	struct nsl_shape shape;
	uint32_t classes;
	struct nsl_record recs[NSL_BATCHER_CHUNK];
	int nrecs, pos;          /* records fetched and consumed in recs */
};

/*
 * Open `path` for streaming. limit 0 = every record. Returns 0 or a negative errno (message
 * names the file).
 */
int nsl_batcher_open(struct nsl_batcher *b, const char *path, const struct nsl_shard_reader_opts *o,
		     uint32_t limit);

void nsl_batcher_close(struct nsl_batcher *b);

int nsl_batcher_begin_epoch(struct nsl_batcher *b, uint64_t epoch);

/*
 * Fill up to `batch` rows of x (batch x C*H*W floats) and labels; returns the rows filled (less
 * than batch only at the end of the epoch, 0 after it) or a negative errno.
 */
int nsl_batcher_next(struct nsl_batcher *b, int batch, float *x, int32_t *labels);

#endif
