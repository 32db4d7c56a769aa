/*
 * cli/server_cli.c -- the shared server flags, applied to a
 * struct http_server_config, and the start-up sequence around it: listen,
 * print the ready line, run until drained.  Ranges are checked here once,
 * so every server refuses the same nonsense with the same words.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "io/loop.h"
#include "base/json.h"
#include "base/log.h"
#include "cli/server_cli.h"
#include "http/handover.h"
#include "http/trace.h"
#include "obs/metrics.h"

/* The loops http_server_new runs with threads 0: the CPUs we may use. */
static unsigned default_threads(void)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof set, &set) == 0)
		return (unsigned)CPU_COUNT(&set);
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

void server_cli_init(struct server_cli *s)
{
	http_server_config_init(&s->cfg);
	strcpy(s->host, "127.0.0.1");
	s->cfg.host = s->host;
	s->cfg.port = 8080;
}

int server_cli_size(const char *arg, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t v;
	if (parse_size(arg, &v) < 0)
		return cli_bad_value(NULL, arg, "expected a size like 512, 8k or 1M");
	if (v < min || v > max)
		return cli_bad_value(NULL, arg, "out of range");
	*out = v;
	return 0;
}

int server_cli_duration(const char *arg, uint64_t *ms)
{
	if (parse_duration_ms(arg, ms) < 0)
		return cli_bad_value(NULL, arg, "expected a duration like 500ms, 10s or 1m");
	return 0;
}

int server_cli_positive_duration(const char *arg, uint64_t *ms)
{
	if (server_cli_duration(arg, ms) < 0)
		return -1;
	if (*ms == 0)
		return cli_bad_value(NULL, arg, "must be more than 0");
	return 0;
}

int server_cli_option(struct server_cli *s, int id, const char *arg)
{
	struct http_server_config *c = &s->cfg;
	uint64_t v;
	unsigned u;
	switch (id) {
	case SERVER_CLI_LISTEN: {
		uint16_t port;
		if (parse_hostport(arg, s->host, sizeof s->host, &port) < 0)
			return cli_bad_value(NULL, arg, "expected HOST:PORT");
		c->port = port;
		return 0;
	}
	case SERVER_CLI_THREADS:
		if (cli_opt_uint(arg, 1, 1024, &u) < 0)
			return -1;
		c->threads = u;
		return 0;
	case SERVER_CLI_MAX_CONNECTIONS:
		if (cli_opt_uint(arg, 1, 10000000, &u) < 0)
			return -1;
		c->max_connections = u;
		return 0;
	case SERVER_CLI_MAX_PIPELINE:
		if (cli_opt_uint(arg, 1, 65536, &u) < 0)
			return -1;
		c->max_pipeline = u;
		return 0;
	case SERVER_CLI_MAX_URI:
		if (server_cli_size(arg, 16, 1u << 20, &v) < 0)
			return -1;
		c->limits.max_uri = v;
		return 0;
	case SERVER_CLI_MAX_HEADER:
		if (server_cli_size(arg, 64, 1u << 20, &v) < 0)
			return -1;
		c->limits.max_header_bytes = v;
		return 0;
	case SERVER_CLI_MAX_BODY:
		return server_cli_size(arg, 0, 1ull << 32, &c->limits.max_body);
	case SERVER_CLI_HEADER_TIMEOUT:
		return server_cli_positive_duration(arg, &c->header_timeout_ms);
	case SERVER_CLI_BODY_TIMEOUT:
		return server_cli_positive_duration(arg, &c->body_timeout_ms);
	case SERVER_CLI_IDLE_TIMEOUT:
		return server_cli_positive_duration(arg, &c->idle_timeout_ms);
	case SERVER_CLI_DRAIN_TIMEOUT:
		return server_cli_positive_duration(arg, &c->drain_timeout_ms);
	case SERVER_CLI_BACKLOG:
		if (cli_opt_uint(arg, 1, 65535, &u) < 0)
			return -1;
		c->backlog = (int)u;
		return 0;
	case SERVER_CLI_IO:
		if (strcmp(arg, "auto") == 0)
			c->io = HTTP_IO_AUTO;
		else if (strcmp(arg, "uring") == 0)
			c->io = HTTP_IO_URING;
		else if (strcmp(arg, "uv") == 0)
			c->io = HTTP_IO_UV;
		else
			return cli_bad_value(NULL, arg, "expected auto, uring or uv");
		return 0;
	case SERVER_CLI_REUSE_PORT:
		c->reuse_port = true;
		return 0;
	case SERVER_CLI_TRACE_SAMPLE: {
		char *end;
		errno = 0;
		double r = strtod(arg, &end);
		if (!*arg || *end || errno || !(r >= 0 && r <= 1))
			return cli_bad_value(NULL, arg, "expected a ratio from 0 to 1");
		s->trace = true;
		s->trace_sample = r;
		return 0;
	}
	}
	return 1;
}

/* The server's tracer (one server per process), freed once drained. */
static struct http_tracer *tracer;

static double trace_spans(void *arg)
{
	uint64_t n, d;
	http_tracer_counts(arg, &n, &d);
	return (double)n;
}

static double trace_dropped(void *arg)
{
	uint64_t n, d;
	http_tracer_counts(arg, &n, &d);
	return (double)d;
}

