/*
 * dsys-trace collect -- an OTLP/HTTP receiver: POST /v1/traces and
 * /v1/logs, in protobuf or JSON, gzip'd or not; one normalized JSON line
 * per span or log record on stdout; with --forward, batched on to another
 * OTLP endpoint.
 *
 * It stands on lib/http/server through its public API only (a router,
 * the shared server flags, the ready line, /health and /metrics), so the
 * same drain, limits and io backends hold as for every dsys server.
 *
 * A request is decoded whole before anything of it is kept
 * (obs/otlp_codec), so a 400 means "none of it", and the sender may fix
 * and resend without duplicates.  Lines of one request are written with
 * one fwrite under a mutex, so the lines of concurrent requests (one loop
 * per thread) never interleave.
 *
 * Forwarding.  Each item is re-encoded as a request of its own and
 * queued in an obs/otlp_batch with keep set: a batch the next hop does
 * not take stays and is retried with backoff.  With --spool DIR the
 * queue is also a store/wal log in DIR: an item record per item, written
 * and fsync'd before the request is answered, and an ack record per
 * batch the next hop took.  At start the log is replayed and what was
 * not acknowledged is queued again, so a span answered with 200 is
 * never lost to a restart of either side (it may be sent twice when the
 * collector dies between a batch's export and its ack record: at least
 * once, as OTLP's retries are anyway).  Compaction writes the queue as
 * it stands.  When the queue is full, requests get 503 with Retry-After,
 * which OTLP senders retry: back-pressure instead of a silent drop.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/invariant.h"
#include "base/json.h"
#include "base/log.h"
#include "cli/cli.h"
#include "cli/server_cli.h"
#include "http/route.h"
#include "http/server.h"
#include "obs/metrics.h"
#include "obs/otlp.h"
#include "obs/otlp_batch.h"
#include "obs/otlp_codec.h"
#include "obs/trace.h"
#include "store/wal.h"

#include "dsys-trace.h"

#define COLLECT_DEFAULT_PORT 4318           /* OTLP/HTTP's port */
#define COLLECT_MAX_INFLATED (64u << 20)    /* default bound on a gunzipped body */
#define COLLECT_FORWARD_QUEUE 100000        /* items waiting to be forwarded, default */

enum { OPT_FORWARD = 1, OPT_SPOOL, OPT_MAX_INFLATED, OPT_QUIET };

static const struct cli_option collect_options[] = {
	SERVER_CLI_OPTIONS,
	{"forward", 'f', "URL", "DSYS_TRACE_FORWARD", "send what arrives on to the OTLP/HTTP endpoint URL (v1/traces, v1/logs appended)", OPT_FORWARD},
	{"spool", 0, "DIR", NULL, "keep what is not yet forwarded in DIR, across restarts", OPT_SPOOL},
	{"max-inflated-bytes", 0, "SIZE", NULL, "largest body after gunzip, else 413 (default 64M)", OPT_MAX_INFLATED},
	{"quiet", 'q', NULL, NULL, "print no lines (forward only)", OPT_QUIET},
	CLI_END
};

static const struct cli_spec collect_spec = {
	"dsys-trace collect", "[OPTION]...",
	"Receive OTLP/HTTP spans and logs; print one JSON line each; forward them.", collect_options,
	"routes: POST /v1/traces, POST /v1/logs (application/x-protobuf or application/json,\n"
	"  Content-Encoding gzip or none), GET /health, GET /metrics.\n"
	"--listen defaults to 127.0.0.1:4318 here, OTLP/HTTP's port.\n",
};

struct collect {
	struct server_cli server;
	const char *forward;
	const char *spool;
	uint64_t max_inflated;
	bool quiet;
	enum otlp_encoding fwd_enc;
	struct otlp_config fwd_cfg[2];       /* by enum otlp_signal */
	struct otlp_batch *batch[2];
	size_t max_queue;
	struct wal *wal;
	pthread_mutex_t durable_mu;
	pthread_cond_t durable_cv;
	pthread_mutex_t out_mu;              /* stdout */
	bool out_broken;
	struct metrics_counter *items[2], *rejected, *busy;
	/* replay: items not acknowledged, by signal, in order */
	struct buf *pending[2];
	size_t npending[2], cap_pending[2], acked[2];
};

