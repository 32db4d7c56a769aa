/*
 * obs/trace.h -- W3C Trace Context, spans, and their OTLP JSON form.
 *
 * Context.  A trace is named by a 16-byte trace id, each span in it by an
 * 8-byte span id.  Between processes the current span travels as the W3C
 * `traceparent` header (or the TRACEPARENT environment variable, as
 * OpenTelemetry's environment carrier says), with vendor data in
 * `tracestate` / TRACESTATE:
 *
 *   struct trace_context parent;
 *   int have = trace_context_from_env(&parent) == 0;   // TRACEPARENT, TRACESTATE
 *   struct trace_span span;
 *   trace_span_init(&span, "build", TRACE_KIND_INTERNAL, have ? &parent : NULL);
 *   trace_attr_set_int(&span.attrs, "items", 42);
 *   ...
 *   trace_span_end(&span, TRACE_STATUS_OK, NULL);
 *   struct trace_attrs res;
 *   trace_resource_from_env(&res, "dsys-trace");       // service.name
 *   trace_span_json(&span, &res, &line);                // one OTLP JSON object
 *   trace_export_file(getenv("DSYS_TRACE_FILE"), &line);
 *   trace_span_free(&span);
 *   trace_attrs_free(&res);
 *
 * Parsing follows the W3C Trace Context recommendation and its test
 * harness to the letter, because every tracer in a chain must agree on
 * what is valid: lower-case hex only, version ff invalid, all-zero ids
 * invalid, version 00 exactly 55 characters, a higher version read by its
 * first 55 characters when a '-' or the end follows them; the sampled flag
 * is bit 0 of the flags byte.  Optional whitespace (space, tab) around the
 * whole value is allowed, as around an HTTP field value.  An invalid
 * traceparent means "start a new trace"; an invalid tracestate is dropped
 * on its own while the traceparent is kept.
 *
 * Output is the OTLP/JSON mapping of one span (ExportTraceServiceRequest
 * with one resource, one scope, one span): lower-case hex ids, 64-bit
 * integers (times, intValue) as JSON strings, enums as integers,
 * lowerCamelCase names, fields with default values omitted as proto3 JSON
 * does (no parentSpanId on a root span).
 *
 * Ownership: a span and an attribute list own copies of every string they
 * were given; trace_span_free / trace_attrs_free release them (both may be
 * called on a zeroed struct).  Nothing here is thread-safe per object;
 * there is no global state but the random source.
 */
#ifndef DSYS_TRACE_H
#define DSYS_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/json.h"

#define TRACE_PARENT_LEN 55         /* "00-" 32 "-" 16 "-" 2 */
#define TRACE_STATE_MAX_MEMBERS 32
/* The longest valid tracestate: 32 members of a 256-byte key, '=', a
 * 256-byte value, joined by 31 commas; plus the NUL. */
#define TRACE_STATE_MAX (32 * (256 + 1 + 256) + 31 + 1)
#define TRACE_FLAG_SAMPLED 0x01

#define TRACE_MAX_ATTRS 64          /* per span, per event, per resource */
#define TRACE_MAX_EVENTS 32         /* per span; more are counted as dropped */

struct trace_context {
	uint8_t trace_id[16];
	uint8_t span_id[8];
	uint8_t flags;
	char state[TRACE_STATE_MAX];  /* normalised tracestate, "" when none */
};

/* OTLP's Span.SpanKind and Status.StatusCode numbers. */
enum trace_kind {
	TRACE_KIND_UNSPECIFIED = 0, TRACE_KIND_INTERNAL = 1, TRACE_KIND_SERVER = 2,
	TRACE_KIND_CLIENT = 3, TRACE_KIND_PRODUCER = 4, TRACE_KIND_CONSUMER = 5,
};
enum trace_status { TRACE_STATUS_UNSET = 0, TRACE_STATUS_OK = 1, TRACE_STATUS_ERROR = 2 };

enum trace_attr_type { TRACE_ATTR_STRING, TRACE_ATTR_INT, TRACE_ATTR_BOOL, TRACE_ATTR_DOUBLE };

