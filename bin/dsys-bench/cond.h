/* cond.h -- thresholds for --fail-if and --slo (see cond.c). */
#ifndef DSYS_BENCH_COND_H
#define DSYS_BENCH_COND_H

#include <stdbool.h>
#include <stddef.h>

#include "bench.h"

#define COND_MAX_TERMS 16
#define COND_TERM_MAX 128   /* bytes of one term, NUL included */

enum cond_metric {
	COND_MIN, COND_MEAN, COND_MAX, COND_PERCENTILE,   /* latency, us */
	COND_REQUESTS, COND_ERRORS, COND_TIMEOUTS, COND_NON2XX, COND_RPS, COND_ERROR_RATE,
};
enum cond_op { COND_LT, COND_LE, COND_GT, COND_GE, COND_EQ };

struct cond_term {
	enum cond_metric metric;
	double percentile;   /* COND_PERCENTILE: 0..100 */
	enum cond_op op;
	double value;        /* us for latencies */
	char text[COND_TERM_MAX];   /* as typed, for diagnostics */
};

struct cond {
	struct cond_term terms[COND_MAX_TERMS];
	int n;
};

/* Returns 0, or -1 with a reason in err. */
int cond_parse(const char *text, struct cond *c, char *err, size_t err_size);
bool cond_metric_is_latency(enum cond_metric m);   /* its value is in us */
double cond_metric_value(const struct cond_term *t, const struct bench_stats *s);
bool cond_term_holds(const struct cond_term *t, const struct bench_stats *s);
bool cond_any(const struct cond *c, const struct bench_stats *s, int *which);
bool cond_all(const struct cond *c, const struct bench_stats *s, int *failed);

#endif
