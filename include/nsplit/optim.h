/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Optimizers and learning-rate schedules, with PyTorch's update rules so that a run can be
 * checked against torch.optim step for step:
 *
 *   sgd    g += wd*w; buf = momentum*buf + g (buf starts at 0); w -= lr*buf  (buf = g if momentum = 0)
 *   adam   g += wd*w; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
 *          w -= (lr / (1-b1^t)) * m / (sqrt(v) / sqrt(1-b2^t) + eps)
 *   adamw  w *= 1 - lr*wd; then adam's update without the wd term
 *
 * Each optimizer is a table of operations (nsl_optim_ops) naming how many state buffers it keeps
 * per parameter; a stage allocates them and calls update once per parameter tensor per step.
 */
#ifndef NSPLIT_OPTIM_H
#define NSPLIT_OPTIM_H

#include <stddef.h>
#include <stdint.h>

struct nsl_optim_config {
	const struct nsl_optim_ops *ops;
	float momentum;       /* sgd */
	float weight_decay;
	float beta1, beta2;   /* adam, adamw */
	float eps;
};

struct nsl_optim_ops {
	const char *name;
	int state_slots;      /* float buffers of the parameter's size kept per parameter */
	/*
	 * One step over n elements: w0 the parameters, w where the new ones go (w0 itself, or a
	 * buffer of its size: a weight stash keeps the old ones without a copy; either way the same
	 * values, bit for bit), g the gradient (read only), state[0..slots) the optimizer's buffers,
	 * t the step number counted from 1, lr this step's learning rate.
	 */
	void (*update)(const struct nsl_optim_config *c, float lr, uint64_t t, float *w, const float *w0,
		       const float *g, float *const *state, size_t n);
};

extern const struct nsl_optim_ops nsl_optim_sgd;
/* Parameters that never step (Fast N-split's forward copies): no state; not selectable by name. */
extern const struct nsl_optim_ops nsl_optim_none;
extern const struct nsl_optim_ops nsl_optim_adam;
extern const struct nsl_optim_ops nsl_optim_adamw;

/*
 * Fill c with PyTorch's defaults for the optimizer named `name` ("sgd", "adam", "adamw"):
 * momentum 0, weight decay 0 (adamw: 0.01), betas 0.9/0.999, eps 1e-8.
 * Returns 0 or -EINVAL with a message listing the known names.
 */
int nsl_optim_config_init(struct nsl_optim_config *c, const char *name);

enum nsl_lr_kind {
	NSL_LR_CONSTANT,
	NSL_LR_STEP,
	NSL_LR_COSINE,
};

struct nsl_lr_schedule {
	enum nsl_lr_kind kind;
	float base;              /* the peak learning rate */
	int64_t total_steps;     /* optimizer steps in the whole run (cosine) */
	int64_t warmup_steps;    /* linear ramp from base/warmup to base over these first steps */
	int64_t step_every;      /* step: multiply by gamma every step_every steps after warm-up */
	float gamma;
	float min_lr;            /* cosine floor */
};

/* "constant", "step", "cosine" -> kind; -EINVAL with a message otherwise. */
int nsl_lr_parse_kind(const char *name, enum nsl_lr_kind *out);

/* Learning rate of optimizer step `step` (counted from 0). */
float nsl_lr_at(const struct nsl_lr_schedule *s, int64_t step);

#endif
