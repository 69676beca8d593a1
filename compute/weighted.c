/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>

#include "nsplit/alloc.h"
#include "nsplit/error.h"
#include "weighted_pvt.h"

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
			    "activation descriptor");
	if (rc == 0)
		rc = nsl_dnnl_check(dnnl_primitive_desc_create(&hint, &el, NULL, l->ctx->cc->engine, NULL),
				    "activation forward descriptor");
	if (rc == 0)
		rc = nsl_dnnl_check(dnnl_eltwise_backward_desc_init(&el, alg, ymd, ymd, 0, 0),
				    "activation backward descriptor");
	if (rc == 0)
		rc = nsl_layer_prim(l, &el, NULL, hint, NULL, prim, "activation backward primitive");
	dnnl_primitive_desc_destroy(hint);
	return rc;
}

/* A backward primitive with the forward descriptor as hint; *ref |= it is a reference kernel. */
static int bwd_build(struct nsl_layer *l, const union nsl_wop_desc *op, const_dnnl_primitive_desc_t fwd_pd,
		     dnnl_primitive_t *prim, bool *ref, const char *what)
{
	dnnl_primitive_desc_t pd = NULL;
	int rc = nsl_layer_prim(l, op, NULL, fwd_pd, &pd, prim, what);

	if (rc == 0)
		*ref |= impl_is_ref(pd);
	dnnl_primitive_desc_destroy(pd);
	return rc;
}

/*
 * Every primitive and activation memory object for `batch` rows with weights in `wmd`. *ref is
 * set when oneDNN could only offer its reference kernel for one of them.
 */
static int slot_build(struct nsl_layer *l, struct nsl_prim_slot *s, int batch, const dnnl_memory_desc_t *wmd,
		      bool *ref)
{
	struct nsl_weighted *w = l->priv;
	const struct nsl_wkind *k = w->kind;
	dnnl_memory_desc_t xmd, ymd;
	union nsl_wop_desc op;
	dnnl_primitive_desc_t fwd_pd = NULL;
	int rc;

	*ref = false;
	rc = k->act_mds(w, batch, &xmd, &ymd);
	if (rc == 0)
		rc = k->fwd_desc(w, &op, &xmd, wmd, &ymd);
	if (rc == 0)
		rc = nsl_layer_prim(l, &op, w->attr, NULL, &fwd_pd, &s->fwd, "forward primitive");
	if (rc < 0)
		goto out;
	*ref |= impl_is_ref(fwd_pd);
	if (w->wt != NULL) {
		dnnl_primitive_desc_t pd = NULL;

		rc = k->bwd_as_fwd_desc(w, &op, &ymd, &w->wtmd, &xmd);
		if (rc == 0)
			rc = nsl_layer_prim(l, &op, NULL, NULL, &pd, &s->bwd, "backward-data primitive");
		if (rc == 0)
			*ref |= impl_is_ref(pd);
		dnnl_primitive_desc_destroy(pd);
	} else {
		rc = k->bwd_data_desc(w, &op, &xmd, wmd, &ymd);
		if (rc == 0)
			rc = bwd_build(l, &op, fwd_pd, &s->bwd, ref, "backward-data primitive");
	}
	if (rc == 0)
		rc = k->bwd_weights_desc(w, &op, &xmd, wmd, &ymd);
	if (rc == 0)
		rc = bwd_build(l, &op, fwd_pd, &s->bwd_weights, ref, "backward-weights primitive");
	if (rc == 0 && l->fused != NSL_FUSED_NONE)
		rc = act_bwd_build(l, &ymd, &s->act_bwd);
	if (rc == 0)
		rc = nsl_prim_slot_acts(l, s, &xmd, &ymd);
	if (rc == 0 && w->dz != NULL)
		rc = nsl_layer_mem(l, &s->dz, &ymd, w->dz);
out:
	dnnl_primitive_desc_destroy(fwd_pd);
	return rc;
}

/* choose_layout has already made sure the chosen layout runs on real kernels. */
static int prepared_build(struct nsl_layer *l, struct nsl_prim_slot *s, int batch)
{
	struct nsl_weighted *w = l->priv;
	bool ref;

	return slot_build(l, s, batch, &w->wmd, &ref);
}

int nsl_weighted_prepare(struct nsl_layer *l, int batch)
{
	struct nsl_weighted *w = l->priv;

	return nsl_prim_prepare(l, &w->prims, batch, prepared_build);
}

/*
 * The weight layout: what oneDNN's forward picks at max_batch (format_tag_any), if the other
 * primitives accept it with real (not reference) kernels at both ends of the batch range; else
 * the plain PyTorch layout. Measured here: blocked dense weights made a 2-thread MLP 13-20%
 * faster; convolutions with NCHW activations get plain oihw from oneDNN anyway.
 */
