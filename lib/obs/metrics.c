/*
 * obs/metrics.c -- Prometheus registry: families, sharded series, text 0.0.4.
 *
 * Shape.  The registry is a list of families in first-registration order;
 * a family (one metric name, one TYPE, one HELP) is a list of series in
 * registration order.  A series is one fixed label set with its storage.
 * Lists only grow, under the registry mutex, and are only walked under it
 * (render, find-or-create), so no series ever moves or disappears before
 * metrics_free() and the pointers handed out stay valid.
 *
 * Hot path.  The pointer the caller keeps leads straight to the storage:
 *   - counter: METRICS_SHARDS cache lines, one uint64 each; a thread adds
 *     to "its" line (a thread-local slot, handed out the first time a
 *     thread touches any metric);
 *   - histogram: METRICS_SHARDS rows, each a whole number of cache lines
 *     holding the per-bucket (non-cumulative) counts, the +Inf count and
 *     the sum (a double in a uint64);
 *   - gauge: one int64 on a cache line of its own (set is one store).
 * Sharding by thread rather than by series keeps loops on different cores
 * from bouncing one line for "requests to /hello", the hottest counter of
 * all.  The first METRICS_SHARDS - 1 threads to update a metric each own a
 * slot outright: only that thread ever writes its cells, so an update is a
 * relaxed load and a relaxed store (plain moves, no locked instruction on
 * the request path).  Every later thread shares the last slot, where each
 * update is an atomic RMW (fetch_add, a CAS loop for the double sum), so
 * those stay exact too.  Slots are never given back: a process whose
 * threads come and go just ends up using the shared slot more.  Render
 * sums rows with relaxed loads: each
 * number is exact at some instant, and a histogram's _count is summed from
 * the same bucket loads as its cumulative buckets, so +Inf == _count always.
 *
 * Text.  Label sets are validated, escaped and rendered once, at
 * registration (`a="x",b="y"`), so render only copies bytes.  Integers are
 * printed exactly; doubles as Go's FormatFloat(f, 'g', -1, 64) does (what
 * client_golang writes), see fmt_double().
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/invariant.h"
#include "obs/metrics.h"

#define CACHE_LINE 64

const double METRICS_LATENCY_BUCKETS[] = {
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
	0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};
const size_t METRICS_LATENCY_NBUCKETS =
	sizeof(METRICS_LATENCY_BUCKETS) / sizeof(METRICS_LATENCY_BUCKETS[0]);

enum metrics_type { TYPE_COUNTER, TYPE_GAUGE, TYPE_HISTOGRAM };
enum series_kind { KIND_VALUE, KIND_FN, KIND_HISTOGRAM };

static const char *const type_names[] = {"counter", "gauge", "histogram"};

struct family;

/* The head every series starts with. */
struct series {
	struct series *next;     /* in the family, registration order */
	struct family *fam;
	char *labels;            /* escaped `a="x",b="y"`; "" for none; owned */
	enum series_kind kind;
};

struct family {
	struct family *next;     /* registration order */
	char *name;              /* owned */
	char *help;              /* owned, raw (escaped at render) */
	enum metrics_type type;
	struct series *first, *last;
};

struct metrics {
	pthread_mutex_t lock;    /* guards the lists, and render */
	struct family *first, *last;
};

struct counter_shard {
	_Alignas(CACHE_LINE) _Atomic uint64_t v;
};

struct metrics_counter {
	struct series s;
	struct counter_shard shard[METRICS_SHARDS];
};

struct metrics_gauge {
	struct series s;
	_Alignas(CACHE_LINE) _Atomic int64_t v;
};

struct fn_series {
	struct series s;
	metrics_value_fn fn;
	void *arg;
};

struct metrics_histogram {
	struct series s;
	size_t nbounds;          /* upper bounds, +Inf not counted */
	double bounds[METRICS_MAX_BUCKETS];
	size_t stride;           /* uint64 cells per shard row, whole cache lines */
	_Atomic uint64_t *cells; /* [shard][0..nbounds] counts, [nbounds+1] sum bits; owned */
};

/* ---- thread slots -------------------------------------------------- */

static _Atomic unsigned slot_next;
static _Thread_local unsigned slot_mine; /* 0: not assigned yet, else slot + 1 */

