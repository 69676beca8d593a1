/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A Fast N-split parameter push: the parameters of layers [first, last) as a backward role holds
 * them, in oneDNN's internal layouts, for the forward role holding those layers to copy in. It
 * is sent every batch, so it skips the stage record's reorders to and from PyTorch's layouts
 * (a tenth of a 4-peer run's CPU time went to them). Both ends must lay each parameter out the
 * same way; the header says how the sender's are laid out, and the receiver refuses what it
 * cannot copy.
 *
 * Bytes (native 64-bit words, as every peer of a job runs on x86-64): magic "nslpush1", first
 * layer | last layer << 32, n parameters, then per parameter its layout hash and float count;
 * zero padding to 64 bytes; then each parameter's floats, each padded to 64 bytes.
 */
#ifndef NSL_PUSH_H
#define NSL_PUSH_H

#include <stdint.h>

#include "nsplit/model.h"
#include "nsplit/stage.h"

/* Bytes a push of layers [first, last) of model m takes at most. */
uint64_t nsl_push_cap(const struct nsl_model *m, int first, int last);

/* Stage s's parameters of layers [first, last) into buf (cap bytes); *len the bytes used. */
int nsl_push_pack(const struct nsl_stage *s, int first, int last, void *buf, uint64_t cap, uint64_t *len);

/* Copy a push (buf, len bytes) of layers [first, last) into stage s. 0, or -EPROTO with a message
 * naming `what` when it is not such a push or its layouts differ from s's. */
int nsl_push_load(struct nsl_stage *s, int first, int last, const void *buf, uint64_t len, const char *what);

#endif
