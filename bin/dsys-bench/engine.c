/*
 * engine.c -- one run of dsys-bench: threads, connections, pacing,
 * timeouts and the statistics they feed.
 *
 * Shape (wrk's, on libuv).  One libuv loop per thread; connections spread
 * evenly over the threads, the remainder to the first ones.  A connection
 * lives one readable path:
 *
 *   conn_connect -> conn_opened -> conn_fill (write) -> conn_on_data
 *   (parse, record, refill) -> ... -> conn_close -> conn_after_close ->
 *   conn_connect
 *
 * and everything a connection needs is allocated before the run starts:
 * its receive buffer, its ring of in-flight requests, its uv handles and
 * requests.  The request bytes are built once per target (and repeated
 * `pipeline` times, so a batch of k requests is one contiguous slice of
 * one buffer), so nothing is allocated or copied per request.
 *
 * System calls per request, the figure that decides how hard one core can
 * drive.  Two I/O paths share everything above the bytes:
 *   - io_uring (the default where the kernel allows it, 6.1 or later; see
 *     the io_uring section): the thread runs on lib/io/loop, the loop
 *     driver dsys-serve's io_uring backend also runs on, with hooks and
 *     completion callbacks of its own here.  Each connection keeps one
 *     multishot receive in the thread's ring, each burst of requests is
 *     one send entry, and the thread waits in the ring itself: one
 *     io_uring_enter(2) per turn both hands over what the last turn
 *     prepared and sleeps for the next batch of completions; libuv (the
 *     tick) runs inside that loop and watches no fd, so there is no epoll
 *     on this path.  At -t1 -c100
 *     against nginx: 0.065 system calls and 0.04 sleeps per request, one
 *     submission per request (its send), a poll registration per
 *     connection, not per response.  CPU per request, alternating with wrk
 *     in tests/bench/bench-20-dsys-bench.sh (3 rounds of 3 s on this
 *     project's shared 2-core VM, neighbours busy): 7.8-7.9 us where wrk
 *     spent 15.3-15.8 us (0.50x) at 1.6x its rate; 16 deep against
 *     dsys-serve 0.60 us vs 1.2 us (0.50x) at 1.36x.  The same run of the
 *     epoll-watched ring this replaced: 9.4-9.9 us (0.61x); a quieter hour,
 *     3 alternating runs: 7.0-7.5 us, wrk 13.8-14.7, the old ring 8.9-9.2.
 *     About 85% of what is left is the kernel's TCP work: the send alone,
 *     which on loopback also delivers the request into the server's socket
 *     and wakes the server, is 60% of the thread's time.  (Segments are
 *     already 2 per request, no pure ACKs; reno or cubic instead of the
 *     VM's bbr, or a fixed SO_RCVBUF, changed nothing measurable.)
 *   - libuv streams (DSYS_BENCH_IO=uv, or no io_uring): a burst leaves
 *     with one uv_try_write (one write(2)); reading stays on for the
 *     connection's whole life, so there is no epoll_ctl churn; each
 *     readable event is one read(2) (libuv reads again only when the
 *     buffer was filled): two system calls per request where wrk makes
 *     four (a write, a read, two epoll_ctl); about 0.75x wrk's CPU.
 * Either way every response found in the buffer is parsed in place by
 * lib/http/client, and the rest of the cost is the kernel's TCP work,
 * the same for any client.
 *
 * Time.  uv_now() has millisecond resolution: useless for latencies of a
 * few microseconds.  uv_hrtime() is clock_gettime(CLOCK_MONOTONIC) through
 * the vDSO (tens of ns, no system call, ns resolution).  On the libuv path
 * it is read once per read callback, so the answers that arrived in one
 * read share the instant we learnt of them (what a client observes), and
 * once per burst of requests, just before its write.  On the io_uring path
 * it is read per received completion, and once per submission for every
 * request in it (they leave in that io_uring_enter, not when queued); a
 * flat-out run with 32 or more requests in flight takes its answers in
 * batches, so an answer may be seen up to --batch-wait (50 us) after it arrived (see
 * "Batches" in the io_uring section), and that is in its latency, as it
 * would be in a busy client's.  Open-loop runs take every answer at once.
 * Latencies are recorded in microseconds into lib/base/hist (< 1% error).
 *
 * Open loop (--rate).  Each thread takes its share of one global schedule
 * (lib/io/pacer: slot n at start + n/rate, thread i taking n = i mod T), on a
 * timerfd for sub-millisecond pacing (on the io_uring path, the ring
 * wait's own ns timeout), and also takes due slots whenever a
 * response frees a connection.  A slot that is due while every connection
 * is busy waits; its latency counts from its scheduled instant, so a stall
 * of the server shows in the percentiles (coordinated omission corrected).
 * The uncorrected latency (from the actual send) and the send lag are kept
 * beside it.
 *
 * Accounting invariant: every request written ends exactly once, as a
 * response (requests), or as a read, write or timeout error (a connection
 * that fails with k requests in flight counts k), or, when SIGINT or
 * SIGTERM stops the run, as interrupted.  So with a healthy server
 * `requests` equals what the server answered.
 *
 * Statistics live apart from I/O: each thread counts into its own struct
 * bench_stats; the run merges them after the threads are joined.  With
 * --interval, a thread's callbacks hold its stats mutex (uncontended but for
 * the main thread's read once per interval), and a second histogram per
 * thread collects the interval's latencies.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include <netinet/tcp.h>
#include <sys/socket.h>

#include "bench.h"
#include "cli/cli.h"
#include "base/invariant.h"
#include "io/pacer.h"
#include "io/loop.h"
#include "http/client_h2.h"

/* ------------------------------------------------------------ stats */

int bench_stats_init(struct bench_stats *s)
{
	memset(s, 0, sizeof(*s));
	s->latency = hist_new(HIST_MAX_US_1H);
	s->latency_raw = hist_new(HIST_MAX_US_1H);
	s->send_lag = hist_new(HIST_MAX_US_1H);
	if (!s->latency || !s->latency_raw || !s->send_lag) {
		bench_stats_free(s);
		return -ENOMEM;
	}
	return 0;
}

void bench_stats_free(struct bench_stats *s)
{
	hist_free(s->latency);
	hist_free(s->latency_raw);
	hist_free(s->send_lag);
	s->latency = s->latency_raw = s->send_lag = NULL;
}

void bench_stats_reset(struct bench_stats *s)
{
	struct hist *a = s->latency, *b = s->latency_raw, *c = s->send_lag;
	memset(s, 0, sizeof(*s));
	s->latency = a;
	s->latency_raw = b;
	s->send_lag = c;
	hist_reset(a);
	hist_reset(b);
	hist_reset(c);
}

void bench_stats_merge(struct bench_stats *d, const struct bench_stats *s)
{
	d->requests += s->requests;
	d->sent += s->sent;
	d->bytes += s->bytes;
	d->connects += s->connects;
	d->err_connect += s->err_connect;
	d->err_read += s->err_read;
	d->err_write += s->err_write;
	d->err_timeout += s->err_timeout;
	d->err_interrupted += s->err_interrupted;
	d->err_stream += s->err_stream;
	d->goaways += s->goaways;
	for (int i = 0; i < BENCH_GRPC_CODES; i++)
		d->grpc[i] += s->grpc[i];
	d->grpc_other += s->grpc_other;
	d->grpc_missing += s->grpc_missing;
	for (int i = 0; i < BENCH_STATUS_MAX; i++)
		d->status[i] += s->status[i];
	hist_merge(d->latency, s->latency);
	hist_merge(d->latency_raw, s->latency_raw);
	hist_merge(d->send_lag, s->send_lag);
	if (s->start_ns && (!d->start_ns || s->start_ns < d->start_ns))
		d->start_ns = s->start_ns;
	if (s->end_ns > d->end_ns)
		d->end_ns = s->end_ns;
	if (s->connect_err && !d->connect_err)
		d->connect_err = s->connect_err;
}

uint64_t bench_stats_grpc_errors(const struct bench_stats *s)
{
	uint64_t n = s->grpc_other + s->grpc_missing;
	for (int i = 1; i < BENCH_GRPC_CODES; i++)
		n += s->grpc[i];
	return n;
}

uint64_t bench_stats_status_errors(const struct bench_stats *s)
{
	uint64_t n = 0;
	for (int i = 400; i < BENCH_STATUS_MAX; i++)
		n += s->status[i];
	return n + bench_stats_grpc_errors(s);
}

uint64_t bench_stats_errors(const struct bench_stats *s)
{
	return s->err_connect + s->err_read + s->err_write + s->err_timeout +
	       s->err_interrupted + s->err_stream + bench_stats_status_errors(s);
}

/* ------------------------------------------------------------ state */

struct slot {
	uint64_t sched_ns;   /* when it was due (closed loop: when it was sent) */
	uint64_t sent_ns;    /* when it was written */
	bool measured;       /* due inside the measured window (after warm-up) */
	bool busy;           /* HTTP/2: its stream is open (slots end in any order) */
};

