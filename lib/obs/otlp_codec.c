/*
 * obs/otlp_codec.c -- OTLP request bodies, protobuf and JSON, both ways.
 *
 * Writing builds protobuf-c's structs over our spans (borrowing their
 * strings, never copying them) and packs them once; JSON goes through
 * trace_span_json_scoped and trace_log_json, item by item, joined.
 *
 * Reading walks a received request twice: once to check every field
 * (so a body is taken whole or refused whole, and a sender that gets 400
 * knows none of it was kept), then again to hand each item to the
 * caller.  Both walks are the same code with cb NULL on the first.  The
 * JSON reader accepts what the OTLP/JSON mapping allows a sender to
 * write: 64-bit integers as strings or numbers, enums as numbers or
 * names, ids in hex of either case.
 */
#include "obs/otlp_codec.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <zlib.h>

#include "base/invariant.h"
#include "base/json.h"
#include "obs/otlp_logs.pb-c.h"
#include "obs/otlp_trace.pb-c.h"

/* ------------------------------------------------------------- encoding */

/* The protobuf-c structs of one attribute list; they borrow l's strings. */
struct pb_attrs {
	Dsys__Otlp__KeyValue *kv;
	Dsys__Otlp__AnyValue *av;
	Dsys__Otlp__KeyValue **ptr;
	size_t n;
};

static void pb_attrs_init(struct pb_attrs *p, const struct trace_attrs *l)
{
	p->n = (size_t)l->n;
	p->kv = calloc(p->n + 1, sizeof *p->kv);
	p->av = calloc(p->n + 1, sizeof *p->av);
	p->ptr = calloc(p->n + 1, sizeof *p->ptr);
	INVARIANT(p->kv && p->av && p->ptr);
	for (size_t i = 0; i < p->n; i++) {
		const struct trace_attr *a = &l->a[i];
		Dsys__Otlp__KeyValue *kv = &p->kv[i];
		Dsys__Otlp__AnyValue *av = &p->av[i];
		dsys__otlp__key_value__init(kv);
		dsys__otlp__any_value__init(av);
		kv->key = a->key;
		kv->value = av;
		switch (a->type) {
		case TRACE_ATTR_STRING:
			av->value_case = DSYS__OTLP__ANY_VALUE__VALUE_STRING_VALUE;
			av->string_value = a->v.s;
			break;
		case TRACE_ATTR_INT:
			av->value_case = DSYS__OTLP__ANY_VALUE__VALUE_INT_VALUE;
			av->int_value = a->v.i;
			break;
		case TRACE_ATTR_BOOL:
			av->value_case = DSYS__OTLP__ANY_VALUE__VALUE_BOOL_VALUE;
			av->bool_value = a->v.b;
			break;
		case TRACE_ATTR_DOUBLE:
			av->value_case = DSYS__OTLP__ANY_VALUE__VALUE_DOUBLE_VALUE;
			av->double_value = a->v.d;
			break;
		}
		p->ptr[i] = kv;
	}
}

static void pb_attrs_free(struct pb_attrs *p)
{
	free(p->kv);
	free(p->av);
	free(p->ptr);
}

static char *scope_or(const char *s, const char *dflt)
{
	return (char *)(s ? s : dflt);
}

static void pb_pack(const ProtobufCMessage *m, struct buf *out)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	buf_reserve(out, n);
	size_t w = protobuf_c_message_pack(m, (uint8_t *)out->data + out->len);
	INVARIANT(w == n);
	out->len += n;
}

/* The Resource and InstrumentationScope every request of one item
 * carries, pointing into ra (the resource's attributes, packed). */
static void pb_resource_scope(const struct otlp_item *it, const struct pb_attrs *ra,
                              Dsys__Otlp__Resource *res, Dsys__Otlp__InstrumentationScope *scope)
{
	dsys__otlp__resource__init(res);
	res->n_attributes = ra->n;
	res->attributes = ra->ptr;
	res->dropped_attributes_count = it->resource->dropped;
	dsys__otlp__instrumentation_scope__init(scope);
	scope->name = scope_or(it->scope_name, "dsys");
	scope->version = scope_or(it->scope_version, it->scope_name ? "" : DSYS_VERSION);
}

/* One ResourceSpans of one span, packed and appended: a request of one
 * span; consecutive ones concatenate into a request of many. */
