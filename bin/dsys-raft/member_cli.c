/*
 * member_cli.c -- dsys-raft member list|add|add-learner|promote|remove:
 * etcdctl's member commands as a thin client of the node's JSON gateway
 * (the /v3/cluster/member/ routes), so a cluster can be grown and shrunk from the
 * shell without etcdctl.
 *
 * The request goes to the first endpoint of --endpoints that answers (a
 * follower hands membership changes to the leader itself); an endpoint
 * that cannot be reached is skipped, as etcd's clients do.  The node's
 * answer -- etcd's gateway JSON, member ids as decimal strings -- is
 * printed as one line on stdout.  An error answer is printed too, and its
 * message goes to stderr; the exit status says which kind (DESIGN.md):
 * 1 for etcd's NotFound or FailedPrecondition (no such member, a learner
 * not caught up), 2 for bad input, 3 when no endpoint answered or none
 * has a leader.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/json.h"
#include "base/parse.h"
#include "io/curl_dl.h"
#include "cli/cli.h"
#include "dsys-raft.h"

enum { OPT_ENDPOINTS = 1, OPT_PEER_URLS, OPT_TIMEOUT };

struct member_opts {
	const char *endpoints;
	const char *peer_urls;
	uint64_t timeout_ms;
};

static const struct cli_option member_options[] = {
	{"endpoints", 'e', "H:P,...", "DSYS_RAFT_ENDPOINTS",
	 "client addresses of members, tried in order (default 127.0.0.1:2379)", OPT_ENDPOINTS},
	{"peer-urls", 0, "URL,...", NULL, "add, add-learner: the new member's peer URLs (http://H:P)", OPT_PEER_URLS},
	{"timeout", 't', "DURATION", NULL, "per endpoint (default 5s)", OPT_TIMEOUT},
	CLI_END
};

static const struct cli_spec member_spec = {
	"dsys-raft member",
	"list|add NAME|add-learner NAME|promote ID|remove ID [OPTION]...",
	"List and change a dsys-raft cluster's members through its JSON gateway, as etcdctl member does.",
	member_options,
	"commands:\n  list               the members (etcd's MemberListResponse)\n"
	"  add NAME           a voter at --peer-urls; start it with --initial-cluster-state existing\n"
	"  add-learner NAME   the same as a learner (no vote until promoted)\n"
	"  promote ID         a caught-up learner becomes a voter\n"
	"  remove ID          the member leaves (a leader hands leadership over first)\n"
	"Prints the node's JSON answer as one line.\n",
};

static int member_option(void *ctx, int id, const char *arg)
{
	struct member_opts *o = ctx;
	switch (id) {
	case OPT_ENDPOINTS:
		o->endpoints = arg;
		return 0;
	case OPT_PEER_URLS:
		o->peer_urls = arg;
		return 0;
	case OPT_TIMEOUT:
		if (parse_duration_ms(arg, &o->timeout_ms) || o->timeout_ms == 0)
			return cli_bad_value("--timeout", arg, "expected a duration such as 5s"), -1;
		return 0;
	}
	return -1;
}

static size_t curl_write(char *p, size_t size, size_t n, void *ud)
{
	buf_append(ud, p, size * n);
	return size * n;
}

/* POST body to path on the first endpoint that answers: its HTTP status,
 * with the answer in out, or -1 when none answered. */
static long member_post(const struct member_opts *o, const char *path, const char *body, struct buf *out)
{
	const char *why;
	if (!curl_dl_load(&why)) {
		cli_error("%s", why);
		return -1;
	}
	CURL *h = curl_easy_init();
	if (!h)
		return -1;
	long status = -1;
	char *eps = strdup(o->endpoints);
	char *save = NULL;
	for (char *ep = eps ? strtok_r(eps, ",", &save) : NULL; ep; ep = strtok_r(NULL, ",", &save)) {
		const char *hp = ep;
		if (strncmp(hp, "http://", 7) == 0)
			hp += 7;
		char url[1024];
		snprintf(url, sizeof url, "http://%s%s", hp, path);
		buf_reset(out);
		curl_easy_setopt(h, CURLOPT_URL, url);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, curl_write);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
		curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)o->timeout_ms);
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)o->timeout_ms);
		CURLcode rc = curl_easy_perform(h);
		if (rc != CURLE_OK) {
			cli_error("cannot reach %s: %s", hp, curl_easy_strerror(rc));
			continue;
		}
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		/* a member without a leader cannot decide: the next may */
		if (status == 503) {
			status = -1;
			cli_error("%s has no leader", hp);
			continue;
		}
		break;
	}
	free(eps);
	curl_easy_cleanup(h);
	return status;
}

