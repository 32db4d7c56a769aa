/*
 * run.c -- dsys-lock run NAME -- CMD: hold a lock for exactly as long as
 * CMD runs, and never let CMD run on without it.
 *
 * The life of a run:
 *
 *   1. Acquire (waiting as --wait/--nowait say).  On file: the grant is
 *      bound to this process, so if dsys-lock is killed with SIGKILL the
 *      lock is free at once (and CMD, which gets PR_SET_PDEATHSIG SIGKILL,
 *      dies with it).
 *   2. vfork + execvpe CMD directly (no shell), in a process group of its
 *      own, with DSYS_LOCK_NAME, DSYS_LOCK_TOKEN and DSYS_LOCK_FENCE in its
 *      environment.  An exec failure comes back through memory the child
 *      of vfork shares: 127 when CMD is not found, 126 when it cannot run,
 *      as env(1) does; 125 when dsys-lock itself fails (fork).
 *   3. While CMD runs: renew every third of the TTL.  The grant is good
 *      until `valid_until` = the moment the last confirmed renewal was
 *      *sent* + TTL (our clock, monotonic).  If the store says the token no
 *      longer holds the lock, or valid_until less a safety margin passes
 *      without a confirmed renewal (the store is unreachable, or this
 *      process was paused: SIGSTOP, a VM freeze), the lock is lost: the
 *      whole process group gets SIGTERM, then SIGKILL after --kill-after,
 *      and dsys-lock exits 5.  The margin (a tenth of the TTL, at most 2s)
 *      is for clock drift between us and the store and for the signal's
 *      way to CMD; CMD may still run for --kill-after after that, which is
 *      why the fence exists.
 *   4. TERM INT HUP QUIT USR1 USR2 received by dsys-lock go on to CMD's
 *      process group; dsys-lock keeps waiting for CMD.
 *   5. When CMD exits: release the lock, exit with CMD's status (128+N for
 *      a signal N).  Whatever CMD left running in its group after a loss is
 *      killed; after a normal exit it is left alone.
 *
 * Signals are blocked around vfork so that neither process handles one in
 * between with the other's state; the child resets every disposition
 * (including SIGPIPE, which cli_init ignores) before exec.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/invariant.h"
#include "cli/child.h"
#include "cli/cli.h"
#include "dsys-lock.h"

#define MAX_NOTED_FD 4096
#define FD_SET_WORDS (MAX_NOTED_FD / 64)
static uint64_t inherited[FD_SET_WORDS];   /* fds open at start: CMD's */

/* The descriptors below MAX_NOTED_FD that are open, into set (cleared
 * first).  poll(2) with no events marks each closed one POLLNVAL and
 * sleeps not at all: 16 calls of 256, ~40 us here, where reading
 * /proc/self/fd (an opendir, its 32 KiB buffer, procfs lookups) took
 * ~250 us of a short run's start.  A limit on open files below 256 makes
 * poll refuse the batch (EINVAL): then /proc, then probing with fcntl.
 * poll calls an O_PATH descriptor closed too: an inherited one is then
 * left alone (it reaches CMD, as it should); none of ours is O_PATH. */
static void open_fds(uint64_t set[FD_SET_WORDS])
{
	memset(set, 0, FD_SET_WORDS * sizeof *set);
	struct pollfd p[256];
	for (int base = 0; base < MAX_NOTED_FD; base += 256) {
		for (int i = 0; i < 256; i++)
			p[i] = (struct pollfd){ .fd = base + i };
		int r;
		while ((r = poll(p, 256, 0)) < 0 && errno == EINTR)
			;
		if (r < 0)
			goto slow;
		for (int i = 0; i < 256; i++)
			if (!(p[i].revents & POLLNVAL))
				set[(base + i) / 64] |= 1ull << ((base + i) % 64);
	}
	return;
slow:
	memset(set, 0, FD_SET_WORDS * sizeof *set);
	DIR *d = opendir("/proc/self/fd");
	if (!d) {
		for (int fd = 0; fd < 256; fd++)   /* no /proc: the low ones */
			if (fcntl(fd, F_GETFD) >= 0)
				set[fd / 64] |= 1ull << (fd % 64);
		return;
	}
	int self = dirfd(d);
	struct dirent *e;
	while ((e = readdir(d))) {
		int fd = atoi(e->d_name);   /* the entries are decimal numbers */
		if (e->d_name[0] >= '0' && e->d_name[0] <= '9' && fd != self && fd < MAX_NOTED_FD)
			set[fd / 64] |= 1ull << (fd % 64);
	}
	closedir(d);
}

void lock_run_note_fds(void)
{
	open_fds(inherited);
}

