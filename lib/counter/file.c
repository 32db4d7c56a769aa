/*
 * counter/file.c -- file:DIR counters: the lock-free table of mem: kept
 * crash-safe by an append-only log, group-committed.
 *
 * State.  The counters live in a struct counter_table in memory, as with
 * mem:.  Every change is also a record in DIR/log:
 *
 *     u32 crc32c(of what follows) | u32 n | u8 op | i64 value | key[n - 9]
 *
 * (little-endian), op SET (the key's value after the change: incr and set
 * both write it) or DEL.  Records hold values, not deltas, so replaying the
 * log in order rebuilds the table exactly, and one record covers any
 * operation.
 *
 * The log is lib/store/wal (see wal.h): group commit by its sync thread,
 * recovery with torn tails cut off and damage refused, compaction by
 * snapshot and rename, one process at a time by flock.  The log's mutex is
 * the store's: a change to the table and its record are made under it
 * together.  An operation appends its record, takes the record's sequence
 * number, and waits in its loop's queue until the log's durable sequence
 * number reaches it; the log's synced hook wakes every loop (uv_async_send)
 * after each group.  So an answer leaves only after its record is durable,
 * and kill -9 loses nothing acknowledged.  get waits for the changes it can
 * see to be durable too (it never reports a value a crash could take back);
 * list answers at once.  A snapshot holds every present counter as a SET
 * record, so deleted keys give their table slots back after a restart.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/bytes.h"
#include "counter/counter.h"
#include "base/invariant.h"
#include "base/log.h"
#include "store/wal.h"

enum { REC_SET = 1, REC_DEL = 2 };
#define REC_FIXED 9         /* op + value, then the key */

/* ------------------------------------------------------------ records */

/* One change as a log record: op | i64 value | key (lib/store/wal frames it). */
static void rec_parts(unsigned char fixed[REC_FIXED], struct iovec parts[2], int op,
                      const char *key, size_t len, int64_t value)
{
	fixed[0] = (unsigned char)op;
	le64_put(fixed + 1, (uint64_t)value);
	parts[0] = (struct iovec){ fixed, REC_FIXED };
	parts[1] = (struct iovec){ (void *)key, len };
}

/* ------------------------------------------------------------ the store */

struct fop {
	struct fop *next;
	uint64_t seq;                 /* durable once the log's durable seq reaches it */
	counter_fn cb;
	void *ud;
	int err;
	int64_t value;
};

struct fhandle {
	struct counter base;
	struct file_store *fs;
	uv_async_t async;
	struct fop *head, *tail, *free;
	struct fhandle *next;     /* in fs->handles, under the log's mutex */
};

struct file_store {
	struct counter_store base;
	struct counter_table *table;
	struct wal *wal;              /* its mutex orders table changes with appends */
	struct fhandle *handles;
	bool read_only;               /* opened for get and list: changes are refused */
};

static const struct counter_ops file_ops;

/* The log's synced hook: a group is durable (or the log failed). */
static void notify_all(void *ud)
{
	struct file_store *fs = ud;
	for (struct fhandle *h = fs->handles; h; h = h->next)
		uv_async_send(&h->async);
}

/* The log's snapshot hook: every present counter as a SET record. */
static int snapshot(void *ud, struct buf *out)
{
	struct file_store *fs = ud;
	struct counter_item *items = NULL;
	long n = counter_table_list(fs->table, "", 0, &items);
	if (n < 0)
		return (int)n;
	for (long i = 0; i < n; i++) {
		unsigned char fixed[REC_FIXED];
		struct iovec parts[2];
		rec_parts(fixed, parts, REC_SET, items[i].key, items[i].key_len, items[i].value);
		wal_record_put(out, parts, 2);
	}
	free(items);
	return 0;
}

/* The log's replay hook: one record back into the table. */
static int replay_one(void *ud, const unsigned char *rec, size_t len)
{
	struct file_store *fs = ud;
	if (len <= REC_FIXED || len > REC_FIXED + COUNTER_MAX_KEY ||
	    (rec[0] != REC_SET && rec[0] != REC_DEL))
		return -EBADMSG;
	const char *key = (const char *)rec + REC_FIXED;
	size_t klen = len - REC_FIXED;
	int64_t old;
	if (rec[0] == REC_DEL) {
		counter_table_del(fs->table, key, klen, &old);   /* absent is fine */
		return 0;
	}
	int e = counter_table_set(fs->table, key, klen, (int64_t)le64_get(rec + 1));
	return e == -ENOSPC ? -EOVERFLOW : e;
}

