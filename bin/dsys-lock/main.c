/*
 * dsys-lock -- distributed locks with fencing tokens, from the shell.
 *
 *   dsys-lock acquire NAME [--ttl 30s] [--wait D | --nowait] [--limit N]
 *   dsys-lock release [NAME] [--token T]     (or acquire's JSON line on stdin)
 *   dsys-lock renew [NAME] [--token T] [--ttl D]
 *   dsys-lock status NAME
 *   dsys-lock run NAME [--ttl D] [--wait D | --nowait] [--kill-after D] -- CMD [ARG]...
 *   dsys-lock elect NAME [--value V] -- CMD [ARG]...   (run, on the store's elections)
 *   dsys-lock leader NAME [--watch]                     (elect.c)
 *
 * This file holds the one option table every subcommand parses (so
 * --list-options, --help and the man page name the same flags), the
 * dispatch, and the four short subcommands; run.c is `run`.  lib/lock does
 * the work.  Each short subcommand is one operation on a loop of its own:
 * start it, run the loop until its callback stops the loop, print, close.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/invariant.h"
#include "base/json.h"
#include "base/log.h"
#include "cli/cli.h"
#include "dsys-lock.h"
#include "obs/trace_proc.h"

enum {
	OPT_STORE = 1, OPT_TTL, OPT_WAIT, OPT_NOWAIT, OPT_LIMIT, OPT_TOKEN, OPT_OWNER,
	OPT_CONFLICT, OPT_KILL_AFTER, OPT_BACKEND_TIMEOUT, OPT_VALUE, OPT_WATCH,
};

static const struct cli_option options[] = {
	{"store", 's', "URL", "DSYS_STORE", "file:DIR, redis://HOST:PORT[/DB], redis-cluster://H:P,..., redlock://H:P,H:P,H:P or etcd://H:P,... (etcd+json:// for its JSON gateway; default " DEFAULT_STORE "; REDIS_URL is honoured)", OPT_STORE},
	{"ttl", 't', "DURATION", "DSYS_LOCK_TTL", "a grant lasts this long unless renewed (default 30s)", OPT_TTL},
	{"wait", 'w', "DURATION", NULL, "acquire, run: wait at most this long for the lock, then exit 4 (default: forever)", OPT_WAIT},
	{"nowait", 'n', NULL, NULL, "acquire, run: try once; a held lock exits 1", OPT_NOWAIT},
	{"limit", 'l', "N", NULL, "acquire, run: a semaphore of N holders (default 1)", OPT_LIMIT},
	{"token", 'T', "TOKEN", NULL, "release, renew: the grant's token (default: read acquire's JSON line on stdin)", OPT_TOKEN},
	{"owner", 'o', "TEXT", "DSYS_LOCK_OWNER", "who holds the grant, shown by status (default HOST:PID)", OPT_OWNER},
	{"conflict-exit-code", 'E', "N", NULL, "exit N instead of 1 when --nowait finds the lock held", OPT_CONFLICT},
	{"kill-after", 'k', "DURATION", NULL, "run: on lock loss, SIGKILL this long after SIGTERM (default 5s)", OPT_KILL_AFTER},
	{"value", 'V', "TEXT", NULL, "elect: the candidate's value, shown by leader (default: --owner, HOST:PID)", OPT_VALUE},
	{"watch", 'W', NULL, NULL, "leader: keep printing, one JSON line per change of leader", OPT_WATCH},
	{"backend-timeout", 0, "DURATION", "DSYS_BACKEND_TIMEOUT", "a store operation unanswered this long fails, exit 3 (default 2s)", OPT_BACKEND_TIMEOUT},
	CLI_END
};

static const char epilog[] =
	"subcommands:\n"
	"  acquire NAME          take the lock and print its grant (token, fence) as JSON\n"
	"  release [NAME]        give it back (--token T, or the JSON line of acquire on stdin)\n"
	"  renew [NAME]          extend the grant by --ttl (--token T, or acquire's JSON on stdin)\n"
	"  status NAME           print the holders, or {\"name\":..,\"held\":false}\n"
	"  run NAME -- CMD...    hold the lock while CMD runs; exit with CMD's status\n"
	"  elect NAME -- CMD...  campaign; run CMD while leader; resign when it exits\n"
	"  leader NAME           print the leader of an election (--watch: every change)\n"
	"Exit status: 0 done, 1 held elsewhere or not the holder, 2 bad usage, 3 store\n"
	"unreachable, 4 wait timed out, 5 lock lost while CMD ran.\n";

static const struct cli_spec main_spec = {
	"dsys-lock", "SUBCOMMAND [OPTION]... NAME",
	"Distributed locks, semaphores and leader election with fencing tokens on file, Redis, Redis Cluster, Redlock and etcd.",
	options, epilog,
};

static int duration_ms(const char *arg, uint64_t min, uint64_t max, uint64_t *out, const char *why)
{
	uint64_t v;
	if (parse_duration_ms(arg, &v) < 0 || v < min || v > max)
		return cli_bad_value(NULL, arg, why);
	*out = v;
	return 0;
}

static int on_option(void *ctx, int id, const char *arg)
{
	struct config *cfg = ctx;
	unsigned u;
	uint64_t v = 0;
	switch (id) {
	case OPT_STORE:
		cfg->store_text = arg;
		return 0;
	case OPT_TTL:
		cfg->ttl_set = true;
		return duration_ms(arg, 1, LOCK_MAX_TTL_MS, &cfg->ttl_ms,
		                   "expected a duration above 0 and at most 7 days, like 30s");
	case OPT_WAIT:
		return duration_ms(arg, 0, UINT64_MAX / 2, &cfg->wait_ms, "expected a duration like 10s");
	case OPT_NOWAIT:
		cfg->wait_ms = 0;
		return 0;
	case OPT_LIMIT:
		if (cli_opt_uint(arg, 1, LOCK_MAX_LIMIT, &u) < 0)
			return -1;
		cfg->limit = u;
		return 0;
	case OPT_TOKEN:
		if (!lock_token_valid(arg))
			return cli_bad_value(NULL, arg, "expected the 32 hex digits acquire printed");
		cfg->token = arg;
		return 0;
	case OPT_OWNER:
		if (strlen(arg) > LOCK_MAX_OWNER)
			return cli_bad_value(NULL, arg, "longer than 256 bytes");
		cfg->owner = arg;
		return 0;
	case OPT_CONFLICT:
		if (cli_opt_uint(arg, 0, 255, &u) < 0)
			return -1;
		cfg->conflict_exit = (int)u;
		return 0;
	case OPT_KILL_AFTER:
		return duration_ms(arg, 0, 24 * 3600 * 1000ull, &cfg->kill_after_ms,
		                   "expected a duration like 5s, or 0");
	case OPT_VALUE:
		if (strlen(arg) > LOCK_MAX_OWNER)
			return cli_bad_value(NULL, arg, "longer than 256 bytes");
		cfg->owner = arg;
		return 0;
	case OPT_WATCH:
		cfg->watch = true;
		return 0;
	case OPT_BACKEND_TIMEOUT:
		if (duration_ms(arg, 1, 3600000, &v, "expected a duration like 500ms or 2s") < 0)
			return -1;
		cfg->lopt.timeout_ms = (unsigned)v;
		return 0;
	}
	INVARIANT(0);
	return -1;
}

/* ------------------------------------------------------------ shared */

