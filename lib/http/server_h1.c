/*
 * http/server_h1.c -- HTTP/1.1 on a connection of lib/http/server.
 *
 * The core (server.c) owns sockets, buffers, exchanges and threads; this
 * file is what HTTP/1.1 adds on top: parsing heads and bodies out of the
 * connection's read buffer, keeping answers in request order (pipelining),
 * writing each answer as a head built from constant pieces and a
 * Content-Length body, the error answers for bad input, and its timeouts.
 *
 * Ordering.  c->xhead..c->xtail are the exchanges whose answers are not
 * written yet, in request order.  An answer for the FIFO's head is built
 * straight into c->out, and so is every already-answered exchange behind
 * it; an answer for any other exchange is built into that exchange's own
 * buffer and waits its turn.  So c->out always holds answers in request
 * order, and a pipelined burst leaves in one write.
 *
 * HTTP/2.  A connection whose first bytes are the HTTP/2 client preface is
 * handed to server_h2.c (prior-knowledge h2c on the same port): the test
 * costs one byte comparison per connection, never one per request.
 *
 * Pinning.  A request points into c->rbuf until answered (c->pinned), so
 * the buffer is compacted, grown or released (h1_tidy) only when nothing
 * is pinned.
 * */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/invariant.h"
#include "base/json.h"
#include "obs/metrics.h"
#include "http/server.h"
#include "http/server_internal.h"


/* Hand a complete request to the handler, behind the ones before it in
 * the connection's FIFO. */
static inline __attribute__((always_inline)) void h1_dispatch(struct conn *c, struct xchg *x)
{
	if (c->xtail)
		c->xtail->next = x;
	else
		c->xhead = x;
	c->xtail = x;
	server_dispatch(c, x);
}

/* Queue a server-made error answer after everything before it, and stop
 * reading requests from this connection.  The answer carries
 * "Connection: close", and a lingering close follows it. */
static void h1_error(struct conn *c, int status, const char *message)
{
	struct http_thread *t = c->t;
	bool was = c->in_process;
	if (c->body_x) {
		xchg_put(t, c->body_x);
		c->body_x = NULL;
	}
	c->stop_parse = true;
	c->linger_after = true;
	c->rpos = c->rlen;  /* nothing after a bad request is parsed */
	struct xchg *x = xchg_get(t);
	x->is_error = true;
	x->pub.req.method = HTTP_OTHER;
	x->pub.req.m.version_minor = 1;
	x->pub.start_ns = now_ns();
	x->c = c;
	if (c->xtail)
		c->xtail->next = x;
	else
		c->xhead = x;
	c->xtail = x;
	c->pinned++;
	in_flight_add(t, 1);
	c->in_process = true;
	t->answer_ns = 0;
	http_respond_error(&x->pub, status, message);
	c->in_process = was;
}

/* Feed buffered body bytes.  Returns 1 when the body is complete (and the
 * request was dispatched), 0 when more is needed, -1 after an error answer. */
static int h1_read_body(struct conn *c)
{
	struct xchg *x = c->body_x;
	size_t n = c->rlen - c->body_raw;
	if (n == 0)
		return 0;
	char *p = c->rbuf + c->body_raw;
	size_t consumed = 0, dlen = 0;
	int r = http_body_feed(&c->body, p, n, &consumed, &dlen);
	if (r < 0) {
		h1_error(c, http_parse_status(r), http_parse_strerror(r));
		return -1;
	}
	INVARIANT(consumed <= n && dlen <= consumed);
	char *dst = c->rbuf + c->body_start + c->body_dec;
	if (dlen && dst != p)
		memmove(dst, p, dlen);
	c->body_dec += dlen;
	c->body_raw += consumed;
	if (r == 0)
		return 0;
	x->pub.body = c->body_dec ? c->rbuf + c->body_start : NULL;
	x->pub.body_len = c->body_dec;
	c->rpos = c->body_raw;
	c->body_x = NULL;
	c->dl_kind = DL_NONE;
	h1_dispatch(c, x);
	return 1;
}

