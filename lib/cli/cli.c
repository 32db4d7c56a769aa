/*
 * cli/cli.c -- option tables to getopt_long, --help, --list-options, env
 * fallbacks, and the option-level value checks.
 *
 * The getopt_long arrays are built from the program's table on the stack of
 * cli_parse (bounded by CLI_MAX_OPTIONS), so nothing is allocated.  The
 * three options every program has -- --help, --version and the hidden
 * --list-options -- are appended here, so a program cannot forget them.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "base/parse.h"
#include "base/invariant.h"
#include "base/log.h"
#include "obs/trace.h"

#ifndef DSYS_VERSION
#define DSYS_VERSION "0.0.0"
#endif

#define CLI_MAX_OPTIONS 96

enum { ID_HELP = -1001, ID_VERSION = -1002, ID_LIST = -1003 };

static const char *cli_progname = "dsys";

/* What cli_parse is parsing now, for cli_bad_value's message. */
static const char *cur_opt;
static const char *cur_env;

void cli_set_prog(const char *prog) { cli_progname = prog; }
const char *cli_prog(void) { return cli_progname; }

void cli_error(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", cli_progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int cli_bad_value(const char *opt, const char *value, const char *why)
{
	if (cur_env)
		cli_error("invalid value '%s' in %s: %s", value ? value : "", cur_env, why);
	else
		cli_error("invalid value '%s' for --%s: %s", value ? value : "",
		          opt ? opt : (cur_opt ? cur_opt : "?"), why);
	return -1;
}

void cli_init(const char *prog)
{
	cli_set_prog(prog);
	signal(SIGPIPE, SIG_IGN);
	/* our log lines belong to the span that started us, if any */
	static struct trace_context parent; /* 16 KiB of tracestate: not on the stack */
	if (trace_context_from_env(&parent) == 0) {
		char t[33], s[17];
		trace_hex(parent.trace_id, 16, t);
		trace_hex(parent.span_id, 8, s);
		log_trace_set_process(t, s);
	}
}

int cli_write_error(int err)
{
	if (err == EPIPE)
		return EXIT_OK;
	cli_error("write error: %s", strerror(err ? err : EIO));
	return EXIT_NO;
}

int cli_stdout_close(void)
{
	/* errno of a failure fflush saw earlier is gone; EIO stands for it */
	bool failed = ferror(stdout) != 0;
	int err = failed ? EIO : 0;
	if (fflush(stdout) != 0) {
		failed = true;
		err = errno;
	}
	if (fclose(stdout) != 0 && !failed) {
		failed = true;
		err = errno;
	}
	return failed ? cli_write_error(err) : EXIT_OK;
}

unsigned cli_ncpu(void)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof set, &set) == 0) {
		int n = CPU_COUNT(&set);
		if (n > 0)
			return (unsigned)n;
	}
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

int cli_subcommand(const char *const *names, int argc, char **argv)
{
	if (argc < 2)
		return -1;
	for (int i = 0; names[i]; i++)
		if (!strcmp(argv[1], names[i]))
			return i;
	return -1;
}

int cli_no_subcommand(const struct cli_spec *top, int argc, char **argv,
                      cli_option_fn fn, void *ctx)
{
	int first;
	int r = cli_parse(top, argc, argv, fn, ctx, &first);
	if (r >= 0)
		return r;
	if (first < argc)
		cli_error("unknown subcommand '%s'", argv[first]);
	else
		cli_error("missing subcommand");
	fprintf(stderr, "Try '%s --help' for more information.\n", top->prog);
	return EXIT_USAGE;
}

void cli_usage(const struct cli_spec *spec, int to_stderr)
{
	FILE *f = to_stderr ? stderr : stdout;
	fprintf(f, "usage: %s %s\n", spec->prog, spec->usage ? spec->usage : "[OPTION]...");
	if (spec->summary)
		fprintf(f, "%s\n", spec->summary);
	fprintf(f, "\noptions:\n");
	for (const struct cli_option *o = spec->options; o && o->name; o++) {
		char left[96];
		int n = snprintf(left, sizeof left, "  %s%c%s--%s%s%s",
		                 o->short_name ? "-" : " ", o->short_name ? o->short_name : ' ',
		                 o->short_name ? ", " : "  ", o->name,
		                 o->arg ? " " : "", o->arg ? o->arg : "");
		if (n < 30)
			fprintf(f, "%-30s %s", left, o->help ? o->help : "");
		else
			fprintf(f, "%s\n%-30s %s", left, "", o->help ? o->help : "");
		if (o->env)
			fprintf(f, " [env %s]", o->env);
		fputc('\n', f);
	}
	fprintf(f, "%-30s show this help and exit\n", "  -h, --help");
	fprintf(f, "%-30s print the version and exit\n", "      --version");
	if (spec->epilog)
		fprintf(f, "\n%s", spec->epilog);
	/* "dsys-raft sim" is documented in dsys-raft(1) */
	int page = (int)strcspn(spec->prog, " ");
	fprintf(f, "\nexit status: 0 ok, 1 no, 2 usage, 3 unreachable, 4 timed out, 5 lost.\n"
	           "See %.*s(1).\n", page, spec->prog);
}

