/*
 * base/json.c -- the JSON writer, the exact-integer readers, and the
 * allocation-free object scanner.
 *
 * The writer tracks, per nesting level, whether a comma is due; json_key
 * writes the key and its colon and clears the flag so the value that
 * follows does not get a comma of its own.  Depth is bounded by
 * JSON_MAX_DEPTH and checked with INVARIANT: our own callers build the
 * structure, so going deeper is a bug, not bad input.
 *
 * The scanner is a strict RFC 8259 recogniser (no trailing commas, no
 * comments, no leading zeros, no raw control characters in strings) that
 * reports tokens as slices of the input.  It recurses for nested values,
 * bounded by JSON_MAX_DEPTH, so hostile input cannot exhaust the stack.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "base/hex.h"
#include "base/invariant.h"
#include "base/json.h"

/* ------------------------------------------------------------ writing */

void json_writer_init(struct json_writer *w, struct buf *out)
{
	w->out = out;
	w->depth = 0;
	w->need_comma[0] = false;
}

/* Before any value: a comma if a sibling came before it. */
static void pre_value(struct json_writer *w)
{
	if (w->need_comma[w->depth])
		buf_putc(w->out, ',');
	w->need_comma[w->depth] = true;
}

static void open_(struct json_writer *w, char c)
{
	pre_value(w);
	buf_putc(w->out, c);
	INVARIANT(w->depth + 1 < JSON_MAX_DEPTH);
	w->depth++;
	w->need_comma[w->depth] = false;
}

static void close_(struct json_writer *w, char c)
{
	INVARIANT(w->depth > 0);
	w->depth--;
	buf_putc(w->out, c);
}

void json_obj_begin(struct json_writer *w) { open_(w, '{'); }
void json_obj_end(struct json_writer *w) { close_(w, '}'); }
void json_arr_begin(struct json_writer *w) { open_(w, '['); }
void json_arr_end(struct json_writer *w) { close_(w, ']'); }

void json_key(struct json_writer *w, const char *key)
{
	pre_value(w);
	json_escape(w->out, key, strlen(key));
	buf_putc(w->out, ':');
	w->need_comma[w->depth] = false; /* the value is not a sibling */
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if invalid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	unsigned c = p[0];
	size_t len;
	unsigned min;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2, min = 0x80;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3, min = 0x800;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4, min = 0x10000;
	else
		return 0;
	if (n < len)
		return 0;
	unsigned cp = c & (0x7f >> len);
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

void json_escape(struct buf *out, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	buf_reserve(out, n + 2);
	buf_putc(out, '"');
	size_t run = 0; /* bytes at p[i-run..i) to copy as they are */
	for (size_t i = 0; i < n;) {
		unsigned c = p[i];
		if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
			run++, i++;
			continue;
		}
		if (c >= 0x80) {
			size_t l = utf8_len(p + i, n - i);
			if (l) {
				run += l, i += l;
				continue;
			}
		}
		buf_append(out, p + i - run, run);
		run = 0;
		switch (c) {
		case '"': buf_puts(out, "\\\""); break;
		case '\\': buf_puts(out, "\\\\"); break;
		case '\n': buf_puts(out, "\\n"); break;
		case '\r': buf_puts(out, "\\r"); break;
		case '\t': buf_puts(out, "\\t"); break;
		case '\b': buf_puts(out, "\\b"); break;
		case '\f': buf_puts(out, "\\f"); break;
		default:
			if (c < 0x20) {
				char e[7] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], 0};
				buf_puts(out, e);
			} else {
				buf_puts(out, "\xef\xbf\xbd"); /* invalid UTF-8: U+FFFD */
			}
		}
		i++;
	}
	buf_append(out, p + n - run, run);
	buf_putc(out, '"');
}

void json_strn(struct json_writer *w, const char *s, size_t n)
{
	pre_value(w);
	json_escape(w->out, s, n);
}

