/*
 * watch.c -- dsys-register watch SERVICE: the current set, then one line
 * per change of it, as the store reports them (never by polling).
 *
 * On file:, inotify (libuv's fs_event) on DIR/SERVICE names the record
 * that was written or removed, and only that file is read again (a
 * thousand instances heartbeating every few seconds would otherwise have
 * the whole directory read hundreds of times a second, and each change
 * wait for it); an event without a name reads the whole directory.  A
 * timer set for the earliest expiry says when a record stops counting
 * though nobody touched it (its add was killed); it reads the directory
 * whole, which also mends anything inotify could have dropped.  Either
 * way the set is compared with what was last printed: an instance new to
 * the set is `up`, one gone from it `down`
 * (with the reason: removed, expired, or no longer passing), one whose
 * address, meta or status changed `change`.  Without --all the set is the
 * passing instances; with --all, every live one.  After the first set,
 * one {"event":"synced","count":N} line marks where the changes begin.
 *
 * Each delivery (the lines of one change, or the first set and its synced
 * line) is a span when spans have somewhere to go (obs/trace_proc.h), a
 * child of $TRACEPARENT; render makes its own spans instead.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <uv.h>

#include "base/json.h"
#include "cli/cli.h"
#include "dsys-register.h"
#include "obs/trace_proc.h"

struct watch {
	struct reg_config *cfg;
	const char *service;
	char dir[4400];
	struct reg_instance *known;
	size_t n_known;
	uv_fs_event_t ev;
	uv_timer_t expiry;
	uv_signal_t sigterm, sigint;
	int exit_code;
	/* every instance of the service: on etcd as of rev; on file: as
	 * last read, expired ones included */
	struct reg_instance *cur;
	size_t n_cur;
	struct etcd_client *etcd;
	struct etcd_watch *w;
	int64_t rev;                   /* printed with each event on etcd */
};

static struct watch wt;

/* render: told of every change of the set instead of printing it */
static reg_watch_hook hook;
static void *hook_ud;

void reg_watch_set_hook(reg_watch_hook fn, void *ud)
{
	hook = fn;
	hook_ud = ud;
}

static bool changed;

/* The span of the delivery being printed, begun by its first line and
 * ended after the diff; the first set is held open until its synced line. */
static struct trace_proc *delivery;
static size_t delivery_lines;
static bool delivery_hold;

static void delivery_begin(void)
{
	if (delivery || hook)
		return;
	delivery = trace_proc_begin("dsys-register", "dsys-register watch", TRACE_KIND_INTERNAL);
	if (delivery)
		trace_attr_set_str(&trace_proc_span(delivery)->attrs, "register.service", wt.service);
	delivery_lines = 0;
}

static void delivery_end(void)
{
	if (!delivery || delivery_hold)
		return;
	struct trace_attrs *a = &trace_proc_span(delivery)->attrs;
	trace_attr_set_int(a, "register.events", (int64_t)delivery_lines);
	trace_attr_set_int(a, "register.instances", (int64_t)wt.n_known);
	if (wt.rev)
		trace_attr_set_int(a, "register.revision", wt.rev);
	trace_proc_end(delivery, 0, NULL);
	delivery = NULL;
}

static void print(const char *event, const struct reg_instance *in, const char *reason)
{
	changed = true;
	if (hook)
		return;
	delivery_begin();
	delivery_lines++;
	struct buf b = BUF_INIT;
	struct json_writer w;
	json_writer_init(&w, &b);
	json_obj_begin(&w);
	json_kv_str(&w, "event", event);
	reg_instance_json(&w, in);
	if (reason)
		json_kv_str(&w, "reason", reason);
	if (wt.rev)
		json_kv_i64(&w, "revision", wt.rev);
	json_obj_end(&w);
	int r = json_emit(&b);
	buf_free(&b);
	if (r < 0)
		exit(cli_write_error(errno));
}

static int cmp_id(const void *a, const void *b)
{
	return strcmp(((const struct reg_instance *)a)->id, ((const struct reg_instance *)b)->id);
}

static const struct reg_instance *find(const struct reg_instance *v, size_t n, const char *id)
{
	struct reg_instance key;
	snprintf(key.id, sizeof key.id, "%s", id);
	return n ? bsearch(&key, v, n, sizeof *v, cmp_id) : NULL;
}