/* Parse and dispatch every complete request that is buffered, up to the
 * pipeline limit. */
static void h1_parse(struct conn *c)
{
	struct http_thread *t = c->t;
	struct http_server *srv = t->srv;
	while (!c->closed) {
		if (c->body_x) {
			if (h1_read_body(c) <= 0)
				break;
			continue;
		}
		if (c->stop_parse || c->rpos == c->rlen || c->pinned >= srv->cfg.max_pipeline)
			break;
		struct xchg *x = xchg_get(t);
		int r = http_parse_request(c->rbuf + c->rpos, c->rlen - c->rpos,
		                           &srv->cfg.limits, &x->pub.req);
		if (r == 0) {
			xchg_put(t, x);
			break;
		}
		if (r < 0) {
			xchg_put(t, x);
			h1_error(c, http_parse_status(r), http_parse_strerror(r));
			break;
		}
		x->head_off = c->rpos;
		c->rpos += (size_t)r;
		if (!t->batch_ns)
			t->batch_ns = now_ns();
		x->pub.start_ns = t->batch_ns;
		x->keep_alive = x->pub.req.m.keep_alive;
		x->head_only = x->pub.req.method == HTTP_HEAD;
		c->dl_kind = DL_NONE;
		if (!x->keep_alive)
			c->stop_parse = true;
		const struct http_message *m = &x->pub.req.m;
		if (m->body_kind == HTTP_BODY_NONE ||
		    (m->body_kind == HTTP_BODY_LENGTH && m->content_length == 0)) {
			h1_dispatch(c, x);
			continue;
		}
		if (m->body_kind == HTTP_BODY_LENGTH && m->content_length > srv->cfg.limits.max_body) {
			xchg_put(t, x);
			h1_error(c, 413, "request body too large");
			break;
		}
		if (m->body_kind != HTTP_BODY_LENGTH && m->body_kind != HTTP_BODY_CHUNKED) {
			xchg_put(t, x);
			h1_error(c, 400, "bad request framing");
			break;
		}
		c->body_x = x;
		http_body_init(&c->body, m, srv->cfg.limits.max_body);
		c->body_start = c->body_raw = c->rpos;
		c->body_dec = 0;
		conn_set_deadline(c, DL_BODY, srv->cfg.body_timeout_ms);
		if (m->expect_continue && c->rlen == c->rpos && !c->xhead)
			buf_append(&c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25);
	}
}

/* Make the read buffer fit what comes next: give it back when empty,
 * compact a partial head to its front, make room for a body.  Only when
 * no handler holds a request that points into it. */
static void h1_tidy(struct conn *c)
{
	struct http_thread *t = c->t;
	struct http_server *srv = t->srv;
	if (!c->rbuf || c->pinned > 0 || c->lingering)
		return;
	if (!c->body_x) {
		if (c->rpos == c->rlen) {
			server_conn_rbuf_release(c);
			return;
		}
		size_t left = c->rlen - c->rpos;
		if (c->rbig && left <= srv->block_size) {
			char *nb = server_block_get(t);
			memcpy(nb, c->rbuf + c->rpos, left);
			free(c->rbuf);
			c->rbuf = nb;
			c->rbig = false;
			c->rcap = srv->block_size;
		} else if (c->rpos > 0) {
			memmove(c->rbuf, c->rbuf + c->rpos, left);
		}
		c->rlen = left;
		c->rpos = 0;
		return;
	}
	struct xchg *x = c->body_x;
	size_t off = x->head_off;
	size_t used = c->rlen - off;
	size_t head_len = x->pub.req.m.head_len;
	size_t need;
	if (c->body.kind == HTTP_BODY_LENGTH) {
		need = head_len + (size_t)x->pub.req.m.content_length;
		if (need < used)
			need = used;
	} else {
		/* chunked: grow by doubling when full, up to what max_body needs */
		need = used;
		if (c->rlen == c->rcap) {
			size_t most = head_len + (size_t)srv->cfg.limits.max_body + srv->block_size;
			need = c->rcap * 2 > most ? most : c->rcap * 2;
			if (need < used + 1)
				need = used + 1;
		}
	}
	if (off == 0 && need <= c->rcap)
		return;
	if (need <= c->rcap) {
		memmove(c->rbuf, c->rbuf + off, used);
	} else {
		bool big = need > srv->block_size;
		char *nb = big ? malloc(need) : server_block_get(t);
		INVARIANT(nb != NULL);
		memcpy(nb, c->rbuf + off, used);
		if (c->rbig)
			free(c->rbuf);
		else
			server_block_put(t, c->rbuf);
		c->rbuf = nb;
		c->rbig = big;
		c->rcap = big ? need : srv->block_size;
	}
	c->rlen = used;
	c->rpos -= off;
	c->body_start -= off;
	c->body_raw -= off;
	x->head_off = 0;
	/* the head moved: parse it again where it is now (cheap, and the
	 * parser is the only thing that knows every pointer it set) */
	int r = http_parse_request(c->rbuf, head_len, &srv->cfg.limits, &x->pub.req);
	INVARIANT(r == (int)head_len);
}

