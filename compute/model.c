/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nsplit/error.h"
#include "nsplit/model.h"

static const char *const kind_names[NSL_LAYER_KIND_COUNT] = {
	[NSL_LAYER_DENSE] = "dense",     [NSL_LAYER_CONV] = "conv",
	[NSL_LAYER_MAXPOOL] = "maxpool", [NSL_LAYER_AVGPOOL] = "avgpool",
	[NSL_LAYER_RELU] = "relu",       [NSL_LAYER_TANH] = "tanh",
	[NSL_LAYER_SIGMOID] = "sigmoid", [NSL_LAYER_GELU] = "gelu",
	[NSL_LAYER_FLATTEN] = "flatten", [NSL_LAYER_DROPOUT] = "dropout",
};

const char *nsl_layer_kind_name(enum nsl_layer_kind k)
{
	return (unsigned)k < NSL_LAYER_KIND_COUNT ? kind_names[k] : "?";
}

/* Strict positive integer in [1, max]; *end is left after the digits. */
static bool parse_count(const char *s, const char **end, long max, int *out)
{
	char *e;
	long v;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtol(s, &e, 10);
	if (errno != 0 || v < 1 || v > max)
		return false;
	*out = (int)v;
	*end = e;
	return true;
}

/* One "kind[:args]" token of length n. */
static int parse_layer(const char *tok, size_t n, int index, struct nsl_layer_spec *spec)
{
	char buf[64];
	const char *colon, *args, *end;

	if (n == 0 || n >= sizeof(buf))
		return nsl_error_set(EINVAL, "layer %d: empty or overlong layer \"%.*s\"", index, (int)n, tok);
	memcpy(buf, tok, n);
	buf[n] = '\0';
	colon = strchr(buf, ':');
	args = colon ? colon + 1 : NULL;
	size_t klen = colon ? (size_t)(colon - buf) : n;

	memset(spec, 0, sizeof(*spec));
	for (int k = 0; k < NSL_LAYER_KIND_COUNT; k++) {
		if (strlen(kind_names[k]) == klen && strncmp(buf, kind_names[k], klen) == 0) {
			spec->kind = (enum nsl_layer_kind)k;
			goto found;
		}
	}
	return nsl_error_set(EINVAL,
			     "layer %d: unknown layer \"%s\" (known: dense:N, conv:CxKHxKW, maxpool:K, avgpool:K, relu, tanh, sigmoid, gelu, flatten, dropout:P)",
			     index, buf);
found:
	switch (spec->kind) {
	case NSL_LAYER_DENSE:
		if (!args || !parse_count(args, &end, 1 << 24, &spec->units) || *end)
			return nsl_error_set(EINVAL, "layer %d: \"%s\" wants dense:N with N outputs >= 1", index, buf);
		break;
	case NSL_LAYER_CONV:
		if (!args || !parse_count(args, &end, 1 << 16, &spec->units) || *end != 'x' ||
		    !parse_count(end + 1, &end, 64, &spec->kh) || *end != 'x' ||
		    !parse_count(end + 1, &end, 64, &spec->kw) || *end)
			return nsl_error_set(EINVAL, "layer %d: \"%s\" wants conv:CxKHxKW, e.g. conv:32x3x3", index, buf);
		break;
	case NSL_LAYER_MAXPOOL:
	case NSL_LAYER_AVGPOOL:
		if (!args || !parse_count(args, &end, 64, &spec->kh) || *end)
			return nsl_error_set(EINVAL, "layer %d: \"%s\" wants %s:K with a window K >= 1", index, buf,
					     kind_names[spec->kind]);
		spec->kw = spec->kh;
		break;
	case NSL_LAYER_DROPOUT: {
		char *e;

		if (!args || !*args)
			return nsl_error_set(EINVAL, "layer %d: \"%s\" wants dropout:P with 0 <= P < 1", index, buf);
		errno = 0;
		spec->p = strtof(args, &e);
		if (errno || *e || !(spec->p >= 0.0f && spec->p < 1.0f))
			return nsl_error_set(EINVAL, "layer %d: \"%s\" wants dropout:P with 0 <= P < 1", index, buf);
		break;
	}
	default:
		if (args)
			return nsl_error_set(EINVAL, "layer %d: \"%s\" takes no argument", index, buf);
	}
	return 0;
}

