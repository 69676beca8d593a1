/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nsplit/error.h"
#include "nsplit/safetensors.h"
#include "json.h"

#define ST_MAX_HEADER (64u << 20)

struct st_entry {
	char *name;
	int ndim;
	int64_t dims[NSL_ST_MAX_DIMS];
	uint64_t begin, end;
};

struct nsl_st_file {
	char *path;
	uint8_t *bytes;            /* the whole file */
	bool borrowed;             /* bytes are the caller's (nsl_st_parse) */
	size_t size;
	uint64_t data_off;
	int n;
	struct st_entry *e;
	int nmeta;
	char *meta[32][2];
};

/* ---- writing ---- */

static int json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	return fputc('"', f) == EOF ? -EIO : 0;
}

static int64_t numel(const struct nsl_st_tensor *t)
{
	int64_t n = 1;

	for (int d = 0; d < t->ndim; d++)
		n *= t->dims[d];
	return n;
}

/* The JSON header, padded with spaces to a multiple of 8; malloc'd into *out. */
static int build_header(const struct nsl_st_tensor *t, int n, const char *const *meta, int nmeta, char **out,
			size_t *len)
{
	FILE *h = open_memstream(out, len);
	uint64_t off = 0;

	if (h == NULL)
		return nsl_error_set(ENOMEM, "safetensors header: out of memory");
	fputc('{', h);
	if (nmeta > 0) {
		fputs("\"__metadata__\":{", h);
		for (int i = 0; i < nmeta; i++) {
			if (i)
				fputc(',', h);
			json_string(h, meta[2 * i]);
			fputc(':', h);
			json_string(h, meta[2 * i + 1]);
		}
		fputc('}', h);
	}
	for (int i = 0; i < n; i++) {
		uint64_t bytes = (uint64_t)numel(&t[i]) * 4;

		if (i || nmeta > 0)
			fputc(',', h);
		json_string(h, t[i].name);
		fputs(":{\"dtype\":\"F32\",\"shape\":[", h);
		for (int d = 0; d < t[i].ndim; d++)
			fprintf(h, "%s%lld", d ? "," : "", (long long)t[i].dims[d]);
		fprintf(h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
			(unsigned long long)(off + bytes));
		off += bytes;
	}
	fputc('}', h);
	/* The spec allows trailing spaces; padding to 8 bytes keeps the data aligned for mmap users. */
	while ((ftell(h) + 8) % 8)
		fputc(' ', h);
	if (fclose(h) != 0) {
		free(*out);
		*out = NULL;
		return nsl_error_set(ENOMEM, "safetensors header: out of memory");
	}
	return 0;
}

/* Write the chunks to path atomically: a temporary file beside it, fsync, rename. */
static int write_atomic(const char *path, const void *const *chunk, const uint64_t *len, int n)
{
	char tmp[4096];
	int fd, rc = 0;

	snprintf(tmp, sizeof(tmp), "%s.tmp.%d.%lx", path, (int)getpid(), (unsigned long)pthread_self());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return nsl_error_set(errno, "%s: cannot create: %s", tmp, strerror(errno));
	for (int i = 0; i < n && rc == 0; i++)
		for (uint64_t done = 0; done < len[i];) {
			ssize_t w = write(fd, (const uint8_t *)chunk[i] + done, len[i] - done);

			if (w <= 0) {
				rc = nsl_error_set(w < 0 ? errno : EIO, "%s: write failed: %s (disk full?)", tmp,
						   strerror(w < 0 ? errno : EIO));
				break;
			}
			done += (uint64_t)w;
		}
	if (rc == 0 && fsync(fd) != 0)
		rc = nsl_error_set(errno, "%s: fsync failed: %s", tmp, strerror(errno));
	if (close(fd) != 0 && rc == 0)
		rc = nsl_error_set(errno, "%s: write failed: %s", tmp, strerror(errno));
	if (rc == 0 && rename(tmp, path) != 0)
		rc = nsl_error_set(errno, "%s: cannot rename %s into place: %s", path, tmp, strerror(errno));
	if (rc < 0)
		unlink(tmp);
	return rc;
}

