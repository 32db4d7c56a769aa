/*
 * obs/otlp_batch.c -- the batch processor: a bounded queue and one
 * exporting thread.
 *
 * The queue is a ring of encoded items under one mutex; producers only
 * copy into it and signal, so a server's loop spends a memcpy per span.
 * The thread waits for max_batch items or for the oldest to be delay_ms
 * old, builds one request from the head of the queue without removing
 * it, posts it with the lock released, and only then removes the items
 * (or leaves them, with keep, for the next try).  Leaving them in place
 * during the post is what lets a spool snapshot, taken meanwhile, still
 * see the items in flight.
 */
#include "obs/otlp_batch.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/invariant.h"
#include "base/parse.h"

struct item {
	char *p;
	size_t n;
	int64_t at_ms;               /* when it was queued (monotonic) */
};

struct otlp_batch {
	struct otlp_config cfg;
	enum otlp_signal sig;
	struct otlp_batch_options o;
	pthread_mutex_t mu;
	pthread_cond_t wake;         /* to the thread: items, or stop */
	pthread_cond_t drained;      /* from the thread: the queue is empty */
	struct item *ring;           /* max_queue slots */
	size_t head, len;
	size_t in_flight;            /* items at the head being posted */
	bool stopping;
	pthread_t thread;
	struct otlp_batch_stats st;
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void abs_deadline(struct timespec *ts, int64_t in_ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += in_ms / 1000;
	ts->tv_nsec += (in_ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static int env_num(const char *name, uint64_t lo, uint64_t hi, uint64_t *out, char *err, size_t errlen)
{
	const char *v = getenv(name);
	uint64_t x;
	if (!v || !*v)
		return 0;
	if (parse_u64(v, &x) < 0 || x < lo || x > hi) {
		snprintf(err, errlen, "invalid %s '%s': expected an integer from %llu to %llu", name, v,
		         (unsigned long long)lo, (unsigned long long)hi);
		return -EINVAL;
	}
	*out = x;
	return 0;
}

int otlp_batch_options_from_env(struct otlp_batch_options *o, char *err, size_t errlen)
{
	memset(o, 0, sizeof *o);
	uint64_t q = 2048, b = 512, d = 5000, t = 0;
	int rc = 0;
	rc |= env_num("OTEL_BSP_MAX_QUEUE_SIZE", 1, 10000000, &q, err, errlen);
	rc |= env_num("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 1, 10000000, &b, err, errlen);
	rc |= env_num("OTEL_BSP_SCHEDULE_DELAY", 0, 3600000, &d, err, errlen);
	rc |= env_num("OTEL_BSP_EXPORT_TIMEOUT", 0, 3600000, &t, err, errlen);
	if (b > q) /* the spec: the batch size must not pass the queue size */
		b = q;
	o->max_queue = q;
	o->max_batch = b;
	o->delay_ms = (long)d;
	o->export_timeout_ms = (long)t;
	return rc ? -EINVAL : 0;
}

/* Build the request of the first k items (k <= len); lock held. */
static void build_body(struct otlp_batch *b, size_t k, struct buf *body)
{
	if (b->cfg.encoding == OTLP_PROTOBUF) {
		for (size_t i = 0; i < k; i++) {
			struct item *it = &b->ring[(b->head + i) % b->o.max_queue];
			buf_append(body, it->p, it->n);
		}
		return;
	}
	struct buf *parts = calloc(k, sizeof *parts);
	INVARIANT(parts != NULL);
	for (size_t i = 0; i < k; i++) {
		struct item *it = &b->ring[(b->head + i) % b->o.max_queue];
		parts[i].data = it->p; /* borrowed: not freed */
		parts[i].len = it->n;
	}
	int rc = otlp_codec_json_merge(b->sig, parts, k, body);
	INVARIANT(rc == 0); /* every item was checked when it was added */
	free(parts);
}

static void drop_head(struct otlp_batch *b, size_t k)
{
	INVARIANT(k <= b->len);
	for (size_t i = 0; i < k; i++) {
		struct item *it = &b->ring[b->head];
		free(it->p);
		it->p = NULL;
		b->head = (b->head + 1) % b->o.max_queue;
	}
	b->len -= k;
	if (b->len == 0)
		pthread_cond_broadcast(&b->drained);
}

void otlp_batch_consume(struct otlp_batch *b, size_t n)
{
	pthread_mutex_lock(&b->mu);
	drop_head(b, n < b->len ? n : b->len);
	pthread_mutex_unlock(&b->mu);
}

static void *batch_main(void *arg)
{
	struct otlp_batch *b = arg;
	struct otlp_config cfg = b->cfg;
	if (b->o.export_timeout_ms)
		cfg.timeout_ms = b->o.export_timeout_ms;
	int64_t backoff = 100, retry_at = 0;
	pthread_mutex_lock(&b->mu);
	for (;;) {
		/* wait for a full batch, an old enough item, a due retry, or stop */
		while (!b->stopping) {
			int64_t now = mono_ms();
			if (b->len >= b->o.max_batch && now >= retry_at)
				break;
			int64_t due = b->len ? b->ring[b->head].at_ms + b->o.delay_ms : now + 3600000;
			if (retry_at > due)
				due = retry_at;
			if (b->len && now >= due)
				break;
			struct timespec ts;
			abs_deadline(&ts, due - now);
			pthread_cond_timedwait(&b->wake, &b->mu, &ts);
		}
		if (b->len == 0 && b->stopping)
			break;
		size_t k = b->len < b->o.max_batch ? b->len : b->o.max_batch;
		struct buf body = BUF_INIT;
		build_body(b, k, &body);
		b->in_flight = k;
		bool stopping = b->stopping;
		pthread_mutex_unlock(&b->mu);

		char err[512];
		int rc = otlp_post(&cfg, body.data, body.len, err, sizeof err);
		buf_free(&body);
		if (rc == 0 && b->o.exported)
			b->o.exported(b->o.ud, b, k);

		pthread_mutex_lock(&b->mu);
		b->in_flight = 0;
		if (rc == 0) {
			b->st.batches++;
			b->st.exported += k;
			if (!b->o.exported)
				drop_head(b, k);
			backoff = 100;
			retry_at = 0;
		} else {
			b->st.errors++;
			if (!b->o.keep || stopping) {
				b->st.failed += k;
				drop_head(b, k);
			} else {
				retry_at = mono_ms() + backoff;
				backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
			}
		}
	}
	pthread_cond_broadcast(&b->drained);
	pthread_mutex_unlock(&b->mu);
	return NULL;
}

struct otlp_batch *otlp_batch_new(const struct otlp_config *cfg, enum otlp_signal sig,
                                  const struct otlp_batch_options *o)
{
	INVARIANT(o->max_queue > 0 && o->max_batch > 0);
	struct otlp_batch *b = calloc(1, sizeof *b);
	INVARIANT(b != NULL);
	b->cfg = *cfg;
	b->sig = sig;
	b->o = *o;
	if (b->o.max_batch > b->o.max_queue)
		b->o.max_batch = b->o.max_queue;
	b->ring = calloc(b->o.max_queue, sizeof *b->ring);
	INVARIANT(b->ring != NULL);
	pthread_mutex_init(&b->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&b->wake, &ca);
	pthread_cond_init(&b->drained, &ca);
	pthread_condattr_destroy(&ca);
	int rc = pthread_create(&b->thread, NULL, batch_main, b);
	INVARIANT(rc == 0);
	return b;
}

int otlp_batch_add_encoded(struct otlp_batch *b, const void *p, size_t n)
{
	if (b->cfg.encoding == OTLP_JSON) { /* one we can merge later */
		struct buf part = {.data = (char *)p, .len = n}, tmp = BUF_INIT;
		int rc = otlp_codec_json_merge(b->sig, &part, 1, &tmp);
		buf_free(&tmp);
		if (rc < 0)
			return rc;
	}
	char *copy = malloc(n ? n : 1);
	INVARIANT(copy != NULL);
	memcpy(copy, p, n);
	pthread_mutex_lock(&b->mu);
	if (b->len == b->o.max_queue) {
		b->st.dropped++;
		pthread_mutex_unlock(&b->mu);
		free(copy);
		return -ENOBUFS;
	}
	struct item *it = &b->ring[(b->head + b->len) % b->o.max_queue];
	it->p = copy;
	it->n = n;
	it->at_ms = mono_ms();
	b->len++;
	if (b->len >= b->o.max_batch || b->len == 1)
		pthread_cond_signal(&b->wake);
	pthread_mutex_unlock(&b->mu);
	return 0;
}

int otlp_batch_add(struct otlp_batch *b, const struct otlp_item *it)
{
	struct buf one = BUF_INIT;
	otlp_codec_encode(b->cfg.encoding, it, 1, &one);
	int rc = otlp_batch_add_encoded(b, one.data, one.len);
	buf_free(&one);
	return rc;
}

void otlp_batch_snapshot(struct otlp_batch *b, void (*cb)(void *ud, const void *p, size_t n), void *ud)
{
	pthread_mutex_lock(&b->mu);
	for (size_t i = 0; i < b->len; i++) {
		struct item *it = &b->ring[(b->head + i) % b->o.max_queue];
		cb(ud, it->p, it->n);
	}
	pthread_mutex_unlock(&b->mu);
}

void otlp_batch_stats(struct otlp_batch *b, struct otlp_batch_stats *s)
{
	pthread_mutex_lock(&b->mu);
	*s = b->st;
	s->queued = b->len;
	pthread_mutex_unlock(&b->mu);
}

int otlp_batch_flush(struct otlp_batch *b, long timeout_ms)
{
	struct timespec ts;
	abs_deadline(&ts, timeout_ms);
	int rc = 0;
	pthread_mutex_lock(&b->mu);
	/* a flush asks for the partial batch now rather than after the delay */
	for (size_t i = 0; i < b->len; i++)
		b->ring[(b->head + i) % b->o.max_queue].at_ms = 0;
	pthread_cond_signal(&b->wake);
	while (b->len && rc == 0)
		if (pthread_cond_timedwait(&b->drained, &b->mu, &ts) == ETIMEDOUT)
			rc = -ETIMEDOUT;
	pthread_mutex_unlock(&b->mu);
	return rc;
}

void otlp_batch_free(struct otlp_batch *b)
{
	if (!b)
		return;
	pthread_mutex_lock(&b->mu);
	b->stopping = true;
	pthread_cond_signal(&b->wake);
	pthread_mutex_unlock(&b->mu);
	pthread_join(b->thread, NULL);
	for (size_t i = 0; i < b->len; i++)
		free(b->ring[(b->head + i) % b->o.max_queue].p);
	free(b->ring);
	pthread_mutex_destroy(&b->mu);
	pthread_cond_destroy(&b->wake);
	pthread_cond_destroy(&b->drained);
	free(b);
}
