/*
 * lock/redis.c -- redis:// and redis-cluster://, through store/redis.
 *
 * Keys.  A name's state lives under four keys that share one hash tag, the
 * name in braces, so that on a cluster they sit in one slot and one Lua
 * script may touch them all:
 *
 *   dsys/locks/{NAME}           a mutex (limit 1): a string
 *                               "TOKEN FENCE OWNER", set with SET NX PX,
 *                               so Redis itself expires it after the TTL
 *   dsys/locks/{NAME}/holders   a semaphore (limit > 1): a sorted set of
 *                               tokens scored by expiry (Unix ms, by the
 *                               Redis server's clock: TIME in the script)
 *   dsys/locks/{NAME}/info      a semaphore: a hash, token -> "FENCE OWNER"
 *   dsys/locks/{NAME}/fence     the name's fence counter (INCR)
 *
 * A name that starts with '}' would make the tag empty (Redis then hashes
 * the whole key, and the four keys could land in different slots): such
 * names are refused with -EINVAL.  A name holding a '}' elsewhere is fine:
 * the tag then ends at that '}', which is the same in all four keys.
 *
 * Every operation is one EVAL, so it is atomic on the server: acquire
 * checks both forms (a mutex is busy while a semaphore has holders, and
 * the other way round), takes the fence with INCR in the same script and
 * reads it back with GET (a Lua number is a double; the string is exact to
 * 64 bits).  Release and renew compare the token first and act only on a
 * match (compare-and-delete, compare-and-PEXPIRE): a stale holder, or
 * anyone without the token, changes nothing.  Expired semaphore entries
 * are pruned by the next acquire, renew or release.
 *
 * A reply that is not what a script returns (another program's key of
 * another type under our names: WRONGTYPE) is -EPROTO.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "base/invariant.h"
#include "base/parse.h"
#include "lock/backend.h"
#include "store/redis.h"

struct redis_impl {
	struct redis_client *rc;
};

#define NOW_AND_PRUNE \
	"local t = redis.call('TIME')\n" \
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n" \
	"local function prune()\n" \
	"  local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)\n" \
	"  for i = 1, #dead do redis.call('HDEL', KEYS[3], dead[i]) end\n" \
	"  if #dead > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now) end\n" \
	"end\n" \
	"local function expire_sem()\n" \
	"  local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')\n" \
	"  if #last == 2 then\n" \
	"    redis.call('PEXPIREAT', KEYS[2], last[2])\n" \
	"    redis.call('PEXPIREAT', KEYS[3], last[2])\n" \
	"  end\n" \
	"end\n"

/* ARGV: token, ttl_ms, limit, owner.  Returns 0 (busy) or the fence. */
static const char acquire_lua[] = NOW_AND_PRUNE
	"prune()\n"
	"local limit = tonumber(ARGV[3])\n"
	"if redis.call('GET', KEYS[1]) then return 0 end\n"   /* GET: WRONGTYPE on a foreign key */
	"if redis.call('ZCARD', KEYS[2]) >= limit then return 0 end\n"
	"redis.call('INCR', KEYS[4])\n"
	"local f = redis.call('GET', KEYS[4])\n"
	"if limit == 1 then\n"
	"  redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. f .. ' ' .. ARGV[4], 'NX', 'PX', ARGV[2])\n"
	"else\n"
	"  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])\n"
	"  redis.call('HSET', KEYS[3], ARGV[1], f .. ' ' .. ARGV[4])\n"
	"  expire_sem()\n"
	"end\n"
	"return f\n";

/* ARGV: token, ttl_ms.  Returns 0 (not held) or "FENCE OWNER". */
static const char renew_lua[] = NOW_AND_PRUNE
	"local p = ARGV[1] .. ' '\n"
	"local v = redis.call('GET', KEYS[1])\n"
	"if v and string.sub(v, 1, #p) == p then\n"
	"  redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
	"  return string.sub(v, #p + 1)\n"
	"end\n"
	"prune()\n"
	"if redis.call('ZSCORE', KEYS[2], ARGV[1]) then\n"
	"  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])\n"
	"  expire_sem()\n"
	"  return redis.call('HGET', KEYS[3], ARGV[1]) or '0 '\n"
	"end\n"
	"return 0\n";

