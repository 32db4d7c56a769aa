/*
 * http/route.c -- method + path (exact or prefix) to a handler.
 *
 * Routes live in one array, filled before the server runs and only read
 * afterwards, so every loop thread looks up without a lock.  Next to the
 * array the router keeps an index, rebuilt on every add (start-up only):
 * an open-addressing table of the distinct exact paths, each slot heading
 * the chain of its routes (one per method), and the prefix routes sorted
 * longest first.  A path's key is its length and two 8-byte loads (its
 * first and last bytes, overlapping for short paths), so hashing costs the
 * same for any path, and for paths of up to 16 bytes the key is the path:
 * equal keys mean equal paths with no memcmp.  A lookup is one probe
 * sequence and a walk over one path's methods; the prefix list is walked
 * only when the exact path has no route for the method (most requests
 * never touch it).  Unmatched requests (404, 405, OPTIONS) take the old
 * full scan: they are rare and the Allow line needs every route anyway.
 * The answer is the one the full scan gives, by construction: an exact
 * route beats any prefix route, a longer prefix beats a shorter one, and
 * HEAD falls back to the GET route unless a HEAD route matches at least
 * as well.
 *
 * Each route carries its own http_route_stats, so the server counts every
 * answer under route="<path as registered>" without looking anything up.
 * Paths the router does not know count under route="unmatched": the label
 * set stays bounded whatever clients send.
 *
 * A path with a '%' is normalised first (normalize_path): escapes of
 * unreserved characters are decoded in place, so "/%68ello" finds
 * "/hello".  The check is one memchr; paths without '%' pay nothing more.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/buf.h"
#include "http/route.h"
#include "http/url.h"
#include "base/invariant.h"
#include "obs/metrics.h"

struct route {
	char *method;              /* owned */
	size_t method_len;
	enum http_method mid;      /* method as the parser names it; HTTP_OTHER else */
	struct route *next_same;   /* next exact route with the same path (index) */
	char *path;                /* owned */
	size_t path_len;
	bool prefix;
	http_handler_fn fn;
	void *arg;
	struct http_route_stats stats;
	/* static bodies */
	char *ctype;               /* owned */
	const void *body;          /* borrowed */
	size_t body_len;
};

/* One distinct exact path in the index: its key and its routes. */
struct path_slot {
	uint64_t a, b;             /* path_key() of the path */
	size_t len;                /* 0: empty slot (paths start with '/') */
	struct route *first;       /* chain through next_same, insertion order */
};

/* Twice the most routes, a power of two: the table is at most half full. */
#define SLOTS (2 * HTTP_ROUTER_MAX_ROUTES)

struct http_router {
	struct metrics *reg;
	struct route *routes[HTTP_ROUTER_MAX_ROUTES];
	size_t n;
	struct http_route_stats unmatched;
	/* the index, rebuilt by index_build after every add */
	struct path_slot slots[SLOTS];
	struct route *prefixes[HTTP_ROUTER_MAX_ROUTES];   /* longest first */
	size_t n_prefixes;
};

struct http_router *http_router_new(struct metrics *reg)
{
	struct http_router *r = calloc(1, sizeof *r);
	INVARIANT(r != NULL);
	r->reg = reg;
	http_route_stats_init(&r->unmatched, reg, "unmatched");
	return r;
}

void http_router_free(struct http_router *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++) {
		free(r->routes[i]->method);
		free(r->routes[i]->path);
		free(r->routes[i]->ctype);
		free(r->routes[i]);
	}
	free(r);
}

static bool is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}


/*
 * The key of a path: two loads that between them hold every byte of a
 * path of up to 16 bytes (overlapping when shorter), without reading past
 * its end.  Paths up to 16 bytes with equal length and key are equal.
 */
static inline void path_key(const char *p, size_t n, uint64_t *a, uint64_t *b)
{
	if (n >= 8) {
		memcpy(a, p, 8);
		memcpy(b, p + n - 8, 8);
	} else if (n >= 4) {
		uint32_t x, y;
		memcpy(&x, p, 4);
		memcpy(&y, p + n - 4, 4);
		*a = x;
		*b = y;
	} else {
		*a = n ? (uint64_t)(unsigned char)p[0] | (uint64_t)(unsigned char)p[n / 2] << 8 |
		         (uint64_t)(unsigned char)p[n - 1] << 16 : 0;
		*b = 0;
	}
}

static inline size_t path_hash(uint64_t a, uint64_t b, size_t n)
{
	uint64_t h = (a * 0x9e3779b97f4a7c15ULL) ^ (b * 0xc2b2ae3d27d4eb4fULL) ^ n;
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ULL;
	return (size_t)(h >> 32) & (SLOTS - 1);
}

