/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nsplit/error.h"
#include "nsplit/rng.h"
#include "nsplit/stage.h"
#include "layer_pvt.h"

struct stage_param {
	struct nsl_param *p;
	int layer;                     /* global layer number */
	float *state[2];               /* optimizer buffers, count floats each */
};

/* One micro-batch in flight: its training forward's outputs and saved state, kept for backward. */
struct inflight {
	float **out;                   /* out[j]: output of executed layer j, max_batch rows */
	void **saved;                  /* saved[j]: layer j's saved state, or NULL */
	float *dx;                     /* its input gradient (NULL when the stage starts the model) */
	const float *x;                /* input of the training forward */
	int batch;                     /* rows of that forward; 0 = none pending */
};

struct nsl_stage {
	struct nsl_compute *cc;
	const struct nsl_model *m;
	int first, last;
	int max_batch;
	uint64_t seed;
	struct nsl_optim_config optim;
	const struct nsl_allocator *alloc;
	struct nsl_layer_ctx ctx;

	int nl;                        /* executed layers (an activation fused into its producer is not one) */
	struct nsl_layer **layers;
	float *grad_buf[2];            /* ping-pong input gradients between layers, max_batch x widest */
	int ncontexts;
	struct inflight *inflight;     /* ncontexts of them */

	int nparams;
	struct stage_param *params;

	int prepared[NSL_LAYER_MAX_BATCHES];
	int nprepared;

	uint64_t steps;
	bool grads_zero;               /* the next backward overwrites instead of adding */
	bool no_fuse;
	bool no_init;
};

static enum nsl_fused_act fusable(enum nsl_layer_kind k)
{
	/* nsl_model_fuses (model.c) says the same of whole models: keep the two in step. */
	switch (k) {
	case NSL_LAYER_RELU: return NSL_FUSED_RELU;
	case NSL_LAYER_TANH: return NSL_FUSED_TANH;
	case NSL_LAYER_SIGMOID: return NSL_FUSED_SIGMOID;
	default: return NSL_FUSED_NONE;
	}
}

/*
 * He-uniform where a rectifier follows (keeps activation variance through ReLU/GELU), Glorot-
 * uniform elsewhere. The stream depends only on the global layer number and the parameter, so
 * every split of the model draws the same values.
 */
static int init_param(struct nsl_stage *s, struct stage_param *sp, int k)
{
	struct nsl_param *p = sp->p;
	const struct nsl_model *m = s->m;
	float *plain = calloc((size_t)p->numel, sizeof(float));
	int rc;

	if (plain == NULL)
		return nsl_error_set(ENOMEM, "layer %d: no memory to initialise %s", sp->layer, p->name);
	if (strcmp(p->name, "weight") == 0) {
		enum nsl_layer_kind next = sp->layer + 1 < m->nlayers ? m->layers[sp->layer + 1].kind
								       : NSL_LAYER_KIND_COUNT;
		double bound = (next == NSL_LAYER_RELU || next == NSL_LAYER_GELU)
				       ? sqrt(6.0 / p->fan_in)
				       : sqrt(6.0 / (p->fan_in + p->fan_out));
		struct nsl_rng r;

		nsl_rng_seed(&r, s->seed, nsl_hash2((uint64_t)sp->layer, (uint64_t)k));
		for (int64_t i = 0; i < p->numel; i++)
			plain[i] = (float)((2.0 * nsl_rng_uniform(&r) - 1.0) * bound);
	}
	rc = nsl_param_import(s->cc, p, plain);
	free(plain);
	return rc;
}

static int collect_params(struct nsl_stage *s)
{
	int n = 0, k = 0;

	for (int j = 0; j < s->nl; j++)
		n += s->layers[j]->nparams;
	s->params = calloc((size_t)(n ? n : 1), sizeof(*s->params));
	if (s->params == NULL)
		return nsl_error_set(ENOMEM, "stage: out of memory");
	s->nparams = n;
	for (int j = 0; j < s->nl; j++) {
		struct nsl_layer *l = s->layers[j];

		for (int q = 0; q < l->nparams; q++, k++) {
			struct stage_param *sp = &s->params[k];

			sp->p = &l->params[q];
			sp->layer = l->index;
			for (int slot = 0; slot < s->optim.ops->state_slots; slot++) {
				sp->state[slot] = nsl_alloc_zeroed(s->alloc, sp->p->count * sizeof(float),
								   "optimizer state");
				if (sp->state[slot] == NULL)
					return nsl_error_prefix(ENOMEM, "layer %d", l->index);
			}
			if (!s->no_init && init_param(s, sp, q) < 0)
				return -EINVAL;
		}
	}
	return 0;
}

