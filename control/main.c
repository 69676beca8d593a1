/* SPDX-License-Identifier: BSD-3-Clause */
#include <stdio.h>
#include <string.h>

#include "commands.h"

struct subcommand {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
};

static const struct subcommand subcommands[] = {
	{ "train", nsl_cmd_train, "train a model: one peer, N peers in this process, or one peer of a cluster" },
	{ "launch", nsl_cmd_launch, "run an N-split job as N local processes joined by memif" },
	{ "eval", nsl_cmd_eval, "evaluate saved weights on the test set" },
	{ "shard", nsl_cmd_shard, "convert IDX files into nsplit shard files, cut into N parts" },
	{ "link", nsl_cmd_link, "move messages between two peers over a DPDK port, checking every byte" },
};

#define NSUB (sizeof(subcommands) / sizeof(subcommands[0]))

static void usage(FILE *f)
{
	fputs("usage: nsplit <command> [options]   (nsplit <command> --help for its options)\n\ncommands:\n", f);
	for (size_t i = 0; i < NSUB; i++)
		fprintf(f, "  %-8s %s\n", subcommands[i].name, subcommands[i].summary);
}

int main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	for (size_t i = 0; i < NSUB; i++) {
		if (strcmp(argv[1], subcommands[i].name) == 0) {
			return subcommands[i].run(argc - 1, argv + 1);
		}
	}
	fprintf(stderr, "nsplit: unknown command \"%s\"\n", argv[1]);
	usage(stderr);
	return 2;
}
