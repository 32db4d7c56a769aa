/*
 * http/server.h -- the HTTP/1.1 server core every dsys server stands on.
 *
 * One libuv loop per thread (--threads N), each with its own listening
 * socket bound with SO_REUSEPORT, so the kernel spreads connections over
 * the loops and a connection lives on one thread for its whole life.  The
 * server parses requests with lib/http/parse, hands each complete request
 * (head and whole body) to one handler, and writes the answers back in
 * request order.
 *
 * Answering now or later.  A handler gets a struct http_exchange and
 * answers it with http_respond*() -- at once, inside the handler, or later
 * from a callback on the SAME loop thread (a Redis reply, a timer, a
 * uv_queue_work after-callback).  Exactly one answer per exchange, always:
 * even when the client has gone away (http_exchange_gone() tells), the
 * handler still answers and the server drops the answer.  Responses on one
 * connection leave in request order even when answered out of order; the
 * answers to a pipelined burst are written with one write.
 *
 *     static void hello(struct http_exchange *ex, void *arg)
 *     {
 *         http_respond(ex, 200, "text/plain", "hi\n", 3);
 *     }
 *
 *     static void incr(struct http_exchange *ex, void *arg)   // answers later
 *     {
 *         struct app *app = ex->thread_data;   // set by the thread init hook
 *         redisAsyncCommand(app->redis, incr_done, ex, "INCRBY %b 1", ...);
 *     }
 *     static void incr_done(redisAsyncContext *c, void *reply, void *priv)
 *     {
 *         struct http_exchange *ex = priv;
 *         if (!reply) { http_respond_error(ex, 503, "redis unreachable"); return; }
 *         struct buf *b = http_scratch(ex);
 *         ... write JSON into b ...
 *         http_respond(ex, 200, "application/json", b->data, b->len);
 *     }
 *
 * Lifetimes.  ex, ex->req (every pointer in it) and ex->body stay valid
 * until the exchange is answered -- also when the answer comes later, and
 * also when the connection died meanwhile (the connection's memory is kept
 * until its last exchange is answered, and only then recycled).  After
 * http_respond*() returns, ex must not be touched again.
 *
 * Threads.  Everything here but http_server_stop() runs on the loop thread
 * that owns the exchange.  The per-thread init hook runs on each loop
 * thread before it accepts, and may attach backends to that loop (a
 * hiredis async context per loop); the fini hook runs on the same thread
 * when the loop has drained (no connections left), and must close what
 * init opened, so the loop can end.
 *
 * Steady state allocates nothing per request: connection structs and
 * exchange slots come from per-thread freelists, read buffers from a
 * per-thread pool (an idle keep-alive connection holds none), the Date
 * header is cached per loop and refreshed once a second, and response
 * heads are put together with memcpy of constant pieces.
 *
 * Bad input is answered, never a crash: 400/414/431/505/501/413 with a
 * JSON body {"error":"..."} and "Connection: close", then a lingering close
 * (shut the write side, read and discard for a bounded time and amount,
 * then close), so the answer is not lost to a reset; 408 when a head or
 * body is not complete in time.  Expect: 100-continue gets "100 Continue"
 * when the declared body is within limits.  HEAD answers carry the head of
 * the GET answer without its body; 204 and 304 carry no body.
 *
 * Drain.  SIGTERM or SIGINT (or http_server_stop()) closes every listener
 * (each thread first accepts what waits in its listener's queue, since
 * closing a SO_REUSEPORT listener resets those), closes idle keep-alive
 * connections (those with a request already waiting in the socket are
 * served first; a connection that has sent nothing yet gets up to a second
 * to send its request), lets requests in flight finish (their answers
 * carry "Connection: close"), and http_server_run() returns 0 when all
 * connections are gone or --drain-timeout has passed (then the rest are
 * closed hard; a second signal does that at once).  With cfg.reuse_port
 * (a restart: a successor shares the listeners, lib/http/handover.h) an
 * idle keep-alive connection is not closed at once but gets up to half the
 * drain timeout for one more request, answered with "Connection: close",
 * since closing it would race a request the client may be sending.
 *
 * HTTP/2.  A connection that opens with the HTTP/2 client preface (h2c
 * with prior knowledge, as gRPC clients and curl --http2-prior-knowledge
 * send it) is served as HTTP/2 on the same port (server_h2.c: our own
 * framing, HPACK through libnghttp2):
 * each stream is an exchange, answered through the same calls; answers
 * may carry trailers (struct http_answer), and gRPC (lib/http/grpc.h)
 * sits on that.  Every server answers grpc.health.v1.Health/Check there.
 *
 * Metrics (when cfg.metrics is set): http_requests_total{route,code},
 * http_request_duration_seconds (histogram, from a complete head to the
 * answer), http_requests_in_flight, http_connections_open,
 * http_connections_total, http_connections_rejected_total{reason},
 * http2_connections_total, http2_streams_total, and
 * grpc_server_handled_total{grpc_service,grpc_method,grpc_code} as each
 * gRPC call ends (Unimplemented calls under "unknown", bounded per thread).
 *
 * Errors: functions return 0 or a negative errno value.  Nothing here
 * prints; startup, drain and connection errors are logged through lib/base/log
 * (never on the hot path).
 */
