/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * IDX files (MNIST, Fashion-MNIST), raw or gzip-compressed: images (magic 0x00000803, u8,
 * N x H x W) and labels (0x00000801, u8, N).
 */
#ifndef NSPLIT_IDX_H
#define NSPLIT_IDX_H

#include "nsplit/shard.h"

/*
 * Load an image file and its label file into out (samples 1 x H x W). Returns 0, or a negative
 * errno with a message naming the file: missing, bad magic, truncated, counts that differ.
 * Free with nsl_dataset_free.
 */
int nsl_idx_load(const char *images, const char *labels, struct nsl_dataset *out);

/* NULL-safe; leaves d zeroed. */
void nsl_dataset_free(struct nsl_dataset *d);

#endif