static void h1_update_deadline(struct conn *c)
{
	struct http_server *srv = c->t->srv;
	if (c->lingering || c->closed)
		return;
	if (c->body_x) {
		if (c->dl_kind != DL_BODY)
			conn_set_deadline(c, DL_BODY, srv->cfg.body_timeout_ms);
	} else if (c->rpos < c->rlen && !c->stop_parse) {
		if (c->dl_kind != DL_HEADER)
			conn_set_deadline(c, DL_HEADER, srv->cfg.header_timeout_ms);
	} else if (c->pinned == 0 && !c->xhead) {
		if (c->t->draining && srv->cfg.reuse_port && !c->stop_parse && c->nreq > 0)
			server_conn_drain_idle(c);
		else if (c->nreq > 0 || c->stop_parse)
			conn_set_deadline(c, DL_IDLE, srv->cfg.idle_timeout_ms);
		/* a fresh connection keeps the header deadline set at accept */
	} else {
		c->dl_kind = DL_NONE;
	}
}

static void h1_update_reading(struct conn *c)
{
	struct http_server *srv = c->t->srv;
	if (c->closed || c->lingering)
		return;
	bool want = !c->eof;
	if (c->stop_parse && !c->body_x && !c->h1_streams)
		want = false;  /* (a stream reads on: its client's EOF means gone) */
	if (!c->body_x && c->pinned >= srv->cfg.max_pipeline)
		want = false;
	if (c->out.len + c->wout.len > OUT_BACKLOG_MAX)
		want = false;
	if (c->rbuf && c->rlen == c->rcap)
		want = false;  /* until answers unpin the buffer and h1_tidy makes room */
	io_read(c, want);
}

/* The HTTP/2 client preface (RFC 9113 section 3.4), which no HTTP/1.1
 * request can start with ("PRI" with version 2.0). */
static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define H2_PREFACE_LEN (sizeof h2_preface - 1)

/* A fresh connection whose first bytes are (so far) the preface: 1 when
 * it is all there (the connection becomes HTTP/2), 0 when more of it is
 * needed, -1 when it is HTTP/1.1 after all. */
static int h1_preface(const struct conn *c)
{
	size_t n = c->rlen < H2_PREFACE_LEN ? c->rlen : H2_PREFACE_LEN;
	if (memcmp(c->rbuf, h2_preface, n) != 0)
		return -1;
	return n == H2_PREFACE_LEN ? 1 : 0;
}

