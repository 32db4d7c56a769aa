/*
 * dsys-register -- service registration, health and discovery from the
 * shell.
 *
 *   dsys-register add SERVICE --addr HOST:PORT [--id ID] [--meta k=v]...
 *                 [--ttl D] [--check URL] [--check-interval D] [--rise N]
 *                 [--fall N] [--deregister-after D] [-- CMD [ARG]...]
 *   dsys-register list [SERVICE] [--all]
 *   dsys-register watch SERVICE [--all]
 *   dsys-register remove SERVICE ID
 *
 * This file holds the one option table, the dispatch and the short
 * subcommands; add.c keeps an instance registered while it lives, watch.c
 * follows a service.  lib/register does the store work.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/invariant.h"
#include "base/json.h"
#include "base/log.h"
#include "cli/cli.h"
#include "dsys-register.h"
#include "obs/trace_proc.h"

enum {
	OPT_STORE = 1, OPT_ADDR, OPT_ID, OPT_META, OPT_TTL, OPT_CHECK, OPT_INTERVAL,
	OPT_RISE, OPT_FALL, OPT_DEREG, OPT_ALL, OPT_SINCE, OPT_TEMPLATE, OPT_OUT, OPT_CHECK_CMD, OPT_EXEC, OPT_MIN, OPT_ONCE, OPT_TIMEOUT, OPT_WAIT,
};

static const struct cli_option options[] = {
	{"store", 's', "URL", "DSYS_STORE", "file:DIR or etcd://H:P,... (etcd+json:// for its JSON gateway; default " REG_DEFAULT_STORE ")", OPT_STORE},
	{"addr", 'a', "HOST:PORT", NULL, "add: where the instance is reached", OPT_ADDR},
	{"id", 'i', "ID", NULL, "add: the instance's id (default: its address)", OPT_ID},
	{"meta", 'm', "KEY=VALUE", NULL, "add: a meta data field (repeatable)", OPT_META},
	{"ttl", 't', "DURATION", "DSYS_REGISTER_TTL", "add: the instance vanishes this long after its last heartbeat (default 10s)", OPT_TTL},
	{"check", 'c', "CHECK", NULL, "add: http://HOST:PORT/PATH, tcp://HOST:PORT or exec:COMMAND", OPT_CHECK},
	{"check-interval", 'I', "DURATION", NULL, "add: time between checks (default 2s)", OPT_INTERVAL},
	{"rise", 'r', "N", NULL, "add: successes that make an instance passing (default 2)", OPT_RISE},
	{"fall", 'f', "N", NULL, "add: failures that make it critical (default 3)", OPT_FALL},
	{"deregister-after", 'D', "DURATION", NULL, "add: remove a critical instance after this long (default: never)", OPT_DEREG},
	{"all", 'A', NULL, NULL, "list, watch: every instance, not only the passing ones", OPT_ALL},
	{"since", 'S', "REV", NULL, "watch (etcd://): go on after revision REV, as a watch that printed it left off", OPT_SINCE},
	{"template", 'T', "FILE", NULL, "render: the template", OPT_TEMPLATE},
	{"out", 'o', "FILE", NULL, "render: the file to write (atomically)", OPT_OUT},
	{"check-cmd", 'C', "CMD", NULL, "render: sh -c CMD must exit 0 on the new file ({} is its path) before it replaces --out", OPT_CHECK_CMD},
	{"exec", 'x', "CMD", NULL, "render: sh -c CMD after --out changed", OPT_EXEC},
	{"min", 'n', "N", NULL, "render: wait for at least N passing instances (default 1)", OPT_MIN},
	{"once", 0, NULL, NULL, "render: render once and exit", OPT_ONCE},
	{"wait", 'W', "MIN:MAX", NULL, "render: render after MIN without a change, at most MAX after the first (default 200ms:2s)", OPT_WAIT},
	{"timeout", 'w', "DURATION", NULL, "render --once: wait at most this long for --min, then exit 4 (default 10s)", OPT_TIMEOUT},
	CLI_END
};

static const char epilog[] =
	"subcommands:\n"
	"  add SERVICE --addr HOST:PORT [-- CMD...]  register while alive (and while CMD runs)\n"
	"  list [SERVICE]         the passing instances (--all: every one); no SERVICE: the services\n"
	"  watch SERVICE          the current set, then one line per up, down and change\n"
	"  remove SERVICE ID      take an instance out\n"
	"  render SERVICE --template F --out F   keep a file in step with the passing set\n"
	"Exit status: 0 done, 1 no such instance, 2 bad usage, 3 store unreachable;\n"
	"add -- CMD exits with CMD's status.\n";

static const struct cli_spec main_spec = {
	"dsys-register", "SUBCOMMAND [OPTION]... SERVICE",
	"Service registration with TTL and health checks, discovery and watch.",
	options, epilog,
};

static int duration_ms(const char *arg, uint64_t min, uint64_t *out, const char *why)
{
	uint64_t v;
	if (parse_duration_ms(arg, &v) < 0 || v < min || v > 7 * 24 * 3600 * 1000ull)
		return cli_bad_value(NULL, arg, why);
	*out = v;
	return 0;
}

static int on_option(void *ctx, int id, const char *arg)
{
	struct reg_config *cfg = ctx;
	const char *why;
	unsigned u;
	switch (id) {
	case OPT_STORE:
		cfg->store_text = arg;
		return 0;
	case OPT_ADDR:
		if (reg_addr_check(arg, &why) < 0)
			return cli_bad_value(NULL, arg, why);
		cfg->addr = arg;
		return 0;
	case OPT_ID:
		if (reg_name_check(arg, &why) < 0)
			return cli_bad_value(NULL, arg, why);
		cfg->id = arg;
		return 0;
	case OPT_META:
		if (reg_meta_add(cfg->meta, sizeof cfg->meta, arg, &why) < 0)
			return cli_bad_value(NULL, arg, why);
		return 0;
	case OPT_TTL:
		return duration_ms(arg, 1000, &cfg->ttl_ms, "expected a duration of 1s or more, like 10s");
	case OPT_CHECK:
		if (reg_check_parse(arg, &cfg->check, &why) < 0)
			return cli_bad_value(NULL, arg, why);
		return 0;
	case OPT_INTERVAL:
		return duration_ms(arg, 10, &cfg->interval_ms, "expected a duration of 10ms or more, like 2s");
	case OPT_RISE:
		if (cli_opt_uint(arg, 1, 1000, &u) < 0)
			return -1;
		cfg->rise = u;
		return 0;
	case OPT_FALL:
		if (cli_opt_uint(arg, 1, 1000, &u) < 0)
			return -1;
		cfg->fall = u;
		return 0;
	case OPT_DEREG:
		return duration_ms(arg, 1, &cfg->dereg_ms, "expected a duration like 30s");
	case OPT_ALL:
		cfg->all = true;
		return 0;
	case OPT_TEMPLATE:
		cfg->template_path = arg;
		return 0;
	case OPT_OUT:
		if (strlen(arg) > 4000)
			return cli_bad_value(NULL, arg, "longer than 4000 bytes");
		cfg->out_path = arg;
		return 0;
	case OPT_CHECK_CMD:
		cfg->check_cmd = arg;
		return 0;
	case OPT_EXEC:
		cfg->exec_cmd = arg;
		return 0;
	case OPT_MIN:
		if (cli_opt_uint(arg, 0, 1000000, &u) < 0)
			return -1;
		cfg->min = u;
		return 0;
	case OPT_WAIT: {
		char a[64];
		const char *colon = strchr(arg, ':');
		if (!colon || (size_t)(colon - arg) >= sizeof a)
			return cli_bad_value(NULL, arg, "expected MIN:MAX, like 200ms:2s");
		memcpy(a, arg, (size_t)(colon - arg));
		a[colon - arg] = '\0';
		if (parse_duration_ms(a, &cfg->wait_min_ms) < 0 || parse_duration_ms(colon + 1, &cfg->wait_max_ms) < 0 ||
		    cfg->wait_min_ms > cfg->wait_max_ms || cfg->wait_max_ms > 3600000)
			return cli_bad_value(NULL, arg, "expected MIN:MAX with MIN at most MAX, like 200ms:2s");
		return 0;
	}
	case OPT_ONCE:
		cfg->once = true;
		return 0;
	case OPT_TIMEOUT:
		return duration_ms(arg, 0, &cfg->timeout_ms, "expected a duration like 10s");
	case OPT_SINCE:
		if (parse_i64(arg, &cfg->since) < 0 || cfg->since < 1)
			return cli_bad_value(NULL, arg, "expected a revision, a number from 1");
		return 0;
	}
	INVARIANT(0);
	return -1;
}

/* ------------------------------------------------------------ list, remove */

