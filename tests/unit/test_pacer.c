/*
 * test_pacer.c -- the open-loop schedule's arithmetic: instants, counts
 * due, thread interleaving, rates below the thread count, rate parsing.
 */
#include <errno.h>
#include <stdint.h>

#include "io/pacer.h"
#include "tap.h"

#define S 1000000000ULL

int main(void)
{
	uint64_t c, per;

	/* rate parsing */
	is_int(pacer_parse_rate("1000", &c, &per), 0, "1000 parses");
	ok(c == 1000 && per == S, "1000 is 1000 per second");
	is_int(pacer_parse_rate("60/m", &c, &per), 0, "60/m parses");
	ok(c == 60 && per == 60 * S, "60/m is 60 per 60 s");
	is_int(pacer_parse_rate("5/100ms", &c, &per), 0, "5/100ms parses");
	ok(c == 5 && per == 100000000ULL, "5/100ms is 5 per 1e8 ns");
	is_int(pacer_parse_rate("3/h", &c, &per), 0, "3/h parses");
	ok(per == 3600 * S, "an hour in ns");
	is_int(pacer_parse_rate("0", &c, &per), -EINVAL, "a zero rate is refused");
	is_int(pacer_parse_rate("-5", &c, &per), -EINVAL, "a negative rate is refused");
	is_int(pacer_parse_rate("10/x", &c, &per), -EINVAL, "an unknown unit is refused");
	is_int(pacer_parse_rate("abc", &c, &per), -EINVAL, "text is refused");
	is_int(pacer_parse_rate("", &c, &per), -EINVAL, "empty is refused");
	is_int(pacer_parse_rate("2000000000", &c, &per), -ERANGE, "above 1e9/s is out of range");

	/* one thread at 1000/s: slot n at n ms */
	struct pacer p;
	pacer_init(&p, 5 * S, 1000, S, 1, 0);
	ok(pacer_slot_ns(&p, 0) == 5 * S, "slot 0 at the start");
	ok(pacer_slot_ns(&p, 1) == 5 * S + 1000000, "slot 1 one ms later");
	ok(pacer_slot_ns(&p, 1000000000ULL) == 5 * S + 1000000ULL * S, "slot 1e9 exactly 1e6 s later, no drift");
	ok(pacer_slots_due(&p, 5 * S - 1) == 0, "nothing due before the start");
	ok(pacer_slots_due(&p, 5 * S) == 1, "slot 0 due at the start");
	ok(pacer_slots_due(&p, 5 * S + 999999) == 1, "slot 1 not due 1 ns early");
	ok(pacer_slots_due(&p, 5 * S + 1000000) == 2, "slot 1 due on time");
	ok(pacer_slots_due(&p, 6 * S - 1) == 1000, "1000 slots due in the first second");

	/* a rate that does not divide a second: 3/s, instants floor(n*1e9/3) */
	pacer_init(&p, 0, 3, S, 1, 0);
	ok(pacer_slot_ns(&p, 1) == 333333333ULL, "3/s: slot 1 at 333333333 ns");
	ok(pacer_slot_ns(&p, 2) == 666666666ULL, "3/s: slot 2 at 666666666 ns");
	ok(pacer_slot_ns(&p, 3) == S, "3/s: slot 3 exactly at 1 s");
	ok(pacer_slots_due(&p, 333333332ULL) == 1 && pacer_slots_due(&p, 333333333ULL) == 2,
	   "3/s: due counts agree with the instants");
	int agree = 1;
	for (uint64_t t = 0; t < 3 * S; t += 7777777) {
		uint64_t due = pacer_slots_due(&p, t);
		if (!(pacer_slot_ns(&p, due - 1) <= t && pacer_slot_ns(&p, due) > t))
			agree = 0;
	}
	ok(agree, "slots_due(t) is exactly the slots with instants <= t");

	/* take: one thread, catching up after a stall */
	pacer_init(&p, 0, 1000, S, 1, 0);
	uint64_t due, n = 0, last = 0;
	while (pacer_take(&p, 10000000ULL, &due)) {
		n++;
		last = due;
	}
	ok(n == 11 && last == 10000000ULL, "after 10 ms, 11 slots (0..10 ms) taken in a burst");
	ok(pacer_next_ns(&p) == 11000000ULL, "the next slot is at 11 ms");
	ok(pacer_backlog(&p, 20000000ULL) == 10, "10 more due by 20 ms");

	/* four threads interleave into one schedule at the full rate */
	struct pacer t[4];
	for (unsigned i = 0; i < 4; i++)
		pacer_init(&t[i], 0, 1000, S, 4, i);
	uint64_t total = 0;
	for (unsigned i = 0; i < 4; i++)
		while (pacer_take(&t[i], S - 1, &due))
			total++;
	ok(total == 1000, "4 threads at 1000/s take 1000 slots in one second");
	ok(pacer_next_ns(&t[1]) == 1001000000ULL, "thread 1's next slot is global slot 1001");

	/* a rate below the thread count: 1/s over 4 threads */
	for (unsigned i = 0; i < 4; i++)
		pacer_init(&t[i], 0, 1, S, 4, i);
	ok(pacer_next_ns(&t[0]) == 0 && pacer_next_ns(&t[3]) == 3 * S,
	   "1/s over 4 threads: thread 3 first sends at 3 s");
	total = 0;
	for (unsigned i = 0; i < 4; i++)
		while (pacer_take(&t[i], 10 * S - 1, &due))
			total++;
	ok(total == 10, "1/s over 4 threads: 10 requests in 10 s");

	/* 60/m: one per second */
	pacer_init(&p, 0, 60, 60 * S, 1, 0);
	ok(pacer_slot_ns(&p, 59) == 59 * S, "60/m: slot 59 at 59 s");

	/* the limit (--requests) */
	pacer_init(&p, 0, 1000, S, 2, 1);
	p.limit = 5;
	n = 0;
	while (pacer_take(&p, 100 * S, &due))
		n++;
	ok(n == 2, "with a limit of 5 global slots, thread 1 of 2 takes slots 1 and 3");
	ok(pacer_next_ns(&p) == UINT64_MAX, "and then has nothing next");
	ok(pacer_backlog(&p, 100 * S) == 0, "and no backlog");

	return tap_done();
}
