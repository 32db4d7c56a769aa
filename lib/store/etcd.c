/*
 * store/etcd.c -- the etcd v3 client, gRPC or JSON gateway (see etcd.h for
 * the manual).
 *
 * Design.  The file has two halves that meet only in etcd_parse (and, on
 * gRPC, etcd_grpc_request and etcd_parse_grpc of store/etcd_pb).
 *
 * The pure half builds request bodies with our JSON writer and reads
 * answers with cJSON.  etcd's gateway sends every int64 as a JSON string,
 * so cJSON keeps those as text and json_parse_i64 reads them exactly; a
 * plain JSON number (the error "code", or a hand-written body) is taken
 * only when a double holds it exactly.  A missing field is etcd's zero
 * value, never an error: the gateway leaves zeros out.
 *
 * The transport half has two clients on libuv TCP handles.  gRPC (the
 * default): one h2c connection per endpoint (struct gconn), framed by
 * lib/http/client_h2 over nghttp2, every unary call a stream on it; the
 * request is translated once at etcd_call, the answer decoded from
 * protobuf.  The gateway (etcd+json://, and every watch): our own
 * HTTP/1.1 client, lib/http/parse framing the answers (head, then Content-Length or chunked
 * body), one call per connection at a time, connections kept alive in a
 * small pool and reused.  It replaced libcurl, whose loading alone (some
 * thirty libraries: TLS, Kerberos, LDAP...) and curl_global_init cost
 * about 30 ms of CPU in every `dsys-lock run` on etcd:// -- most of what
 * one such command cost.  User callbacks run from our libuv callbacks,
 * never from inside etcd_call; a callback may even free the client: the
 * free is deferred until we unwind (c->depth).
 *
 * Failover, the same on both.  The client keeps one current endpoint.  A
 * call that cannot connect moves the client on to the next endpoint (only if no other call
 * has moved it already) and is sent again there, until every endpoint has
 * been tried once for this call.  A member that answers UNAVAILABLE is
 * treated the same for reads; a write goes elsewhere only when the member
 * says it never proposed it ("etcdserver: no leader"), so no write
 * applies twice.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cjson/cJSON.h>

#include "base/invariant.h"
#include "base/json.h"
#include "base/log.h"
#include "http/client_h2.h"
#include "http/parse.h"
#include "store/etcd.h"
#include "store/etcd_pb.h"

/* ============================================================ errors */

const char *etcd_strerror(int err)
{
	switch (err) {
	case 0: return "success";
	case ETCD_E_UNREACHABLE: return "no etcd endpoint reachable";
	case ETCD_E_TIMEOUT: return "timed out";
	case ETCD_E_SERVER: return "etcd answered with an error";
	case ETCD_E_PROTOCOL: return "unreadable answer from etcd";
	case ETCD_E_COMPACTED: return "watch start revision has been compacted";
	default: return err < 0 ? strerror(-err) : "unknown error";
	}
}

/* ============================================================ base64 */

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void etcd_b64_encode(struct buf *out, const void *p, size_t n)
{
	const unsigned char *s = p;
	buf_reserve(out, (n + 2) / 3 * 4);
	char *q = out->data + out->len;
	for (size_t i = 0; i < n; i += 3, q += 4) {
		uint32_t v = (uint32_t)s[i] << 16;
		if (i + 1 < n) v |= (uint32_t)s[i + 1] << 8;
		if (i + 2 < n) v |= s[i + 2];
		q[0] = b64chars[v >> 18];
		q[1] = b64chars[(v >> 12) & 63];
		q[2] = i + 1 < n ? b64chars[(v >> 6) & 63] : '=';
		q[3] = i + 2 < n ? b64chars[v & 63] : '=';
	}
	out->len += (n + 2) / 3 * 4;
	out->data[out->len] = '\0';
}

/* each base64 digit's value + 1; 0: not a digit ('-' '_': the URL-safe
 * alphabet too) */