static struct collect *the; /* for the metric callbacks */

static int on_collect_option(void *ctx, int id, const char *arg)
{
	struct collect *c = ctx;
	int r = server_cli_option(&c->server, id, arg);
	if (r <= 0)
		return r;
	switch (id) {
	case OPT_FORWARD:
		if (strncmp(arg, "http://", 7) && strncmp(arg, "https://", 8))
			return cli_bad_value(NULL, arg, "expected an http:// or https:// URL");
		c->forward = arg;
		return 0;
	case OPT_SPOOL:
		if (!*arg)
			return cli_bad_value(NULL, arg, "the directory is empty");
		c->spool = arg;
		return 0;
	case OPT_MAX_INFLATED:
		return server_cli_size(arg, 1024, 1ull << 32, &c->max_inflated);
	case OPT_QUIET:
		c->quiet = true;
		return 0;
	}
	return 0;
}

/* ------------------------------------------------------------- spool */

enum { REC_ITEM = 'I', REC_ACK = 'A' };

static void pending_push(struct collect *c, int sig, const unsigned char *p, size_t n)
{
	if (c->npending[sig] == c->cap_pending[sig]) {
		c->cap_pending[sig] = c->cap_pending[sig] ? 2 * c->cap_pending[sig] : 64;
		c->pending[sig] = realloc(c->pending[sig], c->cap_pending[sig] * sizeof *c->pending[sig]);
		INVARIANT(c->pending[sig] != NULL);
	}
	struct buf *b = &c->pending[sig][c->npending[sig]++];
	memset(b, 0, sizeof *b);
	buf_append(b, p, n);
}

/* Records: 'I' sig enc payload (one encoded request of one item), or
 * 'A' sig count(u64 LE): count more items of sig were forwarded. */
static int replay_cb(void *ud, const unsigned char *rec, size_t len)
{
	struct collect *c = ud;
	if (len < 3 || rec[1] > 1)
		return -EBADMSG;
	int sig = rec[1];
	if (rec[0] == REC_ITEM) {
		if (rec[2] > 1)
			return -EBADMSG;
		pending_push(c, sig, rec + 2, len - 2); /* keeps the encoding byte */
		return 0;
	}
	if (rec[0] == REC_ACK && len == 2 + 8) {
		uint64_t n = 0;
		for (int i = 7; i >= 0; i--)
			n = n << 8 | rec[2 + i];
		c->acked[sig] += n;
		if (c->acked[sig] > c->npending[sig]) /* items lost to a full queue at a start */
			c->acked[sig] = c->npending[sig];
		return 0;
	}
	return -EBADMSG;
}

struct snap { struct buf *out; int sig; enum otlp_encoding enc; };

static void snap_item(void *ud, const void *p, size_t n)
{
	struct snap *s = ud;
	unsigned char head[3] = {REC_ITEM, (unsigned char)s->sig, (unsigned char)s->enc};
	struct iovec iov[2] = {{head, 3}, {(void *)p, n}};
	wal_record_put(s->out, iov, 2);
}

static int snapshot_cb(void *ud, struct buf *out)
{
	struct collect *c = ud;
	for (int sig = 0; sig < 2; sig++) {
		struct snap s = {out, sig, c->fwd_enc};
		otlp_batch_snapshot(c->batch[sig], snap_item, &s);
	}
	return 0;
}

static void synced_cb(void *ud)
{
	struct collect *c = ud;
	pthread_mutex_lock(&c->durable_mu);
	pthread_cond_broadcast(&c->durable_cv);
	pthread_mutex_unlock(&c->durable_mu);
}

/* A batch the next hop took: record it, then drop it from the queue, in
 * one step under the log's lock so a compaction sees either both or
 * neither. */
