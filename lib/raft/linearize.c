/*
 * raft/linearize.c -- deciding whether a history of operations is linearizable.
 *
 * The question
 * ------------
 * Clients called operations on a shared object and got answers.  Each op has
 * an interval [call, return].  The history is linearizable if there is one
 * total order of all ops that (a) respects real time -- when an op returned
 * before another was called, it comes first -- and (b) replayed one by one
 * on a sequential model of the object gives every op the answer its client
 * saw.  Equivalently: each op can be given a point inside its interval at
 * which it took effect, atomically.  The problem is NP-complete in general,
 * so the checker is a search, made fast in the common case by three ideas.
 *
 * 1. Wing & Gong's search, on Lowe's entry list
 * ---------------------------------------------
 * Put every call and every return event in one list sorted by time.  Walk it
 * from the head.  At a call entry, try to linearize that op now: step the
 * model; if the op's answer matches, "lift" the op -- unlink its call and
 * its return entry from the list -- push (op, old state) on a stack and start
 * again from the head.  If the answer does not match, move on to the next
 * entry: a later call may have to go first.  Reaching a return entry means
 * its op was not linearized yet although it has already returned, so
 * everything called after this point is too late for it: backtrack -- pop
 * the last linearized op, "unlift" it (relink its two entries, which is O(1)
 * because entries are restored in exactly the reverse order they were
 * removed, as in dancing links) and try the entry after its call.  An empty
 * list means every op is placed: linearizable.  Backtracking with an empty
 * stack means no order exists: a violation.
 *
 * Lifting keeps the scan short: the list only holds ops still to be placed,
 * and the walk from the head only ever sees the calls that are concurrent
 * with the earliest pending return -- the only candidates for the next slot.
 *
 * 2. The cache of visited configurations (Lowe)
 * ---------------------------------------------
 * Two branches of the search that have linearized the same *set* of ops and
 * reached the same model state have the same future: whatever can follow
 * one can follow the other.  So each (set, state) pair is remembered when
 * first reached, and a step that would reach a remembered pair is refused.
 * This turns the search from one over orders (n!) into one over sets, which
 * with bounded concurrency c is about n * 2^c.  The set is a bitset over the
 * ops of the partition; its hash is kept incrementally (an XOR of a fixed
 * per-op hash), the model state is at most LIN_STATE_WORDS words compared
 * bytewise, and the table is open addressing over an append-only arena
 * (entry = hash, tag, bitset, state, state before), reset between
 * partitions.  The tag and the state before matter only to the pruned
 * search below, whose choices also depend on the last op placed.
 *
 * 3. P-compositionality (Horn & Kroening; what Porcupine calls partitions)
 * -----------------------------------------------------------------------
 * A history of a key-value store is linearizable iff the sub-history of each
 * key is, because ops on different keys commute and share no state.  So the
 * ops are split by key and each key is searched alone: the exponential part
 * then depends only on the concurrency within one key.  Models passed in by
 * other programs must keep all their state per key for this to hold.
 *
 * Unknown outcomes
 * ----------------
 * An op whose reply was lost may have taken effect at any time after its
 * call, or never.  Its return time is taken as infinity and its output is
 * not checked.  "Never" needs no separate branch: an op that took effect
 * after everything else was observed explains the same answers as one that
 * never took effect.  So the search succeeds as soon as the first entry left
 * is the infinite return of such an op: all ops that did return are placed,
 * and the lost ones can all go last, in any order.  A lost op that cannot
 * change the state (a get) constrains nothing and is dropped up front.
 *
 * Lost ops are what make real histories hard.  A lost write stays a
 * candidate from its call to the end, so the plain search tries it at every
 * point, and when it placed one too early (a write that Raft committed only
 * after a new leader took over) it backtracks over every combination of the
 * lost ops in between: exponential, in practice.  A second search cuts that
 * down with three rewrites that keep a linearization valid (pointless()):
 * a lost op that changes nothing can be deleted; a lost op right before a
 * blind op (a put: same verdict and outcome from every state) can be
 * deleted; a lost op right before a known op that could just as well go
 * first can move after it.  So that search only places a lost op where
 * something observes it.  Its weakness is the other case: a lost write
 * nobody ever observes stays a candidate forever, and each one costs a
 * little at every step, so many of them on one key make it slow where the
 * plain search, which lets the next put absorb them, is fast.
 *
 * Neither search dominates, and both are exact, so each key gets the plain
 * search with a quarter of its budget and, only if that runs out, the
 * pruned one with the rest.  Whichever finishes gives the verdict.  (The two
 * were compared on thousands of generated histories, a fifth of them
 * violations: where both finished, they always agreed.)
 *
 * Equal times
 * -----------
 * Call entries sort before return entries of the same time, so ops whose
 * intervals merely touch count as concurrent.  A coarse clock (simulator
 * ticks) can only make the checker more lenient, never report a false
 * violation.
 *
 * Bounds
 * ------
 * Each loop iteration is a step (both searches together count against a
 * key's budget); a key that uses up its step budget, or
 * whose cache outgrows its byte limit, is given up on and reported as
 * unknown -- distinct from both verdicts, so a caller never mistakes "too
 * hard" for "fine".  Memory for one check is O(ops) plus the cache.
 *
 * What gets reported
 * ------------------
 * The search never gets past a return entry without having placed every op
 * returned before it.  So the furthest return entry (in time order) at
 * which any branch got stuck marks the smallest failing prefix: the ops
 * returned before it have a linearization (that branch found one), adding
 * this return leaves none.  The report names that op, the end of the
 * partial linearization that got there and the model state it reached.
 *
 * Determinism
 * -----------
 * Keys are visited in increasing order, entries are sorted by (time, call
 * before return, op index), the cache is exact (hashes only route lookups),
 * budgets are counted in steps, never in time, and nothing depends on
 * addresses, so the same history gives the same verdict, the same step
 * count and the same description, byte for byte.
 */
