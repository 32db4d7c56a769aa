/*
 * test_otlp_batch.c -- obs/otlp_batch: its bounds and what it does with
 * a batch no receiver takes.  (Batches that arrive are tests/trace.bats',
 * through dsys-trace collect.)
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "obs/otlp_batch.h"
#include "tap.h"

static void count_cb(void *ud, const void *p, size_t n)
{
	(void)p;
	(void)n;
	(*(int *)ud)++;
}

int main(void)
{
	char err[256];
	static const char *vars[] = {"OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
	                             "OTEL_BSP_SCHEDULE_DELAY", "OTEL_BSP_EXPORT_TIMEOUT"};
	for (size_t i = 0; i < 4; i++)
		unsetenv(vars[i]);
	struct otlp_batch_options o;
	is_int(otlp_batch_options_from_env(&o, err, sizeof err), 0, "defaults");
	ok(o.max_queue == 2048 && o.max_batch == 512 && o.delay_ms == 5000, "the spec's defaults");
	setenv("OTEL_BSP_MAX_QUEUE_SIZE", "10", 1);
	setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "20", 1);
	setenv("OTEL_BSP_SCHEDULE_DELAY", "50", 1);
	is_int(otlp_batch_options_from_env(&o, err, sizeof err), 0, "from the environment");
	ok(o.max_queue == 10 && o.max_batch == 10 && o.delay_ms == 50, "a batch no larger than the queue");
	setenv("OTEL_BSP_SCHEDULE_DELAY", "soon", 1);
	is_int(otlp_batch_options_from_env(&o, err, sizeof err), -EINVAL, "a bad value is refused");
	ok(strstr(err, "OTEL_BSP_SCHEDULE_DELAY") != NULL, "and named");
	ok(o.delay_ms == 5000, "its default kept");

	/* nothing listens on port 1 of loopback */
	struct otlp_config cfg = {.timeout_ms = 200, .encoding = OTLP_JSON};
	strcpy(cfg.url, "http://127.0.0.1:1/v1/traces");
	struct trace_attrs res = {0};
	struct trace_span sp;
	trace_span_init(&sp, "s", TRACE_KIND_INTERNAL, NULL);
	trace_span_end(&sp, TRACE_STATUS_UNSET, NULL);
	struct otlp_item it = {.resource = &res, .span = &sp};

	o = (struct otlp_batch_options){.max_queue = 4, .max_batch = 2, .delay_ms = 60000};
	struct otlp_batch *b = otlp_batch_new(&cfg, OTLP_SIGNAL_TRACES, &o);
	is_int(otlp_batch_add_encoded(b, "{}", 2), -EINVAL, "JSON of another form is refused");
	/* the batch thread may take the first two at once: fill past 4+2 */
	int dropped = 0;
	for (int i = 0; i < 10; i++)
		if (otlp_batch_add(b, &it) == -ENOBUFS)
			dropped++;
	ok(dropped >= 4, "a full queue drops and does not block (%d dropped)", dropped);
	struct otlp_batch_stats st;
	otlp_batch_stats(b, &st);
	is_int((int)st.dropped, dropped, "and counts what it dropped");
	otlp_batch_free(b);

	o = (struct otlp_batch_options){.max_queue = 8, .max_batch = 8, .delay_ms = 10, .keep = true};
	b = otlp_batch_new(&cfg, OTLP_SIGNAL_TRACES, &o);
	for (int i = 0; i < 3; i++)
		otlp_batch_add(b, &it);
	is_int(otlp_batch_flush(b, 700), -ETIMEDOUT, "keep: a batch no one takes is not drained");
	otlp_batch_stats(b, &st);
	ok(st.errors >= 1 && st.queued == 3 && st.failed == 0, "it stays queued after %llu tries",
	   (unsigned long long)st.errors);
	int seen = 0;
	otlp_batch_snapshot(b, count_cb, &seen);
	is_int(seen, 3, "the snapshot sees every waiting item");
	otlp_batch_free(b);

	o.keep = false;
	b = otlp_batch_new(&cfg, OTLP_SIGNAL_TRACES, &o);
	for (int i = 0; i < 3; i++)
		otlp_batch_add(b, &it);
	is_int(otlp_batch_flush(b, 2000), 0, "without keep a failed batch is dropped");
	otlp_batch_stats(b, &st);
	ok(st.failed == 3 && st.queued == 0, "and counted as failed");
	otlp_batch_free(b);

	trace_span_free(&sp);
	return tap_done();
}
