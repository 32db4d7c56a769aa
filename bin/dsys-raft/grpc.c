/*
 * grpc.c -- etcd's v3 gRPC API on the node's client port, beside the JSON
 * gateway (api.c), as etcd serves both on one port.
 *
 * One core, two front ends.  The node speaks etcd's gateway JSON
 * (node_request, kv_exec); this file only translates: a call's protobuf
 * request becomes the gateway's JSON body and goes through api_v3, the
 * very path /v3/kv/... takes, and the node's JSON answer comes back
 * through api_answer, which hands gRPC calls to grpc_api_answer to be
 * turned into the method's protobuf response.  The translation is
 * generic, driven by protobuf-c's descriptors of lib/store/etcd_rpc.proto
 * (store/etcd_pb: etcd_pb_to_json, etcd_pb_from_json): a field's proto
 * name is its gateway JSON name (etcd's gateway keeps proto names), bytes
 * are base64, 64-bit integers decimal strings, enums their names.  So a
 * field the core knows works on both front ends at once, and no request
 * semantics live here.  One exception, for speed: a Put with a key goes
 * to the node in lib/raft/kv's binary put form (kv_put_encode), which
 * the log keeps and every member applies without JSON or base64; its
 * answer is the same JSON, and put_answer turns it into the PutResponse.
 *
 * Errors: the core's {"error","message","code"} becomes grpc-status
 * "code" with grpc-message "message", etcd's own text, which clients
 * match on ("etcdserver: requested lease not found").
 *
 * Watch and LeaseKeepAlive are bidirectional streams (grpc_bidi_path):
 * Watch a chain of the node's watch polls on one stream, LeaseKeepAlive
 * one node keepalive per request (see each below).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/json.h"
#include "base/invariant.h"
#include "dsys-raft.h"
#include "http/grpc.h"
#include "http/parse.h"
#include "http/route.h"
#include "http/server.h"
#include "store/etcd_rpc.pb-c.h"
#include "store/etcd.h"
#include "store/etcd_pb.h"

enum method_kind { M_V3, M_STATUS, M_MEMBERS, M_ALARM, M_DEFRAG, M_HASH, M_HASHKV, M_AUTH, M_WATCH, M_WATCH_STREAM, M_KEEPALIVE, M_KEEPALIVE_STREAM };

struct grpc_method {
	const char *path;
	enum method_kind kind;
	int op;
	const ProtobufCMessageDescriptor *req, *resp;
	struct node *n;
};

#define PB(x) &etcdserverpb__##x##__descriptor
static struct grpc_method methods[] = {
	{"/etcdserverpb.KV/Range", M_V3, KV_OP_RANGE, PB(range_request), PB(range_response), NULL},
	{"/etcdserverpb.KV/Put", M_V3, KV_OP_PUT, PB(put_request), PB(put_response), NULL},
	{"/etcdserverpb.KV/DeleteRange", M_V3, KV_OP_DELETE, PB(delete_range_request), PB(delete_range_response),
	 NULL},
	{"/etcdserverpb.KV/Txn", M_V3, KV_OP_TXN, PB(txn_request), PB(txn_response), NULL},
	{"/etcdserverpb.KV/Compact", M_V3, KV_OP_COMPACT, PB(compaction_request), PB(compaction_response), NULL},
	{"/etcdserverpb.Lease/LeaseGrant", M_V3, KV_OP_LEASE_GRANT, PB(lease_grant_request),
	 PB(lease_grant_response), NULL},
	{"/etcdserverpb.Lease/LeaseRevoke", M_V3, KV_OP_LEASE_REVOKE, PB(lease_revoke_request),
	 PB(lease_revoke_response), NULL},
	{"/etcdserverpb.Lease/LeaseTimeToLive", M_V3, NODE_OP_TIMETOLIVE, PB(lease_time_to_live_request),
	 PB(lease_time_to_live_response), NULL},
	{"/etcdserverpb.Lease/LeaseLeases", M_V3, KV_OP_LEASE_LEASES, PB(lease_leases_request),
	 PB(lease_leases_response), NULL},
	{"/etcdserverpb.Cluster/MemberList", M_MEMBERS, 0, PB(member_list_request), PB(member_list_response), NULL},
	{"/etcdserverpb.Cluster/MemberAdd", M_V3, NODE_OP_MEMBER_ADD, PB(member_add_request), PB(member_add_response),
	 NULL},
	{"/etcdserverpb.Cluster/MemberRemove", M_V3, NODE_OP_MEMBER_REMOVE, PB(member_remove_request),
	 PB(member_remove_response), NULL},
	{"/etcdserverpb.Cluster/MemberUpdate", M_V3, NODE_OP_MEMBER_UPDATE, PB(member_update_request),
	 PB(member_update_response), NULL},
	{"/etcdserverpb.Cluster/MemberPromote", M_V3, NODE_OP_MEMBER_PROMOTE, PB(member_promote_request),
	 PB(member_promote_response), NULL},
	{"/etcdserverpb.Maintenance/Status", M_STATUS, 0, PB(status_request), PB(status_response), NULL},
	{"/etcdserverpb.Maintenance/Alarm", M_ALARM, 0, PB(alarm_request), PB(alarm_response), NULL},
	{"/etcdserverpb.Maintenance/Defragment", M_DEFRAG, 0, PB(defragment_request), PB(defragment_response), NULL},
	{"/etcdserverpb.Maintenance/Hash", M_HASH, 0, PB(hash_request), PB(hash_response), NULL},
	{"/etcdserverpb.Maintenance/HashKV", M_HASHKV, 0, PB(hash_kvrequest), PB(hash_kvresponse), NULL},
	/* Auth as etcd with auth disabled: lists empty, enable refused (no
	 * root user), disable a no-op; op: 0 answers, else the error's index */
	{"/etcdserverpb.Auth/AuthEnable", M_AUTH, 1, PB(auth_enable_request), PB(auth_enable_response), NULL},
	{"/etcdserverpb.Auth/AuthDisable", M_AUTH, 0, PB(auth_disable_request), PB(auth_disable_response), NULL},
	{"/etcdserverpb.Auth/UserGet", M_AUTH, 2, PB(auth_user_get_request), PB(auth_user_get_response), NULL},
	{"/etcdserverpb.Auth/UserList", M_AUTH, 0, PB(auth_user_list_request), PB(auth_user_list_response), NULL},
	{"/etcdserverpb.Auth/RoleGet", M_AUTH, 3, PB(auth_role_get_request), PB(auth_disable_response), NULL},
	{"/etcdserverpb.Auth/RoleList", M_AUTH, 0, PB(auth_role_list_request), PB(auth_role_list_response), NULL},
	{"/etcdserverpb.Watch/Watch", M_WATCH, 0, PB(watch_request), PB(watch_response), NULL},
	{"/etcdserverpb.Lease/LeaseKeepAlive", M_KEEPALIVE, NODE_OP_KEEPALIVE, PB(lease_keep_alive_request),
	 PB(lease_keep_alive_response), NULL},
};

