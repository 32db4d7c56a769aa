/*
 * dsys-counter -- a high-concurrency counter service and its CLI, on
 * memory, a crash-safe file log, Redis or Redis Cluster.
 *
 *   dsys-counter serve [--store URL] [--listen HOST:PORT] [--threads N]
 *   dsys-counter incr KEY [--by N] | incr - | get KEY | set KEY N | del KEY | list [--prefix P]
 *
 * This file holds the one option table every subcommand parses (so
 * --list-options, --help and the man page name the same flags), the
 * dispatch on the subcommand.  serve.c is the service, client.c the CLI;
 * spec.c checks keys and parses {"key":..,"by":..} for both, status.c
 * maps errors to HTTP statuses and back; the files of lib/counter/ do
 * the work.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "dsys-counter.h"
#include "base/invariant.h"
#include "base/json.h"
#include "base/log.h"
#include "cli/server_cli.h"

enum {
	OPT_STORE = 1, OPT_SERVER, OPT_BY, OPT_PREFIX,
	OPT_BACKEND_TIMEOUT, OPT_MAX_KEYS, OPT_COMPACT, OPT_WINDOW, OPT_MAX_BATCH, OPT_WAIT,
};

static const struct cli_option options[] = {
	SERVER_CLI_OPTIONS,
	SERVER_CLI_TRACE_OPTION,
	{"store", 's', "URL", "DSYS_STORE", "mem:, file:DIR, redis://HOST:PORT[/DB] or redis-cluster://H:P,... (default mem: for serve; REDIS_URL is honoured)", OPT_STORE},
	{"server", 'S', "URL", "DSYS_SERVER", "CLI: talk to a running dsys-counter serve at http://HOST:PORT instead of a store", OPT_SERVER},
	{"by", 'b', "N", NULL, "incr: add N (an int64, may be negative; default 1)", OPT_BY},
	{"prefix", 'p', "P", NULL, "list: only keys that start with P", OPT_PREFIX},
	{"backend-timeout", 0, "DURATION", "DSYS_BACKEND_TIMEOUT", "redis: a command unanswered this long fails, 503 (default 2s)", OPT_BACKEND_TIMEOUT},
	{"max-keys", 0, "N", NULL, "mem:, file: keys the table holds at most (default 1048576)", OPT_MAX_KEYS},
	{"compact-bytes", 0, "SIZE", NULL, "file: compact the log when it grows past SIZE (default 64M; 0 never)", OPT_COMPACT},
	{"window", 'w', "N", NULL, "incr -: increments in flight at once (default 128)", OPT_WINDOW},
	{"max-batch", 0, "N", NULL, "serve: items in one POST /incr array at most (default 1000)", OPT_MAX_BATCH},
	{"wait", 0, "DURATION", "DSYS_WAIT", "file: wait this long for a store another process holds (default 10s; 0 fails at once)", OPT_WAIT},
	CLI_END
};

/* The subcommands, and which of them each option applies to: the table
 * behind per-subcommand --list-options (which the completions ask), and
 * the refusal of `serve --by 5` or `get --listen`. */
static const char *const subcommands[] = {"serve", "incr", "get", "set", "del", "list", NULL};
enum { S_SERVE = 1, S_INCR = 2, S_GET = 4, S_SET = 8, S_DEL = 16, S_LIST = 32,
       S_CLI = S_INCR | S_GET | S_SET | S_DEL | S_LIST, S_ALL = S_SERVE | S_CLI };

static unsigned option_subs(int id)
{
	if (id >= SERVER_CLI_ID_MIN && id <= SERVER_CLI_ID_MAX)
		return S_SERVE;
	switch (id) {
	case OPT_SERVER:
		return S_CLI;
	case OPT_BY:
	case OPT_WINDOW:
		return S_INCR;
	case OPT_PREFIX:
		return S_LIST;
	case OPT_MAX_BATCH:
		return S_SERVE;
	default:
		return S_ALL;   /* the store's own options */
	}
}

static const char epilog[] =
	"subcommands:\n"
	"  serve                 run the counter service (POST /incr, GET/PUT/DELETE /counters/KEY,\n"
	"                        GET /counters?prefix=P, /health, /metrics)\n"
	"  incr KEY [--by N]     add to KEY and print its new value\n"
	"  incr -                read keys (or {\"key\":..,\"by\":..} lines) from stdin, one result line each\n"
	"  get KEY               print KEY's value (exit 1 when absent)\n"
	"  set KEY N             set KEY to N\n"
	"  del KEY               delete KEY (exit 1 when absent)\n"
	"  list [--prefix P]     print every key (that starts with P) and its value\n"
	"The CLI talks to --store directly, or to a running service with --server.\n";

