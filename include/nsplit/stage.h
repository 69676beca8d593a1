/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A stage: a run of consecutive layers [first, last) of a model, with its parameters, their
 * gradients, its optimizer state and the activations it keeps for backward. Every nsplit mode is
 * built from stages: the single-peer reference is one stage holding the whole model (or several
 * run one after another), and each peer of a split job holds one.
 *
 * A short tour:
 *
 *     struct nsl_compute *cc = nsl_compute_create(threads);
 *     struct nsl_stage_config cfg = { .model = m, .first = 0, .last = m->nlayers,
 *                                     .max_batch = 64, .seed = 1, .alloc = &nsl_allocator_libc };
 *     nsl_optim_config_init(&cfg.optim, "sgd");
 *     struct nsl_stage *s = nsl_stage_create(cc, &cfg);     // parameters initialised from seed
 *     nsl_stage_prepare(s, 64);                             // build primitives per batch size
 *     for each batch:
 *         nsl_stage_forward(s, n, x, &y, true, step);       // y: stage-owned, n x out floats
 *         nsl_softmax_xent(y, labels, n, classes, 1.0f / n, dy, NULL, &loss);   // loss.h
 *         nsl_stage_backward(s, n, dy, &dx);                // dx NULL for the model's first stage
 *         nsl_stage_step(s, lr);                            // update, then gradients count as zero
 *     nsl_stage_free(s);
 *
 * Activations are plain row-major f32 (N x C x H x W). The caller's input x must stay valid
 * and unchanged from forward until the matching backward. A pipeline keeps several micro-batches
 * in flight: a stage made with `contexts` = K holds the outputs and saved state of K training
 * forwards at once, each in its own slot (nsl_stage_forward_in / nsl_stage_backward_in), and
 * their backwards may come in any order. Gradients accumulate over any number
 * of forward/backward pairs (micro-batches) until step; scale the loss gradient by
 * 1/batch to get the batch mean. Initialisation depends only on (seed, global layer number), so a
 * model cut into any stages starts from the same weights as the uncut model.
 *
 * Threading: a stage is used by one thread at a time, the one that owns its nsl_compute.
 */
#ifndef NSPLIT_STAGE_H
#define NSPLIT_STAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nsplit/alloc.h"
#include "nsplit/compute.h"
#include "nsplit/model.h"
#include "nsplit/optim.h"

#define NSL_STAGE_MAX_CONTEXTS 256

struct nsl_stage;

struct nsl_stage_config {
	const struct nsl_model *model;     /* borrowed; must outlive the stage */
	int first, last;                   /* layers [first, last), 0 <= first < last <= nlayers */
	int max_batch;                     /* largest batch (micro-batch) forward will see */
	int contexts;                      /* micro-batches in flight at once (0 = 1) */
	/*
	 * > 0: defer weight gradients. Each backward computes input gradients only and keeps its
	 * rows; nsl_stage_step first computes the weight gradients of all rows kept (up to this
	 * many: the batch) as one batch-sized op per layer, off the pipeline's critical path.
	 */
	int defer_rows;
	uint64_t seed;                     /* initialisation and dropout */
	struct nsl_optim_config optim;
	/* Parameters, gradients, optimizer state, outputs and input gradients: the memory that may
	 * travel. NULL means nsl_allocator_libc. Borrowed. */
	const struct nsl_allocator *alloc;
	bool no_fuse;                      /* keep activations as separate primitives (for tests) */
	bool no_init;                      /* parameters left zero: the caller loads them next */
};

/* Bytes a stage holds, by kind (nsl_stage_memory). */
struct nsl_stage_memory {
	size_t params;        /* parameters in their internal layout */
	size_t grads;
	size_t optim_state;
	size_t activations;   /* outputs and saved state kept for backward, at the given batch, for
				 every micro-batch slot */
	size_t scratch;       /* input-gradient buffers, layer workspaces, oneDNN scratchpads */
	size_t total;
};

/* A parameter as saved: name "layer<i>.weight" or "layer<i>.bias", PyTorch shape. */
struct nsl_param_info {
	char name[32];
	int layer;
	int ndim;
	int64_t dims[4];
	int64_t numel;
	size_t count;         /* floats in the internal layout (nsl_stage_param_data) */
};