/* The slot holding exact path p, or NULL. */
static inline const struct path_slot *index_find(const struct http_router *r,
                                                 const char *p, size_t n)
{
	uint64_t a, b;
	path_key(p, n, &a, &b);
	for (size_t i = path_hash(a, b, n);; i = (i + 1) & (SLOTS - 1)) {
		const struct path_slot *s = &r->slots[i];
		if (s->len == 0)
			return NULL;
		if (s->len == n && s->a == a && s->b == b &&
		    (n <= 16 || !memcmp(s->first->path + 8, p + 8, n - 16)))
			return s;
	}
}

/* Rebuild the index from the route array (start-up only). */
static void index_build(struct http_router *r)
{
	memset(r->slots, 0, sizeof r->slots);
	r->n_prefixes = 0;
	for (size_t k = 0; k < r->n; k++) {
		struct route *rt = r->routes[k];
		rt->next_same = NULL;
		if (rt->prefix) {
			/* insertion sort, longest first, equal lengths in add order */
			size_t j = r->n_prefixes++;
			while (j > 0 && r->prefixes[j - 1]->path_len < rt->path_len) {
				r->prefixes[j] = r->prefixes[j - 1];
				j--;
			}
			r->prefixes[j] = rt;
			continue;
		}
		uint64_t a, b;
		path_key(rt->path, rt->path_len, &a, &b);
		size_t i = path_hash(a, b, rt->path_len);
		for (;; i = (i + 1) & (SLOTS - 1)) {
			struct path_slot *s = &r->slots[i];
			if (s->len == 0) {
				s->a = a;
				s->b = b;
				s->len = rt->path_len;
				s->first = rt;
				break;
			}
			if (s->len == rt->path_len && !memcmp(s->first->path, rt->path, s->len)) {
				struct route **tail = &s->first;
				while (*tail)
					tail = &(*tail)->next_same;
				*tail = rt;
				break;
			}
		}
	}
	INVARIANT(r->n_prefixes <= r->n);
}

static enum http_method method_id(const char *m)
{
	for (int i = HTTP_GET; i <= HTTP_CONNECT; i++)
		if (!strcmp(m, http_method_name((enum http_method)i)))
			return (enum http_method)i;
	return HTTP_OTHER;
}

static int route_add(struct http_router *r, const char *method, const char *path, bool prefix,
                     http_handler_fn fn, void *arg, struct route **out)
{
	if (!method || !*method || !path || path[0] != '/' || !fn)
		return -EINVAL;
	for (const char *p = method; *p; p++)
		if (!is_tchar((unsigned char)*p))
			return -EINVAL;
	for (const char *p = path; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == '?' || *p == '#' || *p == 0x7f)
			return -EINVAL;
	for (size_t i = 0; i < r->n; i++) {
		struct route *o = r->routes[i];
		if (o->prefix == prefix && !strcmp(o->method, method) && !strcmp(o->path, path))
			return -EEXIST;
	}
	if (r->n == HTTP_ROUTER_MAX_ROUTES)
		return -ENOSPC;
	struct route *rt = calloc(1, sizeof *rt);
	INVARIANT(rt != NULL);
	rt->method = strdup(method);
	rt->path = strdup(path);
	INVARIANT(rt->method && rt->path);
	rt->method_len = strlen(method);
	rt->mid = method_id(method);
	rt->path_len = strlen(path);
	rt->prefix = prefix;
	rt->fn = fn;
	rt->arg = arg;
	http_route_stats_init(&rt->stats, r->reg, rt->path);
	r->routes[r->n++] = rt;
	index_build(r);
	if (out)
		*out = rt;
	return 0;
}

int http_route_add(struct http_router *r, const char *method, const char *path,
                   http_handler_fn fn, void *arg)
{
	return route_add(r, method, path, false, fn, arg, NULL);
}

int http_route_add_prefix(struct http_router *r, const char *method, const char *prefix,
                          http_handler_fn fn, void *arg)
{
	return route_add(r, method, prefix, true, fn, arg, NULL);
}

/* A static body always exists, so "If-None-Match: *" on GET or HEAD is a
 * 304 (RFC 9110 section 13.1.2).  No entity tags are sent, so no other
 * If-None-Match value can match. */
static void static_handler(struct http_exchange *ex, void *arg)
{
	const struct route *rt = arg;
	if (ex->req.method == HTTP_GET || ex->req.method == HTTP_HEAD) {
		/* the first If-None-Match, as http_message_header finds it, with
		 * the length compared before the name (most requests have none) */
		const struct http_message *m = &ex->req.m;
		for (uint32_t i = 0; i < m->n_headers; i++) {
			const struct http_header *h = &m->headers[i];
			if (h->name_len != 13 || !http_header_is(h, "if-none-match"))
				continue;
			if (h->value_len == 1 && h->value[0] == '*') {
				http_respond(ex, 304, NULL, NULL, 0);
				return;
			}
			break;
		}
	}
	http_respond(ex, 200, rt->ctype, rt->body, rt->body_len);
}

