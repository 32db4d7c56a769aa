/*
 * counter/redis.c -- counters in Redis or a Redis Cluster, on lib/store/redis.
 *
 * Each operation is one atomic Redis command: INCRBY (no WATCH/MULTI
 * loop: Redis does the read-modify-write itself and refuses an overflow
 * with "ERR increment or decrement would overflow", leaving the value
 * as it was), GET, SET, and for del a Lua script (EVAL) that reads the
 * value, deletes it only when it is an int64, and answers the old value,
 * in one step: GETDEL would destroy another program's key that it then
 * reports as "not an integer".  lib/store/redis
 * sends every command issued in one loop iteration in one write, so a
 * server that answers many requests in one iteration talks to Redis in
 * pipelines without waiting for them.  In cluster mode lib/store/redis routes
 * each key by its slot (hash tags honoured) and follows MOVED and ASK.
 *
 * Per operation there is no allocation of ours: an op record (callback
 * and its argument) comes from a per-handle freelist that grows to the
 * peak in flight.  list is a walk: SCAN with MATCH prefix* (glob
 * characters of the prefix escaped) on every master, and for each page a
 * GET per key, pipelined; a page's counters go to the callback when its
 * GETs are all answered, then the next SCAN goes out.  Keys whose values
 * are not integers (another program's data) and keys deleted meanwhile
 * are left out.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "base/buf.h"
#include "counter/counter.h"
#include "base/invariant.h"
#include "base/json.h"
#include "store/redis.h"

struct redis_store {
	struct counter_store base;
	struct store_url url;
	struct redis_options ropt;
};

struct rop {
	struct rop *next;
	struct redis_handle *h;
	counter_fn cb;
	void *ud;
	int64_t value;               /* set: the value stored */
};

struct redis_handle {
	struct counter base;
	struct redis_client *rc;
	struct rop *free;
};

static const struct counter_ops redis_ops;

static struct rop *rop_get(struct redis_handle *h, counter_fn cb, void *ud)
{
	struct rop *o = h->free;
	if (o)
		h->free = o->next;
	else {
		o = malloc(sizeof *o);    /* grows to the peak in flight, then reused */
		if (!o)
			return NULL;
	}
	o->h = h;
	o->cb = cb;
	o->ud = ud;
	return o;
}

static void rop_put(struct rop *o)
{
	o->next = o->h->free;
	o->h->free = o;
}

/* An error reply in counter terms. */
static int reply_error(const redisReply *r)
{
	if (strstr(r->str, "overflow"))
		return -EOVERFLOW;
	if (!strncmp(r->str, "WRONGTYPE", 9) || strstr(r->str, "not an integer"))
		return -EINVAL;
	if (!strncmp(r->str, "CLUSTERDOWN", 11) || !strncmp(r->str, "TRYAGAIN", 8) ||
	    !strncmp(r->str, "MOVED", 5) || !strncmp(r->str, "ASK", 3) ||
	    !strncmp(r->str, "LOADING", 7) || !strncmp(r->str, "MASTERDOWN", 10))
		return -EAGAIN;
	if (!strncmp(r->str, "NOAUTH", 6) || !strncmp(r->str, "WRONGPASS", 9))
		return -EACCES;
	return -EIO;
}

/* A bulk string holding a counter: exact int64 or -EINVAL. */
static int string_value(const redisReply *r, int64_t *v)
{
	return json_parse_i64(r->str, r->len, v) < 0 ? -EINVAL : 0;
}

/*
 * Name the cause of a failure the client only knows as a code: a SELECT
 * refused at connect time is "refused" like a bad password (-EACCES), and
 * a CLUSTER SLOTS refused by a plain Redis is a protocol error (-EPROTO);
 * the server's text, kept by the client, tells them apart.
 */
static int refine(struct redis_handle *h, int err)
{
	const char *why = redis_client_last_error(h->rc);
	if (err == -EACCES && strstr(why, "DB index is out of range"))
		return -EDOM;
	if ((err == -EPROTO || err == -ENOTCONN) && strstr(why, "cluster support disabled"))
		return -EOPNOTSUPP;
	return err;
}

static void finish(struct rop *o, int err, int64_t v)
{
	if (err < 0)
		err = refine(o->h, err);
	counter_fn cb = o->cb;
	void *ud = o->ud;
	rop_put(o);
	cb(ud, err, v);
}

static void int_cb(void *ud, const struct redisReply *r, int err)
{
	struct rop *o = ud;
	if (err < 0)
		return finish(o, err, 0);
	if (r->type == REDIS_REPLY_INTEGER)
		return finish(o, 0, r->integer);
	finish(o, r->type == REDIS_REPLY_ERROR ? reply_error(r) : -EIO, 0);
}

