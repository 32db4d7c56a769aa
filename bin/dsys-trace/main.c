/*
 * dsys-trace -- spans from the shell, on OpenTelemetry's wire format.
 *
 *   dsys-trace exec [--name N] [--kind K] [--attr A]... -- CMD [ARG]...
 *   dsys-trace start NAME            prints {"traceparent",...}; the span stays open
 *   dsys-trace event NAME            an event on the open span $TRACEPARENT names
 *   dsys-trace end [TRACEPARENT]     closes and exports the open span
 *   dsys-trace log                   stdin's lines as OTLP log records (log.c)
 *   dsys-trace collect               an OTLP/HTTP receiver (collect.c)
 *   dsys-trace show [TRACE_ID]       a waterfall of a trace (show.c)
 *
 * lib/obs/trace does the work (W3C context, spans, OTLP JSON, the file
 * exporter) and lib/obs/otlp sends spans over OTLP/HTTP; this file is
 * options and process plumbing.
 *
 * exec runs CMD with no shell as a child span of $TRACEPARENT (or as the
 * root of a fresh trace when it is unset or invalid), with TRACEPARENT set
 * to the new span so that nested dsys-trace calls and dsys programs join
 * the trace.  stdin, stdout and stderr are CMD's own.  TERM, INT, HUP,
 * QUIT, USR1 and USR2 are passed on to CMD, so `kill` of the wrapper does
 * not orphan the command or lose its span; the wrapper then exits with
 * CMD's exact status (128+N when a signal N killed it), or 126/127 as
 * env(1) when CMD cannot be run, and a span is written in every case.
 * Signals that were ignored when dsys-trace started (nohup, a background
 * job of a script) stay ignored for CMD too, and SIGPIPE goes back to its
 * disposition at start, though cli_init ignores it for us.
 *
 * start/event/end keep an open span in a spool file named by its span id,
 * so a span can cover a block of shell with no background process.  The
 * file holds JSON lines: the span's head first, then one line per event,
 * each appended with one write(2) on an O_APPEND descriptor, so concurrent
 * `event` calls never tear each other's lines; end reads it, exports the
 * span and removes it.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "base/buf.h"
#include "base/json.h"
#include "cli/cli.h"
#include "obs/otlp.h"
#include "obs/trace.h"

#include "dsys-trace.h"

#define SPOOL_MAX (16u << 20) /* bytes an open span's file may grow to */

enum { OPT_NAME = 1, OPT_KIND, OPT_ATTR, OPT_FILE, OPT_SPOOL, OPT_STATUS, OPT_MESSAGE };

#define FILE_OPT {"file", 0, "PATH", "DSYS_TRACE_FILE", "append each finished span to PATH as one OTLP JSON line", OPT_FILE}
#define SPOOL_OPT {"spool", 0, "DIR", "DSYS_TRACE_SPOOL", "where open spans are kept (default $XDG_RUNTIME_DIR/dsys-trace)", OPT_SPOOL}
#define ATTR_OPT {"attr", 'a', "K[:TYPE]=V", NULL, "an attribute; TYPE is int, bool or double (repeatable)", OPT_ATTR}
#define KIND_OPT {"kind", 'k', "KIND", NULL, "internal, server, client, producer or consumer (default internal)", OPT_KIND}

static const struct cli_option exec_options[] = {
	{"name", 'n', "NAME", NULL, "the span's name (default: CMD)", OPT_NAME},
	KIND_OPT, ATTR_OPT, FILE_OPT, CLI_END
};
static const struct cli_option start_options[] = {KIND_OPT, ATTR_OPT, SPOOL_OPT, CLI_END};
static const struct cli_option event_options[] = {ATTR_OPT, SPOOL_OPT, CLI_END};
static const struct cli_option end_options[] = {
	{"status", 0, "STATUS", NULL, "ok or error (default: unset)", OPT_STATUS},
	{"message", 'm', "TEXT", NULL, "the status message", OPT_MESSAGE},
	ATTR_OPT, FILE_OPT, SPOOL_OPT, CLI_END
};
static const struct cli_option no_options[] = {CLI_END};