struct run {
	struct config *cfg;
	const char *name;
	struct lock_holder grant;
	bool acquired;
	int acquire_err;
	pid_t child;
	int status;                   /* waitpid's, once exited */
	bool exited;
	bool lost;
	bool killed;                  /* SIGKILL sent to the group */
	bool renewing;                /* a renewal in flight */
	bool releasing, released;
	int early_sig;                /* a signal to forward that came before CMD existed */
	uint64_t ttl_ns, margin_ns;
	uint64_t valid_until;         /* uv_hrtime() */
	uv_timer_t renew_timer, deadline_timer, kill_timer;
	uv_signal_t sigchld;
	struct cli_child_signals sigs;
};

static void on_lost(struct run *rn, const char *why);

static uint64_t ms_of(uint64_t ns)
{
	return (ns + 999999) / 1000000;
}

/* ------------------------------------------------------------ child */

/* Before spawning: our own descriptors (the store's socket, file:'s lock
 * file) must not reach CMD; the ones dsys-lock inherited must.  Done in
 * the parent (the child of vfork may not allocate): close-on-exec on ours
 * changes nothing for this process, which never execs. */
static void close_ours(void)
{
	uint64_t now[FD_SET_WORDS];
	open_fds(now);
	for (int w = 0; w < FD_SET_WORDS; w++)
		for (uint64_t ours = now[w] & ~inherited[w]; ours; ours &= ours - 1) {
			int fd = w * 64 + __builtin_ctzll(ours);
			if (fd > 2)
				fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC);
		}
}

/* CMD's environment: ours without DSYS_LOCK_*=, then the three of this
 * grant (built in the parent: the child of vfork may not allocate).  NULL
 * when out of memory. */
static char **child_env(struct run *rn)
{
	extern char **environ;
	size_t n = 0;
	while (environ[n])
		n++;
	char **env = malloc((n + 4) * sizeof *env);
	static char name[LOCK_MAX_NAME + 32], token[LOCK_TOKEN_LEN + 32], fence[48];
	if (!env)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "DSYS_LOCK_NAME=", 15) && strncmp(environ[i], "DSYS_LOCK_TOKEN=", 16) &&
		    strncmp(environ[i], "DSYS_LOCK_FENCE=", 16))
			env[k++] = environ[i];
	snprintf(name, sizeof name, "DSYS_LOCK_NAME=%s", rn->name);
	snprintf(token, sizeof token, "DSYS_LOCK_TOKEN=%s", rn->grant.token);
	snprintf(fence, sizeof fence, "DSYS_LOCK_FENCE=%llu", (unsigned long long)rn->grant.fence);
	env[k++] = name;
	env[k++] = token;
	env[k++] = fence;
	env[k] = NULL;
	return env;
}

/* The errno of CMD's failed exec, written by the child of vfork, which
 * shares our memory until it execs or exits; 0 when the exec worked. */
static volatile int spawn_errno;

/*
 * The child of vfork: it borrows our memory and stack while we wait, so it
 * makes only async-signal-safe calls (no malloc: env was built before) and
 * never returns; noinline, so its frame is all it touches.  Signals are
 * blocked (spawn blocked them all) until every disposition is back to the
 * default: none of our handlers can run in it.  Dispositions are the
 * child's own (vfork shares memory, not the signal table).
 */
static __attribute__((noinline, noreturn)) void child_exec(char **cmd, char **env, pid_t parent)
{
	setpgid(0, 0);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent) {   /* dsys-lock died before the prctl */
		spawn_errno = 0;
		_exit(125);
	}
	struct sigaction dfl;
	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	for (int s = 1; s < NSIG; s++)
		sigaction(s, &dfl, NULL);   /* fails harmlessly for SIGKILL, SIGSTOP, RT internals */
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execvpe(cmd[0], cmd, env);
	spawn_errno = errno;
	_exit(cli_child_exec_code(-errno));
}

/* vfork in a frame of its own, which the child never returns from. */
static __attribute__((noinline)) pid_t vfork_exec(char **cmd, char **env, pid_t parent)
{
	pid_t pid = vfork();
	if (pid == 0)
		child_exec(cmd, env, parent);
	return pid;
}

/* ------------------------------------------------------------ ending */

static void maybe_finish(struct run *rn)
{
	if (!rn->exited)
		return;
	if (!rn->lost && !rn->released)
		return;
	uv_stop(&rn->cfg->loop);
}

static void release_cb(void *ud, int err, const struct lock_holder *h)
{
	struct run *rn = ud;
	rn->released = true;
	if (err && err != -ECANCELED) {
		if (err == -ENOENT)
			cli_error("lock '%s' had expired when CMD ended", rn->name);
		else if (lock_err_unreachable(err))
			cli_error("could not release lock '%s': cannot reach %s: %s", rn->name,
			          rn->cfg->url_text, *lock_store_last_error(rn->cfg->store)
			                                  ? lock_store_last_error(rn->cfg->store)
			                                  : strerror(-err));
		else
			cli_error("could not release lock '%s': %s", rn->name, strerror(-err));
	}
	maybe_finish(rn);
}

