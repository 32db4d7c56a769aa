/*
 * store/wal.c -- the append-only log: framing, group commit, recovery and
 * compaction (see wal.h for the contract).
 *
 * Threads.  Callers append under w->mu into w->pending and signal w->work.
 * The sync thread swaps pending with its own batch buffer under the mutex,
 * then writes and fdatasyncs without it, so appends go on meanwhile; it
 * takes the mutex again to publish the durable sequence number and call
 * the synced hook.  `durable` and `failed` are atomics so that waiters can
 * read them without the mutex.
 *
 * Invariants:
 * - appended >= durable; every record with seq <= durable is in the file
 *   and fdatasync'd.
 * - pending holds exactly the records appended after the last group the
 *   sync thread took (or after the last snapshot, which covers all before).
 * - After failed is set, nothing is written again and durable stays put.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/bytes.h"
#include "base/invariant.h"
#include "base/log.h"
#include "store/wal.h"

#define REC_HEAD 8   /* crc + length */
#define WAL_MAX_RECORD_DEFAULT (1u << 20)

struct wal {
	char dir[4096];
	int fd, lockfd, dirfd;
	bool read_only;
	pthread_mutex_t mu;
	pthread_cond_t work;
	struct buf pending;          /* records appended, not yet taken */
	uint64_t appended;           /* seq of the last record appended */
	_Atomic uint64_t durable;    /* seq of the last record fdatasync'd */
	atomic_int failed;           /* 0, or -EIO */
	int fail_errno;              /* set before failed: the first error, */
	char fail_file[4200];        /* and the file it hit */
	uint64_t log_bytes, snap_bytes, compact_bytes, replayed;
	uint32_t max_record;
	bool mark_cut;               /* keep DIR/cut when a torn tail is cut */
	struct buf rewrite;          /* wal_rewrite's records, for the sync thread */
	bool rewrite_pending;
	bool stop;
	bool thread_started;
	pthread_t thread;
	struct wal_hooks hooks;
	void *ud;
};

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

