/*
 * http/grpc.c -- gRPC's message framing, status trailers and the health
 * service, on top of lib/http/server's protocol-neutral answer.
 *
 * Nothing here knows HTTP/2's frames: a call is an exchange whose body is
 * the request's messages, and an answer is a struct http_answer with
 * trailers.  server_h2.c (which alone carries trailers) turns that into
 * HEADERS, DATA and a trailing HEADERS frame, honours grpc-timeout, and
 * maps plain HTTP errors to gRPC ones (grpc_status_from_http).
 */
#include <string.h>

#include "base/buf.h"
#include "base/invariant.h"
#include "http/grpc.h"
#include "http/grpc_health.pb-c.h"
#include "http/server.h"

bool grpc_is_call(const struct http_exchange *ex)
{
	const struct http_header *h = http_message_header(&ex->req.m, "content-type");
	if (!h || h->value_len < 16 || strncmp(h->value, "application/grpc", 16) != 0)
		return false;
	return h->value_len == 16 || h->value[16] == '+' || h->value[16] == ';';
}

int grpc_next_message(const struct http_exchange *ex, size_t *off, const uint8_t **msg, size_t *len)
{
	const uint8_t *p = (const uint8_t *)ex->body;
	size_t n = ex->body_len, o = *off;
	if (o == n)
		return 0;
	if (n - o < GRPC_PREFIX)
		return -GRPC_INVALID_ARGUMENT;
	if (p[o] != 0)
		return -GRPC_UNIMPLEMENTED;   /* compressed: we offered no encoding */
	size_t l = (size_t)p[o + 1] << 24 | (size_t)p[o + 2] << 16 | (size_t)p[o + 3] << 8 | p[o + 4];
	if (l > n - o - GRPC_PREFIX)
		return -GRPC_INVALID_ARGUMENT;
	*msg = p + o + GRPC_PREFIX;
	*len = l;
	*off = o + GRPC_PREFIX + l;
	return 1;
}

int grpc_unary_message(const struct http_exchange *ex, const uint8_t **msg, size_t *len)
{
	size_t off = 0;
	int r = grpc_next_message(ex, &off, msg, len);
	if (r == 0)
		return GRPC_INVALID_ARGUMENT;  /* no message at all */
	if (r < 0)
		return -r;
	if (off != ex->body_len)
		return GRPC_INVALID_ARGUMENT;  /* more than one message in a unary call */
	return 0;
}

void grpc_frame(struct buf *b, const void *msg, size_t len)
{
	uint8_t pre[GRPC_PREFIX] = {0, (uint8_t)(len >> 24), (uint8_t)(len >> 16),
	                            (uint8_t)(len >> 8), (uint8_t)len};
	buf_append(b, pre, sizeof pre);
	if (len)
		buf_append(b, msg, len);
}

/* grpc-message is percent-encoded: bytes outside printable ASCII, and '%'. */
static size_t grpc_percent_encode(char *dst, size_t cap, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (; *s && o + 4 < cap; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch >= 0x20 && ch <= 0x7e && ch != '%') {
			dst[o++] = (char)ch;
		} else {
			dst[o++] = '%';
			dst[o++] = hex[ch >> 4];
			dst[o++] = hex[ch & 15];
		}
	}
	dst[o] = '\0';
	return o;
}

/* grpc-status (and grpc-message) as trailers into tr[2], with their
 * text in code[12] and msg[512]; how many. */
static uint32_t grpc_trailers(struct http_header tr[2], char *code, char *msg, int status,
                              const char *message)
{
	int n = 0;
	unsigned u = status < 0 ? GRPC_UNKNOWN : (unsigned)status;
	if (u > 99)
		u = GRPC_UNKNOWN;
	if (u >= 10)
		code[n++] = (char)('0' + u / 10);
	code[n++] = (char)('0' + u % 10);
	code[n] = '\0';
	tr[0] = (struct http_header){.name = "grpc-status", .name_len = 11, .value = code,
	                             .value_len = (uint32_t)n};
	if (!message)
		return 1;
	size_t ml = grpc_percent_encode(msg, 512, message);
	tr[1] = (struct http_header){.name = "grpc-message", .name_len = 12, .value = msg,
	                             .value_len = (uint32_t)ml};
	return 2;
}

void grpc_answer(struct http_exchange *ex, const void *framed, size_t len, int status,
                 const char *message)
{
	char code[12], msg[512];
	struct http_header tr[2];
	uint32_t ntr = grpc_trailers(tr, code, msg, status, message);
	struct http_answer a = {.status = 200, .content_type = "application/grpc",
	                        .body = framed, .len = len, .trailers = tr, .n_trailers = ntr};
	http_answer(ex, &a);
}

void grpc_stream_begin(struct http_exchange *ex)
{
	struct http_answer a = {.status = 200, .content_type = "application/grpc"};
	http_stream_begin(ex, &a);
}

int grpc_stream_send(struct http_exchange *ex, const void *msg, size_t len)
{
	uint8_t pre[GRPC_PREFIX] = {0, (uint8_t)(len >> 24), (uint8_t)(len >> 16),
	                            (uint8_t)(len >> 8), (uint8_t)len};
	int r = http_stream_write(ex, pre, sizeof pre);
	if (r == 0 && len)
		r = http_stream_write(ex, msg, len);
	return r;
}

