/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Every layer kind against a naive C reference written here (PyTorch semantics and layouts,
 * weights read back through nsl_param_export), and every gradient (input and parameters)
 * against central finite differences of L = sum(y * r) for a fixed random r. Plus the contract
 * corners: accumulation, dx == NULL, batches smaller than max_batch, parameter round trips and
 * dropout masks.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "nsplit/alloc.h"
#include "nsplit/compute.h"
#include "nsplit/error.h"
#include "nsplit/rng.h"
#include "cunit_main.h"
#include "layer_pvt.h"

#define GRAD_EPS 1e-3          /* finite-difference step (float inputs) */
#define GRAD_RTOL 0.03         /* relative tolerance of a gradient entry */
#define GRAD_ATOL 2e-3         /* absolute floor: float rounding of L divided by 2 * eps */
#define FWD_TOL 1e-4           /* forward against the reference, relative to max(1, |ref|) */
#define GRAD_SAMPLES 40        /* entries checked per tensor (all when fewer) */

static struct nsl_compute *cc;
static struct nsl_rng rng;

static struct nsl_layer_ctx make_ctx(int max_batch)
{
	return (struct nsl_layer_ctx){ .cc = cc, .alloc = &nsl_allocator_libc, .max_batch = max_batch };
}

static float *randv(size_t n, float lo, float hi)
{
	float *v = malloc(n * sizeof(float) + 1);

	for (size_t i = 0; i < n; i++)
		v[i] = lo + (hi - lo) * nsl_rng_uniform(&rng);
	return v;
}

/* Values at least `gap` apart from 0 (for relu's kink). */
static float *randv_away0(size_t n, float gap)
{
	float *v = randv(n, -1.0f, 1.0f);

	for (size_t i = 0; i < n; i++)
		v[i] = v[i] < 0 ? v[i] - gap : v[i] + gap;
	return v;
}

/* Distinct values spaced `step` apart in random order (no ties for max pooling). */
static float *distinct(size_t n, float step)
{
	float *v = malloc(n * sizeof(float));
	uint32_t *idx = malloc(n * sizeof(uint32_t));

	for (size_t i = 0; i < n; i++)
		idx[i] = (uint32_t)i;
	nsl_rng_shuffle_u32(&rng, idx, n);
	for (size_t i = 0; i < n; i++)
		v[i] = ((float)idx[i] - (float)n / 2) * step;
	free(idx);
	return v;
}

static size_t in_size(const struct nsl_layer *l, int batch)
{
	return (size_t)batch * (size_t)nsl_shape_size(l->in);
}

static size_t out_size(const struct nsl_layer *l, int batch)
{
	return (size_t)batch * (size_t)nsl_shape_size(l->out);
}

/* Random plain values into every parameter; returns them as read back by export. */
static void set_params(struct nsl_layer *l, float *plain[NSL_LAYER_MAX_PARAMS])
{
	for (int q = 0; q < l->nparams; q++) {
		float *v = randv((size_t)l->params[q].numel, -0.5f, 0.5f);

		CU_ASSERT_EQUAL_FATAL(nsl_param_import(cc, &l->params[q], v), 0);
		plain[q] = calloc((size_t)l->params[q].numel, sizeof(float));
		CU_ASSERT_EQUAL_FATAL(nsl_param_export(cc, &l->params[q], plain[q]), 0);
		for (int64_t i = 0; i < l->params[q].numel; i++)
			CU_ASSERT_EQUAL(plain[q][i], v[i]);
		free(v);
	}
}

/* The gradient of parameter q in the plain layout. */
static float *grad_plain(const struct nsl_layer *l, int q)
{
	struct nsl_param g = l->params[q];
	float *v = calloc((size_t)g.numel, sizeof(float));

	g.data = g.grad;
	CU_ASSERT_EQUAL(nsl_param_export(cc, &g, v), 0);
	return v;
}

static int check_close(const char *what, const float *got, const float *want, size_t n, double tol)
{
	int bad = 0;

	for (size_t i = 0; i < n; i++) {
		double scale = fabs(want[i]) > 1.0 ? fabs(want[i]) : 1.0;

		if (!(fabs((double)got[i] - want[i]) <= tol * scale)) {
			if (bad++ < 5)
				printf("\n  %s[%zu]: got %.7g, want %.7g", what, i, got[i], want[i]);
		}
	}
	return bad;
}

static double loss_of(struct nsl_layer *l, int batch, const float *x, float *y, const float *r)
{
	double s = 0;

	CU_ASSERT_EQUAL(l->ops->forward(l, batch, x, y, true, 7), 0);
	for (size_t i = 0; i < out_size(l, batch); i++)
		s += (double)y[i] * r[i];
	return s;
}

