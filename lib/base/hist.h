/*
 * base/hist.h -- a mergeable latency histogram with bounded relative error.
 *
 * HdrHistogram's log-linear layout with 256 sub-buckets per power of two:
 * values 0..255 each have a bucket of their own (exact); above that, every
 * power-of-two range [2^e, 2^(e+1)) is split into 128 equal buckets of width
 * 2^(e-7).  A bucket is therefore never wider than 1/128 of its lowest value,
 * so any value read back from the histogram is within 0.78% (< 1%) of the
 * true one, whatever the magnitude.
 *
 * Units.  Values are plain uint64 in a unit the caller picks; the relative
 * error does not depend on it.  dsys-bench records MICROSECONDS
 * (HIST_MAX_US_1H covers 1 us .. 1 h in 3287 buckets, 26 KiB).  Nanoseconds
 * work just as well (HIST_MAX_NS_1H: 4562 buckets, 36 KiB), with the same
 * relative error; values below 256 of the unit are recorded exactly.
 *
 * Memory is fixed at hist_new(): recording never allocates.  hist_record()
 * is inline: a clz, a shift, an add, and the min/max/sum bookkeeping.
 * max_value is rounded up to the highest value of its bucket.  Values above
 * it are recorded in the top bucket and counted in hist_overflow(); min,
 * max, mean and sum still see the true value.
 *
 * Percentiles (nearest rank).  hist_percentile(h, p) with p in [0, 100]
 * takes rank = ceil(p/100 * count) (at least 1), finds the bucket holding
 * the rank-th smallest recorded value, and returns that bucket's HIGHEST
 * equivalent value (as HdrHistogram does), clamped to the exact maximum; so
 * for values within range the result is >= the exact nearest-rank
 * percentile and at most 1/128 above it.  p = 0 returns the exact min,
 * p = 100 the exact max.  min, max and mean (sum/count) are exact; stdev is
 * computed from bucket midpoints around the exact mean (bucket-width
 * accurate).
 *
 * NOT thread-safe.  Keep one histogram per thread (per libuv loop), and
 * hist_merge() them into one at the end, or at each reporting interval on
 * the thread that owns the source (hist_merge into a mutex-guarded total,
 * then hist_reset the source).
 *
 * Ownership: hist_new() returns a histogram the caller owns; hist_free()
 * frees it (NULL is a no-op).  An iterator borrows its histogram, which must
 * not change while iterating.
 */
#ifndef DSYS_HIST_H
#define DSYS_HIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;

#define HIST_SUB_BITS   7                       /* 2^7 linear buckets per half range */
#define HIST_SUB_HALF   (1u << HIST_SUB_BITS)   /* 128 */
#define HIST_MAX_US_1H  3600000000ULL           /* one hour in microseconds */
#define HIST_MAX_NS_1H  3600000000000ULL        /* one hour in nanoseconds */

struct hist {
	uint64_t max_value;   /* highest trackable value; larger ones clamp here */
	uint32_t nbuckets;    /* length of counts[] */
	uint32_t top;         /* index of max_value's bucket (nbuckets - 1) */
	uint64_t count;       /* values recorded (overflowed ones included) */
	uint64_t sum;         /* of true values; wraps only past 2^64 */
	uint64_t min;         /* exact; UINT64_MAX while empty */
	uint64_t max;         /* exact; 0 while empty */
	uint64_t overflow;    /* values above max_value */
	uint64_t counts[];    /* per bucket, see hist_bucket_index() */
};

/* A new empty histogram tracking 0..max_value (max_value in 1..2^62),
 * or NULL (errno EINVAL for a bad max_value, ENOMEM). */
struct hist *hist_new(uint64_t max_value);
void hist_free(struct hist *h);
void hist_reset(struct hist *h);              /* empty again, same range */

