/* Unit tests of lib/store/etcd's gRPC transport (store/etcd_pb and the
 * client's h2c half).
 *
 * The pure half: each unary call's gateway body (etcd_req_*) becomes the
 * protobuf request etcd's gRPC API takes (decoded here with protobuf-c and
 * checked field by field), and each protobuf answer becomes the struct
 * etcd_resp the gateway's JSON gives.  A Range answer, which store/etcd_pb
 * reads from the wire bytes itself, is also built by hand (unknown
 * fields, fields twice or out of order, long varints, cut and refused
 * messages) and must come out as protobuf-c's unpacking reads it.
 *
 * The client half, on rules a real etcd cannot be made to show on demand:
 * scripted members, each a thread speaking HTTP/2 (nghttp2's server
 * session) and answering every gRPC call with a set grpc-status and
 * grpc-message, or a set message, or nothing at all; they count the
 * calls and the connections that reach them. */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#include "base/buf.h"
#include "store/etcd.h"
#include "store/etcd_pb.h"
#include "loopback.h"
#include "tap.h"

/* ---- the pure half */

/* The gRPC request for the gateway body in b, unpacked as path's message. */
static ProtobufCMessage *request(const char *path, const struct buf *body)
{
	struct buf pb;
	buf_init(&pb);
	ProtobufCMessage *m = NULL;
	if (etcd_grpc_request(&pb, path, body->data, body->len) == 0)
		m = protobuf_c_message_unpack(etcd_grpc_method(path)->req, NULL, pb.len,
		                              (const uint8_t *)pb.data);
	buf_free(&pb);
	return m;
}

static bool bytes_is(ProtobufCBinaryData d, const char *s, size_t n)
{
	return d.len == n && (n == 0 || memcmp(d.data, s, n) == 0);
}

static void test_requests(void)
{
	struct buf b;
	buf_init(&b);

	struct etcd_range rp = { "a\xff", 2, NULL, 0, true };
	struct etcd_range_opts o = { .limit = 10, .revision = 9007199254740993LL, .keys_only = true };
	etcd_req_range(&b, &rp, &o);
	Etcdserverpb__RangeRequest *rr = (void *)request(ETCD_PATH_RANGE, &b);
	ok(rr && bytes_is(rr->key, "a\xff", 2) && bytes_is(rr->range_end, "b", 1) && rr->limit == 10 &&
	   rr->revision == 9007199254740993LL && rr->keys_only && !rr->count_only,
	   "range: a binary key, its prefix's end, limit, keys_only and a revision above 2^53, exact");
	protobuf_c_message_free_unpacked((void *)rr, NULL);

	buf_reset(&b);
	etcd_req_put(&b, "k\0z", 3, "", 0, 7587880000000000001LL, true);
	Etcdserverpb__PutRequest *pr = (void *)request(ETCD_PATH_PUT, &b);
	ok(pr && bytes_is(pr->key, "k\0z", 3) && pr->value.len == 0 && pr->lease == 7587880000000000001LL &&
	   pr->prev_kv, "put: a key with a NUL, an empty value, an exact 64-bit lease, prev_kv");
	protobuf_c_message_free_unpacked((void *)pr, NULL);

	buf_reset(&b);
	struct etcd_range re = { "a", 1, "c", 1, false };
	etcd_req_delete(&b, &re, true);
	Etcdserverpb__DeleteRangeRequest *dr = (void *)request(ETCD_PATH_DELETE, &b);
	ok(dr && bytes_is(dr->key, "a", 1) && bytes_is(dr->range_end, "c", 1) && dr->prev_kv,
	   "deleterange: [a,c) with prev_kv");
	protobuf_c_message_free_unpacked((void *)dr, NULL);

	struct etcd_compare cmp[] = {
		{ "k", 1, ETCD_CREATE, ETCD_EQUAL, 0, NULL, 0, false },
		{ "k", 1, ETCD_VERSION, ETCD_GREATER, 2, NULL, 0, true },
		{ "k", 1, ETCD_VALUE, ETCD_NOT_EQUAL, 0, "v", 1, false },
	};
	struct etcd_op succ[] = { { .kind = ETCD_OP_PUT, .r = { "k", 1, NULL, 0, false }, .value = "v",
	                            .value_len = 1, .lease = 3 } };
	struct etcd_op fail[] = { { .kind = ETCD_OP_RANGE, .r = { "k", 1, NULL, 0, false } },
	                          { .kind = ETCD_OP_DELETE, .r = { "k", 1, NULL, 0, true } } };
	buf_reset(&b);
	etcd_req_txn(&b, cmp, 3, succ, 1, fail, 2);
	Etcdserverpb__TxnRequest *tr = (void *)request(ETCD_PATH_TXN, &b);
	ok(tr && tr->n_compare == 3 && tr->n_success == 1 && tr->n_failure == 2, "txn: 3 compares, 1 + 2 ops");
	if (tr && tr->n_compare == 3 && tr->n_success == 1 && tr->n_failure == 2) {
		Etcdserverpb__Compare *c0 = tr->compare[0], *c1 = tr->compare[1], *c2 = tr->compare[2];
		ok(c0->target == ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE &&
		   c0->result == ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL &&
		   c0->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION &&
		   c0->create_revision == 0,
		   "txn: create_revision == 0 is sent as a chosen oneof member at zero");
		ok(c1->target == ETCDSERVERPB__COMPARE__COMPARE_TARGET__VERSION && c1->version == 2 &&
		   c1->result == ETCDSERVERPB__COMPARE__COMPARE_RESULT__GREATER && bytes_is(c1->range_end, "l", 1),
		   "txn: a version compare over a prefix");
		ok(c2->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE && bytes_is(c2->value, "v", 1) &&
		   c2->result == ETCDSERVERPB__COMPARE__COMPARE_RESULT__NOT_EQUAL, "txn: a value compare");
		Etcdserverpb__RequestOp *s0 = tr->success[0], *f0 = tr->failure[0], *f1 = tr->failure[1];
		ok(s0->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT &&
		   bytes_is(s0->request_put->value, "v", 1) && s0->request_put->lease == 3 &&
		   f0->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE &&
		   f1->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE &&
		   bytes_is(f1->request_delete_range->range_end, "l", 1),
		   "txn: put, range and delete ops, in order");
	}
	protobuf_c_message_free_unpacked((void *)tr, NULL);

	buf_reset(&b);
	etcd_req_lease_grant(&b, 30, 0);
	Etcdserverpb__LeaseGrantRequest *gr = (void *)request(ETCD_PATH_GRANT, &b);
	ok(gr && gr->ttl == 30 && gr->id == 0, "lease grant: TTL, etcd picks the ID");
	protobuf_c_message_free_unpacked((void *)gr, NULL);
	buf_reset(&b);
	etcd_req_lease_revoke(&b, INT64_MAX);
	Etcdserverpb__LeaseRevokeRequest *vr = (void *)request(ETCD_PATH_REVOKE, &b);
	ok(vr && vr->id == INT64_MAX, "lease revoke: the ID, exact at 2^63-1");
	protobuf_c_message_free_unpacked((void *)vr, NULL);
	buf_reset(&b);
	etcd_req_lease_timetolive(&b, 42, true);
	Etcdserverpb__LeaseTimeToLiveRequest *lr = (void *)request(ETCD_PATH_TTL, &b);
	ok(lr && lr->id == 42 && lr->keys, "lease timetolive: ID and keys");
	protobuf_c_message_free_unpacked((void *)lr, NULL);
	buf_reset(&b);
	etcd_req_lease_keepalive(&b, 42);
	Etcdserverpb__LeaseKeepAliveRequest *kr = (void *)request(ETCD_PATH_KEEPALIVE, &b);
	ok(kr && kr->id == 42, "lease keepalive: the ID");
	protobuf_c_message_free_unpacked((void *)kr, NULL);

	struct buf pb;
	buf_init(&pb);
	ok(etcd_grpc_request(&pb, ETCD_PATH_WATCH, "{}", 2) == -ENOENT, "watch has no unary gRPC method");
	ok(etcd_grpc_request(&pb, ETCD_PATH_PUT, "{\"key\":\"*\"}", 11) == -EINVAL, "bad base64 is refused");
	ok(etcd_grpc_request(&pb, ETCD_PATH_PUT, "[", 1) == -EINVAL, "a body that is not JSON is refused");
	buf_free(&pb);
	buf_free(&b);
}