static int build_layers(struct nsl_stage *s)
{
	const struct nsl_model *m = s->m;
	size_t widest = 0;

	s->layers = calloc((size_t)(s->last - s->first), sizeof(*s->layers));
	if (s->layers == NULL)
		return nsl_error_set(ENOMEM, "stage: out of memory");
	for (int i = s->first; i < s->last; i++) {
		const struct nsl_layer_spec *spec = &m->layers[i];
		enum nsl_fused_act fused = NSL_FUSED_NONE;
		struct nsl_layer *l;

		if (!s->no_fuse && nsl_model_fuses(m, i, s->last))
			fused = fusable(m->layers[i + 1].kind);
		l = nsl_layer_create(spec, i, m->shapes[i], fused, s->seed, &s->ctx);
		if (l == NULL)
			return -EINVAL;
		s->layers[s->nl] = l;
		if (fused != NSL_FUSED_NONE)
			i++;    /* the activation is done inside this layer */
		if ((size_t)nsl_shape_size(m->shapes[l->index]) > widest)
			widest = (size_t)nsl_shape_size(m->shapes[l->index]);
		s->nl++;
	}
	for (int b = 0; b < 2; b++) {
		s->grad_buf[b] = nsl_alloc_zeroed(s->alloc, (size_t)s->max_batch * widest * sizeof(float),
						  "input gradient");
		if (s->grad_buf[b] == NULL)
			return -ENOMEM;
	}
	return 0;
}

static int build_inflight(struct nsl_stage *s)
{
	const size_t rows = (size_t)s->max_batch;

	s->inflight = calloc((size_t)s->ncontexts, sizeof(*s->inflight));
	if (s->inflight == NULL)
		return nsl_error_set(ENOMEM, "stage: out of memory");
	for (int k = 0; k < s->ncontexts; k++) {
		struct inflight *f = &s->inflight[k];

		f->out = calloc((size_t)s->nl, sizeof(*f->out));
		f->saved = calloc((size_t)s->nl, sizeof(*f->saved));
		if (f->out == NULL || f->saved == NULL)
			return nsl_error_set(ENOMEM, "stage: out of memory");
		for (int j = 0; j < s->nl; j++) {
			const struct nsl_layer *l = s->layers[j];

			f->out[j] = nsl_alloc_zeroed(s->alloc, rows * (size_t)nsl_shape_size(l->out) * sizeof(float),
						     "layer output");
			if (f->out[j] == NULL)
				return nsl_error_prefix(ENOMEM, "layer %d", l->index);
			/* The first micro-batch uses the layer's own buffer. */
			f->saved[j] = k == 0 ? l->own_saved : NULL;
			if (k > 0 && l->saved_bytes > 0 &&
			    (f->saved[j] = nsl_alloc_zeroed(&nsl_allocator_libc, l->saved_bytes, "saved state")) == NULL)
				return nsl_error_prefix(ENOMEM, "layer %d", l->index);
		}
		if (s->first > 0) {
			f->dx = nsl_alloc_zeroed(s->alloc, rows * (size_t)nsl_stage_in_size(s) * sizeof(float),
						 "input gradient");
			if (f->dx == NULL)
				return -ENOMEM;
		}
	}
	return 0;
}

struct nsl_stage *nsl_stage_create(struct nsl_compute *cc, const struct nsl_stage_config *cfg)
{
	struct nsl_stage *s;
	const struct nsl_model *m = cfg->model;

