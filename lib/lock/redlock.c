/*
 * lock/redlock.c -- redlock://H:P,H:P,H:P: the Redlock algorithm over N
 * independent redis-servers (no replication between them), with a fence.
 *
 * Keys on each server are those of a redis:// mutex (lock/redis.c), so
 * `dsys-lock status --store redis://ONE-OF-THEM` reads one server's view:
 *
 *   dsys/locks/{NAME}         "TOKEN FENCE OWNER", SET NX PX
 *   dsys/locks/{NAME}/fence   that server's fence counter
 *
 * Acquire, in two rounds sent to every server at once:
 *   1. take: SET NX PX and INCR the fence counter, in one script.  t0 is
 *      taken before sending.  With a majority (N/2 + 1) of grants, the
 *      grant stands for  validity = TTL - elapsed - drift,  where drift =
 *      TTL/100 + 2 ms allows for the servers' clocks running at different
 *      rates; validity <= 0 is a failure.
 *   2. fence: F = the largest counter among the grants; every granting
 *      server raises its counter to at least F and writes F into the key's
 *      value (only while the key still holds our token).  A majority must
 *      confirm, within the validity.  Why: any two majorities share a
 *      server, whose counter the later grant INCRs past F -- so fences
 *      rise from one grant to the next, which the largest of one round's
 *      counters alone would not promise (a server outside the next
 *      majority may hold the largest).
 * A failed attempt releases on every server (a minority grant would
 * otherwise block others until its TTL).  Release and renew are sent to
 * every server: release succeeds when any server held the token; renew
 * (compare-and-PEXPIRE) needs a majority within the new validity.
 *
 * The limits (also in dsys-lock(1)): safety rests on the servers' clocks
 * advancing at about the same rate (the drift allowance) and on a server
 * that restarts without persistence staying down for a TTL (or an AOF
 * with fsync always); a process pause longer than the validity still lets
 * two holders believe they hold -- which is what the fence is for.  No
 * semaphores (--limit > 1 is refused with -EINVAL).
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

struct rl_impl {
	unsigned n;
	struct redis_client *rc[STORE_URL_MAX_HOSTS];
	char last_err[256];
};

enum rl_phase { RL_TAKE, RL_FENCE, RL_UNDO, RL_RENEW, RL_RELEASE, RL_STATUS };

struct rl_op {
	struct lock_op *op;
	enum rl_phase phase;
	unsigned pending, ok, busy, errs;
	int last_err;
	int final_err;
	uint64_t t0_ns;
	uint64_t fence;               /* max seen */
	bool granted[STORE_URL_MAX_HOSTS];
	/* status: each server's holder */
	char tokens[STORE_URL_MAX_HOSTS][LOCK_TOKEN_LEN + 1];
	struct lock_holder hs[STORE_URL_MAX_HOSTS];
	int64_t pttl[STORE_URL_MAX_HOSTS];
};

struct rl_req {
	struct rl_op *r;
	unsigned i;
};

static const char take_lua[] =
	"if redis.call('GET', KEYS[1]) then return 0 end\n"
	"redis.call('INCR', KEYS[2])\n"
	"local f = redis.call('GET', KEYS[2])\n"
	"redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. f .. ' ' .. ARGV[3], 'NX', 'PX', ARGV[2])\n"
	"return f\n";

/* ARGV: token, F, owner.  Raise the counter to F, write F into the value. */
static const char fence_lua[] =
	"local p = ARGV[1] .. ' '\n"
	"local v = redis.call('GET', KEYS[1])\n"
	"if not v or string.sub(v, 1, #p) ~= p then return 0 end\n"
	"local c = redis.call('GET', KEYS[2])\n"
	"if not c or #c < #ARGV[2] or (#c == #ARGV[2] and c < ARGV[2]) then\n"
	"  redis.call('SET', KEYS[2], ARGV[2])\n"
	"end\n"
	"redis.call('SET', KEYS[1], p .. ARGV[2] .. ' ' .. ARGV[3], 'KEEPTTL')\n"
	"return 1\n";

static const char renew_lua[] =
	"local p = ARGV[1] .. ' '\n"
	"local v = redis.call('GET', KEYS[1])\n"
	"if v and string.sub(v, 1, #p) == p then\n"
	"  redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
	"  return string.sub(v, #p + 1)\n"
	"end\n"
	"return 0\n";

