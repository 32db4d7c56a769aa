/* Unit tests of lib/base/json: the writer, exact integers, the scanner. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "base/json.h"
#include "tap.h"

static const char *write_sample(struct buf *b)
{
	struct json_writer w;
	buf_reset(b);
	json_writer_init(&w, b);
	json_obj_begin(&w);
	json_kv_str(&w, "event", "ready");
	json_kv_i64(&w, "min", INT64_MIN);
	json_kv_u64(&w, "max", UINT64_MAX);
	json_key(&w, "list");
	json_arr_begin(&w);
	json_i64(&w, 1);
	json_bool(&w, true);
	json_null(&w);
	json_obj_begin(&w);
	json_obj_end(&w);
	json_arr_end(&w);
	json_kv_double(&w, "half", 0.5);
	json_kv_double(&w, "nan", 0.0 / 0.0);
	json_obj_end(&w);
	return b->data;
}

struct seen {
	int64_t by;
	char key[64];
	int members;
};

static int on_member(void *ctx, const struct json_token *k, const struct json_token *v)
{
	struct seen *s = ctx;
	s->members++;
	if (json_token_eq(k, "by") && v->kind == JSON_KIND_NUMBER)
		return json_parse_i64(v->text, v->len, &s->by);
	if (json_token_eq(k, "key") && v->kind == JSON_KIND_STRING) {
		long n = json_token_unescape(v, s->key);
		if (n < 0)
			return (int)n;
		s->key[n] = '\0';
	}
	return 0;
}

static long scan(const char *text, struct seen *s)
{
	memset(s, 0, sizeof *s);
	return json_scan_object(text, strlen(text), on_member, s);
}

int main(void)
{
	struct buf b = BUF_INIT;

	is_str(write_sample(&b),
	       "{\"event\":\"ready\",\"min\":-9223372036854775808,\"max\":18446744073709551615,"
	       "\"list\":[1,true,null,{}],\"half\":0.5,\"nan\":null}",
	       "the writer places commas and colons and keeps 64-bit integers exact");

	buf_reset(&b);
	json_escape(&b, "a\"b\\c\n\x01\xff\xc3\xa9", 10);
	is_str(b.data, "\"a\\\"b\\\\c\\n\\u0001\xef\xbf\xbd\xc3\xa9\"",
	       "escaping covers quotes, backslash, controls; bad UTF-8 becomes U+FFFD, good stays");

	int64_t v;
	is_int(json_parse_i64("9223372036854775807", 19, &v), 0, "int64 max parses");
	is_int(v, INT64_MAX, "and is exact");
	is_int(json_parse_i64("-9223372036854775808", 20, &v), 0, "int64 min parses");
	is_int(v, INT64_MIN, "and is exact");
	is_int(json_parse_i64("9223372036854775808", 19, &v), -ERANGE, "int64 max + 1 is out of range");
	is_int(json_parse_i64("1.0", 3, &v), -EINVAL, "a fraction is not an integer");
	is_int(json_parse_i64("1e3", 3, &v), -EINVAL, "an exponent is not an integer");
	is_int(json_parse_i64("01", 2, &v), -EINVAL, "a leading zero is not JSON");
	is_int(json_parse_i64("-", 1, &v), -EINVAL, "a lone minus is not a number");

	struct seen s;
	ok(scan("{\"key\":\"k\\u00e9\",\"by\":-5}", &s) > 0, "a flat object scans");
	is_str(s.key, "k\xc3\xa9", "string escapes decode to UTF-8");
	is_int(s.by, -5, "integers come through exactly");
	ok(scan(" {\"nested\":{\"a\":[1,2,{\"b\":null}]},\"by\":1} ", &s) > 0, "nested values are skipped whole");
	is_int(s.members, 2, "and count as one member each");
	ok(scan("{\"key\":\"\\ud83d\\ude00\"}", &s) > 0 && strcmp(s.key, "\xf0\x9f\x98\x80") == 0,
	   "a surrogate pair decodes to one 4-byte character");
	is_int(scan("{\"key\":\"\\ud83d\"}", &s), -EINVAL, "a lone high surrogate is refused");
	is_int(scan("{\"key\":\"k\",\"x\":\"\\udc00\"}", &s), -EINVAL,
	       "a lone low surrogate in a skipped member is refused, as cJSON refuses it");
	is_int(scan("{\"x\":{\"y\":\"\\ud800\\u0041\"},\"by\":1}", &s), -EINVAL,
	       "a high surrogate followed by no low one, nested, is refused");

	static const char *const bad[] = {
		"", "{", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "{,}", "{\"a\":01}", "{\"a\":1.}",
		"{\"a\":tru}", "{\"a\":\"x\ny\"}", "{\"a\":\"\\q\"}", "[1]", "{'a':1}", "{\"a\":1 \"b\":2}",
		"{\"a\":-}", "{\"a\":\"\xff\"}", "{\"a\":[1,]}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		is_int(scan(bad[i], &s), -EINVAL, "malformed input %zu is refused", i);

	/* hostile nesting stops at the depth limit instead of the stack */
	buf_reset(&b);
	buf_puts(&b, "{\"a\":");
	for (int i = 0; i < 100000; i++)
		buf_putc(&b, '[');
	is_int(json_scan_object(b.data, b.len, on_member, &s), -EINVAL,
	       "100000 nested arrays are refused without recursion past the limit");

	const char *doc = "{\"n\":42,\"big\":9007199254740993,\"f\":1.5,\"s\":\"x\"}";
	json_value *tree = json_parse(doc, strlen(doc), NULL);
	ok(tree != NULL, "json_parse reads a document");
	is_int(json_get_i64(tree, "n", &v), 0, "json_get_i64 reads a small integer");
	is_int(v, 42, "exactly");
	is_int(json_get_i64(tree, "big", &v), -ERANGE, "above 2^53 it refuses instead of rounding");
	is_int(json_get_i64(tree, "f", &v), -EINVAL, "a fraction is refused");
	is_int(json_get_i64(tree, "none", &v), -ENOENT, "an absent member says so");
	is_str(json_get_str(tree, "s"), "x", "json_get_str reads a string");
	json_free(tree);
	size_t off = 0;
	ok(json_parse("{\"a\":1} x", 9, &off) == NULL, "trailing garbage after the value is an error");
	ok(json_parse("{\"a\":1}\0junk", 12, &off) == NULL, "an embedded NUL is an error");

	char when[25];
	json_time_rfc3339(when, 1764054096123ULL);
	is_str(when, "2025-11-25T07:01:36.123Z", "RFC 3339 time in UTC with milliseconds");

	buf_free(&b);
	return tap_done();
}