int http_route_add_static(struct http_router *r, const char *method, const char *path,
                          const char *content_type, const void *body, size_t len)
{
	struct route *rt;
	int e = route_add(r, method, path, false, static_handler, NULL, &rt);
	if (e < 0)
		return e;
	rt->arg = rt;
	rt->ctype = content_type ? strdup(content_type) : NULL;
	rt->body = body;
	rt->body_len = len;
	return 0;
}

static void health_handler(struct http_exchange *ex, void *arg)
{
	(void)arg;
	static const char body[] = "{\"status\":\"ok\"}";
	http_respond(ex, 200, "application/json", body, sizeof body - 1);
}

int http_route_add_health(struct http_router *r)
{
	return http_route_add(r, "GET", "/health", health_handler, NULL);
}

static void metrics_handler(struct http_exchange *ex, void *arg)
{
	struct buf *b = http_scratch(ex);
	metrics_render(arg, b);
	http_respond(ex, 200, METRICS_CONTENT_TYPE, b->data, b->len);
}

int http_route_add_metrics(struct http_router *r, struct metrics *reg)
{
	if (!reg)
		return -EINVAL;
	return http_route_add(r, "GET", "/metrics", metrics_handler, reg);
}

/* The path to match: the origin-form path, or the path of an absolute-form
 * target ("http://host:port/path?q" -> "/path"). */
static const char *match_path(const struct http_request *req, size_t *len)
{
	const char *p = req->path;
	size_t n = req->path_len;
	if (n && p[0] != '/') {
		const char *s = memchr(p, ':', n);
		if (s && (size_t)(s - p) + 3 <= n && s[1] == '/' && s[2] == '/') {
			const char *end = p + n;
			const char *q = s + 3;
			while (q < end && *q != '/' && *q != '?')
				q++;
			if (q < end && *q == '/') {
				const char *qm = memchr(q, '?', (size_t)(end - q));
				*len = (size_t)((qm ? qm : end) - q);
				return q;
			}
			*len = 1;
			return "/";
		}
	}
	*len = n;
	return p;
}

/*
 * RFC 3986 6.2.2.2: "/%68ello" is "/hello".  Decode the escapes of
 * unreserved characters before matching, in place in the request's
 * target (decoding only shrinks it, and the target lives in the
 * connection's buffer until the answer), closing the gap so the query
 * and target_len stay right.  Reserved escapes (%2F) stay: they would
 * change the path's meaning.  Only paths with a '%' get here.
 */
static void normalize_path(struct http_exchange *ex, const char **pp, size_t *n)
{
	struct http_request *req = &ex->req;
	char *p = (char *)*pp;   /* points into req->target, a writable buffer */
	INVARIANT(p >= req->target && p + *n <= req->target + req->target_len);
	size_t m = url_normalize_path(p, *n);
	if (m == *n)
		return;
	size_t shift = *n - m;
	const char *tail = p + *n, *tend = req->target + req->target_len;
	memmove(p + m, tail, (size_t)(tend - tail));
	req->target_len -= (uint32_t)shift;
	req->path_len -= (uint32_t)shift;
	if (req->query && req->query >= tail)
		req->query -= shift;
	*n = m;
}

static bool path_matches(const struct route *rt, const char *p, size_t n)
{
	if (rt->prefix)
		return n >= rt->path_len && !memcmp(p, rt->path, rt->path_len);
	return n == rt->path_len && !memcmp(p, rt->path, n);
}

static bool method_is(const struct route *rt, const char *m, size_t n)
{
	return rt->method_len == n && !memcmp(rt->method, m, n);
}

/* Better of two candidates: exact beats prefix, longer prefix beats shorter. */
static bool better(const struct route *a, const struct route *b)
{
	if (!b)
		return true;
	if (a->prefix != b->prefix)
		return !a->prefix;
	return a->path_len > b->path_len;
}

/* Append ", M" (or "M" first) to an Allow line unless it is there already. */
static void allow_add(char *allow, size_t *len, size_t cap, const char *m, size_t mlen)
{
	size_t start = 7;  /* after "Allow: " */
	for (size_t i = start; i + mlen <= *len; i++)
		if ((i == start || allow[i - 1] == ' ') && !memcmp(allow + i, m, mlen) &&
		    (i + mlen == *len || allow[i + mlen] == ','))
			return;
	if (*len + mlen + 5 > cap)
		return;
	if (*len > start)
		allow[(*len)++] = ',', allow[(*len)++] = ' ';
	memcpy(allow + *len, m, mlen);
	*len += mlen;
}