static int grad_ok(const char *what, size_t i, double analytic, double numeric)
{
	double err = fabs(analytic - numeric);
	double mag = fabs(analytic) > fabs(numeric) ? fabs(analytic) : fabs(numeric);

	if (err <= GRAD_RTOL * mag + GRAD_ATOL)
		return 1;
	printf("\n  %s[%zu]: analytic %.6g, numeric %.6g", what, i, analytic, numeric);
	return 0;
}

/* Indices to check: all of n, or GRAD_SAMPLES random ones. */
static size_t pick(size_t k, size_t n)
{
	return n <= GRAD_SAMPLES ? k : (size_t)nsl_rng_below(&rng, n);
}

/*
 * dx and every parameter gradient from backward(dy = r) against central differences of
 * L = sum(y * r). x is perturbed in place and restored.
 */
static void check_grads(struct nsl_layer *l, int batch, float *x)
{
	const size_t nx = in_size(l, batch), ny = out_size(l, batch);
	float *y = calloc(ny, sizeof(float)), *r = randv(ny, -1.0f, 1.0f);
	float *dx = calloc(nx, sizeof(float));
	size_t checks = nx < GRAD_SAMPLES ? nx : GRAD_SAMPLES;
	int bad = 0;

	loss_of(l, batch, x, y, r);
	CU_ASSERT_EQUAL_FATAL(l->ops->backward(l, batch, x, y, r, dx, false), 0);
	for (size_t k = 0; k < checks; k++) {
		size_t i = pick(k, nx);
		float keep = x[i];
		double lp, lm;

		x[i] = keep + (float)GRAD_EPS;
		lp = loss_of(l, batch, x, y, r);
		x[i] = keep - (float)GRAD_EPS;
		lm = loss_of(l, batch, x, y, r);
		x[i] = keep;
		bad += !grad_ok("dx", i, dx[i], (lp - lm) / (2 * GRAD_EPS));
	}
	for (int q = 0; q < l->nparams; q++) {
		struct nsl_param *p = &l->params[q];
		float *g = grad_plain(l, q), *w = calloc((size_t)p->numel, sizeof(float));

		CU_ASSERT_EQUAL(nsl_param_export(cc, p, w), 0);
		checks = (size_t)p->numel < GRAD_SAMPLES ? (size_t)p->numel : GRAD_SAMPLES;
		for (size_t k = 0; k < checks; k++) {
			size_t i = pick(k, (size_t)p->numel);
			float keep = w[i];
			double lp, lm;

			w[i] = keep + (float)GRAD_EPS;
			CU_ASSERT_EQUAL(nsl_param_import(cc, p, w), 0);
			lp = loss_of(l, batch, x, y, r);
			w[i] = keep - (float)GRAD_EPS;
			CU_ASSERT_EQUAL(nsl_param_import(cc, p, w), 0);
			lm = loss_of(l, batch, x, y, r);
			w[i] = keep;
			CU_ASSERT_EQUAL(nsl_param_import(cc, p, w), 0);
			bad += !grad_ok(p->name, i, g[i], (lp - lm) / (2 * GRAD_EPS));
		}
		free(g);
		free(w);
	}
	CU_ASSERT_EQUAL(bad, 0);
	free(y);
	free(r);
	free(dx);
}

static double act_ref(enum nsl_fused_act a, double z)
{
	switch (a) {
	case NSL_FUSED_RELU: return z > 0 ? z : 0;
	case NSL_FUSED_TANH: return tanh(z);
	case NSL_FUSED_SIGMOID: return 1 / (1 + exp(-z));
	default: return z;
	}
}

static struct nsl_layer *make(enum nsl_layer_kind kind, int units, int k, struct nsl_shape in,
			      enum nsl_fused_act fused, const struct nsl_layer_ctx *ctx, int batch)
{
	struct nsl_layer_spec spec = { .kind = kind, .units = units, .kh = k, .kw = k, .p = 0.3f };
	struct nsl_layer *l = nsl_layer_create(&spec, 3, in, fused, 42, ctx);

	if (l == NULL)
		printf("\n  %s", nsl_error_last());
	CU_ASSERT_PTR_NOT_NULL_FATAL(l);
	CU_ASSERT_EQUAL_FATAL(l->ops->prepare(l, batch), 0);
	return l;
}

/*
 * A bias that keeps every pre-activation of channel o at least `margin` from relu's kink, so no
 * finite-difference step crosses it. z: batch x channels x spatial pre-activations without bias.
 */
