/*
 * store/etcd_pb.c -- etcd's gRPC messages for the etcd client and
 * dsys-raft (see etcd_pb.h).
 *
 * The JSON <-> protobuf translation walks protobuf-c's descriptors, so it
 * knows no message by name; the answer decoder is the opposite: it knows
 * each unary answer's fields and fills struct etcd_resp from protobuf-c's
 * unpacked message directly.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/json.h"
#include "store/etcd.h"
#include "store/etcd_pb.h"

/* ------------------------------------------------------------ methods */

#define PB(x) &etcdserverpb__##x##__descriptor
static const struct etcd_grpc_method methods[] = {
	{ ETCD_PATH_RANGE, "/etcdserverpb.KV/Range", PB(range_request), PB(range_response) },
	{ ETCD_PATH_PUT, "/etcdserverpb.KV/Put", PB(put_request), PB(put_response) },
	{ ETCD_PATH_DELETE, "/etcdserverpb.KV/DeleteRange", PB(delete_range_request),
	  PB(delete_range_response) },
	{ ETCD_PATH_TXN, "/etcdserverpb.KV/Txn", PB(txn_request), PB(txn_response) },
	{ ETCD_PATH_GRANT, "/etcdserverpb.Lease/LeaseGrant", PB(lease_grant_request),
	  PB(lease_grant_response) },
	{ ETCD_PATH_REVOKE, "/etcdserverpb.Lease/LeaseRevoke", PB(lease_revoke_request),
	  PB(lease_revoke_response) },
	{ ETCD_PATH_TTL, "/etcdserverpb.Lease/LeaseTimeToLive", PB(lease_time_to_live_request),
	  PB(lease_time_to_live_response) },
	/* a bidirectional stream: one request, then END_STREAM, is one refresh */
	{ ETCD_PATH_KEEPALIVE, "/etcdserverpb.Lease/LeaseKeepAlive", PB(lease_keep_alive_request),
	  PB(lease_keep_alive_response) },
	{ ETCD_PATH_LEASES, "/etcdserverpb.Lease/LeaseLeases", PB(lease_leases_request),
	  PB(lease_leases_response) },
};

const struct etcd_grpc_method *etcd_grpc_method(const char *path)
{
	for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
		if (strcmp(methods[i].path, path) == 0)
			return &methods[i];
	return NULL;
}

/* ------------------------------------------------------------ protobuf -> JSON */


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
			etcd_pb_to_json(w, sub);
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

void etcd_pb_to_json(struct json_writer *w, const ProtobufCMessage *m)
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
		int rc = etcd_pb_from_json(&b, v, f->descriptor);
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
int etcd_pb_from_json(struct buf *out, const json_value *obj, const ProtobufCMessageDescriptor *d)
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

/* ------------------------------------------------------------ requests */

int etcd_grpc_request(struct buf *out, const char *path, const char *body, size_t len)
{
	const struct etcd_grpc_method *m = etcd_grpc_method(path);
	if (!m)
		return -ENOENT;
	json_value *obj = json_parse(body, len, NULL);
	int rc = obj && cJSON_IsObject(obj) && etcd_pb_from_json(out, obj, m->req) == 0 ? 0 : -EINVAL;
	json_free(obj);
	return rc;
}

/* ------------------------------------------------------------ answers */

static int kv_fill(struct etcd_kv *kv, const Etcdserverpb__KeyValue *m)
{
	kv->key = malloc(m->key.len + 1);
	kv->value = malloc(m->value.len + 1);
	if (!kv->key || !kv->value)
		return -ENOMEM;
	if (m->key.len)
		memcpy(kv->key, m->key.data, m->key.len);
	if (m->value.len)
		memcpy(kv->value, m->value.data, m->value.len);
	kv->key[m->key.len] = '\0';
	kv->value[m->value.len] = '\0';
	kv->key_len = m->key.len;
	kv->value_len = m->value.len;
	kv->create_revision = m->create_revision;
	kv->mod_revision = m->mod_revision;
	kv->version = m->version;
	kv->lease = m->lease;
	return 0;
}