/* Expand "mlp:IN-H1-...-OUT" into dense/relu layers; checks IN against the data. */
static int expand_mlp(const char *args, struct nsl_shape input, struct nsl_layer_spec *out, int max, int *n)
{
	int sizes[NSL_MODEL_MAX_LAYERS / 2 + 1];
	int count = 0;
	const char *p = args, *end;

	for (;;) {
		if (count >= (int)(sizeof(sizes) / sizeof(sizes[0])) ||
		    !parse_count(p, &end, 1 << 24, &sizes[count]))
			return nsl_error_set(EINVAL, "model \"mlp:%s\": expected sizes like mlp:784-512-256-10", args);
		count++;
		if (*end == '\0')
			break;
		if (*end != '-')
			return nsl_error_set(EINVAL, "model \"mlp:%s\": expected sizes like mlp:784-512-256-10", args);
		p = end + 1;
	}
	if (count < 2)
		return nsl_error_set(EINVAL, "model \"mlp:%s\": needs an input size and at least one layer size", args);
	if (sizes[0] != nsl_shape_size(input))
		return nsl_error_set(EINVAL, "model \"mlp:%s\": input size %d does not match the data's %lld (%dx%dx%d)",
				     args, sizes[0], (long long)nsl_shape_size(input), input.c, input.h, input.w);
	*n = 0;
	for (int i = 1; i < count; i++) {
		if (*n + 2 > max)
			return nsl_error_set(E2BIG, "model \"mlp:%s\": more than %d layers", args, max);
		out[(*n)++] = (struct nsl_layer_spec){ .kind = NSL_LAYER_DENSE, .units = sizes[i] };
		if (i + 1 < count)
			out[(*n)++] = (struct nsl_layer_spec){ .kind = NSL_LAYER_RELU };
	}
	return 0;
}

static int infer_shape(const struct nsl_layer_spec *s, int i, struct nsl_shape in, struct nsl_shape *out)
{
	*out = in;
	switch (s->kind) {
	case NSL_LAYER_DENSE:
		*out = (struct nsl_shape){ s->units, 1, 1 };
		break;
	case NSL_LAYER_CONV:
		if (in.h < s->kh || in.w < s->kw)
			return nsl_error_set(EINVAL, "layer %d (conv:%dx%dx%d): input %dx%dx%d is smaller than the kernel",
					     i, s->units, s->kh, s->kw, in.c, in.h, in.w);
		*out = (struct nsl_shape){ s->units, in.h - s->kh + 1, in.w - s->kw + 1 };
		break;
	case NSL_LAYER_MAXPOOL:
	case NSL_LAYER_AVGPOOL:
		if (in.h < s->kh || in.w < s->kw)
			return nsl_error_set(EINVAL, "layer %d (%s:%d): input %dx%dx%d is smaller than the window", i,
					     kind_names[s->kind], s->kh, in.c, in.h, in.w);
		*out = (struct nsl_shape){ in.c, in.h / s->kh, in.w / s->kw };
		break;
	case NSL_LAYER_FLATTEN:
		*out = (struct nsl_shape){ (int)nsl_shape_size(in), 1, 1 };
		break;
	default:
		break;
	}
	return 0;
}

static int append_text(char *buf, size_t cap, size_t *len, const struct nsl_layer_spec *s)
{
	int n;

	switch (s->kind) {
	case NSL_LAYER_DENSE:
		n = snprintf(buf + *len, cap - *len, "%sdense:%d", *len ? "," : "", s->units);
		break;
	case NSL_LAYER_CONV:
		n = snprintf(buf + *len, cap - *len, "%sconv:%dx%dx%d", *len ? "," : "", s->units, s->kh, s->kw);
		break;
	case NSL_LAYER_MAXPOOL:
	case NSL_LAYER_AVGPOOL:
		n = snprintf(buf + *len, cap - *len, "%s%s:%d", *len ? "," : "", kind_names[s->kind], s->kh);
		break;
	case NSL_LAYER_DROPOUT:
		n = snprintf(buf + *len, cap - *len, "%sdropout:%g", *len ? "," : "", (double)s->p);
		break;
	default:
		n = snprintf(buf + *len, cap - *len, "%s%s", *len ? "," : "", kind_names[s->kind]);
	}
	if (n < 0 || (size_t)n >= cap - *len)
		return nsl_error_set(E2BIG, "model text longer than %zu bytes", cap);
	*len += (size_t)n;
	return 0;
}

