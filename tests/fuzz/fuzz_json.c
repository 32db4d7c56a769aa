/*
 * fuzz_json.c -- libFuzzer target for lib/base/json: the allocation-free
 * scanner that reads request bodies and JSON lines, the cJSON wrapper, and
 * the writer's escaping.
 *
 * Every call gets a copy of exactly the input bytes (no NUL after them),
 * so ASan reports any read past the end.  Properties (trap on violation):
 *   - json_scan_object and json_scan_value return -EINVAL, a callback's
 *     error, or a length in 1..len; every token they hand out lies inside
 *     the input; a string token unescapes to at most its raw length, and a
 *     number token either parses as an exact integer or is refused;
 *   - an object the scanner takes whole, cJSON takes too (cJSON being the
 *     second opinion; but for lone surrogates and deep nesting, which
 *     cJSON refuses and the grammar allows);
 *   - any bytes, escaped by the writer, scan back as one string token that
 *     spans the whole output.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/json.h"

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

struct span { const char *lo, *hi; int members; };

static void check_token(const struct span *s, const struct json_token *t)
{
	CHECK(t->text >= s->lo && t->text + t->len <= s->hi);
	if (t->kind == JSON_KIND_STRING) {
		char *out = malloc(t->len ? t->len : 1);
		long n = json_token_unescape(t, out);
		CHECK(n == -EINVAL || (n >= 0 && (size_t)n <= t->len));
		free(out);
	} else if (t->kind == JSON_KIND_NUMBER) {
		int64_t v;
		int r = json_parse_i64(t->text, t->len, &v);
		CHECK(r == 0 || r == -EINVAL || r == -ERANGE);
	}
}

static int on_member(void *ctx, const struct json_token *key, const struct json_token *value)
{
	struct span *s = ctx;
	CHECK(key->kind == JSON_KIND_STRING);
	check_token(s, key);
	check_token(s, value);
	(void)json_token_eq(key, "key");
	return ++s->members > 1000 ? -E2BIG : 0;
}

static bool only_space(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\n' && p[i] != '\r')
			return false;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 65536)
		return 0;
	char *text = malloc(size ? size : 1);
	memcpy(text, data, size);
	struct span s = { text, text + size, 0 };

	long n = json_scan_object(text, size, on_member, &s);
	CHECK(n == -EINVAL || n == -E2BIG || (n > 0 && (size_t)n <= size));

	struct json_token tok;
	long m = json_scan_value(text, size, &tok);
	CHECK(m == -EINVAL || (m > 0 && (size_t)m <= size));
	if (m > 0)
		check_token(&s, &tok);

	/* second opinion: a whole object the scanner took, cJSON must take,
	 * and the other way round (cJSON reads a NUL-terminated copy) */
	if (s.members <= 1000 && size < 4096) {
		char *z = malloc(size + 1);
		memcpy(z, data, size);
		z[size] = 0;
		/* cJSON refuses nesting past its limit: no second opinion there
		 * (lone surrogates both refuse) */
		bool comparable = memchr(data, 0, size) == NULL && size < 900;
		size_t off = 0;
		json_value *v = json_parse(z, size, &off);
		bool scanner_whole = n > 0 && only_space(text + n, size - (size_t)n);
		if (comparable && scanner_whole)
			CHECK(v != NULL);
		json_free(v);
		free(z);
	}

	/* the writer's escaping of arbitrary bytes reads back as one string */
	struct buf b = BUF_INIT;
	json_escape(&b, text, size);
	m = json_scan_value(b.data ? b.data : "", b.len, &tok);
	CHECK(m > 0 && (size_t)m == b.len && tok.kind == JSON_KIND_STRING);
	buf_free(&b);
	free(text);
	return 0;
}
