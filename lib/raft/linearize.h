/*
 * raft/linearize.h -- a linearizability checker for histories of client operations.
 *
 * A history records, for every operation a client issued, what it asked for,
 * what it was told, and when (in logical time) it was called and returned.
 * lin_check() decides whether some total order of the operations, each taking
 * effect at one instant between its call and its return, explains every
 * answer under a sequential model.  The default model is a key-value store
 * (put, get, compare-and-swap, delete); other programs plug in their own
 * model (a lock, a register) through struct lin_model.
 *
 *   struct lin_history *h = lin_history_new();
 *   int op = lin_call(h, client, LIN_PUT, key, value, 0, now);
 *   ...
 *   lin_return(h, op, 1, 0, later);        // or lin_lost(h, op)
 *   struct lin_result r;
 *   switch (lin_check(h, 0, &r)) { case LIN_VIOLATION: puts(r.desc); ... }
 *   lin_history_free(h);
 *
 * Keys and values are uint64_t: the simulator maps its keys to ids.  Ops on
 * different keys are checked independently (a key is the unit of
 * P-compositionality), so a model must keep all of its state per key.
 *
 * Time is any monotone uint64_t clock the caller chooses (simulator steps,
 * ticks).  Two ops are ordered only when one returned strictly before the
 * other was called: equal times count as concurrent, which is the safe
 * reading of a coarse clock.  A caller with a fine clock loses nothing.
 *
 * Unknown outcomes: an op whose reply was lost (lin_lost) or that is still
 * pending when lin_check runs may have taken effect at any instant after its
 * call, or never; its output is not checked.
 *
 * Ownership: the history owns its ops; lin_result is filled in place and
 * owns nothing.  A history is not thread-safe; separate histories are
 * independent.  Nothing here prints, exits or reads a clock, and the result
 * (verdict and description) depends only on the ops and their order of
 * recording.
 */
#ifndef DSYS_LINEARIZE_H
#define DSYS_LINEARIZE_H

#include <stddef.h>
#include <stdint.h>

/* Verdicts of lin_check (errors are negative errno codes). */
#define LIN_OK        0 /* linearizable */
#define LIN_VIOLATION 1 /* definitely not linearizable */
#define LIN_UNKNOWN   2 /* search budget or cache limit exhausted on some key */

/* Kinds of the key-value model.  0 is never a valid kind. */
#define LIN_PUT 1 /* arg0 = value; output unused */
#define LIN_GET 2 /* output: ok = found, value = the value when found */
#define LIN_CAS 3 /* arg0 = expected, arg1 = new; ok = swapped.  A CAS on
                   * an absent key fails. */
#define LIN_DEL 4 /* output unused; the key becomes absent */

/* Return time of an op whose outcome is unknown (lost or still pending). */
#define LIN_TIME_UNKNOWN UINT64_MAX

/* Search steps per key when lin_check is given a budget of 0. */
#define LIN_BUDGET_DEFAULT 5000000ull
/* Bytes of visited-state cache per key before giving up with LIN_UNKNOWN. */
#define LIN_CACHE_LIMIT_DEFAULT (256u << 20)

/* One recorded operation; models read it in their callbacks. */
struct lin_op {
	uint64_t key;    /* ops on different keys are independent */
	uint64_t arg[2]; /* inputs, meaning set by the kind */
	uint64_t value;  /* output value (GET: the value read) */
	uint64_t call;   /* logical time of the call */
	uint64_t ret;    /* logical time of the return, LIN_TIME_UNKNOWN if none */
	uint32_t client; /* for descriptions only */
	uint16_t kind;   /* model-defined, nonzero */
	uint8_t ok;      /* output flag (GET: found; CAS: swapped) */
	uint8_t unknown; /* 1: the outcome was lost or never came */
};

/* A model's per-key state: fixed size, compared and hashed bytewise, so a
 * model must leave words it does not use at zero. */
#define LIN_STATE_WORDS 4
struct lin_state {
	uint64_t w[LIN_STATE_WORDS];
};

/*
 * A sequential model.  All callbacks are pure functions of their arguments.
 *   init:     the state of a key no op has touched.
 *   step:     apply op to *s, writing the state after it to *next; return 1
 *             if op's recorded output is what the model answers from *s, 0 if
 *             not.  When op->unknown is set the output is not checked: step
 *             must return 1 and only compute *next.
 *   readonly: optional; nonzero if op never changes the state.  Unknown
 *             read-only ops constrain nothing and are dropped before search.
 *   blind:    optional; nonzero if neither step's verdict nor its next state
 *             depends on the state it starts from (a put, a delete).  It
 *             lets the search skip placing a lost op where a blind op
 *             overwrites it unseen: a large saving when many replies were
 *             lost and some of those ops took effect late.
 *   describe_op / describe_state: optional; short text for reports
 *             ("get -> 5", "value=5"); snprintf semantics.
 */