#include "raft/linearize.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/invariant.h"

struct lin_history {
	const struct lin_model *model;
	struct lin_op *ops;
	size_t n, cap;
	size_t cache_limit; /* bytes per key */
};

/* ------------------------------------------------------------------ kv model */

/* State: w[0] = 1 when the key is present, w[1] = its value (0 when absent,
 * so that every absent state compares equal). */
static void kv_init(struct lin_state *s)
{
	memset(s, 0, sizeof *s);
}

static int kv_step(const struct lin_state *s, const struct lin_op *op, struct lin_state *next)
{
	*next = *s;
	switch (op->kind) {
	case LIN_PUT:
		next->w[0] = 1;
		next->w[1] = op->arg[0];
		return 1;
	case LIN_DEL:
		next->w[0] = 0;
		next->w[1] = 0;
		return 1;
	case LIN_GET:
		if (op->unknown)
			return 1;
		if (!op->ok)
			return s->w[0] == 0;
		return s->w[0] == 1 && s->w[1] == op->value;
	case LIN_CAS: {
		int swap = s->w[0] == 1 && s->w[1] == op->arg[0];
		if (swap)
			next->w[1] = op->arg[1];
		return op->unknown || swap == (op->ok != 0);
	}
	}
	return 0;
}

static int kv_readonly(const struct lin_op *op)
{
	return op->kind == LIN_GET;
}

static int kv_blind(const struct lin_op *op)
{
	return op->kind == LIN_PUT || op->kind == LIN_DEL;
}

static int kv_describe_op(const struct lin_op *op, char *buf, size_t len)
{
	const char *out = op->unknown ? "?" : op->ok ? "ok" : "fail";
	switch (op->kind) {
	case LIN_PUT:
		return snprintf(buf, len, "put(k%" PRIu64 ", %" PRIu64 ")", op->key, op->arg[0]);
	case LIN_DEL:
		return snprintf(buf, len, "del(k%" PRIu64 ")", op->key);
	case LIN_GET:
		if (op->unknown || !op->ok)
			return snprintf(buf, len, "get(k%" PRIu64 ") -> %s", op->key,
			                op->unknown ? "?" : "absent");
		return snprintf(buf, len, "get(k%" PRIu64 ") -> %" PRIu64, op->key, op->value);
	case LIN_CAS:
		return snprintf(buf, len, "cas(k%" PRIu64 ", %" PRIu64 ", %" PRIu64 ") -> %s",
		                op->key, op->arg[0], op->arg[1], out);
	}
	return snprintf(buf, len, "kind%u(k%" PRIu64 ")", (unsigned)op->kind, op->key);
}

