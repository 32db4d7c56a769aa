/*
 * http/compress.c -- Accept-Encoding, gzip and Brotli answers, gzip bodies.
 *
 * The parser walks the field value once, element by element, without
 * copying: each element is a coding name and its parameters; only "q" is
 * a parameter the grammar allows, and its value must be a qvalue exactly
 * as RFC 9110 section 12.4.2 writes it ("0", "0.5", "1.000", at most three
 * decimals, never above 1).  An element that breaks the grammar is
 * skipped whole.  Weights are kept in thousandths, so comparisons are
 * exact integers.
 *
 * Dynamic answers are compressed on the loop thread that answers them.
 * Each thread keeps, in thread-local storage, one zlib stream (reset
 * between answers, so its 256 KiB of state is allocated once per thread)
 * and the buffers the compressed body and the header lines go to; those
 * stay valid until the next answer on the thread, which is all the server
 * needs (it copies the answer before it returns).  Brotli has no reset, so
 * dynamic Brotli answers go through its one-shot call at a quality chosen
 * for speed; static bodies use quality 11 and gzip level 9 once at start.
 */
#include <brotli/decode.h>
#include <brotli/encode.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "base/buf.h"
#include "base/invariant.h"
#include "http/compress.h"
#include "http/parse.h"

#define Q_MAX 1000

const char *http_coding_name(enum http_coding c)
{
	switch (c) {
	case HTTP_CODING_GZIP:
		return "gzip";
	case HTTP_CODING_BR:
		return "br";
	default:
		return "identity";
	}
}

int http_codings_parse(const char *s, unsigned *mask)
{
	unsigned m = 0;
	if (strcmp(s, "none") == 0) {
		*mask = 0;
		return 0;
	}
	const char *p = s;
	for (;;) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n == 4 && strncasecmp(p, "gzip", 4) == 0)
			m |= HTTP_CODING_MASK(HTTP_CODING_GZIP);
		else if (n == 2 && strncasecmp(p, "br", 2) == 0)
			m |= HTTP_CODING_MASK(HTTP_CODING_BR);
		else
			return -EINVAL;
		if (!e)
			break;
		p = e + 1;
	}
	*mask = m;
	return 0;
}

/* ------------------------------------------------------------ negotiation */

void http_accept_encoding_init(struct http_accept_encoding *ae)
{
	ae->gzip = ae->br = ae->identity = ae->star = -1;
	ae->present = false;
}

static bool is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_ows(char c) { return c == ' ' || c == '\t'; }

/* A qvalue in p[0..n): thousandths, or -1 when it is not one. */
static int parse_qvalue(const char *p, size_t n)
{
	if (n == 0 || (p[0] != '0' && p[0] != '1'))
		return -1;
	int q = (p[0] - '0') * Q_MAX;
	if (n == 1)
		return q;
	if (p[1] != '.' || n > 5)
		return -1;
	int scale = 100;
	for (size_t i = 2; i < n; i++, scale /= 10) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		q += (p[i] - '0') * scale;
	}
	return q > Q_MAX ? -1 : q;
}

/* Record weight q for the coding named p[0..n), the first time it is named. */
static void note(struct http_accept_encoding *ae, const char *p, size_t n, int q)
{
	int *slot = NULL;
	if ((n == 4 && strncasecmp(p, "gzip", 4) == 0) || (n == 6 && strncasecmp(p, "x-gzip", 6) == 0))
		slot = &ae->gzip;
	else if (n == 2 && strncasecmp(p, "br", 2) == 0)
		slot = &ae->br;
	else if (n == 8 && strncasecmp(p, "identity", 8) == 0)
		slot = &ae->identity;
	else if (n == 1 && p[0] == '*')
		slot = &ae->star;
	if (slot && *slot < 0)
		*slot = q;
}

