/*
 * snap.c -- the node's snapshot file, DIR/snap: the key-value store as of
 * one log index, beside the write-ahead log in DIR/wal.
 *
 *   "DSN1" | index u64 | term u64 | voters u64 | learners u64 | len u64
 *   | data[len] | crc32c u32 (of everything before it)
 *
 * Written to DIR/snap.tmp, fdatasync'd, renamed over DIR/snap and the
 * directory fsync'd, so a crash leaves the old snapshot or the new one,
 * whole.  There is one: a newer one replaces it.  The log refers to it
 * with an 'S' record (node.c) only once it is durable.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dsys-raft.h"
#include "raft/raft.h"
#include "store/wal.h"

#define SNAP_HEAD 44
/* The data goes out in chunks of this size, each started to disk as it is
 * written and waited for one chunk later (sync_file_range, as RocksDB's
 * bytes_per_sync does): the dirty pages of a store-sized file never pile
 * up, so the final fdatasync has little left, and the log's own syncs on
 * the same disk do not queue behind hundreds of MiB of writeback. */
#define SNAP_SYNC_CHUNK (8u << 20)

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static int write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n) {
		ssize_t k = write(fd, c, n);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		c += k;
		n -= (size_t)k;
	}
	return 0;
}

int snap_write(const char *dir, const struct raft_snapshot_meta *m, const void *data, size_t len)
{
	char tmp[4200], dst[4200];
	snprintf(tmp, sizeof tmp, "%.4000s/snap.tmp", dir);
	snprintf(dst, sizeof dst, "%.4000s/snap", dir);
	uint8_t head[SNAP_HEAD];
	memcpy(head, "DSN1", 4);
	put64(head + 4, m->index);
	put64(head + 12, m->term);
	put64(head + 20, m->conf.voters);
	put64(head + 28, m->conf.learners);
	put64(head + 36, len);
	/* one checksum over head and data, without copying the data (a
	 * store's size: this runs while the store and its encoded copy are
	 * both in memory) */
	uint32_t crc = wal_crc32c_more(wal_crc32c(head, sizeof head), data, len);
	uint8_t tail[4] = {(uint8_t)crc, (uint8_t)(crc >> 8), (uint8_t)(crc >> 16), (uint8_t)(crc >> 24)};
	int e = 0;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		e = -errno;
	if (!e)
		e = write_all(fd, head, sizeof head);
	const uint8_t *d = data;
	for (size_t off = 0; !e && off < len; off += SNAP_SYNC_CHUNK) {
		size_t n = len - off < SNAP_SYNC_CHUNK ? len - off : SNAP_SYNC_CHUNK;
		e = write_all(fd, d + off, n);
		/* advice only: an I/O error still comes back from fdatasync */
		if (!e)
			(void)sync_file_range(fd, (off_t)(SNAP_HEAD + off), (off_t)n, SYNC_FILE_RANGE_WRITE);
		if (!e && off)
			(void)sync_file_range(fd, (off_t)(SNAP_HEAD + off - SNAP_SYNC_CHUNK), SNAP_SYNC_CHUNK,
			                      SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
	}
	if (!e)
		e = write_all(fd, tail, 4);
	if (!e && fdatasync(fd) < 0)
		e = -errno;
	if (fd >= 0)
		close(fd);
	if (!e && rename(tmp, dst) < 0)
		e = -errno;
	if (!e) {
		int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0 || fsync(dfd) < 0)
			e = -errno;
		if (dfd >= 0)
			close(dfd);
	}
	if (e)
		unlink(tmp);
	return e;
}

int snap_read(const char *dir, struct raft_snapshot_meta *m, uint8_t **data, size_t *len, char *err,
              size_t err_size)
{
	char path[4200];
	snprintf(path, sizeof path, "%.4000s/snap", dir);
	*data = NULL;
	*len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return -ENOENT;
		snprintf(err, err_size, "cannot open '%s': %s", path, strerror(errno));
		return -errno;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	size_t size = (size_t)st.st_size;
	uint8_t *p = malloc(size ? size : 1);
	size_t got = 0;
	while (p && got < size) {
		ssize_t k = read(fd, p + got, size - got);
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	close(fd);
	if (!p) {
		return -ENOMEM;
	}
	uint64_t n = size >= SNAP_HEAD ? get64(p + 36) : 0;
	if (got != size || size < SNAP_HEAD + 4 || memcmp(p, "DSN1", 4) != 0 || n != size - SNAP_HEAD - 4 ||
	    wal_crc32c(p, size - 4) != ((uint32_t)p[size - 4] | (uint32_t)p[size - 3] << 8 |
	                                (uint32_t)p[size - 2] << 16 | (uint32_t)p[size - 1] << 24)) {
		snprintf(err, err_size, "'%s' is damaged (%zu bytes): refusing to start from it", path, size);
		free(p);
		return -EBADMSG;
	}
	m->index = get64(p + 4);
	m->term = get64(p + 12);
	m->conf.voters = get64(p + 20);
	m->conf.learners = get64(p + 28);
	*len = (size_t)n;
	memmove(p, p + SNAP_HEAD, (size_t)n);
	*data = p;
	return 0;
}
