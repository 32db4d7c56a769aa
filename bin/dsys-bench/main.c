/*
 * dsys-bench -- an HTTP/1.1 load generator with exact latency percentiles.
 *
 * This file is the command: the option table, the targets (URLs, or JSON
 * lines from --targets), --find-max's search, --fail-if's verdict and the
 * output.  One run is engine.c's bench_run(); the JSON is report.c's; the
 * `plot` subcommand and --plot are plot.c's.
 *
 * wrk's command lines work unchanged: -t -c -d -H --latency --timeout mean
 * the same here (--latency is accepted and changes nothing: the percentile
 * rows are always printed), and wrk2's -R/--rate too.
 */
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "bench.h"
#include "proto.h"
#include "base/buf.h"
#include "cli/cli.h"
#include "obs/trace.h"
#include "cond.h"
#include "base/json.h"
#include "io/pacer.h"
#include "plot.h"
#include "report.h"

#define MAX_HEADERS 64
#define MAX_TARGETS 1024
#define MAX_BODY (64u << 20)

enum {
	OPT_THREADS = 1, OPT_CONNECTIONS, OPT_DURATION, OPT_REQUESTS, OPT_WARMUP,
	OPT_METHOD, OPT_HEADER, OPT_BODY, OPT_TIMEOUT, OPT_PIPELINE, OPT_RATE,
	OPT_FIND_MAX, OPT_SLO, OPT_TRIALS, OPT_FAIL_IF, OPT_TARGETS, OPT_INTERVAL,
	OPT_PLOT, OPT_LATENCY, OPT_MAX_HEADER, OPT_BATCH_WAIT, OPT_JSON,
	OPT_H2, OPT_STREAMS, OPT_GRPC, OPT_PROTO_MESSAGE,
	OPT_TRACE,
};

static const struct cli_option options[] = {
	{"threads", 't', "N", "DSYS_BENCH_THREADS", "event loops, one per thread (default: the number of CPUs)", OPT_THREADS},
	{"connections", 'c', "N", "DSYS_BENCH_CONNECTIONS", "keep-alive connections over all threads (default: 10)", OPT_CONNECTIONS},
	{"duration", 'd', "DURATION", "DSYS_BENCH_DURATION", "how long to run: 500ms 10s 1m (default: 10s, or until --requests)", OPT_DURATION},
	{"requests", 'n', "N", NULL, "send exactly N requests, then stop", OPT_REQUESTS},
	{"warmup", 'w', "DURATION", NULL, "run this long first without measuring (default: 0)", OPT_WARMUP},
	{"method", 'm', "METHOD", NULL, "request method (default: GET)", OPT_METHOD},
	{"header", 'H', "'NAME: VALUE'", NULL, "add a request header (repeatable)", OPT_HEADER},
	{"trace", 0, NULL, NULL, "send a traceparent on every request: the TRACEPARENT span's children (dsys-trace exec), else a new trace", OPT_TRACE},
	{"body", 'b', "DATA|@FILE", NULL, "request body, or the contents of FILE", OPT_BODY},
	{"timeout", 'T', "DURATION", "DSYS_BENCH_TIMEOUT", "cancel a request (and replace its connection) after this (default: 2s)", OPT_TIMEOUT},
	{"pipeline", 'P', "N", NULL, "requests in flight per connection (default: 1)", OPT_PIPELINE},
	{"h2", 0, NULL, NULL, "HTTP/2 over cleartext with prior knowledge (h2c) instead of HTTP/1.1", OPT_H2},
	{"streams", 0, "N", NULL, "with --h2 or --grpc: concurrent streams per connection (default: 1)", OPT_STREAMS},
	{"grpc", 0, "SERVICE/METHOD", NULL, "unary gRPC calls to /SERVICE/METHOD over h2c (implies --h2)", OPT_GRPC},
	{"proto-message", 0, "JSON|@FILE", NULL, "the gRPC request: protobuf bytes in FILE, or JSON for a known message (default: empty)", OPT_PROTO_MESSAGE},
	{"rate", 'R', "RATE", NULL, "open loop at RATE requests: 1000, 1000/s, 60/m, 5/100ms", OPT_RATE},
	{"find-max", 0, NULL, NULL, "search for the highest rate that meets --slo", OPT_FIND_MAX},
	{"slo", 0, "TERMS", NULL, "objective for --find-max: 'p99<5ms,errors=0'", OPT_SLO},
	{"trials", 0, "N", NULL, "rates --find-max tries after the flat-out run (default: 8)", OPT_TRIALS},
	{"fail-if", 0, "TERMS", NULL, "exit 1 when any term holds: 'p99>5ms,errors>0'", OPT_FAIL_IF},
	{"targets", 0, "FILE", NULL, "more targets: JSON lines with a url or addr field (- for stdin)", OPT_TARGETS},
	{"interval", 'i', "DURATION", NULL, "also print one JSON line per interval", OPT_INTERVAL},
	{"plot", 0, "FILE.svg", NULL, "write a latency-by-percentile chart", OPT_PLOT},
	{"json", 0, NULL, NULL, "print JSON even when stdout is a terminal", OPT_JSON},
	{"latency", 'L', NULL, NULL, "accepted for wrk compatibility: percentiles are always printed", OPT_LATENCY},
	{"max-header", 0, "SIZE", NULL, "largest response head accepted (default: 8k)", OPT_MAX_HEADER},
	{"batch-wait", 0, "DURATION", "DSYS_BENCH_BATCH_WAIT", "flat out on io_uring: wait at most this for a batch of answers (default: 50us; 0: take each at once)", OPT_BATCH_WAIT},
	CLI_END
};

