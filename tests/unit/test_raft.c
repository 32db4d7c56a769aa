/*
 * test_raft.c -- the rules of lib/raft, one test each.
 *
 * A tiny in-memory "network": every node's Ready is handled at once (no
 * disk), its messages are deep-copied into one FIFO queue, and the queue is
 * delivered until the cluster is quiet.  Links can be cut per direction,
 * and a test can also step fabricated messages into a node directly.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "raft/raft.h"
#include "tap.h"

#define N_MAX 8

struct qmsg {
	struct raft_msg m;
	struct raft_entry *ents;
	uint8_t *data;
	struct raft_snapshot snap;
};

struct net {
	int n;
	struct raft *r[N_MAX + 1];
	bool cut[N_MAX + 1][N_MAX + 1]; /* cut[a][b]: a's messages to b are lost */
	struct qmsg *q;
	size_t qhead, qlen, qcap;
	uint64_t applied_n[N_MAX + 1];   /* non-empty normal entries applied */
	char last_applied[N_MAX + 1][32];
	struct raft_read_state reads[N_MAX + 1][16];
	int n_reads[N_MAX + 1];
	int sent[RAFT_MSG_TYPE_MAX + 1]; /* messages sent, by type */
	bool voted_in_hs[N_MAX + 1];     /* a vote response left with the vote in the same Ready */
};

static void qpush(struct net *net, const struct raft_msg *m)
{
	if (net->qhead + net->qlen == net->qcap) {
		net->qcap = net->qcap ? net->qcap * 2 : 256;
		net->q = realloc(net->q, net->qcap * sizeof *net->q);
	}
	struct qmsg *x = &net->q[net->qhead + net->qlen++];
	memset(x, 0, sizeof *x);
	x->m = *m;
	size_t bytes = 0;
	for (uint32_t i = 0; i < m->n_entries; i++)
		bytes += m->entries[i].len;
	if (m->n_entries) {
		x->ents = malloc(m->n_entries * sizeof *x->ents);
		x->data = malloc(bytes + 1);
		size_t off = 0;
		for (uint32_t i = 0; i < m->n_entries; i++) {
			x->ents[i] = m->entries[i];
			if (m->entries[i].len)
				memcpy(x->data + off, m->entries[i].data, m->entries[i].len);
			x->ents[i].data = x->data + off;
			off += m->entries[i].len;
		}
		x->m.entries = x->ents;
	}
	if (m->snapshot) {
		x->snap = *m->snapshot;
		x->snap.data = NULL;
		if (m->snapshot->len) {
			uint8_t *d = malloc(m->snapshot->len);
			memcpy(d, m->snapshot->data, m->snapshot->len);
			x->snap.data = d;
		}
		x->m.snapshot = &x->snap;
	}
}

static struct net *net_new(int n, uint64_t voters, bool pre_vote, bool lease)
{
	struct net *net = calloc(1, sizeof *net);
	net->n = n;
	for (int i = 1; i <= n; i++) {
		struct raft_config cfg;
		raft_config_default(&cfg);
		cfg.id = (uint32_t)i;
		cfg.seed = 42;
		cfg.pre_vote = pre_vote;
		cfg.lease_read = lease;
		cfg.max_inflight_msgs = 4;
		cfg.max_msg_entries = 8;
		raft_new(&net->r[i], &cfg);
		struct raft_snapshot s = {.meta = {.conf = {.voters = voters}}};
		raft_restore(net->r[i], NULL, &s, NULL, 0);
	}
	return net;
}

static void net_free(struct net *net)
{
	for (int i = 1; i <= net->n; i++)
		raft_free(net->r[i]);
	for (size_t i = net->qhead; i < net->qhead + net->qlen; i++) {
		free(net->q[i].ents);
		free(net->q[i].data);
		free((void *)net->q[i].snap.data);
	}
	free(net->q);
	free(net);
}

/* Handle every pending Ready once; returns whether any node had one. */
static bool net_ready(struct net *net)
{
	bool any = false;
	for (int i = 1; i <= net->n; i++) {
		struct raft_ready rd;
		if (!raft_ready(net->r[i], &rd))
			continue;
		any = true;
		for (size_t k = 0; k < rd.n_msgs; k++) {
			const struct raft_msg *m = &rd.msgs[k];
			net->sent[m->type]++;
			if (m->type == RAFT_MSG_VOTE_RESP && !m->reject)
				net->voted_in_hs[i] = rd.hs_changed && rd.hs.vote == m->to;
			if (m->to <= (uint32_t)net->n && !net->cut[i][m->to])
				qpush(net, m);
		}
		for (size_t k = 0; k < rd.n_committed; k++) {
			const struct raft_entry *e = &rd.committed[k];
			if (e->type == RAFT_ENTRY_NORMAL && e->len) {
				net->applied_n[i]++;
				size_t l = e->len < 31 ? e->len : 31;
				memcpy(net->last_applied[i], e->data, l);
				net->last_applied[i][l] = 0;
			}
		}
		for (size_t k = 0; k < rd.n_reads && net->n_reads[i] < 16; k++)
			net->reads[i][net->n_reads[i]++] = rd.reads[k];
		raft_advance(net->r[i], &rd);
	}
	return any;
}

/* Deliver until quiet (bounded). */
static void net_flush(struct net *net)
{
	for (int round = 0; round < 10000; round++) {
		bool any = net_ready(net);
		size_t n = net->qlen;
		for (size_t k = 0; k < n; k++) {
			struct qmsg *x = &net->q[net->qhead];
			net->qhead++;
			net->qlen--;
			raft_step(net->r[x->m.to], &x->m);
			free(x->ents);
			free(x->data);
			free((void *)x->snap.data);
		}
		if (net->qlen == 0)
			net->qhead = 0;
		if (!any && n == 0)
			return;
	}
}

static void net_tick(struct net *net, int ticks)
{
	for (int t = 0; t < ticks; t++) {
		for (int i = 1; i <= net->n; i++)
			raft_tick(net->r[i]);
		net_flush(net);
	}
}

static void isolate(struct net *net, int id, bool on)
{
	for (int j = 1; j <= net->n; j++)
		net->cut[id][j] = net->cut[j][id] = on;
}

static struct raft_status st(struct net *net, int id)
{
	struct raft_status s;
	raft_status(net->r[id], &s);
	return s;
}

