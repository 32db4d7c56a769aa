/*
 * http/parse.c -- one strict HTTP/1.1 parser for requests and responses.
 *
 * Design.  A message head is parsed in a single left-to-right pass with no
 * state kept between calls: the caller passes everything received so far,
 * and gets 0 ("need more"), the head length, or an error.  Heads are small
 * and bounded, so re-scanning a partial head costs little, and having no
 * state means a head split at any byte parses exactly as one that arrived
 * whole.  Every decision is made at a fixed position of the input, in input
 * order, so the result for a prefix is either 0 or the result for the
 * whole: an error is reported as soon as the bytes that prove it are there
 * (a 414 for a target already too long, a 431 for a head already too big),
 * never later, never differently.
 *
 * Speed.  The scan is a handful of tight loops over one 256-entry
 * character-class table (tchar, field content, path bytes, hex, host,
 * scheme, digit): no per-byte function calls, no allocation, no copies.
 * The handful of fields that matter for framing (Host, Content-Length,
 * Transfer-Encoding, Connection, Expect) are recognised by length first and
 * a case-insensitive compare second, so ordinary fields cost one switch.
 *
 * Limits.  The request target is bounded by max_uri alone, the rest of the
 * head by max_header_bytes counted from the first byte; so a 9 KiB target
 * is a 414 with the default limits, not a 431.  http_parse_buffer_size()
 * says how many bytes a caller must be ready to hold for the parser to be
 * able to decide.
 *
 * Strictness: see http_parse.h.  Where RFC 9112 lets a recipient choose,
 * we reject: bare LF, bare CR, obs-fold, whitespace before a colon, empty
 * lines before the request line, CL with TE, TE in HTTP/1.0, chunked
 * applied twice, invalid percent-escapes in the target, a chunk-size with
 * more than 16 significant hex digits, a malformed chunk extension.
 *
 * Bodies.  struct http_body is the only state machine: it frames
 * Content-Length, chunked and read-until-close bodies, and decodes chunked
 * data in place (output never overtakes input, so memmove suffices).
 */
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "base/hex.h"
#include "http/parse.h"
#include "base/invariant.h"

/* ---------------------------------------------------------------- tables */

enum {
	C_TCHAR = 0x01,  /* token character (RFC 9110 5.6.2) */
	C_VALUE = 0x02,  /* field-vchar, obs-text, SP, HTAB: field content */
	C_PATH = 0x04,   /* pchar or '/', minus '%': target bytes needing no care */
	C_HEX = 0x08,
	C_HOST = 0x10,   /* reg-name, IP-literal, port: unreserved sub-delims : [ ] % */
	C_SCHEME = 0x20, /* ALPHA DIGIT + - . */
	C_DIGIT = 0x40,
	C_REG = 0x80,    /* reg-name bytes but '%': unreserved, sub-delims */
};

/* Generated once from the RFC 9110 / RFC 3986 character sets. */
static const unsigned char cls[256] = {
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x02, 0x97, 0x02, 0x03, 0x97, 0x13, 0x97, 0x97, 0x96, 0x96, 0x97, 0xb7, 0x96, 0xb7, 0xb7, 0x06,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x16, 0x96, 0x02, 0x96, 0x02, 0x02,
	0x06, 0xbf, 0xbf, 0xbf, 0xbf, 0xbf, 0xbf, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7,
	0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0x12, 0x02, 0x12, 0x03, 0x97,
	0x03, 0xbf, 0xbf, 0xbf, 0xbf, 0xbf, 0xbf, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7,
	0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0x02, 0x03, 0x02, 0x97, 0x00,
	0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
	0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
	0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
	0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
	0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
	0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
	0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
	0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
};

#define IS(c, k) (cls[(unsigned char)(c)] & (k))

static inline unsigned char lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

/* a[0..n) equals the lowercase literal lit (of length n), ignoring case. */
static inline bool eq_lower(const char *a, const char *lit, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (lower((unsigned char)a[i]) != (unsigned char)lit[i])
			return false;
	return true;
}

/*
 * The same for bytes known to be tchar or field content, against a literal
 * of lowercase letters, digits and '-': there c | 0x20 equals a literal
 * byte only for that byte or its uppercase, so eight bytes compare at once.
 */
static inline bool eq_fold(const char *a, const char *lit, size_t n)
{
	const uint64_t fold = 0x2020202020202020ULL;
	uint64_t x, y;
	if (n >= 8) {
		for (size_t i = 0; i + 8 <= n; i += 8) {
			memcpy(&x, a + i, 8);
			memcpy(&y, lit + i, 8);
			if ((x | fold) != y)
				return false;
		}
		memcpy(&x, a + n - 8, 8);
		memcpy(&y, lit + n - 8, 8);
		return (x | fold) == y;
	}
	if (n >= 4) {
		uint32_t u, v;
		memcpy(&u, a, 4);
		memcpy(&v, lit, 4);
		if ((u | (uint32_t)fold) != v)
			return false;
		memcpy(&u, a + n - 4, 4);
		memcpy(&v, lit + n - 4, 4);
		return (u | (uint32_t)fold) == v;
	}
	for (size_t i = 0; i < n; i++)
		if (((unsigned char)a[i] | 0x20) != (unsigned char)lit[i])
			return false;
	return true;
}

/* First byte in [p, end) not of class k (or end), four bytes a round. */
static inline const char *scan_class(const char *p, const char *end, unsigned char k)
{
	while (end - p >= 4) {
		if (!IS(p[0], k)) return p;
		if (!IS(p[1], k)) return p + 1;
		if (!IS(p[2], k)) return p + 2;
		if (!IS(p[3], k)) return p + 3;
		p += 4;
	}
	while (p < end && IS(*p, k))
		p++;
	return p;
}

/*
 * First byte in [p, end) that is not field content (a CTL other than HTAB,
 * or DEL), or end.  With SSE2, sixteen bytes a round: a byte is a stop when
 * max(x, 0x1f) == 0x1f (x <= 0x1f unsigned) or x == 0x7f; HTAB stops the
 * vector loop and is stepped over.
 */