static void expiry_cb(uv_timer_t *t);

/* Print how the set seen differs from the last one printed; print
 * nothing when quiet (watch --since: the set as of REV).  Returns the
 * earliest expiry to come, or 0.
 *
 * seen (wt->cur, ours) is sorted by id here, and so is what was printed
 * (wt->known, made from it), so the two are compared in one merge: with a
 * thousand instances each heartbeat is one event, and a comparison of
 * every instance with every other would cost milliseconds each. */
static uint64_t diff(struct watch *wt, struct reg_instance *seen, size_t n_seen, bool quiet)
{
	uint64_t now = reg_now_ms();
	if (n_seen > 1)
		qsort(seen, n_seen, sizeof *seen, cmp_id);
	struct reg_instance *all = malloc((n_seen ? n_seen : 1) * sizeof *all);
	size_t n_all = 0;
	if (!all)
		return 0;   /* the next event tries again */
	uint64_t next = 0;
	for (size_t i = 0; i < n_seen; i++) {
		bool live = !seen[i].expires_ms || seen[i].expires_ms > now;
		if (live && seen[i].expires_ms && (!next || seen[i].expires_ms < next))
			next = seen[i].expires_ms;
		if (live && (wt->cfg->all || seen[i].status == REG_PASSING))
			all[n_all++] = seen[i];
	}
	for (size_t i = 0, j = 0; i < wt->n_known || j < n_all;) {
		const struct reg_instance *k = i < wt->n_known ? &wt->known[i] : NULL;
		const struct reg_instance *a = j < n_all ? &all[j] : NULL;
		int c = !k ? 1 : !a ? -1 : strcmp(k->id, a->id);
		if (c < 0) {   /* printed before, gone from the set */
			const struct reg_instance *s = find(seen, n_seen, k->id);
			const char *why = !s ? "removed"
			                  : (s->expires_ms && s->expires_ms <= now) ? "expired"
			                                                             : reg_status_name(s->status);
			if (!quiet)
				print("down", k, why);
			i++;
		} else if (c > 0) {
			if (!quiet)
				print("up", a, NULL);
			j++;
		} else {
			if (!quiet && (strcmp(k->addr, a->addr) || strcmp(k->meta, a->meta) ||
			               k->status != a->status))
				print("change", a, NULL);
			i++;
			j++;
		}
	}
	free(wt->known);
	wt->known = all;
	wt->n_known = n_all;
	if (hook && (changed || quiet))
		hook(hook_ud, wt->ev.loop, wt->known, wt->n_known);
	changed = false;
	delivery_end();
	return next;
}

/* The instance id of wt->cur becomes in (NULL: it is gone).  0, or
 * -ENOMEM with wt->cur unchanged. */
static int cur_set(struct watch *wt, const char *id, const struct reg_instance *in)
{
	size_t at = wt->n_cur;
	for (size_t i = 0; i < wt->n_cur; i++)
		if (!strcmp(wt->cur[i].id, id))
			at = i;
	if (!in) {
		if (at < wt->n_cur)
			wt->cur[at] = wt->cur[--wt->n_cur];
		return 0;
	}
	if (at == wt->n_cur) {
		struct reg_instance *nv = realloc(wt->cur, (wt->n_cur + 1) * sizeof *nv);
		if (!nv)
			return -ENOMEM;
		wt->cur = nv;
		wt->n_cur++;
	}
	wt->cur[at] = *in;
	return 0;
}

/* file: print how wt->cur differs from what was printed, and arm the
 * expiry timer for the earliest expiry to come. */
static void settle(struct watch *wt)
{
	uint64_t now = reg_now_ms();
	uint64_t next = diff(wt, wt->cur, wt->n_cur, false);
	if (next)
		uv_timer_start(&wt->expiry, expiry_cb, next > now ? next - now + 1 : 1, 0);
	else
		uv_timer_stop(&wt->expiry);
}

