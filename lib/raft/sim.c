/*
 * raft/sim.c -- deterministic simulation of a lib/raft cluster.
 *
 * The shape of it (TigerBeetle's VOPR and FoundationDB's simulator are the
 * models): one loop over simulated milliseconds.  Each step
 *   1. injects faults (partitions start and heal, nodes crash and restart,
 *      membership changes and leader transfers are proposed);
 *   2. delivers the network messages that are due, from a heap ordered by
 *      (due time, sequence number) -- never by pointer;
 *   3. finishes disk writes that are due: the Ready's snapshot, entries and
 *      hard state become durable, and only then go its messages out, its
 *      committed entries get applied and raft_advance() is called;
 *   4. ticks the nodes whose 10 ms tick falls now;
 *   5. lets clients send requests and give up on old ones;
 *   6. asks every idle node for a Ready and starts its disk write (a
 *      node with a write in flight is "stalled": the Ready contract allows
 *      no input before raft_advance, so its messages wait);
 *   7. checks the safety properties (raft_sim.h lists them).
 *
 * A pause freezes a node: it misses its ticks (its clock falls behind, as
 * in a long GC or a stopped VM) and the messages sent to it wait.  Raft's
 * safety needs no clock, so nothing may break -- except lease reads,
 * whose soundness is a clock assumption, and which the leader-partition
 * scenario (an isolated leader whose clock stops) duly catches out.
 *
 * A crash frees the node's struct raft and everything volatile; the disk
 * keeps only what completed writes put there, so a write in flight (not
 * yet fsynced) is lost, exactly as on a real machine.
 *
 * Asynchronous leader writes (raft.h, rd.async): most of a leader's
 * Readies that may go asynchronously do -- the write is queued behind
 * the node's earlier ones (they finish in order), the messages leave and
 * raft_advance_async() is called at once, and raft_persisted() follows
 * when the write is due.  A crash loses every queued write, so a leader
 * dies now and then right after sending what its own disk never got.  A restart rebuilds
 * the node from its disk: raft_restore() and the state machine from the
 * snapshot; committed entries are then applied again from the log.
 *
 * The state machine is a tiny key-value store with client sessions: a
 * command carries (client, seq), and a seq at or below the client's last
 * applied one is not applied again, so a duplicated request cannot apply
 * twice.  Reads go through ReadIndex on whatever node the client asked
 * (followers forward the barrier to the leader), and are served once that
 * node has applied up to the confirmed index.
 *
 * Client history: every attempt is one operation with a call and a return
 * time in simulated ms.  A reply that never came (lost, or the node lost
 * leadership) makes it "unknown": it may or may not have taken effect.
 * At the end the history goes to lib/raft/linearize (Wing-Gong search per key).
 *
 * Determinism: one xoshiro256** stream drives every choice, nodes and
 * clients are visited in id order, and the heap breaks ties by a sequence
 * number, so the same seed and options give the same run and output.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/bytes.h"
#include "base/invariant.h"
#include "raft/ledger.h"
#include "raft/linearize.h"
#include "raft/raft.h"
#include "raft/sim.h"

#define TICK_MS 10
#define MAX_NODES 12   /* initial voters + spares */
#define MAX_CLIENTS 16
#define MAX_KEYS 16
#define CMD_LEN 26
#define MSG_SMALL 512   /* message size classes kept on free lists */
#define MSG_LARGE 4096

enum { K_RAFT, K_REQ, K_RESP };
enum { OP_PUT = 1, OP_GET = 2, OP_CAS = 3 };
enum { ST_OK, ST_NOT_LEADER };

struct client_req {
	uint32_t client, seq;
	uint8_t kind, key;
	uint64_t arg0, arg1;
};

struct client_resp {
	uint32_t client, seq;
	uint8_t status, ok;
	uint64_t value;
	uint32_t hint;
};

/* One message in flight; entries, payloads and snapshot data follow it
 * in the same allocation. */
struct net_msg {
	uint64_t due, seq;
	uint8_t kind;
	uint32_t from, to; /* node ids; for client messages the client is in req/resp */
	struct raft_msg m;
	struct raft_snapshot snap;
	struct client_req req;
	struct client_resp resp;
	int pool;              /* size class it came from (-1: plain malloc) */
	struct net_msg *next_free;
};
_Static_assert(sizeof(struct net_msg) <= MSG_SMALL, "a bare message fits the small class");

struct kv {
	uint64_t val[MAX_KEYS];
	uint8_t present[MAX_KEYS];
	uint32_t last_seq[MAX_CLIENTS]; /* sessions: the last applied seq per client */
	uint8_t last_ok[MAX_CLIENTS];
};

struct pend {
	uint32_t seq;
	uint8_t kind, key, active, have_index;
	uint64_t read_index;
	uint64_t commit_floor; /* reads: the highest index committed anywhere when the read arrived */
};

struct node {
	uint32_t id;
	bool up;
	struct raft *r;
	uint64_t down_until;
	uint64_t restarts;

	/* the disk: only completed writes */
	struct raft_hard_state hs;
	struct raft_snapshot_meta snap_meta;
	uint8_t *snap_data;
	size_t snap_len;
	struct raft_entry *log; /* log[k].index == snap_meta.index + 1 + k; data malloc'd */
	size_t log_n, log_cap;

	/* a write in flight; a pause (the process frozen: no ticks, no input) */
	uint64_t frozen_until;
	bool stalled;
	uint64_t done_at;
	struct raft_ready rd;
	uint32_t pending_ticks;
	struct pwrite *pw, **pw_tail; /* asynchronous writes queued, oldest first */

	/* volatile */
	struct kv kv;
	uint64_t applied;
	struct pend pend[MAX_CLIENTS];
	uint8_t role;
	uint64_t role_term, max_term, max_commit;
};

/* An asynchronous write on its way to the disk: a copy of the Ready's
 * entries and hard state (the raft's own die at raft_advance_async). */
struct pwrite {
	struct pwrite *next;
	uint64_t done_at;
	struct raft_hard_state hs;
	bool hs_changed;
	struct raft_entry *entries;
	size_t n_entries;
};

struct client {
	uint32_t id;
	uint32_t target;
	bool busy;
	uint32_t seq;
	uint32_t dup_seq; /* the network copied request dup_seq */
	struct client_req req;
	uint64_t call_t, deadline, next_at;
	uint64_t last_val[MAX_KEYS];
};

struct applied_rec {
	uint64_t term, hash, state;
	bool set;
};

struct conf_rec {
	uint64_t index;
	struct raft_conf conf;
};

struct lm_slot { /* log matching: (index, term) -> what it must be */
	uint64_t index, term, prev_term, hash;
};

struct sim {
	struct raft_sim_config cfg;
	struct raft_sim_result *res;
	uint64_t rng[4];
	uint64_t rng_late; /* a second stream for late responses, so that adding them left other choices alone */
	uint64_t now;
	uint32_t n_ids; /* nodes + spares */
	struct node nodes[MAX_NODES + 1];
	struct client clients[MAX_CLIENTS + 1];
	bool cut[MAX_NODES + 1][MAX_NODES + 1];
	bool partitioned;
	uint64_t heal_at;

	struct net_msg **heap;
	size_t heap_n, heap_cap;
	struct net_msg *pool[2]; /* free messages of MSG_SMALL and MSG_LARGE bytes */
	uint64_t msg_seq;

	uint32_t *term_leader;
	size_t term_cap;
	uint8_t *vote_of; /* vote_of[term * (MAX_NODES + 1) + voter]: candidate granted, from the wire */
	size_t vote_terms;
	uint32_t last_leader;
	uint64_t last_leader_term;
	struct applied_rec *applied;
	size_t applied_cap;
	uint64_t applied_max;
	struct lm_slot *lm;
	size_t lm_cap, lm_n;

	struct raft_ledger *ledger;
	struct conf_rec *confs; /* configuration entries applied, by index */
	size_t n_confs, confs_cap;
	struct raft_conf boot_conf;
	struct lin_history *hist;
	uint32_t pin_target;
	uint64_t pin_until;
	uint32_t max_msg_entries, max_inflight; /* flow control, chosen per seed */
	bool stop;
};

static struct sim *current;

/* Neither a write in flight nor a pause: the node can take input. */
static bool idle(const struct sim *s, const struct node *n)
{
	return n->up && !n->stalled && s->now >= n->frozen_until;
}

static bool frozen(const struct sim *s, const struct node *n)
{
	return s->now < n->frozen_until;
}

/* ------------------------------------------------------------ randomness */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* xoshiro256** */
static uint64_t rnd(struct sim *s)
{
	uint64_t *q = s->rng;
	uint64_t out = rotl(q[1] * 5, 7) * 9, t = q[1] << 17;
	q[2] ^= q[0];
	q[3] ^= q[1];
	q[1] ^= q[2];
	q[0] ^= q[3];
	q[2] ^= t;
	q[3] = rotl(q[3], 45);
	return out;
}

