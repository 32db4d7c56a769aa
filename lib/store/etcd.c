/*
 * store/etcd.c -- the etcd v3 JSON-gateway client (see etcd.h for the manual).
 *
 * Design.  The file has two halves that meet only in etcd_parse.
 *
 * The pure half builds request bodies with our JSON writer and reads
 * answers with cJSON.  etcd's gateway sends every int64 as a JSON string,
 * so cJSON keeps those as text and json_parse_i64 reads them exactly; a
 * plain JSON number (the error "code", or a hand-written body) is taken
 * only when a double holds it exactly.  A missing field is etcd's zero
 * value, never an error: the gateway leaves zeros out.
 *
 * The transport half is libcurl's multi interface on a libuv loop, the
 * "socket action" way: curl tells us which sockets to watch
 * (socket_cb -> uv_poll_t) and when to wake it (timer_fn -> uv_timer_t);
 * we tell it what happened (curl_multi_socket_action).  User callbacks
 * never run inside a curl callback: curl's write callback only appends to
 * a buffer, and answers and watch lines are handed out after
 * curl_multi_socket_action returns (dispatch), where adding or removing
 * transfers is allowed.  A callback may even free the client: the free is
 * deferred until dispatch unwinds (c->depth).
 *
 * Failover.  The client keeps one current endpoint.  A call that cannot
 * connect moves the client on to the next endpoint (only if no other call
 * has moved it already) and is sent again there, until every endpoint has
 * been tried once for this call.
 *
 * libcurl is loaded with dlopen when the first client is made, not linked:
 * it brings some thirty libraries (TLS, Kerberos, LDAP...) whose loading
 * and constructors cost about 20 ms of CPU at every program start, which a
 * `dsys-lock run` on file: or redis:// never uses.  The few functions we
 * call go through the table `cu`; the macros below keep their names.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "base/invariant.h"
#include "base/json.h"
#include "base/log.h"
#include "store/etcd.h"

static struct {
	CURLcode (*global_init)(long flags);
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *h, CURLoption opt, ...);
	CURLcode (*easy_getinfo)(CURL *h, CURLINFO info, ...);
	void (*easy_cleanup)(CURL *h);
	CURLM *(*multi_init)(void);
	CURLMcode (*multi_setopt)(CURLM *m, CURLMoption opt, ...);
	CURLMcode (*multi_add_handle)(CURLM *m, CURL *h);
	CURLMcode (*multi_remove_handle)(CURLM *m, CURL *h);
	CURLMcode (*multi_assign)(CURLM *m, curl_socket_t fd, void *p);
	CURLMcode (*multi_socket_action)(CURLM *m, curl_socket_t fd, int ev, int *running);
	CURLMsg *(*multi_info_read)(CURLM *m, int *left);
	CURLMcode (*multi_cleanup)(CURLM *m);
	struct curl_slist *(*slist_append)(struct curl_slist *l, const char *s);
	void (*slist_free_all)(struct curl_slist *l);
} cu;

#undef curl_easy_setopt
#undef curl_easy_getinfo
#undef curl_multi_setopt
#define curl_global_init (*cu.global_init)
#define curl_easy_init (*cu.easy_init)
#define curl_easy_setopt (*cu.easy_setopt)
#define curl_easy_getinfo (*cu.easy_getinfo)
#define curl_easy_cleanup (*cu.easy_cleanup)
#define curl_multi_init (*cu.multi_init)
#define curl_multi_setopt (*cu.multi_setopt)
#define curl_multi_add_handle (*cu.multi_add_handle)
#define curl_multi_remove_handle (*cu.multi_remove_handle)
#define curl_multi_assign (*cu.multi_assign)
#define curl_multi_socket_action (*cu.multi_socket_action)
#define curl_multi_info_read (*cu.multi_info_read)
#define curl_multi_cleanup (*cu.multi_cleanup)
#define curl_slist_append (*cu.slist_append)
#define curl_slist_free_all (*cu.slist_free_all)

/* Load libcurl and fill `cu`, once: 0, or -1 with the reason logged. */
static int curl_load(void)
{
	static int state;   /* 0 not tried, 1 loaded, -1 failed */
	if (state)
		return state > 0 ? 0 : -1;
	state = -1;
	void *lib = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		log_error("etcd client: cannot load libcurl: %s", dlerror());
		return -1;
	}
	static const char *const names[] = {
		"curl_global_init", "curl_easy_init", "curl_easy_setopt", "curl_easy_getinfo",
		"curl_easy_cleanup", "curl_multi_init", "curl_multi_setopt", "curl_multi_add_handle",
		"curl_multi_remove_handle", "curl_multi_assign", "curl_multi_socket_action",
		"curl_multi_info_read", "curl_multi_cleanup", "curl_slist_append", "curl_slist_free_all",
	};
	void **slot = (void **)&cu;
	INVARIANT(sizeof cu == sizeof names / sizeof names[0] * sizeof(void *));
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		slot[i] = dlsym(lib, names[i]);
		if (!slot[i]) {
			log_error("etcd client: libcurl has no %s", names[i]);
			return -1;
		}
	}
	state = 1;
	return 0;
}

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
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16;
		if (i + 1 < n) v |= (uint32_t)s[i + 1] << 8;
		if (i + 2 < n) v |= s[i + 2];
		char q[4] = { b64chars[v >> 18], b64chars[(v >> 12) & 63],
		              i + 1 < n ? b64chars[(v >> 6) & 63] : '=',
		              i + 2 < n ? b64chars[v & 63] : '=' };
		buf_append(out, q, 4);
	}
}

