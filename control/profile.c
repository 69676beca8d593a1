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
#include "profile.h"
#include "progress.h"

#define TIMED_S 0.05
#define RUNS 3

enum what { FWD, FWD_BWD, STEP };

static int run_layer(struct nsl_stage *s, int rows, const float *x, const float *dy, enum what w)
{
	const float *y, *dx;
	int rc;

	if (w == STEP)
		return nsl_stage_step(s, 1e-9f);
	rc = nsl_stage_forward(s, rows, x, &y, w == FWD_BWD, 0);
	if (rc == 0 && w == FWD_BWD)
		rc = nsl_stage_backward(s, rows, dy, &dx);
	return rc;
}

/* Seconds per call, the best of RUNS runs of enough calls to take TIMED_S each. */
static double time_calls(struct nsl_stage *s, int rows, const float *x, const float *dy, enum what backward)
{
	double best = 1e30;
	int calls = 1;

	for (int run = 0; run < RUNS; run++) {
		double t0 = nsl_now(), t;

		for (int k = 0; k < calls; k++)
			if (run_layer(s, rows, x, dy, backward) < 0)
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

int nsl_profile_layers(const struct nsl_model *m, int micro, int threads, const struct nsl_optim_config *oc,
		       struct nsl_cost *c, double *fixed_state)
{
	struct nsl_compute *cc = nsl_compute_create(threads);
	int rc = cc == NULL ? -EINVAL : 0;

	for (int i = 0; i < m->nlayers && rc == 0; i++) {
		struct nsl_stage_config cfg = { .model = m, .first = i, .last = i + 1, .max_batch = micro, .seed = 1,
						.optim = *oc };
		const int64_t in = nsl_shape_size(m->shapes[i]), out = nsl_shape_size(m->shapes[i + 1]);
		float *x = malloc(sizeof(float) * (size_t)(in * micro)), *dy = malloc(sizeof(float) * (size_t)(out * micro));
		struct nsl_stage *s = NULL;
		struct nsl_stage_memory mem;
		struct nsl_rng g;
		double f, fb, st;

		if (x == NULL || dy == NULL) {
			rc = nsl_error_set(ENOMEM, "out of memory");
		} else if ((s = nsl_stage_create(cc, &cfg)) == NULL || nsl_stage_prepare(s, micro) < 0) {
			rc = nsl_error_prefix(-EINVAL, "profiling layer %d", i);
		} else {
			nsl_rng_seed(&g, 1, (uint64_t)i);
			for (int64_t k = 0; k < in * micro; k++)
				x[k] = nsl_rng_uniform(&g);
			for (int64_t k = 0; k < out * micro; k++)
				dy[k] = nsl_rng_uniform(&g) - 0.5f;
			double make = 1e30, t0;

			f = time_calls(s, micro, x, dy, FWD);
			fb = time_calls(s, micro, x, dy, FWD_BWD);
			st = time_calls(s, micro, x, dy, STEP);
			/* A stage that arrives at a peer is made there: buffers, initialisation, primitives. */
			for (int run = 0; run < RUNS && f >= 0; run++) {
				struct nsl_stage *t;

				t0 = nsl_now();
				if ((t = nsl_stage_create(cc, &cfg)) == NULL || nsl_stage_prepare(t, micro) < 0)
					f = -1;
				nsl_stage_free(t);
				make = fmin(make, nsl_now() - t0);
			}
			if (f < 0 || fb < 0 || st < 0) {
				rc = nsl_error_prefix(-EIO, "profiling layer %d", i);
			} else {
				nsl_stage_memory(s, micro, &mem);
				c->layer[i] = (struct nsl_cost_layer){
					.fwd_s = f / micro,
					.bwd_s = (fb > f ? fb - f : 0) / micro,
					.fixed_bytes = (double)(mem.params + mem.grads + mem.optim_state),
					.act_bytes = (double)out * sizeof(float),
					.step_s = st,
					.make_s = make,
				};
				if (fixed_state != NULL)
					fixed_state[i] = (double)(mem.params + mem.optim_state);
			}
		}
		nsl_stage_free(s);
		free(x);
		free(dy);
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
		b->rc = run_layer(s, b->micro, x, dy, FWD_BWD);
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
	alone = time_calls(s, micro, x, dy, FWD_BWD);
	for (; started < cpus - 1; started++) {
		b[started] = (struct burner){ .m = m, .oc = oc, .micro = micro, .stop = &stop };
		if (pthread_create(&t[started], NULL, burn, &b[started]) != 0)
			break;
	}
	/* let them get going before timing */
	for (double t0 = nsl_now(); nsl_now() - t0 < 0.05;)
		run_layer(s, micro, x, dy, FWD_BWD);
	busy = time_calls(s, micro, x, dy, FWD_BWD);
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
