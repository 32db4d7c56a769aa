/*
 * test_http_server.c -- the server core's promises, from a real socket.
 *
 * The server runs on a thread of its own (http_server_run blocks); the test
 * is a plain blocking client.  Handlers answer at once, or later from a
 * timer on the loop (the way a Redis reply comes back), in any order:
 * answers must still leave in request order.  A client that leaves while
 * its answer is pending must cost nothing but a dropped answer, and the
 * hooks run once per thread.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "base/buf.h"
#include "http/route.h"
#include "http/server.h"
#include "obs/metrics.h"
#include "tap.h"

static atomic_int inits, finis, gone_seen;

struct later {
	uv_timer_t timer;
	struct http_exchange *ex;
	int tag;
};

static void later_closed(uv_handle_t *h)
{
	free(h->data);
}

static void later_fire(uv_timer_t *t)
{
	struct later *l = t->data;
	if (http_exchange_gone(l->ex))
		atomic_fetch_add(&gone_seen, 1);
	char body[32];
	int n = snprintf(body, sizeof body, "later %d", l->tag);
	http_respond(l->ex, 200, "text/plain", body, (size_t)n);
	uv_close((uv_handle_t *)&l->timer, later_closed);
}

/* GET /later/MS: answer after MS milliseconds, body "later MS". */
static void later_handler(struct http_exchange *ex, void *arg)
{
	(void)arg;
	int ms = atoi(ex->subpath);
	struct later *l = calloc(1, sizeof *l);
	l->ex = ex;
	l->tag = ms;
	l->timer.data = l;
	uv_timer_init(ex->loop, &l->timer);
	uv_timer_start(&l->timer, later_fire, (uint64_t)ms, 0);
}

/* POST /echo: the body back. */
static void echo_handler(struct http_exchange *ex, void *arg)
{
	(void)arg;
	http_respond(ex, 200, "application/octet-stream", ex->body, ex->body_len);
}

/* GET /big: BIG_LEN bytes of 'x', more than the server lets wait unwritten
 * before it stops reading (1 MiB). */
#define BIG_LEN (2u << 20)
static char *big_body;

static void big_handler(struct http_exchange *ex, void *arg)
{
	(void)arg;
	http_respond(ex, 200, "text/plain", big_body, BIG_LEN);
}

/* GET /data: the per-thread data the init hook set. */
static void data_handler(struct http_exchange *ex, void *arg)
{
	(void)arg;
	const char *s = ex->thread_data;
	/* the protocol-neutral answer: a header list, and trailers that
	 * HTTP/1.1 leaves out */
	const char *proto = http_exchange_protocol(ex);
	struct http_header h = {"x-proto", proto, 7, (uint32_t)strlen(proto)};
	struct http_header tr = {"grpc-status", "0", 11, 1};
	struct http_answer a = {.status = 200, .content_type = "text/plain", .headers = &h,
	                        .n_headers = 1, .body = s, .len = strlen(s), .trailers = &tr,
	                        .n_trailers = 1};
	http_answer(ex, &a);
}

static int thread_init(struct http_thread *t, void *arg)
{
	(void)arg;
	atomic_fetch_add(&inits, 1);
	http_thread_set_data(t, "thread data");
	return 0;
}

static void thread_fini(struct http_thread *t, void *arg)
{
	(void)t;
	(void)arg;
	atomic_fetch_add(&finis, 1);
}

static struct http_server *srv;
static int run_result = -1;

static void *server_main(void *arg)
{
	(void)arg;
	run_result = http_server_run(srv);
	return NULL;
}

