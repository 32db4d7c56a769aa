/* Unit tests of lib/raft/kv: etcd's MVCC rules as the store applies them
 * (revisions, versions, txn, compaction, leases, watch events), its
 * determinism: two stores fed the same commands answer the same bytes,
 * and its key order through many chunk splits, compaction and restore. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/buf.h"
#include "raft/kv.h"
#include "store/etcd.h"
#include "tap.h"

static struct kv *kv;
static struct buf out;
static const struct kv_header H = {1, 2, 3};

/* Run one request; the answer is NUL-terminated in out. */
static int run(enum kv_op op, const char *body)
{
	buf_reset(&out);
	int st = kv_exec(kv, op, 0, body, strlen(body), &H, &out);
	buf_putc(&out, '\0');
	out.len--;
	return st;
}

static int has(const char *s) { return strstr(out.data, s) != NULL; }

/* Put or delete key "k%05d" (i). */
static int put_k(enum kv_op op, int i)
{
	char k[16], body[128];
	snprintf(k, sizeof k, "k%05d", i);
	struct buf b = BUF_INIT;
	etcd_b64_encode(&b, k, strlen(k));
	if (op == KV_OP_PUT)
		snprintf(body, sizeof body, "{\"key\":\"%.*s\",\"value\":\"MQ==\"}", (int)b.len, b.data);
	else
		snprintf(body, sizeof body, "{\"key\":\"%.*s\"}", (int)b.len, b.data);
	buf_free(&b);
	return run(op, body);
}

/* Range body (keys only) over the store: how many keys came, -1 if out
 * of order, duplicated, or if one is not in want (a bitmap by i). */
static long range_keys(const char *body, const unsigned char *want)
{
	if (run(KV_OP_RANGE, body) != 200)
		return -1;
	cJSON *j = cJSON_Parse(out.data), *kvs = cJSON_GetObjectItem(j, "kvs"), *e;
	long n = 0;
	char prev[16] = "";
	struct buf k = BUF_INIT;
	cJSON_ArrayForEach(e, kvs) {
		const char *b64 = cJSON_GetStringValue(cJSON_GetObjectItem(e, "key"));
		buf_reset(&k);
		int i = -1;
		char s[16] = "";
		if (b64 && etcd_b64_decode(&k, b64, strlen(b64)) == 0 && k.len == 6) {
			memcpy(s, k.data, 6);
			sscanf(s, "k%05d", &i);
		}
		if (i < 0 || strcmp(s, prev) <= 0 || !(want[i / 8] >> (i % 8) & 1)) {
			n = -1;
			break;
		}
		memcpy(prev, s, sizeof prev);
		n++;
	}
	buf_free(&k);
	cJSON_Delete(j);
	return n;
}

static void many_keys(void)
{
	/* many keys in a scrambled order: the chunks split, and every walk
	 * (a whole range, a prefix, a compaction, a snapshot) keeps byte order */
	enum { NK = 20000 };
	static unsigned char in[NK / 8 + 1];
	kv = kv_new(NULL);
	int bad = 0;
	for (int x = 0; x < NK; x++) {
		int i = (int)((x * 7919L) % NK); /* 7919 is prime: a permutation */
		bad += put_k(KV_OP_PUT, i) != 200;
		in[i / 8] |= (unsigned char)(1 << (i % 8));
	}
	is_int(bad, 0, "%d keys put in a scrambled order", NK);
	is_int((long)kv_keys(kv), NK, "the store holds them all once");
	const char *all = "{\"key\":\"AA==\",\"range_end\":\"AA==\",\"keys_only\":true}";
	is_int(range_keys(all, in), NK, "a range over all of them answers each once, in byte order");
	is_int(range_keys("{\"key\":\"azEyMw==\",\"range_end\":\"azEyNA==\",\"keys_only\":true}", in), 100,
	       "a prefix (k123) answers its 100 keys in order");
	bad = 0;
	for (int i = 0; i < NK; i += 2) {
		bad += put_k(KV_OP_DELETE, i) != 200;
		in[i / 8] &= (unsigned char)~(1 << (i % 8));
	}
	is_int(bad, 0, "every other key deleted");
	char cbody[64];
	snprintf(cbody, sizeof cbody, "{\"revision\":\"%lld\"}", (long long)kv_revision(kv));
	is_int(run(KV_OP_COMPACT, cbody), 200, "compacted at the newest revision");
	is_int((long)kv_keys(kv), NK / 2, "compaction forgets the deleted keys");
	is_int(range_keys(all, in), NK / 2, "the rest still answer once each, in order");
	struct buf snap = BUF_INIT;
	kv_snapshot(kv, &snap);
	struct kv *copy = kv_new(NULL);
	ok(kv_restore(copy, snap.data, snap.len) == 0, "the store restores from its snapshot");
	struct kv *orig = kv;
	kv = copy;
	is_int(range_keys(all, in), NK / 2, "the restored store answers the same keys in order");
	bad = 0;
	for (int i = 0; i < NK; i += 2) {
		bad += put_k(KV_OP_PUT, i) != 200;
		in[i / 8] |= (unsigned char)(1 << (i % 8));
	}
	is_int(bad, 0, "the deleted keys put again into the restored store");
	is_int(range_keys(all, in), NK, "between the kept ones, in order");
	kv_free(copy);
	kv_free(orig);
	buf_free(&snap);
}