static inline const char *scan_value(const char *p, const char *end)
{
#ifdef __SSE2__
	const __m128i ctl = _mm_set1_epi8(0x1f), del = _mm_set1_epi8(0x7f);
	while (end - p >= 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
		__m128i stop = _mm_or_si128(_mm_cmpeq_epi8(_mm_max_epu8(v, ctl), ctl),
		                            _mm_cmpeq_epi8(v, del));
		int mask = _mm_movemask_epi8(stop);
		if (!mask) {
			p += 16;
			continue;
		}
		p += __builtin_ctz((unsigned)mask);
		if (*p != '\t')
			return p;
		p++;
	}
#endif
	return scan_class(p, end, C_VALUE);
}

#ifdef __SSE2__
/*
 * Bit i set when byte i of v is a letter, a digit, '-' or '.' (with path,
 * '/' too): the bytes that make up nearly every field name, host and path.
 * Each is in C_TCHAR, C_REG and C_PATH (and '/' in C_PATH), so a run of
 * them needs no table lookup; anything else is looked up byte by byte.
 * Unsigned x <= k is subs_epu8(x, k) == 0; the letter test folds case with
 * | 0x20, which maps no other byte into 'a'..'z'.
 */
static inline unsigned common_mask(__m128i v, bool path)
{
	const __m128i zero = _mm_setzero_si128();
	__m128i lo = _mm_sub_epi8(_mm_or_si128(v, _mm_set1_epi8(0x20)), _mm_set1_epi8('a'));
	__m128i alpha = _mm_cmpeq_epi8(_mm_subs_epu8(lo, _mm_set1_epi8(25)), zero);
	/* '-' '.' '/' '0'..'9' are 0x2d..0x39 */
	__m128i d = _mm_sub_epi8(v, _mm_set1_epi8(0x2d));
	__m128i num = _mm_cmpeq_epi8(_mm_subs_epu8(d, _mm_set1_epi8(0x39 - 0x2d)), zero);
	if (!path)
		num = _mm_andnot_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('/')), num);
	return (unsigned)_mm_movemask_epi8(_mm_or_si128(alpha, num));
}
#endif

/*
 * scan_class for C_TCHAR, C_PATH or C_REG (k), sixteen common bytes a
 * round where SSE2 and the input allow; path says whether '/' is common
 * (it is for C_PATH only).  Same result as scan_class(p, end, k).
 */
static inline const char *scan_common(const char *p, const char *end, unsigned char k,
                                      bool path)
{
#ifdef __SSE2__
	while (end - p >= 16) {
		unsigned m = common_mask(_mm_loadu_si128((const __m128i *)(const void *)p), path);
		if (m == 0xffff) {
			p += 16;
			continue;
		}
		p += __builtin_ctz(~m);
		if (!IS(*p, k))
			return p;
		p++;
	}
#endif
	return scan_class(p, end, k);
}

static const struct http_limits default_limits = HTTP_LIMITS_DEFAULT;

/* Heads are returned as int: keep every position well inside its range. */
#define HEAD_CAP ((size_t)1 << 30)

size_t http_parse_buffer_size(const struct http_limits *lim)
{
	if (!lim)
		lim = &default_limits;
	size_t h = lim->max_header_bytes < HEAD_CAP ? lim->max_header_bytes : HEAD_CAP;
	size_t u = lim->max_uri < HEAD_CAP ? lim->max_uri : HEAD_CAP;
	size_t line = HTTP_MAX_METHOD + 1 + u;
	return (h > line ? h : line) + 1 + 2 * HTTP_MAX_EMPTY_LINES;
}

/* ---------------------------------------------------------------- fields */

/* What the field section says about framing, gathered in one pass. */
struct fields {
	uint32_t host_count;
	const char *host;
	uint32_t host_len;
	bool cl_seen;
	uint64_t cl;
	bool te_seen;
	uint32_t te_chunked;    /* how many times "chunked" appears */
	uint32_t te_other;      /* codings other than chunked */
	bool te_last_chunked;
	bool conn_close, conn_keep_alive, conn_upgrade;
	bool expect_continue;
};

/*
 * The inside of an IP-literal (RFC 3986 3.2.2), without its brackets:
 * an IPv6address (1-4 hex digits a group, 8 groups, or fewer with one
 * "::" standing for at least one, the last two groups optionally a
 * dotted-decimal IPv4 whose octets have no leading zeros) or an
 * IPvFuture ("v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )).
 * Rare, so it is kept out of line, off host_scan's fast path.
 */
static __attribute__((noinline, cold)) bool ip_literal_ok(const char *s, size_t n)
{
	size_t i = 0, groups = 0;
	bool elided = false;
	if (n && (s[0] == 'v' || s[0] == 'V')) {
		for (i = 1; i < n && IS(s[i], C_HEX); i++)
			;
		if (i == 1 || i >= n || s[i] != '.' || i + 1 >= n)
			return false;
		for (i++; i < n; i++)
			if (!IS(s[i], C_REG) && s[i] != ':')
				return false;
		return true;
	}
	if (n >= 2 && s[0] == ':' && s[1] == ':') {
		elided = true;
		i = 2;
	}
	while (i < n) {
		size_t j = i;
		while (j < n && s[j] != ':' && s[j] != '.')
			j++;
		if (j < n && s[j] == '.') {
			/* the dotted-decimal IPv4 tail: must end the literal */
			for (int oct = 0; oct < 4; oct++) {
				size_t d = i;
				unsigned val = 0;
				while (d < n && d - i < 4 && IS(s[d], C_DIGIT))
					val = val * 10 + (unsigned)(s[d++] - '0');
				if (d == i || d - i > 3 || val > 255 || (d - i > 1 && s[i] == '0'))
					return false;
				i = d;
				if (oct < 3) {
					if (i >= n || s[i] != '.')
						return false;
					i++;
				}
			}
			if (i != n)
				return false;
			groups += 2;
			break;
		}
		if (j == i || j - i > 4)
			return false;
		for (; i < j; i++)
			if (!IS(s[i], C_HEX))
				return false;
		groups++;
		if (i == n)
			break;
		i++;                             /* the ':' */
		if (i < n && s[i] == ':') {
			if (elided)
				return false;
			elided = true;
			i++;
		} else if (i == n) {
			return false;            /* a trailing single ':' */
		}
	}
	return elided ? groups <= 7 : groups == 8;
}

