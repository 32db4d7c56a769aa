/*
 * http/server_h2.c -- HTTP/2 (h2c, prior knowledge) on a connection of
 * lib/http/server, through libnghttp2.
 *
 * A connection becomes HTTP/2 when its first bytes are the client preface
 * (server_h1.c looks at them); from then on its service function is
 * h2_service: what the socket backend (libuv streams or io_uring, the
 * same bytes either way) put in c->rbuf is fed to nghttp2_session_mem_recv,
 * and what the session has to send is taken with nghttp2_session_mem_send
 * into c->out and written by the core as HTTP/1.1's answers are.  nghttp2
 * does the framing, HPACK, SETTINGS, PING, flow control (window updates as
 * we consume), stream states and the limits it checks itself (concurrent
 * streams beyond our SETTINGS, the rapid-reset rate, CONTINUATION floods);
 * we do the requests and answers, and check that a request is well-formed
 * (h2_field: nghttp2's HTTP messaging is off, see there why).
 *
 * Streams.  A request's header block opens a struct h2_stream, which
 * copies what the request needs (the pseudo-headers, the header list, the
 * body) into buffers of its own, so c->rbuf is released after every pass
 * and nothing points into it: HTTP/2 pins no read buffer.  When the
 * request ends (END_STREAM), its exchange goes to the handler, as an
 * HTTP/1.1 one does, and the handler answers through http_answer; the
 * answer is copied into the stream (status, headers, body, trailers) and
 * submitted, and nghttp2 pulls the body through h2_read_body as the
 * peer's window allows.  Answers leave in any order: each stream is its
 * own.
 *
 * Lifetimes.  A stream lives from its first HEADERS to nghttp2's stream
 * close, and no longer than its connection.  An exchange lives from its
 * dispatch to its answer, as on HTTP/1.1; if its stream goes first (a
 * RST_STREAM from the peer, its deadline), the exchange is marked gone
 * and its answer dropped.  When the connection closes, every stream is
 * freed with the session, and the exchanges still with handlers see
 * c->closed (the core keeps c until they answer).
 *
 * Limits.  SETTINGS at once: MAX_CONCURRENT_STREAMS (cfg.h2_max_streams),
 * MAX_HEADER_LIST_SIZE (limits.max_header_bytes).  A header block over
 * max_header_bytes, or with more than HTTP_MAX_HEADERS fields, gets 431; a
 * body over max_body 413 (both as answers, then the stream is reset if
 * the client goes on sending).  A request must end within body_timeout_ms
 * of its HEADERS, else its stream is reset (CANCEL); a connection with no
 * stream open is closed after idle_timeout_ms with GOAWAY.  grpc-timeout
 * gives a stream an answer deadline (see http/grpc.h).
 *
 * Drain.  GOAWAY with the last stream we took, so the client retries the
 * later ones elsewhere; streams in flight finish; the connection closes
 * when no stream is open and nothing is left to write.
 */
#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/buf.h"
#include "base/invariant.h"
#include "base/json.h"
#include "base/log.h"
#include "http/grpc.h"
#include "http/server.h"
#include "http/server_internal.h"
#include "obs/metrics.h"

#define H2_MAX_TRAILERS 16

struct h2_session;

struct h2_stream {
	struct h2_session *s;
	struct h2_stream *prev, *next;   /* in s->streams */
	int32_t id;
	struct xchg *x;                  /* from HEADERS until dispatched; then the handler's */
	/* the request: every string in req (pseudo-headers, fields) in one buffer */
	struct buf head;
	uint32_t off_method, len_method, off_path, len_path, off_auth, len_auth;
	uint32_t nhdr;                   /* entries of hoff and hlen, below */
	size_t hbytes;                   /* header block size as the limit counts it */
	struct buf body;
	/* the answer: strings in ans, the body in out (sent from out_pos) */
	struct buf ans, out;
	size_t out_pos;
	size_t ntrailers;                /* entries of trailers, below */
	uint64_t deadline;               /* loop ms, 0: none */
	bool grpc;                       /* content-type application/grpc */
	bool grpc_deadline;              /* deadline is grpc-timeout's, not the request's */
	bool dispatched, answered, too_big, body_too_big;
	bool bad;                        /* reset PROTOCOL_ERROR: a malformed request (h2_field) */
	uint16_t hflags;                 /* H2F_*: what the header block showed */
	int64_t clen;                    /* content-length, -1: none */
	uint64_t crecv;                  /* DATA bytes received */
	bool streaming;                  /* the body streams (http_stream_*, Health/Watch) */
	bool watch;                      /* ... as a Health/Watch the drain ends */
	bool ended;                      /* ... and its last message is in out */
	/* a bidirectional gRPC call's later messages (grpc_on_message): the
	 * bytes past the first message, until each is whole; zeroed is empty */
	grpc_message_fn on_msg;
	void *on_msg_arg;
	bool client_ended;               /* END_STREAM received */
	struct buf more;
	/* Read only up to nhdr and ntrailers, so a stream taken again is not
	 * cleared from here on (2 KiB of memset per request, in the profile). */
	uint32_t hoff[HTTP_MAX_HEADERS][2]; /* name offset, value offset */
	uint32_t hlen[HTTP_MAX_HEADERS][2];
	nghttp2_nv trailers[H2_MAX_TRAILERS];
};

#define H2_STREAM_CLEAR offsetof(struct h2_stream, hoff)

/*
 * nghttp2's memory, per session: free lists by size class (32 bytes to
 * 4 KiB, powers of two).  nghttp2 allocates and frees several small
 * objects per stream (the stream, its outbound frames, header name/value
 * copies); with a hundred streams in flight glibc's per-thread cache
 * overflows and most of those reach its slower paths, which callgrind
 * put at 7% of the server's instructions per request.  A block carries
 * its class (and, when larger than the classes, its size) in a 16-byte
 * header, so free and realloc need no lookup.  The lists keep at most
 * H2_POOL_MAX blocks of a class -- never more than the session once had
 * in use at the same time -- and everything goes back to malloc when the
 * session ends.  (Trimming them whenever no stream is open undid it: a
 * connection with m streams in flight is idle after every pass.)
 */
#define H2_POOL_MIN_SHIFT 5
#define H2_POOL_CLASSES 8          /* 32 .. 4096 bytes with the header */
#define H2_POOL_MAX 128
#define H2_POOL_HDR 16
#define H2_POOL_LARGE 0xff

struct h2_pool {
	void *free[H2_POOL_CLASSES];
	uint32_t n[H2_POOL_CLASSES];
};

struct h2_session {
	nghttp2_session *ng;
	struct h2_pool pool;
	nghttp2_mem mem;
	struct conn *c;
	struct h2_stream *streams;
	uint32_t nstreams;
	/* the stream whose header block is coming in: a block's frames are
	 * never interleaved with another's (RFC 9113 6.10), so on_header
	 * finds its stream here instead of in nghttp2's map, once a field */
	struct h2_stream *receiving;
	/* streams that ended, kept with their buffers for the next ones: a
	 * request then costs no malloc of ours (perf showed malloc and free
	 * at a tenth of the server's time over h2c) */
	struct h2_stream *spare;
	uint32_t nspare;
	bool goaway, dying;
};

#define H2_SPARE_MAX 16   /* spare streams a session keeps */

/* ------------------------------------------------------------ nghttp2's memory */

struct h2_block {
	size_t size;      /* what was asked (H2_POOL_LARGE blocks: for realloc) */
	uint8_t cls;      /* class, or H2_POOL_LARGE */
};

_Static_assert(sizeof(struct h2_block) <= H2_POOL_HDR, "the header fits its room");

