/*
 * api.c -- every HTTP handler of the dsys-raft node's client port, in one
 * file (the server core's handler API is the part most likely to move).
 *
 * etcd's v3 JSON gateway: POST /v3/kv/range|put|deleterange|txn|compaction,
 * /v3/lease/grant|revoke|keepalive|timetolive|leases (with the 3.4
 * gateway's /v3/kv/lease/... aliases, which lib/store/etcd uses),
 * /v3/maintenance/status and alarm, /v3/cluster/member/list|add|remove|
 * update|promote (changes go to the leader, node.c "membership"); GET /health and
 * /metrics.  A handler only hands the request to the node
 * (node_request); the node answers through api_answer, later, on this
 * loop.  Status and member list are answered here from local state, as
 * etcd does.
 *
 * The gRPC front end (grpc.c) shares this core: its calls go through
 * api_v3 as gateway JSON, and api_answer hands their answers back to it.
 *
 * /v3/watch is a stream of etcd's {"result":...} lines (node.c: "Watch"),
 * chunked on HTTP/1.1, for as long as the client stays.
 */
#include <string.h>

#include "base/buf.h"
#include "dsys-raft.h"
#include "http/grpc.h"
#include "http/route.h"
#include "http/server.h"
#include "raft/kv.h"

struct api_route {
	const char *path;
	int op;
	struct node *n;
};

static struct api_route routes[] = {
	{"/v3/kv/range", KV_OP_RANGE, NULL},
	{"/v3/kv/put", KV_OP_PUT, NULL},
	{"/v3/kv/deleterange", KV_OP_DELETE, NULL},
	{"/v3/kv/txn", KV_OP_TXN, NULL},
	{"/v3/kv/compaction", KV_OP_COMPACT, NULL},
	{"/v3/lease/grant", KV_OP_LEASE_GRANT, NULL},
	{"/v3/lease/revoke", KV_OP_LEASE_REVOKE, NULL},
	{"/v3/kv/lease/revoke", KV_OP_LEASE_REVOKE, NULL},
	{"/v3/lease/leases", KV_OP_LEASE_LEASES, NULL},
	{"/v3/kv/lease/leases", KV_OP_LEASE_LEASES, NULL},
	{"/v3/lease/keepalive", NODE_OP_KEEPALIVE, NULL},
	{"/v3/lease/timetolive", NODE_OP_TIMETOLIVE, NULL},
	{"/v3/kv/lease/timetolive", NODE_OP_TIMETOLIVE, NULL},
	{"/v3/cluster/member/add", NODE_OP_MEMBER_ADD, NULL},
	{"/v3/cluster/member/remove", NODE_OP_MEMBER_REMOVE, NULL},
	{"/v3/cluster/member/update", NODE_OP_MEMBER_UPDATE, NULL},
	{"/v3/cluster/member/promote", NODE_OP_MEMBER_PROMOTE, NULL},
};

void api_answer(void *origin, int status, const char *body, size_t len)
{
	if (grpc_is_call(origin))
		grpc_api_answer(origin, status, body, len);
	else
		http_respond(origin, status, "application/json", body, len);
}

void api_v3(struct node *n, struct http_exchange *ex, int op, const char *body, size_t len)
{
	/* syntax and shape first: bad input never reaches the log */
	if (op <= KV_OP_MAX) {
		struct buf err;
		buf_init(&err);
		int st = kv_check((enum kv_op)op, body, len, &err);
		if (st) {
			api_answer(ex, st, err.data, err.len);
			buf_free(&err);
			return;
		}
		buf_free(&err);
	}
	bool serializable = op == KV_OP_RANGE && kv_json_bool(body, len, "serializable");
	node_request(n, ex, op, body, len, serializable);
}

static void handle_v3(struct http_exchange *ex, void *arg)
{
	const struct api_route *rt = arg;
	api_v3(rt->n, ex, rt->op, ex->body_len ? ex->body : "{}", ex->body_len ? ex->body_len : 2);
}

static void handle_status(struct http_exchange *ex, void *arg)
{
	struct buf *b = http_scratch(ex);
	node_status_json(arg, b);
	http_respond(ex, 200, "application/json", b->data, b->len);
}

static void handle_members(struct http_exchange *ex, void *arg)
{
	struct buf *b = http_scratch(ex);
	node_members_json(arg, b);
	http_respond(ex, 200, "application/json", b->data, b->len);
}

static void handle_alarms(struct http_exchange *ex, void *arg)
{
	struct buf *b = http_scratch(ex);
	node_alarms_json(arg, b);
	http_respond(ex, 200, "application/json", b->data, b->len);
}

static void handle_health(struct http_exchange *ex, void *arg)
{
	struct buf *b = http_scratch(ex);
	bool ok = node_health(arg, b);
	http_respond(ex, ok ? 200 : 503, "application/json", b->data, b->len);
}

static void handle_watch(struct http_exchange *ex, void *arg)
{
	node_watch(arg, ex, ex->body_len ? ex->body : "{}", ex->body_len ? ex->body_len : 2);
}

void api_routes(struct http_router *r, struct node *n, struct metrics *reg)
{
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		routes[i].n = n;
		http_route_add(r, "POST", routes[i].path, handle_v3, &routes[i]);
	}
	http_route_add(r, "POST", "/v3/maintenance/status", handle_status, n);
	http_route_add(r, "POST", "/v3/cluster/member/list", handle_members, n);
	http_route_add(r, "POST", "/v3/maintenance/alarm", handle_alarms, n);
	http_route_add(r, "POST", "/v3/watch", handle_watch, n);
	http_route_add(r, "GET", "/health", handle_health, n);
	grpc_routes(r, n);
	http_route_add_metrics(r, reg);
}
