/*
 * http/server_internal.h -- what the files of lib/http/server share, and
 * nothing outside them includes: the connection, the thread and the server
 * structs, and the seam between the server core (server.c: connections,
 * HTTP/1.1, answers, threads, the drain) and a socket backend.
 *
 * A socket backend is one table of functions (struct server_io), chosen at
 * listen for every thread: libuv streams (server_io_uv, in server.c) or
 * io_uring (server_io_uring, server_uring.c).  The core calls only through
 * the table; a backend hands the core its events through the
 * server_conn_* functions below (bytes appended to rbuf, the end of the
 * stream, a write done, a handle closed), so parsing, pinning and ordering
 * are the same code on both.
 */
#ifndef DSYS_HTTP_SERVER_INTERNAL_H
#define DSYS_HTTP_SERVER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "base/buf.h"
#include "http/server.h"
#include "http/trace.h"
#include "io/loop.h"
#include "base/invariant.h"

#define container_of(p, T, m) ((T *)(void *)((char *)(p) - offsetof(T, m)))

enum dl_kind { DL_NONE = 0, DL_HEADER, DL_BODY, DL_IDLE, DL_LINGER };

/* Commands a thread's wake handle carries (bits in t->cmd). */
enum { CMD_DRAIN = 1, CMD_FORCE = 2 };

#define OUT_BACKLOG_MAX (1u << 20)   /* stop reading while this much waits to be written */
#define STREAM_BACKLOG_MAX (8u << 20) /* HTTP/1.1: a streamed answer's unsent bytes past this drop the client */
#define BUF_KEEP_MAX (64u * 1024)    /* response buffers bigger than this are freed when done */
#define BUF_PARK_N 32                 /* big response buffers a thread keeps for the next answers */
#define BUF_PARK_BYTES (4u << 20)     /* ... and their bytes at most */
#define READ_BLOCK_MIN (16u * 1024)
#define GRPC_COUNTED_SLOTS 64         /* distinct (method, grpc-status) pairs counted per thread */

struct conn;

struct xchg {
	struct http_exchange pub;
	struct conn *c;
	struct xchg *next;         /* in the connection's FIFO, or the freelist */
	struct buf resp;           /* the answer, when it came before its turn */
	size_t head_off;           /* offset of its head in c->rbuf while its body is read */
	bool answered;
	bool keep_alive;           /* the request allows another after it */
	bool head_only;            /* HEAD: answer without the body */
	bool is_error;             /* made by the server for bad input: linger after */
	bool gone;                 /* HTTP/2: its stream was reset or timed out; the answer is dropped */
	bool streaming;            /* http_stream_begin was called */
	uint8_t frame;             /* HTTP/1.1: how its pieces are framed (enum h1_frame, server_h1.c) */
	int stream_status;         /* ... with this status */
	void *stream;              /* HTTP/2: its stream (server_h2.c), or NULL */
	/* HTTP/2: the request's bytes (req and body point into them), taken
	 * over from a stream that went before the handler answered (only then:
	 * gone is set with them); freed when the exchange is (xchg_put) */
	struct buf held_head, held_body;
};

struct conn_proto;

struct conn {
	uv_tcp_t tcp;
	struct http_thread *t;
	const struct conn_proto *proto;
	struct conn *prev, *next;  /* in t->conns while open */
	struct conn *flush_next;   /* in t->flush while in_flush */
	/* input */
	char *rbuf;                /* NULL, a pool block, or a big buffer of our own */
	size_t rcap, rlen, rpos;   /* rpos: first byte not parsed yet */
	bool rbig;
	/* the request whose body is being read */
	struct xchg *body_x;
	struct http_body body;
	size_t body_start;         /* decoded payload goes to rbuf + body_start */
	size_t body_dec;           /* decoded bytes so far */
	size_t body_raw;           /* next raw byte to feed */
	/* answers */
	struct xchg *xhead, *xtail;
	uint32_t pinned;           /* handed to the handler, not answered */
	uint32_t h1_streams;       /* HTTP/1.1 streamed answers begun and not ended */
	uint64_t nreq;
	struct buf out, wout;
	uv_write_t wreq;
	uv_shutdown_t sreq;
	/* timing */
	uint64_t deadline;         /* loop ms; meaningful when dl_kind != DL_NONE */
	uint8_t dl_kind;
	size_t linger_bytes;
	bool reading, writing, eof, stop_parse, linger_after, lingering;
	bool closed, handle_closed, in_flush, in_process;
	/* the io_uring backend */
	int fd;                    /* the socket (c->tcp owns it and closes it) */
	uint8_t ur_ops;            /* our requests in the ring: a receive, a send */
	bool ur_recv;              /* the multishot receive is armed */
	bool ur_cancel;            /* ... and asked to stop */
	bool ur_closing;           /* closed: uv_close once ur_ops is 0 */
	bool ur_end;               /* the receive ended with ur_end_code after the held blocks */
	int ur_end_code;           /* UV_EOF or a negative errno */
	uint16_t ur_nheld;         /* received blocks not yet copied to rbuf, in order: */
	uint16_t ur_hhead, ur_htail; /* ... a list through t->ur_next */
	uint32_t ur_hoff;          /* bytes of the head block already copied */
	size_t wsent;              /* bytes of wout the kernel took so far */
	void *h2;                  /* HTTP/2: the session (server_h2.c), or NULL */
};

