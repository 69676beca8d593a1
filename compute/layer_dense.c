/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Dense (fully connected) layer on oneDNN inner product, with an optional fused activation.
 * The input is read as N x (C*H*W): the bytes of NCHW, so the plain weight is [out, C*H*W] in
 * C,H,W order, what torch.nn.Linear after nn.Flatten sees.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>

#include "nsplit/alloc.h"
#include "nsplit/error.h"
#include "layer_pvt.h"

struct dense_slot {
	int batch;
	dnnl_primitive_t fwd, act_bwd, bwd_data, bwd_weights;
	dnnl_memory_t x, y, dy, dx, dz;
};

struct dense {
	int64_t in, out;              /* flattened input width, units */
	dnnl_primitive_attr_t attr;   /* the fused activation as a post-op; NULL when none */
	dnnl_memory_desc_t wmd, bmd;  /* wmd is the layout every primitive is forced to use */
	dnnl_memory_t w, b, dw, db;
	float *dw_acc, *db_acc;       /* one call's gradients when accumulating */
	float *dz;                    /* act'(y) * dy, max_batch x out */
	int nslots;
	struct dense_slot slot[NSL_LAYER_MAX_BATCHES];
};

static int md2(dnnl_memory_desc_t *md, int64_t a, int64_t b, dnnl_format_tag_t tag)
{
	dnnl_dims_t dims = { a, b };

	return nsl_dnnl_check(dnnl_memory_desc_init_by_tag(md, 2, dims, dnnl_f32, tag), "dense: memory descriptor");
}

static bool impl_is_ref(const_dnnl_primitive_desc_t pd)
{
	const char *name = NULL;

	return dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name) == dnnl_success && name != NULL &&
	       strncmp(name, "ref", 3) == 0;
}

/* dz = act'(y) * dy from the layer's output y (the *_use_dst_for_bwd algorithms). */
static int act_bwd_build(struct nsl_layer *l, const dnnl_memory_desc_t *ymd, dnnl_primitive_t *prim)
{
	dnnl_alg_kind_t alg = nsl_layer_fused_alg(l->fused, true);
	dnnl_primitive_desc_t hint = NULL;
	dnnl_eltwise_desc_t el;
	int rc;

	/* oneDNN wants a forward descriptor as the hint of a backward one; it is never executed. */
	rc = nsl_dnnl_check(dnnl_eltwise_forward_desc_init(&el, dnnl_forward_training, alg, ymd, 0, 0),
			    "dense: activation descriptor");
	if (rc == 0)
		rc = nsl_dnnl_check(dnnl_primitive_desc_create(&hint, &el, NULL, l->ctx->cc->engine, NULL),
				    "dense: activation forward descriptor");
	if (rc == 0)
		rc = nsl_dnnl_check(dnnl_eltwise_backward_desc_init(&el, alg, ymd, ymd, 0, 0),
				    "dense: activation backward descriptor");
	if (rc == 0)
		rc = nsl_layer_prim(l, &el, NULL, hint, NULL, prim, "activation backward primitive");
	dnnl_primitive_desc_destroy(hint);
	return rc;
}

static void slot_free(struct dense_slot *s)
{
	dnnl_primitive_destroy(s->fwd);
	dnnl_primitive_destroy(s->act_bwd);
	dnnl_primitive_destroy(s->bwd_data);
	dnnl_primitive_destroy(s->bwd_weights);
	dnnl_memory_destroy(s->x);
	dnnl_memory_destroy(s->y);
	dnnl_memory_destroy(s->dy);
	dnnl_memory_destroy(s->dx);
	dnnl_memory_destroy(s->dz);
	memset(s, 0, sizeof(*s));
}

/*
 * Every primitive and activation memory object for `batch` rows with weights in `wmd`. *ref is
 * set when oneDNN could only offer its reference kernel for one of them.
 */