static uint64_t below(struct sim *s, uint64_t n) { return n ? rnd(s) % n : 0; }
static bool chance(struct sim *s, uint64_t num, uint64_t den) { return below(s, den) < num; }
static bool has(const struct sim *s, uint32_t f) { return (s->cfg.faults & f) != 0; }

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;
	h ^= 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return splitmix64(&h);
}

static uint64_t entry_hash(const struct raft_entry *e)
{
	return hash_bytes(e->type, e->data, e->len);
}

static uint64_t kv_hash(const struct sim *s, const struct kv *kv)
{
	uint64_t h = hash_bytes(0, kv->val, sizeof(uint64_t) * s->cfg.keys);
	h = hash_bytes(h, kv->present, s->cfg.keys);
	return hash_bytes(h, kv->last_seq, sizeof(uint32_t) * (s->cfg.clients + 1));
}

/* ------------------------------------------------------------ violations */

static void violate(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void violate(struct sim *s, const char *fmt, ...)
{
	if (s->res->violations)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->res->violation, sizeof s->res->violation, fmt, ap);
	va_end(ap);
	s->res->violations = 1;
	s->res->violation_step = s->now;
	s->stop = true;
}

bool raft_sim_where(uint64_t *seed, uint64_t *step)
{
	if (!current)
		return false;
	*seed = current->cfg.seed;
	*step = current->now;
	return true;
}

/* ------------------------------------------------------------ network */

static bool heap_less(const struct net_msg *a, const struct net_msg *b)
{
	return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void heap_push(struct sim *s, struct net_msg *m)
{
	if (s->heap_n == s->heap_cap) {
		s->heap_cap = s->heap_cap ? s->heap_cap * 2 : 1024;
		s->heap = realloc(s->heap, s->heap_cap * sizeof *s->heap);
		INVARIANT(s->heap != NULL);
	}
	m->seq = s->msg_seq++;
	size_t i = s->heap_n++;
	while (i > 0 && heap_less(m, s->heap[(i - 1) / 2])) {
		s->heap[i] = s->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	s->heap[i] = m;
}

static struct net_msg *heap_pop(struct sim *s)
{
	struct net_msg *top = s->heap[0], *last = s->heap[--s->heap_n];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= s->heap_n)
			break;
		if (c + 1 < s->heap_n && heap_less(s->heap[c + 1], s->heap[c]))
			c++;
		if (!heap_less(s->heap[c], last))
			break;
		s->heap[i] = s->heap[c];
		i = c;
	}
	if (s->heap_n)
		s->heap[i] = last;
	return top;
}

/* Messages come from two free lists by size: a run sends tens of
 * thousands, and recycling them keeps the simulator (and its sanitizer
 * builds) from touching fresh memory for each. */
static struct net_msg *msg_alloc(struct sim *s, size_t size)
{
	int cls = size <= MSG_SMALL ? 0 : size <= MSG_LARGE ? 1 : -1;
	struct net_msg *x;
	if (cls >= 0 && s->pool[cls]) {
		x = s->pool[cls];
		s->pool[cls] = x->next_free;
	} else {
		x = malloc(cls == 0 ? MSG_SMALL : cls == 1 ? MSG_LARGE : size);
		INVARIANT(x != NULL);
	}
	memset(x, 0, sizeof *x);
	x->pool = cls;
	return x;
}

static void msg_free(struct sim *s, struct net_msg *x)
{
	if (x->pool < 0) {
		free(x);
		return;
	}
	x->next_free = s->pool[x->pool];
	s->pool[x->pool] = x;
}

/* A deep copy of a Raft message: the sender's Ready dies at raft_advance. */
static struct net_msg *msg_copy_raft(struct sim *s, const struct raft_msg *m)
{
	size_t data = 0;
	for (uint32_t i = 0; i < m->n_entries; i++)
		data += m->entries[i].len;
	size_t snap = m->snapshot ? m->snapshot->len : 0;
	size_t size = sizeof(struct net_msg) + m->n_entries * sizeof(struct raft_entry) + data + snap;
	struct net_msg *x = msg_alloc(s, size);
	x->kind = K_RAFT;
	x->from = m->from;
	x->to = m->to;
	x->m = *m;
	struct raft_entry *ents = (struct raft_entry *)(x + 1);
	uint8_t *p = (uint8_t *)(ents + m->n_entries);
	for (uint32_t i = 0; i < m->n_entries; i++) {
		ents[i] = m->entries[i];
		if (ents[i].len)
			memcpy(p, m->entries[i].data, ents[i].len);
		ents[i].data = ents[i].len ? p : NULL;
		p += ents[i].len;
	}
	x->m.entries = m->n_entries ? ents : NULL;
	if (m->snapshot) {
		x->snap = *m->snapshot;
		if (snap)
			memcpy(p, m->snapshot->data, snap);
		x->snap.data = snap ? p : NULL;
		x->m.snapshot = &x->snap;
	}
	return x;
}

static struct net_msg *msg_dup(struct sim *s, const struct net_msg *m)
{
	if (m->kind == K_RAFT)
		return msg_copy_raft(s, &m->m);
	struct net_msg *x = msg_alloc(s, sizeof *x);
	int pool = x->pool;
	*x = *m;
	x->pool = pool;
	return x;
}

static uint64_t link_delay(struct sim *s, uint32_t from, uint32_t to)
{
	uint64_t d = 1 + (from * 7 + to * 3) % 3; /* constant per link: FIFO unless reordered */
	if (has(s, RAFT_SIM_REORDER))
		d += below(s, 8);
	if (has(s, RAFT_SIM_DELAY) && chance(s, 2, 100))
		d += 20 + below(s, 300);
	return d;
}

/* Now and then a response arrives terms later: a vote grant that reaches
 * a candidate after it moved to a new term, an acknowledgement that
 * reaches a leader deposed and re-elected meanwhile; or a snapshot
 * arrives after its follower caught up by other means.  Raft must take such
 * a response for what it is (stale) or drop it. */
static bool late_response(struct sim *s, const struct raft_msg *m)
{
	bool resp = m->type == RAFT_MSG_VOTE_RESP || m->type == RAFT_MSG_PREVOTE_RESP ||
	            m->type == RAFT_MSG_APP_RESP || m->type == RAFT_MSG_HEARTBEAT_RESP ||
	            m->type == RAFT_MSG_SNAP; /* a snapshot that lands after the follower caught up by appends */
	return resp && splitmix64(&s->rng_late) % 100 == 0;
}

/* Put a message on the wire, where the faults may lose, delay or copy it.
 * between_nodes: partitions apply (clients are outside them). */
static void net_send(struct sim *s, struct net_msg *x, bool between_nodes)
{
	s->res->messages++;
	if ((between_nodes && s->cut[x->from][x->to]) || (has(s, RAFT_SIM_DROP) && chance(s, 3, 100))) {
		s->res->dropped++;
		msg_free(s, x);
		return;
	}
	uint32_t a = x->kind == K_RESP ? 0 : x->from, b = x->kind == K_REQ ? 0 : x->to;
	x->due = s->now + link_delay(s, a, b);
	if (x->kind == K_RAFT && has(s, RAFT_SIM_DELAY) && late_response(s, &x->m))
		x->due += 200 + splitmix64(&s->rng_late) % 1800;
	if (has(s, RAFT_SIM_DUP) && chance(s, 2, 100)) {
		struct net_msg *y = msg_dup(s, x);
		y->due = x->due + 1 + below(s, 20);
		s->res->duplicated++;
		if (x->kind == K_REQ) /* the client can no longer trust a "not proposed" */
			s->clients[x->req.client].dup_seq = x->req.seq;
		heap_push(s, y);
	}
	heap_push(s, x);
}

static void send_resp(struct sim *s, struct node *n, uint32_t client, uint32_t seq, uint8_t status, uint8_t ok,
                      uint64_t value)
{
	struct net_msg *x = msg_alloc(s, sizeof *x);
	x->kind = K_RESP;
	x->from = n->id;
	x->to = client;
	x->resp = (struct client_resp){.client = client, .seq = seq, .status = status, .ok = ok, .value = value};
	if (status == ST_NOT_LEADER) {
		struct raft_status st;
		raft_status(n->r, &st);
		x->resp.hint = st.lead;
	}
	net_send(s, x, false);
}

/* ------------------------------------------------------------ state machine */

/* A command in the log: client u32, seq u32, kind u8, key u8, arg0 u64,
 * arg1 u64, little-endian (CMD_LEN bytes). */
static void cmd_encode(const struct client_req *q, uint8_t out[CMD_LEN])
{
	le32_put(out, q->client);
	le32_put(out + 4, q->seq);
	out[8] = q->kind;
	out[9] = q->key;
	le64_put(out + 10, q->arg0);
	le64_put(out + 18, q->arg1);
}

static void cmd_decode(const uint8_t *p, struct client_req *q)
{
	q->client = le32_get(p);
	q->seq = le32_get(p + 4);
	q->kind = p[8];
	q->key = p[9];
	q->arg0 = le64_get(p + 10);
	q->arg1 = le64_get(p + 18);
}

static size_t kv_encode(const struct kv *kv, uint8_t **out)
{
	size_t len = sizeof *kv;
	*out = malloc(len);
	INVARIANT(*out != NULL);
	memcpy(*out, kv, len); /* one process, one layout: a byte copy is the encoding */
	return len;
}

