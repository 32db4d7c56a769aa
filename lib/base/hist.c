/*
 * base/hist.c -- log-linear latency histogram (HdrHistogram's layout).
 *
 * Layout.  Bucket i < 256 holds exactly the value i.  Above that, bucket
 * i holds [sub << shift, ((sub + 1) << shift) - 1] with shift = i/128 - 1
 * and sub = 128 + i%128: every power of two [2^e, 2^(e+1)) is cut into 128
 * buckets of width 2^(e-7).  The width of a bucket is at most 1/128 of its
 * lowest value, and that is the whole error argument: a value reported as
 * the highest value of the bucket holding the true value x is in
 * [x, x + x/128].  hist_bucket_index() (inline, in the header) is the
 * inverse of hist_bucket_lowest(): one clz, one shift, one add.
 *
 * Invariants (checked where cheap):
 *   - count == sum of counts[], overflow <= counts[top];
 *   - min <= max whenever count > 0, and every recorded value's bucket is
 *     between min's and max's (or top, for overflowed values);
 *   - max_value == hist_bucket_highest(top), so "above max_value" and
 *     "beyond the top bucket" are the same thing.
 *
 * Coordinated omission.  hist_record_corrected() back-fills the arithmetic
 * progression v - I, v - 2I, ... down to I, exactly the samples
 * HdrHistogram's recordValueWithExpectedInterval adds one by one, but walks
 * it a bucket at a time: the members falling into one bucket are counted
 * with one division, and their sum in closed form, so a stall of an hour
 * at a 1 us interval costs a few thousand steps, not 3.6e9.
 *
 * Percentile rows follow HdrHistogram's PercentileIterator: levels advance
 * by 100 / (ticks_per_half * 2^(floor(log2(100 / (100 - level))) + 1)), so
 * each halving of the distance to 100% gets ticks_per_half rows, and the
 * walk ends with a row at 100% once the last recorded bucket is reached.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/hist.h"
#include "base/invariant.h"

uint64_t hist_bucket_lowest(uint32_t i)
{
	if (i < 2 * HIST_SUB_HALF)
		return i;
	unsigned shift = (i >> HIST_SUB_BITS) - 1;
	uint64_t sub = (i & (HIST_SUB_HALF - 1)) | HIST_SUB_HALF;
	return sub << shift;
}

uint64_t hist_bucket_highest(uint32_t i)
{
	if (i < 2 * HIST_SUB_HALF)
		return i;
	unsigned shift = (i >> HIST_SUB_BITS) - 1;
	return hist_bucket_lowest(i) + ((uint64_t)1 << shift) - 1;
}

struct hist *hist_new(uint64_t max_value)
{
	if (max_value < 1 || max_value > ((uint64_t)1 << 62)) {
		errno = EINVAL;
		return NULL;
	}
	uint32_t top = hist_bucket_index(max_value);
	struct hist *h = calloc(1, sizeof(*h) + ((size_t)top + 1) * sizeof(uint64_t));
	if (!h) {
		errno = ENOMEM;
		return NULL;
	}
	h->top = top;
	h->nbuckets = top + 1;
	h->max_value = hist_bucket_highest(top);
	h->min = UINT64_MAX;
	INVARIANT(hist_bucket_lowest(top) <= max_value && max_value <= h->max_value);
	return h;
}

void hist_free(struct hist *h)
{
	free(h);
}

void hist_reset(struct hist *h)
{
	memset(h->counts, 0, (size_t)h->nbuckets * sizeof(uint64_t));
	h->count = 0;
	h->sum = 0;
	h->min = UINT64_MAX;
	h->max = 0;
	h->overflow = 0;
}

/* k * (k + 1) / 2 without losing the low bits (wraps mod 2^64 like sum). */
static uint64_t triangle(uint64_t k)
{
	return (k % 2 == 0) ? (k / 2) * (k + 1) : k * ((k + 1) / 2);
}

void hist_record_corrected(struct hist *h, uint64_t v, uint64_t interval)
{
	hist_record(h, v);
	if (interval == 0 || v / interval < 2)
		return;
	/* Back-fill last, last - I, ..., first with first in [I, 2I). */
	uint64_t last = v - interval;
	uint64_t k = (last - interval) / interval; /* members above first */
	uint64_t first = last - k * interval;
	uint64_t total = k + 1;
	INVARIANT(first >= interval && first < 2 * interval);

	h->count += total;
	h->sum += total * first + interval * triangle(k);
	if (first < h->min)
		h->min = first;

	uint64_t cur = first;
	uint64_t left = total;
	while (left > 0) {
		uint32_t i = hist_bucket_index(cur);
		uint64_t n;
		if (i > h->top) {
			n = left;
			h->counts[h->top] += n;
			h->overflow += n;
		} else {
			uint64_t hi = hist_bucket_highest(i);
			if (hi > last)
				hi = last;
			n = (hi - cur) / interval + 1;
			h->counts[i] += n;
		}
		INVARIANT(n >= 1 && n <= left);
		left -= n;
		if (left > 0)
			cur += n * interval;
	}
}

int hist_merge(struct hist *dst, const struct hist *src)
{
	uint64_t beyond = 0;
	for (uint32_t i = 0; i < src->nbuckets; i++) {
		uint64_t c = src->counts[i];
		if (c == 0)
			continue;
		if (i <= dst->top) {
			dst->counts[i] += c;
		} else {
			dst->counts[dst->top] += c;
			beyond += c;
		}
	}
	/* src's own overflow sits in src's top bucket: if that bucket fell
	 * beyond dst's range it is already in beyond. */
	if (src->top > dst->top)
		beyond -= src->overflow;
	dst->overflow += src->overflow + beyond;
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
	return 0;
}

