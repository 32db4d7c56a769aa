/*
 * lock/file.c -- file:DIR, locks for the processes of one machine.
 *
 * Why not simply hold flock(2) for as long as the lock is held?  Because
 * `dsys-lock acquire NAME` exits after printing its token, and a lock must
 * outlive it until `dsys-lock release`; an flock dies with its last file
 * descriptor.  So the lock is a small state file, and flock(2) only guards
 * each read-modify-write of it:
 *
 *   DIR/BASE.lock    empty; flock(LOCK_EX) is held while one process reads,
 *                    changes and rewrites BASE.state (microseconds, bounded
 *                    by lock_options.timeout_ms for the waiter)
 *   DIR/BASE.state   JSON lines, readable by anyone:
 *                      {"dsys_lock":1,"name":"NAME","fence":17,
 *                       "reserved":1016,"boot":"BOOT-ID"}
 *                      {"token":"..","fence":17,"owner":"..","ttl_ms":30000,
 *                       "expires_ms":1733380000000,"pid":4242,"pid_start":987654}
 *                    the first line carries the name's fence counter; one
 *                    line per live grant follows.  Rewritten whole into
 *                    BASE.tmp and renamed over BASE.state (so a process
 *                    killed halfway leaves the old state, never a torn one),
 *                    but not fsync'd: see the fences below.
 *   DIR/BASE.fence   {"reserved":1016}: the highest fence that may be
 *                    handed out, written only durably (BASE.ftmp fsync'd,
 *                    renamed, the directory fsync'd).
 *
 * Fences without an fsync per grant.  Two fsyncs per write cost
 * milliseconds on most disks, far more than the rest of an acquire, so
 * fences are reserved in blocks: when the next fence would pass the
 * reservation, BASE.fence is first raised by FENCE_BLOCK, durably; every
 * fence handed out is thus at most a reservation that survives a crash.
 * Writes that were not fsync'd are lost only when the kernel is (a power
 * cut, a panic), and then the machine boots again with a new
 * /proc/sys/kernel/random/boot_id.  So a state written under another boot
 * id (or with none: the header says which boot wrote it) is not trusted
 * for its fence: the counter goes on from BASE.fence's reservation, and
 * its grants are dropped (their processes died with that boot).  Under the
 * same boot id, the page cache every process shares is the truth.  After
 * a crash the fences jump by up to FENCE_BLOCK; they never repeat.  When
 * the boot id cannot be read, every write is fsync'd (the state then
 * carries the counter durably itself).
 *
 * BASE is the name itself when it is made of [A-Za-z0-9._+,=@:-], does not
 * start with '.', and is at most 200 bytes (so BASE.state fits in a file
 * name); other names use "~" and a 64-bit FNV-1a hash of the name, and the
 * state file's "name" tells a collision from a match (-EPROTO, never a
 * shared lock).
 *
 * A grant ends when it is released, when its expiry passes (CLOCK_REALTIME
 * Unix ms, shared by every process of the machine), or -- when the
 * acquirer bound it to a process (lock_request.pid; `dsys-lock run` binds
 * its own pid) -- as soon as that process is gone: "pid_start" (field 22
 * of /proc/PID/stat, the start time in clock ticks since boot) tells a
 * live holder from a new process that reuses its pid.  So a `run` killed
 * with SIGKILL frees its lock at once, with no TTL to wait out, and a
 * lease taken by `acquire` lives by its TTL.  Dead grants are dropped at
 * the next write.
 *
 * Everything here is synchronous: each operation ends (lock_op_done)
 * before lock_file_open's start returns.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/invariant.h"
#include "base/json.h"
#include "lock/backend.h"

#define FILE_MAX_STATE (4u << 20)   /* a state file larger than this is not ours */
#define FILE_MAX_BASE 200
#define FENCE_BLOCK 1000            /* fences reserved per durable write */
#define BOOT_LEN 36                 /* a boot id, as /proc prints it */

struct file_impl {
	int dirfd;
	char boot[BOOT_LEN + 1];        /* "" when unknown: fsync everything */
	char err[256];
};

struct entry {
	struct lock_holder h;
	uint64_t pid_start;
};

struct state {
	uint64_t fence;
	uint64_t reserved;           /* as the header says: trusted only with boot */
	char boot[BOOT_LEN + 1];     /* the boot id the header was written under */
	bool has_boot;
	bool has_name;
	char name[LOCK_MAX_NAME + 1];
	struct entry *e;             /* LOCK_MAX_LIMIT of them */
	unsigned n;
};

