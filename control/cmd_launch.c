/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * `nsplit launch --peers N --transport memif [train options]`: N local processes, one peer each,
 * in a ring of memif connections (peer i is the server of the link to i + 1 and the client of
 * the link from i - 1), or under Fast N-split, where every role messages every other, a mesh (a
 * connection per pair of peers, the lower-numbered one serving). It writes the cluster file,
 * starts `nsplit train --cluster F --rank i` for every i, forwards signals, and when one peer
 * fails gives the others a few seconds to stop on their own (they should, within 2) before it
 * stops them.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nsplit/error.h"
#include "cli.h"
#include "cluster.h"
#include "commands.h"
#include "progress.h"

#define MAX_PEERS 64
#define GRACE_S 5

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
	got_signal = sig;
}

static void usage(FILE *f)
{
	fputs("usage: nsplit launch --peers N [--transport memif] [train options] [-- EAL args]\n"
	      "Run an N-split job as N processes on this host, one peer each, joined by memif:\n"
	      "the multi-process counterpart of `nsplit train --peers N`. Every other option is\n"
	      "`nsplit train`'s (see nsplit train --help) and goes to every peer; peer 0 evaluates\n"
	      "and writes --save-weights and --metrics.\n"
	      "  --peers N          processes (2 to 64; 2 to 9 with --schedule fast, whose peers\n"
	      "                     all talk to each other: a memif link between every two)\n"
	      "  --transport memif  how they talk (memif, the only one for local processes)\n"
	      "  --keep DIR         write the cluster file and memif sockets in DIR and keep them\n"
	      "                     (default a temporary folder, removed at the end)\n",
	      f);
}

static int write_cluster(const char *dir, int n, bool mesh)
{
	char path[4200];
	FILE *f;

	snprintf(path, sizeof(path), "%s/cluster.ini", dir);
	if ((f = fopen(path, "w")) == NULL)
		return nsl_error_set(errno, "cannot write %s: %s", path, strerror(errno));
	fprintf(f, "; written by nsplit launch: %d peers in a %s of memif connections\n[job]\n", n, mesh ? "mesh" : "ring");
	for (int i = 0; i < n; i++) {
		fprintf(f, "[peer%d]\n", i);
		if (mesh) {
			for (int q = 0, k = 0; q < n; q++)
				if (q != i)
					fprintf(f, "port-to-%d = net_memif%d,role=%s,socket=%s/link-%d-%d.sock,socket-abstract=no\n",
						q, k++, i < q ? "server" : "client", dir, i < q ? i : q, i < q ? q : i);
		} else if (n == 2) {
			fprintf(f, "port-next = net_memif0,role=%s,socket=%s/link-0.sock,socket-abstract=no\n",
				i == 0 ? "server" : "client", dir);
		} else {
			fprintf(f, "port-next = net_memif0,role=server,socket=%s/link-%d.sock,socket-abstract=no\n"
				   "port-prev = net_memif1,role=client,socket=%s/link-%d.sock,socket-abstract=no\n",
				dir, i, dir, (i + n - 1) % n);
		}
	}
	if (fclose(f) != 0)
		return nsl_error_set(errno, "cannot write %s: %s", path, strerror(errno));
	return 0;
}

/* Whether the train options ask for Fast N-split, whose roles message each other all to all. */
static bool wants_fast(int argc, char **argv)
{
	bool fast = false;

	for (int i = 0; i < argc && strcmp(argv[i], "--") != 0; i++) {
		if (strcmp(argv[i], "--schedule") == 0 && i + 1 < argc)
			fast = strcmp(argv[++i], "fast") == 0;
		else if (strncmp(argv[i], "--schedule=", 11) == 0)
			fast = strcmp(argv[i] + 11, "fast") == 0;
	}
	return fast;
}

static pid_t spawn(const char *cluster, int rank, int argc, char **argv)
{
	char rank_s[16];
	const char **args = calloc((size_t)argc + 8, sizeof(char *));
	int k = 0;
	pid_t pid;

	if (args == NULL)
		return -1;
	snprintf(rank_s, sizeof(rank_s), "%d", rank);
	args[k++] = "nsplit";
	args[k++] = "train";
	args[k++] = "--cluster";
	args[k++] = cluster;
	args[k++] = "--rank";
	args[k++] = rank_s;
	/* One progress line on the terminal, peer 0's: the others would overwrite it. */
	if (rank != 0)
		args[k++] = "--no-progress";
	for (int i = 0; i < argc; i++)
		args[k++] = argv[i];
	pid = fork();
	if (pid == 0) {
		execv("/proc/self/exe", (char *const *)args);
		fprintf(stderr, "nsplit launch: cannot start peer %d: %s\n", rank, strerror(errno));
		_exit(127);
	}
	free(args);
	return pid;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	if (remove(path) < 0)
		fprintf(stderr, "nsplit launch: could not remove %s: %s\n", path, strerror(errno));
	return 0;
}

