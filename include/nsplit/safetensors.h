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

/* Write a whole encoded record (nsl_st_layout) to path atomically, as nsl_st_write does. */
int nsl_st_write_bytes(const char *path, const void *bytes, uint64_t len);

/*
 * Lay out tensors t[0..n) (their data pointers unused) and the metadata in buf: the header goes
 * in now, tensor i's bytes belong at buf + *data_off + the sum of the sizes before it, for the
 * caller to fill. *total is the record's size. 0, or -EMSGSIZE (with *total) when cap is short.
 */
int nsl_st_layout(const struct nsl_st_tensor *t, int n, const char *const *meta, int nmeta, void *buf, uint64_t cap,
		  uint64_t *data_off, uint64_t *total);

struct nsl_st_file;

/* As nsl_st_open, on a record in memory, which stays the caller's and must outlive the result. */
struct nsl_st_file *nsl_st_parse(const void *bytes, uint64_t len, const char *what);

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