/* Read the whole set again. */
static void rescan(struct watch *wt)
{
	struct reg_instance *seen;
	size_t n_seen;
	/* expired ones too: to tell "expired" from "removed" */
	int r = reg_file_list(wt->cfg->url.path, wt->service, 0, &seen, &n_seen);
	if (r < 0) {
		cli_error("cannot read %s: %s", wt->cfg->url_text, strerror(-r));
		return;
	}
	free(wt->cur);
	wt->cur = seen;
	wt->n_cur = n_seen;
	settle(wt);
}

static void expiry_cb(uv_timer_t *t)
{
	rescan(t->data);
}

static void fs_cb(uv_fs_event_t *h, const char *filename, int events, int status)
{
	struct watch *wt = h->data;
	const char *why;
	if (filename && filename[0] == '.')
		return;   /* a temporary file; its rename comes next */
	if (status < 0 || !filename || reg_name_check(filename, &why) < 0)
		return rescan(wt);
	/* the one record named: written (or renamed in), or removed */
	struct reg_instance in;
	int r = reg_file_get(wt->cfg->url.path, wt->service, filename, &in);
	if ((r < 0 && r != -ENOENT && r != -EINVAL) ||
	    cur_set(wt, filename, r == 0 ? &in : NULL) < 0)
		return rescan(wt);   /* cannot tell: read everything */
	settle(wt);
}

/* One etcd event: the instance set changes by one key. */
static void apply(struct watch *wt, const struct etcd_event *ev)
{
	struct reg_instance in;
	const char *key = ev->kv.key;
	size_t klen = ev->kv.key_len;
	/* the id: after the service's prefix */
	size_t pl = strlen(REG_ETCD_PREFIX) + strlen(wt->service) + 1;
	if (klen <= pl || klen - pl > REG_MAX_NAME)
		return;
	char id[REG_MAX_NAME + 1];
	memcpy(id, key + pl, klen - pl);
	id[klen - pl] = '\0';
	if (!ev->is_delete && reg_etcd_decode(key, klen, ev->kv.value, ev->kv.value_len, &in) < 0)
		return;
	if (cur_set(wt, id, ev->is_delete ? NULL : &in) < 0)
		return;
	wt->rev = ev->kv.mod_revision;
	diff(wt, wt->cur, wt->n_cur, false);
}

static void reg_watch_etcd_cb(void *ud, int err, const struct etcd_watch_msg *m)
{
	struct watch *wt = ud;
	if (err < 0) {
		wt->w = NULL;
		if (err == ETCD_E_COMPACTED)
			cli_error("revision %lld is compacted away on %s: watch again without --since",
			          (long long)(wt->cfg->since ? wt->cfg->since : wt->rev), wt->cfg->url_text);
		else if (err != -ECANCELED)
			cli_error("watch on %s ended: %s", wt->cfg->url_text,
			          err == ETCD_E_SERVER && m && m->error_message ? m->error_message
			                                                         : etcd_strerror(err));
		wt->exit_code = EXIT_UNREACHABLE;
		uv_stop(wt->ev.loop ? wt->ev.loop : uv_default_loop());
		return;
	}
	for (size_t i = 0; i < m->n_events; i++)
		apply(wt, &m->events[i]);
}

static void stop_cb(uv_signal_t *h, int signum)
{
	uv_stop(h->loop);
}

static void close_cb(uv_handle_t *h)
{
	(void)h;
}

static void synced(const char *service, size_t count, int64_t rev)
{
	struct buf b = BUF_INIT;
	struct json_writer w;
	json_writer_init(&w, &b);
	json_obj_begin(&w);
	json_kv_str(&w, "event", "synced");
	json_kv_str(&w, "service", service);
	json_kv_u64(&w, "count", count);
	if (rev)
		json_kv_i64(&w, "revision", rev);
	json_obj_end(&w);
	json_emit(&b);
	buf_free(&b);
}