/*
 * "Allow: ...\r\n" for the best-matching path (every path for "*"):
 * its methods, HEAD when GET is there, and OPTIONS, which the router
 * answers for every known path.  Returns the best route, or NULL.
 */
static const struct route *build_allow(struct http_router *r, const char *p, size_t n,
                                       bool every, char *allow, size_t cap)
{
	const struct route *best = NULL;
	for (size_t i = 0; i < r->n && !every; i++)
		if (path_matches(r->routes[i], p, n) && better(r->routes[i], best))
			best = r->routes[i];
	size_t len = 7;
	memcpy(allow, "Allow: ", 7);
	bool get = false;
	for (size_t i = 0; i < r->n; i++) {
		const struct route *rt = r->routes[i];
		if (!every && (!best || rt->prefix != best->prefix || rt->path_len != best->path_len ||
		               memcmp(rt->path, best->path, rt->path_len)))
			continue;
		if (!strcmp(rt->method, "GET"))
			get = true;
		allow_add(allow, &len, cap, rt->method, rt->method_len);
	}
	if (get)
		allow_add(allow, &len, cap, "HEAD", 4);
	allow_add(allow, &len, cap, "OPTIONS", 7);
	memcpy(allow + len, "\r\n", 3);
	return best;
}

static void answer_405(struct http_router *r, struct http_exchange *ex, const char *p, size_t n)
{
	char allow[512];
	build_allow(r, p, n, false, allow, sizeof allow - 3);
	static const char body[] = "{\"error\":\"method not allowed\"}";
	ex->route_stats = &r->unmatched;
	http_respond_headers(ex, 405, "application/json", allow, body, sizeof body - 1);
}

/* OPTIONS of a known path (or "*"): 204 with the methods in Allow. */
static void answer_options(struct http_router *r, struct http_exchange *ex, const char *p,
                           size_t n, bool every)
{
	char allow[512];
	const struct route *best = build_allow(r, p, n, every, allow, sizeof allow - 3);
	ex->route_stats = best ? (struct http_route_stats *)&best->stats : &r->unmatched;
	http_respond_headers(ex, 204, NULL, allow, NULL, 0);
}

/* Does the route serve the request's method?  The parser names the
 * methods it knows, so those compare as numbers; only an unnamed token
 * ("PURGE") compares as text. */
static inline bool method_matches(const struct route *rt, const struct http_request *req)
{
	if (req->method != HTTP_OTHER)
		return rt->mid == req->method;
	return rt->mid == HTTP_OTHER && method_is(rt, req->method_str, req->method_len);
}

void http_router_handle(struct http_exchange *ex, void *arg)
{
	struct http_router *r = arg;
	struct http_request *req = &ex->req;
	size_t n;
	const char *p = match_path(req, &n);
	if (n > 2 && memchr(p, '%', n))
		normalize_path(ex, &p, &n);
	const struct route *best = NULL, *get = NULL;
	bool head = req->method == HTTP_HEAD;
	const struct path_slot *s = index_find(r, p, n);
	bool path_known = s != NULL;
	if (s) {
		/* an exact route for the method beats everything else */
		for (const struct route *rt = s->first; rt; rt = rt->next_same) {
			if (method_matches(rt, req)) {
				best = rt;
				break;
			}
			if (head && rt->mid == HTTP_GET)
				get = rt;
		}
	}
	if (!best) {
		/* longest prefix first: the first match for a method is its best */
		const struct route *pget = NULL;
		for (size_t i = 0; i < r->n_prefixes; i++) {
			const struct route *rt = r->prefixes[i];
			if (!path_matches(rt, p, n))
				continue;
			path_known = true;
			if (!best && method_matches(rt, req))
				best = rt;
			else if (head && !pget && rt->mid == HTTP_GET)
				pget = rt;
			if (best)
				break;   /* a shorter GET could not beat it */
		}
		if (!get)
			get = pget;
	}
	/* HEAD falls back to GET unless a HEAD route matches at least as well */
	if (get && (!best || better(get, best)))
		best = get;
	if (!best) {
		if (req->method == HTTP_OPTIONS && (path_known || (n == 1 && p[0] == '*'))) {
			answer_options(r, ex, p, n, !path_known);
			return;
		}
		if (path_known) {
			answer_405(r, ex, p, n);
			return;
		}
		static const char body[] = "{\"error\":\"not found\"}";
		ex->route_stats = &r->unmatched;
		http_respond(ex, 404, "application/json", body, sizeof body - 1);
		return;
	}
	ex->route_stats = (struct http_route_stats *)&best->stats;
	ex->route_arg = best->arg;
	ex->subpath = p + (best->prefix ? best->path_len : n);
	ex->subpath_len = (uint32_t)(best->prefix ? n - best->path_len : 0);
	best->fn(ex, best->arg);
}
