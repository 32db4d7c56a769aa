/*
 * counter/mem.c -- counters in this process: the lock-free table and the
 * mem: backend on it.
 *
 * The table.  A fixed-capacity open-addressing hash table (linear
 * probing), sized at start to twice --max-keys rounded up to a power of
 * two, so the load factor stays at or under one half and probes stay
 * short.  Slots never move and a key, once inserted, is never removed
 * from its slot: del only marks it absent and zeroes its value.  That is
 * what makes every operation lock-free:
 *   - a lookup walks the probe sequence reading each slot's key pointer
 *     (acquire) and comparing the hash, length and bytes of the key block
 *     it points to; an empty slot ends the walk;
 *   - an increment of an existing key is a CAS loop on the slot's int64
 *     value (checking for overflow before each attempt, so a refused
 *     increment leaves the value unchanged), then marks the slot present
 *     if it was not: one CAS and one load in the common case;
 *   - inserting a key allocates its key block once (the only allocation,
 *     on a key's first use) and CASes the empty slot's pointer from NULL
 *     to it; a loser of that race compares against the winner's key and
 *     either uses that slot or probes on.
 * Slots come in chunks of 128 (a page), allocated on the first insert that lands
 * in one (a CAS on the chunk pointer; a missing chunk reads as empty
 * slots), so a big --max-keys costs nothing until keys arrive, and
 * freeing or listing a small table skips the chunks never used.
 * Each slot is 32 bytes, so two share a cache line: with one loop per
 * core and hot keys spread by hash, contention is on the key, not the
 * line.  The price of "never move" is a capacity fixed at start (a full
 * table answers -ENOSPC) and deleted keys keeping their slot: a workload
 * that creates and deletes ever new keys must size --max-keys for all of
 * them.  That trade is the one a counter service wants: its keys are a
 * bounded set counted very often.
 *
 * Races between del and a concurrent incr of the same key are resolved
 * per field: the increment may land before the zeroing (lost with the
 * deleted value) or after it (the key reappears with the increment).
 * Either order is one a client could have seen.
 *
 * The mem: backend calls each callback before returning.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "counter/counter.h"
#include "base/invariant.h"

struct key_block {
	uint64_t hash;
	uint32_t len;
	char data[];
};

struct slot {
	_Atomic(struct key_block *) key;
	_Atomic int64_t value;
	atomic_bool present;
	char pad[32 - sizeof(void *) - sizeof(int64_t) - sizeof(atomic_bool)];
};

#define CHUNK_BITS 7                 /* slots are allocated 128 (one 4 KiB page) at a time */
#define CHUNK_SLOTS (1u << CHUNK_BITS)

struct counter_table {
	_Atomic(struct slot *) *chunks;  /* (mask + 1) / CHUNK_SLOTS of them, NULL until used */
	uint64_t mask;
	uint32_t max_keys;
	atomic_uint used;        /* slots holding a key (present or not) */
	atomic_uint present;     /* keys present */
};