static uint32_t crc_update(uint32_t c, const unsigned char *b, size_t n)
{
	while (n--)
		c = crc_table[(c ^ *b++) & 0xFF] ^ (c >> 8);
	return c;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
/* SSE4.2's crc32 instruction computes this very polynomial (Castagnoli),
 * eight bytes a step: the table's byte a step showed as the Raft node's
 * largest cost of its own under write load (every entry is checksummed
 * once as it is logged). */
__attribute__((target("sse4.2"))) static uint32_t crc_update_hw(uint32_t c, const unsigned char *b, size_t n)
{
	uint64_t c64 = c;
	for (; n >= 8; n -= 8, b += 8) {
		uint64_t v;
		memcpy(&v, b, 8);
		c64 = __builtin_ia32_crc32di(c64, v);
	}
	c = (uint32_t)c64;
	while (n--)
		c = __builtin_ia32_crc32qi(c, *b++);
	return c;
}

static bool crc_hw;

static void crc_init_all(void)
{
	crc_init();
	__builtin_cpu_init();
	crc_hw = __builtin_cpu_supports("sse4.2");
}
#else
static const bool crc_hw = false;
static uint32_t crc_update_hw(uint32_t c, const unsigned char *b, size_t n) { return crc_update(c, b, n); }
static void crc_init_all(void) { crc_init(); }
#endif

uint32_t wal_crc32c(const void *p, size_t n)
{
	pthread_once(&crc_once, crc_init_all);
	uint32_t c = crc_hw ? crc_update_hw(0xFFFFFFFFu, p, n) : crc_update(0xFFFFFFFFu, p, n);
	return c ^ 0xFFFFFFFFu;
}

uint32_t wal_crc32c_more(uint32_t crc, const void *p, size_t n)
{
	pthread_once(&crc_once, crc_init_all);
	uint32_t c = crc ^ 0xFFFFFFFFu;
	c = crc_hw ? crc_update_hw(c, p, n) : crc_update(c, p, n);
	return c ^ 0xFFFFFFFFu;
}

/* ------------------------------------------------------------ framing */

void wal_record_put(struct buf *b, const struct iovec *parts, int n)
{
	size_t len = 0;
	for (int i = 0; i < n; i++)
		len += parts[i].iov_len;
	INVARIANT(len <= UINT32_MAX);
	unsigned char head[REC_HEAD];
	le32_put(head + 4, (uint32_t)len);
	size_t at = b->len;
	buf_append(b, head, sizeof head);
	for (int i = 0; i < n; i++)
		buf_append(b, parts[i].iov_base, parts[i].iov_len);
	le32_put((unsigned char *)b->data + at, wal_crc32c(b->data + at + 4, 4 + len));
}

/* ------------------------------------------------------------ appending */

void wal_lock(struct wal *w) { pthread_mutex_lock(&w->mu); }
void wal_unlock(struct wal *w) { pthread_mutex_unlock(&w->mu); }

uint64_t wal_appendv(struct wal *w, const struct iovec *parts, int n)
{
	/* once failed, the sync thread drops it and calls synced, so that
	 * whoever waits for it learns at once */
	wal_record_put(&w->pending, parts, n);
	pthread_cond_signal(&w->work);
	return ++w->appended;
}

void wal_rewrite(struct wal *w, const void *recs, size_t len)
{
	/* what was pending is covered by recs; a later rewrite replaces this one */
	buf_reset(&w->pending);
	buf_reset(&w->rewrite);
	buf_append(&w->rewrite, recs, len);
	w->rewrite_pending = true;
	pthread_cond_signal(&w->work);
}

void wal_rewrite_take(struct wal *w, struct buf *recs)
{
	buf_reset(&w->pending);
	buf_free(&w->rewrite);
	w->rewrite = *recs;
	buf_init(recs);
	w->rewrite_pending = true;
	pthread_cond_signal(&w->work);
}

uint64_t wal_appended(const struct wal *w) { return w->appended; }
uint64_t wal_durable(const struct wal *w) { return atomic_load(&w->durable); }
int wal_failed(const struct wal *w) { return atomic_load(&w->failed); }

int wal_failure(const struct wal *w, char *file, size_t size)
{
	if (!atomic_load(&w->failed)) {
		if (size)
			file[0] = 0;
		return 0;
	}
	snprintf(file, size, "%s", w->fail_file);
	return w->fail_errno;
}
uint64_t wal_replayed(const struct wal *w) { return w->replayed; }
uint64_t wal_bytes(const struct wal *w) { return w->log_bytes; }

/* ------------------------------------------------------------ the sync thread */

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t k = write(fd, p, n);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static int path_in(const struct wal *w, const char *name, char *out, size_t size)
{
	int n = snprintf(out, size, "%s/%s", w->dir, name);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* Write a snapshot of the state to log.tmp and rename it over log.
 * Called on the sync thread with the mutex held; returns with it held. */
static int compact(struct wal *w, struct buf *snap)
{
	buf_reset(snap);
	int e = 0;
	if (w->rewrite_pending) {
		/* the store's records, then what it appended since: taken, not
		 * copied (a store's log can be tens of MiB, and the mutex the
		 * appender waits for is held) */
		struct buf t = *snap;
		*snap = w->rewrite;
		w->rewrite = t;
		buf_append(snap, w->pending.data, w->pending.len);
		w->rewrite_pending = false;
		buf_free(&w->rewrite);
	} else {
		e = w->hooks.snapshot(w->ud, snap);
	}
	if (e < 0) {
		snprintf(w->fail_file, sizeof w->fail_file, "%s", w->dir);
		return e;
	}
	uint64_t upto = w->appended;
	buf_reset(&w->pending);      /* covered by the snapshot */
	pthread_mutex_unlock(&w->mu);

	char tmp[4200], dst[4200];
	e = path_in(w, "log.tmp", tmp, sizeof tmp);
	if (!e)
		e = path_in(w, "log", dst, sizeof dst);
	int fd = e ? -1 : open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
	if (!e && fd < 0)
		e = -errno;
	if (!e)
		e = write_all(fd, snap->data ? snap->data : "", snap->len);
	if (!e && fdatasync(fd) < 0)
		e = -errno;
	if (!e && rename(tmp, dst) < 0)
		e = -errno;
	if (!e && fsync(w->dirfd) < 0)
		e = -errno;
	if (e) {
		if (fd >= 0)
			close(fd);
		unlink(tmp);
	}
	pthread_mutex_lock(&w->mu);
	if (e) {
		log_error("cannot compact the log in '%s': %s", w->dir, strerror(-e));
		snprintf(w->fail_file, sizeof w->fail_file, "%s", tmp);
		return e;
	}
	close(w->fd);
	w->fd = fd;
	w->log_bytes = w->snap_bytes = snap->len;
	atomic_store(&w->durable, upto);
	return 0;
}

static void *sync_main(void *arg)
{
	struct wal *w = arg;
	struct buf batch = BUF_INIT;
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->pending.len && !w->rewrite_pending && !w->stop)
			pthread_cond_wait(&w->work, &w->mu);
		if (!w->pending.len && !w->rewrite_pending && w->stop)
			break;
		if (atomic_load(&w->failed)) {
			buf_reset(&w->pending);
			w->rewrite_pending = false;
			if (w->hooks.synced)
				w->hooks.synced(w->ud);
			continue;
		}
		int e = 0;
		if (w->rewrite_pending || (w->compact_bytes && w->hooks.snapshot && w->log_bytes > w->compact_bytes &&
		                           w->log_bytes > 2 * w->snap_bytes)) {
			e = compact(w, &batch);
		} else {
			struct buf t = batch;
			batch = w->pending;
			w->pending = t;
			buf_reset(&w->pending);
			uint64_t upto = w->appended;
			pthread_mutex_unlock(&w->mu);
			e = write_all(w->fd, batch.data ? batch.data : "", batch.len);
			if (!e && fdatasync(w->fd) < 0)
				e = -errno;
			pthread_mutex_lock(&w->mu);
			if (!e) {
				w->log_bytes += batch.len;
				atomic_store(&w->durable, upto);
			} else {
				log_error("cannot write the log in '%s': %s", w->dir, strerror(-e));
				path_in(w, "log", w->fail_file, sizeof w->fail_file);
			}
		}
		if (e) {
			/* fail_errno and fail_file before failed: readers look at
			 * failed first (wal_failure) */
			w->fail_errno = e;
			atomic_store(&w->failed, -EIO);
		}
		if (w->hooks.synced)
			w->hooks.synced(w->ud);
	}
	pthread_mutex_unlock(&w->mu);
	buf_free(&batch);
	return NULL;
}

