/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Parameters between the layout oneDNN chose and PyTorch's plain layout: saving, loading,
 * swapping a stage, and Fast N-split's parameter pushes every batch. Each parameter builds its
 * two reorders on first use and keeps them.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>

#include "nsplit/error.h"
#include "nsplit/rng.h"
#include "layer_pvt.h"

/* dir 0: internal -> plain, 1: plain -> internal. */
static int reorder(const struct nsl_compute *cc, const struct nsl_param *cp, int dir, const void *src, void *dst,
		   const char *what)
{
	struct nsl_param *p = (struct nsl_param *)(uintptr_t)cp;   /* the cache is not the parameter's value */
	const dnnl_memory_desc_t *src_md = dir ? &p->plain_md : &p->md, *dst_md = dir ? &p->md : &p->plain_md;
	int rc = 0;

	if (p->reorder[dir] == NULL) {
		dnnl_primitive_desc_t pd = NULL;

		rc = nsl_dnnl_check(dnnl_reorder_primitive_desc_create(&pd, src_md, cc->engine, dst_md, cc->engine, NULL),
				    what);
		if (rc == 0)
			rc = nsl_dnnl_check(dnnl_primitive_create(&p->reorder[dir], pd), what);
		if (rc == 0)
			rc = nsl_dnnl_check(dnnl_memory_create(&p->reorder_src[dir], src_md, cc->engine, DNNL_MEMORY_NONE),
					    what);
		if (rc == 0)
			rc = nsl_dnnl_check(dnnl_memory_create(&p->reorder_dst[dir], dst_md, cc->engine, DNNL_MEMORY_NONE),
					    what);
		dnnl_primitive_desc_destroy(pd);
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
	return nsl_param_from_plain(cc, p, plain, p->data);
}

uint64_t nsl_param_layout(const struct nsl_param *p)
{
	const dnnl_memory_desc_t *md = &p->md;
	const dnnl_blocking_desc_t *b = &md->format_desc.blocking;
	uint64_t h = nsl_hash2((uint64_t)md->ndims, (uint64_t)md->format_kind);

	for (int d = 0; d < md->ndims; d++)
		h = nsl_hash2(nsl_hash2(h, (uint64_t)md->dims[d]), (uint64_t)md->padded_dims[d]);
	if (md->format_kind != dnnl_blocked)
		return nsl_hash2(h, (uint64_t)p->count);
	for (int d = 0; d < md->ndims; d++)
		h = nsl_hash2(h, (uint64_t)b->strides[d]);
	for (int i = 0; i < b->inner_nblks; i++)
		h = nsl_hash2(nsl_hash2(h, (uint64_t)b->inner_blks[i]), (uint64_t)b->inner_idxs[i]);
	return nsl_hash2(h, (uint64_t)p->count);
}
