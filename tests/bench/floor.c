/*
 * floor — the least an HTTP/1.1 server can cost per request on this machine.
 *
 * make bench compares dsys-serve with nginx and h2o, but a ratio to another
 * server says nothing about how much of the cost is the socket API itself.
 * This program is that floor: one thread, one level-triggered epoll loop,
 * non-blocking accept, and for each readable socket exactly one read(2) and
 * (normally) one write(2).  It does not parse: it counts the complete
 * request heads in what it read by counting "\r\n\r\n", and answers each
 * with the same canned keep-alive response that dsys-serve gives on /hello.
 * No routing, no headers looked at, no bodies; a request with a body would
 * confuse it, and that is fine, since wrk sends none.
 *
 * Invariants and trade-offs:
 * - Memory is sized at start-up: per-descriptor state lives in arrays
 *   indexed by fd, as large as RLIMIT_NOFILE (raised to its hard limit);
 *   a descriptor beyond that is closed at once.  Nothing is allocated per
 *   connection or per request.
 * - A "\r\n\r\n" split across two reads still counts once: each connection
 *   carries how many bytes of the terminator its last read ended with.
 * - The answers are a periodic byte stream (the same response repeated), so
 *   what a connection is still owed after a short write is just a byte count
 *   and a phase within one response.  When the socket is full, EPOLLOUT is
 *   armed until the debt is paid; reads go on meanwhile and add to it.
 * - SIGTERM and SIGINT end the loop and the program exits 0.
 *
 * Usage: floor [--listen HOST:PORT]   (default 127.0.0.1:0; port 0 picks one)
 * On stdout, once it accepts: {"event":"ready","listen":"HOST:PORT","pid":N}
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define FLOOR_BODY "Hello from dsys!"
#define FLOOR_RESPONSE                                                     \
	"HTTP/1.1 200 OK\r\n"                                              \
	"Content-Type: text/plain\r\n"                                     \
	"Content-Length: 16\r\n"                                           \
	"\r\n" FLOOR_BODY
#define FLOOR_RESPONSE_LEN (sizeof(FLOOR_RESPONSE) - 1)
#define FLOOR_CANNED_COPIES 1024   /* answers one write(2) can carry */
#define FLOOR_READ_BYTES (64 * 1024)
#define FLOOR_EVENTS 512
#define FLOOR_MAX_FDS (1 << 20)    /* cap on the per-fd arrays */

static char canned[FLOOR_CANNED_COPIES * FLOOR_RESPONSE_LEN];
static char readbuf[FLOOR_READ_BYTES];

/* Per descriptor, indexed by fd; sized once at start-up. */
static uint8_t *tail;      /* bytes of "\r\n\r\n" the last read ended in */
static uint64_t *owed;     /* response bytes not yet written */
static uint16_t *phase;    /* offset of the owed stream in one response */
static size_t max_fds;

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static int usage(FILE *f, int code)
{
	fprintf(f, "usage: floor [--listen HOST:PORT]\n"
		   "a do-nothing epoll HTTP responder, the floor for make bench\n");
	return code;
}

/*
 * Count "\r\n\r\n" in buf, continuing a match of *state bytes left over
 * from the previous read; on return *state holds the match in progress.
 * A byte-wise automaton: the pattern's only self-overlap is "\r\n" after
 * "\r\n\r", handled by the fall-back from 3 to 1 on '\r'.
 */
static uint64_t count_heads(const char *buf, size_t len, uint8_t *state)
{
	static const char pat[4] = { '\r', '\n', '\r', '\n' };
	uint64_t n = 0;
	uint8_t s = *state;
	for (size_t i = 0; i < len; i++) {
		char c = buf[i];
		if (c == pat[s]) {
			if (++s == 4) {
				n++;
				s = 0;
			}
		} else {
			s = (c == '\r') ? 1 : 0;
		}
	}
	*state = s;
	return n;
}

static void conn_close(int fd)
{
	tail[fd] = 0;
	owed[fd] = 0;
	phase[fd] = 0;
	close(fd); /* also leaves the epoll set: no dup of fd exists */
}

/*
 * Write what fd is owed: one write in the common case.  When the socket is
 * full, arm EPOLLOUT and return 0; -1 when the connection is gone.
 */
static int conn_flush(int ep, int fd)
{
	while (owed[fd] > 0) {
		size_t room = sizeof(canned) - phase[fd];
		size_t len = owed[fd] < room ? (size_t)owed[fd] : room;
		ssize_t w = write(fd, canned + phase[fd], len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return -1;
			struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.fd = fd };
			return epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) < 0 ? -1 : 0;
		}
		owed[fd] -= (uint64_t)w;
		phase[fd] = (uint16_t)((phase[fd] + (size_t)w) % FLOOR_RESPONSE_LEN);
	}
	return 0;
}

