/*
 * client.c -- the CLI subcommands: incr, get, set, del, list.
 *
 * Two ways to a counter, one output.  With --store the CLI opens the store
 * itself (lib/counter on a loop of its own); with --server it asks a
 * running `dsys-counter serve` over HTTP (libcurl, one keep-alive
 * connection).  Either way each key gets one JSON line on stdout:
 * {"key":K,"value":N} (del: "deleted":true and the old value), or
 * {"key":K,"error":"..."} when that key failed; diagnostics other than
 * "not found" also go to stderr.
 *
 * `incr -` reads keys (or {"key":..,"by":..} lines) from stdin in batches
 * of at most --window: a batch holds the lines already available (it never
 * waits for more input once it has one), so `tail -f | dsys-counter incr -`
 * answers as lines come while a pipe of a million keys moves --window at a
 * time.  A batch goes out at once -- to the store (all its commands issued
 * before the loop runs, so Redis gets them as one pipeline) or to the
 * service (one POST /incr with an array) -- and its results are printed in
 * input order before the next batch is read.
 *
 * Exit status: the worst of the lines: 3 backend unreachable, 4 timed out,
 * 2 bad input (a malformed line, an overflow), 1 absent (get, del), 0.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "cli/cli.h"
#include "io/curl_dl.h"
#include "obs/trace.h"
#include "http/client.h"
#include "http/url.h"
#include "dsys-counter.h"
#include "base/invariant.h"
#include "base/json.h"

#define MAX_LINE 8192

struct result {
	struct client *cl;
	int err;
	int64_t value;
	const char *why;              /* a bad line: this message */
	unsigned line;
	char key[COUNTER_MAX_KEY];
	size_t key_len;
	int64_t by;
};

struct client {
	struct config *cfg;
	enum { OP_INCR, OP_GET, OP_SET, OP_DEL, OP_LIST } op;
	/* --store */
	uv_loop_t loop;
	struct counter_store *store;
	struct counter *c;
	unsigned pending;
	/* --server */
	CURL *curl;
	struct curl_slist *headers;
	struct buf body, resp;
	char errbuf[CURL_ERROR_SIZE];
	int status;                   /* exit status so far */
	bool lines;                   /* incr -: results are per input line */
	struct result *res;           /* window of them */
};

static int exit_for(int err)
{
	switch (err) {
	case 0:
		return EXIT_OK;
	case -ENOENT:
	case -ENOSPC:
	case -EINVAL:
	case -EIO:
		return EXIT_NO;
	case -EOVERFLOW:
	case -EBADMSG:
	case -EDOM:
	case -EOPNOTSUPP:
		return EXIT_USAGE;
	case -ETIMEDOUT:
		return EXIT_TIMEOUT;
	default:
		return counter_err_unreachable(err) ? EXIT_UNREACHABLE : EXIT_NO;
	}
}

static void worse(struct client *cl, int st)
{
	/* 3 > 4 > 2 > 1 > 0: unreachable is the one to act on first */
	static const int rank[] = {0, 1, 2, 4, 3, 0};
	if (rank[st] > rank[cl->status])
		cl->status = st;
}

/* A line did not reach stdout: quiet exit 0 when the reader is gone
 * (EPIPE), else "write error: ..." and exit 1 -- never a silent success. */
static void stdout_failed(void)
{
	exit(cli_write_error(errno));
}

static void print_result(struct client *cl, struct result *r)
{
	struct buf b = BUF_INIT;
	struct json_writer w;
	json_writer_init(&w, &b);
	json_obj_begin(&w);
	if (r->why) {
		json_kv_u64(&w, "line", r->line);
		json_kv_str(&w, "error", r->why);
		worse(cl, EXIT_USAGE);
		cli_error("line %u: %s", r->line, r->why);   /* stdout may be a file nobody reads */
	} else {
		json_kv_strn(&w, "key", r->key, r->key_len);
		if (r->err == 0) {
			if (cl->op == OP_DEL)
				json_kv_bool(&w, "deleted", true);
			json_kv_i64(&w, "value", r->value);
		} else {
			json_kv_str(&w, "error", counter_strerror(r->err));
			worse(cl, exit_for(r->err));
			if (cl->lines)
				cli_error("line %u: '%.*s': %s", r->line, (int)r->key_len, r->key,
				          counter_strerror(r->err));
		}
	}
	json_obj_end(&w);
	if (json_emit(&b) < 0)
		stdout_failed();
	buf_free(&b);
}

