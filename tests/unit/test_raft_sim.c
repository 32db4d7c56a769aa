/*
 * test_raft_sim.c -- the simulator's own contract: deterministic runs,
 * validated configurations, fault names that round-trip.
 */
#include <errno.h>
#include <string.h>

#include "raft/sim.h"
#include "tap.h"

static void test_determinism(void)
{
	struct raft_sim_config cfg;
	struct raft_sim_result a, b, c;
	raft_sim_config_default(&cfg);
	cfg.seed = 11;
	cfg.nodes = 5;
	cfg.ticks = 400;
	is_int(raft_sim_run(&cfg, &a), 0, "a run of 5 nodes with every fault completes");
	raft_sim_run(&cfg, &b);
	ok(memcmp(&a, &b, sizeof a) == 0, "the same seed gives the same result, field for field");
	cfg.seed = 12;
	raft_sim_run(&cfg, &c);
	ok(a.messages != c.messages || a.entries_committed != c.entries_committed, "another seed gives another run");
	is_int(a.violations, 0, "and no safety property breaks");
	is_int(a.steps, 4000, "a tick is ten steps");
}

static void test_quiet_cluster(void)
{
	struct raft_sim_config cfg;
	struct raft_sim_result r;
	raft_sim_config_default(&cfg);
	cfg.seed = 5;
	cfg.faults = 0;
	raft_sim_run(&cfg, &r);
	ok(r.elections == 1 && r.leader_changes == 0, "without faults one election is enough");
	ok(r.dropped == 0 && r.duplicated == 0 && r.crashes == 0 && r.partitions == 0 && r.pauses == 0,
	   "and no fault is injected");
	ok(r.entries_committed > 100 && r.writes_checked > 100 && r.reads_checked > 100,
	   "clients get reads and writes through");
	is_str(r.linearizable, "ok", "and their history is linearizable");
}

static void test_single_node(void)
{
	struct raft_sim_config cfg;
	struct raft_sim_result r;
	raft_sim_config_default(&cfg);
	cfg.nodes = 1;
	cfg.spares = 0;
	cfg.faults = RAFT_SIM_CRASH | RAFT_SIM_DISK;
	cfg.seed = 3;
	is_int(raft_sim_run(&cfg, &r), 0, "a cluster of one runs");
	ok(r.violations == 0 && r.entries_committed > 0, "and survives its own crashes");
}

static void test_bad_config(void)
{
	struct raft_sim_config cfg;
	struct raft_sim_result r;
	raft_sim_config_default(&cfg);
	cfg.nodes = 8;
	is_int(raft_sim_run(&cfg, &r), -EINVAL, "more than 7 voters is refused");
	raft_sim_config_default(&cfg);
	cfg.clients = 0;
	is_int(raft_sim_run(&cfg, &r), -EINVAL, "so is a run without clients");
	raft_sim_config_default(&cfg);
	cfg.keys = 17;
	is_int(raft_sim_run(&cfg, &r), -EINVAL, "and more keys than the state machine holds");
}

static void test_fault_names(void)
{
	uint32_t f;
	char buf[160];
	is_int(raft_sim_faults_parse("all", &f), 0, "\"all\" parses");
	is_int(f, RAFT_SIM_ALL, "to every fault");
	raft_sim_faults_format(f, buf, sizeof buf);
	is_str(buf, "drop,dup,reorder,delay,partition,crash,disk,membership,transfer,pause",
	       "and formats as the full list");
	raft_sim_faults_parse(buf, &f);
	is_int(f, RAFT_SIM_ALL, "which parses back to the same set");
	raft_sim_faults_parse("crash,drop", &f);
	is_int(f, RAFT_SIM_CRASH | RAFT_SIM_DROP, "a list is a union");
	is_int(raft_sim_faults_parse("drop,nope", &f), -EINVAL, "an unknown fault is refused");
	is_int(raft_sim_faults_parse("none", &f), 0, "\"none\" parses");
	is_int(f, 0, "to no fault");
	enum raft_sim_scenario sc;
	is_int(raft_sim_scenario_parse("figure8", &sc), 0, "a scenario name parses");
	is_str(raft_sim_scenario_name(sc), "figure8", "and its name comes back");
	is_int(raft_sim_scenario_parse("figure9", &sc), -EINVAL, "an unknown scenario is refused");
}

static void test_where(void)
{
	uint64_t seed, step;
	ok(!raft_sim_where(&seed, &step), "outside a run there is no seed and step to report");
}

int main(void)
{
	test_determinism();
	test_quiet_cluster();
	test_single_node();
	test_bad_config();
	test_fault_names();
	test_where();
	return tap_done();
}
