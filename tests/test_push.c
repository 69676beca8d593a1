/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fast N-split parameter pushes: a push of some layers copies exactly those parameters into a
 * stage of another split, bit for bit; one laid out by another host's oneDNN is reordered;
 * anything that is not such a push, or is of other layers, is refused with a message. And the arena peers make stages in: its
 * memory is reused after a reset, several chunks become one, a block still in use is refused.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>
#include <oneapi/dnnl/dnnl.h>

#include "nsplit/arena.h"
#include "nsplit/compute.h"
#include "nsplit/error.h"
#include "nsplit/model.h"
#include "nsplit/stage.h"
#include "cunit_main.h"
#include "push.h"

static struct nsl_compute *cc;
static struct nsl_model *m;

static struct nsl_stage *make(int first, int last, uint64_t seed)
{
	struct nsl_stage_config cfg = { .model = m, .first = first, .last = last, .max_batch = 16, .seed = seed };
	struct nsl_stage *s;

	nsl_optim_config_init(&cfg.optim, "sgd");
	s = nsl_stage_create(cc, &cfg);
	if (s == NULL)
		fprintf(stderr, "\n  %s\n", nsl_error_last());
	return s;
}

/* Parameter k of a and parameter q of b hold the same bytes. */
static bool same(const struct nsl_stage *a, int k, const struct nsl_stage *b, int q)
{
	size_t na, nb;
	const float *x = nsl_stage_param_data(a, k, &na), *y = nsl_stage_param_data(b, q, &nb);

	return na == nb && memcmp(x, y, na * sizeof(float)) == 0;
}

static void test_round_trip(void)
{
	/* mlp:64-32-16-10: dense 0, relu 1, dense 2, relu 3, dense 4. A backward role holds layers
	 * 2-4, a forward role all of them; the push is of layers 2-4. */
	struct nsl_stage *bwd = make(2, 5, 7), *fwd = make(0, 5, 8);
	const uint64_t cap = nsl_push_cap(m, 2, 5);
	void *buf = aligned_alloc(64, cap);
	uint64_t len = 0;

	CU_ASSERT_FATAL(bwd != NULL && fwd != NULL && buf != NULL);
	CU_ASSERT_FALSE(same(bwd, 0, fwd, 2));
	CU_ASSERT_EQUAL(nsl_push_pack(bwd, 2, 5, buf, cap, &len), 0);
	CU_ASSERT(len > 0 && len <= cap);
	CU_ASSERT_EQUAL(nsl_push_load(fwd, 2, 5, buf, len, "test push", false), 0);
	for (int k = 0; k < 4; k++)
		CU_ASSERT(same(bwd, k, fwd, k + 2));
	/* layer 0 is not in the push: still the forward role's own (seed 8, not 7) */
	{
		struct nsl_stage *other = make(0, 5, 7);

		CU_ASSERT_FATAL(other != NULL);
		CU_ASSERT_FALSE(same(other, 0, fwd, 0));
		nsl_stage_free(other);
	}
	/* Adopted: the same values, read where they lie in the push; the same forward. */
	{
		struct nsl_stage *fwd2 = make(0, 5, 8);
		float *own[6], x[2 * 64];
		const float *y1, *y2;

		CU_ASSERT_FATAL(fwd2 != NULL);
		for (int k = 0; k < 6; k++)
			own[k] = nsl_stage_param_data(fwd2, k, NULL);
		CU_ASSERT_EQUAL(nsl_push_load(fwd2, 2, 5, buf, len, "test push", true), 4);
		for (int k = 0; k < 6; k++) {
			const uint8_t *at = (const uint8_t *)nsl_stage_param_data(fwd2, k, NULL);

			CU_ASSERT_EQUAL(k >= 2, at >= (const uint8_t *)buf && at < (const uint8_t *)buf + len);
			CU_ASSERT(same(fwd, k, fwd2, k));
		}
		for (int i = 0; i < 2 * 64; i++)
			x[i] = (float)(i % 13) / 13.0f;
		CU_ASSERT_EQUAL_FATAL(nsl_stage_prepare(fwd, 2), 0);
		CU_ASSERT_EQUAL_FATAL(nsl_stage_prepare(fwd2, 2), 0);
		CU_ASSERT_EQUAL(nsl_stage_forward(fwd, 2, x, &y1, false, 0), 0);
		CU_ASSERT_EQUAL(nsl_stage_forward(fwd2, 2, x, &y2, false, 0), 0);
		CU_ASSERT(memcmp(y1, y2, 2 * 10 * sizeof(float)) == 0);
		for (int k = 2; k < 6; k++)
			nsl_stage_param_set_data(fwd2, k, own[k]);
		nsl_stage_free(fwd2);
	}
	CU_ASSERT_EQUAL(nsl_push_pack(bwd, 2, 5, buf, 64, &len), -ENOBUFS);
	nsl_stage_free(bwd);
	nsl_stage_free(fwd);
	free(buf);
}