struct trace_attr {
	char *key;                    /* owned */
	enum trace_attr_type type;
	union {
		char *s;              /* owned */
		int64_t i;
		bool b;
		double d;
	} v;
};

struct trace_attrs {
	struct trace_attr a[TRACE_MAX_ATTRS];
	int n;
	uint32_t dropped;             /* set when the list was full */
};

struct trace_event {
	char *name;                   /* owned */
	uint64_t time_ns;             /* Unix epoch */
	struct trace_attrs attrs;
};

struct trace_span {
	struct trace_context ctx;     /* this span's ids, flags and tracestate */
	uint8_t parent_span_id[8];
	bool has_parent;
	char *name;                   /* owned */
	enum trace_kind kind;
	uint64_t start_ns, end_ns;    /* Unix epoch */
	struct trace_attrs attrs;
	struct trace_event events[TRACE_MAX_EVENTS];
	int n_events;
	uint32_t dropped_events;
	enum trace_status status;
	char *status_message;         /* owned, or NULL */
};

/* ---------------------------------------------------------------- context */

/*
 * Parse a traceparent value s[0..n) into c's trace id, span id and flags
 * (c->state is left alone).  Returns 0, or -EINVAL when the value is not
 * valid by the rules above.
 */
int trace_parent_parse(const char *s, size_t n, struct trace_context *c);

/* Write "00-<trace id>-<span id>-<flags>" and a NUL (56 bytes). */
void trace_parent_format(const struct trace_context *c, char out[TRACE_PARENT_LEN + 1]);

/*
 * Validate a tracestate value s[0..n) and write it normalised (empty
 * members and whitespace around members removed) into out (cap bytes,
 * TRACE_STATE_MAX is always enough).  Returns the length written, or
 * -EINVAL: a bad key or value, a duplicated key, more than 32 members.
 */
long trace_state_parse(const char *s, size_t n, char *out, size_t cap);

/*
 * The context in TRACEPARENT and TRACESTATE.  Returns 0 with c filled (an
 * invalid TRACESTATE leaves c->state empty), -ENOENT when TRACEPARENT is
 * unset or empty, -EINVAL when it is invalid (c then holds zero
 * ids and an empty tracestate; bytes after the tracestate's NUL are never
 * cleared nor read).
 */
int trace_context_from_env(struct trace_context *c);

/*
 * W3C Baggage, as OpenTelemetry's environment carrier passes it (BAGGAGE):
 * list-members "key=value" separated by commas, each with optional
 * ";property" parts, whitespace around them allowed; keys HTTP tokens,
 * values baggage-octets (printable ASCII but for space, '"', ',', ';' and
 * '\\', others percent-encoded); at most TRACE_BAGGAGE_MAX bytes in all.
 * We carry it: trace_baggage_valid says whether s[0..n) may go on as a
 * `baggage` header, and trace_baggage_from_env returns BAGGAGE when it may
 * (NULL when unset, empty or invalid).  The servers also record what a
 * request's baggage header holds on its spans (http/trace.h), as
 * OpenTelemetry's baggage span processor does: trace_baggage_members
 * gives them the members of a valid value s[0..n), calling fn with each
 * key and its value, %XX-decoded (kept as sent when the decoded bytes are
 * not printable UTF-8), properties left out; both NUL-terminated in
 * out[0..cap), which 2 * n + 2 bytes always suffice for.  Returns the
 * bytes of out used, or -ENOSPC (fn has then seen the members that fit).
 */
#define TRACE_BAGGAGE_MAX 8192
bool trace_baggage_valid(const char *s, size_t n);
const char *trace_baggage_from_env(void);
long trace_baggage_members(const char *s, size_t n, char *out, size_t cap,
                           void (*fn)(void *ud, const char *key, const char *value), void *ud);

/* Fresh random ids (getrandom(2)), never all zero. */
void trace_id_random(uint8_t id[16]);
void trace_span_id_random(uint8_t id[8]);