static bool plain_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       strchr("._+,=@:-", c);
}

static void name_base(const char *name, char *out, size_t size)
{
	size_t n = strlen(name);
	bool plain = n <= FILE_MAX_BASE && name[0] != '.';
	for (size_t i = 0; plain && i < n; i++)
		plain = plain_char(name[i]);
	if (plain && n < size) {
		memcpy(out, name, n + 1);
		return;
	}
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)name[i];
		h *= 1099511628211ull;
	}
	snprintf(out, size, "~%016llx", (unsigned long long)h);
}

/* The start time of pid in clock ticks since boot, or 0 when there is no
 * such process.  comm (field 2) may hold spaces and ')': read after the
 * last ')'. */
static uint64_t proc_start(int64_t pid)
{
	if (pid <= 0)
		return 0;
	char path[64], text[1024];
	snprintf(path, sizeof path, "/proc/%lld/stat", (long long)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, text, sizeof text - 1);
	close(fd);
	if (n <= 0)
		return 0;
	text[n] = '\0';
	char *p = strrchr(text, ')');
	if (!p)
		return 0;
	/* p is at the space before field 3; step to field 22 (starttime) */
	p++;
	for (int field = 3;; field++) {
		if (*p != ' ')
			return 0;
		p++;
		if (field == 22)
			break;
		p = strchr(p, ' ');
		if (!p)
			return 0;
	}
	char *end;
	unsigned long long v = strtoull(p, &end, 10);
	if (end == p)
		return 0;
	return v;
}

/* A zombie still has /proc/PID/stat: it counts as dead. */
static bool proc_alive(int64_t pid, uint64_t start)
{
	if (pid <= 0)
		return true;
	char path[64], text[512];
	snprintf(path, sizeof path, "/proc/%lld/stat", (long long)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, text, sizeof text - 1);
	close(fd);
	if (n <= 0)
		return false;
	text[n] = '\0';
	char *p = strrchr(text, ')');
	if (!p || p[1] != ' ' || p[2] == 'Z' || p[2] == 'X')
		return false;
	return proc_start(pid) == start;
}

/* ------------------------------------------------------------ parsing */

struct scan {
	struct state *st;
	struct entry *e;
	bool header;
	bool bad;
};

static int get_u64(const struct json_token *v, uint64_t *out)
{
	int64_t x;
	if (v->kind != JSON_KIND_NUMBER || json_parse_i64(v->text, v->len, &x) < 0 || x < 0)
		return -EPROTO;
	*out = (uint64_t)x;
	return 0;
}

static int get_str(const struct json_token *v, char *out, size_t size)
{
	if (v->kind != JSON_KIND_STRING || v->len >= size)
		return -EPROTO;
	if (!v->escaped) {
		memcpy(out, v->text, v->len);
		out[v->len] = '\0';
		return 0;
	}
	char tmp[6 * LOCK_MAX_OWNER + 8];
	if (v->len > sizeof tmp)
		return -EPROTO;
	long n = json_token_unescape(v, tmp);
	if (n < 0 || (size_t)n >= size)
		return -EPROTO;
	memcpy(out, tmp, (size_t)n);
	out[n] = '\0';
	return 0;
}

static int member(void *ctx, const struct json_token *k, const struct json_token *v)
{
	struct scan *sc = ctx;
	if (sc->header) {
		if (json_token_eq(k, "fence"))
			return get_u64(v, &sc->st->fence);
		if (json_token_eq(k, "reserved"))
			return get_u64(v, &sc->st->reserved);
		if (json_token_eq(k, "boot")) {
			sc->st->has_boot = true;
			return get_str(v, sc->st->boot, sizeof sc->st->boot);
		}
		if (json_token_eq(k, "name")) {
			sc->st->has_name = true;
			return get_str(v, sc->st->name, sizeof sc->st->name);
		}
		return 0;
	}
	struct lock_holder *h = &sc->e->h;
	uint64_t u = 0;
	if (json_token_eq(k, "token"))
		return get_str(v, h->token, sizeof h->token);
	if (json_token_eq(k, "owner"))
		return get_str(v, h->owner, sizeof h->owner);
	if (json_token_eq(k, "fence"))
		return get_u64(v, &h->fence);
	if (json_token_eq(k, "ttl_ms"))
		return get_u64(v, &h->ttl_ms);
	if (json_token_eq(k, "expires_ms"))
		return get_u64(v, &h->expires_ms);
	if (json_token_eq(k, "pid")) {
		int r = get_u64(v, &u);
		h->pid = (int64_t)u;
		return r;
	}
	if (json_token_eq(k, "pid_start"))
		return get_u64(v, &sc->e->pid_start);
	return 0;
}