static void pb_span(const struct otlp_item *it, struct buf *out)
{
	const struct trace_span *sp = it->span;
	struct pb_attrs ra, sa;
	pb_attrs_init(&ra, it->resource);
	pb_attrs_init(&sa, &sp->attrs);

	Dsys__Otlp__Resource res;
	Dsys__Otlp__InstrumentationScope scope;
	pb_resource_scope(it, &ra, &res, &scope);

	Dsys__Otlp__Span s = DSYS__OTLP__SPAN__INIT;
	s.trace_id.len = 16;
	s.trace_id.data = (uint8_t *)sp->ctx.trace_id;
	s.span_id.len = 8;
	s.span_id.data = (uint8_t *)sp->ctx.span_id;
	s.trace_state = (char *)sp->ctx.state;
	if (sp->has_parent) {
		s.parent_span_id.len = 8;
		s.parent_span_id.data = (uint8_t *)sp->parent_span_id;
	}
	s.flags = sp->ctx.flags & TRACE_FLAG_SAMPLED;
	s.name = scope_or(sp->name, "");
	s.kind = (Dsys__Otlp__Span__SpanKind)sp->kind;
	s.start_time_unix_nano = sp->start_ns;
	s.end_time_unix_nano = sp->end_ns;
	s.n_attributes = sa.n;
	s.attributes = sa.ptr;
	s.dropped_attributes_count = sp->attrs.dropped;
	s.dropped_events_count = sp->dropped_events;

	Dsys__Otlp__Span__Event ev[TRACE_MAX_EVENTS], *evp[TRACE_MAX_EVENTS];
	struct pb_attrs ea[TRACE_MAX_EVENTS];
	INVARIANT(sp->n_events >= 0 && sp->n_events <= TRACE_MAX_EVENTS);
	for (int i = 0; i < sp->n_events; i++) {
		dsys__otlp__span__event__init(&ev[i]);
		pb_attrs_init(&ea[i], &sp->events[i].attrs);
		ev[i].time_unix_nano = sp->events[i].time_ns;
		ev[i].name = sp->events[i].name;
		ev[i].n_attributes = ea[i].n;
		ev[i].attributes = ea[i].ptr;
		ev[i].dropped_attributes_count = sp->events[i].attrs.dropped;
		evp[i] = &ev[i];
	}
	s.n_events = (size_t)sp->n_events;
	s.events = evp;

	Dsys__Otlp__Status st = DSYS__OTLP__STATUS__INIT;
	st.code = (Dsys__Otlp__Status__StatusCode)sp->status;
	if (sp->status_message)
		st.message = sp->status_message;
	s.status = &st;

	Dsys__Otlp__Span *spans[1] = {&s};
	Dsys__Otlp__ScopeSpans ss = DSYS__OTLP__SCOPE_SPANS__INIT;
	ss.scope = &scope;
	ss.n_spans = 1;
	ss.spans = spans;
	Dsys__Otlp__ScopeSpans *ssp[1] = {&ss};
	Dsys__Otlp__ResourceSpans rs = DSYS__OTLP__RESOURCE_SPANS__INIT;
	rs.resource = &res;
	rs.n_scope_spans = 1;
	rs.scope_spans = ssp;
	Dsys__Otlp__ResourceSpans *rsp[1] = {&rs};
	Dsys__Otlp__ExportTraceServiceRequest req = DSYS__OTLP__EXPORT_TRACE_SERVICE_REQUEST__INIT;
	req.n_resource_spans = 1;
	req.resource_spans = rsp;
	pb_pack(&req.base, out);

	for (int i = 0; i < sp->n_events; i++)
		pb_attrs_free(&ea[i]);
	pb_attrs_free(&sa);
	pb_attrs_free(&ra);
}

static void pb_log(const struct otlp_item *it, struct buf *out)
{
	const struct trace_log *l = it->log;
	struct pb_attrs ra, la;
	pb_attrs_init(&ra, it->resource);
	pb_attrs_init(&la, &l->attrs);

	Dsys__Otlp__Resource res;
	Dsys__Otlp__InstrumentationScope scope;
	pb_resource_scope(it, &ra, &res, &scope);

	Dsys__Otlp__LogRecord r = DSYS__OTLP__LOG_RECORD__INIT;
	r.time_unix_nano = l->time_ns;
	r.observed_time_unix_nano = l->observed_ns;
	r.severity_number = (Dsys__Otlp__SeverityNumber)l->severity;
	if (l->severity_text)
		r.severity_text = l->severity_text;
	Dsys__Otlp__AnyValue body = DSYS__OTLP__ANY_VALUE__INIT;
	if (l->body) {
		body.value_case = DSYS__OTLP__ANY_VALUE__VALUE_STRING_VALUE;
		body.string_value = l->body;
		r.body = &body;
	}
	r.n_attributes = la.n;
	r.attributes = la.ptr;
	r.dropped_attributes_count = l->attrs.dropped;
	if (l->has_span) {
		r.flags = l->flags;
		r.trace_id.len = 16;
		r.trace_id.data = (uint8_t *)l->trace_id;
		r.span_id.len = 8;
		r.span_id.data = (uint8_t *)l->span_id;
	}
	Dsys__Otlp__LogRecord *recs[1] = {&r};
	Dsys__Otlp__ScopeLogs sl = DSYS__OTLP__SCOPE_LOGS__INIT;
	sl.scope = &scope;
	sl.n_log_records = 1;
	sl.log_records = recs;
	Dsys__Otlp__ScopeLogs *slp[1] = {&sl};
	Dsys__Otlp__ResourceLogs rl = DSYS__OTLP__RESOURCE_LOGS__INIT;
	rl.resource = &res;
	rl.n_scope_logs = 1;
	rl.scope_logs = slp;
	Dsys__Otlp__ResourceLogs *rlp[1] = {&rl};
	Dsys__Otlp__ExportLogsServiceRequest req = DSYS__OTLP__EXPORT_LOGS_SERVICE_REQUEST__INIT;
	req.n_resource_logs = 1;
	req.resource_logs = rlp;
	pb_pack(&req.base, out);
	pb_attrs_free(&la);
	pb_attrs_free(&ra);
}

static const char json_head_spans[] = "{\"resourceSpans\":[";
static const char json_head_logs[] = "{\"resourceLogs\":[";

void otlp_codec_encode(enum otlp_encoding enc, const struct otlp_item *items, size_t n,
                       struct buf *out)
{
	if (enc == OTLP_PROTOBUF) {
		for (size_t i = 0; i < n; i++)
			(items[i].span ? pb_span : pb_log)(&items[i], out);
		return;
	}
	bool spans = n == 0 || items[0].span;
	buf_puts(out, spans ? json_head_spans : json_head_logs);
	struct buf one = BUF_INIT;
	size_t head = strlen(spans ? json_head_spans : json_head_logs);
	for (size_t i = 0; i < n; i++) {
		const struct otlp_item *it = &items[i];
		INVARIANT((it->span != NULL) == spans);
		buf_reset(&one);
		const char *sn = scope_or(it->scope_name, "dsys");
		const char *sv = it->scope_name ? it->scope_version : DSYS_VERSION;
		if (it->span)
			trace_span_json_scoped(it->span, it->resource, sn, sv, &one);
		else
			trace_log_json(it->log, it->resource, sn, sv, &one);
		INVARIANT(one.len > head + 2);
		if (i)
			buf_putc(out, ',');
		buf_append(out, one.data + head, one.len - head - 2);
	}
	buf_puts(out, "]}");
	buf_free(&one);
}