static int cmp_inst(const void *a, const void *b)
{
	return strcmp(((const struct reg_instance *)a)->id, ((const struct reg_instance *)b)->id);
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(a, b);
}

static int store_fail(const struct reg_config *cfg, int err)
{
	cli_error("cannot read %s: %s", cfg->url_text, strerror(-err));
	return EXIT_UNREACHABLE;
}

struct etcd_client *reg_cli_etcd(struct reg_config *cfg, uv_loop_t *loop)
{
	struct etcd_client *c = etcd_client_new(loop, &cfg->url, NULL);
	if (!c)
		cli_error("cannot open %s: %s", cfg->url_text, strerror(ENOMEM));
	return c;
}

int reg_cli_etcd_fail(const struct reg_config *cfg, int err)
{
	cli_error("cannot reach %s: %s", cfg->url_text, etcd_strerror(err));
	return EXIT_UNREACHABLE;
}

/* The live instances of service (NULL: of every service), from either
 * store; 0 or an exit code after printing why. */
int reg_load(struct reg_config *cfg, const char *service, struct reg_instance **v, size_t *n)
{
	if (cfg->url.kind == STORE_FILE) {
		int r = reg_file_list(cfg->url.path, service, reg_now_ms(), v, n);
		return r < 0 ? store_fail(cfg, r) : 0;
	}
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct etcd_client *c = reg_cli_etcd(cfg, &loop);
	if (!c)
		return EXIT_UNREACHABLE;
	int64_t rev;
	int r = reg_etcd_list(c, service, 0, v, n, &rev);
	etcd_client_free(c);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	return r < 0 ? reg_cli_etcd_fail(cfg, r) : 0;
}

