/*
 * bench.h -- the pieces of dsys-bench and how they meet.
 *
 *   main.c    options, targets, the run(s), --find-max, --fail-if, output
 *   engine.c  one run: threads, connections, pacing, timeouts, statistics
 *   report.c  results to JSON (the summary, interval lines, percentile rows)
 *   plot.c    --plot and the `plot` subcommand (through lib/obs/svg_plot)
 *   proto.c   --proto-message's JSON, encoded through protoc-c descriptors
 *
 * HTTP/2 and gRPC (--h2, --grpc) are the engine's too, on the same
 * connections and slots, with lib/http/client_h2 where HTTP/1.1 has
 * lib/http/client (engine.c, "HTTP/2").
 *
 * The engine knows nothing of JSON or of the command line: it takes a
 * struct bench_cfg and fills a struct bench_stats.  Statistics live apart
 * from I/O, as in wrk: each thread counts into its own struct bench_stats
 * and the run merges them at the end.
 */
#ifndef DSYS_BENCH_H
#define DSYS_BENCH_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/buf.h"
#include "base/hist.h"
#include "http/client.h"
#include "http/client_h2.h"
#include "http/parse.h"

#define BENCH_STATUS_MAX 1000   /* status codes 100..999 are counted by code */
#define BENCH_GRPC_CODES 17     /* grpc-status 0..16 are counted by code */

struct bench_target {
	char *url;                        /* as given (owned) */
	struct http_url u;
	struct sockaddr_storage addr;     /* resolved once, before the run */
	socklen_t addr_len;
	struct buf req;                   /* one request, built once */
	struct buf batch;                 /* the request repeated `pipeline` times */
	struct http_h2_request h2req;     /* --h2, --grpc: the request, built once */
};

#define BENCH_BATCH_WAIT_NS 50000u   /* --batch-wait's default */

struct bench_cfg {
	unsigned threads;
	unsigned connections;
	unsigned pipeline;                /* requests in flight per connection (--h2: streams) */
	bool h2;                          /* HTTP/2 with prior knowledge (h2c) */
	bool grpc;                        /* ... carrying unary gRPC calls (h2 too) */
	uint64_t duration_ns;             /* 0 with --requests */
	uint64_t requests;                /* 0: run for duration_ns */
	uint64_t warmup_ns;
	uint64_t timeout_ns;              /* a request older than this is cancelled */
	uint64_t batch_wait_ns;           /* flat out, io_uring: longest wait for a batch; 0: none */
	uint64_t rate_count, rate_per_ns; /* open loop at count per per_ns; 0: flat out */
	uint64_t interval_ns;             /* 0: no interval lines */
	bool progress;                    /* live line on stderr */
	enum http_method method;
	size_t recv_buf;                  /* per-connection receive buffer, bytes */
	bool io_uring;                    /* I/O through io_uring when the kernel allows */
	struct http_limits limits;
	struct bench_target *targets;
	size_t n_targets;
};

/* What one thread counted; merged into one at the end. */
struct bench_stats {
	uint64_t requests;                /* responses received whole */
	uint64_t sent;                    /* requests written */
	uint64_t bytes;                   /* bytes received */
	uint64_t connects;                /* connections established */
	uint64_t err_connect, err_read, err_write, err_timeout;
	uint64_t err_interrupted;         /* in flight when SIGINT/SIGTERM stopped the run */
	uint64_t err_stream;              /* HTTP/2 streams reset or refused by the server */
	uint64_t goaways;                 /* HTTP/2 connections ended by the server's GOAWAY */
	uint64_t grpc[BENCH_GRPC_CODES];  /* answers by grpc-status */
	uint64_t grpc_other;              /* a grpc-status beyond 16, or not a number */
	uint64_t grpc_missing;            /* a gRPC answer without grpc-status */
	uint64_t status[BENCH_STATUS_MAX];
	struct hist *latency;             /* us, from the scheduled send time */
	struct hist *latency_raw;         /* us, from the actual send time (--rate only) */
	struct hist *send_lag;            /* us, actual minus scheduled (--rate only) */
	uint64_t start_ns, end_ns;        /* the measured window */
	int connect_err;                  /* the last connect failure (uv error), or 0 */
};

int bench_stats_init(struct bench_stats *s);
void bench_stats_free(struct bench_stats *s);
void bench_stats_reset(struct bench_stats *s);     /* counts zero, histograms empty */
void bench_stats_merge(struct bench_stats *dst, const struct bench_stats *src);
uint64_t bench_stats_errors(const struct bench_stats *s); /* all kinds, 4xx/5xx included */
uint64_t bench_stats_status_errors(const struct bench_stats *s); /* 4xx/5xx, gRPC's */
uint64_t bench_stats_grpc_errors(const struct bench_stats *s);   /* grpc-status not OK */

/* Called by the engine at every --interval on the main thread: the
 * interval's own statistics (requests, errors, latency of that interval).
 * elapsed_ns is since the measured window began. */
typedef void (*bench_interval_fn)(void *ctx, const struct bench_stats *interval,
                                  uint64_t elapsed_ns, uint64_t interval_ns);

/*
 * One run.  Fills *out (initialised by the caller) with the merged
 * statistics.  Returns 0, or a negative errno for a failure to start
 * (threads, timers).  *interrupted is set when SIGINT/SIGTERM cut it short.
 */
int bench_run(const struct bench_cfg *cfg, struct bench_stats *out,
              bench_interval_fn on_interval, void *ctx, bool *interrupted);

#endif