void http_accept_encoding_parse(struct http_accept_encoding *ae, const char *v, size_t len)
{
	ae->present = true;
	size_t i = 0;
	while (i < len) {
		/* one element: OWS coding OWS *( ";" OWS name "=" value OWS ) */
		while (i < len && (is_ows(v[i]) || v[i] == ','))
			i++;
		size_t name = i;
		while (i < len && is_tchar((unsigned char)v[i]))
			i++;
		size_t name_len = i - name;
		int q = Q_MAX;
		bool ok = name_len > 0;
		while (i < len && is_ows(v[i]))
			i++;
		while (ok && i < len && v[i] == ';') {
			i++;
			while (i < len && is_ows(v[i]))
				i++;
			size_t pn = i;
			while (i < len && is_tchar((unsigned char)v[i]))
				i++;
			size_t pn_len = i - pn;
			if (pn_len != 1 || (v[pn] != 'q' && v[pn] != 'Q') || i >= len || v[i] != '=') {
				ok = false;  /* the grammar has no other parameter */
				break;
			}
			i++;
			size_t pv = i;
			while (i < len && is_tchar((unsigned char)v[i]))
				i++;
			q = parse_qvalue(v + pv, i - pv);
			if (q < 0)
				ok = false;
			while (i < len && is_ows(v[i]))
				i++;
		}
		if (ok && (i == len || v[i] == ','))
			note(ae, v + name, name_len, q);
		/* skip to the next element (past whatever did not parse) */
		while (i < len && v[i] != ',')
			i++;
	}
}

enum http_coding http_accept_encoding_choose(const struct http_accept_encoding *ae, unsigned mask)
{
	if (!ae->present)
		return HTTP_CODING_IDENTITY;
	int qbr = -1, qgz = -1;
	if (mask & HTTP_CODING_MASK(HTTP_CODING_BR))
		qbr = ae->br >= 0 ? ae->br : ae->star;
	if (mask & HTTP_CODING_MASK(HTTP_CODING_GZIP))
		qgz = ae->gzip >= 0 ? ae->gzip : ae->star;
	enum http_coding best = HTTP_CODING_BR;
	int qbest = qbr;
	if (qgz > qbest) {
		best = HTTP_CODING_GZIP;
		qbest = qgz;
	}
	if (qbest <= 0)
		return HTTP_CODING_IDENTITY;   /* nothing we have is wanted: as it is */
	/* identity competes when it is named (or "*" names it); a tie goes
	 * to the smaller answer */
	int qid = ae->identity >= 0 ? ae->identity : ae->star;
	return qid > qbest ? HTTP_CODING_IDENTITY : best;
}

enum http_coding http_compress_negotiate(const struct http_request *req, unsigned mask)
{
	struct http_accept_encoding ae;
	http_accept_encoding_init(&ae);
	for (uint32_t i = 0; i < req->m.n_headers; i++) {
		const struct http_header *h = &req->m.headers[i];
		if (http_header_is(h, "accept-encoding"))
			http_accept_encoding_parse(&ae, h->value, h->value_len);
	}
	return http_accept_encoding_choose(&ae, mask);
}

/* ------------------------------------------------------------ what to compress */

void http_compress_config_init(struct http_compress_config *cc)
{
	memset(cc, 0, sizeof *cc);
	cc->codings = HTTP_CODINGS_ALL;
	cc->min_bytes = HTTP_COMPRESS_MIN_BYTES;
	cc->gzip_level = 5;
	cc->br_quality = 4;
	int r = http_compress_types_parse(cc, HTTP_COMPRESS_TYPES);
	INVARIANT(r == 0);
}

int http_compress_types_parse(struct http_compress_config *cc, const char *list)
{
	char types[HTTP_COMPRESS_MAX_TYPES][64];
	unsigned n = 0;
	const char *p = list;
	for (;;) {
		while (is_ows(*p))
			p++;
		const char *e = strchr(p, ',');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		while (len && is_ows(p[len - 1]))
			len--;
		const char *slash = memchr(p, '/', len);
		if (len == 0 || len >= sizeof types[0] || n == HTTP_COMPRESS_MAX_TYPES || !slash ||
		    slash == p || slash == p + len - 1)
			return -EINVAL;
		for (size_t i = 0; i < len; i++)
			if (p + i != slash && !is_tchar((unsigned char)p[i]))
				return -EINVAL;
		/* a wildcard only as a whole subtype, after the slash */
		if (memchr(p, '*', len) && !(slash == p + len - 2 && p[len - 1] == '*'))
			return -EINVAL;
		for (size_t i = 0; i < len; i++)
			types[n][i] = (char)tolower((unsigned char)p[i]);
		types[n][len] = '\0';
		n++;
		if (!e)
			break;
		p = e + 1;
	}
	memcpy(cc->types, types, sizeof types);
	cc->ntypes = n;
	return 0;
}

