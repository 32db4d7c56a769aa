/*
 * counter/counter.h -- named 64-bit counters on any store: the backend interface
 * of dsys-counter.
 *
 * A store is opened once from a parsed store URL (store_url.h) and shared
 * by every loop thread of a program; each loop thread then attaches its
 * own handle, on which it issues operations:
 *
 *     struct counter_store *s;
 *     counter_store_open(&url, &opts, &s);     // mem:, file:PATH, redis://, redis-cluster://
 *     struct counter *c;
 *     counter_attach(s, loop, &c);             // once per loop thread
 *     counter_incr(c, "hits", 4, 1, incr_cb, req);
 *     ...
 *     counter_detach(c);                       // on the loop thread; run the loop once more
 *     counter_store_close(s);                  // after every handle is detached
 *
 * Operations.  incr adds `by` (may be negative) and hands out the value
 * after it: concurrent increments of one key get distinct answers, and the
 * answers of N increments by 1 of a fresh key are a permutation of 1..N.
 * get reads, set stores, del removes, list walks the keys that start with
 * a prefix.  Keys are byte strings of 1..COUNTER_MAX_KEY bytes; a key is
 * borrowed only during the call (backends copy what they keep).
 *
 * Callbacks.  Every call that returns 0 gets exactly one callback
 * (list: one or more, the last with done set).  It may come before the
 * call returns (mem: and a failed argument check of any backend answer at
 * once) or later from the handle's loop (file: after the fsync that
 * covers the operation, redis: after the reply): callers must handle
 * both.  err is 0, or a negative errno value:
 *   -ENOENT     get/del of an absent key
 *   -EOVERFLOW  incr would pass the int64 range; the counter is unchanged
 *   -EINVAL     the stored value is not an integer (redis: a key of
 *               another program); or a bad key (empty, too long)
 *   -ENOSPC     mem:/file: the table is full (--max-keys)
 *   -EROFS      file: a change on a store opened read_only
 *   -EIO        file: the log could not be written or synced; the store
 *               refuses writes from then on (its state may be ahead of
 *               the disk)
 *   anything else (ENOTCONN, ECONNREFUSED, ECONNRESET, ETIMEDOUT, ENOBUFS,
 *   EACCES, EHOSTUNREACH, ECANCELED): the backend is unreachable or did
 *   not answer in time (counter_err_unreachable() tells).
 *
 * Threads.  counter_store_open/close on one thread; each struct counter
 * belongs to the loop thread it was attached on.  mem: and file: share one
 * table among all handles (lock-free increments for mem:, one mutex for
 * file:); redis makes one client per handle.
 *
 * Memory.  The store owns the table, the log and its thread; a handle owns
 * its per-loop state.  No allocation per operation on incr/get/set/del
 * except a new key's entry (mem:, file:) and hiredis' own reply objects;
 * list allocates its batch.
 */
#ifndef DSYS_COUNTER_H
#define DSYS_COUNTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "store/url.h"

#define COUNTER_MAX_KEY 512
#define COUNTER_DEFAULT_MAX_KEYS (1u << 20)          /* mem:, file: */
#define COUNTER_DEFAULT_COMPACT_BYTES (64ull << 20)  /* file: log size that triggers compaction */
#define COUNTER_DEFAULT_TIMEOUT_MS 2000              /* redis: --backend-timeout */
#define COUNTER_DEFAULT_WAIT_MS 10000                /* file: --wait for the store's lock */

struct counter_options {
	uint32_t max_keys;         /* mem:, file: table capacity (rounded up to a power of two) */
	uint64_t compact_bytes;    /* file: compact when the log grows past this; 0 = never */
	unsigned timeout_ms;       /* redis: command timeout */
	unsigned connect_timeout_ms; /* redis: connection attempt */
	unsigned max_pending;      /* redis: commands in flight per handle */
	unsigned wait_ms;          /* file: how long open waits for a DIR another process holds */
	bool read_only;            /* file: open for get and list only (a shared lock; nothing
	                              written, so a store on read-only media works); incr, set
	                              and del answer -EROFS */
};

void counter_options_init(struct counter_options *o);

struct counter_store;
struct counter;

typedef void (*counter_fn)(void *ud, int err, int64_t value);

struct counter_item {
	const char *key;           /* not NUL-terminated; valid during the callback */
	size_t key_len;
	int64_t value;
};

/* items[0..n) (any order), and done on the last call; err < 0 ends the
 * walk (done is then true). */
typedef void (*counter_list_fn)(void *ud, int err, const struct counter_item *items,
                                size_t n, bool done);

/*
 * Open the store of u (STORE_MEM, STORE_FILE, STORE_REDIS,
 * STORE_REDIS_CLUSTER).  file: reads its log now (recovery), so errors
 * there come back here: -errno of the failed call, -EBADMSG for a log
 * whose middle is damaged.  err (may be NULL) receives a message naming
 * the problem.  Returns 0, -EPROTONOSUPPORT for another kind, or
 * a negative errno value.
 */