static int cmp_service(const void *a, const void *b)
{
	return strcmp(((const struct reg_instance *)a)->service, ((const struct reg_instance *)b)->service);
}

static int list_services(struct reg_config *cfg)
{
	if (cfg->url.kind == STORE_ETCD) {
		struct reg_instance *v;
		size_t n;
		int rc = reg_load(cfg, NULL, &v, &n);
		if (rc)
			return rc;
		if (n > 1)   /* qsort's base may not be NULL, even for 0 */
			qsort(v, n, sizeof *v, cmp_service);
		struct buf b = BUF_INIT;
		for (size_t i = 0; i < n;) {
			size_t j = i, passing = 0;
			for (; j < n && !strcmp(v[j].service, v[i].service); j++)
				passing += v[j].status == REG_PASSING;
			struct json_writer w;
			json_writer_init(&w, &b);
			json_obj_begin(&w);
			json_kv_str(&w, "service", v[i].service);
			json_kv_u64(&w, "instances", j - i);
			json_kv_u64(&w, "passing", passing);
			json_obj_end(&w);
			if (json_emit(&b) < 0)
				break;
			i = j;
		}
		buf_free(&b);
		free(v);
		return 0;
	}
	char (*names)[REG_MAX_NAME + 1];
	size_t n;
	int r = reg_file_services(cfg->url.path, &names, &n);
	if (r < 0)
		return store_fail(cfg, r);
	if (n > 1)
		qsort(names, n, sizeof *names, cmp_name);
	struct buf b = BUF_INIT;
	uint64_t now = reg_now_ms();
	for (size_t i = 0; i < n; i++) {
		struct reg_instance *v;
		size_t m;
		if (reg_file_list(cfg->url.path, names[i], now, &v, &m) < 0 || m == 0) {
			free(v);
			continue;
		}
		size_t passing = 0;
		for (size_t j = 0; j < m; j++)
			passing += v[j].status == REG_PASSING;
		free(v);
		struct json_writer w;
		json_writer_init(&w, &b);
		json_obj_begin(&w);
		json_kv_str(&w, "service", names[i]);
		json_kv_u64(&w, "instances", m);
		json_kv_u64(&w, "passing", passing);
		json_obj_end(&w);
		if (json_emit(&b) < 0)
			break;
	}
	buf_free(&b);
	free(names);
	return 0;
}

