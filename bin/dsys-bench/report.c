/*
 * report.c -- a run's statistics as JSON: the summary object, the
 * interval lines, and the percentile rows (HdrHistogram's levels, so a
 * plot of them has the familiar shape).  Every number goes through
 * lib/base/json: counts as exact integers, latencies as integer microseconds.
 *
 * And the same for a person, when stdout is a terminal (report_human): a
 * few lines as wrk and hey print, with a small histogram whose rows grow
 * geometrically, since latencies are long-tailed.  That text is for eyes
 * only; scripts get the JSON through a pipe or --json.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "base/json.h"
#include "report.h"

void report_latency(struct json_writer *w, const char *key, const struct hist *h)
{
	json_key(w, key);
	json_obj_begin(w);
	json_kv_u64(w, "min", hist_min(h));
	json_kv_u64(w, "mean", (uint64_t)llround(hist_mean(h)));
	json_kv_u64(w, "stdev", (uint64_t)llround(hist_stdev(h)));
	json_kv_u64(w, "p50", hist_percentile(h, 50));
	json_kv_u64(w, "p75", hist_percentile(h, 75));
	json_kv_u64(w, "p90", hist_percentile(h, 90));
	json_kv_u64(w, "p95", hist_percentile(h, 95));
	json_kv_u64(w, "p99", hist_percentile(h, 99));
	json_kv_u64(w, "p999", hist_percentile(h, 99.9));
	json_kv_u64(w, "p9999", hist_percentile(h, 99.99));
	json_kv_u64(w, "max", hist_max(h));
	json_obj_end(w);
}

static void report_status(struct json_writer *w, const char *key, const struct bench_stats *s,
                          int lo, int hi)
{
	json_key(w, key);
	json_obj_begin(w);
	for (int i = lo; i < hi; i++) {
		if (!s->status[i])
			continue;
		char code[16];
		snprintf(code, sizeof code, "%d", i);
		json_kv_u64(w, code, s->status[i]);
	}
	json_obj_end(w);
}

static void report_errors(struct json_writer *w, const struct bench_stats *s)
{
	json_key(w, "errors");
	json_obj_begin(w);
	json_kv_u64(w, "connect", s->err_connect);
	json_kv_u64(w, "read", s->err_read);
	json_kv_u64(w, "write", s->err_write);
	json_kv_u64(w, "timeout", s->err_timeout);
	json_kv_u64(w, "interrupted", s->err_interrupted);
	json_kv_u64(w, "stream", s->err_stream);
	report_status(w, "status", s, 400, BENCH_STATUS_MAX);
	json_kv_u64(w, "grpc", bench_stats_grpc_errors(s));
	json_obj_end(w);
}

/* The gRPC answers by grpc-status, numbers as keys as for HTTP status,
 * plus "other" (not 0..16) and "missing" (no grpc-status at all). */
static void report_grpc(struct json_writer *w, const struct bench_stats *s)
{
	json_key(w, "grpc_status");
	json_obj_begin(w);
	for (int i = 0; i < BENCH_GRPC_CODES; i++) {
		if (!s->grpc[i])
			continue;
		char code[16];
		snprintf(code, sizeof code, "%d", i);
		json_kv_u64(w, code, s->grpc[i]);
	}
	if (s->grpc_other)
		json_kv_u64(w, "other", s->grpc_other);
	if (s->grpc_missing)
		json_kv_u64(w, "missing", s->grpc_missing);
	json_obj_end(w);
}

double report_duration_s(const struct bench_stats *s)
{
	if (s->end_ns <= s->start_ns)
		return 0;
	return (double)(s->end_ns - s->start_ns) / 1e9;
}

double report_rps(const struct bench_stats *s)
{
	double d = report_duration_s(s);
	return d > 0 ? (double)s->requests / d : 0;
}