/* ------------------------------------------------------------ calls */

/* ------------------------------------------------------------ Watch */

/*
 * Watch is a bidirectional stream carrying any number of watches, as
 * etcd serves it: each create_request is answered at once, in the order
 * asked, by a created response (its watch id: the one asked for, or the
 * next free one from 0, as etcd numbers them; the header's revision is
 * this member's current one), a cancel_request by a canceled response
 * (none for an unknown id, as etcd), a progress_request by a response
 * with the current revision and watch id -1.
 *
 * The node's watch seen from here is a poll (node_watch_call answers once, with
 * etcd's gateway lines, when events past its start revision exist or its
 * poll time passes), so each watch here is a chain of those polls: each
 * answer's events become one WatchResponse (fragmented when the watch
 * asked for it and the response is past etcd's 1.5 MiB request limit),
 * and the next poll starts after the last event's revision, so every
 * event is sent once and in order.  Polls are (re)started from the
 * stream's zero timer, never from inside an answer, so the node never
 * sees its watch list change while it walks it; the same timer checks
 * once a second whether the client is gone.  The stream stays open when
 * the client half-closes, as etcd's does, until the client goes.
 */
#define WATCH_FRAGMENT_BYTES (1536 * 1024)   /* etcd's default --max-request-bytes */

struct watch_stream;

struct watch_one {
	struct watch_one *next;
	struct watch_stream *ws;
	int64_t id;
	json_value *create;        /* the create_request, start_revision moved on per poll */
	int64_t next_rev;          /* first revision not sent yet */
	bool pending;              /* a poll is with the node */
	bool done;                 /* canceled (by the client or the node): freed by the timer */
	bool fragment;
};

struct watch_stream {
	struct grpc_method m;      /* first: ex->route_arg points here, kind M_WATCH_STREAM */
	struct http_exchange *ex;
	struct watch_one *watches;
	int64_t next_id;
	bool ended;                /* to end (client gone, bad request): the timer ends it */
	int end_status;            /* GRPC_CANCELLED unless a bad request set another */
	const char *end_msg;
	uv_timer_t again;
};

/* etcd's response header as of now: cluster, member, revision, term. */
static json_value *header_now(struct node *n)
{
	struct buf b;
	buf_init(&b);
	node_status_json(n, &b);
	json_value *j = json_parse(b.data, b.len, NULL);
	buf_free(&b);
	json_value *h = j ? cJSON_DetachItemFromObjectCaseSensitive(j, "header") : NULL;
	json_free(j);
	return h ? h : cJSON_CreateObject();
}

