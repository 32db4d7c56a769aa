/*
 * test_hist.c -- the histogram keeps its promises: every percentile within
 * 1% of the exact nearest-rank value (computed by sorting the samples),
 * min and max exact, merge equal to recording into one, corrected
 * recording equal to HdrHistogram's one-by-one back-fill, overflow counted.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/hist.h"
#include "tap.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng_next(void)
{
	uint64_t x = rng_state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return x * 0x2545f4914f6cdd1dULL;
}

static double rng_unit(void) /* (0, 1] */
{
	return ((double)(rng_next() >> 11) + 1.0) / 9007199254740992.0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The exact nearest-rank percentile of sorted samples. */
static uint64_t exact_percentile(const uint64_t *s, size_t n, double p)
{
	if (p <= 0.0)
		return s[0];
	double r = p / 100.0 * (double)n;
	size_t rank = (size_t)r;
	if ((double)rank < r)
		rank++;
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return s[rank - 1];
}

static const double PCTS[] = {0, 0.1, 1, 5, 10, 25, 33.3, 50, 66.6, 75, 90,
			      95, 99, 99.5, 99.9, 99.99, 99.999, 100};

/* Records samples, sorts them, and checks every percentile, min, max, mean. */
static void check_distribution(const char *what, uint64_t *s, size_t n)
{
	struct hist *h = hist_new(HIST_MAX_US_1H);
	for (size_t i = 0; i < n; i++)
		hist_record(h, s[i]);
	long double sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += s[i];
	qsort(s, n, sizeof(*s), cmp_u64);

	int bad = 0;
	double worst = 0;
	for (size_t k = 0; k < sizeof(PCTS) / sizeof(PCTS[0]); k++) {
		uint64_t want = exact_percentile(s, n, PCTS[k]);
		uint64_t got = hist_percentile(h, PCTS[k]);
		double rel = want ? fabs((double)got - (double)want) / (double)want : (double)got;
		if (rel > worst)
			worst = rel;
		if (rel > 0.01 || got < want) {
			bad++;
			diag("%s p%g: got %llu, exact %llu", what, PCTS[k],
			     (unsigned long long)got, (unsigned long long)want);
		}
	}
	ok(bad == 0, "%s: every percentile within 1%% of exact, never below (worst %.4f%%)",
	   what, worst * 100);
	is_int(hist_min(h), s[0], "%s: min is exact", what);
	is_int(hist_max(h), s[n - 1], "%s: max is exact", what);
	is_int(hist_count(h), n, "%s: count", what);
	ok(fabs(hist_mean(h) - (double)(sum / n)) <= 1e-9 * (double)(sum / n) + 1e-9,
	   "%s: mean is exact (%f)", what, hist_mean(h));
	hist_free(h);
}

static void test_layout(void)
{
	int bad = 0;
	for (uint32_t i = 0; i + 1 < 5000; i++) {
		if (hist_bucket_highest(i) + 1 != hist_bucket_lowest(i + 1))
			bad++;
		if (hist_bucket_index(hist_bucket_lowest(i)) != i ||
		    hist_bucket_index(hist_bucket_highest(i)) != i)
			bad++;
		uint64_t lo = hist_bucket_lowest(i), w = hist_bucket_highest(i) - lo + 1;
		if (lo >= 256 && w * 128 > lo)
			bad++;
		if (lo < 256 && w != 1)
			bad++;
	}
	ok(bad == 0, "buckets tile the number line, each at most 1/128 of its value wide");
	is_int(hist_bucket_index(0), 0, "0 has bucket 0");
	is_int(hist_bucket_index(255), 255, "values below 256 are exact");
	is_int(hist_bucket_index(256), 256, "256 starts the first two-wide range");
	is_int(hist_bucket_index(257), 256, "257 shares 256's bucket");
	is_int(hist_bucket_index(UINT64_MAX), 57 * 128 + 127, "the largest uint64 has a bucket");

	struct hist *us = hist_new(HIST_MAX_US_1H), *ns = hist_new(HIST_MAX_NS_1H);
	ok(us && us->max_value >= HIST_MAX_US_1H && us->nbuckets < 3300,
	   "one hour in microseconds fits in %u buckets", us ? us->nbuckets : 0);
	ok(ns && ns->max_value >= HIST_MAX_NS_1H && ns->nbuckets < 4600,
	   "one hour in nanoseconds fits in %u buckets", ns ? ns->nbuckets : 0);
	hist_free(us);
	hist_free(ns);
	ok(hist_new(0) == NULL, "a zero range is refused");
	hist_free(NULL);
}

static void test_distributions(void)
{
	size_t n = 200000;
	uint64_t *s = malloc(n * sizeof(*s));

	for (size_t i = 0; i < n; i++)
		s[i] = 1 + rng_next() % HIST_MAX_US_1H;
	check_distribution("uniform 1us..1h", s, n);

	for (size_t i = 0; i < n; i++)
		s[i] = 1 + (uint64_t)(-log(rng_unit()) * 2000.0);
	check_distribution("exponential mean 2ms", s, n);

	for (size_t i = 0; i < n; i++)
		s[i] = (uint64_t)exp(log(1.0) + rng_unit() * log(3.6e9));
	check_distribution("log-uniform 1us..1h", s, n);

	for (size_t i = 0; i < n; i++)
		s[i] = 1 + rng_next() % 300;
	check_distribution("uniform 1..300 (mostly exact buckets)", s, n);

	size_t m = 0;
	uint64_t few[] = {7, 7, 7, 1000, 1000, 123457, 3599999999ULL};
	for (size_t i = 0; i < sizeof(few) / sizeof(few[0]); i++)
		s[m++] = few[i];
	check_distribution("a few exact values", s, m);
	free(s);

	struct hist *h = hist_new(HIST_MAX_US_1H);
	hist_record(h, 42);
	is_int(hist_percentile(h, 50), 42, "one sample: p50 is that sample");
	is_int(hist_percentile(h, 99.999), 42, "one sample: p99.999 is that sample");
	hist_record(h, 123456789);
	is_int(hist_max(h), 123456789, "max is the exact value, not its bucket's");
	is_int(hist_percentile(h, 100), 123456789, "p100 is the exact max");
	is_int(hist_percentile(h, 0), 42, "p0 is the exact min");
	hist_reset(h);
	is_int(hist_count(h), 0, "reset empties");
	is_int(hist_percentile(h, 50), 0, "an empty histogram answers 0");
	is_int(hist_min(h), 0, "an empty histogram's min is 0");
	ok(hist_stdev(h) == 0.0 && hist_mean(h) == 0.0, "an empty histogram's mean and stdev are 0");
	hist_free(h);

	h = hist_new(HIST_MAX_US_1H);
	for (int i = 0; i < 100; i++)
		hist_record(h, i % 2 ? 100 : 200);
	ok(fabs(hist_stdev(h) - 50.0) < 1e-9, "stdev of exact values is exact (%f)", hist_stdev(h));
	hist_free(h);
}

static int same_hist(const struct hist *a, const struct hist *b)
{
	return a->nbuckets == b->nbuckets && a->count == b->count && a->sum == b->sum &&
	       a->min == b->min && a->max == b->max && a->overflow == b->overflow &&
	       memcmp(a->counts, b->counts, a->nbuckets * sizeof(uint64_t)) == 0;
}

static void test_merge(void)
{
	struct hist *one = hist_new(HIST_MAX_US_1H), *parts[4], *sum = hist_new(HIST_MAX_US_1H);
	for (int k = 0; k < 4; k++)
		parts[k] = hist_new(HIST_MAX_US_1H);
	for (int i = 0; i < 100000; i++) {
		uint64_t v = 1 + (uint64_t)(-log(rng_unit()) * 5000.0) * (i % 7 + 1);
		hist_record(one, v);
		hist_record(parts[rng_next() % 4], v);
	}
	for (int k = 0; k < 4; k++)
		is_int(hist_merge(sum, parts[k]), 0, "merge part %d", k);
	ok(same_hist(one, sum), "merging four per-thread histograms equals recording into one");
	is_int(hist_percentile(sum, 99.9), hist_percentile(one, 99.9), "merged p99.9 equals p99.9 of one");

	struct hist *empty = hist_new(HIST_MAX_US_1H);
	hist_merge(sum, empty);
	ok(same_hist(one, sum), "merging an empty histogram changes nothing");
	hist_merge(empty, one);
	ok(same_hist(one, empty), "merging into an empty histogram copies");

	/* Different ranges: the wider one's large values clamp and count. */
	struct hist *small = hist_new(1000), *wide = hist_new(HIST_MAX_US_1H);
	hist_record(wide, 10);
	hist_record(wide, 5000);
	hist_record(wide, 7000);
	hist_record(small, 2000); /* overflow in small itself */
	hist_merge(small, wide);
	is_int(hist_count(small), 4, "merge across ranges keeps every count");
	is_int(hist_overflow(small), 3, "values beyond the narrower range count as overflow once");
	is_int(hist_max(small), 7000, "the merged max is exact");
	hist_merge(wide, small);
	is_int(hist_overflow(wide), 3, "merging into a wider range keeps overflow counted once");
	is_int(hist_count(wide), 7, "and keeps every count");

	hist_free(small);
	hist_free(wide);
	hist_free(empty);
	hist_free(one);
	hist_free(sum);
	for (int k = 0; k < 4; k++)
		hist_free(parts[k]);
}

/* HdrHistogram's recordValueWithExpectedInterval, one sample at a time. */
static void naive_corrected(struct hist *h, uint64_t v, uint64_t interval)
{
	hist_record(h, v);
	if (interval == 0 || v <= interval)
		return;
	for (uint64_t m = v - interval; m >= interval; m -= interval)
		hist_record(h, m);
}

static void test_corrected(void)
{
	struct hist *h = hist_new(HIST_MAX_US_1H);
	hist_record_corrected(h, 1000, 100);
	is_int(hist_count(h), 10, "1000 at a 100 interval back-fills 900, 800, ..., 100");
	is_int(hist_min(h), 100, "the smallest back-filled value is the interval");
	is_int(hist_max(h), 1000, "the max is the recorded value");
	ok(hist_mean(h) == 550.0, "back-filled sum is exact (mean %f)", hist_mean(h));
	hist_reset(h);
	hist_record_corrected(h, 99, 100);
	hist_record_corrected(h, 150, 100);
	hist_record_corrected(h, 150, 0);
	is_int(hist_count(h), 3, "values under two intervals, or interval 0, add nothing");
	hist_free(h);

	int bad = 0;
	uint64_t cases[][2] = {{1000, 100}, {1001, 100}, {199, 100}, {200, 100},
			       {1000000, 7}, {5000000, 1}, {123456789, 1000},
			       {3600000000ULL, 1000000}, {777777, 333}};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		struct hist *a = hist_new(HIST_MAX_US_1H), *b = hist_new(HIST_MAX_US_1H);
		hist_record(a, 5);
		hist_record(b, 5);
		hist_record_corrected(a, cases[k][0], cases[k][1]);
		naive_corrected(b, cases[k][0], cases[k][1]);
		if (!same_hist(a, b)) {
			bad++;
			diag("corrected %llu/%llu differs from one-by-one",
			     (unsigned long long)cases[k][0], (unsigned long long)cases[k][1]);
		}
		hist_free(a);
		hist_free(b);
	}
	ok(bad == 0, "per-bucket back-fill equals HdrHistogram's one-by-one back-fill");

	struct hist *a = hist_new(10000), *b = hist_new(10000);
	hist_record_corrected(a, 50000, 1000);
	naive_corrected(b, 50000, 1000);
	ok(same_hist(a, b), "back-fill beyond the range clamps and counts overflow like recording");
	is_int(hist_overflow(a), 40, "40 of the 50 values lie above 10000");
	hist_free(a);
	hist_free(b);

	/* A one-hour stall at 1 us: bounded work, right count. */
	h = hist_new(HIST_MAX_US_1H);
	hist_record_corrected(h, HIST_MAX_US_1H, 1);
	is_int(hist_count(h), HIST_MAX_US_1H, "a 1 h stall at a 1 us interval back-fills 3.6e9 samples");
	uint64_t p50 = hist_percentile(h, 50);
	ok(p50 >= 1800000000ULL && p50 <= 1800000000ULL * 1.01, "and their median is half an hour (%llu)",
	   (unsigned long long)p50);
	hist_free(h);
}

