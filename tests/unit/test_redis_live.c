/*
 * Live tests of lib/store/redis.c against real redis-server processes (Debian's
 * redis-server 7): one standalone server and a 3-master Redis Cluster, each
 * on free loopback ports in a temporary folder, started here and stopped by
 * PID.  Checked: replies and error replies, pipelining (a burst is read by
 * the server in a few reads, not one per command), max_pending, the command
 * timeout, AUTH and SELECT, reconnection after the server is killed and
 * restarted on the same port and after CLIENT KILL, cancel on free (also
 * from inside a callback); in the cluster: routing by slot and hash tag
 * from one seed, SCAN on every master, MOVED after a slot is resharded, ASK
 * while a slot migrates, the redirect bound on TRYAGAIN, and a failover (a
 * replica joins, its master is killed, the client finds the new master).
 * About 15 s, most of it the cluster's failure detection (node timeout 3 s).
 *
 * Without redis-server on PATH the test says so and fails (make deps
 * installs it): a skipped live test must not pass as a green one.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "store/redis.h"
#include "tap.h"

extern char **environ;

static uv_loop_t loop;
static char tmp[256];

struct server {
	int port;
	pid_t pid;
	int cluster;
	char dir[300];
};

/* ------------------------------------------------------------ processes */

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static int port_free(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int r = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
	if (fd >= 0)
		close(fd);
	return r;
}

/* A free loopback port P whose cluster bus port P+10000 is free too.  Both
 * are drawn below the kernel's ephemeral range (32768 and up), so no
 * outgoing connection takes them meanwhile; binding port 0 would hand out
 * ports above 55535, whose bus port does not exist. */
static int free_port(void)
{
	static unsigned seed;
	if (!seed)
		seed = (unsigned)getpid() ^ (unsigned)time(NULL);
	for (int i = 0; i < 1000; i++) {
		int p = 15000 + (int)(rand_r(&seed) % 7000);
		if (port_free(p) && port_free(p + 10000))
			return p;
	}
	return -1;
}

/* Every server we started and have not stopped, so that a test killed by
 * a timeout (or its own alarm) takes its servers with it. */
static volatile pid_t children[16];

static void children_add(pid_t pid)
{
	for (int i = 0; i < 16; i++)
		if (!children[i]) {
			children[i] = pid;
			return;
		}
}

static void children_del(pid_t pid)
{
	for (int i = 0; i < 16; i++)
		if (children[i] == pid)
			children[i] = 0;
}

static void children_kill(int sig)
{
	for (int i = 0; i < 16; i++)
		if (children[i] > 0)
			kill(children[i], SIGKILL);
	static const char msg[] = "test_redis_live: stopped by a signal, servers killed\n";
	if (write(2, msg, sizeof msg - 1) < 0)
		_exit(1);
	_exit(1);
}

static pid_t spawn(char *const argv[], const char *log)
{
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0644);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	pid_t pid;
	int r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	return r == 0 ? pid : -1;
}

static redisReply *sync_cmd(int port, const char *fmt, ...)
{
	struct timeval tv = { 1, 0 };
	redisContext *sc = redisConnectWithTimeout("127.0.0.1", port, tv);
	if (!sc || sc->err) {
		if (sc)
			redisFree(sc);
		return NULL;
	}
	redisSetTimeout(sc, (struct timeval){ 5, 0 });
	va_list ap;
	va_start(ap, fmt);
	redisReply *r = redisvCommand(sc, fmt, ap);
	va_end(ap);
	redisFree(sc);
	return r;
}

/* The reply's text (status, string or error) or "" . */
static const char *sync_text(int port, char *out, size_t size, const char *fmt, ...)
{
	struct timeval tv = { 1, 0 };
	out[0] = '\0';
	redisContext *sc = redisConnectWithTimeout("127.0.0.1", port, tv);
	if (!sc || sc->err) {
		if (sc)
			redisFree(sc);
		return out;
	}
	va_list ap;
	va_start(ap, fmt);
	redisReply *r = redisvCommand(sc, fmt, ap);
	va_end(ap);
	if (r && r->str)
		snprintf(out, size, "%s", r->str);
	else if (r && r->type == REDIS_REPLY_INTEGER)
		snprintf(out, size, "%lld", r->integer);
	freeReplyObject(r);
	redisFree(sc);
	return out;
}

static int wait_ping(int port)
{
	for (int i = 0; i < 500; i++) {
		redisReply *r = sync_cmd(port, "PING");
		int up = r && r->type == REDIS_REPLY_STATUS;
		freeReplyObject(r);
		if (up)
			return 0;
		sleep_ms(10);
	}
	return -1;
}

