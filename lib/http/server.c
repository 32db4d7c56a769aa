/*
 * http/server.c -- the HTTP/1.1 server core: loops, connections, exchanges.
 *
 * Threads and listeners.  Each thread owns one libuv loop and one listening
 * socket bound with SO_REUSEPORT to the same address, so the kernel spreads
 * new connections over the threads and a connection lives on one loop for
 * its whole life: nothing on the request path is shared between threads
 * but the sharded metrics counters.  Thread 0 runs on the caller of
 * http_server_run and also owns the signal handles and the drain timer.
 *
 * A connection (struct conn) reads into a buffer taken from its thread's
 * pool only while it has something to hold: when every byte read has been
 * parsed and every request answered, the buffer goes back to the pool, so
 * an idle keep-alive connection costs its struct and its socket and nothing
 * more.  A pool block holds at least http_parse_buffer_size bytes, all the
 * parser may need to see before it decides on a head.  A request whose
 * body does not fit a pool block gets a buffer of its own (malloc) that is
 * freed when the connection is idle again.
 *
 * Parsing is a loop over what is buffered: heads through http_parse (which
 * is stateless: a partial head is simply parsed again when more arrives),
 * bodies through struct http_body, decoded in place.  Each complete request
 * becomes an exchange (struct xchg, from a per-thread freelist) that is
 * appended to the connection's FIFO and handed to the handler.
 *
 * Invariants that keep answers in order and memory safe:
 * - c->xhead..c->xtail are the exchanges whose answers are not written yet,
 *   in request order.  An answer for the FIFO's head is built straight into
 *   c->out, and so is every already-answered exchange behind it; an answer
 *   for any other exchange is built into that exchange's own buffer and
 *   waits its turn.  So c->out always holds answers in request order.
 * - c->pinned counts exchanges handed to the handler and not yet answered.
 *   Their requests point into c->rbuf, so the buffer is never moved,
 *   compacted or released while pinned > 0; a connection that runs out of
 *   buffer then simply stops reading until the answers come.
 * - A closed connection whose pinned is not 0 is a zombie: off the thread's
 *   list, socket gone, but its struct and buffer kept until the last answer
 *   arrives (and is dropped); only then is it recycled.  So a late answer
 *   never touches freed memory.
 * - Writes: all answers produced while servicing a connection (one read's
 *   worth of pipelined requests, or all the late answers of one loop
 *   iteration, gathered by a uv_check handle) go out with one uv_try_write;
 *   only what the socket does not take is queued with uv_write, from a
 *   second buffer (c->wout) that is not touched until that write completes.
 *   Reading stops while more than OUT_BACKLOG_MAX bytes wait to be written,
 *   and whether to read is decided after each write attempt, never before:
 *   a big batch the socket takes whole must not leave reading stopped.
 *
 * Socket I/O goes through the few io_* functions below (io_read on/off,
 * server_conn_flush, io_shutdown, io_close) and the protocol through the
 * conn_proto table, so a second protocol (HTTP/2) can slot in without
 * touching the exchange logic.  Each io_* calls the socket backend's table
 * (struct server_io, server_internal.h), one per backend, picked at listen
 * for every thread:
 *   - libuv streams (server_io_uv, here): epoll, a read and a write per
 *     request, written at once with uv_try_write; the thread runs
 *     uv_run(UV_RUN_DEFAULT).
 *   - io_uring (server_io_uring, server_uring.c; cfg.io, the default where
 *     the kernel allows it): the thread runs on lib/io/loop, waiting in its
 *     ring with libuv inside; one multishot receive per connection, one
 *     send per flush, and everything a loop turn prepared submitted with
 *     the wait -- a fraction of a system call per request.  Where the ring
 *     cannot be set up (io_uring refused, a kernel before 6.1), HTTP_IO_AUTO
 *     falls back to libuv streams at listen.
 * Both hand the core the same events through server_conn_read_done (bytes
 * appended to rbuf, end of stream), server_conn_write_done and
 * server_conn_on_close, so parsing, pinning and ordering are shared; the
 * check phase (server_thread_flush) is libuv's uv_check on one and the
 * loop's after-completions hook on the other.  Accepting stays on libuv's
 * listener for both (the accepted socket's uv_tcp_t owns the fd and closes
 * it), so --max-connections, the drain's listener_take_queue and
 * SO_REUSEPORT per thread are the same code.
 *
 * Timeouts are coarse: each connection keeps one deadline (header, body,
 * idle or linger) and a per-loop tick walks the open connections a few
 * times a second.  The same tick refreshes the cached Date line.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "http/handover.h"
#include "http/server.h"
#include "http/server_internal.h"
#include "base/invariant.h"
#include "base/json.h"
#include "base/log.h"
#include "obs/metrics.h"


static void on_idle(uv_idle_t *h);
static void on_check(uv_check_t *h);
static void conn_close(struct conn *c);
static void thread_maybe_finish(struct http_thread *t);
static void thread_drain(struct http_thread *t);
static void thread_force(struct http_thread *t);


/* ------------------------------------------------------------ config */

void http_server_config_init(struct http_server_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->host = "127.0.0.1";
	cfg->backlog = HTTP_SERVER_BACKLOG;
	cfg->limits = (struct http_limits)HTTP_LIMITS_DEFAULT;
	cfg->max_connections = HTTP_SERVER_MAX_CONNECTIONS;
	cfg->max_pipeline = HTTP_SERVER_MAX_PIPELINE;
	cfg->header_timeout_ms = HTTP_SERVER_HEADER_TIMEOUT_MS;
	cfg->body_timeout_ms = HTTP_SERVER_BODY_TIMEOUT_MS;
	cfg->idle_timeout_ms = HTTP_SERVER_IDLE_TIMEOUT_MS;
	cfg->drain_timeout_ms = HTTP_SERVER_DRAIN_TIMEOUT_MS;
	cfg->linger_ms = HTTP_SERVER_LINGER_MS;
	cfg->handle_signals = true;
	cfg->h2_max_streams = HTTP_SERVER_H2_MAX_STREAMS;
}

