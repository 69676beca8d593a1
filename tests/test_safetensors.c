/* SPDX-License-Identifier: BSD-3-Clause */
/* safetensors: round trip, and every malformed file refused with a message naming it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "nsplit/error.h"
#include "nsplit/safetensors.h"
#include "cunit_main.h"

static char dir[] = "/tmp/nsl-st-XXXXXX";
static char path[256];

static void test_round_trip(void)
{
	float w[6] = { 1, 2, 3, 4, 5, 6 }, b[2] = { -1, 0.5f };
	struct nsl_st_tensor t[2] = {
		{ .name = "layer0.weight", .ndim = 2, .dims = { 2, 3 }, .data = w },
		{ .name = "layer0.bias", .ndim = 1, .dims = { 2 }, .data = b },
	};
	const char *meta[] = { "model", "dense:2", "note", "quote\" and \\ back" };
	struct nsl_st_tensor got;
	struct nsl_st_file *f;

	snprintf(path, sizeof(path), "%s/rt.safetensors", dir);
	CU_ASSERT_EQUAL_FATAL(nsl_st_write(path, t, 2, meta, 2), 0);
	f = nsl_st_open(path);
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_EQUAL(nsl_st_count(f), 2);
	CU_ASSERT_STRING_EQUAL(nsl_st_meta(f, "model"), "dense:2");
	CU_ASSERT_STRING_EQUAL(nsl_st_meta(f, "note"), "quote\" and \\ back");
	CU_ASSERT_PTR_NULL(nsl_st_meta(f, "absent"));
	CU_ASSERT_EQUAL_FATAL(nsl_st_find(f, "layer0.weight", &got), 0);
	CU_ASSERT_EQUAL(got.ndim, 2);
	CU_ASSERT(got.dims[0] == 2 && got.dims[1] == 3);
	CU_ASSERT(memcmp(got.data, w, sizeof(w)) == 0);
	CU_ASSERT_EQUAL_FATAL(nsl_st_find(f, "layer0.bias", &got), 0);
	CU_ASSERT(memcmp(got.data, b, sizeof(b)) == 0);
	CU_ASSERT_EQUAL(nsl_st_find(f, "layer1.weight", &got), -ENOENT);
	nsl_st_close(f);
}

/* Write raw bytes as a file: an 8-byte length then the header, then `data` bytes of zeros. */
static void write_raw(const char *header, long declared_len, size_t data)
{
	FILE *f = fopen(path, "wb");
	uint8_t le[8];
	unsigned long long len = declared_len >= 0 ? (unsigned long long)declared_len : strlen(header);

	for (int i = 0; i < 8; i++)
		le[i] = (uint8_t)(len >> (8 * i));
	fwrite(le, 1, 8, f);
	fwrite(header, 1, strlen(header), f);
	for (size_t i = 0; i < data; i++)
		fputc(0, f);
	fclose(f);
}

static void expect_refused(const char *header, long declared_len, size_t data, const char *fragment)
{
	struct nsl_st_file *f;

	snprintf(path, sizeof(path), "%s/bad.safetensors", dir);
	write_raw(header, declared_len, data);
	f = nsl_st_open(path);
	CU_ASSERT_PTR_NULL(f);
	nsl_st_close(f);
	if (strstr(nsl_error_last(), path) == NULL || strstr(nsl_error_last(), fragment) == NULL) {
		fprintf(stderr, "\n  message \"%s\" lacks the path or \"%s\"\n", nsl_error_last(), fragment);
		CU_FAIL("error message");
	}
}

static void test_malformed(void)
{
	expect_refused("{}", 1000, 0, "exceeds the file");
	expect_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", -1, 8, "expected");
	expect_refused("{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", -1, 4, "F16");
	expect_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", -1, 8, "do not fit");
	expect_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", -1, 4, "truncated");
	expect_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", -1, 8, "lacks");
	expect_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,4]}}", -1, 4,
		       "dimensions");
}

static void test_missing_file(void)
{
	CU_ASSERT_PTR_NULL(nsl_st_open("/nonexistent/w.safetensors"));
	CU_ASSERT_PTR_NOT_NULL(strstr(nsl_error_last(), "/nonexistent/w.safetensors"));
}

static const struct nsl_test_case cases[] = {
	{ "round trip", test_round_trip },
	{ "malformed files are refused", test_malformed },
	{ "missing file", test_missing_file },
	{ NULL, NULL },
};

int main(void)
{
	int rc;
	char cmd[300];

	if (mkdtemp(dir) == NULL)
		return 1;
	rc = nsl_test_run("safetensors", cases);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return rc;
}
