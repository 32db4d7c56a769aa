/*
 * cli/child.c -- a wrapped command's signals and exit status (child.h).
 */
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>

#include "cli/child.h"

const int cli_child_forwarded[CLI_CHILD_N_FORWARDED] = {
	SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2,
};

void cli_child_signals_start(struct cli_child_signals *s, uv_loop_t *loop, uv_signal_cb cb,
                             void *data)
{
	for (int i = 0; i < CLI_CHILD_N_FORWARDED; i++) {
		uv_signal_init(loop, &s->h[i]);
		s->h[i].data = data;
		uv_signal_start(&s->h[i], cb, cli_child_forwarded[i]);
	}
}

static void closed(uv_handle_t *h)
{
	(void)h;
}

void cli_child_signals_close(struct cli_child_signals *s)
{
	for (int i = 0; i < CLI_CHILD_N_FORWARDED; i++)
		uv_close((uv_handle_t *)&s->h[i], closed);
}

int cli_child_code(int64_t exit_status, int term_signal)
{
	return term_signal ? 128 + term_signal : (int)exit_status;
}

int cli_child_wait_code(int wstatus)
{
	if (WIFEXITED(wstatus))
		return WEXITSTATUS(wstatus);
	if (WIFSIGNALED(wstatus))
		return 128 + WTERMSIG(wstatus);
	return 125;
}

int cli_child_exec_code(int err)
{
	return err == -ENOENT ? 127 : 126;
}
