/*
 * raft/kv.c -- etcd's MVCC key-value model (see kv.h), small and plain.
 *
 * Layout: the keys sorted by bytes in chunks of at most KCHUNK (a B+-tree
 * of depth two: binary search over the chunks' last keys, then within one;
 * a range is a walk from the lower bound), each key with its revisions
 * oldest first.
 * A read at revision R sees, per key, its newest revision <= R, unless
 * that is a tombstone.  A write request gets one write revision W = the
 * current + 1; every change it makes is stamped W, and the store's
 * revision moves to W only if something changed -- so a delete that finds
 * nothing and a txn whose branch only reads leave it where it was, as in
 * etcd.  Reads inside a txn see its earlier writes (they read at W once
 * one happened).
 *
 * Compaction at C drops, per key, every revision older than its newest
 * one at or below C (and that one too if it is a tombstone), so reads at
 * C and above are unchanged, and forgets keys left with nothing; the
 * arrays it leaves mostly empty shrink, so memory follows what is kept.
 * It is O(keys) in one step; the node's log compaction and a background
 * compactor are later work.
 *
 * Inserting a new key moves at most a chunk's keys, and a split moves the
 * chunk directory's pointers (keys / KCHUNK of them, once per KCHUNK / 2
 * inserts at most): one sorted array made every new key O(keys), which
 * under `etcdctl check perf` (random keys, hundreds of thousands) took
 * most of each member's loop.  A struct key moves with its chunk, so a
 * pointer to one holds only until the next insert or compaction.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/invariant.h"
#include "base/json.h"
#include "raft/kv.h"
#include "store/etcd.h"

#include <cjson/cJSON.h>

struct rev {
	int64_t mod, create, version, lease;
	char *val;
	uint32_t vlen;
	bool tomb;
};

#define KCHUNK 128
#define FENCE 24 /* bytes of a key kept inline: in the chunk directory, and in the key */

/* pre: the key's first FENCE bytes (fewer when it is shorter), so the
 * search within a chunk compares in the chunk's own array and reaches
 * for k, elsewhere in the heap, only when the two agree that far. */
struct key {
	char *k;
	uint32_t klen;
	uint32_t n, cap;
	struct rev *revs;
	char pre[FENCE];
};

struct chunk {
	uint32_t n;
	struct key k[KCHUNK];
};

/* A chunk's last key as the directory keeps it: its length and first
 * FENCE bytes, so lower_bound's search over the chunks reads one small
 * array instead of a chunk and a key per step (two cache misses each, a
 * tenth of a follower's CPU under check perf's random keys), and needs
 * the key itself only when k shares those bytes with it. */
struct fence {
	uint32_t klen;
	char p[FENCE];
};

/* A key's place: chunk c, offset o; c == nch is the end.  Always o < the
 * chunk's n (no chunk is empty). */
struct kpos {
	size_t c;
	uint32_t o;
};

struct kv {
	struct kv_limits lim;
	struct chunk **ch;  /* in key order, none empty */
	struct fence *fk;   /* [i]: ch[i]'s last key (fence_set after every change of it) */
	size_t nch, capch;
	size_t n;           /* keys in all */
	int64_t rev, compacted;
	uint64_t bytes;   /* kv_bytes: every revision kept, by rev_cost */
	struct kv_lease *leases;
	size_t nl, capl;
	/* the write in progress */
	int64_t w;        /* its revision */
	bool dirty;       /* it changed something */
	/* a snapshot being taken in slices (kv_snap_begin): while it is,
	 * compaction is done in the numbers only (compacted, bytes) and its
	 * freeing waits for kv_snap_end, so every revision at or below the
	 * snapshot's stays where the slices read it */
	struct kv_snap *snap;
	uint64_t held_bytes; /* what the held compaction takes out of bytes */
};

struct kv_snap {
	int64_t rev, compacted;   /* the store's, at kv_snap_begin */
	struct kv_lease *leases;  /* copied then: grants and revokes go on */
	size_t nl;
	struct buf last;          /* the last key written (the cursor) */
	uint32_t rev_at;          /* 0, or the revisions of last written so far (a key
	                             with a long history spans slices) */
	bool started, done;
	size_t at;                /* out->len where this snapshot starts */
	size_t count_at;          /* where its key count goes, once known */
	uint64_t keys;            /* written so far */
	size_t slices;
};

struct kv *kv_new(const struct kv_limits *lim)
{
	struct kv *kv = calloc(1, sizeof *kv);
	if (!kv)
		return NULL;
	if (lim)
		kv->lim = *lim;
	if (kv->lim.min_lease_ttl <= 0)
		kv->lim.min_lease_ttl = KV_LEASE_MIN_TTL;
	kv->rev = 1; /* etcd: a new store is at revision 1 */
	return kv;
}

void kv_free(struct kv *kv)
{
	if (!kv)
		return;
	if (kv->snap) {
		buf_free(&kv->snap->last);
		free(kv->snap->leases);
		free(kv->snap);
	}
	for (size_t c = 0; c < kv->nch; c++) {
		for (uint32_t i = 0; i < kv->ch[c]->n; i++) {
			struct key *key = &kv->ch[c]->k[i];
			for (uint32_t j = 0; j < key->n; j++)
				free(key->revs[j].val);
			free(key->revs);
			free(key->k);
		}
		free(kv->ch[c]);
	}
	free(kv->ch);
	free(kv->fk);
	free(kv->leases);
	free(kv);
}

int64_t kv_revision(const struct kv *kv) { return kv->rev; }
uint64_t kv_bytes(const struct kv *kv) { return kv->bytes; }
bool kv_alarm_nospace(const struct kv *kv) { return kv->lim.quota_bytes && kv->bytes > kv->lim.quota_bytes; }
int64_t kv_compact_revision(const struct kv *kv) { return kv->compacted; }
size_t kv_keys(const struct kv *kv) { return kv->n; }

bool kv_op_writes(enum kv_op op)
{
	return op == KV_OP_PUT || op == KV_OP_DELETE || op == KV_OP_TXN || op == KV_OP_COMPACT ||
	       op == KV_OP_LEASE_GRANT || op == KV_OP_LEASE_REVOKE;
}

/* ------------------------------------------------------------ keys */

static int keycmp(const char *a, size_t an, const char *b, size_t bn)
{
	int c = memcmp(a, b, an < bn ? an : bn);
	return c ? c : (an > bn) - (an < bn);
}

static struct key *kp_key(const struct kv *kv, struct kpos p) { return &kv->ch[p.c]->k[p.o]; }

static void kp_next(const struct kv *kv, struct kpos *p)
{
	if (++p->o == kv->ch[p->c]->n) {
		p->c++;
		p->o = 0;
	}
}

/* Every key from p on, in order: for (KEYS_FROM(kv, p, start)) ... kp_key(kv, p) */
#define KEYS_FROM(kv, p, start) struct kpos p = (start); p.c < (kv)->nch; kp_next((kv), &p)
#define KEYS_ALL(kv, p) KEYS_FROM(kv, p, ((struct kpos){0, 0}))

static void fence_set(struct kv *kv, size_t ci)
{
	const struct chunk *c = kv->ch[ci];
	const struct key *last = &c->k[c->n - 1];
	kv->fk[ci].klen = last->klen;
	memcpy(kv->fk[ci].p, last->k, last->klen < FENCE ? last->klen : FENCE);
}

/* keycmp(key, k), from its inline first bytes when they decide it
 * (fence_cmp's rule): a chunk holds keys side by side and their bytes
 * each in a block of its own, and under `etcdctl check perf` (random
 * keys, hundreds of thousands) fetching those blocks in the search was a
 * fifth of a follower's CPU. */
static int key_cmp(const struct key *key, const char *k, size_t kn)
{
	size_t fl = key->klen < FENCE ? key->klen : FENCE;
	int c = memcmp(key->pre, k, fl < kn ? fl : kn);
	if (c)
		return c;
	if (key->klen <= FENCE) /* the whole key */
		return (key->klen > kn) - (key->klen < kn);
	if (kn <= FENCE) /* k is a prefix of it */
		return 1;
	return keycmp(key->k, key->klen, k, kn);
}

/* keycmp(chunk ci's last key, k) */
static int fence_cmp(const struct kv *kv, size_t ci, const char *k, size_t kn)
{
	const struct fence *f = &kv->fk[ci];
	size_t fl = f->klen < FENCE ? f->klen : FENCE;
	int c = memcmp(f->p, k, fl < kn ? fl : kn);
	if (c)
		return c;
	if (f->klen <= FENCE) /* the whole key */
		return (f->klen > kn) - (f->klen < kn);
	if (kn <= FENCE) /* k is a prefix of it */
		return 1;
	const struct chunk *ch = kv->ch[ci];
	return keycmp(ch->k[ch->n - 1].k, ch->k[ch->n - 1].klen, k, kn);
}

