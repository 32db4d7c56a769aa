/*
 * test_http_route.c -- the router picks the route the specification says.
 *
 * lib/http/route finds exact paths through a hash index and walks prefix
 * routes longest first; the rule it must give the answer of is the plain
 * one in http_route.h: among the routes whose path matches, an exact route
 * beats a prefix route and a longer prefix a shorter one; HEAD falls back
 * to the GET route unless a HEAD route matches at least as well.  This
 * test keeps that rule as a linear scan (the reference) and checks the
 * router against it on chosen cases and on many generated ones, with
 * enough routes to make the hash table collide and long paths that share
 * their first and last eight bytes.  Only requests that find a route are
 * routed here (404, 405 and OPTIONS answer through a live server, which
 * the bats suites cover), so near misses are sent to catch-all prefix
 * routes ("/") and must land there and nowhere else.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/parse.h"
#include "http/route.h"
#include "http/server.h"
#include "tap.h"

#define MAXR 200

struct spec {
	char method[16];
	char path[64];
	bool prefix;
	int id;
};

static struct spec specs[MAXR];
static int n_specs;
static int called;           /* id of the route whose handler ran, or -1 */

static void handler(struct http_exchange *ex, void *arg)
{
	(void)ex;
	called = ((const struct spec *)arg)->id;
}

static void add(struct http_router *r, const char *method, const char *path, bool prefix)
{
	struct spec *s = &specs[n_specs];
	snprintf(s->method, sizeof s->method, "%s", method);
	snprintf(s->path, sizeof s->path, "%s", path);
	s->prefix = prefix;
	s->id = n_specs;
	int e = prefix ? http_route_add_prefix(r, method, path, handler, s)
	               : http_route_add(r, method, path, handler, s);
	if (e == 0)
		n_specs++;
}

static bool better(const struct spec *a, const struct spec *b)
{
	if (!b)
		return true;
	if (a->prefix != b->prefix)
		return !a->prefix;
	return strlen(a->path) > strlen(b->path);
}

/* The rule, as a scan over every route: the id it picks, or -1. */
static int reference(const char *method, const char *path)
{
	const struct spec *best = NULL, *get = NULL;
	size_t n = strlen(path);
	for (int i = 0; i < n_specs; i++) {
		const struct spec *s = &specs[i];
		size_t k = strlen(s->path);
		bool match = s->prefix ? n >= k && !memcmp(path, s->path, k) : !strcmp(path, s->path);
		if (!match)
			continue;
		if (!strcmp(s->method, method)) {
			if (better(s, best))
				best = s;
		} else if (!strcmp(method, "HEAD") && !strcmp(s->method, "GET")) {
			if (better(s, get))
				get = s;
		}
	}
	if (get && (!best || better(get, best)))
		best = get;
	return best ? best->id : -1;
}

static enum http_method method_enum(const char *m)
{
	for (int i = HTTP_GET; i <= HTTP_CONNECT; i++)
		if (!strcmp(m, http_method_name((enum http_method)i)))
			return (enum http_method)i;
	return HTTP_OTHER;
}

/* Route one request as the parser would hand it over; the id routed to. */
static int route(struct http_router *r, const char *method, const char *path,
                 const char **subpath, uint32_t *subpath_len)
{
	struct http_exchange ex;
	memset(&ex, 0, sizeof ex);
	ex.req.method = method_enum(method);
	ex.req.method_str = method;
	ex.req.method_len = (uint32_t)strlen(method);
	ex.req.target = ex.req.path = path;
	ex.req.target_len = ex.req.path_len = (uint32_t)strlen(path);
	called = -1;
	http_router_handle(&ex, r);
	if (subpath) {
		*subpath = ex.subpath;
		*subpath_len = ex.subpath_len;
	}
	return called;
}

static void check(struct http_router *r, const char *method, const char *path, const char *why)
{
	int want = reference(method, path);
	int got = route(r, method, path, NULL, NULL);
	ok(want >= 0 && got == want, "%s (%s %s: route %d, want %d)", why, method, path, got, want);
}

