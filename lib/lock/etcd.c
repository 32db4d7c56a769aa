/*
 * lock/etcd.c -- etcd://H:P,..., through store/etcd: locks and elections
 * laid out as etcd's own `concurrency` package lays them, so that etcdctl
 * lock / etcdctl elect and dsys-lock exclude each other.
 *
 * Keys.  A name's contenders each hold one key under a prefix:
 *
 *   dsys/locks/NAME/LEASE        a lock or semaphore (LEASE: the
 *                                contender's lease id, "%x" as etcd prints it)
 *   dsys/elections/NAME/LEASE    an election (lock_options.election)
 *
 * Each key is attached to its contender's lease, so it vanishes when the
 * lease is revoked or expires.  The contenders queue in the order of their
 * keys' create revisions: the `limit` lowest hold the lock (1: the lowest,
 * which is what etcdctl lock and the concurrency Mutex take), the others
 * wait.  A lock key's value is "TOKEN LIMIT OWNER"; an election key's value
 * is the candidate's value, raw, as etcdctl elect writes it (etcdctl's
 * lock keys have an empty value: a holder with no token, limit 1).
 *
 * The recipe (our own code after etcd's mutex.go and election.go):
 *   1. grant a lease of the TTL (whole seconds, rounded up; etcd may raise
 *      it to its minimum TTL, and the grant reports what it gave), with an
 *      id of our own choosing (63 bits from getrandom), and
 *   2. in the same write, without waiting for the grant's answer (one round
 *      trip, not two), one txn: if create_revision(KEY) == 0 then put KEY
 *      with the lease; in both branches range the prefix.  The txn goes
 *      out first and the grant right behind it: etcd 3.4's gRPC server
 *      starts a goroutine per stream, and Go's scheduler runs the one
 *      made ready last first, so the stream sent second is proposed
 *      first.  Measured on a 3-node etcd 3.4.23 on one CPU, 200 acquires
 *      each: sent grant first, 193-198 txns were applied before their
 *      grant; txn first, 0-3.  The order is a likelihood, not a promise
 *      (several CPUs, a forwarding follower), so every order is handled:
 *      a txn applied before the grant finds no lease ("requested lease not
 *      found"), changes nothing, and is sent again once the grant has
 *      answered -- the two round trips of granting first, no more; a txn
 *      that made us a holder before the grant's answer came waits for it
 *      (the TTL granted is in it).  The txn is idempotent (the key is
 *      named by the lease), so when its outcome is unknown (the etcd
 *      leader died with it in flight) it is simply sent again.  If the
 *      grant finds the id taken ("lease already exists", once in 2^63, or
 *      forced by DSYS_TEST_ETCD_LEASE_ID in tests), that lease is someone
 *      else's: it is never revoked; once the txn has answered, KEY is
 *      deleted only if its value is still ours (the token's random half
 *      is ours alone: an existing key of that lease, e.g. etcdctl's, is
 *      left alone), and the acquire starts again with a fresh id;
 *   3. sort the prefix by create revision; among the `limit` lowest: held,
 *      and the fence is the key's create revision (etcd's revisions only
 *      grow, so a later holder always has a higher one);
 *   4. otherwise wait without polling: a mutex watches the key just ahead
 *      of ours (no thundering herd: one deletion wakes one waiter); a
 *      semaphore watches the prefix for deletions.  On a deletion, range
 *      the prefix again and go to 3.  While waiting, the lease is kept
 *      alive every third of its TTL, and the wait deadline revokes it.
 *
 * A token is the lease id (16 hex digits) and 16 random ones: renew and
 * release find the key from it, and act only when the key is attached to
 * that lease and (for a lock) its value starts with the whole token.
 * Renew is a keepalive of the lease, which restores the TTL granted.
 * etcd cannot change a lease's TTL, so a renew asking for another one
 * grants a new lease and moves the key onto it in one txn: delete the old
 * key, put the new one (so the token, lease and fence change), guarded on
 * the old key's mod revision and on no key under the prefix being younger
 * than it -- with a contender queued behind, the move would put us behind
 * it, so the renew fails (-ENOTEMPTY) instead.  Release revokes the lease,
 * which deletes the key in the same step; a token this store granted
 * itself (run's, elect's) is revoked without first reading the key.
 *
 * Every give-up path revokes the lease before the operation ends, so a
 * --nowait miss or a wait that timed out leaves no key queued in front of
 * later waiters; while a grant or acquire txn is in flight the revoke
 * waits for their answers, so that neither can make the key after it.
 *
 * Several things can be in flight for one waiting op (a keepalive, a
 * range, the watch); each holds a reference on the op's record, which is
 * freed when the last one has called back and its timer is closed.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "base/buf.h"
#include "base/invariant.h"
#include "lock/backend.h"
#include "store/etcd.h"

#define KA_RETRY_MS 200        /* keepalive retry after a failed one */
#define MAX_TXN_TRIES 5        /* an idempotent txn resent after unknown outcomes */

#define OWN_GRANTS 8

struct eimpl {
	struct etcd_client *c;
	char last_err[256];
	struct eop *ops;           /* records not finished yet */
	/* tokens this process was granted (the last few): their release
	 * revokes the lease at once, without first reading the key to check
	 * the token, since nobody else could have named our lease */
	char own[OWN_GRANTS][LOCK_TOKEN_LEN + 1];
	unsigned own_next;
	int64_t test_lease;        /* DSYS_TEST_ETCD_LEASE_ID: the next acquire's id */
	/* DSYS_TEST_ETCD_ACQUIRE (tests only): make the orders that etcd makes
	 * now and then happen every time -- "grant-late": the grant is sent
	 * when the txn has answered (so the txn finds no lease); "answer-late":
	 * the txn is sent when the grant has answered, and the grant's answer
	 * is taken after the txn's (so the txn makes us a holder first) */
	bool test_grant_late, test_answer_late;
};

