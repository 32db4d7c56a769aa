/*
 * base/invariant.c -- the failure path of INVARIANT: one line on stderr, the
 * program's hook for context, then abort() so a core or a sanitizer trace
 * shows where.
 */
#include <stdio.h>
#include <stdlib.h>

#include "base/invariant.h"

invariant_hook_fn invariant_hook;

_Noreturn void invariant_fail(const char *expr, const char *file, int line)
{
	fprintf(stderr, "invariant failed: %s at %s:%d\n", expr, file, line);
	if (invariant_hook)
		invariant_hook(expr, file, line);
	fflush(NULL);
	abort();
}
