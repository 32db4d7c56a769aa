/*
 * base/invariant.h -- assertions that stay on in every build.
 *
 * TigerBeetle's habit: state a function's pre- and postconditions and the
 * protocol's invariants in code, and keep them on in release builds, so that
 * a simulated fault that breaks one stops the run at once with a message
 * that names the place (and, in the simulator, the seed that replays it).
 *
 * INVARIANT guards our own logic only.  Input from outside (a socket, a
 * file, the command line) is validated and answered with an error; it must
 * never be able to trip an INVARIANT.
 *
 * invariant_hook, when set, is called before abort() with the failed
 * expression, so that a program (the Raft simulator) can print its context
 * (seed, step) first.
 */
#ifndef DSYS_INVARIANT_H
#define DSYS_INVARIANT_H

typedef void (*invariant_hook_fn)(const char *expr, const char *file, int line);
extern invariant_hook_fn invariant_hook;

_Noreturn void invariant_fail(const char *expr, const char *file, int line);

#define INVARIANT(e) \
	((e) ? (void)0 : invariant_fail(#e, __FILE__, __LINE__))

/* For conditions that need a word of explanation in the failure. */
#define INVARIANT_MSG(e, msg) \
	((e) ? (void)0 : invariant_fail(#e " (" msg ")", __FILE__, __LINE__))

#endif