struct eop {
	struct lock_op *op;        /* NULL once finished */
	struct lock_store *s;
	int refs;                  /* calls in flight + the timer + "not finished" */
	int64_t lease;
	int64_t ttl_s;             /* granted */
	int64_t my_rev;
	char prefix[LOCK_MAX_NAME + 32];
	char key[LOCK_MAX_NAME + 64];
	struct buf value;
	struct etcd_watch *w;
	bool rerange;              /* a deletion seen: range again */
	bool ka_inflight, range_inflight;
	uint64_t ka_due_ns;
	uint64_t ka_sent_ms;       /* Unix ms the keepalive in flight was sent */
	uint64_t lease_from_ms;    /* Unix ms from which the lease's TTL surely
	                              runs: the send of the grant or of the
	                              last confirmed keepalive */
	unsigned txn_tries;
	char rnd[17];              /* the token's random half (acquire) */
	bool grant_inflight, txn_inflight;
	bool txn_again;            /* send the txn again once the grant is in */
	bool held_early;           /* the txn made us a holder before the grant's answer came */
	bool granted;              /* the grant of e->lease answered OK (acquire) */
	struct buf grant_body;     /* test_grant_late: the grant, sent when the txn answers */
	bool late_grant;           /* test_answer_late: the grant's answer, kept below */
	int late_err;
	int64_t late_lease, late_ttl;
	bool collided;             /* the grant found the id taken: undo, retry */
	bool revoke_deferred;      /* giving up: revoke once grant and txn answered */
	int final_err;             /* kept while the lease is revoked */
	bool giving_up;            /* revoking: nothing else may act */
	/* renew with another TTL: the key moves from the old lease */
	int64_t old_lease, old_mod, old_ttl_s;
	char old_key[LOCK_MAX_NAME + 64];
	char new_token[LOCK_TOKEN_LEN + 1];
	struct buf value_tail;     /* the key's value after the token */
	struct lock_holder *hs;    /* status */
	unsigned n_hs, ttl_next;
	uv_timer_t timer;
	struct eop *prev, *next;
};

static void op_step_timer(struct eop *e);
static void timer_cb(uv_timer_t *t);
static void revoked_cb(struct eop *e, int err, const struct etcd_resp *r);
static void acquire_txn(struct eop *e);
static void grant_cb(struct eop *e, int err, const struct etcd_resp *r);
static void txn_cb(struct eop *e, int err, const struct etcd_resp *r);
static void undo_cb(struct eop *e, int err, const struct etcd_resp *r);
static void undo_collision(struct eop *e);
static void revoke_and_finish(struct eop *e);

/* ------------------------------------------------------------ plumbing */

static void eop_close_cb(uv_handle_t *h)
{
	struct eop *e = h->data;
	buf_free(&e->value);
	buf_free(&e->value_tail);
	buf_free(&e->grant_body);
	free(e->hs);
	free(e);
}

static void eop_unref(struct eop *e)
{
	INVARIANT(e->refs > 0);
	if (--e->refs == 0)
		uv_close((uv_handle_t *)&e->timer, eop_close_cb);
}

static int map_err(struct eimpl *im, int err, const struct etcd_resp *r)
{
	static struct eimpl scratch;
	if (!im)
		im = &scratch;
	switch (err) {
	case 0:
		return 0;
	case ETCD_E_UNREACHABLE:
		snprintf(im->last_err, sizeof im->last_err, "%s", etcd_strerror(err));
		return -ECONNREFUSED;
	case ETCD_E_TIMEOUT:
		snprintf(im->last_err, sizeof im->last_err, "%s", etcd_strerror(err));
		return -ETIMEDOUT;
	case ETCD_E_PROTOCOL:
		return -EPROTO;
	case ETCD_E_SERVER:
		snprintf(im->last_err, sizeof im->last_err, "etcd: %s",
		         r && r->error_message ? r->error_message : "error");
		if (r && r->error_code == 5)       /* NOT_FOUND: "requested lease not found" */
			return -ENOENT;
		if (r && r->error_code == 9 && r->error_message &&   /* FAILED_PRECONDITION */
		    strstr(r->error_message, "lease already exists"))
			return -EEXIST;
		if (r && (r->error_code == 14 || r->error_code == 4))   /* unavailable, deadline */
			return -ETIMEDOUT;
		return -EIO;
	}
	return err < 0 ? err : -EIO;
}

/* The op's one callback; the record lives on while calls are in flight. */
static void finish(struct eop *e, int err, const struct lock_holder *h, unsigned n)
{
	struct lock_op *op = e->op;
	if (!op)
		return;
	struct eimpl *im = e->s->impl;
	e->op = NULL;
	if (e->prev)
		e->prev->next = e->next;
	else
		im->ops = e->next;
	if (e->next)
		e->next->prev = e->prev;
	if (e->w) {
		etcd_watch_stop(e->w);
		e->w = NULL;
	}
	uv_timer_stop(&e->timer);
	lock_op_done(op, err, h, n);
	eop_unref(e);
}

static void fill_holder(struct eop *e, struct lock_holder *h, uint64_t fence, uint64_t ttl_ms)
{
	struct lock_op *op = e->op;
	memset(h, 0, sizeof *h);
	snprintf(h->name, sizeof h->name, "%s", op->name);
	snprintf(h->token, sizeof h->token, "%s", op->token);
	snprintf(h->owner, sizeof h->owner, "%s", op->owner);
	snprintf(h->lease, sizeof h->lease, "%016llx", (unsigned long long)e->lease);
	h->fence = fence;
	h->ttl_ms = ttl_ms;
	h->expires_ms = (e->lease_from_ms ? e->lease_from_ms : op->sent_ms) + ttl_ms;
	h->pid = -1;
}

typedef void (*step_fn)(struct eop *e, int err, const struct etcd_resp *r);

struct call_ctx {
	struct eop *e;
	step_fn fn;
	int64_t lease;             /* e->lease when the call was made */
};

static void deliver(struct eop *e, step_fn fn, int64_t lease, int merr, const struct etcd_resp *r);
static void give_up_cleanup(struct eop *e);
static void ka_cb(struct eop *e, int err, const struct etcd_resp *r);
static void range_cb(struct eop *e, int err, const struct etcd_resp *r);
static int send_txn(struct eop *e);

static void call_cb(void *ud, int err, const struct etcd_resp *r)
{
	struct call_ctx cc = *(struct call_ctx *)ud;
	free(ud);
	struct eimpl *im = cc.e->s->impl;
	struct eop *e = cc.e;
	/* answers that come once the op is giving up (the grant or txn it
	 * waited for, the revoke or undo it sent: a lease never granted
	 * answers "lease not found") must not replace the error the user is
	 * told about */
	bool cleanup = e->giving_up || cc.fn == revoked_cb || cc.fn == undo_cb;
	int merr = err == 0 ? 0 : map_err(cleanup ? NULL : im, err, r);
	if (im->test_answer_late && cc.fn == grant_cb && e->op && !e->giving_up && !e->txn_inflight) {
		/* granted (applied first): keep the answer, send the txn, and
		 * take the answer after the txn's, below */
		e->late_grant = true;
		e->late_err = merr;
		e->late_lease = r ? r->lease_id : 0;
		e->late_ttl = r ? r->ttl : 0;
		int sr = send_txn(e);
		if (sr < 0) {
			e->late_grant = false;
			deliver(e, grant_cb, cc.lease, merr, r);
		}
		return eop_unref(e);
	}
	deliver(e, cc.fn, cc.lease, merr, r);
	if (cc.fn == txn_cb && e->late_grant) {
		e->late_grant = false;
		struct etcd_resp late = {.lease_id = e->late_lease, .ttl = e->late_ttl};
		if (e->op)
			deliver(e, grant_cb, e->lease, e->late_err, &late);
		else
			e->grant_inflight = false;
	}
	eop_unref(e);
}

