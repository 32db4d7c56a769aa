/*
 * http/server_uring.c -- lib/http/server's io_uring socket backend.
 *
 * Each thread runs on lib/io/loop: it waits in its ring rather than in
 * libuv's epoll (libuv's epoll fd is polled through the ring), and
 * everything else (accept, timers, signals, wakes, the drain) stays on
 * libuv.  Requests carry the connection's address as user_data, with the
 * operation as the loop's tag (UR_RECV, UR_SEND), so each completion goes
 * straight to its callback.
 *
 * - Receive: one multishot receive per connection, armed when the
 *   connection first wants to read and kept for its life: no submission
 *   and no poll registration per request.  It takes its blocks from the
 *   loop's provided buffers, so an idle connection holds no buffer of its
 *   own.  Each block's bytes are copied into rbuf (one small memcpy) and
 *   the block goes back at once; the parse and pin logic of server.c sees
 *   exactly what a read would have given.  A block that does not fit
 *   rbuf's room, or arrives while the connection does not want to read, is
 *   held, in order, on the connection (ur_hhead..ur_htail, linked through
 *   the thread's per-block ur_next[]) and copied when there is room
 *   (ur_deliver, from the check phase).  Stopping reading cancels the
 *   receive (by its user_data) the first time a block arrives unwanted, so
 *   what is held is bounded by what arrived within one loop turn; reading
 *   again re-arms it once the held blocks are delivered.  The end of the
 *   stream (0, an error) is kept behind the held blocks (ur_end).  A
 *   receive the kernel ends (out of blocks: -ENOBUFS) is re-armed; the
 *   blocks are back by the turn's submit.
 * - Send: one send of the out buffer per flush; out and wout swap as for
 *   uv_write, so the kernel's buffer stays put until the completion; a
 *   short send sends the rest.
 * - Everything a loop turn prepared (receives completed, answers built,
 *   next receives armed, late answers, what timers and wakes did) goes to
 *   the kernel in the one io_uring_enter that also waits for the next
 *   completions; a long run of completions submits every UR_SUBMIT_BATCH
 *   entries, so the peers start on the first answers while the rest are
 *   still being made.
 * - Close: a connection with requests in the ring gets one cancel of
 *   everything on its fd, and its handle is closed (and so its struct
 *   recycled) only when the last completion has been consumed (c->ur_ops);
 *   the kernel never writes into memory we reuse.  The loop ends when the
 *   thread has finished and t->ur_ops is 0.
 * - Shutdown of the write side (the lingering close) is a plain
 *   shutdown(2): it comes only after the last send has completed.
 *
 * Batches: when the last turn brought 4 or more completions, the next
 * waits for half as many (at most UR_BATCH_MAX), or UR_BATCH_WAIT_NS after
 * the first (lib/io/loop's io_loop_batch).  Fewer wake-ups per request, at
 * the cost of at most that wait added to an answer under load; an idle
 * server wakes for every request.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base/invariant.h"
#include "base/log.h"
#include "http/server_internal.h"

enum { UR_RECV = 1, UR_SEND = 2 };   /* the loop's tags */
#define UR_SQ_ENTRIES 1024
#define UR_CQ_ENTRIES 8192
#define UR_NBUFS 1024          /* provided receive blocks per thread */
#define UR_BUF_SIZE 2048
#define UR_BATCH_MAX 32        /* most completions a busy wait asks for */
#define UR_BATCH_WAIT_NS 50000u /* how long it waits for them, once one is in */
#ifndef UR_SUBMIT_BATCH
#define UR_SUBMIT_BATCH 32     /* prepared entries that are submitted at once */
#endif

static inline uint64_t ur_data(const struct conn *c, unsigned op)
{
	return io_loop_data(op, (uint64_t)(uintptr_t)c);
}

static void ur_op_start(struct conn *c)
{
	c->ur_ops++;
	c->t->ur_ops++;
}

/* Arm c's multishot receive if none is armed and nothing is held. */
static void ur_recv_arm(struct conn *c)
{
	if (c->ur_recv || c->closed || c->ur_closing)
		return;
	if (c->ur_nheld || c->ur_end) {
		server_conn_schedule(c);   /* the check phase delivers them first */
		return;
	}
	io_loop_recv_multishot(&c->t->io, c->fd, false, ur_data(c, UR_RECV));
	c->ur_recv = true;
	c->ur_cancel = false;
	ur_op_start(c);
}

/* Reading stopped: end the armed receive (its last completion says so). */
static void ur_recv_cancel(struct conn *c)
{
	if (!c->ur_recv || c->ur_cancel)
		return;
	io_loop_cancel(&c->t->io, ur_data(c, UR_RECV));
	c->ur_cancel = true;
}

/* Give back every held block. */
static void ur_held_drop(struct conn *c)
{
	struct http_thread *t = c->t;
	while (c->ur_nheld) {
		uint16_t b = c->ur_hhead;
		c->ur_hhead = t->ur_next[b];
		c->ur_nheld--;
		io_loop_buf_put(&t->io, b);
	}
	c->ur_hoff = 0;
}