/* The first key >= k (the end if none). */
static struct kpos lower_bound(const struct kv *kv, const char *k, size_t kn)
{
	size_t lo = 0, hi = kv->nch;
	while (lo < hi) { /* the first chunk whose last key is >= k */
		size_t mid = lo + (hi - lo) / 2;
		if (fence_cmp(kv, mid, k, kn) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == kv->nch)
		return (struct kpos){kv->nch, 0};
	const struct chunk *c = kv->ch[lo];
	uint32_t a = 0, b = c->n - 1;
	while (a < b) {
		uint32_t mid = a + (b - a) / 2;
		if (key_cmp(&c->k[mid], k, kn) < 0)
			a = mid + 1;
		else
			b = mid;
	}
	return (struct kpos){lo, a};
}

/* The key at p (lower_bound's place for k) if it is k, else NULL. */
static struct key *key_at(const struct kv *kv, struct kpos p, const char *k, size_t kn)
{
	if (p.c < kv->nch && key_cmp(kp_key(kv, p), k, kn) == 0)
		return kp_key(kv, p);
	return NULL;
}

static struct key *find(const struct kv *kv, const char *k, size_t kn)
{
	return key_at(kv, lower_bound(kv, k, kn), k, kn);
}

/* The last key, or NULL. */
static const struct key *last_key(const struct kv *kv)
{
	if (!kv->nch)
		return NULL;
	const struct chunk *c = kv->ch[kv->nch - 1];
	return &c->k[c->n - 1];
}

/* A new empty chunk at directory place at (filled at once by the caller). */
static struct chunk *chunk_insert(struct kv *kv, size_t at)
{
	if (kv->nch == kv->capch) {
		kv->capch = kv->capch ? 2 * kv->capch : 16;
		kv->ch = realloc(kv->ch, kv->capch * sizeof *kv->ch);
		kv->fk = realloc(kv->fk, kv->capch * sizeof *kv->fk);
		INVARIANT(kv->ch != NULL && kv->fk != NULL);
	}
	memmove(&kv->ch[at + 1], &kv->ch[at], (kv->nch - at) * sizeof *kv->ch);
	memmove(&kv->fk[at + 1], &kv->fk[at], (kv->nch - at) * sizeof *kv->fk);
	kv->nch++;
	struct chunk *c = malloc(sizeof *c);
	INVARIANT(c != NULL);
	c->n = 0;
	kv->ch[at] = c;
	return c;
}

/* A new key k at p, lower_bound's place for it (k is not there). */
static struct key *add_at(struct kv *kv, struct kpos p, const char *k, size_t kn)
{
	size_t split = SIZE_MAX;
	if (p.c == kv->nch) {
		/* past every key: the last chunk's end, or a new chunk when it
		 * is full (keys added in order, as a restore does, fill chunks) */
		if (kv->nch == 0 || kv->ch[kv->nch - 1]->n == KCHUNK)
			chunk_insert(kv, kv->nch);
		p.c = kv->nch - 1;
		p.o = kv->ch[p.c]->n;
	} else if (kv->ch[p.c]->n == KCHUNK) {
		/* full: its upper half goes to a new chunk after it */
		struct chunk *b = chunk_insert(kv, p.c + 1), *a = kv->ch[p.c];
		memcpy(b->k, a->k + KCHUNK / 2, (KCHUNK - KCHUNK / 2) * sizeof *a->k);
		b->n = KCHUNK - KCHUNK / 2;
		a->n = KCHUNK / 2;
		split = p.c;
		if (p.o > a->n) {
			p.c++;
			p.o -= a->n;
		}
	}
	struct chunk *c = kv->ch[p.c];
	memmove(&c->k[p.o + 1], &c->k[p.o], (c->n - p.o) * sizeof *c->k);
	c->n++;
	kv->n++;
	struct key *key = &c->k[p.o];
	memset(key, 0, sizeof *key);
	key->k = malloc(kn ? kn : 1);
	INVARIANT(key->k != NULL);
	memcpy(key->k, k, kn);
	key->klen = (uint32_t)kn;
	memcpy(key->pre, k, kn < FENCE ? kn : FENCE);
	if (split != SIZE_MAX) {
		fence_set(kv, split);
		fence_set(kv, split + 1);
	} else if (p.o == c->n - 1) {
		fence_set(kv, p.c);
	}
	return key;
}

static struct key *find_or_add(struct kv *kv, const char *k, size_t kn)
{
	struct kpos p = lower_bound(kv, k, kn);
	struct key *key = key_at(kv, p, k, kn);
	return key ? key : add_at(kv, p, k, kn);
}

/* The revision of key visible at r, or NULL (none, or deleted). */
static const struct rev *visible(const struct key *key, int64_t r)
{
	for (uint32_t j = key->n; j-- > 0;)
		if (key->revs[j].mod <= r)
			return key->revs[j].tomb ? NULL : &key->revs[j];
	return NULL;
}

static struct rev *add_rev(struct key *key)
{
	if (key->n == key->cap) {
		key->cap = key->cap ? 2 * key->cap : 2;
		key->revs = realloc(key->revs, key->cap * sizeof *key->revs);
		INVARIANT(key->revs != NULL);
	}
	struct rev *r = &key->revs[key->n++];
	memset(r, 0, sizeof *r);
	return r;
}

/* What one kept revision counts toward kv_bytes (and the quota): its key,
 * its value, and a fixed share for its numbers and bookkeeping.  Computed
 * the same on every replica, from the same history. */
static uint64_t rev_cost(const struct key *key, const struct rev *r)
{
	return (uint64_t)key->klen + r->vlen + 48;
}

/* The revision reads see now: inside a write that changed something, its own. */
static int64_t view(const struct kv *kv)
{
	return kv->dirty ? kv->w : kv->rev;
}

/* Is key in [k, end)?  end empty: k only; end "\0": k and everything after. */
struct range {
	const char *k, *end;
	size_t kn, en;
};

static bool in_range(const struct range *r, const char *k, size_t kn)
{
	if (r->en == 0)
		return keycmp(k, kn, r->k, r->kn) == 0;
	if (keycmp(k, kn, r->k, r->kn) < 0)
		return false;
	if (r->en == 1 && r->end[0] == 0)
		return true;
	return keycmp(k, kn, r->end, r->en) < 0;
}

/* ------------------------------------------------------------ JSON out */

static void put_i64s(struct json_writer *w, const char *key, int64_t v)
{
	char tmp[24];
	size_t n = fmt_i64(tmp, v);
	json_kv_strn(w, key, tmp, n);
}

static void put_b64(struct json_writer *w, const char *key, const char *p, size_t n)
{
	struct buf b = BUF_INIT;
	etcd_b64_encode(&b, p, n);
	json_kv_strn(w, key, b.data ? b.data : "", b.len);
	buf_free(&b);
}

static void put_kv(struct json_writer *w, const struct key *key, const struct rev *r, bool keys_only)
{
	json_obj_begin(w);
	put_b64(w, "key", key->k, key->klen);
	put_i64s(w, "create_revision", r->create);
	put_i64s(w, "mod_revision", r->mod);
	put_i64s(w, "version", r->version);
	if (!keys_only && r->vlen)
		put_b64(w, "value", r->val, r->vlen);
	if (r->lease)
		put_i64s(w, "lease", r->lease);
	json_obj_end(w);
}

/* One "name":"digits" member of the header at t + n (a comma first
 * unless it opens the object); returns the new length. */
static size_t header_num(char *t, size_t n, const char *name, size_t nl, uint64_t v, bool sign)
{
	if (t[n - 1] != '{')
		t[n++] = ',';
	t[n++] = '"';
	memcpy(t + n, name, nl);
	n += nl;
	memcpy(t + n, "\":\"", 3);
	n += 3;
	n += sign ? fmt_i64(t + n, (int64_t)v) : fmt_u64(t + n, v);
	t[n++] = '"';
	return n;
}

/* "header":{...}, built in one piece and written raw: it heads every
 * answer on every member (each applies every write), and key by key
 * through the writer, escaping names that need none, it was a tenth of a
 * follower's instructions per put.  The same bytes as the writer's. */
static void header_w(struct json_writer *w, const struct kv_header *h, int64_t rev)
{
	char t[16 + 4 * (16 + 24)];
	size_t n = 0;
	memcpy(t, "\"header\":{", 10);
	n = 10;
	if (h) {
		n = header_num(t, n, "cluster_id", 10, h->cluster_id, false);
		n = header_num(t, n, "member_id", 9, h->member_id, false);
	}
	if (rev)
		n = header_num(t, n, "revision", 8, (uint64_t)rev, true);
	if (h)
		n = header_num(t, n, "raft_term", 9, h->raft_term, false);
	t[n++] = '}';
	INVARIANT(n <= sizeof t);
	json_raw(w, t, n);
}

void kv_put_header(struct buf *out, const struct kv *kv, const struct kv_header *h, bool with_revision)
{
	struct json_writer w;
	json_writer_init(&w, out);
	/* a member of an object the caller has begun: write "header":{...} */
	header_w(&w, h, with_revision ? kv->rev : 0);
}

int kv_http_status(int code)
{
	switch (code) {
	case 0: return 200;
	case KV_CODE_INVALID: case KV_CODE_OUT_OF_RANGE: return 400;
	case KV_CODE_PRECONDITION: return 412; /* grpc-gateway's mapping of FailedPrecondition */
	case KV_CODE_NOT_FOUND: return 404;
	case KV_CODE_DEADLINE: return 504;
	case KV_CODE_RESOURCE: return 429;
	case KV_CODE_UNAVAILABLE: return 503;
	}
	return 500;
}

int kv_put_error(struct buf *out, int code, const char *message)
{
	struct json_writer w;
	json_writer_init(&w, out);
	json_obj_begin(&w);
	json_kv_str(&w, "error", message);
	json_kv_str(&w, "message", message);
	json_kv_i64(&w, "code", code);
	json_obj_end(&w);
	return kv_http_status(code);
}

#define E_NO_KEY "etcdserver: key is not provided"
#define E_VALUE_PROVIDED "etcdserver: value is provided"
#define E_LEASE_PROVIDED "etcdserver: lease is provided"
#define E_FUTURE "etcdserver: mvcc: required revision is a future revision"
#define E_COMPACTED "etcdserver: mvcc: required revision has been compacted"
#define E_LEASE_NOT_FOUND "etcdserver: requested lease not found"
#define E_LEASE_EXISTS "etcdserver: lease already exists"
#define E_DUP "etcdserver: duplicate key given in txn request"
#define E_TOO_LARGE "etcdserver: range response is too large; narrow it with limit or a smaller range"

/* An error found while executing: code and message, written by the caller. */
struct err {
	int code;
	const char *msg;
};

static int fail(struct err *e, int code, const char *msg)
{
	e->code = code;
	e->msg = msg;
	return -1;
}

/* ------------------------------------------------------------ JSON in */

static int get_i64(const cJSON *o, const char *name, int64_t *out)
{
	*out = 0;
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	if (!v || cJSON_IsNull(v))
		return 0;
	if (cJSON_IsString(v))
		return json_parse_i64(v->valuestring, strlen(v->valuestring), out) == 0 ? 0 : -1;
	if (cJSON_IsNumber(v))
		return json_get_i64(o, name, out) == 0 ? 0 : -1;
	return -1;
}

static int get_bool(const cJSON *o, const char *name, bool *out)
{
	*out = false;
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	if (!v || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsBool(v))
		return -1;
	*out = cJSON_IsTrue(v);
	return 0;
}

/* A base64 member decoded into b (emptied first); absent is empty. */
static int get_bytes(const cJSON *o, const char *name, struct buf *b)
{
	buf_reset(b);
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	if (!v || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsString(v))
		return -1;
	return etcd_b64_decode(b, v->valuestring, strlen(v->valuestring)) < 0 ? -1 : 0;
}

/* A proto enum: its name, or its number; absent is 0. */
static int get_enum(const cJSON *o, const char *name, const char *const *names, int n, int *out)
{
	*out = 0;
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	if (!v || cJSON_IsNull(v))
		return 0;
	if (cJSON_IsNumber(v)) {
		int64_t x;
		if (json_get_i64(o, name, &x) < 0 || x < 0 || x >= n)
			return -1;
		*out = (int)x;
		return 0;
	}
	if (!cJSON_IsString(v))
		return -1;
	for (int i = 0; i < n; i++)
		if (strcmp(v->valuestring, names[i]) == 0) {
			*out = i;
			return 0;
		}
	return -1;
}

int kv_json_i64(const char *body, size_t len, const char *key, int64_t *out)
{
	cJSON *o = json_parse(body, len, NULL);
	if (!o || !cJSON_IsObject(o)) {
		json_free(o);
		return -EINVAL;
	}
	int rc = get_i64(o, key, out);
	bool present = cJSON_GetObjectItemCaseSensitive(o, key) != NULL;
	json_free(o);
	return rc < 0 ? -EINVAL : present ? 0 : -ENOENT;
}

bool kv_json_bool(const char *body, size_t len, const char *key)
{
	cJSON *o = json_parse(body, len, NULL);
	bool v = false;
	if (o && cJSON_IsObject(o) && get_bool(o, key, &v) < 0)
		v = false;
	json_free(o);
	return v;
}

/* ------------------------------------------------------------ range */

struct hit {
	const struct key *key;
	const struct rev *rev;
};

static const char *const SORT_ORDER[] = {"NONE", "ASCEND", "DESCEND"};
static const char *const SORT_TARGET[] = {"KEY", "VERSION", "CREATE", "MOD", "VALUE"};
static int sort_target, sort_desc;

static int hit_cmp(const void *pa, const void *pb)
{
	const struct hit *a = pa, *b = pb;
	int c = 0;
	switch (sort_target) {
	case 0: c = keycmp(a->key->k, a->key->klen, b->key->k, b->key->klen); break;
	case 1: c = (a->rev->version > b->rev->version) - (a->rev->version < b->rev->version); break;
	case 2: c = (a->rev->create > b->rev->create) - (a->rev->create < b->rev->create); break;
	case 3: c = (a->rev->mod > b->rev->mod) - (a->rev->mod < b->rev->mod); break;
	case 4: c = keycmp(a->rev->val, a->rev->vlen, b->rev->val, b->rev->vlen); break;
	}
	if (c == 0) /* stable on the key, so equal targets come in key order */
		c = keycmp(a->key->k, a->key->klen, b->key->k, b->key->klen);
	return sort_desc ? -c : c;
}

static int parse_range(const cJSON *o, struct buf *k, struct buf *end, struct err *e)
{
	if (get_bytes(o, "key", k) < 0 || get_bytes(o, "range_end", end) < 0)
		return fail(e, KV_CODE_INVALID, "bad key or range_end: want base64");
	if (k->len == 0)
		return fail(e, KV_CODE_INVALID, E_NO_KEY);
	return 0;
}

/* Writes the members of a RangeResponse after its header. */
static int do_range(struct kv *kv, const cJSON *o, struct json_writer *w, bool in_txn, const struct kv_header *h,
                    struct err *e)
{
	struct buf k = BUF_INIT, end = BUF_INIT;
	int64_t limit, rev, minmod, maxmod, mincre, maxcre;
	bool keys_only, count_only;
	int order, target;
	int rc = -1;
	if (parse_range(o, &k, &end, e) < 0)
		goto out;
	if (get_i64(o, "limit", &limit) < 0 || get_i64(o, "revision", &rev) < 0 ||
	    get_bool(o, "keys_only", &keys_only) < 0 || get_bool(o, "count_only", &count_only) < 0 ||
	    get_enum(o, "sort_order", SORT_ORDER, 3, &order) < 0 ||
	    get_enum(o, "sort_target", SORT_TARGET, 5, &target) < 0 ||
	    get_i64(o, "min_mod_revision", &minmod) < 0 || get_i64(o, "max_mod_revision", &maxmod) < 0 ||
	    get_i64(o, "min_create_revision", &mincre) < 0 || get_i64(o, "max_create_revision", &maxcre) < 0) {
		fail(e, KV_CODE_INVALID, "bad range request");
		goto out;
	}
	int64_t at = view(kv);
	if (rev > at) {
		fail(e, KV_CODE_OUT_OF_RANGE, E_FUTURE);
		goto out;
	}
	if (rev > 0 && rev < kv->compacted) {
		fail(e, KV_CODE_OUT_OF_RANGE, E_COMPACTED);
		goto out;
	}
	if (rev <= 0)
		rev = at;
	struct range r = {k.data, end.data, k.len, end.len};
	struct hit *hits = NULL;
	size_t nh = 0, caph = 0;
	for (KEYS_FROM(kv, p, lower_bound(kv, k.data, k.len))) {
		const struct key *key = kp_key(kv, p);
		if (!in_range(&r, key->k, key->klen))
			break;
		const struct rev *v = visible(key, rev);
		if (!v || (minmod && v->mod < minmod) || (maxmod && v->mod > maxmod) ||
		    (mincre && v->create < mincre) || (maxcre && v->create > maxcre))
			continue;
		if (nh == caph) {
			caph = caph ? 2 * caph : 16;
			hits = realloc(hits, caph * sizeof *hits);
			INVARIANT(hits != NULL);
		}
		hits[nh++] = (struct hit){key, v};
		if (r.en == 0)
			break;
	}
	/* etcd: an ascending key order is the default; a target without an order sorts ascending */
	if (order == 0 && target != 0)
		order = 1;
	if (nh > 1 && order != 0 && !(order == 1 && target == 0)) {
		sort_target = target;
		sort_desc = order == 2;
		qsort(hits, nh, sizeof *hits, hit_cmp);
	}
	size_t shown = nh;
	if (limit > 0 && (size_t)limit < nh)
		shown = (size_t)limit;
	if (kv->lim.max_range_bytes && !count_only) {
		uint64_t bytes = 0;
		for (size_t i = 0; i < shown; i++)
			bytes += hits[i].key->klen + (keys_only ? 0 : hits[i].rev->vlen) + 64;
		if (bytes > kv->lim.max_range_bytes) {
			free(hits);
			fail(e, KV_CODE_RESOURCE, E_TOO_LARGE);
			goto out;
		}
	}
	header_w(w, in_txn ? NULL : h, view(kv));
	if (!count_only && shown) {
		json_key(w, "kvs");
		json_arr_begin(w);
		for (size_t i = 0; i < shown; i++)
			put_kv(w, hits[i].key, hits[i].rev, keys_only);
		json_arr_end(w);
	}
	if (shown < nh && !count_only)
		json_kv_bool(w, "more", true);
	if (nh)
		put_i64s(w, "count", (int64_t)nh);
	free(hits);
	rc = 0;
out:
	buf_free(&k);
	buf_free(&end);
	return rc;
}

/* ------------------------------------------------------------ writes */

static struct kv_lease *lease_find(const struct kv *kv, int64_t id, size_t *at)
{
	for (size_t i = 0; i < kv->nl; i++)
		if (kv->leases[i].id == id) {
			if (at)
				*at = i;
			return &kv->leases[i];
		}
	return NULL;
}

/* A new revision of key (found or just added by do_put). */
static void put_one(struct kv *kv, struct key *key, const char *v, size_t vn, int64_t lease,
                    struct json_writer *prev_w)
{
	const struct rev *prev = visible(key, view(kv));
	if (prev && prev_w) {
		json_key(prev_w, "prev_kv");
		put_kv(prev_w, key, prev, false);
	}
	int64_t create = prev ? prev->create : kv->w, version = prev ? prev->version + 1 : 1;
	struct rev *r = add_rev(key);
	r->mod = kv->w;
	r->create = create;
	r->version = version;
	r->lease = lease;
	r->vlen = (uint32_t)vn;
	r->val = malloc(vn ? vn : 1);
	INVARIANT(r->val != NULL);
	memcpy(r->val, v, vn);
	kv->bytes += rev_cost(key, r);
	kv->dirty = true;
}

/* A put, however it came (gateway JSON, a txn's request_put, the log's
 * binary form): the checks, then the new revision; the answer's header
 * (and prev_kv) go to w. */
static int put_exec(struct kv *kv, const struct kv_put *p, struct json_writer *w, bool in_txn,
                    const struct kv_header *h, struct err *e)
{
	bool ign_val = p->flags & KV_PUT_IGNORE_VALUE, ign_lease = p->flags & KV_PUT_IGNORE_LEASE;
	int64_t lease = p->lease;
	if (p->klen == 0)
		return fail(e, KV_CODE_INVALID, E_NO_KEY);
	if (lease && !ign_lease && !lease_find(kv, lease, NULL))
		return fail(e, KV_CODE_NOT_FOUND, E_LEASE_NOT_FOUND);
	/* one search for the key serves the checks and the put: nothing
	 * moves keys in between (a new key goes in at `at`) */
	struct kpos at = lower_bound(kv, p->key, p->klen);
	struct key *old = key_at(kv, at, p->key, p->klen);
	const struct rev *prev = old ? visible(old, view(kv)) : NULL;
	if ((ign_val || ign_lease) && !prev)
		return fail(e, KV_CODE_INVALID, "etcdserver: key not found");
	/* ignore_value: the previous value, copied first, since the new
	 * revision may move the array it lives in */
	struct buf val = BUF_INIT;
	const char *v = p->value;
	size_t vn = p->vlen;
	if (ign_val) {
		buf_append(&val, prev->val, prev->vlen);
		v = val.data ? val.data : "";
		vn = val.len;
	}
	if (ign_lease)
		lease = prev->lease;
	/* the header first needs the revision after the put: W */
	int64_t after = kv->w;
	header_w(w, in_txn ? NULL : h, after);
	put_one(kv, old ? old : add_at(kv, at, p->key, p->klen), v, vn, lease,
	        (p->flags & KV_PUT_PREV_KV) ? w : NULL);
	buf_free(&val);
	return 0;
}

static int do_put(struct kv *kv, const cJSON *o, struct json_writer *w, bool in_txn, const struct kv_header *h,
                  struct err *e)
{
	struct buf k = BUF_INIT, v = BUF_INIT;
	int64_t lease;
	bool prev_kv, ign_val, ign_lease;
	int rc;
	if (get_bytes(o, "key", &k) < 0 || get_bytes(o, "value", &v) < 0 || get_i64(o, "lease", &lease) < 0 ||
	    get_bool(o, "prev_kv", &prev_kv) < 0 || get_bool(o, "ignore_value", &ign_val) < 0 ||
	    get_bool(o, "ignore_lease", &ign_lease) < 0) {
		rc = fail(e, KV_CODE_INVALID, "bad put request");
	} else {
		struct kv_put p = {k.data ? k.data : "", v.data ? v.data : "", k.len, v.len, lease,
		                   (prev_kv ? KV_PUT_PREV_KV : 0u) | (ign_val ? KV_PUT_IGNORE_VALUE : 0u) |
		                           (ign_lease ? KV_PUT_IGNORE_LEASE : 0u)};
		rc = put_exec(kv, &p, w, in_txn, h, e);
	}
	buf_free(&k);
	buf_free(&v);
	return rc;
}

void kv_put_encode(struct buf *out, const struct kv_put *p)
{
	INVARIANT(p->klen <= UINT32_MAX);
	INVARIANT((p->flags & ~7u) == 0);
	uint8_t head[KV_PUT_BIN_HEAD];
	head[0] = KV_PUT_BIN;
	head[1] = (uint8_t)p->flags;
	for (int i = 0; i < 8; i++)
		head[2 + i] = (uint8_t)((uint64_t)p->lease >> (8 * i));
	for (int i = 0; i < 4; i++)
		head[10 + i] = (uint8_t)((uint64_t)p->klen >> (8 * i));
	buf_reserve(out, sizeof head + p->klen + p->vlen);
	buf_append(out, head, sizeof head);
	buf_append(out, p->key, p->klen);
	buf_append(out, p->value, p->vlen);
}

int kv_put_decode(const char *body, size_t len, struct kv_put *p)
{
	const uint8_t *b = (const uint8_t *)body;
	if (len < KV_PUT_BIN_HEAD || b[0] != KV_PUT_BIN || (b[1] & ~7u))
		return -EINVAL;
	uint64_t lease = 0;
	uint32_t klen = 0;
	for (int i = 0; i < 8; i++)
		lease |= (uint64_t)b[2 + i] << (8 * i);
	for (int i = 0; i < 4; i++)
		klen |= (uint32_t)b[10 + i] << (8 * i);
	if (klen > len - KV_PUT_BIN_HEAD)
		return -EINVAL;
	p->flags = b[1];
	p->lease = (int64_t)lease;
	p->key = body + KV_PUT_BIN_HEAD;
	p->klen = klen;
	p->value = p->key + klen;
	p->vlen = len - KV_PUT_BIN_HEAD - klen;
	return 0;
}

/* Delete every visible key in the range at W; prev_w gets prev_kvs. */
static int64_t delete_range(struct kv *kv, const struct range *r, struct json_writer *prev_w)
{
	int64_t n = 0;
	bool open = false;
	for (KEYS_FROM(kv, p, lower_bound(kv, r->k, r->kn))) {
		struct key *key = kp_key(kv, p);
		if (!in_range(r, key->k, key->klen))
			break;
		const struct rev *v = visible(key, view(kv));
		if (!v)
			continue;
		if (prev_w) {
			if (!open) {
				json_key(prev_w, "prev_kvs");
				json_arr_begin(prev_w);
				open = true;
			}
			put_kv(prev_w, key, v, false);
		}
		struct rev *t = add_rev(key);
		t->mod = kv->w;
		t->tomb = true;
		kv->bytes += rev_cost(key, t);
		n++;
		kv->dirty = true;
		if (r->en == 0)
			break;
	}
	if (open)
		json_arr_end(prev_w);
	return n;
}

static int do_delete(struct kv *kv, const cJSON *o, struct json_writer *w, bool in_txn, const struct kv_header *h,
                     struct err *e)
{
	struct buf k = BUF_INIT, end = BUF_INIT;
	bool prev_kv;
	int rc = -1;
	if (parse_range(o, &k, &end, e) < 0)
		goto out;
	if (get_bool(o, "prev_kv", &prev_kv) < 0) {
		fail(e, KV_CODE_INVALID, "bad deleterange request");
		goto out;
	}
	struct range r = {k.data, end.data, k.len, end.len};
	/* the answer's members: header (revision after), deleted, prev_kvs */
	struct buf tail = BUF_INIT;
	struct json_writer tw;
	json_writer_init(&tw, &tail);
	json_obj_begin(&tw); /* a scratch object, its braces dropped below */
	int64_t n = delete_range(kv, &r, prev_kv ? &tw : NULL);
	json_obj_end(&tw);
	header_w(w, in_txn ? NULL : h, view(kv));
	if (n)
		put_i64s(w, "deleted", n);
	if (tail.len > 2) {
		json_key(w, "prev_kvs");
		/* tail is {"prev_kvs":[...]}: take the array */
		const char *arr = memchr(tail.data, '[', tail.len);
		json_raw(w, arr, (size_t)(tail.data + tail.len - 1 - arr));
	}
	buf_free(&tail);
	rc = 0;
out:
	buf_free(&k);
	buf_free(&end);
	return rc;
}

/* ------------------------------------------------------------ txn */

static const char *const CMP_TARGET[] = {"VERSION", "CREATE", "MOD", "VALUE", "LEASE"};
static const char *const CMP_RESULT[] = {"EQUAL", "GREATER", "LESS", "NOT_EQUAL"};

static int compare_one(struct kv *kv, const cJSON *c, bool *ok, struct err *e)
{
	struct buf k = BUF_INIT, want = BUF_INIT;
	int target, result, rc = -1;
	int64_t x = 0;
	if (get_bytes(c, "key", &k) < 0 || get_enum(c, "target", CMP_TARGET, 5, &target) < 0 ||
	    get_enum(c, "result", CMP_RESULT, 4, &result) < 0) {
		fail(e, KV_CODE_INVALID, "bad compare");
		goto out;
	}
	static const char *const field[] = {"version", "create_revision", "mod_revision", "value", "lease"};
	if (target == 3 ? get_bytes(c, "value", &want) < 0 : get_i64(c, field[target], &x) < 0) {
		fail(e, KV_CODE_INVALID, "bad compare");
		goto out;
	}
	if (k.len == 0) {
		fail(e, KV_CODE_INVALID, E_NO_KEY);
		goto out;
	}
	const struct key *key = find(kv, k.data, k.len);
	const struct rev *v = key ? visible(key, view(kv)) : NULL;
	int c3;
	if (target == 3) {
		if (!v) { /* etcd: a value compare on a missing key is false */
			*ok = false;
			rc = 0;
			goto out;
		}
		c3 = keycmp(v->val, v->vlen, want.data ? want.data : "", want.len);
	} else {
		int64_t have = 0;
		if (v)
			have = target == 0 ? v->version : target == 1 ? v->create : target == 2 ? v->mod : v->lease;
		c3 = (have > x) - (have < x);
	}
	*ok = result == 0 ? c3 == 0 : result == 1 ? c3 > 0 : result == 2 ? c3 < 0 : c3 != 0;
	rc = 0;
out:
	buf_free(&k);
	buf_free(&want);
	return rc;
}

static const char *const REQ_NAMES[] = {"request_range", "request_put", "request_delete_range", "request_txn"};

/* etcd refuses a branch that writes one key twice (two puts, or a put
 * inside a deleted range). */
static int check_dups(const cJSON *ops, struct err *e)
{
	int n = cJSON_GetArraySize(ops);
	for (int i = 0; i < n; i++) {
		const cJSON *pi = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(ops, i), "request_put");
		if (!pi)
			continue;
		const cJSON *ki = cJSON_GetObjectItemCaseSensitive(pi, "key");
		for (int j = 0; j < n; j++) {
			if (j == i)
				continue;
			const cJSON *oj = cJSON_GetArrayItem(ops, j);
			const cJSON *pj = cJSON_GetObjectItemCaseSensitive(oj, "request_put");
			const cJSON *dj = cJSON_GetObjectItemCaseSensitive(oj, "request_delete_range");
			const cJSON *kj = pj ? cJSON_GetObjectItemCaseSensitive(pj, "key")
			                     : dj ? cJSON_GetObjectItemCaseSensitive(dj, "key") : NULL;
			if (!cJSON_IsString(ki) || !cJSON_IsString(kj))
				continue;
			if (pj && strcmp(ki->valuestring, kj->valuestring) == 0)
				return fail(e, KV_CODE_INVALID, E_DUP);
			if (dj) {
				struct buf a = BUF_INIT, k = BUF_INIT, end = BUF_INIT;
				bool hit = false;
				if (etcd_b64_decode(&a, ki->valuestring, strlen(ki->valuestring)) == 0 &&
				    get_bytes(dj, "key", &k) == 0 && get_bytes(dj, "range_end", &end) == 0) {
					struct range r = {k.data, end.data, k.len, end.len};
					hit = in_range(&r, a.data ? a.data : "", a.len);
				}
				buf_free(&a);
				buf_free(&k);
				buf_free(&end);
				if (hit)
					return fail(e, KV_CODE_INVALID, E_DUP);
			}
		}
	}
	return 0;
}

