/*
 * serve.c -- dsys-counter serve: the counter service on lib/http/server.
 *
 * Routes: POST /incr (one object or an array of them), GET/PUT/DELETE
 * /counters/KEY, GET /counters?prefix=P (JSON lines), /health (which
 * reads a key, so it says whether the store answers), /metrics.
 *
 * Each loop thread attaches its own backend handle (counter_attach) in the
 * server's thread init hook.  A request is parsed in place (the key
 * tokens point into the body, which stays valid until the answer) with
 * json_scan_object: no cJSON, no allocation.  Every item of a request is
 * checked before any is applied, so bad input changes nothing.  The
 * request's state lives in a struct creq from a per-thread freelist; it
 * counts the backend callbacks still to come (plus one guard for the
 * issuing loop itself, since mem: answers inside the call) and answers
 * when the count reaches zero.  The gRPC API (dsys.counter.v1.Counter,
 * lib/counter/counter.proto) shares that machinery: its handlers unpack
 * a protobuf request instead of JSON, mark the creq, and answer() frames
 * a CounterValue or a gRPC status instead of a JSON body; List streams
 * one message per key as the store hands them over.  With redis://, all the INCRBYs issued in
 * one loop iteration -- every request of every connection that became
 * readable -- leave in one write: that is the coalescing.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "cli/cli.h"
#include "dsys-counter.h"
#include "counter/counter.pb-c.h"
#include "http/compress.h"
#include "http/grpc.h"
#include "http/route.h"
#include "http/server.h"
#include "http/trace.h"
#include "http/url.h"
#include "base/invariant.h"
#include "base/json.h"
#include "base/log.h"
#include "obs/metrics.h"

enum op { OP_INCR = 1, OP_GET, OP_SET, OP_DEL, OP_LIST, OP_HEALTH };

/* What /health reads to probe the store: any answer but "unreachable"
 * (a value, not found, not an integer) means the store is there. */
#define HEALTH_KEY "dsys-counter:health"
#define BACKEND_LOG_INTERVAL_MS 1000

struct citem {
	struct creq *req;
	struct json_token key;        /* raw token in the body (POST /incr) */
	int64_t by;
	int err;
	int64_t value;
};

struct creq {
	struct creq *next;            /* freelist */
	struct http_exchange *ex;
	struct sthread *t;
	enum op op;
	uint64_t start_ns;            /* uv_hrtime() when taken: backend round trips */
	bool array;
	unsigned n, pending;
	struct citem one;
	struct citem *items;          /* n > 1: grown to the peak, kept */
	unsigned cap;
	char key[COUNTER_MAX_KEY + 1]; /* decoded key of /counters/KEY, or the prefix
	                                 (NUL-terminated for gRPC calls) */
	size_t key_len;
	int list_err;
	bool grpc;                    /* a gRPC call: answer() frames protobuf */
	bool streaming;               /* gRPC List: the stream has begun */
	struct buf list;              /* list answers */
	struct buf inflated;          /* a gzip body, inflated: ex->body points here */
};

struct app {
	struct counter_store *store;
	const struct config *cfg;
	struct metrics_counter *backend_errors;   /* answers 503 (unreachable, timed out) */
	struct metrics_histogram *backend_rtt[OP_HEALTH + 1];  /* by enum op */
	/* backend failures are logged at most once a second, from any thread */
	_Atomic uint64_t log_next_ms;             /* CLOCK_MONOTONIC ms of the next line allowed */
	_Atomic uint64_t log_suppressed;          /* failures not logged since the last line */
	_Atomic bool down;                        /* the last line said "failing" */
};

struct sthread {
	struct counter *c;
	struct app *app;
	struct creq *free;
	char keybuf[COUNTER_KEYBUF];
	/* gRPC requests unpack into this arena: a request is freed before the
	 * next is unpacked on this thread, so a bump pointer reset per request
	 * is all the allocator needs; what does not fit goes to malloc. */
	ProtobufCAllocator pb_alloc;
	size_t arena_used;
	_Alignas(16) uint8_t arena[2048];
};

/* ------------------------------------------------------------ answering */

static struct creq *creq_get(struct sthread *t, struct http_exchange *ex, enum op op)
{
	struct creq *q = t->free;
	if (q)
		t->free = q->next;
	else {
		q = calloc(1, sizeof *q);   /* grows to the peak in flight, then reused */
		INVARIANT(q != NULL);
	}
	q->next = NULL;
	q->ex = ex;
	q->t = t;
	q->op = op;
	q->start_ns = uv_hrtime();
	q->array = false;
	q->n = 0;
	q->pending = 0;
	q->key_len = 0;
	q->list_err = 0;
	q->grpc = false;
	q->streaming = false;
	buf_reset(&q->list);
	return q;
}

