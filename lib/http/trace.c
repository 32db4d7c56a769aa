/*
 * http/trace.c -- server spans: the decision at dispatch, the span at the
 * answer.
 *
 * Nothing per request touches struct trace_span's constructor: it is a
 * big struct (room for 64 attributes and 32 events) that trace_span_init
 * clears whole.  Each loop thread keeps one, allocated once, and fills
 * only the fields a server span uses, with strings borrowed for the
 * encoding (so it is never given to trace_span_free).  Ids come from a
 * per-thread generator seeded by getrandom(2), since a system call per id
 * would cost more than the rest of the span.
 */
#include "http/trace.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "base/invariant.h"
#include "base/log.h"
#include "obs/otlp.h"
#include "obs/otlp_batch.h"
#include "obs/otlp_codec.h"

struct http_tracer {
	struct trace_sampler sampler;
	struct trace_attrs resource;
	char *file;                    /* DSYS_TRACE_FILE, or NULL */
	struct otlp_batch *batch;      /* or the OTLP exporter */
	bool pb;                       /* ... in protobuf: spans encoded here, directly */
	struct buf res_pb;             /* the Resource and the scope, encoded once */
	struct buf scope_pb;
	_Atomic uint64_t spans, dropped;
};

/* ------------------------------------------------------------------ ids */

static __thread uint64_t rng_state;
static __thread bool rng_seeded;

/* splitmix64: every output of a 64-bit counter mixed, so ids are unique
 * per thread and look random; the seed makes threads and processes
 * differ. */
static uint64_t rng_next(void)
{
	if (!rng_seeded) {
		uint64_t seed = 0;
		if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)(uintptr_t)&ts;
		}
		rng_state = seed;
		rng_seeded = true;
	}
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void rng_fill(uint8_t *p, size_t n)
{
	for (;;) {
		bool zero = true;
		for (size_t i = 0; i < n; i += 8) {
			uint64_t v = rng_next();
			size_t k = n - i < 8 ? n - i : 8;
			memcpy(p + i, &v, k);
		}
		for (size_t i = 0; i < n; i++)
			zero &= p[i] == 0;
		if (!zero) /* an all-zero id is invalid */
			return;
	}
}

void http_trace_span_id(uint8_t id[8])
{
	rng_fill(id, 8);
}

/* ------------------------------------------------------------ protobuf */

/*
 * A span in OTLP's protobuf, written field by field: protobuf-c's packer
 * walks descriptors and costs ~16000 instructions for one server span,
 * several times what the rest of a traced request does.  Field numbers
 * are those of lib/obs/otlp_trace.proto and otlp_common.proto; what comes
 * out is one ExportTraceServiceRequest of one ResourceSpans, the shape
 * otlp_codec_encode gives (trace_serve.bats has the collector, which
 * decodes with protobuf-c, read it back).  The writers store through a
 * pointer into room reserved beforehand from an upper bound of the size
 * (pb_bound), so no field pays for a bounds check or a call; the span is
 * written first, and the messages around it are framed by its length.
 */
enum { PB_VARINT = 0, PB_I64 = 1, PB_LEN = 2, PB_I32 = 5 };

