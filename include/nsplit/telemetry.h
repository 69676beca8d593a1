/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Links' counters through DPDK telemetry, read while a run goes on.
 *
 * Every link registers itself when nsl_link_create makes it and leaves when nsl_link_free frees
 * it; the commands are registered with DPDK's telemetry library when the program starts. EAL
 * serves them on <runtime dir>/dpdk_telemetry.v2 (nsl_telemetry_socket_path), unless EAL was
 * started with --no-telemetry. DPDK's client reads them:
 *
 *   $ dpdk-telemetry.py -f nsplit-1234-5678
 *   --> /nsplit/links
 *   {"/nsplit/links": [0, 1]}
 *   --> /nsplit/peer,0,1
 *   {"/nsplit/peer": {"self": 0, "peer": 1, "msgs_tx": 1, ...}}
 *
 * Commands (ids are decimal, 0 to 65535, no sign, no spaces):
 *   /nsplit/links                 the self id of every link in this process, in creation order
 *   /nsplit/link,<self>           "self", "peers" (their ids), the counters of struct
 *                                 nsl_link_stats (tx_copy_bytes, rx_copy_bytes, tx_full,
 *                                 mbuf_exhausted) and one "drop_<reason>" per reason, named by
 *                                 nsl_drop_name (drop_truncated, drop_duplicate, ...)
 *   /nsplit/peer,<self>,<peer>    "self", "peer" and every counter of struct nsl_link_peer_stats
 *                                 under its field name (msgs_tx, frames_rx, retransmits, ...)
 * A missing, malformed or unknown id is answered with DPDK's error reply, {"<command>": null}.
 * When two live links share a self id, /nsplit/links lists both and the other commands read the
 * one made first.
 *
 * The counters are read from the telemetry thread while the dataplane thread updates them,
 * without stopping it: each value is whole, but they may be a poll behind and not all from the
 * same poll (as nsl_link_stats says). A link cannot be freed while a command reads it.
 */
#ifndef NSPLIT_TELEMETRY_H
#define NSPLIT_TELEMETRY_H

#include <stddef.h>

/* Links visible at once; a link made beyond that works but is not listed. */
#define NSL_TELEMETRY_MAX_LINKS 256

/*
 * The path of this process's telemetry socket (for a log line, or a client of one's own).
 * 0, -EINVAL before nsl_eal_init, -ENAMETOOLONG if it does not fit in cap bytes, -ENOENT with a
 * message when EAL serves no telemetry (started with --no-telemetry).
 */
int nsl_telemetry_socket_path(char *out, size_t cap);

#endif
