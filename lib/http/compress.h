/*
 * http/compress.h -- content codings: Accept-Encoding negotiation, gzip
 * (zlib) and Brotli (libbrotli) for answers, gzip for request bodies.
 *
 * Negotiation follows RFC 9110 section 12.5.3.  An Accept-Encoding value
 * is a list of codings with optional weights ("br;q=1, gzip;q=0.5, *;q=0");
 * names are case-insensitive, "x-gzip" is gzip, "*" stands for every
 * coding the list does not name, and a coding with q=0 is refused.  The
 * choice is the coding we have with the highest weight, Brotli before
 * gzip on a tie.  identity (no coding) competes only when the list names
 * it (or "*" stands for it); otherwise it is the fallback when no coding
 * we have is acceptable -- also when "identity;q=0" refuses it, since
 * RFC 9110 prefers an answer without coding to a 406 there.  No
 * Accept-Encoding at all, or an empty one, means identity.  Elements that
 * do not parse (a bad q-value, a stray parameter) are skipped, never an
 * error: a header we do not understand costs compression, not the answer.
 *
 * What is compressed (struct http_compress_config): answers of at least
 * min_bytes whose content type is in the types list (exact "text/html",
 * or a whole top type, written with "*" as its subtype; parameters after
 * ';' are ignored), with a status of 200..299 but 204, and whose handler
 * set neither Content-Encoding nor Vary itself.
 * Every such answer, compressed or not, carries "Vary: Accept-Encoding",
 * so a cache keeps the variants apart.
 *
 * Two ways in:
 *   - dynamic answers (/metrics, JSON): http_compress_encode is a
 *     struct http_server_config.encode hook; it compresses each answer on
 *     the loop thread, into per-thread buffers (a reused zlib stream; a
 *     Brotli one-shot at a quality for speed).  Bodies under min_bytes
 *     cost one comparison.
 *   - static routes: http_compress_static_new compresses a body once, at
 *     start, with both codings at their best levels, keeps a variant only
 *     when it is smaller, and gives each variant its own strong ETag (the
 *     body's hash, with "-gzip" or "-br" appended).  Its handler picks the
 *     variant per request and answers If-None-Match with 304.
 *
 * Request bodies: http_gunzip inflates a gzip body with a bound on the
 * inflated size, so a small bomb cannot make us allocate gigabytes.
 *
 * Ownership: a static variant set owns copies of its bodies; per-thread
 * encoder state is freed when its thread exits.  Errors are negative errno
 * values.
 */
#ifndef DSYS_HTTP_COMPRESS_H
#define DSYS_HTTP_COMPRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/server.h"

struct buf;

enum http_coding {
	HTTP_CODING_IDENTITY = 0,
	HTTP_CODING_GZIP = 1,
	HTTP_CODING_BR = 2,
};
#define HTTP_CODING_MASK(c)  (1u << (c))
#define HTTP_CODINGS_ALL     (HTTP_CODING_MASK(HTTP_CODING_GZIP) | HTTP_CODING_MASK(HTTP_CODING_BR))

#define HTTP_COMPRESS_MIN_BYTES 1024
#define HTTP_COMPRESS_TYPES \
	"text/*,application/json,application/jsonl,application/javascript," \
	"application/xml,image/svg+xml,application/wasm"
#define HTTP_COMPRESS_MAX_TYPES 32

/* The name as sent in Content-Encoding: "gzip", "br", or "identity". */
const char *http_coding_name(enum http_coding c);

/* Parse a codings list "br,gzip" (or "none": 0) into a mask; -EINVAL. */
int http_codings_parse(const char *s, unsigned *mask);

/*
 * The weights an Accept-Encoding value gives, in thousandths (q=0.5 is
 * 500): for gzip, br, identity and "*", each -1 when the list does not
 * name it.  Several Accept-Encoding fields are one list: call again with
 * each, on the same struct (init it first).
 */
struct http_accept_encoding {
	int gzip, br, identity, star;
	bool present;                    /* some Accept-Encoding was seen */
};
void http_accept_encoding_init(struct http_accept_encoding *ae);
void http_accept_encoding_parse(struct http_accept_encoding *ae, const char *value, size_t len);

/* The coding to answer with, among the codings in mask (see above). */
enum http_coding http_accept_encoding_choose(const struct http_accept_encoding *ae, unsigned mask);

/* Both steps over every Accept-Encoding field of a request. */
enum http_coding http_compress_negotiate(const struct http_request *req, unsigned mask);

struct http_compress_config {
	unsigned codings;                /* HTTP_CODING_MASK bits; 0: never compress */
	size_t min_bytes;                /* smaller bodies go as they are */
	char types[HTTP_COMPRESS_MAX_TYPES][64]; /* lowercase; subtype "*": the whole top type */
	unsigned ntypes;
	int gzip_level;                  /* dynamic answers: 1..9 (default 5) */
	int br_quality;                  /* dynamic answers: 0..11 (default 4) */
};

/* Defaults: every coding, HTTP_COMPRESS_MIN_BYTES, HTTP_COMPRESS_TYPES. */
void http_compress_config_init(struct http_compress_config *cc);

/* Replace the types with a comma-separated list; -EINVAL (nothing changed)
 * on an empty or malformed item or more than HTTP_COMPRESS_MAX_TYPES. */
int http_compress_types_parse(struct http_compress_config *cc, const char *list);

/* Is an answer of this content type (NULL: no) and size worth compressing? */
bool http_compress_wanted(const struct http_compress_config *cc, const char *content_type,
                          size_t len);

/* One-shot compression, appended to out: 0 or -ENOMEM/-EINVAL. */
int http_gzip(const void *in, size_t len, int level, struct buf *out);
int http_brotli(const void *in, size_t len, int quality, struct buf *out);

/* Inflate a gzip body into out (appended), refusing to produce more than
 * max bytes: 0, -EMSGSIZE (it inflates past max), -EBADMSG (not gzip, or
 * corrupt, or cut short, or bytes after its end). */
int http_gunzip(const void *in, size_t len, size_t max, struct buf *out);

/*
 * The server's encode hook (struct http_server_config.encode, with the
 * config as arg; cfg must outlive the server).  Compresses answers that
 * http_compress_wanted accepts when the request asks for a coding we have;
 * adds Vary (and Content-Encoding) to the handler's header lines.
 */
bool http_compress_encode(struct http_exchange *ex, int status, const char *content_type,
                          const char **headers, const void **body, size_t *len, void *arg);

/* A static body, compressed once (see above).  Returns NULL with errno on
 * failure.  The body is copied. */
struct http_compress_static;
struct http_compress_static *http_compress_static_new(const struct http_compress_config *cc,
	const char *content_type, const void *body, size_t len);
void http_compress_static_free(struct http_compress_static *s);   /* NULL is a no-op */
/* Bytes of a variant (for tests and logs); 0 when it was not kept. */
size_t http_compress_static_size(const struct http_compress_static *s, enum http_coding c);
/* A route handler answering with s (the arg). */
void http_compress_static_handle(struct http_exchange *ex, void *arg);

#endif
