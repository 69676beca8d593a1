/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Parameters between the layout oneDNN chose and PyTorch's plain layout: saving, loading,
 * swapping a stage, and Fast N-split's parameter pushes every batch. Each parameter builds its
 * two reorders on first use and keeps them.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>

#include "nsplit/error.h"
#include "layer_pvt.h"

/* dir 0: internal -> plain, 1: plain -> internal. */
static int reorder(const struct nsl_compute *cc, const struct nsl_param *cp, int dir, const void *src, void *dst,
		   const char *what)
{
	struct nsl_param *p = (struct nsl_param *)(uintptr_t)cp;   /* the cache is not the parameter's value */
	const dnnl_memory_desc_t *src_md = dir ? &p->plain_md : &p->md, *dst_md = dir ? &p->md : &p->plain_md;
	int rc = 0;

	if (p->reorder[dir] == NULL) {
		rc = nsl_dnnl_reorder(cc, src_md, dst_md, &p->reorder[dir], what);
		if (rc == 0)
			rc = nsl_dnnl_check(dnnl_memory_create(&p->reorder_src[dir], src_md, cc->engine, DNNL_MEMORY_NONE),
					    what);
		if (rc == 0)
			rc = nsl_dnnl_check(dnnl_memory_create(&p->reorder_dst[dir], dst_md, cc->engine, DNNL_MEMORY_NONE),
					    what);
		if (rc < 0)
			return rc;
	}
	if ((rc = nsl_layer_bind(p->reorder_src[dir], src)) == 0 && (rc = nsl_layer_bind(p->reorder_dst[dir], dst)) == 0) {
		dnnl_exec_arg_t args[] = { { DNNL_ARG_FROM, p->reorder_src[dir] }, { DNNL_ARG_TO, p->reorder_dst[dir] } };

		rc = nsl_dnnl_exec(cc, p->reorder[dir], 2, args, what);
	}
	return rc;
}

int nsl_param_to_plain(const struct nsl_compute *cc, const struct nsl_param *p, const float *internal, float *plain)
{
	char what[96];

	if (dnnl_memory_desc_equal(&p->md, &p->plain_md)) {
		memcpy(plain, internal, (size_t)p->numel * sizeof(float));
		return 0;
	}
	snprintf(what, sizeof(what), "%s: reorder to the plain layout", p->name);
	return reorder(cc, p, 0, internal, plain, what);
}

int nsl_param_from_plain(const struct nsl_compute *cc, const struct nsl_param *p, const float *plain, float *internal)
{
	char what[96];

	if (dnnl_memory_desc_equal(&p->md, &p->plain_md)) {
		memcpy(internal, plain, (size_t)p->numel * sizeof(float));
		return 0;
	}
	snprintf(what, sizeof(what), "%s: reorder from the plain layout", p->name);
	return reorder(cc, p, 1, plain, internal, what);
}

int nsl_param_export(const struct nsl_compute *cc, const struct nsl_param *p, float *plain)
{
	return nsl_param_to_plain(cc, p, p->data, plain);
}

int nsl_param_import(const struct nsl_compute *cc, struct nsl_param *p, const float *plain)
{
	p->gen++;
	return nsl_param_from_plain(cc, p, plain, p->data);
}

size_t nsl_param_layout(const struct nsl_param *p, void *out, size_t cap)
{
	if (cap < sizeof(p->md))
		return 0;
	memcpy(out, &p->md, sizeof(p->md));
	return sizeof(p->md);
}

/* Whether md, from another peer, describes a dense f32 tensor of p's shape that this oneDNN can
 * reorder from: the checks oneDNN leaves to its callers. */
static bool sane(const dnnl_memory_desc_t *md, const struct nsl_param *p)
{
	const dnnl_blocking_desc_t *b = &md->format_desc.blocking;

	if (md->ndims != p->md.ndims || md->data_type != dnnl_f32 || md->format_kind != dnnl_blocked ||
	    md->offset0 != 0 || md->extra.flags != 0 || b->inner_nblks < 0 || b->inner_nblks > DNNL_MAX_NDIMS)
		return false;
	for (int d = 0; d < md->ndims; d++)
		if (md->dims[d] != p->md.dims[d] || md->padded_offsets[d] != 0 || md->padded_dims[d] < md->dims[d] ||
		    md->padded_dims[d] > md->dims[d] + 256 || b->strides[d] < 0)
			return false;
	for (int i = 0; i < b->inner_nblks; i++)
		if (b->inner_idxs[i] < 0 || b->inner_idxs[i] >= md->ndims || b->inner_blks[i] < 1 || b->inner_blks[i] > 256)
			return false;
	return true;
}

int nsl_param_load_layout(const struct nsl_compute *cc, struct nsl_param *p, const void *layout, size_t layout_len,
			  const void *src, size_t src_len, bool adopt)
{
	dnnl_memory_desc_t md;
	dnnl_primitive_t r = NULL;
	dnnl_memory_t from = NULL, to = NULL;
	int rc;

	if (layout_len != sizeof(md))
		return nsl_error_set(EPROTO, "%s: a layout of %zu bytes, where this oneDNN's take %zu (another oneDNN version?)",
				     p->name, layout_len, sizeof(md));
	memcpy(&md, layout, sizeof(md));
	p->gen++;
	if (dnnl_memory_desc_equal(&md, &p->md)) {
		if (src_len != p->count * sizeof(float))
			return nsl_error_set(EPROTO, "%s: %zu bytes in this layout, where it takes %zu", p->name, src_len,
					     p->count * sizeof(float));
		if (adopt && ((uintptr_t)src & 63) == 0) {
			p->data = (float *)(uintptr_t)src;
			return 1;
		}
		memcpy(p->data, src, src_len);
		return 0;
	}
	if (!sane(&md, p) || dnnl_memory_desc_get_size(&md) != src_len)
		return nsl_error_set(EPROTO, "%s: a layout this peer cannot read (%zu bytes)", p->name, src_len);
	/* Another host's oneDNN laid it out otherwise (another instruction set): reorder it here. */
	rc = nsl_dnnl_reorder(cc, &md, &p->md, &r, "reorder from another layout");
	if (rc == 0)
		rc = nsl_dnnl_check(dnnl_memory_create(&from, &md, cc->engine, (void *)(uintptr_t)src), "its source");
	if (rc == 0)
		rc = nsl_dnnl_check(dnnl_memory_create(&to, &p->md, cc->engine, p->data), "its destination");
	if (rc == 0) {
		dnnl_exec_arg_t args[] = { { DNNL_ARG_FROM, from }, { DNNL_ARG_TO, to } };

		rc = nsl_dnnl_exec(cc, r, 2, args, "reorder from another layout");
	}
	dnnl_memory_destroy(from);
	dnnl_memory_destroy(to);
	dnnl_primitive_destroy(r);
	return rc < 0 ? nsl_error_prefix(rc, "%s", p->name) : 0;
}
