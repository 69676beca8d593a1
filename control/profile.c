/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdbool.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "nsplit/compute.h"
#include "nsplit/error.h"
#include "nsplit/rng.h"
#include "nsplit/stage.h"
#include "nsplit/stash.h"
#include "profile.h"
#include "progress.h"

#define TIMED_S 0.05
#define RUNS 3

#define PASSES_MIN 5
#define PASSES_MAX 64

/* A forward and backward of the whole model, as the contention check runs it. */
static int run_model(struct nsl_stage *s, int rows, const float *x, const float *dy)
{
	const float *y, *dx;
	int rc = nsl_stage_forward(s, rows, x, &y, true, 0);

	return rc == 0 ? nsl_stage_backward(s, rows, dy, &dx) : rc;
}

/* Seconds per call, the best of RUNS runs of enough calls to take TIMED_S each. */
static double time_calls(struct nsl_stage *s, int rows, const float *x, const float *dy)
{
	double best = 1e30;
	int calls = 1;

	for (int run = 0; run < RUNS; run++) {
		double t0 = nsl_now(), t;

		for (int k = 0; k < calls; k++)
			if (run_model(s, rows, x, dy) < 0)
				return -1;
		t = nsl_now() - t0;
		if (t < TIMED_S && run == 0) {
			/* Too short to time: size the runs from this one and start again. */
			calls = (int)(calls * TIMED_S / (t > 1e-7 ? t : 1e-7)) + 1;
			run = -1;
			continue;
		}
		best = t / calls < best ? t / calls : best;
	}
	return best;
}

/*
 * The rows calls are timed at: the micro-batch, the batch and the powers of two below the batch
 * (the largest of them when there are too many), ascending.
 */
static int ladder(int micro, int batch, int *rows)
{
	int n = 0;

	rows[n++] = batch;
	if (micro < batch)
		rows[n++] = micro;
	for (int r = 1 << 30; r >= 1 && n < NSL_COST_MAX_ROWS; r >>= 1)
		if (r < batch && r != micro)
			rows[n++] = r;
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && rows[j - 1] > rows[j]; j--) {
			int t = rows[j];

			rows[j] = rows[j - 1];
			rows[j - 1] = t;
		}
	return n;
}

/*
 * Every layer as its own stage, run one after another as the whole model runs, so that each
 * call meets the caches the other layers leave behind, as it does in training, where a stage
 * computes between other stages' work. A layer timed alone keeps its weights in cache and looks
 * up to twice as fast on a few rows as it runs in training.
 */
struct chain {
	struct nsl_stage **st;
	int n;
	float *x, *dy;
	double *t;                    /* timings: [what][layer][pass], what = forward, backward, wgrad, step */
	struct nsl_stash *stash;      /* per layer: a staleness-1 weight stash */
	int64_t *version;
};

enum { T_FWD, T_BWD, T_WGRAD, T_STEP, T_STASH, T_KINDS };

static double *slot(struct chain *c, int what, int layer)
{
	return &c->t[((size_t)what * (size_t)c->n + (size_t)layer) * PASSES_MAX];
}

/* Forward and backward of `rows` rows, the rows kept from row0; each layer's calls timed, added
 * into pass p's slots. */
static int chain_micro(struct chain *c, int rows, int row0, int p)
{
	const float *y = c->x, *g = c->dy;
	double t0;

	for (int i = 0; i < c->n; i++) {
		t0 = nsl_now();
		if (nsl_stage_forward(c->st[i], rows, y, &y, true, 0) < 0)
			return -EIO;
		slot(c, T_FWD, i)[p] += nsl_now() - t0;
	}
	for (int i = c->n - 1; i >= 0; i--) {
		t0 = nsl_now();
		if (nsl_stage_backward_rows(c->st[i], 0, row0, rows, g, &g) < 0)
			return -EIO;
		slot(c, T_BWD, i)[p] += nsl_now() - t0;
	}
	return 0;
}