/* Put key s (value "1"). */
static int put_s(const char *s, size_t n)
{
	struct buf b = BUF_INIT, body = BUF_INIT;
	etcd_b64_encode(&b, s, n);
	buf_printf(&body, "{\"key\":\"%.*s\",\"value\":\"MQ==\"}", (int)b.len, b.data);
	buf_reset(&out);
	int st = kv_exec(kv, KV_OP_PUT, 0, body.data, body.len, &H, &out);
	buf_free(&b);
	buf_free(&body);
	return st;
}

/* Every key, keys only: how many, or -1 if two are not in strict byte order. */
static long keys_in_order(void)
{
	if (run(KV_OP_RANGE, "{\"key\":\"AA==\",\"range_end\":\"AA==\",\"keys_only\":true}") != 200)
		return -1;
	cJSON *j = cJSON_Parse(out.data), *e;
	struct buf k = BUF_INIT, prev = BUF_INIT;
	long n = 0;
	cJSON_ArrayForEach(e, cJSON_GetObjectItem(j, "kvs")) {
		const char *b64 = cJSON_GetStringValue(cJSON_GetObjectItem(e, "key"));
		buf_reset(&k);
		if (!b64 || etcd_b64_decode(&k, b64, strlen(b64)) < 0) {
			n = -1;
			break;
		}
		size_t m = k.len < prev.len ? k.len : prev.len;
		int c = memcmp(prev.data ? prev.data : "", k.data, m);
		if (n > 0 && (c > 0 || (c == 0 && prev.len >= k.len))) {
			n = -1;
			break;
		}
		buf_reset(&prev);
		buf_append(&prev, k.data, k.len);
		n++;
	}
	buf_free(&k);
	buf_free(&prev);
	cJSON_Delete(j);
	return n;
}

static void long_keys(void)
{
	/* keys that share more than the directory keeps of each chunk's last
	 * key (FENCE bytes), some a prefix of others: every search must still
	 * find the key it looks for, and walks keep byte order */
	enum { NK = 6000 };
	static const char pre[] = "/etcdctl-check-perf/a-prefix-longer-than-the-fence/";
	kv = kv_new(NULL);
	char key[128];
	int bad = 0;
	for (int round = 0; round < 2; round++)
		for (int x = 0; x < NK; x++) {
			int i = (int)((x * 7919L) % NK);
			/* i % 3 == 0: the prefix and i's digits only; else longer */
			int n = snprintf(key, sizeof key, "%s%d%s", pre, i / 3, i % 3 == 1 ? "-x" : i % 3 == 2 ? "-xy" : "");
			bad += put_s(key, (size_t)n) != 200;
		}
	bad += put_s(pre, sizeof pre - 1) != 200;
	bad += put_s(pre, 20) != 200;
	is_int(bad, 0, "%d long keys with a shared prefix put twice in a scrambled order, and two of its prefixes", NK);
	is_int((long)kv_keys(kv), NK + 2, "the store holds each once: the second put of each found it");
	is_int(keys_in_order(), NK + 2, "a range over all of them answers each once, in byte order");
	snprintf(key, sizeof key, "%s%d-x", pre, 1234);
	struct buf b = BUF_INIT, body = BUF_INIT;
	etcd_b64_encode(&b, key, strlen(key));
	buf_printf(&body, "{\"key\":\"%.*s\"}", (int)b.len, b.data);
	ok(run(KV_OP_RANGE, body.data) == 200 && has("\"count\":\"1\""), "a get of one finds it: %s", out.data);
	buf_free(&b);
	buf_free(&body);
	kv_free(kv);
}

/* Run body on both stores (a: the one a snapshot is being taken of); do
 * they answer the same bytes, and count the same kv_bytes? */
static int both(struct kv *a, struct kv *b, enum kv_op op, uint64_t aux, const char *body)
{
	struct buf x = BUF_INIT, y = BUF_INIT;
	int s1 = kv_exec(a, op, aux, body, strlen(body), &H, &x);
	int s2 = kv_exec(b, op, aux, body, strlen(body), &H, &y);
	int same = s1 == s2 && x.len == y.len && memcmp(x.data, y.data, x.len) == 0 && kv_bytes(a) == kv_bytes(b) &&
	           kv_compact_revision(a) == kv_compact_revision(b);
	buf_free(&x);
	buf_free(&y);
	return same;
}

/* Every watch event from rev on (prev_kv too), as bytes; -ESTALE when
 * rev is compacted. */
static long watch_all(struct kv *s, int64_t from, struct buf *ev)
{
	struct kv_watch w = {.from = from, .prev_kv = true};
	buf_init(&w.key);
	buf_init(&w.end);
	buf_putc(&w.key, 0);
	buf_putc(&w.end, 0);
	int64_t next;
	long n = kv_watch_events(s, &w, 1u << 30, ev, &next);
	kv_watch_free(&w);
	return n;
}