/*
 * Create the stage's layers, allocate every buffer for max_batch and initialise the parameters
 * (He-uniform for layers followed by relu or gelu, Glorot-uniform otherwise, biases zero).
 * Returns NULL with a message (bad range, out of memory, oneDNN failure). Free with
 * nsl_stage_free; the stage frees everything it allocated, through cfg->alloc.
 */
struct nsl_stage *nsl_stage_create(struct nsl_compute *cc, const struct nsl_stage_config *cfg);

void nsl_stage_free(struct nsl_stage *s);

/* Build primitives for `batch` rows ahead of the loop (1 <= batch <= max_batch). */
int nsl_stage_prepare(struct nsl_stage *s, int batch);

/*
 * Run the layers on `batch` rows of x (batch x input size floats). *y receives the stage's
 * output buffer (batch x output size), valid until the next forward. `train` keeps what backward
 * needs and enables dropout; `key` distinguishes micro-batches for dropout masks.
 * Returns 0, -EINVAL (batch out of range or not prepared and not preparable), or a oneDNN error.
 */
int nsl_stage_forward(struct nsl_stage *s, int batch, const float *x, const float **y, bool train,
		      uint64_t key);

/*
 * Backward of the last training forward: dy is dL/dy (batch x output size). Adds the parameter
 * gradients and sets *dx to dL/dx (batch x input size, stage-owned, valid until the next
 * backward), or NULL when the stage starts at layer 0 (no one needs that gradient).
 */
int nsl_stage_backward(struct nsl_stage *s, int batch, const float *dy, const float **dx);

/*
 * The same in micro-batch slot k (0 <= k < contexts): the forward's outputs and saved state stay
 * in slot k until its backward, whatever runs in the other slots meanwhile. *y stays valid until
 * the next forward in slot k; *dx (stage-owned, NULL when the stage starts at layer 0) until the
 * next backward in slot k. nsl_stage_forward and nsl_stage_backward use slot 0.
 */
int nsl_stage_forward_in(struct nsl_stage *s, int k, int batch, const float *x, const float **y, bool train,
			 uint64_t key);
int nsl_stage_backward_in(struct nsl_stage *s, int k, int batch, const float *dy, const float **dx);

/*
 * With defer_rows: the same, keeping this micro-batch's rows as rows [row0, row0 + batch) of
 * the batch, so the weight gradients do not depend on the order backwards run in
 * (nsl_stage_backward_in appends them in arrival order).
 */
int nsl_stage_backward_rows(struct nsl_stage *s, int k, int row0, int batch, const float *dy, const float **dx);

/* With defer_rows: the weight gradients of every row kept since the last step, now. 0 or an errno. */
int nsl_stage_weight_grads(struct nsl_stage *s);

/* Apply the optimizer with learning rate lr to every parameter (after the deferred weight
 * gradients, if any are left), then zero the gradients. */
int nsl_stage_step(struct nsl_stage *s, float lr);

/* The same, writing parameter k's new values into dst[k] (the size of nsl_stage_param_data's
 * buffer, 64-byte aligned), which becomes its buffer: the old values stay where they were, for
 * a weight stash. dst NULL: in place. */
int nsl_stage_step_into(struct nsl_stage *s, float lr, float *const *dst);

/* Memory held for micro-batch `batch` (activations scale with it; the rest is fixed). */
int nsl_stage_memory(const struct nsl_stage *s, int batch, struct nsl_stage_memory *out);

/*
 * The same from cfg alone, before the stage exists (nothing allocated): upper bounds (weights
 * padded as blocked layouts pad them), except oneDNN's scratchpads, which only oneDNN knows.
 * For checking a budget before a stage is made. 0 or -EINVAL.
 */
int nsl_stage_memory_plan(const struct nsl_stage_config *cfg, int batch, struct nsl_stage_memory *out);