void report_summary(struct json_writer *w, const struct bench_cfg *cfg,
                    const struct bench_stats *s, bool interrupted)
{
	json_kv_str(w, "event", "result");
	if (cfg->n_targets == 1) {
		json_kv_str(w, "url", cfg->targets[0].url);
	} else {
		json_key(w, "urls");
		json_arr_begin(w);
		for (size_t i = 0; i < cfg->n_targets; i++)
			json_str(w, cfg->targets[i].url);
		json_arr_end(w);
	}
	json_kv_u64(w, "threads", cfg->threads);
	json_kv_u64(w, "connections", cfg->connections);
	if (cfg->h2) {
		json_kv_str(w, "protocol", cfg->grpc ? "grpc" : "h2c");
		json_kv_u64(w, "streams", cfg->pipeline);
	} else {
		json_kv_u64(w, "pipeline", cfg->pipeline);
	}
	if (cfg->rate_count)
		json_kv_double(w, "rate", (double)cfg->rate_count * 1e9 / (double)cfg->rate_per_ns);
	json_kv_u64(w, "requests", s->requests);
	json_kv_u64(w, "sent", s->sent);
	json_kv_double(w, "duration_s", round(report_duration_s(s) * 1e6) / 1e6);
	json_kv_double(w, "rps", round(report_rps(s) * 100) / 100);
	json_kv_u64(w, "bytes", s->bytes);
	json_kv_u64(w, "connects", s->connects);
	report_errors(w, s);
	report_status(w, "status", s, 100, BENCH_STATUS_MAX);
	if (cfg->h2)
		json_kv_u64(w, "goaways", s->goaways);
	if (cfg->grpc)
		report_grpc(w, s);
	report_latency(w, "latency_us", s->latency);
	if (cfg->rate_count) {
		report_latency(w, "latency_uncorrected_us", s->latency_raw);
		report_latency(w, "send_lag_us", s->send_lag);
	}
	if (interrupted)
		json_kv_bool(w, "interrupted", true);
	json_key(w, "percentiles");
	json_arr_begin(w);
	if (hist_count(s->latency) > 0) {
		struct hist_iter it;
		struct hist_row row;
		hist_iter_init(&it, s->latency, 5);
		while (hist_iter_next(&it, &row)) {
			json_obj_begin(w);
			json_kv_double(w, "percentile", round(row.percentile * 100 * 1e6) / 1e6);
			json_kv_u64(w, "latency_us", row.value);
			json_kv_u64(w, "count", row.total_count);
			json_obj_end(w);
		}
	}
	json_arr_end(w);
}

void report_interval(struct json_writer *w, const struct bench_stats *s,
                     uint64_t elapsed_ns, uint64_t span_ns)
{
	json_obj_begin(w);
	json_kv_str(w, "event", "interval");
	json_kv_double(w, "elapsed_s", round((double)elapsed_ns / 1e3) / 1e6);
	json_kv_u64(w, "requests", s->requests);
	json_kv_double(w, "rps", span_ns ? round((double)s->requests * 1e9 / (double)span_ns * 100) / 100 : 0);
	json_kv_u64(w, "bytes", s->bytes);
	report_errors(w, s);
	report_latency(w, "latency_us", s->latency);
	json_obj_end(w);
}

/* ------------------------------------------------------------ for a person */

/* A latency in us as a person reads it: 85us, 1.23ms, 2.50s. */
static void human_us(struct buf *b, uint64_t us)
{
	if (us < 1000)
		buf_printf(b, "%lluus", (unsigned long long)us);
	else if (us < 1000000)
		buf_printf(b, "%.2fms", (double)us / 1e3);
	else
		buf_printf(b, "%.2fs", (double)us / 1e6);
}

static void human_count(struct buf *b, const char *name, uint64_t n, bool *first)
{
	if (!n)
		return;
	buf_printf(b, "%s%s %llu", *first ? "" : ", ", name, (unsigned long long)n);
	*first = false;
}

/* Values recorded in [lo, hi), from the buckets (a bucket counts where its
 * lowest value falls: within the histogram's 1%). */
static uint64_t hist_between(const struct hist *h, uint64_t lo, uint64_t hi)
{
	uint64_t n = 0;
	for (uint32_t i = hist_bucket_index(lo); i < h->nbuckets; i++) {
		uint64_t v = hist_bucket_lowest(i);
		if (v >= hi)
			break;
		if (v >= lo)
			n += h->counts[i];
	}
	return n;
}

#define HUMAN_BARS 8
#define HUMAN_BAR_WIDTH 40

/* HUMAN_BARS rows of geometrically growing width from min to max (equal
 * widths would put every answer of a long-tailed run in the first row). */
static void human_histogram(struct buf *b, const struct hist *h)
{
	uint64_t lo = hist_min(h), hi = hist_max(h) + 1;
	if (lo == 0)
		lo = 1;
	double ratio = pow((double)hi / (double)lo, 1.0 / HUMAN_BARS);
	uint64_t edges[HUMAN_BARS + 1], counts[HUMAN_BARS], most = 1;
	edges[0] = hist_min(h);
	for (int i = 1; i < HUMAN_BARS; i++) {
		uint64_t e = (uint64_t)llround((double)lo * pow(ratio, i));
		edges[i] = e > edges[i - 1] ? e : edges[i - 1] + 1;
	}
	edges[HUMAN_BARS] = hi > edges[HUMAN_BARS - 1] ? hi : edges[HUMAN_BARS - 1] + 1;
	for (int i = 0; i < HUMAN_BARS; i++) {
		/* the last row takes the top bucket whole: max is in it */
		counts[i] = hist_between(h, edges[i], i == HUMAN_BARS - 1 ? UINT64_MAX : edges[i + 1]);
		if (counts[i] > most)
			most = counts[i];
	}
	for (int i = 0; i < HUMAN_BARS; i++) {
		struct buf v = BUF_INIT;
		human_us(&v, edges[i]);
		buf_printf(b, "  %10s  ", v.data ? v.data : "");
		buf_free(&v);
		int bar = (int)((counts[i] * HUMAN_BAR_WIDTH + most - 1) / most);
		for (int k = 0; k < HUMAN_BAR_WIDTH; k++)
			buf_putc(b, k < bar ? '#' : ' ');
		buf_printf(b, " %llu\n", (unsigned long long)counts[i]);
	}
}

