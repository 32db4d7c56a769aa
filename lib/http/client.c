/*
 * http/client.c -- URLs, requests built once, responses framed in place.
 *
 * The reader is a small state machine over lib/http/parse with two states:
 * waiting for a head, or inside a body.  A head is parsed from the front
 * of the caller's buffer each time more bytes arrive (http_parse_response
 * is stateless and heads are bounded by lim.max_header_bytes, so the
 * re-scan of a partial head is cheap and rare: responses almost always
 * arrive whole).  Once a head is complete it is consumed at once, and the
 * body is framed by struct http_body, which keeps its own state across
 * reads; body bytes are consumed as they arrive, so the caller's buffer
 * never holds more than one partial head plus one read.
 *
 * Invariants: *used <= len; a partial head is never consumed (so the
 * bytes a later parse needs are still at the front); in_body is true
 * exactly between a complete head and the end of its body.  1xx interim
 * responses (except 101, which this client never asks for) are consumed
 * and skipped, as RFC 9110 section 15.2 asks of a client.
 */
#include <errno.h>
#include <string.h>

#include "http/client.h"
#include "base/invariant.h"

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* tchar of RFC 9110 section 5.6.2 */
static bool is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit((char)c))
		return true;
	return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

bool http_client_method_ok(const char *method)
{
	if (!method || !*method || strlen(method) > 32)
		return false;
	for (const unsigned char *p = (const unsigned char *)method; *p; p++)
		if (!is_tchar(*p))
			return false;
	return true;
}

int http_url_parse(const char *s, struct http_url *u)
{
	memset(u, 0, sizeof(*u));
	const char *p = s;
	const char *colon = strstr(s, "://");
	if (colon) {
		size_t n = (size_t)(colon - s);
		if (n == 4 && strncasecmp(s, "http", 4) == 0)
			p = colon + 3;
		else
			return HTTP_URL_ESCHEME;
	}
	/* authority runs to the first '/', '?' or '#' */
	size_t alen = strcspn(p, "/?#");
	const char *rest = p + alen;
	if (alen == 0 || alen >= HTTP_URL_HOST_MAX || memchr(p, '@', alen))
		return HTTP_URL_EINVAL;
	const char *host = p, *port = NULL;
	size_t hlen;
	if (*p == '[') {
		const char *end = memchr(p, ']', alen);
		if (!end)
			return HTTP_URL_EINVAL;
		host = p + 1;
		hlen = (size_t)(end - host);
		if (end + 1 < p + alen) {
			if (end[1] != ':')
				return HTTP_URL_EINVAL;
			port = end + 2;
		}
	} else {
		const char *c = memchr(p, ':', alen);
		hlen = c ? (size_t)(c - p) : alen;
		if (c)
			port = c + 1;
	}
	if (hlen == 0)
		return HTTP_URL_EINVAL;
	for (size_t i = 0; i < hlen; i++) {
		unsigned char c = (unsigned char)host[i];
		if (c <= ' ' || c >= 0x7f || c == '%' || (c == ':' && *p != '['))
			return HTTP_URL_EINVAL;
	}
	memcpy(u->host, host, hlen);
	u->port = 80;
	if (port) {
		size_t plen = (size_t)(p + alen - port);
		if (plen == 0 || plen > 5)
			return HTTP_URL_EINVAL;
		unsigned v = 0;
		for (size_t i = 0; i < plen; i++) {
			if (!is_digit(port[i]))
				return HTTP_URL_EINVAL;
			v = v * 10 + (unsigned)(port[i] - '0');
		}
		if (v == 0 || v > 65535)
			return HTTP_URL_EINVAL;
		u->port = (uint16_t)v;
	}
	memcpy(u->authority, p, alen);  /* as typed: brackets and port kept */
	if (*rest == '#')
		return HTTP_URL_EINVAL;
	size_t plen = strcspn(rest, "#");
	if (rest[plen] == '#')
		return HTTP_URL_EINVAL;  /* fragments are never sent; refuse rather than drop */
	if (plen + 2 >= HTTP_URL_PATH_MAX)
		return HTTP_URL_EINVAL;
	size_t o = 0;
	if (*rest != '/')
		u->path[o++] = '/';
	for (size_t i = 0; i < plen; i++) {
		unsigned char c = (unsigned char)rest[i];
		if (c <= ' ' || c >= 0x7f)
			return HTTP_URL_EINVAL;
		u->path[o++] = (char)c;
	}
	u->path[o] = '\0';
	return 0;
}

