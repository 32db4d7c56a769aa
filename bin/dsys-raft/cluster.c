/*
 * cluster.c -- dsys-raft cluster: a local cluster on free ports, for
 * trying dsys-raft and for tests.
 *
 * It picks a free loopback port per member for the peer traffic (bound to
 * port 0 all at once, so they differ, then released), starts each member
 * as `dsys-raft node` (this same executable) with its data under
 * DIR/nI, and lets each print its own ready line on the shared stdout
 * (one short line each, written whole).  The client ports are picked by
 * the members themselves (port 0) and named in those ready lines.
 *
 * It then waits: SIGTERM or SIGINT is passed to every member still
 * running and it exits when they all have (0 when each drained cleanly).
 * A member that dies meanwhile (a test's kill -9) is reported on stderr
 * and the rest keep running.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "base/parse.h"
#include "cli/cli.h"
#include "dsys-raft.h"

#define MAX_MEMBERS 7

enum { OPT_NODES = 1, OPT_DATA_DIR, OPT_HEARTBEAT, OPT_ELECTION };

static const struct cli_option cluster_options[] = {
	{"nodes", 'n', "N", NULL, "members, 1 to 7 (default 3)", OPT_NODES},
	{"data-dir", 0, "DIR", "DSYS_RAFT_DATA_DIR", "each member's data goes to DIR/nI", OPT_DATA_DIR},
	{"heartbeat-interval", 0, "DURATION", NULL, "passed to each member (default 100ms)", OPT_HEARTBEAT},
	{"election-timeout", 0, "DURATION", NULL, "passed to each member (default 1s)", OPT_ELECTION},
	CLI_END
};

static const struct cli_spec cluster_spec = {
	"dsys-raft cluster",
	"--data-dir DIR [OPTION]...",
	"Run a local Raft cluster on free loopback ports.",
	cluster_options,
	"Each member prints its own ready line; SIGTERM stops them all.\n",
};

struct cluster_opts {
	unsigned nodes;
	const char *dir;
	const char *heartbeat, *election;
};

static int on_cluster_option(void *ctx, int id, const char *arg)
{
	struct cluster_opts *o = ctx;
	uint64_t v;
	switch (id) {
	case OPT_NODES:
		return cli_opt_uint(arg, 1, MAX_MEMBERS, &o->nodes);
	case OPT_DATA_DIR:
		if (!*arg || strlen(arg) > 3000)
			return cli_bad_value(NULL, arg, "want a directory");
		o->dir = arg;
		return 0;
	case OPT_HEARTBEAT:
	case OPT_ELECTION:
		if (parse_duration_ms(arg, &v) < 0 || v == 0)
			return cli_bad_value(NULL, arg, "want a duration such as 100ms or 1s");
		*(id == OPT_HEARTBEAT ? &o->heartbeat : &o->election) = arg;
		return 0;
	}
	return -1;
}

/* n distinct free loopback ports: all bound at once, then released. */
static int free_ports(unsigned n, unsigned ports[])
{
	int fds[MAX_MEMBERS];
	for (unsigned i = 0; i < n; i++) {
		struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		socklen_t sl = sizeof sa;
		fds[i] = socket(AF_INET, SOCK_STREAM, 0);
		if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&sa, sizeof sa) < 0 ||
		    getsockname(fds[i], (struct sockaddr *)&sa, &sl) < 0) {
			int e = errno;
			for (unsigned k = 0; k <= i; k++)
				if (fds[k] >= 0)
					close(fds[k]);
			return -e;
		}
		ports[i] = ntohs(sa.sin_port);
	}
	for (unsigned i = 0; i < n; i++)
		close(fds[i]);
	return 0;
}