static int kvs_fill(struct etcd_kv **out, size_t *n, Etcdserverpb__KeyValue *const *kvs, size_t count)
{
	if (!count)
		return 0;
	if (!(*out = calloc(count, sizeof **out)))
		return -ENOMEM;
	for (size_t i = 0; i < count; i++) {
		(*n)++;   /* counted first: a half-filled one is freed too */
		if (kv_fill(&(*out)[i], kvs[i]) < 0)
			return -ENOMEM;
	}
	return 0;
}

static int64_t header_rev(const Etcdserverpb__ResponseHeader *h)
{
	return h ? h->revision : 0;
}

static int fill(const ProtobufCMessage *m, struct etcd_resp *r, int depth);

static int txn_fill(const Etcdserverpb__TxnResponse *t, struct etcd_resp *r, int depth)
{
	r->revision = header_rev(t->header);
	r->succeeded = t->succeeded;
	if (!t->n_responses)
		return 0;
	r->responses = calloc(t->n_responses, sizeof *r->responses);
	r->response_kinds = calloc(t->n_responses, sizeof *r->response_kinds);
	if (!r->responses || !r->response_kinds)
		return -ENOMEM;
	for (size_t i = 0; i < t->n_responses; i++) {
		const Etcdserverpb__ResponseOp *op = t->responses[i];
		const ProtobufCMessage *inner;
		switch (op->response_case) {
		case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_PUT:
			r->response_kinds[i] = ETCD_OP_PUT;
			inner = &op->response_put->base;
			break;
		case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE:
			r->response_kinds[i] = ETCD_OP_RANGE;
			inner = &op->response_range->base;
			break;
		case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_DELETE_RANGE:
			r->response_kinds[i] = ETCD_OP_DELETE;
			inner = &op->response_delete_range->base;
			break;
		default:
			return ETCD_E_PROTOCOL;   /* nested txn is not what we ask; none: not etcd */
		}
		r->n_responses++;
		int rc = fill(inner, &r->responses[i], depth + 1);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int fill(const ProtobufCMessage *m, struct etcd_resp *r, int depth)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	if (depth > 2)
		return ETCD_E_PROTOCOL;
	if (d == PB(range_response)) {
		const Etcdserverpb__RangeResponse *x = (const void *)m;
		r->revision = header_rev(x->header);
		r->more = x->more;
		r->count = x->count;
		return kvs_fill(&r->kvs, &r->n_kvs, x->kvs, x->n_kvs);
	}
	if (d == PB(put_response)) {
		const Etcdserverpb__PutResponse *x = (const void *)m;
		r->revision = header_rev(x->header);
		return x->prev_kv ? kvs_fill(&r->prev_kvs, &r->n_prev_kvs, &x->prev_kv, 1) : 0;
	}
	if (d == PB(delete_range_response)) {
		const Etcdserverpb__DeleteRangeResponse *x = (const void *)m;
		r->revision = header_rev(x->header);
		r->deleted = x->deleted;
		return kvs_fill(&r->prev_kvs, &r->n_prev_kvs, x->prev_kvs, x->n_prev_kvs);
	}
	if (d == PB(txn_response))
		return txn_fill((const void *)m, r, depth);
	if (d == PB(lease_grant_response)) {
		const Etcdserverpb__LeaseGrantResponse *x = (const void *)m;
		r->revision = header_rev(x->header);
		r->lease_id = x->id;
		r->ttl = x->ttl;
		return 0;
	}
	if (d == PB(lease_revoke_response)) {
		r->revision = header_rev(((const Etcdserverpb__LeaseRevokeResponse *)(const void *)m)->header);
		return 0;
	}
	if (d == PB(lease_keep_alive_response)) {
		const Etcdserverpb__LeaseKeepAliveResponse *x = (const void *)m;
		r->revision = header_rev(x->header);
		r->lease_id = x->id;
		r->ttl = x->ttl;
		return 0;
	}
	if (d == PB(lease_time_to_live_response)) {
		const Etcdserverpb__LeaseTimeToLiveResponse *x = (const void *)m;
		r->revision = header_rev(x->header);
		r->lease_id = x->id;
		r->ttl = x->ttl;
		r->granted_ttl = x->grantedttl;
		if (x->n_keys && !(r->lease_keys = calloc(x->n_keys, sizeof *r->lease_keys)))
			return -ENOMEM;
		for (size_t i = 0; i < x->n_keys; i++) {
			struct etcd_kv *kv = &r->lease_keys[r->n_lease_keys++];
			if (!(kv->key = malloc(x->keys[i].len + 1)))
				return -ENOMEM;
			if (x->keys[i].len)
				memcpy(kv->key, x->keys[i].data, x->keys[i].len);
			kv->key[x->keys[i].len] = '\0';
			kv->key_len = x->keys[i].len;
		}
		return 0;
	}
	if (d == PB(lease_leases_response)) {
		const Etcdserverpb__LeaseLeasesResponse *x = (const void *)m;
		r->revision = header_rev(x->header);
		if (x->n_leases && !(r->leases = calloc(x->n_leases, sizeof *r->leases)))
			return -ENOMEM;
		for (size_t i = 0; i < x->n_leases; i++)
			r->leases[r->n_leases++] = x->leases[i]->id;
		return 0;
	}
	return ETCD_E_PROTOCOL;
}

/* protobuf-c's allocations for one answer, from an arena freed whole:
 * an unpacked range of 1000 keys is some 4000 small blocks (each
 * KeyValue, its key, its value, the array), and fill() copies out what
 * it keeps, so none needs a malloc and a free of its own.  The first
 * chunk holds a typical answer (the unpacked form is at most a few times
 * the message); more come as needed, each at least ARENA_CHUNK. */
#define ARENA_CHUNK (64u << 10)

struct arena_chunk { struct arena_chunk *next; size_t size, used; max_align_t data[]; };
struct arena { struct arena_chunk *head; size_t first; };

static void *arena_alloc(void *ud, size_t n)
{
	struct arena *a = ud;
	const size_t align = sizeof(max_align_t);
	n = (n + align - 1) / align * align;
	struct arena_chunk *c = a->head;
	if (!c || c->size - c->used < n) {
		size_t size = c ? ARENA_CHUNK : a->first;
		if (size < n)
			size = n;
		if (size > SIZE_MAX - sizeof *c || !(c = malloc(sizeof *c + size)))
			return NULL;
		c->next = a->head;
		c->size = size;
		c->used = 0;
		a->head = c;
	}
	void *p = (char *)c->data + c->used;
	c->used += n;
	return p;
}

static void arena_free_one(void *ud, void *p)
{
	(void)ud;
	(void)p;   /* all at once, in arena_release */
}

static void arena_release(struct arena *a)
{
	while (a->head) {
		struct arena_chunk *next = a->head->next;
		free(a->head);
		a->head = next;
	}
}

int etcd_parse_grpc(const char *path, const uint8_t *msg, size_t len, struct etcd_resp *resp)
{
	memset(resp, 0, sizeof *resp);
	const struct etcd_grpc_method *md = etcd_grpc_method(path);
	if (!md)
		return ETCD_E_PROTOCOL;
	struct arena a = {NULL, len < ARENA_CHUNK / 2 ? ARENA_CHUNK : 2 * len};
	ProtobufCAllocator alloc = {arena_alloc, arena_free_one, &a};
	ProtobufCMessage *m = protobuf_c_message_unpack(md->resp, &alloc, len, msg);
	int rc = m ? fill(m, resp, 0) : ETCD_E_PROTOCOL;
	arena_release(&a);   /* m with it: nothing in resp points into it */
	return rc;
}
