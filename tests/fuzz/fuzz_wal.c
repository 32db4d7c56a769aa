/*
 * fuzz_wal.c -- libFuzzer target for lib/store/wal's recovery: the input is a
 * log file as a crash (or a disk) might leave it.
 *
 * The first byte picks max_record (small limits reach the "too long"
 * path); the rest becomes DIR/log.  Properties (trap on violation):
 *   - wal_open returns 0 or -EBADMSG (nothing else can fail here), with a
 *     message on failure;
 *   - on success the file is a prefix of the input (recovery only cuts a
 *     torn tail, never rewrites), every replayed record lies inside it, and
 *     the replayed records with their 8-byte heads add up to its length;
 *   - on failure the file is untouched;
 *   - a second open of what the first left replays the same records and
 *     cuts nothing more (recovery is idempotent).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "store/wal.h"

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

struct seen { size_t records, bytes; };

static int on_replay(void *ud, const unsigned char *rec, size_t len)
{
	struct seen *s = ud;
	volatile unsigned char sink = 0;
	for (size_t i = 0; i < len; i++)   /* touch every byte: ASan checks the bounds */
		sink ^= rec[i];
	(void)sink;
	s->records++;
	s->bytes += 8 + len;
	return 0;
}

static const struct wal_hooks hooks = { on_replay, NULL, NULL };

static char dir[64], logp[96];

static void put_file(const uint8_t *d, size_t n)
{
	int fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0);
	CHECK(n == 0 || write(fd, d, n) == (ssize_t)n);
	close(fd);
}

static size_t get_file(uint8_t *out, size_t cap)
{
	int fd = open(logp, O_RDONLY);
	CHECK(fd >= 0);
	ssize_t n = read(fd, out, cap);
	CHECK(n >= 0);
	close(fd);
	return (size_t)n;
}

static void cleanup(void)
{
	char p[128];
	unlink(logp);
	snprintf(p, sizeof p, "%s/lock", dir);
	unlink(p);
	rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 16384)
		return 0;
	if (!dir[0]) {
		/* on tmpfs where there is one: fsync is free there, so the
		 * fuzzer spends its time in recovery, not in the disk */
		log_set_level(LOG_ERROR);
		snprintf(dir, sizeof dir, "%s/fuzz_wal.XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
		CHECK(mkdtemp(dir) != NULL);
		snprintf(logp, sizeof logp, "%s/log", dir);
		atexit(cleanup);
	}
	static const uint32_t limits[] = { 0, 1, 8, 64 };
	struct wal_options o = { .max_record = limits[data[0] & 3], .compact_bytes = 0 };
	data++;
	size--;
	put_file(data, size);

	struct seen s = { 0, 0 };
	struct wal *w = NULL;
	char err[512] = "";
	int r = wal_open(dir, &o, &hooks, &s, &w, err, sizeof err);
	static uint8_t after[16384 + 1];
	size_t n = get_file(after, sizeof after);
	CHECK(r == 0 || r == -EBADMSG);
	if (r < 0) {
		CHECK(w == NULL && err[0]);
		CHECK(n == size && memcmp(after, data, size) == 0);
		return 0;
	}
	CHECK(n <= size && memcmp(after, data, n) == 0);
	CHECK(s.bytes == n);
	CHECK(wal_replayed(w) == s.records && wal_bytes(w) == n);
	wal_close(w);

	struct seen s2 = { 0, 0 };
	r = wal_open(dir, &o, &hooks, &s2, &w, err, sizeof err);
	CHECK(r == 0 && s2.records == s.records && s2.bytes == s.bytes);
	CHECK(get_file(after, sizeof after) == n);
	wal_close(w);
	return 0;
}
