/*
 * render.c -- dsys-register render SERVICE --template FILE --out FILE
 * --once: write a file from the passing set, safely.
 *
 * The file is rendered to OUT.PID.tmp beside OUT, synced (fdatasync),
 * checked by --check-cmd ({} is the new file's path) and only then renamed
 * over OUT, so OUT is always a whole file that passed the check, even
 * after a crash; a refused file is removed and the last good one stays.
 * The new file keeps the replaced one's permission bits, owner and group
 * (as far as we may chown).
 * A render equal to OUT byte for byte leaves OUT as it is (no write, no
 * sync, no rename) unless --check-cmd asks for the check.  With fewer
 * than --min passing instances, render waits (reading the set every 100
 * ms) up to --timeout, then exits 4 naming what it waited for: it never
 * writes an empty or short upstream because the registry had a bad
 * moment.  --exec runs after a change.
 * Each render is a span when spans have somewhere to go (obs/trace_proc.h),
 * a child of $TRACEPARENT, and --check-cmd and --exec run under it.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/json.h"
#include "cli/child.h"
#include "cli/cli.h"
#include "dsys-register.h"
#include "obs/trace_proc.h"
#include "register/template.h"

static int cmp_id(const void *a, const void *b)
{
	return strcmp(((const struct reg_instance *)a)->id, ((const struct reg_instance *)b)->id);
}

/* sh -c CMD with each {} replaced by path; its exit status, or -1. */
static int run_shell(const char *cmd, const char *path)
{
	struct buf b = BUF_INIT;
	for (const char *p = cmd; *p; p++) {
		if (p[0] == '{' && p[1] == '}') {
			buf_puts(&b, path);
			p++;
		} else {
			buf_putc(&b, *p);
		}
	}
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(STDERR_FILENO, STDOUT_FILENO);   /* stdout carries our JSON only */
		execl("/bin/sh", "sh", "-c", b.data, (char *)NULL);
		_exit(127);
	}
	buf_free(&b);
	if (pid < 0)
		return -1;
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return cli_child_wait_code(st);
}

/* Does the file at path hold exactly text[0..len)?  Its size first (a
 * new set most often changes it), then its bytes, read into the heap the
 * render's own buffers just gave back rather than a fresh 128 kB mapping
 * whose every page would fault once. */
static bool same_file(const char *path, const char *text, size_t len)
{
	/* O_NONBLOCK: --out a FIFO (or a device) must not hang the open; only
	 * a regular file can be the same, and it reads as usual */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return false;
	struct stat st;
	bool same = false;
	char *b;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size == len && (b = malloc(len + 1))) {
		size_t got = 0;
		ssize_t n = 1;
		while (got <= len && n > 0) {   /* to its end: a file that grew since fstat is not the same */
			n = read(fd, b + got, len + 1 - got);
			if (n < 0 && errno == EINTR)
				n = 1;
			else if (n > 0)
				got += (size_t)n;
		}
		same = n == 0 && got == len && !memcmp(b, text, len);
		free(b);
	}
	close(fd);
	return same;
}

/* Write text[0..len) to a new file at path, on disk before it returns (a
 * rename over --out must not publish a file whose bytes a crash could
 * still lose: one fdatasync, as consul-template syncs its temporary
 * file).  When like is not NULL (the regular file the rename replaces),
 * the new file takes its permission bits and, as far as we may, its owner
 * and group: a 0640 root:nginx upstream stays so, where a plain create
 * would leave 0644 and our own ids.  A chown we are not allowed is left
 * (the file is then ours, as it would be had --out not existed).  0 or
 * -errno; a failed file is removed. */
static int write_durable(const char *path, const char *text, size_t len, const struct stat *like)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (fd < 0)
		return -errno;
	int err = 0;
	if (like) {
		/* owner first: a chown clears set-id bits, which the chmod then
		 * puts back */
		if ((like->st_uid != geteuid() || like->st_gid != getegid()) &&
		    fchown(fd, like->st_uid, like->st_gid) < 0 && errno == EPERM)
			(void)!fchown(fd, (uid_t)-1, like->st_gid);   /* a group we are in */
		if (fchmod(fd, like->st_mode & 07777) < 0)
			err = -errno;
	}
	for (size_t done = 0; done < len && !err;) {
		ssize_t n = write(fd, text + done, len - done);
		if (n < 0 && errno != EINTR)
			err = -errno;
		else if (n > 0)
			done += (size_t)n;
	}
	if (!err && fdatasync(fd) < 0)
		err = -errno;
	if (close(fd) < 0 && !err)
		err = -errno;
	if (err)
		unlink(path);
	return err;
}

/* Render v[0..m) (sorted) to --out: write beside it, check, rename, exec,
 * print the rendered line.  0 or an exit code after saying why.
 *
 * A render that comes out byte for byte as --out already is leaves the
 * file alone, as consul-template does: no temporary file, no sync, no
 * rename (its inode and times stay), and no --exec.  With --check-cmd the
 * file still goes through the check, so a refusal is still said. */
