/* SPDX-License-Identifier: BSD-3-Clause */
/* The layer registry, the layer life cycle and the helpers every layer kind shares. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <oneapi/dnnl/dnnl.h>

#include "nsplit/alloc.h"
#include "nsplit/error.h"
#include "layer_pvt.h"

static const struct nsl_layer_ops *const layer_ops[NSL_LAYER_KIND_COUNT] = {
	[NSL_LAYER_DENSE] = &nsl_layer_dense_ops,
	[NSL_LAYER_CONV] = &nsl_layer_conv_ops,
	[NSL_LAYER_MAXPOOL] = &nsl_layer_maxpool_ops,
	[NSL_LAYER_AVGPOOL] = &nsl_layer_avgpool_ops,
	[NSL_LAYER_RELU] = &nsl_layer_eltwise_ops,
	[NSL_LAYER_TANH] = &nsl_layer_eltwise_ops,
	[NSL_LAYER_SIGMOID] = &nsl_layer_eltwise_ops,
	[NSL_LAYER_GELU] = &nsl_layer_eltwise_ops,
	[NSL_LAYER_FLATTEN] = &nsl_layer_flatten_ops,
	[NSL_LAYER_DROPOUT] = &nsl_layer_dropout_ops,
};

const struct nsl_layer_ops *nsl_layer_ops_get(enum nsl_layer_kind kind)
{
	if ((unsigned)kind >= NSL_LAYER_KIND_COUNT)
		return NULL;
	return layer_ops[kind];
}

struct nsl_layer *nsl_layer_create(const struct nsl_layer_spec *spec, int index, struct nsl_shape in,
				   enum nsl_fused_act fused, uint64_t seed, const struct nsl_layer_ctx *ctx)
{
	const struct nsl_layer_ops *ops = nsl_layer_ops_get(spec->kind);
	struct nsl_layer *l;

	if (ops == NULL) {
		nsl_error_set(EINVAL, "layer %d: unknown kind %d", index, (int)spec->kind);
		return NULL;
	}
	if (in.c < 1 || in.h < 1 || in.w < 1 || ctx->max_batch < 1) {
		nsl_error_set(EINVAL, "layer %d (%s): input %dx%dx%d, max batch %d: all must be positive",
			      index, ops->name, in.c, in.h, in.w, ctx->max_batch);
		return NULL;
	}
	l = calloc(1, sizeof(*l));
	if (l == NULL) {
		nsl_error_set(ENOMEM, "layer %d (%s): out of memory", index, ops->name);
		return NULL;
	}
	l->ops = ops;
	l->spec = *spec;
	l->index = index;
	l->seed = seed;
	l->fused = (spec->kind == NSL_LAYER_DENSE || spec->kind == NSL_LAYER_CONV) ? fused : NSL_FUSED_NONE;
	l->in = in;
	l->ctx = ctx;
	if (ops->init(l) < 0) {
		/* fini copes with a half-built layer, so one path frees everything. */
		nsl_layer_free(l);
		return NULL;
	}
	if (l->saved_bytes > 0) {
		l->own_saved = nsl_alloc_zeroed(&nsl_allocator_libc, l->saved_bytes, "saved state");
		if (l->own_saved == NULL) {
			nsl_error_prefix(ENOMEM, "layer %d (%s)", index, ops->name);
			nsl_layer_free(l);
			return NULL;
		}
		l->saved = l->own_saved;
	}
	return l;
}

void nsl_layer_free(struct nsl_layer *l)
{
	if (l == NULL)
		return;
	l->ops->fini(l);
	nsl_alloc_free(&nsl_allocator_libc, l->own_saved);
	for (int q = 0; q < l->nparams; q++) {
		struct nsl_param *p = &l->params[q];

		for (int d = 0; d < 2; d++) {
			dnnl_primitive_destroy(p->reorder[d]);
			dnnl_memory_destroy(p->reorder_src[d]);
			dnnl_memory_destroy(p->reorder_dst[d]);
		}
		nsl_alloc_free(l->ctx->alloc, p->data);
		nsl_alloc_free(l->ctx->alloc, p->grad);
	}
	free(l);
}