/* ------------------------------------------------------------ metrics */

void http_route_stats_init(struct http_route_stats *s, struct metrics *reg, const char *route)
{
	s->reg = reg;
	s->route = route;
	for (size_t i = 0; i < HTTP_STATUS_SLOTS; i++)
		atomic_init(&s->by_code[i], NULL);
}

void http_route_stats_count(struct http_route_stats *s, int status)
{
	if (!s || !s->reg)
		return;
	if (status < 0 || status >= HTTP_STATUS_SLOTS)
		status = 0;
	struct metrics_counter *m = atomic_load_explicit(&s->by_code[status], memory_order_acquire);
	if (!m) {
		/* First answer with this code on this route: register (under the
		 * registry's mutex; find-or-create, so racing threads agree). */
		char code[8];
		fmt_u64(code, (uint64_t)status);
		m = metrics_counter_register(s->reg, "http_requests_total",
		                             "HTTP requests answered, by route and status code.",
		                             METRICS_LABELS("route", s->route, "code", code));
		if (!m)
			return;
		atomic_store_explicit(&s->by_code[status], m, memory_order_release);
	}
	metrics_counter_inc(m);
}


static double metric_in_flight(void *arg)
{
	struct http_server *srv = arg;
	int64_t n = 0;
	for (unsigned i = 0; i < srv->nthreads; i++)
		n += atomic_load_explicit(&srv->threads[i]->in_flight, memory_order_relaxed);
	return (double)n;
}

static double metric_open(void *arg)
{
	struct http_server *srv = arg;
	return (double)atomic_load_explicit(&srv->nconn, memory_order_relaxed);
}

static void server_metrics_register(struct http_server *srv)
{
	struct metrics *reg = srv->cfg.metrics;
	http_route_stats_init(&srv->unmatched, reg, "unmatched");
	if (!reg)
		return;
	srv->m_accepted = metrics_counter_register(reg, "http_connections_total",
		"Connections accepted.", NULL);
	srv->m_rejected = metrics_counter_register(reg, "http_connections_rejected_total",
		"Connections closed at once because --max-connections were open.",
		METRICS_LABELS("reason", "limit"));
	metrics_gauge_fn_register(reg, "http_connections_open", "Connections open now.",
		NULL, metric_open, srv);
	metrics_gauge_fn_register(reg, "http_requests_in_flight",
		"Requests handed to a handler and not answered yet.", NULL, metric_in_flight, srv);
	srv->m_latency = metrics_histogram_register(reg, "http_request_duration_seconds",
		"Time from a complete request head to its answer.", NULL, NULL, 0);
	srv->m_h2_conns = metrics_counter_register(reg, "http2_connections_total",
		"Connections that turned HTTP/2 (h2c with prior knowledge).", NULL);
	srv->m_h2_streams = metrics_counter_register(reg, "http2_streams_total",
		"HTTP/2 requests handed on (one per stream).", NULL);
}

/* ------------------------------------------------------------ pools */





/* Give the read buffer back: to the pool, or to malloc when it was big. */

static struct conn *conn_get(struct http_thread *t)
{
	struct conn *c = t->free_conns;
	if (c) {
		t->free_conns = c->next;
	} else {
		c = calloc(1, sizeof *c);
		INVARIANT(c != NULL);
		buf_init(&c->out);
		buf_init(&c->wout);
	}
	struct buf out = c->out, wout = c->wout;
	memset(c, 0, sizeof *c);
	c->out = out;
	c->wout = wout;
	c->t = t;
	c->proto = &server_proto_h1;
	return c;
}

/* The struct goes back to the freelist: only once the socket is closed
 * and no handler holds one of its exchanges. */
static void conn_release(struct conn *c)
{
	struct http_thread *t = c->t;
	INVARIANT(c->handle_closed && c->pinned == 0 && !c->in_flush);
	while (c->xhead) {
		struct xchg *x = c->xhead;
		c->xhead = x->next;
		xchg_put(t, x);
	}
	c->xtail = NULL;
	if (c->body_x) {
		xchg_put(t, c->body_x);
		c->body_x = NULL;
	}
	server_conn_rbuf_release(c);
	if (c->out.cap > BUF_KEEP_MAX)
		server_buf_park(t, &c->out);
	buf_reset(&c->out);
	if (c->wout.cap > BUF_KEEP_MAX)
		server_buf_park(t, &c->wout);
	buf_reset(&c->wout);
	c->next = t->free_conns;
	t->free_conns = c;
}

void server_conn_maybe_release(struct conn *c)
{
	if (c->handle_closed && c->pinned == 0 && !c->in_flush && !c->in_process)
		conn_release(c);
}

/* ------------------------------------------------------------ socket I/O */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);
static void on_write(uv_write_t *req, int status);
static void on_shutdown(uv_shutdown_t *req, int status);

/* ---- the libuv streams backend: epoll, a read and a write per request */

static void st_read(struct conn *c, bool on)
{
	if (on == c->reading)
		return;
	if (on)
		uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
	else
		uv_read_stop((uv_stream_t *)&c->tcp);
	c->reading = on;
}

/* Write what is in c->out: at once if the socket takes it, else the rest
 * queued from c->wout. */
static int st_write_out(struct conn *c)
{
	uv_buf_t b = uv_buf_init(c->out.data, (unsigned)c->out.len);
	int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
	if (n == (int)c->out.len) {
		buf_reset(&c->out);
		return 0;
	}
	if (n < 0 && n != UV_EAGAIN)
		return n;
	size_t done = n > 0 ? (size_t)n : 0;
	struct buf tmp = c->wout;
	c->wout = c->out;
	c->out = tmp;
	buf_reset(&c->out);
	b = uv_buf_init(c->wout.data + done, (unsigned)(c->wout.len - done));
	int r = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write);
	if (r < 0)
		return r;
	c->writing = true;
	return 0;
}