static void creq_put(struct creq *q)
{
	if (q->list.cap > 65536)
		buf_free(&q->list);
	if (q->inflated.cap > 65536)
		buf_free(&q->inflated);
	q->next = q->t->free;
	q->t->free = q;
}

static struct citem *creq_items(struct creq *q)
{
	return q->n > 1 || q->array ? q->items : &q->one;
}

static void respond_json(struct http_exchange *ex, int status, struct buf *b)
{
	if (status == 503)
		http_respond_headers(ex, status, "application/json", "Retry-After: 1\r\n", b->data, b->len);
	else
		http_respond(ex, status, "application/json", b->data, b->len);
}

/* The key of an item for an answer: decoded again from its raw token. */
static void write_item_key(struct json_writer *w, struct sthread *t, const struct citem *it)
{
	if (!it->key.escaped) {
		json_kv_strn(w, "key", it->key.text, it->key.len);
		return;
	}
	long n = json_token_unescape(&it->key, t->keybuf);
	json_kv_strn(w, "key", t->keybuf, n < 0 ? 0 : (size_t)n);
}

static void write_item(struct json_writer *w, struct creq *q, const struct citem *it)
{
	json_obj_begin(w);
	if (q->op == OP_INCR)
		write_item_key(w, q->t, it);
	else
		json_kv_strn(w, "key", q->key, q->key_len);
	if (it->err == 0) {
		if (q->op == OP_DEL) {
			json_kv_bool(w, "deleted", true);
			json_kv_i64(w, "value", it->value);
		} else {
			json_kv_i64(w, "value", it->value);
		}
	} else {
		json_kv_str(w, "error", counter_strerror(it->err));
	}
	json_obj_end(w);
}

/* The store's part of a traced request, as a CLIENT span under its
 * server span: a Redis round trip is where a slow request's time goes.
 * mem: and file: answer inside the process and get none. */
static void trace_backend(struct creq *q)
{
	static const char *const names[] = {
		[OP_INCR] = "INCRBY", [OP_GET] = "GET", [OP_SET] = "SET",
		[OP_DEL] = "DEL", [OP_LIST] = "SCAN", [OP_HEALTH] = "GET",
	};
	enum store_kind k = counter_store_kind(q->t->app->store);
	if (k != STORE_REDIS && k != STORE_REDIS_CLUSTER)
		return;
	uint64_t real = trace_now_ns(), took = uv_hrtime() - q->start_ns;
	int err = q->op == OP_LIST ? q->list_err : creq_items(q)[0].err;
	const char *why = err < 0 && counter_err_unreachable(err) ? counter_strerror(err) : NULL;
	http_trace_client(q->ex, names[q->op], "redis", real - took, real, why, NULL);
}

static void grpc_reply(struct creq *q);

static void answer(struct creq *q)
{
	struct http_exchange *ex = q->ex;
	if (ex->span)
		trace_backend(q);
	if (q->grpc) {
		grpc_reply(q);
		creq_put(q);
		return;
	}
	struct buf *b = http_scratch(ex);
	struct json_writer w;
	json_writer_init(&w, b);
	int status = 200;
	if (q->op == OP_HEALTH) {
		int err = q->one.err;
		bool up = !counter_err_unreachable(err);
		json_obj_begin(&w);
		json_kv_str(&w, "status", up ? "ok" : "unavailable");
		if (!up)
			json_kv_str(&w, "reason", counter_strerror(err));
		json_kv_str(&w, "store", q->t->app->cfg->url_text);
		json_obj_end(&w);
		respond_json(ex, up ? 200 : 503, b);
		creq_put(q);
		return;
	}
	if (q->op == OP_LIST) {
		if (q->list_err < 0) {
			json_obj_begin(&w);
			json_kv_str(&w, "error", counter_strerror(q->list_err));
			json_obj_end(&w);
			respond_json(ex, counter_http_status(q->list_err), b);
		} else {
			http_respond(ex, 200, "application/jsonl", q->list.data, q->list.len);
		}
		creq_put(q);
		return;
	}
	struct citem *items = creq_items(q);
	if (q->array) {
		json_arr_begin(&w);
		for (unsigned i = 0; i < q->n; i++) {
			if (items[i].err && status == 200)
				status = counter_http_status(items[i].err);
			write_item(&w, q, &items[i]);
		}
		json_arr_end(&w);
	} else {
		status = counter_http_status(items[0].err);
		write_item(&w, q, &items[0]);
	}
	respond_json(ex, status, b);
	creq_put(q);
}

