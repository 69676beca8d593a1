/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef NSL_COMPUTE_PVT_H
#define NSL_COMPUTE_PVT_H

#include <oneapi/dnnl/dnnl.h>

#include "nsplit/compute.h"

struct nsl_compute {
	dnnl_engine_t engine;
	dnnl_stream_t stream;
	int threads;
};

/*
 * The one place a dnnl_status_t is read: 0 on success, else a negative errno with a message
 * "<what>: oneDNN <status>". Callers return its value.
 */
int nsl_dnnl_check(dnnl_status_t st, const char *what);

/* Execute a primitive on the context's stream and wait; args as for dnnl_primitive_execute. */
int nsl_dnnl_exec(const struct nsl_compute *cc, dnnl_primitive_t p, int nargs,
		  const dnnl_exec_arg_t *args, const char *what);

/* Create a primitive from an op descriptor; *pd receives its descriptor (caller destroys both). */
int nsl_dnnl_make(const struct nsl_compute *cc, const void *op_desc, const_dnnl_primitive_attr_t attr,
		  const_dnnl_primitive_desc_t hint, dnnl_primitive_desc_t *pd, dnnl_primitive_t *prim,
		  const char *what);

#endif