#define SLOT_SHARED (METRICS_SHARDS - 1)  /* the one slot threads share */

/* This thread's shard: assigned once, the first SLOT_SHARED threads one
 * each, every later thread SLOT_SHARED. */
static inline unsigned shard_index(void)
{
	unsigned s = slot_mine;
	if (__builtin_expect(s == 0, 0)) {
		/* count up to SLOT_SHARED and no further, so the count never
		 * wraps round to an owned slot */
		unsigned k = atomic_load_explicit(&slot_next, memory_order_relaxed);
		while (k < SLOT_SHARED &&
		       !atomic_compare_exchange_weak_explicit(&slot_next, &k, k + 1,
		                                              memory_order_relaxed,
		                                              memory_order_relaxed))
			;
		s = (k < SLOT_SHARED ? k : SLOT_SHARED) + 1;
		slot_mine = s;
	}
	return s - 1;
}

/* Add n to a cell of shard s: a plain load and store on an owned shard
 * (no other thread writes it), an atomic RMW on the shared one. */
static inline void cell_add(_Atomic uint64_t *cell, unsigned s, uint64_t n)
{
	if (__builtin_expect(s != SLOT_SHARED, 1))
		atomic_store_explicit(cell, atomic_load_explicit(cell, memory_order_relaxed) + n,
		                      memory_order_relaxed);
	else
		atomic_fetch_add_explicit(cell, n, memory_order_relaxed);
}

/* ---- validation and escaping ------------------------------------------ */

static bool valid_metric_name(const char *s)
{
	if (!s || !*s)
		return false;
	for (const char *p = s; *p; p++) {
		char c = *p;
		bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
		if (!alpha && !(p > s && c >= '0' && c <= '9'))
			return false;
	}
	return true;
}

static bool valid_label_name(const char *s)
{
	if (!s || !*s || (s[0] == '_' && s[1] == '_'))
		return false;
	for (const char *p = s; *p; p++) {
		char c = *p;
		bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
		if (!alpha && !(p > s && c >= '0' && c <= '9'))
			return false;
	}
	return true;
}

/* Prometheus rejects a scrape with invalid UTF-8 in it. */
static bool valid_utf8(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		unsigned c = *p++, n, min;
		if (c < 0x80)
			continue;
		if (c >= 0xc2 && c <= 0xdf)
			n = 1, min = 0x80, c &= 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			n = 2, min = 0x800, c &= 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 3, min = 0x10000, c &= 0x07;
		else
			return false;
		while (n--) {
			if ((*p & 0xc0) != 0x80)
				return false;
			c = (c << 6) | (*p++ & 0x3f);
		}
		if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
			return false;
	}
	return true;
}

/* Escape for HELP text (backslash, newline) or, with quote, for a label
 * value (backslash, double quote, newline). */
static void put_escaped(struct buf *b, const char *s, bool quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			buf_puts(b, "\\\\");
		else if (*s == '\n')
			buf_puts(b, "\\n");
		else if (quote && *s == '"')
			buf_puts(b, "\\\"");
		else
			buf_putc(b, *s);
	}
}

/* Validates a NULL-terminated name/value list and renders it escaped, or
 * returns -EINVAL.  forbid_le: histograms own the `le` label. */
static int render_labels(const char *const *labels, bool forbid_le, struct buf *out)
{
	buf_puts(out, "");   /* out->data is "" even with no labels */
	if (!labels)
		return 0;
	for (size_t i = 0; labels[i]; i += 2) {
		const char *name = labels[i], *value = labels[i + 1];
		if (!value || !valid_label_name(name) || !valid_utf8(value))
			return -EINVAL;
		if (forbid_le && strcmp(name, "le") == 0)
			return -EINVAL;
		for (size_t j = 0; j < i; j += 2)
			if (strcmp(labels[j], name) == 0)
				return -EINVAL;
		if (i)
			buf_putc(out, ',');
		buf_puts(out, name);
		buf_puts(out, "=\"");
		put_escaped(out, value, true);
		buf_putc(out, '"');
	}
	return 0;
}

/*
 * Go's strconv.FormatFloat(f, 'g', -1, 64): the shortest digits that read
 * back as f, in exponent form when the decimal exponent is < -4 or >= 6
 * (Go's 'g' with shortest precision decides with eprec = 6), so 0.0001,
 * 2.5, 123456 and 1.234567e+06.  Special values as client_golang writes
 * them: NaN, +Inf, -Inf, and 0 for both zeros.
 */
