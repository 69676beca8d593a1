/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The wire format's building blocks: CRC32C against published check values and against a
 * bit-at-a-time reference over every length around its lane boundaries, and a header that
 * encodes, parses back field for field, and is refused once any byte of it changes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "nsplit/rng.h"
#include "nsplit/wire.h"
#include "cunit_main.h"

/* CRC32C as the polynomial's definition says, one bit at a time (reflected 0x82F63B78). */
static uint32_t crc_ref(uint32_t crc, const uint8_t *p, size_t n)
{
	crc = ~crc;
	for (size_t i = 0; i < n; i++) {
		crc ^= p[i];
		for (int b = 0; b < 8; b++)
			crc = crc & 1 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
	}
	return ~crc;
}

static void test_crc_known(void)
{
	static const uint8_t zeros[32], ones[32] = { [0 ... 31] = 0xff };

	/* RFC 3720, appendix B.4 (iSCSI), and the "123456789" check value of the CRC catalogue. */
	CU_ASSERT_EQUAL(nsl_crc32c(0, "123456789", 9), 0xE3069283u);
	CU_ASSERT_EQUAL(nsl_crc32c(0, zeros, 32), 0x8A9136AAu);
	CU_ASSERT_EQUAL(nsl_crc32c(0, ones, 32), 0x62A8AB43u);
	CU_ASSERT_EQUAL(nsl_crc32c(0, "", 0), 0u);
}

static void test_crc_lengths(void)
{
	/* Past three long lanes (3 x 2 KiB) and a few short ones, at odd offsets. */
	enum { MAX = 3 * 2048 * 2 + 3 * 128 * 3 + 17 };
	uint8_t *buf = malloc(MAX + 8);
	int bad = 0;

	CU_ASSERT_FATAL(buf != NULL);
	for (size_t i = 0; i < MAX + 8; i++)
		buf[i] = (uint8_t)nsl_hash2(7, i);
	for (size_t n = 0; n <= MAX; n += n < 1200 ? 1 : 37) {
		size_t at = n % 7;

		if (nsl_crc32c(0, buf + at, n) != crc_ref(0, buf + at, n) && bad++ < 5)
			CU_FAIL("CRC32C differs from the reference");
	}
	/* Exact lane multiples and their neighbours. */
	for (size_t n = 3 * 128 - 1; n <= MAX; n += 3 * 128)
		for (size_t d = 0; d < 3; d++)
			CU_ASSERT_EQUAL(nsl_crc32c(0, buf, n + d), crc_ref(0, buf, n + d));
	CU_ASSERT_EQUAL(bad, 0);
	free(buf);
}

/* Taken piece by piece, as the receiver does frame by frame, a CRC equals the one-shot value. */
static void test_crc_chained(void)
{
	enum { N = 50000 };
	uint8_t *buf = malloc(N);
	uint32_t whole, run = 0;
	size_t off = 0;
	uint64_t s = 3;

	CU_ASSERT_FATAL(buf != NULL);
	for (size_t i = 0; i < N; i++)
		buf[i] = (uint8_t)nsl_hash2(11, i);
	whole = nsl_crc32c(0, buf, N);
	CU_ASSERT_EQUAL(whole, crc_ref(0, buf, N));
	while (off < N) {
		size_t n = 1 + nsl_hash2(s++, off) % 3000;

		if (n > N - off)
			n = N - off;
		run = nsl_crc32c(run, buf + off, n);
		off += n;
	}
	CU_ASSERT_EQUAL(run, whole);
	free(buf);
}

/* Copy and CRC in one pass, at every alignment: same bytes, same CRC, nothing written beyond. */
static void test_crc_copy(void)
{
	enum { MAX = 9000 };
	uint8_t *src = malloc(MAX + 16), *dst = malloc(MAX + 16);
	int bad = 0;

	CU_ASSERT_FATAL(src != NULL && dst != NULL);
	for (size_t i = 0; i < MAX + 16; i++)
		src[i] = (uint8_t)nsl_hash2(5, i);
	for (size_t n = 0; n <= MAX; n += n < 800 ? 1 : 97)
		for (size_t at = 0; at < 8; at += 3) {
			uint32_t c;

			memset(dst, 0, MAX + 16);
			c = nsl_crc32c_copy(0, dst + at, src + 1, n);
			if ((c != crc_ref(0, src + 1, n) || memcmp(dst + at, src + 1, n) != 0 || dst[at + n] != 0) &&
			    bad++ < 5)
				CU_FAIL("copy with CRC differs");
		}
	CU_ASSERT_EQUAL(bad, 0);
	free(src);
	free(dst);
}