int otlp_codec_json_merge(enum otlp_signal sig, const struct buf *parts, size_t n, struct buf *out)
{
	const char *h = sig == OTLP_SIGNAL_TRACES ? json_head_spans : json_head_logs;
	size_t hl = strlen(h);
	for (size_t i = 0; i < n; i++)
		if (parts[i].len < hl + 2 || memcmp(parts[i].data, h, hl) ||
		    memcmp(parts[i].data + parts[i].len - 2, "]}", 2))
			return -EINVAL;
	buf_puts(out, h);
	bool first = true;
	for (size_t i = 0; i < n; i++) {
		size_t inner = parts[i].len - hl - 2;
		if (!inner)
			continue;
		if (!first)
			buf_putc(out, ',');
		buf_append(out, parts[i].data + hl, inner);
		first = false;
	}
	buf_puts(out, "]}");
	return 0;
}

/* ------------------------------------------------------------- decoding */

struct dec {
	otlp_item_cb cb;   /* NULL on the checking walk */
	void *ud;
	char *err;
	size_t errlen;
	long items;
	/* scratch, reused for every item, and big (a span is ~50 KiB) */
	struct trace_attrs res;
	struct trace_span span;
	struct trace_log log;
};

static int fail(struct dec *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct dec *d, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(d->err, d->errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* Empty the scratch for the next item.  Field by field, not memset: a
 * struct trace_span is some 50 KiB of bounded arrays, and clearing all of
 * it per span was most of what ingesting cost. */
static void scratch_reset(struct dec *d)
{
	struct trace_span *sp = &d->span;
	trace_span_free(sp); /* names, attributes, events */
	sp->ctx.state[0] = '\0';
	sp->ctx.flags = 0;
	memset(sp->parent_span_id, 0, sizeof sp->parent_span_id);
	sp->has_parent = false;
	sp->kind = TRACE_KIND_UNSPECIFIED;
	sp->start_ns = sp->end_ns = 0;
	sp->dropped_events = 0;
	sp->status = TRACE_STATUS_UNSET;
	struct trace_log *l = &d->log;
	trace_log_free(l);
	l->time_ns = l->observed_ns = 0;
	l->severity = 0;
	l->has_span = false;
	l->flags = 0;
}

/* Deliver the item in the scratch (or only count it on the first walk). */
static int deliver(struct dec *d, bool span, const char *sn, const char *sv)
{
	if (++d->items > OTLP_CODEC_MAX_ITEMS)
		return fail(d, "more than %d items in one request", OTLP_CODEC_MAX_ITEMS);
	if (!d->cb)
		return 0;
	struct otlp_item it = {.resource = &d->res, .scope_name = sn, .scope_version = sv};
	if (span)
		it.span = &d->span;
	else
		it.log = &d->log;
	int rc = d->cb(d->ud, &it);
	return rc < 0 ? rc : 0;
}

/* ---- protobuf */

static void pb_value_attr(struct trace_attrs *l, const char *key, const Dsys__Otlp__AnyValue *v);

/* An AnyValue we do not model, as JSON text in a string */
static void pb_value_json(struct json_writer *w, const Dsys__Otlp__AnyValue *v, int depth)
{
	char hex[2 * 64 + 1];
	if (!v || depth > 8) {
		json_null(w);
		return;
	}
	switch (v->value_case) {
	case DSYS__OTLP__ANY_VALUE__VALUE_STRING_VALUE:
		json_str(w, v->string_value);
		break;
	case DSYS__OTLP__ANY_VALUE__VALUE_BOOL_VALUE:
		json_bool(w, v->bool_value);
		break;
	case DSYS__OTLP__ANY_VALUE__VALUE_INT_VALUE:
		json_i64(w, v->int_value);
		break;
	case DSYS__OTLP__ANY_VALUE__VALUE_DOUBLE_VALUE:
		json_double(w, v->double_value);
		break;
	case DSYS__OTLP__ANY_VALUE__VALUE_BYTES_VALUE: {
		struct buf b = BUF_INIT;
		for (size_t i = 0; i < v->bytes_value.len; i += 64) {
			size_t k = v->bytes_value.len - i < 64 ? v->bytes_value.len - i : 64;
			trace_hex(v->bytes_value.data + i, k, hex);
			buf_append(&b, hex, 2 * k);
		}
		json_strn(w, b.data ? b.data : "", b.len);
		buf_free(&b);
		break;
	}
	case DSYS__OTLP__ANY_VALUE__VALUE_ARRAY_VALUE:
		json_arr_begin(w);
		if (v->array_value)
			for (size_t i = 0; i < v->array_value->n_values; i++)
				pb_value_json(w, v->array_value->values[i], depth + 1);
		json_arr_end(w);
		break;
	case DSYS__OTLP__ANY_VALUE__VALUE_KVLIST_VALUE:
		json_obj_begin(w);
		if (v->kvlist_value)
			for (size_t i = 0; i < v->kvlist_value->n_values; i++) {
				const Dsys__Otlp__KeyValue *kv = v->kvlist_value->values[i];
				json_key(w, kv->key);
				pb_value_json(w, kv->value, depth + 1);
			}
		json_obj_end(w);
		break;
	default:
		json_null(w);
	}
}

static void pb_value_attr(struct trace_attrs *l, const char *key, const Dsys__Otlp__AnyValue *v)
{
	if (!v) {
		trace_attr_set_str(l, key, "");
		return;
	}
	switch (v->value_case) {
	case DSYS__OTLP__ANY_VALUE__VALUE_STRING_VALUE:
		trace_attr_set_str(l, key, v->string_value);
		return;
	case DSYS__OTLP__ANY_VALUE__VALUE_BOOL_VALUE:
		trace_attr_set_bool(l, key, v->bool_value);
		return;
	case DSYS__OTLP__ANY_VALUE__VALUE_INT_VALUE:
		trace_attr_set_int(l, key, v->int_value);
		return;
	case DSYS__OTLP__ANY_VALUE__VALUE_DOUBLE_VALUE:
		trace_attr_set_double(l, key, v->double_value);
		return;
	default: {
		struct buf b = BUF_INIT;
		struct json_writer w;
		json_writer_init(&w, &b);
		pb_value_json(&w, v, 0);
		buf_putc(&b, '\0');
		trace_attr_set_str(l, key, b.data);
		buf_free(&b);
	}
	}
}

static void pb_attrs_read(struct trace_attrs *l, Dsys__Otlp__KeyValue **kv, size_t n, uint32_t dropped)
{
	for (size_t i = 0; i < n; i++)
		pb_value_attr(l, kv[i]->key, kv[i]->value);
	l->dropped += dropped;
}

static int pb_id(struct dec *d, const ProtobufCBinaryData *b, size_t want, bool optional,
                 uint8_t *out, const char *what)
{
	if (optional && b->len == 0)
		return 0;
	if (b->len != want)
		return fail(d, "%s is %zu bytes, expected %zu", what, b->len, want);
	memcpy(out, b->data, want);
	return 1;
}

/* The resource of the entries that follow, in d->res */
static void pb_resource(struct dec *d, const Dsys__Otlp__Resource *r)
{
	trace_attrs_free(&d->res);
	memset(&d->res, 0, sizeof d->res);
	if (r && d->cb)
		pb_attrs_read(&d->res, r->attributes, r->n_attributes, r->dropped_attributes_count);
}

static void pb_span_fill(struct trace_span *sp, const Dsys__Otlp__Span *p)
{
	snprintf(sp->ctx.state, sizeof sp->ctx.state, "%s", p->trace_state ? p->trace_state : "");
	sp->ctx.flags = (uint8_t)(p->flags & 0xff);
	sp->name = strdup(p->name ? p->name : "");
	INVARIANT(sp->name != NULL);
	sp->kind = p->kind >= 0 && p->kind <= 5 ? (enum trace_kind)p->kind : TRACE_KIND_UNSPECIFIED;
	sp->start_ns = p->start_time_unix_nano;
	sp->end_ns = p->end_time_unix_nano;
	pb_attrs_read(&sp->attrs, p->attributes, p->n_attributes, p->dropped_attributes_count);
	for (size_t e = 0; e < p->n_events; e++) {
		const Dsys__Otlp__Span__Event *pe = p->events[e];
		struct trace_attrs ea = {0};
		pb_attrs_read(&ea, pe->attributes, pe->n_attributes, pe->dropped_attributes_count);
		/* time 0 would mean "now" to trace_span_event: keep the sender's 0 as 1 ns */
		trace_span_event(sp, pe->name ? pe->name : "", pe->time_unix_nano ? pe->time_unix_nano : 1, &ea);
		trace_attrs_free(&ea);
	}
	sp->dropped_events += p->dropped_events_count;
	if (p->status) {
		int c = p->status->code;
		sp->status = c >= 0 && c <= 2 ? (enum trace_status)c : TRACE_STATUS_UNSET;
		if (p->status->message && *p->status->message)
			sp->status_message = strdup(p->status->message);
	}
}

static int pb_traces(struct dec *d, const Dsys__Otlp__ExportTraceServiceRequest *req)
{
	for (size_t r = 0; r < req->n_resource_spans; r++) {
		const Dsys__Otlp__ResourceSpans *rs = req->resource_spans[r];
		pb_resource(d, rs->resource);
		for (size_t s = 0; s < rs->n_scope_spans; s++) {
			const Dsys__Otlp__ScopeSpans *ss = rs->scope_spans[s];
			const char *sn = ss->scope ? ss->scope->name : NULL;
			const char *sv = ss->scope ? ss->scope->version : NULL;
			for (size_t i = 0; i < ss->n_spans; i++) {
				const Dsys__Otlp__Span *p = ss->spans[i];
				struct trace_span *sp = &d->span;
				int rc;
				scratch_reset(d);
				if ((rc = pb_id(d, &p->trace_id, 16, false, sp->ctx.trace_id, "traceId")) < 0 ||
				    (rc = pb_id(d, &p->span_id, 8, false, sp->ctx.span_id, "spanId")) < 0 ||
				    (rc = pb_id(d, &p->parent_span_id, 8, true, sp->parent_span_id,
				                "parentSpanId")) < 0)
					return rc;
				sp->has_parent = rc == 1;
				if (p->trace_state && strlen(p->trace_state) >= sizeof sp->ctx.state)
					return fail(d, "traceState is longer than %d bytes", TRACE_STATE_MAX - 1);
				if (d->cb)
					pb_span_fill(sp, p);
				if ((rc = deliver(d, true, sn, sv)) < 0)
					return rc;
			}
		}
	}
	return 0;
}

static int pb_logs(struct dec *d, const Dsys__Otlp__ExportLogsServiceRequest *req)
{
	for (size_t r = 0; r < req->n_resource_logs; r++) {
		const Dsys__Otlp__ResourceLogs *rl = req->resource_logs[r];
		pb_resource(d, rl->resource);
		for (size_t s = 0; s < rl->n_scope_logs; s++) {
			const Dsys__Otlp__ScopeLogs *sl = rl->scope_logs[s];
			const char *sn = sl->scope ? sl->scope->name : NULL;
			const char *sv = sl->scope ? sl->scope->version : NULL;
			for (size_t i = 0; i < sl->n_log_records; i++) {
				const Dsys__Otlp__LogRecord *p = sl->log_records[i];
				struct trace_log *l = &d->log;
				int rc, a, b;
				scratch_reset(d);
				if ((a = pb_id(d, &p->trace_id, 16, true, l->trace_id, "traceId")) < 0)
					return a;
				if ((b = pb_id(d, &p->span_id, 8, true, l->span_id, "spanId")) < 0)
					return b;
				l->has_span = a == 1 && b == 1;
				if (d->cb) {
					l->time_ns = p->time_unix_nano;
					l->observed_ns = p->observed_time_unix_nano;
					l->severity = p->severity_number >= 0 && p->severity_number <= 24
					                      ? (int)p->severity_number : 0;
					if (p->severity_text && *p->severity_text)
						trace_log_set(&l->severity_text, p->severity_text);
					if (p->body && p->body->value_case == DSYS__OTLP__ANY_VALUE__VALUE_STRING_VALUE) {
						trace_log_set(&l->body, p->body->string_value);
					} else if (p->body) {
						struct buf bb = BUF_INIT;
						struct json_writer w;
						json_writer_init(&w, &bb);
						pb_value_json(&w, p->body, 0);
						buf_putc(&bb, '\0');
						trace_log_set(&l->body, bb.data);
						buf_free(&bb);
					}
					pb_attrs_read(&l->attrs, p->attributes, p->n_attributes, p->dropped_attributes_count);
					l->flags = (uint8_t)(p->flags & 0xff);
				}
				if ((rc = deliver(d, false, sn, sv)) < 0)
					return rc;
			}
		}
	}
	return 0;
}

/* ---- JSON */

static bool hexval(char c, int *v)
{
	if (c >= '0' && c <= '9')
		*v = c - '0';
	else if (c >= 'a' && c <= 'f')
		*v = c - 'a' + 10;
	else if (c >= 'A' && c <= 'F')
		*v = c - 'A' + 10;
	else
		return false;
	return true;
}

/* An id field: absent (and optional) -> 0; hex of want bytes -> 1 */
static int js_id(struct dec *d, const cJSON *o, const char *key, size_t want, bool optional,
                 uint8_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!v || (optional && cJSON_IsString(v) && !*v->valuestring))
		return optional ? 0 : fail(d, "%s is missing", key);
	if (!cJSON_IsString(v) || strlen(v->valuestring) != 2 * want)
		return fail(d, "%s is not %zu hex digits", key, 2 * want);
	for (size_t i = 0; i < want; i++) {
		int h, l;
		if (!hexval(v->valuestring[2 * i], &h) || !hexval(v->valuestring[2 * i + 1], &l))
			return fail(d, "%s is not %zu hex digits", key, 2 * want);
		out[i] = (uint8_t)(h << 4 | l);
	}
	return 1;
}

/* A 64-bit unsigned field, string or number; absent -> 0 */
static int js_u64(struct dec *d, const cJSON *o, const char *key, uint64_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	*out = 0;
	if (!v)
		return 0;
	if (cJSON_IsString(v)) {
		int64_t i;
		const char *s = v->valuestring;
		/* above INT64_MAX: read by hand */
		uint64_t u = 0;
		size_t n = strlen(s);
		if (n == 0 || n > 20)
			return fail(d, "%s is not an unsigned 64-bit integer", key);
		for (size_t k = 0; k < n; k++) {
			if (s[k] < '0' || s[k] > '9' || u > (UINT64_MAX - (uint64_t)(s[k] - '0')) / 10)
				return fail(d, "%s is not an unsigned 64-bit integer", key);
			u = u * 10 + (uint64_t)(s[k] - '0');
		}
		(void)i;
		*out = u;
		return 0;
	}
	if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 18446744073709551616.0 &&
	    v->valuedouble == (double)(uint64_t)v->valuedouble) {
		*out = (uint64_t)v->valuedouble;
		return 0;
	}
	return fail(d, "%s is not an unsigned 64-bit integer", key);
}

