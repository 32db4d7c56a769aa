/*
 * lock/lock.h -- named locks and semaphores with fencing tokens on any
 * store: the backend interface of dsys-lock.
 *
 * A store is opened from a parsed store URL (store/url.h) on one libuv
 * loop; every operation answers through a callback:
 *
 *     struct lock_store *s;
 *     lock_store_open(loop, &url, &opts, &s);      // file:DIR, redis://, redis-cluster://, etcd://
 *     struct lock_request rq = { .name = "backup", .ttl_ms = 30000, .limit = 1,
 *                                .owner = "host:42", .wait_ms = LOCK_WAIT_FOREVER };
 *     lock_acquire(s, &rq, granted_cb, ctx);       // -> a token and a fence
 *     lock_renew(s, "backup", token, 30000, renewed_cb, ctx);
 *     lock_release(s, "backup", token, released_cb, ctx);
 *     lock_store_close(s);                          // then run the loop once more
 *
 * What a lock is.  A name (1..LOCK_MAX_NAME bytes, no NUL, no '/') has at
 * most `limit` holders at once (1: a mutex; N: a counting semaphore).  A
 * grant is a random token (LOCK_TOKEN_LEN hex digits, from getrandom) that
 * holds until it is released, or until its TTL passes without a renewal.
 * Only the token releases or renews its grant: anyone else gets -ENOENT and
 * nothing changes.  Each grant of a name also gets a fence: a 64-bit
 * number that grows with every grant of that name on that store, kept
 * durably (file: fsync'd, redis: an INCR in the same script as the grant),
 * so that a downstream store can refuse the writes of a holder whose grant
 * has passed to someone else (the holder may not know yet: a process can
 * be paused for longer than its TTL).
 *
 * Waiting.  An acquire with wait_ms > 0 tries again while the name is
 * busy, with a backoff from LOCK_RETRY_MIN_MS doubling to
 * LOCK_RETRY_MAX_MS (plus jitter, so contenders do not move in step), and
 * gives up with -ETIME when wait_ms has passed.  The backoff lives here,
 * not in the backends: a backend only tries once.
 *
 * Callbacks.  Every call that returns 0 gets exactly one callback.  It may
 * come before the call returns (file: works synchronously) or later from
 * the loop (redis: after the reply, waits: after a timer): callers handle
 * both.  err is 0, or a negative errno value:
 *   -EBUSY       acquire without waiting: the name has `limit` holders
 *   -ETIME       acquire: still busy when wait_ms passed
 *   -ENOENT      release/renew: this token holds no grant of the name
 *                (never held, released, or expired)
 *   -EINVAL      a bad name, TTL or limit (lock_name_check says why), or
 *                a name this backend cannot store (redis: one that
 *                starts with '}', whose hash tag would be empty)
 *   -EPROTO      the store holds something under the lock's keys that is
 *                not ours (another program's key, a damaged state file)
 *   -EIO, -EACCES, -ENOSPC...  file: the state could not be read/written
 *   anything lock_err_unreachable() accepts: the backend did not answer
 *                (connection refused or lost, timed out): the outcome of
 *                an acquire or release in flight is then unknown.
 * The holder passed to a grant callback (acquire, renew) is valid only
 * during the callback; release's callback gets NULL.
 *
 * Memory.  The store owns its backend (the Redis client, the directory
 * handle); each operation allocates one small record, freed after its
 * callback.  lock_store_close ends every pending operation with
 * -ECANCELED before it returns.
 *
 * Threads.  A store belongs to its loop's thread.
 */
#ifndef DSYS_LOCK_H
#define DSYS_LOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <uv.h>

#include "store/url.h"

#define LOCK_MAX_NAME 256
#define LOCK_MAX_OWNER 256
#define LOCK_TOKEN_LEN 32                  /* hex digits: 128 random bits */
#define LOCK_MAX_LIMIT 1024                /* holders of one name at most */
#define LOCK_MAX_TTL_MS (7ull * 24 * 3600 * 1000)
#define LOCK_WAIT_FOREVER UINT64_MAX
#define LOCK_RETRY_MIN_MS 5
#define LOCK_RETRY_MAX_MS 200
#define LOCK_DEFAULT_TIMEOUT_MS 2000       /* redis command / file flock */

struct lock_options {
	unsigned timeout_ms;           /* redis: a command unanswered this long fails;
	                                  file: waiting for the state file's flock */
	unsigned connect_timeout_ms;   /* redis: a connection attempt */
	bool election;                 /* the store holds elections, not locks:
	                                  their own namespace (file: DIR/elections,
	                                  redis: dsys/elections/{NAME}, etcd:
	                                  dsys/elections/NAME/ in etcdctl elect's
	                                  layout, the owner as the raw value) */
};
void lock_options_init(struct lock_options *o);

