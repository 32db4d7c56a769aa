/*
 * lock/lock.c -- the front of the lock interface: argument checks, tokens,
 * waiting, and the dispatch to a backend.
 *
 * Design.  A backend knows how to make one attempt of one operation
 * atomically on its store (file.c: a read-modify-write of a state file
 * under flock; redis.c: one Lua script).  Everything that is the same on
 * every store lives here, so that the backends stay small and agree:
 *
 *   - Names are checked once (lock_name_check) before any backend sees
 *     them: 1..256 bytes, no NUL (a C string could not carry it, and
 *     neither could a file name), no '/' (a file name, and a key path
 *     separator).
 *   - Tokens are 128 bits from getrandom(2), in hex: unguessable, so only
 *     the holder (or someone it told) can release or renew.
 *   - Waiting is polling with a doubling backoff and jitter.  Polling is
 *     simple and the same on every store; a notification (Redis pub/sub,
 *     inotify) would hand over faster but adds a second path that must
 *     agree with the first.  The backoff is capped at LOCK_RETRY_MAX_MS so
 *     that a freed lock is noticed within that, and never sleeps past the
 *     caller's wait deadline.
 *   - Every operation is on the store's list until its callback, so
 *     lock_store_close can end the waiting ones with -ECANCELED.
 *
 * Invariant: an op gets exactly one user callback, after which it is
 * unlinked and freed (after its timer, if any, is closed).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include "base/invariant.h"
#include "lock/backend.h"

void lock_options_init(struct lock_options *o)
{
	o->timeout_ms = LOCK_DEFAULT_TIMEOUT_MS;
	o->connect_timeout_ms = 1000;
	o->election = false;
}

uint64_t lock_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int lock_name_check(const char *name, size_t len, const char **why)
{
	if (len == 0) {
		*why = "is empty";
		return -EINVAL;
	}
	if (len > LOCK_MAX_NAME) {
		*why = "is longer than 256 bytes";
		return -EINVAL;
	}
	if (memchr(name, '\0', len)) {
		*why = "contains a NUL byte";
		return -EINVAL;
	}
	if (memchr(name, '/', len)) {
		*why = "contains '/'";
		return -EINVAL;
	}
	return 0;
}

bool lock_token_valid(const char *token)
{
	size_t n = strlen(token);
	if (n != LOCK_TOKEN_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((token[i] >= '0' && token[i] <= '9') || (token[i] >= 'a' && token[i] <= 'f')))
			return false;
	return true;
}

bool lock_err_unreachable(int err)
{
	switch (-err) {
	case ENOTCONN: case ECONNREFUSED: case ECONNRESET: case ETIMEDOUT:
	case ENOBUFS: case EACCES: case EHOSTUNREACH: case ENETUNREACH:
	case ECANCELED: case EPIPE: case ECONNABORTED: case EAGAIN:
		return true;
	}
	return false;
}

/* 128 random bits as 32 hex digits.  getrandom without GRND_NONBLOCK
 * blocks only before the kernel's pool is first seeded (early boot). */
static int make_token(char out[LOCK_TOKEN_LEN + 1])
{
	unsigned char raw[LOCK_TOKEN_LEN / 2];
	size_t got = 0;
	while (got < sizeof raw) {
		ssize_t r = getrandom(raw + got, sizeof raw - got, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)r;
	}
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < sizeof raw; i++) {
		out[2 * i] = hex[raw[i] >> 4];
		out[2 * i + 1] = hex[raw[i] & 15];
	}
	out[LOCK_TOKEN_LEN] = '\0';
	return 0;
}

int lock_store_open(uv_loop_t *loop, const struct store_url *u,
                    const struct lock_options *opt, struct lock_store **out)
{
	struct lock_store *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->loop = loop;
	s->url = *u;
	if (opt)
		s->opt = *opt;
	else
		lock_options_init(&s->opt);
	int r;
	switch (u->kind) {
	case STORE_FILE:
		if (s->opt.election) {
			/* elections beside the locks, in a directory of their own */
			if (mkdir(u->path, 0777) < 0 && errno != EEXIST) {
				r = -errno;
				break;
			}
			if (strlen(s->url.path) + sizeof "/elections" > sizeof s->url.path) {
				r = -ENAMETOOLONG;
				break;
			}
			strcat(s->url.path, "/elections");
		}
		r = lock_file_open(s);
		break;
	case STORE_REDIS:
	case STORE_REDIS_CLUSTER:
		r = lock_redis_open(s);
		break;
	case STORE_ETCD:
		r = lock_etcd_open(s);
		break;
	case STORE_REDLOCK:
		r = lock_redlock_open(s);
		break;
	default:
		r = -EPROTONOSUPPORT;
	}
	if (r < 0) {
		free(s);
		return r;
	}
	INVARIANT(s->be != NULL);
	*out = s;
	return 0;
}