static void st_shutdown(struct conn *c)
{
	if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) < 0)
		conn_close(c);
}

static void st_close(struct conn *c)
{
	uv_close((uv_handle_t *)&c->tcp, server_conn_on_close);
}

static void st_run(struct http_thread *t)
{
	uv_run(&t->loop, UV_RUN_DEFAULT);
}

const struct server_io server_io_uv = {
	.name = "uv",
	.run = st_run,
	.read = st_read,
	.write_out = st_write_out,
	.shutdown = st_shutdown,
	.close = st_close,
};

/* ---- the seam: the core calls the backend only through these */



/* Shut the write side (after the last answer was written). */
static void io_shutdown(struct conn *c)
{
	c->t->srv->io->shutdown(c);
}

/* Close the socket; server_conn_on_close follows (on io_uring, when
 * nothing of it is in the ring). */
static void io_close(struct conn *c)
{
	c->t->srv->io->close(c);
}

/* ------------------------------------------------------------ connections */


static void conn_close(struct conn *c)
{
	struct http_thread *t = c->t;
	if (c->closed)
		return;
	c->closed = true;
	c->reading = false;
	if (c->prev)
		c->prev->next = c->next;
	else
		t->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	/* Answered-but-unwritten exchanges go now; unanswered ones stay with
	 * their handlers (counted in pinned) and are dropped when answered. */
	struct xchg **pp = &c->xhead;
	while (*pp) {
		struct xchg *x = *pp;
		*pp = x->next;
		if (x->answered)
			xchg_put(t, x);
	}
	c->xhead = c->xtail = NULL;
	if (c->body_x) {
		xchg_put(t, c->body_x);
		c->body_x = NULL;
	}
	if (c->proto->closed)
		c->proto->closed(c);
	io_close(c);
}

void server_conn_close(struct conn *c)
{
	conn_close(c);
}

void server_conn_on_close(uv_handle_t *h)
{
	struct conn *c = container_of(h, struct conn, tcp);
	struct http_thread *t = c->t;
	atomic_fetch_sub_explicit(&t->srv->nconn, 1, memory_order_relaxed);
	c->handle_closed = true;
	server_conn_maybe_release(c);
	thread_maybe_finish(t);
}

static void on_reject_close(uv_handle_t *h)
{
	struct conn *c = container_of(h, struct conn, tcp);
	c->handle_closed = true;
	conn_release(c);
}

/* Queue c for writing at the end of this loop iteration (uv_check), so all
 * the answers one iteration produces for it leave in one write. */
void server_conn_schedule(struct conn *c)
{
	struct http_thread *t = c->t;
	if (c->in_flush || c->in_process)
		return;
	c->in_flush = true;
	c->flush_next = t->flush;
	t->flush = c;
	if (!t->idle_on) {
		/* an active idle handle keeps the loop from blocking in poll
		 * before the check handle has run */
		t->idle_on = true;
		uv_idle_start(&t->idle, on_idle);
	}
}

/* The check phase (libuv's, or the io_uring loop's after its completions):
 * service every connection scheduled, so what one loop turn produced for
 * each leaves in one write. */
void server_thread_flush(struct http_thread *t)
{
	const struct server_io *io = t->srv->io;
	struct conn *list = t->flush;
	t->flush = NULL;
	if (t->idle_on) {
		uv_idle_stop(&t->idle);
		t->idle_on = false;
	}
	while (list) {
		struct conn *c = list;
		list = c->flush_next;
		c->flush_next = NULL;
		c->in_flush = false;
		if (c->closed)
			server_conn_maybe_release(c);
		else if (!io->deliver || !io->deliver(c))
			c->proto->service(c);
	}
	if (io->flushed)
		io->flushed(t);
}

static void on_check(uv_check_t *h)
{
	server_thread_flush(container_of(h, struct http_thread, check));
}

/* Is there nothing left to do on c: no request partly read, no answer
 * pending or unwritten? */
static bool conn_quiet(const struct conn *c)
{
	return !c->body_x && c->rpos == c->rlen && c->pinned == 0 && !c->xhead &&
	       !c->writing && c->out.len == 0;
}

/* A restart's drain (--reuse-port), on a keep-alive connection with
 * nothing to do: a client's next request may be on its way as we close,
 * and would be lost, so wait for it and answer it with Connection: close.
 * Half the drain timeout at most: a client that keeps a pool uses some
 * connections rarely, and what stays idle that long is likely unused, so
 * closing it then races nothing. */
void server_conn_drain_idle(struct conn *c)
{
	const struct http_server_config *cfg = &c->t->srv->cfg;
	uint64_t wait = cfg->drain_timeout_ms / 2;
	if (wait > cfg->idle_timeout_ms)
		wait = cfg->idle_timeout_ms;
	if (c->dl_kind != DL_IDLE || c->deadline > uv_now(&c->t->loop) + wait)
		conn_set_deadline(c, DL_IDLE, wait);
}

/* After the last answer: close, or (after an error answer, or when the
 * client may still be sending) shut the write side and keep reading for a
 * while, so the answer is not lost to a reset. */