	if (m == NULL || cfg->first < 0 || cfg->first >= cfg->last || cfg->last > m->nlayers) {
		nsl_error_set(EINVAL, "stage: layers [%d, %d) are not a non-empty range of the %d-layer model",
			      cfg->first, cfg->last, m ? m->nlayers : 0);
		return NULL;
	}
	if (cfg->max_batch < 1) {
		nsl_error_set(EINVAL, "stage: batch size %d must be at least 1", cfg->max_batch);
		return NULL;
	}
	if (cfg->contexts < 0 || cfg->contexts > NSL_STAGE_MAX_CONTEXTS) {
		nsl_error_set(EINVAL, "stage: %d micro-batches in flight; at most %d", cfg->contexts,
			      NSL_STAGE_MAX_CONTEXTS);
		return NULL;
	}
	if (cfg->optim.ops == NULL) {
		nsl_error_set(EINVAL, "stage: no optimizer configured (nsl_optim_config_init)");
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		nsl_error_set(ENOMEM, "stage: out of memory");
		return NULL;
	}
	s->cc = cc;
	s->m = m;
	s->first = cfg->first;
	s->last = cfg->last;
	s->max_batch = cfg->max_batch;
	s->seed = cfg->seed;
	s->optim = cfg->optim;
	s->alloc = cfg->alloc ? cfg->alloc : &nsl_allocator_libc;
	s->ctx = (struct nsl_layer_ctx){ .cc = cc, .alloc = s->alloc, .max_batch = cfg->max_batch,
					 .defer_rows = cfg->defer_rows > 0 ? cfg->defer_rows : 0 };
	s->grads_zero = true;
	s->no_fuse = cfg->no_fuse;
	s->no_init = cfg->no_init;
	s->ncontexts = cfg->contexts ? cfg->contexts : 1;
	if (build_layers(s) < 0 || build_inflight(s) < 0 || collect_params(s) < 0) {
		nsl_error_prefix(EINVAL, "stage of layers %d-%d", cfg->first, cfg->last - 1);
		nsl_stage_free(s);
		return NULL;
	}
	return s;
}

void nsl_stage_free(struct nsl_stage *s)
{
	if (s == NULL)
		return;
	for (int k = 0; k < s->nparams; k++)
		for (int slot = 0; slot < 2; slot++)
			nsl_alloc_free(s->alloc, s->params[k].state[slot]);
	free(s->params);
	for (int k = 0; s->inflight != NULL && k < s->ncontexts; k++) {
		struct inflight *f = &s->inflight[k];

		for (int j = 0; j < s->nl; j++) {
			if (f->out != NULL)
				nsl_alloc_free(s->alloc, f->out[j]);
			if (k > 0 && f->saved != NULL)
				nsl_alloc_free(&nsl_allocator_libc, f->saved[j]);
		}
		nsl_alloc_free(s->alloc, f->dx);
		free(f->out);
		free(f->saved);
	}
	free(s->inflight);
	for (int j = 0; j < s->nl; j++)
		nsl_layer_free(s->layers[j]);
	nsl_alloc_free(s->alloc, s->grad_buf[0]);
	nsl_alloc_free(s->alloc, s->grad_buf[1]);
	free(s->layers);
	free(s);
}

static bool is_prepared(const struct nsl_stage *s, int batch)
{
	for (int i = 0; i < s->nprepared; i++)
		if (s->prepared[i] == batch)
			return true;
	return false;
}

int nsl_stage_prepare(struct nsl_stage *s, int batch)
{
	if (batch < 1 || batch > s->max_batch)
		return nsl_error_set(EINVAL, "stage: batch %d outside 1..%d (the stage's max batch)", batch,
				     s->max_batch);
	if (is_prepared(s, batch))
		return 0;
	if (s->nprepared == NSL_LAYER_MAX_BATCHES)
		return nsl_error_set(ENOSPC, "stage: already prepared %d batch sizes; batch %d would be one more",
				     NSL_LAYER_MAX_BATCHES, batch);
	for (int j = 0; j < s->nl; j++) {
		int rc = s->layers[j]->ops->prepare(s->layers[j], batch);

		if (rc < 0)
			return nsl_error_prefix(rc, "layer %d (%s), batch %d", s->layers[j]->index,
						s->layers[j]->ops->name, batch);
	}
	s->prepared[s->nprepared++] = batch;
	return 0;
}