/* An enum or small integer field: a number, or one of names[] (index = value) */
static int js_enum(struct dec *d, const cJSON *o, const char *key, const char *const *names,
                   int n, int max, int *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	*out = 0;
	if (!v)
		return 0;
	if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble <= max &&
	    v->valuedouble == (int)v->valuedouble) {
		*out = (int)v->valuedouble;
		return 0;
	}
	if (cJSON_IsString(v) && names)
		for (int i = 0; i < n; i++)
			if (names[i] && !strcmp(v->valuestring, names[i])) {
				*out = i;
				return 0;
			}
	return fail(d, "%s is not a valid value", key);
}

static const char *js_str(struct dec *d, const cJSON *o, const char *key, int *rc)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!v)
		return NULL;
	if (!cJSON_IsString(v)) {
		*rc = fail(d, "%s is not a string", key);
		return NULL;
	}
	return v->valuestring;
}

/* An array field: absent -> NULL with *rc 0; not an array -> *rc < 0 */
static const cJSON *js_arr(struct dec *d, const cJSON *o, const char *key, int *rc)
{
	const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
	if (!v || cJSON_IsNull(v))
		return NULL;
	if (!cJSON_IsArray(v)) {
		*rc = fail(d, "%s is not an array", key);
		return NULL;
	}
	return v;
}

