/* Unit tests of lib/store/etcd's pure half: request bodies, base64, and
 * the answers etcd 3.4.23's JSON gateway gives (copied from curl sessions
 * against a real etcd-server, values changed where a test needs it).
 *
 * And one rule of the client half that a real etcd cannot be made to show
 * on demand: a call answered UNAVAILABLE goes on to the next endpoint.
 * Two members on loopback, each a thread answering every request with a
 * set answer, count what reaches them. */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/buf.h"
#include "store/etcd.h"
#include "loopback.h"
#include "tap.h"

static struct buf b;

static const char *body(void)
{
	buf_putc(&b, '\0');
	b.len--;
	return b.data;
}

static int parse(const char *s, struct etcd_resp *r) { return etcd_parse(s, strlen(s), r); }

/* ---- a member that gives every request the same answer */

struct member {
	struct loopback_server srv;
	int port;                /* srv.port */
	const char *answer;      /* the whole HTTP answer */
	int requests;            /* read under mu */
};
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

/* One connection: each request (headers, then Content-Length bytes) gets
 * the answer, until the client closes. */
static void member_serve(void *arg, int c)
{
	struct member *m = arg;
	char req[8192];
	size_t have = 0;
	for (;;) {
		char *end = have ? memmem(req, have, "\r\n\r\n", 4) : NULL;
		if (end) {
			size_t head = (size_t)(end - req) + 4, clen = 0;
			char *cl = memmem(req, head, "Content-Length:", 15);
			if (cl)
				clen = strtoul(cl + 15, NULL, 10);
			if (have >= head + clen) {
				pthread_mutex_lock(&mu);
				m->requests++;
				const char *a = m->answer;
				pthread_mutex_unlock(&mu);
				if (write(c, a, strlen(a)) < 0)
					return;
				memmove(req, req + head + clen, have - head - clen);
				have -= head + clen;
				continue;
			}
		}
		if (have == sizeof req)
			return;
		ssize_t n = read(c, req + have, sizeof req - have);
		if (n <= 0)
			return;
		have += (size_t)n;
	}
}

static void member_start(struct member *m)
{
	loopback_start(&m->srv, member_serve, m);
	m->port = m->srv.port;
}

static void member_set(struct member *m, const char *answer)
{
	pthread_mutex_lock(&mu);
	m->answer = answer;
	m->requests = 0;
	pthread_mutex_unlock(&mu);
}

static int member_requests(struct member *m)
{
	pthread_mutex_lock(&mu);
	int n = m->requests;
	pthread_mutex_unlock(&mu);
	return n;
}

static char leader_changed[256], no_leader[256], put_ok[256];
/* One call of path with body through a new client on both members, A
 * first; returns etcd_sync's code, *code the gRPC code of an error. */
static int call_once(struct member *a, struct member *b, const char *path, const struct buf *body, int *code)
{
	char text[128], err[128];
	struct store_url u;
	snprintf(text, sizeof text, "etcd+json://127.0.0.1:%d,127.0.0.1:%d", a->port, b->port);
	if (store_url_parse(text, &u, err, sizeof err) < 0)
		return -EINVAL;
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct etcd_client *c = etcd_client_new(&loop, &u, NULL);
	struct etcd_resp r;
	int rc = etcd_sync(c, path, body, &r);
	*code = rc == ETCD_E_SERVER ? r.error_code : 0;
	etcd_resp_free(&r);
	etcd_client_free(c);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	return rc;
}