static int choose_layout(struct nsl_layer *l, const dnnl_memory_desc_t *plain)
{
	struct nsl_weighted *w = l->priv;
	const int max_batch = l->ctx->max_batch;
	dnnl_memory_desc_t xmd, ymd, any;
	union nsl_wop_desc op;
	dnnl_primitive_desc_t pd = NULL;
	int rc;

	rc = w->kind->act_mds(w, max_batch, &xmd, &ymd);
	if (rc == 0)
		rc = nsl_dnnl_check(dnnl_memory_desc_init_by_tag(&any, plain->ndims, plain->dims, dnnl_f32,
								 dnnl_format_tag_any),
				    "weight descriptor");
	for (;;) {
		if (rc == 0)
			rc = w->kind->fwd_desc(w, &op, &xmd, &any, &ymd);
		if (rc == 0)
			rc = nsl_dnnl_check(dnnl_primitive_desc_create(&pd, &op, w->attr, l->ctx->cc->engine, NULL),
					    "forward primitive descriptor");
		if (rc != -ENOTSUP || w->kind->fallback == NULL || !w->kind->fallback(w))
			break;
		nsl_error_clear();
		rc = 0;
	}
	if (rc < 0)
		return nsl_error_prefix(rc, "layer %d (%s)", l->index, w->kind->name);
	w->wmd = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
	dnnl_primitive_desc_destroy(pd);
	if (dnnl_memory_desc_equal(&w->wmd, plain))
		return 0;
	for (int b = 0; b < 2; b++) {
		struct nsl_prim_slot probe = { 0 };
		bool ref = false;

		rc = slot_build(l, &probe, b == 0 ? max_batch : 1, &w->wmd, &ref);
		nsl_prim_slot_free(&probe);
		if (rc < 0 || ref) {
			nsl_error_clear();
			w->wmd = *plain;
			return 0;
		}
	}
	return 0;
}

/* The transposed weights' layout, as the forward op through them picks it at `batch` rows; *ref
 * when that is a reference kernel. */
static int wt_layout(struct nsl_layer *l, int batch, const dnnl_memory_desc_t *wtmd, dnnl_memory_desc_t *out,
		     bool *ref)
{
	struct nsl_weighted *w = l->priv;
	dnnl_memory_desc_t xmd, ymd;
	union nsl_wop_desc op;
	dnnl_primitive_desc_t pd = NULL;
	int rc = w->kind->act_mds(w, batch, &xmd, &ymd);

	if (rc == 0)
		rc = w->kind->bwd_as_fwd_desc(w, &op, &ymd, wtmd, &xmd);
	if (rc == 0)
		rc = nsl_dnnl_check(dnnl_primitive_desc_create(&pd, &op, NULL, l->ctx->cc->engine, NULL),
				    "backward-data through the transposed weights");
	if (rc == 0) {
		*out = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
		*ref = impl_is_ref(pd);
	}
	dnnl_primitive_desc_destroy(pd);
	return rc;
}

/* Backward data through transposed weights (wt), where the kind has it, the stage runs many
 * micro-batches a batch and real kernels serve both ends of the batch range; else as oneDNN has
 * it. Only a failure to allocate is an error. */
static int choose_wt(struct nsl_layer *l)
{
	struct nsl_weighted *w = l->priv;
	dnnl_memory_desc_t any, cand, at_one, perm_md;
	bool ref = false, ref1 = false;
	size_t bytes;
	int rc;

	if (w->kind->bwd_as_fwd_desc == NULL || w->wmd.ndims != 2 ||
	    !nsl_wt_wanted(l->index, l->ctx->defer_rows, l->ctx->max_batch))
		return 0;
	if (nsl_dnnl_check(dnnl_memory_desc_init_by_tag(&any, 2, (dnnl_dims_t){ w->wmd.dims[1], w->wmd.dims[0] },
							dnnl_f32, dnnl_format_tag_any), "weight descriptor") < 0 ||
	    wt_layout(l, l->ctx->max_batch, &any, &cand, &ref) < 0 || wt_layout(l, 1, &cand, &at_one, &ref1) < 0 ||
	    nsl_dnnl_check(dnnl_memory_desc_permute_axes(&perm_md, &w->wmd, (int[]){ 1, 0 }), "transposed weights") < 0) {
		nsl_error_clear();
		return 0;
	}
	if (ref || ref1)
		return 0;
	bytes = dnnl_memory_desc_get_size(&cand);
	if ((w->wt_buf = nsl_alloc_zeroed(&nsl_allocator_libc, bytes, "transposed weights")) == NULL)
		return nsl_error_prefix(-ENOMEM, "layer %d (%s)", l->index, w->kind->name);
	rc = nsl_dnnl_reorder(l->ctx->cc, &perm_md, &cand, &w->wt_reorder, "reorder into the transposed weights");
	if (rc == 0)
		rc = nsl_layer_mem(l, &w->wt_from, &perm_md, NULL);
	if (rc == 0)
		rc = nsl_layer_mem(l, &w->wt, &cand, w->wt_buf);
	if (rc < 0)
		return nsl_error_prefix(rc, "layer %d (%s)", l->index, w->kind->name);
	w->wtmd = cand;
	l->scratch_bytes += bytes;
	return 0;
}