/* Parse text into st, keeping only the grants alive at now_ms. */
static int state_parse(struct state *st, const char *text, size_t len, uint64_t now_ms)
{
	size_t at = 0;
	bool first = true;
	while (at < len) {
		const char *nl = memchr(text + at, '\n', len - at);
		size_t end = nl ? (size_t)(nl - text) : len;
		if (end > at) {
			struct scan sc = {.st = st, .header = first};
			if (!first) {
				if (st->n >= LOCK_MAX_LIMIT)
					return -EPROTO;
				sc.e = &st->e[st->n];
				memset(sc.e, 0, sizeof *sc.e);
			}
			long used = json_scan_object(text + at, end - at, member, &sc);
			if (used < 0)
				return -EPROTO;
			if (!first) {
				struct entry *e = sc.e;
				if (!lock_token_valid(e->h.token))
					return -EPROTO;
				if (e->h.expires_ms > now_ms && proc_alive(e->h.pid, e->pid_start))
					st->n++;
			}
			first = false;
		}
		at = end + 1;
	}
	return 0;
}

static void state_format(const struct state *st, struct buf *b)
{
	struct json_writer w;
	json_writer_init(&w, b);
	json_obj_begin(&w);
	json_kv_i64(&w, "dsys_lock", 1);
	json_kv_str(&w, "name", st->name);
	json_kv_u64(&w, "fence", st->fence);
	if (st->has_boot) {
		json_kv_u64(&w, "reserved", st->reserved);
		json_kv_str(&w, "boot", st->boot);
	}
	json_obj_end(&w);
	buf_putc(b, '\n');
	for (unsigned i = 0; i < st->n; i++) {
		const struct entry *e = &st->e[i];
		json_writer_init(&w, b);
		json_obj_begin(&w);
		json_kv_str(&w, "token", e->h.token);
		json_kv_u64(&w, "fence", e->h.fence);
		json_kv_str(&w, "owner", e->h.owner);
		json_kv_u64(&w, "ttl_ms", e->h.ttl_ms);
		json_kv_u64(&w, "expires_ms", e->h.expires_ms);
		json_kv_i64(&w, "pid", e->h.pid);
		json_kv_u64(&w, "pid_start", e->pid_start);
		json_obj_end(&w);
		buf_putc(b, '\n');
	}
}

/* ------------------------------------------------------------ files */

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
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

/* Replace DIR/fin with b's bytes through DIR/tmp; durable: fsync the file
 * before the rename and the directory after it. */