#ifndef DSYS_HTTP_SERVER_H
#define DSYS_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "http/parse.h"

struct buf;
struct metrics;
struct http_server;
struct http_thread;            /* one loop thread */
struct http_route_stats;       /* per-route metrics, see below */
struct http_tracer;            /* lib/http/trace.h */
struct http_span;

/* Defaults, the values the programs' flags start from. */
#define HTTP_SERVER_MAX_CONNECTIONS 10000
#define HTTP_SERVER_MAX_PIPELINE    64       /* unanswered requests per connection */
#define HTTP_SERVER_HEADER_TIMEOUT_MS 10000
#define HTTP_SERVER_BODY_TIMEOUT_MS   30000
#define HTTP_SERVER_IDLE_TIMEOUT_MS   60000
#define HTTP_SERVER_DRAIN_TIMEOUT_MS  10000
#define HTTP_SERVER_LINGER_MS         2000   /* lingering close: at most this long */
#define HTTP_SERVER_LINGER_BYTES      (256 * 1024) /* ... and discarding at most this much */
#define HTTP_SERVER_BACKLOG           1024
#define HTTP_SERVER_H2_MAX_STREAMS    128    /* HTTP/2 streams open at once per connection */

/*
 * One request, handed to the handler.  The fields above the private part
 * are the handler's to read; route_stats, route_arg, subpath and
 * subpath_len are also set by a router (lib/http/route) before it calls
 * the route's handler.
 */
struct http_exchange {
	struct http_request req;        /* parsed head; pointers valid until answered */
	/* the server span when this request is traced (lib/http/trace.h), else
	 * NULL; here, out of the part cleared per request, set on its own */
	struct http_span *span;
	char *body;                     /* decoded body (not NUL-terminated); NULL when empty */
	size_t body_len;
	struct http_thread *thread;     /* the loop thread this exchange lives on */
	uv_loop_t *loop;                /* == http_thread_loop(thread) */
	void *thread_data;              /* what the init hook set with http_thread_set_data */
	uint64_t start_ns;              /* CLOCK_MONOTONIC when the head was complete */
	/* set by the router (or a handler that does its own routing) */
	struct http_route_stats *route_stats; /* metrics label set; NULL counts as "unmatched" */
	void *route_arg;
	const char *subpath;            /* path after a prefix route's prefix */
	uint32_t subpath_len;
};

/* Called once per request on the loop thread.  arg is cfg.handler_arg. */
typedef void (*http_handler_fn)(struct http_exchange *ex, void *arg);