/* m packed, then read back as path's answer. */
static int answer(const char *path, const ProtobufCMessage *m, struct etcd_resp *r)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	uint8_t *p = malloc(n + 1);
	protobuf_c_message_pack(m, p);
	int rc = etcd_parse_grpc(path, p, n, r);
	free(p);
	return rc;
}

static void test_answers(void)
{
	struct etcd_resp r;
	Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
	h.revision = 9007199254740993LL;
	Etcdserverpb__KeyValue kv1 = ETCDSERVERPB__KEY_VALUE__INIT, kv2 = ETCDSERVERPB__KEY_VALUE__INIT;
	kv1.key = (ProtobufCBinaryData){ 3, (uint8_t *)"a\0b" };
	kv1.value = (ProtobufCBinaryData){ 2, (uint8_t *)"\xff\x01" };
	kv1.create_revision = 4;
	kv1.mod_revision = 9007199254740993LL;
	kv1.version = 2;
	kv1.lease = 7587880000000000001LL;
	kv2.key = (ProtobufCBinaryData){ 1, (uint8_t *)"c" };
	Etcdserverpb__KeyValue *kvs[] = { &kv1, &kv2 };

	Etcdserverpb__RangeResponse rr = ETCDSERVERPB__RANGE_RESPONSE__INIT;
	rr.header = &h;
	rr.n_kvs = 2;
	rr.kvs = kvs;
	rr.more = true;
	rr.count = 5;
	int rc = answer(ETCD_PATH_RANGE, &rr.base, &r);
	ok(rc == 0 && r.revision == 9007199254740993LL && r.n_kvs == 2 && r.more && r.count == 5,
	   "range: header revision above 2^53, kvs, more, count");
	ok(rc == 0 && r.n_kvs == 2 && r.kvs[0].key_len == 3 && memcmp(r.kvs[0].key, "a\0b", 4) == 0 &&
	   r.kvs[0].value_len == 2 && memcmp(r.kvs[0].value, "\xff\x01", 3) == 0 &&
	   r.kvs[0].create_revision == 4 && r.kvs[0].mod_revision == 9007199254740993LL &&
	   r.kvs[0].version == 2 && r.kvs[0].lease == 7587880000000000001LL,
	   "range: a kv's binary key and value (NUL-terminated too) and its numbers, exact");
	ok(rc == 0 && r.n_kvs == 2 && r.kvs[1].key_len == 1 && r.kvs[1].value_len == 0 && r.kvs[1].value &&
	   r.kvs[1].value[0] == '\0', "range: a kv with an empty value");
	etcd_resp_free(&r);

	Etcdserverpb__PutResponse pr = ETCDSERVERPB__PUT_RESPONSE__INIT;
	pr.header = &h;
	pr.prev_kv = &kv2;
	rc = answer(ETCD_PATH_PUT, &pr.base, &r);
	ok(rc == 0 && r.n_prev_kvs == 1 && r.prev_kvs[0].key_len == 1 && r.revision == h.revision,
	   "put: its prev_kv");
	etcd_resp_free(&r);

	Etcdserverpb__DeleteRangeResponse dr = ETCDSERVERPB__DELETE_RANGE_RESPONSE__INIT;
	dr.deleted = 2;
	dr.n_prev_kvs = 2;
	dr.prev_kvs = kvs;
	rc = answer(ETCD_PATH_DELETE, &dr.base, &r);
	ok(rc == 0 && r.deleted == 2 && r.n_prev_kvs == 2 && r.revision == 0,
	   "deleterange: deleted, prev_kvs; no header is revision 0");
	etcd_resp_free(&r);

	Etcdserverpb__TxnResponse tr = ETCDSERVERPB__TXN_RESPONSE__INIT;
	Etcdserverpb__ResponseOp o1 = ETCDSERVERPB__RESPONSE_OP__INIT, o2 = ETCDSERVERPB__RESPONSE_OP__INIT,
	                         o3 = ETCDSERVERPB__RESPONSE_OP__INIT;
	o1.response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_PUT;
	o1.response_put = &pr;
	o2.response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE;
	o2.response_range = &rr;
	o3.response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_DELETE_RANGE;
	o3.response_delete_range = &dr;
	Etcdserverpb__ResponseOp *ops[] = { &o1, &o2, &o3 };
	tr.header = &h;
	tr.succeeded = true;
	tr.n_responses = 3;
	tr.responses = ops;
	rc = answer(ETCD_PATH_TXN, &tr.base, &r);
	ok(rc == 0 && r.succeeded && r.n_responses == 3 && r.response_kinds[0] == ETCD_OP_PUT &&
	   r.response_kinds[1] == ETCD_OP_RANGE && r.response_kinds[2] == ETCD_OP_DELETE &&
	   r.responses[1].n_kvs == 2 && r.responses[2].deleted == 2 && r.responses[0].n_prev_kvs == 1,
	   "txn: succeeded, and one answer per op, of its kind, in order");
	etcd_resp_free(&r);
	tr.succeeded = false;
	tr.n_responses = 0;
	rc = answer(ETCD_PATH_TXN, &tr.base, &r);
	ok(rc == 0 && !r.succeeded && r.n_responses == 0 && r.revision == h.revision, "txn: failed, no ops");
	etcd_resp_free(&r);

	Etcdserverpb__LeaseGrantResponse gr = ETCDSERVERPB__LEASE_GRANT_RESPONSE__INIT;
	gr.id = 7587880000000000001LL;
	gr.ttl = 30;
	rc = answer(ETCD_PATH_GRANT, &gr.base, &r);
	ok(rc == 0 && r.lease_id == 7587880000000000001LL && r.ttl == 30, "lease grant: ID and TTL");
	etcd_resp_free(&r);

	Etcdserverpb__LeaseKeepAliveResponse kr = ETCDSERVERPB__LEASE_KEEP_ALIVE_RESPONSE__INIT;
	kr.id = 5;
	rc = answer(ETCD_PATH_KEEPALIVE, &kr.base, &r);
	ok(rc == 0 && r.lease_id == 5 && r.ttl == 0, "lease keepalive: TTL 0 when the lease is gone");
	etcd_resp_free(&r);

	Etcdserverpb__LeaseTimeToLiveResponse lr = ETCDSERVERPB__LEASE_TIME_TO_LIVE_RESPONSE__INIT;
	ProtobufCBinaryData keys[] = { { 1, (uint8_t *)"x" }, { 0, NULL } };
	lr.id = 5;
	lr.ttl = -1;
	lr.grantedttl = 60;
	lr.n_keys = 2;
	lr.keys = keys;
	rc = answer(ETCD_PATH_TTL, &lr.base, &r);
	ok(rc == 0 && r.ttl == -1 && r.granted_ttl == 60 && r.n_lease_keys == 2 &&
	   r.lease_keys[0].key_len == 1 && r.lease_keys[0].key[0] == 'x' && r.lease_keys[1].key_len == 0,
	   "lease timetolive: TTL -1, granted TTL, its keys");
	etcd_resp_free(&r);

	Etcdserverpb__LeaseLeasesResponse ll = ETCDSERVERPB__LEASE_LEASES_RESPONSE__INIT;
	Etcdserverpb__LeaseStatus s1 = ETCDSERVERPB__LEASE_STATUS__INIT, s2 = ETCDSERVERPB__LEASE_STATUS__INIT;
	s1.id = 1;
	s2.id = INT64_MAX;
	Etcdserverpb__LeaseStatus *ss[] = { &s1, &s2 };
	ll.n_leases = 2;
	ll.leases = ss;
	rc = answer(ETCD_PATH_LEASES, &ll.base, &r);
	ok(rc == 0 && r.n_leases == 2 && r.leases[1] == INT64_MAX, "lease list: every lease's ID");
	etcd_resp_free(&r);

	static const uint8_t junk[] = { 0x0a, 0x05, 0x18 };   /* a header cut short */
	ok(etcd_parse_grpc(ETCD_PATH_RANGE, junk, sizeof junk, &r) == ETCD_E_PROTOCOL,
	   "a cut message is a protocol error");
	etcd_resp_free(&r);
	static const uint8_t wrong[] = { 0x12, 0x02, 0x08, 0x01 };   /* kvs: a varint where a message is */
	ok(etcd_parse_grpc(ETCD_PATH_RANGE, wrong, sizeof wrong, &r) == ETCD_E_PROTOCOL,
	   "a kv of the wrong wire type is a protocol error");
	etcd_resp_free(&r);
	ok(etcd_parse_grpc(ETCD_PATH_RANGE, NULL, 0, &r) == 0 && r.n_kvs == 0 && r.revision == 0,
	   "an empty message is every field at zero");
	etcd_resp_free(&r);
}