static inline uint8_t *pb_varint(uint8_t *w, uint64_t v)
{
	while (v > 0x7f) {
		*w++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*w++ = (uint8_t)v;
	return w;
}

static inline size_t pb_varint_size(uint64_t v)
{
	size_t n = 1;
	while (v > 0x7f) {
		v >>= 7;
		n++;
	}
	return n;
}

static inline uint8_t *pb_tag(uint8_t *w, unsigned field, unsigned wt)
{
	return pb_varint(w, (uint64_t)field << 3 | wt);
}

static inline uint8_t *pb_len(uint8_t *w, unsigned field, const void *p, size_t n)
{
	w = pb_tag(w, field, PB_LEN);
	w = pb_varint(w, n);
	memcpy(w, p, n);
	return w + n;
}

static inline uint8_t *pb_str(uint8_t *w, unsigned field, const char *s)
{
	if (s && *s) /* proto3: an empty string is not written */
		w = pb_len(w, field, s, strlen(s));
	return w;
}

static inline uint8_t *pb_fixed(uint8_t *w, unsigned field, uint64_t v, int bytes)
{
	w = pb_tag(w, field, bytes == 8 ? PB_I64 : PB_I32);
	for (int i = 0; i < bytes; i++)
		*w++ = (uint8_t)(v >> (8 * i));
	return w;
}

/* KeyValue { key = 1; AnyValue value = 2 { string 1, bool 2, int64 3, double 4 } } */
static uint8_t *pb_kv(uint8_t *w, unsigned field, const struct trace_attr *a)
{
	size_t kl = strlen(a->key), sl = 0, av;
	switch (a->type) {
	case TRACE_ATTR_STRING:
		sl = strlen(a->v.s);
		av = 1 + pb_varint_size(sl) + sl;
		break;
	case TRACE_ATTR_INT:
		av = 1 + pb_varint_size((uint64_t)a->v.i);
		break;
	case TRACE_ATTR_BOOL:
		av = 2;
		break;
	default:
		av = 9;
		break;
	}
	w = pb_tag(w, field, PB_LEN);
	w = pb_varint(w, 1 + pb_varint_size(kl) + kl + 1 + pb_varint_size(av) + av);
	w = pb_len(w, 1, a->key, kl);
	w = pb_tag(w, 2, PB_LEN);
	w = pb_varint(w, av);
	switch (a->type) {
	case TRACE_ATTR_STRING:
		w = pb_len(w, 1, a->v.s, sl);
		break;
	case TRACE_ATTR_INT:
		w = pb_tag(w, 3, PB_VARINT);
		w = pb_varint(w, (uint64_t)a->v.i);
		break;
	case TRACE_ATTR_BOOL:
		w = pb_tag(w, 2, PB_VARINT);
		*w++ = a->v.b;
		break;
	case TRACE_ATTR_DOUBLE: {
		uint64_t u;
		memcpy(&u, &a->v.d, 8);
		w = pb_fixed(w, 4, u, 8);
		break;
	}
	}
	return w;
}

/* At least the bytes the attributes take: 40 covers the tags, lengths
 * and a number of each. */
static size_t pb_attrs_bound(const struct trace_attrs *l)
{
	size_t n = 0;
	for (int i = 0; i < l->n; i++)
		n += 40 + strlen(l->a[i].key) + (l->a[i].type == TRACE_ATTR_STRING ? strlen(l->a[i].v.s) : 0);
	return n;
}

static void pb_resource_scope(struct http_tracer *tr)
{
	buf_reserve(&tr->res_pb, pb_attrs_bound(&tr->resource) + 16);
	uint8_t *w0 = (uint8_t *)tr->res_pb.data, *w = w0;
	for (int i = 0; i < tr->resource.n; i++)
		w = pb_kv(w, 1, &tr->resource.a[i]);
	if (tr->resource.dropped) {
		w = pb_tag(w, 2, PB_VARINT);
		w = pb_varint(w, tr->resource.dropped);
	}
	tr->res_pb.len = (size_t)(w - w0);
	buf_reserve(&tr->scope_pb, 64 + strlen(DSYS_VERSION));
	w0 = w = (uint8_t *)tr->scope_pb.data;
	w = pb_str(w, 1, "dsys/http");
	w = pb_str(w, 2, DSYS_VERSION);
	tr->scope_pb.len = (size_t)(w - w0);
}

static __thread struct buf tl_span_pb;

/* The request of one span into out (emptied first). */
static void pb_encode_span(const struct http_tracer *tr, const struct trace_span *sp, struct buf *out)
{
	size_t ml = sp->status_message ? strlen(sp->status_message) : 0;
	size_t bound = 128 + strlen(sp->ctx.state) + (sp->name ? strlen(sp->name) : 0) + ml +
	               pb_attrs_bound(&sp->attrs);
	struct buf *s = &tl_span_pb;
	buf_reset(s);
	buf_reserve(s, bound);
	uint8_t *w0 = (uint8_t *)s->data, *w = w0;
	w = pb_len(w, 1, sp->ctx.trace_id, 16);
	w = pb_len(w, 2, sp->ctx.span_id, 8);
	w = pb_str(w, 3, sp->ctx.state);
	if (sp->has_parent)
		w = pb_len(w, 4, sp->parent_span_id, 8);
	w = pb_str(w, 5, sp->name);
	if (sp->kind) {
		w = pb_tag(w, 6, PB_VARINT);
		w = pb_varint(w, (uint64_t)sp->kind);
	}
	w = pb_fixed(w, 7, sp->start_ns, 8);
	w = pb_fixed(w, 8, sp->end_ns, 8);
	for (int i = 0; i < sp->attrs.n; i++)
		w = pb_kv(w, 9, &sp->attrs.a[i]);
	/* Status { message = 2; code = 3 } */
	size_t stl = (ml ? 1 + pb_varint_size(ml) + ml : 0) + (sp->status ? 2 : 0);
	w = pb_tag(w, 15, PB_LEN);
	w = pb_varint(w, stl);
	if (ml)
		w = pb_len(w, 2, sp->status_message, ml);
	if (sp->status) {
		w = pb_tag(w, 3, PB_VARINT);
		w = pb_varint(w, (uint64_t)sp->status);
	}
	if (sp->ctx.flags & TRACE_FLAG_SAMPLED)
		w = pb_fixed(w, 16, TRACE_FLAG_SAMPLED, 4);
	size_t span = (size_t)(w - w0);
	INVARIANT(span <= bound);

	/* ExportTraceServiceRequest { resource_spans = 1: ResourceSpans {
	 *   resource = 1; scope_spans = 2: ScopeSpans { scope = 1; spans = 2 } } } */
	size_t scope = tr->scope_pb.len, res = tr->res_pb.len;
	size_t ss = 1 + pb_varint_size(scope) + scope + 1 + pb_varint_size(span) + span;
	size_t rs = 1 + pb_varint_size(res) + res + 1 + pb_varint_size(ss) + ss;
	buf_reset(out);
	buf_reserve(out, rs + 16);
	uint8_t *o0 = (uint8_t *)out->data, *o = o0;
	o = pb_tag(o, 1, PB_LEN);
	o = pb_varint(o, rs);
	o = pb_len(o, 1, tr->res_pb.data, res);
	o = pb_tag(o, 2, PB_LEN);
	o = pb_varint(o, ss);
	o = pb_len(o, 1, tr->scope_pb.data, scope);
	o = pb_len(o, 2, w0, span);
	out->len = (size_t)(o - o0);
}

/* --------------------------------------------------------------- tracer */

int http_tracer_new(const char *default_service, double ratio, struct http_tracer **out,
                    char *err, size_t errlen)
{
	*out = NULL;
	if (!(ratio >= 0 && ratio <= 1)) {
		snprintf(err, errlen, "invalid sampling ratio: expected a number from 0 to 1");
		return -EINVAL;
	}
	const char *file = getenv("DSYS_TRACE_FILE");
	struct otlp_config cfg;
	int warn = 0;
	if (!file || !*file) {
		file = NULL;
		int rc = otlp_config_from_env(&cfg, "traces", err, errlen);
		if (rc == -ENOENT)
			snprintf(err, errlen, "tracing is on but neither DSYS_TRACE_FILE nor "
			                      "OTEL_EXPORTER_OTLP_ENDPOINT is set: spans would go nowhere");
		if (rc < 0)
			return rc;
		warn = rc;
	}
	struct otlp_batch_options bo;
	char berr[256] = "";
	if (!file && otlp_batch_options_from_env(&bo, berr, sizeof berr) < 0) {
		snprintf(err, errlen, "%s", berr);
		return -EINVAL;
	}
	struct http_tracer *tr = calloc(1, sizeof *tr);
	INVARIANT(tr != NULL);
	tr->sampler = (struct trace_sampler){TRACE_SAMPLE_RATIO, true, ratio};
	if (trace_resource_from_env(&tr->resource, default_service) < 0 && !warn) {
		snprintf(err, errlen, "ignoring OTEL_RESOURCE_ATTRIBUTES: not a list of "
		                      "key=percent-encoded-value");
		warn = 1;
	}
	if (file) {
		tr->file = strdup(file);
		INVARIANT(tr->file != NULL);
	} else {
		tr->batch = otlp_batch_new(&cfg, OTLP_SIGNAL_TRACES, &bo);
		tr->pb = cfg.encoding == OTLP_PROTOBUF;
		if (tr->pb)
			pb_resource_scope(tr);
	}
	*out = tr;
	return warn;
}

void http_tracer_free(struct http_tracer *tr)
{
	if (!tr)
		return;
	otlp_batch_free(tr->batch);
	buf_free(&tr->res_pb);
	buf_free(&tr->scope_pb);
	trace_attrs_free(&tr->resource);
	free(tr->file);
	free(tr);
}

void http_tracer_counts(struct http_tracer *tr, uint64_t *spans, uint64_t *dropped)
{
	*spans = tr->spans;
	*dropped = tr->dropped;
	if (tr->batch) { /* and those lost with an export that failed */
		struct otlp_batch_stats st;
		otlp_batch_stats(tr->batch, &st);
		*dropped += st.failed;
	}
}

/* This thread's room for a tracestate and a decoded baggage, allocated on
 * first use: as __thread arrays they would be cleared at the start of
 * every thread of every program linking this file, 32 KiB of page faults
 * for programs that never trace (dsys-trace exec starts in milliseconds). */
struct scratch {
	char state[TRACE_STATE_MAX];
	char baggage[2 * TRACE_BAGGAGE_MAX + 2];  /* trace_baggage_members' bound */
};
static __thread struct scratch *tl_scratch;

static struct scratch *scratch_get(void)
{
	if (!tl_scratch) {
		tl_scratch = malloc(sizeof *tl_scratch);
		INVARIANT(tl_scratch != NULL);
	}
	return tl_scratch;
}

/* -------------------------------------------------------------- begin */

void http_trace_begin(struct http_tracer *tr, struct http_exchange *ex)
{
	const struct http_message *m = &ex->req.m;
	const struct http_header *tp = NULL, *ts = NULL;
	for (uint32_t i = 0; i < m->n_headers; i++) {
		const struct http_header *h = &m->headers[i];
		if (h->name_len == 11 && !tp && http_header_is(h, "traceparent"))
			tp = h;
		else if (h->name_len == 10 && !ts && http_header_is(h, "tracestate"))
			ts = h;
	}
	struct http_span s = {.tracer = tr};
	struct trace_context parent; /* its state is not used: no need to clear 16 KiB */
	if (tp && trace_parent_parse(tp->value, tp->value_len, &parent) == 0) {
		if (!(parent.flags & TRACE_FLAG_SAMPLED))
			return; /* the caller decided: not recorded */
		memcpy(s.trace_id, parent.trace_id, 16);
		memcpy(s.parent_id, parent.span_id, 8);
		s.has_parent = true;
		s.flags = parent.flags;
	} else {
		rng_fill(s.trace_id, 16);
		if (!trace_sample(&tr->sampler, NULL, s.trace_id))
			return;
		s.flags = TRACE_FLAG_SAMPLED;
		ts = NULL; /* a tracestate without a valid traceparent means nothing */
	}
	rng_fill(s.span_id, 8);
	struct http_span *sp = malloc(sizeof *sp);
	INVARIANT(sp != NULL);
	*sp = s;
	if (ts && ts->value_len) {
		char *state = scratch_get()->state;
		long n = trace_state_parse(ts->value, ts->value_len, state, TRACE_STATE_MAX);
		if (n > 0) {
			sp->state = malloc((size_t)n + 1);
			INVARIANT(sp->state != NULL);
			memcpy(sp->state, state, (size_t)n + 1);
		}
	}
	ex->span = sp;
	/* what the handler logs while it runs belongs to this span; the
	 * server clears it when the handler returns */
	http_trace_log(ex);
}

/* ---------------------------------------------------------------- end */

/* The loop thread's span, allocated once; see the top of the file. */
static __thread struct trace_span *tl_span;
static __thread struct buf tl_body;

static struct trace_span *span_reset(const struct http_span *s, const uint8_t *span_id, bool parent_is_s)
{
	if (!tl_span) {
		tl_span = calloc(1, sizeof *tl_span);
		INVARIANT(tl_span != NULL);
	}
	struct trace_span *sp = tl_span;
	memcpy(sp->ctx.trace_id, s->trace_id, 16);
	memcpy(sp->ctx.span_id, span_id, 8);
	sp->ctx.flags = s->flags;
	size_t sl = s->state ? strlen(s->state) : 0;
	memcpy(sp->ctx.state, s->state ? s->state : "", sl + 1);
	if (parent_is_s) {
		memcpy(sp->parent_span_id, s->span_id, 8);
		sp->has_parent = true;
	} else {
		memcpy(sp->parent_span_id, s->parent_id, 8);
		sp->has_parent = s->has_parent;
	}
	sp->attrs.n = 0;
	sp->attrs.dropped = 0;
	sp->n_events = 0;
	sp->dropped_events = 0;
	sp->status = TRACE_STATUS_UNSET;
	sp->status_message = NULL;
	return sp;
}

/* Borrowed strings: the span is encoded before they go. */
static void attr_str(struct trace_span *sp, const char *k, const char *v)
{
	struct trace_attr *a = &sp->attrs.a[sp->attrs.n++];
	a->key = (char *)k;
	a->type = TRACE_ATTR_STRING;
	a->v.s = (char *)v;
}

static void attr_int(struct trace_span *sp, const char *k, int64_t v)
{
	struct trace_attr *a = &sp->attrs.a[sp->attrs.n++];
	a->key = (char *)k;
	a->type = TRACE_ATTR_INT;
	a->v.i = v;
}

/* A member of the request's baggage, as an attribute: unless the span
 * already has one of that name (the server's own come first), and
 * counted as dropped when the span is full. */
static void baggage_attr(void *ud, const char *key, const char *value)
{
	struct trace_span *sp = ud;
	for (int i = 0; i < sp->attrs.n; i++)
		if (!strcmp(sp->attrs.a[i].key, key))
			return;
	if (sp->attrs.n == TRACE_MAX_ATTRS) {
		sp->attrs.dropped++;
		return;
	}
	attr_str(sp, key, value);
}

/*
 * The request's baggage (each `baggage` header of it that is valid W3C
 * Baggage) on sp, as OpenTelemetry's baggage span processor records it:
 * a string attribute per member.  The strings are decoded into this
 * thread's scratch and borrowed until the span is encoded.  Only a
 * request that has the header pays more than the header scan.
 */
static void baggage_attrs(const struct http_exchange *ex, struct trace_span *sp)
{
	size_t used = 0;
	const struct http_message *m = &ex->req.m;
	for (uint32_t i = 0; i < m->n_headers; i++) {
		const struct http_header *h = &m->headers[i];
		if (h->name_len != 7 || !http_header_is(h, "baggage") ||
		    !trace_baggage_valid(h->value, h->value_len))
			continue;
		char *room = scratch_get()->baggage;
		long r = trace_baggage_members(h->value, h->value_len, room + used,
		                               sizeof tl_scratch->baggage - used, baggage_attr, sp);
		if (r < 0)
			break; /* the scratch is full: what fitted is recorded */
		used += (size_t)r;
	}
}

static void span_export(struct http_tracer *tr, const struct trace_span *sp)
{
	struct buf *b = &tl_body;
	buf_reset(b);
	tr->spans++;
	if (tr->file) {
		trace_span_json_scoped(sp, &tr->resource, "dsys/http", DSYS_VERSION, b);
		if (trace_export_file(tr->file, b) < 0)
			tr->dropped++;
		return;
	}
	if (tr->pb) {
		pb_encode_span(tr, sp, b);
		if (otlp_batch_add_encoded(tr->batch, b->data, b->len) < 0)
			tr->dropped++;
		return;
	}
	struct otlp_item it = {.resource = &tr->resource, .scope_name = "dsys/http",
	                       .scope_version = DSYS_VERSION, .span = sp};
	if (otlp_batch_add(tr->batch, &it) < 0)
		tr->dropped++;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "DELETE",
                                      "OPTIONS", "PATCH", "TRACE", "CONNECT"};

void http_trace_end(struct http_exchange *ex, int status)
{
	struct http_span *s = ex->span;
	ex->span = NULL;
	struct http_tracer *tr = s->tracer;
	uint64_t real = trace_now_ns(), mono = mono_ns();
	struct trace_span *sp = span_reset(s, s->span_id, false);
	sp->kind = TRACE_KIND_SERVER;
	sp->end_ns = real;
	sp->start_ns = real - (mono > ex->start_ns ? mono - ex->start_ns : 0);

	const struct http_request *r = &ex->req;
	/* the semantic conventions name methods they know, and "_OTHER" */
	const char *method = "_OTHER";
	for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
		if (r->method_len == strlen(methods[i]) && !memcmp(r->method_str, methods[i], r->method_len))
			method = methods[i];
	static __thread char path[1024], query[1024], name[600];
	size_t pl = r->path_len < sizeof path - 1 ? r->path_len : sizeof path - 1;
	if (pl)
		memcpy(path, r->path, pl);
	path[pl] = 0;
	const char *route = ex->route_stats && ex->route_stats->route &&
	                    strcmp(ex->route_stats->route, "unmatched") != 0
	                    ? ex->route_stats->route : NULL;
	/* by hand: snprintf would be the costliest call of the span */
	size_t ml = strlen(method), rl = route ? strlen(route) : 0;
	if (rl > sizeof name - ml - 2)
		rl = sizeof name - ml - 2;
	memcpy(name, method, ml);
	if (route) {
		name[ml] = ' ';
		memcpy(name + ml + 1, route, rl);
		ml += 1 + rl;
	}
	name[ml] = 0;
	sp->name = name;
	attr_str(sp, "http.request.method", method);
	attr_str(sp, "url.path", path);
	if (r->query && r->query_len) {
		size_t ql = r->query_len < sizeof query - 1 ? r->query_len : sizeof query - 1;
		memcpy(query, r->query, ql);
		query[ql] = 0;
		attr_str(sp, "url.query", query);
	}
	attr_str(sp, "url.scheme", "http");
	if (route)
		attr_str(sp, "http.route", route);
	attr_str(sp, "network.protocol.version",
	         strcmp(http_exchange_protocol(ex), "h2") == 0 ? "2" : "1.1");
	attr_int(sp, "http.response.status_code", status);
	if (status >= 500) /* a 4xx is the client's error, not the server span's */
		sp->status = TRACE_STATUS_ERROR;
	baggage_attrs(ex, sp);
	span_export(tr, sp);
	free(s->state);
	free(s);
}

void http_trace_thread_end(void)
{
	free(tl_span); /* its strings were borrowed: nothing inside to free */
	tl_span = NULL;
	free(tl_scratch);
	tl_scratch = NULL;
	buf_free(&tl_body);
	buf_free(&tl_span_pb);
	log_trace_set(NULL, NULL);
}

void http_trace_log(const struct http_exchange *ex)
{
	const struct http_span *s = ex ? ex->span : NULL;
	if (!s) {
		log_trace_set(NULL, NULL);
		return;
	}
	char t[33], sp[17];
	trace_hex(s->trace_id, 16, t);
	trace_hex(s->span_id, 8, sp);
	log_trace_set(t, sp);
}

void http_trace_client(struct http_exchange *ex, const char *name, const char *system,
                       uint64_t start_ns, uint64_t end_ns, const char *error,
                       const uint8_t *span_id)
{
	const struct http_span *s = ex->span;
	if (!s)
		return;
	uint8_t id[8];
	if (span_id)
		memcpy(id, span_id, 8);
	else
		rng_fill(id, 8);
	struct trace_span *sp = span_reset(s, id, true);
	sp->kind = TRACE_KIND_CLIENT;
	sp->name = (char *)name;
	sp->start_ns = start_ns;
	sp->end_ns = end_ns;
	attr_str(sp, "db.system.name", system);
	attr_str(sp, "db.operation.name", name);
	if (error) {
		sp->status = TRACE_STATUS_ERROR;
		sp->status_message = (char *)error;
	}
	baggage_attrs(ex, sp); /* the backend call is made in the request's context */
	span_export(s->tracer, sp);
}
