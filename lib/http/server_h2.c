/*
 * http/server_h2.c -- HTTP/2 (h2c, prior knowledge) on a connection of
 * lib/http/server: our own framing (RFC 9113), HPACK through libnghttp2's
 * header compression API.
 *
 * A connection becomes HTTP/2 when its first bytes are the client preface
 * (server_h1.c looks at them); from then on its service function is
 * h2_service: what the socket backend (libuv streams or io_uring, the same
 * bytes either way) put in c->rbuf is cut into frames here, and what we
 * send is written as frames straight into c->out, which the core writes as
 * it writes HTTP/1.1's answers.  Why our own framing: nghttp2's session
 * (its frame queues, stream map, priority scheduling, callbacks) was 3.5k
 * of the 9.1k instructions a request cost over h2c, and what a server needs
 * of it is small.  HPACK is the part worth a library: nghttp2_hd_inflate
 * decodes each header block as its frames come, nghttp2_hd_deflate encodes
 * ours into c->out.
 *
 * Frames.  h2_recv takes whole frames where they lie in rbuf; a frame cut
 * by the end of a read is copied to s->pend and completed from the next
 * (rbuf is given back after every pass: nothing points into it).  A frame
 * longer than our SETTINGS_MAX_FRAME_SIZE (the default, 16384) ends the
 * connection (FRAME_SIZE_ERROR).  A header block (HEADERS, then
 * CONTINUATION until END_HEADERS) is decoded fragment by fragment, with
 * nothing else allowed in between (RFC 9113 6.10), its bytes and frames
 * bounded (a CONTINUATION flood is ENHANCE_YOUR_CALM).  A block is always
 * decoded, even for a stream we drop, as the decoder's table depends on it.
 *
 * Errors.  A connection error writes GOAWAY with its code and the last
 * stream we took, and the connection ends once that is written (s->dead:
 * nothing read or sent after it).  A stream error writes RST_STREAM and
 * forgets the stream; frames that still come for it are ignored, as for
 * any stream that closed (RFC 9113 5.1: we do not remember closed streams,
 * so a HEADERS with END_STREAM on one is taken for late trailers and
 * dropped; one without is a connection error).
 *
 * Streams.  Client streams only (no push): odd ids, each higher than the
 * last, else PROTOCOL_ERROR.  A request's header block opens a struct
 * h2_stream, which copies what the request needs (the pseudo-headers, the
 * header list, the body) into buffers of its own.  When the request ends
 * (END_STREAM), its exchange goes to the handler, as an HTTP/1.1 one does,
 * and the handler answers through http_answer; the answer's HEADERS are
 * written at once, its body and trailers are copied into the stream and
 * sent by the send pass (h2_send_pass, at the end of every service) as
 * the peer's windows allow.  A stream is freed when both sides have ended
 * it (or either reset it) -- never from inside h2_submit, whose caller may
 * still hold it: the send pass and the end of a frame's handling free it.
 *
 * Flow control.  Receiving: the peer may send 65535 bytes per stream and
 * per connection (we announce no other INITIAL_WINDOW_SIZE); more is
 * FLOW_CONTROL_ERROR.  We take what comes at once, and give it back with a
 * WINDOW_UPDATE when half a window is used, per stream and connection.
 * Sending: a stream's DATA is bounded by its window, the connection's and
 * the peer's MAX_FRAME_SIZE; a stream that has used its window waits off
 * the send queue for a WINDOW_UPDATE (or a larger INITIAL_WINDOW_SIZE),
 * the queue waits for the connection's.  A window past 2^31-1 is
 * FLOW_CONTROL_ERROR (stream or connection, as it was sent).
 *
 * Lifetimes.  A stream lives from its first HEADERS to its close, and no
 * longer than its connection.  An exchange lives from its dispatch to its
 * answer, as on HTTP/1.1; if its stream goes first (a RST_STREAM from the
 * peer, its deadline), the exchange is marked gone and its answer dropped.
 * When the connection closes, every stream is freed, and the exchanges
 * still with handlers see c->closed (the core keeps c until they answer).
 *
 * Limits.  SETTINGS at once: MAX_CONCURRENT_STREAMS (cfg.h2_max_streams;
 * a stream past it is refused, REFUSED_STREAM), MAX_HEADER_LIST_SIZE
 * (limits.max_header_bytes).  A header block over max_header_bytes, or with
 * more than HTTP_MAX_HEADERS fields, gets 431; a body over max_body 413
 * (both as answers, then the stream is reset if the client goes on
 * sending).  Floods: a SETTINGS with more than 32 entries, more than 1000
 * SETTINGS and PING acknowledgements waiting while the peer does not read,
 * and RST_STREAM beyond a burst of 1000 and 33 a second (the 2023 "rapid
 * reset" attack) end the connection with ENHANCE_YOUR_CALM.  A request must
 * end within body_timeout_ms of its HEADERS, else its stream is reset
 * (CANCEL); a connection with no stream open is closed after
 * idle_timeout_ms with GOAWAY.  grpc-timeout gives a stream an answer
 * deadline (see http/grpc.h).
 *
 * Drain.  GOAWAY with the last stream we took, so the client retries the
 * later ones elsewhere (their header blocks are decoded and dropped);
 * streams in flight finish; the connection closes when no stream is open
 * and nothing is left to write.  A GOAWAY from the peer ends the
 * connection the same way.
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

/* RFC 9113 section 6: frame types and flags */
enum {
	H2_DATA = 0x0, H2_HEADERS = 0x1, H2_PRIORITY = 0x2, H2_RST_STREAM = 0x3,
	H2_SETTINGS = 0x4, H2_PUSH_PROMISE = 0x5, H2_PING = 0x6, H2_GOAWAY = 0x7,
	H2_WINDOW_UPDATE = 0x8, H2_CONTINUATION = 0x9,
};
enum {
	H2_FL_END_STREAM = 0x1, H2_FL_ACK = 0x1, H2_FL_END_HEADERS = 0x4, H2_FL_PADDED = 0x8,
	H2_FL_PRIORITY = 0x20,
};
/* section 7: error codes */
enum {
	H2E_NO_ERROR = 0x0, H2E_PROTOCOL = 0x1, H2E_INTERNAL = 0x2, H2E_FLOW_CONTROL = 0x3,
	H2E_STREAM_CLOSED = 0x5, H2E_FRAME_SIZE = 0x6, H2E_REFUSED_STREAM = 0x7, H2E_CANCEL = 0x8,
	H2E_COMPRESSION = 0x9, H2E_ENHANCE_YOUR_CALM = 0xb,
};
/* section 6.5.2: settings */
enum {
	H2S_HEADER_TABLE_SIZE = 0x1, H2S_ENABLE_PUSH = 0x2, H2S_MAX_CONCURRENT_STREAMS = 0x3,
	H2S_INITIAL_WINDOW_SIZE = 0x4, H2S_MAX_FRAME_SIZE = 0x5, H2S_MAX_HEADER_LIST_SIZE = 0x6,
	H2S_NO_RFC7540_PRIORITIES = 0x9,
};

#define H2_FRAME_HEAD 9
#define H2_MAX_FRAME 16384          /* our SETTINGS_MAX_FRAME_SIZE: the default */
#define H2_MAX_FRAME_LIMIT 16777215 /* the largest the peer may announce */
#define H2_WINDOW 65535             /* our receive windows (the default, not announced) */
#define H2_WINDOW_MAX 0x7fffffff
#define H2_TABLE_SIZE 4096          /* HPACK dynamic tables, both ways (the default) */
#define H2_SETTINGS_MAX 32          /* entries in one SETTINGS frame */
#define H2_ACKS_MAX 1000            /* acknowledgements written while the peer does not read */
#define H2_RESET_BURST 1000         /* RST_STREAM the peer may send at once ... */
#define H2_RESET_PER_S 33           /* ... and then a second */
#define H2_BUCKETS 64               /* the stream table's chains */

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define H2_PREFACE_LEN (sizeof h2_preface - 1)

struct h2_session;

/* What a request's header block leaves in its stream besides the bytes
 * of head and the hf array: offsets into head, counts and what the
 * fields showed.  One struct, so that a block replayed from the cache
 * (struct h2_reqsnap) copies it in one call.  h2_stream_new sets each
 * field, and h2_reqpos_copy copies each: a field added here must be set
 * and copied there. */
/* A request field (not a pseudo-header): where its name and value lie
 * in head, and their lengths; one array of these, so a replayed block
 * copies them in one memcpy */
struct h2_field {
	uint32_t noff, voff, nlen, vlen;
};

struct h2_reqpos {
	uint32_t off_method, len_method, off_path, len_path, off_auth, len_auth;
	uint32_t len_pathq;   /* :path's bytes before a '?', if any */
	uint32_t nhdr;        /* entries of hf */
	size_t hbytes;        /* header block size as the limit counts it */
	int64_t clen;         /* content-length, -1: none */
	uint16_t hflags;      /* H2F_*: what the header block showed */
	bool too_big;         /* the block passed the header size limit */
};

/* *d = *c, field by field: gcc copies the struct whole with a rep movs of
 * 14 steps (18 instructions a replayed request, twice its stores) */
static inline void h2_reqpos_copy(struct h2_reqpos *d, const struct h2_reqpos *c)
{
	d->off_method = c->off_method;
	d->len_method = c->len_method;
	d->off_path = c->off_path;
	d->len_path = c->len_path;
	d->off_auth = c->off_auth;
	d->len_auth = c->len_auth;
	d->len_pathq = c->len_pathq;
	d->nhdr = c->nhdr;
	d->hbytes = c->hbytes;
	d->clen = c->clen;
	d->hflags = c->hflags;
	d->too_big = c->too_big;
}

struct h2_stream {
	struct h2_session *s;
	struct h2_stream *prev, *next;   /* in s->streams */
	struct h2_stream *hnext;         /* in its chain of s->table */
	struct h2_stream *qprev, *qnext; /* in s->sendq (or s->doneq), while queued */
	int32_t id;
	struct xchg *x;                  /* from HEADERS until dispatched; then the handler's */
	/* the request: every string in req (pseudo-headers, fields) in head
	 * (below, with the stream's other kept buffers) */
	struct h2_reqpos rq;
	/* the answer: strings in ans, the body in out (sent from out_pos) */
	size_t out_pos;
	size_t ntrailers;                /* entries of trailers, below */
	uint64_t deadline;               /* loop ms, 0: none */
	/* flow control: what we may still send (the peer's window, may go
	 * below 0 when it shrinks INITIAL_WINDOW_SIZE), what the peer may
	 * still send, and what it sent since our last WINDOW_UPDATE */
	int64_t send_win;
	uint32_t recv_win, recv_unacked;
	uint64_t crecv;                  /* DATA bytes received */
	bool queued;                     /* in s->sendq, or in s->doneq if done_q */
	bool done_q;                     /* answered whole by h2_submit: in s->doneq */
	bool local_ended;                /* END_STREAM written: nothing more to send */
	bool client_ended;               /* END_STREAM received */
	bool grpc;                       /* content-type application/grpc */
	bool grpc_deadline;              /* deadline is grpc-timeout's, not the request's */
	bool dispatched, answered, body_too_big;
	bool bad;                        /* reset: ignore the rest, free at the frame's end */
	bool in_handler;                 /* h2_dispatch is in the handler, from a frame's end */
	bool streaming;                  /* the body streams (http_stream_*, Health/Watch) */
	bool watch;                      /* ... as a Health/Watch the drain ends */
	bool ended;                      /* ... and its last message is in out */
	/* a bidirectional gRPC call's later messages (grpc_on_message): the
	 * bytes past the first message, until each is whole; zeroed is empty */
	grpc_message_fn on_msg;
	void *on_msg_arg;
	struct buf more;
	/* Everything above is set field by field by h2_stream_new (a field
	 * added above must be set there too): a memset of the 240 bytes was
	 * a rep stos of 60 steps (64 instructions of a request's 1.59k).
	 * Not set when a spare stream is taken again: the buffers keep their
	 * allocations (emptied there), and the tables are read only up to
	 * nhdr and ntrailers (2 KiB of memset per request, in the profile). */
	struct buf head, body, ans, out;
	struct h2_field hf[HTTP_MAX_HEADERS];
	nghttp2_nv trailers[H2_MAX_TRAILERS];
};

