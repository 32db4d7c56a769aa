/*
 * raft/raft.h -- the Raft consensus algorithm as a pure state machine.
 *
 * No sockets, no files, no clocks, no threads: a struct raft takes inputs
 * and hands back outputs, in the style of etcd's raft library.
 *
 *   inputs   raft_tick()           one logical clock tick
 *            raft_step()           a message from a peer
 *            raft_propose()        a client command (leader only)
 *            raft_propose_conf()   a membership change (leader only)
 *            raft_read_index()     a linearizable read barrier
 *            raft_transfer_leader()
 *            raft_compact()        "my state machine has a snapshot at N"
 *   outputs  raft_ready()          what to persist, send, apply, install
 *            raft_advance()        "done with that Ready"
 *
 * The Ready contract (what keeps persisted state ahead of the messages
 * that depend on it):
 *   1. if rd.snapshot: make it durable and drop the stored log (it replaces
 *      everything up to rd.snapshot->meta.index), install it in the state
 *      machine;
 *   2. durably store rd.entries (first deleting any stored entries at or
 *      after rd.entries[0].index) and, if rd.hs_changed, rd.hs;
 *   3. only then send rd.msgs (a vote or an append acknowledgement must
 *      never leave before the state it promises is on disk);
 *   4. apply rd.committed in order; serve rd.reads once applied >= index;
 *   5. call raft_advance(r, &rd).
 * Asynchronous writes (a leader only; Raft thesis 10.2.1): when rd.async
 * is set the host may instead
 *   a. start the write of rd.entries and rd.hs (a write queued behind all
 *      earlier ones: the disk makes them durable in order),
 *   b. send rd.msgs and apply rd.committed (already durable here) at once,
 *   c. call raft_advance_async(r, &rd), and go on with input;
 *   d. once that write is durable, call raft_persisted(r, i, t) with the
 *      index and term of rd's last entry (skip it for a Ready without
 *      entries).
 * The leader counts its own copy of an entry toward a commit only after
 * raft_persisted (or a raft_advance) says it is durable.  rd.async is set
 * only for a Ready that changes neither term nor vote and carries no
 * snapshot; any other Ready follows steps 1-5, and its raft_advance must
 * come after every earlier asynchronous write is durable too (raft_advance
 * means "everything handed out so far is on the disk").  A host that
 * ignores rd.async and always uses steps 1-5 is correct as before.
 *
 * Between raft_ready() returning true and raft_advance() no other raft_*
 * call is allowed (an INVARIANT checks it).  Everything rd points to is
 * owned by the raft and valid until raft_advance(); a host that keeps
 * messages longer (a network queue) copies them.
 *
 * Start-up: raft_new() then raft_restore() with what the disk holds (a new
 * cluster passes a snapshot at index 0 whose conf lists the first voters; a
 * node that joins later passes an empty conf and learns the real one from
 * the leader).
 *
 * Node ids are 1..RAFT_MAX_ID; a configuration is a pair of bit sets.
 * Errors are negative errno codes: -EPERM not the leader, -EBUSY a
 * membership change or leader transfer is in progress, -ENOBUFS too many
 * uncommitted bytes or pending reads, -EMSGSIZE entry too large, -EINVAL a
 * malformed argument or message, -EAGAIN no leader known or the leader has
 * not committed an entry of its term yet, -ENOMEM.
 *
 * Thread-safety: none; one raft belongs to one thread.
 */
#ifndef DSYS_RAFT_H
#define DSYS_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RAFT_MAX_ID 63 /* ids fit a uint64_t bit set; 0 means "nobody" */

enum raft_role { RAFT_FOLLOWER, RAFT_PRE_CANDIDATE, RAFT_CANDIDATE, RAFT_LEADER };

enum raft_msg_type {
	RAFT_MSG_APP = 1,        /* AppendEntries */
	RAFT_MSG_APP_RESP,
	RAFT_MSG_VOTE,           /* RequestVote */
	RAFT_MSG_VOTE_RESP,
	RAFT_MSG_PREVOTE,        /* RequestVote for term+1 that changes nothing */
	RAFT_MSG_PREVOTE_RESP,
	RAFT_MSG_HEARTBEAT,      /* empty AppendEntries that carries no log position */
	RAFT_MSG_HEARTBEAT_RESP,
	RAFT_MSG_SNAP,           /* InstallSnapshot (the whole snapshot in one message) */
	RAFT_MSG_TIMEOUT_NOW,    /* leader transfer: "campaign now" */
	RAFT_MSG_READ_INDEX,     /* follower -> leader: a read barrier for ctx */
	RAFT_MSG_READ_INDEX_RESP,
	RAFT_MSG_TYPE_MAX = RAFT_MSG_READ_INDEX_RESP
};