/* ---- a Range answer read directly (etcd_pb's own reader) */

/* Wire bytes built by hand, for what protobuf-c's packer never writes:
 * unknown fields, a field twice, fields out of order, long varints. */
static void w_varint(struct buf *b, uint64_t v)
{
	while (v >= 0x80) {
		buf_putc(b, (char)(v | 0x80));
		v >>= 7;
	}
	buf_putc(b, (char)v);
}

static void w_key(struct buf *b, unsigned field, unsigned wt)
{
	w_varint(b, (uint64_t)field << 3 | wt);
}

static void w_int(struct buf *b, unsigned field, uint64_t v)
{
	w_key(b, field, 0);
	w_varint(b, v);
}

static void w_bytes(struct buf *b, unsigned field, const void *p, size_t n)
{
	w_key(b, field, 2);
	w_varint(b, n);
	buf_append(b, p, n);
}

/* Unknown fields of the four wire types protobuf-c skips (fields 9..12). */
static void w_unknown(struct buf *b)
{
	w_key(b, 9, 1);
	buf_append(b, "12345678", 8);
	w_key(b, 10, 5);
	buf_append(b, "abcd", 4);
	w_bytes(b, 11, "zz", 2);
	w_int(b, 12, 300);
}

/* etcd_parse_grpc's range of m beside protobuf-c's (etcd_pb_parse_unpacked):
 * the same code, header, more, count and kvs, byte for byte.  *direct: the
 * own reader took it (no fallback); *r keeps etcd_parse_grpc's answer. */