static void test_overflow(void)
{
	struct hist *h = hist_new(1000);
	hist_record(h, 10);
	hist_record(h, 999);
	hist_record(h, 5000);
	hist_record_n(h, 1u << 30, 3);
	is_int(hist_overflow(h), 4, "values above the range are counted as overflow");
	is_int(hist_count(h), 6, "and still counted");
	is_int(hist_max(h), 1u << 30, "max stays exact above the range");
	is_int(hist_percentile(h, 100), 1u << 30, "p100 is the true max");
	ok(hist_percentile(h, 50) >= 1000 && hist_percentile(h, 50) <= h->max_value,
	   "an overflowed median reports the top of the range (%llu)",
	   (unsigned long long)hist_percentile(h, 50));
	hist_free(h);
}

static void test_iter(void)
{
	struct hist *h = hist_new(HIST_MAX_US_1H);
	for (uint64_t v = 1; v <= 10000; v++)
		hist_record(h, v);
	struct hist_iter it;
	struct hist_row row, prev = {0};
	int rows = 0, monotone = 1;
	double levels[8];
	hist_iter_init(&it, h, 5);
	while (hist_iter_next(&it, &row)) {
		if (rows < 8)
			levels[rows] = row.percentile;
		if (rows && (row.value < prev.value || row.percentile <= prev.percentile ||
			     row.total_count < prev.total_count))
			monotone = 0;
		prev = row;
		rows++;
		if (rows > 10000)
			break;
	}
	ok(rows > 20 && rows < 200, "percentile rows: a bounded table (%d rows)", rows);
	ok(monotone, "values, percentiles and counts never go down");
	ok(fabs(levels[0]) < 1e-12 && fabs(levels[1] - 0.1) < 1e-12 && fabs(levels[5] - 0.5) < 1e-12 &&
	   fabs(levels[6] - 0.55) < 1e-12 && fabs(levels[7] - 0.6) < 1e-12,
	   "levels step 10%% to 50%%, then 5%%, as HdrHistogram's with 5 ticks");
	ok(prev.percentile == 1.0 && prev.value == 10000 && prev.total_count == 10000 && isinf(prev.inverse),
	   "the last row is 100%%, the max, the total count");

	hist_iter_init(&it, h, 5);
	hist_iter_next(&it, &row);
	is_int(row.value, 1, "the first row is the min");
	ok(row.inverse == 1.0, "with 1/(1-p) = 1");

	struct buf out = BUF_INIT;
	hist_render_percentiles(h, &out, 5, 1000.0);
	ok(strstr(out.data, "Percentile TotalCount 1/(1-Percentile)") != NULL,
	   "the text table has HdrHistogram's header");
	ok(strstr(out.data, "      10.000 1.000000000000      10000\n") != NULL,
	   "and its closing row, scaled");
	ok(strstr(out.data, "#[Max     =       10.000, Total count    =        10000]") != NULL,
	   "and its footer");
	buf_free(&out);

	struct hist *e = hist_new(1000);
	hist_iter_init(&it, e, 5);
	ok(!hist_iter_next(&it, &row), "an empty histogram has no rows");
	hist_free(e);
	hist_free(h);
}

int main(void)
{
	test_layout();
	test_distributions();
	test_merge();
	test_corrected();
	test_overflow();
	test_iter();
	return tap_done();
}