enum conn_state { CONN_IDLE, CONN_CONNECTING, CONN_OPEN, CONN_CLOSING };

struct worker;

struct conn {
	uv_tcp_t tcp;
	uv_connect_t connect_req;
	uv_write_t write_req;
	struct worker *w;
	struct bench_target *t;
	enum conn_state state;
	bool writing;            /* the tail of a partial write is queued in libuv,
	                          * or (HTTP/2 on io_uring) c->out is being sent */
	bool in_ready;           /* on the worker's ready stack (open loop) */
	bool tried;              /* has made its first connection attempt's verdict */
	struct http_client_reader rd;
	char *rbuf;              /* cfg->recv_buf bytes, a slice of the worker's block */
	size_t rlen;             /* bytes in rbuf not yet consumed */
	struct slot *ring;       /* cfg->pipeline slots */
	unsigned head;           /* oldest in-flight request */
	unsigned inflight;
	uint64_t since_ns;       /* connecting since */
	uint64_t retry_ns;       /* idle: reconnect at or after this */
	uint64_t backoff_ns;     /* after a failed connect; 0 when the last one worked */
	/* the io_uring path (see "io_uring" below) */
	int fd;                  /* the socket, -1 when none */
	uint32_t gen;            /* bumped at every close: stale completions are ignored */
	unsigned pending;        /* receive, connect or HTTP/2 send operations in the ring */
	/* HTTP/2 (--h2, --grpc; see "HTTP/2" below) */
	struct http_h2_client *h2; /* the session, while open */
	struct buf out;          /* frames to send; the tail of a partial write */
	unsigned *free_slots;    /* slots not in flight (answers come in any order) */
	unsigned n_free;
	unsigned *stage;         /* the slots conn_push took, for conn_write */
	bool goaway_counted;
};

struct run;

struct worker {
	struct run *run;
	const struct bench_cfg *cfg;
	unsigned id;
	uv_loop_t loop;
	uv_thread_t thread;
	uv_timer_t tick;
	struct pacer_timer ptimer;
	bool paced;
	struct pacer pacer;
	struct conn *conns;
	unsigned n_conns;
	char *rblock;
	struct slot *slots;
	unsigned *h2idx;         /* --h2: every connection's free_slots and stage */
	struct conn **ready;
	unsigned n_ready;
	struct bench_stats st;
	struct hist *ihist;      /* --interval: this interval's latencies */
	uv_mutex_t lock;         /* guards st and ihist when --interval is on */
	bool locking;
	uint64_t quota;          /* closed loop: requests left to send; UINT64_MAX: unbounded */
	uint64_t measure_ns;     /* the measured window starts (after warm-up) */
	uint64_t deadline_ns;    /* no request is sent (or due) after this */
	uint64_t inflight;
	uint64_t tick_ms;
	uint64_t last_open_ns;   /* a connection of this thread was open then */
	bool measuring, stopping, finished;
	unsigned first_failures; /* connections whose first attempt failed */
	unsigned open_handles;
	_Atomic uint64_t pub_requests, pub_errors;
	int start_err;
	bool use_uring;          /* I/O through io_uring; else libuv streams */
	bool fixed_files;        /* sockets are registered: slot i is conns[i] */
	struct io_loop io;       /* the ring path's loop (lib/io/loop) */
	uint64_t now;            /* the ring path: the clock at the completion being taken */
	unsigned n_reaped;       /* ... and how many this turn took so far */
	uint64_t pace_ns;        /* ring path, open loop: pump at this instant; 0 none */
	unsigned ring_fds;       /* sockets open on the ring path */
	struct ur_stamp *stamps; /* requests queued since the last submission */
	unsigned n_stamps, stamps_cap;
	unsigned h2_sends;       /* HTTP/2 sends queued since the last wait (their completions) */
};

/* Requests in the ring not yet submitted: stamped when they really leave. */
struct ur_stamp {
	uint32_t conn, gen;
	uint16_t first, n;       /* slots first .. first+n-1 (mod pipeline) */
};

struct run {
	const struct bench_cfg *cfg;
	struct worker *workers;
	unsigned n_workers;
	uv_loop_t loop;          /* the main thread's: progress, intervals, signals */
	uv_async_t done_async;
	uv_timer_t progress_timer, interval_timer;
	uv_signal_t sigint, sigterm;
	atomic_uint n_done;
	atomic_int stop;         /* SIGINT/SIGTERM: finish now */
	atomic_uint_fast64_t connects;
	uint64_t start_ns;
	bench_interval_fn on_interval;
	void *ctx;
	struct bench_stats prev;  /* cumulative counters at the last interval */
	struct bench_stats ival;
	uint64_t last_interval_ns;
	bool interrupted;
	bool progress_shown;
};

static void conn_connect(struct conn *c, uint64_t now);
static void conn_close(struct conn *c);
static void ur_send(struct conn *c, size_t len, unsigned k);
static void ur_h2_send(struct conn *c);
static void ur_recv(struct conn *c);
static void ur_connect(struct conn *c, uint64_t now);
static void ur_close(struct conn *c);
static void handle_closed_cb(uv_handle_t *h);
static void connect_failed(struct conn *c, int err);
static void conn_after_close(struct conn *c);
static void conn_opened(struct conn *c);
static int h2_open(struct conn *c);
static void conn_fill(struct conn *c);
static void worker_pump(struct worker *w, uint64_t now);
static void worker_check_done(struct worker *w, uint64_t now);
static void h2_submit(struct conn *c, unsigned k);
static void h2_flush(struct conn *c);

static inline void stats_lock(struct worker *w)
{
	if (w->locking)
		uv_mutex_lock(&w->lock);
}

static inline void stats_unlock(struct worker *w)
{
	if (w->locking)
		uv_mutex_unlock(&w->lock);
}

/* Publish the counters the progress line reads (relaxed: a display). */
static inline void worker_publish(struct worker *w)
{
	atomic_store_explicit(&w->pub_requests, w->st.requests, memory_order_relaxed);
	atomic_store_explicit(&w->pub_errors, w->st.err_connect + w->st.err_read +
	                      w->st.err_write + w->st.err_timeout + w->st.err_stream,
	                      memory_order_relaxed);
}

/* ------------------------------------------------------------ requests */

/* Fail a connection: its k in-flight requests are k errors of that kind
 * (at least one, so a protocol error with nothing in flight is seen). */
enum err_kind { ERR_READ, ERR_WRITE, ERR_TIMEOUT };

static void conn_fail(struct conn *c, enum err_kind kind, bool at_least_one)
{
	struct worker *w = c->w;
	uint64_t n = c->inflight;
	if (n == 0 && at_least_one)
		n = 1;
	if (kind == ERR_READ)
		w->st.err_read += n;
	else if (kind == ERR_WRITE)
		w->st.err_write += n;
	else
		w->st.err_timeout += n;
	conn_close(c);
}

static void write_cb(uv_write_t *req, int status)
{
	struct conn *c = req->data;
	struct worker *w = c->w;
	stats_lock(w);
	c->writing = false;
	if (c->h2)
		buf_reset(&c->out);  /* all of it left (or the connection is gone) */
	if (c->state == CONN_OPEN) {
		if (status < 0) {
			conn_fail(c, ERR_WRITE, true);
		} else if (w->paced) {
			worker_pump(w, uv_hrtime());
		} else {
			conn_fill(c);
		}
		if (c->h2)
			h2_flush(c);
	}
	stats_unlock(w);
}

/* Write the k requests just put in the ring: one write(2) for the batch.
 * A partial write queues the tail (a slice of the same immutable batch
 * buffer) in libuv; the connection takes no more until it is gone. */
static void conn_write(struct conn *c, unsigned k)
{
	if (c->h2) {
		h2_submit(c, k);
		return;
	}
	size_t len = (size_t)k * c->t->req.len;
	INVARIANT(len <= c->t->batch.len);
	if (c->w->use_uring) {
		ur_send(c, len, k);
		return;
	}
	uv_buf_t b = uv_buf_init(c->t->batch.data, (unsigned)len);
	int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
	if (n == (int)len)
		return;
	if (n < 0 && n != UV_EAGAIN) {
		conn_fail(c, ERR_WRITE, true);
		return;
	}
	if (n < 0)
		n = 0;
	b = uv_buf_init(c->t->batch.data + n, (unsigned)(len - (size_t)n));
	c->write_req.data = c;
	int r = uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, write_cb);
	if (r < 0) {
		conn_fail(c, ERR_WRITE, true);
		return;
	}
	c->writing = true;
}

/* Put one request in the ring, due at sched_ns, leaving at now. */
static inline void conn_push(struct conn *c, unsigned i, uint64_t sched_ns, uint64_t now)
{
	const struct bench_cfg *cfg = c->w->cfg;
	struct slot *s;
	if (c->h2) {
		INVARIANT(c->n_free > 0);
		unsigned idx = c->free_slots[--c->n_free];
		c->stage[i] = idx;
		s = &c->ring[idx];
	} else {
		s = &c->ring[(c->head + c->inflight + i) % cfg->pipeline];
	}
	s->busy = true;
	s->sched_ns = sched_ns;
	s->sent_ns = now;
	s->measured = sched_ns >= c->w->measure_ns;
}