static int server_start(struct server *s, int port, int cluster, const char *pass)
{
	s->port = port ? port : free_port();
	s->cluster = cluster;
	snprintf(s->dir, sizeof s->dir, "%s/%d", tmp, s->port);
	mkdir(s->dir, 0755);
	char portarg[16], log[400], conf[400];
	snprintf(portarg, sizeof portarg, "%d", s->port);
	snprintf(log, sizeof log, "%s/log", s->dir);
	snprintf(conf, sizeof conf, "%s/nodes.conf", s->dir);
	char *argv[32] = { "redis-server", "--port", portarg, "--bind", "127.0.0.1",
	                   "--save", "", "--appendonly", "no", "--daemonize", "no",
	                   "--dir", s->dir };
	int n = 13;
	if (cluster) {
		argv[n++] = "--cluster-enabled";
		argv[n++] = "yes";
		argv[n++] = "--cluster-config-file";
		argv[n++] = conf;
		argv[n++] = "--cluster-node-timeout";
		argv[n++] = "3000";
	}
	if (pass) {
		argv[n++] = "--requirepass";
		argv[n++] = (char *)pass;
	}
	argv[n] = NULL;
	s->pid = spawn(argv, log);
	if (s->pid < 0)
		return -1;
	children_add(s->pid);
	return pass ? 0 : wait_ping(s->port);
}

static void server_stop(struct server *s, int sig)
{
	if (s->pid > 0) {
		kill(s->pid, sig);
		waitpid(s->pid, NULL, 0);
		children_del(s->pid);
		s->pid = 0;
	}
}

/* ------------------------------------------------------------ async helpers */

struct res {
	int done;
	int err;
	int type;
	long long integer;
	char str[128];
};

static void res_cb(void *ud, const struct redisReply *r, int err)
{
	struct res *x = ud;
	x->done++;
	x->err = err;
	x->type = r ? r->type : -1;
	x->integer = r && r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
	x->str[0] = '\0';
	if (r && r->str)
		snprintf(x->str, sizeof x->str, "%s", r->str);
}

static void tick_cb(uv_timer_t *t) { (void)t; }

/* Run the loop until *counter reaches target or ms pass. */
static int wait_for(const int *counter, int target, unsigned ms)
{
	uv_timer_t tick;
	uv_timer_init(&loop, &tick);
	uv_timer_start(&tick, tick_cb, 10, 10);
	uv_update_time(&loop);
	uint64_t end = uv_now(&loop) + ms;
	while (*counter < target && uv_now(&loop) < end)
		uv_run(&loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&tick, NULL);
	uv_run(&loop, UV_RUN_NOWAIT);
	return *counter >= target ? 0 : -1;
}

static void pause_loop(unsigned ms)
{
	int never = 0;
	wait_for(&never, 1, ms);
}

/* Send a command of NULL-terminated string arguments; key routes it. */
static int cmd(struct redis_client *c, const char *key, struct res *x, ...)
{
	const char *argv[16];
	size_t len[16];
	int n = 0;
	va_list ap;
	va_start(ap, x);
	for (const char *a; n < 16 && (a = va_arg(ap, const char *));) {
		argv[n] = a;
		len[n++] = strlen(a);
	}
	va_end(ap);
	return redis_command_argv(c, key, key ? strlen(key) : 0, n, argv, len, res_cb, x);
}

/* One command, waited for. */
static struct res run1(struct redis_client *c, const char *key, const char *a0, const char *a1,
                       const char *a2, const char *a3)
{
	struct res x = { 0 };
	if (cmd(c, key, &x, a0, a1, a2, a3, (char *)NULL) < 0) {
		x.err = -999;
		return x;
	}
	wait_for(&x.done, 1, 5000);
	return x;
}

static struct redis_client *client(const char *url, const struct redis_options *o)
{
	struct store_url u;
	char err[256];
	if (store_url_parse(url, &u, err, sizeof err) < 0) {
		diag("bad url %s: %s", url, err);
		return NULL;
	}
	struct redis_client *c = NULL;
	if (redis_client_new(&loop, &u, o, &c) < 0)
		return NULL;
	return c;
}

static void client_free(struct redis_client *c)
{
	redis_client_free(c);
	uv_run(&loop, UV_RUN_NOWAIT);
}

static long long info_field(int port, const char *field)
{
	redisReply *r = sync_cmd(port, "INFO stats");
	long long v = -1;
	if (r && r->str) {
		const char *p = strstr(r->str, field);
		if (p)
			v = atoll(p + strlen(field) + 1);
	}
	freeReplyObject(r);
	return v;
}

/* ------------------------------------------------------------ standalone */

struct burst {
	struct redis_client *c;
	int n, done, in_order, last;
};

static void burst_cb(void *ud, const struct redisReply *r, int err)
{
	struct burst *b = ud;
	b->done++;
	if (err || !r || r->type != REDIS_REPLY_INTEGER || r->integer != b->last + 1)
		b->in_order = 0;
	else
		b->last = (int)r->integer;
}