static int js_value_attr(struct dec *d, struct trace_attrs *l, const char *key, const cJSON *v)
{
	const cJSON *x;
	if (!v || cJSON_IsNull(v) || !cJSON_IsObject(v) || !v->child) {
		if (v && !cJSON_IsNull(v) && !cJSON_IsObject(v))
			return fail(d, "value of attribute '%s' is not an object", key);
		if (l)
			trace_attr_set_str(l, key, "");
		return 0;
	}
	if ((x = cJSON_GetObjectItemCaseSensitive(v, "stringValue"))) {
		if (!cJSON_IsString(x))
			return fail(d, "stringValue of '%s' is not a string", key);
		if (l)
			trace_attr_set_str(l, key, x->valuestring);
	} else if ((x = cJSON_GetObjectItemCaseSensitive(v, "intValue"))) {
		int64_t i;
		if (cJSON_IsString(x)) {
			if (json_parse_i64(x->valuestring, strlen(x->valuestring), &i) < 0)
				return fail(d, "intValue of '%s' is not a 64-bit integer", key);
		} else if (cJSON_IsNumber(x) && x->valuedouble == (double)(int64_t)x->valuedouble &&
		           x->valuedouble > -9.3e18 && x->valuedouble < 9.3e18) {
			i = (int64_t)x->valuedouble;
		} else {
			return fail(d, "intValue of '%s' is not a 64-bit integer", key);
		}
		if (l)
			trace_attr_set_int(l, key, i);
	} else if ((x = cJSON_GetObjectItemCaseSensitive(v, "boolValue"))) {
		if (!cJSON_IsBool(x))
			return fail(d, "boolValue of '%s' is not a boolean", key);
		if (l)
			trace_attr_set_bool(l, key, cJSON_IsTrue(x));
	} else if ((x = cJSON_GetObjectItemCaseSensitive(v, "doubleValue"))) {
		double dv;
		if (cJSON_IsNumber(x))
			dv = x->valuedouble;
		else if (cJSON_IsString(x) && !strcmp(x->valuestring, "NaN"))
			dv = NAN;
		else if (cJSON_IsString(x) && !strcmp(x->valuestring, "Infinity"))
			dv = INFINITY;
		else if (cJSON_IsString(x) && !strcmp(x->valuestring, "-Infinity"))
			dv = -INFINITY;
		else
			return fail(d, "doubleValue of '%s' is not a number", key);
		if (l)
			trace_attr_set_double(l, key, dv);
	} else if ((x = cJSON_GetObjectItemCaseSensitive(v, "arrayValue")) ||
	           (x = cJSON_GetObjectItemCaseSensitive(v, "kvlistValue")) ||
	           (x = cJSON_GetObjectItemCaseSensitive(v, "bytesValue"))) {
		/* kept as the JSON text the sender wrote */
		if (l) {
			char *t = cJSON_PrintUnformatted(x);
			INVARIANT(t != NULL);
			trace_attr_set_str(l, key, t);
			cJSON_free(t);
		}
	} else {
		return fail(d, "value of attribute '%s' has no known type", key);
	}
	return 0;
}