static void kv_decode(struct kv *kv, const uint8_t *data, size_t len)
{
	memset(kv, 0, sizeof *kv);
	if (len == sizeof *kv)
		memcpy(kv, data, len);
}

static void record_applied(struct sim *s, struct node *n, uint64_t index, uint64_t term, uint64_t hash)
{
	while (index >= s->applied_cap) {
		size_t cap = s->applied_cap ? s->applied_cap * 2 : 4096;
		s->applied = realloc(s->applied, cap * sizeof *s->applied);
		INVARIANT(s->applied != NULL);
		memset(s->applied + s->applied_cap, 0, (cap - s->applied_cap) * sizeof *s->applied);
		s->applied_cap = cap;
	}
	struct applied_rec *a = &s->applied[index];
	uint64_t state = kv_hash(s, &n->kv);
	if (!a->set) {
		*a = (struct applied_rec){.term = term, .hash = hash, .state = state, .set = true};
		if (index > s->applied_max)
			s->applied_max = index;
		return;
	}
	if (a->term != term || a->hash != hash)
		violate(s, "state machine safety: node %u applied a different entry at index %llu (term %llu, first applied with term %llu)",
		        n->id, (unsigned long long)index, (unsigned long long)term, (unsigned long long)a->term);
	else if (a->state != state)
		violate(s, "state machine safety: node %u reached a different state after index %llu", n->id,
		        (unsigned long long)index);
}

static void apply_entry(struct sim *s, struct node *n, const struct raft_entry *e)
{
	if (e->index != n->applied + 1) {
		violate(s, "node %u applied index %llu after %llu", n->id, (unsigned long long)e->index,
		        (unsigned long long)n->applied);
		return;
	}
	if (e->type == RAFT_ENTRY_NORMAL && e->len == CMD_LEN) {
		struct client_req q;
		cmd_decode(e->data, &q);
		if (q.client >= 1 && q.client <= s->cfg.clients && q.key < s->cfg.keys) {
			struct kv *kv = &n->kv;
			if (q.seq > kv->last_seq[q.client]) { /* sessions: apply each request once */
				uint8_t ok = 1;
				if (q.kind == OP_PUT) {
					kv->val[q.key] = q.arg0;
					kv->present[q.key] = 1;
				} else if (q.kind == OP_CAS) {
					ok = kv->present[q.key] && kv->val[q.key] == q.arg0;
					if (ok)
						kv->val[q.key] = q.arg1;
				}
				kv->last_seq[q.client] = q.seq;
				kv->last_ok[q.client] = ok;
			}
			struct pend *p = &n->pend[q.client];
			if (p->active && p->seq == q.seq && p->kind != OP_GET) {
				uint8_t ok = kv->last_seq[q.client] == q.seq ? kv->last_ok[q.client] : 0;
				send_resp(s, n, q.client, q.seq, ST_OK, ok, 0);
				p->active = 0;
			}
		}
	}
	if (e->type == RAFT_ENTRY_CONF && (!s->n_confs || e->index > s->confs[s->n_confs - 1].index)) {
		struct raft_conf c;
		if (raft_conf_decode(e->data, e->len, &c) == 0) {
			if (s->n_confs == s->confs_cap) {
				s->confs_cap = s->confs_cap ? s->confs_cap * 2 : 64;
				s->confs = realloc(s->confs, s->confs_cap * sizeof *s->confs);
				INVARIANT(s->confs != NULL);
			}
			s->confs[s->n_confs++] = (struct conf_rec){e->index, c};
		}
	}
	n->applied = e->index;
	record_applied(s, n, e->index, e->term, entry_hash(e));
}

/* Serve the reads whose barrier has been applied. */
static void serve_reads(struct sim *s, struct node *n)
{
	for (uint32_t c = 1; c <= s->cfg.clients; c++) {
		struct pend *p = &n->pend[c];
		if (p->active && p->kind == OP_GET && p->have_index && n->applied >= p->read_index) {
			send_resp(s, n, c, p->seq, ST_OK, n->kv.present[p->key], n->kv.val[p->key]);
			p->active = 0;
		}
	}
}

/* ------------------------------------------------------------ nodes */

static void disk_log_truncate(struct node *n, uint64_t index)
{
	while (n->log_n && n->log[n->log_n - 1].index >= index) {
		free((void *)n->log[n->log_n - 1].data);
		n->log_n--;
	}
}

static void disk_log_drop_through(struct node *n, uint64_t index)
{
	size_t k = 0;
	while (k < n->log_n && n->log[k].index <= index)
		free((void *)n->log[k++].data);
	memmove(n->log, n->log + k, (n->log_n - k) * sizeof *n->log);
	n->log_n -= k;
}

/* Log matching, checked on everything that reaches a disk. */
static void check_log_matching(struct sim *s, struct node *n, uint64_t index, uint64_t term, uint64_t prev_term,
                               uint64_t hash)
{
	if (s->lm_n * 2 >= s->lm_cap) {
		size_t cap = s->lm_cap ? s->lm_cap * 2 : 4096;
		struct lm_slot *t = calloc(cap, sizeof *t);
		INVARIANT(t != NULL);
		for (size_t i = 0; i < s->lm_cap; i++) {
			if (!s->lm[i].index)
				continue;
			uint64_t h = s->lm[i].index * 0x9e3779b97f4a7c15ull ^ s->lm[i].term * 0xc2b2ae3d27d4eb4full;
			size_t j = (size_t)(h >> 7) & (cap - 1);
			while (t[j].index)
				j = (j + 1) & (cap - 1);
			t[j] = s->lm[i];
		}
		free(s->lm);
		s->lm = t;
		s->lm_cap = cap;
	}
	uint64_t h = index * 0x9e3779b97f4a7c15ull ^ term * 0xc2b2ae3d27d4eb4full;
	size_t j = (size_t)(h >> 7) & (s->lm_cap - 1);
	while (s->lm[j].index) {
		struct lm_slot *x = &s->lm[j];
		if (x->index == index && x->term == term) {
			if (x->hash != hash)
				violate(s, "log matching: node %u stored a different entry at index %llu term %llu", n->id,
				        (unsigned long long)index, (unsigned long long)term);
			else if (x->prev_term != prev_term)
				violate(s, "log matching: node %u has term %llu before index %llu term %llu, another node has %llu",
				        n->id, (unsigned long long)prev_term, (unsigned long long)index,
				        (unsigned long long)term, (unsigned long long)x->prev_term);
			return;
		}
		j = (j + 1) & (s->lm_cap - 1);
	}
	s->lm[j] = (struct lm_slot){index, term, prev_term, hash};
	s->lm_n++;
}

static void disk_write(struct sim *s, struct node *n, const struct raft_ready *rd)
{
	if (rd->snapshot) {
		free(n->snap_data);
		n->snap_meta = rd->snapshot->meta;
		n->snap_len = rd->snapshot->len;
		n->snap_data = malloc(n->snap_len ? n->snap_len : 1);
		INVARIANT(n->snap_data != NULL);
		if (n->snap_len)
			memcpy(n->snap_data, rd->snapshot->data, n->snap_len);
		disk_log_truncate(n, 0);
	}
	if (rd->n_entries) {
		uint64_t first = rd->entries[0].index;
		disk_log_truncate(n, first);
		uint64_t last = n->log_n ? n->log[n->log_n - 1].index : n->snap_meta.index;
		if (first != last + 1) {
			violate(s, "node %u persisted index %llu after %llu: a gap in its log", n->id,
			        (unsigned long long)first, (unsigned long long)last);
			return;
		}
		uint64_t prev_term = n->log_n ? n->log[n->log_n - 1].term : n->snap_meta.term;
		if (n->log_n + rd->n_entries > n->log_cap) {
			n->log_cap = (n->log_n + rd->n_entries) * 2;
			n->log = realloc(n->log, n->log_cap * sizeof *n->log);
			INVARIANT(n->log != NULL);
		}
		for (size_t k = 0; k < rd->n_entries; k++) {
			struct raft_entry e = rd->entries[k];
			check_log_matching(s, n, e.index, e.term, prev_term, entry_hash(&e));
			prev_term = e.term;
			if (e.len) {
				uint8_t *d = malloc(e.len);
				INVARIANT(d != NULL);
				memcpy(d, e.data, e.len);
				e.data = d;
			}
			n->log[n->log_n++] = e;
		}
	}
	if (rd->hs_changed) {
		if (rd->hs.term < n->hs.term)
			violate(s, "node %u: the durable term went back from %llu to %llu", n->id,
			        (unsigned long long)n->hs.term, (unsigned long long)rd->hs.term);
		if (rd->hs.term == n->hs.term && n->hs.vote && rd->hs.vote != n->hs.vote)
			violate(s, "node %u voted for %llu and then %llu in term %llu", n->id, (unsigned long long)n->hs.vote,
			        (unsigned long long)rd->hs.vote, (unsigned long long)rd->hs.term);
		if (rd->hs.commit < n->hs.commit)
			violate(s, "node %u: the durable commit index went back", n->id);
		n->hs = rd->hs;
	}
}