/* {"peerURLs":["u1",...],"isLearner":true} from "u1,u2". */
static int add_body(struct buf *b, const char *urls, bool learner)
{
	struct json_writer w;
	json_writer_init(&w, b);
	json_obj_begin(&w);
	json_key(&w, "peerURLs");
	json_arr_begin(&w);
	const char *p = urls;
	int n = 0;
	while (*p) {
		const char *c = strchr(p, ',');
		size_t len = c ? (size_t)(c - p) : strlen(p);
		if (len < 8 || strncmp(p, "http://", 7))
			return -1;
		json_strn(&w, p, len);
		n++;
		p += len + (c ? 1 : 0);
	}
	json_arr_end(&w);
	if (learner)
		json_kv_bool(&w, "isLearner", true);
	json_obj_end(&w);
	return n ? 0 : -1;
}

int member_main(int argc, char **argv)
{
	struct member_opts o = {.endpoints = "127.0.0.1:2379", .timeout_ms = 5000};
	int first;
	int r = cli_parse(&member_spec, argc, argv, member_option, &o, &first);
	if (r >= 0)
		return r;
	const char *cmd = first < argc ? argv[first] : NULL;
	const char *arg = first + 1 < argc ? argv[first + 1] : NULL;
	if (!cmd) {
		cli_error("missing command: list, add, add-learner, promote or remove");
		return EXIT_USAGE;
	}
	struct buf body;
	buf_init(&body);
	const char *path;
	int want_args = 1;
	if (strcmp(cmd, "list") == 0) {
		path = "/v3/cluster/member/list";
		buf_puts(&body, "{}");
		want_args = 0;
	} else if (strcmp(cmd, "add") == 0 || strcmp(cmd, "add-learner") == 0) {
		path = "/v3/cluster/member/add";
		if (!o.peer_urls || add_body(&body, o.peer_urls, cmd[3] == '-')) {
			cli_error("%s needs --peer-urls http://HOST:PORT[,...]", cmd);
			buf_free(&body);
			return EXIT_USAGE;
		}
	} else if (strcmp(cmd, "promote") == 0 || strcmp(cmd, "remove") == 0) {
		uint64_t id;
		/* etcdctl prints member ids in hex; the gateway's JSON in decimal */
		if (!arg || (parse_u64(arg, &id) && (id = strtoull(arg, NULL, 16)) == 0)) {
			cli_error("%s needs a member ID (decimal, or hex as etcdctl prints it)", cmd);
			buf_free(&body);
			return EXIT_USAGE;
		}
		path = cmd[1] == 'r' ? "/v3/cluster/member/promote" : "/v3/cluster/member/remove";
		buf_printf(&body, "{\"ID\":\"%llu\"}", (unsigned long long)id);
	} else {
		cli_error("unknown command '%s': list, add, add-learner, promote or remove", cmd);
		buf_free(&body);
		return EXIT_USAGE;
	}
	if (argc - first - 1 > want_args) {
		cli_error("%s: unexpected argument '%s'", cmd, argv[first + 1 + want_args]);
		buf_free(&body);
		return EXIT_USAGE;
	}
	if (want_args && !arg) {
		cli_error("%s needs %s", cmd, cmd[0] == 'a' ? "a NAME" : "a member ID");
		buf_free(&body);
		return EXIT_USAGE;
	}
	struct buf out;
	buf_init(&out);
	long st = member_post(&o, path, body.data, &out);
	buf_free(&body);
	if (st < 0) {
		cli_error("no endpoint of %s answered with a leader", o.endpoints);
		buf_free(&out);
		return EXIT_UNREACHABLE;
	}
	/* one line: the answer as the node wrote it, without a trailing newline */
	while (out.len && (out.data[out.len - 1] == '\n' || out.data[out.len - 1] == '\r'))
		out.len--;
	fwrite(out.data ? out.data : "", 1, out.len, stdout);
	fputc('\n', stdout);
	int code = EXIT_OK;
	if (st != 200) {
		json_value *j = json_parse(out.data, out.len, NULL);
		const char *msg = j ? json_get_str(j, "message") : NULL;
		cli_error("%s", msg ? msg : "unexpected answer");
		json_free(j);
		code = st == 400 ? EXIT_USAGE : st == 503 || st == 504 ? EXIT_UNREACHABLE : EXIT_NO;
	}
	buf_free(&out);
	int w = cli_stdout_close();
	return w ? w : code;
}