/* An answer to fn's call, its error mapped: the bookkeeping of the
 * acquire's grant and txn, then fn, unless the op is over. */
static void deliver(struct eop *e, step_fn fn, int64_t lease, int merr, const struct etcd_resp *r)
{
	struct call_ctx cc = {e, fn, lease};
	if ((fn == ka_cb || fn == range_cb) && lease != e->lease) {
		/* about a lease this acquire has already left behind (it was lost,
		 * and a new one is being granted): its answer says nothing now */
		if (fn == ka_cb)
			e->ka_inflight = false;
		else
			e->range_inflight = false;
		return;
	}
	if (cc.fn == grant_cb) {
		e->grant_inflight = false;
		if (merr == 0 && r && r->lease_id == e->lease)
			e->granted = true;
		if (merr == -EEXIST && e->op) {
			/* never revoke the lease of whoever has this id */
			e->lease = 0;
			e->collided = true;
		}
	}
	if (cc.fn == txn_cb)
		e->txn_inflight = false;
	if (e->op && e->giving_up && e->revoke_deferred) {
		if (!e->grant_inflight && !e->txn_inflight) {
			e->revoke_deferred = false;
			give_up_cleanup(e);
		}
	} else if (e->op && (!e->giving_up || cc.fn == revoked_cb || cc.fn == undo_cb)) {
		cc.fn(e, merr, r);
	}
}

/* Post body to path; fn gets the mapped error and etcd's answer. */
static int call(struct eop *e, const char *path, struct buf *body, step_fn fn)
{
	struct eimpl *im = e->s->impl;
	struct call_ctx *cc = malloc(sizeof *cc);
	if (!cc) {
		buf_free(body);
		return -ENOMEM;
	}
	cc->e = e;
	cc->fn = fn;
	cc->lease = e->lease;
	int r = etcd_call(im->c, path, body->data, body->len, call_cb, cc);
	buf_free(body);
	if (r < 0) {
		free(cc);
		return map_err(im, r, NULL);
	}
	e->refs++;
	return 0;
}

/* Revoke the lease, then end with err (the lease's key goes with it). */
static void revoked_cb(struct eop *e, int err, const struct etcd_resp *r)
{
	(void)err;
	(void)r;
	finish(e, e->final_err, NULL, 0);
}

static void give_up(struct eop *e, int err)
{
	if (e->w) {
		etcd_watch_stop(e->w);
		e->w = NULL;
	}
	uv_timer_stop(&e->timer);
	if ((e->lease == 0 && !e->collided) || e->s->closing || err == -ECANCELED)
		return finish(e, err, NULL, 0);
	e->final_err = err;
	e->giving_up = true;
	if (e->grant_body.len) {
		/* test_grant_late: the grant was held back, never sent */
		buf_free(&e->grant_body);
		buf_init(&e->grant_body);
		e->grant_inflight = false;
	}
	if (e->grant_inflight || e->txn_inflight) {
		/* a grant or txn in flight could still make the key after a
		 * revoke sent now: clean up once both have answered (deliver) */
		e->revoke_deferred = true;
		return;
	}
	give_up_cleanup(e);
}

/* Giving up, nothing of the acquire in flight: revoke the lease, which
 * deletes our key with it -- but only a lease we know is ours.  One whose
 * grant failed or never answered may be someone else's (the id taken,
 * "lease already exists", or an answer lost): never revoke it; delete our
 * key only while it holds our value, and let the lease lapse. */
static void give_up_cleanup(struct eop *e)
{
	if (e->collided || (e->op->kind == LOCK_OP_ACQUIRE && e->lease && !e->granted)) {
		e->collided = true;
		return undo_collision(e);
	}
	revoke_and_finish(e);
}

static void revoke_and_finish(struct eop *e)
{
	int err = e->final_err;
	if (e->lease == 0)
		return finish(e, err, NULL, 0);
	struct buf b = BUF_INIT;
	etcd_req_lease_revoke(&b, e->lease);
	int lease_id_gone = call(e, ETCD_PATH_REVOKE, &b, revoked_cb);
	e->lease = 0;
	if (lease_id_gone < 0)
		finish(e, err, NULL, 0);
}

static void make_prefix(struct eop *e, const char *name)
{
	snprintf(e->prefix, sizeof e->prefix, "dsys/%s/%s/",
	         e->s->opt.election ? "elections" : "locks", name);
}

static void make_key(struct eop *e)
{
	snprintf(e->key, sizeof e->key, "%s%llx", e->prefix, (unsigned long long)e->lease);
}

/* The lease id in a token's first 16 hex digits; 0 when it is not one. */
static int64_t token_lease(const char *token)
{
	uint64_t v = 0;
	for (int i = 0; i < 16; i++) {
		char c = token[i];
		v = v * 16 + (uint64_t)(c <= '9' ? c - '0' : c - 'a' + 10);
	}
	return v > INT64_MAX ? 0 : (int64_t)v;
}

/* A prefix's keys in queue order: by create revision (qsort on copies of
 * the pointers; the kvs belong to the answer). */
static int by_create(const void *a, const void *b)
{
	const struct etcd_kv *x = *(struct etcd_kv *const *)a, *y = *(struct etcd_kv *const *)b;
	return x->create_revision < y->create_revision ? -1 : x->create_revision > y->create_revision;
}

static struct etcd_kv **sorted(const struct etcd_kv *kvs, size_t n)
{
	struct etcd_kv **v = malloc((n ? n : 1) * sizeof *v);
	if (!v)
		return NULL;
	for (size_t i = 0; i < n; i++)
		v[i] = (struct etcd_kv *)&kvs[i];
	qsort(v, n, sizeof *v, by_create);
	return v;
}

/* A key's limit from its value "TOKEN LIMIT OWNER": 1 for anything else
 * (etcdctl's empty values, election values). */