int cli_parse(const struct cli_spec *spec, int argc, char **argv,
              cli_option_fn fn, void *ctx, int *first_operand)
{
	struct option lopts[CLI_MAX_OPTIONS + 4];
	char shorts[CLI_MAX_OPTIONS * 2 + 8];
	size_t n = 0, ns = 0;

	cli_set_prog(spec->prog);
	shorts[ns++] = ':'; /* report a missing argument as ':' */
	for (const struct cli_option *o = spec->options; o && o->name; o++) {
		INVARIANT(n < CLI_MAX_OPTIONS);
		INVARIANT(o->id != 0);
		lopts[n].name = o->name;
		lopts[n].has_arg = o->arg ? required_argument : no_argument;
		lopts[n].flag = NULL;
		lopts[n].val = 1000 + (int)n;
		n++;
		if (o->short_name) {
			shorts[ns++] = (char)o->short_name;
			if (o->arg)
				shorts[ns++] = ':';
		}
	}
	size_t nuser = n;
	lopts[n++] = (struct option){"help", no_argument, NULL, 'h'};
	lopts[n++] = (struct option){"version", no_argument, NULL, ID_VERSION};
	lopts[n++] = (struct option){"list-options", no_argument, NULL, ID_LIST};
	lopts[n] = (struct option){NULL, 0, NULL, 0};
	shorts[ns++] = 'h';
	shorts[ns] = '\0';

	/* Environment first, so flags override it. */
	for (const struct cli_option *o = spec->options; o && o->name; o++) {
		const char *v = o->env ? getenv(o->env) : NULL;
		if (!v || !*v)
			continue;
		cur_opt = o->name;
		cur_env = o->env;
		int r = fn(ctx, o->id, v);
		cur_env = NULL;
		cur_opt = NULL;
		if (r < 0)
			return EXIT_USAGE;
	}

	optind = 0; /* full re-initialisation: subcommands parse a second time */
	opterr = 0;
	for (;;) {
		int li = -1;
		int c = getopt_long(argc, argv, shorts, lopts, &li);
		if (c == -1)
			break;
		if (c == 'h') {
			cli_usage(spec, 0);
			return EXIT_OK;
		}
		if (c == ID_VERSION) {
			printf("%s %s\n", spec->prog, DSYS_VERSION);
			return EXIT_OK;
		}
		if (c == ID_LIST) {
			for (size_t i = 0; i < nuser; i++)
				printf("--%s\n", lopts[i].name);
			printf("--help\n--version\n");
			return EXIT_OK;
		}
		if (c == '?' || c == ':') {
			const char *bad = argv[optind - 1];
			if (c == ':')
				cli_error("option '%s' needs a value", bad);
			else if (optopt && optopt < 256)
				cli_error("unknown option '-%c'", optopt);
			else
				cli_error("unknown option '%s'", bad);
			fprintf(stderr, "Try '%s --help' for more information.\n", spec->prog);
			return EXIT_USAGE;
		}
		const struct cli_option *o = NULL;
		if (c >= 1000 && (size_t)(c - 1000) < nuser) {
			o = &spec->options[c - 1000];
		} else {
			for (const struct cli_option *p = spec->options; p->name; p++)
				if (p->short_name == c) {
					o = p;
					break;
				}
		}
		INVARIANT(o != NULL);
		cur_opt = o->name;
		int r = fn(ctx, o->id, o->arg ? optarg : NULL);
		cur_opt = NULL;
		if (r < 0) {
			fprintf(stderr, "Try '%s --help' for more information.\n", spec->prog);
			return EXIT_USAGE;
		}
	}
	if (first_operand)
		*first_operand = optind;
	return -1;
}

/* ------------------------------------------------------------ values */

/* The pure parsers are lib/base/parse's; this adds the option's name to a
 * failure. */
int cli_opt_uint(const char *arg, unsigned min, unsigned max, unsigned *out)
{
	if (parse_uint(arg, min, max, out) == 0)
		return 0;
	char why[64];
	snprintf(why, sizeof why, "expected a number from %u to %u", min, max);
	return cli_bad_value(NULL, arg, why);
}