/* ------------------------------------------------------------ --store */

static void op_done(void *ud, int err, int64_t value)
{
	struct result *r = ud;
	r->err = err;
	r->value = value;
	struct client *cl = r->cl;
	INVARIANT(cl->pending > 0);
	if (--cl->pending == 0)
		uv_stop(&cl->loop);
}

static void store_issue(struct client *cl, struct result *r)
{
	int e;
	r->cl = cl;
	cl->pending++;
	switch (cl->op) {
	case OP_INCR:
		e = counter_incr(cl->c, r->key, r->key_len, r->by, op_done, r);
		break;
	case OP_GET:
		e = counter_get(cl->c, r->key, r->key_len, op_done, r);
		break;
	case OP_SET:
		e = counter_set(cl->c, r->key, r->key_len, r->by, op_done, r);
		break;
	case OP_DEL:
		e = counter_del(cl->c, r->key, r->key_len, op_done, r);
		break;
	default:
		e = -EINVAL;
	}
	if (e < 0)
		op_done(r, e, 0);
}

static void store_wait(struct client *cl)
{
	while (cl->pending)
		uv_run(&cl->loop, UV_RUN_DEFAULT);
}

struct list_state {
	struct client *cl;
	bool done;
	int err;
};

static void list_cb(void *ud, int err, const struct counter_item *items, size_t n, bool done)
{
	struct list_state *ls = ud;
	if (err < 0)
		ls->err = err;
	for (size_t i = 0; i < n; i++) {
		struct buf b = BUF_INIT;
		struct json_writer w;
		json_writer_init(&w, &b);
		json_obj_begin(&w);
		json_kv_strn(&w, "key", items[i].key, items[i].key_len);
		json_kv_i64(&w, "value", items[i].value);
		json_obj_end(&w);
		if (json_emit(&b) < 0)
			stdout_failed();
		buf_free(&b);
	}
	if (done) {
		ls->done = true;
		uv_stop(&ls->cl->loop);
	}
}

static int store_open(struct client *cl)
{
	char err[512];
	uv_loop_init(&cl->loop);
	int r = counter_store_open(&cl->cfg->url, &cl->cfg->copt, &cl->store, err, sizeof err);
	if (r < 0) {
		cli_error("cannot open %s: %s", cl->cfg->url_text, err);
		return counter_open_exit(r);
	}
	r = counter_attach(cl->store, &cl->loop, &cl->c);
	if (r < 0) {
		cli_error("cannot use %s: %s", cl->cfg->url_text, strerror(-r));
		return EXIT_UNREACHABLE;
	}
	/* a URL that names what is not there (a database past the server's
	 * count, a cluster that is a plain Redis) fails here, named; an
	 * unreachable store is left for the operation to report */
	r = counter_check_wait(cl->c, &cl->loop);
	if (counter_err_config(r)) {
		cli_error("cannot use %s: %s", cl->cfg->url_text, counter_strerror(r));
		return counter_open_exit(r);
	}
	return 0;
}

static void store_close(struct client *cl)
{
	if (cl->c) {
		counter_detach(cl->c);
		uv_run(&cl->loop, UV_RUN_DEFAULT);
	}
	counter_store_close(cl->store);
	uv_run(&cl->loop, UV_RUN_DEFAULT);
	uv_loop_close(&cl->loop);
}

/* ------------------------------------------------------------ --server */

static size_t curl_write(char *p, size_t size, size_t n, void *ud)
{
	buf_append(ud, p, size * n);
	return size * n;
}

