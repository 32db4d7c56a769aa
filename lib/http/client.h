/*
 * http/client.h -- the client half of HTTP/1.1 over a byte stream: URLs,
 * requests built once, and responses framed in place.
 *
 * This is the part of an HTTP client that does not care how bytes move:
 * dsys-bench drives it from libuv connections it manages itself (a load
 * generator wants its own connection life cycle), and the trace exporter
 * or a health checker can reuse it the same way.  It stands on
 * lib/http/parse: the same strict grammar the servers use for requests
 * frames the responses here.
 *
 *   struct http_url u;                       parse "http://host:port/path"
 *   http_client_build_request(&req, "GET", &u, headers, n, body, len);
 *                                            the bytes to send, built once
 *   struct http_client_reader r;
 *   http_client_reader_init(&r, HTTP_GET, &lim);
 *   n = http_client_reader_feed(&r, buf, len, &used, &res);
 *
 * The reader keeps only the framing state of the response in progress, so
 * a connection owns one reader and one receive buffer, and nothing is
 * allocated per response.  Body bytes are consumed (decoded in place for
 * chunked) and dropped: the reader reports a response's status, its
 * keep-alive verdict and its body size, not its body.
 *
 * Thread-safety: no global state; each reader belongs to one connection.
 */
#ifndef DSYS_HTTP_CLIENT_H
#define DSYS_HTTP_CLIENT_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "http/parse.h"

#define HTTP_URL_HOST_MAX 256
#define HTTP_URL_PATH_MAX 4096

/* Errors of http_url_parse (negative errno values). */
#define HTTP_URL_EINVAL   (-EINVAL)          /* not a URL we can use */
#define HTTP_URL_ESCHEME  (-EPROTONOSUPPORT) /* https:// or another scheme */

struct http_url {
	char host[HTTP_URL_HOST_MAX];   /* without brackets for IPv6 */
	char path[HTTP_URL_PATH_MAX];   /* origin-form: "/" when the URL has none; query kept */
	char authority[HTTP_URL_HOST_MAX + 8]; /* Host field value: "host" or "host:port" */
	uint16_t port;                  /* 80 when absent */
};

/*
 * Parse an http:// URL: "http://HOST[:PORT][/PATH[?QUERY]]", HOST a name,
 * an IPv4 address or [IPv6].  A bare "HOST:PORT[/PATH]" is taken as http://
 * too (wrk and hey users type it).  Returns 0, HTTP_URL_ESCHEME for https://
 * or any other scheme (this client speaks plain HTTP only), HTTP_URL_EINVAL
 * otherwise (empty host, bad port, fragment, userinfo, overlong parts).
 */
int http_url_parse(const char *s, struct http_url *u);

/* The request target's method name must be a token; returns true if so. */
bool http_client_method_ok(const char *method);

/*
 * Append one complete request to out:
 *   METHOD PATH HTTP/1.1\r\nHost: AUTHORITY\r\n<headers>\r\n[Content-Length]\r\n\r\n<body>
 * headers are "Name: value" strings as a user types them; a user Host
 * replaces ours, a user Content-Length is rejected (the body decides it).
 * Content-Length is sent when there is a body or the method is POST, PUT
 * or PATCH.  Returns 0, or -EINVAL for a header that is not "Name: value"
 * with a token name and a value free of CR, LF and NUL (out unchanged).
 */
int http_client_build_request(struct buf *out, const char *method, const struct http_url *u,
                              const char *const *headers, size_t n_headers,
                              const char *body, size_t body_len);

/* What the reader tells about one complete response. */
struct http_client_response {
	int status;           /* 100..999 (final responses only: 1xx are skipped) */
	bool keep_alive;      /* false: the server closes after it; reconnect */
	uint64_t body_bytes;  /* decoded payload bytes */
	size_t head_bytes;    /* bytes of the head */
};

struct http_client_reader {
	struct http_limits lim;       /* limits for heads; bodies are unlimited */
	enum http_method method;      /* of the requests on this connection */
	bool in_body;                 /* a head was parsed; its body is in progress */
	struct http_body body;
	struct http_client_response cur;
};

void http_client_reader_init(struct http_client_reader *r, enum http_method method,
                             const struct http_limits *lim);

/* Forget any response in progress (the connection was replaced). */
void http_client_reader_reset(struct http_client_reader *r);

/*
 * Feed buf[0..len), the bytes received and not yet consumed.  Returns 1
 * when a response completed (*res filled), 0 when more bytes are needed,
 * or a negative http_parse error (the connection is unusable).  *used is
 * the number of bytes consumed either way: the caller drops them and
 * keeps the rest (a partial head is never consumed, so it stays at the
 * front of the caller's buffer until it is complete).  Call again after a
 * 1 while bytes remain: several pipelined responses may sit in one read.
 * buf is written to (chunked bodies are decoded in place).
 */
int http_client_reader_feed(struct http_client_reader *r, char *buf, size_t len,
                            size_t *used, struct http_client_response *res);

/*
 * The peer closed the connection.  Returns 1 when that completes a
 * response whose body runs to the close (*res filled), 0 when no response
 * was in progress (a clean close between responses), or -EPIPE when the
 * close cut a response short.  pending is the count of buffered bytes not
 * yet consumed (a partial head makes a close a cut-short response too).
 */
int http_client_reader_eof(struct http_client_reader *r, size_t pending,
                           struct http_client_response *res);

#endif
