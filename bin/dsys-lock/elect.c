/*
 * elect.c -- dsys-lock leader NAME [--watch]: who leads an election.
 *
 * `elect` itself is `run` on the store's elections (main.c sets
 * lock_options.election): campaigning is acquiring, leading is holding,
 * resigning is releasing, and losing leadership stops CMD as a lost lock
 * does.  The leader is the election's holder: on etcd the candidate with
 * the lowest create revision under dsys/elections/NAME/, which is also
 * what `etcdctl elect -l dsys/elections/NAME` reports.
 *
 * --watch follows the holders with lock_watch (etcd: a watch, no polling;
 * elsewhere a poll every LOCK_WATCH_POLL_MS) and reads them again on each
 * change; a line is printed only when the leader (value and fence)
 * differs from the last line, so a renewal prints nothing.  It runs until
 * SIGTERM, SIGINT or SIGHUP, then exits 0.  A store that stops answering
 * is reported once on stderr while it lasts; the watch goes on.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/json.h"
#include "cli/cli.h"
#include "dsys-lock.h"

struct leader {
	struct config *cfg;
	const char *name;
	struct lock_watch *w;
	bool status_inflight, dirty, printed, failing, done, once;
	int err;
	char last_owner[LOCK_MAX_OWNER + 1];
	uint64_t last_fence;
	bool last_held;
	uv_signal_t sigs[3];
};

static void print_leader(struct leader *l, const struct lock_holder *h)
{
	struct buf b = BUF_INIT;
	struct json_writer w;
	json_writer_init(&w, &b);
	json_obj_begin(&w);
	json_kv_str(&w, "name", l->name);
	json_key(&w, "leader");
	if (h) {
		char at[32];
		json_time_rfc3339(at, h->expires_ms);
		json_str(&w, h->owner);
		json_kv_u64(&w, "fence", h->fence);
		json_key(&w, "lease");
		if (h->lease[0])
			json_str(&w, h->lease);
		else
			json_null(&w);
		json_kv_str(&w, "expires_at", at);
		json_kv_str(&w, "store", l->cfg->url_text);
	} else {
		json_null(&w);
	}
	json_obj_end(&w);
	json_emit(&b);
	buf_free(&b);
}

static void ask(struct leader *l);

static void status_cb(void *ud, int err, const struct lock_holder *hs, unsigned n)
{
	struct leader *l = ud;
	l->status_inflight = false;
	if (err) {
		if (l->once) {
			l->err = err;
			l->done = true;
			uv_stop(&l->cfg->loop);
			return;
		}
		if (!l->failing && err != -ECANCELED) {
			const char *why = lock_store_last_error(l->cfg->store);
			cli_error("cannot read election '%s' on %s: %s; still watching", l->name,
			          l->cfg->url_text, *why ? why : strerror(-err));
		}
		l->failing = true;
		return;
	}
	l->failing = false;
	/* the leader: the lowest fence among the holders (etcd: lowest create revision) */
	const struct lock_holder *h = NULL;
	for (unsigned i = 0; i < n; i++)
		if (!h || hs[i].fence < h->fence)
			h = &hs[i];
	bool changed = !l->printed || (h != NULL) != l->last_held ||
	               (h && (h->fence != l->last_fence || strcmp(h->owner, l->last_owner)));
	if (changed) {
		print_leader(l, h);
		l->printed = true;
		l->last_held = h != NULL;
		if (h) {
			l->last_fence = h->fence;
			snprintf(l->last_owner, sizeof l->last_owner, "%s", h->owner);
		}
	}
	if (l->once) {
		l->done = true;
		uv_stop(&l->cfg->loop);
		return;
	}
	if (l->dirty)
		ask(l);
}

static void ask(struct leader *l)
{
	if (l->status_inflight) {
		l->dirty = true;
		return;
	}
	l->dirty = false;
	l->status_inflight = true;
	int r = lock_status(l->cfg->store, l->name, status_cb, l);
	if (r < 0) {
		l->status_inflight = false;
		l->err = r;
		l->done = true;
		uv_stop(&l->cfg->loop);
	}
}

static void change_cb(void *ud, int err)
{
	struct leader *l = ud;
	if (err < 0) {
		if (err != -ECANCELED) {
			l->err = err;
			l->done = true;
			uv_stop(&l->cfg->loop);
		}
		return;
	}
	ask(l);
}

static void stop_cb(uv_signal_t *h, int signum)
{
	struct leader *l = h->data;
	(void)signum;
	l->done = true;
	uv_stop(&l->cfg->loop);
}

static void close_cb(uv_handle_t *h)
{
	(void)h;
}

int lock_leader(struct config *cfg, const char *name)
{
	int rc = lock_cli_open(cfg);
	if (rc)
		return rc;
	static struct leader l;
	l.cfg = cfg;
	l.name = name;
	l.once = !cfg->watch;
	static const int sig[3] = {SIGTERM, SIGINT, SIGHUP};
	for (int i = 0; i < 3; i++) {
		uv_signal_init(&cfg->loop, &l.sigs[i]);
		l.sigs[i].data = &l;
		uv_signal_start(&l.sigs[i], stop_cb, sig[i]);
	}
	if (l.once) {
		ask(&l);
	} else {
		l.w = lock_watch_start(cfg->store, name, change_cb, &l);
		if (!l.w) {
			l.err = -ENOMEM;
			l.done = true;
		}
	}
	while (!l.done)
		uv_run(&cfg->loop, UV_RUN_DEFAULT);
	lock_watch_stop(l.w);
	for (int i = 0; i < 3; i++)
		uv_close((uv_handle_t *)&l.sigs[i], close_cb);
	if (l.err)
		rc = lock_cli_fail(cfg, name, l.err);
	lock_cli_close(cfg);
	return rc;
}
