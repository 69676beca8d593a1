/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Stages: cutting a model into 1, 2 or 4 stages run one after another gives the same weights
 * as the uncut model, bit for bit; micro-batches accumulate to the batch gradient, also when
 * several are in flight at once; optimizer state moves between stages intact; seeds
 * decide initialisation; the memory report adds up; misuse is refused with a message.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "nsplit/compute.h"
#include "nsplit/error.h"
#include "nsplit/loss.h"
#include "nsplit/model.h"
#include "nsplit/rng.h"
#include "nsplit/stage.h"
#include "nsplit/stash.h"
#include "cunit_main.h"

#define BATCH 8
#define STEPS 6

static struct nsl_compute *cc;
static int defer_rows;   /* nets made by net_init_in_flight defer weight gradients over this many rows */

struct net {
	int n;
	struct nsl_stage *s[8];
};

static int net_init_in_flight(struct net *net, const struct nsl_model *m, const int *starts, int n,
			      const char *optim, uint64_t seed, int max_batch, int contexts)
{
	net->n = n;
	for (int i = 0; i < n; i++) {
		struct nsl_stage_config cfg = { .model = m, .first = starts[i], .last = starts[i + 1],
						.max_batch = max_batch, .contexts = contexts, .seed = seed,
						.defer_rows = defer_rows };

		nsl_optim_config_init(&cfg.optim, optim);
		if (cfg.optim.ops == &nsl_optim_sgd)
			cfg.optim.momentum = 0.9f;
		net->s[i] = nsl_stage_create(cc, &cfg);
		if (net->s[i] == NULL) {
			fprintf(stderr, "\n  %s\n", nsl_error_last());
			return -1;
		}
	}
	return 0;
}

static int net_init(struct net *net, const struct nsl_model *m, const int *starts, int n, const char *optim,
		    uint64_t seed, int max_batch)
{
	return net_init_in_flight(net, m, starts, n, optim, seed, max_batch, 1);
}

static void net_free(struct net *net)
{
	for (int i = 0; i < net->n; i++)
		nsl_stage_free(net->s[i]);
}

/* One batch in micro-batches of `mb` rows; gradients accumulate, then every stage steps. */
static int net_train(struct net *net, const struct nsl_model *m, const float *x, const int32_t *y, int batch,
		     int mb, uint64_t key, float lr)
{
	int64_t in = nsl_shape_size(m->input);
	float dl[BATCH * 16];
	double loss = 0;

	for (int r = 0; r < batch; r += mb) {
		const float *a = x + r * in, *g;

		for (int i = 0; i < net->n; i++)
			if (nsl_stage_forward(net->s[i], mb, a, &a, true, key + (uint64_t)r) < 0)
				return -1;
		if (nsl_softmax_xent(a, y + r, mb, m->classes, 1.0f / (float)batch, dl, NULL, &loss) < 0)
			return -1;
		g = dl;
		for (int i = net->n - 1; i >= 0; i--)
			if (nsl_stage_backward(net->s[i], mb, g, &g) < 0)
				return -1;
	}
	for (int i = 0; i < net->n; i++)
		nsl_stage_step(net->s[i], lr);
	return 0;
}

/* Every parameter of the net in plain layout, concatenated. */
static float *net_params(struct net *net, size_t *count)
{
	size_t total = 0, off = 0;
	float *all;

	for (int i = 0; i < net->n; i++)
		for (int k = 0; k < nsl_stage_param_count(net->s[i]); k++) {
			struct nsl_param_info pi;

			nsl_stage_param_info(net->s[i], k, &pi);
			total += (size_t)pi.numel;
		}
	all = calloc(total ? total : 1, sizeof(float));
	for (int i = 0; i < net->n; i++)
		for (int k = 0; k < nsl_stage_param_count(net->s[i]); k++) {
			struct nsl_param_info pi;

			nsl_stage_param_info(net->s[i], k, &pi);
			nsl_stage_param_export(net->s[i], k, all + off);
			off += (size_t)pi.numel;
		}
	*count = total;
	return all;
}