static int js_attrs(struct dec *d, const cJSON *o, struct trace_attrs *l)
{
	int rc = 0;
	const cJSON *arr = js_arr(d, o, "attributes", &rc), *item;
	if (rc < 0)
		return rc;
	cJSON_ArrayForEach(item, arr) {
		int r2 = 0;
		const char *key = cJSON_IsObject(item) ? js_str(d, item, "key", &r2) : NULL;
		if (r2 < 0)
			return r2;
		if (!key)
			return fail(d, "an attribute has no key");
		if ((rc = js_value_attr(d, l, key, cJSON_GetObjectItemCaseSensitive(item, "value"))) < 0)
			return rc;
	}
	uint64_t dropped;
	if ((rc = js_u64(d, o, "droppedAttributesCount", &dropped)) < 0)
		return rc;
	if (l)
		l->dropped += (uint32_t)(dropped > UINT32_MAX ? UINT32_MAX : dropped);
	return 0;
}

static const char *const kind_names[] = {
	"SPAN_KIND_UNSPECIFIED", "SPAN_KIND_INTERNAL", "SPAN_KIND_SERVER",
	"SPAN_KIND_CLIENT", "SPAN_KIND_PRODUCER", "SPAN_KIND_CONSUMER",
};
static const char *const status_names[] = {"STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"};