static int slot_build(struct nsl_layer *l, struct dense_slot *s, int batch, const dnnl_memory_desc_t *wmd,
		      bool *ref)
{
	struct dense *d = l->priv;
	dnnl_memory_desc_t xmd, ymd;
	dnnl_inner_product_desc_t ip;
	dnnl_primitive_desc_t fwd_pd = NULL, pd = NULL;
	int rc;

	*ref = false;
	s->batch = batch;
	rc = md2(&xmd, batch, d->in, dnnl_nc);
	if (rc == 0)
		rc = md2(&ymd, batch, d->out, dnnl_nc);
	if (rc < 0)
		goto out;
	rc = nsl_dnnl_check(dnnl_inner_product_forward_desc_init(&ip, dnnl_forward_training, &xmd, wmd, &d->bmd, &ymd),
			    "dense: forward descriptor");
	if (rc == 0)
		rc = nsl_layer_prim(l, &ip, d->attr, NULL, &fwd_pd, &s->fwd, "forward primitive");
	if (rc < 0)
		goto out;
	*ref |= impl_is_ref(fwd_pd);
	rc = nsl_dnnl_check(dnnl_inner_product_backward_data_desc_init(&ip, &xmd, wmd, &ymd),
			    "dense: backward-data descriptor");
	if (rc == 0)
		rc = nsl_layer_prim(l, &ip, NULL, fwd_pd, &pd, &s->bwd_data, "backward-data primitive");
	if (rc < 0)
		goto out;
	*ref |= impl_is_ref(pd);
	dnnl_primitive_desc_destroy(pd);
	pd = NULL;
	rc = nsl_dnnl_check(dnnl_inner_product_backward_weights_desc_init(&ip, &xmd, wmd, &d->bmd, &ymd),
			    "dense: backward-weights descriptor");
	if (rc == 0)
		rc = nsl_layer_prim(l, &ip, NULL, fwd_pd, &pd, &s->bwd_weights, "backward-weights primitive");
	if (rc < 0)
		goto out;
	*ref |= impl_is_ref(pd);
	dnnl_primitive_desc_destroy(pd);
	pd = NULL;
	if (l->fused != NSL_FUSED_NONE) {
		rc = act_bwd_build(l, &ymd, &s->act_bwd);
		if (rc < 0)
			goto out;
	}
	rc = nsl_layer_mem(l, &s->x, &xmd, NULL);
	if (rc == 0)
		rc = nsl_layer_mem(l, &s->dx, &xmd, NULL);
	if (rc == 0)
		rc = nsl_layer_mem(l, &s->y, &ymd, NULL);
	if (rc == 0)
		rc = nsl_layer_mem(l, &s->dy, &ymd, NULL);
	if (rc == 0 && d->dz != NULL)
		rc = nsl_layer_mem(l, &s->dz, &ymd, d->dz);
out:
	dnnl_primitive_desc_destroy(pd);
	dnnl_primitive_desc_destroy(fwd_pd);
	return rc;
}

static struct dense_slot *slot_find(struct dense *d, int batch)
{
	for (int i = 0; i < d->nslots; i++)
		if (d->slot[i].batch == batch)
			return &d->slot[i];
	return NULL;
}

static int dense_prepare(struct nsl_layer *l, int batch)
{
	struct dense *d = l->priv;
	struct dense_slot *s;
	bool ref;
	int rc;

	if (batch < 1 || batch > l->ctx->max_batch)
		return nsl_error_set(EINVAL, "layer %d (dense): batch %d outside 1..%d (the max batch)", l->index,
				     batch, l->ctx->max_batch);
	if (slot_find(d, batch) != NULL)
		return 0;
	if (d->nslots == NSL_LAYER_MAX_BATCHES)
		return nsl_error_set(ENOSPC, "layer %d (dense): batch %d would be batch size number %d; at most %d",
				     l->index, batch, d->nslots + 1, NSL_LAYER_MAX_BATCHES);
	s = &d->slot[d->nslots];
	rc = slot_build(l, s, batch, &d->wmd, &ref);
	if (rc < 0) {
		slot_free(s);
		return rc;
	}
	d->nslots++;
	return 0;
}

/*
 * The weight layout: what oneDNN's forward picks at max_batch, if the other primitives accept it
 * with real (not reference) kernels at both ends of the batch range; else plain `oi`.
 */
static int choose_layout(struct nsl_layer *l, const dnnl_memory_desc_t *plain)
{
	struct dense *d = l->priv;
	const int max_batch = l->ctx->max_batch;
	dnnl_memory_desc_t xmd, ymd, any;
	dnnl_inner_product_desc_t ip;
	dnnl_primitive_desc_t pd = NULL;
	int rc;

	rc = md2(&xmd, max_batch, d->in, dnnl_nc);
	if (rc == 0)
		rc = md2(&ymd, max_batch, d->out, dnnl_nc);
	if (rc == 0)
		rc = md2(&any, d->out, d->in, dnnl_format_tag_any);
	if (rc == 0)
		rc = nsl_dnnl_check(dnnl_inner_product_forward_desc_init(&ip, dnnl_forward_training, &xmd, &any,
									 &d->bmd, &ymd),
				    "dense: forward descriptor");
	if (rc == 0)
		rc = nsl_dnnl_check(dnnl_primitive_desc_create(&pd, &ip, d->attr, l->ctx->cc->engine, NULL),
				    "dense: forward primitive descriptor");
	if (rc < 0)
		return nsl_error_prefix(rc, "layer %d (dense)", l->index);
	d->wmd = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
	dnnl_primitive_desc_destroy(pd);
	if (dnnl_memory_desc_equal(&d->wmd, plain))
		return 0;
	for (int b = 0; b < 2; b++) {
		struct dense_slot probe = { 0 };
		bool ref = false;

		rc = slot_build(l, &probe, b == 0 ? max_batch : 1, &d->wmd, &ref);
		slot_free(&probe);
		if (rc < 0 || ref) {
			nsl_error_clear();
			d->wmd = *plain;
			return 0;
		}
	}
	return 0;
}

