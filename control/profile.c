/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "nsplit/compute.h"
#include "nsplit/error.h"
#include "nsplit/rng.h"
#include "nsplit/stage.h"
#include "profile.h"
#include "progress.h"

#define TIMED_S 0.05
#define RUNS 3

static int run_layer(struct nsl_stage *s, int rows, const float *x, const float *dy, bool backward)
{
	const float *y, *dx;
	int rc = nsl_stage_forward(s, rows, x, &y, backward, 0);

	if (rc == 0 && backward)
		rc = nsl_stage_backward(s, rows, dy, &dx);
	return rc;
}

/* Seconds per call, the best of RUNS runs of enough calls to take TIMED_S each. */
static double time_calls(struct nsl_stage *s, int rows, const float *x, const float *dy, bool backward)
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
		double f, fb;

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
			f = time_calls(s, micro, x, dy, false);
			fb = time_calls(s, micro, x, dy, true);
			if (f < 0 || fb < 0) {
				rc = nsl_error_prefix(-EIO, "profiling layer %d", i);
			} else {
				nsl_stage_memory(s, micro, &mem);
				c->layer[i] = (struct nsl_cost_layer){
					.fwd_s = f / micro,
					.bwd_s = (fb > f ? fb - f : 0) / micro,
					.fixed_bytes = (double)(mem.params + mem.grads + mem.optim_state),
					.act_bytes = (double)out * sizeof(float),
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

