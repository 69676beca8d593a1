/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The /nsplit/ telemetry commands, asked over this process's own telemetry socket as any client
 * would: links appear when made and go when freed, counters match nsl_link_stats and
 * nsl_link_peer_stats after a message moved, every malformed or unknown parameter gets DPDK's
 * error reply, and links made and freed while a client keeps asking break nothing.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cunit_main.h"
#include "link_pair.h"
#include "nsplit/eal.h"
#include "nsplit/error.h"
#include "nsplit/link.h"
#include "nsplit/port.h"
#include "nsplit/telemetry.h"
#include "nsplit/wire.h"

#define MTU 1500
#define SESSION 0x7e1
#define MSG_LEN 5000
#define DEADLINE_S 30
#define REPLY_MAX 16384

static char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];

static int tel_connect(char *greeting, size_t cap)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 5 };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	ssize_t n;

	if (fd < 0)
		return -1;
	memcpy(sa.sun_path, sock_path, sizeof(sa.sun_path));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || (n = recv(fd, greeting, cap - 1, 0)) <= 0) {
		close(fd);
		return -1;
	}
	greeting[n] = '\0';
	return fd;
}

/* Send one command, return its reply (a JSON object) in out. */
static int query(int fd, const char *cmd, char *out)
{
	ssize_t n;

	if (send(fd, cmd, strlen(cmd), 0) < 0 || (n = recv(fd, out, REPLY_MAX - 1, 0)) <= 0)
		return -1;
	out[n] = '\0';
	return 0;
}

/* The number after "key": in a reply; false when the key is absent. */
static bool json_u64(const char *js, const char *key, uint64_t *v)
{
	char pat[80];
	const char *p;
	char *end;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	if ((p = strstr(js, pat)) == NULL)
		return false;
	p += strlen(pat);
	while (*p == ' ')
		p++;
	*v = strtoull(p, &end, 10);
	return end != p;
}

/* The reply with every space taken out, so checks do not depend on DPDK's spacing. */
static void squeeze(char *s)
{
	char *d = s;

	for (; *s; s++)
		if (*s != ' ')
			*d++ = *s;
	*d = '\0';
}

static void pair_open(struct pair *pr, uint16_t self0, uint16_t self1)
{
	pair_open_with(pr, "tel", &(struct nsl_port_conf){ .mtu = MTU }, &(struct nsl_link_conf){ .session = SESSION },
		       (const uint16_t[2]){ self0, self1 }, NULL);
}

/* One message from link 0 to link 1, both polled here until both sides are done. */
static void move_one(struct pair *pr, uint16_t to, uint16_t from)
{
	uint8_t *src = nsl_dp_alloc(MSG_LEN, 0), *dst = nsl_dp_alloc(MSG_LEN, 0);
	struct nsl_msg out = { .data = src, .len = MSG_LEN, .peer = to, .type = NSL_MSG_GRADIENT };
	struct nsl_msg slot = { .data = dst, .len = MSG_LEN, .peer = from };

	CU_ASSERT_FATAL(src != NULL && dst != NULL);
	memset(src, 0x5a, MSG_LEN);
	pair_exchange(pr, &out, &slot, DEADLINE_S);
	CU_ASSERT(out.status == 0 && slot.status == 0);
	nsl_dp_free(src);
	nsl_dp_free(dst);
}

