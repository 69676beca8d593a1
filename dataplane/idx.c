/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "nsplit/error.h"
#include "nsplit/idx.h"

#define IDX_MAGIC_U8_1D 0x00000801u
#define IDX_MAGIC_U8_3D 0x00000803u
/* Far above any IDX data set in use; bounds the allocation a corrupt header can ask for. */
#define IDX_MAX_BYTES (4ull << 30)

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* gzread reads raw files too, so one path serves both; it returns short counts only at EOF. */
static int read_exact(gzFile f, const char *path, void *dst, uint64_t bytes, const char *what)
{
	uint8_t *p = dst;

	while (bytes > 0) {
		unsigned chunk = bytes > (1u << 30) ? (1u << 30) : (unsigned)bytes;
		int n = gzread(f, p, chunk);

		if (n < 0) {
			int zerr;
			const char *msg = gzerror(f, &zerr);

			return nsl_error_set(EIO, "%s: cannot read %s: %s", path, what,
					     zerr == Z_ERRNO ? strerror(errno) : msg);
		}
		if (n == 0)
			return nsl_error_set(EIO, "%s: truncated while reading %s (%llu bytes missing)", path,
					     what, (unsigned long long)bytes);
		p += n;
		bytes -= (uint64_t)n;
	}
	return 0;
}

/* Opens an IDX file and checks its magic; *dims receives the dimensions after the magic. */
static gzFile open_idx(const char *path, uint32_t magic, uint32_t *dims, int ndims, int *rc)
{
	uint8_t hdr[16];
	gzFile f = gzopen(path, "rb");

	if (f == NULL) {
		*rc = nsl_error_set(errno ? errno : ENOMEM, "%s: cannot open: %s", path,
				    errno ? strerror(errno) : "out of memory");
		return NULL;
	}
	gzbuffer(f, 1 << 17);
	/* The magic first: a label file given as images is named as such, not as truncated. */
	*rc = read_exact(f, path, hdr, 4, "the IDX magic");
	if (*rc == 0 && be32(hdr) != magic)
		*rc = nsl_error_set(EINVAL, "%s: not an IDX %s file (magic 0x%08x, expected 0x%08x)", path,
				    magic == IDX_MAGIC_U8_3D ? "image" : "label", be32(hdr), magic);
	if (*rc == 0)
		*rc = read_exact(f, path, hdr + 4, 4 * (uint64_t)ndims, "the IDX header");
	if (*rc < 0) {
		gzclose(f);
		return NULL;
	}
	for (int i = 0; i < ndims; i++)
		dims[i] = be32(hdr + 4 + 4 * i);
	return f;
}

int nsl_idx_load(const char *images, const char *labels, struct nsl_dataset *out)
{
	uint32_t idim[3], ldim[1];
	uint64_t bytes;
	gzFile fi, fl;
	int rc;

	memset(out, 0, sizeof(*out));
	fi = open_idx(images, IDX_MAGIC_U8_3D, idim, 3, &rc);
	if (fi == NULL)
		return rc;
	fl = open_idx(labels, IDX_MAGIC_U8_1D, ldim, 1, &rc);
	if (fl == NULL)
		goto out_images;
	if (idim[0] != ldim[0]) {
		rc = nsl_error_set(EINVAL, "%s holds %u images but %s holds %u labels: use files of one set", images,
				   idim[0], labels, ldim[0]);
		goto out;
	}
	bytes = (uint64_t)idim[0] * idim[1] * idim[2];
	if (idim[0] == 0 || idim[1] == 0 || idim[2] == 0 || idim[1] > INT_MAX || idim[2] > INT_MAX ||
	    bytes > IDX_MAX_BYTES) {
		rc = nsl_error_set(EINVAL, "%s: implausible image dimensions %u x %u x %u", images, idim[0],
				   idim[1], idim[2]);
		goto out;
	}
	out->samples = malloc(bytes);
	out->labels = malloc(idim[0]);
	if (out->samples == NULL || out->labels == NULL) {
		rc = nsl_error_set(ENOMEM, "%s: cannot allocate %llu bytes for the images", images,
				   (unsigned long long)bytes);
		goto out;
	}
	if ((rc = read_exact(fi, images, out->samples, bytes, "the images")) < 0 ||
	    (rc = read_exact(fl, labels, out->labels, idim[0], "the labels")) < 0)
		goto out;
	out->count = idim[0];
	out->shape = (struct nsl_shape){ .c = 1, .h = (int)idim[1], .w = (int)idim[2] };
	for (uint32_t i = 0; i < out->count; i++)
		if (out->labels[i] + 1u > out->classes)
			out->classes = out->labels[i] + 1u;
out:
	gzclose(fl);
out_images:
	gzclose(fi);
	if (rc < 0)
		nsl_dataset_free(out);
	return rc;
}

void nsl_dataset_free(struct nsl_dataset *d)
{
	if (d == NULL)
		return;
	free(d->samples);
	free(d->labels);
	memset(d, 0, sizeof(*d));
}