/* wt made again from the weights, unless it holds this very version. */
static int refresh_wt(struct nsl_layer *l)
{
	struct nsl_weighted *w = l->priv;
	const struct nsl_param *wp = &l->params[0];
	const dnnl_exec_arg_t args[] = { { DNNL_ARG_FROM, w->wt_from }, { DNNL_ARG_TO, w->wt } };
	int rc;

	if (w->wt_gen == wp->gen)
		return 0;
	if ((rc = nsl_layer_bind(w->wt_from, wp->data)) < 0 ||
	    (rc = nsl_dnnl_exec(l->ctx->cc, w->wt_reorder, 2, args, "transposing the weights")) < 0)
		return rc;
	w->wt_gen = wp->gen;
	return 0;
}

/* The fused activation as a post-op, and the buffer its gradient goes through. */
static int fused_init(struct nsl_layer *l, struct nsl_weighted *w)
{
	dnnl_post_ops_t po = NULL;
	int rc;

	rc = nsl_dnnl_check(dnnl_post_ops_create(&po), "post-ops");
	if (rc == 0)
		rc = nsl_dnnl_check(dnnl_post_ops_append_eltwise(po, 1.0f, nsl_layer_fused_alg(l->fused, false), 0, 0),
				    "fused activation");
	if (rc == 0)
		rc = nsl_dnnl_check(dnnl_primitive_attr_create(&w->attr), "attributes");
	if (rc == 0)
		rc = nsl_dnnl_check(dnnl_primitive_attr_set_post_ops(w->attr, po), "post-ops");
	dnnl_post_ops_destroy(po);
	if (rc == 0) {
		/* Before choose_layout: its probes bind dz's memory object to this buffer. */
		w->dz = nsl_alloc_zeroed(&nsl_allocator_libc,
					 (size_t)l->ctx->max_batch * (size_t)nsl_shape_size(l->out) * sizeof(float),
					 "activation gradient");
		if (w->dz == NULL)
			rc = -ENOMEM;
	}
	return rc;
}

int nsl_weighted_init(struct nsl_layer *l, struct nsl_weighted *w, const struct nsl_wkind *kind,
		      const dnnl_memory_desc_t *plain, int wndim, const int64_t *wdims, int fan_in, int fan_out)
{
	int rc;

	w->kind = kind;
	rc = nsl_dnnl_check(dnnl_memory_desc_init_by_tag(&w->bmd, 1, (dnnl_dims_t){ wdims[0] }, dnnl_f32, dnnl_x),
			    "bias descriptor");
	if (rc == 0 && l->fused != NSL_FUSED_NONE)
		rc = fused_init(l, w);
	if (rc < 0)
		return nsl_error_prefix(rc, "layer %d (%s)", l->index, kind->name);
	rc = choose_layout(l, plain);
	if (rc == 0)
		rc = nsl_layer_param_add(l, "weight", wndim, wdims, &w->wmd, plain, fan_in, fan_out);
	if (rc == 0)
		rc = nsl_layer_param_add(l, "bias", 1, wdims, &w->bmd, &w->bmd, fan_in, fan_out);
	if (rc < 0)
		return rc;
	w->dw_acc = nsl_alloc_zeroed(&nsl_allocator_libc, l->params[0].count * sizeof(float), "gradient scratch");
	w->db_acc = nsl_alloc_zeroed(&nsl_allocator_libc, l->params[1].count * sizeof(float), "gradient scratch");
	if (w->dw_acc == NULL || w->db_acc == NULL)
		return nsl_error_prefix(ENOMEM, "layer %d (%s)", l->index, kind->name);
	l->scratch_bytes = (l->params[0].count + l->params[1].count) * sizeof(float) +
			   (w->dz ? (size_t)l->ctx->max_batch * (size_t)nsl_shape_size(l->out) * sizeof(float) : 0);
	if (l->ctx->defer_rows > 0) {
		const size_t rows = (size_t)l->ctx->defer_rows;

		w->x_all = nsl_alloc_zeroed(&nsl_allocator_libc, rows * (size_t)nsl_shape_size(l->in) * sizeof(float),
					    "deferred weight-gradient inputs");
		w->g_all = nsl_alloc_zeroed(&nsl_allocator_libc, rows * (size_t)nsl_shape_size(l->out) * sizeof(float),
					    "deferred weight-gradient gradients");
		if (w->x_all == NULL || w->g_all == NULL)
			return nsl_error_prefix(ENOMEM, "layer %d (%s)", l->index, kind->name);
		l->scratch_bytes += rows * (size_t)(nsl_shape_size(l->in) + nsl_shape_size(l->out)) * sizeof(float);
	}
	rc = nsl_layer_mem(l, &w->w, &w->wmd, NULL);
	if (rc == 0)
		rc = nsl_layer_mem(l, &w->dw, &w->wmd, NULL);
	if (rc == 0)
		rc = nsl_layer_mem(l, &w->b, &w->bmd, NULL);
	if (rc == 0)
		rc = nsl_layer_mem(l, &w->db, &w->bmd, NULL);
	if (rc == 0)
		rc = choose_wt(l);
	return rc;
}