static void pwrite_free(struct pwrite *w)
{
	for (size_t k = 0; k < w->n_entries; k++)
		free((void *)w->entries[k].data);
	free(w->entries);
	free(w);
}

static void pwrite_drop_all(struct node *n)
{
	while (n->pw) {
		struct pwrite *w = n->pw;
		n->pw = w->next;
		pwrite_free(w);
	}
	n->pw_tail = &n->pw;
}

static void pwrite_queue(struct sim *s, struct node *n, const struct raft_ready *rd, uint64_t done_at)
{
	struct pwrite *w = calloc(1, sizeof *w);
	INVARIANT(w != NULL);
	w->done_at = done_at;
	w->hs = rd->hs;
	w->hs_changed = rd->hs_changed;
	if (rd->n_entries) {
		w->entries = malloc(rd->n_entries * sizeof *w->entries);
		INVARIANT(w->entries != NULL);
		for (size_t k = 0; k < rd->n_entries; k++) {
			w->entries[k] = rd->entries[k];
			if (w->entries[k].len) {
				uint8_t *d = malloc(w->entries[k].len);
				INVARIANT(d != NULL);
				memcpy(d, rd->entries[k].data, w->entries[k].len);
				w->entries[k].data = d;
			} else {
				w->entries[k].data = NULL;
			}
		}
		w->n_entries = rd->n_entries;
	}
	(void)s;
	if (!n->pw_tail)
		n->pw_tail = &n->pw;
	*n->pw_tail = w;
	n->pw_tail = &w->next;
}

/* The queued writes due by now reach the disk, in order; each tells the
 * raft (unless a synchronous Ready is in flight: its raft_advance will
 * cover them, and no input is allowed before it). */
static void pwrite_flush(struct sim *s, struct node *n, bool all)
{
	while (n->pw && (all || n->pw->done_at <= s->now) && !s->stop) {
		struct pwrite *w = n->pw;
		n->pw = w->next;
		if (!n->pw)
			n->pw_tail = &n->pw;
		struct raft_ready rd = {.hs = w->hs, .hs_changed = w->hs_changed, .entries = w->entries,
		                        .n_entries = w->n_entries};
		disk_write(s, n, &rd);
		if (w->n_entries && !n->stalled)
			raft_persisted(n->r, w->entries[w->n_entries - 1].index, w->entries[w->n_entries - 1].term);
		pwrite_free(w);
	}
}

/* The oldest queued write reaches the disk, the raft not told. */
static void pwrite_disk_one(struct sim *s, struct node *n)
{
	struct pwrite *w = n->pw;
	n->pw = w->next;
	struct raft_ready rd = {.hs = w->hs, .hs_changed = w->hs_changed, .entries = w->entries,
	                        .n_entries = w->n_entries};
	disk_write(s, n, &rd);
	pwrite_free(w);
}

/* Every queued write reaches the disk, the raft not told (it is about to
 * crash). */
static void pwrite_disk_all(struct sim *s, struct node *n)
{
	while (n->pw && !s->stop)
		pwrite_disk_one(s, n);
	n->pw_tail = &n->pw;
}

static uint64_t pwrite_last_due(const struct node *n)
{
	uint64_t t = 0;
	for (const struct pwrite *w = n->pw; w; w = w->next)
		if (w->done_at > t)
			t = w->done_at;
	return t;
}

static int node_start(struct sim *s, struct node *n)
{
	struct raft_config cfg;
	raft_config_default(&cfg);
	cfg.id = n->id;
	cfg.seed = s->cfg.seed * 0x2545f4914f6cdd1dull + n->restarts;
	cfg.pre_vote = s->cfg.pre_vote;
	cfg.check_quorum = true;
	cfg.lease_read = s->cfg.lease_read;
	cfg.max_msg_entries = s->max_msg_entries;
	cfg.max_inflight_msgs = s->max_inflight;
	cfg.max_pending_reads = 256;
	cfg.max_msgs = 512; /* a Ready of this cluster holds far fewer */
	int rc = raft_new(&n->r, &cfg);
	if (rc < 0)
		return rc;
	struct raft_snapshot snap = {.meta = n->snap_meta, .data = n->snap_data, .len = n->snap_len};
	rc = raft_restore(n->r, &n->hs, &snap, n->log, n->log_n);
	if (rc < 0) {
		violate(s, "node %u cannot restart from its disk (%d)", n->id, rc);
		return rc;
	}
	kv_decode(&n->kv, n->snap_data, n->snap_len);
	n->applied = n->snap_meta.index;
	memset(n->pend, 0, sizeof n->pend);
	n->up = true;
	n->stalled = false;
	n->frozen_until = 0;
	n->pending_ticks = 0;
	n->role = RAFT_FOLLOWER;
	n->role_term = 0;
	n->max_commit = 0;
	/* a term that never reached the disk was never seen by anyone (its
	 * messages wait for the write), so only the durable term counts;
	 * disk_write() checks that it never goes back */
	n->max_term = n->hs.term;
	return 0;
}

static void node_crash(struct sim *s, struct node *n, uint64_t down_ms)
{
	/* of the queued asynchronous writes, the disk may have finished some
	 * (in order) that the process never heard of; the rest are lost */
	if (n->pw) {
		s->res->async_crashes++;
		size_t q = 0;
		for (struct pwrite *w = n->pw; w; w = w->next)
			q++;
		for (size_t k = below(s, q + 1); k > 0 && n->pw && !s->stop; k--)
			pwrite_disk_one(s, n);
	}
	pwrite_drop_all(n);
	raft_free(n->r); /* the write in flight, if any, dies with it: never synced */
	n->r = NULL;
	n->up = false;
	n->stalled = false;
	n->down_until = s->now + down_ms;
	n->restarts++;
	s->res->crashes++;
}

/* The configuration in force at a committed index: the last configuration
 * entry applied at or before it, else the bootstrap one. */
static struct raft_conf conf_in_force(const struct sim *s, uint64_t index)
{
	struct raft_conf c = s->boot_conf;
	for (size_t k = 0; k < s->n_confs && s->confs[k].index <= index; k++)
		c = s->confs[k].conf;
	return c;
}

/* A snapshot stands for the log up to its index, configuration included
 * (Figure 2's InstallSnapshot "last config as of lastIncludedIndex"): one
 * that records a later, perhaps never committed, configuration gives the
 * node that installs it the wrong majorities. */
static void check_snapshot_conf(struct sim *s, struct node *n, const struct raft_snapshot_meta *meta, const char *how)
{
	if (meta->index == 0)
		return;
	bool boot = s->n_confs == 0 || s->confs[0].index > meta->index;
	if (boot && meta->conf.voters == 0 && meta->conf.learners == 0)
		return; /* a node that joined later never saw the bootstrap configuration (raft.h, start-up) */
	struct raft_conf c = conf_in_force(s, meta->index);
	if (c.voters != meta->conf.voters || c.learners != meta->conf.learners)
		violate(s, "snapshot: node %u %s a snapshot at %llu whose configuration (voters %#llx, learners %#llx) is not the one in force there (voters %#llx, learners %#llx)",
		        n->id, how, (unsigned long long)meta->index, (unsigned long long)meta->conf.voters,
		        (unsigned long long)meta->conf.learners, (unsigned long long)c.voters,
		        (unsigned long long)c.learners);
}

static void maybe_snapshot(struct sim *s, struct node *n)
{
	struct raft_status st;
	raft_status(n->r, &st);
	/* snapshots taken while a membership change is in flight, now and then */
	bool conf_pending = st.conf_index > n->applied && n->applied > n->snap_meta.index && chance(s, 1, 4);
	if (n->applied < n->snap_meta.index + s->cfg.snapshot_every && !conf_pending)
		return;
	uint8_t *data;
	size_t len = kv_encode(&n->kv, &data);
	if (raft_compact(n->r, n->applied, data, len) == 0) {
		const struct raft_snapshot *sn = raft_snapshot_get(n->r);
		free(n->snap_data);
		n->snap_data = data;
		n->snap_len = len;
		n->snap_meta = sn->meta;
		disk_log_drop_through(n, sn->meta.index);
		check_snapshot_conf(s, n, &sn->meta, "takes");
	} else {
		free(data);
	}
}

/* What a message promises must already be on the disk when it leaves
 * (raft.h, the Ready contract 3): an acknowledgement of index i to a
 * leader of term T needs an entry of term <= T at i (a newer term there
 * means the acknowledged entry was truncated in the same Ready); a vote
 * for C in term T needs a durable term T with vote C, or a later term.
 * And a node grants one vote per term even across restarts: the grants
 * seen on the wire are remembered for the whole run. */