static int dense_init(struct nsl_layer *l)
{
	struct dense *d;
	dnnl_memory_desc_t plain;
	const size_t max_batch = (size_t)l->ctx->max_batch;
	int64_t wdims[2];
	int rc;

	if (l->spec.units < 1)
		return nsl_error_set(EINVAL, "layer %d (dense): %d units; give at least 1 (dense:N)", l->index,
				     l->spec.units);
	d = calloc(1, sizeof(*d));
	if (d == NULL)
		return nsl_error_set(ENOMEM, "layer %d (dense): out of memory", l->index);
	l->priv = d;
	d->in = nsl_shape_size(l->in);
	d->out = l->spec.units;
	l->out = (struct nsl_shape){ l->spec.units, 1, 1 };
	wdims[0] = d->out;
	wdims[1] = d->in;
	rc = md2(&plain, d->out, d->in, dnnl_oi);
	if (rc == 0)
		rc = nsl_dnnl_check(dnnl_memory_desc_init_by_tag(&d->bmd, 1, (dnnl_dims_t){ d->out }, dnnl_f32, dnnl_x),
				    "dense: bias descriptor");
	if (rc == 0 && l->fused != NSL_FUSED_NONE) {
		dnnl_post_ops_t po = NULL;

		rc = nsl_dnnl_check(dnnl_post_ops_create(&po), "dense: post-ops");
		if (rc == 0)
			rc = nsl_dnnl_check(dnnl_post_ops_append_eltwise(po, 1.0f, nsl_layer_fused_alg(l->fused, false),
									 0, 0),
					    "dense: fused activation");
		if (rc == 0)
			rc = nsl_dnnl_check(dnnl_primitive_attr_create(&d->attr), "dense: attributes");
		if (rc == 0)
			rc = nsl_dnnl_check(dnnl_primitive_attr_set_post_ops(d->attr, po), "dense: post-ops");
		dnnl_post_ops_destroy(po);
		if (rc == 0) {
			/* Before choose_layout: its probes bind dz's memory object to this buffer. */
			d->dz = nsl_alloc_zeroed(&nsl_allocator_libc, max_batch * (size_t)d->out * sizeof(float),
						 "dense activation gradient");
			if (d->dz == NULL)
				rc = -ENOMEM;
		}
	}
	if (rc < 0)
		return nsl_error_prefix(rc, "layer %d (dense)", l->index);
	rc = choose_layout(l, &plain);
	if (rc == 0)
		rc = nsl_layer_param_add(l, "weight", 2, wdims, &d->wmd, &plain, (int)d->in, (int)d->out);
	if (rc == 0)
		rc = nsl_layer_param_add(l, "bias", 1, &d->out, &d->bmd, &d->bmd, (int)d->in, (int)d->out);
	if (rc < 0)
		return rc;
	d->dw_acc = nsl_alloc_zeroed(&nsl_allocator_libc, l->params[0].count * sizeof(float), "dense scratch");
	d->db_acc = nsl_alloc_zeroed(&nsl_allocator_libc, l->params[1].count * sizeof(float), "dense scratch");
	if (d->dw_acc == NULL || d->db_acc == NULL)
		return nsl_error_prefix(ENOMEM, "layer %d (dense)", l->index);
	l->scratch_bytes = (l->params[0].count + l->params[1].count) * sizeof(float) +
			   (d->dz ? max_batch * (size_t)d->out * sizeof(float) : 0);
	rc = nsl_layer_mem(l, &d->w, &d->wmd, NULL);
	if (rc == 0)
		rc = nsl_layer_mem(l, &d->dw, &d->wmd, NULL);
	if (rc == 0)
		rc = nsl_layer_mem(l, &d->b, &d->bmd, NULL);
	if (rc == 0)
		rc = nsl_layer_mem(l, &d->db, &d->bmd, NULL);
	return rc;
}

