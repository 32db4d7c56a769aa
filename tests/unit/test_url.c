/* Unit tests of lib/http/url (percent-encoding, query parameters, path
 * normalisation) and of lib/base/hex.h, which every %XX goes through. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hex.h"
#include "http/url.h"
#include "tap.h"

static char out[1024];

static const char *enc(const char *s, size_t n)
{
	static struct buf b;
	buf_reset(&b);
	url_encode(&b, s, n);
	buf_putc(&b, '\0');
	return b.data;
}

static long dec(const char *s, size_t cap)
{
	long n = url_decode(s, strlen(s), out, cap);
	if (n >= 0)
		out[n] = '\0';
	return n;
}

static const char *norm(const char *s)
{
	static char p[256];
	snprintf(p, sizeof p, "%s", s);
	size_t n = url_normalize_path(p, strlen(p));
	p[n] = '\0';
	return p;
}

int main(void)
{
	/* hex */
	int bad = 0;
	for (int c = 0; c < 256; c++) {
		const char *d = "0123456789abcdef", *u = "0123456789ABCDEF";
		const char *pd = c ? strchr(d, c) : NULL, *pu = c ? strchr(u, c) : NULL;
		int want = pd ? (int)(pd - d) : pu ? (int)(pu - u) : -1;
		bad += hex_val((unsigned char)c) != want;
	}
	is_int(bad, 0, "hex_val gives 0..15 for the 22 hex digits and -1 for the other 234 bytes");
	ok(hex_digit(0) == '0' && hex_digit(10) == 'A' && hex_digit(15) == 'F', "hex_digit writes upper case");

	/* encode */
	is_str(enc("abc-XYZ_0.9~", 12), "abc-XYZ_0.9~", "unreserved characters are kept");
	is_str(enc("a b/c%d?e&f=g+h", 15), "a%20b%2Fc%25d%3Fe%26f%3Dg%2Bh", "everything else is escaped");
	is_str(enc("\0\xff\xc3\xa9", 4), "%00%FF%C3%A9", "NUL, bytes above 0x7f and UTF-8 are escaped, upper case");
	is_str(enc("", 0), "", "the empty string encodes to nothing");

	/* decode */
	is_int(dec("a%20b%2fc", 100), 5, "decode: %20 and lower-case %2f");
	is_str(out, "a b/c", "decode: the bytes");
	is_int(dec("a+b", 100), 3, "decode: '+' is a plus, not a space");
	is_str(out, "a+b", "decode: '+' kept");
	is_int(dec("%", 100), -EINVAL, "decode: a lone '%' is refused");
	is_int(dec("ab%4", 100), -EINVAL, "decode: '%' with one digit at the end is refused");
	is_int(dec("%G0", 100), -EINVAL, "decode: a non-hex digit is refused");
	is_int(dec("%00", 100), 1, "decode: %00 is a NUL byte");
	is_int(dec("abcd", 4), 4, "decode: exactly cap bytes fit");
	is_int(dec("abcde", 4), -ENOSPC, "decode: one more is -ENOSPC");
	is_int(dec("%41%42%43%44%45", 4), -ENOSPC, "decode: the limit counts decoded bytes");
	char inplace[] = "x%41y";
	is_int(url_decode(inplace, 5, inplace, sizeof inplace), 3, "decode in place");
	ok(!memcmp(inplace, "xAy", 3), "decode in place: the bytes");

	/* round trip of every byte value */
	char all[256];
	for (int i = 0; i < 256; i++)
		all[i] = (char)i;
	const char *e = enc(all, 256);
	long n = url_decode(e, strlen(e), out, sizeof out);
	ok(n == 256 && !memcmp(out, all, 256), "every byte value survives encode then decode");

	/* query parameters */
	const char *v;
	size_t vl;
	const char *q = "a=1&prefix=x%20y&b";
	ok(url_query_param(q, strlen(q), "prefix", &v, &vl) == 1 && vl == 5 && !memcmp(v, "x%20y", 5),
	   "query: prefix found, raw value");
	ok(url_query_param(q, strlen(q), "b", &v, &vl) == 1 && vl == 0, "query: a name without '=' has an empty value");
	ok(url_query_param(q, strlen(q), "pre", &v, &vl) == 0, "query: a name is not matched by its prefix");
	ok(url_query_param(q, strlen(q), "x", &v, &vl) == 0, "query: values are not names");
	ok(url_query_param("a=1&a=2", 7, "a", &v, &vl) == 1 && vl == 1 && v[0] == '2', "query: the last one wins");
	ok(url_query_param("", 0, "a", &v, &vl) == 0, "query: an empty query has nothing");
	ok(url_query_param("&&prefix=&", 10, "prefix", &v, &vl) == 1 && vl == 0, "query: empty parts are skipped");

	/* normalise */
	is_str(norm("/%68ello"), "/hello", "normalise: %68 is h");
	is_str(norm("/h%65%6C%6c%6F"), "/hello", "normalise: either case of hex digit");
	is_str(norm("/a%2fb"), "/a%2Fb", "normalise: %2F stays escaped, its digits upper cased");
	is_str(norm("/%7e%2D%2e%5F"), "/~-._", "normalise: the four unreserved marks are decoded");
	is_str(norm("/%20%25%3F"), "/%20%25%3F", "normalise: space, '%' and '?' stay escaped");
	is_str(norm("/%"), "/%", "normalise: a stray '%' is left alone");
	is_str(norm("/%4"), "/%4", "normalise: a cut escape is left alone");
	is_str(norm("/%zz%41"), "/%zz%41", "normalise: a stray '%' leaves the whole path as it is");
	is_str(norm("/%%341"), "/%%341", "normalise: never makes a new escape out of a stray '%'");
	is_str(norm("/plain"), "/plain", "normalise: a path without '%' is unchanged");
	return tap_done();
}
