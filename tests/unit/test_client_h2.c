/* Unit tests of lib/http/client_h2: requests built once (HTTP/2's field
 * rules, gRPC's prefix), and whole exchanges against an in-process
 * libnghttp2 server session as the peer (bytes pumped between the two, no
 * socket): answers, RST_STREAM, GOAWAY, gRPC trailers, a full pool of
 * streams, bytes that are not HTTP/2.  Each stream must end exactly once. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "http/client_h2.h"
#include "tap.h"

/* ------------------------------------------------------------ the peer */

enum peer_mode { ANSWER, RESET, GRPC_TRAILERS, GOAWAY_AFTER_FIRST };

struct peer {
	nghttp2_session *s;
	enum peer_mode mode;
	int requests;
	size_t body_seen;
};

static ssize_t peer_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len,
                         uint32_t *flags, nghttp2_data_source *src, void *ud)
{
	(void)s;
	(void)src;
	struct peer *p = ud;
	memcpy(buf, "hello", 5 < len ? 5 : len);
	*flags |= NGHTTP2_DATA_FLAG_EOF;
	if (p->mode == GRPC_TRAILERS) {
		nghttp2_nv tr[] = {
			{ (uint8_t *)"grpc-status", (uint8_t *)"5", 11, 1, NGHTTP2_NV_FLAG_NONE },
			{ (uint8_t *)"grpc-message", (uint8_t *)"not%20found", 12, 11, NGHTTP2_NV_FLAG_NONE },
		};
		*flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
		nghttp2_submit_trailer(s, id, tr, 2);
	}
	return 5;
}

static int peer_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *d,
                     size_t len, void *ud)
{
	(void)s;
	(void)flags;
	(void)id;
	(void)d;
	((struct peer *)ud)->body_seen += len;
	return 0;
}

static int peer_frame(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	struct peer *p = ud;
	if ((f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) ||
	    !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	int32_t id = f->hd.stream_id;
	p->requests++;
	nghttp2_nv st[] = {
		{ (uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16, NGHTTP2_NV_FLAG_NONE },
	};
	nghttp2_data_provider dp = { .read_callback = peer_body };
	switch (p->mode) {
	case RESET:
		nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
		break;
	case GOAWAY_AFTER_FIRST:
		if (p->requests == 1) {
			nghttp2_submit_response(s, id, st, 1, &dp);
			nghttp2_submit_goaway(s, NGHTTP2_FLAG_NONE, id, NGHTTP2_NO_ERROR, NULL, 0);
		}
		break;
	default:
		nghttp2_submit_response(s, id, st, p->mode == GRPC_TRAILERS ? 2 : 1, &dp);
	}
	return 0;
}

static void peer_init(struct peer *p, enum peer_mode mode)
{
	memset(p, 0, sizeof(*p));
	p->mode = mode;
	nghttp2_session_callbacks *cb;
	nghttp2_session_callbacks_new(&cb);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, peer_frame);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, peer_data);
	nghttp2_session_server_new(&p->s, cb, p);
	nghttp2_session_callbacks_del(cb);
	nghttp2_settings_entry iv[] = { { NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100 } };
	nghttp2_submit_settings(p->s, NGHTTP2_FLAG_NONE, iv, 1);
}

/* Move bytes both ways until neither side has more to say. */
static int pump(struct http_h2_client *cl, struct peer *p)
{
	struct buf b = BUF_INIT;
	for (int turn = 0; turn < 100; turn++) {
		buf_reset(&b);
		if (http_h2_client_output(cl, &b) < 0)
			return -1;
		size_t from_client = b.len;
		if (b.len && nghttp2_session_mem_recv(p->s, (uint8_t *)b.data, b.len) != (ssize_t)b.len)
			return -1;
		const uint8_t *d;
		ssize_t n;
		size_t from_peer = 0;
		while ((n = nghttp2_session_mem_send(p->s, &d)) > 0) {
			from_peer += (size_t)n;
			if (http_h2_client_feed(cl, d, (size_t)n) < 0) {
				buf_free(&b);
				return -1;
			}
		}
		if (from_client == 0 && from_peer == 0)
			break;
	}
	buf_free(&b);
	return 0;
}

/* ------------------------------------------------------------ results */

#define TAGS 16
static struct http_h2_result got[TAGS];
static int ends[TAGS];

static void on_result(void *ctx, uint32_t tag, const struct http_h2_result *r)
{
	(void)ctx;
	if (tag < TAGS) {
		got[tag] = *r;
		ends[tag]++;
	}
}