/*
 * A backend failure, logged at most once a second whatever the request
 * rate (a dead Redis under load would otherwise write a line per
 * request), with the count of failures since the last line; and one line
 * when operations succeed again.
 */
static void backend_failed(struct app *app, int err)
{
	uint64_t now = uv_hrtime() / 1000000;
	uint64_t next = atomic_load_explicit(&app->log_next_ms, memory_order_relaxed);
	if (now < next || !atomic_compare_exchange_strong(&app->log_next_ms, &next,
	                                                  now + BACKEND_LOG_INTERVAL_MS)) {
		atomic_fetch_add_explicit(&app->log_suppressed, 1, memory_order_relaxed);
		return;
	}
	uint64_t more = atomic_exchange(&app->log_suppressed, 0);
	atomic_store(&app->down, true);
	log_warn("backend %s: %s (%llu more failures since the last line)", app->cfg->url_text,
	         counter_strerror(err), (unsigned long long)more);
}

static void backend_ok(struct app *app)
{
	if (atomic_load_explicit(&app->down, memory_order_relaxed) && atomic_exchange(&app->down, false))
		log_warn("backend %s answers again", app->cfg->url_text);
}

static void item_done(void *ud, int err, int64_t value)
{
	struct citem *it = ud;
	it->err = err;
	it->value = value;
	struct creq *q = it->req;
	metrics_histogram_observe_ns(q->t->app->backend_rtt[q->op], uv_hrtime() - q->start_ns);
	if (q->ex->span) /* a line about this call names its request's trace */
		http_trace_log(q->ex);
	if (err < 0 && counter_err_unreachable(err)) {
		if (q->op != OP_HEALTH)
			metrics_counter_inc(q->t->app->backend_errors);
		backend_failed(q->t->app, err);
	} else {
		backend_ok(q->t->app);
	}
	if (q->ex->span)
		http_trace_log(NULL);
	INVARIANT(q->pending > 0);
	if (--q->pending == 0)
		answer(q);
}

/* The issuing loop holds one count itself (mem: answers inside the call). */
static void creq_release_guard(struct creq *q)
{
	INVARIANT(q->pending > 0);
	if (--q->pending == 0)
		answer(q);
}

static void bad_request(struct http_exchange *ex, const char *why)
{
	http_respond_error(ex, 400, why);
}

/* ------------------------------------------------------------ handlers */

static void issue_incr(struct creq *q, struct citem *it)
{
	const char *key;
	size_t key_len;
	struct incr_spec s = {.key = it->key, .has_key = true};
	int r = incr_spec_key(&s, q->t->keybuf, &key, &key_len);
	INVARIANT(r == 0);   /* checked before */
	it->req = q;
	q->pending++;
	r = counter_incr(q->t->c, key, key_len, it->by, item_done, it);
	if (r < 0)
		item_done(it, r, 0);
}

/*
 * A body sent with Content-Encoding: gzip (RFC 9110 8.4) is inflated into
 * the request's own buffer, which lives as long as the request (the keys
 * of an /incr point into the body until the answer), and ex->body points
 * there.  The inflated size has the bound the body had, --max-body-bytes,
 * so a zip bomb costs at most that much memory and gets 413.  Another
 * coding is 415 with Accept-Encoding naming the one we take (RFC 7694).
 * Returns false when it has answered.
 */
static bool body_decode(struct http_exchange *ex, struct buf *into)
{
	const struct http_header *h = http_message_header(&ex->req.m, "content-encoding");
	if (!h || h->value_len == 0 || (h->value_len == 8 && !strncasecmp(h->value, "identity", 8)))
		return true;
	if (!((h->value_len == 4 && !strncasecmp(h->value, "gzip", 4)) ||
	      (h->value_len == 6 && !strncasecmp(h->value, "x-gzip", 6)))) {
		struct buf *b = http_scratch(ex);
		buf_puts(b, "{\"error\":\"unsupported Content-Encoding: only gzip is accepted\"}");
		http_respond_headers(ex, 415, "application/json", "Accept-Encoding: gzip\r\n", b->data, b->len);
		return false;
	}
	struct sthread *t = ex->thread_data;
	buf_reset(into);
	int r = http_gunzip(ex->body, ex->body_len, t->app->cfg->serve.cfg.limits.max_body, into);
	if (r == -EMSGSIZE) {
		http_respond_error(ex, 413, "gzip body inflates past --max-body-bytes");
		return false;
	}
	if (r < 0) {
		http_respond_error(ex, 400, "Content-Encoding: gzip, but the body is not valid gzip");
		return false;
	}
	ex->body = into->data;
	ex->body_len = into->len;
	return true;
}