static const struct cli_spec exec_spec = {
	"dsys-trace exec", "[OPTION]... [--] CMD [ARG]...",
	"Run CMD as a span, with TRACEPARENT set for it; exit with its status.", exec_options,
	"CMD runs with no shell; its stdin, stdout and stderr are untouched.\n"
	"dsys-trace exec exits with CMD's status: 128+N when signal N killed it,\n"
	"126 when CMD cannot run, 127 when it is not found, 2 for a usage error.\n",
};
static const struct cli_spec start_spec = {
	"dsys-trace start", "[OPTION]... NAME",
	"Open a span and print its traceparent as JSON.", start_options, NULL,
};
static const struct cli_spec event_spec = {
	"dsys-trace event", "[OPTION]... NAME",
	"Add an event to the open span $TRACEPARENT names.", event_options, NULL,
};
static const struct cli_spec end_spec = {
	"dsys-trace end", "[OPTION]... [TRACEPARENT]",
	"Close and export an open span (default: $TRACEPARENT).", end_options, NULL,
};
static const struct cli_spec top_spec = {
	"dsys-trace", "COMMAND [OPTION]...",
	"Spans from the shell, in OpenTelemetry's format.", no_options,
	"commands:\n"
	"  exec   run a command as a span\n"
	"  start  open a span around a block of shell\n"
	"  event  add an event to the open span\n"
	"  end    close and export the open span\n"
	"  log    ship log lines from stdin as OTLP log records\n"
	"  collect  receive OTLP over HTTP, print and forward it\n"
	"  show   draw a trace as a waterfall\n"
	"Run 'dsys-trace COMMAND --help' for a command's options.\n",
};

struct opts {
	const char *name;
	int kind;
	struct trace_attrs attrs;
	const char *file;
	const char *spool;
	int status;
	const char *message;
};

static int on_option(void *ctx, int id, const char *arg)
{
	struct opts *o = ctx;
	const char *why = NULL;
	switch (id) {
	case OPT_NAME:
		if (!*arg)
			return cli_bad_value(NULL, arg, "the name is empty");
		o->name = arg;
		return 0;
	case OPT_KIND:
		o->kind = trace_kind_parse(arg);
		if (o->kind < 0)
			return cli_bad_value(NULL, arg, "expected internal, server, client, producer or consumer");
		return 0;
	case OPT_ATTR:
		if (trace_attr_parse(&o->attrs, arg, &why) < 0)
			return cli_bad_value(NULL, arg, why);
		return 0;
	case OPT_FILE:
		o->file = *arg ? arg : NULL;
		return 0;
	case OPT_SPOOL:
		o->spool = *arg ? arg : NULL;
		return 0;
	case OPT_STATUS:
		if (!strcmp(arg, "ok"))
			o->status = TRACE_STATUS_OK;
		else if (!strcmp(arg, "error"))
			o->status = TRACE_STATUS_ERROR;
		else
			return cli_bad_value(NULL, arg, "expected ok or error");
		return 0;
	case OPT_MESSAGE:
		o->message = arg;
		return 0;
	}
	return 0;
}

/*
 * Export a finished span to --file and to the OTLP endpoint, each that is
 * set.  Returns 0 when every export that was tried worked, or -1 after
 * saying on stderr what failed; *delivered (if given) is whether any
 * export took the span, so end knows whether to keep it open.
 */
