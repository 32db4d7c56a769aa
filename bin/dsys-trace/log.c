/*
 * dsys-trace log -- log lines from standard input, as OTLP log records
 * joined to the current trace: the log-shipping half of chapter 4.4.
 *
 * Each line is one record.  A line that is a JSON object with a
 * "message" (or "msg") string is read as a structured log line: its
 * "level" (or "severity") sets the severity, "trace_id" and "span_id"
 * (as lib/log writes them) the span it belongs to, and its other
 * string, number and boolean fields become attributes.  Any other line
 * is the body as it is.  A record without ids of its own takes those of
 * $TRACEPARENT, so `cmd 2>&1 | dsys-trace log` inside a `dsys-trace exec`
 * puts the command's output under its span.
 *
 * Records go to --file (one OTLP JSON line each), to the OTLP endpoint
 * (OTEL_EXPORTER_OTLP_LOGS_ENDPOINT, or .../v1/logs) in batches through
 * obs/otlp_batch, or, with neither, to standard output.  The whole input
 * is read even when an export fails; the exit status says so afterwards.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/buf.h"
#include "base/json.h"
#include "cli/cli.h"
#include "obs/otlp.h"
#include "obs/otlp_batch.h"
#include "obs/trace.h"

#include "dsys-trace.h"

#define LOG_LINE_MAX (64u << 10) /* a longer line is cut there */

enum { OPT_SERVICE = 1, OPT_LEVEL, OPT_FILE };

static const struct cli_option log_options[] = {
	{"service", 0, "NAME", "OTEL_SERVICE_NAME", "the service.name of the records", OPT_SERVICE},
	{"level", 0, "LEVEL", NULL, "severity of lines that carry none: trace, debug, info (default), warn, error, fatal", OPT_LEVEL},
	{"file", 0, "PATH", "DSYS_TRACE_FILE", "append each record to PATH as one OTLP JSON line", OPT_FILE},
	CLI_END
};

static const struct cli_spec log_spec = {
	"dsys-trace log", "[OPTION]...",
	"Ship log lines from standard input as OTLP log records of the current trace.", log_options,
	"A line that is a JSON object with a \"message\" field is a structured record;\n"
	"any other line is the record's body as it is.\n",
};

struct log_opts {
	const char *service;
	int level;
	const char *file;
};

static int on_log_option(void *ctx, int id, const char *arg)
{
	struct log_opts *o = ctx;
	switch (id) {
	case OPT_SERVICE:
		if (!*arg)
			return cli_bad_value(NULL, arg, "the service name is empty");
		o->service = arg;
		return 0;
	case OPT_LEVEL:
		o->level = trace_severity_parse(arg);
		if (o->level < 0)
			return cli_bad_value(NULL, arg, "expected trace, debug, info, warn, error or fatal");
		return 0;
	case OPT_FILE:
		o->file = *arg ? arg : NULL;
		return 0;
	}
	return 0;
}

static const char *sev_text(int n)
{
	static const char *const t[] = {"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"};
	return n >= 1 && n <= 24 ? t[(n - 1) / 4] : NULL;
}

/* Fill l from a structured line; false when the line is not one. */
static bool read_json_line(const char *line, size_t n, struct trace_log *l)
{
	if (!n || line[0] != '{')
		return false;
	json_value *v = json_parse(line, n, NULL);
	if (!v || !cJSON_IsObject(v)) {
		json_free(v);
		return false;
	}
	const char *msg = json_get_str(v, "message");
	if (!msg)
		msg = json_get_str(v, "msg");
	if (!msg) {
		json_free(v);
		return false;
	}
	trace_log_set(&l->body, msg);
	const char *lv = json_get_str(v, "level");
	if (!lv)
		lv = json_get_str(v, "severity");
	int sev = trace_severity_parse(lv);
	if (sev > 0) {
		l->severity = sev;
		trace_log_set(&l->severity_text, lv);
	}
	const char *t = json_get_str(v, "trace_id"), *s = json_get_str(v, "span_id");
	if (t && s && trace_unhex(t, strlen(t), l->trace_id, 16) == 0 &&
	    trace_unhex(s, strlen(s), l->span_id, 8) == 0) {
		l->has_span = true;
		l->flags = TRACE_FLAG_SAMPLED;
	}
	const cJSON *f;
	cJSON_ArrayForEach(f, v) {
		const char *k = f->string;
		if (!strcmp(k, "message") || !strcmp(k, "msg") || !strcmp(k, "trace_id") || !strcmp(k, "span_id") ||
		    (sev > 0 && (!strcmp(k, "level") || !strcmp(k, "severity"))))
			continue;
		if (cJSON_IsString(f))
			trace_attr_set_str(&l->attrs, k, f->valuestring);
		else if (cJSON_IsBool(f))
			trace_attr_set_bool(&l->attrs, k, cJSON_IsTrue(f));
		else if (cJSON_IsNumber(f) && f->valuedouble == (double)(int64_t)f->valuedouble &&
		         f->valuedouble > -9e15 && f->valuedouble < 9e15)
			trace_attr_set_int(&l->attrs, k, (int64_t)f->valuedouble);
		else if (cJSON_IsNumber(f))
			trace_attr_set_double(&l->attrs, k, f->valuedouble);
	}
	json_free(v);
	return true;
}