/* One request; returns the HTTP status, or -1 when the service could not
 * be reached (a diagnostic printed). */
static long http_call(struct client *cl, const char *method, const char *path,
                      const char *body, size_t len)
{
	char url[8192];
	const char *base = cl->cfg->server;
	size_t bl = strlen(base);
	while (bl && base[bl - 1] == '/')
		bl--;
	snprintf(url, sizeof url, "%s%.*s%s", strncmp(base, "http://", 7) ? "http://" : "",
	         (int)bl, base, path);
	buf_reset(&cl->resp);
	CURL *h = cl->curl;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)len);
	} else {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	}
	CURLcode rc = curl_easy_perform(h);
	if (rc != CURLE_OK) {
		/* the system call's error when there is one ("Connection refused"),
		 * as every other diagnostic here; else libcurl's own text */
		long os_err = 0;
		curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_err);
		cli_error("cannot reach %s: %s", cl->cfg->server,
		          rc == CURLE_OPERATION_TIMEDOUT ? "timed out"
		          : os_err ? strerror((int)os_err)
		          : cl->errbuf[0] ? cl->errbuf : curl_easy_strerror(rc));
		return rc == CURLE_OPERATION_TIMEDOUT ? -2 : -1;
	}
	long status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	return status;
}

/* The error of a failed call (http_call's -1 or -2). */
static int err_for_call(long st)
{
	return st == -2 ? -ETIMEDOUT : -ENOTCONN;
}

struct value_scan {
	bool has, has_key;
	int64_t value;
	const char *error;
	size_t error_len;
};

static int value_member(void *ctx, const struct json_token *k, const struct json_token *v)
{
	struct value_scan *s = ctx;
	if (json_token_eq(k, "value") && v->kind == JSON_KIND_NUMBER &&
	    json_parse_i64(v->text, v->len, &s->value) == 0)
		s->has = true;
	if (json_token_eq(k, "key") && v->kind == JSON_KIND_STRING)
		s->has_key = true;
	if (json_token_eq(k, "error") && v->kind == JSON_KIND_STRING) {
		s->error = v->text;
		s->error_len = v->len;
	}
	return 0;
}

/*
 * The error of one key's answer.  Every answer of the service about a key
 * names the key; one that does not is either a request the service
 * refused (400), the service's own unavailability (503), or not from a
 * counter service at all -- dsys-serve answers POST /incr with 404
 * {"error":"not found"}, which must not read as an absent key.
 */
static int answer_err(long st, const struct value_scan *vs)
{
	if (!vs->has_key)
		return st == 400 ? -EBADMSG : st == 503 ? -ENOTCONN : -EPROTO;
	int err = counter_err_from_answer(st, vs->error, vs->error_len);
	return err == 0 && !vs->has ? -EPROTO : err;
}

/* Say once per run that --server is not a counter service. */
static void not_a_service(struct client *cl, long st, const char *method, const char *path)
{
	static bool said;
	if (said)
		return;
	said = true;
	cli_error("unexpected answer from %s: HTTP %ld to %s %s is not what a dsys-counter service answers",
	          cl->cfg->server, st, method, path);
}