static int h2_pool_class(size_t size)
{
	size_t need = size + H2_POOL_HDR;
	if (need > ((size_t)1 << (H2_POOL_MIN_SHIFT + H2_POOL_CLASSES - 1)))
		return -1;
	if (need <= ((size_t)1 << H2_POOL_MIN_SHIFT))
		return 0;
	/* the smallest power of two >= need, as a shift: no loop per malloc */
	int shift = 64 - __builtin_clzll((unsigned long long)(need - 1));
	return shift - H2_POOL_MIN_SHIFT;
}

static void *h2_mem_malloc(size_t size, void *ud)
{
	struct h2_pool *p = ud;
	int cls = h2_pool_class(size);
	struct h2_block *b;
	if (cls < 0) {
		if (size > SIZE_MAX - H2_POOL_HDR)
			return NULL;
		b = malloc(size + H2_POOL_HDR);
		if (!b)
			return NULL;
		b->cls = H2_POOL_LARGE;
	} else if (p->free[cls]) {
		b = p->free[cls];
		p->free[cls] = *(void **)((char *)b + H2_POOL_HDR);
		p->n[cls]--;
	} else {
		b = malloc((size_t)1 << (H2_POOL_MIN_SHIFT + cls));
		if (!b)
			return NULL;
		b->cls = (uint8_t)cls;
	}
	b->size = size;
	return (char *)b + H2_POOL_HDR;
}

static void h2_mem_free(void *ptr, void *ud)
{
	struct h2_pool *p = ud;
	if (!ptr)
		return;
	struct h2_block *b = (struct h2_block *)((char *)ptr - H2_POOL_HDR);
	if (b->cls == H2_POOL_LARGE || p->n[b->cls] >= H2_POOL_MAX) {
		free(b);
		return;
	}
	*(void **)ptr = p->free[b->cls];
	p->free[b->cls] = b;
	p->n[b->cls]++;
}

static void *h2_mem_calloc(size_t nmemb, size_t size, void *ud)
{
	if (size && nmemb > SIZE_MAX / size)
		return NULL;
	void *ptr = h2_mem_malloc(nmemb * size, ud);
	if (ptr)
		memset(ptr, 0, nmemb * size);
	return ptr;
}

static void *h2_mem_realloc(void *ptr, size_t size, void *ud)
{
	if (!ptr)
		return h2_mem_malloc(size, ud);
	if (size == 0) {
		h2_mem_free(ptr, ud);
		return NULL;
	}
	struct h2_block *b = (struct h2_block *)((char *)ptr - H2_POOL_HDR);
	if (b->cls != H2_POOL_LARGE &&
	    size + H2_POOL_HDR <= ((size_t)1 << (H2_POOL_MIN_SHIFT + b->cls))) {
		b->size = size;
		return ptr;   /* still fits its block */
	}
	void *n = h2_mem_malloc(size, ud);
	if (!n)
		return NULL;
	memcpy(n, ptr, b->size < size ? b->size : size);
	h2_mem_free(ptr, ud);
	return n;
}

/* Give blocks back to malloc until each class keeps at most keep. */
static void h2_pool_trim(struct h2_pool *p, uint32_t keep)
{
	for (int cls = 0; cls < H2_POOL_CLASSES; cls++)
		while (p->n[cls] > keep) {
			void *b = p->free[cls];
			p->free[cls] = *(void **)((char *)b + H2_POOL_HDR);
			p->n[cls]--;
			free(b);
		}
}

/* ------------------------------------------------------------ streams */

static void h2_stream_free_mem(struct h2_stream *st)
{
	buf_free(&st->head);
	buf_free(&st->body);
	buf_free(&st->more);
	buf_free(&st->ans);
	buf_free(&st->out);
	free(st);
}

static struct h2_stream *h2_stream_new(struct h2_session *s, int32_t id)
{
	struct h2_stream *st = s->spare;
	if (st) {
		s->spare = st->next;
		s->nspare--;
		struct buf keep[4] = {st->head, st->body, st->ans, st->out};
		memset(st, 0, H2_STREAM_CLEAR);
		st->head = keep[0];
		st->body = keep[1];
		st->ans = keep[2];
		st->out = keep[3];
		buf_reset(&st->head);
		buf_reset(&st->body);
		buf_reset(&st->ans);
		buf_reset(&st->out);
	} else {
		st = calloc(1, sizeof *st);
		INVARIANT(st != NULL);
		buf_init(&st->head);
		buf_init(&st->body);
		buf_init(&st->ans);
		buf_init(&st->out);
	}
	st->s = s;
	st->id = id;
	st->clen = -1;
	st->next = s->streams;
	if (s->streams)
		s->streams->prev = st;
	s->streams = st;
	s->nstreams++;
	return st;
}

/* Forget st: its exchange, if a handler has it, is gone; if not yet
 * dispatched, back to the pool. */
static void h2_stream_free(struct h2_stream *st)
{
	struct h2_session *s = st->s;
	struct conn *c = s->c;
	if (st->x) {
		if (st->dispatched) {
			st->x->gone = true;
			st->x->stream = NULL;
		} else {
			xchg_put(c->t, st->x);
		}
		st->x = NULL;
	}
	buf_free(&st->more);   /* memset by the next h2_stream_new, so never kept */
	if (st->prev)
		st->prev->next = st->next;
	else
		s->streams = st->next;
	if (st->next)
		st->next->prev = st->prev;
	s->nstreams--;
	if (s->receiving == st)
		s->receiving = NULL;
	if (!s->dying && s->nspare < H2_SPARE_MAX) {
		/* big buffers (a 2 MiB body) are not kept for small requests */
		struct buf *bs[4] = {&st->head, &st->body, &st->ans, &st->out};
		for (int i = 0; i < 4; i++)
			if (bs[i]->cap > BUF_KEEP_MAX)
				buf_free(bs[i]);
		st->next = s->spare;
		s->spare = st;
		s->nspare++;
		return;
	}
	h2_stream_free_mem(st);
}

/* ------------------------------------------------------------ answers */

/*
 * Count a gRPC call as it ends (its trailers go out): grpc_server_handled_total
 * by service, method and grpc-status, as grpc-go's interceptors label it.
 * The path is the client's, so an Unimplemented call (a path no one
 * serves) counts under "unknown", and the distinct pairs a thread counts
 * are bounded (GRPC_COUNTED_SLOTS, then "other"): a scanner does not grow
 * /metrics.
 */
static void h2_count_grpc(struct h2_stream *st)
{
	int code = GRPC_UNKNOWN;
	for (size_t i = 0; i < st->ntrailers; i++)
		if (st->trailers[i].namelen == 11 && memcmp(st->trailers[i].name, "grpc-status", 11) == 0) {
			const uint8_t *v = st->trailers[i].value;
			size_t vl = st->trailers[i].valuelen;
			code = 0;
			for (size_t k = 0; k < vl && k < 3; k++)
				code = v[k] >= '0' && v[k] <= '9' ? code * 10 + (v[k] - '0') : GRPC_UNKNOWN;
			if (vl == 0 || vl > 2 || code > GRPC_UNAUTHENTICATED)
				code = GRPC_UNKNOWN;
		}
	const char *path = st->head.data + st->off_path;
	size_t plen = st->len_path;
	struct http_server *srv = st->s->c->t->srv;
	if (!srv->cfg.metrics)
		return;
	if (code == GRPC_UNIMPLEMENTED)
		path = "/unknown/unknown", plen = 16;
	struct grpc_counted *slots = st->s->c->t->grpc_counted, *slot = NULL;
	if (plen > sizeof slots[0].path)
		path = "/other/other", plen = 12;
	for (size_t i = 0; i < GRPC_COUNTED_SLOTS; i++) {
		struct grpc_counted *g = &slots[i];
		if (!g->m) {
			slot = g;
			break;
		}
		if (g->code == code && g->len == plen && memcmp(g->path, path, plen) == 0) {
			metrics_counter_inc(g->m);
			return;
		}
	}
	if (!slot) {   /* every slot taken: count under "other", looked up each time */
		path = "/other/other", plen = 12;
	}
	/* "/package.Service/Method": service and method split at the last '/' */
	char svc[64], meth[64];
	const char *slash = plen > 1 ? memrchr(path + 1, '/', plen - 1) : NULL;
	if (!slash) {
		snprintf(svc, sizeof svc, "unknown");
		snprintf(meth, sizeof meth, "%.*s", (int)(plen > 1 ? plen - 1 : 0), path + (plen > 0));
	} else {
		snprintf(svc, sizeof svc, "%.*s", (int)(slash - path - 1), path + 1);
		snprintf(meth, sizeof meth, "%.*s", (int)(path + plen - slash - 1), slash + 1);
	}
	struct metrics_counter *m = metrics_counter_register(srv->cfg.metrics,
		"grpc_server_handled_total", "gRPC calls ended, by service, method and grpc-status.",
		METRICS_LABELS("grpc_service", svc, "grpc_method", meth,
		               "grpc_code", grpc_status_name(code)));
	if (!m)
		return;
	metrics_counter_inc(m);
	if (slot && plen <= sizeof slot->path) {
		memcpy(slot->path, path, plen);
		slot->len = (uint8_t)plen;
		slot->code = (uint8_t)code;
		slot->m = m;
	}
}