/* ARGV: token.  Returns 1 (released) or 0 (not held). */
static const char release_lua[] = NOW_AND_PRUNE
	"local p = ARGV[1] .. ' '\n"
	"local v = redis.call('GET', KEYS[1])\n"
	"if v and string.sub(v, 1, #p) == p then redis.call('DEL', KEYS[1]) return 1 end\n"
	"prune()\n"
	"if redis.call('ZREM', KEYS[2], ARGV[1]) == 1 then\n"
	"  redis.call('HDEL', KEYS[3], ARGV[1])\n"
	"  return 1\n"
	"end\n"
	"return 0\n";

/* Read-only.  Returns pairs: "TOKEN FENCE OWNER", ms left. */
static const char status_lua[] =
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
	"local out = {}\n"
	"local v = redis.call('GET', KEYS[1])\n"
	"if v then\n"
	"  out[#out + 1] = v\n"
	"  out[#out + 1] = redis.call('PTTL', KEYS[1])\n"
	"end\n"
	"local m = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now, '+inf', 'WITHSCORES')\n"
	"for i = 1, #m, 2 do\n"
	"  out[#out + 1] = m[i] .. ' ' .. (redis.call('HGET', KEYS[3], m[i]) or '0 ')\n"
	"  out[#out + 1] = tonumber(m[i + 1]) - now\n"
	"end\n"
	"return out\n";

/* "TOKEN FENCE OWNER" (token may be absent: "FENCE OWNER" when
 * with_token is false) into h.  0 or -EPROTO. */
static int parse_value(const char *s, size_t len, bool with_token, struct lock_holder *h)
{
	char text[LOCK_TOKEN_LEN + 32 + LOCK_MAX_OWNER + 8];
	if (len >= sizeof text)
		return -EPROTO;
	memcpy(text, s, len);
	text[len] = '\0';
	char *p = text;
	if (with_token) {
		char *sp = strchr(p, ' ');
		if (!sp || sp - p != LOCK_TOKEN_LEN)
			return -EPROTO;
		memcpy(h->token, p, LOCK_TOKEN_LEN);
		h->token[LOCK_TOKEN_LEN] = '\0';
		p = sp + 1;
	}
	char *sp = strchr(p, ' ');
	if (sp)
		*sp = '\0';
	if (parse_u64(p, &h->fence) < 0)
		return -EPROTO;
	snprintf(h->owner, sizeof h->owner, "%s", sp ? sp + 1 : "");
	return 0;
}

static void reply_cb(void *ud, const struct redisReply *r, int err)
{
	struct lock_op *op = ud;
	if (err < 0)
		return lock_op_done(op, err, NULL, 0);
	if (r->type == REDIS_REPLY_ERROR)
		return lock_op_done(op, -EPROTO, NULL, 0);
	struct lock_holder h;
	memset(&h, 0, sizeof h);
	snprintf(h.name, sizeof h.name, "%s", op->name);
	h.pid = -1;
	switch (op->kind) {
	case LOCK_OP_ACQUIRE:
		if (r->type == REDIS_REPLY_INTEGER && r->integer == 0)
			return lock_op_done(op, -EBUSY, NULL, 0);
		if (r->type != REDIS_REPLY_STRING || parse_u64(r->str, &h.fence) < 0)
			return lock_op_done(op, -EPROTO, NULL, 0);
		memcpy(h.token, op->token, sizeof h.token);
		snprintf(h.owner, sizeof h.owner, "%s", op->owner);
		h.ttl_ms = op->ttl_ms;
		h.expires_ms = op->sent_ms + op->ttl_ms;
		return lock_op_done(op, 0, &h, 1);
	case LOCK_OP_RENEW:
		if (r->type == REDIS_REPLY_INTEGER && r->integer == 0)
			return lock_op_done(op, -ENOENT, NULL, 0);
		if (r->type != REDIS_REPLY_STRING || parse_value(r->str, r->len, false, &h) < 0)
			return lock_op_done(op, -EPROTO, NULL, 0);
		memcpy(h.token, op->token, sizeof h.token);
		h.ttl_ms = op->ttl_ms;
		h.expires_ms = op->sent_ms + op->ttl_ms;
		return lock_op_done(op, 0, &h, 1);
	case LOCK_OP_RELEASE:
		if (r->type != REDIS_REPLY_INTEGER)
			return lock_op_done(op, -EPROTO, NULL, 0);
		return lock_op_done(op, r->integer == 1 ? 0 : -ENOENT, NULL, 0);
	case LOCK_OP_STATUS: {
		if (r->type != REDIS_REPLY_ARRAY || r->elements % 2)
			return lock_op_done(op, -EPROTO, NULL, 0);
		unsigned n = (unsigned)(r->elements / 2);
		struct lock_holder *hs = calloc(n ? n : 1, sizeof *hs);
		if (!hs)
			return lock_op_done(op, -ENOMEM, NULL, 0);
		for (unsigned i = 0; i < n; i++) {
			const struct redisReply *v = r->element[2 * i], *ttl = r->element[2 * i + 1];
			if (v->type != REDIS_REPLY_STRING || ttl->type != REDIS_REPLY_INTEGER ||
			    parse_value(v->str, v->len, true, &hs[i]) < 0) {
				free(hs);
				return lock_op_done(op, -EPROTO, NULL, 0);
			}
			snprintf(hs[i].name, sizeof hs[i].name, "%s", op->name);
			hs[i].pid = -1;
			hs[i].ttl_ms = ttl->integer > 0 ? (uint64_t)ttl->integer : 0;
			hs[i].expires_ms = op->sent_ms + hs[i].ttl_ms;
		}
		lock_op_done(op, 0, hs, n);
		free(hs);
		return;
	}
	}
	INVARIANT(0);
}