/* ------------------------------------------------------------ recovery */

static int read_whole(int fd, char **out, size_t *size)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	size_t n = (size_t)st.st_size;
	char *data = n ? malloc(n) : NULL;
	if (n && !data)
		return -ENOMEM;
	size_t got = 0;
	while (got < n) {
		ssize_t k = pread(fd, data + got, n - got, (off_t)got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			int e = k < 0 ? -errno : -EIO;
			free(data);
			return e;
		}
		got += (size_t)k;
	}
	*out = data;
	*size = n;
	return 0;
}

/* Is there a whole record of at most max bytes with a good checksum at p
 * (left bytes)? */
static bool record_ok(const unsigned char *p, size_t left, uint32_t max)
{
	if (left < REC_HEAD)
		return false;
	uint32_t n = le32_get(p + 4);
	return n <= max && left - REC_HEAD >= n && wal_crc32c(p + 4, 4 + (size_t)n) == le32_get(p);
}

/* Does a good record start anywhere in data[from..size)?  Decides whether
 * a bad record is a torn tail (nothing good after it: the last group write
 * was cut short, perhaps leaving garbage or zeros) or damage in the middle
 * (acknowledged records follow: refuse rather than drop them).  Runs only
 * after a crash, over what follows the bad record; candidates are at most
 * max_record long, so the scan costs at most its length times that. */
static bool good_record_after(const struct wal *w, const char *data, size_t from, size_t size)
{
	for (size_t at = from; at + REC_HEAD <= size; at++)
		if (record_ok((const unsigned char *)data + at, size - at, w->max_record))
			return true;
	return false;
}

/* DIR/cut records that a tail was cut, durably and before the cut: a
 * crash right after the truncation must not forget it (see wal.h). */
static int cut_mark(struct wal *w, size_t at, size_t left)
{
	char path[4200], line[96];
	if (path_in(w, "cut", path, sizeof path) < 0)
		return -ENAMETOOLONG;
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	int n = snprintf(line, sizeof line, "cut %zu bytes at byte %zu\n", left, at);
	int e = write(fd, line, (size_t)n) == n && fdatasync(fd) == 0 && fsync(w->dirfd) == 0 ? 0 : -errno;
	close(fd);
	return e;
}

