/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Inverted dropout in plain C (oneDNN 2.6 has no dropout): in training each element is kept with
 * probability 1 - p and scaled by 1 / (1 - p); in evaluation the layer is the identity.
 *
 * The keep bit of (row r, element e) is a hash of (job seed, layer number, key, r, e) and of
 * nothing else, so the same sample sees the same mask whichever peer runs the layer and however
 * the model is split; the caller makes `key` unique per (step, micro-batch).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "nsplit/alloc.h"
#include "nsplit/error.h"
#include "nsplit/rng.h"
#include "layer_pvt.h"

struct dropout {
	uint32_t threshold;           /* keep when the top 24 bits of the hash are >= this */
	float scale;                  /* 1 / (1 - p), 0 when everything is dropped */
};

static int dropout_init(struct nsl_layer *l)
{
	const float p = l->spec.p;
	const size_t n = (size_t)l->ctx->max_batch * (size_t)nsl_shape_size(l->in);
	struct dropout *d;

	/* Written so that NaN fails too. */
	if (!(p >= 0.0f && p <= 1.0f))
		return nsl_error_set(EINVAL, "layer %d (dropout): probability %g outside [0, 1] (dropout:P)", l->index,
				     (double)p);
	d = nsl_alloc_zeroed(&nsl_allocator_libc, sizeof(*d), "dropout state");
	if (d == NULL)
		return nsl_error_prefix(ENOMEM, "layer %d (dropout)", l->index);
	l->priv = d;
	l->out = l->in;
	/* 24 bits, as nsl_rng_uniform: u = h >> 40 in [0, 2^24), kept when u >= p * 2^24. */
	d->threshold = (uint32_t)((double)p * (double)(1u << 24) + 0.5);
	d->scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
	/* The mask, 1 = kept: max_batch x C*H*W bytes, from the training forward. */
	l->saved_bytes = n;
	return 0;
}

static int dropout_prepare(struct nsl_layer *l, int batch)
{
	if (batch < 1 || batch > l->ctx->max_batch)
		return nsl_error_set(EINVAL, "layer %d (dropout): batch %d outside 1..%d (the max batch)", l->index,
				     batch, l->ctx->max_batch);
	return 0;
}

static int dropout_forward(struct nsl_layer *l, int batch, const float *x, float *y, bool train, uint64_t key)
{
	struct dropout *d = l->priv;
	const int64_t n = nsl_shape_size(l->in);
	const uint64_t base = nsl_hash2(nsl_hash2(l->seed, (uint64_t)l->index), key);

	if (!train) {
		if (x != y)
			memcpy(y, x, (size_t)batch * (size_t)n * sizeof(float));
		return 0;
	}
#pragma omp parallel for schedule(static)
	for (int r = 0; r < batch; r++) {
		const uint64_t row = nsl_hash2(base, (uint64_t)r);
		uint8_t *m = (uint8_t *)l->saved + (size_t)r * (size_t)n;
		const float *xr = x + (size_t)r * (size_t)n;
		float *yr = y + (size_t)r * (size_t)n;

		for (int64_t e = 0; e < n; e++) {
			m[e] = (uint32_t)(nsl_hash2(row, (uint64_t)e) >> 40) >= d->threshold;
			yr[e] = m[e] ? xr[e] * d->scale : 0.0f;
		}
	}
	return 0;
}

static int dropout_backward(struct nsl_layer *l, int batch, const float *x, const float *y, const float *dy,
			    float *dx, bool accumulate)
{
	struct dropout *d = l->priv;
	const uint8_t *mask = l->saved;
	const size_t n = (size_t)batch * (size_t)nsl_shape_size(l->in);

	(void)x;
	(void)y;
	(void)accumulate;
	if (dx == NULL)
		return 0;
	for (size_t i = 0; i < n; i++)
		dx[i] = mask[i] ? dy[i] * d->scale : 0.0f;
	return 0;
}

static void dropout_fini(struct nsl_layer *l)
{
	struct dropout *d = l->priv;

	if (d == NULL)
		return;
	nsl_alloc_free(&nsl_allocator_libc, d);
	l->priv = NULL;
}

const struct nsl_layer_ops nsl_layer_dropout_ops = {
	.name = "dropout",
	.init = dropout_init,
	.prepare = dropout_prepare,
	.forward = dropout_forward,
	.backward = dropout_backward,
	.fini = dropout_fini,
};