/* Per-thread hooks; thread_arg is cfg.thread_arg.  init returns 0 or a
 * negative errno value (then the server stops and http_server_run
 * returns it). */
typedef int (*http_thread_init_fn)(struct http_thread *t, void *arg);
typedef void (*http_thread_fini_fn)(struct http_thread *t, void *arg);

/* A last look at each answer before it is framed, on its loop thread
 * (compression: http_compress_encode in lib/http/compress.h).  It may
 * point *headers, *body and *len elsewhere (storage valid until its next
 * call on this thread: the server copies at once) and returns whether it
 * did.  Not called for answers to connections already gone. */
typedef bool (*http_encode_fn)(struct http_exchange *ex, int status, const char *content_type,
                               const char **headers, const void **body, size_t *len, void *arg);

/* The socket backend (server.c, server_uring.c): io_uring where the kernel
 * allows it, else libuv's epoll streams. */
enum http_io {
	HTTP_IO_AUTO = 0,               /* io_uring if it can be set up, else libuv */
	HTTP_IO_URING,                  /* io_uring or fail: http_server_listen returns its error */
	HTTP_IO_UV,                     /* libuv streams */
};

struct http_server_config {
	const char *host;               /* "127.0.0.1", "0.0.0.0", "::1"; borrowed */
	uint16_t port;                  /* 0 picks a free port (the same for every thread) */
	unsigned threads;               /* loops; 0 = the CPUs we may run on */
	int backlog;                    /* listen(2) backlog per listener */
	struct http_limits limits;      /* max_uri 414, max_header_bytes 431, max_body 413 */
	uint32_t max_connections;       /* open at once over all threads; more are closed at once */
	uint32_t max_pipeline;          /* unanswered requests per connection before it stops reading */
	uint64_t header_timeout_ms;     /* from the first byte (or accept) to a complete head: 408 */
	uint64_t body_timeout_ms;       /* from a complete head to a complete body: 408 */
	uint64_t idle_timeout_ms;       /* keep-alive connection with nothing to do: closed */
	uint64_t drain_timeout_ms;      /* SIGTERM to exit, at most */
	uint64_t linger_ms;             /* lingering close after an error answer */
	bool handle_signals;            /* SIGTERM/SIGINT drain (default true) */
	http_handler_fn handler;        /* required */
	void *handler_arg;
	http_thread_init_fn thread_init; /* optional */
	http_thread_fini_fn thread_fini; /* optional */
	void *thread_arg;
	struct metrics *metrics;        /* borrowed registry, or NULL for no metrics */
	const char *server_name;        /* "Server:" value, NULL for "dsys"; "" for none */
	enum http_io io;                /* socket backend, default HTTP_IO_AUTO */
	uint32_t h2_max_streams;        /* HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS */
	/* zero-downtime restarts (lib/http/handover.h): share the port with
	 * a server of ours already on it (no "address in use" check), offer
	 * our listeners to a successor, and give idle keep-alive connections
	 * one last request when draining */
	bool reuse_port;
	http_encode_fn encode;          /* optional, see above */
	void *encode_arg;
	const int *listen_fds;          /* listening sockets taken over: used first, then owned */
	unsigned nlisten_fds;           /* at most threads */
	struct http_tracer *tracer;     /* optional: a server span per request (lib/http/trace.h) */
};

/* Fill cfg with the defaults above (host 127.0.0.1, port 0, threads 0,
 * HTTP_LIMITS_DEFAULT, handle_signals true, no handler). */
void http_server_config_init(struct http_server_config *cfg);

/*
 * Create a server (cfg is copied; strings and pointers in it are borrowed
 * and must outlive the server).  Returns 0 and *out, or -EINVAL for a
 * config without a handler or with zero limits.
 */
int http_server_new(const struct http_server_config *cfg, struct http_server **out);

