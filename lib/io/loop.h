/*
 * io/loop.h -- one thread's event loop on io_uring, with libuv inside it.
 *
 * Why: a server or a load generator spends most of its time per request in
 * system calls and in wake-ups.  On this loop a thread waits in its ring
 * (io_uring_enter), not in epoll: the sends and receives a turn prepared
 * and the wait for the next completions are one system call, and the ring
 * is SINGLE_ISSUER | DEFER_TASKRUN, so the kernel does a completion's work
 * (the receive itself, after the socket's wake-up) when the thread asks for
 * completions, in one batch, and never interrupts it.  dsys-serve
 * (lib/http/server's io_uring backend) and dsys-bench both run on it.
 *
 * libuv stays: listeners, timers, signals, async wakes, child processes.
 * Its epoll fd sits in the ring as a one-shot poll (readable when any fd
 * libuv watches is), and a turn runs libuv (uv_run with UV_RUN_NOWAIT) only
 * when that poll fired, when its next timer is due, or when it has work
 * pending (uv_backend_timeout 0: closing handles, an idle handle); a turn
 * of libuv with fds costs an epoll_wait, so it is not run for nothing.  The
 * poll is re-armed after each libuv run, and arming checks readiness at
 * once, so an fd libuv left ready is never missed.
 *
 * Requests and completions.  Each request carries a 64-bit user_data: a tag
 * in its low IO_LOOP_TAG_BITS bits, which picks the callback that takes its
 * completion (io_loop_on), and the owner's value in the rest (an aligned
 * pointer, or an index shifted up; io_loop_data).  Tag 0 is for requests
 * whose completion nobody needs (a cancel that found nothing); tag 7 is the
 * loop's own poll of libuv.  The submit helpers below prepare the entries
 * the owners use (a send, a multishot receive from the provided buffers, a
 * connect, a cancel of one request or of everything on a socket before it
 * is closed); what they prepare goes to the kernel with the turn's wait, or
 * earlier when the ring is full.
 *
 * Provided buffers: with nbufs > 0 the loop registers a ring of nbufs
 * blocks of buf_size bytes as buffer group 0 (IORING_REGISTER_PBUF_RING),
 * so a connection keeps a multishot receive armed for its whole life
 * without holding a buffer while it is idle.  A completion with
 * IORING_CQE_F_BUFFER names its block (io_loop_cqe_buf); the owner copies
 * the bytes out and gives the block back (io_loop_buf_put), at once or
 * after holding it a while.  The blocks are zeroed at set-up, so tools that
 * do not see the kernel write them (valgrind) take them as defined.
 *
 * Batches.  Before each wait the owner's prepare hook may ask for a batch
 * (io_loop_batch): wait for `want` completions, but return with fewer once
 * min_wait_ns has passed after the first (IORING_FEAT_MIN_TIMEOUT, 6.12;
 * earlier kernels wait for one).  A busy thread then wakes once per batch,
 * not once per completion, for at most min_wait_ns added to an answer.
 *
 * Requirements: Linux 6.1 (SINGLE_ISSUER, DEFER_TASKRUN; so also multishot
 * receives, provided-buffer rings, skip-success completions and waits with
 * a timeout).  io_loop_init says -EOPNOTSUPP on older kernels and -ENOSYS or
 * -EPERM where io_uring is missing or disabled; the owner falls back to
 * plain libuv.
 *
 * Ownership and threads: struct io_loop owns its ring and its buffers,
 * io_loop_free releases them (a zeroed or failed struct is fine); the uv
 * loop is the owner's.  Only the thread that runs io_loop_run submits
 * (SINGLE_ISSUER); with cfg.run_elsewhere the loop may be set up on
 * another thread first.
 */
#ifndef DSYS_IO_LOOP_H
#define DSYS_IO_LOOP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "base/invariant.h"
#include "io/uring.h"

enum {
	IO_LOOP_TAG_BITS = 3,
	IO_LOOP_TAGS = 1 << IO_LOOP_TAG_BITS,
	IO_LOOP_TAG_NONE = 0,            /* completions nobody needs */
	IO_LOOP_TAG_UV = IO_LOOP_TAGS - 1, /* the loop's own poll of libuv's fd */
};
#define IO_LOOP_TAG_MASK ((uint64_t)IO_LOOP_TAGS - 1)

/* A completion for tag t: the value the request carried (its tag bits
 * cleared), the result (bytes, or -errno) and the completion's flags. */
typedef void (*io_loop_fn)(void *arg, uint64_t value, int res, uint32_t flags);

struct io_loop;