static int check_context(const struct nsl_stage *s, int k)
{
	if (k < 0 || k >= s->ncontexts)
		return nsl_error_set(EINVAL, "stage: micro-batch slot %d outside 0..%d (stage made for %d in flight)", k,
				     s->ncontexts - 1, s->ncontexts);
	return 0;
}

/* Slot k, ready for a forward of `batch` rows: 0 or an errno. */
static int slot_ready(struct nsl_stage *s, int k, int batch)
{
	int rc;

	if ((rc = check_context(s, k)) < 0)
		return rc;
	/* Normally prepared ahead; preparing here costs one primitive build per new shape. */
	if (!is_prepared(s, batch) && (rc = nsl_stage_prepare(s, batch)) < 0)
		return rc;
	return 0;
}

int nsl_stage_forward_in(struct nsl_stage *s, int k, int batch, const float *x, const float **y, bool train,
			 uint64_t key)
{
	struct inflight *f;
	const float *in = x;
	int rc;

	if ((rc = slot_ready(s, k, batch)) < 0)
		return rc;
	f = &s->inflight[k];
	f->batch = 0;
	for (int j = 0; j < s->nl; j++) {
		struct nsl_layer *l = s->layers[j];

		l->saved = f->saved[j];
		rc = l->ops->forward(l, batch, in, f->out[j], train, key);
		if (rc < 0)
			return nsl_error_prefix(rc, "layer %d (%s) forward", l->index, l->ops->name);
		in = f->out[j];
	}
	if (train) {
		f->x = x;
		f->batch = batch;
	}
	*y = in;
	return 0;
}

/* The model layer past executed layer j: its output is that layer's input. */
static int exec_end(const struct nsl_stage *s, int j)
{
	return j + 1 < s->nl ? s->layers[j + 1]->index : s->last;
}

const float *nsl_stage_tensor(const struct nsl_stage *s, int k, int layer)
{
	if (k < 0 || k >= s->ncontexts)
		return NULL;
	if (layer == s->first)
		return s->inflight[k].x;
	for (int j = 0; j < s->nl; j++)
		if (exec_end(s, j) == layer)
			return s->inflight[k].out[j];
	return NULL;
}

int nsl_stage_restore_in(struct nsl_stage *s, int k, int batch, const float *const *t, const float **y, uint64_t key)
{
	struct inflight *f;
	int rc;

	if ((rc = slot_ready(s, k, batch)) < 0)
		return rc;
	f = &s->inflight[k];
	for (int j = 0; j < s->nl; j++) {
		struct nsl_layer *l = s->layers[j];

		/* Pooling's workspace and dropout's mask are not shipped: running the layer again on its
		 * input remakes them (and rewrites the same output), without any weights. */
		if (l->saved_bytes > 0) {
			l->saved = f->saved[j];
			if ((rc = l->ops->forward(l, batch, t[j], f->out[j], true, key)) < 0)
				return nsl_error_prefix(rc, "layer %d (%s) restore", l->index, l->ops->name);
		} else {
			memcpy(f->out[j], t[j + 1], (size_t)batch * (size_t)nsl_shape_size(l->out) * sizeof(float));
		}
	}
	f->x = t[0];
	f->batch = batch;
	*y = f->out[s->nl - 1];
	return 0;
}

float *nsl_stage_param_data(const struct nsl_stage *s, int k, size_t *count)
{
	if (k < 0 || k >= s->nparams)
		return NULL;
	if (count != NULL)
		*count = s->params[k].p->count;
	return s->params[k].p->data;
}

void nsl_stage_param_set_data(struct nsl_stage *s, int k, float *data)
{
	if (k >= 0 && k < s->nparams) {
		s->params[k].p->data = data;
		s->params[k].p->gen++;
	}
}

int nsl_stage_forward(struct nsl_stage *s, int batch, const float *x, const float **y, bool train,
		      uint64_t key)
{
	return nsl_stage_forward_in(s, 0, batch, x, y, train, key);
}

int nsl_stage_backward_in(struct nsl_stage *s, int k, int batch, const float *dy, const float **dx)
{
	return nsl_stage_backward_rows(s, k, -1, batch, dy, dx);
}