bool http_compress_wanted(const struct http_compress_config *cc, const char *ctype, size_t len)
{
	if (!cc->codings || len < cc->min_bytes || !ctype)
		return false;
	size_t n = strcspn(ctype, ";");
	while (n && is_ows(ctype[n - 1]))
		n--;
	for (unsigned i = 0; i < cc->ntypes; i++) {
		const char *t = cc->types[i];
		size_t tl = strlen(t);
		if (t[tl - 1] == '*') {
			/* a wildcard subtype: the top type and its slash */
			if (n >= tl && strncasecmp(ctype, t, tl - 1) == 0)
				return true;
		} else if (n == tl && strncasecmp(ctype, t, n) == 0) {
			return true;
		}
	}
	return false;
}

/* ------------------------------------------------------------ codecs */

/* Deflate in into out through z (initialised for gzip): 0 or -ENOMEM. */
static int deflate_all(z_stream *z, const void *in, size_t len, struct buf *out)
{
	buf_reserve(out, deflateBound(z, (uLong)len));
	z->next_in = (Bytef *)(uintptr_t)in;
	z->avail_in = (uInt)len;
	z->next_out = (Bytef *)out->data + out->len;
	z->avail_out = (uInt)(out->cap - out->len - 1);
	int r = deflate(z, Z_FINISH);
	if (r != Z_STREAM_END)
		return -ENOMEM;
	out->len = out->cap - 1 - z->avail_out;
	out->data[out->len] = '\0';
	return 0;
}

int http_gzip(const void *in, size_t len, int level, struct buf *out)
{
	if (len > UINT32_MAX)
		return -EINVAL;
	z_stream z;
	memset(&z, 0, sizeof z);
	/* windowBits 15 + 16: a gzip header and trailer around the deflate data */
	if (deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	int r = deflate_all(&z, in, len, out);
	deflateEnd(&z);
	return r;
}

int http_brotli(const void *in, size_t len, int quality, struct buf *out)
{
	size_t cap = BrotliEncoderMaxCompressedSize(len);
	if (cap == 0)
		return -EINVAL;
	buf_reserve(out, cap);
	size_t n = cap;
	if (!BrotliEncoderCompress(quality, BROTLI_DEFAULT_WINDOW, BROTLI_MODE_GENERIC, len,
	                           (const uint8_t *)in, &n, (uint8_t *)out->data + out->len))
		return -ENOMEM;
	out->len += n;
	out->data[out->len] = '\0';
	return 0;
}

int http_gunzip(const void *in, size_t len, size_t max, struct buf *out)
{
	if (len > UINT32_MAX)
		return -EMSGSIZE;
	z_stream z;
	memset(&z, 0, sizeof z);
	if (inflateInit2(&z, 15 + 16) != Z_OK)   /* gzip only */
		return -ENOMEM;
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)len;
	size_t start = out->len;
	int r;
	for (;;) {
		size_t made = out->len - start;
		/* never let it write past max (+1, to see that it would) */
		size_t room = max - made + 1;
		if (room > 65536)
			room = 65536;
		buf_reserve(out, room);
		z.next_out = (Bytef *)out->data + out->len;
		z.avail_out = (uInt)room;
		r = inflate(&z, Z_NO_FLUSH);
		out->len += room - z.avail_out;
		if (out->len - start > max) {
			r = -EMSGSIZE;
			break;
		}
		if (r == Z_STREAM_END) {
			/* one member and nothing after it */
			r = z.avail_in == 0 ? 0 : -EBADMSG;
			break;
		}
		if (r != Z_OK || (z.avail_in == 0 && z.avail_out != 0)) {
			r = -EBADMSG;   /* corrupt, or cut short */
			break;
		}
	}
	inflateEnd(&z);
	if (r < 0)
		out->len = start;
	if (out->data)
		out->data[out->len] = '\0';
	return r;
}

/* ------------------------------------------------------------ dynamic answers */

