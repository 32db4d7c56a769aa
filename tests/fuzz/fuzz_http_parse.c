/*
 * fuzz_http_parse.c -- libFuzzer target for lib/http/parse.
 *
 * The first input byte picks what to drive and with which limits; the rest
 * is the message.  Every parse runs on a copy of exactly the bytes it is
 * given, so ASan reports any read past len.  Properties checked (abort on
 * violation):
 *
 *   - a head parse returns 0, a negative error, or a length <= len; every
 *     header name, value, the target, path, query, host and reason lie
 *     inside the head, names are tokens and values hold no CR, LF or NUL;
 *   - splitting: every prefix (all of them for short inputs, a sample for
 *     long ones) gives 0 or the whole result, and once a prefix gives a
 *     result every longer one gives the same;
 *   - a head re-parsed from exactly its own bytes gives the same result;
 *   - the body decoder gives the same result, the same decoded bytes and
 *     the same consumption whether fed whole, byte by byte or in pieces
 *     whose sizes come from the input; decoded length <= consumed <= input;
 *   - mode 3 walks a pipelined stream: head, body, head, body ... to the end.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/parse.h"

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

static struct http_limits limits_for(uint8_t sel)
{
	struct http_limits lim = HTTP_LIMITS_DEFAULT;
	if (sel & 0x10) {
		lim.max_uri = 16 + (sel & 0x07) * 8;
		lim.max_header_bytes = 64 + (sel & 0x07) * 40;
		lim.max_body = (sel & 0x20) ? 8 : 100;
	}
	return lim;
}

static int parse_copy(int resp, const uint8_t *d, size_t n, const struct http_limits *lim,
                      enum http_method method, struct http_request *rq,
                      struct http_response *rs, char **keep)
{
	char *b = malloc(n ? n : 1);
	memcpy(b, d, n);
	int r = resp ? http_parse_response(b, n, lim, method, rs)
	             : http_parse_request(b, n, lim, rq);
	if (keep)
		*keep = b;
	else
		free(b);
	return r;
}

static int tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static void check_span(const char *base, size_t head, const char *p, uint32_t n)
{
	if (!p) {
		CHECK(n == 0);
		return;
	}
	CHECK(p >= base && p + n <= base + head);
	for (uint32_t i = 0; i < n; i++)
		CHECK(p[i] != '\r' && p[i] != '\n' && p[i] != '\0');
}

static void check_message(const char *b, int r, const struct http_message *m)
{
	size_t h = (size_t)r;
	CHECK(m->head_len == h);
	CHECK(m->n_headers <= HTTP_MAX_HEADERS);
	CHECK(m->version_minor <= 1);
	CHECK(m->body_kind >= HTTP_BODY_NONE && m->body_kind <= HTTP_BODY_EOF);
	CHECK(h >= 4 && memcmp(b + h - 4, "\r\n\r\n", 4) == 0);
	for (uint32_t i = 0; i < m->n_headers; i++) {
		const struct http_header *hd = &m->headers[i];
		CHECK(hd->name_len > 0);
		check_span(b, h, hd->name, hd->name_len);
		check_span(b, h, hd->value, hd->value_len);
		for (uint32_t j = 0; j < hd->name_len; j++)
			CHECK(tchar((unsigned char)hd->name[j]));
		if (hd->value_len) {
			CHECK(hd->value[0] != ' ' && hd->value[0] != '\t');
			CHECK(hd->value[hd->value_len - 1] != ' ' && hd->value[hd->value_len - 1] != '\t');
		}
	}
}

/* Head parse: whole, exact copy of the head, and split at many points. */
static int drive_head(int resp, const uint8_t *d, size_t n, const struct http_limits *lim,
                      enum http_method method)
{
	struct http_request rq;
	struct http_response rs;
	char *b = NULL;
	int whole = parse_copy(resp, d, n, lim, method, &rq, &rs, &b);
	CHECK(whole <= (int)n);
	CHECK(whole >= HTTP_PARSE_EMETHOD);
	if (whole > 0) {
		const struct http_message *m = resp ? &rs.m : &rq.m;
		check_message(b, whole, m);
		if (resp) {
			CHECK(rs.status >= 100 && rs.status <= 999);
			check_span(b, (size_t)whole, rs.reason, rs.reason_len);
		} else {
			check_span(b, (size_t)whole, rq.target, rq.target_len);
			check_span(b, (size_t)whole, rq.path, rq.path_len);
			check_span(b, (size_t)whole, rq.query, rq.query_len);
			check_span(b, (size_t)whole, rq.host, rq.host_len);
			/* up to HTTP_MAX_EMPTY_LINES empty lines may come before the method */
			size_t lead = 0;
			while (lead < (size_t)whole && (b[lead] == '\r' || b[lead] == '\n'))
				lead++;
			CHECK(lead <= 2 * HTTP_MAX_EMPTY_LINES);
			CHECK(rq.method_str == b + lead && rq.method_len > 0 && rq.method_len <= HTTP_MAX_METHOD);
			CHECK(rq.target_len > 0 && rq.target_len <= lim->max_uri);
			CHECK(rq.m.version_minor == 0 || rq.host);
			if (rq.m.body_kind == HTTP_BODY_LENGTH)
				CHECK(rq.m.content_length > 0 && rq.m.content_length <= lim->max_body);
			CHECK(rq.m.body_kind != HTTP_BODY_EOF);
		}
		CHECK(m->head_len <= lim->max_header_bytes + (resp ? 0 : 2 * HTTP_MAX_EMPTY_LINES));
		CHECK(parse_copy(resp, d, (size_t)whole, lim, method, &rq, &rs, NULL) == whole);
	}
	free(b);
	if (n >= http_parse_buffer_size(lim))
		CHECK(whole != 0);