static int export_span(const struct opts *o, const struct trace_span *sp,
                       const struct trace_attrs *res, bool *delivered)
{
	struct buf line = BUF_INIT;
	int failed = 0, tried = 0;
	if (!(sp->ctx.flags & TRACE_FLAG_SAMPLED)) {
		if (delivered) /* not recorded: nothing to send, nothing to keep */
			*delivered = true;
		return 0;
	}
	if (o->file) {
		trace_span_json(sp, res, &line);
		tried++;
		int rc = trace_export_file(o->file, &line);
		if (rc < 0) {
			cli_error("cannot write span to '%s': %s", o->file, strerror(-rc));
			failed++;
		}
	}
	struct otlp_config cfg;
	char err[512] = "";
	int rc = otlp_config_from_env(&cfg, "traces", err, sizeof err);
	if (rc == 1)
		cli_error("%s", err);
	if (rc == -EINVAL) {
		cli_error("%s", err);
		tried++;
		failed++;
	} else if (rc >= 0) {
		tried++;
		struct buf body = BUF_INIT;
		const struct otlp_item it = {.resource = res, .span = sp};
		otlp_codec_encode(cfg.encoding, &it, 1, &body);
		int prc = otlp_post(&cfg, body.data, body.len, err, sizeof err);
		buf_free(&body);
		if (prc < 0) {
			cli_error("%s", err);
			failed++;
		}
	}
	buf_free(&line);
	if (delivered)
		*delivered = tried == 0 || failed < tried;
	return failed ? -1 : 0;
}

/* Is some exporter set?  exec asks before it makes the resource, so a
 * run with none (the common case of a script traced only sometimes)
 * touches no more memory than it must. */
static bool exporter_set(const struct opts *o)
{
	const char *a = getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
	const char *b = getenv("OTEL_EXPORTER_OTLP_ENDPOINT");
	return o->file || (a && *a) || (b && *b);
}

/* The resource of this process; a bad OTEL_RESOURCE_ATTRIBUTES is
 * reported and ignored, as the spec asks. */
void resource_init(struct trace_attrs *res)
{
	if (trace_resource_from_env(res, "dsys-trace") < 0)
		cli_error("ignoring OTEL_RESOURCE_ATTRIBUTES: not a list of key=percent-encoded-value");
}

/* The sampling decision for a new span, in its sampled flag: children
 * and the exporters follow it.  A bad OTEL_TRACES_SAMPLER is reported and
 * the default (parentbased_always_on) used. */
static void sample_span(struct trace_span *sp, const struct trace_context *parent)
{
	struct trace_sampler smp;
	if (trace_sampler_from_env(&smp) < 0)
		cli_error("ignoring OTEL_TRACES_SAMPLER: expected always_on, always_off, traceidratio or "
		          "their parentbased_ forms, and a ratio from 0 to 1");
	bool on = trace_sample(&smp, parent, sp->ctx.trace_id);
	sp->ctx.flags = on ? TRACE_FLAG_SAMPLED : 0;
}

/* ------------------------------------------------------------------ exec */

static const int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
#define NFORWARDED (int)(sizeof forwarded / sizeof forwarded[0])
static volatile sig_atomic_t child_pid;
static struct sigaction sigpipe_at_start;

/* A signal the kernel sent (the terminal's Ctrl-C, Ctrl-\\, hangup) went
 * to the whole foreground process group, CMD included: sending it again
 * would make CMD see two.  Only what kill(2) sent to us alone is passed. */
static void forward_cb(int sig, siginfo_t *info, void *uc)
{
	(void)uc;
	int saved = errno;
	if (child_pid > 0 && info->si_code != SI_KERNEL)
		kill((pid_t)child_pid, sig);
	errno = saved;
}

/* The index of CMD in argv (after "exec"): the first operand, or what
 * follows "--".  Options' values are skipped, so `--name x cmd` works;
 * everything from CMD on is CMD's, never ours. */
static int find_command(int argc, char **argv, bool *dashdash)
{
	*dashdash = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--")) {
			*dashdash = true;
			return i;
		}
		if (a[0] != '-' || !a[1])
			return i;
		if (a[1] != '-') { /* -n NAME, or -nNAME */
			const char *arg_shorts = "nka";
			if (!a[2] && strchr(arg_shorts, a[1]))
				i++;
			continue;
		}
		if (strchr(a, '='))
			continue;
		size_t n = strlen(a + 2);
		for (const struct cli_option *o = exec_options; o->name; o++)
			if (o->arg && !strncmp(o->name, a + 2, n)) {
				i++;
				break;
			}
	}
	return argc;
}

