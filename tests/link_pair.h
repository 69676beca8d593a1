/* SPDX-License-Identifier: BSD-3-Clause */
/* Two links joined by a net_ring pair in one process, as the link tests set them up. */
#ifndef NSL_TEST_LINK_PAIR_H
#define NSL_TEST_LINK_PAIR_H

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <CUnit/Basic.h>

#include "nsplit/faults.h"
#include "nsplit/link.h"
#include "nsplit/port.h"

struct pair {
	struct nsl_port *port[2];
	struct nsl_link *link[2];
	struct nsl_fault_injector *faults[2];
};

static inline double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/*
 * Ports as pc says, named from prefix; links as base says, with peer ids self[0] and self[1],
 * each reaching the other through its port. faults: a --faults spec installed on both receive
 * queues (side i with seed + i), or NULL.
 */
static inline void pair_open_with(struct pair *pr, const char *prefix, const struct nsl_port_conf *pc,
				  const struct nsl_link_conf *base, const uint16_t self[2], const char *faults)
{
	static int seq;
	char name[32];

	memset(pr, 0, sizeof(*pr));
	snprintf(name, sizeof(name), "%s%d", prefix, seq++);
	CU_ASSERT_FATAL(nsl_port_ring_pair(name, pc, pr->port) == 0);
	for (int i = 0; i < 2; i++) {
		struct nsl_link_conf c = *base;
		uint8_t mac[6];

		c.self = self[i];
		pr->link[i] = nsl_link_create(&c);
		CU_ASSERT_FATAL(pr->link[i] != NULL);
		nsl_port_mac(pr->port[1 - i], mac);
		CU_ASSERT_FATAL(nsl_link_add_peer(pr->link[i], self[1 - i], pr->port[i], mac, 0) == 0);
		if (faults != NULL) {
			struct nsl_faults f;

			CU_ASSERT_FATAL(nsl_faults_parse(faults, &f) == 0);
			f.seed += (uint64_t)i;
			pr->faults[i] = nsl_faults_install(pr->port[i], &f);
			CU_ASSERT_FATAL(pr->faults[i] != NULL);
		}
	}
}

/* Post slot on side 1, send out from side 0, poll both until both come back (or deadline_s passes). */
static inline void pair_exchange(struct pair *pr, struct nsl_msg *out, struct nsl_msg *slot, double deadline_s)
{
	struct nsl_msg *got = NULL, *sent = NULL;
	double t0 = now_s();

	CU_ASSERT_FATAL(nsl_link_post(pr->link[1], slot) == 0);
	CU_ASSERT_FATAL(nsl_link_send(pr->link[0], out) == 0);
	while ((got == NULL || sent == NULL) && now_s() - t0 < deadline_s) {
		CU_ASSERT_FATAL(nsl_link_poll(pr->link[0]) >= 0);
		CU_ASSERT_FATAL(nsl_link_poll(pr->link[1]) >= 0);
		if (got == NULL)
			nsl_link_recv(pr->link[1], &got, 1);
		if (sent == NULL)
			nsl_link_sent(pr->link[0], &sent, 1);
	}
	CU_ASSERT_FATAL(got == slot && sent == out);
}

static inline void pair_close(struct pair *pr)
{
	for (int i = 0; i < 2; i++) {
		nsl_faults_remove(pr->faults[i]);
		nsl_link_free(pr->link[i]);
	}
	/* Port 0 owns the rings of the pair: close it last. */
	nsl_port_close(pr->port[1]);
	nsl_port_close(pr->port[0]);
}

#endif