static const unsigned char b64tab[256] = {
	['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6, ['G'] = 7, ['H'] = 8, ['I'] = 9,
	['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16, ['Q'] = 17,
	['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24, ['Y'] = 25,
	['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32, ['g'] = 33,
	['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41,
	['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48, ['w'] = 49,
	['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56, ['4'] = 57,
	['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['+'] = 63, ['-'] = 63, ['/'] = 64,
	['_'] = 64
};

static int b64val(unsigned char ch)
{
	return (int)b64tab[ch] - 1;
}

int etcd_b64_decode(struct buf *out, const char *s, size_t n)
{
	while (n > 0 && s[n - 1] == '=')
		n--;
	if (n % 4 == 1)
		return -EINVAL;
	/* into room reserved once: values are the bulk of what a put carries,
	 * and a byte at a time through buf_putc showed in the node's profile */
	buf_reserve(out, n / 4 * 3 + 3);
	unsigned char *o = (unsigned char *)out->data + out->len;
	size_t k = 0;
	uint32_t acc = 0;
	unsigned bits = 0;
	for (size_t i = 0; i < n; i++) {
		int v = b64val((unsigned char)s[i]);
		if (v < 0) {
			out->data[out->len] = '\0';
			return -EINVAL;
		}
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			o[k++] = (unsigned char)((acc >> bits) & 0xff);
		}
	}
	out->len += k;
	out->data[out->len] = '\0';
	return 0;
}

/* ============================================================ requests */

static void kv_b64(struct json_writer *w, const char *key, const char *p, size_t n)
{
	struct buf b;
	buf_init(&b);
	etcd_b64_encode(&b, p, n);
	json_kv_strn(w, key, b.data ? b.data : "", b.len);
	buf_free(&b);
}

/* int64 fields go out as strings, as the gateway writes them. */
static void kv_int(struct json_writer *w, const char *key, int64_t v)
{
	char t[24];
	size_t n = fmt_i64(t, v);
	json_kv_strn(w, key, t, n);
}

/* The smallest key above every key that starts with p: drop trailing 0xff
 * bytes and add one to the last byte; none left means "no end" ("\0"). */
static void prefix_end(struct buf *out, const char *p, size_t n)
{
	while (n > 0 && (unsigned char)p[n - 1] == 0xff)
		n--;
	if (n == 0) {
		buf_putc(out, '\0');
		return;
	}
	buf_append(out, p, n);
	out->data[n - 1] = (char)((unsigned char)out->data[n - 1] + 1);
}

/* "range_end": the end of the keys that start with key (prefix_end). */
static void kv_prefix_end(struct json_writer *w, const char *key, size_t key_len)
{
	struct buf e;
	buf_init(&e);
	prefix_end(&e, key, key_len);
	kv_b64(w, "range_end", e.data, e.len);
	buf_free(&e);
}

static void range_fields(struct json_writer *w, const struct etcd_range *r)
{
	if (r->prefix && r->key_len == 0) {
		/* every key: etcdctl sends key "\0", range_end "\0" */
		kv_b64(w, "key", "", 1);
		kv_b64(w, "range_end", "", 1);
		return;
	}
	kv_b64(w, "key", r->key, r->key_len);
	if (r->prefix)
		kv_prefix_end(w, r->key, r->key_len);
	else if (r->end)
		kv_b64(w, "range_end", r->end, r->end_len);
}

static void range_body(struct json_writer *w, const struct etcd_range *r,
                       const struct etcd_range_opts *o)
{
	json_obj_begin(w);
	range_fields(w, r);
	if (o && o->limit > 0) kv_int(w, "limit", o->limit);
	if (o && o->revision > 0) kv_int(w, "revision", o->revision);
	if (o && o->keys_only) json_kv_bool(w, "keys_only", true);
	if (o && o->count_only) json_kv_bool(w, "count_only", true);
	if (o && o->serializable) json_kv_bool(w, "serializable", true);
	json_obj_end(w);
}

void etcd_req_range(struct buf *out, const struct etcd_range *r, const struct etcd_range_opts *o)
{
	struct json_writer w;
	json_writer_init(&w, out);
	range_body(&w, r, o);
}

static void put_body(struct json_writer *w, const char *key, size_t key_len, const char *value,
                     size_t value_len, int64_t lease, bool prev_kv)
{
	json_obj_begin(w);
	kv_b64(w, "key", key, key_len);
	kv_b64(w, "value", value, value_len);
	if (lease) kv_int(w, "lease", lease);
	if (prev_kv) json_kv_bool(w, "prev_kv", true);
	json_obj_end(w);
}

void etcd_req_put(struct buf *out, const char *key, size_t key_len, const char *value,
                  size_t value_len, int64_t lease, bool prev_kv)
{
	struct json_writer w;
	json_writer_init(&w, out);
	put_body(&w, key, key_len, value, value_len, lease, prev_kv);
}

static void delete_body(struct json_writer *w, const struct etcd_range *r, bool prev_kv)
{
	json_obj_begin(w);
	range_fields(w, r);
	if (prev_kv) json_kv_bool(w, "prev_kv", true);
	json_obj_end(w);
}

void etcd_req_delete(struct buf *out, const struct etcd_range *r, bool prev_kv)
{
	struct json_writer w;
	json_writer_init(&w, out);
	delete_body(&w, r, prev_kv);
}

static void ops(struct json_writer *w, const char *name, const struct etcd_op *op, size_t n)
{
	json_key(w, name);
	json_arr_begin(w);
	for (size_t i = 0; i < n; i++) {
		json_obj_begin(w);
		switch (op[i].kind) {
		case ETCD_OP_PUT:
			json_key(w, "request_put");
			put_body(w, op[i].r.key, op[i].r.key_len, op[i].value, op[i].value_len,
			         op[i].lease, op[i].prev_kv);
			break;
		case ETCD_OP_RANGE:
			json_key(w, "request_range");
			range_body(w, &op[i].r, NULL);
			break;
		case ETCD_OP_DELETE:
			json_key(w, "request_delete_range");
			delete_body(w, &op[i].r, op[i].prev_kv);
			break;
		}
		json_obj_end(w);
	}
	json_arr_end(w);
}

void etcd_req_txn(struct buf *out, const struct etcd_compare *cmp, size_t n_cmp,
                  const struct etcd_op *success, size_t n_success,
                  const struct etcd_op *failure, size_t n_failure)
{
	static const char *targets[] = { "CREATE", "MOD", "VERSION", "VALUE", "LEASE" };
	static const char *fields[] = { "create_revision", "mod_revision", "version", "value", "lease" };
	static const char *results[] = { "EQUAL", "GREATER", "LESS", "NOT_EQUAL" };
	struct json_writer w;
	json_writer_init(&w, out);
	json_obj_begin(&w);
	json_key(&w, "compare");
	json_arr_begin(&w);
	for (size_t i = 0; i < n_cmp; i++) {
		INVARIANT(cmp[i].target <= ETCD_LEASE && cmp[i].result <= ETCD_NOT_EQUAL);
		json_obj_begin(&w);
		kv_b64(&w, "key", cmp[i].key, cmp[i].key_len);
		if (cmp[i].prefix)
			kv_prefix_end(&w, cmp[i].key, cmp[i].key_len);
		json_kv_str(&w, "target", targets[cmp[i].target]);
		json_kv_str(&w, "result", results[cmp[i].result]);
		if (cmp[i].target == ETCD_VALUE)
			kv_b64(&w, "value", cmp[i].value, cmp[i].value_len);
		else
			kv_int(&w, fields[cmp[i].target], cmp[i].number);
		json_obj_end(&w);
	}
	json_arr_end(&w);
	ops(&w, "success", success, n_success);
	ops(&w, "failure", failure, n_failure);
	json_obj_end(&w);
}

static void id_body(struct buf *out, int64_t id, const char *extra)
{
	struct json_writer w;
	json_writer_init(&w, out);
	json_obj_begin(&w);
	kv_int(&w, "ID", id);
	if (extra) json_kv_bool(&w, extra, true);
	json_obj_end(&w);
}

void etcd_req_lease_grant(struct buf *out, int64_t ttl_s, int64_t id)
{
	struct json_writer w;
	json_writer_init(&w, out);
	json_obj_begin(&w);
	kv_int(&w, "TTL", ttl_s);
	if (id) kv_int(&w, "ID", id);
	json_obj_end(&w);
}

void etcd_req_lease_revoke(struct buf *out, int64_t id) { id_body(out, id, NULL); }
void etcd_req_lease_timetolive(struct buf *out, int64_t id, bool keys)
{
	id_body(out, id, keys ? "keys" : NULL);
}
void etcd_req_lease_keepalive(struct buf *out, int64_t id) { id_body(out, id, NULL); }

void etcd_req_watch(struct buf *out, const struct etcd_range *r, int64_t start_revision,
                    bool prev_kv)
{
	struct json_writer w;
	json_writer_init(&w, out);
	json_obj_begin(&w);
	json_key(&w, "create_request");
	json_obj_begin(&w);
	range_fields(&w, r);
	if (start_revision > 0) kv_int(&w, "start_revision", start_revision);
	if (prev_kv) json_kv_bool(&w, "prev_kv", true);
	json_obj_end(&w);
	json_obj_end(&w);
}

/* ============================================================ answers */

/* An int64 member: absent is 0 (etcd leaves zeros out); a string of digits
 * (the gateway's form) is read exactly; a number only when a double holds
 * it exactly. */
static int get_int(const cJSON *obj, const char *key, int64_t *out)
{
	*out = 0;
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (!v || cJSON_IsNull(v))
		return 0;
	if (cJSON_IsString(v))
		return json_parse_i64(v->valuestring, strlen(v->valuestring), out) == 0 ? 0 : -1;
	if (cJSON_IsNumber(v))
		return json_get_i64(obj, key, out) == 0 ? 0 : -1;
	return -1;
}

static int get_bool(const cJSON *obj, const char *key, bool *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	*out = false;
	if (!v || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsBool(v))
		return -1;
	*out = cJSON_IsTrue(v);
	return 0;
}

/* A base64 member into a fresh NUL-terminated allocation. */
static int get_bytes(const cJSON *obj, const char *key, char **p, size_t *n)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	struct buf b;
	buf_init(&b);
	if (v && !cJSON_IsNull(v)) {
		if (!cJSON_IsString(v) || etcd_b64_decode(&b, v->valuestring, strlen(v->valuestring)) < 0) {
			buf_free(&b);
			return -1;
		}
	}
	*n = b.len;
	buf_putc(&b, '\0');
	*p = b.data;   /* ownership moves to the kv */
	return 0;
}

static void kv_free(struct etcd_kv *kv)
{
	free(kv->key);
	free(kv->value);
	memset(kv, 0, sizeof *kv);
}

static int parse_kv(const cJSON *o, struct etcd_kv *kv)
{
	memset(kv, 0, sizeof *kv);
	if (!cJSON_IsObject(o))
		return -1;
	if (get_bytes(o, "key", &kv->key, &kv->key_len) < 0 ||
	    get_bytes(o, "value", &kv->value, &kv->value_len) < 0 ||
	    get_int(o, "create_revision", &kv->create_revision) < 0 ||
	    get_int(o, "mod_revision", &kv->mod_revision) < 0 ||
	    get_int(o, "version", &kv->version) < 0 ||
	    get_int(o, "lease", &kv->lease) < 0)
		return -1;
	return 0;
}

/* The array member key of o in *a; returns its length (0 when it is
 * absent, null or empty), -1 when it is not an array. */
static int array_member(const cJSON *o, const char *key, const cJSON **a)
{
	*a = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!*a || cJSON_IsNull(*a))
		return 0;
	return cJSON_IsArray(*a) ? cJSON_GetArraySize(*a) : -1;
}

/* The "revision" of o's "header", when there is one. */
static int header_revision(const cJSON *o, int64_t *revision)
{
	const cJSON *h = cJSON_GetObjectItemCaseSensitive(o, "header");
	return h && (!cJSON_IsObject(h) || get_int(h, "revision", revision) < 0) ? -1 : 0;
}

/* An array member of kvs (absent: none).  For timetolive's "keys" the
 * elements are bare base64 strings. */
static int parse_kvs(const cJSON *obj, const char *key, struct etcd_kv **out, size_t *n,
                     bool bare_keys)
{
	*out = NULL;
	*n = 0;
	const cJSON *a;
	int count = array_member(obj, key, &a);
	if (count <= 0)
		return count;
	*out = calloc((size_t)count, sizeof **out);
	if (!*out)
		return -1;
	const cJSON *e;
	cJSON_ArrayForEach(e, a) {
		struct etcd_kv *kv = &(*out)[*n];
		if (bare_keys) {
			struct buf b;
			buf_init(&b);
			if (!cJSON_IsString(e) || etcd_b64_decode(&b, e->valuestring, strlen(e->valuestring)) < 0) {
				buf_free(&b);
				return -1;
			}
			kv->key_len = b.len;
			buf_putc(&b, '\0');
			kv->key = b.data;
		} else if (parse_kv(e, kv) < 0) {
			(*n)++;   /* so the partly filled one is freed */
			return -1;
		}
		(*n)++;
	}
	return 0;
}

static int parse_error(const cJSON *root, int *code, char **message)
{
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(root, "error");
	const cJSON *msg = cJSON_GetObjectItemCaseSensitive(root, "message");
	int64_t c = 0;
	if (!err && !msg)
		return 0;
	if (cJSON_IsObject(err)) {
		/* a stream's error: {"error":{"grpc_code":14,"message":..}} */
		root = err;
		msg = cJSON_GetObjectItemCaseSensitive(err, "message");
		if (get_int(err, "grpc_code", &c) < 0 || c < 0 || c > 1000)
			return ETCD_E_PROTOCOL;
		*code = (int)c;
		*message = strdup(cJSON_IsString(msg) ? msg->valuestring : "unknown etcd error");
		return ETCD_E_SERVER;
	}
	if (get_int(root, "code", &c) < 0 || c < 0 || c > 1000)
		return ETCD_E_PROTOCOL;
	const char *text = cJSON_IsString(msg) ? msg->valuestring
	                 : cJSON_IsString(err) ? err->valuestring : "unknown etcd error";
	*code = (int)c;
	*message = strdup(text);
	return ETCD_E_SERVER;
}

static int parse_body(const cJSON *o, struct etcd_resp *r, int depth);

static int parse_txn_responses(const cJSON *o, struct etcd_resp *r, int depth)
{
	const cJSON *a;
	int count = array_member(o, "responses", &a);
	if (count <= 0)
		return count;
	r->responses = calloc((size_t)count, sizeof *r->responses);
	r->response_kinds = calloc((size_t)count, sizeof *r->response_kinds);
	if (!r->responses || !r->response_kinds)
		return -1;
	static const char *names[] = { "response_put", "response_range", "response_delete_range" };
	const cJSON *e;
	cJSON_ArrayForEach(e, a) {
		size_t i = r->n_responses++;
		const cJSON *inner = NULL;
		for (int k = 0; k < 3 && !inner; k++)
			if ((inner = cJSON_GetObjectItemCaseSensitive(e, names[k])))
				r->response_kinds[i] = (enum etcd_op_kind)k;
		if (!inner || parse_body(inner, &r->responses[i], depth + 1) < 0)
			return -1;
	}
	return 0;
}

/* The lease list: "leases":[{"ID":"N"},..]. */
static int parse_leases(const cJSON *o, struct etcd_resp *r)
{
	const cJSON *a;
	int count = array_member(o, "leases", &a);
	if (count <= 0)
		return count;
	if (!(r->leases = calloc((size_t)count, sizeof *r->leases)))
		return -1;
	const cJSON *e;
	cJSON_ArrayForEach(e, a) {
		if (!cJSON_IsObject(e) || get_int(e, "ID", &r->leases[r->n_leases]) < 0)
			return -1;
		r->n_leases++;
	}
	return 0;
}

static int parse_body(const cJSON *o, struct etcd_resp *r, int depth)
{
	if (!cJSON_IsObject(o) || depth > 2)   /* txn inside txn is not etcd's */
		return -1;
	if (header_revision(o, &r->revision) < 0)
		return -1;
	if (get_int(o, "count", &r->count) < 0 || get_bool(o, "more", &r->more) < 0 ||
	    get_int(o, "deleted", &r->deleted) < 0 || get_bool(o, "succeeded", &r->succeeded) < 0 ||
	    get_int(o, "ID", &r->lease_id) < 0 || get_int(o, "TTL", &r->ttl) < 0 ||
	    get_int(o, "grantedTTL", &r->granted_ttl) < 0)
		return -1;
	if (parse_kvs(o, "kvs", &r->kvs, &r->n_kvs, false) < 0)
		return -1;
	/* put answers "prev_kv" (one), deleterange "prev_kvs" (many) */
	const cJSON *pk = cJSON_GetObjectItemCaseSensitive(o, "prev_kv");
	if (pk && !cJSON_IsNull(pk)) {
		r->prev_kvs = calloc(1, sizeof *r->prev_kvs);
		if (!r->prev_kvs)
			return -1;
		r->n_prev_kvs = 1;
		if (parse_kv(pk, r->prev_kvs) < 0)
			return -1;
	} else if (parse_kvs(o, "prev_kvs", &r->prev_kvs, &r->n_prev_kvs, false) < 0) {
		return -1;
	}
	if (parse_kvs(o, "keys", &r->lease_keys, &r->n_lease_keys, true) < 0)
		return -1;
	if (parse_leases(o, r) < 0)
		return -1;
	return parse_txn_responses(o, r, depth);
}

/*
 * What etcd_parse and etcd_parse_watch share: text must be one JSON
 * object; an error object ({"code","message"} or {"error":{..}}) is
 * reported into code and message as ETCD_E_SERVER; anything else goes to
 * answer, which fills out and returns 0 or an ETCD_E_ code.
 */
static int parse_answer(const char *text, size_t len, int *code, char **message,
                        int (*answer)(const cJSON *root, void *out), void *out)
{
	cJSON *root = json_parse(text, len, NULL);
	if (!root)
		return ETCD_E_PROTOCOL;
	int rc;
	if (!cJSON_IsObject(root))
		rc = ETCD_E_PROTOCOL;
	else if ((rc = parse_error(root, code, message)) == 0)
		rc = answer(root, out);
	json_free(root);
	return rc;
}

static int resp_answer(const cJSON *root, void *out)
{
	struct etcd_resp *resp = out;
	const cJSON *res = cJSON_GetObjectItemCaseSensitive(root, "result");   /* keepalive */
	int rc;
	if (res && (rc = parse_error(res, &resp->error_code, &resp->error_message)) != 0)
		return rc;
	return parse_body(res ? res : root, resp, 0) < 0 ? ETCD_E_PROTOCOL : 0;
}

int etcd_parse(const char *text, size_t len, struct etcd_resp *resp)
{
	memset(resp, 0, sizeof *resp);
	int rc = parse_answer(text, len, &resp->error_code, &resp->error_message, resp_answer, resp);
	if (rc == ETCD_E_SERVER && !resp->error_message)
		rc = -ENOMEM;
	return rc;
}

/* kvs[0..n) and their strings: one block when block is set (the kvs
 * point into it), else each string its own. */
static void kvs_free(struct etcd_kv *kvs, size_t n, char *block)
{
	if (block)
		free(block);
	else
		for (size_t i = 0; i < n; i++)
			kv_free(&kvs[i]);
	free(kvs);
}

void etcd_resp_free(struct etcd_resp *r)
{
	if (!r)
		return;
	kvs_free(r->kvs, r->n_kvs, r->kv_block);
	kvs_free(r->prev_kvs, r->n_prev_kvs, NULL);
	kvs_free(r->lease_keys, r->n_lease_keys, NULL);
	for (size_t i = 0; i < r->n_responses; i++)
		etcd_resp_free(&r->responses[i]);
	free(r->responses);
	free(r->response_kinds);
	free(r->leases);
	free(r->error_message);
	memset(r, 0, sizeof *r);
}

void etcd_watch_msg_free(struct etcd_watch_msg *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n_events; i++) {
		kv_free(&m->events[i].kv);
		kv_free(&m->events[i].prev_kv);
	}
	free(m->events);
	free(m->error_message);
	memset(m, 0, sizeof *m);
}

static int parse_watch_result(const cJSON *res, struct etcd_watch_msg *m)
{
	if (!cJSON_IsObject(res))
		return -1;
	if (header_revision(res, &m->revision) < 0)
		return -1;
	if (get_bool(res, "created", &m->created) < 0 || get_bool(res, "canceled", &m->canceled) < 0 ||
	    get_int(res, "watch_id", &m->watch_id) < 0 ||
	    get_int(res, "compact_revision", &m->compact_revision) < 0)
		return -1;
	const cJSON *cr = cJSON_GetObjectItemCaseSensitive(res, "cancel_reason");
	if (cJSON_IsString(cr) && cr->valuestring[0])
		m->error_message = strdup(cr->valuestring);
	const cJSON *a;
	int count = array_member(res, "events", &a);
	if (count <= 0)
		return count;
	m->events = calloc((size_t)count, sizeof *m->events);
	if (!m->events)
		return -1;
	const cJSON *e;
	cJSON_ArrayForEach(e, a) {
		struct etcd_event *ev = &m->events[m->n_events++];
		if (!cJSON_IsObject(e))
			return -1;
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(e, "type");
		if (t && !cJSON_IsNull(t)) {
			if (!cJSON_IsString(t))
				return -1;
			if (strcmp(t->valuestring, "DELETE") == 0)
				ev->is_delete = true;
			else if (strcmp(t->valuestring, "PUT") != 0)
				return -1;
		}
		if (parse_kv(cJSON_GetObjectItemCaseSensitive(e, "kv"), &ev->kv) < 0)
			return -1;
		const cJSON *pk = cJSON_GetObjectItemCaseSensitive(e, "prev_kv");
		if (pk && !cJSON_IsNull(pk)) {
			ev->has_prev = true;
			if (parse_kv(pk, &ev->prev_kv) < 0)
				return -1;
		}
	}
	return 0;
}

static int watch_answer(const cJSON *root, void *out)
{
	struct etcd_watch_msg *m = out;
	const cJSON *res = cJSON_GetObjectItemCaseSensitive(root, "result");
	if (!res || parse_watch_result(res, m) < 0)
		return ETCD_E_PROTOCOL;
	if (m->compact_revision > 0)
		return ETCD_E_COMPACTED;
	return m->canceled ? ETCD_E_SERVER : 0;
}

int etcd_parse_watch(const char *text, size_t len, struct etcd_watch_msg *m)
{
	memset(m, 0, sizeof *m);
	return parse_answer(text, len, &m->error_code, &m->error_message, watch_answer, m);
}

/* ============================================================ client */

/* One TCP connection to one endpoint, carrying one call at a time (no
 * pipelining: etcd answers a connection's requests in order anyway, and a
 * lock op's few concurrent calls each get their own).  Between calls it
 * waits in the client's pool, read-armed so that a close by etcd is seen
 * and the connection dropped before it could be reused. */
struct conn {
	uv_tcp_t tcp;
	uv_timer_t timer;                /* connect timeout, then the call's deadline */
	uv_connect_t creq;
	uv_write_t wreq;
	struct etcd_client *c;
	struct etcd_call *q;             /* the call in flight; NULL when idle */
	unsigned endpoint;
	struct buf out, in;              /* request bytes; received, not consumed */
	struct http_body body;           /* framing of the answer in progress */
	int fail_err;                    /* a failure found while sending: reported
	                                    from the timer, never from etcd_call */
	int closed;                      /* handles closed so far (2: free) */
	bool connected, writing, head_done, keep_alive, closing;
	struct conn *prev, *next;
	char rbuf[16384];
};

struct etcd_call {
	struct etcd_client *c;
	struct conn *conn;               /* carrying it now, or NULL */
	struct gconn *gconn;             /* gRPC: the connection its stream is on, or NULL */
	uint32_t tag;                    /* gRPC: its stream's tag (slot) on gconn */
	const struct etcd_grpc_method *method;   /* gRPC: the method, NULL on the gateway */
	struct http_h2_request rq;       /* gRPC: the request, built once */
	struct http_h2_result res;       /* gRPC: how its stream ended */
	char *grpc_message;              /* gRPC: res.grpc_message, copied; NULL: none */
	bool too_big;                    /* gRPC: the answer passed MAX_REPLY */
	struct etcd_call *done_next;     /* gRPC: on gconn's answered list */
	const char *path;
	struct buf body, reply;
	etcd_cb cb;
	void *ud;
	struct etcd_resp *sync_out;      /* etcd_sync: the answer moves here */
	int *sync_rc;
	bool *sync_done;
	unsigned endpoint;               /* where this attempt went */
	unsigned attempts;               /* endpoints tried so far */
	uint64_t deadline;               /* uv_now ms */
	bool repeatable;                 /* safe to send again after it may have run */
	struct etcd_watch *watch;        /* a watch stream, or NULL */
	struct etcd_call *prev, *next;
};

struct etcd_watch {
	struct etcd_client *c;
	struct buf key, end;             /* the range, kept for re-creation */
	bool prefix, prev_kv;
	int64_t next_rev;                /* where a re-created stream starts; 0: now */
	etcd_watch_cb cb;
	void *ud;
	struct etcd_call *stream;        /* NULL between streams */
	struct buf lines;                /* bytes received, not yet a whole line */
	bool got_data;                   /* this stream delivered something */
	bool stopped;
	uv_timer_t retry;
	struct etcd_watch *prev, *next;
};

struct addr {
	struct sockaddr_storage sa;
	int state;                       /* 0 not resolved yet, 1 resolved, -1 failed */
};

struct etcd_client {
	uv_loop_t *loop;
	struct store_host *hosts;
	struct addr *addrs;              /* one per host */
	unsigned n_hosts, cur;
	char endpoint[STORE_URL_MAX_HOST + 16];
	struct etcd_options o;
	unsigned pending;
	struct etcd_call *calls;
	struct etcd_watch *watches;
	struct conn *conns;              /* open connections, busy or idle */
	struct gconn *gconns;            /* gRPC connections */
	bool grpc;                       /* unary calls in gRPC (not etcd+json://) */
	int depth;                       /* >0 while our code is on the stack */
	bool closing;
};

#define MAX_IDLE 8                   /* idle connections kept for reuse */
#define MAX_REPLY (64u << 20)        /* an answer, or an unfinished watch line */

#define LIST_ADD(head, x) do { (x)->prev = NULL; (x)->next = (head); \
	if (head) { (head)->prev = (x); } (head) = (x); } while (0)
#define LIST_DEL(head, x) do { \
		if ((x)->prev) { (x)->prev->next = (x)->next; } else { (head) = (x)->next; } \
		if ((x)->next) { (x)->next->prev = (x)->prev; } \
		(x)->prev = (x)->next = NULL; \
	} while (0)

static int call_send(struct etcd_call *q);
static void call_failed(struct etcd_call *q, bool never_sent, bool timed_out);
static void call_answered(struct etcd_call *q);
static void watch_connect(struct etcd_watch *w);
static bool watch_lines(struct etcd_watch *w);
static void client_destroy(struct etcd_client *c);
static void call_judge(struct etcd_call *q, int err, struct etcd_resp *resp);

static void set_endpoint(struct etcd_client *c)
{
	const struct store_host *h = &c->hosts[c->cur];
	if (strchr(h->host, ':'))
		snprintf(c->endpoint, sizeof c->endpoint, "[%s]:%u", h->host, h->port);
	else
		snprintf(c->endpoint, sizeof c->endpoint, "%s:%u", h->host, h->port);
}

const char *etcd_client_endpoint(const struct etcd_client *c) { return c->endpoint; }

/* Every libuv callback into the client is bracketed by enter/leave: a user
 * callback may free the client, and the free waits until we unwind. */
static void enter(struct etcd_client *c) { c->depth++; }

static void leave(struct etcd_client *c)
{
	if (--c->depth == 0 && c->closing)
		client_destroy(c);
}

/* ---- connections */

/* The address of host i: a literal is taken as it is; a name is looked up
 * once (getaddrinfo, blocking: hosts are few and fixed, and usually
 * literals or /etc/hosts names). */
static const struct sockaddr *host_addr(struct etcd_client *c, unsigned i)
{
	struct addr *a = &c->addrs[i];
	const struct store_host *h = &c->hosts[i];
	if (a->state == 0) {
		a->state = -1;
		if (uv_ip4_addr(h->host, h->port, (struct sockaddr_in *)&a->sa) == 0 ||
		    uv_ip6_addr(h->host, h->port, (struct sockaddr_in6 *)&a->sa) == 0) {
			a->state = 1;
		} else {
			struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
			if (getaddrinfo(h->host, NULL, &hints, &res) == 0 && res &&
			    res->ai_addrlen <= sizeof a->sa) {
				memcpy(&a->sa, res->ai_addr, res->ai_addrlen);
				if (a->sa.ss_family == AF_INET)
					((struct sockaddr_in *)&a->sa)->sin_port = htons(h->port);
				else
					((struct sockaddr_in6 *)&a->sa)->sin6_port = htons(h->port);
				a->state = 1;
			}
			if (res)
				freeaddrinfo(res);
		}
	}
	return a->state > 0 ? (const struct sockaddr *)&a->sa : NULL;
}

static void conn_close_cb(uv_handle_t *h)
{
	struct conn *k = h->data;
	if (++k->closed < 2)
		return;
	buf_free(&k->out);
	buf_free(&k->in);
	free(k);
}

/* Close k and detach its call (the caller decides what becomes of it).
 * k's memory lives until libuv has closed both handles, so a callback
 * already on the stack may still look at k->closing. */
static struct etcd_call *conn_close(struct conn *k)
{
	struct etcd_call *q = k->q;
	if (k->closing)
		return NULL;
	k->closing = true;
	LIST_DEL(k->c->conns, k);
	if (q) {
		q->conn = NULL;
		k->q = NULL;
	}
	uv_close((uv_handle_t *)&k->timer, conn_close_cb);
	uv_close((uv_handle_t *)&k->tcp, conn_close_cb);
	return q;
}

/* k cannot go on: close it and let its call fail over or fail. */
static void conn_fail(struct conn *k, bool never_sent, bool timed_out)
{
	struct etcd_call *q = conn_close(k);
	if (q)
		call_failed(q, never_sent, timed_out);
}

static void conn_timer_cb(uv_timer_t *t)
{
	struct conn *k = t->data;
	if (k->closing)
		return;
	struct etcd_client *c = k->c;
	enter(c);
	/* a failure while sending, or no connection within the connect
	 * timeout: the request never left; otherwise the call's deadline */
	if (k->fail_err || !k->connected)
		conn_fail(k, true, false);
	else
		conn_fail(k, false, true);
	leave(c);
}

/* Arm k's timer for its call: the connect timeout while connecting, the
 * call's deadline after; a watch stream has none (TCP keepalive). */
static void conn_arm(struct conn *k)
{
	struct etcd_call *q = k->q;
	uint64_t now = uv_now(k->c->loop);
	uint64_t left = q->deadline > now ? q->deadline - now : 0;
	if (!k->connected) {
		uint64_t ct = k->c->o.connect_timeout_ms;
		uv_timer_start(&k->timer, conn_timer_cb, ct < left ? ct : left, 0);
	} else if (q->watch) {
		uv_timer_stop(&k->timer);
	} else {
		uv_timer_start(&k->timer, conn_timer_cb, left, 0);
	}
}

/* Report err from the timer, soon: never inside etcd_call. */
static void conn_fail_soon(struct conn *k, int err)
{
	k->fail_err = err;
	uv_timer_start(&k->timer, conn_timer_cb, 0, 0);
}

static void write_cb(uv_write_t *req, int status)
{
	struct conn *k = req->data;
	if (k->closing)
		return;
	struct etcd_client *c = k->c;
	enter(c);
	k->writing = false;
	if (status < 0)
		conn_fail(k, false, false);
	leave(c);
}

static void conn_write(struct conn *k)
{
	uv_buf_t b = uv_buf_init(k->out.data, (unsigned)k->out.len);
	k->wreq.data = k;
	int rc = uv_write(&k->wreq, (uv_stream_t *)&k->tcp, &b, 1, write_cb);
	if (rc < 0)
		conn_fail_soon(k, rc);
	else
		k->writing = true;
}

/* The call is done with k: keep k for the next call if it can be. */
static void conn_release(struct conn *k)
{
	struct etcd_client *c = k->c;
	k->q->conn = NULL;
	k->q = NULL;
	unsigned idle = 0;
	for (struct conn *o = c->conns; o; o = o->next)
		idle += !o->q;
	if (!k->keep_alive || k->in.len || c->closing || idle > MAX_IDLE) {
		conn_close(k);
		return;
	}
	uv_timer_stop(&k->timer);
	k->head_done = false;
}

/* Frame what k received: the answer's head, then its body, handed to the
 * call as it comes (a watch's lines go out at once). */
static void conn_parse(struct conn *k)
{
	for (;;) {
		struct etcd_call *q = k->q;
		if (!q) {
			if (k->in.len)
				conn_close(k);   /* bytes nobody asked for */
			return;
		}
		if (!k->head_done) {
			struct http_response hr;
			int n = http_parse_response(k->in.data, k->in.len, NULL, HTTP_POST, &hr);
			if (n < 0)
				return conn_fail(k, false, false);
			if (n == 0)
				return;
			if (hr.status < 200) {   /* 100 Continue and the like */
				buf_consume(&k->in, (size_t)n);
				continue;
			}
			k->head_done = true;
			k->keep_alive = hr.m.keep_alive;
			http_body_init(&k->body, &hr.m, MAX_REPLY);
			buf_consume(&k->in, (size_t)n);
			if (hr.m.body_kind == HTTP_BODY_NONE) {
				conn_release(k);
				return call_answered(q);
			}
		}
		if (!k->in.len)
			return;
		size_t used = 0, data = 0;
		int r = http_body_feed(&k->body, k->in.data, k->in.len, &used, &data);
		buf_append(&q->reply, k->in.data, data);
		buf_consume(&k->in, used);
		if (r < 0 || q->reply.len > MAX_REPLY)
			return conn_fail(k, false, false);
		if (r == 1) {
			conn_release(k);
			return call_answered(q);
		}
		if (q->watch) {
			if (!watch_lines(q->watch) || k->closing || k->q != q)
				return;
		}
		if (used == 0)
			return;
	}
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct conn *k = h->data;
	(void)hint;
	*b = uv_buf_init(k->rbuf, sizeof k->rbuf);
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct conn *k = s->data;
	(void)b;
	if (k->closing || n == 0)
		return;
	struct etcd_client *c = k->c;
	enter(c);
	if (n > 0) {
		buf_append(&k->in, k->rbuf, (size_t)n);
		conn_parse(k);
	} else if (n == UV_EOF && k->q && k->head_done && k->body.kind == HTTP_BODY_EOF) {
		struct etcd_call *q = k->q;
		k->keep_alive = false;
		conn_release(k);
		call_answered(q);
	} else {
		/* closed or broken: an idle connection just goes; a call in
		 * flight may have run (the request was written) */
		conn_fail(k, false, false);
	}
	leave(c);
}

/* A stream has no end: a silent peer (no FIN, no RST) is found by TCP
 * keepalive, 5 s idle, then probes 2 s apart. */
static void conn_keepalive(struct conn *k)
{
	uv_tcp_keepalive(&k->tcp, 1, 5);
	uv_os_fd_t fd;
	int intvl = 2;
	if (uv_fileno((uv_handle_t *)&k->tcp, &fd) == 0)
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
}

static void connect_cb(uv_connect_t *req, int status)
{
	struct conn *k = req->data;
	if (k->closing)
		return;
	struct etcd_client *c = k->c;
	enter(c);
	if (status < 0) {
		conn_fail(k, true, false);
	} else {
		k->connected = true;
		uv_tcp_nodelay(&k->tcp, 1);
		if (k->q && k->q->watch)
			conn_keepalive(k);
		int rc = uv_read_start((uv_stream_t *)&k->tcp, alloc_cb, read_cb);
		if (rc < 0) {
			conn_fail(k, true, false);
		} else if (k->q) {
			conn_arm(k);
			conn_write(k);
		}
	}
	leave(c);
}

/* A new connection to endpoint e; NULL only on -ENOMEM.  A connect that
 * fails at once is reported through the timer. */
static struct conn *conn_open(struct etcd_client *c, unsigned e)
{
	struct conn *k = calloc(1, sizeof *k);
	if (!k)
		return NULL;
	k->c = c;
	k->endpoint = e;
	buf_init(&k->out);
	buf_init(&k->in);
	uv_tcp_init(c->loop, &k->tcp);
	uv_timer_init(c->loop, &k->timer);
	k->tcp.data = k;
	k->timer.data = k;
	k->creq.data = k;
	LIST_ADD(c->conns, k);
	const struct sockaddr *sa = host_addr(c, e);
	int rc = sa ? uv_tcp_connect(&k->creq, &k->tcp, sa, connect_cb) : UV_EAI_NONAME;
	if (rc < 0)
		conn_fail_soon(k, rc);
	return k;
}

/* ---- gRPC connections */

/* One h2c connection to one endpoint, carrying every unary gRPC call the
 * client sends there at once, each on its own stream (tagged by its slot
 * in k->slot), and kept until it breaks, etcd sends GOAWAY, or the client
 * has moved to another endpoint and its last call is done.  Answers are
 * gathered while nghttp2 reads (k->done) and handed out after, so no user
 * callback runs inside the session. */
struct gconn {
	uv_tcp_t tcp;
	uv_timer_t timer;                /* connect timeout, then its calls' earliest deadline */
	uv_connect_t creq;
	uv_write_t wreq;
	struct etcd_client *c;
	struct http_h2_client *h2;
	unsigned endpoint;
	uint64_t connect_deadline;       /* uv_now ms */
	struct buf out, wbuf;            /* to write next; being written */
	struct etcd_call **slot;         /* a stream's tag -> its call; NULL: free */
	unsigned n_slots, n_calls;
	struct etcd_call *done, *done_tail;   /* answered, not handed out yet */
	int closed;                      /* handles closed so far (2: free) */
	bool connected, writing, closing, failed;
	struct gconn *prev, *next;
	char rbuf[65536];                /* last: gconn_open zeroes what comes before */
};

static void grpc_answered(struct etcd_call *q);
static void gconn_timer_cb(uv_timer_t *t);

static void gconn_close_cb(uv_handle_t *h)
{
	struct gconn *k = h->data;
	if (++k->closed < 2)
		return;
	http_h2_client_free(k->h2);
	buf_free(&k->out);
	buf_free(&k->wbuf);
	free(k->slot);
	free(k);
}

static void gconn_close(struct gconn *k)
{
	if (k->closing)
		return;
	k->closing = true;
	LIST_DEL(k->c->gconns, k);
	uv_close((uv_handle_t *)&k->timer, gconn_close_cb);
	uv_close((uv_handle_t *)&k->tcp, gconn_close_cb);
}

static void gconn_detach(struct gconn *k, struct etcd_call *q)
{
	INVARIANT(q->tag < k->n_slots && k->slot[q->tag] == q);
	k->slot[q->tag] = NULL;
	k->n_calls--;
	q->gconn = NULL;
}

/* k cannot go on: close it; each call on it fails over or fails.
 * never_sent: no request can have reached etcd. */
static void gconn_deliver(struct gconn *k);

static void gconn_fail(struct gconn *k, bool never_sent)
{
	gconn_close(k);
	for (unsigned i = 0; i < k->n_slots; i++) {
		struct etcd_call *q = k->slot[i];
		if (!q)
			continue;
		gconn_detach(k, q);
		call_failed(q, never_sent || !k->connected, false);
	}
	gconn_deliver(k);   /* those that had ended before: their results stand */
}

/* Report a failure from the timer, soon: never inside etcd_call. */
static void gconn_fail_soon(struct gconn *k)
{
	k->failed = true;
	uv_timer_start(&k->timer, gconn_timer_cb, 0, 0);
}

/* The timer for the earliest of: the connect timeout, a call's deadline. */
static void gconn_arm(struct gconn *k)
{
	if (k->failed || k->closing)
		return;
	/* results waiting (ended while sending, inside etcd_call): now */
	uint64_t due = k->done ? 0 : k->connected ? UINT64_MAX : k->connect_deadline;
	for (unsigned i = 0; i < k->n_slots; i++)
		if (k->slot[i] && k->slot[i]->deadline < due)
			due = k->slot[i]->deadline;
	if (due == UINT64_MAX) {
		uv_timer_stop(&k->timer);
		return;
	}
	uint64_t now = uv_now(k->c->loop);
	uv_timer_start(&k->timer, gconn_timer_cb, due > now ? due - now : 0, 0);
}

static void gconn_write_cb(uv_write_t *req, int status);

/* Write what the session has to say, one write at a time. */
static void gconn_flush(struct gconn *k)
{
	if (!k->connected || k->writing || k->closing || k->failed)
		return;
	if (http_h2_client_output(k->h2, &k->out) < 0)
		return gconn_fail_soon(k);
	/* sending can end streams too (a request refused past a GOAWAY, a
	 * reset of a malformed answer going out): their results are handed
	 * out from the timer, since this may run inside etcd_call */
	if (k->done)
		uv_timer_start(&k->timer, gconn_timer_cb, 0, 0);
	if (!k->out.len) {
		/* done: the session is over (our GOAWAY after a peer's protocol
		 * error went out); its calls fail, from the timer */
		if (http_h2_client_done(k->h2) && k->n_calls)
			gconn_fail_soon(k);
		else if (k->n_calls == 0 && !k->done && (http_h2_client_goaway(k->h2) || http_h2_client_done(k->h2)))
			gconn_close(k);
		return;
	}
	struct buf t = k->wbuf;
	k->wbuf = k->out;
	k->out = t;
	buf_reset(&k->out);
	uv_buf_t b = uv_buf_init(k->wbuf.data, (unsigned)k->wbuf.len);
	k->wreq.data = k;
	if (uv_write(&k->wreq, (uv_stream_t *)&k->tcp, &b, 1, gconn_write_cb) < 0)
		return gconn_fail_soon(k);
	k->writing = true;
}

static void gconn_write_cb(uv_write_t *req, int status)
{
	struct gconn *k = req->data;
	if (k->closing)
		return;
	struct etcd_client *c = k->c;
	enter(c);
	k->writing = false;
	buf_reset(&k->wbuf);
	if (status < 0) {
		gconn_fail(k, false);
	} else {
		gconn_flush(k);
		gconn_deliver(k);   /* streams the sending ended */
	}
	leave(c);
}

/* Hand out the results gathered while the session read or wrote, in the
 * order they came (a result added while handing out, by a call sent again
 * on k, joins a list of its own, handed out next); never inside
 * etcd_call.  Then k goes if nothing is left on it and the client has
 * moved on or the session is over (a GOAWAY came). */
static void gconn_deliver(struct gconn *k)
{
	struct etcd_client *c = k->c;
	while (k->done) {
		struct etcd_call *l = k->done;
		k->done = k->done_tail = NULL;
		while (l) {
			struct etcd_call *q = l;
			l = q->done_next;
			q->done_next = NULL;
			if (!c->closing)   /* closing: the client's end fails it */
				grpc_answered(q);
		}
	}
	if (!k->closing && k->n_calls == 0 &&
	    (k->endpoint != c->cur || http_h2_client_goaway(k->h2) || http_h2_client_done(k->h2)))
		gconn_close(k);
}

static void gconn_timer_cb(uv_timer_t *t)
{
	struct gconn *k = t->data;
	if (k->closing)
		return;
	struct etcd_client *c = k->c;
	enter(c);
	uint64_t now = uv_now(c->loop);
	if (k->failed) {
		gconn_fail(k, false);
	} else if (!k->connected && now >= k->connect_deadline) {
		gconn_fail(k, true);
	} else {
		/* calls past their deadline: their streams are reset, the
		 * connection stays for the others */
		for (unsigned i = 0; i < k->n_slots && !k->closing; i++) {
			struct etcd_call *q = k->slot[i];
			if (!q || q->deadline > now)
				continue;
			http_h2_client_cancel(k->h2, q->tag);
			gconn_detach(k, q);
			call_failed(q, !k->connected, true);
		}
		gconn_flush(k);
		gconn_deliver(k);
		gconn_arm(k);
	}
	leave(c);
}

/* A stream ended (called from inside the session's reading). */
static void gconn_result(void *ctx, uint32_t tag, const struct http_h2_result *r)
{
	struct gconn *k = ctx;
	struct etcd_call *q = tag < k->n_slots ? k->slot[tag] : NULL;
	if (!q)
		return;
	gconn_detach(k, q);
	q->res = *r;
	free(q->grpc_message);
	q->grpc_message = r->grpc_message ? strdup(r->grpc_message) : NULL;
	q->res.grpc_message = q->grpc_message;
	q->done_next = NULL;
	if (k->done_tail)
		k->done_tail->done_next = q;
	else
		k->done = q;
	k->done_tail = q;
}

static void gconn_data(void *ctx, uint32_t tag, const uint8_t *data, size_t len)
{
	struct gconn *k = ctx;
	struct etcd_call *q = tag < k->n_slots ? k->slot[tag] : NULL;
	if (!q || q->too_big)
		return;
	if (q->reply.len + len > MAX_REPLY)
		q->too_big = true;
	else
		buf_append(&q->reply, data, len);
}

static void gconn_alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct gconn *k = h->data;
	(void)hint;
	*b = uv_buf_init(k->rbuf, sizeof k->rbuf);
}

static void gconn_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct gconn *k = s->data;
	(void)b;
	if (k->closing || n == 0)
		return;
	struct etcd_client *c = k->c;
	enter(c);
	int rc = n > 0 ? http_h2_client_feed(k->h2, (const uint8_t *)k->rbuf, (size_t)n) : -EPIPE;
	gconn_deliver(k);
	if (!k->closing) {
		if (rc < 0) {
			gconn_fail(k, false);
		} else {
			gconn_flush(k);
			gconn_deliver(k);   /* streams the sending ended */
		}
	}
	leave(c);
}

