/*
 * base/log.h -- one logging call with levels, to stderr.
 *
 * stdout carries data only (JSON lines); every diagnostic of a running
 * program goes through here.  DSYS_LOG_LEVEL picks the threshold (error,
 * warn, info, debug; default info) and DSYS_LOG_FORMAT the shape:
 *
 *   text: 2026-11-25T07:01:36.123Z info dsys-serve: listening on 127.0.0.1:8080
 *   json: {"ts":"2026-11-25T07:01:36.123Z","level":"info","prog":"dsys-serve","msg":"..."}
 *
 * The default is text when stderr is a terminal and json otherwise, so a
 * server under a supervisor writes lines a log shipper can parse.
 * One line is one write(2), so lines from several threads never interleave.
 *
 * Threads: log_init and log_set_level set process-wide state, once at
 * start before any thread runs; log_msg may then be called from any
 * thread.  Nothing is allocated that outlives a call.
 */
#ifndef DSYS_LOG_H
#define DSYS_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Read DSYS_LOG_LEVEL and DSYS_LOG_FORMAT.  Returns 0, or -1 when one of
 * them holds a value it does not know (the program reports a usage error). */
int log_init(const char *prog);
/* After log_init returned -1: what to print after the program's name,
 * "invalid value 'x' in DSYS_LOG_LEVEL: expected error, warn, info or debug"
 * (a static string). */
const char *log_init_error(void);

void log_set_level(enum log_level level);
int log_enabled(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * The trace this thread works for now (lower-case hex: 32 digits of trace
 * id, 16 of span id), added to each line it logs until cleared with NULL:
 * "trace_id" and "span_id" in JSON, "trace_id=... span_id=..." at the end
 * of a text line, so a log line and the span of the request it was
 * written for can be found from each other (lib/http/trace.h sets it).
 */
void log_trace_set(const char *trace_id, const char *span_id);

/*
 * The trace the whole process works for, used on a thread that has none
 * set: the TRACEPARENT it was started with (lib/cli's cli_init sets it),
 * so the lines of a program run under `dsys-trace exec` name that span,
 * as OpenTelemetry's environment carrier makes it the process's context.
 * Once at start, before any thread runs; NULL clears.
 */
void log_trace_set_process(const char *trace_id, const char *span_id);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  do { if (log_enabled(LOG_INFO)) log_msg(LOG_INFO, __VA_ARGS__); } while (0)
#define log_debug(...) do { if (log_enabled(LOG_DEBUG)) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
