/*
 * tap.h -- the unit tests' whole framework: TAP on stdout, read by prove.
 *
 *   int main(void) {
 *       ok(1 + 1 == 2, "addition works");
 *       is_int(f(3), 9, "f squares its argument");
 *       return tap_done();
 *   }
 *
 * Each check prints "ok N - name" or "not ok N - name" with the values that
 * differed; tap_done() prints the plan and returns the exit status (1 when
 * anything failed), so a test binary can also be run by hand.
 *
 * What cannot run here is a skip, never a pass: skip("why", "name") prints
 * "ok N - name # SKIP why", which prove counts as skipped; a program that
 * can test nothing here returns tap_skip_all("why") before its first check
 * ("1..0 # SKIP why").
 */
#ifndef DSYS_TAP_H
#define DSYS_TAP_H

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_n, tap_failed;

static inline int tap_ok(int cond, const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	printf("%sok %d - ", cond ? "" : "not ", ++tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!cond) {
		tap_failed++;
		printf("#   failed at %s:%d\n", file, line);
	}
	fflush(stdout);
	return cond;
}

#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

#define is_int(got, want, ...) do { \
	long long g_ = (long long)(got), w_ = (long long)(want); \
	if (!tap_ok(g_ == w_, __FILE__, __LINE__, __VA_ARGS__)) \
		printf("#   got %lld, want %lld\n", g_, w_); \
} while (0)

#define is_str(got, want, ...) do { \
	const char *g_ = (got), *w_ = (want); \
	int eq_ = (g_ && w_) ? strcmp(g_, w_) == 0 : g_ == w_; \
	if (!tap_ok(eq_, __FILE__, __LINE__, __VA_ARGS__)) \
		printf("#   got \"%s\"\n#  want \"%s\"\n", g_ ? g_ : "(null)", w_ ? w_ : "(null)"); \
} while (0)

static inline void diag(const char *fmt, ...)
{
	va_list ap;
	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

static inline void tap_skip(const char *why, const char *fmt, ...)
{
	va_list ap;
	printf("ok %d - ", ++tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(" # SKIP %s\n", why);
	fflush(stdout);
}

#define skip(why, ...) tap_skip((why), __VA_ARGS__)

static inline int tap_skip_all(const char *why)
{
	if (tap_n != 0) {
		/* too late for a plan of nothing: say so, and fail */
		printf("not ok %d - tap_skip_all after %d checks: %s\n", tap_n + 1, tap_n, why);
		printf("1..%d\n", tap_n + 1);
		return 1;
	}
	printf("1..0 # SKIP %s\n", why);
	fflush(stdout);
	return 0;
}

static inline int tap_done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

#endif
