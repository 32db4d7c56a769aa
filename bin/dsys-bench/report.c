/*
 * report.c -- a run's statistics as JSON: the summary object, the
 * interval lines, and the percentile rows (HdrHistogram's levels, so a
 * plot of them has the familiar shape).  Every number goes through
 * lib/base/json: counts as exact integers, latencies as integer microseconds.
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
	report_status(w, "status", s, 400, BENCH_STATUS_MAX);
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
	json_kv_u64(w, "pipeline", cfg->pipeline);
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
