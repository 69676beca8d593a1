/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A compute context: the oneDNN CPU engine and stream that a peer's stages run on, and the
 * number of OpenMP threads they may use. Create one per compute thread; the thread that creates
 * it must be the one that runs the stages (OpenMP teams belong to the thread that starts them and
 * inherit its CPU affinity).
 */
#ifndef NSPLIT_COMPUTE_H
#define NSPLIT_COMPUTE_H

struct nsl_compute;

/*
 * threads <= 0 means every core this thread may run on. Returns NULL with a message if oneDNN
 * cannot create a CPU engine. Free with nsl_compute_free.
 */
struct nsl_compute *nsl_compute_create(int threads);

void nsl_compute_free(struct nsl_compute *cc);

int nsl_compute_threads(const struct nsl_compute *cc);

/* Re-apply the thread count to the calling thread's OpenMP team (call once per thread). */
void nsl_compute_bind_thread(const struct nsl_compute *cc);

#endif