static void handle_incr(struct http_exchange *ex, void *arg)
{
	struct sthread *t = ex->thread_data;
	struct creq *q = creq_get(t, ex, OP_INCR);
	if (!body_decode(ex, &q->inflated)) {
		creq_put(q);
		return;
	}
	const char *p = ex->body;
	size_t len = ex->body_len, i = 0;
	while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
		i++;
	if (i == len) {
		bad_request(ex, "empty body: expected {\"key\":\"K\",\"by\":N} or an array of them");
		creq_put(q);
		return;
	}
	if (p[i] != '[') {
		struct incr_spec s;
		long used;
		const char *key;
		size_t key_len;
		if (incr_spec_parse(p + i, len - i, 1, &s, &used) < 0 ||
		    incr_spec_key(&s, t->keybuf, &key, &key_len) < 0) {
			bad_request(ex, s.why);
			creq_put(q);
			return;
		}
		if (!only_space(p, i + (size_t)used, len)) {
			bad_request(ex, "malformed JSON: text after the object");
			creq_put(q);
			return;
		}
		q->n = 1;
		q->one.key = s.key;
		q->one.by = s.by;
		q->pending = 1;
		issue_incr(q, &q->one);
		creq_release_guard(q);
		return;
	}
	/* an array: check every item first, so bad input applies nothing */
	q->array = true;
	i++;
	char msg[160];
	for (;;) {
		while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
			i++;
		if (i < len && p[i] == ']' && q->n == 0) {
			i++;
			break;
		}
		struct incr_spec s;
		long used;
		const char *key;
		size_t key_len;
		if (q->n == t->app->cfg->max_batch) {
			snprintf(msg, sizeof msg, "too many items: at most %u in one request (--max-batch)",
			         t->app->cfg->max_batch);
			goto bad;
		}
		if (incr_spec_parse(p + i, len - i, 1, &s, &used) < 0 ||
		    incr_spec_key(&s, t->keybuf, &key, &key_len) < 0) {
			snprintf(msg, sizeof msg, "item %u: %s", q->n, s.why);
			goto bad;
		}
		if (q->n == q->cap) {
			unsigned nc = q->cap ? q->cap * 2 : 16;
			struct citem *ni = realloc(q->items, nc * sizeof *ni);
			INVARIANT(ni != NULL);
			q->items = ni;
			q->cap = nc;
		}
		q->items[q->n].key = s.key;
		q->items[q->n].by = s.by;
		q->n++;
		i += (size_t)used;
		while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
			i++;
		if (i < len && p[i] == ',') {
			i++;
			continue;
		}
		if (i < len && p[i] == ']') {
			i++;
			break;
		}
		snprintf(msg, sizeof msg, "malformed JSON: expected ',' or ']' at byte %zu", i);
		goto bad;
	}
	if (!only_space(p, i, len)) {
		snprintf(msg, sizeof msg, "malformed JSON: text after the array");
		goto bad;
	}
	q->pending = 1;
	for (unsigned k = 0; k < q->n; k++)
		issue_incr(q, &q->items[k]);
	creq_release_guard(q);
	return;
bad:
	bad_request(ex, msg);
	creq_put(q);
}

/* /counters/KEY: decode the key into q->key; answers 400 itself. */
static struct creq *key_request(struct http_exchange *ex, enum op op)
{
	struct sthread *t = ex->thread_data;
	struct creq *q = creq_get(t, ex, op);
	long n = url_decode(ex->subpath, ex->subpath_len, q->key, COUNTER_MAX_KEY);
	const char *why = n == 0 ? "missing key: use /counters/KEY"
	                : n == -EINVAL ? "bad percent-encoding in the key"
	                : n < 0 ? "key is longer than 512 bytes"
	                : key_check(q->key, (size_t)n);
	if (why) {
		bad_request(ex, why);
		creq_put(q);
		return NULL;
	}
	q->key_len = (size_t)n;
	q->n = 1;
	q->one.req = q;
	q->pending = 2;   /* the operation, and the guard */
	return q;
}

static void handle_get(struct http_exchange *ex, void *arg)
{
	struct creq *q = key_request(ex, OP_GET);
	if (!q)
		return;
	int r = counter_get(q->t->c, q->key, q->key_len, item_done, &q->one);
	if (r < 0)
		item_done(&q->one, r, 0);
	creq_release_guard(q);
}

static void handle_del(struct http_exchange *ex, void *arg)
{
	struct creq *q = key_request(ex, OP_DEL);
	if (!q)
		return;
	int r = counter_del(q->t->c, q->key, q->key_len, item_done, &q->one);
	if (r < 0)
		item_done(&q->one, r, 0);
	creq_release_guard(q);
}

