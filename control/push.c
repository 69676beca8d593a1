/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "nsplit/error.h"
#include "push.h"

#define MAGIC 0x31687375706c736eULL       /* "nslpush1" */
#define HEAD_WORDS 3

static uint64_t pad64(uint64_t bytes)
{
	return (bytes + 63) & ~(uint64_t)63;
}

/* Blocked layouts pad dimensions to their block, 64 at most for f32. */
static uint64_t padded(int64_t n)
{
	return (uint64_t)((n + 63) / 64 * 64);
}

uint64_t nsl_push_cap(const struct nsl_model *m, int first, int last)
{
	uint64_t bytes = 0, n = 0;

	for (int i = first; i < last; i++) {
		const struct nsl_layer_spec *l = &m->layers[i];
		const struct nsl_shape in = m->shapes[i];
		uint64_t w;

		if (nsl_model_layer_params(m, i) == 0)
			continue;
		w = l->kind == NSL_LAYER_CONV ? padded(l->units) * padded(in.c) * (uint64_t)l->kh * (uint64_t)l->kw
					      : padded(l->units) * padded(nsl_shape_size(in));
		bytes += pad64(w * sizeof(float)) + pad64(padded(l->units) * sizeof(float));
		n += 2;
	}
	return pad64((HEAD_WORDS + 2 * n) * sizeof(uint64_t)) + bytes;
}

int nsl_push_pack(const struct nsl_stage *s, int first, int last, void *buf, uint64_t cap, uint64_t *len)
{
	uint64_t *w = buf, off;
	int k0, k1;

	nsl_stage_param_range(s, first, last, &k0, &k1);
	off = pad64((HEAD_WORDS + 2 * (uint64_t)(k1 - k0)) * sizeof(uint64_t));
	if (off > cap)
		return nsl_error_set(ENOBUFS, "parameter push of layers %d-%d: %" PRIu64 " bytes of header, room for %" PRIu64,
				     first, last - 1, off, cap);
	memset(buf, 0, off);
	w[0] = MAGIC;
	w[1] = (uint64_t)(uint32_t)first | (uint64_t)(uint32_t)last << 32;
	w[2] = (uint64_t)(k1 - k0);
	for (int k = k0; k < k1; k++) {
		struct nsl_param_info pi;
		size_t count;
		const float *src = nsl_stage_param_data(s, k, &count);

		nsl_stage_param_info(s, k, &pi);
		w[HEAD_WORDS + 2 * (k - k0)] = pi.layout;
		w[HEAD_WORDS + 2 * (k - k0) + 1] = count;
		if (off + pad64(count * sizeof(float)) > cap)
			return nsl_error_set(ENOBUFS, "parameter push of layers %d-%d does not fit its %" PRIu64 " bytes", first,
					     last - 1, cap);
		memcpy((uint8_t *)buf + off, src, count * sizeof(float));
		off += pad64(count * sizeof(float));
	}
	*len = off;
	return 0;
}

int nsl_push_load(struct nsl_stage *s, int first, int last, const void *buf, uint64_t len, const char *what)
{
	const uint64_t *w = buf;
	uint64_t off, n;
	int k0, k1;

	nsl_stage_param_range(s, first, last, &k0, &k1);
	if (len < HEAD_WORDS * sizeof(uint64_t) || w[0] != MAGIC)
		return nsl_error_set(EPROTO, "%s: not a parameter push (%" PRIu64 " bytes)", what, len);
	if (w[1] != ((uint64_t)(uint32_t)first | (uint64_t)(uint32_t)last << 32) || w[2] != (uint64_t)(k1 - k0))
		return nsl_error_set(EPROTO, "%s: %" PRIu64 " parameters of layers %u-%u where layers %d-%d (%d parameters) "
				     "were due", what, w[2], (unsigned)(uint32_t)w[1], (unsigned)(w[1] >> 32) - 1, first,
				     last - 1, k1 - k0);
	n = w[2];
	off = pad64((HEAD_WORDS + 2 * n) * sizeof(uint64_t));
	if (off > len)
		return nsl_error_set(EPROTO, "%s: %" PRIu64 " bytes, shorter than its header", what, len);
	for (int k = k0; k < k1; k++) {
		struct nsl_param_info pi;
		size_t count;
		float *dst = nsl_stage_param_data(s, k, &count);

		nsl_stage_param_info(s, k, &pi);
		if (w[HEAD_WORDS + 2 * (k - k0)] != pi.layout || w[HEAD_WORDS + 2 * (k - k0) + 1] != count)
			return nsl_error_set(EPROTO, "%s: %s is laid out differently there (%" PRIu64 " floats) than here (%zu): "
					     "oneDNN chose other layouts on the two hosts", what, pi.name,
					     w[HEAD_WORDS + 2 * (k - k0) + 1], count);
		if (off + pad64(count * sizeof(float)) > len)
			return nsl_error_set(EPROTO, "%s: %" PRIu64 " bytes, too short for %s", what, len, pi.name);
		memcpy(dst, (const uint8_t *)buf + off, count * sizeof(float));
		off += pad64(count * sizeof(float));
	}
	if (off != len)
		return nsl_error_set(EPROTO, "%s: %" PRIu64 " bytes where %" PRIu64 " were due", what, len, off);
	return 0;
}
