/*
 * raft/ledger.h -- what a Raft cluster has committed, kept by an observer
 * who sees every node, and the safety properties checked against it.
 *
 * The simulator (raft/sim) feeds it after every input it gives a node;
 * a test can feed it by hand.  It remembers, for each committed index, the
 * term of the entry committed there and the term of the leader that first
 * committed it, and checks:
 *   - leader completeness (Raft thesis 3.6.3, Figure 3.2): "if a log entry
 *     is committed in a given term, then that entry will be present in the
 *     logs of the leaders for all higher-numbered terms".  Only higher:
 *     a candidate of term T whose vote replies were delayed may still win
 *     T after a leader of T+1 has committed entries it lacks, and that is
 *     Raft working as designed, not a lost commit;
 *   - a follower commits only what a leader has committed, and only the
 *     entries committed there (a follower's commit index is never ahead of
 *     what the leader could know);
 *   - a leader never commits a different entry at a committed index.
 *
 * Memory: the ledger owns its arrays; raft_ledger_free(NULL) is a no-op.
 * Thread-safety: none.
 */
#ifndef DSYS_RAFT_LEDGER_H
#define DSYS_RAFT_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raft/raft.h"

struct raft_ledger;

struct raft_ledger *raft_ledger_new(void);
void raft_ledger_free(struct raft_ledger *l);

/* Node r's commit index moved from `from` to its current value.  With
 * leader (r leads its term, or led it until this very input: a leader
 * that commits its own removal steps down in the same step) the commit is
 * recorded as made in r's term; anyone else's is checked against the
 * record.  Returns 0, -1 with a sentence in why when a property broke, or
 * -ENOMEM. */
int raft_ledger_commit(struct raft_ledger *l, const struct raft *r, uint64_t from, bool leader, char *why,
                       size_t len);

/* Node r has just become leader of its term: it must hold every entry
 * committed in a lower term.  Returns 0 or -1 with why. */
int raft_ledger_leader(struct raft_ledger *l, const struct raft *r, char *why, size_t len);

/* The highest index any leader has committed. */
uint64_t raft_ledger_committed(const struct raft_ledger *l);

#endif