static int check_ops(const cJSON *ops, struct err *e)
{
	if (!ops)
		return 0;
	if (!cJSON_IsArray(ops))
		return fail(e, KV_CODE_INVALID, "bad txn: success and failure are arrays");
	const cJSON *op;
	cJSON_ArrayForEach(op, ops) {
		int kinds = 0;
		for (int i = 0; i < 4; i++)
			kinds += cJSON_GetObjectItemCaseSensitive(op, REQ_NAMES[i]) != NULL;
		if (!cJSON_IsObject(op) || kinds != 1)
			return fail(e, KV_CODE_INVALID, "bad txn: each op is one of request_range, request_put, "
			                                "request_delete_range");
		if (cJSON_GetObjectItemCaseSensitive(op, "request_txn"))
			return fail(e, KV_CODE_INVALID, "nested txn is not supported");
	}
	return check_dups(ops, e);
}

static int do_txn(struct kv *kv, const cJSON *o, struct json_writer *w, const struct kv_header *h, struct err *e)
{
	const cJSON *cmp = cJSON_GetObjectItemCaseSensitive(o, "compare");
	const cJSON *succ = cJSON_GetObjectItemCaseSensitive(o, "success");
	const cJSON *failure = cJSON_GetObjectItemCaseSensitive(o, "failure");
	if ((cmp && !cJSON_IsArray(cmp)) || check_ops(succ, e) < 0 || check_ops(failure, e) < 0)
		return e->code ? -1 : fail(e, KV_CODE_INVALID, "bad txn: compare is an array");
	bool ok = true;
	const cJSON *c;
	cJSON_ArrayForEach(c, cmp) {
		bool one;
		if (compare_one(kv, c, &one, e) < 0)
			return -1;
		ok = ok && one;
	}
	const cJSON *ops = ok ? succ : failure;
	/* the ops' answers first (the header needs the revision after them);
	 * a branch that fails half-way is refused before it starts, by
	 * checking every op's shape first, so errors here are only those of
	 * the state (a lease not found, a future revision) -- etcd checks those
	 * up front too, so here they end the txn with nothing applied:
	 * the writes of the ops before are undone by restoring the revision
	 * history below. */
	struct buf body = BUF_INIT;
	struct json_writer bw;
	json_writer_init(&bw, &body);
	json_arr_begin(&bw);
	int n = 0;
	const cJSON *op;
	cJSON_ArrayForEach(op, ops) {
		json_obj_begin(&bw);
		int rc = 0;
		const cJSON *x;
		if ((x = cJSON_GetObjectItemCaseSensitive(op, "request_range"))) {
			json_key(&bw, "response_range");
			json_obj_begin(&bw);
			rc = do_range(kv, x, &bw, true, h, e);
		} else if ((x = cJSON_GetObjectItemCaseSensitive(op, "request_put"))) {
			json_key(&bw, "response_put");
			json_obj_begin(&bw);
			rc = do_put(kv, x, &bw, true, h, e);
		} else {
			x = cJSON_GetObjectItemCaseSensitive(op, "request_delete_range");
			json_key(&bw, "response_delete_range");
			json_obj_begin(&bw);
			rc = do_delete(kv, x, &bw, true, h, e);
		}
		if (rc < 0) {
			buf_free(&body);
			return -1;
		}
		json_obj_end(&bw);
		json_obj_end(&bw);
		n++;
	}
	json_arr_end(&bw);
	header_w(w, h, view(kv));
	if (ok)
		json_kv_bool(w, "succeeded", true);
	if (n) {
		json_key(w, "responses");
		json_raw(w, body.data, body.len);
	}
	buf_free(&body);
	return 0;
}

