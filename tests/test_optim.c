/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Optimizers against steps worked out by hand (PyTorch's rules, two steps of one weight with
 * gradients 0.5 then -0.25 or 0.5, lr 0.1), and the learning-rate schedules at their corners.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "nsplit/error.h"
#include "nsplit/optim.h"
#include "cunit_main.h"

static float two_steps(const char *name, float wd, float momentum, float g1, float g2)
{
	struct nsl_optim_config c;
	float w = 1.0f, s0 = 0, s1 = 0;
	float *state[2] = { &s0, &s1 };

	CU_ASSERT_EQUAL_FATAL(nsl_optim_config_init(&c, name), 0);
	c.weight_decay = wd;
	c.momentum = momentum;
	c.ops->update(&c, 0.1f, 1, &w, &w, &g1, state, 1);
	c.ops->update(&c, 0.1f, 2, &w, &w, &g2, state, 1);
	return w;
}

static void test_sgd(void)
{
	/* d = g + wd*w; buf = 0.9*buf + d; w -= 0.1*buf: 1 -> 0.949 -> 0.852151 */
	CU_ASSERT_DOUBLE_EQUAL(two_steps("sgd", 0.01f, 0.9f, 0.5f, 0.5f), 0.852151, 1e-6);
	/* plain sgd: 1 - 0.1*0.5 - 0.1*0.5 */
	CU_ASSERT_DOUBLE_EQUAL(two_steps("sgd", 0.0f, 0.0f, 0.5f, 0.5f), 0.9, 1e-6);
}

static void test_adam(void)
{
	/* step 1 moves by lr exactly (bias-corrected m/sqrt(v) = sign(g)): 0.9; step 2 0.8733663 */
	CU_ASSERT_DOUBLE_EQUAL(two_steps("adam", 0.0f, 0.0f, 0.5f, -0.25f), 0.8733663, 2e-6);
	/* L2 folded into the gradient */
	CU_ASSERT_DOUBLE_EQUAL(two_steps("adam", 0.01f, 0.0f, 0.5f, -0.25f), 0.8712293, 2e-6);
}

static void test_adamw(void)
{
	/* decoupled decay w *= 1 - lr*wd before each adam step */
	CU_ASSERT_DOUBLE_EQUAL(two_steps("adamw", 0.01f, 0.0f, 0.5f, -0.25f), 0.8714673, 2e-6);
}

/* Writing the new weights beside the old gives the in-place values bit for bit, for every
 * optimizer, on enough elements to run in parallel; the old weights stay as they were. */
static void test_out_of_place(void)
{
	enum { N = 40000 };
	static float w[N], w0[N], out[N], g[N], s[4][N];
	const char *names[] = { "sgd", "adam", "adamw" };

	for (size_t o = 0; o < sizeof(names) / sizeof(names[0]); o++) {
		struct nsl_optim_config c;
		float *in_place[2] = { s[0], s[1] }, *beside[2] = { s[2], s[3] };

		CU_ASSERT_EQUAL_FATAL(nsl_optim_config_init(&c, names[o]), 0);
		c.weight_decay = 0.01f;
		c.momentum = 0.9f;
		for (int i = 0; i < N; i++) {
			w[i] = w0[i] = sinf((float)i);
			g[i] = cosf(0.37f * (float)i);
			s[0][i] = s[2][i] = 0.01f * (float)(i % 7);
			s[1][i] = s[3][i] = 0.001f * (float)(i % 5);
		}
		for (uint64_t t = 1; t <= 3; t++) {
			c.ops->update(&c, 0.1f, t, w, w, g, in_place, N);
			c.ops->update(&c, 0.1f, t, out, w0, g, beside, N);
			CU_ASSERT_EQUAL(memcmp(out, w, sizeof(w)), 0);
			CU_ASSERT_NOT_EQUAL(memcmp(out, w0, sizeof(w)), 0);
			memcpy(w0, out, sizeof(w0));
		}
	}
}

static void test_unknown_optimizer(void)
{
	struct nsl_optim_config c;

	CU_ASSERT_EQUAL(nsl_optim_config_init(&c, "lamb"), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(nsl_error_last(), "lamb"));
	CU_ASSERT_PTR_NOT_NULL(strstr(nsl_error_last(), "adamw"));
}

static void test_lr_schedules(void)
{
	struct nsl_lr_schedule s = { .kind = NSL_LR_COSINE, .base = 1.0f, .total_steps = 100 };
	enum nsl_lr_kind k;

	CU_ASSERT_DOUBLE_EQUAL(nsl_lr_at(&s, 0), 1.0, 1e-6);
	CU_ASSERT_DOUBLE_EQUAL(nsl_lr_at(&s, 50), 0.5, 1e-6);
	CU_ASSERT_DOUBLE_EQUAL(nsl_lr_at(&s, 100), 0.0, 1e-6);
	s.warmup_steps = 10;
	CU_ASSERT_DOUBLE_EQUAL(nsl_lr_at(&s, 0), 0.1, 1e-6);
	CU_ASSERT_DOUBLE_EQUAL(nsl_lr_at(&s, 9), 1.0, 1e-6);
	CU_ASSERT_DOUBLE_EQUAL(nsl_lr_at(&s, 10), 1.0, 1e-6);
	CU_ASSERT_DOUBLE_EQUAL(nsl_lr_at(&s, 55), 0.5, 1e-6);
	s = (struct nsl_lr_schedule){ .kind = NSL_LR_STEP, .base = 1.0f, .step_every = 10, .gamma = 0.1f };
	CU_ASSERT_DOUBLE_EQUAL(nsl_lr_at(&s, 9), 1.0, 1e-6);
	CU_ASSERT_DOUBLE_EQUAL(nsl_lr_at(&s, 10), 0.1, 1e-7);
	CU_ASSERT_DOUBLE_EQUAL(nsl_lr_at(&s, 25), 0.01, 1e-8);
	s.kind = NSL_LR_CONSTANT;
	CU_ASSERT_DOUBLE_EQUAL(nsl_lr_at(&s, 1000), 1.0, 1e-6);
	CU_ASSERT_EQUAL(nsl_lr_parse_kind("cosine", &k), 0);
	CU_ASSERT_EQUAL(k, NSL_LR_COSINE);
	CU_ASSERT_EQUAL(nsl_lr_parse_kind("linear", &k), -EINVAL);
}

static const struct nsl_test_case cases[] = {
	{ "sgd with momentum and weight decay", test_sgd },
	{ "adam", test_adam },
	{ "adamw", test_adamw },
	{ "new weights beside the old equal them in place", test_out_of_place },
	{ "unknown optimizer", test_unknown_optimizer },
	{ "learning-rate schedules", test_lr_schedules },
	{ NULL, NULL },
};

int main(void)
{
	return nsl_test_run("optim", cases);
}
