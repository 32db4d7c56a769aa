/*
 * counter_file.c -- file:DIR counters: the lock-free table of mem: kept
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
 * operation.  Table updates and log appends happen together under one
 * mutex, so the log's order is the order the changes were applied in.
 *
 * Group commit.  An operation appends its record to the pending buffer in
 * memory, takes the next sequence number, and waits in its loop's queue;
 * the sync thread takes the whole pending buffer at once, writes it with
 * one write(2), calls fdatasync, publishes the last sequence number it
 * covered, and wakes every loop (uv_async_send).  Operations arriving
 * while an fsync runs pile up in the pending buffer for the next one, so
 * under load one fsync covers everything that arrived during the last:
 * the more concurrent increments, the fewer fsyncs per increment.  An
 * answer leaves only after its record is durable.  get waits for the
 * changes it can see to be durable too (it never reports a value a crash
 * could take back); list answers at once.
 *
 * Recovery.  DIR/log is read from the start at open; the first record
 * that is cut short, or whose checksum fails with nothing after it, is a
 * torn tail (a crash mid-write): the file is truncated there.  A bad
 * record followed by more data is damage in the middle: open fails with
 * -EBADMSG rather than drop acknowledged changes silently.  Since every
 * acknowledged change was fdatasync'd before its answer, kill -9 loses
 * nothing acknowledged.
 *
 * Compaction.  When the log grows past --compact-bytes (and past twice
 * the last snapshot), the sync thread, instead of its next group write,
 * takes the mutex, copies every present counter from the table as SET
 * records (the pending records are already in the table, so the snapshot
 * covers them too and their operations are answered by it), lets go of
 * the mutex, writes the snapshot to DIR/log.tmp, fdatasyncs it, renames
 * it over DIR/log and fsyncs DIR.  A crash before the rename leaves the
 * old log whole; after it, the new one.  Increments keep being applied
 * while the snapshot is written and wait for the next group write, into
 * the new log.  Deleted keys are gone from the snapshot, so a restart
 * after compaction gives their table slots back.
 *
 * One process at a time: DIR/lock is held with flock(LOCK_EX) while open
 * (-EBUSY otherwise).  A failed write or fdatasync makes the store refuse
 * further changes (-EIO): after a failed fsync the page cache's state is
 * unknown, and the only safe way back is a restart and a replay.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "counter.h"
#include "invariant.h"
#include "log.h"

enum { REC_SET = 1, REC_DEL = 2 };
#define REC_HEAD 8          /* crc + length */
#define REC_FIXED 9         /* op + value */

/* ------------------------------------------------------------ crc32c */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
		crc_table[i] = c;
	}
}

static uint32_t crc32c(const void *p, size_t n)
{
	const unsigned char *b = p;
	uint32_t c = 0xFFFFFFFFu;
	while (n--)
		c = crc_table[(c ^ *b++) & 0xFF] ^ (c >> 8);
	return c ^ 0xFFFFFFFFu;
}

static void put_u32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void rec_append(struct buf *b, int op, const char *key, size_t len, int64_t value)
{
	unsigned char head[REC_HEAD + REC_FIXED];
	put_u32(head + 4, (uint32_t)(REC_FIXED + len));
	head[8] = (unsigned char)op;
	uint64_t u = (uint64_t)value;
	for (int i = 0; i < 8; i++)
		head[9 + i] = (unsigned char)(u >> (8 * i));
	size_t at = b->len;
	buf_append(b, head, sizeof head);
	buf_append(b, key, len);
	uint32_t crc = crc32c(b->data + at + 4, 4 + REC_FIXED + len);
	put_u32((unsigned char *)b->data + at, crc);
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
	struct fhandle *next;     /* in fs->handles, under fs->mu */
};

struct file_store {
	struct counter_store base;
	struct counter_table *table;
	char dir[4096];
	int fd, lockfd, dirfd;
	pthread_mutex_t mu;           /* orders table changes with log appends */
	pthread_cond_t work;
	struct buf pending;           /* records not yet written */
	uint64_t appended;            /* seq of the last record appended */
	_Atomic uint64_t durable;     /* seq of the last record fdatasync'd */
	atomic_int failed;            /* 0, or -EIO once a write or sync failed */
	uint64_t log_bytes, snap_bytes, compact_bytes;
	bool stop;
	pthread_t thread;
	struct fhandle *handles;
};

