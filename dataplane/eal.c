/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * EAL bring-up: nsplit's options turned into an EAL argument vector, and the runtime folder
 * removed at the end so that --no-huge runs leave nothing behind in /var/run/dpdk.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_memory.h>

#include "nsplit/eal.h"
#include "nsplit/error.h"
#include "eal_pvt.h"

#define DEFAULT_MEM_MB 256
#define MAX_ARGS 64

static bool eal_up;
static char prefix[64];
static char runtime_dir[PATH_MAX];

bool nsl_eal_ready(void)
{
	return eal_up;
}

const char *nsl_eal_file_prefix(void)
{
	return prefix;
}

/*
 * "0@(2,3,5-7)": lcore 0 may run on every CPU this process may use. Pinned to one CPU, two
 * nsplit processes on one host (memif peers) would both land on its first CPU; on the whole
 * set the kernel spreads them, and threads started later inherit the set (OpenMP's too).
 */
static void lcore0_on_allowed_cpus(char *out, size_t cap)
{
	cpu_set_t set;
	size_t n;
	int i = 0;
	bool first = true;

	if (sched_getaffinity(0, sizeof(set), &set) != 0) {
		snprintf(out, cap, "0@0");
		return;
	}
	n = (size_t)snprintf(out, cap, "0@(");
	while (i < CPU_SETSIZE && n < cap) {
		int j;

		if (!CPU_ISSET(i, &set)) {
			i++;
			continue;
		}
		for (j = i; j + 1 < CPU_SETSIZE && CPU_ISSET(j + 1, &set); j++)
			;
		n += (size_t)snprintf(out + n, cap - n, j > i ? "%s%d-%d" : "%s%d", first ? "" : ",", i, j);
		first = false;
		i = j + 1;
	}
	if (n < cap)
		snprintf(out + n, cap - n, ")");
}

/* Whether the extra EAL arguments choose the lcores themselves (EAL refuses two such options). */
static bool extra_sets_lcores(const struct nsl_eal_conf *c)
{
	for (int i = 0; i < c->extra_argc; i++) {
		const char *a = c->extra_argv[i];

		if (strcmp(a, "-l") == 0 || strcmp(a, "-c") == 0 || strncmp(a, "--lcores", 8) == 0 ||
		    (a[0] == '-' && (a[1] == 'l' || a[1] == 'c') && a[2] != '\0' && a[1] != '-'))
			return true;
	}
	return false;
}

int nsl_eal_init(const struct nsl_eal_conf *c)
{
	static char bufs[3][512];
	char *argv[MAX_ARGS];
	int argc = 0, rc;
	struct timespec ts;

	if (eal_up)
		return nsl_error_set(EALREADY, "EAL is already running in this process");
	if (c->extra_argc < 0 || c->extra_argc > MAX_ARGS - 16)
		return nsl_error_set(E2BIG, "%d extra EAL arguments; at most %d", c->extra_argc, MAX_ARGS - 16);
	clock_gettime(CLOCK_REALTIME, &ts);
	if (c->file_prefix != NULL)
		snprintf(prefix, sizeof(prefix), "%s", c->file_prefix);
	else
		snprintf(prefix, sizeof(prefix), "nsplit-%d-%lx", (int)getpid(), (unsigned long)(ts.tv_nsec ^ ts.tv_sec));
	argv[argc++] = "nsplit";
	argv[argc++] = "--file-prefix";
	argv[argc++] = prefix;
	if (!c->huge) {
		argv[argc++] = "--no-huge";
		/*
		 * One memfd for the whole heap: memif's zero-copy client shares the heap with its server
		 * as a region, which needs a file descriptor for it.
		 */
		argv[argc++] = "--single-file-segments";
	}
	snprintf(bufs[0], sizeof(bufs[0]), "%zu", c->mem_mb ? c->mem_mb : DEFAULT_MEM_MB);
	argv[argc++] = "-m";
	argv[argc++] = bufs[0];
	if (!c->pci)
		argv[argc++] = "--no-pci";
	if (!extra_sets_lcores(c)) {
		argv[argc++] = "--lcores";
		if (c->lcores != NULL)
			snprintf(bufs[1], sizeof(bufs[1]), "%s", c->lcores);
		else
			lcore0_on_allowed_cpus(bufs[1], sizeof(bufs[1]));
		argv[argc++] = bufs[1];
	}
	snprintf(bufs[2], sizeof(bufs[2]), "%s", c->log_level ? c->log_level : "error");
	argv[argc++] = "--log-level";
	argv[argc++] = bufs[2];
	for (int i = 0; i < c->extra_argc; i++)
		argv[argc++] = c->extra_argv[i];
	argv[argc] = NULL;
	rc = rte_eal_init(argc, argv);
	if (rc < 0) {
		rc = rte_errno ? rte_errno : EINVAL;
		return nsl_error_set(rc, "DPDK EAL init failed: %s (prefix %s%s; with --no-huge give enough -m "
				     "memory, and check extra EAL arguments after --)",
				     rte_strerror(rc), prefix, c->huge ? ", hugepages: are they mounted and reserved?" : "");
	}
	snprintf(runtime_dir, sizeof(runtime_dir), "%s", rte_eal_get_runtime_dir());
	eal_up = true;
	return 0;
}

