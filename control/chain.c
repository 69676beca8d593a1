/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nsplit/error.h"
#include "nsplit/loss.h"
#include "nsplit/safetensors.h"
#include "chain.h"

int nsl_chain_init(struct nsl_chain *c, struct nsl_compute *cc, const struct nsl_model *m, const int *starts,
		   int nstages, int max_batch, uint64_t seed, const struct nsl_optim_config *optim, bool defer)
{
	memset(c, 0, sizeof(*c));
	if (nstages < 1 || nstages > NSL_CHAIN_MAX_STAGES)
		return nsl_error_set(EINVAL, "%d stages: between 1 and %d are supported", nstages, NSL_CHAIN_MAX_STAGES);
	c->m = m;
	c->nstages = nstages;
	c->max_batch = max_batch;
	memcpy(c->starts, starts, (size_t)(nstages + 1) * sizeof(int));
	for (int i = 0; i < nstages; i++) {
		struct nsl_stage_config cfg = {
			.model = m, .first = starts[i], .last = starts[i + 1], .max_batch = max_batch,
			.seed = seed, .optim = *optim, .alloc = &nsl_allocator_libc, .defer_rows = defer ? max_batch : 0,
		};

		c->stages[i] = nsl_stage_create(cc, &cfg);
		if (c->stages[i] == NULL) {
			nsl_chain_fini(c);
			return -EINVAL;
		}
	}
	c->dlogits = calloc((size_t)max_batch * (size_t)m->classes, sizeof(float));
	if (c->dlogits == NULL) {
		nsl_chain_fini(c);
		return nsl_error_set(ENOMEM, "out of memory for the loss gradient");
	}
	return 0;
}

void nsl_chain_fini(struct nsl_chain *c)
{
	for (int i = 0; i < c->nstages; i++)
		nsl_stage_free(c->stages[i]);
	free(c->dlogits);
	memset(c, 0, sizeof(*c));
}

int nsl_chain_prepare(struct nsl_chain *c, int batch)
{
	for (int i = 0; i < c->nstages; i++) {
		int rc = nsl_stage_prepare(c->stages[i], batch);

		if (rc < 0)
			return rc;
	}
	return 0;
}

static int forward_all(struct nsl_chain *c, int batch, const float *x, const float **y, bool train, uint64_t key)
{
	const float *in = x;

	for (int i = 0; i < c->nstages; i++) {
		int rc = nsl_stage_forward(c->stages[i], batch, in, &in, train, key);

		if (rc < 0)
			return rc;
	}
	*y = in;
	return 0;
}

int nsl_chain_train_batch(struct nsl_chain *c, int batch, int micro, const float *x, const int32_t *labels,
			  uint64_t key, float lr, double *loss_sum, int *correct, struct nsl_stash *stash)
{
	const int64_t in = nsl_shape_size(c->m->input);
	int rc = 0;

	if (micro <= 0 || micro > batch)
		micro = batch;
	/* Micro-batches in order, each scaled by 1/batch: their gradients add up to the batch's. */
	for (int r = 0; r < batch && rc == 0; r += micro) {
		const int rows = batch - r < micro ? batch - r : micro;
		const float *logits, *g;
		double loss = 0;

		rc = forward_all(c, rows, x + r * in, &logits, true, key);
		if (rc == 0)
			rc = nsl_softmax_xent(logits, labels + r, rows, c->m->classes, 1.0f / (float)batch, c->dlogits,
					      correct, &loss);
		*loss_sum += loss;
		g = c->dlogits;
		for (int i = c->nstages - 1; i >= 0 && rc == 0; i--)
			rc = nsl_stage_backward_rows(c->stages[i], 0, r, rows, g, &g);
	}
	for (int i = 0; i < c->nstages && rc == 0; i++)
		rc = stash ? nsl_stash_step(&stash[i], c->stages[i], lr, (int64_t)key + 1) : nsl_stage_step(c->stages[i], lr);
	return rc;
}

int nsl_chain_predict(struct nsl_chain *c, int batch, const float *x, const float **logits)
{
	return forward_all(c, batch, x, logits, false, 0);
}

static int count_params(const struct nsl_chain *c)
{
	int n = 0;

	for (int i = 0; i < c->nstages; i++)
		n += nsl_stage_param_count(c->stages[i]);
	return n;
}

int nsl_chain_save(const struct nsl_chain *c, const char *path)
{
	int n = count_params(c), k = 0, rc = 0;
	struct nsl_st_tensor *t = calloc((size_t)(n ? n : 1), sizeof(*t));
	struct nsl_param_info *info = calloc((size_t)(n ? n : 1), sizeof(*info));
	char shape[64];
	const char *meta[6];

	if (t == NULL || info == NULL) {
		rc = nsl_error_set(ENOMEM, "%s: out of memory", path);
		goto out;
	}
	for (int i = 0; i < c->nstages; i++) {
		for (int q = 0; q < nsl_stage_param_count(c->stages[i]); q++, k++) {
			float *plain;

			nsl_stage_param_info(c->stages[i], q, &info[k]);
			plain = malloc((size_t)info[k].numel * sizeof(float));
			if (plain == NULL) {
				rc = nsl_error_set(ENOMEM, "%s: out of memory", path);
				goto out;
			}
			t[k].data = plain;
			t[k].name = info[k].name;
			t[k].ndim = info[k].ndim;
			memcpy(t[k].dims, info[k].dims, sizeof(t[k].dims));
			rc = nsl_stage_param_export(c->stages[i], q, plain);
			if (rc < 0)
				goto out;
		}
	}
	snprintf(shape, sizeof(shape), "%dx%dx%d", c->m->input.c, c->m->input.h, c->m->input.w);
	meta[0] = "model";
	meta[1] = c->m->text;
	meta[2] = "input";
	meta[3] = shape;
	meta[4] = "format";
	meta[5] = "pt";
	rc = nsl_st_write(path, t, n, meta, 3);
out:
	for (int i = 0; t && i < n; i++)
		free((void *)t[i].data);
	free(t);
	free(info);
	return rc;
}

int nsl_chain_load(struct nsl_chain *c, const char *path)
{
	struct nsl_st_file *f = nsl_st_open(path);
	const char *model;
	int rc = 0;

	if (f == NULL)
		return -EINVAL;
	model = nsl_st_meta(f, "model");
	if (model != NULL && strcmp(model, c->m->text) != 0) {
		rc = nsl_error_set(EINVAL, "%s: weights are for model \"%s\", not \"%s\"", path, model, c->m->text);
		goto out;
	}
	for (int i = 0; i < c->nstages; i++) {
		for (int q = 0; q < nsl_stage_param_count(c->stages[i]); q++) {
			struct nsl_param_info info;
			struct nsl_st_tensor t;
			bool same;

			nsl_stage_param_info(c->stages[i], q, &info);
			rc = nsl_st_find(f, info.name, &t);
			if (rc < 0)
				goto out;
			same = t.ndim == info.ndim;
			for (int d = 0; same && d < t.ndim; d++)
				same = t.dims[d] == info.dims[d];
			if (!same) {
				rc = nsl_error_set(EINVAL, "%s: tensor %s has another shape than the model's", path,
						   info.name);
				goto out;
			}
			rc = nsl_stage_param_import(c->stages[i], q, t.data);
			if (rc < 0)
				goto out;
		}
	}
out:
	nsl_st_close(f);
	return rc;
}