/* One key through the service: fills r->err and r->value. */
static void server_one(struct client *cl, struct result *r)
{
	struct buf path = BUF_INIT, body = BUF_INIT;
	struct json_writer w;
	json_writer_init(&w, &body);
	const char *method = "GET";
	if (cl->op == OP_INCR) {
		method = "POST";
		buf_puts(&path, "/incr");
		json_obj_begin(&w);
		json_kv_strn(&w, "key", r->key, r->key_len);
		json_kv_i64(&w, "by", r->by);
		json_obj_end(&w);
	} else {
		buf_puts(&path, "/counters/");
		url_encode(&path, r->key, r->key_len);
		if (cl->op == OP_SET) {
			method = "PUT";
			json_obj_begin(&w);
			json_kv_i64(&w, "value", r->by);
			json_obj_end(&w);
		} else if (cl->op == OP_DEL) {
			method = "DELETE";
		}
	}
	long st = http_call(cl, method, path.data, body.len ? body.data : NULL, body.len);
	r->err = err_for_call(st);
	if (st > 0) {
		struct value_scan vs = {0};
		json_scan_object(cl->resp.data ? cl->resp.data : "", cl->resp.len, value_member, &vs);
		r->err = answer_err(st, &vs);
		r->value = vs.value;
		if (r->err == -EPROTO)
			not_a_service(cl, st, method, path.data);
		else if (st != 200 && st != 404 && vs.error)
			cli_error("%.*s: %.*s", (int)r->key_len, r->key, (int)vs.error_len, vs.error);
	}
	buf_free(&path);
	buf_free(&body);
}

/* A batch of increments as one POST /incr array; prints the results. */
static void server_batch(struct client *cl, struct result *rs, unsigned n)
{
	struct buf *b = &cl->body;
	buf_reset(b);
	struct json_writer w;
	json_writer_init(&w, b);
	json_arr_begin(&w);
	unsigned sent = 0;
	for (unsigned i = 0; i < n; i++) {
		if (rs[i].why)
			continue;
		json_obj_begin(&w);
		json_kv_strn(&w, "key", rs[i].key, rs[i].key_len);
		json_kv_i64(&w, "by", rs[i].by);
		json_obj_end(&w);
		sent++;
	}
	json_arr_end(&w);
	long st = sent ? http_call(cl, "POST", "/incr", b->data, b->len) : 200;
	/* walk the answer array alongside the sent items */
	const char *p = cl->resp.data ? cl->resp.data : "";
	size_t len = cl->resp.len, i = 0;
	bool array = false;
	if (st > 0) {
		while (i < len && (p[i] == ' ' || p[i] == '\n' || p[i] == '\r' || p[i] == '\t'))
			i++;
		array = i < len && p[i] == '[';
		i++;
	}
	for (unsigned k = 0; k < n; k++) {
		struct result *r = &rs[k];
		if (r->why || !sent) {
			print_result(cl, r);
			continue;
		}
		struct json_token tok;
		long e = -1;
		if (array) {
			while (i < len && (p[i] == ' ' || p[i] == ',' || p[i] == '\n'))
				i++;
			e = json_scan_value(p + i, len - i, &tok);
		}
		if (e > 0 && tok.kind == JSON_KIND_OBJECT) {
			struct value_scan vs = {0};
			json_scan_object(tok.text, tok.len, value_member, &vs);
			i += (size_t)e;
			r->err = vs.has && vs.has_key ? 0 : answer_err(0, &vs);
			r->value = vs.value;
			if (r->err == -EPROTO)
				not_a_service(cl, st, "POST", "/incr");
		} else {
			r->err = st < 0 ? err_for_call(st) : counter_err_from_answer(st == 200 ? 500 : st, NULL, 0);
			if (r->err == -EPROTO) {
				not_a_service(cl, st, "POST", "/incr");
			} else if (st > 0 && !array) {
				struct value_scan vs = {0};
				json_scan_object(p, len, value_member, &vs);
				if (vs.error)
					cli_error("%.*s", (int)vs.error_len, vs.error);
			}
		}
		print_result(cl, r);
	}
}