static void sliced_snapshot(void)
{
	/* a snapshot taken in slices while writes, deletes, compactions,
	 * grants and revokes go on is, byte for byte, the one kv_snapshot
	 * writes at kv_snap_begin; meanwhile the store answers every request
	 * as a store without a snapshot does (b, fed the same) */
	struct kv *a = kv_new(NULL), *b = kv_new(NULL);
	char body[160];
	int same = 0, tried = 0;
	for (int i = 0; i < 600; i++) {
		snprintf(body, sizeof body, "{\"key\":\"%s\",\"value\":\"%s\"}", i % 3 ? "YQ==" : "Yg==", i % 2 ? "MQ==" : "Mg==");
		if (i % 5 == 0)
			snprintf(body, sizeof body, "{\"key\":\"azAw%c%c\",\"value\":\"eA==\"}", 'A' + i % 26, 'a' + i / 26 % 26);
		tried++;
		same += both(a, b, KV_OP_PUT, 0, body);
	}
	tried++;
	same += both(a, b, KV_OP_LEASE_GRANT, 77, "{\"TTL\":\"60\"}");
	tried++;
	same += both(a, b, KV_OP_COMPACT, 0, "{\"revision\":\"100\"}");
	struct buf want = BUF_INIT, got = BUF_INIT;
	kv_snapshot(b, &want);
	struct kv_snap *s = kv_snap_begin(a);
	ok(s != NULL, "a snapshot begins");
	int steps = 0;
	bool done = false;
	int64_t c = 100;
	for (int i = 0; !done; i++) {
		done = kv_snap_step(a, s, &got, 64);
		steps++;
		switch (i % 7) {
		case 0: snprintf(body, sizeof body, "{\"key\":\"YQ==\",\"value\":\"%d\"}", i % 2 ? 12 : 34); break;
		case 1: snprintf(body, sizeof body, "{\"key\":\"azAw%c%c\",\"prev_kv\":true}", 'A' + i % 26, 'a' + i / 7 % 26); break;
		case 2: snprintf(body, sizeof body, "{\"key\":\"azAw%c\",\"value\":\"bmV3\"}", 'a' + i % 26); break;
		case 3: c += 40; snprintf(body, sizeof body, "{\"revision\":\"%lld\"}", (long long)c); break;
		case 4: snprintf(body, sizeof body, "{\"key\":\"Yg==\"}"); break;
		case 5: snprintf(body, sizeof body, "{\"ID\":\"77\"}"); break;
		default: snprintf(body, sizeof body, "{\"TTL\":\"5\",\"ID\":\"%d\"}", 100 + i); break;
		}
		enum kv_op op = (enum kv_op[]){KV_OP_PUT, KV_OP_DELETE, KV_OP_PUT, KV_OP_COMPACT, KV_OP_DELETE,
		                               KV_OP_LEASE_REVOKE, KV_OP_LEASE_GRANT}[i % 7];
		tried++;
		same += both(a, b, op, 0, body);
		if (i % 7 == 3) {
			/* watch answers from the compacted revision on, prev_kv
			 * included: the held revisions never show */
			struct buf e1 = BUF_INIT, e2 = BUF_INIT;
			long n1 = watch_all(a, c, &e1), n2 = watch_all(b, c, &e2);
			tried++;
			same += n1 == n2 && e1.len == e2.len && (!e1.len || memcmp(e1.data, e2.data, e1.len) == 0);
			buf_free(&e1);
			buf_free(&e2);
		}
	}
	ok(steps > 10, "in %d slices of 64 bytes", steps);
	is_int(same, tried, "meanwhile every answer, kv_bytes and compacted revision as a store without one");
	ok(got.len == want.len && memcmp(got.data, want.data, want.len) == 0,
	   "the slices are the snapshot at its beginning, byte for byte (%zu bytes)", got.len);
	kv_snap_end(a, s);
	buf_reset(&got);
	buf_reset(&want);
	kv_snapshot(a, &got);
	kv_snapshot(b, &want);
	ok(got.len == want.len && memcmp(got.data, want.data, want.len) == 0 && kv_keys(a) == kv_keys(b),
	   "once it ends, the held compaction is done: the store is the other's, byte for byte");
	/* one dropped before its end: nothing changes but the freeing */
	s = kv_snap_begin(a);
	kv_snap_step(a, s, &got, 64);
	both(a, b, KV_OP_COMPACT, 0, "{\"revision\":\"400\"}");
	kv_snap_end(a, s);
	buf_reset(&got);
	buf_reset(&want);
	kv_snapshot(a, &got);
	kv_snapshot(b, &want);
	ok(got.len == want.len && memcmp(got.data, want.data, want.len) == 0, "and so for one dropped half way");
	/* kv_free ends one being taken (a node stopping) */
	s = kv_snap_begin(a);
	kv_snap_step(a, s, &got, 64);
	kv_free(a);
	kv_free(b);
	buf_free(&got);
	buf_free(&want);
}

/* One put both ways, to a (gateway JSON) and b (kv_put_encode's binary
 * form): 1 when both answer the same status and bytes. */