static const char release_lua[] =
	"local p = ARGV[1] .. ' '\n"
	"local v = redis.call('GET', KEYS[1])\n"
	"if v and string.sub(v, 1, #p) == p then redis.call('DEL', KEYS[1]) return 1 end\n"
	"return 0\n";

static const char status_lua[] =
	"local v = redis.call('GET', KEYS[1])\n"
	"if not v then return 0 end\n"
	"return {v, redis.call('PTTL', KEYS[1])}\n";

static unsigned majority(const struct rl_impl *ri)
{
	return ri->n / 2 + 1;
}

static uint64_t drift_ms(uint64_t ttl_ms)
{
	return ttl_ms / 100 + 2;
}

/* "FENCE OWNER" into fence and owner. */
static int parse_rest(const char *s, size_t len, uint64_t *fence, char *owner, size_t osize)
{
	char text[64];
	size_t n = strcspn(s, " ");
	if (n >= sizeof text || n > len)
		return -EPROTO;
	memcpy(text, s, n);
	text[n] = '\0';
	if (parse_u64(text, fence) < 0)
		return -EPROTO;
	if (owner)
		snprintf(owner, osize, "%.*s", n < len ? (int)(len - n - 1) : 0, n < len ? s + n + 1 : "");
	return 0;
}

static void send_all(struct lock_store *s, struct rl_op *r, enum rl_phase phase);

static void finish(struct rl_op *r, int err, const struct lock_holder *h, unsigned n)
{
	struct lock_op *op = r->op;
	free(r);
	lock_op_done(op, err, h, n);
}

/* Failure of an attempt that may hold a minority: undo everywhere first. */
static void undo(struct lock_store *s, struct rl_op *r, int err)
{
	r->final_err = err;
	if (s->closing)
		return finish(r, err, NULL, 0);
	send_all(s, r, RL_UNDO);
}

static int fail_err(struct rl_op *r, struct rl_impl *ri)
{
	/* a majority out of reach: the store is unreachable; otherwise busy */
	if (r->errs > ri->n - majority(ri))
		return r->last_err ? r->last_err : -ECONNREFUSED;
	return -EBUSY;
}

static void round_done(struct lock_store *s, struct rl_op *r)
{
	struct rl_impl *ri = s->impl;
	struct lock_op *op = r->op;
	uint64_t elapsed_ms = (uv_hrtime() - r->t0_ns) / 1000000;
	uint64_t d = drift_ms(op->ttl_ms);
	bool valid = elapsed_ms + d < op->ttl_ms;
	if (s->closing && r->phase != RL_UNDO)
		return finish(r, -ECANCELED, NULL, 0);
	struct lock_holder h;
	memset(&h, 0, sizeof h);
	snprintf(h.name, sizeof h.name, "%s", op->name);
	snprintf(h.token, sizeof h.token, "%s", op->token);
	snprintf(h.owner, sizeof h.owner, "%s", op->owner);
	h.pid = -1;
	h.ttl_ms = op->ttl_ms;
	h.expires_ms = op->sent_ms + (op->ttl_ms > d ? op->ttl_ms - d : 0);
	switch (r->phase) {
	case RL_TAKE:
		if (r->ok >= majority(ri) && valid)
			return send_all(s, r, RL_FENCE);
		return undo(s, r, r->ok >= majority(ri) ? -EBUSY : fail_err(r, ri));
	case RL_FENCE:
		if (r->ok >= majority(ri) && valid) {
			h.fence = r->fence;
			return finish(r, 0, &h, 1);
		}
		return undo(s, r, r->ok >= majority(ri) ? -EBUSY : fail_err(r, ri));
	case RL_UNDO:
		return finish(r, r->final_err, NULL, 0);
	case RL_RENEW:
		if (r->ok >= majority(ri) && valid) {
			h.fence = r->fence;
			return finish(r, 0, &h, 1);
		}
		if (r->errs > ri->n - majority(ri))
			return finish(r, r->last_err ? r->last_err : -ECONNREFUSED, NULL, 0);
		return finish(r, -ENOENT, NULL, 0);
	case RL_RELEASE:
		if (r->ok > 0)
			return finish(r, 0, NULL, 0);
		if (r->errs > ri->n - majority(ri))
			return finish(r, r->last_err ? r->last_err : -ECONNREFUSED, NULL, 0);
		return finish(r, -ENOENT, NULL, 0);
	case RL_STATUS: {
		if (r->errs > ri->n - majority(ri))
			return finish(r, r->last_err ? r->last_err : -ECONNREFUSED, NULL, 0);
		/* a holder: a token that a majority agree on */
		for (unsigned i = 0; i < ri->n; i++) {
			if (!r->tokens[i][0])
				continue;
			unsigned votes = 0;
			int64_t min_pttl = INT64_MAX;
			uint64_t fence = 0;
			for (unsigned j = 0; j < ri->n; j++)
				if (!strcmp(r->tokens[i], r->tokens[j])) {
					votes++;
					if (r->pttl[j] < min_pttl)
						min_pttl = r->pttl[j];
					if (r->hs[j].fence > fence)
						fence = r->hs[j].fence;
				}
			if (votes >= majority(ri)) {
				struct lock_holder g = r->hs[i];
				snprintf(g.name, sizeof g.name, "%s", op->name);
				g.fence = fence;
				g.pid = -1;
				g.ttl_ms = min_pttl > 0 ? (uint64_t)min_pttl : 0;
				g.expires_ms = op->sent_ms + g.ttl_ms;
				return finish(r, 0, &g, 1);
			}
		}
		return finish(r, 0, NULL, 0);
	}
	}
	INVARIANT(0);
}