static void gconn_connect_cb(uv_connect_t *req, int status)
{
	struct gconn *k = req->data;
	if (k->closing)
		return;
	struct etcd_client *c = k->c;
	enter(c);
	if (status < 0 || uv_read_start((uv_stream_t *)&k->tcp, gconn_alloc_cb, gconn_read_cb) < 0) {
		gconn_fail(k, true);
	} else {
		k->connected = true;
		uv_tcp_nodelay(&k->tcp, 1);
		/* kept for the client's life: a silent peer is found by TCP
		 * keepalive, as a watch's */
		uv_tcp_keepalive(&k->tcp, 1, 5);
		uv_os_fd_t fd;
		int intvl = 2;
		if (uv_fileno((uv_handle_t *)&k->tcp, &fd) == 0)
			setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
		gconn_arm(k);
		gconn_flush(k);
	}
	leave(c);
}

/* A new connection to endpoint e; NULL only on -ENOMEM. */
static struct gconn *gconn_open(struct etcd_client *c, unsigned e)
{
	/* everything but the read buffer zeroed: its 64 KiB are faulted in
	 * as reads fill them, not all at the connection's start */
	struct gconn *k = malloc(sizeof *k);
	if (!k)
		return NULL;
	memset(k, 0, offsetof(struct gconn, rbuf));
	if (!(k->h2 = http_h2_client_new(c->o.max_pending, gconn_result, k))) {
		free(k);
		return NULL;
	}
	http_h2_client_on_data(k->h2, gconn_data);
	k->c = c;
	k->endpoint = e;
	buf_init(&k->out);
	buf_init(&k->wbuf);
	uv_tcp_init(c->loop, &k->tcp);
	uv_timer_init(c->loop, &k->timer);
	k->tcp.data = k;
	k->timer.data = k;
	k->creq.data = k;
	LIST_ADD(c->gconns, k);
	k->connect_deadline = uv_now(c->loop) + c->o.connect_timeout_ms;
	const struct sockaddr *sa = host_addr(c, e);
	if (!sa || uv_tcp_connect(&k->creq, &k->tcp, sa, gconn_connect_cb) < 0)
		gconn_fail_soon(k);
	return k;
}