static int b64val(unsigned char ch)
{
	if (ch >= 'A' && ch <= 'Z') return ch - 'A';
	if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9') return ch - '0' + 52;
	if (ch == '+' || ch == '-') return 62;   /* '-' '_': the URL-safe alphabet too */
	if (ch == '/' || ch == '_') return 63;
	return -1;
}

int etcd_b64_decode(struct buf *out, const char *s, size_t n)
{
	while (n > 0 && s[n - 1] == '=')
		n--;
	if (n % 4 == 1)
		return -EINVAL;
	uint32_t acc = 0;
	unsigned bits = 0;
	for (size_t i = 0; i < n; i++) {
		int v = b64val((unsigned char)s[i]);
		if (v < 0)
			return -EINVAL;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf_putc(out, (char)((acc >> bits) & 0xff));
		}
	}
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

static void range_fields(struct json_writer *w, const struct etcd_range *r)
{
	if (r->prefix && r->key_len == 0) {
		/* every key: etcdctl sends key "\0", range_end "\0" */
		kv_b64(w, "key", "", 1);
		kv_b64(w, "range_end", "", 1);
		return;
	}
	kv_b64(w, "key", r->key, r->key_len);
	if (r->prefix) {
		struct buf e;
		buf_init(&e);
		prefix_end(&e, r->key, r->key_len);
		kv_b64(w, "range_end", e.data, e.len);
		buf_free(&e);
	} else if (r->end) {
		kv_b64(w, "range_end", r->end, r->end_len);
	}
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
		if (cmp[i].prefix) {
			struct buf e;
			buf_init(&e);
			prefix_end(&e, cmp[i].key, cmp[i].key_len);
			kv_b64(&w, "range_end", e.data, e.len);
			buf_free(&e);
		}
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

/* An array member of kvs (absent: none).  For timetolive's "keys" the
 * elements are bare base64 strings. */
static int parse_kvs(const cJSON *obj, const char *key, struct etcd_kv **out, size_t *n,
                     bool bare_keys)
{
	*out = NULL;
	*n = 0;
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (!a || cJSON_IsNull(a))
		return 0;
	if (!cJSON_IsArray(a))
		return -1;
	int count = cJSON_GetArraySize(a);
	if (count == 0)
		return 0;
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
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "responses");
	if (!a || cJSON_IsNull(a))
		return 0;
	if (!cJSON_IsArray(a))
		return -1;
	int count = cJSON_GetArraySize(a);
	if (count == 0)
		return 0;
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
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "leases");
	if (!a || cJSON_IsNull(a))
		return 0;
	if (!cJSON_IsArray(a))
		return -1;
	int count = cJSON_GetArraySize(a);
	if (count == 0)
		return 0;
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
	const cJSON *h = cJSON_GetObjectItemCaseSensitive(o, "header");
	if (h && (!cJSON_IsObject(h) || get_int(h, "revision", &r->revision) < 0))
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