struct lock_request {
	const char *name;              /* NUL-terminated, lock_name_check'ed */
	uint64_t ttl_ms;               /* 1..LOCK_MAX_TTL_MS */
	unsigned limit;                /* 1..LOCK_MAX_LIMIT holders */
	const char *owner;             /* free text for status, < LOCK_MAX_OWNER bytes */
	pid_t pid;                     /* file: the grant also ends when this process
	                                  dies (0: by TTL only); ignored elsewhere */
	uint64_t wait_ms;              /* 0: try once; LOCK_WAIT_FOREVER */
};

/* One grant, as a backend reports it. */
struct lock_holder {
	char name[LOCK_MAX_NAME + 1];
	char token[LOCK_TOKEN_LEN + 1];
	char owner[LOCK_MAX_OWNER + 1];
	uint64_t fence;
	uint64_t ttl_ms;               /* the TTL of the grant (renew: the new one) */
	uint64_t expires_ms;           /* Unix ms by this machine's clock, an
	                                  underestimate: the TTL counted from
	                                  before the request was sent */
	int64_t pid;                   /* file: the bound process, 0 for none;
	                                  -1 where unknown */
	char lease[17];                /* etcd: the lease id in hex; "" elsewhere */
};

struct lock_store;

typedef void (*lock_grant_fn)(void *ud, int err, const struct lock_holder *h);
/* status: holders[0..n), n == 0 when nobody holds the name. */
typedef void (*lock_status_fn)(void *ud, int err, const struct lock_holder *holders, unsigned n);

/* Open a store: u's kind STORE_FILE (the directory is made if missing),
 * STORE_REDIS, STORE_REDIS_CLUSTER, STORE_REDLOCK (lock/redlock.c: a
 * majority of independent servers; no semaphores) or STORE_ETCD
 * (lock/etcd.c: waiting there is a watch of the key ahead, not lock.c's
 * polling).  opt NULL means the defaults.
 * Returns 0, or -EPROTONOSUPPORT for other kinds, -ENOMEM, or the errno of
 * making/opening the directory. */
int lock_store_open(uv_loop_t *loop, const struct store_url *u,
                    const struct lock_options *opt, struct lock_store **out);
/* NULL is a no-op.  Pending operations get -ECANCELED first; the loop must
 * run once more afterwards (closed handles). */
void lock_store_close(struct lock_store *s);
/* The store's last connection problem as text ("" when none), for the one
 * line a program prints when lock_err_unreachable(err). */
const char *lock_store_last_error(const struct lock_store *s);

int lock_acquire(struct lock_store *s, const struct lock_request *rq,
                 lock_grant_fn cb, void *ud);
int lock_renew(struct lock_store *s, const char *name, const char *token,
               uint64_t ttl_ms, lock_grant_fn cb, void *ud);
int lock_release(struct lock_store *s, const char *name, const char *token,
                 lock_grant_fn cb, void *ud);
int lock_status(struct lock_store *s, const char *name, lock_status_fn cb, void *ud);
/* All four return 0, or -EINVAL (a bad argument, checked before anything
 * is sent), -ENOMEM, without calling cb. */

/* Follow a name's holders: cb(ud, 0) whenever they may have changed, and
 * once at the start; the caller then reads them with lock_status.  etcd:
 * a watch of the name's keys (no polling); other stores: every
 * LOCK_WATCH_POLL_MS.  cb(ud, err) with err < 0 ends it (the caller must
 * then still lock_watch_stop).  Returns NULL on -ENOMEM or a bad name. */
#define LOCK_WATCH_POLL_MS 100
typedef void (*lock_change_fn)(void *ud, int err);
struct lock_watch;
struct lock_watch *lock_watch_start(struct lock_store *s, const char *name,
                                    lock_change_fn cb, void *ud);
void lock_watch_stop(struct lock_watch *w);   /* NULL is a no-op */

/* Is name a valid lock name?  0, or -EINVAL with *why ("is empty", "is
 * longer than 256 bytes", "contains '/'", "contains a NUL byte"). */
int lock_name_check(const char *name, size_t len, const char **why);
/* Is token LOCK_TOKEN_LEN lowercase hex digits? */
bool lock_token_valid(const char *token);

/* Did err come from a store that could not be reached or did not answer? */
bool lock_err_unreachable(int err);

/* Unix time in ms (CLOCK_REALTIME). */
uint64_t lock_now_ms(void);

#endif