static size_t fmt_double(char *dst, size_t cap, double f)
{
	if (isnan(f))
		return (size_t)snprintf(dst, cap, "NaN");
	if (isinf(f))
		return (size_t)snprintf(dst, cap, f > 0 ? "+Inf" : "-Inf");
	if (f == 0)
		return (size_t)snprintf(dst, cap, "0");
	int digits;
	char e[40];
	for (digits = 1; digits < 17; digits++) {
		snprintf(e, sizeof(e), "%.*e", digits - 1, f);
		if (strtod(e, NULL) == f)
			break;
	}
	snprintf(e, sizeof(e), "%.*e", digits - 1, f);
	int exp = atoi(strchr(e, 'e') + 1);
	if (exp < -4 || exp >= 6)
		return (size_t)snprintf(dst, cap, "%s", e);
	int prec = digits - 1 - exp;
	return (size_t)snprintf(dst, cap, "%.*f", prec > 0 ? prec : 0, f);
}

static void put_double(struct buf *b, double f)
{
	char tmp[48];
	size_t n = fmt_double(tmp, sizeof(tmp), f);
	buf_append(b, tmp, n);
}

/* ---- registry ----------------------------------------------------------- */

struct metrics *metrics_new(void)
{
	struct metrics *reg = calloc(1, sizeof(*reg));
	INVARIANT(reg != NULL);
	pthread_mutex_init(&reg->lock, NULL);
	return reg;
}

static void series_free(struct series *s)
{
	free(s->labels);
	if (s->kind == KIND_HISTOGRAM)
		free((void *)((struct metrics_histogram *)s)->cells);
	free(s);
}

void metrics_free(struct metrics *reg)
{
	if (!reg)
		return;
	struct family *f = reg->first;
	while (f) {
		struct family *fn = f->next;
		struct series *s = f->first;
		while (s) {
			struct series *sn = s->next;
			series_free(s);
			s = sn;
		}
		free(f->name);
		free(f->help);
		free(f);
		f = fn;
	}
	pthread_mutex_destroy(&reg->lock);
	free(reg);
}