static int64_t header_revision(const json_value *h)
{
	const char *s = h ? json_get_str(h, "revision") : NULL;
	int64_t rev = 0;
	if (!s || json_parse_i64(s, strlen(s), &rev))
		return 0;
	return rev;
}

static void num_item(json_value *o, const char *key, int64_t v)
{
	char num[24];
	num[fmt_i64(num, v)] = '\0';
	cJSON_DeleteItemFromObjectCaseSensitive(o, key);
	cJSON_AddItemToObject(o, key, cJSON_CreateString(num));
}

/* Send a WatchResponse given as gateway JSON; false when the client is gone. */
static bool watch_send(struct watch_stream *ws, const json_value *r)
{
	if (ws->ended)
		return false;
	struct buf b;
	buf_init(&b);
	bool ok = etcd_pb_from_json(&b, r, ws->m.resp) == 0 &&
	          grpc_stream_send(ws->ex, b.data ? b.data : "", b.len) == 0;
	buf_free(&b);
	return ok;
}

static size_t watch_size(const struct watch_stream *ws, const json_value *r)
{
	struct buf b;
	buf_init(&b);
	size_t n = etcd_pb_from_json(&b, r, ws->m.resp) == 0 ? b.len : 0;
	buf_free(&b);
	return n;
}

/* One event batch: whole, or as etcd fragments it when asked (each part
 * as many events as fit, the last without "fragment"). */
static bool watch_send_events(struct watch_one *w, json_value *r)
{
	struct watch_stream *ws = w->ws;
	json_value *events = cJSON_GetObjectItemCaseSensitive(r, "events");
	int n = cJSON_GetArraySize(events);
	if (!w->fragment || n < 2 || watch_size(ws, r) < WATCH_FRAGMENT_BYTES)
		return watch_send(ws, r);
	int i = 0;
	while (i < n) {
		json_value *part = cJSON_CreateObject();
		cJSON_AddItemToObject(part, "header", cJSON_Duplicate(json_get(r, "header"), 1));
		num_item(part, "watch_id", w->id);
		json_value *pe = cJSON_AddArrayToObject(part, "events");
		cJSON_AddItemToArray(pe, cJSON_Duplicate(cJSON_GetArrayItem(events, i++), 1));
		for (; i < n; i++) {
			cJSON_AddItemToArray(pe, cJSON_Duplicate(cJSON_GetArrayItem(events, i), 1));
			if (watch_size(ws, part) > WATCH_FRAGMENT_BYTES) {
				cJSON_DeleteItemFromArray(pe, cJSON_GetArraySize(pe) - 1);
				break;
			}
		}
		if (i < n)
			cJSON_AddTrueToObject(part, "fragment");
		bool ok = watch_send(ws, part);
		json_free(part);
		if (!ok)
			return false;
	}
	return true;
}

static void watch_one_free(struct watch_one *w)
{
	if (w->pending)
		node_watch_drop(w->ws->m.n, w);
	json_free(w->create);
	free(w);
}

static void watch_freed(uv_handle_t *h)
{
	free(h->data);
}

static void watch_end(struct watch_stream *ws)
{
	grpc_stream_end(ws->ex, ws->end_status ? ws->end_status : GRPC_CANCELLED, ws->end_msg);
	while (ws->watches) {
		struct watch_one *w = ws->watches;
		ws->watches = w->next;
		watch_one_free(w);
	}
	uv_close((uv_handle_t *)&ws->again, watch_freed);
}

static void watch_kick(struct watch_stream *ws);

/* The node's answer to one watch's poll (maybe from inside its watch walk:
 * nothing here touches the node's watch list). */