static int leader_of(struct net *net)
{
	int lead = 0, count = 0;
	for (int i = 1; i <= net->n; i++) {
		if (st(net, i).role == RAFT_LEADER) {
			lead = i;
			count++;
		}
	}
	return count == 1 ? lead : -count;
}

static int64_t propose(struct net *net, int id, const char *s)
{
	return raft_propose(net->r[id], s, strlen(s));
}

#define VOTERS3 ((1u << 1) | (1u << 2) | (1u << 3))
#define VOTERS5 (VOTERS3 | (1u << 4) | (1u << 5))

/* ------------------------------------------------------------ elections */

static void test_single_node(void)
{
	struct net *net = net_new(1, 1u << 1, true, false);
	net_tick(net, 25);
	ok(st(net, 1).role == RAFT_LEADER, "a lone voter elects itself");
	ok(st(net, 1).commit == 1, "and commits its no-op at once");
	ok(propose(net, 1, "x") == 2, "a proposal gets the next index");
	net_flush(net);
	is_int(net->applied_n[1], 1, "and is applied without any peer");
	net_free(net);
}

static void test_election(void)
{
	struct net *net = net_new(3, VOTERS3, true, false);
	net_tick(net, 30);
	int l = leader_of(net);
	ok(l > 0, "three voters elect exactly one leader");
	int followers = 0;
	for (int i = 1; i <= 3; i++)
		if (i != l && st(net, i).lead == (uint32_t)l && st(net, i).term == st(net, l).term)
			followers++;
	is_int(followers, 2, "the other two follow it in its term");
	ok(net->voted_in_hs[l == 1 ? 2 : 1] || net->voted_in_hs[l == 3 ? 2 : 3],
	   "a granted vote leaves in the same Ready that persists it");
	net_free(net);
}

static struct raft *lone(uint32_t id, bool check_quorum, uint64_t voters)
{
	struct raft *r;
	struct raft_config cfg;
	raft_config_default(&cfg);
	cfg.id = id;
	cfg.check_quorum = check_quorum;
	raft_new(&r, &cfg);
	struct raft_snapshot s = {.meta = {.conf = {.voters = voters}}};
	raft_restore(r, NULL, &s, NULL, 0);
	return r;
}

static void test_vote_once_per_term(void)
{
	struct raft *r = lone(1, false, VOTERS3);
	struct raft_msg v = {.type = RAFT_MSG_VOTE, .from = 2, .to = 1, .term = 5, .index = 0, .log_term = 0};
	raft_step(r, &v);
	v.from = 3;
	raft_step(r, &v);
	struct raft_ready rd;
	ok(raft_ready(r, &rd), "vote requests are answered");
	int granted = 0;
	for (size_t k = 0; k < rd.n_msgs; k++)
		granted += rd.msgs[k].type == RAFT_MSG_VOTE_RESP && !rd.msgs[k].reject;
	is_int(granted, 1, "a node grants at most one vote per term");
	is_int(rd.hs.vote, 2, "to the first candidate that asked");
	raft_advance(r, &rd);
	raft_free(r);
}

static void test_restart_lease_guard(void)
{
	struct raft *r = lone(1, true, VOTERS3);
	struct raft_msg v = {.type = RAFT_MSG_VOTE, .from = 2, .to = 1, .term = 5};
	raft_step(r, &v);
	struct raft_ready rd;
	ok(!raft_ready(r, &rd), "check-quorum: a node that just started ignores vote requests for an election timeout");
	for (int i = 0; i < 10; i++)
		raft_tick(r);
	v.term = 6;
	raft_step(r, &v);
	struct raft_status st;
	raft_status(r, &st);
	ok(st.vote == 2 && st.term == 6, "and votes once the timeout has passed");
	if (raft_ready(r, &rd))
		raft_advance(r, &rd);
	raft_free(r);
}

static void test_leader_stickiness(void)
{
	struct net *net = net_new(3, VOTERS3, false, false);
	net_tick(net, 30);
	int l = leader_of(net);
	int f = l == 1 ? 2 : 1, c = 6 - l - f;
	uint64_t term = st(net, l).term;
	struct raft_msg v = {.type = RAFT_MSG_VOTE, .from = (uint32_t)c, .to = (uint32_t)f, .term = term + 5,
	                     .index = 100, .log_term = term};
	raft_step(net->r[f], &v);
	ok(st(net, f).term == term && st(net, f).lead == (uint32_t)l,
	   "check-quorum: a follower that hears from its leader ignores a disruptive candidate");
	net_free(net);
}

static void test_up_to_date_vote(void)
{
	struct raft *r;
	struct raft_config cfg;
	raft_config_default(&cfg);
	cfg.id = 1;
	cfg.check_quorum = false;
	raft_new(&r, &cfg);
	struct raft_entry e[2] = {{.term = 1, .index = 1}, {.term = 3, .index = 2}};
	struct raft_hard_state hs = {.term = 3};
	struct raft_snapshot s = {.meta = {.conf = {.voters = VOTERS3}}};
	raft_restore(r, &hs, &s, e, 2);
	struct raft_msg v = {.type = RAFT_MSG_VOTE, .from = 2, .to = 1, .term = 4, .index = 5, .log_term = 2};
	raft_step(r, &v);
	struct raft_ready rd;
	raft_ready(r, &rd);
	ok(rd.n_msgs == 1 && rd.msgs[0].reject, "a vote is refused to a candidate whose last term is older (5.4.1)");
	raft_advance(r, &rd);
	v.from = 3;
	v.index = 2;
	v.log_term = 3;
	raft_step(r, &v);
	raft_ready(r, &rd);
	ok(rd.n_msgs == 1 && !rd.msgs[0].reject, "and granted to one with the same last term and index");
	raft_advance(r, &rd);
	raft_free(r);
}

static void test_pre_vote(void)
{
	struct net *net = net_new(3, VOTERS3, true, false);
	net_tick(net, 30);
	int l = leader_of(net);
	int x = l == 3 ? 2 : 3;
	uint64_t term = st(net, l).term;
	isolate(net, x, true);
	net_tick(net, 100);
	is_int(st(net, x).term, term, "pre-vote: a node cut off for many timeouts does not raise its term");
	isolate(net, x, false);
	net_tick(net, 30);
	ok(leader_of(net) == l && st(net, l).term == term, "and on its return the leader keeps leading in its term");
	net_free(net);
}