static void *xaligned(size_t size)
{
	size = (size + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE;
	void *p = aligned_alloc(CACHE_LINE, size);
	INVARIANT(p != NULL);
	memset(p, 0, size);
	return p;
}

static char *xstrdup(const char *s)
{
	char *p = strdup(s ? s : "");
	INVARIANT(p != NULL);
	return p;
}

/*
 * The one registration path.  Under the lock: find the family (or check
 * that the name is free), find the series with the same labels (found:
 * return it, if the caller may share it), else append the new series made
 * by make().  Returns the series, or NULL with *err set.
 */
struct reg_req {
	const char *name, *help;
	const char *const *labels;
	enum metrics_type type;
	enum series_kind kind;
	const double *bounds;     /* histograms */
	size_t nbounds;
	metrics_value_fn fn;      /* callbacks */
	void *arg;
};

static struct series *make_series(const struct reg_req *r)
{
	switch (r->kind) {
	case KIND_VALUE:
		if (r->type == TYPE_COUNTER)
			return xaligned(sizeof(struct metrics_counter));
		return xaligned(sizeof(struct metrics_gauge));
	case KIND_FN: {
		struct fn_series *f = xaligned(sizeof(*f));
		f->fn = r->fn;
		f->arg = r->arg;
		return &f->s;
	}
	case KIND_HISTOGRAM: {
		struct metrics_histogram *h = xaligned(sizeof(*h));
		h->nbounds = r->nbounds;
		memcpy(h->bounds, r->bounds, r->nbounds * sizeof(double));
		size_t per_line = CACHE_LINE / sizeof(uint64_t);
		h->stride = (r->nbounds + 2 + per_line - 1) / per_line * per_line;
		h->cells = xaligned(METRICS_SHARDS * h->stride * sizeof(uint64_t));
		return &h->s;
	}
	}
	return NULL;
}

static bool same_bounds(const struct metrics_histogram *h, const struct reg_req *r)
{
	return h->nbounds == r->nbounds &&
	       memcmp(h->bounds, r->bounds, r->nbounds * sizeof(double)) == 0;
}

static struct series *registry_add(struct metrics *reg, const struct reg_req *r, int *err)
{
	struct buf labels = BUF_INIT;
	struct series *found = NULL;
	*err = 0;
	if (!valid_metric_name(r->name) || (r->help && !valid_utf8(r->help))) {
		*err = -EINVAL;
		return NULL;
	}
	if (render_labels(r->labels, r->type == TYPE_HISTOGRAM, &labels) < 0) {
		buf_free(&labels);
		*err = -EINVAL;
		return NULL;
	}

	pthread_mutex_lock(&reg->lock);
	struct family *f;
	for (f = reg->first; f; f = f->next)
		if (strcmp(f->name, r->name) == 0)
			break;
	if (f && f->type != r->type) {
		*err = -EEXIST;
		goto out;
	}
	if (f) {
		for (struct series *s = f->first; s; s = s->next) {
			if (strcmp(s->labels, labels.data) != 0)
				continue;
			if (s->kind != r->kind || s->kind == KIND_FN ||
			    (s->kind == KIND_HISTOGRAM &&
			     !same_bounds((struct metrics_histogram *)s, r)))
				*err = -EEXIST;
			else
				found = s;
			goto out;
		}
	} else {
		f = calloc(1, sizeof(*f));
		INVARIANT(f != NULL);
		f->name = xstrdup(r->name);
		f->help = xstrdup(r->help);
		f->type = r->type;
		if (reg->last)
			reg->last->next = f;
		else
			reg->first = f;
		reg->last = f;
	}
	found = make_series(r);
	found->fam = f;
	found->kind = r->kind;
	found->labels = xstrdup(labels.data);
	if (f->last)
		f->last->next = found;
	else
		f->first = found;
	f->last = found;
out:
	pthread_mutex_unlock(&reg->lock);
	buf_free(&labels);
	return found;
}

static void *register_or_errno(struct metrics *reg, const struct reg_req *r)
{
	int err;
	struct series *s = registry_add(reg, r, &err);
	if (!s)
		errno = -err;
	return s;
}

struct metrics_counter *metrics_counter_register(struct metrics *reg,
	const char *name, const char *help, const char *const *labels)
{
	struct reg_req r = {name, help, labels, TYPE_COUNTER, KIND_VALUE, NULL, 0, NULL, NULL};
	return register_or_errno(reg, &r);
}

struct metrics_gauge *metrics_gauge_register(struct metrics *reg,
	const char *name, const char *help, const char *const *labels)
{
	struct reg_req r = {name, help, labels, TYPE_GAUGE, KIND_VALUE, NULL, 0, NULL, NULL};
	return register_or_errno(reg, &r);
}

struct metrics_histogram *metrics_histogram_register(struct metrics *reg,
	const char *name, const char *help, const char *const *labels,
	const double *bounds, size_t nbounds)
{
	if (!bounds) {
		bounds = METRICS_LATENCY_BUCKETS;
		nbounds = METRICS_LATENCY_NBUCKETS;
	}
	bool ok = nbounds <= METRICS_MAX_BUCKETS;
	for (size_t i = 0; ok && i < nbounds; i++)
		ok = isfinite(bounds[i]) && (i == 0 || bounds[i] > bounds[i - 1]);
	if (!ok) {
		errno = EINVAL;
		return NULL;
	}
	struct reg_req r = {name, help, labels, TYPE_HISTOGRAM, KIND_HISTOGRAM, bounds, nbounds, NULL, NULL};
	return register_or_errno(reg, &r);
}

static int register_fn(struct metrics *reg, enum metrics_type type, const char *name,
	const char *help, const char *const *labels, metrics_value_fn fn, void *arg)
{
	if (!fn)
		return -EINVAL;
	struct reg_req r = {name, help, labels, type, KIND_FN, NULL, 0, fn, arg};
	int err;
	return registry_add(reg, &r, &err) ? 0 : err;
}

int metrics_gauge_fn_register(struct metrics *reg, const char *name,
	const char *help, const char *const *labels, metrics_value_fn fn, void *arg)
{
	return register_fn(reg, TYPE_GAUGE, name, help, labels, fn, arg);
}

int metrics_counter_fn_register(struct metrics *reg, const char *name,
	const char *help, const char *const *labels, metrics_value_fn fn, void *arg)
{
	return register_fn(reg, TYPE_COUNTER, name, help, labels, fn, arg);
}

/* ---- hot path ------------------------------------------------------------ */

void metrics_counter_add(struct metrics_counter *c, uint64_t n)
{
	unsigned s = shard_index();
	cell_add(&c->shard[s].v, s, n);
}

void metrics_counter_inc(struct metrics_counter *c)
{
	metrics_counter_add(c, 1);
}

void metrics_gauge_set(struct metrics_gauge *g, int64_t v)
{
	atomic_store_explicit(&g->v, v, memory_order_relaxed);
}

void metrics_gauge_add(struct metrics_gauge *g, int64_t delta)
{
	atomic_fetch_add_explicit(&g->v, delta, memory_order_relaxed);
}

void metrics_gauge_inc(struct metrics_gauge *g) { metrics_gauge_add(g, 1); }
void metrics_gauge_dec(struct metrics_gauge *g) { metrics_gauge_add(g, -1); }

void metrics_histogram_observe(struct metrics_histogram *h, double v)
{
	size_t i = 0;
	while (i < h->nbounds && !(v <= h->bounds[i]))
		i++;
	unsigned s = shard_index();
	_Atomic uint64_t *row = h->cells + (size_t)s * h->stride;
	cell_add(&row[i], s, 1);

	_Atomic uint64_t *sum = &row[h->nbounds + 1];
	uint64_t old = atomic_load_explicit(sum, memory_order_relaxed), upd;
	double d;
	if (__builtin_expect(s != SLOT_SHARED, 1)) {
		memcpy(&d, &old, sizeof(d));
		d += v;
		memcpy(&upd, &d, sizeof(upd));
		atomic_store_explicit(sum, upd, memory_order_relaxed);
		return;
	}
	do {
		memcpy(&d, &old, sizeof(d));
		d += v;
		memcpy(&upd, &d, sizeof(upd));
	} while (!atomic_compare_exchange_weak_explicit(sum, &old, upd,
			memory_order_relaxed, memory_order_relaxed));
}

void metrics_histogram_observe_ns(struct metrics_histogram *h, uint64_t ns)
{
	/* a division, not * 1e-9: both operands exact, so 1500000 ns is the
	 * double nearest 0.0015 and prints as such */
	metrics_histogram_observe(h, (double)ns / 1e9);
}

/* ---- reading ------------------------------------------------------------- */

uint64_t metrics_counter_value(const struct metrics_counter *c)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < METRICS_SHARDS; i++)
		v += atomic_load_explicit(&c->shard[i].v, memory_order_relaxed);
	return v;
}