int lock_cli_open(struct config *cfg)
{
	uv_loop_init(&cfg->loop);
	int r = lock_store_open(&cfg->loop, &cfg->url, &cfg->lopt, &cfg->store);
	if (r < 0) {
		cli_error("cannot open %s: %s", cfg->url_text, strerror(-r));
		uv_loop_close(&cfg->loop);
		return r == -EPROTONOSUPPORT ? EXIT_USAGE : EXIT_UNREACHABLE;
	}
	return 0;
}

void lock_cli_close(struct config *cfg)
{
	lock_store_close(cfg->store);
	cfg->store = NULL;
	uv_run(&cfg->loop, UV_RUN_DEFAULT);
	uv_loop_close(&cfg->loop);
}

int lock_cli_fail(struct config *cfg, const char *name, int err)
{
	char wait[32];
	switch (err) {
	case -EBUSY:
		cli_error("lock '%s' is held (limit %u)", name, cfg->limit);
		return cfg->conflict_exit;
	case -ETIME:
		snprintf(wait, sizeof wait, "%llu ms", (unsigned long long)cfg->wait_ms);
		cli_error("lock '%s' is still held after waiting %s", name, wait);
		return EXIT_TIMEOUT;
	case -ENOENT:
		cli_error("lock '%s' is not held with this token (released, expired, or never granted)", name);
		return EXIT_NO;
	case -ENOTEMPTY:
		cli_error("lock '%s': its TTL cannot change on etcd while others wait behind it "
		          "(renew with the granted TTL keeps it alive)", name);
		return EXIT_NO;
	case -EINVAL:
		if (name[0] == '}')
			cli_error("lock name '%s' cannot start with '}' on %s (its hash tag would be empty)",
			          name, store_url_kind_name(cfg->url.kind));
		else if (cfg->url.kind == STORE_REDLOCK && cfg->limit > 1)
			cli_error("redlock:// has no semaphores: --limit must be 1");
		else
			cli_error("invalid lock request for '%s'", name);
		return EXIT_USAGE;
	case -EPROTO:
		cli_error("%s holds something under lock '%s' that is not a dsys-lock state", cfg->url_text, name);
		return EXIT_UNREACHABLE;
	}
	const char *why = cfg->store ? lock_store_last_error(cfg->store) : "";
	if (lock_err_unreachable(err))
		cli_error("cannot reach %s: %s", cfg->url_text, *why ? why : strerror(-err));
	else
		cli_error("lock '%s' on %s: %s", name, cfg->url_text, strerror(-err));
	return EXIT_UNREACHABLE;
}

