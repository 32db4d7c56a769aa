/*
 * cli/child.h -- what the programs that wrap a command (dsys-lock run and
 * elect, dsys-register add -- CMD) share about that command: which signals
 * go on to it, and how its end becomes their exit status.
 *
 * A wrapper's exit status is its command's, as a shell reports it: the
 * exit code, or 128+N when signal N killed it; 127 when the command is
 * not found and 126 when it cannot be executed, as env(1) does.  The
 * signals a user sends to stop or poke a wrapper (TERM INT HUP QUIT USR1
 * USR2) are the command's business, so the wrapper passes them on.
 *
 *   struct cli_child_signals sigs;
 *   cli_child_signals_start(&sigs, loop, on_signal, ctx);  // h->data = ctx
 *   ...                              // on_signal: kill(-pgid, signum)
 *   cli_child_signals_close(&sigs);  // before the loop's last run
 *   return cli_child_wait_code(wstatus);
 */
#ifndef DSYS_CLI_CHILD_H
#define DSYS_CLI_CHILD_H

#include <stdint.h>

#include <uv.h>

#define CLI_CHILD_N_FORWARDED 6
/* SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2. */
extern const int cli_child_forwarded[CLI_CHILD_N_FORWARDED];

struct cli_child_signals {
	uv_signal_t h[CLI_CHILD_N_FORWARDED];
};

/* Watch every forwarded signal on loop; cb gets the handle, whose data is
 * `data`. */
void cli_child_signals_start(struct cli_child_signals *s, uv_loop_t *loop, uv_signal_cb cb,
                             void *data);
/* Close the watchers (the loop must run once more to finish closing). */
void cli_child_signals_close(struct cli_child_signals *s);

/* The exit status for a command that exited with exit_status, or was
 * killed by term_signal (non-zero): libuv's exit_cb arguments. */
int cli_child_code(int64_t exit_status, int term_signal);
/* The same from a waitpid(2) status; 125 for one that is neither. */
int cli_child_wait_code(int wstatus);
/* The exit status when the command could not be executed: err is a
 * negative errno (or libuv error): 127 for -ENOENT, else 126. */
int cli_child_exec_code(int err);

#endif