static int js_span(struct dec *d, const cJSON *p)
{
	struct trace_span *sp = &d->span;
	struct trace_attrs *fill_attrs = d->cb ? &sp->attrs : NULL;
	int rc = 0, k;
	uint64_t u;
	if (!cJSON_IsObject(p))
		return fail(d, "a span is not an object");
	if ((rc = js_id(d, p, "traceId", 16, false, sp->ctx.trace_id)) < 0 ||
	    (rc = js_id(d, p, "spanId", 8, false, sp->ctx.span_id)) < 0 ||
	    (rc = js_id(d, p, "parentSpanId", 8, true, sp->parent_span_id)) < 0)
		return rc;
	sp->has_parent = rc == 1;
	rc = 0;
	const char *ts = js_str(d, p, "traceState", &rc);
	const char *name = js_str(d, p, "name", &rc);
	if (rc < 0)
		return rc;
	if (ts && strlen(ts) >= sizeof sp->ctx.state)
		return fail(d, "traceState is longer than %d bytes", TRACE_STATE_MAX - 1);
	snprintf(sp->ctx.state, sizeof sp->ctx.state, "%s", ts ? ts : "");
	if ((rc = js_u64(d, p, "flags", &u)) < 0)
		return rc;
	sp->ctx.flags = (uint8_t)(u & 0xff);
	if (d->cb) {
		sp->name = strdup(name ? name : "");
		INVARIANT(sp->name != NULL);
	}
	if ((rc = js_enum(d, p, "kind", kind_names, 6, 5, &k)) < 0)
		return rc;
	sp->kind = (enum trace_kind)k;
	if ((rc = js_u64(d, p, "startTimeUnixNano", &sp->start_ns)) < 0 ||
	    (rc = js_u64(d, p, "endTimeUnixNano", &sp->end_ns)) < 0 ||
	    (rc = js_attrs(d, p, fill_attrs)) < 0)
		return rc;
	const cJSON *evs = js_arr(d, p, "events", &rc), *e;
	if (rc < 0)
		return rc;
	cJSON_ArrayForEach(e, evs) {
		struct trace_attrs ea = {0};
		if (!cJSON_IsObject(e))
			return fail(d, "an event is not an object");
		const char *en = js_str(d, e, "name", &rc);
		if (rc < 0 || (rc = js_u64(d, e, "timeUnixNano", &u)) < 0 ||
		    (rc = js_attrs(d, e, d->cb ? &ea : NULL)) < 0) {
			trace_attrs_free(&ea);
			return rc;
		}
		if (d->cb)
			trace_span_event(sp, en ? en : "", u ? u : 1, &ea);
		trace_attrs_free(&ea);
	}
	if ((rc = js_u64(d, p, "droppedEventsCount", &u)) < 0)
		return rc;
	sp->dropped_events += (uint32_t)(u > UINT32_MAX ? UINT32_MAX : u);
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(p, "status");
	if (st && !cJSON_IsNull(st)) {
		if (!cJSON_IsObject(st))
			return fail(d, "status is not an object");
		const char *msg = js_str(d, st, "message", &rc);
		if (rc < 0 || (rc = js_enum(d, st, "code", status_names, 3, 2, &k)) < 0)
			return rc;
		sp->status = (enum trace_status)k;
		if (d->cb && msg && *msg)
			sp->status_message = strdup(msg);
	}
	return 0;
}

static const char *const sev_names[] = {
	"SEVERITY_NUMBER_UNSPECIFIED", "SEVERITY_NUMBER_TRACE", "SEVERITY_NUMBER_TRACE2",
	"SEVERITY_NUMBER_TRACE3", "SEVERITY_NUMBER_TRACE4", "SEVERITY_NUMBER_DEBUG",
	"SEVERITY_NUMBER_DEBUG2", "SEVERITY_NUMBER_DEBUG3", "SEVERITY_NUMBER_DEBUG4",
	"SEVERITY_NUMBER_INFO", "SEVERITY_NUMBER_INFO2", "SEVERITY_NUMBER_INFO3",
	"SEVERITY_NUMBER_INFO4", "SEVERITY_NUMBER_WARN", "SEVERITY_NUMBER_WARN2",
	"SEVERITY_NUMBER_WARN3", "SEVERITY_NUMBER_WARN4", "SEVERITY_NUMBER_ERROR",
	"SEVERITY_NUMBER_ERROR2", "SEVERITY_NUMBER_ERROR3", "SEVERITY_NUMBER_ERROR4",
	"SEVERITY_NUMBER_FATAL", "SEVERITY_NUMBER_FATAL2", "SEVERITY_NUMBER_FATAL3",
	"SEVERITY_NUMBER_FATAL4",
};

static int js_log(struct dec *d, const cJSON *p)
{
	struct trace_log *l = &d->log;
	int rc = 0, a, b;
	uint64_t u;
	if (!cJSON_IsObject(p))
		return fail(d, "a log record is not an object");
	if ((a = js_id(d, p, "traceId", 16, true, l->trace_id)) < 0)
		return a;
	if ((b = js_id(d, p, "spanId", 8, true, l->span_id)) < 0)
		return b;
	l->has_span = a == 1 && b == 1;
	if ((rc = js_u64(d, p, "timeUnixNano", &l->time_ns)) < 0 ||
	    (rc = js_u64(d, p, "observedTimeUnixNano", &l->observed_ns)) < 0 ||
	    (rc = js_enum(d, p, "severityNumber", sev_names, 25, 24, &l->severity)) < 0 ||
	    (rc = js_u64(d, p, "flags", &u)) < 0)
		return rc;
	l->flags = (uint8_t)(u & 0xff);
	const char *st = js_str(d, p, "severityText", &rc);
	if (rc < 0)
		return rc;
	const cJSON *body = cJSON_GetObjectItemCaseSensitive(p, "body");
	struct trace_attrs tmp = {0};
	if (body && !cJSON_IsNull(body) && (rc = js_value_attr(d, &tmp, "body", body)) < 0) {
		trace_attrs_free(&tmp);
		return rc;
	}
	if (d->cb) {
		if (st && *st)
			trace_log_set(&l->severity_text, st);
		if (tmp.n == 1 && tmp.a[0].type == TRACE_ATTR_STRING) {
			trace_log_set(&l->body, tmp.a[0].v.s);
		} else if (tmp.n == 1) {
			/* a body of another type: the JSON text the sender wrote */
			char *t = cJSON_PrintUnformatted(body);
			INVARIANT(t != NULL);
			trace_log_set(&l->body, t);
			cJSON_free(t);
		}
	}
	trace_attrs_free(&tmp);
	return js_attrs(d, p, d->cb ? &l->attrs : NULL);
}