static void h1_service(struct conn *c)
{
	if (c->closed || c->lingering)
		return;
	if (c->nreq == 0 && c->rpos == 0 && c->rlen && c->rbuf[0] == 'P' && !c->stop_parse) {
		/* one test per connection, on its first bytes only */
		int r = h1_preface(c);
		if (r == 0 && !c->eof)
			return;   /* reading goes on: the rest of the preface */
		if (r == 1) {
			c->proto = &server_proto_h2;
			c->proto->service(c);
			return;
		}
	}
	/* one clock reading for every head of this pass, one for every answer
	 * given inside it: a pipelined burst costs two, not two per request,
	 * and a pass that completes no head (a write done, late answers) none */
	c->t->batch_ns = 0;
	c->t->answer_ns = 0;
	c->in_process = true;
	h1_parse(c);
	c->in_process = false;
	h1_tidy(c);
	h1_update_deadline(c);
	/* flush before deciding on reading: the backlog test must see what the
	 * write left, or a batch over OUT_BACKLOG_MAX that the socket took
	 * whole would stop reading with no write left to restart it */
	server_conn_flush(c);
	h1_update_reading(c);
}

static void h1_timeout(struct conn *c, uint8_t kind)
{
	switch (kind) {
	case DL_HEADER:
		if (c->rpos == c->rlen && !c->body_x) {
			/* nothing of a request arrived: close quietly, as nginx does */
			server_conn_close(c);
			return;
		}
		/* fallthrough */
	case DL_BODY:
		h1_error(c, 408, "request timed out");
		h1_service(c);
		return;
	default:
		server_conn_close(c);
		return;
	}
}

/* ------------------------------------------------------------ answers */

static char *put(char *p, const void *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}
#define PUT_LIT(p, lit) put((p), (lit), sizeof(lit) - 1)

/* The head's first lines for status ("HTTP/1.1 200 OK", Server, Date)
 * from t->head, building it there when the status differs from the last
 * answer's or the Date line changed: a run of answers with one status costs
 * one copy per answer, not a reason lookup, a strlen and three copies. */
static inline __attribute__((always_inline)) char *put_head_start(struct http_thread *t, char *p, int status)
{
	if (status != t->head_status) {
		struct http_server *srv = t->srv;
		const char *reason = http_status_reason(status);
		if (!reason)
			reason = "";
		size_t rlen = strlen(reason);
		if (rlen > 64)
			rlen = 64;  /* the reserve in xchg_build counts on this bound */
		char *h = t->head;
		h = PUT_LIT(h, "HTTP/1.1 ");
		*h++ = (char)('0' + status / 100);
		*h++ = (char)('0' + status / 10 % 10);
		*h++ = (char)('0' + status % 10);
		*h++ = ' ';
		h = put(h, reason, rlen);
		h = PUT_LIT(h, "\r\n");
		h = put(h, srv->server_line, srv->server_line_len);
		h = put(h, t->date, t->date_len);
		t->head_len = (size_t)(h - t->head);
		INVARIANT(t->head_len <= sizeof t->head);
		t->head_status = status;
	}
	return put(p, t->head, t->head_len);
}

/* Decimal digits of n at p; the lengths of small bodies inline. */
static inline __attribute__((always_inline)) char *put_len(char *p, size_t n)
{
	if (n < 10) {
		*p++ = (char)('0' + n);
	} else if (n < 100) {
		*p++ = (char)('0' + n / 10);
		*p++ = (char)('0' + n % 10);
	} else if (n < 1000) {
		*p++ = (char)('0' + n / 100);
		*p++ = (char)('0' + n / 10 % 10);
		*p++ = (char)('0' + n % 10);
	} else {
		p += fmt_u64(p, n);
	}
	return p;
}

/* Append the whole answer to out: the head from constant pieces, then the
 * body.  No printf. */