static void str_cb(void *ud, const struct redisReply *r, int err)
{
	struct rop *o = ud;
	int64_t v = 0;
	if (err < 0)
		return finish(o, err, 0);
	switch (r->type) {
	case REDIS_REPLY_NIL:
		return finish(o, -ENOENT, 0);
	case REDIS_REPLY_STRING:
		err = string_value(r, &v);
		return finish(o, err, v);
	case REDIS_REPLY_INTEGER:
		return finish(o, 0, r->integer);
	case REDIS_REPLY_ERROR:
		return finish(o, reply_error(r), 0);
	default:
		return finish(o, -EIO, 0);
	}
}

static void set_cb(void *ud, const struct redisReply *r, int err)
{
	struct rop *o = ud;
	if (err < 0)
		return finish(o, err, 0);
	if (r->type == REDIS_REPLY_STATUS)
		return finish(o, 0, o->value);
	finish(o, r->type == REDIS_REPLY_ERROR ? reply_error(r) : -EIO, 0);
}

static int op_send(struct counter *c, const char *key, size_t key_len, int argc,
                const char **argv, const size_t *lens, redis_reply_fn fn,
                counter_fn cb, void *ud, int64_t value)
{
	struct redis_handle *h = (struct redis_handle *)c;
	struct rop *o = rop_get(h, cb, ud);
	if (!o)
		return -ENOMEM;
	o->value = value;
	int r = redis_command_argv(h->rc, key, key_len, argc, argv, lens, fn, o);
	if (r < 0)
		rop_put(o);
	return r;
}

static int redis_incr(struct counter *c, const char *key, size_t len, int64_t by, counter_fn cb, void *ud)
{
	char num[24];
	size_t nl = fmt_i64(num, by);
	const char *argv[] = {"INCRBY", key, num};
	size_t lens[] = {6, len, nl};
	return op_send(c, key, len, 3, argv, lens, int_cb, cb, ud, 0);
}

static int redis_get(struct counter *c, const char *key, size_t len, counter_fn cb, void *ud)
{
	const char *argv[] = {"GET", key};
	size_t lens[] = {3, len};
	return op_send(c, key, len, 2, argv, lens, str_cb, cb, ud, 0);
}

static int redis_set(struct counter *c, const char *key, size_t len, int64_t value, counter_fn cb, void *ud)
{
	char num[24];
	size_t nl = fmt_i64(num, value);
	const char *argv[] = {"SET", key, num};
	size_t lens[] = {3, len, nl};
	return op_send(c, key, len, 3, argv, lens, set_cb, cb, ud, value);
}

/*
 * Check and delete in one atomic step.  A value is a counter when it is
 * what string_value takes: an optional '-', then 0 or digits without a
 * leading zero, inside the int64 range (compared as strings of equal
 * length, since Lua's numbers are doubles).  A key of another type
 * (pcall catches WRONGTYPE) or another value is left as it was, with an
 * error whose text reply_error maps to -EINVAL.  Redis caches the
 * compiled script by its SHA1, so sending it each time costs its bytes
 * only; del is not a hot path.
 */
static const char del_script[] =
	"local v = redis.pcall('GET', KEYS[1])\n"
	"if not v then return false end\n"
	"if type(v) ~= 'string' then return redis.error_reply('ERR value is not an integer') end\n"
	"local neg = string.sub(v, 1, 1) == '-'\n"
	"local d = neg and string.sub(v, 2) or v\n"
	"local ok = d == '0' or (string.match(d, '^[1-9]%d*$') ~= nil and (#d < 19 or\n"
	"  (#d == 19 and d <= (neg and '9223372036854775808' or '9223372036854775807'))))\n"
	"if not ok then return redis.error_reply('ERR value is not an integer') end\n"
	"redis.call('DEL', KEYS[1])\n"
	"return v\n";

static int redis_del(struct counter *c, const char *key, size_t len, counter_fn cb, void *ud)
{
	const char *argv[] = {"EVAL", del_script, "1", key};
	size_t lens[] = {4, sizeof del_script - 1, 1, len};
	return op_send(c, key, len, 4, argv, lens, str_cb, cb, ud, 0);
}

/* ------------------------------------------------------------ list */

struct page_item {
	struct list_walk *w;
	size_t key_off, key_len;
	int64_t value;
	bool ok;                      /* an integer came back */
};

