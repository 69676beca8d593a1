/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Checkpoints on disk: DIR/round-RRRRRR/ holds one stage record (record.h) per stage,
 * stage-S.safetensors, each written atomically (write, fsync, rename) by the peer holding that
 * stage, and manifest.json, written the same way by whichever peer finds every stage's file in:
 * a round folder with a manifest is complete. DIR is one folder all peers see (one host, or a
 * shared file system).
 */
#ifndef NSL_CHECKPOINT_H
#define NSL_CHECKPOINT_H

#include <limits.h>
#include <stdint.h>

#include "nsplit/model.h"
#include "nsplit/safetensors.h"

struct nsl_ckpt {
	char path[PATH_MAX];         /* the round folder */
	int n;                       /* stage records */
	struct nsl_st_file **f;
	int64_t round;               /* rounds completed when it was taken */
	int peers;                   /* of the job that took it */
	int records;                 /* it holds (one a peer; Fast N-split: one a backward role) */
	const char *split;           /* its split, from the records */
	const char *config;          /* its configuration hash */
};

/* Write stage `stage`'s record after `round` rounds; the manifest text too if every stage is in. */
int nsl_ckpt_write_stage(const char *dir, int64_t round, int stage, int nstages, const void *rec, uint64_t len,
			 const char *manifest);

/*
 * The newest complete checkpoint in dir, every record checked against model m. 0, or a
 * negative errno with a message (none complete, another model: what differs). Close with
 * nsl_ckpt_close.
 */
int nsl_ckpt_open_latest(const char *dir, const struct nsl_model *m, struct nsl_ckpt *out);
void nsl_ckpt_close(struct nsl_ckpt *c);

#endif