int cmd_log(int argc, char **argv)
{
	struct log_opts o = {.level = TRACE_SEV_INFO, .file = getenv("DSYS_TRACE_FILE")};
	if (o.file && !*o.file)
		o.file = NULL;
	int first;
	int r = cli_parse(&log_spec, argc, argv, on_log_option, &o, &first);
	if (r >= 0)
		return r;
	if (first < argc) {
		cli_error("unexpected argument '%s'", argv[first]);
		return EXIT_USAGE;
	}
	if (o.service)
		setenv("OTEL_SERVICE_NAME", o.service, 1);
	struct trace_attrs res = {0};
	resource_init(&res);
	struct trace_context cur;
	bool have_ctx = trace_context_from_env(&cur) == 0;

	struct otlp_config cfg;
	char err[512] = "";
	struct otlp_batch *batch = NULL;
	int rc = otlp_config_from_env(&cfg, "logs", err, sizeof err);
	int failed = 0;
	if (rc == 1)
		cli_error("%s", err);
	if (rc == -EINVAL) {
		cli_error("%s", err);
		failed = 1;
	} else if (rc >= 0) {
		struct otlp_batch_options bo;
		if (otlp_batch_options_from_env(&bo, err, sizeof err) < 0)
			cli_error("%s", err);
		batch = otlp_batch_new(&cfg, OTLP_SIGNAL_LOGS, &bo);
	}
	bool to_stdout = !o.file && !batch && !failed;

	struct buf line = BUF_INIT;
	char *in = NULL;
	size_t cap = 0;
	ssize_t n;
	uint64_t records = 0;
	while ((n = getline(&in, &cap, stdin)) >= 0) {
		size_t len = (size_t)n;
		while (len && (in[len - 1] == '\n' || in[len - 1] == '\r'))
			len--;
		if (len > LOG_LINE_MAX)
			len = LOG_LINE_MAX;
		in[len] = '\0';
		struct trace_log l = {0};
		l.observed_ns = trace_now_ns();
		l.time_ns = l.observed_ns;
		if (!read_json_line(in, len, &l))
			trace_log_set(&l.body, in);
		if (!l.severity) {
			l.severity = o.level;
			trace_log_set(&l.severity_text, sev_text(o.level));
		}
		if (!l.has_span && have_ctx) {
			l.has_span = true;
			memcpy(l.trace_id, cur.trace_id, 16);
			memcpy(l.span_id, cur.span_id, 8);
			l.flags = cur.flags & TRACE_FLAG_SAMPLED;
		}
		const struct otlp_item it = {.resource = &res, .log = &l};
		records++;
		if (o.file || to_stdout) {
			buf_reset(&line);
			trace_log_json(&l, &res, "dsys", DSYS_VERSION, &line);
			if (to_stdout) {
				buf_putc(&line, '\n');
				if (fwrite(line.data, 1, line.len, stdout) != line.len || fflush(stdout) == EOF) {
					trace_log_free(&l);
					break; /* a closed stdout: stop quietly */
				}
			} else {
				int wrc = trace_export_file(o.file, &line);
				if (wrc < 0 && !failed) {
					cli_error("cannot write log record to '%s': %s", o.file, strerror(-wrc));
					failed = 1;
				}
			}
		}
		if (batch && otlp_batch_add(batch, &it) < 0 && !failed) {
			cli_error("the export queue is full: records dropped (OTEL_BSP_MAX_QUEUE_SIZE)");
			failed = 1;
		}
		trace_log_free(&l);
	}
	free(in);
	buf_free(&line);
	if (batch) {
		otlp_batch_flush(batch, cfg.timeout_ms);
		struct otlp_batch_stats st;
		otlp_batch_stats(batch, &st);
		otlp_batch_free(batch);
		if (st.failed || st.queued) {
			cli_error("%llu of %llu log records were not taken by %s", (unsigned long long)(st.failed + st.queued),
			          (unsigned long long)records, cfg.url);
			failed = 1;
		}
	}
	trace_attrs_free(&res);
	return failed ? EXIT_UNREACHABLE : 0;
}