static void watch_polled(void *origin, int status, const char *body, size_t len)
{
	struct watch_one *w = origin;
	struct watch_stream *ws = w->ws;
	w->pending = false;
	watch_kick(ws);
	if (ws->ended || w->done)
		return;
	if (http_exchange_gone(ws->ex)) {
		ws->ended = true;   /* the timer ends the stream */
		return;
	}
	if (status != 200) {
		/* a create the node refuses: canceled with its reason, as etcd */
		json_value *j = json_parse(body, len, NULL);
		const char *msg = j ? json_get_str(j, "message") : NULL;
		json_value *r = cJSON_CreateObject();
		cJSON_AddItemToObject(r, "header", header_now(ws->m.n));
		num_item(r, "watch_id", w->id);
		cJSON_AddTrueToObject(r, "canceled");
		cJSON_AddStringToObject(r, "cancel_reason", msg ? msg : "etcdserver: unexpected answer");
		if (!watch_send(ws, r))
			ws->ended = true;
		json_free(r);
		json_free(j);
		w->done = true;
		return;
	}
	const char *p = body, *end = body + len;
	while (p < end && !w->done) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		json_value *j = n ? json_parse(p, n, NULL) : NULL;
		p += n + 1;
		json_value *r = j ? cJSON_GetObjectItemCaseSensitive(j, "result") : NULL;
		if (!r || cJSON_IsTrue(json_get(r, "created"))) {
			json_free(j);   /* created was answered when asked */
			continue;
		}
		num_item(r, "watch_id", w->id);
		const json_value *events = json_get(r, "events");
		bool ok = true;
		if (cJSON_IsTrue(json_get(r, "canceled"))) {
			/* compacted past its start: etcd's canceled, compact_revision */
			ok = watch_send(ws, r);
			w->done = true;
		} else if (cJSON_IsArray(events) && cJSON_GetArraySize(events) > 0) {
			const json_value *last = cJSON_GetArrayItem(events, cJSON_GetArraySize(events) - 1);
			const json_value *kv = json_get(last, "kv");
			const char *mr = kv ? json_get_str(kv, "mod_revision") : NULL;
			int64_t rev;
			if (mr && json_parse_i64(mr, strlen(mr), &rev) == 0)
				w->next_rev = rev + 1;
			ok = watch_send_events(w, r);
		}
		json_free(j);
		if (!ok) {
			ws->ended = true;
			return;
		}
	}
}

static void watch_poll(struct watch_one *w)
{
	num_item(w->create, "start_revision", w->next_rev);
	char *c = cJSON_PrintUnformatted(w->create);
	INVARIANT(c != NULL);
	struct buf b;
	buf_init(&b);
	buf_printf(&b, "{\"create_request\":%s}", c);
	cJSON_free(c);
	w->pending = true;
	node_watch_call(w->ws->m.n, watch_polled, w, b.data, b.len);
	buf_free(&b);
}

/* The timer: end a stream whose client is gone, free finished watches,
 * start the next poll of each watch that has none with the node. */
static void watch_again(uv_timer_t *t)
{
	struct watch_stream *ws = t->data;
	if (ws->ended || http_exchange_gone(ws->ex)) {
		watch_end(ws);
		return;
	}
	for (struct watch_one **pp = &ws->watches; *pp;) {
		struct watch_one *w = *pp;
		if (w->done) {
			*pp = w->next;
			watch_one_free(w);
			continue;
		}
		if (!w->pending)
			watch_poll(w);
		pp = &w->next;
	}
}

static void watch_kick(struct watch_stream *ws)
{
	uv_timer_start(&ws->again, watch_again, 0, 1000);
}

static void watch_create(struct watch_stream *ws, const Etcdserverpb__WatchCreateRequest *cr)
{
	struct buf b;
	buf_init(&b);
	struct json_writer jw;
	json_writer_init(&jw, &b);
	etcd_pb_to_json(&jw, &cr->base);
	json_value *create = json_parse(b.data, b.len, NULL);
	buf_free(&b);
	INVARIANT(create != NULL);   /* msg_json writes an object */
	cJSON_DeleteItemFromObjectCaseSensitive(create, "watch_id");
	cJSON_DeleteItemFromObjectCaseSensitive(create, "fragment");

	json_value *h = header_now(ws->m.n);
	int64_t rev = header_revision(h);
	int64_t id = cr->watch_id;
	bool dup = false;
	if (id) {
		for (struct watch_one *o = ws->watches; o; o = o->next)
			dup |= !o->done && o->id == id;
	} else {
		/* etcd's numbering: the next id no watch of this stream holds */
		for (bool taken = true; taken;) {
			id = ws->next_id++;
			taken = false;
			for (struct watch_one *o = ws->watches; o; o = o->next)
				taken |= !o->done && o->id == id;
		}
	}
	json_value *r = cJSON_CreateObject();
	cJSON_AddItemToObject(r, "header", h);
	num_item(r, "watch_id", dup ? -1 : id);
	cJSON_AddTrueToObject(r, "created");
	if (dup) {
		cJSON_AddTrueToObject(r, "canceled");
		cJSON_AddStringToObject(r, "cancel_reason", "mvcc: duplicate watch ID provided on the WatchStream");
	}
	bool ok = watch_send(ws, r);
	json_free(r);
	if (!ok || dup) {
		json_free(create);
		if (!ok)
			ws->ended = true;
		watch_kick(ws);
		return;
	}
	struct watch_one *w = calloc(1, sizeof *w);
	INVARIANT(w != NULL);
	w->ws = ws;
	w->id = id;
	w->create = create;
	w->fragment = cr->fragment;
	/* "from now" pinned at creation, at the revision the created reply named */
	w->next_rev = cr->start_revision > 0 ? cr->start_revision : rev + 1;
	struct watch_one **pp = &ws->watches;
	while (*pp)
		pp = &(*pp)->next;
	*pp = w;
	watch_kick(ws);
}

