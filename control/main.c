/* SPDX-License-Identifier: BSD-3-Clause */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"

struct subcommand {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
};

static const struct subcommand subcommands[] = {
	{ "train", nsl_cmd_train, "train a model: one peer, N peers in this process, or one peer of a cluster" },
	{ "launch", nsl_cmd_launch, "run an N-split job as N local processes joined by memif" },
	{ "profile", nsl_cmd_profile, "measure a model's layers and a link on this machine, for nsplit plan" },
	{ "plan", nsl_cmd_plan, "the optimal split of a model over N peers, from a cost file" },
	{ "simulate", nsl_cmd_simulate, "predict a job from a cost file: its instruction lists as events" },
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

/*
 * N-split peers share cores with each other and with their links' polling, so OpenMP threads
 * that finish a parallel region must sleep rather than spin (libgomp spins for a while by
 * default). libgomp reads OMP_WAIT_POLICY as it loads, before main: set it and start again.
 * A user's own OMP_WAIT_POLICY is left as it is.
 */
static void passive_openmp(int argc, char **argv)
{
	bool peers = false;

	if (getenv("OMP_WAIT_POLICY") != NULL || strcmp(argv[1], "train") != 0)
		return;
	for (int i = 2; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "--cluster") == 0 || strncmp(argv[i], "--cluster=", 10) == 0 ||
		    (strcmp(argv[i], "--peers") == 0 && i + 1 < argc && strcmp(argv[i + 1], "1") != 0) ||
		    (strncmp(argv[i], "--peers=", 8) == 0 && strcmp(argv[i] + 8, "1") != 0))
			peers = true;
	if (!peers || setenv("OMP_WAIT_POLICY", "PASSIVE", 1) != 0)
		return;
	execv("/proc/self/exe", argv);
	/* Not started again: carry on with the default policy. */
}

int main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	passive_openmp(argc, argv);
	for (size_t i = 0; i < NSUB; i++) {
		if (strcmp(argv[1], subcommands[i].name) == 0) {
			return subcommands[i].run(argc - 1, argv + 1);
		}
	}
	fprintf(stderr, "nsplit: unknown command \"%s\"\n", argv[1]);
	usage(stderr);
	return 2;
}
