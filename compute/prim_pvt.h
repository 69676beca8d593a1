/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The oneDNN objects a layer keeps per batch size. A primitive's shapes are fixed when it is
 * built, so a layer that runs on oneDNN (activations, pooling, dense and conv through weighted.c)
 * builds one slot for each batch size it is prepared for, at most NSL_LAYER_MAX_BATCHES, and its
 * forward and backward pick the slot by batch. The kind fills a slot (its own descriptors); this
 * table checks the batch, finds, counts and frees the slots, and runs a slot's forward and
 * backward-data primitives with the arguments every kind passes.
 *
 * A kind sets only the members it uses; the others stay NULL.
 */
#ifndef NSL_PRIM_PVT_H
#define NSL_PRIM_PVT_H

#include <oneapi/dnnl/dnnl.h>

#include "layer_pvt.h"

#define NSL_PRIM_EXTRA_MAX 2   /* arguments a kind adds to a slot's own (weights, bias) */

struct nsl_prim_slot {
	int batch;
	dnnl_primitive_t fwd;
	dnnl_primitive_t bwd;          /* dx from dy (backward data) */
	dnnl_primitive_t bwd_weights;  /* dense, conv */
	dnnl_primitive_t act_bwd;      /* dense, conv: the fused activation's gradient */
	dnnl_memory_t x, y, dy, dx;    /* activations; their buffers are bound on each call */
	dnnl_memory_t dz;              /* dense, conv with a fused activation: act'(y) * dy */
	dnnl_memory_t ws;              /* max pooling: the forward's workspace */
};

struct nsl_prim_table {
	int nslots;
	struct nsl_prim_slot slot[NSL_LAYER_MAX_BATCHES];
};

/*
 * Fill `s` for `batch` rows: primitives and memory objects. A build may stop half-way on error;
 * nsl_prim_prepare frees what it made.
 */
typedef int (*nsl_prim_build_t)(struct nsl_layer *l, struct nsl_prim_slot *s, int batch);

/*
 * The prepare step of a layer kind: a slot for `batch` through `build` unless one exists.
 * 0, or -EINVAL (batch outside 1..max_batch), -ENOSPC (one batch size more than NSL_LAYER_MAX_BATCHES) or build's error,
 * with the message set; the table is unchanged on error.
 */
int nsl_prim_prepare(struct nsl_layer *l, struct nsl_prim_table *t, int batch, nsl_prim_build_t build);

/* The slot of a prepared batch in *s: 0, or -EINVAL with a message when it was not prepared. */
int nsl_prim_get(const struct nsl_layer *l, struct nsl_prim_table *t, int batch, struct nsl_prim_slot **s);

/*
 * Run s->fwd from x into y: binds them and passes SRC, DST, the workspace when the slot has one
 * and the `nextra` arguments (at most NSL_PRIM_EXTRA_MAX) whose memory the kind bound itself.
 * 0 or a negative errno with the message of nsl_dnnl_exec under `what`.
 */
int nsl_prim_exec_fwd(const struct nsl_compute *cc, struct nsl_prim_slot *s, const float *x, float *y,
		      const dnnl_exec_arg_t *extra, int nextra, const char *what);

/* Run s->bwd from dy into dx: as nsl_prim_exec_fwd with DIFF_DST and DIFF_SRC. */
int nsl_prim_exec_bwd(const struct nsl_compute *cc, struct nsl_prim_slot *s, const float *dy, float *dx,
		      const dnnl_exec_arg_t *extra, int nextra, const char *what);

/* Memory objects x and dx of layout xmd, y and dy of ymd, with no buffer yet. */
int nsl_prim_slot_acts(const struct nsl_layer *l, struct nsl_prim_slot *s, const dnnl_memory_desc_t *xmd,
		       const dnnl_memory_desc_t *ymd);

/* Safe on a half-built or empty slot; leaves it zeroed. */
void nsl_prim_slot_free(struct nsl_prim_slot *s);

/* Every slot; the table is left empty. */
void nsl_prim_table_free(struct nsl_prim_table *t);

#endif
