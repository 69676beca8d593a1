/* SPDX-License-Identifier: BSD-3-Clause */
/* Test-set evaluation shared by `nsplit train` (after each epoch) and `nsplit eval`. */
#ifndef NSL_EVALUATE_H
#define NSL_EVALUATE_H

#include <stdint.h>
#include <stdio.h>

#include "batcher.h"
#include "chain.h"

struct nsl_eval_result {
	double loss;           /* mean cross-entropy */
	double accuracy;
	int64_t correct, total;
};

/*
 * Run inference over one unshuffled pass of b in batches of `batch` rows, using x and labels as
 * scratch (batch rows). If dump is not NULL, the first dump_limit rows' logits are written to it
 * as little-endian f32 [rows, classes]. Returns 0 or a negative errno.
 */
int nsl_evaluate(struct nsl_chain *c, struct nsl_batcher *b, int batch, float *x, int32_t *labels,
		 FILE *dump, int64_t dump_limit, struct nsl_eval_result *out);

#endif
