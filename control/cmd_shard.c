/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "nsplit/error.h"
#include "nsplit/idx.h"
#include "nsplit/shard.h"
#include "cli.h"
#include "commands.h"
#include "dataset.h"

static void usage(FILE *f)
{
	fputs(
"usage: nsplit shard --data DIR --out DIR [--parts N]\n"
"       nsplit shard --images FILE --labels FILE --out DIR [--parts N] [--stem NAME]\n"
"Convert IDX files (MNIST, Fashion-MNIST; raw or .gz) into nsplit shard files.\n"
"\n"
"  --data DIR       a folder with train-images-idx3-ubyte, train-labels-idx1-ubyte,\n"
"                   t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (each raw or .gz):\n"
"                   writes train-<i>-of-<N>.nsl and test.nsl, ready for --shards\n"
"  --images FILE    one IDX image file ...\n"
"  --labels FILE    ... and its labels: writes <stem>-<i>-of-<N>.nsl\n"
"                   (<stem>.nsl when --parts is 1)\n"
"  --out DIR        where the shards go (created if missing; required)\n"
"  --parts N        cut the training set into N shards of equal size, one per peer;\n"
"                   the remainder of count/N is dropped (default 1)\n"
"  --stem NAME      file name stem with --images (default train)\n"
"  -h, --help       this text\n",
		f);
}

static const struct option long_opts[] = {
	{ "data", required_argument, NULL, 'd' },
	{ "images", required_argument, NULL, 'i' },
	{ "labels", required_argument, NULL, 'l' },
	{ "out", required_argument, NULL, 'o' },
	{ "parts", required_argument, NULL, 'p' },
	{ "stem", required_argument, NULL, 's' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

struct shard_opts {
	const char *data, *images, *labels, *out, *stem;
	int parts;
};

static int convert(const char *images, const char *labels, const char *out, const char *stem, int parts,
		   bool single_name)
{
	struct nsl_dataset d;
	int rc;

	if ((rc = nsl_idx_load(images, labels, &d)) < 0)
		return rc;
	rc = nsl_shard_write_parts(&d, out, stem, parts, single_name);
	if (rc == 0)
		printf("%s: %d shard(s) of %u records (%dx%dx%d, %u classes) in %s\n", images, parts,
		       d.count / (uint32_t)parts, d.shape.c, d.shape.h, d.shape.w, d.classes, out);
	nsl_dataset_free(&d);
	return rc;
}

static int find(const char *dir, const char *stem, char *path)
{
	if (nsl_dataset_find_idx(dir, stem, path, PATH_MAX) < 0)
		return nsl_error_set(ENOENT, "%s: no %s or %s.gz", dir, stem, stem);
	return 0;
}

static int run(const struct shard_opts *o)
{
	char ti[PATH_MAX], tl[PATH_MAX], vi[PATH_MAX], vl[PATH_MAX];
	int rc;

	if (mkdir(o->out, 0755) < 0 && errno != EEXIST)
		return nsl_error_set(errno, "cannot create %s: %s", o->out, strerror(errno));
	if (o->images)
		return convert(o->images, o->labels, o->out, o->stem, o->parts, true);
	if ((rc = find(o->data, "train-images-idx3-ubyte", ti)) < 0 ||
	    (rc = find(o->data, "train-labels-idx1-ubyte", tl)) < 0 ||
	    (rc = find(o->data, "t10k-images-idx3-ubyte", vi)) < 0 ||
	    (rc = find(o->data, "t10k-labels-idx1-ubyte", vl)) < 0)
		return rc;
	/* Named train-<i>-of-<N>.nsl even for one part: that is what --shards looks for. */
	if ((rc = convert(ti, tl, o->out, "train", o->parts, false)) < 0)
		return rc;
	return convert(vi, vl, o->out, "test", 1, true);
}

int nsl_cmd_shard(int argc, char **argv)
{
	struct shard_opts o = { .stem = "train", .parts = 1 };
	int c, rc = 0;

	while (rc == 0 && (c = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
		switch (c) {
		case 'd': o.data = optarg; break;
		case 'i': o.images = optarg; break;
		case 'l': o.labels = optarg; break;
		case 'o': o.out = optarg; break;
		case 'p': rc = nsl_cli_int("parts", optarg, 1, NSL_DATASET_MAX_PARTS, &o.parts); break;
		case 's': o.stem = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (rc < 0) {
		nsl_cli_fail("shard");
		return 2;
	}
	if (optind < argc || o.out == NULL || (o.data == NULL) == (o.images == NULL) ||
	    (o.images == NULL) != (o.labels == NULL) || strchr(o.stem, '/') != NULL) {
		fprintf(stderr, "nsplit shard: %s\n",
			optind < argc ? "unexpected argument"
			: o.out == NULL ? "--out DIR is required"
			: (o.images == NULL) != (o.labels == NULL) ? "--images and --labels go together"
			: strchr(o.stem, '/') ? "--stem is a file name, without '/'"
					      : "give either --data DIR or --images FILE --labels FILE");
		usage(stderr);
		return 2;
	}
	return run(&o) < 0 ? nsl_cli_fail("shard") : 0;
}
