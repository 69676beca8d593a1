/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A chain: a model cut into stages that run one after another on this thread. With one stage it
 * is the single-peer reference trainer; with several it proves that cutting changes nothing.
 * Distributed modes put the same stages on different peers.
 */
#ifndef NSL_CHAIN_H
#define NSL_CHAIN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "nsplit/compute.h"
#include "nsplit/model.h"
#include "nsplit/optim.h"
#include "nsplit/stage.h"
#include "nsplit/stash.h"

#define NSL_CHAIN_MAX_STAGES 64

struct nsl_chain {
	const struct nsl_model *m;
	int nstages;
	int starts[NSL_CHAIN_MAX_STAGES + 1];
	struct nsl_stage *stages[NSL_CHAIN_MAX_STAGES];
	int max_batch;
	float *dlogits;       /* max_batch x classes */
};

/*
 * Build the stages [starts[i], starts[i+1]). `defer`: weight gradients wait for the step and are
 * computed over the whole batch at once (nsl_stage_config.defer_rows), as the N-split peers do,
 * so a chain trained on micro-batches sums them in the peers' order. Returns 0 or a negative
 * errno with a message.
 */
int nsl_chain_init(struct nsl_chain *c, struct nsl_compute *cc, const struct nsl_model *m, const int *starts,
		   int nstages, int max_batch, uint64_t seed, const struct nsl_optim_config *optim, bool defer);

void nsl_chain_fini(struct nsl_chain *c);

int nsl_chain_prepare(struct nsl_chain *c, int batch);

/*
 * One optimizer step on a batch of `batch` rows: forward, softmax cross-entropy, backward (loss
 * scaled by 1/batch), step with learning rate lr. Adds the summed loss and correct count.
 * micro > 0 and < batch: forward and backward run on micro-batches of that many rows, in order,
 * accumulating gradients, as a pipeline of peers does (same sums in the same order).
 * stash (one per stage, or NULL): the batch ran on a stashed version; the step updates the
 * newest weights, into a new version (nsl_stash_step), labelled key + 1.
 */
int nsl_chain_train_batch(struct nsl_chain *c, int batch, int micro, const float *x, const int32_t *labels,
			  uint64_t key, float lr, double *loss_sum, int *correct, struct nsl_stash *stash);

/* Inference forward; *logits is stage-owned, batch x classes. */
int nsl_chain_predict(struct nsl_chain *c, int batch, const float *x, const float **logits);

/* Write every parameter as safetensors (layer<i>.weight/bias, PyTorch layouts, model metadata). */
int nsl_chain_save(const struct nsl_chain *c, const char *path);

/* Load every parameter by name from a safetensors file; refuses a model or shape mismatch. */
int nsl_chain_load(struct nsl_chain *c, const char *path);

#endif
