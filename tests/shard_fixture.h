/* SPDX-License-Identifier: BSD-3-Clause */
/* Shard files with known contents for the shard tests: record i's bytes are a function of i. */
#ifndef NSL_SHARD_FIXTURE_H
#define NSL_SHARD_FIXTURE_H

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "nsplit/error.h"
#include "nsplit/rng.h"
#include "nsplit/shard.h"

#define FIX_CLASSES 10

static inline uint8_t fix_byte(uint32_t rec, uint32_t j)
{
	return (uint8_t)nsl_hash2(rec, j);
}

static inline uint32_t fix_label(uint32_t rec)
{
	return (uint32_t)(nsl_hash64(rec) % FIX_CLASSES);
}

/* Write `count` records of shape into path; CUnit-fails on error. */
static inline void fix_write(const char *path, struct nsl_shape shape, uint32_t count)
{
	struct nsl_shard_info info = { .shape = shape, .dtype = NSL_SHARD_DTYPE_U8,
				       .label_type = NSL_SHARD_LABEL_U8, .classes = FIX_CLASSES };
	size_t n = (size_t)nsl_shape_size(shape);
	uint8_t *s = malloc(n);
	struct nsl_shard_writer *w = nsl_shard_writer_open(path, &info);

	CU_ASSERT_PTR_NOT_NULL_FATAL(w);
	for (uint32_t i = 0; i < count; i++) {
		for (size_t j = 0; j < n; j++)
			s[j] = fix_byte(i, (uint32_t)j);
		CU_ASSERT_EQUAL_FATAL(nsl_shard_writer_append(w, s, fix_label(i)), 0);
	}
	CU_ASSERT_EQUAL_FATAL(nsl_shard_writer_close(w), 0);
	free(s);
}

/* Whether a record holds what fix_write put there. */
static inline int fix_record_ok(const struct nsl_record *r, size_t sample_bytes)
{
	if (r->label != fix_label(r->index))
		return 0;
	for (size_t j = 0; j < sample_bytes; j++)
		if (r->sample[j] != fix_byte(r->index, (uint32_t)j))
			return 0;
	return 1;
}

/* A fresh folder under the current directory (the build tree: a disk that takes O_DIRECT). */
static inline int fix_tmpdir(char *dir, size_t size, const char *tag)
{
	snprintf(dir, size, "./%s-XXXXXX", tag);
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp in the current folder");
		return -1;
	}
	return 0;
}

static inline void fix_rmdir(const char *dir)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

#endif
