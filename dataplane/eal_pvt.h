/* SPDX-License-Identifier: BSD-3-Clause */
/* What the rest of the dataplane needs from eal.c beyond nsplit/eal.h. */
#ifndef NSL_EAL_PVT_H
#define NSL_EAL_PVT_H

/*
 * Wait (at most 200 ms) until EAL's interrupt thread is idle in epoll_wait, so that no PMD
 * handler is running there: before a port's memory is freed, and before EAL's.
 */
void nsl_eal_quiesce_interrupts(void);

#endif
