/*
 * obs/metrics.h -- a Prometheus registry and its text exposition (format 0.0.4).
 *
 * Every server mounts one registry on GET /metrics:
 *
 *     struct metrics *reg = metrics_new();
 *     metrics_process_register(reg);
 *     struct metrics_counter *hello_200 = metrics_counter_register(reg,
 *         "http_requests_total", "HTTP requests answered.",
 *         METRICS_LABELS("route", "/hello", "code", "200"));
 *     struct metrics_histogram *lat = metrics_histogram_register(reg,
 *         "http_request_duration_seconds", "Request latency.", NULL, NULL, 0);
 *     ...
 *     metrics_counter_inc(hello_200);                  // hot path
 *     metrics_histogram_observe_ns(lat, now - start);  // hot path
 *     ...
 *     metrics_render(reg, &out);   // body of GET /metrics, METRICS_CONTENT_TYPE
 *
 * Kinds.  Counters (uint64, only go up), gauges (int64, set/add), gauges and
 * counters computed by a callback at scrape time (double), and histograms
 * with fixed upper bounds chosen at creation (the `le` label; seconds by
 * convention; METRICS_LATENCY_BUCKETS when none are given).
 *
 * Families and labels.  Each series carries an optional fixed label set,
 * given at registration as a NULL-terminated list of name/value pairs
 * (METRICS_LABELS builds one).  Series with the same name form one family:
 * one # HELP and one # TYPE line, families in the order their names were
 * first registered, series in registration order.  The help text and type
 * of a family are fixed by its first registration.  Label order is part of
 * a series' identity.
 *
 * Registration is find-or-create: registering the same name, kind and label
 * set again returns the existing series (so a rare path, like a status code
 * seen for the first time, may register under the registry's mutex and keep
 * the pointer).  It returns NULL with errno set (the *_fn_register calls
 * return the negative code instead) on EINVAL (a bad metric or label name,
 * a label name repeated or `le` on a histogram, an odd label list, help or
 * a label value that is not UTF-8, bad bucket bounds), EEXIST (the name
 * belongs to a family of another type, the series exists with another kind
 * or other bucket bounds, or a callback series is registered twice).  Out
 * of memory aborts, as in buf.
 *
 * Threads.  Registration and rendering take the registry's mutex.  Updates
 * (inc/add/set/observe) take no lock, allocate nothing and look nothing up:
 * the caller keeps the pointer.  Counters and histograms are sharded:
 * METRICS_SHARDS copies, each on its own cache line(s); a scrape sums the
 * shards.  The first METRICS_SHARDS - 1 threads to update any metric each
 * own a shard, which only they write (relaxed atomic load and store, no
 * locked instruction); later threads share the last shard with atomic
 * read-modify-writes.  So loops on different threads never bounce a cache
 * line on the hot path, and threads sharing a shard are still exact.  Gauges are a single
 * atomic on their own cache line (set must be one store; in-flight and
 * connection gauges change far less often than counters).  A scrape is not
 * a global snapshot: each value is read atomically, series one after the
 * other; a histogram's buckets, _count and the +Inf bucket are always
 * consistent with each other (_count is summed from the same bucket reads).
 *
 * Ownership: the registry owns every series it hands out; pointers stay
 * valid until metrics_free(reg), which frees everything (NULL is a no-op).
 * Callback args are borrowed and must outlive the registry.
 *
 * Number formats in the text: integer counters and gauges are printed as
 * exact decimal integers; doubles (callbacks, histogram _sum, `le`) as Go's
 * strconv.FormatFloat(f, 'g', -1, 64) prints them, which is what
 * client_golang emits: shortest round-trip digits, "+Inf", "-Inf", "NaN".
 */
#ifndef DSYS_METRICS_H
#define DSYS_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct buf;

struct metrics;             /* the registry */
struct metrics_counter;
struct metrics_gauge;
struct metrics_histogram;

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define METRICS_SHARDS 16          /* per counter/histogram; power of two */
#define METRICS_MAX_BUCKETS 64     /* upper bounds per histogram, +Inf not counted */

/* Name/value label pairs, NULL-terminated: METRICS_LABELS("code", "200"). */
#define METRICS_LABELS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Default latency bounds in seconds, 100 us .. 10 s (Prometheus' defaults
 * extended downwards, for servers answering in well under a millisecond). */
extern const double METRICS_LATENCY_BUCKETS[];
extern const size_t METRICS_LATENCY_NBUCKETS;

struct metrics *metrics_new(void);
void metrics_free(struct metrics *reg);

/* Registration (find-or-create; see above).  labels may be NULL. */
struct metrics_counter *metrics_counter_register(struct metrics *reg,
	const char *name, const char *help, const char *const *labels);
struct metrics_gauge *metrics_gauge_register(struct metrics *reg,
	const char *name, const char *help, const char *const *labels);
/* bounds: strictly increasing, finite, at most METRICS_MAX_BUCKETS; NULL
 * (with nbounds 0) for METRICS_LATENCY_BUCKETS.  +Inf is always added. */
struct metrics_histogram *metrics_histogram_register(struct metrics *reg,
	const char *name, const char *help, const char *const *labels,
	const double *bounds, size_t nbounds);

/* Series whose value is computed at scrape time, under the registry's mutex
 * (fn must not call back into the registry).  Return 0 on success. */
typedef double (*metrics_value_fn)(void *arg);
int metrics_gauge_fn_register(struct metrics *reg, const char *name,
	const char *help, const char *const *labels, metrics_value_fn fn, void *arg);
int metrics_counter_fn_register(struct metrics *reg, const char *name,
	const char *help, const char *const *labels, metrics_value_fn fn, void *arg);

/* The process collector: process_cpu_seconds_total,
 * process_resident_memory_bytes, process_virtual_memory_bytes,
 * process_open_fds, process_max_fds, process_start_time_seconds, read from
 * /proc at scrape time, named and described as client_golang does (a value
 * that cannot be read renders as NaN).  Returns 0, or -EEXIST when called
 * twice on one registry. */
int metrics_process_register(struct metrics *reg);

/* Hot path: no lock, no allocation, relaxed atomics. */
void metrics_counter_add(struct metrics_counter *c, uint64_t n);
void metrics_counter_inc(struct metrics_counter *c);
void metrics_gauge_set(struct metrics_gauge *g, int64_t v);
void metrics_gauge_add(struct metrics_gauge *g, int64_t delta); /* negative to go down */
void metrics_gauge_inc(struct metrics_gauge *g);
void metrics_gauge_dec(struct metrics_gauge *g);
void metrics_histogram_observe(struct metrics_histogram *h, double v);
void metrics_histogram_observe_ns(struct metrics_histogram *h, uint64_t ns); /* as seconds */

/* Current values (summed over shards), for tests and for programs that
 * print their own summary. */
uint64_t metrics_counter_value(const struct metrics_counter *c);
int64_t metrics_gauge_value(const struct metrics_gauge *g);
uint64_t metrics_histogram_count(const struct metrics_histogram *h);
double metrics_histogram_sum(const struct metrics_histogram *h);

/* The sum of every plain counter series of the family name (callback
 * series left out) into *out: 0, or -ENOENT when there is no such counter
 * family. */
int metrics_counter_sum(struct metrics *reg, const char *name, uint64_t *out);

/* Append the whole exposition to out (text format 0.0.4).  Returns 0. */
int metrics_render(struct metrics *reg, struct buf *out);

#endif
