/*
 * obs/trace_proc.c -- one span around a command-line operation; see the
 * header for when it is recorded and where it goes.
 *
 * The span is heap-allocated: struct trace_span holds room for its
 * attributes, events and a tracestate (tens of KiB), too much for the
 * stack of a program that may run on a small one.
 */
#include "obs/trace_proc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/invariant.h"
#include "base/log.h"
#include "obs/otlp.h"
#include "obs/otlp_codec.h"

struct trace_proc {
	struct trace_span span;
	struct trace_attrs resource;
	const char *file;               /* DSYS_TRACE_FILE, or NULL for OTLP */
	char *was_parent, *was_state;   /* TRACEPARENT, TRACESTATE before begin (owned), or NULL */
};

static char *env_dup(const char *name)
{
	const char *v = getenv(name);
	char *d = v ? strdup(v) : NULL;
	INVARIANT(!v || d != NULL);
	return d;
}

static void env_restore(const char *name, const char *v)
{
	if (v)
		setenv(name, v, 1);
	else
		unsetenv(name);
}

static bool otlp_endpoint_set(void)
{
	const char *a = getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
	const char *b = getenv("OTEL_EXPORTER_OTLP_ENDPOINT");
	return (a && *a) || (b && *b);
}

struct trace_proc *trace_proc_begin(const char *service, const char *name, enum trace_kind kind)
{
	const char *file = getenv("DSYS_TRACE_FILE");
	if (file && !*file)
		file = NULL;
	if (!file && !otlp_endpoint_set())
		return NULL;
	struct trace_proc *tp = calloc(1, sizeof *tp);
	INVARIANT(tp != NULL);
	tp->file = file;
	struct trace_context parent;
	int r = trace_context_from_env(&parent);
	if (r == -EINVAL)
		log_warn("ignoring TRACEPARENT: not a valid W3C traceparent; starting a new trace");
	bool have = r == 0;
	trace_span_init(&tp->span, name, kind, have ? &parent : NULL);
	struct trace_sampler smp;
	if (trace_sampler_from_env(&smp) < 0)
		log_warn("ignoring OTEL_TRACES_SAMPLER: expected always_on, always_off, traceidratio "
		         "or their parentbased_ forms, and a ratio from 0 to 1");
	/* an unsampled span is still passed on, unsampled, so that the
	 * programs under it make the same decision */
	tp->span.ctx.flags = trace_sample(&smp, have ? &parent : NULL, tp->span.ctx.trace_id)
	                     ? TRACE_FLAG_SAMPLED : 0;
	if (trace_resource_from_env(&tp->resource, service) < 0)
		log_warn("ignoring OTEL_RESOURCE_ATTRIBUTES: not a list of key=percent-encoded-value");

	tp->was_parent = env_dup("TRACEPARENT");
	tp->was_state = env_dup("TRACESTATE");
	char tpv[TRACE_PARENT_LEN + 1];
	trace_parent_format(&tp->span.ctx, tpv);
	setenv("TRACEPARENT", tpv, 1);
	if (tp->span.ctx.state[0])
		setenv("TRACESTATE", tp->span.ctx.state, 1);
	else
		unsetenv("TRACESTATE");
	char tid[33], sid[17];
	trace_hex(tp->span.ctx.trace_id, 16, tid);
	trace_hex(tp->span.ctx.span_id, 8, sid);
	log_trace_set(tid, sid);
	return tp;
}

struct trace_span *trace_proc_span(struct trace_proc *tp)
{
	return &tp->span;
}

static int export(struct trace_proc *tp)
{
	if (tp->file) {
		struct buf line = BUF_INIT;
		trace_span_json(&tp->span, &tp->resource, &line);
		int r = trace_export_file(tp->file, &line);
		buf_free(&line);
		if (r < 0) {
			log_warn("cannot write a span to '%s': %s", tp->file, strerror(-r));
			return -1;
		}
		return 0;
	}
	struct otlp_config cfg;
	char err[512] = "";
	int r = otlp_config_from_env(&cfg, "traces", err, sizeof err);
	if (r == 1)
		log_warn("%s", err);
	if (r < 0) {
		log_warn("span not exported: %s", err);
		return -1;
	}
	struct buf body = BUF_INIT;
	const struct otlp_item it = {.resource = &tp->resource, .span = &tp->span};
	otlp_codec_encode(cfg.encoding, &it, 1, &body);
	r = otlp_post(&cfg, body.data, body.len, err, sizeof err);
	buf_free(&body);
	if (r < 0) {
		log_warn("span not exported: %s", err);
		return -1;
	}
	return 0;
}

int trace_proc_end(struct trace_proc *tp, int exit_code, const char *message)
{
	if (!tp)
		return 0;
	trace_attr_set_int(&tp->span.attrs, "process.exit.code", exit_code);
	char why[64];
	if (exit_code && !message) {
		snprintf(why, sizeof why, "exit status %d", exit_code);
		message = why;
	}
	trace_span_end(&tp->span, exit_code ? TRACE_STATUS_ERROR : TRACE_STATUS_UNSET,
	               exit_code ? message : NULL);
	int r = tp->span.ctx.flags & TRACE_FLAG_SAMPLED ? export(tp) : 0;
	log_trace_set(NULL, NULL);
	/* a program that makes a span per piece of work (dsys-register
	 * watch) parents the next one on its own parent again, not on this */
	env_restore("TRACEPARENT", tp->was_parent);
	env_restore("TRACESTATE", tp->was_state);
	free(tp->was_parent);
	free(tp->was_state);
	trace_span_free(&tp->span);
	trace_attrs_free(&tp->resource);
	free(tp);
	return r;
}
