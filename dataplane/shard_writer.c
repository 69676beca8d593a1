/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nsplit/error.h"
#include "shard_pvt.h"

/* Records are gathered here and written in big sequential chunks (plus room for the final padding). */
#define WRITE_CHUNK (1u << 20)

struct nsl_shard_writer {
	int fd;
	struct nsl_shard_info info;
	uint64_t data_bytes;      /* record bytes written so far */
	uint32_t used;            /* bytes waiting in buf */
	uint8_t *buf;
	char path[PATH_MAX];
	char tmp[PATH_MAX + 16];
};

static int write_all(struct nsl_shard_writer *w, const void *src, size_t bytes, off_t at)
{
	const uint8_t *p = src;

	while (bytes > 0) {
		ssize_t n = pwrite(w->fd, p, bytes, at);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return nsl_error_set(errno, "%s: cannot write: %s", w->tmp, strerror(errno));
		p += n;
		at += n;
		bytes -= (size_t)n;
	}
	return 0;
}

static int flush(struct nsl_shard_writer *w)
{
	int rc = write_all(w, w->buf, w->used, (off_t)(w->info.data_offset + w->data_bytes));

	if (rc == 0) {
		w->data_bytes += w->used;
		w->used = 0;
	}
	return rc;
}

struct nsl_shard_writer *nsl_shard_writer_open(const char *path, const struct nsl_shard_info *info)
{
	struct nsl_shard_writer *w;
	uint64_t elems = (uint64_t)nsl_shape_size(info->shape);

	if (info->shape.c <= 0 || info->shape.h <= 0 || info->shape.w <= 0 || elems > WRITE_CHUNK / 2 ||
	    nsl_shard_dtype_bytes(info->dtype) == 0 || nsl_shard_label_bytes(info->label_type) == 0 ||
	    info->classes < 2 || info->classes > 256) {
		nsl_error_set(EINVAL, "%s: cannot write samples %dx%dx%d of dtype %u, label type %u, %u classes", path,
			      info->shape.c, info->shape.h, info->shape.w, info->dtype, info->label_type,
			      info->classes);
		return NULL;
	}
	if (strlen(path) >= PATH_MAX) {
		nsl_error_set(ENAMETOOLONG, "shard path too long: %.64s...", path);
		return NULL;
	}
	w = calloc(1, sizeof(*w));
	if (w == NULL || (w->buf = malloc(WRITE_CHUNK + NSL_SHARD_ALIGN)) == NULL) {
		free(w);
		nsl_error_set(ENOMEM, "%s: out of memory for the shard writer", path);
		return NULL;
	}
	w->info = *info;
	w->info.version = NSL_SHARD_VERSION;
	w->info.data_offset = NSL_SHARD_HEADER_BYTES;
	w->info.count = 0;
	w->info.record_size = (uint32_t)(nsl_shard_label_bytes(info->label_type) +
					 elems * nsl_shard_dtype_bytes(info->dtype));
	snprintf(w->path, sizeof(w->path), "%s", path);
	/* The pid keeps two processes that make the same cache from writing one temporary file. */
	snprintf(w->tmp, sizeof(w->tmp), "%s.%d.tmp", path, (int)getpid());
	w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (w->fd < 0) {
		nsl_error_set(errno, "%s: cannot create: %s", w->tmp, strerror(errno));
		free(w->buf);
		free(w);
		return NULL;
	}
	return w;
}

int nsl_shard_writer_append(struct nsl_shard_writer *w, const uint8_t *sample, uint32_t label)
{
	uint32_t rs = w->info.record_size;
	int rc;

	if (label >= w->info.classes)
		return nsl_error_set(EINVAL, "%s: record %llu has label %u, but the shard has %u classes", w->path,
				     (unsigned long long)w->info.count, label, w->info.classes);
	if (w->info.count == UINT32_MAX)
		return nsl_error_set(EFBIG, "%s: a shard holds at most %u records; cut the set into more parts",
				     w->path, UINT32_MAX);
	if (w->used + rs > WRITE_CHUNK && (rc = flush(w)) < 0)
		return rc;
	w->buf[w->used] = (uint8_t)label;
	memcpy(w->buf + w->used + 1, sample, rs - 1);
	w->used += rs;
	w->info.count++;
	return 0;
}

int nsl_shard_writer_close(struct nsl_shard_writer *w)
{
	uint8_t header[NSL_SHARD_HEADER_BYTES];
	uint64_t end;
	int rc;

	if (w->info.count == 0) {
		rc = nsl_error_set(EINVAL, "%s: no records to write", w->path);
		goto fail;
	}
	/* Zero padding to a whole block lets O_DIRECT read the last records with an aligned length. */
	end = w->info.data_offset + w->data_bytes + w->used;
	memset(w->buf + w->used, 0, nsl_align_up(end, NSL_SHARD_ALIGN) - end);
	w->used += (uint32_t)(nsl_align_up(end, NSL_SHARD_ALIGN) - end);
	if ((rc = flush(w)) < 0)
		goto fail;
	nsl_shard_header_encode(&w->info, header);
	if ((rc = write_all(w, header, sizeof(header), 0)) < 0)
		goto fail;
	/* Durable before it becomes visible under its name: a crash leaves no half-written shard. */
	if (fsync(w->fd) < 0) {
		rc = nsl_error_set(errno, "%s: fsync failed: %s", w->tmp, strerror(errno));
		goto fail;
	}
	if (rename(w->tmp, w->path) < 0) {
		rc = nsl_error_set(errno, "cannot rename %s to %s: %s", w->tmp, w->path, strerror(errno));
		goto fail;
	}
	close(w->fd);
	free(w->buf);
	free(w);
	return 0;
fail:
	nsl_shard_writer_abort(w);
	return rc;
}

void nsl_shard_writer_abort(struct nsl_shard_writer *w)
{
	if (w == NULL)
		return;
	close(w->fd);
	unlink(w->tmp);
	free(w->buf);
	free(w);
}
