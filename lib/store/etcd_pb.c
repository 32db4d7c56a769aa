/*
 * store/etcd_pb.c -- etcd's gRPC messages for the etcd client and
 * dsys-raft (see etcd_pb.h).
 *
 * The JSON <-> protobuf translation walks protobuf-c's descriptors, so it
 * knows no message by name; the answer decoder is the opposite: it knows
 * each unary answer's fields and fills struct etcd_resp from protobuf-c's
 * unpacked message directly.
 *
 * One answer is read without protobuf-c: a Range's (etcd_pb_range_direct),
 * the one that is large -- a registry's 1000 instances.  Unpacking it
 * built some 4000 small objects that fill() then copied again into a
 * malloc per key and per value (and etcd_resp_free freed each); the
 * direct reader walks the wire bytes twice (the frame, to count the kvs
 * and bound their bytes; then the fields) and copies every key and value
 * once, into one block per answer (struct etcd_resp's kv_block).  It
 * must answer exactly as protobuf-c 1.4.1 would: it decodes what it is
 * sure of (any field order, unknown fields of wire types 0, 1, 2 and 5,
 * a field given twice -- the last wins, the header too, which
 * protobuf-c's merge leaves as the last one was, revision and all --
 * varints of up to ten bytes, a bool true for any bit of its varint)
 * and hands anything else (a known field of the wrong wire type, a cut
 * field, field 0, a group, a key or length longer than protobuf-c
 * reads) to the protobuf-c path, which accepts or refuses it as before.
 * tests/fuzz/fuzz_etcd_pb.c compares the two on every input.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/invariant.h"
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
 * an unpacked answer of 1000 keys (a deleterange's prev_kvs, a txn's
 * range, a range the direct reader left to protobuf-c) is some 4000
 * small blocks (each KeyValue, its key, its value, the array), and
 * fill() copies out what it keeps, so none needs a malloc and a free of
 * its own.  The first
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

int etcd_pb_parse_unpacked(const char *path, const uint8_t *msg, size_t len, struct etcd_resp *resp)
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

/* ------------------------------------------------------------ Range, read directly */

/* The unread bytes [p, end) of a message.  Every read checks that its
 * bytes are there first; a read that fails leaves p anywhere in [p, end]. */
struct pb_in {
	const uint8_t *p, *end;
};

/* A varint of at most 10 bytes as protobuf-c reads it: bits past the
 * 64th dropped.  *any (when asked): some payload bit was set, past the
 * 64th too -- protobuf-c's bool.  -1: cut, or longer than 10 bytes.
 * pb_varint takes a one-byte varint (most keys, lengths and small
 * numbers) inline, and leaves the others to pb_varint_long. */
static int pb_varint_long(struct pb_in *in, uint64_t *v, bool *any)
{
	const uint8_t *p = in->p;
	size_t room = (size_t)(in->end - p), max = room < 10 ? room : 10;
	uint64_t x = 0;
	unsigned bits = 0;
	for (size_t i = 0; i < max; i++) {
		uint8_t b = p[i];
		bits |= b & 0x7fu;
		x |= (uint64_t)(b & 0x7fu) << (7 * i);
		if (!(b & 0x80)) {
			in->p = p + i + 1;
			*v = x;
			if (any)
				*any = bits != 0;
			return 0;
		}
	}
	return -1;
}

static inline int pb_varint(struct pb_in *in, uint64_t *v, bool *any)
{
	if (in->p < in->end && *in->p < 0x80) {
		*v = *in->p++;
		if (any)
			*any = *v != 0;
		return 0;
	}
	return pb_varint_long(in, v, any);
}

/* A field's key: its number (*field, never 0) and wire type (*wt).  -1 on
 * anything protobuf-c might read otherwise: a key longer than 5 bytes
 * (refused there) or field 0. */
static inline int pb_key(struct pb_in *in, uint32_t *field, unsigned *wt)
{
	const uint8_t *start = in->p;
	uint64_t v;
	if (pb_varint(in, &v, NULL) < 0 || in->p - start > 5 || v >> 3 == 0)
		return -1;
	*field = (uint32_t)(v >> 3);   /* below 2^32: 5 bytes hold 35 bits */
	*wt = (unsigned)(v & 7);
	return 0;
}

/* A length-delimited field's payload as *sub, in moved past it.  -1 when
 * the length takes more than 5 bytes (protobuf-c's limit) or runs past
 * end. */
static inline int pb_len(struct pb_in *in, struct pb_in *sub)
{
	const uint8_t *start = in->p;
	uint64_t n;
	if (pb_varint(in, &n, NULL) < 0 || in->p - start > 5 || n > (uint64_t)(in->end - in->p))
		return -1;
	sub->p = in->p;
	sub->end = in->p + n;
	in->p = sub->end;
	return 0;
}

static int pb_fixed(struct pb_in *in, size_t n)
{
	if ((size_t)(in->end - in->p) < n)
		return -1;
	in->p += n;
	return 0;
}

/* An unknown field's value, skipped.  Groups (3, 4) and wire types 6
 * and 7 protobuf-c refuses: -1. */
static int pb_skip(struct pb_in *in, unsigned wt)
{
	uint64_t v;
	struct pb_in sub;
	switch (wt) {
	case 0:
		return pb_varint(in, &v, NULL);
	case 1:
		return pb_fixed(in, 8);
	case 2:
		return pb_len(in, &sub);
	case 5:
		return pb_fixed(in, 4);
	}
	return -1;
}

/* A ResponseHeader: *rev is its revision (field 3), 0 when absent; the
 * other three fields are varints too, checked and dropped. */