void grpc_stream_end(struct http_exchange *ex, int status, const char *message)
{
	char code[12], msg[512];
	struct http_header tr[2];
	uint32_t ntr = grpc_trailers(tr, code, msg, status, message);
	http_stream_end(ex, tr, ntr);
}

void grpc_answer_message(struct http_exchange *ex, const void *msg, size_t len)
{
	struct buf *b = http_scratch(ex);
	grpc_frame(b, msg, len);
	grpc_answer(ex, b->data, b->len, GRPC_OK, NULL);
}

const char *grpc_status_name(int status)
{
	/* the names grpc-go's codes print as, which dashboards group by */
	static const char *const names[] = {
		"OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
		"AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
		"Aborted", "OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss",
		"Unauthenticated",
	};
	if (status < 0 || status >= (int)(sizeof names / sizeof names[0]))
		return "Unknown";
	return names[status];
}

int grpc_status_from_http(int s)
{
	switch (s) {
	case 400: return GRPC_INVALID_ARGUMENT;
	case 401: return GRPC_UNAUTHENTICATED;
	case 403: return GRPC_PERMISSION_DENIED;
	case 404: case 405: case 501: return GRPC_UNIMPLEMENTED;
	case 408: case 504: return GRPC_DEADLINE_EXCEEDED;
	case 409: return GRPC_ALREADY_EXISTS;
	case 412: return GRPC_FAILED_PRECONDITION;
	case 413: case 431: return GRPC_RESOURCE_EXHAUSTED;
	case 429: case 502: case 503: return GRPC_UNAVAILABLE;
	case 500: return GRPC_INTERNAL;
	default: return s >= 200 && s < 300 ? GRPC_OK : GRPC_UNKNOWN;
	}
}

int grpc_parse_timeout(const char *v, size_t len, uint64_t *ms)
{
	if (len < 2 || len > 9)
		return -1;
	uint64_t n = 0;
	for (size_t i = 0; i + 1 < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		n = n * 10 + (uint64_t)(v[i] - '0');
	}
	switch (v[len - 1]) {
	case 'H': *ms = n * 3600000u; break;
	case 'M': *ms = n * 60000u; break;
	case 'S': *ms = n * 1000u; break;
	case 'm': *ms = n; break;
	case 'u': *ms = (n + 999) / 1000; break;
	case 'n': *ms = (n + 999999) / 1000000; break;
	default: return -1;
	}
	return 0;
}

/* ------------------------------------------------------------ grpc.health.v1 */

#define HEALTH_PREFIX "/grpc.health.v1.Health/"

int grpc_health_service(const struct http_exchange *ex)
{
	const uint8_t *msg;
	size_t len;
	int st = grpc_unary_message(ex, &msg, &len);
	if (st != 0)
		return -st;
	Grpc__Health__V1__HealthCheckRequest *req =
		grpc__health__v1__health_check_request__unpack(NULL, len, msg);
	if (!req)
		return -GRPC_INVALID_ARGUMENT;
	bool known = !req->service || req->service[0] == '\0';
	grpc__health__v1__health_check_request__free_unpacked(req, NULL);
	return known ? 1 : 0;
}

size_t grpc_health_frame(int serving_status, uint8_t *out)
{
	Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
	resp.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)serving_status;
	size_t n = grpc__health__v1__health_check_response__get_packed_size(&resp);
	INVARIANT(n + GRPC_PREFIX <= GRPC_HEALTH_FRAME_MAX);
	out[0] = 0;
	out[1] = out[2] = out[3] = 0;
	out[4] = (uint8_t)n;
	grpc__health__v1__health_check_response__pack(&resp, out + GRPC_PREFIX);
	return n + GRPC_PREFIX;
}

bool grpc_health_serve(struct http_exchange *ex)
{
	const struct http_request *r = &ex->req;
	size_t pl = sizeof HEALTH_PREFIX - 1;
	if (r->path_len != pl + 5 || memcmp(r->path, HEALTH_PREFIX "Check", pl + 5) != 0)
		return false;   /* Watch is the core's (server_h2.c): it streams */
	int known = grpc_health_service(ex);
	if (known < 0) {
		grpc_answer(ex, NULL, 0, -known, "malformed HealthCheckRequest");
		return true;
	}
	if (!known) {
		grpc_answer(ex, NULL, 0, GRPC_NOT_FOUND, "unknown service");
		return true;
	}
	uint8_t out[GRPC_HEALTH_FRAME_MAX];
	size_t n = grpc_health_frame(http_thread_draining(ex->thread) ? GRPC_HEALTH_NOT_SERVING
	                                                                : GRPC_HEALTH_SERVING, out);
	grpc_answer(ex, out, n, GRPC_OK, NULL);
	return true;
}

/* Registered at startup, read by the loop threads afterwards: no lock. */
static const char *bidi_paths[GRPC_BIDI_MAX];
static size_t n_bidi;

void grpc_bidi_path(const char *path)
{
	INVARIANT(n_bidi < GRPC_BIDI_MAX);
	bidi_paths[n_bidi++] = path;
}

bool grpc_bidi_is(const char *path, size_t len)
{
	for (size_t i = 0; i < n_bidi; i++)
		if (strlen(bidi_paths[i]) == len && memcmp(bidi_paths[i], path, len) == 0)
			return true;
	return false;
}