void server_conn_close_if_done(struct conn *c)
{
	if (c->closed || c->lingering)
		return;
	if (c->writing || c->out.len || c->xhead || c->pinned || c->body_x)
		return;
	if (c->t->draining && c->t->srv->cfg.reuse_port && !c->proto->drain && !c->stop_parse && !c->eof &&
	    c->rpos == c->rlen && c->nreq > 0) {
		/* the last answer, built before the drain, said keep-alive:
		 * closing now would race the client's next request */
		server_conn_drain_idle(c);
		return;
	}
	bool done = c->stop_parse || c->eof ||
	            (c->t->draining && !c->proto->drain && c->rpos == c->rlen && c->nreq > 0);
	/* (HTTP/2 decides for itself when a drain is done: its streams) */
	if (!done)
		return;
	if (c->eof) {
		conn_close(c);
		return;
	}
	c->lingering = true;
	c->stop_parse = true;
	server_conn_rbuf_release(c);
	conn_set_deadline(c, DL_LINGER, c->t->srv->cfg.linger_ms);
	io_shutdown(c);
	if (!c->closed)
		io_read(c, true);
}


static void on_write(uv_write_t *req, int status)
{
	server_conn_write_done(container_of(req, struct conn, wreq), status);
}

/* Keep b's allocation (bigger than BUF_KEEP_MAX) on the thread for the
 * next big answer, within BUF_PARK_N and BUF_PARK_BYTES; else free it.  b
 * is empty after. */
void server_buf_park(struct http_thread *t, struct buf *b)
{
	if (t->npark < BUF_PARK_N && b->cap <= BUF_PARK_BYTES - t->park_bytes) {
		buf_reset(b);
		t->park_bytes += b->cap;
		t->park[t->npark++] = *b;
		buf_init(b);
	} else {
		buf_free(b);
	}
}

/* out is about to need extra more bytes than it holds: take a parked
 * buffer that fits them (the last parked, the most likely in cache), its
 * own small allocation parked or freed in its place.  What out holds (the
 * answers before this one) moves over. */
void server_buf_unpark(struct http_thread *t, struct buf *out, size_t extra)
{
	size_t need = out->len + extra + 1;
	for (unsigned i = t->npark; i-- > 0;) {
		struct buf *p = &t->park[i];
		if (p->cap < need)
			continue;
		struct buf got = *p;
		t->park_bytes -= got.cap;
		*p = t->park[--t->npark];
		INVARIANT(got.len == 0);
		if (out->len)
			memcpy(got.data, out->data, out->len);
		got.len = out->len;
		got.data[got.len] = '\0';
		buf_free(out);
		*out = got;
		return;
	}
}

/* The write from c->wout is over (status < 0: failed). */
void server_conn_write_done(struct conn *c, int status)
{
	c->writing = false;
	buf_reset(&c->wout);
	if (c->wout.cap > BUF_KEEP_MAX)
		server_buf_park(c->t, &c->wout);
	if (c->closed)
		return;
	if (status < 0) {
		conn_close(c);
		return;
	}
	/* what piled up meanwhile, and reading again if the backlog stopped it */
	c->proto->service(c);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	struct conn *c = container_of(req, struct conn, sreq);
	if (!c->closed && status < 0)
		conn_close(c);
}


static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	struct conn *c = container_of(h, struct conn, tcp);
	if (!c->rbuf)
		server_conn_rbuf(c);
	*b = uv_buf_init(c->rbuf + c->rlen, (unsigned)(c->rcap - c->rlen));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	struct conn *c = container_of(s, struct conn, tcp);
	if (nread == 0)
		return;  /* EAGAIN */
	if (nread == UV_ENOBUFS) {
		/* the buffer is full: wait for answers to free it (h1_tidy) */
		io_read(c, false);
		return;
	}
	server_conn_read_done(c, nread);
}

/* nread bytes arrived at c->rbuf + c->rlen (discarded when lingering), or
 * the read ended: UV_EOF, or a negative error. */
void server_conn_read_done(struct conn *c, ssize_t nread)
{
	if (c->lingering) {
		/* discard; the client's EOF, the deadline or the byte bound ends it */
		if (nread < 0) {
			conn_close(c);
			return;
		}
		c->linger_bytes += (size_t)nread;
		c->rlen = c->rpos = 0;
		if (c->linger_bytes > HTTP_SERVER_LINGER_BYTES)
			conn_close(c);
		return;
	}
	if (nread < 0) {
		if (nread != UV_EOF) {
			conn_close(c);
			return;
		}
		/* The client has sent all it will.  Answer what is complete,
		 * drop a partial request, close after the last answer. */
		c->eof = true;
		if (c->h1_streams) {
			/* ... except under an open HTTP/1.1 stream: a client
			 * that stops sending while a stream runs (curl -N
			 * ended, a watcher gone) has left; its handler learns
			 * it from http_exchange_gone, and an endless stream
			 * (a watch) must not hold the connection forever */
			conn_close(c);
			return;
		}
		io_read(c, false);
		if (c->body_x) {
			xchg_put(c->t, c->body_x);
			c->body_x = NULL;
			c->rlen = c->rpos;
		}
		c->proto->service(c);
		if (!c->closed && c->rpos != c->rlen && c->pinned == 0 && !c->xhead) {
			/* a partial head that will never complete */
			c->rpos = c->rlen;
			server_conn_close_if_done(c);
		}
		return;
	}
	c->rlen += (size_t)nread;
	c->proto->service(c);
}

/* A socket just accepted: count it against --max-connections (closing it
 * at once when over), then start reading with the header deadline. */
static void conn_start(struct http_thread *t, struct conn *c)
{
	struct http_server *srv = t->srv;
	uint32_t n = atomic_fetch_add_explicit(&srv->nconn, 1, memory_order_relaxed);
	if (n >= srv->cfg.max_connections) {
		atomic_fetch_sub_explicit(&srv->nconn, 1, memory_order_relaxed);
		if (srv->m_rejected)
			metrics_counter_inc(srv->m_rejected);
		uv_close((uv_handle_t *)&c->tcp, on_reject_close);
		return;
	}
	if (srv->m_accepted)
		metrics_counter_inc(srv->m_accepted);
	uv_os_fd_t fd = -1;
	uv_fileno((uv_handle_t *)&c->tcp, &fd);
	c->fd = fd;
	/* TCP_NODELAY comes from the listener (Linux copies it to accepted
	 * sockets): one system call per connection less */
	c->next = t->conns;
	if (t->conns)
		t->conns->prev = c;
	t->conns = c;
	conn_set_deadline(c, DL_HEADER, srv->cfg.header_timeout_ms);
	io_read(c, true);
}