static void reap(struct run *rn)
{
	int st;
	pid_t p;
	if (rn->child <= 0 || rn->exited)
		return;
	while ((p = waitpid(rn->child, &st, WNOHANG)) < 0 && errno == EINTR)
		;
	if (p != rn->child)
		return;
	rn->exited = true;
	rn->status = st;
	uv_timer_stop(&rn->renew_timer);
	uv_timer_stop(&rn->deadline_timer);
	if (rn->lost) {
		/* the lock is gone: nothing CMD started may run on */
		kill(-rn->child, SIGKILL);
		uv_timer_stop(&rn->kill_timer);
	} else if (!rn->releasing) {
		rn->releasing = true;
		if (lock_release(rn->cfg->store, rn->name, rn->grant.token, release_cb, rn) < 0)
			rn->released = true;
	}
	maybe_finish(rn);
}

static void sigchld_cb(uv_signal_t *h, int signum)
{
	reap(h->data);
}

static void forward_cb(uv_signal_t *h, int signum)
{
	struct run *rn = h->data;
	if (rn->child <= 0)   /* kill(-0) would be our own group: keep it for CMD */
		rn->early_sig = signum;
	else if (!rn->exited)
		kill(-rn->child, signum);
}

static void kill_cb(uv_timer_t *t)
{
	struct run *rn = t->data;
	if (!rn->exited && rn->child > 0) {
		kill(-rn->child, SIGKILL);
		rn->killed = true;
	}
}

static void on_lost(struct run *rn, const char *why)
{
	if (rn->lost || rn->exited || rn->child <= 0)
		return;
	rn->lost = true;
	cli_error("lost lock '%s' (%s): stopping CMD", rn->name, why);
	uv_timer_stop(&rn->renew_timer);
	uv_timer_stop(&rn->deadline_timer);
	kill(-rn->child, SIGTERM);
	kill(-rn->child, SIGCONT);   /* a stopped group cannot act on SIGTERM */
	uv_timer_start(&rn->kill_timer, kill_cb, rn->cfg->kill_after_ms, 0);
}

/* ------------------------------------------------------------ renewing */

static bool past_deadline(struct run *rn)
{
	return uv_hrtime() + rn->margin_ns >= rn->valid_until;
}

static void renew_timer_cb(uv_timer_t *t);

static void set_valid(struct run *rn, const struct lock_holder *h)
{
	/* expires_ms counts from before the request was sent: map it onto
	 * the monotonic clock now */
	uint64_t now_ms = lock_now_ms();
	uint64_t left_ms = h->expires_ms > now_ms ? h->expires_ms - now_ms : 0;
	rn->valid_until = uv_hrtime() + left_ms * 1000000;
	uint64_t left = rn->valid_until > uv_hrtime() + rn->margin_ns
	                    ? rn->valid_until - uv_hrtime() - rn->margin_ns : 0;
	uv_timer_start(&rn->deadline_timer, renew_timer_cb, ms_of(left), 0);
}

static void renew_cb(void *ud, int err, const struct lock_holder *h)
{
	struct run *rn = ud;
	rn->renewing = false;
	if (rn->exited || rn->lost || err == -ECANCELED)
		return;
	if (err == 0) {
		set_valid(rn, h);
		uv_timer_start(&rn->renew_timer, renew_timer_cb, ms_of(rn->ttl_ns / 3), 0);
		return;
	}
	if (err == -ENOENT)
		return on_lost(rn, "the store no longer grants it to this token");
	if (past_deadline(rn))
		return on_lost(rn, "renewal not confirmed within the TTL");
	/* unreachable or odd: try again soon, while the grant still stands */
	uint64_t again = rn->ttl_ns / 10;
	uv_timer_start(&rn->renew_timer, renew_timer_cb, ms_of(again) ? ms_of(again) : 1, 0);
}

/* Both timers land here: the renewal period, and the deadline. */
static void renew_timer_cb(uv_timer_t *t)
{
	struct run *rn = t->data;
	if (rn->exited || rn->lost)
		return;
	if (past_deadline(rn))
		return on_lost(rn, "renewal not confirmed within the TTL");
	if (t == &rn->deadline_timer || rn->renewing)
		return;
	rn->renewing = true;
	/* the TTL granted (etcd may have raised it): a keepalive, never a move */
	int r = lock_renew(rn->cfg->store, rn->name, rn->grant.token, rn->grant.ttl_ms, renew_cb, rn);
	if (r < 0) {
		rn->renewing = false;
		on_lost(rn, strerror(-r));
	}
}