static unsigned value_limit(const struct eop *e, const struct etcd_kv *kv)
{
	if (e->s->opt.election || kv->value_len < LOCK_TOKEN_LEN + 2 || kv->value[LOCK_TOKEN_LEN] != ' ')
		return 1;
	unsigned v = 0;
	for (size_t i = LOCK_TOKEN_LEN + 1; i < kv->value_len && kv->value[i] >= '0' && kv->value[i] <= '9'; i++)
		v = v < 100000 ? v * 10 + (unsigned)(kv->value[i] - '0') : v;
	return v >= 1 && v <= LOCK_MAX_LIMIT ? v : 1;
}

/* ------------------------------------------------------------ acquire */

static void watch_cb(void *ud, int err, const struct etcd_watch_msg *m)
{
	struct eop *e = ud;
	if (err < 0) {
		e->w = NULL;   /* ended: must not be stopped again */
		if (e->op)
			give_up(e, map_err(e->s->impl, err, NULL));
		return;
	}
	for (size_t i = 0; i < m->n_events; i++)
		if (m->events[i].is_delete)
			e->rerange = true;
	if (e->rerange && !e->giving_up)   /* not from inside the stream's callback: the timer */
		uv_timer_start(&e->timer, timer_cb, 0, 0);
}

/* The acquire is done: our key (create revision e->my_rev, the fence) is
 * among the first `limit`, under a lease of e->ttl_s. */
static void held(struct eop *e)
{
	struct lock_holder h;
	fill_holder(e, &h, (uint64_t)e->my_rev, (uint64_t)e->ttl_s * 1000);
	struct eimpl *im = e->s->impl;
	memcpy(im->own[im->own_next++ % OWN_GRANTS], e->op->token, LOCK_TOKEN_LEN + 1);
	finish(e, 0, &h, 1);
}

/* Whether our key is among the first `limit` of kvs by create revision
 * (then *rev is its create revision). */
static bool among_first(struct eop *e, const struct etcd_kv *kvs, size_t n, int64_t *rev)
{
	size_t before = 0;
	const struct etcd_kv *mine = NULL;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(kvs[i].key, e->key))
			mine = &kvs[i];
	if (!mine)
		return false;
	for (size_t i = 0; i < n; i++)
		if (&kvs[i] != mine && kvs[i].create_revision < mine->create_revision)
			before++;
	*rev = mine->create_revision;
	return before < e->op->limit;
}

static void evaluate(struct eop *e, const struct etcd_kv *kvs, size_t n, int64_t header_rev)
{
	struct lock_op *op = e->op;
	struct etcd_kv **v = sorted(kvs, n);
	if (!v)
		return give_up(e, -ENOMEM);
	size_t idx = n;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i]->key, e->key))
			idx = i;
	if (idx == n) {
		/* our key is gone: the lease was revoked or expired while we
		 * waited.  Queue again from the start, with a new lease. */
		free(v);
		e->lease = 0;
		e->txn_tries = 0;
		if (e->w) {
			etcd_watch_stop(e->w);
			e->w = NULL;
		}
		return op_step_timer(e);
	}
	e->my_rev = v[idx]->create_revision;
	if (idx < op->limit) {
		free(v);
		return held(e);
	}
	if (!op->wait) {
		free(v);
		return give_up(e, -EBUSY);
	}
	if (!e->w) {
		struct etcd_range r;
		if (op->limit == 1) {
			/* the key just ahead of ours; when it goes, look again */
			r = (struct etcd_range){v[idx - 1]->key, v[idx - 1]->key_len, NULL, 0, false};
		} else {
			r = (struct etcd_range){e->prefix, strlen(e->prefix), NULL, 0, true};
		}
		e->w = etcd_watch_start(((struct eimpl *)e->s->impl)->c, &r, header_rev + 1, false,
		                        watch_cb, e);
		if (!e->w) {
			free(v);
			return give_up(e, -ENOMEM);
		}
	}
	free(v);
	op_step_timer(e);   /* arm keepalive / deadline */
}

static void range_cb(struct eop *e, int err, const struct etcd_resp *r)
{
	e->range_inflight = false;
	if (err)
		return give_up(e, err);
	evaluate(e, r->kvs, r->n_kvs, r->revision);
}

static void send_grant(struct eop *e, struct buf *b);

static void txn_cb(struct eop *e, int err, const struct etcd_resp *r)
{
	if (e->grant_body.len) {   /* test_grant_late */
		struct buf b = e->grant_body;
		buf_init(&e->grant_body);
		send_grant(e, &b);
		if (!e->op || e->giving_up)
			return;
	}
	if (e->collided)
		return undo_collision(e);   /* whatever the txn did with the id */
	if (e->grant_inflight) {
		/* answered before the grant's answer came.  If it made us a
		 * holder, the grant was applied first: wait for its answer (the
		 * TTL).  If it was applied before the grant ("requested lease not
		 * found": nothing changed), or left us queued (the watch needs
		 * the TTL's keepalive too), send it again, idempotent, once the
		 * grant is in. */
		if (err == 0) {
			const struct etcd_resp *rr = NULL;
			for (size_t i = 0; i < r->n_responses; i++)
				if (r->response_kinds[i] == ETCD_OP_RANGE)
					rr = &r->responses[i];
			int64_t rev;
			if (rr && among_first(e, rr->kvs, rr->n_kvs, &rev)) {
				e->my_rev = rev;
				e->held_early = true;   /* grant_cb finishes */
				return;
			}
		}
		if (err == 0 || err == -ENOENT || err == -ETIMEDOUT || err == -ECONNRESET) {
			e->txn_again = true;
			return;
		}
		return give_up(e, err);
	}
	if (err == -ENOENT && ++e->txn_tries < MAX_TXN_TRIES)
		return acquire_txn(e);   /* applied before the grant, answered after it */
	if ((err == -ETIMEDOUT || err == -ECONNRESET) && ++e->txn_tries < MAX_TXN_TRIES &&
	    uv_hrtime() < e->op->deadline_ns)
		return acquire_txn(e);   /* outcome unknown: the txn is idempotent */
	if (err)
		return give_up(e, err);
	const struct etcd_resp *rr = NULL;
	for (size_t i = 0; i < r->n_responses; i++)
		if (r->response_kinds[i] == ETCD_OP_RANGE)
			rr = &r->responses[i];
	if (!rr)
		return give_up(e, -EPROTO);
	evaluate(e, rr->kvs, rr->n_kvs, r->revision);
}