const char *lock_store_last_error(const struct lock_store *s)
{
	return s->be->last_error ? s->be->last_error(s) : "";
}

static void op_link(struct lock_store *s, struct lock_op *op)
{
	op->next = s->ops;
	if (s->ops)
		s->ops->prev = op;
	s->ops = op;
}

static void op_unlink(struct lock_op *op)
{
	struct lock_store *s = op->store;
	if (op->prev)
		op->prev->next = op->next;
	else
		s->ops = op->next;
	if (op->next)
		op->next->prev = op->prev;
	op->prev = op->next = NULL;
}

static void op_free_cb(uv_handle_t *h)
{
	free(h->data);
}

static void op_free(struct lock_op *op)
{
	if (op->timer_init) {
		op->timer.data = op;
		uv_close((uv_handle_t *)&op->timer, op_free_cb);
	} else {
		free(op);
	}
}

/* The user's callback, then the op is gone. */
static void op_finish(struct lock_op *op, int err, const struct lock_holder *h, unsigned n)
{
	op_unlink(op);
	if (op->kind == LOCK_OP_STATUS)
		op->status_cb(op->ud, err, err ? NULL : h, err ? 0 : n);
	else
		op->grant_cb(op->ud, err, err || op->kind == LOCK_OP_RELEASE ? NULL : h);
	op_free(op);
}

static void attempt(struct lock_op *op)
{
	op->sent_ms = lock_now_ms();
	op->store->be->start(op->store, op);   /* op may be gone after this */
}

static void retry_cb(uv_timer_t *t)
{
	attempt(t->data);
}

void lock_op_done(struct lock_op *op, int err, const struct lock_holder *holders, unsigned n)
{
	if (op->kind == LOCK_OP_ACQUIRE && err == -EBUSY && op->wait && !op->store->closing) {
		uint64_t now = uv_hrtime();
		if (now >= op->deadline_ns)
			return op_finish(op, -ETIME, NULL, 0);
		/* backoff with jitter in [b/2, b], never past the deadline */
		uint64_t b = op->backoff_ms;
		uint32_t rnd = 0;
		if (getrandom(&rnd, sizeof rnd, GRND_NONBLOCK) < 0)
			rnd = (uint32_t)now;
		uint64_t delay = b / 2 + rnd % (b / 2 + 1);
		uint64_t left_ms = (op->deadline_ns - now) / 1000000 + 1;
		if (delay > left_ms)
			delay = left_ms;
		op->backoff_ms = op->backoff_ms * 2 > LOCK_RETRY_MAX_MS ? LOCK_RETRY_MAX_MS : op->backoff_ms * 2;
		if (!op->timer_init) {
			uv_timer_init(op->store->loop, &op->timer);
			op->timer.data = op;
			op->timer_init = true;
		}
		uv_timer_start(&op->timer, retry_cb, delay, 0);
		return;
	}
	op_finish(op, err, holders, n);
}

static struct lock_op *op_new(struct lock_store *s, enum lock_op_kind kind, const char *name)
{
	const char *why;
	if (!name || lock_name_check(name, strlen(name), &why) < 0 || s->closing)
		return NULL;
	struct lock_op *op = calloc(1, sizeof *op);
	if (!op)
		return NULL;
	op->store = s;
	op->kind = kind;
	strcpy(op->name, name);
	return op;
}

int lock_acquire(struct lock_store *s, const struct lock_request *rq, lock_grant_fn cb, void *ud)
{
	if (!cb || rq->ttl_ms == 0 || rq->ttl_ms > LOCK_MAX_TTL_MS || rq->limit < 1 ||
	    rq->limit > LOCK_MAX_LIMIT || (rq->owner && strlen(rq->owner) > LOCK_MAX_OWNER))
		return -EINVAL;
	struct lock_op *op = op_new(s, LOCK_OP_ACQUIRE, rq->name);
	if (!op)
		return -EINVAL;
	int r = make_token(op->token);
	if (r < 0) {
		free(op);
		return r;
	}
	snprintf(op->owner, sizeof op->owner, "%s", rq->owner ? rq->owner : "");
	op->ttl_ms = rq->ttl_ms;
	op->limit = rq->limit;
	op->pid = rq->pid;
	op->wait = rq->wait_ms > 0;
	uint64_t now = uv_hrtime();
	op->deadline_ns = rq->wait_ms >= (UINT64_MAX - now) / 1000000 ? UINT64_MAX
	                                                              : now + rq->wait_ms * 1000000;
	op->backoff_ms = LOCK_RETRY_MIN_MS;
	op->grant_cb = cb;
	op->ud = ud;
	op_link(s, op);
	attempt(op);
	return 0;
}