void lock_cli_print_grant(const struct config *cfg, const struct lock_holder *h)
{
	struct buf b = BUF_INIT;
	struct json_writer w;
	char at[32];
	json_time_rfc3339(at, h->expires_ms);
	json_writer_init(&w, &b);
	json_obj_begin(&w);
	json_kv_str(&w, "name", h->name);
	json_kv_str(&w, "owner", h->owner);
	json_kv_str(&w, "token", h->token);
	json_kv_u64(&w, "fence", h->fence);
	json_key(&w, "lease");
	if (h->lease[0])
		json_str(&w, h->lease);
	else
		json_null(&w);
	json_kv_u64(&w, "ttl_ms", h->ttl_ms);
	json_kv_str(&w, "expires_at", at);
	json_kv_str(&w, "store", cfg->url_text);
	json_obj_end(&w);
	json_emit(&b);
	buf_free(&b);
}

/* ------------------------------------------------------------ the short subcommands */

struct one {
	struct config *cfg;
	bool done;
	int err;
	struct lock_holder h;
	struct lock_holder *hs;
	unsigned n;
};

static void grant_cb(void *ud, int err, const struct lock_holder *h)
{
	struct one *o = ud;
	o->done = true;
	o->err = err;
	if (h)
		o->h = *h;
	uv_stop(&o->cfg->loop);
}

static void status_cb(void *ud, int err, const struct lock_holder *hs, unsigned n)
{
	struct one *o = ud;
	o->done = true;
	o->err = err;
	if (n) {
		o->hs = malloc(sizeof *hs * n);
		if (!o->hs)
			o->err = -ENOMEM;
		else
			memcpy(o->hs, hs, sizeof *hs * n);
	}
	o->n = n;
	uv_stop(&o->cfg->loop);
}

/* Run the loop until the op in flight calls back. */
static void wait_done(struct one *o)
{
	while (!o->done)
		uv_run(&o->cfg->loop, UV_RUN_DEFAULT);
}

static int check_name(const char *name)
{
	const char *why;
	if (lock_name_check(name, strlen(name), &why) < 0) {
		char shown[64];
		snprintf(shown, sizeof shown, "%.40s%s", name, strlen(name) > 40 ? "..." : "");
		cli_error("invalid lock name '%s': %s", shown, why);
		return -1;
	}
	return 0;
}

/* release/renew without --token: the JSON line acquire printed, on stdin.
 * Fills *name (when not given) and the token into tok; 0 or an exit code. */