/* Hand on what is held: the head block's bytes that fit rbuf (all of them,
 * discarded, when lingering), or the end of the stream once nothing is
 * held.  One step; the rest goes on from the check phase. */
static void ur_deliver(struct conn *c)
{
	struct http_thread *t = c->t;
	if (c->ur_nheld == 0) {
		if (c->ur_end) {
			c->ur_end = false;
			server_conn_read_done(c, c->ur_end_code);
		}
		return;
	}
	if (c->lingering) {
		size_t n = 0;
		for (uint16_t i = 0, b = c->ur_hhead; i < c->ur_nheld; i++, b = t->ur_next[b])
			n += t->ur_len[b];
		n -= c->ur_hoff;
		ur_held_drop(c);
		server_conn_read_done(c, (ssize_t)n);
	} else {
		server_conn_rbuf(c);
		uint16_t b = c->ur_hhead;
		size_t n = c->rcap - c->rlen;
		if (n > t->ur_len[b] - c->ur_hoff)
			n = t->ur_len[b] - c->ur_hoff;
		memcpy(c->rbuf + c->rlen, io_loop_buf(&t->io, b) + c->ur_hoff, n);
		c->ur_hoff += (uint32_t)n;
		if (c->ur_hoff == t->ur_len[b]) {
			c->ur_hhead = t->ur_next[b];
			c->ur_nheld--;
			c->ur_hoff = 0;
			io_loop_buf_put(&t->io, b);
		}
		if (n)
			server_conn_read_done(c, (ssize_t)n);
		else
			c->proto->service(c);   /* rbuf full: the answers make room */
	}
	if (!c->closed && c->reading && (c->ur_nheld || c->ur_end))
		server_conn_schedule(c);
}

/* The last completion of c's requests is in: its handle may close now. */
static inline void ur_op_done(struct conn *c)
{
	INVARIANT(c->ur_ops > 0 && c->t->ur_ops > 0);
	c->ur_ops--;
	c->t->ur_ops--;
}

static inline void ur_maybe_close(struct conn *c)
{
	if (c->ur_closing && c->ur_ops == 0) {
		c->ur_closing = false;
		uv_close((uv_handle_t *)&c->tcp, server_conn_on_close);
	}
}

static void ur_recv_done(struct http_thread *t, struct conn *c, int res, uint32_t flags)
{
	bool more = flags & IORING_CQE_F_MORE;
	if (!more)
		c->ur_recv = c->ur_cancel = false;
	if (res > 0 && (flags & IORING_CQE_F_BUFFER) && !c->closed) {
		uint16_t b = (uint16_t)(flags >> IORING_CQE_BUFFER_SHIFT);
		t->ur_len[b] = (uint32_t)res;
		if (c->ur_nheld)
			t->ur_next[c->ur_htail] = b;
		else
			c->ur_hhead = b;
		c->ur_htail = b;
		c->ur_nheld++;
		if (c->reading || c->lingering) {
			if (c->ur_nheld == 1)
				ur_deliver(c);
			/* else a delivery is scheduled already */
		} else {
			ur_recv_cancel(c);
		}
		if (!more && !c->closed && c->reading)
			ur_recv_arm(c);
		return;
	}
	if (flags & IORING_CQE_F_BUFFER)
		io_loop_buf_put(&t->io, flags >> IORING_CQE_BUFFER_SHIFT);
	if (c->closed || more)
		return;
	if (res == -ENOBUFS || res == -ECANCELED || res == -EINTR || res == -EAGAIN || res > 0) {
		/* ended by us or for want of blocks: again when wanted */
		if (c->reading)
			ur_recv_arm(c);
		return;
	}
	c->ur_end = true;
	c->ur_end_code = res == 0 ? UV_EOF : res;
	if (c->reading || c->lingering)
		ur_deliver(c);
}

static void ur_on_recv(void *arg, uint64_t value, int res, uint32_t flags)
{
	struct conn *c = (struct conn *)(uintptr_t)value;
	if (!(flags & IORING_CQE_F_MORE))
		ur_op_done(c);   /* a multishot receive stays in the ring while F_MORE is set */
	ur_recv_done(arg, c, res, flags);
	ur_maybe_close(c);
}

static void ur_send(struct conn *c)
{
	io_loop_send(&c->t->io, c->fd, false, c->wout.data + c->wsent, c->wout.len - c->wsent,
	             MSG_NOSIGNAL, 0, ur_data(c, UR_SEND));
	ur_op_start(c);
}

static void ur_on_send(void *arg, uint64_t value, int res, uint32_t flags)
{
	(void)arg;
	(void)flags;
	struct conn *c = (struct conn *)(uintptr_t)value;
	ur_op_done(c);
	if (c->closed || res < 0) {
		server_conn_write_done(c, res < 0 ? res : 0);
	} else {
		c->wsent += (size_t)res;
		if (c->wsent < c->wout.len)
			ur_send(c);   /* short: the rest */
		else
			server_conn_write_done(c, 0);
	}
	ur_maybe_close(c);
}