/*
 * What a protocol does on a connection: the seam between the core
 * (sockets, buffers, exchanges, threads) and HTTP/1.1 (server_h1.c) or
 * HTTP/2 (server_h2.c).  A connection starts as HTTP/1.1; server_h1.c
 * hands it to HTTP/2 when its first bytes are the HTTP/2 client preface.
 */
struct conn_proto {
	const char *name;
	void (*service)(struct conn *c);     /* parse what is buffered, flush answers */
	void (*timeout)(struct conn *c, uint8_t kind);
	/* the answer to x, on its open connection (the core has done the
	 * bookkeeping common to both: pinned, metrics; x->answered is set) */
	void (*respond)(struct xchg *x, const struct http_answer *a);
	void (*drain)(struct conn *c);       /* a drain starts (NULL: the core's idle close) */
	void (*closed)(struct conn *c);      /* the connection closed: free the protocol's state */
	/* streamed answers (NULL: gathered and sent whole, as HTTP/1.1 does) */
	void (*stream_begin)(struct xchg *x, const struct http_answer *head);
	int (*stream_write)(struct xchg *x, const void *data, size_t len);
	/* after the core's bookkeeping; x is the protocol's to put back */
	void (*stream_end)(struct xchg *x, const struct http_header *trailers, uint32_t n);
};

extern const struct conn_proto server_proto_h1;
extern const struct conn_proto server_proto_h2;

struct rblock {
	struct rblock *next;
};

struct http_thread {
	struct http_server *srv;
	unsigned index;
	uv_loop_t loop;
	uv_tcp_t listener;
	uv_async_t wake;
	uv_timer_t tick;
	uv_check_t check;
	uv_idle_t idle;
	pthread_t tid;
	bool started, listening, draining, forced, finished, wake_closed, idle_on;
	_Atomic int cmd;
	void *data;
	char date[64];             /* "Date: ...\r\n" */
	size_t date_len;
	time_t date_sec;
	/* the start of the last head built: status line, Server and Date
	 * lines in one piece, rebuilt when the status or the second changes */
	char head[288];            /* 79 + Server (<= 110) + Date (< 64) */
	size_t head_len;
	int head_status;           /* 0: head[] is stale */
	struct conn *conns;        /* open connections, doubly linked */
	struct conn *flush;        /* connections with answers to write */
	struct conn *free_conns;
	struct xchg *free_x;
	struct rblock *free_blocks;
	struct buf scratch, errbuf;
	/* response buffers past BUF_KEEP_MAX that connections gave back: the
	 * next big answer takes one instead of growing its own and freeing it
	 * when sent (a fresh 128 KiB each time costs a mapping and a page
	 * fault per 4 KiB, more than the copy itself) */
	struct buf park[BUF_PARK_N];
	unsigned npark;
	size_t park_bytes;
	/* the io_uring backend (server_uring.c) */
	struct io_loop io;         /* the ring the thread waits in, and its receive blocks */
	uint16_t *ur_next;         /* per receive block: the next one a connection holds */
	uint32_t *ur_len;          /* per receive block: the bytes the kernel put in it */
	uint64_t ur_ops;           /* requests of ours in the ring, over all connections */
	uint64_t batch_ns;         /* clock at the first head of this service pass, or 0 */
	uint64_t answer_ns;        /* clock of the first answer given inside it, or 0 */
	_Atomic int64_t in_flight;
	/* gRPC calls counted by method and status (server_h2.c): the
	 * counters this thread has looked up, so a call costs no registry
	 * lock; a method path longer than the slot, or past the last slot,
	 * counts under grpc_method "other" */
	struct grpc_counted {
		struct metrics_counter *m;   /* NULL: the slot is free */
		uint8_t code, len;
		char path[62];
	} grpc_counted[GRPC_COUNTED_SLOTS];
};

