/*
 * base/buf.c -- growable byte buffer.  Growth doubles, so appends are amortised
 * O(1); the trailing NUL is always kept in place.  A buffer of BUF_HUGE or
 * more asks the kernel for transparent huge pages (madvise; a hint, "madvise"
 * is the usual THP setting): a large buffer is filled front to back, and a
 * page fault per 2 MiB instead of per 4 KiB is what makes filling a store's
 * snapshot of 100 MiB take milliseconds instead of hundreds of them (a fault
 * costs over 10 us in a VM).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/invariant.h"

void buf_init(struct buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void buf_free(struct buf *b)
{
	free(b->data);
	buf_init(b);
}

void buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

void buf_reserve(struct buf *b, size_t extra)
{
	/* past this, need or the doubling below would wrap: treat it as the
	 * allocation failure it would be */
	if (extra > SIZE_MAX / 2 - b->len)
		abort();
	size_t need = b->len + extra + 1;
	if (need <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap *= 2;
	char *p = realloc(b->data, cap);
	if (!p)
		abort();
	b->data = p;
	b->cap = cap;
	buf_hint_huge(p, cap);
}

void buf_hint_huge(void *p, size_t n)
{
	if (n < BUF_HUGE)
		return;
	/* the 2 MiB-aligned inside of it; glibc gives a block this large its
	 * own mapping, so no other allocation shares those pages */
	const uintptr_t h = (uintptr_t)2 << 20;
	uintptr_t from = ((uintptr_t)p + h - 1) & ~(h - 1), to = ((uintptr_t)p + n) & ~(h - 1);
	if (to > from)
		(void)madvise((void *)from, to - from, MADV_HUGEPAGE);
}

void buf_append(struct buf *b, const void *p, size_t n)
{
	buf_reserve(b, n);
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void buf_puts(struct buf *b, const char *s)
{
	buf_append(b, s, strlen(s));
}

void buf_putc(struct buf *b, char c)
{
	buf_reserve(b, 1);
	b->data[b->len++] = c;
	b->data[b->len] = '\0';
}

void buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	buf_reserve(b, 64);
	int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
	INVARIANT(n >= 0);
	if ((size_t)n >= b->cap - b->len) {
		buf_reserve(b, (size_t)n);
		vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap2);
	}
	va_end(ap2);
	b->len += (size_t)n;
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(b, fmt, ap);
	va_end(ap);
}

size_t fmt_u64(char *dst, uint64_t v)
{
	char tmp[20];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		dst[i] = tmp[n - 1 - i];
	dst[n] = '\0';
	return n;
}

size_t fmt_i64(char *dst, int64_t v)
{
	if (v < 0) {
		dst[0] = '-';
		/* negate in unsigned arithmetic: -INT64_MIN overflows int64_t */
		return 1 + fmt_u64(dst + 1, (uint64_t)0 - (uint64_t)v);
	}
	return fmt_u64(dst, (uint64_t)v);
}

void buf_put_u64(struct buf *b, uint64_t v)
{
	buf_reserve(b, 21);
	b->len += fmt_u64(b->data + b->len, v);
}

void buf_put_i64(struct buf *b, int64_t v)
{
	buf_reserve(b, 21);
	b->len += fmt_i64(b->data + b->len, v);
}

void buf_consume(struct buf *b, size_t n)
{
	INVARIANT(n <= b->len);
	if (n == 0)
		return;
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}

int buf_read_file(struct buf *b, const char *path, size_t max)
{
	bool is_stdin = strcmp(path, "-") == 0;
	int fd = is_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t start = b->len;
	int err = 0;
	for (;;) {
		buf_reserve(b, 65536);
		ssize_t n = read(fd, b->data + b->len, b->cap - b->len - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			break;
		}
		if (n == 0)
			break;
		b->len += (size_t)n;
		if (b->len - start > max) {
			err = -EFBIG;
			break;
		}
	}
	if (!is_stdin)
		close(fd);
	if (err)
		b->len = start;
	b->data[b->len] = '\0';
	return err;
}