static int put_both(struct kv *a, struct kv *b, const struct kv_put *p, int *status)
{
	struct buf k = BUF_INIT, v = BUF_INIT, j = BUF_INIT, bin = BUF_INIT, ra = BUF_INIT, rb = BUF_INIT;
	etcd_b64_encode(&k, p->key, p->klen);
	etcd_b64_encode(&v, p->value, p->vlen);
	buf_printf(&j, "{\"key\":\"%s\",\"value\":\"%s\",\"lease\":\"%lld\",\"prev_kv\":%s,\"ignore_value\":%s,"
	               "\"ignore_lease\":%s}",
	           k.data ? k.data : "", v.data ? v.data : "", (long long)p->lease,
	           p->flags & KV_PUT_PREV_KV ? "true" : "false", p->flags & KV_PUT_IGNORE_VALUE ? "true" : "false",
	           p->flags & KV_PUT_IGNORE_LEASE ? "true" : "false");
	kv_put_encode(&bin, p);
	int sa = kv_exec(a, KV_OP_PUT, 0, j.data, j.len, &H, &ra);
	int sb = kv_exec(b, KV_OP_PUT, 0, bin.data, bin.len, &H, &rb);
	int same = sa == sb && ra.len == rb.len && memcmp(ra.data, rb.data, ra.len) == 0;
	if (!same)
		printf("# json %d %.*s\n# bin  %d %.*s\n", sa, (int)ra.len, ra.data, sb, (int)rb.len, rb.data);
	*status = sa;
	buf_free(&k);
	buf_free(&v);
	buf_free(&j);
	buf_free(&bin);
	buf_free(&ra);
	buf_free(&rb);
	return same;
}

/* The log's binary put (what a gRPC Put becomes) does what the gateway's
 * JSON put does, field by field: the same answers, the same store. */