/* Send q as a gRPC call to the current endpoint, on its connection.
 * Returns 0 or a negative code (q not sent; nothing will call back). */
static int grpc_send(struct etcd_call *q)
{
	struct etcd_client *c = q->c;
	struct gconn *k = c->gconns;
	while (k && (k->closing || k->failed || k->endpoint != c->cur || http_h2_client_goaway(k->h2)))
		k = k->next;
	if (!k && !(k = gconn_open(c, c->cur)))
		return -ENOMEM;
	unsigned tag = 0;
	while (tag < k->n_slots && k->slot[tag])
		tag++;
	if (tag == k->n_slots) {
		unsigned n = k->n_slots ? 2 * k->n_slots : 8;
		struct etcd_call **s = realloc(k->slot, n * sizeof *s);
		if (!s)
			return -ENOMEM;
		memset(s + k->n_slots, 0, (n - k->n_slots) * sizeof *s);
		k->slot = s;
		k->n_slots = n;
	}
	int rc = http_h2_client_submit(k->h2, &q->rq, tag);
	if (rc < 0)
		return rc == -EBUSY ? -ENOBUFS : ETCD_E_PROTOCOL;
	k->slot[tag] = q;
	k->n_calls++;
	q->gconn = k;
	q->tag = tag;
	q->too_big = false;
	memset(&q->res, 0, sizeof q->res);
	gconn_arm(k);
	gconn_flush(k);
	return 0;
}