static void relu_safe_bias(struct nsl_layer *l, float *bias, const float *z, int batch, int channels, int spatial)
{
	for (int o = 0; o < channels; o++) {
		double best = -1;

		for (int k = -500; k <= 500; k++) {
			double b = k * 1e-3, gap = INFINITY;

			for (int n = 0; n < batch; n++)
				for (int s = 0; s < spatial; s++) {
					double d = fabs(z[((size_t)n * channels + o) * spatial + s] + b);

					gap = d < gap ? d : gap;
				}
			if (gap > best) {
				best = gap;
				bias[o] = (float)b;
			}
		}
		CU_ASSERT(best > 5e-3);
	}
	CU_ASSERT_EQUAL(nsl_param_import(cc, &l->params[1], bias), 0);
}

/* ---- dense ---- */

static void dense_ref(const float *x, const float *w, const float *b, float *y, int batch, int in, int out,
		      enum nsl_fused_act a)
{
	for (int n = 0; n < batch; n++)
		for (int o = 0; o < out; o++) {
			double z = b[o];

			for (int i = 0; i < in; i++)
				z += (double)w[(size_t)o * in + i] * x[(size_t)n * in + i];
			y[(size_t)n * out + o] = (float)act_ref(a, z);
		}
}

static void dense_case(enum nsl_fused_act a, int max_batch, int batch, struct nsl_shape in, int units)
{
	struct nsl_layer_ctx ctx = make_ctx(max_batch);
	struct nsl_layer *l = make(NSL_LAYER_DENSE, units, 0, in, a, &ctx, batch);
	const int nin = (int)nsl_shape_size(in);
	float *p[NSL_LAYER_MAX_PARAMS];
	float *x = a == NSL_FUSED_RELU ? randv_away0((size_t)batch * nin, 0.05f)
				       : randv((size_t)batch * nin, -1.0f, 1.0f);
	float *y = calloc(out_size(l, batch), sizeof(float)), *want = calloc(out_size(l, batch), sizeof(float));

	CU_ASSERT_EQUAL(l->out.c, units);
	CU_ASSERT_EQUAL(l->nparams, 2);
	CU_ASSERT_EQUAL(l->params[0].numel, (int64_t)units * nin);
	set_params(l, p);
	if (a == NSL_FUSED_RELU) {
		memset(p[1], 0, (size_t)units * sizeof(float));
		dense_ref(x, p[0], p[1], want, batch, nin, units, NSL_FUSED_NONE);
		relu_safe_bias(l, p[1], want, batch, units, 1);
	}
	CU_ASSERT_EQUAL(l->ops->forward(l, batch, x, y, true, 0), 0);
	dense_ref(x, p[0], p[1], want, batch, nin, units, a);
	CU_ASSERT_EQUAL(check_close("y", y, want, out_size(l, batch), FWD_TOL), 0);
	if (batch * nin * units < 20000)
		check_grads(l, batch, x);
	free(p[0]);
	free(p[1]);
	free(x);
	free(y);
	free(want);
	nsl_layer_free(l);
}

static void test_dense(void)
{
	/* a C x H x W input: the plain weight must follow the C,H,W order of nn.Flatten */
	dense_case(NSL_FUSED_NONE, 4, 3, (struct nsl_shape){ 2, 3, 3 }, 7);
}

static void test_dense_relu(void)
{
	dense_case(NSL_FUSED_RELU, 4, 3, (struct nsl_shape){ 18, 1, 1 }, 7);
}

static void test_dense_tanh(void)
{
	dense_case(NSL_FUSED_TANH, 4, 3, (struct nsl_shape){ 18, 1, 1 }, 7);
}

static void test_dense_sigmoid(void)
{
	dense_case(NSL_FUSED_SIGMOID, 4, 3, (struct nsl_shape){ 18, 1, 1 }, 7);
}

static void test_dense_big(void)
{
	/* max batch 64 lets oneDNN pick a blocked weight layout; run the full and a ragged batch */
	dense_case(NSL_FUSED_RELU, 64, 64, (struct nsl_shape){ 784, 1, 1 }, 100);
	dense_case(NSL_FUSED_NONE, 64, 7, (struct nsl_shape){ 16, 7, 7 }, 100);
}

/* ---- conv ---- */