static void test_unavailable(void)
{
	static const char lc[] = "{\"error\":\"etcdserver: leader changed\",\"code\":14,\"message\":\"etcdserver: leader changed\"}";
	static const char nl[] = "{\"error\":\"etcdserver: no leader\",\"code\":14,\"message\":\"etcdserver: no leader\"}";
	snprintf(leader_changed, sizeof leader_changed,
	         "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
	         strlen(lc), lc);
	snprintf(no_leader, sizeof no_leader,
	         "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
	         strlen(nl), nl);
	static const char po[] = "{\"header\":{\"revision\":\"5\",\"raft_term\":\"2\",\"member_id\":\"1\"}}";
	snprintf(put_ok, sizeof put_ok,
	         "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s", strlen(po), po);
	struct member a = {0}, bm = {0};
	member_start(&a);
	member_start(&bm);
	struct buf put = BUF_INIT, range = BUF_INIT;
	etcd_req_put(&put, "k", 1, "v", 1, 0, false);
	struct etcd_range rr = {.key = "k", .key_len = 1};
	etcd_req_range(&range, &rr, NULL);
	int code;

	/* a write answered UNAVAILABLE after its proposal ("leader changed",
	 * "request timed out") may still commit: sent on, a plain put could
	 * apply twice.  It is returned, as etcd's own client does; only "no
	 * leader" (never proposed) goes on.  dsys-raft answers "no leader"
	 * for a write it can show it never proposed nor forwarded. */
	member_set(&a, leader_changed);
	member_set(&bm, put_ok);
	int rc = call_once(&a, &bm, ETCD_PATH_PUT, &put, &code);
	ok(rc == ETCD_E_SERVER && code == 14 && member_requests(&a) == 1 && member_requests(&bm) == 0,
	   "a put answered 'leader changed' is returned, not sent on: rc %d code %d, A %d, B %d",
	   rc, code, member_requests(&a), member_requests(&bm));

	member_set(&a, no_leader);
	member_set(&bm, put_ok);
	rc = call_once(&a, &bm, ETCD_PATH_PUT, &put, &code);
	ok(rc == 0 && member_requests(&a) == 1 && member_requests(&bm) == 1,
	   "a put answered 'no leader' (never proposed) goes on to the next member: rc %d, A %d, B %d",
	   rc, member_requests(&a), member_requests(&bm));

	member_set(&a, leader_changed);
	member_set(&bm, put_ok);
	rc = call_once(&a, &bm, ETCD_PATH_RANGE, &range, &code);
	ok(rc == 0 && member_requests(&a) == 1 && member_requests(&bm) == 1,
	   "a range answered 'leader changed' goes on to the next member: rc %d, A %d, B %d",
	   rc, member_requests(&a), member_requests(&bm));
	buf_free(&put);
	buf_free(&range);
	loopback_stop(&a.srv);
	loopback_stop(&bm.srv);
}

