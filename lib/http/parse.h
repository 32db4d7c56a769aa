/*
 * http/parse.h -- one strict HTTP/1.1 message parser for both directions.
 *
 * Requests in the servers (dsys-serve, dsys-counter, later the Raft node and
 * the trace collector) and responses in dsys-bench go through the same code:
 * the same field-line grammar, the same Content-Length and Transfer-Encoding
 * rules, the same chunked decoder.
 *
 * The parser is stateless for the message head: call it with everything
 * received so far; it returns 0 until the head is complete, and then the
 * head's length.  Heads are bounded (max_header_bytes), so re-scanning a
 * partial head is cheap and the parser keeps no state between calls; a
 * request split at any byte parses the same as one that arrived whole.  The
 * body is framed separately by struct http_body, which does keep state,
 * because bodies are large and arrive in many reads.
 *
 * Strictness (RFC 9112; where the RFC leaves a recipient a choice, the
 * strict one): lines end in CRLF only -- a bare LF or bare CR anywhere in
 * the head or the chunked framing is an error; no obs-fold; no whitespace
 * between a field name and its colon; field names are tokens; field values
 * hold no CTL but HTAB, no NUL; the request target holds only RFC 3986
 * characters with valid percent-escapes and no fragment, origin-form for
 * any method, absolute-form (scheme "://" ...) too, authority-form only
 * for CONNECT and "*" only for OPTIONS; HTTP/1.2 and up parse as 1.1,
 * other majors are EVERSION; Content-Length with Transfer-Encoding is an
 * error; duplicate Content-Length values that differ are an error (equal
 * duplicates, including a comma list of equal values, are merged);
 * Transfer-Encoding other than a single final "chunked" is
 * HTTP_PARSE_ENOTIMPL (501), chunked twice or Transfer-Encoding in an
 * HTTP/1.0 message is EINVAL; an HTTP/1.1 request needs exactly one Host;
 * chunk extensions must follow their grammar (token names, token or
 * quoted-string values).
 *
 * All pointers in the parsed structs point into the caller's buffer; they
 * stay valid while that buffer is unchanged.  Nothing here allocates.
 * Thread-safety: no global state; any number of threads may parse at once.
 */
#ifndef DSYS_HTTP_PARSE_H
#define DSYS_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Errors: negative return values.  http_parse_status() maps each to the
 * HTTP status a server answers with; http_parse_strerror() to a short
 * lowercase text for logs and JSON error bodies. */
enum http_parse_error {
	HTTP_PARSE_EINVAL = -1,     /* malformed syntax: 400 */
	HTTP_PARSE_EURI = -2,       /* request target over max_uri: 414 */
	HTTP_PARSE_EHEADERS = -3,   /* head over max_header_bytes or too many fields: 431 */
	HTTP_PARSE_EVERSION = -4,   /* HTTP major version other than 1: 505 */
	HTTP_PARSE_ENOTIMPL = -5,   /* Transfer-Encoding other than chunked: 501 */
	HTTP_PARSE_EBODY = -6,      /* body over max_body (a Content-Length over it
	                               already at the head): 413 */
	HTTP_PARSE_EHOST = -7,      /* HTTP/1.1 request without Host; two Host fields
	                               (any version); a Host not uri-host[:port]: 400 */
	HTTP_PARSE_ELENGTH = -8,    /* bad or conflicting Content-Length, CL with TE: 400 */
	HTTP_PARSE_ECHUNK = -9,     /* bad chunked framing: 400 */
	HTTP_PARSE_EMETHOD = -10,   /* method not a token / too long: 400 (501 not used) */
};

#define HTTP_MAX_HEADERS 64     /* fields kept per message; more is EHEADERS */
#define HTTP_MAX_METHOD 32      /* method bytes; longer is EMETHOD */
#define HTTP_MAX_EMPTY_LINES 8  /* empty lines skipped before a request-line */

struct http_limits {
	size_t max_uri;             /* request-target bytes; default 8 KiB */
	size_t max_header_bytes;    /* whole head incl. request line; default 8 KiB */
	uint64_t max_body;          /* decoded body bytes; default 1 MiB */
};

#define HTTP_LIMITS_DEFAULT {8192, 8192, 1048576}

/*
 * The request target is bounded by max_uri alone (so a target over max_uri
 * is a 414 even when max_uri >= max_header_bytes); the whole head, request
 * line included, by max_header_bytes.  A read buffer of
 * http_parse_buffer_size(lim) bytes is always enough: with that many bytes
 * received, http_parse_request/response never return 0.  lim may be NULL
 * in every function here: the defaults.
 */
size_t http_parse_buffer_size(const struct http_limits *lim);

enum http_method {
	HTTP_OTHER = 0, /* a valid token we have no name for: the handler decides */
	HTTP_GET, HTTP_HEAD, HTTP_POST, HTTP_PUT, HTTP_DELETE,
	HTTP_OPTIONS, HTTP_PATCH, HTTP_TRACE, HTTP_CONNECT,
};

struct http_header {
	const char *name;           /* as received; compare with http_header_is() */
	const char *value;          /* leading and trailing OWS stripped */
	uint32_t name_len;
	uint32_t value_len;
};