/* ------------------------------------------------------------ acquire */

static void acquire_cb(void *ud, int err, const struct lock_holder *h)
{
	struct run *rn = ud;
	rn->acquire_err = err;
	if (!err) {
		rn->acquired = true;
		rn->grant = *h;
	}
	uv_stop(&rn->cfg->loop);
}

/* vfork, not fork: fork copies our page tables for the child to throw
 * them away at exec, then makes us fault on every page we write while it
 * runs (measured on a 2-core VM: fork+exec of true ~7.5 ms, vfork ~5). */
static int spawn(struct run *rn, char **cmd)
{
	char **env = child_env(rn);
	if (!env) {
		cli_error("cannot fork: %s", strerror(ENOMEM));
		return -125;
	}
	close_ours();
	sigset_t all, old;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	pid_t parent = getpid();
	spawn_errno = 0;
	pid_t pid = vfork_exec(cmd, env, parent);
	int fork_err = errno;
	int e = spawn_errno;   /* the child has exec'd or exited by now */
	free(env);
	if (pid > 0)
		setpgid(pid, pid);   /* both sides set it: no race with our kill(-pid) */
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (pid < 0) {
		cli_error("cannot fork: %s", strerror(fork_err));
		return -125;
	}
	rn->child = pid;
	if (e) {
		cli_error("cannot run '%s': %s", cmd[0], strerror(e));
		int st;
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		return -cli_child_exec_code(-e);
	}
	return 0;
}

static void close_cb(uv_handle_t *h)
{
}

int lock_run(struct config *cfg, const char *name, char **cmd)
{
	int rc = lock_cli_open(cfg);
	if (rc)
		return rc;
	static struct run rn;
	rn.cfg = cfg;
	rn.name = name;
	rn.ttl_ns = cfg->ttl_ms * 1000000;
	rn.margin_ns = rn.ttl_ns / 10 < 2000000000ull ? rn.ttl_ns / 10 : 2000000000ull;
	uv_loop_t *loop = &cfg->loop;

	struct lock_request rq = {
		.name = name, .ttl_ms = cfg->ttl_ms, .limit = cfg->limit,
		.owner = cfg->owner, .pid = getpid(), .wait_ms = cfg->wait_ms,
	};
	int r = lock_acquire(cfg->store, &rq, acquire_cb, &rn);
	if (r < 0)
		rn.acquire_err = r;
	else
		while (!rn.acquired && !rn.acquire_err)
			uv_run(loop, UV_RUN_DEFAULT);
	if (!rn.acquired) {
		rc = lock_cli_fail(cfg, name, rn.acquire_err);
		lock_cli_close(cfg);
		return rc;
	}

	/* the watchers first, so no signal is missed once CMD exists */
	uv_signal_init(loop, &rn.sigchld);
	rn.sigchld.data = &rn;
	uv_signal_start(&rn.sigchld, sigchld_cb, SIGCHLD);
	cli_child_signals_start(&rn.sigs, loop, forward_cb, &rn);
	uv_timer_init(loop, &rn.renew_timer);
	uv_timer_init(loop, &rn.deadline_timer);
	uv_timer_init(loop, &rn.kill_timer);
	rn.renew_timer.data = rn.deadline_timer.data = rn.kill_timer.data = &rn;

	r = spawn(&rn, cmd);
	if (r < 0) {
		rc = -r;
		rn.exited = true;
		rn.releasing = true;
		if (lock_release(cfg->store, name, rn.grant.token, release_cb, &rn) == 0)
			while (!rn.released)
				uv_run(loop, UV_RUN_DEFAULT);
	} else {
		if (rn.early_sig)
			kill(-rn.child, rn.early_sig);
		set_valid(&rn, &rn.grant);
		uv_timer_start(&rn.renew_timer, renew_timer_cb, ms_of(rn.ttl_ns / 3), 0);
		reap(&rn);   /* CMD may be gone already */
		while (!(rn.exited && (rn.lost || rn.released)))
			uv_run(loop, UV_RUN_DEFAULT);
		rc = rn.lost ? EXIT_LOST : cli_child_wait_code(rn.status);
	}
	uv_close((uv_handle_t *)&rn.sigchld, close_cb);
	cli_child_signals_close(&rn.sigs);
	uv_close((uv_handle_t *)&rn.renew_timer, close_cb);
	uv_close((uv_handle_t *)&rn.deadline_timer, close_cb);
	uv_close((uv_handle_t *)&rn.kill_timer, close_cb);
	lock_cli_close(cfg);
	return rc;
}
