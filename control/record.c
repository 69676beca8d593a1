/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nsplit/error.h"
#include "record.h"

#define MAX_TENSORS 512
/* Header room: the metadata, and a name, shape and offsets per tensor. */
#define HEADER_BASE 4096
#define HEADER_PER_TENSOR 160

uint64_t nsl_record_cap(const struct nsl_model *m, int first, int last, int slots)
{
	uint64_t floats = 0, tensors = 0;

	for (int i = first; i < last; i++) {
		int64_t n = nsl_model_layer_params(m, i);

		floats += (uint64_t)n;
		tensors += n ? 2 : 0;
	}
	return floats * (1 + (uint64_t)slots) * sizeof(float) + HEADER_BASE +
	       tensors * (1 + (uint64_t)slots) * HEADER_PER_TENSOR;
}

int nsl_record_pack(const struct nsl_stage *s, const struct nsl_record_info *info, void *buf, uint64_t cap,
		    uint64_t *len)
{
	const int slots = nsl_stage_state_slots(s);
	int k0, k1;
	struct nsl_st_tensor *t;
	char (*names)[48];
	char m[9][32], layers[32];
	struct nsl_param_info first, last;
	uint64_t data_off, off;
	int rc = 0, n;

	nsl_stage_param_range(s, 0, NSL_MODEL_MAX_LAYERS, &k0, &k1);
	n = (k1 - k0) * (1 + slots);
	t = calloc((size_t)(n ? n : 1), sizeof(*t));
	names = calloc((size_t)(n ? n : 1), sizeof(*names));
	if (t == NULL || names == NULL || n > MAX_TENSORS) {
		rc = nsl_error_set(ENOMEM, "stage record: %d tensors", n);
		goto out;
	}
	for (int k = k0, i = 0; k < k1; k++) {
		struct nsl_param_info pi;

		nsl_stage_param_info(s, k, &pi);
		for (int q = -1; q < slots; q++, i++) {
			if (q < 0)
				snprintf(names[i], sizeof(names[i]), "%s", pi.name);
			else
				snprintf(names[i], sizeof(names[i]), "%s.state%d", pi.name, q);
			t[i] = (struct nsl_st_tensor){ .name = names[i], .ndim = pi.ndim };
			memcpy(t[i].dims, pi.dims, sizeof(t[i].dims));
		}
	}
	layers[0] = 0;
	if (k1 > k0 && nsl_stage_param_info(s, k0, &first) == 0 && nsl_stage_param_info(s, k1 - 1, &last) == 0)
		snprintf(layers, sizeof(layers), "%d-%d", first.layer, last.layer);
	snprintf(m[0], 32, "%dx%dx%d", info->model->input.c, info->model->input.h, info->model->input.w);
	snprintf(m[1], 32, "%d", info->peers);
	snprintf(m[2], 32, "%d", info->stage);
	snprintf(m[3], 32, "%" PRId64, info->round);
	snprintf(m[4], 32, "%" PRIu64, nsl_stage_steps(s));
	snprintf(m[5], 32, "%" PRIu64, info->seed);
	snprintf(m[6], 32, "%016" PRIx64, info->config_hash);
	snprintf(m[7], 32, "%d", info->records > 0 ? info->records : info->peers);
	{
		const char *meta[] = {
			"format", "nsplit-stage 1", "model", info->model->text, "input", m[0], "split",
			info->split ? info->split : "", "peers", m[1], "stage", m[2], "layers", layers, "round", m[3],
			"steps", m[4], "optimizer", nsl_stage_optim_name(s), "seed", m[5], "config", m[6], "records", m[7],
		};

		rc = nsl_st_layout(t, n, meta, (int)(sizeof(meta) / sizeof(meta[0])) / 2, buf, cap, &data_off, len);
	}
	off = data_off;
	for (int k = k0, i = 0; rc == 0 && k < k1; k++)
		for (int q = -1; rc == 0 && q < slots; q++, i++) {
			float *dst = (float *)(void *)((uint8_t *)buf + off);
			int64_t numel = 1;

			for (int d = 0; d < t[i].ndim; d++)
				numel *= t[i].dims[d];
			rc = q < 0 ? nsl_stage_param_export(s, k, dst) : nsl_stage_state_export(s, k, q, dst);
			off += (uint64_t)numel * sizeof(float);
		}
out:
	free(t);
	free(names);
	return rc;
}

