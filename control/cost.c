/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nsplit/error.h"
#include "cost.h"
#include "json.h"

#define FORMAT "nsplit-cost 1"

static void write_array(FILE *f, const char *key, const double *v, int n)
{
	fprintf(f, ",\n      \"%s\": [", key);
	for (int k = 0; k < n; k++)
		fprintf(f, "%s%.6e", k ? ", " : "", v[k]);
	fprintf(f, "]");
}

int nsl_cost_write(const char *path, const struct nsl_cost *c, const struct nsl_model *m, const struct nsl_cost_meta *meta)
{
	FILE *f = fopen(path, "w");

	if (f == NULL)
		return nsl_error_set(errno, "%s: %s", path, strerror(errno));
	fprintf(f, "{\n  \"format\": \"%s\",\n  \"model\": \"%s\",\n  \"input\": \"%dx%dx%d\",\n", FORMAT, m->text,
		m->input.c, m->input.h, m->input.w);
	fprintf(f, "  \"batch\": %d,\n  \"micro_batch\": %d,\n  \"threads\": %d,\n  \"machine\": \"%s\",\n",
		meta->batch, meta->micro, meta->threads, meta->machine ? meta->machine : "");
	if (c->nrows > 0) {
		fprintf(f, "  \"wgrad_rows\": %d,\n  \"rows\": [", c->wgrad_rows);
		for (int k = 0; k < c->nrows; k++)
			fprintf(f, "%s%d", k ? ", " : "", c->rows[k]);
		fprintf(f, "],\n");
	}
	fprintf(f, "  \"layers\": [\n");
	for (int i = 0; i < c->nlayers; i++) {
		const struct nsl_cost_layer *l = &c->layer[i];

		fprintf(f, "    { \"layer\": %d, \"kind\": \"%s\", \"fwd_s\": %.6e, \"bwd_s\": %.6e, \"fixed_bytes\": %.0f, "
			   "\"act_bytes\": %.0f, \"move_s\": %.6e, \"step_s\": %.6e, \"make_s\": %.6e",
			i, nsl_layer_kind_name(m->layers[i].kind), l->fwd_s, l->bwd_s, l->fixed_bytes, l->act_bytes,
			meta->move_s ? meta->move_s[i] : 0.0, l->step_s, l->make_s);
		if (c->nrows > 0) {
			fprintf(f, ",\n      \"wgrad_s\": %.6e, \"stash_step_s\": %.6e", l->wgrad_s, l->stash_step_s);
			write_array(f, "fwd_call_s", l->fwd_at, c->nrows);
			write_array(f, "bwd_call_s", l->bwd_at, c->nrows);
		}
		fprintf(f, " }%s\n", i + 1 < c->nlayers ? "," : "");
	}
	fprintf(f, "  ],\n  \"busy_factor\": %.4f,\n  \"link\": { \"transport\": \"%s\", \"bandwidth_Bps\": %.6e, "
		   "\"latency_s\": %.6e, \"shared_latency_s\": %.6e, \"wake_latency_s\": %.6e, "
		   "\"copy_Bps\": %.6e, \"copy_large_Bps\": %.6e,\n    \"send_Bps\": %.6e, \"recv_Bps\": %.6e, "
		   "\"send_large_Bps\": %.6e, \"recv_large_Bps\": %.6e }\n}\n",
		c->busy_factor, meta->transport ? meta->transport : "", c->link_bw, c->link_lat, c->shared_lat, c->wake_lat,
		c->copy_bw, c->copy_large_bw, c->send_bw, c->recv_bw, c->send_large_bw, c->recv_large_bw);
	if (fclose(f) != 0)
		return nsl_error_set(EIO, "%s: write failed (disk full?)", path);
	return 0;
}

static int number(const char *path, const struct nsl_json *obj, const char *key, const char *where, double *out)
{
	const struct nsl_json *v = nsl_json_get(obj, key);

	if (v == NULL || v->type != NSL_JSON_NUMBER || v->number < 0)
		return nsl_error_set(EINVAL, "%s: %s: \"%s\" is %s; a number of 0 or more is due", path, where, key,
				     v == NULL ? "missing" : "not a number of 0 or more");
	*out = v->number;
	return 0;
}

/* Array `key` of exactly n numbers of 0 or more. */
static int numbers(const char *path, const struct nsl_json *obj, const char *key, const char *where, int n, double *out)
{
	const struct nsl_json *v = nsl_json_get(obj, key);

	if (v == NULL || v->type != NSL_JSON_ARRAY || v->n != n)
		return nsl_error_set(EINVAL, "%s: %s: \"%s\" is %s; an array of %d numbers (one per \"rows\" entry) is due",
				     path, where, key, v == NULL ? "missing" : v->type != NSL_JSON_ARRAY ? "not an array" : "of another length",
				     n);
	for (int k = 0; k < n; k++) {
		if (v->child[k].type != NSL_JSON_NUMBER || v->child[k].number < 0)
			return nsl_error_set(EINVAL, "%s: %s: \"%s\"[%d] is not a number of 0 or more", path, where, key, k);
		out[k] = v->child[k].number;
	}
	return 0;
}

