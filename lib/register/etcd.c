/*
 * register/etcd.c -- the registry on etcd: keys, leases, keepalive (see
 * etcd.h).  The keeper is a small state machine with at most one call in
 * flight: `want` says whether the key should exist, `dirty` that its value
 * changed since the last put; kick() sends the next call the state needs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/invariant.h"
#include "register/etcd.h"

#define RETRY_MS 500

enum call { C_GRANT, C_PUT, C_KA, C_REVOKE };

int reg_etcd_decode(const char *key, size_t key_len, const char *value, size_t value_len,
                    struct reg_instance *in)
{
	size_t pl = strlen(REG_ETCD_PREFIX);
	if (key_len <= pl || memcmp(key, REG_ETCD_PREFIX, pl))
		return -EINVAL;
	const char *s = key + pl, *end = key + key_len;
	const char *slash = memchr(s, '/', (size_t)(end - s));
	if (!slash || slash == s || (size_t)(slash - s) > REG_MAX_NAME ||
	    (size_t)(end - slash - 1) > REG_MAX_NAME || slash + 1 == end)
		return -EINVAL;
	/* no memset of the whole record (2.6 kB, most of it meta): the value
	 * parse below clears it, and zeroing it here too was a third of a
	 * 1000-instance list on etcd */
	memcpy(in->service, s, (size_t)(slash - s));
	in->service[slash - s] = '\0';
	memcpy(in->id, slash + 1, (size_t)(end - slash - 1));
	in->id[end - slash - 1] = '\0';
	const char *why;
	if (reg_name_check(in->service, &why) < 0 || reg_name_check(in->id, &why) < 0)
		return -EINVAL;
	return reg_value_parse(value, value_len, in);
}

static void service_prefix(char *out, size_t size, const char *service)
{
	snprintf(out, size, "%s%s%s", REG_ETCD_PREFIX, service ? service : "", service ? "/" : "");
}

int reg_etcd_list(struct etcd_client *c, const char *service, int64_t rev,
                  struct reg_instance **out, size_t *n, int64_t *revision)
{
	char p[REG_MAX_NAME + 64];
	service_prefix(p, sizeof p, service);
	struct buf b = BUF_INIT;
	struct etcd_range r = {p, strlen(p), NULL, 0, true};
	struct etcd_range_opts o = {.revision = rev};
	etcd_req_range(&b, &r, &o);
	struct etcd_resp resp;
	int err = etcd_sync(c, ETCD_PATH_RANGE, &b, &resp);
	buf_free(&b);
	*out = NULL;
	*n = 0;
	if (err < 0) {
		etcd_resp_free(&resp);
		return err;
	}
	*revision = resp.revision;
	*out = reg_instances_alloc(resp.n_kvs);   /* 1000: in huge pages, a few faults */
	if (!*out) {
		etcd_resp_free(&resp);
		return -ENOMEM;
	}
	for (size_t i = 0; i < resp.n_kvs; i++)
		if (reg_etcd_decode(resp.kvs[i].key, resp.kvs[i].key_len, resp.kvs[i].value,
		                    resp.kvs[i].value_len, &(*out)[*n]) == 0)
			(*n)++;
	etcd_resp_free(&resp);
	return 0;
}

int reg_etcd_remove(struct etcd_client *c, const char *service, const char *id)
{
	char key[2 * REG_MAX_NAME + 64];
	snprintf(key, sizeof key, "%s%s/%s", REG_ETCD_PREFIX, service, id);
	struct buf b = BUF_INIT;
	struct etcd_range r = {key, strlen(key), NULL, 0, false};
	etcd_req_delete(&b, &r, false);
	struct etcd_resp resp;
	int err = etcd_sync(c, ETCD_PATH_DELETE, &b, &resp);
	buf_free(&b);
	if (err == 0 && resp.deleted == 0)
		err = -ENOENT;
	etcd_resp_free(&resp);
	return err;
}

/* ------------------------------------------------------------ keeper */

struct reg_keeper {
	uv_loop_t *loop;
	struct etcd_client *c;
	int64_t ttl_s, lease;
	char key[2 * REG_MAX_NAME + 64];
	struct buf value;
	bool want, dirty, inflight, ka_due;
	enum call what;              /* the call in flight */
	uv_timer_t ka, retry;
	int open_handles;            /* freed when the last one has closed */
	reg_keeper_cb cb;
	void *ud;
};

static void kick(struct reg_keeper *k);

static void retry_cb(uv_timer_t *t)
{
	kick(t->data);
}

static void ka_cb(uv_timer_t *t)
{
	struct reg_keeper *k = t->data;
	k->ka_due = true;
	kick(k);
}

