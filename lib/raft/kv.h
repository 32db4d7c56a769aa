/*
 * raft/kv.h -- the replicated state machine: etcd's MVCC key-value model,
 * answering etcd's v3 JSON requests.
 *
 * What it keeps (etcd's data model, mvcc/kvstore): one global revision,
 * starting at 1 for an empty store and bumped once by every request that
 * changes something (a put, a delete that deletes, a txn however many
 * writes it makes, a revoke that deletes keys); per key its history of
 * revisions, each with create_revision, mod_revision, version (1 at
 * creation, +1 per put, a delete ends the generation) and lease; leases
 * (id, granted TTL); the compacted revision, below which history is gone.
 *
 * Requests are the bodies etcd's gateway takes (/v3/kv/range etc.), or
 * for a put the binary form below (kv_put_encode), and
 * answers are the bodies the gateway gives: base64 keys and values, int64 as
 * strings, zero values left out, errors as {"error","message","code"}
 * with etcd's messages word for word.  kv_exec is deterministic -- no
 * clock, no randomness, no host state: every replica that applies the
 * same commands in the same order holds the same store and writes the
 * same answers (bar the header's member_id and raft_term).  That is what
 * lets the node apply a committed entry on every member and answer the
 * client from whichever member proposed it.
 *
 * What kv_exec does not do, because it needs a clock: lease expiry and
 * remaining TTLs.  Those belong to the leader (kv_lease.deadline_ms, set
 * and read by the node, never replicated; etcd does the same).
 *
 * Ownership: kv_new allocates, kv_free frees; every key and value is
 * copied in.  Thread-safety: none.
 */
#ifndef DSYS_RAFT_KV_H
#define DSYS_RAFT_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

enum kv_op {
	KV_OP_RANGE = 1,
	KV_OP_PUT,
	KV_OP_DELETE,
	KV_OP_TXN,
	KV_OP_COMPACT,
	KV_OP_LEASE_GRANT,
	KV_OP_LEASE_REVOKE,
	KV_OP_LEASE_LEASES,
	KV_OP_MAX = KV_OP_LEASE_LEASES
};

/* gRPC status codes etcd answers with */
enum {
	KV_CODE_INVALID = 3, KV_CODE_DEADLINE = 4, KV_CODE_NOT_FOUND = 5, KV_CODE_RESOURCE = 8,
	KV_CODE_PRECONDITION = 9, KV_CODE_OUT_OF_RANGE = 11, KV_CODE_UNAVAILABLE = 14,
};

#define KV_LEASE_MIN_TTL 2     /* seconds: the default of kv_limits.min_lease_ttl */

struct kv_header {
	uint64_t cluster_id, member_id, raft_term;
};

struct kv_limits {
	uint64_t max_range_bytes;  /* a range whose answer would be larger is refused (code 8); 0: none */
	int64_t min_lease_ttl;     /* seconds; a shorter grant is raised to it (etcd: 1.5 election
	                              timeouts, rounded up); 0: KV_LEASE_MIN_TTL */
	uint64_t quota_bytes;      /* past this kv_bytes, writes that add data are refused; 0: none */
};

struct kv_lease {
	int64_t id;
	int64_t ttl;               /* granted, seconds */
	uint64_t deadline_ms;      /* the leader's, not replicated: 0 unknown */
};

struct kv;

struct kv *kv_new(const struct kv_limits *lim);   /* lim may be NULL */
void kv_free(struct kv *kv);

int64_t kv_revision(const struct kv *kv);
int64_t kv_compact_revision(const struct kv *kv);
size_t kv_keys(const struct kv *kv);               /* keys with any history */
/* The store's size as the quota counts it: per kept revision its key,
 * its value and 48 bytes.  The same on every replica. */
uint64_t kv_bytes(const struct kv *kv);
/* etcd's NOSPACE alarm: kv_bytes is past kv_limits.quota_bytes.  While it
 * is, put, a txn with a put and a lease grant fail with code 8
 * "etcdserver: mvcc: database space exceeded"; compaction clears it. */
bool kv_alarm_nospace(const struct kv *kv);

/* Does op change the store (so it must go through the log)? */
bool kv_op_writes(enum kv_op op);

/*
 * Execute one request (body: the JSON etcd's gateway takes) and append
 * the answer's JSON to out.  aux is the lease id a grant uses when the
 * request names none (the proposer picks it, so replicas agree).  Returns
 * the HTTP status (200, or 4xx/5xx with an error body).
 */
int kv_exec(struct kv *kv, enum kv_op op, uint64_t aux, const char *body, size_t len,
            const struct kv_header *h, struct buf *out);

/*
 * A put in the log's compact binary form: what a gRPC Put becomes, so no
 * member parses JSON or decodes base64 to apply it (under `etcdctl check
 * perf` those were most of every member's CPU).  kv_exec takes it as
 * KV_OP_PUT's body beside the gateway JSON, told apart by the first byte,
 * KV_PUT_BIN, which no JSON text starts with (so log entries written as
 * JSON, in WALs from before, still apply).  All integers little-endian:
 *   KV_PUT_BIN u8 | flags u8 (KV_PUT_PREV_KV, KV_PUT_IGNORE_VALUE,
 *   KV_PUT_IGNORE_LEASE) | lease i64 | key length u32 | key | value (the
 *   rest)
 * Its answer is the JSON one's, byte for byte.  kv_check does not take
 * it: a gateway client sends JSON, and only the node builds this form.
 */