struct lin_model {
	const char *name;
	unsigned kinds;       /* valid kinds are 1..kinds */
	unsigned state_words; /* 1..LIN_STATE_WORDS words of lin_state in use */
	void (*init)(struct lin_state *s);
	int (*step)(const struct lin_state *s, const struct lin_op *op, struct lin_state *next);
	int (*readonly)(const struct lin_op *op);
	int (*blind)(const struct lin_op *op);
	int (*describe_op)(const struct lin_op *op, char *buf, size_t len);
	int (*describe_state)(const struct lin_state *s, char *buf, size_t len);
};

/* The key-value model (LIN_PUT, LIN_GET, LIN_CAS, LIN_DEL); keys start absent. */
extern const struct lin_model lin_model_kv;

/* What lin_check found.  On LIN_VIOLATION, key/op/time describe the smallest
 * failing prefix of that key's history: the ops that returned by `time` have
 * no linearization, the ops that returned before it do, and `op` is the op
 * whose return at `time` cannot be explained.  `linearized` counts the ops
 * of the partial linearization that got that far, and `desc` shows its end. */
struct lin_result {
	int verdict;          /* LIN_OK, LIN_VIOLATION or LIN_UNKNOWN */
	uint64_t key;         /* violation: the failing key; unknown: the first key given up on */
	int op;               /* violation: index of the unexplained op; else -1 */
	uint64_t time;        /* violation: that op's return time */
	size_t linearized;    /* violation: ops in the partial linearization that got furthest */
	size_t ops;           /* ops checked (after dropping unknown reads) */
	size_t keys;          /* distinct keys checked */
	size_t keys_unknown;  /* keys given up on (budget or cache limit) */
	uint64_t steps;       /* search steps, all keys together */
	char desc[768];       /* one human line, no newline; "" when LIN_OK */
};

/* A new empty history under the key-value model, or NULL on ENOMEM. */
struct lin_history *lin_history_new(void);
/* The same under another model (the pointer must outlive the history). */
struct lin_history *lin_history_new_model(const struct lin_model *model);
void lin_history_free(struct lin_history *h);

/* Bytes of visited-state cache allowed per key (0: the default). */
void lin_history_set_cache_limit(struct lin_history *h, size_t bytes);

/* Record a call; returns the op's index (>= 0, consecutive from 0) or
 * -EINVAL (kind 0, time LIN_TIME_UNKNOWN), -ENOMEM. */
int lin_call(struct lin_history *h, uint32_t client, uint16_t kind, uint64_t key,
             uint64_t arg0, uint64_t arg1, uint64_t time);
/* Record the reply to op: ok and value as the kind defines them.
 * -EINVAL if op is not a pending op or time is before its call. */
int lin_return(struct lin_history *h, int op, int ok, uint64_t value, uint64_t time);
/* Record that op's reply will never come: it may or may not have happened.
 * Pending ops are treated so by lin_check anyway; this says so explicitly.
 * -EINVAL if op is not a pending op. */
int lin_lost(struct lin_history *h, int op);
/* Record a complete op at once (ret may be LIN_TIME_UNKNOWN, meaning lost);
 * returns its index or -EINVAL, -ENOMEM. */
int lin_add(struct lin_history *h, const struct lin_op *op);

size_t lin_history_len(const struct lin_history *h);
/* The op at index i, or NULL if out of range. */
const struct lin_op *lin_history_op(const struct lin_history *h, int i);
/* "#12 c3 put(k7, 5) [40,52]" through the model's describe_op; snprintf semantics. */
int lin_describe_op(const struct lin_history *h, int i, char *buf, size_t len);

/*
 * Check the history.  budget: search steps allowed per key (0: the
 * default); a key that runs out is "unknown", and the others are still
 * checked.  Keys are checked in increasing order and the first violating
 * key is reported.  Returns the verdict (also in out->verdict) or -ENOMEM.
 * The history is not changed and may be extended and checked again.
 */
int lin_check(struct lin_history *h, uint64_t budget, struct lin_result *out);

/* "ok", "violation", "unknown" for a verdict. */
const char *lin_verdict_name(int verdict);

#endif