static void test_no_pre_vote_disrupts(void)
{
	struct net *net = net_new(3, VOTERS3, false, false);
	net_tick(net, 30);
	int l = leader_of(net);
	int x = l == 3 ? 2 : 3;
	uint64_t term = st(net, l).term;
	isolate(net, x, true);
	net_tick(net, 100);
	ok(st(net, x).term > term, "without pre-vote the cut-off node's term climbs (what pre-vote prevents)");
	net_free(net);
}

static void test_check_quorum(void)
{
	struct net *net = net_new(3, VOTERS3, true, false);
	net_tick(net, 30);
	int l = leader_of(net);
	isolate(net, l, true);
	net_tick(net, 25);
	ok(st(net, l).role != RAFT_LEADER, "check-quorum: a leader cut off from its majority steps down");
	int l2 = leader_of(net);
	ok(l2 > 0 && l2 != l, "and the majority elects another");
	isolate(net, l, false);
	net_tick(net, 5);
	ok(st(net, l).lead == (uint32_t)l2, "the old leader follows the new one when it comes back");
	net_free(net);
}

/* ------------------------------------------------------------ replication */

static void test_replication(void)
{
	struct net *net = net_new(5, VOTERS5, true, false);
	net_tick(net, 30);
	int l = leader_of(net);
	char buf[32];
	for (int i = 0; i < 100; i++) {
		snprintf(buf, sizeof buf, "cmd-%d", i);
		propose(net, l, buf);
		if (i % 7 == 0)
			net_flush(net);
	}
	net_flush(net);
	net_tick(net, 2);
	int all = 1;
	for (int i = 1; i <= 5; i++)
		all &= net->applied_n[i] == 100 && strcmp(net->last_applied[i], "cmd-99") == 0;
	ok(all, "proposals commit on a majority and every node applies all of them in order");
	int f = l == 1 ? 2 : 1;
	ok(propose(net, f, "no") == -EPERM, "a follower refuses a proposal with -EPERM");
	net_free(net);
}

static void test_replication_minority_down(void)
{
	struct net *net = net_new(5, VOTERS5, true, false);
	net_tick(net, 30);
	int l = leader_of(net);
	int a = l % 5 + 1, b = a % 5 + 1, c = b % 5 + 1;
	isolate(net, a, true);
	isolate(net, b, true);
	propose(net, l, "with-three");
	net_tick(net, 2);
	is_int(net->applied_n[l], 1, "an entry commits with three of five");
	isolate(net, c, true);
	propose(net, l, "with-two");
	net_tick(net, 2);
	is_int(net->applied_n[l], 1, "but not with two of five");
	net_free(net);
}

/* The Figure 8 rule, with fabricated acknowledgements: an entry of an
 * older term replicated on a majority is not committed by counting. */
static void test_commit_own_term_only(void)
{
	struct raft *r;
	struct raft_config cfg;
	raft_config_default(&cfg);
	cfg.id = 1;
	raft_new(&r, &cfg);
	struct raft_entry e[2] = {{.term = 1, .index = 1}, {.term = 2, .index = 2, .data = (const uint8_t *)"x", .len = 1}};
	struct raft_hard_state hs = {.term = 3, .commit = 1};
	struct raft_snapshot s = {.meta = {.conf = {.voters = VOTERS3}}};
	raft_restore(r, &hs, &s, e, 2);
	raft_campaign(r);
	struct raft_ready rd;
	raft_ready(r, &rd);
	raft_advance(r, &rd);
	struct raft_msg m = {.type = RAFT_MSG_PREVOTE_RESP, .from = 2, .to = 1, .term = 4};
	raft_step(r, &m);
	raft_ready(r, &rd);
	raft_advance(r, &rd);
	m = (struct raft_msg){.type = RAFT_MSG_VOTE_RESP, .from = 2, .to = 1, .term = 4};
	raft_step(r, &m);
	ok(st(&(struct net){.n = 1, .r = {NULL, r}}, 1).role == RAFT_LEADER, "node 1 leads term 4 with a no-op at index 3");
	raft_ready(r, &rd);
	raft_advance(r, &rd);
	m = (struct raft_msg){.type = RAFT_MSG_APP_RESP, .from = 2, .to = 1, .term = 4, .index = 2};
	raft_step(r, &m);
	raft_ready(r, &rd);
	raft_advance(r, &rd);
	struct raft_status s1;
	raft_status(r, &s1);
#ifdef RAFT_PLANTED_BUG
	skip("a planted-bug build turns the Figure 8 rule off", "a previous term's entry on a majority is not committed by counting (Figure 8)");
#else
	is_int(s1.commit, 1, "a previous term's entry on a majority is not committed by counting (Figure 8)");
#endif
	m.index = 3;
	raft_step(r, &m);
	raft_ready(r, &rd);
	raft_advance(r, &rd);
	raft_status(r, &s1);
	is_int(s1.commit, 3, "it commits with the first entry of the leader's own term");
	raft_free(r);
}

static void test_flow_control(void)
{
	struct net *net = net_new(3, VOTERS3, true, false);
	net_tick(net, 30);
	int l = leader_of(net);
	int f = l == 1 ? 2 : 1;
	propose(net, l, "warm");
	net_flush(net);
	net->cut[f][l] = true; /* f hears everything but its answers are lost */
	memset(net->sent, 0, sizeof net->sent);
	struct raft_ready rd;
	int apps_to_f = 0;
	for (int i = 0; i < 200; i++) {
		propose(net, l, "0123456789");
		if (raft_ready(net->r[l], &rd)) {
			for (size_t k = 0; k < rd.n_msgs; k++)
				apps_to_f += rd.msgs[k].type == RAFT_MSG_APP && rd.msgs[k].to == (uint32_t)f &&
				             rd.msgs[k].n_entries > 0;
			raft_advance(net->r[l], &rd);
		}
	}
	is_int(apps_to_f, 4, "flow control: no more than max_inflight_msgs appends are in flight to a silent follower");
	net_free(net);
}

static void test_batching(void)
{
	struct net *net = net_new(3, VOTERS3, true, false);
	net_tick(net, 30);
	int l = leader_of(net);
	net_flush(net);
	for (int i = 0; i < 8; i++)
		propose(net, l, "b");
	struct raft_ready rd;
	raft_ready(net->r[l], &rd);
	int apps = 0, ents = 0;
	for (size_t k = 0; k < rd.n_msgs; k++)
		if (rd.msgs[k].type == RAFT_MSG_APP) {
			apps++;
			ents += (int)rd.msgs[k].n_entries;
		}
	ok(apps == 2 && ents == 16, "proposals made between two Readies go out as one append per follower");
	raft_advance(net->r[l], &rd);
	net_free(net);
}