int nsl_weighted_forward(struct nsl_layer *l, int batch, const float *x, float *y, bool train, uint64_t key)
{
	struct nsl_weighted *w = l->priv;
	struct nsl_prim_slot *s;
	int rc;

	(void)train;
	(void)key;
	rc = nsl_prim_get(l, &w->prims, batch, &s);
	if (rc < 0)
		return rc;
	rc = nsl_layer_bind(w->w, l->params[0].data);
	if (rc == 0)
		rc = nsl_layer_bind(w->b, l->params[1].data);
	if (rc == 0) {
		const dnnl_exec_arg_t wb[] = { { DNNL_ARG_WEIGHTS, w->w }, { DNNL_ARG_BIAS, w->b } };

		rc = nsl_prim_exec_fwd(l->ctx->cc, s, x, y, wb, 2, "forward");
	}
	if (rc < 0)
		return nsl_error_prefix(rc, "layer %d (%s)", l->index, w->kind->name);
	return 0;
}

static int weight_grads(struct nsl_layer *l, struct nsl_prim_slot *s, const float *x, dnnl_memory_t g,
			bool accumulate);

static void add_into(float *dst, const float *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] += src[i];
}

int nsl_weighted_backward(struct nsl_layer *l, int batch, const float *x, const float *y, const float *dy,
			  float *dx, bool accumulate)
{
	struct nsl_weighted *w = l->priv;
	struct nsl_param *wp = &l->params[0];
	struct nsl_prim_slot *s;
	dnnl_memory_t g;
	int rc;

	rc = nsl_prim_get(l, &w->prims, batch, &s);
	if (rc < 0)
		return rc;
	g = s->dy;
	rc = nsl_layer_bind(s->dy, dy);
	if (rc == 0 && s->act_bwd != NULL) {
		const dnnl_exec_arg_t args[] = {
			{ DNNL_ARG_DST, s->y }, { DNNL_ARG_DIFF_DST, s->dy }, { DNNL_ARG_DIFF_SRC, s->dz },
		};

		g = s->dz;
		rc = nsl_layer_bind(s->y, y);
		if (rc == 0)
			rc = nsl_dnnl_exec(l->ctx->cc, s->act_bwd, 3, args, "activation backward");
	}
	if (rc == 0 && dx != NULL && w->wt != NULL) {
		const dnnl_exec_arg_t args[] = { { DNNL_ARG_SRC, g }, { DNNL_ARG_WEIGHTS, w->wt }, { DNNL_ARG_DST, s->dx } };

		rc = nsl_layer_bind(s->dx, dx);
		if (rc == 0)
			rc = refresh_wt(l);
		if (rc == 0)
			rc = nsl_dnnl_exec(l->ctx->cc, s->bwd, 3, args, "backward data");
	} else if (rc == 0 && dx != NULL) {
		const dnnl_exec_arg_t args[] = {
			{ DNNL_ARG_DIFF_DST, g }, { DNNL_ARG_WEIGHTS, w->w }, { DNNL_ARG_DIFF_SRC, s->dx },
		};

		rc = nsl_layer_bind(s->dx, dx);
		if (rc == 0)
			rc = nsl_layer_bind(w->w, wp->data);
		if (rc == 0)
			rc = nsl_dnnl_exec(l->ctx->cc, s->bwd, 3, args, "backward data");
	}
	if (rc == 0 && w->x_all != NULL) {
		/* Deferred: keep this batch's rows for the flush, where they are one op's rows. */
		const size_t in = (size_t)nsl_shape_size(l->in), out = (size_t)nsl_shape_size(l->out);
		const int row0 = l->defer_row0 >= 0 ? l->defer_row0 : w->rows_kept;
		const float *gsrc = g == s->dz ? w->dz : dy;

		if (row0 + batch > l->ctx->defer_rows)
			return nsl_error_set(EINVAL, "layer %d (%s): rows %d-%d are past the %d a batch holds", l->index,
					     w->kind->name, row0, row0 + batch - 1, l->ctx->defer_rows);
		memcpy(w->x_all + (size_t)row0 * in, x, (size_t)batch * in * sizeof(float));
		memcpy(w->g_all + (size_t)row0 * out, gsrc, (size_t)batch * out * sizeof(float));
		if (row0 + batch > w->rows_kept)
			w->rows_kept = row0 + batch;
		return 0;
	}
	if (rc == 0)
		rc = weight_grads(l, s, x, g, accumulate);
	if (rc < 0)
		return nsl_error_prefix(rc, "layer %d (%s)", l->index, w->kind->name);
	return 0;
}