static const struct cli_spec main_spec = {
	"dsys-counter", "SUBCOMMAND [OPTION]... [ARG]...",
	"A high-concurrency counter service and CLI on memory, file, Redis and Redis Cluster.",
	options, epilog,
};

static int on_option(void *ctx, int id, const char *arg)
{
	struct config *cfg = ctx;
	unsigned u;
	uint64_t v;
	int r = server_cli_option(&cfg->serve, id, arg);
	if (r <= 0)
		return r;
	switch (id) {
	case OPT_STORE:
		cfg->store_text = arg;
		return 0;
	case OPT_SERVER:
		cfg->server = arg;
		return 0;
	case OPT_BY:
		if (parse_i64(arg, &cfg->by) < 0)
			return cli_bad_value(NULL, arg, "expected an integer in the int64 range");
		cfg->by_set = true;
		return 0;
	case OPT_PREFIX: {
		const char *why = prefix_check(arg, strlen(arg));
		if (why)
			return cli_bad_value(NULL, arg, why);
		cfg->prefix = arg;
		return 0;
	}
	case OPT_BACKEND_TIMEOUT:
		if (parse_duration_ms(arg, &v) < 0 || v == 0 || v > 3600000)
			return cli_bad_value(NULL, arg, "expected a duration like 500ms or 2s");
		cfg->copt.timeout_ms = (unsigned)v;
		cfg->backend_timeout_ms = v;
		return 0;
	case OPT_MAX_KEYS:
		if (cli_opt_uint(arg, 1, 1u << 30, &u) < 0)
			return -1;
		cfg->copt.max_keys = u;
		return 0;
	case OPT_COMPACT:
		if (parse_size(arg, &cfg->copt.compact_bytes) < 0)
			return cli_bad_value(NULL, arg, "expected a size like 64M, or 0");
		return 0;
	case OPT_WINDOW:
		if (cli_opt_uint(arg, 1, 65536, &u) < 0)
			return -1;
		cfg->window = u;
		return 0;
	case OPT_MAX_BATCH:
		if (cli_opt_uint(arg, 1, 1000000, &u) < 0)
			return -1;
		cfg->max_batch = u;
		return 0;
	case OPT_WAIT:
		if (parse_duration_ms(arg, &v) < 0 || v > 86400000)
			return cli_bad_value(NULL, arg, "expected a duration like 500ms or 10s, or 0");
		cfg->copt.wait_ms = (unsigned)v;
		return 0;
	}
	INVARIANT(0);
	return -1;
}

/* ------------------------------------------------------------ main */

static const char *const sub_usage[] = {
	"[--store URL] [--listen HOST:PORT] [--threads N] [OPTION]...",
	"KEY [--by N] [--store URL | --server URL]\n   or: dsys-counter incr - [--window N] [--store URL | --server URL]",
	"KEY [--store URL | --server URL]",
	"KEY N [--store URL | --server URL]   (a negative N after --)",
	"KEY [--store URL | --server URL]",
	"[--prefix P] [--store URL | --server URL]",
};

static int sub_index(const char *s)
{
	for (int i = 0; s && subcommands[i]; i++)
		if (!strcmp(s, subcommands[i]))
			return i;
	return -1;
}

/* The option argv[i] names ("--store", "--sto=x", "-s"), as getopt_long
 * would take it (a unique prefix of a long name too), or NULL. */
static const struct cli_option *option_named(const char *a)
{
	if (a[0] != '-' || !a[1])
		return NULL;
	if (a[1] != '-') {
		for (const struct cli_option *o = options; o->name; o++)
			if (o->short_name == a[1])
				return o;
		return NULL;
	}
	const char *name = a + 2;
	size_t n = strcspn(name, "=");
	const struct cli_option *hit = NULL;
	for (const struct cli_option *o = options; o->name; o++) {
		if (strncmp(o->name, name, n))
			continue;
		if (strlen(o->name) == n)
			return o;
		if (hit)
			return NULL;   /* ambiguous: getopt says so */
		hit = o;
	}
	return hit;
}

/* Does argv[i] take argv[i + 1] as its value? */
static bool takes_next(const char *a, const struct cli_option *o)
{
	if (!o || !o->arg)
		return false;
	if (a[1] == '-')
		return !strchr(a, '=');
	return a[2] == '\0';     /* "-s" then the URL; "-smem:" holds it */
}

/*
 * Options may come before the subcommand (`dsys-counter --store mem:
 * list`), as git and redis-cli users expect: find the subcommand past the
 * options and their values, and move it to argv[1], so one parse with the
 * subcommand's own table reads the options on both sides.  Returns the
 * subcommand's index, or -1 when there is none.
 */