static int server_open(struct client *cl)
{
	const char *why;
	if (!curl_dl_load(&why)) {
		cli_error("%s", why);
		return EXIT_UNREACHABLE;
	}
	cl->curl = curl_easy_init();
	if (!cl->curl) {
		cli_error("cannot start libcurl");
		return EXIT_UNREACHABLE;
	}
	struct http_url u;
	if (http_url_parse(cl->cfg->server, &u) < 0) {
		cli_error("invalid server URL '%s': expected http://HOST:PORT", cl->cfg->server);
		return EXIT_USAGE;
	}
	(void)u;
	CURL *h = cl->curl;
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, curl_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &cl->resp);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cl->errbuf);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(cl->cfg->copt.timeout_ms + 10000));
	static const char *const hdrs[] = {"Content-Type: application/json", "Expect:"};
	for (size_t i = 0; i < 2; i++)
		cl->headers = curl_slist_append(cl->headers, hdrs[i]);
	/* under `dsys-trace exec` (TRACEPARENT set), the service's spans of
	 * these requests join the caller's trace, as its children */
	static struct trace_context tc;
	if (trace_context_from_env(&tc) == 0) {
		static char line[sizeof "tracestate: " + TRACE_STATE_MAX];
		char tp[TRACE_PARENT_LEN + 1];
		trace_parent_format(&tc, tp);
		snprintf(line, sizeof line, "traceparent: %s", tp);
		cl->headers = curl_slist_append(cl->headers, line);
		if (tc.state[0]) {
			snprintf(line, sizeof line, "tracestate: %s", tc.state);
			cl->headers = curl_slist_append(cl->headers, line);
		}
		const char *bg = trace_baggage_from_env(); /* carried, as OpenTelemetry's propagators do */
		if (bg) {
			static char bl[sizeof "baggage: " + TRACE_BAGGAGE_MAX];
			snprintf(bl, sizeof bl, "baggage: %s", bg);
			cl->headers = curl_slist_append(cl->headers, bl);
		}
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, cl->headers);
	return 0;
}

/* ------------------------------------------------------------ stdin */

struct reader {
	char buf[MAX_LINE * 2];
	size_t start, end;
	bool eof, skipping;
	bool failed;          /* a read error ended the input early */
};

/* The next line (without its newline) into *line, 1; 0 when none is
 * ready and block is false; -1 at the end.  Lines longer than MAX_LINE
 * come back as one empty line marked *too_long. */
static int reader_next(struct reader *rd, bool block, char **line, size_t *len, bool *too_long)
{
	*too_long = false;
	for (;;) {
		char *nl = memchr(rd->buf + rd->start, '\n', rd->end - rd->start);
		if (nl) {
			*line = rd->buf + rd->start;
			*len = (size_t)(nl - *line);
			rd->start = (size_t)(nl - rd->buf) + 1;
			if (rd->skipping) {
				rd->skipping = false;
				*too_long = true;
				*len = 0;
			}
			return 1;
		}
		if (rd->eof) {
			if (rd->end > rd->start || rd->skipping) {
				*line = rd->buf + rd->start;
				*len = rd->end - rd->start;
				rd->start = rd->end;
				if (rd->skipping) {
					rd->skipping = false;
					*too_long = true;
					*len = 0;
				}
				return 1;
			}
			return -1;
		}
		if (rd->start > 0) {
			memmove(rd->buf, rd->buf + rd->start, rd->end - rd->start);
			rd->end -= rd->start;
			rd->start = 0;
		}
		if (rd->end - rd->start > MAX_LINE) {   /* too long: drop it, remember */
			rd->skipping = true;
			rd->start = rd->end = 0;
		}
		if (!block) {
			struct pollfd pfd = {0, POLLIN, 0};
			if (poll(&pfd, 1, 0) <= 0)
				return 0;
		}
		ssize_t n = read(0, rd->buf + rd->end, sizeof rd->buf - rd->end);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			cli_error("cannot read stdin: %s", strerror(errno));
			rd->eof = true;
			rd->failed = true;
			continue;
		}
		if (n == 0)
			rd->eof = true;
		rd->end += (size_t)n;
	}
}