static int watch_etcd(struct reg_config *cfg, const char *service, uv_loop_t *loop)
{
	wt.etcd = reg_cli_etcd(cfg, loop);
	if (!wt.etcd)
		return EXIT_UNREACHABLE;
	wt.ev.loop = loop;
	int64_t rev = 0;
	int r = reg_etcd_list(wt.etcd, service, cfg->since, &wt.cur, &wt.n_cur, &rev);
	if (r < 0) {
		etcd_client_free(wt.etcd);
		if (r == ETCD_E_SERVER && cfg->since)
			cli_error("cannot read revision %lld on %s (compacted, or not yet written)",
			          (long long)cfg->since, cfg->url_text);
		return r == ETCD_E_SERVER && cfg->since ? EXIT_USAGE : reg_cli_etcd_fail(cfg, r);
	}
	if (cfg->since)
		rev = cfg->since;
	wt.rev = rev;
	if (!cfg->since) {
		delivery_begin();   /* the first set and synced: one delivery */
		delivery_hold = true;
	}
	diff(&wt, wt.cur, wt.n_cur, cfg->since != 0);
	if (!cfg->since && !hook)
		synced(service, wt.n_known, rev);
	delivery_hold = false;
	delivery_end();
	char p[REG_MAX_NAME + 64];
	snprintf(p, sizeof p, "%s%s/", REG_ETCD_PREFIX, service);
	struct etcd_range er = {p, strlen(p), NULL, 0, true};
	wt.w = etcd_watch_start(wt.etcd, &er, rev + 1, false, reg_watch_etcd_cb, &wt);
	uv_signal_init(loop, &wt.sigterm);
	uv_signal_init(loop, &wt.sigint);
	uv_signal_start(&wt.sigterm, stop_cb, SIGTERM);
	uv_signal_start(&wt.sigint, stop_cb, SIGINT);
	uv_run(loop, UV_RUN_DEFAULT);
	if (wt.w)
		etcd_watch_stop(wt.w);
	etcd_client_free(wt.etcd);
	uv_close((uv_handle_t *)&wt.sigterm, close_cb);
	uv_close((uv_handle_t *)&wt.sigint, close_cb);
	uv_run(loop, UV_RUN_DEFAULT);
	uv_loop_close(loop);
	free(wt.known);
	free(wt.cur);
	return wt.exit_code;
}

int reg_watch(struct reg_config *cfg, const char *service)
{
	uv_loop_t loop;
	wt.cfg = cfg;
	wt.service = service;
	if (cfg->url.kind == STORE_ETCD) {
		uv_loop_init(&loop);
		return watch_etcd(cfg, service, &loop);
	}
	if (cfg->since) {
		cli_error("--since REV is for etcd://: file: has no revisions");
		return EXIT_USAGE;
	}
	snprintf(wt.dir, sizeof wt.dir, "%s/%s", cfg->url.path, service);
	if ((mkdir(cfg->url.path, 0777) < 0 && errno != EEXIST) ||
	    (mkdir(wt.dir, 0777) < 0 && errno != EEXIST)) {
		cli_error("cannot make '%s': %s", wt.dir, strerror(errno));
		return EXIT_UNREACHABLE;
	}
	uv_loop_init(&loop);
	uv_timer_init(&loop, &wt.expiry);
	wt.expiry.data = &wt;
	uv_fs_event_init(&loop, &wt.ev);
	wt.ev.data = &wt;
	int r = uv_fs_event_start(&wt.ev, fs_cb, wt.dir, 0);
	if (r < 0) {
		cli_error("cannot watch '%s': %s", wt.dir, uv_strerror(r));
		return EXIT_UNREACHABLE;
	}
	uv_signal_init(&loop, &wt.sigterm);
	uv_signal_init(&loop, &wt.sigint);
	uv_signal_start(&wt.sigterm, stop_cb, SIGTERM);
	uv_signal_start(&wt.sigint, stop_cb, SIGINT);
	delivery_begin();   /* the first set and synced: one delivery */
	delivery_hold = true;
	rescan(&wt);   /* the current set, after the watch began: nothing falls between */
	if (hook)
		hook(hook_ud, &loop, wt.known, wt.n_known);   /* even an empty first set */
	else
		synced(service, wt.n_known, 0);
	delivery_hold = false;
	delivery_end();
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_close((uv_handle_t *)&wt.ev, close_cb);
	uv_close((uv_handle_t *)&wt.expiry, close_cb);
	uv_close((uv_handle_t *)&wt.sigterm, close_cb);
	uv_close((uv_handle_t *)&wt.sigint, close_cb);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	free(wt.known);
	free(wt.cur);
	return 0;
}