struct nsl_model *nsl_model_parse(const char *text, struct nsl_shape input)
{
	struct nsl_model *m = calloc(1, sizeof(*m));
	struct nsl_layer_spec *specs = calloc(NSL_MODEL_MAX_LAYERS, sizeof(*specs));
	size_t cap = 32 * NSL_MODEL_MAX_LAYERS, len = 0;
	int n = 0, rc = 0;

	if (m == NULL || specs == NULL || text == NULL) {
		nsl_error_set(text ? ENOMEM : EINVAL, text ? "model: out of memory" : "model: no model given");
		goto fail;
	}
	if (strncmp(text, "mlp:", 4) == 0) {
		rc = expand_mlp(text + 4, input, specs, NSL_MODEL_MAX_LAYERS, &n);
	} else {
		const char *p = text;

		while (rc == 0) {
			const char *comma = strchr(p, ',');
			size_t tl = comma ? (size_t)(comma - p) : strlen(p);

			if (n >= NSL_MODEL_MAX_LAYERS) {
				rc = nsl_error_set(E2BIG, "model: more than %d layers", NSL_MODEL_MAX_LAYERS);
				break;
			}
			rc = parse_layer(p, tl, n, &specs[n]);
			n++;
			if (!comma)
				break;
			p = comma + 1;
		}
	}
	if (rc < 0)
		goto fail;
	m->nlayers = n;
	m->layers = specs;
	m->input = input;
	m->shapes = calloc((size_t)n + 1, sizeof(*m->shapes));
	m->text = malloc(cap);
	if (m->shapes == NULL || m->text == NULL) {
		nsl_error_set(ENOMEM, "model: out of memory");
		goto fail_model;
	}
	m->shapes[0] = input;
	m->text[0] = '\0';
	for (int i = 0; i < n; i++) {
		if (infer_shape(&specs[i], i, m->shapes[i], &m->shapes[i + 1]) < 0 ||
		    append_text(m->text, cap, &len, &specs[i]) < 0)
			goto fail_model;
	}
	if (m->shapes[n].h != 1 || m->shapes[n].w != 1 || m->shapes[n].c < 2) {
		nsl_error_set(EINVAL, "model \"%s\": must end in a vector of at least 2 classes (add flatten,dense:K), ends in %dx%dx%d",
			      text, m->shapes[n].c, m->shapes[n].h, m->shapes[n].w);
		goto fail_model;
	}
	m->classes = m->shapes[n].c;
	return m;
fail:
	free(specs);
	free(m);
	return NULL;
fail_model:
	nsl_model_free(m);
	return NULL;
}

void nsl_model_free(struct nsl_model *m)
{
	if (m == NULL)
		return;
	free(m->layers);
	free(m->shapes);
	free(m->text);
	free(m);
}

int nsl_model_fuses(const struct nsl_model *m, int i, int last)
{
	enum nsl_layer_kind k = m->layers[i].kind, next;

	if ((k != NSL_LAYER_DENSE && k != NSL_LAYER_CONV) || i + 1 >= last)
		return 0;
	next = m->layers[i + 1].kind;
	return next == NSL_LAYER_RELU || next == NSL_LAYER_TANH || next == NSL_LAYER_SIGMOID;
}

int nsl_model_stage_tensors(const struct nsl_model *m, int first, int last, int *out)
{
	int n = 0;

	out[n++] = first;
	for (int i = first; i < last; i++) {
		if (nsl_model_fuses(m, i, last))
			i++;
		out[n++] = i + 1;
	}
	return n;
}