struct thread_state {
	z_stream z;
	bool z_ready;
	int z_level;
	struct buf body, headers;
};

static pthread_key_t state_key;
static pthread_once_t state_once = PTHREAD_ONCE_INIT;

static void state_free(void *p)
{
	struct thread_state *ts = p;
	if (ts->z_ready)
		deflateEnd(&ts->z);
	buf_free(&ts->body);
	buf_free(&ts->headers);
	free(ts);
}

static void state_key_make(void)
{
	int r = pthread_key_create(&state_key, state_free);
	INVARIANT(r == 0);
}

static struct thread_state *thread_state(void)
{
	pthread_once(&state_once, state_key_make);
	struct thread_state *ts = pthread_getspecific(state_key);
	if (!ts) {
		ts = calloc(1, sizeof *ts);
		INVARIANT(ts != NULL);
		pthread_setspecific(state_key, ts);
	}
	return ts;
}

/* Does a header block (CRLF lines) hold a line naming this field, or, for
 * "vary", one listing Accept-Encoding? */
static bool headers_have(const char *h, const char *lower_name)
{
	size_t n = strlen(lower_name);
	for (const char *line = h; line && *line;) {
		if (strncasecmp(line, lower_name, n) == 0 && line[n] == ':')
			return true;
		line = strstr(line, "\r\n");
		if (line)
			line += 2;
	}
	return false;
}

bool http_compress_encode(struct http_exchange *ex, int status, const char *ctype,
                          const char **headers, const void **body, size_t *len, void *arg)
{
	const struct http_compress_config *cc = arg;
	/* the common case first: a small answer costs one comparison */
	if (*len < cc->min_bytes || status < 200 || status > 299 || status == 204)
		return false;
	if (!http_compress_wanted(cc, ctype, *len))
		return false;
	if (*headers && (headers_have(*headers, "content-encoding") || headers_have(*headers, "vary")))
		return false;   /* the handler chose (a static variant, or its own) */
	enum http_coding c = http_compress_negotiate(&ex->req, cc->codings);
	struct thread_state *ts = thread_state();
	buf_reset(&ts->headers);
	if (*headers)
		buf_puts(&ts->headers, *headers);
	buf_puts(&ts->headers, "Vary: Accept-Encoding\r\n");
	if (c != HTTP_CODING_IDENTITY) {
		buf_reset(&ts->body);
		int r;
		if (c == HTTP_CODING_GZIP) {
			if (!ts->z_ready || ts->z_level != cc->gzip_level) {
				if (ts->z_ready)
					deflateEnd(&ts->z);
				memset(&ts->z, 0, sizeof ts->z);
				ts->z_ready = deflateInit2(&ts->z, cc->gzip_level, Z_DEFLATED, 15 + 16, 8,
				                           Z_DEFAULT_STRATEGY) == Z_OK;
				ts->z_level = cc->gzip_level;
			} else {
				deflateReset(&ts->z);
			}
			r = ts->z_ready && *len <= UINT32_MAX ? deflate_all(&ts->z, *body, *len, &ts->body)
			                                      : -ENOMEM;
		} else {
			r = http_brotli(*body, *len, cc->br_quality, &ts->body);
		}
		if (r == 0 && ts->body.len < *len) {
			buf_puts(&ts->headers, "Content-Encoding: ");
			buf_puts(&ts->headers, http_coding_name(c));
			buf_puts(&ts->headers, "\r\n");
			*body = ts->body.data;
			*len = ts->body.len;
		}
	}
	*headers = ts->headers.data;
	return true;
}

/* ------------------------------------------------------------ static routes */

struct variant {
	char *body;                  /* owned; NULL when not kept */
	size_t len;
	char headers[160];           /* Vary, Content-Encoding, ETag lines */
	char headers_304[112];       /* Vary and ETag: a 304 names no coding (RFC 9110 15.4.5) */
	char etag[48];               /* with its quotes */
};

struct http_compress_static {
	char *ctype;
	unsigned have;               /* codings kept */
	struct variant v[3];         /* by enum http_coding */
};

/* FNV-1a, 64 bits: a strong validator for a body that never changes
 * while the process runs (and the length, against the rare collision). */
