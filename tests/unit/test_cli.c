/* Unit tests of lib/cli/cli: the value parsers and option tables. */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "tap.h"

enum { O_PORT = 1, O_VERBOSE, O_NAME };

struct cfg {
	unsigned port;
	int verbose;
	const char *name;
};

static int on_opt(void *ctx, int id, const char *arg)
{
	struct cfg *c = ctx;
	switch (id) {
	case O_PORT:
		if (parse_uint(arg, 1, 65535, &c->port) < 0)
			return cli_bad_value(NULL, arg, "not a port");
		return 0;
	case O_VERBOSE:
		c->verbose++;
		return 0;
	case O_NAME:
		c->name = arg;
		return 0;
	}
	return -1;
}

static const struct cli_option opts[] = {
	{"port", 'p', "N", "TEST_PORT", "the port", O_PORT},
	{"verbose", 'v', NULL, NULL, "say more", O_VERBOSE},
	{"name", 0, "NAME", NULL, "a name", O_NAME},
	CLI_END,
};
static const struct cli_spec spec = {"test-cli", "[OPTION]... ARG", "A test.", opts, NULL};

int main(void)
{
	uint64_t u;
	is_int(parse_duration_us("500ms", &u), 0, "500ms parses");
	is_int(u, 500000, "as 500000 us");
	ok(parse_duration_us("1.5s", &u) == 0 && u == 1500000, "1.5s is 1500000 us exactly");
	ok(parse_duration_us("2", &u) == 0 && u == 2000000, "a bare number is seconds");
	ok(parse_duration_us("1m", &u) == 0 && u == 60000000, "1m is a minute");
	ok(parse_duration_us("1h", &u) == 0 && u == 3600000000ULL, "1h is an hour");
	ok(parse_duration_us("250us", &u) == 0 && u == 250, "250us");
	ok(parse_duration_us("5 s", &u) < 0, "a space before the unit is refused");
	ok(parse_duration_us("-1s", &u) < 0, "a negative duration is refused");
	ok(parse_duration_us("1d", &u) < 0, "an unknown unit is refused");
	ok(parse_duration_us("", &u) < 0, "an empty duration is refused");
	ok(parse_duration_ms("1us", &u) == 0 && u == 1, "a microsecond rounds up to 1 ms, never to 0");
	ok(parse_size("10k", &u) == 0 && u == 10240, "10k is 10240 bytes");
	ok(parse_size("1M", &u) == 0 && u == 1048576, "1M is 1048576 bytes");
	ok(parse_size("12x", &u) < 0, "an unknown size unit is refused");
	ok(parse_u64("18446744073709551615", &u) == 0 && u == UINT64_MAX, "u64 max parses");
	ok(parse_u64("18446744073709551616", &u) < 0, "u64 max + 1 is refused");
	ok(parse_u64("12a", &u) < 0, "trailing junk is refused");
	ok(parse_u64("+1", &u) < 0, "a sign is refused for unsigned");
	int64_t i;
	ok(parse_i64("-9223372036854775808", &i) == 0 && i == INT64_MIN, "i64 min parses");
	ok(parse_i64("9223372036854775808", &i) < 0, "i64 max + 1 is refused");

	char host[64];
	uint16_t port;
	ok(parse_hostport("127.0.0.1:0", host, sizeof host, &port) == 0 &&
	   strcmp(host, "127.0.0.1") == 0 && port == 0, "HOST:0 parses");
	ok(parse_hostport("[::1]:8080", host, sizeof host, &port) == 0 &&
	   strcmp(host, "::1") == 0 && port == 8080, "[v6]:PORT parses");
	ok(parse_hostport(":9000", host, sizeof host, &port) == 0 &&
	   strcmp(host, "0.0.0.0") == 0, ":PORT means every address");
	ok(parse_hostport("::1:80", host, sizeof host, &port) < 0, "a bare IPv6 address is refused");
	ok(parse_hostport("h:65536", host, sizeof host, &port) < 0, "port 65536 is refused");
	ok(parse_hostport("h", host, sizeof host, &port) < 0, "a missing port is refused");

	bool bv;
	ok(parse_bool("yes", &bv) == 0 && bv, "yes is true");
	ok(parse_bool("OFF", &bv) == 0 && !bv, "OFF is false");
	ok(parse_bool("maybe", &bv) < 0, "maybe is refused");

	/* env first, flags override; operands follow */
	setenv("TEST_PORT", "81", 1);
	struct cfg c = {0};
	char *argv1[] = {"test-cli", "operand", "-v", "--port", "82", "--name=x", NULL};
	int first = 0;
	is_int(cli_parse(&spec, 6, argv1, on_opt, &c, &first), -1, "a good command line parses");
	is_int(c.port, 82, "the flag overrides the environment");
	is_int(c.verbose, 1, "a short flag is seen");
	is_str(c.name, "x", "--name=value works");
	is_str(argv1[first], "operand", "operands are left after the options");

	struct cfg c2 = {0};
	char *argv2[] = {"test-cli", NULL};
	is_int(cli_parse(&spec, 1, argv2, on_opt, &c2, &first), -1, "no flags parse");
	is_int(c2.port, 81, "the environment gives the value when no flag does");

	setenv("TEST_PORT", "zero", 1);
	struct cfg c3 = {0};
	is_int(cli_parse(&spec, 1, argv2, on_opt, &c3, &first), EXIT_USAGE, "a bad environment value is a usage error");
	unsetenv("TEST_PORT");

	char *argv3[] = {"test-cli", "--nope", NULL};
	is_int(cli_parse(&spec, 2, argv3, on_opt, &c3, &first), EXIT_USAGE, "an unknown option is a usage error");
	char *argv4[] = {"test-cli", "--port", NULL};
	is_int(cli_parse(&spec, 2, argv4, on_opt, &c3, &first), EXIT_USAGE, "a missing value is a usage error");
	char *argv5[] = {"test-cli", "--port", "0", NULL};
	is_int(cli_parse(&spec, 3, argv5, on_opt, &c3, &first), EXIT_USAGE, "an out-of-range value is a usage error");
	ok(cli_ncpu() >= 1, "at least one CPU is available");
	return tap_done();
}