/* A line of incr -: a key, or {"key":..,"by":..}. */
static void parse_line(struct result *r, char *line, size_t len, int64_t def_by)
{
	while (len && (line[len - 1] == '\r'))
		len--;
	size_t i = 0;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	r->why = NULL;
	r->by = def_by;   /* --by, or 1: for lines that give none */
	if (i < len && line[i] == '{') {
		struct incr_spec s;
		long used;
		const char *key;
		size_t key_len;
		char keybuf[COUNTER_KEYBUF];
		if (incr_spec_parse(line + i, len - i, def_by, &s, &used) < 0 ||
		    incr_spec_key(&s, keybuf, &key, &key_len) < 0) {
			r->why = s.why;
			return;
		}
		if (!only_space(line, i + (size_t)used, len)) {
			r->why = "malformed JSON: text after the object";
			return;
		}
		memcpy(r->key, key, key_len);
		r->key_len = key_len;
		r->by = s.by;
		return;
	}
	r->why = key_check(line, len);
	if (r->why)
		return;
	memcpy(r->key, line, len);
	r->key_len = len;
}

static void run_batch(struct client *cl, struct result *rs, unsigned n)
{
	if (cl->curl) {
		server_batch(cl, rs, n);
		return;
	}
	for (unsigned i = 0; i < n; i++)
		if (!rs[i].why)
			store_issue(cl, &rs[i]);
	store_wait(cl);
	for (unsigned i = 0; i < n; i++)
		print_result(cl, &rs[i]);
}

