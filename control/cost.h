/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Cost files: what `nsplit profile` measured, as JSON, for `nsplit plan`:
 *   { "format": "nsplit-cost 1", "model": "dense:512,relu,...", "input": "1x28x28",
 *     "batch": 64, "micro_batch": 8, "threads": 1, "machine": "...",
 *     "wgrad_rows": 64, "rows": [1, 2, 4, 8, 16, 32, 64],
 *     "layers": [ { "layer": 0, "kind": "dense", "fwd_s": ..., "bwd_s": ...,    (per sample)
 *                   "fixed_bytes": ..., "act_bytes": ..., "move_s": ..., "step_s": ..., "make_s": ...,
 *                   "wgrad_s": ..., "stash_step_s": ..., "fwd_call_s": [...], "bwd_call_s": [...] }, ... ],
 *     "busy_factor": ...,
 *     "link": { "transport": "net_ring", "bandwidth_Bps": ..., "latency_s": ..., "shared_latency_s": ...,
 *               "wake_latency_s": ..., "copy_Bps": ..., "copy_large_Bps": ...,
 *               "send_Bps": ..., "recv_Bps": ..., "send_large_Bps": ..., "recv_large_Bps": ... } }
 * fixed_bytes: parameters, gradients and optimizer state; act_bytes: the layer's output per
 * sample; move_s: the time to move the layer's parameters and optimizer state to another peer.
 * fwd_call_s and bwd_call_s: seconds per call at each "rows" count (backward without weight
 * gradients); wgrad_s: the weight gradients of a batch of wgrad_rows rows; stash_step_s: a step
 * written into a weight stash's oldest version. copy_Bps: a core's CRC and copy of a message that
 * fits its cache (256 KiB); copy_large_Bps: of one that does not (32 MiB). send_Bps, recv_Bps
 * (and _large_): bytes per second of such messages each end's core pays for on the link
 * (frames, CRC, the receiver's copy out of them).
 * Layers may also give step_s and make_s. Keys after latency_s, step_s, make_s, "rows" and what
 * goes with it came with later profiles; files without them read, and plan and simulate without
 * what they measure (then a call on r rows takes r times the per-sample time).
 */
#ifndef NSL_COST_H
#define NSL_COST_H

#include "nsplit/model.h"
#include "plan.h"

struct nsl_cost_meta {
	int batch, micro, threads;
	const char *machine;
	const char *transport;
	const double *move_s;         /* per layer, may be NULL */
};

int nsl_cost_write(const char *path, const struct nsl_cost *c, const struct nsl_model *m, const struct nsl_cost_meta *meta);

/*
 * Read a cost file for model m into c (c->layer allocated: free it). 0, or -EINVAL naming the
 * file and what is wrong: not a cost file, another model, a layer that does not exist, missing
 * or negative numbers.
 */
int nsl_cost_read(const char *path, const struct nsl_model *m, struct nsl_cost *c);

/*
 * A cost model from the model alone, for planning without a profile: each layer's forward
 * takes time in proportion to its multiply-adds (pooling and activations to their outputs),
 * its backward twice that; bytes as a profile counts them (`slots` optimizer buffers per
 * parameter). Relative times only: good for choosing a split on one machine, not for
 * predicting seconds. c->layer is allocated: free it. 0 or -ENOMEM.
 */
int nsl_cost_estimate(const struct nsl_model *m, int micro, int slots, struct nsl_cost *c);

#endif
