/* SPDX-License-Identifier: BSD-3-Clause */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cfgfile.h>

#include "nsplit/error.h"
#include "cli.h"
#include "cluster.h"

#define MAX_PEERS 64

static int copy_value(const char *path, const char *sec, const char *key, const char *v, char *dst)
{
	if (strlen(v) >= NSL_CLUSTER_VALUE_LEN)
		return nsl_error_set(EINVAL, "%s: [%s] %s is longer than %d characters", path, sec, key,
				     NSL_CLUSTER_VALUE_LEN - 1);
	strcpy(dst, v);
	return 0;
}

/* port-to-Q: the point-to-point port to peer Q of a mesh. */
static int parse_port_to(const char *path, const char *sec, int self, int npeers, const char *k, const char *v,
			 struct nsl_cluster_peer *p)
{
	int q, used;
	char tail;

	if (sscanf(k, "port-to-%d%n%c", &q, &used, &tail) != 1 || q < 0 || q >= npeers || q == self)
		return nsl_error_set(EINVAL, "%s: [%s] %s: a mesh names its ports port-to-Q, Q another peer (0 to %d)", path,
				     sec, k, npeers - 1);
	if (npeers > NSL_CLUSTER_MESH_MAX)
		return nsl_error_set(EINVAL, "%s: [%s] %s: a mesh joins at most %d peers (a port to each other one, and a "
				     "peer drives at most %d ports); for %d, give each peer one port reaching all", path,
				     sec, k, NSL_CLUSTER_MESH_MAX, NSL_CLUSTER_MESH_MAX - 1, npeers);
	p->mesh = true;
	return copy_value(path, sec, k, v, p->port_to[q]);
}

static int parse_peer(const char *path, struct rte_cfgfile *cfg, const char *sec, int self, int npeers,
		      struct nsl_cluster_peer *p)
{
	struct rte_cfgfile_entry e[32];
	int n = rte_cfgfile_section_entries(cfg, sec, e, 32), rc = 0;

	if (n < 0)
		return nsl_error_set(EINVAL, "%s: cannot read section [%s]", path, sec);
	for (int i = 0; i < n && rc == 0; i++) {
		const char *k = e[i].name, *v = e[i].value;
		unsigned m[6];
		struct in_addr a;
		char tail;

		if (strcmp(k, "port") == 0)
			rc = copy_value(path, sec, k, v, p->port);
		else if (strcmp(k, "port-next") == 0)
			rc = copy_value(path, sec, k, v, p->port_next);
		else if (strcmp(k, "port-prev") == 0)
			rc = copy_value(path, sec, k, v, p->port_prev);
		else if (strncmp(k, "port-to-", 8) == 0)
			rc = parse_port_to(path, sec, self, npeers, k, v, p);
		else if (strcmp(k, "mac") == 0) {
			if (sscanf(v, "%x:%x:%x:%x:%x:%x%c", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5], &tail) != 6)
				rc = nsl_error_set(EINVAL, "%s: [%s] mac = %s is not a MAC address (02:00:00:00:00:01)", path,
						   sec, v);
			for (int b = 0; b < 6 && rc == 0; b++)
				p->mac[b] = (uint8_t)m[b];
			p->has_mac = rc == 0;
		} else if (strcmp(k, "ip") == 0) {
			if (inet_pton(AF_INET, v, &a) != 1)
				rc = nsl_error_set(EINVAL, "%s: [%s] ip = %s is not an IPv4 address", path, sec, v);
			p->ip = ntohl(a.s_addr);
		} else if (strcmp(k, "speed") == 0) {
			char *end;

			p->speed = strtod(v, &end);
			if (end == v || *end || !(p->speed > 0 && p->speed < 1e6))
				rc = nsl_error_set(EINVAL, "%s: [%s] speed = %s is not a positive number", path, sec, v);
		} else if (strcmp(k, "mem-limit") == 0) {
			if ((rc = nsl_cli_bytes("mem-limit", v, &p->mem_limit)) < 0)
				rc = nsl_error_prefix(rc, "%s: [%s]", path, sec);
		} else if (strcmp(k, "host") == 0) {
			rc = copy_value(path, sec, k, v, p->host);
		} else if (strcmp(k, "cores") == 0) {
			if ((rc = nsl_cli_int("cores", v, 1, 4096, &p->cores)) < 0)
				rc = nsl_error_prefix(rc, "%s: [%s]", path, sec);
		} else {
			rc = nsl_error_set(EINVAL, "%s: [%s] has an unknown key %s (port, port-next, port-prev, port-to-Q, mac, "
					   "ip, mem-limit, speed, host, cores)", path, sec, k);
		}
	}
	if (n == 32 && rc == 0)
		rc = nsl_error_set(EINVAL, "%s: [%s] has 32 keys or more; a peer takes at most %d", path, sec, 31);
	if (p->speed == 0)
		p->speed = 1;
	if (rc == 0 && !*p->port && !*p->port_next && !p->mesh)
		rc = nsl_error_set(EINVAL, "%s: [%s] names no port: give port = DEVARGS, port-next and port-prev, or "
				   "port-to-Q for every other peer Q", path, sec);
	if (rc == 0 && (!!*p->port + !!(*p->port_next || *p->port_prev) + p->mesh) > 1)
		rc = nsl_error_set(EINVAL, "%s: [%s] mixes port, port-next/port-prev and port-to-Q; give one port reaching "
				   "every peer, one per neighbour, or one to every other peer, not several", path, sec);
	for (int q = 0; rc == 0 && p->mesh && q < npeers; q++)
		if (q != self && !*p->port_to[q])
			rc = nsl_error_set(EINVAL, "%s: [%s] is in a mesh but has no port-to-%d; a mesh needs a port to every "
					   "other peer", path, sec, q);
	return rc;
}