static int list(struct reg_config *cfg, const char *service)
{
	if (!service)
		return list_services(cfg);
	struct reg_instance *v;
	size_t n;
	int rc = reg_load(cfg, service, &v, &n);
	if (rc)
		return rc;
	if (n > 1)   /* qsort's base may not be NULL, even for 0 */
		qsort(v, n, sizeof *v, cmp_inst);
	struct buf b = BUF_INIT;
	for (size_t i = 0; i < n; i++) {
		if (!cfg->all && v[i].status != REG_PASSING)
			continue;
		struct json_writer w;
		json_writer_init(&w, &b);
		json_obj_begin(&w);
		reg_instance_json(&w, &v[i]);
		json_obj_end(&w);
		if (json_emit(&b) < 0)
			break;
	}
	buf_free(&b);
	free(v);
	return 0;
}

static int remove_one(struct reg_config *cfg, const char *service, const char *id)
{
	int r;
	if (cfg->url.kind == STORE_ETCD) {
		uv_loop_t loop;
		uv_loop_init(&loop);
		struct etcd_client *c = reg_cli_etcd(cfg, &loop);
		if (!c)
			return EXIT_UNREACHABLE;
		r = reg_etcd_remove(c, service, id);
		etcd_client_free(c);
		uv_run(&loop, UV_RUN_DEFAULT);
		uv_loop_close(&loop);
		if (r < 0 && r != -ENOENT)
			return reg_cli_etcd_fail(cfg, r);
	} else {
		r = reg_file_remove(cfg->url.path, service, id);
	}
	if (r == -ENOENT || r == -ENOTDIR) {
		cli_error("no instance '%s' of service '%s'", id, service);
		return EXIT_NO;
	}
	if (r < 0)
		return store_fail(cfg, r);
	struct buf b = BUF_INIT;
	struct json_writer w;
	json_writer_init(&w, &b);
	json_obj_begin(&w);
	json_kv_str(&w, "event", "removed");
	json_kv_str(&w, "service", service);
	json_kv_str(&w, "id", id);
	json_obj_end(&w);
	json_emit(&b);
	buf_free(&b);
	return 0;
}

/* ------------------------------------------------------------ main */

static const char *const subcommands[] = {"add", "list", "watch", "remove", "render", NULL};
static const char *const sub_usage[] = {
	"SERVICE --addr HOST:PORT [--id ID] [--meta K=V]... [--ttl D] [--check CHECK] [--store URL] [-- CMD [ARG]...]",
	"[SERVICE] [--all] [--store URL]",
	"SERVICE [--all] [--since REV] [--store URL]",
	"SERVICE ID [--store URL]",
	"SERVICE --template FILE --out FILE [--once] [--wait MIN:MAX] [--check-cmd CMD] [--exec CMD] [--min N] [--timeout D] [--store URL]",
};

static int check_name(const char *what, const char *s)
{
	const char *why;
	if (reg_name_check(s, &why) < 0) {
		cli_error("invalid %s '%.60s': %s", what, s, why);
		return -1;
	}
	return 0;
}

/* A span around list, remove and add, when spans have somewhere to go
 * (obs/trace_proc.h): it continues $TRACEPARENT, and add's CMD inherits
 * it as its own TRACEPARENT.  watch and render follow until stopped, so
 * they make a span per delivery and per render instead (watch.c,
 * render.c). */
static struct trace_proc *span_begin(const char *name, const char *service)
{
	struct trace_proc *tp = trace_proc_begin("dsys-register", name, TRACE_KIND_INTERNAL);
	if (tp && service)
		trace_attr_set_str(&trace_proc_span(tp)->attrs, "register.service", service);
	return tp;
}