/* q's stream ended (q no longer on a connection). */
static void grpc_answered(struct etcd_call *q)
{
	const struct http_h2_result *r = &q->res;
	/* reset: never processed only when refused (REFUSED_STREAM, which
	 * nghttp2 also gives the streams a GOAWAY cut off); any other reset
	 * may come after etcd ran it */
	if (r->reset)
		return call_failed(q, r->error_code == 7, false);
	struct etcd_resp resp;
	memset(&resp, 0, sizeof resp);
	int err;
	const uint8_t *m = (const uint8_t *)q->reply.data;
	size_t n = q->reply.len;
	if (r->grpc_status == 0) {
		/* one message: not compressed, its 4-byte length, the bytes */
		if (q->too_big || n < 5 || m[0] != 0 ||
		    ((size_t)m[1] << 24 | (size_t)m[2] << 16 | (size_t)m[3] << 8 | m[4]) != n - 5)
			err = ETCD_E_PROTOCOL;
		else
			err = etcd_parse_grpc(q->path, m + 5, n - 5, &resp);
	} else if (r->grpc_status > 0 && r->grpc_status < 999) {
		err = ETCD_E_SERVER;
		resp.error_code = r->grpc_status;
		resp.error_message = strdup(r->grpc_message && *r->grpc_message ? r->grpc_message
		                                                                  : "unknown etcd error");
		if (!resp.error_message)
			err = -ENOMEM;
	} else if (r->status == 502 || r->status == 503 || r->status == 504) {
		/* no grpc-status, from a proxy on the way: UNAVAILABLE, as gRPC's
		 * HTTP/2 mapping says (a read goes on; a write does not) */
		char text[32];
		snprintf(text, sizeof text, "HTTP status %d", r->status);
		err = ETCD_E_SERVER;
		resp.error_code = 14;
		resp.error_message = strdup(text);
		if (!resp.error_message)
			err = -ENOMEM;
	} else {
		err = ETCD_E_PROTOCOL;   /* no grpc-status: not a gRPC answer */
	}
	call_judge(q, err, &resp);
}