void json_str(struct json_writer *w, const char *s)
{
	if (!s) {
		json_null(w);
		return;
	}
	json_strn(w, s, strlen(s));
}

void json_i64(struct json_writer *w, int64_t v)
{
	pre_value(w);
	buf_put_i64(w->out, v);
}

void json_u64(struct json_writer *w, uint64_t v)
{
	pre_value(w);
	buf_put_u64(w->out, v);
}

void json_double(struct json_writer *w, double v)
{
	pre_value(w);
	if (!isfinite(v)) {
		buf_puts(w->out, "null");
		return;
	}
	if (v == (double)(int64_t)v && fabs(v) < 9007199254740992.0) {
		buf_put_i64(w->out, (int64_t)v);
		return;
	}
	/* the shortest of %.15g..%.17g that reads back as the same double */
	char tmp[32];
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(tmp, sizeof tmp, "%.*g", prec, v);
		if (strtod(tmp, NULL) == v)
			break;
	}
	buf_puts(w->out, tmp);
}

void json_bool(struct json_writer *w, bool v)
{
	pre_value(w);
	buf_puts(w->out, v ? "true" : "false");
}

void json_null(struct json_writer *w)
{
	pre_value(w);
	buf_puts(w->out, "null");
}

void json_raw(struct json_writer *w, const char *text, size_t n)
{
	pre_value(w);
	buf_append(w->out, text, n);
}

void json_kv_str(struct json_writer *w, const char *k, const char *s) { json_key(w, k); json_str(w, s); }
void json_kv_strn(struct json_writer *w, const char *k, const char *s, size_t n) { json_key(w, k); json_strn(w, s, n); }
void json_kv_i64(struct json_writer *w, const char *k, int64_t v) { json_key(w, k); json_i64(w, v); }
void json_kv_u64(struct json_writer *w, const char *k, uint64_t v) { json_key(w, k); json_u64(w, v); }
void json_kv_double(struct json_writer *w, const char *k, double v) { json_key(w, k); json_double(w, v); }
void json_kv_bool(struct json_writer *w, const char *k, bool v) { json_key(w, k); json_bool(w, v); }

int json_emit(struct buf *b)
{
	buf_putc(b, '\n');
	size_t n = fwrite(b->data, 1, b->len, stdout);
	int rc = (n == b->len && fflush(stdout) == 0) ? 0 : -1;
	buf_reset(b);
	return rc;
}

void json_time_rfc3339(char *out, uint64_t unix_ms)
{
	time_t secs = (time_t)(unix_ms / 1000);
	struct tm tm;
	gmtime_r(&secs, &tm);
	size_t n = strftime(out, 21, "%Y-%m-%dT%H:%M:%S", &tm);
	unsigned ms = (unsigned)(unix_ms % 1000);
	out[n++] = '.';
	out[n++] = (char)('0' + ms / 100);
	out[n++] = (char)('0' + ms / 10 % 10);
	out[n++] = (char)('0' + ms % 10);
	out[n++] = 'Z';
	out[n] = '\0';
}

/* ------------------------------------------------------------ reading */

json_value *json_parse(const char *text, size_t len, size_t *err_offset)
{
	/* cJSON wants a NUL-terminated string; text may not be one. */
	const char *end = NULL;
	cJSON *v;
	if (len && text[len - 1] == '\0') {
		v = cJSON_ParseWithOpts(text, &end, 1);
	} else {
		struct buf tmp = BUF_INIT;
		buf_append(&tmp, text, len);
		if (memchr(text, '\0', len)) {
			buf_free(&tmp);
			if (err_offset)
				*err_offset = (size_t)((const char *)memchr(text, '\0', len) - text);
			return NULL;
		}
		v = cJSON_ParseWithOpts(tmp.data, &end, 1);
		if (!v && err_offset && end)
			*err_offset = (size_t)(end - tmp.data);
		buf_free(&tmp);
		return v;
	}
	if (!v && err_offset && end)
		*err_offset = (size_t)(end - text);
	return v;
}

