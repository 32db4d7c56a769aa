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
 * generic, driven by protobuf-c's descriptors of lib/raft/etcd_rpc.proto:
 * a field's proto name is its gateway JSON name (etcd's gateway keeps
 * proto names), bytes are base64, 64-bit integers decimal strings, enums
 * their names.  So a field the core knows works on both front ends at
 * once, and no request semantics live here.
 *
 * Errors: the core's {"error","message","code"} becomes grpc-status
 * "code" with grpc-message "message", etcd's own text, which clients
 * match on ("etcdserver: requested lease not found").
 *
 * Watch and LeaseKeepAlive are bidirectional streams (grpc_bidi_path):
 * Watch a chain of the node's long polls on one stream, LeaseKeepAlive
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
#include "http/route.h"
#include "http/server.h"
#include "raft/etcd_rpc.pb-c.h"
#include "store/etcd.h"

enum method_kind { M_V3, M_STATUS, M_MEMBERS, M_WATCH, M_WATCH_STREAM, M_KEEPALIVE, M_KEEPALIVE_STREAM };

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
	{"/etcdserverpb.Watch/Watch", M_WATCH, 0, PB(watch_request), PB(watch_response), NULL},
	{"/etcdserverpb.Lease/LeaseKeepAlive", M_KEEPALIVE, NODE_OP_KEEPALIVE, PB(lease_keep_alive_request),
	 PB(lease_keep_alive_response), NULL},
};

/* ------------------------------------------------------------ protobuf -> JSON */

static void msg_json(struct json_writer *w, const ProtobufCMessage *m);

static void value_json(struct json_writer *w, const ProtobufCFieldDescriptor *f, const void *p)
{
	char num[24];
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		/* the gateway's form for 64-bit numbers: a string, exact in every client */
		num[fmt_i64(num, *(const int64_t *)p)] = '\0';
		json_str(w, num);
		break;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		num[fmt_u64(num, *(const uint64_t *)p)] = '\0';
		json_str(w, num);
		break;
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		json_i64(w, *(const int32_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		json_u64(w, *(const uint32_t *)p);
		break;
	case PROTOBUF_C_TYPE_BOOL:
		json_bool(w, *(const protobuf_c_boolean *)p != 0);
		break;
	case PROTOBUF_C_TYPE_ENUM: {
		int v = *(const int *)p;
		const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(f->descriptor, v);
		if (ev)
			json_str(w, ev->name);
		else
			json_i64(w, v);
		break;
	}
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(char *const *)p;
		json_str(w, s ? s : "");
		break;
	}
	case PROTOBUF_C_TYPE_BYTES: {
		const ProtobufCBinaryData *bd = p;
		struct buf b;
		buf_init(&b);
		etcd_b64_encode(&b, bd->data, bd->len);
		json_strn(w, b.data ? b.data : "", b.len);
		buf_free(&b);
		break;
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;
		if (sub)
			msg_json(w, sub);
		else
			json_raw(w, "{}", 2);
		break;
	}
	default:
		json_null(w);
	}
}

static size_t elem_size(const ProtobufCFieldDescriptor *f)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64: case PROTOBUF_C_TYPE_DOUBLE:
		return 8;
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_STRING: case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(void *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	default:
		return 4;
	}
}

/* A proto3 field at its zero value is not on the wire and not in the
 * gateway's JSON either. */
static bool is_zero(const ProtobufCFieldDescriptor *f, const void *p)
{
	switch (elem_size(f)) {
	case 8:
		return *(const uint64_t *)p == 0;
	case sizeof(ProtobufCBinaryData):
		return ((const ProtobufCBinaryData *)p)->len == 0;
	}
	if (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE) {
		const char *s = *(char *const *)p;
		return !s || (f->type == PROTOBUF_C_TYPE_STRING && !*s);
	}
	return *(const uint32_t *)p == 0;
}

static void msg_json(struct json_writer *w, const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	const char *base = (const char *)m;
	json_obj_begin(w);
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const void *p = base + f->offset;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)(base + f->quantifier_offset);
			if (!n)
				continue;
			const char *arr = *(char *const *)p;
			json_key(w, f->name);
			json_arr_begin(w);
			for (size_t j = 0; j < n; j++)
				value_json(w, f, arr + j * elem_size(f));
			json_arr_end(w);
			continue;
		}
		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			/* a oneof member is there when chosen, zero or not (version = 0 in a compare) */
			if (*(const uint32_t *)(base + f->quantifier_offset) != f->id)
				continue;
		} else if (f->type != PROTOBUF_C_TYPE_ENUM && is_zero(f, p)) {
			continue;
		}
		json_key(w, f->name);
		value_json(w, f, p);
	}
	json_obj_end(w);
}

