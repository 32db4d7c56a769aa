/*
 * fuzz_accept_encoding.c -- libFuzzer target for http/compress: the
 * Accept-Encoding parser and chooser, the --compress-types parser and the
 * bounded gunzip of request bodies.
 *
 * The parser gets a copy of exactly the input bytes (no NUL after them),
 * so ASan reports any read past the end.  Properties (trap on violation):
 *   - every weight is -1 (not named) or a qvalue in 0..1000;
 *   - the choice is identity or a coding of the mask, and a coding is
 *     chosen only with a weight above 0 (named, or through "*");
 *   - with an empty mask the choice is always identity;
 *   - parsing the same value twice into one struct changes nothing (the
 *     first naming of a coding wins);
 *   - gunzip never produces more than its bound, and on success a second
 *     call with the exact size as the bound gives the same bytes;
 *   - a types list either parses (and then every type has a slash) or
 *     leaves the config as it was.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "http/compress.h"

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

static bool weight_ok(int q) { return q == -1 || (q >= 0 && q <= 1000); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = malloc(size ? size : 1);
	memcpy(in, data, size);

	struct http_accept_encoding ae, again;
	http_accept_encoding_init(&ae);
	http_accept_encoding_parse(&ae, in, size);
	CHECK(ae.present);
	CHECK(weight_ok(ae.gzip) && weight_ok(ae.br) && weight_ok(ae.identity) && weight_ok(ae.star));
	again = ae;
	http_accept_encoding_parse(&again, in, size);
	CHECK(!memcmp(&ae, &again, sizeof ae));
	for (unsigned mask = 0; mask <= HTTP_CODINGS_ALL; mask += 2) {
		enum http_coding c = http_accept_encoding_choose(&ae, mask);
		if (c == HTTP_CODING_IDENTITY)
			continue;
		CHECK(mask & HTTP_CODING_MASK(c));
		int q = c == HTTP_CODING_GZIP ? ae.gzip : ae.br;
		CHECK((q >= 0 ? q : ae.star) > 0);
	}
	CHECK(http_accept_encoding_choose(&ae, 0) == HTTP_CODING_IDENTITY);

	struct buf out = BUF_INIT, exact = BUF_INIT;
	size_t bound = 4096;
	int r = http_gunzip(in, size, bound, &out);
	CHECK(r == 0 || r == -EMSGSIZE || r == -EBADMSG);
	CHECK(out.len <= bound);
	CHECK(r == 0 || out.len == 0);
	if (r == 0) {
		CHECK(http_gunzip(in, size, out.len, &exact) == 0);
		CHECK(exact.len == out.len && (out.len == 0 || !memcmp(exact.data, out.data, out.len)));
		if (out.len > 0) {
			buf_reset(&exact);
			CHECK(http_gunzip(in, size, out.len - 1, &exact) == -EMSGSIZE);
		}
	}
	buf_free(&out);
	buf_free(&exact);

	char *s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	struct http_compress_config cc, before;
	http_compress_config_init(&cc);
	before = cc;
	if (http_compress_types_parse(&cc, s) == 0) {
		CHECK(cc.ntypes >= 1 && cc.ntypes <= HTTP_COMPRESS_MAX_TYPES);
		for (unsigned i = 0; i < cc.ntypes; i++)
			CHECK(strchr(cc.types[i], '/') != NULL);
	} else {
		CHECK(!memcmp(&cc, &before, sizeof cc));
	}
	free(s);
	free(in);
	return 0;
}