static void check_promise(struct sim *s, struct node *n, const struct raft_msg *m)
{
	if (m->type == RAFT_MSG_APP_RESP && !m->reject && m->index > n->snap_meta.index) {
		uint64_t last = n->log_n ? n->log[n->log_n - 1].index : n->snap_meta.index;
		if (m->index > last || n->log[m->index - n->snap_meta.index - 1].term > m->term)
			violate(s, "durability: node %u acknowledges index %llu to term %llu, but its disk holds %s there", n->id,
			        (unsigned long long)m->index, (unsigned long long)m->term,
			        m->index > last ? "nothing" : "a newer term's entry");
		return;
	}
	if (m->type != RAFT_MSG_VOTE_RESP || m->reject)
		return;
	if (n->hs.term < m->term || (n->hs.term == m->term && n->hs.vote != m->to)) {
		violate(s, "durability: node %u grants its vote in term %llu to %u before its disk records it (term %llu, vote %llu)",
		        n->id, (unsigned long long)m->term, m->to, (unsigned long long)n->hs.term,
		        (unsigned long long)n->hs.vote);
		return;
	}
	if (m->term >= s->vote_terms) {
		size_t terms = s->vote_terms ? s->vote_terms : 256;
		while (terms <= m->term)
			terms *= 2;
		s->vote_of = realloc(s->vote_of, terms * (MAX_NODES + 1));
		INVARIANT(s->vote_of != NULL);
		memset(s->vote_of + s->vote_terms * (MAX_NODES + 1), 0, (terms - s->vote_terms) * (MAX_NODES + 1));
		s->vote_terms = terms;
	}
	uint8_t *v = &s->vote_of[m->term * (MAX_NODES + 1) + n->id];
	if (*v && *v != m->to)
		violate(s, "election safety: node %u votes for %u and for %u in term %llu", n->id, *v, m->to,
		        (unsigned long long)m->term);
	*v = (uint8_t)m->to;
}

static bool ready_out(struct sim *s, struct node *n, const struct raft_ready *rd);

/* The write of the Ready is durable: now its consequences. */
static void node_complete(struct sim *s, struct node *n)
{
	struct raft_ready *rd = &n->rd;
	pwrite_flush(s, n, true); /* queued before it: durable before it */
	if (s->stop)
		return;
	disk_write(s, n, rd);
	if (s->stop)
		return;
	if (!ready_out(s, n, rd))
		return;
	raft_advance(n->r, rd);
	n->stalled = false;
	serve_reads(s, n);
	maybe_snapshot(s, n);
	while (n->pending_ticks) {
		n->pending_ticks--;
		raft_tick(n->r);
	}
}

/* A Ready's messages, snapshot, committed entries and reads; false if the
 * node crashed first. */
static bool ready_out(struct sim *s, struct node *n, const struct raft_ready *rd)
{
	enum raft_sim_scenario sc = s->cfg.scenario;
	uint32_t den = sc == RAFT_SIM_SCENARIO_CRASH_BEFORE_SEND ? 20 : sc == RAFT_SIM_SCENARIO_FIGURE8 ? 200 : 4000;
	/* Figure 8 fodder: a leader that dies with entries nobody else got */
	if (n->role == RAFT_LEADER && rd->n_entries && chance(s, 1, sc == RAFT_SIM_SCENARIO_FIGURE8 ? 3 : 25))
		den = 1;
	/* a vote granted and persisted but never sent: after the restart the
	 * node must still remember it (nothing else tells it) */
	for (size_t k = 0; k < rd->n_msgs && den > 50; k++)
		if (rd->msgs[k].type == RAFT_MSG_VOTE_RESP && !rd->msgs[k].reject)
			den = 50;
	if (has(s, RAFT_SIM_CRASH) && rd->n_msgs && chance(s, 1, den)) {
		if (den == 1) /* Figure 8 fodder: the leader's own disk holds them */
			pwrite_disk_all(s, n);
		node_crash(s, n, 20 + below(s, 300)); /* persisted (or queued), but nothing sent */
		return false;
	}
	for (size_t k = 0; k < rd->n_msgs; k++) {
		if (rd->msgs[k].to > s->n_ids)
			continue;
		check_promise(s, n, &rd->msgs[k]);
		if (rd->msgs[k].type == RAFT_MSG_SNAP)
			s->res->snapshots_sent++;
		net_send(s, msg_copy_raft(s, &rd->msgs[k]), true);
	}
	if (rd->snapshot) {
		check_snapshot_conf(s, n, &rd->snapshot->meta, "installs");
		kv_decode(&n->kv, rd->snapshot->data, rd->snapshot->len);
		n->applied = rd->snapshot->meta.index;
		s->res->snapshots_installed++;
		uint64_t i = n->applied;
		if (i < s->applied_cap && s->applied[i].set && s->applied[i].state != kv_hash(s, &n->kv))
			violate(s, "state machine safety: node %u installed a snapshot at %llu whose state differs", n->id,
			        (unsigned long long)i);
	}
	for (size_t k = 0; k < rd->n_committed && !s->stop; k++)
		apply_entry(s, n, &rd->committed[k]);
	for (size_t k = 0; k < rd->n_reads; k++) {
		uint32_t c = (uint32_t)(rd->reads[k].ctx >> 32), seq = (uint32_t)rd->reads[k].ctx;
		if (c >= 1 && c <= s->cfg.clients && n->pend[c].active && n->pend[c].seq == seq && n->pend[c].kind == OP_GET) {
			/* a read barrier (ReadIndex or lease) must cover every entry
			 * committed before the read arrived: sooner than any client
			 * could notice a stale answer */
			if (rd->reads[k].index < n->pend[c].commit_floor) {
				violate(s, "read index: node %u confirms a read at index %llu, but index %llu was committed before the read arrived",
				        n->id, (unsigned long long)rd->reads[k].index,
				        (unsigned long long)n->pend[c].commit_floor);
				return false;
			}
			n->pend[c].have_index = 1;
			n->pend[c].read_index = rd->reads[k].index;
		}
	}
	return !s->stop;
}

/* Odd seeds run a synchronous host (raft.h steps 1-5 for every Ready,
 * rd.async ignored), even seeds an asynchronous one: both are correct
 * hosts, and a sweep that only ever mixed in asynchronous writes would
 * no longer reach some interleavings of the synchronous one (planted
 * bugs 11 and 15 went unseen in 1000 seeds). */
static bool async_host(const struct sim *s)
{
	return s->cfg.seed % 2 == 0;
}

static uint64_t disk_latency(struct sim *s)
{
	if (!has(s, RAFT_SIM_DISK))
		return 0;
	uint64_t x = below(s, 100);
	if (x < 70)
		return 0;
	if (x < 96)
		return 1 + below(s, 3);
	return 10 + below(s, 40);
}

static void observe(struct sim *s, struct node *n);

static void node_ready(struct sim *s, struct node *n)
{
	bool any = raft_ready(n->r, &n->rd);
	observe(s, n); /* the leader's commit may move in raft_ready */
	if (!any)
		return;
	uint64_t due = s->now + disk_latency(s), queued = pwrite_last_due(n);
	if (due < queued)
		due = queued; /* the disk finishes writes in order */
	if (n->rd.async && async_host(s) && !chance(s, 1, 4)) {
		pwrite_queue(s, n, &n->rd, due);
		s->res->async_writes++;
		if (!ready_out(s, n, &n->rd))
			return;
		/* the leader dies after replicating what its own disk never got */
		if (has(s, RAFT_SIM_CRASH) && n->rd.n_entries && n->pw && n->pw->done_at > s->now &&
		    chance(s, 1, s->cfg.scenario == RAFT_SIM_SCENARIO_FIGURE8 ? 10 : 200)) {
			node_crash(s, n, 20 + below(s, 300));
			return;
		}
		raft_advance_async(n->r, &n->rd);
		pwrite_flush(s, n, false); /* a write due now is durable now */
		serve_reads(s, n);
		maybe_snapshot(s, n);
		return;
	}
	n->stalled = true;
	n->done_at = due;
	if (n->done_at == s->now)
		node_complete(s, n);
}

static void host_request(struct sim *s, struct node *n, const struct client_req *q)
{
	uint32_t c = q->client;
	if (q->seq < n->pend[c].seq)
		return; /* a late copy of a request its client has moved past: as if lost (it must not clobber the newer one) */
	if (q->kind == OP_GET) {
		if (raft_read_index(n->r, (uint64_t)c << 32 | q->seq) < 0) {
			send_resp(s, n, c, q->seq, ST_NOT_LEADER, 0, 0);
			return;
		}
		struct pend *p = &n->pend[c];
		/* a duplicated request asks again, and either barrier may answer
		 * it: the floor is that of the first arrival */
		uint64_t floor = p->seq == q->seq && p->kind == OP_GET ? p->commit_floor : raft_ledger_committed(s->ledger);
		*p = (struct pend){.seq = q->seq, .kind = OP_GET, .key = q->key, .active = 1, .commit_floor = floor};
		return;
	}
	uint8_t cmd[CMD_LEN];
	cmd_encode(q, cmd);
	if (raft_propose(n->r, cmd, sizeof cmd) < 0) {
		send_resp(s, n, c, q->seq, ST_NOT_LEADER, 0, 0);
		return;
	}
	n->pend[c] = (struct pend){.seq = q->seq, .kind = q->kind, .active = 1};
}

/* ------------------------------------------------------------ clients */

static uint32_t random_node(struct sim *s)
{
	return 1 + (uint32_t)below(s, s->cfg.nodes);
}

