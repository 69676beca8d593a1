/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <omp.h>
#include <stdlib.h>

#include <oneapi/dnnl/dnnl.h>

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

int nsl_dnnl_exec(const struct nsl_compute *cc, dnnl_primitive_t p, int nargs,
		  const dnnl_exec_arg_t *args, const char *what)
{
	int rc = nsl_dnnl_check(dnnl_primitive_execute(p, cc->stream, nargs, args), what);

	if (rc == 0)
		rc = nsl_dnnl_check(dnnl_stream_wait(cc->stream), what);
	return rc;
}

int nsl_dnnl_make(const struct nsl_compute *cc, const void *op_desc, const_dnnl_primitive_attr_t attr,
		  const_dnnl_primitive_desc_t hint, dnnl_primitive_desc_t *pd, dnnl_primitive_t *prim,
		  const char *what)
{
	int rc;

	*pd = NULL;
	*prim = NULL;
	rc = nsl_dnnl_check(dnnl_primitive_desc_create(pd, op_desc, attr, cc->engine, hint), what);
	if (rc < 0)
		return rc;
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
	if (nsl_dnnl_check(dnnl_engine_create(&cc->engine, dnnl_cpu, 0), "create oneDNN CPU engine") < 0 ||
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
