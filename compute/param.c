/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Parameters between the layout oneDNN chose and PyTorch's plain layout. Slow path (saving,
 * loading, swapping a stage): the reorder is built on every call and thrown away.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>

#include "nsplit/error.h"
#include "layer_pvt.h"

static int reorder(const struct nsl_compute *cc, const dnnl_memory_desc_t *src_md, const void *src,
		   const dnnl_memory_desc_t *dst_md, void *dst, const char *what)
{
	dnnl_primitive_desc_t pd = NULL;
	dnnl_primitive_t prim = NULL;
	dnnl_memory_t sm = NULL, dm = NULL;
	int rc;

	rc = nsl_dnnl_check(dnnl_reorder_primitive_desc_create(&pd, src_md, cc->engine, dst_md, cc->engine, NULL),
			    what);
	if (rc == 0)
		rc = nsl_dnnl_check(dnnl_primitive_create(&prim, pd), what);
	if (rc == 0)
		rc = nsl_dnnl_check(dnnl_memory_create(&sm, src_md, cc->engine, (void *)(uintptr_t)src), what);
	if (rc == 0)
		rc = nsl_dnnl_check(dnnl_memory_create(&dm, dst_md, cc->engine, dst), what);
	if (rc == 0) {
		dnnl_exec_arg_t args[] = { { DNNL_ARG_FROM, sm }, { DNNL_ARG_TO, dm } };

		rc = nsl_dnnl_exec(cc, prim, 2, args, what);
	}
	dnnl_memory_destroy(dm);
	dnnl_memory_destroy(sm);
	dnnl_primitive_destroy(prim);
	dnnl_primitive_desc_destroy(pd);
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
	return reorder(cc, &p->md, internal, &p->plain_md, plain, what);
}

int nsl_param_from_plain(const struct nsl_compute *cc, const struct nsl_param *p, const float *plain, float *internal)
{
	char what[96];

	if (dnnl_memory_desc_equal(&p->md, &p->plain_md)) {
		memcpy(internal, plain, (size_t)p->numel * sizeof(float));
		return 0;
	}
	snprintf(what, sizeof(what), "%s: reorder from the plain layout", p->name);
	return reorder(cc, &p->plain_md, plain, &p->md, internal, what);
}

int nsl_param_export(const struct nsl_compute *cc, const struct nsl_param *p, float *plain)
{
	return nsl_param_to_plain(cc, p, p->data, plain);
}

int nsl_param_import(const struct nsl_compute *cc, struct nsl_param *p, const float *plain)
{
	return nsl_param_from_plain(cc, p, plain, p->data);
}