static void client_finish(struct sim *s, struct client *c, bool known, uint8_t ok, uint64_t value)
{
	struct lin_op op = {
		.key = c->req.key, .client = c->id, .call = c->call_t,
		.ret = known ? s->now : LIN_TIME_UNKNOWN, .unknown = !known, .ok = ok, .value = value,
	};
	switch (c->req.kind) {
	case OP_PUT: op.kind = LIN_PUT; op.arg[0] = c->req.arg0; break;
	case OP_GET: op.kind = LIN_GET; break;
	case OP_CAS: op.kind = LIN_CAS; op.arg[0] = c->req.arg0; op.arg[1] = c->req.arg1; break;
	}
	lin_add(s->hist, &op);
	if (c->req.kind == OP_GET)
		s->res->reads_checked++;
	else
		s->res->writes_checked++;
	if (!known)
		s->res->ops_unknown++;
	if (known && c->req.kind == OP_GET && ok)
		c->last_val[c->req.key] = value;
	if (known && c->req.kind == OP_PUT)
		c->last_val[c->req.key] = c->req.arg0;
	if (known && c->req.kind == OP_CAS && ok)
		c->last_val[c->req.key] = c->req.arg1;
	c->busy = false;
	c->next_at = s->now + below(s, 20);
}

static void client_on_resp(struct sim *s, const struct client_resp *r)
{
	struct client *c = &s->clients[r->client];
	if (!c->busy || r->seq != c->seq)
		return; /* a duplicate, or the answer to an attempt we gave up on */
	if (r->status == ST_NOT_LEADER) {
		/* Not proposed, so it had no effect -- unless the network
		 * duplicated the request and the other copy got in. */
		if (c->req.kind != OP_GET && c->dup_seq == c->seq) {
			client_finish(s, c, false, 0, 0);
		} else {
			c->busy = false;
			c->next_at = s->now + 1 + below(s, 5);
		}
		c->target = r->hint ? r->hint : random_node(s);
		return;
	}
	client_finish(s, c, true, r->ok, r->value);
}

static void client_step(struct sim *s, struct client *c)
{
	if (c->busy && s->now >= c->deadline) {
		client_finish(s, c, false, 0, 0);
		c->target = random_node(s);
		c->next_at = s->now + 50 + below(s, 100); /* back off: the cluster may be down */
	}
	if (s->pin_target && s->now < s->pin_until && (c->id & 1))
		c->target = s->pin_target; /* half the clients stay with the old leader */
	if (c->busy || s->now < c->next_at)
		return;
	uint64_t x = below(s, 100);
	c->seq++;
	c->req = (struct client_req){.client = c->id, .seq = c->seq, .key = (uint8_t)below(s, s->cfg.keys)};
	uint64_t v = (uint64_t)c->id << 32 | c->seq;
	if (x < 40) {
		c->req.kind = OP_PUT;
		c->req.arg0 = v;
	} else if (x < 80) {
		c->req.kind = OP_GET;
	} else {
		c->req.kind = OP_CAS;
		c->req.arg0 = c->last_val[c->req.key];
		c->req.arg1 = v;
	}
	c->busy = true;
	c->call_t = s->now;
	c->deadline = s->now + s->cfg.client_timeout_ms;
	struct net_msg *m = msg_alloc(s, sizeof *m);
	m->kind = K_REQ;
	m->from = c->id;
	m->to = c->target;
	m->req = c->req;
	net_send(s, m, false);
}

/* ------------------------------------------------------------ faults */

static uint32_t current_leader(struct sim *s)
{
	uint32_t best = 0;
	uint64_t term = 0;
	for (uint32_t i = 1; i <= s->n_ids; i++) {
		struct node *n = &s->nodes[i];
		if (!n->up || n->role != RAFT_LEADER)
			continue;
		if (n->role_term > term) {
			term = n->role_term;
			best = i;
		}
	}
	return best;
}

static void cut_both(struct sim *s, uint32_t a, uint32_t b)
{
	s->cut[a][b] = s->cut[b][a] = true;
}

static void partition_start(struct sim *s, uint64_t duration)
{
	uint32_t n = s->n_ids, l = current_leader(s);
	uint64_t kind = below(s, 4);
	memset(s->cut, 0, sizeof s->cut);
	if (kind == 0 || (kind == 1 && !l)) { /* symmetric split into two random sides */
		uint64_t side = 0;
		while (side == 0 || side == (1ull << n) - 1)
			side = below(s, 1ull << n);
		for (uint32_t a = 1; a <= n; a++)
			for (uint32_t b = 1; b <= n; b++)
				if (((side >> (a - 1)) & 1) != ((side >> (b - 1)) & 1))
					s->cut[a][b] = true;
	} else if (kind == 1) { /* the leader alone */
		for (uint32_t b = 1; b <= n; b++)
			if (b != l)
				cut_both(s, l, b);
	} else if (kind == 2) { /* asymmetric: one node hears but is not heard, or the reverse */
		uint32_t x = l && chance(s, 1, 2) ? l : 1 + (uint32_t)below(s, n);
		bool out = chance(s, 1, 2);
		for (uint32_t b = 1; b <= n; b++)
			if (b != x) {
				if (out)
					s->cut[x][b] = true;
				else
					s->cut[b][x] = true;
			}
	} else { /* a bridge: two halves that only one node connects */
		uint32_t bridge = 1 + (uint32_t)below(s, n);
		for (uint32_t a = 1; a <= n; a++)
			for (uint32_t b = 1; b <= n; b++)
				if (a != bridge && b != bridge && (a & 1) != (b & 1))
					s->cut[a][b] = true;
	}
	s->partitioned = true;
	s->heal_at = s->now + duration;
	s->res->partitions++;
}

static void membership_step(struct sim *s)
{
	uint32_t l = current_leader(s);
	if (!l || !idle(s, &s->nodes[l]))
		return;
	struct raft_status st;
	raft_status(s->nodes[l].r, &st);
	int voters = __builtin_popcountll(st.conf.voters);
	uint32_t lo = s->cfg.nodes > 2 ? s->cfg.nodes - 1 : 1, hi = s->cfg.nodes + 1;
	int64_t rc = -1;
	if (st.conf.learners) {
		rc = raft_propose_conf(s->nodes[l].r, RAFT_CONF_ADD_VOTER, (uint32_t)__builtin_ctzll(st.conf.learners));
	} else if ((uint32_t)voters < hi && chance(s, 1, 2)) {
		uint32_t x = 1 + (uint32_t)below(s, s->n_ids);
		if (!((st.conf.voters | st.conf.learners) & (1ull << x)))
			rc = raft_propose_conf(s->nodes[l].r, RAFT_CONF_ADD_LEARNER, x);
	} else if ((uint32_t)voters > lo) {
		uint32_t pick = (uint32_t)below(s, (uint64_t)voters), x = 0;
		for (uint64_t v = st.conf.voters; v; v &= v - 1, pick--)
			if (pick == 0) {
				x = (uint32_t)__builtin_ctzll(v);
				break;
			}
		rc = raft_propose_conf(s->nodes[l].r, RAFT_CONF_REMOVE, x);
	}
	if (rc > 0)
		s->res->conf_changes++;
}

static void transfer_step(struct sim *s)
{
	uint32_t l = current_leader(s);
	if (!l || !idle(s, &s->nodes[l]))
		return;
	struct raft_status st;
	raft_status(s->nodes[l].r, &st);
	uint64_t others = st.conf.voters & ~(1ull << l);
	if (!others)
		return;
	uint32_t pick = (uint32_t)below(s, (uint64_t)__builtin_popcountll(others));
	for (; pick; pick--)
		others &= others - 1;
	if (raft_transfer_leader(s->nodes[l].r, (uint32_t)__builtin_ctzll(others)) == 0)
		s->res->transfers++;
}