static void burst_start_cb(void *ud, const struct redisReply *r, int err)
{
	struct burst *b = ud;
	const char *argv[] = { "INCR", "burst" };
	size_t len[] = { 4, 5 };
	for (int i = 0; i < b->n; i++)
		redis_command_argv(b->c, "burst", 5, 2, argv, len, burst_cb, b);
}

struct free_in_cb {
	struct redis_client *c;
	struct res first, behind[2];
	int freed;
};

/* Sent after first and before behind[]: frees the client when its answer
 * comes, while behind[] are still in flight. */
static void free_in_cb(void *ud, const struct redisReply *r, int err)
{
	struct free_in_cb *f = ud;
	f->freed = 1;
	redis_client_free(f->c);
}

static void test_standalone(void)
{
	struct server s = { 0 };
	if (!ok(server_start(&s, 0, 0, NULL) == 0, "a redis-server starts on a free port")) {
		server_stop(&s, SIGKILL);
		return;
	}
	char url[128];
	snprintf(url, sizeof url, "redis://127.0.0.1:%d", s.port);
	struct redis_options o;
	redis_options_init(&o);
	o.command_timeout_ms = 500;
	o.reconnect_min_ms = 20;
	o.reconnect_max_ms = 100;
	struct redis_client *c = client(url, &o);
	ok(c != NULL, "a client is made for %s", url);
	if (!c) {
		server_stop(&s, SIGKILL);
		return;
	}

	struct res rd = { 0 };
	unsigned one[2] = { 9, 9 };
	ok(redis_client_ready(c, res_cb, &rd) == 0 && rd.done == 0 && wait_for(&rd.done, 1, 5000) == 0 &&
	   rd.err == 0 && redis_client_masters(c, one, 2) == 1 && one[0] == 0,
	   "redis:// is ready from the loop, with one master, id 0");
	struct res x = run1(c, "k", "SET", "k", "v", NULL);
	ok(x.err == 0 && x.type == REDIS_REPLY_STATUS && strcmp(x.str, "OK") == 0,
	   "SET right after making the client succeeds (it waits in the connection attempt)");
	x = run1(c, "k", "GET", "k", NULL, NULL);
	is_str(x.str, "v", "GET reads it back");
	x = run1(c, "n", "INCRBY", "n", "41", NULL);
	is_int(x.integer, 41, "INCRBY answers the new value");
	x = run1(c, "k", "INCR", "k", NULL, NULL);
	ok(x.err == 0 && x.type == REDIS_REPLY_ERROR, "an error reply comes with err 0 and type ERROR: %s",
	   x.str);
	const char *bin[] = { "SET", "b\0in", "x\r\ny" };
	size_t binlen[] = { 3, 4, 4 };
	struct res y = { 0 };
	redis_command_argv(c, bin[1], 4, 3, bin, binlen, res_cb, &y);
	wait_for(&y.done, 1, 5000);
	redisReply *sr = sync_cmd(s.port, "GET %b", "b\0in", (size_t)4);
	ok(y.err == 0 && sr && sr->len == 4 && memcmp(sr->str, "x\r\ny", 4) == 0,
	   "keys and values are binary-safe");
	freeReplyObject(sr);

	/* Pipelining: 200 INCRs issued in one callback reach the server in a
	 * few reads (one write of ours), and come back in order. */
	long long reads0 = info_field(s.port, "total_reads_processed");
	struct burst b = { .c = c, .n = 200, .in_order = 1 };
	struct res start = { 0 };
	const char *pa[] = { "PING" };
	size_t pl[] = { 4 };
	redis_command_argv(c, NULL, 0, 1, pa, pl, burst_start_cb, &b);
	wait_for(&b.done, b.n, 5000);
	long long reads1 = info_field(s.port, "total_reads_processed");
	(void)start;
	ok(b.done == 200 && b.in_order && b.last == 200, "200 pipelined INCRs answer 1..200 in order");
	diag("server reads for the burst of 200 (plus 2 INFO connections): %lld", reads1 - reads0);
	ok(reads0 >= 0 && reads1 - reads0 < 50, "the burst reaches the server in a few reads, not 200");

	/* max_pending */
	struct redis_options small = o;
	small.max_pending = 3;
	struct redis_client *c2 = client(url, &small);
	struct res r6[6] = { { 0 } };
	int done6 = 0;
	for (int i = 0; i < 6; i++)
		cmd(c2, "p", &r6[i], "INCR", "p", (char *)NULL);
	for (int i = 0; i < 6; i++)
		done6 += r6[i].done;
	is_int(done6, 0, "no callback runs inside redis_command_argv, not even for -ENOBUFS");
	for (int w = 0; w < 500 && done6 < 6; w++) {
		pause_loop(10);
		done6 = 0;
		for (int i = 0; i < 6; i++)
			done6 += r6[i].done;
	}
	int okc = 0, nobufs = 0;
	for (int i = 0; i < 6; i++) {
		okc += r6[i].err == 0 && r6[i].done == 1;
		nobufs += r6[i].err == -ENOBUFS && r6[i].done == 1;
	}
	ok(okc == 3 && nobufs == 3, "with max_pending 3, 3 of 6 commands run and 3 fail with -ENOBUFS");
	client_free(c2);

	/* Timeout: BLPOP on an empty list is not answered in time. */
	struct res bl = { 0 }, after = { 0 };
	cmd(c, "empty", &bl, "BLPOP", "empty", "10", (char *)NULL);
	cmd(c, "n", &after, "INCR", "n", (char *)NULL);
	wait_for(&after.done, 1, 5000);
	is_int(bl.err, -ETIMEDOUT, "a command not answered within the timeout gets -ETIMEDOUT");
	ok(after.err == -ETIMEDOUT || after.err == -ECONNRESET,
	   "a command behind it on the dropped connection fails too (%d)", after.err);
	x = run1(c, "n", "INCR", "n", NULL, NULL);
	ok(x.err == 0 && x.integer == 42 + (after.err == 0),
	   "the connection is re-established and the next command works (n=%lld)", x.integer);
	struct redis_stats st;
	redis_client_stats(c, &st);
	ok(st.timeouts >= 1 && st.connects >= 2 && st.disconnects >= 1,
	   "stats count the timeout and the reconnect");

	/* Reconnection: kill the server, commands fail fast, restart it on the
	 * same port, commands work again. */
	server_stop(&s, SIGKILL);
	int errors = 0, crashed_or_hung = 0;
	for (int i = 0; i < 5; i++) {
		x = run1(c, "n", "INCR", "n", NULL, NULL);
		if (x.done != 1)
			crashed_or_hung++;
		else if (x.err == -ENOTCONN || x.err == -ECONNRESET || x.err == -ECONNREFUSED)
			errors++;
		pause_loop(30);
	}
	is_int(crashed_or_hung, 0, "with the server gone every command still gets its callback");
	is_int(errors, 5, "and each fails with a connection error");
	ok(server_start(&s, s.port, 0, NULL) == 0, "redis-server restarts on the same port %d", s.port);
	int back = 0;
	for (int i = 0; i < 300 && !back; i++) {
		x = run1(c, "n", "SET", "n", "100", NULL);
		back = x.err == 0;
		if (!back)
			pause_loop(20);
	}
	ok(back, "after the restart the client reconnects by itself");
	x = run1(c, "n", "INCR", "n", NULL, NULL);
	is_int(x.integer, 101, "and commands work again");

	/* The server closes a connection that has been up a while: the next
	 * loop turn connects again, no backoff. */
	pause_loop(150);
	char kb[64];
	sync_text(s.port, kb, sizeof kb, "CLIENT KILL TYPE normal");
	pause_loop(30);
	x = run1(c, "n", "INCR", "n", NULL, NULL);
	ok(x.err == 0 && x.integer == 102,
	   "after CLIENT KILL the connection is re-established at once (%d, %lld)", x.err, x.integer);

	/* Cancel on free. */
	struct res pend = { 0 };
	cmd(c, "empty", &pend, "BLPOP", "empty", "10", (char *)NULL);
	pause_loop(20);
	redis_client_free(c);
	ok(pend.done == 1 && pend.err == -ECANCELED, "free cancels a pending command inside the call");
	uv_run(&loop, UV_RUN_NOWAIT);

	/* Free from inside a reply callback, with commands behind it. */
	struct free_in_cb f = { .c = client(url, &o) };
	const char *pa1[] = { "PING" };
	size_t pl1[] = { 4 };
	cmd(f.c, NULL, &f.first, "PING", (char *)NULL);
	redis_command_argv(f.c, NULL, 0, 1, pa1, pl1, free_in_cb, &f);
	cmd(f.c, "empty", &f.behind[0], "BLPOP", "empty", "10", (char *)NULL);
	cmd(f.c, "n", &f.behind[1], "INCR", "n", (char *)NULL);
	wait_for(&f.behind[1].done, 1, 5000);
	ok(f.freed && f.first.err == 0 && f.behind[0].err == -ECANCELED && f.behind[1].err == -ECANCELED &&
	   f.behind[0].done == 1 && f.behind[1].done == 1,
	   "free inside a reply callback cancels the commands behind it, once each");
	uv_run(&loop, UV_RUN_NOWAIT);

	/* AUTH and SELECT from the URL. */
	char buf[128];
	sync_text(s.port, buf, sizeof buf, "CONFIG SET requirepass s3cret");
	snprintf(url, sizeof url, "redis://:s3cret@127.0.0.1:%d/3", s.port);
	c = client(url, &o);
	x = run1(c, "db3", "SET", "db3", "yes", NULL);
	ok(x.err == 0 && x.type == REDIS_REPLY_STATUS, "with the password in the URL commands work");
	redisReply *a = sync_cmd(s.port, "AUTH s3cret");
	freeReplyObject(a);
	struct timeval tv = { 1, 0 };
	redisContext *sc = redisConnectWithTimeout("127.0.0.1", s.port, tv);
	freeReplyObject(redisCommand(sc, "AUTH s3cret"));
	freeReplyObject(redisCommand(sc, "SELECT 3"));
	redisReply *g = redisCommand(sc, "GET db3");
	ok(g && g->str && strcmp(g->str, "yes") == 0, "and /3 selected database 3");
	freeReplyObject(g);
	redisFree(sc);
	client_free(c);
	snprintf(url, sizeof url, "redis://:wrong@127.0.0.1:%d", s.port);
	c = client(url, &o);
	x = run1(c, "k", "GET", "k", NULL, NULL);
	is_int(x.err, -EACCES, "a wrong password fails commands with -EACCES");
	ok(strstr(redis_client_last_error(c), "WRONGPASS") != NULL ||
	   strstr(redis_client_last_error(c), "invalid") != NULL,
	   "and last_error says why: %s", redis_client_last_error(c));
	client_free(c);
	server_stop(&s, SIGTERM);
}