enum raft_entry_type {
	RAFT_ENTRY_NORMAL = 0,   /* a command for the state machine (empty: the leader's no-op) */
	RAFT_ENTRY_CONF = 1,     /* a new configuration (struct raft_conf, 16 bytes little-endian) */
};

enum raft_conf_op { RAFT_CONF_ADD_VOTER, RAFT_CONF_ADD_LEARNER, RAFT_CONF_REMOVE };

struct raft_conf {
	uint64_t voters;   /* bit i set: node i votes and counts in majorities */
	uint64_t learners; /* bit i set: node i receives the log but does not vote */
};

struct raft_entry {
	uint64_t term;
	uint64_t index;
	const uint8_t *data;
	uint32_t len;
	uint8_t type;      /* enum raft_entry_type */
};

struct raft_snapshot_meta {
	uint64_t index;    /* last entry the snapshot covers */
	uint64_t term;     /* that entry's term */
	struct raft_conf conf; /* the configuration as of index */
};

struct raft_snapshot {
	struct raft_snapshot_meta meta;
	const uint8_t *data;
	size_t len;
};

/* What must survive a crash besides the log (Figure 2: currentTerm,
 * votedFor; commit is kept too so a restart applies without waiting). */
struct raft_hard_state {
	uint64_t term;
	uint64_t vote;
	uint64_t commit;
};

struct raft_msg {
	uint8_t type;      /* enum raft_msg_type */
	uint8_t reject;    /* responses: 1 = refused */
	uint8_t force;     /* VOTE after TimeoutNow: ignore the leader lease */
	uint32_t from, to;
	uint64_t term;
	uint64_t index;    /* APP: prevLogIndex; VOTE: lastLogIndex; APP_RESP: last index matched (or rejected) */
	uint64_t log_term; /* APP: prevLogTerm; VOTE: lastLogTerm; APP_RESP reject: term at hint */
	uint64_t commit;   /* APP, HEARTBEAT: leaderCommit */
	uint64_t hint;     /* APP_RESP reject: the follower's best guess of a matching index */
	uint64_t ctx;      /* HEARTBEAT(_RESP): read sequence; READ_INDEX(_RESP): caller's ctx */
	const struct raft_entry *entries;
	uint32_t n_entries;
	const struct raft_snapshot *snapshot; /* SNAP only */
};

/* A confirmed read barrier: once the state machine has applied index,
 * a read for ctx may be served from it. */
struct raft_read_state {
	uint64_t ctx;
	uint64_t index;
};

struct raft_config {
	uint32_t id;                 /* this node, 1..RAFT_MAX_ID */
	uint32_t election_tick;      /* followers campaign after [e, 2e) ticks of silence; default 10 */
	uint32_t heartbeat_tick;     /* leader heartbeats every h ticks; default 1 */
	bool pre_vote;               /* campaign with a pre-vote round first */
	bool check_quorum;           /* leader steps down without a majority's contact in e ticks */
	bool lease_read;             /* answer read_index from the lease (needs check_quorum) */
	uint32_t lease_drift_ticks;  /* clock-rate allowance subtracted from the lease; default 1 */
	uint32_t max_msg_entries;    /* entries per AppendEntries; default 256 */
	uint32_t max_msg_bytes;      /* payload bytes per AppendEntries; default 1 MiB */
	uint32_t max_inflight_msgs;  /* unacknowledged appends per follower; default 64 */
	uint64_t max_inflight_bytes; /* unacknowledged payload bytes per follower; default 16 MiB */
	uint64_t max_uncommitted_bytes; /* leader refuses proposals beyond; default 64 MiB */
	uint32_t max_entry_bytes;    /* largest entry accepted; default 1 MiB */
	uint32_t max_pending_reads;  /* queued read barriers; default 1024 */
	uint32_t max_msgs;           /* messages queued per Ready (more are dropped, safely); default 4096 */
	uint64_t seed;               /* for the randomized election timeout */
};

/* Fill cfg with the defaults above (id and seed 0, pre_vote and
 * check_quorum on, lease_read off). */
void raft_config_default(struct raft_config *cfg);

struct raft_ready {
	struct raft_hard_state hs;
	bool hs_changed;
	const struct raft_snapshot *snapshot;  /* to persist and install, or NULL */
	const struct raft_entry *entries;      /* to persist */
	size_t n_entries;
	const struct raft_entry *committed;    /* to apply */
	size_t n_committed;
	const struct raft_msg *msgs;           /* to send after persisting */
	size_t n_msgs;
	const struct raft_read_state *reads;
	size_t n_reads;
	bool async;    /* a leader's Ready that may leave before it is durable (above) */
};

