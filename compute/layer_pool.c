/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Max and average pooling on oneDNN: K x K windows, stride K, no padding, so the output is
 * floor((H - K) / K) + 1 (PyTorch's nn.MaxPool2d(K) / nn.AvgPool2d(K)). Max pooling keeps the
 * forward's workspace (where each maximum came from) for its backward.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>

#include "nsplit/alloc.h"
#include "nsplit/error.h"
#include "layer_pvt.h"

struct pool_slot {
	int batch;
	dnnl_primitive_t fwd, bwd;
	dnnl_memory_t x, y, dy, dx, ws;
};

struct pool {
	dnnl_alg_kind_t alg;
	void *ws;                     /* max pooling's workspace, sized for max_batch; else NULL */
	int nslots;
	struct pool_slot slot[NSL_LAYER_MAX_BATCHES];
};

static const dnnl_dims_t pool_pad = { 0, 0 };

static void slot_free(struct pool_slot *s)
{
	dnnl_primitive_destroy(s->fwd);
	dnnl_primitive_destroy(s->bwd);
	dnnl_memory_destroy(s->x);
	dnnl_memory_destroy(s->y);
	dnnl_memory_destroy(s->dy);
	dnnl_memory_destroy(s->dx);
	dnnl_memory_destroy(s->ws);
	memset(s, 0, sizeof(*s));
}

static struct pool_slot *slot_find(struct pool *p, int batch)
{
	for (int i = 0; i < p->nslots; i++)
		if (p->slot[i].batch == batch)
			return &p->slot[i];
	return NULL;
}

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

static int slot_build(struct nsl_layer *l, struct pool_slot *s, int batch)
{
	struct pool *p = l->priv;
	const dnnl_dims_t k = { l->spec.kh, l->spec.kw };
	dnnl_memory_desc_t xmd, ymd;
	dnnl_pooling_desc_t desc;
	dnnl_primitive_desc_t fwd_pd = NULL;
	int rc;

	s->batch = batch;
	rc = fwd_desc(l, batch, &xmd, &ymd, &desc);
	if (rc == 0)
		rc = nsl_layer_prim(l, &desc, NULL, NULL, &fwd_pd, &s->fwd, "forward primitive");
	if (rc == 0 && p->ws != NULL)
		rc = nsl_layer_mem(l, &s->ws, dnnl_primitive_desc_query_md(fwd_pd, dnnl_query_workspace_md, 0), p->ws);
	if (rc == 0)
		rc = nsl_dnnl_check(dnnl_pooling_backward_desc_init(&desc, p->alg, &xmd, &ymd, k, k, pool_pad,
								    pool_pad),
				    "pooling: backward descriptor");
	if (rc == 0)
		rc = nsl_layer_prim(l, &desc, NULL, fwd_pd, NULL, &s->bwd, "backward primitive");
	if (rc == 0)
		rc = nsl_layer_mem(l, &s->x, &xmd, NULL);
	if (rc == 0)
		rc = nsl_layer_mem(l, &s->dx, &xmd, NULL);
	if (rc == 0)
		rc = nsl_layer_mem(l, &s->y, &ymd, NULL);
	if (rc == 0)
		rc = nsl_layer_mem(l, &s->dy, &ymd, NULL);
	dnnl_primitive_desc_destroy(fwd_pd);
	return rc;
}

static int pool_prepare(struct nsl_layer *l, int batch)
{
	struct pool *p = l->priv;
	int rc;

	if (batch < 1 || batch > l->ctx->max_batch)
		return nsl_error_set(EINVAL, "layer %d (%s): batch %d outside 1..%d (the max batch)", l->index,
				     l->ops->name, batch, l->ctx->max_batch);
	if (slot_find(p, batch) != NULL)
		return 0;
	if (p->nslots == NSL_LAYER_MAX_BATCHES)
		return nsl_error_set(ENOSPC, "layer %d (%s): batch %d would be batch size number %d; at most %d",
				     l->index, l->ops->name, batch, p->nslots + 1, NSL_LAYER_MAX_BATCHES);
	rc = slot_build(l, &p->slot[p->nslots], batch);
	if (rc < 0) {
		slot_free(&p->slot[p->nslots]);
		return rc;
	}
	p->nslots++;
	return 0;
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
	rc = fwd_desc(l, l->ctx->max_batch, &xmd, &ymd, &desc);
	if (rc == 0)
		rc = nsl_dnnl_check(dnnl_primitive_desc_create(&pd, &desc, NULL, l->ctx->cc->engine, NULL),
				    "max pooling: forward primitive descriptor");
	if (rc < 0)
		return nsl_error_prefix(rc, "layer %d (%s)", l->index, l->ops->name);
	bytes = dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(pd, dnnl_query_workspace_md, 0));
	dnnl_primitive_desc_destroy(pd);
	p->ws = nsl_alloc_zeroed(&nsl_allocator_libc, bytes, "max pooling workspace");
	if (p->ws == NULL)
		return nsl_error_prefix(ENOMEM, "layer %d (%s)", l->index, l->ops->name);
	l->scratch_bytes = bytes;
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
	struct pool_slot *s = slot_find(l->priv, batch);
	int rc;

	(void)train;
	(void)key;
	if (s == NULL)
		return nsl_error_set(EINVAL, "layer %d (%s): batch %d was not prepared", l->index, l->ops->name, batch);
	rc = nsl_layer_bind(s->x, x);
	if (rc == 0)
		rc = nsl_layer_bind(s->y, y);
	if (rc == 0) {
		/* Always training: the workspace costs little and backward may follow any forward. */
		const dnnl_exec_arg_t args[] = {
			{ DNNL_ARG_SRC, s->x }, { DNNL_ARG_DST, s->y }, { DNNL_ARG_WORKSPACE, s->ws },
		};

		rc = nsl_dnnl_exec(l->ctx->cc, s->fwd, s->ws ? 3 : 2, args, "pooling forward");
	}
	return rc;
}

static int pool_backward(struct nsl_layer *l, int batch, const float *x, const float *y, const float *dy,
			 float *dx, bool accumulate)
{
	struct pool_slot *s = slot_find(l->priv, batch);
	int rc;

	(void)x;
	(void)y;
	(void)accumulate;
	if (s == NULL)
		return nsl_error_set(EINVAL, "layer %d (%s): batch %d was not prepared", l->index, l->ops->name, batch);
	if (dx == NULL)
		return 0;
	rc = nsl_layer_bind(s->dy, dy);
	if (rc == 0)
		rc = nsl_layer_bind(s->dx, dx);
	if (rc == 0) {
		const dnnl_exec_arg_t args[] = {
			{ DNNL_ARG_DIFF_DST, s->dy }, { DNNL_ARG_DIFF_SRC, s->dx }, { DNNL_ARG_WORKSPACE, s->ws },
		};

		rc = nsl_dnnl_exec(l->ctx->cc, s->bwd, s->ws ? 3 : 2, args, "pooling backward");
	}
	return rc;
}

static void pool_fini(struct nsl_layer *l)
{
	struct pool *p = l->priv;

	if (p == NULL)
		return;
	for (int i = 0; i < p->nslots; i++)
		slot_free(&p->slot[i]);
	nsl_alloc_free(&nsl_allocator_libc, p->ws);
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
