/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What dense and conv share: a layer with a weight and a bias run by one oneDNN op (inner
 * product or convolution) forward, backward-data and backward-weights, with an optional fused
 * activation. The kinds differ only in their shapes and in how the three op descriptors are
 * made; weighted.c holds everything else (weight layout choice, what a batch's slot holds, the
 * forward and backward passes, gradient accumulation), prim.c the table of slots.
 *
 * A kind's private struct starts with a struct nsl_weighted, which l->priv points at.
 */
#ifndef NSL_WEIGHTED_PVT_H
#define NSL_WEIGHTED_PVT_H

#include <stdbool.h>
#include <stdint.h>

#include <oneapi/dnnl/dnnl.h>

#include "prim_pvt.h"

union nsl_wop_desc {
	dnnl_inner_product_desc_t ip;
	dnnl_convolution_desc_t cv;
};

struct nsl_weighted;

struct nsl_wkind {
	const char *name;   /* in messages: "dense", "conv" */
	/* The plain activation layouts of `batch` rows. */
	int (*act_mds)(const struct nsl_weighted *w, int64_t batch, dnnl_memory_desc_t *xmd, dnnl_memory_desc_t *ymd);
	/* The three op descriptors for activations xmd/ymd and weights wmd (bias: w->bmd). */
	int (*fwd_desc)(const struct nsl_weighted *w, union nsl_wop_desc *op, const dnnl_memory_desc_t *xmd,
			const dnnl_memory_desc_t *wmd, const dnnl_memory_desc_t *ymd);
	int (*bwd_data_desc)(const struct nsl_weighted *w, union nsl_wop_desc *op, const dnnl_memory_desc_t *xmd,
			     const dnnl_memory_desc_t *wmd, const dnnl_memory_desc_t *ymd);
	int (*bwd_weights_desc)(const struct nsl_weighted *w, union nsl_wop_desc *op,
				const dnnl_memory_desc_t *xmd, const dnnl_memory_desc_t *wmd,
				const dnnl_memory_desc_t *ymd);
	/*
	 * Optional: the forward descriptor had no kernel (-ENOTSUP); switch to another algorithm and
	 * return true to try again, or false to give up.
	 */
	bool (*fallback)(struct nsl_weighted *w);
	/* Optional: backward data as a forward op, dx (xmd) from dy (ymd) through weights laid out
	 * as wtmd, the transposed shape (see wt below). */
	int (*bwd_as_fwd_desc)(const struct nsl_weighted *w, union nsl_wop_desc *op, const dnnl_memory_desc_t *ymd,
			       const dnnl_memory_desc_t *wtmd, const dnnl_memory_desc_t *xmd);
};

struct nsl_weighted {
	const struct nsl_wkind *kind;
	dnnl_primitive_attr_t attr;   /* the fused activation as a post-op; NULL when none */
	dnnl_memory_desc_t wmd, bmd;  /* wmd is the layout every primitive is forced to use */
	dnnl_memory_t w, b, dw, db;
	/*
	 * Dense layers run by many micro-batches a weight version: backward data as a forward inner
	 * product on the transposed weights (wt, in its own layout wtmd), made once a version. oneDNN
	 * 2.6's backward-data transposes the weights into scratch at every call instead: on a
	 * 1024x1024 layer 282 us a 16-row call against 159, where making wt takes 317 us.
	 */
	dnnl_memory_desc_t wtmd;
	dnnl_memory_t wt, wt_from;    /* wt NULL: backward-data as oneDNN has it (fewer than
				         NSL_WT_MICRO_MIN micro-batches a batch, a conv layer) */
	dnnl_primitive_t wt_reorder;
	float *wt_buf;
	uint64_t wt_gen;              /* the weights' generation wt was made from (nsl_param.gen) */
	float *dw_acc, *db_acc;       /* one call's gradients when accumulating */
	float *dz;                    /* act'(y) * dy, max_batch x outputs */
	/* Deferred weight gradients: every row's input and output gradient since the last flush. */
	float *x_all, *g_all;         /* defer_rows x inputs, defer_rows x outputs */
	int rows_kept;                /* rows [0, rows_kept) hold a backward's data */
	struct nsl_prim_table prims;
};

/*
 * The rest of init once the kind has set l->out and its shapes: the bias and fused activation,
 * the weight layout (see weighted.c), the parameters "weight" (plain shape wdims[0..wndim)) and
 * "bias" (wdims[0] outputs), scratch and memory objects. 0 or a negative errno, message set.
 */
int nsl_weighted_init(struct nsl_layer *l, struct nsl_weighted *w, const struct nsl_wkind *kind,
		      const dnnl_memory_desc_t *plain, int wndim, const int64_t *wdims, int fan_in, int fan_out);

int nsl_weighted_prepare(struct nsl_layer *l, int batch);
int nsl_weighted_forward(struct nsl_layer *l, int batch, const float *x, float *y, bool train, uint64_t key);
int nsl_weighted_backward(struct nsl_layer *l, int batch, const float *x, const float *y, const float *dy,
			  float *dx, bool accumulate);
int nsl_weighted_flush(struct nsl_layer *l, bool accumulate);
/* Releases everything and frees l->priv. */
void nsl_weighted_fini(struct nsl_layer *l);

#endif