/* Closed loop: send the next burst of `pipeline` requests once the last
 * answer of the previous one is in (wrk's pipelining, and what keeps the
 * bursts whole: topping up as each answer arrives splits them into ever
 * smaller writes and reads on both sides). */
static void conn_fill(struct conn *c)
{
	struct worker *w = c->w;
	if (c->state != CONN_OPEN || c->writing || w->stopping)
		return;
	unsigned k = w->cfg->pipeline;
	if (c->h2) {
		/* HTTP/2: each stream is replaced as it ends, as h2load -m does;
		 * the answers of one read still leave as one write (h2_flush) */
		if (http_h2_client_goaway(c->h2) || c->inflight == k)
			return;
		k -= c->inflight;
	} else if (c->inflight > 0) {
		return;
	}
	if (w->quota != UINT64_MAX) {
		if (w->quota < k)
			k = (unsigned)w->quota;
		w->quota -= k;
		if (w->quota == 0)
			w->stopping = true;
		if (k == 0)
			return;
	}
	uint64_t now = uv_hrtime();
	for (unsigned i = 0; i < k; i++)
		conn_push(c, i, now, now);
	c->inflight += k;
	w->inflight += k;
	if (now >= w->measure_ns)
		w->st.sent += k;
	conn_write(c, k);
}

static void ready_push(struct worker *w, struct conn *c)
{
	if (c->in_ready)
		return;
	INVARIANT(w->n_ready < w->n_conns);
	c->in_ready = true;
	w->ready[w->n_ready++] = c;
}

/* Open loop: take every due slot while a connection has room, then arm
 * the timer for the next slot. */
static void worker_pump(struct worker *w, uint64_t now)
{
	/* slots due in [start, deadline): the deadline itself is outside */
	uint64_t until = now < w->deadline_ns ? now : w->deadline_ns - 1;
	while (w->n_ready > 0 && !w->stopping) {
		struct conn *c = w->ready[w->n_ready - 1];
		if (c->state != CONN_OPEN || c->writing || c->inflight == w->cfg->pipeline ||
		    (c->h2 && http_h2_client_goaway(c->h2))) {
			c->in_ready = false;
			w->n_ready--;
			continue;
		}
		unsigned k = 0;
		uint64_t due;
		while (c->inflight + k < w->cfg->pipeline && pacer_take(&w->pacer, until, &due)) {
			conn_push(c, k, due, now);
			if (due >= w->measure_ns)
				w->st.sent++;
			k++;
		}
		if (k == 0)
			break;
		c->inflight += k;
		w->inflight += k;
		conn_write(c, k);
	}
	uint64_t next = pacer_next_ns(&w->pacer);
	if (next >= w->deadline_ns) {
		w->stopping = true;   /* every slot of the run is taken */
		return;
	}
	if (next > now) {
		if (w->use_uring)
			w->pace_ns = next;  /* the ring's wait ends then (ur_prepare) */
		else
			pacer_timer_arm(&w->ptimer, next);
	}
	/* else: due, but no connection has room; a response will pump */
}

static void pace_cb(struct pacer_timer *t)
{
	struct worker *w = t->data;
	stats_lock(w);
	uint64_t now = uv_hrtime();
	worker_pump(w, now);
	worker_check_done(w, now);
	stats_unlock(w);
}

/* ------------------------------------------------------------ responses */

/* Latencies are in us; a response that beat the clock's read is 0. */
static inline uint64_t us_between(uint64_t from_ns, uint64_t to_ns)
{
	return to_ns > from_ns ? (to_ns - from_ns) / 1000 : 0;
}

/* A measured answer with this status, to the request of slot s. */
static void slot_record(struct worker *w, const struct slot *s, int status, uint64_t now)
{
	w->st.requests++;
	if (status >= 100 && status < BENCH_STATUS_MAX)
		w->st.status[status]++;
	uint64_t lat = us_between(s->sched_ns, now);
	hist_record(w->st.latency, lat);
	if (w->ihist)
		hist_record(w->ihist, lat);
	if (w->paced) {
		hist_record(w->st.latency_raw, us_between(s->sent_ns, now));
		hist_record(w->st.send_lag, us_between(s->sched_ns, s->sent_ns));
	}
}

static void conn_complete(struct conn *c, const struct http_client_response *res, uint64_t now)
{
	struct worker *w = c->w;
	INVARIANT(c->inflight > 0);
	struct slot *s = &c->ring[c->head];
	s->busy = false;
	c->head = (c->head + 1) % w->cfg->pipeline;
	c->inflight--;
	w->inflight--;
	if (s->measured && w->measuring)
		slot_record(w, s, res->status, now);
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct conn *c = h->data;
	b->base = c->rbuf + c->rlen;
	b->len = c->w->cfg->recv_buf - c->rlen;
}

/* The peer closed (nread == UV_EOF) or the connection broke. */
static void conn_eof(struct conn *c, ssize_t nread, uint64_t now)
{
	if (nread == UV_EOF && !c->h2) {
		struct http_client_response res;
		int r = http_client_reader_eof(&c->rd, c->rlen, &res);
		if (r == 1 && c->inflight > 0) {
			conn_complete(c, &res, now);
		}
	}
	/* whatever is still in flight was lost: a reset, or a close mid-response
	 * or before the answer */
	conn_fail(c, ERR_READ, false);
}

static void worker_begin_measuring(struct worker *w, uint64_t now);
static void h2_on_data(struct conn *c, const char *data, size_t nread, uint64_t now);

/* nread new bytes are at the end of c->rbuf: parse every response they
 * complete, record them, and send what the freed room allows. */
static void conn_on_data(struct conn *c, size_t nread, uint64_t now)
{
	struct worker *w = c->w;
	if (w->measuring)
		w->st.bytes += (uint64_t)nread;
	if (c->h2) {
		h2_on_data(c, c->rbuf + c->rlen, nread, now);
		return;
	}
	c->rlen += nread;
	size_t off = 0;
	while (off < c->rlen) {
		size_t used;
		struct http_client_response res;
		int r = http_client_reader_feed(&c->rd, c->rbuf + off, c->rlen - off, &used, &res);
		off += used;
		if (r == 0)
			break;
		if (r < 0 || c->inflight == 0) {
			/* a malformed response, or one nobody asked for */
			conn_fail(c, ERR_READ, true);
			return;
		}
		conn_complete(c, &res, now);
		if (!res.keep_alive) {
			/* Connection: close: requests pipelined behind it are lost */
			conn_fail(c, ERR_READ, false);
			return;
		}
	}
	if (off > 0 && off < c->rlen)
		memmove(c->rbuf, c->rbuf + off, c->rlen - off);
	c->rlen -= off;
	if (c->rlen == w->cfg->recv_buf) {
		/* a head that fills the whole buffer: the parser's limit is lower,
		 * so this is a bug guard, not a code path */
		conn_fail(c, ERR_READ, true);
		return;
	}
	if (!w->paced && now >= w->deadline_ns)
		w->stopping = true;   /* open loop: worker_pump decides */
	if (w->paced) {
		ready_push(w, c);
		worker_pump(w, now);
	} else {
		conn_fill(c);
	}
}

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *b)
{
	struct conn *c = stream->data;
	struct worker *w = c->w;
	if (nread == 0)
		return;
	stats_lock(w);
	uint64_t now = uv_hrtime();
	if (!w->measuring && now >= w->measure_ns)
		worker_begin_measuring(w, now);
	if (nread < 0)
		conn_eof(c, nread, now);
	else
		conn_on_data(c, (size_t)nread, now);
	worker_publish(w);
	worker_check_done(w, now);
	stats_unlock(w);
}

/* ------------------------------------------------------------ HTTP/2
 *
 * --h2 and --grpc: the same connections, slots and pacing, with a
 * lib/http/client_h2 session (libnghttp2's framing) between the slots and
 * the socket, on either I/O path.  On io_uring the frames leave from the
 * connection's own buffer (c->out), which must stay untouched until the
 * kernel took it: so an HTTP/2 send, unlike an HTTP/1.1 one, completes on
 * success too, and while it is in the ring (c->writing) the session keeps
 * what comes next, as it does while libuv holds the tail of a write.
 * Why io_uring matters here more than the system calls: with the server
 * the bottleneck (h2o, one thread, c10 m10), every time the generator
 * sleeps in epoll the server's write has to wake it (an interrupt between
 * the cores, paid in the server's own system call): on libuv streams
 * h2o woke dsys-bench 0.03-0.05 times per request, h2load only
 * 0.01-0.02 (it is busier: its reads until EAGAIN and epoll_ctl calls
 * keep it awake), and h2o spent more CPU per request for dsys-bench than
 * for h2load.  The ring's batched wait (see "Batches") is woken by its
 * own timer, not by the server.
 * Each slot is one stream; `pipeline` is the streams per connection
 * (--streams).  Answers end in any order, so the slots free come from a
 * stack, not a ring, and the stream carries its slot number as its tag.
 * Output is gathered, never written per frame: a read's answers, the
 * requests that replace them and the window updates leave in one write.
 * A stream reset by the server (RST_STREAM, or refused by a GOAWAY) is an
 * error of its own (errors.stream); a GOAWAY lets the streams below its
 * last id finish, then the connection is replaced (goaways counts them).
 */