/* ---- calls */

static void call_free(struct etcd_call *q)
{
	struct etcd_client *c = q->c;
	if (q->conn)
		conn_close(q->conn);   /* an answer half read cannot be reused */
	if (q->gconn) {            /* its stream is reset; the connection stays */
		struct gconn *k = q->gconn;
		http_h2_client_cancel(k->h2, q->tag);
		gconn_detach(k, q);
		gconn_flush(k);
	}
	if (q->method)
		http_h2_request_free(&q->rq);
	free(q->grpc_message);
	buf_free(&q->body);
	buf_free(&q->reply);
	LIST_DEL(c->calls, q);
	INVARIANT(c->pending > 0);
	c->pending--;
	free(q);
}

/* Hand the answer (or err) to the caller and free the call. */
static void call_finish(struct etcd_call *q, int err, struct etcd_resp *resp)
{
	if (q->sync_out) {
		*q->sync_out = *resp;          /* moved: the caller frees it */
		memset(resp, 0, sizeof *resp);
		*q->sync_rc = err;
		*q->sync_done = true;
	} else if (q->cb) {
		q->cb(q->ud, err, (err == 0 || err == ETCD_E_SERVER) ? resp : NULL);
	}
	etcd_resp_free(resp);
	call_free(q);
}

/* Move the client off endpoint e (if no other call moved it already). */
static void endpoint_failed(struct etcd_client *c, unsigned e)
{
	if (c->cur == e) {
		c->cur = (c->cur + 1) % c->n_hosts;
		set_endpoint(c);
	}
}

