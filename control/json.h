/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A small JSON reader for nsplit's own files (cost files, plans): the whole text becomes a tree
 * of values. Strings keep only what they hold (escapes \" \\ \/ \n \t \r \b \f; \u escapes below
 * 0x80). Depth and size are bounded; anything else is refused with the line and what was expected.
 */
#ifndef NSL_JSON_H
#define NSL_JSON_H

#include <stdbool.h>
#include <stddef.h>

enum nsl_json_type { NSL_JSON_NULL, NSL_JSON_BOOL, NSL_JSON_NUMBER, NSL_JSON_STRING, NSL_JSON_ARRAY, NSL_JSON_OBJECT };

struct nsl_json {
	enum nsl_json_type type;
	double number;                /* NUMBER; BOOL as 0/1 */
	char *string;                 /* STRING; an OBJECT member's key in `key` */
	char *key;
	int n;                        /* ARRAY, OBJECT: children */
	struct nsl_json *child;
};

/* Parse text (NUL-terminated); `what` names it in messages. NULL with a message on bad JSON. */
struct nsl_json *nsl_json_parse(const char *text, const char *what);
/* Read and parse a file. */
struct nsl_json *nsl_json_load(const char *path);
void nsl_json_free(struct nsl_json *v);

/* Member `key` of an object, or NULL (also when v is not an object). */
const struct nsl_json *nsl_json_get(const struct nsl_json *v, const char *key);

#endif