/*
 * Pass p: a whole batch as training runs it, its micro-batches of `rows` rows, then each layer's
 * weight gradients and step, so that what a step costs the calls after it (a dense layer's
 * transposed weights, made again once a version; weighted.c) is in their times. Per call, into
 * the pass's slots; with a stash (the micro-batch's row count), also the stashed step.
 */
static int chain_pass(struct chain *c, int rows, int batch, int p)
{
	const int nm = batch / rows;
	double t0;

	for (int i = 0; i < c->n; i++)
		slot(c, T_FWD, i)[p] = slot(c, T_BWD, i)[p] = 0;
	for (int k = 0; k < nm; k++)
		if (chain_micro(c, rows, k * rows, p) < 0)
			return -EIO;
	for (int i = 0; i < c->n; i++) {
		slot(c, T_FWD, i)[p] /= nm;
		slot(c, T_BWD, i)[p] /= nm;
	}
	for (int i = 0; i < c->n; i++) {
		t0 = nsl_now();
		if (nsl_stage_weight_grads(c->st[i]) < 0)
			return -EIO;
		slot(c, T_WGRAD, i)[p] = nsl_now() - t0;
		t0 = nsl_now();
		if (nsl_stage_step(c->st[i], 1e-9f) < 0)
			return -EIO;
		slot(c, T_STEP, i)[p] = nsl_now() - t0;
		/* With a weight stash, the step writes the new version over the oldest, last written
		 * a step before: out of place, into memory gone cold. */
		t0 = nsl_now();
		if (c->stash[i].buf != NULL && nsl_stash_step(&c->stash[i], c->st[i], 1e-9f, ++c->version[i]) < 0)
			return -EIO;
		slot(c, T_STASH, i)[p] = nsl_now() - t0;
	}
	return 0;
}

/* Passes on `rows` rows until they took long enough to time; the medians into c->layer, with
 * those of the weight gradients and steps when `steps` (the micro-batch's row count). */
static int chain_time(struct chain *c, int rows, int batch, bool steps, struct nsl_cost *cost, int k)
{
	double t0;
	int p = 0, rc;

	for (int i = 0; i < c->n; i++)
		if ((rc = nsl_stage_prepare(c->st[i], rows)) < 0)
			return rc;
	/* one pass untimed: first touches, primitives made */
	if ((rc = chain_pass(c, rows, batch, 0)) < 0)
		return rc;
	for (t0 = nsl_now(); p < PASSES_MAX && (p < PASSES_MIN || nsl_now() - t0 < 2 * TIMED_S); p++)
		if ((rc = chain_pass(c, rows, batch, p)) < 0)
			return rc;
	for (int i = 0; i < c->n; i++) {
		struct nsl_cost_layer *l = &cost->layer[i];

		l->fwd_at[k] = nsl_median(slot(c, T_FWD, i), (size_t)p);
		l->bwd_at[k] = nsl_median(slot(c, T_BWD, i), (size_t)p);
		if (steps) {
			l->wgrad_s = nsl_median(slot(c, T_WGRAD, i), (size_t)p);
			l->step_s = nsl_median(slot(c, T_STEP, i), (size_t)p);
			l->stash_step_s = nsl_median(slot(c, T_STASH, i), (size_t)p);
		}
	}
	return 0;
}

static void chain_free_layer(struct chain *c, int i)
{
	if (c->st[i] != NULL)
		nsl_stash_restore(&c->stash[i], c->st[i]);
	nsl_stash_fini(&c->stash[i]);
	nsl_stage_free(c->st[i]);
	c->st[i] = NULL;
}