static void conv_ref(const float *x, const float *w, const float *b, float *y, int batch, struct nsl_shape in,
		     int oc, int kh, int kw, enum nsl_fused_act a)
{
	const int oh = in.h - kh + 1, ow = in.w - kw + 1;

	for (int n = 0; n < batch; n++)
		for (int o = 0; o < oc; o++)
			for (int i = 0; i < oh; i++)
				for (int j = 0; j < ow; j++) {
					double z = b[o];

					for (int c = 0; c < in.c; c++)
						for (int u = 0; u < kh; u++)
							for (int v = 0; v < kw; v++)
								z += (double)w[((o * in.c + c) * kh + u) * kw + v] *
								     x[((n * in.c + c) * in.h + i + u) * in.w + j + v];
					y[((n * oc + o) * oh + i) * ow + j] = (float)act_ref(a, z);
				}
}

static void conv_case(enum nsl_fused_act a, int max_batch, int batch, struct nsl_shape in, int oc, int kh, int kw)
{
	struct nsl_layer_ctx ctx = make_ctx(max_batch);
	struct nsl_layer_spec spec = { .kind = NSL_LAYER_CONV, .units = oc, .kh = kh, .kw = kw };
	struct nsl_layer *l = nsl_layer_create(&spec, 1, in, a, 42, &ctx);
	float *p[NSL_LAYER_MAX_PARAMS], *x, *y, *want;

	CU_ASSERT_PTR_NOT_NULL_FATAL(l);
	CU_ASSERT_EQUAL_FATAL(l->ops->prepare(l, batch), 0);
	CU_ASSERT_EQUAL(l->out.c, oc);
	CU_ASSERT_EQUAL(l->out.h, in.h - kh + 1);
	CU_ASSERT_EQUAL(l->out.w, in.w - kw + 1);
	CU_ASSERT_EQUAL(l->params[0].numel, (int64_t)oc * in.c * kh * kw);
	x = a == NSL_FUSED_RELU ? randv_away0(in_size(l, batch), 0.05f) : randv(in_size(l, batch), -1.0f, 1.0f);
	y = calloc(out_size(l, batch), sizeof(float));
	want = calloc(out_size(l, batch), sizeof(float));
	set_params(l, p);
	if (a == NSL_FUSED_RELU) {
		memset(p[1], 0, (size_t)oc * sizeof(float));
		conv_ref(x, p[0], p[1], want, batch, in, oc, kh, kw, NSL_FUSED_NONE);
		relu_safe_bias(l, p[1], want, batch, oc, l->out.h * l->out.w);
	}
	CU_ASSERT_EQUAL(l->ops->forward(l, batch, x, y, true, 0), 0);
	conv_ref(x, p[0], p[1], want, batch, in, oc, kh, kw, a);
	CU_ASSERT_EQUAL(check_close("y", y, want, out_size(l, batch), FWD_TOL), 0);
	check_grads(l, batch, x);
	free(p[0]);
	free(p[1]);
	free(x);
	free(y);
	free(want);
	nsl_layer_free(l);
}

static void test_conv(void)
{
	conv_case(NSL_FUSED_NONE, 3, 2, (struct nsl_shape){ 2, 6, 5 }, 3, 3, 2);
	/* one input channel, as a first layer on images */
	conv_case(NSL_FUSED_NONE, 8, 8, (struct nsl_shape){ 1, 12, 12 }, 16, 5, 5);
}

static void test_conv_relu(void)
{
	conv_case(NSL_FUSED_RELU, 3, 2, (struct nsl_shape){ 2, 6, 5 }, 3, 3, 2);
}

static void test_conv_tanh(void)
{
	conv_case(NSL_FUSED_TANH, 3, 2, (struct nsl_shape){ 2, 6, 5 }, 3, 3, 2);
}

static void test_conv_sigmoid(void)
{
	conv_case(NSL_FUSED_SIGMOID, 3, 2, (struct nsl_shape){ 2, 6, 5 }, 3, 3, 2);
}

/* ---- pooling ---- */