static int send_txn(struct eop *e)
{
	struct etcd_compare cmp = {.key = e->key, .key_len = strlen(e->key), .target = ETCD_CREATE, .result = ETCD_EQUAL};
	struct etcd_op range = {.kind = ETCD_OP_RANGE, .r = {e->prefix, strlen(e->prefix), NULL, 0, true}};
	struct etcd_op ok[2] = {
		{.kind = ETCD_OP_PUT, .r = {e->key, strlen(e->key), NULL, 0, false},
		 .value = e->value.data ? e->value.data : "", .value_len = e->value.len, .lease = e->lease},
		range,
	};
	struct buf b = BUF_INIT;
	etcd_req_txn(&b, &cmp, 1, ok, 2, &range, 1);
	int r = call(e, ETCD_PATH_TXN, &b, txn_cb);
	if (r == 0)
		e->txn_inflight = true;
	return r;
}

static void acquire_txn(struct eop *e)
{
	int r = send_txn(e);
	if (r < 0)
		give_up(e, r);
}

static void grant_cb(struct eop *e, int err, const struct etcd_resp *r)
{
	if (e->collided) {   /* call_cb saw "lease already exists" */
		if (!e->txn_inflight)
			undo_collision(e);
		return;
	}
	if (err)
		return give_up(e, err);
	if (r->lease_id != e->lease || r->ttl <= 0)
		return give_up(e, -EPROTO);
	e->ttl_s = r->ttl;
	uv_update_time(e->s->loop);
	e->ka_due_ns = uv_hrtime() + (uint64_t)e->ttl_s * 1000000000ull / 3;
	if (e->held_early) {
		e->held_early = false;
		return held(e);
	}
	if (e->txn_again) {
		e->txn_again = false;
		acquire_txn(e);
	}
	/* else the txn is in flight, and txn_cb goes on */
}

/* A lease id of our own choosing, from getrandom: 63 bits, so that the
 * grant and the txn naming it go out together (one round trip, not two).
 * DSYS_TEST_ETCD_LEASE_ID (tests only) forces the next one, to make the
 * collision that getrandom makes once in 2^63. */
static int64_t new_lease_id(struct eop *e)
{
	struct eimpl *im = e->s->impl;
	if (im->test_lease > 0) {
		int64_t id = im->test_lease;
		im->test_lease = 0;
		return id;
	}
	uint64_t v = 0;
	while ((v & INT64_MAX) == 0)
		if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v)
			v = ((uint64_t)lock_now_ms() << 20) ^ uv_hrtime();   /* cannot happen on Linux >= 3.17 */
	return (int64_t)(v & INT64_MAX);
}

/* Grant a lease of our own id and, without waiting for its answer, the
 * acquire txn naming it; grant_cb and txn_cb meet (see the header). */
static void start_grant(struct eop *e)
{
	struct lock_op *op = e->op;
	struct buf b = BUF_INIT;
	int64_t ttl_s = (int64_t)((op->ttl_ms + 999) / 1000);
	e->txn_again = e->collided = e->held_early = e->granted = false;
	e->txn_tries = 0;
	e->lease = new_lease_id(e);
	/* the token: the lease, then 64 of the random bits lock.c made */
	snprintf(op->token, sizeof op->token, "%016llx%s", (unsigned long long)e->lease, e->rnd);
	make_key(e);
	buf_reset(&e->value);
	if (e->s->opt.election) {
		buf_append(&e->value, op->owner, strlen(op->owner));
	} else {
		char head[64];
		int n = snprintf(head, sizeof head, "%s %u ", op->token, op->limit);
		buf_append(&e->value, head, (size_t)n);
		buf_append(&e->value, op->owner, strlen(op->owner));
	}
	e->lease_from_ms = lock_now_ms();
	etcd_req_lease_grant(&b, ttl_s, e->lease);
	/* the txn first, the grant right behind it in the same write: see the
	 * header for why this order */
	struct eimpl *im = e->s->impl;
	if (im->test_answer_late)
		return send_grant(e, &b);   /* the txn follows its answer (call_cb) */
	int r = send_txn(e);
	if (r < 0) {
		buf_free(&b);
		e->lease = 0;
		return give_up(e, r);
	}
	if (im->test_grant_late) {
		e->grant_inflight = true;   /* as far as txn_cb knows */
		e->grant_body = b;
		return;
	}
	send_grant(e, &b);
}

/* Send the acquire's grant (body b, consumed), its txn in flight. */
static void send_grant(struct eop *e, struct buf *b)
{
	int r = call(e, ETCD_PATH_GRANT, b, grant_cb);
	if (r < 0) {
		/* nothing granted, but the txn may yet put our key under a lease
		 * of this id that is someone else's: handle it as a collision
		 * (call_cb: once the txn has answered) */
		e->grant_inflight = false;
		e->lease = 0;
		e->collided = true;
		return give_up(e, r);
	}
	e->grant_inflight = true;
}

/* The id was someone else's lease.  Our txn may have put our key under it
 * (when no key of that name existed): delete the key if and only if it
 * still holds our value (its token's random half is ours alone), then
 * start again with a fresh id.  Called once the txn has answered. */
static void undo_collision(struct eop *e)
{
	struct etcd_compare cmp = {.key = e->key, .key_len = strlen(e->key), .target = ETCD_VALUE,
	                           .result = ETCD_EQUAL, .value = e->value.data ? e->value.data : "",
	                           .value_len = e->value.len};
	struct etcd_op del = {.kind = ETCD_OP_DELETE, .r = {e->key, strlen(e->key), NULL, 0, false}};
	struct buf b = BUF_INIT;
	etcd_req_txn(&b, &cmp, 1, &del, 1, NULL, 0);
	int r = call(e, ETCD_PATH_TXN, &b, undo_cb);
	if (r < 0) {
		e->collided = false;
		e->lease = 0;
		if (e->giving_up)
			return finish(e, e->final_err, NULL, 0);
		give_up(e, r);
	}
}

static void undo_cb(struct eop *e, int err, const struct etcd_resp *r)
{
	(void)r;
	e->collided = false;
	e->lease = 0;
	if (e->giving_up)
		return finish(e, e->final_err, NULL, 0);
	if (err)
		return give_up(e, err);
	start_grant(e);   /* a fresh id */
}

static void ka_cb(struct eop *e, int err, const struct etcd_resp *r)
{
	e->ka_inflight = false;
	uint64_t now = uv_hrtime();
	if (err == 0 && r->ttl <= 0) {
		/* the lease is gone (revoked from outside, or expired): queue
		 * again with a new one */
		if (e->w) {
			etcd_watch_stop(e->w);
			e->w = NULL;
		}
		e->lease = 0;
		e->txn_tries = 0;
		return start_grant(e);
	}
	if (!err)
		e->lease_from_ms = e->ka_sent_ms;
	e->ka_due_ns = now + (err ? KA_RETRY_MS * 1000000ull : (uint64_t)e->ttl_s * 1000000000ull / 3);
	op_step_timer(e);
}

