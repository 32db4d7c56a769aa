/*
 * io/loop.c -- the io_uring loop driver: set-up, the turn, dispatch.
 *
 * A turn (io_loop_run): run libuv if it has work; arm the poll of its epoll
 * fd if it is not armed; let the owner prepare (its batch, its own wake-up
 * instant); then one io_uring_enter that submits everything prepared since
 * the last one and waits -- for the batch, until libuv's next timer or the
 * owner's wake_ns, whichever comes first; then hand every completion to its
 * tag's callback.  Where the thread has nothing to wait for (libuv says its
 * timeout is 0), the wait asks for no completion and returns at once.
 *
 * The ring is set up with SINGLE_ISSUER | DEFER_TASKRUN: completions are
 * posted only while the owning thread waits, which is why every wait of
 * the thread must be this one (a thread on this loop never sleeps in
 * epoll_wait).  Set up on another thread (a server reports io_uring errors
 * before it binds, on its main thread), the ring starts disabled
 * (IORING_SETUP_R_DISABLED) and the running thread enables it, becoming the
 * single issuer.  That thread also registers the ring's fd, so each
 * io_uring_enter skips the fd lookup (in a multi-threaded process an
 * atomic operation).
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "io/loop.h"

/* Tags nobody set: their completions are dropped (a call, not a test per
 * completion). */
static void unwanted(void *arg, uint64_t value, int res, uint32_t flags)
{
	(void)arg;
	(void)value;
	(void)res;
	(void)flags;
}

static void uv_polled(void *arg, uint64_t value, int res, uint32_t flags)
{
	(void)value;
	(void)res;
	(void)flags;
	struct io_loop *l = arg;
	l->uv_ready = true;   /* one-shot: re-armed after libuv has run */
}

int io_loop_init(struct io_loop *l, uv_loop_t *uv, const struct io_loop_config *cfg)
{
	memset(l, 0, sizeof *l);
	l->ring.fd = -1;
	if (cfg->nbufs && ((cfg->nbufs & (cfg->nbufs - 1)) || cfg->nbufs > 32768 ||
	                   cfg->buf_size == 0))
		return -EINVAL;
	uint32_t flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
	if (cfg->run_elsewhere)
		flags |= IORING_SETUP_R_DISABLED;
	int r = uring_init_flags(&l->ring, cfg->sq_entries, cfg->cq_entries, flags);
	if (r == -EINVAL)
		r = -EOPNOTSUPP;   /* before 6.1 */
	if (r < 0)
		return r;
	if (!(l->ring.features & IORING_FEAT_CQE_SKIP) || !(l->ring.features & IORING_FEAT_EXT_ARG)) {
		r = -EOPNOTSUPP;
		goto fail;
	}
	if (cfg->nbufs) {
		r = uring_bufs_init(&l->ring, &l->bufs, 0, cfg->nbufs, cfg->buf_size);
		if (r < 0)
			goto fail;
	}
	l->uv = uv;
	l->hooks = cfg->hooks;
	l->owner = cfg->owner;
	l->reap_max = cfg->reap_max ? cfg->reap_max : cfg->cq_entries;
	l->submit_batch = cfg->submit_batch;
	for (unsigned i = 0; i < IO_LOOP_TAGS; i++)
		l->on[i].fn = unwanted;
	l->on[IO_LOOP_TAG_UV].fn = uv_polled;
	l->on[IO_LOOP_TAG_UV].arg = l;
	return 0;
fail:
	io_loop_free(l);
	return r;
}

void io_loop_free(struct io_loop *l)
{
	uring_bufs_free(&l->ring, &l->bufs);
	uring_free(&l->ring);
	memset(l, 0, sizeof *l);
	l->ring.fd = -1;
}

int io_loop_probe(void)
{
	struct io_loop l;
	struct io_loop_config cfg = { .sq_entries = 4, .cq_entries = 8, .nbufs = 1, .buf_size = 64 };
	int r = io_loop_init(&l, NULL, &cfg);
	io_loop_free(&l);
	return r;
}