int64_t metrics_gauge_value(const struct metrics_gauge *g)
{
	return atomic_load_explicit(&g->v, memory_order_relaxed);
}

/* Per-bucket counts summed over shards into counts[0..nbounds]; returns the
 * total, and the sum through *sum. */
static uint64_t histogram_snapshot(const struct metrics_histogram *h, uint64_t *counts, double *sum)
{
	uint64_t total = 0;
	double s = 0;
	memset(counts, 0, (h->nbounds + 1) * sizeof(uint64_t));
	for (unsigned k = 0; k < METRICS_SHARDS; k++) {
		_Atomic uint64_t *row = h->cells + (size_t)k * h->stride;
		for (size_t i = 0; i <= h->nbounds; i++) {
			uint64_t c = atomic_load_explicit(&row[i], memory_order_relaxed);
			counts[i] += c;
			total += c;
		}
		uint64_t bits = atomic_load_explicit(&row[h->nbounds + 1], memory_order_relaxed);
		double d;
		memcpy(&d, &bits, sizeof(d));
		s += d;
	}
	if (sum)
		*sum = s;
	return total;
}

uint64_t metrics_histogram_count(const struct metrics_histogram *h)
{
	uint64_t counts[METRICS_MAX_BUCKETS + 1];
	return histogram_snapshot(h, counts, NULL);
}

double metrics_histogram_sum(const struct metrics_histogram *h)
{
	uint64_t counts[METRICS_MAX_BUCKETS + 1];
	double sum;
	histogram_snapshot(h, counts, &sum);
	return sum;
}

