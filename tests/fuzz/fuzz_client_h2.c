/*
 * fuzz_client_h2.c -- libFuzzer target for http/client_h2: what a server
 * (or anything on the port) sends to dsys-bench --h2 / --grpc.
 *
 * Four streams are open (two plain, two gRPC) before the input is fed in
 * pieces (its first byte sets the piece size), the session's output taken
 * after each piece as dsys-bench does.  Properties (trap on violation):
 *   - every stream ends at most once, with the tag it was given;
 *   - an ended stream's :status and grpc-status are in range (0 or
 *     100..999; -1 or 0..999);
 *   - the pool never hands out more streams than it has: once every tag
 *     has ended, the four can be submitted again (unless a GOAWAY came or
 *     the session is broken).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "http/client_h2.h"

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

static int ends[4];

static void on_result(void *ctx, uint32_t tag, const struct http_h2_result *r)
{
	(void)ctx;
	CHECK(tag < 4);
	ends[tag]++;
	CHECK(ends[tag] == 1);
	CHECK(r->status == 0 || (r->status >= 100 && r->status <= 999));
	CHECK(r->grpc_status >= -1 && r->grpc_status <= 999);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct http_h2_request rq, grq;
	static int built;
	if (!built) {
		struct http_url u;
		http_url_parse("http://127.0.0.1:8080/x", &u);
		http_h2_request_build(&rq, "POST", &u, NULL, 0, "body", 4, false);
		http_h2_request_build(&grq, "POST", &u, NULL, 0, "\x0a\x01\x31", 3, true);
		built = 1;
	}
	memset(ends, 0, sizeof ends);
	struct http_h2_client *cl = http_h2_client_new(4, on_result, NULL);
	CHECK(cl != NULL);
	for (uint32_t t = 0; t < 4; t++)
		CHECK(http_h2_client_submit(cl, t < 2 ? &rq : &grq, t) == 0);
	struct buf out = BUF_INIT;
	http_h2_client_output(cl, &out);
	size_t piece = size ? (size_t)data[0] + 1 : 1, off = size ? 1 : 0;
	bool broken = false;
	while (off < size && !broken) {
		size_t n = size - off < piece ? size - off : piece;
		broken = http_h2_client_feed(cl, data + off, n) < 0;
		off += n;
		buf_reset(&out);
		broken |= http_h2_client_output(cl, &out) < 0;
	}
	if (!broken && !http_h2_client_goaway(cl) && !http_h2_client_done(cl) &&
	    ends[0] && ends[1] && ends[2] && ends[3]) {
		memset(ends, 0, sizeof ends);
		for (uint32_t t = 0; t < 4; t++) {
			int r = http_h2_client_submit(cl, &rq, t);
			CHECK(r == 0 || r == -EPROTO);
		}
	}
	buf_free(&out);
	http_h2_client_free(cl);
	return 0;
}