static int time_layers(const struct nsl_model *m, int micro, int batch, struct nsl_compute *cc,
		       const struct nsl_optim_config *oc, struct nsl_cost *c)
{
	const int64_t in = nsl_shape_size(m->shapes[0]), out = nsl_shape_size(m->shapes[m->nlayers]);
	struct chain ch = { .n = m->nlayers };
	struct nsl_rng g;
	int rc = 0, km = 0;

	ch.st = calloc((size_t)ch.n, sizeof(*ch.st));
	ch.x = malloc(sizeof(float) * (size_t)(in * batch));
	ch.dy = malloc(sizeof(float) * (size_t)(out * batch));
	ch.t = malloc(sizeof(double) * T_KINDS * (size_t)ch.n * PASSES_MAX);
	ch.stash = calloc((size_t)ch.n, sizeof(*ch.stash));
	ch.version = calloc((size_t)ch.n, sizeof(*ch.version));
	if (ch.st == NULL || ch.x == NULL || ch.dy == NULL || ch.t == NULL || ch.stash == NULL || ch.version == NULL) {
		rc = nsl_error_set(ENOMEM, "out of memory");
		goto out;
	}
	nsl_rng_seed(&g, 1, 0);
	for (int64_t k = 0; k < in * batch; k++)
		ch.x[k] = nsl_rng_uniform(&g);
	for (int64_t k = 0; k < out * batch; k++)
		ch.dy[k] = nsl_rng_uniform(&g) - 0.5f;
	c->nrows = ladder(micro, batch, c->rows);
	c->wgrad_rows = batch;
	for (int k = 0; k < c->nrows && rc == 0; k++) {
		/* Made again for each row count, as training makes a stage for its micro-batch: oneDNN
		 * lays the weights out for the rows it is to see. */
		for (int i = 0; i < ch.n && rc == 0; i++) {
			struct nsl_stage_config cfg = { .model = m, .first = i, .last = i + 1, .max_batch = c->rows[k],
							.defer_rows = batch, .seed = 1, .optim = *oc };

			chain_free_layer(&ch, i);
			if ((ch.st[i] = nsl_stage_create(cc, &cfg)) == NULL)
				rc = nsl_error_prefix(-EINVAL, "profiling layer %d", i);
			else if (c->rows[k] == micro)
				rc = nsl_stash_init(&ch.stash[i], ch.st[i], 2, NULL);
		}
		if (c->rows[k] == micro)
			km = k;
		if (rc == 0 && (rc = chain_time(&ch, c->rows[k], batch, c->rows[k] == micro, c, k)) < 0)
			rc = nsl_error_prefix(rc, "profiling the layers on %d rows", c->rows[k]);
	}
	for (int i = 0; i < ch.n && rc == 0; i++) {
		struct nsl_cost_layer *l = &c->layer[i];

		l->fwd_s = l->fwd_at[km] / micro;
		l->bwd_s = (l->bwd_at[km] + l->wgrad_s * micro / batch) / micro;
	}
out:
	for (int i = 0; ch.st != NULL && ch.stash != NULL && i < ch.n; i++)
		chain_free_layer(&ch, i);
	free(ch.st);
	free(ch.stash);
	free(ch.version);
	free(ch.x);
	free(ch.dy);
	free(ch.t);
	return rc;
}

int nsl_profile_layers(const struct nsl_model *m, int micro, int batch, int threads,
		       const struct nsl_optim_config *oc, struct nsl_cost *c, double *fixed_state)
{
	struct nsl_compute *cc = nsl_compute_create(threads);
	int rc = cc == NULL ? -EINVAL : 0;

	if (rc == 0 && (micro < 1 || batch < micro))
		rc = nsl_error_set(EINVAL, "profile: micro-batch %d of batch %d", micro, batch);
	if (rc == 0)
		rc = time_layers(m, micro, batch, cc, oc, c);
	for (int i = 0; i < m->nlayers && rc == 0; i++) {
		/* A stage that arrives at a peer is made there: buffers, initialisation, primitives. */
		struct nsl_stage_config cfg = { .model = m, .first = i, .last = i + 1, .max_batch = micro, .seed = 1,
						.optim = *oc };
		struct nsl_stage_memory mem;
		double make = 1e30;

		for (int run = 0; run < RUNS && rc == 0; run++) {
			double t0 = nsl_now();
			struct nsl_stage *t = nsl_stage_create(cc, &cfg);

			if (t == NULL || nsl_stage_prepare(t, micro) < 0)
				rc = nsl_error_prefix(-EINVAL, "profiling layer %d", i);
			else
				make = fmin(make, nsl_now() - t0);
			if (rc == 0 && run == 0) {
				nsl_stage_memory(t, micro, &mem);
				c->layer[i].fixed_bytes = (double)(mem.params + mem.grads + mem.optim_state);
				c->layer[i].act_bytes = (double)nsl_shape_size(m->shapes[i + 1]) * sizeof(float);
				if (fixed_state != NULL)
					fixed_state[i] = (double)(mem.params + mem.optim_state);
			}
			nsl_stage_free(t);
		}
		c->layer[i].make_s = make;
	}
	nsl_compute_free(cc);
	return rc;
}