static void test_header_roundtrip(void)
{
	static const uint8_t a[6] = { 2, 0, 0, 0, 0, 1 }, b[6] = { 2, 0, 0, 0, 0, 2 };
	struct nsl_wire_hdr h = {
		.version = NSL_WIRE_VERSION, .type = NSL_MSG_GRADIENT, .flags = NSL_WIRE_F_POLL, .session = 0xdeadbeef,
		.src = 3, .dst = 4, .stage = 5, .micro = 6, .round = 7, .step = 8, .msg_id = 9, .msg_crc = 10,
		.total_len = 5000, .offset = 2832, .frag = 1416, .len = 1416, .frame_crc = 0x600dc0de,
	};
	uint8_t frame[NSL_WIRE_FRAME_HDR + 1416];
	struct nsl_wire_frame f;

	memset(frame, 0x5a, sizeof(frame));
	nsl_wire_l2l4_encode(frame, a, b, 0x0a4d0001, 0x0a4d0002, NSL_WIRE_UDP_PORT, NSL_WIRE_HDR_LEN + h.len, 42);
	nsl_wire_hdr_encode(frame + NSL_WIRE_FRAME_HDR - NSL_WIRE_HDR_LEN, &h);
	CU_ASSERT_EQUAL_FATAL(nsl_wire_parse(frame, sizeof(frame), NSL_WIRE_UDP_PORT, &f), NSL_DROP_NONE);
	/* Field by field: the structs' padding is not part of the header. */
	CU_ASSERT(f.hdr.version == h.version && f.hdr.type == h.type && f.hdr.flags == h.flags);
	CU_ASSERT(f.hdr.session == h.session && f.hdr.src == h.src && f.hdr.dst == h.dst);
	CU_ASSERT(f.hdr.stage == h.stage && f.hdr.micro == h.micro && f.hdr.round == h.round && f.hdr.step == h.step);
	CU_ASSERT(f.hdr.msg_id == h.msg_id && f.hdr.msg_crc == h.msg_crc && f.hdr.total_len == h.total_len);
	CU_ASSERT(f.hdr.offset == h.offset && f.hdr.frag == h.frag && f.hdr.len == h.len);
	CU_ASSERT_EQUAL(f.hdr.frame_crc, h.frame_crc);
	CU_ASSERT_EQUAL(f.payload_off, NSL_WIRE_FRAME_HDR);
	CU_ASSERT_EQUAL(f.payload_len, 1416);
	CU_ASSERT_EQUAL(f.src_ip, 0x0a4d0001u);
	CU_ASSERT(memcmp(f.src_mac, a, 6) == 0 && memcmp(f.dst_mac, b, 6) == 0);
	/* Any one byte of the nsplit header changed: the header CRC no longer holds. */
	for (int i = NSL_WIRE_FRAME_HDR - NSL_WIRE_HDR_LEN; i < NSL_WIRE_FRAME_HDR; i++) {
		frame[i] ^= 0x10;
		CU_ASSERT_NOT_EQUAL(nsl_wire_parse(frame, sizeof(frame), NSL_WIRE_UDP_PORT, &f), NSL_DROP_NONE);
		frame[i] ^= 0x10;
	}
}

int main(void)
{
	static const struct nsl_test_case cases[] = {
		{ "CRC32C check values", test_crc_known },
		{ "CRC32C equals the bitwise reference at every length", test_crc_lengths },
		{ "CRC32C taken in pieces equals the whole", test_crc_chained },
		{ "copy with CRC32C in one pass, any alignment", test_crc_copy },
		{ "header encodes and parses back; any changed byte is refused", test_header_roundtrip },
		{ NULL, NULL },
	};

	return nsl_test_run("wire", cases);
}