static int range_both(const struct buf *m, struct etcd_resp *r, bool *same, bool *direct)
{
	struct etcd_resp d, u;
	const uint8_t *p = (const uint8_t *)m->data;
	*direct = etcd_pb_range_direct(p, m->len, &d) != ETCD_PB_FALLBACK;
	etcd_resp_free(&d);
	int rc = etcd_parse_grpc(ETCD_PATH_RANGE, p, m->len, r);
	int ru = etcd_pb_parse_unpacked(ETCD_PATH_RANGE, p, m->len, &u);
	*same = rc == ru && r->revision == u.revision && r->more == u.more && r->count == u.count &&
	        r->n_kvs == u.n_kvs;
	for (size_t i = 0; *same && i < r->n_kvs; i++) {
		const struct etcd_kv *a = &r->kvs[i], *b = &u.kvs[i];
		*same = a->key_len == b->key_len && a->value_len == b->value_len &&
		        memcmp(a->key, b->key, a->key_len + 1) == 0 &&
		        memcmp(a->value, b->value, a->value_len + 1) == 0 &&
		        a->create_revision == b->create_revision && a->mod_revision == b->mod_revision &&
		        a->version == b->version && a->lease == b->lease;
	}
	etcd_resp_free(&u);
	return rc;
}

static void test_range_direct(void)
{
	struct etcd_resp r;
	bool same, direct;
	struct buf m = BUF_INIT, h = BUF_INIT, kv = BUF_INIT;

	/* count first, unknown fields around and inside everything, a
	 * header, a kv with a 10-byte negative lease and its key twice, an
	 * empty kv, a second header, more, a kv of empty key and value */
	w_int(&m, 4, (uint64_t)-3);
	w_unknown(&m);
	w_int(&h, 1, 7);
	w_unknown(&h);
	w_int(&h, 3, 100);
	w_int(&h, 4, 2);
	w_bytes(&m, 1, h.data, h.len);
	w_unknown(&kv);
	w_bytes(&kv, 1, "old", 3);
	w_int(&kv, 6, (uint64_t)-5);
	w_bytes(&kv, 5, "v\0x", 3);
	w_int(&kv, 2, 4);
	w_int(&kv, 3, 9007199254740993ULL);
	w_int(&kv, 4, 1);
	w_bytes(&kv, 1, "/a", 2);
	w_bytes(&m, 2, kv.data, kv.len);
	w_unknown(&m);
	w_bytes(&m, 2, "", 0);
	buf_reset(&h);
	w_int(&h, 3, 101);
	w_bytes(&m, 1, h.data, h.len);
	w_int(&m, 3, 1);
	buf_reset(&kv);
	w_bytes(&kv, 1, "", 0);
	w_bytes(&kv, 5, "", 0);
	w_bytes(&m, 2, kv.data, kv.len);
	int rc = range_both(&m, &r, &same, &direct);
	ok(rc == 0 && direct && same, "range: unknown fields, fields out of order and twice: read directly, as protobuf-c reads them");
	ok(rc == 0 && r.revision == 101 && r.more && r.count == -3 && r.n_kvs == 3,
	   "range: the last header's revision, more, a negative count");
	ok(rc == 0 && r.n_kvs == 3 && r.kvs[0].key_len == 2 && strcmp(r.kvs[0].key, "/a") == 0 &&
	   r.kvs[0].value_len == 3 && memcmp(r.kvs[0].value, "v\0x", 4) == 0 && r.kvs[0].lease == -5 &&
	   r.kvs[0].create_revision == 4 && r.kvs[0].mod_revision == 9007199254740993LL &&
	   r.kvs[0].version == 1, "range: a kv's last key, its value with a NUL inside, a negative lease, exact revisions");
	ok(rc == 0 && r.n_kvs == 3 && r.kvs[1].key && !r.kvs[1].key[0] && r.kvs[1].key_len == 0 &&
	   r.kvs[1].value && !r.kvs[1].value[0] && r.kvs[2].key_len == 0 && r.kvs[2].value_len == 0 &&
	   r.kvs[2].key && r.kvs[2].value, "range: an empty kv and a kv of empty key and value: \"\", not NULL");
	ok(rc == 0 && r.kv_block && r.kvs[0].key >= r.kv_block && r.kvs[2].value > r.kvs[0].key,
	   "range: the keys and values lie in the answer's one block");
	etcd_resp_free(&r);

	/* a header without a revision after one with: protobuf-c 1.4.1
	 * replaces the header (its merge skips proto3 scalars): 0 */
	buf_reset(&m);
	buf_reset(&h);
	w_int(&h, 3, 5);
	w_bytes(&m, 1, h.data, h.len);
	w_bytes(&m, 1, "\x08\x01", 2);
	rc = range_both(&m, &r, &same, &direct);
	ok(rc == 0 && direct && same && r.revision == 0, "range: a second header without a revision leaves revision 0, as protobuf-c does");
	etcd_resp_free(&r);

	/* more as a 10-byte varint whose only bit is past the 64th: true in protobuf-c */
	buf_reset(&m);
	w_key(&m, 3, 0);
	buf_append(&m, "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x02", 10);
	rc = range_both(&m, &r, &same, &direct);
	ok(rc == 0 && direct && same && r.more, "range: more is any bit of its varint, past the 64th too");
	etcd_resp_free(&r);

	/* more as a length-delimited field: protobuf-c reads a bool of any
	 * wire type (its bytes, length prefix included); ours leaves it to it */
	buf_reset(&m);
	buf_append(&m, "\x1a\x01\x00", 3);
	rc = range_both(&m, &r, &same, &direct);
	ok(rc == 0 && !direct && same && r.more, "range: more of the wrong wire type goes to protobuf-c, which reads it");
	etcd_resp_free(&r);

	/* field 0 in a two-byte key: protobuf-c 1.4.1 skips it (a one-byte
	 * key of field 0 it refuses); ours leaves both to it */
	buf_reset(&m);
	buf_append(&m, "\x80\x00\x00\x20\x03", 5);
	rc = range_both(&m, &r, &same, &direct);
	ok(rc == 0 && !direct && same && r.count == 3, "range: field 0 in a two-byte key goes to protobuf-c, which skips it");
	etcd_resp_free(&r);

	/* what protobuf-c refuses stays refused: each a protocol error */
	static const struct {
		const char *bytes;
		size_t n;
		const char *what;
	} bad[] = {
		{ "\x12\x05\x0a\x04/ab", 7, "a kv cut inside its key" },
		{ "\x12\x09\x0a\x01k", 5, "a kv's length past the end" },
		{ "\x20\xff\xff", 3, "a cut varint" },
		{ "\x20\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12, "an 11-byte varint" },
		{ "\x22\x01\x01", 3, "count as a length-delimited field" },
		{ "\x12\x01\x3b", 3, "a kv holding a group (field 7, wire type 3)" },
		{ "\x12\x02\x08\x01", 4, "a kv whose key is a varint" },
		{ "\x0a\x02\x1a\x00", 4, "a header whose revision is length-delimited" },
		{ "\x3b\x3c", 2, "an unknown group" },
		{ "\x20\x03\x00\x00", 4, "field 0" },
		{ "\x12\x80\x80\x80\x80\x80\x00", 7, "a length in 6 bytes" },
		{ "\xa0\x80\x80\x80\x80\x00\x03", 7, "a key in 6 bytes" },
		{ "\x12\x03\x0a\x02", 4, "a kv cut in its key's length" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		buf_reset(&m);
		buf_append(&m, bad[i].bytes, bad[i].n);
		rc = range_both(&m, &r, &same, &direct);
		ok(rc == ETCD_E_PROTOCOL && same && !direct, "range: %s is a protocol error", bad[i].what);
		etcd_resp_free(&r);
	}
	buf_free(&m);
	buf_free(&h);
	buf_free(&kv);
}

/* ---- scripted members speaking gRPC over h2c */

struct member {
	int port;                /* srv.port */
	int grpc_status;         /* to answer; 0: msg */
	const char *grpc_message;
	const uint8_t *msg;      /* the answer's message (protobuf) */
	size_t msg_len;
	bool silent;             /* never answer */
	bool goaway;             /* refuse each call: GOAWAY with last stream 0 */
	bool hangup;             /* close the connection on a call */
	bool no_status;          /* answer with HEADERS that lack :status (malformed) */
	const char *http_status; /* answer with this :status and no grpc-status (a proxy's) */
	bool goaway_after;       /* one stream at a time (SETTINGS); the first is
	                          * answered 300 ms late, then GOAWAY: no more */
	int requests, conns;     /* read under mu */
	struct loopback_server srv;
};
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

struct session {
	struct member *m;
	int fd;
	uint8_t body[4096];      /* the answer's DATA: prefix and message */
	size_t body_len;
};

static ssize_t m_send(nghttp2_session *s, const uint8_t *data, size_t len, int flags, void *ud)
{
	(void)s;
	(void)flags;
	struct session *ss = ud;
	ssize_t n = write(ss->fd, data, len);
	return n < 0 ? NGHTTP2_ERR_CALLBACK_FAILURE : n;
}

static ssize_t m_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                      nghttp2_data_source *src, void *ud)
{
	(void)src;
	struct session *ss = ud;
	size_t n = ss->body_len < len ? ss->body_len : len;
	memcpy(buf, ss->body, n);
	*flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
	nghttp2_nv tr[] = { { (uint8_t *)"grpc-status", (uint8_t *)"0", 11, 1, NGHTTP2_NV_FLAG_NONE } };
	nghttp2_submit_trailer(s, id, tr, 1);
	return (ssize_t)n;
}

#define NV(n, v) { (uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE }

static int m_frame(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	struct session *ss = ud;
	if ((f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) ||
	    !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	pthread_mutex_lock(&mu);
	ss->m->requests++;
	int st = ss->m->grpc_status;
	const char *msg = ss->m->grpc_message;
	bool silent = ss->m->silent;
	bool goaway = ss->m->goaway, hangup = ss->m->hangup;
	bool no_status = ss->m->no_status, goaway_after = ss->m->goaway_after;
	const char *http_status = ss->m->http_status;
	ss->body_len = 5 + ss->m->msg_len;
	ss->body[0] = 0;
	ss->body[1] = ss->body[2] = 0;
	ss->body[3] = (uint8_t)(ss->m->msg_len >> 8);
	ss->body[4] = (uint8_t)ss->m->msg_len;
	if (ss->m->msg_len)   /* msg may be NULL then */
		memcpy(ss->body + 5, ss->m->msg, ss->m->msg_len);
	pthread_mutex_unlock(&mu);
	if (hangup)
		return NGHTTP2_ERR_CALLBACK_FAILURE;   /* ends the session: the connection closes */
	if (goaway) {   /* not processed: the client may send it elsewhere */
		nghttp2_submit_goaway(s, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, NULL, 0);
		return 0;
	}
	if (silent)
		return 0;
	if (http_status) {
		nghttp2_nv nv[] = { NV(":status", http_status), NV("content-type", "text/plain") };
		nghttp2_submit_response(s, f->hd.stream_id, nv, 2, NULL);
		return 0;
	}
	if (no_status) {   /* the client resets the stream as it reads this */
		nghttp2_nv nv[] = { NV("content-type", "application/grpc"), NV("grpc-status", "0") };
		nghttp2_submit_response(s, f->hd.stream_id, nv, 2, NULL);
		return 0;
	}
	if (goaway_after) {   /* this stream is answered, none after it */
		usleep(300000);
		nghttp2_submit_goaway(s, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_NO_ERROR, NULL, 0);
	}
	if (st) {   /* trailers-only, as etcd answers an error */
		char code[8];
		snprintf(code, sizeof code, "%d", st);
		nghttp2_nv nv[] = { NV(":status", "200"), NV("content-type", "application/grpc"),
		                    NV("grpc-status", code), NV("grpc-message", msg) };
		nghttp2_submit_response(s, f->hd.stream_id, nv, 4, NULL);
	} else {
		nghttp2_nv nv[] = { NV(":status", "200"), NV("content-type", "application/grpc") };
		nghttp2_data_provider dp = { .read_callback = m_read };
		nghttp2_submit_response(s, f->hd.stream_id, nv, 2, &dp);
	}
	return 0;
}

static void member_serve(struct member *m, int c)
{
	struct session ss = { .m = m, .fd = c };
	nghttp2_session_callbacks *cb;
	nghttp2_session *s;
	nghttp2_session_callbacks_new(&cb);
	nghttp2_session_callbacks_set_send_callback(cb, m_send);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, m_frame);
	nghttp2_session_server_new(&s, cb, &ss);
	nghttp2_session_callbacks_del(cb);
	pthread_mutex_lock(&mu);
	bool one = m->goaway_after;
	pthread_mutex_unlock(&mu);
	nghttp2_settings_entry iv[] = { { NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 1 } };
	nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, iv, one ? 1 : 0);
	uint8_t in[16384];
	while (nghttp2_session_send(s) == 0) {
		ssize_t n = read(c, in, sizeof in);
		if (n <= 0 || nghttp2_session_mem_recv(s, in, (size_t)n) < 0)
			break;
	}
	nghttp2_session_del(s);
}

