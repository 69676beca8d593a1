/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A bump allocator over a few big blocks from another allocator, emptied between uses. A peer
 * makes a new stage each round from the same kinds of buffers; from DPDK's --no-huge heap every
 * rte_free'd page is mapped again on the next allocation and the kernel zeroes it, which cost a
 * round swap of the wide MLP some 40 ms. Reusing the memory costs one memset.
 */
#include <errno.h>
#include <stdint.h>

#include "nsplit/arena.h"
#include "nsplit/error.h"

/* Small requests share a chunk of at least this many bytes. */
#define MIN_CHUNK ((size_t)1 << 20)

static size_t align_up(size_t v, size_t a)
{
	return (v + a - 1) & ~(a - 1);
}

static void *arena_alloc(void *ctx, size_t size, size_t align)
{
	struct nsl_arena *ar = ctx;
	struct nsl_arena_chunk *c;
	size_t off;

	for (int i = 0; i < ar->nchunks; i++) {
		c = &ar->chunk[i];
		off = align_up((size_t)((uintptr_t)c->base + c->used), align) - (uintptr_t)c->base;
		if (off + size <= c->size) {
			ar->used += off + size - c->used;
			c->used = off + size;
			goto out;
		}
	}
	if (ar->nchunks == NSL_ARENA_MAX_CHUNKS)
		return NULL;
	c = &ar->chunk[ar->nchunks];
	c->size = align_up(size > MIN_CHUNK ? size : MIN_CHUNK, 64);
	if ((c->base = ar->parent->alloc(ar->parent->ctx, c->size, align > 64 ? align : 64)) == NULL)
		return NULL;
	ar->nchunks++;
	off = 0;
	c->used = size;
	ar->used += size;
out:
	ar->live++;
	if (ar->used > ar->high)
		ar->high = ar->used;
	return c->base + off;
}

static void arena_free(void *ctx, void *p)
{
	struct nsl_arena *ar = ctx;

	if (p != NULL && ar->live > 0)
		ar->live--;
}

void nsl_arena_init(struct nsl_arena *ar, const struct nsl_allocator *parent)
{
	*ar = (struct nsl_arena){ .parent = parent };
	ar->a = (struct nsl_allocator){ .name = parent->name, .alloc = arena_alloc, .free = arena_free, .ctx = ar };
}

static void free_chunks(struct nsl_arena *ar)
{
	for (int i = 0; i < ar->nchunks; i++)
		ar->parent->free(ar->parent->ctx, ar->chunk[i].base);
	ar->nchunks = 0;
}

int nsl_arena_reset(struct nsl_arena *ar)
{
	struct nsl_arena_chunk one;

	if (ar->live)
		return nsl_error_set(EBUSY, "memory arena: %zu blocks still in use at a reset", ar->live);
	for (int i = 0; i < ar->nchunks; i++)
		ar->chunk[i].used = 0;
	ar->used = 0;
	/* Spread over several chunks: one of the most ever used fits every use seen so far whole.
	 * When the heap has no such block, the chunks stay as they are. */
	if (ar->nchunks > 1) {
		one.size = align_up(ar->high, 64);
		if ((one.base = ar->parent->alloc(ar->parent->ctx, one.size, 64)) == NULL) {
			nsl_error_clear();
			return 0;
		}
		free_chunks(ar);
		one.used = 0;
		ar->chunk[0] = one;
		ar->nchunks = 1;
	}
	return 0;
}

int nsl_arena_reserve(struct nsl_arena *ar, size_t bytes)
{
	struct nsl_arena_chunk one = { .size = align_up(bytes, 64) };

	if (ar->live)
		return nsl_error_set(EBUSY, "memory arena: %zu blocks still in use when reserving", ar->live);
	if (bytes == 0 || (nsl_arena_bytes(ar) >= bytes && ar->nchunks == 1))
		return 0;
	if ((one.base = ar->parent->alloc(ar->parent->ctx, one.size, 64)) == NULL)
		return -ENOMEM;
	free_chunks(ar);
	ar->chunk[0] = one;
	ar->nchunks = 1;
	ar->used = 0;
	return 0;
}

size_t nsl_arena_bytes(const struct nsl_arena *ar)
{
	size_t n = 0;

	for (int i = 0; i < ar->nchunks; i++)
		n += ar->chunk[i].size;
	return n;
}

void nsl_arena_fini(struct nsl_arena *ar)
{
	free_chunks(ar);
	*ar = (struct nsl_arena){ 0 };
}