int wal_tail_cut_mark(struct wal *w, const char *why)
{
	if (!w->mark_cut || w->read_only)
		return -EINVAL;
	char path[4200];
	if (path_in(w, "cut", path, sizeof path) < 0)
		return -ENAMETOOLONG;
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	size_t n = strlen(why);
	int e = write(fd, why, n) == (ssize_t)n && write(fd, "\n", 1) == 1 && fdatasync(fd) == 0 &&
	        fsync(w->dirfd) == 0 ? 0 : -errno;
	close(fd);
	return e;
}

bool wal_tail_cut(const struct wal *w)
{
	char path[4200];
	return w->mark_cut && path_in(w, "cut", path, sizeof path) == 0 && access(path, F_OK) == 0;
}

int wal_tail_cut_clear(struct wal *w)
{
	char path[4200];
	if (path_in(w, "cut", path, sizeof path) < 0)
		return -ENAMETOOLONG;
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return fsync(w->dirfd) < 0 ? -errno : 0;
}

/* Replay DIR/log through the replay hook; truncate a torn tail. */
static int replay(struct wal *w, char *err, size_t err_size)
{
	char *data = NULL;
	size_t size = 0;
	int e = read_whole(w->fd, &data, &size);
	if (e < 0)
		return e;
	size_t at = 0;
	while (at < size) {
		const unsigned char *p = (const unsigned char *)data + at;
		size_t left = size - at;
		if (!record_ok(p, left, UINT32_MAX)) {
			if (good_record_after(w, data, at + 1, size)) {
				snprintf(err, err_size, "'%s/log' is damaged at byte %zu (not at its end): "
				         "refusing to drop what follows", w->dir, at);
				e = -EBADMSG;
				break;
			}
			log_warn("'%s/log': dropping a torn record at byte %zu (%zu bytes)", w->dir, at, left);
			if (!w->read_only && w->mark_cut)
				e = cut_mark(w, at, left);
			if (e == 0 && !w->read_only && (ftruncate(w->fd, (off_t)at) < 0 || fdatasync(w->fd) < 0))
				e = -errno;
			size = at;
			break;
		}
		uint32_t n = le32_get(p + 4);
		if (n > w->max_record) {
			/* whole and checksummed: a record, only longer than this
			 * program takes; never a reason to cut the log */
			snprintf(err, err_size, "'%s/log': the record at byte %zu holds %u bytes, "
			         "more than the %u this program takes", w->dir, at, n, w->max_record);
			e = -EBADMSG;
			break;
		}
		e = w->hooks.replay ? w->hooks.replay(w->ud, p + REC_HEAD, n) : 0;
		if (e < 0) {
			snprintf(err, err_size, "cannot load '%s/log' (the record at byte %zu): %s", w->dir,
			         at, e == -EBADMSG ? "it makes no sense" : strerror(-e));
			break;
		}
		at += REC_HEAD + n;
		w->replayed++;
	}
	free(data);
	if (e == 0) {
		w->log_bytes = size;
		w->snap_bytes = 0;
	}
	return e;
}

/* ------------------------------------------------------------ open, close */

/*
 * wal_open for readers (a get or list of the CLI, on a store they may not
 * write): a shared lock, so writers are kept out while it reads but other
 * readers are not, and the log read as it is.  A missing DIR, lock or log
 * is a store nobody wrote yet: empty.
 */
static int open_read_only(struct wal *w, char *err, size_t err_size)
{
	char path[4200];
	w->dirfd = open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (w->dirfd < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, err_size, "cannot open '%s': %s", w->dir, strerror(errno));
		return -errno;
	}
	path_in(w, "lock", path, sizeof path);
	w->lockfd = open(path, O_RDONLY | O_CLOEXEC);
	if (w->lockfd < 0 && errno != ENOENT) {
		snprintf(err, err_size, "cannot open '%s': %s", path, strerror(errno));
		return -errno;
	}
	if (w->lockfd >= 0 && flock(w->lockfd, LOCK_SH | LOCK_NB) < 0) {
		int e = errno == EWOULDBLOCK ? -EBUSY : -errno;
		if (e == -EBUSY)
			snprintf(err, err_size, "'%s' is in use by another process", path);
		else
			snprintf(err, err_size, "cannot lock '%s': %s", path, strerror(-e));
		return e;
	}
	path_in(w, "log", path, sizeof path);
	w->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (w->fd < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, err_size, "cannot open '%s': %s", path, strerror(errno));
		return -errno;
	}
	return replay(w, err, err_size);
}