static int token_from_stdin(struct config *cfg, const char **name, char *namebuf, char *tok)
{
	if (isatty(STDIN_FILENO)) {
		cli_error("expected --token, or the JSON line of acquire on stdin");
		return EXIT_USAGE;
	}
	struct buf in = BUF_INIT;
	int r = buf_read_file(&in, "-", 1 << 20);
	if (r < 0) {
		cli_error("cannot read acquire's JSON line on stdin: %s", strerror(-r));
		buf_free(&in);
		return EXIT_USAGE;
	}
	size_t off;
	json_value *v = in.len ? json_parse(in.data, in.len, &off) : NULL;
	const char *jn = v ? json_get_str(v, "name") : NULL;
	const char *jt = v ? json_get_str(v, "token") : NULL;
	int rc = 0;
	if (!jn || !jt) {
		cli_error("expected --token or the JSON line of acquire on stdin ({\"name\":..,\"token\":..})");
		rc = EXIT_USAGE;
	} else if (!lock_token_valid(jt)) {
		cli_error("invalid token '%.40s' on stdin: expected 32 hex digits", jt);
		rc = EXIT_USAGE;
	} else if (*name && strcmp(*name, jn)) {
		cli_error("lock '%s' named, but stdin holds a grant of '%.40s'", *name, jn);
		rc = EXIT_USAGE;
	} else if (strlen(jn) > LOCK_MAX_NAME) {
		cli_error("invalid lock name on stdin: is longer than 256 bytes");
		rc = EXIT_USAGE;
	} else {
		strcpy(tok, jt);
		strcpy(namebuf, jn);
		*name = namebuf;
		int64_t ttl;
		if (!cfg->ttl_set && json_get_i64(v, "ttl_ms", &ttl) == 0 && ttl > 0 &&
		    (uint64_t)ttl <= LOCK_MAX_TTL_MS)
			cfg->ttl_ms = (uint64_t)ttl;
	}
	json_free(v);
	buf_free(&in);
	return rc;
}

static void print_status(const struct config *cfg, const char *name, const struct lock_holder *hs, unsigned n)
{
	struct buf b = BUF_INIT;
	struct json_writer w;
	if (n == 0) {
		json_writer_init(&w, &b);
		json_obj_begin(&w);
		json_kv_str(&w, "name", name);
		json_kv_bool(&w, "held", false);
		json_obj_end(&w);
		json_emit(&b);
	}
	uint64_t now = lock_now_ms();
	for (unsigned i = 0; i < n; i++) {
		char at[32];
		json_time_rfc3339(at, hs[i].expires_ms);
		json_writer_init(&w, &b);
		json_obj_begin(&w);
		json_kv_str(&w, "name", name);
		json_kv_bool(&w, "held", true);
		json_kv_str(&w, "owner", hs[i].owner);
		json_kv_u64(&w, "fence", hs[i].fence);
		json_kv_u64(&w, "ttl_ms", hs[i].expires_ms > now ? hs[i].expires_ms - now : 0);
		json_kv_str(&w, "expires_at", at);
		if (hs[i].pid > 0)
			json_kv_i64(&w, "pid", hs[i].pid);
		json_kv_str(&w, "store", cfg->url_text);
		json_obj_end(&w);
		json_emit(&b);
	}
	buf_free(&b);
}

static int one_command(struct config *cfg, const char *sub, const char *name)
{
	char namebuf[LOCK_MAX_NAME + 1], tok[LOCK_TOKEN_LEN + 1];
	bool with_token = !strcmp(sub, "release") || !strcmp(sub, "renew");
	if (name && check_name(name) < 0)
		return EXIT_USAGE;
	if (with_token) {
		if (cfg->token) {
			if (!name) {
				cli_error("missing lock NAME");
				return EXIT_USAGE;
			}
			strcpy(tok, cfg->token);
		} else {
			int rc = token_from_stdin(cfg, &name, namebuf, tok);
			if (rc)
				return rc;
			if (check_name(name) < 0)
				return EXIT_USAGE;
		}
	} else if (!name) {
		cli_error("missing lock NAME");
		return EXIT_USAGE;
	}
	int rc = lock_cli_open(cfg);
	if (rc)
		return rc;
	struct one o = {.cfg = cfg};
	int r;
	if (!strcmp(sub, "acquire")) {
		struct lock_request rq = {
			.name = name, .ttl_ms = cfg->ttl_ms, .limit = cfg->limit,
			.owner = cfg->owner, .pid = 0, .wait_ms = cfg->wait_ms,
		};
		r = lock_acquire(cfg->store, &rq, grant_cb, &o);
	} else if (!strcmp(sub, "release")) {
		r = lock_release(cfg->store, name, tok, grant_cb, &o);
	} else if (!strcmp(sub, "renew")) {
		r = lock_renew(cfg->store, name, tok, cfg->ttl_ms, grant_cb, &o);
	} else {
		r = lock_status(cfg->store, name, status_cb, &o);
	}
	if (r < 0) {
		o.done = true;
		o.err = r;
	}
	wait_done(&o);
	if (o.err) {
		rc = lock_cli_fail(cfg, name, o.err);
	} else if (!strcmp(sub, "acquire") || !strcmp(sub, "renew")) {
		lock_cli_print_grant(cfg, &o.h);
	} else if (!strcmp(sub, "release")) {
		struct buf b = BUF_INIT;
		struct json_writer w;
		json_writer_init(&w, &b);
		json_obj_begin(&w);
		json_kv_str(&w, "name", name);
		json_kv_bool(&w, "released", true);
		json_obj_end(&w);
		json_emit(&b);
		buf_free(&b);
	} else {
		print_status(cfg, name, o.hs, o.n);
	}
	free(o.hs);
	lock_cli_close(cfg);
	return rc;
}