static void exported_cb(void *ud, struct otlp_batch *b, size_t n)
{
	struct collect *c = ud;
	int sig = b == c->batch[0] ? 0 : 1;
	if (!c->wal) {
		otlp_batch_consume(b, n);
		return;
	}
	unsigned char rec[10] = {REC_ACK, (unsigned char)sig};
	for (int i = 0; i < 8; i++)
		rec[2 + i] = (unsigned char)((uint64_t)n >> (8 * i));
	struct iovec iov = {rec, sizeof rec};
	wal_lock(c->wal);
	wal_appendv(c->wal, &iov, 1);
	otlp_batch_consume(b, n);
	wal_unlock(c->wal);
}

/* Re-encode a replayed item spooled in another encoding. */
struct reenc { struct collect *c; int sig; };
static int reenc_cb(void *ud, const struct otlp_item *it)
{
	struct reenc *r = ud;
	return otlp_batch_add(r->c->batch[r->sig], it) < 0 ? -ENOBUFS : 0;
}

/* ------------------------------------------------------------- requests */

struct req_ctx {
	struct collect *c;
	int sig;
	struct buf lines;
	struct buf one;
	uint64_t seq;       /* the last spool record of this request */
	int err;
};

/* The lines of a request are built in a buffer kept per loop thread,
 * freed as the thread ends (lines_free, its thread_fini). */
static __thread struct buf lines;

static void lines_free(struct http_thread *t, void *arg)
{
	(void)t;
	(void)arg;
	buf_free(&lines);
}

static int item_cb(void *ud, const struct otlp_item *it)
{
	struct req_ctx *r = ud;
	struct collect *c = r->c;
	if (!c->quiet) {
		const char *sn = it->scope_name ? it->scope_name : "";
		const char *sv = it->scope_version && *it->scope_version ? it->scope_version : NULL;
		if (it->span)
			trace_span_json_scoped(it->span, it->resource, *sn ? sn : NULL, sv, &r->lines);
		else
			trace_log_json(it->log, it->resource, *sn ? sn : NULL, sv, &r->lines);
		buf_putc(&r->lines, '\n');
	}
	if (c->batch[r->sig]) {
		buf_reset(&r->one);
		otlp_codec_encode(c->fwd_enc, it, 1, &r->one);
		if (c->wal) {
			unsigned char head[3] = {REC_ITEM, (unsigned char)r->sig, (unsigned char)c->fwd_enc};
			struct iovec iov[2] = {{head, 3}, {r->one.data, r->one.len}};
			wal_lock(c->wal);
			r->seq = wal_appendv(c->wal, iov, 2);
			int rc = otlp_batch_add_encoded(c->batch[r->sig], r->one.data, r->one.len);
			wal_unlock(c->wal);
			if (rc < 0)
				r->err = rc;
		} else if (otlp_batch_add_encoded(c->batch[r->sig], r->one.data, r->one.len) < 0) {
			r->err = -ENOBUFS;
		}
	}
	return 0;
}

static const struct http_header *header(const struct http_exchange *ex, const char *name)
{
	return http_message_header(&ex->req.m, name);
}

static bool value_is(const struct http_header *h, const char *v)
{
	size_t n = strlen(v);
	/* a media type may carry parameters: "application/json; charset=utf-8" */
	return h->value_len >= n && !strncasecmp(h->value, v, n) &&
	       (h->value_len == n || h->value[n] == ';' || h->value[n] == ' ');
}