static int token_op(struct lock_store *s, enum lock_op_kind kind, const char *name,
                    const char *token, uint64_t ttl_ms, lock_grant_fn cb, void *ud)
{
	if (!cb || !token || !lock_token_valid(token))
		return -EINVAL;
	if (kind == LOCK_OP_RENEW && (ttl_ms == 0 || ttl_ms > LOCK_MAX_TTL_MS))
		return -EINVAL;
	struct lock_op *op = op_new(s, kind, name);
	if (!op)
		return -EINVAL;
	strcpy(op->token, token);
	op->ttl_ms = ttl_ms;
	op->grant_cb = cb;
	op->ud = ud;
	op_link(s, op);
	attempt(op);
	return 0;
}

int lock_renew(struct lock_store *s, const char *name, const char *token,
               uint64_t ttl_ms, lock_grant_fn cb, void *ud)
{
	return token_op(s, LOCK_OP_RENEW, name, token, ttl_ms, cb, ud);
}

int lock_release(struct lock_store *s, const char *name, const char *token,
                 lock_grant_fn cb, void *ud)
{
	return token_op(s, LOCK_OP_RELEASE, name, token, 0, cb, ud);
}

int lock_status(struct lock_store *s, const char *name, lock_status_fn cb, void *ud)
{
	if (!cb)
		return -EINVAL;
	struct lock_op *op = op_new(s, LOCK_OP_STATUS, name);
	if (!op)
		return -EINVAL;
	op->status_cb = cb;
	op->ud = ud;
	op_link(s, op);
	attempt(op);
	return 0;
}

/* ------------------------------------------------------------ watching */

struct lock_watch {
	struct lock_store *store;
	void *handle;                  /* the backend's, or NULL: polling */
	uv_timer_t timer;              /* the first call, and polling */
	lock_change_fn cb;
	void *ud;
	bool first_done;
};

static void watch_timer_cb(uv_timer_t *t)
{
	struct lock_watch *w = t->data;
	w->first_done = true;
	w->cb(w->ud, 0);
}

struct lock_watch *lock_watch_start(struct lock_store *s, const char *name,
                                    lock_change_fn cb, void *ud)
{
	const char *why;
	if (!name || lock_name_check(name, strlen(name), &why) < 0 || !cb)
		return NULL;
	struct lock_watch *w = calloc(1, sizeof *w);
	if (!w)
		return NULL;
	w->store = s;
	w->cb = cb;
	w->ud = ud;
	uv_timer_init(s->loop, &w->timer);
	w->timer.data = w;
	if (s->be->watch_start) {
		w->handle = s->be->watch_start(s, name, cb, ud);
		if (!w->handle) {
			uv_close((uv_handle_t *)&w->timer, op_free_cb);
			return NULL;
		}
		uv_timer_start(&w->timer, watch_timer_cb, 0, 0);
	} else {
		uv_timer_start(&w->timer, watch_timer_cb, 0, LOCK_WATCH_POLL_MS);
	}
	return w;
}

void lock_watch_stop(struct lock_watch *w)
{
	if (!w)
		return;
	if (w->handle && !w->store->closing)
		w->store->be->watch_stop(w->handle);
	uv_timer_stop(&w->timer);
	uv_close((uv_handle_t *)&w->timer, op_free_cb);
}

void lock_store_close(struct lock_store *s)
{
	if (!s)
		return;
	s->closing = true;
	/* Waiting ops (timer armed, nothing in flight) end here; ops in
	 * flight end through the backend's close (redis: -ECANCELED). */
	struct lock_op *op = s->ops, *next;
	for (; op; op = next) {
		next = op->next;
		if (op->timer_init && uv_is_active((uv_handle_t *)&op->timer)) {
			uv_timer_stop(&op->timer);
			op_finish(op, -ECANCELED, NULL, 0);
		}
	}
	s->be->close(s);
	INVARIANT(s->ops == NULL);
	free(s);
}