static void remove_tree(const char *dir)
{
	nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A peer that was killed leaves its DPDK runtime folder behind (nsplit-<pid>-<random>). */
static void clean_runtime(pid_t pid)
{
	char pattern[128];
	glob_t g;

	snprintf(pattern, sizeof(pattern), "/var/run/dpdk/nsplit-%d-*", (int)pid);
	if (glob(pattern, 0, NULL, &g) != 0)
		return;
	for (size_t i = 0; i < g.gl_pathc; i++)
		remove_tree(g.gl_pathv[i]);
	globfree(&g);
}

/* Wait for every peer; after the first failure, give the rest GRACE_S to stop on their own. */
static int wait_peers(pid_t *pids, int n)
{
	int left = n, rc = 0, first = -1, sig_sent = 0;
	double failed_at = 0;

	while (left > 0) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);

		if (pid > 0) {
			for (int i = 0; i < n; i++)
				if (pids[i] == pid) {
					int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);

					pids[i] = 0;
					left--;
					clean_runtime(pid);
					if (code != 0 && first < 0) {
						first = i;
						rc = code;
						failed_at = nsl_now();
						if (WIFSIGNALED(status))
							fprintf(stderr, "nsplit launch: peer %d was killed by signal %d\n", i,
								WTERMSIG(status));
					}
				}
			continue;
		}
		if (got_signal && sig_sent == 0) {
			for (int i = 0; i < n; i++)
				if (pids[i] > 0)
					kill(pids[i], got_signal);
			sig_sent = 1;
		}
		if (first >= 0 && nsl_now() - failed_at > GRACE_S && sig_sent < 2) {
			fprintf(stderr, "nsplit launch: peers still running %d s after peer %d failed; stopping them\n",
				GRACE_S, first);
			for (int i = 0; i < n; i++)
				if (pids[i] > 0)
					kill(pids[i], SIGKILL);
			sig_sent = 2;
		}
		usleep(20000);
	}
	return rc;
}

int nsl_cmd_launch(int argc, char **argv)
{
	int n = 0, rc, pass = 0;
	bool mesh;
	const char *transport = "memif", *keep = NULL;
	char dir[4096], cluster[4200];
	char **rest = calloc((size_t)argc + 1, sizeof(char *));
	pid_t pids[MAX_PEERS] = { 0 };
	struct sigaction sa = { .sa_handler = on_signal };

	if (rest == NULL)
		return 1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--") == 0) {
			for (; i < argc; i++)
				rest[pass++] = argv[i];
			break;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			free(rest);
			return 0;
		}
		if ((strcmp(a, "--peers") == 0 || strcmp(a, "--transport") == 0 || strcmp(a, "--keep") == 0) &&
		    i + 1 >= argc) {
			fprintf(stderr, "nsplit launch: %s needs a value\n", a);
			free(rest);
			return 2;
		}
		if (strcmp(a, "--peers") == 0) {
			if (nsl_cli_int("peers", argv[++i], 2, MAX_PEERS, &n) < 0) {
				free(rest);
				return nsl_cli_fail("launch") + 1;
			}
		} else if (strcmp(a, "--transport") == 0) {
			transport = argv[++i];
		} else if (strcmp(a, "--keep") == 0) {
			keep = argv[++i];
		} else if (strcmp(a, "--cluster") == 0 || strcmp(a, "--rank") == 0) {
			fprintf(stderr, "nsplit launch: %s is the launcher's to give; run nsplit train --cluster yourself "
					"for a cluster file of your own\n", a);
			free(rest);
			return 2;
		} else {
			rest[pass++] = argv[i];
		}
	}
	if (n < 2 || strcmp(transport, "memif") != 0) {
		fprintf(stderr, "nsplit launch: %s\n",
			n < 2 ? "give --peers N (2 or more)"
			      : "--transport: memif is the transport between local processes (for net_ring, all peers "
				"in one process, use nsplit train --peers N)");
		free(rest);
		return 2;
	}
	mesh = wants_fast(pass, rest);
	if (mesh && n > NSL_CLUSTER_MESH_MAX) {
		fprintf(stderr, "nsplit launch: Fast N-split over memif needs a connection between every two peers, and a "
				"peer drives at most %d: give --peers %d or fewer\n", NSL_CLUSTER_MESH_MAX - 1,
			NSL_CLUSTER_MESH_MAX);
		free(rest);
		return 2;
	}
	if (keep != NULL) {
		snprintf(dir, sizeof(dir), "%s", keep);
		if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
			fprintf(stderr, "nsplit launch: cannot make %s: %s\n", dir, strerror(errno));
			free(rest);
			return 1;
		}
	} else {
		snprintf(dir, sizeof(dir), "%s/nsplit-launch-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
		if (mkdtemp(dir) == NULL) {
			fprintf(stderr, "nsplit launch: cannot make a temporary folder: %s\n", strerror(errno));
			free(rest);
			return 1;
		}
	}
	snprintf(cluster, sizeof(cluster), "%s/cluster.ini", dir);
	if (write_cluster(dir, n, mesh) < 0) {
		free(rest);
		return nsl_cli_fail("launch");
	}
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	fflush(stdout);
	for (int i = 0; i < n; i++)
		if ((pids[i] = spawn(cluster, i, pass, rest)) < 0) {
			fprintf(stderr, "nsplit launch: cannot start peer %d: %s\n", i, strerror(errno));
			for (int k = 0; k < i; k++)
				kill(pids[k], SIGTERM);
			n = i;
			break;
		}
	rc = wait_peers(pids, n);
	if (n < (int)(sizeof(pids) / sizeof(pids[0])) && pids[n] < 0 && rc == 0)
		rc = 1;
	if (keep == NULL)
		remove_tree(dir);
	free(rest);
	return rc;
}
