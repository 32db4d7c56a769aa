/*
 * cli/server_cli.h -- the flags and the start-up every dsys server shares.
 *
 * dsys-serve, dsys-counter serve and the servers of later programs (the
 * Raft node, the trace collector, the registry) take the same flags for
 * the same things: where to listen, how many loops, the limits and
 * timeouts of lib/http/server.  They are declared once here, so each
 * server's option table includes them whole and they cannot drift apart:
 *
 *   static const struct cli_option options[] = {
 *       SERVER_CLI_OPTIONS,
 *       {"store", 's', "URL", "DSYS_STORE", "...", OPT_STORE},
 *       CLI_END
 *   };
 *
 *   static int on_option(void *ctx, int id, const char *arg) {
 *       int r = server_cli_option(&cfg->server, id, arg);
 *       if (r <= 0)
 *           return r;          // one of ours: handled (0) or refused (-1)
 *       switch (id) { ...the program's own options... }
 *   }
 *
 * and then, after the handler is set:
 *
 *   int status = server_cli_listen(&cfg->server, &srv);   // new + listen
 *   if (status == EXIT_OK) {
 *       server_cli_ready(srv, "store", url);               // the ready line
 *       status = server_cli_run(srv);                      // until drained
 *   }
 *
 * Option ids SERVER_CLI_ID_MIN..SERVER_CLI_ID_MAX are reserved for these;
 * a program's own ids must stay outside that range.  This is command-line
 * glue, like lib/cli/cli: it prints its diagnostics with cli_error.
 */
#ifndef DSYS_SERVER_CLI_H
#define DSYS_SERVER_CLI_H

#include "cli/cli.h"
#include "http/server.h"

enum {
	SERVER_CLI_ID_MIN = 9000,
	SERVER_CLI_LISTEN = SERVER_CLI_ID_MIN,
	SERVER_CLI_THREADS,
	SERVER_CLI_MAX_CONNECTIONS,
	SERVER_CLI_MAX_URI,
	SERVER_CLI_MAX_HEADER,
	SERVER_CLI_MAX_BODY,
	SERVER_CLI_MAX_PIPELINE,
	SERVER_CLI_HEADER_TIMEOUT,
	SERVER_CLI_BODY_TIMEOUT,
	SERVER_CLI_IDLE_TIMEOUT,
	SERVER_CLI_DRAIN_TIMEOUT,
	SERVER_CLI_BACKLOG,
	SERVER_CLI_IO,
	SERVER_CLI_REUSE_PORT,
	SERVER_CLI_TRACE_SAMPLE,
	SERVER_CLI_ID_MAX = SERVER_CLI_TRACE_SAMPLE,
};

#define SERVER_CLI_OPTIONS \
	{"listen", 'l', "HOST:PORT", "DSYS_LISTEN", "address to listen on (default 127.0.0.1:8080; port 0 picks one)", SERVER_CLI_LISTEN}, \
	{"threads", 't', "N", "DSYS_THREADS", "event loops, one per thread (default: the CPUs we may use)", SERVER_CLI_THREADS}, \
	{"max-connections", 0, "N", "DSYS_MAX_CONNECTIONS", "connections open at once; more are closed at once (default 10000)", SERVER_CLI_MAX_CONNECTIONS}, \
	{"max-uri-bytes", 0, "SIZE", NULL, "longest request target, else 414 (default 8k)", SERVER_CLI_MAX_URI}, \
	{"max-header-bytes", 0, "SIZE", NULL, "largest request head, else 431 (default 8k)", SERVER_CLI_MAX_HEADER}, \
	{"max-body-bytes", 0, "SIZE", NULL, "largest request body, else 413 (default 1M)", SERVER_CLI_MAX_BODY}, \
	{"max-pipeline", 0, "N", NULL, "unanswered requests per connection before it waits (default 64)", SERVER_CLI_MAX_PIPELINE}, \
	{"header-timeout", 0, "DURATION", NULL, "time to receive a request head, else 408 (default 10s)", SERVER_CLI_HEADER_TIMEOUT}, \
	{"body-timeout", 0, "DURATION", NULL, "time to receive a request body, else 408 (default 30s)", SERVER_CLI_BODY_TIMEOUT}, \
	{"idle-timeout", 0, "DURATION", NULL, "idle keep-alive connections are closed after this (default 60s)", SERVER_CLI_IDLE_TIMEOUT}, \
	{"drain-timeout", 0, "DURATION", NULL, "on SIGTERM, time to finish requests in flight (default 10s)", SERVER_CLI_DRAIN_TIMEOUT}, \
	{"backlog", 0, "N", NULL, "listen(2) backlog per thread (default 1024)", SERVER_CLI_BACKLOG}, \
	{"io", 0, "auto|uring|uv", "DSYS_IO", "socket I/O: io_uring, libuv's epoll, or io_uring where the kernel allows it (default auto)", SERVER_CLI_IO}, \
	{"reuse-port", 0, NULL, NULL, "share the port with a server of ours already on it, taking over its listeners: zero-downtime restarts", SERVER_CLI_REUSE_PORT}

