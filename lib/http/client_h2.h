/*
 * http/client_h2.h -- the client half of HTTP/2 (h2c with prior
 * knowledge) and of unary gRPC over it, on libnghttp2's session, with the
 * I/O left to the caller.
 *
 * As lib/http/client does for HTTP/1.1, this frames and nothing more: the
 * caller owns the socket and its event loop (dsys-bench's libuv threads),
 * feeds what it reads and sends what the session has to say.  Unlike
 * HTTP/1.1, answers come back in any order, so each request carries a tag
 * (the caller's slot number) that comes back with its result.
 *
 *   struct http_h2_request rq;               built once per target
 *   http_h2_request_build(&rq, "GET", &url, headers, n, body, len, false);
 *   cl = http_h2_client_new(max_streams, on_result, ctx);
 *   http_h2_client_submit(cl, &rq, tag);     a stream opens (when allowed)
 *   http_h2_client_feed(cl, data, len);      results come to on_result
 *   http_h2_client_output(cl, &out);         the bytes to send now
 *
 * A caller that wants the answers' bytes (the etcd client; a load
 * generator does not) sets a data callback: each DATA chunk comes to it
 * with its stream's tag, before the stream's result.  A stream the caller
 * gives up on (http_h2_client_cancel) is reset and never reported.
 *
 * A stream ends exactly once, through on_result: answered whole (reset
 * false), or reset by the peer (RST_STREAM), refused by a GOAWAY, or cut
 * by the connection's end (http_h2_client_free reports none of those:
 * the caller counts what it had in flight).  A gRPC answer's grpc-status
 * is taken from its trailers, or from its only HEADERS (trailers-only).
 *
 * Thread-safety: none; a client belongs to one connection.
 */
#ifndef DSYS_HTTP_CLIENT_H2_H
#define DSYS_HTTP_CLIENT_H2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "http/client.h"

#define HTTP_H2_MAX_FIELDS 64

/* One request, built once and submitted many times: its header fields
 * (lower-case names, as HTTP/2 requires) and body point into `store`. */
struct http_h2_request {
	struct buf store;
	size_t n_fields;
	struct {
		size_t name, name_len, value, value_len;  /* offsets into store */
	} field[HTTP_H2_MAX_FIELDS];
	size_t body, body_len;                        /* offset into store */
	bool grpc;
};

/*
 * Build a request: :method, :scheme http, :authority, :path from u, the
 * user's "Name: value" headers (names lower-cased; a Host header becomes
 * :authority; connection-specific fields are refused), and the body.
 * grpc: the body is one gRPC message, sent with its 5-byte prefix, with
 * content-type application/grpc and te: trailers (the method must be
 * POST).  Returns 0, or -EINVAL for a bad header, -E2BIG for too many.
 */
int http_h2_request_build(struct http_h2_request *rq, const char *method,
                          const struct http_url *u, const char *const *headers,
                          size_t n_headers, const char *body, size_t body_len, bool grpc);
void http_h2_request_free(struct http_h2_request *rq);

/* How a stream ended. */
struct http_h2_result {
	int status;           /* :status, 0 when none came */
	int grpc_status;      /* grpc-status, -1 when none came */
	bool reset;           /* RST_STREAM, refused by GOAWAY, or never sent */
	uint32_t error_code;  /* the HTTP/2 error code when reset */
	uint64_t body_bytes;  /* DATA payload received */
	const char *grpc_message;  /* grpc-message, percent-decoded; NULL when none
	                              (valid during the result callback only) */
};

typedef void (*http_h2_result_fn)(void *ctx, uint32_t tag, const struct http_h2_result *r);
typedef void (*http_h2_data_fn)(void *ctx, uint32_t tag, const uint8_t *data, size_t len);

struct http_h2_client;

/* A client session, its SETTINGS (no server push; max_streams concurrent
 * streams; large windows, since a load generator reads everything at
 * once) already queued as output.  NULL when out of memory. */
struct http_h2_client *http_h2_client_new(unsigned max_streams, http_h2_result_fn fn, void *ctx);
void http_h2_client_free(struct http_h2_client *cl);

/* Open a stream for rq, tagged.  Returns 0, -EBUSY when max_streams are
 * in use, -ESHUTDOWN after a GOAWAY, or -EPROTO on a session error. */
int http_h2_client_submit(struct http_h2_client *cl, const struct http_h2_request *rq,
                          uint32_t tag);

/* Hand each DATA chunk to fn (same ctx as the results); NULL: count only. */
void http_h2_client_on_data(struct http_h2_client *cl, http_h2_data_fn fn);

/* Give up on the stream tagged tag: RST_STREAM(CANCEL) is queued, its
 * request is no longer read (it may be freed), and it is never reported.
 * Returns 0, or -ENOENT when no stream has that tag. */
int http_h2_client_cancel(struct http_h2_client *cl, uint32_t tag);

/* Take len received bytes.  Returns 0, or -EPROTO when the connection is
 * unusable.  A protocol error of the peer's may also return 0 with our
 * GOAWAY queued: after the output that sends it, http_h2_client_done()
 * is true and the caller closes. */
int http_h2_client_feed(struct http_h2_client *cl, const uint8_t *data, size_t len);

/* Append what the session has to send to out.  Returns the number of
 * bytes appended, or -EPROTO. */
long http_h2_client_output(struct http_h2_client *cl, struct buf *out);

/* The peer sent GOAWAY: no new stream may open; close once the streams
 * in flight have ended. */
bool http_h2_client_goaway(const struct http_h2_client *cl);

/* The session wants neither to read nor to write: the connection is done. */
bool http_h2_client_done(const struct http_h2_client *cl);

#endif
