/*
 * io/pacer.h -- an open-loop send schedule, and a sub-millisecond timer for it.
 *
 * An open-loop load generator sends request n at a fixed instant, whether
 * or not earlier requests were answered; that is what makes a stalled
 * server visible (the requests due during the stall wait, and their latency
 * is counted from when they were due, not from when they finally left:
 * coordinated omission corrected, as wrk2 does).
 *
 * The schedule.  A rate is count requests per per_ns nanoseconds (1000/s is
 * {1000, 1e9}; 60/m is {60, 60e9}), so rates that are not whole numbers per
 * second stay exact.  Global slot n (n = 0, 1, 2, ...) is due at
 *
 *     start_ns + floor(n * per_ns / count)
 *
 * computed in 128 bits, so it never drifts: slot 10^9 is due exactly where
 * it should be, with no accumulated rounding.  With T threads, thread i
 * takes the slots n = i, i + T, i + 2T, ...: the threads interleave into
 * one schedule at the full rate, and a rate below the thread count still
 * works (thread 3 of 4 at 1/s sends at 3 s, 7 s, ...).
 *
 * The timer.  libuv's timers have millisecond resolution; the pacer timer
 * is a timerfd (CLOCK_MONOTONIC, absolute expiry in nanoseconds, the clock
 * uv_hrtime() reads) watched by a uv_poll_t on the thread's loop.  It is
 * re-armed only when the wanted expiry changes.
 *
 * Ownership: struct pacer is plain data; struct pacer_timer belongs to the
 * loop it was started on and is closed with pacer_timer_close().  Not
 * thread-safe: one pacer and one timer per thread.
 */
#ifndef DSYS_PACER_H
#define DSYS_PACER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct pacer {
	uint64_t start_ns;   /* slot 0's instant, CLOCK_MONOTONIC ns */
	uint64_t count;      /* requests ... */
	uint64_t per_ns;     /* ... per this many ns (rate = count / per_ns) */
	uint64_t stride;     /* threads sharing the schedule (>= 1) */
	uint64_t next;       /* this thread's next global slot: offset + k * stride */
	uint64_t limit;      /* slots at or beyond this are never taken (UINT64_MAX: none) */
};

/*
 * Parse a rate: "R" or "R/s" per second, "R/m" per minute, "R/h" per hour,
 * "R/DURATION" (e.g. "5/100ms"); R a positive integer.  Returns 0, or
 * -EINVAL (malformed, zero) / -ERANGE (too large: above 10^9/s).
 */
int pacer_parse_rate(const char *s, uint64_t *count, uint64_t *per_ns);

/* A schedule for thread `offset` of `stride` threads.  count and per_ns > 0. */
void pacer_init(struct pacer *p, uint64_t start_ns, uint64_t count, uint64_t per_ns,
                unsigned stride, unsigned offset);

/* The instant global slot n is due. */
uint64_t pacer_slot_ns(const struct pacer *p, uint64_t n);

/* Global slots (all threads) due at or before now_ns: how many requests
 * the whole schedule has asked for so far. */
uint64_t pacer_slots_due(const struct pacer *p, uint64_t now_ns);

/* This thread's next slot's instant; UINT64_MAX when the limit is reached. */
uint64_t pacer_next_ns(const struct pacer *p);

/* If this thread's next slot is due at or before now_ns, take it: returns
 * true and sets *due_ns to its instant.  Otherwise false. */
bool pacer_take(struct pacer *p, uint64_t now_ns, uint64_t *due_ns);

/* How many of this thread's slots are due by now_ns and not yet taken. */
uint64_t pacer_backlog(const struct pacer *p, uint64_t now_ns);

/* The sub-millisecond timer. */
struct pacer_timer;
typedef void (*pacer_timer_cb)(struct pacer_timer *t);

struct pacer_timer {
	uv_poll_t poll;      /* on fd; poll.data is free for the owner */
	int fd;              /* the timerfd */
	uint64_t armed_ns;   /* current expiry, 0 when disarmed */
	pacer_timer_cb cb;
	void *data;          /* the owner's */
};

/* Create the timerfd and start watching it.  Returns 0 or a negative errno. */
int pacer_timer_start(uv_loop_t *loop, struct pacer_timer *t, pacer_timer_cb cb);

/* Fire once at CLOCK_MONOTONIC instant abs_ns (in the past: at once).
 * A no-op when already armed for that instant.  Returns 0 or -errno. */
int pacer_timer_arm(struct pacer_timer *t, uint64_t abs_ns);

/* Close the poll handle (close_cb as uv_close's, may be NULL) and the fd. */
void pacer_timer_close(struct pacer_timer *t, uv_close_cb close_cb);

#endif