static int js_walk(struct dec *d, const cJSON *root, bool spans)
{
	int rc = 0;
	if (!cJSON_IsObject(root))
		return fail(d, "the body is not a JSON object");
	const cJSON *rarr = js_arr(d, root, spans ? "resourceSpans" : "resourceLogs", &rc), *r;
	if (rc < 0)
		return rc;
	cJSON_ArrayForEach(r, rarr) {
		if (!cJSON_IsObject(r))
			return fail(d, "a resource entry is not an object");
		trace_attrs_free(&d->res);
		memset(&d->res, 0, sizeof d->res);
		const cJSON *res = cJSON_GetObjectItemCaseSensitive(r, "resource");
		if (res && !cJSON_IsNull(res)) {
			if (!cJSON_IsObject(res))
				return fail(d, "resource is not an object");
			if ((rc = js_attrs(d, res, d->cb ? &d->res : NULL)) < 0)
				return rc;
		}
		const cJSON *sarr = js_arr(d, r, spans ? "scopeSpans" : "scopeLogs", &rc), *s;
		if (rc < 0)
			return rc;
		cJSON_ArrayForEach(s, sarr) {
			if (!cJSON_IsObject(s))
				return fail(d, "a scope entry is not an object");
			const cJSON *scope = cJSON_GetObjectItemCaseSensitive(s, "scope");
			const char *sn = NULL, *sv = NULL;
			if (scope && !cJSON_IsNull(scope)) {
				if (!cJSON_IsObject(scope))
					return fail(d, "scope is not an object");
				sn = js_str(d, scope, "name", &rc);
				sv = js_str(d, scope, "version", &rc);
				if (rc < 0)
					return rc;
			}
			const cJSON *iarr = js_arr(d, s, spans ? "spans" : "logRecords", &rc), *it;
			if (rc < 0)
				return rc;
			cJSON_ArrayForEach(it, iarr) {
				scratch_reset(d);
				if ((rc = spans ? js_span(d, it) : js_log(d, it)) < 0)
					return rc;
				if ((rc = deliver(d, spans, sn, sv)) < 0)
					return rc;
			}
		}
	}
	return 0;
}

/* The thread's cached scratch is freed when the thread exits (a key's
 * destructor): the collector's loop threads and its forwarder come and
 * go with the server, and each holds one. */
static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void cache_free(void *p)
{
	free(p); /* scratch_reset left it empty: no strings inside */
}

static void cache_key_create(void)
{
	INVARIANT(pthread_key_create(&cache_key, cache_free) == 0);
}

long otlp_codec_decode(enum otlp_signal sig, enum otlp_encoding enc, const uint8_t *body,
                       size_t len, otlp_item_cb cb, void *ud, char *err, size_t errlen)
{
	/* one scratch per thread, kept: a collector decodes on every request,
	 * and a fresh calloc of a ~70 KiB struct each time was a page-zeroing
	 * cost of its own; scratch_reset leaves it empty after every use */
	static __thread struct dec *cached;
	static __thread bool busy; /* a callback that decodes in turn gets its own */
	bool own = busy;
	if (!cached) {
		cached = calloc(1, sizeof *cached);
		INVARIANT(cached != NULL);
		pthread_once(&cache_once, cache_key_create);
		pthread_setspecific(cache_key, cached);
	}
	struct dec *d = cached;
	if (own) {
		d = calloc(1, sizeof *d);
		INVARIANT(d != NULL);
	}
	busy = true;
	d->err = err;
	d->errlen = errlen;
	d->ud = ud;
	long rc = 0;
	ProtobufCMessage *msg = NULL;
	cJSON *root = NULL;
	if (enc == OTLP_PROTOBUF) {
		msg = sig == OTLP_SIGNAL_TRACES
		              ? (ProtobufCMessage *)dsys__otlp__export_trace_service_request__unpack(NULL, len, body)
		              : (ProtobufCMessage *)dsys__otlp__export_logs_service_request__unpack(NULL, len, body);
		if (!msg)
			rc = fail(d, "the body is not a valid protobuf %s",
			          sig == OTLP_SIGNAL_TRACES ? "ExportTraceServiceRequest" : "ExportLogsServiceRequest");
	} else {
		root = cJSON_ParseWithLengthOpts((const char *)body, len, NULL, 0);
		if (!root)
			rc = fail(d, "the body is not valid JSON");
	}
	for (int pass = 0; pass < 2 && rc >= 0; pass++) {
		d->cb = pass ? cb : NULL;
		d->items = 0;
		if (msg)
			rc = sig == OTLP_SIGNAL_TRACES
			             ? pb_traces(d, (Dsys__Otlp__ExportTraceServiceRequest *)msg)
			             : pb_logs(d, (Dsys__Otlp__ExportLogsServiceRequest *)msg);
		else
			rc = js_walk(d, root, sig == OTLP_SIGNAL_TRACES);
		if (!cb)
			break;
	}
	if (rc >= 0)
		rc = d->items;
	if (msg)
		protobuf_c_message_free_unpacked(msg, NULL);
	cJSON_Delete(root);
	scratch_reset(d);
	trace_attrs_free(&d->res);
	d->items = 0;
	d->cb = NULL;
	d->ud = NULL;
	if (own)
		free(d);
	else
		busy = false;
	return rc;
}

int otlp_codec_gunzip(const void *in, size_t n, uint64_t max, struct buf *out)
{
	z_stream zs;
	memset(&zs, 0, sizeof zs);
	if (n > UINT32_MAX)
		return -EFBIG;
	if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
		return -ENOMEM;
	zs.next_in = (Bytef *)in;
	zs.avail_in = (uInt)n;
	int rc = 0;
	for (;;) {
		buf_reserve(out, 65536);
		zs.next_out = (Bytef *)out->data + out->len;
		zs.avail_out = 65536;
		int z = inflate(&zs, Z_NO_FLUSH);
		out->len += 65536 - zs.avail_out;
		if (out->len > max) {
			rc = -EFBIG;
			break;
		}
		if (z == Z_STREAM_END) {
			rc = zs.avail_in ? -EINVAL : 0; /* bytes after the stream */
			break;
		}
		/* an error, or input used up with room left: a stream cut short */
		if (z != Z_OK || (zs.avail_in == 0 && zs.avail_out != 0)) {
			rc = -EINVAL;
			break;
		}
	}
	inflateEnd(&zs);
	return rc;
}