/* Before a txn runs, its ops are dry-run checked against the state on a
 * copy-free path: etcd checks leases and revisions of every op before
 * applying any.  We do the same by validating those two things here. */
static int txn_precheck(struct kv *kv, const cJSON *o, struct err *e)
{
	const char *branches[] = {"success", "failure"};
	for (int b = 0; b < 2; b++) {
		const cJSON *op;
		cJSON_ArrayForEach(op, cJSON_GetObjectItemCaseSensitive(o, branches[b])) {
			const cJSON *x;
			int64_t v;
			for (int i = 0; i < 3; i++) {
				struct buf k = BUF_INIT, more = BUF_INIT;
				x = cJSON_GetObjectItemCaseSensitive(op, REQ_NAMES[i]);
				if (!x)
					continue;
				int bad = get_bytes(x, "key", &k) < 0 || get_bytes(x, "range_end", &more) < 0 ||
				          get_bytes(x, "value", &more) < 0;
				size_t kn = k.len;
				buf_free(&k);
				buf_free(&more);
				if (bad)
					return fail(e, KV_CODE_INVALID, "bad key, range_end or value: want base64");
				if (kn == 0)
					return fail(e, KV_CODE_INVALID, E_NO_KEY);
			}
			if ((x = cJSON_GetObjectItemCaseSensitive(op, "request_put"))) {
				bool ign;
				if (get_i64(x, "lease", &v) < 0 || get_bool(x, "ignore_lease", &ign) < 0)
					return fail(e, KV_CODE_INVALID, "bad put request");
				if (v && !ign && !lease_find(kv, v, NULL))
					return fail(e, KV_CODE_NOT_FOUND, E_LEASE_NOT_FOUND);
			}
			if ((x = cJSON_GetObjectItemCaseSensitive(op, "request_range"))) {
				if (get_i64(x, "revision", &v) < 0)
					return fail(e, KV_CODE_INVALID, "bad range request");
				if (v > kv->rev)
					return fail(e, KV_CODE_OUT_OF_RANGE, E_FUTURE);
				if (v > 0 && v < kv->compacted)
					return fail(e, KV_CODE_OUT_OF_RANGE, E_COMPACTED);
			}
		}
	}
	return 0;
}