static const struct cli_spec spec = {
	"dsys-bench", "[OPTION]... URL...",
	"Drive HTTP/1.1, HTTP/2 (h2c) or unary gRPC load at one or more URLs and report exact latency percentiles.",
	options,
	"URLs are http://HOST[:PORT][/PATH]; several URLs share the connections round-robin.\n"
	"Subcommand: dsys-bench plot RESULT.json... -o FILE.svg   (compare runs in one chart)\n"
	"Output: one JSON object on stdout when the run ends (see dsys-bench(1)); on a\n"
	"terminal a summary for a person instead, unless --json.\n"
	"I/O goes through io_uring where the kernel allows it; DSYS_BENCH_IO=uv keeps it on libuv.\n"
	"Exit: 0 run completed (HTTP errors are counted, not fatal), 1 --fail-if held,\n"
	"--find-max found no rate or stdout could not be written, 2 bad usage,\n"
	"3 no connection could be made (refused, or the name did not resolve).\n",
};

struct opts {
	struct bench_cfg cfg;
	bool duration_set;
	const char *method;
	const char *headers[MAX_HEADERS];
	size_t n_headers;
	bool trace;               /* --trace */
	char *body;
	size_t body_len;
	bool find_max;
	unsigned trials;
	bool trials_set;
	bool json;                /* --json: JSON even on a terminal */
	bool have_slo, have_fail_if;
	struct cond slo, fail_if;
	const char *targets_file;
	const char *plot;
	uint64_t max_header;
	bool method_set;          /* --method given */
	bool streams_set;         /* --streams given */
	const char *grpc;         /* --grpc SERVICE/METHOD, without a leading / */
	char *proto;              /* --proto-message's text or file contents */
	size_t proto_len;
};

/* The whole of path ("-": stdin), at most MAX_BODY bytes, into a malloc'd
 * *out (NUL-terminated, never NULL on success). */
static int read_file(const char *path, char **out, size_t *len)
{
	struct buf b = BUF_INIT;
	int r = buf_read_file(&b, path, MAX_BODY);
	if (r < 0) {
		buf_free(&b);
		return r;
	}
	buf_reserve(&b, 1);
	*out = b.data;
	*len = b.len;
	return 0;
}

static int parse_duration_ns(const char *arg, uint64_t *out, bool zero_ok)
{
	uint64_t us;
	if (parse_duration_us(arg, &us) < 0 || (!zero_ok && us == 0) || us > 365ULL * 86400 * 1000000)
		return cli_bad_value(NULL, arg, "expected a duration like 500ms, 10s or 1m");
	*out = us * 1000;
	return 0;
}

