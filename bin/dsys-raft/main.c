/*
 * dsys-raft -- the Raft consensus node, and its deterministic simulator.
 *
 * `dsys-raft sim` runs whole clusters of lib/raft in one process under the
 * faults asked for (lib/raft/sim does the work) and prints one JSON line
 * per seed.  `dsys-raft node` (node.c, api.c) runs one member of a real
 * cluster; `dsys-raft cluster` (cluster.c) starts a local one.
 *
 * A safety violation found by the simulator's checks, or a broken
 * INVARIANT inside lib/raft, ends the run with exit status 1 after naming
 * the seed, the step and the invariant, so that `dsys-raft sim --seed S`
 * replays it exactly.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "cli/cli.h"
#include "base/invariant.h"
#include "base/json.h"
#include "raft/sim.h"
#include "dsys-raft.h"

enum {
	OPT_SEED = 1, OPT_SEEDS, OPT_NODES, OPT_TICKS, OPT_CLIENTS, OPT_KEYS, OPT_FAULTS, OPT_SCENARIO,
	OPT_SNAPSHOT_EVERY, OPT_CLIENT_TIMEOUT, OPT_LEASE_READS, OPT_NO_PRE_VOTE, OPT_LIN_BUDGET, OPT_QUIET,
};

static const struct cli_option sim_options[] = {
	{"seed", 's', "S", "DSYS_SIM_SEED", "first seed, 0 to 2^53-1 (default 1)", OPT_SEED},
	{"seeds", 'n', "N", NULL, "run N seeds from S on (default 1)", OPT_SEEDS},
	{"nodes", 0, "LIST", NULL, "initial voters, 1..7, or a list used in turn, e.g. 3,5,7 (default 3)", OPT_NODES},
	{"ticks", 't', "T", "DSYS_SIM_TICKS", "Raft ticks (10 simulated ms each) per seed (default 1000)", OPT_TICKS},
	{"clients", 'c', "C", NULL, "concurrent clients, 1..15 (default 3)", OPT_CLIENTS},
	{"keys", 0, "K", NULL, "keys the clients use, 1..16 (default 3)", OPT_KEYS},
	{"faults", 'f', "LIST", "DSYS_SIM_FAULTS",
	 "drop,dup,reorder,delay,partition,crash,disk,membership,transfer,pause, all or none (default all)", OPT_FAULTS},
	{"scenario", 0, "NAME", NULL,
	 "figure8, leader-partition, snapshot-behind, remove-leader, crash-before-send (default none)", OPT_SCENARIO},
	{"snapshot-every", 0, "N", NULL, "applied entries between snapshots (default 32)", OPT_SNAPSHOT_EVERY},
	{"client-timeout", 0, "DURATION", NULL, "simulated time a client waits for a reply (default 500ms)",
	 OPT_CLIENT_TIMEOUT},
	{"lease-reads", 0, NULL, NULL, "serve reads from the leader lease instead of a ReadIndex round", OPT_LEASE_READS},
	{"no-pre-vote", 0, NULL, NULL, "campaign without the pre-vote round", OPT_NO_PRE_VOTE},
	{"lin-budget", 0, "N", NULL, "linearizability search steps per key (default 5000000)", OPT_LIN_BUDGET},
	{"quiet", 'q', NULL, NULL, "print only violations", OPT_QUIET},
	CLI_END
};

static const struct cli_spec sim_spec = {
	"dsys-raft sim",
	"[OPTION]...",
	"Simulate a Raft cluster under faults, deterministically from a seed.",
	sim_options,
	"Prints one JSON line per seed; exits 1 at the first seed that breaks a safety property.\n",
};

static const struct cli_option top_options[] = {CLI_END};
static const struct cli_spec top_spec = {
	"dsys-raft",
	"COMMAND [OPTION]...",
	"A Raft consensus node serving etcd's v3 JSON API, and its deterministic simulator.",
	top_options,
	"commands:\n  node     run one member of a cluster (dsys-raft node --help)\n"
	"  cluster  run a local cluster on free ports (dsys-raft cluster --help)\n"
	"  sim      simulate a cluster under faults (dsys-raft sim --help)\n"
	"  member   list and change a cluster's members (dsys-raft member --help)\n"
	"  put get del txn watch lease\n"
	"           the client: etcd's v3 JSON API on --endpoints (dsys-raft get --help)\n",
};

#define MAX_NODE_LIST 16

struct sim_opts {
	struct raft_sim_config cfg;
	uint64_t seeds;
	unsigned nodes[MAX_NODE_LIST];
	size_t n_nodes;
	bool quiet;
};

/* Seeds stop at 2^53 - 1: the JSON lines carry them as numbers, and jq
 * (like every reader that keeps numbers as doubles) rounds anything above,
 * so a printed seed would replay another run. */
