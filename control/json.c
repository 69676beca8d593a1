/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nsplit/error.h"
#include "json.h"

#define MAX_DEPTH 32
#define MAX_FILE (64u << 20)

struct reader {
	const char *p, *start;
	const char *what;
	int rc;
};

static int line_of(const struct reader *r)
{
	int line = 1;

	for (const char *q = r->start; q < r->p; q++)
		line += *q == '\n';
	return line;
}

static void fail(struct reader *r, const char *due)
{
	if (r->rc == 0)
		r->rc = nsl_error_set(EINVAL, "%s: line %d: %s", r->what, line_of(r), due);
}

static void skip(struct reader *r)
{
	while (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r')
		r->p++;
}

static char *string(struct reader *r)
{
	size_t cap = 16, n = 0;
	char *s = malloc(cap);

	if (s == NULL || *r->p != '"') {
		free(s);
		fail(r, "expected a string");
		return NULL;
	}
	for (r->p++; *r->p != '"'; r->p++) {
		char c = *r->p;

		if (c == 0 || (unsigned char)c < 0x20) {
			fail(r, "a string is not closed");
			free(s);
			return NULL;
		}
		if (c == '\\') {
			static const char from[] = "\"\\/nbfrt", to[] = "\"\\/\n\b\f\r\t";
			const char *k = strchr(from, *++r->p);

			if (*r->p == 'u') {
				unsigned v;

				if (sscanf(r->p + 1, "%4x", &v) != 1 || v >= 0x80) {
					fail(r, "only \\u escapes below 0x80 are read");
					free(s);
					return NULL;
				}
				c = (char)v;
				r->p += 4;
			} else if (k == NULL || *r->p == 0) {
				fail(r, "a bad escape in a string");
				free(s);
				return NULL;
			} else {
				c = to[k - from];
			}
		}
		if (n + 2 > cap) {
			char *t = realloc(s, cap *= 2);

			if (t == NULL) {
				free(s);
				fail(r, "out of memory");
				return NULL;
			}
			s = t;
		}
		s[n++] = c;
	}
	r->p++;
	s[n] = 0;
	return s;
}

static bool value(struct reader *r, struct nsl_json *v, int depth);

static bool push(struct reader *r, struct nsl_json *v, struct nsl_json **child)
{
	struct nsl_json *t = realloc(v->child, sizeof(*t) * (size_t)(v->n + 1));

	if (t == NULL) {
		fail(r, "out of memory");
		return false;
	}
	v->child = t;
	*child = &t[v->n++];
	memset(*child, 0, sizeof(**child));
	return true;
}

static bool container(struct reader *r, struct nsl_json *v, int depth, bool object)
{
	const char close = object ? '}' : ']';

	v->type = object ? NSL_JSON_OBJECT : NSL_JSON_ARRAY;
	r->p++;
	skip(r);
	if (*r->p == close) {
		r->p++;
		return true;
	}
	for (;;) {
		struct nsl_json *c;
		char *key = NULL;

		skip(r);
		if (object) {
			if ((key = string(r)) == NULL)
				return false;
			skip(r);
			if (*r->p != ':') {
				free(key);
				fail(r, "expected ':' after a key");
				return false;
			}
			r->p++;
		}
		if (!push(r, v, &c)) {
			free(key);
			return false;
		}
		c->key = key;
		if (!value(r, c, depth + 1))
			return false;
		skip(r);
		if (*r->p == ',') {
			r->p++;
			continue;
		}
		if (*r->p == close) {
			r->p++;
			return true;
		}
		fail(r, object ? "expected ',' or '}'" : "expected ',' or ']'");
		return false;
	}
}

static bool value(struct reader *r, struct nsl_json *v, int depth)
{
	char *end;

	if (depth > MAX_DEPTH) {
		fail(r, "nested too deep");
		return false;
	}
	skip(r);
	switch (*r->p) {
	case '{': return container(r, v, depth, true);
	case '[': return container(r, v, depth, false);
	case '"':
		v->type = NSL_JSON_STRING;
		return (v->string = string(r)) != NULL;
	default:
		break;
	}
	if (strncmp(r->p, "true", 4) == 0 || strncmp(r->p, "false", 5) == 0) {
		v->type = NSL_JSON_BOOL;
		v->number = *r->p == 't';
		r->p += *r->p == 't' ? 4 : 5;
		return true;
	}
	if (strncmp(r->p, "null", 4) == 0) {
		v->type = NSL_JSON_NULL;
		r->p += 4;
		return true;
	}
	v->type = NSL_JSON_NUMBER;
	v->number = strtod(r->p, &end);
	if (end == r->p || !isfinite(v->number)) {
		fail(r, "expected a value");
		return false;
	}
	r->p = end;
	return true;
}

static void release(struct nsl_json *v)
{
	for (int i = 0; i < v->n; i++)
		release(&v->child[i]);
	free(v->child);
	free(v->string);
	free(v->key);
}

void nsl_json_free(struct nsl_json *v)
{
	if (v == NULL)
		return;
	release(v);
	free(v);
}

struct nsl_json *nsl_json_parse(const char *text, const char *what)
{
	struct reader r = { .p = text, .start = text, .what = what };
	struct nsl_json *v = calloc(1, sizeof(*v));

	if (v == NULL) {
		nsl_error_set(ENOMEM, "%s: out of memory", what);
		return NULL;
	}
	if (value(&r, v, 0)) {
		skip(&r);
		if (*r.p != 0)
			fail(&r, "the text goes on after the value");
	} else {
		fail(&r, "not JSON");
	}
	if (r.rc < 0) {
		nsl_json_free(v);
		return NULL;
	}
	return v;
}

struct nsl_json *nsl_json_load(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *text = NULL;
	long size;
	struct nsl_json *v = NULL;

	if (f == NULL) {
		nsl_error_set(errno, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || (unsigned long)size > MAX_FILE ||
	    fseek(f, 0, SEEK_SET) != 0 || (text = malloc((size_t)size + 1)) == NULL ||
	    fread(text, 1, (size_t)size, f) != (size_t)size)
		nsl_error_set(EIO, "%s: cannot read it (larger than %u MiB?)", path, MAX_FILE >> 20);
	else {
		text[size] = 0;
		v = nsl_json_parse(text, path);
	}
	free(text);
	fclose(f);
	return v;
}

const struct nsl_json *nsl_json_get(const struct nsl_json *v, const char *key)
{
	if (v == NULL || v->type != NSL_JSON_OBJECT)
		return NULL;
	for (int i = 0; i < v->n; i++)
		if (strcmp(v->child[i].key, key) == 0)
			return &v->child[i];
	return NULL;
}