static int kv_describe_state(const struct lin_state *s, char *buf, size_t len)
{
	if (!s->w[0])
		return snprintf(buf, len, "absent");
	return snprintf(buf, len, "value=%" PRIu64, s->w[1]);
}

const struct lin_model lin_model_kv = {
	.name = "kv",
	.kinds = 4,
	.state_words = 2,
	.init = kv_init,
	.step = kv_step,
	.readonly = kv_readonly,
	.blind = kv_blind,
	.describe_op = kv_describe_op,
	.describe_state = kv_describe_state,
};

/* ------------------------------------------------------------------ history */

struct lin_history *lin_history_new_model(const struct lin_model *model)
{
	if (!model || !model->init || !model->step || model->kinds == 0 ||
	    model->state_words == 0 || model->state_words > LIN_STATE_WORDS)
		return NULL;
	struct lin_history *h = calloc(1, sizeof *h);
	if (!h)
		return NULL;
	h->model = model;
	h->cache_limit = LIN_CACHE_LIMIT_DEFAULT;
	return h;
}

struct lin_history *lin_history_new(void)
{
	return lin_history_new_model(&lin_model_kv);
}

void lin_history_free(struct lin_history *h)
{
	if (!h)
		return;
	free(h->ops);
	free(h);
}

void lin_history_set_cache_limit(struct lin_history *h, size_t bytes)
{
	h->cache_limit = bytes ? bytes : LIN_CACHE_LIMIT_DEFAULT;
}

size_t lin_history_len(const struct lin_history *h)
{
	return h->n;
}

const struct lin_op *lin_history_op(const struct lin_history *h, int i)
{
	if (i < 0 || (size_t)i >= h->n)
		return NULL;
	return &h->ops[i];
}

/* Ops are indexed by int and searched with 32-bit entry links. */
#define LIN_MAX_OPS ((size_t)INT32_MAX / 2 - 2)

int lin_add(struct lin_history *h, const struct lin_op *op)
{
	if (op->kind == 0 || op->kind > h->model->kinds || op->call == LIN_TIME_UNKNOWN)
		return -EINVAL;
	if (op->ret != LIN_TIME_UNKNOWN && op->ret < op->call)
		return -EINVAL;
	if (h->n == h->cap) {
		if (h->n >= LIN_MAX_OPS)
			return -ENOMEM;
		size_t cap = h->cap ? h->cap * 2 : 256;
		struct lin_op *ops = realloc(h->ops, cap * sizeof *ops);
		if (!ops)
			return -ENOMEM;
		h->ops = ops;
		h->cap = cap;
	}
	struct lin_op *o = &h->ops[h->n];
	*o = *op;
	o->ok = op->ok != 0;
	if (o->unknown || o->ret == LIN_TIME_UNKNOWN) {
		o->unknown = 1;
		o->ret = LIN_TIME_UNKNOWN;
	}
	return (int)h->n++;
}

/* A call is recorded as an op of unknown outcome until its reply comes. */
int lin_call(struct lin_history *h, uint32_t client, uint16_t kind, uint64_t key,
             uint64_t arg0, uint64_t arg1, uint64_t time)
{
	struct lin_op op = {
		.key = key, .arg = {arg0, arg1}, .call = time, .ret = LIN_TIME_UNKNOWN,
		.client = client, .kind = kind, .unknown = 1,
	};
	return lin_add(h, &op);
}

/* A reply may also come for an op already declared lost: the client gave up
 * waiting, but the op's interval simply ends later. */
int lin_return(struct lin_history *h, int op, int ok, uint64_t value, uint64_t time)
{
	if (op < 0 || (size_t)op >= h->n)
		return -EINVAL;
	struct lin_op *o = &h->ops[op];
	if (!o->unknown || time == LIN_TIME_UNKNOWN || time < o->call)
		return -EINVAL;
	o->ok = ok != 0;
	o->value = value;
	o->ret = time;
	o->unknown = 0;
	return 0;
}

int lin_lost(struct lin_history *h, int op)
{
	if (op < 0 || (size_t)op >= h->n || !h->ops[op].unknown)
		return -EINVAL;
	return 0;
}