/*
 * nghttp2's memory, per session: free lists by size class (32 bytes to
 * 4 KiB, powers of two), for the HPACK tables' entries, which come and go
 * with the literals a peer sends.  A block carries its class (and, when
 * larger than the classes, its size) in a 16-byte header, so free and
 * realloc need no lookup.  The lists keep at most H2_POOL_MAX blocks of a
 * class -- never more than the session once had in use at the same time
 * -- and everything goes back to malloc when the session ends.
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

/* What the header block coming in is for. */
enum h2_block_kind {
	H2B_REQUEST,    /* a new stream's request */
	H2B_TRAILERS,   /* an open stream's trailers */
	H2B_DROP,       /* decoded for the table's sake, then forgotten */
};

/*
 * The last header block of a connection, decoded, to replay when the next
 * one is the same bytes (h2_block).  Clients that send one request again
 * and again (h2load, a grpc-go client calling one method, a browser
 * polling) send byte-identical blocks: nghttp2's encoder puts :path in a
 * literal that is never indexed and everything else as indexed fields, so
 * each block was decoded again (Huffman and all) for the same fields --
 * 1.7k of the 6k instructions a request cost over h2c.  Bounded: a block of
 * up to H2_HC_BLOCK bytes with up to H2_HC_FIELDS fields whose names and
 * values fit H2_HC_DATA; any other is simply not cached.  Allocated with
 * the first block that fits, freed with the session.
 */
#define H2_HC_BLOCK 1024
#define H2_HC_FIELDS 32
#define H2_HC_DATA 2048

/* h2_stream.hflags: what the header block showed (h2_field) */
enum {
	H2F_METHOD = 1 << 0, H2F_SCHEME = 1 << 1, H2F_PATH = 1 << 2, H2F_AUTHORITY = 1 << 3,
	H2F_HOST = 1 << 4,
	H2F_REGULAR = 1 << 5,      /* a regular field came: no pseudo-header after it */
	H2F_CONNECT = 1 << 6, H2F_OPTIONS = 1 << 7,
	H2F_SCHEME_HTTP = 1 << 8,  /* http or https: :path must be origin-form (or * for OPTIONS) */
	H2F_PATH_SLASH = 1 << 9, H2F_PATH_STAR = 1 << 10,
	H2F_CONTENT_TYPE = 1 << 11, /* a content-type field came (else no gRPC call, unlooked) */
};

/*
 * What a request's header block left in the new stream it opened: a
 * block replayed from the cache into another new stream leaves exactly
 * this (h2_field and h2_on_field read nothing but the fields, the
 * stream's state, which a new stream has all zero, and the server's
 * limits), so it is copied in whole instead of going field by field --
 * the checks and copies were a quarter of what an h2c request cost once
 * the decoder was skipped.  Only a block that left its stream good (not
 * reset) is kept.
 */
struct h2_reqsnap {
	bool ok;
	struct h2_reqpos rq;
	uint32_t head_len;
	struct h2_field hf[H2_HC_FIELDS];
	char head[H2_HC_DATA + 2 * H2_HC_FIELDS];   /* each name and value NUL-ended */
};

struct h2_hcache {
	bool valid;                /* block and fields hold a block to replay */
	/* h2_hc_out only: the list was a plain answer's (h2_plain_key), which
	 * it stands for whole: ":status", "content-type", "content-length" */
	bool plain;
	uint16_t plain_status;
	uint64_t plain_len;        /* content-length's value */
	uint16_t plain_ct;         /* content-type's value: field 1's, in data */
	uint16_t blen;             /* bytes of block */
	uint16_t nf;               /* fields */
	uint16_t dlen;             /* bytes of data used */
	struct {
		uint16_t noff, nlen, voff, vlen;   /* in data */
		uint8_t flags;                     /* nghttp2_nv's (h2_hc_out only) */
	} f[H2_HC_FIELDS];
	uint8_t block[H2_HC_BLOCK];
	uint8_t data[H2_HC_DATA];
};

struct h2_session {
	struct h2_pool pool;
	nghttp2_mem mem;
	nghttp2_hd_inflater *inf;
	nghttp2_hd_deflater *def;
	struct conn *c;
	struct h2_stream *streams;
	uint32_t nstreams;
	struct h2_stream *table[H2_BUCKETS]; /* streams by id */
	struct h2_stream *sendq, *sendq_tail; /* streams with something to send */
	struct h2_stream *doneq;   /* streams h2_submit answered whole, for the pass to free
	                            * (not those answered inside their dispatch, after
	                            * END_STREAM: the frame's end frees those) */
	/* streams that ended, kept with their buffers for the next ones: a
	 * request then costs no malloc of ours (perf showed malloc and free
	 * at a tenth of the server's time over h2c) */
	struct h2_stream *spare;
	uint32_t nspare;
	/* input */
	uint32_t preface;          /* bytes of the client preface seen */
	struct buf pend;           /* a frame cut by the end of a read, so far */
	/* the header block coming in (hb_id 0: none); hb_st is its stream
	 * (NULL when dropped): a block's frames are never interleaved with
	 * another's, so a field finds its stream here */
	int32_t hb_id;
	struct h2_stream *hb_st;
	uint8_t hb_kind;           /* enum h2_block_kind */
	bool hb_end_stream, hb_refuse;
	uint32_t hb_bytes, hb_frames;
	struct h2_hcache *hc;      /* the last header block in, to replay (NULL: none yet) */
	struct h2_reqsnap *rs;     /* what it left in its new stream (allocated with hc) */
	struct h2_hcache *hc_out;  /* the last header list out and its encoding (h2_write_headers) */
	int32_t last_id;           /* the highest stream id the client has used */
	int32_t last_taken;        /* ... and the highest we took (GOAWAY's) */
	/* flow control, connection level (see h2_stream) */
	int64_t send_win;
	uint32_t recv_win, recv_unacked;
	uint32_t peer_window;      /* the peer's SETTINGS_INITIAL_WINDOW_SIZE */
	uint32_t peer_max_frame;   /* the peer's SETTINGS_MAX_FRAME_SIZE */
	/* floods */
	uint32_t acks;             /* acknowledgements written since out was last empty */
	uint32_t reset_tokens;     /* RST_STREAM the peer may still send now */
	uint64_t reset_ms;         /* loop ms of the last refill */
	bool settings_seen;        /* the peer's first frame was its SETTINGS */
	bool goaway;               /* we sent GOAWAY: no new streams */
	bool peer_goaway;          /* the peer sent GOAWAY */
	bool dead;                 /* a connection error: GOAWAY written, nothing after it */
	bool dying;
};

#define H2_SPARE_MAX 16   /* spare streams a session keeps */

static void h2_submit(struct h2_stream *st, const struct http_answer *in, bool head_only);
static void h2_count_grpc(struct h2_stream *st);
static void h2_watch_end(struct h2_stream *st, int serving_status);

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

/* ------------------------------------------------------------ frames out */

static inline uint32_t h2_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* v in network order, one 4-byte store (a byte at a time was ~10
 * instructions more per frame head) */
static inline void h2_put32(uint8_t *p, uint32_t v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	v = __builtin_bswap32(v);
#endif
	memcpy(p, &v, 4);
}

/* A frame's head at the end of c->out, with room for its payload: where
 * the payload goes (len bytes, counted in out already). */
static uint8_t *h2_frame(struct h2_session *s, uint32_t len, uint8_t type, uint8_t flags,
                         int32_t id)
{
	struct buf *o = &s->c->out;
	buf_reserve(o, H2_FRAME_HEAD + len);
	uint8_t *p = (uint8_t *)o->data + o->len;
	h2_put32(p, len << 8 | type);   /* len < 2^24: 24 bits, then the type */
	p[4] = flags;
	h2_put32(p + 5, (uint32_t)id);
	o->len += H2_FRAME_HEAD + len;
	return p + H2_FRAME_HEAD;
}

static void h2_write_rst(struct h2_session *s, int32_t id, uint32_t code)
{
	h2_put32(h2_frame(s, 4, H2_RST_STREAM, 0, id), code);
}

static void h2_write_window(struct h2_session *s, int32_t id, uint32_t inc)
{
	h2_put32(h2_frame(s, 4, H2_WINDOW_UPDATE, 0, id), inc);
}

static void h2_write_goaway(struct h2_session *s, uint32_t code)
{
	uint8_t *p = h2_frame(s, 8, H2_GOAWAY, 0, 0);
	h2_put32(p, (uint32_t)s->last_taken);
	h2_put32(p + 4, code);
}

/* A connection error: GOAWAY with its code, and nothing read or sent after
 * it; the connection closes once it is written (and handlers let go). */
static void h2_fail(struct h2_session *s, uint32_t code, const char *why)
{
	if (s->dead)
		return;
	log_debug("http/2: %s: connection error %u", why, code);
	h2_write_goaway(s, code);
	s->dead = s->goaway = true;
	s->c->stop_parse = true;
}

static void h2_write_data(struct h2_session *s, int32_t id, const void *d, size_t n, bool end)
{
	uint8_t *p = h2_frame(s, (uint32_t)n, H2_DATA, end ? H2_FL_END_STREAM : 0, id);
	if (n)
		memcpy(p, d, n);
}

/* A block over the peer's frame size: HEADERS, then CONTINUATIONs.  Rare
 * (the peer's MAX_FRAME_SIZE is 16384 at least), so the block is copied
 * out of the way first. */
static void h2_write_split(struct h2_session *s, int32_t id, size_t at, size_t len, bool end)
{
	struct buf *o = &s->c->out;
	uint8_t *blk = malloc(len);
	INVARIANT(blk != NULL);
	memcpy(blk, o->data + at + H2_FRAME_HEAD, len);
	o->len = at;
	for (size_t off = 0; off < len;) {
		size_t n = len - off < s->peer_max_frame ? len - off : s->peer_max_frame;
		uint8_t fl = off + n == len ? H2_FL_END_HEADERS : 0;
		if (off == 0 && end)
			fl |= H2_FL_END_STREAM;
		memcpy(h2_frame(s, (uint32_t)n, off ? H2_CONTINUATION : H2_HEADERS, fl, id), blk + off, n);
		off += n;
	}
	free(blk);
}

/*
 * RFC 7541 5.1: an integer with an n-bit prefix at *p (below end), its
 * value to *v; false if it runs past end or takes more than four bytes
 * after the prefix (2^28: no field of a block we cache is that long; anything
 * odd is simply not cached).
 */
