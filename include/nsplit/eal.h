/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * DPDK's Environment Abstraction Layer, brought up from nsplit's own options.
 *
 * The defaults need no hugepages and no NIC: --no-huge with as much memory as the run asks for,
 * a --file-prefix of its own (so runs on one host never share a runtime folder), no PCI scan
 * unless asked. Two processes started this way can still talk over memif. Extra EAL arguments
 * (given after `--` on nsplit's command line) are passed through last, so they win.
 *
 * Memory that travels (tensors sent or received through a link) must come from DPDK's main heap:
 * allocate it with nsl_dp_alloc. A NIC can DMA from it, and memif's zero-copy mode sees only that
 * memory (in DPDK 22.11, memory added with rte_extmem_register would be sent as garbage).
 */
#ifndef NSPLIT_EAL_H
#define NSPLIT_EAL_H

#include <stdbool.h>
#include <stddef.h>

#include "nsplit/alloc.h"

struct nsl_eal_conf {
	size_t mem_mb;            /* memory for DPDK's heap in MiB (0 = 256) */
	bool huge;                /* use hugepages instead of --no-huge */
	bool pci;                 /* scan the PCI bus (real NICs); default --no-pci */
	const char *lcores;       /* EAL --lcores map (NULL = lcore 0 on every CPU this process may use;
				     none at all when the extra arguments give -l, -c or --lcores) */
	const char *file_prefix;  /* NULL = "nsplit-<pid>-<random>" */
	const char *log_level;    /* EAL --log-level (NULL = "error", so tests stay quiet) */
	int extra_argc;           /* passed through after nsplit's own arguments */
	char *const *extra_argv;
};

/*
 * Start EAL once per process. 0 or a negative errno with a message (what EAL refused and how to
 * fix it). Calling it again after success returns -EALREADY.
 */
int nsl_eal_init(const struct nsl_eal_conf *c);

/* Whether nsl_eal_init has succeeded in this process. */
bool nsl_eal_ready(void);

/* The --file-prefix in use ("" before nsl_eal_init). */
const char *nsl_eal_file_prefix(void);

/*
 * Stop EAL and remove its runtime folder (/var/run/dpdk/<prefix> as root). Call after every port
 * is closed. NULL-safe in spirit: does nothing when EAL is not up.
 */
void nsl_eal_cleanup(void);

/*
 * Memory that travels: `bytes` from DPDK's main heap, aligned to a cache line (or `align`, a
 * power of two), zeroed. NULL with a message (naming the bytes asked and the -m to give) when the
 * heap is full. Free with nsl_dp_free (NULL-safe).
 */
void *nsl_dp_alloc(size_t bytes, size_t align);
void nsl_dp_free(void *p);

/* nsl_dp_alloc as an allocator, for stages whose outputs, gradients and parameters travel. */
extern const struct nsl_allocator nsl_allocator_dp;

/*
 * A thread that is not an EAL lcore gives itself an lcore id (its own mempool caches) before it
 * polls a link, and gives it back before it ends. 0 or a negative errno with a message.
 */
int nsl_eal_thread_register(void);
void nsl_eal_thread_unregister(void);

/* Whether [p, p + bytes) lies in DPDK's main heap, as tensors that travel must. */
bool nsl_dp_is_dma_memory(const void *p, size_t bytes);

#endif