/*
 * uri-host [ ":" port ] (RFC 3986 3.2.2): an IP-literal in brackets or a
 * reg-name (unreserved, pct-encoded, sub-delims), then optional digits.
 * Returns the length of the host part, or -1 when the syntax is wrong;
 * *has_port says whether a ':' followed it.  readable (>= n) is how many
 * bytes from v may be loaded: with sixteen, a host of letters, digits,
 * '-' and '.' and its port are checked with one vector load.
 */
static inline __attribute__((always_inline)) long host_scan(const char *v, size_t n, size_t readable, bool *has_port)
{
	size_t i = 0, host;
	*has_port = false;
#ifdef __SSE2__
	if (n <= 16 && readable >= 16 && (n == 0 || v[0] != '[')) {
		__m128i x = _mm_loadu_si128((const __m128i *)(const void *)v);
		unsigned in = (1u << n) - 1;
		unsigned odd = ~common_mask(x, false) & in;
		if (!odd)
			return (long)n;
		unsigned c = (unsigned)__builtin_ctz(odd);
		if (v[c] == ':') {
			/* '0'..'9' are 0x30..0x39 */
			__m128i d = _mm_sub_epi8(x, _mm_set1_epi8('0'));
			unsigned digits = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(
				_mm_subs_epu8(d, _mm_set1_epi8(9)), _mm_setzero_si128()));
			unsigned port = in & ~((2u << c) - 1);
			if (port & ~digits)
				return -1;
			*has_port = true;
			return (long)c;
		}
		/* '%', a sub-delim, '_', '~' or a bad byte: the general path */
	}
#endif
	if (n && v[0] == '[') {
		for (i = 1; i < n && v[i] != ']'; i++)
			if (!IS(v[i], C_HOST) || v[i] == '[' || v[i] == '%')
				return -1;
		if (i >= n || !ip_literal_ok(v + 1, i - 1))
			return -1;
		i++;
	} else {
		for (;;) {
			i = (size_t)(scan_common(v + i, v + n, C_REG, false) - v);
			if (i >= n || v[i] != '%')
				break;
			if (i + 2 >= n || !IS(v[i + 1], C_HEX) || !IS(v[i + 2], C_HEX))
				return -1;
			i += 3;
		}
	}
	host = i;
	if (i < n) {
		if (v[i] != ':')
			return -1;
		*has_port = true;
		for (i++; i < n; i++)
			if (!IS(v[i], C_DIGIT))
				return -1;
	}
	return (long)host;
}

/* Content-Length: 1*DIGIT, or a comma list of equal ones ("5, 5"). */
static int field_content_length(const char *v, size_t n, struct fields *f)
{
	size_t i = 0;
	bool any = false;
	uint64_t val = 0;
	for (;;) {
		if (i >= n || !IS(v[i], C_DIGIT))
			return HTTP_PARSE_ELENGTH;   /* empty element, sign, junk */
		uint64_t x = 0;
		while (i < n && IS(v[i], C_DIGIT)) {
			unsigned d = (unsigned char)v[i] - '0';
			if (x > (UINT64_C(0x7fffffffffffffff) - d) / 10)
				return HTTP_PARSE_ELENGTH;   /* past 2^63 - 1 */
			x = x * 10 + d;
			i++;
		}
		if (any && x != val)
			return HTTP_PARSE_ELENGTH;
		val = x;
		any = true;
		while (i < n && (v[i] == ' ' || v[i] == '\t'))
			i++;
		if (i == n)
			break;
		if (v[i] != ',')
			return HTTP_PARSE_ELENGTH;
		i++;
		while (i < n && (v[i] == ' ' || v[i] == '\t'))
			i++;
	}
	if (f->cl_seen && f->cl != val)
		return HTTP_PARSE_ELENGTH;
	f->cl_seen = true;
	f->cl = val;
	return 0;
}

/* The next non-empty element of a comma list from *i, or NULL at the end. */
static const char *elem_next(const char *v, size_t n, size_t *i, size_t *elen)
{
	while (*i < n) {
		size_t s = *i;
		while (*i < n && v[*i] != ',')
			(*i)++;
		size_t e = *i;
		if (*i < n)
			(*i)++;           /* skip the comma */
		while (s < e && (v[s] == ' ' || v[s] == '\t'))
			s++;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e > s) {
			*elen = e - s;
			return v + s;
		}
	}
	return NULL;
}

static void field_transfer_encoding(const char *v, size_t n, struct fields *f)
{
	size_t i = 0, el;
	const char *e;
	f->te_seen = true;
	while ((e = elem_next(v, n, &i, &el))) {
		if (el == 7 && eq_fold(e, "chunked", 7)) {
			f->te_chunked++;
			f->te_last_chunked = true;
		} else {
			f->te_other++;
			f->te_last_chunked = false;
		}
	}
}

static void field_connection(const char *v, size_t n, struct fields *f)
{
	size_t i = 0, el;
	const char *e;
	while ((e = elem_next(v, n, &i, &el))) {
		if (el == 5 && eq_fold(e, "close", 5))
			f->conn_close = true;
		else if (el == 10 && eq_fold(e, "keep-alive", 10))
			f->conn_keep_alive = true;
		else if (el == 7 && eq_fold(e, "upgrade", 7))
			f->conn_upgrade = true;
	}
}

/*
 * Parse field lines from buf[pos..] up to and including the empty line.
 * end is the scan limit (min of len and the head cap); over says whether
 * running into end means "too big" rather than "need more".  Returns the
 * head length, 0, or an error.
 */