int metrics_counter_sum(struct metrics *reg, const char *name, uint64_t *out)
{
	int r = -ENOENT;
	*out = 0;
	pthread_mutex_lock(&reg->lock);
	for (struct family *f = reg->first; f; f = f->next) {
		if (f->type != TYPE_COUNTER || strcmp(f->name, name) != 0)
			continue;
		r = 0;
		for (struct series *s = f->first; s; s = s->next)
			if (s->kind == KIND_VALUE)
				*out += metrics_counter_value((struct metrics_counter *)s);
	}
	pthread_mutex_unlock(&reg->lock);
	return r;
}

/* ---- exposition ------------------------------------------------------------ */

/* `name{labels} ` or `name ` (with suffix and an extra le label). */
static void put_series_name(struct buf *b, const char *name, const char *suffix,
			    const char *labels, const char *le)
{
	buf_puts(b, name);
	buf_puts(b, suffix);
	if (*labels || le) {
		buf_putc(b, '{');
		buf_puts(b, labels);
		if (le) {
			if (*labels)
				buf_putc(b, ',');
			buf_puts(b, "le=\"");
			buf_puts(b, le);
			buf_putc(b, '"');
		}
		buf_putc(b, '}');
	}
	buf_putc(b, ' ');
}

static void render_histogram(struct buf *b, const char *name, const struct metrics_histogram *h)
{
	uint64_t counts[METRICS_MAX_BUCKETS + 1], cum = 0;
	double sum;
	uint64_t total = histogram_snapshot(h, counts, &sum);
	char le[48];
	for (size_t i = 0; i <= h->nbounds; i++) {
		cum += counts[i];
		if (i < h->nbounds)
			fmt_double(le, sizeof(le), h->bounds[i]);
		else
			snprintf(le, sizeof(le), "+Inf");
		put_series_name(b, name, "_bucket", h->s.labels, le);
		buf_put_u64(b, cum);
		buf_putc(b, '\n');
	}
	INVARIANT(cum == total);
	put_series_name(b, name, "_sum", h->s.labels, NULL);
	put_double(b, sum);
	buf_putc(b, '\n');
	put_series_name(b, name, "_count", h->s.labels, NULL);
	buf_put_u64(b, total);
	buf_putc(b, '\n');
}

int metrics_render(struct metrics *reg, struct buf *out)
{
	pthread_mutex_lock(&reg->lock);
	for (struct family *f = reg->first; f; f = f->next) {
		if (*f->help) {
			buf_puts(out, "# HELP ");
			buf_puts(out, f->name);
			buf_putc(out, ' ');
			put_escaped(out, f->help, false);
			buf_putc(out, '\n');
		}
		buf_puts(out, "# TYPE ");
		buf_puts(out, f->name);
		buf_putc(out, ' ');
		buf_puts(out, type_names[f->type]);
		buf_putc(out, '\n');
		for (struct series *s = f->first; s; s = s->next) {
			switch (s->kind) {
			case KIND_VALUE:
				put_series_name(out, f->name, "", s->labels, NULL);
				if (f->type == TYPE_COUNTER)
					buf_put_u64(out, metrics_counter_value((struct metrics_counter *)s));
				else
					buf_put_i64(out, metrics_gauge_value((struct metrics_gauge *)s));
				buf_putc(out, '\n');
				break;
			case KIND_FN: {
				struct fn_series *fs = (struct fn_series *)s;
				put_series_name(out, f->name, "", s->labels, NULL);
				put_double(out, fs->fn(fs->arg));
				buf_putc(out, '\n');
				break;
			}
			case KIND_HISTOGRAM:
				render_histogram(out, f->name, (struct metrics_histogram *)s);
				break;
			}
		}
	}
	pthread_mutex_unlock(&reg->lock);
	return 0;
}

/* ---- process collector ---------------------------------------------------- */

/* A small /proc file into text (NUL-terminated), with open and read rather
 * than stdio, so a scrape allocates nothing for it.  Returns its length,
 * or -1. */
