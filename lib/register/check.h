/*
 * register/check.h -- health checks of a registered instance.
 *
 *   http://HOST[:PORT][/PATH]   passing when a GET answers 2xx
 *   tcp://HOST:PORT             passing when a connection is accepted
 *   exec:COMMAND                passing when `/bin/sh -c COMMAND` exits 0
 *                               (in a process group of its own, killed
 *                               whole when it overruns)
 *
 * reg_check_run blocks up to timeout_ms: dsys-register runs it on libuv's
 * thread pool, one check at a time.  It is safe from any thread; an http
 * check loads libcurl on its first run (io/curl_dl), and a libcurl that
 * cannot be loaded makes the check fail with the reason in out.
 */
#ifndef DSYS_REGISTER_CHECK_H
#define DSYS_REGISTER_CHECK_H

#include <stddef.h>
#include <stdint.h>

enum reg_check_kind { REG_CHECK_NONE = 0, REG_CHECK_HTTP, REG_CHECK_TCP, REG_CHECK_EXEC };

struct reg_check {
	enum reg_check_kind kind;
	char target[2048];     /* the URL, HOST:PORT, or the command */
};

/* 0, or -1 with *why. */
int reg_check_parse(const char *text, struct reg_check *c, const char **why);

/* 0 passing, -1 failing; out gets a short reason either way ("HTTP 200",
 * "connection refused", "exit 1", "timed out after 2000 ms"). */
int reg_check_run(const struct reg_check *c, unsigned timeout_ms, char *out, size_t size);

#endif