static void on_readable(int ep, int fd)
{
	ssize_t r = read(fd, readbuf, sizeof(readbuf));
	if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
		       errno != EINTR)) {
		conn_close(fd);
		return;
	}
	if (r < 0)
		return;
	uint64_t n = count_heads(readbuf, (size_t)r, &tail[fd]);
	if (n == 0)
		return;
	uint64_t was = owed[fd];
	owed[fd] += n * FLOOR_RESPONSE_LEN;
	if (was > 0)
		return; /* EPOLLOUT is armed; the writable event pays it */
	if (conn_flush(ep, fd) < 0)
		conn_close(fd);
}

static void on_writable(int ep, int fd)
{
	if (conn_flush(ep, fd) < 0) {
		conn_close(fd);
		return;
	}
	if (owed[fd] == 0) {
		struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
		if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) < 0)
			conn_close(fd);
	}
}

static void on_accept(int ep, int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return; /* EAGAIN, or EMFILE and the like: try later */
		}
		if ((size_t)fd >= max_fds) {
			close(fd);
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		tail[fd] = 0;
		owed[fd] = 0;
		phase[fd] = 0;
		struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
			close(fd);
	}
}

/* Parse HOST:PORT into addr; -1 on bad input. */
static int parse_listen(const char *s, struct sockaddr_in *addr)
{
	const char *colon = strrchr(s, ':');
	if (!colon || colon == s || (size_t)(colon - s) >= 64)
		return -1;
	char host[64];
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	char *end;
	errno = 0;
	long port = strtol(colon + 1, &end, 10);
	if (errno || end == colon + 1 || *end || port < 0 || port > 65535)
		return -1;
	memset(addr, 0, sizeof(*addr));
	addr->sin_family = AF_INET;
	addr->sin_port = htons((uint16_t)port);
	if (strcmp(host, "localhost") == 0)
		strcpy(host, "127.0.0.1");
	if (inet_pton(AF_INET, host, &addr->sin_addr) != 1)
		return -1;
	return 0;
}

static int size_tables(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	max_fds = rl.rlim_cur > FLOOR_MAX_FDS ? FLOOR_MAX_FDS : (size_t)rl.rlim_cur;
	tail = calloc(max_fds, sizeof(*tail));
	owed = calloc(max_fds, sizeof(*owed));
	phase = calloc(max_fds, sizeof(*phase));
	return (tail && owed && phase) ? 0 : -1;
}

int main(int argc, char **argv)
{
	const char *listen_at = "127.0.0.1:0";
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return usage(stdout, 0);
		if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc)
			listen_at = argv[++i];
		else if (strncmp(argv[i], "--listen=", 9) == 0)
			listen_at = argv[i] + 9;
		else
			return usage(stderr, 2);
	}
	struct sockaddr_in addr;
	if (parse_listen(listen_at, &addr) < 0) {
		fprintf(stderr, "floor: bad --listen '%s': want HOST:PORT\n", listen_at);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	struct sigaction sa = { .sa_handler = on_signal }; /* no SA_RESTART */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (size_tables() < 0) {
		fprintf(stderr, "floor: cannot allocate connection tables\n");
		return 1;
	}
	for (size_t i = 0; i < FLOOR_CANNED_COPIES; i++)
		memcpy(canned + i * FLOOR_RESPONSE_LEN, FLOOR_RESPONSE, FLOOR_RESPONSE_LEN);

	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    listen(lfd, SOMAXCONN) < 0) {
		fprintf(stderr, "floor: cannot listen on '%s': %s\n", listen_at, strerror(errno));
		return 3;
	}
	socklen_t alen = sizeof(addr);
	getsockname(lfd, (struct sockaddr *)&addr, &alen);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event lev = { .events = EPOLLIN, .data.fd = lfd };
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) < 0) {
		fprintf(stderr, "floor: epoll: %s\n", strerror(errno));
		return 1;
	}
	char ip[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &addr.sin_addr, ip, sizeof(ip));
	printf("{\"event\":\"ready\",\"listen\":\"%s:%u\",\"pid\":%ld}\n", ip,
	       (unsigned)ntohs(addr.sin_port), (long)getpid());
	fflush(stdout);

	struct epoll_event evs[FLOOR_EVENTS];
	while (!stopping) {
		int n = epoll_wait(ep, evs, FLOOR_EVENTS, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "floor: epoll_wait: %s\n", strerror(errno));
			return 1;
		}
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			if (fd == lfd) {
				on_accept(ep, lfd);
				continue;
			}
			if (evs[i].events & EPOLLOUT) {
				on_writable(ep, fd);
				continue; /* a close here made fd stale */
			}
			if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
				on_readable(ep, fd);
		}
	}
	return 0;
}