/* ------------------------------------------------------------ JSON -> protobuf */

static void put_varint(struct buf *b, uint64_t v)
{
	uint8_t t[10];
	size_t n = 0;
	while (v >= 0x80) {
		t[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	t[n++] = (uint8_t)v;
	buf_append(b, t, n);
}

static void put_len(struct buf *b, uint32_t id, const void *p, size_t n)
{
	put_varint(b, (uint64_t)id << 3 | 2);
	put_varint(b, n);
	if (n)
		buf_append(b, p, n);
}

static int json_wire(struct buf *out, const json_value *obj, const ProtobufCMessageDescriptor *d);

/* A JSON number, decimal string or boolean as a varint's value; -1 when it is none. */
static int json_varint(const ProtobufCFieldDescriptor *f, const json_value *v, uint64_t *out)
{
	if (cJSON_IsBool(v)) {
		*out = cJSON_IsTrue(v);
		return 0;
	}
	if (cJSON_IsNumber(v)) {
		*out = (uint64_t)(int64_t)v->valuedouble;
		return 0;
	}
	if (!cJSON_IsString(v))
		return -1;
	if (f->type == PROTOBUF_C_TYPE_ENUM) {
		const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value_by_name(f->descriptor, v->valuestring);
		if (!ev)
			return -1;
		*out = (uint64_t)(int64_t)ev->value;
		return 0;
	}
	char *end;
	errno = 0;
	if (f->type == PROTOBUF_C_TYPE_UINT64 || f->type == PROTOBUF_C_TYPE_UINT32)
		*out = strtoull(v->valuestring, &end, 10);
	else
		*out = (uint64_t)strtoll(v->valuestring, &end, 10);
	return errno || end == v->valuestring || *end ? -1 : 0;
}

static int field_wire(struct buf *out, const ProtobufCFieldDescriptor *f, const json_value *v)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_BOOL: case PROTOBUF_C_TYPE_ENUM: {
		uint64_t x;
		if (json_varint(f, v, &x))
			return -1;
		put_varint(out, (uint64_t)f->id << 3);
		put_varint(out, x);
		return 0;
	}
	case PROTOBUF_C_TYPE_STRING:
		if (!cJSON_IsString(v))
			return -1;
		put_len(out, f->id, v->valuestring, strlen(v->valuestring));
		return 0;
	case PROTOBUF_C_TYPE_BYTES: {
		if (!cJSON_IsString(v))
			return -1;
		struct buf b;
		buf_init(&b);
		int rc = etcd_b64_decode(&b, v->valuestring, strlen(v->valuestring));
		if (rc >= 0)
			put_len(out, f->id, b.data, b.len);
		buf_free(&b);
		return rc < 0 ? -1 : 0;
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		if (!cJSON_IsObject(v))
			return -1;
		struct buf b;
		buf_init(&b);
		int rc = json_wire(&b, v, f->descriptor);
		if (rc == 0)
			put_len(out, f->id, b.data, b.len);
		buf_free(&b);
		return rc;
	}
	default:
		return -1;   /* no such field in etcd_rpc.proto */
	}
}

/* The message d from the gateway JSON object obj, fields in number order
 * (protobuf-c lists them so), unknown members ignored as protobuf does. */
static int json_wire(struct buf *out, const json_value *obj, const ProtobufCMessageDescriptor *d)
{
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const json_value *v = cJSON_GetObjectItemCaseSensitive(obj, f->name);
		if (!v || cJSON_IsNull(v))
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			if (!cJSON_IsArray(v))
				return -1;
			const json_value *e;
			cJSON_ArrayForEach(e, v)
			{
				if (field_wire(out, f, e))
					return -1;
			}
		} else if (field_wire(out, f, v)) {
			return -1;
		}
	}
	return 0;
}

/* ------------------------------------------------------------ calls */

/* ------------------------------------------------------------ Watch */

/*
 * Watch is a bidirectional stream; the node's watch is a long poll
 * (node_watch answers once, with etcd's gateway lines, when events past
 * its start revision exist or its poll time passes).  A gRPC watch here
 * is a chain of those polls on one open stream: the first answer's
 * "created" line becomes the created response, each answer's events one
 * WatchResponse, and the next poll starts after the last event's
 * revision, so every event is sent once and in order.  The next poll is
 * started from a zero timer, not from inside the answer, so the node
 * never sees a watch created while it is answering one.  Only the
 * stream's first message is read (one watch per stream, id 0, as
 * etcdctl watch opens it); cancel and progress requests are not seen.
 */