static int connect_port(uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {0};
	a.sin_family = AF_INET;
	a.sin_port = htons(port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
		close(fd);
		return -1;
	}
	struct timeval tv = {10, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	return fd;
}

/* read(2) and write(2) again after EINTR: the ring a server sets up on
 * this (the test's main) thread may interrupt its blocking calls with
 * io_uring's task-work notification, which is not a signal and not an
 * error. */
static ssize_t read_r(int fd, void *p, size_t n)
{
	ssize_t r;
	do
		r = read(fd, p, n);
	while (r < 0 && errno == EINTR);
	return r;
}

static ssize_t write_r(int fd, const void *p, size_t n)
{
	ssize_t r;
	do
		r = write(fd, p, n);
	while (r < 0 && errno == EINTR);
	return r;
}

static void send_all(int fd, const char *s, size_t n)
{
	while (n) {
		ssize_t w = write_r(fd, s, n);
		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

/* Read until `want` occurrences of "HTTP/1.1 " and the last body (by its
 * marker) have arrived, or the peer closes; returns bytes read. */
static size_t read_until(int fd, char *out, size_t cap, const char *last)
{
	size_t len = 0;
	while (len + 1 < cap) {
		ssize_t n = read_r(fd, out + len, cap - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		out[len] = '\0';
		if (last && strstr(out, last))
			break;
	}
	out[len] = '\0';
	return len;
}

/* Read one answer whole (Content-Length framing) into out, after the
 * `*have` bytes already there; keeps what follows it at the front.  Returns
 * the body length, or -1 when the peer closes or stalls first. */
static long read_answer(int fd, char *out, size_t cap, size_t *have)
{
	size_t len = *have;
	for (;;) {
		out[len] = '\0';
		char *h = strstr(out, "\r\n\r\n");
		if (h) {
			char *cl = strstr(out, "Content-Length: ");
			size_t head = (size_t)(h + 4 - out);
			size_t body = cl && cl < h ? strtoul(cl + 16, NULL, 10) : 0;
			if (len >= head + body) {
				memmove(out, out + head + body, len - head - body);
				*have = len - head - body;
				return (long)body;
			}
		}
		if (len + 1 >= cap)
			return -1;
		ssize_t n = read_r(fd, out + len, cap - 1 - len);
		if (n <= 0)
			return -1;
		len += (size_t)n;
	}
}

int main(void)
{
	struct metrics *reg = metrics_new();
	struct http_router *r = http_router_new(reg);
	ok(http_route_add_prefix(r, "GET", "/later/", later_handler, NULL) == 0, "a prefix route is added");
	ok(http_route_add(r, "POST", "/echo", echo_handler, NULL) == 0, "an exact route is added");
	ok(http_route_add(r, "GET", "/data", data_handler, NULL) == 0, "another route is added");
	ok(http_route_add(r, "GET", "/big", big_handler, NULL) == 0, "a route with a big answer is added");
	big_body = malloc(BIG_LEN);
	memset(big_body, 'x', BIG_LEN);
	is_int(http_route_add(r, "POST", "/echo", echo_handler, NULL), -EEXIST,
	       "the same method and path twice is -EEXIST");
	is_int(http_route_add(r, "G T", "/x", echo_handler, NULL), -EINVAL, "a method that is not a token is -EINVAL");
	is_int(http_route_add(r, "GET", "x", echo_handler, NULL), -EINVAL, "a path without '/' is -EINVAL");
	http_route_add_health(r);
	http_route_add_metrics(r, reg);

	struct http_server_config cfg;
	http_server_config_init(&cfg);
	is_int(http_server_new(&cfg, &srv), -EINVAL, "a config without a handler is refused");
	cfg.threads = 2;
	cfg.handle_signals = false;
	cfg.handler = http_router_handle;
	cfg.handler_arg = r;
	cfg.thread_init = thread_init;
	cfg.thread_fini = thread_fini;
	cfg.metrics = reg;
	ok(http_server_new(&cfg, &srv) == 0, "a server is made");
	ok(http_server_listen(srv) == 0, "it listens");
	uint16_t port = http_server_port(srv);
	ok(port != 0, "port 0 picked a port (%u)", port);
	is_int(http_server_threads(srv), 2, "two threads");
	pthread_t tid;
	pthread_create(&tid, NULL, server_main, NULL);

	static char got[65536];
	int fd = connect_port(port);
	ok(fd >= 0, "a client connects");

	/* answered out of order, written in order */
	const char *burst =
		"GET /later/300 HTTP/1.1\r\nHost: a\r\n\r\n"
		"GET /later/10 HTTP/1.1\r\nHost: a\r\n\r\n"
		"GET /health HTTP/1.1\r\nHost: a\r\n\r\n"
		"GET /later/100 HTTP/1.1\r\nHost: a\r\n\r\n";
	send_all(fd, burst, strlen(burst));
	read_until(fd, got, sizeof got, "later 100");
	/* "later 10" is followed by the next answer's status line */
	char *a = strstr(got, "later 300"), *b = strstr(got, "later 10HTTP"),
	     *c = strstr(got, "{\"status\":\"ok\"}"), *d = strstr(got, "later 100");
	ok(a && b && c && d && a < b && b < c && c < d,
	   "four pipelined answers, finished out of order, leave in request order");

	/* a body, chunked, echoed; then the per-thread data */
	const char *post =
		"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
		"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
		"GET /data HTTP/1.1\r\nHost: a\r\n\r\n";
	send_all(fd, post, strlen(post));
	read_until(fd, got, sizeof got, "thread data");
	ok(strstr(got, "Content-Length: 11\r\n\r\nhello world") != NULL, "a chunked body reaches the handler whole");
	ok(strstr(got, "\r\n\r\nthread data") != NULL, "the handler sees what the init hook set");
	ok(strstr(got, "x-proto: http/1.1\r\n") != NULL && strstr(got, "grpc-status") == NULL,
	   "http_answer writes its header list on HTTP/1.1 and leaves the trailers out");

	/* a large body that does not fit a read block */
	size_t big = 200000;
	struct buf req = BUF_INIT;
	buf_printf(&req, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: %zu\r\n\r\n", big);
	for (size_t i = 0; i < big; i++)
		buf_putc(&req, (char)('a' + i % 26));
	send_all(fd, req.data, req.len);
	size_t n = 0;
	for (;;) {
		ssize_t k = read_r(fd, got + n, sizeof got - 1 - n);
		if (k <= 0)
			break;
		n += (size_t)k;
		got[n] = '\0';
		char *h = strstr(got, "\r\n\r\n");
		if (h && (size_t)(got + n - (h + 4)) >= (big < 60000 ? big : 60000))
			break;
	}
	char *h = strstr(got, "\r\n\r\n");
	ok(h && strstr(got, "Content-Length: 200000\r\n") && !memcmp(h + 4, req.data + req.len - big, 1000),
	   "a 200000-byte body is read into a buffer of its own and echoed");
	buf_free(&req);
	close(fd);

	/* answers over the unwritten-backlog bound (which stops reading), taken
	 * by the socket whole or in part: reading must resume after each */
	fd = connect_port(port);
	size_t bigcap = 2 * (BIG_LEN + 4096), have = 0;
	char *bigbuf = malloc(bigcap);
	const char *getbig = "GET /big HTTP/1.1\r\nHost: a\r\n\r\n";
	int seq = 0, piped = 0;
	for (int i = 0; i < 2 && seq == i; i++) {
		send_all(fd, getbig, strlen(getbig));
		seq += read_answer(fd, bigbuf, bigcap, &have) == (long)BIG_LEN;
	}
	is_int(seq, 2, "two 2 MiB answers one after the other on one connection");
	for (int i = 0; i < 2 && seq == 2 && piped == 2 * i; i++) {
		send_all(fd, getbig, strlen(getbig));
		send_all(fd, getbig, strlen(getbig));
		piped += read_answer(fd, bigbuf, bigcap, &have) == (long)BIG_LEN;
		piped += read_answer(fd, bigbuf, bigcap, &have) == (long)BIG_LEN;
	}
	is_int(piped, 4, "two pipelined pairs of 2 MiB answers on the same connection");
	free(bigbuf);
	close(fd);

	/* a client that leaves while its answer is pending */
	fd = connect_port(port);
	const char *gone = "GET /later/1000 HTTP/1.1\r\nHost: a\r\n\r\n";
	send_all(fd, gone, strlen(gone));
	usleep(50000);
	/* a reset, not a FIN: a client that only half-closes still gets its answer */
	struct linger lg = {1, 0};
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	close(fd);
	for (int i = 0; i < 500 && atomic_load(&gone_seen) == 0; i++)
		usleep(20000);
	is_int(atomic_load(&gone_seen), 1, "the late handler sees the client gone, answers, and nothing breaks");

	fd = connect_port(port);
	const char *again = "GET /health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
	send_all(fd, again, strlen(again));
	read_until(fd, got, sizeof got, NULL);
	ok(strstr(got, "HTTP/1.1 200 OK\r\n") && strstr(got, "Connection: close\r\n"),
	   "the server goes on serving, and closes on Connection: close");
	close(fd);

	/* a request in flight when the drain starts is answered */
	fd = connect_port(port);
	const char *slow = "GET /later/300 HTTP/1.1\r\nHost: a\r\n\r\n";
	send_all(fd, slow, strlen(slow));
	usleep(50000);
	http_server_stop(srv);
	read_until(fd, got, sizeof got, NULL);
	ok(strstr(got, "later 300") && strstr(got, "Connection: close\r\n"),
	   "a request in flight at the drain is answered with Connection: close");
	close(fd);
	pthread_join(tid, NULL);
	is_int(run_result, 0, "http_server_run returns 0 after the drain");
	is_int(atomic_load(&inits), 2, "the init hook ran once per thread");
	is_int(atomic_load(&finis), 2, "the fini hook ran once per thread");

	struct buf m = BUF_INIT;
	metrics_render(reg, &m);
	ok(strstr(m.data, "http_requests_total{route=\"/later/\",code=\"200\"} 5\n") != NULL,
	   "answers are counted under their route");
	ok(strstr(m.data, "http_requests_in_flight 0\n") != NULL, "nothing is in flight after the drain");
	buf_free(&m);

	http_server_free(srv);
	free(big_body);

	/* --max-uri-bytes over the head limit and the default read block: the
	 * server holds enough of a long target for the parser to decide */
	cfg.threads = 1;
	cfg.thread_init = NULL;
	cfg.thread_fini = NULL;
	cfg.metrics = NULL;
	cfg.limits.max_uri = 65536;
	ok(http_server_new(&cfg, &srv) == 0 && http_server_listen(srv) == 0,
	   "a server with a 64 KiB target limit listens");
	port = http_server_port(srv);
	pthread_create(&tid, NULL, server_main, NULL);
	const size_t lens[2] = {40960, 71680};
	const char *want[2] = {"HTTP/1.1 431 ", "HTTP/1.1 414 "};
	for (int i = 0; i < 2; i++) {
		struct buf lr = BUF_INIT;
		buf_puts(&lr, "GET /");
		for (size_t k = 0; k < lens[i]; k++)
			buf_putc(&lr, 'a');
		buf_puts(&lr, " HTTP/1.1\r\nHost: a\r\n\r\n");
		fd = connect_port(port);
		send_all(fd, lr.data, lr.len);
		read_until(fd, got, sizeof got, NULL);
		ok(strncmp(got, want[i], strlen(want[i])) == 0, "a %zu-byte target is a %.3s, not a 408",
		   lens[i], want[i] + 9);
		close(fd);
		buf_free(&lr);
	}
	http_server_stop(srv);
	pthread_join(tid, NULL);
	http_server_free(srv);

	http_router_free(r);
	metrics_free(reg);
	return tap_done();
}