static inline __attribute__((always_inline)) int parse_fields(const char *buf, size_t pos, const char *end, bool over,
                        struct http_message *m, struct fields *f)
{
	const int more = over ? HTTP_PARSE_EHEADERS : 0;
	const char *p = buf + pos;
	for (;;) {
		if (p >= end)
			return more;
		if (*p == '\r') {
			if (p + 1 >= end)
				return more;
			if (p[1] != '\n')
				return HTTP_PARSE_EINVAL;
			return (int)(p + 2 - buf);
		}
		const char *name = p;
		p = scan_common(p, end, C_TCHAR, false);
		if (p >= end)
			return more;
		/* obs-fold, an empty name, SP before ':' and bare LF all end here */
		if (*p != ':' || p == name)
			return HTTP_PARSE_EINVAL;
		if (m->n_headers == HTTP_MAX_HEADERS)
			return HTTP_PARSE_EHEADERS;
		size_t name_len = (size_t)(p - name);
		p++;
		if (p < end && *p == ' ')
			p++;             /* the usual one space, then any more OWS */
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		const char *val = p;
		p = scan_value(p, end);
		if (p >= end)
			return more;
		if (*p != '\r')
			return HTTP_PARSE_EINVAL;    /* CTL, NUL, DEL or bare LF */
		if (p + 1 >= end)
			return more;
		if (p[1] != '\n')
			return HTTP_PARSE_EINVAL;    /* bare CR */
		/* trailing OWS: in field content only SP and HTAB are <= ' ' */
		const char *vend = p;
		while (vend > val && (unsigned char)vend[-1] <= ' ')
			vend--;
		size_t vlen = (size_t)(vend - val);
		p += 2;

		struct http_header *h = &m->headers[m->n_headers++];
		h->name = name;
		h->name_len = (uint32_t)name_len;
		h->value = val;
		h->value_len = (uint32_t)vlen;

		switch (name_len) {
		case 4:
			if (eq_fold(name, "host", 4)) {
				bool port;
				if (host_scan(val, vlen, (size_t)(end - val), &port) < 0)
					return HTTP_PARSE_EHOST;
				f->host_count++;
				f->host = val;
				f->host_len = (uint32_t)vlen;
			}
			break;
		case 6:
			if (eq_fold(name, "expect", 6) && vlen == 12 &&
			    eq_fold(val, "100-continue", 12))
				f->expect_continue = true;
			break;
		case 10:
			if (eq_fold(name, "connection", 10))
				field_connection(val, vlen, f);
			break;
		case 14:
			if (eq_fold(name, "content-length", 14)) {
				int r = field_content_length(val, vlen, f);
				if (r < 0)
					return r;
			}
			break;
		case 17:
			if (eq_fold(name, "transfer-encoding", 17))
				field_transfer_encoding(val, vlen, f);
			break;
		}
	}
}

/*
 * Framing shared by both directions, once the head is complete (RFC 9112
 * 6.1-6.3, strict choices).  Sets body_kind and content_length.
 */
static inline int frame_body(struct http_message *m, const struct fields *f, uint64_t max_body)
{
	if (f->te_seen) {
		if (f->cl_seen)
			return HTTP_PARSE_ELENGTH;
		if (m->version_minor == 0)
			return HTTP_PARSE_EINVAL;
		if (f->te_chunked > 1)
			return HTTP_PARSE_EINVAL;
		if (f->te_other > 0)
			return HTTP_PARSE_ENOTIMPL;
		if (f->te_chunked == 0 || !f->te_last_chunked)
			return HTTP_PARSE_EINVAL;    /* empty list */
		m->body_kind = HTTP_BODY_CHUNKED;
		return 0;
	}
	if (f->cl_seen) {
		if (f->cl > max_body)
			return HTTP_PARSE_EBODY;
		m->content_length = f->cl;
		m->body_kind = f->cl ? HTTP_BODY_LENGTH : HTTP_BODY_NONE;
	}
	return 0;
}

static void message_reset(struct http_message *m)
{
	m->n_headers = 0;
	m->version_minor = 1;
	m->keep_alive = false;
	m->expect_continue = false;
	m->upgrade = false;
	m->body_kind = HTTP_BODY_NONE;
	m->content_length = 0;
	m->head_len = 0;
}

/*
 * "HTTP/" DIGIT "." DIGIT at p (8 bytes, caller checked).  Returns the minor
 * version (0 or 1; 1.2 and up count as 1.1, RFC 9110 2.5), EVERSION for a
 * major other than 1, EINVAL for anything else.
 */
static int parse_version(const char *p)
{
	if (memcmp(p, "HTTP/", 5) != 0 || !IS(p[5], C_DIGIT) || p[6] != '.' ||
	    !IS(p[7], C_DIGIT))
		return HTTP_PARSE_EINVAL;
	if (p[5] != '1')
		return HTTP_PARSE_EVERSION;
	return p[7] == '0' ? 0 : 1;
}

/* "HTTP/1.<minor>" and CRLF as the words memcpy loads them (any byte order). */
static inline uint64_t version_word(char minor)
{
	const char s[8] = {'H', 'T', 'T', 'P', '/', '1', '.', minor};
	uint64_t w;
	memcpy(&w, s, 8);
	return w;
}

static inline uint16_t crlf_word(void)
{
	uint16_t w;
	memcpy(&w, "\r\n", 2);
	return w;
}

/* ---------------------------------------------------------------- requests */

static enum http_method method_lookup(const char *s, size_t n)
{
	switch (n) {
	case 3:
		if (memcmp(s, "GET", 3) == 0) return HTTP_GET;
		if (memcmp(s, "PUT", 3) == 0) return HTTP_PUT;
		break;
	case 4:
		if (memcmp(s, "POST", 4) == 0) return HTTP_POST;
		if (memcmp(s, "HEAD", 4) == 0) return HTTP_HEAD;
		break;
	case 5:
		if (memcmp(s, "PATCH", 5) == 0) return HTTP_PATCH;
		if (memcmp(s, "TRACE", 5) == 0) return HTTP_TRACE;
		break;
	case 6:
		if (memcmp(s, "DELETE", 6) == 0) return HTTP_DELETE;
		break;
	case 7:
		if (memcmp(s, "OPTIONS", 7) == 0) return HTTP_OPTIONS;
		if (memcmp(s, "CONNECT", 7) == 0) return HTTP_CONNECT;
		break;
	}
	return HTTP_OTHER;
}

/* authority-form (CONNECT only): uri-host ":" port, both non-empty. */
static bool authority_form_ok(const char *t, size_t n)
{
	bool port;
	long h = host_scan(t, n, n, &port);
	return h > 0 && port && (size_t)h + 1 < n;
}

/*
 * Scan the request target starting at buf[pos], at most max_uri bytes of
 * it.  Returns the target's length (> 0) with *query set to the offset of
 * the first '?' (or -1); 0 when the input ends inside a target not yet over
 * the limit; EURI when it is; EINVAL for a byte no target may hold.
 */