int etcd_parse(const char *text, size_t len, struct etcd_resp *resp)
{
	memset(resp, 0, sizeof *resp);
	cJSON *root = json_parse(text, len, NULL);
	if (!root)
		return ETCD_E_PROTOCOL;
	int rc;
	if (!cJSON_IsObject(root)) {
		rc = ETCD_E_PROTOCOL;
	} else if ((rc = parse_error(root, &resp->error_code, &resp->error_message)) == 0) {
		const cJSON *res = cJSON_GetObjectItemCaseSensitive(root, "result");   /* keepalive */
		if (res && (rc = parse_error(res, &resp->error_code, &resp->error_message)) != 0)
			;
		else
			rc = parse_body(res ? res : root, resp, 0) < 0 ? ETCD_E_PROTOCOL : 0;
	}
	json_free(root);
	if (rc == ETCD_E_SERVER && !resp->error_message)
		rc = -ENOMEM;
	return rc;
}

static void kvs_free(struct etcd_kv *kvs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		kv_free(&kvs[i]);
	free(kvs);
}

void etcd_resp_free(struct etcd_resp *r)
{
	if (!r)
		return;
	kvs_free(r->kvs, r->n_kvs);
	kvs_free(r->prev_kvs, r->n_prev_kvs);
	kvs_free(r->lease_keys, r->n_lease_keys);
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
	const cJSON *h = cJSON_GetObjectItemCaseSensitive(res, "header");
	if (h && (!cJSON_IsObject(h) || get_int(h, "revision", &m->revision) < 0))
		return -1;
	if (get_bool(res, "created", &m->created) < 0 || get_bool(res, "canceled", &m->canceled) < 0 ||
	    get_int(res, "watch_id", &m->watch_id) < 0 ||
	    get_int(res, "compact_revision", &m->compact_revision) < 0)
		return -1;
	const cJSON *cr = cJSON_GetObjectItemCaseSensitive(res, "cancel_reason");
	if (cJSON_IsString(cr) && cr->valuestring[0])
		m->error_message = strdup(cr->valuestring);
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(res, "events");
	if (!a || cJSON_IsNull(a))
		return 0;
	if (!cJSON_IsArray(a))
		return -1;
	int count = cJSON_GetArraySize(a);
	if (count == 0)
		return 0;
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

int etcd_parse_watch(const char *text, size_t len, struct etcd_watch_msg *m)
{
	memset(m, 0, sizeof *m);
	cJSON *root = json_parse(text, len, NULL);
	if (!root)
		return ETCD_E_PROTOCOL;
	int rc;
	if (!cJSON_IsObject(root)) {
		rc = ETCD_E_PROTOCOL;
	} else if ((rc = parse_error(root, &m->error_code, &m->error_message)) == 0) {
		const cJSON *res = cJSON_GetObjectItemCaseSensitive(root, "result");
		if (!res || parse_watch_result(res, m) < 0)
			rc = ETCD_E_PROTOCOL;
		else if (m->compact_revision > 0)
			rc = ETCD_E_COMPACTED;
		else if (m->canceled)
			rc = ETCD_E_SERVER;
	}
	json_free(root);
	return rc;
}

/* ============================================================ client */

struct poll_ctx {
	uv_poll_t poll;
	curl_socket_t fd;
	struct etcd_client *c;
	struct poll_ctx *prev, *next;
};

struct etcd_call {
	struct etcd_client *c;
	CURL *easy;
	struct curl_slist *headers;
	char url[STORE_URL_MAX_HOST + 64];
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

struct etcd_client {
	uv_loop_t *loop;
	CURLM *multi;
	uv_timer_t timer;
	struct store_host *hosts;
	unsigned n_hosts, cur;
	char endpoint[STORE_URL_MAX_HOST + 16];
	struct etcd_options o;
	unsigned pending;
	struct etcd_call *calls;
	struct etcd_watch *watches;
	struct poll_ctx *polls;          /* open uv_poll_t handles, closed at free */
	int depth;                       /* >0 while dispatching */
	bool closing;
};

#define LIST_ADD(head, x) do { (x)->prev = NULL; (x)->next = (head); \
	if (head) { (head)->prev = (x); } (head) = (x); } while (0)
#define LIST_DEL(head, x) do { \
		if ((x)->prev) { (x)->prev->next = (x)->next; } else { (head) = (x)->next; } \
		if ((x)->next) { (x)->next->prev = (x)->prev; } \
		(x)->prev = (x)->next = NULL; \
	} while (0)