static int dense_forward(struct nsl_layer *l, int batch, const float *x, float *y, bool train, uint64_t key)
{
	struct dense *d = l->priv;
	struct dense_slot *s = slot_find(d, batch);
	int rc;

	(void)train;
	(void)key;
	if (s == NULL)
		return nsl_error_set(EINVAL, "layer %d (dense): batch %d was not prepared", l->index, batch);
	rc = nsl_layer_bind(s->x, x);
	if (rc == 0)
		rc = nsl_layer_bind(s->y, y);
	if (rc == 0)
		rc = nsl_layer_bind(d->w, l->params[0].data);
	if (rc == 0)
		rc = nsl_layer_bind(d->b, l->params[1].data);
	if (rc == 0) {
		const dnnl_exec_arg_t args[] = {
			{ DNNL_ARG_SRC, s->x }, { DNNL_ARG_WEIGHTS, d->w },
			{ DNNL_ARG_BIAS, d->b }, { DNNL_ARG_DST, s->y },
		};

		rc = nsl_dnnl_exec(l->ctx->cc, s->fwd, 4, args, "dense forward");
	}
	return rc;
}

static void add_into(float *dst, const float *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] += src[i];
}

static int dense_backward(struct nsl_layer *l, int batch, const float *x, const float *y, const float *dy,
			  float *dx, bool accumulate)
{
	struct dense *d = l->priv;
	struct dense_slot *s = slot_find(d, batch);
	struct nsl_param *w = &l->params[0], *b = &l->params[1];
	dnnl_memory_t g;
	int rc;

	if (s == NULL)
		return nsl_error_set(EINVAL, "layer %d (dense): batch %d was not prepared", l->index, batch);
	g = s->dy;
	rc = nsl_layer_bind(s->dy, dy);
	if (rc == 0 && s->act_bwd != NULL) {
		const dnnl_exec_arg_t args[] = {
			{ DNNL_ARG_DST, s->y }, { DNNL_ARG_DIFF_DST, s->dy }, { DNNL_ARG_DIFF_SRC, s->dz },
		};

		g = s->dz;
		rc = nsl_layer_bind(s->y, y);
		if (rc == 0)
			rc = nsl_dnnl_exec(l->ctx->cc, s->act_bwd, 3, args, "dense activation backward");
	}
	if (rc == 0 && dx != NULL) {
		const dnnl_exec_arg_t args[] = {
			{ DNNL_ARG_DIFF_DST, g }, { DNNL_ARG_WEIGHTS, d->w }, { DNNL_ARG_DIFF_SRC, s->dx },
		};

		rc = nsl_layer_bind(s->dx, dx);
		if (rc == 0)
			rc = nsl_layer_bind(d->w, w->data);
		if (rc == 0)
			rc = nsl_dnnl_exec(l->ctx->cc, s->bwd_data, 3, args, "dense backward data");
	}
	if (rc == 0)
		rc = nsl_layer_bind(s->x, x);
	if (rc == 0)
		rc = nsl_layer_bind(d->dw, accumulate ? d->dw_acc : w->grad);
	if (rc == 0)
		rc = nsl_layer_bind(d->db, accumulate ? d->db_acc : b->grad);
	if (rc == 0) {
		const dnnl_exec_arg_t args[] = {
			{ DNNL_ARG_SRC, s->x }, { DNNL_ARG_DIFF_DST, g },
			{ DNNL_ARG_DIFF_WEIGHTS, d->dw }, { DNNL_ARG_DIFF_BIAS, d->db },
		};

		rc = nsl_dnnl_exec(l->ctx->cc, s->bwd_weights, 4, args, "dense backward weights");
	}
	if (rc == 0 && accumulate) {
		add_into(w->grad, d->dw_acc, w->count);
		add_into(b->grad, d->db_acc, b->count);
	}
	return rc;
}

static void dense_fini(struct nsl_layer *l)
{
	struct dense *d = l->priv;

	if (d == NULL)
		return;
	for (int i = 0; i < d->nslots; i++)
		slot_free(&d->slot[i]);
	dnnl_memory_destroy(d->w);
	dnnl_memory_destroy(d->b);
	dnnl_memory_destroy(d->dw);
	dnnl_memory_destroy(d->db);
	dnnl_primitive_attr_destroy(d->attr);
	nsl_alloc_free(&nsl_allocator_libc, d->dw_acc);
	nsl_alloc_free(&nsl_allocator_libc, d->db_acc);
	nsl_alloc_free(&nsl_allocator_libc, d->dz);
	free(d);
	l->priv = NULL;
}

const struct nsl_layer_ops nsl_layer_dense_ops = {
	.name = "dense",
	.init = dense_init,
	.prepare = dense_prepare,
	.forward = dense_forward,
	.backward = dense_backward,
	.fini = dense_fini,
};