static long scan_target(const char *buf, size_t pos, size_t len, size_t max_uri,
                        bool absolute, long *query)
{
	const char *t = buf + pos;
	size_t avail = len - pos;
	size_t lim = max_uri + 1 < avail ? max_uri + 1 : avail;
	size_t i = 0;
	*query = -1;
	for (;;) {
		i = (size_t)(scan_common(t + i, t + lim, C_PATH, true) - t);
		if (i >= lim)
			return i > max_uri ? HTTP_PARSE_EURI : 0;
		switch (t[i]) {
		case ' ':
			return i ? (long)i : HTTP_PARSE_EINVAL;
		case '?':
			if (*query < 0)
				*query = (long)i;
			i++;
			break;
		case '%':
			/* pct-encoded: two hex digits, checked as far as we have them */
			for (size_t j = i + 1; j < i + 3 && j < lim; j++)
				if (!IS(t[j], C_HEX))
					return HTTP_PARSE_EINVAL;
			if (i + 3 > lim)
				return lim > max_uri ? HTTP_PARSE_EURI : 0;
			i += 3;
			break;
		case '[':
		case ']':
			if (!absolute)
				return HTTP_PARSE_EINVAL;
			i++;
			break;
		default:
			return HTTP_PARSE_EINVAL;
		}
	}
}

static int parse_request(const char *buf, size_t len, const struct http_limits *lim,
                         struct http_request *req)
{
	if (!lim)
		lim = &default_limits;
	size_t cap = lim->max_header_bytes < HEAD_CAP ? lim->max_header_bytes : HEAD_CAP;
	size_t max_uri = lim->max_uri < HEAD_CAP ? lim->max_uri : HEAD_CAP;
	struct http_message *m = &req->m;
	message_reset(m);

	/* method SP: the common case first */
	size_t mlen;
	if (len >= 4 && memcmp(buf, "GET ", 4) == 0) {
		mlen = 3;
		req->method = HTTP_GET;
	} else {
		size_t mcap = len < HTTP_MAX_METHOD + 1 ? len : HTTP_MAX_METHOD + 1;
		mlen = 0;
		while (mlen < mcap && IS(buf[mlen], C_TCHAR))
			mlen++;
		if (mlen == mcap)
			return mlen > HTTP_MAX_METHOD ? HTTP_PARSE_EMETHOD : 0;
		if (buf[mlen] != ' ')
			return mlen == 0 && (buf[0] == '\r' || buf[0] == '\n')
			       ? HTTP_PARSE_EINVAL : HTTP_PARSE_EMETHOD;
		if (mlen == 0)
			return HTTP_PARSE_EMETHOD;
		req->method = method_lookup(buf, mlen);
	}
	req->method_str = buf;
	req->method_len = (uint32_t)mlen;

	/* request-target SP */
	size_t tpos = mlen + 1;
	if (tpos >= len)
		return 0;
	char t0 = buf[tpos];
	/* brackets (IP literals) only where an authority can be: absolute- and
	 * authority-form */
	bool absolute = t0 != '/' && t0 != '*';
	long query;
	long tl = scan_target(buf, tpos, len, max_uri, absolute, &query);
	if (tl <= 0)
		return (int)tl;
	size_t tlen = (size_t)tl;
	const char *t = buf + tpos;
	req->target = t;
	req->target_len = (uint32_t)tlen;
	req->path = t;
	req->path_len = (uint32_t)tlen;
	req->query = NULL;
	req->query_len = 0;
	if (req->method == HTTP_CONNECT) {
		if (!authority_form_ok(t, tlen))
			return HTTP_PARSE_EINVAL;
	} else if (t0 == '/') {
		if (query >= 0) {
			req->path_len = (uint32_t)query;
			req->query = t + query + 1;
			req->query_len = (uint32_t)(tlen - (size_t)query - 1);
		}
	} else if (t0 == '*') {
		if (tlen != 1 || req->method != HTTP_OPTIONS)
			return HTTP_PARSE_EINVAL;
	} else {
		/* absolute-form: scheme "://" authority ...; the http(s) URIs a
		 * server can be asked for all have an authority, and requiring it
		 * keeps "host:port" (authority-form) out of non-CONNECT requests */
		size_t i = 0;
		if (!((t0 | 0x20) >= 'a' && (t0 | 0x20) <= 'z'))
			return HTTP_PARSE_EINVAL;
		while (i < tlen && IS(t[i], C_SCHEME))
			i++;
		if (i + 3 > tlen || memcmp(t + i, "://", 3) != 0)
			return HTTP_PARSE_EINVAL;
		/* the authority: a non-empty uri-host [:port], no userinfo
		 * (RFC 9110 4.2.4: treat it as an error) */
		size_t a = i + 3, z = a;
		while (z < tlen && t[z] != '/' && t[z] != '?')
			z++;
		bool port;
		if (host_scan(t + a, z - a, z - a, &port) <= 0)
			return HTTP_PARSE_EINVAL;
	}

	/* HTTP-version CRLF */
	size_t vpos = tpos + tlen + 1;
	if (vpos > cap)
		return HTTP_PARSE_EHEADERS;
	size_t end = len < cap ? len : cap;
	bool over = len > cap;
	if (vpos + 10 > end)
		return over ? HTTP_PARSE_EHEADERS : 0;
	/* "HTTP/1.1" CRLF as two loads and compares, anything else the long way */
	uint64_t w;
	uint16_t crlf;
	memcpy(&w, buf + vpos, 8);
	memcpy(&crlf, buf + vpos + 8, 2);
	if (w == version_word('1') && crlf == crlf_word()) {
		m->version_minor = 1;
	} else {
		int v = parse_version(buf + vpos);
		if (v == HTTP_PARSE_EINVAL || buf[vpos + 8] != '\r' || buf[vpos + 9] != '\n')
			return HTTP_PARSE_EINVAL;
		if (v < 0)
			return v;
		m->version_minor = (uint8_t)v;
	}

	struct fields f;
	memset(&f, 0, sizeof f);
	int r = parse_fields(buf, vpos + 10, buf + end, over, m, &f);
	if (r <= 0)
		return r;

