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

/* Shared by serve and client: parse a request/line object {"key":..,"by":..}
 * (by defaults to 1).  On success *key and *key_len point at the key (raw or
 * unescaped into keybuf, which holds COUNTER_KEYBUF bytes).  Returns 0, or
 * -1 with *why naming the problem. */
#define COUNTER_KEYBUF (6 * COUNTER_MAX_KEY + 8)
struct incr_spec {
	struct json_token key;        /* raw key token */
	bool has_key;
	int64_t by;
	const char *why;
};
int incr_spec_parse(const char *text, size_t len, struct incr_spec *s, long *used);
/* Is p[from..len) only JSON white space?  What may follow the object
 * incr_spec_parse read, in a body or an input line. */
bool only_space(const char *p, size_t from, size_t len);
/* Decode the key token into keybuf; 0, or -1 with s->why. */
int incr_spec_key(struct incr_spec *s, char *keybuf, const char **key, size_t *key_len);

/* HTTP status for a backend error. */
int counter_http_status(int err);

#endif