static int replace_file(struct file_impl *fi, const char *tmp, const char *fin,
                        const struct buf *b, bool durable)
{
	int fd = openat(fi->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	int r = fd < 0 ? -errno : write_all(fd, b->data, b->len);
	if (r == 0 && durable && fsync(fd) < 0)
		r = -errno;
	if (fd >= 0)
		close(fd);
	if (r == 0 && renameat(fi->dirfd, tmp, fi->dirfd, fin) < 0)
		r = -errno;
	if (r == 0 && durable && fsync(fi->dirfd) < 0)
		r = -errno;
	return r;
}

static int state_save(struct file_impl *fi, const char *base, const struct state *st)
{
	char tmp[FILE_MAX_BASE + 16], fin[FILE_MAX_BASE + 16];
	snprintf(tmp, sizeof tmp, "%s.tmp", base);
	snprintf(fin, sizeof fin, "%s.state", base);
	struct buf b = BUF_INIT;
	state_format(st, &b);
	int r = replace_file(fi, tmp, fin, &b, !st->has_boot);
	buf_free(&b);
	return r;
}

/* BASE.fence's reservation, 0 when there is none yet. */
static int reserve_load(struct file_impl *fi, const char *base, uint64_t *out)
{
	char path[FILE_MAX_BASE + 16], text[128];
	snprintf(path, sizeof path, "%s.fence", base);
	*out = 0;
	int fd = openat(fi->dirfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	ssize_t n;
	while ((n = read(fd, text, sizeof text - 1)) < 0 && errno == EINTR)
		;
	int e = errno;
	close(fd);
	if (n < 0)
		return -e;
	text[n] = '\0';
	const char *p = strstr(text, "\"reserved\":");
	char *end;
	unsigned long long v = p ? strtoull(p + 11, &end, 10) : 0;
	if (!p || end == p + 11)
		return -EPROTO;
	*out = v;
	return 0;
}

static int reserve_save(struct file_impl *fi, const char *base, uint64_t reserved)
{
	char tmp[FILE_MAX_BASE + 16], fin[FILE_MAX_BASE + 16];
	snprintf(tmp, sizeof tmp, "%s.ftmp", base);
	snprintf(fin, sizeof fin, "%s.fence", base);
	struct buf b = BUF_INIT;
	char line[64];
	int n = snprintf(line, sizeof line, "{\"reserved\":%llu}\n", (unsigned long long)reserved);
	buf_append(&b, line, (size_t)n);
	int r = replace_file(fi, tmp, fin, &b, true);
	buf_free(&b);
	return r;
}

/* After state_load: make st's counter and reservation trustworthy.  A
 * state from this boot is; one from another boot (or none) goes on from
 * BASE.fence, and its grants died with that boot.  A state with no boot
 * was written durably (no boot id then, or an older dsys-lock): its
 * grants hold.  Either way nothing is reserved beyond the counter yet. */
static int state_settle(struct file_impl *fi, const char *base, struct state *st, bool existed)
{
	if (!fi->boot[0]) {
		st->has_boot = false;
		return 0;
	}
	if (existed && st->has_boot && !strcmp(st->boot, fi->boot))
		return 0;
	uint64_t reserved;
	int r = reserve_load(fi, base, &reserved);
	if (r < 0)
		return r;
	if (existed && st->has_boot)
		st->n = 0;   /* grants of a boot that is over */
	if (reserved > st->fence)
		st->fence = reserved;
	st->reserved = st->fence;   /* nothing beyond it is reserved for this boot */
	st->has_boot = true;
	snprintf(st->boot, sizeof st->boot, "%s", fi->boot);
	return 0;
}

/* Before handing out st->fence + 1: reserve a block if it passes the
 * reservation. */
static int fence_next(struct file_impl *fi, const char *base, struct state *st, uint64_t *out)
{
	uint64_t next = st->fence + 1;
	if (st->has_boot && next > st->reserved) {
		int r = reserve_save(fi, base, next + FENCE_BLOCK - 1);
		if (r < 0)
			return r;
		st->reserved = next + FENCE_BLOCK - 1;
	}
	st->fence = next;
	*out = next;
	return 0;
}

static int state_load(struct file_impl *fi, const char *base, struct state *st, uint64_t now_ms,
                      bool *existed)
{
	char fin[FILE_MAX_BASE + 16];
	snprintf(fin, sizeof fin, "%s.state", base);
	*existed = false;
	int fd = openat(fi->dirfd, fin, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	*existed = true;
	struct buf b = BUF_INIT;
	int r = 0;
	char chunk[8192];
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		if (b.len + (size_t)n > FILE_MAX_STATE) {
			r = -EPROTO;
			break;
		}
		buf_append(&b, chunk, (size_t)n);
	}
	close(fd);
	if (r == 0)
		r = state_parse(st, b.data ? b.data : "", b.len, now_ms);
	buf_free(&b);
	return r;
}

/* flock with a bound: a process stopped (SIGSTOP) inside its few
 * microseconds of read-modify-write must not hang every other one. */
static int lock_file(struct lock_store *s, const char *base, int *out)
{
	struct file_impl *fi = s->impl;
	char path[FILE_MAX_BASE + 16];
	snprintf(path, sizeof path, "%s.lock", base);
	int fd = openat(fi->dirfd, path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
	if (fd < 0)
		return -errno;
	uint64_t start = uv_hrtime();
	long sleep_us = 50;
	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK && errno != EINTR) {
			int e = -errno;
			close(fd);
			return e;
		}
		if (uv_hrtime() - start > (uint64_t)s->opt.timeout_ms * 1000000) {
			close(fd);
			snprintf(fi->err, sizeof fi->err, "%s stayed locked for %u ms", path, s->opt.timeout_ms);
			return -ETIMEDOUT;
		}
		struct timespec ts = {0, sleep_us * 1000};
		nanosleep(&ts, NULL);
		if (sleep_us < 5000)
			sleep_us *= 2;
	}
	*out = fd;
	return 0;
}

static int find(const struct state *st, const char *token)
{
	for (unsigned i = 0; i < st->n; i++)
		if (!strcmp(st->e[i].h.token, token))
			return (int)i;
	return -1;
}

static void file_start(struct lock_store *s, struct lock_op *op)
{
	struct file_impl *fi = s->impl;
	char base[FILE_MAX_BASE + 1];
	name_base(op->name, base, sizeof base);
	struct state st = {0};
	st.e = malloc(sizeof *st.e * LOCK_MAX_LIMIT);
	if (!st.e)
		return lock_op_done(op, -ENOMEM, NULL, 0);
	int fd = -1;
	int r = lock_file(s, base, &fd);
	uint64_t now = op->sent_ms;
	bool existed = false;
	if (r == 0)
		r = state_load(fi, base, &st, now, &existed);
	if (r == 0 && st.has_name && strcmp(st.name, op->name))
		r = -EPROTO;   /* a hash collision: not this name's state */
	if (r == 0)
		r = state_settle(fi, base, &st, existed);
	snprintf(st.name, sizeof st.name, "%s", op->name);
	struct lock_holder out;
	const struct lock_holder *res = NULL;
	unsigned nres = 0;
	if (r == 0) {
		int i;
		switch (op->kind) {
		case LOCK_OP_ACQUIRE:
			if (st.n >= op->limit) {
				r = -EBUSY;
				break;
			}
			INVARIANT(st.n < LOCK_MAX_LIMIT);
			struct entry *e = &st.e[st.n];
			memset(e, 0, sizeof *e);
			snprintf(e->h.name, sizeof e->h.name, "%s", op->name);
			memcpy(e->h.token, op->token, sizeof e->h.token);
			snprintf(e->h.owner, sizeof e->h.owner, "%s", op->owner);
			r = fence_next(fi, base, &st, &e->h.fence);
			if (r < 0)
				break;
			e->h.ttl_ms = op->ttl_ms;
			e->h.expires_ms = now + op->ttl_ms;
			e->h.pid = op->pid;
			e->pid_start = op->pid > 0 ? proc_start(op->pid) : 0;
			if (op->pid > 0 && e->pid_start == 0) {
				r = -ESRCH;
				break;
			}
			st.n++;
			r = state_save(fi, base, &st);
			out = e->h;
			res = &out;
			nres = 1;
			break;
		case LOCK_OP_RENEW:
			i = find(&st, op->token);
			if (i < 0) {
				r = -ENOENT;
				break;
			}
			st.e[i].h.ttl_ms = op->ttl_ms;
			st.e[i].h.expires_ms = now + op->ttl_ms;
			r = state_save(fi, base, &st);
			out = st.e[i].h;
			snprintf(out.name, sizeof out.name, "%s", op->name);
			res = &out;
			nres = 1;
			break;
		case LOCK_OP_RELEASE:
			i = find(&st, op->token);
			if (i < 0) {
				r = -ENOENT;
				break;
			}
			st.e[i] = st.e[st.n - 1];
			st.n--;
			r = state_save(fi, base, &st);
			break;
		case LOCK_OP_STATUS:
			for (unsigned j = 0; j < st.n; j++)
				snprintf(st.e[j].h.name, sizeof st.e[j].h.name, "%s", op->name);
			/* lock_op_done copies nothing: pass the entries' holders
			 * through a compact array */
			{
				struct lock_holder *hs = malloc(sizeof *hs * (st.n ? st.n : 1));
				if (!hs) {
					r = -ENOMEM;
					break;
				}
				for (unsigned j = 0; j < st.n; j++)
					hs[j] = st.e[j].h;
				if (fd >= 0)
					close(fd);
				free(st.e);
				lock_op_done(op, 0, hs, st.n);
				free(hs);
				return;
			}
		}
	}
	if (fd >= 0)
		close(fd);   /* drops the flock */
	free(st.e);
	lock_op_done(op, r, r ? NULL : res, r ? 0 : nres);
}

static void file_close(struct lock_store *s)
{
	struct file_impl *fi = s->impl;
	close(fi->dirfd);
	free(fi);
}

static const char *file_last_error(const struct lock_store *s)
{
	const struct file_impl *fi = s->impl;
	return fi->err;
}

static const struct lock_backend file_backend = {"file:", file_start, file_close, file_last_error, NULL, NULL};

int lock_file_open(struct lock_store *s)
{
	const char *dir = s->url.path;
	if (mkdir(dir, 0777) < 0 && errno != EEXIST)
		return -errno;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct file_impl *fi = calloc(1, sizeof *fi);
	if (!fi) {
		close(fd);
		return -ENOMEM;
	}
	fi->dirfd = fd;
	int bfd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	if (bfd >= 0) {
		ssize_t n = read(bfd, fi->boot, BOOT_LEN);
		close(bfd);
		fi->boot[n == BOOT_LEN ? BOOT_LEN : 0] = '\0';
	}
	s->impl = fi;
	s->be = &file_backend;
	return 0;
}