/* ------------------------------------------------------------ cluster */

static struct server cl[4];   /* 3 masters, and a replica added later */

static int cluster_ok(int port)
{
	char buf[2048];
	sync_text(port, buf, sizeof buf, "CLUSTER INFO");
	return strstr(buf, "cluster_state:ok") != NULL;
}

static int cluster_start(void)
{
	for (int i = 0; i < 3; i++)
		if (server_start(&cl[i], 0, 1, NULL) < 0) {
			diag("cluster node %d did not start", i);
			return -1;
		}
	char p[3][32], log[300];
	for (int i = 0; i < 3; i++)
		snprintf(p[i], sizeof p[i], "127.0.0.1:%d", cl[i].port);
	snprintf(log, sizeof log, "%s/create.log", tmp);
	char *argv[] = { "redis-cli", "--cluster", "create", p[0], p[1], p[2],
	                 "--cluster-replicas", "0", "--cluster-yes", NULL };
	pid_t pid = spawn(argv, log);
	int status = -1;
	if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status)) {
		diag("redis-cli --cluster create failed, see %s", log);
		return -1;
	}
	for (int t = 0; t < 1000; t++) {
		if (cluster_ok(cl[0].port) && cluster_ok(cl[1].port) && cluster_ok(cl[2].port))
			return 0;
		sleep_ms(10);
	}
	diag("the cluster did not reach cluster_state:ok");
	return -1;
}

