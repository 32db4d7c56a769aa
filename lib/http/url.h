/*
 * http/url.h -- percent-encoding (RFC 3986 2.1), the one copy of it.
 *
 * dsys-counter puts keys in paths (/counters/KEY) and query strings
 * (?prefix=P), its service takes them out again, and the router
 * normalises paths before matching them; all three go through here, so
 * what one side encodes the other decodes.
 *
 *   url_encode(&b, key, len);                       // "a b/c" -> "a%20b%2Fc"
 *   long n = url_decode(s, len, out, cap);          // the bytes, or -EINVAL / -ENOSPC
 *   url_query_param(q, qlen, "prefix", &v, &vlen);  // 1 found, 0 not
 *   n = url_normalize_path(path, n);                // "/%68ello" -> "/hello", in place
 *
 * Encoding keeps the unreserved characters (ALPHA DIGIT - . _ ~) and
 * escapes every other byte, so any byte string -- slashes, '%', NUL,
 * invalid UTF-8 -- survives a round trip: url_decode(url_encode(x)) == x.
 * Decoding takes '+' literally (this is not form encoding).
 *
 * Memory: nothing here allocates but url_encode, which appends to a buf
 * the caller owns.  All functions are pure and thread-safe.
 */
#ifndef DSYS_HTTP_URL_H
#define DSYS_HTTP_URL_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"

/* Is c unreserved (RFC 3986 2.3): ALPHA DIGIT - . _ ~ ? */
static inline bool url_unreserved(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

/* Append s[0..n) to out, every byte but the unreserved ones as %XX. */
void url_encode(struct buf *out, const char *s, size_t n);

/*
 * Decode s[0..n) into out (cap bytes; out may be s itself, decoding only
 * shrinks).  Returns the decoded length, -EINVAL for a '%' not followed by
 * two hex digits, -ENOSPC when the result would pass cap.
 */
long url_decode(const char *s, size_t n, char *out, size_t cap);

/*
 * Find parameter name in a query string q[0..n) ("a=1&prefix=x%20y"):
 * 1 with *val, *val_len at its raw (still encoded) value -- empty for
 * "name" or "name=" -- or 0 when absent.  The last one wins when a name
 * is there twice.
 */
int url_query_param(const char *q, size_t n, const char *name, const char **val, size_t *val_len);

/*
 * RFC 3986 6.2.2.2: decode the %XX escapes of unreserved characters in
 * p[0..n), in place, so "/%68ello" is "/hello"; escapes of anything else
 * ("%2F", "%20", "%25") stay as they are, with their hex digits upper
 * cased (6.2.2.1).  Returns the new length (at most n).  A path without
 * '%' is left untouched (callers may check with memchr first), and so is
 * one with a '%' that does not start an escape ("/%zz%41"): decoding
 * around it could make a new escape ("%%341" -> "%41").
 */
size_t url_normalize_path(char *p, size_t n);

#endif
