/*
 * add.c -- dsys-register add: keep one instance registered exactly as long
 * as it is alive (and, with -- CMD, as long as CMD runs).
 *
 * The life of an add:
 *   1. With a check, the status starts at `starting`; --rise successes in a
 *      row make it `passing`, --fall failures in a row make it `critical`.
 *      Without a check it is passing at once.  Checks run one at a time on
 *      libuv's thread pool, every --check-interval, each bounded by that
 *      interval (at most 10 s).
 *   2. Without CMD the instance is registered at once; with CMD, when it is
 *      first passing.  The record is rewritten every third of the TTL with
 *      a new expiry (the heartbeat), and at once on a status change.  A
 *      critical instance is removed after --deregister-after, and written
 *      again when it passes again.
 *   3. CMD runs in a process group (a session) of its own; TERM INT HUP
 *      QUIT USR1 USR2 go on to it.  TERM and INT also take the instance out
 *      at once, so no client is sent to a draining CMD.
 *   4. When CMD exits, or (without CMD) on TERM/INT, the instance is
 *      removed and add exits: with CMD's status (128+N for a signal N;
 *      127/126 when CMD cannot be found/run), else 0.
 * A killed add writes nothing more, and readers drop its record when the
 * expiry passes: within the TTL.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "base/json.h"
#include "cli/child.h"
#include "cli/cli.h"
#include "io/curl_dl.h"
#include "dsys-register.h"

struct add {
	struct reg_config *cfg;
	uv_loop_t *loop;
	struct reg_instance in;
	bool registered, ever_registered, stopping;
	bool announce;                 /* print "registered" at the next confirmed write */
	struct etcd_client *etcd;      /* etcd://, else NULL (file:) */
	struct reg_keeper *keeper;
	bool store_down;               /* said so once; say when it is back */
	uv_timer_t stop_timer;
	uint64_t stop_deadline;
	unsigned ok, bad;              /* checks in a row */
	uint64_t critical_at;          /* uv_now when it went critical */
	bool checking;
	int check_rc;
	char check_out[256];
	uv_work_t work;
	uv_timer_t check_timer, beat_timer;
	bool has_cmd, cmd_done;
	int cmd_status;
	uv_process_t proc;
	struct cli_child_signals sigs;
	int exit_code;
};

static void emit_event(struct add *a, const char *event, const char *reason)
{
	struct buf b = BUF_INIT;
	struct json_writer w;
	json_writer_init(&w, &b);
	json_obj_begin(&w);
	json_kv_str(&w, "event", event);
	reg_instance_json(&w, &a->in);
	if (reason)
		json_kv_str(&w, "reason", reason);
	if (!strcmp(event, "registered")) {
		json_kv_u64(&w, "ttl_ms", a->cfg->ttl_ms);
		json_kv_str(&w, "store", a->cfg->url_text);
	}
	json_obj_end(&w);
	json_emit(&b);
	buf_free(&b);
}

static void finish(struct add *a, int code);

static void keeper_cb(void *ud, int err, const char *msg)
{
	struct add *a = ud;
	if (err == 0) {
		if (a->store_down)
			cli_error("%s answers again", a->cfg->url_text);
		a->store_down = false;
		if (a->announce && a->registered) {
			a->announce = false;
			a->ever_registered = true;
			emit_event(a, "registered", NULL);
		}
		return;
	}
	if (!a->store_down)   /* retried every 500 ms: one line per outage */
		cli_error("cannot reach %s: %s (retrying)", a->cfg->url_text, msg);
	a->store_down = true;
	if (!a->ever_registered && !a->has_cmd && !a->stopping)
		finish(a, EXIT_UNREACHABLE);
}

static int publish(struct add *a)
{
	if (a->keeper) {
		if (!a->registered)
			a->announce = true;
		a->registered = true;
		reg_keeper_put(a->keeper, &a->in);
		return 0;
	}
	a->in.expires_ms = reg_now_ms() + a->cfg->ttl_ms;
	int r = reg_file_put(a->cfg->url.path, &a->in);
	if (r < 0) {
		cli_error("cannot write to %s: %s", a->cfg->url_text, strerror(-r));
		return r;
	}
	if (!a->registered) {
		a->registered = a->ever_registered = true;
		emit_event(a, "registered", NULL);
	}
	return 0;
}

