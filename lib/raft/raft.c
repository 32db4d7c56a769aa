/*
 * raft/raft.c -- the Raft consensus algorithm as a pure state machine.
 *
 * Read this next to Figure 2 of the Raft paper (Ongaro & Ousterhout, "In
 * Search of an Understandable Consensus Algorithm") and etcd's raft.go:
 * the functions are named for the rules they implement.
 *
 *   Figure 2 "All servers"      raft_step(): a message with a higher term
 *                               makes us a follower of that term; a lower
 *                               term is stale and answered or dropped.
 *   Figure 2 "Followers"        tick_election(): campaign after a
 *                               randomized timeout without a leader.
 *   Figure 2 "Candidates"       campaign(), step_candidate().
 *   Figure 2 "Leaders"          become_leader() appends a no-op of its term,
 *                               send_append(), handle_app_resp(),
 *                               maybe_commit() (the N with a majority of
 *                               matchIndex[i] >= N and log[N].term ==
 *                               currentTerm).
 *   RequestVote receiver        handle_vote().
 *   AppendEntries receiver      handle_append().
 *
 * Beyond Figure 2, as etcd does it:
 *   - pre-vote (dissertation 9.6): a candidate first asks "would you vote
 *     for me at term+1?" without changing anyone's term, so a node that was
 *     cut off cannot depose a healthy leader when it comes back;
 *   - check-quorum: a leader that has not heard from a majority within an
 *     election timeout steps down, and a follower that has heard from a
 *     leader within the election timeout ignores vote requests (leader
 *     stickiness; this is also what makes lease reads sound);
 *   - flow control: each follower has a Progress in state probe (one
 *     append in flight until it answers), replicate (pipelined appends up
 *     to max_inflight_msgs / max_inflight_bytes) or snapshot (waiting for
 *     an InstallSnapshot to land);
 *   - fast backtracking: a rejecting follower names the largest index
 *     whose term is <= the leader's prevLogTerm; terms are non-decreasing
 *     along a log, so both sides find it by binary search, and a conflict
 *     costs one round trip per term instead of one per entry;
 *   - ReadIndex (dissertation 6.4): a read is confirmed once a majority
 *     acknowledged a heartbeat sent after the read arrived, and is served at
 *     the commit index of that moment; lease reads skip the round trip
 *     while the leader's lease holds (see LEASE below).
 *
 * Membership: one change at a time (dissertation 4.1), each entry carrying
 * the whole new configuration, in effect as soon as it is in a log
 * (appended, not committed).  Why this is safe: a configuration C and
 * C +/- one voter have overlapping majorities, so two leaders of one term
 * cannot be elected by C and by the next configuration.  That argument
 * needs (a) no second change until the first is committed (conf_index <=
 * commit), and (b) -- the bug Ongaro found in 2015 -- a new leader must
 * commit an entry of its own term before proposing a change, otherwise a
 * change from an older, uncommitted branch can be combined with a new one
 * into two configurations that do not overlap.  Our leader's no-op gives
 * (b) and raft_propose_conf() refuses with -EAGAIN until then.  Learners
 * receive the log but never vote nor count.  A leader that removes itself
 * keeps leading, without counting itself, until the change commits, then
 * steps down (dissertation 4.2.2).  Truncating a log past a configuration
 * entry brings back the previous configuration.
 *
 * LEASE (lease_read, needs check_quorum): a follower that acknowledged a
 * heartbeat ignores vote requests for election_tick of its ticks.  So if a
 * majority acknowledged a heartbeat that the leader sent at its tick t, no
 * other leader can exist before those followers' election_tick has passed,
 * i.e. before leader tick t + election_tick as long as clocks run at the
 * same rate.  The clock assumption: no follower's tick runs faster than
 * the leader's by more than lease_drift_ticks over an election timeout,
 * which we subtract.  A node that restarts keeps to the same rule for its
 * first election_tick ticks, since its memory of the leader died with it.
 * A leader transfer deliberately breaks stickiness
 * (TimeoutNow forces the vote), so a leader that started a transfer serves
 * no lease reads for the rest of its term.
 *
 * Persistence: the Ready contract in raft.h.  A follower's messages leave
 * only after its Ready is durable, so it may acknowledge entries in the
 * same Ready that persists them.  A leader's own copy counts toward a
 * commit only once durable (durable below, its Match): with a synchronous
 * host that is at raft_advance, with an asynchronous one (rd.async, thesis
 * 10.2.1, etcd's asynchronous storage writes) at raft_persisted, so the
 * leader may replicate and take input while its own write is on the disk
 * and still never commits an entry that a majority has not persisted.
 *
 * Memory: the log is an array of struct raft_entry (slid forward on
 * compaction, doubled when full) whose payloads live in a chunked arena of
 * 2 MiB blocks released front to back as the log is compacted.  A full
 * block is 2 MiB-aligned and asks for a transparent huge page (madvise,
 * "madvise" being the usual THP setting), and is mapped in at once
 * (MADV_POPULATE_WRITE) if none is to be had: a log that grows by
 * thousands of entries a second otherwise takes a page fault per 4 KiB of
 * payload, and in a VM a fault costs over 10 us, more than the rest of
 * appending an entry (`etcdctl check perf`: a sixth of a follower's CPU).  Outgoing
 * messages are a fixed array sized at start-up; an AppendEntries is queued
 * as an index range and resolved into pointers into the log only when the
 * Ready is built, so no message owns memory and nothing is allocated per
 * message.  Steady-state replication allocates nothing but new arena
 * blocks.  The latest snapshot is kept as one copy, to send to followers,
 * unless the host keeps it itself (raft_compact with len 0).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "base/buf.h"
#include "base/bytes.h"
#include "base/invariant.h"
#include "raft/raft.h"

enum { PR_PROBE, PR_REPLICATE, PR_SNAPSHOT };
enum { CAMPAIGN_PRE, CAMPAIGN_ELECTION };

#define ARENA_BLOCK ((size_t)2 << 20) /* a steady-state block, header and all: one huge page */
#define ARENA_CHUNK (ARENA_BLOCK - sizeof(struct chunk)) /* its payload bytes */
#define ARENA_CHUNK_MIN (1u << 14) /* the first block; they double up to ARENA_CHUNK */
#define ARENA_SPARES 8
#define SEQ_RING 64 /* read sequence -> tick it was sent at, for the lease */

struct chunk {
	struct chunk *next;
	uint64_t max_index; /* largest log index with data here: freed once compacted */
	size_t used, cap;
	uint8_t data[];
};

/* The leader's view of one follower (etcd's Progress). */
struct progress {
	uint64_t match;            /* highest index known to be replicated there */
	uint64_t next;             /* next index to send; always > match */
	uint8_t state;             /* PR_* */
	bool probe_sent;           /* probe: an append is out, wait for its answer */
	bool recent_active;        /* heard from since the last check-quorum */
	uint64_t pending_snapshot; /* snapshot: index of the snapshot sent */
	uint32_t snap_ticks;       /* snapshot: ticks waited; give up after election_tick */
	uint64_t read_acked;       /* highest heartbeat sequence acknowledged this term */
	uint32_t in_head, in_count;/* in-flight appends: ring of last indexes and sizes */
	uint64_t in_bytes;
	uint64_t *in_index;
	uint32_t *in_size;
};

struct pending_read {
	uint64_t ctx, index, seq;
	uint32_t from; /* who asked: ourselves, or a follower to answer */
};

struct raft {
	struct raft_config cfg;
	uint32_t id;

	/* persistent state (Figure 2) */
	uint64_t term, vote, commit;

	/* the log: ents[ents_head .. ents_head + ents_len) hold indexes
	 * snap.meta.index + 1 .. last */
	struct raft_entry *ents;
	size_t ents_head, ents_len, ents_cap;
	struct chunk *chunk_head, *chunk_tail, *chunk_spare;
	uint32_t n_spare;
	size_t chunk_grow;         /* size of the next new block */
	struct raft_snapshot snap;
	uint8_t *snap_buf;
	size_t snap_cap;
	bool snap_unpersisted;     /* restored from the leader, not yet in a Ready */
	uint64_t stable;           /* last index handed out to be persisted */
	uint64_t durable;          /* last index known to be on the disk (<= stable) */
	uint64_t applied;          /* last index handed out to be applied */

	/* volatile state */
	uint8_t role;
	uint32_t lead;
	uint32_t election_elapsed, heartbeat_elapsed, randomized_timeout;
	uint64_t ticks;
	uint64_t votes_granted, votes_rejected; /* bit sets */
	struct raft_conf conf;
	uint64_t conf_index;
	struct progress prs[RAFT_MAX_ID + 1];
	uint32_t transferee;
	uint64_t lease_revoked_term;
	uint64_t uncommitted_bytes;
	bool bcast_pending, hb_pending;

