/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Each layer of a model as a one-layer stage, run in sequence with the others as training runs
 * them: seconds per call of its forward and its backward (input gradients) on a ladder of row
 * counts up to the batch, of its weight gradients over the batch and of its optimizer step (the
 * medians of passes that take long enough to time); per sample at the micro-batch for the
 * planner; its parameters', gradients' and optimizer state's bytes and its output's bytes per
 * sample. What nsplit profile writes and nsplit train --split auto plans from.
 */
#ifndef NSL_PROFILE_H
#define NSL_PROFILE_H

#include "nsplit/model.h"
#include "nsplit/optim.h"
#include "plan.h"

/* Fill c->layer[0..m->nlayers) (allocated by the caller); fixed_state (may be NULL) gets each
 * layer's parameter and optimizer-state bytes, what a swap moves. 0 or a negative errno. */
int nsl_profile_layers(const struct nsl_model *m, int micro, int batch, int threads,
		       const struct nsl_optim_config *oc, struct nsl_cost *c, double *fixed_state);

/*
 * How much slower the whole model's forward and backward run on one thread while `cpus` - 1
 * more threads run the same on the other cores (shared caches, memory bandwidth, clocks): the
 * ratio, at least 1. *out 1 with one CPU. 0 or a negative errno.
 */
int nsl_profile_contention(const struct nsl_model *m, int micro, const struct nsl_optim_config *oc, int cpus,
			   double *out);

#endif