static void h2_result(void *ctx, uint32_t tag, const struct http_h2_result *res)
{
	struct conn *c = ctx;
	struct worker *w = c->w;
	INVARIANT(tag < w->cfg->pipeline);
	struct slot *s = &c->ring[tag];
	if (!s->busy)
		return;  /* counted already (an interrupted run) */
	INVARIANT(c->inflight > 0 && c->n_free < w->cfg->pipeline);
	s->busy = false;
	c->free_slots[c->n_free++] = tag;
	c->inflight--;
	w->inflight--;
	if (!s->measured || !w->measuring)
		return;
	if (res->reset) {
		w->st.err_stream++;
		return;
	}
	slot_record(w, s, res->status, w->now);
	if (w->cfg->grpc) {
		if (res->grpc_status < 0)
			w->st.grpc_missing++;
		else if (res->grpc_status < BENCH_GRPC_CODES)
			w->st.grpc[res->grpc_status]++;
		else
			w->st.grpc_other++;
	}
}

/* The connection is up: a session, every slot free, the preface out. */
static int h2_open(struct conn *c)
{
	unsigned p = c->w->cfg->pipeline;
	INVARIANT(c->h2 == NULL && c->inflight == 0);
	c->h2 = http_h2_client_new(p, h2_result, c);
	if (!c->h2) {
		conn_fail(c, ERR_WRITE, true);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < p; i++)
		c->free_slots[i] = p - 1 - i;
	c->n_free = p;
	c->goaway_counted = false;
	buf_reset(&c->out);
	return 0;
}

/* After a GOAWAY, once its last streams have ended (or the session has
 * nothing more to do): replace the connection. */
static void h2_check_end(struct conn *c)
{
	struct worker *w = c->w;
	bool goaway = http_h2_client_goaway(c->h2);
	if (goaway && !c->goaway_counted) {
		c->goaway_counted = true;
		if (w->measuring)
			w->st.goaways++;
	}
	if ((goaway && c->inflight == 0) || http_h2_client_done(c->h2))
		conn_fail(c, ERR_READ, false);
}

/* Send what the session has to say: one write, its tail queued in libuv
 * (while it is, the session keeps what comes next); on io_uring one send
 * entry (ur_h2_send). */
static void h2_flush(struct conn *c)
{
	if (c->state != CONN_OPEN || c->writing)
		return;
	if (c->w->use_uring) {
		ur_h2_send(c);
		return;
	}
	if (http_h2_client_output(c->h2, &c->out) < 0) {
		conn_fail(c, ERR_WRITE, true);
		return;
	}
	if (c->out.len > 0) {
		uv_buf_t b = uv_buf_init(c->out.data, (unsigned)c->out.len);
		int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
		if (n < 0 && n != UV_EAGAIN) {
			conn_fail(c, ERR_WRITE, true);
			return;
		}
		if (n == (int)c->out.len) {
			buf_reset(&c->out);
		} else {
			buf_consume(&c->out, n < 0 ? 0 : (size_t)n);
			b = uv_buf_init(c->out.data, (unsigned)c->out.len);
			c->write_req.data = c;
			if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, write_cb) < 0) {
				conn_fail(c, ERR_WRITE, true);
				return;
			}
			c->writing = true;
		}
	}
	h2_check_end(c);
}

/* The k requests conn_push just put in slots c->stage[0..k): a stream
 * each.  The session refuses only when a GOAWAY came first (conn_fill and
 * worker_pump check) or when it is broken: those requests fail here. */
static void h2_submit(struct conn *c, unsigned k)
{
	struct worker *w = c->w;
	for (unsigned i = 0; i < k; i++) {
		if (http_h2_client_submit(c->h2, &c->t->h2req, c->stage[i]) == 0)
			continue;
		struct slot *s = &c->ring[c->stage[i]];
		s->busy = false;
		c->free_slots[c->n_free++] = c->stage[i];
		c->inflight--;
		w->inflight--;
		if (s->measured && w->measuring)
			w->st.err_write++;
	}
	h2_flush(c);
}

static void h2_on_data(struct conn *c, const char *data, size_t nread, uint64_t now)
{
	struct worker *w = c->w;
	w->now = now;
	/* the bytes are framed by the session as they come: nothing is kept */
	if (http_h2_client_feed(c->h2, (const uint8_t *)data, nread) < 0) {
		h2_flush(c);  /* the session's GOAWAY, when it can leave */
		conn_fail(c, ERR_READ, true);
		return;
	}
	if (!w->paced && now >= w->deadline_ns)
		w->stopping = true;
	if (w->paced) {
		ready_push(w, c);
		worker_pump(w, now);
	} else {
		conn_fill(c);
	}
	h2_flush(c);
}

/* ------------------------------------------------------------ connections */

/* The connection is closed for good: reconnect at once, or after the
 * back-off of a failed attempt (the tick does it), or not at all when the
 * run is ending. */
static void conn_after_close(struct conn *c)
{
	struct worker *w = c->w;
	c->state = CONN_IDLE;
	if (!w->finished) {
		uint64_t now = uv_hrtime();
		c->retry_ns = now + c->backoff_ns;
		if (c->backoff_ns == 0 && !w->stopping)
			conn_connect(c, now);
		worker_check_done(w, now);
	}
}

static void close_cb(uv_handle_t *h)
{
	struct conn *c = h->data;
	struct worker *w = c->w;
	stats_lock(w);
	w->open_handles--;
	conn_after_close(c);
	stats_unlock(w);
}

/* Hand the socket back on whichever I/O path the worker runs; the path's
 * close completion (close_cb, ur_closed) ends it in conn_after_close. */
static void conn_release(struct conn *c)
{
	c->state = CONN_CLOSING;
	if (c->w->use_uring)
		ur_close(c);
	else
		uv_close((uv_handle_t *)&c->tcp, close_cb);
}

/* Close a connection; its close_cb reconnects it (after a back-off when
 * connecting failed).  What was in flight must have been counted. */
static void conn_close(struct conn *c)
{
	struct worker *w = c->w;
	if (c->state == CONN_IDLE || c->state == CONN_CLOSING)
		return;
	w->inflight -= c->inflight;
	c->inflight = 0;
	c->head = 0;
	c->rlen = 0;
	c->writing = false;
	http_client_reader_reset(&c->rd);
	for (unsigned j = 0; j < w->cfg->pipeline; j++)
		c->ring[j].busy = false;
	if (c->h2) {
		/* the session's streams were counted by the caller */
		http_h2_client_free(c->h2);
		c->h2 = NULL;
		buf_reset(&c->out);
	}
	conn_release(c);
}

static void connect_failed(struct conn *c, int err)
{
	struct worker *w = c->w;
	w->st.err_connect++;
	w->st.connect_err = err;
	if (!c->tried) {
		c->tried = true;
		w->first_failures++;
	}
	c->backoff_ns = c->backoff_ns ? c->backoff_ns * 2 : 10000000ULL;  /* 10 ms, doubling */
	if (c->backoff_ns > 1000000000ULL)
		c->backoff_ns = 1000000000ULL;
	/* nobody anywhere has connected, and every connection here has tried:
	 * the target is unreachable, stop now rather than retry for the run */
	if (w->first_failures == w->n_conns && atomic_load(&w->run->connects) == 0)
		w->stopping = true;
}

/* Connected, reading: the first requests go out. */
static void conn_opened(struct conn *c)
{
	struct worker *w = c->w;
	c->state = CONN_OPEN;
	c->tried = true;
	c->backoff_ns = 0;
	if (w->cfg->h2 && h2_open(c) < 0)
		return;
	w->st.connects++;
	atomic_fetch_add(&w->run->connects, 1);
	if (w->paced) {
		ready_push(w, c);
		worker_pump(w, uv_hrtime());
	} else {
		conn_fill(c);
	}
}

static void connect_cb(uv_connect_t *req, int status)
{
	struct conn *c = req->data;
	struct worker *w = c->w;
	if (status == UV_ECANCELED || c->state != CONN_CONNECTING)
		return;
	stats_lock(w);
	if (status < 0) {
		connect_failed(c, status);
		c->state = CONN_OPEN;  /* so conn_close closes it */
		conn_close(c);
		goto out;
	}
	int r = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
	if (r < 0) {
		c->state = CONN_OPEN;
		conn_fail(c, ERR_READ, true);
		goto out;
	}
	conn_opened(c);
out:
	stats_unlock(w);
}

