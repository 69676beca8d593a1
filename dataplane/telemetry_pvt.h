/* SPDX-License-Identifier: BSD-3-Clause */
/* The registry of live links that the telemetry commands read (dataplane/telemetry.c). */
#ifndef NSL_TELEMETRY_PVT_H
#define NSL_TELEMETRY_PVT_H

struct nsl_link;

/* nsl_link_create, once l is complete. A full registry leaves l out of telemetry, nothing more. */
void telemetry_link_add(struct nsl_link *l);

/* nsl_link_free, before anything of l is freed: when it returns, no command reads l. Unknown l: no-op. */
void telemetry_link_remove(struct nsl_link *l);

#endif