/* inlined into each caller: the answer's fields then stay in registers */
static inline __attribute__((always_inline)) void
xchg_build(struct xchg *x, struct buf *out, const struct http_answer *a)
{
	int status = a->status;
	const char *ctype = a->content_type, *headers = a->raw_headers;
	const void *body = a->body;
	size_t len = a->len;
	struct http_thread *t = x->pub.thread;
	struct conn *c = x->c;
	bool close = !x->keep_alive || x->is_error || t->draining;
	if (close)
		c->stop_parse = true;
	if (x->is_error)
		c->linger_after = true;
	if (status < 100 || status > 999)
		status = 500;
	bool bodyless = status == 204 || status == 304 || status < 200;
	size_t clen = ctype ? strlen(ctype) : 0;
	size_t hlen = headers ? strlen(headers) : 0;
	size_t llen = 0;
	for (uint32_t i = 0; i < a->n_headers; i++)
		llen += a->headers[i].name_len + a->headers[i].value_len + 4;
	/* head[] bounds the head's first lines; the rest of its constant
	 * pieces fit in 160 */
	size_t need = 160 + sizeof t->head + clen + hlen + llen + len;
	if (need >= out->cap || out->len + need + 1 > out->cap) {
		if (need > BUF_KEEP_MAX && out == &c->out)
			server_buf_unpark(t, out, need);
		buf_reserve(out, need);
	}
	char *p = out->data + out->len;
	p = put_head_start(t, p, status);
	if (ctype) {
		p = PUT_LIT(p, "Content-Type: ");
		p = put(p, ctype, clen);
		p = PUT_LIT(p, "\r\n");
	}
	if (!bodyless) {
		p = PUT_LIT(p, "Content-Length: ");
		p = put_len(p, len);
		p = PUT_LIT(p, "\r\n");
	}
	if (close)
		p = PUT_LIT(p, "Connection: close\r\n");
	else if (x->pub.req.m.version_minor == 0)
		p = PUT_LIT(p, "Connection: keep-alive\r\n");
	if (hlen)
		p = put(p, headers, hlen);
	for (uint32_t i = 0; i < a->n_headers; i++) {
		const struct http_header *h = &a->headers[i];
		p = put(p, h->name, h->name_len);
		p = PUT_LIT(p, ": ");
		p = put(p, h->value, h->value_len);
		p = PUT_LIT(p, "\r\n");
	}
	p = PUT_LIT(p, "\r\n");
	if (!bodyless && !x->head_only && len)
		p = put(p, body, len);
	out->len = (size_t)(p - out->data);
	INVARIANT(out->len < out->cap);
	out->data[out->len] = '\0';
}

static void h1_stream_live(struct xchg *x);

/* The FIFO's head x is out (in c->out): it leaves, the answers that were
 * waiting behind it follow in order, and a streamed answer that becomes
 * the head goes live. */
static inline void h1_head_done(struct conn *c, struct xchg *x)
{
	struct http_thread *t = c->t;
	c->xhead = x->next;
	xchg_put(t, x);
	while (c->xhead && c->xhead->answered) {
		struct xchg *y = c->xhead;
		buf_append(&c->out, y->resp.data, y->resp.len);
		c->xhead = y->next;
		xchg_put(t, y);
	}
	if (!c->xhead)
		c->xtail = NULL;
	else if (c->xhead->streaming)
		h1_stream_live(c->xhead);
	server_conn_schedule(c);
}

/* Answers leave in request order: the FIFO's head is built straight into
 * c->out, with every answered exchange behind it; any other waits in its
 * own buffer for its turn. */
static inline __attribute__((always_inline)) void
h1_respond_inline(struct xchg *x, const struct http_answer *a)
{
	struct conn *c = x->c;
	if (c->xhead != x) {
		/* an earlier request is still unanswered: wait for it */
		xchg_build(x, &x->resp, a);
		server_conn_schedule(c);
		return;
	}
	xchg_build(x, &c->out, a);
	h1_head_done(c, x);
}

/* ------------------------------------------------------------ the public answer */

/*
 * The bookkeeping every answer gets, whatever the protocol: the pin, the
 * in-flight gauge, the route's count and the latency; then the protocol
 * writes it, or it is dropped when the client is gone.  It lives here,
 * beside HTTP/1.1's answer, so that on HTTP/1.1 (the hot path) the whole
 * answer is one inlined call chain: no call through the proto table.
 */
