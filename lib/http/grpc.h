/*
 * http/grpc.h -- gRPC over lib/http/server's HTTP/2: the message framing,
 * the status trailers, and grpc.health.v1.Health, which every dsys server
 * answers.
 *
 * A gRPC call is an HTTP/2 request (POST /package.Service/Method,
 * content-type application/grpc) whose body is a series of messages, each
 * a 5-byte prefix (a compressed flag, a 4-byte big-endian length) and that
 * many bytes of protobuf.  The answer is HTTP status 200, content-type
 * application/grpc, messages in the body, and grpc-status (and
 * grpc-message, percent-encoded) in trailers.  A handler answers a call
 * with grpc_answer(); the server core (server_h2.c) adds what the
 * protocol document asks beyond that:
 * - grpc-timeout (e.g. "250m", "2S") sets the call's deadline: when it
 *   passes before the handler answers, the client gets DEADLINE_EXCEEDED
 *   and the handler's late answer is dropped (http_exchange_gone says so);
 * - an answer to a gRPC request that is not a gRPC answer (an HTTP 404 from
 *   a router, a 400, a 503) becomes status 200 with the grpc-status that
 *   HTTP status maps to (404 UNIMPLEMENTED, 400 INVALID_ARGUMENT, 503
 *   UNAVAILABLE, 408/504 DEADLINE_EXCEEDED, 413 RESOURCE_EXHAUSTED, 429
 *   UNAVAILABLE ... else UNKNOWN), its body as grpc-message;
 * - /grpc.health.v1.Health/Check is answered by the core itself, before
 *   the program's handler: SERVING, or NOT_SERVING while the server
 *   drains; a service name other than "" is NOT_FOUND.  Watch is too: it
 *   streams SERVING at once (SERVICE_UNKNOWN for another name), then
 *   NOT_SERVING when the drain starts, and ends with OK.
 *
 * Messages compressed by the client (flag 1) are refused with
 * UNIMPLEMENTED: we announce no grpc-accept-encoding, so a client may not
 * send them.
 */
#ifndef DSYS_HTTP_GRPC_H
#define DSYS_HTTP_GRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/server.h"

/*
 * Bidirectional calls.  The server core hands a call to its handler when
 * the request stream ends; a client of a bidirectional method (etcd's
 * Watch) sends its first message and keeps the stream open.  A path
 * registered here, before the server starts, is dispatched as soon as its
 * first message is complete instead: ex->body holds that message, later
 * ones go to grpc_on_message's callback, and the handler answers with
 * grpc_stream_begin/send/end while the client's side stays open.
 * At most GRPC_BIDI_MAX paths; the string must outlive the server.
 */
#define GRPC_BIDI_MAX 8

/*
 * The later messages of a bidirectional call: fn(ex, msg, len, arg) for
 * each whole one after the first (which is ex->body), in order, on the
 * loop thread, until the handler ends its answer; fn(ex, NULL, 0, arg)
 * once when the client's side ends (or sends what cannot be a message),
 * after which no more come -- from inside grpc_on_message when it had
 * ended already, its messages sent with END_STREAM.  A client that resets the stream or drops
 * the connection gets no call: http_exchange_gone says so, and the
 * handler must still end its answer.  HTTP/2 only (bidirectional calls
 * are); a no-op for an exchange whose stream is gone.
 */
typedef void (*grpc_message_fn)(struct http_exchange *ex, const uint8_t *msg, size_t len, void *arg);
void grpc_on_message(struct http_exchange *ex, grpc_message_fn fn, void *arg);
void grpc_bidi_path(const char *path);
bool grpc_bidi_is(const char *path, size_t len);

