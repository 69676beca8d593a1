/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Dense (fully connected) layer on oneDNN inner product, with an optional fused activation.
 * The input is read as N x (C*H*W): the bytes of NCHW, so the plain weight is [out, C*H*W] in
 * C,H,W order, what torch.nn.Linear after nn.Flatten sees. The passes are weighted.c's.
 */
#include <errno.h>
#include <stdlib.h>

#include <oneapi/dnnl/dnnl.h>

#include "nsplit/error.h"
#include "weighted_pvt.h"

struct dense {
	struct nsl_weighted w;        /* first: l->priv points at both */
	int64_t in, out;              /* flattened input width, units */
};

static int md2(dnnl_memory_desc_t *md, int64_t a, int64_t b, dnnl_format_tag_t tag)
{
	dnnl_dims_t dims = { a, b };

	return nsl_dnnl_check(dnnl_memory_desc_init_by_tag(md, 2, dims, dnnl_f32, tag), "dense: memory descriptor");
}

static int dense_act_mds(const struct nsl_weighted *w, int64_t batch, dnnl_memory_desc_t *xmd, dnnl_memory_desc_t *ymd)
{
	const struct dense *d = (const struct dense *)w;
	int rc = md2(xmd, batch, d->in, dnnl_nc);

	return rc < 0 ? rc : md2(ymd, batch, d->out, dnnl_nc);
}

static int dense_fwd_desc(const struct nsl_weighted *w, union nsl_wop_desc *op, const dnnl_memory_desc_t *xmd,
			  const dnnl_memory_desc_t *wmd, const dnnl_memory_desc_t *ymd)
{
	return nsl_dnnl_check(dnnl_inner_product_forward_desc_init(&op->ip, dnnl_forward_training, xmd, wmd, &w->bmd,
								   ymd),
			      "dense: forward descriptor");
}

static int dense_bwd_data_desc(const struct nsl_weighted *w, union nsl_wop_desc *op, const dnnl_memory_desc_t *xmd,
			       const dnnl_memory_desc_t *wmd, const dnnl_memory_desc_t *ymd)
{
	(void)w;
	return nsl_dnnl_check(dnnl_inner_product_backward_data_desc_init(&op->ip, xmd, wmd, ymd),
			      "dense: backward-data descriptor");
}

static int dense_bwd_weights_desc(const struct nsl_weighted *w, union nsl_wop_desc *op,
				  const dnnl_memory_desc_t *xmd, const dnnl_memory_desc_t *wmd,
				  const dnnl_memory_desc_t *ymd)
{
	return nsl_dnnl_check(dnnl_inner_product_backward_weights_desc_init(&op->ip, xmd, wmd, &w->bmd, ymd),
			      "dense: backward-weights descriptor");
}

/* dx = dy W: a forward inner product of dy through W's transpose, no bias. */
static int dense_bwd_as_fwd_desc(const struct nsl_weighted *w, union nsl_wop_desc *op, const dnnl_memory_desc_t *ymd,
				 const dnnl_memory_desc_t *wtmd, const dnnl_memory_desc_t *xmd)
{
	(void)w;
	return nsl_dnnl_check(dnnl_inner_product_forward_desc_init(&op->ip, dnnl_forward_inference, ymd, wtmd, NULL, xmd),
			      "dense: backward-data descriptor through the transposed weights");
}

static const struct nsl_wkind dense_kind = {
	.name = "dense",
	.act_mds = dense_act_mds,
	.fwd_desc = dense_fwd_desc,
	.bwd_data_desc = dense_bwd_data_desc,
	.bwd_weights_desc = dense_bwd_weights_desc,
	.bwd_as_fwd_desc = dense_bwd_as_fwd_desc,
};

static int dense_init(struct nsl_layer *l)
{
	struct dense *d;
	dnnl_memory_desc_t plain;
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
	if (rc < 0)
		return nsl_error_prefix(rc, "layer %d (dense)", l->index);
	return nsl_weighted_init(l, &d->w, &dense_kind, &plain, 2, wdims, (int)d->in, (int)d->out);
}

const struct nsl_layer_ops nsl_layer_dense_ops = {
	.name = "dense",
	.init = dense_init,
	.prepare = nsl_weighted_prepare,
	.forward = nsl_weighted_forward,
	.backward = nsl_weighted_backward,
	.flush = nsl_weighted_flush,
	.fini = nsl_weighted_fini,
};
