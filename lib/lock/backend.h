/*
 * lock/backend.h -- what lock.c and the backends (file.c, redis.c) share;
 * not for programs.
 *
 * lock.c validates arguments, makes tokens, keeps the list of pending
 * operations and does the waiting; a backend does one attempt of one
 * operation and ends it with lock_op_done, from inside its start function
 * (file:) or later from the loop (redis).  After lock_op_done the op is
 * gone: a backend touches it no more.
 */
#ifndef DSYS_LOCK_BACKEND_H
#define DSYS_LOCK_BACKEND_H

#include "lock/lock.h"

enum lock_op_kind { LOCK_OP_ACQUIRE, LOCK_OP_RENEW, LOCK_OP_RELEASE, LOCK_OP_STATUS };

struct lock_op {
	struct lock_store *store;
	enum lock_op_kind kind;
	char name[LOCK_MAX_NAME + 1];
	char token[LOCK_TOKEN_LEN + 1];
	char owner[LOCK_MAX_OWNER + 1];
	uint64_t ttl_ms;
	unsigned limit;
	pid_t pid;
	uint64_t sent_ms;              /* Unix ms when this attempt started */
	uint64_t deadline_ns;          /* uv_hrtime() at which a wait gives up */
	bool wait;
	unsigned backoff_ms;
	bool timer_init;
	uv_timer_t timer;              /* the wait between attempts */
	lock_grant_fn grant_cb;
	lock_status_fn status_cb;
	void *ud;
	void *backend_data;            /* a backend's per-op state, its to free */
	struct lock_op *prev, *next;   /* the store's pending operations */
};

struct lock_backend {
	const char *scheme;
	/* One attempt; ends with lock_op_done (now or later). */
	void (*start)(struct lock_store *s, struct lock_op *op);
	/* Cancel what is in flight (redis: free the client, whose callbacks
	 * end their ops with -ECANCELED) and free the backend state. */
	void (*close)(struct lock_store *s);
	const char *(*last_error)(const struct lock_store *s);
	/* Optional: call cb(ud, 0) on every change of name's keys (etcd);
	 * NULL: lock.c polls.  Returns the backend's handle or NULL. */
	void *(*watch_start)(struct lock_store *s, const char *name, lock_change_fn cb, void *ud);
	void (*watch_stop)(void *handle);
};

struct lock_store {
	uv_loop_t *loop;
	const struct lock_backend *be;
	void *impl;                    /* the backend's */
	struct lock_options opt;
	struct store_url url;
	struct lock_op *ops;           /* pending, for close */
	bool closing;
};

/* End one attempt.  holders: for acquire/renew the one grant (n 1), for
 * status the list; NULL/0 on error and for release. */
void lock_op_done(struct lock_op *op, int err, const struct lock_holder *holders, unsigned n);

int lock_file_open(struct lock_store *s);
int lock_redis_open(struct lock_store *s);
int lock_etcd_open(struct lock_store *s);
int lock_redlock_open(struct lock_store *s);

#endif
