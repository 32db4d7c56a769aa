/*
 * store/wal.h -- a crash-safe, append-only log of records in one directory,
 * group-committed by a thread of its own.
 *
 * What stands on it: the file: counter store now; the file: lock and
 * registry stores and the Raft node's log later.  A store keeps its state
 * in memory and makes every change durable by appending a record that
 * describes it; at start the log is replayed to rebuild the state.
 *
 *   DIR/lock      held with flock(LOCK_EX) while open: one process at a time
 *   DIR/log       the records: u32 crc32c | u32 n | payload[n], where the
 *                 checksum covers n and the payload (little-endian)
 *   DIR/log.tmp   a compaction being written (removed at open)
 *   DIR/cut       with mark_cut: a torn tail was cut (wal_tail_cut)
 *
 * Ordering and locking.  The log has one mutex, and it doubles as the
 * store's: a store takes it (wal_lock) around a change to its state and
 * the wal_append() that records the change, so the log's order is the
 * order the changes were applied in.  wal_append() only copies the record
 * into memory and returns its sequence number (1, 2, ...); the sync thread
 * writes everything pending with one write(2), calls fdatasync, and then
 * publishes the last sequence number it covered (wal_durable).  Records
 * arriving while an fsync runs wait for the next one, so the more
 * concurrent writers, the fewer fsyncs per record.  After each group (and
 * after a failure) it calls the synced hook, with the mutex held, so the
 * store can wake whoever waits for durability.
 *
 * Recovery.  A record that is cut short or fails its checksum, with no
 * good record anywhere after it, is a torn tail (a crash mid-write, which
 * may leave garbage or zeros): the file is truncated there.  A bad record
 * with a good one after it is damage in the middle: wal_open fails with
 * -EBADMSG rather than drop acknowledged records silently.  So does a good
 * record longer than max_record, and one the replay hook refuses.
 *
 * Compaction.  When the log has grown past compact_bytes and past twice
 * its last snapshot, the sync thread, instead of its next group write,
 * calls the snapshot hook under the mutex: the store writes records that
 * rebuild its whole present state (wal_record_put), which also covers the
 * records still pending.  The snapshot goes to log.tmp, is fdatasync'd,
 * renamed over log, and the directory fsync'd; a crash before the rename
 * leaves the old log whole, after it the new one.
 *
 * Failure.  A failed write or fdatasync makes the log refuse everything
 * after (wal_failed() returns -EIO, and durability never advances): after
 * a failed fsync the page cache's state is unknown, and the only safe way
 * back is a restart and a replay.
 *
 * Ownership: wal_open allocates the struct wal, wal_close frees it (after
 * the sync thread has written what was appended).  The hooks' ud is the
 * caller's.
 */
#ifndef DSYS_WAL_H
#define DSYS_WAL_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "base/buf.h"

struct wal;

struct wal_hooks {
	/* One record of the log at open, in order.  Returns 0, or a negative
	 * errno value to fail the open (-EBADMSG: the record makes no sense;
	 * the log names its byte offset). */
	int (*replay)(void *ud, const unsigned char *rec, size_t len);
	/* Compaction: with the mutex held, put the records that rebuild the
	 * present state into out (wal_record_put).  Returns 0 or -errno. */
	int (*snapshot)(void *ud, struct buf *out);
	/* After each group commit or failure, on the sync thread, mutex held. */
	void (*synced)(void *ud);
};

struct wal_options {
	uint32_t max_record;     /* a longer length field is damage (default 1 MiB) */
	uint64_t compact_bytes;  /* compact past this size; 0: never */
	bool mark_cut;           /* a torn tail cut at open is noted in DIR/cut first
	                            (fdatasync'd), kept until wal_tail_cut_clear */
	bool read_only;          /* replay only, for readers: DIR/lock shared (LOCK_SH),
	                            nothing created, cut, written or synced, no thread;
	                            a missing DIR or log is an empty one; wal_append*
	                            must not be called */
};

/* Open (creating DIR if need be), lock, replay and start the sync thread.
 * Returns 0, -EBUSY when another process holds DIR, -EBADMSG on damage,
 * or another negative errno value; err (may be NULL) then says what. */
int wal_open(const char *dir, const struct wal_options *o, const struct wal_hooks *h,
             void *ud, struct wal **out, char *err, size_t err_size);

/* Write what was appended, stop the thread, close the files, free. */
void wal_close(struct wal *w);

void wal_lock(struct wal *w);
void wal_unlock(struct wal *w);

/* With the mutex held: append one record made of the n parts (their bytes
 * concatenated) and return its sequence number.  Never fails: once the log
 * has failed the record is dropped (check wal_failed before changing). */
uint64_t wal_appendv(struct wal *w, const struct iovec *parts, int n);

/* With the mutex held: replace the whole log with recs (records framed by
 * wal_record_put) that rebuild the present state, covering everything
 * appended so far -- a compaction the store decides, as after a Raft
 * snapshot.  The sync thread writes recs and whatever is appended after
 * this call to log.tmp and renames it over log, as the snapshot hook's
 * compaction does; durability then covers every record appended before. */
void wal_rewrite(struct wal *w, const void *recs, size_t len);
/* The same, taking recs' memory instead of a copy (recs is left empty). */
void wal_rewrite_take(struct wal *w, struct buf *recs);

/* The sequence number of the last record appended (mutex held). */
uint64_t wal_appended(const struct wal *w);

/* The sequence number up to which records are on disk (any thread). */
uint64_t wal_durable(const struct wal *w);

/* 0, or -EIO once a write or sync failed (any thread). */
int wal_failed(const struct wal *w);

/* Once wal_failed: what failed, for the message an operator reads -- the
 * first error's -errno (-ENOSPC, -EIO, -EFBIG...) and the file it hit
 * (DIR/log, or DIR/log.tmp while compacting) copied into file.  Before a
 * failure: 0 and "".  Any thread. */
int wal_failure(const struct wal *w, char *file, size_t size);

/* Statistics, for logs and metrics (mutex held): records replayed at
 * open, and the log's size now. */
uint64_t wal_replayed(const struct wal *w);
uint64_t wal_bytes(const struct wal *w);

/* With mark_cut: true while DIR/cut says a torn tail was cut at some open
 * and the store has not yet cleared it.  A cut tail is normally records
 * never synced (a crash mid-write), but it may be records that were synced
 * and acknowledged (a log truncated by hand, a disk that lost them); a
 * replicated store that acknowledged them to peers must not act as if it
 * still had them until it has been caught up (dsys-raft node does so). */
bool wal_tail_cut(const struct wal *w);
/* Note in DIR/cut, durably, that the store may lack records it once had
 * for a reason of its own (why: one line), as if a tail were cut: a
 * member restarted empty in a running cluster.  0 or -errno. */
int wal_tail_cut_mark(struct wal *w, const char *why);
/* Forget the cut (unlink DIR/cut, sync the directory): 0 or -errno. */
int wal_tail_cut_clear(struct wal *w);

/* Frame one record (the parts concatenated) into b: for the snapshot hook. */
void wal_record_put(struct buf *b, const struct iovec *parts, int n);

/* CRC-32C (Castagnoli), as the log uses it. */
uint32_t wal_crc32c(const void *p, size_t n);
/* The same over a ‖ p, given crc = wal_crc32c(a): one checksum over parts
 * that are not contiguous, without copying them together. */
uint32_t wal_crc32c_more(uint32_t crc, const void *p, size_t n);

#endif
