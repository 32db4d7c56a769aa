/*
 * base/hex.h -- the value of one hexadecimal digit.
 *
 * Chunk sizes (http/parse), \uXXXX escapes (base/json) and %XX escapes
 * (http/url) all read hex digits; this is the one place that knows how.
 * It takes any byte: a caller that has not checked the digit first gets
 * -1 for anything outside 0-9, a-f, A-F.  Two compares and no table, so
 * it inlines into the parsers' hot loops.
 */
#ifndef DSYS_HEX_H
#define DSYS_HEX_H

/* 0..15, or -1 when c is not a hex digit. */
static inline int hex_val(unsigned char c)
{
	unsigned d = (unsigned)c - '0';
	if (d < 10)
		return (int)d;
	unsigned l = (unsigned)(c | 0x20) - 'a';   /* folds A-F onto a-f */
	return l < 6 ? (int)l + 10 : -1;
}

/* The digit for v (0..15), upper case as RFC 3986 2.1 prefers. */
static inline char hex_digit(unsigned v)
{
	return "0123456789ABCDEF"[v & 15];
}

#endif