/* Bucket of v: identity below 256, then 128 buckets per power of two. */
static inline uint32_t hist_bucket_index(uint64_t v)
{
	int shift = 56 - __builtin_clzll(v | 1);  /* log2(v) - HIST_SUB_BITS */
	shift &= ~(shift >> 31);                  /* max(shift, 0) */
	return ((uint32_t)shift << HIST_SUB_BITS) + (uint32_t)(v >> shift);
}

/* Lowest and highest value that fall into bucket i. */
uint64_t hist_bucket_lowest(uint32_t i);
uint64_t hist_bucket_highest(uint32_t i);

static inline void hist_record_n(struct hist *h, uint64_t v, uint64_t n)
{
	if (n == 0)
		return;
	uint32_t i = hist_bucket_index(v);
	if (__builtin_expect(i > h->top, 0)) {
		i = h->top;
		h->overflow += n;
	}
	h->counts[i] += n;
	h->count += n;
	h->sum += v * n;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

static inline void hist_record(struct hist *h, uint64_t v)
{
	hist_record_n(h, v, 1);
}

/* Record v, then back-fill the samples a stalled closed-loop client never
 * sent, as HdrHistogram's recordValueWithExpectedInterval does: when v >
 * expected_interval, also v - k*expected_interval for every k >= 1 that
 * leaves a value >= expected_interval.  Done per bucket, not per sample, so
 * the cost is bounded by the bucket count even for a 1 h stall at 1 us.
 * expected_interval 0 records v alone.  (dsys-bench may instead measure
 * from each request's scheduled send time and record plainly.) */
void hist_record_corrected(struct hist *h, uint64_t v, uint64_t expected_interval);

/* dst += src.  Ranges may differ: src buckets beyond dst's range clamp to
 * dst's top and count as overflow.  Returns 0. */
int hist_merge(struct hist *dst, const struct hist *src);

uint64_t hist_count(const struct hist *h);
uint64_t hist_overflow(const struct hist *h);
uint64_t hist_min(const struct hist *h);      /* 0 when empty */
uint64_t hist_max(const struct hist *h);      /* 0 when empty */
double hist_mean(const struct hist *h);       /* 0 when empty */
double hist_stdev(const struct hist *h);      /* population stdev; 0 when empty */
uint64_t hist_percentile(const struct hist *h, double p); /* 0 when empty */

/*
 * Percentile rows, for printing a distribution the way HdrHistogram's
 * outputPercentileDistribution and wrk2's --latency do: rows at percentile
 * levels 0, 10, ..., 50, 55, ..., 75, 77.5, ... (ticks_per_half rows per
 * halving of the distance to 100%; 5 is HdrHistogram's default), ending with
 * a row at 100% holding the max.  Several rows may share a value.
 *
 *     struct hist_iter it;
 *     struct hist_row row;
 *     hist_iter_init(&it, h, 5);
 *     while (hist_iter_next(&it, &row))
 *         printf("%" PRIu64 " %f %" PRIu64 " %.2f\n", row.value,
 *                row.percentile, row.total_count, row.inverse);
 */
struct hist_row {
	uint64_t value;        /* hist_percentile() at this level */
	double percentile;     /* level as a fraction, 0.0 .. 1.0 */
	uint64_t total_count;  /* values recorded up to value's bucket, inclusive */
	double inverse;        /* 1/(1-percentile); INFINITY at 1.0 */
};

struct hist_iter {
	const struct hist *h;
	unsigned ticks_per_half;
	double level;          /* next percentile level, 0..100 */
	uint32_t bucket;       /* current bucket */
	uint64_t cum;          /* count up to and including bucket */
	bool done;
};

void hist_iter_init(struct hist_iter *it, const struct hist *h, unsigned ticks_per_half);
bool hist_iter_next(struct hist_iter *it, struct hist_row *row); /* false at the end */

/* Append HdrHistogram's text percentile table (header, rows, the
 * #[Mean ...] / #[Max ...] footer) to out, values divided by scale (e.g.
 * scale 1000 prints microsecond values as milliseconds). */
void hist_render_percentiles(const struct hist *h, struct buf *out,
			     unsigned ticks_per_half, double scale);

#endif