static void pool_case(enum nsl_layer_kind kind, struct nsl_shape in, int k, int batch)
{
	struct nsl_layer_ctx ctx = make_ctx(batch + 1);
	struct nsl_layer *l = make(kind, 0, k, in, NSL_FUSED_NONE, &ctx, batch);
	const int oh = (in.h - k) / k + 1, ow = (in.w - k) / k + 1;
	float *x = distinct(in_size(l, batch), 0.01f);
	float *y = calloc(out_size(l, batch), sizeof(float)), *want = calloc(out_size(l, batch), sizeof(float));

	CU_ASSERT_EQUAL(l->out.c, in.c);
	CU_ASSERT_EQUAL(l->out.h, oh);
	CU_ASSERT_EQUAL(l->out.w, ow);
	CU_ASSERT_EQUAL(l->nparams, 0);
	for (int n = 0; n < batch; n++)
		for (int c = 0; c < in.c; c++)
			for (int i = 0; i < oh; i++)
				for (int j = 0; j < ow; j++) {
					double m = -INFINITY, s = 0;

					for (int u = 0; u < k; u++)
						for (int v = 0; v < k; v++) {
							double e = x[((n * in.c + c) * in.h + i * k + u) * in.w +
								     j * k + v];

							m = e > m ? e : m;
							s += e;
						}
					want[((n * in.c + c) * oh + i) * ow + j] =
						(float)(kind == NSL_LAYER_MAXPOOL ? m : s / (k * k));
				}
	CU_ASSERT_EQUAL(l->ops->forward(l, batch, x, y, true, 0), 0);
	CU_ASSERT_EQUAL(check_close("y", y, want, out_size(l, batch), FWD_TOL), 0);
	check_grads(l, batch, x);
	free(x);
	free(y);
	free(want);
	nsl_layer_free(l);
}

static void test_maxpool(void)
{
	pool_case(NSL_LAYER_MAXPOOL, (struct nsl_shape){ 3, 7, 7 }, 2, 2);   /* floor: last row/column unused */
}

static void test_avgpool(void)
{
	pool_case(NSL_LAYER_AVGPOOL, (struct nsl_shape){ 2, 7, 8 }, 3, 2);
}

/* ---- activations, flatten ---- */

static double gelu_ref(double z)
{
	return 0.5 * z * (1 + erf(z / sqrt(2.0)));
}

static void act_case(enum nsl_layer_kind kind)
{
	const struct nsl_shape in = { 4, 2, 3 };
	const int batch = 3;
	struct nsl_layer_ctx ctx = make_ctx(5);
	struct nsl_layer *l = make(kind, 0, 0, in, NSL_FUSED_RELU, &ctx, batch);
	const size_t n = in_size(l, batch);
	float *x = randv_away0(n, 0.05f), *y = calloc(n, sizeof(float)), *want = malloc(n * sizeof(float));

	CU_ASSERT_EQUAL(l->fused, NSL_FUSED_NONE);   /* fused is for dense and conv only */
	CU_ASSERT_EQUAL(l->out.c * l->out.h * l->out.w, 24);
	for (size_t i = 0; i < n; i++) {
		switch (kind) {
		case NSL_LAYER_RELU: want[i] = (float)act_ref(NSL_FUSED_RELU, x[i]); break;
		case NSL_LAYER_TANH: want[i] = (float)act_ref(NSL_FUSED_TANH, x[i]); break;
		case NSL_LAYER_SIGMOID: want[i] = (float)act_ref(NSL_FUSED_SIGMOID, x[i]); break;
		default: want[i] = (float)gelu_ref(x[i]); break;
		}
	}
	CU_ASSERT_EQUAL(l->ops->forward(l, batch, x, y, true, 0), 0);
	CU_ASSERT_EQUAL(check_close("y", y, want, n, FWD_TOL), 0);
	check_grads(l, batch, x);
	free(x);
	free(y);
	free(want);
	nsl_layer_free(l);
}

static void test_relu(void)
{
	act_case(NSL_LAYER_RELU);
}

static void test_tanh(void)
{
	act_case(NSL_LAYER_TANH);
}

static void test_sigmoid(void)
{
	act_case(NSL_LAYER_SIGMOID);
}

static void test_gelu(void)
{
	act_case(NSL_LAYER_GELU);
}

static void test_flatten(void)
{
	struct nsl_layer_ctx ctx = make_ctx(4);
	struct nsl_layer *l = make(NSL_LAYER_FLATTEN, 0, 0, (struct nsl_shape){ 3, 4, 5 }, NSL_FUSED_NONE, &ctx, 2);
	float *x = randv(120, -1, 1), *y = calloc(120, sizeof(float));

	CU_ASSERT_EQUAL(l->out.c, 60);
	CU_ASSERT_EQUAL(l->out.h, 1);
	CU_ASSERT_EQUAL(l->out.w, 1);
	CU_ASSERT_EQUAL(l->ops->forward(l, 2, x, y, true, 0), 0);
	CU_ASSERT_EQUAL(memcmp(x, y, 120 * sizeof(float)), 0);
	check_grads(l, 2, x);
	free(x);
	free(y);
	nsl_layer_free(l);
}

/* ---- dropout ---- */

static struct nsl_layer *dropout(int index, float p, uint64_t seed, struct nsl_layer_ctx *ctx)
{
	struct nsl_layer_spec spec = { .kind = NSL_LAYER_DROPOUT, .p = p };
	struct nsl_shape in = { 10, 10, 10 };
	struct nsl_layer *l = nsl_layer_create(&spec, index, in, NSL_FUSED_NONE, seed, ctx);