static void reply_cb(void *ud, const struct redisReply *rep, int err)
{
	struct rl_req q = *(struct rl_req *)ud;
	free(ud);
	struct rl_op *r = q.r;
	struct lock_store *s = r->op->store;
	struct rl_impl *ri = s->impl;
	if (err < 0) {
		r->errs++;
		r->last_err = err;
		const char *why = redis_client_last_error(ri->rc[q.i]);
		if (*why)
			snprintf(ri->last_err, sizeof ri->last_err, "%s", why);
	} else if (rep->type == REDIS_REPLY_ERROR) {
		r->errs++;
		r->last_err = -EPROTO;
	} else {
		uint64_t f = 0;
		switch (r->phase) {
		case RL_TAKE:
			if (rep->type == REDIS_REPLY_STRING && parse_u64(rep->str, &f) == 0) {
				r->ok++;
				r->granted[q.i] = true;
				if (f > r->fence)
					r->fence = f;
			} else {
				r->busy++;
			}
			break;
		case RL_FENCE:
		case RL_RELEASE:
		case RL_UNDO:
			if (rep->type == REDIS_REPLY_INTEGER && rep->integer == 1)
				r->ok++;
			break;
		case RL_RENEW:
			if (rep->type == REDIS_REPLY_STRING &&
			    parse_rest(rep->str, rep->len, &f, NULL, 0) == 0) {
				r->ok++;
				if (f > r->fence)
					r->fence = f;
				if (!r->op->owner[0])
					parse_rest(rep->str, rep->len, &f, r->op->owner, sizeof r->op->owner);
			}
			break;
		case RL_STATUS:
			if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
			    rep->element[0]->type == REDIS_REPLY_STRING &&
			    rep->element[1]->type == REDIS_REPLY_INTEGER &&
			    rep->element[0]->len > LOCK_TOKEN_LEN + 1 &&
			    parse_rest(rep->element[0]->str + LOCK_TOKEN_LEN + 1,
			               rep->element[0]->len - LOCK_TOKEN_LEN - 1, &r->hs[q.i].fence,
			               r->hs[q.i].owner, sizeof r->hs[q.i].owner) == 0) {
				memcpy(r->tokens[q.i], rep->element[0]->str, LOCK_TOKEN_LEN);
				r->tokens[q.i][LOCK_TOKEN_LEN] = '\0';
				memcpy(r->hs[q.i].token, r->tokens[q.i], sizeof r->tokens[q.i]);
				r->pttl[q.i] = rep->element[1]->integer;
			}
			r->ok++;
			break;
		}
	}
	INVARIANT(r->pending > 0);
	if (--r->pending == 0)
		round_done(s, r);
}