/* The timer of a waiting acquire: a deletion to look at, a keepalive due,
 * or the wait's deadline.  Also the start after a lost lease. */
static void op_step_timer(struct eop *e)
{
	if (!e->op || e->giving_up)
		return;
	if (e->collided || e->grant_inflight || e->txn_inflight)
		return;   /* the undo's or the pair's answer goes on from there */
	if (e->lease == 0)
		return start_grant(e);
	uint64_t now = uv_hrtime();
	if (now >= e->op->deadline_ns)
		return give_up(e, -ETIME);
	if (e->rerange && !e->range_inflight) {
		e->rerange = false;
		if (e->w) {
			etcd_watch_stop(e->w);
			e->w = NULL;
		}
		struct buf b = BUF_INIT;
		struct etcd_range r = {e->prefix, strlen(e->prefix), NULL, 0, true};
		etcd_req_range(&b, &r, NULL);
		int rc = call(e, ETCD_PATH_RANGE, &b, range_cb);
		if (rc < 0)
			return give_up(e, rc);
		e->range_inflight = true;
	}
	if (now >= e->ka_due_ns && !e->ka_inflight) {
		struct buf b = BUF_INIT;
		etcd_req_lease_keepalive(&b, e->lease);
		e->ka_sent_ms = lock_now_ms();
		int rc = call(e, ETCD_PATH_KEEPALIVE, &b, ka_cb);
		if (rc < 0)
			return give_up(e, rc);
		e->ka_inflight = true;
	}
	uint64_t next = e->ka_due_ns < e->op->deadline_ns ? e->ka_due_ns : e->op->deadline_ns;
	uint64_t ms = next > now ? (next - now + 999999) / 1000000 : 1;
	if (e->ka_inflight && next == e->ka_due_ns)
		ms = (e->op->deadline_ns - now + 999999) / 1000000;
	if (ms > 3600000)
		ms = 3600000;
	uv_timer_start(&e->timer, timer_cb, ms, 0);
}

/* uv_timer_cb takes the handle: the record is its data. */
static void timer_cb(uv_timer_t *t)
{
	op_step_timer(t->data);
}

/* ------------------------------------------------------------ renew, release */

/* The key of a token's lease, when it is still that token's. */
static const struct etcd_kv *own_key(struct eop *e, const struct etcd_resp *r)
{
	if (r->n_kvs != 1 || r->kvs[0].lease != e->lease)
		return NULL;
	const struct etcd_kv *kv = &r->kvs[0];
	if (!e->s->opt.election &&
	    (kv->value_len < LOCK_TOKEN_LEN + 1 || memcmp(kv->value, e->op->token, LOCK_TOKEN_LEN) ||
	     kv->value[LOCK_TOKEN_LEN] != ' '))
		return NULL;
	return kv;
}

static void owner_of(struct eop *e, const struct etcd_kv *kv, char *out, size_t size);

/* End a renew with the grant as it now stands. */
static void renewed(struct eop *e, int64_t ttl_s)
{
	struct lock_holder h;
	fill_holder(e, &h, (uint64_t)e->my_rev, (uint64_t)ttl_s * 1000);
	finish(e, 0, &h, 1);
}

static void move_grant_cb(struct eop *e, int err, const struct etcd_resp *r);

static void renew_ka_cb(struct eop *e, int err, const struct etcd_resp *r)
{
	if (err)
		return finish(e, err, NULL, 0);
	if (r->ttl <= 0)
		return finish(e, -ENOENT, NULL, 0);
	int64_t want_s = (int64_t)((e->op->ttl_ms + 999) / 1000);
	if (want_s == r->ttl || e->s->opt.election)
		return renewed(e, r->ttl);
	/* Another TTL: etcd cannot change a lease's, so the key moves to a
	 * new lease of that TTL (move_grant_cb).  The keepalive just made
	 * keeps the old grant good meanwhile. */
	e->old_lease = e->lease;
	e->old_ttl_s = r->ttl;
	snprintf(e->old_key, sizeof e->old_key, "%s", e->key);
	e->lease_from_ms = lock_now_ms();
	struct buf b = BUF_INIT;
	etcd_req_lease_grant(&b, want_s, 0);
	int rc = call(e, ETCD_PATH_GRANT, &b, move_grant_cb);
	if (rc < 0)
		finish(e, rc, NULL, 0);
}

/* The last step of every move: finish with err, or with the grant. */
static void move_end_cb(struct eop *e, int err, const struct etcd_resp *r)
{
	(void)err;
	(void)r;
	if (e->final_err)
		return finish(e, e->final_err, NULL, 0);
	renewed(e, e->ttl_s);
}

/* Revoke `lease` (best effort: it has no key left, or never had ours),
 * then end as final_err says. */
static void move_end(struct eop *e, int64_t lease, int final_err)
{
	e->final_err = final_err;
	struct buf b = BUF_INIT;
	etcd_req_lease_revoke(&b, lease);
	if (call(e, ETCD_PATH_REVOKE, &b, move_end_cb) < 0)
		move_end_cb(e, 0, NULL);
}

static void move_txn_cb(struct eop *e, int err, const struct etcd_resp *r)
{
	if (err)   /* outcome unknown: both leases run out by themselves */
		return finish(e, err, NULL, 0);
	if (r->succeeded) {
		/* the new key's create revision is the txn's: the new fence */
		e->my_rev = r->revision;
		memcpy(e->op->token, e->new_token, sizeof e->new_token);
		return move_end(e, e->old_lease, 0);
	}
	/* Why not: the old key changed or went (not held), or contenders
	 * queue behind it (moving would put it behind them). */
	const struct etcd_resp *pr = r->n_responses == 1 ? &r->responses[0] : NULL;
	int why = -ENOENT;
	for (size_t i = 0; pr && i < pr->n_kvs; i++)
		if (!strcmp(pr->kvs[i].key, e->old_key) && pr->kvs[i].mod_revision == e->old_mod)
			why = -ENOTEMPTY;
	int64_t new_lease = e->lease;
	e->lease = e->old_lease;
	snprintf(e->key, sizeof e->key, "%s", e->old_key);
	move_end(e, new_lease, why);
}

