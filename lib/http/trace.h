/*
 * http/trace.h -- a server span per request, for every server on
 * lib/http/server (HTTP/1.1 and HTTP/2 alike).
 *
 *   struct http_tracer *tr;
 *   char err[256];
 *   if (http_tracer_new("dsys-serve", ratio, &tr, err, sizeof err) < 0) ...
 *   cfg.tracer = tr;                 // the server calls begin and end
 *   ... http_server_run ...
 *   http_tracer_free(tr);            // exports what is queued
 *
 * Which requests.  A request whose `traceparent` is valid continues that
 * trace, and is recorded exactly when its sampled flag (bit 0) is set:
 * the caller's decision holds along the whole trace, as OpenTelemetry's
 * parentbased sampler says.  A request with no traceparent, or an invalid
 * one (which W3C Trace Context says starts a fresh trace; its tracestate
 * is then ignored too), starts a new trace, recorded with probability
 * ratio (decided by the trace id, as traceidratio does).
 *
 * What.  One SERVER span named "METHOD ROUTE" (or "METHOD" when no route
 * matched), with OpenTelemetry's HTTP semantic conventions:
 * http.request.method, url.path, url.query, url.scheme, http.route,
 * network.protocol.version, http.response.status_code; status ERROR for
 * a 5xx answer.  A handler may add CLIENT spans under it for its backend
 * calls (http_trace_client).
 *
 * Where.  DSYS_TRACE_FILE: one OTLP JSON line per span, appended.
 * Otherwise OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT (obs/otlp.h) through the
 * batch processor (obs/otlp_batch.h, OTEL_BSP_*): the loop thread only
 * encodes the span and copies it into the queue; posting is the batch
 * thread's, and a full queue drops and counts rather than waits.  With
 * neither set there is nowhere to send spans, and http_tracer_new says so.
 *
 * Cost.  Off (cfg.tracer NULL) the server pays one branch at dispatch and
 * one at the answer.  On, a request not sampled pays a header scan; a
 * sampled one pays ids from a per-thread generator, two clock reads and
 * the encoding.
 *
 * Threads: http_trace_begin/end/client on the exchange's loop thread;
 * http_tracer_new and _free on the main thread, outside http_server_run.
 */
#ifndef DSYS_HTTP_TRACE_H
#define DSYS_HTTP_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/server.h"
#include "obs/trace.h"

struct http_tracer;

/* The context of a recorded request, at ex->span until it is answered. */
struct http_span {
	struct http_tracer *tracer;
	uint8_t trace_id[16], span_id[8], parent_id[8];
	bool has_parent;
	uint8_t flags;
	char *state;                   /* the incoming tracestate, normalised; or NULL */
};

/*
 * A tracer for service default_service (OTEL_SERVICE_NAME and
 * OTEL_RESOURCE_ATTRIBUTES win, obs/trace.h), recording new traces with
 * probability ratio (0..1).  Returns 0 and *out; -ENOENT when neither
 * DSYS_TRACE_FILE nor an OTLP endpoint is set; -EINVAL for a bad ratio or
 * a bad OTEL_* value (err says which).  A warning that does not stop
 * tracing (an OTLP protocol we do not speak) returns 1 with err set.
 */
int http_tracer_new(const char *default_service, double ratio, struct http_tracer **out,
                    char *err, size_t errlen);

/* Export what waits (bounded by the export timeout) and free; NULL is a
 * no-op. */
void http_tracer_free(struct http_tracer *tr);

/* Spans recorded, and spans lost: refused by a full queue, in an export
 * that failed, or not written to DSYS_TRACE_FILE. */
void http_tracer_counts(struct http_tracer *tr, uint64_t *spans, uint64_t *dropped);

/* The server's hooks: decide and start (sets ex->span when recorded, and
 * makes this thread's log lines carry its ids until the server calls
 * http_trace_log(NULL) once the handler returns), and end with the
 * answer's status (frees ex->span). */
void http_trace_begin(struct http_tracer *tr, struct http_exchange *ex);
void http_trace_end(struct http_exchange *ex, int status);

/*
 * A CLIENT span under ex's server span, for a backend call that ran from
 * start_ns to end_ns (trace_now_ns, Unix epoch): name ("INCRBY"),
 * db.system.name ("redis", "etcd"), and an error message (NULL when it
 * went well).  span_id, when not NULL, is the id to use (one already
 * handed to the backend in its own traceparent); else a fresh one.  A
 * no-op when ex is not traced.
 */
void http_trace_client(struct http_exchange *ex, const char *name, const char *system,
                       uint64_t start_ns, uint64_t end_ns, const char *error,
                       const uint8_t *span_id);

/* Make the lines this thread logs carry ex's trace and span ids
 * (base/log.h), until http_trace_log(NULL); a no-op for an exchange
 * that is not traced, but for clearing. */
void http_trace_log(const struct http_exchange *ex);

/* Free what this loop thread kept for its spans (the scratch span and
 * the encoding buffers); the server calls it as each loop thread ends.
 * Harmless on a thread that traced nothing, and tracing again after it
 * allocates anew. */
void http_trace_thread_end(void);

/* A fresh span id (from the loop thread's generator). */
void http_trace_span_id(uint8_t id[8]);

#endif
