/*
 * dsys-counter.h -- what the subcommands of dsys-counter share: the
 * configuration one option table fills, and the entry points.
 */
#ifndef DSYS_COUNTER_PROG_H
#define DSYS_COUNTER_PROG_H

#include <stdbool.h>
#include <stdint.h>

#include "counter/counter.h"
#include "cli/server_cli.h"
#include "base/json.h"
#include "store/url.h"

#define DEFAULT_WINDOW 128
#define DEFAULT_MAX_BATCH 1000

struct config {
	const char *sub;              /* "serve", "incr", ... */
	const char *store_text;       /* --store, DSYS_STORE; NULL: store_url_from_env */
	const char *server;           /* --server, DSYS_SERVER */
	struct server_cli serve;      /* serve: --listen, --threads, limits, timeouts */
	int64_t by;
	bool by_set;
	const char *prefix;
	uint64_t backend_timeout_ms;
	struct counter_options copt;
	unsigned window;              /* incr -: operations in flight */
	unsigned max_batch;           /* serve: items in one POST /incr array */
	struct store_url url;
	char url_text[4400];          /* canonical, for messages */
};

int counter_serve(struct config *cfg);
int counter_client(struct config *cfg, int argc, char **argv);

/* spec.c: keys and {"key":..,"by":..} objects, for every path in. */

/* NULL when key is a key (1..COUNTER_MAX_KEY bytes of valid UTF-8), else
 * why not ("key is not valid UTF-8"). */
const char *key_check(const char *key, size_t len);
/* The same for a list prefix (which may be empty). */
const char *prefix_check(const char *prefix, size_t len);

/* Parse a request/line object {"key":..,"by":..} (by defaults to def_by).
 * On success *used is the object's length.  Returns 0, or -1 with s->why
 * naming the problem. */
#define COUNTER_KEYBUF (6 * COUNTER_MAX_KEY + 8)
struct incr_spec {
	struct json_token key;        /* raw key token */
	bool has_key;
	int64_t by;
	const char *why;
};
int incr_spec_parse(const char *text, size_t len, int64_t def_by, struct incr_spec *s, long *used);
/* Is p[from..len) only JSON white space?  What may follow the object
 * incr_spec_parse read, in a body or an input line. */
bool only_space(const char *p, size_t from, size_t len);
/* Decode the key token (into keybuf, COUNTER_KEYBUF bytes, when escaped)
 * and check it with key_check; 0, or -1 with s->why. */
int incr_spec_key(struct incr_spec *s, char *keybuf, const char **key, size_t *key_len);

/* status.c: the one table between counter errors and HTTP statuses. */

/* The status the service answers err with. */
int counter_http_status(int err);
/* The gRPC status (enum grpc_status) the gRPC API answers err with. */
int counter_grpc_status(int err);
/* The error an answer of the service stands for: its status and the
 * "error" text of its body (NULL when it has none); status 0 matches the
 * text alone (an item of an array answer, whose status is the first
 * failure's).  -EBADMSG for a 400
 * that is not an overflow (the request was refused), -EPROTO for an
 * answer no counter service gives. */
int counter_err_from_answer(long status, const char *error, size_t error_len);
/* The exit status for a store that would not open (counter_store_open's
 * error), the same for serve and the CLI. */
int counter_open_exit(int err);
/* counter_check on c, running loop until it answers: 0 or the error. */
int counter_check_wait(struct counter *c, uv_loop_t *loop);

#endif