int cluster_main(int argc, char **argv)
{
	struct cluster_opts o = {.nodes = 3};
	int first = 0;
	int r = cli_parse(&cluster_spec, argc, argv, on_cluster_option, &o, &first);
	if (r >= 0)
		return r;
	if (first < argc) {
		cli_error("unexpected argument '%s'", argv[first]);
		return EXIT_USAGE;
	}
	if (!o.dir) {
		cli_error("--data-dir is required");
		fprintf(stderr, "Try 'dsys-raft cluster --help' for more information.\n");
		return EXIT_USAGE;
	}
	if (mkdir(o.dir, 0777) < 0 && errno != EEXIST) {
		cli_error("cannot create '%s': %s", o.dir, strerror(errno));
		return EXIT_NO;
	}
	unsigned ports[MAX_MEMBERS];
	if ((r = free_ports(o.nodes, ports)) < 0) {
		cli_error("cannot find free ports: %s", strerror(-r));
		return EXIT_NO;
	}
	char initial[1024] = "";
	for (unsigned i = 0; i < o.nodes; i++)
		snprintf(initial + strlen(initial), sizeof initial - strlen(initial), "%sn%u=http://127.0.0.1:%u",
		         i ? "," : "", i + 1, ports[i]);
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, &old);
	pid_t pids[MAX_MEMBERS];
	unsigned running = 0;
	fflush(stdout);
	for (unsigned i = 0; i < o.nodes; i++) {
		char name[16], dir[3100], peer[64];
		snprintf(name, sizeof name, "n%u", i + 1);
		snprintf(dir, sizeof dir, "%s/%s", o.dir, name);
		snprintf(peer, sizeof peer, "127.0.0.1:%u", ports[i]);
		const char *args[20];
		int k = 0;
		args[k++] = "dsys-raft";
		args[k++] = "node";
		args[k++] = "--name", args[k++] = name;
		args[k++] = "--data-dir", args[k++] = dir;
		args[k++] = "--listen-client", args[k++] = "127.0.0.1:0";
		args[k++] = "--listen-peer", args[k++] = peer;
		args[k++] = "--initial-cluster", args[k++] = initial;
		if (o.heartbeat)
			args[k++] = "--heartbeat-interval", args[k++] = o.heartbeat;
		if (o.election)
			args[k++] = "--election-timeout", args[k++] = o.election;
		args[k] = NULL;
		pid_t pid = fork();
		if (pid < 0) {
			cli_error("cannot start member %s: %s", name, strerror(errno));
			break;
		}
		if (pid == 0) {
			sigprocmask(SIG_SETMASK, &old, NULL);
			execv("/proc/self/exe", (char **)args);
			fprintf(stderr, "dsys-raft: cannot run member %s: %s\n", name, strerror(errno));
			_exit(127);
		}
		pids[i] = pid;
		running++;
	}
	unsigned started = running;
	int status = running == o.nodes ? EXIT_OK : EXIT_NO;
	if (running < o.nodes)
		for (unsigned i = 0; i < started; i++)
			kill(pids[i], SIGTERM);
	bool stopping = running < o.nodes;
	while (running) {
		int sig;
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGTERM || sig == SIGINT) {
			for (unsigned i = 0; i < started; i++)
				if (pids[i] > 0)
					kill(pids[i], SIGTERM);
			stopping = true;
			continue;
		}
		int ws;
		pid_t pid;
		while ((pid = waitpid(-1, &ws, WNOHANG)) > 0) {
			for (unsigned i = 0; i < started; i++)
				if (pids[i] == pid) {
					pids[i] = -1;
					running--;
					bool clean = WIFEXITED(ws) && WEXITSTATUS(ws) == 0;
					if (!clean)
						status = EXIT_NO;
					if (!stopping || !clean)
						fprintf(stderr, "dsys-raft: member n%u (pid %d) %s %d\n", i + 1, (int)pid,
						        WIFEXITED(ws) ? "exited with status" : "was killed by signal",
						        WIFEXITED(ws) ? WEXITSTATUS(ws) : WTERMSIG(ws));
				}
		}
	}
	return status;
}