/* The errno of CMD's failed exec, written by the child of vfork, which
 * shares our memory until it execs or exits; 0 when the exec worked. */
static volatile int spawn_errno;

/*
 * Start CMD with the signal mask *mask and SIGPIPE as it was at our start,
 * and return its pid (-1 and errno when vfork fails).  vfork, not fork:
 * exec's cost is what `dsys-trace exec` adds, and fork copies our page
 * tables only for the child to throw them away, then makes us fault on
 * every page we write while it runs.  The child of vfork borrows our
 * memory and stack while we wait, so it does nothing but async-signal-
 * safe calls and never returns from here; this function is not inlined,
 * so its frame is all the child may touch.  Our signal handlers are not
 * installed yet (cmd_exec does it after), so the child has none to undo.
 */
static __attribute__((noinline)) pid_t spawn(char **cargv, const sigset_t *mask)
{
	spawn_errno = 0;
	pid_t pid = vfork();
	if (pid == 0) {
		sigaction(SIGPIPE, &sigpipe_at_start, NULL);
		sigprocmask(SIG_SETMASK, mask, NULL);
		execvp(cargv[0], cargv);
		spawn_errno = errno;
		_exit(errno == ENOENT ? 127 : 126);
	}
	return pid;
}

static int cmd_exec(int argc, char **argv)
{
	struct opts o = {.kind = TRACE_KIND_INTERNAL};
	bool dashdash;
	int cmd = find_command(argc, argv, &dashdash);
	int first;
	int r = cli_parse(&exec_spec, cmd, argv, on_option, &o, &first);
	if (r >= 0) {
		trace_attrs_free(&o.attrs);
		return r;
	}
	if (first < cmd) { /* cannot happen: cmd is the first operand */
		cli_error("unexpected argument '%s'", argv[first]);
		trace_attrs_free(&o.attrs);
		return EXIT_USAGE;
	}
	if (dashdash)
		cmd++;
	if (cmd >= argc) {
		cli_error("no command given");
		fprintf(stderr, "Try 'dsys-trace exec --help' for more information.\n");
		trace_attrs_free(&o.attrs);
		return EXIT_USAGE;
	}
	char **cargv = argv + cmd;

	struct trace_context parent;
	int have = trace_context_from_env(&parent) == 0;
	static struct trace_span sp; /* large: keep it off the stack */
	trace_span_init(&sp, o.name ? o.name : cargv[0], (enum trace_kind)o.kind, have ? &parent : NULL);
	sample_span(&sp, have ? &parent : NULL);
	sp.attrs = o.attrs; /* moved */
	memset(&o.attrs, 0, sizeof o.attrs);

	char tp[TRACE_PARENT_LEN + 1];
	trace_parent_format(&sp.ctx, tp);
	setenv("TRACEPARENT", tp, 1);
	if (sp.ctx.state[0])
		setenv("TRACESTATE", sp.ctx.state, 1);
	else
		unsetenv("TRACESTATE"); /* an invalid one is dropped, not passed on */

	/* The forwarded signals are blocked from before the child starts
	 * until child_pid is set and our handlers are in place, so none
	 * arrives with nobody to pass it to: one sent meanwhile waits, and is
	 * passed on when they are unblocked. */
	sigset_t block, old;
	sigemptyset(&block);
	for (int i = 0; i < NFORWARDED; i++)
		sigaddset(&block, forwarded[i]);
	sigprocmask(SIG_BLOCK, &block, &old);
	fflush(NULL);
	pid_t pid = spawn(cargv, &old);
	if (pid < 0) {
		int err = errno;
		sigprocmask(SIG_SETMASK, &old, NULL);
		cli_error("vfork: %s", strerror(err));
		trace_span_end(&sp, TRACE_STATUS_ERROR, strerror(err));
		struct trace_attrs res;
		resource_init(&res);
		export_span(&o, &sp, &res, NULL);
		return 125;
	}
	child_pid = pid;
	/* Installed only now: CMD started with the dispositions we were
	 * given, so its child side had nothing to undo. */
	for (int i = 0; i < NFORWARDED; i++) {
		struct sigaction sa = {.sa_sigaction = forward_cb, .sa_flags = SA_SIGINFO}, was;
		sigemptyset(&sa.sa_mask);
		sigaction(forwarded[i], &sa, &was);
		if (!(was.sa_flags & SA_SIGINFO) && was.sa_handler == SIG_IGN)
			sigaction(forwarded[i], &was, NULL); /* ignored stays ignored, here as in CMD */
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	int exec_err = spawn_errno;
	trace_attr_set_str(&sp.attrs, "process.command", cargv[0]);
	trace_attr_set_int(&sp.attrs, "process.pid", pid);

	int wstatus;
	pid_t w;
	do
		w = waitpid(pid, &wstatus, 0);
	while (w < 0 && errno == EINTR);
	child_pid = 0;

	int code;
	char msg[256];
	if (w < 0) {
		code = 125;
		snprintf(msg, sizeof msg, "waitpid: %s", strerror(errno));
		cli_error("%s", msg);
	} else if (exec_err) {
		code = exec_err == ENOENT ? 127 : 126;
		snprintf(msg, sizeof msg, "cannot run '%s': %s", cargv[0], strerror(exec_err));
		cli_error("%s", msg);
	} else if (WIFSIGNALED(wstatus)) {
		int sig = WTERMSIG(wstatus);
		code = 128 + sig;
		snprintf(msg, sizeof msg, "killed by signal %d (SIG%s)", sig, sigabbrev_np(sig) ? sigabbrev_np(sig) : "?");
		trace_attr_set_int(&sp.attrs, "process.exit.code", code);
	} else {
		code = WEXITSTATUS(wstatus);
		snprintf(msg, sizeof msg, "exit status %d", code);
		trace_attr_set_int(&sp.attrs, "process.exit.code", code);
	}
	trace_span_end(&sp, code ? TRACE_STATUS_ERROR : TRACE_STATUS_UNSET, code ? msg : NULL);
	if (exporter_set(&o)) {
		static struct trace_attrs res;
		resource_init(&res);
		export_span(&o, &sp, &res, NULL);
		trace_attrs_free(&res);
	}
	trace_span_free(&sp);
	return code;
}

/* ----------------------------------------------------------------- spool */

/* The spool directory, created 0700 when missing; it must be a directory
 * of ours, since what is in it becomes spans.  Returns 0 or EXIT_*. */
static int spool_dir(const struct opts *o, char *out, size_t cap)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	if (o->spool)
		snprintf(out, cap, "%s", o->spool);
	else if (xdg && *xdg)
		snprintf(out, cap, "%s/dsys-trace", xdg);
	else
		snprintf(out, cap, "/tmp/dsys-trace-%u", (unsigned)getuid());
	if (mkdir(out, 0700) < 0 && errno != EEXIST) {
		cli_error("cannot create spool directory '%s': %s", out, strerror(errno));
		return EXIT_UNREACHABLE;
	}
	struct stat st;
	if (lstat(out, &st) < 0) {
		cli_error("cannot use spool directory '%s': %s", out, strerror(errno));
		return EXIT_UNREACHABLE;
	}
	if (!S_ISDIR(st.st_mode) || st.st_uid != getuid()) {
		cli_error("spool directory '%s' is not a directory of yours", out);
		return EXIT_UNREACHABLE;
	}
	return 0;
}