/* Lower-case hex of n bytes into out (2n + 1 bytes, NUL-terminated). */
void trace_hex(const uint8_t *id, size_t n, char *out);
/* Exactly 2n lower-case hex digits in s into id; 0 or -EINVAL. */
int trace_unhex(const char *s, size_t len, uint8_t *id, size_t n);

/* Nanoseconds since the Unix epoch (CLOCK_REALTIME). */
uint64_t trace_now_ns(void);

/* "server" -> TRACE_KIND_SERVER; -EINVAL for an unknown name. */
int trace_kind_parse(const char *s);
const char *trace_kind_name(enum trace_kind k);

/* ------------------------------------------------------------ attributes */

/* Set (or replace, by key) an attribute; copies key and string.  When the
 * list is full, counts the attribute as dropped. */
void trace_attr_set_str(struct trace_attrs *l, const char *key, const char *v);
void trace_attr_set_int(struct trace_attrs *l, const char *key, int64_t v);
void trace_attr_set_bool(struct trace_attrs *l, const char *key, bool v);
void trace_attr_set_double(struct trace_attrs *l, const char *key, double v);
const struct trace_attr *trace_attr_get(const struct trace_attrs *l, const char *key);
void trace_attrs_free(struct trace_attrs *l);

/*
 * A command-line attribute: "k=v" (string), "k:int=v", "k:bool=v"
 * (true/false), "k:double=v" (finite).  The key is everything before the
 * first ':' or '=' and must not be empty.  Returns 0, or -EINVAL with *why
 * set to a static reason.
 */
int trace_attr_parse(struct trace_attrs *l, const char *spec, const char **why);

/*
 * The resource of this process: service.name from OTEL_SERVICE_NAME,
 * else from OTEL_RESOURCE_ATTRIBUTES, else default_name; and the other
 * attributes of OTEL_RESOURCE_ATTRIBUTES.  trace_resource_init takes the
 * two values (NULL for unset) so tests need no environment.
 * OTEL_RESOURCE_ATTRIBUTES is key=value pairs separated by commas, the
 * values percent-encoded (W3C Baggage octets); any error in it discards
 * the whole variable, as OpenTelemetry's resource SDK spec says, and the
 * function returns -EINVAL (the resource is still filled, without it).
 */
/*
 * A list of key=value pairs as OpenTelemetry's variables write them
 * (OTEL_RESOURCE_ATTRIBUTES, OTEL_EXPORTER_OTLP_HEADERS): separated by
 * commas, whitespace around keys and values ignored, keys HTTP tokens,
 * values W3C Baggage octets with %XX decoded.  Adds each pair to l as a
 * string attribute; returns 0, or -EINVAL with l untouched.
 */
int trace_kv_list_parse(const char *s, struct trace_attrs *l);

int trace_resource_init(struct trace_attrs *res, const char *default_name,
                        const char *service_name, const char *resource_attributes);
int trace_resource_from_env(struct trace_attrs *res, const char *default_name);

/* --------------------------------------------------------------- sampling */

/*
 * OpenTelemetry's built-in samplers, chosen by OTEL_TRACES_SAMPLER (and
 * OTEL_TRACES_SAMPLER_ARG for the ratio): always_on, always_off,
 * traceidratio, and their parentbased_ forms, which follow a parent's
 * sampled flag and use the named sampler only for a root.  The default
 * is parentbased_always_on: a span under an unsampled parent is not
 * recorded, so one sampling decision holds along a whole trace.
 */
enum trace_sampler_kind { TRACE_SAMPLE_ALWAYS_ON, TRACE_SAMPLE_ALWAYS_OFF, TRACE_SAMPLE_RATIO };

struct trace_sampler {
	enum trace_sampler_kind root;   /* for a span with no parent */
	bool parent_based;
	double ratio;                   /* 0..1, for TRACE_SAMPLE_RATIO */
};

/*
 * Read the sampler from the two values (NULL for unset; tests pass them,
 * programs use trace_sampler_from_env).  Returns 0, or -EINVAL for an
 * unknown sampler or a ratio outside 0..1, leaving the default in *s.
 */