struct set_scan {
	bool has_value;
	int64_t value;
	const char *why;
};

static int set_member(void *ctx, const struct json_token *k, const struct json_token *v)
{
	struct set_scan *s = ctx;
	if (!json_token_eq(k, "value"))
		return 0;
	if (v->kind != JSON_KIND_NUMBER) {
		s->why = "value must be an integer";
		return -EINVAL;
	}
	int r = json_parse_i64(v->text, v->len, &s->value);
	if (r < 0) {
		s->why = r == -ERANGE ? "value is outside the int64 range" : "value must be an integer";
		return r;
	}
	s->has_value = true;
	return 0;
}

static void handle_put(struct http_exchange *ex, void *arg)
{
	struct creq *q = key_request(ex, OP_SET);
	if (!q)
		return;
	if (!body_decode(ex, &q->inflated)) {
		creq_put(q);
		return;
	}
	struct set_scan s = {false, 0, NULL};
	const char *body = ex->body ? ex->body : "";
	long e = json_scan_object(body, ex->body_len, set_member, &s);
	if (e < 0 || !s.has_value) {
		bad_request(ex, s.why ? s.why : e < 0 ? "malformed JSON: expected {\"value\":N}"
		                                      : "missing value: expected {\"value\":N}");
		creq_put(q);
		return;
	}
	if (!only_space(body, (size_t)e, ex->body_len)) {
		bad_request(ex, "malformed JSON: text after the object");
		creq_put(q);
		return;
	}
	int r = counter_set(q->t->c, q->key, q->key_len, s.value, item_done, &q->one);
	if (r < 0)
		item_done(&q->one, r, 0);
	creq_release_guard(q);
}

static void grpc_list_items(struct creq *q, const struct counter_item *items, size_t n);

static void list_cb(void *ud, int err, const struct counter_item *items, size_t n, bool done)
{
	struct creq *q = ud;
	if (err < 0)
		q->list_err = err;
	if (err < 0 && counter_err_unreachable(err)) {
		metrics_counter_inc(q->t->app->backend_errors);
		backend_failed(q->t->app, err);
	} else if (q->grpc) {
		grpc_list_items(q, items, n);
	} else {
		struct json_writer w;
		for (size_t i = 0; i < n; i++) {
			json_writer_init(&w, &q->list);
			json_obj_begin(&w);
			json_kv_strn(&w, "key", items[i].key, items[i].key_len);
			json_kv_i64(&w, "value", items[i].value);
			json_obj_end(&w);
			buf_putc(&q->list, '\n');
		}
	}
	if (done) {
		metrics_histogram_observe_ns(q->t->app->backend_rtt[OP_LIST], uv_hrtime() - q->start_ns);
		creq_release_guard(q);
	}
}

static void handle_list(struct http_exchange *ex, void *arg)
{
	struct sthread *t = ex->thread_data;
	struct creq *q = creq_get(t, ex, OP_LIST);
	const char *qs = ex->req.query;
	size_t ql = qs ? ex->req.query_len : 0;
	const char *v;
	size_t vl;
	if (url_query_param(qs, ql, "prefix", &v, &vl)) {
		long n = url_decode(v, vl, q->key, COUNTER_MAX_KEY);
		const char *why = n == -EINVAL ? "bad percent-encoding in prefix"
		                : n < 0 ? "prefix is longer than 512 bytes"
		                : prefix_check(q->key, (size_t)n);
		if (why) {
			bad_request(ex, why);
			creq_put(q);
			return;
		}
		q->key_len = (size_t)n;
	}
	q->pending = 2;
	int r = counter_list(t->c, q->key, q->key_len, list_cb, q);
	if (r < 0)
		list_cb(q, r, NULL, 0, true);
	creq_release_guard(q);
}

/* GET /health: a read of HEALTH_KEY through this thread's handle, so the
 * answer is the store's state now, not the last request's. */
static void handle_health(struct http_exchange *ex, void *arg)
{
	struct sthread *t = ex->thread_data;
	struct creq *q = creq_get(t, ex, OP_HEALTH);
	q->n = 1;
	q->one.req = q;
	q->pending = 2;
	int r = counter_get(t->c, HEALTH_KEY, sizeof HEALTH_KEY - 1, item_done, &q->one);
	if (r < 0)
		item_done(&q->one, r, 0);
	creq_release_guard(q);
}

/* ------------------------------------------------------------ gRPC */

#define GRPC_PATH "/dsys.counter.v1.Counter/"
/* A framed CounterValue: a key of at most COUNTER_MAX_KEY bytes (a tag and
 * a 2-byte length), a value (a tag and up to 10 varint bytes). */