/* The thread has finished and nothing of ours is in the ring: the loop
 * ends once libuv has closed what is left. */
static void ur_maybe_stop(struct http_thread *t)
{
	if (t->finished && t->ur_ops == 0)
		io_loop_stop(&t->io);
}

/* Busy: wait for a batch (see the top of the file). */
static void ur_prepare(struct io_loop *l)
{
	if (l->last >= 4)
		io_loop_batch(l, l->last / 2 < UR_BATCH_MAX ? l->last / 2 : UR_BATCH_MAX,
		              UR_BATCH_WAIT_NS);
}

static void ur_reaped(struct io_loop *l, unsigned n)
{
	(void)n;
	struct http_thread *t = l->owner;
	if (t->flush)
		server_thread_flush(t);   /* late answers and held input, as libuv's check phase would */
	ur_maybe_stop(t);
}

static const struct io_loop_hooks ur_hooks = {
	.prepare = ur_prepare,
	.reap_end = ur_reaped,
};

/* ---- the table's functions */

static void ur_thread_free(struct http_thread *t)
{
	io_loop_free(&t->io);
	free(t->ur_next);
	free(t->ur_len);
	t->ur_next = NULL;
	t->ur_len = NULL;
}

/* A ring per thread, set up here (so that an error is told before anything
 * is bound) and run by the thread: all or none. */
static int ur_init(struct http_server *srv)
{
	struct io_loop_config cfg = {
		.sq_entries = UR_SQ_ENTRIES, .cq_entries = UR_CQ_ENTRIES,
		.nbufs = UR_NBUFS, .buf_size = UR_BUF_SIZE,
		.reap_max = 4 * UR_CQ_ENTRIES, .submit_batch = UR_SUBMIT_BATCH,
		.run_elsewhere = true, .hooks = &ur_hooks,
	};
	for (unsigned i = 0; i < srv->nthreads; i++) {
		struct http_thread *t = srv->threads[i];
		cfg.owner = t;
		int r = io_loop_init(&t->io, &t->loop, &cfg);
		if (r == 0) {
			t->ur_next = calloc(UR_NBUFS, sizeof *t->ur_next);
			t->ur_len = calloc(UR_NBUFS, sizeof *t->ur_len);
			if (!t->ur_next || !t->ur_len)
				r = -ENOMEM;
		}
		if (r < 0) {
			for (unsigned j = 0; j <= i; j++)
				ur_thread_free(srv->threads[j]);
			return r;
		}
		io_loop_on(&t->io, UR_RECV, ur_on_recv, t);
		io_loop_on(&t->io, UR_SEND, ur_on_send, t);
	}
	return 0;
}

static void ur_run(struct http_thread *t)
{
	int e = io_loop_run(&t->io);
	if (e < 0) {
		/* cannot happen on a ring set up for this (R_DISABLED) */
		log_error("thread %u: cannot enable its io_uring: %s", t->index, strerror(-e));
		abort();
	}
}

static void ur_read(struct conn *c, bool on)
{
	c->reading = on;
	if (on)
		ur_recv_arm(c);   /* or delivers what is held first */
}

/* All of c->out from c->wout, sent by the turn's submit. */
static int ur_write_out(struct conn *c)
{
	struct buf tmp = c->wout;
	c->wout = c->out;
	c->out = tmp;
	buf_reset(&c->out);
	c->wsent = 0;
	c->writing = true;
	ur_send(c);
	return 0;
}

static void ur_shutdown(struct conn *c)
{
	if (shutdown(c->fd, SHUT_WR) < 0)
		server_conn_close(c);
}

/* server_conn_on_close follows when nothing of c is in the ring. */
static void ur_close(struct conn *c)
{
	ur_held_drop(c);
	c->ur_end = false;
	if (c->ur_ops) {
		io_loop_cancel_fd(&c->t->io, c->fd, false);
		c->ur_closing = true;
		return;
	}
	uv_close((uv_handle_t *)&c->tcp, server_conn_on_close);
}

static bool ur_deliver_held(struct conn *c)
{
	if (!(c->ur_nheld || c->ur_end) || !(c->reading || c->lingering))
		return false;
	ur_deliver(c);
	return true;
}

static void ur_flushed(struct http_thread *t)
{
	io_loop_submit(&t->io);
}

static void ur_abort(struct http_thread *t)
{
	io_loop_abort(&t->io);
}

static void ur_draining(struct http_thread *t)
{
	io_loop_reap(&t->io);  /* a request received is served, not dropped */
}

const struct server_io server_io_uring = {
	.name = "uring",
	.abort = ur_abort,
	.init = ur_init,
	.free = ur_thread_free,
	.run = ur_run,
	.read = ur_read,
	.write_out = ur_write_out,
	.shutdown = ur_shutdown,
	.close = ur_close,
	.deliver = ur_deliver_held,
	.flushed = ur_flushed,
	.draining = ur_draining,
	.finished = ur_maybe_stop,
};