static void test_fast_backtracking(void)
{
	/* node 1: 10 entries of term 1 then 50 of term 2 (uncommitted);
	 * node 2: 10 of term 1 then 50 of term 3, and it will lead term 4. */
	struct raft *a, *b;
	struct raft_config cfg;
	raft_config_default(&cfg);
	cfg.check_quorum = false;
	cfg.max_msg_entries = 1000;
	struct raft_entry ea[60], eb[60];
	for (int i = 0; i < 60; i++) {
		ea[i] = (struct raft_entry){.term = i < 10 ? 1 : 2, .index = (uint64_t)i + 1};
		eb[i] = (struct raft_entry){.term = i < 10 ? 1 : 3, .index = (uint64_t)i + 1};
	}
	struct raft_snapshot s = {.meta = {.conf = {.voters = (1u << 1) | (1u << 2)}}};
	struct raft_hard_state ha = {.term = 3, .commit = 10}, hb = {.term = 3, .commit = 10};
	cfg.id = 1;
	raft_new(&a, &cfg);
	raft_restore(a, &ha, &s, ea, 60);
	cfg.id = 2;
	raft_new(&b, &cfg);
	raft_restore(b, &hb, &s, eb, 60);
	struct net net = {.n = 2, .r = {NULL, a, b}};
	raft_campaign(b);
	net_flush(&net);
	memset(net.sent, 0, sizeof net.sent);
	propose(&net, 2, "after");
	net_flush(&net);
	ok(st(&net, 2).role == RAFT_LEADER && st(&net, 1).last_index == 62, "the divergent follower's log is replaced");
	uint64_t t;
	raft_term_at(a, 60, &t);
	is_int(t, 3, "its conflicting entries now carry the leader's term");
	ok(net.sent[RAFT_MSG_APP] <= 6, "fast backtracking: 50 conflicting entries cost a few round trips, not 50 (%d appends)",
	   net.sent[RAFT_MSG_APP]);
	raft_free(a);
	raft_free(b);
	free(net.q);
}

/* ------------------------------------------------------------ snapshots */

static void test_snapshot_catch_up(void)
{
	struct net *net = net_new(3, VOTERS3, true, false);
	net_tick(net, 30);
	int l = leader_of(net);
	int f = l == 3 ? 1 : 3;
	isolate(net, f, true);
	for (int i = 0; i < 50; i++)
		propose(net, l, "s");
	net_tick(net, 2);
	struct raft_status sl = st(net, l);
	ok(raft_compact(net->r[l], sl.applied, "STATE", 5) == 0, "the leader compacts its log behind a snapshot");
	ok(st(net, l).first_index == sl.applied + 1, "and its log starts after it");
	memset(net->sent, 0, sizeof net->sent);
	isolate(net, f, false);
	net_tick(net, 15);
	ok(net->sent[RAFT_MSG_SNAP] >= 1, "a follower behind the compacted log is sent the snapshot");
	is_int(st(net, f).snap_index, sl.applied, "it installs it");
	is_int(st(net, f).commit, st(net, l).commit, "and catches up with the leader");
	propose(net, l, "t");
	net_tick(net, 2);
	is_int(net->applied_n[f], 1, "and applies what comes after");
	net_free(net);
}

/* ------------------------------------------------------------ membership */

static void test_learner(void)
{
	struct net *net = net_new(4, VOTERS3, true, false);
	net_tick(net, 30);
	int l = leader_of(net);
	ok(l > 0 && l <= 3, "three voters elect a leader; node 4 is not a member");
	ok(raft_propose_conf(net->r[l], RAFT_CONF_ADD_LEARNER, 4) > 0, "a learner is added");
	ok(raft_propose_conf(net->r[l], RAFT_CONF_ADD_VOTER, 4) == -EBUSY,
	   "a second change while one is uncommitted is refused with -EBUSY");
	net_tick(net, 3);
	propose(net, l, "L");
	net_tick(net, 3);
	is_int(net->applied_n[4], 1, "the learner receives and applies entries");
	uint64_t match = 0, last = st(net, l).last_index;
	ok(raft_progress(net->r[l], 4, &match) == 0 && match == last, "raft_progress: the leader knows the learner matches its log");
	ok(raft_progress(net->r[l == 1 ? 2 : 1], 4, &match) == -EPERM, "raft_progress off a leader is -EPERM");
	ok(raft_progress(net->r[l], 5, &match) == -ENOENT, "raft_progress of a non-member is -ENOENT");
	for (int i = 1; i <= 3; i++)
		isolate(net, i, true);
	net_tick(net, 60);
	ok(st(net, 4).role == RAFT_FOLLOWER && st(net, 4).term == st(net, l).term, "a learner never campaigns");
	for (int i = 1; i <= 3; i++)
		isolate(net, i, false);
	net_tick(net, 40);
	l = leader_of(net);
	ok(raft_propose_conf(net->r[l], RAFT_CONF_ADD_VOTER, 4) > 0, "a learner is promoted to voter");
	net_tick(net, 3);
	ok(st(net, 4).conf.voters == (VOTERS3 | (1u << 4)), "and the promotion reaches it");
	net_free(net);
}

static void test_remove_leader(void)
{
	struct net *net = net_new(3, VOTERS3, true, false);
	net_tick(net, 30);
	int l = leader_of(net);
	uint64_t term = st(net, l).term;
	ok(raft_propose_conf(net->r[l], RAFT_CONF_REMOVE, (uint32_t)l) > 0, "the leader proposes its own removal");
	net_flush(net);
	ok(st(net, l).role != RAFT_LEADER, "it steps down once the change is committed");
	net_tick(net, 40);
	int l2 = leader_of(net);
	ok(l2 > 0 && l2 != l && st(net, l2).term > term, "the remaining voters elect a new leader");
	propose(net, l2, "two");
	net_tick(net, 2);
	ok(net->applied_n[l2] == 1 && net->applied_n[l] == 0, "which commits with two voters, without the removed node");
	net_free(net);
}