static int on_option(void *ctx, int id, const char *arg)
{
	struct opts *o = ctx;
	struct bench_cfg *cfg = &o->cfg;
	char err[160];
	switch (id) {
	case OPT_THREADS:
		return cli_opt_uint(arg, 1, 1024, &cfg->threads);
	case OPT_CONNECTIONS:
		return cli_opt_uint(arg, 1, 1000000, &cfg->connections);
	case OPT_DURATION:
		o->duration_set = true;
		return parse_duration_ns(arg, &cfg->duration_ns, false);
	case OPT_REQUESTS:
		if (parse_u64(arg, &cfg->requests) < 0 || cfg->requests == 0)
			return cli_bad_value(NULL, arg, "expected a positive whole number");
		return 0;
	case OPT_WARMUP:
		return parse_duration_ns(arg, &cfg->warmup_ns, true);
	case OPT_METHOD:
		if (!http_client_method_ok(arg))
			return cli_bad_value(NULL, arg, "not an HTTP method token");
		o->method = arg;
		o->method_set = true;
		return 0;
	case OPT_HEADER: {
		if (o->n_headers == MAX_HEADERS)
			return cli_bad_value(NULL, arg, "too many headers");
		const char *c = strchr(arg, ':');
		if (!c || c == arg || strpbrk(arg, "\r\n"))
			return cli_bad_value(NULL, arg, "expected 'NAME: VALUE'");
		o->headers[o->n_headers++] = arg;
		return 0;
	}
	case OPT_TRACE:
		o->trace = true;
		return 0;
	case OPT_BODY:
		free(o->body);
		o->body = NULL;
		if (arg[0] == '@') {
			int r = read_file(arg + 1, &o->body, &o->body_len);
			if (r < 0) {
				cli_error("cannot read '%s': %s", arg + 1, strerror(-r));
				return -1;
			}
		} else {
			o->body = strdup(arg);
			o->body_len = strlen(arg);
		}
		return 0;
	case OPT_TIMEOUT:
		return parse_duration_ns(arg, &cfg->timeout_ns, false);
	case OPT_BATCH_WAIT: {
		int r = parse_duration_ns(arg, &cfg->batch_wait_ns, true);
		if (r == 0 && cfg->batch_wait_ns > 10ULL * 1000000)
			return cli_bad_value(NULL, arg, "at most 10ms");
		return r;
	}
	case OPT_PIPELINE:
		return cli_opt_uint(arg, 1, 1024, &cfg->pipeline);
	case OPT_H2:
		cfg->h2 = true;
		return 0;
	case OPT_STREAMS:
		o->streams_set = true;
		return cli_opt_uint(arg, 1, 1024, &cfg->pipeline);
	case OPT_GRPC: {
		const char *m = arg[0] == '/' ? arg + 1 : arg;
		const char *slash = strchr(m, '/');
		if (!slash || slash == m || !slash[1] || strchr(slash + 1, '/') ||
		    strpbrk(m, " \t\r\n?#%") || strlen(m) > 1000)
			return cli_bad_value(NULL, arg, "expected SERVICE/METHOD, e.g. grpc.health.v1.Health/Check");
		o->grpc = m;
		cfg->h2 = cfg->grpc = true;
		return 0;
	}
	case OPT_PROTO_MESSAGE:
		free(o->proto);
		o->proto = NULL;
		if (arg[0] == '@') {
			int r = read_file(arg + 1, &o->proto, &o->proto_len);
			if (r < 0) {
				cli_error("cannot read '%s': %s", arg + 1, strerror(-r));
				return -1;
			}
		} else {
			o->proto = strdup(arg);
			o->proto_len = strlen(arg);
		}
		return 0;
	case OPT_RATE: {
		int r = pacer_parse_rate(arg, &cfg->rate_count, &cfg->rate_per_ns);
		if (r == -ERANGE)
			return cli_bad_value(NULL, arg, "above 10^9 requests per second");
		if (r < 0)
			return cli_bad_value(NULL, arg, "expected a rate like 1000, 1000/s, 60/m or 5/100ms");
		return 0;
	}
	case OPT_FIND_MAX:
		o->find_max = true;
		return 0;
	case OPT_SLO:
		if (cond_parse(arg, &o->slo, err, sizeof err) < 0)
			return cli_bad_value(NULL, arg, err);
		o->have_slo = true;
		return 0;
	case OPT_TRIALS:
		o->trials_set = true;
		return cli_opt_uint(arg, 1, 100, &o->trials);
	case OPT_FAIL_IF:
		if (cond_parse(arg, &o->fail_if, err, sizeof err) < 0)
			return cli_bad_value(NULL, arg, err);
		o->have_fail_if = true;
		return 0;
	case OPT_TARGETS:
		o->targets_file = arg;
		return 0;
	case OPT_INTERVAL:
		return parse_duration_ns(arg, &cfg->interval_ns, false);
	case OPT_PLOT:
		o->plot = arg;
		return 0;
	case OPT_LATENCY:
		return 0;
	case OPT_JSON:
		o->json = true;
		return 0;
	case OPT_MAX_HEADER:
		if (parse_size(arg, &o->max_header) < 0 || o->max_header < 256 ||
		    o->max_header > (16u << 20))
			return cli_bad_value(NULL, arg, "expected a size from 256 to 16M");
		return 0;
	}
	return 0;
}

/* ------------------------------------------------------------ targets */

static struct bench_target targets[MAX_TARGETS];
static size_t n_targets;