static void incr_stdin(struct client *cl)
{
	unsigned window = cl->cfg->window, lineno = 0;
	if (cl->curl && window > DEFAULT_MAX_BATCH)
		window = DEFAULT_MAX_BATCH;   /* a batch is one request: the service's default --max-batch */
	struct reader *rd = calloc(1, sizeof *rd);
	cl->lines = true;
	cl->res = calloc(window, sizeof *cl->res);
	INVARIANT(rd && cl->res);
	for (;;) {
		unsigned n = 0;
		int got;
		char *line;
		size_t len;
		bool too_long;
		while (n < window && (got = reader_next(rd, n == 0, &line, &len, &too_long)) > 0) {
			lineno++;
			struct result *r = &cl->res[n];
			r->line = lineno;
			if (too_long) {
				r->why = "line is longer than 8192 bytes";
				n++;
				continue;
			}
			size_t k = 0;
			while (k < len && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r'))
				k++;
			if (k == len)
				continue;   /* blank lines are skipped */
			parse_line(r, line, len, cl->cfg->by);
			n++;
		}
		if (n)
			run_batch(cl, cl->res, n);
		if (n == 0 && rd->eof && rd->start == rd->end)
			break;
	}
	if (rd->failed)
		worse(cl, EXIT_USAGE);   /* the input was cut short: not every line was seen */
	free(rd);
	free(cl->res);
}

/* ------------------------------------------------------------ entry */

static void client_close(struct client *cl)
{
	if (cl->cfg->server) {
		if (cl->curl)
			curl_easy_cleanup(cl->curl);
		if (cl->headers)   /* none when libcurl did not load */
			curl_slist_free_all(cl->headers);
		buf_free(&cl->body);
		buf_free(&cl->resp);
	} else {
		store_close(cl);
	}
}

static void usage_hint(void)
{
	fprintf(stderr, "Try 'dsys-counter --help' for more information.\n");
}

int counter_client(struct config *cfg, int argc, char **argv)
{
	static struct client cl;
	cl.cfg = cfg;
	const char *sub = cfg->sub;
	unsigned want;
	if (!strcmp(sub, "incr"))
		cl.op = OP_INCR, want = 1;
	else if (!strcmp(sub, "get"))
		cl.op = OP_GET, want = 1;
	else if (!strcmp(sub, "set"))
		cl.op = OP_SET, want = 2;
	else if (!strcmp(sub, "del"))
		cl.op = OP_DEL, want = 1;
	else
		cl.op = OP_LIST, want = 0;
	if ((unsigned)argc != want) {
		if ((unsigned)argc < want)
			cli_error("%s: missing %s", sub, want == 2 && argc == 1 ? "value" : "key");
		else
			cli_error("%s: unexpected argument '%s'", sub, argv[want]);
		usage_hint();
		return EXIT_USAGE;
	}
	if (cfg->by_set && cl.op != OP_INCR) {
		cli_error("--by applies to incr only");
		return EXIT_USAGE;
	}
	if (cfg->prefix && cl.op != OP_LIST) {
		cli_error("--prefix applies to list only");
		return EXIT_USAGE;
	}
	bool from_stdin = cl.op == OP_INCR && !strcmp(argv[0], "-");
	struct result one = {0};
	if (want >= 1 && !from_stdin) {
		size_t kl = strlen(argv[0]);
		const char *why = key_check(argv[0], kl);
		if (why) {
			cli_error("invalid key '%s': %s", argv[0], why);
			return EXIT_USAGE;
		}
		memcpy(one.key, argv[0], kl);
		one.key_len = kl;
		one.by = cfg->by;
	}
	if (cl.op == OP_SET && parse_i64(argv[1], &one.by) < 0) {
		cli_error("invalid value '%s': expected an integer in the int64 range", argv[1]);
		return EXIT_USAGE;
	}

	/* get and list only read: a file: store is opened read-only for them
	 * (a shared lock, nothing written), so they work on a store they may
	 * not write, and beside each other */
	cfg->copt.read_only = cl.op == OP_GET || cl.op == OP_LIST;
	int r = cfg->server ? server_open(&cl) : store_open(&cl);
	if (r) {
		client_close(&cl);
		return r;
	}
	if (from_stdin) {
		incr_stdin(&cl);
	} else if (cl.op == OP_LIST) {
		const char *prefix = cfg->prefix ? cfg->prefix : "";
		if (cl.curl) {
			struct buf path = BUF_INIT;
			buf_puts(&path, "/counters?prefix=");
			url_encode(&path, prefix, strlen(prefix));
			long st = http_call(&cl, "GET", path.data, NULL, 0);
			char *ctype = NULL;
			if (st == 200)
				curl_easy_getinfo(cl.curl, CURLINFO_CONTENT_TYPE, &ctype);
			int lerr = st < 0 ? err_for_call(st) : counter_err_from_answer(st, NULL, 0);
			if (st == 200 && (!ctype || strncmp(ctype, "application/jsonl", 17)))
				lerr = -EPROTO;   /* a 200 of another server: not JSON lines of counters */
			if (lerr == -EPROTO)
				not_a_service(&cl, st, "GET", path.data);
			buf_free(&path);
			if (lerr == 0) {
				if (fwrite(cl.resp.data ? cl.resp.data : "", 1, cl.resp.len, stdout) != cl.resp.len ||
				    fflush(stdout) != 0)
					stdout_failed();
			} else {
				if (lerr != -EPROTO && st > 0)
					cli_error("list: %.*s", (int)cl.resp.len, cl.resp.data ? cl.resp.data : "");
				worse(&cl, exit_for(lerr));
			}
		} else {
			struct list_state ls = {&cl, false, 0};
			r = counter_list(cl.c, prefix, strlen(prefix), list_cb, &ls);
			if (r < 0)
				list_cb(&ls, r, NULL, 0, true);
			while (!ls.done)
				uv_run(&cl.loop, UV_RUN_DEFAULT);
			if (ls.err < 0) {
				cli_error("list: %s%s%s", counter_strerror(ls.err),
				          counter_err_unreachable(ls.err) ? " at " : "",
				          counter_err_unreachable(ls.err) ? cfg->url_text : "");
				worse(&cl, exit_for(ls.err));
			}
		}
	} else {
		if (cl.curl) {
			server_one(&cl, &one);
		} else {
			store_issue(&cl, &one);
			store_wait(&cl);
		}
		if (one.err && one.err != -ENOENT && !cl.curl)
			cli_error("%s '%s': %s%s%s", sub, argv[0], counter_strerror(one.err),
			          counter_err_unreachable(one.err) ? " at " : "",
			          counter_err_unreachable(one.err) ? cfg->url_text : "");
		print_result(&cl, &one);
	}
	client_close(&cl);
	return cl.status;
}
