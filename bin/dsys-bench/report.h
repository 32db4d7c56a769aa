/* report.h -- a run's statistics as JSON, or for a person (see report.c). */
#ifndef DSYS_BENCH_REPORT_H
#define DSYS_BENCH_REPORT_H

#include "bench.h"
#include "base/json.h"

/* latency object {min, mean, stdev, p50, p75, p90, p95, p99, p999, p9999, max} in us */
void report_latency(struct json_writer *w, const char *key, const struct hist *h);

/* The members of the summary object (the caller opens and closes it). */
void report_summary(struct json_writer *w, const struct bench_cfg *cfg,
                    const struct bench_stats *s, bool interrupted);

/* One complete interval object. */
void report_interval(struct json_writer *w, const struct bench_stats *s,
                     uint64_t elapsed_ns, uint64_t span_ns);

/* For a person, when stdout is a terminal (as wrk and hey print): the
 * run, requests and rate, errors by kind, status codes, the main
 * percentiles and a small latency histogram.  max_rate: --find-max's
 * answer, or NULL. */
void report_human(struct buf *b, const struct bench_cfg *cfg, const struct bench_stats *s,
                  bool interrupted, const double *max_rate);

/* One line ("WHAT: N requests, R/s, E errors, p50 X p99 Y") for an
 * interval or a --find-max trial on a terminal. */
void report_human_line(struct buf *b, const char *what, const struct bench_stats *s, double rps);

double report_duration_s(const struct bench_stats *s);
double report_rps(const struct bench_stats *s);

#endif
