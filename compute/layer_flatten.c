/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Flatten: C x H x W becomes (C*H*W) x 1 x 1. NCHW rows are already those bytes, so both
 * directions are a copy; the layer exists only so a model can name a cut there.
 */
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "layer_pvt.h"

static int flatten_init(struct nsl_layer *l)
{
	l->out = (struct nsl_shape){ (int)nsl_shape_size(l->in), 1, 1 };
	return 0;
}

static int flatten_prepare(struct nsl_layer *l, int batch)
{
	(void)l;
	(void)batch;
	return 0;
}

static int flatten_forward(struct nsl_layer *l, int batch, const float *x, float *y, bool train, uint64_t key)
{
	(void)train;
	(void)key;
	if (x != y)
		memcpy(y, x, (size_t)batch * (size_t)nsl_shape_size(l->in) * sizeof(float));
	return 0;
}

static int flatten_backward(struct nsl_layer *l, int batch, const float *x, const float *y, const float *dy,
			    float *dx, bool accumulate)
{
	(void)x;
	(void)y;
	(void)accumulate;
	if (dx != NULL)
		memcpy(dx, dy, (size_t)batch * (size_t)nsl_shape_size(l->in) * sizeof(float));
	return 0;
}

static void flatten_fini(struct nsl_layer *l)
{
	(void)l;
}

const struct nsl_layer_ops nsl_layer_flatten_ops = {
	.name = "flatten",
	.init = flatten_init,
	.prepare = flatten_prepare,
	.forward = flatten_forward,
	.backward = flatten_backward,
	.fini = flatten_fini,
};