/* "rows" (optional): the ascending row counts the per-call timings were measured at. */
static int read_rows(const char *path, const struct nsl_json *root, struct nsl_cost *c)
{
	const struct nsl_json *rows = nsl_json_get(root, "rows");
	double w = 0;
	int rc;

	if (rows == NULL)
		return 0;
	if (rows->type != NSL_JSON_ARRAY || rows->n < 1 || rows->n > NSL_COST_MAX_ROWS)
		return nsl_error_set(EINVAL, "%s: \"rows\" must be an array of 1 to %d row counts", path, NSL_COST_MAX_ROWS);
	for (int k = 0; k < rows->n; k++) {
		const struct nsl_json *v = &rows->child[k];

		if (v->type != NSL_JSON_NUMBER || v->number < 1 || v->number > 1 << 30 || v->number != (int)v->number ||
		    (k > 0 && v->number <= c->rows[k - 1]))
			return nsl_error_set(EINVAL, "%s: \"rows\"[%d] is not a row count above the one before it", path, k);
		c->rows[k] = (int)v->number;
	}
	if ((rc = number(path, root, "wgrad_rows", "the file", &w)) < 0)
		return rc;
	if (w < 1 || w > 1 << 30 || w != (int)w)
		return nsl_error_set(EINVAL, "%s: \"wgrad_rows\" is not a row count", path);
	c->nrows = rows->n;
	c->wgrad_rows = (int)w;
	return 0;
}