#define VALUE_FRAME_MAX (GRPC_PREFIX + 3 + COUNTER_MAX_KEY + 11)

static void *arena_alloc(void *ud, size_t n)
{
	struct sthread *t = ud;
	size_t r = (n + 15) & ~(size_t)15;
	if (r >= n && r <= sizeof t->arena - t->arena_used) {
		void *p = t->arena + t->arena_used;
		t->arena_used += r;
		return p;
	}
	return malloc(n);
}

static void arena_free(void *ud, void *p)
{
	struct sthread *t = ud;
	uintptr_t a = (uintptr_t)p, lo = (uintptr_t)t->arena;
	if (a >= lo && a < lo + sizeof t->arena)
		return;   /* the whole arena goes at once, in grpc_release */
	free(p);
}

/* A framed CounterValue {key, value} into out (VALUE_FRAME_MAX bytes); its
 * length.  The key is copied to keybuf for its NUL (protobuf-c's strings). */
static size_t value_frame(struct sthread *t, const char *key, size_t key_len, int64_t value,
                          uint8_t *out)
{
	INVARIANT(key_len <= COUNTER_MAX_KEY);
	memcpy(t->keybuf, key, key_len);
	t->keybuf[key_len] = '\0';
	Dsys__Counter__V1__CounterValue v = DSYS__COUNTER__V1__COUNTER_VALUE__INIT;
	v.key = t->keybuf;
	v.value = value;
	size_t n = dsys__counter__v1__counter_value__get_packed_size(&v);
	INVARIANT(n + GRPC_PREFIX <= VALUE_FRAME_MAX);
	out[0] = 0;
	out[1] = (uint8_t)(n >> 24);
	out[2] = (uint8_t)(n >> 16);
	out[3] = (uint8_t)(n >> 8);
	out[4] = (uint8_t)n;
	dsys__counter__v1__counter_value__pack(&v, out + GRPC_PREFIX);
	return n + GRPC_PREFIX;
}

static void grpc_reply(struct creq *q)
{
	struct http_exchange *ex = q->ex;
	if (q->op == OP_LIST) {
		int st = q->list_err < 0 ? counter_grpc_status(q->list_err) : GRPC_OK;
		const char *why = q->list_err < 0 ? counter_strerror(q->list_err) : NULL;
		if (q->streaming)
			grpc_stream_end(ex, st, why);
		else
			grpc_answer(ex, NULL, 0, st, why);
		return;
	}
	int err = q->one.err;
	if (err) {
		grpc_answer(ex, NULL, 0, counter_grpc_status(err), counter_strerror(err));
		return;
	}
	uint8_t out[VALUE_FRAME_MAX];
	size_t n = value_frame(q->t, q->key, q->key_len, q->one.value, out);
	grpc_answer(ex, out, n, GRPC_OK, NULL);
}

/* A batch of List's keys, one message each; the stream begins with the
 * first key, so an empty list or an early error is one plain answer. */
static void grpc_list_items(struct creq *q, const struct counter_item *items, size_t n)
{
	uint8_t out[VALUE_FRAME_MAX];
	for (size_t i = 0; i < n; i++) {
		if (items[i].key_len > COUNTER_MAX_KEY)
			continue;   /* a Redis key of another program; no key of ours */
		if (!q->streaming) {
			grpc_stream_begin(q->ex);
			q->streaming = true;
		}
		size_t len = value_frame(q->t, items[i].key, items[i].key_len, items[i].value, out);
		/* grpc_stream_send frames the message itself */
		if (grpc_stream_send(q->ex, out + GRPC_PREFIX, len - GRPC_PREFIX) < 0)
			return;   /* the client is gone: the rest would be dropped */
	}
}

static void grpc_release(struct sthread *t, ProtobufCMessage *m)
{
	protobuf_c_message_free_unpacked(m, &t->pb_alloc);
	t->arena_used = 0;
}

/*
 * The request message of a unary call, unpacked; or NULL when answered
 * here.  A string field with a NUL in it would reach us cut at the NUL
 * (protobuf-c's strings are C strings), so a message whose repacked size
 * differs from what came is refused rather than acted on for another key.
 */
