/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Finding a run's shard files: ready shards in a folder, or shards made once from IDX files into
 * a cache folder keyed by the IDX files' identity (path, size, modification time).
 */
#ifndef NSL_DATASET_H
#define NSL_DATASET_H

#include <limits.h>

#define NSL_DATASET_MAX_PARTS 64

struct nsl_dataset_files {
	int parts;
	char train[NSL_DATASET_MAX_PARTS][PATH_MAX];   /* train-<i>-of-<parts>.nsl */
	char test[PATH_MAX];                           /* test.nsl */
};

/*
 * If data_dir holds test.nsl and train-<i>-of-<parts>.nsl for every i (or train.nsl when parts is 1),
 * use them. Otherwise data_dir must hold the four IDX files (train-images-idx3-ubyte,
 * train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each raw or .gz); shards
 * are made from them into cache_dir/<key>/ on first use (a note goes to stderr) and reused after.
 * Returns 0 or a negative errno with a message naming the folder or file and what to do.
 */
int nsl_dataset_prepare(const char *data_dir, const char *cache_dir, int parts, struct nsl_dataset_files *out);

/* Find "<dir>/<stem>" or "<dir>/<stem>.gz"; 0 and the path in out, or -ENOENT (no message). */
int nsl_dataset_find_idx(const char *dir, const char *stem, char *out, size_t size);

#endif