static void move_grant_cb(struct eop *e, int err, const struct etcd_resp *r)
{
	if (err)
		return finish(e, err, NULL, 0);
	if (r->lease_id <= 0 || r->ttl <= 0)
		return finish(e, -EPROTO, NULL, 0);
	e->ttl_s = r->ttl;
	e->lease = r->lease_id;
	if (r->ttl == e->old_ttl_s) {
		/* etcd raised the TTL asked for to its minimum, which the old
		 * lease has already: nothing to move */
		e->lease = e->old_lease;
		e->lease_from_ms = 0;
		return move_end(e, r->lease_id, 0);
	}
	/* the new token names the new lease; its random half stays */
	char token[LOCK_TOKEN_LEN + 1];
	snprintf(token, sizeof token, "%016llx%s", (unsigned long long)e->lease, e->op->token + 16);
	make_key(e);
	buf_reset(&e->value);
	buf_append(&e->value, token, LOCK_TOKEN_LEN);
	buf_append(&e->value, e->value_tail.data ? e->value_tail.data : "", e->value_tail.len);
	/* Move only while the old key is as renew saw it, and no key under
	 * the prefix was created after it: then the keys ahead stay ahead, and
	 * there is nobody behind for whom the deletion of the old key would
	 * look like a release. */
	struct etcd_compare cmp[2] = {
		{.key = e->old_key, .key_len = strlen(e->old_key), .target = ETCD_MOD,
		 .result = ETCD_EQUAL, .number = e->old_mod},
		{.key = e->prefix, .key_len = strlen(e->prefix), .target = ETCD_CREATE,
		 .result = ETCD_LESS, .number = e->my_rev + 1, .prefix = true},
	};
	struct etcd_op ok[2] = {
		{.kind = ETCD_OP_DELETE, .r = {e->old_key, strlen(e->old_key), NULL, 0, false}},
		{.kind = ETCD_OP_PUT, .r = {e->key, strlen(e->key), NULL, 0, false},
		 .value = e->value.data, .value_len = e->value.len, .lease = e->lease},
	};
	struct etcd_op no = {.kind = ETCD_OP_RANGE, .r = {e->prefix, strlen(e->prefix), NULL, 0, true}};
	memcpy(e->new_token, token, sizeof token);
	struct buf b = BUF_INIT;
	etcd_req_txn(&b, cmp, 2, ok, 2, &no, 1);
	int rc = call(e, ETCD_PATH_TXN, &b, move_txn_cb);
	if (rc < 0)
		finish(e, rc, NULL, 0);
}

static void renew_range_cb(struct eop *e, int err, const struct etcd_resp *r)
{
	if (err)
		return finish(e, err, NULL, 0);
	const struct etcd_kv *kv = own_key(e, r);
	if (!kv)
		return finish(e, -ENOENT, NULL, 0);
	e->my_rev = kv->create_revision;
	e->old_mod = kv->mod_revision;
	if (!e->s->opt.election)   /* own_key checked the token and the space */
		buf_append(&e->value_tail, kv->value + LOCK_TOKEN_LEN, kv->value_len - LOCK_TOKEN_LEN);
	owner_of(e, kv, e->op->owner, sizeof e->op->owner);
	struct buf b = BUF_INIT;
	etcd_req_lease_keepalive(&b, e->lease);
	int rc = call(e, ETCD_PATH_KEEPALIVE, &b, renew_ka_cb);
	if (rc < 0)
		finish(e, rc, NULL, 0);
}

static void release_revoke_cb(struct eop *e, int err, const struct etcd_resp *r)
{
	(void)r;
	finish(e, err, NULL, 0);
}

static void release_range_cb(struct eop *e, int err, const struct etcd_resp *r)
{
	if (err)
		return finish(e, err, NULL, 0);
	if (!own_key(e, r))
		return finish(e, -ENOENT, NULL, 0);
	struct buf b = BUF_INIT;
	etcd_req_lease_revoke(&b, e->lease);
	int rc = call(e, ETCD_PATH_REVOKE, &b, release_revoke_cb);
	if (rc < 0)
		finish(e, rc, NULL, 0);
}

/* ------------------------------------------------------------ status */

static void owner_of(struct eop *e, const struct etcd_kv *kv, char *out, size_t size)
{
	if (e->s->opt.election) {
		snprintf(out, size, "%.*s", (int)(kv->value_len < size ? kv->value_len : size - 1), kv->value);
		return;
	}
	const char *p = kv->value_len > LOCK_TOKEN_LEN + 1 ? memchr(kv->value + LOCK_TOKEN_LEN + 1, ' ',
	                                                            kv->value_len - LOCK_TOKEN_LEN - 1)
	                                                   : NULL;
	if (!p || kv->value[LOCK_TOKEN_LEN] != ' ') {
		out[0] = '\0';
		return;
	}
	size_t n = kv->value_len - (size_t)(p + 1 - kv->value);
	snprintf(out, size, "%.*s", (int)(n < size ? n : size - 1), p + 1);
}

static void status_next(struct eop *e);

static void status_ttl_cb(struct eop *e, int err, const struct etcd_resp *r)
{
	struct lock_holder *h = &e->hs[e->ttl_next - 1];
	if (err == 0 && r->ttl > 0) {
		h->ttl_ms = (uint64_t)r->ttl * 1000;
		h->expires_ms = e->op->sent_ms + h->ttl_ms;
	}
	status_next(e);
}

/* One timetolive per holder, for its ttl_ms (best effort). */
static void status_next(struct eop *e)
{
	while (e->ttl_next < e->n_hs) {
		struct lock_holder *h = &e->hs[e->ttl_next++];
		uint64_t lease = 0;
		for (int i = 0; h->lease[i]; i++)
			lease = lease * 16 + (uint64_t)(h->lease[i] <= '9' ? h->lease[i] - '0' : h->lease[i] - 'a' + 10);
		struct buf b = BUF_INIT;
		etcd_req_lease_timetolive(&b, (int64_t)lease, false);
		if (call(e, ETCD_PATH_TTL, &b, status_ttl_cb) == 0)
			return;
	}
	finish(e, 0, e->hs, e->n_hs);
}

