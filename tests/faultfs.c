/*
 * tests/faultfs.c -- a failing or slow disk for the tests, by LD_PRELOAD:
 * build/tests/faultfs.so, never linked into a program.
 *
 *   LD_PRELOAD=build/tests/faultfs.so DSYS_FAULT_CTL=FILE [DSYS_FAULT_MATCH=/wal/] PROG ...
 *
 * While FILE does not exist the process runs untouched (one stat per
 * write or sync of a regular file).  Once it exists, its words (read on
 * every call, so a test changes them while the process runs) act on the
 * regular files whose path contains DSYS_FAULT_MATCH (default "/wal/"):
 *
 *   eio-write     write, pwrite and writev fail with EIO, writing nothing
 *   enospc-write  the same with ENOSPC (tests/raft_disk.bats also fills a
 *                 real tmpfs where it can mount one)
 *   eio-sync      fdatasync and fsync fail with EIO (the write went to the
 *                 page cache, the device refused it)
 *   delay-sync MS fdatasync and fsync sleep MS milliseconds first, then
 *                 sync: a slow disk
 *
 * The errors are the kernel's own errno values, returned where the kernel
 * would return them; the program under test cannot tell them from a
 * device's.  Directories match too (a directory fsync after a rename).
 * Only these libc calls are seen: a write through io_uring, mmap or a
 * static binary's own syscalls passes untouched (lib/store/wal uses
 * write and fdatasync).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

enum { F_EIO_WRITE = 1, F_ENOSPC_WRITE = 2, F_EIO_SYNC = 4, F_DELAY_SYNC = 8 };

/* The faults in force for fd: a bit set, and the sync delay in ms.  0 when
 * the control file is absent or fd is not a matching file or directory. */
static int faults_for(int fd, long *delay_ms)
{
	const char *ctl = getenv("DSYS_FAULT_CTL");
	struct stat st;
	if (!ctl || stat(ctl, &st) < 0)
		return 0;
	if (fstat(fd, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)))
		return 0;
	char link[64], path[4096];
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, path, sizeof path - 1);
	if (n < 0)
		return 0;
	path[n] = 0;
	const char *match = getenv("DSYS_FAULT_MATCH");
	if (!strstr(path, match && *match ? match : "/wal/"))
		return 0;
	int cfd = open(ctl, O_RDONLY | O_CLOEXEC);
	if (cfd < 0)
		return 0;
	char words[256];
	ssize_t k = read(cfd, words, sizeof words - 1);
	close(cfd);
	if (k <= 0)
		return 0;
	words[k] = 0;
	int f = 0;
	if (strstr(words, "eio-write"))
		f |= F_EIO_WRITE;
	if (strstr(words, "enospc-write"))
		f |= F_ENOSPC_WRITE;
	if (strstr(words, "eio-sync"))
		f |= F_EIO_SYNC;
	const char *d = strstr(words, "delay-sync");
	if (d) {
		f |= F_DELAY_SYNC;
		*delay_ms = strtol(d + strlen("delay-sync"), NULL, 10);
	}
	return f;
}

/* Does a write to fd fail, and with which errno (0: it goes on)? */
static int write_fault(int fd)
{
	long ms = 0;
	int f = faults_for(fd, &ms);
	return f & F_EIO_WRITE ? EIO : f & F_ENOSPC_WRITE ? ENOSPC : 0;
}

static int sync_fault(int fd)
{
	long ms = 0;
	int f = faults_for(fd, &ms);
	if (f & F_DELAY_SYNC && ms > 0) {
		struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	return f & F_EIO_SYNC ? EIO : 0;
}

/* The libc function this one stands in front of, looked up once. */
#define REAL(name) \
	static __typeof__(&name) real_##name; \
	if (!real_##name) \
		real_##name = (__typeof__(&name))dlsym(RTLD_NEXT, #name)

ssize_t write(int fd, const void *p, size_t n)
{
	REAL(write);
	int e = write_fault(fd);
	if (e) {
		errno = e;
		return -1;
	}
	return real_write(fd, p, n);
}

ssize_t pwrite(int fd, const void *p, size_t n, off_t at)
{
	REAL(pwrite);
	int e = write_fault(fd);
	if (e) {
		errno = e;
		return -1;
	}
	return real_pwrite(fd, p, n, at);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	REAL(writev);
	int e = write_fault(fd);
	if (e) {
		errno = e;
		return -1;
	}
	return real_writev(fd, iov, cnt);
}

int fdatasync(int fd)
{
	REAL(fdatasync);
	int e = sync_fault(fd);
	if (e) {
		errno = e;
		return -1;
	}
	return real_fdatasync(fd);
}

int fsync(int fd)
{
	REAL(fsync);
	int e = sync_fault(fd);
	if (e) {
		errno = e;
		return -1;
	}
	return real_fsync(fd);
}
