/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Cluster files: the peers of a job that runs as separate processes or hosts, read with DPDK's
 * cfgfile library (INI; `;` starts a comment).
 *
 *   [job]                 ; options every peer's `nsplit train` takes, without the dashes:
 *   model = mlp:784-512-256-10
 *   schedule = 1f1b       ; `key =` or `key = true` gives a flag (no-eval = true)
 *   [peer0]               ; one section per peer, peer0 .. peerN-1; N is the job's peer count
 *   port = net_af_packet0,iface=veth0   ; one port reaching every peer (a bridge, a switch), or
 *   port-next = ...       ; point-to-point ports: the one to peer i + 1 and the one from i - 1
 *   port-prev = ...       ; (memif: a connection per pair; with 2 peers port-next alone)
 *   port-to-2 = ...       ; or a mesh: a point-to-point port to every other peer (port-to-Q for
 *                         ;   each Q), which Fast N-split needs; at most 9 peers
 *   mac = 02:00:00:00:00:01   ; this peer's MAC (default: broadcast to it)
 *   ip = 10.77.0.1        ; its IPv4 address (default 10.77.0.<i + 1>)
 *   mem-limit = 2G        ; its memory budget (default none)
 *   speed = 1.5           ; its compute speed relative to the others (nsplit plan; default 1)
 *   host = box1           ; the host it runs on (default: one of its own); peers on one host
 *   cores = 8             ;   share its cores (every peer naming the host gives the same count)
 *   [link0-1]             ; the link between peers 0 and 1, both ways (default: the cost file's)
 *   bandwidth-gbps = 25   ; Gbit/s
 *   latency-us = 12       ; microseconds
 * (speed, host, cores and links are for nsplit plan, nsplit simulate and --split auto)
 */
#ifndef NSL_CLUSTER_H
#define NSL_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#include "plan.h"

#define NSL_CLUSTER_VALUE_LEN 256
/* A mesh gives each peer a port to every other, and a link drives at most 8 ports. */
#define NSL_CLUSTER_MESH_MAX 9

struct nsl_cluster_peer {
	char port[NSL_CLUSTER_VALUE_LEN];
	char port_next[NSL_CLUSTER_VALUE_LEN];
	char port_prev[NSL_CLUSTER_VALUE_LEN];
	char port_to[NSL_CLUSTER_MESH_MAX][NSL_CLUSTER_VALUE_LEN]; /* a mesh: port-to-Q */
	bool mesh;                /* any port-to-Q given */
	uint8_t mac[6];
	bool has_mac;
	uint32_t ip;              /* host order; 0 = default */
	uint64_t mem_limit;       /* bytes; 0 = none */
	double speed;             /* relative compute speed, for nsplit plan (default 1) */
	char host[NSL_CLUSTER_VALUE_LEN];
	int cores;                /* its host's cores (0: not given) */
};

struct nsl_cluster {
	int npeers;
	struct nsl_cluster_peer *peers;
	int host[64];             /* each peer's host, numbered from 0 */
	int host_cores[64];       /* each host's cores (0: a core per peer) */
	double *link_bw;          /* npeers x npeers, bytes/s (0: not given) */
	double *link_lat;         /* npeers x npeers, seconds (0: not given) */
	int job_argc;             /* [job] as "--key=value" arguments for the option parser */
	char **job_argv;          /* job_argv[0] is a program name, as getopt wants */
};

/* Its hosts and links, for the planner and the simulator (plan.h). */
struct nsl_topology nsl_cluster_topology(const struct nsl_cluster *c);

/* 0, or a negative errno with a message naming the file, section and key. Free with nsl_cluster_free. */
int nsl_cluster_load(const char *path, struct nsl_cluster *out);
void nsl_cluster_free(struct nsl_cluster *c);

/*
 * This process's rank: `given` (--rank, may be NULL), else SLURM_PROCID, OMPI_COMM_WORLD_RANK or
 * PMI_RANK, as srun, mpirun and PMI launchers set them. 0 or -EINVAL with a message.
 */
int nsl_cluster_rank(const char *given, int npeers, int *rank);

#endif