static ssize_t read_small(const char *path, char *text, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t n = 0;
	while (n < size - 1) {
		ssize_t k = read(fd, text + n, size - 1 - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		n += (size_t)k;
	}
	close(fd);
	text[n] = '\0';
	return (ssize_t)n;
}

/* Fields of /proc/self/stat after the command name, from field 3 (state):
 * out[0] is field 3.  Returns how many were read. */
static int read_proc_stat(unsigned long long *out, int max)
{
	char text[1024];
	if (read_small("/proc/self/stat", text, sizeof text) <= 0)
		return 0;
	char *p = strrchr(text, ')');
	if (!p)
		return 0;
	p++;
	int k = 0;
	while (k < max) {
		while (*p == ' ')
			p++;
		if (!*p || *p == '\n')
			break;
		if (k == 0) {   /* state is a letter */
			out[k++] = 0;
			p++;
			continue;
		}
		char *end;
		out[k++] = strtoull(p, &end, 10);
		if (end == p)
			break;
		p = end;
	}
	return k;
}

static double process_cpu_seconds(void *arg)
{
	unsigned long long f[14];
	if (read_proc_stat(f, 14) < 14)
		return NAN;
	/* utime and stime are fields 14 and 15 */
	return (double)(f[11] + f[12]) / (double)sysconf(_SC_CLK_TCK);
}

static double process_statm(int field)
{
	char text[256], *end;
	if (read_small("/proc/self/statm", text, sizeof text) <= 0)
		return NAN;
	unsigned long long size = strtoull(text, &end, 10);
	if (end == text || *end != ' ')
		return NAN;
	const char *p = end;
	unsigned long long rss = strtoull(p, &end, 10);
	if (end == p)
		return NAN;
	return (double)(field ? rss : size) * (double)sysconf(_SC_PAGESIZE);
}

static double process_resident_bytes(void *arg) { return process_statm(1); }
static double process_virtual_bytes(void *arg) { return process_statm(0); }

static double process_open_fds(void *arg)
{
	/* getdents64 into a stack buffer: opendir would allocate per scrape */
	int own = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (own < 0)
		return NAN;
	char block[4096] __attribute__((aligned(8)));
	long n = 0;
	for (;;) {
		ssize_t len = getdents64(own, block, sizeof block);
		if (len < 0 && errno == EINTR)
			continue;
		if (len <= 0)
			break;
		for (ssize_t at = 0; at < len;) {
			const struct dirent64 *e = (const struct dirent64 *)(void *)(block + at);
			at += e->d_reclen;
			if (e->d_name[0] == '.')
				continue;
			if (atoi(e->d_name) == own)
				continue;   /* the descriptor reading the directory */
			n++;
		}
	}
	close(own);
	return (double)n;
}

static double process_max_fds(void *arg)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return NAN;
	return rl.rlim_cur == RLIM_INFINITY ? INFINITY : (double)rl.rlim_cur;
}

static double process_start_time(void *arg)
{
	unsigned long long f[20], btime = 0;
	if (read_proc_stat(f, 20) < 20)
		return NAN;
	char line[256];
	FILE *fp = fopen("/proc/stat", "re");
	if (!fp)
		return NAN;
	while (fgets(line, sizeof(line), fp))
		if (sscanf(line, "btime %llu", &btime) == 1)
			break;
	fclose(fp);
	if (!btime)
		return NAN;
	/* starttime is field 22: clock ticks after boot */
	return (double)btime + (double)f[19] / (double)sysconf(_SC_CLK_TCK);
}

int metrics_process_register(struct metrics *reg)
{
	int rc = 0;
	rc |= metrics_counter_fn_register(reg, "process_cpu_seconds_total",
		"Total user and system CPU time spent in seconds.", NULL, process_cpu_seconds, NULL);
	rc |= metrics_gauge_fn_register(reg, "process_open_fds",
		"Number of open file descriptors.", NULL, process_open_fds, NULL);
	rc |= metrics_gauge_fn_register(reg, "process_max_fds",
		"Maximum number of open file descriptors.", NULL, process_max_fds, NULL);
	rc |= metrics_gauge_fn_register(reg, "process_virtual_memory_bytes",
		"Virtual memory size in bytes.", NULL, process_virtual_bytes, NULL);
	rc |= metrics_gauge_fn_register(reg, "process_resident_memory_bytes",
		"Resident memory size in bytes.", NULL, process_resident_bytes, NULL);
	rc |= metrics_gauge_fn_register(reg, "process_start_time_seconds",
		"Start time of the process since unix epoch in seconds.", NULL, process_start_time, NULL);
	return rc ? -EEXIST : 0;
}