/* ------------------------------------------------------------ compaction */

/* How many of key's revisions, oldest first, a compaction at c drops:
 * those hidden at c (a tombstone newest at or below c goes too). */
static uint32_t compact_drops(const struct key *key, int64_t c)
{
	uint32_t j = key->n; /* newest at or below c */
	while (j > 0 && key->revs[j - 1].mod > c)
		j--;
	return j == 0 ? 0 : key->revs[j - 1].tomb ? j : j - 1;
}

/* Drop key's revisions hidden at c and above; false when none is left
 * (the key is freed). */
static bool compact_key(struct kv *kv, struct key *key, int64_t c)
{
	uint32_t drop = compact_drops(key, c);
	for (uint32_t x = 0; x < drop; x++) {
		kv->bytes -= rev_cost(key, &key->revs[x]);
		free(key->revs[x].val);
	}
	memmove(key->revs, key->revs + drop, (key->n - drop) * sizeof *key->revs);
	key->n -= drop;
	if (key->n == 0) {
		free(key->revs);
		free(key->k);
		return false;
	}
	if (key->cap > 2 && key->n <= key->cap / 4) {
		/* a key written often keeps a few of its revisions: give back
		 * the room the others took (arrays only ever double) */
		uint32_t cap = key->n < 2 ? 2 : 2 * key->n;
		struct rev *revs = realloc(key->revs, cap * sizeof *revs);
		if (revs) {
			key->revs = revs;
			key->cap = cap;
		}
	}
	return true;
}