/* A one-voter raft (id 1) that has just campaigned: leader of term 1,
 * its no-op not yet durable. */
static struct raft *lone_candidate(void)
{
	struct raft *r;
	struct raft_config cfg;
	raft_config_default(&cfg);
	cfg.id = 1;
	raft_new(&r, &cfg);
	struct raft_snapshot s = {.meta = {.conf = {.voters = 1u << 1}}};
	raft_restore(r, NULL, &s, NULL, 0);
	raft_campaign(r);
	return r;
}

static void test_new_leader_waits_before_conf_change(void)
{
	struct raft *r = lone_candidate();
	ok(raft_propose_conf(r, RAFT_CONF_ADD_LEARNER, 2) == -EAGAIN,
	   "a new leader refuses a membership change until an entry of its term is committed");
	struct raft_ready rd;
	while (raft_ready(r, &rd)) /* durable, then committed */
		raft_advance(r, &rd);
	ok(raft_propose_conf(r, RAFT_CONF_ADD_LEARNER, 2) > 0, "and accepts it once its no-op is");
	raft_free(r);
}

/* Asynchronous writes (raft.h): a leader's Ready may leave before it is
 * durable, but its own copy counts toward a commit only once persisted. */
static void test_async_leader_commits_only_durable(void)
{
	struct raft *r = lone_candidate();
	struct raft_ready rd;
	ok(raft_ready(r, &rd) && !rd.async, "the Ready of a new term is not asynchronous");
	raft_advance(r, &rd);
	while (raft_ready(r, &rd))
		raft_advance(r, &rd);
	int64_t i = raft_propose(r, "x", 1);
	ok(i > 0 && raft_ready(r, &rd) && rd.async && rd.n_entries == 1 && rd.n_committed == 0,
	   "a proposal's Ready on a leader is asynchronous");
	raft_advance_async(r, &rd);
	ok(!raft_ready(r, &rd), "nothing commits while its write is not durable");
	struct raft_status st;
	raft_status(r, &st);
	ok(st.commit < (uint64_t)i, "a leader alone does not commit its unpersisted entry");
	raft_persisted(r, (uint64_t)i, st.term - 1);
	ok(!raft_ready(r, &rd), "news of another term is ignored");
	raft_persisted(r, (uint64_t)i, st.term);
	ok(raft_ready(r, &rd) && rd.n_committed == 1 && rd.committed[0].index == (uint64_t)i,
	   "once persisted it commits and is handed out to apply");
	raft_advance(r, &rd);
	raft_free(r);
}

/* Leader 1 of three voters, elected in term 1 by node 2's vote; its
 * Readies are handled asynchronously and none reported durable yet. */
static struct raft *async_leader(void)
{
	struct raft *r;
	struct raft_config cfg;
	raft_config_default(&cfg);
	cfg.id = 1;
	cfg.pre_vote = false;
	cfg.check_quorum = false;
	raft_new(&r, &cfg);
	struct raft_snapshot s0 = {.meta = {.conf = {.voters = VOTERS3}}};
	raft_restore(r, NULL, &s0, NULL, 0);
	raft_campaign(r);
	struct raft_ready rd;
	while (raft_ready(r, &rd)) /* the vote, durable */
		raft_advance(r, &rd);
	struct raft_status s;
	raft_status(r, &s);
	struct raft_msg v = {.type = RAFT_MSG_VOTE_RESP, .from = 2, .to = 1, .term = s.term};
	raft_step(r, &v);
	return r;
}

/* Handle r's Ready as an asynchronous leader host does; returns how many
 * committed entries it handed out to apply (-1: no Ready, -2: not async). */
static int async_round(struct raft *r)
{
	struct raft_ready rd;
	if (!raft_ready(r, &rd))
		return -1;
	if (!rd.async) {
		raft_advance(r, &rd);
		return -2;
	}
	int n = (int)rd.n_committed;
	raft_advance_async(r, &rd);
	return n;
}

static void app_resp(struct raft *r, uint32_t from, uint64_t index)
{
	struct raft_status s;
	raft_status(r, &s);
	struct raft_msg m = {.type = RAFT_MSG_APP_RESP, .from = from, .to = 1, .term = s.term, .index = index};
	raft_step(r, &m);
}

/* Thesis 10.2.1 with three voters: followers' acknowledgements alone may
 * commit an entry the leader's disk does not hold yet, but the leader's
 * own copy never stands in for a follower's before it is durable, and
 * what is committed is applied here only once it is durable here too. */
static void test_async_leader_three_voters(void)
{
	struct raft *r = async_leader();
	struct raft_status s;
	raft_status(r, &s);
	ok(s.role == RAFT_LEADER, "three voters: leader by one vote");
	uint64_t noop = s.last_index; /* become_leader appended it */
	ok(async_round(r) == 0, "its first Ready (the no-op) may be written asynchronously");
	app_resp(r, 2, noop);
	async_round(r);
	raft_status(r, &s);
	ok(s.commit < noop, "one follower's ack does not commit the no-op while the leader's own write is on its way");
	raft_persisted(r, noop, s.term);
	ok(async_round(r) == 1, "once the leader's write is durable, the no-op commits and is applied");
	raft_status(r, &s);
	ok(s.commit == noop, "at the no-op's index");

	int64_t x = raft_propose(r, "x", 1);
	raft_persisted(r, (uint64_t)x, s.term);
	ok(async_round(r) == 0, "news of a write not yet handed out is ignored");
	app_resp(r, 2, (uint64_t)x);
	async_round(r);
	raft_status(r, &s);
	ok(s.commit < (uint64_t)x, "so one follower's ack still commits nothing");
	app_resp(r, 3, (uint64_t)x);
	ok(async_round(r) == 0, "two followers' acks commit it, but it is not applied before the leader's disk holds it");
	raft_status(r, &s);
	ok(s.commit == (uint64_t)x && s.applied < (uint64_t)x, "committed at its index, applied below it");
	raft_persisted(r, (uint64_t)x, s.term);
	ok(async_round(r) == 1, "and applied once durable here");
	raft_free(r);
}

/* A leader whose write is on its way learns of a higher term, and its
 * entry is replaced by the new leader's: the old write's news, arriving
 * late, is ignored, and the Readies of the new term are synchronous (they
 * wait for the old write too, raft.h). */