struct watch_stream {
	struct grpc_method m;      /* first: ex->route_arg points here, kind M_WATCH_STREAM */
	struct http_exchange *ex;
	json_value *create;        /* the create_request, start_revision moved on per poll */
	int64_t next;              /* first revision not sent yet; 0 before the first answer */
	bool created;
	uv_timer_t again;
};

static void watch_freed(uv_handle_t *h)
{
	struct watch_stream *ws = h->data;
	json_free(ws->create);
	free(ws);
}

static void watch_end(struct watch_stream *ws, int status, const char *msg)
{
	grpc_stream_end(ws->ex, status, msg);
	uv_close((uv_handle_t *)&ws->again, watch_freed);
}

static void watch_poll(struct watch_stream *ws)
{
	if (ws->next) {
		char num[24];
		num[fmt_i64(num, ws->next)] = '\0';
		cJSON_DeleteItemFromObjectCaseSensitive(ws->create, "start_revision");
		cJSON_AddItemToObject(ws->create, "start_revision", cJSON_CreateString(num));
	}
	char *c = cJSON_PrintUnformatted(ws->create);
	INVARIANT(c != NULL);
	struct buf b;
	buf_init(&b);
	buf_printf(&b, "{\"create_request\":%s}", c);
	cJSON_free(c);
	node_watch(ws->m.n, ws->ex, b.data, b.len);
	buf_free(&b);
}

static void watch_again(uv_timer_t *t)
{
	watch_poll(t->data);
}

/* Send one gateway line's "result" as a WatchResponse; false when the client is gone. */
static bool watch_send(struct watch_stream *ws, const json_value *r)
{
	struct buf b;
	buf_init(&b);
	bool ok = json_wire(&b, r, ws->m.resp) == 0 &&
	          grpc_stream_send(ws->ex, b.data ? b.data : "", b.len) == 0;
	buf_free(&b);
	return ok;
}

static void watch_answer(struct watch_stream *ws, int status, const char *body, size_t len)
{
	if (http_exchange_gone(ws->ex)) {
		watch_end(ws, GRPC_CANCELLED, NULL);
		return;
	}
	if (status != 200) {
		json_value *j = json_parse(body, len, NULL);
		int64_t code = 0;
		const char *msg = j ? json_get_str(j, "message") : NULL;
		if (!j || json_get_i64(j, "code", &code) || code <= 0 || code > GRPC_UNAUTHENTICATED)
			code = grpc_status_from_http(status);
		watch_end(ws, (int)code, msg ? msg : "etcdserver: unexpected answer");
		json_free(j);
		return;
	}
	const char *p = body, *end = body + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		json_value *j = n ? json_parse(p, n, NULL) : NULL;
		p += n + 1;
		const json_value *r = j ? json_get(j, "result") : NULL;
		if (!r) {
			json_free(j);
			continue;
		}
		const json_value *events = json_get(r, "events");
		bool ok = true;
		if (cJSON_IsTrue(json_get(r, "created"))) {
			if (!ws->created) {
				ws->created = true;
				int64_t from = 0, rev = 0;
				const json_value *h = json_get(r, "header");
				const char *sr = json_get_str(ws->create, "start_revision");
				if (sr && json_parse_i64(sr, strlen(sr), &from) == 0 && from > 0)
					ws->next = from;
				else if (h && json_get_str(h, "revision") &&
				         json_parse_i64(json_get_str(h, "revision"), strlen(json_get_str(h, "revision")), &rev) == 0)
					ws->next = rev + 1;
				ok = watch_send(ws, r);
			}
		} else if (cJSON_IsTrue(json_get(r, "canceled"))) {
			watch_send(ws, r);
			json_free(j);
			watch_end(ws, GRPC_OK, NULL);
			return;
		} else if (cJSON_IsArray(events) && cJSON_GetArraySize(events) > 0) {
			const json_value *last = cJSON_GetArrayItem(events, cJSON_GetArraySize(events) - 1);
			const json_value *kv = json_get(last, "kv");
			const char *mr = kv ? json_get_str(kv, "mod_revision") : NULL;
			int64_t rev;
			if (mr && json_parse_i64(mr, strlen(mr), &rev) == 0)
				ws->next = rev + 1;
			ok = watch_send(ws, r);
		}
		json_free(j);
		if (!ok) {
			watch_end(ws, GRPC_CANCELLED, NULL);
			return;
		}
	}
	uv_timer_start(&ws->again, watch_again, 0, 0);
}

