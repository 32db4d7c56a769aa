/*
 * client_h2.c -- HTTP/2 and unary gRPC requests on a libnghttp2 client
 * session whose bytes the caller moves (see client_h2.h).
 *
 * libnghttp2 keeps the framing, HPACK and flow control; what is ours is
 * the request built once (its header list and body never copied per
 * request: nghttp2 copies the header list into its own frame anyway, and
 * the body is read out of the shared request by the data callback), and a
 * fixed pool of stream records, one per concurrent stream, so that nothing
 * of ours is allocated per request and every stream ends exactly once.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include <nghttp2/nghttp2.h>

#include "base/invariant.h"
#include "http/client_h2.h"

/* ------------------------------------------------------------ requests */

static int field_add(struct http_h2_request *rq, const char *name, size_t nl,
                     const char *value, size_t vl, bool lower)
{
	if (rq->n_fields == HTTP_H2_MAX_FIELDS)
		return -E2BIG;
	size_t n = rq->store.len;
	buf_append(&rq->store, name, nl);
	if (lower)
		for (size_t i = 0; i < nl; i++)
			if (rq->store.data[n + i] >= 'A' && rq->store.data[n + i] <= 'Z')
				rq->store.data[n + i] = (char)(rq->store.data[n + i] + 32);
	size_t v = rq->store.len;
	buf_append(&rq->store, value, vl);
	rq->field[rq->n_fields].name = n;
	rq->field[rq->n_fields].name_len = nl;
	rq->field[rq->n_fields].value = v;
	rq->field[rq->n_fields].value_len = vl;
	rq->n_fields++;
	return 0;
}

