/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>

#include "nsplit/alloc.h"
#include "nsplit/error.h"
#include "compute_pvt.h"

static const char *status_name(dnnl_status_t st)
{
	switch (st) {
	case dnnl_success: return "success";
	case dnnl_out_of_memory: return "out of memory";
	case dnnl_invalid_arguments: return "invalid arguments";
	case dnnl_unimplemented: return "unimplemented (no kernel for these shapes or layouts)";
	case dnnl_iterator_ends: return "iterator ends";
	case dnnl_runtime_error: return "runtime error";
	case dnnl_not_required: return "not required";
	default: return "unknown status";
	}
}

int nsl_dnnl_check(dnnl_status_t st, const char *what)
{
	if (st == dnnl_success)
		return 0;
	return nsl_error_set(st == dnnl_out_of_memory ? ENOMEM : st == dnnl_unimplemented ? ENOTSUP : EINVAL,
			     "%s: oneDNN %s", what, status_name(st));
}

#define EXEC_ARGS_MAX 16

int nsl_dnnl_exec(const struct nsl_compute *cc, dnnl_primitive_t p, int nargs,
		  const dnnl_exec_arg_t *args, const char *what)
{
	dnnl_exec_arg_t all[EXEC_ARGS_MAX];
	int rc;

	if (nargs < 0 || nargs >= EXEC_ARGS_MAX)
		return nsl_error_set(EINVAL, "%s: %d arguments, at most %d", what, nargs, EXEC_ARGS_MAX - 1);
	memcpy(all, args, sizeof(*args) * (size_t)nargs);
	/* A primitive without a scratchpad ignores it. */
	if (cc->scratch->mem != NULL)
		all[nargs++] = (dnnl_exec_arg_t){ DNNL_ARG_SCRATCHPAD, cc->scratch->mem };
	rc = nsl_dnnl_check(dnnl_primitive_execute(p, cc->stream, nargs, all), what);

	if (rc == 0)
		rc = nsl_dnnl_check(dnnl_stream_wait(cc->stream), what);
	return rc;
}

size_t nsl_dnnl_scratch_bytes(const_dnnl_primitive_desc_t pd)
{
	const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);

	return md != NULL ? dnnl_memory_desc_get_size(md) : 0;
}

/* The context's scratchpad grown to what pd's primitive takes (at making, never while training). */
static int fit_scratch(const struct nsl_compute *cc, const_dnnl_primitive_desc_t pd, const char *what)
{
	struct nsl_scratch *sc = cc->scratch;
	const size_t bytes = nsl_dnnl_scratch_bytes(pd);
	const dnnl_dims_t dims = { (dnnl_dim_t)bytes };
	dnnl_memory_desc_t md;
	void *buf;
	int rc;

	if (bytes <= sc->bytes)
		return 0;
	/* zeroed: its pages are in before the first training call touches them */
	if ((buf = nsl_alloc_zeroed(&nsl_allocator_libc, bytes, "a oneDNN scratchpad")) == NULL)
		return nsl_error_prefix(-ENOMEM, "%s", what);
	rc = nsl_dnnl_check(dnnl_memory_desc_init_by_tag(&md, 1, dims, dnnl_u8, dnnl_a), what);
	if (rc == 0) {
		dnnl_memory_t mem;

		rc = nsl_dnnl_check(dnnl_memory_create(&mem, &md, cc->engine, buf), what);
		if (rc == 0) {
			dnnl_memory_destroy(sc->mem);
			nsl_alloc_free(&nsl_allocator_libc, sc->buf);
			sc->mem = mem;
			sc->buf = buf;
			sc->bytes = bytes;
			return 0;
		}
	}
	nsl_alloc_free(&nsl_allocator_libc, buf);
	return rc;
}