static void watch_cancel(struct watch_stream *ws, int64_t id)
{
	for (struct watch_one *w = ws->watches; w; w = w->next) {
		if (w->done || w->id != id)
			continue;
		w->done = true;
		if (w->pending) {
			node_watch_drop(ws->m.n, w);   /* not inside a node answer: from a stream message */
			w->pending = false;
		}
		json_value *r = cJSON_CreateObject();
		cJSON_AddItemToObject(r, "header", header_now(ws->m.n));
		num_item(r, "watch_id", id);
		cJSON_AddTrueToObject(r, "canceled");
		if (!watch_send(ws, r))
			ws->ended = true;
		json_free(r);
		watch_kick(ws);
		return;
	}
}

static void watch_progress(struct watch_stream *ws)
{
	json_value *r = cJSON_CreateObject();
	cJSON_AddItemToObject(r, "header", header_now(ws->m.n));
	num_item(r, "watch_id", -1);   /* for no watch in particular, as etcd 3.4 */
	if (!watch_send(ws, r))
		ws->ended = true;
	json_free(r);
}

static void watch_request(struct watch_stream *ws, const uint8_t *msg, size_t len)
{
	Etcdserverpb__WatchRequest *req = etcdserverpb__watch_request__unpack(NULL, len, msg);
	if (!req) {
		ws->ended = true;
		ws->end_status = GRPC_INVALID_ARGUMENT;
		ws->end_msg = "dsys-raft: malformed request message";
		watch_kick(ws);
		return;
	}
	switch (req->request_union_case) {
	case ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST:
		watch_create(ws, req->create_request);
		break;
	case ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CANCEL_REQUEST:
		watch_cancel(ws, req->cancel_request->watch_id);
		break;
	case ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_PROGRESS_REQUEST:
		watch_progress(ws);
		break;
	default:
		break;   /* an empty request: nothing, as etcd */
	}
	etcdserverpb__watch_request__free_unpacked(req, NULL);
}

static void watch_message(struct http_exchange *ex, const uint8_t *msg, size_t len, void *arg)
{
	(void)ex;
	struct watch_stream *ws = arg;
	if (ws->ended || !msg)
		return;   /* a half-close keeps the stream, as etcd */
	watch_request(ws, msg, len);
}

static void watch_call(struct http_exchange *ex, const struct grpc_method *m)
{
	struct watch_stream *ws = calloc(1, sizeof *ws);
	INVARIANT(ws != NULL);
	ws->m = *m;
	ws->m.kind = M_WATCH_STREAM;
	ws->ex = ex;
	uv_timer_init(ex->loop, &ws->again);
	ws->again.data = ws;
	ex->route_arg = ws;
	grpc_stream_begin(ex);
	size_t off = 0;
	const uint8_t *msg;
	size_t len;
	while (!ws->ended && grpc_next_message(ex, &off, &msg, &len) == 1)
		watch_request(ws, msg, len);
	if (!ws->ended)
		grpc_on_message(ex, watch_message, ws);
	watch_kick(ws);
}

/* ------------------------------------------------------------ LeaseKeepAlive */

/*
 * LeaseKeepAlive is a bidirectional stream of requests (a lease id each)
 * and responses (its TTL, or none when the lease is gone).  Each request
 * is the node's keepalive (NODE_OP_KEEPALIVE, as /v3/lease/keepalive),
 * its answer one response on the stream.  The stream ends when the
 * client's side has ended and every request is answered; a client that
 * vanished (reset, closed connection) is noticed by a 1 s check, since
 * the core has no callback for that.
 *
 * A stream may end while requests are still with the node: an error
 * answer (a keep-alive forwarded to a leader that died times out) ends it
 * at once.  Once ended the exchange is the server core's again, and it
 * may carry the connection's next call; so the node answers the stream's
 * requests to the ka_stream (node_request_call), never to the exchange,
 * and the ka_stream lives until the last of them is answered.
 */
struct ka_stream {
	struct grpc_method m;      /* first: ex->route_arg points here, kind M_KEEPALIVE_STREAM */
	struct http_exchange *ex;  /* not ours once ended */
	unsigned pending;          /* requests with the node, each answered once to ka_answered */
	bool client_done, ended, closing;
	uv_timer_t check;
};

static void ka_freed(uv_handle_t *h)
{
	free(h->data);
}

/* Free ks once it has ended and the node holds none of its requests. */
static void ka_release(struct ka_stream *ks)
{
	if (!ks->ended || ks->pending || ks->closing)
		return;
	ks->closing = true;
	uv_close((uv_handle_t *)&ks->check, ka_freed);
}

