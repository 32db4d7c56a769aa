/*
 * cmdtime — the wall time of a short command, without a shell's fork in it.
 *
 * make bench times whole commands (`dsys-lock run NAME -- true`, `etcdctl
 * lock`, `dsys-register render --once`) that take a few milliseconds.  A
 * bash loop around them times bash too: each iteration forks bash (its
 * page tables copied, then thrown away by exec), which on this VM costs
 * about 1 ms more than a spawn that borrows the parent's memory, and that
 * millisecond is added to both sides of every ratio.  This program starts
 * each command as hyperfine's --shell=none does: posix_spawn (glibc's is
 * a clone with CLONE_VM|CLONE_VFORK), no shell, stdout to /dev/null,
 * stderr left alone, and the clock read just before the spawn and just
 * after waitpid returns.  CMD is looked up in PATH once, before the first
 * run, as bash's hash table does, so no run pays for the lookup's failed
 * execs.
 *
 * Usage: cmdtime [--warm W] N CMD [ARGS...]
 *   runs CMD W times untimed (default 0), then N times timed, one after
 *   another, and prints one JSON line:
 *   {"runs":N,"mean_us":..,"p50_us":..,"p90_us":..,"min_us":..,"max_us":..,
 *    "cpu_us":..}
 *   p50 and p90 are nearest-rank.  cpu_us is the timed runs' mean CPU
 *   time, user and system, from getrusage(RUSAGE_CHILDREN).  In ARGS,
 *   each "{i}" stands for the run's number (0 to N-1; warm-up runs get
 *   w0, w1...), so that each run can write a file of its own.
 * Exit status: 0; 1 when a run of CMD fails (exits non-zero or is killed:
 * said on stderr, nothing printed on stdout); 2 for bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long long now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return (x > y) - (x < y);
}

/* CMD's path: itself when it holds a '/', else the first executable
 * PATH/CMD; NULL when there is none (said). */
static char *find_cmd(const char *cmd)
{
	if (strchr(cmd, '/'))
		return strdup(cmd);
	const char *path = getenv("PATH");
	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (const char *p = path;; p++) {
		const char *e = strchr(p, ':');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		char *f = malloc(len + strlen(cmd) + 3);
		if (!f)
			break;
		sprintf(f, "%.*s/%s", (int)(len ? len : 1), len ? p : ".", cmd);
		struct stat st;
		if (stat(f, &st) == 0 && S_ISREG(st.st_mode) && access(f, X_OK) == 0)
			return f;   /* as a shell takes it: an executable regular file */
		free(f);
		if (!e)
			break;
		p = e;
	}
	fprintf(stderr, "cmdtime: %s: not found in PATH\n", cmd);
	return NULL;
}

/* argv with every "{i}" in tmpl replaced by tag; its strings are kept
 * in buf (room: the templates' lengths, and 24 per "{i}" in them). */
static void fill_args(char **tmpl, char **argv, char *buf, const char *tag)
{
	for (; *tmpl; tmpl++, argv++) {
		const char *s = *tmpl, *m = strstr(s, "{i}");
		if (!m) {
			*argv = *tmpl;
			continue;
		}
		*argv = buf;
		for (; m; s = m + 3, m = strstr(s, "{i}"))
			buf += sprintf(buf, "%.*s%s", (int)(m - s), s, tag);
		buf += sprintf(buf, "%s", s) + 1;
	}
	*argv = NULL;
}

static long long cpu_children_us(void)
{
	struct rusage ru;
	getrusage(RUSAGE_CHILDREN, &ru);
	return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000LL + ru.ru_utime.tv_usec +
	       ru.ru_stime.tv_usec;
}

/* One run of argv; its wall time in ns, or -1 when it failed (said). */
static long long run_once(const char *path, char **argv, const posix_spawn_file_actions_t *fa)
{
	pid_t pid;
	int st;
	long long t0 = now_ns();
	int err = posix_spawn(&pid, path, fa, NULL, argv, environ);
	if (err != 0) {
		fprintf(stderr, "cmdtime: %s: %s\n", argv[0], strerror(err));
		return -1;
	}
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			fprintf(stderr, "cmdtime: waitpid: %s\n", strerror(errno));
			return -1;
		}
	}
	long long t = now_ns() - t0;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return t;
	if (WIFEXITED(st))
		fprintf(stderr, "cmdtime: %s exited %d\n", argv[0], WEXITSTATUS(st));
	else
		fprintf(stderr, "cmdtime: %s killed by signal %d\n", argv[0], WTERMSIG(st));
	return -1;
}

static long parse_count(const char *s)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0 || v > 10000000)
		return -1;
	return v;
}

int main(int argc, char **argv)
{
	long warm = 0, n;
	int i = 1;
	if (i + 1 < argc && strcmp(argv[i], "--warm") == 0) {
		warm = parse_count(argv[i + 1]);
		i += 2;
	}
	if (warm < 0 || i + 1 >= argc || (n = parse_count(argv[i])) <= 0) {
		fprintf(stderr, "usage: cmdtime [--warm W] N CMD [ARGS...]\n");
		return 2;
	}
	char **tmpl = argv + i + 1;
	int nargs = argc - i - 1;
	size_t room = 64;
	for (int k = 0; k < nargs; k++) {
		room += strlen(tmpl[k]) + 1;
		for (const char *m = tmpl[k]; (m = strstr(m, "{i}")); m += 3)
			room += 24;
	}
	char **cmd = malloc((size_t)(nargs + 1) * sizeof *cmd), *buf = malloc(room), tag[24];
	char *path = find_cmd(tmpl[0]);
	if (!path || !cmd || !buf)
		return 1;

	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);

	for (long k = 0; k < warm; k++) {
		snprintf(tag, sizeof tag, "w%ld", k);
		fill_args(tmpl, cmd, buf, tag);
		if (run_once(path, cmd, &fa) < 0)
			return 1;
	}
	long long *t = malloc((size_t)n * sizeof *t);
	if (!t) {
		fprintf(stderr, "cmdtime: out of memory\n");
		return 1;
	}
	long long sum = 0, cpu0 = cpu_children_us();
	for (long k = 0; k < n; k++) {
		snprintf(tag, sizeof tag, "%ld", k);
		fill_args(tmpl, cmd, buf, tag);
		if ((t[k] = run_once(path, cmd, &fa)) < 0)
			return 1;
		sum += t[k];
	}
	long long cpu = cpu_children_us() - cpu0;
	qsort(t, (size_t)n, sizeof *t, cmp_ll);
	printf("{\"runs\":%ld,\"mean_us\":%lld,\"p50_us\":%lld,\"p90_us\":%lld,\"min_us\":%lld,"
	       "\"max_us\":%lld,\"cpu_us\":%lld}\n",
	       n, sum / n / 1000, t[(n + 1) / 2 - 1] / 1000, t[(9 * n + 9) / 10 - 1] / 1000,
	       t[0] / 1000, t[n - 1] / 1000, cpu / n);
	free(t);
	free(path);
	free(cmd);
	free(buf);
	posix_spawn_file_actions_destroy(&fa);
	return 0;
}
