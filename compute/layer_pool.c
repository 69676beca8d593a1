/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Max and average pooling on oneDNN: K x K windows, stride K, no padding, so the output is
 * floor((H - K) / K) + 1 (PyTorch's nn.MaxPool2d(K) / nn.AvgPool2d(K)). Max pooling keeps the
 * forward's workspace (where each maximum came from) for its backward, in l->saved.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include <oneapi/dnnl/dnnl.h>

#include "nsplit/alloc.h"
#include "nsplit/error.h"
#include "prim_pvt.h"

struct pool {
	dnnl_alg_kind_t alg;
	bool max;                     /* has a workspace (l->saved) */
	struct nsl_prim_table prims;
};

static const dnnl_dims_t pool_pad = { 0, 0 };

/* Plain NCHW source and output of `batch` rows and the forward descriptor between them. */
static int fwd_desc(struct nsl_layer *l, int batch, dnnl_memory_desc_t *xmd, dnnl_memory_desc_t *ymd,
		    dnnl_pooling_desc_t *desc)
{
	struct pool *p = l->priv;
	const dnnl_dims_t xd = { batch, l->in.c, l->in.h, l->in.w };
	const dnnl_dims_t yd = { batch, l->out.c, l->out.h, l->out.w };
	const dnnl_dims_t k = { l->spec.kh, l->spec.kw };
	int rc;

	rc = nsl_dnnl_check(dnnl_memory_desc_init_by_tag(xmd, 4, xd, dnnl_f32, dnnl_nchw), "pooling: source");
	if (rc == 0)
		rc = nsl_dnnl_check(dnnl_memory_desc_init_by_tag(ymd, 4, yd, dnnl_f32, dnnl_nchw), "pooling: output");
	if (rc == 0)
		rc = nsl_dnnl_check(dnnl_pooling_forward_desc_init(desc, dnnl_forward_training, p->alg, xmd, ymd, k, k,
								   pool_pad, pool_pad),
				    "pooling: forward descriptor");
	return rc < 0 ? nsl_error_prefix(rc, "layer %d (%s)", l->index, l->ops->name) : 0;
}

static int slot_build(struct nsl_layer *l, struct nsl_prim_slot *s, int batch)
{
	struct pool *p = l->priv;
	const dnnl_dims_t k = { l->spec.kh, l->spec.kw };
	dnnl_memory_desc_t xmd, ymd;
	dnnl_pooling_desc_t desc;
	dnnl_primitive_desc_t fwd_pd = NULL;
	int rc;

	rc = fwd_desc(l, batch, &xmd, &ymd, &desc);
	if (rc == 0)
		rc = nsl_layer_prim(l, &desc, NULL, NULL, &fwd_pd, &s->fwd, "forward primitive");
	if (rc == 0 && p->max)
		rc = nsl_layer_mem(l, &s->ws, dnnl_primitive_desc_query_md(fwd_pd, dnnl_query_workspace_md, 0), NULL);
	if (rc == 0)
		rc = nsl_dnnl_check(dnnl_pooling_backward_desc_init(&desc, p->alg, &xmd, &ymd, k, k, pool_pad,
								    pool_pad),
				    "pooling: backward descriptor");
	if (rc == 0)
		rc = nsl_layer_prim(l, &desc, NULL, fwd_pd, NULL, &s->bwd, "backward primitive");
	if (rc == 0)
		rc = nsl_prim_slot_acts(l, s, &xmd, &ymd);
	dnnl_primitive_desc_destroy(fwd_pd);
	return rc;
}

static int pool_prepare(struct nsl_layer *l, int batch)
{
	struct pool *p = l->priv;

	return nsl_prim_prepare(l, &p->prims, batch, slot_build);
}

static int pool_init(struct nsl_layer *l, dnnl_alg_kind_t alg)
{
	const int k = l->spec.kh;
	struct pool *p;
	dnnl_memory_desc_t xmd, ymd;
	dnnl_pooling_desc_t desc;
	dnnl_primitive_desc_t pd = NULL;
	size_t bytes;
	int rc;

	if (k < 1 || l->spec.kw != k || k > l->in.h || k > l->in.w)
		return nsl_error_set(EINVAL, "layer %d (%s): %dx%d window on a %dx%d input; give a square window "
				     "no larger than the input (%s:K)",
				     l->index, l->ops->name, l->spec.kh, l->spec.kw, l->in.h, l->in.w, l->ops->name);
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return nsl_error_set(ENOMEM, "layer %d (%s): out of memory", l->index, l->ops->name);
	l->priv = p;
	p->alg = alg;
	l->out = (struct nsl_shape){ l->in.c, (l->in.h - k) / k + 1, (l->in.w - k) / k + 1 };
	if (alg != dnnl_pooling_max)
		return 0;
	p->max = true;
	rc = fwd_desc(l, l->ctx->max_batch, &xmd, &ymd, &desc);
	if (rc == 0)
		rc = nsl_dnnl_check(dnnl_primitive_desc_create(&pd, &desc, NULL, l->ctx->cc->engine, NULL),
				    "max pooling: forward primitive descriptor");
	if (rc < 0)
		return nsl_error_prefix(rc, "layer %d (%s)", l->index, l->ops->name);
	bytes = dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(pd, dnnl_query_workspace_md, 0));
	dnnl_primitive_desc_destroy(pd);
	l->saved_bytes = bytes;
	return 0;
}