static void test_counters(void)
{
	static char reply[REPLY_MAX], greeting[1024];
	struct nsl_link_peer_stats ps;
	struct nsl_link_stats ls;
	struct pair pr;
	uint64_t v;
	int fd = tel_connect(greeting, sizeof(greeting));

	CU_ASSERT_FATAL(fd >= 0);
	printf("\ngreeting: %s\n", greeting);
	CU_ASSERT(strstr(greeting, "\"version\"") != NULL && strstr(greeting, "max_output_len") != NULL);

	CU_ASSERT_FATAL(query(fd, "/", reply) == 0);
	CU_ASSERT(strstr(reply, "\"/nsplit/links\"") && strstr(reply, "\"/nsplit/link\"") &&
		  strstr(reply, "\"/nsplit/peer\""));
	CU_ASSERT_FATAL(query(fd, "/nsplit/links", reply) == 0);
	squeeze(reply);
	CU_ASSERT_STRING_EQUAL(reply, "{\"/nsplit/links\":[]}");

	pair_open(&pr, 3, 12);
	move_one(&pr, 12, 3);
	/* No thread polls now: the counters telemetry reads are final, and must equal these. */
	CU_ASSERT_FATAL(query(fd, "/nsplit/links", reply) == 0);
	squeeze(reply);
	printf("%s\n", reply);
	CU_ASSERT_STRING_EQUAL(reply, "{\"/nsplit/links\":[3,12]}");

	CU_ASSERT_FATAL(nsl_link_peer_stats(pr.link[0], 12, &ps) == 0);
	CU_ASSERT_FATAL(query(fd, "/nsplit/peer,3,12", reply) == 0);
	printf("%s\n", reply);
	squeeze(reply);
	CU_ASSERT(strstr(reply, "\"self\":3,\"peer\":12,") != NULL);
	CU_ASSERT(json_u64(reply, "msgs_tx", &v) && v == 1);
	CU_ASSERT(json_u64(reply, "bytes_tx", &v) && v == MSG_LEN);
	CU_ASSERT(json_u64(reply, "msgs_rx", &v) && v == 0);
#define SAME(f) CU_ASSERT(json_u64(reply, #f, &v) && v == ps.f)
	SAME(msgs_tx);
	SAME(msgs_rx);
	SAME(bytes_tx);
	SAME(bytes_rx);
	SAME(frames_tx);
	SAME(frames_rx);
	SAME(retransmits);
	SAME(probes);
	SAME(acks_tx);
	SAME(acks_rx);
	SAME(credit_stalls);
	SAME(crc_failures);
	CU_ASSERT(ps.frames_tx >= (MSG_LEN + 1445) / 1446);

	CU_ASSERT_FATAL(nsl_link_peer_stats(pr.link[1], 3, &ps) == 0);
	CU_ASSERT_FATAL(query(fd, "/nsplit/peer,12,3", reply) == 0);
	squeeze(reply);
	CU_ASSERT(json_u64(reply, "msgs_rx", &v) && v == 1);
	CU_ASSERT(json_u64(reply, "bytes_rx", &v) && v == MSG_LEN);
	SAME(frames_rx);
	SAME(acks_tx);
	SAME(acks_rx);
#undef SAME

	nsl_link_stats(pr.link[1], &ls);
	CU_ASSERT_FATAL(query(fd, "/nsplit/link,12", reply) == 0);
	printf("%s\n", reply);
	squeeze(reply);
	CU_ASSERT(strstr(reply, "\"self\":12,\"peers\":[3],") != NULL);
	CU_ASSERT(json_u64(reply, "rx_copy_bytes", &v) && v == MSG_LEN);
	CU_ASSERT(json_u64(reply, "tx_copy_bytes", &v) && v == ls.tx_copy_bytes);
	CU_ASSERT(json_u64(reply, "tx_full", &v) && v == ls.tx_full);
	CU_ASSERT(json_u64(reply, "mbuf_exhausted", &v) && v == ls.mbuf_exhausted);
	for (int d = NSL_DROP_NONE + 1; d < NSL_DROP_MAX; d++) {
		char key[64];

		snprintf(key, sizeof(key), "drop_%s", nsl_drop_name((enum nsl_drop)d));
		CU_ASSERT(json_u64(reply, key, &v) && v == ls.drops[d]);
	}

	pair_close(&pr);
	CU_ASSERT_FATAL(query(fd, "/nsplit/links", reply) == 0);
	squeeze(reply);
	CU_ASSERT_STRING_EQUAL(reply, "{\"/nsplit/links\":[]}");
	CU_ASSERT_FATAL(query(fd, "/nsplit/link,3", reply) == 0);
	CU_ASSERT(strstr(reply, "null") != NULL);
	close(fd);
}