static void ka_end(struct ka_stream *ks, int status, const char *msg)
{
	if (ks->ended)
		return;
	ks->ended = true;
	uv_timer_stop(&ks->check);
	grpc_stream_end(ks->ex, status, msg);
	ka_release(ks);
}

static void ka_answered(void *origin, int status, const char *body, size_t len);

static void ka_request(struct ka_stream *ks, const uint8_t *msg, size_t len)
{
	ProtobufCMessage *req = protobuf_c_message_unpack(ks->m.req, NULL, len, msg);
	if (!req) {
		if (!ks->pending)
			ka_end(ks, GRPC_INVALID_ARGUMENT, "dsys-raft: malformed request message");
		else
			ks->client_done = true;   /* answer what is pending, then stop */
		return;
	}
	struct buf b;
	buf_init(&b);
	struct json_writer w;
	json_writer_init(&w, &b);
	etcd_pb_to_json(&w, req);
	protobuf_c_message_free_unpacked(req, NULL);
	ks->pending++;
	/* NODE_OP_KEEPALIVE: no kv_check, never serializable (api_v3) */
	node_request_call(ks->m.n, ka_answered, ks, ks->m.op, b.data, b.len);
	buf_free(&b);
}

static void ka_message(struct http_exchange *ex, const uint8_t *msg, size_t len, void *arg)
{
	(void)ex;
	struct ka_stream *ks = arg;
	if (ks->ended)
		return;
	if (!msg) {
		ks->client_done = true;
		if (!ks->pending)
			ka_end(ks, GRPC_OK, NULL);
		return;
	}
	ka_request(ks, msg, len);
}

static void ka_check(uv_timer_t *t)
{
	struct ka_stream *ks = t->data;
	if (!ks->ended && !ks->pending && http_exchange_gone(ks->ex))
		ka_end(ks, GRPC_CANCELLED, NULL);
}

/* The node's answer to one of the stream's requests (node_request_call). */
static void ka_answered(void *origin, int status, const char *body, size_t len)
{
	struct ka_stream *ks = origin;
	INVARIANT(ks->pending > 0);
	ks->pending--;
	if (ks->ended) {
		ka_release(ks);
		return;
	}
	if (http_exchange_gone(ks->ex)) {
		if (!ks->pending)
			ka_end(ks, GRPC_CANCELLED, NULL);
		return;
	}
	json_value *j = json_parse(body, len, NULL);
	if (status != 200) {
		int64_t code = 0;
		const char *msg = j ? json_get_str(j, "message") : NULL;
		if (!j || json_get_i64(j, "code", &code) || code <= 0 || code > GRPC_UNAUTHENTICATED)
			code = grpc_status_from_http(status);
		ka_end(ks, (int)code, msg ? msg : "etcdserver: unexpected answer");
		json_free(j);
		return;
	}
	const json_value *r = j ? json_get(j, "result") : NULL;
	struct buf b;
	buf_init(&b);
	if (!r || etcd_pb_from_json(&b, r, ks->m.resp))
		ka_end(ks, GRPC_INTERNAL, "dsys-raft: answer does not fit the gRPC response");
	else if (grpc_stream_send(ks->ex, b.data ? b.data : "", b.len))
		ks->client_done = true;
	buf_free(&b);
	json_free(j);
	if (ks->client_done && !ks->pending)
		ka_end(ks, GRPC_OK, NULL);
}

static void ka_call(struct http_exchange *ex, const struct grpc_method *m)
{
	struct ka_stream *ks = calloc(1, sizeof *ks);
	INVARIANT(ks != NULL);
	ks->m = *m;
	ks->m.kind = M_KEEPALIVE_STREAM;
	ks->ex = ex;
	uv_timer_init(ex->loop, &ks->check);
	ks->check.data = ks;
	uv_timer_start(&ks->check, ka_check, 1000, 1000);
	ex->route_arg = ks;
	grpc_stream_begin(ex);
	/* the body is the first message (more, if they came together) */
	size_t off = 0;
	const uint8_t *msg;
	size_t len;
	int r;
	while (!ks->ended && (r = grpc_next_message(ex, &off, &msg, &len)) == 1)
		ka_request(ks, msg, len);
	if (!ks->ended)
		grpc_on_message(ex, ka_message, ks);
}