/* The spool file of the span tp names, after checking tp. */
static int spool_path(const struct opts *o, const char *tp, struct trace_context *c,
                      char *path, size_t cap)
{
	if (!tp || !*tp) {
		cli_error("no open span: TRACEPARENT is not set");
		return EXIT_USAGE;
	}
	if (trace_parent_parse(tp, strlen(tp), c) < 0) {
		cli_error("invalid traceparent '%s'", tp);
		return EXIT_USAGE;
	}
	char dir[4096];
	int r = spool_dir(o, dir, sizeof dir);
	if (r)
		return r;
	char sid[17];
	trace_hex(c->span_id, 8, sid);
	snprintf(path, cap, "%s/%s", dir, sid);
	return 0;
}

static int append_line(const char *path, struct buf *line, int flags)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | flags, 0600);
	if (fd < 0)
		return -errno;
	buf_putc(line, '\n');
	ssize_t w;
	do
		w = write(fd, line->data, line->len);
	while (w < 0 && errno == EINTR);
	int rc = w < 0 ? -errno : (size_t)w != line->len ? -EIO : 0;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	return rc;
}

static void u64_str(struct json_writer *w, const char *key, uint64_t v)
{
	char tmp[24];
	snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
	json_kv_str(w, key, tmp);
}

static int one_operand(int argc, char **argv, int first, const char *what, const char **out)
{
	if (first >= argc) {
		if (!what)
			return 0;
		cli_error("missing %s", what);
		fprintf(stderr, "Try '%s --help' for more information.\n", cli_prog());
		return EXIT_USAGE;
	}
	if (first + 1 < argc) {
		cli_error("unexpected argument '%s'", argv[first + 1]);
		return EXIT_USAGE;
	}
	*out = argv[first];
	return 0;
}

