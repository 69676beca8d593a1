/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Standalone activations on oneDNN eltwise: relu, tanh, sigmoid, gelu (the erf form, PyTorch's
 * default). relu, tanh and sigmoid take their gradient from the output y (the
 * *_use_dst_for_bwd algorithms, so x need not be kept); gelu's gradient needs x.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include <oneapi/dnnl/dnnl.h>

#include "nsplit/error.h"
#include "nsplit/model.h"
#include "prim_pvt.h"

struct eltwise {
	dnnl_alg_kind_t alg;
	bool from_dst;                /* backward reads y, not x */
	struct nsl_prim_table prims;
};

static int slot_build(struct nsl_layer *l, struct nsl_prim_slot *s, int batch)
{
	struct eltwise *e = l->priv;
	/* Element-wise, so the shape does not matter: one row of C*H*W per sample. */
	const dnnl_dims_t dims = { batch, nsl_shape_size(l->in) };
	dnnl_memory_desc_t md;
	dnnl_eltwise_desc_t desc;
	dnnl_primitive_desc_t fwd_pd = NULL;
	int rc;

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
		rc = nsl_prim_slot_acts(l, s, &md, &md);
	dnnl_primitive_desc_destroy(fwd_pd);
	return rc;
}

static int eltwise_prepare(struct nsl_layer *l, int batch)
{
	struct eltwise *e = l->priv;

	return nsl_prim_prepare(l, &e->prims, batch, slot_build);
}

static int eltwise_init(struct nsl_layer *l)
{
	struct eltwise *e = calloc(1, sizeof(*e));

	if (e == NULL)
		return nsl_error_set(ENOMEM, "layer %d (%s): out of memory", l->index,
				     nsl_layer_kind_name(l->spec.kind));
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
	struct eltwise *e = l->priv;
	struct nsl_prim_slot *s;
	int rc;

	(void)train;
	(void)key;
	rc = nsl_prim_get(l, &e->prims, batch, &s);
	if (rc == 0)
		rc = nsl_prim_exec_fwd(l->ctx->cc, s, x, y, NULL, 0, "activation forward");
	return rc;
}

static int eltwise_backward(struct nsl_layer *l, int batch, const float *x, const float *y, const float *dy,
			    float *dx, bool accumulate)
{
	struct eltwise *e = l->priv;
	struct nsl_prim_slot *s;
	int rc;

	(void)accumulate;
	rc = nsl_prim_get(l, &e->prims, batch, &s);
	if (rc < 0)
		return rc;
	if (dx == NULL)
		return 0;
	rc = e->from_dst ? nsl_layer_bind(s->y, y) : nsl_layer_bind(s->x, x);
	if (rc == 0) {
		const dnnl_exec_arg_t from = e->from_dst ? (dnnl_exec_arg_t){ DNNL_ARG_DST, s->y }
							  : (dnnl_exec_arg_t){ DNNL_ARG_SRC, s->x };

		rc = nsl_prim_exec_bwd(l->ctx->cc, s, dy, dx, &from, 1, "activation backward");
	}
	return rc;
}

static void eltwise_fini(struct nsl_layer *l)
{
	struct eltwise *e = l->priv;

	if (e == NULL)
		return;
	nsl_prim_table_free(&e->prims);
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