int nsl_cost_read(const char *path, const struct nsl_model *m, struct nsl_cost *c)
{
	struct nsl_json *root = nsl_json_load(path);
	const struct nsl_json *fmt, *model, *layers, *link;
	bool *seen = NULL;
	double micro = 1;
	int rc = 0;

	memset(c, 0, sizeof(*c));
	if (root == NULL)
		return -EINVAL;
	fmt = nsl_json_get(root, "format");
	model = nsl_json_get(root, "model");
	layers = nsl_json_get(root, "layers");
	link = nsl_json_get(root, "link");
	if (fmt == NULL || fmt->type != NSL_JSON_STRING || strcmp(fmt->string, FORMAT) != 0) {
		rc = nsl_error_set(EINVAL, "%s: not an nsplit cost file (no \"format\": \"%s\"; make one with nsplit profile)",
				   path, FORMAT);
		goto out;
	}
	if (model == NULL || model->type != NSL_JSON_STRING || strcmp(model->string, m->text) != 0) {
		rc = nsl_error_set(EINVAL, "%s was measured for model %s; this job's is %s (profile it: nsplit profile --model ...)",
				   path, model && model->type == NSL_JSON_STRING ? model->string : "(none)", m->text);
		goto out;
	}
	if (layers == NULL || layers->type != NSL_JSON_ARRAY || link == NULL || link->type != NSL_JSON_OBJECT) {
		rc = nsl_error_set(EINVAL, "%s: \"layers\" (an array) and \"link\" (an object) are due", path);
		goto out;
	}
	if ((rc = read_rows(path, root, c)) < 0)
		goto out;
	c->nlayers = m->nlayers;
	c->layer = calloc((size_t)m->nlayers, sizeof(*c->layer));
	seen = calloc((size_t)m->nlayers, sizeof(*seen));
	if (c->layer == NULL || seen == NULL) {
		rc = nsl_error_set(ENOMEM, "out of memory");
		goto out;
	}
	for (int k = 0; k < layers->n && rc == 0; k++) {
		const struct nsl_json *e = &layers->child[k], *kind = nsl_json_get(e, "kind");
		char where[32];
		double idx = -1;

		snprintf(where, sizeof(where), "layers[%d]", k);
		if ((rc = number(path, e, "layer", where, &idx)) < 0)
			break;
		if (idx != (int)idx || idx >= m->nlayers || seen[(int)idx]) {
			rc = nsl_error_set(EINVAL, "%s: %s names layer %g, which %s (the model has layers 0 to %d)", path, where, idx,
					   idx < m->nlayers && idx == (int)idx ? "comes twice" : "does not exist", m->nlayers - 1);
			break;
		}
		if (kind == NULL || kind->type != NSL_JSON_STRING ||
		    strcmp(kind->string, nsl_layer_kind_name(m->layers[(int)idx].kind)) != 0) {
			rc = nsl_error_set(EINVAL, "%s: layer %d is %s there, %s in the model", path, (int)idx,
					   kind && kind->type == NSL_JSON_STRING ? kind->string : "of no kind",
					   nsl_layer_kind_name(m->layers[(int)idx].kind));
			break;
		}
		seen[(int)idx] = true;
		struct nsl_cost_layer *l = &c->layer[(int)idx];

		if ((rc = number(path, e, "fwd_s", where, &l->fwd_s)) == 0 && (rc = number(path, e, "bwd_s", where, &l->bwd_s)) == 0 &&
		    (rc = number(path, e, "fixed_bytes", where, &l->fixed_bytes)) == 0)
			rc = number(path, e, "act_bytes", where, &l->act_bytes);
		/* measured since the second profile format; older files plan without them */
		if (rc == 0 && nsl_json_get(e, "step_s") != NULL)
			rc = number(path, e, "step_s", where, &l->step_s);
		if (rc == 0 && nsl_json_get(e, "make_s") != NULL)
			rc = number(path, e, "make_s", where, &l->make_s);
		if (rc == 0 && nsl_json_get(e, "stash_step_s") != NULL)
			rc = number(path, e, "stash_step_s", where, &l->stash_step_s);
		if (rc == 0 && c->nrows > 0 && (rc = number(path, e, "wgrad_s", where, &l->wgrad_s)) == 0 &&
		    (rc = numbers(path, e, "fwd_call_s", where, c->nrows, l->fwd_at)) == 0)
			rc = numbers(path, e, "bwd_call_s", where, c->nrows, l->bwd_at);
	}
	for (int i = 0; i < m->nlayers && rc == 0; i++)
		if (!seen[i])
			rc = nsl_error_set(EINVAL, "%s: no costs for layer %d", path, i);
	if (rc == 0 && (rc = number(path, link, "bandwidth_Bps", "link", &c->link_bw)) == 0)
		rc = number(path, link, "latency_s", "link", &c->link_lat);
	if (rc == 0 && nsl_json_get(root, "busy_factor") != NULL)
		rc = number(path, root, "busy_factor", "the file", &c->busy_factor);
	if (rc == 0 && nsl_json_get(link, "shared_latency_s") != NULL)
		rc = number(path, link, "shared_latency_s", "link", &c->shared_lat);
	if (rc == 0 && nsl_json_get(link, "wake_latency_s") != NULL)
		rc = number(path, link, "wake_latency_s", "link", &c->wake_lat);
	if (rc == 0 && nsl_json_get(link, "copy_Bps") != NULL)
		rc = number(path, link, "copy_Bps", "link", &c->copy_bw);
	{
		static const char *const keys[] = { "copy_large_Bps", "send_Bps", "recv_Bps", "send_large_Bps", "recv_large_Bps" };
		double *const to[] = { &c->copy_large_bw, &c->send_bw, &c->recv_bw, &c->send_large_bw, &c->recv_large_bw };

		for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]) && rc == 0; k++)
			if (nsl_json_get(link, keys[k]) != NULL)
				rc = number(path, link, keys[k], "link", to[k]);
	}
	if (rc == 0 && c->link_bw <= 0)
		rc = nsl_error_set(EINVAL, "%s: link: bandwidth_Bps must be above 0", path);
	if (rc == 0 && nsl_json_get(root, "micro_batch") != NULL)
		rc = number(path, root, "micro_batch", "the file", &micro);
	c->micro = micro >= 1 ? (int)micro : 1;
	c->slots = 1;
out:
	free(seen);
	nsl_json_free(root);
	if (rc < 0) {
		free(c->layer);
		c->layer = NULL;
	}
	return rc;
}

int nsl_cost_estimate(const struct nsl_model *m, int micro, int slots, struct nsl_cost *c)
{
	*c = (struct nsl_cost){ .nlayers = m->nlayers, .micro = micro, .link_bw = 1e10, .link_lat = 5e-6 };
	if ((c->layer = calloc((size_t)m->nlayers, sizeof(*c->layer))) == NULL)
		return nsl_error_set(ENOMEM, "out of memory");
	for (int i = 0; i < m->nlayers; i++) {
		const struct nsl_layer_spec *l = &m->layers[i];
		const double out = (double)nsl_shape_size(m->shapes[i + 1]);
		double macs = out;

		if (l->kind == NSL_LAYER_DENSE)
			macs = (double)nsl_shape_size(m->shapes[i]) * l->units;
		else if (l->kind == NSL_LAYER_CONV)
			macs = out * m->shapes[i].c * l->kh * l->kw;
		/* some 50 GFLOP/s: the scale does not matter to a split, only the proportions */
		c->layer[i] = (struct nsl_cost_layer){ .fwd_s = macs * 2e-11, .bwd_s = macs * 4e-11,
						       .fixed_bytes = (double)nsl_model_layer_params(m, i) * sizeof(float) *
								      (2.0 + slots),
						       .act_bytes = out * sizeof(float) };
	}
	return 0;
}