static ProtobufCMessage *grpc_unpack(struct http_exchange *ex, const ProtobufCMessageDescriptor *d)
{
	if (!grpc_is_call(ex)) {
		http_respond_error(ex, 415, "gRPC methods take content-type application/grpc over HTTP/2");
		return NULL;
	}
	const uint8_t *msg;
	size_t len;
	int st = grpc_unary_message(ex, &msg, &len);
	if (st != 0) {
		grpc_answer(ex, NULL, 0, st, "a unary call takes exactly one uncompressed message");
		return NULL;
	}
	struct sthread *t = ex->thread_data;
	t->arena_used = 0;
	ProtobufCMessage *m = protobuf_c_message_unpack(d, &t->pb_alloc, len, msg);
	if (!m || protobuf_c_message_get_packed_size(m) != len) {
		char why[128];
		snprintf(why, sizeof why, "malformed %s (or a NUL byte in a string)", d->short_name);
		if (m)
			grpc_release(t, m);
		grpc_answer(ex, NULL, 0, GRPC_INVALID_ARGUMENT, why);
		return NULL;
	}
	return m;
}

/* A creq for a call on key (a prefix for List), checked as the JSON API
 * checks it; NULL when answered here. */
static struct creq *grpc_keyed(struct http_exchange *ex, enum op op, const char *key)
{
	size_t n = strlen(key);
	const char *why = n > COUNTER_MAX_KEY ? (op == OP_LIST ? "prefix is longer than 512 bytes"
	                                                       : "key is longer than 512 bytes")
	                : op == OP_LIST ? prefix_check(key, n) : key_check(key, n);
	if (why) {
		grpc_answer(ex, NULL, 0, GRPC_INVALID_ARGUMENT, why);
		return NULL;
	}
	struct creq *q = creq_get(ex->thread_data, ex, op);
	memcpy(q->key, key, n);
	q->key[n] = '\0';
	q->key_len = n;
	q->grpc = true;
	q->n = 1;
	q->one.req = q;
	q->pending = 2;   /* the operation, and the guard */
	return q;
}

static void grpc_incr(struct http_exchange *ex, void *arg)
{
	Dsys__Counter__V1__IncrRequest *r =
		(void *)grpc_unpack(ex, &dsys__counter__v1__incr_request__descriptor);
	if (!r)
		return;
	struct creq *q = grpc_keyed(ex, OP_INCR, r->key);
	int64_t by = r->amount_case == DSYS__COUNTER__V1__INCR_REQUEST__AMOUNT_BY ? r->by : 1;
	grpc_release(ex->thread_data, &r->base);
	if (!q)
		return;
	int e = counter_incr(q->t->c, q->key, q->key_len, by, item_done, &q->one);
	if (e < 0)
		item_done(&q->one, e, 0);
	creq_release_guard(q);
}

static void grpc_get_or_delete(struct http_exchange *ex, enum op op)
{
	Dsys__Counter__V1__KeyRequest *r =
		(void *)grpc_unpack(ex, &dsys__counter__v1__key_request__descriptor);
	if (!r)
		return;
	struct creq *q = grpc_keyed(ex, op, r->key);
	grpc_release(ex->thread_data, &r->base);
	if (!q)
		return;
	int e = op == OP_GET ? counter_get(q->t->c, q->key, q->key_len, item_done, &q->one)
	                     : counter_del(q->t->c, q->key, q->key_len, item_done, &q->one);
	if (e < 0)
		item_done(&q->one, e, 0);
	creq_release_guard(q);
}

static void grpc_get(struct http_exchange *ex, void *arg)
{
	grpc_get_or_delete(ex, OP_GET);
}

static void grpc_delete(struct http_exchange *ex, void *arg)
{
	grpc_get_or_delete(ex, OP_DEL);
}

static void grpc_set(struct http_exchange *ex, void *arg)
{
	Dsys__Counter__V1__SetRequest *r =
		(void *)grpc_unpack(ex, &dsys__counter__v1__set_request__descriptor);
	if (!r)
		return;
	struct creq *q = grpc_keyed(ex, OP_SET, r->key);
	int64_t value = r->value;
	grpc_release(ex->thread_data, &r->base);
	if (!q)
		return;
	int e = counter_set(q->t->c, q->key, q->key_len, value, item_done, &q->one);
	if (e < 0)
		item_done(&q->one, e, 0);
	creq_release_guard(q);
}

static void grpc_list(struct http_exchange *ex, void *arg)
{
	Dsys__Counter__V1__ListRequest *r =
		(void *)grpc_unpack(ex, &dsys__counter__v1__list_request__descriptor);
	if (!r)
		return;
	struct creq *q = grpc_keyed(ex, OP_LIST, r->prefix);
	grpc_release(ex->thread_data, &r->base);
	if (!q)
		return;
	int e = counter_list(q->t->c, q->key, q->key_len, list_cb, q);
	if (e < 0)
		list_cb(q, e, NULL, 0, true);
	creq_release_guard(q);
}

/* ------------------------------------------------------------ threads */