static void random_batch(const struct nsl_model *m, uint64_t seed, float *x, int32_t *y)
{
	struct nsl_rng r;
	int64_t in = nsl_shape_size(m->input);

	nsl_rng_seed(&r, seed, 99);
	for (int64_t i = 0; i < BATCH * in; i++)
		x[i] = nsl_rng_uniform(&r);
	for (int i = 0; i < BATCH; i++)
		y[i] = (int32_t)nsl_rng_below(&r, (uint64_t)m->classes);
}

static float *train_cut(const struct nsl_model *m, const int *starts, int n, const char *optim, int mb,
			size_t *count)
{
	struct net net;
	int64_t in = nsl_shape_size(m->input);
	float *x = malloc(sizeof(float) * BATCH * (size_t)in), *p = NULL;
	int32_t y[BATCH];

	if (net_init(&net, m, starts, n, optim, 7, BATCH) == 0) {
		for (int step = 0; step < STEPS; step++) {
			random_batch(m, (uint64_t)step, x, y);
			if (net_train(&net, m, x, y, BATCH, mb, (uint64_t)step * 1000, 0.05f) < 0) {
				fprintf(stderr, "\n  %s\n", nsl_error_last());
				CU_FAIL("training step");
				break;
			}
		}
		p = net_params(&net, count);
	}
	net_free(&net);
	free(x);
	return p;
}

static void check_cuts(const char *model, struct nsl_shape in, const int cuts[][5], int ncuts, const char *optim)
{
	struct nsl_model *m = nsl_model_parse(model, in);
	size_t n_ref = 0, n = 0;
	float *ref, *got;

	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	int whole[2] = { 0, m->nlayers };

	ref = train_cut(m, whole, 1, optim, BATCH, &n_ref);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ref);
	for (int c = 0; c < ncuts; c++) {
		int starts[6], ns = 0;

		starts[ns++] = 0;
		for (int k = 0; cuts[c][k]; k++)
			starts[ns++] = cuts[c][k];
		starts[ns] = m->nlayers;
		got = train_cut(m, starts, ns, optim, BATCH, &n);
		CU_ASSERT_PTR_NOT_NULL_FATAL(got);
		CU_ASSERT_EQUAL(n, n_ref);
		if (memcmp(got, ref, n * sizeof(float)) != 0) {
			fprintf(stderr, "\n  %s cut into %d stages (%s) differs from the uncut model\n", model, ns, optim);
			CU_FAIL("cut model differs");
		}
		free(got);
	}
	free(ref);
	nsl_model_free(m);
}

static void test_mlp_cuts(void)
{
	/* 1 cut, a cut between a dense and its relu (no fusion there), 3 cuts = 4 stages */
	static const int cuts[][5] = { { 2 }, { 1 }, { 1, 2, 4 }, { 2, 3, 4 } };

	check_cuts("mlp:64-32-16-10", (struct nsl_shape){ 1, 8, 8 }, cuts, 4, "sgd");
	check_cuts("mlp:64-32-16-10", (struct nsl_shape){ 1, 8, 8 }, cuts, 4, "adam");
}

static void test_cnn_cuts(void)
{
	static const int cuts[][5] = { { 3 }, { 1 }, { 2, 4, 7 }, { 1, 3, 6 } };

	check_cuts("conv:4x3x3,relu,maxpool:2,conv:6x3x3,relu,avgpool:2,flatten,dense:12,tanh,dense:10",
		   (struct nsl_shape){ 1, 14, 14 }, cuts, 4, "sgd");
}

static void test_microbatch_accumulation(void)
{
	struct nsl_model *m = nsl_model_parse("mlp:64-32-16-10", (struct nsl_shape){ 1, 8, 8 });
	int whole[2] = { 0, 5 };
	size_t n1, n2;
	float *a, *b;
	double maxdiff = 0;

	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	a = train_cut(m, whole, 1, "sgd", BATCH, &n1);
	b = train_cut(m, whole, 1, "sgd", BATCH / 4, &n2);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	CU_ASSERT_EQUAL_FATAL(n1, n2);
	for (size_t i = 0; i < n1; i++)
		maxdiff = fmax(maxdiff, fabs((double)a[i] - (double)b[i]));
	/* Same gradient, summed in another order: equal to float tolerance. */
	CU_ASSERT(maxdiff < 1e-5);
	free(a);
	free(b);
	nsl_model_free(m);
}