int trace_sampler_init(struct trace_sampler *s, const char *name, const char *arg);
int trace_sampler_from_env(struct trace_sampler *s);

/* Is a span of trace_id, under parent (NULL for a root), sampled?
 * traceidratio decides by the trace id's last 7 bytes, which W3C Trace
 * Context Level 2 asks to be random, so every process decides alike. */
bool trace_sample(const struct trace_sampler *s, const struct trace_context *parent,
                  const uint8_t trace_id[16]);

/* ------------------------------------------------------------------ spans */

/*
 * Start a span now: fresh span id; the trace id, sampled flag and
 * tracestate of parent, or a fresh trace id (sampled) when parent is NULL.
 */
void trace_span_init(struct trace_span *sp, const char *name, enum trace_kind kind,
                     const struct trace_context *parent);
/* Add an event at time_ns (0: now); its attributes are moved from attrs
 * when given (attrs is left empty). */
void trace_span_event(struct trace_span *sp, const char *name, uint64_t time_ns,
                      struct trace_attrs *attrs);
/* End now (unless end_ns is already set) with a status and message. */
void trace_span_end(struct trace_span *sp, enum trace_status st, const char *message);
void trace_span_free(struct trace_span *sp);

/* ------------------------------------------------------------------ output */

/* Append the OTLP JSON attribute list [{"key":..,"value":{..}},..]. */
void trace_attrs_json(struct json_writer *w, const struct trace_attrs *l);

/* Read an OTLP JSON attribute list back (the form trace_attrs_json
 * writes).  Returns 0, or -EINVAL for a malformed list. */
int trace_attrs_from_json(const json_value *arr, struct trace_attrs *l);

/* Append {"resourceSpans":[..]} holding one span, without a newline. */
void trace_span_json(const struct trace_span *sp, const struct trace_attrs *resource,
                     struct buf *out);
/* The same with the instrumentation scope named (a collector keeps the
 * scope it received; NULL name or version leaves the field out). */
void trace_span_json_scoped(const struct trace_span *sp, const struct trace_attrs *resource,
                            const char *scope_name, const char *scope_version, struct buf *out);

/* ------------------------------------------------------------------- logs */

/*
 * One log record (OTLP's LogRecord): a body, a severity as OTLP numbers it
 * (TRACE_SEV_*: the first number of each of its six ranges) and, when the
 * line was written inside a span, that span's ids.  Owns its strings;
 * trace_log_free releases them (a zeroed struct is fine).
 */
enum trace_severity {
	TRACE_SEV_UNSPECIFIED = 0, TRACE_SEV_TRACE = 1, TRACE_SEV_DEBUG = 5, TRACE_SEV_INFO = 9,
	TRACE_SEV_WARN = 13, TRACE_SEV_ERROR = 17, TRACE_SEV_FATAL = 21,
};

struct trace_log {
	uint64_t time_ns;             /* when it happened, 0 when unknown */
	uint64_t observed_ns;         /* when we read it */
	int severity;                 /* 0..24 */
	char *severity_text;          /* owned, or NULL */
	char *body;                   /* owned, or NULL */
	struct trace_attrs attrs;
	bool has_span;
	uint8_t trace_id[16], span_id[8];
	uint8_t flags;
};

/* "warn", "WARNING", "err", ... -> TRACE_SEV_*; -EINVAL when unknown. */
int trace_severity_parse(const char *s);
/* Replace a string field of l with a copy of v (NULL clears it). */
void trace_log_set(char **field, const char *v);
void trace_log_free(struct trace_log *l);

/* Append {"resourceLogs":[..]} holding one record, without a newline. */
void trace_log_json(const struct trace_log *l, const struct trace_attrs *resource,
                    const char *scope_name, const char *scope_version, struct buf *out);

/*
 * Append line and a newline to the file at path (created 0644) with one
 * write(2) on an O_APPEND descriptor, so lines of concurrent writers never
 * interleave.  Returns 0 or a negative errno.
 */
int trace_export_file(const char *path, const struct buf *line);

#endif