void report_human(struct buf *b, const struct bench_cfg *cfg, const struct bench_stats *s,
                  bool interrupted, const double *max_rate)
{
	if (cfg->n_targets == 1)
		buf_printf(b, "%s\n", cfg->targets[0].url);
	else
		buf_printf(b, "%zu URLs, %s first\n", cfg->n_targets, cfg->targets[0].url);
	buf_printf(b, "  %u threads, %u connections, %s %u", cfg->threads, cfg->connections,
	           cfg->grpc ? "gRPC over h2c, streams" : cfg->h2 ? "h2c, streams" : "pipeline",
	           cfg->pipeline);
	if (cfg->rate_count)
		buf_printf(b, ", rate %.0f/s", (double)cfg->rate_count * 1e9 / (double)cfg->rate_per_ns);
	buf_printf(b, ", %.2fs%s\n", report_duration_s(s), interrupted ? " (interrupted)" : "");
	buf_printf(b, "  requests   %llu in %.2fs, %.2f/s, %llu bytes read\n",
	           (unsigned long long)s->requests, report_duration_s(s), report_rps(s),
	           (unsigned long long)s->bytes);
	if (max_rate)
		buf_printf(b, "  max rate   %.0f/s met the objective\n", *max_rate);
	buf_printf(b, "  errors     %llu", (unsigned long long)bench_stats_errors(s));
	bool first = true;
	if (bench_stats_errors(s)) {
		buf_puts(b, " (");
		human_count(b, "connect", s->err_connect, &first);
		human_count(b, "read", s->err_read, &first);
		human_count(b, "write", s->err_write, &first);
		human_count(b, "timeout", s->err_timeout, &first);
		human_count(b, "interrupted", s->err_interrupted, &first);
		human_count(b, "stream reset", s->err_stream, &first);
		human_count(b, "grpc-status not OK", bench_stats_grpc_errors(s), &first);
		for (int i = 400; i < BENCH_STATUS_MAX; i++) {
			char code[24];
			snprintf(code, sizeof code, "status %d", i);
			human_count(b, code, s->status[i], &first);
		}
		buf_putc(b, ')');
	}
	buf_putc(b, '\n');
	buf_puts(b, "  status    ");
	first = true;
	for (int i = 100; i < BENCH_STATUS_MAX; i++)
		if (s->status[i]) {
			buf_printf(b, "%s %d: %llu", first ? "" : ",", i, (unsigned long long)s->status[i]);
			first = false;
		}
	buf_puts(b, first ? " none\n" : "\n");
	if (cfg->grpc) {
		buf_puts(b, "  grpc-status");
		first = true;
		for (int i = 0; i < BENCH_GRPC_CODES; i++)
			if (s->grpc[i]) {
				buf_printf(b, "%s %d: %llu", first ? "" : ",", i, (unsigned long long)s->grpc[i]);
				first = false;
			}
		if (s->grpc_other || s->grpc_missing) {
			buf_printf(b, "%s other: %llu, missing: %llu", first ? "" : ",",
			           (unsigned long long)s->grpc_other, (unsigned long long)s->grpc_missing);
			first = false;
		}
		buf_puts(b, first ? " none\n" : "\n");
	}
	const struct hist *h = s->latency;
	if (hist_count(h) == 0)
		return;
	static const struct { const char *name; double p; } rows[] = {
		{"p50", 50}, {"p90", 90}, {"p99", 99}, {"p99.9", 99.9}, {"max", 100},
	};
	buf_puts(b, "  latency   ");
	for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
		buf_printf(b, " %s ", rows[i].name);
		human_us(b, hist_percentile(h, rows[i].p));
	}
	buf_putc(b, '\n');
	human_histogram(b, h);
}

void report_human_line(struct buf *b, const char *what, const struct bench_stats *s, double rps)
{
	buf_printf(b, "%s: %llu requests, %.2f/s, %llu errors, p50 ", what,
	           (unsigned long long)s->requests, rps, (unsigned long long)bench_stats_errors(s));
	human_us(b, hist_percentile(s->latency, 50));
	buf_puts(b, " p99 ");
	human_us(b, hist_percentile(s->latency, 99));
	buf_putc(b, '\n');
}
