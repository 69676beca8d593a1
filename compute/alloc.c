/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "nsplit/alloc.h"
#include "nsplit/error.h"

static void *libc_alloc(void *ctx, size_t size, size_t align)
{
	(void)ctx;
	/* aligned_alloc wants a size that is a multiple of the alignment. */
	size = (size + align - 1) & ~(align - 1);
	return aligned_alloc(align, size ? size : align);
}

static void libc_free(void *ctx, void *p)
{
	(void)ctx;
	free(p);
}

const struct nsl_allocator nsl_allocator_libc = {
	.name = "libc",
	.alloc = libc_alloc,
	.free = libc_free,
	.ctx = NULL,
};

void *nsl_alloc_zeroed(const struct nsl_allocator *a, size_t size, const char *what)
{
	void *p = a->alloc(a->ctx, size, 64);

	if (p == NULL) {
		nsl_error_set(ENOMEM, "cannot allocate %zu bytes for %s from the %s allocator", size,
			      what, a->name);
		return NULL;
	}
	memset(p, 0, size);
	return p;
}

void nsl_alloc_free(const struct nsl_allocator *a, void *p)
{
	if (p != NULL)
		a->free(a->ctx, p);
}