static int maxpool_init(struct nsl_layer *l)
{
	return pool_init(l, dnnl_pooling_max);
}

static int avgpool_init(struct nsl_layer *l)
{
	return pool_init(l, dnnl_pooling_avg_exclude_padding);
}

static int pool_forward(struct nsl_layer *l, int batch, const float *x, float *y, bool train, uint64_t key)
{
	struct pool *p = l->priv;
	struct nsl_prim_slot *s;
	int rc;

	(void)train;
	(void)key;
	rc = nsl_prim_get(l, &p->prims, batch, &s);
	if (rc == 0 && s->ws != NULL)
		rc = nsl_layer_bind(s->ws, l->saved);
	/* Always training (max pooling fills its workspace): it costs little, and backward may follow any forward. */
	if (rc == 0)
		rc = nsl_prim_exec_fwd(l->ctx->cc, s, x, y, NULL, 0, "pooling forward");
	return rc;
}

static int pool_backward(struct nsl_layer *l, int batch, const float *x, const float *y, const float *dy,
			 float *dx, bool accumulate)
{
	struct pool *p = l->priv;
	struct nsl_prim_slot *s;
	int rc;

	(void)x;
	(void)y;
	(void)accumulate;
	rc = nsl_prim_get(l, &p->prims, batch, &s);
	if (rc < 0)
		return rc;
	if (dx == NULL)
		return 0;
	if (s->ws != NULL && (rc = nsl_layer_bind(s->ws, l->saved)) < 0)
		return rc;
	return nsl_prim_exec_bwd(l->ctx->cc, s, dy, dx, NULL, 0, "pooling backward");
}

static void pool_fini(struct nsl_layer *l)
{
	struct pool *p = l->priv;

	if (p == NULL)
		return;
	nsl_prim_table_free(&p->prims);
	free(p);
	l->priv = NULL;
}

const struct nsl_layer_ops nsl_layer_maxpool_ops = {
	.name = "maxpool",
	.init = maxpool_init,
	.prepare = pool_prepare,
	.forward = pool_forward,
	.backward = pool_backward,
	.fini = pool_fini,
};

const struct nsl_layer_ops nsl_layer_avgpool_ops = {
	.name = "avgpool",
	.init = avgpool_init,
	.prepare = pool_prepare,
	.forward = pool_forward,
	.backward = pool_backward,
	.fini = pool_fini,
};
