/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "nsplit/error.h"
#include "push.h"

#define MAGIC 0x32687375706c736eULL       /* "nslpush2" */
#define HEAD_BYTES 64                      /* magic, layers, n, layout length: 4 words, padded */

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
	const uint64_t per_param = pad64(sizeof(uint64_t) + NSL_STAGE_LAYOUT_MAX);
	uint64_t bytes = HEAD_BYTES;

	for (int i = first; i < last; i++) {
		const struct nsl_layer_spec *l = &m->layers[i];
		const struct nsl_shape in = m->shapes[i];
		uint64_t w;

		if (nsl_model_layer_params(m, i) == 0)
			continue;
		w = l->kind == NSL_LAYER_CONV ? padded(l->units) * padded(in.c) * (uint64_t)l->kh * (uint64_t)l->kw
					      : padded(l->units) * padded(nsl_shape_size(in));
		bytes += 2 * per_param + pad64(w * sizeof(float)) + pad64(padded(l->units) * sizeof(float));
	}
	return bytes;
}

int nsl_push_pack(const struct nsl_stage *s, int first, int last, void *buf, uint64_t cap, uint64_t *len)
{
	uint8_t *b = buf;
	uint64_t *w = buf, off = HEAD_BYTES, layout_len = 0;
	int k0, k1;

	nsl_stage_param_range(s, first, last, &k0, &k1);
	if (cap < HEAD_BYTES)
		return nsl_error_set(ENOBUFS, "parameter push of layers %d-%d: room for %" PRIu64 " bytes", first, last - 1,
				     cap);
	memset(buf, 0, HEAD_BYTES);
	for (int k = k0; k < k1; k++) {
		size_t count;
		const float *src = nsl_stage_param_data(s, k, &count);
		const uint64_t bytes = count * sizeof(float);
		uint64_t head = 0;

		if (off + pad64(sizeof(uint64_t) + NSL_STAGE_LAYOUT_MAX) + pad64(bytes) > cap)
			return nsl_error_set(ENOBUFS, "parameter push of layers %d-%d does not fit its %" PRIu64 " bytes", first,
					     last - 1, cap);
		memcpy(b + off, &bytes, sizeof(bytes));
		layout_len = nsl_stage_param_layout(s, k, b + off + sizeof(uint64_t), NSL_STAGE_LAYOUT_MAX);
		head = pad64(sizeof(uint64_t) + layout_len);
		memset(b + off + sizeof(uint64_t) + layout_len, 0, head - sizeof(uint64_t) - layout_len);
		off += head;
		memcpy(b + off, src, bytes);
		off += pad64(bytes);
	}
	w[0] = MAGIC;
	w[1] = (uint64_t)(uint32_t)first | (uint64_t)(uint32_t)last << 32;
	w[2] = (uint64_t)(k1 - k0);
	w[3] = layout_len;
	*len = off;
	return 0;
}

int nsl_push_load(struct nsl_stage *s, int first, int last, const void *buf, uint64_t len, const char *what,
		  bool adopt)
{
	const uint8_t *b = buf;
	const uint64_t *w = buf;
	uint64_t off = HEAD_BYTES;
	int k0, k1, rc, adopted = 0;

	nsl_stage_param_range(s, first, last, &k0, &k1);
	if (len < HEAD_BYTES || w[0] != MAGIC)
		return nsl_error_set(EPROTO, "%s: not a parameter push (%" PRIu64 " bytes)", what, len);
	if (w[1] != ((uint64_t)(uint32_t)first | (uint64_t)(uint32_t)last << 32) || w[2] != (uint64_t)(k1 - k0))
		return nsl_error_set(EPROTO, "%s: %" PRIu64 " parameters of layers %u-%u where layers %d-%d (%d parameters) "
				     "were due", what, w[2], (unsigned)(uint32_t)w[1], (unsigned)(w[1] >> 32) - 1, first,
				     last - 1, k1 - k0);
	if (w[3] > NSL_STAGE_LAYOUT_MAX)
		return nsl_error_set(EPROTO, "%s: layouts of %" PRIu64 " bytes", what, w[3]);
	for (int k = k0; k < k1; k++) {
		uint64_t bytes;

		if (off + pad64(sizeof(uint64_t) + w[3]) > len)
			return nsl_error_set(EPROTO, "%s: %" PRIu64 " bytes, too short for its parameter %d", what, len, k - k0);
		memcpy(&bytes, b + off, sizeof(bytes));
		if (bytes > len || off + pad64(sizeof(uint64_t) + w[3]) + pad64(bytes) > len)
			return nsl_error_set(EPROTO, "%s: %" PRIu64 " bytes, too short for its parameter %d", what, len, k - k0);
		if ((rc = nsl_stage_param_load_layout(s, k, b + off + sizeof(uint64_t), w[3],
						      b + off + pad64(sizeof(uint64_t) + w[3]), bytes, adopt)) < 0)
			return nsl_error_prefix(rc, "%s", what);
		adopted += rc;
		off += pad64(sizeof(uint64_t) + w[3]) + pad64(bytes);
	}
	if (off != len)
		return nsl_error_set(EPROTO, "%s: %" PRIu64 " bytes where %" PRIu64 " were due", what, len, off);
	return adopted;
}