/* What the owner does around each turn; any may be NULL. */
struct io_loop_hooks {
	void (*prepare)(struct io_loop *l);          /* before the wait: io_loop_batch, wake_ns, io_loop_stop */
	void (*submitting)(struct io_loop *l);       /* just before prepared entries go to the kernel */
	void (*reap_begin)(struct io_loop *l);       /* after the wait, before the completions */
	void (*reap_end)(struct io_loop *l, unsigned n); /* after the n completions of the turn */
};

struct io_loop_config {
	unsigned sq_entries, cq_entries;
	unsigned nbufs, buf_size;        /* provided receive buffers; nbufs 0: none */
	unsigned reap_max;               /* most completions one turn takes; 0: cq_entries */
	unsigned submit_batch;           /* while reaping, submit once this many are prepared; 0: not until the wait */
	bool run_elsewhere;              /* io_loop_run is called by another thread than io_loop_init */
	const struct io_loop_hooks *hooks;
	void *owner;                     /* for the hooks */
};

struct io_loop {
	struct uring ring;
	struct uring_bufs bufs;          /* group 0, when cfg.nbufs */
	uv_loop_t *uv;
	const struct io_loop_hooks *hooks;
	void *owner;
	struct {
		io_loop_fn fn;
		void *arg;
	} on[IO_LOOP_TAGS];
	unsigned reap_max, submit_batch;
	unsigned want;                   /* this turn's wait: completions asked for, */
	uint64_t min_wait_ns;            /* ... and how long a batch is waited for */
	uint64_t wake_ns;                /* uv_hrtime() the wait ends by; 0: libuv's timers only */
	unsigned last;                   /* completions the last turn took */
	bool uv_armed;                   /* the poll of libuv's fd is in the ring */
	bool uv_ready;                   /* ... and fired: libuv has work */
	bool stopping;                   /* io_loop_stop: end once libuv has nothing left */
	_Atomic bool aborted;            /* io_loop_abort: end after this turn, whatever is alive */
};

/* Set up the ring (and the provided buffers) for a loop that runs uv.
 * 0 or -errno: -ENOSYS, -EPERM where io_uring is missing or disabled,
 * -EOPNOTSUPP before Linux 6.1, -EINVAL for bad sizes (nbufs a power of two
 * up to 32768), -ENOMEM. */
int io_loop_init(struct io_loop *l, uv_loop_t *uv, const struct io_loop_config *cfg);
void io_loop_free(struct io_loop *l);

/* Could a loop be set up here?  0, or the -errno io_loop_init gives. */
int io_loop_probe(void);

/* Completions tagged `tag` (1 .. IO_LOOP_TAGS - 2) go to fn(arg, ...). */
void io_loop_on(struct io_loop *l, unsigned tag, io_loop_fn fn, void *arg);

/* Run until io_loop_stop was called and libuv has nothing left alive (no
 * active handle or request, nothing closing).  Called on the thread that
 * owns the loop from then on.  0 or -errno (the ring could not be enabled). */
int io_loop_run(struct io_loop *l);

/* The owner has nothing left in the ring: from now on libuv runs every turn,
 * and the loop ends when it has nothing alive. */
static inline void io_loop_stop(struct io_loop *l)
{
	l->stopping = true;
}

/* End the loop at the end of this turn even though libuv has handles
 * alive or completions are due (uv_stop's counterpart: a process giving up
 * on a drain that never ends).  What is still in the ring stays there; the
 * ring is torn down by io_loop_free. */
static inline void io_loop_abort(struct io_loop *l)
{
	atomic_store(&l->aborted, true);
}

/* For the prepare hook: this turn's wait asks for `want` completions and
 * accepts fewer once min_wait_ns has passed after the first. */
static inline void io_loop_batch(struct io_loop *l, unsigned want, uint64_t min_wait_ns)
{
	l->want = want;
	l->min_wait_ns = min_wait_ns;
}

/* Take the completions there are (at most cfg.reap_max) and hand each to
 * its tag's callback; returns how many.  io_loop_run does this every turn;
 * an owner may also call it to see what already arrived (before a drain). */
unsigned io_loop_reap(struct io_loop *l);

/* Hand every prepared entry to the kernel now (the submitting hook runs
 * first).  0 or -errno; a full kernel queue (-EAGAIN, -EBUSY) is not an
 * error, the entries go with the next wait. */
int io_loop_submit(struct io_loop *l);

/* A zeroed submission entry; a full ring is submitted first. */
static inline struct io_uring_sqe *io_loop_sqe(struct io_loop *l)
{
	struct io_uring_sqe *sqe = uring_sqe(&l->ring);
	if (__builtin_expect(sqe == NULL, 0)) {
		io_loop_submit(l);
		sqe = uring_sqe(&l->ring);
	}
	INVARIANT(sqe != NULL);
	return sqe;
}