static void on_connection(uv_stream_t *server, int status)
{
	struct http_thread *t = container_of(server, struct http_thread, listener);
	if (status < 0) {
		log_warn("accept failed: %s", uv_strerror(status));
		return;
	}
	struct conn *c = conn_get(t);
	uv_tcp_init(&t->loop, &c->tcp);
	if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
		uv_close((uv_handle_t *)&c->tcp, on_reject_close);
		return;
	}
	conn_start(t, c);
}

/* Before a listener closes: take what waits in its accept queue, since
 * closing a SO_REUSEPORT listener resets the connections queued on it. */
static void listener_take_queue(struct http_thread *t)
{
	uv_os_fd_t lfd;
	if (uv_fileno((uv_handle_t *)&t->listener, &lfd) != 0)
		return;
	for (int i = 0; i < 65536; i++) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		struct conn *c = conn_get(t);
		uv_tcp_init(&t->loop, &c->tcp);
		if (uv_tcp_open(&c->tcp, fd) < 0) {
			close(fd);
			uv_close((uv_handle_t *)&c->tcp, on_reject_close);
			continue;
		}
		conn_start(t, c);
	}
}

struct buf *http_scratch(struct http_exchange *ex)
{
	buf_reset(&ex->thread->scratch);
	return &ex->thread->scratch;
}

bool http_exchange_gone(const struct http_exchange *ex)
{
	const struct xchg *x = container_of(ex, const struct xchg, pub);
	return x->c->closed || x->gone;
}

/* ------------------------------------------------------------ threads */

uv_loop_t *http_thread_loop(struct http_thread *t) { return &t->loop; }
unsigned http_thread_index(const struct http_thread *t) { return t->index; }
struct http_server *http_thread_server(struct http_thread *t) { return t->srv; }
void *http_thread_data(struct http_thread *t) { return t->data; }
void http_thread_set_data(struct http_thread *t, void *data) { t->data = data; }
bool http_thread_draining(const struct http_thread *t) { return t->draining; }