static int render_set(struct reg_config *cfg, const char *service, const struct reg_template *t,
                      const struct reg_instance *v, size_t m)
{
	struct buf out = BUF_INIT;
	reg_template_render(t, service, v, m, &out);
	bool changed = !same_file(cfg->out_path, out.data ? out.data : "", out.len);
	bool write = changed || cfg->check_cmd;
	char tmp[4200];
	snprintf(tmp, sizeof tmp, "%s.%ld.tmp", cfg->out_path, (long)getpid());
	if (write) {
		struct stat st;
		bool like = stat(cfg->out_path, &st) == 0 && S_ISREG(st.st_mode);
		int err = write_durable(tmp, out.data ? out.data : "", out.len, like ? &st : NULL);
		if (err < 0) {
			cli_error("cannot write '%s': %s", tmp, strerror(-err));
			buf_free(&out);
			return EXIT_NO;
		}
	}
	size_t bytes = out.len;
	buf_free(&out);
	if (cfg->check_cmd) {
		int st = run_shell(cfg->check_cmd, tmp);
		if (st != 0) {
			unlink(tmp);
			cli_error("--check-cmd refused the new '%s' (status %d); the old file stays",
			          cfg->out_path, st);
			return EXIT_NO;
		}
	}
	if (write && rename(tmp, cfg->out_path) < 0) {
		cli_error("cannot rename '%s' to '%s': %s", tmp, cfg->out_path, strerror(errno));
		unlink(tmp);
		return EXIT_NO;
	}
	int exec_st = 0;
	if (changed && cfg->exec_cmd)
		exec_st = run_shell(cfg->exec_cmd, cfg->out_path);
	struct buf b = BUF_INIT;
	struct json_writer w;
	json_writer_init(&w, &b);
	json_obj_begin(&w);
	json_kv_str(&w, "event", "rendered");
	json_kv_str(&w, "service", service);
	json_kv_str(&w, "out", cfg->out_path);
	json_kv_u64(&w, "instances", m);
	json_kv_u64(&w, "bytes", bytes);
	json_kv_bool(&w, "changed", changed);
	if (changed && cfg->exec_cmd)
		json_kv_i64(&w, "exec_status", exec_st);
	json_obj_end(&w);
	json_emit(&b);
	buf_free(&b);
	if (exec_st != 0) {
		cli_error("--exec exited with status %d", exec_st);
		return EXIT_NO;
	}
	return 0;
}

/* render_set as a span, its exit code the span's process.exit.code. */
static int render_traced(struct reg_config *cfg, const char *service, const struct reg_template *t,
                         const struct reg_instance *v, size_t m)
{
	struct trace_proc *tp = trace_proc_begin("dsys-register", "dsys-register render", TRACE_KIND_INTERNAL);
	if (tp) {
		trace_attr_set_str(&trace_proc_span(tp)->attrs, "register.service", service);
		trace_attr_set_int(&trace_proc_span(tp)->attrs, "register.instances", (int64_t)m);
	}
	int rc = render_set(cfg, service, t, v, m);
	trace_proc_end(tp, rc, NULL);
	return rc;
}

/* ------------------------------------------------------------ following the set */

struct follow {
	struct reg_config *cfg;
	const char *service;
	struct reg_template *t;
	struct reg_instance *v;
	size_t n;
	bool pending;
	uint64_t first;                /* uv_now of the first change not rendered */
	uv_timer_t timer;
	bool timer_init;
};

static void follow_render(uv_timer_t *tm)
{
	struct follow *f = tm->data;
	f->pending = false;
	if (f->n < f->cfg->min) {
		cli_error("%zu passing instances of '%s', fewer than --min %u: '%s' stays as it is",
		          f->n, f->service, f->cfg->min, f->cfg->out_path);
		return;
	}
	if (f->n > 1)   /* qsort's base may not be NULL, even for 0 */
		qsort(f->v, f->n, sizeof *f->v, cmp_id);
	render_traced(f->cfg, f->service, f->t, f->v, f->n);   /* a refusal is said; the last good file stays */
}

/* A change: render after wait_min of quiet, and at most wait_max after the
 * first change (a set that never settles is still rendered). */
