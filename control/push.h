/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A Fast N-split parameter push: the parameters of layers [first, last) as a backward role holds
 * them, in oneDNN's internal layouts, for the forward role holding those layers to load. It is
 * sent every batch, so it skips the stage record's reorders to and from PyTorch's layouts (a
 * tenth of a 4-peer run's CPU time went to them): where both ends lay a parameter out alike (one
 * host, or hosts with the same instruction set) loading it is a copy; otherwise the receiver
 * reorders from the layout the push describes.
 *
 * Bytes (native 64-bit words, as every peer of a job runs on x86-64): magic "nslpush2", first
 * layer | last layer << 32, n parameters, the length of a layout; padded to 64 bytes. Then per
 * parameter: its byte count and its layout (nsl_stage_param_layout), padded to 64; its values,
 * padded to 64.
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

/*
 * Load a push (buf, len bytes) of layers [first, last) into stage s: copied, or reordered where
 * another host's oneDNN laid a parameter out otherwise. With `adopt`, a parameter in s's own
 * layout is not copied: it is read where it lies in buf, which must then stay as it is while s
 * uses it (stage.h, nsl_stage_param_load_layout). The number of parameters adopted, or -EPROTO
 * with a message naming `what` when it is not such a push or a layout is none of s's.
 */
int nsl_push_load(struct nsl_stage *s, int first, int last, const void *buf, uint64_t len, const char *what,
		  bool adopt);

#endif