static void date_refresh(struct http_thread *t)
{
	time_t now = time(NULL);
	if (now == t->date_sec && t->date_len)
		return;
	struct tm tm;
	gmtime_r(&now, &tm);
	t->date_sec = now;
	t->date_len = strftime(t->date, sizeof t->date, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
	t->head_status = 0;
}

static void on_tick(uv_timer_t *h)
{
	struct http_thread *t = container_of(h, struct http_thread, tick);
	date_refresh(t);
	uint64_t now = uv_now(&t->loop);
	struct conn *next;
	for (struct conn *c = t->conns; c; c = next) {
		next = c->next;
		if (c->dl_kind != DL_NONE && now >= c->deadline) {
			uint8_t kind = c->dl_kind;
			c->dl_kind = DL_NONE;
			c->proto->timeout(c, kind);
		}
	}
}

static void on_idle(uv_idle_t *h)
{
	(void)h;  /* only keeps poll from blocking until on_check has run */
}

static void thread_send(struct http_server *srv, unsigned i, int cmd)
{
	struct http_thread *t = srv->threads[i];
	pthread_mutex_lock(&srv->lock);
	if (!t->wake_closed) {
		atomic_fetch_or(&t->cmd, cmd);
		uv_async_send(&t->wake);
	}
	pthread_mutex_unlock(&srv->lock);
}

/* Thread 0 ends last: when it has drained and every other thread is done. */
static void server_maybe_end(struct http_server *srv)
{
	struct http_thread *t0 = srv->threads[0];
	if (!t0->finished || atomic_load(&srv->done) + 1 < srv->nthreads || t0->wake_closed)
		return;
	pthread_mutex_lock(&srv->lock);
	t0->wake_closed = true;
	pthread_mutex_unlock(&srv->lock);
	uv_close((uv_handle_t *)&t0->wake, NULL);
	uv_close((uv_handle_t *)&srv->drain_timer, NULL);
	if (srv->signals_on) {
		uv_close((uv_handle_t *)&srv->sigterm, NULL);
		uv_close((uv_handle_t *)&srv->sigint, NULL);
	}
}

static void thread_maybe_finish(struct http_thread *t)
{
	struct http_server *srv = t->srv;
	if (!t->draining || t->finished || t->conns)
		return;
	t->finished = true;
	if (srv->cfg.thread_fini)
		srv->cfg.thread_fini(t, srv->cfg.thread_arg);
	/* the check handle closes now: release what still waits on it (only
	 * closed connections can, since none is open) */
	while (t->flush) {
		struct conn *c = t->flush;
		t->flush = c->flush_next;
		c->flush_next = NULL;
		c->in_flush = false;
		server_conn_maybe_release(c);
	}
	uv_close((uv_handle_t *)&t->tick, NULL);
	uv_close((uv_handle_t *)&t->check, NULL);
	uv_close((uv_handle_t *)&t->idle, NULL);
	if (srv->io->finished)
		srv->io->finished(t);   /* io_uring: or when its last completion is in */
	if (t->index == 0) {
		server_maybe_end(srv);
		return;
	}
	pthread_mutex_lock(&srv->lock);
	t->wake_closed = true;
	uv_close((uv_handle_t *)&t->wake, NULL);
	pthread_mutex_unlock(&srv->lock);
	atomic_fetch_add(&srv->done, 1);
	uv_async_send(&srv->threads[0]->wake);
}

static void thread_drain(struct http_thread *t)
{
	struct http_server *srv = t->srv;
	if (t->draining)
		return;
	if (t->listening) {
		listener_take_queue(t);
		t->listening = false;
		uv_close((uv_handle_t *)&t->listener, NULL);
	}
	t->draining = true;
	if (srv->io->draining)
		srv->io->draining(t);  /* a request received is served, not dropped */
	uint64_t now = uv_now(&t->loop);
	uint64_t grace = srv->cfg.header_timeout_ms < 1000 ? srv->cfg.header_timeout_ms : 1000;
	struct conn *next;
	for (struct conn *c = t->conns; c; c = next) {
		next = c->next;
		if (c->proto->drain && !c->lingering) {
			c->proto->drain(c);   /* HTTP/2: GOAWAY, then close when its streams are done */
			continue;
		}
		if (c->lingering || !conn_quiet(c))
			continue;  /* closes itself after its last answer */
		if (c->nreq == 0 && srv->cfg.reuse_port) {
			/* a restart: a client's pool opens connections before it
			 * needs them and may use this one first at any time, as
			 * with an idle keep-alive one; closing it after a short
			 * grace raced that request (dsys-bench, whose stack of
			 * ready connections leaves the bottom ones unused until a
			 * burst, lost requests so) */
			server_conn_drain_idle(c);
			continue;
		}
		if (c->nreq == 0) {
			/* accepted, nothing read yet: its request may be on the way */
			if (c->dl_kind != DL_HEADER || c->deadline > now + grace)
				conn_set_deadline(c, DL_HEADER, grace);
			continue;
		}
		char b;
		if (recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 1)
			continue;  /* a request is waiting: serve it, then close */
		if (srv->cfg.reuse_port) {
			server_conn_drain_idle(c);
			continue;
		}
		conn_close(c);
	}
	thread_maybe_finish(t);
}

static void thread_force(struct http_thread *t)
{
	thread_drain(t);
	t->forced = true;
	struct conn *next;
	for (struct conn *c = t->conns; c; c = next) {
		next = c->next;
		conn_close(c);
	}
	thread_maybe_finish(t);
}

static void on_drain_timer(uv_timer_t *h)
{
	struct http_server *srv = container_of(h, struct http_server, drain_timer);
	if (srv->threads[0]->forced) {
		/* a thread's backends never let go: stop waiting for it */
		log_warn("drain: threads still busy after the grace period; exiting");
		uv_stop(&srv->threads[0]->loop);
		if (srv->io->abort)
			srv->io->abort(srv->threads[0]);  /* io_uring's loop outlives uv_stop */
		return;
	}
	log_warn("drain timeout: closing the connections still open");
	for (unsigned i = 1; i < srv->nthreads; i++)
		thread_send(srv, i, CMD_FORCE);
	thread_force(srv->threads[0]);
	uv_timer_start(&srv->drain_timer, on_drain_timer, 1000, 0);
}

static void server_begin_drain(struct http_server *srv)
{
	if (srv->drain_started)
		return;
	srv->drain_started = true;
	http_handover_close(srv);   /* before any listener closes */
	log_info("draining: %u open connections", (unsigned)atomic_load(&srv->nconn));
	uv_timer_start(&srv->drain_timer, on_drain_timer, srv->cfg.drain_timeout_ms, 0);
	for (unsigned i = 1; i < srv->nthreads; i++)
		thread_send(srv, i, CMD_DRAIN);
	thread_drain(srv->threads[0]);
}

static void on_wake(uv_async_t *h)
{
	struct http_thread *t = container_of(h, struct http_thread, wake);
	struct http_server *srv = t->srv;
	int cmd = atomic_exchange(&t->cmd, 0);
	if (cmd & CMD_DRAIN)
		thread_drain(t);
	if (cmd & CMD_FORCE)
		thread_force(t);
	if (t->index == 0) {
		if (atomic_load(&srv->stopping))
			server_begin_drain(srv);
		server_maybe_end(srv);
	}
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct http_server *srv = h->data;
	if (srv->drain_started) {
		log_warn("%s again: closing every connection now", signum == SIGINT ? "SIGINT" : "SIGTERM");
		uv_timer_stop(&srv->drain_timer);
		on_drain_timer(&srv->drain_timer);
		return;
	}
	log_info("%s received", signum == SIGINT ? "SIGINT" : "SIGTERM");
	http_server_stop(srv);
}

void http_server_stop(struct http_server *srv)
{
	atomic_store(&srv->stopping, 1);
	uv_async_send(&srv->threads[0]->wake);
}

static void *thread_main(void *arg)
{
	struct http_thread *t = arg;
	struct http_server *srv = t->srv;
	if (srv->cfg.thread_init) {
		int r = srv->cfg.thread_init(t, srv->cfg.thread_arg);
		if (r < 0) {
			log_error("thread %u: start-up failed: %s", t->index, strerror(-r));
			srv->init_error = r;
			http_server_stop(srv);
		}
	}
	srv->io->run(t);
	/* the loop is done: what the thread kept for its spans goes now, or
	 * it would outlive the thread, reachable from nowhere */
	http_trace_thread_end();
	return NULL;
}

static unsigned tick_interval(const struct http_server_config *cfg)
{
	uint64_t m = cfg->header_timeout_ms;
	if (cfg->body_timeout_ms < m)
		m = cfg->body_timeout_ms;
	if (cfg->idle_timeout_ms < m)
		m = cfg->idle_timeout_ms;
	if (cfg->linger_ms < m)
		m = cfg->linger_ms;
	m /= 4;
	return m < 10 ? 10 : m > 500 ? 500 : (unsigned)m;
}

int http_server_run(struct http_server *srv)
{
	INVARIANT_MSG(srv->listened, "http_server_listen first");
	unsigned iv = tick_interval(&srv->cfg);
	for (unsigned i = 0; i < srv->nthreads; i++) {
		struct http_thread *t = srv->threads[i];
		uv_async_init(&t->loop, &t->wake, on_wake);
		uv_timer_init(&t->loop, &t->tick);
		uv_timer_start(&t->tick, on_tick, iv, iv);
		uv_check_init(&t->loop, &t->check);
		uv_check_start(&t->check, on_check);
		uv_idle_init(&t->loop, &t->idle);
		date_refresh(t);
	}
	struct http_thread *t0 = srv->threads[0];
	uv_timer_init(&t0->loop, &srv->drain_timer);
	if (srv->cfg.handle_signals) {
		uv_signal_init(&t0->loop, &srv->sigterm);
		uv_signal_init(&t0->loop, &srv->sigint);
		srv->sigterm.data = srv->sigint.data = srv;
		uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
		uv_signal_start(&srv->sigint, on_signal, SIGINT);
		srv->signals_on = true;
	}
	for (unsigned i = 1; i < srv->nthreads; i++) {
		struct http_thread *t = srv->threads[i];
		int r = pthread_create(&t->tid, NULL, thread_main, t);
		if (r != 0) {
			log_error("cannot start thread %u: %s", i, strerror(r));
			srv->init_error = -r;
			/* run it on no thread: it counts as done once drained */
			t->started = false;
			continue;
		}
		t->started = true;
	}
	for (unsigned i = 1; i < srv->nthreads; i++)
		if (!srv->threads[i]->started) {
			srv->threads[i]->draining = true;
			srv->threads[i]->finished = true;
			srv->threads[i]->wake_closed = true;
			atomic_fetch_add(&srv->done, 1);
		}
	if (srv->init_error)
		http_server_stop(srv);
	thread_main(t0);
	for (unsigned i = 1; i < srv->nthreads; i++) {
		struct http_thread *t = srv->threads[i];
		if (!t->started)
			continue;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 2;
		if (pthread_timedjoin_np(t->tid, NULL, &ts) == 0)
			t->started = false;
	}
	log_info("drained");
	return srv->init_error;
}

/* ------------------------------------------------------------ listening */

static void server_io_free(struct http_server *srv)
{
	if (srv->io->free)
		for (unsigned i = 0; i < srv->nthreads; i++)
			srv->io->free(srv->threads[i]);
	srv->io = &server_io_uv;
}

/* The socket backend (cfg.io), the same for every thread. */
static int server_io_init(struct http_server *srv)
{
	srv->io = &server_io_uv;
	if (srv->cfg.io == HTTP_IO_UV)
		return 0;
	int r = server_io_uring.init(srv);
	if (r < 0) {
		if (srv->cfg.io == HTTP_IO_URING)
			return r;
		log_info("io_uring unavailable (%s): using libuv streams", strerror(-r));
		return 0;
	}
	srv->io = &server_io_uring;
	return 0;
}

int server_resolve(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof *ss);
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	if (!host || !*host)
		host = "0.0.0.0";
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons(port);
		*len = sizeof *in4;
		return 0;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		*len = sizeof *in6;
		return 0;
	}
	struct addrinfo hints = {0}, *res = NULL;
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res)
		return -HTTP_SERVER_ENONAME;  /* not EADDRNOTAVAIL: no address at all */
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	if (ss->ss_family == AF_INET)
		in4->sin_port = htons(port);
	else
		in6->sin6_port = htons(port);
	return 0;
}