static uint64_t fnv1a(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++) {
		h ^= s[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static void variant_set(struct variant *v, enum http_coding c, uint64_t hash, size_t idlen)
{
	if (c == HTTP_CODING_IDENTITY)
		snprintf(v->etag, sizeof v->etag, "\"%016llx-%zx\"", (unsigned long long)hash, idlen);
	else
		snprintf(v->etag, sizeof v->etag, "\"%016llx-%zx-%s\"", (unsigned long long)hash, idlen,
		         http_coding_name(c));
	snprintf(v->headers, sizeof v->headers, "Vary: Accept-Encoding\r\n%s%s%sETag: %s\r\n",
	         c == HTTP_CODING_IDENTITY ? "" : "Content-Encoding: ",
	         c == HTTP_CODING_IDENTITY ? "" : http_coding_name(c),
	         c == HTTP_CODING_IDENTITY ? "" : "\r\n", v->etag);
	snprintf(v->headers_304, sizeof v->headers_304, "Vary: Accept-Encoding\r\nETag: %s\r\n", v->etag);
}

struct http_compress_static *http_compress_static_new(const struct http_compress_config *cc,
	const char *ctype, const void *body, size_t len)
{
	struct http_compress_static *s = calloc(1, sizeof *s);
	INVARIANT(s != NULL);
	s->ctype = strdup(ctype ? ctype : "application/octet-stream");
	s->v[0].body = malloc(len + 1);
	INVARIANT(s->ctype && s->v[0].body);
	memcpy(s->v[0].body, body, len);
	s->v[0].len = len;
	uint64_t hash = fnv1a(body, len);
	variant_set(&s->v[0], HTTP_CODING_IDENTITY, hash, len);
	for (enum http_coding c = HTTP_CODING_GZIP; c <= HTTP_CODING_BR; c++) {
		if (!(cc->codings & HTTP_CODING_MASK(c)))
			continue;
		struct buf b = BUF_INIT;
		int r = c == HTTP_CODING_GZIP ? http_gzip(body, len, 9, &b)
		                              : http_brotli(body, len, BROTLI_MAX_QUALITY, &b);
		if (r == 0 && b.len < len) {
			s->v[c].body = b.data;
			s->v[c].len = b.len;
			s->have |= HTTP_CODING_MASK(c);
			variant_set(&s->v[c], c, hash, len);
		} else {
			buf_free(&b);   /* not worth it: identity it stays */
		}
	}
	return s;
}

void http_compress_static_free(struct http_compress_static *s)
{
	if (!s)
		return;
	for (int i = 0; i < 3; i++)
		free(s->v[i].body);
	free(s->ctype);
	free(s);
}

size_t http_compress_static_size(const struct http_compress_static *s, enum http_coding c)
{
	return s->v[c].body ? s->v[c].len : 0;
}

/* Does an If-None-Match value match etag (weak comparison, RFC 9110 13.1.2)? */
static bool none_match(const char *v, size_t len, const char *etag)
{
	size_t elen = strlen(etag), i = 0;
	while (i < len) {
		while (i < len && (is_ows(v[i]) || v[i] == ','))
			i++;
		if (i < len && v[i] == '*')
			return true;
		if (i + 2 <= len && v[i] == 'W' && v[i + 1] == '/')
			i += 2;
		if (i + elen <= len && memcmp(v + i, etag, elen) == 0 &&
		    (i + elen == len || v[i + elen] == ',' || is_ows(v[i + elen])))
			return true;
		while (i < len && v[i] != ',')
			i++;
	}
	return false;
}

void http_compress_static_handle(struct http_exchange *ex, void *arg)
{
	const struct http_compress_static *s = arg;
	enum http_coding c = http_compress_negotiate(&ex->req, s->have);
	const struct variant *v = &s->v[c];
	if (ex->req.method == HTTP_GET || ex->req.method == HTTP_HEAD) {
		const struct http_header *h = http_message_header(&ex->req.m, "if-none-match");
		if (h && none_match(h->value, h->value_len, v->etag)) {
			http_respond_headers(ex, 304, NULL, v->headers_304, NULL, 0);
			return;
		}
	}
	http_respond_headers(ex, 200, s->ctype, v->headers, v->body, v->len);
}
