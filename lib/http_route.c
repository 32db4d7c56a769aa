/*
 * http_route.c -- method + path (exact or prefix) to a handler.
 *
 * Routes live in one array, filled before the server runs and only read
 * afterwards, so every loop thread looks up without a lock.  A lookup is a
 * scan: servers here have a handful of routes, and comparing a length and
 * a few bytes per route is cheaper than hashing the path.  The scan finds
 * the route for the method and, in the same pass, whether any route has
 * the path at all (the difference between 405 and 404), so an unmatched
 * request costs one more scan only to build the Allow line.
 *
 * Each route carries its own http_route_stats, so the server counts every
 * answer under route="<path as registered>" without looking anything up.
 * Paths the router does not know count under route="unmatched": the label
 * set stays bounded whatever clients send.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "http_route.h"
#include "invariant.h"
#include "metrics.h"

struct route {
	char *method;              /* owned */
	size_t method_len;
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

struct http_router {
	struct metrics *reg;
	struct route *routes[HTTP_ROUTER_MAX_ROUTES];
	size_t n;
	struct http_route_stats unmatched;
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
	rt->path_len = strlen(path);
	rt->prefix = prefix;
	rt->fn = fn;
	rt->arg = arg;
	http_route_stats_init(&rt->stats, r->reg, rt->path);
	r->routes[r->n++] = rt;
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
	const struct http_header *inm;
	if ((ex->req.method == HTTP_GET || ex->req.method == HTTP_HEAD) &&
	    (inm = http_message_header(&ex->req.m, "if-none-match")) &&
	    inm->value_len == 1 && inm->value[0] == '*') {
		http_respond(ex, 304, NULL, NULL, 0);
		return;
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

void http_router_handle(struct http_exchange *ex, void *arg)
{
	struct http_router *r = arg;
	const struct http_request *req = &ex->req;
	size_t n;
	const char *p = match_path(req, &n);
	const struct route *best = NULL, *get = NULL;
	bool path_known = false;
	for (size_t i = 0; i < r->n; i++) {
		const struct route *rt = r->routes[i];
		if (!path_matches(rt, p, n))
			continue;
		path_known = true;
		if (method_is(rt, req->method_str, req->method_len)) {
			if (better(rt, best))
				best = rt;
		} else if (req->method == HTTP_HEAD && method_is(rt, "GET", 3)) {
			if (better(rt, get))
				get = rt;
		}
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