static void follow_hook(void *ud, uv_loop_t *loop, const struct reg_instance *v, size_t n)
{
	struct follow *f = ud;
	struct reg_instance *nv = malloc((n ? n : 1) * sizeof *nv);
	if (!nv)
		return;
	memcpy(nv, v, n * sizeof *nv);
	free(f->v);
	f->v = nv;
	f->n = n;
	if (!f->timer_init) {
		uv_timer_init(loop, &f->timer);
		uv_unref((uv_handle_t *)&f->timer);
		f->timer.data = f;
		f->timer_init = true;
	}
	uint64_t now = uv_now(loop);
	if (!f->pending) {
		f->pending = true;
		f->first = now;
	}
	uint64_t left = f->first + f->cfg->wait_max_ms > now ? f->first + f->cfg->wait_max_ms - now : 0;
	uv_timer_start(&f->timer, follow_render, f->cfg->wait_min_ms < left ? f->cfg->wait_min_ms : left, 0);
}

/* The heap a render works in, faulted in at once.
 *
 * A page of fresh memory costs a page fault the first time it is
 * touched, some 10 us in a virtual machine (64 pages touched one by one:
 * 0.7 ms; the same 64 mapped by one MADV_POPULATE_WRITE: 0.06 ms).
 * A render of a thousand instances mallocs some 250 kB of short-lived
 * buffers on file: (the directory's names, the ring's reads, the
 * rendered text, the old file to compare) and near 1 MB on etcd (the
 * gRPC answer and its decoded records), and by default glibc hands the
 * heap's top back to the kernel on each free past 128 kB and maps each
 * buffer of 128 kB or more afresh, so the same pages fault again and
 * again.  So: keep freed heap pages, serve buffers up to 1 MB from the
 * heap, and fault the heap's first bytes in with one call, as many as a
 * thousand instances take (measured, 1000 instances: file: 256 kB, 136 ->
 * 96 faults, -0.15 ms CPU; etcd 960 kB, 266 -> 115 faults, -1.0 ms CPU;
 * more costs more than it saves).  A small registry pays for pages it
 * does not use, about 1 us each.  Where the kernel lacks
 * MADV_POPULATE_WRITE (before 5.14) the pages fault as before. */
static void heap_prefault(size_t bytes)
{
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
	mallopt(M_MMAP_THRESHOLD, 1 << 20);
	char *p = malloc(bytes);
	if (!p)
		return;
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t a = ((uintptr_t)p + page - 1) & ~(page - 1), e = ((uintptr_t)p + bytes) & ~(page - 1);
	if (e > a)
		(void)madvise((void *)a, e - a, MADV_POPULATE_WRITE);
	free(p);
}

int reg_render(struct reg_config *cfg, const char *service)
{
	if (cfg->once)
		heap_prefault(cfg->url.kind == STORE_ETCD ? 960 * 1024 : 256 * 1024);
	if (!cfg->template_path || !cfg->out_path) {
		cli_error("render needs --template FILE and --out FILE");
		return EXIT_USAGE;
	}
	struct buf src = BUF_INIT;
	int r = buf_read_file(&src, cfg->template_path, 1 << 20);
	if (r < 0) {
		cli_error("cannot read template '%s': %s", cfg->template_path, strerror(-r));
		return EXIT_USAGE;
	}
	char err[256];
	struct reg_template *t = reg_template_parse(src.data ? src.data : "", src.len, err, sizeof err);
	buf_free(&src);
	if (!t) {
		cli_error("template '%s':%s", cfg->template_path, err);
		return EXIT_USAGE;
	}
	if (!cfg->once) {
		static struct follow f;
		f.cfg = cfg;
		f.service = service;
		f.t = t;
		reg_watch_set_hook(follow_hook, &f);
		int rc = reg_watch(cfg, service);
		reg_template_free(t);
		free(f.v);
		return rc;
	}
	struct timespec step = {0, 100000000};
	uint64_t start = reg_now_ms();
	struct reg_instance *v = NULL;
	size_t n = 0, m;
	for (;;) {
		int rc = reg_load(cfg, service, &v, &n);
		if (rc) {
			reg_template_free(t);
			return rc;
		}
		m = 0;
		for (size_t i = 0; i < n; i++)   /* a record is 2.6 kB: no copy onto itself */
			if (v[i].status == REG_PASSING && m++ != i)
				v[m - 1] = v[i];
		if (m >= cfg->min)
			break;
		free(v);
		v = NULL;
		if (reg_now_ms() - start >= cfg->timeout_ms) {
			cli_error("waited %llu ms for %u passing instances of '%s' on %s; found %zu",
			          (unsigned long long)cfg->timeout_ms, cfg->min, service, cfg->url_text, m);
			reg_template_free(t);
			return EXIT_TIMEOUT;
		}
		nanosleep(&step, NULL);
	}
	/* etcd answers in key order and reg_file_list reads in id order, so
	 * one service's ids come sorted: the check spares a sort of 2.6 MB */
	size_t s = 1;
	while (s < m && cmp_id(&v[s - 1], &v[s]) <= 0)
		s++;
	if (s < m)
		qsort(v, m, sizeof *v, cmp_id);
	int rc = render_traced(cfg, service, t, v, m);
	reg_template_free(t);
	free(v);
	return rc;
}
