/*
 * io/pacer.c -- open-loop schedule arithmetic and the timerfd that paces it.
 *
 * Every instant is computed from slot 0 with one 128-bit multiply and
 * divide (see pacer.h), never by adding an interval to the previous
 * instant, so no rounding accumulates over a long run, and the number of
 * requests asked for by any instant is exact: slots n with
 * floor(n * per / count) <= e are exactly n < ceil((e + 1) * count / per).
 *
 * The timer is a CLOCK_MONOTONIC timerfd with TFD_TIMER_ABSTIME: the
 * schedule's instants are absolute, so arming for "slot n" needs no
 * subtraction and cannot fire early because of the time spent computing.
 * When it fires, the loop's poll callback reads the expiry count (which
 * also re-quiets the fd) and calls the owner, which takes every slot due.
 */
#include <errno.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "base/parse.h"
#include "base/invariant.h"
#include "io/pacer.h"

int pacer_parse_rate(const char *s, uint64_t *count, uint64_t *per_ns)
{
	char num[32];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	if (n == 0 || n >= sizeof num)
		return -EINVAL;
	memcpy(num, s, n);
	num[n] = '\0';
	uint64_t c;
	if (parse_u64(num, &c) < 0 || c == 0)
		return -EINVAL;
	uint64_t per = 1000000000ULL;
	if (slash) {
		const char *u = slash + 1;
		if (strcmp(u, "s") == 0)
			per = 1000000000ULL;
		else if (strcmp(u, "m") == 0 || strcmp(u, "min") == 0)
			per = 60000000000ULL;
		else if (strcmp(u, "h") == 0)
			per = 3600000000000ULL;
		else {
			uint64_t us;
			if (parse_duration_us(u, &us) < 0 || us == 0 || us > 3600000000ULL * 24)
				return -EINVAL;
			per = us * 1000;
		}
	}
	/* above 10^9 per second the schedule's 1 ns instants collapse */
	if (c > 1000000000ULL || (unsigned __int128)c * 1000000000ULL > (unsigned __int128)per * 1000000000ULL)
		return -ERANGE;
	*count = c;
	*per_ns = per;
	return 0;
}

void pacer_init(struct pacer *p, uint64_t start_ns, uint64_t count, uint64_t per_ns,
                unsigned stride, unsigned offset)
{
	INVARIANT(count > 0 && per_ns > 0 && stride >= 1 && offset < stride);
	p->start_ns = start_ns;
	p->count = count;
	p->per_ns = per_ns;
	p->stride = stride;
	p->next = offset;
	p->limit = UINT64_MAX;
}

uint64_t pacer_slot_ns(const struct pacer *p, uint64_t n)
{
	unsigned __int128 t = (unsigned __int128)n * p->per_ns / p->count;
	if (t > UINT64_MAX - p->start_ns)
		return UINT64_MAX;
	return p->start_ns + (uint64_t)t;
}

uint64_t pacer_slots_due(const struct pacer *p, uint64_t now_ns)
{
	if (now_ns < p->start_ns)
		return 0;
	unsigned __int128 e1 = (unsigned __int128)(now_ns - p->start_ns) + 1;
	unsigned __int128 n = (e1 * p->count + p->per_ns - 1) / p->per_ns;
	return n > UINT64_MAX ? UINT64_MAX : (uint64_t)n;
}

uint64_t pacer_next_ns(const struct pacer *p)
{
	if (p->next >= p->limit)
		return UINT64_MAX;
	return pacer_slot_ns(p, p->next);
}

bool pacer_take(struct pacer *p, uint64_t now_ns, uint64_t *due_ns)
{
	uint64_t t = pacer_next_ns(p);
	if (t > now_ns)
		return false;
	*due_ns = t;
	p->next += p->stride;
	return true;
}

uint64_t pacer_backlog(const struct pacer *p, uint64_t now_ns)
{
	uint64_t due = pacer_slots_due(p, now_ns);
	if (due > p->limit)
		due = p->limit;
	if (due <= p->next)
		return 0;
	return (due - p->next + p->stride - 1) / p->stride;
}

/* ------------------------------------------------------------ timer */

static void pacer_poll_cb(uv_poll_t *h, int status, int events)
{
	struct pacer_timer *t = h->data;
	uint64_t expirations;
	/* one read re-quiets the fd; EAGAIN means a re-arm raced the wake-up */
	if (read(t->fd, &expirations, sizeof expirations) != (ssize_t)sizeof expirations)
		return;
	t->armed_ns = 0;
	t->cb(t);
}

int pacer_timer_start(uv_loop_t *loop, struct pacer_timer *t, pacer_timer_cb cb)
{
	memset(&t->poll, 0, sizeof t->poll);
	t->armed_ns = 0;
	t->cb = cb;
	t->fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (t->fd < 0)
		return -errno;
	int r = uv_poll_init(loop, &t->poll, t->fd);
	if (r == 0) {
		t->poll.data = t;
		r = uv_poll_start(&t->poll, UV_READABLE, pacer_poll_cb);
	}
	if (r < 0) {
		close(t->fd);
		t->fd = -1;
	}
	return r;
}

int pacer_timer_arm(struct pacer_timer *t, uint64_t abs_ns)
{
	if (abs_ns == 0)
		abs_ns = 1;  /* 0 would disarm */
	if (t->armed_ns == abs_ns)
		return 0;
	struct itimerspec its = {
		.it_interval = {0, 0},
		.it_value = {(time_t)(abs_ns / 1000000000ULL), (long)(abs_ns % 1000000000ULL)},
	};
	if (timerfd_settime(t->fd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
		return -errno;
	t->armed_ns = abs_ns;
	return 0;
}

void pacer_timer_close(struct pacer_timer *t, uv_close_cb close_cb)
{
	uv_poll_stop(&t->poll);
	uv_close((uv_handle_t *)&t->poll, close_cb);
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
}
