/*
 * obs/trace_proc.h -- the span of one command-line operation, for the
 * dsys programs that are not servers (dsys-lock acquire, release, run...).
 *
 *   struct trace_proc *tp = trace_proc_begin("dsys-lock", "dsys-lock acquire");
 *   if (tp)
 *       trace_attr_set_str(&trace_proc_span(tp)->attrs, "lock.name", name);
 *   int rc = do_the_work();          // a child forked here joins the trace
 *   trace_proc_end(tp, rc, NULL);    // exports and frees; NULL is a no-op
 *
 * When.  Only when the spans have somewhere to go: DSYS_TRACE_FILE (one
 * OTLP JSON line appended per span) or an OTLP endpoint
 * (OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT, obs/otlp.h).  With neither,
 * trace_proc_begin returns NULL and changes nothing: the environment,
 * and so a TRACEPARENT a child inherits, is left as it was.
 *
 * Context.  The span continues TRACEPARENT/TRACESTATE (a `dsys-trace
 * exec` around the program) or starts a trace; OTEL_TRACES_SAMPLER
 * decides whether it is recorded (default parentbased_always_on).  Either
 * way TRACEPARENT and TRACESTATE are set to the new span for the rest of
 * the process, so a child (the CMD of `dsys-lock run`) is its child and
 * follows its sampling decision, as OpenTelemetry's environment carrier
 * says; and this thread's log lines carry its ids (base/log.h).
 * trace_proc_end puts TRACEPARENT and TRACESTATE back as they were, so a
 * long-running program can make one span per piece of work (dsys-register
 * watch and render), each a child of the context it was started in.
 *
 * Export.  At trace_proc_end, synchronously (libcurl, bounded by
 * OTEL_EXPORTER_OTLP_TIMEOUT): a command-line program has no loop to
 * batch on, and its span must be out before it exits.  A failure is
 * logged as a warning and never changes the program's exit status.
 *
 * Threads: the main thread, one span at a time (it sets the environment).
 */
#ifndef DSYS_TRACE_PROC_H
#define DSYS_TRACE_PROC_H

#include "obs/trace.h"

struct trace_proc;

/* Start the span named name (service: the default service.name), or
 * return NULL when no exporter is set. */
struct trace_proc *trace_proc_begin(const char *service, const char *name, enum trace_kind kind);

/* The span, for attributes and events. */
struct trace_span *trace_proc_span(struct trace_proc *tp);

/*
 * End the span with the program's exit code (process.exit.code; non-zero
 * marks it an error, with message as the status message when given),
 * export it when it is recorded, and free tp.  Returns 0, or -1 when the
 * export failed (already logged).  NULL is a no-op returning 0.
 */
int trace_proc_end(struct trace_proc *tp, int exit_code, const char *message);

#endif