int nsl_dnnl_reorder(const struct nsl_compute *cc, const dnnl_memory_desc_t *src, const dnnl_memory_desc_t *dst,
		     dnnl_primitive_t *prim, const char *what)
{
	dnnl_primitive_desc_t pd = NULL;
	int rc = nsl_dnnl_check(dnnl_reorder_primitive_desc_create(&pd, src, cc->engine, dst, cc->engine,
								   cc->scratch->attr), what);

	*prim = NULL;
	if (rc == 0 && (rc = fit_scratch(cc, pd, what)) == 0)
		rc = nsl_dnnl_check(dnnl_primitive_create(prim, pd), what);
	dnnl_primitive_desc_destroy(pd);
	return rc;
}

int nsl_dnnl_make(const struct nsl_compute *cc, const void *op_desc, const_dnnl_primitive_attr_t attr,
		  const_dnnl_primitive_desc_t hint, dnnl_primitive_desc_t *pd, dnnl_primitive_t *prim,
		  const char *what)
{
	dnnl_primitive_attr_t own = NULL;
	int rc = 0;

	*pd = NULL;
	*prim = NULL;
	/* the caller's attributes, with the scratchpad taken from the context */
	if (attr != NULL && (rc = nsl_dnnl_check(dnnl_primitive_attr_clone(&own, attr), what)) == 0)
		rc = nsl_dnnl_check(dnnl_primitive_attr_set_scratchpad_mode(own, dnnl_scratchpad_mode_user), what);
	if (rc == 0)
		rc = nsl_dnnl_check(dnnl_primitive_desc_create(pd, op_desc, own ? own : cc->scratch->attr, cc->engine, hint),
				    what);
	dnnl_primitive_attr_destroy(own);
	if (rc < 0)
		return rc;
	if ((rc = fit_scratch(cc, *pd, what)) == 0)
		rc = nsl_dnnl_check(dnnl_primitive_create(prim, *pd), what);
	if (rc < 0) {
		dnnl_primitive_desc_destroy(*pd);
		*pd = NULL;
	}
	return rc;
}

struct nsl_compute *nsl_compute_create(int threads)
{
	struct nsl_compute *cc = calloc(1, sizeof(*cc));

	if (cc == NULL) {
		nsl_error_set(ENOMEM, "compute context: out of memory");
		return NULL;
	}
	cc->threads = threads > 0 ? threads : omp_get_num_procs();
	nsl_compute_bind_thread(cc);
	if ((cc->scratch = calloc(1, sizeof(*cc->scratch))) == NULL) {
		free(cc);
		nsl_error_set(ENOMEM, "compute context: out of memory");
		return NULL;
	}
	if (nsl_dnnl_check(dnnl_primitive_attr_create(&cc->scratch->attr), "oneDNN attributes") < 0 ||
	    nsl_dnnl_check(dnnl_primitive_attr_set_scratchpad_mode(cc->scratch->attr, dnnl_scratchpad_mode_user),
			   "oneDNN scratchpad mode") < 0 ||
	    nsl_dnnl_check(dnnl_engine_create(&cc->engine, dnnl_cpu, 0), "create oneDNN CPU engine") < 0 ||
	    nsl_dnnl_check(dnnl_stream_create(&cc->stream, cc->engine, dnnl_stream_default_flags),
			   "create oneDNN stream") < 0) {
		nsl_compute_free(cc);
		return NULL;
	}
	return cc;
}

void nsl_compute_free(struct nsl_compute *cc)
{
	if (cc == NULL)
		return;
	if (cc->stream)
		dnnl_stream_destroy(cc->stream);
	if (cc->scratch != NULL) {
		dnnl_memory_destroy(cc->scratch->mem);
		dnnl_primitive_attr_destroy(cc->scratch->attr);
		nsl_alloc_free(&nsl_allocator_libc, cc->scratch->buf);
		free(cc->scratch);
	}
	if (cc->engine)
		dnnl_engine_destroy(cc->engine);
	free(cc);
}

int nsl_compute_threads(const struct nsl_compute *cc)
{
	return cc->threads;
}

void nsl_compute_bind_thread(const struct nsl_compute *cc)
{
	omp_set_num_threads(cc->threads);
}