/* Tracing (lib/http/trace.h), for the servers whose requests are worth a
 * span: a server span per request, the caller's traceparent continued,
 * new traces kept with probability RATIO.  Not in SERVER_CLI_OPTIONS: a
 * trace collector must not trace the requests that carry its spans. */
#define SERVER_CLI_TRACE_OPTION \
	{"trace-sample", 0, "RATIO", "DSYS_TRACE_SAMPLE", "trace requests: continue sampled traceparents, start a trace for RATIO (0..1) of the others; spans go to OTEL_EXPORTER_OTLP_ENDPOINT or DSYS_TRACE_FILE (default off)", SERVER_CLI_TRACE_SAMPLE}

struct server_cli {
	struct http_server_config cfg;  /* cfg.host points at host below */
	char host[256];
	bool trace;                     /* --trace-sample was given */
	double trace_sample;
};

/* Defaults: http_server_config_init's, listening on 127.0.0.1:8080. */
void server_cli_init(struct server_cli *s);

/* Apply one option: 0 handled, -1 refused (message printed), 1 when id is
 * not a server option (the program's own). */
int server_cli_option(struct server_cli *s, int id, const char *arg);

/* http_server_new and http_server_listen, with their errors said the same
 * way in every program.  With --reuse-port on a fixed port, first asks
 * the server of ours already there for its listening sockets
 * (lib/http/handover.h) and runs at least one loop per socket taken.  Returns EXIT_OK and *out, or the exit code:
 * EXIT_USAGE for bad settings, EXIT_NO when the host does not resolve or
 * the address is in use, not ours or not allowed, EXIT_UNREACHABLE when
 * --io uring was asked for and io_uring cannot be set up here. */
int server_cli_listen(struct server_cli *s, struct http_server **out);

/* Print {"event":"ready","listen":"HOST:PORT","pid":N,"threads":N,
 * "io":"uring"|"uv"} and,
 * when key is not NULL, one more string field.  Returns EXIT_OK, or
 * EXIT_NO after "write error: ..." when the line could not be written (a
 * full disk): a server whose ready line is lost must not run unseen.  A
 * reader already gone (EPIPE) is not an error. */
int server_cli_ready(struct http_server *srv, const char *key, const char *value);

/* (With --trace-sample, server_cli_listen also starts the tracer, and
 * server_cli_run exports what it holds once drained.) */

/* http_server_run, then the line {"event":"drained","pid":N,
 * "requests":N} on stdout (requests: the final sum of http_requests_total,
 * what /metrics would say last; 0 without metrics); EXIT_OK when drained,
 * EXIT_UNREACHABLE when a loop could not start (its init hook failed). */
int server_cli_run(struct http_server *srv);

/* Parsers for server-like flags of a program's own, with the messages of
 * the flags above. */
int server_cli_size(const char *arg, uint64_t min, uint64_t max, uint64_t *out);
int server_cli_duration(const char *arg, uint64_t *ms);           /* 0 allowed */
int server_cli_positive_duration(const char *arg, uint64_t *ms);  /* > 0 */

#endif