/*
 * GPipe order: every micro-batch's forward through every stage, each in its own slot, then the
 * backwards. Summed in the same order as one at a time, so equal bit for bit.
 */
/* GPipe order; backwards in reverse order when asked, placed at their rows when `rows`. */
static int net_train_gpipe_order(struct net *net, const struct nsl_model *m, const float *x, const int32_t *y,
				 uint64_t key, float lr, bool reverse, bool rows);

static int net_train_gpipe(struct net *net, const struct nsl_model *m, const float *x, const int32_t *y,
			   uint64_t key, float lr)
{
	return net_train_gpipe_order(net, m, x, y, key, lr, false, false);
}

static int net_train_gpipe_order(struct net *net, const struct nsl_model *m, const float *x, const int32_t *y,
				 uint64_t key, float lr, bool reverse, bool rows)
{
	const int mb = 2, nmb = BATCH / mb;
	int64_t in = nsl_shape_size(m->input);
	const float *logits[BATCH / 2];
	float dl[BATCH / 2][2 * 16];
	double loss = 0;

	for (int k = 0; k < nmb; k++) {
		const float *a = x + k * mb * in;

		for (int i = 0; i < net->n; i++)
			if (nsl_stage_forward_in(net->s[i], k, mb, a, &a, true, key + (uint64_t)(k * mb)) < 0)
				return -1;
		logits[k] = a;
	}
	for (int q = 0; q < nmb; q++) {
		const int k = reverse ? nmb - 1 - q : q;
		const float *g = dl[k];

		if (nsl_softmax_xent(logits[k], y + k * mb, mb, m->classes, 1.0f / BATCH, dl[k], NULL, &loss) < 0)
			return -1;
		for (int i = net->n - 1; i >= 0; i--)
			if ((rows ? nsl_stage_backward_rows(net->s[i], k, k * mb, mb, g, &g)
				  : nsl_stage_backward_in(net->s[i], k, mb, g, &g)) < 0)
				return -1;
	}
	for (int i = 0; i < net->n; i++)
		nsl_stage_step(net->s[i], lr);
	return 0;
}

static void test_micro_batches_in_flight(void)
{
	/* max pooling and dropout keep state per forward: each slot must keep its own */
	struct nsl_model *m = nsl_model_parse("conv:4x3x3,relu,maxpool:2,flatten,dropout:0.3,dense:10",
					      (struct nsl_shape){ 1, 10, 10 });
	int starts[3] = { 0, 3, 0 };
	int64_t in;
	struct net a, b;
	float *x, *pa, *pb;
	int32_t y[BATCH];
	size_t n;

	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	starts[2] = m->nlayers;
	in = nsl_shape_size(m->input);
	x = malloc(sizeof(float) * BATCH * (size_t)in);
	CU_ASSERT_EQUAL_FATAL(net_init(&a, m, starts, 2, "adam", 3, 2), 0);
	CU_ASSERT_EQUAL_FATAL(net_init_in_flight(&b, m, starts, 2, "adam", 3, 2, BATCH / 2), 0);
	for (int step = 0; step < STEPS; step++) {
		random_batch(m, (uint64_t)step, x, y);
		CU_ASSERT_EQUAL_FATAL(net_train(&a, m, x, y, BATCH, 2, (uint64_t)step * 1000, 0.01f), 0);
		CU_ASSERT_EQUAL_FATAL(net_train_gpipe(&b, m, x, y, (uint64_t)step * 1000, 0.01f), 0);
	}
	pa = net_params(&a, &n);
	pb = net_params(&b, &n);
	CU_ASSERT(memcmp(pa, pb, n * sizeof(float)) == 0);
	/* the second slot's backward is refused once it has run */
	{
		const float *dx;
		float dy[2 * 10] = { 0 };

		CU_ASSERT_EQUAL(nsl_stage_backward_in(b.s[1], 1, 2, dy, &dx), -EINVAL);
		CU_ASSERT_EQUAL(nsl_stage_backward_in(b.s[1], BATCH / 2, 2, dy, &dx), -EINVAL);
	}
	free(pa);
	free(pb);
	free(x);
	net_free(&a);
	net_free(&b);
	nsl_model_free(m);
}

