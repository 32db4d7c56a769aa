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
 * to the handler is answered (pinned is 0 afterwards).
 */
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

static void fz_read(struct conn *c, bool on) { c->reading = on; }
static int fz_write_out(struct conn *c) { buf_reset(&c->out); return 0; }
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
	buf_free(&c->out);
	buf_free(&c->wout);
	free(c);
	free(all);
	return 0;
}
