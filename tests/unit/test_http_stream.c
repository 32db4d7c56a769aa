/*
 * test_http_stream.c -- streamed answers on HTTP/1.1, from a real socket,
 * on both socket backends (io_uring where the kernel allows it, libuv).
 *
 * A streamed answer must leave piece by piece as chunks (not gathered to
 * its end), keep its place among pipelined answers, be close-delimited
 * for HTTP/1.0 and head-only for HEAD, and its handler must learn that the
 * client left even when it never writes: a watch waits silently for hours.
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
#include "tap.h"

static atomic_int gone_seen;

struct ticker {
	uv_timer_t timer;
	struct http_exchange *ex;
	int left, sent;
	bool forever;   /* never writes: ends when the client is gone */
};

static void ticker_closed(uv_handle_t *h)
{
	free(h->data);
}

static void ticker_fire(uv_timer_t *t)
{
	struct ticker *k = t->data;
	if (k->forever) {
		if (!http_exchange_gone(k->ex))
			return;
		atomic_fetch_add(&gone_seen, 1);
	} else if (k->left > 0) {
		char line[32];
		int n = snprintf(line, sizeof line, "tick %d\n", k->sent++);
		http_stream_write(k->ex, line, (size_t)n);
		if (--k->left > 0)
			return;
	}
	http_stream_end(k->ex, NULL, 0);
	uv_close((uv_handle_t *)&k->timer, ticker_closed);
}

/* GET /stream/N: N lines "tick K", one each 100 ms; /stream/0 never
 * writes and ends when its client is gone. */
static void stream_handler(struct http_exchange *ex, void *arg)
{
	(void)arg;
	struct ticker *k = calloc(1, sizeof *k);
	k->ex = ex;
	k->left = atoi(ex->subpath);
	k->forever = k->left == 0;
	k->timer.data = k;
	struct http_answer head = {.status = 200, .content_type = "application/json"};
	http_stream_begin(ex, &head);
	uv_timer_init(ex->loop, &k->timer);
	uv_timer_start(&k->timer, ticker_fire, k->forever ? 20 : 100, k->forever ? 20 : 100);
}

/* GET /flood: 256 KiB pieces every millisecond until a write fails (a
 * client that never reads must be dropped, not buffered without end). */
static atomic_int flood_dropped;
static char flood_piece[256 * 1024];

static void flood_fire(uv_timer_t *t)
{
	struct ticker *k = t->data;
	if (http_stream_write(k->ex, flood_piece, sizeof flood_piece) == 0 && k->sent++ < 400)
		return;   /* (100 MiB: the bound was not kept) */
	if (http_exchange_gone(k->ex))
		atomic_fetch_add(&flood_dropped, 1);
	http_stream_end(k->ex, NULL, 0);
	uv_close((uv_handle_t *)&k->timer, ticker_closed);
}

static void flood_handler(struct http_exchange *ex, void *arg)
{
	(void)arg;
	struct ticker *k = calloc(1, sizeof *k);
	k->ex = ex;
	k->timer.data = k;
	struct http_answer head = {.status = 200, .content_type = "application/octet-stream"};
	http_stream_begin(ex, &head);
	uv_timer_init(ex->loop, &k->timer);
	uv_timer_start(&k->timer, flood_fire, 1, 1);
}

struct later {
	uv_timer_t timer;
	struct http_exchange *ex;
};

static void later_closed(uv_handle_t *h)
{
	free(h->data);
}

static void later_fire(uv_timer_t *t)
{
	struct later *l = t->data;
	http_respond(l->ex, 200, "text/plain", "later", 5);
	uv_close((uv_handle_t *)&l->timer, later_closed);
}

/* GET /later: "later" after 250 ms. */
static void later_handler(struct http_exchange *ex, void *arg)
{
	(void)arg;
	struct later *l = calloc(1, sizeof *l);
	l->ex = ex;
	l->timer.data = l;
	uv_timer_init(ex->loop, &l->timer);
	uv_timer_start(&l->timer, later_fire, 250, 0);
}

static struct http_server *srv;