static void watch_call(struct http_exchange *ex, const struct grpc_method *m)
{
	size_t off = 0;
	const uint8_t *msg;
	size_t len;
	if (grpc_next_message(ex, &off, &msg, &len) != 1) {
		grpc_answer(ex, NULL, 0, GRPC_INVALID_ARGUMENT, "dsys-raft: malformed request message");
		return;
	}
	Etcdserverpb__WatchRequest *req = etcdserverpb__watch_request__unpack(NULL, len, msg);
	if (!req || req->request_union_case != ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST) {
		if (req)
			etcdserverpb__watch_request__free_unpacked(req, NULL);
		grpc_answer(ex, NULL, 0, GRPC_INVALID_ARGUMENT, "dsys-raft: a watch stream starts with a create_request");
		return;
	}
	struct buf b;
	buf_init(&b);
	struct json_writer w;
	json_writer_init(&w, &b);
	msg_json(&w, &req->create_request->base);
	etcdserverpb__watch_request__free_unpacked(req, NULL);
	struct watch_stream *ws = calloc(1, sizeof *ws);
	INVARIANT(ws != NULL);
	ws->create = json_parse(b.data, b.len, NULL);
	buf_free(&b);
	INVARIANT(ws->create != NULL);   /* msg_json writes an object */
	ws->m = *m;
	ws->m.kind = M_WATCH_STREAM;
	ws->ex = ex;
	uv_timer_init(ex->loop, &ws->again);
	ws->again.data = ws;
	ex->route_arg = ws;
	grpc_stream_begin(ex);
	watch_poll(ws);
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
 */
struct ka_stream {
	struct grpc_method m;      /* first: ex->route_arg points here, kind M_KEEPALIVE_STREAM */
	struct http_exchange *ex;
	unsigned pending;          /* requests with the node */
	bool client_done, ended;
	uv_timer_t check;
};

static void ka_freed(uv_handle_t *h)
{
	free(h->data);
}

static void ka_end(struct ka_stream *ks, int status, const char *msg)
{
	if (ks->ended)
		return;
	ks->ended = true;
	grpc_stream_end(ks->ex, status, msg);
	uv_close((uv_handle_t *)&ks->check, ka_freed);
}

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
	msg_json(&w, req);
	protobuf_c_message_free_unpacked(req, NULL);
	ks->pending++;
	api_v3(ks->m.n, ks->ex, ks->m.op, b.data, b.len);
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
	if (!ks->pending && http_exchange_gone(ks->ex))
		ka_end(ks, GRPC_CANCELLED, NULL);
}

static void ka_answer(struct ka_stream *ks, int status, const char *body, size_t len)
{
	INVARIANT(ks->pending > 0);
	ks->pending--;
	if (ks->ended)
		return;
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
	if (!r || json_wire(&b, r, ks->m.resp))
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

void grpc_api_answer(struct http_exchange *ex, int status, const char *body, size_t len)
{
	const struct grpc_method *m = ex->route_arg;
	if (m->kind == M_WATCH_STREAM) {
		watch_answer((struct watch_stream *)m, status, body, len);
		return;
	}
	if (m->kind == M_KEEPALIVE_STREAM) {
		ka_answer((struct ka_stream *)m, status, body, len);
		return;
	}
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
	if (!j || json_wire(&b, j, m->resp)) {
		/* INVARIANT-worthy but not fatal: the core wrote JSON this
		 * file cannot map; the client gets INTERNAL, not a crash */
		grpc_answer(ex, NULL, 0, GRPC_INTERNAL, "dsys-raft: answer does not fit the gRPC response");
	} else {
		grpc_answer_message(ex, b.data ? b.data : "", b.len);
	}
	buf_free(&b);
	json_free(j);
}

static void grpc_call(struct http_exchange *ex, void *arg)
{
	const struct grpc_method *m = arg;
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
	if (m->kind == M_V3) {
		struct json_writer w;
		json_writer_init(&w, b);
		msg_json(&w, req);
		protobuf_c_message_free_unpacked(req, NULL);
		api_v3(m->n, ex, m->op, b->data, b->len);
		return;
	}
	protobuf_c_message_free_unpacked(req, NULL);
	if (m->kind == M_STATUS)
		node_status_json(m->n, b);
	else
		node_members_json(m->n, b);
	grpc_api_answer(ex, 200, b->data, b->len);
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
