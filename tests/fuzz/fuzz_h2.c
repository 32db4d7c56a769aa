/*
 * fuzz_h2.c -- libFuzzer target for the HTTP/2 and gRPC input path of
 * lib/http/server (server_h2.c, grpc.c).
 *
 * The input is what a client sends after the connection preface (which
 * the target puts in front, so the fuzzer spends its time on frames, not
 * on finding 24 fixed bytes).  It is fed to the HTTP/2 protocol of a real
 * connection struct, in pieces whose sizes come from the first input byte,
 * with a socket backend that discards what the server writes.  The handler
 * answers every request at once: plain requests echo their body, gRPC
 * calls echo their one message (or the error grpc_unary_message gives),
 * and grpc.health.v1 is answered by the core itself.  The connection is
 * then closed, which must free every stream (ASan's leak check).
 *
 * Properties: no crash, no memory error, no leak; every exchange handed
 * to the handler is answered (pinned is 0 afterwards); what the server
 * writes is whole frames, of known types on the streams they belong to,
 * within 16384 bytes (the fuzzer's SETTINGS may allow more: DATA and
 * header blocks then stay within what it allowed), and its header blocks
 * decode, in order, with an HPACK decoder of the harness's own (our
 * framing encodes through nghttp2's deflater; a block lost or sent out of
 * order would break the decoder's table).
 */
#include <nghttp2/nghttp2.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "http/grpc.h"
#include "http/server.h"
#include "http/server_internal.h"

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

static struct http_server *srv;
static struct http_thread *thr;

static nghttp2_hd_inflater *peer_inf;   /* the client's decoder of our header blocks */
static int32_t peer_block;              /* a header block of ours in progress: its stream */

/* One header block fragment of ours through the client's decoder. */
static void fz_inflate(const uint8_t *p, size_t n, bool final)
{
	for (;;) {
		nghttp2_nv nv;
		int fl = 0;
		ssize_t r = nghttp2_hd_inflate_hd2(peer_inf, &nv, &fl, p, n, final);
		CHECK(r >= 0);
		p += r;
		n -= (size_t)r;
		if (fl & NGHTTP2_HD_INFLATE_FINAL) {
			nghttp2_hd_inflate_end_headers(peer_inf);
			return;
		}
		if (!(fl & NGHTTP2_HD_INFLATE_EMIT) && n == 0)
			return;
	}
}

/* What the server wrote: whole, well-formed frames. */
static void fz_check_frames(const uint8_t *p, size_t n)
{
	while (n) {
		CHECK(n >= 9);
		uint32_t len = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
		uint8_t type = p[3], flags = p[4];
		uint32_t id = ((uint32_t)p[5] << 24 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 8 | p[8]);
		CHECK(n >= 9 + len);
		CHECK(type <= 9 && type != 2 && type != 5);   /* no PRIORITY, no push */
		CHECK(!(id & 0x80000000u));
		bool conn_level = type == 4 || type == 6 || type == 7;
		CHECK(conn_level ? id == 0 : (type == 8 || id != 0));
		CHECK(id == 0 || (id & 1));                   /* client streams only */
		if (type != 0 && type != 1 && type != 9)
			CHECK(len <= 16384);
		if (peer_block)
			CHECK(type == 9 && id == (uint32_t)peer_block);
		if (type == 1 || type == 9) {
			CHECK(type == 1 || peer_block);
			fz_inflate(p + 9, len, flags & 0x4);
			peer_block = flags & 0x4 ? 0 : (int32_t)id;
		}
		p += 9 + len;
		n -= 9 + len;
	}
}

static void fz_read(struct conn *c, bool on) { c->reading = on; }
static int fz_write_out(struct conn *c)
{
	fz_check_frames((const uint8_t *)c->out.data, c->out.len);
	buf_reset(&c->out);
	return 0;
}
static void fz_shutdown(struct conn *c) { (void)c; }
static void fz_close(struct conn *c) { c->handle_closed = true; }

static const struct server_io fz_io = {
	.name = "fuzz",
	.read = fz_read,
	.write_out = fz_write_out,
	.shutdown = fz_shutdown,
	.close = fz_close,
};

static void handler(struct http_exchange *ex, void *arg)
{
	(void)arg;
	if (grpc_is_call(ex)) {
		const uint8_t *msg;
		size_t len;
		int st = grpc_unary_message(ex, &msg, &len);
		if (st)
			grpc_answer(ex, NULL, 0, st, "bad message");
		else
			grpc_answer_message(ex, msg, len);
		return;
	}
	struct http_header h = {"x-echo", "yes", 6, 3};
	struct http_answer a = {.status = ex->body_len ? 200 : 404, .content_type = "text/plain",
	                        .headers = &h, .n_headers = 1, .raw_headers = "Cache-Control: no-store\r\n",
	                        .body = ex->body, .len = ex->body_len};
	http_answer(ex, &a);
}

static void setup(void)
{
	srv = calloc(1, sizeof *srv);
	thr = calloc(1, sizeof *thr);
	CHECK(srv && thr);
	http_server_config_init(&srv->cfg);
	srv->cfg.handler = handler;
	srv->cfg.limits.max_body = 4096;
	srv->cfg.limits.max_header_bytes = 2048;
	srv->cfg.h2_max_streams = 16;
	srv->io = &fz_io;
	srv->nthreads = 1;
	srv->threads = &thr;
	http_route_stats_init(&srv->unmatched, NULL, "unmatched");
	thr->srv = srv;
	CHECK(uv_loop_init(&thr->loop) == 0);
	buf_init(&thr->scratch);
	buf_init(&thr->errbuf);
}

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!srv)
		setup();
	if (size == 0)
		return 0;
	size_t piece = (size_t)data[0] * 7 + 1;
	data++;
	size--;
	CHECK(nghttp2_hd_inflate_new(&peer_inf) == 0);
	peer_block = 0;
	struct conn *c = calloc(1, sizeof *c);
	CHECK(c != NULL);
	buf_init(&c->out);
	buf_init(&c->wout);
	c->t = thr;
	c->proto = &server_proto_h2;
	size_t total = sizeof preface - 1 + size;
	char *all = malloc(total);
	CHECK(all != NULL);
	memcpy(all, preface, sizeof preface - 1);
	memcpy(all + sizeof preface - 1, data, size);
	for (size_t off = 0; off < total && !c->closed && !c->lingering;) {
		size_t n = total - off < piece ? total - off : piece;
		/* what a backend does: bytes appended to a buffer of the connection's */
		c->rbuf = malloc(n);
		CHECK(c->rbuf != NULL);
		c->rbig = true;
		c->rcap = n;
		memcpy(c->rbuf, all + off, n);
		c->rlen = n;
		c->rpos = 0;
		c->proto->service(c);
		if (c->rbuf)
			server_conn_rbuf_release(c);
		off += n;
	}
	CHECK(c->pinned == 0);
	if (!c->closed)
		server_conn_close(c);
	CHECK(c->h2 == NULL);
	if (c->out.len)
		fz_check_frames((const uint8_t *)c->out.data, c->out.len);
	nghttp2_hd_inflate_del(peer_inf);
	buf_free(&c->out);
	buf_free(&c->wout);
	free(c);
	free(all);
	return 0;
}
