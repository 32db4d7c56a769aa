/*
 * http/route.h -- the small router every dsys server shares.
 *
 * A route is a method and a path -- exact ("/hello") or a prefix
 * ("/counters/", matching "/counters/anything") -- and a handler.  The
 * router is itself an http_handler_fn: pass http_router_handle as the
 * server's handler and the router as its arg.
 *
 *     struct http_router *r = http_router_new(reg);
 *     http_route_add(r, "GET", "/hello", hello, NULL);
 *     http_route_add_prefix(r, "GET", "/counters/", counter_get, app);
 *     http_route_add_health(r);
 *     http_route_add_metrics(r, reg);
 *     cfg.handler = http_router_handle;
 *     cfg.handler_arg = r;
 *
 * Matching: the query string is ignored; an absolute-form target
 * ("http://host/path") is matched by its path.  Percent-escapes of
 * unreserved characters in the path are decoded first (RFC 3986 6.2.2.2:
 * "/%68ello" is "/hello"), in place: the handler sees the normalised
 * path, target and subpath; "%2F" and other reserved escapes stay.  An exact route wins over
 * a prefix route, a longer prefix over a shorter one.  A path no route has
 * gets 404 {"error":"not found"}; a path some route has, but not with this
 * method, gets 405 with "Allow: ..." (listing HEAD when GET is there, and
 * OPTIONS) and a JSON body.  HEAD is answered by the GET route when there
 * is no HEAD route (the server leaves the body out).  OPTIONS of a known
 * path without an OPTIONS route is a 204 with that Allow line; "OPTIONS *"
 * a 204 listing every method the router has.  Static routes answer
 * "If-None-Match: *" on GET and HEAD with 304 (they send no entity tags).
 *
 * Before calling a route's handler the router sets ex->route_stats (so
 * http_requests_total counts under route="<path as registered>"),
 * ex->route_arg (the arg given at add time, also passed as the handler's
 * arg) and, for prefix routes, ex->subpath/subpath_len (the path after the
 * prefix).  404 and 405 count under route="unmatched", OPTIONS under
 * the path's route.
 *
 * Routes are added before the server runs; lookup is read-only, so all
 * loop threads share one router without locks.  The router owns copies of
 * the method and path strings and of static bodies' content types; a
 * static body itself is borrowed and must outlive the router.
 * Lookup hashes the path once (an index built as routes are added), so
 * its cost does not grow with the number of routes.
 */
#ifndef DSYS_HTTP_ROUTE_H
#define DSYS_HTTP_ROUTE_H

#include <stddef.h>

#include "http/server.h"

struct metrics;
struct http_router;

#define HTTP_ROUTER_MAX_ROUTES 256

/* reg (borrowed, may be NULL) is where per-route request counters go. */
struct http_router *http_router_new(struct metrics *reg);
void http_router_free(struct http_router *r);   /* NULL is a no-op */

/*
 * Add a route.  method is a method token ("GET", "POST", "PURGE"); path
 * starts with '/'.  Returns 0, -EINVAL (bad method or path), -EEXIST (the
 * same method and path again), -ENOSPC (over HTTP_ROUTER_MAX_ROUTES).
 */
int http_route_add(struct http_router *r, const char *method, const char *path,
                   http_handler_fn fn, void *arg);
int http_route_add_prefix(struct http_router *r, const char *method, const char *prefix,
                          http_handler_fn fn, void *arg);

/* A route answering 200 with a fixed body (borrowed) and content type. */
int http_route_add_static(struct http_router *r, const char *method, const char *path,
                          const char *content_type, const void *body, size_t len);

/* GET /health -> 200 {"status":"ok"} (application/json). */
int http_route_add_health(struct http_router *r);

/* GET /metrics -> metrics_render(reg) as METRICS_CONTENT_TYPE. */
int http_route_add_metrics(struct http_router *r, struct metrics *reg);

/* The server's handler: arg is the router. */
void http_router_handle(struct http_exchange *ex, void *arg);

#endif
