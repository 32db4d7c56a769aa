/*
 * base/log.c -- leveled diagnostics on stderr, as text or JSON lines.
 *
 * Each line is formatted whole (the message in a stack buffer, the line
 * around it in one small heap buffer) and written with one write(2), so
 * lines from several loop threads never interleave.  Logging is for rare
 * events, never a per-request path, so that allocation is the price of
 * one formatter for text and JSON.  A message longer than 2 KiB is cut,
 * with "..." at the end, rather than split over two lines.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/json.h"
#include "base/log.h"

static enum log_level threshold = LOG_INFO;
static int as_json;
static const char *log_prog = "dsys";

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static char init_error[160];   /* why log_init returned -1 */

int log_init(const char *prog)
{
	int rc = 0;
	init_error[0] = '\0';
	log_prog = prog;
	as_json = !isatty(STDERR_FILENO);
	const char *lv = getenv("DSYS_LOG_LEVEL");
	if (lv && *lv) {
		int found = 0;
		for (int i = 0; i <= LOG_DEBUG; i++)
			if (strcasecmp(lv, level_names[i]) == 0) {
				threshold = (enum log_level)i;
				found = 1;
			}
		if (!found && strcasecmp(lv, "warning") == 0)
			threshold = LOG_WARN, found = 1;
		if (!found) {
			snprintf(init_error, sizeof init_error,
			         "invalid value '%.64s' in DSYS_LOG_LEVEL: expected error, warn, info or debug", lv);
			rc = -1;
		}
	}
	const char *fmt = getenv("DSYS_LOG_FORMAT");
	if (fmt && *fmt) {
		if (strcmp(fmt, "json") == 0)
			as_json = 1;
		else if (strcmp(fmt, "text") == 0)
			as_json = 0;
		else {
			snprintf(init_error, sizeof init_error,
			         "invalid value '%.64s' in DSYS_LOG_FORMAT: expected json or text", fmt);
			rc = -1;
		}
	}
	return rc;
}

const char *log_init_error(void)
{
	return init_error[0] ? init_error : "invalid DSYS_LOG_LEVEL or DSYS_LOG_FORMAT";
}

void log_set_level(enum log_level level) { threshold = level; }
int log_enabled(enum log_level level) { return level <= threshold; }

/* The trace context of what this thread does now, "" when none; and
 * the process's own (its TRACEPARENT), used when the thread has none. */
static __thread char trace_id[33], span_id[17];
static char proc_trace_id[33], proc_span_id[17];

void log_trace_set_process(const char *tid, const char *sid)
{
	if (!tid || !sid || strlen(tid) != 32 || strlen(sid) != 16) {
		proc_trace_id[0] = proc_span_id[0] = 0;
		return;
	}
	memcpy(proc_trace_id, tid, 33);
	memcpy(proc_span_id, sid, 17);
}

void log_trace_set(const char *tid, const char *sid)
{
	if (!tid || !sid || strlen(tid) != 32 || strlen(sid) != 16) {
		trace_id[0] = span_id[0] = 0;
		return;
	}
	memcpy(trace_id, tid, 33);
	memcpy(span_id, sid, 17);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	if (level > threshold)
		return;
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof msg)
		memcpy(msg + sizeof msg - 4, "...", 4);

	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	char when[32];
	json_time_rfc3339(when, (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);

	/* A stack-backed buffer would need a second API; a line is rare
	 * enough that one small malloc here is fine (never on a hot path). */
	const char *tid = trace_id[0] ? trace_id : proc_trace_id;
	const char *sid = trace_id[0] ? span_id : proc_span_id;
	struct buf b = BUF_INIT;
	if (as_json) {
		struct json_writer w;
		json_writer_init(&w, &b);
		json_obj_begin(&w);
		json_kv_str(&w, "ts", when);
		json_kv_str(&w, "level", level_names[level]);
		json_kv_str(&w, "prog", log_prog);
		json_kv_str(&w, "msg", msg);
		if (tid[0]) { /* OpenTelemetry's log data model names them so */
			json_kv_str(&w, "trace_id", tid);
			json_kv_str(&w, "span_id", sid);
		}
		json_obj_end(&w);
	} else {
		buf_printf(&b, "%s %s %s: %s", when, level_names[level], log_prog, msg);
		if (tid[0])
			buf_printf(&b, " trace_id=%s span_id=%s", tid, sid);
	}
	buf_putc(&b, '\n');
	ssize_t w = write(STDERR_FILENO, b.data, b.len);
	(void)w;
	buf_free(&b);
}