static void dispatch(struct etcd_client *c, curl_socket_t fd, int flags);
static int call_send(struct etcd_call *q);
static void watch_connect(struct etcd_watch *w);

static void set_endpoint(struct etcd_client *c)
{
	const struct store_host *h = &c->hosts[c->cur];
	if (strchr(h->host, ':'))
		snprintf(c->endpoint, sizeof c->endpoint, "[%s]:%u", h->host, h->port);
	else
		snprintf(c->endpoint, sizeof c->endpoint, "%s:%u", h->host, h->port);
}

const char *etcd_client_endpoint(const struct etcd_client *c) { return c->endpoint; }

/* ---- curl <-> libuv */

static void poll_close_cb(uv_handle_t *h) { free(h->data); }

static void poll_cb(uv_poll_t *h, int status, int events)
{
	struct poll_ctx *p = h->data;
	int flags = 0;
	if (status < 0)
		flags = CURL_CSELECT_ERR;
	if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
	dispatch(p->c, p->fd, flags);
}

static int socket_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct etcd_client *c = userp;
	struct poll_ctx *p = socketp;
	if (what == CURL_POLL_REMOVE) {
		if (p) {
			LIST_DEL(c->polls, p);
			uv_poll_stop(&p->poll);
			uv_close((uv_handle_t *)&p->poll, poll_close_cb);
			curl_multi_assign(c->multi, fd, NULL);
		}
		return 0;
	}
	if (!p) {
		p = calloc(1, sizeof *p);
		if (!p)
			return -1;
		p->fd = fd;
		p->c = c;
		if (uv_poll_init_socket(c->loop, &p->poll, fd) < 0) {
			free(p);
			return -1;
		}
		p->poll.data = p;
		LIST_ADD(c->polls, p);
		curl_multi_assign(c->multi, fd, p);
	}
	int ev = ((what & CURL_POLL_IN) ? UV_READABLE : 0) | ((what & CURL_POLL_OUT) ? UV_WRITABLE : 0);
	uv_poll_start(&p->poll, ev, poll_cb);
	return 0;
}

static void timer_cb(uv_timer_t *t)
{
	dispatch(t->data, CURL_SOCKET_TIMEOUT, 0);
}

static int timer_fn(CURLM *m, long timeout_ms, void *userp)
{
	struct etcd_client *c = userp;
	if (timeout_ms < 0)
		uv_timer_stop(&c->timer);
	else
		uv_timer_start(&c->timer, timer_cb, (uint64_t)timeout_ms, 0);
	return 0;
}

/* ---- calls */