static int listen_socket(const struct sockaddr_storage *ss, socklen_t len, bool reuseport,
                         int backlog)
{
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
		goto fail;
	if (bind(fd, (const struct sockaddr *)ss, len) < 0)
		goto fail;
	if (backlog >= 0 && listen(fd, backlog) < 0)
		goto fail;
	return fd;
fail:;
	int e = errno;
	close(fd);
	return -e;
}

int http_server_listen(struct http_server *srv)
{
	INVARIANT(!srv->listened);
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	struct sockaddr_storage ss;
	socklen_t len;
	int r = server_resolve(srv->cfg.host, srv->cfg.port, &ss, &len);
	if (r < 0)
		return r;
	r = server_io_init(srv);
	if (r < 0)
		return r;
	INVARIANT(srv->cfg.nlisten_fds <= srv->nthreads);
	if (srv->cfg.port != 0 && !srv->cfg.reuse_port) {
		/* SO_REUSEPORT would let us share a port another server of ours
		 * holds; a plain bind first says whether the port is free. */
		int probe = listen_socket(&ss, len, false, -1);
		if (probe < 0)
			return probe;
		close(probe);
	}
	int fds[srv->nthreads];
	unsigned n = 0;
	for (; n < srv->nthreads; n++) {
		int fd = n < srv->cfg.nlisten_fds ? srv->cfg.listen_fds[n]
		                                  : listen_socket(&ss, len, true, srv->cfg.backlog);
		if (fd < 0) {
			r = fd;
			goto fail;
		}
		fds[n] = fd;
		if (n == 0) {
			struct sockaddr_storage bound;
			socklen_t bl = sizeof bound;
			if (getsockname(fd, (struct sockaddr *)&bound, &bl) < 0) {
				r = -errno;
				n++;
				goto fail;
			}
			uint16_t port = ntohs(bound.ss_family == AF_INET
			                      ? ((struct sockaddr_in *)&bound)->sin_port
			                      : ((struct sockaddr_in6 *)&bound)->sin6_port);
			srv->port = port;
			if (ss.ss_family == AF_INET)
				((struct sockaddr_in *)&ss)->sin_port = htons(port);
			else
				((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
		}
	}
	for (unsigned i = 0; i < srv->nthreads; i++) {
		struct http_thread *t = srv->threads[i];
		uv_tcp_init(&t->loop, &t->listener);
		uv_tcp_open(&t->listener, fds[i]);
		r = uv_listen((uv_stream_t *)&t->listener, srv->cfg.backlog, on_connection);
		INVARIANT(r == 0);
		t->listening = true;
	}
	char host[INET6_ADDRSTRLEN];
	if (ss.ss_family == AF_INET) {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof host);
		snprintf(srv->address, sizeof srv->address, "%s:%u", host, srv->port);
	} else {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof host);
		snprintf(srv->address, sizeof srv->address, "[%s]:%u", host, srv->port);
	}
	srv->listened = true;
	log_info("listening on %s with %u threads", srv->address, srv->nthreads);
	if (srv->cfg.reuse_port && (r = http_handover_open(srv)) < 0)
		log_warn("cannot offer the listeners of %s to a successor: %s", srv->address, strerror(-r));
	return 0;
fail:
	for (unsigned i = 0; i < n; i++)
		close(fds[i]);
	for (unsigned i = n; i < srv->cfg.nlisten_fds; i++)
		close(srv->cfg.listen_fds[i]);
	server_io_free(srv);
	return r;
}

