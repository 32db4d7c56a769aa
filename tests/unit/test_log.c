/* test_log.c -- lib/base/log: the environment it reads, and what it says when
 * a value is wrong. */
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "tap.h"

int main(void)
{
	setenv("DSYS_LOG_LEVEL", "Warn", 1);
	setenv("DSYS_LOG_FORMAT", "json", 1);
	ok(log_init("t") == 0, "a known level (any case) and format are accepted");
	ok(log_enabled(LOG_WARN) && !log_enabled(LOG_INFO), "warn lets warnings through, not info");

	setenv("DSYS_LOG_LEVEL", "loud", 1);
	ok(log_init("t") < 0, "an unknown level is refused");
	is_str(log_init_error(), "invalid value 'loud' in DSYS_LOG_LEVEL: expected error, warn, info or debug",
	       "the error names the variable and the value");

	setenv("DSYS_LOG_LEVEL", "debug", 1);
	setenv("DSYS_LOG_FORMAT", "xml", 1);
	ok(log_init("t") < 0, "an unknown format is refused");
	ok(strstr(log_init_error(), "'xml' in DSYS_LOG_FORMAT") != NULL, "and named, not the level fixed since");
	return tap_done();
}
