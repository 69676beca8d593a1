/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * 2-D convolution (stride 1, no padding, PyTorch's nn.Conv2d defaults) on oneDNN, with an
 * optional fused activation. Activations stay plain NCHW; only the weights take oneDNN's layout.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>

#include "nsplit/alloc.h"
#include "nsplit/error.h"
#include "layer_pvt.h"

struct conv_slot {
	int batch;
	dnnl_primitive_t fwd, act_bwd, bwd_data, bwd_weights;
	dnnl_memory_t x, y, dy, dx, dz;
};

struct conv {
	int64_t ic, ih, iw, oc, oh, ow, kh, kw;
	dnnl_alg_kind_t alg;          /* direct, or auto where direct has no kernel */
	dnnl_primitive_attr_t attr;   /* the fused activation as a post-op; NULL when none */
	dnnl_memory_desc_t wmd, bmd;  /* wmd is the layout every primitive is forced to use */
	dnnl_memory_t w, b, dw, db;
	float *dw_acc, *db_acc;       /* one call's gradients when accumulating */
	float *dz;                    /* act'(y) * dy, max_batch x out */
	int nslots;
	struct conv_slot slot[NSL_LAYER_MAX_BATCHES];
};

static int md4(dnnl_memory_desc_t *md, int64_t a, int64_t b, int64_t c, int64_t e, dnnl_format_tag_t tag)
{
	dnnl_dims_t dims = { a, b, c, e };

	return nsl_dnnl_check(dnnl_memory_desc_init_by_tag(md, 4, dims, dnnl_f32, tag), "conv: memory descriptor");
}

/* Source and destination of `batch` rows, plain NCHW. */
static int act_mds(const struct conv *d, int64_t batch, dnnl_memory_desc_t *xmd, dnnl_memory_desc_t *ymd)
{
	int rc = md4(xmd, batch, d->ic, d->ih, d->iw, dnnl_nchw);

	return rc < 0 ? rc : md4(ymd, batch, d->oc, d->oh, d->ow, dnnl_nchw);
}

static const dnnl_dims_t conv_strides = { 1, 1 }, conv_pad = { 0, 0 };

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
			    "conv: activation descriptor");
	if (rc == 0)
		rc = nsl_dnnl_check(dnnl_primitive_desc_create(&hint, &el, NULL, l->ctx->cc->engine, NULL),
				    "conv: activation forward descriptor");
	if (rc == 0)
		rc = nsl_dnnl_check(dnnl_eltwise_backward_desc_init(&el, alg, ymd, ymd, 0, 0),
				    "conv: activation backward descriptor");
	if (rc == 0)
		rc = nsl_layer_prim(l, &el, NULL, hint, NULL, prim, "activation backward primitive");
	dnnl_primitive_desc_destroy(hint);
	return rc;
}