static size_t write_cb(char *p, size_t size, size_t n, void *ud)
{
	struct etcd_call *q = ud;
	/* a bound on what we keep: an answer, or an unfinished watch line */
	if (q->reply.len + n > (64u << 20))
		return 0;
	buf_append(&q->reply, p, n);
	return n;
}

static void call_free(struct etcd_call *q)
{
	struct etcd_client *c = q->c;
	if (q->easy) {
		curl_multi_remove_handle(c->multi, q->easy);
		curl_easy_cleanup(q->easy);
	}
	curl_slist_free_all(q->headers);
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

static int call_send(struct etcd_call *q)
{
	struct etcd_client *c = q->c;
	uint64_t now = uv_now(c->loop);
	if (now >= q->deadline)
		return ETCD_E_TIMEOUT;
	if (q->easy) {
		curl_multi_remove_handle(c->multi, q->easy);
		curl_easy_cleanup(q->easy);
	}
	buf_reset(&q->reply);
	q->easy = curl_easy_init();
	if (!q->easy)
		return -ENOMEM;
	q->endpoint = c->cur;
	q->attempts++;
	snprintf(q->url, sizeof q->url, "http://%s%s", c->endpoint, q->path);
	CURL *e = q->easy;
	curl_easy_setopt(e, CURLOPT_URL, q->url);
	curl_easy_setopt(e, CURLOPT_POST, 1L);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, q->body.data ? q->body.data : "");
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)q->body.len);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, q->headers);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, q);
	curl_easy_setopt(e, CURLOPT_PRIVATE, q);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROXY, "");   /* loopback etcd never goes through http_proxy */
	uint64_t left = q->deadline - now;
	uint64_t conn = c->o.connect_timeout_ms < left ? c->o.connect_timeout_ms : left;
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(conn ? conn : 1));
	if (q->watch) {
		/* a stream has no end; a silent peer is found by TCP keepalive */
		curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
		curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 5L);
		curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 2L);
	} else {
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)left);
	}
	if (curl_multi_add_handle(c->multi, e) != CURLM_OK)
		return -ENOMEM;
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
	q->headers = curl_slist_append(NULL, "Content-Type: application/json");
	/* ranges, lease reads and keepalives change nothing: safe to resend */
	q->repeatable = strcmp(path, ETCD_PATH_RANGE) == 0 || strcmp(path, ETCD_PATH_TTL) == 0 ||
	                strcmp(path, ETCD_PATH_KEEPALIVE) == 0 || strcmp(path, ETCD_PATH_WATCH) == 0 ||
	                (strcmp(path, ETCD_PATH_TXN) == 0 && !memmem(body, len, "request_put", 11) &&
	                 !memmem(body, len, "request_delete_range", 20));
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

/* Did the transfer fail before the request could have reached etcd? */
static bool never_sent(CURLcode rc, CURL *e)
{
	if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST)
		return true;
	long sent = 0;
	curl_easy_getinfo(e, CURLINFO_REQUEST_SIZE, &sent);
	return sent == 0;
}

static void unary_done(struct etcd_call *q, CURLcode rc)
{
	struct etcd_client *c = q->c;
	struct etcd_resp resp;
	memset(&resp, 0, sizeof resp);
	int err;
	if (rc == CURLE_OK) {
		err = etcd_parse(q->reply.data ? q->reply.data : "", q->reply.len, &resp);
		/* 14 = gRPC UNAVAILABLE: this member cannot serve (no quorum, stopping) */
		if (!(err == ETCD_E_SERVER && resp.error_code == 14))
			return call_finish(q, err, &resp);
		etcd_resp_free(&resp);
	} else if (!never_sent(rc, q->easy) && !q->repeatable) {
		/* it may have run: do not run it twice */
		return call_finish(q, rc == CURLE_OPERATION_TIMEDOUT ? ETCD_E_TIMEOUT : -ECONNRESET, &resp);
	}
	endpoint_failed(c, q->endpoint);
	if (q->attempts >= c->n_hosts) {
		uv_update_time(c->loop);
		err = uv_now(c->loop) >= q->deadline ? ETCD_E_TIMEOUT : ETCD_E_UNREACHABLE;
		return call_finish(q, err, &resp);
	}
	if ((err = call_send(q)) < 0)
		call_finish(q, err, &resp);
}