static int find(struct nsl_st_file *const *f, int n, const char *name, const struct nsl_param_info *pi,
		struct nsl_st_tensor *out)
{
	for (int i = 0; i < n; i++)
		if (nsl_st_find(f[i], name, out) == 0) {
			int64_t numel = 1;

			for (int d = 0; d < out->ndim; d++)
				numel *= out->dims[d];
			if (numel != pi->numel || out->ndim != pi->ndim)
				return nsl_error_set(EINVAL, "%s has %" PRId64 " values in %d dimensions where this model's has %"
						     PRId64 " in %d", name, numel, out->ndim, pi->numel, pi->ndim);
			return 0;
		}
	return nsl_error_set(ENOENT, "no record holds %s", name);
}

int nsl_record_load_params(struct nsl_stage *s, struct nsl_st_file *const *f, int n)
{
	int rc = 0;

	for (int k = 0; rc == 0 && k < nsl_stage_param_count(s); k++) {
		struct nsl_param_info pi;
		struct nsl_st_tensor t;

		nsl_stage_param_info(s, k, &pi);
		if ((rc = find(f, n, pi.name, &pi, &t)) == 0)
			rc = nsl_stage_param_import(s, k, t.data);
	}
	return rc;
}

int nsl_record_load(struct nsl_stage *s, struct nsl_st_file *const *f, int n)
{
	const int slots = nsl_stage_state_slots(s);
	const char *steps = NULL, *optim = NULL;
	int rc = 0;

	for (int k = 0; rc == 0 && k < nsl_stage_param_count(s); k++) {
		struct nsl_param_info pi;
		struct nsl_st_tensor t;
		char name[48];

		nsl_stage_param_info(s, k, &pi);
		if ((rc = find(f, n, pi.name, &pi, &t)) == 0)
			rc = nsl_stage_param_import(s, k, t.data);
		for (int q = 0; rc == 0 && q < slots; q++) {
			snprintf(name, sizeof(name), "%s.state%d", pi.name, q);
			if ((rc = find(f, n, name, &pi, &t)) == 0)
				rc = nsl_stage_state_import(s, k, q, t.data);
		}
	}
	for (int i = 0; i < n && steps == NULL; i++) {
		steps = nsl_st_meta(f[i], "steps");
		optim = nsl_st_meta(f[i], "optimizer");
	}
	if (rc == 0 && optim != NULL && strcmp(optim, nsl_stage_optim_name(s)) != 0)
		rc = nsl_error_set(EINVAL, "the record's optimizer state is %s's, this stage's optimizer is %s", optim,
				   nsl_stage_optim_name(s));
	if (rc == 0 && steps != NULL)
		nsl_stage_set_steps(s, strtoull(steps, NULL, 10));
	return rc;
}

int nsl_record_check(const struct nsl_st_file *f, const struct nsl_model *m, const char *what)
{
	const char *format = nsl_st_meta(f, "format"), *model = nsl_st_meta(f, "model"), *input = nsl_st_meta(f, "input");
	char shape[32];

	snprintf(shape, sizeof(shape), "%dx%dx%d", m->input.c, m->input.h, m->input.w);
	if (format == NULL || strcmp(format, "nsplit-stage 1") != 0)
		return nsl_error_set(EINVAL, "%s is not an nsplit stage record (format %s)", what, format ? format : "missing");
	if (model == NULL || strcmp(model, m->text) != 0)
		return nsl_error_set(EINVAL, "%s holds model %s; this job trains %s", what, model ? model : "(none)", m->text);
	if (input == NULL || strcmp(input, shape) != 0)
		return nsl_error_set(EINVAL, "%s was trained on %s inputs; this data is %s", what, input ? input : "(unknown)",
				     shape);
	return 0;
}
