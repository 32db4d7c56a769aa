/*
 * dsys-lock.h -- what the files of dsys-lock share: the configuration the
 * one option table fills, the open store, and the entry points.
 */
#ifndef DSYS_LOCK_PROG_H
#define DSYS_LOCK_PROG_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "lock/lock.h"
#include "store/url.h"

#define DEFAULT_STORE "file:/tmp/dsys-locks"
#define DEFAULT_TTL_MS 30000
#define DEFAULT_KILL_AFTER_MS 5000

struct config {
	const char *sub;              /* "acquire", "run", ... */
	const char *store_text;       /* --store, DSYS_STORE */
	struct store_url url;
	char url_text[4400];          /* canonical, for output and messages */
	uint64_t ttl_ms;
	bool ttl_set;
	uint64_t wait_ms;             /* LOCK_WAIT_FOREVER by default; 0 = --nowait */
	unsigned limit;
	const char *token;
	const char *owner;
	char owner_buf[LOCK_MAX_OWNER + 1];
	int conflict_exit;            /* --conflict-exit-code, 1 by default */
	uint64_t kill_after_ms;
	bool watch;                   /* leader --watch */
	struct lock_options lopt;
	/* the open store */
	uv_loop_t loop;
	struct lock_store *store;
};

/* Open cfg->url on cfg->loop; on failure print one line and return an
 * exit code (> 0), else 0. */
int lock_cli_open(struct config *cfg);
/* Close the store and finish the loop. */
void lock_cli_close(struct config *cfg);
/* Print one line for err (about lock `name`) and return its exit code. */
int lock_cli_fail(struct config *cfg, const char *name, int err);
/* Print a grant as acquire does. */
void lock_cli_print_grant(const struct config *cfg, const struct lock_holder *h);

int lock_run(struct config *cfg, const char *name, char **cmd);
/* leader NAME [--watch] (elect.c). */
int lock_leader(struct config *cfg, const char *name);
/* Remember the descriptors open at start: the ones CMD inherits. */
void lock_run_note_fds(void);

#endif