/* Answer the ops of h that are durable (all of them, -EIO, once failed). */
static void handle_flush(struct fhandle *h)
{
	uint64_t durable = wal_durable(h->fs->wal);
	int failed = wal_failed(h->fs->wal);
	while (h->head && (h->head->seq <= durable || failed)) {
		struct fop *o = h->head;
		h->head = o->next;
		if (!h->head)
			h->tail = NULL;
		counter_fn cb = o->cb;
		void *ud = o->ud;
		int err = o->seq <= durable ? o->err : -EIO;
		int64_t v = o->value;
		o->next = h->free;
		h->free = o;
		cb(ud, err, v);
	}
}

static void async_cb(uv_async_t *a)
{
	handle_flush(a->data);
}

/* Queue an answer for when seq is durable (at once if it is already). */
static int wait_durable(struct fhandle *h, uint64_t seq, int err, int64_t v, counter_fn cb, void *ud)
{
	if (seq <= wal_durable(h->fs->wal) && !h->head) {
		cb(ud, err, v);
		return 0;
	}
	struct fop *o = h->free;
	if (o)
		h->free = o->next;
	else if (!(o = malloc(sizeof *o)))   /* grows to the peak in flight, then reused */
		return -ENOMEM;
	o->next = NULL;
	o->seq = seq;
	o->cb = cb;
	o->ud = ud;
	o->err = err;
	o->value = v;
	if (h->tail)
		h->tail->next = o;
	else
		h->head = o;
	h->tail = o;
	return 0;
}

/* Apply one change and log it; *seq is its record's sequence number. */
static int change(struct file_store *fs, int op, const char *key, size_t len, int64_t arg,
                  int64_t *value, uint64_t *seq)
{
	int e = wal_failed(fs->wal);
	if (e)
		return e;
	wal_lock(fs->wal);
	switch (op) {
	case 'i':
		e = counter_table_incr(fs->table, key, len, arg, value);
		break;
	case 's':
		e = counter_table_set(fs->table, key, len, arg);
		*value = arg;
		break;
	default:
		e = counter_table_del(fs->table, key, len, value);
		break;
	}
	if (e == 0) {
		unsigned char fixed[REC_FIXED];
		struct iovec parts[2];
		rec_parts(fixed, parts, op == 'd' ? REC_DEL : REC_SET, key, len, op == 'd' ? 0 : *value);
		*seq = wal_appendv(fs->wal, parts, 2);
	}
	wal_unlock(fs->wal);
	return e;
}

static int file_change(struct counter *c, int op, const char *key, size_t len, int64_t arg,
                       counter_fn cb, void *ud)
{
	struct fhandle *h = (struct fhandle *)c;
	int64_t v = 0;
	uint64_t seq = 0;
	if (h->fs->read_only) {
		cb(ud, -EROFS, 0);
		return 0;
	}
	int e = change(h->fs, op, key, len, arg, &v, &seq);
	if (e < 0) {
		cb(ud, e, 0);
		return 0;
	}
	return wait_durable(h, seq, 0, v, cb, ud);
}

static int file_incr(struct counter *c, const char *key, size_t len, int64_t by, counter_fn cb, void *ud)
{
	return file_change(c, 'i', key, len, by, cb, ud);
}

static int file_set(struct counter *c, const char *key, size_t len, int64_t value, counter_fn cb, void *ud)
{
	return file_change(c, 's', key, len, value, cb, ud);
}

static int file_del(struct counter *c, const char *key, size_t len, counter_fn cb, void *ud)
{
	return file_change(c, 'd', key, len, 0, cb, ud);
}

static int file_get(struct counter *c, const char *key, size_t len, counter_fn cb, void *ud)
{
	struct fhandle *h = (struct fhandle *)c;
	struct file_store *fs = h->fs;
	int64_t v = 0;
	wal_lock(fs->wal);
	int e = counter_table_get(fs->table, key, len, &v);
	uint64_t seq = wal_appended(fs->wal);   /* what this read may have seen */
	wal_unlock(fs->wal);
	return wait_durable(h, seq, e, v, cb, ud);
}