static inline __attribute__((always_inline)) bool answer_account(struct http_exchange *ex, int status);

static inline __attribute__((always_inline)) void answer(struct http_exchange *ex, const struct http_answer *a)
{
	struct xchg *x = container_of(ex, struct xchg, pub);
	struct conn *c = x->c;
	INVARIANT_MSG(!x->streaming, "a streamed answer ends with http_stream_end");
	if (!answer_account(ex, a->status))
		return;
	http_encode_fn encode = c->t->srv->cfg.encode;
	struct http_answer enc;
	if (encode) {
		/* compression (lib/http/compress.h): it may point the raw
		 * headers and the body elsewhere, valid until its next call */
		enc = *a;
		if (encode(ex, a->status, a->content_type, &enc.raw_headers, &enc.body, &enc.len,
		           c->t->srv->cfg.encode_arg))
			a = &enc;
	}
	if (c->proto == &server_proto_h1)
		h1_respond_inline(x, a);
	else
		c->proto->respond(x, a);
}

/* The bookkeeping: false when the client is gone and x was put back. */
static inline __attribute__((always_inline)) bool answer_account(struct http_exchange *ex, int status)
{
	struct xchg *x = container_of(ex, struct xchg, pub);
	struct conn *c = x->c;
	INVARIANT(c != NULL);
	INVARIANT_MSG(!x->answered, "an exchange is answered once");
	INVARIANT(c->pinned > 0);
	struct http_thread *t = c->t;
	struct http_server *srv = t->srv;
	x->answered = true;
	c->pinned--;
	in_flight_add(t, -1);
	http_route_stats_count(ex->route_stats ? ex->route_stats : &srv->unmatched, status);
	if (__builtin_expect(ex->span != NULL, 0))
		http_trace_end(ex, status);
	if (srv->m_latency) {
		uint64_t end;
		if (c->in_process) {
			if (!t->answer_ns)
				t->answer_ns = now_ns();
			end = t->answer_ns;
		} else {
			end = now_ns();
		}
		metrics_histogram_observe_ns(srv->m_latency, end > ex->start_ns ? end - ex->start_ns : 0);
	}
	if (c->closed) {
		/* the client is gone: drop the answer */
		xchg_put(t, x);
		server_conn_maybe_release(c);
		return false;
	}
	return true;
}

void http_answer(struct http_exchange *ex, const struct http_answer *a)
{
	answer(ex, a);
}

void http_respond_headers(struct http_exchange *ex, int status, const char *content_type,
                          const char *headers, const void *body, size_t len)
{
	struct http_answer a = {.status = status, .content_type = content_type,
	                        .raw_headers = headers, .body = body, .len = len};
	answer(ex, &a);
}

const char *http_exchange_protocol(const struct http_exchange *ex)
{
	const struct xchg *x = container_of(ex, const struct xchg, pub);
	return x->c->proto->name;
}

void http_respond(struct http_exchange *ex, int status, const char *content_type,
                  const void *body, size_t len)
{
	struct http_answer a = {.status = status, .content_type = content_type,
	                        .body = body, .len = len};
	answer(ex, &a);
}

void http_respond_error(struct http_exchange *ex, int status, const char *message)
{
	struct buf *b = &ex->thread->errbuf;
	buf_reset(b);
	buf_puts(b, "{\"error\":");
	json_escape(b, message, strlen(message));
	buf_putc(b, '}');
	http_respond_headers(ex, status, "application/json", NULL, b->data, b->len);
}


/* ------------------------------------------------------------ streamed answers */

