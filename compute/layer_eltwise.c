/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Standalone activations on oneDNN eltwise: relu, tanh, sigmoid, gelu (the erf form, PyTorch's
 * default). relu, tanh and sigmoid take their gradient from the output y (the
 * *_use_dst_for_bwd algorithms, so x need not be kept); gelu's gradient needs x.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>

#include "nsplit/error.h"
#include "nsplit/model.h"
#include "layer_pvt.h"

struct eltwise_slot {
	int batch;
	dnnl_primitive_t fwd, bwd;
	dnnl_memory_t x, y, dy, dx;
};

struct eltwise {
	dnnl_alg_kind_t alg;
	bool from_dst;                /* backward reads y, not x */
	int nslots;
	struct eltwise_slot slot[NSL_LAYER_MAX_BATCHES];
};

/* One ops table serves four kinds; messages name the kind. */
static const char *kind_name(const struct nsl_layer *l)
{
	return nsl_layer_kind_name(l->spec.kind);
}

static void slot_free(struct eltwise_slot *s)
{
	dnnl_primitive_destroy(s->fwd);
	dnnl_primitive_destroy(s->bwd);
	dnnl_memory_destroy(s->x);
	dnnl_memory_destroy(s->y);
	dnnl_memory_destroy(s->dy);
	dnnl_memory_destroy(s->dx);
	memset(s, 0, sizeof(*s));
}

static struct eltwise_slot *slot_find(struct eltwise *e, int batch)
{
	for (int i = 0; i < e->nslots; i++)
		if (e->slot[i].batch == batch)
			return &e->slot[i];
	return NULL;
}

static int slot_build(struct nsl_layer *l, struct eltwise_slot *s, int batch)
{
	struct eltwise *e = l->priv;
	/* Element-wise, so the shape does not matter: one row of C*H*W per sample. */
	const dnnl_dims_t dims = { batch, nsl_shape_size(l->in) };
	dnnl_memory_desc_t md;
	dnnl_eltwise_desc_t desc;
	dnnl_primitive_desc_t fwd_pd = NULL;
	int rc;

	s->batch = batch;
	rc = nsl_dnnl_check(dnnl_memory_desc_init_by_tag(&md, 2, dims, dnnl_f32, dnnl_nc), "activation: descriptor");
	if (rc == 0)
		rc = nsl_dnnl_check(dnnl_eltwise_forward_desc_init(&desc, dnnl_forward_training, e->alg, &md, 0, 0),
				    "activation: forward descriptor");
	if (rc == 0)
		rc = nsl_layer_prim(l, &desc, NULL, NULL, &fwd_pd, &s->fwd, "forward primitive");
	if (rc == 0)
		rc = nsl_dnnl_check(dnnl_eltwise_backward_desc_init(&desc, e->alg, &md, &md, 0, 0),
				    "activation: backward descriptor");
	if (rc == 0)
		rc = nsl_layer_prim(l, &desc, NULL, fwd_pd, NULL, &s->bwd, "backward primitive");
	if (rc == 0)
		rc = nsl_layer_mem(l, &s->x, &md, NULL);
	if (rc == 0)
		rc = nsl_layer_mem(l, &s->y, &md, NULL);
	if (rc == 0)
		rc = nsl_layer_mem(l, &s->dy, &md, NULL);
	if (rc == 0)
		rc = nsl_layer_mem(l, &s->dx, &md, NULL);
	dnnl_primitive_desc_destroy(fwd_pd);
	return rc;
}

static int eltwise_prepare(struct nsl_layer *l, int batch)
{
	struct eltwise *e = l->priv;
	int rc;

	if (batch < 1 || batch > l->ctx->max_batch)
		return nsl_error_set(EINVAL, "layer %d (%s): batch %d outside 1..%d (the max batch)", l->index,
				     kind_name(l), batch, l->ctx->max_batch);
	if (slot_find(e, batch) != NULL)
		return 0;
	if (e->nslots == NSL_LAYER_MAX_BATCHES)
		return nsl_error_set(ENOSPC, "layer %d (%s): batch %d would be batch size number %d; at most %d",
				     l->index, kind_name(l), batch, e->nslots + 1, NSL_LAYER_MAX_BATCHES);
	rc = slot_build(l, &e->slot[e->nslots], batch);
	if (rc < 0) {
		slot_free(&e->slot[e->nslots]);
		return rc;
	}
	e->nslots++;
	return 0;
}