#define SEED_MAX ((1ULL << 53) - 1)

/* "", ",a", "a,,b" and "a,": a list with an empty member is a mistake
 * (a shell variable that expanded to nothing), not "the default". */
static bool list_has_empty(const char *arg)
{
	size_t n = strlen(arg);
	return n == 0 || arg[0] == ',' || arg[n - 1] == ',' || strstr(arg, ",,") != NULL;
}

static int parse_nodes(struct sim_opts *o, const char *arg)
{
	char tmp[128];
	if (strlen(arg) >= sizeof tmp)
		return cli_bad_value(NULL, arg, "too long");
	if (list_has_empty(arg))
		return cli_bad_value(NULL, arg, "empty member: want node counts from 1 to 7, e.g. 3 or 3,5,7");
	strcpy(tmp, arg);
	o->n_nodes = 0;
	for (char *save = NULL, *t = strtok_r(tmp, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (o->n_nodes == MAX_NODE_LIST || parse_uint(t, 1, 7, &o->nodes[o->n_nodes]) < 0)
			return cli_bad_value(NULL, arg, "want node counts from 1 to 7, e.g. 3 or 3,5,7");
		o->n_nodes++;
	}
	if (o->n_nodes == 0)
		return cli_bad_value(NULL, arg, "want node counts from 1 to 7, e.g. 3 or 3,5,7");
	return 0;
}

static int on_sim_option(void *ctx, int id, const char *arg)
{
	struct sim_opts *o = ctx;
	unsigned u;
	uint64_t v;
	switch (id) {
	case OPT_SEED:
		if (parse_u64(arg, &o->cfg.seed) < 0 || o->cfg.seed > SEED_MAX)
			return cli_bad_value(NULL, arg, "want an integer from 0 to 2^53-1 (9007199254740991)");
		return 0;
	case OPT_SEEDS:
		if (parse_u64(arg, &o->seeds) < 0 || o->seeds == 0 || o->seeds > SEED_MAX)
			return cli_bad_value(NULL, arg, "want a positive integer");
		return 0;
	case OPT_NODES:
		return parse_nodes(o, arg);
	case OPT_TICKS:
		if (parse_u64(arg, &v) < 0 || v == 0 || v > 100000000)
			return cli_bad_value(NULL, arg, "want 1 to 100000000");
		o->cfg.ticks = v;
		return 0;
	case OPT_CLIENTS:
		if (parse_uint(arg, 1, 15, &u) < 0)
			return cli_bad_value(NULL, arg, "want 1 to 15");
		o->cfg.clients = u;
		return 0;
	case OPT_KEYS:
		if (parse_uint(arg, 1, 16, &u) < 0)
			return cli_bad_value(NULL, arg, "want 1 to 16");
		o->cfg.keys = u;
		return 0;
	case OPT_FAULTS:
		if (list_has_empty(arg) || raft_sim_faults_parse(arg, &o->cfg.faults) < 0)
			return cli_bad_value(NULL, arg, "want a comma-separated list of drop, dup, reorder, delay, "
			                                "partition, crash, disk, membership, transfer, pause, or all, none");
		return 0;
	case OPT_SCENARIO:
		if (raft_sim_scenario_parse(arg, &o->cfg.scenario) < 0)
			return cli_bad_value(NULL, arg, "want figure8, leader-partition, snapshot-behind, remove-leader "
			                                "or crash-before-send");
		return 0;
	case OPT_SNAPSHOT_EVERY:
		if (parse_uint(arg, 1, 1000000, &u) < 0)
			return cli_bad_value(NULL, arg, "want 1 to 1000000");
		o->cfg.snapshot_every = u;
		return 0;
	case OPT_CLIENT_TIMEOUT:
		if (parse_duration_ms(arg, &v) < 0 || v == 0 || v > 3600000)
			return cli_bad_value(NULL, arg, "want a duration from 1ms to 1h");
		o->cfg.client_timeout_ms = (uint32_t)v;
		return 0;
	case OPT_LEASE_READS:
		o->cfg.lease_read = true;
		return 0;
	case OPT_NO_PRE_VOTE:
		o->cfg.pre_vote = false;
		return 0;
	case OPT_LIN_BUDGET:
		if (parse_u64(arg, &o->cfg.lin_budget) < 0 || o->cfg.lin_budget == 0)
			return cli_bad_value(NULL, arg, "want a positive integer");
		return 0;
	case OPT_QUIET:
		o->quiet = true;
		return 0;
	}
	return -1;
}

static unsigned running_nodes;

/* A broken INVARIANT inside lib/raft: name the seed and step, exit 1. */
static void on_invariant(const char *expr, const char *file, int line)
{
	uint64_t seed = 0, step = 0;
	if (!raft_sim_where(&seed, &step))
		return;
	struct buf b = BUF_INIT;
	struct json_writer w;
	char what[512];
	snprintf(what, sizeof what, "%s at %s:%d", expr, file, line);
	json_writer_init(&w, &b);
	json_obj_begin(&w);
	json_kv_u64(&w, "seed", seed);
	json_kv_u64(&w, "nodes", running_nodes);
	json_kv_u64(&w, "step", step);
	json_kv_u64(&w, "violations", 1);
	json_kv_str(&w, "invariant", what);
	json_obj_end(&w);
	json_emit(&b);
	fprintf(stderr, "dsys-raft: seed %llu step %llu: invariant failed: %s\n", (unsigned long long)seed,
	        (unsigned long long)step, what);
	fflush(NULL);
	_exit(EXIT_NO);
}

static int print_result(const struct raft_sim_config *cfg, const struct raft_sim_result *r)
{
	struct buf b = BUF_INIT;
	struct json_writer w;
	char faults[160];
	raft_sim_faults_format(cfg->faults, faults, sizeof faults);
	json_writer_init(&w, &b);
	json_obj_begin(&w);
	json_kv_u64(&w, "seed", cfg->seed);
	json_kv_u64(&w, "nodes", cfg->nodes);
	json_kv_u64(&w, "ticks", cfg->ticks);
	json_kv_u64(&w, "steps", r->steps);
	json_kv_str(&w, "faults", faults);
	json_kv_str(&w, "scenario", raft_sim_scenario_name(cfg->scenario));
	json_kv_u64(&w, "elections", r->elections);
	json_kv_u64(&w, "leader_changes", r->leader_changes);
	json_kv_u64(&w, "entries_committed", r->entries_committed);
	json_kv_u64(&w, "reads_checked", r->reads_checked);
	json_kv_u64(&w, "writes_checked", r->writes_checked);
	json_kv_u64(&w, "ops_unknown", r->ops_unknown);
	json_kv_u64(&w, "messages", r->messages);
	json_kv_u64(&w, "dropped", r->dropped);
	json_kv_u64(&w, "duplicated", r->duplicated);
	json_kv_u64(&w, "crashes", r->crashes);
	json_kv_u64(&w, "partitions", r->partitions);
	json_kv_u64(&w, "pauses", r->pauses);
	json_kv_u64(&w, "snapshots_sent", r->snapshots_sent);
	json_kv_u64(&w, "snapshots_installed", r->snapshots_installed);
	json_kv_u64(&w, "conf_changes", r->conf_changes);
	json_kv_u64(&w, "transfers", r->transfers);
	json_kv_u64(&w, "async_writes", r->async_writes);
	json_kv_u64(&w, "async_crashes", r->async_crashes);
	json_kv_str(&w, "linearizable", r->linearizable);
	json_kv_u64(&w, "lin_keys_unknown", r->lin_keys_unknown);
	json_kv_u64(&w, "violations", (uint64_t)r->violations);
	if (r->violations) {
		json_kv_u64(&w, "step", r->violation_step);
		json_kv_str(&w, "invariant", r->violation);
	}
	json_obj_end(&w);
	int rc = json_emit(&b);
	int err = errno;
	buf_free(&b);
	errno = err;
	return rc;
}

static int sim_main(int argc, char **argv)
{
	struct sim_opts o = {.seeds = 1};
	raft_sim_config_default(&o.cfg);
	o.cfg.seed = 1;
	int first = 0;
	int r = cli_parse(&sim_spec, argc, argv, on_sim_option, &o, &first);
	if (r >= 0)
		return r;
	if (first < argc) {
		cli_error("unexpected argument '%s'", argv[first]);
		return EXIT_USAGE;
	}
	if (o.seeds - 1 > SEED_MAX - o.cfg.seed) {
		/* checked here, not per option: --seeds may come before --seed */
		cli_error("--seed %llu --seeds %llu runs past the last seed, 2^53-1 (9007199254740991)",
		          (unsigned long long)o.cfg.seed, (unsigned long long)o.seeds);
		fprintf(stderr, "Try 'dsys-raft sim --help' for more information.\n");
		return EXIT_USAGE;
	}
	if (o.n_nodes == 0)
		o.nodes[o.n_nodes++] = 3;
	invariant_hook = on_invariant;
	uint64_t unknown = 0, first_unknown = 0;
	for (uint64_t i = 0; i < o.seeds; i++) {
		struct raft_sim_config cfg = o.cfg;
		struct raft_sim_result res;
		cfg.seed = o.cfg.seed + i;
		cfg.nodes = o.nodes[i % o.n_nodes];
		running_nodes = cfg.nodes;
		int rc = raft_sim_run(&cfg, &res);
		if (rc < 0) {
			cli_error("cannot run seed %llu: %s", (unsigned long long)cfg.seed, strerror(-rc));
			return EXIT_USAGE;
		}
		bool lin_unknown = strcmp(res.linearizable, "unknown") == 0;
		if ((!o.quiet || res.violations || lin_unknown) && print_result(&cfg, &res) < 0)
			return cli_write_error(errno); /* EPIPE: the reader is gone, 0 */
		if (lin_unknown && unknown++ == 0)
			first_unknown = cfg.seed;
		if (res.violations) {
			fprintf(stderr, "dsys-raft: seed %llu step %llu: %s\n", (unsigned long long)cfg.seed,
			        (unsigned long long)res.violation_step, res.violation);
			return EXIT_NO;
		}
	}
	int wr = cli_stdout_close();
	if (wr != EXIT_OK)
		return wr;
	if (unknown) {
		/* a check that could not decide is no pass: it may hide a violation */
		cli_error("%llu seed%s whose linearizability check ran out of budget (first: seed %llu); raise --lin-budget",
		          (unsigned long long)unknown, unknown == 1 ? "" : "s", (unsigned long long)first_unknown);
		return EXIT_TIMEOUT;
	}
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	cli_init("dsys-raft");
	static const char *const names[] = {"sim", "node", "cluster", "member", NULL};
	static const char *const client_names[] = {"put", "get", "del", "txn", "watch", "lease", NULL};
	switch (cli_subcommand(names, argc, argv)) {
	case 0: return sim_main(argc - 1, argv + 1);
	case 1: return node_main(argc - 1, argv + 1);
	case 2: return cluster_main(argc - 1, argv + 1);
	case 3: return member_main(argc - 1, argv + 1);
	}
	if (cli_subcommand(client_names, argc, argv) >= 0)
		return client_main(argv[1], argc - 1, argv + 1);
	return cli_no_subcommand(&top_spec, argc, argv, NULL, NULL);
}