/*
 * Activations by model layer: tensor L is the input of model layer L (the output of L - 1; the
 * stage's input for L = first, its output for L = last). nsl_stage_tensor gives tensor L of the
 * training forward in slot k (first <= L <= last), or NULL when the stage does not keep it (an
 * activation fused into the layer before it: see nsl_model_fuses; a stage made with no_fuse keeps
 * every one). The pointer is valid until the next forward in slot k.
 */
const float *nsl_stage_tensor(const struct nsl_stage *s, int k, int layer);

/*
 * Put slot k in the state a training forward of `batch` rows would leave, without running it:
 * t[i] is tensor nsl_model_stage_tensors()[i] of this stage's range (t[0] the input, which must
 * stay valid until the backward). Layers with saved state (pooling, dropout) run again on their
 * input; nothing that has weights runs. *y: the stage output, as forward gives it.
 */
int nsl_stage_restore_in(struct nsl_stage *s, int k, int batch, const float *const *t, const float **y, uint64_t key);

/*
 * Parameter k's buffer in its internal layout (*count floats; count may be NULL), and swapping
 * in another of the same size and alignment (64 bytes): primitives read parameters through the
 * pointer each call, so a weight version (stash.h) goes in and out without a copy. The stage frees whatever buffer
 * is in at nsl_stage_free, through its allocator: a buffer swapped in must come from the same.
 */
float *nsl_stage_param_data(const struct nsl_stage *s, int k, size_t *count);
void nsl_stage_param_set_data(struct nsl_stage *s, int k, float *data);

/* Number of parameter tensors, in layer order (weight before bias). */
int nsl_stage_param_count(const struct nsl_stage *s);

int nsl_stage_param_info(const struct nsl_stage *s, int k, struct nsl_param_info *out);

/* Its parameters k0 <= k < k1 are those of layers [first, last). */
void nsl_stage_param_range(const struct nsl_stage *s, int first, int last, int *k0, int *k1);

/* NSL_STAGE_LAYOUT_MAX or fewer bytes that describe parameter k's internal layout to another
 * peer (written to out; 0 when cap is too small), and loading values laid out as such bytes
 * describe: a copy when the layout is this stage's, a reorder when another host's oneDNN chose
 * another (another instruction set). -EPROTO with a message for what is no layout of it.
 * With `adopt`, values in this stage's layout at a 64-byte aligned src are not copied: the
 * parameter's buffer becomes src (returns 1), which must then outlive its use, and be moved
 * back (nsl_stage_param_set_data) before the stage is freed. */
#define NSL_STAGE_LAYOUT_MAX 1024
size_t nsl_stage_param_layout(const struct nsl_stage *s, int k, void *out, size_t cap);
int nsl_stage_param_load_layout(struct nsl_stage *s, int k, const void *layout, size_t layout_len, const void *src,
				size_t src_len, bool adopt);

/* Copy parameter k out to / in from the plain PyTorch layout (info.numel floats). */
int nsl_stage_param_export(const struct nsl_stage *s, int k, float *plain);
int nsl_stage_param_import(struct nsl_stage *s, int k, const float *plain);

/*
 * Optimizer state: nsl_stage_state_slots buffers per parameter (0 for plain sgd, 1 with momentum,
 * 2 for adam), each the parameter's shape; moved in the plain layout, as parameters are. With the
 * step count (nsl_stage_steps, nsl_stage_set_steps) they are all a swap or a checkpoint needs.
 */
int nsl_stage_state_slots(const struct nsl_stage *s);
int nsl_stage_state_export(const struct nsl_stage *s, int k, int slot, float *plain);
int nsl_stage_state_import(struct nsl_stage *s, int k, int slot, const float *plain);
void nsl_stage_set_steps(struct nsl_stage *s, uint64_t steps);

/* Per-sample sizes of the stage's input and output, in floats. */
int64_t nsl_stage_in_size(const struct nsl_stage *s);
int64_t nsl_stage_out_size(const struct nsl_stage *s);

/* Optimizer steps taken so far. */
uint64_t nsl_stage_steps(const struct nsl_stage *s);

/* The optimizer's name ("sgd", "adam", "adamw"): whose state nsl_stage_state_export gives. */
const char *nsl_stage_optim_name(const struct nsl_stage *s);

#endif
