/*
 * base/json.h -- JSON Lines out, exact 64-bit integers in and out.
 *
 * Writing: struct json_writer appends one JSON value to a struct buf,
 * keeping track of commas, so a line is built with calls that read like
 * the object they make:
 *
 *   struct json_writer w;
 *   json_writer_init(&w, &buf);
 *   json_obj_begin(&w);
 *   json_kv_str(&w, "event", "ready");
 *   json_kv_str(&w, "listen", "127.0.0.1:8080");
 *   json_kv_i64(&w, "pid", getpid());
 *   json_obj_end(&w);
 *   json_emit(&buf);          // writes buf + '\n' to stdout, flushes, resets buf
 *
 * Integers are formatted by us, never through double, so counters, fences
 * and revisions above 2^53 come out exact.  Doubles use the shortest form
 * that round-trips (%.17g trimmed).  Strings are escaped per RFC 8259;
 * invalid UTF-8 bytes are replaced by U+FFFD so the output is always valid.
 *
 * Reading: json_parse() wraps cJSON (cJSON_ParseWithOpts, requiring the
 * whole input to be one value).  cJSON keeps numbers only as double, so
 * json_get_i64() refuses what a double cannot hold exactly (fractions, and
 * magnitudes above 2^53) instead of rounding silently.  Where the full
 * int64 range matters, and on hot paths that read small flat objects
 * (dsys-counter's {"key":..,"by":..}), json_scan_object() walks one object
 * with no allocation and json_parse_i64() reads a number token exactly.
 *
 * Ownership: the writer owns nothing (the buf is the caller's); json_parse
 * returns a tree the caller frees with json_free().
 */
#ifndef DSYS_JSON_H
#define DSYS_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define JSON_MAX_DEPTH 32

struct json_writer {
	struct buf *out;
	int depth;
	bool need_comma[JSON_MAX_DEPTH];
};

void json_writer_init(struct json_writer *w, struct buf *out);
void json_obj_begin(struct json_writer *w);
void json_obj_end(struct json_writer *w);
void json_arr_begin(struct json_writer *w);
void json_arr_end(struct json_writer *w);
void json_key(struct json_writer *w, const char *key);   /* then one value call */
void json_str(struct json_writer *w, const char *s);
void json_strn(struct json_writer *w, const char *s, size_t n);
void json_i64(struct json_writer *w, int64_t v);
void json_u64(struct json_writer *w, uint64_t v);
void json_double(struct json_writer *w, double v);       /* NaN and inf become null */
void json_bool(struct json_writer *w, bool v);
void json_null(struct json_writer *w);
void json_raw(struct json_writer *w, const char *text, size_t n); /* already JSON */

/* key + value in one call */
void json_kv_str(struct json_writer *w, const char *key, const char *s);
void json_kv_strn(struct json_writer *w, const char *key, const char *s, size_t n);
void json_kv_i64(struct json_writer *w, const char *key, int64_t v);
void json_kv_u64(struct json_writer *w, const char *key, uint64_t v);
void json_kv_double(struct json_writer *w, const char *key, double v);
void json_kv_bool(struct json_writer *w, const char *key, bool v);

/* Append s (n bytes) as a quoted, escaped JSON string. */
void json_escape(struct buf *out, const char *s, size_t n);

/*
 * Write b's bytes and a newline to stdout in one fwrite, flush, and reset
 * b.  Returns 0, or -1 with errno set when the write failed: EPIPE (the
 * consumer closed the pipe; the program should finish quietly with exit
 * 0), ENOSPC and the like (the program reports them; cli_write_error).
 */
int json_emit(struct buf *b);

/* RFC 3339 UTC time with milliseconds: "2026-11-25T07:01:36.123Z"
 * (out must hold 25 bytes).  ms is milliseconds since the Unix epoch. */
void json_time_rfc3339(char *out, uint64_t unix_ms);

/* ------------------------------------------------------------ reading */

typedef struct cJSON json_value;

/* Parse text[0..len) as exactly one JSON value (whitespace around it is
 * fine).  Returns NULL on any syntax error; *err_offset (if non-NULL) is
 * then the byte offset where parsing failed. */
json_value *json_parse(const char *text, size_t len, size_t *err_offset);
void json_free(json_value *v);

/* An object member, or NULL. */
json_value *json_get(const json_value *obj, const char *key);

/* The member's integer value.  Returns 0, -ENOENT when absent, -EINVAL
 * when not a number or not an integer, -ERANGE when its magnitude is
 * 2^53 or more (not exact through cJSON: use the scanner). */
int json_get_i64(const json_value *obj, const char *key, int64_t *out);

/* The member's string (NUL-terminated, owned by the tree), or NULL. */
const char *json_get_str(const json_value *obj, const char *key);

/*
 * Exact integer from JSON number text: [-]digits, no fraction, no
 * exponent.  Returns 0, -EINVAL or -ERANGE.
 */
int json_parse_i64(const char *s, size_t n, int64_t *out);

/*
 * Allocation-free walk over one flat JSON object in text[0..len).  For
 * each member the callback gets the key (raw, still escaped -- compare
 * with json_token_eq) and the value's kind and raw text.  Nested values are
 * validated and skipped, their raw text given whole.  Returns the bytes
 * consumed (the object's end), or -EINVAL on malformed input, or the
 * callback's negative return.
 */
enum json_kind { JSON_KIND_NULL, JSON_KIND_FALSE, JSON_KIND_TRUE, JSON_KIND_NUMBER,
                 JSON_KIND_STRING, JSON_KIND_ARRAY, JSON_KIND_OBJECT };

struct json_token {
	enum json_kind kind;
	const char *text;   /* raw text; for strings, between the quotes (still escaped) */
	size_t len;
	bool escaped;       /* string contains backslash escapes */
};

typedef int (*json_member_fn)(void *ctx, const struct json_token *key,
                              const struct json_token *value);
long json_scan_object(const char *text, size_t len, json_member_fn fn, void *ctx);

/* Skip one JSON value at text[0..len) (after leading whitespace) and fill
 * tok; returns bytes consumed, or -EINVAL.  Used to walk arrays of objects. */
long json_scan_value(const char *text, size_t len, struct json_token *tok);

/* Does an (unescaped) key token equal s? */
bool json_token_eq(const struct json_token *t, const char *s);

/* Decode a string token's escapes into out (UTF-8); returns bytes, or
 * -EINVAL for bad escapes / lone surrogates.  out must hold t->len bytes. */
long json_token_unescape(const struct json_token *t, char *out);

#endif