static bool h2_hpack_int(const uint8_t **p, const uint8_t *end, unsigned n, uint32_t *v)
{
	uint32_t max = (1u << n) - 1;
	*v = **p & max;
	(*p)++;
	if (*v < max)
		return true;
	for (unsigned shift = 0; shift <= 21; shift += 7) {
		if (*p == end)
			return false;
		uint8_t b = *(*p)++;
		*v += (uint32_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return true;
	}
	return false;
}

/* RFC 7541 5.2: a string literal (H bit, 7-bit prefix length, bytes)
 * stepped over; false if it runs past end. */
static bool h2_hpack_skip_string(const uint8_t **p, const uint8_t *end)
{
	uint32_t n;
	if (*p == end || !h2_hpack_int(p, end, 7, &n) || n > (size_t)(end - *p))
		return false;
	*p += n;
	return true;
}

/*
 * A header block that changes no HPACK state: only indexed fields
 * (1xxxxxxx, 6.1) and literals without indexing (0000xxxx, 6.2.2) or never
 * indexed (0001xxxx, 6.2.3); no literal with incremental indexing
 * (01xxxxxx, 6.2.1, which adds an entry) and no dynamic table size update
 * (001xxxxx, 6.3, which may evict).  Called only on a block nghttp2 has
 * just decoded without error, so the indexes are valid; still walked with
 * every bound checked, and anything odd answers false (not cached).
 */
static bool h2_hpack_stateless(const uint8_t *p, size_t len)
{
	const uint8_t *end = p + len;
	while (p < end) {
		uint8_t b = *p;
		uint32_t idx;
		if (b & 0x80) {
			if (!h2_hpack_int(&p, end, 7, &idx) || idx == 0)
				return false;
		} else if ((b & 0xe0) == 0) {
			/* 0000xxxx or 0001xxxx: a 4-bit prefix index, 0 for a literal name */
			if (!h2_hpack_int(&p, end, 4, &idx))
				return false;
			if (idx == 0 && !h2_hpack_skip_string(&p, end))
				return false;
			if (!h2_hpack_skip_string(&p, end))
				return false;
		} else {
			return false;   /* 01xxxxxx or 001xxxxx: the table changes */
		}
	}
	return true;
}

/* Record one field nghttp2 decoded into the cache being filled; false
 * when it does not fit (the block is then not cached). */
static bool h2_hc_add(struct h2_hcache *hc, const nghttp2_nv *nv)
{
	if (hc->nf == H2_HC_FIELDS || nv->namelen + nv->valuelen > (size_t)(H2_HC_DATA - hc->dlen))
		return false;
	hc->f[hc->nf].noff = hc->dlen;
	hc->f[hc->nf].nlen = (uint16_t)nv->namelen;
	memcpy(hc->data + hc->dlen, nv->name, nv->namelen);
	hc->dlen += (uint16_t)nv->namelen;
	hc->f[hc->nf].voff = hc->dlen;
	hc->f[hc->nf].vlen = (uint16_t)nv->valuelen;
	hc->f[hc->nf].flags = nv->flags;
	memcpy(hc->data + hc->dlen, nv->value, nv->valuelen);
	hc->dlen += (uint16_t)nv->valuelen;
	hc->nf++;
	return true;
}

/* The header list nv[0..n) is the one in hc, flags included. */
static bool h2_hc_same(const struct h2_hcache *hc, const nghttp2_nv *nv, size_t n)
{
	if (hc->nf != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (nv[i].namelen != hc->f[i].nlen || nv[i].valuelen != hc->f[i].vlen ||
		    nv[i].flags != hc->f[i].flags ||
		    memcmp(nv[i].name, hc->data + hc->f[i].noff, nv[i].namelen) != 0 ||
		    memcmp(nv[i].value, hc->data + hc->f[i].voff, nv[i].valuelen) != 0)
			return false;
	}
	return true;
}

/*
 * A plain answer: status (not 1xx, 204 or 304), a content type, a body of
 * known length, nothing else (no headers of the handler's, no trailers, not
 * gRPC, not streamed).  Its header list is ":status", "content-type",
 * "content-length" from these three alone, so when the cached list out was
 * a plain answer's with the same three, the list is the cached one and so
 * is its block: h2_submit writes it without building the list (the common
 * case, ~400 instructions a request less than building and comparing it).
 */
struct h2_plain_key {
	uint16_t status;
	const char *ct;
	size_t ctlen;
	uint64_t len;
};

/* k->ctlen is not read: the cached type (a C string's bytes, no NUL in
 * it) and a NUL after as many of k->ct's, without strlen first */
static bool h2_plain_same(const struct h2_hcache *hc, const struct h2_plain_key *k)
{
	if (!hc || !hc->valid || !hc->plain || hc->plain_status != k->status ||
	    hc->plain_len != k->len)
		return false;
	size_t l = hc->f[1].vlen;
	return strncmp((const char *)hc->data + hc->plain_ct, k->ct, l) == 0 && k->ct[l] == '\0';
}

/* The cached block as a HEADERS frame of stream id. */
static void h2_write_cached(struct h2_session *s, int32_t id, bool end)
{
	const struct h2_hcache *hc = s->hc_out;
	uint8_t fl = H2_FL_END_HEADERS | (end ? H2_FL_END_STREAM : 0);
	memcpy(h2_frame(s, hc->blen, H2_HEADERS, fl, id), hc->block, hc->blen);
}

/* The cached block as HEADERS, then the whole body as one DATA frame
 * with END_STREAM, for stream id: room for both taken at once (one
 * buf_reserve, not two; they are written in one send either way). */
static void h2_write_cached_data(struct h2_session *s, int32_t id, const void *d, size_t n)
{
	const struct h2_hcache *hc = s->hc_out;
	struct buf *o = &s->c->out;
	buf_reserve(o, 2 * H2_FRAME_HEAD + hc->blen + n);
	uint8_t *p = (uint8_t *)o->data + o->len;
	h2_put32(p, (uint32_t)hc->blen << 8 | H2_HEADERS);
	p[4] = H2_FL_END_HEADERS;
	h2_put32(p + 5, (uint32_t)id);
	memcpy(p + H2_FRAME_HEAD, hc->block, hc->blen);
	p += H2_FRAME_HEAD + hc->blen;
	h2_put32(p, (uint32_t)n << 8 | H2_DATA);
	p[4] = H2_FL_END_STREAM;
	h2_put32(p + 5, (uint32_t)id);
	memcpy(p + H2_FRAME_HEAD, d, n);
	o->len += 2 * H2_FRAME_HEAD + hc->blen + n;
}

/*
 * A header block, HPACK-encoded straight into c->out: the encoder's table
 * follows the order blocks are written in, which is the order they leave.
 *
 * The same list as the last one, whose encoding changed nothing in the
 * encoder, is written as the same bytes, without the encoder (~1k
 * instructions a request, when every answer is "200, text/plain, 16").
 * Exact for the reason the decoder's cache is (h2_hc_replay): nghttp2's
 * encoder chooses each representation from the field, its own table and
 * its settings alone; a block of indexed fields and literals without
 * indexing (h2_hpack_stateless) left the table as it was, so the same list
 * gives the same bytes and again leaves it so.  A change of the peer's
 * SETTINGS_HEADER_TABLE_SIZE empties the cache (the next block must start
 * with a size update), as does every block the encoder writes.
 * key (NULL: none) is the plain answer nv[0..n) is the list of, kept with
 * the cache for h2_plain_same.
 */
static void h2_write_headers(struct h2_session *s, int32_t id, const nghttp2_nv *nv, size_t n,
                             bool end, const struct h2_plain_key *key)
{
	struct buf *o = &s->c->out;
	uint8_t fl = H2_FL_END_HEADERS | (end ? H2_FL_END_STREAM : 0);
	struct h2_hcache *hc = s->hc_out;
	if (hc && hc->valid && h2_hc_same(hc, nv, n)) {
		h2_write_cached(s, id, end);
		return;
	}
	if (hc)
		hc->valid = false;
	size_t bound = nghttp2_hd_deflate_bound(s->def, nv, n);
	buf_reserve(o, H2_FRAME_HEAD + bound);
	size_t at = o->len;
	uint8_t *blk = (uint8_t *)o->data + at + H2_FRAME_HEAD;
	ssize_t len = nghttp2_hd_deflate_hd(s->def, blk, bound, nv, n);
	if (len < 0) {
		/* the encoder is unusable from here on, and so is the connection */
		h2_fail(s, H2E_INTERNAL, "cannot encode a header block");
		return;
	}
	if ((size_t)len <= H2_HC_BLOCK && n <= H2_HC_FIELDS && h2_hpack_stateless(blk, (size_t)len)) {
		if (!hc) {
			hc = s->hc_out = malloc(sizeof *hc);
			INVARIANT(hc != NULL);
		}
		hc->nf = hc->dlen = 0;
		bool fits = true;
		for (size_t i = 0; i < n && fits; i++)
			fits = h2_hc_add(hc, &nv[i]);
		hc->blen = (uint16_t)len;
		memcpy(hc->block, blk, (size_t)len);
		hc->valid = fits;
		hc->plain = fits && key != NULL;
		if (hc->plain) {
			INVARIANT(n == 3 && hc->f[1].vlen == key->ctlen);
			hc->plain_status = key->status;
			hc->plain_len = key->len;
			hc->plain_ct = hc->f[1].voff;
		}
	}
	if ((size_t)len > s->peer_max_frame) {
		o->len = at;
		h2_write_split(s, id, at, (size_t)len, end);
		return;
	}
	o->len = at;
	h2_frame(s, (uint32_t)len, H2_HEADERS, fl, id);
}

/* Our SETTINGS, first thing (grpc-go waits for them before its first
 * request): no push, no RFC 7540 priorities (deprecated by RFC 9113; we
 * keep no priority tree), our limits. */
static void h2_write_settings(struct h2_session *s)
{
	const struct http_server_config *cfg = &s->c->t->srv->cfg;
	const uint32_t iv[][2] = {
		{H2S_MAX_CONCURRENT_STREAMS, cfg->h2_max_streams},
		{H2S_MAX_HEADER_LIST_SIZE, (uint32_t)cfg->limits.max_header_bytes},
		{H2S_ENABLE_PUSH, 0},
		{H2S_NO_RFC7540_PRIORITIES, 1},
	};
	size_t n = sizeof iv / sizeof iv[0];
	uint8_t *p = h2_frame(s, (uint32_t)(6 * n), H2_SETTINGS, 0, 0);
	for (size_t i = 0; i < n; i++, p += 6) {
		p[0] = (uint8_t)(iv[i][0] >> 8);
		p[1] = (uint8_t)iv[i][0];
		h2_put32(p + 2, iv[i][1]);
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

static inline struct h2_stream **h2_chain(struct h2_session *s, int32_t id)
{
	return &s->table[((uint32_t)id >> 1) & (H2_BUCKETS - 1)];
}

static struct h2_stream *h2_find(struct h2_session *s, int32_t id)
{
	struct h2_stream *st = *h2_chain(s, id);
	while (st && st->id != id)
		st = st->hnext;
	return st;
}

/* buf_reset, inline: four per stream taken from the spares */
static inline void h2_buf_empty(struct buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

static struct h2_stream *h2_stream_new(struct h2_session *s, int32_t id)
{
	struct h2_stream *st = s->spare;
	if (st) {
		s->spare = st->next;
		s->nspare--;
		h2_buf_empty(&st->head);
		h2_buf_empty(&st->body);
		h2_buf_empty(&st->ans);
		h2_buf_empty(&st->out);
	} else {
		st = calloc(1, sizeof *st);
		INVARIANT(st != NULL);
		buf_init(&st->head);
		buf_init(&st->body);
		buf_init(&st->ans);
		buf_init(&st->out);
	}
	/* every field before head, in the struct's order */
	st->s = s;
	st->prev = NULL;
	st->qprev = st->qnext = NULL;
	st->id = id;
	st->x = NULL;
	/* field by field here too: a memset or a compound literal of these
	 * 56 bytes, or of more's 24, is a rep stos again */
	st->rq.off_method = st->rq.len_method = st->rq.off_path = st->rq.len_path = 0;
	st->rq.off_auth = st->rq.len_auth = st->rq.len_pathq = st->rq.nhdr = 0;
	st->rq.hbytes = 0;
	st->rq.clen = -1;
	st->rq.hflags = 0;
	st->rq.too_big = false;
	st->out_pos = 0;
	st->ntrailers = 0;
	st->deadline = 0;
	st->send_win = s->peer_window;
	st->recv_win = H2_WINDOW;
	st->recv_unacked = 0;
	st->crecv = 0;
	st->queued = st->done_q = st->local_ended = st->client_ended = false;
	st->grpc = st->grpc_deadline = false;
	st->dispatched = st->answered = st->body_too_big = st->bad = st->in_handler = false;
	st->streaming = st->watch = st->ended = false;
	st->on_msg = NULL;
	st->on_msg_arg = NULL;
	st->more.data = NULL;
	st->more.len = st->more.cap = 0;
	st->next = s->streams;
	if (s->streams)
		s->streams->prev = st;
	s->streams = st;
	s->nstreams++;
	struct h2_stream **chain = h2_chain(s, id);
	st->hnext = *chain;
	*chain = st;
	return st;
}

/* st has something to send: to the end of the send queue. */
static void h2_enqueue(struct h2_stream *st)
{
	struct h2_session *s = st->s;
	if (st->queued)
		return;
	st->queued = true;
	st->qnext = NULL;
	st->qprev = s->sendq_tail;
	if (s->sendq_tail)
		s->sendq_tail->qnext = st;
	else
		s->sendq = st;
	s->sendq_tail = st;
}

static void h2_unqueue(struct h2_stream *st)
{
	struct h2_session *s = st->s;
	if (!st->queued)
		return;
	st->queued = false;
	if (st->done_q) {
		st->done_q = false;
		if (st->qprev)
			st->qprev->qnext = st->qnext;
		else
			s->doneq = st->qnext;
		if (st->qnext)
			st->qnext->qprev = st->qprev;
		st->qprev = st->qnext = NULL;
		return;
	}
	if (st->qprev)
		st->qprev->qnext = st->qnext;
	else
		s->sendq = st->qnext;
	if (st->qnext)
		st->qnext->qprev = st->qprev;
	else
		s->sendq_tail = st->qprev;
	st->qprev = st->qnext = NULL;
}

/* A stream whose answer is all written, for the next send pass to free
 * (not at once: its caller still holds it). */
static void h2_done(struct h2_stream *st)
{
	struct h2_session *s = st->s;
	INVARIANT(st->local_ended && !st->queued);
	st->queued = st->done_q = true;
	st->qprev = NULL;
	st->qnext = s->doneq;
	if (s->doneq)
		s->doneq->qprev = st;
	s->doneq = st;
}

/* st goes (or stops carrying its exchange) while a handler still has
 * the exchange: the exchange is gone, and takes st's head and body
 * buffers with it, as its request points into them (a handler answers
 * late, e.g. after --delay, and may read the request first; xchg_put
 * frees them, on whatever path the exchange ends).  A stream
 * that goes on (goes_on: it still sends an answer of its own, and counts
 * it by its path) keeps copies: it reads them by offset, so the copies'
 * new addresses do not matter. */
static void h2_detach(struct h2_stream *st, bool goes_on)
{
	struct xchg *x = st->x;
	x->gone = true;
	x->stream = NULL;
	x->held_head = st->head;
	x->held_body = st->body;
	buf_init(&st->head);
	buf_init(&st->body);
	if (goes_on) {
		buf_append(&st->head, x->held_head.data, x->held_head.len);
		buf_append(&st->body, x->held_body.data, x->held_body.len);
	}
}

/* Forget st: its exchange, if a handler has it, is gone; if not yet
 * dispatched, back to the pool. */
static void h2_stream_free(struct h2_stream *st)
{
	struct h2_session *s = st->s;
	struct conn *c = s->c;
	if (st->x) {
		if (st->dispatched)
			h2_detach(st, false);
		else
			xchg_put(c->t, st->x);
		st->x = NULL;
	}
	if (st->more.data)     /* zeroed by the next h2_stream_new, so never kept */
		buf_free(&st->more);
	h2_unqueue(st);
	if (st->prev)
		st->prev->next = st->next;
	else
		s->streams = st->next;
	if (st->next)
		st->next->prev = st->prev;
	s->nstreams--;
	struct h2_stream **pp = h2_chain(s, st->id);
	while (*pp != st)
		pp = &(*pp)->hnext;
	*pp = st->hnext;
	if (s->hb_st == st)
		s->hb_st = NULL;
	if (!s->dying && s->nspare < H2_SPARE_MAX) {
		/* big buffers (a 2 MiB body) are not kept for small requests */
		if (st->head.cap > BUF_KEEP_MAX)
			buf_free(&st->head);
		if (st->body.cap > BUF_KEEP_MAX)
			buf_free(&st->body);
		if (st->ans.cap > BUF_KEEP_MAX)
			buf_free(&st->ans);
		if (st->out.cap > BUF_KEEP_MAX)
			buf_free(&st->out);
		st->next = s->spare;
		s->spare = st;
		s->nspare++;
		return;
	}
	h2_stream_free_mem(st);
}

/* A stream error: RST_STREAM with code, and st is to be forgotten (by
 * the caller, or at the end of the frame being handled). */
static void h2_reset(struct h2_stream *st, uint32_t code)
{
	if (st->bad)
		return;
	st->bad = true;
	if (!st->s->dead)
		h2_write_rst(st->s, st->id, code);
	h2_unqueue(st);
}

/* Both sides have ended st (or it was reset): it is done. */
static void h2_maybe_close(struct h2_stream *st)
{
	if (st->bad || (st->client_ended && st->local_ended))
		h2_stream_free(st);
}

/* ------------------------------------------------------------ the send pass */

/*
 * Send what st has, as its windows, the connection's and the peer's frame
 * size allow: DATA, then its trailers or an END_STREAM.  A stream that
 * has used its own window leaves the queue (its WINDOW_UPDATE puts it
 * back); a streamed body that is all sent waits for the next write.
 * Never frees st.
 */
static void h2_send_stream(struct h2_session *s, struct h2_stream *st)
{
	struct conn *c = s->c;
	bool body_done = !st->streaming || st->ended;
	while (st->out_pos < st->out.len) {
		if (st->send_win <= 0) {
			h2_unqueue(st);
			return;
		}
		if (s->send_win <= 0 || c->out.len > OUT_BACKLOG_MAX)
			return;   /* stays queued */
		size_t n = st->out.len - st->out_pos;
		int64_t w = st->send_win < s->send_win ? st->send_win : s->send_win;
		if ((int64_t)n > w)
			n = (size_t)w;
		if (n > s->peer_max_frame)
			n = s->peer_max_frame;
		bool last = body_done && st->ntrailers == 0 && st->out_pos + n == st->out.len;
		h2_write_data(s, st->id, st->out.data + st->out_pos, n, last);
		st->out_pos += n;
		st->send_win -= (int64_t)n;
		s->send_win -= (int64_t)n;
		if (last) {
			st->local_ended = true;
			h2_unqueue(st);
			return;
		}
	}
	if (!body_done) {
		buf_reset(&st->out);   /* all sent: the next message starts at 0 */
		st->out_pos = 0;
		h2_unqueue(st);
		return;
	}
	if (st->ntrailers) {
		if (st->grpc)
			h2_count_grpc(st);
		h2_write_headers(s, st->id, st->trailers, st->ntrailers, true, NULL);
	} else {
		h2_write_data(s, st->id, NULL, 0, true);
	}
	st->local_ended = true;
	h2_unqueue(st);
}

/* Every queued stream in turn, each as far as it can go; streams done
 * both ways are freed. */
static void h2_send_pass(struct h2_session *s)
{
	struct h2_stream *next;
	while (s->doneq) {
		struct h2_stream *st = s->doneq;
		h2_unqueue(st);
		h2_maybe_close(st);
	}
	for (struct h2_stream *st = s->sendq; st && !s->dead; st = next) {
		next = st->qnext;
		if (!st->local_ended && !st->bad)
			h2_send_stream(s, st);
		if (st->local_ended || st->bad) {
			h2_unqueue(st);
			h2_maybe_close(st);
		}
		if (s->send_win <= 0 || s->c->out.len > OUT_BACKLOG_MAX)
			break;
	}
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
	const char *path = st->head.data + st->rq.off_path;
	size_t plen = st->rq.len_path;
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

/* A field of an answer: its name and value where they lie (np, vp: the
 * head's, which is encoded before h2_submit returns), or as offsets into
 * st->ans (n, v: copies, lowercased names, and the trailers, which are
 * encoded later and outlive the handler's strings). */
struct nv_off {
	uint32_t n, nl, v, vl;
	const char *np, *vp;
};

static inline bool h2_lower(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] >= 'A' && p[i] <= 'Z')
			return false;
	return true;
}

/* The body to st->out (none for HEAD), and st answered. */
static inline void h2_submit_body(struct h2_stream *st, const struct http_answer *a,
                                  bool head_only)
{
	buf_reset(&st->out);
	st->out_pos = 0;
	if (!head_only && a->len)
		buf_append(&st->out, a->body, a->len);
	st->answered = true;
}

/* Nothing goes out after GOAWAY or RST_STREAM. */
static inline bool h2_submit_gone(const struct h2_stream *st)
{
	return st->s->dead || st->bad || st->local_ended;
}

/*
 * Submit an answer on st: HEADERS (:status, content-type, the headers),
 * the body as DATA, trailers in a last HEADERS.  A plain HTTP error to a
 * gRPC request becomes a gRPC error (status 200, grpc-status, grpc-message).
 * h2_submit (below) takes the common case, a plain answer the cached block
 * stands for; this, out of line, every other: its frame holds the header
 * list, which h2_submit's then need not (~20 instructions a request).
 */
static __attribute__((noinline)) void h2_submit_list(struct h2_stream *st,
                                                     const struct http_answer *in,
                                                     bool head_only)
{
	/* a, not a copy of *in (17 instructions a request): the gRPC error
	 * below is its own answer */
	const struct http_answer *a = in;
	struct http_answer ga;
	char code[12];
	struct http_header gtr[2];
	if (st->grpc && a->status != 200 && a->n_trailers == 0) {
		int g = grpc_status_from_http(a->status);
		size_t ml = a->len > 200 ? 200 : a->len;
		int n = snprintf(code, sizeof code, "%d", g);
		gtr[0] = (struct http_header){"grpc-status", code, 11, (uint32_t)n};
		gtr[1] = (struct http_header){"grpc-message", a->body ? a->body : "", 12, (uint32_t)ml};
		ga = (struct http_answer){.status = 200, .content_type = "application/grpc",
		                          .trailers = gtr, .n_trailers = ml ? 2 : 1};
		a = &ga;
		/* the message is copied below, through ans_put, and cleaned there */
	}
	int status = a->status < 100 || a->status > 999 ? 500 : a->status;
	bool bodyless = status == 204 || status == 304 || status < 200;
	struct h2_plain_key pk, *plain = NULL;
	if (!bodyless && !st->grpc && !st->streaming && a->content_type && a->n_headers == 0 &&
	    !a->raw_headers && a->n_trailers == 0) {
		/* a plain answer h2_submit did not find cached: its list, and
		 * the key kept with the block for the next */
		pk = (struct h2_plain_key){(uint16_t)status, a->content_type,
		                           strlen(a->content_type), (uint64_t)a->len};
		plain = &pk;
	}
	buf_reset(&st->ans);
	struct nv_off o[HTTP_MAX_HEADERS + 4];
	size_t n = 0;
	char s3[4] = {(char)('0' + status / 100), (char)('0' + status / 10 % 10),
	              (char)('0' + status % 10), 0};
	o[n++] = (struct nv_off){.np = ":status", .nl = 7, .vp = s3, .vl = 3};
	if (a->content_type) {
		size_t l = strlen(a->content_type);
		o[n++] = (struct nv_off){.np = "content-type", .nl = 12, .vp = a->content_type,
		                         .vl = (uint32_t)l};
	}
	for (uint32_t i = 0; i < a->n_headers && n < HTTP_MAX_HEADERS + 2; i++) {
		const struct http_header *h = &a->headers[i];
		o[n] = (struct nv_off){.nl = h->name_len, .vp = h->value, .vl = h->value_len};
		if (h2_lower(h->name, h->name_len))
			o[n].np = h->name;
		else
			o[n].n = ans_put(st, h->name, h->name_len, true);
		n++;
	}
	/* the older "Name: value\r\n" lines, lowercased for HTTP/2 */
	for (const char *p = a->raw_headers; p && *p && n < HTTP_MAX_HEADERS + 2;) {
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
		if (!hop)
			o[n++] = (struct nv_off){.n = ans_put(st, p, nl, true), .nl = (uint32_t)nl,
			                         .vp = v, .vl = (uint32_t)(eol - v)};
		p = eol + 2;
	}
	char clen[24];
	if (!bodyless && a->n_trailers == 0 && !st->streaming) {
		size_t l = fmt_u64(clen, (uint64_t)a->len);   /* no printf on the hot path */
		o[n++] = (struct nv_off){.np = "content-length", .nl = 14, .vp = clen, .vl = (uint32_t)l};
	}
	size_t nt = 0;
	struct nv_off to[H2_MAX_TRAILERS];
	for (uint32_t i = 0; i < a->n_trailers && nt < H2_MAX_TRAILERS; i++) {
		const struct http_header *h = &a->trailers[i];
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
	/* the head is encoded now; the trailers' fields stay in ans, which
	 * nothing appends to until they are written (stream_end and the Watch
	 * set them again after their own appends) */
	nghttp2_nv nv[HTTP_MAX_HEADERS + 4];
	for (size_t i = 0; i < n; i++)
		nv[i] = (nghttp2_nv){(uint8_t *)(o[i].np ? o[i].np : st->ans.data + o[i].n),
		                     (uint8_t *)(o[i].vp ? o[i].vp : st->ans.data + o[i].v),
		                     o[i].nl, o[i].vl, NGHTTP2_NV_FLAG_NONE};
	st->ntrailers = nt;
	for (size_t i = 0; i < nt; i++)
		st->trailers[i] = (nghttp2_nv){(uint8_t *)st->ans.data + to[i].n,
		                               (uint8_t *)st->ans.data + to[i].v, to[i].nl, to[i].vl,
		                               NGHTTP2_NV_FLAG_NONE};
	h2_submit_body(st, a, head_only || bodyless);
	if (h2_submit_gone(st))
		return;
	bool data = st->out.len > 0 || nt > 0 || st->streaming;
	h2_write_headers(st->s, st->id, nv, n, !data, plain);
	if (!data)
		st->local_ended = true;
	/* the send pass writes the body, or frees a stream done both ways */
	h2_enqueue(st);
}

static void h2_submit(struct h2_stream *st, const struct http_answer *a, bool head_only)
{
	struct h2_session *s = st->s;
	/* plain (struct h2_plain_key) with a status of 200..999 (those below
	 * 100 and over 999, which become 500, go the long way), and the same
	 * three as the cached block's */
	if (st->grpc || st->streaming || !a->content_type || a->n_headers || a->raw_headers ||
	    a->n_trailers || a->status < 200 || a->status > 999 || a->status == 204 ||
	    a->status == 304) {
		h2_submit_list(st, a, head_only);
		return;
	}
	struct h2_plain_key pk = {(uint16_t)a->status, a->content_type, 0, (uint64_t)a->len};
	if (!h2_plain_same(s->hc_out, &pk)) {
		h2_submit_list(st, a, head_only);
		return;
	}
	h2_buf_empty(&st->ans);
	st->ntrailers = 0;
	/* A body that one DATA frame takes, within both windows, with no
	 * stream before it waiting to send, goes out at once from the
	 * handler's bytes, not through st->out and the send queue (streams
	 * still end in the order they were answered); the pass only frees
	 * the stream. */
	size_t blen = head_only ? 0 : a->len;
	if (blen && !s->sendq && !st->queued && (int64_t)blen <= st->send_win &&
	    (int64_t)blen <= s->send_win && blen <= s->peer_max_frame &&
	    s->c->out.len <= OUT_BACKLOG_MAX) {
		h2_buf_empty(&st->out);
		st->out_pos = 0;
		st->answered = true;
		if (h2_submit_gone(st))
			return;
		h2_write_cached_data(s, st->id, a->body, blen);
		st->send_win -= (int64_t)blen;
		s->send_win -= (int64_t)blen;
		st->local_ended = true;
		/* answered from inside h2_dispatch after END_STREAM: the
		 * frame's end frees it (h2_maybe_close), so no doneq in and
		 * out (~40 instructions a request) */
		if (!(st->in_handler && st->client_ended))
			h2_done(st);
		return;
	}
	h2_submit_body(st, a, head_only);
	if (h2_submit_gone(st))
		return;
	bool data = st->out.len > 0;
	h2_write_cached(s, st->id, !data);
	if (!data)
		st->local_ended = true;
	h2_enqueue(st);
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
	if (st->send_win > 0)
		h2_enqueue(st);   /* (else its WINDOW_UPDATE will) */
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
		/* ans moves no more: the pointers are final (the answer's head
		 * was encoded when it was submitted) */
		for (size_t i = 0; i < nt; i++)
			st->trailers[i] = (nghttp2_nv){(uint8_t *)st->ans.data + o[i].n,
			                               (uint8_t *)st->ans.data + o[i].v, o[i].nl, o[i].vl,
			                               NGHTTP2_NV_FLAG_NONE};
		st->ntrailers = nt;
		st->ended = true;
		st->x = NULL;
		h2_enqueue(st);
		server_conn_schedule(c);
	}
	x->stream = NULL;
	xchg_put(c->t, x);
}

/* ------------------------------------------------------------ health Watch */

#define WATCH_PATH "/grpc.health.v1.Health/Watch"

/* The Watch stream's last message and its OK trailers, queued. */
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
	if (!st->local_ended && !st->bad)
		h2_enqueue(st);
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
	if (n == 3 && m[0] == 'G' && m[1] == 'E' && m[2] == 'T')
		return HTTP_GET;   /* nearly every request: no table walk */
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
	if (st->rq.too_big) {
		h2_submit_error(st, 431, "request header fields too large");
		return;
	}
	if (st->body_too_big)
		return;   /* answered 413 already */
	struct xchg *x = st->x;
	struct http_request *r = &x->pub.req;
	const char *h = st->head.data;
	r->method_str = h + st->rq.off_method;
	r->method_len = st->rq.len_method;
	r->method = h2_method(r->method_str, r->method_len);
	r->target = r->path = h + st->rq.off_path;
	r->target_len = st->rq.len_path;
	r->path_len = st->rq.len_pathq;
	r->query = NULL;
	r->query_len = 0;
	if (st->rq.len_pathq < st->rq.len_path) {
		r->query = r->path + st->rq.len_pathq + 1;
		r->query_len = st->rq.len_path - st->rq.len_pathq - 1;
	}
	r->host = st->rq.len_auth ? h + st->rq.off_auth : NULL;
	r->host_len = st->rq.len_auth;
	r->m.n_headers = st->rq.nhdr;
	for (uint32_t i = 0; i < st->rq.nhdr; i++)
		r->m.headers[i] = (struct http_header){h + st->hf[i].noff, h + st->hf[i].voff,
		                                       st->hf[i].nlen, st->hf[i].vlen};
	r->m.version_minor = 1;
	r->m.keep_alive = true;
	r->m.expect_continue = r->m.upgrade = false;
	r->m.body_kind = st->body.len ? HTTP_BODY_LENGTH : HTTP_BODY_NONE;
	r->m.content_length = st->body.len;
	r->m.head_len = 0;
	x->pub.body = st->body.len ? st->body.data : NULL;
	x->pub.body_len = st->body.len;
	/* one clock reading for the heads of a service pass, as over
	 * HTTP/1.1: on this VM the vDSO's clock was 3.4% of the server's
	 * time over h2c, saturated, against 0.7% over HTTP/1.1 */
	if (c->in_process) {
		if (!c->t->batch_ns)
			c->t->batch_ns = now_ns();
		x->pub.start_ns = c->t->batch_ns;
	} else {
		x->pub.start_ns = now_ns();
	}
	x->head_only = r->method == HTTP_HEAD;
	x->keep_alive = true;
	x->stream = st;
	st->dispatched = true;
	st->grpc = (st->rq.hflags & H2F_CONTENT_TYPE) && grpc_is_call(&x->pub);
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
	if (!(st->grpc && grpc_health_serve(&x->pub))) {
		st->in_handler = true;   /* both callers end in h2_maybe_close */
		srv->cfg.handler(&x->pub, srv->cfg.handler_arg);
		st->in_handler = false;
	}
	if (srv->cfg.tracer)
		http_trace_log(NULL);
}

/*
 * Malformed requests (RFC 9113 8.1.1, 8.2, 8.3), answered as nghttp2 1.52's
 * HTTP messaging answered them when it did the framing: RST_STREAM
 * PROTOCOL_ERROR, the connection going on.  What we accept beyond it: an
 * :authority of "http://" or "https://" then host[:port], which grpc-go
 * (etcdctl's --cluster commands, which dial each member's client URL)
 * sends and grpc-go's server takes; the prefix is not kept.
 */
/*
 * Character classes of the request checks, one table lookup a byte:
 * h2_field ran strchr for every character of every name and value
 * (callgrind: 5% of the server's instructions per request over h2c).
 * Filled once, by the first session (h2_start).
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

/*
 * Every byte of v[0..n) in class cls.  A value or a path (the long ones:
 * a user-agent, a URL) goes 8 bytes a step: a word with no byte below
 * 0x20 (0x21 for a path) and none 0x7f is in the class (bytes from 0x80
 * are); the first word that is not so sure, and what follows, is looked at
 * byte by byte (a tab is a value's).
 */
static inline bool h2_all(const uint8_t *v, size_t n, uint8_t cls)
{
	size_t i = 0;
	if (cls == H2C_VALUE || cls == H2C_PATH) {
		const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
		const uint64_t lo = (cls == H2C_PATH ? 0x21 : 0x20) * ones, del = 0x7f * ones;
		for (; i + 8 <= n; i += 8) {
			uint64_t w;
			memcpy(&w, v + i, 8);
			uint64_t d = w ^ del;
			if (((w - lo) & ~w & high) || ((d - ones) & ~d & high))
				break;
		}
	}
	for (; i < n; i++)
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
	if ((st->rq.hflags & flag) || vlen == 0)
		return false;
	st->rq.hflags |= flag;
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
		if (trailer || (st->rq.hflags & H2F_REGULAR))
			return -1;
		if (H2_IS(n, nlen, ":method")) {
			if (!h2_pseudo_once(st, H2F_METHOD, vlen))
				return -1;
			if (!h2_all(v, vlen, H2C_TCHAR))
				return -1;
			if (H2_IS(v, vlen, "CONNECT")) {
				if (st->rq.hflags & (H2F_PATH | H2F_SCHEME))
					return -1;
				st->rq.hflags |= H2F_CONNECT;
			} else if (H2_IS(v, vlen, "OPTIONS")) {
				st->rq.hflags |= H2F_OPTIONS;
			}
			return 0;
		}
		if (H2_IS(n, nlen, ":scheme")) {
			if ((st->rq.hflags & H2F_CONNECT) || !h2_pseudo_once(st, H2F_SCHEME, vlen))
				return -1;
			/* RFC 3986 3.1: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) */
			for (size_t i = 0; i < vlen; i++) {
				uint8_t c = v[i] | 0x20;
				bool alpha = c >= 'a' && c <= 'z';
				if (!alpha && (i == 0 || !((v[i] >= '0' && v[i] <= '9') || (v[i] && strchr("+-.", v[i])))))
					return -1;
			}
			/* http or https, any case (no strncasecmp per request) */
			if ((vlen == 4 || (vlen == 5 && (v[4] | 0x20) == 's')) && (v[0] | 0x20) == 'h' &&
			    (v[1] | 0x20) == 't' && (v[2] | 0x20) == 't' && (v[3] | 0x20) == 'p')
				st->rq.hflags |= H2F_SCHEME_HTTP;
			return 0;
		}
		if (H2_IS(n, nlen, ":path")) {
			if ((st->rq.hflags & H2F_CONNECT) || !h2_pseudo_once(st, H2F_PATH, vlen))
				return -1;
			if (!h2_all(v, vlen, H2C_PATH))
				return -1;
			if (v[0] == '/')
				st->rq.hflags |= H2F_PATH_SLASH;
			else if (vlen == 1 && v[0] == '*')
				st->rq.hflags |= H2F_PATH_STAR;
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
	st->rq.hflags |= H2F_REGULAR;
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
			if (!h2_authority_ok(v, vlen) || (st->rq.hflags & H2F_HOST))
				return -1;
			st->rq.hflags |= H2F_HOST;
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
	case 12:
		if (H2_IS(n, nlen, "content-type"))
			st->rq.hflags |= H2F_CONTENT_TYPE;
		break;
	case 14:
		if (H2_IS(n, nlen, "content-length")) {
			if (st->rq.clen != -1 || vlen == 0 || vlen > 18)
				return -1;
			int64_t x = 0;
			for (size_t i = 0; i < vlen; i++) {
				if (v[i] < '0' || v[i] > '9')
					return -1;
				x = x * 10 + (v[i] - '0');
			}
			st->rq.clen = x;
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
	uint16_t f = st->rq.hflags;
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
	h2_reset(st, H2E_PROTOCOL);
}

/* One field of the header block coming in, decoded: checked (h2_field)
 * and, for a request, copied into its stream. */
static void h2_on_field(struct h2_session *s, const nghttp2_nv *nv)
{
	struct h2_stream *st = s->hb_st;
	if (!st || st->bad || s->hb_kind == H2B_DROP)
		return;
	const uint8_t *name = nv->name, *value = nv->value;
	size_t nlen = nv->namelen, vlen = nv->valuelen;
	bool request = s->hb_kind == H2B_REQUEST;
	size_t skip;
	int ok = h2_field(st, name, nlen, value, vlen, !request, &skip);
	if (ok < 0)
		h2_reject(st);
	if (ok != 0 || !request || st->rq.too_big)
		return;   /* trailers from the client are checked, not kept */
	/* the size as RFC 9113 counts it for SETTINGS_MAX_HEADER_LIST_SIZE */
	st->rq.hbytes += nlen + vlen + 32;
	if (st->rq.hbytes > s->c->t->srv->cfg.limits.max_header_bytes) {
		st->rq.too_big = true;
		return;
	}
	/* name and value, each NUL-terminated, with one reservation: four
	 * buf calls per field were a tenth of the server's time per request */
	uint32_t noff = (uint32_t)st->head.len;
	uint32_t voff = noff + (uint32_t)nlen + 1;
	if (st->head.cap - st->head.len <= nlen + vlen + 2)
		buf_reserve(&st->head, nlen + vlen + 2);   /* its own test, without the call */
	char *d = st->head.data + noff;
	memcpy(d, name, nlen);
	d[nlen] = '\0';
	memcpy(d + nlen + 1, value, vlen);
	d[nlen + 1 + vlen] = '\0';
	st->head.len += nlen + vlen + 2;
	if (name[0] == ':') {
		/* h2_field has checked the pseudo-headers */
		if (nlen == 7 && memcmp(name, ":method", 7) == 0) {
			st->rq.off_method = voff;
			st->rq.len_method = (uint32_t)vlen;
		} else if (nlen == 5 && memcmp(name, ":path", 5) == 0) {
			st->rq.off_path = voff;
			st->rq.len_path = (uint32_t)vlen;
			/* the query is split off here, where a replayed block
			 * (h2_hc_replay) does not come, not in h2_dispatch */
			const char *pv = d + nlen + 1, *q = memchr(pv, '?', vlen);
			st->rq.len_pathq = q ? (uint32_t)(q - pv) : (uint32_t)vlen;
		} else if (nlen == 10 && memcmp(name, ":authority", 10) == 0) {
			st->rq.off_auth = voff + (uint32_t)skip;
			st->rq.len_auth = (uint32_t)(vlen - skip);
		}
		return;
	}
	if (st->rq.nhdr == HTTP_MAX_HEADERS) {
		st->rq.too_big = true;
		return;
	}
	st->hf[st->rq.nhdr] = (struct h2_field){noff, voff, (uint32_t)nlen, (uint32_t)vlen};
	st->rq.nhdr++;
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

/* A call to a registered bidirectional path whose first message is in. */
static bool h2_bidi_ready(const struct h2_stream *st)
{
	if (!grpc_bidi_is(st->head.data + st->rq.off_path, st->rq.len_path) || st->body.len < GRPC_PREFIX)
		return false;
	const uint8_t *p = (const uint8_t *)st->body.data;
	uint32_t n = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
	return st->body.len - GRPC_PREFIX >= n;
}

/* A DATA frame's payload for st: its request body, or a bidirectional
 * call's next messages once dispatched. */
static void h2_body(struct h2_stream *st, const uint8_t *data, size_t len)
{
	st->crecv += len;
	if (st->rq.clen >= 0 && st->crecv > (uint64_t)st->rq.clen) {
		h2_reject(st);   /* more than its content-length */
		return;
	}
	if (st->dispatched && st->on_msg) {
		h2_more(st, data, len);
		return;
	}
	if (st->dispatched || st->body_too_big || st->answered)
		return;
	if (st->body.len + len > st->s->c->t->srv->cfg.limits.max_body) {
		st->body_too_big = true;
		buf_free(&st->body);
		h2_submit_error(st, 413, "request body too large");
		return;
	}
	buf_append(&st->body, data, len);
}

/*
 * After a header block (headers: true; request: a request's, not its
 * trailers) or a DATA frame for st, end: with END_STREAM.  The request
 * goes to its handler when it is complete (or, for a bidirectional gRPC
 * call, when its first message is).
 */
static void h2_after_frame(struct h2_stream *st, bool headers, bool request, bool end)
{
	if (end)
		st->client_ended = true;
	if (headers && (request ? !h2_request_ok(st) : !end)) {
		h2_reject(st);   /* pseudo-headers missing, or trailers that do not end it */
		return;
	}
	if (end && st->rq.clen >= 0 && st->crecv != (uint64_t)st->rq.clen) {
		h2_reject(st);   /* less than its content-length */
		return;
	}
	if (st->dispatched && st->on_msg && st->x && end) {
		grpc_message_fn fn = st->on_msg;
		st->on_msg = NULL;
		fn(&st->x->pub, NULL, 0, st->on_msg_arg);   /* the client's side ended */
		return;
	}
	if (st->dispatched || st->answered)
		return;
	if (headers && st->rq.too_big) {
		h2_submit_error(st, 431, "request header fields too large");
		return;
	}
	if (end) {
		h2_dispatch(st);
	} else if (!headers && h2_bidi_ready(st)) {
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
}

/* ------------------------------------------------------------ frames in */

/* Padding (PADDED): the payload without it, or false for a connection
 * error (RFC 9113 6.1: padding as long as the rest, or longer). */
static bool h2_unpad(struct h2_session *s, uint8_t flags, const uint8_t **p, uint32_t *len)
{
	if (!(flags & H2_FL_PADDED))
		return true;
	if (*len < 1) {
		h2_fail(s, H2E_FRAME_SIZE, "padded frame without its pad length");
		return false;
	}
	uint32_t pad = (*p)[0];
	if (pad >= *len) {
		h2_fail(s, H2E_PROTOCOL, "padding as long as the frame");
		return false;
	}
	(*p)++;
	*len -= 1 + pad;
	return true;
}

/* The header block is whole: its request or trailers take effect. */
static void h2_block_end(struct h2_session *s)
{
	struct h2_stream *st = s->hb_st;
	uint8_t kind = s->hb_kind;
	bool end = s->hb_end_stream;
	s->hb_id = 0;
	s->hb_st = NULL;
	if (s->hb_refuse && !s->dead)
		h2_write_rst(s, s->last_id, H2E_REFUSED_STREAM);
	s->hb_refuse = false;
	if (!st)
		return;
	if (kind == H2B_DROP) {
		/* HEADERS on a stream the client had ended: STREAM_CLOSED */
		h2_reset(st, H2E_STREAM_CLOSED);
		h2_stream_free(st);
		return;
	}
	if (!st->bad)
		h2_after_frame(st, true, kind == H2B_REQUEST, end);
	h2_maybe_close(st);
}

/*
 * The block in one frame (HEADERS with END_HEADERS), p[0..len): if it is
 * the cached block's bytes, its fields go to h2_on_field from the cache
 * and true is returned.  Why this is exact: the cached block was the last
 * one decoded on this connection (every block that reaches nghttp2 empties
 * the cache first, and only one that is whole, stateless and small fills
 * it again), and it changed nothing in the decoder (h2_hpack_stateless).
 * So the dynamic table is now what it was when that block was decoded,
 * and the same bytes decoded against the same table give the same fields,
 * in the same order.  Skipping the decoder leaves its state as it was,
 * which is what decoding the block would have left.  The fields go through
 * h2_on_field as decoded ones do: the same checks, limits and copies.
 */
static void h2_snap_take(struct h2_session *s, struct h2_reqsnap *rs)
{
	const struct h2_stream *st = s->hb_st;
	rs->ok = false;
	if (!st || s->hb_kind != H2B_REQUEST || st->bad || st->head.len > sizeof rs->head ||
	    st->rq.nhdr > H2_HC_FIELDS)
		return;
	memcpy(rs->head, st->head.data, st->head.len);
	rs->head_len = (uint32_t)st->head.len;
	h2_reqpos_copy(&rs->rq, &st->rq);
	memcpy(rs->hf, st->hf, st->rq.nhdr * sizeof st->hf[0]);
	rs->ok = true;
}

static bool h2_hc_replay(struct h2_session *s, const uint8_t *p, uint32_t len)
{
	struct h2_hcache *hc = s->hc;
	if (!hc || !hc->valid || hc->blen != len || memcmp(hc->block, p, len) != 0)
		return false;
	struct h2_stream *st = s->hb_st;
	const struct h2_reqsnap *rs = s->rs;
	if (rs->ok && st && s->hb_kind == H2B_REQUEST && !st->bad) {
		/* a new stream: what the fields would leave, at once */
		INVARIANT(st->head.len == 0 && st->rq.nhdr == 0 && st->rq.hflags == 0);
		if (st->head.cap < rs->head_len + 1)
			buf_reserve(&st->head, rs->head_len + 1);
		memcpy(st->head.data, rs->head, rs->head_len);
		st->head.len = rs->head_len;
		h2_reqpos_copy(&st->rq, &rs->rq);
		memcpy(st->hf, rs->hf, rs->rq.nhdr * sizeof rs->hf[0]);
		return true;
	}
	for (uint16_t i = 0; i < hc->nf; i++) {
		nghttp2_nv nv = {.name = hc->data + hc->f[i].noff, .namelen = hc->f[i].nlen,
		                 .value = hc->data + hc->f[i].voff, .valuelen = hc->f[i].vlen};
		h2_on_field(s, &nv);
	}
	return true;
}

/* A fragment of the header block coming in, decoded field by field.
 * Bounded: the block's bytes (twice what we let a header list be, and a
 * frame more) and its frames (a CONTINUATION flood of empty frames).  A
 * block whole in one frame is replayed from the cache when it can be
 * (h2_hc_replay), and otherwise may fill it. */
static void h2_block(struct h2_session *s, const uint8_t *p, uint32_t len, bool end)
{
	size_t max = 2 * s->c->t->srv->cfg.limits.max_header_bytes + H2_MAX_FRAME;
	s->hb_bytes += len;
	s->hb_frames++;
	if (s->hb_bytes > max || s->hb_frames > 8 + max / H2_MAX_FRAME) {
		h2_fail(s, H2E_ENHANCE_YOUR_CALM, "header block too long");
		return;
	}
	bool whole = end && s->hb_frames == 1;
	if (whole && h2_hc_replay(s, p, len)) {
		h2_block_end(s);
		return;
	}
	/* nghttp2 decodes this block: the cache no longer describes the
	 * decoder's last block, so it is emptied, and filled again only by a
	 * whole block that fits */
	struct h2_hcache *hc = s->hc;
	if (hc)
		hc->valid = false;
	bool fill = whole && len <= H2_HC_BLOCK;
	if (fill && !hc) {
		hc = s->hc = malloc(sizeof *hc);
		s->rs = malloc(sizeof *s->rs);
		INVARIANT(s->rs != NULL);
		s->rs->ok = false;
		INVARIANT(hc != NULL);
		hc->valid = false;
	}
	if (fill) {
		hc->nf = hc->dlen = 0;
		hc->blen = (uint16_t)len;
		memcpy(hc->block, p, len);
	}
	const uint8_t *block = p;
	uint32_t block_len = len;
	for (;;) {
		nghttp2_nv nv;
		int fl = 0;
		ssize_t r = nghttp2_hd_inflate_hd2(s->inf, &nv, &fl, p, len, end);
		if (r < 0) {
			h2_fail(s, H2E_COMPRESSION, "bad header block");
			return;
		}
		p += r;
		len -= (uint32_t)r;
		if (fl & NGHTTP2_HD_INFLATE_EMIT) {
			if (fill)
				fill = h2_hc_add(hc, &nv);
			h2_on_field(s, &nv);
		}
		if (fl & NGHTTP2_HD_INFLATE_FINAL) {
			nghttp2_hd_inflate_end_headers(s->inf);
			break;
		}
		if (!(fl & NGHTTP2_HD_INFLATE_EMIT) && len == 0)
			break;
	}
	if (fill && h2_hpack_stateless(block, block_len)) {
		hc->valid = true;
		h2_snap_take(s, s->rs);
	}
	if (end)
		h2_block_end(s);
}

/* A new stream's HEADERS: its stream, or none when it is dropped (after
 * our GOAWAY) or refused (past MAX_CONCURRENT_STREAMS). */
static struct h2_stream *h2_open(struct h2_session *s, int32_t id)
{
	s->last_id = id;
	if (s->goaway)
		return NULL;   /* the client retries it elsewhere */
	if (s->nstreams >= s->c->t->srv->cfg.h2_max_streams) {
		s->hb_refuse = true;
		return NULL;
	}
	s->last_taken = id;
	struct h2_stream *st = h2_stream_new(s, id);
	struct conn *c = s->c;
	st->x = xchg_get(c->t);
	st->x->c = c;
	st->deadline = uv_now(&c->t->loop) + c->t->srv->cfg.body_timeout_ms;
	return st;
}

static void h2_on_headers(struct h2_session *s, uint8_t flags, int32_t id, const uint8_t *p,
                          uint32_t len)
{
	if (id == 0 || !(id & 1)) {
		h2_fail(s, H2E_PROTOCOL, "HEADERS on stream 0 or an even stream");
		return;
	}
	if (!h2_unpad(s, flags, &p, &len))
		return;
	bool self_dep = false;
	if (flags & H2_FL_PRIORITY) {
		/* RFC 7540 priorities are not used (we said so in SETTINGS) */
		if (len < 5) {
			h2_fail(s, H2E_FRAME_SIZE, "HEADERS too short for its priority");
			return;
		}
		self_dep = (int32_t)(h2_get32(p) & 0x7fffffff) == id;
		p += 5;
		len -= 5;
	}
	struct h2_stream *st = h2_find(s, id);
	s->hb_kind = H2B_TRAILERS;
	if (!st && id <= s->last_id) {
		/* a closed stream: late trailers of one we reset are dropped; a
		 * request cannot reuse its id */
		if (!(flags & H2_FL_END_STREAM)) {
			h2_fail(s, H2E_PROTOCOL, "HEADERS on a closed stream");
			return;
		}
		s->hb_kind = H2B_DROP;
	} else if (!st) {
		st = h2_open(s, id);
		s->hb_kind = st ? H2B_REQUEST : H2B_DROP;
	} else if (st->client_ended) {
		s->hb_kind = H2B_DROP;   /* STREAM_CLOSED at the block's end */
	}
	if (st && self_dep)
		h2_reject(st);   /* RFC 9113 5.3.1: a stream cannot depend on itself */
	s->hb_id = id;
	s->hb_st = st;
	s->hb_end_stream = flags & H2_FL_END_STREAM;
	s->hb_bytes = s->hb_frames = 0;
	h2_block(s, p, len, flags & H2_FL_END_HEADERS);
}

static void h2_on_continuation(struct h2_session *s, uint8_t flags, int32_t id,
                               const uint8_t *p, uint32_t len)
{
	if (!s->hb_id || id != s->hb_id) {
		h2_fail(s, H2E_PROTOCOL, "CONTINUATION without its HEADERS");
		return;
	}
	h2_block(s, p, len, flags & H2_FL_END_HEADERS);
}

/* The peer sent n bytes of DATA on the connection: our window shrinks,
 * and grows again with a WINDOW_UPDATE when half of it is used. */
static bool h2_recv_conn(struct h2_session *s, uint32_t n)
{
	if (n > s->recv_win) {
		h2_fail(s, H2E_FLOW_CONTROL, "DATA beyond the connection's window");
		return false;
	}
	s->recv_win -= n;
	s->recv_unacked += n;
	if (s->recv_unacked >= H2_WINDOW / 2) {
		h2_write_window(s, 0, s->recv_unacked);
		s->recv_win += s->recv_unacked;
		s->recv_unacked = 0;
	}
	return true;
}

static void h2_on_data(struct h2_session *s, uint8_t flags, int32_t id, const uint8_t *p,
                       uint32_t len)
{
	if (id == 0 || !(id & 1) || id > s->last_id) {
		h2_fail(s, H2E_PROTOCOL, "DATA on stream 0 or an idle stream");
		return;
	}
	uint32_t flen = len;   /* flow control counts the padding too */
	if (!h2_recv_conn(s, flen) || !h2_unpad(s, flags, &p, &len))
		return;
	struct h2_stream *st = h2_find(s, id);
	if (!st)
		return;   /* closed: ignored (we may have reset it) */
	if (st->client_ended) {
		h2_reset(st, H2E_STREAM_CLOSED);
		h2_stream_free(st);
		return;
	}
	if (flen > st->recv_win) {
		h2_reset(st, H2E_FLOW_CONTROL);
		h2_stream_free(st);
		return;
	}
	bool end = flags & H2_FL_END_STREAM;
	st->recv_win -= flen;
	st->recv_unacked += flen;
	if (!end && st->recv_unacked >= H2_WINDOW / 2) {
		h2_write_window(s, id, st->recv_unacked);
		st->recv_win += st->recv_unacked;
		st->recv_unacked = 0;
	}
	if (!st->bad && len)
		h2_body(st, p, len);
	if (!st->bad)
		h2_after_frame(st, false, false, end);
	h2_maybe_close(st);
}

/* The peer's INITIAL_WINDOW_SIZE changed by delta: every open stream's
 * send window moves with it (RFC 9113 6.9.2). */
static bool h2_peer_window(struct h2_session *s, uint32_t v)
{
	int64_t delta = (int64_t)v - s->peer_window;
	s->peer_window = v;
	for (struct h2_stream *st = s->streams; st; st = st->next) {
		st->send_win += delta;
		if (st->send_win > H2_WINDOW_MAX) {
			h2_fail(s, H2E_FLOW_CONTROL, "SETTINGS_INITIAL_WINDOW_SIZE overflows a window");
			return false;
		}
		if (delta > 0 && st->send_win > 0 && st->answered && !st->local_ended && !st->bad)
			h2_enqueue(st);
	}
	return true;
}

/* The peer's SETTINGS: each applied in order, then acknowledged. */
static void h2_on_settings(struct h2_session *s, uint8_t flags, int32_t id, const uint8_t *p,
                           uint32_t len)
{
	if (id != 0) {
		h2_fail(s, H2E_PROTOCOL, "SETTINGS on a stream");
		return;
	}
	if (flags & H2_FL_ACK) {
		if (len)
			h2_fail(s, H2E_FRAME_SIZE, "SETTINGS ACK with a payload");
		return;
	}
	if (len % 6) {
		h2_fail(s, H2E_FRAME_SIZE, "SETTINGS not a multiple of 6 bytes");
		return;
	}
	if (len / 6 > H2_SETTINGS_MAX) {
		h2_fail(s, H2E_ENHANCE_YOUR_CALM, "too many SETTINGS entries");
		return;
	}
	for (; len; p += 6, len -= 6) {
		uint16_t k = (uint16_t)(p[0] << 8 | p[1]);
		uint32_t v = h2_get32(p + 2);
		switch (k) {
		case H2S_HEADER_TABLE_SIZE:
			if (nghttp2_hd_deflate_change_table_size(s->def, v) != 0) {
				h2_fail(s, H2E_INTERNAL, "cannot resize the encoder's table");
				return;
			}
			if (s->hc_out)
				s->hc_out->valid = false;   /* h2_write_headers */
			break;
		case H2S_ENABLE_PUSH:
		case H2S_NO_RFC7540_PRIORITIES:
			if (v > 1) {
				h2_fail(s, H2E_PROTOCOL, "a SETTINGS flag neither 0 nor 1");
				return;
			}
			break;
		case H2S_INITIAL_WINDOW_SIZE:
			if (v > H2_WINDOW_MAX) {
				h2_fail(s, H2E_FLOW_CONTROL, "SETTINGS_INITIAL_WINDOW_SIZE over 2^31-1");
				return;
			}
			if (!h2_peer_window(s, v))
				return;
			break;
		case H2S_MAX_FRAME_SIZE:
			if (v < H2_MAX_FRAME || v > H2_MAX_FRAME_LIMIT) {
				h2_fail(s, H2E_PROTOCOL, "SETTINGS_MAX_FRAME_SIZE out of range");
				return;
			}
			s->peer_max_frame = v;
			break;
		default:
			break;   /* MAX_CONCURRENT_STREAMS (we push nothing), the rest advisory or unknown */
		}
	}
	s->settings_seen = true;
	h2_frame(s, 0, H2_SETTINGS, H2_FL_ACK, 0);
	if (++s->acks > H2_ACKS_MAX)
		h2_fail(s, H2E_ENHANCE_YOUR_CALM, "SETTINGS flood");
}

static void h2_on_ping(struct h2_session *s, uint8_t flags, int32_t id, const uint8_t *p,
                       uint32_t len)
{
	if (id != 0) {
		h2_fail(s, H2E_PROTOCOL, "PING on a stream");
		return;
	}
	if (len != 8) {
		h2_fail(s, H2E_FRAME_SIZE, "PING not 8 bytes");
		return;
	}
	if (flags & H2_FL_ACK)
		return;   /* we send no PING */
	memcpy(h2_frame(s, 8, H2_PING, H2_FL_ACK, 0), p, 8);
	if (++s->acks > H2_ACKS_MAX)
		h2_fail(s, H2E_ENHANCE_YOUR_CALM, "PING flood");
}

/* RST_STREAM beyond the bucket (H2_RESET_BURST, refilled H2_RESET_PER_S a
 * second): a client that opens and cancels streams as fast as it can makes
 * us start work it never waits for (CVE-2023-44487). */
static bool h2_reset_allowed(struct h2_session *s)
{
	uint64_t now = uv_now(&s->c->t->loop);
	uint64_t add = (now - s->reset_ms) * H2_RESET_PER_S / 1000;
	if (add) {
		s->reset_tokens = add >= H2_RESET_BURST - s->reset_tokens ? H2_RESET_BURST
		                                                          : s->reset_tokens + (uint32_t)add;
		s->reset_ms = now;
	}
	if (s->reset_tokens == 0)
		return false;
	s->reset_tokens--;
	return true;
}

static void h2_on_rst_stream(struct h2_session *s, int32_t id, const uint8_t *p, uint32_t len)
{
	(void)p;
	if (len != 4) {
		h2_fail(s, H2E_FRAME_SIZE, "RST_STREAM not 4 bytes");
		return;
	}
	if (id == 0 || !(id & 1) || id > s->last_id) {
		h2_fail(s, H2E_PROTOCOL, "RST_STREAM on stream 0 or an idle stream");
		return;
	}
	if (!h2_reset_allowed(s)) {
		h2_fail(s, H2E_ENHANCE_YOUR_CALM, "RST_STREAM flood");
		return;
	}
	struct h2_stream *st = h2_find(s, id);
	if (st)
		h2_stream_free(st);
}

static void h2_on_window_update(struct h2_session *s, int32_t id, const uint8_t *p,
                                uint32_t len)
{
	if (len != 4) {
		h2_fail(s, H2E_FRAME_SIZE, "WINDOW_UPDATE not 4 bytes");
		return;
	}
	uint32_t inc = h2_get32(p) & 0x7fffffff;
	if (id == 0) {
		if (inc == 0)
			h2_fail(s, H2E_PROTOCOL, "WINDOW_UPDATE of 0 on the connection");
		else if (s->send_win + inc > H2_WINDOW_MAX)
			h2_fail(s, H2E_FLOW_CONTROL, "the connection's window over 2^31-1");
		else
			s->send_win += inc;   /* the queued streams go on in the send pass */
		return;
	}
	if (!(id & 1) || id > s->last_id) {
		h2_fail(s, H2E_PROTOCOL, "WINDOW_UPDATE on an idle stream");
		return;
	}
	struct h2_stream *st = h2_find(s, id);
	if (!st || st->local_ended)
		return;   /* closed, or all sent: nothing to do with it */
	if (inc == 0 || st->send_win + inc > H2_WINDOW_MAX) {
		h2_reset(st, inc ? H2E_FLOW_CONTROL : H2E_PROTOCOL);
		h2_stream_free(st);
		return;
	}
	st->send_win += inc;
	if (st->send_win > 0 && st->answered && !st->bad)
		h2_enqueue(st);
}

static void h2_on_goaway(struct h2_session *s, int32_t id, uint32_t len)
{
	if (id != 0) {
		h2_fail(s, H2E_PROTOCOL, "GOAWAY on a stream");
		return;
	}
	if (len < 8) {
		h2_fail(s, H2E_FRAME_SIZE, "GOAWAY shorter than 8 bytes");
		return;
	}
	s->peer_goaway = true;   /* no new streams: close when these are done */
}

static void h2_on_priority(struct h2_session *s, int32_t id, uint32_t len)
{
	if (id == 0) {
		h2_fail(s, H2E_PROTOCOL, "PRIORITY on stream 0");
		return;
	}
	if (len != 5) {
		/* a stream error (RFC 9113 6.3); but no RST_STREAM may name an
		 * idle stream, so there it ends the connection */
		struct h2_stream *st = h2_find(s, id);
		if (st) {
			h2_reset(st, H2E_FRAME_SIZE);
			h2_stream_free(st);
		} else if (id > s->last_id || !(id & 1)) {
			h2_fail(s, H2E_FRAME_SIZE, "PRIORITY not 5 bytes");
		}
	}
	/* else ignored: no RFC 7540 priorities here */
}

/* One whole frame: h is its 9-byte head, p its payload of len bytes. */
static void h2_on_frame(struct h2_session *s, const uint8_t *h, const uint8_t *p, uint32_t len)
{
	uint8_t type = h[3], flags = h[4];
	int32_t id = (int32_t)(h2_get32(h + 5) & 0x7fffffff);
	if (s->hb_id && type != H2_CONTINUATION) {
		h2_fail(s, H2E_PROTOCOL, "a frame inside a header block");
		return;
	}
	if (!s->settings_seen && (type != H2_SETTINGS || (flags & H2_FL_ACK))) {
		h2_fail(s, H2E_PROTOCOL, "the first frame is not SETTINGS");
		return;
	}
	switch (type) {
	case H2_DATA:
		h2_on_data(s, flags, id, p, len);
		break;
	case H2_HEADERS:
		h2_on_headers(s, flags, id, p, len);
		break;
	case H2_PRIORITY:
		h2_on_priority(s, id, len);
		break;
	case H2_RST_STREAM:
		h2_on_rst_stream(s, id, p, len);
		break;
	case H2_SETTINGS:
		h2_on_settings(s, flags, id, p, len);
		break;
	case H2_PUSH_PROMISE:
		h2_fail(s, H2E_PROTOCOL, "PUSH_PROMISE from a client");
		break;
	case H2_PING:
		h2_on_ping(s, flags, id, p, len);
		break;
	case H2_GOAWAY:
		h2_on_goaway(s, id, len);
		break;
	case H2_WINDOW_UPDATE:
		h2_on_window_update(s, id, p, len);
		break;
	case H2_CONTINUATION:
		h2_on_continuation(s, flags, id, p, len);
		break;
	default:
		break;   /* unknown types are ignored (RFC 9113 5.5) */
	}
}

static inline uint32_t h2_frame_len(const uint8_t *h)
{
	return (uint32_t)h[0] << 16 | (uint32_t)h[1] << 8 | h[2];
}

/* The client preface, possibly in pieces (server_h1.c saw it whole, but
 * it is checked here too): the bytes it took, or -1 when it is wrong. */
static ssize_t h2_preface_take(struct h2_session *s, const uint8_t *p, size_t n)
{
	size_t k = H2_PREFACE_LEN - s->preface;
	if (k > n)
		k = n;
	if (memcmp(p, h2_preface + s->preface, k) != 0)
		return -1;
	s->preface += (uint32_t)k;
	return (ssize_t)k;
}

/* Complete the frame in s->pend from p: the bytes taken. */
static size_t h2_pend_fill(struct h2_session *s, const uint8_t *p, size_t n)
{
	size_t taken = 0;
	if (s->pend.len < H2_FRAME_HEAD) {
		size_t k = H2_FRAME_HEAD - s->pend.len;
		if (k > n)
			k = n;
		buf_append(&s->pend, p, k);
		taken = k;
		if (s->pend.len < H2_FRAME_HEAD)
			return taken;
	}
	uint32_t len = h2_frame_len((const uint8_t *)s->pend.data);
	if (len > H2_MAX_FRAME) {
		h2_fail(s, H2E_FRAME_SIZE, "frame over SETTINGS_MAX_FRAME_SIZE");
		return n;
	}
	size_t k = H2_FRAME_HEAD + len - s->pend.len;
	if (k > n - taken)
		k = n - taken;
	buf_append(&s->pend, p + taken, k);
	taken += k;
	if (s->pend.len == H2_FRAME_HEAD + len) {
		const uint8_t *f = (const uint8_t *)s->pend.data;
		h2_on_frame(s, f, f + H2_FRAME_HEAD, len);
		buf_reset(&s->pend);
	}
	return taken;
}

/* What the client sent: whole frames handled where they lie, the cut one
 * at the end kept in s->pend. */
static void h2_recv(struct h2_session *s, const uint8_t *p, size_t n)
{
	if (s->preface < H2_PREFACE_LEN) {
		ssize_t k = h2_preface_take(s, p, n);
		if (k < 0) {
			h2_fail(s, H2E_PROTOCOL, "bad client preface");
			return;
		}
		p += k;
		n -= (size_t)k;
	}
	if (s->pend.len && n) {
		size_t k = h2_pend_fill(s, p, n);
		p += k;
		n -= k;
	}
	while (n >= H2_FRAME_HEAD && !s->dead) {
		uint32_t len = h2_frame_len(p);
		if (len > H2_MAX_FRAME) {
			h2_fail(s, H2E_FRAME_SIZE, "frame over SETTINGS_MAX_FRAME_SIZE");
			return;
		}
		if (n < H2_FRAME_HEAD + len)
			break;
		h2_on_frame(s, p, p + H2_FRAME_HEAD, len);
		p += H2_FRAME_HEAD + len;
		n -= H2_FRAME_HEAD + len;
	}
	if (n && !s->dead)
		buf_append(&s->pend, p, n);
}


/* ------------------------------------------------------------ the connection */

static pthread_once_t h2_cc_once = PTHREAD_ONCE_INIT;

/* The connection turned HTTP/2: a session, the HPACK coders, and our
 * SETTINGS at once. */
static struct h2_session *h2_start(struct conn *c)
{
	struct http_server *srv = c->t->srv;
	pthread_once(&h2_cc_once, h2_cc_init);
	struct h2_session *s = calloc(1, sizeof *s);
	INVARIANT(s != NULL);
	s->c = c;
	s->mem = (nghttp2_mem){.mem_user_data = &s->pool, .malloc = h2_mem_malloc,
	                       .free = h2_mem_free, .calloc = h2_mem_calloc,
	                       .realloc = h2_mem_realloc};
	INVARIANT(nghttp2_hd_inflate_new2(&s->inf, &s->mem) == 0);
	INVARIANT(nghttp2_hd_deflate_new2(&s->def, H2_TABLE_SIZE, &s->mem) == 0);
	buf_init(&s->pend);
	s->send_win = H2_WINDOW;
	s->recv_win = H2_WINDOW;
	s->peer_window = H2_WINDOW;
	s->peer_max_frame = H2_MAX_FRAME;
	s->reset_tokens = H2_RESET_BURST;
	s->reset_ms = uv_now(&c->t->loop);
	c->h2 = s;
	c->dl_kind = DL_NONE;
	h2_write_settings(s);
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
		h2_write_goaway(s, H2E_NO_ERROR);
		s->goaway = true;
	}
	for (struct h2_stream *st = s->streams; st; st = st->next)
		if (st->watch && !st->ended)
			h2_watch_end(st, GRPC_HEALTH_NOT_SERVING);
}

/* Take what is buffered, send what the streams have, write. */
static void h2_service(struct conn *c)
{
	if (c->closed || c->lingering)
		return;
	struct h2_session *s = c->h2 ? c->h2 : h2_start(c);
	c->t->batch_ns = c->t->answer_ns = 0;
	if (!c->writing && c->out.len == 0)
		s->acks = 0;   /* the peer has read what we acknowledged */
	c->in_process = true;
	if (c->rlen > c->rpos && !c->stop_parse && !s->dead)
		h2_recv(s, (const uint8_t *)c->rbuf + c->rpos, c->rlen - c->rpos);
	c->rpos = c->rlen;
	c->in_process = false;
	if (c->t->draining && !s->goaway)
		h2_goaway(s);   /* HTTP/2 begun during a drain, on a connection accepted
		                 * before it: its first streams are served, then it ends */
	/* nothing points into rbuf: give it back after every pass */
	if (c->rbuf && c->rpos == c->rlen)
		server_conn_rbuf_release(c);
	if (!s->dead)
		h2_send_pass(s);
	if (s->dead)
		c->stop_parse = true;   /* a connection error: GOAWAY is written, then the end */
	if ((s->goaway || s->peer_goaway) && s->nstreams == 0 && c->pinned == 0)
		c->stop_parse = true;   /* drained */
	if (c->eof)
		c->stop_parse = true;
	h2_update_deadline(c);
	server_conn_flush(c);
	if (c->closed || c->lingering)
		return;
	/* The pass stops at OUT_BACKLOG_MAX with streams still queued, counting
	 * on the write's end to run it again.  When the socket took the whole
	 * batch at once (the uv backend tries a write in place), there is no
	 * such end, and a client whose windows are open sends nothing that
	 * would wake us: go on at the end of this loop turn. */
	if (!c->writing && s->sendq && !s->dead && s->send_win > 0)
		server_conn_schedule(c);
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
		if (!s->goaway && !s->dead) {
			h2_write_goaway(s, H2E_NO_ERROR);
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
			if (st->x)
				h2_detach(st, true);
			st->x = NULL;
			struct http_header tr[2] = {{"grpc-status", "4", 11, 1},
			                            {"grpc-message", "deadline exceeded", 12, 17}};
			struct http_answer a = {.status = 200, .content_type = "application/grpc",
			                        .trailers = tr, .n_trailers = 2};
			h2_submit(st, &a, false);
		} else if (!st->dispatched) {
			/* the request did not end in time */
			h2_reset(st, H2E_CANCEL);
			h2_stream_free(st);
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
	if (!((struct h2_session *)c->h2)->dead)
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
	nghttp2_hd_inflate_del(s->inf);
	nghttp2_hd_deflate_del(s->def);
	free(s->hc);
	free(s->rs);
	free(s->hc_out);
	buf_free(&s->pend);
	h2_pool_trim(&s->pool, 0);   /* after the coders, which free into it */
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