uint64_t hist_count(const struct hist *h) { return h->count; }
uint64_t hist_overflow(const struct hist *h) { return h->overflow; }
uint64_t hist_min(const struct hist *h) { return h->count ? h->min : 0; }
uint64_t hist_max(const struct hist *h) { return h->count ? h->max : 0; }

double hist_mean(const struct hist *h)
{
	return h->count ? (double)h->sum / (double)h->count : 0.0;
}

double hist_stdev(const struct hist *h)
{
	if (h->count == 0)
		return 0.0;
	double mean = hist_mean(h), acc = 0.0;
	for (uint32_t i = 0; i < h->nbuckets; i++) {
		if (h->counts[i] == 0)
			continue;
		double lo = (double)hist_bucket_lowest(i);
		double hi = (double)hist_bucket_highest(i);
		double d = (lo + hi) / 2.0 - mean;
		acc += d * d * (double)h->counts[i];
	}
	return sqrt(acc / (double)h->count);
}

/* Nearest rank of percentile p (0 < p < 100) among n values: ceil(p/100*n),
 * in 1..n.  A hair of tolerance keeps 99.9% of 1000 at rank 999 despite
 * 99.9 not being exact in binary. */
static uint64_t rank_of(double p, uint64_t n)
{
	double r = p / 100.0 * (double)n;
	r -= r * 1e-15;
	uint64_t rank = (uint64_t)r;
	if ((double)rank < r)
		rank++;
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return rank;
}

/* The reported value of bucket i: its highest value, but never above the
 * exact max. */
static uint64_t bucket_value(const struct hist *h, uint32_t i)
{
	uint64_t v = hist_bucket_highest(i);
	return v < h->max ? v : h->max;
}

uint64_t hist_percentile(const struct hist *h, double p)
{
	if (h->count == 0)
		return 0;
	if (!(p > 0.0))
		return h->min;
	if (p >= 100.0)
		return h->max;
	uint64_t rank = rank_of(p, h->count), cum = 0;
	for (uint32_t i = 0; i < h->nbuckets; i++) {
		cum += h->counts[i];
		if (cum >= rank)
			return bucket_value(h, i);
	}
	INVARIANT_MSG(0, "bucket counts add up to less than count");
	return h->max;
}

void hist_iter_init(struct hist_iter *it, const struct hist *h, unsigned ticks_per_half)
{
	memset(it, 0, sizeof(*it));
	it->h = h;
	it->ticks_per_half = ticks_per_half ? ticks_per_half : 5;
	it->level = 0.0;
	it->bucket = 0;
	it->cum = h->counts[0];
	it->done = h->count == 0;
}

bool hist_iter_next(struct hist_iter *it, struct hist_row *row)
{
	const struct hist *h = it->h;
	if (it->done)
		return false;
	uint64_t n = h->count;
	if (it->level >= 100.0) {
		/* The closing row: 100%, the exact max, everything counted. */
		row->value = h->max;
		row->percentile = 1.0;
		row->total_count = n;
		row->inverse = INFINITY;
		it->done = true;
		return true;
	}
	uint64_t rank = rank_of(it->level, n);
	while (it->cum < rank) {
		INVARIANT(it->bucket + 1 < h->nbuckets);
		it->bucket++;
		it->cum += h->counts[it->bucket];
	}
	row->value = it->level > 0.0 ? bucket_value(h, it->bucket) : h->min;
	row->percentile = it->level / 100.0;
	row->total_count = it->cum;
	row->inverse = 1.0 / (1.0 - row->percentile);

	if (it->cum >= n) {
		it->level = 100.0;
	} else {
		double halvings = floor(log2(100.0 / (100.0 - it->level)));
		double ticks = (double)it->ticks_per_half * exp2(halvings + 1.0);
		it->level += 100.0 / ticks;
	}
	return true;
}

void hist_render_percentiles(const struct hist *h, struct buf *out,
			     unsigned ticks_per_half, double scale)
{
	struct hist_iter it;
	struct hist_row row;
	if (!(scale > 0.0))
		scale = 1.0;
	buf_printf(out, "%12s %14s %10s %14s\n\n",
		   "Value", "Percentile", "TotalCount", "1/(1-Percentile)");
	hist_iter_init(&it, h, ticks_per_half);
	while (hist_iter_next(&it, &row)) {
		if (row.percentile < 1.0)
			buf_printf(out, "%12.3f %2.12f %10llu %14.2f\n",
				   (double)row.value / scale, row.percentile,
				   (unsigned long long)row.total_count, row.inverse);
		else
			buf_printf(out, "%12.3f %2.12f %10llu\n",
				   (double)row.value / scale, row.percentile,
				   (unsigned long long)row.total_count);
	}
	buf_printf(out, "#[Mean    = %12.3f, StdDeviation   = %12.3f]\n",
		   hist_mean(h) / scale, hist_stdev(h) / scale);
	buf_printf(out, "#[Max     = %12.3f, Total count    = %12llu]\n",
		   (double)hist_max(h) / scale, (unsigned long long)h->count);
	buf_printf(out, "#[Buckets = %12u, SubBuckets     = %12u]\n",
		   h->nbuckets / HIST_SUB_HALF, 2 * HIST_SUB_HALF);
}
