/*
 * watch_count -- counts the events a watch on etcd's v3 JSON gateway
 * delivers, for make bench (section raft-node, case watch-c64), cheaply
 * enough that it is never what limits the rate it measures.
 *
 *   watch_count HOST:PORT KEY RANGE_END START_REV
 *
 * KEY and RANGE_END are base64, as the gateway takes them; START_REV is the
 * first revision wanted (0: from the member's next one).  It POSTs
 * /v3/watch with that create_request once and reads the one stream both
 * etcd and dsys-raft answer it with (chunked, one {"result":...} line per
 * batch, for as long as the client stays), counting as the chunks come.
 * Only if a stream ends (a member stopped, a connection broke; or a
 * server that answers a watch as a long poll, with a body of a length)
 * is the watch made again, from the revision after the last event seen,
 * as etcd's clients resume, on the same connection when the server keeps
 * it; "watches" in the output says how often that happened (1: never).
 *
 * It does not parse the JSON.  It counts events by the one "kv":{ each
 * carries (the watch asks for no prev_kv, so there is no other) and keeps
 * the last "mod_revision":"N" for the resumption, scanning the decoded
 * body with memmem in blocks.  A match cut by a block boundary is not
 * lost: the last SCAN_KEEP bytes of a block (more than any match with its
 * digits) are scanned again with the next block, and a match is counted
 * only by the block in which it starts before that tail.
 *
 * Output, one JSON object a line on stdout:
 *   {"event":"ready"}      once the first watch request is sent
 *   {"events":N,"revision":R,"watches":W}   on SIGUSR1 (and it goes on),
 *                          and on SIGTERM or SIGINT (and it exits 0):
 *                          events so far, the last event's revision, and
 *                          how many watch requests were made
 * Errors (cannot connect, an answer other than 200, a watch the server
 * canceled: its start revision compacted) go to stderr, exit 1.
 * Signals are blocked except inside ppoll, so none is lost between a check
 * and a wait; nothing is allocated after start-up.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_BYTES (256 * 1024)
#define SCAN_BYTES (256 * 1024)
#define SCAN_KEEP 64     /* > strlen("\"mod_revision\":\"") + 20 digits + '"' */
#define HEAD_MAX (16 * 1024)

static const char KV_PAT[] = "\"kv\":{";
static const char REV_PAT[] = "\"mod_revision\":\"";
static const char CANCEL_PAT[] = "\"canceled\":true";

static volatile sig_atomic_t want_report, want_stop;
static sigset_t wait_mask;       /* the mask inside ppoll: signals let in */

static char rbuf[READ_BYTES];    /* bytes read from the socket */
static size_t rpos, rlen;        /* unconsumed: rbuf[rpos, rlen) */
static char scan[SCAN_BYTES];    /* decoded body not yet scanned */
static size_t scan_len;

static uint64_t events, watches;
static int64_t last_rev;
static int canceled;             /* the server ended the watch (compacted) */

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		want_report = 1;
	else
		want_stop = 1;
}

static void report(void)
{
	printf("{\"events\":%" PRIu64 ",\"revision\":%" PRId64 ",\"watches\":%" PRIu64 "}\n", events, last_rev,
	       watches);
	fflush(stdout);
}

/* Scan scan[0, limit) for match starts; keep scan[limit, scan_len). */
static void scan_run(int final)
{
	size_t limit = final ? scan_len : (scan_len > SCAN_KEEP ? scan_len - SCAN_KEEP : 0);
	const char *p = scan, *end = scan + scan_len;
	while ((p = memmem(p, (size_t)(end - p), KV_PAT, sizeof KV_PAT - 1)) && p < scan + limit) {
		events++;
		p += sizeof KV_PAT - 1;
	}
	p = scan;
	while ((p = memmem(p, (size_t)(end - p), REV_PAT, sizeof REV_PAT - 1)) && p < scan + limit) {
		p += sizeof REV_PAT - 1;
		int64_t v = 0;
		while (p < end && *p >= '0' && *p <= '9')
			v = v * 10 + (*p++ - '0');
		if (v > last_rev)
			last_rev = v;
	}
	p = memmem(scan, scan_len, CANCEL_PAT, sizeof CANCEL_PAT - 1);
	if (p && p < scan + limit)
		canceled = 1;
	memmove(scan, scan + limit, scan_len - limit);
	scan_len -= limit;
}

