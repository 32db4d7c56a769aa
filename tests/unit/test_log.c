/* test_log.c -- lib/base/log: the environment it reads, and what it says when
 * a value is wrong. */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "tap.h"

static FILE *err_file;

/* The lines logged since the last call, stderr being err_file. */
static char *logged(void)
{
	static char text[8192];
	int fd = fileno(err_file);
	struct stat st;
	ssize_t got = fstat(fd, &st) == 0 ? pread(fd, text, sizeof text - 1, 0) : -1;
	text[got > 0 ? got : 0] = 0;
	if (ftruncate(fd, 0) != 0 || lseek(fd, 0, SEEK_SET) != 0)
		text[0] = 0;
	return text;
}

static void *thread_logs(void *arg)
{
	(void)arg;
	log_warn("from a thread");
	return NULL;
}

#define T1 "0af7651916cd43dd8448eb211c80319c"
#define S1 "b7ad6b7169203331"
#define T2 "4bf92f3577b34da6a3ce929d0e0e4736"
#define S2 "00f067aa0ba902b7"

/* Which trace a line names: the thread's own span, else the process's. */
static void test_trace_ids(void)
{
	err_file = tmpfile();
	int saved = dup(STDERR_FILENO);
	dup2(fileno(err_file), STDERR_FILENO);
	setenv("DSYS_LOG_LEVEL", "info", 1);
	setenv("DSYS_LOG_FORMAT", "json", 1);
	log_init("t");

	log_warn("plain");
	char *l = logged();
	bool none = strstr(l, "\"msg\":\"plain\"") && strstr(l, "trace_id") == NULL;
	log_trace_set_process(T1, S1);
	log_warn("in the process's span");
	l = logged();
	bool proc = strstr(l, "\"trace_id\":\"" T1 "\",\"span_id\":\"" S1 "\"") != NULL;
	log_trace_set(T2, S2);
	log_warn("in a request's span");
	l = logged();
	bool thread = strstr(l, T2) && strstr(l, S2) && !strstr(l, T1);
	pthread_t th;
	pthread_create(&th, NULL, thread_logs, NULL);
	pthread_join(th, NULL);
	l = logged();
	bool other = strstr(l, T1) && !strstr(l, T2);
	log_trace_set(NULL, NULL);
	log_warn("after the request");
	l = logged();
	bool back = strstr(l, T1) && strstr(l, S1);
	log_trace_set_process(NULL, NULL);
	log_trace_set(T2, "short");
	log_warn("cleared");
	l = logged();
	bool cleared = strstr(l, "trace_id") == NULL;
	setenv("DSYS_LOG_FORMAT", "text", 1);
	log_init("t");
	log_trace_set(T2, S2);
	log_warn("as text");
	l = logged();
	bool text = strstr(l, "as text trace_id=" T2 " span_id=" S2 "\n") != NULL;
	log_trace_set(NULL, NULL);

	dup2(saved, STDERR_FILENO);
	close(saved);
	fclose(err_file);
	ok(none, "a line outside any span names no trace");
	ok(proc, "with a process trace (its TRACEPARENT) set, a line names it");
	ok(thread, "a thread's own span wins over the process's");
	ok(other, "another thread, with none of its own, names the process's");
	ok(back, "clearing the thread's span falls back to the process's");
	ok(cleared, "an id of the wrong length clears, and so does NULL for the process");
	ok(text, "text lines end with trace_id= and span_id=");
}

int main(void)
{
	test_trace_ids();
	setenv("DSYS_LOG_LEVEL", "Warn", 1);
	setenv("DSYS_LOG_FORMAT", "json", 1);
	ok(log_init("t") == 0, "a known level (any case) and format are accepted");
	ok(log_enabled(LOG_WARN) && !log_enabled(LOG_INFO), "warn lets warnings through, not info");

	setenv("DSYS_LOG_LEVEL", "loud", 1);
	ok(log_init("t") < 0, "an unknown level is refused");
	is_str(log_init_error(), "invalid value 'loud' in DSYS_LOG_LEVEL: expected error, warn, info or debug",
	       "the error names the variable and the value");

	setenv("DSYS_LOG_LEVEL", "debug", 1);
	setenv("DSYS_LOG_FORMAT", "xml", 1);
	ok(log_init("t") < 0, "an unknown format is refused");
	ok(strstr(log_init_error(), "'xml' in DSYS_LOG_FORMAT") != NULL, "and named, not the level fixed since");
	return tap_done();
}