int nsl_weighted_flush(struct nsl_layer *l, bool accumulate)
{
	struct nsl_weighted *w = l->priv;
	struct nsl_prim_slot *s;
	int rc, rows = w->rows_kept;

	if (rows == 0)
		return 0;
	w->rows_kept = 0;
	/* The batch's shape is made once, at the first flush; only its weights op runs. */
	if ((rc = nsl_prim_prepare(l, &w->prims, rows, prepared_build)) < 0 ||
	    (rc = nsl_prim_get(l, &w->prims, rows, &s)) < 0)
		return rc;
	if ((rc = nsl_layer_bind(s->dy, w->g_all)) == 0)
		rc = weight_grads(l, s, w->x_all, s->dy, accumulate);
	return rc < 0 ? nsl_error_prefix(rc, "layer %d (%s) weight gradients", l->index, w->kind->name) : 1;
}

/* dW and db of x and g (bound to the slot's memory) into the gradients, added or overwritten. */
static int weight_grads(struct nsl_layer *l, struct nsl_prim_slot *s, const float *x, dnnl_memory_t g,
			bool accumulate)
{
	struct nsl_weighted *w = l->priv;
	struct nsl_param *wp = &l->params[0], *bp = &l->params[1];
	int rc = nsl_layer_bind(s->x, x);

	/* Accumulating: oneDNN overwrites its outputs, so this call's gradients go to scratch first. */
	if (rc == 0)
		rc = nsl_layer_bind(w->dw, accumulate ? w->dw_acc : wp->grad);
	if (rc == 0)
		rc = nsl_layer_bind(w->db, accumulate ? w->db_acc : bp->grad);
	if (rc == 0) {
		const dnnl_exec_arg_t args[] = {
			{ DNNL_ARG_SRC, s->x }, { DNNL_ARG_DIFF_DST, g },
			{ DNNL_ARG_DIFF_WEIGHTS, w->dw }, { DNNL_ARG_DIFF_BIAS, w->db },
		};

		rc = nsl_dnnl_exec(l->ctx->cc, s->bwd_weights, 4, args, "backward weights");
	}
	if (rc == 0 && accumulate) {
		add_into(wp->grad, w->dw_acc, wp->count);
		add_into(bp->grad, w->db_acc, bp->count);
	}
	return rc;
}

void nsl_weighted_fini(struct nsl_layer *l)
{
	struct nsl_weighted *w = l->priv;

	if (w == NULL)
		return;
	nsl_prim_table_free(&w->prims);
	dnnl_memory_destroy(w->w);
	dnnl_memory_destroy(w->wt);
	dnnl_memory_destroy(w->wt_from);
	dnnl_primitive_destroy(w->wt_reorder);
	nsl_alloc_free(&nsl_allocator_libc, w->wt_buf);
	dnnl_memory_destroy(w->b);
	dnnl_memory_destroy(w->dw);
	dnnl_memory_destroy(w->db);
	dnnl_primitive_attr_destroy(w->attr);
	nsl_alloc_free(&nsl_allocator_libc, w->dw_acc);
	nsl_alloc_free(&nsl_allocator_libc, w->db_acc);
	nsl_alloc_free(&nsl_allocator_libc, w->dz);
	nsl_alloc_free(&nsl_allocator_libc, w->x_all);
	nsl_alloc_free(&nsl_allocator_libc, w->g_all);
	free(w);
	l->priv = NULL;
}