static ssize_t h2_read_body(nghttp2_session *ng, int32_t id, uint8_t *dst, size_t len,
                            uint32_t *flags, nghttp2_data_source *src, void *user)
{
	(void)user;
	struct h2_stream *st = src->ptr;
	size_t left = st->out.len - st->out_pos;
	size_t n = left < len ? left : len;
	if (n)
		memcpy(dst, st->out.data + st->out_pos, n);
	st->out_pos += n;
	if (st->out_pos == st->out.len && st->streaming && !st->ended) {
		if (n)
			return (ssize_t)n;
		buf_reset(&st->out);   /* all sent: the next message starts at 0 */
		st->out_pos = 0;
		return NGHTTP2_ERR_DEFERRED;   /* resumed when the drain writes more */
	}
	if (st->out_pos == st->out.len) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		if (st->ntrailers) {
			*flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
			if (st->grpc)
				h2_count_grpc(st);
			if (nghttp2_submit_trailer(ng, id, st->trailers, st->ntrailers) != 0)
				return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
		}
	}
	return (ssize_t)n;
}

/* Copy a string into st->ans; its offset. */
static uint32_t ans_put(struct h2_stream *st, const char *p, size_t n, bool lower)
{
	uint32_t off = (uint32_t)st->ans.len;
	buf_reserve(&st->ans, n);
	if (n)
		memcpy(st->ans.data + off, p, n);
	st->ans.len += n;
	st->ans.data[st->ans.len] = '\0';
	if (lower)
		for (size_t i = 0; i < n; i++)
			if (st->ans.data[off + i] >= 'A' && st->ans.data[off + i] <= 'Z')
				st->ans.data[off + i] += 'a' - 'A';
	return off;
}

struct nv_off {
	uint32_t n, nl, v, vl;
};

/*
 * Submit an answer on st: HEADERS (:status, content-type, the headers),
 * the body as DATA, trailers in a last HEADERS.  A plain HTTP error to a
 * gRPC request becomes a gRPC error (status 200, grpc-status, grpc-message).
 */
