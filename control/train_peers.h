/* SPDX-License-Identifier: BSD-3-Clause */
/* `nsplit train --peers N` with N >= 2: the N-split trainer, every peer in this process. */
#ifndef NSL_TRAIN_PEERS_H
#define NSL_TRAIN_PEERS_H

#include "train.h"

/* Train and evaluate; prints progress and results. 0 or a negative errno (message set). */
int nsl_train_peers(const struct nsl_train_opts *o);

#endif