void io_loop_on(struct io_loop *l, unsigned tag, io_loop_fn fn, void *arg)
{
	INVARIANT(tag > IO_LOOP_TAG_NONE && tag < IO_LOOP_TAG_UV);
	l->on[tag].fn = fn;
	l->on[tag].arg = arg;
}

int io_loop_submit(struct io_loop *l)
{
	if (l->hooks && l->hooks->submitting)
		l->hooks->submitting(l);
	if (l->ring.to_submit == 0)
		return 0;
	int r = uring_submit(&l->ring);
	if (r == -EAGAIN || r == -EBUSY)
		return 0;
	if (r < 0) {
		log_warn("io_uring_enter: %s", strerror(-r));
		return r;
	}
	return 0;
}

unsigned io_loop_reap(struct io_loop *l)
{
	unsigned n = 0;
	unsigned submit_at = l->submit_batch ? l->submit_batch : UINT_MAX;
	struct io_uring_cqe *cqe;
	while (n < l->reap_max && (cqe = uring_peek(&l->ring)) != NULL) {
		uint64_t ud = cqe->user_data;
		int res = cqe->res;
		uint32_t flags = cqe->flags;
		uring_advance(&l->ring);
		unsigned tag = (unsigned)(ud & IO_LOOP_TAG_MASK);
		l->on[tag].fn(l->on[tag].arg, ud & ~IO_LOOP_TAG_MASK, res, flags);
		n++;
		/* a long batch sends its answers in parts, so the peers start
		 * on the first while the rest are still being made */
		if (l->ring.to_submit >= submit_at)
			io_loop_submit(l);
	}
	return n;
}

int io_loop_run(struct io_loop *l)
{
	if (l->ring.setup_flags & IORING_SETUP_R_DISABLED) {
		int e = uring_enable(&l->ring);
		if (e < 0)
			return e;
	}
	uring_register_ring(&l->ring);   /* optional: the fd works without it */
	const struct io_loop_hooks *h = l->hooks;
	bool run_uv = true;
	for (;;) {
		if (run_uv) {
			run_uv = false;
			l->uv_ready = false;
			int alive = uv_run(l->uv, UV_RUN_NOWAIT);
			if ((!alive && l->stopping) || atomic_load(&l->aborted))
				break;
		}
		if (!l->uv_armed) {
			struct io_uring_sqe *sqe = io_loop_sqe(l);
			sqe->opcode = IORING_OP_POLL_ADD;
			sqe->fd = uv_backend_fd(l->uv);
			sqe->poll32_events = POLLIN;
			sqe->user_data = IO_LOOP_TAG_UV;
			l->uv_armed = true;
		}
		l->want = 1;
		l->min_wait_ns = 0;
		if (h && h->prepare)
			h->prepare(l);
		int to = uv_backend_timeout(l->uv);
		uint64_t timeout_ns = to < 0 ? UINT64_MAX : (uint64_t)to * 1000000u;
		if (to == 0)
			l->want = 0;
		if (l->wake_ns) {
			uint64_t now = uv_hrtime();
			uint64_t left = l->wake_ns > now ? l->wake_ns - now : 0;
			if (left < timeout_ns)
				timeout_ns = left;
		}
		if (h && h->submitting)
			h->submitting(l);
		uint64_t start = uv_now(l->uv);
		int r = uring_submit_wait(&l->ring, l->want, l->min_wait_ns, timeout_ns);
		if (r < 0 && r != -EAGAIN && r != -EBUSY && r != -EINTR)
			log_warn("io_uring_enter: %s", strerror(-r));
		uv_update_time(l->uv);
		if (h && h->reap_begin)
			h->reap_begin(l);
		unsigned n = io_loop_reap(l);
		if (h && h->reap_end)
			h->reap_end(l, n);
		l->last = n;
		if (l->uv_ready) {
			l->uv_armed = false;
			run_uv = true;
		}
		if (to >= 0 && uv_now(l->uv) - start >= (uint64_t)to)
			run_uv = true;    /* a timer is due */
		if (l->stopping || to == 0 || atomic_load(&l->aborted))
			run_uv = true;
	}
	uring_unregister_ring(&l->ring);
	return 0;
}