/* A background thread running the model's forward and backward until told to stop. */
struct burner {
	const struct nsl_model *m;
	const struct nsl_optim_config *oc;
	int micro;
	atomic_int *stop;
	int rc;
};

static int whole_stage(const struct nsl_model *m, int micro, const struct nsl_optim_config *oc,
		       struct nsl_compute **cc, struct nsl_stage **s, float **x, float **dy)
{
	struct nsl_stage_config cfg = { .model = m, .first = 0, .last = m->nlayers, .max_batch = micro, .seed = 1,
					.optim = *oc };
	const int64_t in = nsl_shape_size(m->shapes[0]), out = nsl_shape_size(m->shapes[m->nlayers]);

	*cc = nsl_compute_create(1);
	*s = *cc ? nsl_stage_create(*cc, &cfg) : NULL;
	*x = calloc((size_t)(in * micro), sizeof(float));
	*dy = calloc((size_t)(out * micro), sizeof(float));
	if (*s == NULL || *x == NULL || *dy == NULL || nsl_stage_prepare(*s, micro) < 0)
		return -EINVAL;
	for (int64_t k = 0; k < in * micro; k++)
		(*x)[k] = (float)(k % 7) / 7.0f;
	for (int64_t k = 0; k < out * micro; k++)
		(*dy)[k] = (float)(k % 5) / 5.0f - 0.4f;
	return 0;
}

static void whole_free(struct nsl_compute *cc, struct nsl_stage *s, float *x, float *dy)
{
	nsl_stage_free(s);
	nsl_compute_free(cc);
	free(x);
	free(dy);
}

static void *burn(void *arg)
{
	struct burner *b = arg;
	struct nsl_compute *cc;
	struct nsl_stage *s;
	float *x, *dy;

	b->rc = whole_stage(b->m, b->micro, b->oc, &cc, &s, &x, &dy);
	while (b->rc == 0 && !atomic_load(b->stop))
		b->rc = run_model(s, b->micro, x, dy);
	whole_free(cc, s, x, dy);
	return NULL;
}

int nsl_profile_contention(const struct nsl_model *m, int micro, const struct nsl_optim_config *oc, int cpus,
			   double *out)
{
	struct nsl_compute *cc = NULL;
	struct nsl_stage *s = NULL;
	float *x = NULL, *dy = NULL;
	struct burner b[64];
	pthread_t t[64];
	atomic_int stop = 0;
	double alone, busy;
	int rc, started = 0;

	*out = 1;
	if (cpus <= 1)
		return 0;
	if (cpus > 64)
		cpus = 64;
	if ((rc = whole_stage(m, micro, oc, &cc, &s, &x, &dy)) < 0)
		goto out;
	alone = time_calls(s, micro, x, dy);
	for (; started < cpus - 1; started++) {
		b[started] = (struct burner){ .m = m, .oc = oc, .micro = micro, .stop = &stop };
		if (pthread_create(&t[started], NULL, burn, &b[started]) != 0)
			break;
	}
	/* let them get going before timing */
	for (double t0 = nsl_now(); nsl_now() - t0 < 0.05;)
		run_model(s, micro, x, dy);
	busy = time_calls(s, micro, x, dy);
	atomic_store(&stop, 1);
	for (int i = 0; i < started; i++)
		pthread_join(t[i], NULL);
	if (alone <= 0 || busy <= 0)
		rc = nsl_error_set(EIO, "profile: timing the model with every core busy failed");
	else
		*out = busy > alone ? busy / alone : 1;
out:
	whole_free(cc, s, x, dy);
	return rc < 0 ? nsl_error_prefix(rc, "profile: contention") : 0;
}