	/* read barriers */
	uint64_t read_seq;
	uint64_t seq_tick[SEQ_RING];
	uint64_t lease_until;      /* leader tick before which the lease holds */
	struct pending_read *rq;
	uint32_t rq_head, rq_len;
	struct raft_read_state *read_states;
	uint32_t n_read_states;

	/* output */
	struct raft_msg *msgs;
	uint32_t n_msgs;
	struct raft_hard_state prev_hs;
	bool in_ready;
	uint64_t msgs_dropped;
	uint64_t rng;
};

static void campaign(struct raft *r, int kind, bool force);
static bool send_append(struct raft *r, uint32_t to, bool send_if_empty);

/* ------------------------------------------------------------ helpers */

static inline uint64_t bit(uint32_t id) { return 1ull << id; }
static inline int popcount(uint64_t x) { return __builtin_popcountll(x); }
static inline uint64_t members(const struct raft *r) { return r->conf.voters | r->conf.learners; }
static inline bool promotable(const struct raft *r) { return (r->conf.voters & bit(r->id)) != 0; }

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static bool quorum_has(uint64_t voters, uint64_t set)
{
	return popcount(set & voters) >= popcount(voters) / 2 + 1;
}

/* The largest v such that a majority of voters have a value >= v: the
 * commit rule's N, or the read sequence a majority has acknowledged. */
static uint64_t quorum_value(const struct raft *r, bool reads)
{
	uint64_t v[RAFT_MAX_ID + 1];
	int n = 0;
	for (uint64_t s = r->conf.voters; s; s &= s - 1) {
		uint32_t id = (uint32_t)__builtin_ctzll(s);
		uint64_t x;
		if (reads)
			x = id == r->id ? r->read_seq : r->prs[id].read_acked;
		else
			x = r->prs[id].match;
		int j = n++;
		while (j > 0 && v[j - 1] < x) { /* insertion sort, descending */
			v[j] = v[j - 1];
			j--;
		}
		v[j] = x;
	}
	if (n == 0)
		return 0;
	return v[n / 2]; /* the (n/2+1)-th largest */
}

/* ------------------------------------------------------------ the log */

static inline uint64_t first_index(const struct raft *r) { return r->snap.meta.index + 1; }
static inline uint64_t last_index(const struct raft *r) { return r->snap.meta.index + r->ents_len; }

static inline struct raft_entry *ent(const struct raft *r, uint64_t i)
{
	return &r->ents[r->ents_head + (i - first_index(r))];
}

static bool log_term(const struct raft *r, uint64_t i, uint64_t *t)
{
	if (i == r->snap.meta.index) {
		*t = r->snap.meta.term;
		return true;
	}
	if (i < first_index(r) || i > last_index(r))
		return false;
	*t = ent(r, i)->term;
	return true;
}

static uint64_t last_term(const struct raft *r)
{
	uint64_t t = 0;
	log_term(r, last_index(r), &t);
	return t;
}

/* Figure 2, RequestVote receiver 2: "candidate's log is at least as
 * up-to-date as receiver's log" (5.4.1). */