/* Send q to the current endpoint, on a pooled connection if one is free.
 * Returns 0 or a negative code (q not sent; nothing will call back). */
static int call_send(struct etcd_call *q)
{
	struct etcd_client *c = q->c;
	uint64_t now = uv_now(c->loop);
	if (now >= q->deadline)
		return ETCD_E_TIMEOUT;
	INVARIANT(!q->conn && !q->gconn);
	buf_reset(&q->reply);
	q->endpoint = c->cur;
	q->attempts++;
	if (q->method)
		return grpc_send(q);
	struct conn *k = c->conns;
	while (k && (k->q || !k->connected || k->writing || k->endpoint != c->cur))
		k = k->next;
	bool fresh = !k;
	if (fresh && !(k = conn_open(c, c->cur)))
		return -ENOMEM;
	k->q = q;
	q->conn = k;
	k->head_done = false;
	buf_reset(&k->out);
	buf_printf(&k->out, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
	           "Content-Length: %zu\r\n\r\n", q->path, c->endpoint, q->body.len);
	buf_append(&k->out, q->body.data, q->body.len);
	if (!k->fail_err)
		conn_arm(k);
	if (!fresh) {
		if (q->watch)
			conn_keepalive(k);
		conn_write(k);
	}
	return 0;
}

static struct etcd_call *call_new(struct etcd_client *c, const char *path, const char *body,
                                  size_t len, int *err)
{
	if (c->closing) {
		*err = -ECANCELED;
		return NULL;
	}
	if (c->pending >= c->o.max_pending) {
		*err = -ENOBUFS;
		return NULL;
	}
	struct etcd_call *q = calloc(1, sizeof *q);
	if (!q) {
		*err = -ENOMEM;
		return NULL;
	}
	q->c = c;
	q->path = path;
	buf_init(&q->body);
	buf_init(&q->reply);
	buf_append(&q->body, body, len);
	/* ranges, lease reads and keepalives change nothing: safe to resend */
	q->repeatable = strcmp(path, ETCD_PATH_RANGE) == 0 || strcmp(path, ETCD_PATH_TTL) == 0 ||
	                strcmp(path, ETCD_PATH_KEEPALIVE) == 0 || strcmp(path, ETCD_PATH_WATCH) == 0 ||
	                (strcmp(path, ETCD_PATH_TXN) == 0 && !memmem(body, len, "request_put", 11) &&
	                 !memmem(body, len, "request_delete_range", 20));
	/* gRPC: the request is translated and built once, for every attempt */
	if (c->grpc && (q->method = etcd_grpc_method(path))) {
		struct buf pb;
		buf_init(&pb);
		struct http_url u;
		memset(&u, 0, sizeof u);
		size_t an = strlen(c->endpoint);
		an = an < sizeof u.authority - 1 ? an : sizeof u.authority - 1;
		memcpy(u.authority, c->endpoint, an);   /* :authority; etcd ignores it */
		snprintf(u.path, sizeof u.path, "%s", q->method->grpc_path);
		int rc = etcd_grpc_request(&pb, path, body, len);
		if (rc == 0)
			rc = http_h2_request_build(&q->rq, "POST", &u, NULL, 0, pb.data, pb.len, true);
		buf_free(&pb);
		if (rc < 0) {
			buf_free(&q->body);
			buf_free(&q->reply);
			free(q);
			*err = rc == -EINVAL ? -EINVAL : -ENOMEM;
			return NULL;
		}
	}
	uv_update_time(c->loop);
	q->deadline = uv_now(c->loop) + c->o.timeout_ms;
	c->pending++;
	LIST_ADD(c->calls, q);
	return q;
}

int etcd_call(struct etcd_client *c, const char *path, const char *body, size_t len,
              etcd_cb cb, void *ud)
{
	int err = 0;
	struct etcd_call *q = call_new(c, path, body, len, &err);
	if (!q)
		return err;
	q->cb = cb;
	q->ud = ud;
	if ((err = call_send(q)) < 0) {
		q->cb = NULL;
		call_free(q);
		return err;
	}
	return 0;
}

static void stream_done(struct etcd_call *q);

/* q's attempt failed.  never_sent: the request cannot have reached etcd
 * (no connection, or etcd said it is unavailable). */
static void call_failed(struct etcd_call *q, bool never_sent, bool timed_out)
{
	struct etcd_client *c = q->c;
	struct etcd_resp resp;
	memset(&resp, 0, sizeof resp);
	if (q->watch)
		return stream_done(q);
	if (c->closing)   /* nothing is sent on for a client being freed */
		return call_finish(q, -ECANCELED, &resp);
	if (!never_sent && !q->repeatable)   /* it may have run: not twice */
		return call_finish(q, timed_out ? ETCD_E_TIMEOUT : -ECONNRESET, &resp);
	endpoint_failed(c, q->endpoint);
	if (q->attempts >= c->n_hosts) {
		uv_update_time(c->loop);
		int err = uv_now(c->loop) >= q->deadline ? ETCD_E_TIMEOUT : ETCD_E_UNREACHABLE;
		return call_finish(q, err, &resp);
	}
	int err = call_send(q);
	if (err < 0)
		call_finish(q, err, &resp);
}