static void h2_submit(struct h2_stream *st, const struct http_answer *in, bool head_only)
{
	struct http_answer a = *in;
	char code[12];
	struct http_header gtr[2];
	if (st->grpc && a.status != 200 && a.n_trailers == 0) {
		int g = grpc_status_from_http(a.status);
		size_t ml = a.len > 200 ? 200 : a.len;
		int n = snprintf(code, sizeof code, "%d", g);
		gtr[0] = (struct http_header){"grpc-status", code, 11, (uint32_t)n};
		gtr[1] = (struct http_header){"grpc-message", a.body ? a.body : "", 12, (uint32_t)ml};
		a = (struct http_answer){.status = 200, .content_type = "application/grpc",
		                         .trailers = gtr, .n_trailers = ml ? 2 : 1};
		/* the message is copied below, through ans_put, and cleaned there */
	}
	int status = a.status < 100 || a.status > 999 ? 500 : a.status;
	bool bodyless = status == 204 || status == 304 || status < 200;
	buf_reset(&st->ans);
	struct nv_off o[HTTP_MAX_HEADERS + 4];
	size_t n = 0;
	char s3[4] = {(char)('0' + status / 100), (char)('0' + status / 10 % 10),
	              (char)('0' + status % 10), 0};
	o[n++] = (struct nv_off){ans_put(st, ":status", 7, false), 7, ans_put(st, s3, 3, false), 3};
	if (a.content_type) {
		size_t l = strlen(a.content_type);
		o[n++] = (struct nv_off){ans_put(st, "content-type", 12, false), 12,
		                         ans_put(st, a.content_type, l, false), (uint32_t)l};
	}
	for (uint32_t i = 0; i < a.n_headers && n < HTTP_MAX_HEADERS + 2; i++) {
		const struct http_header *h = &a.headers[i];
		o[n].n = ans_put(st, h->name, h->name_len, true);
		o[n].nl = h->name_len;
		o[n].v = ans_put(st, h->value, h->value_len, false);
		o[n].vl = h->value_len;
		n++;
	}
	/* the older "Name: value\r\n" lines, lowercased for HTTP/2 */
	for (const char *p = a.raw_headers; p && *p && n < HTTP_MAX_HEADERS + 2;) {
		const char *eol = strstr(p, "\r\n");
		const char *colon = memchr(p, ':', eol ? (size_t)(eol - p) : strlen(p));
		if (!eol || !colon)
			break;
		const char *v = colon + 1;
		while (v < eol && (*v == ' ' || *v == '\t'))
			v++;
		size_t nl = (size_t)(colon - p);
		bool hop = (nl == 10 && strncasecmp(p, "connection", 10) == 0) ||
		           (nl == 10 && strncasecmp(p, "keep-alive", 10) == 0) ||
		           (nl == 17 && strncasecmp(p, "transfer-encoding", 17) == 0);
		if (!hop) {
			o[n].n = ans_put(st, p, nl, true);
			o[n].nl = (uint32_t)nl;
			o[n].v = ans_put(st, v, (size_t)(eol - v), false);
			o[n].vl = (uint32_t)(eol - v);
			n++;
		}
		p = eol + 2;
	}
	char clen[24];
	if (!bodyless && a.n_trailers == 0 && !st->streaming) {
		size_t l = fmt_u64(clen, (uint64_t)a.len);   /* no printf on the hot path */
		o[n++] = (struct nv_off){ans_put(st, "content-length", 14, false), 14,
		                         ans_put(st, clen, (size_t)l, false), (uint32_t)l};
	}
	size_t nt = 0;
	struct nv_off to[H2_MAX_TRAILERS];
	for (uint32_t i = 0; i < a.n_trailers && nt < H2_MAX_TRAILERS; i++) {
		const struct http_header *h = &a.trailers[i];
		to[nt].n = ans_put(st, h->name, h->name_len, true);
		to[nt].nl = h->name_len;
		to[nt].v = ans_put(st, h->value, h->value_len, false);
		to[nt].vl = h->value_len;
		if (h->name_len == 12 && memcmp(h->name, "grpc-message", 12) == 0)
			for (uint32_t k = 0; k < h->value_len; k++) {
				char *ch = &st->ans.data[to[nt].v + k];
				if ((unsigned char)*ch < 0x20 || (unsigned char)*ch > 0x7e || *ch == '%')
					*ch = ' ';   /* percent-encoding is grpc_answer's; be safe */
			}
		nt++;
	}
	/* ans does not move from here on: the pointers are final.  An answer
	 * that is not streamed leaves ans alone until its stream closes (only
	 * stream_end and the Watch append to it), and the names are lowercase
	 * already, so nghttp2 takes the fields where they are instead of
	 * copying and lowercasing each (4% of the server's instructions per
	 * request).  nghttp2 reads them only while it packs the HEADERS frame,
	 * in mem_send, with the stream open: a HEADERS still queued when its
	 * stream closes (and ours is freed) is dropped unpacked, and
	 * nghttp2_session_del frees the field array, never the fields. */
	uint8_t nvf = st->streaming ? NGHTTP2_NV_FLAG_NONE
	                            : NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE;
	nghttp2_nv nv[HTTP_MAX_HEADERS + 4];
	for (size_t i = 0; i < n; i++)
		nv[i] = (nghttp2_nv){(uint8_t *)st->ans.data + o[i].n, (uint8_t *)st->ans.data + o[i].v,
		                     o[i].nl, o[i].vl, nvf};
	st->ntrailers = nt;
	for (size_t i = 0; i < nt; i++)
		st->trailers[i] = (nghttp2_nv){(uint8_t *)st->ans.data + to[i].n,
		                               (uint8_t *)st->ans.data + to[i].v, to[i].nl, to[i].vl,
		                               NGHTTP2_NV_FLAG_NONE};
	buf_reset(&st->out);
	st->out_pos = 0;
	if (!bodyless && !head_only && a.len)
		buf_append(&st->out, a.body, a.len);
	st->answered = true;
	nghttp2_data_provider prd = {.source.ptr = st, .read_callback = h2_read_body};
	bool data = st->out.len > 0 || nt > 0 || st->streaming;
	int r = nghttp2_submit_response(st->s->ng, st->id, nv, n, data ? &prd : NULL);
	if (r != 0)
		nghttp2_submit_rst_stream(st->s->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
}

/* The server's own error answer on a stream no handler has seen. */
static void h2_submit_error(struct h2_stream *st, int status, const char *message)
{
	struct buf *b = &st->s->c->t->errbuf;
	buf_reset(b);
	buf_puts(b, "{\"error\":");
	json_escape(b, message, strlen(message));
	buf_putc(b, '}');
	struct http_answer a = {.status = status, .content_type = "application/json",
	                        .body = b->data, .len = b->len};
	if (st->grpc)
		a = (struct http_answer){.status = status, .body = message, .len = strlen(message)};
	h2_submit(st, &a, false);
}

/* The proto table's respond: the handler's answer to x. */
static void h2_respond(struct xchg *x, const struct http_answer *a)
{
	struct conn *c = x->c;
	struct h2_stream *st = x->stream;
	if (x->gone || !st) {
		xchg_put(c->t, x);   /* the stream went first: drop it */
		return;
	}
	st->x = NULL;
	x->stream = NULL;
	bool head_only = x->head_only;
	xchg_put(c->t, x);
	h2_submit(st, a, head_only);
	server_conn_schedule(c);
}

/* ------------------------------------------------------------ streamed answers */

static void h2_stream_begin(struct xchg *x, const struct http_answer *head)
{
	struct h2_stream *st = x->stream;
	if (x->gone || !st)
		return;
	st->streaming = true;
	h2_submit(st, head, x->head_only);
	server_conn_schedule(x->c);
}

static int h2_stream_write(struct xchg *x, const void *data, size_t len)
{
	struct h2_stream *st = x->stream;
	if (x->gone || !st)
		return -EPIPE;
	if (x->head_only || !len)
		return 0;
	buf_append(&st->out, data, len);
	nghttp2_session_resume_data(st->s->ng, st->id);
	server_conn_schedule(x->c);
	return 0;
}

/* The last piece: trailers, then END_STREAM; the exchange is done. */
static void h2_stream_end(struct xchg *x, const struct http_header *tr, uint32_t n)
{
	struct conn *c = x->c;
	struct h2_stream *st = x->stream;
	if (!x->gone && st) {
		struct nv_off o[H2_MAX_TRAILERS];
		size_t nt = 0;
		for (uint32_t i = 0; i < n && nt < H2_MAX_TRAILERS; i++, nt++) {
			o[nt].n = ans_put(st, tr[i].name, tr[i].name_len, true);
			o[nt].nl = tr[i].name_len;
			o[nt].v = ans_put(st, tr[i].value, tr[i].value_len, false);
			o[nt].vl = tr[i].value_len;
		}
		/* ans moved no more: the pointers are final (the answer's head
		 * was copied by nghttp2 when it was submitted) */
		for (size_t i = 0; i < nt; i++)
			st->trailers[i] = (nghttp2_nv){(uint8_t *)st->ans.data + o[i].n,
			                               (uint8_t *)st->ans.data + o[i].v, o[i].nl, o[i].vl,
			                               NGHTTP2_NV_FLAG_NONE};
		st->ntrailers = nt;
		st->ended = true;
		st->x = NULL;
		nghttp2_session_resume_data(st->s->ng, st->id);
		server_conn_schedule(c);
	}
	x->stream = NULL;
	xchg_put(c->t, x);
}

/* ------------------------------------------------------------ health Watch */

#define WATCH_PATH "/grpc.health.v1.Health/Watch"

/* The Watch stream's last message and its OK trailers; nghttp2 is told
 * there is more to send. */
static void h2_watch_end(struct h2_stream *st, int serving_status)
{
	uint8_t fr[GRPC_HEALTH_FRAME_MAX];
	size_t n = grpc_health_frame(serving_status, fr);
	buf_append(&st->out, fr, n);
	uint32_t no = ans_put(st, "grpc-status", 11, false);
	uint32_t vo = ans_put(st, "0", 1, false);
	st->trailers[0] = (nghttp2_nv){(uint8_t *)st->ans.data + no, (uint8_t *)st->ans.data + vo,
	                               11, 1, NGHTTP2_NV_FLAG_NONE};
	st->ntrailers = 1;
	st->ended = true;
	nghttp2_session_resume_data(st->s->ng, st->id);
}

/*
 * grpc.health.v1.Health/Watch, served by the core as Check is: the current
 * status at once, then NOT_SERVING when the drain starts, and the end.  The
 * exchange is not handed on (nor pinned): the stream carries it.  Returns
 * false for any other call.
 */
static bool h2_watch_start(struct h2_stream *st)
{
	struct xchg *x = st->x;
	const struct http_request *r = &x->pub.req;
	if (r->path_len != sizeof WATCH_PATH - 1 || memcmp(r->path, WATCH_PATH, r->path_len) != 0)
		return false;
	int known = grpc_health_service(&x->pub);
	struct conn *c = st->s->c;
	st->x = NULL;
	x->stream = NULL;
	xchg_put(c->t, x);
	st->deadline = 0;
	if (known < 0) {
		char code[12];
		snprintf(code, sizeof code, "%d", -known);
		struct http_header tr[2] = {{"grpc-status", code, 11, (uint32_t)strlen(code)},
		                            {"grpc-message", "malformed HealthCheckRequest", 12, 28}};
		struct http_answer a = {.status = 200, .content_type = "application/grpc",
		                        .trailers = tr, .n_trailers = 2};
		h2_submit(st, &a, false);
		return true;
	}
	uint8_t fr[GRPC_HEALTH_FRAME_MAX];
	int status = !known ? GRPC_HEALTH_SERVICE_UNKNOWN
	             : c->t->draining || st->s->goaway ? GRPC_HEALTH_NOT_SERVING
	                                               : GRPC_HEALTH_SERVING;
	size_t n = grpc_health_frame(status, fr);
	struct http_answer a = {.status = 200, .content_type = "application/grpc",
	                        .body = fr, .len = n};
	st->streaming = st->watch = true;
	h2_submit(st, &a, false);
	if (status == GRPC_HEALTH_NOT_SERVING)
		h2_watch_end(st, GRPC_HEALTH_NOT_SERVING);  /* nothing more will change */
	return true;
}

/* ------------------------------------------------------------ requests */

static enum http_method h2_method(const char *m, size_t n)
{
	static const struct { const char *s; enum http_method m; } tab[] = {
		{"GET", HTTP_GET}, {"HEAD", HTTP_HEAD}, {"POST", HTTP_POST}, {"PUT", HTTP_PUT},
		{"DELETE", HTTP_DELETE}, {"OPTIONS", HTTP_OPTIONS}, {"PATCH", HTTP_PATCH},
		{"TRACE", HTTP_TRACE}, {"CONNECT", HTTP_CONNECT},
	};
	for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
		if (strlen(tab[i].s) == n && memcmp(tab[i].s, m, n) == 0)
			return tab[i].m;
	return HTTP_OTHER;
}

/* The request is complete: fill the exchange from the stream's copies and
 * hand it to the handler (grpc.health.v1 first). */
static void h2_dispatch(struct h2_stream *st)
{
	struct conn *c = st->s->c;
	struct http_server *srv = c->t->srv;
	if (st->too_big) {
		h2_submit_error(st, 431, "request header fields too large");
		return;
	}
	if (st->body_too_big)
		return;   /* answered 413 already */
	struct xchg *x = st->x;
	struct http_request *r = &x->pub.req;
	const char *h = st->head.data;
	r->method_str = h + st->off_method;
	r->method_len = st->len_method;
	r->method = h2_method(r->method_str, r->method_len);
	r->target = r->path = h + st->off_path;
	r->target_len = r->path_len = st->len_path;
	r->query = NULL;
	r->query_len = 0;
	const char *q = memchr(r->path, '?', r->path_len);
	if (q) {
		r->path_len = (uint32_t)(q - r->path);
		r->query = q + 1;
		r->query_len = st->len_path - r->path_len - 1;
	}
	r->host = st->len_auth ? h + st->off_auth : NULL;
	r->host_len = st->len_auth;
	r->m.n_headers = st->nhdr;
	for (uint32_t i = 0; i < st->nhdr; i++)
		r->m.headers[i] = (struct http_header){h + st->hoff[i][0], h + st->hoff[i][1],
		                                       st->hlen[i][0], st->hlen[i][1]};
	r->m.version_minor = 1;
	r->m.keep_alive = true;
	r->m.expect_continue = r->m.upgrade = false;
	r->m.body_kind = st->body.len ? HTTP_BODY_LENGTH : HTTP_BODY_NONE;
	r->m.content_length = st->body.len;
	r->m.head_len = 0;
	x->pub.body = st->body.len ? st->body.data : NULL;
	x->pub.body_len = st->body.len;
	x->pub.start_ns = now_ns();
	x->head_only = r->method == HTTP_HEAD;
	x->keep_alive = true;
	x->stream = st;
	st->dispatched = true;
	st->grpc = grpc_is_call(&x->pub);
	st->deadline = 0;
	if (st->grpc) {
		const struct http_header *gt = http_message_header(&r->m, "grpc-timeout");
		uint64_t ms;
		if (gt && grpc_parse_timeout(gt->value, gt->value_len, &ms) == 0) {
			st->deadline = uv_now(&c->t->loop) + ms;
			st->grpc_deadline = true;
		}
	}
	if (srv->m_h2_streams)
		metrics_counter_inc(srv->m_h2_streams);
	if (st->grpc && h2_watch_start(st))
		return;
	c->pinned++;
	c->nreq++;
	in_flight_add(c->t, 1);
	x->c = c;
	x->pub.thread_data = c->t->data;
	if (srv->cfg.tracer)
		http_trace_begin(srv->cfg.tracer, &x->pub); /* and the log lines name its span */
	if (!(st->grpc && grpc_health_serve(&x->pub)))
		srv->cfg.handler(&x->pub, srv->cfg.handler_arg);
	if (srv->cfg.tracer)
		http_trace_log(NULL);
}

/*
 * Malformed requests (RFC 9113 8.1.1, 8.2, 8.3).  nghttp2's HTTP messaging
 * would check these, but it also rejects an :authority with a '/' in it,
 * and grpc-go (etcdctl's --cluster commands, which dial each member's
 * client URL) sends "http://127.0.0.1:2379" there; grpc-go's server takes
 * it.  So the session runs with no_http_messaging and the checks are all
 * here, answered as nghttp2 1.52 (with no invalid-header callback) answers
 * them: RST_STREAM PROTOCOL_ERROR, the connection going on.  What we
 * accept beyond nghttp2: an :authority of "http://" or "https://" then
 * host[:port]; the prefix is not kept.
 */
enum {
	H2F_METHOD = 1 << 0, H2F_SCHEME = 1 << 1, H2F_PATH = 1 << 2, H2F_AUTHORITY = 1 << 3,
	H2F_HOST = 1 << 4,
	H2F_REGULAR = 1 << 5,      /* a regular field came: no pseudo-header after it */
	H2F_CONNECT = 1 << 6, H2F_OPTIONS = 1 << 7,
	H2F_SCHEME_HTTP = 1 << 8,  /* http or https: :path must be origin-form (or * for OPTIONS) */
	H2F_PATH_SLASH = 1 << 9, H2F_PATH_STAR = 1 << 10,
};

/*
 * Character classes of the request checks, one table lookup a byte:
 * h2_field ran strchr for every character of every name and value
 * (callgrind: 5% of the server's instructions per request over h2c).
 * Filled once, with the callback table (h2_cbs_init).
 */
enum {
	H2C_TCHAR = 1 << 0,   /* tchar (RFC 9110 5.6.2) */
	H2C_NAME = 1 << 1,    /* tchar and not uppercase: a field name's */
	H2C_AUTH = 1 << 2,    /* RFC 3986 3.2: reg-name, IP literals, port, userinfo */
	H2C_VALUE = 1 << 3,   /* in a field value: not a control but HTAB, not DEL */
	H2C_PATH = 1 << 4,    /* in :path: visible, not space, not DEL */
};

static uint8_t h2_cc[256];

static void h2_cc_init(void)
{
	for (int c = 0; c < 256; c++) {
		uint8_t f = 0;
		bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
		if (alnum || (c && strchr("!#$%&'*+-.^_`|~", c)))
			f |= H2C_TCHAR;
		if ((f & H2C_TCHAR) && !(c >= 'A' && c <= 'Z'))
			f |= H2C_NAME;
		if (alnum || (c && strchr("-._~!$&'()*+,;=:%@[]", c)))
			f |= H2C_AUTH;
		if ((c >= 0x20 || c == '\t') && c != 0x7f)
			f |= H2C_VALUE;
		if (c > 0x20 && c != 0x7f)
			f |= H2C_PATH;
		h2_cc[c] = f;
	}
}

/* Every byte of v[0..n) in class cls. */
static inline bool h2_all(const uint8_t *v, size_t n, uint8_t cls)
{
	for (size_t i = 0; i < n; i++)
		if (!(h2_cc[v[i]] & cls))
			return false;
	return true;
}

static bool h2_authority_ok(const uint8_t *v, size_t n)
{
	return n > 0 && h2_all(v, n, H2C_AUTH);
}

/* "http://" or "https://" in front of an :authority: its length, else 0 */
static size_t h2_authority_scheme(const uint8_t *v, size_t n)
{
	if (n <= 7 || (v[0] | 0x20) != 'h')
		return 0;   /* the usual host[:port], without a call */
	if (n > 7 && strncasecmp((const char *)v, "http://", 7) == 0)
		return 7;
	if (n > 8 && strncasecmp((const char *)v, "https://", 8) == 0)
		return 8;
	return 0;
}

#define H2_IS(name, nlen, lit) ((nlen) == sizeof(lit) - 1 && memcmp((name), (lit), (nlen)) == 0)

/* A pseudo-header seen once, non-empty. */
static bool h2_pseudo_once(struct h2_stream *st, uint16_t flag, size_t vlen)
{
	if ((st->hflags & flag) || vlen == 0)
		return false;
	st->hflags |= flag;
	return true;
}

/*
 * One field of a request's header block (trailer: of its trailers).
 * 0: keep it; -1: the request is malformed.  *skip: bytes of the value
 * not to keep (an :authority's scheme).
 */
static int h2_field(struct h2_stream *st, const uint8_t *n, size_t nlen, const uint8_t *v,
                    size_t vlen, bool trailer, size_t *skip)
{
	*skip = 0;
	if (nlen == 0)
		return -1;
	if (n[0] == ':') {
		if (trailer || (st->hflags & H2F_REGULAR))
			return -1;
		if (H2_IS(n, nlen, ":method")) {
			if (!h2_pseudo_once(st, H2F_METHOD, vlen))
				return -1;
			if (!h2_all(v, vlen, H2C_TCHAR))
				return -1;
			if (H2_IS(v, vlen, "CONNECT")) {
				if (st->hflags & (H2F_PATH | H2F_SCHEME))
					return -1;
				st->hflags |= H2F_CONNECT;
			} else if (H2_IS(v, vlen, "OPTIONS")) {
				st->hflags |= H2F_OPTIONS;
			}
			return 0;
		}
		if (H2_IS(n, nlen, ":scheme")) {
			if ((st->hflags & H2F_CONNECT) || !h2_pseudo_once(st, H2F_SCHEME, vlen))
				return -1;
			/* RFC 3986 3.1: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) */
			for (size_t i = 0; i < vlen; i++) {
				uint8_t c = v[i] | 0x20;
				bool alpha = c >= 'a' && c <= 'z';
				if (!alpha && (i == 0 || !((v[i] >= '0' && v[i] <= '9') || (v[i] && strchr("+-.", v[i])))))
					return -1;
			}
			if ((vlen == 4 && strncasecmp((const char *)v, "http", 4) == 0) ||
			    (vlen == 5 && strncasecmp((const char *)v, "https", 5) == 0))
				st->hflags |= H2F_SCHEME_HTTP;
			return 0;
		}
		if (H2_IS(n, nlen, ":path")) {
			if ((st->hflags & H2F_CONNECT) || !h2_pseudo_once(st, H2F_PATH, vlen))
				return -1;
			if (!h2_all(v, vlen, H2C_PATH))
				return -1;
			if (v[0] == '/')
				st->hflags |= H2F_PATH_SLASH;
			else if (vlen == 1 && v[0] == '*')
				st->hflags |= H2F_PATH_STAR;
			return 0;
		}
		if (H2_IS(n, nlen, ":authority")) {
			if (!h2_pseudo_once(st, H2F_AUTHORITY, vlen))
				return -1;
			*skip = h2_authority_scheme(v, vlen);
			return h2_authority_ok(v + *skip, vlen - *skip) ? 0 : -1;
		}
		return -1;   /* :status, :protocol (no extended CONNECT here), unknown */
	}
	/* a regular field: from here on, no pseudo-header */
	st->hflags |= H2F_REGULAR;
	/* RFC 9113 8.2.1: lowercase tokens; values without NUL, CR, LF (nor
	 * other controls) and without leading or trailing whitespace */
	if (!h2_all(n, nlen, H2C_NAME) || !h2_all(v, vlen, H2C_VALUE))
		return -1;
	if (vlen && (v[0] == ' ' || v[0] == '\t' || v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
		return -1;
	switch (nlen) {
	case 2:
		/* te: only "trailers" (gRPC sends it) */
		if (H2_IS(n, nlen, "te") && !(vlen == 8 && strncasecmp((const char *)v, "trailers", 8) == 0))
			return -1;
		break;
	case 4:
		if (H2_IS(n, nlen, "host")) {
			if (!h2_authority_ok(v, vlen) || (st->hflags & H2F_HOST))
				return -1;
			st->hflags |= H2F_HOST;
		}
		break;
	case 7:
		if (H2_IS(n, nlen, "upgrade"))
			return -1;
		break;
	case 10:
		if (H2_IS(n, nlen, "connection") || H2_IS(n, nlen, "keep-alive"))
			return -1;
		break;
	case 14:
		if (H2_IS(n, nlen, "content-length")) {
			if (st->clen != -1 || vlen == 0 || vlen > 18)
				return -1;
			int64_t x = 0;
			for (size_t i = 0; i < vlen; i++) {
				if (v[i] < '0' || v[i] > '9')
					return -1;
				x = x * 10 + (v[i] - '0');
			}
			st->clen = x;
		}
		break;
	case 16:
		if (H2_IS(n, nlen, "proxy-connection"))
			return -1;
		break;
	case 17:
		if (H2_IS(n, nlen, "transfer-encoding"))
			return -1;
		break;
	}
	return 0;
}

/* The request's header block is whole: the pseudo-headers it must have. */
static bool h2_request_ok(const struct h2_stream *st)
{
	uint16_t f = st->hflags;
	if (f & H2F_CONNECT)
		return (f & H2F_AUTHORITY) != 0;
	if ((f & (H2F_METHOD | H2F_SCHEME | H2F_PATH)) != (H2F_METHOD | H2F_SCHEME | H2F_PATH) ||
	    !(f & (H2F_AUTHORITY | H2F_HOST)))
		return false;
	if ((f & H2F_SCHEME_HTTP) && !(f & H2F_PATH_SLASH) &&
	    !((f & H2F_OPTIONS) && (f & H2F_PATH_STAR)))
		return false;
	return true;
}

/* A malformed request: its stream is reset, nothing of it reaches a handler. */
static void h2_reject(struct h2_stream *st)
{
	if (st->bad)
		return;
	st->bad = true;
	nghttp2_submit_rst_stream(st->s->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_PROTOCOL_ERROR);
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
	struct h2_session *s = user;
	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	struct h2_stream *st = h2_stream_new(s, f->hd.stream_id);
	st->x = xchg_get(s->c->t);
	st->x->c = s->c;
	struct http_server *srv = s->c->t->srv;
	st->deadline = uv_now(&s->c->t->loop) + srv->cfg.body_timeout_ms;
	nghttp2_session_set_stream_user_data(ng, f->hd.stream_id, st);
	s->receiving = st;
	return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
                     size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *user)
{
	(void)flags;
	struct h2_session *s = user;
	if (f->hd.type != NGHTTP2_HEADERS)
		return 0;
	struct h2_stream *st = s->receiving;
	if (!st || st->id != f->hd.stream_id)
		st = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
	if (!st || st->bad)
		return 0;
	size_t skip;
	int ok = h2_field(st, name, nlen, value, vlen, f->headers.cat != NGHTTP2_HCAT_REQUEST, &skip);
	if (ok < 0)
		h2_reject(st);
	if (ok != 0 || f->headers.cat != NGHTTP2_HCAT_REQUEST || st->too_big)
		return 0;   /* trailers from the client are checked, not kept */
	/* the size as RFC 9113 counts it for SETTINGS_MAX_HEADER_LIST_SIZE */
	st->hbytes += nlen + vlen + 32;
	if (st->hbytes > s->c->t->srv->cfg.limits.max_header_bytes) {
		st->too_big = true;
		return 0;
	}
	/* name and value, each NUL-terminated, with one reservation: four
	 * buf calls per field were a tenth of the server's time per request */
	uint32_t noff = (uint32_t)st->head.len;
	uint32_t voff = noff + (uint32_t)nlen + 1;
	buf_reserve(&st->head, nlen + vlen + 2);
	char *d = st->head.data + noff;
	memcpy(d, name, nlen);
	d[nlen] = '\0';
	memcpy(d + nlen + 1, value, vlen);
	d[nlen + 1 + vlen] = '\0';
	st->head.len += nlen + vlen + 2;
	if (name[0] == ':') {
		/* h2_field has checked the pseudo-headers */
		if (nlen == 7 && memcmp(name, ":method", 7) == 0) {
			st->off_method = voff;
			st->len_method = (uint32_t)vlen;
		} else if (nlen == 5 && memcmp(name, ":path", 5) == 0) {
			st->off_path = voff;
			st->len_path = (uint32_t)vlen;
		} else if (nlen == 10 && memcmp(name, ":authority", 10) == 0) {
			st->off_auth = voff + (uint32_t)skip;
			st->len_auth = (uint32_t)(vlen - skip);
		}
		return 0;
	}
	if (st->nhdr == HTTP_MAX_HEADERS) {
		st->too_big = true;
		return 0;
	}
	st->hoff[st->nhdr][0] = noff;
	st->hoff[st->nhdr][1] = voff;
	st->hlen[st->nhdr][0] = (uint32_t)nlen;
	st->hlen[st->nhdr][1] = (uint32_t)vlen;
	st->nhdr++;
	return 0;
}

/*
 * Bytes of a bidirectional call after its dispatch: each whole message to
 * the handler's grpc_on_message callback, in order, until it ends its
 * answer (then the rest is dropped).  A message over max_body, or a
 * compressed one, ends the call as a unary body would.
 */
static void h2_more(struct h2_stream *st, const uint8_t *data, size_t len)
{
	buf_append(&st->more, data, len);
	while (st->x && st->on_msg && st->more.len >= GRPC_PREFIX) {
		const uint8_t *p = (const uint8_t *)st->more.data;
		uint32_t n = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
		if (p[0] != 0 || n > st->s->c->t->srv->cfg.limits.max_body) {
			grpc_message_fn fn = st->on_msg;
			st->on_msg = NULL;
			buf_free(&st->more);
			fn(&st->x->pub, NULL, 0, st->on_msg_arg);   /* as the end of the client's side */
			return;
		}
		if (st->more.len - GRPC_PREFIX < n)
			return;
		st->on_msg(&st->x->pub, p + GRPC_PREFIX, n, st->on_msg_arg);
		buf_consume(&st->more, GRPC_PREFIX + n);
	}
}

void grpc_on_message(struct http_exchange *ex, grpc_message_fn fn, void *arg)
{
	struct xchg *x = (struct xchg *)ex;
	struct h2_stream *st = x->stream;
	if (!st || x->gone)
		return;
	st->on_msg = fn;
	st->on_msg_arg = arg;
	if (st->more.len)
		h2_more(st, NULL, 0);   /* what came with the first message */
	if (st->client_ended && st->on_msg) {
		/* the client's side ended with its first messages (one request,
		 * then END_STREAM, in one frame): say so now, as it will not come */
		st->on_msg = NULL;
		fn(ex, NULL, 0, arg);
	}
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *user)
{
	(void)flags;
	struct h2_session *s = user;
	struct h2_stream *st = nghttp2_session_get_stream_user_data(ng, id);
	if (!st || st->bad)
		return 0;
	st->crecv += len;
	if (st->clen >= 0 && st->crecv > (uint64_t)st->clen) {
		h2_reject(st);   /* more than its content-length */
		return 0;
	}
	if (st->dispatched && st->on_msg) {
		h2_more(st, data, len);
		return 0;
	}
	if (!st || st->dispatched || st->body_too_big || st->answered)
		return 0;
	if (st->body.len + len > s->c->t->srv->cfg.limits.max_body) {
		st->body_too_big = true;
		buf_free(&st->body);
		h2_submit_error(st, 413, "request body too large");
		return 0;
	}
	buf_append(&st->body, data, len);
	return 0;
}

/* A call to a registered bidirectional path whose first message is in. */
static bool h2_bidi_ready(const struct h2_stream *st)
{
	if (!grpc_bidi_is(st->head.data + st->off_path, st->len_path) || st->body.len < GRPC_PREFIX)
		return false;
	const uint8_t *p = (const uint8_t *)st->body.data;
	uint32_t n = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
	return st->body.len - GRPC_PREFIX >= n;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
	struct h2_session *s = user;
	if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA)
		return 0;
	/* a header block's end finds its stream as on_header does */
	struct h2_stream *st = f->hd.type == NGHTTP2_HEADERS && s->receiving &&
	                               s->receiving->id == f->hd.stream_id
	                           ? s->receiving
	                           : nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
	if (!st || st->bad)
		return 0;
	bool end = f->hd.flags & NGHTTP2_FLAG_END_STREAM;
	if (end)
		st->client_ended = true;
	if (f->hd.type == NGHTTP2_HEADERS &&
	    (f->headers.cat == NGHTTP2_HCAT_REQUEST ? !h2_request_ok(st) : !end)) {
		h2_reject(st);   /* pseudo-headers missing, or trailers that do not end it */
		return 0;
	}
	if (end && st->clen >= 0 && st->crecv != (uint64_t)st->clen) {
		h2_reject(st);   /* less than its content-length */
		return 0;
	}
	if (st->dispatched && st->on_msg && st->x && end) {
		grpc_message_fn fn = st->on_msg;
		st->on_msg = NULL;
		fn(&st->x->pub, NULL, 0, st->on_msg_arg);   /* the client's side ended */
		return 0;
	}
	if (!st || st->dispatched || st->answered)
		return 0;
	if (f->hd.type == NGHTTP2_HEADERS && st->too_big) {
		h2_submit_error(st, 431, "request header fields too large");
		return 0;
	}
	if (f->hd.flags & NGHTTP2_FLAG_END_STREAM)
		h2_dispatch(st);
	else if (f->hd.type == NGHTTP2_DATA && h2_bidi_ready(st)) {
		/* a bidirectional gRPC call (grpc_bidi_path): the body is its
		 * first message; bytes past it wait in more for grpc_on_message */
		const uint8_t *p = (const uint8_t *)st->body.data;
		size_t first = GRPC_PREFIX + ((size_t)p[1] << 24 | (size_t)p[2] << 16 | (size_t)p[3] << 8 | p[4]);
		if (st->body.len > first) {
			buf_append(&st->more, st->body.data + first, st->body.len - first);
			st->body.len = first;
		}
		h2_dispatch(st);
	}
	return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *user)
{
	(void)code;
	struct h2_session *s = user;
	if (s->dying)
		return 0;
	struct h2_stream *st = nghttp2_session_get_stream_user_data(ng, id);
	if (st) {
		nghttp2_session_set_stream_user_data(ng, id, NULL);
		h2_stream_free(st);
	}
	return 0;
}

/* ------------------------------------------------------------ the connection */

static nghttp2_session_callbacks *h2_cbs;
static pthread_once_t h2_cbs_once = PTHREAD_ONCE_INIT;

/* One callback table for every session of every thread, set up once. */
static void h2_cbs_init(void)
{
	h2_cc_init();
	INVARIANT(nghttp2_session_callbacks_new(&h2_cbs) == 0);
	nghttp2_session_callbacks_set_on_begin_headers_callback(h2_cbs, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(h2_cbs, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(h2_cbs, on_data_chunk);
	nghttp2_session_callbacks_set_on_frame_recv_callback(h2_cbs, on_frame_recv);
	nghttp2_session_callbacks_set_on_stream_close_callback(h2_cbs, on_stream_close);
}

/* The connection turned HTTP/2: a session, and our SETTINGS at once
 * (grpc-go waits for them before its first request). */
static struct h2_session *h2_start(struct conn *c)
{
	struct http_server *srv = c->t->srv;
	pthread_once(&h2_cbs_once, h2_cbs_init);
	struct h2_session *s = calloc(1, sizeof *s);
	INVARIANT(s != NULL);
	s->c = c;
	nghttp2_option *opt;
	INVARIANT(nghttp2_option_new(&opt) == 0);
	/* a peer that never reads our SETTINGS ACKs and PING answers is bounded */
	nghttp2_option_set_max_outbound_ack(opt, 1000);
	nghttp2_option_set_max_settings(opt, 32);
	/* No RFC 7540 priority tree (deprecated by RFC 9113; we announce
	 * SETTINGS_NO_RFC7540_PRIORITIES below): nghttp2 then keeps no closed
	 * streams for it and schedules with RFC 9218's simpler queues, which
	 * perf showed as a large part of its time per stream. */
	nghttp2_option_set_no_closed_streams(opt, 1);
	/* the HTTP messaging rules are ours (h2_field): nghttp2's refuse the
	 * :authority grpc-go sends when it dials a URL */
	nghttp2_option_set_no_http_messaging(opt, 1);
	s->mem = (nghttp2_mem){.mem_user_data = &s->pool, .malloc = h2_mem_malloc,
	                       .free = h2_mem_free, .calloc = h2_mem_calloc,
	                       .realloc = h2_mem_realloc};
	INVARIANT(nghttp2_session_server_new3(&s->ng, h2_cbs, s, opt, &s->mem) == 0);
	nghttp2_option_del(opt);
	nghttp2_settings_entry iv[] = {
		{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, srv->cfg.h2_max_streams},
		{NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)srv->cfg.limits.max_header_bytes},
		{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
		{NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
	};
	nghttp2_submit_settings(s->ng, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]);
	c->h2 = s;
	c->dl_kind = DL_NONE;
	if (srv->m_h2_conns)
		metrics_counter_inc(srv->m_h2_conns);
	return s;
}

/* The earliest deadline of the open streams, or the idle one. */
static void h2_update_deadline(struct conn *c)
{
	struct h2_session *s = c->h2;
	struct http_server *srv = c->t->srv;
	uint64_t dl = 0;
	/* a request not complete keeps its deadline even when answered early
	 * (413, 431): its stream must not stay half open for ever */
	for (struct h2_stream *st = s->streams; st; st = st->next)
		if (st->deadline && (!st->answered || !st->dispatched) && (!dl || st->deadline < dl))
			dl = st->deadline;
	if (dl) {
		c->dl_kind = DL_BODY;
		c->deadline = dl;
	} else if (s->nstreams == 0 && c->pinned == 0) {
		if (c->dl_kind != DL_IDLE)
			conn_set_deadline(c, DL_IDLE, srv->cfg.idle_timeout_ms);
	} else {
		c->dl_kind = DL_NONE;
	}
}

/* The drain: GOAWAY after the streams received so far, which are served;
 * Health/Watch calls say NOT_SERVING and end. */
static void h2_goaway(struct h2_session *s)
{
	if (!s->goaway) {
		nghttp2_submit_goaway(s->ng, NGHTTP2_FLAG_NONE,
		                      nghttp2_session_get_last_proc_stream_id(s->ng),
		                      NGHTTP2_NO_ERROR, NULL, 0);
		s->goaway = true;
	}
	for (struct h2_stream *st = s->streams; st; st = st->next)
		if (st->watch && !st->ended)
			h2_watch_end(st, GRPC_HEALTH_NOT_SERVING);
}

/* Feed what is buffered to the session, take what it has to send, write. */
static void h2_service(struct conn *c)
{
	if (c->closed || c->lingering)
		return;
	struct h2_session *s = c->h2 ? c->h2 : h2_start(c);
	c->t->batch_ns = c->t->answer_ns = 0;
	c->in_process = true;
	if (c->rlen > c->rpos && !c->stop_parse) {
		ssize_t n = nghttp2_session_mem_recv(s->ng, (const uint8_t *)c->rbuf + c->rpos,
		                                     c->rlen - c->rpos);
		if (n < 0) {
			/* fatal for the connection (a bad preface, out of memory): nghttp2
			 * has queued a GOAWAY where one is due; send it and end */
			log_debug("http/2: %s", nghttp2_strerror((int)n));
			c->stop_parse = true;
		}
		c->rpos = c->rlen;
	}
	c->in_process = false;
	if (c->t->draining && !s->goaway)
		h2_goaway(s);   /* HTTP/2 begun during a drain, on a connection accepted
		                 * before it: its first streams are served, then it ends */
	/* nothing points into rbuf: give it back after every pass */
	if (c->rbuf && c->rpos == c->rlen)
		server_conn_rbuf_release(c);
	for (int i = 0; i < 4096; i++) {
		const uint8_t *d;
		ssize_t n = nghttp2_session_mem_send(s->ng, &d);
		if (n <= 0) {
			if (n < 0)
				c->stop_parse = true;
			break;
		}
		buf_append(&c->out, d, (size_t)n);
		if (c->out.len > OUT_BACKLOG_MAX)
			break;   /* the rest when this is written (write_done services again) */
	}
	if (!nghttp2_session_want_read(s->ng) && !nghttp2_session_want_write(s->ng))
		c->stop_parse = true;   /* GOAWAY both ways, or a fatal error */
	if (s->goaway && s->nstreams == 0 && c->pinned == 0)
		c->stop_parse = true;   /* drained */
	if (c->eof)
		c->stop_parse = true;
	h2_update_deadline(c);
	server_conn_flush(c);
	if (c->closed || c->lingering)
		return;
	bool want = !c->eof && !c->stop_parse && c->out.len + c->wout.len <= OUT_BACKLOG_MAX;
	io_read(c, want);
}

static void h2_timeout(struct conn *c, uint8_t kind)
{
	struct h2_session *s = c->h2;
	if (!s) {
		server_conn_close(c);
		return;
	}
	if (kind == DL_IDLE) {
		if (!s->goaway) {
			nghttp2_submit_goaway(s->ng, NGHTTP2_FLAG_NONE,
			                      nghttp2_session_get_last_proc_stream_id(s->ng),
			                      NGHTTP2_NO_ERROR, NULL, 0);
			s->goaway = true;
		}
		c->stop_parse = true;
		h2_service(c);
		return;
	}
	uint64_t now = uv_now(&c->t->loop);
	struct h2_stream *next;
	for (struct h2_stream *st = s->streams; st; st = next) {
		next = st->next;
		if (!st->deadline || st->deadline > now || (st->answered && st->dispatched))
			continue;
		st->deadline = 0;
		if (st->dispatched && st->grpc_deadline) {
			/* the handler is too late: the client hears DEADLINE_EXCEEDED
			 * now, and the handler's answer is dropped */
			struct xchg *x = st->x;
			st->x = NULL;
			if (x) {
				x->gone = true;
				x->stream = NULL;
			}
			struct http_header tr[2] = {{"grpc-status", "4", 11, 1},
			                            {"grpc-message", "deadline exceeded", 12, 17}};
			struct http_answer a = {.status = 200, .content_type = "application/grpc",
			                        .trailers = tr, .n_trailers = 2};
			h2_submit(st, &a, false);
		} else if (!st->dispatched) {
			/* the request did not end in time */
			nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
		}
	}
	h2_service(c);
}

static void h2_drain(struct conn *c)
{
	if (!c->h2) {
		server_conn_close(c);
		return;
	}
	h2_goaway(c->h2);
	h2_service(c);
}

/* The connection is closing: every stream goes with the session. */
static void h2_closed(struct conn *c)
{
	struct h2_session *s = c->h2;
	if (!s)
		return;
	s->dying = true;
	while (s->streams)
		h2_stream_free(s->streams);
	while (s->spare) {
		struct h2_stream *st = s->spare;
		s->spare = st->next;
		h2_stream_free_mem(st);
	}
	nghttp2_session_del(s->ng);
	h2_pool_trim(&s->pool, 0);   /* after the session, which frees into it */
	free(s);
	c->h2 = NULL;
}

const struct conn_proto server_proto_h2 = {
	.name = "h2",
	.service = h2_service,
	.timeout = h2_timeout,
	.respond = h2_respond,
	.drain = h2_drain,
	.closed = h2_closed,
	.stream_begin = h2_stream_begin,
	.stream_write = h2_stream_write,
	.stream_end = h2_stream_end,
};