static void unpublish(struct add *a, const char *reason)
{
	if (!a->registered)
		return;
	a->registered = false;
	bool announced = !a->announce;   /* never confirmed: no "registered" was printed */
	a->announce = false;
	if (a->keeper) {
		reg_keeper_delete(a->keeper);
		if (announced)
			emit_event(a, "deregistered", reason);
		return;
	}
	int r = reg_file_remove(a->cfg->url.path, a->in.service, a->in.id);
	if (r < 0 && r != -ENOENT)
		cli_error("cannot remove from %s: %s", a->cfg->url_text, strerror(-r));
	emit_event(a, "deregistered", reason);
}

static void stop_timer_cb(uv_timer_t *t)
{
	struct add *a = t->data;
	if (reg_keeper_idle(a->keeper) || uv_now(a->loop) >= a->stop_deadline)
		uv_stop(a->loop);
}

static void finish(struct add *a, int code)
{
	a->exit_code = code;
	a->stopping = true;
	unpublish(a, a->has_cmd ? "command exited" : "stopped");
	if (!a->keeper)
		return uv_stop(a->loop);
	/* etcd: wait (a bounded time) for the revoke to be answered */
	a->stop_deadline = uv_now(a->loop) + 3000;
	uv_timer_start(&a->stop_timer, stop_timer_cb, 0, 20);
}

static void beat_cb(uv_timer_t *t)
{
	struct add *a = t->data;
	if (a->registered && !a->stopping)
		publish(a);   /* a failed write is retried at the next beat */
}

static void set_status(struct add *a, enum reg_status s)
{
	if (a->in.status == s)
		return;
	a->in.status = s;
	a->in.since_ms = reg_now_ms();
	if (s == REG_CRITICAL)
		a->critical_at = uv_now(a->loop);
	if (a->stopping)
		return;
	if (a->registered)
		publish(a);
	emit_event(a, "status", a->check_out);
	if (!a->registered && (s == REG_PASSING || !a->has_cmd)) {
		if (publish(a) < 0 && !a->ever_registered && !a->has_cmd)
			finish(a, EXIT_UNREACHABLE);
	}
}

static void work_cb(uv_work_t *w)
{
	struct add *a = w->data;
	uint64_t t = a->cfg->interval_ms < 10000 ? a->cfg->interval_ms : 10000;
	a->check_rc = reg_check_run(&a->cfg->check, (unsigned)t, a->check_out, sizeof a->check_out);
}

static void after_work_cb(uv_work_t *w, int status)
{
	struct add *a = w->data;
	a->checking = false;
	if (a->stopping || status < 0)
		return;
	if (a->check_rc == 0) {
		a->bad = 0;
		a->ok++;
		if (a->in.status != REG_PASSING && a->ok >= a->cfg->rise)
			set_status(a, REG_PASSING);
	} else {
		a->ok = 0;
		a->bad++;
		if (a->in.status != REG_CRITICAL && a->bad >= a->cfg->fall)
			set_status(a, REG_CRITICAL);
	}
	if (a->in.status == REG_CRITICAL && a->registered && a->cfg->dereg_ms &&
	    uv_now(a->loop) - a->critical_at >= a->cfg->dereg_ms)
		unpublish(a, "critical for --deregister-after");
}

static void check_timer_cb(uv_timer_t *t)
{
	struct add *a = t->data;
	if (a->checking || a->stopping)
		return;
	a->checking = true;
	a->work.data = a;
	if (uv_queue_work(a->loop, &a->work, work_cb, after_work_cb) < 0)
		a->checking = false;
}

static void exit_cb(uv_process_t *p, int64_t exit_status, int term_signal)
{
	struct add *a = p->data;
	a->cmd_done = true;
	a->cmd_status = cli_child_code(exit_status, term_signal);
	uv_close((uv_handle_t *)p, NULL);
	finish(a, a->cmd_status);
}

