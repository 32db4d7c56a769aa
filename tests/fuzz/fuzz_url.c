/*
 * fuzz_url.c -- libFuzzer target for lib/http/url: percent-encoding,
 * decoding, query parameters and path normalisation.
 *
 * Every call gets a copy of exactly the input bytes (no NUL after them),
 * so ASan reports any read past the end.  Properties (trap on violation):
 *   - decode(encode(x)) == x for any bytes x, and encode's output holds
 *     only unreserved characters and %XX;
 *   - decode of any input returns -EINVAL, -ENOSPC or a length no longer
 *     than the input, and decoding in place gives the same bytes;
 *   - normalising a path never lengthens it, is idempotent, and does not
 *     change what the path decodes to;
 *   - a query parameter's value lies inside the query.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/hex.h"
#include "http/url.h"

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;

	/* round trip */
	struct buf e = BUF_INIT;
	url_encode(&e, in, size);
	CHECK(e.len >= size && e.len <= 3 * size);
	for (size_t i = 0; i < e.len; i++) {
		unsigned char c = (unsigned char)e.data[i];
		if (c == '%') {
			CHECK(i + 2 < e.len && hex_val((unsigned char)e.data[i + 1]) >= 0 &&
			      hex_val((unsigned char)e.data[i + 2]) >= 0);
			i += 2;
		} else {
			CHECK(url_unreserved(c));
		}
	}
	char *d = malloc(size + 1);
	long n = url_decode(e.data ? e.data : "", e.len, d, size);
	CHECK(n == (long)size && memcmp(d, in, size) == 0);
	if (size > 0)
		CHECK(url_decode(e.data, e.len, d, size - 1) == -ENOSPC);
	buf_free(&e);

	/* decode of anything, to a buffer and in place */
	char *copy = malloc(size + 1);
	memcpy(copy, in, size);
	long a = url_decode(in, size, d, size);
	CHECK(a == -EINVAL || (a >= 0 && (size_t)a <= size));
	long b = url_decode(copy, size, copy, size);
	CHECK(a == b && (a < 0 || memcmp(d, copy, (size_t)a) == 0));

	/* normalise: shorter or equal, idempotent, same meaning */
	memcpy(copy, in, size);
	size_t m = url_normalize_path(copy, size);
	CHECK(m <= size);
	char *again = malloc(m + 1);
	memcpy(again, copy, m);
	CHECK(url_normalize_path(again, m) == m && memcmp(again, copy, m) == 0);
	char *d2 = malloc(size + 1);
	long x = url_decode(in, size, d, size), y = url_decode(copy, m, d2, size);
	CHECK(x == y && (x < 0 || memcmp(d, d2, (size_t)x) == 0));

	/* query parameters: the value lies inside the query */
	const char *v;
	size_t vl;
	if (url_query_param(in, size, "prefix", &v, &vl))
		CHECK(v >= in && v + vl <= in + size);

	free(d);
	free(d2);
	free(copy);
	free(again);
	return 0;
}