/* ------------------------------------------------------------ main */

static const char *const subcommands[] = {"acquire", "release", "renew", "status", "run",
                                          "elect", "leader", NULL};
static const char *const sub_usage[] = {
	"NAME [--ttl D] [--wait D | --nowait] [--limit N] [--store URL]",
	"[NAME] [--token T] [--store URL]   (without --token: acquire's JSON line on stdin)",
	"[NAME] [--token T] [--ttl D] [--store URL]   (without --token: acquire's JSON line on stdin)",
	"NAME [--store URL]",
	"NAME [--ttl D] [--wait D | --nowait] [--limit N] [--kill-after D] [--store URL] -- CMD [ARG]...",
	"NAME [--value V] [--ttl D] [--wait D | --nowait] [--kill-after D] [--store URL] -- CMD [ARG]...",
	"NAME [--watch] [--store URL]",
};

static const struct cli_option *find_option(const char *tok)
{
	if (tok[1] != '-') {
		for (const struct cli_option *o = options; o->name; o++)
			if (o->short_name == tok[1])
				return o;
		return NULL;
	}
	size_t n = strcspn(tok + 2, "=");
	const struct cli_option *hit = NULL;
	for (const struct cli_option *o = options; o->name; o++) {
		if (strlen(o->name) == n && !strncmp(o->name, tok + 2, n))
			return o;
		if (!strncmp(o->name, tok + 2, n))
			hit = hit ? NULL : o;   /* a unique prefix, as getopt_long takes */
	}
	return hit;
}

/* A span around one subcommand, when spans have somewhere to go
 * (obs/trace_proc.h): it continues $TRACEPARENT, and run's and elect's CMD
 * inherits it as its own TRACEPARENT, so what CMD traces is its child. */
static struct trace_proc *span_begin(const struct config *cfg, const char *name)
{
	char span_name[32];
	snprintf(span_name, sizeof span_name, "dsys-lock %s", cfg->sub);
	struct trace_proc *tp = trace_proc_begin("dsys-lock", span_name, TRACE_KIND_INTERNAL);
	if (tp) {
		struct trace_attrs *a = &trace_proc_span(tp)->attrs;
		if (name)
			trace_attr_set_str(a, "lock.name", name);
		const char *kind = store_url_kind_name(cfg->url.kind); /* "redis://" */
		char scheme[24];
		snprintf(scheme, sizeof scheme, "%.*s", (int)strcspn(kind, ":"), kind);
		trace_attr_set_str(a, "lock.store", scheme);
	}
	return tp;
}

static int span_end(struct trace_proc *tp, int rc)
{
	trace_proc_end(tp, rc, NULL);
	return rc;
}

/* run: where CMD starts in av[0..ac) (av[0] is "run").  After a "--", or,
 * without one, at the second operand (NAME is the first), skipping our
 * options and their values.  Returns ac when there is no CMD. */
static int run_cmd_start(int ac, char **av, bool *dashdash)
{
	*dashdash = false;
	for (int i = 1; i < ac; i++)
		if (!strcmp(av[i], "--")) {
			*dashdash = true;
			return i;
		}
	int operands = 0;
	for (int i = 1; i < ac; i++) {
		const char *t = av[i];
		if (t[0] == '-' && t[1]) {
			const struct cli_option *o = find_option(t);
			bool inline_value = t[1] == '-' ? strchr(t, '=') != NULL : t[2] != '\0';
			if (o && o->arg && !inline_value)
				i++;
			continue;
		}
		if (++operands == 2)
			return i;
	}
	return ac;
}