static bool log_up_to_date(const struct raft *r, uint64_t index, uint64_t term)
{
	uint64_t lt = last_term(r);
	return term > lt || (term == lt && index >= last_index(r));
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

/* A new block of cap payload bytes; a steady-state one is a whole huge
 * page, mapped in before use (see "Memory" above).  Both madvise calls are
 * hints: on an older kernel, or with THP off, the block is plain memory. */
static struct chunk *chunk_new(size_t cap)
{
	struct chunk *c;
	if (cap == ARENA_CHUNK) {
		c = aligned_alloc(ARENA_BLOCK, ARENA_BLOCK);
		if (c) {
			(void)madvise(c, ARENA_BLOCK, MADV_HUGEPAGE);
			(void)madvise(c, ARENA_BLOCK, MADV_POPULATE_WRITE);
		}
	} else {
		c = malloc(sizeof *c + cap);
	}
	if (c)
		c->cap = cap;
	return c;
}

static uint8_t *arena_alloc(struct raft *r, size_t len, uint64_t index)
{
	struct chunk *c = r->chunk_tail;
	if (len == 0)
		return NULL;
	if (!c || c->cap - c->used < len) {
		/* small logs (a test, a quiet node) stay small; busy ones
		 * reach ARENA_CHUNK after a few blocks */
		size_t want = r->chunk_grow ? r->chunk_grow : ARENA_CHUNK_MIN;
		r->chunk_grow = want * 2 > ARENA_CHUNK ? ARENA_CHUNK : want * 2;
		size_t cap = len > want ? len : want;
		if (r->chunk_spare && r->chunk_spare->cap >= cap) {
			c = r->chunk_spare;
			r->chunk_spare = c->next;
			r->n_spare--;
		} else {
			c = chunk_new(cap);
			if (!c)
				return NULL;
		}
		c->next = NULL;
		c->used = 0;
		c->max_index = 0;
		if (r->chunk_tail)
			r->chunk_tail->next = c;
		else
			r->chunk_head = c;
		r->chunk_tail = c;
	}
	uint8_t *p = c->data + c->used;
	c->used += len;
	if (index > c->max_index)
		c->max_index = index;
	return p;
}

/* Keep up to ARENA_SPARES freed blocks for reuse: compaction frees blocks
 * in bursts and the log refills them at once, and a recycled block is
 * already mapped (a fresh 1 MiB malloc is an mmap and a page fault per
 * 4 KiB). */
static void chunk_retire(struct raft *r, struct chunk *c)
{
	if (r->n_spare < ARENA_SPARES && c->cap == ARENA_CHUNK) {
		c->next = r->chunk_spare;
		r->chunk_spare = c;
		r->n_spare++;
	} else {
		free(c);
	}
}

/* Forget the payloads of entries >= index (whose first payload is p). */
static void arena_truncate(struct raft *r, const uint8_t *p, uint64_t index)
{
	struct chunk *c = r->chunk_head;
	while (c && !(p >= c->data && p < c->data + c->used))
		c = c->next;
	INVARIANT_MSG(c != NULL, "a log payload lives in the arena");
	c->used = (size_t)(p - c->data);
	if (c->max_index >= index)
		c->max_index = index - 1;
	struct chunk *rest = c->next;
	c->next = NULL;
	r->chunk_tail = c;
	while (rest) {
		struct chunk *n = rest->next;
		chunk_retire(r, rest);
		rest = n;
	}
}

/* Free the blocks whose payloads all belong to entries <= upto. */
static void arena_release(struct raft *r, uint64_t upto)
{
	while (r->chunk_head && r->chunk_head->max_index <= upto) {
		struct chunk *c = r->chunk_head;
		if (c == r->chunk_tail) {
			c->used = 0; /* keep the last block for new entries */
			c->max_index = 0;
			break;
		}
		r->chunk_head = c->next;
		chunk_retire(r, c);
	}
}

static int ents_reserve(struct raft *r)
{
	if (r->ents_head + r->ents_len < r->ents_cap)
		return 0;
	if (r->ents_head >= r->ents_cap / 2 && r->ents_head > 0) {
		memmove(r->ents, r->ents + r->ents_head, r->ents_len * sizeof *r->ents);
		r->ents_head = 0;
		return 0;
	}
	size_t cap = r->ents_cap ? r->ents_cap * 2 : 1024;
	struct raft_entry *n = realloc(r->ents, cap * sizeof *n);
	if (!n)
		return -ENOMEM;
	r->ents = n;
	r->ents_cap = cap;
	return 0;
}

/* Append one entry at last_index + 1, copying its payload. */
static int log_append(struct raft *r, uint64_t term, uint8_t type, const void *data, uint32_t len)
{
	uint64_t index = last_index(r) + 1;
	INVARIANT_MSG(term >= last_term(r), "terms never decrease along a log");
	if (ents_reserve(r) < 0)
		return -ENOMEM;
	uint8_t *p = arena_alloc(r, len, index);
	if (len && !p)
		return -ENOMEM;
	if (len)
		memcpy(p, data, len);
	r->ents[r->ents_head + r->ents_len++] = (struct raft_entry){
		.term = term, .index = index, .data = p, .len = len, .type = type,
	};
	return 0;
}

static void set_conf(struct raft *r, const struct raft_conf *c, uint64_t index);

/* The configuration in force at index: the last CONF entry at or before
 * it, else the snapshot's. */
static void conf_at(const struct raft *r, uint64_t index, struct raft_conf *c, uint64_t *at)
{
	if (index > last_index(r))
		index = last_index(r);
	if (r->conf_index <= index) { /* the newest configuration is old enough */
		*c = r->conf;
		*at = r->conf_index;
		return;
	}
	for (uint64_t i = index; i >= first_index(r) && i > r->snap.meta.index; i--) {
		const struct raft_entry *e = ent(r, i);
		if (e->type == RAFT_ENTRY_CONF && raft_conf_decode(e->data, e->len, c) == 0) {
			*at = i;
			return;
		}
	}
	*c = r->snap.meta.conf;
	*at = r->snap.meta.index;
}

/* Drop queued messages that describe entries >= index, which are being
 * replaced: AppendEntries that would carry them, and acknowledgements
 * that claim them.  The Ready contract sends an acknowledgement only after
 * its Ready is durable, but that Ready persists the log as it is at the
 * end of the batch: an append from a newer leader that truncates the
 * acknowledged entries in the same batch leaves the ack promising entries
 * no disk will hold, and the older leader (still in its term) would count
 * it toward a commit (Raft thesis 3.8: a server must not acknowledge what
 * it has not persisted; etcd raft answers from the log as persisted). */
static void msgs_invalidate(struct raft *r, uint64_t index)
{
	uint32_t k = 0;
	for (uint32_t i = 0; i < r->n_msgs; i++) {
		const struct raft_msg *m = &r->msgs[i];
		if (m->type == RAFT_MSG_APP && m->index + m->n_entries >= index)
			continue;
		if (m->type == RAFT_MSG_APP_RESP && !m->reject && m->index >= index)
			continue;
		r->msgs[k++] = *m;
	}
	r->n_msgs = k;
}

/* Delete entries >= index (a conflict with the leader's log). */
static void log_truncate(struct raft *r, uint64_t index)
{
	INVARIANT_MSG(index > r->commit, "a committed entry is never overwritten");
	INVARIANT(index >= first_index(r) && index <= last_index(r));
	for (uint64_t i = index; i <= last_index(r); i++) {
		if (ent(r, i)->len) {
			arena_truncate(r, ent(r, i)->data, index);
			break;
		}
	}
	r->ents_len = index - first_index(r);
	if (r->stable >= index)
		r->stable = index - 1;
	if (r->durable >= index)
		r->durable = index - 1;
	if (r->conf_index >= index) {
		struct raft_conf c;
		uint64_t at;
		conf_at(r, index - 1, &c, &at);
		set_conf(r, &c, at);
	}
	msgs_invalidate(r, index);
}

/* The largest i <= index whose term is <= term (terms are non-decreasing
 * along a log, so a binary search finds it).  Below the snapshot every
 * entry is committed and matches any leader's, so we never go under it. */
static uint64_t find_conflict_by_term(const struct raft *r, uint64_t index, uint64_t term)
{
	uint64_t lo = r->snap.meta.index, hi = index;
	if (hi > last_index(r))
		hi = last_index(r);
	if (hi <= lo)
		return hi;
	if (ent(r, hi)->term <= term)
		return hi;
	while (hi - lo > 1) { /* term(lo) <= term (or lo is the snapshot), term(hi) > term */
		uint64_t mid = lo + (hi - lo) / 2;
		if (ent(r, mid)->term <= term)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

/* ------------------------------------------------------------ output */

static void send(struct raft *r, struct raft_msg m)
{
	INVARIANT(m.to != 0 && m.to != r->id);
	if (r->n_msgs == r->cfg.max_msgs) { /* dropping is always safe: the network may too */
		r->msgs_dropped++;
		return;
	}
	m.from = r->id;
	if (m.term == 0)
		m.term = r->term;
	r->msgs[r->n_msgs++] = m;
}

static void read_done(struct raft *r, uint64_t ctx, uint64_t index, uint32_t from)
{
	if (from == r->id) {
		if (r->n_read_states < r->cfg.max_pending_reads)
			r->read_states[r->n_read_states++] = (struct raft_read_state){ctx, index};
	} else {
		send(r, (struct raft_msg){.type = RAFT_MSG_READ_INDEX_RESP, .to = from, .ctx = ctx, .index = index});
	}
}

static void commit_to(struct raft *r, uint64_t c)
{
	if (c <= r->commit)
		return;
	INVARIANT_MSG(c <= last_index(r), "commit only what the log holds");
	if (r->role == RAFT_LEADER) {
		for (uint64_t i = r->commit + 1; i <= c; i++) {
			uint32_t len = ent(r, i)->len;
			r->uncommitted_bytes = r->uncommitted_bytes > len ? r->uncommitted_bytes - len : 0;
		}
	}
	r->commit = c;
}

/* ------------------------------------------------------------ progress */

static void pr_reset_inflight(struct progress *pr)
{
	pr->in_head = pr->in_count = 0;
	pr->in_bytes = 0;
}

static void pr_become_probe(struct progress *pr)
{
	if (pr->state == PR_SNAPSHOT) {
		uint64_t n = pr->pending_snapshot + 1;
		pr->next = pr->match + 1 > n ? pr->match + 1 : n;
	} else {
		pr->next = pr->match + 1;
	}
	pr->state = PR_PROBE;
	pr->probe_sent = false;
	pr->pending_snapshot = 0;
	pr_reset_inflight(pr);
}

static void pr_become_replicate(struct progress *pr)
{
	pr->state = PR_REPLICATE;
	pr->next = pr->match + 1;
	pr->probe_sent = false;
	pr_reset_inflight(pr);
}

static bool pr_paused(const struct raft *r, const struct progress *pr)
{
	switch (pr->state) {
	case PR_PROBE: return pr->probe_sent;
	case PR_REPLICATE:
		return pr->in_count >= r->cfg.max_inflight_msgs || pr->in_bytes >= r->cfg.max_inflight_bytes;
	default: return true;
	}
}

static void pr_inflight_add(const struct raft *r, struct progress *pr, uint64_t last, uint32_t bytes)
{
	INVARIANT(pr->in_count < r->cfg.max_inflight_msgs);
	uint32_t slot = (pr->in_head + pr->in_count) % r->cfg.max_inflight_msgs;
	pr->in_index[slot] = last;
	pr->in_size[slot] = bytes;
	pr->in_count++;
	pr->in_bytes += bytes;
}

/* Appends up to index have been acknowledged: free their window slots. */
static void pr_inflight_free_to(const struct raft *r, struct progress *pr, uint64_t index)
{
	while (pr->in_count && pr->in_index[pr->in_head] <= index) {
		pr->in_bytes -= pr->in_size[pr->in_head];
		pr->in_head = (pr->in_head + 1) % r->cfg.max_inflight_msgs;
		pr->in_count--;
	}
}

static void pr_init(struct raft *r, uint32_t id)
{
	struct progress *pr = &r->prs[id];
	pr->match = id == r->id ? r->durable : 0; /* our own copy: what is on our disk */
	pr->next = last_index(r) + 1;
	pr->state = PR_PROBE;
	pr->probe_sent = false;
	pr->recent_active = true; /* a new member gets a full timeout before check-quorum counts it out */
	pr->pending_snapshot = 0;
	pr->snap_ticks = 0;
	pr->read_acked = 0;
	pr_reset_inflight(pr);
}

static void set_conf(struct raft *r, const struct raft_conf *c, uint64_t index)
{
	uint64_t before = members(r);
	INVARIANT_MSG(!(c->voters & c->learners), "a node is a voter or a learner, not both");
	r->conf = *c;
	r->conf_index = index;
	if (r->role != RAFT_LEADER)
		return;
	for (uint64_t s = members(r) & ~before; s; s &= s - 1)
		pr_init(r, (uint32_t)__builtin_ctzll(s));
	if (r->transferee && !(r->conf.voters & bit(r->transferee)))
		r->transferee = 0;
}

/* ------------------------------------------------------------ roles */

static void reset(struct raft *r, uint64_t term)
{
	INVARIANT_MSG(term >= r->term, "a term never decreases");
	if (term > r->term) {
		r->term = term;
		r->vote = 0;
	}
	r->lead = 0;
	r->election_elapsed = 0;
	r->heartbeat_elapsed = 0;
	r->randomized_timeout = r->cfg.election_tick + (uint32_t)(splitmix64(&r->rng) % r->cfg.election_tick);
	r->votes_granted = r->votes_rejected = 0;
	r->transferee = 0;
	r->uncommitted_bytes = 0;
	r->bcast_pending = r->hb_pending = false;
	r->rq_head = r->rq_len = 0; /* unconfirmed reads die with the role; clients retry */
	r->lease_until = 0;
}

static void become_follower(struct raft *r, uint64_t term, uint32_t lead)
{
	reset(r, term);
	r->role = RAFT_FOLLOWER;
	r->lead = lead;
}

static void become_pre_candidate(struct raft *r)
{
	INVARIANT(r->role != RAFT_LEADER);
	/* neither term nor vote changes: a pre-vote is only a question */
	r->role = RAFT_PRE_CANDIDATE;
	r->lead = 0;
	r->votes_granted = r->votes_rejected = 0;
}

static void become_candidate(struct raft *r)
{
	INVARIANT(r->role != RAFT_LEADER);
	reset(r, r->term + 1);
	r->role = RAFT_CANDIDATE;
	r->vote = r->id; /* Figure 2, Candidates: increment currentTerm, vote for self */
}

static void become_leader(struct raft *r)
{
	INVARIANT(r->role == RAFT_CANDIDATE);
	INVARIANT(r->vote == r->id);
	reset(r, r->term);
	r->role = RAFT_LEADER;
	r->lead = r->id;
	for (uint64_t s = members(r); s; s &= s - 1)
		pr_init(r, (uint32_t)__builtin_ctzll(s));
	/* The no-op of our term: committing it commits every earlier entry
	 * (5.4.2), and it lets ReadIndex and membership changes start.  (The
	 * planted bug leaves it out, as the paper's Figure 8 does, because
	 * the no-op usually travels with the older entries and hides the
	 * missing term check.) */
#ifndef RAFT_PLANTED_BUG
	log_append(r, r->term, RAFT_ENTRY_NORMAL, NULL, 0);
#endif
	/* our own copy counts once durable (raft_advance, raft_persisted) */
	r->prs[r->id].match = r->durable;
	r->prs[r->id].next = last_index(r) + 1;
	r->bcast_pending = true;
}

static void campaign(struct raft *r, int kind, bool force)
{
	uint8_t type;
	uint64_t term;
	if (!promotable(r))
		return;
	if (kind == CAMPAIGN_PRE) {
		become_pre_candidate(r);
		type = RAFT_MSG_PREVOTE;
		term = r->term + 1;
	} else {
		become_candidate(r);
		type = RAFT_MSG_VOTE;
		term = r->term;
	}
	INVARIANT(kind == CAMPAIGN_PRE || r->vote == r->id);
	r->votes_granted = bit(r->id);
	if (quorum_has(r->conf.voters, r->votes_granted)) { /* a cluster of one */
		if (kind == CAMPAIGN_PRE)
			campaign(r, CAMPAIGN_ELECTION, force);
		else
			become_leader(r);
		return;
	}
	for (uint64_t s = r->conf.voters & ~bit(r->id); s; s &= s - 1) {
		send(r, (struct raft_msg){
			.type = type, .to = (uint32_t)__builtin_ctzll(s), .term = term,
			.index = last_index(r), .log_term = last_term(r), .force = force,
		});
	}
}

/* ------------------------------------------------------------ leader */

static void send_snapshot(struct raft *r, uint32_t to)
{
	struct progress *pr = &r->prs[to];
	pr->state = PR_SNAPSHOT;
	pr->pending_snapshot = r->snap.meta.index;
	pr->snap_ticks = 0;
	pr_reset_inflight(pr);
	/* snapshot pointer and meta are filled in when the Ready is built */
	send(r, (struct raft_msg){.type = RAFT_MSG_SNAP, .to = to});
}

/* Figure 2, Leaders: "If last log index >= nextIndex for a follower: send
 * AppendEntries RPC with log entries starting at nextIndex", within the
 * flow-control window.  Returns whether a message went out. */
static bool send_append(struct raft *r, uint32_t to, bool send_if_empty)
{
	struct progress *pr = &r->prs[to];
	uint64_t prev_term;
	if (pr_paused(r, pr))
		return false;
	INVARIANT(pr->next > pr->match && pr->next <= last_index(r) + 1);
	if (!log_term(r, pr->next - 1, &prev_term)) { /* compacted: only a snapshot helps */
		if (!pr->recent_active)
			return false;
		send_snapshot(r, to);
		return true;
	}
	uint32_t n = 0;
	uint64_t bytes = 0;
	for (uint64_t i = pr->next; i <= last_index(r) && n < r->cfg.max_msg_entries; i++) {
		uint32_t len = ent(r, i)->len;
		if (n > 0 && bytes + len > r->cfg.max_msg_bytes)
			break;
		bytes += len;
		n++;
	}
	if (n == 0 && !send_if_empty)
		return false;
	send(r, (struct raft_msg){
		.type = RAFT_MSG_APP, .to = to, .index = pr->next - 1, .log_term = prev_term,
		.commit = r->commit, .n_entries = n, /* entries resolved in raft_ready */
	});
	if (n > 0) {
		if (pr->state == PR_REPLICATE) { /* pipeline: assume it lands */
			pr->next += n;
			pr_inflight_add(r, pr, pr->next - 1, (uint32_t)bytes);
		} else {
			pr->probe_sent = true;
		}
	}
	return true;
}

static void bcast_append(struct raft *r)
{
	for (uint64_t s = members(r) & ~bit(r->id); s; s &= s - 1)
		send_append(r, (uint32_t)__builtin_ctzll(s), true);
}

static void bcast_heartbeat(struct raft *r)
{
	r->read_seq++;
	r->seq_tick[r->read_seq % SEQ_RING] = r->ticks;
	for (uint64_t s = members(r) & ~bit(r->id); s; s &= s - 1) {
		uint32_t id = (uint32_t)__builtin_ctzll(s);
		uint64_t c = r->prs[id].match < r->commit ? r->prs[id].match : r->commit;
		send(r, (struct raft_msg){.type = RAFT_MSG_HEARTBEAT, .to = id, .commit = c, .ctx = r->read_seq});
	}
}

/* Figure 2, Leaders: "If there exists an N such that N > commitIndex, a
 * majority of matchIndex[i] >= N, and log[N].term == currentTerm: set
 * commitIndex = N".  The term condition is the Figure 8 rule: an entry of
 * an older term on a majority can still be overwritten. */
static bool maybe_commit(struct raft *r)
{
	INVARIANT(r->role == RAFT_LEADER);
	/* the rule asynchronous writes rest on (raft_persisted) */
	INVARIANT_MSG(r->prs[r->id].match <= r->durable, "a leader counts only its own entries that are durable");
	uint64_t n = quorum_value(r, false);
	uint64_t t;
	if (n <= r->commit || !log_term(r, n, &t))
		return false;
#ifndef RAFT_PLANTED_BUG
	if (t != r->term)
		return false;
#endif /* the planted bug (make the sweep prove it bites): commit by counting */
	commit_to(r, n);
	INVARIANT(r->commit == n);
	return true;
}

static bool committed_in_term(const struct raft *r)
{
	uint64_t t;
	return log_term(r, r->commit, &t) && t == r->term;
}

static bool lease_valid(const struct raft *r)
{
	return r->cfg.lease_read && r->cfg.check_quorum && r->lease_revoked_term != r->term &&
	       r->transferee == 0 && r->ticks < r->lease_until;
}

/* Pop the reads a majority has confirmed, and extend the lease. */
static void reads_advance(struct raft *r)
{
	uint64_t confirmed = quorum_value(r, true);
	if (confirmed && r->read_seq - confirmed < SEQ_RING) {
		uint64_t until = r->seq_tick[confirmed % SEQ_RING] + r->cfg.election_tick;
		until = until > r->cfg.lease_drift_ticks ? until - r->cfg.lease_drift_ticks : 0;
		if (until > r->lease_until)
			r->lease_until = until;
	}
	while (r->rq_len) {
		struct pending_read *pr = &r->rq[r->rq_head];
		if (pr->seq > confirmed)
			break;
		read_done(r, pr->ctx, pr->index, pr->from);
		r->rq_head = (r->rq_head + 1) % r->cfg.max_pending_reads;
		r->rq_len--;
	}
}

static int leader_read(struct raft *r, uint64_t ctx, uint32_t from)
{
	INVARIANT(r->role == RAFT_LEADER);
	if (!committed_in_term(r)) /* our commit index may be behind the last leader's */
		return -EAGAIN;
	if (r->conf.voters == bit(r->id) || lease_valid(r)) {
		read_done(r, ctx, r->commit, from);
		return 0;
	}
	if (r->rq_len == r->cfg.max_pending_reads)
		return -ENOBUFS;
	uint32_t slot = (r->rq_head + r->rq_len++) % r->cfg.max_pending_reads;
	r->rq[slot] = (struct pending_read){.ctx = ctx, .index = r->commit, .seq = r->read_seq + 1, .from = from};
	r->hb_pending = true; /* one heartbeat round confirms every read queued before it */
	return 0;
}

static void leader_check_removed(struct raft *r)
{
	if (r->role == RAFT_LEADER && !promotable(r) && r->commit >= r->conf_index)
		become_follower(r, r->term, 0);
}

static void handle_app_resp(struct raft *r, const struct raft_msg *m)
{
	struct progress *pr = &r->prs[m->from];
	pr->recent_active = true;
	if (m->reject) {
		uint64_t hint = m->hint;
		if (m->log_term > 0)
			hint = find_conflict_by_term(r, m->hint, m->log_term);
		bool decr;
		if (pr->state == PR_REPLICATE) {
			decr = m->index > pr->match;
			if (decr)
				pr_become_probe(pr);
		} else {
			decr = pr->next - 1 == m->index; /* else: an answer to an older probe */
			if (decr) {
				uint64_t n = m->index < hint + 1 ? m->index : hint + 1;
				pr->next = n > pr->match + 1 ? n : pr->match + 1;
				pr->probe_sent = false;
			}
		}
		if (decr)
			send_append(r, m->from, false);
		return;
	}
	if (m->index > last_index(r))
		return; /* cannot be an answer to us */
	bool was_paused = pr_paused(r, pr);
	if (m->index <= pr->match) {
		if (pr->state == PR_REPLICATE)
			pr_inflight_free_to(r, pr, m->index);
		return;
	}
	pr->match = m->index;
	if (pr->next <= pr->match)
		pr->next = pr->match + 1;
	pr->probe_sent = false;
	switch (pr->state) {
	case PR_PROBE: pr_become_replicate(pr); break;
	case PR_SNAPSHOT:
		if (pr->match >= pr->pending_snapshot) {
			pr_become_probe(pr);
			pr_become_replicate(pr);
		}
		break;
	case PR_REPLICATE: pr_inflight_free_to(r, pr, m->index); break;
	}
	INVARIANT(pr->next > pr->match);
	if (maybe_commit(r))
		bcast_append(r);
	else if (was_paused)
		send_append(r, m->from, false);
	for (uint32_t k = 0; k < r->cfg.max_inflight_msgs && send_append(r, m->from, false); k++)
		; /* fill the window */
	if (m->from == r->transferee && pr->match == last_index(r))
		send(r, (struct raft_msg){.type = RAFT_MSG_TIMEOUT_NOW, .to = m->from});
}

static void step_leader(struct raft *r, const struct raft_msg *m)
{
	if (!(members(r) & bit(m->from))) {
		if (m->type == RAFT_MSG_READ_INDEX || m->type == RAFT_MSG_APP_RESP || m->type == RAFT_MSG_HEARTBEAT_RESP)
			return; /* not (or no longer) a member */
	}
	struct progress *pr = &r->prs[m->from];
	switch (m->type) {
	case RAFT_MSG_APP_RESP:
		handle_app_resp(r, m);
		break;
	case RAFT_MSG_HEARTBEAT_RESP:
		pr->recent_active = true;
		pr->probe_sent = false;
		if (pr->state == PR_REPLICATE && pr_paused(r, pr) && pr->in_count) { /* free one slot: a lost append must not stall us */
			pr->in_bytes -= pr->in_size[pr->in_head];
			pr->in_head = (pr->in_head + 1) % r->cfg.max_inflight_msgs;
			pr->in_count--;
		}
		/* Behind: send from next even if that names no entry.  In
		 * replicate state next may already be past appends that were
		 * lost; the empty probe gets rejected and rewinds next. */
		if (pr->match < last_index(r))
			send_append(r, m->from, true);
		if (m->ctx > pr->read_acked && m->ctx <= r->read_seq)
			pr->read_acked = m->ctx;
		reads_advance(r);
		break;
	case RAFT_MSG_READ_INDEX:
		leader_read(r, m->ctx, m->from); /* failure: dropped, the client retries */
		break;
	default:
		break; /* votes for a finished election, stale transfers */
	}
}

/* ------------------------------------------------------------ followers */

/* Figure 2, AppendEntries receiver. */
static void handle_append(struct raft *r, const struct raft_msg *m)
{
	struct raft_msg resp = {.type = RAFT_MSG_APP_RESP, .to = m->from};
	uint64_t t;
	if (m->index < r->commit) { /* everything up to commit is settled */
		resp.index = r->commit;
		send(r, resp);
		return;
	}
	if (!log_term(r, m->index, &t) || t != m->log_term) {
		/* 2. "Reply false if log doesn't contain an entry at
		 * prevLogIndex whose term matches prevLogTerm", with a hint */
		uint64_t li = last_index(r);
		resp.reject = 1;
		resp.index = m->index;
		resp.hint = find_conflict_by_term(r, m->index < li ? m->index : li, m->log_term);
		log_term(r, resp.hint, &resp.log_term);
		send(r, resp);
		return;
	}
	uint64_t last_new = m->index + m->n_entries;
	for (uint32_t k = 0; k < m->n_entries; k++) {
		const struct raft_entry *e = &m->entries[k];
		if (e->index <= last_index(r)) {
			if (ent(r, e->index)->term == e->term)
				continue; /* already have it */
			/* 3. "If an existing entry conflicts with a new one (same
			 * index but different terms), delete the existing entry
			 * and all that follow it" */
			log_truncate(r, e->index);
		}
		/* 4. "Append any new entries not already in the log" */
		if (log_append(r, e->term, e->type, e->data, e->len) < 0)
			return; /* out of memory: as if the message was lost */
		if (e->type == RAFT_ENTRY_CONF) {
			struct raft_conf c;
			if (raft_conf_decode(e->data, e->len, &c) == 0)
				set_conf(r, &c, e->index);
		}
	}
	INVARIANT(last_index(r) >= last_new);
	/* 5. "If leaderCommit > commitIndex, set commitIndex =
	 * min(leaderCommit, index of last new entry)" */
	commit_to(r, m->commit < last_new ? m->commit : last_new);
	resp.index = last_new;
	send(r, resp);
}

static void handle_heartbeat(struct raft *r, const struct raft_msg *m)
{
	/* The leader sends min(match, commit): all of it is in our log --
	 * unless this node lost a cut tail of its log at a restart (outside
	 * the model: see raft_peer_restarted) and the leader has not heard of
	 * it yet.  Then nothing is committed from it; the leader's next probe
	 * finds where our logs part. */
	if (m->commit <= last_index(r))
		commit_to(r, m->commit);
	send(r, (struct raft_msg){.type = RAFT_MSG_HEARTBEAT_RESP, .to = m->from, .ctx = m->ctx});
}

static void handle_snapshot(struct raft *r, const struct raft_msg *m)
{
	const struct raft_snapshot *s = m->snapshot;
	struct raft_msg resp = {.type = RAFT_MSG_APP_RESP, .to = m->from};
	uint64_t t;
	if (s->meta.index <= r->commit) {
		resp.index = r->commit;
		send(r, resp);
		return;
	}
	if (log_term(r, s->meta.index, &t) && t == s->meta.term) {
		/* we have the entry: the snapshot only tells us it is committed */
		commit_to(r, s->meta.index);
		resp.index = s->meta.index;
		send(r, resp);
		return;
	}
	/* Replace everything: the log is discarded (nothing in it is
	 * committed beyond our commit index, which is below the snapshot). */
	if (s->len > r->snap_cap) {
		uint8_t *b = realloc(r->snap_buf, s->len);
		if (!b)
			return;
		buf_hint_huge(b, s->len);
		r->snap_buf = b;
		r->snap_cap = s->len;
	}
	if (s->len)
		memcpy(r->snap_buf, s->data, s->len);
	arena_release(r, UINT64_MAX);
	r->ents_head = r->ents_len = 0;
	msgs_invalidate(r, 0);
	r->snap.meta = s->meta;
	r->snap.data = r->snap_buf;
	r->snap.len = s->len;
	r->snap_unpersisted = true;
	r->stable = s->meta.index;
	if (r->durable > s->meta.index)
		r->durable = s->meta.index;
	r->commit = s->meta.index;
	set_conf(r, &s->meta.conf, s->meta.index);
	INVARIANT(last_index(r) == s->meta.index && last_term(r) == s->meta.term);
	resp.index = s->meta.index;
	send(r, resp);
}

static void handle_vote(struct raft *r, const struct raft_msg *m)
{
	bool pre = m->type == RAFT_MSG_PREVOTE;
	uint8_t rtype = pre ? RAFT_MSG_PREVOTE_RESP : RAFT_MSG_VOTE_RESP;
	/* Figure 2, RequestVote receiver 2: "If votedFor is null or
	 * candidateId, and candidate's log is at least as up-to-date". A
	 * pre-vote for a later term binds nothing, so it may be granted even
	 * when we voted in this term. */
	bool can_vote = r->vote == m->from || (r->vote == 0 && r->lead == 0) || (pre && m->term > r->term);
	if (can_vote && log_up_to_date(r, m->index, m->log_term)) {
		send(r, (struct raft_msg){.type = rtype, .to = m->from, .term = m->term});
		if (!pre) {
			INVARIANT_MSG(m->term == r->term, "votes are cast in the current term");
			INVARIANT_MSG(r->vote == 0 || r->vote == m->from, "at most one vote per term");
			r->vote = m->from;
			r->election_elapsed = 0;
		}
	} else {
		send(r, (struct raft_msg){.type = rtype, .to = m->from, .reject = 1});
	}
}

static void step_candidate(struct raft *r, const struct raft_msg *m)
{
	uint8_t want = r->role == RAFT_PRE_CANDIDATE ? RAFT_MSG_PREVOTE_RESP : RAFT_MSG_VOTE_RESP;
	switch (m->type) {
	case RAFT_MSG_APP:
		become_follower(r, m->term, m->from); /* "If AppendEntries RPC received from new leader: convert to follower" */
		handle_append(r, m);
		return;
	case RAFT_MSG_HEARTBEAT:
		become_follower(r, m->term, m->from);
		handle_heartbeat(r, m);
		return;
	case RAFT_MSG_SNAP:
		become_follower(r, m->term, m->from);
		handle_snapshot(r, m);
		return;
	default:
		break;
	}
	if (m->type != want || !(r->conf.voters & bit(m->from)))
		return;
	if (m->reject)
		r->votes_rejected |= bit(m->from);
	else
		r->votes_granted |= bit(m->from);
	if (quorum_has(r->conf.voters, r->votes_granted)) {
		if (r->role == RAFT_PRE_CANDIDATE) {
			campaign(r, CAMPAIGN_ELECTION, false);
		} else {
			become_leader(r);
			bcast_append(r);
			r->bcast_pending = false;
		}
	} else if (quorum_has(r->conf.voters, r->votes_rejected)) {
		become_follower(r, r->term, 0);
	}
}

static void step_follower(struct raft *r, const struct raft_msg *m)
{
	switch (m->type) {
	case RAFT_MSG_APP:
		r->election_elapsed = 0;
		r->lead = m->from;
		handle_append(r, m);
		break;
	case RAFT_MSG_HEARTBEAT:
		r->election_elapsed = 0;
		r->lead = m->from;
		handle_heartbeat(r, m);
		break;
	case RAFT_MSG_SNAP:
		r->election_elapsed = 0;
		r->lead = m->from;
		handle_snapshot(r, m);
		break;
	case RAFT_MSG_TIMEOUT_NOW:
		campaign(r, CAMPAIGN_ELECTION, true); /* leader transfer: no pre-vote, ignore leases */
		break;
	case RAFT_MSG_READ_INDEX_RESP:
		if (r->n_read_states < r->cfg.max_pending_reads)
			r->read_states[r->n_read_states++] = (struct raft_read_state){m->ctx, m->index};
		break;
	default:
		break;
	}
}

/* ------------------------------------------------------------ inputs */

static int msg_valid(const struct raft *r, const struct raft_msg *m)
{
	if (m->type < RAFT_MSG_APP || m->type > RAFT_MSG_TYPE_MAX)
		return 0;
	if (m->from == 0 || m->from > RAFT_MAX_ID || m->from == r->id || (m->to && m->to != r->id))
		return 0;
	if (m->n_entries && !m->entries)
		return 0;
	for (uint32_t k = 0; k < m->n_entries; k++) {
		const struct raft_entry *e = &m->entries[k];
		if (e->index != m->index + 1 + k || e->term > m->term || e->term < (k ? e[-1].term : m->log_term) ||
		    (e->len && !e->data))
			return 0;
	}
	if (m->type == RAFT_MSG_SNAP && (!m->snapshot || m->snapshot->meta.term > m->term ||
	                                 (m->snapshot->len && !m->snapshot->data)))
		return 0;
	return 1;
}

int raft_step(struct raft *r, const struct raft_msg *m)
{
	INVARIANT_MSG(!r->in_ready, "raft_advance() comes before the next input");
	if (!msg_valid(r, m))
		return -EINVAL;
	uint64_t term_before = r->term;
	if (m->term > r->term) {
		if (m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PREVOTE) {
			/* A node that just started counts as having heard from a
			 * leader: before a crash it may have acknowledged a
			 * heartbeat that some leader's lease now rests on. */
			bool heard = r->lead != 0 || r->ticks < r->cfg.election_tick;
			bool in_lease = r->cfg.check_quorum && heard && r->election_elapsed < r->cfg.election_tick;
			if (in_lease && !m->force)
				return 0; /* we heard from a leader recently: stay with it */
		}
		if (m->type == RAFT_MSG_PREVOTE) {
			/* a pre-vote never changes our term */
		} else if (m->type == RAFT_MSG_PREVOTE_RESP && !m->reject) {
			/* a grant for our pre-candidacy at term + 1 */
		} else if (m->type == RAFT_MSG_APP || m->type == RAFT_MSG_HEARTBEAT || m->type == RAFT_MSG_SNAP) {
			become_follower(r, m->term, m->from);
		} else {
			become_follower(r, m->term, 0);
		}
	} else if (m->term < r->term) {
		if ((r->cfg.check_quorum || r->cfg.pre_vote) &&
		    (m->type == RAFT_MSG_APP || m->type == RAFT_MSG_HEARTBEAT)) {
			/* tell a deposed leader about the new term (it may be
			 * cut off from everyone else, and pre-vote keeps our
			 * term from reaching it any other way) */
			send(r, (struct raft_msg){.type = RAFT_MSG_APP_RESP, .to = m->from});
		} else if (m->type == RAFT_MSG_PREVOTE) {
			send(r, (struct raft_msg){.type = RAFT_MSG_PREVOTE_RESP, .to = m->from, .reject = 1});
		}
		return 0;
	}
	if (m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PREVOTE)
		handle_vote(r, m);
	else if (r->role == RAFT_LEADER)
		step_leader(r, m);
	else if (r->role == RAFT_FOLLOWER)
		step_follower(r, m);
	else
		step_candidate(r, m);
	leader_check_removed(r);
	INVARIANT(r->term >= term_before);
	return 0;
}

static void tick_election(struct raft *r)
{
	r->election_elapsed++;
	if (promotable(r) && r->election_elapsed >= r->randomized_timeout) {
		r->election_elapsed = 0;
		campaign(r, r->cfg.pre_vote ? CAMPAIGN_PRE : CAMPAIGN_ELECTION, false);
	}
}

static void tick_heartbeat(struct raft *r)
{
	r->heartbeat_elapsed++;
	r->election_elapsed++;
	if (r->election_elapsed >= r->cfg.election_tick) {
		r->election_elapsed = 0;
		if (r->cfg.check_quorum) {
			uint64_t active = bit(r->id);
			for (uint64_t s = r->conf.voters & ~bit(r->id); s; s &= s - 1) {
				uint32_t id = (uint32_t)__builtin_ctzll(s);
				if (r->prs[id].recent_active)
					active |= bit(id);
			}
			for (uint64_t s = members(r); s; s &= s - 1)
				r->prs[__builtin_ctzll(s)].recent_active = false;
			if (!quorum_has(r->conf.voters, active)) {
				become_follower(r, r->term, 0);
				return;
			}
		}
		r->transferee = 0; /* a transfer that took a whole timeout failed */
	}
	for (uint64_t s = members(r) & ~bit(r->id); s; s &= s - 1) {
		struct progress *pr = &r->prs[__builtin_ctzll(s)];
		if (pr->state == PR_SNAPSHOT && ++pr->snap_ticks >= r->cfg.election_tick)
			pr_become_probe(pr); /* the snapshot was probably lost: start over */
	}
	if (r->heartbeat_elapsed >= r->cfg.heartbeat_tick) {
		r->heartbeat_elapsed = 0;
		r->hb_pending = false;
		bcast_heartbeat(r);
	}
}

void raft_tick(struct raft *r)
{
	INVARIANT_MSG(!r->in_ready, "raft_advance() comes before the next input");
	r->ticks++;
#ifdef RAFT_PLANTED_INVARIANT /* tests/raft.bats: a failing assertion names seed and step */
	INVARIANT_MSG(r->term < RAFT_PLANTED_INVARIANT, "planted: terms stay small");
#endif
	if (r->role == RAFT_LEADER)
		tick_heartbeat(r);
	else
		tick_election(r);
}

int64_t raft_propose(struct raft *r, const void *data, size_t len)
{
	INVARIANT_MSG(!r->in_ready, "raft_advance() comes before the next input");
	if (r->role != RAFT_LEADER)
		return -EPERM;
	if (r->transferee)
		return -EBUSY;
	if (len > r->cfg.max_entry_bytes)
		return -EMSGSIZE;
	if (r->uncommitted_bytes && r->uncommitted_bytes + len > r->cfg.max_uncommitted_bytes)
		return -ENOBUFS;
	if (log_append(r, r->term, RAFT_ENTRY_NORMAL, data, (uint32_t)len) < 0)
		return -ENOMEM;
	r->uncommitted_bytes += len;
	INVARIANT(last_term(r) == r->term);
	r->prs[r->id].next = last_index(r) + 1;
	r->bcast_pending = true; /* sent in one batch when the Ready is built */
	return (int64_t)last_index(r);
}

int64_t raft_propose_conf(struct raft *r, enum raft_conf_op op, uint32_t node)
{
	INVARIANT_MSG(!r->in_ready, "raft_advance() comes before the next input");
	if (r->role != RAFT_LEADER)
		return -EPERM;
	if (node == 0 || node > RAFT_MAX_ID)
		return -EINVAL;
	if (r->transferee || r->conf_index > r->commit)
		return -EBUSY; /* one change at a time */
	if (!committed_in_term(r))
		return -EAGAIN; /* Ongaro's fix: our no-op first */
	struct raft_conf c = r->conf;
	switch (op) {
	case RAFT_CONF_ADD_VOTER: c.voters |= bit(node); c.learners &= ~bit(node); break;
	case RAFT_CONF_ADD_LEARNER: c.voters &= ~bit(node); c.learners |= bit(node); break;
	case RAFT_CONF_REMOVE: c.voters &= ~bit(node); c.learners &= ~bit(node); break;
	default: return -EINVAL;
	}
	if (c.voters == 0 || (c.voters == r->conf.voters && c.learners == r->conf.learners))
		return -EINVAL;
	uint8_t buf[16];
	raft_conf_encode(&c, buf);
	if (log_append(r, r->term, RAFT_ENTRY_CONF, buf, sizeof buf) < 0)
		return -ENOMEM;
	r->prs[r->id].next = last_index(r) + 1;
	set_conf(r, &c, last_index(r));
	r->bcast_pending = true;
	return (int64_t)last_index(r);
}

int raft_peer_restarted(struct raft *r, uint32_t id)
{
	if (id == 0 || id > RAFT_MAX_ID)
		return -EINVAL;
	if (r->role != RAFT_LEADER || id == r->id || !(members(r) & bit(id)))
		return 0;
	struct progress *pr = &r->prs[id];
	/* Forget the match: counting the peer again only after it answers is
	 * conservative (commit never moves back), and it lets the rejections
	 * of a peer whose log is now shorter than its match rewind next,
	 * which handle_app_resp would otherwise take for stale answers. */
	uint64_t next = pr->next;
	pr->match = 0;
	pr_become_probe(pr);
	pr->next = next > 1 ? next : 1;
	INVARIANT(pr->next > pr->match);
	return 0;
}

int raft_transfer_leader(struct raft *r, uint32_t to)
{
	INVARIANT_MSG(!r->in_ready, "raft_advance() comes before the next input");
	if (r->role != RAFT_LEADER)
		return -EPERM;
	if (to == r->id || to == 0 || to > RAFT_MAX_ID || !(r->conf.voters & bit(to)))
		return -EINVAL;
	if (r->transferee == to)
		return 0;
	r->transferee = to;
	r->lease_revoked_term = r->term;
	r->election_elapsed = 0; /* the transfer gets one election timeout */
	if (r->prs[to].match == last_index(r)) {
		send(r, (struct raft_msg){.type = RAFT_MSG_TIMEOUT_NOW, .to = to});
	} else {
		struct progress *pr = &r->prs[to];
		if (pr->state != PR_SNAPSHOT && pr_paused(r, pr))
			pr_become_probe(pr); /* probe now rather than after the next heartbeat */
		send_append(r, to, true);
	}
	return 0;
}

int raft_read_index(struct raft *r, uint64_t ctx)
{
	INVARIANT_MSG(!r->in_ready, "raft_advance() comes before the next input");
	if (r->role == RAFT_LEADER)
		return leader_read(r, ctx, r->id);
	if (r->lead == 0)
		return -EAGAIN;
	send(r, (struct raft_msg){.type = RAFT_MSG_READ_INDEX, .to = r->lead, .ctx = ctx});
	return 0;
}

int raft_campaign(struct raft *r)
{
	INVARIANT_MSG(!r->in_ready, "raft_advance() comes before the next input");
	if (r->role == RAFT_LEADER)
		return 0;
	if (!promotable(r))
		return -EPERM;
	campaign(r, r->cfg.pre_vote ? CAMPAIGN_PRE : CAMPAIGN_ELECTION, false);
	return 0;
}

/* ------------------------------------------------------------ Ready */

bool raft_ready(struct raft *r, struct raft_ready *rd)
{
	INVARIANT_MSG(!r->in_ready, "raft_advance() comes before the next raft_ready()");
	if (r->role == RAFT_LEADER) {
		if (maybe_commit(r))
			r->bcast_pending = true;
		if (r->hb_pending)
			bcast_heartbeat(r);
		if (r->bcast_pending)
			bcast_append(r);
		r->hb_pending = r->bcast_pending = false;
		reads_advance(r); /* a cluster of one confirms at once */
		leader_check_removed(r);
	}
	memset(rd, 0, sizeof *rd);
	rd->hs = (struct raft_hard_state){r->term, r->vote, r->commit};
	rd->hs_changed = memcmp(&rd->hs, &r->prev_hs, sizeof rd->hs) != 0;
	if (r->snap_unpersisted)
		rd->snapshot = &r->snap;
	/* Only a leader's Ready that changes neither term nor vote may leave
	 * before it is durable: what a leader sends promises nothing about its
	 * disk (its own copy counts once raft_persisted says so), while votes,
	 * acknowledgements and anything of a new term do. */
	rd->async = r->role == RAFT_LEADER && !rd->snapshot && rd->hs.term == r->prev_hs.term &&
	            rd->hs.vote == r->prev_hs.vote;
	INVARIANT(r->stable >= r->snap.meta.index);
	INVARIANT_MSG(r->durable <= r->stable, "only what was handed out to the disk can be durable");
	if (r->stable < last_index(r)) {
		rd->entries = ent(r, r->stable + 1);
		rd->n_entries = last_index(r) - r->stable;
	}
	uint64_t from = r->applied;
	if (r->snap_unpersisted || from < r->snap.meta.index)
		from = r->snap.meta.index;
	INVARIANT_MSG(r->commit <= last_index(r), "commit only what the log holds");
	/* an asynchronous Ready is applied before it is durable: only what
	 * this member's disk already holds (committed entries beyond it come
	 * in a later Ready) */
	uint64_t upto = rd->async && r->durable < r->commit ? r->durable : r->commit;
	if (upto > from) {
		rd->committed = ent(r, from + 1);
		rd->n_committed = upto - from;
	}
	/* resolve the queued messages into pointers to the log */
	uint32_t k = 0;
	for (uint32_t i = 0; i < r->n_msgs; i++) {
		struct raft_msg *m = &r->msgs[i];
		if (m->type == RAFT_MSG_APP) {
			if (m->index < r->snap.meta.index || m->index + m->n_entries > last_index(r))
				continue; /* compacted meanwhile: as if lost */
			m->entries = m->n_entries ? ent(r, m->index + 1) : NULL;
		} else if (m->type == RAFT_MSG_SNAP) {
			m->snapshot = &r->snap;
			m->index = r->snap.meta.index;
			m->log_term = r->snap.meta.term;
		}
		r->msgs[k++] = *m;
	}
	r->n_msgs = k;
	rd->msgs = r->msgs;
	rd->n_msgs = r->n_msgs;
	rd->reads = r->read_states;
	rd->n_reads = r->n_read_states;
	bool any = rd->hs_changed || rd->snapshot || rd->n_entries || rd->n_committed || rd->n_msgs || rd->n_reads;
	r->in_ready = any;
	return any;
}

static void advance(struct raft *r, const struct raft_ready *rd, bool durable);

void raft_advance(struct raft *r, const struct raft_ready *rd)
{
	advance(r, rd, true);
}

void raft_advance_async(struct raft *r, const struct raft_ready *rd)
{
	INVARIANT_MSG(rd->async, "raft_advance_async() only for a Ready marked async");
	advance(r, rd, false);
}

void raft_persisted(struct raft *r, uint64_t index, uint64_t term)
{
	INVARIANT_MSG(!r->in_ready, "raft_advance() comes before the next input");
	uint64_t t;
	/* Only a leader of the term that wrote it uses the news: it never
	 * truncates its log within its term, so entries up to index of term
	 * are exactly what it handed out.  Anyone else learns durability from
	 * its next synchronous raft_advance, which covers all earlier writes. */
	if (r->role != RAFT_LEADER || term != r->term || index <= r->durable || index > r->stable ||
	    !log_term(r, index, &t) || t != term)
		return;
	r->durable = index;
	if (r->prs[r->id].match < index)
		r->prs[r->id].match = index;
}

static void advance(struct raft *r, const struct raft_ready *rd, bool durable)
{
	INVARIANT_MSG(r->in_ready, "raft_advance() follows a raft_ready() that returned true");
	INVARIANT_MSG(rd->hs.commit >= r->prev_hs.commit, "the commit index never goes back");
	if (rd->snapshot) {
		r->snap_unpersisted = false;
		if (r->applied < rd->snapshot->meta.index)
			r->applied = rd->snapshot->meta.index;
	}
	if (rd->n_entries)
		r->stable = rd->entries[rd->n_entries - 1].index;
	if (durable) {
		/* this Ready and every write before it are on the disk */
		r->durable = r->stable;
		if (r->role == RAFT_LEADER && r->prs[r->id].match < r->durable)
			r->prs[r->id].match = r->durable;
	}
	if (rd->n_committed)
		r->applied = rd->committed[rd->n_committed - 1].index;
	r->prev_hs = rd->hs;
	r->n_msgs = 0;
	r->n_read_states = 0;
	r->in_ready = false;
}

/* ------------------------------------------------------------ life cycle */

void raft_config_default(struct raft_config *cfg)
{
	*cfg = (struct raft_config){
		.election_tick = 10,
		.heartbeat_tick = 1,
		.pre_vote = true,
		.check_quorum = true,
		.lease_drift_ticks = 1,
		.max_msg_entries = 256,
		.max_msg_bytes = 1u << 20,
		.max_inflight_msgs = 64,
		.max_inflight_bytes = 16u << 20,
		.max_uncommitted_bytes = 64u << 20,
		.max_entry_bytes = 1u << 20,
		.max_pending_reads = 1024,
		.max_msgs = 4096,
	};
}

int raft_new(struct raft **out, const struct raft_config *cfg)
{
	if (cfg->id == 0 || cfg->id > RAFT_MAX_ID || cfg->election_tick < 2 || cfg->heartbeat_tick == 0 ||
	    cfg->heartbeat_tick >= cfg->election_tick || cfg->max_msg_entries == 0 || cfg->max_inflight_msgs == 0 ||
	    cfg->max_pending_reads == 0 || cfg->max_msgs == 0)
		return -EINVAL;
	struct raft *r = calloc(1, sizeof *r);
	if (!r)
		return -ENOMEM;
	r->cfg = *cfg;
	r->id = cfg->id;
	r->rng = cfg->seed ^ (0x51afd7ed558ccd4dull * cfg->id);
	r->msgs = calloc(cfg->max_msgs, sizeof *r->msgs);
	r->rq = calloc(cfg->max_pending_reads, sizeof *r->rq);
	r->read_states = calloc(cfg->max_pending_reads, sizeof *r->read_states);
	bool ok = r->msgs && r->rq && r->read_states;
	for (int i = 1; i <= RAFT_MAX_ID && ok; i++) {
		r->prs[i].in_index = calloc(cfg->max_inflight_msgs, sizeof(uint64_t));
		r->prs[i].in_size = calloc(cfg->max_inflight_msgs, sizeof(uint32_t));
		ok = r->prs[i].in_index && r->prs[i].in_size;
	}
	if (!ok) {
		raft_free(r);
		return -ENOMEM;
	}
	become_follower(r, 0, 0);
	*out = r;
	return 0;
}

void raft_free(struct raft *r)
{
	if (!r)
		return;
	for (int i = 1; i <= RAFT_MAX_ID; i++) {
		free(r->prs[i].in_index);
		free(r->prs[i].in_size);
	}
	for (struct chunk *c = r->chunk_head; c;) {
		struct chunk *n = c->next;
		free(c);
		c = n;
	}
	for (struct chunk *c = r->chunk_spare; c;) {
		struct chunk *n = c->next;
		free(c);
		c = n;
	}
	free(r->ents);
	free(r->snap_buf);
	free(r->msgs);
	free(r->rq);
	free(r->read_states);
	free(r);
}

int raft_restore(struct raft *r, const struct raft_hard_state *hs, const struct raft_snapshot *snap,
                 const struct raft_entry *ents, size_t n)
{
	INVARIANT_MSG(r->term == 0 && r->ents_len == 0 && r->snap.meta.index == 0, "restore comes first");
	if (snap) {
		if (snap->len) {
			r->snap_buf = malloc(snap->len);
			if (!r->snap_buf)
				return -ENOMEM;
			memcpy(r->snap_buf, snap->data, snap->len);
			r->snap_cap = snap->len;
		}
		r->snap.meta = snap->meta;
		r->snap.data = r->snap_buf;
		r->snap.len = snap->len;
	}
	for (size_t i = 0; i < n; i++) {
		if (ents[i].index != last_index(r) + 1 || ents[i].term < last_term(r))
			return -EINVAL;
		if (log_append(r, ents[i].term, ents[i].type, ents[i].data, ents[i].len) < 0)
			return -ENOMEM;
	}
	struct raft_hard_state h = hs ? *hs : (struct raft_hard_state){0};
	if (h.commit > last_index(r) || h.term < last_term(r))
		return -EINVAL;
	r->term = h.term;
	r->vote = h.vote;
	r->commit = h.commit > r->snap.meta.index ? h.commit : r->snap.meta.index;
	r->prev_hs = h;
	r->stable = r->durable = last_index(r);
	r->applied = r->snap.meta.index;
	struct raft_conf c;
	uint64_t at;
	r->conf_index = UINT64_MAX; /* nothing known yet: make conf_at() scan the log */
	conf_at(r, last_index(r), &c, &at);
	set_conf(r, &c, at);
	return 0;
}

int raft_compact(struct raft *r, uint64_t index, const void *data, size_t len)
{
	INVARIANT_MSG(!r->in_ready, "raft_advance() comes before the next input");
	if (index <= r->snap.meta.index)
		return 0; /* already behind the snapshot */
	if (index > r->applied || index > last_index(r))
		return -EINVAL;
	if (len > r->snap_cap || len < r->snap_cap / 2) {
		/* a much smaller snapshot (none: the host keeps it) gives back
		 * what a larger one took, an installed one's too */
		uint8_t *b = len ? malloc(len) : NULL;
		if (len && !b)
			return -ENOMEM;
		free(r->snap_buf);
		if (b)
			buf_hint_huge(b, len); /* filled at once below: a fault per 2 MiB */
		r->snap_buf = b;
		r->snap_cap = len;
	}
	struct raft_snapshot_meta meta = {.index = index, .term = ent(r, index)->term};
	uint64_t at;
	conf_at(r, index, &meta.conf, &at);
	if (len)
		memcpy(r->snap_buf, data, len);
	uint64_t drop = index - r->snap.meta.index;
	r->ents_head += drop;
	r->ents_len -= drop;
	r->snap.meta = meta;
	r->snap.data = r->snap_buf;
	r->snap.len = len;
	if (r->stable < index)
		r->stable = index;
	if (r->durable < index)
		r->durable = index; /* the host's snapshot holds it */
	arena_release(r, index);
	INVARIANT(first_index(r) == index + 1);
	return 0;
}

/* ------------------------------------------------------------ queries */

void raft_status(const struct raft *r, struct raft_status *st)
{
	*st = (struct raft_status){
		.id = r->id, .lead = r->lead, .role = r->role, .term = r->term, .vote = r->vote,
		.commit = r->commit, .applied = r->applied, .first_index = first_index(r),
		.last_index = last_index(r), .last_term = last_term(r), .snap_index = r->snap.meta.index,
		.snap_term = r->snap.meta.term, .conf = r->conf, .conf_index = r->conf_index,
		.transferee = r->transferee, .msgs_dropped = r->msgs_dropped, .msgs_queued = r->n_msgs,
	};
}

int raft_progress(const struct raft *r, uint32_t id, uint64_t *match)
{
	if (r->role != RAFT_LEADER)
		return -EPERM;
	if (id == 0 || id > RAFT_MAX_ID || !(members(r) & bit(id)))
		return -ENOENT;
	*match = r->prs[id].match;
	return 0;
}

int raft_term_at(const struct raft *r, uint64_t index, uint64_t *term)
{
	return log_term(r, index, term) ? 0 : -ENOENT;
}

const struct raft_entry *raft_entry_at(const struct raft *r, uint64_t index)
{
	if (index < first_index(r) || index > last_index(r))
		return NULL;
	return ent(r, index);
}

const struct raft_snapshot *raft_snapshot_get(const struct raft *r)
{
	return &r->snap;
}

void raft_conf_encode(const struct raft_conf *c, uint8_t out[16])
{
	le64_put(out, c->voters);
	le64_put(out + 8, c->learners);
}

int raft_conf_decode(const uint8_t *data, size_t len, struct raft_conf *c)
{
	if (len != 16 || !data)
		return -EINVAL;
	c->voters = le64_get(data);
	c->learners = le64_get(data + 8);
	if ((c->voters | c->learners) & 1) /* id 0 is nobody */
		return -EINVAL;
	return 0;
}

const char *raft_role_name(int role)
{
	static const char *const names[] = {"follower", "pre-candidate", "candidate", "leader"};
	return role >= 0 && role <= RAFT_LEADER ? names[role] : "?";
}

const char *raft_msg_type_name(int type)
{
	static const char *const names[] = {
		"?", "app", "app_resp", "vote", "vote_resp", "prevote", "prevote_resp", "heartbeat",
		"heartbeat_resp", "snap", "timeout_now", "read_index", "read_index_resp",
	};
	return type >= 1 && type <= RAFT_MSG_TYPE_MAX ? names[type] : "?";
}
