/*
 * test_wal.c -- lib/store/wal: records come back in order after a reopen,
 * durability advances, a torn tail is cut, damage in the middle refused,
 * a second opener refused, compaction keeps exactly the snapshot, and a
 * replay hook's refusal fails the open.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "tap.h"
#include "store/wal.h"

/* What a test store remembers: the records replayed, and a synced count. */
struct rec_log {
	char recs[2000][32];
	int n;
	int synced;
	int refuse_at;      /* replay refuses record number refuse_at (1-based), 0: none */
	const char *snap;   /* what the snapshot hook writes, one record per char */
};

static int on_replay(void *ud, const unsigned char *rec, size_t len)
{
	struct rec_log *l = ud;
	if (l->refuse_at && l->n + 1 == l->refuse_at)
		return -EBADMSG;
	if (len >= sizeof l->recs[0] || l->n >= 2000)
		return -E2BIG;
	memcpy(l->recs[l->n], rec, len);
	l->recs[l->n][len] = 0;
	l->n++;
	return 0;
}

static int on_snapshot(void *ud, struct buf *out)
{
	struct rec_log *l = ud;
	for (const char *p = l->snap; *p; p++) {
		struct iovec v = { (void *)p, 1 };
		wal_record_put(out, &v, 1);
	}
	return 0;
}

static void on_synced(void *ud)
{
	((struct rec_log *)ud)->synced++;
}

static const struct wal_hooks hooks = { on_replay, on_snapshot, on_synced };

static uint64_t append_str(struct wal *w, const char *s)
{
	/* two parts, to check they are concatenated */
	size_t n = strlen(s), half = n / 2;
	struct iovec v[2] = { { (void *)s, half }, { (void *)(s + half), n - half } };
	wal_lock(w);
	uint64_t seq = wal_appendv(w, v, 2);
	wal_unlock(w);
	return seq;
}

static int wait_durable(struct wal *w, uint64_t seq)
{
	for (int i = 0; i < 5000; i++) {
		if (wal_durable(w) >= seq)
			return 1;
		usleep(1000);
	}
	return 0;
}

static off_t file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? st.st_size : -1;
}