/* A result callback that submits the next request at once, as a closed
 * loop does: with a pool of one, the new stream takes the record that has
 * just ended.  It checks what it was given before submitting. */
static struct http_h2_client *chain_cl;
static const struct http_h2_request *chain_rq;
static int chain_left, chain_good;

static void on_result_chain(void *ctx, uint32_t tag, const struct http_h2_result *r)
{
	(void)ctx;
	(void)tag;
	chain_good += r->grpc_status == 5 && r->grpc_message && strcmp(r->grpc_message, "not found") == 0;
	if (chain_left > 0) {
		chain_left--;
		if (http_h2_client_submit(chain_cl, chain_rq, 0) != 0)
			chain_left = -1000;
	}
}

static void results_reset(void)
{
	memset(got, 0, sizeof got);
	memset(ends, 0, sizeof ends);
}

static const char *field(const struct http_h2_request *rq, const char *name)
{
	static char v[256];
	for (size_t i = 0; i < rq->n_fields; i++)
		if (rq->field[i].name_len == strlen(name) &&
		    memcmp(rq->store.data + rq->field[i].name, name, strlen(name)) == 0) {
			snprintf(v, sizeof v, "%.*s", (int)rq->field[i].value_len,
			         rq->store.data + rq->field[i].value);
			return v;
		}
	return NULL;
}

