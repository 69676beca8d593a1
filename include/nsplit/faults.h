/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Seeded fault injection on receive, for any port: a DPDK receive callback that drops,
 * duplicates, reorders and corrupts frames before nsplit sees them, the same way on every PMD and
 * the same way on every run with the same seed and the same frames.
 *
 * The spec is nsplit's --faults option: "drop=P,dup=P,reorder=W,corrupt=P,seed=S", every key
 * optional. P is a percentage of frames (0 to 100, fractions allowed). reorder=W holds one frame
 * in eight back and lets it go after 1 to W later frames (or when the port is idle). A corrupted
 * frame is a copy of the frame with one bit flipped at a random place, so the sender's memory
 * (which a frame may point into, on net_ring) is never touched.
 */
#ifndef NSPLIT_FAULTS_H
#define NSPLIT_FAULTS_H

#include <stdint.h>

struct nsl_port;

struct nsl_faults {
	double drop, dup, corrupt;  /* percent */
	uint32_t reorder;           /* window in frames (0 = none) */
	uint64_t seed;
};

struct nsl_faults_stats {
	uint64_t seen, dropped, duplicated, reordered, corrupted;
};

/* Parse a spec as above into f (zeroed first). 0 or -EINVAL with a message naming the bad key. */
int nsl_faults_parse(const char *spec, struct nsl_faults *f);

struct nsl_fault_injector;

/*
 * Install f on the receive queue of `port`, first in its list of receive callbacks
 * (rte_eth_add_first_rx_callback), so that callbacks added with rte_eth_add_rx_callback, such as
 * a capture (nsplit/capture.h), see the frames after the faults, whenever they were installed.
 * NULL with a message. Remove with nsl_faults_remove, only when no thread is polling the port
 * (DPDK's rule for removing receive callbacks).
 */
struct nsl_fault_injector *nsl_faults_install(struct nsl_port *port, const struct nsl_faults *f);

/* Remove, free held frames, free (NULL-safe). */
void nsl_faults_remove(struct nsl_fault_injector *fi);

void nsl_faults_get_stats(const struct nsl_fault_injector *fi, struct nsl_faults_stats *out);

#endif
