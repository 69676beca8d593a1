/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Softmax cross-entropy against a naive double-precision reference, its gradient against
 * central differences, the correct count (first maximum wins) and refused labels.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "nsplit/error.h"
#include "nsplit/loss.h"
#include "nsplit/rng.h"
#include "cunit_main.h"

#define B 6
#define C 5

static double ref_row(const float *z, int y)
{
	double s = 0;

	for (int c = 0; c < C; c++)
		s += exp((double)z[c]);
	return log(s) - z[y];
}

static void fill(float *z, int32_t *y, struct nsl_rng *r, float range)
{
	for (int i = 0; i < B * C; i++)
		z[i] = (2 * nsl_rng_uniform(r) - 1) * range;
	for (int i = 0; i < B; i++)
		y[i] = (int32_t)nsl_rng_below(r, C);
}

static void test_value_and_gradient(void)
{
	struct nsl_rng r;
	float z[B * C], g[B * C];
	int32_t y[B];
	double loss = 1.5, want = 0;
	int correct = 0;

	nsl_rng_seed(&r, 11, 0);
	fill(z, y, &r, 3.0f);
	for (int i = 0; i < B; i++)
		want += ref_row(z + i * C, y[i]);
	CU_ASSERT_EQUAL(nsl_softmax_xent(z, y, B, C, 0.25f, g, &correct, &loss), 0);
	CU_ASSERT_DOUBLE_EQUAL(loss, 1.5 + want, 1e-5 * want);   /* added to what was there */
	/* dL/dz of 0.25 * sum(loss) by central differences in double */
	for (int i = 0; i < B * C; i++) {
		const float h = 1e-2f, keep = z[i];
		double lp = 0, lm = 0;

		z[i] = keep + h;
		for (int k = 0; k < B; k++)
			lp += ref_row(z + k * C, y[k]);
		z[i] = keep - h;
		for (int k = 0; k < B; k++)
			lm += ref_row(z + k * C, y[k]);
		z[i] = keep;
		CU_ASSERT_DOUBLE_EQUAL(g[i], 0.25 * (lp - lm) / (2.0 * h), 1e-4);
	}
	/* each gradient row sums to zero */
	for (int k = 0; k < B; k++) {
		double s = 0;

		for (int c = 0; c < C; c++)
			s += g[k * C + c];
		CU_ASSERT_DOUBLE_EQUAL(s, 0, 1e-6);
	}
}

static void test_stable(void)
{
	/* exp(1000) overflows a float; subtracting the maximum keeps it finite */
	float z[2 * 3] = { 1000, 0, -1000, 1e4f, 1e4f, 1e4f };
	int32_t y[2] = { 0, 2 };
	float g[6];
	double loss = 0;

	CU_ASSERT_EQUAL(nsl_softmax_xent(z, y, 2, 3, 1.0f, g, NULL, &loss), 0);
	CU_ASSERT_DOUBLE_EQUAL(loss, log(3.0), 1e-5);
	for (int i = 0; i < 6; i++)
		CU_ASSERT(isfinite(g[i]));
	CU_ASSERT_DOUBLE_EQUAL(g[0], 0, 1e-6);
	CU_ASSERT_DOUBLE_EQUAL(g[5], 1.0 / 3 - 1, 1e-6);
}

static void test_correct(void)
{
	/* row 0: argmax 2; row 1: tie between 1 and 3, the first wins; row 2: argmax 0 */
	float z[3 * 4] = { 0, 1, 5, 2, 0, 7, 1, 7, 9, 1, 2, 3 };
	int32_t y[3] = { 2, 3, 0 };
	int correct = 10;

	CU_ASSERT_EQUAL(nsl_softmax_xent(z, y, 3, 4, 1.0f, NULL, &correct, NULL), 0);
	CU_ASSERT_EQUAL(correct, 12);
	y[1] = 1;
	correct = 0;
	CU_ASSERT_EQUAL(nsl_softmax_xent(z, y, 3, 4, 1.0f, NULL, &correct, NULL), 0);
	CU_ASSERT_EQUAL(correct, 3);
}

static void test_bad_label(void)
{
	float z[B * C] = { 0 }, g[B * C];
	int32_t y[B] = { 0, 1, 2, 3, C, -1 };
	double loss = 2.0;
	int correct = 4;

	for (int i = 0; i < B * C; i++)
		g[i] = 42;
	CU_ASSERT_EQUAL(nsl_softmax_xent(z, y, B, C, 1.0f, g, &correct, &loss), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(nsl_error_last(), "row 4"));
	CU_ASSERT_PTR_NOT_NULL(strstr(nsl_error_last(), "label 5"));
	CU_ASSERT_EQUAL(correct, 4);
	CU_ASSERT_EQUAL(loss, 2.0);
	CU_ASSERT_EQUAL(g[0], 42);
	y[4] = 0;
	CU_ASSERT_EQUAL(nsl_softmax_xent(z, y, B, C, 1.0f, NULL, NULL, NULL), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(nsl_error_last(), "label -1"));
	CU_ASSERT_EQUAL(nsl_softmax_xent(z, y, 0, C, 1.0f, NULL, NULL, NULL), 0);
}

static const struct nsl_test_case cases[] = {
	{ "value and gradient", test_value_and_gradient },
	{ "large logits", test_stable },
	{ "correct count", test_correct },
	{ "label out of range", test_bad_label },
	{ NULL, NULL },
};

int main(void)
{
	return nsl_test_run("loss", cases);
}
