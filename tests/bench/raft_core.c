/*
 * raft_core.c -- the Raft core's own throughput, with no I/O at all.
 *
 *   build/bench/raft_core [ENTRIES [ENTRY_BYTES [BATCH]]]
 *
 * Three lib/raft nodes in one process, delivery instant and in order: each
 * node's Ready is handled in turn, its messages stepped straight into their
 * targets (zero copy: the sender's Ready stays valid until its
 * raft_advance, and the receiver copies what it keeps), nothing persisted.
 * The leader gets BATCH proposals of ENTRY_BYTES each between Readies,
 * and every node compacts its log behind what it applied every 64k
 * entries, as a real node would.  Prints one JSON line: entries committed
 * (applied by the leader), seconds, entries per second.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "raft/raft.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct raft *nodes[4];
static uint64_t applied[4];

/* Handle each node's Ready once; returns whether anything happened. */
static int pump(void)
{
	int any = 0;
	for (int i = 1; i <= 3; i++) {
		struct raft_ready rd;
		if (!raft_ready(nodes[i], &rd))
			continue;
		any = 1;
		for (size_t k = 0; k < rd.n_msgs; k++)
			raft_step(nodes[rd.msgs[k].to], &rd.msgs[k]);
		if (rd.n_committed)
			applied[i] = rd.committed[rd.n_committed - 1].index;
		raft_advance(nodes[i], &rd);
	}
	return any;
}

int main(int argc, char **argv)
{
	uint64_t total = argc > 1 ? strtoull(argv[1], NULL, 10) : 5000000;
	size_t bytes = argc > 2 ? strtoul(argv[2], NULL, 10) : 100;
	unsigned batch = argc > 3 ? (unsigned)strtoul(argv[3], NULL, 10) : 512;
	uint8_t *payload = calloc(1, bytes ? bytes : 1);
	memset(payload, 'x', bytes);

	for (int i = 1; i <= 3; i++) {
		struct raft_config cfg;
		raft_config_default(&cfg);
		cfg.id = (uint32_t)i;
		cfg.seed = 1;
		cfg.max_msg_entries = 4096;
		cfg.max_msg_bytes = 4u << 20;
		cfg.check_quorum = false; /* no clock here: elect node 1 at once */
		if (raft_new(&nodes[i], &cfg) < 0)
			return 1;
		struct raft_snapshot s = {.meta = {.conf = {.voters = 0xe}}};
		raft_restore(nodes[i], NULL, &s, NULL, 0);
	}
	raft_campaign(nodes[1]);
	while (pump())
		;
	struct raft_status st;
	raft_status(nodes[1], &st);
	if (st.role != RAFT_LEADER) {
		fprintf(stderr, "raft_core: node 1 did not become leader\n");
		return 1;
	}

	uint64_t start_index = applied[1], proposed = 0, next_compact = 65536;
	double t0 = now_s();
	while (applied[1] - start_index < total) {
		for (unsigned b = 0; b < batch && proposed < total; b++) {
			if (raft_propose(nodes[1], payload, bytes) < 0)
				break;
			proposed++;
		}
		while (pump())
			;
		if (applied[1] >= next_compact) {
			for (int i = 1; i <= 3; i++)
				raft_compact(nodes[i], applied[i], NULL, 0);
			next_compact += 65536;
		}
	}
	double secs = now_s() - t0;
	uint64_t n = applied[1] - start_index;
	printf("{\"entries\":%llu,\"entry_bytes\":%zu,\"batch\":%u,\"seconds\":%.3f,\"entries_per_s\":%.0f}\n",
	       (unsigned long long)n, bytes, batch, secs, (double)n / secs);
	for (int i = 1; i <= 3; i++)
		raft_free(nodes[i]);
	free(payload);
	return 0;
}