	CU_ASSERT_PTR_NOT_NULL_FATAL(l);
	CU_ASSERT_EQUAL_FATAL(l->ops->prepare(l, 4), 0);
	return l;
}

static void test_dropout(void)
{
	const size_t n = 4000;
	struct nsl_layer_ctx ctx = make_ctx(4);
	struct nsl_layer *a = dropout(5, 0.25f, 99, &ctx), *b = dropout(5, 0.25f, 99, &ctx);
	float *x = randv_away0(n, 0.1f), *ya = calloc(n, sizeof(float)), *yb = calloc(n, sizeof(float));
	float *dy = randv(n, -1, 1), *dx = calloc(n, sizeof(float));
	size_t kept = 0, same = 0;

	/* same (seed, index, key): same mask, bit for bit */
	CU_ASSERT_EQUAL(a->ops->forward(a, 4, x, ya, true, 1234), 0);
	CU_ASSERT_EQUAL(b->ops->forward(b, 4, x, yb, true, 1234), 0);
	CU_ASSERT_EQUAL(memcmp(ya, yb, n * sizeof(float)), 0);
	for (size_t i = 0; i < n; i++) {
		CU_ASSERT(ya[i] == 0.0f || ya[i] == x[i] * (1.0f / 0.75f));
		kept += ya[i] != 0.0f;
	}
	/* 3000 expected; 6 sigma of a binomial(4000, 0.75) is about 165 */
	CU_ASSERT(kept > 2835 && kept < 3165);
	/* backward follows the mask and the scale */
	CU_ASSERT_EQUAL(a->ops->backward(a, 4, x, ya, dy, dx, false), 0);
	for (size_t i = 0; i < n; i++)
		CU_ASSERT(dx[i] == (ya[i] != 0.0f ? dy[i] * (1.0f / 0.75f) : 0.0f));
	CU_ASSERT_EQUAL(a->ops->backward(a, 4, x, ya, dy, NULL, false), 0);
	/* another key: another mask (agreement about 0.75^2 + 0.25^2 = 62.5%) */
	CU_ASSERT_EQUAL(b->ops->forward(b, 4, x, yb, true, 1235), 0);
	for (size_t i = 0; i < n; i++)
		same += (ya[i] != 0.0f) == (yb[i] != 0.0f);
	CU_ASSERT(same < n * 3 / 4);
	/* the first rows of a smaller batch see the same mask */
	CU_ASSERT_EQUAL(b->ops->prepare(b, 2), 0);
	CU_ASSERT_EQUAL(b->ops->forward(b, 2, x, yb, true, 1234), 0);
	CU_ASSERT_EQUAL(memcmp(ya, yb, n / 2 * sizeof(float)), 0);
	/* evaluation: identity */
	CU_ASSERT_EQUAL(a->ops->forward(a, 4, x, ya, false, 1234), 0);
	CU_ASSERT_EQUAL(memcmp(ya, x, n * sizeof(float)), 0);
	nsl_layer_free(b);
	/* another layer number: another mask */
	b = dropout(6, 0.25f, 99, &ctx);
	CU_ASSERT_EQUAL(a->ops->forward(a, 4, x, ya, true, 1234), 0);
	CU_ASSERT_EQUAL(b->ops->forward(b, 4, x, yb, true, 1234), 0);
	CU_ASSERT(memcmp(ya, yb, n * sizeof(float)) != 0);
	nsl_layer_free(a);
	nsl_layer_free(b);
	free(x);
	free(ya);
	free(yb);
	free(dy);
	free(dx);
}

static void test_dropout_bad_p(void)
{
	struct nsl_layer_ctx ctx = make_ctx(4);
	struct nsl_layer_spec spec = { .kind = NSL_LAYER_DROPOUT, .p = 1.5f };

	CU_ASSERT_PTR_NULL(nsl_layer_create(&spec, 2, (struct nsl_shape){ 3, 1, 1 }, NSL_FUSED_NONE, 1, &ctx));
	CU_ASSERT_PTR_NOT_NULL(strstr(nsl_error_last(), "layer 2 (dropout)"));
}

/* ---- contract corners ---- */