int nsl_stage_backward_rows(struct nsl_stage *s, int k, int row0, int batch, const float *dy, const float **dx)
{
	struct inflight *f;
	const float *g = dy;
	int b = 0, rc;

	if ((rc = check_context(s, k)) < 0)
		return rc;
	f = &s->inflight[k];
	if (f->batch == 0 || batch != f->batch)
		return nsl_error_set(EINVAL, "stage: backward of batch %d without a training forward of it in slot %d",
				     batch, k);
	for (int j = s->nl - 1; j >= 0; j--) {
		struct nsl_layer *l = s->layers[j];
		const float *x = j > 0 ? f->out[j - 1] : f->x;
		/* Layer 0's input gradient has no consumer: skipping it saves a whole GEMM. The stage's
		 * own input gradient goes to the micro-batch's buffer, so it outlives later backwards. */
		float *gx = j > 0 ? s->grad_buf[b] : f->dx;

		l->saved = f->saved[j];
		l->defer_row0 = row0;
		rc = l->ops->backward(l, batch, x, f->out[j], g, gx, !s->grads_zero);
		if (rc < 0)
			return nsl_error_prefix(rc, "layer %d (%s) backward", l->index, l->ops->name);
		g = gx;
		b ^= 1;
	}
	f->batch = 0;
	/* Deferred, the weight gradients are still to come: nsl_stage_step writes them. */
	if (s->ctx.defer_rows == 0)
		s->grads_zero = false;
	*dx = g;
	return 0;
}

int nsl_stage_backward(struct nsl_stage *s, int batch, const float *dy, const float **dx)
{
	return nsl_stage_backward_in(s, 0, batch, dy, dx);
}

int nsl_stage_weight_grads(struct nsl_stage *s)
{
	bool wrote = false;

	for (int j = 0; j < s->nl; j++) {
		struct nsl_layer *l = s->layers[j];
		int rc;

		if (l->ops->flush == NULL)
			continue;
		if ((rc = l->ops->flush(l, !s->grads_zero)) < 0)
			return rc;
		wrote |= rc > 0;
	}
	if (wrote && s->ctx.defer_rows > 0)
		s->grads_zero = false;
	return 0;
}

int nsl_stage_step_into(struct nsl_stage *s, float lr, float *const *dst)
{
	int rc = nsl_stage_weight_grads(s);

	if (rc < 0)
		return rc;
	s->steps++;
	for (int k = 0; k < s->nparams; k++) {
		struct stage_param *sp = &s->params[k];
		float *w = dst ? dst[k] : sp->p->data;

		if (s->grads_zero)
			memset(sp->p->grad, 0, sp->p->count * sizeof(float));
		s->optim.ops->update(&s->optim, lr, s->steps, w, sp->p->data, sp->p->grad, sp->state, sp->p->count);
		sp->p->data = w;
		sp->p->gen++;
	}
	s->grads_zero = true;
	return 0;
}

int nsl_stage_step(struct nsl_stage *s, float lr)
{
	return nsl_stage_step_into(s, lr, NULL);
}

int nsl_stage_memory(const struct nsl_stage *s, int batch, struct nsl_stage_memory *out)
{
	size_t widest = 0, pad = 0;

	memset(out, 0, sizeof(*out));
	for (int k = 0; k < s->nparams; k++) {
		size_t bytes = s->params[k].p->count * sizeof(float);

		out->params += bytes;
		out->grads += bytes;
		out->optim_state += bytes * (size_t)s->optim.ops->state_slots;
	}
	for (int j = 0; j < s->nl; j++) {
		const struct nsl_layer *l = s->layers[j];
		int64_t out_floats = nsl_shape_size(l->out);
		int64_t in_floats = nsl_shape_size(l->in);

		/* Saved state is sized for max_batch; scale it as the outputs scale. */
		out->activations += (size_t)batch * (size_t)out_floats * sizeof(float) +
				    l->saved_bytes * (size_t)batch / (size_t)s->max_batch;
		out->scratch += l->scratch_bytes;
		if (l->scratchpad_bytes > pad)
			pad = l->scratchpad_bytes;
		if ((size_t)in_floats > widest)
			widest = (size_t)in_floats;
	}
	out->activations *= (size_t)s->ncontexts;
	out->scratch += pad + 2 * (size_t)batch * widest * sizeof(float);
	if (s->first > 0)
		out->scratch += (size_t)s->ncontexts * (size_t)batch * (size_t)nsl_stage_in_size(s) * sizeof(float);
	out->total = out->params + out->grads + out->optim_state + out->activations + out->scratch;
	return 0;
}