static void slot_free(struct conv_slot *s)
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
static int slot_build(struct nsl_layer *l, struct conv_slot *s, int batch, const dnnl_memory_desc_t *wmd,
		      bool *ref)
{
	struct conv *d = l->priv;
	dnnl_memory_desc_t xmd, ymd;
	dnnl_convolution_desc_t cv;
	dnnl_primitive_desc_t fwd_pd = NULL, pd = NULL;
	int rc;

	*ref = false;
	s->batch = batch;
	rc = act_mds(d, batch, &xmd, &ymd);
	if (rc < 0)
		goto out;
	rc = nsl_dnnl_check(dnnl_convolution_forward_desc_init(&cv, dnnl_forward_training, d->alg, &xmd, wmd, &d->bmd,
							       &ymd, conv_strides, conv_pad, conv_pad),
			    "conv: forward descriptor");
	if (rc == 0)
		rc = nsl_layer_prim(l, &cv, d->attr, NULL, &fwd_pd, &s->fwd, "forward primitive");
	if (rc < 0)
		goto out;
	*ref |= impl_is_ref(fwd_pd);
	rc = nsl_dnnl_check(dnnl_convolution_backward_data_desc_init(&cv, d->alg, &xmd, wmd, &ymd, conv_strides,
								     conv_pad, conv_pad),
			    "conv: backward-data descriptor");
	if (rc == 0)
		rc = nsl_layer_prim(l, &cv, NULL, fwd_pd, &pd, &s->bwd_data, "backward-data primitive");
	if (rc < 0)
		goto out;
	*ref |= impl_is_ref(pd);
	dnnl_primitive_desc_destroy(pd);
	pd = NULL;
	rc = nsl_dnnl_check(dnnl_convolution_backward_weights_desc_init(&cv, d->alg, &xmd, wmd, &d->bmd, &ymd,
									conv_strides, conv_pad, conv_pad),
			    "conv: backward-weights descriptor");
	if (rc == 0)
		rc = nsl_layer_prim(l, &cv, NULL, fwd_pd, &pd, &s->bwd_weights, "backward-weights primitive");
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

static struct conv_slot *slot_find(struct conv *d, int batch)
{
	for (int i = 0; i < d->nslots; i++)
		if (d->slot[i].batch == batch)
			return &d->slot[i];
	return NULL;
}

static int conv_prepare(struct nsl_layer *l, int batch)
{
	struct conv *d = l->priv;
	struct conv_slot *s;
	bool ref;
	int rc;

	if (batch < 1 || batch > l->ctx->max_batch)
		return nsl_error_set(EINVAL, "layer %d (conv): batch %d outside 1..%d (the max batch)", l->index,
				     batch, l->ctx->max_batch);
	if (slot_find(d, batch) != NULL)
		return 0;
	if (d->nslots == NSL_LAYER_MAX_BATCHES)
		return nsl_error_set(ENOSPC, "layer %d (conv): batch %d would be batch size number %d; at most %d",
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
 * with real (not reference) kernels at both ends of the batch range; else plain `oihw`.
 * Direct convolution first, auto only where direct has no kernel: measured on AVX-512 at batch
 * 64 (1->32 5x5 on 28x28, 32->64 5x5 on 12x12, 16->32 3x3 on 14x14), both pick the same
 * im2col+GEMM kernels ("gemm:jit") and plain oihw weights for NCHW activations, with equal times;
 * direct keeps winograd, whose results differ numerically, from being chosen on other CPUs.
 */
static int choose_layout(struct nsl_layer *l, const dnnl_memory_desc_t *plain)
{
	struct conv *d = l->priv;
	const int max_batch = l->ctx->max_batch;
	dnnl_memory_desc_t xmd, ymd, any;
	dnnl_convolution_desc_t cv;
	dnnl_primitive_desc_t pd = NULL;
	int rc;

	rc = act_mds(d, max_batch, &xmd, &ymd);
	if (rc == 0)
		rc = md4(&any, d->oc, d->ic, d->kh, d->kw, dnnl_format_tag_any);
	for (int a = 0; rc == 0 && a < 2; a++) {
		d->alg = a == 0 ? dnnl_convolution_direct : dnnl_convolution_auto;
		rc = nsl_dnnl_check(dnnl_convolution_forward_desc_init(&cv, dnnl_forward_training, d->alg, &xmd, &any,
								       &d->bmd, &ymd, conv_strides, conv_pad, conv_pad),
				    "conv: forward descriptor");
		if (rc == 0)
			rc = nsl_dnnl_check(dnnl_primitive_desc_create(&pd, &cv, d->attr, l->ctx->cc->engine, NULL),
					    "conv: forward primitive descriptor");
		if (rc == 0)
			break;
		if (a == 0 && rc == -ENOTSUP) {
			nsl_error_clear();
			rc = 0;
		}
	}
	if (rc < 0)
		return nsl_error_prefix(rc, "layer %d (conv)", l->index);
	d->wmd = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
	dnnl_primitive_desc_destroy(pd);
	if (dnnl_memory_desc_equal(&d->wmd, plain))
		return 0;
	for (int b = 0; b < 2; b++) {
		struct conv_slot probe = { 0 };
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

static int conv_init(struct nsl_layer *l)
{
	struct conv *d;
	dnnl_memory_desc_t plain;
	const size_t max_batch = (size_t)l->ctx->max_batch;
	int64_t wdims[4];
	int rc;

	if (l->spec.units < 1 || l->spec.kh < 1 || l->spec.kw < 1 || l->spec.kh > l->in.h || l->spec.kw > l->in.w)
		return nsl_error_set(EINVAL,
				     "layer %d (conv): %d channels of %dx%d kernels on a %dx%d input; give at least "
				     "1 channel and a kernel no larger than the input (conv:CxKHxKW)",
				     l->index, l->spec.units, l->spec.kh, l->spec.kw, l->in.h, l->in.w);
	d = calloc(1, sizeof(*d));
	if (d == NULL)
		return nsl_error_set(ENOMEM, "layer %d (conv): out of memory", l->index);
	l->priv = d;
	d->ic = l->in.c;
	d->ih = l->in.h;
	d->iw = l->in.w;
	d->oc = l->spec.units;
	d->kh = l->spec.kh;
	d->kw = l->spec.kw;
	d->oh = d->ih - d->kh + 1;
	d->ow = d->iw - d->kw + 1;
	l->out = (struct nsl_shape){ (int)d->oc, (int)d->oh, (int)d->ow };
	wdims[0] = d->oc;
	wdims[1] = d->ic;
	wdims[2] = d->kh;
	wdims[3] = d->kw;
	rc = md4(&plain, d->oc, d->ic, d->kh, d->kw, dnnl_oihw);
	if (rc == 0)
		rc = nsl_dnnl_check(dnnl_memory_desc_init_by_tag(&d->bmd, 1, (dnnl_dims_t){ d->oc }, dnnl_f32, dnnl_x),
				    "conv: bias descriptor");
	if (rc == 0 && l->fused != NSL_FUSED_NONE) {
		dnnl_post_ops_t po = NULL;

		rc = nsl_dnnl_check(dnnl_post_ops_create(&po), "conv: post-ops");
		if (rc == 0)
			rc = nsl_dnnl_check(dnnl_post_ops_append_eltwise(po, 1.0f, nsl_layer_fused_alg(l->fused, false),
									 0, 0),
					    "conv: fused activation");
		if (rc == 0)
			rc = nsl_dnnl_check(dnnl_primitive_attr_create(&d->attr), "conv: attributes");
		if (rc == 0)
			rc = nsl_dnnl_check(dnnl_primitive_attr_set_post_ops(d->attr, po), "conv: post-ops");
		dnnl_post_ops_destroy(po);
		if (rc == 0) {
			/* Before choose_layout: its probes bind dz's memory object to this buffer. */
			d->dz = nsl_alloc_zeroed(&nsl_allocator_libc,
						 max_batch * (size_t)nsl_shape_size(l->out) * sizeof(float),
						 "conv activation gradient");
			if (d->dz == NULL)
				rc = -ENOMEM;
		}
	}
	if (rc < 0)
		return nsl_error_prefix(rc, "layer %d (conv)", l->index);
	rc = choose_layout(l, &plain);
	if (rc == 0)
		rc = nsl_layer_param_add(l, "weight", 4, wdims, &d->wmd, &plain, (int)(d->ic * d->kh * d->kw),
					 (int)(d->oc * d->kh * d->kw));
	if (rc == 0)
		rc = nsl_layer_param_add(l, "bias", 1, &d->oc, &d->bmd, &d->bmd, (int)(d->ic * d->kh * d->kw),
					 (int)(d->oc * d->kh * d->kw));
	if (rc < 0)
		return rc;
	d->dw_acc = nsl_alloc_zeroed(&nsl_allocator_libc, l->params[0].count * sizeof(float), "conv scratch");
	d->db_acc = nsl_alloc_zeroed(&nsl_allocator_libc, l->params[1].count * sizeof(float), "conv scratch");
	if (d->dw_acc == NULL || d->db_acc == NULL)
		return nsl_error_prefix(ENOMEM, "layer %d (conv)", l->index);
	l->scratch_bytes = (l->params[0].count + l->params[1].count) * sizeof(float) +
			   (d->dz ? max_batch * (size_t)nsl_shape_size(l->out) * sizeof(float) : 0);
	rc = nsl_layer_mem(l, &d->w, &d->wmd, NULL);
	if (rc == 0)
		rc = nsl_layer_mem(l, &d->dw, &d->wmd, NULL);
	if (rc == 0)
		rc = nsl_layer_mem(l, &d->b, &d->bmd, NULL);
	if (rc == 0)
		rc = nsl_layer_mem(l, &d->db, &d->bmd, NULL);
	return rc;
}

static int conv_forward(struct nsl_layer *l, int batch, const float *x, float *y, bool train, uint64_t key)
{
	struct conv *d = l->priv;
	struct conv_slot *s = slot_find(d, batch);
	int rc;

	(void)train;
	(void)key;
	if (s == NULL)
		return nsl_error_set(EINVAL, "layer %d (conv): batch %d was not prepared", l->index, batch);
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

		rc = nsl_dnnl_exec(l->ctx->cc, s->fwd, 4, args, "conv forward");
	}
	return rc;
}

static void add_into(float *dst, const float *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] += src[i];
}

static int conv_backward(struct nsl_layer *l, int batch, const float *x, const float *y, const float *dy,
			  float *dx, bool accumulate)
{
	struct conv *d = l->priv;
	struct conv_slot *s = slot_find(d, batch);
	struct nsl_param *w = &l->params[0], *b = &l->params[1];
	dnnl_memory_t g;
	int rc;

	if (s == NULL)
		return nsl_error_set(EINVAL, "layer %d (conv): batch %d was not prepared", l->index, batch);
	g = s->dy;
	rc = nsl_layer_bind(s->dy, dy);
	if (rc == 0 && s->act_bwd != NULL) {
		const dnnl_exec_arg_t args[] = {
			{ DNNL_ARG_DST, s->y }, { DNNL_ARG_DIFF_DST, s->dy }, { DNNL_ARG_DIFF_SRC, s->dz },
		};

		g = s->dz;
		rc = nsl_layer_bind(s->y, y);
		if (rc == 0)
			rc = nsl_dnnl_exec(l->ctx->cc, s->act_bwd, 3, args, "conv activation backward");
	}
	if (rc == 0 && dx != NULL) {
		const dnnl_exec_arg_t args[] = {
			{ DNNL_ARG_DIFF_DST, g }, { DNNL_ARG_WEIGHTS, d->w }, { DNNL_ARG_DIFF_SRC, s->dx },
		};

		rc = nsl_layer_bind(s->dx, dx);
		if (rc == 0)
			rc = nsl_layer_bind(d->w, w->data);
		if (rc == 0)
			rc = nsl_dnnl_exec(l->ctx->cc, s->bwd_data, 3, args, "conv backward data");
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

		rc = nsl_dnnl_exec(l->ctx->cc, s->bwd_weights, 4, args, "conv backward weights");
	}
	if (rc == 0 && accumulate) {
		add_into(w->grad, d->dw_acc, w->count);
		add_into(b->grad, d->db_acc, b->count);
	}
	return rc;
}

static void conv_fini(struct nsl_layer *l)
{
	struct conv *d = l->priv;

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

const struct nsl_layer_ops nsl_layer_conv_ops = {
	.name = "conv",
	.init = conv_init,
	.prepare = conv_prepare,
	.forward = conv_forward,
	.backward = conv_backward,
	.fini = conv_fini,
};