static int add_target(const char *url)
{
	if (n_targets == MAX_TARGETS) {
		cli_error("too many targets (at most %d)", MAX_TARGETS);
		return -1;
	}
	struct bench_target *t = &targets[n_targets];
	int r = http_url_parse(url, &t->u);
	if (r == HTTP_URL_ESCHEME) {
		cli_error("unsupported URL '%s': only http:// is supported (no TLS; "
		          "put a TLS-terminating proxy in front to measure https)", url);
		return -1;
	}
	if (r < 0) {
		cli_error("invalid URL '%s': expected http://HOST[:PORT][/PATH]", url);
		return -1;
	}
	t->url = strdup(url);
	n_targets++;
	return 0;
}

struct target_line {
	char url[HTTP_URL_PATH_MAX + HTTP_URL_HOST_MAX + 16];
	bool found;
};

/* "url" or "addr" from one JSON object: json_scan_object, no tree. */
static int target_member(void *ctx, const struct json_token *key, const struct json_token *value)
{
	struct target_line *tl = ctx;
	bool is_url = json_token_eq(key, "url"), is_addr = json_token_eq(key, "addr");
	if ((!is_url && !is_addr) || value->kind != JSON_KIND_STRING || tl->found)
		return 0;
	if (value->len + 8 >= sizeof tl->url)
		return -EINVAL;
	char tmp[sizeof tl->url];
	long n = json_token_unescape(value, tmp);
	if (n < 0)
		return -EINVAL;
	tmp[n] = '\0';
	struct buf u = BUF_INIT;
	if (is_addr && !strstr(tmp, "://"))
		buf_printf(&u, "http://%s/", tmp);
	else
		buf_puts(&u, tmp);
	if (u.len >= sizeof tl->url) {
		buf_free(&u);
		return -EINVAL;
	}
	memcpy(tl->url, u.data, u.len + 1);
	buf_free(&u);
	tl->found = true;
	return 0;
}