static void scan_feed(const char *d, size_t n)
{
	while (n) {
		size_t k = SCAN_BYTES - scan_len < n ? SCAN_BYTES - scan_len : n;
		memcpy(scan + scan_len, d, k);
		scan_len += k;
		d += k;
		n -= k;
		if (scan_len == SCAN_BYTES)
			scan_run(0);
	}
}

/* More bytes into rbuf: >0 read, 0 end of stream, -1 error, -2 stopping. */
static int fill(int fd)
{
	if (rpos == rlen)
		rpos = rlen = 0;
	if (rlen == READ_BYTES) {
		memmove(rbuf, rbuf + rpos, rlen - rpos);
		rlen -= rpos;
		rpos = 0;
	}
	for (;;) {
		if (want_report) {
			want_report = 0;
			scan_run(0);
			report();
		}
		if (want_stop)
			return -2;
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		if (ppoll(&pf, 1, NULL, &wait_mask) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		ssize_t n = read(fd, rbuf + rlen, READ_BYTES - rlen);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -1 : 0;
		rlen += (size_t)n;
		return 1;
	}
}

/* A line ending in CRLF from rbuf (for chunk sizes); its length, or <0 as fill. */
static long get_line(int fd, char *out, size_t cap)
{
	for (;;) {
		char *nl = memchr(rbuf + rpos, '\n', rlen - rpos);
		if (nl) {
			size_t n = (size_t)(nl - (rbuf + rpos)) + 1;
			size_t k = n < cap ? n : cap - 1;
			memcpy(out, rbuf + rpos, k);
			out[k] = 0;
			rpos += n;
			return (long)n;
		}
		if (rlen - rpos > 4096)
			return -1;
		int r = fill(fd);
		if (r <= 0)
			return r == 0 ? -1 : r;
	}
}

static int dial(const char *host, int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		fprintf(stderr, "watch_count: '%s' is not an IPv4 address\n", host);
		return -1;
	}
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		fprintf(stderr, "watch_count: cannot connect to %s:%d: %s\n", host, port, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static int send_watch(int fd, const char *host, int port, const char *key, const char *end, int64_t start)
{
	char body[512], req[1024];
	int bl = snprintf(body, sizeof body,
	                  "{\"create_request\":{\"key\":\"%s\",\"range_end\":\"%s\",\"start_revision\":\"%" PRId64
	                  "\"}}",
	                  key, end, start);
	int rl = snprintf(req, sizeof req,
	                  "POST /v3/watch HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
	                  "Content-Length: %d\r\n\r\n%s",
	                  host, port, bl, body);
	if (bl >= (int)sizeof body || rl >= (int)sizeof req)
		return -1;
	for (int off = 0; off < rl;) {
		ssize_t n = write(fd, req + off, (size_t)(rl - off));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		off += (int)n;
	}
	watches++;
	return 0;
}

/*
 * One answer: its head, then its body into the scanner.  1 when the
 * connection can carry the next watch, 0 when it must be made again, -3
 * when it broke before the answer ended (made again, but counted as a
 * failure), -1 on an error that ends the program, -2 when stopping.
 */
static int read_answer(int fd)
{
	char *h;
	for (;;) {
		h = memmem(rbuf + rpos, rlen - rpos, "\r\n\r\n", 4);
		if (h)
			break;
		if (rlen - rpos > HEAD_MAX) {
			fprintf(stderr, "watch_count: an answer's head over %d bytes\n", HEAD_MAX);
			return -1;
		}
		int r = fill(fd);
		if (r <= 0)
			return r == -2 ? -2 : -3;
	}
	char head[HEAD_MAX + 1];
	size_t hl = (size_t)(h - (rbuf + rpos)) + 4;
	memcpy(head, rbuf + rpos, hl);
	head[hl] = 0;
	rpos += hl;
	int status = 0;
	if (sscanf(head, "HTTP/1.%*d %d", &status) != 1 || status != 200) {
		char *eol = strchr(head, '\r');
		if (eol)
			*eol = 0;
		fprintf(stderr, "watch_count: the watch was answered '%s'\n", head);
		return -1;
	}
	int chunked = 0, close_after = 0;
	long long length = -1;
	for (char *line = strstr(head, "\r\n"); line && line[2] != '\r'; line = strstr(line + 2, "\r\n")) {
		char *f = line + 2;
		if (!strncasecmp(f, "Content-Length:", 15))
			length = atoll(f + 15);
		else if (!strncasecmp(f, "Transfer-Encoding:", 18) && strcasestr(f, "chunked") &&
		         strcasestr(f, "chunked") < strstr(f, "\r\n"))
			chunked = 1;
		else if (!strncasecmp(f, "Connection:", 11) && strcasestr(f, "close") &&
		         strcasestr(f, "close") < strstr(f, "\r\n"))
			close_after = 1;
	}
	if (chunked) {
		for (;;) {
			char line[64];
			long r = get_line(fd, line, sizeof line);
			if (r < 0)
				return r == -2 ? -2 : -3;
			unsigned long long size = strtoull(line, NULL, 16);
			if (size == 0) { /* the last chunk: trailers up to an empty line */
				while ((r = get_line(fd, line, sizeof line)) > 2)
					;
				if (r < 0)
					return r == -2 ? -2 : -3;
				break;
			}
			while (size) {
				if (rpos == rlen) {
					int f = fill(fd);
					if (f <= 0)
						return f == -2 ? -2 : -3;
				}
				size_t k = rlen - rpos < size ? rlen - rpos : (size_t)size;
				scan_feed(rbuf + rpos, k);
				rpos += k;
				size -= k;
			}
			if ((r = get_line(fd, line, sizeof line)) < 0) /* the CRLF after the data */
				return r == -2 ? -2 : -3;
		}
	} else {
		while (length != 0) {
			if (rpos == rlen) {
				int f = fill(fd);
				if (f <= 0) {
					if (f == 0 && length < 0)
						break; /* a body that ends with the connection */
					return f == -2 ? -2 : -3;
				}
			}
			size_t k = rlen - rpos;
			if (length >= 0 && (long long)k > length)
				k = (size_t)length;
			scan_feed(rbuf + rpos, k);
			rpos += k;
			if (length > 0)
				length -= (long long)k;
		}
		if (length < 0)
			close_after = 1;
	}
	scan_run(1);
	return close_after ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: watch_count HOST:PORT KEY RANGE_END START_REV\n"
		                "counts the events a watch on etcd's JSON gateway delivers (make bench)\n");
		return 2;
	}
	char host[64];
	const char *colon = strrchr(argv[1], ':');
	int port = colon ? atoi(colon + 1) : 0;
	if (!colon || (size_t)(colon - argv[1]) >= sizeof host || port <= 0 || port > 65535) {
		fprintf(stderr, "watch_count: want HOST:PORT, not '%s'\n", argv[1]);
		return 2;
	}
	memcpy(host, argv[1], (size_t)(colon - argv[1]));
	host[colon - argv[1]] = 0;
	const char *key = argv[2], *end = argv[3];
	if (strlen(key) > 200 || strlen(end) > 200 || strpbrk(key, "\"\\") || strpbrk(end, "\"\\")) {
		fprintf(stderr, "watch_count: want base64 KEY and RANGE_END\n");
		return 2;
	}
	long long from = atoll(argv[4]);
	int ready = 0;

	signal(SIGPIPE, SIG_IGN);
	sigset_t block;
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &wait_mask);
	sigdelset(&wait_mask, SIGUSR1);
	sigdelset(&wait_mask, SIGTERM);
	sigdelset(&wait_mask, SIGINT);
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	int fd = -1, rc = 0, failures = 0;
	for (;;) {
		if (fd < 0) {
			if ((fd = dial(host, port)) < 0) {
				rc = 1;
				break;
			}
			rpos = rlen = 0;
		}
		/* from the revision after the last event seen, or as asked */
		int64_t start = last_rev > 0 ? last_rev + 1 : (from > 0 ? from : 0);
		int r = -3;
		if (send_watch(fd, host, port, key, end, start) == 0) {
			if (!ready) {
				ready = 1;
				printf("{\"event\":\"ready\"}\n");
				fflush(stdout);
			}
			r = read_answer(fd);
		}
		if (r == -2)
			break;
		if (r == -1) {
			rc = 1;
			break;
		}
		if (r == -3 && ++failures > 5) {
			fprintf(stderr, "watch_count: the watch broke %d times in a row\n", failures);
			rc = 1;
			break;
		}
		if (canceled) {
			fprintf(stderr, "watch_count: the server canceled the watch at revision %" PRId64 "\n", start);
			rc = 1;
			break;
		}
		if (r >= 0)
			failures = 0;
		if (r <= 0) {
			close(fd);
			fd = -1;
		}
		if (r == -3)
			usleep(100 * 1000);
	}
	if (fd >= 0)
		close(fd);
	scan_run(1);
	report();
	return rc;
}