static void test_async_write_outlived_by_term(void)
{
	struct raft *r = async_leader();
	struct raft_status s;
	raft_status(r, &s);
	uint64_t t1 = s.term, noop = s.last_index;
	async_round(r);
	int64_t x = raft_propose(r, "x", 1);
	async_round(r);
	struct raft_entry e = {.term = t1 + 1, .index = (uint64_t)x, .data = (const uint8_t *)"y", .len = 1};
	struct raft_msg m = {.type = RAFT_MSG_APP, .from = 2, .to = 1, .term = t1 + 1, .index = noop, .log_term = t1,
	                     .entries = &e, .n_entries = 1};
	raft_step(r, &m);
	raft_persisted(r, (uint64_t)x, t1);
	raft_status(r, &s);
	ok(s.role == RAFT_FOLLOWER && s.term == t1 + 1, "a higher term's append makes the leader a follower");
	struct raft_ready rd;
	ok(raft_ready(r, &rd) && !rd.async, "whose Ready is synchronous");
	ok(rd.n_entries == 1 && rd.entries[0].term == t1 + 1, "and persists the new leader's entry in place of its own");
	raft_advance(r, &rd);

	/* a snapshot while the old leader's write is on its way */
	struct raft *q = async_leader();
	raft_status(q, &s);
	async_round(q);
	raft_propose(q, "x", 1);
	async_round(q);
	struct raft_snapshot snap = {.meta = {.index = 10, .term = s.term + 1, .conf = {.voters = VOTERS3}}};
	m = (struct raft_msg){.type = RAFT_MSG_SNAP, .from = 2, .to = 1, .term = s.term + 1, .snapshot = &snap};
	raft_step(q, &m);
	ok(raft_ready(q, &rd) && rd.snapshot && !rd.async, "a snapshot installed meanwhile comes in a synchronous Ready");
	raft_advance(q, &rd);
	raft_persisted(q, s.last_index + 1, s.term);
	raft_status(q, &s);
	ok(s.last_index == 10 && s.commit == 10, "and the old write's late news changes nothing");
	raft_free(q);
	raft_free(r);
}

/* ------------------------------------------------------------ transfer, reads */

static void test_transfer(void)
{
	struct net *net = net_new(3, VOTERS3, true, false);
	net_tick(net, 30);
	int l = leader_of(net);
	int t = l == 3 ? 1 : l + 1;
	uint64_t term = st(net, l).term;
	ok(raft_transfer_leader(net->r[l], (uint32_t)t) == 0, "a leader starts a transfer");
	ok(propose(net, l, "no") == -EBUSY, "and refuses proposals meanwhile");
	net_flush(net);
	ok(leader_of(net) == t && st(net, t).term == term + 1, "leader transfer: the target leads the next term");
	net_free(net);
}

static void test_read_index(void)
{
	struct net *net = net_new(3, VOTERS3, true, false);
	net_tick(net, 30);
	int l = leader_of(net);
	int f = l == 1 ? 2 : 1;
	propose(net, l, "r");
	net_flush(net);
	ok(raft_read_index(net->r[l], 77) == 0, "the leader accepts a read barrier");
	ok(net->n_reads[l] == 0, "which is not confirmed before a heartbeat round");
	net_flush(net);
	ok(net->n_reads[l] == 1 && net->reads[l][0].ctx == 77 && net->reads[l][0].index == st(net, l).commit,
	   "ReadIndex: confirmed by a majority at the commit index");
	ok(raft_read_index(net->r[f], 78) == 0, "a follower forwards a read barrier to the leader");
	net_flush(net);
	ok(net->n_reads[f] == 1 && net->reads[f][0].ctx == 78, "and gets it confirmed");
	isolate(net, l, true);
	raft_read_index(net->r[l], 79);
	net_tick(net, 3);
	is_int(net->n_reads[l], 1, "a leader cut off from its majority confirms no read");
	net_free(net);
}

static void test_lease_read(void)
{
	struct net *net = net_new(3, VOTERS3, true, true);
	net_tick(net, 30);
	int l = leader_of(net);
	net_tick(net, 2);
	raft_read_index(net->r[l], 5);
	struct raft_ready rd;
	raft_ready(net->r[l], &rd);
	ok(rd.n_reads == 1 && rd.reads[0].ctx == 5, "lease read: answered in the same Ready while the lease holds");
	raft_advance(net->r[l], &rd);
	net_flush(net);
	isolate(net, l, true);
	net_tick(net, 10);
	net->n_reads[l] = 0;
	raft_read_index(net->r[l], 6);
	net_flush(net);
	is_int(net->n_reads[l], 0, "and not once the lease has run out");
	net_free(net);
}

/* ------------------------------------------------------------ input checks */

static void test_bad_input(void)
{
	struct net *net = net_new(3, VOTERS3, true, false);
	struct raft_msg m = {.type = 99, .from = 2, .to = 1, .term = 1};
	is_int(raft_step(net->r[1], &m), -EINVAL, "an unknown message type is refused with -EINVAL");
	m = (struct raft_msg){.type = RAFT_MSG_APP, .from = 0, .to = 1, .term = 1};
	is_int(raft_step(net->r[1], &m), -EINVAL, "so is a message from node 0");
	struct raft_entry e = {.term = 1, .index = 5};
	m = (struct raft_msg){.type = RAFT_MSG_APP, .from = 2, .to = 1, .term = 1, .index = 0, .entries = &e, .n_entries = 1};
	is_int(raft_step(net->r[1], &m), -EINVAL, "and an append whose entries do not follow prevLogIndex");
	net_tick(net, 30);
	int l = leader_of(net);
	uint64_t term = st(net, l).term;
	m = (struct raft_msg){.type = RAFT_MSG_HEARTBEAT, .from = l == 1 ? 2 : 1, .to = (uint32_t)l, .term = term - 1};
	raft_step(net->r[l], &m);
	ok(st(net, l).role == RAFT_LEADER && st(net, l).term == term, "a message with a stale term changes nothing");
	net_free(net);
}


/* ------------------------------------------------------------ more rules */