static void refused(struct nsl_stage *s, int first, int last, const void *buf, uint64_t len, const char *says)
{
	CU_ASSERT_EQUAL(nsl_push_load(s, first, last, buf, len, "the push", false), -EPROTO);
	CU_ASSERT_PTR_NOT_NULL(strstr(nsl_error_last(), "the push"));
	CU_ASSERT_PTR_NOT_NULL(strstr(nsl_error_last(), says));
}

static void test_refused(void)
{
	struct nsl_stage *bwd = make(2, 5, 7), *fwd = make(0, 5, 8);
	const uint64_t cap = nsl_push_cap(m, 0, 5);
	uint8_t *buf = aligned_alloc(64, cap), *bad = aligned_alloc(64, cap);
	uint64_t len = 0;

	CU_ASSERT_FATAL(bwd != NULL && fwd != NULL && buf != NULL && bad != NULL);
	CU_ASSERT_FATAL(nsl_push_pack(bwd, 2, 5, buf, cap, &len) == 0);
	refused(fwd, 2, 5, buf, 7, "not a parameter push");
	memcpy(bad, buf, len);
	bad[0] ^= 1;
	refused(fwd, 2, 5, bad, len, "not a parameter push");
	refused(fwd, 0, 5, buf, len, "were due");             /* other layers */
	refused(fwd, 2, 5, buf, len - 64, "too short");
	memcpy(bad, buf, len);
	memset(bad + len, 0, 64);
	refused(fwd, 2, 5, bad, len + 64, "were due");         /* trailing bytes */
	memcpy(bad, buf, len);
	memset(bad + 64 + 8, 0x7f, 64);                         /* the first parameter's layout */
	refused(fwd, 2, 5, bad, len, "cannot read");
	nsl_stage_free(bwd);
	nsl_stage_free(fwd);
	free(buf);
	free(bad);
}

/* A push from a host whose oneDNN lays parameters out otherwise: here, every parameter in the
 * plain PyTorch layout, as a host without blocked kernels would. The receiver reorders each into
 * its own layout: its values equal the sender's. */