static int thread_init(struct http_thread *th, void *arg)
{
	struct app *app = arg;
	struct sthread *t = calloc(1, sizeof *t);
	if (!t)
		return -ENOMEM;
	t->app = app;
	t->pb_alloc = (ProtobufCAllocator){.alloc = arena_alloc, .free = arena_free,
	                                   .allocator_data = t};
	int r = counter_attach(app->store, http_thread_loop(th), &t->c);
	if (r < 0) {
		free(t);
		return r;
	}
	http_thread_set_data(th, t);
	return 0;
}

static void thread_fini(struct http_thread *th, void *arg)
{
	struct sthread *t = http_thread_data(th);
	counter_detach(t->c);
	while (t->free) {
		struct creq *q = t->free;
		t->free = q->next;
		free(q->items);
		buf_free(&q->list);
		buf_free(&q->inflated);
		free(q);
	}
	free(t);
}

int counter_serve(struct config *cfg)
{
	struct app app = {.store = NULL, .cfg = cfg};
	char err[512];
	int r = counter_store_open(&cfg->url, &cfg->copt, &app.store, err, sizeof err);
	if (r < 0) {
		cli_error("cannot open %s: %s", cfg->url_text, err);
		return counter_open_exit(r);
	}
	/* A wrong URL (a database past the server's count, a cluster that is
	 * a plain Redis) stops the start, named; an unreachable store does
	 * not: the service starts and /health says so until it answers. */
	uv_loop_t probe;
	uv_loop_init(&probe);
	struct counter *pc;
	r = counter_attach(app.store, &probe, &pc);
	if (r == 0) {
		r = counter_check_wait(pc, &probe);
		counter_detach(pc);
		uv_run(&probe, UV_RUN_DEFAULT);
	}
	uv_loop_close(&probe);
	if (counter_err_config(r)) {
		cli_error("cannot use %s: %s", cfg->url_text, counter_strerror(r));
		counter_store_close(app.store);
		return counter_open_exit(r);
	}
	struct metrics *reg = metrics_new();
	metrics_process_register(reg);
	app.backend_errors = metrics_counter_register(reg, "counter_backend_errors_total",
		"Counter operations that failed because the store was unreachable or timed out.", NULL);
	/* One histogram per operation, so a dashboard sees Redis round trips
	 * (or the mem: call) apart from the HTTP latency around them.  An
	 * item of a batched POST /incr is one observation each. */
	static const char *const op_names[] = {
		[OP_INCR] = "incr", [OP_GET] = "get", [OP_SET] = "set",
		[OP_DEL] = "delete", [OP_LIST] = "list", [OP_HEALTH] = "health",
	};
	for (int op = OP_INCR; op <= OP_HEALTH; op++)
		app.backend_rtt[op] = metrics_histogram_register(reg, "counter_backend_duration_seconds",
			"Time from issuing a store operation to its answer (a backend round trip), by operation.",
			METRICS_LABELS("op", op_names[op]), NULL, 0);
	struct http_router *router = http_router_new(reg);
	http_route_add(router, "POST", "/incr", handle_incr, &app);
	http_route_add_prefix(router, "GET", "/counters/", handle_get, &app);
	http_route_add_prefix(router, "PUT", "/counters/", handle_put, &app);
	http_route_add_prefix(router, "DELETE", "/counters/", handle_del, &app);
	http_route_add(router, "GET", "/counters", handle_list, &app);
	http_route_add(router, "GET", "/health", handle_health, &app);
	http_route_add(router, "POST", GRPC_PATH "Incr", grpc_incr, &app);
	http_route_add(router, "POST", GRPC_PATH "Get", grpc_get, &app);
	http_route_add(router, "POST", GRPC_PATH "Set", grpc_set, &app);
	http_route_add(router, "POST", GRPC_PATH "Delete", grpc_delete, &app);
	http_route_add(router, "POST", GRPC_PATH "List", grpc_list, &app);
	http_route_add_metrics(router, reg);

	struct http_server *srv = NULL;
	cfg->serve.cfg.metrics = reg;
	cfg->serve.cfg.handler = http_router_handle;
	cfg->serve.cfg.handler_arg = router;
	cfg->serve.cfg.thread_init = thread_init;
	cfg->serve.cfg.thread_fini = thread_fini;
	cfg->serve.cfg.thread_arg = &app;
	int status = server_cli_listen(&cfg->serve, &srv);
	if (status == EXIT_OK) {
		status = server_cli_ready(srv, "store", cfg->url_text);
		if (status == EXIT_OK)
			status = server_cli_run(srv);
	}
	http_server_free(srv);
	http_router_free(router);
	metrics_free(reg);
	counter_store_close(app.store);
	return status;
}