static int pb_header(struct pb_in in, int64_t *rev)
{
	*rev = 0;
	while (in.p < in.end) {
		uint32_t f;
		unsigned wt;
		uint64_t v;
		if (pb_key(&in, &f, &wt) < 0)
			return -1;
		if (f > 4) {
			if (pb_skip(&in, wt) < 0)
				return -1;
			continue;
		}
		if (wt != 0 || pb_varint(&in, &v, NULL) < 0)
			return -1;
		if (f == 3)
			*rev = (int64_t)v;
	}
	return 0;
}

/* A KeyValue: its numbers into *kv, its key and value as slices of the
 * message (*key, *value; empty when absent). */
static int pb_kv(struct pb_in in, struct etcd_kv *kv, struct pb_in *key, struct pb_in *value)
{
	*key = *value = (struct pb_in){in.p, in.p};
	kv->create_revision = kv->mod_revision = kv->version = kv->lease = 0;
	while (in.p < in.end) {
		uint32_t f;
		unsigned wt;
		uint64_t v;
		if (pb_key(&in, &f, &wt) < 0)
			return -1;
		switch (f) {
		case 1:
		case 5:
			if (wt != 2 || pb_len(&in, f == 1 ? key : value) < 0)
				return -1;
			break;
		case 2:
		case 3:
		case 4:
		case 6:
			if (wt != 0 || pb_varint(&in, &v, NULL) < 0)
				return -1;
			*(f == 2 ? &kv->create_revision : f == 3 ? &kv->mod_revision
			  : f == 4 ? &kv->version : &kv->lease) = (int64_t)v;
			break;
		default:
			if (pb_skip(&in, wt) < 0)
				return -1;
		}
	}
	return 0;
}

/* s's bytes and a NUL at at; *out, *len name them.  Returns the byte
 * after the NUL. */
static char *put_str(char *at, struct pb_in s, char **out, size_t *len)
{
	size_t n = (size_t)(s.end - s.p);
	if (n)
		memcpy(at, s.p, n);
	at[n] = '\0';
	*out = at;
	*len = n;
	return at + n + 1;
}

/* The first pass: the top level's fields framed and checked, the kvs
 * counted (*n) and their strings' room bounded (*bytes: each kv's
 * message length and two NULs; its key and value are disjoint parts of
 * it). */
static int range_frame(struct pb_in in, size_t *n, size_t *bytes)
{
	*n = *bytes = 0;
	while (in.p < in.end) {
		uint32_t f;
		unsigned wt;
		struct pb_in sub;
		if (pb_key(&in, &f, &wt) < 0)
			return -1;
		if (f == 2 && wt == 2) {
			if (pb_len(&in, &sub) < 0)
				return -1;
			++*n;
			*bytes += (size_t)(sub.end - sub.p) + 2;
			continue;
		}
		/* header is a message, more and count varints */
		if ((f == 1 && wt != 2) || f == 2 || ((f == 3 || f == 4) && wt != 0))
			return -1;
		if (pb_skip(&in, wt) < 0)
			return -1;
	}
	return 0;
}

int etcd_pb_range_direct(const uint8_t *msg, size_t len, struct etcd_resp *r)
{
	memset(r, 0, sizeof *r);
	if (len == 0)
		return 0;   /* every field at zero */
	if (len > INT32_MAX)
		return ETCD_PB_FALLBACK;   /* protobuf-c's lengths are 32-bit */
	const struct pb_in all = {msg, msg + len};
	size_t n, bytes;
	if (range_frame(all, &n, &bytes) < 0)
		return ETCD_PB_FALLBACK;
	if (n) {
		r->kvs = malloc(n * sizeof *r->kvs);
		r->kv_block = malloc(bytes);
		if (!r->kvs || !r->kv_block)
			return -ENOMEM;
	}
	char *at = r->kv_block;
	size_t i = 0;
	struct pb_in in = all;
	while (in.p < in.end) {
		uint32_t f;
		unsigned wt;
		uint64_t v;
		bool any;
		struct pb_in sub, key, value;
		if (pb_key(&in, &f, &wt) < 0)
			goto unsure;
		switch (f) {   /* range_frame checked the known fields' wire types */
		case 1:   /* a second header replaces the first, as in protobuf-c */
			if (pb_len(&in, &sub) < 0 || pb_header(sub, &r->revision) < 0)
				goto unsure;
			break;
		case 2:
			INVARIANT(i < n);   /* range_frame counted each */
			if (pb_len(&in, &sub) < 0 || pb_kv(sub, &r->kvs[i], &key, &value) < 0)
				goto unsure;
			INVARIANT((size_t)(key.end - key.p) + (size_t)(value.end - value.p) + 2 <=
			          bytes - (size_t)(at - r->kv_block));
			at = put_str(at, key, &r->kvs[i].key, &r->kvs[i].key_len);
			at = put_str(at, value, &r->kvs[i].value, &r->kvs[i].value_len);
			i++;
			break;
		case 3:
			if (pb_varint(&in, &v, &any) < 0)
				goto unsure;
			r->more = any;
			break;
		case 4:
			if (pb_varint(&in, &v, NULL) < 0)
				goto unsure;
			r->count = (int64_t)v;
			break;
		default:
			if (pb_skip(&in, wt) < 0)
				goto unsure;
		}
	}
	INVARIANT(i == n);
	r->n_kvs = n;
	return 0;
unsure:
	free(r->kvs);
	free(r->kv_block);
	memset(r, 0, sizeof *r);
	return ETCD_PB_FALLBACK;
}

int etcd_parse_grpc(const char *path, const uint8_t *msg, size_t len, struct etcd_resp *resp)
{
	if (strcmp(path, ETCD_PATH_RANGE) == 0) {
		int rc = etcd_pb_range_direct(msg, len, resp);
		if (rc != ETCD_PB_FALLBACK)
			return rc;
	}
	return etcd_pb_parse_unpacked(path, msg, len, resp);
}