static void test_conf_truncated(void)
{
	struct raft *r = lone(1, false, VOTERS3);
	uint8_t conf[16];
	struct raft_conf c = {.voters = VOTERS3, .learners = 1u << 4};
	raft_conf_encode(&c, conf);
	struct raft_entry e = {.term = 2, .index = 1, .type = RAFT_ENTRY_CONF, .data = conf, .len = 16};
	struct raft_msg m = {.type = RAFT_MSG_APP, .from = 2, .to = 1, .term = 2, .entries = &e, .n_entries = 1};
	raft_step(r, &m);
	struct raft_status st;
	raft_status(r, &st);
	ok(st.conf.learners == (1u << 4) && st.conf_index == 1, "a configuration takes effect when it is appended");
	struct raft_ready rd;
	raft_ready(r, &rd);
	raft_advance(r, &rd);
	struct raft_entry e2 = {.term = 3, .index = 1, .data = (const uint8_t *)"x", .len = 1};
	m = (struct raft_msg){.type = RAFT_MSG_APP, .from = 3, .to = 1, .term = 3, .entries = &e2, .n_entries = 1};
	raft_step(r, &m);
	raft_status(r, &st);
	ok(st.conf.learners == 0 && st.conf.voters == VOTERS3 && st.conf_index == 0,
	   "and a conflicting leader that truncates it brings the previous one back");
	raft_ready(r, &rd);
	ok(rd.n_entries == 1 && rd.entries[0].term == 3, "the replacement entry is handed out to persist");
	raft_advance(r, &rd);
	raft_free(r);
}

static void test_restore(void)
{
	struct raft *r;
	struct raft_config cfg;
	raft_config_default(&cfg);
	cfg.id = 2;
	raft_new(&r, &cfg);
	struct raft_entry e[3] = {
		{.term = 1, .index = 11, .data = (const uint8_t *)"a", .len = 1},
		{.term = 2, .index = 12, .data = (const uint8_t *)"b", .len = 1},
		{.term = 2, .index = 13, .data = (const uint8_t *)"c", .len = 1},
	};
	struct raft_hard_state hs = {.term = 5, .vote = 3, .commit = 12};
	struct raft_snapshot s = {.meta = {.index = 10, .term = 1, .conf = {.voters = VOTERS3}},
	                          .data = (const uint8_t *)"SNAP", .len = 4};
	ok(raft_restore(r, &hs, &s, e, 3) == 0, "a node restarts from its snapshot, hard state and log");
	struct raft_status st;
	raft_status(r, &st);
	ok(st.term == 5 && st.vote == 3 && st.commit == 12 && st.applied == 10 && st.last_index == 13,
	   "with its term, vote, commit index and log as they were");
	struct raft_ready rd;
	raft_ready(r, &rd);
	ok(rd.n_committed == 2 && rd.committed[0].index == 11 && rd.n_entries == 0 && !rd.hs_changed,
	   "and applies the committed entries again without persisting anything");
	raft_advance(r, &rd);
	struct raft *bad;
	raft_new(&bad, &cfg);
	hs.commit = 20;
	is_int(raft_restore(bad, &hs, &s, e, 3), -EINVAL, "a disk whose commit index lies beyond its log is refused");
	raft_free(bad);
	raft_free(r);
}

static void test_snapshot_fast_forward(void)
{
	struct raft *r;
	struct raft_config cfg;
	raft_config_default(&cfg);
	cfg.id = 1;
	raft_new(&r, &cfg);
	struct raft_entry e[5];
	for (int i = 0; i < 5; i++)
		e[i] = (struct raft_entry){.term = 1, .index = (uint64_t)i + 1};
	struct raft_hard_state hs = {.term = 1, .commit = 2};
	struct raft_snapshot s = {.meta = {.conf = {.voters = VOTERS3}}};
	raft_restore(r, &hs, &s, e, 5);
	struct raft_snapshot snap = {.meta = {.index = 4, .term = 1, .conf = {.voters = VOTERS3}}};
	struct raft_msg m = {.type = RAFT_MSG_SNAP, .from = 2, .to = 1, .term = 1, .snapshot = &snap};
	raft_step(r, &m);
	struct raft_status st;
	raft_status(r, &st);
	ok(st.commit == 4 && st.last_index == 5 && st.snap_index == 0,
	   "a snapshot of entries the follower has only moves its commit index");
	struct raft_ready rd;
	raft_ready(r, &rd);
	ok(!rd.snapshot && rd.n_msgs == 1 && rd.msgs[0].type == RAFT_MSG_APP_RESP && rd.msgs[0].index == 4,
	   "and is acknowledged without installing anything");
	raft_advance(r, &rd);
	raft_free(r);
}

static void test_transfer_lagging(void)
{
	struct net *net = net_new(3, VOTERS3, true, false);
	net_tick(net, 30);
	int l = leader_of(net);
	int t = l == 3 ? 1 : l + 1;
	isolate(net, t, true);
	for (int i = 0; i < 20; i++)
		propose(net, l, "lag");
	net_tick(net, 2);
	isolate(net, t, false);
	ok(raft_transfer_leader(net->r[l], (uint32_t)t) == 0, "a transfer to a follower that lags behind starts");
	memset(net->sent, 0, sizeof net->sent);
	net_flush(net);
	ok(leader_of(net) == t && net->applied_n[t] == 20,
	   "the target is caught up first, then leads with every entry");
	net_free(net);
}

static void test_proposal_limits(void)
{
	struct raft *r;
	struct raft_config cfg;
	raft_config_default(&cfg);
	cfg.id = 1;
	cfg.max_entry_bytes = 100;
	cfg.max_uncommitted_bytes = 250;
	raft_new(&r, &cfg);
	struct raft_snapshot s = {.meta = {.conf = {.voters = VOTERS3}}};
	raft_restore(r, NULL, &s, NULL, 0);
	struct raft_msg m = {.type = RAFT_MSG_PREVOTE_RESP, .from = 2, .to = 1, .term = 1};
	raft_campaign(r);
	raft_step(r, &m);
	m = (struct raft_msg){.type = RAFT_MSG_VOTE_RESP, .from = 2, .to = 1, .term = 1};
	raft_step(r, &m);
	uint8_t big[101] = {0};
	is_int(raft_propose(r, big, 101), -EMSGSIZE, "an entry above max_entry_bytes is refused with -EMSGSIZE");
	ok(raft_propose(r, big, 100) > 0 && raft_propose(r, big, 100) > 0, "entries within the limits are accepted");
	is_int(raft_propose(r, big, 100), -ENOBUFS, "beyond max_uncommitted_bytes the leader says -ENOBUFS");
	struct raft_ready rd;
	if (raft_ready(r, &rd))
		raft_advance(r, &rd);
	raft_free(r);
}