	if (f.host_count > 1 || (m->version_minor == 1 && f.host_count == 0))
		return HTTP_PARSE_EHOST;
	int e = frame_body(m, &f, lim->max_body);
	if (e < 0)
		return e;
	req->host = f.host_count ? f.host : NULL;
	req->host_len = f.host_count ? f.host_len : 0;
	m->keep_alive = m->version_minor == 1 ? !f.conn_close
	                                      : (f.conn_keep_alive && !f.conn_close);
	m->expect_continue = f.expect_continue && m->version_minor == 1;
	m->upgrade = f.conn_upgrade;
	m->head_len = (size_t)r;
	INVARIANT((size_t)r <= len && (size_t)r <= cap && m->n_headers <= HTTP_MAX_HEADERS);
	INVARIANT(m->body_kind != HTTP_BODY_EOF);
	return r;
}

/* ---------------------------------------------------------------- responses */

/*
 * RFC 9112 2.2: a server expecting a request-line SHOULD ignore at least
 * one empty line received before it (some clients send a CRLF after a POST
 * body).  Up to HTTP_MAX_EMPTY_LINES of them (CRLF, or a bare LF as nginx
 * and llhttp take it) are skipped here, only before a request-line, never
 * inside a message; they count in the head's length, so the caller
 * consumes them with it.  More is a 400, so a client cannot hold a
 * connection by sending nothing but line ends.
 */
int http_parse_request(const char *buf, size_t len, const struct http_limits *lim,
                       struct http_request *req)
{
	if (len == 0 || (buf[0] != '\r' && buf[0] != '\n'))
		return parse_request(buf, len, lim, req);
	size_t skip = 0;
	for (unsigned lines = 0; skip < len && (buf[skip] == '\r' || buf[skip] == '\n'); lines++) {
		if (lines == HTTP_MAX_EMPTY_LINES)
			return HTTP_PARSE_EINVAL;
		if (buf[skip] == '\r') {
			if (skip + 1 == len)
				return 0;
			if (buf[skip + 1] != '\n')
				return HTTP_PARSE_EINVAL;
			skip += 2;
		} else {
			skip++;
		}
	}
	if (skip == len)
		return 0;
	int r = parse_request(buf + skip, len - skip, lim, req);
	if (r > 0) {
		r += (int)skip;
		req->m.head_len += skip;
	}
	return r;
}

int http_parse_response(const char *buf, size_t len, const struct http_limits *lim,
                        enum http_method request_method, struct http_response *res)
{
	if (!lim)
		lim = &default_limits;
	size_t cap = lim->max_header_bytes < HEAD_CAP ? lim->max_header_bytes : HEAD_CAP;
	size_t end = len < cap ? len : cap;
	bool over = len > cap;
	int more = over ? HTTP_PARSE_EHEADERS : 0;
	struct http_message *m = &res->m;
	message_reset(m);

	/* HTTP-version SP 3DIGIT SP reason CRLF */
	if (end < 13)
		return more;
	int v = parse_version(buf);
	if (v == HTTP_PARSE_EINVAL || buf[8] != ' ')
		return HTTP_PARSE_EINVAL;
	if (v < 0)
		return v;
	m->version_minor = (uint8_t)v;
	if (!IS(buf[9], C_DIGIT) || !IS(buf[10], C_DIGIT) || !IS(buf[11], C_DIGIT) ||
	    buf[9] == '0' || buf[12] != ' ')
		return HTTP_PARSE_EINVAL;
	res->status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
	const char *e = buf + end;
	const char *p = scan_value(buf + 13, e);
	if (p >= e)
		return more;
	if (*p != '\r')
		return HTTP_PARSE_EINVAL;
	if (p + 1 >= e)
		return more;
	if (p[1] != '\n')
		return HTTP_PARSE_EINVAL;
	res->reason = buf + 13;
	res->reason_len = (uint32_t)(p - (buf + 13));

	struct fields f;
	memset(&f, 0, sizeof f);
	int r = parse_fields(buf, (size_t)(p + 2 - buf), e, over, m, &f);
	if (r <= 0)
		return r;

	int st = res->status;
	m->keep_alive = m->version_minor == 1 ? !f.conn_close
	                                      : (f.conn_keep_alive && !f.conn_close);
	m->upgrade = f.conn_upgrade;
	m->head_len = (size_t)r;
	if (request_method == HTTP_HEAD || st < 200 || st == 204 || st == 304 ||
	    (request_method == HTTP_CONNECT && st < 300)) {
		/* no body whatever the fields say; their syntax was still checked */
		if (f.te_seen && f.cl_seen)
			return HTTP_PARSE_ELENGTH;
		if (f.cl_seen)
			m->content_length = f.cl;
		return r;
	}
	int fe = frame_body(m, &f, lim->max_body);
	if (fe < 0)
		return fe;
	if (!f.te_seen && !f.cl_seen) {
		m->body_kind = HTTP_BODY_EOF;
		m->keep_alive = false;
	}
	return r;
}

/* ---------------------------------------------------------------- helpers */

bool http_header_is(const struct http_header *h, const char *lower_name)
{
	size_t n = strlen(lower_name);
	return h->name_len == n && eq_lower(h->name, lower_name, n);
}

const struct http_header *http_message_header(const struct http_message *m,
                                              const char *lower_name)
{
	size_t n = strlen(lower_name);
	for (uint32_t i = 0; i < m->n_headers; i++)
		if (m->headers[i].name_len == n && eq_lower(m->headers[i].name, lower_name, n))
			return &m->headers[i];
	return NULL;
}

bool http_value_has_token(const char *value, size_t len, const char *lower_tok)
{
	size_t n = strlen(lower_tok), i = 0, el;
	const char *e;
	while ((e = elem_next(value, len, &i, &el)))
		if (el == n && eq_lower(e, lower_tok, n))
			return true;
	return false;
}

int http_parse_status(int err)
{
	switch (err) {
	case HTTP_PARSE_EURI: return 414;
	case HTTP_PARSE_EHEADERS: return 431;
	case HTTP_PARSE_EVERSION: return 505;
	case HTTP_PARSE_ENOTIMPL: return 501;
	case HTTP_PARSE_EBODY: return 413;
	default: return 400;
	}
}