/*
 * Deferred weight gradients: backwards placed at their rows give the same weights in any order,
 * bitwise, and the same as gradients computed at each backward up to the order of the sums.
 */
static void test_deferred_weights(void)
{
	struct nsl_model *m = nsl_model_parse("conv:4x3x3,relu,maxpool:2,flatten,dense:16,relu,dense:10",
					      (struct nsl_shape){ 1, 10, 10 });
	int starts[3] = { 0, 3, 0 };
	int64_t in;
	struct net fwd, rev, now;
	float *x, *pf, *pr, *pn;
	int32_t y[BATCH];
	size_t n;
	double worst = 0;

	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	starts[2] = m->nlayers;
	in = nsl_shape_size(m->input);
	x = malloc(sizeof(float) * BATCH * (size_t)in);
	defer_rows = BATCH;
	CU_ASSERT_EQUAL_FATAL(net_init_in_flight(&fwd, m, starts, 2, "adam", 5, 2, BATCH / 2), 0);
	CU_ASSERT_EQUAL_FATAL(net_init_in_flight(&rev, m, starts, 2, "adam", 5, 2, BATCH / 2), 0);
	defer_rows = 0;
	CU_ASSERT_EQUAL_FATAL(net_init_in_flight(&now, m, starts, 2, "adam", 5, 2, BATCH / 2), 0);
	for (int step = 0; step < STEPS; step++) {
		random_batch(m, (uint64_t)step, x, y);
		CU_ASSERT_EQUAL_FATAL(net_train_gpipe_order(&fwd, m, x, y, (uint64_t)step * 1000, 0.01f, false, true), 0);
		CU_ASSERT_EQUAL_FATAL(net_train_gpipe_order(&rev, m, x, y, (uint64_t)step * 1000, 0.01f, true, true), 0);
		CU_ASSERT_EQUAL_FATAL(net_train_gpipe_order(&now, m, x, y, (uint64_t)step * 1000, 0.01f, false, false), 0);
	}
	pf = net_params(&fwd, &n);
	pr = net_params(&rev, &n);
	pn = net_params(&now, &n);
	CU_ASSERT(memcmp(pf, pr, n * sizeof(float)) == 0);
	for (size_t i = 0; i < n; i++)
		worst = fabs((double)pf[i] - (double)pn[i]) > worst ? fabs((double)pf[i] - (double)pn[i]) : worst;
	CU_ASSERT(worst < 1e-5);
	CU_ASSERT(worst > 0 || memcmp(pf, pn, n * sizeof(float)) == 0);
	free(pf);
	free(pr);
	free(pn);
	free(x);
	net_free(&fwd);
	net_free(&rev);
	net_free(&now);
	nsl_model_free(m);
}

/* A stage rebuilt from another's exported parameters, optimizer state and step count goes on
 * exactly as the original: what a swap between peers relies on. */
static void test_state_moves(void)
{
	struct nsl_model *m = nsl_model_parse("mlp:64-32-16-10", (struct nsl_shape){ 1, 8, 8 });
	int starts[3] = { 0, 2, 5 };
	struct net a, b;
	float x[BATCH * 64], *pa, *pb, *buf = malloc(64 * 32 * sizeof(float));
	int32_t y[BATCH];
	size_t n;

	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	CU_ASSERT_EQUAL_FATAL(net_init(&a, m, starts, 2, "adam", 1, BATCH), 0);
	CU_ASSERT_EQUAL_FATAL(net_init(&b, m, starts, 2, "adam", 99, BATCH), 0);
	for (int step = 0; step < 3; step++) {
		random_batch(m, (uint64_t)step, x, y);
		CU_ASSERT_EQUAL_FATAL(net_train(&a, m, x, y, BATCH, BATCH, 0, 0.01f), 0);
	}
	for (int i = 0; i < 2; i++) {
		CU_ASSERT_EQUAL(nsl_stage_state_slots(a.s[i]), 2);
		for (int k = 0; k < nsl_stage_param_count(a.s[i]); k++) {
			CU_ASSERT_EQUAL(nsl_stage_param_export(a.s[i], k, buf), 0);
			CU_ASSERT_EQUAL(nsl_stage_param_import(b.s[i], k, buf), 0);
			for (int slot = 0; slot < 2; slot++) {
				CU_ASSERT_EQUAL(nsl_stage_state_export(a.s[i], k, slot, buf), 0);
				CU_ASSERT_EQUAL(nsl_stage_state_import(b.s[i], k, slot, buf), 0);
			}
		}
		CU_ASSERT_EQUAL(nsl_stage_state_export(a.s[i], 0, 2, buf), -EINVAL);
		nsl_stage_set_steps(b.s[i], nsl_stage_steps(a.s[i]));
	}
	for (int step = 3; step < 5; step++) {
		random_batch(m, (uint64_t)step, x, y);
		CU_ASSERT_EQUAL_FATAL(net_train(&a, m, x, y, BATCH, BATCH, 0, 0.01f), 0);
		CU_ASSERT_EQUAL_FATAL(net_train(&b, m, x, y, BATCH, BATCH, 0, 0.01f), 0);
	}
	pa = net_params(&a, &n);
	pb = net_params(&b, &n);
	CU_ASSERT(memcmp(pa, pb, n * sizeof(float)) == 0);
	free(pa);
	free(pb);
	free(buf);
	net_free(&a);
	net_free(&b);
	nsl_model_free(m);
}