/* The status codes of the gRPC protocol (their numbers are the wire's). */
enum grpc_status {
	GRPC_OK = 0,
	GRPC_CANCELLED = 1,
	GRPC_UNKNOWN = 2,
	GRPC_INVALID_ARGUMENT = 3,
	GRPC_DEADLINE_EXCEEDED = 4,
	GRPC_NOT_FOUND = 5,
	GRPC_ALREADY_EXISTS = 6,
	GRPC_PERMISSION_DENIED = 7,
	GRPC_RESOURCE_EXHAUSTED = 8,
	GRPC_FAILED_PRECONDITION = 9,
	GRPC_ABORTED = 10,
	GRPC_OUT_OF_RANGE = 11,
	GRPC_UNIMPLEMENTED = 12,
	GRPC_INTERNAL = 13,
	GRPC_UNAVAILABLE = 14,
	GRPC_DATA_LOSS = 15,
	GRPC_UNAUTHENTICATED = 16,
};

#define GRPC_PREFIX 5   /* bytes before each message */

/* A status's name as grpc-go prints it ("OK", "DeadlineExceeded" ...);
 * "Unknown" for a number outside the protocol's. */
const char *grpc_status_name(int status);

/* Is ex a gRPC call (content-type application/grpc or application/grpc+...)? */
bool grpc_is_call(const struct http_exchange *ex);

/*
 * The one message of a unary call's body: 0 and *msg, *len (pointing into
 * ex->body); or a gRPC status for a body that is not exactly one framed
 * message (INVALID_ARGUMENT: short, trailing bytes, a length past the
 * end; UNIMPLEMENTED: compressed).
 */
int grpc_unary_message(const struct http_exchange *ex, const uint8_t **msg, size_t *len);

/*
 * Walk the messages of a body (client streaming): *off starts at 0.
 * Returns 1 and the next message, 0 at the clean end, or a negative gRPC
 * status (-GRPC_INVALID_ARGUMENT ...) for bad framing.
 */
int grpc_next_message(const struct http_exchange *ex, size_t *off, const uint8_t **msg, size_t *len);

/* Append one framed message to b. */
void grpc_frame(struct buf *b, const void *msg, size_t len);

/*
 * Answer a call: status 200, content-type application/grpc, body (already
 * framed messages, e.g. built with grpc_frame; NULL for none), trailers
 * grpc-status and, when message is not NULL, grpc-message.
 */
void grpc_answer(struct http_exchange *ex, const void *framed, size_t len, int status,
                 const char *message);

/* One unframed message, framed here (through http_scratch), with OK. */
void grpc_answer_message(struct http_exchange *ex, const void *msg, size_t len);

/*
 * A server-streaming answer: grpc_stream_begin, one grpc_stream_send per
 * message (0, or -EPIPE when the client is gone), grpc_stream_end with the
 * call's status (message NULL for none).
 */
void grpc_stream_begin(struct http_exchange *ex);
int grpc_stream_send(struct http_exchange *ex, const void *msg, size_t len);
void grpc_stream_end(struct http_exchange *ex, int status, const char *message);

/* The gRPC status an HTTP status maps to (the table in the comment above). */
int grpc_status_from_http(int http_status);

/*
 * A grpc-timeout value ("1S", "250m", "100u"; at most 8 digits and a
 * unit H M S m u n) in ms, rounded up: 0 and *ms, or -1 when malformed.
 */
int grpc_parse_timeout(const char *v, size_t len, uint64_t *ms);

/* grpc.health.v1.Health/Check: answers ex and returns true when it is
 * that call; false (ex untouched) otherwise.  server_h2.c calls this
 * first; Watch, which streams, is server_h2.c's own. */
bool grpc_health_serve(struct http_exchange *ex);

/* HealthCheckResponse.ServingStatus, the wire's numbers. */
enum { GRPC_HEALTH_SERVING = 1, GRPC_HEALTH_NOT_SERVING = 2, GRPC_HEALTH_SERVICE_UNKNOWN = 3 };
#define GRPC_HEALTH_FRAME_MAX 16

/* The HealthCheckRequest of a Health call: 1 when it names the server as
 * a whole (service ""), 0 for another service, or -status when malformed. */
int grpc_health_service(const struct http_exchange *ex);

/* A framed HealthCheckResponse with that status into out (at least
 * GRPC_HEALTH_FRAME_MAX bytes); its length. */
size_t grpc_health_frame(int serving_status, uint8_t *out);

#endif