int main(void)
{
	log_set_level(LOG_ERROR);   /* the torn-tail warning is expected */
	char dir[] = "/tmp/test_wal.XXXXXX";
	if (!mkdtemp(dir))
		return 1;
	char path[256], logp[300];
	snprintf(path, sizeof path, "%s/w", dir);
	snprintf(logp, sizeof logp, "%s/log", path);
	char err[512];

	/* ---- append, reopen, replay in order */
	static struct rec_log a, b;
	struct wal *w = NULL;
	int r = wal_open(path, NULL, &hooks, &a, &w, err, sizeof err);
	is_int(r, 0, "open a new log (creates the directory)");
	ok(a.n == 0 && wal_durable(w) == 0 && wal_appended(w) == 0, "a new log is empty");
	uint64_t last = 0;
	char s[32];
	for (int i = 0; i < 300; i++) {
		snprintf(s, sizeof s, "record-%d", i);
		uint64_t seq = append_str(w, s);
		ok(i == 0 || seq == last + 1, "sequence numbers count up") || (i = 300);
		last = seq;
	}
	is_int((int)last, 300, "300 appends, seq 300");
	ok(wait_durable(w, last), "durability reaches the last record");
	ok(a.synced >= 1, "the synced hook ran (%d groups for 300 records)", a.synced);

	/* ---- a second opener of the same directory is refused */
	struct wal *w2 = NULL;
	r = wal_open(path, NULL, &hooks, &b, &w2, err, sizeof err);
	is_int(r, -EBUSY, "a second opener gets -EBUSY");
	ok(strstr(err, "in use") != NULL, "... and says so: %s", err);
	ok(w2 == NULL, "... and no handle");
	wal_close(w);

	memset(&b, 0, sizeof b);
	r = wal_open(path, NULL, &hooks, &b, &w, err, sizeof err);
	is_int(r, 0, "reopen");
	is_int(b.n, 300, "all 300 records replayed");
	ok(strcmp(b.recs[0], "record-0") == 0 && strcmp(b.recs[299], "record-299") == 0,
	   "in order, parts concatenated (%s, %s)", b.recs[0], b.recs[299]);
	ok(wal_replayed(w) == 300, "wal_replayed counts them");
	off_t whole = file_size(logp);
	ok(whole > 0 && (uint64_t)whole == wal_bytes(w), "wal_bytes is the file's size");

	/* ---- read_only: kept out by a writer; readers share; nothing written */
	static struct rec_log ro1, ro2;
	struct wal_options ro = { .read_only = true };
	struct wal *r1 = NULL, *r2 = NULL;
	r = wal_open(path, &ro, &hooks, &ro1, &r1, err, sizeof err);
	is_int(r, -EBUSY, "read_only: a writer holding the directory keeps a reader out");
	wal_close(w);
	r = wal_open(path, &ro, &hooks, &ro1, &r1, err, sizeof err);
	is_int(r, 0, "read_only: open when no writer holds it");
	r = wal_open(path, &ro, &hooks, &ro2, &r2, err, sizeof err);
	is_int(r, 0, "read_only: a second reader opens beside the first");
	ok(ro1.n == 300 && ro2.n == 300, "read_only: both replayed every record");
	r = wal_open(path, NULL, &hooks, &b, &w, err, sizeof err);
	is_int(r, -EBUSY, "read_only: readers keep a writer out while they read");
	wal_close(r1);
	wal_close(r2);
	char nodir[300];
	snprintf(nodir, sizeof nodir, "%s/none", dir);
	memset(&ro1, 0, sizeof ro1);
	r = wal_open(nodir, &ro, &hooks, &ro1, &r1, err, sizeof err);
	ok(r == 0 && ro1.n == 0 && access(nodir, F_OK) < 0,
	   "read_only: a missing directory is an empty store, and is not created");
	wal_close(r1);
	ok(file_size(logp) == whole, "read_only: the log is as it was");

	/* ---- a torn tail is cut off, the rest kept */
	int fd = open(logp, O_WRONLY | O_APPEND);
	ok(fd >= 0 && write(fd, "\x11\x22\x33\x44\x30\x00\x00\x00\x01\x05", 10) == 10, "append half a record");
	close(fd);
	memset(&b, 0, sizeof b);
	r = wal_open(path, NULL, &hooks, &b, &w, err, sizeof err);
	is_int(r, 0, "a torn tail does not stop the open");
	is_int(b.n, 300, "... the 300 whole records are replayed");
	ok(file_size(logp) == whole, "... and the torn bytes are cut off the file");
	wal_close(w);

	/* ---- a whole record whose checksum fails at the very end is torn too */
	fd = open(logp, O_WRONLY | O_APPEND);
	ok(fd >= 0 && write(fd, "\x00\x00\x00\x00\x02\x00\x00\x00hi", 10) == 10, "append a bad last record");
	close(fd);
	memset(&b, 0, sizeof b);
	r = wal_open(path, NULL, &hooks, &b, &w, err, sizeof err);
	ok(r == 0 && b.n == 300 && file_size(logp) == whole, "a bad last record is a torn tail");
	wal_close(w);

	/* ---- a tail of zeros (a cut write on a file system that zero-fills)
	 * holds no good record: torn, not damage */
	fd = open(logp, O_WRONLY | O_APPEND);
	static const char zeros[100];
	ok(fd >= 0 && write(fd, zeros, sizeof zeros) == (ssize_t)sizeof zeros, "append 100 zero bytes");
	close(fd);
	memset(&b, 0, sizeof b);
	r = wal_open(path, NULL, &hooks, &b, &w, err, sizeof err);
	ok(r == 0 && b.n == 300 && file_size(logp) == whole, "a zero-filled tail is torn and cut");
	wal_close(w);

	/* ---- mark_cut: a cut is noted in DIR/cut before the truncation, and
	 * the note outlives later opens until the store clears it */
	struct wal_options mc = { .mark_cut = true };
	char cutp[320];
	snprintf(cutp, sizeof cutp, "%s/cut", path);
	memset(&b, 0, sizeof b);
	r = wal_open(path, &mc, &hooks, &b, &w, err, sizeof err);
	ok(r == 0 && !wal_tail_cut(w) && access(cutp, F_OK) < 0, "mark_cut: a whole log is not marked");
	wal_close(w);
	fd = open(logp, O_WRONLY | O_APPEND);
	ok(fd >= 0 && write(fd, "\x11\x22\x33\x44\x30\x00\x00\x00\x01\x05", 10) == 10, "append half a record again");
	close(fd);
	memset(&b, 0, sizeof b);
	r = wal_open(path, &mc, &hooks, &b, &w, err, sizeof err);
	ok(r == 0 && b.n == 300 && file_size(logp) == whole, "mark_cut: the torn tail is cut as before");
	ok(wal_tail_cut(w), "mark_cut: wal_tail_cut says a tail was cut");
	wal_close(w);
	memset(&b, 0, sizeof b);
	r = wal_open(path, &mc, &hooks, &b, &w, err, sizeof err);
	ok(r == 0 && wal_tail_cut(w), "mark_cut: the next open, with nothing to cut, still knows");
	is_int(wal_tail_cut_clear(w), 0, "wal_tail_cut_clear");
	ok(!wal_tail_cut(w) && access(cutp, F_OK) < 0, "... forgets it and removes DIR/cut");
	is_int(wal_tail_cut_mark(w, "an empty member"), 0, "wal_tail_cut_mark notes a loss of the store's own");
	ok(wal_tail_cut(w) && access(cutp, F_OK) == 0, "... as DIR/cut");
	wal_close(w);
	memset(&b, 0, sizeof b);
	r = wal_open(path, &mc, &hooks, &b, &w, err, sizeof err);
	ok(r == 0 && wal_tail_cut(w), "... which the next open still knows");
	is_int(wal_tail_cut_clear(w), 0, "and clears like a cut");
	wal_close(w);

	/* ---- damage in the middle is refused, the file untouched */
	fd = open(logp, O_RDWR);
	char c;
	ok(fd >= 0 && pread(fd, &c, 1, 100) == 1, "read byte 100");
	c ^= 0x40;
	ok(pwrite(fd, &c, 1, 100) == 1, "flip a bit in byte 100");
	close(fd);
	memset(&b, 0, sizeof b);
	r = wal_open(path, NULL, &hooks, &b, &w, err, sizeof err);
	is_int(r, -EBADMSG, "damage in the middle: -EBADMSG");
	ok(strstr(err, "damaged at byte") != NULL, "... and the message says where: %s", err);
	ok(file_size(logp) == whole, "... nothing was cut");
	fd = open(logp, O_RDWR);
	c ^= 0x40;
	ok(fd >= 0 && pwrite(fd, &c, 1, 100) == 1, "repair the bit");
	close(fd);

	/* ---- a replay hook's refusal fails the open */
	memset(&b, 0, sizeof b);
	b.refuse_at = 7;
	r = wal_open(path, NULL, &hooks, &b, &w, err, sizeof err);
	is_int(r, -EBADMSG, "the replay hook refusing record 7 fails the open");
	ok(strstr(err, "cannot load") != NULL, "... with a message: %s", err);

	/* ---- a length past max_record is damage, not a reason to read on */
	struct wal_options small = { .max_record = 4, .compact_bytes = 0 };
	memset(&b, 0, sizeof b);
	r = wal_open(path, &small, &hooks, &b, &w, err, sizeof err);
	is_int(r, -EBADMSG, "a good record longer than max_record is refused");
	ok(strstr(err, "more than the 4") != NULL, "... with a message: %s", err);
	ok(file_size(logp) == whole, "... and the log is not cut");

	/* ---- compaction: past compact_bytes the log becomes the snapshot */
	struct wal_options comp = { .max_record = 0, .compact_bytes = 1024 };
	memset(&b, 0, sizeof b);
	b.snap = "xyz";
	r = wal_open(path, &comp, &hooks, &b, &w, err, sizeof err);
	is_int(r, 0, "reopen with compaction on");
	is_int(b.n, 300, "... replaying the 300 records");
	uint64_t seq = append_str(w, "after");   /* the next group compacts instead */
	ok(wait_durable(w, seq), "the append is covered (by the snapshot)");
	ok(file_size(logp) == 3 * (8 + 1), "the log is now the 3 snapshot records (%lld bytes)",
	   (long long)file_size(logp));
	seq = append_str(w, "tail");
	ok(wait_durable(w, seq), "an append after the compaction is durable");
	wal_close(w);
	memset(&b, 0, sizeof b);
	r = wal_open(path, NULL, &hooks, &b, &w, err, sizeof err);
	ok(r == 0 && b.n == 4, "reopen: the snapshot's 3 records and the one after (%d)", b.n);
	ok(b.n == 4 && strcmp(b.recs[0], "x") == 0 && strcmp(b.recs[2], "z") == 0 &&
	   strcmp(b.recs[3], "tail") == 0, "... in order");
	ok(access(logp, F_OK) == 0, "log exists");
	char tmpp[300];
	snprintf(tmpp, sizeof tmpp, "%s/log.tmp", path);
	ok(access(tmpp, F_OK) != 0, "no log.tmp left behind");

	/* ---- close writes what was appended, without waiting by the caller */
	for (int i = 0; i < 50; i++)
		append_str(w, "closing");
	wal_close(w);
	memset(&b, 0, sizeof b);
	r = wal_open(path, NULL, &hooks, &b, &w, err, sizeof err);
	ok(r == 0 && b.n == 54, "records appended just before close are all there (%d)", b.n);
	wal_close(w);

	/* ---- wal_rewrite: the store's records replace the log, and what is
	 * appended after them follows */
	memset(&b, 0, sizeof b);
	r = wal_open(path, NULL, &hooks, &b, &w, err, sizeof err);
	ok(r == 0 && b.n == 54, "reopen before a rewrite");
	struct buf rw = BUF_INIT;
	struct iovec rv[1] = {{(void *)"state-1", 7}};
	wal_record_put(&rw, rv, 1);
	rv[0] = (struct iovec){(void *)"state-2", 7};
	wal_record_put(&rw, rv, 1);
	wal_lock(w);
	struct iovec cv[1] = {{(void *)"covered", 7}};
	wal_appendv(w, cv, 1);
	wal_rewrite(w, rw.data, rw.len);
	wal_unlock(w);
	uint64_t after = append_str(w, "after-1");
	append_str(w, "after-2");
	ok(wait_durable(w, after + 1), "records appended after a rewrite become durable");
	wal_close(w);
	buf_free(&rw);
	memset(&b, 0, sizeof b);
	r = wal_open(path, NULL, &hooks, &b, &w, err, sizeof err);
	ok(r == 0 && b.n == 4 && strcmp(b.recs[0], "state-1") == 0 && strcmp(b.recs[1], "state-2") == 0 &&
	   strcmp(b.recs[2], "after-1") == 0 && strcmp(b.recs[3], "after-2") == 0,
	   "the log is the rewrite's records, then what followed (%d records)", b.n);
	wal_close(w);

	/* ---- wal_rewrite_take: the same, the records' memory taken */
	memset(&b, 0, sizeof b);
	r = wal_open(path, NULL, &hooks, &b, &w, err, sizeof err);
	ok(r == 0 && b.n == 4, "reopen before a rewrite that takes its buffer");
	rv[0] = (struct iovec){(void *)"state-3", 7};
	wal_record_put(&rw, rv, 1);
	wal_lock(w);
	wal_appendv(w, cv, 1);
	wal_rewrite_take(w, &rw);
	wal_unlock(w);
	ok(rw.data == NULL && rw.len == 0, "the records' buffer is taken");
	after = append_str(w, "after-3");
	ok(wait_durable(w, after), "records appended after it become durable");
	wal_close(w);
	memset(&b, 0, sizeof b);
	r = wal_open(path, NULL, &hooks, &b, &w, err, sizeof err);
	ok(r == 0 && b.n == 2 && strcmp(b.recs[0], "state-3") == 0 && strcmp(b.recs[1], "after-3") == 0,
	   "the log is its records, then what followed (%d records)", b.n);
	wal_close(w);

	/* ---- the checksum is CRC-32C */
	is_int((long long)wal_crc32c("123456789", 9), 0xE3069283LL, "crc32c check value");
	{
		/* long enough for the 8-byte steps, odd enough for a tail and an
		 * unaligned start (the value from a bitwise reference) */
		static unsigned char pat[1001];
		for (int i = 0; i < 1000; i++)
			pat[1 + i] = (unsigned char)(i * 7 % 251);
		is_int((long long)wal_crc32c(pat + 1, 1000), 0xA345377ALL, "crc32c of 1000 bytes, unaligned");
		is_int((long long)wal_crc32c_more(wal_crc32c(pat + 1, 333), pat + 334, 667), 0xA345377ALL,
		       "crc32c of 1000 bytes in two parts");
		is_int((long long)wal_crc32c_more(wal_crc32c("", 0), "123456789", 9), 0xE3069283LL,
		       "crc32c continued from nothing");
	}

	/* ---- a directory that cannot be made */
	r = wal_open("/proc/nonexistent/dir", NULL, &hooks, &b, &w, err, sizeof err);
	ok(r < 0 && strstr(err, "cannot create") != NULL, "an impossible directory: %s", err);

	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		diag("could not remove %s", dir);
	return tap_done();
}