/* Peers naming one host share it; each host's cores, the same wherever given. */
static int number_hosts(const char *path, struct nsl_cluster *c)
{
	int nhosts = 0;

	for (int i = 0; i < c->npeers; i++) {
		struct nsl_cluster_peer *p = &c->peers[i];
		int h = -1;

		for (int j = 0; j < i && h < 0 && *p->host; j++)
			if (strcmp(c->peers[j].host, p->host) == 0)
				h = c->host[j];
		if (h < 0) {
			h = nhosts++;
			c->host_cores[h] = p->cores;
		} else if (p->cores && c->host_cores[h] && p->cores != c->host_cores[h]) {
			return nsl_error_set(EINVAL, "%s: [peer%d] says host %s has %d cores, another peer on it says %d", path,
					     i, p->host, p->cores, c->host_cores[h]);
		} else if (p->cores) {
			c->host_cores[h] = p->cores;
		}
		c->host[i] = h;
	}
	return 0;
}

/* [linkA-B] sections: a link's bandwidth and latency, both ways. */
static int parse_links(const char *path, struct rte_cfgfile *cfg, struct nsl_cluster *c)
{
	const int n = c->npeers, nsec = rte_cfgfile_num_sections(cfg, "", 0);
	char (*names)[CFG_NAME_LEN] = calloc((size_t)(nsec > 0 ? nsec : 1), sizeof(*names));
	char *ptrs[512];
	int rc = 0;

	c->link_bw = calloc((size_t)(n * n), sizeof(double));
	c->link_lat = calloc((size_t)(n * n), sizeof(double));
	if (names == NULL || c->link_bw == NULL || c->link_lat == NULL || nsec > 512) {
		free(names);
		return nsl_error_set(ENOMEM, "%s: out of memory for its sections", path);
	}
	for (int i = 0; i < nsec; i++)
		ptrs[i] = names[i];
	rte_cfgfile_sections(cfg, ptrs, nsec);
	for (int i = 0; i < nsec && rc == 0; i++) {
		struct rte_cfgfile_entry e[4];
		int a, b, ne, used;
		char tail;

		if (strncmp(names[i], "link", 4) != 0)
			continue;
		if (sscanf(names[i], "link%d-%d%n%c", &a, &b, &used, &tail) != 2 || a < 0 || b < 0 || a >= n || b >= n ||
		    a == b) {
			rc = nsl_error_set(EINVAL, "%s: [%s] is not [linkA-B] for two of peers 0 to %d", path, names[i], n - 1);
			break;
		}
		ne = rte_cfgfile_section_entries(cfg, names[i], e, 4);
		for (int k = 0; k < ne && rc == 0; k++) {
			char *end;
			double v = strtod(e[k].value, &end);

			if (end == e[k].value || *end || !(v > 0 && v < 1e9))
				rc = nsl_error_set(EINVAL, "%s: [%s] %s = %s is not a positive number", path, names[i], e[k].name,
						   e[k].value);
			else if (strcmp(e[k].name, "bandwidth-gbps") == 0)
				c->link_bw[a * n + b] = c->link_bw[b * n + a] = v * 1e9 / 8;
			else if (strcmp(e[k].name, "latency-us") == 0)
				c->link_lat[a * n + b] = c->link_lat[b * n + a] = v * 1e-6;
			else
				rc = nsl_error_set(EINVAL, "%s: [%s] has an unknown key %s (bandwidth-gbps, latency-us)", path,
						   names[i], e[k].name);
		}
	}
	free(names);
	return rc;
}