/*
 * Bind and listen: one SO_REUSEPORT socket per thread, all on one port
 * (with port 0, the kernel picks it for the first, the others follow),
 * and set up each thread's io_uring (cfg.io): with HTTP_IO_URING a ring
 * that cannot be set up is an error (-ENOSYS, -EPERM ... from
 * io_uring_setup, returned before anything is bound); with HTTP_IO_AUTO
 * the server falls back to libuv streams.
 * After this, connections are queued by the kernel: a program prints its
 * ready line between http_server_listen and http_server_run.  Returns 0,
 * or a negative errno value (-EADDRINUSE, -EACCES, -EADDRNOTAVAIL ...), or
 * -HTTP_SERVER_ENONAME when host is a name that did not resolve.
 * Also raises RLIMIT_NOFILE's soft limit to the hard one.
 */
int http_server_listen(struct http_server *srv);

/* http_server_listen's own code, beyond every errno value: the host name
 * did not resolve (strerror knows nothing of it; say it yourself). */
#define HTTP_SERVER_ENONAME 4096

/* After listen: the bound port, and "HOST:PORT" ("[::1]:PORT" for IPv6),
 * owned by the server. */
uint16_t http_server_port(const struct http_server *srv);
const char *http_server_address(const struct http_server *srv);
unsigned http_server_threads(const struct http_server *srv);
/* After listen: the backend in use, "uring" or "uv". */
const char *http_server_io(const struct http_server *srv);
/* cfg.metrics, or NULL. */
struct metrics *http_server_metrics(const struct http_server *srv);

/*
 * Run the loops: threads 1..N-1 are started, loop 0 runs on the calling
 * thread (which also takes the signals).  Returns when drained: 0, or the
 * negative value an init hook returned.
 */
int http_server_run(struct http_server *srv);

/* Begin the drain, as SIGTERM does, while http_server_run runs.  Safe
 * from any thread and from a signal handler (an atomic store and one
 * uv_async_send). */
void http_server_stop(struct http_server *srv);

/* Free a server that is not running (NULL is a no-op). */
void http_server_free(struct http_server *srv);

/* ------------------------------------------------------------ answering */

/*
 * An answer, the same for every protocol: a status, a header list, a body
 * and trailers.  HTTP/1.1 writes it as a head and a Content-Length body;
 * HTTP/2 as a HEADERS frame, DATA frames and (with trailers) a trailing
 * HEADERS frame.  Everything is borrowed for the call and copied.
 * Names of headers and trailers are lowercase (HTTP/2 requires it; HTTP/1.1
 * does not mind).  Date, Server, Content-Length and Connection are the
 * server's own.  HTTP/1.1 answers carry no trailers (they are dropped: a
 * Content-Length body has no place for them); gRPC, the one user of
 * trailers, runs on HTTP/2 only.
 */
struct http_answer {
	int status;
	const char *content_type;          /* NULL for none */
	const struct http_header *headers; /* n_headers of them, or NULL */
	uint32_t n_headers;
	const char *raw_headers;           /* "Name: value\r\n" lines as for
	                                      http_respond_headers, or NULL */
	const void *body;
	size_t len;
	const struct http_header *trailers; /* HTTP/2 only */
	uint32_t n_trailers;
};

/* Answer ex with a (see above).  Exactly once per exchange, as for
 * http_respond. */
void http_answer(struct http_exchange *ex, const struct http_answer *a);