/* "Name: value" with a token name; *name_len and the value's span out. */
static int header_split(const char *h, size_t *name_len, const char **value, size_t *value_len)
{
	const char *c = strchr(h, ':');
	if (!c || c == h)
		return -EINVAL;
	for (const char *q = h; q < c; q++)
		if (!is_tchar((unsigned char)*q))
			return -EINVAL;
	const char *v = c + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	size_t n = strlen(v);
	while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	for (size_t i = 0; i < n; i++)
		if (v[i] == '\r' || v[i] == '\n' || v[i] == '\0')
			return -EINVAL;
	*name_len = (size_t)(c - h);
	*value = v;
	*value_len = n;
	return 0;
}

static bool name_is(const char *h, size_t n, const char *lower)
{
	return strlen(lower) == n && strncasecmp(h, lower, n) == 0;
}

int http_client_build_request(struct buf *out, const char *method, const struct http_url *u,
                              const char *const *headers, size_t n_headers,
                              const char *body, size_t body_len)
{
	bool user_host = false;
	for (size_t i = 0; i < n_headers; i++) {
		size_t nl, vl;
		const char *v;
		if (header_split(headers[i], &nl, &v, &vl) < 0)
			return -EINVAL;
		if (name_is(headers[i], nl, "content-length") ||
		    name_is(headers[i], nl, "transfer-encoding"))
			return -EINVAL;
		if (name_is(headers[i], nl, "host"))
			user_host = true;
	}
	buf_puts(out, method);
	buf_putc(out, ' ');
	buf_puts(out, u->path);
	buf_puts(out, " HTTP/1.1\r\n");
	if (!user_host) {
		buf_puts(out, "Host: ");
		buf_puts(out, u->authority);
		buf_puts(out, "\r\n");
	}
	for (size_t i = 0; i < n_headers; i++) {
		size_t nl, vl;
		const char *v;
		header_split(headers[i], &nl, &v, &vl);
		buf_append(out, headers[i], nl);
		buf_puts(out, ": ");
		buf_append(out, v, vl);
		buf_puts(out, "\r\n");
	}
	if (body_len > 0 || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
	    strcmp(method, "PATCH") == 0) {
		buf_puts(out, "Content-Length: ");
		buf_put_u64(out, body_len);
		buf_puts(out, "\r\n");
	}
	buf_puts(out, "\r\n");
	if (body_len)
		buf_append(out, body, body_len);
	return 0;
}

void http_client_reader_init(struct http_client_reader *r, enum http_method method,
                             const struct http_limits *lim)
{
	memset(r, 0, sizeof(*r));
	r->lim = *lim;
	r->method = method;
}

void http_client_reader_reset(struct http_client_reader *r)
{
	r->in_body = false;
	memset(&r->cur, 0, sizeof(r->cur));
}

int http_client_reader_feed(struct http_client_reader *r, char *buf, size_t len,
                            size_t *used, struct http_client_response *res)
{
	size_t off = 0;
	*used = 0;
	for (;;) {
		if (!r->in_body) {
			struct http_response hr;
			int n = http_parse_response(buf + off, len - off, &r->lim, r->method, &hr);
			if (n < 0)
				return n;
			if (n == 0) {
				*used = off;
				return 0;
			}
			off += (size_t)n;
			if (hr.status < 200 && hr.status != 101)
				continue;  /* interim response: the final one follows */
			r->cur.status = hr.status;
			r->cur.keep_alive = hr.m.keep_alive;
			r->cur.head_bytes = (size_t)n;
			r->cur.body_bytes = 0;
			http_body_init(&r->body, &hr.m, UINT64_MAX);
			r->in_body = true;
			if (hr.m.body_kind == HTTP_BODY_NONE ||
			    (hr.m.body_kind == HTTP_BODY_LENGTH && hr.m.content_length == 0)) {
				r->in_body = false;
				*res = r->cur;
				*used = off;
				return 1;
			}
		}
		if (off == len) {
			*used = off;
			return 0;
		}
		size_t consumed = 0, data = 0;
		int b = http_body_feed(&r->body, buf + off, len - off, &consumed, &data);
		INVARIANT(consumed <= len - off);
		off += consumed;
		r->cur.body_bytes += data;
		if (b < 0)
			return b;
		if (b == 0) {
			*used = off;
			return 0;
		}
		r->in_body = false;
		*res = r->cur;
		*used = off;
		return 1;
	}
}

int http_client_reader_eof(struct http_client_reader *r, size_t pending,
                           struct http_client_response *res)
{
	if (r->in_body && r->body.kind == HTTP_BODY_EOF && pending == 0) {
		r->in_body = false;
		*res = r->cur;
		return 1;
	}
	if (r->in_body || pending > 0)
		return -EPIPE;
	return 0;
}