static int span_end(struct trace_proc *tp, int rc)
{
	trace_proc_end(tp, rc, NULL);
	return rc;
}

int main(int argc, char **argv)
{
	static struct reg_config cfg;
	cli_init("dsys-register");
	if (log_init("dsys-register") < 0) {
		cli_error("%s", log_init_error());
		return EXIT_USAGE;
	}
	cfg.ttl_ms = 10000;
	cfg.interval_ms = 2000;
	cfg.rise = 2;
	cfg.fall = 3;
	cfg.min = 1;
	cfg.timeout_ms = 10000;
	cfg.wait_min_ms = 200;
	cfg.wait_max_ms = 2000;
	strcpy(cfg.meta, "{}");

	int known = cli_subcommand(subcommands, argc, argv);
	if (known < 0)
		return cli_no_subcommand(&main_spec, argc, argv, on_option, &cfg);
	const char *sub = argv[1];
	char prog[64];
	snprintf(prog, sizeof prog, "dsys-register %s", sub);
	struct cli_spec spec = main_spec;
	spec.prog = prog;
	spec.usage = sub_usage[known];

	int ac = argc - 1;
	char **av = argv + 1;
	char **cmd = NULL;
	if (!strcmp(sub, "add"))
		for (int i = 1; i < ac; i++)
			if (!strcmp(av[i], "--")) {
				cmd = av + i + 1;
				ac = i;
				break;
			}
	int first;
	int r = cli_parse(&spec, ac, av, on_option, &cfg, &first);
	if (r >= 0)
		return r;

	const char *text = cfg.store_text ? cfg.store_text : store_url_from_env(REG_DEFAULT_STORE);
	char err[256];
	if (store_url_parse(text, &cfg.url, err, sizeof err) < 0) {
		cli_error("invalid store '%s': %s", text, err);
		return EXIT_USAGE;
	}
	if (cfg.url.kind != STORE_FILE && cfg.url.kind != STORE_ETCD) {
		cli_error("%s holds no registry; use file:DIR or etcd://H:P,...", store_url_kind_name(cfg.url.kind));
		return EXIT_USAGE;
	}
	store_url_format(&cfg.url, cfg.url_text, sizeof cfg.url_text);

	int operands = ac - first;
	int want = !strcmp(sub, "remove") ? 2 : 1;
	if (operands > want) {
		cli_error("unexpected argument '%s'", av[first + want]);
		return EXIT_USAGE;
	}
	const char *service = operands > 0 ? av[first] : NULL;
	if (!service && strcmp(sub, "list")) {
		cli_error("missing SERVICE");
		return EXIT_USAGE;
	}
	if (service && check_name("service", service) < 0)
		return EXIT_USAGE;
	char span_name[40];
	snprintf(span_name, sizeof span_name, "dsys-register %s", sub);
	if (!strcmp(sub, "list")) {
		struct trace_proc *tp = span_begin(span_name, service);
		return span_end(tp, list(&cfg, service));
	}
	if (!strcmp(sub, "remove")) {
		if (operands < 2) {
			cli_error("missing ID");
			return EXIT_USAGE;
		}
		if (check_name("id", av[first + 1]) < 0)
			return EXIT_USAGE;
		struct trace_proc *tp = span_begin(span_name, service);
		return span_end(tp, remove_one(&cfg, service, av[first + 1]));
	}
	if (!strcmp(sub, "watch"))
		return reg_watch(&cfg, service);
	if (!strcmp(sub, "render"))
		return reg_render(&cfg, service);
	if (!cfg.addr) {
		cli_error("missing --addr HOST:PORT");
		return EXIT_USAGE;
	}
	if (cmd && !cmd[0]) {
		cli_error("missing command after '--'");
		return EXIT_USAGE;
	}
	if (!cfg.id)
		cfg.id = cfg.addr;
	if (check_name("id", cfg.id) < 0)
		return EXIT_USAGE;
	struct trace_proc *tp = span_begin(span_name, service); /* before CMD starts */
	return span_end(tp, reg_add(&cfg, service, cmd));
}