static void test_rules(void)
{
	struct http_router *r = http_router_new(NULL);
	n_specs = 0;
	add(r, "GET", "/hello", false);                     /* 0 */
	add(r, "POST", "/hello", false);                    /* 1 */
	add(r, "GET", "/files/", true);                     /* 2 */
	add(r, "GET", "/files/img/", true);                 /* 3 */
	add(r, "HEAD", "/files/", true);                    /* 4 */
	add(r, "GET", "/files/img/logo.png", false);        /* 5 */
	add(r, "PURGE", "/cache/", true);                   /* 6 */
	add(r, "GET", "/aaaaaaaa-1-bbbbbbbb", false);       /* 7 */
	add(r, "GET", "/aaaaaaaa-2-bbbbbbbb", false);       /* 8 */
	add(r, "GET", "/", false);                          /* 9 */
	add(r, "DELETE", "/", true);                        /* 10 */
	add(r, "HEAD", "/h", false);                        /* 11 */
	add(r, "GET", "/h", false);                         /* 12 */
	add(r, "GET", "/", true);                           /* 13: catch-all */
	is_int(n_specs, 14, "every route is added");
	is_int(http_route_add(r, "GET", "/hello", handler, NULL), -EEXIST,
	       "the same method and path again is EEXIST");

	check(r, "GET", "/hello", "an exact route answers its method");
	check(r, "POST", "/hello", "and the other method on the same path its own");
	check(r, "HEAD", "/hello", "HEAD without a HEAD route falls back to GET");
	check(r, "GET", "/files/a.txt", "a prefix route answers below its prefix");
	check(r, "GET", "/files/img/x.png", "the longer prefix wins");
	check(r, "GET", "/files/img/logo.png", "an exact route beats every prefix");
	check(r, "HEAD", "/files/a.txt", "a HEAD prefix route answers HEAD");
	check(r, "HEAD", "/files/img/x.png", "a longer GET prefix beats a shorter HEAD prefix");
	check(r, "HEAD", "/files/img/logo.png", "an exact GET beats a HEAD prefix for HEAD");
	check(r, "PURGE", "/cache/x", "a method the parser has no name for routes by its text");
	check(r, "GET", "/aaaaaaaa-1-bbbbbbbb", "long paths with the same ends are told apart (1)");
	check(r, "GET", "/aaaaaaaa-2-bbbbbbbb", "long paths with the same ends are told apart (2)");
	check(r, "GET", "/", "the root path is an exact route");
	check(r, "DELETE", "/anything", "a prefix of / matches every path");
	check(r, "HEAD", "/h", "a HEAD route beats the GET route on the same path");
	check(r, "GET", "/aaaaaaaa-3-bbbbbbbb", "a long near miss falls through to the catch-all");
	check(r, "GET", "/hello/", "so does a path one byte longer than a route's");
	check(r, "GET", "/hell", "and one byte shorter");
	ok(route(r, "GET", "/hell", NULL, NULL) == 13, "which is the catch-all prefix route");

	const char *sub;
	uint32_t sublen;
	route(r, "GET", "/files/img/a/b", &sub, &sublen);
	ok(sublen == 3 && !memcmp(sub, "a/b", 3), "a prefix route sees the path after its prefix");
	route(r, "GET", "/hello", &sub, &sublen);
	is_int(sublen, 0, "an exact route sees an empty subpath");
	http_router_free(r);
}

/* Deterministic pseudo-random numbers, so a failure replays. */
static unsigned long long rng = 88172645463325252ULL;
static unsigned rnd(unsigned n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng % n);
}

static void random_path(char *out, size_t cap)
{
	static const char *const parts[] = {"a", "b", "api", "v1", "users", "aaaaaaaa", "x-y", "1"};
	size_t n = 0, k = 1 + rnd(4);
	for (size_t i = 0; i < k && n + 12 < cap; i++)
		n += (size_t)snprintf(out + n, cap - n, "/%s", parts[rnd(8)]);
	if (rnd(4) == 0 && n + 2 < cap)
		out[n++] = '/';
	out[n] = 0;
}

static void test_generated(void)
{
	static const char *const methods[] = {"GET", "HEAD", "POST", "PURGE"};
	struct http_router *r = http_router_new(NULL);
	n_specs = 0;
	char p[64];
	for (int i = 0; i < 150; i++) {
		random_path(p, sizeof p);
		add(r, methods[rnd(4)], p, rnd(3) == 0);
	}
	for (int i = 0; i < 4; i++)
		add(r, methods[i], "/", true);   /* every request finds a route */
	int same = 0, tried = 0, found = 0;
	for (int i = 0; i < 20000; i++) {
		const char *m = methods[rnd(4)];
		random_path(p, sizeof p);
		int want = reference(m, p), got = route(r, m, p, NULL, NULL);
		same += want == got;
		found += want >= 0 && strcmp(specs[want].path, "/") != 0;
		tried++;
	}
	ok(n_specs > 100, "over a hundred generated routes (%d)", n_specs);
	ok(found > 1000, "many generated requests find a route besides the catch-alls (%d)", found);
	is_int(same, tried, "the router agrees with the rule on every generated request");
	for (int i = 0; i < n_specs; i++)
		if (!specs[i].prefix && route(r, specs[i].method, specs[i].path, NULL, NULL) !=
		                        reference(specs[i].method, specs[i].path))
			same = -1;
	ok(same >= 0, "and on every route's own path and method");
	http_router_free(r);
}

int main(void)
{
	test_rules();
	test_generated();
	return tap_done();
}
