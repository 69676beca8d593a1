/* SPDX-License-Identifier: BSD-3-Clause */
/* The /nsplit/ telemetry commands and the registry of live links they read (see nsplit/telemetry.h). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <rte_common.h>
#include <rte_eal.h>
#include <rte_spinlock.h>
#include <rte_telemetry.h>

#include "nsplit/eal.h"
#include "nsplit/error.h"
#include "nsplit/link.h"
#include "nsplit/telemetry.h"
#include "nsplit/wire.h"
#include "link_pvt.h"
#include "telemetry_pvt.h"

#define SOCKET_NAME "dpdk_telemetry.v2"

/*
 * Taken by nsl_link_create and nsl_link_free (never on a data path) and by the telemetry thread
 * for the time it copies one link's counters, so a link is never freed under a reader.
 */
static rte_spinlock_t reg_lock = RTE_SPINLOCK_INITIALIZER;
static struct nsl_link *reg[NSL_TELEMETRY_MAX_LINKS];
static unsigned int nreg;

void telemetry_link_add(struct nsl_link *l)
{
	rte_spinlock_lock(&reg_lock);
	if (nreg < NSL_TELEMETRY_MAX_LINKS)
		reg[nreg++] = l;
	rte_spinlock_unlock(&reg_lock);
}

void telemetry_link_remove(struct nsl_link *l)
{
	rte_spinlock_lock(&reg_lock);
	for (unsigned int i = 0; i < nreg; i++)
		if (reg[i] == l) {
			/* Keep creation order, which /nsplit/links shows. */
			memmove(&reg[i], &reg[i + 1], (nreg - i - 1) * sizeof(reg[0]));
			nreg--;
			break;
		}
	rte_spinlock_unlock(&reg_lock);
}

/* Under reg_lock: the first live link whose self id is `self`. */
static struct nsl_link *find(uint16_t self)
{
	for (unsigned int i = 0; i < nreg; i++)
		if (reg[i]->c.self == self)
			return reg[i];
	return NULL;
}

/* One decimal id from 0 to 65535 at *s, ended by `end` ('\0' or ','); *s moves past the end. */
static bool parse_id(const char **s, char end, uint16_t *out)
{
	const char *p = *s;
	uint32_t v = 0;

	if (p == NULL || *p < '0' || *p > '9')
		return false;
	for (; *p >= '0' && *p <= '9'; p++) {
		v = v * 10 + (uint32_t)(*p - '0');
		if (v > UINT16_MAX)
			return false;
	}
	if (*p != end)
		return false;
	*s = end != '\0' ? p + 1 : p;
	*out = (uint16_t)v;
	return true;
}

static int cmd_links(const char *cmd, const char *params, struct rte_tel_data *d)
{
	(void)cmd;
	if (params != NULL && params[0] != '\0')
		return -EINVAL;
	rte_tel_data_start_array(d, RTE_TEL_INT_VAL);
	rte_spinlock_lock(&reg_lock);
	for (unsigned int i = 0; i < nreg; i++)
		rte_tel_data_add_array_int(d, reg[i]->c.self);
	rte_spinlock_unlock(&reg_lock);
	return 0;
}