static int cmd_start(int argc, char **argv)
{
	struct opts o = {.kind = TRACE_KIND_INTERNAL};
	int first;
	int r = cli_parse(&start_spec, argc, argv, on_option, &o, &first);
	if (r >= 0) {
		trace_attrs_free(&o.attrs);
		return r;
	}
	const char *name = NULL;
	r = one_operand(argc, argv, first, "span name", &name);
	if (r == 0 && !*name) {
		cli_error("the span name is empty");
		r = EXIT_USAGE;
	}
	char dir[4096];
	if (r == 0)
		r = spool_dir(&o, dir, sizeof dir);
	if (r) {
		trace_attrs_free(&o.attrs);
		return r;
	}
	struct trace_context parent;
	int have = trace_context_from_env(&parent) == 0;
	static struct trace_span sp;
	trace_span_init(&sp, name, (enum trace_kind)o.kind, have ? &parent : NULL);
	sample_span(&sp, have ? &parent : NULL);
	struct trace_attrs res;
	resource_init(&res);

	char tp[TRACE_PARENT_LEN + 1], hex[33];
	trace_parent_format(&sp.ctx, tp);
	struct buf line = BUF_INIT;
	struct json_writer w;
	json_writer_init(&w, &line);
	json_obj_begin(&w);
	json_kv_str(&w, "traceparent", tp);
	if (sp.ctx.state[0])
		json_kv_str(&w, "tracestate", sp.ctx.state);
	if (sp.has_parent) {
		trace_hex(sp.parent_span_id, 8, hex);
		json_kv_str(&w, "parent_span_id", hex);
	}
	json_kv_str(&w, "name", name);
	json_kv_i64(&w, "kind", sp.kind);
	u64_str(&w, "start_ns", sp.start_ns);
	json_key(&w, "resource");
	trace_attrs_json(&w, &res);
	json_key(&w, "attributes");
	trace_attrs_json(&w, &o.attrs);
	json_obj_end(&w);
	trace_hex(sp.ctx.span_id, 8, hex);
	char path[4200];
	snprintf(path, sizeof path, "%s/%s", dir, hex);
	int rc = append_line(path, &line, O_CREAT | O_EXCL);
	buf_free(&line);
	trace_attrs_free(&res);
	trace_attrs_free(&o.attrs);
	if (rc < 0) {
		cli_error("cannot write '%s': %s", path, strerror(-rc));
		trace_span_free(&sp);
		return EXIT_UNREACHABLE;
	}

	json_writer_init(&w, &line);
	json_obj_begin(&w);
	json_kv_str(&w, "traceparent", tp);
	trace_hex(sp.ctx.trace_id, 16, hex);
	json_kv_str(&w, "trace_id", hex);
	trace_hex(sp.ctx.span_id, 8, hex);
	json_kv_str(&w, "span_id", hex);
	json_obj_end(&w);
	trace_span_free(&sp);
	if (json_emit(&line) < 0) {
		buf_free(&line);
		return cli_write_error(errno);
	}
	buf_free(&line);
	return cli_stdout_close();
}

