/*
 * http/url.c -- percent-encoding and decoding, query parameters, and the
 * path normalisation of RFC 3986 6.2.2.
 *
 * Before this module there were three hand-written copies (the counter
 * service's decoder, the CLI's encoder, a hexval in each parser); they
 * disagreed in small ways (one took "%4" at the end of a string).  Now
 * every %XX is read by hex_val (base/hex.h) and written by hex_digit.
 *
 * Decoding is strict: a '%' must be followed by two hex digits, else the
 * whole string is refused, because guessing what a broken escape meant
 * is how two programs end up naming different keys.
 */
#include <errno.h>
#include <string.h>

#include "base/hex.h"
#include "base/invariant.h"
#include "http/url.h"

void url_encode(struct buf *out, const char *s, size_t n)
{
	buf_reserve(out, n * 3);   /* the worst case, so the loop never grows the buffer */
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (url_unreserved(c)) {
			buf_putc(out, (char)c);
		} else {
			buf_putc(out, '%');
			buf_putc(out, hex_digit(c >> 4));
			buf_putc(out, hex_digit(c));
		}
	}
}

long url_decode(const char *s, size_t n, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '%') {
			int h, l;
			if (n - i < 3 || (h = hex_val((unsigned char)s[i + 1])) < 0 ||
			    (l = hex_val((unsigned char)s[i + 2])) < 0)
				return -EINVAL;
			c = (unsigned char)(h << 4 | l);
			i += 2;
		}
		if (o == cap)
			return -ENOSPC;
		INVARIANT(o <= i);   /* decoding never outruns the input: in place is safe */
		out[o++] = (char)c;
	}
	return (long)o;
}

int url_query_param(const char *q, size_t n, const char *name, const char **val, size_t *val_len)
{
	size_t nl = strlen(name);
	int found = 0;
	for (size_t i = 0; i < n;) {
		const char *amp = memchr(q + i, '&', n - i);
		size_t j = amp ? (size_t)(amp - q) : n;
		if (j - i >= nl && !memcmp(q + i, name, nl) && (j - i == nl || q[i + nl] == '=')) {
			size_t v = j - i == nl ? j : i + nl + 1;
			*val = q + v;
			*val_len = j - v;
			found = 1;
		}
		i = j + 1;
	}
	return found;
}

size_t url_normalize_path(char *p, size_t n)
{
	/* A stray '%' leaves the whole path alone: decoding around it could
	 * make a new escape ("%%341" -> "%41"), a second decoding waiting to
	 * happen.  Such a path is malformed; the handler refuses it. */
	for (size_t i = 0; i < n; i++)
		if (p[i] == '%') {
			if (n - i < 3 || hex_val((unsigned char)p[i + 1]) < 0 ||
			    hex_val((unsigned char)p[i + 2]) < 0)
				return n;
			i += 2;
		}
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (c == '%') {
			int h = hex_val((unsigned char)p[i + 1]), l = hex_val((unsigned char)p[i + 2]);
			unsigned char d = (unsigned char)(h << 4 | l);
			if (url_unreserved(d)) {
				p[o++] = (char)d;
			} else {
				p[o++] = '%';
				p[o++] = hex_digit((unsigned)h);
				p[o++] = hex_digit((unsigned)l);
			}
			i += 2;
			continue;
		}
		p[o++] = c;
	}
	return o;
}