static bool is_tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Fields RFC 9113 8.2.2 forbids in HTTP/2 requests. */
static bool connection_specific(const char *name, size_t n)
{
	static const char *const bad[] = {
		"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade",
		"content-length",  /* ours: the body decides it */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (strlen(bad[i]) == n && strncasecmp(bad[i], name, n) == 0)
			return true;
	return false;
}

int http_h2_request_build(struct http_h2_request *rq, const char *method,
                          const struct http_url *u, const char *const *headers,
                          size_t n_headers, const char *body, size_t body_len, bool grpc)
{
	memset(rq, 0, sizeof(*rq));
	buf_init(&rq->store);
	rq->grpc = grpc;
	const char *authority = u->authority;
	/* a user Host header stands for :authority, as in HTTP/1.1 */
	for (size_t i = 0; i < n_headers; i++)
		if (strncasecmp(headers[i], "host:", 5) == 0) {
			authority = headers[i] + 5;
			while (*authority == ' ' || *authority == '\t')
				authority++;
		}
	int r = field_add(rq, ":method", 7, method, strlen(method), false);
	if (!r)
		r = field_add(rq, ":scheme", 7, "http", 4, false);
	if (!r)
		r = field_add(rq, ":authority", 10, authority, strlen(authority), false);
	if (!r)
		r = field_add(rq, ":path", 5, u->path, strlen(u->path), false);
	if (!r && grpc) {
		r = field_add(rq, "content-type", 12, "application/grpc", 16, false);
		if (!r)
			r = field_add(rq, "te", 2, "trailers", 8, false);
	}
	for (size_t i = 0; !r && i < n_headers; i++) {
		const char *h = headers[i], *colon = strchr(h, ':');
		if (!colon || colon == h) {
			r = -EINVAL;
			break;
		}
		size_t nl = (size_t)(colon - h);
		for (size_t j = 0; j < nl; j++)
			if (!is_tchar(h[j]))
				r = -EINVAL;
		if (r || connection_specific(h, nl)) {
			r = -EINVAL;
			break;
		}
		if (nl == 4 && strncasecmp(h, "host", 4) == 0)
			continue;
		const char *v = colon + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		size_t vl = strlen(v);
		while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
			vl--;
		if (strpbrk(v, "\r\n")) {
			r = -EINVAL;
			break;
		}
		r = field_add(rq, h, nl, v, vl, true);
	}
	if (r) {
		http_h2_request_free(rq);
		return r;
	}
	rq->body = rq->store.len;
	if (grpc) {
		/* the message's prefix: not compressed, then the length, big-endian */
		uint8_t p[5] = { 0, (uint8_t)(body_len >> 24), (uint8_t)(body_len >> 16),
		                 (uint8_t)(body_len >> 8), (uint8_t)body_len };
		buf_append(&rq->store, p, 5);
	}
	if (body_len)
		buf_append(&rq->store, body, body_len);
	rq->body_len = rq->store.len - rq->body;
	return 0;
}

void http_h2_request_free(struct http_h2_request *rq)
{
	buf_free(&rq->store);
	rq->n_fields = 0;
}

/* ------------------------------------------------------------ the session */

struct stream_rec {
	const struct http_h2_request *rq;
	uint64_t off;            /* body bytes sent */
	int32_t stream_id;
	uint32_t tag;
	bool used, ended;        /* ended: END_STREAM received */
	bool canceled;           /* http_h2_client_cancel: never reported */
	char *msg;               /* grpc-message, decoded; freed at the end */
	struct http_h2_result res;
};

struct http_h2_client {
	nghttp2_session *s;
	http_h2_result_fn fn;
	http_h2_data_fn data_fn;
	void *ctx;
	unsigned max;
	unsigned hw;             /* records handed out at least once: rec[hw..max) never touched */
	unsigned n_free;         /* free_idx[0..n_free): records given back, reused first */
	unsigned *free_idx;
	/* malloc'd, not zeroed: a record is set whole when submit takes it,
	 * so a client that opens a few streams (dsys-lock's, one command's)
	 * faults in a page of them, not max of them (72 KiB at 1024) */
	struct stream_rec *rec;
	bool goaway;
	nghttp2_nv nva[HTTP_H2_MAX_FIELDS];
};

/* The stream's end, reported once; its record goes back to the pool. */
static void rec_end(struct http_h2_client *cl, struct stream_rec *r, uint32_t error_code)
{
	if (!r->used)
		return;
	r->used = false;
	r->res.reset = error_code != 0 || !r->ended;
	r->res.error_code = error_code;
	INVARIANT(cl->n_free < cl->hw);
	cl->free_idx[cl->n_free++] = (unsigned)(r - cl->rec);
	/* the callback may submit at once and be given this very record, so
	 * nothing here touches it after the callback: its message (which
	 * res.grpc_message points to until then) is freed from a copy */
	char *msg = r->msg;
	r->msg = NULL;
	if (!r->canceled)
		cl->fn(cl->ctx, r->tag, &r->res);
	free(msg);
}

static int hexval(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if ((c | 32) >= 'a' && (c | 32) <= 'f')
		return (c | 32) - 'a' + 10;
	return -1;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                     size_t nl, const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
	(void)flags;
	(void)ud;
	if (f->hd.type != NGHTTP2_HEADERS)
		return 0;
	struct stream_rec *r = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
	if (!r)
		return 0;
	if (nl == 12 && memcmp(name, "grpc-message", 12) == 0) {
		/* percent-encoded (gRPC's HTTP/2 spec): %XX decoded, the rest
		 * kept; allocated only here, for the rare answer that has one */
		char *m = realloc(r->msg, vl + 1);
		if (!m)
			return 0;
		size_t o = 0;
		for (size_t i = 0; i < vl; i++) {
			int hi = i + 2 < vl && value[i] == '%' ? hexval(value[i + 1]) : -1;
			int lo = hi >= 0 ? hexval(value[i + 2]) : -1;
			if (lo >= 0) {
				m[o++] = (char)(hi << 4 | lo);
				i += 2;
			} else {
				m[o++] = (char)value[i];
			}
		}
		m[o] = '\0';
		r->msg = m;
		r->res.grpc_message = m;
		return 0;
	}
	int *dst = NULL;
	if (nl == 7 && memcmp(name, ":status", 7) == 0)
		dst = &r->res.status;
	else if (nl == 11 && memcmp(name, "grpc-status", 11) == 0)
		dst = &r->res.grpc_status;
	if (!dst)
		return 0;
	/* at most 3 digits: anything else is not a status we can count */
	int v = 0;
	if (vl == 0 || vl > 3)
		v = 999;
	for (size_t i = 0; i < vl && v != 999; i++)
		v = value[i] >= '0' && value[i] <= '9' ? v * 10 + (value[i] - '0') : 999;
	*dst = v;
	return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	struct http_h2_client *cl = ud;
	if (f->hd.type == NGHTTP2_GOAWAY) {
		cl->goaway = true;
		return 0;
	}
	if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
	    (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
		struct stream_rec *r = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
		if (r)
			r->ended = true;
	}
	return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data,
                   size_t len, void *ud)
{
	(void)flags;
	struct http_h2_client *cl = ud;
	struct stream_rec *r = nghttp2_session_get_stream_user_data(s, id);
	if (r && !r->canceled) {
		r->res.body_bytes += len;
		if (cl->data_fn)
			cl->data_fn(cl->ctx, r->tag, data, len);
	}
	return 0;
}

static int on_close(nghttp2_session *s, int32_t id, uint32_t error_code, void *ud)
{
	struct stream_rec *r = nghttp2_session_get_stream_user_data(s, id);
	if (r)
		rec_end(ud, r, error_code);
	return 0;
}

/* A request's HEADERS that could not be sent (a GOAWAY came first): the
 * stream never opened, so no close callback will come for it. */
static int on_not_send(nghttp2_session *s, const nghttp2_frame *f, int err, void *ud)
{
	(void)s;
	(void)err;
	struct http_h2_client *cl = ud;
	if (f->hd.type != NGHTTP2_HEADERS)
		return 0;
	for (unsigned i = 0; i < cl->hw; i++)
		if (cl->rec[i].used && cl->rec[i].stream_id == f->hd.stream_id)
			rec_end(cl, &cl->rec[i], NGHTTP2_REFUSED_STREAM);
	return 0;
}

static ssize_t body_read(nghttp2_session *s, int32_t id, uint8_t *out, size_t len,
                         uint32_t *flags, nghttp2_data_source *src, void *ud)
{
	(void)s;
	(void)id;
	(void)ud;
	struct stream_rec *r = src->ptr;
	const struct http_h2_request *rq = r->rq;
	if (!rq)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;   /* canceled: reset */
	size_t left = rq->body_len - (size_t)r->off;
	size_t n = left < len ? left : len;
	memcpy(out, rq->store.data + rq->body + r->off, n);
	r->off += n;
	if (r->off == rq->body_len)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

/* Windows a load generator can afford: it reads everything at once, and a
 * window update per few responses would cost a frame each. */
#define H2_WINDOW (16 << 20)

struct http_h2_client *http_h2_client_new(unsigned max_streams, http_h2_result_fn fn, void *ctx)
{
	if (max_streams == 0)
		return NULL;
	struct http_h2_client *cl = calloc(1, sizeof(*cl));
	if (!cl)
		return NULL;
	cl->fn = fn;
	cl->ctx = ctx;
	cl->max = max_streams;
	cl->rec = malloc(max_streams * sizeof(*cl->rec));
	cl->free_idx = malloc(max_streams * sizeof(*cl->free_idx));
	nghttp2_session_callbacks *cb = NULL;
	if (!cl->rec || !cl->free_idx || nghttp2_session_callbacks_new(&cb) != 0)
		goto fail;
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
	nghttp2_session_callbacks_set_on_frame_not_send_callback(cb, on_not_send);
	int r = nghttp2_session_client_new(&cl->s, cb, cl);
	nghttp2_session_callbacks_del(cb);
	if (r != 0)
		goto fail;
	nghttp2_settings_entry iv[] = {
		{ NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
		{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, max_streams },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_WINDOW },
	};
	if (nghttp2_submit_settings(cl->s, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]) != 0 ||
	    nghttp2_session_set_local_window_size(cl->s, NGHTTP2_FLAG_NONE, 0, H2_WINDOW) != 0)
		goto fail;
	return cl;
fail:
	http_h2_client_free(cl);
	return NULL;
}

void http_h2_client_free(struct http_h2_client *cl)
{
	if (!cl)
		return;
	if (cl->s)
		nghttp2_session_del(cl->s);
	for (unsigned i = 0; cl->rec && i < cl->hw; i++)
		free(cl->rec[i].msg);   /* streams never ended */
	free(cl->rec);
	free(cl->free_idx);
	free(cl);
}

int http_h2_client_submit(struct http_h2_client *cl, const struct http_h2_request *rq,
                          uint32_t tag)
{
	if (cl->goaway)
		return -ESHUTDOWN;
	struct stream_rec *r;
	if (cl->n_free)
		r = &cl->rec[cl->free_idx[cl->n_free - 1]];
	else if (cl->hw < cl->max)
		r = &cl->rec[cl->hw];
	else
		return -EBUSY;
	for (size_t i = 0; i < rq->n_fields; i++) {
		cl->nva[i].name = (uint8_t *)rq->store.data + rq->field[i].name;
		cl->nva[i].namelen = rq->field[i].name_len;
		cl->nva[i].value = (uint8_t *)rq->store.data + rq->field[i].value;
		cl->nva[i].valuelen = rq->field[i].value_len;
		/* nghttp2 copies the list into its frame; no second copy */
		cl->nva[i].flags = NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE;
	}
	memset(r, 0, sizeof(*r));
	r->rq = rq;
	r->tag = tag;
	r->res.grpc_status = -1;
	nghttp2_data_provider dp = { .source.ptr = r, .read_callback = body_read };
	int32_t id = nghttp2_submit_request(cl->s, NULL, cl->nva, rq->n_fields,
	                                    rq->body_len ? &dp : NULL, r);
	if (id < 0)
		return -EPROTO;
	r->stream_id = id;
	r->used = true;
	if (cl->n_free)
		cl->n_free--;
	else
		cl->hw++;
	return 0;
}

void http_h2_client_on_data(struct http_h2_client *cl, http_h2_data_fn fn)
{
	cl->data_fn = fn;
}

int http_h2_client_cancel(struct http_h2_client *cl, uint32_t tag)
{
	for (unsigned i = 0; i < cl->hw; i++) {
		struct stream_rec *r = &cl->rec[i];
		if (!r->used || r->canceled || r->tag != tag)
			continue;
		r->canceled = true;
		r->rq = NULL;
		nghttp2_submit_rst_stream(cl->s, NGHTTP2_FLAG_NONE, r->stream_id, NGHTTP2_CANCEL);
		return 0;
	}
	return -ENOENT;
}

int http_h2_client_feed(struct http_h2_client *cl, const uint8_t *data, size_t len)
{
	ssize_t n = nghttp2_session_mem_recv(cl->s, data, len);
	if (n < 0 || (size_t)n != len)
		return -EPROTO;
	/* a protocol error ends the session with our GOAWAY queued, and the
	 * session stops reading: unusable, though mem_recv took the bytes */
	if (!cl->goaway && !nghttp2_session_want_read(cl->s))
		return -EPROTO;
	return 0;
}

long http_h2_client_output(struct http_h2_client *cl, struct buf *out)
{
	long total = 0;
	for (;;) {
		const uint8_t *p;
		ssize_t n = nghttp2_session_mem_send(cl->s, &p);
		if (n < 0)
			return -EPROTO;
		if (n == 0)
			return total;
		buf_append(out, p, (size_t)n);
		total += n;
	}
}

bool http_h2_client_goaway(const struct http_h2_client *cl)
{
	return cl->goaway;
}

bool http_h2_client_done(const struct http_h2_client *cl)
{
	return !nghttp2_session_want_read(cl->s) && !nghttp2_session_want_write(cl->s);
}