int main(void)
{
	struct http_url u;
	http_url_parse("http://127.0.0.1:8080/hello?x=1", &u);
	struct http_h2_request rq, grq;

	/* building */
	const char *hs[] = { "X-Trace-Id: abc ", "Host: example.com" };
	is_int(http_h2_request_build(&rq, "GET", &u, hs, 2, NULL, 0, false), 0, "a GET builds");
	is_str(field(&rq, ":path"), "/hello?x=1", ":path is the URL's, query kept");
	is_str(field(&rq, ":authority"), "example.com", "a Host header becomes :authority");
	is_str(field(&rq, "x-trace-id"), "abc", "names lower-cased, values trimmed");
	ok(field(&rq, "host") == NULL, "no host field beside :authority");
	is_int((int)rq.body_len, 0, "no body");
	http_h2_request_free(&rq);
	const char *bad1[] = { "Connection: close" };
	is_int(http_h2_request_build(&rq, "GET", &u, bad1, 1, NULL, 0, false), -EINVAL,
	       "Connection is refused (RFC 9113 8.2.2)");
	const char *bad2[] = { "Transfer-Encoding: chunked" };
	is_int(http_h2_request_build(&rq, "GET", &u, bad2, 1, NULL, 0, false), -EINVAL,
	       "Transfer-Encoding is refused");
	const char *bad3[] = { "Bad Name: x" };
	is_int(http_h2_request_build(&rq, "GET", &u, bad3, 1, NULL, 0, false), -EINVAL,
	       "a name that is not a token is refused");
	is_int(http_h2_request_build(&grq, "POST", &u, NULL, 0, "\x0a\x01\x31", 3, true), 0,
	       "a gRPC request builds");
	is_str(field(&grq, "content-type"), "application/grpc", "content-type application/grpc");
	is_str(field(&grq, "te"), "trailers", "te: trailers");
	is_int((int)grq.body_len, 8, "the message has its 5-byte prefix");
	ok(memcmp(grq.store.data + grq.body, "\0\0\0\0\x03\x0a\x01\x31", 8) == 0,
	   "prefix: not compressed, length 3 big-endian, then the message");

	/* answered whole, in any order, each once */
	is_int(http_h2_request_build(&rq, "POST", &u, NULL, 0, "body!", 5, false), 0, "a POST builds");
	struct peer p;
	peer_init(&p, ANSWER);
	results_reset();
	struct http_h2_client *cl = http_h2_client_new(4, on_result, NULL);
	ok(cl != NULL, "a client");
	for (uint32_t t = 0; t < 4; t++)
		is_int(http_h2_client_submit(cl, &rq, t), 0, "stream %u submitted", t);
	is_int(http_h2_client_submit(cl, &rq, 9), -EBUSY, "a fifth stream of 4 is -EBUSY");
	is_int(pump(cl, &p), 0, "the exchange runs");
	is_int(p.requests, 4, "the peer saw 4 requests");
	is_int((int)p.body_seen, 20, "with their bodies");
	int once = 1;
	for (int t = 0; t < 4; t++)
		once &= ends[t] == 1 && got[t].status == 200 && !got[t].reset && got[t].body_bytes == 5 &&
		        got[t].grpc_status == -1;
	ok(once, "each stream ended once: 200, 5 body bytes, no grpc-status");
	is_int(http_h2_client_submit(cl, &rq, 5), 0, "the pool is free again");
	is_int(pump(cl, &p), 0, "and answered");
	is_int(ends[5], 1, "stream 5 ended once");
	http_h2_client_free(cl);
	nghttp2_session_del(p.s);

	/* reset by the server */
	peer_init(&p, RESET);
	results_reset();
	cl = http_h2_client_new(2, on_result, NULL);
	http_h2_client_submit(cl, &rq, 0);
	http_h2_client_submit(cl, &rq, 1);
	pump(cl, &p);
	ok(ends[0] == 1 && got[0].reset && got[0].error_code == NGHTTP2_CANCEL,
	   "RST_STREAM: reset, with its error code");
	ok(ends[1] == 1 && got[1].reset, "both streams reset once");
	http_h2_client_free(cl);
	nghttp2_session_del(p.s);

	/* gRPC trailers */
	peer_init(&p, GRPC_TRAILERS);
	results_reset();
	cl = http_h2_client_new(2, on_result, NULL);
	http_h2_client_submit(cl, &grq, 3);
	pump(cl, &p);
	ok(ends[3] == 1 && !got[3].reset && got[3].status == 200 && got[3].grpc_status == 5,
	   "grpc-status 5 read from the trailers");
	http_h2_client_free(cl);
	nghttp2_session_del(p.s);

	/* a result callback that submits at once gets the record just ended:
	 * each answer's grpc-message is whole in its callback, and none is
	 * lost (ASan's leak check, make check, sees one left behind) */
	peer_init(&p, GRPC_TRAILERS);
	chain_cl = cl = http_h2_client_new(1, on_result_chain, NULL);
	chain_rq = &grq;
	chain_left = 4;
	chain_good = 0;
	is_int(http_h2_client_submit(cl, &grq, 0), 0, "the first of a chain submitted");
	is_int(pump(cl, &p), 0, "the chain runs");
	is_int(chain_left, 0, "each callback could submit the next on a pool of one");
	is_int(chain_good, 5, "five answers, each with grpc-status 5 and its grpc-message decoded");
	is_int(p.requests, 5, "the peer saw five requests");
	http_h2_client_free(cl);
	nghttp2_session_del(p.s);

	/* GOAWAY: the first finishes, the rest are refused, no new stream */
	peer_init(&p, GOAWAY_AFTER_FIRST);
	results_reset();
	cl = http_h2_client_new(4, on_result, NULL);
	for (uint32_t t = 0; t < 3; t++)
		http_h2_client_submit(cl, &rq, t);
	pump(cl, &p);
	ok(http_h2_client_goaway(cl), "the GOAWAY is seen");
	ok(ends[0] == 1 && !got[0].reset && got[0].status == 200, "the stream below it finished");
	ok(ends[1] == 1 && got[1].reset && ends[2] == 1 && got[2].reset,
	   "the streams above it ended once each, refused");
	is_int(http_h2_client_submit(cl, &rq, 7), -ESHUTDOWN, "no stream opens after a GOAWAY");
	http_h2_client_free(cl);
	nghttp2_session_del(p.s);

	/* not HTTP/2 */
	cl = http_h2_client_new(1, on_result, NULL);
	const char junk[] = "HTTP/1.1 200 OK\r\n\r\nnot frames at all, not at all";
	int fr = http_h2_client_feed(cl, (const uint8_t *)junk, sizeof junk - 1);
	ok(fr == 0 || fr == -EPROTO, "bytes that are not HTTP/2 are taken or refused, no crash");
	struct buf out = BUF_INIT;
	ok(http_h2_client_output(cl, &out) > 0, "the session says GOAWAY");
	/* frame type 7 after the preface and SETTINGS */
	ok(memmem(out.data, out.len, "\x07\x00\x00\x00\x00\x00", 6) != NULL, "a GOAWAY frame is in the output");
	ok(http_h2_client_done(cl), "and then the session is done: the caller closes");
	buf_free(&out);
	http_h2_client_free(cl);
	ok(http_h2_client_new(0, on_result, NULL) == NULL, "0 streams is refused");

	http_h2_request_free(&rq);
	http_h2_request_free(&grq);
	return tap_done();
}
