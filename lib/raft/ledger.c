/*
 * raft/ledger.c -- the committed entries of a cluster, as an observer
 * records them, and the properties checked against them (raft/ledger.h).
 *
 * The record is written only from leaders: a leader's commit index covers
 * exactly the entries it has committed (Figure 2, Leaders: a majority
 * holds them and the last is of its term), so the first leader seen to
 * cover an index defines the entry there and the term it was committed
 * in.  Followers learn commit indexes from leaders, in messages that leave
 * after the leader's step, so an observer that looks at every node after
 * every input always sees the leader's commit first: a follower ahead of
 * the record holds a commit no leader made.
 *
 * Entries a node has compacted into its snapshot are not looked at: they
 * were committed when the snapshot was taken (the snapshot's own check is
 * that it installs the same state, see raft/sim.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raft/ledger.h"

struct commit_rec {
	uint64_t entry_term;  /* term of the entry committed at this index */
	uint64_t commit_term; /* term of the leader that first committed it */
};

struct raft_ledger {
	struct commit_rec *recs; /* recs[i] for index i, 1..committed */
	size_t cap;
	uint64_t committed;
};

struct raft_ledger *raft_ledger_new(void)
{
	return calloc(1, sizeof(struct raft_ledger));
}

void raft_ledger_free(struct raft_ledger *l)
{
	if (!l)
		return;
	free(l->recs);
	free(l);
}

uint64_t raft_ledger_committed(const struct raft_ledger *l)
{
	return l->committed;
}

static int reserve(struct raft_ledger *l, uint64_t index)
{
	if (index < l->cap)
		return 0;
	size_t cap = l->cap ? l->cap : 1024;
	while (cap <= index)
		cap *= 2;
	struct commit_rec *n = realloc(l->recs, cap * sizeof *n);
	if (!n)
		return -ENOMEM;
	memset(n + l->cap, 0, (cap - l->cap) * sizeof *n);
	l->recs = n;
	l->cap = cap;
	return 0;
}

int raft_ledger_commit(struct raft_ledger *l, const struct raft *r, uint64_t from, bool leader, char *why,
                       size_t len)
{
	struct raft_status st;
	raft_status(r, &st);
	if (st.commit <= from)
		return 0;
	if (!leader && st.commit > l->committed) {
		snprintf(why, len, "commit: node %u (%s, term %llu) commits index %llu, beyond any leader's commit (%llu)",
		         st.id, raft_role_name(st.role), (unsigned long long)st.term, (unsigned long long)st.commit,
		         (unsigned long long)l->committed);
		return -1;
	}
	if (reserve(l, st.commit) < 0)
		return -ENOMEM;
	uint64_t lo = from > st.snap_index ? from + 1 : st.snap_index + 1;
	for (uint64_t i = lo; i <= st.commit; i++) {
		uint64_t t;
		if (raft_term_at(r, i, &t) < 0)
			continue;
		struct commit_rec *c = &l->recs[i];
		if (i > l->committed) { /* only a leader gets here */
			*c = (struct commit_rec){.entry_term = t, .commit_term = st.term};
			continue;
		}
		if (c->commit_term && c->entry_term != t) {
			snprintf(why, len,
			         "commit: node %u (%s, term %llu) commits index %llu with term %llu, but the entry committed there has term %llu",
			         st.id, raft_role_name(st.role), (unsigned long long)st.term, (unsigned long long)i,
			         (unsigned long long)t, (unsigned long long)c->entry_term);
			return -1;
		}
	}
	if (st.commit > l->committed)
		l->committed = st.commit;
	return 0;
}

int raft_ledger_leader(struct raft_ledger *l, const struct raft *r, char *why, size_t len)
{
	struct raft_status st;
	raft_status(r, &st);
	for (uint64_t i = st.snap_index + 1; i <= l->committed; i++) {
		const struct commit_rec *c = &l->recs[i];
		if (c->commit_term == 0 || c->commit_term >= st.term)
			continue; /* committed in our term or later: no promise about our log (thesis 3.6.3) */
		uint64_t t;
		if (raft_term_at(r, i, &t) < 0 || t != c->entry_term) {
			snprintf(why, len,
			         "leader completeness: node %u leads term %llu without index %llu (term %llu), committed in term %llu",
			         st.id, (unsigned long long)st.term, (unsigned long long)i, (unsigned long long)c->entry_term,
			         (unsigned long long)c->commit_term);
			return -1;
		}
	}
	return 0;
}