	/* prefixes: all for short inputs, about 64 for long ones */
	size_t step = n <= 300 ? 1 : n / 64;
	int seen = 0;
	for (size_t k = 0; k < n; k += step) {
		int r = parse_copy(resp, d, k, lim, method, &rq, &rs, NULL);
		CHECK(r == 0 || r == whole);
		if (seen)
			CHECK(r == seen);
		seen = r;
	}
	return whole;
}

/*
 * Decode a body three ways; piece sizes for the third come from sizes[].
 * Returns the result, and the consumption in *used.
 */
static int drive_body(const struct http_message *m, uint64_t max, const uint8_t *d, size_t n,
                      const uint8_t *sizes, size_t nsizes, size_t *used)
{
	int res[3] = {0, 0, 0};
	size_t olen[3] = {0, 0, 0}, cons[3] = {0, 0, 0};
	char *outs[3];
	for (int way = 0; way < 3; way++) {
		struct http_body b;
		http_body_init(&b, m, max);
		outs[way] = malloc(n + 1);
		size_t pos = 0, si = 0;
		int r = 0;
		do {
			size_t step = way == 0 ? n : way == 1 ? 1
			            : (nsizes ? (size_t)sizes[si++ % nsizes] % 17 + 1 : 3);
			size_t k = n - pos < step ? n - pos : step;
			char *piece = malloc(k ? k : 1);
			memcpy(piece, d + pos, k);
			size_t c = 99, dl = 99;
			r = http_body_feed(&b, piece, k, &c, &dl);
			if (r >= 0) {
				CHECK(c <= k && dl <= c);
				memcpy(outs[way] + olen[way], piece, dl);
				olen[way] += dl;
				pos += c;
				if (r == 0 && m->body_kind != HTTP_BODY_EOF)
					CHECK(c == k);   /* an unfinished body eats all it gets */
			}
			free(piece);
		} while (r == 0 && pos < n);
		res[way] = r;
		cons[way] = pos;
		CHECK(olen[way] <= pos && pos <= n);
		CHECK(b.total <= max);
	}
	for (int way = 1; way < 3; way++) {
		CHECK(res[way] == res[0]);
		if (res[0] >= 0) {
			CHECK(olen[way] == olen[0] && cons[way] == cons[0]);
			CHECK(memcmp(outs[way], outs[0], olen[0]) == 0);
		}
	}
	for (int way = 0; way < 3; way++)
		free(outs[way]);
	*used = cons[0];
	return res[0];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t sel = data[0];
	const uint8_t *d = data + 1;
	size_t n = size - 1;
	struct http_limits lim = limits_for(sel);
	static const enum http_method methods[] = {HTTP_GET, HTTP_HEAD, HTTP_CONNECT, HTTP_POST};
	enum http_method method = methods[(sel >> 2) & 3];
	size_t used;

	switch (sel & 3) {
	case 0:
		drive_head(0, d, n, &lim, method);
		break;
	case 1:
		drive_head(1, d, n, &lim, method);
		break;
	case 2: {
		struct http_message m;
		memset(&m, 0, sizeof m);
		m.body_kind = (sel & 0x40) ? HTTP_BODY_LENGTH : HTTP_BODY_CHUNKED;
		m.content_length = (sel & 0x80) ? 7 : 1000;
		drive_body(&m, lim.max_body, d, n, d, n < 8 ? n : 8, &used);
		break;
	}
	case 3: {
		/* a pipelined stream of requests (or responses, by bit 7) */
		int resp = (sel & 0x80) != 0;
		size_t off = 0;
		for (int i = 0; i < 16 && off < n; i++) {
			int h = drive_head(resp, d + off, n - off, &lim, method);
			if (h <= 0)
				break;
			struct http_request rq;
			struct http_response rs;
			parse_copy(resp, d + off, n - off, &lim, method, &rq, &rs, NULL);
			struct http_message m = resp ? rs.m : rq.m;
			off += (size_t)h;
			int r = drive_body(&m, lim.max_body, d + off, n - off, d, 4, &used);
			if (r != 1)
				break;
			off += used;
		}
		CHECK(off <= n);
		break;
	}
	}
	return 0;
}