static int read_targets(const char *path)
{
	char *text;
	size_t len;
	int r = read_file(path, &text, &len);
	if (r < 0) {
		cli_error("cannot read targets from '%s': %s", path, strerror(-r));
		return -1;
	}
	int line_no = 0, rc = 0;
	for (char *line = text; line < text + len && rc == 0;) {
		char *nl = memchr(line, '\n', (size_t)(text + len - line));
		size_t n = nl ? (size_t)(nl - line) : (size_t)(text + len - line);
		line_no++;
		size_t i = 0;
		while (i < n && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
			i++;
		if (i < n) {
			struct target_line tl = {.found = false};
			long used = json_scan_object(line + i, n - i, target_member, &tl);
			if (used < 0 || !tl.found) {
				cli_error("targets line %d: expected a JSON object with a \"url\" or \"addr\" string",
				          line_no);
				rc = -1;
			} else if (add_target(tl.url) < 0) {
				rc = -1;
			}
		}
		line = nl ? nl + 1 : text + len;
	}
	free(text);
	return rc;
}

/* 0, or -1 with why (for "cannot connect to URL: WHY") filled in. */
/*
 * --trace: every request carries one traceparent, so the servers' spans
 * of the whole run hang under one parent: the span in TRACEPARENT (the
 * `dsys-trace exec` that runs us), else a new trace (sampled) whose
 * parent span only names the run.  One header for all, since a request
 * is built once and sent as is; its tracestate passes on too.
 */
static int add_trace_headers(struct opts *o)
{
	static char tp[sizeof "traceparent: " + TRACE_PARENT_LEN];
	static char ts[sizeof "tracestate: " + TRACE_STATE_MAX];
	static struct trace_context c;
	int r = trace_context_from_env(&c);
	if (r == -EINVAL)
		cli_error("ignoring TRACEPARENT: not a valid W3C traceparent; starting a new trace");
	if (r < 0) {
		memset(&c, 0, sizeof c);
		trace_id_random(c.trace_id);
		trace_span_id_random(c.span_id);
		c.flags = TRACE_FLAG_SAMPLED;
	}
	if (o->n_headers + 3 > MAX_HEADERS) {
		cli_error("--trace: too many --header options to add traceparent");
		return -1;
	}
	char v[TRACE_PARENT_LEN + 1];
	trace_parent_format(&c, v);
	snprintf(tp, sizeof tp, "traceparent: %s", v);
	o->headers[o->n_headers++] = tp;
	if (c.state[0]) {
		snprintf(ts, sizeof ts, "tracestate: %s", c.state);
		o->headers[o->n_headers++] = ts;
	}
	const char *bg = trace_baggage_from_env();
	if (bg) { /* BAGGAGE rides along with the context, as OpenTelemetry's propagators do */
		static char bl[sizeof "baggage: " + TRACE_BAGGAGE_MAX];
		snprintf(bl, sizeof bl, "baggage: %s", bg);
		o->headers[o->n_headers++] = bl;
	}
	return 0;
}

static int resolve_target(struct bench_target *t, char *why, size_t why_len)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *res = NULL;
	char port[8];
	snprintf(port, sizeof port, "%u", t->u.port);
	int r = getaddrinfo(t->u.host, port, &hints, &res);
	if (r != 0 || !res) {
		snprintf(why, why_len, "the name '%s' did not resolve (%s)", t->u.host,
		         r != 0 ? gai_strerror(r) : "no address");
		return -1;
	}
	memcpy(&t->addr, res->ai_addr, res->ai_addrlen);
	t->addr_len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* ------------------------------------------------------------ running */

/* On a terminal the lines are for a person (report_human), else JSON. */
static bool human;

/* Print b on stdout; a failed write ends the program (EPIPE: quietly, 0). */
static void emit_text(struct buf *b)
{
	if (b->len && (fwrite(b->data, 1, b->len, stdout) != b->len || fflush(stdout) != 0))
		exit(cli_write_error(errno));
	buf_free(b);
}

static void print_interval(void *ctx, const struct bench_stats *iv, uint64_t elapsed_ns,
                           uint64_t span_ns)
{
	struct buf b = BUF_INIT;
	if (human) {
		char what[32];
		snprintf(what, sizeof what, "%8.2fs", (double)elapsed_ns / 1e9);
		report_human_line(&b, what, iv, span_ns ? (double)iv->requests * 1e9 / (double)span_ns : 0);
		emit_text(&b);
		return;
	}
	struct json_writer w;
	json_writer_init(&w, &b);
	report_interval(&w, iv, elapsed_ns, span_ns);
	if (json_emit(&b) < 0)
		exit(cli_write_error(errno));
	buf_free(&b);
}

static int run_once(struct bench_cfg *cfg, struct bench_stats *st, bool *interrupted)
{
	if (bench_stats_init(st) < 0) {
		cli_error("out of memory");
		return -1;
	}
	int r = bench_run(cfg, st, cfg->interval_ns ? print_interval : NULL, NULL, interrupted);
	if (r < 0) {
		cli_error("cannot run: %s", uv_strerror(r));
		bench_stats_free(st);
		return -1;
	}
	return 0;
}

static int print_result(const struct bench_cfg *cfg, const struct bench_stats *st,
                        bool interrupted, double max_rate, bool find_max)
{
	struct buf b = BUF_INIT;
	if (human) {
		report_human(&b, cfg, st, interrupted, find_max ? &max_rate : NULL);
		emit_text(&b);
		return 0;
	}
	struct json_writer w;
	json_writer_init(&w, &b);
	json_obj_begin(&w);
	report_summary(&w, cfg, st, interrupted);
	if (find_max)
		json_kv_double(&w, "max_rate", max_rate);
	json_obj_end(&w);
	if (json_emit(&b) < 0)
		exit(cli_write_error(errno));
	buf_free(&b);
	return 0;
}

static void print_trial(double rate, bool ok, const struct bench_stats *st)
{
	struct buf b = BUF_INIT;
	if (human) {
		char what[48];
		if (rate > 0)
			snprintf(what, sizeof what, "trial at %.0f/s %s", rate, ok ? "met" : "missed");
		else
			snprintf(what, sizeof what, "trial flat out %s", ok ? "met" : "missed");
		report_human_line(&b, what, st, report_rps(st));
		emit_text(&b);
		return;
	}
	struct json_writer w;
	json_writer_init(&w, &b);
	json_obj_begin(&w);
	json_kv_str(&w, "event", "trial");
	if (rate > 0)
		json_kv_double(&w, "rate", rate);
	else
		json_kv_str(&w, "rate", "max");
	json_kv_bool(&w, "ok", ok);
	json_kv_u64(&w, "requests", st->requests);
	json_kv_double(&w, "rps", round(report_rps(st) * 100) / 100);  /* as the result's */
	json_kv_u64(&w, "errors", bench_stats_errors(st));
	report_latency(&w, "latency_us", st->latency);
	json_obj_end(&w);
	if (json_emit(&b) < 0)
		exit(cli_write_error(errno));
	buf_free(&b);
}

/*
 * --find-max: one flat-out run gives the ceiling; then a bisection over
 * rates in (0, ceiling], each trial an open-loop run of --duration judged by
 * --slo.  The answer is the highest rate that met it; its run is the result.
 */
static int find_max(struct opts *o, struct bench_stats *best, double *best_rate, bool *interrupted)
{
	struct bench_cfg *cfg = &o->cfg;
	struct bench_stats st;
	cfg->rate_count = 0;
	if (run_once(cfg, &st, interrupted) < 0)
		return -1;
	double ceiling = report_rps(&st);
	bool ok = cond_all(&o->slo, &st, NULL);
	print_trial(0, ok, &st);
	if (st.connects == 0 || *interrupted) {
		*best = st;
		*best_rate = 0;
		return 0;
	}
	double lo = 0, hi = ceiling;
	*best_rate = 0;
	bool have_best = false;
	uint64_t last_rate = 0;
	struct bench_stats last = st;   /* the latest failed trial, reported when none met it */
	for (unsigned i = 0; i < o->trials && hi >= 1 && !*interrupted; i++) {
		uint64_t per_s = (uint64_t)(i == 0 ? hi : (lo + hi) / 2);
		if (per_s < 1 || per_s == last_rate)
			break;
		last_rate = per_s;
		cfg->rate_count = per_s;
		cfg->rate_per_ns = 1000000000ULL;
		if (run_once(cfg, &st, interrupted) < 0)
			return -1;
		ok = cond_all(&o->slo, &st, NULL) && st.connects > 0;
		print_trial((double)per_s, ok, &st);
		if (ok) {
			if (have_best)
				bench_stats_free(best);
			*best = st;
			*best_rate = (double)per_s;
			have_best = true;
			lo = (double)per_s;
			if (i == 0)
				break;  /* the ceiling itself meets the objective */
		} else {
			bench_stats_free(&last);
			last = st;
			hi = (double)per_s;
		}
		if (hi - lo < hi * 0.01)
			break;
	}
	if (have_best) {
		bench_stats_free(&last);
		cfg->rate_count = (uint64_t)*best_rate;
		cfg->rate_per_ns = 1000000000ULL;
	} else {
		*best = last;
		cfg->rate_count = last_rate;
		cfg->rate_per_ns = 1000000000ULL;
		if (!last_rate)
			cfg->rate_count = 0;
	}
	return 0;
}

/* Exit 2 unless path can be written: found out before the load, not after
 * a run of minutes.  The file itself is not created yet. */
static int check_writable(const char *path)
{
	struct stat sb;
	if (stat(path, &sb) == 0) {
		if (S_ISDIR(sb.st_mode)) {
			cli_error("cannot write '%s': %s", path, strerror(EISDIR));
			return -1;
		}
		if (access(path, W_OK) < 0) {
			cli_error("cannot write '%s': %s", path, strerror(errno));
			return -1;
		}
		return 0;
	}
	if (errno != ENOENT) {
		cli_error("cannot write '%s': %s", path, strerror(errno));
		return -1;
	}
	char dir[4096];
	const char *slash = strrchr(path, '/');
	if (!slash)
		strcpy(dir, ".");
	else if (slash == path)
		strcpy(dir, "/");
	else
		snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
	if (access(dir, W_OK | X_OK) < 0) {
		cli_error("cannot write '%s': %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * A target whose name did not resolve ends the run before it starts, but
 * with the same shape a refused connection gives: the result object (every
 * connection's attempt a connect error), "cannot connect to URL: WHY" on
 * stderr, exit 3; so a script reads both failures the same way.
 */
static int unresolved(const struct bench_cfg *cfg, const struct bench_target *t, const char *why)
{
	struct bench_stats st;
	if (bench_stats_init(&st) < 0) {
		cli_error("out of memory");
		return EXIT_UNREACHABLE;
	}
	st.err_connect = cfg->connections;
	print_result(cfg, &st, false, 0, false);
	cli_error("cannot connect to %s: %s", t->url, why);
	bench_stats_free(&st);
	int wr = cli_stdout_close();
	return wr ? wr : EXIT_UNREACHABLE;
}

/* --h2, --streams, --grpc and --proto-message together: what they
 * imply and exclude; the gRPC message is encoded into *msg once. */
static int h2_options(struct opts *o, struct buf *msg)
{
	struct bench_cfg *cfg = &o->cfg;
	if (o->streams_set && !cfg->h2) {
		cli_error("--streams is for HTTP/2: add --h2 or --grpc (HTTP/1.1 has --pipeline)");
		return -1;
	}
	if (o->proto && !cfg->grpc) {
		cli_error("--proto-message is the body of --grpc's calls: add --grpc SERVICE/METHOD");
		return -1;
	}
	if (!cfg->h2 || !cfg->grpc)
		return 0;
	if (o->body) {
		cli_error("--grpc sends --proto-message as its body: drop --body");
		return -1;
	}
	if (o->method_set && strcmp(o->method, "POST") != 0) {
		cli_error("--grpc calls are POST requests: drop --method %s", o->method);
		return -1;
	}
	o->method = "POST";
	cfg->method = HTTP_POST;
	if (!o->proto)
		return 0;  /* the empty message: every field its default */
	size_t i = 0;
	while (i < o->proto_len && strchr(" \t\r\n", o->proto[i]))
		i++;
	/* protobuf never starts with '{' (field 15 as a group, obsolete): JSON */
	if (i == o->proto_len || o->proto[i] != '{') {
		buf_append(msg, o->proto, o->proto_len);
		return 0;
	}
	const ProtobufCMessageDescriptor *d = proto_input_of(o->grpc);
	if (!d) {
		cli_error("--proto-message: no known message for %s; give its protobuf bytes as @FILE",
		          o->grpc);
		return -1;
	}
	char err[200];
	if (proto_from_json(d, o->proto, o->proto_len, msg, err, sizeof err) < 0) {
		cli_error("--proto-message: %s", err);
		return -1;
	}
	return 0;
}

/* The target's HTTP/2 request: --grpc's path replaces the URL's. */
static int h2_target(struct opts *o, struct bench_target *t, const struct buf *msg)
{
	if (o->grpc)
		snprintf(t->u.path, sizeof t->u.path, "/%s", o->grpc);
	int r = o->grpc ? http_h2_request_build(&t->h2req, "POST", &t->u, o->headers, o->n_headers,
	                                        msg->data, msg->len, true)
	                : http_h2_request_build(&t->h2req, o->method, &t->u, o->headers,
	                                        o->n_headers, o->body, o->body_len, false);
	if (r < 0) {
		cli_error("invalid --header for HTTP/2: expected 'NAME: VALUE' with a token name, "
		          "and none of Connection, Keep-Alive, Transfer-Encoding, Upgrade, Content-Length");
		return -1;
	}
	return 0;
}

static const char *uv_reason(int err)
{
	return err ? uv_strerror(err) : "no connection could be made";
}

int main(int argc, char **argv)
{
	cli_init("dsys-bench");
	if (argc > 1 && strcmp(argv[1], "plot") == 0)
		return plot_main(argc - 1, argv + 1);

	static struct opts o;
	struct bench_cfg *cfg = &o.cfg;
	cfg->threads = cli_ncpu();
	cfg->connections = 10;
	cfg->duration_ns = 10ULL * 1000000000ULL;
	cfg->timeout_ns = 2ULL * 1000000000ULL;
	cfg->batch_wait_ns = BENCH_BATCH_WAIT_NS;
	cfg->pipeline = 1;
	o.method = "GET";
	o.trials = 8;
	o.max_header = 8192;

	int first = 0;
	int r = cli_parse(&spec, argc, argv, on_option, &o, &first);
	if (r >= 0)
		return r;
	for (int i = first; i < argc; i++)
		if (add_target(argv[i]) < 0)
			return EXIT_USAGE;
	if (o.targets_file && read_targets(o.targets_file) < 0)
		return EXIT_USAGE;
	if (n_targets == 0) {
		cli_error("no URL given");
		fprintf(stderr, "Try '%s --help' for more information.\n", spec.prog);
		return EXIT_USAGE;
	}
	if (o.find_max && !o.have_slo) {
		cli_error("--find-max needs --slo, e.g. --slo 'p99<5ms'");
		return EXIT_USAGE;
	}
	if (o.have_slo && !o.find_max) {
		cli_error("--slo is the objective of --find-max; use --fail-if to judge a single run");
		return EXIT_USAGE;
	}
	if (o.find_max && cfg->rate_count) {
		cli_error("--find-max chooses the rates itself; drop --rate");
		return EXIT_USAGE;
	}
	if (o.find_max && cfg->requests) {
		cli_error("--find-max runs each trial for --duration; drop --requests");
		return EXIT_USAGE;
	}
	if (o.trials_set && !o.find_max) {
		cli_error("--trials is the number of --find-max's trials; add --find-max or drop it");
		return EXIT_USAGE;
	}
	/* found out now, not after a run of minutes */
	if (o.plot && check_writable(o.plot) < 0)
		return EXIT_USAGE;
	human = isatty(STDOUT_FILENO) && !o.json;
	if (cfg->requests && !o.duration_set)
		cfg->duration_ns = 0;  /* until N requests are done */
	if (cfg->connections < n_targets)
		cfg->connections = (unsigned)n_targets;  /* every target gets one */
	if (cfg->threads > cfg->connections)
		cfg->threads = cfg->connections;
	cfg->method = HTTP_OTHER;
	for (int m = HTTP_GET; m <= HTTP_CONNECT; m++)
		if (strcmp(http_method_name((enum http_method)m), o.method) == 0)
			cfg->method = (enum http_method)m;
	cfg->limits = (struct http_limits)HTTP_LIMITS_DEFAULT;
	cfg->limits.max_header_bytes = o.max_header;
	cfg->limits.max_uri = o.max_header;
	/* bodies are counted and dropped, never kept: no limit on their size */
	cfg->limits.max_body = UINT64_MAX;
	cfg->recv_buf = o.max_header + 8192;
	cfg->progress = isatty(STDERR_FILENO);
	/* DSYS_BENCH_IO=uv keeps the I/O on libuv streams (a read and a write
	 * per request); the default batches it through io_uring where the
	 * kernel allows it, and falls back to libuv where it does not */
	const char *io = getenv("DSYS_BENCH_IO");
	if (io && *io && strcmp(io, "uv") != 0 && strcmp(io, "uring") != 0 &&
	    strcmp(io, "auto") != 0) {
		cli_error("invalid value '%s' in DSYS_BENCH_IO: expected auto, uring or uv", io);
		return EXIT_USAGE;
	}
	cfg->io_uring = !(io && strcmp(io, "uv") == 0);
	struct buf grpc_body = BUF_INIT;
	if (h2_options(&o, &grpc_body) < 0) {
		buf_free(&grpc_body);
		return EXIT_USAGE;
	}

	if (o.trace && add_trace_headers(&o) < 0)
		return EXIT_USAGE;
	for (size_t i = 0; i < n_targets; i++) {
		struct bench_target *t = &targets[i];
		char why[HTTP_URL_HOST_MAX + 96];
		if (resolve_target(t, why, sizeof why) < 0) {
			cfg->targets = targets;
			cfg->n_targets = n_targets;
			return unresolved(cfg, t, why);
		}
		if (http_client_build_request(&t->req, o.method, &t->u, o.headers, o.n_headers,
		                              o.body, o.body_len) < 0) {
			cli_error("invalid --header: expected 'NAME: VALUE' with a token name, "
			          "and no Content-Length or Transfer-Encoding (the body sets them)");
			return EXIT_USAGE;
		}
		for (unsigned k = 0; k < cfg->pipeline; k++)
			buf_append(&t->batch, t->req.data, t->req.len);
		if (cfg->h2 && h2_target(&o, t, &grpc_body) < 0)
			return EXIT_USAGE;
	}
	buf_free(&grpc_body);
	cfg->targets = targets;
	cfg->n_targets = n_targets;

	struct bench_stats st;
	bool interrupted = false;
	double max_rate = 0;
	if (o.find_max) {
		if (find_max(&o, &st, &max_rate, &interrupted) < 0)
			return EXIT_UNREACHABLE;
	} else if (run_once(cfg, &st, &interrupted) < 0) {
		return EXIT_UNREACHABLE;
	}

	print_result(cfg, &st, interrupted, max_rate, o.find_max);
	int rc = EXIT_OK;
	if (st.connects == 0 && !interrupted) {
		cli_error("cannot connect to %s: %s", cfg->n_targets == 1 ? cfg->targets[0].url : "any target",
		          uv_reason(st.connect_err));
		rc = EXIT_UNREACHABLE;
	}
	if (o.plot) {
		struct plot_series s = {.name = cfg->targets[0].url, .hist = st.latency};
		if (plot_write_hists(o.plot, &s, 1) < 0 && rc == EXIT_OK)
			rc = EXIT_USAGE;
	}
	if (rc == EXIT_OK && o.find_max && max_rate == 0) {
		cli_error("no rate met the objective");
		rc = EXIT_NO;
	}
	if (rc == EXIT_OK && o.have_fail_if) {
		int which = 0;
		if (cond_any(&o.fail_if, &st, &which)) {
			const struct cond_term *t = &o.fail_if.terms[which];
			/* %g: rps and error_rate are fractional; latencies are us */
			cli_error("--fail-if held: '%s' (the run's value: %g%s)", t->text,
			          cond_metric_value(t, &st), cond_metric_is_latency(t->metric) ? "us" : "");
			rc = EXIT_NO;
		}
	}
	bench_stats_free(&st);
	for (size_t i = 0; i < n_targets; i++) {
		free(targets[i].url);
		buf_free(&targets[i].req);
		buf_free(&targets[i].batch);
		http_h2_request_free(&targets[i].h2req);
	}
	free(o.body);
	free(o.proto);
	int wr = cli_stdout_close();
	return rc == EXIT_OK ? wr : rc;
}