/* How the body of a message is framed (RFC 9112 section 6.3). */
enum http_body_kind {
	HTTP_BODY_NONE = 0,         /* no body: no CL/TE, HEAD response, 1xx/204/304 */
	HTTP_BODY_LENGTH,           /* Content-Length bytes */
	HTTP_BODY_CHUNKED,          /* chunked transfer coding */
	HTTP_BODY_EOF,              /* responses only: until the connection closes */
};

/* The fields both directions share. */
struct http_message {
	struct http_header headers[HTTP_MAX_HEADERS];
	uint32_t n_headers;
	uint8_t version_minor;      /* 0 or 1 (HTTP/1.x) */
	bool keep_alive;            /* after this message, per version and Connection */
	bool expect_continue;       /* request had Expect: 100-continue */
	bool upgrade;               /* Connection: upgrade was present */
	enum http_body_kind body_kind;  /* Content-Length: 0 gives HTTP_BODY_NONE */
	uint64_t content_length;    /* valid when body_kind == HTTP_BODY_LENGTH; also
	                               set for HEAD/304 responses that carry one */
	size_t head_len;            /* bytes of the head, through the blank line */
};

struct http_request {
	struct http_message m;
	enum http_method method;
	const char *method_str;
	const char *target;         /* the request-target as received */
	const char *path;           /* target up to '?' (equal to target for '*',
	                               absolute-form and CONNECT's authority-form) */
	const char *query;          /* after '?', or NULL */
	const char *host;           /* Host field value, or NULL */
	uint32_t method_len, target_len, path_len, query_len, host_len;
};

struct http_response {
	struct http_message m;
	int status;                 /* 100..999 */
	const char *reason;
	uint32_t reason_len;
};

/*
 * Parse a request head from buf[0..len).  Returns the head length (> 0)
 * when complete, 0 when more bytes are needed, or a negative
 * enum http_parse_error.  A complete but over-limit head is an error, and
 * so is an incomplete one that is already over a limit (so a client cannot
 * hold a connection by sending an endless head).  Up to
 * HTTP_MAX_EMPTY_LINES empty lines (CRLF or LF) before the request-line
 * are skipped, as RFC 9112 section 2.2 says a server SHOULD; they are part
 * of the returned length and of m.head_len (which may so pass
 * max_header_bytes by at most 2 * HTTP_MAX_EMPTY_LINES, room that
 * http_parse_buffer_size counts), and one more is a 400.
 */
int http_parse_request(const char *buf, size_t len, const struct http_limits *lim,
                       struct http_request *req);

/*
 * Parse a response head.  request_method is the method of the request it
 * answers (HEAD and CONNECT change the framing).  1xx responses are parsed
 * as complete heads with HTTP_BODY_NONE; the caller skips them and parses
 * again.
 */
int http_parse_response(const char *buf, size_t len, const struct http_limits *lim,
                        enum http_method request_method, struct http_response *res);

/* Case-insensitive field-name comparison: http_header_is(h, "content-type"). */
bool http_header_is(const struct http_header *h, const char *lower_name);

/* First field with that name (lowercase), or NULL. */
const struct http_header *http_message_header(const struct http_message *m,
                                              const char *lower_name);

/* Does a comma-separated field value contain token tok (case-insensitive)? */
bool http_value_has_token(const char *value, size_t len, const char *lower_tok);

int http_parse_status(int err);          /* 400, 413, 414, 431, 501, 505 */
const char *http_parse_strerror(int err);
const char *http_method_name(enum http_method m);    /* "GET", ... "" for OTHER */
const char *http_status_reason(int status);          /* "OK", "Not Found", ...; "" unregistered */

/*
 * Body framing.  Initialise from a parsed message, then feed bytes as they
 * arrive.  The decoded payload is written in place to the front of the
 * input (chunk-size lines and CRLFs removed), so a server can hand the
 * handler one contiguous body without copying it again.
 *
 *   struct http_body b;
 *   http_body_init(&b, &req.m, lim.max_body);
 *   r = http_body_feed(&b, p, n, &consumed, &data_len);
 *
 * http_body_feed consumes input bytes (*consumed, which may be fewer than n
 * when the body ends inside the input: the rest is the next message), and
 * sets *data_len to the payload bytes now at p[0..data_len).  Returns 1 when
 * the body is complete, 0 when more input is needed, or a negative error
 * (HTTP_PARSE_EBODY past max_body, HTTP_PARSE_ECHUNK for bad framing).
 * For HTTP_BODY_EOF, http_body_feed never returns 1: the caller ends the
 * body at connection close.  Trailer fields after the last chunk are
 * checked for syntax and discarded; they and chunk extensions count
 * against max_body too (separately from the payload).  After an error,
 * every later call returns the same error.
 */
struct http_body {
	enum http_body_kind kind;
	uint8_t state;              /* chunked decoder state; private */
	uint8_t size_digits;        /* hex digits seen in this chunk-size; private */
	uint32_t line_len;          /* bytes in current ext/trailer line; private */
	uint64_t remaining;         /* bytes left in this chunk or the whole body */
	uint64_t total;             /* payload bytes so far */
	uint64_t max;               /* limit on total (and on trailer bytes) */
	uint64_t meta;              /* framing bytes without payload (leading zeros,
	                               extensions, trailers), held to max; private */
};

void http_body_init(struct http_body *b, const struct http_message *m, uint64_t max_body);
int http_body_feed(struct http_body *b, char *p, size_t n, size_t *consumed, size_t *data_len);

#endif