static void conn_connect(struct conn *c, uint64_t now)
{
	struct worker *w = c->w;
	INVARIANT(c->state == CONN_IDLE);
	if (w->use_uring) {
		ur_connect(c, now);
		return;
	}
	int r = uv_tcp_init(&w->loop, &c->tcp);
	if (r < 0) {
		connect_failed(c, r);
		c->retry_ns = now + c->backoff_ns;
		return;
	}
	w->open_handles++;
	c->tcp.data = c;
	c->connect_req.data = c;
	c->state = CONN_CONNECTING;
	c->since_ns = now;
	uv_tcp_nodelay(&c->tcp, 1);
	r = uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&c->t->addr, connect_cb);
	if (r < 0) {
		connect_failed(c, r);
		c->state = CONN_OPEN;
		conn_close(c);
	}
}

/* ------------------------------------------------------------ the thread */

static void worker_begin_measuring(struct worker *w, uint64_t now)
{
	uint64_t connects = w->st.connects;
	int connect_err = w->st.connect_err;
	bench_stats_reset(&w->st);
	w->st.connects = connects;
	w->st.connect_err = connect_err;
	if (w->ihist)
		hist_reset(w->ihist);
	w->st.start_ns = w->measure_ns;
	w->measuring = true;
}

static void handle_closed_cb(uv_handle_t *h)
{
	struct worker *w = h->data;
	w->open_handles--;
}

/* pacer_timer_close's close_cb gets the poll handle, whose data is the
 * pacer_timer, whose data is the worker. */
static void ptimer_closed_cb(uv_handle_t *h)
{
	struct pacer_timer *t = h->data;
	struct worker *w = t->data;
	w->open_handles--;
}

/* ------------------------------------------------------------ io_uring
 *
 * The same connection life cycle with the I/O through the thread's
 * lib/io/loop (one io_uring per thread, libuv inside it) instead of libuv
 * streams: a send is a submission entry (no completion unless it fails:
 * IOSQE_CQE_SKIP_SUCCESS, with MSG_WAITALL so a short send is a failure),
 * and each connection has one multishot receive for its whole life: the
 * kernel picks a block from the loop's provided buffers when data arrives,
 * the bytes are copied to the connection's own buffer and parsed there,
 * and the block goes straight back; nothing is re-armed per response (the
 * single-shot receive cost a submission and a poll registration on the
 * socket per response).
 *
 * The thread waits in the ring, not in epoll (io_loop_run): one
 * io_uring_enter(2) per turn hands the kernel everything the last turn
 * prepared and sleeps until a completion is in, or until the next timer
 * is due -- libuv's (the tick, run with uv_run(UV_RUN_NOWAIT), which makes
 * no system call when libuv watches no fd) or the pacer's next slot (the
 * loop's wake_ns, in ns: no timerfd on this path).  The ring is set up
 * in the thread with SINGLE_ISSUER | DEFER_TASKRUN: the kernel's work for
 * a completion (the receive itself, after the socket's wake-up) waits
 * until the thread asks for completions, then runs in one batch, and never
 * interrupts the thread.  The sockets sit in the ring's table of
 * registered files and the loop registers the ring's fd, so no operation
 * looks up or counts a file reference.
 *
 * Completions come to one callback per operation (the loop's tags
 * UR_RECV, UR_SEND, UR_CONNECT), with the connection's index and
 * generation as the value.  A connection with a receive or connect in the
 * ring (c->pending) is not closed until that operation has completed
 * (cancelled at close), since the kernel may still write into its buffer;
 * sends carry the connection's generation, so a late failure of one is
 * ignored after the connection was replaced.
 */
enum { UR_RECV = 1, UR_SEND, UR_CONNECT, UR_H2SEND };

/* Batches (closed loop only).  Each time the thread sleeps it is woken by
 * the kernel (an interrupt between the cores, a context switch): about a
 * tenth of a wake-up per request when it wakes for every answer.  With
 * UR_BATCH_MIN_INFLIGHT or more requests in flight, the wait asks for a
 * quarter of them (at most UR_BATCH_MAX) and accepts fewer, but at least
 * one, once --batch-wait (default 50 us) has passed (IORING_FEAT_MIN_TIMEOUT, 6.12;
 * on older kernels lib/io/uring waits for one).  The server meanwhile works
 * through the other requests in flight, so the rate does not drop; an
 * answer may wait up to --batch-wait to be seen, and its latency
 * includes that.  Runs with fewer in flight, where each answer's latency
 * is what matters and the generator has time to spare, and runs with
 * --batch-wait 0, take every answer at once.  With HTTP/2 (or pipelining)
 * a connection's answers come as one receive, so at c10 m10 the quarter
 * (25) is more than ten connections give and each wait lasts --batch-wait
 * after its first answer; the server still has the other connections'
 * streams to work on, and its answers no longer wake the generator: h2o
 * woke dsys-bench 0.001-0.005 times per request so (h2load 0.009-0.022),
 * where a batch of half the connections made it 0.004-0.013 (and dsys-
 * serve, 0.0008-0.006 against 0.009-0.011). */
enum { UR_BATCH_MIN_INFLIGHT = 32, UR_BATCH_MAX = 32 };

/* Provided buffers for multishot receives: at most UR_BUFS_MAX of
 * UR_BUF_SIZE bytes per thread (16 MiB). */
enum { UR_BUFS_MAX = 4096, UR_BUF_SIZE = 4096 };

static inline uint64_t ur_data(const struct conn *c, unsigned op)
{
	return io_loop_data(op, ((uint64_t)(c - c->w->conns) << 32) |
	                        ((uint64_t)(c->gen & 0xffffff) << 8));
}

/* The connection and generation a completion's value names. */
static inline struct conn *ur_conn(struct worker *w, uint64_t value, uint32_t *gen)
{
	*gen = (uint32_t)(value >> 8) & 0xffffff;
	return &w->conns[value >> 32];
}

/* The socket of c in an entry: its registered slot, or its fd. */
static inline int ur_fd(const struct conn *c)
{
	return c->w->fixed_files ? (int)(c - c->w->conns) : c->fd;
}

/* The requests queued since the last submission get their send instant
 * now, just before they leave, not when they were queued (a turn may have
 * parsed many answers in between): the loop's submitting hook. */
static void ur_stamp(struct io_loop *l)
{
	struct worker *w = l->owner;
	if (w->n_stamps == 0)
		return;
	uint64_t now = uv_hrtime();
	for (unsigned i = 0; i < w->n_stamps; i++) {
		struct ur_stamp *st = &w->stamps[i];
		struct conn *c = &w->conns[st->conn];
		if (c->gen != st->gen || c->state != CONN_OPEN)
			continue;
		for (unsigned j = 0; j < st->n; j++) {
			struct slot *sl = &c->ring[(st->first + j) % w->cfg->pipeline];
			if (!w->paced)
				sl->sched_ns = now;  /* closed loop: due when sent */
			sl->sent_ns = now;
		}
	}
	w->n_stamps = 0;
}

/* The k requests just put in c's ring of slots, as one send. */
static void ur_send(struct conn *c, size_t len, unsigned k)
{
	struct worker *w = c->w;
	if (w->n_stamps == w->stamps_cap)
		io_loop_submit(&w->io);   /* stamps them */
	unsigned p = w->cfg->pipeline;
	w->stamps[w->n_stamps++] = (struct ur_stamp){
		(uint32_t)(c - w->conns), c->gen, (uint16_t)((c->head + c->inflight - k) % p), (uint16_t)k,
	};
	io_loop_send(&w->io, ur_fd(c), w->fixed_files, c->t->batch.data, len,
	             MSG_WAITALL | MSG_NOSIGNAL, IOSQE_CQE_SKIP_SUCCESS, ur_data(c, UR_SEND));
}

/* HTTP/2: what the session has to say, from c->out, as one send entry that
 * completes (ur_on_h2_send) even on success, so c->out is not touched
 * before the kernel has taken all of it.  Its completion is counted apart
 * (h2_sends): it says nothing of the answers a batched wait is for. */
static void ur_h2_send(struct conn *c)
{
	struct worker *w = c->w;
	INVARIANT(c->state == CONN_OPEN && !c->writing);
	if (http_h2_client_output(c->h2, &c->out) < 0) {
		conn_fail(c, ERR_WRITE, true);
		return;
	}
	if (c->out.len > 0) {
		io_loop_send(&w->io, ur_fd(c), w->fixed_files, c->out.data, c->out.len,
		             MSG_WAITALL | MSG_NOSIGNAL, 0, ur_data(c, UR_H2SEND));
		c->pending++;
		c->writing = true;
		w->h2_sends++;
	}
	h2_check_end(c);
}

/* Arm the connection's receive: one multishot receive, which lasts until
 * the connection ends (or the buffers run out: then it is re-armed). */
static void ur_recv(struct conn *c)
{
	io_loop_recv_multishot(&c->w->io, ur_fd(c), c->w->fixed_files, ur_data(c, UR_RECV));
	c->pending++;
}

/* n bytes a multishot receive put in a provided buffer: through the
 * connection's own buffer, where responses are parsed as on every path
 * (a copy of a few hundred bytes; a response split over receives needs
 * its bytes in one place anyway). */