int64_t nsl_model_layer_params(const struct nsl_model *m, int i)
{
	const struct nsl_layer_spec *s = &m->layers[i];
	struct nsl_shape in = m->shapes[i];

	switch (s->kind) {
	case NSL_LAYER_DENSE:
		return nsl_shape_size(in) * s->units + s->units;
	case NSL_LAYER_CONV:
		return (int64_t)s->units * in.c * s->kh * s->kw + s->units;
	default:
		return 0;
	}
}

uint64_t nsl_model_hash(const struct nsl_model *m)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	char shape[48];

	snprintf(shape, sizeof(shape), "|%dx%dx%d", m->input.c, m->input.h, m->input.w);
	for (const char *p = m->text; *p; p++)
		h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
	for (const char *p = shape; *p; p++)
		h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
	return h;
}

int nsl_model_parse_split(const struct nsl_model *m, const char *text, int *starts, int max_stages)
{
	int n = 1;
	const char *p = text;

	starts[0] = 0;
	while (p && *p) {
		char *e;
		long v;

		if (n >= max_stages)
			return nsl_error_set(E2BIG, "split \"%s\": more than %d stages", text, max_stages);
		errno = 0;
		v = strtol(p, &e, 10);
		if (errno || e == p || (*e && *e != ','))
			return nsl_error_set(EINVAL, "split \"%s\": expected layer numbers like 3,6", text);
		if (v <= starts[n - 1] || v >= m->nlayers)
			return nsl_error_set(EINVAL,
					     "split \"%s\": stage %d would start at layer %ld; starts must rise strictly between 1 and %d (the model has %d layers)",
					     text, n + 1, v, m->nlayers - 1, m->nlayers);
		starts[n++] = (int)v;
		p = *e ? e + 1 : e;
	}
	starts[n] = m->nlayers;
	return n;
}

/* A partial split's worth: its largest stage, then how many stages start at a layer without weights. */
struct split_cost {
	int64_t max;
	int penalty;
	int from;                 /* where the last stage starts */
};

static bool better(struct split_cost a, struct split_cost b)
{
	return a.max < b.max || (a.max == b.max && a.penalty < b.penalty);
}

int nsl_model_even_split(const struct nsl_model *m, int nstages, int *starts)
{
	const int n = m->nlayers;
	int64_t *prefix;
	struct split_cost *best;

	if (nstages < 1 || nstages > n)
		return nsl_error_set(EINVAL, "cannot cut a %d-layer model into %d stages", n, nstages);
	prefix = calloc((size_t)n + 1, sizeof(*prefix));
	best = calloc((size_t)(nstages + 1) * (size_t)(n + 1), sizeof(*best));
	if (prefix == NULL || best == NULL) {
		free(prefix);
		free(best);
		return nsl_error_set(ENOMEM, "out of memory splitting the model");
	}
	for (int i = 0; i < n; i++)
		prefix[i + 1] = prefix[i] + nsl_model_layer_params(m, i);
	/*
	 * The stages with the smallest largest parameter count (a pipeline runs at its slowest
	 * stage's pace, and a stage's work grows with its weights); among those, activations stay
	 * with the layer before them, where they fuse, rather than start a stage.
	 * best[k * (n + 1) + i]: layers [0, i) in k stages.
	 */
	for (int k = 0; k <= nstages; k++)
		for (int i = 0; i <= n; i++)
			best[k * (n + 1) + i] = (struct split_cost){ INT64_MAX, 0, -1 };
	best[0] = (struct split_cost){ 0, 0, 0 };
	for (int k = 1; k <= nstages; k++)
		for (int i = k; i <= n - (nstages - k); i++)
			for (int j = k - 1; j < i; j++) {
				struct split_cost prev = best[(k - 1) * (n + 1) + j], c;

				if (prev.from < 0)
					continue;
				c.max = prefix[i] - prefix[j] > prev.max ? prefix[i] - prefix[j] : prev.max;
				c.penalty = prev.penalty + (j > 0 && nsl_model_layer_params(m, j) == 0);
				c.from = j;
				if (better(c, best[k * (n + 1) + i]))
					best[k * (n + 1) + i] = c;
			}
	starts[nstages] = n;
	for (int k = nstages, i = n; k > 0; k--) {
		i = best[k * (n + 1) + i].from;
		starts[k - 1] = i;
	}
	free(prefix);
	free(best);
	return nstages;
}