static void test_seed_decides_init(void)
{
	struct nsl_model *m = nsl_model_parse("mlp:64-32-10", (struct nsl_shape){ 1, 8, 8 });
	int whole[2] = { 0, 3 };
	struct net a, b, c;
	size_t n;
	float *pa, *pb, *pc;

	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	CU_ASSERT_EQUAL_FATAL(net_init(&a, m, whole, 1, "sgd", 1, 4), 0);
	CU_ASSERT_EQUAL_FATAL(net_init(&b, m, whole, 1, "sgd", 1, 4), 0);
	CU_ASSERT_EQUAL_FATAL(net_init(&c, m, whole, 1, "sgd", 2, 4), 0);
	pa = net_params(&a, &n);
	pb = net_params(&b, &n);
	pc = net_params(&c, &n);
	CU_ASSERT(memcmp(pa, pb, n * sizeof(float)) == 0);
	CU_ASSERT(memcmp(pa, pc, n * sizeof(float)) != 0);
	/* He bound for layer 0 (relu follows): every weight within sqrt(6/64); biases start at 0 */
	for (int i = 0; i < 32 * 64; i++)
		CU_ASSERT(fabsf(pa[i]) <= sqrtf(6.0f / 64.0f));
	CU_ASSERT_EQUAL(pa[32 * 64], 0.0f);
	free(pa);
	free(pb);
	free(pc);
	net_free(&a);
	net_free(&b);
	net_free(&c);
	nsl_model_free(m);
}

static void test_memory_report(void)
{
	struct nsl_model *m = nsl_model_parse("mlp:64-32-16-10", (struct nsl_shape){ 1, 8, 8 });
	struct nsl_stage_config cfg = { .model = m, .first = 0, .last = 5, .max_batch = 16, .seed = 1 };
	struct nsl_stage_memory a, b;
	struct nsl_stage *s;
	size_t plain = (64 * 32 + 32 + 32 * 16 + 16 + 16 * 10 + 10) * sizeof(float);

	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	nsl_optim_config_init(&cfg.optim, "adam");
	s = nsl_stage_create(cc, &cfg);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	nsl_stage_memory(s, 8, &a);
	nsl_stage_memory(s, 16, &b);
	CU_ASSERT(a.params >= plain);
	CU_ASSERT_EQUAL(a.grads, a.params);
	CU_ASSERT_EQUAL(a.optim_state, 2 * a.params);       /* adam: m and v */
	CU_ASSERT(a.activations > 0);
	CU_ASSERT_EQUAL(b.activations, 2 * a.activations);  /* linear in the batch */
	CU_ASSERT_EQUAL(a.total, a.params + a.grads + a.optim_state + a.activations + a.scratch);
	nsl_stage_free(s);
	nsl_model_free(m);
}