static void handle_export(struct http_exchange *ex, void *arg)
{
	struct collect *c = the;
	int sig = (int)(intptr_t)arg;
	const struct http_header *ct = header(ex, "content-type");
	enum otlp_encoding enc;
	if (ct && value_is(ct, "application/x-protobuf"))
		enc = OTLP_PROTOBUF;
	else if (ct && value_is(ct, "application/json"))
		enc = OTLP_JSON;
	else {
		metrics_counter_inc(c->rejected);
		http_respond_error(ex, 415, "expected Content-Type application/x-protobuf or application/json");
		return;
	}
	const struct http_header *ce = header(ex, "content-encoding");
	struct buf inflated = BUF_INIT;
	const uint8_t *body = (const uint8_t *)ex->body;
	size_t len = ex->body_len;
	if (ce && value_is(ce, "gzip")) {
		int rc = otlp_codec_gunzip(ex->body, ex->body_len, c->max_inflated, &inflated);
		if (rc < 0) {
			buf_free(&inflated);
			metrics_counter_inc(c->rejected);
			if (rc == -EFBIG)
				http_respond_error(ex, 413, "the body is larger than --max-inflated-bytes once gunzipped");
			else
				http_respond_error(ex, 400, "the body is not valid gzip");
			return;
		}
		body = (const uint8_t *)inflated.data;
		len = inflated.len;
	} else if (ce && !value_is(ce, "identity")) {
		metrics_counter_inc(c->rejected);
		http_respond_error(ex, 415, "expected Content-Encoding gzip or none");
		return;
	}
	/* back-pressure before anything is kept: a full forward queue is a 503 */
	if (c->batch[sig]) {
		struct otlp_batch_stats st;
		otlp_batch_stats(c->batch[sig], &st);
		if (st.queued >= c->max_queue) {
			buf_free(&inflated);
			metrics_counter_inc(c->busy);
			http_respond_headers(ex, 503, "application/json", "Retry-After: 1\r\n",
			                     "{\"error\":\"the forward queue is full\"}", 36);
			return;
		}
	}
	struct req_ctx r = {.c = c, .sig = sig, .lines = lines};
	r.lines.len = 0;
	char err[256] = "";
	long n = otlp_codec_decode(sig, enc, body ? body : (const uint8_t *)"", len, item_cb, &r, err, sizeof err);
	buf_free(&inflated);
	buf_free(&r.one);
	lines = r.lines; /* kept, with its allocation, for the next request */
	if (n < 0) {
		metrics_counter_inc(c->rejected);
		http_respond_error(ex, 400, err);
		return;
	}
	if (r.lines.len) {
		pthread_mutex_lock(&c->out_mu);
		if (!c->out_broken && (fwrite(r.lines.data, 1, r.lines.len, stdout) != r.lines.len || fflush(stdout) == EOF))
			c->out_broken = true; /* a reader gone: go on forwarding */
		pthread_mutex_unlock(&c->out_mu);
	}
	if (lines.cap > (4u << 20)) /* one huge request does not pin its memory */
		buf_free(&lines);
	metrics_counter_add(c->items[sig], (uint64_t)n);
	if (c->wal && r.seq) {
		/* acknowledged only once on disk; the sync thread groups the
		 * fsyncs of concurrent requests */
		pthread_mutex_lock(&c->durable_mu);
		while (wal_durable(c->wal) < r.seq && !wal_failed(c->wal))
			pthread_cond_wait(&c->durable_cv, &c->durable_mu);
		pthread_mutex_unlock(&c->durable_mu);
		if (wal_failed(c->wal)) {
			http_respond_error(ex, 503, "the spool cannot be written");
			return;
		}
	}
	if (r.err) {
		http_respond_headers(ex, 503, "application/json", "Retry-After: 1\r\n",
		                     "{\"error\":\"the forward queue is full\"}", 36);
		return;
	}
	if (enc == OTLP_JSON)
		http_respond(ex, 200, "application/json", "{}", 2);
	else
		http_respond(ex, 200, "application/x-protobuf", NULL, 0); /* an empty response message */
}

static double queued_fn(void *arg)
{
	struct otlp_batch *b = arg;
	struct otlp_batch_stats st;
	otlp_batch_stats(b, &st);
	return (double)st.queued;
}

static double forwarded_fn(void *arg)
{
	struct otlp_batch *b = arg;
	struct otlp_batch_stats st;
	otlp_batch_stats(b, &st);
	return (double)st.exported;
}

static double errors_fn(void *arg)
{
	struct otlp_batch *b = arg;
	struct otlp_batch_stats st;
	otlp_batch_stats(b, &st);
	return (double)st.errors;
}