/* A 64-bit hash: 8 bytes at a time, multiply and fold (wyhash's mixer). */
static uint64_t mix(uint64_t a, uint64_t b)
{
	__uint128_t r = (__uint128_t)a * b;
	return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static uint64_t key_hash(const char *p, size_t n)
{
	uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
	while (n >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		h = mix(h ^ w, 0xa0761d6478bd642full);
		p += 8;
		n -= 8;
	}
	uint64_t w = 0;
	memcpy(&w, p, n);
	h = mix(h ^ w, 0xe7037ed1a0b428dbull);
	return mix(h, 0x8ebc6af09c88c6e3ull) | 1;   /* never 0 */
}

struct counter_table *counter_table_new(uint32_t max_keys)
{
	if (max_keys == 0)
		return NULL;
	uint64_t cap = CHUNK_SLOTS;
	while (cap < (uint64_t)max_keys * 2)
		cap <<= 1;
	struct counter_table *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->chunks = calloc(cap / CHUNK_SLOTS, sizeof *t->chunks);
	if (!t->chunks) {
		free(t);
		return NULL;
	}
	t->mask = cap - 1;
	t->max_keys = max_keys;
	return t;
}

void counter_table_free(struct counter_table *t)
{
	if (!t)
		return;
	for (uint64_t c = 0; c <= t->mask >> CHUNK_BITS; c++) {
		struct slot *ch = atomic_load_explicit(&t->chunks[c], memory_order_relaxed);
		if (!ch)
			continue;
		for (unsigned i = 0; i < CHUNK_SLOTS; i++)
			free(atomic_load_explicit(&ch[i].key, memory_order_relaxed));
		free(ch);
	}
	free(t->chunks);
	free(t);
}

/* Slot i, or NULL when its chunk was never used (and create is false, or
 * memory ran out). */
static struct slot *slot_at(struct counter_table *t, uint64_t i, bool create)
{
	_Atomic(struct slot *) *cp = &t->chunks[i >> CHUNK_BITS];
	struct slot *ch = atomic_load_explicit(cp, memory_order_acquire);
	if (!ch) {
		if (!create)
			return NULL;
		struct slot *mine = calloc(CHUNK_SLOTS, sizeof *mine);
		if (!mine)
			return NULL;
		struct slot *expected = NULL;
		if (atomic_compare_exchange_strong_explicit(cp, &expected, mine,
		                                            memory_order_acq_rel, memory_order_acquire))
			ch = mine;
		else {
			free(mine);
			ch = expected;
		}
	}
	return &ch[i & (CHUNK_SLOTS - 1)];
}

static bool same_key(const struct key_block *k, uint64_t h, const char *key, size_t len)
{
	return k->hash == h && k->len == len && !memcmp(k->data, key, len);
}

/* The slot of key, or NULL when absent (and create is false) or when the
 * table is full (*err = -ENOSPC) or memory ran out (-ENOMEM). */
static struct slot *find(struct counter_table *t, const char *key, size_t len, bool create, int *err)
{
	uint64_t h = key_hash(key, len);
	struct key_block *mine = NULL;
	*err = 0;
	for (uint64_t i = h & t->mask, probes = 0; probes <= t->mask; i = (i + 1) & t->mask, probes++) {
		struct slot *s = slot_at(t, i, create);
		if (!s) {
			if (!create)
				return NULL;   /* an unused chunk: empty */
			*err = -ENOMEM;
			goto out;
		}
		struct key_block *k = atomic_load_explicit(&s->key, memory_order_acquire);
		if (k) {
			if (same_key(k, h, key, len)) {
				if (mine) {
					free(mine);
					atomic_fetch_sub_explicit(&t->used, 1, memory_order_relaxed);
				}
				return s;
			}
			continue;
		}
		if (!create)
			return NULL;
		if (!mine) {
			if (atomic_fetch_add_explicit(&t->used, 1, memory_order_relaxed) >= t->max_keys) {
				atomic_fetch_sub_explicit(&t->used, 1, memory_order_relaxed);
				*err = -ENOSPC;
				return NULL;
			}
			mine = malloc(sizeof *mine + len);
			if (!mine) {
				atomic_fetch_sub_explicit(&t->used, 1, memory_order_relaxed);
				*err = -ENOMEM;
				return NULL;
			}
			mine->hash = h;
			mine->len = (uint32_t)len;
			memcpy(mine->data, key, len);
		}
		struct key_block *expected = NULL;
		if (atomic_compare_exchange_strong_explicit(&s->key, &expected, mine,
		                                            memory_order_acq_rel, memory_order_acquire))
			return s;
		/* lost the race for this slot: is the winner our key? */
		if (same_key(expected, h, key, len)) {
			free(mine);
			atomic_fetch_sub_explicit(&t->used, 1, memory_order_relaxed);
			return s;
		}
	}
	*err = create ? -ENOSPC : 0;
out:
	if (mine) {
		free(mine);
		atomic_fetch_sub_explicit(&t->used, 1, memory_order_relaxed);
	}
	return NULL;
}

static void mark_present(struct counter_table *t, struct slot *s)
{
	if (!atomic_load_explicit(&s->present, memory_order_acquire) &&
	    !atomic_exchange_explicit(&s->present, true, memory_order_acq_rel))
		atomic_fetch_add_explicit(&t->present, 1, memory_order_relaxed);
}

int counter_table_incr(struct counter_table *t, const char *key, size_t len, int64_t by, int64_t *value)
{
	int err;
	struct slot *s = find(t, key, len, true, &err);
	if (!s)
		return err;
	int64_t v = atomic_load_explicit(&s->value, memory_order_relaxed), nv;
	do {
		if (__builtin_add_overflow(v, by, &nv))
			return -EOVERFLOW;
	} while (!atomic_compare_exchange_weak_explicit(&s->value, &v, nv,
	                                                 memory_order_acq_rel, memory_order_relaxed));
	mark_present(t, s);
	*value = nv;
	return 0;
}

int counter_table_get(struct counter_table *t, const char *key, size_t len, int64_t *value)
{
	int err;
	struct slot *s = find(t, key, len, false, &err);
	if (!s || !atomic_load_explicit(&s->present, memory_order_acquire))
		return -ENOENT;
	*value = atomic_load_explicit(&s->value, memory_order_acquire);
	return 0;
}

int counter_table_set(struct counter_table *t, const char *key, size_t len, int64_t value)
{
	int err;
	struct slot *s = find(t, key, len, true, &err);
	if (!s)
		return err;
	atomic_store_explicit(&s->value, value, memory_order_release);
	mark_present(t, s);
	return 0;
}

int counter_table_del(struct counter_table *t, const char *key, size_t len, int64_t *old)
{
	int err;
	struct slot *s = find(t, key, len, false, &err);
	if (!s || !atomic_exchange_explicit(&s->present, false, memory_order_acq_rel))
		return -ENOENT;
	atomic_fetch_sub_explicit(&t->present, 1, memory_order_relaxed);
	*old = atomic_exchange_explicit(&s->value, 0, memory_order_acq_rel);
	return 0;
}

static int item_cmp(const void *a, const void *b)
{
	const struct counter_item *x = a, *y = b;
	size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
	int c = memcmp(x->key, y->key, n);
	if (c)
		return c;
	return x->key_len < y->key_len ? -1 : x->key_len > y->key_len;
}

long counter_table_list(struct counter_table *t, const char *prefix, size_t plen,
                        struct counter_item **items)
{
	size_t cap = 64, n = 0;
	struct counter_item *v = malloc(cap * sizeof *v);
	if (!v)
		return -ENOMEM;
	for (uint64_t i = 0; i <= t->mask; i++) {
		struct slot *ch = atomic_load_explicit(&t->chunks[i >> CHUNK_BITS], memory_order_acquire);
		if (!ch) {
			i |= CHUNK_SLOTS - 1;   /* skip the unused chunk */
			continue;
		}
		struct slot *s = &ch[i & (CHUNK_SLOTS - 1)];
		struct key_block *k = atomic_load_explicit(&s->key, memory_order_acquire);
		if (!k || !atomic_load_explicit(&s->present, memory_order_acquire))
			continue;
		if (k->len < plen || memcmp(k->data, prefix, plen))
			continue;
		if (n == cap) {
			struct counter_item *nv = realloc(v, cap * 2 * sizeof *v);
			if (!nv) {
				free(v);
				return -ENOMEM;
			}
			v = nv;
			cap *= 2;
		}
		v[n].key = k->data;
		v[n].key_len = k->len;
		v[n].value = atomic_load_explicit(&s->value, memory_order_acquire);
		n++;
	}
	qsort(v, n, sizeof *v, item_cmp);
	*items = v;
	return (long)n;
}

void counter_table_walk(struct counter_table *t, const char *prefix, size_t plen,
                        counter_list_fn cb, void *ud)
{
	struct counter_item *items = NULL;
	long n = counter_table_list(t, prefix, plen, &items);
	if (n < 0)
		cb(ud, (int)n, NULL, 0, true);
	else
		cb(ud, 0, items, (size_t)n, true);
	free(items);
}

uint32_t counter_table_count(struct counter_table *t)
{
	return atomic_load_explicit(&t->present, memory_order_relaxed);
}

/* ------------------------------------------------------------ mem: */

struct mem_store {
	struct counter_store base;
	struct counter_table *table;
};

struct mem_handle {
	struct counter base;
	struct counter_table *table;
};

static const struct counter_ops mem_ops;

static int mem_attach(struct counter_store *s, uv_loop_t *loop, struct counter **out)
{
	struct mem_handle *h = calloc(1, sizeof *h);
	if (!h)
		return -ENOMEM;
	h->base.ops = &mem_ops;
	h->base.store = s;
	h->table = ((struct mem_store *)s)->table;
	*out = &h->base;
	return 0;
}

static void mem_detach(struct counter *c)
{
	free(c);
}

static int mem_incr(struct counter *c, const char *key, size_t len, int64_t by, counter_fn cb, void *ud)
{
	int64_t v = 0;
	int e = counter_table_incr(((struct mem_handle *)c)->table, key, len, by, &v);
	cb(ud, e, v);
	return 0;
}

static int mem_get(struct counter *c, const char *key, size_t len, counter_fn cb, void *ud)
{
	int64_t v = 0;
	int e = counter_table_get(((struct mem_handle *)c)->table, key, len, &v);
	cb(ud, e, v);
	return 0;
}

static int mem_set(struct counter *c, const char *key, size_t len, int64_t value, counter_fn cb, void *ud)
{
	int e = counter_table_set(((struct mem_handle *)c)->table, key, len, value);
	cb(ud, e, value);
	return 0;
}

static int mem_del(struct counter *c, const char *key, size_t len, counter_fn cb, void *ud)
{
	int64_t v = 0;
	int e = counter_table_del(((struct mem_handle *)c)->table, key, len, &v);
	cb(ud, e, v);
	return 0;
}

static int mem_list(struct counter *c, const char *prefix, size_t plen, counter_list_fn cb, void *ud)
{
	counter_table_walk(((struct mem_handle *)c)->table, prefix, plen, cb, ud);
	return 0;
}

static void mem_close(struct counter_store *s)
{
	struct mem_store *m = (struct mem_store *)s;
	counter_table_free(m->table);
	free(m);
}

static const struct counter_ops mem_ops = {
	mem_attach, mem_detach, mem_incr, mem_get, mem_set, mem_del, mem_list, mem_close,
};

int counter_mem_open(const struct counter_options *o, struct counter_store **out)
{
	struct mem_store *m = calloc(1, sizeof *m);
	if (!m)
		return -ENOMEM;
	m->table = counter_table_new(o->max_keys);
	if (!m->table) {
		free(m);
		return -ENOMEM;
	}
	m->base.ops = &mem_ops;
	m->base.kind = STORE_MEM;
	*out = &m->base;
	return 0;
}
