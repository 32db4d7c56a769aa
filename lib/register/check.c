/*
 * register/check.c -- one run of a health check, blocking, bounded by a
 * timeout (see check.h).  Each kind is the plainest thing that answers
 * "would a client be served?": a GET for http, a completed connect for
 * tcp, an exit status for exec.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/parse.h"
#include "io/curl_dl.h"
#include "register/check.h"

extern char **environ;

int reg_check_parse(const char *text, struct reg_check *c, const char **why)
{
	memset(c, 0, sizeof *c);
	if (strlen(text) >= sizeof c->target)
		return *why = "is longer than 2047 bytes", -1;
	if (!strncmp(text, "http://", 7)) {
		if (!text[7] || text[7] == '/')
			return *why = "expected http://HOST[:PORT][/PATH]", -1;
		c->kind = REG_CHECK_HTTP;
		strcpy(c->target, text);
		return 0;
	}
	if (!strncmp(text, "tcp://", 6)) {
		char host[256];
		uint16_t port;
		if (parse_hostport(text + 6, host, sizeof host, &port) < 0 || !host[0] || port == 0 ||
		    text[6] == ':')
			return *why = "expected tcp://HOST:PORT", -1;
		c->kind = REG_CHECK_TCP;
		strcpy(c->target, text + 6);
		return 0;
	}
	if (!strncmp(text, "exec:", 5)) {
		if (!text[5])
			return *why = "expected exec:COMMAND", -1;
		c->kind = REG_CHECK_EXEC;
		strcpy(c->target, text + 5);
		return 0;
	}
	return *why = "expected http://HOST:PORT/PATH, tcp://HOST:PORT or exec:COMMAND", -1;
}

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
	(void)p;
	(void)ud;
	return size * n;
}

static int run_http(const struct reg_check *c, unsigned timeout_ms, char *out, size_t size)
{
	const char *why;
	if (!curl_dl_load(&why))
		return snprintf(out, size, "%s", why), -1;
	CURL *h = curl_easy_init();
	if (!h)
		return snprintf(out, size, "out of memory"), -1;
	curl_easy_setopt(h, CURLOPT_URL, c->target);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http");
	CURLcode r = curl_easy_perform(h);
	long code = 0;
	int rc = -1;
	if (r != CURLE_OK) {
		snprintf(out, size, "%s", curl_easy_strerror(r));
	} else {
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
		snprintf(out, size, "HTTP %ld", code);
		rc = code >= 200 && code < 300 ? 0 : -1;
	}
	curl_easy_cleanup(h);
	return rc;
}

static int run_tcp(const struct reg_check *c, unsigned timeout_ms, char *out, size_t size)
{
	char host[256], port[8];
	uint16_t p;
	if (parse_hostport(c->target, host, sizeof host, &p) < 0)
		return snprintf(out, size, "bad address"), -1;
	snprintf(port, sizeof port, "%u", p);
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
	int g = getaddrinfo(host, port, &hints, &res);
	if (g)
		return snprintf(out, size, "%s", gai_strerror(g)), -1;
	int rc = -1;
	snprintf(out, size, "no address");
	for (struct addrinfo *a = res; a && rc < 0; a = a->ai_next) {
		int fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		int e = connect(fd, a->ai_addr, a->ai_addrlen) == 0 ? 0 : errno;
		if (e == EINPROGRESS) {
			struct pollfd pf = {fd, POLLOUT, 0};
			int n = poll(&pf, 1, (int)timeout_ms);
			socklen_t l = sizeof e;
			if (n == 0)
				e = ETIMEDOUT;
			else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l) < 0)
				e = errno;
		}
		close(fd);
		if (e == 0) {
			snprintf(out, size, "connected");
			rc = 0;
		} else {
			snprintf(out, size, "%s", strerror(e));
		}
	}
	freeaddrinfo(res);
	return rc;
}

static int run_exec(const struct reg_check *c, unsigned timeout_ms, char *out, size_t size)
{
	posix_spawnattr_t at;
	posix_spawnattr_init(&at);
	posix_spawnattr_setpgroup(&at, 0);
	sigset_t none, all;
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &all);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	char *argv[] = {"sh", "-c", (char *)c->target, NULL};
	pid_t pid;
	int e = posix_spawn(&pid, "/bin/sh", NULL, &at, argv, environ);
	posix_spawnattr_destroy(&at);
	if (e)
		return snprintf(out, size, "cannot run /bin/sh: %s", strerror(e)), -1;
	/* wait in 5 ms steps: the main thread reaps only its own child */
	struct timespec step = {0, 5000000};
	int st = 0;
	for (unsigned waited = 0;; waited += 5) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR)
			return snprintf(out, size, "%s", strerror(errno)), -1;
		if (waited >= timeout_ms) {
			kill(-pid, SIGKILL);
			while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
				;
			return snprintf(out, size, "timed out after %u ms", timeout_ms), -1;
		}
		nanosleep(&step, NULL);
	}
	if (WIFEXITED(st)) {
		snprintf(out, size, "exit %d", WEXITSTATUS(st));
		return WEXITSTATUS(st) == 0 ? 0 : -1;
	}
	snprintf(out, size, "killed by signal %d", WTERMSIG(st));
	return -1;
}

int reg_check_run(const struct reg_check *c, unsigned timeout_ms, char *out, size_t size)
{
	switch (c->kind) {
	case REG_CHECK_HTTP: return run_http(c, timeout_ms, out, size);
	case REG_CHECK_TCP: return run_tcp(c, timeout_ms, out, size);
	case REG_CHECK_EXEC: return run_exec(c, timeout_ms, out, size);
	default: snprintf(out, size, "no check"); return 0;
	}
}