int nsl_st_write(const char *path, const struct nsl_st_tensor *t, int n, const char *const *meta, int nmeta)
{
	char *hdr = NULL;
	size_t hlen = 0;
	uint8_t le[8];
	const void **chunk = calloc((size_t)n + 2, sizeof(*chunk));
	uint64_t *len = calloc((size_t)n + 2, sizeof(*len));
	int rc = chunk == NULL || len == NULL ? nsl_error_set(ENOMEM, "%s: out of memory", path)
					      : build_header(t, n, meta, nmeta, &hdr, &hlen);

	if (rc == 0) {
		for (int b = 0; b < 8; b++)
			le[b] = (uint8_t)((uint64_t)hlen >> (8 * b));
		chunk[0] = le;
		len[0] = 8;
		chunk[1] = hdr;
		len[1] = hlen;
		/* x86 and every DPDK target we build for are little-endian, as the format wants. */
		for (int i = 0; i < n; i++) {
			chunk[i + 2] = t[i].data;
			len[i + 2] = (uint64_t)numel(&t[i]) * sizeof(float);
		}
		rc = write_atomic(path, chunk, len, n + 2);
	}
	free(hdr);
	free(chunk);
	free(len);
	return rc;
}

int nsl_st_write_bytes(const char *path, const void *bytes, uint64_t len)
{
	return write_atomic(path, &bytes, &len, 1);
}

int nsl_st_layout(const struct nsl_st_tensor *t, int n, const char *const *meta, int nmeta, void *buf, uint64_t cap,
		  uint64_t *data_off, uint64_t *total)
{
	char *hdr = NULL;
	size_t hlen = 0;
	int rc = build_header(t, n, meta, nmeta, &hdr, &hlen);

	if (rc < 0)
		return rc;
	*data_off = 8 + (uint64_t)hlen;
	*total = *data_off;
	for (int i = 0; i < n; i++)
		*total += (uint64_t)numel(&t[i]) * sizeof(float);
	if (*total > cap) {
		free(hdr);
		return nsl_error_set(EMSGSIZE, "safetensors: %llu bytes do not fit a buffer of %llu",
				     (unsigned long long)*total, (unsigned long long)cap);
	}
	for (int b = 0; b < 8; b++)
		((uint8_t *)buf)[b] = (uint8_t)((uint64_t)hlen >> (8 * b));
	memcpy((uint8_t *)buf + 8, hdr, hlen);
	free(hdr);
	return 0;
}

/* ---- reading: the header is JSON (json.h) ---- */

static int header_error(const struct nsl_st_file *f, const char *name, const char *what)
{
	return nsl_error_set(EINVAL, "%s: bad header JSON: tensor %s: %s", f->path, name, what);
}

/* [a, b, ...] of whole numbers of at most `max`, at most `cap` of them; -1 when not that. */
static int uints(const struct nsl_json *v, uint64_t max, int cap, uint64_t *out)
{
	if (v == NULL || v->type != NSL_JSON_ARRAY || v->n > cap)
		return -1;
	for (int i = 0; i < v->n; i++) {
		const struct nsl_json *x = &v->child[i];

		if (x->type != NSL_JSON_NUMBER || x->number < 0 || x->number > (double)max || x->number != (double)(uint64_t)x->number)
			return -1;
		out[i] = (uint64_t)x->number;
	}
	return v->n;
}