static void *server_main(void *arg)
{
	(void)arg;
	http_server_run(srv);
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
	struct timeval tv = {5, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	return fd;
}

static void send_all(int fd, const char *s)
{
	size_t n = strlen(s);
	while (n) {
		ssize_t w = write(fd, s, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

/* Read until marker has arrived (NULL: until the peer closes); returns
 * the bytes read, into out (NUL-terminated), appended after *len. */
static size_t read_until(int fd, char *out, size_t cap, size_t len, const char *marker)
{
	while (len + 1 < cap) {
		out[len] = '\0';
		if (marker && strstr(out, marker))
			break;
		ssize_t n = read(fd, out + len, cap - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	out[len] = '\0';
	return len;
}

static void run(enum http_io io, const char *name)
{
	struct http_router *r = http_router_new(NULL);
	http_route_add_prefix(r, "GET", "/stream/", stream_handler, NULL);
	http_route_add(r, "GET", "/later", later_handler, NULL);
	http_route_add(r, "GET", "/flood", flood_handler, NULL);
	http_route_add_health(r);
	struct http_server_config cfg;
	http_server_config_init(&cfg);
	cfg.threads = 1;
	cfg.handle_signals = false;
	cfg.handler = http_router_handle;
	cfg.handler_arg = r;
	cfg.io = io;
	if (http_server_new(&cfg, &srv) != 0 || http_server_listen(srv) != 0) {
		for (int i = 0; i < 9; i++)
			skip("the server cannot listen with this backend", "%s: streamed answers", name);
		http_server_free(srv);
		http_router_free(r);
		return;
	}
	uint16_t port = http_server_port(srv);
	pthread_t tid;
	pthread_create(&tid, NULL, server_main, NULL);
	static char got[65536];

	/* the first chunk leaves before the stream ends */
	int fd = connect_port(port);
	send_all(fd, "GET /stream/3 HTTP/1.1\r\nHost: a\r\n\r\n");
	size_t n = read_until(fd, got, sizeof got, 0, "tick 0\n");
	ok(strstr(got, "Transfer-Encoding: chunked\r\n") && strstr(got, "\r\n\r\n7\r\ntick 0\n\r\n") &&
	   !strstr(got, "tick 1") && !strstr(got, "Content-Length"),
	   "%s: a streamed answer's head and first chunk arrive before its end", name);
	/* then the rest and the zero chunk; a request behind it is answered after it */
	send_all(fd, "GET /health HTTP/1.1\r\nHost: a\r\n\r\n");
	read_until(fd, got, sizeof got, n, "\"ok\"");
	char *t2 = strstr(got, "7\r\ntick 2\n\r\n0\r\n\r\nHTTP/1.1 200 OK");
	ok(t2 != NULL && strstr(got, "tick 1\n\r\n7\r\ntick 2") != NULL,
	   "%s: each write is a chunk, the end the zero chunk, and the next answer follows it", name);
	close(fd);

	/* a stream behind a late answer waits for it, then goes live */
	fd = connect_port(port);
	send_all(fd, "GET /later HTTP/1.1\r\nHost: a\r\n\r\n"
	             "GET /stream/2 HTTP/1.1\r\nHost: a\r\n\r\n"
	             "GET /health HTTP/1.1\r\nHost: a\r\n\r\n");
	read_until(fd, got, sizeof got, 0, "\"ok\"");
	char *a = strstr(got, "later"), *b = strstr(got, "tick 0"), *c = strstr(got, "tick 1"),
	     *d = strstr(got, "0\r\n\r\nHTTP/1.1 200"), *e = strstr(got, "\"ok\"");
	ok(a && b && c && d && e && a < b && b < c && c < d && d < e,
	   "%s: pipelined answers around a stream leave in request order", name);
	close(fd);

	/* HTTP/1.0: close-delimited */
	fd = connect_port(port);
	send_all(fd, "GET /stream/2 HTTP/1.0\r\n\r\n");
	read_until(fd, got, sizeof got, 0, NULL);
	char *body = strstr(got, "\r\n\r\n");
	ok(strstr(got, "Connection: close\r\n") && !strstr(got, "Transfer-Encoding") && body &&
	   strcmp(body + 4, "tick 0\ntick 1\n") == 0,
	   "%s: HTTP/1.0 gets the stream close-delimited", name);
	close(fd);

	/* HEAD: the head only, and the connection goes on */
	fd = connect_port(port);
	send_all(fd, "HEAD /stream/2 HTTP/1.1\r\nHost: a\r\n\r\n"
	             "GET /health HTTP/1.1\r\nHost: a\r\n\r\n");
	read_until(fd, got, sizeof got, 0, "\"ok\"");
	ok(strstr(got, "Transfer-Encoding: chunked\r\n") && !strstr(got, "tick") &&
	   strstr(got, "chunked\r\n\r\nHTTP/1.1 200 OK"),
	   "%s: HEAD gets the head only, and the next request its answer", name);
	close(fd);

	/* a client that leaves a silent stream (FIN only): the handler learns it */
	int before = atomic_load(&gone_seen);
	fd = connect_port(port);
	send_all(fd, "GET /stream/0 HTTP/1.1\r\nHost: a\r\n\r\n");
	read_until(fd, got, sizeof got, 0, "\r\n\r\n");
	ok(strstr(got, "HTTP/1.1 200 OK") != NULL, "%s: a silent stream sends its head at once", name);
	shutdown(fd, SHUT_WR);
	for (int i = 0; i < 250 && atomic_load(&gone_seen) == before; i++)
		usleep(20000);
	is_int(atomic_load(&gone_seen) - before, 1, "%s: its handler sees the client gone after its EOF", name);
	close(fd);

	/* the same with a reset */
	before = atomic_load(&gone_seen);
	fd = connect_port(port);
	send_all(fd, "GET /stream/0 HTTP/1.1\r\nHost: a\r\n\r\n");
	read_until(fd, got, sizeof got, 0, "\r\n\r\n");
	struct linger lg = {1, 0};
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	close(fd);
	for (int i = 0; i < 250 && atomic_load(&gone_seen) == before; i++)
		usleep(20000);
	is_int(atomic_load(&gone_seen) - before, 1, "%s: ... and after a reset", name);

	/* a client that never reads a stream is dropped at the bound */
	before = atomic_load(&flood_dropped);
	fd = connect_port(port);
	send_all(fd, "GET /flood HTTP/1.1\r\nHost: a\r\n\r\n");
	for (int i = 0; i < 250 && atomic_load(&flood_dropped) == before; i++)
		usleep(20000);
	is_int(atomic_load(&flood_dropped) - before, 1,
	       "%s: a stream its client does not read is dropped, not buffered without end", name);
	close(fd);

	http_server_stop(srv);
	pthread_join(tid, NULL);
	http_server_free(srv);
	http_router_free(r);
}

int main(void)
{
	run(HTTP_IO_UV, "uv");
	run(HTTP_IO_URING, "uring");
	return tap_done();
}