/* What a compaction at c takes out of kv_bytes, freeing nothing. */
static uint64_t compact_cost(const struct kv *kv, int64_t c)
{
	uint64_t b = 0;
	for (KEYS_ALL(kv, p)) {
		const struct key *key = kp_key(kv, p);
		uint32_t drop = compact_drops(key, c);
		for (uint32_t x = 0; x < drop; x++)
			b += rev_cost(key, &key->revs[x]);
	}
	return b;
}

/* Chunks left short stay so (a later insert fills them); empty ones go,
 * and so does the room of a key's revisions that it leaves mostly empty.
 * While a snapshot is being taken only the numbers change: compacted,
 * and bytes as if the revisions were freed (what every replica counts,
 * snapshot or not); kv_snap_end frees them. */
static void compact(struct kv *kv, int64_t c)
{
	if (kv->snap) {
		uint64_t b = compact_cost(kv, c); /* the held ones included: take the difference */
		kv->bytes -= b - kv->held_bytes;
		kv->held_bytes = b;
		kv->compacted = c;
		return;
	}
	size_t outc = 0;
	kv->n = 0;
	for (size_t ci = 0; ci < kv->nch; ci++) {
		struct chunk *ch = kv->ch[ci];
		uint32_t out = 0;
		for (uint32_t i = 0; i < ch->n; i++)
			if (compact_key(kv, &ch->k[i], c))
				ch->k[out++] = ch->k[i];
		ch->n = out;
		kv->n += out;
		if (out)
			kv->ch[outc++] = ch;
		else
			free(ch);
	}
	kv->nch = outc;
	for (size_t ci = 0; ci < outc; ci++)
		fence_set(kv, ci);
	kv->compacted = c;
}

static int do_compact(struct kv *kv, const cJSON *o, struct json_writer *w, const struct kv_header *h,
                      struct err *e)
{
	int64_t r;
	if (get_i64(o, "revision", &r) < 0)
		return fail(e, KV_CODE_INVALID, "bad compaction request");
	if (r <= kv->compacted)
		return fail(e, KV_CODE_OUT_OF_RANGE, E_COMPACTED);
	if (r > kv->rev)
		return fail(e, KV_CODE_OUT_OF_RANGE, E_FUTURE);
	compact(kv, r);
	header_w(w, h, kv->rev);
	return 0;
}

/* ------------------------------------------------------------ leases */

static int do_grant(struct kv *kv, uint64_t aux, const cJSON *o, struct json_writer *w, const struct kv_header *h,
                    struct err *e)
{
	int64_t ttl, id;
	if (get_i64(o, "TTL", &ttl) < 0 || get_i64(o, "ID", &id) < 0 || id < 0)
		return fail(e, KV_CODE_INVALID, "bad lease grant request");
	if (ttl > 9000000000LL)
		return fail(e, KV_CODE_OUT_OF_RANGE, "etcdserver: too large lease TTL");
	if (id == 0)
		id = (int64_t)(aux & 0x7fffffffffffffffULL);
	if (id == 0)
		return fail(e, KV_CODE_INVALID, "bad lease grant request: no id");
	if (lease_find(kv, id, NULL))
		return fail(e, KV_CODE_PRECONDITION, E_LEASE_EXISTS);
	if (ttl < kv->lim.min_lease_ttl)
		ttl = kv->lim.min_lease_ttl;
	if (kv->nl == kv->capl) {
		kv->capl = kv->capl ? 2 * kv->capl : 16;
		kv->leases = realloc(kv->leases, kv->capl * sizeof *kv->leases);
		INVARIANT(kv->leases != NULL);
	}
	kv->leases[kv->nl++] = (struct kv_lease){id, ttl, 0};
	header_w(w, h, kv->rev);
	put_i64s(w, "ID", id);
	put_i64s(w, "TTL", ttl);
	return 0;
}

static int do_revoke(struct kv *kv, const cJSON *o, struct json_writer *w, const struct kv_header *h,
                     struct err *e)
{
	int64_t id;
	size_t at;
	if (get_i64(o, "ID", &id) < 0)
		return fail(e, KV_CODE_INVALID, "bad lease revoke request");
	if (!lease_find(kv, id, &at))
		return fail(e, KV_CODE_NOT_FOUND, E_LEASE_NOT_FOUND);
	for (KEYS_ALL(kv, p)) {
		struct key *key = kp_key(kv, p);
		const struct rev *v = visible(key, view(kv));
		if (v && v->lease == id) {
			struct rev *t = add_rev(key);
			t->mod = kv->w;
			t->tomb = true;
			kv->bytes += rev_cost(key, t);
			kv->dirty = true;
		}
	}
	kv->leases[at] = kv->leases[--kv->nl];
	header_w(w, h, view(kv));
	return 0;
}

static int do_leases(struct kv *kv, struct json_writer *w, const struct kv_header *h)
{
	header_w(w, h, kv->rev);
	if (kv->nl) {
		json_key(w, "leases");
		json_arr_begin(w);
		for (size_t i = 0; i < kv->nl; i++) {
			json_obj_begin(w);
			put_i64s(w, "ID", kv->leases[i].id);
			json_obj_end(w);
		}
		json_arr_end(w);
	}
	return 0;
}

struct kv_lease *kv_lease_get(struct kv *kv, int64_t id) { return lease_find(kv, id, NULL); }
size_t kv_lease_count(const struct kv *kv) { return kv->nl; }
struct kv_lease *kv_lease_at(struct kv *kv, size_t i) { return i < kv->nl ? &kv->leases[i] : NULL; }

void kv_lease_keys_json(const struct kv *kv, int64_t id, struct buf *out)
{
	bool first = true;
	for (KEYS_ALL(kv, p)) {
		const struct key *key = kp_key(kv, p);
		const struct rev *v = visible(key, kv->rev);
		if (!v || v->lease != id)
			continue;
		if (!first)
			buf_putc(out, ',');
		first = false;
		buf_putc(out, '"');
		etcd_b64_encode(out, key->k, key->klen);
		buf_putc(out, '"');
	}
}

/* ------------------------------------------------------------ watch */

static int parse_body(const char *body, size_t len, cJSON **o, struct err *e);

int kv_watch_parse(const char *body, size_t len, struct kv_watch *w, struct buf *err)
{
	struct err e = {0};
	cJSON *o;
	memset(w, 0, sizeof *w);
	if (parse_body(body, len, &o, &e) < 0)
		return kv_put_error(err, e.code, e.msg);
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "create_request");
	int rc = 0;
	if (!cJSON_IsObject(c))
		rc = fail(&e, KV_CODE_INVALID, "dsys-raft: a watch request needs create_request");
	else if (get_bytes(c, "key", &w->key) < 0 || get_bytes(c, "range_end", &w->end) < 0 ||
	         get_i64(c, "start_revision", &w->from) < 0 || get_bool(c, "prev_kv", &w->prev_kv) < 0 ||
	         get_bool(c, "progress_notify", &w->progress_notify) < 0 || w->from < 0)
		rc = fail(&e, KV_CODE_INVALID, "bad watch create_request");
	else if (w->key.len == 0)
		rc = fail(&e, KV_CODE_INVALID, E_NO_KEY);
	json_free(o);
	if (rc < 0) {
		kv_watch_free(w);
		return kv_put_error(err, e.code, e.msg);
	}
	return 0;
}

void kv_watch_free(struct kv_watch *w)
{
	buf_free(&w->key);
	buf_free(&w->end);
}

struct ev {
	const struct key *key;
	uint32_t j;                /* index of the revision in key->revs */
};

static int ev_cmp(const void *pa, const void *pb)
{
	const struct ev *a = pa, *b = pb;
	int64_t ma = a->key->revs[a->j].mod, mb = b->key->revs[b->j].mod;
	if (ma != mb)
		return ma < mb ? -1 : 1;
	return keycmp(a->key->k, a->key->klen, b->key->k, b->key->klen);
}

long kv_watch_events(const struct kv *kv, const struct kv_watch *w, size_t max, struct buf *out, int64_t *next)
{
	int64_t from = w->from ? w->from : kv->rev + 1;
	*next = from;
	if (from < kv->compacted)
		return -ESTALE;
	struct range r = {w->key.data, w->end.data, w->key.len, w->end.len};
	struct ev *evs = NULL;
	size_t n = 0, cap = 0;
	for (KEYS_FROM(kv, p, lower_bound(kv, r.k, r.kn))) {
		const struct key *key = kp_key(kv, p);
		if (!in_range(&r, key->k, key->klen))
			break;
		/* under a held compaction (kv_snap), what it drops is not there */
		uint32_t first = kv->snap ? compact_drops(key, kv->compacted) : 0;
		for (uint32_t j = key->n; j-- > first && key->revs[j].mod >= from;) {
			if (n == cap) {
				cap = cap ? 2 * cap : 16;
				evs = realloc(evs, cap * sizeof *evs);
				INVARIANT(evs != NULL);
			}
			evs[n++] = (struct ev){key, j};
		}
		if (r.en == 0)
			break;
	}
	if (n)
		qsort(evs, n, sizeof *evs, ev_cmp);
	struct json_writer jw;
	size_t k = 0;
	int64_t prev_mod = 0;
	for (; k < n; k++) {
		const struct key *key = evs[k].key;
		const struct rev *v = &key->revs[evs[k].j];
		/* a whole revision at a time: the client resumes after the last */
		if (k >= max && v->mod != prev_mod)
			break;
		prev_mod = v->mod;
		if (k)
			buf_putc(out, ',');
		json_writer_init(&jw, out);
		json_obj_begin(&jw);
		if (v->tomb) {
			json_kv_str(&jw, "type", "DELETE");
			json_key(&jw, "kv");
			json_obj_begin(&jw);
			put_b64(&jw, "key", key->k, key->klen);
			put_i64s(&jw, "mod_revision", v->mod);
			json_obj_end(&jw);
		} else {
			json_key(&jw, "kv");
			put_kv(&jw, key, v, false);
		}
		if (w->prev_kv && evs[k].j > (kv->snap ? compact_drops(key, kv->compacted) : 0) &&
		    !key->revs[evs[k].j - 1].tomb) {
			json_key(&jw, "prev_kv");
			put_kv(&jw, key, &key->revs[evs[k].j - 1], false);
		}
		json_obj_end(&jw);
		*next = v->mod + 1;
	}
	free(evs);
	return (long)k;
}

