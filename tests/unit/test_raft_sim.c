/*
 * test_raft_sim.c -- the simulator's own contract: deterministic runs,
 * validated configurations, fault names that round-trip.
 */
#include <errno.h>
#include <string.h>

#include "raft/ledger.h"
#include "raft/raft.h"
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

/* The model of asynchronous leader writes is exercised, crashes included:
 * a sweep that never queued a leader's write, or never crashed one with a
 * write on its way, would prove nothing about them. */
static void test_async_writes_exercised(void)
{
	struct raft_sim_config cfg;
	struct raft_sim_result r;
	raft_sim_config_default(&cfg);
	cfg.seed = 4; /* even: an asynchronous host */
	cfg.nodes = 3;
	cfg.ticks = 2000;
	cfg.scenario = RAFT_SIM_SCENARIO_FIGURE8;
	is_int(raft_sim_run(&cfg, &r), 0, "a Figure 8 run of 3 nodes completes");
	ok(r.async_writes > 100, "leaders send most writes before they are durable");
	ok(r.async_crashes > 0, "and some crash with such a write still on its way");
	is_int(r.violations, 0, "without breaking a safety property");
	ok(strcmp(r.linearizable, "ok") == 0, "and the history is linearizable");
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

/* ------------------------------------------------ the ledger, by hand */

static struct raft *node(uint32_t id, uint64_t voters)
{
	struct raft *r;
	struct raft_config cfg;
	raft_config_default(&cfg);
	cfg.id = id;
	cfg.pre_vote = false;
	cfg.check_quorum = false;
	raft_new(&r, &cfg);
	struct raft_snapshot snap = {.meta = {.conf = {.voters = voters}}};
	raft_restore(r, NULL, &snap, NULL, 0);
	return r;
}

/* Run r's Ready (its disk always succeeds) and keep its messages of one
 * type in out[] (copied; entries are not kept, none is needed here). */
static size_t ready(struct raft *r, uint8_t type, struct raft_msg *out, size_t max)
{
	struct raft_ready rd;
	size_t n = 0;
	if (!raft_ready(r, &rd))
		return 0;
	for (size_t k = 0; k < rd.n_msgs; k++)
		if (rd.msgs[k].type == type && n < max)
			out[n++] = rd.msgs[k];
	raft_advance(r, &rd);
	return n;
}

static bool lead(struct raft *r)
{
	struct raft_status st;
	raft_status(r, &st);
	return st.role == RAFT_LEADER;
}

/* Seed 19933 of `dsys-raft sim --nodes 3 --ticks 2000 --faults all`, which
 * the old check called a lost commit: node 2 campaigns for term 1 and node
 * 1 grants it, but the grant is delayed; node 3 wins term 2 and commits
 * index 1; then the grant arrives and node 2 leads term 1 without index 1.
 * Raft promises a committed entry only to leaders of higher terms. */
static void test_ledger_stale_candidate(void)
{
	const uint64_t v3 = 1u << 1 | 1u << 2 | 1u << 3;
	struct raft *r1 = node(1, v3), *r2 = node(2, v3), *r3 = node(3, v3);
	struct raft_ledger *l = raft_ledger_new();
	char why[256] = "";
	struct raft_msg votes[4], resp[4], app[4], ack[4];

	raft_campaign(r2);
	ready(r2, RAFT_MSG_VOTE, votes, 4);
	raft_step(r1, &votes[0]);
	is_int((int)ready(r1, RAFT_MSG_VOTE_RESP, resp, 4), 1, "node 1 grants node 2 its vote for term 1");
	ok(!resp[0].reject && resp[0].term == 1, "and the grant is held back by the network");
	raft_step(r3, &votes[1]);
	ready(r3, RAFT_MSG_VOTE_RESP, &resp[1], 1); /* node 3's grant is held back too */

	raft_campaign(r3);
	ready(r3, RAFT_MSG_VOTE, votes, 4);
	raft_step(r1, votes[0].to == 1 ? &votes[0] : &votes[1]);
	struct raft_msg grant;
	ready(r1, RAFT_MSG_VOTE_RESP, &grant, 1);
	raft_step(r3, &grant);
	ok(lead(r3), "node 3 wins term 2 with node 1's vote");
	ready(r3, RAFT_MSG_APP, app, 4);
	raft_step(r1, app[0].to == 1 ? &app[0] : &app[1]);
	ready(r1, RAFT_MSG_APP_RESP, ack, 4);
	raft_step(r3, &ack[0]);
	struct raft_status st;
	raft_status(r3, &st);
	is_int((int)st.commit, 1, "and commits its no-op at index 1");
	is_int(raft_ledger_commit(l, r3, 0, true, why, sizeof why), 0, "the ledger records index 1 as committed in term 2");

	raft_step(r2, &resp[0]); /* the delayed grant */
	ok(lead(r2), "node 2 then leads term 1 on the delayed grant");
	raft_status(r2, &st);
	ok(st.term == 1 && st.last_index == 1, "with its own no-op at index 1");
	is_int(raft_ledger_leader(l, r2, why, sizeof why), 0,
	       "and leader completeness holds: index 1 was committed in a later term");

	/* strict all the same: a leader of term 3 without index 1 is caught */
	struct raft *lone;
	struct raft_config cfg;
	raft_config_default(&cfg);
	cfg.id = 2;
	raft_new(&lone, &cfg);
	struct raft_snapshot snap = {.meta = {.conf = {.voters = 1u << 2}}};
	struct raft_entry e = {.term = 1, .index = 1};
	struct raft_hard_state hs = {.term = 2};
	raft_restore(lone, &hs, &snap, &e, 1);
	raft_campaign(lone);
	ok(lead(lone), "a node whose log has term 1 at index 1 leads term 3");
	is_int(raft_ledger_leader(l, lone, why, sizeof why), -1, "and is caught: index 1 was committed in term 2");
	ok(strstr(why, "leader completeness: node 2 leads term 3 without index 1") != NULL, "naming node, term and index");

	/* a follower may not commit what no leader has */
	struct raft *f = node(1, v3);
	struct raft_entry ents[2] = {{.term = 2, .index = 1}, {.term = 2, .index = 2}};
	struct raft_msg m = {.type = RAFT_MSG_APP, .from = 3, .to = 1, .term = 2, .commit = 2, .entries = ents,
	                     .n_entries = 2};
	raft_step(f, &m);
	is_int(raft_ledger_commit(l, f, 0, false, why, sizeof why), -1,
	       "a follower that commits past every leader's commit is caught");
	ok(strstr(why, "beyond any leader's commit (1)") != NULL, "naming the leader's commit");
	raft_free(f);
	raft_free(lone);
	raft_free(r1);
	raft_free(r2);
	raft_free(r3);
	raft_ledger_free(l);
}

int main(void)
{
	test_ledger_stale_candidate();
	test_determinism();
	test_async_writes_exercised();
	test_quiet_cluster();
	test_single_node();
	test_bad_config();
	test_fault_names();
	test_where();
	return tap_done();
}