struct http_server {
	struct http_server_config cfg;
	unsigned nthreads;
	struct http_thread **threads;
	uint16_t port;
	char address[96];
	size_t block_size;
	char server_line[128];
	size_t server_line_len;
	_Atomic uint32_t nconn;
	_Atomic int stopping;
	_Atomic unsigned done;     /* threads 1..N-1 that have finished */
	int init_error;
	pthread_mutex_t lock;      /* guards sending to other threads' wake handles */
	bool listened;
	const struct server_io *io; /* the socket backend, the same for every thread */
	/* thread 0 */
	uv_signal_t sigterm, sigint;
	uv_timer_t drain_timer;
	bool drain_started, signals_on;
	/* metrics */
	struct metrics_counter *m_accepted, *m_rejected;
	struct metrics_counter *m_h2_conns, *m_h2_streams;
	struct metrics_histogram *m_latency;
	struct http_route_stats unmatched;
	struct http_handover *handover; /* the channel a successor asks (handover.c), or NULL */
};

/* A socket backend: what the core asks of the sockets.  Every function is
 * called on the connection's (or the thread's) own loop thread. */
struct server_io {
	const char *name;                          /* http_server_io: "uring", "uv" */
	/* at listen, before anything is bound: set up every thread, all or
	 * none; 0 or -errno (the core then falls back, or fails with cfg.io) */
	int (*init)(struct http_server *srv);
	void (*free)(struct http_thread *t);       /* a thread's part; twice is fine */
	void (*run)(struct http_thread *t);        /* the thread's loop, until it is done */
	void (*read)(struct conn *c, bool on);     /* c is open; reading on or off */
	/* write what is in c->out (swapping out and wout when it must wait);
	 * 0, or a negative error: the peer is gone */
	int (*write_out)(struct conn *c);
	void (*shutdown)(struct conn *c);          /* the write side, after the last answer */
	void (*close)(struct conn *c);             /* server_conn_on_close follows, once */
	/* from the check phase, for a connection scheduled there: hand on
	 * input held back (true), or nothing was held (false: service it) */
	bool (*deliver)(struct conn *c);
	void (*flushed)(struct http_thread *t);    /* the check phase has written what it had */
	void (*draining)(struct http_thread *t);   /* a drain starts: take what has arrived */
	void (*finished)(struct http_thread *t);   /* the thread has no connection left */
	void (*abort)(struct http_thread *t);      /* end the thread's loop now (after uv_stop) */
};

extern const struct server_io server_io_uv;
extern const struct server_io server_io_uring;

/* The core's side of the seam (server.c). */
void server_conn_read_done(struct conn *c, ssize_t nread); /* bytes at rbuf + rlen, or UV_EOF / -errno */
void server_conn_write_done(struct conn *c, int status);
void server_buf_park(struct http_thread *t, struct buf *b);
void server_buf_unpark(struct http_thread *t, struct buf *out, size_t extra);   /* the write from wout is over */
void server_conn_schedule(struct conn *c);                 /* to the check phase (server_thread_flush) */
void server_conn_close(struct conn *c);
void server_conn_on_close(uv_handle_t *h);                 /* the close callback of c->tcp */
void server_thread_flush(struct http_thread *t);           /* the check phase: write what waits */
void server_conn_maybe_release(struct conn *c);            /* recycle a closed c nothing holds */
void server_conn_drain_idle(struct conn *c);               /* a restart's drain: time for one more request */
/* host (NULL or "" for any) and port as a socket address for listening:
 * 0, or -HTTP_SERVER_ENONAME when the name has no address */
int server_resolve(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *len);
void server_conn_close_if_done(struct conn *c);            /* after the last answer: close or linger */

/* Small helpers both protocols use on their hot paths, inline. */
static inline uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Only the owning thread writes its in_flight, so a relaxed load and store
 * (a plain add, no lock prefix) suffice; scrapes on other threads read it
 * atomically. */