/* ------------------------------------------------------------ entry */

static int parse_body(const char *body, size_t len, cJSON **o, struct err *e)
{
	size_t at = 0;
	*o = json_parse(body ? body : "{}", body ? len : 2, &at);
	if (!*o || !cJSON_IsObject(*o)) {
		static char msg[96];
		snprintf(msg, sizeof msg, "invalid JSON: want an object (error at byte %zu)", at);
		json_free(*o);
		*o = NULL;
		return fail(e, KV_CODE_INVALID, msg);
	}
	return 0;
}

const char *kv_put_refusal(const struct kv_put *p)
{
	if ((p->flags & KV_PUT_IGNORE_VALUE) && p->vlen)
		return E_VALUE_PROVIDED;
	if ((p->flags & KV_PUT_IGNORE_LEASE) && p->lease)
		return E_LEASE_PROVIDED;
	return NULL;
}

/* kv_put_refusal of a gateway put's JSON: its fields as a struct kv_put
 * (only whether there is a value matters, so none is copied).  Checked
 * before the proposal only (kv_check), never on apply, so entries already
 * in a log apply as they did.  A field that does not parse is left to the
 * apply's own answer. */
static int check_put_fields(const cJSON *o, struct err *e)
{
	struct buf v = BUF_INIT;
	bool ign_val = false, ign_lease = false;
	struct kv_put p = {0};
	if (get_bool(o, "ignore_value", &ign_val) == 0 && ign_val) {
		p.flags |= KV_PUT_IGNORE_VALUE;
		if (get_bytes(o, "value", &v) == 0)
			p.vlen = v.len;
		buf_free(&v);
	}
	if (get_bool(o, "ignore_lease", &ign_lease) == 0 && ign_lease) {
		p.flags |= KV_PUT_IGNORE_LEASE;
		if (get_i64(o, "lease", &p.lease) < 0)
			p.lease = 0;
	}
	const char *refused = kv_put_refusal(&p);
	return refused ? fail(e, KV_CODE_INVALID, refused) : 0;
}

/* check_put_fields over each request_put of a txn's branch. */
static int check_txn_puts(const cJSON *ops, struct err *e)
{
	const cJSON *op;
	cJSON_ArrayForEach(op, ops) {
		const cJSON *put = cJSON_GetObjectItemCaseSensitive(op, "request_put");
		if (cJSON_IsObject(put) && check_put_fields(put, e) < 0)
			return -1;
	}
	return 0;
}

int kv_check(enum kv_op op, const char *body, size_t len, struct buf *out)
{
	struct err e = {0};
	cJSON *o;
	if (parse_body(body, len, &o, &e) < 0)
		return kv_put_error(out, e.code, e.msg);
	struct buf k = BUF_INIT, end = BUF_INIT;
	int rc = 0;
	switch (op) {
	case KV_OP_RANGE:
	case KV_OP_DELETE:
		rc = parse_range(o, &k, &end, &e);
		break;
	case KV_OP_PUT:
		if (get_bytes(o, "key", &k) < 0)
			rc = fail(&e, KV_CODE_INVALID, "bad key: want base64");
		else if (k.len == 0)
			rc = fail(&e, KV_CODE_INVALID, E_NO_KEY);
		else
			rc = check_put_fields(o, &e);
		break;
	case KV_OP_TXN:
		if (check_ops(cJSON_GetObjectItemCaseSensitive(o, "success"), &e) < 0 ||
		    check_ops(cJSON_GetObjectItemCaseSensitive(o, "failure"), &e) < 0 ||
		    check_txn_puts(cJSON_GetObjectItemCaseSensitive(o, "success"), &e) < 0 ||
		    check_txn_puts(cJSON_GetObjectItemCaseSensitive(o, "failure"), &e) < 0)
			rc = -1;
		break;
	default:
		break;
	}
	buf_free(&k);
	buf_free(&end);
	json_free(o);
	return rc < 0 ? kv_put_error(out, e.code, e.msg) : 0;
}

int kv_exec(struct kv *kv, enum kv_op op, uint64_t aux, const char *body, size_t len,
            const struct kv_header *h, struct buf *out)
{
	struct err e = {0};
	cJSON *o = NULL;
	/* a put in the log's binary form (kv.h), else gateway JSON */
	struct kv_put bin;
	bool is_bin = op == KV_OP_PUT && body && len > 0 && (uint8_t)body[0] == KV_PUT_BIN;
	if (is_bin) {
		if (kv_put_decode(body, len, &bin) < 0)
			return kv_put_error(out, KV_CODE_INVALID, "bad put request");
	} else if (parse_body(body, len, &o, &e) < 0) {
		return kv_put_error(out, e.code, e.msg);
	}
	size_t mark = out->len;
	struct json_writer w;
	json_writer_init(&w, out);
	json_obj_begin(&w);
	kv->w = kv->rev + 1;
	kv->dirty = false;
	int rc = -1;
	/* Past the quota, what adds data is refused (etcd's NOSPACE alarm:
	 * put, a txn with a put, a lease grant); reads, deletes, revokes and
	 * compaction go on, and compaction that brings the store back under
	 * clears it.  Decided from kv_bytes, which every replica computes
	 * alike, so every replica refuses the same entries. */
	if (kv_alarm_nospace(kv) &&
	    (op == KV_OP_PUT || op == KV_OP_LEASE_GRANT || (op == KV_OP_TXN && memmem(body, len, "request_put", 11)))) {
		json_free(o);
		out->len = mark;
		return kv_put_error(out, KV_CODE_RESOURCE, "etcdserver: mvcc: database space exceeded");
	}
	switch (op) {
	case KV_OP_RANGE: rc = do_range(kv, o, &w, false, h, &e); break;
	case KV_OP_PUT: rc = is_bin ? put_exec(kv, &bin, &w, false, h, &e) : do_put(kv, o, &w, false, h, &e); break;
	case KV_OP_DELETE: rc = do_delete(kv, o, &w, false, h, &e); break;
	case KV_OP_TXN: rc = txn_precheck(kv, o, &e) < 0 ? -1 : do_txn(kv, o, &w, h, &e); break;
	case KV_OP_COMPACT: rc = do_compact(kv, o, &w, h, &e); break;
	case KV_OP_LEASE_GRANT: rc = do_grant(kv, aux, o, &w, h, &e); break;
	case KV_OP_LEASE_REVOKE: rc = do_revoke(kv, o, &w, h, &e); break;
	case KV_OP_LEASE_LEASES: rc = do_leases(kv, &w, h); break;
	default: fail(&e, KV_CODE_INVALID, "unknown request"); break;
	}
	json_free(o);
	if (kv->dirty)
		kv->rev = kv->w;
	kv->dirty = false;
	if (rc < 0) {
		out->len = mark;
		return kv_put_error(out, e.code, e.msg);
	}
	json_obj_end(&w);
	return 200;
}

/* ------------------------------------------------------------ snapshots */

/*
 * The snapshot format (all integers little-endian):
 *   "KVS1" | rev i64 | compacted i64 | nleases u64 | (id i64, ttl i64)...
 *   | nkeys u64 | per key: klen u32, k, nrevs u32,
 *     per revision: mod, create, version, lease i64, tomb u8, vlen u32, val
 * Keys in their sorted order, revisions oldest first: kv_restore checks
 * both, so a restored store is one kv_exec could have built.  Lease
 * deadlines are the leader's clock and are not kept (a new leader restarts
 * them anyway).
 */
static void put_u32le(struct buf *b, uint32_t v)
{
	uint8_t x[4];
	for (int i = 0; i < 4; i++)
		x[i] = (uint8_t)(v >> (8 * i));
	buf_append(b, x, 4);
}

static void put_u64le(struct buf *b, uint64_t v)
{
	uint8_t x[8];
	for (int i = 0; i < 8; i++)
		x[i] = (uint8_t)(v >> (8 * i));
	buf_append(b, x, 8);
}

/* The revisions of key a snapshot at rev holds: the oldest n (0: the key
 * came after it). */
static uint32_t revs_upto(const struct key *key, int64_t rev)
{
	uint32_t n = key->n;
	while (n > 0 && key->revs[n - 1].mod > rev)
		n--;
	return n;
}

/* Where the next slice starts: the first key after the cursor, or the
 * cursor's own key when only some of its revisions are written. */