static int eltwise_init(struct nsl_layer *l)
{
	struct eltwise *e = calloc(1, sizeof(*e));

	if (e == NULL)
		return nsl_error_set(ENOMEM, "layer %d (%s): out of memory", l->index, kind_name(l));
	l->priv = e;
	l->out = l->in;
	e->from_dst = true;
	switch (l->spec.kind) {
	case NSL_LAYER_RELU: e->alg = dnnl_eltwise_relu_use_dst_for_bwd; break;
	case NSL_LAYER_TANH: e->alg = dnnl_eltwise_tanh_use_dst_for_bwd; break;
	case NSL_LAYER_SIGMOID: e->alg = dnnl_eltwise_logistic_use_dst_for_bwd; break;
	case NSL_LAYER_GELU:
		e->alg = dnnl_eltwise_gelu_erf;
		e->from_dst = false;
		break;
	default:
		return nsl_error_set(EINVAL, "layer %d: kind %d is not an activation", l->index, (int)l->spec.kind);
	}
	return 0;
}

static int eltwise_forward(struct nsl_layer *l, int batch, const float *x, float *y, bool train, uint64_t key)
{
	struct eltwise_slot *s = slot_find(l->priv, batch);
	int rc;

	(void)train;
	(void)key;
	if (s == NULL)
		return nsl_error_set(EINVAL, "layer %d (%s): batch %d was not prepared", l->index, kind_name(l), batch);
	rc = nsl_layer_bind(s->x, x);
	if (rc == 0)
		rc = nsl_layer_bind(s->y, y);
	if (rc == 0) {
		const dnnl_exec_arg_t args[] = { { DNNL_ARG_SRC, s->x }, { DNNL_ARG_DST, s->y } };

		rc = nsl_dnnl_exec(l->ctx->cc, s->fwd, 2, args, "activation forward");
	}
	return rc;
}

static int eltwise_backward(struct nsl_layer *l, int batch, const float *x, const float *y, const float *dy,
			    float *dx, bool accumulate)
{
	struct eltwise *e = l->priv;
	struct eltwise_slot *s = slot_find(e, batch);
	int rc;

	(void)accumulate;
	if (s == NULL)
		return nsl_error_set(EINVAL, "layer %d (%s): batch %d was not prepared", l->index, kind_name(l), batch);
	if (dx == NULL)
		return 0;
	rc = e->from_dst ? nsl_layer_bind(s->y, y) : nsl_layer_bind(s->x, x);
	if (rc == 0)
		rc = nsl_layer_bind(s->dy, dy);
	if (rc == 0)
		rc = nsl_layer_bind(s->dx, dx);
	if (rc == 0) {
		const dnnl_exec_arg_t args[] = {
			e->from_dst ? (dnnl_exec_arg_t){ DNNL_ARG_DST, s->y } : (dnnl_exec_arg_t){ DNNL_ARG_SRC, s->x },
			{ DNNL_ARG_DIFF_DST, s->dy },
			{ DNNL_ARG_DIFF_SRC, s->dx },
		};

		rc = nsl_dnnl_exec(l->ctx->cc, s->bwd, 3, args, "activation backward");
	}
	return rc;
}

static void eltwise_fini(struct nsl_layer *l)
{
	struct eltwise *e = l->priv;

	if (e == NULL)
		return;
	for (int i = 0; i < e->nslots; i++)
		slot_free(&e->slot[i]);
	free(e);
	l->priv = NULL;
}

const struct nsl_layer_ops nsl_layer_eltwise_ops = {
	.name = "activation",
	.init = eltwise_init,
	.prepare = eltwise_prepare,
	.forward = eltwise_forward,
	.backward = eltwise_backward,
	.fini = eltwise_fini,
};