static void ur_take(struct conn *c, const char *data, size_t n, uint64_t now)
{
	if (c->h2) {
		/* the session frames the bytes where they are: no copy */
		if (c->w->measuring)
			c->w->st.bytes += (uint64_t)n;
		h2_on_data(c, data, n, now);
		return;
	}
	while (n > 0 && c->state == CONN_OPEN) {
		size_t room = c->w->cfg->recv_buf - c->rlen;
		size_t k = n < room ? n : room;
		INVARIANT(k > 0);
		memcpy(c->rbuf + c->rlen, data, k);
		conn_on_data(c, k, now);
		data += k;
		n -= k;
	}
}

static void ur_connect(struct conn *c, uint64_t now)
{
	struct worker *w = c->w;
	int fd = socket(c->t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		connect_failed(c, -errno);
		c->retry_ns = now + c->backoff_ns;
		return;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (w->fixed_files) {
		int r = uring_file_set(&w->io.ring, (unsigned)(c - w->conns), fd);
		if (r < 0) {
			close(fd);
			connect_failed(c, r);
			c->retry_ns = now + c->backoff_ns;
			return;
		}
	}
	c->fd = fd;
	w->ring_fds++;
	c->state = CONN_CONNECTING;
	c->since_ns = now;
	io_loop_connect(&w->io, ur_fd(c), w->fixed_files, (const struct sockaddr *)&c->t->addr,
	                c->t->addr_len, ur_data(c, UR_CONNECT));
	c->pending++;
}

/* Nothing of the connection is left in the ring: close the socket. */
static void ur_closed(struct conn *c)
{
	struct worker *w = c->w;
	INVARIANT(c->pending == 0 && c->fd >= 0);
	if (w->fixed_files)
		uring_file_set(&w->io.ring, (unsigned)(c - w->conns), -1);
	close(c->fd);
	c->fd = -1;
	c->gen++;
	w->ring_fds--;
	conn_after_close(c);
}

/* Cancel what the connection has in the ring; the last completion closes. */
static void ur_close(struct conn *c)
{
	if (c->pending == 0) {
		ur_closed(c);
		return;
	}
	shutdown(c->fd, SHUT_RDWR);
	io_loop_cancel_fd(&c->w->io, ur_fd(c), c->w->fixed_files);
}

/* A receive's or a connect's completion: one fewer in the ring when the
 * operation ended.  A closing connection does nothing more with it, and
 * its last one closes the socket (true). */
static bool ur_settle(struct conn *c, uint32_t gen, bool ended)
{
	INVARIANT(c->pending > 0 && gen == (c->gen & 0xffffff));
	if (ended)
		c->pending--;
	if (c->state != CONN_CLOSING)
		return false;
	if (c->pending == 0)
		ur_closed(c);
	return true;
}

static void ur_on_recv(void *arg, uint64_t value, int res, uint32_t flags)
{
	struct worker *w = arg;
	uint32_t gen;
	struct conn *c = ur_conn(w, value, &gen);
	/* each answer is stamped as it is seen, not once per batch */
	if (w->n_reaped++ > 0)
		w->now = uv_hrtime();
	/* the data, in a provided buffer (taken back below) */
	unsigned bid = 0;
	const char *data = io_loop_cqe_buf(&w->io, flags, &bid);
	/* a multishot receive stays in the ring while F_MORE is set */
	if (ur_settle(c, gen, !(flags & IORING_CQE_F_MORE))) {
		if (data)
			io_loop_buf_put(&w->io, bid);
		return;
	}
	if (res > 0) {
		INVARIANT(data != NULL);
		ur_take(c, data, (size_t)res, w->now);
		io_loop_buf_put(&w->io, bid);
		if (c->state == CONN_OPEN && !(flags & IORING_CQE_F_MORE))
			ur_recv(c);
	} else if (res == -ENOBUFS) {
		/* every buffer was in use: taken back by now, so re-arm */
		ur_recv(c);
	} else {
		INVARIANT(!data);
		conn_eof(c, res == 0 ? UV_EOF : res, w->now);
	}
}

static void ur_on_connect(void *arg, uint64_t value, int res, uint32_t flags)
{
	(void)flags;
	struct worker *w = arg;
	uint32_t gen;
	struct conn *c = ur_conn(w, value, &gen);
	w->n_reaped++;
	if (ur_settle(c, gen, true))
		return;
	if (res < 0) {
		connect_failed(c, res);
		conn_close(c);
	} else {
		ur_recv(c);
		conn_opened(c);
	}
}

/* Only failures complete: short (res >= 0) or an error. */
static void ur_on_send(void *arg, uint64_t value, int res, uint32_t flags)
{
	(void)res;
	(void)flags;
	struct worker *w = arg;
	uint32_t gen;
	struct conn *c = ur_conn(w, value, &gen);
	w->n_reaped++;
	if (gen == (c->gen & 0xffffff) && c->state == CONN_OPEN)
		conn_fail(c, ERR_WRITE, true);
}

/* An HTTP/2 send's completion: c->out is free again, and what the session
 * gathered meanwhile (with the requests the answers since then allow) goes
 * out.  A short send (MSG_WAITALL) or an error fails the connection. */
static void ur_on_h2_send(void *arg, uint64_t value, int res, uint32_t flags)
{
	(void)flags;
	struct worker *w = arg;
	uint32_t gen;
	struct conn *c = ur_conn(w, value, &gen);
	w->n_reaped++;
	if (ur_settle(c, gen, true))
		return;
	INVARIANT(c->h2 && c->writing);
	c->writing = false;
	if (res < 0 || (size_t)res != c->out.len) {
		conn_fail(c, ERR_WRITE, true);
		return;
	}
	buf_reset(&c->out);
	if (w->paced) {
		/* worker_pump dropped it from the ready stack while it sent */
		ready_push(w, c);
		worker_pump(w, w->now);
	} else {
		conn_fill(c);
	}
	h2_flush(c);
}

/* Before each wait: the open loop's due slots, the wait's end (the next
 * slot), the batch, and the end of the thread once it has finished and
 * every socket is closed. */
static void ur_prepare(struct io_loop *l)
{
	struct worker *w = l->owner;
	if (w->pace_ns && !w->finished) {
		uint64_t now = uv_hrtime();
		if (now >= w->pace_ns) {
			w->pace_ns = 0;
			stats_lock(w);
			worker_pump(w, now);
			worker_check_done(w, now);
			stats_unlock(w);
		}
	}
	l->wake_ns = w->finished ? 0 : w->pace_ns;
	if (w->finished && w->ring_fds == 0)
		io_loop_stop(l);
	/* flat out with many in flight: wake for a batch, not for each
	 * answer (see "Batches" above); the open loop never waits longer
	 * than its schedule says */
	unsigned want = 1;
	uint64_t wait_ns = 0;
	if (!w->paced && w->cfg->batch_wait_ns && w->inflight >= UR_BATCH_MIN_INFLIGHT) {
		want = (unsigned)(w->inflight / 4 < UR_BATCH_MAX ? w->inflight / 4 : UR_BATCH_MAX);
		wait_ns = w->cfg->batch_wait_ns;
	}
	/* HTTP/2 sends complete too, at once: not answers, so asked for on
	 * top (else, with nothing batched, they would end the wait) */
	if (w->inflight > 0)
		want += w->h2_sends;
	if (want > 1)
		io_loop_batch(l, want, wait_ns);
	w->h2_sends = 0;
}

/* Around a turn's completions: the stats lock, and one clock reading for
 * the first (ur_on_recv reads it again for each later answer). */
static void ur_reap_begin(struct io_loop *l)
{
	struct worker *w = l->owner;
	stats_lock(w);
	w->now = uv_hrtime();
	w->n_reaped = 0;
	if (!w->measuring && w->now >= w->measure_ns)
		worker_begin_measuring(w, w->now);
}

static void ur_reap_end(struct io_loop *l, unsigned n)
{
	(void)n;
	struct worker *w = l->owner;
	worker_publish(w);
	worker_check_done(w, w->now);
	stats_unlock(w);
}

static const struct io_loop_hooks ur_hooks = {
	.prepare = ur_prepare,
	.submitting = ur_stamp,
	.reap_begin = ur_reap_begin,
	.reap_end = ur_reap_end,
};

/* Set up the thread's loop, or leave the thread on the libuv path (a
 * kernel before 6.1, io_uring refused). */
static void ur_setup(struct worker *w)
{
	/* two buffers per connection, as a rule enough for what arrives
	 * between two turns; should they run out, a receive ends with
	 * -ENOBUFS and is re-armed */
	unsigned nbuf = 64;
	while (nbuf < 2 * w->n_conns && nbuf < UR_BUFS_MAX)
		nbuf *= 2;
	/* per connection at most a receive or connect, a send and a cancel
	 * per turn; the ring is submitted early when full.  Completions that
	 * arrive while a turn takes its own wait for the next turn. */
	struct io_loop_config cfg = {
		.sq_entries = w->stamps_cap, .cq_entries = 4 * w->n_conns + 128,
		.nbufs = nbuf, .buf_size = UR_BUF_SIZE,
		.reap_max = 4 * w->n_conns + 64,
		.hooks = &ur_hooks, .owner = w,
	};
	if (io_loop_init(&w->io, &w->loop, &cfg) < 0)
		return;
	io_loop_on(&w->io, UR_RECV, ur_on_recv, w);
	io_loop_on(&w->io, UR_SEND, ur_on_send, w);
	io_loop_on(&w->io, UR_CONNECT, ur_on_connect, w);
	io_loop_on(&w->io, UR_H2SEND, ur_on_h2_send, w);
	/* optional: without it every operation looks the file up */
	w->fixed_files = uring_files_init(&w->io.ring, w->n_conns) == 0;
	w->use_uring = true;
}

/* All done: close every handle; uv_run returns when the last is closed. */
static void worker_finish(struct worker *w, uint64_t now)
{
	if (w->finished)
		return;
	w->finished = true;
	w->st.end_ns = now;
	/* an open-loop run that finished its schedule early (the last answer
	 * came before the deadline) still lasted until the deadline */
	if (w->paced && w->deadline_ns != UINT64_MAX && now < w->deadline_ns &&
	    w->st.connects > 0 && !atomic_load(&w->run->stop))
		w->st.end_ns = w->deadline_ns;
	if (!w->measuring) {
		/* stopped inside the warm-up: an empty window */
		worker_begin_measuring(w, now);
		w->st.start_ns = now;
	}
	uv_timer_stop(&w->tick);
	uv_close((uv_handle_t *)&w->tick, handle_closed_cb);
	if (w->paced && !w->use_uring)
		pacer_timer_close(&w->ptimer, ptimer_closed_cb);
	for (unsigned i = 0; i < w->n_conns; i++) {
		struct conn *c = &w->conns[i];
		if (c->state == CONN_CONNECTING || c->state == CONN_OPEN)
			conn_release(c);
	}
	worker_publish(w);
}

static void worker_check_done(struct worker *w, uint64_t now)
{
	if (w->stopping && w->inflight == 0 && !w->finished)
		worker_finish(w, now);
}

/* When the oldest request in flight on c was sent. */
static uint64_t conn_oldest_ns(const struct conn *c)
{
	if (!c->h2)
		return c->ring[c->head].sent_ns;
	uint64_t t = UINT64_MAX;
	for (unsigned j = 0; j < c->w->cfg->pipeline; j++)
		if (c->ring[j].busy && c->ring[j].sent_ns < t)
			t = c->ring[j].sent_ns;
	return t == UINT64_MAX ? 0 : t;
}

static void tick_cb(uv_timer_t *t)
{
	struct worker *w = t->data;
	const struct bench_cfg *cfg = w->cfg;
	stats_lock(w);
	uint64_t now = uv_hrtime();
	if (!w->measuring && now >= w->measure_ns)
		worker_begin_measuring(w, now);
	if (atomic_load_explicit(&w->run->stop, memory_order_relaxed)) {
		/* interrupted: what is in flight will never be answered; it ends
		 * here, as errors.interrupted, so that every request written still
		 * ends once */
		for (unsigned i = 0; i < w->n_conns; i++) {
			struct conn *c = &w->conns[i];
			for (unsigned j = 0; j < cfg->pipeline && w->measuring; j++)
				if (c->ring[j].busy && c->ring[j].measured)
					w->st.err_interrupted++;
			for (unsigned j = 0; j < cfg->pipeline; j++)
				c->ring[j].busy = false;
			w->inflight -= c->inflight;
			c->inflight = 0;
			if (c->h2)
				conn_close(c);  /* its streams' late answers have no slot */
		}
		w->stopping = true;
	}
	if (!w->paced && now >= w->deadline_ns)
		w->stopping = true;
	for (unsigned i = 0; i < w->n_conns; i++) {
		struct conn *c = &w->conns[i];
		if (c->state == CONN_OPEN)
			w->last_open_ns = now;
		if (c->state == CONN_OPEN && c->inflight > 0 &&
		    now - conn_oldest_ns(c) > cfg->timeout_ns) {
			conn_fail(c, ERR_TIMEOUT, false);
		} else if (c->state == CONN_CONNECTING && now - c->since_ns > cfg->timeout_ns) {
			connect_failed(c, UV_ETIMEDOUT);
			conn_close(c);
		} else if (c->state == CONN_IDLE && !w->stopping && now >= c->retry_ns) {
			conn_connect(c, now);
		}
	}
	/* --requests without --duration has no deadline: a server gone for
	 * good (nothing connects for a whole timeout) ends the run rather than
	 * leaving it retrying forever */
	if (w->deadline_ns == UINT64_MAX && !w->stopping && w->st.err_connect > 0 &&
	    now - w->last_open_ns > cfg->timeout_ns)
		w->stopping = true;
	if (w->paced && !w->stopping)
		worker_pump(w, now);
	/* stopping with requests still due but unsent (no connection could
	 * take them), past the deadline by a timeout: give up on them */
	if (w->paced && now >= w->deadline_ns && w->deadline_ns != UINT64_MAX &&
	    now - w->deadline_ns > cfg->timeout_ns)
		w->stopping = true;
	worker_publish(w);
	worker_check_done(w, now);
	stats_unlock(w);
}

static void worker_main(void *arg)
{
	struct worker *w = arg;
	struct run *run = w->run;
	uint64_t now = uv_hrtime();
	stats_lock(w);
	w->last_open_ns = now;
	uv_timer_init(&w->loop, &w->tick);
	w->tick.data = w;
	w->open_handles++;
	uv_timer_start(&w->tick, tick_cb, w->tick_ms, w->tick_ms);
	if (w->cfg->io_uring && w->stamps)
		ur_setup(w);
	if (w->paced && !w->use_uring) {
		w->ptimer.data = w;
		int r = pacer_timer_start(&w->loop, &w->ptimer, pace_cb);
		if (r < 0) {
			w->start_err = r;
			w->paced = false;
			w->stopping = true;
		} else {
			w->open_handles++;
		}
	}
	if (!w->stopping) {
		for (unsigned i = 0; i < w->n_conns; i++)
			conn_connect(&w->conns[i], now);
	}
	worker_check_done(w, now);
	stats_unlock(w);
	if (w->use_uring)
		io_loop_run(&w->io);
	else
		uv_run(&w->loop, UV_RUN_DEFAULT);
	INVARIANT(w->open_handles == 0 && w->finished);
	if (w->use_uring) {
		INVARIANT(w->ring_fds == 0);
		io_loop_free(&w->io);
		w->use_uring = false;
	}
	atomic_fetch_add(&run->n_done, 1);
	uv_async_send(&run->done_async);
}


/* ------------------------------------------------------------ main thread */

static void run_close_all(struct run *r)
{
	if (r->cfg->progress)
		uv_close((uv_handle_t *)&r->progress_timer, NULL);
	if (r->cfg->interval_ns)
		uv_close((uv_handle_t *)&r->interval_timer, NULL);
	uv_close((uv_handle_t *)&r->sigint, NULL);
	uv_close((uv_handle_t *)&r->sigterm, NULL);
	uv_close((uv_handle_t *)&r->done_async, NULL);
}

static void progress_clear(struct run *r)
{
	if (r->progress_shown) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
		r->progress_shown = false;
	}
}