static int owner_of(unsigned slot)
{
	redisReply *r = NULL;
	for (int i = 0; i < 4 && !(r && r->type == REDIS_REPLY_ARRAY); i++) {
		freeReplyObject(r);
		r = cl[i].pid > 0 ? sync_cmd(cl[i].port, "CLUSTER SLOTS") : NULL;
	}
	int port = -1;
	for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
		redisReply *e = r->element[i];
		if ((long long)slot >= e->element[0]->integer && (long long)slot <= e->element[1]->integer)
			port = (int)e->element[2]->element[1]->integer;
	}
	freeReplyObject(r);
	return port;
}

static struct server *by_port(int port)
{
	for (int i = 0; i < 3; i++)
		if (cl[i].port == port)
			return &cl[i];
	return NULL;
}

/* A key of the form prefix:N that hashes to slot. */
static void key_in_slot(unsigned slot, const char *prefix, char *out, size_t size)
{
	for (int i = 0;; i++) {
		int n = snprintf(out, size, "%s:%d", prefix, i);
		if (redis_key_slot(out, (size_t)n) == slot)
			return;
	}
}

/* The SETSLOT dance, first half: slot migrating from -> importing to. */
static void slot_begin_move(unsigned slot, int from, int to)
{
	char from_id[64], to_id[64], buf[128];
	sync_text(from, from_id, sizeof from_id, "CLUSTER MYID");
	sync_text(to, to_id, sizeof to_id, "CLUSTER MYID");
	sync_text(to, buf, sizeof buf, "CLUSTER SETSLOT %u IMPORTING %s", slot, from_id);
	sync_text(from, buf, sizeof buf, "CLUSTER SETSLOT %u MIGRATING %s", slot, to_id);
}