static void test_bad_params(void)
{
	static const char *const bad[] = {
		"/nsplit/links,0", "/nsplit/link", "/nsplit/link,", "/nsplit/link,abc", "/nsplit/link,9",
		"/nsplit/link,-1", "/nsplit/link,+1", "/nsplit/link, 1", "/nsplit/link,65536",
		"/nsplit/link,99999999999999999999", "/nsplit/link,1x", "/nsplit/link,0x1", "/nsplit/link,1,0",
		"/nsplit/peer", "/nsplit/peer,1", "/nsplit/peer,1,", "/nsplit/peer,,0", "/nsplit/peer,1,1",
		"/nsplit/peer,1,7", "/nsplit/peer,7,0", "/nsplit/peer,1,0,", "/nsplit/peer,1,0,2",
		"/nsplit/peer,1;0", NULL,
	};
	static char reply[REPLY_MAX], greeting[1024];
	struct pair pr;
	int fd = tel_connect(greeting, sizeof(greeting));

	CU_ASSERT_FATAL(fd >= 0);
	pair_open(&pr, 0, 1);
	for (int i = 0; bad[i] != NULL; i++) {
		char want[96];

		snprintf(want, sizeof(want), "{\"%.*s\":null}", (int)strcspn(bad[i], ","), bad[i]);
		CU_ASSERT_FATAL(query(fd, bad[i], reply) == 0);
		if (strcmp(reply, want) != 0)
			printf("\n%s -> %s (expected %s)\n", bad[i], reply, want);
		CU_ASSERT_STRING_EQUAL(reply, want);
	}
	/* The same connection still answers good requests. */
	CU_ASSERT_FATAL(query(fd, "/nsplit/peer,1,0", reply) == 0);
	CU_ASSERT(strstr(reply, "msgs_rx") != NULL);
	pair_close(&pr);
	close(fd);
}

static atomic_bool stop;
static atomic_uint answers;

static void *hammer(void *arg)
{
	static const char *const cmds[] = { "/nsplit/links", "/nsplit/link,0", "/nsplit/peer,0,1", "/nsplit/peer,1,0" };
	static char reply[REPLY_MAX], greeting[1024];
	int fd = tel_connect(greeting, sizeof(greeting));

	(void)arg;
	if (fd < 0)
		return NULL;
	for (unsigned i = 0; !atomic_load(&stop); i++)
		if (query(fd, cmds[i % 4], reply) == 0)
			atomic_fetch_add(&answers, 1);
	close(fd);
	return NULL;
}

/* A client asks without pause while links are made, used and freed: no reader sees a freed link. */
static void test_concurrent(void)
{
	pthread_t th;
	double t0 = now_s();
	int rounds = 0;

	atomic_store(&stop, false);
	CU_ASSERT_FATAL(pthread_create(&th, NULL, hammer, NULL) == 0);
	while (now_s() - t0 < 2.0 || atomic_load(&answers) < 100) {
		struct pair pr;

		pair_open(&pr, 0, 1);
		move_one(&pr, 1, 0);
		pair_close(&pr);
		rounds++;
		if (now_s() - t0 > DEADLINE_S)
			break;
	}
	atomic_store(&stop, true);
	pthread_join(th, NULL);
	printf("\n%d links pairs made and freed while %u answers came\n", rounds, atomic_load(&answers));
	CU_ASSERT(atomic_load(&answers) >= 100);
}

int main(void)
{
	static const struct nsl_test_case cases[] = {
		{ "links listed, counters as nsl_link_stats says", test_counters },
		{ "missing, malformed, unknown ids: error replies", test_bad_params },
		{ "links freed while a client asks", test_concurrent },
		{ NULL, NULL },
	};
	int rc;

	if (nsl_eal_init(&(struct nsl_eal_conf){ .mem_mb = 256 }) < 0) {
		fprintf(stderr, "test_telemetry: %s\n", nsl_error_last());
		return 1;
	}
	if (nsl_telemetry_socket_path(sock_path, sizeof(sock_path)) < 0) {
		printf("test_telemetry: SKIP: %s\n", nsl_error_last());
		nsl_eal_cleanup();
		return 77;
	}
	printf("telemetry socket: %s (file prefix %s)\n", sock_path, nsl_eal_file_prefix());
	rc = nsl_test_run("telemetry", cases);
	nsl_eal_cleanup();
	return rc;
}