uint16_t http_server_port(const struct http_server *srv) { return srv->port; }
const char *http_server_address(const struct http_server *srv) { return srv->address; }
unsigned http_server_threads(const struct http_server *srv) { return srv->nthreads; }
const char *http_server_io(const struct http_server *srv) { return srv->io->name; }
struct metrics *http_server_metrics(const struct http_server *srv) { return srv->cfg.metrics; }

/* ------------------------------------------------------------ life */

int http_server_new(const struct http_server_config *cfg, struct http_server **out)
{
	*out = NULL;
	if (!cfg->handler || cfg->limits.max_uri == 0 || cfg->limits.max_header_bytes == 0 ||
	    cfg->max_connections == 0 || cfg->max_pipeline == 0 || cfg->backlog <= 0)
		return -EINVAL;
	struct http_server *srv = calloc(1, sizeof *srv);
	INVARIANT(srv != NULL);
	srv->cfg = *cfg;
	if (cfg->h2_max_streams == 0) {
		/* a config not from http_server_config_init (older callers) */
		srv->cfg.h2_max_streams = HTTP_SERVER_H2_MAX_STREAMS;
	}
	srv->nthreads = cfg->threads ? cfg->threads : 1;
	if (!cfg->threads) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		cpu_set_t set;
		if (sched_getaffinity(0, sizeof set, &set) == 0)
			n = CPU_COUNT(&set);
		srv->nthreads = n > 0 ? (unsigned)n : 1;
	}
	pthread_mutex_init(&srv->lock, NULL);
	srv->io = &server_io_uv;   /* until listen picks one */
	/* a block holds all the parser may need before it decides
	 * (http_parse_buffer_size: a target counts against max_uri alone,
	 * which may exceed max_header_bytes); a smaller one fills up while
	 * the parser still asks for more, and a 414 or 431 becomes a 408 */
	size_t bs = cfg->limits.max_header_bytes + 1024;
	size_t need = http_parse_buffer_size(&cfg->limits);
	if (bs < need)
		bs = need;
	bs = (bs + 4095) & ~(size_t)4095;
	srv->block_size = bs < READ_BLOCK_MIN ? READ_BLOCK_MIN : bs;
	const char *name = cfg->server_name ? cfg->server_name : "dsys";
	if (*name)
		srv->server_line_len = (size_t)snprintf(srv->server_line, sizeof srv->server_line,
		                                        "Server: %.100s\r\n", name);
	srv->threads = calloc(srv->nthreads, sizeof *srv->threads);
	INVARIANT(srv->threads != NULL);
	for (unsigned i = 0; i < srv->nthreads; i++) {
		struct http_thread *t = aligned_alloc(64, (sizeof *t + 63) & ~(size_t)63);
		INVARIANT(t != NULL);
		memset(t, 0, sizeof *t);
		t->srv = srv;
		t->index = i;
		buf_init(&t->scratch);
		buf_init(&t->errbuf);
		t->io.ring.fd = -1;
		atomic_init(&t->in_flight, 0);
		atomic_init(&t->cmd, 0);
		int r = uv_loop_init(&t->loop);
		INVARIANT(r == 0);
		srv->threads[i] = t;
	}
	server_metrics_register(srv);
	*out = srv;
	return 0;
}

static void walk_close(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

void http_server_free(struct http_server *srv)
{
	if (!srv)
		return;
	http_handover_close(srv);
	for (unsigned i = 0; i < srv->nthreads; i++) {
		struct http_thread *t = srv->threads[i];
		if (t->started)
			continue;  /* never joined: leave its memory alone */
		uv_walk(&t->loop, walk_close, NULL);
		uv_run(&t->loop, UV_RUN_NOWAIT);
		uv_loop_close(&t->loop);
		while (t->free_conns) {
			struct conn *c = t->free_conns;
			t->free_conns = c->next;
			buf_free(&c->out);
			buf_free(&c->wout);
			free(c);
		}
		while (t->free_x) {
			struct xchg *x = t->free_x;
			t->free_x = x->next;
			buf_free(&x->resp);
			free(x);
		}
		while (t->free_blocks) {
			struct rblock *b = t->free_blocks;
			t->free_blocks = b->next;
			free(b);
		}
		buf_free(&t->scratch);
		buf_free(&t->errbuf);
		for (unsigned i = 0; i < t->npark; i++)
			buf_free(&t->park[i]);
		t->npark = 0;
		t->park_bytes = 0;
		if (srv->io->free)
			srv->io->free(t);
		free(t);
	}
	free(srv->threads);
	pthread_mutex_destroy(&srv->lock);
	free(srv);
}