int main(void)
{
	buf_init(&b);

	/* base64: every byte value, and every length modulo 3 */
	char all[256];
	for (int i = 0; i < 256; i++)
		all[i] = (char)i;
	int roundtrip = 1;
	for (size_t n = 0; n <= 256; n++) {
		struct buf e, d;
		buf_init(&e);
		buf_init(&d);
		etcd_b64_encode(&e, all + (256 - n), n);
		if (e.len != (n + 2) / 3 * 4 || etcd_b64_decode(&d, e.data, e.len) < 0 || d.len != n ||
		    (n && memcmp(d.data, all + (256 - n), n) != 0))
			roundtrip = 0;
		buf_free(&e);
		buf_free(&d);
	}
	ok(roundtrip, "every byte value 0..255 round-trips through base64, at every length");
	buf_reset(&b);
	etcd_b64_encode(&b, "a", 1);
	is_str(body(), "YQ==", "base64 of 'a' is YQ== as etcd writes it");
	struct buf d;
	buf_init(&d);
	ok(etcd_b64_decode(&d, "YQ=", 3) == 0 && d.len == 1 && d.data[0] == 'a', "short padding is accepted");
	ok(etcd_b64_decode(&d, "Y", 1) == -EINVAL, "one lone base64 character is refused");
	ok(etcd_b64_decode(&d, "YQ*=", 4) == -EINVAL, "a character outside base64 is refused");
	buf_free(&d);

	/* requests */
	struct etcd_range r1 = { "a", 1, NULL, 0, false };
	struct etcd_range_opts o = { .limit = 10, .revision = 9007199254740993LL };
	buf_reset(&b);
	etcd_req_range(&b, &r1, &o);
	is_str(body(), "{\"key\":\"YQ==\",\"limit\":\"10\",\"revision\":\"9007199254740993\"}",
	       "range: key, limit and an exact revision above 2^53 as a string");
	struct etcd_range_opts so = { .serializable = true };
	buf_reset(&b);
	etcd_req_range(&b, &r1, &so);
	is_str(body(), "{\"key\":\"YQ==\",\"serializable\":true}", "range: serializable as etcd's flag");
	struct etcd_range rp = { "a", 1, NULL, 0, true };
	buf_reset(&b);
	etcd_req_range(&b, &rp, NULL);
	is_str(body(), "{\"key\":\"YQ==\",\"range_end\":\"Yg==\"}", "range with prefix 'a' ends at 'b'");
	struct etcd_range rff = { "a\xff\xff", 3, NULL, 0, true };
	buf_reset(&b);
	etcd_req_range(&b, &rff, NULL);
	is_str(body(), "{\"key\":\"Yf//\",\"range_end\":\"Yg==\"}", "prefix ending in 0xff bytes ends past them");
	struct etcd_range rall = { "", 0, NULL, 0, true };
	buf_reset(&b);
	etcd_req_range(&b, &rall, NULL);
	is_str(body(), "{\"key\":\"AA==\",\"range_end\":\"AA==\"}", "an empty prefix means every key, as etcdctl sends it");
	struct etcd_range re = { "a", 1, "c", 1, false };
	buf_reset(&b);
	etcd_req_delete(&b, &re, true);
	is_str(body(), "{\"key\":\"YQ==\",\"range_end\":\"Yw==\",\"prev_kv\":true}", "deleterange [a,c) with prev_kv");
	buf_reset(&b);
	etcd_req_put(&b, "k", 1, "", 0, 7587880000000000001LL, true);
	is_str(body(), "{\"key\":\"aw==\",\"value\":\"\",\"lease\":\"7587880000000000001\",\"prev_kv\":true}",
	       "put with an empty value, an exact 64-bit lease and prev_kv");

	struct etcd_compare cmp[] = {
		{ "k", 1, ETCD_CREATE, ETCD_EQUAL, 0, NULL, 0, false },
		{ "k", 1, ETCD_MOD, ETCD_LESS, 5, NULL, 0, false },
		{ "k", 1, ETCD_VERSION, ETCD_GREATER, 2, NULL, 0, true },
		{ "k", 1, ETCD_VALUE, ETCD_NOT_EQUAL, 0, "v", 1, false },
	};
	struct etcd_op succ[] = { { .kind = ETCD_OP_PUT, .r = { "k", 1, NULL, 0, false }, .value = "v", .value_len = 1, .lease = 3 } };
	struct etcd_op fail[] = { { .kind = ETCD_OP_RANGE, .r = { "k", 1, NULL, 0, false } },
	                          { .kind = ETCD_OP_DELETE, .r = { "k", 1, NULL, 0, true } } };
	buf_reset(&b);
	etcd_req_txn(&b, cmp, 4, succ, 1, fail, 2);
	is_str(body(),
	       "{\"compare\":[{\"key\":\"aw==\",\"target\":\"CREATE\",\"result\":\"EQUAL\",\"create_revision\":\"0\"},"
	       "{\"key\":\"aw==\",\"target\":\"MOD\",\"result\":\"LESS\",\"mod_revision\":\"5\"},"
	       "{\"key\":\"aw==\",\"range_end\":\"bA==\",\"target\":\"VERSION\",\"result\":\"GREATER\",\"version\":\"2\"},"
	       "{\"key\":\"aw==\",\"target\":\"VALUE\",\"result\":\"NOT_EQUAL\",\"value\":\"dg==\"}],"
	       "\"success\":[{\"request_put\":{\"key\":\"aw==\",\"value\":\"dg==\",\"lease\":\"3\"}}],"
	       "\"failure\":[{\"request_range\":{\"key\":\"aw==\"}},"
	       "{\"request_delete_range\":{\"key\":\"aw==\",\"range_end\":\"bA==\"}}]}",
	       "txn: compares on create/mod/version/value (one over a prefix), put, range and delete ops");
	buf_reset(&b);
	etcd_req_lease_grant(&b, 30, 0);
	is_str(body(), "{\"TTL\":\"30\"}", "lease grant lets etcd pick the ID");
	buf_reset(&b);
	etcd_req_lease_timetolive(&b, -1, true);
	is_str(body(), "{\"ID\":\"-1\",\"keys\":true}", "timetolive with keys");
	buf_reset(&b);
	etcd_req_watch(&b, &r1, 12, false);
	is_str(body(), "{\"create_request\":{\"key\":\"YQ==\",\"start_revision\":\"12\"}}", "watch from a revision");

	/* answers */
	struct etcd_resp r;
	ok(parse("{\"header\":{\"cluster_id\":\"15118495548433857066\",\"revision\":\"9223372036854775807\"},"
	         "\"kvs\":[{\"key\":\"YQ==\",\"create_revision\":\"9007199254740993\",\"mod_revision\":\"9007199254740995\","
	         "\"version\":\"3\",\"value\":\"AP8=\",\"lease\":\"7587880000000000001\"}],\"count\":\"1\"}", &r) == 0,
	   "a range answer parses");
	ok(r.revision == INT64_MAX, "header.revision is exact at 2^63-1");
	ok(r.n_kvs == 1 && r.kvs[0].create_revision == 9007199254740993LL &&
	   r.kvs[0].mod_revision == 9007199254740995LL && r.kvs[0].version == 3 &&
	   r.kvs[0].lease == 7587880000000000001LL, "create/mod revisions, version and lease are exact above 2^53");
	ok(r.kvs[0].key_len == 1 && r.kvs[0].key[0] == 'a' && r.kvs[0].value_len == 2 &&
	   r.kvs[0].value[0] == 0 && (unsigned char)r.kvs[0].value[1] == 0xff, "key and value are decoded bytes");
	ok(r.count == 1 && !r.more, "count and more");
	etcd_resp_free(&r);
	ok(parse("{\"header\":{\"revision\":\"2\"}}", &r) == 0 && r.n_kvs == 0 && r.count == 0,
	   "a range with no key: etcd leaves kvs and count out");
	etcd_resp_free(&r);
	ok(parse("{\"header\":{\"revision\":\"4\"},\"prev_kv\":{\"key\":\"YQ==\",\"value\":\"Yg==\",\"mod_revision\":\"3\"}}", &r) == 0 &&
	   r.n_prev_kvs == 1 && r.prev_kvs[0].value[0] == 'b', "put with prev_kv");
	etcd_resp_free(&r);
	ok(parse("{\"header\":{\"revision\":\"3\"},\"deleted\":\"1\",\"prev_kvs\":[{\"key\":\"YQ==\",\"create_revision\":\"2\"}]}", &r) == 0 &&
	   r.deleted == 1 && r.n_prev_kvs == 1 && r.prev_kvs[0].create_revision == 2, "deleterange: deleted and prev_kvs");
	etcd_resp_free(&r);
	ok(parse("{\"header\":{\"revision\":\"2\"},\"responses\":[{\"response_range\":{\"header\":{\"revision\":\"2\"},"
	         "\"kvs\":[{\"key\":\"YQ==\",\"create_revision\":\"2\",\"mod_revision\":\"2\",\"version\":\"1\",\"value\":\"Yg==\"}],\"count\":\"1\"}}]}", &r) == 0 &&
	   !r.succeeded && r.n_responses == 1 && r.response_kinds[0] == ETCD_OP_RANGE &&
	   r.responses[0].n_kvs == 1 && r.responses[0].kvs[0].create_revision == 2,
	   "a failed txn (succeeded left out) with its range response");
	etcd_resp_free(&r);
	ok(parse("{\"header\":{\"revision\":\"5\"},\"succeeded\":true,\"responses\":[{\"response_put\":{\"header\":{\"revision\":\"5\"}}},{\"response_delete_range\":{\"deleted\":\"2\"}}]}", &r) == 0 &&
	   r.succeeded && r.n_responses == 2 && r.response_kinds[0] == ETCD_OP_PUT &&
	   r.response_kinds[1] == ETCD_OP_DELETE && r.responses[1].deleted == 2, "a succeeded txn with put and delete responses");
	etcd_resp_free(&r);
	ok(parse("{\"header\":{\"revision\":\"3\"},\"ID\":\"4111120448730775304\",\"TTL\":\"5\"}", &r) == 0 &&
	   r.lease_id == 4111120448730775304LL && r.ttl == 5, "lease grant: exact ID and TTL");
	etcd_resp_free(&r);
	ok(parse("{\"result\":{\"header\":{\"revision\":\"3\"},\"ID\":\"7\",\"TTL\":\"5\"}}", &r) == 0 &&
	   r.lease_id == 7 && r.ttl == 5, "keepalive's result wrapper is unwrapped");
	etcd_resp_free(&r);
	ok(parse("{\"header\":{},\"ID\":\"7\",\"TTL\":\"4\",\"grantedTTL\":\"5\",\"keys\":[\"YQ==\",\"Yg==\"]}", &r) == 0 &&
	   r.ttl == 4 && r.granted_ttl == 5 && r.n_lease_keys == 2 && r.lease_keys[1].key[0] == 'b',
	   "timetolive: TTL, grantedTTL and the lease's keys");
	etcd_resp_free(&r);
	ok(parse("{\"header\":{},\"leases\":[{\"ID\":\"7587871234567890123\"},{\"ID\":\"2\"}]}", &r) == 0 &&
	   r.n_leases == 2 && r.leases[0] == 7587871234567890123LL && r.leases[1] == 2,
	   "lease list: every ID, exact above 2^53");
	etcd_resp_free(&r);
	ok(parse("{\"leases\":[{\"ID\":true}]}", &r) == ETCD_E_PROTOCOL, "lease list: an ID that is no integer is refused");
	etcd_resp_free(&r);
	ok(parse("{\"error\":\"etcdserver: requested lease not found\",\"message\":\"etcdserver: requested lease not found\",\"code\":5}", &r) == ETCD_E_SERVER &&
	   r.error_code == 5 && strcmp(r.error_message, "etcdserver: requested lease not found") == 0,
	   "etcd's error JSON gives ETCD_E_SERVER with code and message");
	etcd_resp_free(&r);
	ok(parse("{\"header\":{\"revision\":\"9223372036854775808\"}}", &r) == ETCD_E_PROTOCOL, "a revision past int64 is refused, not wrapped");
	etcd_resp_free(&r);
	ok(parse("{\"kvs\":[{\"key\":\"!!\"}]}", &r) == ETCD_E_PROTOCOL, "bad base64 in a key is refused");
	etcd_resp_free(&r);
	ok(parse("{\"kvs\":{}}", &r) == ETCD_E_PROTOCOL, "kvs that is not an array is refused");
	etcd_resp_free(&r);
	ok(parse("<html>404</html>", &r) == ETCD_E_PROTOCOL, "not JSON is a protocol error");
	etcd_resp_free(&r);
	ok(parse("{\"header\":{\"revision\":1.5}}", &r) == ETCD_E_PROTOCOL, "a fractional revision is refused");
	etcd_resp_free(&r);
	etcd_resp_free(&r);
	ok(1, "etcd_resp_free twice is harmless");

	/* watch lines */
	struct etcd_watch_msg m;
	const char *created = "{\"result\":{\"header\":{\"revision\":\"3\"},\"created\":true}}";
	ok(etcd_parse_watch(created, strlen(created), &m) == 0 && m.created && m.n_events == 0 && m.revision == 3,
	   "watch: the created message");
	etcd_watch_msg_free(&m);
	const char *ev = "{\"result\":{\"header\":{\"revision\":\"9007199254740995\"},\"events\":[{\"kv\":{\"key\":\"YQ==\","
	                 "\"create_revision\":\"2\",\"mod_revision\":\"9007199254740994\",\"version\":\"1\",\"value\":\"Yg==\"}},"
	                 "{\"type\":\"DELETE\",\"kv\":{\"key\":\"YQ==\",\"mod_revision\":\"9007199254740995\"}}]}}";
	ok(etcd_parse_watch(ev, strlen(ev), &m) == 0 && m.n_events == 2, "watch: two events in one message");
	ok(!m.events[0].is_delete && m.events[0].kv.value[0] == 'b' && m.events[0].kv.mod_revision == 9007199254740994LL &&
	   m.events[1].is_delete && m.events[1].kv.mod_revision == 9007199254740995LL,
	   "a put (type left out) then a DELETE, with exact revisions");
	etcd_watch_msg_free(&m);
	const char *comp = "{\"result\":{\"header\":{\"revision\":\"9\"},\"canceled\":true,\"compact_revision\":\"7\"}}";
	ok(etcd_parse_watch(comp, strlen(comp), &m) == ETCD_E_COMPACTED && m.compact_revision == 7,
	   "watch: a compacted start revision");
	etcd_watch_msg_free(&m);
	const char *werr = "{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"x\",\"http_status\":\"Service Unavailable\"}}";
	ok(etcd_parse_watch(werr, strlen(werr), &m) == ETCD_E_SERVER && m.error_code == 14 &&
	   strcmp(m.error_message, "x") == 0, "watch: a stream error line gives its gRPC code and message");
	etcd_watch_msg_free(&m);
	const char *move = "{\"result\":{\"events\":[{\"type\":\"MOVE\"}]}}";
	ok(etcd_parse_watch(move, strlen(move), &m) == ETCD_E_PROTOCOL,
	   "watch: an unknown event type is refused");
	etcd_watch_msg_free(&m);

	ok(strcmp(etcd_strerror(ETCD_E_UNREACHABLE), "no etcd endpoint reachable") == 0 &&
	   strcmp(etcd_strerror(-ECONNRESET), strerror(ECONNRESET)) == 0, "etcd_strerror names our codes and errnos");
	test_unavailable();
	buf_free(&b);
	return tap_done();
}
