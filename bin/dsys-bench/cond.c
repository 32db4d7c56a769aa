/*
 * cond.c -- the little language of --fail-if and --slo.
 *
 *   TERM[,TERM]...     TERM is METRIC OP VALUE, OP one of < <= > >= = ==
 *
 * METRIC is a latency (min, mean, max, p50, p90, p99, p999, p9999, or any
 * pNN: the digits after "p" read as a percentage with the decimal point
 * after the second digit, so p95 is 95% and p999 is 99.9%), whose VALUE is
 * a duration (250us, 5ms, 1s; a bare number is seconds, as everywhere in
 * dsys), or a count: requests, errors (every kind, 4xx and 5xx included),
 * timeouts, non2xx, rps, or error_rate (errors per request sent, a
 * fraction: errors>0.01).  Latency metrics read the corrected histogram.
 *
 * --fail-if fails when ANY term holds; --slo is met when ALL terms hold.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cond.h"
#include "report.h"

static int parse_metric(const char *name, size_t n, struct cond_term *t)
{
	static const struct {
		const char *name;
		enum cond_metric m;
	} names[] = {
		{"min", COND_MIN}, {"mean", COND_MEAN}, {"max", COND_MAX},
		{"requests", COND_REQUESTS}, {"errors", COND_ERRORS},
		{"timeouts", COND_TIMEOUTS}, {"non2xx", COND_NON2XX},
		{"rps", COND_RPS}, {"error_rate", COND_ERROR_RATE},
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strlen(names[i].name) == n && strncmp(names[i].name, name, n) == 0) {
			t->metric = names[i].m;
			return 0;
		}
	if (n == 4 && strncmp(name, "p100", 4) == 0) {
		t->metric = COND_PERCENTILE;
		t->percentile = 100;
		return 0;
	}
	if (n >= 2 && n <= 8 && name[0] == 'p') {
		double v = 0, scale = 10;
		for (size_t i = 1; i < n; i++) {
			if (name[i] < '0' || name[i] > '9')
				return -1;
			v += (name[i] - '0') * scale;
			scale /= 10;
		}
		if (n == 2)
			v /= 10;  /* p5 is 5% */
		if (v > 100)
			return -1;
		t->metric = COND_PERCENTILE;
		t->percentile = v;
		return 0;
	}
	return -1;
}

bool cond_metric_is_latency(enum cond_metric m)
{
	return m == COND_MIN || m == COND_MEAN || m == COND_MAX || m == COND_PERCENTILE;
}

int cond_parse(const char *text, struct cond *c, char *err, size_t err_size)
{
	memset(c, 0, sizeof(*c));
	const char *p = text;
	while (*p) {
		if (c->n == COND_MAX_TERMS) {
			snprintf(err, err_size, "more than %d terms", COND_MAX_TERMS);
			return -1;
		}
		size_t len = strcspn(p, ",");
		struct cond_term *t = &c->terms[c->n];
		char *term = t->text;
		if (len == 0 || len >= sizeof t->text) {
			snprintf(err, err_size, "empty or overlong term");
			return -1;
		}
		memcpy(term, p, len);
		term[len] = '\0';
		char *op = strpbrk(term, "<>=");
		if (!op || op == term) {
			snprintf(err, err_size, "'%s' is not METRIC<VALUE, METRIC>VALUE or METRIC=VALUE", term);
			return -1;
		}
		size_t name_len = (size_t)(op - term);
		while (name_len && term[name_len - 1] == ' ')
			name_len--;
		const char *name = term;
		while (*name == ' ') {
			name++;
			name_len--;
		}
		if (parse_metric(name, name_len, t) < 0) {
			snprintf(err, err_size, "unknown metric '%.*s'", (int)name_len, name);
			return -1;
		}
		const char *v = op + 1;
		if (op[0] == '<' && op[1] == '=') { t->op = COND_LE; v++; }
		else if (op[0] == '>' && op[1] == '=') { t->op = COND_GE; v++; }
		else if (op[0] == '=' && op[1] == '=') { t->op = COND_EQ; v++; }
		else if (op[0] == '<') t->op = COND_LT;
		else if (op[0] == '>') t->op = COND_GT;
		else t->op = COND_EQ;
		while (*v == ' ')
			v++;
		if (cond_metric_is_latency(t->metric)) {
			uint64_t us;
			if (parse_duration_us(v, &us) < 0) {
				snprintf(err, err_size, "'%s' is not a duration", v);
				return -1;
			}
			t->value = (double)us;
		} else {
			char *end;
			errno = 0;
			t->value = strtod(v, &end);
			if (errno || end == v || *end || !isfinite(t->value) || t->value < 0) {
				snprintf(err, err_size, "'%s' is not a number", v);
				return -1;
			}
		}
		c->n++;
		p += len;
		if (*p == ',')
			p++;
	}
	if (c->n == 0) {
		snprintf(err, err_size, "no terms");
		return -1;
	}
	return 0;
}

double cond_metric_value(const struct cond_term *t, const struct bench_stats *s)
{
	uint64_t non2xx = 0;
	switch (t->metric) {
	case COND_MIN: return (double)hist_min(s->latency);
	case COND_MEAN: return hist_mean(s->latency);
	case COND_MAX: return (double)hist_max(s->latency);
	case COND_PERCENTILE: return (double)hist_percentile(s->latency, t->percentile);
	case COND_REQUESTS: return (double)s->requests;
	case COND_ERRORS: return (double)bench_stats_errors(s);
	case COND_TIMEOUTS: return (double)s->err_timeout;
	case COND_NON2XX:
		for (int i = 100; i < BENCH_STATUS_MAX; i++)
			if (i < 200 || i > 299)
				non2xx += s->status[i];
		return (double)non2xx;
	case COND_RPS: return report_rps(s);
	case COND_ERROR_RATE:
		return s->sent ? (double)bench_stats_errors(s) / (double)s->sent :
		                 (bench_stats_errors(s) ? 1.0 : 0.0);
	}
	return 0;
}

bool cond_term_holds(const struct cond_term *t, const struct bench_stats *s)
{
	double v = cond_metric_value(t, s);
	switch (t->op) {
	case COND_LT: return v < t->value;
	case COND_LE: return v <= t->value;
	case COND_GT: return v > t->value;
	case COND_GE: return v >= t->value;
	case COND_EQ: return v == t->value;
	}
	return false;
}

bool cond_any(const struct cond *c, const struct bench_stats *s, int *which)
{
	for (int i = 0; i < c->n; i++)
		if (cond_term_holds(&c->terms[i], s)) {
			if (which)
				*which = i;
			return true;
		}
	return false;
}

bool cond_all(const struct cond *c, const struct bench_stats *s, int *failed)
{
	for (int i = 0; i < c->n; i++)
		if (!cond_term_holds(&c->terms[i], s)) {
			if (failed)
				*failed = i;
			return false;
		}
	return true;
}
