/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The layer interface inside compute/: one table of operations per layer kind (dense, conv,
 * pooling, activations, flatten, dropout), as DPDK's mempool ops are. A stage owns an array of
 * layers and the buffers between them; a layer owns its parameters, their gradients, its oneDNN
 * primitives and its private scratch.
 *
 * Activations are plain row-major f32: N x C x H x W (oneDNN `nchw`), or N x C (`nc`) for
 * vectors, which is the same bytes for H = W = 1. Weights live in the layout oneDNN picks
 * (format_tag_any, usually blocked) for the largest batch; every other primitive of the layer is
 * created with that same layout, so the weights never move between batch sizes. Plain PyTorch
 * layouts appear only when saving, loading or moving a stage (nsl_param_export/import).
 *
 * Life cycle: create (nsl_layer_create) -> prepare(batch) for each batch size the caller will
 * use (primitives are built there, never in forward/backward) -> forward/backward any number of
 * times -> nsl_layer_free. forward and backward allocate nothing.
 */
#ifndef NSL_LAYER_PVT_H
#define NSL_LAYER_PVT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <oneapi/dnnl/dnnl.h>

#include "nsplit/alloc.h"
#include "nsplit/model.h"
#include "compute_pvt.h"

#define NSL_LAYER_MAX_PARAMS 2
#define NSL_LAYER_MAX_BATCHES 8   /* distinct batch sizes a layer keeps primitives for */

/* An activation applied inside a dense or conv primitive as an eltwise post-op. */
enum nsl_fused_act {
	NSL_FUSED_NONE,
	NSL_FUSED_RELU,
	NSL_FUSED_TANH,
	NSL_FUSED_SIGMOID,
};

/* Micro-batches a weight version must serve (the batch over the largest micro-batch) before a
 * dense layer's transposed weights pay for themselves (weighted.c): at 8 (the demo MLP's 1f1b)
 * runs were 2-9% slower, at 16 and more (N-split's one-sample and 16-row micro-batches) 3-24%
 * faster. */
#define NSL_WT_MICRO_MIN 16

/* Whether dense layer `index` of a stage that keeps defer_rows rows for micro-batches of up to
 * max_batch takes that way (the model's first layer computes no input gradient at all). */
static inline bool nsl_wt_wanted(int index, int defer_rows, int max_batch)
{
	return index > 0 && defer_rows >= NSL_WT_MICRO_MIN * max_batch;
}

struct nsl_param {
	const char *name;          /* "weight" or "bias" */
	float *data;               /* internal layout, `count` floats, from the layer's allocator */
	float *grad;               /* same layout and size as data */
	size_t count;              /* floats in data/grad (blocked layouts may pad) */
	int ndim;                  /* plain PyTorch shape: dense weight [out, in], conv [o, i, kh, kw] */
	int64_t dims[4];
	int64_t numel;             /* product of dims: the plain element count */
	dnnl_memory_desc_t md;     /* internal layout */
	dnnl_memory_desc_t plain_md;
	int fan_in, fan_out;       /* for He/Glorot initialisation */
	uint64_t gen;              /* moves on whenever data's values or buffer change, so copies of
				      them (a dense layer's transposed weights) know they are stale */
	/* Reorders to [0] and from [1] the plain layout, built on first use and kept: every round's
	 * swap and every checkpoint moves parameters through them. */
	dnnl_primitive_t reorder[2];
	dnnl_memory_t reorder_src[2], reorder_dst[2];
};

/* What a layer borrows from its stage. Lives as long as the layer. */
struct nsl_layer_ctx {
	struct nsl_compute *cc;
	const struct nsl_allocator *alloc;  /* parameters and gradients (they travel in swaps) */
	int max_batch;
	int defer_rows;            /* > 0: weight gradients wait for flush, over up to this many rows */
};

struct nsl_layer;

struct nsl_layer_ops {
	const char *name;
	/*
	 * Check the spec against l->in, set l->out, describe and allocate the parameters (values
	 * left zero; the stage initialises them), allocate private scratch sized for max_batch.
	 */
	int (*init)(struct nsl_layer *l);
	/* Build the primitives for `batch` rows (1 <= batch <= max_batch); idempotent. */
	int (*prepare)(struct nsl_layer *l, int batch);
	/*
	 * y = layer(x) for `batch` rows. `train` enables dropout and saving what backward needs;
	 * `key` makes dropout masks a function of (seed, layer index, key, row, element) only.
	 */
	int (*forward)(struct nsl_layer *l, int batch, const float *x, float *y, bool train, uint64_t key);
	/*
	 * Given x and y of the last training forward of this batch and dy = dL/dy: write dx = dL/dx
	 * unless dx is NULL (first layer of a model), and add the parameter gradients into
	 * param.grad (accumulate) or overwrite them (!accumulate). dx never aliases dy.
	 */
	int (*backward)(struct nsl_layer *l, int batch, const float *x, const float *y, const float *dy,
			float *dx, bool accumulate);
	/*
	 * Optional. With ctx->defer_rows, backward computes dx only and keeps its rows' x and
	 * gradient at row l->defer_row0 of a batch-sized buffer; flush then computes the weight
	 * gradients of every row kept, as one batch-sized op, into param.grad (accumulate or not).
	 * Returns 1 when it wrote gradients, 0 when no rows were kept, or a negative errno.
	 */
	int (*flush)(struct nsl_layer *l, bool accumulate);
	/* Release what init and prepare created (not the struct itself). */
	void (*fini)(struct nsl_layer *l);
};