/* The next hop's settings: --forward takes the place of the endpoint
 * variables; timeout, headers and protocol still come from them. */
static int forward_config(struct collect *c)
{
	char err[512];
	setenv("OTEL_EXPORTER_OTLP_ENDPOINT", c->forward, 1);
	unsetenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
	unsetenv("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT");
	for (int sig = 0; sig < 2; sig++) {
		int rc = otlp_config_from_env(&c->fwd_cfg[sig], sig ? "logs" : "traces", err, sizeof err);
		if (rc == 1)
			cli_error("%s", err);
		else if (rc < 0) {
			cli_error("%s", err);
			return EXIT_USAGE;
		}
	}
	c->fwd_enc = c->fwd_cfg[0].encoding;
	return EXIT_OK;
}

int cmd_collect(int argc, char **argv)
{
	static struct collect c;
	the = &c;
	server_cli_init(&c.server);
	c.server.cfg.port = COLLECT_DEFAULT_PORT;
	c.max_inflated = COLLECT_MAX_INFLATED;
	const char *fw = getenv("DSYS_TRACE_FORWARD");
	if (fw && *fw)
		c.forward = fw;
	pthread_mutex_init(&c.out_mu, NULL);
	pthread_mutex_init(&c.durable_mu, NULL);
	pthread_cond_init(&c.durable_cv, NULL);
	if (log_init("dsys-trace") < 0) {
		cli_error("%s", log_init_error());
		return EXIT_USAGE;
	}
	int first;
	int r = cli_parse(&collect_spec, argc, argv, on_collect_option, &c, &first);
	if (r >= 0)
		return r;
	if (first < argc) {
		cli_error("unexpected argument '%s'", argv[first]);
		return EXIT_USAGE;
	}
	if (c.spool && !c.forward) {
		cli_error("--spool needs --forward: it keeps what is not yet forwarded");
		return EXIT_USAGE;
	}
	int status = EXIT_OK;
	struct metrics *reg = metrics_new();
	metrics_process_register(reg);
	static const char *const span_l[] = {"signal", "traces", NULL}, *const log_l[] = {"signal", "logs", NULL};
	c.items[0] = metrics_counter_register(reg, "otlp_received_items_total",
		"Spans and log records received and accepted.", span_l);
	c.items[1] = metrics_counter_register(reg, "otlp_received_items_total",
		"Spans and log records received and accepted.", log_l);
	c.rejected = metrics_counter_register(reg, "otlp_rejected_requests_total",
		"Export requests refused as malformed (400, 413, 415).", NULL);
	c.busy = metrics_counter_register(reg, "otlp_busy_requests_total",
		"Export requests refused with 503 because the forward queue was full.", NULL);

	if (c.forward) {
		if ((status = forward_config(&c)) != EXIT_OK)
			goto out;
		struct otlp_batch_options bo;
		char err[512];
		if (otlp_batch_options_from_env(&bo, err, sizeof err) < 0)
			cli_error("%s", err);
		if (!getenv("OTEL_BSP_MAX_QUEUE_SIZE"))
			bo.max_queue = COLLECT_FORWARD_QUEUE;
		if (bo.max_batch > bo.max_queue)
			bo.max_batch = bo.max_queue;
		bo.keep = true;
		bo.exported = exported_cb;
		bo.ud = &c;
		c.max_queue = bo.max_queue;
		if (c.spool) {
			/* replay first: the batches start with what was left */
			struct wal_options wo = {.max_record = 64u << 20, .compact_bytes = 64u << 20};
			struct wal_hooks wh = {.replay = replay_cb, .snapshot = snapshot_cb, .synced = synced_cb};
			/* the snapshot hook needs the batches: create them first, paused by
			 * having nothing queued until the replay is done */
			for (int sig = 0; sig < 2; sig++)
				c.batch[sig] = otlp_batch_new(&c.fwd_cfg[sig], sig, &bo);
			int wr = wal_open(c.spool, &wo, &wh, &c, &c.wal, err, sizeof err);
			if (wr < 0) {
				cli_error("cannot open spool '%s': %s", c.spool, err[0] ? err : strerror(-wr));
				status = wr == -EBUSY ? EXIT_NO : EXIT_UNREACHABLE;
				goto out;
			}
			/* under the log's lock, lest a compaction run before the
			 * replayed items are back in the queue it snapshots */
			wal_lock(c.wal);
			for (int sig = 0; sig < 2; sig++) {
				for (size_t i = c.acked[sig]; i < c.npending[sig]; i++) {
					struct buf *p = &c.pending[sig][i];
					enum otlp_encoding e = (enum otlp_encoding)(unsigned char)p->data[0];
					if (e == c.fwd_enc) {
						otlp_batch_add_encoded(c.batch[sig], p->data + 1, p->len - 1);
					} else {
						struct reenc re = {&c, sig};
						otlp_codec_decode(sig, e, (const uint8_t *)p->data + 1, p->len - 1, reenc_cb, &re,
						                  err, sizeof err);
					}
				}
				for (size_t i = 0; i < c.npending[sig]; i++)
					buf_free(&c.pending[sig][i]);
				free(c.pending[sig]);
				c.pending[sig] = NULL;
				if (c.npending[sig] > c.acked[sig])
					log_info("spool: %zu %s waiting from before", c.npending[sig] - c.acked[sig],
					         sig ? "log records" : "spans");
			}
			wal_unlock(c.wal);
		} else {
			for (int sig = 0; sig < 2; sig++)
				c.batch[sig] = otlp_batch_new(&c.fwd_cfg[sig], sig, &bo);
		}
		for (int sig = 0; sig < 2; sig++) {
			const char *const *l = sig ? log_l : span_l;
			metrics_gauge_fn_register(reg, "otlp_forward_queued_items", "Items waiting to be forwarded.", l,
			                          queued_fn, c.batch[sig]);
			metrics_counter_fn_register(reg, "otlp_forwarded_items_total", "Items the next hop took.", l,
			                            forwarded_fn, c.batch[sig]);
			metrics_counter_fn_register(reg, "otlp_forward_errors_total", "Forward batches that failed.", l,
			                            errors_fn, c.batch[sig]);
		}
	}

	struct http_router *router = http_router_new(reg);
	http_route_add(router, "POST", "/v1/traces", handle_export, (void *)(intptr_t)OTLP_SIGNAL_TRACES);
	http_route_add(router, "POST", "/v1/logs", handle_export, (void *)(intptr_t)OTLP_SIGNAL_LOGS);
	http_route_add_health(router);
	http_route_add_metrics(router, reg);
	c.server.cfg.metrics = reg;
	c.server.cfg.handler = http_router_handle;
	c.server.cfg.thread_fini = lines_free;
	c.server.cfg.handler_arg = router;
	struct http_server *srv = NULL;
	status = server_cli_listen(&c.server, &srv);
	if (status == EXIT_OK) {
		status = server_cli_ready(srv, c.forward ? "forward" : NULL, c.forward);
		if (status == EXIT_OK)
			status = server_cli_run(srv);
	}
	http_server_free(srv);
	http_router_free(router);
out:
	/* drained: what is queued gets one more try, bounded by the export
	 * timeout; with a spool, what is still not taken waits there */
	for (int sig = 0; sig < 2; sig++)
		if (c.batch[sig])
			otlp_batch_flush(c.batch[sig], c.spool ? 1000 : c.fwd_cfg[sig].timeout_ms);
	if (c.wal) {
		/* stop the batches before the log: their hook writes to it */
		for (int sig = 0; sig < 2; sig++) {
			struct otlp_batch *b = c.batch[sig];
			c.batch[sig] = NULL;
			otlp_batch_free(b);
		}
		wal_close(c.wal);
	}
	for (int sig = 0; sig < 2; sig++)
		otlp_batch_free(c.batch[sig]);
	metrics_free(reg);
	return status;
}