static inline void in_flight_add(struct http_thread *t, int64_t d)
{
	int64_t v = atomic_load_explicit(&t->in_flight, memory_order_relaxed);
	atomic_store_explicit(&t->in_flight, v + d, memory_order_relaxed);
}

static inline struct xchg *xchg_get(struct http_thread *t)
{
	struct xchg *x = t->free_x;
	if (x) {
		t->free_x = x->next;
	} else {
		x = calloc(1, sizeof *x);
		INVARIANT(x != NULL);
		buf_init(&x->resp);
		buf_init(&x->held_head);
		buf_init(&x->held_body);
	}
	x->next = NULL;
	x->c = NULL;
	x->answered = x->keep_alive = x->head_only = x->is_error = x->gone = x->streaming = false;
	x->stream = NULL;
	x->pub.span = NULL;
	x->head_off = 0;
	/* req is filled by the parser; clearing its 1.6 KiB per request would
	 * be the costliest line of the hot path */
	memset(&x->pub.body, 0, sizeof x->pub - offsetof(struct http_exchange, body));
	x->pub.thread = t;
	x->pub.loop = &t->loop;
	return x;
}

static inline void xchg_put(struct http_thread *t, struct xchg *x)
{
	if (__builtin_expect(x->gone, 0)) {   /* HTTP/2: its stream went first */
		buf_free(&x->held_head);
		buf_free(&x->held_body);
	}
	if (x->resp.cap > BUF_KEEP_MAX)
		buf_free(&x->resp);
	else if (x->resp.len)
		buf_reset(&x->resp);
	x->next = t->free_x;
	t->free_x = x;
}

static inline void conn_set_deadline(struct conn *c, uint8_t kind, uint64_t ms)
{
	c->dl_kind = kind;
	c->deadline = uv_now(&c->t->loop) + ms;
}

static inline void io_read(struct conn *c, bool on)
{
	if (c->closed)
		return;
	c->t->srv->io->read(c, on);
}



/* A read block from the thread's pool, and back. */
static inline char *server_block_get(struct http_thread *t)
{
	struct rblock *b = t->free_blocks;
	if (b) {
		t->free_blocks = b->next;
		return (char *)b;
	}
	char *p = malloc(t->srv->block_size);
	INVARIANT(p != NULL);
	return p;
}
static inline void server_block_put(struct http_thread *t, char *p)
{
	struct rblock *b = (struct rblock *)(void *)p;
	b->next = t->free_blocks;
	t->free_blocks = b;
}
/* c->rbuf is a buffer (a pool block when it had none). */
static inline void server_conn_rbuf(struct conn *c)
{
	if (!c->rbuf) {
		c->rbuf = server_block_get(c->t);
		c->rcap = c->t->srv->block_size;
		c->rlen = c->rpos = 0;
		c->rbig = false;
	}
}

/* Give the read buffer back: to the pool, or to malloc when it was big. */
static inline void server_conn_rbuf_release(struct conn *c)
{
	if (!c->rbuf)
		return;
	if (c->rbig)
		free(c->rbuf);
	else
		server_block_put(c->t, c->rbuf);
	c->rbuf = NULL;
	c->rbig = false;
	c->rcap = c->rlen = c->rpos = 0;
}
/* Write what c->out holds; then close, or linger, if c is done. */
static inline void server_conn_flush(struct conn *c)
{
	if (c->closed)
		return;
	if (!c->writing && c->out.len && c->t->srv->io->write_out(c) < 0) {
		server_conn_close(c);
		return;
	}
	if (!c->lingering && !c->writing && !c->out.len && !c->xhead && !c->pinned && !c->body_x)
		server_conn_close_if_done(c);
}

/* The handler's turn: x, complete (its request, its body), is pinned on c
 * until answered. */
static inline void server_dispatch(struct conn *c, struct xchg *x)
{
	struct http_thread *t = c->t;
	struct http_server *srv = t->srv;
	x->c = c;
	x->pub.thread_data = t->data;
	c->pinned++;
	c->nreq++;
	in_flight_add(t, 1);
	if (__builtin_expect(srv->cfg.tracer != NULL, 0)) {
		/* the handler's log lines name the request's span (set by begin) */
		http_trace_begin(srv->cfg.tracer, &x->pub);
		srv->cfg.handler(&x->pub, srv->cfg.handler_arg);
		http_trace_log(NULL);
		return;
	}
	srv->cfg.handler(&x->pub, srv->cfg.handler_arg);
}

#endif