struct raft_status {
	uint32_t id;
	uint32_t lead;       /* 0: unknown */
	uint8_t role;        /* enum raft_role */
	uint64_t term, vote, commit, applied;
	uint64_t first_index, last_index, last_term;
	uint64_t snap_index, snap_term;
	struct raft_conf conf;
	uint64_t conf_index; /* entry that set conf (or the snapshot index) */
	uint32_t transferee; /* leader transfer target, 0 if none */
	uint64_t msgs_dropped; /* outgoing messages dropped because the queue was full */
	uint32_t msgs_queued;  /* messages waiting for the next Ready */
};

struct raft;

int raft_new(struct raft **out, const struct raft_config *cfg);
void raft_free(struct raft *r);

/* Load durable state; once, before any other input.  snap may be NULL
 * (empty log, empty conf); ents continue the snapshot (ents[0].index ==
 * snap index + 1).  Data is copied. */
int raft_restore(struct raft *r, const struct raft_hard_state *hs,
                 const struct raft_snapshot *snap, const struct raft_entry *ents, size_t n);

void raft_tick(struct raft *r);
int raft_step(struct raft *r, const struct raft_msg *m);
/* Returns the new entry's index (> 0) or a negative code. */
int64_t raft_propose(struct raft *r, const void *data, size_t len);
int64_t raft_propose_conf(struct raft *r, enum raft_conf_op op, uint32_t node);
int raft_transfer_leader(struct raft *r, uint32_t to);
/* The host saw peer id start afresh (a new connection after a restart).
 * On a leader, forget what id matched and probe it again: a peer that cut
 * a torn tail at its restart may have lost entries it acknowledged (outside
 * Raft's model), and would otherwise never be caught up by this leader.
 * Returns 0 (nothing to do off a leader), -EINVAL for a bad id. */
int raft_peer_restarted(struct raft *r, uint32_t id);
/* Ask for a read barrier; its raft_read_state arrives in a later Ready. */
int raft_read_index(struct raft *r, uint64_t ctx);
/* Start an election now (tests, operators).  With check_quorum, peers
 * that started less than an election timeout ago ignore it (see LEASE in
 * raft.c). */
int raft_campaign(struct raft *r);

bool raft_ready(struct raft *r, struct raft_ready *rd);
void raft_advance(struct raft *r, const struct raft_ready *rd);
/* For a Ready with rd->async: sent and applied, its write not yet durable;
 * the host must copy rd.entries first (they are the raft's, and the log may
 * move on).  Report the write with raft_persisted(). */
void raft_advance_async(struct raft *r, const struct raft_ready *rd);
/* The writes handed out so far up to index (of term) are durable: a leader
 * of that term now counts its own copy of them.  Ignored otherwise (stale
 * news after a leader change is harmless). */
void raft_persisted(struct raft *r, uint64_t index, uint64_t term);

/* The state machine holds a durable snapshot of everything up to index
 * (<= applied): keep data (copied) to send to followers and drop the log
 * up to index.  len 0: the host keeps the data itself and fills in the
 * payload of the RAFT_MSG_SNAP messages it is handed (their snapshot has
 * the meta and len 0); the copy of an earlier or installed snapshot goes. */
int raft_compact(struct raft *r, uint64_t index, const void *data, size_t len);

void raft_status(const struct raft *r, struct raft_status *st);
/* On a leader, how far member id's log is known to match ours (its
 * Match index): a learner is worth promoting only once it is close to the
 * leader.  Returns 0, -EPERM off a leader, -ENOENT for a non-member. */
int raft_progress(const struct raft *r, uint32_t id, uint64_t *match);
/* Term of the entry at index: 0, or -ENOENT when compacted or beyond the log. */
int raft_term_at(const struct raft *r, uint64_t index, uint64_t *term);
/* The entry at index, or NULL; valid until the next raft_* call. */
const struct raft_entry *raft_entry_at(const struct raft *r, uint64_t index);
const struct raft_snapshot *raft_snapshot_get(const struct raft *r);

/* Encode/decode a configuration entry's payload (16 bytes). */
void raft_conf_encode(const struct raft_conf *c, uint8_t out[16]);
int raft_conf_decode(const uint8_t *data, size_t len, struct raft_conf *c);

const char *raft_role_name(int role);
const char *raft_msg_type_name(int type);

#endif