static int find_subcommand(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--"))
			return -1;
		if (a[0] == '-' && a[1]) {
			if (takes_next(a, option_named(a)))
				i++;
			continue;
		}
		int k = sub_index(a);
		if (k >= 0) {
			memmove(argv + 2, argv + 1, (size_t)(i - 1) * sizeof *argv);
			argv[1] = (char *)a;
		}
		return k;
	}
	return -1;
}

/* The options of subcommand k, for its own cli_parse: --list-options
 * then prints what applies to it, and getopt refuses the rest. */
static struct cli_option sub_options[sizeof options / sizeof options[0]];

static void sub_options_fill(int k)
{
	size_t n = 0;
	for (const struct cli_option *o = options; o->name; o++)
		if (option_subs(o->id) & (1u << k))
			sub_options[n++] = *o;
	sub_options[n] = (struct cli_option)CLI_END;
}

/* `serve --by 5`: an option of another subcommand is a usage error that
 * says so, not an unknown option. */
static int check_applies(int k, int argc, char **argv)
{
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--"))
			break;
		const struct cli_option *o = option_named(a);
		if (o && !(option_subs(o->id) & (1u << k))) {
			cli_error("--%s does not apply to %s", o->name, subcommands[k]);
			fprintf(stderr, "Try 'dsys-counter %s --help' for more information.\n", subcommands[k]);
			return -1;
		}
		if (takes_next(a, o))
			i++;
	}
	return 0;
}

static int run(int argc, char **argv)
{
	static struct config cfg;
	cli_init("dsys-counter");
	if (log_init("dsys-counter") < 0) {
		cli_error("%s", log_init_error());
		return EXIT_USAGE;
	}
	server_cli_init(&cfg.serve);
	counter_options_init(&cfg.copt);
	cfg.by = 1;
	cfg.window = DEFAULT_WINDOW;
	cfg.max_batch = DEFAULT_MAX_BATCH;

	int known = find_subcommand(argc, argv);
	const char *sub = known >= 0 ? argv[1] : NULL;
	if (known < 0)   /* --help, --version, --list-options, or a usage error */
		return cli_no_subcommand(&main_spec, argc, argv, on_option, &cfg);
	cfg.sub = sub;
	char prog[64];
	snprintf(prog, sizeof prog, "dsys-counter %s", sub);
	if (check_applies(known, argc, argv) < 0)
		return EXIT_USAGE;
	sub_options_fill(known);
	struct cli_spec spec = main_spec;
	spec.prog = prog;
	spec.usage = sub_usage[known];
	spec.options = sub_options;
	int first;
	int r = cli_parse(&spec, argc - 1, argv + 1, on_option, &cfg, &first);
	if (r >= 0)
		return r;
	cli_set_prog("dsys-counter");

	bool serve = !strcmp(sub, "serve");
	if (!serve && !getenv("DSYS_LOG_LEVEL"))
		log_set_level(LOG_WARN);   /* a CLI run says nothing unless asked */
	if (serve || !cfg.server) {
		const char *text = cfg.store_text ? cfg.store_text : store_url_from_env("mem:");
		char err[256];
		if (store_url_parse(text, &cfg.url, err, sizeof err) < 0) {
			/* store_url lists every store of dsys; name only ours */
			char *semi = strncmp(err, "unknown store", 13) ? NULL : strchr(err, ';');
			if (semi)
				*semi = '\0';
			cli_error("invalid store '%s': %s%s", text, err, semi ? "; dsys-counter takes "
			          "mem:, file:DIR, redis://HOST:PORT[/DB] or redis-cluster://H:P,H:P" : "");
			return EXIT_USAGE;
		}
		if (cfg.url.kind != STORE_MEM && cfg.url.kind != STORE_FILE &&
		    cfg.url.kind != STORE_REDIS && cfg.url.kind != STORE_REDIS_CLUSTER) {
			cli_error("%s holds no counters; use mem:, file:DIR, redis:// or redis-cluster://",
			          store_url_kind_name(cfg.url.kind));
			return EXIT_USAGE;
		}
		store_url_format(&cfg.url, cfg.url_text, sizeof cfg.url_text);
	}
	if (serve) {
		if (first < argc - 1) {
			cli_error("unexpected argument '%s'", argv[1 + first]);
			return EXIT_USAGE;
		}
		return counter_serve(&cfg);
	}
	return counter_client(&cfg, argc - 1 - first, argv + 1 + first);
}

int main(int argc, char **argv)
{
	int status = run(argc, argv);
	/* the last lines may still sit in stdio's buffer: a failure to write
	 * them is a failure of the run */
	if (cli_stdout_close() != EXIT_OK && status == EXIT_OK)
		status = EXIT_NO;
	return status;
}