/* [job] entries as arguments: `key = value` is --key=value, `key =` or `key = true` a flag. */
static int parse_job(const char *path, struct rte_cfgfile *cfg, struct nsl_cluster *c)
{
	int n = rte_cfgfile_has_section(cfg, "job") ? rte_cfgfile_section_num_entries(cfg, "job") : 0;
	struct rte_cfgfile_entry *e = calloc((size_t)n + 1, sizeof(*e));

	c->job_argv = calloc((size_t)n + 2, sizeof(char *));
	if (e == NULL || c->job_argv == NULL) {
		free(e);
		return nsl_error_set(ENOMEM, "out of memory");
	}
	c->job_argv[c->job_argc++] = strdup("cluster");
	if (n > 0)
		n = rte_cfgfile_section_entries(cfg, "job", e, n);
	for (int i = 0; i < n; i++) {
		const char *k = e[i].name, *v = e[i].value;
		size_t len = strlen(k) + strlen(v) + 4;
		char *arg;

		if (strcmp(k, "peers") == 0 || strcmp(k, "rank") == 0 || strcmp(k, "cluster") == 0) {
			int rc = nsl_error_set(EINVAL, "%s: [job] %s: %s; remove it", path, k,
					       strcmp(k, "rank") == 0 ? "each process is given its own (--rank, or the launcher's)"
								      : "the cluster file's peer sections say this");

			free(e);
			return rc;
		}
		if ((arg = malloc(len)) == NULL) {
			free(e);
			return nsl_error_set(ENOMEM, "out of memory");
		}
		if (*v == 0 || strcmp(v, "true") == 0)
			snprintf(arg, len, "--%s", k);
		else
			snprintf(arg, len, "--%s=%s", k, v);
		c->job_argv[c->job_argc++] = arg;
	}
	free(e);
	return 0;
}

int nsl_cluster_load(const char *path, struct nsl_cluster *c)
{
	struct rte_cfgfile *cfg;
	int rc = 0;

	memset(c, 0, sizeof(*c));
	if ((cfg = rte_cfgfile_load(path, 0)) == NULL)
		return nsl_error_set(EINVAL, "--cluster %s: cannot read it as an INI file (missing, unreadable or malformed)",
				     path);
	c->npeers = rte_cfgfile_num_sections(cfg, "peer", 4);
	if (c->npeers < 2 || c->npeers > MAX_PEERS) {
		rc = nsl_error_set(EINVAL, "%s: %d [peerI] sections; a job needs 2 to %d", path, c->npeers, MAX_PEERS);
		goto out;
	}
	if ((c->peers = calloc((size_t)c->npeers, sizeof(*c->peers))) == NULL) {
		rc = nsl_error_set(ENOMEM, "out of memory");
		goto out;
	}
	for (int i = 0; i < c->npeers && rc == 0; i++) {
		char sec[16];

		snprintf(sec, sizeof(sec), "peer%d", i);
		if (!rte_cfgfile_has_section(cfg, sec))
			rc = nsl_error_set(EINVAL, "%s: %d peer sections but no [%s]; name them peer0 to peer%d", path,
					   c->npeers, sec, c->npeers - 1);
		else
			rc = parse_peer(path, cfg, sec, i, c->npeers, &c->peers[i]);
	}
	for (int i = 1; i < c->npeers && rc == 0; i++)
		if (c->peers[i].mesh != c->peers[0].mesh)
			rc = nsl_error_set(EINVAL, "%s: [peer%d] %s a mesh (port-to-Q) and [peer%d] %s; in a mesh every peer "
					   "has a port to every other", path, 0, c->peers[0].mesh ? "is in" : "is not in", i,
					   c->peers[i].mesh ? "is" : "is not");
	if (rc == 0)
		rc = number_hosts(path, c);
	if (rc == 0)
		rc = parse_links(path, cfg, c);
	if (rc == 0)
		rc = parse_job(path, cfg, c);
out:
	rte_cfgfile_close(cfg);
	if (rc < 0)
		nsl_cluster_free(c);
	return rc;
}

struct nsl_topology nsl_cluster_topology(const struct nsl_cluster *c)
{
	return (struct nsl_topology){ .host = c->host, .host_cores = c->host_cores, .link_bw = c->link_bw,
				      .link_lat = c->link_lat };
}

void nsl_cluster_free(struct nsl_cluster *c)
{
	for (int i = 0; i < c->job_argc; i++)
		free(c->job_argv[i]);
	free(c->job_argv);
	free(c->peers);
	free(c->link_bw);
	free(c->link_lat);
	memset(c, 0, sizeof(*c));
}

int nsl_cluster_rank(const char *given, int npeers, int *rank)
{
	static const char *const vars[] = { "SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "PMI_RANK" };
	const char *from = "--rank";
	int rc;

	for (int i = 0; given == NULL && i < 3; i++)
		if ((given = getenv(vars[i])) != NULL)
			from = vars[i];
	if (given == NULL)
		return nsl_error_set(EINVAL, "--cluster needs this peer's rank: give --rank R, or launch with srun or "
				     "mpirun (SLURM_PROCID, OMPI_COMM_WORLD_RANK or PMI_RANK)");
	rc = nsl_cli_int("rank", given, 0, npeers - 1, rank);
	return rc < 0 ? nsl_error_prefix(rc, "rank from %s (the cluster file has %d peers)", from, npeers) : 0;
}