static void binary_put(void)
{
	struct kv *a = kv_new(NULL), *b = kv_new(NULL);
	struct buf x = BUF_INIT, y = BUF_INIT;
	kv_exec(a, KV_OP_LEASE_GRANT, 7, "{\"TTL\":60}", 10, &H, &x);
	kv_exec(b, KV_OP_LEASE_GRANT, 7, "{\"TTL\":60}", 10, &H, &y);
	static const char key[] = "k\0\xff/x", val[] = "v\0\x80\xfe value";
	struct {
		struct kv_put p;
		int status;
		const char *what;
	} cases[] = {
		{{key, val, sizeof key - 1, sizeof val - 1, 7, 0}, 200, "a put with a lease, NUL and high bytes in key and value"},
		{{key, "two", sizeof key - 1, 3, 0, KV_PUT_PREV_KV}, 200, "a put with prev_kv"},
		{{key, "", sizeof key - 1, 0, 7, KV_PUT_PREV_KV}, 200, "an empty value"},
		{{key, "", sizeof key - 1, 0, 7, KV_PUT_IGNORE_VALUE | KV_PUT_PREV_KV}, 200, "ignore_value"},
		{{key, "three", sizeof key - 1, 5, 0, KV_PUT_IGNORE_LEASE}, 200, "ignore_lease"},
		{{"b", "1", 1, 1, 8, 0}, 404, "an unknown lease"},
		{{"c", "", 1, 0, 0, KV_PUT_IGNORE_VALUE}, 400, "ignore_value on a missing key"},
		{{"", "1", 0, 1, 0, 0}, 400, "an empty key"},
		{{"b", "1", 1, 1, -1, KV_PUT_PREV_KV}, 404, "a negative lease"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int st = 0;
		ok(put_both(a, b, &cases[i].p, &st), "binary put, %s: the JSON put's answer", cases[i].what);
		is_int(st, cases[i].status, "binary put, %s: status", cases[i].what);
	}
	buf_reset(&x);
	buf_reset(&y);
	kv_snapshot(a, &x);
	kv_snapshot(b, &y);
	ok(x.len == y.len && memcmp(x.data, y.data, x.len) == 0, "binary puts leave the store JSON puts leave");
	/* each field at its place: read back what the binary form wrote */
	buf_reset(&x);
	kv_exec(b, KV_OP_RANGE, 0, "{\"key\":\"awD/L3g=\"}", 19, &H, &x);
	buf_putc(&x, '\0');
	ok(strstr(x.data, "\"version\":\"5\",\"value\":\"dGhyZWU=\",\"lease\":\"7\""), "the key's last put: %s", x.data);

	/* round trip, and what does not decode */
	struct kv_put p = {"key", "value", 3, 5, -2, KV_PUT_PREV_KV | KV_PUT_IGNORE_LEASE}, q;
	buf_reset(&x);
	kv_put_encode(&x, &p);
	is_int(x.len, KV_PUT_BIN_HEAD + 8, "the binary form is its head, key and value");
	ok(kv_put_decode(x.data, x.len, &q) == 0 && q.klen == 3 && !memcmp(q.key, "key", 3) && q.vlen == 5 &&
	   !memcmp(q.value, "value", 5) && q.lease == -2 && q.flags == p.flags, "and decodes to what was encoded");
	int64_t rev = kv_revision(b);
	int refused = 0;
	for (size_t cut = 1; cut < KV_PUT_BIN_HEAD + 3; cut++) {
		buf_reset(&y);
		refused += kv_exec(b, KV_OP_PUT, 0, x.data, cut, &H, &y) == 400;
	}
	is_int(refused, KV_PUT_BIN_HEAD + 2, "a binary put cut short before its key's end is a 400");
	x.data[1] = 8;
	buf_reset(&y);
	is_int(kv_exec(b, KV_OP_PUT, 0, x.data, x.len, &H, &y), 400, "one with an unknown flag is a 400");
	is_int(kv_revision(b), rev, "and none of them changed the store");
	x.data[1] = 0;
	buf_reset(&y);
	ok(kv_check(KV_OP_PUT, x.data, x.len, &y) != 0, "the gateway's check refuses the binary form (only the node builds it)");
	buf_free(&x);
	buf_free(&y);
	kv_free(a);
	kv_free(b);
}

int main(void)
{
	buf_init(&out);
	kv = kv_new(NULL);

	is_int(kv_revision(kv), 1, "a new store is at revision 1");
	is_int(run(KV_OP_PUT, "{\"key\":\"YQ==\",\"value\":\"MQ==\"}"), 200, "put a=1");
	is_int(kv_revision(kv), 2, "a put raises the revision by one");
	run(KV_OP_PUT, "{\"key\":\"YQ==\",\"value\":\"Mg==\",\"prev_kv\":true}");
	ok(has("\"prev_kv\":{\"key\":\"YQ==\",\"create_revision\":\"2\",\"mod_revision\":\"2\",\"version\":\"1\""),
	   "prev_kv is the value before: %s", out.data);
	run(KV_OP_RANGE, "{\"key\":\"YQ==\"}");
	ok(has("\"create_revision\":\"2\",\"mod_revision\":\"3\",\"version\":\"2\",\"value\":\"Mg==\""),
	   "create stays, mod and version move: %s", out.data);
	ok(has("\"header\":{\"cluster_id\":\"1\",\"member_id\":\"2\",\"revision\":\"3\",\"raft_term\":\"3\"}"),
	   "the header carries ids, revision and term as strings");

	run(KV_OP_DELETE, "{\"key\":\"Yg==\"}");
	is_int(kv_revision(kv), 3, "deleting a missing key leaves the revision");
	ok(!has("deleted"), "and says nothing was deleted (zero left out)");
	run(KV_OP_DELETE, "{\"key\":\"YQ==\"}");
	is_int(kv_revision(kv), 4, "a delete that deletes raises it");
	run(KV_OP_PUT, "{\"key\":\"YQ==\",\"value\":\"Mw==\"}");
	run(KV_OP_RANGE, "{\"key\":\"YQ==\"}");
	ok(has("\"create_revision\":\"5\",\"mod_revision\":\"5\",\"version\":\"1\""),
	   "a key put after its delete starts a new generation");
	run(KV_OP_RANGE, "{\"key\":\"YQ==\",\"revision\":\"3\"}");
	ok(has("\"value\":\"Mg==\""), "an old revision reads the old value");
	run(KV_OP_RANGE, "{\"key\":\"YQ==\",\"revision\":\"4\"}");
	ok(!has("kvs"), "at the delete's revision the key is gone");

	/* txn: one revision for all its writes; reads see its earlier writes */
	int st = run(KV_OP_TXN, "{\"compare\":[{\"key\":\"YQ==\",\"target\":\"VERSION\",\"version\":\"1\"}],"
	                        "\"success\":[{\"request_put\":{\"key\":\"Yg==\",\"value\":\"MQ==\"}},"
	                        "{\"request_put\":{\"key\":\"Yw==\",\"value\":\"MQ==\"}},"
	                        "{\"request_range\":{\"key\":\"Yg==\"}}]}");
	is_int(st, 200, "a txn with two puts and a range");
	is_int(kv_revision(kv), 6, "raises the revision once");
	ok(has("\"succeeded\":true") && has("\"mod_revision\":\"6\""), "and its range sees its put: %s", out.data);
	st = run(KV_OP_TXN, "{\"success\":[{\"request_put\":{\"key\":\"Yg==\"}},{\"request_delete_range\":{\"key\":\"YQ==\",\"range_end\":\"Yw==\"}}]}");
	is_int(st, 400, "a put inside a deleted range of the same txn is refused");
	ok(has("duplicate key given in txn request"), "with etcd's words");
	is_int(kv_revision(kv), 6, "and changes nothing");
	st = run(KV_OP_TXN, "{\"compare\":[{\"key\":\"eg==\",\"target\":\"VALUE\",\"value\":\"\"}],"
	                    "\"failure\":[{\"request_range\":{\"key\":\"YQ==\"}}]}");
	ok(st == 200 && !has("succeeded"), "a value compare on a missing key is false");
	is_int(kv_revision(kv), 6, "a txn that only reads leaves the revision");

	/* range options */
	run(KV_OP_RANGE, "{\"key\":\"YQ==\",\"range_end\":\"AA==\",\"limit\":\"1\"}");
	ok(has("\"more\":true") && has("\"count\":\"3\""), "limit cuts, count counts all: %s", out.data);
	run(KV_OP_RANGE, "{\"key\":\"YQ==\",\"range_end\":\"AA==\",\"sort_order\":\"DESCEND\",\"keys_only\":true}");
	ok(strstr(out.data, "Yw==") < strstr(out.data, "YQ==") && !has("value"), "descending, keys only: %s", out.data);

	/* compaction */
	st = run(KV_OP_COMPACT, "{\"revision\":\"99\"}");
	ok(st == 400 && has("required revision is a future revision"), "compacting the future is refused");
	is_int(run(KV_OP_COMPACT, "{\"revision\":\"5\"}"), 200, "compact at 5");
	st = run(KV_OP_RANGE, "{\"key\":\"YQ==\",\"revision\":\"3\"}");
	ok(st == 400 && has("required revision has been compacted"), "below it is gone");
	run(KV_OP_RANGE, "{\"key\":\"YQ==\",\"revision\":\"5\"}");
	ok(has("\"value\":\"Mw==\""), "at it, reads are unchanged");
	st = run(KV_OP_COMPACT, "{\"revision\":\"5\"}");
	ok(st == 400 && has("compacted"), "compacting again at the same revision is refused");

	/* leases */
	buf_reset(&out);
	st = kv_exec(kv, KV_OP_LEASE_GRANT, 42, "{\"TTL\":1}", 9, &H, &out);
	ok(st == 200 && strstr(out.data, "\"ID\":\"42\",\"TTL\":\"2\""), "a grant without ID takes the proposer's, TTL raised to 2");
	st = run(KV_OP_PUT, "{\"key\":\"bA==\",\"value\":\"MQ==\",\"lease\":\"42\"}");
	is_int(st, 200, "a put with the lease");
	st = run(KV_OP_PUT, "{\"key\":\"bA==\",\"value\":\"MQ==\",\"lease\":\"43\"}");
	ok(st == 404 && has("requested lease not found"), "a put with an unknown lease: 404");
	int64_t rev = kv_revision(kv);
	run(KV_OP_LEASE_REVOKE, "{\"ID\":\"42\"}");
	is_int(kv_revision(kv), rev + 1, "revoking deletes its keys in one revision");
	run(KV_OP_RANGE, "{\"key\":\"bA==\"}");
	ok(!has("kvs"), "the leased key is gone");
	st = run(KV_OP_LEASE_REVOKE, "{\"ID\":\"42\"}");
	is_int(st, 404, "a second revoke: not found");

	/* watch */
	struct kv_watch w;
	struct buf err = BUF_INIT;
	const char *wb = "{\"create_request\":{\"key\":\"YQ==\",\"range_end\":\"AA==\",\"start_revision\":\"5\",\"prev_kv\":true}}";
	is_int(kv_watch_parse(wb, strlen(wb), &w, &err), 0, "a watch request parses");
	buf_reset(&out);
	int64_t next = 0;
	long n = kv_watch_events(kv, &w, 100, &out, &next);
	buf_putc(&out, '\0');
	ok(n >= 3, "events from revision 5 on: %ld", n);
	ok(strstr(out.data, "\"mod_revision\":\"5\"") < strstr(out.data, "\"mod_revision\":\"6\""), "oldest first");
	ok(has("\"type\":\"DELETE\""), "the revoke's delete is an event");
	is_int(next, kv_revision(kv) + 1, "resume after the last");
	w.from = 2;
	is_int(kv_watch_events(kv, &w, 100, &out, &next), -ESTALE, "a compacted start revision");
	kv_watch_free(&w);
	buf_free(&err);

	/* determinism: the same commands, the same bytes */
	struct kv *a = kv_new(NULL), *b = kv_new(NULL);
	struct buf ba = BUF_INIT, bb = BUF_INIT;
	const char *cmds[] = {"{\"key\":\"YQ==\",\"value\":\"MQ==\"}", "{\"key\":\"Yg==\",\"value\":\"Mg==\",\"prev_kv\":true}",
	                      "{\"key\":\"YQ==\",\"value\":\"Mw==\",\"prev_kv\":true}"};
	for (int i = 0; i < 3; i++) {
		kv_exec(a, KV_OP_PUT, 0, cmds[i], strlen(cmds[i]), &H, &ba);
		kv_exec(b, KV_OP_PUT, 0, cmds[i], strlen(cmds[i]), &H, &bb);
	}
	ok(ba.len == bb.len && memcmp(ba.data, bb.data, ba.len) == 0, "two replicas answer the same bytes");
	buf_free(&ba);
	buf_free(&bb);
	kv_free(a);
	kv_free(b);

	/* bad input: an error, never a crash, nothing changed */
	rev = kv_revision(kv);
	const char *bad[] = {"", "[]", "{\"key\":5}", "{\"key\":\"!!\"}", "{\"key\":\"YQ==\",\"lease\":\"x\"}", "{\"key\":\"YQ==\",\"value\":{}}"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		st = run(KV_OP_PUT, bad[i]);
		ok(st == 400 && has("\"code\":3"), "bad put '%s' is a 400", bad[i]);
	}
	st = run(KV_OP_TXN, "{\"success\":[{\"request_put\":{\"key\":\"YQ==\",\"lease\":\"9\"}}]}");
	ok(st == 404, "a txn whose put names an unknown lease is refused whole");
	is_int(kv_revision(kv), rev, "none of it changed the store");

	/* snapshots: a restored store answers every read as the original,
	 * at every revision, and snapshots to the same bytes */
	run(KV_OP_PUT, "{\"key\":\"c25h\",\"value\":\"MQ==\"}");
	run(KV_OP_PUT, "{\"key\":\"c25h\",\"value\":\"Mg==\"}");
	run(KV_OP_DELETE, "{\"key\":\"YQ==\"}");
	struct buf snap = BUF_INIT, again = BUF_INIT;
	kv_snapshot(kv, &snap);
	struct kv *copy = kv_new(NULL);
	is_int(kv_restore(copy, snap.data, snap.len), 0, "kv_restore takes kv_snapshot's bytes");
	kv_snapshot(copy, &again);
	ok(snap.len == again.len && memcmp(snap.data, again.data, snap.len) == 0, "and snapshots to the same bytes");
	ok(kv_revision(copy) == kv_revision(kv) && kv_compact_revision(copy) == kv_compact_revision(kv) &&
	   kv_lease_count(copy) == kv_lease_count(kv), "revision, compacted revision and leases as they were");
	int same = 0, tried = 0;
	for (int64_t r = kv_compact_revision(kv); r <= kv_revision(kv); r++) {
		char body[96];
		snprintf(body, sizeof body, "{\"key\":\"AA==\",\"range_end\":\"AA==\",\"revision\":\"%lld\"}", (long long)r);
		struct buf x = BUF_INIT, y = BUF_INIT;
		int s1 = kv_exec(kv, KV_OP_RANGE, 0, body, strlen(body), &H, &x);
		int s2 = kv_exec(copy, KV_OP_RANGE, 0, body, strlen(body), &H, &y);
		tried++;
		same += s1 == s2 && x.len == y.len && memcmp(x.data, y.data, x.len) == 0;
		buf_free(&x);
		buf_free(&y);
	}
	ok(tried > 2 && same == tried, "every range at every revision answers the same bytes (%d of %d)", same, tried);
	/* bytes that are not a snapshot: refused, the store untouched, no crash */
	int refused = 0;
	for (size_t cut = 0; cut < snap.len; cut++)
		refused += kv_restore(copy, snap.data, cut) == -EINVAL;
	is_int(refused, (int)snap.len, "every cut-short snapshot is refused");
	int flips = 0, answered = 0;
	for (size_t at = 4; at < snap.len; at += 7, flips++) {
		snap.data[at] ^= 0x80;
		int rc = kv_restore(copy, snap.data, snap.len);
		answered += rc == 0 || rc == -EINVAL;
		snap.data[at] ^= 0x80;
	}
	ok(flips > 10 && answered == flips, "flipped bytes are refused or restored, never a crash (%d tries)", flips);
	is_int(kv_restore(copy, snap.data, snap.len), 0, "the good snapshot still restores after all that");
	buf_reset(&again);
	kv_snapshot(copy, &again);
	ok(snap.len == again.len && memcmp(snap.data, again.data, snap.len) == 0, "to the same store");
	kv_free(copy);
	buf_free(&snap);
	buf_free(&again);

	kv_free(kv);

	/* the space quota: past it, etcd's NOSPACE refusals; compaction clears it */
	struct kv_limits ql = {.quota_bytes = 2000};
	kv = kv_new(&ql);
	int puts = 0;
	bool all_taken = true;
	while (!kv_alarm_nospace(kv) && puts < 100) {
		all_taken = all_taken &&
		            run(KV_OP_PUT, "{\"key\":\"cQ==\",\"value\":\"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDEyMzQ1Njc4OQ==\"}") == 200;
		puts++;
	}
	ok(all_taken, "puts under the quota are taken");
	ok(kv_alarm_nospace(kv) && kv_bytes(kv) > 2000, "the alarm is raised past the quota (%d puts, %llu bytes)", puts,
	   (unsigned long long)kv_bytes(kv));
	st = run(KV_OP_PUT, "{\"key\":\"cg==\",\"value\":\"MQ==\"}");
	ok(st == 429 && has("\"code\":8") && has("etcdserver: mvcc: database space exceeded"), "a put is refused: %s", out.data);
	rev = kv_revision(kv);
	st = run(KV_OP_TXN, "{\"success\":[{\"request_put\":{\"key\":\"cg==\",\"value\":\"MQ==\"}}]}");
	ok(st == 429 && has("database space exceeded"), "so is a txn with a put");
	st = run(KV_OP_LEASE_GRANT, "{\"TTL\":\"10\"}");
	ok(st == 429 && has("database space exceeded"), "and a lease grant");
	is_int(kv_revision(kv), rev, "none of them changed the store");
	is_int(run(KV_OP_RANGE, "{\"key\":\"cQ==\"}"), 200, "reads go on");
	is_int(run(KV_OP_TXN, "{\"success\":[{\"request_range\":{\"key\":\"cQ==\"}}]}"), 200, "a txn that only reads goes on");
	is_int(run(KV_OP_DELETE, "{\"key\":\"cQ==\"}"), 200, "a delete goes on");
	char cbody[64];
	snprintf(cbody, sizeof cbody, "{\"revision\":\"%lld\"}", (long long)kv_revision(kv));
	is_int(run(KV_OP_COMPACT, cbody), 200, "and compaction");
	ok(!kv_alarm_nospace(kv) && kv_bytes(kv) == 0, "which clears the alarm (%llu bytes left)", (unsigned long long)kv_bytes(kv));
	is_int(run(KV_OP_PUT, "{\"key\":\"cg==\",\"value\":\"MQ==\"}"), 200, "and writes are taken again");
	struct buf qs = BUF_INIT;
	kv_snapshot(kv, &qs);
	struct kv *qcopy = kv_new(&ql);
	ok(kv_restore(qcopy, qs.data, qs.len) == 0 && kv_bytes(qcopy) == kv_bytes(kv), "a restored store counts the same bytes");
	kv_free(qcopy);
	buf_free(&qs);
	kv_free(kv);

	/* a range whose answer would pass the limit is refused, not built */
	struct kv_limits lim = {.max_range_bytes = 1024};
	kv = kv_new(&lim);
	for (int i = 0; i < 20; i++) {
		char body[256];
		snprintf(body, sizeof body, "{\"key\":\"%s\",\"value\":\"%0128d\"}", i < 10 ? "YQ==" : "Yg==", i);
		run(KV_OP_PUT, body);
	}
	run(KV_OP_PUT, "{\"key\":\"YzA=\",\"value\":\"MQ==\"}");
	st = run(KV_OP_RANGE, "{\"key\":\"YQ==\",\"range_end\":\"AA==\"}");
	ok(st == 200, "a range within the limit is answered");
	for (int i = 0; i < 20; i++) {
		char body[64];
		snprintf(body, sizeof body, "{\"key\":\"ZA%c%c\",\"value\":\"MQ==\"}", 'A' + i % 26, 'A' + i / 26);
		run(KV_OP_PUT, body);
	}
	static char big[2100];
	const char *head = "{\"key\":\"ZQ==\",\"value\":\"";
	size_t hl = strlen(head);
	memcpy(big, head, hl);
	memset(big + hl, 'Q', 2000);   /* 1500 bytes of value */
	memcpy(big + hl + 2000, "\"}", 3);
	is_int(run(KV_OP_PUT, big), 200, "a 1500-byte value");
	st = run(KV_OP_RANGE, "{\"key\":\"YQ==\",\"range_end\":\"AA==\"}");
	ok(st == 429 && has("\"code\":8") && has("too large"), "a range past the limit: code 8, 429: %.80s", out.data);
	st = run(KV_OP_RANGE, "{\"key\":\"YQ==\",\"range_end\":\"AA==\",\"count_only\":true}");
	ok(st == 200 && has("\"count\":\"24\""), "counting it is fine: %.120s", out.data);
	st = run(KV_OP_RANGE, "{\"key\":\"YQ==\",\"range_end\":\"AA==\",\"limit\":\"3\"}");
	ok(st == 200 && has("\"more\":true"), "and a limit narrows it");
	kv_free(kv);

	/* compaction shrinks the arrays it empties: what is kept reads and
	 * grows as before (keys k000..k199, each put 40 times) */
	kv = kv_new(NULL);
	char body[200], key[16];
	struct buf b64k = BUF_INIT;
	for (int v = 0; v < 40; v++)
		for (int i = 0; i < 200; i++) {
			snprintf(key, sizeof key, "k%03d", i);
			buf_reset(&b64k);
			etcd_b64_encode(&b64k, key, 4);
			snprintf(body, sizeof body, "{\"key\":\"%.*s\",\"value\":\"%s\"}", (int)b64k.len, b64k.data,
			         v % 2 ? "MQ==" : "Mg==");
			run(KV_OP_PUT, body);
		}
	buf_free(&b64k);
	snprintf(body, sizeof body, "{\"revision\":\"%lld\"}", (long long)kv_revision(kv));
	is_int(run(KV_OP_COMPACT, body), 200, "compact 200 keys of 40 revisions each at the last");
	run(KV_OP_RANGE, "{\"key\":\"azAwMA==\",\"range_end\":\"bA==\",\"count_only\":true}");
	ok(has("\"count\":\"200\""), "every key is kept: %.120s", out.data);
	run(KV_OP_DELETE, "{\"key\":\"azAwMA==\",\"range_end\":\"azE5MA==\"}");
	snprintf(body, sizeof body, "{\"revision\":\"%lld\"}", (long long)kv_revision(kv));
	is_int(run(KV_OP_COMPACT, body), 200, "delete 190 of them, compact");
	for (int v = 0; v < 5; v++)
		run(KV_OP_PUT, "{\"key\":\"azE5OQ==\",\"value\":\"Mw==\"}");
	run(KV_OP_PUT, "{\"key\":\"azAwMA==\",\"value\":\"NA==\"}");
	run(KV_OP_RANGE, "{\"key\":\"azAwMA==\",\"range_end\":\"bA==\"}");
	ok(has("\"count\":\"11\"") && has("\"key\":\"azE5OQ==\",\"create_revision\":\"201\"") &&
	   has("\"version\":\"45\",\"value\":\"Mw==\"") && has("\"version\":\"1\",\"value\":\"NA==\""),
	   "the 10 left and a new one read and grow as before: %.400s", out.data);
	kv_free(kv);
	many_keys();
	long_keys();
	sliced_snapshot();
	binary_put();
	buf_free(&out);
	return tap_done();
}