/* Two backward calls with accumulate give twice the gradient; dx == NULL leaves them right. */
static void accumulate_case(enum nsl_layer_kind kind, struct nsl_shape in, int units, int k)
{
	const int batch = 3;
	struct nsl_layer_ctx ctx = make_ctx(5);
	struct nsl_layer *l = make(kind, units, k, in, NSL_FUSED_TANH, &ctx, batch);
	float *p[NSL_LAYER_MAX_PARAMS], *x = randv(in_size(l, batch), -1, 1);
	float *y = calloc(out_size(l, batch), sizeof(float)), *dy = randv(out_size(l, batch), -1, 1);
	float *dx = calloc(in_size(l, batch), sizeof(float)), *g1[2], *g2[2];

	set_params(l, p);
	CU_ASSERT_EQUAL(l->ops->forward(l, batch, x, y, true, 0), 0);
	CU_ASSERT_EQUAL(l->ops->backward(l, batch, x, y, dy, dx, false), 0);
	for (int q = 0; q < 2; q++)
		g1[q] = grad_plain(l, q);
	/* the first layer's case: no input gradient, same parameter gradients, added */
	CU_ASSERT_EQUAL(l->ops->backward(l, batch, x, y, dy, NULL, true), 0);
	for (int q = 0; q < 2; q++) {
		g2[q] = grad_plain(l, q);
		for (int64_t i = 0; i < l->params[q].numel; i++)
			g1[q][i] *= 2;
		CU_ASSERT_EQUAL(check_close(l->params[q].name, g2[q], g1[q], (size_t)l->params[q].numel, 1e-5), 0);
		free(g1[q]);
		free(g2[q]);
		free(p[q]);
	}
	/* !accumulate overwrites again, with or without dx */
	CU_ASSERT_EQUAL(l->ops->backward(l, batch, x, y, dy, NULL, false), 0);
	g1[0] = grad_plain(l, 0);
	CU_ASSERT_EQUAL(l->ops->backward(l, batch, x, y, dy, dx, false), 0);
	g2[0] = grad_plain(l, 0);
	CU_ASSERT_EQUAL(memcmp(g1[0], g2[0], (size_t)l->params[0].numel * sizeof(float)), 0);
	CU_ASSERT(fabsf(g1[0][0]) > 0);
	free(g1[0]);
	free(g2[0]);
	free(x);
	free(y);
	free(dy);
	free(dx);
	nsl_layer_free(l);
}

static void test_accumulate(void)
{
	accumulate_case(NSL_LAYER_DENSE, (struct nsl_shape){ 10, 1, 1 }, 6, 0);
	accumulate_case(NSL_LAYER_CONV, (struct nsl_shape){ 2, 5, 5 }, 4, 3);
}

/* Smaller batches after the largest: every prepared size still computes the same rows. */
static void test_batches(void)
{
	struct nsl_layer_ctx ctx = make_ctx(16);
	struct nsl_layer *l = make(NSL_LAYER_CONV, 4, 3, (struct nsl_shape){ 2, 6, 6 }, NSL_FUSED_RELU, &ctx, 16);
	float *p[NSL_LAYER_MAX_PARAMS], *x = randv(in_size(l, 16), -1, 1);
	float *y16 = calloc(out_size(l, 16), sizeof(float)), *y = calloc(out_size(l, 16), sizeof(float));
	const int sizes[NSL_LAYER_MAX_BATCHES - 1] = { 1, 5, 9, 3, 4, 6, 7 };

	set_params(l, p);
	CU_ASSERT_EQUAL(l->ops->forward(l, 16, x, y16, true, 0), 0);
	for (int i = 0; i < NSL_LAYER_MAX_BATCHES - 1; i++) {
		CU_ASSERT_EQUAL_FATAL(l->ops->prepare(l, sizes[i]), 0);
		CU_ASSERT_EQUAL(l->ops->forward(l, sizes[i], x, y, true, 0), 0);
		CU_ASSERT_EQUAL(check_close("y", y, y16, out_size(l, sizes[i]), 1e-5), 0);
	}
	/* one size more than the table holds is refused with a reason; an unprepared one too */
	CU_ASSERT_EQUAL(l->ops->prepare(l, 2), -ENOSPC);
	CU_ASSERT_PTR_NOT_NULL(strstr(nsl_error_last(), "layer 3 (conv)"));
	CU_ASSERT(l->ops->forward(l, 2, x, y, true, 0) < 0);
	CU_ASSERT(l->ops->prepare(l, 17) < 0);
	free(p[0]);
	free(p[1]);
	free(x);
	free(y);
	free(y16);
	nsl_layer_free(l);
}