/* user_data for a request whose completion goes to tag's callback with
 * value (whose low IO_LOOP_TAG_BITS bits must be 0). */
static inline uint64_t io_loop_data(unsigned tag, uint64_t value)
{
	return value | tag;
}

/* The socket of an entry: fd, or the slot of the ring's registered file
 * table (uring_files_init) when fixed. */
static inline void io_loop_sqe_fd(struct io_uring_sqe *sqe, int fd, bool fixed)
{
	sqe->fd = fd;
	if (fixed)
		sqe->flags |= IOSQE_FIXED_FILE;
}

/* Send len bytes at p (which stay put until the completion).  sqe_flags:
 * e.g. IOSQE_CQE_SKIP_SUCCESS, with MSG_WAITALL in msg_flags so that only a
 * failure completes. */
static inline void io_loop_send(struct io_loop *l, int fd, bool fixed, const void *p, size_t len,
                                int msg_flags, uint8_t sqe_flags, uint64_t data)
{
	struct io_uring_sqe *sqe = io_loop_sqe(l);
	sqe->opcode = IORING_OP_SEND;
	sqe->flags = sqe_flags;
	io_loop_sqe_fd(sqe, fd, fixed);
	sqe->addr = (uint64_t)(uintptr_t)p;
	sqe->len = (uint32_t)len;
	sqe->msg_flags = (uint32_t)msg_flags;
	sqe->user_data = data;
}

/* Arm a multishot receive into the provided buffers: it completes for each
 * arrival with IORING_CQE_F_MORE while it stays armed, and ends (a
 * completion without F_MORE) at the end of the stream, on an error, when
 * cancelled, or with -ENOBUFS when no block was free. */
static inline void io_loop_recv_multishot(struct io_loop *l, int fd, bool fixed, uint64_t data)
{
	struct io_uring_sqe *sqe = io_loop_sqe(l);
	sqe->opcode = IORING_OP_RECV;
	sqe->flags = IOSQE_BUFFER_SELECT;
	io_loop_sqe_fd(sqe, fd, fixed);
	sqe->buf_group = l->bufs.bgid;
	sqe->ioprio = IORING_RECV_MULTISHOT;
	sqe->user_data = data;
}

/* Connect fd to addr (which stays put until the completion). */
static inline void io_loop_connect(struct io_loop *l, int fd, bool fixed,
                                   const struct sockaddr *addr, socklen_t addr_len, uint64_t data)
{
	struct io_uring_sqe *sqe = io_loop_sqe(l);
	sqe->opcode = IORING_OP_CONNECT;
	io_loop_sqe_fd(sqe, fd, fixed);
	sqe->addr = (uint64_t)(uintptr_t)addr;
	sqe->off = addr_len;
	sqe->user_data = data;
}

/* End the request whose user_data is target (its own last completion says
 * so).  The cancel completes only when it found nothing, to tag 0. */
static inline void io_loop_cancel(struct io_loop *l, uint64_t target)
{
	struct io_uring_sqe *sqe = io_loop_sqe(l);
	sqe->opcode = IORING_OP_ASYNC_CANCEL;
	sqe->flags = IOSQE_CQE_SKIP_SUCCESS;
	sqe->addr = target;
	sqe->user_data = IO_LOOP_TAG_NONE;
}

/* Before a socket closes: end every request on it.  Each still completes
 * (-ECANCELED, or its result if it got there first); the socket may be
 * closed, and the memory its requests use reused, only after the last. */
static inline void io_loop_cancel_fd(struct io_loop *l, int fd, bool fixed)
{
	struct io_uring_sqe *sqe = io_loop_sqe(l);
	sqe->opcode = IORING_OP_ASYNC_CANCEL;
	sqe->flags = IOSQE_CQE_SKIP_SUCCESS;
	sqe->fd = fd;
	sqe->cancel_flags = IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_ALL |
	                    (fixed ? IORING_ASYNC_CANCEL_FD_FIXED : 0);
	sqe->user_data = IO_LOOP_TAG_NONE;
}

/* The provided block a receive's completion names, or NULL. */
static inline char *io_loop_cqe_buf(struct io_loop *l, uint32_t flags, unsigned *bid)
{
	if (!(flags & IORING_CQE_F_BUFFER))
		return NULL;
	*bid = flags >> IORING_CQE_BUFFER_SHIFT;
	return uring_buf(&l->bufs, *bid);
}

static inline char *io_loop_buf(struct io_loop *l, unsigned bid)
{
	return uring_buf(&l->bufs, bid);
}

/* Give block bid back to the kernel. */
static inline void io_loop_buf_put(struct io_loop *l, unsigned bid)
{
	uring_buf_put(&l->bufs, bid);
}

#endif