struct nsl_layer {
	const struct nsl_layer_ops *ops;
	struct nsl_layer_spec spec;
	int index;                 /* global layer number in the model */
	uint64_t seed;             /* job seed (dropout) */
	enum nsl_fused_act fused;  /* dense/conv only: activation applied in the same primitive */
	struct nsl_shape in, out;
	int nparams;
	struct nsl_param params[NSL_LAYER_MAX_PARAMS];
	const struct nsl_layer_ctx *ctx;
	size_t scratch_bytes;      /* private scratch held (fused-act gradient, ...) */
	/*
	 * What a training forward leaves for its backward besides x and y (max pooling's workspace,
	 * dropout's mask), sized for max_batch. forward writes and backward reads `saved`, which a
	 * stage points at one buffer per micro-batch in flight; it starts at `own_saved`, allocated
	 * with the layer, so a lone layer works as it is.
	 */
	size_t saved_bytes;
	void *saved;
	void *own_saved;
	size_t scratchpad_bytes;   /* largest oneDNN scratchpad of its primitives */
	int defer_row0;            /* deferred weight gradients: the first row of this backward's batch */
	void *priv;
};

/* The ops table for a kind (never NULL for a valid kind). */
const struct nsl_layer_ops *nsl_layer_ops_get(enum nsl_layer_kind kind);

extern const struct nsl_layer_ops nsl_layer_dense_ops;
extern const struct nsl_layer_ops nsl_layer_conv_ops;
extern const struct nsl_layer_ops nsl_layer_maxpool_ops;
extern const struct nsl_layer_ops nsl_layer_avgpool_ops;
extern const struct nsl_layer_ops nsl_layer_eltwise_ops;   /* relu, tanh, sigmoid, gelu */
extern const struct nsl_layer_ops nsl_layer_flatten_ops;
extern const struct nsl_layer_ops nsl_layer_dropout_ops;

/*
 * Allocate and init a layer of `spec` for per-sample input shape `in`. `fused` is honoured only
 * by dense and conv. Returns NULL with a message naming the layer number on error.
 */
struct nsl_layer *nsl_layer_create(const struct nsl_layer_spec *spec, int index, struct nsl_shape in,
				   enum nsl_fused_act fused, uint64_t seed, const struct nsl_layer_ctx *ctx);

/* NULL-safe: fini, free parameters and the struct. */
void nsl_layer_free(struct nsl_layer *l);

/* Copy a parameter between its internal layout and the plain PyTorch layout (numel floats). */
int nsl_param_export(const struct nsl_compute *cc, const struct nsl_param *p, float *plain);
/* p's internal layout, as bytes another peer can read (nsl_param_load_layout): the size
 * written, 0 when cap is too small. */
size_t nsl_param_layout(const struct nsl_param *p, void *out, size_t cap);
/* Fill p from src (src_len bytes) laid out as `layout` describes: a copy when it is p's own (or,
 * with adopt and src 64-byte aligned, p's buffer becomes src: 1), a reorder when another host's
 * oneDNN chose another; -EPROTO with a message when it is not a layout of p's shape. */
int nsl_param_load_layout(const struct nsl_compute *cc, struct nsl_param *p, const void *layout, size_t layout_len,
			  const void *src, size_t src_len, bool adopt);
int nsl_param_import(const struct nsl_compute *cc, struct nsl_param *p, const float *plain);
/* The same for any buffer in the parameter's internal layout (its optimizer state). */
int nsl_param_to_plain(const struct nsl_compute *cc, const struct nsl_param *p, const float *internal, float *plain);
int nsl_param_from_plain(const struct nsl_compute *cc, const struct nsl_param *p, const float *plain, float *internal);

/*
 * Helpers for the layer kinds (layer.c). Messages name the layer: "layer 3 (dense): <what>".
 *
 * nsl_layer_prim: build a primitive from an op descriptor and record its scratchpad in
 * l->scratchpad_bytes. *pd receives the descriptor when pd is not NULL (caller destroys it);
 * otherwise it is destroyed here. *prim is NULL on error.
 * nsl_layer_mem: a memory object of `md` on the layer's engine with `handle` (NULL: none yet).
 * nsl_layer_bind: point a memory object at a buffer (the per-call step of forward/backward).
 * nsl_layer_param_add: describe parameter l->params[l->nparams++] and allocate its zeroed data
 * and grad (count = size of md) from ctx->alloc; nsl_layer_free releases them.
 * nsl_layer_fused_alg: the oneDNN eltwise algorithm of a fused activation: the plain one for the
 * forward post-op, the *_use_dst_for_bwd one for its gradient from the layer's output.
 */
int nsl_layer_prim(struct nsl_layer *l, const void *op_desc, const_dnnl_primitive_attr_t attr,
		   const_dnnl_primitive_desc_t hint, dnnl_primitive_desc_t *pd, dnnl_primitive_t *prim,
		   const char *what);
int nsl_layer_mem(const struct nsl_layer *l, dnnl_memory_t *m, const dnnl_memory_desc_t *md, void *handle);
int nsl_layer_bind(dnnl_memory_t m, const void *p);
int nsl_layer_param_add(struct nsl_layer *l, const char *name, int ndim, const int64_t *dims,
			const dnnl_memory_desc_t *md, const dnnl_memory_desc_t *plain_md, int fan_in,
			int fan_out);
dnnl_alg_kind_t nsl_layer_fused_alg(enum nsl_fused_act f, bool backward);

#endif