static int parse_entry(struct nsl_st_file *f, const struct nsl_json *t, struct st_entry *e)
{
	const struct nsl_json *dtype = nsl_json_get(t, "dtype"), *shape = nsl_json_get(t, "shape"),
			      *off = nsl_json_get(t, "data_offsets");
	uint64_t dims[NSL_ST_MAX_DIMS], range[2];

	if (t->type != NSL_JSON_OBJECT)
		return header_error(f, e->name, "expected an object");
	if (dtype == NULL || shape == NULL || off == NULL)
		return nsl_error_set(EINVAL, "%s: tensor %s lacks dtype, shape or data_offsets", f->path, e->name);
	if (dtype->type != NSL_JSON_STRING)
		return header_error(f, e->name, "expected a dtype string");
	if (strcmp(dtype->string, "F32") != 0)
		return nsl_error_set(ENOTSUP, "%s: tensor %s has dtype %s; nsplit reads F32 only", f->path, e->name,
				     dtype->string);
	if (shape->type == NSL_JSON_ARRAY && shape->n > NSL_ST_MAX_DIMS)
		return nsl_error_set(ENOTSUP, "%s: tensor %s has more than %d dimensions", f->path, e->name,
				     NSL_ST_MAX_DIMS);
	if ((e->ndim = uints(shape, 1ull << 40, NSL_ST_MAX_DIMS, dims)) < 0)
		return header_error(f, e->name, "expected a shape of whole numbers");
	for (int d = 0; d < e->ndim; d++)
		e->dims[d] = (int64_t)dims[d];
	if (uints(off, UINT64_MAX >> 11, 2, range) != 2)
		return header_error(f, e->name, "expected data_offsets [begin, end]");
	e->begin = range[0];
	e->end = range[1];
	return 0;
}

static int parse_header(struct nsl_st_file *f, const char *json, size_t len)
{
	char *text = malloc(len + 1);
	struct nsl_json *root = NULL;
	int rc = 0;

	if (text == NULL)
		return nsl_error_set(ENOMEM, "%s: out of memory", f->path);
	memcpy(text, json, len);
	text[len] = 0;
	if (strlen(text) != len)
		rc = nsl_error_set(EINVAL, "%s: bad header JSON: a NUL byte in it", f->path);
	else if ((root = nsl_json_parse(text, f->path)) == NULL)
		rc = nsl_error_prefix(EINVAL, "bad header JSON");
	else if (root->type != NSL_JSON_OBJECT)
		rc = nsl_error_set(EINVAL, "%s: bad header JSON: expected an object", f->path);
	if (rc == 0 && (f->e = calloc((size_t)root->n + 1, sizeof(*f->e))) == NULL)
		rc = nsl_error_set(ENOMEM, "%s: out of memory", f->path);
	for (int i = 0; rc == 0 && i < root->n; i++) {
		const struct nsl_json *v = &root->child[i];

		if (strcmp(v->key, "__metadata__") == 0) {
			/* Other tools' metadata may hold anything; strings are what nsplit reads. */
			for (int k = 0; v->type == NSL_JSON_OBJECT && k < v->n && f->nmeta < 32; k++) {
				const struct nsl_json *m = &v->child[k];

				if (m->type != NSL_JSON_STRING)
					continue;
				if ((f->meta[f->nmeta][0] = strdup(m->key)) == NULL ||
				    (f->meta[f->nmeta][1] = strdup(m->string)) == NULL) {
					free(f->meta[f->nmeta][0]);
					rc = nsl_error_set(ENOMEM, "%s: out of memory", f->path);
					break;
				}
				f->nmeta++;
			}
			continue;
		}
		struct st_entry *e = &f->e[f->n];

		if ((e->name = strdup(v->key)) == NULL) {
			rc = nsl_error_set(ENOMEM, "%s: out of memory", f->path);
			break;
		}
		f->n++;
		rc = parse_entry(f, v, e);
	}
	nsl_json_free(root);
	free(text);
	return rc;
}

static int check_entries(struct nsl_st_file *f)
{
	uint64_t data = f->size - f->data_off;

	for (int i = 0; i < f->n; i++) {
		struct st_entry *e = &f->e[i];
		uint64_t n = 1;

		for (int d = 0; d < e->ndim; d++)
			n *= (uint64_t)e->dims[d];
		if (e->end < e->begin || e->end > data || e->end - e->begin != n * 4)
			return nsl_error_set(EINVAL,
					     "%s: tensor %s: data_offsets [%llu, %llu) do not fit its shape (%llu bytes) or the file (%llu data bytes); the file is truncated or corrupt",
					     f->path, e->name, (unsigned long long)e->begin, (unsigned long long)e->end,
					     (unsigned long long)(n * 4), (unsigned long long)data);
		if (e->begin % 4)
			return nsl_error_set(EINVAL, "%s: tensor %s is not 4-byte aligned", f->path, e->name);
	}
	return 0;
}