int lin_describe_op(const struct lin_history *h, int i, char *buf, size_t len)
{
	const struct lin_op *o = lin_history_op(h, i);
	if (!o)
		return snprintf(buf, len, "#%d (no such op)", i);
	char what[160];
	if (h->model->describe_op)
		h->model->describe_op(o, what, sizeof what);
	else
		snprintf(what, sizeof what, "kind%u(k%" PRIu64 ")", (unsigned)o->kind, o->key);
	if (o->unknown)
		return snprintf(buf, len, "#%d c%" PRIu32 " %s [%" PRIu64 ",?]", i, o->client, what, o->call);
	return snprintf(buf, len, "#%d c%" PRIu32 " %s [%" PRIu64 ",%" PRIu64 "]", i, o->client,
	                what, o->call, o->ret);
}

const char *lin_verdict_name(int verdict)
{
	switch (verdict) {
	case LIN_OK:
		return "ok";
	case LIN_VIOLATION:
		return "violation";
	case LIN_UNKNOWN:
		return "unknown";
	}
	return "error";
}

/* ------------------------------------------------------------------ search */

/* One call or return event.  Entries 0..2n-1 are in time order (so an
 * entry's index is its position); 2n is the head sentinel, 2n+1 the tail. */
struct ent {
	uint64_t time;
	int32_t prev, next;
	int32_t match; /* a call's return entry, a return's call entry */
	uint32_t op;   /* op id local to the partition */
	uint8_t is_call;
	uint8_t unknown; /* the op's outcome is unknown */
	uint8_t blind;   /* the model's blind(op) */
};

struct frame {
	int32_t call; /* the call entry of the op linearized at this depth */
	struct lin_state before;
};

/* Scratch for checking one partition, sized once for the largest. */
struct search {
	const struct lin_model *m;
	const struct lin_op *ops; /* the history's ops, by global index */
	size_t cache_limit;
	uint32_t *idx;            /* local op id -> global index */
	struct ent *ent;
	uint64_t *bits;           /* the linearized set */
	struct frame *stack;
	uint32_t *best;           /* the partial linearization that got furthest */

	/* visited configurations (see cache_add) */
	uint64_t *arena;          /* entries of ewords: hash, tag, bitset, state, state before */
	size_t arena_cap;         /* words */
	size_t count;             /* entries in use */
	size_t ewords, bwords;
	uint32_t *table;          /* entry number + 1, 0 = empty */
	size_t table_alloc, table_cap; /* allocated slots, slots in use (power of 2) */

	/* outcome of the last partition */
	uint64_t steps;
	int32_t best_pos;         /* furthest return entry stuck at, -1 none */
	uint32_t best_op;
	size_t best_n;
	struct lin_state best_state;
	int gave_up_cache;
	int prune;                /* apply the rewrites of pointless() */
};