struct list_walk {
	struct redis_handle *h;
	counter_list_fn cb;
	void *ud;
	struct buf pattern;
	unsigned masters[REDIS_DEFAULT_MAX_NODES];
	unsigned n_masters, at;       /* masters[at] is being scanned */
	char cursor[32];
	size_t cursor_len;
	unsigned gets;                /* GETs of the page still to come (+1 while issuing) */
	bool page_last;               /* the SCAN cursor came back 0 */
	int err;
	struct buf keys;              /* the page's keys, back to back */
	struct page_item *page;
	struct counter_item *items;
	size_t n, cap;
};

static void walk_next(struct list_walk *w);

static void walk_end(struct list_walk *w, int err)
{
	w->cb(w->ud, err, NULL, 0, true);
	buf_free(&w->pattern);
	buf_free(&w->keys);
	free(w->page);
	free(w->items);
	free(w);
}

static void page_done(struct list_walk *w)
{
	if (w->err < 0)
		return walk_end(w, w->err);
	size_t n = 0;
	for (size_t i = 0; i < w->n; i++) {
		if (!w->page[i].ok)
			continue;   /* deleted meanwhile, or not a counter */
		w->items[n].key = w->keys.data + w->page[i].key_off;
		w->items[n].key_len = w->page[i].key_len;
		w->items[n].value = w->page[i].value;
		n++;
	}
	if (n)
		w->cb(w->ud, 0, w->items, n, false);
	w->n = 0;
	buf_reset(&w->keys);
	if (w->page_last) {
		w->at++;
		memcpy(w->cursor, "0", 2);
		w->cursor_len = 1;
		if (w->at == w->n_masters)
			return walk_end(w, 0);
	}
	walk_next(w);
}

static void list_get_cb(void *ud, const struct redisReply *r, int err)
{
	struct page_item *it = ud;
	struct list_walk *w = it->w;
	if (err < 0)
		w->err = err;
	else if (r->type == REDIS_REPLY_STRING && string_value(r, &it->value) == 0)
		it->ok = true;
	if (--w->gets == 0)
		page_done(w);
}

static void scan_cb(void *ud, const struct redisReply *r, int err)
{
	struct list_walk *w = ud;
	if (err < 0)
		return walk_end(w, err);
	if (r->type == REDIS_REPLY_ERROR)
		return walk_end(w, reply_error(r));
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY ||
	    r->element[0]->len >= sizeof w->cursor)
		return walk_end(w, -EIO);
	memcpy(w->cursor, r->element[0]->str, r->element[0]->len);
	w->cursor[r->element[0]->len] = 0;
	w->cursor_len = r->element[0]->len;
	w->page_last = w->cursor_len == 1 && w->cursor[0] == '0';
	const redisReply *keys = r->element[1];
	if (keys->elements > w->cap) {
		struct page_item *np = realloc(w->page, keys->elements * sizeof *np);
		if (np)
			w->page = np;
		struct counter_item *ni = realloc(w->items, keys->elements * sizeof *ni);
		if (ni)
			w->items = ni;
		if (!np || !ni)
			return walk_end(w, -ENOMEM);
		w->cap = keys->elements;
	}
	w->n = 0;
	buf_reset(&w->keys);
	for (size_t i = 0; i < keys->elements; i++) {
		const redisReply *k = keys->element[i];
		if (k->type != REDIS_REPLY_STRING)
			continue;
		w->page[w->n] = (struct page_item){w, w->keys.len, k->len, 0, false};
		buf_append(&w->keys, k->str, k->len);
		w->n++;
	}
	/* one GET per key, all in this iteration: one pipeline */
	w->gets = (unsigned)w->n + 1;
	for (size_t i = 0; i < w->n; i++) {
		const char *key = w->keys.data + w->page[i].key_off;
		size_t kl = w->page[i].key_len;
		const char *argv[] = {"GET", key};
		size_t lens[] = {3, kl};
		int e = redis_command_argv(w->h->rc, key, kl, 2, argv, lens, list_get_cb, &w->page[i]);
		if (e < 0) {
			w->err = e;
			w->gets--;
		}
	}
	if (--w->gets == 0)
		page_done(w);
}

static void walk_next(struct list_walk *w)
{
	const char *argv[] = {"SCAN", w->cursor, "MATCH", w->pattern.data, "COUNT", "1000"};
	size_t lens[] = {4, w->cursor_len, 5, w->pattern.len, 5, 4};
	int e = redis_command_argv_node(w->h->rc, w->masters[w->at], 6, argv, lens, scan_cb, w);
	if (e < 0)
		walk_end(w, e);
}