/*
 * HTTP/1.1 streams an answer as it comes (a watch, a log tail): the head
 * at http_stream_begin, each http_stream_write as one chunk of a
 * "Transfer-Encoding: chunked" body, http_stream_end as the last (zero)
 * chunk.  Pieces written in one loop turn leave in one write (the check
 * phase flushes c->out), never later than that turn.
 *
 * - Order: a streamed answer is live only while its exchange is the
 *   FIFO's head.  Until then its head and pieces are buffered in x->resp,
 *   as any early answer is; when the answers before it have gone
 *   (h1_respond_inline, or an earlier stream's end) what it buffered moves
 *   to c->out and it goes on live.  Answers behind a live stream wait in
 *   their own buffers for its end.
 * - An HTTP/1.0 request gets the body close-delimited (no chunked coding
 *   in 1.0): "Connection: close", and the connection closes after it.
 *   A HEAD request gets the head only; its pieces are dropped.  So do
 *   204, 304 and 1xx, which carry no body.
 * - Trailers are dropped, as for a whole answer on HTTP/1.1: no user of
 *   them (gRPC) runs here, and chunked trailers reach only a client that
 *   said "TE: trailers", which none of ours does.
 * - The client gone: while a stream is open the connection keeps reading,
 *   and its EOF or a read error closes it (server.c), so
 *   http_exchange_gone turns true even for a stream that never writes.
 * - Backpressure: what the socket does not take waits in c->out (or
 *   x->resp, before its turn), unbounded by the handler; once more than
 *   STREAM_BACKLOG_MAX bytes of a stream wait unsent, the client is taken
 *   to be stuck: the connection is closed, and http_stream_write returns
 *   -EPIPE from then on.  Reading stops meanwhile past OUT_BACKLOG_MAX, as
 *   for any answer.
 * - The compression hook (cfg.encode) is not applied to streamed answers.
 */
enum h1_frame {
	H1_CHUNKED = 0,  /* HTTP/1.1: chunked coding */
	H1_CLOSE,        /* HTTP/1.0: the body ends with the connection */
	H1_NOBODY,       /* HEAD, 204, 304, 1xx: the head only */
};

/* The buffer x's bytes go to now: c->out when x is live, else its own. */
static inline struct buf *h1_stream_buf(struct xchg *x)
{
	return x->c->xhead == x ? &x->c->out : &x->resp;
}

/* x reached the FIFO's head: what it buffered leaves now, behind the
 * answers before it, and it is live from here on. */
static void h1_stream_live(struct xchg *x)
{
	struct conn *c = x->c;
	INVARIANT(c->xhead == x && x->streaming);
	if (x->resp.len) {
		buf_append(&c->out, x->resp.data, x->resp.len);
		buf_reset(&x->resp);
	}
}

/* Is the client too slow for x's stream (see above)?  Then drop it. */
static bool h1_stream_stuck(struct xchg *x)
{
	struct conn *c = x->c;
	size_t waiting = c->xhead == x ? c->out.len + c->wout.len : x->resp.len;
	if (waiting <= STREAM_BACKLOG_MAX)
		return false;
	server_conn_close(c);
	return true;
}

static void h1_stream_begin(struct xchg *x, const struct http_answer *head)
{
	struct conn *c = x->c;
	struct http_thread *t = c->t;
	int status = head->status;
	if (status < 100 || status > 999)
		status = x->stream_status = 500;
	bool v10 = x->pub.req.m.version_minor == 0;
	if (x->head_only || status == 204 || status == 304 || status < 200)
		x->frame = H1_NOBODY;
	else
		x->frame = v10 ? H1_CLOSE : H1_CHUNKED;
	if (x->frame == H1_CLOSE || (v10 && x->frame == H1_NOBODY))
		x->keep_alive = false;
	bool close = !x->keep_alive || t->draining;
	if (close)
		c->stop_parse = true;
	c->h1_streams++;
	struct buf *out = h1_stream_buf(x);
	/* the cached status line, Server and Date, as a whole answer's */
	buf_reserve(out, sizeof t->head + 1);
	out->len = (size_t)(put_head_start(t, out->data + out->len, status) - out->data);
	if (head->content_type) {
		buf_puts(out, "Content-Type: ");
		buf_puts(out, head->content_type);
		buf_puts(out, "\r\n");
	}
	if (x->frame == H1_CHUNKED || (x->frame == H1_NOBODY && x->head_only && !v10))
		buf_puts(out, "Transfer-Encoding: chunked\r\n");
	if (close)
		buf_puts(out, "Connection: close\r\n");
	for (uint32_t i = 0; i < head->n_headers; i++) {
		buf_append(out, head->headers[i].name, head->headers[i].name_len);
		buf_puts(out, ": ");
		buf_append(out, head->headers[i].value, head->headers[i].value_len);
		buf_puts(out, "\r\n");
	}
	if (head->raw_headers)
		buf_puts(out, head->raw_headers);
	buf_puts(out, "\r\n");
	if (head->len)
		http_stream_write(&x->pub, head->body, head->len);
	if (out == &c->out)
		server_conn_schedule(c);
}