static void done_cb(uv_async_t *a)
{
	struct run *r = a->data;
	if (atomic_load(&r->n_done) == r->n_workers) {
		progress_clear(r);
		run_close_all(r);
	}
}

static void signal_cb(uv_signal_t *s, int signum)
{
	struct run *r = s->data;
	r->interrupted = true;
	atomic_store(&r->stop, 1);
}

static void progress_cb(uv_timer_t *t)
{
	struct run *r = t->data;
	uint64_t req = 0, err = 0;
	for (unsigned i = 0; i < r->n_workers; i++) {
		req += atomic_load_explicit(&r->workers[i].pub_requests, memory_order_relaxed);
		err += atomic_load_explicit(&r->workers[i].pub_errors, memory_order_relaxed);
	}
	double secs = (double)(uv_hrtime() - r->start_ns) / 1e9;
	fprintf(stderr, "\r\033[K%s: %.1fs  %llu requests  %.0f req/s  %llu errors",
	        cli_prog(), secs, (unsigned long long)req,
	        secs > 0 ? (double)req / secs : 0.0, (unsigned long long)err);
	fflush(stderr);
	r->progress_shown = true;
}

/* Subtract the counters of the last interval from the current totals. */
static void interval_cb(uv_timer_t *t)
{
	struct run *r = t->data;
	struct bench_stats cur;
	memset(&cur, 0, sizeof cur);
	struct bench_stats *iv = &r->ival;
	hist_reset(iv->latency);
	for (unsigned i = 0; i < r->n_workers; i++) {
		struct worker *w = &r->workers[i];
		uv_mutex_lock(&w->lock);
		if (w->measuring) {
			cur.requests += w->st.requests;
			cur.sent += w->st.sent;
			cur.bytes += w->st.bytes;
			cur.connects += w->st.connects;
			cur.err_connect += w->st.err_connect;
			cur.err_read += w->st.err_read;
			cur.err_write += w->st.err_write;
			cur.err_timeout += w->st.err_timeout;
			for (int k = 0; k < BENCH_STATUS_MAX; k++)
				cur.status[k] += w->st.status[k];
			hist_merge(iv->latency, w->ihist);
		}
		hist_reset(w->ihist);
		uv_mutex_unlock(&w->lock);
	}
	iv->requests = cur.requests - r->prev.requests;
	iv->sent = cur.sent - r->prev.sent;
	iv->bytes = cur.bytes - r->prev.bytes;
	iv->connects = cur.connects - r->prev.connects;
	iv->err_connect = cur.err_connect - r->prev.err_connect;
	iv->err_read = cur.err_read - r->prev.err_read;
	iv->err_write = cur.err_write - r->prev.err_write;
	iv->err_timeout = cur.err_timeout - r->prev.err_timeout;
	for (int k = 0; k < BENCH_STATUS_MAX; k++)
		iv->status[k] = cur.status[k] - r->prev.status[k];
	/* keep the cumulative counters (not the histograms) for next time */
	struct hist *a = r->prev.latency, *b = r->prev.latency_raw, *c = r->prev.send_lag;
	r->prev = cur;
	r->prev.latency = a;
	r->prev.latency_raw = b;
	r->prev.send_lag = c;
	uint64_t now = uv_hrtime();
	uint64_t measure_ns = r->workers[0].measure_ns;
	if (now < measure_ns)
		return;  /* still warming up */
	uint64_t span = now - (r->last_interval_ns > measure_ns ? r->last_interval_ns : measure_ns);
	r->last_interval_ns = now;
	progress_clear(r);
	if (r->on_interval)
		r->on_interval(r->ctx, iv, now - measure_ns, span);
}

