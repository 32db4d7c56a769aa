/*
 * spec.c -- what a counter key and an increment are, for every path in.
 *
 * A key reaches dsys-counter five ways: a CLI argument, a line of
 * `incr -` (bare, or {"key":..,"by":..}), a POST /incr body, a
 * /counters/KEY path and a ?prefix= parameter.  Each path used to check
 * keys its own way, so a key could be accepted on one and mangled on
 * another (invalid UTF-8 was stored raw but printed as U+FFFD).  Now
 * they all end in key_check, and the object parser lives here once for
 * the service (request bodies) and the CLI (input lines).
 *
 * The rule for keys: 1..COUNTER_MAX_KEY bytes of valid UTF-8.  JSON
 * output can carry nothing else losslessly, and a key that cannot be
 * printed as it is stored cannot be asked for again.
 */
#include <errno.h>
#include <string.h>

#include "dsys-counter.h"

/* Is s[0..n) well-formed UTF-8 (RFC 3629: no overlongs, no surrogates,
 * nothing past U+10FFFF)? */
static bool utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned char c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t len;
		unsigned lo = 0x80, hi = 0xbf;   /* the range of the second byte */
		if (c >= 0xc2 && c <= 0xdf)
			len = 2;
		else if (c >= 0xe0 && c <= 0xef) {
			len = 3;
			if (c == 0xe0)
				lo = 0xa0;       /* overlong */
			if (c == 0xed)
				hi = 0x9f;       /* surrogates */
		} else if (c >= 0xf0 && c <= 0xf4) {
			len = 4;
			if (c == 0xf0)
				lo = 0x90;
			if (c == 0xf4)
				hi = 0x8f;       /* past U+10FFFF */
		} else
			return false;
		if (n - i < len || s[i + 1] < lo || s[i + 1] > hi)
			return false;
		for (size_t k = 2; k < len; k++)
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
		i += len;
	}
	return true;
}

const char *key_check(const char *key, size_t len)
{
	if (len == 0)
		return "key is empty";
	if (len > COUNTER_MAX_KEY)
		return "key is longer than 512 bytes";
	if (!utf8_valid((const unsigned char *)key, len))
		return "key is not valid UTF-8";
	return NULL;
}

const char *prefix_check(const char *prefix, size_t len)
{
	if (len > COUNTER_MAX_KEY)
		return "prefix is longer than 512 bytes";
	if (!utf8_valid((const unsigned char *)prefix, len))
		return "prefix is not valid UTF-8";
	return NULL;
}

/* ------------------------------------------------------------ {"key":..,"by":..} */

static int spec_member(void *ctx, const struct json_token *k, const struct json_token *v)
{
	struct incr_spec *s = ctx;
	if (json_token_eq(k, "key")) {
		if (v->kind != JSON_KIND_STRING) {
			s->why = "key must be a string";
			return -EINVAL;
		}
		s->key = *v;
		s->has_key = true;
	} else if (json_token_eq(k, "by")) {
		if (v->kind != JSON_KIND_NUMBER) {
			s->why = "by must be an integer";
			return -EINVAL;
		}
		int r = json_parse_i64(v->text, v->len, &s->by);
		if (r < 0) {
			s->why = r == -ERANGE ? "by is outside the int64 range" : "by must be an integer";
			return -EINVAL;
		}
	}
	return 0;
}

bool only_space(const char *p, size_t from, size_t len)
{
	for (size_t j = from; j < len; j++)
		if (p[j] != ' ' && p[j] != '\t' && p[j] != '\r' && p[j] != '\n')
			return false;
	return true;
}

int incr_spec_parse(const char *text, size_t len, int64_t def_by, struct incr_spec *s, long *used)
{
	memset(s, 0, sizeof *s);
	s->by = def_by;
	long e = json_scan_object(text, len, spec_member, s);
	if (e < 0) {
		if (!s->why)
			s->why = "malformed JSON: expected {\"key\":\"K\",\"by\":N}";
		return -1;
	}
	if (!s->has_key) {
		s->why = "missing key";
		return -1;
	}
	*used = e;
	return 0;
}

int incr_spec_key(struct incr_spec *s, char *keybuf, const char **key, size_t *key_len)
{
	const struct json_token *t = &s->key;
	if (!t->escaped) {
		*key = t->text;
		*key_len = t->len;
	} else {
		if (t->len > COUNTER_KEYBUF) {
			s->why = "key is longer than 512 bytes";
			return -1;
		}
		long n = json_token_unescape(t, keybuf);
		if (n < 0) {
			s->why = "malformed JSON: bad escape in key";
			return -1;
		}
		*key = keybuf;
		*key_len = (size_t)n;
	}
	s->why = key_check(*key, *key_len);
	return s->why ? -1 : 0;
}
