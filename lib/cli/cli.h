/*
 * cli/cli.h -- what every program's command line shares.
 *
 * A program declares its options once, in a table of struct cli_option.
 * That table feeds getopt_long, prints --help, answers the hidden
 * --list-options (the completion scripts ask the program instead of
 * repeating its flags, as git's --git-completion-helper does), and names
 * the environment variable each flag falls back to.  So the parser, the
 * help text and the completions cannot drift apart.
 *
 *   static const struct cli_option opts[] = {
 *       {"listen", 'l', "HOST:PORT", "DSYS_LISTEN", "address to listen on", OPT_LISTEN},
 *       {"threads", 't', "N", NULL, "event loops (default: cores)", OPT_THREADS},
 *       {"quiet", 'q', NULL, NULL, "print nothing but errors", OPT_QUIET},
 *       CLI_END
 *   };
 *   static const struct cli_spec spec = {
 *       "dsys-serve", "[OPTION]...", "A fast HTTP/1.1 microservice.", opts,
 *   };
 *   int r = cli_parse(&spec, argc, argv, on_option, &cfg, &first_operand);
 *   if (r >= 0) exit(r);       // --help, --version, --list-options, or a usage error
 *
 * Precedence is DESIGN.md's: defaults (set by the program before the call),
 * then environment variables, then flags.  cli_parse applies every set
 * environment variable of the table first, then the flags in order, each
 * through the same callback, so a value is validated the same way whichever
 * way it came.  An invalid environment value is a usage error naming the
 * variable.
 *
 * Subcommands (dsys-counter incr, dsys-raft sim) are programs of their own:
 * the main dispatches on argv[1] and calls cli_parse with that
 * subcommand's spec and argv + 1.
 */
#ifndef DSYS_CLI_H
#define DSYS_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/parse.h"

/* Exit codes of DESIGN.md, the same in every program. */
enum {
	EXIT_OK = 0,
	EXIT_NO = 1,          /* a definite "no": held elsewhere, compare failed, absent */
	EXIT_USAGE = 2,       /* usage or bad input */
	EXIT_UNREACHABLE = 3, /* backend or peer unreachable */
	EXIT_TIMEOUT = 4,     /* timed out */
	EXIT_LOST = 5,        /* lost while running: lock or lease gone */
};

struct cli_option {
	const char *name;     /* long name without "--" */
	int short_name;       /* 'x', or 0 for none */
	const char *arg;      /* argument's name in --help ("N", "HOST:PORT"), or NULL for a flag */
	const char *env;      /* environment variable it falls back to, or NULL */
	const char *help;     /* one line; "(repeatable)" etc. belongs here */
	int id;               /* passed to the callback; any value but 0 */
};
#define CLI_END {NULL, 0, NULL, NULL, NULL, 0}

struct cli_spec {
	const char *prog;     /* "dsys-serve", or "dsys-counter incr" */
	const char *usage;    /* after the program name: "[OPTION]... URL..." */
	const char *summary;  /* one sentence for --help */
	const struct cli_option *options;
	const char *epilog;   /* extra --help text (operands, subcommands), or NULL */
};

/*
 * Called once per option occurrence.  arg is NULL for flags; for an
 * environment fallback of a flag, arg is the variable's value and the
 * callback decides what it means (parse_bool helps).  Return 0, or -1
 * after printing an error with cli_bad_value() or cli_error(): parsing
 * stops with EXIT_USAGE.  cli_bad_value names the source itself ("for
 * --listen" or "in DSYS_LISTEN"), so callbacks need not know it.
 */
typedef int (*cli_option_fn)(void *ctx, int id, const char *arg);

/*
 * Parse argv.  Returns -1 when the program should go on (*first_operand is
 * the index of the first non-option argument), or an exit code to exit
 * with: EXIT_OK after --help, --version or --list-options were printed,
 * EXIT_USAGE after a usage error was printed (with a hint to try --help).
 * Options and operands may be mixed; "--" ends the options.
 */
int cli_parse(const struct cli_spec *spec, int argc, char **argv,
              cli_option_fn fn, void *ctx, int *first_operand);

/* The name diagnostics start with ("dsys-serve"); set by cli_parse, or
 * by cli_set_prog for programs that print before parsing. */
void cli_set_prog(const char *prog);
const char *cli_prog(void);

/* "PROG: message\n" on stderr, git style: lowercase, no full stop. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print --help for a spec (used by programs whose subcommand is missing). */
void cli_usage(const struct cli_spec *spec, int to_stderr);

/*
 * Subcommand dispatch, the same in every program that has them.
 * cli_subcommand returns the index of argv[1] in the NULL-ended table
 * names, or -1.  When it is -1, the program calls cli_no_subcommand with
 * its top-level spec: that parses --help, --version and --list-options
 * (returning EXIT_OK), and otherwise says "unknown subcommand 'X'" or
 * "missing subcommand" with a hint and returns EXIT_USAGE.
 */
int cli_subcommand(const char *const *names, int argc, char **argv);
int cli_no_subcommand(const struct cli_spec *top, int argc, char **argv,
                      cli_option_fn fn, void *ctx);

/* The value parsers (numbers, durations, sizes, HOST:PORT) are
 * lib/base/parse.h's parse_*; cli_opt_uint and cli_bad_value add the
 * option's name to a failure. */

/* For option callbacks: parse_uint, and on failure the message
 * "expected a number from MIN to MAX" through cli_bad_value; returns 0 or
 * -1, so a callback can return it directly. */
int cli_opt_uint(const char *arg, unsigned min, unsigned max, unsigned *out);

/* "PROG: invalid value 'X' for --name: WHY" (or "in VAR" when the value
 * came from the environment); returns -1 for the callback.  Inside a
 * callback, opt may be NULL: the option being parsed is named. */
int cli_bad_value(const char *opt, const char *value, const char *why);

/* Number of CPUs this process may run on (sched_getaffinity), at least 1. */
unsigned cli_ncpu(void);

/* SIGPIPE ignored and stdout line-flushed data: every program calls this
 * first.  A write to a closed stdout then fails with EPIPE, and
 * cli_write_error treats that as "the consumer is gone": exit 0 quietly. */
void cli_init(const char *prog);

/*
 * A write to stdout failed with errno err (call it at once, before errno
 * changes): EPIPE means the consumer is gone, so 0 and nothing printed;
 * anything else (ENOSPC on a full disk) prints "PROG: write error: REASON"
 * and returns EXIT_NO for the program to exit with.
 */
int cli_write_error(int err);

/*
 * The last thing a program does with stdout: flush and close it, so a
 * write lost in the buffer or at close(2) is not lost silently.  Returns 0,
 * or cli_write_error's status.  Not for servers: fd 1 would be reused.
 */
int cli_stdout_close(void);

#endif