int counter_store_open(const struct store_url *u, const struct counter_options *o,
                       struct counter_store **out, char *err, size_t err_size);
void counter_store_close(struct counter_store *s);   /* NULL is a no-op */
enum store_kind counter_store_kind(const struct counter_store *s);

int counter_attach(struct counter_store *s, uv_loop_t *loop, struct counter **out);
/* Detach: pending operations get their callbacks (-ECANCELED for redis);
 * handles are closed, so the loop must run once more. */
void counter_detach(struct counter *c);

int counter_incr(struct counter *c, const char *key, size_t key_len, int64_t by,
                 counter_fn cb, void *ud);
int counter_get(struct counter *c, const char *key, size_t key_len, counter_fn cb, void *ud);
int counter_set(struct counter *c, const char *key, size_t key_len, int64_t value,
                counter_fn cb, void *ud);
/* value in the callback: the value the key had */
int counter_del(struct counter *c, const char *key, size_t key_len, counter_fn cb, void *ud);
int counter_list(struct counter *c, const char *prefix, size_t prefix_len,
                 counter_list_fn cb, void *ud);

/*
 * One round trip that proves the store answers and is what its URL says:
 * cb(ud, 0, 0), or an error -- the unreachable ones, or -EDOM (redis: the
 * URL's /DB is past the server's databases), -EOPNOTSUPP (redis-cluster://
 * pointed at a Redis with cluster support disabled).  mem: and file:
 * answer 0 at once.  Programs call it once after attaching, to refuse a
 * wrong URL before any operation.
 */
int counter_check(struct counter *c, counter_fn cb, void *ud);
/* Is the error one of a store URL that names what is not there (-EDOM,
 * -EOPNOTSUPP)?  Such a store will never work: a usage error. */
bool counter_err_config(int err);

/* Is err one of "the backend is unreachable or timed out"? */
bool counter_err_unreachable(int err);

/* A short text for err in the terms of counters ("not found",
 * "increment would overflow int64", "backend unreachable: ..."). */
const char *counter_strerror(int err);

/* Backend operations, for the implementations only. */
struct counter_ops {
	int (*attach)(struct counter_store *s, uv_loop_t *loop, struct counter **out);
	void (*detach)(struct counter *c);
	int (*incr)(struct counter *c, const char *key, size_t key_len, int64_t by, counter_fn cb, void *ud);
	int (*get)(struct counter *c, const char *key, size_t key_len, counter_fn cb, void *ud);
	int (*set)(struct counter *c, const char *key, size_t key_len, int64_t value, counter_fn cb, void *ud);
	int (*del)(struct counter *c, const char *key, size_t key_len, counter_fn cb, void *ud);
	int (*list)(struct counter *c, const char *prefix, size_t prefix_len, counter_list_fn cb, void *ud);
	void (*close)(struct counter_store *s);
};

/* Every store and handle starts with these. */
struct counter_store {
	const struct counter_ops *ops;
	enum store_kind kind;
};
struct counter {
	const struct counter_ops *ops;
	struct counter_store *store;
};

int counter_mem_open(const struct counter_options *o, struct counter_store **out);
int counter_file_open(const char *dir, const struct counter_options *o,
                      struct counter_store **out, char *err, size_t err_size);
int counter_redis_open(const struct store_url *u, const struct counter_options *o,
                       struct counter_store **out);
int counter_redis_check(struct counter *c, counter_fn cb, void *ud);

/* ------------------------------------------------------------ the table */

/*
 * The in-memory table mem: is and file: keeps: fixed capacity, open
 * addressing with linear probing, slots never move.  A key, once inserted,
 * keeps its slot for the table's life (del marks it absent), so lookups
 * and increments of existing keys are lock-free (atomic loads and a CAS on
 * the value); inserting a new key is a CAS on the slot's key pointer.
 */
struct counter_table;
struct counter_table *counter_table_new(uint32_t max_keys);
void counter_table_free(struct counter_table *t);
/* 0 and *value after; -EOVERFLOW, -ENOSPC, -ENOMEM */
int counter_table_incr(struct counter_table *t, const char *key, size_t len, int64_t by, int64_t *value);
int counter_table_get(struct counter_table *t, const char *key, size_t len, int64_t *value);
int counter_table_set(struct counter_table *t, const char *key, size_t len, int64_t value);
int counter_table_del(struct counter_table *t, const char *key, size_t len, int64_t *old);
/* Present keys with prefix (all for plen 0), sorted by key; *items is
 * malloc'd and the caller's to free.  The keys point into the table and
 * stay valid until counter_table_free (a key block is never freed before
 * its table).  Returns the count or -ENOMEM. */
long counter_table_list(struct counter_table *t, const char *prefix, size_t plen,
                        struct counter_item **items);
/* counter_table_list answered as a list operation: one cb with every
 * item and done set, or with the error. */
void counter_table_walk(struct counter_table *t, const char *prefix, size_t plen,
                        counter_list_fn cb, void *ud);
uint32_t counter_table_count(struct counter_table *t);   /* present keys */

#endif