/* q's answer is complete (q no longer on a connection). */
static void call_answered(struct etcd_call *q)
{
	if (q->watch)
		return stream_done(q);
	struct etcd_resp resp;
	memset(&resp, 0, sizeof resp);
	int err = etcd_parse(q->reply.data ? q->reply.data : "", q->reply.len, &resp);
	call_judge(q, err, &resp);
}

/* q's answer, read (either transport): finish q with it, or send q on. */
static void call_judge(struct etcd_call *q, int err, struct etcd_resp *resp)
{
	/* 14 = gRPC UNAVAILABLE: this member cannot serve (no quorum, stopping).
	 * A read is sent elsewhere.  A write is only when the member says it
	 * had no leader to propose it to: "leader changed", "request timed
	 * out" or "server stopped" may come after the proposal, which may
	 * still commit, and a second one would apply twice (etcd's clientv3
	 * never resends a write once it reached a member, either) */
	bool unavailable = err == ETCD_E_SERVER && resp->error_code == 14;
	bool never_proposed = resp->error_message && strcmp(resp->error_message, "etcdserver: no leader") == 0;
	if (!unavailable || !(q->repeatable || never_proposed))
		return call_finish(q, err, resp);
	etcd_resp_free(resp);
	call_failed(q, true, false);
}

/* ---- watch */

static void watch_retry_cb(uv_timer_t *t)
{
	struct etcd_watch *w = t->data;
	struct etcd_client *c = w->c;
	enter(c);
	watch_connect(w);
	leave(c);
}

static void watch_end(struct etcd_watch *w, int err);

/* Hand out every whole line received; returns false if the watch ended. */
static bool watch_lines(struct etcd_watch *w)
{
	struct etcd_call *q = w->stream;
	if (q && q->reply.len) {
		buf_append(&w->lines, q->reply.data, q->reply.len);
		buf_reset(&q->reply);
	}
	for (;;) {
		char *nl = w->lines.len ? memchr(w->lines.data, '\n', w->lines.len) : NULL;
		if (!nl)
			return true;
		size_t n = (size_t)(nl - w->lines.data);
		struct etcd_watch_msg m;
		int rc = etcd_parse_watch(w->lines.data, n, &m);
		buf_consume(&w->lines, n + 1);
		if (n == 0 || (rc == ETCD_E_PROTOCOL && n < 2)) {
			etcd_watch_msg_free(&m);
			continue;
		}
		if (rc < 0) {
			if (rc == ETCD_E_SERVER && m.error_code == 14) {
				/* member unavailable: try the stream elsewhere */
				etcd_watch_msg_free(&m);
				return true;
			}
			w->cb(w->ud, rc, &m);
			etcd_watch_msg_free(&m);
			watch_end(w, 0);
			return false;
		}
		w->got_data = true;
		for (size_t i = 0; i < m.n_events; i++)
			if (m.events[i].kv.mod_revision >= w->next_rev)
				w->next_rev = m.events[i].kv.mod_revision + 1;
		if (w->next_rev == 0 && m.created && m.revision > 0)
			w->next_rev = m.revision + 1;   /* "from now" is pinned at creation */
		if (m.n_events > 0)
			w->cb(w->ud, 0, &m);
		etcd_watch_msg_free(&m);
		if (w->stopped || w->c->closing)
			return false;
	}
}

static void watch_connect(struct etcd_watch *w)
{
	struct etcd_client *c = w->c;
	struct buf body;
	buf_init(&body);
	struct etcd_range r = { w->key.data ? w->key.data : "", w->key.len,
	                        w->end.len ? w->end.data : NULL, w->end.len, w->prefix };
	etcd_req_watch(&body, &r, w->next_rev, w->prev_kv);
	int err = 0;
	struct etcd_call *q = call_new(c, ETCD_PATH_WATCH, body.data, body.len, &err);
	buf_free(&body);
	if (q) {
		q->watch = w;
		q->deadline = UINT64_MAX / 2;
		w->stream = q;
		w->got_data = false;
		buf_reset(&w->lines);
		if ((err = call_send(q)) == 0)
			return;
		w->stream = NULL;
		call_free(q);
	}
	uv_timer_start(&w->retry, watch_retry_cb, c->o.watch_retry_ms, 0);
}

/* The stream ended (closed, broken, or never connected): create it again
 * after a pause, from the revision after the last one delivered. */
static void stream_done(struct etcd_call *q)
{
	struct etcd_watch *w = q->watch;
	struct etcd_client *c = q->c;
	if (!watch_lines(w))
		return;
	if (!w->got_data)
		endpoint_failed(c, q->endpoint);   /* never answered here: try the next */
	w->stream = NULL;
	call_free(q);
	if (!c->closing)
		uv_timer_start(&w->retry, watch_retry_cb, c->o.watch_retry_ms, 0);
}

static void watch_close_cb(uv_handle_t *h)
{
	struct etcd_watch *w = h->data;
	buf_free(&w->key);
	buf_free(&w->end);
	buf_free(&w->lines);
	free(w);
}

static void watch_end(struct etcd_watch *w, int err)
{
	struct etcd_client *c = w->c;
	INVARIANT(!w->stopped);
	w->stopped = true;
	if (w->stream) {
		w->stream->watch = NULL;
		call_free(w->stream);
		w->stream = NULL;
	}
	if (err)
		w->cb(w->ud, err, NULL);
	LIST_DEL(c->watches, w);
	uv_timer_stop(&w->retry);
	uv_close((uv_handle_t *)&w->retry, watch_close_cb);
}

struct etcd_watch *etcd_watch_start(struct etcd_client *c, const struct etcd_range *r,
                                    int64_t start_revision, bool prev_kv,
                                    etcd_watch_cb cb, void *ud)
{
	struct etcd_watch *w = calloc(1, sizeof *w);
	if (!w)
		return NULL;
	w->c = c;
	buf_init(&w->key);
	buf_init(&w->end);
	buf_init(&w->lines);
	buf_append(&w->key, r->key, r->key_len);
	if (r->end)
		buf_append(&w->end, r->end, r->end_len);
	w->prefix = r->prefix;
	w->prev_kv = prev_kv;
	w->next_rev = start_revision > 0 ? start_revision : 0;
	w->cb = cb;
	w->ud = ud;
	uv_timer_init(c->loop, &w->retry);
	w->retry.data = w;
	LIST_ADD(c->watches, w);
	watch_connect(w);
	return w;
}

int64_t etcd_watch_revision(const struct etcd_watch *w)
{
	return w->next_rev > 0 ? w->next_rev - 1 : 0;
}

void etcd_watch_stop(struct etcd_watch *w)
{
	if (w)
		watch_end(w, 0);
}

/* ---- the client */

static void client_destroy(struct etcd_client *c)
{
	c->depth++;   /* the callbacks below must not destroy c again */
	while (c->watches)
		watch_end(c->watches, -ECANCELED);
	while (c->calls) {
		struct etcd_resp none;
		memset(&none, 0, sizeof none);
		call_finish(c->calls, -ECANCELED, &none);
	}
	while (c->conns)
		conn_close(c->conns);
	while (c->gconns)
		gconn_close(c->gconns);
	/* the connections' handles close later and never look at c again */
	free(c->hosts);
	free(c->addrs);
	free(c);
}

struct etcd_client *etcd_client_new(uv_loop_t *loop, const struct store_url *u,
                                    const struct etcd_options *opts)
{
	if (u->n_hosts == 0)
		return NULL;
	struct etcd_client *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->hosts = calloc(u->n_hosts, sizeof *c->hosts);
	c->addrs = calloc(u->n_hosts, sizeof *c->addrs);
	if (!c->hosts || !c->addrs) {
		free(c->hosts);
		free(c->addrs);
		free(c);
		return NULL;
	}
	memcpy(c->hosts, u->hosts, u->n_hosts * sizeof *c->hosts);
	c->n_hosts = u->n_hosts;
	set_endpoint(c);
	c->loop = loop;
	c->grpc = !u->etcd_json;
	if (opts)
		c->o = *opts;
	if (!c->o.timeout_ms) c->o.timeout_ms = 5000;
	if (!c->o.connect_timeout_ms) c->o.connect_timeout_ms = 1000;
	if (!c->o.max_pending) c->o.max_pending = 1024;
	if (!c->o.watch_retry_ms) c->o.watch_retry_ms = 100;
	return c;
}

void etcd_client_free(struct etcd_client *c)
{
	if (!c || c->closing)
		return;
	c->closing = true;
	if (c->depth == 0)
		client_destroy(c);
}

int etcd_sync(struct etcd_client *c, const char *path, const struct buf *body,
              struct etcd_resp *resp)
{
	memset(resp, 0, sizeof *resp);
	int err = 0;
	struct etcd_call *q = call_new(c, path, body->data ? body->data : "", body->len, &err);
	if (!q)
		return err;
	bool done = false;
	int rc = 0;
	q->sync_out = resp;
	q->sync_rc = &rc;
	q->sync_done = &done;
	if ((err = call_send(q)) < 0) {
		q->sync_out = NULL;
		call_free(q);
		return err;
	}
	while (!done)
		uv_run(c->loop, UV_RUN_ONCE);
	return rc;
}
