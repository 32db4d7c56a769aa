/*
 * base/buf.h -- a growable byte buffer, the one every module writes into.
 *
 * JSON lines, the metrics text, HTTP responses and request builders all
 * append to a struct buf.  The buffer owns its memory; buf_reset() keeps the
 * allocation for reuse, so a buffer that lives as long as a connection or a
 * thread costs no allocation in the steady state.
 *
 * Allocation failure is treated as fatal (abort): every program here runs
 * with memory sized for its limits, and a half-written buffer is worse than
 * a crash report.  data is always NUL-terminated (not counted in len), so a
 * buffer holding text can be passed to C string functions.
 */
#ifndef DSYS_BUF_H
#define DSYS_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

struct buf {
	char *data;    /* owned; NULL until the first append */
	size_t len;    /* bytes in use, not counting the trailing NUL */
	size_t cap;    /* bytes allocated */
};

#define BUF_INIT {NULL, 0, 0}

void buf_init(struct buf *b);
void buf_free(struct buf *b);              /* frees data; b may be reused after */
void buf_reset(struct buf *b);             /* len = 0, keeps the allocation */
void buf_reserve(struct buf *b, size_t extra); /* room for extra more bytes */
#define BUF_HUGE ((size_t)8 << 20) /* from this capacity on, huge pages are asked for */
/* Ask for huge pages for the malloc'd block p of n bytes, if n >= BUF_HUGE
 * (buf_reserve does it for a buffer's own block). */
void buf_hint_huge(void *p, size_t n);
void buf_append(struct buf *b, const void *p, size_t n);
void buf_puts(struct buf *b, const char *s);
void buf_putc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap);
void buf_put_u64(struct buf *b, uint64_t v);   /* decimal, no printf */
void buf_put_i64(struct buf *b, int64_t v);
void buf_consume(struct buf *b, size_t n); /* drop the first n bytes */

/* Append the whole file at path ("-": standard input) to b.  Returns 0,
 * -EFBIG when it holds more than max bytes, or -errno of the failed
 * open/read (-EISDIR for a directory); on an error b is as it was. */
int buf_read_file(struct buf *b, const char *path, size_t max);

/* Decimal formatting into a caller's array (at least 21 bytes); returns the
 * length written, not counting the NUL. */
size_t fmt_u64(char *dst, uint64_t v);
size_t fmt_i64(char *dst, int64_t v);

#endif