int wal_open(const char *dir, const struct wal_options *o, const struct wal_hooks *h,
             void *ud, struct wal **out, char *err, size_t err_size)
{
	char scratch[8];
	if (!err) {
		err = scratch;
		err_size = sizeof scratch;
	}
	err[0] = 0;
	*out = NULL;
	struct wal *w = calloc(1, sizeof *w);
	if (!w)
		return -ENOMEM;
	w->fd = w->lockfd = w->dirfd = -1;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->work, NULL);
	w->hooks = *h;
	w->ud = ud;
	w->compact_bytes = o ? o->compact_bytes : 0;
	w->max_record = o && o->max_record ? o->max_record : WAL_MAX_RECORD_DEFAULT;
	int e = 0;
	char path[4200];
	if (strlen(dir) >= sizeof w->dir) {
		e = -ENAMETOOLONG;
		snprintf(err, err_size, "'%.64s...': %s", dir, strerror(-e));
		goto fail;
	}
	snprintf(w->dir, sizeof w->dir, "%s", dir);
	w->read_only = o && o->read_only;
	w->mark_cut = o && o->mark_cut;
	if (w->read_only) {
		e = open_read_only(w, err, err_size);
		if (e < 0)
			goto fail;
		*out = w;
		return 0;
	}
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		e = -errno;
		snprintf(err, err_size, "cannot create '%s': %s", dir, strerror(-e));
		goto fail;
	}
	w->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (w->dirfd < 0) {
		e = -errno;
		snprintf(err, err_size, "cannot open '%s': %s", dir, strerror(-e));
		goto fail;
	}
	path_in(w, "lock", path, sizeof path);
	w->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (w->lockfd < 0 || flock(w->lockfd, LOCK_EX | LOCK_NB) < 0) {
		e = errno == EWOULDBLOCK ? -EBUSY : -errno;
		if (e == -EBUSY)
			snprintf(err, err_size, "'%s' is in use by another process", path);
		else
			snprintf(err, err_size, "cannot lock '%s': %s", path, strerror(-e));
		goto fail;
	}
	path_in(w, "log.tmp", path, sizeof path);
	unlink(path);   /* a compaction that did not finish */
	path_in(w, "log", path, sizeof path);
	w->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (w->fd < 0) {
		e = -errno;
		snprintf(err, err_size, "cannot open '%s': %s", path, strerror(-e));
		goto fail;
	}
	e = replay(w, err, err_size);
	if (e < 0) {
		if (!err[0])
			snprintf(err, err_size, "cannot read '%s': %s", path, strerror(-e));
		goto fail;
	}
	if (fsync(w->dirfd) < 0) {   /* the log's directory entry, if we made it */
		e = -errno;
		snprintf(err, err_size, "cannot sync '%s': %s", dir, strerror(-e));
		goto fail;
	}
	e = -pthread_create(&w->thread, NULL, sync_main, w);
	if (e < 0) {
		snprintf(err, err_size, "cannot start the log's thread: %s", strerror(-e));
		goto fail;
	}
	w->thread_started = true;
	*out = w;
	return 0;
fail:
	if (!err[0])
		snprintf(err, err_size, "%s", strerror(-e));
	wal_close(w);
	return e;
}

void wal_close(struct wal *w)
{
	if (!w)
		return;
	if (w->thread_started) {
		pthread_mutex_lock(&w->mu);
		w->stop = true;
		pthread_cond_signal(&w->work);
		pthread_mutex_unlock(&w->mu);
		pthread_join(w->thread, NULL);
	}
	if (w->fd >= 0)
		close(w->fd);
	if (w->dirfd >= 0)
		close(w->dirfd);
	if (w->lockfd >= 0)
		close(w->lockfd);   /* releases the flock */
	buf_free(&w->pending);
	buf_free(&w->rewrite);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->work);
	free(w);
}
