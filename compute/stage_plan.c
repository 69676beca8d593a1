/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A stage's memory from the model alone, before any of it is allocated: what a peer checks
 * against its budget for every stage the rotation will bring it. The same accounting as
 * nsl_stage_memory, with upper bounds where only oneDNN knows the exact size: blocked weight
 * layouts pad channels to multiples of 16, a max-pooling workspace is taken as one float per
 * output. oneDNN's own scratchpads are not known here.
 */
#include <errno.h>
#include <string.h>

#include "nsplit/error.h"
#include "nsplit/stage.h"
#include "layer_pvt.h"

static size_t pad16(int64_t n)
{
	return (size_t)((n + 15) / 16 * 16);
}

/* Parameters as a blocked layout may hold them. */
static size_t layer_param_bytes(const struct nsl_model *m, int i)
{
	const struct nsl_layer_spec *s = &m->layers[i];
	const struct nsl_shape in = m->shapes[i];

	switch (s->kind) {
	case NSL_LAYER_DENSE:
		return (pad16(nsl_shape_size(in)) * pad16(s->units) + pad16(s->units)) * sizeof(float);
	case NSL_LAYER_CONV:
		return (pad16(s->units) * pad16(in.c) * (size_t)s->kh * (size_t)s->kw + pad16(s->units)) * sizeof(float);
	default:
		return 0;
	}
}

int nsl_stage_memory_plan(const struct nsl_stage_config *cfg, int batch, struct nsl_stage_memory *out)
{
	const struct nsl_model *m = cfg->model;
	const int contexts = cfg->contexts > 0 ? cfg->contexts : 1;
	size_t widest = 0;

	memset(out, 0, sizeof(*out));
	if (m == NULL || cfg->first < 0 || cfg->first >= cfg->last || cfg->last > m->nlayers || batch < 1 ||
	    cfg->optim.ops == NULL)
		return nsl_error_set(EINVAL, "stage memory plan: layers [%d, %d) of %d, batch %d", cfg->first, cfg->last,
				     m ? m->nlayers : 0, batch);
	for (int i = cfg->first; i < cfg->last; i++) {
		const size_t params = layer_param_bytes(m, i);
		const size_t out_bytes = (size_t)batch * (size_t)nsl_shape_size(m->shapes[i + 1]) * sizeof(float);
		const size_t in_floats = (size_t)nsl_shape_size(m->shapes[i]);

		out->params += params;
		out->grads += params;
		out->optim_state += params * (size_t)cfg->optim.ops->state_slots;
		out->activations += out_bytes;
		switch (m->layers[i].kind) {
		case NSL_LAYER_MAXPOOL: out->activations += out_bytes; break;          /* workspace */
		case NSL_LAYER_DROPOUT: out->activations += out_bytes / sizeof(float); break;   /* mask */
		case NSL_LAYER_DENSE:
		case NSL_LAYER_CONV:
			/* gradient sums, dz, and the batch's rows kept for deferred weight gradients */
			out->scratch += params + out_bytes +
					(size_t)(cfg->defer_rows > 0 ? cfg->defer_rows : 0) *
						(in_floats + (size_t)nsl_shape_size(m->shapes[i + 1])) * sizeof(float);
			/* a dense layer's transposed weights, with many micro-batches a batch (weighted.c) */
			if (m->layers[i].kind == NSL_LAYER_DENSE && nsl_wt_wanted(i, cfg->defer_rows, cfg->max_batch))
				out->scratch += params;
			break;
		default: break;
		}
		if (in_floats > widest)
			widest = in_floats;
	}
	out->activations *= (size_t)contexts;
	out->scratch += 2 * (size_t)batch * widest * sizeof(float);
	if (cfg->first > 0)
		out->scratch += (size_t)contexts * (size_t)batch * (size_t)nsl_shape_size(m->shapes[cfg->first]) * sizeof(float);
	out->total = out->params + out->grads + out->optim_state + out->activations + out->scratch;
	return 0;
}