static const struct counter_ops file_ops;

static void notify_all(struct file_store *fs)
{
	for (struct fhandle *h = fs->handles; h; h = h->next)
		uv_async_send(&h->async);
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int path_in(const struct file_store *fs, const char *name, char *out, size_t size)
{
	int n = snprintf(out, size, "%s/%s", fs->dir, name);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* Write a snapshot of the table to log.tmp and rename it over log.
 * Called on the sync thread with fs->mu held; returns with it held. */
static int compact(struct file_store *fs, struct buf *snap)
{
	struct counter_item *items = NULL;
	long n = counter_table_list(fs->table, "", 0, &items);
	if (n < 0)
		return (int)n;
	buf_reset(snap);
	for (long i = 0; i < n; i++)
		rec_append(snap, REC_SET, items[i].key, items[i].key_len, items[i].value);
	free(items);
	uint64_t upto = fs->appended;
	buf_reset(&fs->pending);      /* covered by the snapshot */
	pthread_mutex_unlock(&fs->mu);

	char tmp[4200], dst[4200];
	int e = path_in(fs, "log.tmp", tmp, sizeof tmp);
	if (!e)
		e = path_in(fs, "log", dst, sizeof dst);
	int fd = e ? -1 : open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
	if (!e && fd < 0)
		e = -errno;
	if (!e)
		e = write_all(fd, snap->data ? snap->data : "", snap->len);
	if (!e && fdatasync(fd) < 0)
		e = -errno;
	if (!e && rename(tmp, dst) < 0)
		e = -errno;
	if (!e && fsync(fs->dirfd) < 0)
		e = -errno;
	if (e) {
		if (fd >= 0)
			close(fd);
		unlink(tmp);
	}
	pthread_mutex_lock(&fs->mu);
	if (e) {
		log_error("cannot compact the log in '%s': %s", fs->dir, strerror(-e));
		return -EIO;
	}
	close(fs->fd);
	fs->fd = fd;
	fs->log_bytes = fs->snap_bytes = snap->len;
	atomic_store(&fs->durable, upto);
	return 0;
}

static void *sync_main(void *arg)
{
	struct file_store *fs = arg;
	struct buf batch = BUF_INIT;
	pthread_mutex_lock(&fs->mu);
	for (;;) {
		while (!fs->pending.len && !fs->stop)
			pthread_cond_wait(&fs->work, &fs->mu);
		if (!fs->pending.len && fs->stop)
			break;
		if (atomic_load(&fs->failed)) {
			buf_reset(&fs->pending);
			notify_all(fs);
			continue;
		}
		int e = 0;
		if (fs->compact_bytes && fs->log_bytes > fs->compact_bytes &&
		    fs->log_bytes > 2 * fs->snap_bytes) {
			e = compact(fs, &batch);
		} else {
			struct buf t = batch;
			batch = fs->pending;
			fs->pending = t;
			buf_reset(&fs->pending);
			uint64_t upto = fs->appended;
			pthread_mutex_unlock(&fs->mu);
			e = write_all(fs->fd, batch.data, batch.len);
			if (!e && fdatasync(fs->fd) < 0)
				e = -errno;
			pthread_mutex_lock(&fs->mu);
			if (!e) {
				fs->log_bytes += batch.len;
				atomic_store(&fs->durable, upto);
			} else {
				log_error("cannot write the log in '%s': %s", fs->dir, strerror(-e));
			}
		}
		if (e)
			atomic_store(&fs->failed, -EIO);
		notify_all(fs);
	}
	pthread_mutex_unlock(&fs->mu);
	buf_free(&batch);
	return NULL;
}

/* Answer the ops of h that are durable (all of them, -EIO, once failed). */
static void handle_flush(struct fhandle *h)
{
	uint64_t durable = atomic_load(&h->fs->durable);
	int failed = atomic_load(&h->fs->failed);
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
	if (seq <= atomic_load(&h->fs->durable) && !h->head) {
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
	int e = atomic_load(&fs->failed);
	if (e)
		return e;
	pthread_mutex_lock(&fs->mu);
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
		rec_append(&fs->pending, op == 'd' ? REC_DEL : REC_SET, key, len, op == 'd' ? 0 : *value);
		*seq = ++fs->appended;
		pthread_cond_signal(&fs->work);
	}
	pthread_mutex_unlock(&fs->mu);
	return e;
}

static int file_change(struct counter *c, int op, const char *key, size_t len, int64_t arg,
                       counter_fn cb, void *ud)
{
	struct fhandle *h = (struct fhandle *)c;
	int64_t v = 0;
	uint64_t seq = 0;
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
	pthread_mutex_lock(&fs->mu);
	int e = counter_table_get(fs->table, key, len, &v);
	uint64_t seq = fs->appended;   /* what this read may have seen */
	pthread_mutex_unlock(&fs->mu);
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
	pthread_mutex_lock(&fs->mu);
	h->next = fs->handles;
	fs->handles = h;
	pthread_mutex_unlock(&fs->mu);
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
	while (h->head && h->head->seq > atomic_load(&fs->durable) && !atomic_load(&fs->failed))
		usleep(200);
	handle_flush(h);
	pthread_mutex_lock(&fs->mu);
	for (struct fhandle **p = &fs->handles; *p; p = &(*p)->next)
		if (*p == h) {
			*p = h->next;
			break;
		}
	pthread_mutex_unlock(&fs->mu);
	uv_close((uv_handle_t *)&h->async, handle_closed);
}

static void file_close(struct counter_store *s)
{
	struct file_store *fs = (struct file_store *)s;
	if (fs->thread) {
		pthread_mutex_lock(&fs->mu);
		fs->stop = true;
		pthread_cond_signal(&fs->work);
		pthread_mutex_unlock(&fs->mu);
		pthread_join(fs->thread, NULL);
	}
	if (fs->fd >= 0)
		close(fs->fd);
	if (fs->dirfd >= 0)
		close(fs->dirfd);
	if (fs->lockfd >= 0)
		close(fs->lockfd);   /* releases the flock */
	buf_free(&fs->pending);
	counter_table_free(fs->table);
	pthread_mutex_destroy(&fs->mu);
	pthread_cond_destroy(&fs->work);
	free(fs);
}

static const struct counter_ops file_ops = {
	file_attach, file_detach, file_incr, file_get, file_set, file_del, file_list, file_close,
};

/* ------------------------------------------------------------ recovery */

/* Replay DIR/log into the table; truncate a torn tail.  Returns 0 or a
 * negative errno value with a message in err. */
static int replay(struct file_store *fs, char *err, size_t err_size)
{
	struct stat st;
	if (fstat(fs->fd, &st) < 0)
		return -errno;
	size_t size = (size_t)st.st_size;
	char *data = size ? malloc(size) : NULL;
	if (size && !data)
		return -ENOMEM;
	size_t got = 0;
	while (got < size) {
		ssize_t n = pread(fs->fd, data + got, size - got, (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? -errno : -EIO;
			free(data);
			return e;
		}
		got += (size_t)n;
	}
	size_t at = 0;
	uint64_t records = 0;
	int e = 0;
	while (at < size) {
		const unsigned char *p = (const unsigned char *)data + at;
		size_t left = size - at;
		uint32_t n = left >= REC_HEAD ? get_u32(p + 4) : 0;
		bool whole = left >= REC_HEAD && n >= REC_FIXED && n <= REC_FIXED + COUNTER_MAX_KEY &&
		             left >= REC_HEAD + n;
		bool good = whole && crc32c(p + 4, 4 + n) == get_u32(p) && (p[8] == REC_SET || p[8] == REC_DEL);
		if (!good) {
			if (whole && left > REC_HEAD + n) {
				snprintf(err, err_size, "'%s/log' is damaged at byte %zu (not at its end): "
				         "refusing to drop what follows", fs->dir, at);
				e = -EBADMSG;
				break;
			}
			log_warn("'%s/log': dropping a torn record at byte %zu (%zu bytes)", fs->dir, at, left);
			if (ftruncate(fs->fd, (off_t)at) < 0 || fdatasync(fs->fd) < 0)
				e = -errno;
			size = at;
			break;
		}
		uint64_t u = 0;
		for (int i = 0; i < 8; i++)
			u |= (uint64_t)p[9 + i] << (8 * i);
		const char *key = (const char *)p + REC_HEAD + REC_FIXED;
		size_t klen = n - REC_FIXED;
		int64_t old;
		if (klen == 0) {
			snprintf(err, err_size, "'%s/log' holds an empty key at byte %zu", fs->dir, at);
			e = -EBADMSG;
			break;
		}
		if (p[8] == REC_SET)
			e = counter_table_set(fs->table, key, klen, (int64_t)u);
		else if (counter_table_del(fs->table, key, klen, &old) < 0)
			e = 0;
		if (e < 0) {
			snprintf(err, err_size, "cannot load '%s/log': %s", fs->dir,
			         e == -ENOSPC ? "more keys than --max-keys" : strerror(-e));
			break;
		}
		at += REC_HEAD + n;
		records++;
	}
	free(data);
	if (e == 0) {
		fs->log_bytes = size;
		fs->snap_bytes = 0;
		log_info("'%s/log': %llu records, %u counters", fs->dir, (unsigned long long)records,
		         counter_table_count(fs->table));
	}
	return e;
}

int counter_file_open(const char *dir, const struct counter_options *o,
                      struct counter_store **out, char *err, size_t err_size)
{
	pthread_once(&crc_once, crc_init);
	char scratch[8];
	if (!err) {
		err = scratch;
		err_size = sizeof scratch;
	}
	err[0] = 0;
	struct file_store *fs = calloc(1, sizeof *fs);
	if (!fs)
		return -ENOMEM;
	fs->fd = fs->lockfd = fs->dirfd = -1;
	pthread_mutex_init(&fs->mu, NULL);
	pthread_cond_init(&fs->work, NULL);
	fs->base.ops = &file_ops;
	fs->base.kind = STORE_FILE;
	fs->compact_bytes = o->compact_bytes;
	snprintf(fs->dir, sizeof fs->dir, "%s", dir);
	char path[4200];
	int e = 0;
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		e = -errno;
		snprintf(err, err_size, "cannot create '%s': %s", dir, strerror(-e));
		goto fail;
	}
	fs->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fs->dirfd < 0) {
		e = -errno;
		snprintf(err, err_size, "cannot open '%s': %s", dir, strerror(-e));
		goto fail;
	}
	path_in(fs, "lock", path, sizeof path);
	fs->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fs->lockfd < 0 || flock(fs->lockfd, LOCK_EX | LOCK_NB) < 0) {
		e = errno == EWOULDBLOCK ? -EBUSY : -errno;
		snprintf(err, err_size, e == -EBUSY ? "'%s' is in use by another process"
		                                    : "cannot lock '%s': %s", path, strerror(-e));
		goto fail;
	}
	path_in(fs, "log.tmp", path, sizeof path);
	unlink(path);   /* a compaction that did not finish */
	path_in(fs, "log", path, sizeof path);
	fs->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fs->fd < 0) {
		e = -errno;
		snprintf(err, err_size, "cannot open '%s': %s", path, strerror(-e));
		goto fail;
	}
	fs->table = counter_table_new(o->max_keys);
	if (!fs->table) {
		e = -ENOMEM;
		goto fail;
	}
	e = replay(fs, err, err_size);
	if (e < 0) {
		if (!err[0])
			snprintf(err, err_size, "cannot read '%s': %s", path, strerror(-e));
		goto fail;
	}
	if (fsync(fs->dirfd) < 0) {   /* the log's directory entry, if we made it */
		e = -errno;
		goto fail;
	}
	e = -pthread_create(&fs->thread, NULL, sync_main, fs);
	if (e < 0) {
		fs->thread = 0;
		goto fail;
	}
	*out = &fs->base;
	return 0;
fail:
	if (!err[0])
		snprintf(err, err_size, "%s", strerror(-e));
	file_close(&fs->base);
	return e;
}