static int h1_stream_write(struct xchg *x, const void *data, size_t len)
{
	if (len == 0 || x->frame == H1_NOBODY)
		return 0;   /* (an empty chunk would end the body) */
	struct buf *out = h1_stream_buf(x);
	if (x->frame == H1_CHUNKED) {
		char size[24];
		int n = snprintf(size, sizeof size, "%zx\r\n", len);
		buf_append(out, size, (size_t)n);
		buf_append(out, data, len);
		buf_puts(out, "\r\n");
	} else {
		buf_append(out, data, len);
	}
	if (h1_stream_stuck(x))
		return -EPIPE;
	if (out == &x->c->out)
		server_conn_schedule(x->c);
	return 0;
}

/* The end: the last chunk, then x leaves the FIFO as any answer does
 * (x->answered is set; the core did the bookkeeping). */
static void h1_stream_end(struct xchg *x)
{
	struct conn *c = x->c;
	if (x->frame == H1_CHUNKED)
		buf_puts(h1_stream_buf(x), "0\r\n\r\n");
	if (c->xhead != x)
		return;   /* complete in x->resp: it waits its turn */
	h1_head_done(c, x);
}

void http_stream_begin(struct http_exchange *ex, const struct http_answer *head)
{
	struct xchg *x = container_of(ex, struct xchg, pub);
	struct conn *c = x->c;
	INVARIANT_MSG(!x->answered && !x->streaming, "an exchange is answered once");
	x->streaming = true;
	x->stream_status = head->status;
	if (c->closed)
		return;
	if (c->proto->stream_begin)
		c->proto->stream_begin(x, head);
	else
		h1_stream_begin(x, head);
}

int http_stream_write(struct http_exchange *ex, const void *data, size_t len)
{
	struct xchg *x = container_of(ex, struct xchg, pub);
	struct conn *c = x->c;
	INVARIANT_MSG(x->streaming && !x->answered, "http_stream_write between begin and end");
	if (c->closed || x->gone)
		return -EPIPE;
	if (c->proto->stream_write)
		return c->proto->stream_write(x, data, len);
	return h1_stream_write(x, data, len);
}

void http_stream_end(struct http_exchange *ex, const struct http_header *trailers, uint32_t n)
{
	struct xchg *x = container_of(ex, struct xchg, pub);
	struct conn *c = x->c;
	INVARIANT_MSG(x->streaming && !x->answered, "http_stream_end once, after begin");
	bool h1 = !c->proto->stream_end;
	if (h1 && !c->closed) {
		INVARIANT(c->h1_streams > 0);
		c->h1_streams--;
	}
	x->streaming = false;
	if (!answer_account(ex, x->stream_status))
		return;
	if (h1)
		h1_stream_end(x);
	else
		c->proto->stream_end(x, trailers, n);
}

static void h1_respond(struct xchg *x, const struct http_answer *a)
{
	h1_respond_inline(x, a);
}

const struct conn_proto server_proto_h1 = {
	.name = "http/1.1",
	.service = h1_service,
	.timeout = h1_timeout,
	.respond = h1_respond,
};
