/* SPDX-License-Identifier: BSD-3-Clause */
/* The model grammar, shape inference, splits. */
#include <string.h>

#include <CUnit/Basic.h>

#include "nsplit/error.h"
#include "nsplit/model.h"
#include "cunit_main.h"

static const struct nsl_shape img = { 1, 28, 28 };

static void test_mlp_shorthand(void)
{
	struct nsl_model *a = nsl_model_parse("mlp:784-512-256-10", img);
	struct nsl_model *b = nsl_model_parse("dense:512,relu,dense:256,relu,dense:10", img);

	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	CU_ASSERT_EQUAL(a->nlayers, 5);
	CU_ASSERT_STRING_EQUAL(a->text, "dense:512,relu,dense:256,relu,dense:10");
	CU_ASSERT_STRING_EQUAL(a->text, b->text);
	CU_ASSERT_EQUAL(nsl_model_hash(a), nsl_model_hash(b));
	CU_ASSERT_EQUAL(a->classes, 10);
	CU_ASSERT_EQUAL(nsl_model_layer_params(a, 0), 784 * 512 + 512);
	CU_ASSERT_EQUAL(nsl_model_layer_params(a, 1), 0);
	nsl_model_free(a);
	nsl_model_free(b);
}

static void test_cnn_shapes(void)
{
	struct nsl_model *m = nsl_model_parse(
		"conv:32x3x3,relu,maxpool:2,conv:64x3x3,relu,maxpool:2,flatten,dense:128,relu,dense:10", img);

	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	CU_ASSERT_EQUAL(m->nlayers, 10);
	CU_ASSERT_EQUAL(m->shapes[1].c, 32);
	CU_ASSERT_EQUAL(m->shapes[1].h, 26);
	CU_ASSERT_EQUAL(m->shapes[3].h, 13);
	CU_ASSERT_EQUAL(m->shapes[4].h, 11);
	CU_ASSERT_EQUAL(m->shapes[6].h, 5);
	CU_ASSERT_EQUAL(m->shapes[7].c, 64 * 5 * 5);
	CU_ASSERT_EQUAL(nsl_model_layer_params(m, 3), 64 * 32 * 9 + 64);
	nsl_model_free(m);
}

static void expect_error(const char *text, const char *fragment)
{
	struct nsl_model *m = nsl_model_parse(text, img);

	CU_ASSERT_PTR_NULL(m);
	nsl_model_free(m);
	if (strstr(nsl_error_last(), fragment) == NULL) {
		fprintf(stderr, "\n  \"%s\": message \"%s\" lacks \"%s\"\n", text, nsl_error_last(), fragment);
		CU_FAIL("error message");
	}
}

static void test_errors(void)
{
	expect_error("mlp:100-10", "does not match");
	expect_error("mlp:784", "at least one layer");
	expect_error("dense:10,softmax", "layer 1: unknown layer");
	expect_error("conv:32x3,relu", "conv:CxKHxKW");
	expect_error("dense:0", "dense:N");
	expect_error("dropout:1.5,dense:10", "0 <= P < 1");
	expect_error("conv:8x30x30,flatten,dense:10", "smaller than the kernel");
	expect_error("conv:8x3x3", "vector of at least 2 classes");
	expect_error("relu:3,dense:10", "takes no argument");
	expect_error("", "layer 0");
}

static void test_splits(void)
{
	struct nsl_model *m = nsl_model_parse("mlp:784-512-256-10", img);
	int starts[8];

	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	CU_ASSERT_EQUAL(nsl_model_parse_split(m, "2,4", starts, 8), 3);
	CU_ASSERT(starts[0] == 0 && starts[1] == 2 && starts[2] == 4 && starts[3] == 5);
	CU_ASSERT_EQUAL(nsl_model_parse_split(m, "4,2", starts, 8), -EINVAL);
	CU_ASSERT_EQUAL(nsl_model_parse_split(m, "5", starts, 8), -EINVAL);
	CU_ASSERT_EQUAL(nsl_model_parse_split(m, "0", starts, 8), -EINVAL);
	CU_ASSERT_EQUAL(nsl_model_parse_split(m, "2x", starts, 8), -EINVAL);
	/* even by parameters: 784*512 dominates, so the first stage holds layer 0 and its relu */
	CU_ASSERT_EQUAL(nsl_model_even_split(m, 2, starts), 2);
	CU_ASSERT(starts[0] == 0 && starts[1] == 2 && starts[2] == 5);
	CU_ASSERT_EQUAL(nsl_model_even_split(m, 5, starts), 5);
	for (int i = 0; i < 5; i++)
		CU_ASSERT_EQUAL(starts[i], i);
	CU_ASSERT_EQUAL(nsl_model_even_split(m, 6, starts), -EINVAL);
	nsl_model_free(m);
	/* four big layers over four stages: one each, the small last layer with the fourth */
	m = nsl_model_parse("mlp:784-1024-1024-1024-1024-10", img);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	CU_ASSERT_EQUAL(nsl_model_even_split(m, 4, starts), 4);
	CU_ASSERT(starts[1] == 2 && starts[2] == 4 && starts[3] == 6 && starts[4] == 9);
	nsl_model_free(m);
}

static const struct nsl_test_case cases[] = {
	{ "mlp shorthand", test_mlp_shorthand },
	{ "cnn shapes", test_cnn_shapes },
	{ "errors name the layer", test_errors },
	{ "splits", test_splits },
	{ NULL, NULL },
};

int main(void)
{
	return nsl_test_run("model", cases);
}