static void redis_start(struct lock_store *s, struct lock_op *op)
{
	struct redis_impl *ri = s->impl;
	if (op->name[0] == '}')
		return lock_op_done(op, -EINVAL, NULL, 0);
	char keys[4][LOCK_MAX_NAME + 32];
	static const char *const suffix[4] = {"", "/holders", "/info", "/fence"};
	size_t klen[4];
	for (int i = 0; i < 4; i++)
		klen[i] = (size_t)snprintf(keys[i], sizeof keys[i], "dsys/%s/{%s}%s",
		                           s->opt.election ? "elections" : "locks", op->name, suffix[i]);
	char ttl[24], limit[16];
	snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)op->ttl_ms);
	snprintf(limit, sizeof limit, "%u", op->limit);
	const char *argv[11];
	size_t lens[11];
	int argc = 0;
	const char *script = op->kind == LOCK_OP_ACQUIRE ? acquire_lua
	                   : op->kind == LOCK_OP_RENEW   ? renew_lua
	                   : op->kind == LOCK_OP_RELEASE ? release_lua
	                                                 : status_lua;
	argv[argc] = "EVAL", lens[argc++] = 4;
	argv[argc] = script, lens[argc++] = strlen(script);
	argv[argc] = "4", lens[argc++] = 1;
	for (int i = 0; i < 4; i++)
		argv[argc] = keys[i], lens[argc++] = klen[i];
	if (op->kind != LOCK_OP_STATUS)
		argv[argc] = op->token, lens[argc++] = strlen(op->token);
	if (op->kind == LOCK_OP_ACQUIRE || op->kind == LOCK_OP_RENEW)
		argv[argc] = ttl, lens[argc++] = strlen(ttl);
	if (op->kind == LOCK_OP_ACQUIRE) {
		argv[argc] = limit, lens[argc++] = strlen(limit);
		argv[argc] = op->owner, lens[argc++] = strlen(op->owner);
	}
	int r = redis_command_argv(ri->rc, keys[0], klen[0], argc, argv, lens, reply_cb, op);
	if (r < 0)
		lock_op_done(op, r, NULL, 0);
}

static void redis_close(struct lock_store *s)
{
	struct redis_impl *ri = s->impl;
	redis_client_free(ri->rc);
	free(ri);
}

static const char *redis_last_error(const struct lock_store *s)
{
	const struct redis_impl *ri = s->impl;
	return redis_client_last_error(ri->rc);
}

static const struct lock_backend redis_backend = {"redis://", redis_start, redis_close, redis_last_error, NULL, NULL};

int lock_redis_open(struct lock_store *s)
{
	struct redis_impl *ri = calloc(1, sizeof *ri);
	if (!ri)
		return -ENOMEM;
	struct redis_options o;
	redis_options_init(&o);
	o.command_timeout_ms = s->opt.timeout_ms;
	o.connect_timeout_ms = s->opt.connect_timeout_ms;
	int r = redis_client_new(s->loop, &s->url, &o, &ri->rc);
	if (r < 0) {
		free(ri);
		return r;
	}
	s->impl = ri;
	s->be = &redis_backend;
	return 0;
}