static void signal_cb(uv_signal_t *h, int signum)
{
	struct add *a = h->data;
	if (!a->has_cmd) {
		if (signum == SIGTERM || signum == SIGINT)
			finish(a, 0);
		return;
	}
	if (a->cmd_done)
		return;
	if (signum == SIGTERM || signum == SIGINT)
		unpublish(a, "stopping");
	if (signum == SIGTERM || signum == SIGINT)
		a->stopping = true;
	kill(-a->proc.pid, signum);
}

static void close_cb(uv_handle_t *h)
{
	(void)h;
}

int reg_add(struct reg_config *cfg, const char *service, char **cmd)
{
	static struct add a;
	uv_loop_t loop;
	/* an http check needs libcurl: say so now, not as a check that
	 * never passes */
	const char *why;
	if (cfg->check.kind == REG_CHECK_HTTP && !curl_dl_load(&why)) {
		cli_error("--check %s: %s", cfg->check.target, why);
		return EXIT_UNREACHABLE;
	}
	uv_loop_init(&loop);
	a.cfg = cfg;
	a.loop = &loop;
	snprintf(a.in.service, sizeof a.in.service, "%s", service);
	snprintf(a.in.id, sizeof a.in.id, "%s", cfg->id);
	snprintf(a.in.addr, sizeof a.in.addr, "%s", cfg->addr);
	snprintf(a.in.meta, sizeof a.in.meta, "%s", cfg->meta);
	a.in.status = cfg->check.kind ? REG_STARTING : REG_PASSING;
	a.in.since_ms = reg_now_ms();
	a.has_cmd = cmd != NULL;

	cli_child_signals_start(&a.sigs, &loop, signal_cb, &a);
	uv_timer_init(&loop, &a.stop_timer);
	a.stop_timer.data = &a;
	uv_timer_init(&loop, &a.check_timer);
	uv_timer_init(&loop, &a.beat_timer);
	a.check_timer.data = a.beat_timer.data = &a;
	if (cfg->url.kind == STORE_ETCD) {
		a.etcd = reg_cli_etcd(cfg, &loop);
		if (a.etcd)
			a.keeper = reg_keeper_new(&loop, a.etcd, cfg->ttl_ms, keeper_cb, &a);
		if (!a.keeper) {
			a.exit_code = EXIT_UNREACHABLE;
			goto out;
		}
	}

	if (a.has_cmd) {
		uv_stdio_container_t io[3];
		for (int i = 0; i < 3; i++) {
			io[i].flags = UV_INHERIT_FD;
			io[i].data.fd = i;
		}
		uv_process_options_t po = {
			.exit_cb = exit_cb, .file = cmd[0], .args = cmd,
			.flags = UV_PROCESS_DETACHED, .stdio_count = 3, .stdio = io,
		};
		a.proc.data = &a;
		int r = uv_spawn(&loop, &a.proc, &po);
		if (r < 0) {
			cli_error("cannot run '%s': %s", cmd[0], uv_strerror(r));
			a.exit_code = cli_child_exec_code(r);
			/* a handle whose spawn failed is still open, and an
			 * open handle keeps uv_loop_close from freeing the loop */
			uv_close((uv_handle_t *)&a.proc, NULL);
			goto out;
		}
	}
	if (!a.has_cmd || a.in.status == REG_PASSING) {
		if (publish(&a) < 0 && !a.has_cmd) {
			a.exit_code = EXIT_UNREACHABLE;
			goto out;
		}
	}
	if (!a.keeper)
		uv_timer_start(&a.beat_timer, beat_cb, cfg->ttl_ms / 3, cfg->ttl_ms / 3);
	if (cfg->check.kind)
		uv_timer_start(&a.check_timer, check_timer_cb, 0, cfg->interval_ms);
	uv_run(&loop, UV_RUN_DEFAULT);
out:
	reg_keeper_free(a.keeper);
	etcd_client_free(a.etcd);
	uv_close((uv_handle_t *)&a.stop_timer, close_cb);
	uv_timer_stop(&a.check_timer);
	uv_timer_stop(&a.beat_timer);
	cli_child_signals_close(&a.sigs);
	uv_close((uv_handle_t *)&a.check_timer, close_cb);
	uv_close((uv_handle_t *)&a.beat_timer, close_cb);
	uv_run(&loop, UV_RUN_DEFAULT);   /* a check in flight finishes here */
	uv_loop_close(&loop);
	return a.exit_code;
}