static void failed(struct reg_keeper *k, int err, const struct etcd_resp *r)
{
	char msg[300];
	snprintf(msg, sizeof msg, "%s", err == ETCD_E_SERVER && r && r->error_message
	                                    ? r->error_message : etcd_strerror(err));
	if (err == ETCD_E_SERVER && r && r->error_code == 5) {   /* lease not found */
		k->lease = 0;
		k->dirty = true;
	}
	k->cb(k->ud, err, msg);
	uv_timer_start(&k->retry, retry_cb, RETRY_MS, 0);
}

static void answer_cb(void *ud, int err, const struct etcd_resp *r);


static void keeper_send(struct reg_keeper *k, const char *path, struct buf *b, enum call what)
{
	int r = etcd_call(k->c, path, b->data, b->len, answer_cb, k);
	buf_free(b);
	if (r < 0)
		return failed(k, r, NULL);
	k->inflight = true;
	k->what = what;
}

static void answer_cb(void *ud, int err, const struct etcd_resp *r)
{
	struct reg_keeper *k = ud;
	k->inflight = false;
	if (err == -ECANCELED)
		return;
	if (err < 0)
		return failed(k, err, r);
	switch (k->what) {
	case C_GRANT:
		k->lease = r->lease_id;
		if (r->ttl > 0)
			k->ttl_s = r->ttl;
		k->dirty = true;
		uv_timer_start(&k->ka, ka_cb, (uint64_t)k->ttl_s * 1000 / 3, (uint64_t)k->ttl_s * 1000 / 3);
		break;
	case C_PUT:
		k->cb(k->ud, 0, NULL);
		break;
	case C_KA:
		if (r->ttl <= 0) {   /* the lease is gone: a new one, and the key again */
			k->lease = 0;
			k->dirty = true;
		} else {
			k->cb(k->ud, 0, NULL);
		}
		break;
	case C_REVOKE:
		break;
	}
	kick(k);
}

static void kick(struct reg_keeper *k)
{
	if (k->inflight)
		return;
	struct buf b = BUF_INIT;
	if (!k->want) {
		uv_timer_stop(&k->ka);
		if (k->lease) {
			etcd_req_lease_revoke(&b, k->lease);
			k->lease = 0;
			keeper_send(k, ETCD_PATH_REVOKE, &b, C_REVOKE);
		}
		return;
	}
	if (!k->lease) {
		etcd_req_lease_grant(&b, k->ttl_s, 0);
		return keeper_send(k, ETCD_PATH_GRANT, &b, C_GRANT);
	}
	if (k->dirty) {
		k->dirty = false;
		etcd_req_put(&b, k->key, strlen(k->key), k->value.data, k->value.len, k->lease, false);
		return keeper_send(k, ETCD_PATH_PUT, &b, C_PUT);
	}
	if (k->ka_due) {
		k->ka_due = false;
		etcd_req_lease_keepalive(&b, k->lease);
		return keeper_send(k, ETCD_PATH_KEEPALIVE, &b, C_KA);
	}
}

struct reg_keeper *reg_keeper_new(uv_loop_t *loop, struct etcd_client *c, uint64_t ttl_ms,
                                  reg_keeper_cb cb, void *ud)
{
	struct reg_keeper *k = calloc(1, sizeof *k);
	if (!k)
		return NULL;
	k->loop = loop;
	k->c = c;
	k->ttl_s = (int64_t)((ttl_ms + 999) / 1000);
	k->cb = cb;
	k->ud = ud;
	buf_init(&k->value);
	uv_timer_init(loop, &k->ka);
	uv_timer_init(loop, &k->retry);
	k->ka.data = k->retry.data = k;
	k->open_handles = 2;
	return k;
}

void reg_keeper_put(struct reg_keeper *k, const struct reg_instance *in)
{
	snprintf(k->key, sizeof k->key, "%s%s/%s", REG_ETCD_PREFIX, in->service, in->id);
	struct reg_instance v = *in;
	v.expires_ms = 0;
	buf_reset(&k->value);
	reg_value_format(&k->value, &v);
	k->want = true;
	k->dirty = true;
	kick(k);
}

void reg_keeper_delete(struct reg_keeper *k)
{
	k->want = false;
	kick(k);
}

bool reg_keeper_idle(const struct reg_keeper *k)
{
	return !k->inflight && (k->want || !k->lease);
}

int64_t reg_keeper_lease(const struct reg_keeper *k)
{
	return k->lease;
}

static void close_cb(uv_handle_t *h)
{
	struct reg_keeper *k = h->data;
	/* libuv runs close callbacks in no promised order (newest first
	 * today), so the keeper goes with whichever closes last */
	if (--k->open_handles == 0) {
		buf_free(&k->value);
		free(k);
	}
}

void reg_keeper_free(struct reg_keeper *k)
{
	if (!k)
		return;
	uv_close((uv_handle_t *)&k->ka, close_cb);
	uv_close((uv_handle_t *)&k->retry, close_cb);
}
