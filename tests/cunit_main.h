/* SPDX-License-Identifier: BSD-3-Clause */
/* Shared CUnit runner: one suite per test program, verbose output, exit 1 on any failure. */
#ifndef NSL_CUNIT_MAIN_H
#define NSL_CUNIT_MAIN_H

#include <CUnit/Basic.h>

struct nsl_test_case {
	const char *name;
	void (*fn)(void);
};

static inline int nsl_test_run(const char *suite, const struct nsl_test_case *cases)
{
	CU_pSuite s;
	unsigned failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite(suite, NULL, NULL);
	for (const struct nsl_test_case *c = cases; c->name; c++)
		CU_add_test(s, c->name, c->fn);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}

#endif
