/*
 * counter/counter.c -- the front of the counter backends: option defaults, the
 * dispatch from a store URL to its backend, argument checks every backend
 * shares, and the text for each error.
 *
 * Each backend (counter_mem.c, counter_file.c, counter_redis.c) fills a
 * struct counter_ops; stores and handles start with a pointer to it, so a
 * call here is one check and one indirect call.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "counter/counter.h"

void counter_options_init(struct counter_options *o)
{
	memset(o, 0, sizeof *o);
	o->max_keys = COUNTER_DEFAULT_MAX_KEYS;
	o->compact_bytes = COUNTER_DEFAULT_COMPACT_BYTES;
	o->timeout_ms = COUNTER_DEFAULT_TIMEOUT_MS;
	o->connect_timeout_ms = 1000;
	o->max_pending = 4096;
	o->wait_ms = COUNTER_DEFAULT_WAIT_MS;
}

int counter_store_open(const struct store_url *u, const struct counter_options *o,
                       struct counter_store **out, char *err, size_t err_size)
{
	struct counter_options def;
	if (!o) {
		counter_options_init(&def);
		o = &def;
	}
	if (err && err_size)
		err[0] = 0;
	int r;
	switch (u->kind) {
	case STORE_MEM:
		r = counter_mem_open(o, out);
		break;
	case STORE_FILE:
		return counter_file_open(u->path, o, out, err, err_size);
	case STORE_REDIS:
	case STORE_REDIS_CLUSTER:
		r = counter_redis_open(u, o, out);
		break;
	default:
		if (err && err_size)
			snprintf(err, err_size, "%s holds no counters; use mem:, file:PATH, redis:// or redis-cluster://",
			         store_url_kind_name(u->kind));
		return -EPROTONOSUPPORT;
	}
	if (r < 0 && err && err_size && !err[0])
		snprintf(err, err_size, "%s", strerror(-r));
	return r;
}

void counter_store_close(struct counter_store *s)
{
	if (s)
		s->ops->close(s);
}

enum store_kind counter_store_kind(const struct counter_store *s)
{
	return s->kind;
}

int counter_attach(struct counter_store *s, uv_loop_t *loop, struct counter **out)
{
	return s->ops->attach(s, loop, out);
}

void counter_detach(struct counter *c)
{
	if (c)
		c->ops->detach(c);
}

static bool key_ok(const char *key, size_t len)
{
	return key && len > 0 && len <= COUNTER_MAX_KEY;
}

int counter_incr(struct counter *c, const char *key, size_t key_len, int64_t by,
                 counter_fn cb, void *ud)
{
	if (!key_ok(key, key_len) || !cb)
		return -EINVAL;
	return c->ops->incr(c, key, key_len, by, cb, ud);
}

int counter_get(struct counter *c, const char *key, size_t key_len, counter_fn cb, void *ud)
{
	if (!key_ok(key, key_len) || !cb)
		return -EINVAL;
	return c->ops->get(c, key, key_len, cb, ud);
}

int counter_set(struct counter *c, const char *key, size_t key_len, int64_t value,
                counter_fn cb, void *ud)
{
	if (!key_ok(key, key_len) || !cb)
		return -EINVAL;
	return c->ops->set(c, key, key_len, value, cb, ud);
}

int counter_del(struct counter *c, const char *key, size_t key_len, counter_fn cb, void *ud)
{
	if (!key_ok(key, key_len) || !cb)
		return -EINVAL;
	return c->ops->del(c, key, key_len, cb, ud);
}

int counter_list(struct counter *c, const char *prefix, size_t prefix_len,
                 counter_list_fn cb, void *ud)
{
	if (!cb || prefix_len > COUNTER_MAX_KEY)
		return -EINVAL;
	return c->ops->list(c, prefix, prefix_len, cb, ud);
}

int counter_check(struct counter *c, counter_fn cb, void *ud)
{
	if (!cb)
		return -EINVAL;
	enum store_kind k = c->store->kind;
	if (k == STORE_REDIS || k == STORE_REDIS_CLUSTER)
		return counter_redis_check(c, cb, ud);
	cb(ud, 0, 0);
	return 0;
}

bool counter_err_config(int err)
{
	return err == -EDOM || err == -EOPNOTSUPP;
}

bool counter_err_unreachable(int err)
{
	switch (err) {
	case 0:
	case -ENOENT:
	case -EOVERFLOW:
	case -EINVAL:
	case -ENOSPC:
	case -EIO:
	case -ENOMEM:
	case -EBADMSG:
	case -EDOM:
	case -EOPNOTSUPP:
	case -EROFS:
		return false;
	default:
		return err < 0;
	}
}

const char *counter_strerror(int err)
{
	switch (err) {
	case 0:
		return "ok";
	case -ENOENT:
		return "not found";
	case -EOVERFLOW:
		return "increment would overflow int64";
	case -EINVAL:
		return "the stored value is not an integer";
	case -ENOSPC:
		return "too many keys (see --max-keys)";
	case -EIO:
		return "the log cannot be written";
	case -ENOMEM:
		return "out of memory";
	case -ETIMEDOUT:
		return "backend timed out";
	case -ENOBUFS:
		return "backend busy: too many commands in flight";
	case -EACCES:
		return "backend refused authentication";
	case -EPROTO:
		return "unexpected answer from the backend";
	case -EBADMSG:
		return "the service refused the request";
	case -EROFS:
		return "the store was opened read-only";
	case -EDOM:
		return "the backend has no such database: the /DB of the URL is out of range";
	case -EOPNOTSUPP:
		return "cluster support is disabled on the backend: use redis:// for it";
	default:
		return "backend unreachable";
	}
}