static uint64_t mix64(uint64_t x)
{
	/* splitmix64's finalizer: cheap, and every input bit reaches every output bit. */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

static uint64_t op_hash(uint32_t local)
{
	return mix64(((uint64_t)local + 1) * 0x9e3779b97f4a7c15ull);
}

static uint64_t state_hash(const struct lin_state *s, unsigned words)
{
	uint64_t h = 0x2545f4914f6cdd1dull;
	for (unsigned i = 0; i < words; i++)
		h = mix64(h ^ s->w[i]);
	return h;
}

#define LIN_TABLE_MIN 1024
/* Steps of the first turn of each search (see lin_check). */
#define LIN_SLICE_FIRST 65536

static void cache_reset(struct search *s, size_t n)
{
	s->bwords = (n + 63) / 64;
	s->ewords = 2 + s->bwords + 2 * s->m->state_words;
	s->count = 0;
	s->table_cap = LIN_TABLE_MIN;
	memset(s->table, 0, s->table_cap * sizeof *s->table);
}

/* Double the table, reinserting from the stored hashes.  0 or -ENOMEM. */
static int cache_grow_table(struct search *s)
{
	size_t cap = s->table_cap * 2;
	if (cap > s->table_alloc) {
		uint32_t *t = realloc(s->table, cap * sizeof *t);
		if (!t)
			return -ENOMEM;
		s->table = t;
		s->table_alloc = cap;
	}
	s->table_cap = cap;
	memset(s->table, 0, cap * sizeof *s->table);
	size_t mask = cap - 1;
	for (size_t e = 0; e < s->count; e++) {
		size_t i = s->arena[e * s->ewords] & mask;
		while (s->table[i])
			i = (i + 1) & mask;
		s->table[i] = (uint32_t)(e + 1);
	}
	return 0;
}

/*
 * Remember the configuration (s->bits, st, tag, before) under hash (which
 * covers the set and the state).  Returns 1 if it is new, 0 if it is
 * covered by one seen before, -1 if the cache limit (or memory) is reached.
 *
 * tag is 0 when the last op placed had a known outcome.  Otherwise it names
 * that op (its call entry + 1) and `before` is the state before it: the
 * search then refuses some next ops (see pointless), so the configuration's
 * futures depend on both.  One seen with tag 0 has every future of a
 * restricted one and covers it; a restricted one covers only the same
 * restriction.
 */
static int cache_add(struct search *s, uint64_t hash, const struct lin_state *st,
                     uint64_t tag, const struct lin_state *before)
{
	size_t mask = s->table_cap - 1, i = hash & mask;
	size_t bw = s->bwords, sw = s->m->state_words;
	for (uint32_t slot; (slot = s->table[i]) != 0; i = (i + 1) & mask) {
		const uint64_t *e = s->arena + (size_t)(slot - 1) * s->ewords;
		if (e[0] == hash && memcmp(e + 2, s->bits, bw * 8) == 0 &&
		    memcmp(e + 2 + bw, st->w, sw * 8) == 0 &&
		    (e[1] == 0 || (e[1] == tag && memcmp(e + 2 + bw + sw, before->w, sw * 8) == 0)))
			return 0;
	}
	size_t need = (s->count + 1) * s->ewords;
	if (need * 8 + s->table_cap * 2 * sizeof *s->table > s->cache_limit || s->count >= UINT32_MAX - 1)
		return -1;
	if (need > s->arena_cap) {
		size_t cap = s->arena_cap ? s->arena_cap * 2 : 4096;
		while (cap < need)
			cap *= 2;
		uint64_t *a = realloc(s->arena, cap * 8);
		if (!a)
			return -1;
		s->arena = a;
		s->arena_cap = cap;
	}
	uint64_t *e = s->arena + s->count * s->ewords;
	e[0] = hash;
	e[1] = tag;
	memcpy(e + 2, s->bits, bw * 8);
	memcpy(e + 2 + bw, st->w, sw * 8);
	if (tag)
		memcpy(e + 2 + bw + sw, before->w, sw * 8);
	else
		memset(e + 2 + bw + sw, 0, sw * 8);
	s->table[i] = (uint32_t)(++s->count);
	if (s->count * 2 > s->table_cap && cache_grow_table(s) < 0)
		return -1;
	return 1;
}

/*
 * The entry list for the n ops s->idx[0..n-1], ordered by (time, call before
 * return, op id): a total order, so qsort's instability cannot show.
 */
struct evkey {
	uint64_t time;
	uint32_t rank; /* is_return << 31 | local op id */
};

static int cmp_ev(const void *a, const void *b)
{
	const struct evkey *x = a, *y = b;
	if (x->time != y->time)
		return x->time < y->time ? -1 : 1;
	return x->rank < y->rank ? -1 : x->rank > y->rank;
}

static void build_entries(struct search *s, size_t n, struct evkey *ev)
{
	for (size_t i = 0; i < n; i++) {
		const struct lin_op *o = &s->ops[s->idx[i]];
		ev[2 * i] = (struct evkey){o->call, (uint32_t)i};
		ev[2 * i + 1] = (struct evkey){o->ret, (uint32_t)i | 0x80000000u};
	}
	qsort(ev, 2 * n, sizeof *ev, cmp_ev);
	/* where each op's call and return landed, to pair them up */
	int32_t head = (int32_t)(2 * n), tail = head + 1;
	for (size_t p = 0; p < 2 * n; p++) {
		uint32_t local = ev[p].rank & 0x7fffffffu;
		struct ent *e = &s->ent[p];
		e->time = ev[p].time;
		e->op = local;
		e->is_call = !(ev[p].rank & 0x80000000u);
		const struct lin_op *o = &s->ops[s->idx[local]];
		e->unknown = o->unknown;
		e->blind = s->m->blind && s->m->blind(o);
		e->prev = (int32_t)p - 1;
		e->next = (int32_t)p + 1;
		/* s->best doubles as the op -> call entry map while building */
		if (e->is_call) {
			s->best[local] = (uint32_t)p;
		} else {
			int32_t c = (int32_t)s->best[local];
			INVARIANT(c < (int32_t)p);
			e->match = c;
			s->ent[c].match = (int32_t)p;
		}
	}
	if (n == 0) {
		s->ent[head].next = tail;
	} else {
		s->ent[0].prev = head;
		s->ent[2 * n - 1].next = tail;
		s->ent[head].next = 0;
	}
	s->ent[head].prev = -1;
	s->ent[tail].prev = n ? (int32_t)(2 * n) - 1 : head;
	s->ent[tail].next = -1;
}

/* Unlink an op: its call entry c and its return entry.  Order matters for
 * lift_undo, which relinks in reverse. */
static void lift(struct ent *ent, int32_t c)
{
	struct ent *e = &ent[c], *r = &ent[e->match];
	ent[e->prev].next = e->next;
	ent[e->next].prev = e->prev;
	ent[r->prev].next = r->next;
	ent[r->next].prev = r->prev;
}

static void lift_undo(struct ent *ent, int32_t c)
{
	struct ent *e = &ent[c];
	int32_t r = e->match;
	ent[ent[r].prev].next = r;
	ent[ent[r].next].prev = r;
	ent[e->prev].next = c;
	ent[e->next].prev = c;
}

/*
 * Would placing op (entry e) next, taking the state from *state to *next,
 * only repeat a linearization the search covers anyway?  Three rewrites
 * turn any linearization into one the search still tries, so these are
 * refused:
 *  - an unknown op that leaves the state as it was can be deleted (its
 *    output is not checked, and it may never have happened);
 *  - an unknown op L right before a blind op can be deleted: the blind op
 *    succeeds and ends in the same state either way;
 *  - an unknown op L right before a known op X that could precede L with
 *    the same outcome (X succeeds from L's starting state, and X then L
 *    ends where L then X does) can move after X.  L's return is at
 *    infinity, so no real-time order forbids that, and unknown ops only
 *    ever move later, past known ones, so the rewriting ends.
 * The last two keep lost writes cheap: a lost write is pushed past
 * everything that does not observe it, instead of being tried at every
 * point where it would go unseen.
 */
static int pointless(const struct search *s, size_t sp, const struct ent *e,
                     const struct lin_op *op, const struct lin_state *state,
                     const struct lin_state *next)
{
	const struct lin_model *m = s->m;
	if (!s->prune)
		return 0;
	if (e->unknown && memcmp(next, state, sizeof *next) == 0)
		return 1;
	if (sp == 0)
		return 0;
	const struct frame *top = &s->stack[sp - 1];
	const struct ent *l = &s->ent[top->call];
	if (!l->unknown)
		return 0;
	if (e->blind)
		return 1;
	if (e->unknown)
		return 0;
	struct lin_state x_first, swapped;
	memset(&x_first, 0, sizeof x_first);
	memset(&swapped, 0, sizeof swapped);
	if (!m->step(&top->before, op, &x_first))
		return 0;
	m->step(&x_first, &s->ops[s->idx[l->op]], &swapped); /* unknown: always succeeds */
	return memcmp(&swapped, next, sizeof swapped) == 0;
}

/* Verdict for one partition: LIN_OK, LIN_VIOLATION or LIN_UNKNOWN. */
static int search_partition(struct search *s, size_t n, uint64_t budget)
{
	const struct lin_model *m = s->m;
	struct ent *ent = s->ent;
	int32_t head = (int32_t)(2 * n), tail = head + 1;
	size_t sp = 0;
	uint64_t sethash = 0;
	struct lin_state state, next;

	memset(&state, 0, sizeof state);
	m->init(&state);
	memset(s->bits, 0, s->bwords * 8);
	s->steps = 0;
	s->best_pos = -1;
	s->best_n = 0;
	s->gave_up_cache = 0;

	int32_t cur = ent[head].next;
	while (ent[head].next != tail) {
		if (s->steps >= budget)
			return LIN_UNKNOWN;
		s->steps++;
		INVARIANT(cur != tail);
		struct ent *e = &ent[cur];
		if (e->is_call) {
			const struct lin_op *op = &s->ops[s->idx[e->op]];
			memset(&next, 0, sizeof next);
			if (m->step(&state, op, &next) && !pointless(s, sp, e, op, &state, &next)) {
				uint64_t bit = 1ull << (e->op & 63);
				s->bits[e->op >> 6] |= bit;
				uint64_t h = mix64(sethash ^ op_hash(e->op) ^ state_hash(&next, m->state_words));
				int fresh = cache_add(s, h, &next, s->prune && e->unknown ? (uint64_t)cur + 1 : 0, &state);
				if (fresh < 0) {
					s->gave_up_cache = 1;
					return LIN_UNKNOWN;
				}
				if (fresh) {
					INVARIANT(sp < n);
					s->stack[sp].call = cur;
					s->stack[sp].before = state;
					sp++;
					sethash ^= op_hash(e->op);
					state = next;
					lift(ent, cur);
					cur = ent[head].next;
					continue;
				}
				s->bits[e->op >> 6] &= ~bit;
			}
			cur = e->next;
			continue;
		}
		/* A return entry: its op is still unplaced. */
		if (e->time == LIN_TIME_UNKNOWN)
			return LIN_OK; /* only lost ops remain; they all go last */
		if (cur > s->best_pos) {
			s->best_pos = cur;
			s->best_op = e->op;
			s->best_n = sp;
			s->best_state = state;
			for (size_t i = 0; i < sp; i++)
				s->best[i] = ent[s->stack[i].call].op;
		}
		if (sp == 0)
			return LIN_VIOLATION;
		sp--;
		int32_t c = s->stack[sp].call;
		uint32_t local = ent[c].op;
		s->bits[local >> 6] &= ~(1ull << (local & 63));
		sethash ^= op_hash(local);
		state = s->stack[sp].before;
		lift_undo(ent, c);
		cur = ent[c].next;
	}
	return LIN_OK;
}

struct keyed {
	uint64_t key;
	uint32_t idx;
};

static int cmp_keyed(const void *a, const void *b)
{
	const struct keyed *x = a, *y = b;
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Append printf output to buf at *off, never past len. */
static void appendf(char *buf, size_t len, size_t *off, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void appendf(char *buf, size_t len, size_t *off, const char *fmt, ...)
{
	if (*off + 1 >= len)
		return;
	va_list ap;
	va_start(ap, fmt);
	int w = vsnprintf(buf + *off, len - *off, fmt, ap);
	va_end(ap);
	if (w > 0)
		*off = *off + (size_t)w < len ? *off + (size_t)w : len - 1;
}

#define LIN_DESC_TAIL 3 /* ops of the partial linearization shown */

static void describe_violation(const struct lin_history *h, const struct search *s,
                               uint64_t key, struct lin_result *out)
{
	char op[200], st[120];
	size_t off = 0;
	int bad = (int)s->idx[s->best_op];

	out->op = bad;
	out->time = h->ops[bad].ret;
	out->linearized = s->best_n;
	lin_describe_op(h, bad, op, sizeof op);
	appendf(out->desc, sizeof out->desc, &off,
	        "key %" PRIu64 ": no linearization explains %s; ", key, op);
	if (s->best_n == 0) {
		appendf(out->desc, sizeof out->desc, &off, "it cannot even go first");
	} else {
		appendf(out->desc, sizeof out->desc, &off,
		        "the furthest partial linearization places %zu op%s: ",
		        s->best_n, s->best_n == 1 ? "" : "s");
		size_t from = s->best_n > LIN_DESC_TAIL ? s->best_n - LIN_DESC_TAIL : 0;
		if (from)
			appendf(out->desc, sizeof out->desc, &off, "... ");
		for (size_t i = from; i < s->best_n; i++) {
			lin_describe_op(h, (int)s->idx[s->best[i]], op, sizeof op);
			appendf(out->desc, sizeof out->desc, &off, "%s%s", op, i + 1 < s->best_n ? ", " : "");
		}
	}
	if (h->model->describe_state)
		h->model->describe_state(&s->best_state, st, sizeof st);
	else
		snprintf(st, sizeof st, "%016" PRIx64, s->best_state.w[0]);
	appendf(out->desc, sizeof out->desc, &off, " (state then: %s)", st);
}

static void search_free(struct search *s)
{
	free(s->idx);
	free(s->ent);
	free(s->bits);
	free(s->stack);
	free(s->best);
	free(s->arena);
	free(s->table);
}

int lin_check(struct lin_history *h, uint64_t budget, struct lin_result *out)
{
	const struct lin_model *m = h->model;
	struct search s = {.m = m, .ops = h->ops, .cache_limit = h->cache_limit};
	struct keyed *order = NULL;
	struct evkey *ev = NULL;
	size_t n = 0, maxpart = 0;
	int rc = -ENOMEM;

	memset(out, 0, sizeof *out);
	out->op = -1;
	if (budget == 0)
		budget = LIN_BUDGET_DEFAULT;

	/* Which ops take part, in (key, index) order. */
	order = malloc((h->n ? h->n : 1) * sizeof *order);
	if (!order)
		goto done;
	for (size_t i = 0; i < h->n; i++) {
		const struct lin_op *o = &h->ops[i];
		if (o->unknown && m->readonly && m->readonly(o))
			continue;
		order[n++] = (struct keyed){o->key, (uint32_t)i};
	}
	qsort(order, n, sizeof *order, cmp_keyed);
	for (size_t a = 0, b; a < n; a = b) {
		for (b = a; b < n && order[b].key == order[a].key; b++)
			;
		if (b - a > maxpart)
			maxpart = b - a;
		out->keys++;
	}
	out->ops = n;

	size_t words = (maxpart + 63) / 64;
	s.idx = malloc((maxpart + 1) * sizeof *s.idx);
	s.ent = malloc((2 * maxpart + 2) * sizeof *s.ent);
	s.bits = malloc((words + 1) * 8);
	s.stack = malloc((maxpart + 1) * sizeof *s.stack);
	s.best = malloc((maxpart + 1) * sizeof *s.best);
	s.table = malloc(LIN_TABLE_MIN * sizeof *s.table);
	ev = malloc((2 * maxpart + 1) * sizeof *ev);
	if (!s.idx || !s.ent || !s.bits || !s.stack || !s.best || !s.table || !ev)
		goto done;
	s.table_alloc = LIN_TABLE_MIN;

	rc = LIN_OK;
	for (size_t a = 0, b; a < n; a = b) {
		uint64_t key = order[a].key;
		for (b = a; b < n && order[b].key == key; b++)
			s.idx[b - a] = order[b].idx;
		size_t pn = b - a;
		build_entries(&s, pn, ev);
		/* The plain and the pruned search take turns on growing slices of
		 * the budget, so a key costs at most a few times what the better
		 * of the two needs.  Each turn starts afresh: an abandoned search
		 * leaves ops lifted and its cache means nothing to the other. */
		uint64_t left = budget, slice = LIN_SLICE_FIRST, used = 0;
		int v = LIN_UNKNOWN;
		for (int turn = 0; left > 0; turn++) {
			if (turn > 0)
				build_entries(&s, pn, ev);
			cache_reset(&s, pn);
			s.prune = turn & 1;
			v = search_partition(&s, pn, slice < left ? slice : left);
			used += s.steps;
			left -= s.steps;
			if (v != LIN_UNKNOWN || s.gave_up_cache)
				break;
			if (turn & 1)
				slice *= 4;
		}
		out->steps += used;
		s.steps = used;
		if (v == LIN_VIOLATION) {
			rc = LIN_VIOLATION;
			out->key = key;
			describe_violation(h, &s, key, out);
			break;
		}
		if (v == LIN_UNKNOWN) {
			if (!out->keys_unknown) {
				out->key = key;
				snprintf(out->desc, sizeof out->desc,
				         "key %" PRIu64 ": gave up after %" PRIu64 " steps (%s) on %zu ops",
				         key, s.steps, s.gave_up_cache ? "cache limit" : "step budget", pn);
			}
			out->keys_unknown++;
			rc = LIN_UNKNOWN;
		}
	}
	out->verdict = rc;
done:
	search_free(&s);
	free(ev);
	free(order);
	if (rc < 0)
		memset(out, 0, sizeof *out), out->op = -1, out->verdict = rc;
	return rc;
}