static int cmd_event(int argc, char **argv)
{
	struct opts o = {0};
	int first;
	int r = cli_parse(&event_spec, argc, argv, on_option, &o, &first);
	if (r >= 0) {
		trace_attrs_free(&o.attrs);
		return r;
	}
	const char *name = NULL;
	r = one_operand(argc, argv, first, "event name", &name);
	if (r == 0 && !*name) {
		cli_error("the event name is empty");
		r = EXIT_USAGE;
	}
	struct trace_context c;
	char path[4200];
	if (r == 0)
		r = spool_path(&o, getenv("TRACEPARENT"), &c, path, sizeof path);
	if (r) {
		trace_attrs_free(&o.attrs);
		return r;
	}
	struct buf line = BUF_INIT;
	struct json_writer w;
	json_writer_init(&w, &line);
	json_obj_begin(&w);
	json_kv_str(&w, "event", name);
	u64_str(&w, "time_ns", trace_now_ns());
	json_key(&w, "attributes");
	trace_attrs_json(&w, &o.attrs);
	json_obj_end(&w);
	trace_attrs_free(&o.attrs);
	int rc = append_line(path, &line, 0); /* no O_CREAT: the span must be open */
	buf_free(&line);
	if (rc == -ENOENT) {
		cli_error("no open span %s", getenv("TRACEPARENT"));
		return EXIT_NO;
	}
	if (rc < 0) {
		cli_error("cannot write '%s': %s", path, strerror(-rc));
		return EXIT_UNREACHABLE;
	}
	return 0;
}

/* Rebuild the open span from its spool file; 0 or -EINVAL. */
static int spool_read(const char *text, size_t len, const struct trace_context *c,
                      struct trace_span *sp, struct trace_attrs *res)
{
	const char *p = text, *end = text + len;
	bool head = true;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		json_value *v = n ? json_parse(p, n, NULL) : NULL;
		p += n + 1;
		if (!n)
			continue;
		if (!v)
			return -EINVAL;
		int rc = 0;
		const char *s;
		int64_t i;
		if (head) {
			const char *tp = json_get_str(v, "traceparent");
			const char *name = json_get_str(v, "name");
			struct trace_context own;
			int64_t kind = 0;
			s = json_get_str(v, "start_ns");
			if (!tp || !name || !s || trace_parent_parse(tp, strlen(tp), &own) < 0 ||
			    memcmp(own.trace_id, c->trace_id, 16) || memcmp(own.span_id, c->span_id, 8) ||
			    json_parse_i64(s, strlen(s), &i) < 0 || json_get_i64(v, "kind", &kind) < 0 ||
			    kind < 0 || kind > TRACE_KIND_CONSUMER) {
				rc = -EINVAL;
			} else {
				sp->ctx = own;
				sp->kind = (enum trace_kind)kind;
				sp->start_ns = (uint64_t)i;
				sp->name = strdup(name);
				if ((s = json_get_str(v, "tracestate")))
					snprintf(sp->ctx.state, sizeof sp->ctx.state, "%s", s);
				if ((s = json_get_str(v, "parent_span_id"))) {
					if (trace_unhex(s, strlen(s), sp->parent_span_id, 8) < 0)
						rc = -EINVAL;
					sp->has_parent = true;
				}
				if (rc == 0 && (trace_attrs_from_json(json_get(v, "resource"), res) < 0 ||
				                trace_attrs_from_json(json_get(v, "attributes"), &sp->attrs) < 0))
					rc = -EINVAL;
			}
			head = false;
		} else {
			const char *name = json_get_str(v, "event");
			struct trace_attrs ea = {0};
			s = json_get_str(v, "time_ns");
			if (!name || !s || json_parse_i64(s, strlen(s), &i) < 0 ||
			    trace_attrs_from_json(json_get(v, "attributes"), &ea) < 0)
				rc = -EINVAL;
			else
				trace_span_event(sp, name, (uint64_t)i, &ea);
			trace_attrs_free(&ea);
		}
		json_free(v);
		if (rc < 0)
			return rc;
	}
	return head ? -EINVAL : 0;
}