static void member_conn(void *arg, int c)
{
	struct member *m = arg;
	pthread_mutex_lock(&mu);
	m->conns++;
	pthread_mutex_unlock(&mu);
	member_serve(m, c);
}

static void member_start(struct member *m)
{
	loopback_start(&m->srv, member_conn, m);
	m->port = m->srv.port;
}

/* Answer every call with grpc-status st and message text; st 0: msg. */
static void member_set(struct member *m, int st, const char *text, const uint8_t *msg, size_t len)
{
	pthread_mutex_lock(&mu);
	m->grpc_status = st;
	m->grpc_message = text;
	m->msg = msg;
	m->msg_len = len;
	m->requests = 0;
	m->conns = 0;
	m->silent = m->goaway = m->hangup = m->no_status = m->goaway_after = false;
	m->http_status = NULL;
	pthread_mutex_unlock(&mu);
}

static int member_count(struct member *m, bool conns)
{
	pthread_mutex_lock(&mu);
	int n = conns ? m->conns : m->requests;
	pthread_mutex_unlock(&mu);
	return n;
}

static struct etcd_client *client(uv_loop_t *loop, const char *text, unsigned timeout_ms)
{
	struct store_url u;
	char err[128];
	if (store_url_parse(text, &u, err, sizeof err) < 0)
		return NULL;
	struct etcd_options o = { .timeout_ms = timeout_ms };
	return etcd_client_new(loop, &u, &o);
}

