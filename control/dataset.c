/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nsplit/error.h"
#include "nsplit/idx.h"
#include "nsplit/rng.h"
#include "nsplit/shard.h"
#include "dataset.h"

enum { IDX_TRAIN_IMAGES, IDX_TRAIN_LABELS, IDX_TEST_IMAGES, IDX_TEST_LABELS, IDX_FILES };

static const char *const idx_stems[IDX_FILES] = {
	"train-images-idx3-ubyte",
	"train-labels-idx1-ubyte",
	"t10k-images-idx3-ubyte",
	"t10k-labels-idx1-ubyte",
};

static bool is_file(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int nsl_dataset_find_idx(const char *dir, const char *stem, char *out, size_t size)
{
	static const char *const suffixes[] = { "", ".gz" };

	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		int n = snprintf(out, size, "%s/%s%s", dir, stem, suffixes[i]);

		if (n > 0 && (size_t)n < size && is_file(out))
			return 0;
	}
	return -ENOENT;
}

static int shard_path(char *out, const char *dir, const char *name)
{
	int n = snprintf(out, PATH_MAX, "%s/%s", dir, name);

	if (n < 0 || n >= PATH_MAX)
		return nsl_error_set(ENAMETOOLONG, "path too long: %s/%s", dir, name);
	return 0;
}

static int name_parts(const char *dir, int parts, struct nsl_dataset_files *out)
{
	char name[64];
	int rc;

	out->parts = parts;
	if ((rc = shard_path(out->test, dir, "test.nsl")) < 0)
		return rc;
	for (int i = 0; i < parts; i++) {
		snprintf(name, sizeof(name), "train-%d-of-%d.nsl", i, parts);
		if ((rc = shard_path(out->train[i], dir, name)) < 0)
			return rc;
	}
	return 0;
}

/* Every named shard exists with a valid header (a failure leaves a message the caller clears). */
static bool shards_valid(const struct nsl_dataset_files *f)
{
	struct nsl_shard_info info;

	if (nsl_shard_read_info(f->test, &info) < 0)
		return false;
	for (int i = 0; i < f->parts; i++)
		if (nsl_shard_read_info(f->train[i], &info) < 0)
			return false;
	return true;
}

/* Ready shards in data_dir: 1 when found, 0 when the folder holds none, negative on a broken set. */
static int use_ready_shards(const char *data_dir, int parts, struct nsl_dataset_files *out)
{
	struct nsl_shard_info info;
	int rc;

	if ((rc = name_parts(data_dir, parts, out)) < 0)
		return rc;
	if (parts == 1 && !is_file(out->train[0])) {
		char alt[PATH_MAX];

		if ((rc = shard_path(alt, data_dir, "train.nsl")) < 0)
			return rc;
		if (is_file(alt))
			memcpy(out->train[0], alt, sizeof(alt));
	}
	if (!is_file(out->test) && !is_file(out->train[0]))
		return 0;
	/* The folder is meant as a shard folder: name exactly what is missing or broken. */
	for (int i = 0; i < parts; i++) {
		if (!is_file(out->train[i]))
			return nsl_error_set(ENOENT, "%s: no %s; make %d training shard%s with `nsplit shard --parts %d`",
					     data_dir, strrchr(out->train[i], '/') + 1, parts, parts == 1 ? "" : "s",
					     parts);
		if ((rc = nsl_shard_read_info(out->train[i], &info)) < 0)
			return rc;
	}
	if (!is_file(out->test))
		return nsl_error_set(ENOENT, "%s: no test.nsl beside the training shards", data_dir);
	if ((rc = nsl_shard_read_info(out->test, &info)) < 0)
		return rc;
	return 1;
}

/* Same IDX files (path, size, mtime) give the same key; a changed file gives new shards. */
static uint64_t idx_key(char paths[IDX_FILES][PATH_MAX])
{
	uint64_t h = 0x6e73706c6974ull;

	for (int i = 0; i < IDX_FILES; i++) {
		char real[PATH_MAX];
		struct stat st;
		const char *p = realpath(paths[i], real) ? real : paths[i];

		for (const char *c = p; *c; c++)
			h = nsl_hash2(h, (uint8_t)*c);
		if (stat(paths[i], &st) == 0) {
			h = nsl_hash2(h, (uint64_t)st.st_size);
			h = nsl_hash2(h, (uint64_t)st.st_mtim.tv_sec);
			h = nsl_hash2(h, (uint64_t)st.st_mtim.tv_nsec);
		}
	}
	return h;
}

static int mkdir_p(const char *path)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(buf))
		return nsl_error_set(EINVAL, "bad cache folder \"%s\"", path);
	memcpy(buf, path, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return nsl_error_set(errno, "cannot create cache folder %s: %s (choose another with --cache or "
					     "$NSPLIT_CACHE)", buf, strerror(errno));
		buf[i] = path[i];
	}
	return 0;
}

static int make_shards(char idx[IDX_FILES][PATH_MAX], const char *dir, const struct nsl_dataset_files *f)
{
	struct nsl_dataset d;
	int rc;

	fprintf(stderr, "nsplit: making %d training shard(s) and a test shard from %s into %s (first use)\n",
		f->parts, idx[IDX_TRAIN_IMAGES], dir);
	if ((rc = nsl_idx_load(idx[IDX_TRAIN_IMAGES], idx[IDX_TRAIN_LABELS], &d)) < 0)
		return rc;
	rc = nsl_shard_write_parts(&d, dir, "train", f->parts, false);
	nsl_dataset_free(&d);
	if (rc < 0)
		return rc;
	if ((rc = nsl_idx_load(idx[IDX_TEST_IMAGES], idx[IDX_TEST_LABELS], &d)) < 0)
		return rc;
	rc = nsl_shard_write_parts(&d, dir, "test", 1, true);
	nsl_dataset_free(&d);
	return rc;
}

int nsl_dataset_prepare(const char *data_dir, const char *cache_dir, int parts, struct nsl_dataset_files *out)
{
	char idx[IDX_FILES][PATH_MAX];
	char dir[PATH_MAX];
	int rc, n;

	memset(out, 0, sizeof(*out));
	if (parts < 1 || parts > NSL_DATASET_MAX_PARTS)
		return nsl_error_set(EINVAL, "%d shards requested; nsplit cuts 1 to %d", parts, NSL_DATASET_MAX_PARTS);
	if (!data_dir || !*data_dir)
		return nsl_error_set(EINVAL, "no data folder given (--data DIR)");
	if ((rc = use_ready_shards(data_dir, parts, out)) != 0)
		return rc < 0 ? rc : 0;
	for (int i = 0; i < IDX_FILES; i++)
		if (nsl_dataset_find_idx(data_dir, idx_stems[i], idx[i], sizeof(idx[i])) < 0)
			return nsl_error_set(ENOENT, "%s: no %s[.gz] and no .nsl shards there; install Debian's "
					     "dataset-fashion-mnist or point --data at IDX files or shards",
					     data_dir, idx_stems[i]);
	n = snprintf(dir, sizeof(dir), "%s/%016" PRIx64, cache_dir, idx_key(idx));
	if (n < 0 || n >= (int)sizeof(dir))
		return nsl_error_set(ENAMETOOLONG, "cache folder path too long: %s", cache_dir);
	if ((rc = name_parts(dir, parts, out)) < 0)
		return rc;
	if (shards_valid(out)) {
		nsl_error_clear();
		return 0;
	}
	nsl_error_clear();
	if ((rc = mkdir_p(dir)) < 0 || (rc = make_shards(idx, dir, out)) < 0)
		return rc;
	return 0;
}