struct nsl_st_file *nsl_st_open(const char *path)
{
	struct nsl_st_file *f = NULL;
	struct stat st;
	uint8_t *bytes = NULL;
	size_t size = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) != 0) {
		nsl_error_set(errno, "%s: cannot open weights: %s", path, strerror(errno));
		goto out;
	}
	size = (size_t)st.st_size;
	if ((bytes = malloc(size + 1)) == NULL) {
		nsl_error_set(ENOMEM, "%s: cannot hold %zu bytes in memory", path, size);
		goto out;
	}
	for (size_t got = 0; got < size;) {
		ssize_t r = read(fd, bytes + got, size - got);

		if (r <= 0) {
			nsl_error_set(r < 0 ? errno : EIO, "%s: read failed at byte %zu", path, got);
			goto out;
		}
		got += (size_t)r;
	}
	if ((f = nsl_st_parse(bytes, size, path)) != NULL) {
		f->borrowed = false;    /* the file's bytes are its own now */
		bytes = NULL;
	}
out:
	if (fd >= 0)
		close(fd);
	free(bytes);
	return f;
}

void nsl_st_close(struct nsl_st_file *f)
{
	if (f == NULL)
		return;
	for (int i = 0; i < f->n; i++)
		free(f->e[i].name);
	for (int i = 0; i < f->nmeta; i++) {
		free(f->meta[i][0]);
		free(f->meta[i][1]);
	}
	free(f->e);
	if (!f->borrowed)
		free(f->bytes);
	free(f->path);
	free(f);
}

struct nsl_st_file *nsl_st_parse(const void *bytes, uint64_t len, const char *what)
{
	struct nsl_st_file *f = calloc(1, sizeof(*f));
	uint64_t hlen = 0;

	if (f == NULL || (f->path = strdup(what)) == NULL) {
		nsl_error_set(ENOMEM, "%s: out of memory", what);
		nsl_st_close(f);
		return NULL;
	}
	f->bytes = (uint8_t *)(uintptr_t)bytes;
	f->borrowed = true;
	f->size = (size_t)len;
	if (len < 8) {
		nsl_error_set(EINVAL, "%s: %llu bytes is too short for a safetensors file", what, (unsigned long long)len);
		nsl_st_close(f);
		return NULL;
	}
	for (int b = 0; b < 8; b++)
		hlen |= (uint64_t)f->bytes[b] << (8 * b);
	if (hlen > ST_MAX_HEADER || hlen > f->size - 8) {
		nsl_error_set(EINVAL, "%s: header length %llu exceeds the file (%zu bytes): not a safetensors file, or truncated",
			      what, (unsigned long long)hlen, f->size);
		nsl_st_close(f);
		return NULL;
	}
	f->data_off = 8 + hlen;
	if (parse_header(f, (const char *)f->bytes + 8, hlen) < 0 || check_entries(f) < 0) {
		nsl_st_close(f);
		return NULL;
	}
	return f;
}

int nsl_st_find(const struct nsl_st_file *f, const char *name, struct nsl_st_tensor *out)
{
	for (int i = 0; i < f->n; i++) {
		const struct st_entry *e = &f->e[i];

		if (strcmp(e->name, name) == 0) {
			out->name = e->name;
			out->ndim = e->ndim;
			memcpy(out->dims, e->dims, sizeof(out->dims));
			out->data = (const float *)(const void *)(f->bytes + f->data_off + e->begin);
			return 0;
		}
	}
	return nsl_error_set(ENOENT, "%s: no tensor named %s", f->path, name);
}

const char *nsl_st_meta(const struct nsl_st_file *f, const char *key)
{
	for (int i = 0; i < f->nmeta; i++)
		if (strcmp(f->meta[i][0], key) == 0)
			return f->meta[i][1];
	return NULL;
}

int nsl_st_count(const struct nsl_st_file *f)
{
	return f->n;
}