const char *http_parse_strerror(int err)
{
	switch (err) {
	case 0: return "success";
	case HTTP_PARSE_EINVAL: return "malformed request";
	case HTTP_PARSE_EURI: return "request target too long";
	case HTTP_PARSE_EHEADERS: return "header section too large";
	case HTTP_PARSE_EVERSION: return "http version not supported";
	case HTTP_PARSE_ENOTIMPL: return "transfer coding not implemented";
	case HTTP_PARSE_EBODY: return "body too large";
	case HTTP_PARSE_EHOST: return "missing, duplicate or invalid host";
	case HTTP_PARSE_ELENGTH: return "invalid or conflicting content-length";
	case HTTP_PARSE_ECHUNK: return "invalid chunked framing";
	case HTTP_PARSE_EMETHOD: return "invalid method";
	default: return "unknown error";
	}
}

const char *http_method_name(enum http_method m)
{
	static const char *const names[] = {
		"", "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT",
	};
	if ((unsigned)m >= sizeof names / sizeof names[0])
		return "";
	return names[m];
}

/* The reason phrases of IANA's HTTP Status Code Registry (RFC 9110 and the
 * RFCs that registered the rest: 4918 WebDAV, 8297, 8470, 7725, 6585, 2295,
 * 5842, 3229, 2774), so whatever status a handler answers reads as the RFC
 * words ("507 Insufficient Storage").  An unregistered code has no phrase:
 * the status-line's reason-phrase is optional (RFC 9112 4), and a made-up
 * word like "Unknown" would read as a reason. */
const char *http_status_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 101: return "Switching Protocols";
	case 102: return "Processing";
	case 103: return "Early Hints";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 203: return "Non-Authoritative Information";
	case 204: return "No Content";
	case 205: return "Reset Content";
	case 206: return "Partial Content";
	case 207: return "Multi-Status";
	case 208: return "Already Reported";
	case 226: return "IM Used";
	case 300: return "Multiple Choices";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 305: return "Use Proxy";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 402: return "Payment Required";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 407: return "Proxy Authentication Required";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 411: return "Length Required";
	case 412: return "Precondition Failed";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 416: return "Range Not Satisfiable";
	case 417: return "Expectation Failed";
	case 421: return "Misdirected Request";
	case 422: return "Unprocessable Content";
	case 423: return "Locked";
	case 424: return "Failed Dependency";
	case 425: return "Too Early";
	case 426: return "Upgrade Required";
	case 428: return "Precondition Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 451: return "Unavailable For Legal Reasons";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	case 506: return "Variant Also Negotiates";
	case 507: return "Insufficient Storage";
	case 508: return "Loop Detected";
	case 510: return "Not Extended";
	case 511: return "Network Authentication Required";
	default: return "";
	}
}

/* ---------------------------------------------------------------- bodies */

/*
 * The chunked decoder's states (RFC 9112 7.1):
 *
 *   chunk      = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   chunk-ext  = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )
 *   ext-val    = token / quoted-string
 *   last-chunk = 1*("0") [ chunk-ext ] CRLF
 *   trailer-section = *( field-line CRLF ) CRLF
 *
 * Framing bytes that carry no payload and could otherwise go on forever
 * (leading zeros, whitespace, extensions, trailers) count in meta, which
 * is held to max like the payload.
 */
enum {
	CS_SIZE = 0,     /* hex digits of a chunk-size */
	CS_SIZE_WS,      /* BWS after the size: only ';' may follow */
	CS_EXT_NAME0,    /* after ';': BWS, then the first tchar of a name */
	CS_EXT_NAME,     /* in a name */
	CS_EXT_NAME_WS,  /* BWS after a name: '=' or ';' must follow */
	CS_EXT_VAL0,     /* after '=': BWS, then a token or a quoted-string */
	CS_EXT_TOKEN,    /* in a token value */
	CS_EXT_QUOTED,   /* in a quoted-string */
	CS_EXT_ESCAPE,   /* after a backslash in a quoted-string */
	CS_EXT_QEND,     /* right after a quoted value's closing '"' */
	CS_EXT_VAL_WS,   /* BWS after a value: ';' must follow */
	CS_SIZE_LF,      /* LF ending the size line */
	CS_DATA,         /* chunk data, remaining bytes */
	CS_DATA_CR,      /* CR after chunk data */
	CS_DATA_LF,      /* LF after chunk data */
	CS_TRAILER,      /* start of a trailer line (or the final CRLF) */
	CS_TRAILER_NAME,
	CS_TRAILER_VALUE,
	CS_TRAILER_LF,
	CS_FINAL_LF,     /* LF of the last empty line */
	CS_DONE,
	CS_ERROR,        /* the error code is kept in size_digits, negated */
};

void http_body_init(struct http_body *b, const struct http_message *m, uint64_t max_body)
{
	memset(b, 0, sizeof *b);
	b->kind = m->body_kind;
	b->max = max_body;
	b->state = CS_SIZE;
	if (b->kind == HTTP_BODY_LENGTH)
		b->remaining = m->content_length;
}

static int body_fail(struct http_body *b, int err)
{
	b->state = CS_ERROR;
	b->size_digits = (uint8_t)-err;
	return err;
}

#define IS_WS(c) ((c) == ' ' || (c) == '\t')

