/* SPDX-License-Identifier: BSD-3-Clause */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nsplit/error.h"
#include "checkpoint.h"
#include "record.h"

static int make_dir(const char *path)
{
	if (mkdir(path, 0755) == 0 || errno == EEXIST)
		return 0;
	return nsl_error_set(errno, "--checkpoint: cannot make %s: %s", path, strerror(errno));
}

int nsl_ckpt_write_stage(const char *dir, int64_t round, int stage, int nstages, const void *rec, uint64_t len,
			 const char *manifest)
{
	char folder[PATH_MAX], path[PATH_MAX + 64];
	int rc = make_dir(dir), have = 0;

	if (rc < 0)
		return rc;
	snprintf(folder, sizeof(folder), "%s/round-%06" PRId64, dir, round);
	if ((rc = make_dir(folder)) < 0)
		return rc;
	snprintf(path, sizeof(path), "%s/stage-%d.safetensors", folder, stage);
	if ((rc = nsl_st_write_bytes(path, rec, len)) < 0)
		return rc;
	/* Complete when every stage is in; two peers may both see that and write the same manifest. */
	for (int s = 0; s < nstages; s++) {
		snprintf(path, sizeof(path), "%s/stage-%d.safetensors", folder, s);
		have += access(path, F_OK) == 0;
	}
	if (have < nstages)
		return 0;
	snprintf(path, sizeof(path), "%s/manifest.json", folder);
	return nsl_st_write_bytes(path, manifest, strlen(manifest));
}

void nsl_ckpt_close(struct nsl_ckpt *c)
{
	for (int i = 0; i < c->n; i++)
		nsl_st_close(c->f[i]);
	free(c->f);
	c->f = NULL;
	c->n = 0;
}

static int newest_first(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*b)->d_name, (*a)->d_name);
}

static int is_round(const struct dirent *d)
{
	return strncmp(d->d_name, "round-", 6) == 0;
}

static int is_stage(const struct dirent *d)
{
	size_t n = strlen(d->d_name);

	return strncmp(d->d_name, "stage-", 6) == 0 && n > 12 && strcmp(d->d_name + n - 12, ".safetensors") == 0;
}

/* Open every stage record of one complete round folder. */
static int open_round(const char *folder, const struct nsl_model *m, struct nsl_ckpt *c)
{
	struct dirent **names = NULL;
	int n = scandir(folder, &names, is_stage, alphasort), rc = 0;

	if (n <= 0) {
		free(names);
		return nsl_error_set(ENOENT, "%s has a manifest but no stage records", folder);
	}
	if ((c->f = calloc((size_t)n, sizeof(*c->f))) == NULL)
		rc = nsl_error_set(ENOMEM, "out of memory");
	for (int i = 0; i < n; i++) {
		char path[PATH_MAX + 300];

		snprintf(path, sizeof(path), "%s/%s", folder, names[i]->d_name);
		if (rc == 0 && (c->f[c->n] = nsl_st_open(path)) == NULL)
			rc = -EINVAL;
		else if (rc == 0 && (rc = nsl_record_check(c->f[c->n++], m, path)) == 0 && c->n == 1) {
			const char *round = nsl_st_meta(c->f[0], "round"), *peers = nsl_st_meta(c->f[0], "peers");
			const char *records = nsl_st_meta(c->f[0], "records");

			c->round = round ? strtoll(round, NULL, 10) : -1;
			c->peers = peers ? atoi(peers) : 0;
			/* one record per peer, or (Fast N-split) per backward role; older records do not say */
			c->records = records ? atoi(records) : c->peers;
			c->split = nsl_st_meta(c->f[0], "split");
			c->config = nsl_st_meta(c->f[0], "config");
			if (c->round < 0 || c->peers < 1)
				rc = nsl_error_set(EINVAL, "%s does not say its round and peer count", path);
		}
		free(names[i]);
	}
	free(names);
	if (rc == 0 && c->n != c->records)
		rc = nsl_error_set(EINVAL, "%s holds %d stage records where its job wrote %d", folder, c->n, c->records);
	if (rc < 0)
		nsl_ckpt_close(c);
	return rc;
}

int nsl_ckpt_open_latest(const char *dir, const struct nsl_model *m, struct nsl_ckpt *out)
{
	struct dirent **names = NULL;
	int n = scandir(dir, &names, is_round, newest_first), rc = -ENOENT;

	memset(out, 0, sizeof(*out));
	if (n < 0)
		return nsl_error_set(errno, "--resume %s: %s", dir, strerror(errno));
	for (int i = 0; i < n; i++) {
		char manifest[PATH_MAX + 300];

		snprintf(manifest, sizeof(manifest), "%s/%s/manifest.json", dir, names[i]->d_name);
		/* The newest with a manifest; an older one is used only if there is none. */
		if (rc == -ENOENT && access(manifest, F_OK) == 0) {
			snprintf(out->path, sizeof(out->path), "%s/%s", dir, names[i]->d_name);
			rc = open_round(out->path, m, out);
		}
		free(names[i]);
	}
	free(names);
	if (rc == -ENOENT)
		return nsl_error_set(ENOENT, "--resume %s: no complete checkpoint (a round-N folder with manifest.json) in it",
				     dir);
	return rc;
}