/* Start the tracer for --trace-sample; EXIT_OK or EXIT_USAGE. */
static int trace_start(struct server_cli *s)
{
	if (!s->trace || tracer)
		return EXIT_OK;
	char service[64];
	snprintf(service, sizeof service, "%s", cli_prog());
	service[strcspn(service, " ")] = 0;  /* "dsys-counter serve" serves as dsys-counter */
	char err[512] = "";
	int r = http_tracer_new(service, s->trace_sample, &tracer, err, sizeof err);
	if (r < 0) {
		cli_error("--trace-sample: %s", err);
		return EXIT_USAGE;
	}
	if (r > 0)
		log_warn("%s", err);
	s->cfg.tracer = tracer;
	if (s->cfg.metrics) {
		metrics_counter_fn_register(s->cfg.metrics, "trace_spans_total",
			"Server spans recorded (requests traced).", NULL, trace_spans, tracer);
		metrics_counter_fn_register(s->cfg.metrics, "trace_spans_dropped_total",
			"Server spans lost: the export queue was full, an export failed, or the "
			"trace file could not be written.", NULL, trace_dropped, tracer);
	}
	return EXIT_OK;
}

int server_cli_listen(struct server_cli *s, struct http_server **out)
{
	*out = NULL;
	s->cfg.host = s->host;
	int ts = trace_start(s);
	if (ts != EXIT_OK)
		return ts;
	if (s->cfg.io == HTTP_IO_URING) {
		/* said apart from the listening errors, which share errno values */
		int r = io_loop_probe();
		if (r < 0) {
			cli_error("cannot use io_uring: %s", strerror(-r));
			return EXIT_UNREACHABLE;
		}
	}
	int fds[HTTP_HANDOVER_MAX_FDS];
	int nfds = 0;
	if (s->cfg.reuse_port && s->cfg.port != 0) {
		pid_t pid = 0;
		nfds = http_handover_fetch(s->host, s->cfg.port, fds, HTTP_HANDOVER_MAX_FDS, &pid);
		if (nfds < 0) {
			/* a successor that cannot take over still starts beside it */
			log_warn("cannot take over the listeners on %s:%u: %s; binding beside them",
			         s->host, s->cfg.port, strerror(-nfds));
			nfds = 0;
		} else if (nfds > 0) {
			log_info("took over %d listeners on %s:%u from pid %d", nfds, s->host,
			         s->cfg.port, (int)pid);
			/* every socket taken needs a loop accepting on it: one left
			 * without would keep the connections the kernel puts there */
			if (s->cfg.threads == 0 ? default_threads() < (unsigned)nfds
			                        : s->cfg.threads < (unsigned)nfds)
				s->cfg.threads = (unsigned)nfds;
			s->cfg.listen_fds = fds;
			s->cfg.nlisten_fds = (unsigned)nfds;
		}
	}
	if (http_server_new(&s->cfg, out) < 0) {
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		cli_error("invalid server settings");
		return EXIT_USAGE;
	}
	int r = http_server_listen(*out);
	s->cfg.listen_fds = NULL;   /* the server owns them now, or closed them */
	s->cfg.nlisten_fds = 0;
	if (r == -HTTP_SERVER_ENONAME) {
		cli_error("cannot listen on %s:%u: the name '%s' did not resolve", s->host,
		          s->cfg.port, s->host);
		return EXIT_NO;
	}
	if (r < 0) {
		/* every listen failure is 1, as dsys-serve(1) says: the flag was
		 * well formed, the machine said no */
		cli_error("cannot listen on %s:%u: %s", s->host, s->cfg.port, strerror(-r));
		return EXIT_NO;
	}
	return EXIT_OK;
}

int server_cli_ready(struct http_server *srv, const char *key, const char *value)
{
	struct buf line = BUF_INIT;
	struct json_writer w;
	json_writer_init(&w, &line);
	json_obj_begin(&w);
	json_kv_str(&w, "event", "ready");
	json_kv_str(&w, "listen", http_server_address(srv));
	json_kv_i64(&w, "pid", (int64_t)getpid());
	json_kv_u64(&w, "threads", http_server_threads(srv));
	json_kv_str(&w, "io", http_server_io(srv));
	if (key)
		json_kv_str(&w, key, value);
	json_obj_end(&w);
	int status = json_emit(&line) < 0 ? cli_write_error(errno) : EXIT_OK;
	buf_free(&line);
	return status;
}

int server_cli_run(struct http_server *srv)
{
	int r = http_server_run(srv);
	http_tracer_free(tracer);  /* what is queued goes out now */
	tracer = NULL;
	if (r < 0) {
		cli_error("cannot run: %s", strerror(-r));
		return EXIT_UNREACHABLE;
	}
	/* what this process answered, for release checks: with a restart the
	 * old server's last /metrics cannot be read once it stops accepting */
	uint64_t requests = 0;
	struct metrics *reg = http_server_metrics(srv);
	if (reg)
		metrics_counter_sum(reg, "http_requests_total", &requests);
	struct buf line = BUF_INIT;
	struct json_writer w;
	json_writer_init(&w, &line);
	json_obj_begin(&w);
	json_kv_str(&w, "event", "drained");
	json_kv_i64(&w, "pid", (int64_t)getpid());
	json_kv_u64(&w, "requests", requests);
	json_obj_end(&w);
	json_emit(&line);   /* a reader gone by now is no failure of the drain */
	buf_free(&line);
	return EXIT_OK;
}