/* ---- watch */

static void watch_retry_cb(uv_timer_t *t)
{
	struct etcd_watch *w = t->data;
	struct etcd_client *c = w->c;
	c->depth++;
	watch_connect(w);
	c->depth--;
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

static void stream_done(struct etcd_call *q, CURLcode rc)
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

/* ---- the loop */

static void client_close_cb(uv_handle_t *h)
{
	struct etcd_client *c = h->data;
	free(c->hosts);
	free(c);
}

static void client_destroy(struct etcd_client *c)
{
	while (c->watches)
		watch_end(c->watches, -ECANCELED);
	while (c->calls) {
		struct etcd_resp none;
		memset(&none, 0, sizeof none);
		call_finish(c->calls, -ECANCELED, &none);
	}
	curl_multi_cleanup(c->multi);
	while (c->polls) {
		struct poll_ctx *p = c->polls;
		LIST_DEL(c->polls, p);
		uv_poll_stop(&p->poll);
		uv_close((uv_handle_t *)&p->poll, poll_close_cb);
	}
	uv_timer_stop(&c->timer);
	uv_close((uv_handle_t *)&c->timer, client_close_cb);
}

/* Let curl act on fd, then hand out what finished and what streamed in. */
static void dispatch(struct etcd_client *c, curl_socket_t fd, int flags)
{
	int running = 0;
	c->depth++;
	curl_multi_socket_action(c->multi, fd, flags, &running);
	CURLMsg *msg;
	int left;
	while (!c->closing && (msg = curl_multi_info_read(c->multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		struct etcd_call *q = NULL;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&q);
		CURLcode rc = msg->data.result;
		if (q->watch)
			stream_done(q, rc);
		else
			unary_done(q, rc);
	}
	/* a callback may stop any watch: look again from the head each time;
	 * watch_lines empties the stream's buffer, so this ends */
	while (!c->closing) {
		struct etcd_watch *w = c->watches;
		while (w && !(w->stream && w->stream->reply.len))
			w = w->next;
		if (!w)
			break;
		watch_lines(w);
	}
	c->depth--;
	if (c->closing && c->depth == 0)
		client_destroy(c);
}

struct etcd_client *etcd_client_new(uv_loop_t *loop, const struct store_url *u,
                                    const struct etcd_options *opts)
{
	static bool curl_ready;
	if (!curl_ready) {
		if (curl_load() < 0)
			return NULL;
		curl_global_init(CURL_GLOBAL_DEFAULT);
		curl_ready = true;
	}
	if (u->n_hosts == 0)
		return NULL;
	struct etcd_client *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->hosts = calloc(u->n_hosts, sizeof *c->hosts);
	c->multi = curl_multi_init();
	if (!c->hosts || !c->multi) {
		if (c->multi)
			curl_multi_cleanup(c->multi);
		free(c->hosts);
		free(c);
		return NULL;
	}
	memcpy(c->hosts, u->hosts, u->n_hosts * sizeof *c->hosts);
	c->n_hosts = u->n_hosts;
	set_endpoint(c);
	c->loop = loop;
	if (opts)
		c->o = *opts;
	if (!c->o.timeout_ms) c->o.timeout_ms = 5000;
	if (!c->o.connect_timeout_ms) c->o.connect_timeout_ms = 1000;
	if (!c->o.max_pending) c->o.max_pending = 1024;
	if (!c->o.watch_retry_ms) c->o.watch_retry_ms = 100;
	uv_timer_init(loop, &c->timer);
	c->timer.data = c;
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_fn);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
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