static void ready_cb(void *ud, const struct redisReply *r, int err)
{
	struct list_walk *w = ud;
	if (err < 0)
		return walk_end(w, err);
	int n = redis_client_masters(w->h->rc, w->masters, REDIS_DEFAULT_MAX_NODES);
	if (n <= 0)
		return walk_end(w, -ENOTCONN);
	w->n_masters = (unsigned)(n > REDIS_DEFAULT_MAX_NODES ? REDIS_DEFAULT_MAX_NODES : n);
	w->at = 0;
	walk_next(w);
}

static int redis_list(struct counter *c, const char *prefix, size_t plen, counter_list_fn cb, void *ud)
{
	struct list_walk *w = calloc(1, sizeof *w);
	if (!w)
		return -ENOMEM;
	w->h = (struct redis_handle *)c;
	w->cb = cb;
	w->ud = ud;
	for (size_t i = 0; i < plen; i++) {
		if (strchr("*?[]\\", prefix[i]) && prefix[i])
			buf_putc(&w->pattern, '\\');
		buf_putc(&w->pattern, prefix[i]);
	}
	buf_putc(&w->pattern, '*');
	memcpy(w->cursor, "0", 2);
	w->cursor_len = 1;
	int e = redis_client_ready(w->h->rc, ready_cb, w);
	if (e < 0) {
		buf_free(&w->pattern);
		free(w);
	}
	return e;
}

/* ------------------------------------------------------------ check */

/* counter_redis_check: the slot map (cluster), then a PING, so a refused
 * SELECT or a plain Redis behind redis-cluster:// shows at once. */
static void ping_cb(void *ud, const struct redisReply *r, int err)
{
	struct rop *o = ud;
	if (err < 0)
		return finish(o, err, 0);
	finish(o, r->type == REDIS_REPLY_ERROR ? reply_error(r) : 0, 0);
}

static void check_ready_cb(void *ud, const struct redisReply *r, int err)
{
	struct rop *o = ud;
	if (err < 0)
		return finish(o, err, 0);
	const char *argv[] = {"PING"};
	size_t lens[] = {4};
	int e = redis_command_argv(o->h->rc, NULL, 0, 1, argv, lens, ping_cb, o);
	if (e < 0)
		finish(o, e, 0);
}

int counter_redis_check(struct counter *c, counter_fn cb, void *ud)
{
	struct redis_handle *h = (struct redis_handle *)c;
	struct rop *o = rop_get(h, cb, ud);
	if (!o)
		return -ENOMEM;
	int e = redis_client_ready(h->rc, check_ready_cb, o);
	if (e < 0)
		rop_put(o);
	return e;
}

/* ------------------------------------------------------------ store */

static int redis_attach(struct counter_store *s, uv_loop_t *loop, struct counter **out)
{
	struct redis_store *rs = (struct redis_store *)s;
	struct redis_handle *h = calloc(1, sizeof *h);
	if (!h)
		return -ENOMEM;
	int r = redis_client_new(loop, &rs->url, &rs->ropt, &h->rc);
	if (r < 0) {
		free(h);
		return r;
	}
	h->base.ops = &redis_ops;
	h->base.store = s;
	*out = &h->base;
	return 0;
}

static void redis_detach(struct counter *c)
{
	struct redis_handle *h = (struct redis_handle *)c;
	redis_client_free(h->rc);   /* pending ops get -ECANCELED, into the freelist */
	while (h->free) {
		struct rop *o = h->free;
		h->free = o->next;
		free(o);
	}
	free(h);
}

static void redis_close(struct counter_store *s)
{
	free(s);
}

static const struct counter_ops redis_ops = {
	redis_attach, redis_detach, redis_incr, redis_get, redis_set, redis_del, redis_list, redis_close,
};

int counter_redis_open(const struct store_url *u, const struct counter_options *o,
                       struct counter_store **out)
{
	struct redis_store *rs = calloc(1, sizeof *rs);
	if (!rs)
		return -ENOMEM;
	rs->url = *u;
	redis_options_init(&rs->ropt);
	if (o->timeout_ms)
		rs->ropt.command_timeout_ms = o->timeout_ms;
	if (o->connect_timeout_ms)
		rs->ropt.connect_timeout_ms = o->connect_timeout_ms < rs->ropt.command_timeout_ms
		                                  ? o->connect_timeout_ms : rs->ropt.command_timeout_ms;
	if (o->max_pending)
		rs->ropt.max_pending = o->max_pending;
	rs->base.ops = &redis_ops;
	rs->base.kind = u->kind;
	*out = &rs->base;
	return 0;
}
