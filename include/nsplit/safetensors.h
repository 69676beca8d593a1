/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Reading and writing weights in the safetensors format (the format PyTorch and Hugging Face
 * use): an 8-byte little-endian header length, a JSON header mapping each tensor name to
 * {"dtype", "shape", "data_offsets"} plus an optional "__metadata__" object of strings, then the
 * raw little-endian tensor bytes. nsplit writes F32 tensors named "layer<i>.weight" and
 * "layer<i>.bias" in PyTorch layouts, and the model text as metadata "model", so a file loads
 * as it is into the matching torch.nn.Sequential whose modules are named layer<i>.
 */
#ifndef NSPLIT_SAFETENSORS_H
#define NSPLIT_SAFETENSORS_H

#include <stdint.h>

#define NSL_ST_MAX_DIMS 4

struct nsl_st_tensor {
	const char *name;
	int ndim;
	int64_t dims[NSL_ST_MAX_DIMS];
	const float *data;     /* numel little-endian floats */
};

/*
 * Write tensors t[0..n) and the metadata pairs meta[0..2*nmeta) (key, value, key, value...)
 * to `path` atomically: a temporary file beside it, fsync, rename. Returns 0 or a negative errno
 * with a message naming the path.
 */
int nsl_st_write(const char *path, const struct nsl_st_tensor *t, int n, const char *const *meta, int nmeta);

struct nsl_st_file;

/*
 * Read and validate a whole file: header length within the file, well-formed JSON, dtype F32
 * only, offsets inside the data and equal to shape x 4 bytes, no overlap. NULL with a message
 * naming the file and the problem otherwise. Close with nsl_st_close.
 */
struct nsl_st_file *nsl_st_open(const char *path);

void nsl_st_close(struct nsl_st_file *f);

/* Find tensor `name`; 0 and *out filled (data points into f), or -ENOENT with a message. */
int nsl_st_find(const struct nsl_st_file *f, const char *name, struct nsl_st_tensor *out);

/* The metadata value of `key`, or NULL. */
const char *nsl_st_meta(const struct nsl_st_file *f, const char *key);

/* Number of tensors in the file. */
int nsl_st_count(const struct nsl_st_file *f);

#endif
