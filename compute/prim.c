/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>

#include "nsplit/error.h"
#include "nsplit/model.h"
#include "prim_pvt.h"

/*
 * Messages name the kind, not the ops table: one table serves relu, tanh, sigmoid and gelu, and
 * "layer 3 (gelu)" says which.
 */
static const char *kind_name(const struct nsl_layer *l)
{
	return nsl_layer_kind_name(l->spec.kind);
}

static struct nsl_prim_slot *slot_find(struct nsl_prim_table *t, int batch)
{
	for (int i = 0; i < t->nslots; i++)
		if (t->slot[i].batch == batch)
			return &t->slot[i];
	return NULL;
}

int nsl_prim_prepare(struct nsl_layer *l, struct nsl_prim_table *t, int batch, nsl_prim_build_t build)
{
	struct nsl_prim_slot *s;
	int rc;

	/* Deferred weight gradients run at the batch's size, which may pass the micro-batch's. */
	if (batch < 1 || (batch > l->ctx->max_batch && batch > l->ctx->defer_rows))
		return nsl_error_set(EINVAL, "layer %d (%s): batch %d outside 1..%d (the max batch)", l->index,
				     kind_name(l), batch, l->ctx->max_batch);
	if (slot_find(t, batch) != NULL)
		return 0;
	if (t->nslots == NSL_LAYER_MAX_BATCHES)
		return nsl_error_set(ENOSPC, "layer %d (%s): batch %d would be batch size number %d; at most %d",
				     l->index, kind_name(l), batch, t->nslots + 1, NSL_LAYER_MAX_BATCHES);
	s = &t->slot[t->nslots];
	s->batch = batch;
	rc = build(l, s, batch);
	if (rc < 0) {
		nsl_prim_slot_free(s);
		return rc;
	}
	t->nslots++;
	return 0;
}

int nsl_prim_get(const struct nsl_layer *l, struct nsl_prim_table *t, int batch, struct nsl_prim_slot **s)
{
	*s = slot_find(t, batch);
	if (*s == NULL)
		return nsl_error_set(EINVAL, "layer %d (%s): batch %d was not prepared", l->index, kind_name(l),
				     batch);
	return 0;
}

int nsl_prim_slot_acts(const struct nsl_layer *l, struct nsl_prim_slot *s, const dnnl_memory_desc_t *xmd,
		       const dnnl_memory_desc_t *ymd)
{
	int rc = nsl_layer_mem(l, &s->x, xmd, NULL);

	if (rc == 0)
		rc = nsl_layer_mem(l, &s->dx, xmd, NULL);
	if (rc == 0)
		rc = nsl_layer_mem(l, &s->y, ymd, NULL);
	if (rc == 0)
		rc = nsl_layer_mem(l, &s->dy, ymd, NULL);
	return rc;
}

/*
 * A slot's primitive with its input and output activations bound to `src` and `dst`, its
 * workspace if any and the kind's arguments.
 */
static int exec_slot(const struct nsl_compute *cc, dnnl_primitive_t prim, dnnl_exec_arg_t in, const float *src,
		     dnnl_exec_arg_t out, float *dst, dnnl_memory_t ws, const dnnl_exec_arg_t *extra, int nextra,
		     const char *what)
{
	dnnl_exec_arg_t args[3 + NSL_PRIM_EXTRA_MAX] = { in, out };
	int n = 2;
	int rc;

	if (nextra < 0 || nextra > NSL_PRIM_EXTRA_MAX)
		return nsl_error_set(EINVAL, "%s: %d extra arguments, at most %d", what, nextra, NSL_PRIM_EXTRA_MAX);
	if (ws != NULL)
		args[n++] = (dnnl_exec_arg_t){ DNNL_ARG_WORKSPACE, ws };
	for (int i = 0; i < nextra; i++)
		args[n++] = extra[i];
	rc = nsl_layer_bind(in.memory, src);
	if (rc == 0)
		rc = nsl_layer_bind(out.memory, dst);
	if (rc == 0)
		rc = nsl_dnnl_exec(cc, prim, n, args, what);
	return rc;
}

int nsl_prim_exec_fwd(const struct nsl_compute *cc, struct nsl_prim_slot *s, const float *x, float *y,
		      const dnnl_exec_arg_t *extra, int nextra, const char *what)
{
	return exec_slot(cc, s->fwd, (dnnl_exec_arg_t){ DNNL_ARG_SRC, s->x }, x,
			 (dnnl_exec_arg_t){ DNNL_ARG_DST, s->y }, y, s->ws, extra, nextra, what);
}

int nsl_prim_exec_bwd(const struct nsl_compute *cc, struct nsl_prim_slot *s, const float *dy, float *dx,
		      const dnnl_exec_arg_t *extra, int nextra, const char *what)
{
	return exec_slot(cc, s->bwd, (dnnl_exec_arg_t){ DNNL_ARG_DIFF_DST, s->dy }, dy,
			 (dnnl_exec_arg_t){ DNNL_ARG_DIFF_SRC, s->dx }, dx, s->ws, extra, nextra, what);
}

void nsl_prim_slot_free(struct nsl_prim_slot *s)
{
	dnnl_primitive_destroy(s->fwd);
	dnnl_primitive_destroy(s->bwd);
	dnnl_primitive_destroy(s->bwd_weights);
	dnnl_primitive_destroy(s->act_bwd);
	dnnl_memory_destroy(s->x);
	dnnl_memory_destroy(s->y);
	dnnl_memory_destroy(s->dy);
	dnnl_memory_destroy(s->dx);
	dnnl_memory_destroy(s->dz);
	dnnl_memory_destroy(s->ws);
	memset(s, 0, sizeof(*s));
}

void nsl_prim_table_free(struct nsl_prim_table *t)
{
	for (int i = 0; i < t->nslots; i++)
		nsl_prim_slot_free(&t->slot[i]);
	t->nslots = 0;
}