static int cmd_link(const char *cmd, const char *params, struct rte_tel_data *d)
{
	struct nsl_link_stats st;
	uint16_t self, peers[LINK_MAX_PEERS];
	int npeers = 0;
	struct nsl_link *l;
	struct rte_tel_data *pa;
	char name[64];

	(void)cmd;
	if (!parse_id(&params, '\0', &self))
		return -EINVAL;
	rte_spinlock_lock(&reg_lock);
	if ((l = find(self)) != NULL) {
		nsl_link_stats(l, &st);
		npeers = l->npeers;
		for (int i = 0; i < npeers; i++)
			peers[i] = l->peers[i].id;
	}
	rte_spinlock_unlock(&reg_lock);
	if (l == NULL)
		return -EINVAL;
	if ((pa = rte_tel_data_alloc()) == NULL)
		return -ENOMEM;
	rte_tel_data_start_dict(d);
	rte_tel_data_add_dict_int(d, "self", self);
	rte_tel_data_start_array(pa, RTE_TEL_INT_VAL);
	for (int i = 0; i < npeers; i++)
		rte_tel_data_add_array_int(pa, peers[i]);
	rte_tel_data_add_dict_container(d, "peers", pa, 0);
	rte_tel_data_add_dict_u64(d, "tx_copy_bytes", st.tx_copy_bytes);
	rte_tel_data_add_dict_u64(d, "rx_copy_bytes", st.rx_copy_bytes);
	rte_tel_data_add_dict_u64(d, "tx_full", st.tx_full);
	rte_tel_data_add_dict_u64(d, "mbuf_exhausted", st.mbuf_exhausted);
	for (int r = NSL_DROP_NONE + 1; r < NSL_DROP_MAX; r++) {
		snprintf(name, sizeof(name), "drop_%s", nsl_drop_name((enum nsl_drop)r));
		rte_tel_data_add_dict_u64(d, name, st.drops[r]);
	}
	return 0;
}

static int cmd_peer(const char *cmd, const char *params, struct rte_tel_data *d)
{
	struct nsl_link_peer_stats st;
	uint16_t self, peer;
	struct nsl_link *l;
	int rc = -EINVAL;

	(void)cmd;
	if (!parse_id(&params, ',', &self) || !parse_id(&params, '\0', &peer))
		return -EINVAL;
	rte_spinlock_lock(&reg_lock);
	if ((l = find(self)) != NULL && peer != self && peer_of(l, peer) != NULL)
		rc = nsl_link_peer_stats(l, peer, &st);
	rte_spinlock_unlock(&reg_lock);
	if (rc < 0)
		return -EINVAL;
	rte_tel_data_start_dict(d);
	rte_tel_data_add_dict_int(d, "self", self);
	rte_tel_data_add_dict_int(d, "peer", peer);
#define PUT(f) rte_tel_data_add_dict_u64(d, #f, st.f)
	PUT(msgs_tx);
	PUT(msgs_rx);
	PUT(bytes_tx);
	PUT(bytes_rx);
	PUT(frames_tx);
	PUT(frames_rx);
	PUT(retransmits);
	PUT(probes);
	PUT(acks_tx);
	PUT(acks_rx);
	PUT(credit_stalls);
	PUT(crc_failures);
#undef PUT
	return 0;
}

/* As DPDK's own libraries do: the commands exist from the start, whether or not links do. */
RTE_INIT(nsl_telemetry_register)
{
	rte_telemetry_register_cmd("/nsplit/links", cmd_links,
				   "Self ids of the nsplit links in this process. No parameters");
	rte_telemetry_register_cmd("/nsplit/link", cmd_link,
				   "Counters of one nsplit link, drops by reason. Parameters: self id");
	rte_telemetry_register_cmd("/nsplit/peer", cmd_peer,
				   "Counters of one peer of an nsplit link. Parameters: self id, peer id");
}

int nsl_telemetry_socket_path(char *out, size_t cap)
{
	struct stat sb;
	int n;

	if (!nsl_eal_ready())
		return nsl_error_set(EINVAL, "telemetry: nsl_telemetry_socket_path before nsl_eal_init");
	n = snprintf(out, cap, "%s/%s", rte_eal_get_runtime_dir(), SOCKET_NAME);
	if (n < 0 || (size_t)n >= cap)
		return nsl_error_set(ENAMETOOLONG, "telemetry: socket path longer than %zu bytes", cap);
	if (stat(out, &sb) != 0 || !S_ISSOCK(sb.st_mode))
		return nsl_error_set(ENOENT, "telemetry: no socket at %s (was EAL started with --no-telemetry?)", out);
	return 0;
}