int main(int argc, char **argv)
{
	static struct config cfg;
	cli_init("dsys-lock");
	lock_run_note_fds();
	if (log_init("dsys-lock") < 0) {
		cli_error("%s", log_init_error());
		return EXIT_USAGE;
	}
	if (!getenv("DSYS_LOG_LEVEL"))
		log_set_level(LOG_WARN);
	cfg.ttl_ms = DEFAULT_TTL_MS;
	cfg.wait_ms = LOCK_WAIT_FOREVER;
	cfg.limit = 1;
	cfg.conflict_exit = EXIT_NO;
	cfg.kill_after_ms = DEFAULT_KILL_AFTER_MS;
	lock_options_init(&cfg.lopt);

	int known = cli_subcommand(subcommands, argc, argv);
	if (known < 0)
		return cli_no_subcommand(&main_spec, argc, argv, on_option, &cfg);
	const char *sub = argv[1];
	cfg.sub = sub;
	char prog[64];
	snprintf(prog, sizeof prog, "dsys-lock %s", sub);
	struct cli_spec spec = main_spec;
	spec.prog = prog;
	spec.usage = sub_usage[known];

	int ac = argc - 1;
	char **av = argv + 1;
	char **cmd = NULL;
	bool is_elect = !strcmp(sub, "elect");
	bool is_run = !strcmp(sub, "run") || is_elect;
	cfg.lopt.election = is_elect || !strcmp(sub, "leader");
	if (is_run) {
		bool dashdash;
		int at = run_cmd_start(ac, av, &dashdash);
		if (at < ac)
			cmd = av + at + (dashdash ? 1 : 0);
		ac = at;
	}
	int first;
	int r = cli_parse(&spec, ac, av, on_option, &cfg, &first);
	if (r >= 0)
		return r;
	cli_set_prog("dsys-lock");

	const char *text = cfg.store_text ? cfg.store_text : store_url_from_env(DEFAULT_STORE);
	char err[256];
	if (store_url_parse(text, &cfg.url, err, sizeof err) < 0) {
		cli_error("invalid store '%s': %s", text, err);
		return EXIT_USAGE;
	}
	if (cfg.url.kind != STORE_FILE && cfg.url.kind != STORE_REDIS &&
	    cfg.url.kind != STORE_REDIS_CLUSTER && cfg.url.kind != STORE_ETCD &&
	    cfg.url.kind != STORE_REDLOCK) {
		cli_error("%s holds no locks; use file:DIR, redis://, redis-cluster://, redlock:// or etcd://",
		          store_url_kind_name(cfg.url.kind));
		return EXIT_USAGE;
	}
	store_url_format(&cfg.url, cfg.url_text, sizeof cfg.url_text);
	if (!cfg.owner) {
		char host[200] = "localhost";
		gethostname(host, sizeof host - 1);
		host[sizeof host - 1] = '\0';
		snprintf(cfg.owner_buf, sizeof cfg.owner_buf, "%s:%ld", host, (long)getpid());
		cfg.owner = cfg.owner_buf;
	}

	int operands = ac - first;
	const char *name = operands > 0 ? av[first] : NULL;
	if (operands > 1) {
		cli_error("unexpected argument '%s'", av[first + 1]);
		return EXIT_USAGE;
	}
	if (is_run) {
		if (!name) {
			cli_error("missing lock NAME");
			return EXIT_USAGE;
		}
		if (!cmd || !cmd[0]) {
			cli_error("missing command: dsys-lock run NAME [OPTION]... -- CMD [ARG]...");
			return EXIT_USAGE;
		}
		if (check_name(name) < 0)
			return EXIT_USAGE;
		if (is_elect && cfg.limit != 1) {
			cli_error("--limit does not apply to elect: an election has one leader");
			return EXIT_USAGE;
		}
		struct trace_proc *tp = span_begin(&cfg, name); /* before CMD starts */
		return span_end(tp, lock_run(&cfg, name, cmd));
	}
	if (!strcmp(sub, "leader")) {
		if (!name) {
			cli_error("missing election NAME");
			return EXIT_USAGE;
		}
		if (check_name(name) < 0)
			return EXIT_USAGE;
		struct trace_proc *tp = span_begin(&cfg, name);
		return span_end(tp, lock_leader(&cfg, name));
	}
	struct trace_proc *tp = span_begin(&cfg, name);
	return span_end(tp, one_command(&cfg, sub, name));
}