/*
 * A streamed answer, instead of one http_answer: the head (status,
 * content type, headers; head->body, if any, is the first piece), then
 * any number of pieces, then the end with trailers.  ex stays the
 * handler's (pinned) until http_stream_end; every call on its loop thread.
 * On HTTP/2 each piece leaves as it comes, as the peer's window allows
 * (what waits is buffered: a handler that streams much should watch
 * http_exchange_gone and pace itself).  On HTTP/1.1 each piece leaves
 * as it comes too (what one loop turn wrote, in one write), as a chunk of
 * a "Transfer-Encoding: chunked" body ended by the zero chunk; an
 * HTTP/1.0 request gets the body close-delimited (Connection: close), a
 * HEAD request the head only.  Trailers are dropped on HTTP/1.1.  A
 * streamed answer behind unanswered requests on its connection waits,
 * buffered, for their answers to leave, then goes on live; answers behind
 * it wait for its end.  While an HTTP/1.1 stream is open its client's EOF
 * means gone (http_exchange_gone turns true, even if the stream never
 * writes: poll it), not a half-close.  A client that reads too slowly is
 * dropped once 8 MiB of its stream wait unsent (server_h1.c).
 * http_stream_write returns 0, or -EPIPE once the client is gone (the
 * handler still ends the answer).
 */
void http_stream_begin(struct http_exchange *ex, const struct http_answer *head);
int http_stream_write(struct http_exchange *ex, const void *data, size_t len);
void http_stream_end(struct http_exchange *ex, const struct http_header *trailers, uint32_t n);

/* The protocol ex arrived over: "http/1.1" or "h2". */
const char *http_exchange_protocol(const struct http_exchange *ex);

/*
 * Answer ex: status, Content-Type (NULL for none), body (copied; NULL with
 * len 0 for none).  Date, Server, Content-Length and Connection are added
 * by the server; so is nothing else.  For a HEAD request the body is
 * left out (Content-Length still says its size); 204 and 304 never carry
 * a body or Content-Length.
 */
void http_respond(struct http_exchange *ex, int status, const char *content_type,
                  const void *body, size_t len);

/*
 * The same with extra header lines: headers is "Name: value\r\n" repeated
 * (each line ending in CRLF), or NULL.  Used for Allow, Location,
 * Retry-After, Cache-Control...
 */
void http_respond_headers(struct http_exchange *ex, int status, const char *content_type,
                          const char *headers, const void *body, size_t len);

/* Answer with a JSON error body {"error":"message"} (message escaped). */
void http_respond_error(struct http_exchange *ex, int status, const char *message);

/*
 * A per-thread scratch buffer, emptied, for building a body (e.g. with a
 * json_writer) before passing b->data/b->len to http_respond*: the answer
 * copies it.  Valid until the next http_scratch() call on this thread, so
 * build one body at a time.
 */
struct buf *http_scratch(struct http_exchange *ex);

/* Has the connection gone (reset, error, timeout, forced drain), so the
 * answer will be dropped?  A handler that answers later may skip the work
 * then, but must still answer.  A client that only half-closed (sent FIN)
 * is not gone: it still gets its answers, and the connection closes after
 * the last. */
bool http_exchange_gone(const struct http_exchange *ex);

/* ------------------------------------------------------------ threads */

uv_loop_t *http_thread_loop(struct http_thread *t);
unsigned http_thread_index(const struct http_thread *t);   /* 0 .. threads-1 */
struct http_server *http_thread_server(struct http_thread *t);
void *http_thread_data(struct http_thread *t);
void http_thread_set_data(struct http_thread *t, void *data);
bool http_thread_draining(const struct http_thread *t);

/* ------------------------------------------------------------ metrics */

/*
 * The label set one route counts its requests under:
 * http_requests_total{route="...",code="..."}.  A router owns one per
 * route; the counter for each status code is registered on first use and
 * kept (so the hot path is one array lookup and one sharded add).
 * Initialise with http_route_stats_init (reg may be NULL: counts nothing);
 * the route string is borrowed.
 */
#define HTTP_STATUS_SLOTS 600   /* status codes 0..599 */
struct http_route_stats {
	struct metrics *reg;
	const char *route;
	struct metrics_counter *_Atomic by_code[HTTP_STATUS_SLOTS];
};
void http_route_stats_init(struct http_route_stats *s, struct metrics *reg, const char *route);

/* Count one answer (what the server does when an exchange is answered). */
void http_route_stats_count(struct http_route_stats *s, int status);

#endif
