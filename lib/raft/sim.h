/*
 * raft/sim.h -- a whole Raft cluster in one process, under every fault a
 * network and a disk can produce, reproducible from one seed.
 *
 * raft_sim_run() builds `nodes` lib/raft nodes (plus spare ids for
 * membership changes), each with a simulated disk and a key-value state
 * machine (put, get through ReadIndex, compare-and-swap), drives them with
 * client workloads over a simulated network, injects the faults asked for,
 * and checks the protocol's safety properties at every step:
 *   - at most one leader per term (election safety);
 *   - log matching: two persisted entries with the same index and term
 *     carry the same payload and follow the same previous term;
 *   - leader completeness: a new leader's log holds every entry committed
 *     in a lower term (Raft thesis 3.6.3; see raft/ledger.h);
 *   - a follower commits only entries some leader has committed there;
 *   - a leader's commit is on a majority of its voters' disks when it
 *     commits, and it has one membership change of its term in flight;
 *   - a message's promise is on disk when it leaves (an ack's entries, a
 *     vote), and a node votes once per term across restarts;
 *   - a snapshot records the configuration in force at its index;
 *   - a read barrier covers every entry committed before the read came;
 *   - a follower's commit index stays within what an append proved
 *     (Figure 2, AppendEntries 5); a stale response changes nothing;
 *   - state machine safety: every node applies the same entry at an index,
 *     and reaches the same state after it;
 *   - a node's term and commit index never go back (across restarts too);
 *   - at the end, the client history is linearizable (lib/raft/linearize).
 *
 * Time is simulated milliseconds; a step is one millisecond and a Raft
 * tick is 10 of them.  Everything random comes from one xoshiro256**
 * generator seeded from the seed (no clocks, no rand(), no pointer or hash
 * order), so a seed gives the same run, step for step, every time.
 *
 * Nothing here prints or exits.  A broken INVARIANT inside lib/raft aborts
 * through invariant_hook; raft_sim_where() tells such a hook which seed
 * and step were running.
 */
#ifndef DSYS_RAFT_SIM_H
#define DSYS_RAFT_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Faults, as a bit set. */
enum {
	RAFT_SIM_DROP = 1 << 0,       /* messages lost */
	RAFT_SIM_DUP = 1 << 1,        /* messages delivered twice */
	RAFT_SIM_REORDER = 1 << 2,    /* per-link jitter: messages overtake each other */
	RAFT_SIM_DELAY = 1 << 3,      /* occasional long delays */
	RAFT_SIM_PARTITION = 1 << 4,  /* symmetric, asymmetric, isolated leader, bridge */
	RAFT_SIM_CRASH = 1 << 5,      /* crash and restart; unsynced writes lost */
	RAFT_SIM_DISK = 1 << 6,       /* slow fsyncs (crashes land between write and sync) */
	RAFT_SIM_MEMBERSHIP = 1 << 7, /* learners added, promoted, voters (the leader too) removed */
	RAFT_SIM_TRANSFER = 1 << 8,   /* leader transfers */
	RAFT_SIM_PAUSE = 1 << 9,      /* a node freezes (GC, stopped VM): misses ticks, then goes on */
	RAFT_SIM_ALL = (1 << 10) - 1,
};

/* Targeted scenarios on top of the random faults. */
enum raft_sim_scenario {
	RAFT_SIM_SCENARIO_NONE,
	RAFT_SIM_SCENARIO_FIGURE8,         /* the leader crashes over and over while proposals flow */
	RAFT_SIM_SCENARIO_LEADER_PARTITION,/* the leader is cut off, its clock stops, half the clients stay with it */
	RAFT_SIM_SCENARIO_SNAPSHOT_BEHIND, /* a follower misses more than a snapshot's worth */
	RAFT_SIM_SCENARIO_REMOVE_LEADER,   /* the leader removes itself */
	RAFT_SIM_SCENARIO_CRASH_BEFORE_SEND, /* nodes crash between persisting and sending */
};

struct raft_sim_config {
	uint64_t seed;
	uint32_t nodes;          /* initial voters, 1..7; default 3 */
	uint32_t spares;         /* extra ids for membership changes; default 2 */
	uint64_t ticks;          /* Raft ticks to run; default 1000 */
	uint32_t clients;        /* default 3 */
	uint32_t keys;           /* default 3 */
	uint32_t faults;         /* RAFT_SIM_* bits */
	uint32_t snapshot_every; /* applied entries between snapshots; default 32 */
	uint32_t client_timeout_ms; /* default 500 */
	bool lease_read;
	bool pre_vote;           /* default true */
	enum raft_sim_scenario scenario;
	uint64_t lin_budget;     /* linearizability search steps per key; 0 = default, and 16x on "unknown" */
};

void raft_sim_config_default(struct raft_sim_config *cfg);

struct raft_sim_result {
	uint64_t steps;          /* simulated milliseconds run */
	uint64_t elections;      /* distinct (term, leader) pairs */
	uint64_t leader_changes; /* the newest leader changed identity */
	uint64_t entries_committed; /* highest index applied anywhere */
	uint64_t reads_checked, writes_checked; /* ops given to the linearizability check */
	uint64_t ops_unknown;    /* of which outcome unknown (reply lost or timed out) */
	uint64_t messages, dropped, duplicated;
	uint64_t crashes, partitions, pauses, snapshots_sent, snapshots_installed;
	uint64_t conf_changes, transfers;
	uint64_t async_writes;    /* leader Readies sent before their write was durable */
	uint64_t async_crashes;   /* crashes with such a write still on its way */
	const char *linearizable; /* "ok", "violation", "unknown", "skipped" */
	uint64_t lin_keys_unknown; /* keys whose search ran out of budget (after one retry with 16x) */
	int violations;          /* 0 or 1: the run stops at the first */
	uint64_t violation_step;
	char violation[512];     /* the invariant, in words, with the node and index */
};

/* Run one simulation.  Returns 0 (look at res->violations), or -EINVAL,
 * -ENOMEM. */
int raft_sim_run(const struct raft_sim_config *cfg, struct raft_sim_result *res);

/* Inside a run (for an invariant_hook): the seed and step; false if no
 * run is active. */
bool raft_sim_where(uint64_t *seed, uint64_t *step);

/* "drop,dup,..." <-> bits; parse accepts "all" and "none".  Returns 0 or
 * -EINVAL naming nothing (the caller reports the text). */
int raft_sim_faults_parse(const char *s, uint32_t *out);
void raft_sim_faults_format(uint32_t faults, char *buf, size_t len);
int raft_sim_scenario_parse(const char *s, enum raft_sim_scenario *out);
const char *raft_sim_scenario_name(enum raft_sim_scenario s);

#endif
