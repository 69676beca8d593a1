/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "nsplit/error.h"
#include "nsplit/optim.h"

/*
 * Updates are element-wise, so splitting them over the compute threads changes no result. They
 * stream three to four arrays through memory: a serial loop cost a 2-thread MLP step about a
 * tenth of its time (measured against bench_dnnl_mlp, whose update is parallel). Small tensors
 * (biases) are not worth waking the threads for.
 */
#define PARALLEL_MIN 16384

static void sgd_update(const struct nsl_optim_config *c, float lr, uint64_t t, float *w, const float *w0,
		       const float *g, float *const *state, size_t n)
{
	const float wd = c->weight_decay, mu = c->momentum;
	float *buf = state[0];

	(void)t;
	if (mu == 0.0f) {
#pragma omp parallel for simd schedule(static) if (n >= PARALLEL_MIN)
		for (size_t i = 0; i < n; i++)
			w[i] = w0[i] - lr * (g[i] + wd * w0[i]);
		return;
	}
#pragma omp parallel for simd schedule(static) if (n >= PARALLEL_MIN)
	for (size_t i = 0; i < n; i++) {
		float d = g[i] + wd * w0[i];

		buf[i] = mu * buf[i] + d;
		w[i] = w0[i] - lr * buf[i];
	}
}

/*
 * Shared by adam and adamw: `l2` is the weight decay folded into the gradient (adam), `decay`
 * the factor on the weights before the step (adamw's decoupled decay; 1 for adam, exact). One
 * pass, where adamw's decay used to take a serial pass of its own.
 */
static void adam_core(const struct nsl_optim_config *c, float lr, uint64_t t, float *w, const float *w0,
		      const float *g, float *const *state, size_t n, float l2, float decay)
{
	const float b1 = c->beta1, b2 = c->beta2, eps = c->eps;
	const float bc1 = 1.0f - powf(b1, (float)t);
	const float step = lr / bc1;
	const float inv_sqrt_bc2 = 1.0f / sqrtf(1.0f - powf(b2, (float)t));
	float *m = state[0], *v = state[1];

#pragma omp parallel for simd schedule(static) if (n >= PARALLEL_MIN)
	for (size_t i = 0; i < n; i++) {
		float d = g[i] + l2 * w0[i];

		m[i] = b1 * m[i] + (1.0f - b1) * d;
		v[i] = b2 * v[i] + (1.0f - b2) * d * d;
		w[i] = w0[i] * decay - step * m[i] / (sqrtf(v[i]) * inv_sqrt_bc2 + eps);
	}
}

static void adam_update(const struct nsl_optim_config *c, float lr, uint64_t t, float *w, const float *w0,
			const float *g, float *const *state, size_t n)
{
	adam_core(c, lr, t, w, w0, g, state, n, c->weight_decay, 1.0f);
}

static void adamw_update(const struct nsl_optim_config *c, float lr, uint64_t t, float *w, const float *w0,
			 const float *g, float *const *state, size_t n)
{
	adam_core(c, lr, t, w, w0, g, state, n, 0.0f, 1.0f - lr * c->weight_decay);
}

static void none_update(const struct nsl_optim_config *c, float lr, uint64_t t, float *w, const float *w0,
			const float *g, float *const *state, size_t n)
{
	(void)c, (void)lr, (void)t, (void)g, (void)state;
	if (w != w0)
		memcpy(w, w0, n * sizeof(float));
}

const struct nsl_optim_ops nsl_optim_none = { .name = "none", .state_slots = 0, .update = none_update };
const struct nsl_optim_ops nsl_optim_sgd = { .name = "sgd", .state_slots = 1, .update = sgd_update };
const struct nsl_optim_ops nsl_optim_adam = { .name = "adam", .state_slots = 2, .update = adam_update };
const struct nsl_optim_ops nsl_optim_adamw = { .name = "adamw", .state_slots = 2, .update = adamw_update };

static const struct nsl_optim_ops *const optimizers[] = { &nsl_optim_sgd, &nsl_optim_adam, &nsl_optim_adamw };

int nsl_optim_config_init(struct nsl_optim_config *c, const char *name)
{
	memset(c, 0, sizeof(*c));
	c->beta1 = 0.9f;
	c->beta2 = 0.999f;
	c->eps = 1e-8f;
	for (size_t i = 0; i < sizeof(optimizers) / sizeof(optimizers[0]); i++) {
		if (strcmp(name, optimizers[i]->name) == 0) {
			c->ops = optimizers[i];
			if (c->ops == &nsl_optim_adamw)
				c->weight_decay = 0.01f;
			return 0;
		}
	}
	return nsl_error_set(EINVAL, "unknown optimizer \"%s\" (known: sgd, adam, adamw)", name);
}

int nsl_lr_parse_kind(const char *name, enum nsl_lr_kind *out)
{
	static const char *const names[] = { [NSL_LR_CONSTANT] = "constant", [NSL_LR_STEP] = "step",
					     [NSL_LR_COSINE] = "cosine" };

	for (int k = 0; k < 3; k++) {
		if (strcmp(name, names[k]) == 0) {
			*out = (enum nsl_lr_kind)k;
			return 0;
		}
	}
	return nsl_error_set(EINVAL, "unknown learning-rate schedule \"%s\" (known: constant, step, cosine)", name);
}

float nsl_lr_at(const struct nsl_lr_schedule *s, int64_t step)
{
	int64_t after;

	if (step < s->warmup_steps)
		return s->base * (float)(step + 1) / (float)s->warmup_steps;
	after = step - s->warmup_steps;
	switch (s->kind) {
	case NSL_LR_STEP:
		if (s->step_every <= 0)
			return s->base;
		return s->base * powf(s->gamma, (float)(after / s->step_every));
	case NSL_LR_COSINE: {
		int64_t span = s->total_steps - s->warmup_steps;
		double frac;

		if (span <= 0)
			return s->base;
		frac = after >= span ? 1.0 : (double)after / (double)span;
		return s->min_lr + (s->base - s->min_lr) * (float)(0.5 * (1.0 + cos(M_PI * frac)));
	}
	default:
		return s->base;
	}
}