static void test_other_layout(void)
{
	struct nsl_stage *bwd = make(2, 5, 7), *fwd = make(0, 5, 8);
	const uint64_t cap = nsl_push_cap(m, 2, 5);
	uint8_t *buf = aligned_alloc(64, cap);
	uint64_t *w = (uint64_t *)(void *)buf, off = 64;
	int reordered = 0;

	CU_ASSERT_FATAL(bwd != NULL && fwd != NULL && buf != NULL);
	memset(buf, 0, cap);
	w[0] = 0x32687375706c736eULL;
	w[1] = 2 | (uint64_t)5 << 32;
	w[2] = 4;
	w[3] = sizeof(dnnl_memory_desc_t);
	for (int k = 0; k < 4; k++) {
		struct nsl_param_info pi;
		dnnl_memory_desc_t md;
		uint8_t own[NSL_STAGE_LAYOUT_MAX];
		dnnl_dims_t dims;
		uint64_t bytes;

		nsl_stage_param_info(bwd, k, &pi);
		for (int d = 0; d < pi.ndim; d++)
			dims[d] = pi.dims[d];
		CU_ASSERT_EQUAL_FATAL(dnnl_memory_desc_init_by_tag(&md, pi.ndim, dims, dnnl_f32,
								   pi.ndim == 2 ? dnnl_ab : dnnl_a), dnnl_success);
		bytes = (uint64_t)pi.numel * sizeof(float);
		memcpy(buf + off, &bytes, 8);
		memcpy(buf + off + 8, &md, sizeof(md));
		CU_ASSERT_EQUAL(nsl_stage_param_layout(fwd, k + 2, own, sizeof(own)), sizeof(md));
		reordered += memcmp(own, &md, sizeof(md)) != 0;
		off += (8 + sizeof(md) + 63) / 64 * 64;
		CU_ASSERT_EQUAL_FATAL(nsl_stage_param_export(bwd, k, (float *)(void *)(buf + off)), 0);
		off += (bytes + 63) / 64 * 64;
	}
	printf("\n    %d of 4 parameters reordered from the plain layout ", reordered);
	CU_ASSERT(reordered > 0);
	CU_ASSERT_EQUAL(nsl_push_load(fwd, 2, 5, buf, off, "a plain push", false), 0);
	for (int k = 0; k < 4; k++)
		CU_ASSERT(same(bwd, k, fwd, k + 2));
	nsl_stage_free(bwd);
	nsl_stage_free(fwd);
	free(buf);
}

static void test_arena(void)
{
	struct nsl_arena ar;
	void *a, *b, *c;

	nsl_arena_init(&ar, &nsl_allocator_libc);
	a = nsl_alloc_zeroed(&ar.a, 1000, "a");
	b = nsl_alloc_zeroed(&ar.a, 3 << 20, "b");             /* more than a chunk: its own */
	CU_ASSERT_FATAL(a != NULL && b != NULL);
	CU_ASSERT_EQUAL((uintptr_t)a % 64, 0);
	CU_ASSERT_EQUAL((uintptr_t)b % 64, 0);
	CU_ASSERT_EQUAL(ar.nchunks, 2);
	CU_ASSERT_EQUAL(nsl_arena_reset(&ar), -EBUSY);
	nsl_alloc_free(&ar.a, a);
	nsl_alloc_free(&ar.a, b);
	CU_ASSERT_EQUAL(nsl_arena_reset(&ar), 0);
	/* the two chunks became one that holds both again */
	CU_ASSERT_EQUAL(ar.nchunks, 1);
	a = nsl_alloc_zeroed(&ar.a, 1000, "a");
	b = nsl_alloc_zeroed(&ar.a, 3 << 20, "b");
	CU_ASSERT_EQUAL(ar.nchunks, 1);
	nsl_alloc_free(&ar.a, a);
	nsl_alloc_free(&ar.a, b);
	CU_ASSERT_EQUAL(nsl_arena_reset(&ar), 0);
	/* the memory comes back, not new */
	c = nsl_alloc_zeroed(&ar.a, 1000, "c");
	CU_ASSERT_PTR_EQUAL(c, a);
	CU_ASSERT(nsl_arena_bytes(&ar) >= 1000 + (3 << 20));
	nsl_alloc_free(&ar.a, c);
	nsl_arena_fini(&ar);
}

static const struct nsl_test_case cases[] = {
	{ "a push copies its layers' parameters exactly", test_round_trip },
	{ "what is not a push of these layouts is refused", test_refused },
	{ "a push in another layout is reordered", test_other_layout },
	{ "an arena reuses its memory", test_arena },
	{ NULL, NULL },
};

int main(void)
{
	int rc;

	cc = nsl_compute_create(1);
	m = nsl_model_parse("mlp:64-32-16-10", (struct nsl_shape){ 1, 8, 8 });
	if (cc == NULL || m == NULL) {
		fprintf(stderr, "%s\n", nsl_error_last());
		return 1;
	}
	rc = nsl_test_run("push", cases);
	nsl_model_free(m);
	nsl_compute_free(cc);
	return rc;
}