/* One call of path with body through a new client on both members, A
 * first; returns etcd_sync's code, *code the gRPC code of an error. */
static int call_once(struct member *a, struct member *b, const char *path, const struct buf *body, int *code)
{
	char text[128];
	snprintf(text, sizeof text, "etcd://127.0.0.1:%d,127.0.0.1:%d", a->port, b->port);
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct etcd_client *c = client(&loop, text, 3000);
	struct etcd_resp r;
	int rc = etcd_sync(c, path, body, &r);
	*code = rc == ETCD_E_SERVER ? r.error_code : 0;
	etcd_resp_free(&r);
	etcd_client_free(c);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	return rc;
}

static void stop_cb(uv_timer_t *t) { uv_timer_stop(t); }

static int n_done, put_rc[2];
static void put_cb(void *ud, int err, const struct etcd_resp *r)
{
	(void)r;
	put_rc[(long)ud] = err;
	n_done++;
}

static void test_client(void)
{
	struct member a = {0}, bm = {0};
	member_start(&a);
	member_start(&bm);
	uint8_t put_ok[64];
	Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
	h.revision = 5;
	Etcdserverpb__PutResponse pr = ETCDSERVERPB__PUT_RESPONSE__INIT;
	pr.header = &h;
	size_t put_len = etcdserverpb__put_response__pack(&pr, put_ok);
	struct buf put = BUF_INIT, range = BUF_INIT, txn = BUF_INIT;
	etcd_req_put(&put, "k", 1, "v", 1, 0, false);
	struct etcd_range rr = {.key = "k", .key_len = 1};
	etcd_req_range(&range, &rr, NULL);
	struct etcd_compare cmp = { "k", 1, ETCD_CREATE, ETCD_EQUAL, 0, NULL, 0, false };
	struct etcd_op rop = { .kind = ETCD_OP_RANGE, .r = rr };
	etcd_req_txn(&txn, &cmp, 1, &rop, 1, NULL, 0);
	int code;

	/* at most once: a write answered UNAVAILABLE after its proposal may
	 * still commit, so only "no leader" sends it on */
	member_set(&a, 14, "etcdserver: leader changed", NULL, 0);
	member_set(&bm, 0, NULL, put_ok, put_len);
	int rc = call_once(&a, &bm, ETCD_PATH_PUT, &put, &code);
	ok(rc == ETCD_E_SERVER && code == 14 && member_count(&a, false) == 1 && member_count(&bm, false) == 0,
	   "gRPC: a put answered 'leader changed' is returned, not sent on: rc %d code %d, A %d, B %d",
	   rc, code, member_count(&a, false), member_count(&bm, false));

	member_set(&a, 14, "etcdserver: no%20leader", NULL, 0);   /* grpc-message is percent-encoded */
	member_set(&bm, 0, NULL, put_ok, put_len);
	rc = call_once(&a, &bm, ETCD_PATH_PUT, &put, &code);
	ok(rc == 0 && member_count(&a, false) == 1 && member_count(&bm, false) == 1,
	   "gRPC: a put answered 'no leader' (never proposed) goes on to the next member: rc %d, A %d, B %d",
	   rc, member_count(&a, false), member_count(&bm, false));

	member_set(&a, 14, "etcdserver: leader changed", NULL, 0);
	member_set(&bm, 0, NULL, put_ok, put_len);
	rc = call_once(&a, &bm, ETCD_PATH_RANGE, &range, &code);
	ok(rc == 0 && member_count(&a, false) == 1 && member_count(&bm, false) == 1,
	   "gRPC: a range answered 'leader changed' goes on to the next member: rc %d, A %d, B %d",
	   rc, member_count(&a, false), member_count(&bm, false));

	member_set(&a, 14, "etcdserver: leader changed", NULL, 0);
	member_set(&bm, 0, NULL, put_ok, put_len);
	rc = call_once(&a, &bm, ETCD_PATH_TXN, &txn, &code);
	ok(rc == 0 && member_count(&a, false) == 1 && member_count(&bm, false) == 1,
	   "gRPC: a txn of compares and ranges only is a read, sent on: rc %d, A %d, B %d",
	   rc, member_count(&a, false), member_count(&bm, false));

	member_set(&a, 9, "etcdserver: requested lease not found", NULL, 0);
	member_set(&bm, 0, NULL, put_ok, put_len);
	struct etcd_resp r;
	char text[160];
	uv_loop_t loop;
	uv_loop_init(&loop);
	snprintf(text, sizeof text, "etcd://127.0.0.1:%d,127.0.0.1:%d", a.port, bm.port);
	struct etcd_client *c = client(&loop, text, 3000);
	rc = etcd_sync(c, ETCD_PATH_RANGE, &range, &r);
	ok(rc == ETCD_E_SERVER && r.error_code == 9 && r.error_message &&
	   strcmp(r.error_message, "etcdserver: requested lease not found") == 0 && member_count(&bm, false) == 0,
	   "gRPC: another error is etcd's, with its code and message, not sent on");
	etcd_resp_free(&r);
	member_set(&a, 0, NULL, put_ok, put_len);
	int all = 1;
	for (int i = 0; i < 5; i++) {
		rc = etcd_sync(c, ETCD_PATH_PUT, &put, &r);
		all &= rc == 0 && r.revision == 5;
		etcd_resp_free(&r);
	}
	ok(all && member_count(&a, false) == 5 && member_count(&a, true) == 0,
	   "gRPC: calls after the first share its kept-alive connection: %d calls, %d new connections",
	   member_count(&a, false), member_count(&a, true));

	/* a member that never answers: the call times out, its stream is
	 * reset, and the connection serves the next call */
	pthread_mutex_lock(&mu);
	a.silent = true;
	pthread_mutex_unlock(&mu);
	etcd_client_free(c);
	uv_run(&loop, UV_RUN_DEFAULT);
	c = client(&loop, text, 300);
	rc = etcd_sync(c, ETCD_PATH_PUT, &put, &r);
	etcd_resp_free(&r);
	ok(rc == ETCD_E_TIMEOUT && member_count(&bm, false) == 0,
	   "gRPC: a put that is never answered times out and is not sent on: rc %d, B %d", rc,
	   member_count(&bm, false));
	member_set(&a, 0, NULL, put_ok, put_len);
	rc = etcd_sync(c, ETCD_PATH_PUT, &put, &r);
	etcd_resp_free(&r);
	ok(rc == 0 && member_count(&a, true) == 0, "gRPC: the connection stays for the next call: rc %d, %d new",
	   rc, member_count(&a, true));
	etcd_client_free(c);
	uv_run(&loop, UV_RUN_DEFAULT);

	/* a stream refused unprocessed (past a GOAWAY's last stream) was never
	 * run: even a put goes on; a connection that breaks with a call in
	 * flight may have run it: a put is not sent again, a range is */
	member_set(&a, 0, NULL, put_ok, put_len);
	pthread_mutex_lock(&mu);
	a.goaway = true;
	pthread_mutex_unlock(&mu);
	member_set(&bm, 0, NULL, put_ok, put_len);
	rc = call_once(&a, &bm, ETCD_PATH_PUT, &put, &code);
	ok(rc == 0 && member_count(&a, false) == 1 && member_count(&bm, false) == 1,
	   "gRPC: a put on a stream refused by GOAWAY goes on to the next member: rc %d, A %d, B %d", rc,
	   member_count(&a, false), member_count(&bm, false));
	member_set(&a, 0, NULL, put_ok, put_len);
	pthread_mutex_lock(&mu);
	a.hangup = true;
	pthread_mutex_unlock(&mu);
	member_set(&bm, 0, NULL, put_ok, put_len);
	rc = call_once(&a, &bm, ETCD_PATH_PUT, &put, &code);
	ok(rc == -ECONNRESET && member_count(&a, false) == 1 && member_count(&bm, false) == 0,
	   "gRPC: a put whose connection broke in flight is -ECONNRESET, not sent on: rc %d, A %d, B %d", rc,
	   member_count(&a, false), member_count(&bm, false));
	member_set(&a, 0, NULL, put_ok, put_len);
	pthread_mutex_lock(&mu);
	a.hangup = true;
	pthread_mutex_unlock(&mu);
	member_set(&bm, 0, NULL, put_ok, put_len);
	rc = call_once(&a, &bm, ETCD_PATH_RANGE, &range, &code);
	ok(rc == 0 && member_count(&a, false) == 1 && member_count(&bm, false) == 1,
	   "gRPC: a range whose connection broke in flight goes on: rc %d, A %d, B %d", rc,
	   member_count(&a, false), member_count(&bm, false));

	/* failover when the first endpoint refuses connections */
	int dead = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof sa;
	bind(dead, (struct sockaddr *)&sa, sizeof sa);
	getsockname(dead, (struct sockaddr *)&sa, &sl);
	close(dead);   /* a port nobody listens on */
	member_set(&bm, 0, NULL, put_ok, put_len);
	snprintf(text, sizeof text, "etcd://127.0.0.1:%d,127.0.0.1:%d", ntohs(sa.sin_port), bm.port);
	c = client(&loop, text, 3000);
	rc = etcd_sync(c, ETCD_PATH_PUT, &put, &r);
	ok(rc == 0 && member_count(&bm, false) == 1 && strstr(etcd_client_endpoint(c), "127.0.0.1:"),
	   "gRPC: a put goes to the next member when the first refuses the connection: rc %d", rc);
	etcd_resp_free(&r);
	etcd_client_free(c);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);

	/* a proxy's 503 with no grpc-status is UNAVAILABLE: a read goes on,
	 * a write (it may have reached etcd) does not */
	member_set(&a, 0, NULL, put_ok, put_len);
	member_set(&bm, 0, NULL, put_ok, put_len);
	pthread_mutex_lock(&mu);
	a.http_status = "503";
	pthread_mutex_unlock(&mu);
	rc = call_once(&a, &bm, ETCD_PATH_RANGE, &range, &code);
	ok(rc == 0 && member_count(&a, false) == 1 && member_count(&bm, false) == 1,
	   "gRPC: a range answered HTTP 503 without grpc-status goes on: rc %d, A %d, B %d", rc,
	   member_count(&a, false), member_count(&bm, false));
	member_set(&bm, 0, NULL, put_ok, put_len);
	rc = call_once(&a, &bm, ETCD_PATH_PUT, &put, &code);
	ok(rc == ETCD_E_SERVER && code == 14 && member_count(&bm, false) == 0,
	   "gRPC: a put answered HTTP 503 is UNAVAILABLE and not sent on: rc %d code %d, B %d", rc, code,
	   member_count(&bm, false));
	pthread_mutex_lock(&mu);
	a.http_status = NULL;
	pthread_mutex_unlock(&mu);

	/* streams that end while the client sends, not while it reads: each
	 * call is still answered (a hang here is ended by the alarm) */
	alarm(60);
	member_set(&a, 0, NULL, put_ok, put_len);
	member_set(&bm, 0, NULL, put_ok, put_len);
	pthread_mutex_lock(&mu);
	a.no_status = true;
	pthread_mutex_unlock(&mu);
	rc = call_once(&a, &bm, ETCD_PATH_PUT, &put, &code);
	ok(rc == -ECONNRESET && member_count(&bm, false) == 0,
	   "gRPC: a put whose answer is malformed (no :status, the stream reset as it goes out) is "
	   "-ECONNRESET, not sent on: rc %d, B %d", rc, member_count(&bm, false));

	member_set(&a, 0, NULL, put_ok, put_len);
	member_set(&bm, 0, NULL, put_ok, put_len);
	pthread_mutex_lock(&mu);
	a.goaway_after = true;
	pthread_mutex_unlock(&mu);
	snprintf(text, sizeof text, "etcd://127.0.0.1:%d,127.0.0.1:%d", a.port, bm.port);
	uv_loop_init(&loop);
	c = client(&loop, text, 3000);
	n_done = 0;
	etcd_call(c, ETCD_PATH_PUT, put.data, put.len, put_cb, (void *)0);
	uv_timer_t t;
	uv_timer_init(&loop, &t);
	uv_timer_start(&t, stop_cb, 100, 0);
	while (uv_is_active((uv_handle_t *)&t))
		uv_run(&loop, UV_RUN_ONCE);   /* A's SETTINGS in, its one stream taken */
	uv_close((uv_handle_t *)&t, NULL);
	etcd_call(c, ETCD_PATH_PUT, put.data, put.len, put_cb, (void *)1);   /* waits in the session */
	while (n_done < 2)
		uv_run(&loop, UV_RUN_ONCE);
	ok(put_rc[0] == 0 && put_rc[1] == 0 && member_count(&a, false) == 1 && member_count(&bm, false) == 1,
	   "gRPC: a put queued behind A's stream limit, never sent when A's GOAWAY came, goes to B: "
	   "rc %d %d, A %d, B %d", put_rc[0], put_rc[1], member_count(&a, false), member_count(&bm, false));
	etcd_client_free(c);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	alarm(0);

	buf_free(&put);
	buf_free(&range);
	buf_free(&txn);
	loopback_stop(&a.srv);
	loopback_stop(&bm.srv);
}

int main(void)
{
	test_requests();
	test_answers();
	test_range_direct();
	test_client();
	return tap_done();
}
