/*
 * etcd_cli -- a test driver for lib/store/etcd: one operation from the
 * command line against a real etcd, its answer as JSON lines on stdout.
 * tests/etcd.bats drives it and cross-checks what it sees with etcdctl.
 *
 *   etcd_cli [-t TIMEOUT_MS] URL get KEY [prefix] [REV]
 *   etcd_cli URL put KEY VALUE [LEASE]
 *   etcd_cli URL del KEY [prefix]
 *   etcd_cli URL create KEY VALUE        txn: put only if create_revision == 0
 *   etcd_cli URL grant TTL | revoke ID | ttl ID | keepalive ID
 *   etcd_cli URL putloop KEY N MS        N puts MS apart, one line each
 *   etcd_cli URL watch KEY prefix|one REV|0 COUNT
 *
 * Exit: 0, 1 etcd said no (its error, or a failed create), 3 unreachable,
 * 4 timed out, 2 usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "base/json.h"
#include "store/etcd.h"
#include "store/url.h"

static struct buf out;
static struct json_writer w;

static int fail(int err, const struct etcd_resp *r)
{
	json_writer_init(&w, &out);
	json_obj_begin(&w);
	json_kv_str(&w, "error", etcd_strerror(err));
	json_kv_i64(&w, "code", err);
	if (err == ETCD_E_SERVER && r) {
		json_kv_i64(&w, "etcd_code", r->error_code);
		json_kv_str(&w, "message", r->error_message);
	}
	json_obj_end(&w);
	json_emit(&out);
	return err == ETCD_E_UNREACHABLE ? 3 : err == ETCD_E_TIMEOUT ? 4 : 1;
}

static void kv_json(const struct etcd_kv *kv)
{
	json_obj_begin(&w);
	json_kv_strn(&w, "key", kv->key, kv->key_len);
	json_kv_strn(&w, "value", kv->value ? kv->value : "", kv->value_len);
	json_kv_i64(&w, "create_revision", kv->create_revision);
	json_kv_i64(&w, "mod_revision", kv->mod_revision);
	json_kv_i64(&w, "version", kv->version);
	json_kv_i64(&w, "lease", kv->lease);
	json_obj_end(&w);
}

static int64_t num(const char *s)
{
	int64_t v = 0;
	if (json_parse_i64(s, strlen(s), &v) < 0) {
		fprintf(stderr, "etcd_cli: not a number: '%s'\n", s);
		exit(2);
	}
	return v;
}

static long events_left;
static uv_loop_t *loop;

static void watch_cb(void *ud, int err, const struct etcd_watch_msg *m)
{
	struct etcd_watch *wt = *(struct etcd_watch **)ud;
	if (err < 0) {
		fail(err, NULL);
		exit(1);
	}
	for (size_t i = 0; i < m->n_events && events_left > 0; i++, events_left--) {
		json_writer_init(&w, &out);
		json_obj_begin(&w);
		json_kv_str(&w, "type", m->events[i].is_delete ? "delete" : "put");
		json_kv_strn(&w, "key", m->events[i].kv.key, m->events[i].kv.key_len);
		json_kv_strn(&w, "value", m->events[i].kv.value, m->events[i].kv.value_len);
		json_kv_i64(&w, "mod_revision", m->events[i].kv.mod_revision);
		json_obj_end(&w);
		json_emit(&out);
	}
	if (events_left == 0) {
		etcd_watch_stop(wt);
		uv_stop(loop);
	}
}

int main(int argc, char **argv)
{
	unsigned timeout_ms = 5000;
	if (argc > 2 && strcmp(argv[1], "-t") == 0) {
		timeout_ms = (unsigned)num(argv[2]);
		argv += 2;
		argc -= 2;
	}
	if (argc < 3) {
		fprintf(stderr, "usage: etcd_cli [-t MS] URL OP ARGS...\n");
		return 2;
	}
	struct store_url u;
	char err[256];
	if (store_url_parse(argv[1], &u, err, sizeof err) < 0 || u.kind != STORE_ETCD) {
		fprintf(stderr, "etcd_cli: %s\n", err);
		return 2;
	}
	loop = uv_default_loop();
	struct etcd_options o = { .timeout_ms = timeout_ms };
	struct etcd_client *c = etcd_client_new(loop, &u, &o);
	buf_init(&out);
	struct buf body;
	buf_init(&body);
	const char *op = argv[2];
	const char *path = NULL;
	const char *key = argc > 3 ? argv[3] : "";
	struct etcd_range r = { key, strlen(key), NULL, 0, argc > 4 && strcmp(argv[4], "prefix") == 0 };

	if (strcmp(op, "get") == 0 && argc >= 4) {
		struct etcd_range_opts ro = { .revision = argc > 5 ? num(argv[5]) : 0 };
		etcd_req_range(&body, &r, &ro);
		path = ETCD_PATH_RANGE;
	} else if (strcmp(op, "put") == 0 && argc >= 5) {
		etcd_req_put(&body, key, strlen(key), argv[4], strlen(argv[4]), argc > 5 ? num(argv[5]) : 0, true);
		path = ETCD_PATH_PUT;
	} else if (strcmp(op, "del") == 0 && argc >= 4) {
		etcd_req_delete(&body, &r, true);
		path = ETCD_PATH_DELETE;
	} else if (strcmp(op, "create") == 0 && argc >= 5) {
		struct etcd_compare cmp = { .key = key, .key_len = strlen(key), .target = ETCD_CREATE, .result = ETCD_EQUAL };
		struct etcd_op put = { .kind = ETCD_OP_PUT, .r = r, .value = argv[4], .value_len = strlen(argv[4]) };
		struct etcd_op get = { .kind = ETCD_OP_RANGE, .r = r };
		etcd_req_txn(&body, &cmp, 1, &put, 1, &get, 1);
		path = ETCD_PATH_TXN;
	} else if (strcmp(op, "grant") == 0 && argc >= 4) {
		etcd_req_lease_grant(&body, num(argv[3]), 0);
		path = ETCD_PATH_GRANT;
	} else if (strcmp(op, "revoke") == 0 && argc >= 4) {
		etcd_req_lease_revoke(&body, num(argv[3]));
		path = ETCD_PATH_REVOKE;
	} else if (strcmp(op, "ttl") == 0 && argc >= 4) {
		etcd_req_lease_timetolive(&body, num(argv[3]), true);
		path = ETCD_PATH_TTL;
	} else if (strcmp(op, "keepalive") == 0 && argc >= 4) {
		etcd_req_lease_keepalive(&body, num(argv[3]));
		path = ETCD_PATH_KEEPALIVE;
	} else if (strcmp(op, "putloop") == 0 && argc >= 6) {
		int64_t n = num(argv[4]), ms = num(argv[5]);
		int failures = 0;
		for (int64_t i = 0; i < n; i++) {
			char v[32];
			snprintf(v, sizeof v, "%lld", (long long)i);
			buf_reset(&body);
			etcd_req_put(&body, key, strlen(key), v, strlen(v), 0, false);
			struct etcd_resp resp;
			int rc = etcd_sync(c, ETCD_PATH_PUT, &body, &resp);
			json_writer_init(&w, &out);
			json_obj_begin(&w);
			json_kv_i64(&w, "i", i);
			json_kv_i64(&w, "rc", rc);
			json_kv_i64(&w, "revision", resp.revision);
			json_kv_str(&w, "endpoint", etcd_client_endpoint(c));
			json_obj_end(&w);
			json_emit(&out);
			failures += rc != 0;
			etcd_resp_free(&resp);
			uv_sleep((unsigned)ms);
		}
		etcd_client_free(c);
		uv_run(loop, UV_RUN_DEFAULT);
		buf_free(&body);
		buf_free(&out);
		return failures ? 1 : 0;
	} else if (strcmp(op, "watch") == 0 && argc >= 7) {
		struct etcd_watch *wt = NULL;
		events_left = (long)num(argv[6]);
		wt = etcd_watch_start(c, &r, num(argv[5]), false, watch_cb, &wt);
		uv_run(loop, UV_RUN_DEFAULT);
		etcd_client_free(c);
		uv_run(loop, UV_RUN_DEFAULT);
		return 0;
	} else {
		fprintf(stderr, "etcd_cli: unknown operation or missing arguments: '%s'\n", op);
		return 2;
	}

	struct etcd_resp resp;
	int rc = etcd_sync(c, path, &body, &resp);
	int status = 0;
	if (rc < 0) {
		status = fail(rc, &resp);
	} else {
		json_writer_init(&w, &out);
		json_obj_begin(&w);
		json_kv_i64(&w, "revision", resp.revision);
		json_kv_str(&w, "endpoint", etcd_client_endpoint(c));
		if (strcmp(op, "get") == 0) {
			json_kv_i64(&w, "count", resp.count);
			json_key(&w, "kvs");
			json_arr_begin(&w);
			for (size_t i = 0; i < resp.n_kvs; i++)
				kv_json(&resp.kvs[i]);
			json_arr_end(&w);
		} else if (strcmp(op, "del") == 0) {
			json_kv_i64(&w, "deleted", resp.deleted);
		} else if (strcmp(op, "create") == 0) {
			json_kv_bool(&w, "succeeded", resp.succeeded);
			if (!resp.succeeded && resp.n_responses == 1 && resp.responses[0].n_kvs == 1)
				json_kv_i64(&w, "create_revision", resp.responses[0].kvs[0].create_revision);
			status = resp.succeeded ? 0 : 1;
		} else if (strcmp(op, "grant") == 0 || strcmp(op, "ttl") == 0 || strcmp(op, "keepalive") == 0) {
			json_kv_i64(&w, "id", resp.lease_id);
			json_kv_i64(&w, "ttl", resp.ttl);
		}
		json_obj_end(&w);
		json_emit(&out);
	}
	etcd_resp_free(&resp);
	buf_free(&body);
	etcd_client_free(c);
	uv_run(loop, UV_RUN_DEFAULT);
	buf_free(&out);
	return status;
}