int nsl_stage_param_count(const struct nsl_stage *s)
{
	return s->nparams;
}

void nsl_stage_param_range(const struct nsl_stage *s, int first, int last, int *k0, int *k1)
{
	for (*k0 = 0; *k0 < s->nparams && s->params[*k0].layer < first;)
		(*k0)++;
	for (*k1 = *k0; *k1 < s->nparams && s->params[*k1].layer < last;)
		(*k1)++;
}

int nsl_stage_param_info(const struct nsl_stage *s, int k, struct nsl_param_info *out)
{
	const struct nsl_param *p;

	if (k < 0 || k >= s->nparams)
		return nsl_error_set(EINVAL, "stage: parameter %d of %d", k, s->nparams);
	p = s->params[k].p;
	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "layer%d.%s", s->params[k].layer, p->name);
	out->layer = s->params[k].layer;
	out->ndim = p->ndim;
	memcpy(out->dims, p->dims, sizeof(out->dims));
	out->numel = p->numel;
	out->count = p->count;
	return 0;
}

size_t nsl_stage_param_layout(const struct nsl_stage *s, int k, void *out, size_t cap)
{
	return k < 0 || k >= s->nparams ? 0 : nsl_param_layout(s->params[k].p, out, cap);
}

int nsl_stage_param_load_layout(struct nsl_stage *s, int k, const void *layout, size_t layout_len, const void *src,
				size_t src_len, bool adopt)
{
	if (k < 0 || k >= s->nparams)
		return nsl_error_set(EINVAL, "stage: parameter %d of %d", k, s->nparams);
	return nsl_param_load_layout(s->cc, s->params[k].p, layout, layout_len, src, src_len, adopt);
}

int nsl_stage_param_export(const struct nsl_stage *s, int k, float *plain)
{
	if (k < 0 || k >= s->nparams)
		return nsl_error_set(EINVAL, "stage: parameter %d of %d", k, s->nparams);
	return nsl_param_export(s->cc, s->params[k].p, plain);
}

int nsl_stage_param_import(struct nsl_stage *s, int k, const float *plain)
{
	if (k < 0 || k >= s->nparams)
		return nsl_error_set(EINVAL, "stage: parameter %d of %d", k, s->nparams);
	return nsl_param_import(s->cc, s->params[k].p, plain);
}

int nsl_stage_state_slots(const struct nsl_stage *s)
{
	return s->optim.ops->state_slots;
}

static int check_state(const struct nsl_stage *s, int k, int slot)
{
	if (k < 0 || k >= s->nparams || slot < 0 || slot >= s->optim.ops->state_slots)
		return nsl_error_set(EINVAL, "stage: optimizer state %d of parameter %d (the stage has %d and %d)", slot,
				     k, s->optim.ops->state_slots, s->nparams);
	return 0;
}

int nsl_stage_state_export(const struct nsl_stage *s, int k, int slot, float *plain)
{
	int rc = check_state(s, k, slot);

	return rc < 0 ? rc : nsl_param_to_plain(s->cc, s->params[k].p, s->params[k].state[slot], plain);
}

int nsl_stage_state_import(struct nsl_stage *s, int k, int slot, const float *plain)
{
	int rc = check_state(s, k, slot);

	return rc < 0 ? rc : nsl_param_from_plain(s->cc, s->params[k].p, plain, s->params[k].state[slot]);
}

void nsl_stage_set_steps(struct nsl_stage *s, uint64_t steps)
{
	s->steps = steps;
}

int64_t nsl_stage_in_size(const struct nsl_stage *s)
{
	return nsl_shape_size(s->m->shapes[s->first]);
}

int64_t nsl_stage_out_size(const struct nsl_stage *s)
{
	return nsl_shape_size(s->m->shapes[s->last]);
}

uint64_t nsl_stage_steps(const struct nsl_stage *s)
{
	return s->steps;
}

const char *nsl_stage_optim_name(const struct nsl_stage *s)
{
	return s->optim.ops->name;
}
