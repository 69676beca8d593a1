/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Model description: a list of layers parsed from the model grammar.
 *
 *   model   := "mlp:" IN ("-" N)+  |  layer ("," layer)*
 *   layer   := "dense:" N | "conv:" C "x" KH "x" KW | "maxpool:" K | "avgpool:" K
 *            | "relu" | "tanh" | "sigmoid" | "gelu" | "flatten" | "dropout:" P
 *
 * `mlp:784-512-256-10` is exactly `dense:512,relu,dense:256,relu,dense:10`; its first number is
 * the input size and must match the data. Convolutions have stride 1 and no padding; `maxpool:K`
 * and `avgpool:K` are KxK windows with stride K (floor); `dense` flattens its input. Layers are
 * numbered from 0 in list order; the softmax cross-entropy loss after the last layer is implicit
 * and has no number. A split cuts the list at layer boundaries.
 */
#ifndef NSPLIT_MODEL_H
#define NSPLIT_MODEL_H

#include <stddef.h>
#include <stdint.h>

#define NSL_MODEL_MAX_LAYERS 1024

enum nsl_layer_kind {
	NSL_LAYER_DENSE,
	NSL_LAYER_CONV,
	NSL_LAYER_MAXPOOL,
	NSL_LAYER_AVGPOOL,
	NSL_LAYER_RELU,
	NSL_LAYER_TANH,
	NSL_LAYER_SIGMOID,
	NSL_LAYER_GELU,
	NSL_LAYER_FLATTEN,
	NSL_LAYER_DROPOUT,
	NSL_LAYER_KIND_COUNT,
};

/* Per-sample activation shape, channels x height x width (a vector is C x 1 x 1). */
struct nsl_shape {
	int c, h, w;
};

static inline int64_t nsl_shape_size(struct nsl_shape s)
{
	return (int64_t)s.c * s.h * s.w;
}

struct nsl_layer_spec {
	enum nsl_layer_kind kind;
	int units;     /* dense: outputs; conv: output channels */
	int kh, kw;    /* conv kernel; pooling window (stride = window) */
	float p;       /* dropout: probability of zeroing */
};

struct nsl_model {
	int nlayers;
	struct nsl_layer_spec *layers;     /* nlayers entries */
	struct nsl_shape input;            /* the sample shape the model expects */
	struct nsl_shape *shapes;          /* nlayers + 1 shapes: shapes[i] is layer i's input */
	int classes;                       /* outputs of the last layer */
	char *text;                        /* the canonical layer list, e.g. "dense:512,relu,..." */
};

/*
 * Parse `text` for samples of shape `input` (the shape an mlp's first number must match),
 * infer every layer's shape and check the model ends in a vector of at least 2 classes.
 * Returns NULL with a message naming the offending layer on error. Free with nsl_model_free.
 */
struct nsl_model *nsl_model_parse(const char *text, struct nsl_shape input);

void nsl_model_free(struct nsl_model *m);

/* The layer's name in the grammar ("dense", "conv", ...). */
const char *nsl_layer_kind_name(enum nsl_layer_kind k);

/* Number of parameters (weights and biases) of layer i. */
int64_t nsl_model_layer_params(const struct nsl_model *m, int i);

/* 64-bit FNV-1a of the canonical text and input shape: equal models hash equal. */
uint64_t nsl_model_hash(const struct nsl_model *m);

/*
 * Parse a split "I,J,..." (layer numbers where stages 2, 3, ... begin) into starts[0..nstages],
 * starts[0] = 0 and starts[nstages] = nlayers. Starts must rise strictly inside (0, nlayers).
 * Returns the number of stages or a negative errno.
 */
int nsl_model_parse_split(const struct nsl_model *m, const char *text, int *starts, int max_stages);

/* An even split by parameter count into nstages stages (each at least one layer). */
/* Whether a stage ending before layer `last` runs layer i (dense or conv) and the activation
 * i + 1 as one operation: then it keeps no tensor i + 1 (nsl_stage_tensor). */
int nsl_model_fuses(const struct nsl_model *m, int i, int last);

/*
 * The tensors (model layer numbers, nsl_stage_tensor) that a stage of layers [first, last) needs
 * to run its backward without its forward: its input, then each operation's output, the last of
 * them `last`. Writes them to out (room for last - first + 1) and returns how many.
 */
int nsl_model_stage_tensors(const struct nsl_model *m, int first, int last, int *out);

int nsl_model_even_split(const struct nsl_model *m, int nstages, int *starts);

#endif