static void test_lost_appends_repaired(void)
{
	struct net *net = net_new(3, VOTERS3, true, false);
	net_tick(net, 30);
	int l = leader_of(net);
	int f = l == 1 ? 2 : 1;
	propose(net, l, "warm");
	net_flush(net);
	net->cut[l][f] = true;
	for (int i = 0; i < 20; i++)
		propose(net, l, "lost");
	net_flush(net);
	net->cut[l][f] = false;
	ok(net->applied_n[f] == 1, "appends lost on the way to a pipelined follower leave it behind");
	net_tick(net, 3);
	is_int(net->applied_n[f], 21, "the next heartbeat finds the gap and the leader resends, with no new proposal");
	net_free(net);
}

/* A follower restarts with a cut tail: its log is shorter than what it
 * acknowledged (outside the model; dsys-raft node's abstention covers
 * elections).  The leader takes its rejections for stale answers until
 * raft_peer_restarted makes it probe again; heartbeats carrying a commit
 * past the short log must not trip the follower either. */
static void test_peer_restarted_with_cut_log(void)
{
	struct net *net = net_new(3, VOTERS3, true, false);
	net_tick(net, 30);
	int l = leader_of(net);
	int f = l == 1 ? 2 : 1;
	for (int i = 0; i < 10; i++)
		propose(net, l, "acked");
	net_flush(net);
	struct raft_status sf = st(net, f);
	ok(sf.last_index == 11 && sf.commit == 11, "the follower holds and has committed 11 entries");
	/* the restart: entries 1..4 survive the cut, and a hard state of then */
	struct raft_entry keep[4];
	uint8_t bytes[4][16];
	for (uint64_t i = 1; i <= 4; i++) {
		const struct raft_entry *e = raft_entry_at(net->r[f], i);
		keep[i - 1] = *e;
		if (e->len)
			memcpy(bytes[i - 1], e->data, e->len);
		keep[i - 1].data = bytes[i - 1];
	}
	struct raft_hard_state hs = {.term = sf.term, .vote = 0, .commit = 3};
	raft_free(net->r[f]);
	struct raft_config cfg;
	raft_config_default(&cfg);
	cfg.id = (uint32_t)f;
	cfg.seed = 7;
	raft_new(&net->r[f], &cfg);
	struct raft_snapshot boot = {.meta = {.conf = {.voters = VOTERS3}}};
	is_int(raft_restore(net->r[f], &hs, &boot, keep, 4), 0, "the follower restarts with 4 of its 11 entries");
	propose(net, l, "new");
	net_tick(net, 5);
	ok(st(net, f).last_index < 12, "unprompted, the leader does not rewind past the match it remembers");
	is_int(raft_peer_restarted(net->r[l], (uint32_t)f), 0, "raft_peer_restarted");
	net_tick(net, 5);
	ok(st(net, f).last_index == 12 && st(net, f).commit == 12, "... and the follower is caught up (%llu)",
	   (unsigned long long)st(net, f).last_index);
	is_int(raft_peer_restarted(net->r[f], (uint32_t)l), 0, "off a leader it does nothing");
	is_int(raft_peer_restarted(net->r[l], 0), -EINVAL, "a bad id is refused");
	net_free(net);
}

/* Seed 705 of `dsys-raft sim --no-pre-vote --nodes 3,5,7 --ticks 2000`
 * (and seed 9 with pre-vote): a follower acknowledges entries of term 2,
 * and before its Ready is built an append of term 3 truncates them.  The
 * Ready persists the term-3 log, so an ack of the term-2 entries must not
 * leave with it: leader 2, still in term 2, would count it. */
static void test_ack_of_truncated_entries(void)
{
	struct raft *r = lone(1, false, VOTERS3);
	struct raft_entry e2[3] = {{.term = 2, .index = 1}, {.term = 2, .index = 2, .data = (const uint8_t *)"a", .len = 1},
	                           {.term = 2, .index = 3, .data = (const uint8_t *)"b", .len = 1}};
	struct raft_msg m = {.type = RAFT_MSG_APP, .from = 2, .to = 1, .term = 2, .entries = e2, .n_entries = 3};
	raft_step(r, &m);
	struct raft_entry e3 = {.term = 3, .index = 2, .data = (const uint8_t *)"c", .len = 1};
	m = (struct raft_msg){.type = RAFT_MSG_APP, .from = 3, .to = 1, .term = 3, .index = 1, .log_term = 2,
	                      .entries = &e3, .n_entries = 1};
	raft_step(r, &m);
	struct raft_ready rd;
	ok(raft_ready(r, &rd), "both appends are answered in one Ready");
	ok(rd.n_entries == 2 && rd.entries[1].term == 3, "which persists index 1 of term 2 and index 2 of term 3");
	int stale = 0, fresh = 0;
	for (size_t k = 0; k < rd.n_msgs; k++) {
		const struct raft_msg *x = &rd.msgs[k];
		if (x->type != RAFT_MSG_APP_RESP || x->reject)
			continue;
		stale += x->to == 2 && x->index >= 2;
		fresh += x->to == 3 && x->index == 2 && x->term == 3;
	}
	is_int(stale, 0, "no acknowledgement of the truncated term-2 entries leaves");
	is_int(fresh, 1, "the term-3 append is acknowledged");
	raft_advance(r, &rd);
	raft_free(r);
}

int main(void)
{
	test_single_node();
	test_election();
	test_vote_once_per_term();
	test_restart_lease_guard();
	test_leader_stickiness();
	test_up_to_date_vote();
	test_pre_vote();
	test_no_pre_vote_disrupts();
	test_check_quorum();
	test_replication();
	test_replication_minority_down();
	test_commit_own_term_only();
	test_flow_control();
	test_batching();
	test_fast_backtracking();
	test_snapshot_catch_up();
	test_learner();
	test_remove_leader();
	test_new_leader_waits_before_conf_change();
	test_async_leader_commits_only_durable();
	test_async_leader_three_voters();
	test_async_write_outlived_by_term();
	test_transfer();
	test_read_index();
	test_lease_read();
	test_bad_input();
	test_conf_truncated();
	test_restore();
	test_snapshot_fast_forward();
	test_transfer_lagging();
	test_proposal_limits();
	test_lost_appends_repaired();
	test_peer_restarted_with_cut_log();
	test_ack_of_truncated_entries();
	return tap_done();
}