/* The plan from the model alone against the stage once made: every stage of the MLP and the CNN. */
static void test_memory_plan(void)
{
	static const char *const models[] = {
		"mlp:784-512-256-10",
		"conv:32x3x3,relu,maxpool:2,conv:64x3x3,relu,maxpool:2,flatten,dense:128,relu,dropout:0.5,dense:10",
	};

	for (int mi = 0; mi < 2; mi++) {
		struct nsl_model *m = nsl_model_parse(models[mi], (struct nsl_shape){ 1, 28, 28 });

		CU_ASSERT_PTR_NOT_NULL_FATAL(m);
		for (int first = 0; first < m->nlayers; first += 2)
			for (int contexts = 1; contexts <= 3; contexts += 2) {
				struct nsl_stage_config cfg = { .model = m, .first = first, .last = m->nlayers,
								.max_batch = 16, .contexts = contexts, .seed = 1,
								.defer_rows = contexts == 3 ? 64 : 0 };
				struct nsl_stage_memory plan, real;
				struct nsl_stage *s;

				nsl_optim_config_init(&cfg.optim, "adam");
				CU_ASSERT_EQUAL_FATAL(nsl_stage_memory_plan(&cfg, 16, &plan), 0);
				CU_ASSERT_PTR_NOT_NULL_FATAL(s = nsl_stage_create(cc, &cfg));
				CU_ASSERT_EQUAL(nsl_stage_prepare(s, 16), 0);
				nsl_stage_memory(s, 16, &real);
				/* Upper bounds, but close: blocked layouts pad channels to 16 at most; oneDNN's
				 * scratchpads (tens of KiB here) are what the plan cannot see. */
				CU_ASSERT(plan.params >= real.params && plan.params <= real.params * 2);
				CU_ASSERT(plan.activations >= real.activations);
				CU_ASSERT((plan.total * 10 >= real.total * 8 || plan.total + 65536 >= real.total) && plan.total <= real.total * 2);
				if (!((plan.total * 10 >= real.total * 8 || plan.total + 65536 >= real.total) && plan.total <= real.total * 2) || plan.params < real.params)
					printf("\n  %s layers %d-: plan %zu (p %zu a %zu s %zu), real %zu (p %zu a %zu s %zu)",
					       models[mi], first, plan.total, plan.params, plan.activations, plan.scratch,
					       real.total, real.params, real.activations, real.scratch);
				nsl_stage_free(s);
			}
		nsl_model_free(m);
	}
	CU_ASSERT_EQUAL(nsl_stage_memory_plan(&(struct nsl_stage_config){ 0 }, 1, &(struct nsl_stage_memory){ 0 }), -EINVAL);
}

static void test_misuse(void)
{
	struct nsl_model *m = nsl_model_parse("mlp:64-32-10", (struct nsl_shape){ 1, 8, 8 });
	struct nsl_stage_config cfg = { .model = m, .first = 2, .last = 2, .max_batch = 4, .seed = 1 };
	struct nsl_stage *s;
	const float *dx;
	float dy[40] = { 0 };

	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	nsl_optim_config_init(&cfg.optim, "sgd");
	CU_ASSERT_PTR_NULL(nsl_stage_create(cc, &cfg));
	CU_ASSERT_PTR_NOT_NULL(strstr(nsl_error_last(), "[2, 2)"));
	cfg.first = 0;
	cfg.last = 3;
	s = nsl_stage_create(cc, &cfg);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_EQUAL(nsl_stage_prepare(s, 5), -EINVAL);
	CU_ASSERT_EQUAL(nsl_stage_backward(s, 4, dy, &dx), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(nsl_error_last(), "without a training forward"));
	nsl_stage_free(s);
	nsl_stage_free(NULL);
	nsl_model_free(m);
}

/* A stash of 3 versions: each step writes beside the last, the old versions come back unchanged,
 * the newest equals a twin stage stepped in place, and the fourth version takes the first's
 * place. (Weight decay moves the weights without a backward.) */