static void roundtrip(struct nsl_layer *l)
{
	for (int q = 0; q < l->nparams; q++) {
		struct nsl_param *p = &l->params[q];
		float *v = randv((size_t)p->numel, -1, 1), *a = calloc((size_t)p->numel, sizeof(float));
		float *b = calloc((size_t)p->numel, sizeof(float));
		float *internal = malloc(p->count * sizeof(float));

		CU_ASSERT(p->count >= (size_t)p->numel);
		CU_ASSERT_EQUAL(nsl_param_import(cc, p, v), 0);
		CU_ASSERT_EQUAL(nsl_param_export(cc, p, a), 0);
		memcpy(internal, p->data, p->count * sizeof(float));
		CU_ASSERT_EQUAL(nsl_param_import(cc, p, a), 0);
		CU_ASSERT_EQUAL(memcmp(internal, p->data, p->count * sizeof(float)), 0);
		CU_ASSERT_EQUAL(nsl_param_export(cc, p, b), 0);
		CU_ASSERT_EQUAL(memcmp(a, b, (size_t)p->numel * sizeof(float)), 0);
		CU_ASSERT_EQUAL(memcmp(a, v, (size_t)p->numel * sizeof(float)), 0);
		free(v);
		free(a);
		free(b);
		free(internal);
	}
}

static void test_param_roundtrip(void)
{
	struct nsl_layer_ctx ctx = make_ctx(64);
	struct nsl_layer *l = make(NSL_LAYER_DENSE, 100, 0, (struct nsl_shape){ 784, 1, 1 }, NSL_FUSED_NONE, &ctx, 64);

	roundtrip(l);
	nsl_layer_free(l);
	l = make(NSL_LAYER_CONV, 32, 3, (struct nsl_shape){ 16, 12, 12 }, NSL_FUSED_RELU, &ctx, 64);
	roundtrip(l);
	nsl_layer_free(l);
}

static void test_bad_specs(void)
{
	struct nsl_layer_ctx ctx = make_ctx(4);
	struct nsl_layer_spec conv = { .kind = NSL_LAYER_CONV, .units = 4, .kh = 7, .kw = 3 };
	struct nsl_layer_spec pool = { .kind = NSL_LAYER_MAXPOOL, .kh = 0, .kw = 0 };
	struct nsl_layer_spec dense = { .kind = NSL_LAYER_DENSE, .units = 0 };

	CU_ASSERT_PTR_NULL(nsl_layer_create(&conv, 4, (struct nsl_shape){ 1, 5, 5 }, NSL_FUSED_NONE, 1, &ctx));
	CU_ASSERT_PTR_NOT_NULL(strstr(nsl_error_last(), "layer 4 (conv)"));
	CU_ASSERT_PTR_NULL(nsl_layer_create(&pool, 5, (struct nsl_shape){ 1, 5, 5 }, NSL_FUSED_NONE, 1, &ctx));
	CU_ASSERT_PTR_NOT_NULL(strstr(nsl_error_last(), "layer 5 (maxpool)"));
	CU_ASSERT_PTR_NULL(nsl_layer_create(&dense, 6, (struct nsl_shape){ 1, 5, 5 }, NSL_FUSED_NONE, 1, &ctx));
	CU_ASSERT_PTR_NOT_NULL(strstr(nsl_error_last(), "layer 6 (dense)"));
	nsl_layer_free(NULL);
}

static const struct nsl_test_case cases[] = {
	{ "dense", test_dense },
	{ "dense+relu", test_dense_relu },
	{ "dense+tanh", test_dense_tanh },
	{ "dense+sigmoid", test_dense_sigmoid },
	{ "dense at batch 64 and 7", test_dense_big },
	{ "conv", test_conv },
	{ "conv+relu", test_conv_relu },
	{ "conv+tanh", test_conv_tanh },
	{ "conv+sigmoid", test_conv_sigmoid },
	{ "maxpool", test_maxpool },
	{ "avgpool", test_avgpool },
	{ "relu", test_relu },
	{ "tanh", test_tanh },
	{ "sigmoid", test_sigmoid },
	{ "gelu", test_gelu },
	{ "flatten", test_flatten },
	{ "dropout masks", test_dropout },
	{ "dropout bad probability", test_dropout_bad_p },
	{ "accumulate and dx NULL", test_accumulate },
	{ "smaller batches", test_batches },
	{ "parameter round trip", test_param_roundtrip },
	{ "bad specs", test_bad_specs },
	{ NULL, NULL },
};

int main(void)
{
	int rc;

	nsl_rng_seed(&rng, 2024, 0);
	cc = nsl_compute_create(1);
	if (cc == NULL) {
		fprintf(stderr, "%s\n", nsl_error_last());
		return 1;
	}
	rc = nsl_test_run("layers", cases);
	nsl_compute_free(cc);
	return rc;
}
