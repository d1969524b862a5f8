// SPDX-License-Identifier: GPL-2.0-only
/*
 * kgr lab: check that stdin is one JSON document, and print values by path.
 *
 *   jsonck [PATH...]
 *
 * A path names object keys and array elements: ".status",
 * ".transition.target", ".threads[].tid" ("[]" = every element). Each value
 * found at a given path is printed on its own line: strings unquoted
 * (escapes kept except \" and \\), numbers/true/false/null as written,
 * objects and arrays as "{...}" / "[...]". Exit 0 when the document is valid,
 * 1 (with a message on stderr) when not.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *doc;
static size_t pos;
static char **paths;
static int npaths;

static void fail(const char *what)
{
	fprintf(stderr, "jsonck: invalid JSON at byte %zu: %s\n", pos, what);
	exit(1);
}

static void ws(void)
{
	while (doc[pos] == ' ' || doc[pos] == '\t' || doc[pos] == '\n' ||
	       doc[pos] == '\r')
		pos++;
}

static int wanted(const char *path)
{
	int i;

	for (i = 0; i < npaths; i++)
		if (!strcmp(paths[i], path))
			return 1;
	return 0;
}

/* Parses a string at pos; returns its content (escapes \" \\ resolved). */
static char *string(void)
{
	size_t cap = 64, n = 0;
	char *s = malloc(cap);

	if (doc[pos] != '"')
		fail("expected a string");
	pos++;
	for (;;) {
		char c = doc[pos++];

		if (c == '\0' || (unsigned char)c < 0x20)
			fail("unterminated string or control character");
		if (c == '"')
			break;
		if (c == '\\') {
			char e = doc[pos++];

			if (e == 'u') {
				int i;

				for (i = 0; i < 4; i++)
					if (!isxdigit((unsigned char)doc[pos++]))
						fail("bad \\u escape");
				c = '?';
			} else if (strchr("\"\\/bfnrt", e) && e) {
				c = (e == '"' || e == '\\' || e == '/') ? e : ' ';
			} else {
				fail("bad escape");
			}
		}
		if (n + 2 > cap)
			s = realloc(s, cap *= 2);
		s[n++] = c;
	}
	s[n] = '\0';
	return s;
}

static void value(const char *path);

static void literal(const char *word)
{
	size_t n = strlen(word);

	if (strncmp(doc + pos, word, n))
		fail("unexpected token");
	pos += n;
}

static void value(const char *path)
{
	size_t start;
	char *sub;
	int print = wanted(path);

	ws();
	start = pos;
	switch (doc[pos]) {
	case '{':
		pos++;
		ws();
		if (doc[pos] == '}') {
			pos++;
			break;
		}
		for (;;) {
			char *key;

			ws();
			key = string();
			ws();
			if (doc[pos++] != ':')
				fail("expected ':'");
			sub = malloc(strlen(path) + strlen(key) + 2);
			sprintf(sub, "%s.%s", path, key);
			value(sub);
			free(sub);
			free(key);
			ws();
			if (doc[pos] == ',') {
				pos++;
				continue;
			}
			if (doc[pos++] != '}')
				fail("expected ',' or '}'");
			break;
		}
		break;
	case '[':
		pos++;
		ws();
		if (doc[pos] == ']') {
			pos++;
			break;
		}
		sub = malloc(strlen(path) + 3);
		sprintf(sub, "%s[]", path);
		for (;;) {
			value(sub);
			ws();
			if (doc[pos] == ',') {
				pos++;
				continue;
			}
			if (doc[pos++] != ']')
				fail("expected ',' or ']'");
			break;
		}
		free(sub);
		break;
	case '"': {
		char *s = string();

		if (print)
			printf("%s\n", s);
		free(s);
		return;
	}
	case 't':
		literal("true");
		break;
	case 'f':
		literal("false");
		break;
	case 'n':
		literal("null");
		break;
	default:
		if (doc[pos] == '-')
			pos++;
		if (!isdigit((unsigned char)doc[pos]))
			fail("unexpected character");
		while (isdigit((unsigned char)doc[pos]))
			pos++;
		if (doc[pos] == '.') {
			pos++;
			if (!isdigit((unsigned char)doc[pos]))
				fail("bad number");
			while (isdigit((unsigned char)doc[pos]))
				pos++;
		}
		if (doc[pos] == 'e' || doc[pos] == 'E') {
			pos++;
			if (doc[pos] == '+' || doc[pos] == '-')
				pos++;
			if (!isdigit((unsigned char)doc[pos]))
				fail("bad number");
			while (isdigit((unsigned char)doc[pos]))
				pos++;
		}
		break;
	}
	if (print) {
		if (doc[start] == '{')
			printf("{...}\n");
		else if (doc[start] == '[')
			printf("[...]\n");
		else
			printf("%.*s\n", (int)(pos - start), doc + start);
	}
}

int main(int argc, char **argv)
{
	size_t cap = 4096, n = 0, got;

	doc = malloc(cap);
	while ((got = fread(doc + n, 1, cap - n - 1, stdin)) > 0) {
		n += got;
		if (n + 1 >= cap)
			doc = realloc(doc, cap *= 2);
	}
	doc[n] = '\0';
	if (strlen(doc) != n)
		fail("NUL byte in input");
	paths = argv + 1;
	npaths = argc - 1;
	value("");
	ws();
	if (doc[pos] != '\0')
		fail("trailing data after the document");
	return 0;
}