/* Second half: move the keys, then give the slot to `to` everywhere. */
static void slot_end_move(unsigned slot, int from, int to)
{
	char to_id[64], buf[128];
	sync_text(to, to_id, sizeof to_id, "CLUSTER MYID");
	for (;;) {
		redisReply *r = sync_cmd(from, "CLUSTER GETKEYSINSLOT %u 100", slot);
		size_t n = r && r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
		for (size_t i = 0; i < n; i++)
			sync_text(from, buf, sizeof buf, "MIGRATE 127.0.0.1 %d %b 0 5000", to,
			          r->element[i]->str, r->element[i]->len);
		freeReplyObject(r);
		if (n == 0)
			break;
	}
	for (int i = 0; i < 3; i++)
		sync_text(cl[i].port, buf, sizeof buf, "CLUSTER SETSLOT %u NODE %s", slot, to_id);
}

struct scan {
	int done, keys;
	char cursor[32];
};

static void scan_cb(void *ud, const struct redisReply *r, int err)
{
	struct scan *sc = ud;
	sc->done++;
	snprintf(sc->cursor, sizeof sc->cursor, "0");
	if (err || r->type != REDIS_REPLY_ARRAY || r->elements != 2)
		return;
	snprintf(sc->cursor, sizeof sc->cursor, "%s", r->element[0]->str);
	sc->keys += (int)r->element[1]->elements;
}