static void faults_step(struct sim *s)
{
	enum raft_sim_scenario sc = s->cfg.scenario;
	if (s->partitioned && s->now >= s->heal_at) {
		memset(s->cut, 0, sizeof s->cut);
		s->partitioned = false;
	}
	if (has(s, RAFT_SIM_PARTITION) && !s->partitioned && chance(s, 1, 3000))
		partition_start(s, 100 + below(s, 2000));
	for (uint32_t i = 1; i <= s->n_ids; i++) {
		struct node *n = &s->nodes[i];
		if (!n->up && s->now >= n->down_until)
			node_start(s, n);
	}
	if (has(s, RAFT_SIM_CRASH) && chance(s, 1, sc == RAFT_SIM_SCENARIO_FIGURE8 ? 300 : 2500)) {
		uint32_t victim = current_leader(s);
		if (!victim || (sc != RAFT_SIM_SCENARIO_FIGURE8 && chance(s, 1, 2)))
			victim = 1 + (uint32_t)below(s, s->n_ids);
		if (s->nodes[victim].up)
			node_crash(s, &s->nodes[victim], sc == RAFT_SIM_SCENARIO_FIGURE8 ? 10 + below(s, 200) : 50 + below(s, 1500));
	}
	if (has(s, RAFT_SIM_PAUSE) && chance(s, 1, 3000)) {
		uint32_t victim = current_leader(s);
		if (!victim || chance(s, 1, 2))
			victim = 1 + (uint32_t)below(s, s->n_ids);
		struct node *n = &s->nodes[victim];
		if (n->up && !frozen(s, n)) {
			n->frozen_until = s->now + 50 + below(s, 450);
			s->res->pauses++;
		}
	}
	if (has(s, RAFT_SIM_MEMBERSHIP) && chance(s, 1, 2500))
		membership_step(s);
	if (has(s, RAFT_SIM_TRANSFER) && chance(s, 1, 4000))
		transfer_step(s);

	/* scenarios: one scripted event at 3 s */
	uint32_t l;
	if (s->now == 3000 && (l = current_leader(s)) != 0) {
		if (sc == RAFT_SIM_SCENARIO_LEADER_PARTITION) {
			memset(s->cut, 0, sizeof s->cut);
			for (uint32_t b = 1; b <= s->n_ids; b++)
				if (b != l)
					cut_both(s, l, b);
			s->partitioned = true;
			s->heal_at = s->now + 3000;
			s->res->partitions++;
			s->pin_target = l; /* clients keep talking to the old leader */
			s->pin_until = s->now + 3000;
		} else if (sc == RAFT_SIM_SCENARIO_SNAPSHOT_BEHIND) {
			uint32_t f = l % s->cfg.nodes + 1;
			memset(s->cut, 0, sizeof s->cut);
			for (uint32_t b = 1; b <= s->n_ids; b++)
				if (b != f)
					cut_both(s, f, b);
			s->partitioned = true;
			s->heal_at = s->now + 3000;
			s->res->partitions++;
		}
	}
	if (sc == RAFT_SIM_SCENARIO_REMOVE_LEADER && s->now >= 3000 && s->res->conf_changes == 0 &&
	    (l = current_leader(s)) != 0 && idle(s, &s->nodes[l])) {
		if (raft_propose_conf(s->nodes[l].r, RAFT_CONF_REMOVE, l) > 0)
			s->res->conf_changes++;
	}
}

/* ------------------------------------------------------------ checks */

/* Dissertation 4.1: one membership change at a time -- a leader appends
 * a configuration entry only once the previous one is committed, so its
 * log never holds two past its commit index (two changes in flight can
 * make two majorities that do not overlap).  Only entries of its own term
 * count: a new leader may hold two entries of an older term, the first
 * committed by then, before it learns the commit index. */
static void check_one_change(struct sim *s, struct node *n, const struct raft_status *st)
{
	uint64_t t;
	if (raft_term_at(n->r, st->conf_index, &t) < 0 || t != st->term)
		return;
	for (uint64_t i = st->commit + 1; i < st->conf_index; i++) {
		const struct raft_entry *e = raft_entry_at(n->r, i);
		if (e && e->type == RAFT_ENTRY_CONF && e->term == st->term) {
			violate(s, "membership: leader %u has configuration entries at %llu and %llu, both past its commit index %llu",
			        n->id, (unsigned long long)i, (unsigned long long)st->conf_index,
			        (unsigned long long)st->commit);
			return;
		}
	}
}

/* A leader commits index c of its term only once a majority of its
 * voters hold that entry on disk (Figure 2, Leaders; an acknowledgement
 * leaves only after the write).  The leader itself counts only for what
 * its own disk holds: its asynchronous writes may still be on the way.  This is what makes
 * "committed" survive any crash; a leader that counted a stale or
 * premature acknowledgement fails it at once, before any harm shows. */
static void check_commit_quorum(struct sim *s, struct node *n, const struct raft_status *st)
{
	uint64_t c = st->commit, t;
	if (raft_term_at(n->r, c, &t) < 0)
		return;
	uint64_t holders = 0;
	for (uint64_t v = st->conf.voters; v; v &= v - 1) {
		struct node *f = &s->nodes[__builtin_ctzll(v)];
		if (c <= f->snap_meta.index)
			holders |= v & -v; /* compacted: it was committed there */
		else if (c - f->snap_meta.index <= f->log_n && f->log[c - f->snap_meta.index - 1].term == t)
			holders |= v & -v;
	}
	if (__builtin_popcountll(holders & st->conf.voters) <= __builtin_popcountll(st->conf.voters) / 2)
		violate(s, "commit: leader %u commits index %llu of term %llu, but only %d of its %d voters hold it on disk",
		        n->id, (unsigned long long)c, (unsigned long long)t, __builtin_popcountll(holders & st->conf.voters),
		        __builtin_popcountll(st->conf.voters));
}

/* Election safety, leader completeness and the commit index: looked at
 * after every input a node takes (not once a step), so that a leadership
 * or a commit that lasts less than a step is seen too.  raft/ledger keeps
 * what has been committed and in which term. */
static void observe(struct sim *s, struct node *n)
{
	if (!n->up || s->stop)
		return;
	struct raft_status st;
	raft_status(n->r, &st);
	uint32_t i = n->id;
	if (st.term < n->max_term)
		violate(s, "node %u: term went back from %llu to %llu", i, (unsigned long long)n->max_term,
		        (unsigned long long)st.term);
	if (st.commit < n->max_commit)
		violate(s, "node %u: commit index went back from %llu to %llu", i, (unsigned long long)n->max_commit,
		        (unsigned long long)st.commit);
	bool newly = st.role == RAFT_LEADER && (n->role != RAFT_LEADER || n->role_term != st.term);
	bool leads = st.role == RAFT_LEADER || (n->role == RAFT_LEADER && n->role_term == st.term);
	n->role = st.role;
	n->role_term = st.term;
	n->max_term = st.term;
	char why[256];
	if (newly) {
		while (st.term >= s->term_cap) {
			size_t cap = s->term_cap ? s->term_cap * 2 : 256;
			s->term_leader = realloc(s->term_leader, cap * sizeof *s->term_leader);
			INVARIANT(s->term_leader != NULL);
			memset(s->term_leader + s->term_cap, 0, (cap - s->term_cap) * sizeof *s->term_leader);
			s->term_cap = cap;
		}
		uint32_t *tl = &s->term_leader[st.term];
		if (*tl && *tl != i) {
			violate(s, "election safety: nodes %u and %u both lead term %llu", *tl, i, (unsigned long long)st.term);
			return;
		}
		if (!*tl) {
			*tl = i;
			s->res->elections++;
			if (st.term > s->last_leader_term) {
				if (s->last_leader && s->last_leader != i)
					s->res->leader_changes++;
				s->last_leader = i;
				s->last_leader_term = st.term;
			}
		}
		if (raft_ledger_leader(s->ledger, n->r, why, sizeof why) != 0) {
			violate(s, "%s", why);
			return;
		}
	}
	if (st.commit > n->max_commit && leads)
		check_commit_quorum(s, n, &st);
	if (st.role == RAFT_LEADER && st.conf_index > st.commit)
		check_one_change(s, n, &st);
	if (st.commit > n->max_commit) {
		int rc = raft_ledger_commit(s->ledger, n->r, n->max_commit, leads, why, sizeof why);
		INVARIANT(rc != -ENOMEM);
		if (rc != 0)
			violate(s, "%s", why);
	}
	n->max_commit = st.commit;
}

static void checks_step(struct sim *s)
{
	for (uint32_t i = 1; i <= s->n_ids && !s->stop; i++)
		observe(s, &s->nodes[i]);
}

/* Rules about one message, checked right after the node took it:
 *   - Figure 2, AppendEntries receiver 5: a follower sets its commit index
 *     to min(leaderCommit, index of last new entry) -- only what the
 *     append proved matches the leader's log, whatever else its log holds;
 *   - Figure 2, All servers: a response from an older term is stale and
 *     changes nothing (no term, role, commit or log change, no message). */
static void check_step(struct sim *s, struct node *n, const struct raft_msg *m, const struct raft_status *before)
{
	struct raft_status st;
	raft_status(n->r, &st);
	if (m->type == RAFT_MSG_APP && st.role != RAFT_LEADER) {
		uint64_t last_new = m->index + m->n_entries;
		uint64_t bound = m->commit < last_new ? m->commit : last_new;
		if (st.commit > before->commit && st.commit > bound)
			violate(s, "commit: node %u takes commit index %llu from an append of term %llu that matched the leader's log only up to %llu (leader commit %llu)",
			        n->id, (unsigned long long)st.commit, (unsigned long long)m->term, (unsigned long long)last_new,
			        (unsigned long long)m->commit);
		return;
	}
	bool resp = m->type == RAFT_MSG_APP_RESP || m->type == RAFT_MSG_VOTE_RESP || m->type == RAFT_MSG_PREVOTE_RESP ||
	            m->type == RAFT_MSG_HEARTBEAT_RESP || m->type == RAFT_MSG_READ_INDEX_RESP;
	if (!resp || m->term >= before->term)
		return;
	if (st.term != before->term || st.role != before->role || st.commit != before->commit ||
	    st.last_index != before->last_index || st.msgs_queued != before->msgs_queued)
		violate(s, "stale response: node %u (%s, term %llu) acts on a %s of term %llu from node %u", n->id,
		        raft_role_name(before->role), (unsigned long long)before->term, raft_msg_type_name(m->type),
		        (unsigned long long)m->term, m->from);
}

