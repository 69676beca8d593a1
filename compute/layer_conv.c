/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * 2-D convolution (stride 1, no padding, PyTorch's nn.Conv2d defaults) on oneDNN, with an
 * optional fused activation. Activations stay plain NCHW; only the weights take oneDNN's layout.
 * The passes are weighted.c's.
 */
#include <errno.h>
#include <stdlib.h>

#include <oneapi/dnnl/dnnl.h>

#include "nsplit/error.h"
#include "weighted_pvt.h"

struct conv {
	struct nsl_weighted w;        /* first: l->priv points at both */
	int64_t ic, ih, iw, oc, oh, ow, kh, kw;
	dnnl_alg_kind_t alg;          /* direct, or auto where direct has no kernel */
};

static const dnnl_dims_t conv_strides = { 1, 1 }, conv_pad = { 0, 0 };

static int md4(dnnl_memory_desc_t *md, int64_t a, int64_t b, int64_t c, int64_t e, dnnl_format_tag_t tag)
{
	dnnl_dims_t dims = { a, b, c, e };

	return nsl_dnnl_check(dnnl_memory_desc_init_by_tag(md, 4, dims, dnnl_f32, tag), "conv: memory descriptor");
}

/* Source and destination of `batch` rows, plain NCHW. */
static int conv_act_mds(const struct nsl_weighted *w, int64_t batch, dnnl_memory_desc_t *xmd, dnnl_memory_desc_t *ymd)
{
	const struct conv *d = (const struct conv *)w;
	int rc = md4(xmd, batch, d->ic, d->ih, d->iw, dnnl_nchw);

	return rc < 0 ? rc : md4(ymd, batch, d->oc, d->oh, d->ow, dnnl_nchw);
}

static int conv_fwd_desc(const struct nsl_weighted *w, union nsl_wop_desc *op, const dnnl_memory_desc_t *xmd,
			 const dnnl_memory_desc_t *wmd, const dnnl_memory_desc_t *ymd)
{
	const struct conv *d = (const struct conv *)w;

	return nsl_dnnl_check(dnnl_convolution_forward_desc_init(&op->cv, dnnl_forward_training, d->alg, xmd, wmd,
								 &w->bmd, ymd, conv_strides, conv_pad, conv_pad),
			      "conv: forward descriptor");
}

static int conv_bwd_data_desc(const struct nsl_weighted *w, union nsl_wop_desc *op, const dnnl_memory_desc_t *xmd,
			      const dnnl_memory_desc_t *wmd, const dnnl_memory_desc_t *ymd)
{
	const struct conv *d = (const struct conv *)w;

	return nsl_dnnl_check(dnnl_convolution_backward_data_desc_init(&op->cv, d->alg, xmd, wmd, ymd, conv_strides,
								       conv_pad, conv_pad),
			      "conv: backward-data descriptor");
}

static int conv_bwd_weights_desc(const struct nsl_weighted *w, union nsl_wop_desc *op,
				 const dnnl_memory_desc_t *xmd, const dnnl_memory_desc_t *wmd,
				 const dnnl_memory_desc_t *ymd)
{
	const struct conv *d = (const struct conv *)w;

	return nsl_dnnl_check(dnnl_convolution_backward_weights_desc_init(&op->cv, d->alg, xmd, wmd, &w->bmd, ymd,
									  conv_strides, conv_pad, conv_pad),
			      "conv: backward-weights descriptor");
}

/*
 * Direct convolution first, auto only where direct has no kernel: measured on AVX-512 at batch
 * 64 (1->32 5x5 on 28x28, 32->64 5x5 on 12x12, 16->32 3x3 on 14x14), both pick the same
 * im2col+GEMM kernels ("gemm:jit") and plain oihw weights for NCHW activations, with equal times;
 * direct keeps winograd, whose results differ numerically, from being chosen on other CPUs.
 */
static bool conv_fallback(struct nsl_weighted *w)
{
	struct conv *d = (struct conv *)w;

	if (d->alg != dnnl_convolution_direct)
		return false;
	d->alg = dnnl_convolution_auto;
	return true;
}

static const struct nsl_wkind conv_kind = {
	.name = "conv",
	.act_mds = conv_act_mds,
	.fwd_desc = conv_fwd_desc,
	.bwd_data_desc = conv_bwd_data_desc,
	.bwd_weights_desc = conv_bwd_weights_desc,
	.fallback = conv_fallback,
};

static int conv_init(struct nsl_layer *l)
{
	struct conv *d;
	dnnl_memory_desc_t plain;
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
	d->alg = dnnl_convolution_direct;
	l->out = (struct nsl_shape){ (int)d->oc, (int)d->oh, (int)d->ow };
	wdims[0] = d->oc;
	wdims[1] = d->ic;
	wdims[2] = d->kh;
	wdims[3] = d->kw;
	rc = md4(&plain, d->oc, d->ic, d->kh, d->kw, dnnl_oihw);
	if (rc < 0)
		return nsl_error_prefix(rc, "layer %d (conv)", l->index);
	return nsl_weighted_init(l, &d->w, &conv_kind, &plain, 4, wdims, (int)(d->ic * d->kh * d->kw),
				 (int)(d->oc * d->kh * d->kw));
}

const struct nsl_layer_ops nsl_layer_conv_ops = {
	.name = "conv",
	.init = conv_init,
	.prepare = nsl_weighted_prepare,
	.forward = nsl_weighted_forward,
	.backward = nsl_weighted_backward,
	.flush = nsl_weighted_flush,
	.fini = nsl_weighted_fini,
};
