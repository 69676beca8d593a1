/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef NSL_COMPUTE_PVT_H
#define NSL_COMPUTE_PVT_H

#include <oneapi/dnnl/dnnl.h>

#include "nsplit/compute.h"

/*
 * Every primitive of a context takes its scratchpad from the context's one buffer, grown to the
 * largest any of them asked for (oneDNN's user scratchpad mode). oneDNN's own (library mode)
 * keeps a scratchpad per thread, sized by the primitives made on that thread: a primitive run
 * on another thread, as peers sharing worker threads are (control/coop.h), wrote past the
 * smaller one there.
 */
struct nsl_scratch {
	dnnl_primitive_attr_t attr;   /* user scratchpad mode, for primitives made without one */
	void *buf;
	size_t bytes;
	dnnl_memory_t mem;            /* over buf; passed to every execution */
};

struct nsl_compute {
	dnnl_engine_t engine;
	dnnl_stream_t stream;
	int threads;
	struct nsl_scratch *scratch;
};

/*
 * The one place a dnnl_status_t is read: 0 on success, else a negative errno with a message
 * "<what>: oneDNN <status>". Callers return its value.
 */
int nsl_dnnl_check(dnnl_status_t st, const char *what);

/* Execute a primitive on the context's stream and wait; args as for dnnl_primitive_execute. */
int nsl_dnnl_exec(const struct nsl_compute *cc, dnnl_primitive_t p, int nargs,
		  const dnnl_exec_arg_t *args, const char *what);

/* A reorder primitive from src to dst (caller destroys it). */
int nsl_dnnl_reorder(const struct nsl_compute *cc, const dnnl_memory_desc_t *src, const dnnl_memory_desc_t *dst,
		     dnnl_primitive_t *prim, const char *what);

/* The bytes of scratchpad pd's primitive takes from its context. */
size_t nsl_dnnl_scratch_bytes(const_dnnl_primitive_desc_t pd);

/* Create a primitive from an op descriptor; *pd receives its descriptor (caller destroys both). */
int nsl_dnnl_make(const struct nsl_compute *cc, const void *op_desc, const_dnnl_primitive_attr_t attr,
		  const_dnnl_primitive_desc_t hint, dnnl_primitive_desc_t *pd, dnnl_primitive_t *prim,
		  const char *what);

#endif