/* ------------------------------------------------------------ the loop */

static void deliver(struct sim *s, struct net_msg *x)
{
	if (x->kind == K_RESP) {
		client_on_resp(s, &x->resp);
		msg_free(s, x);
		return;
	}
	struct node *n = &s->nodes[x->to];
	if (!n->up || (x->kind == K_RAFT && s->cut[x->from][x->to])) {
		msg_free(s, x);
		return;
	}
	if (!idle(s, n)) { /* writing or paused: the message waits in its socket */
		uint64_t due = n->stalled ? n->done_at : 0;
		if (frozen(s, n) && n->frozen_until > due) /* waking up, it reads its sockets in any order */
			due = n->frozen_until + (has(s, RAFT_SIM_REORDER) ? below(s, 4) : 0);
		x->due = due > s->now ? due : s->now + 1;
		heap_push(s, x);
		return;
	}
	if (x->kind == K_RAFT) {
		struct raft_status before;
		raft_status(n->r, &before);
		raft_step(n->r, &x->m);
		check_step(s, n, &x->m, &before);
		observe(s, n);
	} else {
		host_request(s, n, &x->req);
	}
	msg_free(s, x);
}

void raft_sim_config_default(struct raft_sim_config *cfg)
{
	*cfg = (struct raft_sim_config){
		.nodes = 3, .spares = 2, .ticks = 1000, .clients = 3, .keys = 3, .faults = RAFT_SIM_ALL,
		.snapshot_every = 32, .client_timeout_ms = 500, .pre_vote = true,
	};
}

static void sim_free(struct sim *s)
{
	for (uint32_t i = 1; i <= s->n_ids; i++) {
		struct node *n = &s->nodes[i];
		raft_free(n->r);
		pwrite_drop_all(n);
		disk_log_truncate(n, 0);
		free(n->log);
		free(n->snap_data);
	}
	for (size_t i = 0; i < s->heap_n; i++)
		msg_free(s, s->heap[i]);
	free(s->heap);
	for (int c = 0; c < 2; c++) {
		while (s->pool[c]) {
			struct net_msg *x = s->pool[c];
			s->pool[c] = x->next_free;
			free(x);
		}
	}
	free(s->term_leader);
	free(s->vote_of);
	free(s->confs);
	free(s->applied);
	free(s->lm);
	lin_history_free(s->hist);
	raft_ledger_free(s->ledger);
}

int raft_sim_run(const struct raft_sim_config *cfg, struct raft_sim_result *res)
{
	if (cfg->nodes < 1 || cfg->nodes > 7 || cfg->nodes + cfg->spares > MAX_NODES || cfg->clients < 1 ||
	    cfg->clients >= MAX_CLIENTS || cfg->keys < 1 || cfg->keys > MAX_KEYS || cfg->snapshot_every < 1 ||
	    cfg->client_timeout_ms < 1)
		return -EINVAL;
	struct sim *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	memset(res, 0, sizeof *res);
	res->linearizable = "skipped";
	s->cfg = *cfg;
	s->res = res;
	s->n_ids = cfg->nodes + cfg->spares;
	uint64_t x = cfg->seed;
	for (int i = 0; i < 4; i++)
		s->rng[i] = splitmix64(&x);
	s->rng_late = cfg->seed ^ 0x6a09e667f3bcc909ull;
	s->hist = lin_history_new();
	s->ledger = raft_ledger_new();
	if (!s->hist || !s->ledger) {
		lin_history_free(s->hist);
		raft_ledger_free(s->ledger);
		free(s);
		return -ENOMEM;
	}
	current = s;
	/* small batches and windows leave long stretches where a new leader
	 * is still shipping older terms' entries: the Figure 8 window */
	s->max_msg_entries = chance(s, 1, 3) ? 1 + (uint32_t)below(s, 3) : 4 + (uint32_t)below(s, 60);
	s->max_inflight = 1 + (uint32_t)below(s, 8);
	uint64_t voters = 0;
	for (uint32_t i = 1; i <= cfg->nodes; i++)
		voters |= 1ull << i;
	s->boot_conf.voters = voters;
	for (uint32_t i = 1; i <= s->n_ids; i++) {
		struct node *n = &s->nodes[i];
		n->id = i;
		if (i <= cfg->nodes) /* bootstrap: a snapshot at index 0 naming the first voters */
			n->snap_meta.conf.voters = voters;
		node_start(s, n);
	}
	for (uint32_t c = 1; c <= cfg->clients; c++)
		s->clients[c] = (struct client){.id = c, .target = random_node(s), .next_at = 200 + below(s, 50)};

	uint64_t end = cfg->ticks * TICK_MS;
	for (s->now = 0; s->now < end && !s->stop; s->now++) {
		faults_step(s);
		while (s->heap_n && s->heap[0]->due <= s->now && !s->stop)
			deliver(s, heap_pop(s));
		for (uint32_t i = 1; i <= s->n_ids && !s->stop; i++) {
			struct node *n = &s->nodes[i];
			if (n->up && !frozen(s, n))
				pwrite_flush(s, n, false);
			if (n->up && n->stalled && n->done_at <= s->now && !frozen(s, n) && !s->stop)
				node_complete(s, n);
		}
		for (uint32_t i = 1; i <= s->n_ids; i++) {
			struct node *n = &s->nodes[i];
			if (!n->up || (s->now + i * 3) % TICK_MS || frozen(s, n))
				continue; /* a paused process misses its ticks */
			if (n->stalled)
				n->pending_ticks++;
			else
				raft_tick(n->r);
		}
		for (uint32_t c = 1; c <= cfg->clients; c++)
			client_step(s, &s->clients[c]);
		for (uint32_t i = 1; i <= s->n_ids && !s->stop; i++) {
			struct node *n = &s->nodes[i];
			if (idle(s, n))
				node_ready(s, n);
		}
		if (!s->stop)
			checks_step(s);
	}
	res->steps = s->now;
	res->entries_committed = s->applied_max;
	for (uint32_t c = 1; c <= cfg->clients; c++)
		if (s->clients[c].busy)
			client_finish(s, &s->clients[c], false, 0, 0);
	if (!res->violations) {
		struct lin_result lr;
		int v = lin_check(s->hist, cfg->lin_budget, &lr);
		/* "unknown" could hide a violation: before giving up, search
		 * again with sixteen times the default budget */
		if (v == LIN_UNKNOWN && cfg->lin_budget == 0)
			v = lin_check(s->hist, 16 * LIN_BUDGET_DEFAULT, &lr);
		if (v == LIN_UNKNOWN)
			res->lin_keys_unknown = lr.keys_unknown;
		res->linearizable = v < 0 ? "unknown" : lin_verdict_name(v);
		if (v == LIN_VIOLATION) {
			s->now = lr.time;
			violate(s, "linearizability: %s", lr.desc);
		}
	}
	current = NULL;
	sim_free(s);
	free(s);
	return 0;
}

/* ------------------------------------------------------------ names */

static const char *const fault_names[] = {"drop", "dup", "reorder", "delay", "partition", "crash", "disk",
                                          "membership", "transfer", "pause"};

int raft_sim_faults_parse(const char *str, uint32_t *out)
{
	uint32_t f = 0;
	const char *p = str;
	while (*p) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		bool found = false;
		if (n == 3 && strncmp(p, "all", 3) == 0) {
			f = RAFT_SIM_ALL;
			found = true;
		} else if (n == 4 && strncmp(p, "none", 4) == 0) {
			found = true;
		}
		for (size_t i = 0; i < sizeof fault_names / sizeof *fault_names && !found; i++) {
			if (strlen(fault_names[i]) == n && strncmp(p, fault_names[i], n) == 0) {
				f |= 1u << i;
				found = true;
			}
		}
		if (!found)
			return -EINVAL;
		p += n;
		if (*p == ',')
			p++;
	}
	*out = f;
	return 0;
}

void raft_sim_faults_format(uint32_t faults, char *buf, size_t len)
{
	size_t off = 0;
	buf[0] = 0;
	for (size_t i = 0; i < sizeof fault_names / sizeof *fault_names; i++) {
		if (!(faults & (1u << i)))
			continue;
		int w = snprintf(buf + off, len - off, "%s%s", off ? "," : "", fault_names[i]);
		if (w < 0 || (size_t)w >= len - off)
			break;
		off += (size_t)w;
	}
}

static const char *const scenario_names[] = {"none", "figure8", "leader-partition", "snapshot-behind",
                                             "remove-leader", "crash-before-send"};

int raft_sim_scenario_parse(const char *str, enum raft_sim_scenario *out)
{
	for (size_t i = 0; i < sizeof scenario_names / sizeof *scenario_names; i++) {
		if (strcmp(str, scenario_names[i]) == 0) {
			*out = (enum raft_sim_scenario)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *raft_sim_scenario_name(enum raft_sim_scenario s)
{
	return (size_t)s < sizeof scenario_names / sizeof *scenario_names ? scenario_names[s] : "?";
}