static void status_range_cb(struct eop *e, int err, const struct etcd_resp *r)
{
	if (err)
		return finish(e, err, NULL, 0);
	struct etcd_kv **v = sorted(r->kvs, r->n_kvs);
	e->hs = calloc(r->n_kvs ? r->n_kvs : 1, sizeof *e->hs);
	if (!v || !e->hs) {
		free(v);
		return finish(e, -ENOMEM, NULL, 0);
	}
	for (size_t i = 0; i < r->n_kvs; i++) {
		const struct etcd_kv *kv = v[i];
		if (i >= value_limit(e, kv))
			continue;   /* queued, not holding */
		struct lock_holder *h = &e->hs[e->n_hs++];
		snprintf(h->name, sizeof h->name, "%s", e->op->name);
		if (!e->s->opt.election && kv->value_len > LOCK_TOKEN_LEN && kv->value[LOCK_TOKEN_LEN] == ' ')
			snprintf(h->token, sizeof h->token, "%.*s", LOCK_TOKEN_LEN, kv->value);
		owner_of(e, kv, h->owner, sizeof h->owner);
		snprintf(h->lease, sizeof h->lease, "%016llx", (unsigned long long)kv->lease);
		h->fence = (uint64_t)kv->create_revision;
		h->pid = -1;
		h->expires_ms = e->op->sent_ms;
	}
	free(v);
	status_next(e);
}

/* ------------------------------------------------------------ the backend */

static void etcd_start(struct lock_store *s, struct lock_op *op)
{
	struct eimpl *im = s->impl;
	struct eop *e = calloc(1, sizeof *e);
	if (!e)
		return lock_op_done(op, -ENOMEM, NULL, 0);
	e->op = op;
	e->s = s;
	e->refs = 1;   /* "not finished" */
	buf_init(&e->value);
	buf_init(&e->value_tail);
	buf_init(&e->grant_body);
	uv_timer_init(s->loop, &e->timer);
	e->timer.data = e;
	e->next = im->ops;
	if (im->ops)
		im->ops->prev = e;
	im->ops = e;
	make_prefix(e, op->name);
	struct buf b = BUF_INIT;
	int r;
	switch (op->kind) {
	case LOCK_OP_ACQUIRE:
		if (op->limit > 1 && s->opt.election)
			return finish(e, -EINVAL, NULL, 0);
		memcpy(e->rnd, op->token, 16);
		e->rnd[16] = '\0';
		return start_grant(e);
	case LOCK_OP_RENEW:
	case LOCK_OP_RELEASE:
		e->lease = token_lease(op->token);
		if (e->lease <= 0)
			return finish(e, -ENOENT, NULL, 0);
		make_key(e);
		for (unsigned i = 0; op->kind == LOCK_OP_RELEASE && i < OWN_GRANTS; i++) {
			if (strcmp(im->own[i], op->token))
				continue;
			/* one round trip: an expired lease answers NOT_FOUND */
			im->own[i][0] = '\0';
			etcd_req_lease_revoke(&b, e->lease);
			r = call(e, ETCD_PATH_REVOKE, &b, release_revoke_cb);
			if (r < 0)
				finish(e, r, NULL, 0);
			return;
		}
		etcd_req_range(&b, &(struct etcd_range){e->key, strlen(e->key), NULL, 0, false}, NULL);
		r = call(e, ETCD_PATH_RANGE, &b, op->kind == LOCK_OP_RENEW ? renew_range_cb : release_range_cb);
		break;
	case LOCK_OP_STATUS:
		etcd_req_range(&b, &(struct etcd_range){e->prefix, strlen(e->prefix), NULL, 0, true}, NULL);
		r = call(e, ETCD_PATH_RANGE, &b, status_range_cb);
		break;
	default:
		INVARIANT(0);
		r = -EINVAL;
	}
	if (r < 0)
		finish(e, r, NULL, 0);
}

static void etcd_close(struct lock_store *s)
{
	struct eimpl *im = s->impl;
	etcd_client_free(im->c);   /* in-flight calls and watches: -ECANCELED */
	while (im->ops) {
		im->ops->w = NULL;   /* ended by the client */
		finish(im->ops, -ECANCELED, NULL, 0);
	}
	free(im);
}

static const char *etcd_last_error(const struct lock_store *s)
{
	const struct eimpl *im = s->impl;
	return im->last_err;
}

/* leader --watch: every message on the name's prefix is a change. */
struct ewatch {
	struct etcd_watch *w;
	lock_change_fn cb;
	void *ud;
	bool ended;
};

static void ewatch_cb(void *ud, int err, const struct etcd_watch_msg *m)
{
	struct ewatch *x = ud;
	(void)m;
	if (err < 0) {
		x->ended = true;
		x->w = NULL;
	}
	x->cb(x->ud, err < 0 ? map_err(NULL, err, NULL) : 0);
}

static void *etcd_watch_start_(struct lock_store *s, const char *name, lock_change_fn cb, void *ud)
{
	struct eimpl *im = s->impl;
	struct ewatch *x = calloc(1, sizeof *x);
	if (!x)
		return NULL;
	char prefix[LOCK_MAX_NAME + 32];
	snprintf(prefix, sizeof prefix, "dsys/%s/%s/", s->opt.election ? "elections" : "locks", name);
	x->cb = cb;
	x->ud = ud;
	struct etcd_range r = {prefix, strlen(prefix), NULL, 0, true};
	x->w = etcd_watch_start(im->c, &r, 0, false, ewatch_cb, x);
	if (!x->w) {
		free(x);
		return NULL;
	}
	return x;
}

static void etcd_watch_stop_(void *handle)
{
	struct ewatch *x = handle;
	if (x->w)
		etcd_watch_stop(x->w);
	free(x);
}

static const struct lock_backend etcd_backend = {"etcd://", etcd_start, etcd_close, etcd_last_error,
                                                 etcd_watch_start_, etcd_watch_stop_};

int lock_etcd_open(struct lock_store *s)
{
	struct eimpl *im = calloc(1, sizeof *im);
	if (!im)
		return -ENOMEM;
	struct etcd_options o = {
		.timeout_ms = s->opt.timeout_ms, .connect_timeout_ms = s->opt.connect_timeout_ms,
		.max_pending = 1024, .watch_retry_ms = 100,
	};
	const char *t = getenv("DSYS_TEST_ETCD_LEASE_ID");   /* tests only: new_lease_id */
	if (t)
		im->test_lease = (int64_t)strtoull(t, NULL, 16) & INT64_MAX;
	t = getenv("DSYS_TEST_ETCD_ACQUIRE");   /* tests only: see struct eimpl */
	im->test_grant_late = t && !strcmp(t, "grant-late");
	im->test_answer_late = t && !strcmp(t, "answer-late");
	im->c = etcd_client_new(s->loop, &s->url, &o);
	if (!im->c) {
		free(im);
		return -ENOMEM;
	}
	s->impl = im;
	s->be = &etcd_backend;
	return 0;
}