void json_free(json_value *v) { cJSON_Delete(v); }

json_value *json_get(const json_value *obj, const char *key)
{
	if (!obj || !cJSON_IsObject(obj))
		return NULL;
	return cJSON_GetObjectItemCaseSensitive(obj, key);
}

int json_get_i64(const json_value *obj, const char *key, int64_t *out)
{
	const cJSON *v = json_get(obj, key);
	if (!v)
		return -ENOENT;
	if (!cJSON_IsNumber(v))
		return -EINVAL;
	double d = v->valuedouble;
	if (d != floor(d))
		return -EINVAL;
	if (fabs(d) >= 9007199254740992.0) /* 2^53 and 2^53+1 read the same */
		return -ERANGE;
	*out = (int64_t)d;
	return 0;
}

const char *json_get_str(const json_value *obj, const char *key)
{
	const cJSON *v = json_get(obj, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

int json_parse_i64(const char *s, size_t n, int64_t *out)
{
	size_t i = 0;
	bool neg = false;
	if (i < n && s[i] == '-')
		neg = true, i++;
	if (i == n || s[i] < '0' || s[i] > '9')
		return -EINVAL;
	if (s[i] == '0' && i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '9')
		return -EINVAL; /* leading zero */
	uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	bool over = false;
	for (; i < n; i++) {
		char c = s[i];
		if (c == '.' || c == 'e' || c == 'E')
			return -EINVAL;
		if (c < '0' || c > '9')
			return -EINVAL;
		unsigned d = (unsigned)(c - '0');
		if (v > (lim - d) / 10)
			over = true;
		else
			v = v * 10 + d;
	}
	if (over)
		return -ERANGE;
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

/* ------------------------------------------------------------ scanner */

static size_t skip_ws(const char *t, size_t len, size_t i)
{
	while (i < len && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r'))
		i++;
	return i;
}

/* The four hex digits at t[i], or -1. */
static long hex4(const char *t, size_t len, size_t i)
{
	if (i + 4 > len)
		return -1;
	long v = 0;
	for (size_t k = i; k < i + 4; k++) {
		char h = t[k];
		int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
		if (d < 0)
			return -1;
		v = v * 16 + d;
	}
	return v;
}

/* A string starting at t[i] == '"'; returns the index after the closing
 * quote, or -1.  A \u escape of a lone UTF-16 surrogate is refused, as
 * cJSON refuses it: every JSON reading in dsys takes the same texts. */
static long scan_string(const char *t, size_t len, size_t i, bool *escaped)
{
	*escaped = false;
	i++;
	while (i < len) {
		unsigned char c = (unsigned char)t[i];
		if (c == '"')
			return (long)i + 1;
		if (c < 0x20)
			return -1;
		if (c == '\\') {
			*escaped = true;
			if (i + 1 >= len)
				return -1;
			char e = t[i + 1];
			if (e == 'u') {
				long u = hex4(t, len, i + 2);
				if (u < 0 || (u >= 0xDC00 && u <= 0xDFFF))
					return -1;
				if (u >= 0xD800 && u <= 0xDBFF) {
					/* a high surrogate: its low half must follow, as
					 * cJSON requires (it refuses the whole text else) */
					long lo = i + 7 < len && t[i + 6] == '\\' && t[i + 7] == 'u' ? hex4(t, len, i + 8) : -1;
					if (lo < 0xDC00 || lo > 0xDFFF)
						return -1;
					i += 6;
				}
				i += 6;
				continue;
			}
			if (!strchr("\"\\/bfnrt", e) || e == '\0')
				return -1;
			i += 2;
			continue;
		}
		if (c >= 0x80) {
			size_t l = utf8_len((const unsigned char *)t + i, len - i);
			if (!l)
				return -1;
			i += l;
			continue;
		}
		i++;
	}
	return -1;
}

static long scan_number(const char *t, size_t len, size_t i)
{
	size_t s = i;
	if (i < len && t[i] == '-')
		i++;
	if (i >= len)
		return -1;
	if (t[i] == '0') {
		i++;
	} else if (t[i] >= '1' && t[i] <= '9') {
		while (i < len && t[i] >= '0' && t[i] <= '9')
			i++;
	} else {
		return -1;
	}
	if (i < len && t[i] == '.') {
		i++;
		size_t d = i;
		while (i < len && t[i] >= '0' && t[i] <= '9')
			i++;
		if (i == d)
			return -1;
	}
	if (i < len && (t[i] == 'e' || t[i] == 'E')) {
		i++;
		if (i < len && (t[i] == '+' || t[i] == '-'))
			i++;
		size_t d = i;
		while (i < len && t[i] >= '0' && t[i] <= '9')
			i++;
		if (i == d)
			return -1;
	}
	return i > s ? (long)i : -1;
}

static long scan_value(const char *t, size_t len, size_t i, int depth, struct json_token *tok);

static long scan_container(const char *t, size_t len, size_t i, int depth, bool object)
{
	char close = object ? '}' : ']';
	struct json_token tmp;
	if (depth >= JSON_MAX_DEPTH)
		return -1;
	i = skip_ws(t, len, i + 1);
	if (i < len && t[i] == close)
		return (long)i + 1;
	for (;;) {
		if (object) {
			bool esc;
			if (i >= len || t[i] != '"')
				return -1;
			long e = scan_string(t, len, i, &esc);
			if (e < 0)
				return -1;
			i = skip_ws(t, len, (size_t)e);
			if (i >= len || t[i] != ':')
				return -1;
			i++;
		}
		long e = scan_value(t, len, i, depth + 1, &tmp);
		if (e < 0)
			return -1;
		i = skip_ws(t, len, (size_t)e);
		if (i >= len)
			return -1;
		if (t[i] == close)
			return (long)i + 1;
		if (t[i] != ',')
			return -1;
		i = skip_ws(t, len, i + 1);
	}
}

static bool lit(const char *t, size_t len, size_t i, const char *w)
{
	size_t n = strlen(w);
	return i + n <= len && memcmp(t + i, w, n) == 0;
}

/* Scan the value at t[i..] (after whitespace); returns the index after it. */
static long scan_value(const char *t, size_t len, size_t i, int depth, struct json_token *tok)
{
	i = skip_ws(t, len, i);
	if (i >= len)
		return -1;
	long e;
	tok->escaped = false;
	switch (t[i]) {
	case '"':
		e = scan_string(t, len, i, &tok->escaped);
		if (e < 0)
			return -1;
		tok->kind = JSON_KIND_STRING;
		tok->text = t + i + 1;
		tok->len = (size_t)e - i - 2;
		return e;
	case '{':
	case '[':
		e = scan_container(t, len, i, depth, t[i] == '{');
		tok->kind = t[i] == '{' ? JSON_KIND_OBJECT : JSON_KIND_ARRAY;
		break;
	case 't':
		e = lit(t, len, i, "true") ? (long)i + 4 : -1;
		tok->kind = JSON_KIND_TRUE;
		break;
	case 'f':
		e = lit(t, len, i, "false") ? (long)i + 5 : -1;
		tok->kind = JSON_KIND_FALSE;
		break;
	case 'n':
		e = lit(t, len, i, "null") ? (long)i + 4 : -1;
		tok->kind = JSON_KIND_NULL;
		break;
	default:
		e = scan_number(t, len, i);
		tok->kind = JSON_KIND_NUMBER;
	}
	if (e < 0)
		return -1;
	tok->text = t + i;
	tok->len = (size_t)e - i;
	return e;
}

long json_scan_value(const char *text, size_t len, struct json_token *tok)
{
	long e = scan_value(text, len, 0, 0, tok);
	return e < 0 ? -EINVAL : e;
}

long json_scan_object(const char *t, size_t len, json_member_fn fn, void *ctx)
{
	size_t i = skip_ws(t, len, 0);
	if (i >= len || t[i] != '{')
		return -EINVAL;
	i = skip_ws(t, len, i + 1);
	if (i < len && t[i] == '}')
		return (long)i + 1;
	for (;;) {
		struct json_token key, val;
		if (i >= len || t[i] != '"')
			return -EINVAL;
		long e = scan_string(t, len, i, &key.escaped);
		if (e < 0)
			return -EINVAL;
		key.kind = JSON_KIND_STRING;
		key.text = t + i + 1;
		key.len = (size_t)e - i - 2;
		i = skip_ws(t, len, (size_t)e);
		if (i >= len || t[i] != ':')
			return -EINVAL;
		e = scan_value(t, len, i + 1, 1, &val);
		if (e < 0)
			return -EINVAL;
		int r = fn(ctx, &key, &val);
		if (r < 0)
			return r;
		i = skip_ws(t, len, (size_t)e);
		if (i >= len)
			return -EINVAL;
		if (t[i] == '}')
			return (long)i + 1;
		if (t[i] != ',')
			return -EINVAL;
		i = skip_ws(t, len, i + 1);
	}
}

bool json_token_eq(const struct json_token *t, const char *s)
{
	size_t n = strlen(s);
	return !t->escaped && t->len == n && memcmp(t->text, s, n) == 0;
}

long json_token_unescape(const struct json_token *t, char *out)
{
	const char *s = t->text;
	size_t n = t->len, o = 0;
	for (size_t i = 0; i < n;) {
		if (s[i] != '\\') {
			out[o++] = s[i++];
			continue;
		}
		char e = s[i + 1];
		i += 2;
		switch (e) {
		case 'b': out[o++] = '\b'; break;
		case 'f': out[o++] = '\f'; break;
		case 'n': out[o++] = '\n'; break;
		case 'r': out[o++] = '\r'; break;
		case 't': out[o++] = '\t'; break;
		case 'u': {
			unsigned cp = 0;
			for (int k = 0; k < 4; k++)
				cp = cp << 4 | (unsigned)hex_val((unsigned char)s[i + k]);
			i += 4;
			if (cp >= 0xdc00 && cp <= 0xdfff)
				return -EINVAL;
			if (cp >= 0xd800 && cp <= 0xdbff) {
				if (i + 6 > n || s[i] != '\\' || s[i + 1] != 'u')
					return -EINVAL;
				unsigned lo = 0;
				for (int k = 0; k < 4; k++)
					lo = lo << 4 | (unsigned)hex_val((unsigned char)s[i + 2 + k]);
				if (lo < 0xdc00 || lo > 0xdfff)
					return -EINVAL;
				i += 6;
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			}
			/* a \u escape takes 6 input bytes and at most 4 output
			 * bytes (a pair: 12 in, 4 out), so out never outgrows len */
			if (cp < 0x80) {
				out[o++] = (char)cp;
			} else if (cp < 0x800) {
				out[o++] = (char)(0xc0 | cp >> 6);
				out[o++] = (char)(0x80 | (cp & 0x3f));
			} else if (cp < 0x10000) {
				out[o++] = (char)(0xe0 | cp >> 12);
				out[o++] = (char)(0x80 | ((cp >> 6) & 0x3f));
				out[o++] = (char)(0x80 | (cp & 0x3f));
			} else {
				out[o++] = (char)(0xf0 | cp >> 18);
				out[o++] = (char)(0x80 | ((cp >> 12) & 0x3f));
				out[o++] = (char)(0x80 | ((cp >> 6) & 0x3f));
				out[o++] = (char)(0x80 | (cp & 0x3f));
			}
			break;
		}
		default: out[o++] = e; /* " \ / */
		}
	}
	return (long)o;
}