static void test_stash(void)
{
	struct nsl_model *m = nsl_model_parse("mlp:64-32-10", (struct nsl_shape){ 1, 8, 8 });
	struct nsl_stage_config cfg = { .model = m, .first = 0, .last = 3, .max_batch = BATCH, .seed = 3 };
	struct nsl_stage *s, *twin;
	struct nsl_stash st;
	float *snap[3];
	size_t count;

	CU_ASSERT_FATAL(m != NULL);
	nsl_optim_config_init(&cfg.optim, "sgd");
	cfg.optim.weight_decay = 0.1f;
	s = nsl_stage_create(cc, &cfg);
	twin = nsl_stage_create(cc, &cfg);
	CU_ASSERT_FATAL(s != NULL && twin != NULL);
	CU_ASSERT_EQUAL_FATAL(nsl_stash_init(&st, s, 3, NULL), 0);
	nsl_stash_keep(&st, s, 0);
	for (int v = 0; v < 3; v++) {
		const float *w = nsl_stage_param_data(s, 0, &count);

		snap[v] = malloc(count * sizeof(float));
		CU_ASSERT_FATAL(snap[v] != NULL);
		memcpy(snap[v], w, count * sizeof(float));
		if (v < 2) {
			CU_ASSERT_EQUAL(nsl_stash_step(&st, s, 0.5f, v + 1), 0);
			CU_ASSERT_EQUAL(nsl_stage_step(twin, 0.5f), 0);
		}
	}
	for (int v = 0; v < 3; v++) {
		CU_ASSERT_EQUAL(nsl_stash_use(&st, s, v), 0);
		CU_ASSERT_EQUAL(memcmp(nsl_stage_param_data(s, 0, &count), snap[v], count * sizeof(float)), 0);
	}
	CU_ASSERT_NOT_EQUAL(memcmp(snap[0], snap[2], count * sizeof(float)), 0);
	CU_ASSERT_EQUAL(nsl_stash_use(&st, s, 0), 0);
	CU_ASSERT_EQUAL(nsl_stash_step(&st, s, 0.5f, 3), 0);   /* from the newest, not the one in use */
	CU_ASSERT_EQUAL(nsl_stage_step(twin, 0.5f), 0);
	CU_ASSERT_EQUAL(memcmp(nsl_stage_param_data(s, 0, &count), nsl_stage_param_data(twin, 0, &count),
			       count * sizeof(float)), 0);
	CU_ASSERT_EQUAL(nsl_stash_use(&st, s, 0), -ENOENT);
	CU_ASSERT_PTR_NOT_NULL(strstr(nsl_error_last(), "version 0 is not kept"));
	CU_ASSERT_EQUAL(nsl_stash_use(&st, s, 1), 0);
	CU_ASSERT_EQUAL(memcmp(nsl_stage_param_data(s, 0, &count), snap[1], count * sizeof(float)), 0);
	nsl_stash_restore(&st, s);
	nsl_stash_fini(&st);
	for (int v = 0; v < 3; v++)
		free(snap[v]);
	nsl_stage_free(s);
	nsl_stage_free(twin);
	nsl_model_free(m);
}

/* Stage b takes stage a's parameters, through the plain layout (a fresh import). */
static void copy_params(const struct nsl_stage *a, struct nsl_stage *b)
{
	for (int k = 0; k < nsl_stage_param_count(a); k++) {
		struct nsl_param_info info;
		float *plain;

		CU_ASSERT_EQUAL_FATAL(nsl_stage_param_info(a, k, &info), 0);
		plain = malloc((size_t)info.numel * sizeof(float));
		CU_ASSERT_FATAL(plain != NULL);
		CU_ASSERT_EQUAL(nsl_stage_param_export(a, k, plain), 0);
		CU_ASSERT_EQUAL(nsl_stage_param_import(b, k, plain), 0);
		free(plain);
	}
}

/*
 * With many micro-batches a batch, a dense layer's backward keeps its weights transposed from one
 * call to the next; after a step, a stash's step or swap it must read the new ones: its input
 * gradient equals that of a twin given the same weights afresh, and of a twin that runs
 * backward-data as oneDNN has it (one micro-batch a batch).
 */
