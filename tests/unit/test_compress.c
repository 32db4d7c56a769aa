/*
 * test_compress.c -- http/compress: Accept-Encoding as RFC 9110 12.5.3
 * reads it, the types list, gzip and Brotli round trips, the bounded
 * gunzip, and static variants with their ETags.
 */
#include <brotli/decode.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "http/compress.h"
#include "tap.h"

static enum http_coding choose(const char *value, unsigned mask)
{
	struct http_accept_encoding ae;
	http_accept_encoding_init(&ae);
	if (value)
		http_accept_encoding_parse(&ae, value, strlen(value));
	return http_accept_encoding_choose(&ae, mask);
}

static void test_negotiation(void)
{
	const unsigned all = HTTP_CODINGS_ALL, gz = HTTP_CODING_MASK(HTTP_CODING_GZIP);
	static const struct {
		const char *value;
		enum http_coding want;
		const char *why;
	} cases[] = {
		{NULL, HTTP_CODING_IDENTITY, "no Accept-Encoding: identity"},
		{"", HTTP_CODING_IDENTITY, "an empty list: identity"},
		{"gzip, deflate, br", HTTP_CODING_BR, "a browser's list: Brotli before gzip on a tie"},
		{"gzip", HTTP_CODING_GZIP, "gzip alone"},
		{"GZip", HTTP_CODING_GZIP, "names are case-insensitive"},
		{"x-gzip", HTTP_CODING_GZIP, "x-gzip is gzip"},
		{"br;q=0.5, gzip;q=0.8", HTTP_CODING_GZIP, "the higher weight wins"},
		{"br;q=0.5, gzip;Q=0.8", HTTP_CODING_GZIP, "Q is q"},
		{"br;q=0, gzip;q=0", HTTP_CODING_IDENTITY, "q=0 refuses a coding"},
		{"*", HTTP_CODING_BR, "* stands for every coding"},
		{"*;q=0.3, br;q=0", HTTP_CODING_GZIP, "* for the codings not named only"},
		{"identity;q=0, *;q=0", HTTP_CODING_IDENTITY, "nothing acceptable: identity all the same (no 406)"},
		{"identity;q=0, gzip", HTTP_CODING_GZIP, "identity refused, gzip taken"},
		{"identity, gzip;q=0.5", HTTP_CODING_IDENTITY, "identity named with a higher weight wins"},
		{"identity;q=0.5, gzip;q=0.5", HTTP_CODING_GZIP, "a tie with identity goes to the coding"},
		{"deflate, compress", HTTP_CODING_IDENTITY, "codings we do not have: identity"},
		{"br;q=1.5, gzip", HTTP_CODING_GZIP, "a weight above 1 skips its element"},
		{"br;q=0.1234, gzip;q=0.1", HTTP_CODING_GZIP, "four decimals skip the element"},
		{"br;q=, gzip;q=0.1", HTTP_CODING_GZIP, "an empty weight skips the element"},
		{"br;level=5, gzip;q=0.1", HTTP_CODING_GZIP, "a parameter other than q skips the element"},
		{"br;q=1.000", HTTP_CODING_BR, "1.000 is a weight"},
		{"br;q=1.001", HTTP_CODING_IDENTITY, "1.001 is not"},
		{" ,, br ; q=0.9 ,gzip;q=0.2,", HTTP_CODING_BR, "empty elements and OWS around ';'"},
		{"br;q=0, br;q=1", HTTP_CODING_IDENTITY, "the first naming of a coding counts"},
		{"br gzip", HTTP_CODING_IDENTITY, "two names without a comma are no element"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		is_int(choose(cases[i].value, all), cases[i].want, "%s (%s)", cases[i].why,
		       cases[i].value ? cases[i].value : "absent");
	is_int(choose("br, gzip;q=0.1", gz), HTTP_CODING_GZIP, "only what the mask offers");
	is_int(choose("br", gz), HTTP_CODING_IDENTITY, "and identity when it offers nothing wanted");
	is_int(choose("gzip", 0), HTTP_CODING_IDENTITY, "an empty mask: identity");

	/* several fields are one list */
	struct http_accept_encoding ae;
	http_accept_encoding_init(&ae);
	http_accept_encoding_parse(&ae, "br;q=0.1", 8);
	http_accept_encoding_parse(&ae, "gzip;q=0.9", 10);
	is_int(http_accept_encoding_choose(&ae, all), HTTP_CODING_GZIP, "two fields combine");
	is_int(ae.br, 100, "weights are kept in thousandths");
}

static void test_types(void)
{
	struct http_compress_config cc;
	http_compress_config_init(&cc);
	ok(http_compress_wanted(&cc, "text/html; charset=utf-8", 2000), "text/html by text/*");
	ok(http_compress_wanted(&cc, "Application/JSON", 2000), "types are case-insensitive");
	ok(http_compress_wanted(&cc, "text/plain; version=0.0.4; charset=utf-8", 1024),
	   "the metrics page, at exactly the minimum");
	ok(!http_compress_wanted(&cc, "text/plain", 1023), "one byte under the minimum: no");
	ok(!http_compress_wanted(&cc, "image/png", 100000), "a PNG: no");
	ok(!http_compress_wanted(&cc, "textual/plain", 100000), "text/* is the top type only");
	ok(!http_compress_wanted(&cc, NULL, 100000), "no type: no");
	is_int(http_compress_types_parse(&cc, "application/json, image/*"), 0, "a list parses");
	ok(http_compress_wanted(&cc, "image/svg+xml", 5000), "and is used");
	ok(!http_compress_wanted(&cc, "text/html", 5000), "in place of the defaults");
	is_int(http_compress_types_parse(&cc, "text/html,"), -EINVAL, "an empty item is refused");
	is_int(http_compress_types_parse(&cc, "text"), -EINVAL, "a type without a slash is refused");
	is_int(http_compress_types_parse(&cc, "*/html"), -EINVAL, "a wildcard top type is refused");
	is_int(http_compress_types_parse(&cc, "text/h*"), -EINVAL, "a partial wildcard is refused");
	ok(http_compress_wanted(&cc, "image/svg+xml", 5000), "and a refused list changes nothing");
	unsigned m;
	is_int(http_codings_parse("gzip", &m), 0, "--compress gzip");
	is_int(m, HTTP_CODING_MASK(HTTP_CODING_GZIP), "is gzip only");
	is_int(http_codings_parse("none", &m), 0, "--compress none");
	is_int(m, 0, "is nothing");
	is_int(http_codings_parse("gzip,zstd", &m), -EINVAL, "an unknown coding is refused");
}

static void test_codecs(void)
{
	struct buf text = BUF_INIT, z = BUF_INIT, back = BUF_INIT;
	for (int i = 0; i < 2000; i++)
		buf_printf(&text, "{\"id\":%d,\"name\":\"item %d\"}\n", i, i);
	is_int(http_gzip(text.data, text.len, 6, &z), 0, "gzip compresses");
	ok(z.len < text.len / 4, "to under a quarter (%zu of %zu)", z.len, text.len);
	is_int(http_gunzip(z.data, z.len, text.len, &back), 0, "and inflates back within an exact bound");
	ok(back.len == text.len && !memcmp(back.data, text.data, text.len), "to the same bytes");
	buf_reset(&back);
	is_int(http_gunzip(z.data, z.len, text.len - 1, &back), -EMSGSIZE, "one byte less of bound: -EMSGSIZE");
	is_int(back.len, 0, "leaving nothing behind");
	is_int(http_gunzip(z.data, z.len - 3, text.len, &back), -EBADMSG, "a body cut short: -EBADMSG");
	is_int(http_gunzip("plain text", 10, 100, &back), -EBADMSG, "not gzip: -EBADMSG");
	struct buf two = BUF_INIT;
	buf_append(&two, z.data, z.len);
	buf_append(&two, "x", 1);
	is_int(http_gunzip(two.data, two.len, text.len, &back), -EBADMSG, "bytes after the end: -EBADMSG");

	/* a bomb: 64 MiB of zeros in ~64 KiB, against a 1 MiB bound */
	size_t big = 64u << 20;
	char *zeros = calloc(1, big);
	struct buf bomb = BUF_INIT;
	is_int(http_gzip(zeros, big, 9, &bomb), 0, "a bomb compresses");
	ok(bomb.len < 128 * 1024, "to %zu bytes", bomb.len);
	buf_reset(&back);
	is_int(http_gunzip(bomb.data, bomb.len, 1u << 20, &back), -EMSGSIZE, "and stops at the bound");
	ok(back.cap <= (2u << 20), "having held at most twice the bound (%zu)", back.cap);
	free(zeros);

	struct buf br = BUF_INIT;
	is_int(http_brotli(text.data, text.len, 5, &br), 0, "Brotli compresses");
	ok(br.len < z.len, "smaller than gzip here (%zu < %zu)", br.len, z.len);
	size_t n = text.len;
	char *dec = malloc(n);
	ok(BrotliDecoderDecompress(br.len, (const uint8_t *)br.data, &n, (uint8_t *)dec) ==
	   BROTLI_DECODER_RESULT_SUCCESS && n == text.len && !memcmp(dec, text.data, n),
	   "libbrotlidec reads it back");
	free(dec);
	buf_free(&text);
	buf_free(&z);
	buf_free(&back);
	buf_free(&two);
	buf_free(&bomb);
	buf_free(&br);
}

static void test_static(void)
{
	struct http_compress_config cc;
	http_compress_config_init(&cc);
	struct buf text = BUF_INIT;
	for (int i = 0; i < 500; i++)
		buf_printf(&text, "<p>paragraph %d</p>\n", i);
	struct http_compress_static *s = http_compress_static_new(&cc, "text/html", text.data, text.len);
	is_int(http_compress_static_size(s, HTTP_CODING_IDENTITY), text.len, "identity is the body");
	ok(http_compress_static_size(s, HTTP_CODING_GZIP) > 0, "a gzip variant is kept");
	ok(http_compress_static_size(s, HTTP_CODING_BR) > 0 &&
	   http_compress_static_size(s, HTTP_CODING_BR) < http_compress_static_size(s, HTTP_CODING_GZIP),
	   "a smaller Brotli one too");
	http_compress_static_free(s);

	/* random bytes do not shrink: no variant is kept */
	char noise[4096];
	unsigned x = 12345;
	for (size_t i = 0; i < sizeof noise; i++) {
		x = x * 1103515245 + 12345;
		noise[i] = (char)(x >> 16);
	}
	s = http_compress_static_new(&cc, "text/plain", noise, sizeof noise);
	is_int(http_compress_static_size(s, HTTP_CODING_GZIP), 0, "incompressible: no gzip variant");
	is_int(http_compress_static_size(s, HTTP_CODING_BR), 0, "nor a Brotli one");
	http_compress_static_free(s);
	http_compress_static_free(NULL);
	buf_free(&text);
}

int main(void)
{
	test_negotiation();
	test_types();
	test_codecs();
	test_static();
	return tap_done();
}