static struct kpos snap_resume(const struct kv *kv, const struct kv_snap *s)
{
	if (!s->started)
		return (struct kpos){0, 0};
	struct kpos p = lower_bound(kv, s->last.data, s->last.len);
	bool same = p.c < kv->nch && keycmp(kp_key(kv, p)->k, kp_key(kv, p)->klen, s->last.data, s->last.len) == 0;
	INVARIANT(same || !s->rev_at); /* nothing at or below the snapshot's revision goes */
	if (same && !s->rev_at)
		kp_next(kv, &p);
	return p;
}

/* The cursor: key k, rev_at of its revisions written (0: all). */
static void snap_mark(struct kv_snap *s, const struct key *k, uint32_t rev_at)
{
	buf_reset(&s->last);
	buf_append(&s->last, k->k, k->klen);
	s->rev_at = rev_at;
	s->started = true;
}

struct kv_snap *kv_snap_begin(struct kv *kv)
{
	INVARIANT(kv->snap == NULL);
	struct kv_snap *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->leases = malloc((kv->nl ? kv->nl : 1) * sizeof *s->leases);
	if (!s->leases) {
		free(s);
		return NULL;
	}
	if (kv->nl)
		memcpy(s->leases, kv->leases, kv->nl * sizeof *s->leases);
	s->nl = kv->nl;
	s->rev = kv->rev;
	s->compacted = kv->compacted;
	buf_init(&s->last);
	kv->snap = s;
	return s;
}

/*
 * Two passes, each resumed from the cursor key: the first counts the
 * keys and bytes (so the header carries the count and out is sized once:
 * growing a buffer of a whole store by doubling copied it about twice
 * over), the second writes them.  Keys added since kv_snap_begin have no
 * revision at or below s->rev and are left out; compaction is held, so
 * nothing at or below s->rev moves or goes.
 */
bool kv_snap_step(struct kv *kv, struct kv_snap *s, struct buf *out, size_t budget)
{
	INVARIANT(kv->snap == s);
	if (s->done)
		return true;
	s->slices++;
	bool counting = !s->count_at;
	size_t used = 0, from = out->len;
	struct kpos p = snap_resume(kv, s);
	while (p.c < kv->nch && used < budget) {
		const struct key *k = kp_key(kv, p);
		uint32_t nr = revs_upto(k, s->rev), j = s->rev_at;
		if (nr && !j) {
			s->keys++;
			if (counting) {
				s->at += 8 + k->klen; /* the size, until the header is written */
			} else {
				put_u32le(out, k->klen);
				buf_append(out, k->k, k->klen);
				put_u32le(out, nr);
			}
		}
		used += 16 + k->klen;
		/* at least one revision: rev_at 0 means none is left */
		for (uint32_t first = j; j < nr && (j == first || used < budget); j++) {
			const struct rev *r = &k->revs[j];
			if (counting) {
				s->at += 8 * 4 + 1 + 4 + r->vlen;
				used += 16;
				continue;
			}
			/* its numbers in one append: a call each was most of a
			 * slice's time for small values */
			uint8_t h[8 * 4 + 1 + 4];
			uint64_t v[4] = {(uint64_t)r->mod, (uint64_t)r->create, (uint64_t)r->version, (uint64_t)r->lease};
			for (int x = 0; x < 4; x++)
				for (int b = 0; b < 8; b++)
					h[8 * x + b] = (uint8_t)(v[x] >> (8 * b));
			h[32] = r->tomb;
			for (int b = 0; b < 4; b++)
				h[33 + b] = (uint8_t)(r->vlen >> (8 * b));
			buf_append(out, h, sizeof h);
			buf_append(out, r->val ? r->val : "", r->vlen);
			used = out->len - from;
		}
		if (j < nr) {
			snap_mark(s, k, j); /* the rest of its revisions next slice */
			return false;
		}
		s->rev_at = 0;
		kp_next(kv, &p);
		if (p.c == kv->nch || used >= budget)
			snap_mark(s, k, 0);
	}
	if (p.c < kv->nch)
		return false;
	if (counting) {
		size_t size = 4 + 8 * 4 + 16 * s->nl + s->at;
		buf_reserve(out, size);
		s->at = out->len;
		buf_append(out, "KVS1", 4);
		put_u64le(out, (uint64_t)s->rev);
		put_u64le(out, (uint64_t)s->compacted);
		put_u64le(out, s->nl);
		for (size_t i = 0; i < s->nl; i++) {
			put_u64le(out, (uint64_t)s->leases[i].id);
			put_u64le(out, (uint64_t)s->leases[i].ttl);
		}
		s->count_at = out->len;
		put_u64le(out, s->keys);
		s->keys = 0;
		s->started = false;
		s->rev_at = 0;
		buf_reset(&s->last);
		return false;
	}
	/* the keys counted are the keys written: nothing at or below s->rev
	 * came or went in between */
	uint8_t *c = (uint8_t *)out->data + s->count_at;
	uint64_t counted = 0;
	for (int i = 0; i < 8; i++)
		counted |= (uint64_t)c[i] << (8 * i);
	INVARIANT(counted == s->keys);
	s->done = true;
	return true;
}

size_t kv_snap_slices(const struct kv_snap *s) { return s->slices; }

void kv_snap_end(struct kv *kv, struct kv_snap *s)
{
	if (!s)
		return;
	INVARIANT(kv->snap == s);
	kv->snap = NULL;
	buf_free(&s->last);
	free(s->leases);
	free(s);
	if (kv->held_bytes) {
		/* the held compaction, if any: bytes already counts it */
		kv->bytes += kv->held_bytes;
		kv->held_bytes = 0;
		compact(kv, kv->compacted);
	}
}

void kv_snapshot(struct kv *kv, struct buf *out)
{
	struct kv_snap *s = kv_snap_begin(kv);
	INVARIANT(s != NULL);
	while (!kv_snap_step(kv, s, out, SIZE_MAX))
		;
	kv_snap_end(kv, s);
}

struct rd {
	const uint8_t *p;
	size_t left;
	bool bad;
};

static const uint8_t *take(struct rd *r, size_t n)
{
	if (r->bad || n > r->left) {
		r->bad = true;
		return NULL;
	}
	const uint8_t *p = r->p;
	r->p += n;
	r->left -= n;
	return p;
}

static uint64_t take_u64(struct rd *r)
{
	const uint8_t *p = take(r, 8);
	uint64_t v = 0;
	for (int i = 0; p && i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static uint32_t take_u32(struct rd *r)
{
	const uint8_t *p = take(r, 4);
	uint32_t v = 0;
	for (int i = 0; p && i < 4; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

int kv_restore(struct kv *kv, const void *data, size_t len)
{
	INVARIANT(kv->snap == NULL); /* the caller ends a snapshot being taken first */
	struct rd r = {data, len, false};
	const uint8_t *magic = take(&r, 4);
	if (!magic || memcmp(magic, "KVS1", 4) != 0)
		return -EINVAL;
	struct kv *nk = kv_new(&kv->lim);
	if (!nk)
		return -ENOMEM;
	nk->rev = (int64_t)take_u64(&r);
	nk->compacted = (int64_t)take_u64(&r);
	uint64_t nl = take_u64(&r);
	if (nl > r.left / 16 || nk->rev < 1 || nk->compacted < 0 || nk->compacted > nk->rev)
		r.bad = true;
	for (uint64_t i = 0; i < nl && !r.bad; i++) {
		int64_t id = (int64_t)take_u64(&r), ttl = (int64_t)take_u64(&r);
		if (nk->nl == nk->capl) {
			nk->capl = nk->capl ? 2 * nk->capl : 16;
			nk->leases = realloc(nk->leases, nk->capl * sizeof *nk->leases);
			INVARIANT(nk->leases != NULL);
		}
		nk->leases[nk->nl++] = (struct kv_lease){id, ttl, 0};
	}
	uint64_t n = take_u64(&r);
	if (n > r.left / 8)
		r.bad = true;
	for (uint64_t i = 0; i < n && !r.bad; i++) {
		uint32_t klen = take_u32(&r);
		const uint8_t *k = take(&r, klen);
		uint32_t nr = take_u32(&r);
		if (r.bad || nr == 0 || nr > r.left / 37) {
			r.bad = true;
			break;
		}
		/* sorted and distinct: appended at the end, as find_or_add would place it */
		const struct key *last = last_key(nk);
		if (last && keycmp(last->k, last->klen, (const char *)k, klen) >= 0) {
			r.bad = true;
			break;
		}
		struct key *key = find_or_add(nk, (const char *)k, klen);
		for (uint32_t j = 0; j < nr && !r.bad; j++) {
			struct rev *v = add_rev(key);
			v->mod = (int64_t)take_u64(&r);
			v->create = (int64_t)take_u64(&r);
			v->version = (int64_t)take_u64(&r);
			v->lease = (int64_t)take_u64(&r);
			const uint8_t *t = take(&r, 1);
			v->vlen = take_u32(&r);
			const uint8_t *val = take(&r, v->vlen);
			if (r.bad || *t > 1 || v->mod < 1 || v->mod > nk->rev || (j && v->mod <= key->revs[j - 1].mod)) {
				r.bad = true;
				v->vlen = 0;
				break;
			}
			v->tomb = *t;
			v->val = malloc(v->vlen ? v->vlen : 1);
			INVARIANT(v->val != NULL);
			memcpy(v->val, val, v->vlen);
			nk->bytes += rev_cost(key, v);
		}
	}
	if (r.bad || r.left) {
		kv_free(nk);
		return -EINVAL;
	}
	/* swap the new state in; the old goes with nk's shell */
	struct kv tmp = *kv;
	*kv = *nk;
	*nk = tmp;
	kv_free(nk);
	return 0;
}