int bench_run(const struct bench_cfg *cfg, struct bench_stats *out,
              bench_interval_fn on_interval, void *ctx, bool *interrupted)
{
	INVARIANT(cfg->threads >= 1 && cfg->connections >= cfg->threads);
	INVARIANT(cfg->pipeline >= 1 && cfg->n_targets >= 1);
	struct run *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->cfg = cfg;
	r->on_interval = on_interval;
	r->ctx = ctx;
	r->n_workers = cfg->threads;
	r->workers = calloc(cfg->threads, sizeof(struct worker));
	int err = 0;
	if (!r->workers) {
		free(r);
		return -ENOMEM;
	}
	uint64_t tick_ms = cfg->timeout_ns / 1000000 / 20;
	if (tick_ms < 5)
		tick_ms = 5;
	if (tick_ms > 50)
		tick_ms = 50;

	uv_loop_init(&r->loop);
	r->start_ns = uv_hrtime();
	uint64_t measure_ns = r->start_ns + cfg->warmup_ns;
	uint64_t deadline = cfg->duration_ns ? measure_ns + cfg->duration_ns : UINT64_MAX;

	/* connections spread evenly, the remainder to the first threads; each
	 * connection its target round-robin over the whole run */
	unsigned conn_index = 0;
	for (unsigned i = 0; i < cfg->threads && err == 0; i++) {
		struct worker *w = &r->workers[i];
		w->run = r;
		w->cfg = cfg;
		w->id = i;
		w->tick_ms = tick_ms;
		w->n_conns = cfg->connections / cfg->threads + (i < cfg->connections % cfg->threads);
		w->measure_ns = measure_ns;
		w->deadline_ns = deadline;
		w->measuring = cfg->warmup_ns == 0;
		w->quota = UINT64_MAX;
		w->locking = cfg->interval_ns > 0;
		if (cfg->requests && !cfg->rate_count)
			w->quota = cfg->requests / cfg->threads + (i < cfg->requests % cfg->threads);
		if (cfg->rate_count) {
			w->paced = true;
			pacer_init(&w->pacer, r->start_ns, cfg->rate_count, cfg->rate_per_ns,
			           cfg->threads, i);
			if (cfg->requests)
				w->pacer.limit = pacer_slots_due(&w->pacer, measure_ns - 1) + cfg->requests;
		}
		if (bench_stats_init(&w->st) < 0 || uv_loop_init(&w->loop) < 0 ||
		    uv_mutex_init(&w->lock) < 0) {
			err = -ENOMEM;
			break;
		}
		w->st.start_ns = measure_ns;
		if (cfg->interval_ns && !(w->ihist = hist_new(HIST_MAX_US_1H))) {
			err = -ENOMEM;
			break;
		}
		w->io.ring.fd = -1;
		if (cfg->io_uring) {
			/* the ring itself is set up by the thread (ur_setup) */
			unsigned sq = 2 * w->n_conns + 64;
			if (sq > 32768)
				sq = 32768;
			w->stamps_cap = sq;
			w->stamps = calloc(sq, sizeof(struct ur_stamp));
		}
		w->conns = calloc(w->n_conns, sizeof(struct conn));
		w->ready = calloc(w->n_conns, sizeof(struct conn *));
		w->rblock = malloc((size_t)w->n_conns * cfg->recv_buf);
		w->slots = calloc((size_t)w->n_conns * cfg->pipeline, sizeof(struct slot));
		if (cfg->h2)
			w->h2idx = calloc((size_t)w->n_conns * cfg->pipeline * 2, sizeof(unsigned));
		if (!w->conns || !w->ready || !w->rblock || !w->slots || (cfg->h2 && !w->h2idx)) {
			err = -ENOMEM;
			break;
		}
		for (unsigned j = 0; j < w->n_conns; j++) {
			struct conn *c = &w->conns[j];
			c->w = w;
			c->t = &cfg->targets[conn_index++ % cfg->n_targets];
			c->rbuf = w->rblock + (size_t)j * cfg->recv_buf;
			c->ring = w->slots + (size_t)j * cfg->pipeline;
			if (cfg->h2) {
				c->free_slots = w->h2idx + (size_t)j * cfg->pipeline * 2;
				c->stage = c->free_slots + cfg->pipeline;
			}
			buf_init(&c->out);
			c->state = CONN_IDLE;
			c->fd = -1;
			http_client_reader_init(&c->rd, cfg->method, &cfg->limits);
		}
	}
	unsigned started = 0;
	if (err == 0) {
		uv_async_init(&r->loop, &r->done_async, done_cb);
		r->done_async.data = r;
		uv_signal_init(&r->loop, &r->sigint);
		uv_signal_init(&r->loop, &r->sigterm);
		r->sigint.data = r->sigterm.data = r;
		uv_signal_start(&r->sigint, signal_cb, SIGINT);
		uv_signal_start(&r->sigterm, signal_cb, SIGTERM);
		if (cfg->progress) {
			uv_timer_init(&r->loop, &r->progress_timer);
			r->progress_timer.data = r;
			uv_timer_start(&r->progress_timer, progress_cb, 500, 500);
		}
		if (cfg->interval_ns) {
			bench_stats_init(&r->prev);
			bench_stats_init(&r->ival);
			uint64_t ms = cfg->interval_ns / 1000000;
			if (ms == 0)
				ms = 1;
			uv_timer_init(&r->loop, &r->interval_timer);
			r->interval_timer.data = r;
			uint64_t first = ms + cfg->warmup_ns / 1000000;
			uv_timer_start(&r->interval_timer, interval_cb, first, ms);
		}
		for (unsigned i = 0; i < cfg->threads; i++) {
			if (uv_thread_create(&r->workers[i].thread, worker_main, &r->workers[i]) < 0) {
				atomic_store(&r->stop, 1);
				err = -EAGAIN;
				break;
			}
			started++;
		}
		if (started < cfg->threads)
			atomic_fetch_add(&r->n_done, cfg->threads - started);
		if (started == 0)
			run_close_all(r);
		uv_run(&r->loop, UV_RUN_DEFAULT);
		for (unsigned i = 0; i < started; i++)
			uv_thread_join(&r->workers[i].thread);
	}
	uv_loop_close(&r->loop);
	for (unsigned i = 0; i < cfg->threads; i++) {
		struct worker *w = &r->workers[i];
		if (i < started) {
			bench_stats_merge(out, &w->st);
			if (w->start_err && !err)
				err = w->start_err;
			uv_loop_close(&w->loop);
		}
		if (w->use_uring)
			io_loop_free(&w->io);  /* a thread that never started */
		bench_stats_free(&w->st);
		hist_free(w->ihist);
		for (unsigned j = 0; w->conns && j < w->n_conns; j++) {
			http_h2_client_free(w->conns[j].h2);
			buf_free(&w->conns[j].out);
		}
		free(w->h2idx);
		free(w->conns);
		free(w->ready);
		free(w->rblock);
		free(w->slots);
		free(w->stamps);
	}
	if (cfg->interval_ns) {
		bench_stats_free(&r->prev);
		bench_stats_free(&r->ival);
	}
	if (interrupted)
		*interrupted = r->interrupted;
	free(r->workers);
	free(r);
	return err;
}