int nsl_layer_prim(struct nsl_layer *l, const void *op_desc, const_dnnl_primitive_attr_t attr,
		   const_dnnl_primitive_desc_t hint, dnnl_primitive_desc_t *pd, dnnl_primitive_t *prim,
		   const char *what)
{
	dnnl_primitive_desc_t made;
	size_t pad;
	char msg[160];
	int rc;

	snprintf(msg, sizeof(msg), "layer %d (%s): %s", l->index, l->ops->name, what);
	rc = nsl_dnnl_make(l->ctx->cc, op_desc, attr, hint, &made, prim, msg);
	if (rc < 0)
		return rc;
	pad = nsl_dnnl_scratch_bytes(made);
	if (pad > l->scratchpad_bytes)
		l->scratchpad_bytes = pad;
	if (pd != NULL)
		*pd = made;
	else
		dnnl_primitive_desc_destroy(made);
	return 0;
}

int nsl_layer_mem(const struct nsl_layer *l, dnnl_memory_t *m, const dnnl_memory_desc_t *md, void *handle)
{
	char msg[160];

	snprintf(msg, sizeof(msg), "layer %d (%s): memory object", l->index, l->ops->name);
	*m = NULL;
	return nsl_dnnl_check(dnnl_memory_create(m, md, l->ctx->cc->engine, handle ? handle : DNNL_MEMORY_NONE),
			      msg);
}

int nsl_layer_bind(dnnl_memory_t m, const void *p)
{
	/* oneDNN only reads through handles bound to inputs; the cast is for its one setter. */
	return nsl_dnnl_check(dnnl_memory_set_data_handle(m, (void *)(uintptr_t)p), "bind a buffer to a layer");
}

int nsl_layer_param_add(struct nsl_layer *l, const char *name, int ndim, const int64_t *dims,
			const dnnl_memory_desc_t *md, const dnnl_memory_desc_t *plain_md, int fan_in,
			int fan_out)
{
	struct nsl_param *p;
	size_t bytes = dnnl_memory_desc_get_size(md);

	if (l->nparams == NSL_LAYER_MAX_PARAMS)
		return nsl_error_set(ENOSPC, "layer %d (%s): more than %d parameters", l->index, l->ops->name,
				     NSL_LAYER_MAX_PARAMS);
	p = &l->params[l->nparams];
	*p = (struct nsl_param){ .name = name, .ndim = ndim, .md = *md, .plain_md = *plain_md,
				 .fan_in = fan_in, .fan_out = fan_out, .numel = 1, .gen = 1 };
	for (int d = 0; d < ndim; d++) {
		p->dims[d] = dims[d];
		p->numel *= dims[d];
	}
	p->count = bytes / sizeof(float);
	p->data = nsl_alloc_zeroed(l->ctx->alloc, bytes, name);
	p->grad = nsl_alloc_zeroed(l->ctx->alloc, bytes, name);
	l->nparams++;   /* counted even when half-allocated, so nsl_layer_free releases it */
	if (p->data == NULL || p->grad == NULL)
		return nsl_error_prefix(ENOMEM, "layer %d (%s)", l->index, l->ops->name);
	return 0;
}

dnnl_alg_kind_t nsl_layer_fused_alg(enum nsl_fused_act f, bool backward)
{
	switch (f) {
	case NSL_FUSED_RELU: return backward ? dnnl_eltwise_relu_use_dst_for_bwd : dnnl_eltwise_relu;
	case NSL_FUSED_TANH: return backward ? dnnl_eltwise_tanh_use_dst_for_bwd : dnnl_eltwise_tanh;
	case NSL_FUSED_SIGMOID: return backward ? dnnl_eltwise_logistic_use_dst_for_bwd : dnnl_eltwise_logistic;
	default: return dnnl_alg_kind_undef;
	}
}
