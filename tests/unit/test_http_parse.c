/*
 * test_http_parse.c -- the parser against RFC 9112, grouped as the RFC
 * groups it.
 *
 * Every request and response here goes through the same three feeds: whole;
 * byte by byte (every prefix, each in a buffer of exactly its length so
 * ASan sees a read past the end: a prefix must give 0 or the final result,
 * and once it gives a result, every longer prefix gives the same one); and
 * pipelined (three copies back to back, bodies included, parse one after
 * another to the same results; a bad message after a good one gives the
 * same error).  Any disagreement turns the result into INCONSISTENT, so it
 * fails the test that asked for it.  Chunked bodies are decoded whole, byte
 * by byte and in uneven pieces, and must decode to the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/parse.h"
#include "tap.h"

#define INCONSISTENT (-1000)

static const struct http_limits deflim = HTTP_LIMITS_DEFAULT;

/* ---------------------------------------------------------------- harness */

static bool same_header(const struct http_header *a, const char *ba,
                        const struct http_header *b, const char *bb)
{
	return a->name - ba == b->name - bb && a->value - ba == b->value - bb &&
	       a->name_len == b->name_len && a->value_len == b->value_len;
}

static bool same_message(const struct http_message *a, const char *ba,
                         const struct http_message *b, const char *bb)
{
	if (a->n_headers != b->n_headers || a->version_minor != b->version_minor ||
	    a->keep_alive != b->keep_alive || a->expect_continue != b->expect_continue ||
	    a->upgrade != b->upgrade || a->body_kind != b->body_kind ||
	    a->content_length != b->content_length || a->head_len != b->head_len)
		return false;
	for (uint32_t i = 0; i < a->n_headers; i++)
		if (!same_header(&a->headers[i], ba, &b->headers[i], bb))
			return false;
	return true;
}

#define OFF(p, base) ((p) ? (long)((p) - (base)) : -1L)

static bool same_request(const struct http_request *a, const char *ba,
                         const struct http_request *b, const char *bb)
{
	return same_message(&a->m, ba, &b->m, bb) && a->method == b->method &&
	       a->method_len == b->method_len && OFF(a->target, ba) == OFF(b->target, bb) &&
	       a->target_len == b->target_len && OFF(a->path, ba) == OFF(b->path, bb) &&
	       a->path_len == b->path_len && OFF(a->query, ba) == OFF(b->query, bb) &&
	       a->query_len == b->query_len && OFF(a->host, ba) == OFF(b->host, bb) &&
	       a->host_len == b->host_len;
}

static bool same_response(const struct http_response *a, const char *ba,
                          const struct http_response *b, const char *bb)
{
	return same_message(&a->m, ba, &b->m, bb) && a->status == b->status &&
	       OFF(a->reason, ba) == OFF(b->reason, bb) && a->reason_len == b->reason_len;
}

/*
 * Decode a body from in[0..n) three ways (whole, byte by byte, in pieces of
 * 7).  Returns the final feed result (1, 0 or an error), the decoded bytes
 * in out (NUL-terminated) and the input consumed; INCONSISTENT when the
 * three ways disagree.
 */
static int decode3(const struct http_message *m, uint64_t max, const char *in, size_t n,
                   char *out, size_t *out_len, size_t *used)
{
	int res[3];
	size_t olen[3], cons[3];
	char *outs[3];
	for (int way = 0; way < 3; way++) {
		size_t step = way == 0 ? (n ? n : 1) : way == 1 ? 1 : 7;
		struct http_body b;
		http_body_init(&b, m, max);
		outs[way] = malloc(n + 1);
		olen[way] = 0;
		cons[way] = 0;
		int r = 0;
		size_t pos = 0;
		do {
			size_t k = n - pos < step ? n - pos : step;
			char *piece = malloc(k ? k : 1);
			memcpy(piece, in + pos, k);
			size_t c = 0, d = 0;
			r = http_body_feed(&b, piece, k, &c, &d);
			if (c > k || d > c)
				r = INCONSISTENT;
			if (r >= 0) {
				memcpy(outs[way] + olen[way], piece, d);
				olen[way] += d;
				pos += c;
			}
			free(piece);
		} while (r == 0 && pos < n);
		res[way] = r;
		cons[way] = pos;
		outs[way][olen[way]] = 0;
	}
	int r = res[0];
	for (int way = 1; way < 3; way++) {
		if (res[way] != r || (r >= 0 && (olen[way] != olen[0] || cons[way] != cons[0] ||
		                                 memcmp(outs[way], outs[0], olen[0]) != 0))) {
			diag("body decoding differs by split: %d vs %d", res[way], r);
			r = INCONSISTENT;
		}
	}
	if (out) {
		memcpy(out, outs[0], olen[0] + 1);
		*out_len = olen[0];
	}
	if (used)
		*used = cons[0];
	for (int way = 0; way < 3; way++)
		free(outs[way]);
	return r;
}

/* The length of the whole message (head and body) at raw, or 0 if the body
 * does not complete within the rest of raw. */
static size_t message_len(const struct http_message *m, const char *raw, size_t len, int head)
{
	size_t used = 0;
	if (m->body_kind == HTTP_BODY_EOF)
		return 0;
	int r = decode3(m, UINT64_MAX, raw + head, len - (size_t)head, NULL, NULL, &used);
	return r == 1 ? (size_t)head + used : 0;
}