static void test_cluster(void)
{
	if (!ok(cluster_start() == 0, "a 3-master Redis Cluster starts and reports cluster_state:ok")) {
		for (int i = 0; i < 3; i++)
			server_stop(&cl[i], SIGKILL);
		return;
	}
	char buf[128];
	is_str(sync_text(cl[0].port, buf, sizeof buf, "CLUSTER KEYSLOT user1000"), "3443",
	       "the server agrees: CLUSTER KEYSLOT user1000 is 3443");
	ok(atoi(sync_text(cl[0].port, buf, sizeof buf, "CLUSTER KEYSLOT {user1000}.following")) ==
	   (int)redis_key_slot("{user1000}.following", 20), "and on the slot of a tagged key");

	char url[128];
	snprintf(url, sizeof url, "redis-cluster://127.0.0.1:%d", cl[1].port);
	struct redis_options o;
	redis_options_init(&o);
	o.command_timeout_ms = 2000;
	struct redis_client *c = client(url, &o);
	ok(c != NULL, "a cluster client is made from one seed");
	if (!c)
		goto out;

	/* 300 keys over all masters, issued at once: every one lands. */
	enum { NK = 300 };
	static struct res r[NK];
	static char keys[NK][32];
	int done = 0;
	for (int i = 0; i < NK; i++) {
		snprintf(keys[i], sizeof keys[i], "ck:%d", i);
		cmd(c, keys[i], &r[i], "INCRBY", keys[i], "7", (char *)NULL);
	}
	for (int w = 0; w < 500 && done < NK; w++) {
		pause_loop(10);
		done = 0;
		for (int i = 0; i < NK; i++)
			done += r[i].done;
	}
	int good = 0, right_node = 0;
	for (int i = 0; i < NK; i++)
		good += r[i].err == 0 && r[i].integer == 7;
	is_int(good, NK, "300 INCRBYs on keys over all slots all succeed");
	for (int i = 0, shown = 0; i < NK && shown < 3; i++)
		if (r[i].err || r[i].integer != 7) {
			diag("%s: err %d, reply type %d %lld %s", keys[i], r[i].err, r[i].type, r[i].integer,
			     r[i].str);
			shown++;
		}
	for (int i = 0; i < NK; i += 30) {
		int port = owner_of(redis_key_slot(keys[i], strlen(keys[i])));
		right_node += atoi(sync_text(port, buf, sizeof buf, "GET %s", keys[i])) == 7;
	}
	is_int(right_node, 10, "each key lives on the master that owns its slot");
	struct redis_stats st;
	redis_client_stats(c, &st);
	ok(st.map_refreshes >= 1 && st.nodes_up == 3, "the slot map was fetched and all 3 masters are used");

	/* Every master, for SCAN: the 300 keys are all found, once each. */
	struct res ready = { 0 };
	ok(redis_client_ready(c, res_cb, &ready) == 0 && wait_for(&ready.done, 1, 5000) == 0 &&
	   ready.err == 0, "redis_client_ready answers once the map is known");
	unsigned ids[8];
	int nm = redis_client_masters(c, ids, 8);
	is_int(nm, 3, "redis_client_masters lists the 3 masters");
	int found = 0, scans = 0;
	for (int i = 0; i < nm && i < 8; i++) {
		char cursor[32] = "0";
		do {
			struct scan sc = { 0 };
			const char *av[] = { "SCAN", cursor, "MATCH", "ck:*", "COUNT", "100" };
			size_t al[6];
			for (int j = 0; j < 6; j++)
				al[j] = strlen(av[j]);
			redis_command_argv_node(c, ids[i], 6, av, al, scan_cb, &sc);
			wait_for(&sc.done, 1, 5000);
			found += sc.keys;
			snprintf(cursor, sizeof cursor, "%s", sc.cursor);
			scans++;
		} while (strcmp(cursor, "0") != 0 && scans < 1000);
	}
	is_int(found, NK, "SCAN on each master with redis_command_argv_node finds all %d keys", NK);
	char addr[64];
	ok(redis_client_node_addr(c, ids[0], addr, sizeof addr) == 0 && strncmp(addr, "127.0.0.1:", 10) == 0,
	   "node ids name their address: %s", addr);

	struct res t = { 0 };
	cmd(c, "{user1000}.following", &t, "MSET", "{user1000}.following", "1",
	    "{user1000}.followers", "2", (char *)NULL);
	wait_for(&t.done, 1, 5000);
	ok(t.err == 0 && t.type == REDIS_REPLY_STATUS, "a multi-key command on one hash tag works");

	/* MOVED: reshard the slot of ck:0 to another master; the client's map
	 * is stale until the MOVED answer. */
	unsigned slot = redis_key_slot("ck:0", 4);
	int from = owner_of(slot), to = cl[0].port == from ? cl[1].port : cl[0].port;
	slot_begin_move(slot, from, to);
	slot_end_move(slot, from, to);
	is_int(owner_of(slot), to, "slot %u moved from :%d to :%d", slot, from, to);
	redis_client_stats(c, &st);
	uint64_t redirects0 = st.redirects;
	struct res m = run1(c, "ck:0", "INCRBY", "ck:0", "1", NULL);
	ok(m.err == 0 && m.integer == 8, "INCRBY after the reshard follows MOVED and lands (%lld)", m.integer);
	redis_client_stats(c, &st);
	ok(st.redirects > redirects0, "the redirect was counted");
	is_int(atoi(sync_text(to, buf, sizeof buf, "GET ck:0")), 8, "the new owner has the key");
	pause_loop(200);
	redirects0 = st.redirects;
	m = run1(c, "ck:0", "INCRBY", "ck:0", "1", NULL);
	redis_client_stats(c, &st);
	ok(m.err == 0 && m.integer == 9 && st.redirects == redirects0,
	   "the next command goes straight to the new owner");

	/* ASK: slot migrating from -> to, a key not yet on the source is
	 * created on the target through ASKING. */
	slot = redis_key_slot("ck:1", 4);
	from = owner_of(slot);
	to = cl[0].port == from ? cl[2].port : cl[0].port;
	char fresh[32];
	key_in_slot(slot, "fresh", fresh, sizeof fresh);
	slot_begin_move(slot, from, to);
	m = run1(c, fresh, "INCRBY", fresh, "5", NULL);
	ok(m.err == 0 && m.integer == 5, "a new key in a migrating slot follows ASK (%s, %d)", m.str, m.err);
	struct timeval tv = { 1, 0 };
	redisContext *sc = redisConnectWithTimeout("127.0.0.1", to, tv);
	freeReplyObject(redisCommand(sc, "ASKING"));
	redisReply *g = redisCommand(sc, "GET %s", fresh);
	ok(g && g->str && atoi(g->str) == 5, "the key was made on the importing node");
	freeReplyObject(g);
	redisFree(sc);
	m = run1(c, "ck:1", "INCRBY", "ck:1", "1", NULL);
	ok(m.err == 0 && m.integer == 8, "a key still on the source is served there during the move");

	/* TRYAGAIN: a multi-key command whose keys are split by the migration
	 * is retried, and after max_redirects the error reply is handed over. */
	char tag_a[40], tag_b[40];
	snprintf(tag_a, sizeof tag_a, "{%s}.a", fresh);
	snprintf(tag_b, sizeof tag_b, "{%s}.b", fresh);
	slot_end_move(slot, from, to);   /* finish the first move ... */
	unsigned tslot = redis_key_slot(tag_a, strlen(tag_a));
	int tfrom = owner_of(tslot), tto = cl[1].port == tfrom ? cl[2].port : cl[1].port;
	sync_text(tfrom, buf, sizeof buf, "SET %s 1", tag_a);   /* only .a on the source */
	slot_begin_move(tslot, tfrom, tto);
	redis_client_stats(c, &st);
	uint64_t retries0 = st.retries;
	redirects0 = st.redirects;
	m = run1(c, tag_a, "MGET", tag_a, tag_b, NULL);
	redis_client_stats(c, &st);
	ok(m.err == 0 && m.type == REDIS_REPLY_ERROR && strncmp(m.str, "TRYAGAIN", 8) == 0,
	   "TRYAGAIN past the bound comes back as the error reply: %s", m.str);
	/* The slot of {fresh} was just moved: the first answer may be MOVED. */
	is_int((st.retries - retries0) + (st.redirects - redirects0), o.max_redirects,
	       "after exactly max_redirects resends (%d MOVED/ASK, %d retries)",
	       (int)(st.redirects - redirects0), (int)(st.retries - retries0));
	slot_end_move(tslot, tfrom, tto);
	m = run1(c, tag_a, "MGET", tag_a, tag_b, NULL);
	ok(m.err == 0 && m.type == REDIS_REPLY_ARRAY, "once the move is over, the same MGET works");

	/* Failover: a replica joins the master of ck:2, the master is killed;
	 * its slots fail fast until the replica takes over, the other masters
	 * keep working, and then the client finds the new master by itself. */
	unsigned s0 = redis_key_slot("ck:2", 4);
	int mport = owner_of(s0);
	struct server *victim = by_port(mport);
	char mid[64], info[8192];
	sync_text(mport, mid, sizeof mid, "CLUSTER MYID");
	if (!ok(server_start(&cl[3], 0, 1, NULL) == 0, "a fourth node starts"))
		goto done;
	sync_text(cl[3].port, buf, sizeof buf, "CLUSTER MEET 127.0.0.1 %d", mport);
	int replicating = 0, synced = 0, known = 0;
	for (int t = 0; t < 500 && !replicating; t++) {
		replicating = strcmp(sync_text(cl[3].port, buf, sizeof buf, "CLUSTER REPLICATE %s", mid), "OK") == 0;
		if (!replicating)
			sleep_ms(20);
	}
	for (int t = 0; t < 500 && !synced; t++) {
		synced = strstr(sync_text(cl[3].port, info, sizeof info, "INFO replication"),
		                "master_link_status:up") != NULL;
		if (!synced)
			sleep_ms(20);
	}
	/* Every master must know the replica to vote for it. */
	for (int t = 0; t < 500 && known < 3; t++) {
		known = 0;
		for (int i = 0; i < 3; i++) {
			sync_text(cl[i].port, info, sizeof info, "CLUSTER NODES");
			char *line = strstr(info, "slave ");
			known += line && strstr(line, mid) != NULL;
		}
		if (known < 3)
			sleep_ms(20);
	}
	ok(replicating && synced && known == 3, "it replicates the master of ck:2 (:%d)", mport);
	server_stop(victim, SIGKILL);
	m = run1(c, "ck:2", "INCRBY", "ck:2", "1", NULL);
	ok(m.done == 1 && m.err < 0, "a command for the dead master's slot fails (%d)", m.err);
	char other[32];
	for (int i = 0;; i++) {
		snprintf(other, sizeof other, "ck:%d", i);
		if (owner_of(redis_key_slot(other, strlen(other))) != mport)
			break;
	}
	m = run1(c, other, "INCRBY", other, "1", NULL);
	ok(m.err == 0, "a command for a live master's slot still works");
	int failed_over = 0, tries = 0;
	for (; tries < 600 && !failed_over; tries++) {
		m = run1(c, "ck:2", "INCRBY", "ck:2", "1", NULL);
		failed_over = m.err == 0 && m.type == REDIS_REPLY_INTEGER;
		if (!failed_over)
			pause_loop(25);
	}
	ok(failed_over && m.integer == 8,
	   "after the replica takes over, ck:2 works again with its value (%lld, %d tries)", m.integer, tries);
	is_int(owner_of(s0), cl[3].port, "and the replica is the new master");
done:
	client_free(c);
out:
	for (int i = 0; i < 4; i++)
		server_stop(&cl[i], SIGTERM);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, children_kill);
	signal(SIGINT, children_kill);
	signal(SIGALRM, children_kill);
	alarm(120);   /* a bound on the whole run; it takes ~5 s */
	const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	snprintf(tmp, sizeof tmp, "%s/dsys-redis-live.XXXXXX", base);
	if (!mkdtemp(tmp)) {
		ok(0, "cannot make a temporary folder under %s", base);
		return tap_done();
	}
	if (system("command -v redis-server >/dev/null && command -v redis-cli >/dev/null") != 0) {
		ok(0, "redis-server and redis-cli are installed (make deps)");
		return tap_done();
	}
	uv_loop_init(&loop);
	test_standalone();
	test_cluster();
	uv_run(&loop, UV_RUN_DEFAULT);
	is_int(uv_loop_close(&loop), 0, "every handle is closed at the end");
	char rm[400];
	snprintf(rm, sizeof rm, "rm -rf '%s'", tmp);
	if (getenv("KEEP_TMP"))
		diag("kept %s", tmp);
	else if (system(rm) != 0)
		diag("could not remove %s", tmp);
	return tap_done();
}