static int cmd_end(int argc, char **argv)
{
	struct opts o = {0};
	int first;
	int r = cli_parse(&end_spec, argc, argv, on_option, &o, &first);
	if (r >= 0) {
		trace_attrs_free(&o.attrs);
		return r;
	}
	const char *tp = getenv("TRACEPARENT");
	r = one_operand(argc, argv, first, NULL, &tp);
	struct trace_context c;
	char path[4200];
	if (r == 0)
		r = spool_path(&o, tp, &c, path, sizeof path);
	if (r) {
		trace_attrs_free(&o.attrs);
		return r;
	}
	struct buf text = BUF_INIT;
	int rc = buf_read_file(&text, path, SPOOL_MAX);
	if (rc < 0) {
		trace_attrs_free(&o.attrs);
		buf_free(&text);
		if (rc == -ENOENT) {
			cli_error("no open span %s", tp);
			return EXIT_NO;
		}
		cli_error("cannot read '%s': %s", path, strerror(-rc));
		return EXIT_UNREACHABLE;
	}
	static struct trace_span sp;
	memset(&sp, 0, sizeof sp);
	struct trace_attrs res = {0};
	if (spool_read(text.data ? text.data : "", text.len, &c, &sp, &res) < 0) {
		cli_error("'%s' is not an open span of dsys-trace", path);
		buf_free(&text);
		trace_span_free(&sp);
		trace_attrs_free(&res);
		trace_attrs_free(&o.attrs);
		return EXIT_UNREACHABLE;
	}
	buf_free(&text);
	for (int i = 0; i < o.attrs.n; i++) {
		const struct trace_attr *a = &o.attrs.a[i];
		switch (a->type) {
		case TRACE_ATTR_STRING: trace_attr_set_str(&sp.attrs, a->key, a->v.s); break;
		case TRACE_ATTR_INT: trace_attr_set_int(&sp.attrs, a->key, a->v.i); break;
		case TRACE_ATTR_BOOL: trace_attr_set_bool(&sp.attrs, a->key, a->v.b); break;
		case TRACE_ATTR_DOUBLE: trace_attr_set_double(&sp.attrs, a->key, a->v.d); break;
		}
	}
	trace_attrs_free(&o.attrs);
	trace_span_end(&sp, (enum trace_status)o.status, o.message);
	bool delivered;
	rc = export_span(&o, &sp, &res, &delivered);
	trace_span_free(&sp);
	trace_attrs_free(&res);
	/* a span no exporter took stays open, so end can be run again; one
	 * that some exporter took is closed, lest it be sent there twice */
	if (delivered && unlink(path) < 0 && errno != ENOENT) {
		cli_error("cannot remove '%s': %s", path, strerror(errno));
		return EXIT_UNREACHABLE;
	}
	return rc < 0 ? EXIT_UNREACHABLE : 0;
}

int main(int argc, char **argv)
{
	sigaction(SIGPIPE, NULL, &sigpipe_at_start);
	cli_init("dsys-trace");
	static const char *const names[] = {"exec", "start", "event", "end", "log", "collect", "show", NULL};
	static int (*const mains[])(int, char **) = {cmd_exec, cmd_start, cmd_event, cmd_end, cmd_log,
	                                             cmd_collect, cmd_show};
	int k = cli_subcommand(names, argc, argv);
	if (k >= 0)
		return mains[k](argc - 1, argv + 1);
	return cli_no_subcommand(&top_spec, argc, argv, NULL, NULL);
}