/* EAL leaves its config, telemetry socket and memif sockets' peers here; nothing should remain. */
static void remove_runtime_dir(void)
{
	DIR *d;
	struct dirent *e;
	char path[PATH_MAX + 256];

	if (runtime_dir[0] == '\0' || (d = opendir(runtime_dir)) == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", runtime_dir, e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(runtime_dir);
}

/* EAL's interrupt thread, by the name DPDK 22.11 gives it; 0 if not found. */
static pid_t intr_thread_tid(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	pid_t tid = 0;

	while (d != NULL && tid == 0 && (e = readdir(d)) != NULL) {
		char path[300], comm[32] = "";
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		if (fgets(comm, sizeof(comm), f) != NULL && strncmp(comm, "eal-intr-thread", 15) == 0)
			tid = (pid_t)atoi(e->d_name);
		fclose(f);
	}
	if (d != NULL)
		closedir(d);
	return tid;
}

/* Whether thread tid is asleep (state S: for the interrupt thread, waiting in epoll_wait). */
static bool sleeping(pid_t tid)
{
	char path[64], buf[256];
	const char *p;
	FILE *f;
	bool s = false;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	if ((f = fopen(path, "r")) == NULL)
		return true;	/* gone */
	if (fgets(buf, sizeof(buf), f) != NULL && (p = strrchr(buf, ')')) != NULL)
		s = p[1] == ' ' && p[2] == 'S';
	fclose(f);
	return s;
}

/*
 * rte_eal_cleanup does not stop the interrupt thread, and a PMD may be in a handler there when
 * its port is freed (memif tears its control channel down from it when the peer hangs up):
 * freeing memory under it crashed about one memif run in twenty. DPDK has no call to wait for
 * it, and a barrier of our own (an alarm) registers a source whose removal at cleanup wakes the
 * thread again; so watch the thread until it has sat in epoll_wait for a few milliseconds.
 */
void nsl_eal_quiesce_interrupts(void)
{
	pid_t tid = intr_thread_tid();
	int quiet = 0;

	for (int i = 0; tid != 0 && i < 200 && quiet < 3; i++) {
		quiet = sleeping(tid) ? quiet + 1 : 0;
		usleep(1000);
	}
}

void nsl_eal_cleanup(void)
{
	if (!eal_up)
		return;
	nsl_eal_quiesce_interrupts();
	rte_eal_cleanup();
	remove_runtime_dir();
	eal_up = false;
}

void *nsl_dp_alloc(size_t bytes, size_t align)
{
	void *p;

	if (!eal_up) {
		nsl_error_set(EINVAL, "nsl_dp_alloc before nsl_eal_init");
		return NULL;
	}
	p = rte_malloc("nsl_tensor", bytes ? bytes : 1, align ? align : 64);
	if (p == NULL) {
		nsl_error_set(ENOMEM, "DPDK heap cannot give %zu bytes for a tensor that travels; start with a "
			      "larger -m (nsplit --dp-mem MiB)", bytes);
		return NULL;
	}
	/*
	 * Zeroed here rather than by rte_zmalloc, which skips memory it has never handed out: with
	 * --no-huge those pages are not mapped yet, and the first frame into each would take a page
	 * fault in the middle of a transfer.
	 */
	memset(p, 0, bytes ? bytes : 1);
	return p;
}

void nsl_dp_free(void *p)
{
	rte_free(p);
}

bool nsl_dp_is_dma_memory(const void *p, size_t bytes)
{
	const struct rte_memseg_list *a, *b;

	if (!eal_up || p == NULL)
		return false;
	a = rte_mem_virt2memseg_list(p);
	b = rte_mem_virt2memseg_list((const char *)p + (bytes ? bytes - 1 : 0));
	return a != NULL && a == b && !a->external;
}

static void *dp_alloc(void *ctx, size_t size, size_t align)
{
	(void)ctx;
	return nsl_dp_alloc(size, align);
}

static void dp_free(void *ctx, void *p)
{
	(void)ctx;
	nsl_dp_free(p);
}

const struct nsl_allocator nsl_allocator_dp = { .name = "dpdk", .alloc = dp_alloc, .free = dp_free };

int nsl_eal_thread_register(void)
{
	if (rte_thread_register() < 0)
		return nsl_error_set(rte_errno, "this thread cannot join DPDK: %s (more threads than RTE_MAX_LCORE?)",
				     rte_strerror(rte_errno));
	return 0;
}

void nsl_eal_thread_unregister(void)
{
	rte_thread_unregister();
}