static const char good_get[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";

/*
 * Parse a request whole, by prefixes and pipelined; *out gets the whole
 * parse (pointers into a copy that lives until the next call).
 */
static int req_n(const char *raw, size_t len, const struct http_limits *lim,
                 struct http_request *out)
{
	static char *keep;
	free(keep);
	keep = malloc(len ? len : 1);
	memcpy(keep, raw, len);
	int whole = http_parse_request(keep, len, lim, out);

	/* every prefix, in a buffer of exactly its length */
	int seen = 0;
	struct http_request *pr = malloc(sizeof *pr);
	for (size_t k = 0; k <= len; k++) {
		char *b = malloc(k ? k : 1);
		memcpy(b, raw, k);
		int r = http_parse_request(b, k, lim, pr);
		bool bad = false;
		if (seen != 0 && r != seen)
			bad = true;
		if (r != 0 && r != whole)
			bad = true;
		if (r > 0 && !same_request(pr, b, out, keep))
			bad = true;
		free(b);
		if (bad) {
			diag("prefix of %zu bytes gives %d, after %d; whole gives %d", k, r, seen, whole);
			free(pr);
			return INCONSISTENT;
		}
		seen = r;
	}

	/* pipelined */
	if (whole > 0) {
		size_t ml = message_len(&out->m, raw, len, whole);
		if (ml) {
			char *p = malloc(3 * ml);
			for (int i = 0; i < 3; i++)
				memcpy(p + i * ml, raw, ml);
			size_t off = 0;
			for (int i = 0; i < 3; i++) {
				int r = http_parse_request(p + off, 3 * ml - off, lim, pr);
				if (r != whole || !same_request(pr, p + off, out, keep)) {
					diag("pipelined message %d gives %d, whole gives %d", i, r, whole);
					whole = INCONSISTENT;
					break;
				}
				struct http_body bd;
				size_t c = 0, d = 0;
				http_body_init(&bd, &pr->m, UINT64_MAX);
				off += (size_t)r;
				int br = http_body_feed(&bd, p + off, 3 * ml - off, &c, &d);
				if (br != 1) {
					diag("pipelined body %d gives %d", i, br);
					whole = INCONSISTENT;
					break;
				}
				off += c;
			}
			if (whole != INCONSISTENT && off != 3 * ml) {
				diag("pipeline ends at %zu of %zu", off, 3 * ml);
				whole = INCONSISTENT;
			}
			free(p);
		}
	} else {
		size_t gl = strlen(good_get);
		char *p = malloc(gl + len);
		memcpy(p, good_get, gl);
		memcpy(p + gl, raw, len);
		int r1 = http_parse_request(p, gl + len, lim, pr);
		int r2 = http_parse_request(p + gl, len, lim, pr);
		if (r1 != (int)gl || r2 != whole) {
			diag("after a good request: %d then %d, whole gives %d", r1, r2, whole);
			whole = INCONSISTENT;
		}
		free(p);
	}
	free(pr);
	return whole;
}

static struct http_request rq;

static int req(const char *raw)
{
	return req_n(raw, strlen(raw), &deflim, &rq);
}

static int req_lim(const char *raw, const struct http_limits *lim)
{
	return req_n(raw, strlen(raw), lim, &rq);
}

static bool ok_head(const char *raw)
{
	return req(raw) == (int)strlen(raw);
}

static struct http_response rs;

static int res_n(const char *raw, size_t len, enum http_method method)
{
	static char *keep;
	free(keep);
	keep = malloc(len ? len : 1);
	memcpy(keep, raw, len);
	int whole = http_parse_response(keep, len, &deflim, method, &rs);

	int seen = 0;
	struct http_response *pr = malloc(sizeof *pr);
	for (size_t k = 0; k <= len; k++) {
		char *b = malloc(k ? k : 1);
		memcpy(b, raw, k);
		int r = http_parse_response(b, k, &deflim, method, pr);
		bool bad = (seen != 0 && r != seen) || (r != 0 && r != whole) ||
		           (r > 0 && !same_response(pr, b, &rs, keep));
		free(b);
		if (bad) {
			diag("response prefix of %zu bytes gives %d, whole %d", k, r, whole);
			free(pr);
			return INCONSISTENT;
		}
		seen = r;
	}
	if (whole > 0) {
		size_t ml = message_len(&rs.m, raw, len, whole);
		if (ml) {
			char *p = malloc(2 * ml);
			memcpy(p, raw, ml);
			memcpy(p + ml, raw, ml);
			size_t off = 0;
			for (int i = 0; i < 2 && whole > 0; i++) {
				int r = http_parse_response(p + off, 2 * ml - off, &deflim, method, pr);
				if (r != whole || !same_response(pr, p + off, &rs, keep)) {
					whole = INCONSISTENT;
					break;
				}
				off += (size_t)r;
				struct http_body bd;
				size_t c = 0, d = 0;
				http_body_init(&bd, &pr->m, UINT64_MAX);
				if (http_body_feed(&bd, p + off, 2 * ml - off, &c, &d) != 1)
					whole = INCONSISTENT;
				off += c;
			}
			if (whole > 0 && off != 2 * ml)
				whole = INCONSISTENT;
			free(p);
		}
	}
	free(pr);
	return whole;
}

static int res(const char *raw, enum http_method method)
{
	return res_n(raw, strlen(raw), method);
}

static bool span_is(const char *p, uint32_t n, const char *want)
{
	return p && n == strlen(want) && memcmp(p, want, n) == 0;
}

/* Decode a chunked body (given after the head) with the default limit. */
static char body_out[65536];
static size_t body_len;

static int chunked(const char *body)
{
	struct http_message m;
	memset(&m, 0, sizeof m);
	m.body_kind = HTTP_BODY_CHUNKED;
	return decode3(&m, deflim.max_body, body, strlen(body), body_out, &body_len, NULL);
}

static int chunked_max(const char *body, uint64_t max)
{
	struct http_message m;
	memset(&m, 0, sizeof m);
	m.body_kind = HTTP_BODY_CHUNKED;
	return decode3(&m, max, body, strlen(body), body_out, &body_len, NULL);
}

/* ---------------------------------------------------------------- request line */

static void test_request_line(void)
{
	static const struct { const char *name; enum http_method m; } methods[] = {
		{"GET", HTTP_GET}, {"HEAD", HTTP_HEAD}, {"POST", HTTP_POST}, {"PUT", HTTP_PUT},
		{"DELETE", HTTP_DELETE}, {"OPTIONS", HTTP_OPTIONS}, {"PATCH", HTTP_PATCH},
		{"TRACE", HTTP_TRACE},
	};
	char buf[256];
	for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
		snprintf(buf, sizeof buf, "%s /x HTTP/1.1\r\nHost: a\r\n\r\n", methods[i].name);
		is_int(req(buf), (int)strlen(buf), "request line: %s parses", methods[i].name);
		is_int(rq.method, methods[i].m, "request line: %s is recognised", methods[i].name);
		is_str(http_method_name(methods[i].m), methods[i].name,
		       "request line: http_method_name names %s", methods[i].name);
	}
	ok(ok_head("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n") &&
	   rq.method == HTTP_CONNECT, "request line: CONNECT with authority-form parses");
	ok(ok_head("PROPFIND /dav HTTP/1.1\r\nHost: a\r\n\r\n") && rq.method == HTTP_OTHER &&
	   span_is(rq.method_str, rq.method_len, "PROPFIND"),
	   "request line: an unknown token method is HTTP_OTHER with its name");
	ok(ok_head("get / HTTP/1.1\r\nHost: a\r\n\r\n") && rq.method == HTTP_OTHER,
	   "request line: methods are case-sensitive, lowercase get is another method");
	is_int(req("G(T / HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_EMETHOD,
	       "request line: a method that is not a token is EMETHOD");
	is_int(req("ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFG / HTTP/1.1\r\nHost: a\r\n\r\n"),
	       HTTP_PARSE_EMETHOD, "request line: a 33-byte method is EMETHOD");
	ok(ok_head("ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEF / HTTP/1.1\r\nHost: a\r\n\r\n"),
	   "request line: a 32-byte method is fine");
	is_int(req("ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJ"), HTTP_PARSE_EMETHOD,
	       "request line: an over-long method is EMETHOD before the line ends");
	is_int(req(" / HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_EMETHOD,
	       "request line: an empty method is EMETHOD");
	/* RFC 9112 2.2: empty lines before a request-line are skipped, up to
	 * HTTP_MAX_EMPTY_LINES; they count in the head's length */
	ok(ok_head("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n") && rq.method == HTTP_GET &&
	   span_is(rq.path, rq.path_len, "/") && rq.m.head_len == 29,
	   "request line: an empty line before the request line is skipped and counted");
	ok(ok_head("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n") && rq.m.head_len == 28,
	   "request line: a bare LF before the request line is skipped");
	ok(ok_head("\r\n\n\r\n\r\n\r\n\r\n\r\n\r\nPOST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n") &&
	   rq.method == HTTP_POST && rq.m.content_length == 2,
	   "request line: eight empty lines before the request line are skipped");
	is_int(req("\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "request line: a ninth empty line is rejected");
	is_int(req("\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "request line: nothing but line ends is rejected once past the bound");
	is_int(req("\r\n\r\n"), 0, "request line: two empty lines alone wait for more");
	is_int(req("\r"), 0, "request line: a lone CR waits for its LF");
	is_int(req("\rGET / HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "request line: a bare CR before the request line is rejected");
	is_int(req("\r\n GET / HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_EMETHOD,
	       "request line: an empty line then a space is still an empty method");
	{
		/* the empty lines belong to the request after them: a CRLF left
		 * after a POST body, then the next request */
		const char two[] = "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nab"
		                   "\r\nGET /y HTTP/1.1\r\nHost: a\r\n\r\n";
		struct http_request r1, r2;
		int a = http_parse_request(two, sizeof two - 1, &deflim, &r1);
		size_t off = (size_t)a + 2;
		int b = a > 0 ? http_parse_request(two + off, sizeof two - 1 - off, &deflim, &r2) : a;
		ok(a > 0 && b == 2 + 28 && r2.method == HTTP_GET && span_is(r2.path, r2.path_len, "/y"),
		   "request line: a CRLF after a POST body is skipped before the next request");
	}

	is_int(req("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "request line: two spaces after the method are rejected");
	is_int(req("GET /  HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "request line: two spaces before the version are rejected");
	is_int(req("GET / HTTP/1.1 \r\nHost: a\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "request line: a space after the version is rejected");
	is_int(req("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_EMETHOD,
	       "request line: a tab after the method is rejected");
	is_int(req("GET /\tHTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "request line: a tab before the version is rejected");
	is_int(req("GET /\r\nHost: a\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "request line: a missing version (HTTP/0.9 style) is rejected");
	is_int(req("GET / \r\nHost: a\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "request line: an empty version is rejected");
	is_int(req("GET HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "request line: a missing target is rejected");

	ok(ok_head("GET / HTTP/1.0\r\n\r\n") && rq.m.version_minor == 0,
	   "request line: HTTP/1.0 parses as minor version 0");
	ok(ok_head(good_get) && rq.m.version_minor == 1,
	   "request line: HTTP/1.1 parses as minor version 1");
	ok(ok_head("GET / HTTP/1.2\r\nHost: a\r\n\r\n") && rq.m.version_minor == 1,
	   "request line: HTTP/1.2 is treated as HTTP/1.1 (RFC 9110 2.5)");
	is_int(req("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), HTTP_PARSE_EVERSION,
	       "request line: HTTP/2.0 is EVERSION");
	is_int(req("GET / HTTP/0.9\r\n\r\n"), HTTP_PARSE_EVERSION,
	       "request line: HTTP/0.9 is EVERSION");
	is_int(req("GET / HTTP/3.0\r\nHost: a\r\n\r\n"), HTTP_PARSE_EVERSION,
	       "request line: HTTP/3.0 is EVERSION");
	is_int(http_parse_status(HTTP_PARSE_EVERSION), 505, "request line: EVERSION maps to 505");
	is_int(req("GET / HTTP/1.10\r\nHost: a\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "request line: HTTP/1.10 is malformed");
	is_int(req("GET / HTTP/11.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "request line: HTTP/11.1 is malformed");
	is_int(req("GET / http/1.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "request line: lowercase http/1.1 is EINVAL");
	is_int(req("GET / HTTP/1\r\nHost: a\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "request line: HTTP/1 without a minor version is malformed");
	is_int(req("GET / HTTP/1.x\r\nHost: a\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "request line: a non-digit minor version is malformed");
	is_int(req("GET / HTTP/2\r\nHost: a\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "request line: HTTP/2 without a minor version is malformed");
}

static void test_targets(void)
{
	ok(ok_head("GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: a\r\n\r\n") &&
	   span_is(rq.target, rq.target_len, "/a/b?x=1&y=2") &&
	   span_is(rq.path, rq.path_len, "/a/b") && span_is(rq.query, rq.query_len, "x=1&y=2"),
	   "origin-form: path and query are split at the first '?'");
	ok(ok_head("GET /a?b?c HTTP/1.1\r\nHost: a\r\n\r\n") && span_is(rq.path, rq.path_len, "/a") &&
	   span_is(rq.query, rq.query_len, "b?c"), "origin-form: a '?' inside the query stays in it");
	ok(ok_head("GET /? HTTP/1.1\r\nHost: a\r\n\r\n") && rq.query && rq.query_len == 0,
	   "origin-form: an empty query is non-NULL with length 0");
	ok(ok_head(good_get) && rq.query == NULL && span_is(rq.path, rq.path_len, "/"),
	   "origin-form: no '?' leaves query NULL");
	ok(ok_head("GET /a%20b%2F HTTP/1.1\r\nHost: a\r\n\r\n"),
	   "origin-form: percent-escapes in either case are fine");
	ok(ok_head("GET /a:b@c!$&'()*+,;=-._~ HTTP/1.1\r\nHost: a\r\n\r\n"),
	   "origin-form: every pchar of RFC 3986 is allowed");
	is_int(req("GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "origin-form: a percent sign without hex digits is rejected");
	is_int(req("GET /%4 HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "origin-form: a percent sign with one hex digit is rejected");
	is_int(req("GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "origin-form: a fragment is rejected");
	is_int(req("GET /a<b HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "origin-form: '<' is rejected");
	is_int(req("GET /a\"b HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "origin-form: a double quote is rejected");
	is_int(req("GET /a\\b HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "origin-form: a backslash is rejected");
	is_int(req("GET /a[b] HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "origin-form: brackets are rejected outside an authority");
	is_int(req("GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "origin-form: raw non-ASCII bytes are rejected");
	is_int(req_n("GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n", 30, &deflim, &rq), HTTP_PARSE_EINVAL,
	       "origin-form: NUL is rejected");
	is_int(req("GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "origin-form: DEL is rejected");
	is_int(req("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "origin-form: a space inside the target is rejected");

	ok(ok_head("GET http://example.com/x?y=1 HTTP/1.1\r\nHost: example.com\r\n\r\n") &&
	   span_is(rq.target, rq.target_len, "http://example.com/x?y=1") &&
	   span_is(rq.path, rq.path_len, "http://example.com/x?y=1") && rq.query == NULL,
	   "absolute-form: parses, path is the whole target");
	ok(ok_head("GET http://[::1]:8080/ HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"),
	   "absolute-form: an IPv6 literal authority parses");
	ok(ok_head("GET HTTPS://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n"),
	   "absolute-form: the scheme is case-insensitive and the path may be empty");
	is_int(req("GET http://user@example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n"),
	       HTTP_PARSE_EINVAL, "absolute-form: userinfo is rejected (RFC 9110 4.2.4)");
	is_int(req("GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "absolute-form: an empty host is rejected");
	is_int(req("GET http://a:b/ HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "absolute-form: a non-digit port is rejected");
	ok(ok_head("GET http://example.com:8080?q HTTP/1.1\r\nHost: example.com\r\n\r\n"),
	   "absolute-form: a query straight after the authority is fine");
	is_int(req("GET 1http://a/ HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "absolute-form: a scheme must start with a letter");
	is_int(req("GET example.com:443 HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "authority-form: is rejected for GET");
	is_int(req("GET foo HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "request target: a bare word is rejected");

	ok(ok_head("CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n"),
	   "authority-form: CONNECT to an IPv6 literal parses");
	is_int(req("CONNECT example.com HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "authority-form: CONNECT without a port is rejected");
	is_int(req("CONNECT example.com: HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "authority-form: CONNECT with an empty port is rejected");
	is_int(req("CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "authority-form: CONNECT with origin-form is rejected");
	is_int(req("CONNECT user@example.com:443 HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "authority-form: userinfo is rejected");

	ok(ok_head("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n") && span_is(rq.path, rq.path_len, "*"),
	   "asterisk-form: OPTIONS * parses");
	is_int(req("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "asterisk-form: is rejected for GET");
	is_int(req("OPTIONS *x HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "asterisk-form: '*' followed by more is rejected");
}

/* ---------------------------------------------------------------- line endings */

static void test_line_endings(void)
{
	is_int(req("GET / HTTP/1.1\nHost: a\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "line endings: a bare LF after the request line is rejected");
	is_int(req("GET / HTTP/1.1\r\nHost: a\n\r\n"), HTTP_PARSE_EINVAL,
	       "line endings: a bare LF after a field line is rejected");
	is_int(req("GET / HTTP/1.1\r\nHost: a\r\n\n"), HTTP_PARSE_EINVAL,
	       "line endings: a bare LF as the empty line is rejected");
	is_int(req("GET / HTTP/1.1\nHost: a\n\n"), HTTP_PARSE_EINVAL,
	       "line endings: LF-only messages are rejected");
	is_int(req("GET / HTTP/1.1\rHost: a\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "line endings: a bare CR after the request line is rejected");
	is_int(req("GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "line endings: a bare CR inside a field value is rejected");
	is_int(req("GET / HTTP/1.1\r\nHost: a\r\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "line endings: CR CR LF is rejected");
	is_int(req("GET / HTTP/1.1\r\nHost: a\r\n\r\r\n"), HTTP_PARSE_EINVAL,
	       "line endings: a bare CR in the empty line is rejected");
	is_int(req("GET /\r HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "line endings: a bare CR in the request target is rejected");
	is_int(req("GET\r / HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_EMETHOD,
	       "line endings: a bare CR in the method is rejected");
	is_int(req("GET / HTTP/1.1\r\nX\r: a\r\nHost: a\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "line endings: a bare CR in a field name is rejected");
	ok(ok_head("GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n\r\n"),
	   "line endings: CRLF everywhere is fine");
	is_int(req("GET / HTTP/1.1\r\nHost: a\r\n\r"), 0,
	       "line endings: a head ending in CR waits for the LF");
}

/* ---------------------------------------------------------------- field syntax */

static void test_field_syntax(void)
{
	is_int(req("GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n c\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "fields: obs-fold with a space is rejected");
	is_int(req("GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n\tc\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "fields: obs-fold with a tab is rejected");
	is_int(req("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "fields: whitespace before the first field line is rejected");
	is_int(req("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "fields: a space before the colon is rejected");
	is_int(req("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "fields: a tab before the colon is rejected");
	is_int(req("GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "fields: an empty field name is rejected");
	is_int(req("GET / HTTP/1.1\r\nHost: a\r\nX(y): b\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "fields: a field name that is not a token is rejected");
	is_int(req("GET / HTTP/1.1\r\nHost: a\r\nX y: b\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "fields: a space inside a field name is rejected");
	is_int(req("GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "fields: a line without a colon is rejected");
	is_int(req("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01" "b\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "fields: a control character in a value is rejected");
	is_int(req_n("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", 33, &deflim, &rq),
	       HTTP_PARSE_EINVAL, "fields: NUL in a value is rejected");
	is_int(req_n("GET / HTTP/1.1\r\nHost: a\r\nX\0: b\r\n\r\n", 32, &deflim, &rq),
	       HTTP_PARSE_EINVAL, "fields: NUL in a name is rejected");
	is_int(req("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "fields: DEL in a value is rejected");
	ok(ok_head("GET / HTTP/1.1\r\nHost: a\r\nX: a\tb\r\n\r\n") &&
	   span_is(rq.m.headers[1].value, rq.m.headers[1].value_len, "a\tb"),
	   "fields: a tab inside a value is kept");
	ok(ok_head("GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\r\n\r\n"),
	   "fields: obs-text bytes in a value are allowed");
	ok(ok_head("GET / HTTP/1.1\r\nHost: a\r\nX: \t  some value \t \r\n\r\n") &&
	   span_is(rq.m.headers[1].value, rq.m.headers[1].value_len, "some value"),
	   "fields: leading and trailing OWS are trimmed, inner spaces kept");
	ok(ok_head("GET / HTTP/1.1\r\nHost: a\r\nX:\r\nY: \t \r\n\r\n") &&
	   rq.m.n_headers == 3 && rq.m.headers[1].value_len == 0 && rq.m.headers[2].value_len == 0,
	   "fields: empty values (with or without OWS) are fine");
	ok(ok_head("GET / HTTP/1.1\r\nHost: a\r\nX:nospace\r\n\r\n") &&
	   span_is(rq.m.headers[1].value, rq.m.headers[1].value_len, "nospace"),
	   "fields: no space after the colon is fine");
	ok(ok_head("GET / HTTP/1.1\r\nhOsT: a\r\n!#$%&'*+-.^_`|~09AZaz: b\r\n\r\n") &&
	   rq.host && rq.m.n_headers == 2, "fields: names are any token, matched case-insensitively");
	ok(ok_head("GET / HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\n\r\n") &&
	   http_header_is(&rq.m.headers[1], "content-type") &&
	   !http_header_is(&rq.m.headers[1], "content-typ") &&
	   http_message_header(&rq.m, "content-type") == &rq.m.headers[1] &&
	   http_message_header(&rq.m, "accept") == NULL,
	   "fields: http_header_is and http_message_header find fields by lowercase name");
	ok(http_value_has_token("gzip, Chunked ,x", 16, "chunked") &&
	   !http_value_has_token("gzip, chunkedx", 14, "chunked") &&
	   http_value_has_token(",,close", 7, "close") && !http_value_has_token("", 0, "close"),
	   "fields: http_value_has_token walks a comma list");
}

/* ---------------------------------------------------------------- Host */

static void test_host(void)
{
	ok(ok_head("GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n") &&
	   span_is(rq.host, rq.host_len, "example.com:8080"), "host: the value is returned");
	is_int(req("GET / HTTP/1.1\r\n\r\n"), HTTP_PARSE_EHOST,
	       "host: an HTTP/1.1 request without Host is EHOST");
	is_int(req("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), HTTP_PARSE_EHOST,
	       "host: two Host fields, even equal, are EHOST");
	is_int(req("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), HTTP_PARSE_EHOST,
	       "host: two differing Host fields are EHOST");
	ok(ok_head("GET / HTTP/1.0\r\n\r\n") && rq.host == NULL,
	   "host: an HTTP/1.0 request needs no Host");
	is_int(req("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"), HTTP_PARSE_EHOST,
	       "host: two Host fields are EHOST in HTTP/1.0 too");
	ok(ok_head("GET / HTTP/1.1\r\nHost:\r\n\r\n") && rq.host && rq.host_len == 0,
	   "host: an empty Host is allowed (RFC 9112 3.2)");
	ok(ok_head("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n"), "host: an IPv6 literal is fine");
	is_int(req("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), HTTP_PARSE_EHOST,
	       "host: a space inside the value is EHOST");
	is_int(req("GET / HTTP/1.1\r\nHost: user@a\r\n\r\n"), HTTP_PARSE_EHOST,
	       "host: userinfo is EHOST");
	is_int(req("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), HTTP_PARSE_EHOST,
	       "host: a slash is EHOST");
	is_int(req("GET / HTTP/1.1\r\nHost: a:b\r\n\r\n"), HTTP_PARSE_EHOST,
	       "host: a non-digit port is EHOST");
	is_int(req("GET / HTTP/1.1\r\nHost: a:80:90\r\n\r\n"), HTTP_PARSE_EHOST,
	       "host: two ports are EHOST");
	is_int(req("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n"), HTTP_PARSE_EHOST,
	       "host: an unclosed IP literal is EHOST");
	is_int(req("GET / HTTP/1.1\r\nHost: a]\r\n\r\n"), HTTP_PARSE_EHOST,
	       "host: a stray bracket is EHOST");
	is_int(req("GET / HTTP/1.1\r\nHost: a%2\r\n\r\n"), HTTP_PARSE_EHOST,
	       "host: a broken percent-escape is EHOST");
	ok(ok_head("GET / HTTP/1.1\r\nHost: ex%41mple.com:\r\n\r\n"),
	   "host: percent-escapes and an empty port are fine (RFC 3986)");
	static const char *const good_lit[] = {
		"[::1]", "[::]", "[1:2:3:4:5:6:7:8]", "[::ffff:1.2.3.4]", "[fe80::1]",
		"[2001:db8::1]", "[v1.x]", "[1::]", "[1:2:3:4:5:6::8]", "[1:2:3:4:5:6:1.2.3.4]",
		"[::255.255.255.0]", "[ABCD::ef]", "[V1F.a:b!$]",
	};
	static const char *const bad_lit[] = {
		"[zzzz]", "[g::1]", "[::1::2]", "[1:2:3:4:5:6:7:8:9]", "[12345::1]",
		"[::ffff:1.2.3.999]", "[:1]", "[1:]", "[v.x]", "[v1.]", "[1.2.3.4]", "[]",
		"[1:2:3:4:5:6:7]", "[:::1]", "[1:2:3:4:5:6:7::8]", "[::01.2.3.4]",
		"[::1.2.3]", "[::1.2.3.4.5]", "[::1.2.3.4:1]", "[1:2:3:4:5:6:7:1.2.3.4]",
		"[::1.2.3.256]", "[vx.a]", "[v1.a/b]", "[1:::2]",
	};
	char hb[128];
	for (size_t i = 0; i < sizeof good_lit / sizeof good_lit[0]; i++) {
		snprintf(hb, sizeof hb, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", good_lit[i]);
		ok(ok_head(hb), "host: the IP literal %s is fine", good_lit[i]);
		snprintf(hb, sizeof hb, "GET / HTTP/1.1\r\nHost: %s:8080\r\n\r\n", good_lit[i]);
		ok(ok_head(hb), "host: the IP literal %s with a port is fine", good_lit[i]);
		snprintf(hb, sizeof hb, "GET http://%s:80/x HTTP/1.1\r\nHost: a\r\n\r\n", good_lit[i]);
		ok(ok_head(hb), "host: the absolute-form target with %s is fine", good_lit[i]);
	}
	for (size_t i = 0; i < sizeof bad_lit / sizeof bad_lit[0]; i++) {
		snprintf(hb, sizeof hb, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", bad_lit[i]);
		is_int(req(hb), HTTP_PARSE_EHOST, "host: the IP literal %s is EHOST", bad_lit[i]);
		snprintf(hb, sizeof hb, "GET / HTTP/1.1\r\nHost: %s:80\r\n\r\n", bad_lit[i]);
		is_int(req(hb), HTTP_PARSE_EHOST, "host: the IP literal %s with a port is EHOST",
		       bad_lit[i]);
		snprintf(hb, sizeof hb, "GET http://%s/x HTTP/1.1\r\nHost: a\r\n\r\n", bad_lit[i]);
		ok(req(hb) < 0, "host: the absolute-form target with %s is refused", bad_lit[i]);
		snprintf(hb, sizeof hb, "CONNECT %s:443 HTTP/1.1\r\nHost: a\r\n\r\n", bad_lit[i]);
		ok(req(hb) < 0, "host: the CONNECT authority %s is refused", bad_lit[i]);
	}
	ok(ok_head("CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n"),
	   "host: a CONNECT authority with an IPv6 literal is fine");
	is_int(http_parse_status(HTTP_PARSE_EHOST), 400, "host: EHOST maps to 400");
}

/* ---------------------------------------------------------------- Content-Length */

static int cl(const char *value)
{
	char buf[512];
	snprintf(buf, sizeof buf, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %s\r\n\r\n", value);
	struct http_limits lim = deflim;
	lim.max_body = UINT64_MAX;
	int r = req_lim(buf, &lim);
	return r > 0 ? 0 : r;
}

static void test_content_length(void)
{
	ok(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello") == 47 &&
	   rq.m.body_kind == HTTP_BODY_LENGTH && rq.m.content_length == 5,
	   "content-length: frames the body, which follows the head");
	ok(cl("0") == 0 && rq.m.body_kind == HTTP_BODY_NONE && rq.m.content_length == 0,
	   "content-length: 0 means no body");
	ok(cl("005") == 0 && rq.m.content_length == 5, "content-length: leading zeros are fine");
	is_int(cl("abc"), HTTP_PARSE_ELENGTH, "content-length: letters are ELENGTH");
	is_int(cl("5a"), HTTP_PARSE_ELENGTH, "content-length: trailing junk is ELENGTH");
	is_int(cl("+5"), HTTP_PARSE_ELENGTH, "content-length: a plus sign is ELENGTH");
	is_int(cl("-5"), HTTP_PARSE_ELENGTH, "content-length: a minus sign is ELENGTH");
	is_int(cl("0x5"), HTTP_PARSE_ELENGTH, "content-length: hex is ELENGTH");
	is_int(cl("5 5"), HTTP_PARSE_ELENGTH, "content-length: two numbers without a comma are ELENGTH");
	is_int(cl("5.0"), HTTP_PARSE_ELENGTH, "content-length: a decimal point is ELENGTH");
	is_int(cl(""), HTTP_PARSE_ELENGTH, "content-length: an empty value is ELENGTH");
	ok(cl("9223372036854775807") == 0 && rq.m.content_length == UINT64_C(9223372036854775807),
	   "content-length: 2^63 - 1 is the largest accepted");
	is_int(cl("9223372036854775808"), HTTP_PARSE_ELENGTH,
	       "content-length: 2^63 overflows and is ELENGTH");
	is_int(cl("18446744073709551616"), HTTP_PARSE_ELENGTH,
	       "content-length: 2^64 overflows and is ELENGTH");
	is_int(cl("99999999999999999999999999"), HTTP_PARSE_ELENGTH,
	       "content-length: a huge number is ELENGTH");
	ok(cl("5, 5") == 0 && rq.m.content_length == 5,
	   "content-length: a list of equal values is merged");
	ok(cl("5,5 ,  5") == 0 && rq.m.content_length == 5,
	   "content-length: a list of equal values with odd spacing is merged");
	ok(cl("5, 05") == 0 && rq.m.content_length == 5,
	   "content-length: equal values compare as numbers");
	is_int(cl("5, 6"), HTTP_PARSE_ELENGTH, "content-length: a list of differing values is ELENGTH");
	is_int(cl("5,"), HTTP_PARSE_ELENGTH, "content-length: a trailing comma is ELENGTH");
	is_int(cl("5,,5"), HTTP_PARSE_ELENGTH, "content-length: an empty element is ELENGTH");
	ok(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc") == 66 &&
	   rq.m.content_length == 3, "content-length: equal duplicate fields are merged");
	is_int(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"),
	       HTTP_PARSE_ELENGTH, "content-length: differing duplicate fields are ELENGTH");
	is_int(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\ncontent-length: 3, 4\r\n\r\n"),
	       HTTP_PARSE_ELENGTH, "content-length: a later list that differs is ELENGTH");
	is_int(http_parse_status(HTTP_PARSE_ELENGTH), 400, "content-length: ELENGTH maps to 400");
}

/* ---------------------------------------------------------------- Transfer-Encoding */

static void test_transfer_encoding(void)
{
	ok(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n") == 56 &&
	   rq.m.body_kind == HTTP_BODY_CHUNKED, "transfer-encoding: chunked frames the body");
	ok(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n0\r\n\r\n") == 56 &&
	   rq.m.body_kind == HTTP_BODY_CHUNKED, "transfer-encoding: the coding name is case-insensitive");
	ok(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , chunked\r\n\r\n0\r\n\r\n") == 58,
	   "transfer-encoding: empty list elements are ignored");
	is_int(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
	       HTTP_PARSE_ENOTIMPL, "transfer-encoding: gzip, chunked is ENOTIMPL");
	is_int(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
	       HTTP_PARSE_ENOTIMPL, "transfer-encoding: chunked, gzip is ENOTIMPL");
	is_int(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"),
	       HTTP_PARSE_ENOTIMPL, "transfer-encoding: gzip alone is ENOTIMPL");
	is_int(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n"),
	       HTTP_PARSE_ENOTIMPL, "transfer-encoding: identity is ENOTIMPL");
	is_int(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunkedx\r\n\r\n"),
	       HTTP_PARSE_ENOTIMPL, "transfer-encoding: a near-miss of chunked is ENOTIMPL");
	is_int(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"),
	       HTTP_PARSE_ENOTIMPL, "transfer-encoding: gzip then chunked in two fields is ENOTIMPL");
	is_int(http_parse_status(HTTP_PARSE_ENOTIMPL), 501, "transfer-encoding: ENOTIMPL maps to 501");
	is_int(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"),
	       HTTP_PARSE_EINVAL, "transfer-encoding: chunked twice in one field is rejected");
	is_int(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
	       HTTP_PARSE_EINVAL, "transfer-encoding: chunked twice in two fields is rejected");
	is_int(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n"),
	       HTTP_PARSE_EINVAL, "transfer-encoding: an empty value is rejected");
	is_int(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"),
	       HTTP_PARSE_ELENGTH, "transfer-encoding: with Content-Length after it is ELENGTH");
	is_int(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
	       HTTP_PARSE_ELENGTH, "transfer-encoding: with Content-Length before it is ELENGTH");
	is_int(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n"),
	       HTTP_PARSE_ELENGTH, "transfer-encoding: with Content-Length 0 is ELENGTH");
	is_int(req("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), HTTP_PARSE_EINVAL,
	       "transfer-encoding: in HTTP/1.0 is rejected");
	is_int(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n"),
	       HTTP_PARSE_EINVAL, "transfer-encoding: a space before the colon is rejected");
	is_int(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: x\r\n chunked\r\n\r\n"),
	       HTTP_PARSE_EINVAL, "transfer-encoding: chunked hidden in an obs-fold is rejected");
	ok(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\n\r\n") > 0 &&
	   rq.m.body_kind == HTTP_BODY_NONE,
	   "transfer-encoding: Transfer_Encoding is another field and frames nothing");
}

/* ---------------------------------------------------------------- chunked */

static void test_chunked(void)
{
	ok(chunked("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n") == 1 && body_len == 11 &&
	   memcmp(body_out, "hello world", 11) == 0, "chunked: chunks decode to their data");
	ok(chunked("a\r\n0123456789\r\nA\r\n0123456789\r\n0\r\n\r\n") == 1 && body_len == 20,
	   "chunked: sizes are hex in either case");
	ok(chunked("00005\r\nhello\r\n000\r\n\r\n") == 1 && body_len == 5,
	   "chunked: leading zeros in sizes are fine");
	ok(chunked("5;name=value;flag\r\nhello\r\n0;last\r\n\r\n") == 1 && body_len == 5,
	   "chunked: chunk extensions are skipped");
	ok(chunked("5 ;x=\"quoted value\"\r\nhello\r\n0\r\n\r\n") == 1 && body_len == 5,
	   "chunked: whitespace before an extension and quoted values are fine");
	ok(chunked("5 ; a = b ;c;d=\"x\\\"y\"\r\nhello\r\n0\r\n\r\n") == 1 && body_len == 5,
	   "chunked: BWS around ';' and '=', bare names and escaped quotes are fine");
	is_int(chunked("5;\r\nhello\r\n0\r\n\r\n"), HTTP_PARSE_ECHUNK,
	       "chunked: an extension without a name is ECHUNK");
	is_int(chunked("5;=x\r\nhello\r\n0\r\n\r\n"), HTTP_PARSE_ECHUNK,
	       "chunked: an extension value without a name is ECHUNK");
	is_int(chunked("5;a=\r\nhello\r\n0\r\n\r\n"), HTTP_PARSE_ECHUNK,
	       "chunked: an extension with '=' and no value is ECHUNK");
	is_int(chunked("5;a b\r\nhello\r\n0\r\n\r\n"), HTTP_PARSE_ECHUNK,
	       "chunked: two words in an extension name are ECHUNK");
	is_int(chunked("1;a=b \r\nx\r\n0\r\n\r\n"), HTTP_PARSE_ECHUNK,
	       "chunked: whitespace after an extension value before the CRLF is ECHUNK");
	is_int(chunked("1;a=\"b\"\t\r\nx\r\n0\r\n\r\n"), HTTP_PARSE_ECHUNK,
	       "chunked: whitespace after a quoted extension value before the CRLF is ECHUNK");
	is_int(chunked("1\r\nx\r\n0;a=b \r\n\r\n"), HTTP_PARSE_ECHUNK,
	       "chunked: whitespace after an extension value on the last chunk is ECHUNK");
	is_int(chunked("1\r\nx\r\n0;a=\"b\" \t \r\n\r\n"), HTTP_PARSE_ECHUNK,
	       "chunked: whitespace after a quoted value on the last chunk is ECHUNK");
	is_int(chunked("1;a=\"b\"x\r\nx\r\n0\r\n\r\n"), HTTP_PARSE_ECHUNK,
	       "chunked: a byte glued to a closing quote is ECHUNK");
	is_int(chunked("1;a=\"b\"\r\nx\r\n0\r\n\r\n"), 1,
	       "chunked: a quoted extension value right before the CRLF is fine");
	is_int(chunked("1;a=\"b\" ; c = d;e=\"f\";g\r\nx\r\n0\r\n\r\n"), 1,
	       "chunked: whitespace after values followed by ';' is fine");
	is_int(chunked("5;a=b c\r\nhello\r\n0\r\n\r\n"), HTTP_PARSE_ECHUNK,
	       "chunked: two words in an extension value are ECHUNK");
	is_int(chunked("5;a=\"x\r\nhello\r\n0\r\n\r\n"), HTTP_PARSE_ECHUNK,
	       "chunked: a CR inside an unterminated quoted value is ECHUNK");
	is_int(chunked("5;a=(x)\r\nhello\r\n0\r\n\r\n"), HTTP_PARSE_ECHUNK,
	       "chunked: a value that is neither token nor quoted-string is ECHUNK");
	ok(chunked("00000000000000000000000005\r\nhello\r\n0\r\n\r\n") == 1 && body_len == 5,
	   "chunked: leading zeros do not count toward the 16 hex digits");
	is_int(chunked_max("00000000000000000000000005\r\nhello\r\n0\r\n\r\n", 8), HTTP_PARSE_EBODY,
	       "chunked: leading zeros count against max_body like other framing");
	is_int(chunked("5 \r\nhello\r\n0\r\n\r\n"), HTTP_PARSE_ECHUNK,
	       "chunked: whitespace after the size without an extension is ECHUNK");
	is_int(chunked("5;a\x01\r\nhello\r\n0\r\n\r\n"), HTTP_PARSE_ECHUNK,
	       "chunked: a control character in an extension is ECHUNK");
	is_int(chunked("5\r\nhelloX\r\n0\r\n\r\n"), HTTP_PARSE_ECHUNK,
	       "chunked: data longer than its size is ECHUNK");
	is_int(chunked("5\r\nhello0\r\n\r\n"), HTTP_PARSE_ECHUNK,
	       "chunked: a missing CRLF after data is ECHUNK");
	is_int(chunked("5\nhello\r\n0\r\n\r\n"), HTTP_PARSE_ECHUNK,
	       "chunked: a bare LF after the size is ECHUNK");
	is_int(chunked("5\rhello\r\n0\r\n\r\n"), HTTP_PARSE_ECHUNK,
	       "chunked: a bare CR after the size is ECHUNK");
	is_int(chunked("5\r\nhello\n0\r\n\r\n"), HTTP_PARSE_ECHUNK,
	       "chunked: a bare LF after data is ECHUNK");
	is_int(chunked("5\r\nhello\r0\r\n\r\n"), HTTP_PARSE_ECHUNK,
	       "chunked: a bare CR after data is ECHUNK");
	is_int(chunked("5\r\nhello\r\n0\r\n\n"), HTTP_PARSE_ECHUNK,
	       "chunked: a bare LF as the last line is ECHUNK");
	is_int(chunked("5\r\nhello\r\n0\n\r\n"), HTTP_PARSE_ECHUNK,
	       "chunked: a bare LF after the last-chunk is ECHUNK");
	is_int(chunked("5;x\n\r\nhello\r\n0\r\n\r\n"), HTTP_PARSE_ECHUNK,
	       "chunked: a bare LF inside an extension is ECHUNK");
	is_int(chunked("\r\nhello\r\n0\r\n\r\n"), HTTP_PARSE_ECHUNK, "chunked: an empty size is ECHUNK");
	is_int(chunked("g\r\n"), HTTP_PARSE_ECHUNK, "chunked: a non-hex size is ECHUNK");
	is_int(chunked("-1\r\n"), HTTP_PARSE_ECHUNK, "chunked: a negative size is ECHUNK");
	is_int(chunked("0x5\r\nhello\r\n0\r\n\r\n"), HTTP_PARSE_ECHUNK, "chunked: a 0x prefix is ECHUNK");
	is_int(chunked(";x\r\n"), HTTP_PARSE_ECHUNK, "chunked: an extension without a size is ECHUNK");
	is_int(chunked_max("10000000000000000\r\n", UINT64_MAX), HTTP_PARSE_ECHUNK,
	       "chunked: a 17-digit size overflows and is ECHUNK");
	is_int(chunked_max("ffffffffffffffff\r\n", UINT64_MAX - 1), HTTP_PARSE_EBODY,
	       "chunked: a size over the limit is EBODY as soon as its digits show it");
	is_int(chunked("100001\r\n"), HTTP_PARSE_EBODY,
	       "chunked: a chunk over max_body is EBODY before its data arrives");
	is_int(chunked_max("5\r\nhello\r\n5\r\nhello\r\n0\r\n\r\n", 9), HTTP_PARSE_EBODY,
	       "chunked: chunks adding up past max_body are EBODY");
	ok(chunked_max("5\r\nhello\r\n5\r\nhello\r\n0\r\n\r\n", 10) == 1 && body_len == 10,
	   "chunked: a body of exactly max_body is fine");
	ok(chunked("5\r\nhello\r\n0\r\nX-Sum: 1\r\nY:\r\n\r\n") == 1 && body_len == 5,
	   "chunked: trailer fields are checked and discarded");
	is_int(chunked("0\r\nX: a\r\n b\r\n\r\n"), HTTP_PARSE_ECHUNK,
	       "chunked: an obs-fold in the trailers is ECHUNK");
	is_int(chunked("0\r\nX : a\r\n\r\n"), HTTP_PARSE_ECHUNK,
	       "chunked: a space before a trailer's colon is ECHUNK");
	is_int(chunked("0\r\nNoColon\r\n\r\n"), HTTP_PARSE_ECHUNK,
	       "chunked: a trailer line without a colon is ECHUNK");
	is_int(chunked("0\r\nX: a\n\r\n"), HTTP_PARSE_ECHUNK,
	       "chunked: a bare LF in the trailers is ECHUNK");
	is_int(chunked("0\r\nX: a\rb\r\n\r\n"), HTTP_PARSE_ECHUNK,
	       "chunked: a bare CR in a trailer value is ECHUNK");
	is_int(chunked("0\r\n: a\r\n\r\n"), HTTP_PARSE_ECHUNK,
	       "chunked: an empty trailer name is ECHUNK");
	is_int(chunked_max("0\r\nX-Long: aaaaaaaaaaaaaaaaaaaa\r\n\r\n", 10), HTTP_PARSE_EBODY,
	       "chunked: trailers count against max_body");
	is_int(chunked_max("1;aaaaaaaaaaaaaaaaaaaa\r\nx\r\n0\r\n\r\n", 10), HTTP_PARSE_EBODY,
	       "chunked: extensions count against max_body");
	is_int(chunked("5\r\nhello\r\n0\r\n"), 0, "chunked: a body without its last CRLF is incomplete");
	is_int(chunked("5\r\nhel"), 0, "chunked: a body cut inside data is incomplete");

	/* the decoder stops at the end of the body; the rest is the next message */
	const char *two = "3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
	size_t used = 0;
	struct http_message m;
	memset(&m, 0, sizeof m);
	m.body_kind = HTTP_BODY_CHUNKED;
	ok(decode3(&m, 100, two, strlen(two), body_out, &body_len, &used) == 1 && used == 13 &&
	   body_len == 3, "chunked: the decoder consumes exactly the body and leaves what follows");

	struct http_body b;
	http_body_init(&b, &m, 100);
	char bad[] = "zz";
	size_t c, d;
	int r1 = http_body_feed(&b, bad, 2, &c, &d);
	char good[] = "0\r\n\r\n";
	int r2 = http_body_feed(&b, good, 5, &c, &d);
	ok(r1 == HTTP_PARSE_ECHUNK && r2 == HTTP_PARSE_ECHUNK,
	   "chunked: after an error the decoder keeps returning it");
	is_int(http_parse_status(HTTP_PARSE_ECHUNK), 400, "chunked: ECHUNK maps to 400");

	/* Content-Length and close-delimited bodies */
	memset(&m, 0, sizeof m);
	m.body_kind = HTTP_BODY_LENGTH;
	m.content_length = 5;
	ok(decode3(&m, 100, "helloGET", 8, body_out, &body_len, &used) == 1 && used == 5 &&
	   body_len == 5, "length: the body ends after Content-Length bytes");
	is_int(decode3(&m, 4, "hello", 5, body_out, &body_len, &used), HTTP_PARSE_EBODY,
	       "length: a Content-Length over max_body is EBODY");
	m.body_kind = HTTP_BODY_EOF;
	ok(decode3(&m, 100, "abcdef", 6, body_out, &body_len, &used) == 0 && body_len == 6,
	   "eof: a close-delimited body takes everything and never completes");
	is_int(decode3(&m, 5, "abcdef", 6, body_out, &body_len, &used), HTTP_PARSE_EBODY,
	       "eof: a close-delimited body over max_body is EBODY");
	m.body_kind = HTTP_BODY_NONE;
	ok(decode3(&m, 100, "GET", 3, body_out, &body_len, &used) == 1 && used == 0,
	   "none: no body completes at once and consumes nothing");
}

/* ---------------------------------------------------------------- keep-alive, expect */

static void test_keep_alive(void)
{
	ok(ok_head(good_get) && rq.m.keep_alive, "keep-alive: HTTP/1.1 defaults to on");
	ok(ok_head("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n") && !rq.m.keep_alive,
	   "keep-alive: HTTP/1.1 with Connection: close is off");
	ok(ok_head("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, CLOSE\r\n\r\n") && !rq.m.keep_alive,
	   "keep-alive: close is found in a list, case-insensitively");
	ok(ok_head("GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n") && rq.m.keep_alive,
	   "keep-alive: closed is not close");
	ok(ok_head("GET / HTTP/1.0\r\n\r\n") && !rq.m.keep_alive, "keep-alive: HTTP/1.0 defaults to off");
	ok(ok_head("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n") && rq.m.keep_alive,
	   "keep-alive: HTTP/1.0 with Connection: keep-alive is on");
	ok(ok_head("GET / HTTP/1.0\r\nConnection: Keep-Alive, close\r\n\r\n") && !rq.m.keep_alive,
	   "keep-alive: close wins over keep-alive");
	ok(ok_head("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n") &&
	   !rq.m.keep_alive, "keep-alive: close in a second Connection field counts");
	ok(ok_head("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n") &&
	   rq.m.upgrade && rq.m.keep_alive, "keep-alive: Connection: upgrade sets upgrade");
	ok(ok_head(good_get) && !rq.m.upgrade, "keep-alive: no upgrade by default");

	ok(ok_head("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n") &&
	   rq.m.expect_continue, "expect: 100-continue is flagged");
	ok(ok_head("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n\r\n") && rq.m.expect_continue,
	   "expect: 100-continue is case-insensitive");
	ok(ok_head("POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n") && !rq.m.expect_continue,
	   "expect: ignored in HTTP/1.0 (RFC 9110 10.1.1)");
	ok(ok_head("POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n") && !rq.m.expect_continue,
	   "expect: other expectations are not 100-continue");
	ok(ok_head(good_get) && !rq.m.expect_continue, "expect: off by default");
}

/* ---------------------------------------------------------------- limits */

static char *repeat(const char *pre, char c, size_t n, const char *post)
{
	size_t a = strlen(pre), b = strlen(post);
	char *s = malloc(a + n + b + 1);
	memcpy(s, pre, a);
	memset(s + a, c, n);
	memcpy(s + a + n, post, b + 1);
	return s;
}

static void test_limits(void)
{
	struct http_limits lim = {100, 4096, 1000};
	char *s;

	s = repeat("GET /", 'a', 99, " HTTP/1.1\r\nHost: a\r\n\r\n");
	ok(req_lim(s, &lim) == (int)strlen(s) && rq.target_len == 100,
	   "limits: a target of exactly max_uri is fine");
	free(s);
	s = repeat("GET /", 'a', 100, " HTTP/1.1\r\nHost: a\r\n\r\n");
	is_int(req_lim(s, &lim), HTTP_PARSE_EURI, "limits: a target one over max_uri is EURI");
	free(s);
	s = repeat("GET /", 'a', 100, "");
	is_int(req_lim(s, &lim), HTTP_PARSE_EURI, "limits: an incomplete target over max_uri is EURI");
	free(s);
	s = repeat("GET /", '%', 1, "");
	free(s);
	s = repeat("GET /", 'a', 98, "%4");
	is_int(req_lim(s, &lim), HTTP_PARSE_EURI,
	       "limits: a percent-escape crossing max_uri is EURI");
	free(s);
	s = repeat("GET /", 'a', 9000, "");
	is_int(req(s), HTTP_PARSE_EURI,
	       "limits: with default limits a 9000-byte target is 414, not 431");
	free(s);
	is_int(http_parse_status(HTTP_PARSE_EURI), 414, "limits: EURI maps to 414");

	s = repeat("GET / HTTP/1.1\r\nHost: a\r\nX: ", 'b', 4096 - 32, "\r\n\r\n");
	ok(strlen(s) == 4096 && req_lim(s, &lim) == 4096, "limits: a head of exactly max_header_bytes is fine");
	free(s);
	s = repeat("GET / HTTP/1.1\r\nHost: a\r\nX: ", 'b', 4096 - 31, "\r\n\r\n");
	is_int(req_lim(s, &lim), HTTP_PARSE_EHEADERS, "limits: a head one byte over is EHEADERS");
	free(s);
	s = repeat("GET / HTTP/1.1\r\nHost: a\r\nX: ", 'b', 5000, "");
	is_int(req_lim(s, &lim), HTTP_PARSE_EHEADERS,
	       "limits: an incomplete head already over max_header_bytes is EHEADERS");
	free(s);
	s = repeat("GET / HTTP/1.1\r\nHost: a\r\nX: ", 'b', 9000, "\r\n\r\n");
	is_int(req(s), HTTP_PARSE_EHEADERS, "limits: a 9 KiB head is EHEADERS with the defaults");
	free(s);
	is_int(http_parse_status(HTTP_PARSE_EHEADERS), 431, "limits: EHEADERS maps to 431");

	char big[8192];
	size_t n = (size_t)snprintf(big, sizeof big, "GET / HTTP/1.1\r\nHost: a\r\n");
	for (int i = 1; i < HTTP_MAX_HEADERS; i++)
		n += (size_t)snprintf(big + n, sizeof big - n, "X%d: v\r\n", i);
	snprintf(big + n, sizeof big - n, "\r\n");
	ok(ok_head(big) && rq.m.n_headers == HTTP_MAX_HEADERS, "limits: HTTP_MAX_HEADERS fields are fine");
	n += (size_t)snprintf(big + n, sizeof big - n, "X0: v\r\n\r\n");
	is_int(req(big), HTTP_PARSE_EHEADERS, "limits: one field more than HTTP_MAX_HEADERS is EHEADERS");

	is_int(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1048577\r\n\r\n"), HTTP_PARSE_EBODY,
	       "limits: a Content-Length over max_body is EBODY at the head");
	ok(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1048576\r\n\r\n") > 0,
	   "limits: a Content-Length of exactly max_body is fine");
	is_int(http_parse_status(HTTP_PARSE_EBODY), 413, "limits: EBODY maps to 413");

	size_t need = http_parse_buffer_size(&lim);
	char *z = repeat("GET /", 'a', need, "");
	struct http_request r2;
	bool decided = true;
	for (size_t k = need; k <= need + 5; k++)
		if (http_parse_request(z, k, &lim, &r2) == 0)
			decided = false;
	free(z);
	z = repeat("GET / HTTP/1.1\r\nX: ", 'a', need, "");
	for (size_t k = need; k <= need + 5; k++)
		if (http_parse_request(z, k, &lim, &r2) == 0)
			decided = false;
	free(z);
	ok(decided && http_parse_buffer_size(NULL) > 8192,
	   "limits: with http_parse_buffer_size bytes the parser always decides");
}

/* ---------------------------------------------------------------- responses */

static void test_responses(void)
{
	ok(res("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", HTTP_GET) == 38 &&
	   rs.status == 200 && span_is(rs.reason, rs.reason_len, "OK") &&
	   rs.m.body_kind == HTTP_BODY_LENGTH && rs.m.content_length == 5 && rs.m.keep_alive,
	   "responses: a 200 with Content-Length");
	ok(res("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", HTTP_GET) > 0 &&
	   rs.status == 404 && span_is(rs.reason, rs.reason_len, "Not Found") &&
	   rs.m.body_kind == HTTP_BODY_NONE, "responses: a reason with spaces");
	ok(res("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n", HTTP_GET) > 0 && rs.reason_len == 0,
	   "responses: the reason may be empty");
	is_int(res("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", HTTP_GET), HTTP_PARSE_EINVAL,
	       "responses: the space before the reason is required");
	is_int(res("HTTP/1.1 20 OK\r\n\r\n", HTTP_GET), HTTP_PARSE_EINVAL,
	       "responses: a two-digit status is rejected");
	is_int(res("HTTP/1.1 2000 OK\r\n\r\n", HTTP_GET), HTTP_PARSE_EINVAL,
	       "responses: a four-digit status is rejected");
	is_int(res("HTTP/1.1 099 OK\r\n\r\n", HTTP_GET), HTTP_PARSE_EINVAL,
	       "responses: a status below 100 is rejected");
	is_int(res("HTTP/1.1 2x0 OK\r\n\r\n", HTTP_GET), HTTP_PARSE_EINVAL,
	       "responses: a non-digit status is rejected");
	is_int(res("http/1.1 200 OK\r\n\r\n", HTTP_GET), HTTP_PARSE_EINVAL,
	       "responses: a lowercase version is rejected");
	is_int(res("HTTP/2.0 200 OK\r\n\r\n", HTTP_GET), HTTP_PARSE_EVERSION,
	       "responses: HTTP/2.0 is EVERSION");
	is_int(res("HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", HTTP_GET), HTTP_PARSE_EINVAL,
	       "responses: a bare LF is rejected");
	is_int(res("HTTP/1.1 200 O\x01K\r\n\r\n", HTTP_GET), HTTP_PARSE_EINVAL,
	       "responses: a control character in the reason is rejected");
	ok(res("HTTP/1.1 200 OK\r\n\r\n", HTTP_GET) > 0 && rs.m.body_kind == HTTP_BODY_EOF &&
	   !rs.m.keep_alive, "responses: no Content-Length means read until close");
	ok(res("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi", HTTP_GET) > 0 && !rs.m.keep_alive &&
	   rs.m.version_minor == 0, "responses: HTTP/1.0 defaults to close");
	ok(res("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi", HTTP_GET) > 0 &&
	   rs.m.keep_alive, "responses: HTTP/1.0 with keep-alive stays open");
	ok(res("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi", HTTP_GET) > 0 &&
	   !rs.m.keep_alive, "responses: Connection: close");
	ok(res("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", HTTP_HEAD) > 0 &&
	   rs.m.body_kind == HTTP_BODY_NONE && rs.m.content_length == 100 && rs.m.keep_alive,
	   "responses: a HEAD response has no body whatever its Content-Length says");
	ok(res("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP_HEAD) > 0 &&
	   rs.m.body_kind == HTTP_BODY_NONE, "responses: a chunked HEAD response has no body");
	ok(res("HTTP/1.1 204 No Content\r\n\r\n", HTTP_GET) > 0 && rs.m.body_kind == HTTP_BODY_NONE &&
	   rs.m.keep_alive, "responses: 204 has no body");
	ok(res("HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n", HTTP_GET) > 0 &&
	   rs.m.body_kind == HTTP_BODY_NONE, "responses: 304 has no body");
	ok(res("HTTP/1.1 100 Continue\r\n\r\n", HTTP_POST) > 0 && rs.status == 100 &&
	   rs.m.body_kind == HTTP_BODY_NONE, "responses: 100 Continue is a complete head without body");
	ok(res("HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n", HTTP_GET) > 0 &&
	   rs.m.body_kind == HTTP_BODY_NONE && rs.m.upgrade, "responses: 101 has no body and flags upgrade");
	ok(res("HTTP/1.1 200 Connection established\r\n\r\n", HTTP_CONNECT) > 0 &&
	   rs.m.body_kind == HTTP_BODY_NONE, "responses: a 2xx to CONNECT has no body");
	ok(res("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", HTTP_GET) > 0 &&
	   rs.m.body_kind == HTTP_BODY_CHUNKED, "responses: chunked");
	is_int(res("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", HTTP_GET),
	       HTTP_PARSE_ELENGTH, "responses: CL with TE is ELENGTH");
	is_int(res("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", HTTP_GET),
	       HTTP_PARSE_ELENGTH, "responses: differing Content-Length is ELENGTH");
	is_int(res("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", HTTP_GET),
	       HTTP_PARSE_ENOTIMPL, "responses: a coding other than chunked is ENOTIMPL");
	is_int(res("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP_GET),
	       HTTP_PARSE_EINVAL, "responses: Transfer-Encoding in HTTP/1.0 is rejected");
	is_int(res("HTTP/1.1 200 OK\r\nX : y\r\n\r\n", HTTP_GET), HTTP_PARSE_EINVAL,
	       "responses: a space before a colon is rejected");
	is_int(res("HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n", HTTP_GET), HTTP_PARSE_EBODY,
	       "responses: a Content-Length over max_body is EBODY");
	ok(res("HTTP/1.1 200 OK\r\n\r\n", HTTP_GET) > 0 && res("HTTP/1.1 200 OK\r\n", HTTP_GET) == 0,
	   "responses: a head without its empty line is incomplete");
}

static void test_names(void)
{
	is_str(http_status_reason(200), "OK", "names: 200 is OK");
	is_str(http_status_reason(404), "Not Found", "names: 404 is Not Found");
	is_str(http_status_reason(431), "Request Header Fields Too Large", "names: 431");
	is_str(http_status_reason(507), "Insufficient Storage", "names: 507 is Insufficient Storage");
	is_str(http_status_reason(423), "Locked", "names: 423 is Locked (WebDAV)");
	is_str(http_status_reason(451), "Unavailable For Legal Reasons", "names: 451");
	is_str(http_status_reason(511), "Network Authentication Required", "names: 511");
	is_str(http_status_reason(599), "", "names: an unregistered code has no phrase, not 'Unknown'");
	/* every code 100..599 that has a phrase has one of the registry's:
	 * nothing answers with a made-up word */
	int named = 0;
	bool none_unknown = true;
	for (int st = 100; st < 600; st++) {
		const char *r = http_status_reason(st);
		named += r[0] != '\0';
		none_unknown = none_unknown && strcmp(r, "Unknown") != 0;
	}
	is_int(named, 61, "names: the 61 codes of IANA's registry (less the unused 306, 418) have a phrase");
	ok(none_unknown, "names: no status reads 'Unknown'");
	is_str(http_method_name(HTTP_OTHER), "", "names: HTTP_OTHER has an empty name");
	is_str(http_method_name(HTTP_CONNECT), "CONNECT", "names: CONNECT");
	is_str(http_parse_strerror(HTTP_PARSE_EHOST), "missing, duplicate or invalid host",
	       "names: strerror names the problem");
	is_int(http_parse_status(HTTP_PARSE_EINVAL), 400, "names: EINVAL maps to 400");
	is_int(http_parse_status(HTTP_PARSE_EMETHOD), 400, "names: EMETHOD maps to 400");
}

/* ---------------------------------------------------------------- pipelining */

static void test_pipelining(void)
{
	const char *burst =
		"GET /a HTTP/1.1\r\nHost: a\r\n\r\n"
		"POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nxyz"
		"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
		"GET /d HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
	size_t len = strlen(burst), off = 0;
	char *p = malloc(len);
	memcpy(p, burst, len);
	const char *paths[] = {"/a", "/b", "/c", "/d"};
	const char *bodies[] = {"", "xyz", "hi", ""};
	bool good = true;
	struct http_request r;
	for (int i = 0; i < 4 && good; i++) {
		int h = http_parse_request(p + off, len - off, NULL, &r);
		if (h <= 0 || !span_is(r.path, r.path_len, paths[i])) {
			good = false;
			break;
		}
		off += (size_t)h;
		struct http_body b;
		http_body_init(&b, &r.m, 1000);
		size_t c, d;
		if (http_body_feed(&b, p + off, len - off, &c, &d) != 1 || d != strlen(bodies[i]) ||
		    memcmp(p + off, bodies[i], d) != 0)
			good = false;
		off += c;
		if (i == 3 && r.m.keep_alive)
			good = false;
	}
	ok(good && off == len, "pipelining: a burst of four mixed requests parses in order");
	free(p);
}

int main(void)
{
	test_request_line();
	test_targets();
	test_line_endings();
	test_field_syntax();
	test_host();
	test_content_length();
	test_transfer_encoding();
	test_chunked();
	test_keep_alive();
	test_limits();
	test_responses();
	test_names();
	test_pipelining();
	return tap_done();
}