static int body_chunked(struct http_body *b, char *p, size_t n, size_t *consumed,
                        size_t *data_len)
{
	size_t i = 0, out = 0;
	int ret = 0;
	while (i < n) {
		unsigned char c = (unsigned char)p[i];
		switch (b->state) {
		case CS_DATA: {
			size_t k = n - i;
			if (k > b->remaining)
				k = (size_t)b->remaining;
			if (out != i)
				memmove(p + out, p + i, k);
			out += k;
			i += k;
			b->total += k;
			b->remaining -= k;
			if (b->remaining == 0)
				b->state = CS_DATA_CR;
			continue;
		}
		case CS_SIZE:
			if (IS(c, C_HEX)) {
				if (b->remaining >> 60) {
					ret = body_fail(b, HTTP_PARSE_ECHUNK);   /* 2^64 and up */
					goto out;
				}
				if (b->size_digits < 255)
					b->size_digits++;
				if (b->remaining == 0 && c == '0') {
					i++;             /* a leading zero: framing, not size */
					goto count;
				}
				b->remaining = b->remaining << 4 | (uint64_t)hex_val(c);
				if (b->remaining > b->max - b->total) {
					ret = body_fail(b, HTTP_PARSE_EBODY);
					goto out;
				}
				break;
			}
			if (b->size_digits == 0)
				goto bad;
			if (c == ';')
				b->state = CS_EXT_NAME0;
			else if (IS_WS(c))
				b->state = CS_SIZE_WS;
			else if (c == '\r')
				b->state = CS_SIZE_LF;
			else
				goto bad;
			break;
		case CS_SIZE_WS:
			if (c == ';')
				b->state = CS_EXT_NAME0;
			else if (!IS_WS(c))
				goto bad;
			goto meta;
		case CS_EXT_NAME0:
			if (IS(c, C_TCHAR))
				b->state = CS_EXT_NAME;
			else if (!IS_WS(c))
				goto bad;
			goto meta;
		case CS_EXT_NAME:
			if (IS(c, C_TCHAR))
				;
			else if (c == '=')
				b->state = CS_EXT_VAL0;
			else if (c == ';')
				b->state = CS_EXT_NAME0;
			else if (IS_WS(c))
				b->state = CS_EXT_NAME_WS;
			else if (c == '\r')
				b->state = CS_SIZE_LF;
			else
				goto bad;
			goto meta;
		case CS_EXT_NAME_WS:
			if (c == '=')
				b->state = CS_EXT_VAL0;
			else if (c == ';')
				b->state = CS_EXT_NAME0;
			else if (!IS_WS(c))
				goto bad;
			goto meta;
		case CS_EXT_VAL0:
			if (IS(c, C_TCHAR))
				b->state = CS_EXT_TOKEN;
			else if (c == '"')
				b->state = CS_EXT_QUOTED;
			else if (!IS_WS(c))
				goto bad;
			goto meta;
		case CS_EXT_TOKEN:
			if (IS(c, C_TCHAR))
				;
			else if (c == ';')
				b->state = CS_EXT_NAME0;
			else if (IS_WS(c))
				b->state = CS_EXT_VAL_WS;
			else if (c == '\r')
				b->state = CS_SIZE_LF;
			else
				goto bad;
			goto meta;
		case CS_EXT_QUOTED:
			/* qdtext: HTAB SP VCHAR obs-text, but not '"' or '\' */
			if (c == '"')
				b->state = CS_EXT_QEND;
			else if (c == '\\')
				b->state = CS_EXT_ESCAPE;
			else if (!IS(c, C_VALUE))
				goto bad;
			goto meta;
		case CS_EXT_ESCAPE:
			if (!IS(c, C_VALUE))
				goto bad;
			b->state = CS_EXT_QUOTED;
			goto meta;
		case CS_EXT_QEND:
			if (c == ';')
				b->state = CS_EXT_NAME0;
			else if (IS_WS(c))
				b->state = CS_EXT_VAL_WS;
			else if (c == '\r')
				b->state = CS_SIZE_LF;
			else
				goto bad;
			goto meta;
		case CS_EXT_VAL_WS:
			/* BWS belongs before a ';', never before the CRLF (RFC 9112 7.1.1) */
			if (c == ';')
				b->state = CS_EXT_NAME0;
			else if (!IS_WS(c))
				goto bad;
			goto meta;
		case CS_SIZE_LF:
			if (c != '\n')
				goto bad;
			b->size_digits = 0;
			b->state = b->remaining ? CS_DATA : CS_TRAILER;
			break;
		case CS_DATA_CR:
			if (c != '\r')
				goto bad;
			b->state = CS_DATA_LF;
			break;
		case CS_DATA_LF:
			if (c != '\n')
				goto bad;
			b->state = CS_SIZE;
			break;
		case CS_TRAILER:
			if (c == '\r') {
				b->state = CS_FINAL_LF;
				break;
			}
			if (!IS(c, C_TCHAR))
				goto bad;    /* obs-fold, empty name, bare LF */
			b->state = CS_TRAILER_NAME;
			goto meta;
		case CS_TRAILER_NAME:
			if (c == ':')
				b->state = CS_TRAILER_VALUE;
			else if (!IS(c, C_TCHAR))
				goto bad;
			goto meta;
		case CS_TRAILER_VALUE:
			if (c == '\r')
				b->state = CS_TRAILER_LF;
			else if (!IS(c, C_VALUE))
				goto bad;
			goto meta;
		case CS_TRAILER_LF:
			if (c != '\n')
				goto bad;
			b->state = CS_TRAILER;
			break;
		case CS_FINAL_LF:
			if (c != '\n')
				goto bad;
			b->state = CS_DONE;
			i++;
			ret = 1;
			goto out;
		default:
			INVARIANT_MSG(0, "chunked decoder in an unknown state");
		}
		i++;
		continue;
meta:
		i++;
count:
		if (++b->meta > b->max)
			goto big;
	}
	goto out;
bad:
	ret = body_fail(b, HTTP_PARSE_ECHUNK);
	goto out;
big:
	ret = body_fail(b, HTTP_PARSE_EBODY);
out:
	INVARIANT(out <= i && i <= n && b->total <= b->max);
	*consumed = i;
	*data_len = out;
	return ret;
}

int http_body_feed(struct http_body *b, char *p, size_t n, size_t *consumed, size_t *data_len)
{
	*consumed = 0;
	*data_len = 0;
	if (b->state == CS_ERROR)
		return -(int)b->size_digits;
	switch (b->kind) {
	case HTTP_BODY_NONE:
		return 1;
	case HTTP_BODY_LENGTH: {
		if (b->remaining > b->max - b->total)
			return body_fail(b, HTTP_PARSE_EBODY);
		size_t k = n < b->remaining ? n : (size_t)b->remaining;
		b->remaining -= k;
		b->total += k;
		*consumed = k;
		*data_len = k;
		return b->remaining == 0;
	}
	case HTTP_BODY_EOF:
		if (n > b->max - b->total)
			return body_fail(b, HTTP_PARSE_EBODY);
		b->total += n;
		*consumed = n;
		*data_len = n;
		return 0;
	case HTTP_BODY_CHUNKED:
		if (b->state == CS_DONE)
			return 1;
		return body_chunked(b, p, n, consumed, data_len);
	}
	return HTTP_PARSE_EINVAL;
}
