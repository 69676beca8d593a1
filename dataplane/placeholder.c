/* SPDX-License-Identifier: BSD-3-Clause */
/* Removed once the first dataplane source lands. */
int nsl_dataplane_placeholder(void);
int nsl_dataplane_placeholder(void) { return 0; }