#define KV_PUT_BIN 0x00
#define KV_PUT_BIN_HEAD 14   /* marker, flags, lease, key length */
enum { KV_PUT_PREV_KV = 1, KV_PUT_IGNORE_VALUE = 2, KV_PUT_IGNORE_LEASE = 4 };

struct kv_put {
	const char *key, *value;   /* borrowed */
	size_t klen, vlen;
	int64_t lease;
	unsigned flags;            /* KV_PUT_* */
};

/* Append p's binary form to out. */
void kv_put_encode(struct buf *out, const struct kv_put *p);
/* Read a binary put (body starts with KV_PUT_BIN): 0, or -EINVAL when it
 * is cut short or has unknown flags; p points into body. */
int kv_put_decode(const char *body, size_t len, struct kv_put *p);
/* What etcd's API layer refuses in p before proposing it (ignore_value
 * with a value, ignore_lease with a lease): etcd's message, or NULL.  The
 * gRPC front end asks it of a put it sends as the binary form; kv_check
 * asks the same of a gateway put and of each put in a txn. */
const char *kv_put_refusal(const struct kv_put *p);

/* Parse and check a request without executing it: 0, or the HTTP status
 * of the error body appended to out (bad JSON, a missing key, a put
 * kv_put_refusal refuses...). */
int kv_check(enum kv_op op, const char *body, size_t len, struct buf *out);

/* Answers the node writes itself (they need the leader's clock). */
void kv_put_header(struct buf *out, const struct kv *kv, const struct kv_header *h, bool with_revision);
int kv_put_error(struct buf *out, int code, const char *message);   /* returns the HTTP status */
int kv_http_status(int code);

/*
 * Watch: what /v3/watch's create_request asks for, and the events of the
 * store's history that match it.  kv_watch_parse reads the request (0, or
 * the HTTP status of an error body appended to err).  kv_watch_events
 * appends to out the JSON objects of the events (etcd's shape: the kv,
 * "type":"DELETE" for a delete, prev_kv when asked) with mod_revision >=
 * w->from, oldest revision first, comma-separated, ending at a revision
 * boundary once max is passed; it returns how many, and sets *next to the
 * revision to ask from next time.  -ESTALE when w->from was compacted
 * away (kv_compact_revision says to where).
 */
struct kv_watch {
	struct buf key, end;
	int64_t from;             /* 0: from the next revision on */
	bool prev_kv;
	bool progress_notify;     /* the watcher wants progress lines while idle */
};
int kv_watch_parse(const char *body, size_t len, struct kv_watch *w, struct buf *err);
long kv_watch_events(const struct kv *kv, const struct kv_watch *w, size_t max, struct buf *out, int64_t *next);
void kv_watch_free(struct kv_watch *w);

/* Leases, for the leader's expiry and keepalives. */
struct kv_lease *kv_lease_get(struct kv *kv, int64_t id);
size_t kv_lease_count(const struct kv *kv);
struct kv_lease *kv_lease_at(struct kv *kv, size_t i);
/* Keys attached to a lease, base64 JSON strings appended to out
 * comma-separated (for timetolive's "keys"). */
void kv_lease_keys_json(const struct kv *kv, int64_t id, struct buf *out);

/* Snapshots, for log compaction and InstallSnapshot: the whole store
 * (revisions, history above the compacted revision, leases without their
 * deadlines) appended to out; kv_restore replaces kv's contents with a
 * snapshot's, or returns -EINVAL (leaving kv as it was) for bytes that are
 * not one. */
void kv_snapshot(struct kv *kv, struct buf *out);
int kv_restore(struct kv *kv, const void *data, size_t len);

/*
 * The same snapshot taken in slices, so that a large store never holds
 * its owner's loop for long: kv_snap_begin fixes the revision (the store
 * as it is now); each kv_snap_step appends to out about budget bytes
 * (after a first pass of steps that only count), and returns true once
 * the whole snapshot -- the bytes kv_snapshot would have written at
 * kv_snap_begin -- is in out.  Between steps the store takes requests as
 * usual: what they write is past the snapshot's revision and left out.
 * A compaction meanwhile changes kv_compact_revision and kv_bytes at
 * once, as it always does, but frees nothing until kv_snap_end (which
 * may come before the last step: the snapshot is then dropped).  One at
 * a time; kv_free ends one being taken, kv_restore wants it ended first.
 * NULL: no memory.
 */
struct kv_snap;
struct kv_snap *kv_snap_begin(struct kv *kv);
bool kv_snap_step(struct kv *kv, struct kv_snap *s, struct buf *out, size_t budget);
size_t kv_snap_slices(const struct kv_snap *s);
void kv_snap_end(struct kv *kv, struct kv_snap *s);

/* An int64 member of a JSON request (string or exact number); for the
 * node's own requests (keepalive, timetolive).  0, -ENOENT or -EINVAL. */
int kv_json_i64(const char *body, size_t len, const char *key, int64_t *out);
/* A bool member: true only when present and true. */
bool kv_json_bool(const char *body, size_t len, const char *key);

#endif