static int file_list(struct counter *c, const char *prefix, size_t plen, counter_list_fn cb, void *ud)
{
	counter_table_walk(((struct fhandle *)c)->fs->table, prefix, plen, cb, ud);
	return 0;
}

static int file_attach(struct counter_store *s, uv_loop_t *loop, struct counter **out)
{
	struct file_store *fs = (struct file_store *)s;
	struct fhandle *h = calloc(1, sizeof *h);
	if (!h)
		return -ENOMEM;
	h->base.ops = &file_ops;
	h->base.store = s;
	h->fs = fs;
	int r = uv_async_init(loop, &h->async, async_cb);
	if (r < 0) {
		free(h);
		return r;
	}
	h->async.data = h;
	wal_lock(fs->wal);
	h->next = fs->handles;
	fs->handles = h;
	wal_unlock(fs->wal);
	*out = &h->base;
	return 0;
}

static void handle_closed(uv_handle_t *a)
{
	struct fhandle *h = a->data;
	while (h->free) {
		struct fop *o = h->free;
		h->free = o->next;
		free(o);
	}
	free(h);
}

static void file_detach(struct counter *c)
{
	struct fhandle *h = (struct fhandle *)c;
	struct file_store *fs = h->fs;
	/* what is queued still gets its answer: wait for the sync thread */
	while (h->head && h->head->seq > wal_durable(fs->wal) && !wal_failed(fs->wal))
		usleep(200);
	handle_flush(h);
	wal_lock(fs->wal);
	for (struct fhandle **p = &fs->handles; *p; p = &(*p)->next)
		if (*p == h) {
			*p = h->next;
			break;
		}
	wal_unlock(fs->wal);
	uv_close((uv_handle_t *)&h->async, handle_closed);
}

static void file_close(struct counter_store *s)
{
	struct file_store *fs = (struct file_store *)s;
	wal_close(fs->wal);   /* writes what was appended first */
	counter_table_free(fs->table);
	free(fs);
}

static const struct counter_ops file_ops = {
	file_attach, file_detach, file_incr, file_get, file_set, file_del, file_list, file_close,
};

/* ------------------------------------------------------------ open */

int counter_file_open(const char *dir, const struct counter_options *o,
                      struct counter_store **out, char *err, size_t err_size)
{
	struct file_store *fs = calloc(1, sizeof *fs);
	if (!fs)
		return -ENOMEM;
	fs->base.ops = &file_ops;
	fs->base.kind = STORE_FILE;
	fs->table = counter_table_new(o->max_keys);
	if (!fs->table) {
		free(fs);
		return -ENOMEM;
	}
	struct wal_options wo = {
		.max_record = REC_FIXED + COUNTER_MAX_KEY,
		.compact_bytes = o->compact_bytes,
		.read_only = o->read_only,
	};
	fs->read_only = o->read_only;
	struct wal_hooks hooks = { .replay = replay_one, .snapshot = snapshot, .synced = notify_all };
	/* Another process holding DIR is waited for, up to o->wait_ms, as
	 * flock -w does: concurrent CLI runs on one store take turns instead
	 * of failing.  wal_open takes the lock before it reads anything, so a
	 * refused attempt leaves the table empty for the next one. */
	uint64_t deadline = uv_hrtime() / 1000000 + o->wait_ms;
	unsigned pause_ms = 2;
	int e;
	while ((e = wal_open(dir, &wo, &hooks, fs, &fs->wal, err, err_size)) == -EBUSY &&
	       uv_hrtime() / 1000000 < deadline) {
		struct timespec ts = {0, (long)pause_ms * 1000000};
		nanosleep(&ts, NULL);
		if (pause_ms < 50)
			pause_ms *= 2;
	}
	if (e == -EBUSY && o->wait_ms && err)
		snprintf(err, err_size, "'%s/lock' is still in use by another process after --wait %ums",
		         dir, o->wait_ms);
	if (e < 0) {
		if (e == -EOVERFLOW && err)
			snprintf(err, err_size, "cannot load '%s/log': more keys than --max-keys", dir);
		counter_table_free(fs->table);
		free(fs);
		return e;
	}
	log_info("'%s/log': %llu records, %u counters", dir,
	         (unsigned long long)wal_replayed(fs->wal), counter_table_count(fs->table));
	*out = &fs->base;
	return 0;
}