static void test_backward_follows_weights(void)
{
	struct nsl_model *m = nsl_model_parse("mlp:64-256-256-10", (struct nsl_shape){ 1, 8, 8 });
	struct nsl_stage_config cfg = { .model = m, .first = 2, .last = 5, .max_batch = BATCH, .defer_rows = 16 * BATCH,
					.seed = 5 };
	struct nsl_stage *a, *b, *c;
	struct nsl_stash st;
	float x[BATCH * 256], dy[BATCH * 10];
	const float *y, *dxa, *dxb, *dxc;

	CU_ASSERT_FATAL(m != NULL);
	nsl_optim_config_init(&cfg.optim, "sgd");
	a = nsl_stage_create(cc, &cfg);
	cfg.seed = 6;
	b = nsl_stage_create(cc, &cfg);
	cfg.defer_rows = BATCH;
	c = nsl_stage_create(cc, &cfg);
	CU_ASSERT_FATAL(a != NULL && b != NULL && c != NULL);
	for (int i = 0; i < BATCH * 256; i++)
		x[i] = (float)((i * 7) % 11) / 11.0f;
	for (int i = 0; i < BATCH * 10; i++)
		dy[i] = (float)((i * 3) % 7) / 7.0f - 0.4f;
	CU_ASSERT_EQUAL_FATAL(nsl_stash_init(&st, a, 2, NULL), 0);
	nsl_stash_keep(&st, a, 0);
	for (int it = 0; it < 4; it++) {
		copy_params(a, b);
		copy_params(a, c);
		CU_ASSERT_EQUAL(nsl_stage_forward(a, BATCH, x, &y, true, 0), 0);
		CU_ASSERT_EQUAL(nsl_stage_backward(a, BATCH, dy, &dxa), 0);
		CU_ASSERT_EQUAL(nsl_stage_forward(b, BATCH, x, &y, true, 0), 0);
		CU_ASSERT_EQUAL(nsl_stage_backward(b, BATCH, dy, &dxb), 0);
		CU_ASSERT_EQUAL(nsl_stage_forward(c, BATCH, x, &y, true, 0), 0);
		CU_ASSERT_EQUAL(nsl_stage_backward(c, BATCH, dy, &dxc), 0);
		CU_ASSERT_FATAL(dxa != NULL && dxb != NULL && dxc != NULL);
		CU_ASSERT_EQUAL(memcmp(dxa, dxb, BATCH * 256 * sizeof(float)), 0);
		for (int i = 0; i < BATCH * 256; i++)
			CU_ASSERT_FATAL(fabsf(dxa[i] - dxc[i]) <= 1e-5f * (1 + fabsf(dxc[i])));
		/* the next weights: a step in place, into the stash, back to the older version */
		if (it == 0)
			CU_ASSERT_EQUAL(nsl_stage_step(a, 0.5f), 0);
		if (it == 1)
			CU_ASSERT_EQUAL(nsl_stash_step(&st, a, 0.5f, 1), 0);
		if (it == 2)
			CU_ASSERT_EQUAL(nsl_stash_use(&st, a, 0), 0);
		nsl_stage_step(b, 0.0f);   /* gradients cleared for the next round */
		nsl_stage_step(c, 0.0f);
	}
	nsl_stash_restore(&st, a);
	nsl_stash_fini(&st);
	nsl_stage_free(a);
	nsl_stage_free(b);
	nsl_stage_free(c);
	nsl_model_free(m);
}

static const struct nsl_test_case cases[] = {
	{ "mlp cut into 2 and 4 stages equals uncut", test_mlp_cuts },
	{ "cnn cut into 2 and 4 stages equals uncut", test_cnn_cuts },
	{ "micro-batches accumulate to the batch gradient", test_microbatch_accumulation },
	{ "micro-batches in flight equal one at a time", test_micro_batches_in_flight },
	{ "optimizer state moves between stages", test_state_moves },
	{ "deferred weight gradients: any backward order, same weights", test_deferred_weights },
	{ "seed decides initialisation", test_seed_decides_init },
	{ "memory report", test_memory_report },
	{ "memory planned from the model matches the stage made", test_memory_plan },
	{ "misuse is refused", test_misuse },
	{ "a weight stash keeps versions without copying", test_stash },
	{ "backward reads the weights as they are now", test_backward_follows_weights },
	{ NULL, NULL },
};

int main(void)
{
	int rc;

	cc = nsl_compute_create(1);
	if (cc == NULL) {
		fprintf(stderr, "%s\n", nsl_error_last());
		return 1;
	}
	rc = nsl_test_run("stage", cases);
	nsl_compute_free(cc);
	return rc;
}
