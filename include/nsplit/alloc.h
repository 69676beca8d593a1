/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Pluggable allocator for big buffers. Memory that travels between peers (activations,
 * gradients, parameters in a swap) must come from DPDK's heap so a NIC or memif can read it;
 * compute code takes an allocator instead of calling malloc so that control can hand it
 * rte_malloc without compute including DPDK headers. Every block is 64-byte aligned.
 */
#ifndef NSPLIT_ALLOC_H
#define NSPLIT_ALLOC_H

#include <stddef.h>

struct nsl_allocator {
	const char *name;
	/* Return `size` bytes aligned to `align` (a power of two), or NULL. */
	void *(*alloc)(void *ctx, size_t size, size_t align);
	/* Release a block from alloc; NULL is a no-op. */
	void (*free)(void *ctx, void *p);
	void *ctx;
};

/* aligned_alloc/free from libc. */
extern const struct nsl_allocator nsl_allocator_libc;

/* 64-byte aligned, zero-filled block; NULL with a message naming `what` on failure. */
void *nsl_alloc_zeroed(const struct nsl_allocator *a, size_t size, const char *what);

/* NULL-safe release. */
void nsl_alloc_free(const struct nsl_allocator *a, void *p);

#endif