static void send_all(struct lock_store *s, struct rl_op *r, enum rl_phase phase)
{
	struct rl_impl *ri = s->impl;
	struct lock_op *op = r->op;
	r->phase = phase;
	r->ok = r->busy = r->errs = 0;
	char key[LOCK_MAX_NAME + 32], fkey[LOCK_MAX_NAME + 40];
	size_t klen = (size_t)snprintf(key, sizeof key, "dsys/%s/{%s}",
	                               s->opt.election ? "elections" : "locks", op->name);
	size_t flen = (size_t)snprintf(fkey, sizeof fkey, "%s/fence", key);
	char ttl[24], fence[24];
	snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)op->ttl_ms);
	snprintf(fence, sizeof fence, "%llu", (unsigned long long)r->fence);
	const char *script = phase == RL_TAKE ? take_lua : phase == RL_FENCE ? fence_lua
	                   : phase == RL_RENEW ? renew_lua : phase == RL_STATUS ? status_lua
	                                                                        : release_lua;
	const char *argv[8];
	size_t lens[8];
	int argc = 0;
	argv[argc] = "EVAL", lens[argc++] = 4;
	argv[argc] = script, lens[argc++] = strlen(script);
	argv[argc] = "2", lens[argc++] = 1;
	argv[argc] = key, lens[argc++] = klen;
	argv[argc] = fkey, lens[argc++] = flen;
	if (phase != RL_STATUS)
		argv[argc] = op->token, lens[argc++] = strlen(op->token);
	if (phase == RL_TAKE || phase == RL_RENEW)
		argv[argc] = ttl, lens[argc++] = strlen(ttl);
	if (phase == RL_FENCE)
		argv[argc] = fence, lens[argc++] = strlen(fence);
	if (phase == RL_TAKE || phase == RL_FENCE)
		argv[argc] = op->owner, lens[argc++] = strlen(op->owner);
	/* take's ARGV[3] is the owner: ttl is ARGV[2] */
	r->pending = 1;   /* held while sending, so no round ends inside this loop */
	for (unsigned i = 0; i < ri->n; i++) {
		if (phase == RL_FENCE && !r->granted[i])
			continue;
		struct rl_req *q = malloc(sizeof *q);
		int rc = q ? redis_command_argv(ri->rc[i], key, klen, argc, argv, lens, reply_cb, q) : -ENOMEM;
		if (rc < 0) {
			free(q);
			r->errs++;
			r->last_err = rc;
			continue;
		}
		q->r = r;
		q->i = i;
		r->pending++;
	}
	if (--r->pending == 0)
		round_done(s, r);
}

static void rl_start(struct lock_store *s, struct lock_op *op)
{
	if (op->name[0] == '}' || (op->kind == LOCK_OP_ACQUIRE && op->limit != 1))
		return lock_op_done(op, -EINVAL, NULL, 0);
	struct rl_op *r = calloc(1, sizeof *r);
	if (!r)
		return lock_op_done(op, -ENOMEM, NULL, 0);
	r->op = op;
	r->t0_ns = uv_hrtime();
	if (op->kind == LOCK_OP_RENEW)
		op->owner[0] = '\0';
	send_all(s, r, op->kind == LOCK_OP_ACQUIRE ? RL_TAKE : op->kind == LOCK_OP_RENEW ? RL_RENEW
	               : op->kind == LOCK_OP_RELEASE ? RL_RELEASE : RL_STATUS);
}

static void rl_close(struct lock_store *s)
{
	struct rl_impl *ri = s->impl;
	for (unsigned i = 0; i < ri->n; i++)
		redis_client_free(ri->rc[i]);
	free(ri);
}

static const char *rl_last_error(const struct lock_store *s)
{
	const struct rl_impl *ri = s->impl;
	return ri->last_err;
}

static const struct lock_backend redlock_backend = {"redlock://", rl_start, rl_close, rl_last_error,
                                                    NULL, NULL};

int lock_redlock_open(struct lock_store *s)
{
	struct rl_impl *ri = calloc(1, sizeof *ri);
	if (!ri)
		return -ENOMEM;
	struct redis_options o;
	redis_options_init(&o);
	o.command_timeout_ms = s->opt.timeout_ms;
	o.connect_timeout_ms = s->opt.connect_timeout_ms;
	for (unsigned i = 0; i < s->url.n_hosts && i < STORE_URL_MAX_HOSTS; i++) {
		struct store_url one = s->url;
		one.kind = STORE_REDIS;
		one.hosts[0] = s->url.hosts[i];
		one.n_hosts = 1;
		int r = redis_client_new(s->loop, &one, &o, &ri->rc[i]);
		if (r < 0) {
			for (unsigned j = 0; j < i; j++)
				redis_client_free(ri->rc[j]);
			free(ri);
			return r;
		}
		ri->n = i + 1;
	}
	if (ri->n == 0) {
		free(ri);
		return -EINVAL;
	}
	s->impl = ri;
	s->be = &redlock_backend;
	return 0;
}