/* A varint; returns its length in t (10 bytes at most). */
static size_t varint(uint8_t *t, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		t[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	t[n++] = (uint8_t)v;
	return n;
}

/* At p (past end: false), `"name":"DIGITS"` then c; *v its value, p moved past c. */
static bool put_field(const char **p, const char *end, const char *name, char c, bool sign, uint64_t *v)
{
	size_t nl = strlen(name);
	const char *q = *p;
	if ((size_t)(end - q) < nl + 6 || q[0] != '"' || memcmp(q + 1, name, nl) || q[nl + 1] != '"' ||
	    q[nl + 2] != ':' || q[nl + 3] != '"')
		return false;
	q += nl + 4;
	const char *d = q;
	while (q < end && *q >= '0' && *q <= '9')
		q++;
	if (q == d || q - d > 20 || q + 1 >= end || q[0] != '"' || q[1] != c)
		return false;
	char num[24];
	memcpy(num, d, (size_t)(q - d));
	num[q - d] = '\0';
	char *e;
	errno = 0;
	*v = sign ? (uint64_t)strtoll(num, &e, 10) : strtoull(num, &e, 10);
	if (errno || *e)
		return false;
	*p = q + 2;
	return true;
}

/*
 * A Put's usual answer, {"header":{"cluster_id":"C","member_id":"M",
 * "revision":"R","raft_term":"T"}} as lib/raft/kv writes it, straight to
 * its PutResponse: the bytes etcd_pb_from_json makes of it (header, field
 * 1, holding its four varints in field order), without building the JSON
 * tree.  The answer path of every write, so a leader under `etcdctl check
 * perf` spent a twentieth of its CPU on the general path.  Anything else
 * (prev_kv, an error) takes the general path: false.
 */
static bool put_answer(struct http_exchange *ex, const char *body, size_t len)
{
	static const char head[] = "{\"header\":{";
	const char *p = body, *end = body + len;
	uint64_t v[4];
	if (len < sizeof head - 1 || memcmp(p, head, sizeof head - 1))
		return false;
	p += sizeof head - 1;
	if (!put_field(&p, end, "cluster_id", ',', false, &v[0]) || !put_field(&p, end, "member_id", ',', false, &v[1]) ||
	    !put_field(&p, end, "revision", ',', true, &v[2]) || !put_field(&p, end, "raft_term", '}', false, &v[3]) ||
	    p + 1 != end || *p != '}')
		return false;
	uint8_t h[4 * 11], msg[2 + sizeof h];
	size_t hn = 0;
	for (int i = 0; i < 4; i++) {
		h[hn++] = (uint8_t)((i + 1) << 3);
		hn += varint(h + hn, v[i]);
	}
	size_t n = 0;
	msg[n++] = 1 << 3 | 2;
	n += varint(msg + n, hn);
	memcpy(msg + n, h, hn);
	grpc_answer_message(ex, (const char *)msg, n + hn);
	return true;
}

void grpc_api_answer(struct http_exchange *ex, int status, const char *body, size_t len)
{
	if (status == 200 && ((const struct grpc_method *)ex->route_arg)->kind == M_V3 &&
	    ((const struct grpc_method *)ex->route_arg)->op == KV_OP_PUT && put_answer(ex, body, len))
		return;
	const struct grpc_method *m = ex->route_arg;
	/* the streams' requests answer through watch_polled and ka_answered */
	INVARIANT(m->kind != M_WATCH_STREAM && m->kind != M_KEEPALIVE_STREAM);
	json_value *j = json_parse(body, len, NULL);
	if (status != 200) {
		int64_t code = 0;
		const char *msg = j ? json_get_str(j, "message") : NULL;
		if (!j || json_get_i64(j, "code", &code) || code <= 0 || code > GRPC_UNAUTHENTICATED)
			code = grpc_status_from_http(status);
		grpc_answer(ex, NULL, 0, (int)code, msg ? msg : "etcdserver: unexpected answer");
		json_free(j);
		return;
	}
	struct buf b;
	buf_init(&b);
	if (!j || etcd_pb_from_json(&b, j, m->resp)) {
		/* INVARIANT-worthy but not fatal: the core wrote JSON this
		 * file cannot map; the client gets INTERNAL, not a crash */
		grpc_answer(ex, NULL, 0, GRPC_INTERNAL, "dsys-raft: answer does not fit the gRPC response");
	} else {
		grpc_answer_message(ex, b.data ? b.data : "", b.len);
	}
	buf_free(&b);
	json_free(j);
}

/* The calls the node answers at once from this member's state.  Alarm
 * answers the list for every action: NOSPACE follows the store's size
 * (node_alarms_json), so a disarm has nothing to clear and the alarm goes
 * when compaction brings the store under the quota.  Defragment has
 * nothing to do (the store is in memory) and answers, as etcd does when
 * done. */
static void maintenance_call(struct http_exchange *ex, const struct grpc_method *m, ProtobufCMessage *req,
                             struct buf *b)
{
	int status = 200;
	switch (m->kind) {
	case M_AUTH:
		if (m->op) {
			static const char *const auth_errors[] = {
				NULL, "etcdserver: root user does not exist", "etcdserver: user name not found",
				"etcdserver: role name not found"};
			protobuf_c_message_free_unpacked(req, NULL);
			grpc_answer(ex, NULL, 0, GRPC_FAILED_PRECONDITION, auth_errors[m->op]);
			return;
		}
		node_status_json(m->n, b);   /* a header, and empty lists */
		break;
	case M_STATUS:
	case M_DEFRAG:   /* its response is the status's header */
		node_status_json(m->n, b);
		break;
	case M_ALARM:
		node_alarms_json(m->n, b);
		break;
	case M_HASH:
		status = node_hashkv(m->n, 0, b);
		break;
	case M_HASHKV:
		status = node_hashkv(m->n, ((Etcdserverpb__HashKVRequest *)req)->revision, b);
		break;
	default:
		node_members_json(m->n, b);
	}
	protobuf_c_message_free_unpacked(req, NULL);
	grpc_api_answer(ex, status, b->data, b->len);
}

/* etcd's "hasleader" metadata: a call that asks for a leader fails, with
 * etcd's code and text, on a member that knows none (clientv3's
 * WithRequireLeader, which etcdctl watch and lease keep-alive use). */
static bool needs_leader_missing(struct http_exchange *ex, struct node *n)
{
	const struct http_header *h = http_message_header(&ex->req.m, "hasleader");
	if (!h || h->value_len != 4 || memcmp(h->value, "true", 4))
		return false;
	struct buf b;
	buf_init(&b);
	bool lead = node_health(n, &b);
	buf_free(&b);
	return !lead;
}

static void grpc_call(struct http_exchange *ex, void *arg)
{
	const struct grpc_method *m = arg;
	if (needs_leader_missing(ex, m->n)) {
		grpc_answer(ex, NULL, 0, GRPC_UNAVAILABLE, "etcdserver: no leader");
		return;
	}
	if (m->kind == M_WATCH) {
		watch_call(ex, m);
		return;
	}
	if (m->kind == M_KEEPALIVE) {
		ka_call(ex, m);
		return;
	}
	const uint8_t *msg;
	size_t len;
	int st = grpc_unary_message(ex, &msg, &len);
	if (st) {
		grpc_answer(ex, NULL, 0, st, "dsys-raft: malformed request message");
		return;
	}
	ProtobufCMessage *req = protobuf_c_message_unpack(m->req, NULL, len, msg);
	if (!req) {
		grpc_answer(ex, NULL, 0, GRPC_INVALID_ARGUMENT, "dsys-raft: malformed request message");
		return;
	}
	struct buf *b = http_scratch(ex);
	if (m->kind == M_V3 && m->op == KV_OP_PUT && ((const Etcdserverpb__PutRequest *)req)->key.len > 0) {
		/* A Put with a key goes to the log in lib/raft/kv's binary form
		 * (kv_put_encode): no JSON or base64 for this member to write
		 * and every member to parse and decode on apply, the most of
		 * each member's CPU per write under `etcdctl check perf`.  What
		 * kv_check asks of a put is asked here (a key, kv_put_refusal);
		 * a Put without a key goes through api_v3 below for its error. */
		const Etcdserverpb__PutRequest *pr = (const Etcdserverpb__PutRequest *)req;
		struct kv_put p = {(const char *)pr->key.data, (const char *)pr->value.data, pr->key.len, pr->value.len,
		                   pr->lease,
		                   (pr->prev_kv ? KV_PUT_PREV_KV : 0u) | (pr->ignore_value ? KV_PUT_IGNORE_VALUE : 0u) |
		                           (pr->ignore_lease ? KV_PUT_IGNORE_LEASE : 0u)};
		const char *refused = kv_put_refusal(&p);
		if (refused) {
			protobuf_c_message_free_unpacked(req, NULL);
			grpc_answer(ex, NULL, 0, GRPC_INVALID_ARGUMENT, refused);
			return;
		}
		buf_reset(b);
		kv_put_encode(b, &p);
		protobuf_c_message_free_unpacked(req, NULL);
		node_request(m->n, ex, m->op, b->data, b->len, false);
		return;
	}
	if (m->kind == M_V3) {
		struct json_writer w;
		json_writer_init(&w, b);
		etcd_pb_to_json(&w, req);
		protobuf_c_message_free_unpacked(req, NULL);
		api_v3(m->n, ex, m->op, b->data, b->len);
		return;
	}
	maintenance_call(ex, m, req, b);
}

void grpc_routes(struct http_router *r, struct node *n)
{
	for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
		methods[i].n = n;
		http_route_add(r, "POST", methods[i].path, grpc_call, &methods[i]);
		if (methods[i].kind == M_WATCH || methods[i].kind == M_KEEPALIVE)
			grpc_bidi_path(methods[i].path);
	}
}
