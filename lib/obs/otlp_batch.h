/*
 * obs/otlp_batch.h -- OpenTelemetry's batch processor: spans or log
 * records queued by any thread, exported in batches by a thread of its
 * own, so the program that makes them never waits for a collector.
 *
 *   struct otlp_batch_options o;
 *   otlp_batch_options_from_env(&o);          // OTEL_BSP_*
 *   struct otlp_batch *b = otlp_batch_new(&cfg, OTLP_SIGNAL_TRACES, &o);
 *   otlp_batch_add(b, &item);                 // any thread; never blocks
 *   ...
 *   otlp_batch_free(b);                       // exports what is left
 *
 * Bounds, as the spec's batch span processor has them: a batch leaves
 * when it holds max_batch items (OTEL_BSP_MAX_EXPORT_BATCH_SIZE, 512) or
 * when its oldest item has waited delay_ms (OTEL_BSP_SCHEDULE_DELAY,
 * 5000); at most max_queue items (OTEL_BSP_MAX_QUEUE_SIZE, 2048) wait,
 * and an item past that is dropped and counted, never blocked on.  One
 * export (retries included, see obs/otlp.h) takes at most the
 * config's timeout; OTEL_BSP_EXPORT_TIMEOUT, when set, replaces it.
 *
 * Items are kept encoded (in cfg->encoding) as requests of one item
 * each; a batch is their concatenation (protobuf) or merge (JSON), see
 * obs/otlp_codec.h.
 *
 * Keeping.  By default a batch that could not be exported is dropped
 * (counted in failed).  With keep set, it stays at the head of the queue
 * and is tried again after a backoff (100 ms doubling to 5 s), so nothing
 * is lost while the receiver is down -- the collector's forwarder, which
 * also spools what is queued to disk.  With an exported hook, the batch
 * thread calls it after each batch is taken, with no lock held, and the
 * hook must call otlp_batch_consume(b, n) to remove the n items (so a
 * caller can record the acknowledgement and the removal under its own
 * lock, in one step); without a hook they are removed at once.
 *
 * Threads: otlp_batch_add*, _consume, _stats, _snapshot from any thread.
 * otlp_batch_free from one, once.  Ownership: the batch copies what is
 * added; otlp_batch_free frees everything.
 */
#ifndef DSYS_OTLP_BATCH_H
#define DSYS_OTLP_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "obs/otlp.h"
#include "obs/otlp_codec.h"

struct otlp_batch;

struct otlp_batch_options {
	size_t max_queue;        /* items waiting, at most */
	size_t max_batch;        /* items in one export, at most */
	long delay_ms;           /* the longest an item waits for a batch to fill */
	long export_timeout_ms;  /* 0: the config's timeout */
	bool keep;               /* keep and retry failed batches */
	void (*exported)(void *ud, struct otlp_batch *b, size_t n);
	void *ud;
};

struct otlp_batch_stats {
	uint64_t queued;         /* items waiting now */
	uint64_t exported;       /* items a receiver took */
	uint64_t dropped;        /* items refused because the queue was full */
	uint64_t failed;         /* items lost with a failed batch (keep unset) */
	uint64_t batches;        /* exports that succeeded */
	uint64_t errors;         /* exports that failed */
};

/* The defaults above, then OTEL_BSP_*; a bad value is reported through
 * err (returns -EINVAL) and its default kept. */
int otlp_batch_options_from_env(struct otlp_batch_options *o, char *err, size_t errlen);

struct otlp_batch *otlp_batch_new(const struct otlp_config *cfg, enum otlp_signal sig,
                                  const struct otlp_batch_options *o);

/* Queue one item (encoded now) or one request of one item already
 * encoded in cfg->encoding.  0, or -ENOBUFS when the queue is full (the
 * item is dropped and counted), or -EINVAL for JSON not of the form
 * otlp_codec_encode writes. */
int otlp_batch_add(struct otlp_batch *b, const struct otlp_item *it);
int otlp_batch_add_encoded(struct otlp_batch *b, const void *p, size_t n);

/* Remove the n oldest items (from an exported hook). */
void otlp_batch_consume(struct otlp_batch *b, size_t n);

/* Each waiting item in order, under the batch's lock (for a spool's
 * compaction); cb must not call into the batch. */
void otlp_batch_snapshot(struct otlp_batch *b, void (*cb)(void *ud, const void *p, size_t n), void *ud);

void otlp_batch_stats(struct otlp_batch *b, struct otlp_batch_stats *s);

/* Wait until the queue is empty or timeout_ms passed; 0 or -ETIMEDOUT. */
int otlp_batch_flush(struct otlp_batch *b, long timeout_ms);

/* Export what is queued (bounded by one export timeout), stop, free.
 * NULL is a no-op. */
void otlp_batch_free(struct otlp_batch *b);

#endif
