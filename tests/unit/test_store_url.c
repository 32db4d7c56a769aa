/* Unit tests of lib/store/url: every URL form of DESIGN.md, and errors. */
#include <stdlib.h>
#include <string.h>

#include "store/url.h"
#include "tap.h"

static struct store_url u;
static char err[256], canon[512];

static int parse(const char *s)
{
	err[0] = '\0';
	int r = store_url_parse(s, &u, err, sizeof err);
	if (r == 0)
		store_url_format(&u, canon, sizeof canon);
	return r;
}

int main(void)
{
	ok(parse("mem:") == 0 && u.kind == STORE_MEM, "mem: is the in-process store");
	ok(parse("file:/tmp/x") == 0 && u.kind == STORE_FILE && strcmp(u.path, "/tmp/x") == 0,
	   "file:PATH keeps the path");
	ok(parse("file:///var/lib/d") == 0 && strcmp(u.path, "/var/lib/d") == 0, "file:///PATH works too");
	ok(parse("file:") < 0, "file: without a path is refused");
	ok(parse("redis://127.0.0.1:6380/2") == 0 && u.kind == STORE_REDIS && u.hosts[0].port == 6380 &&
	   u.db == 2, "redis://HOST:PORT/DB");
	is_str(canon, "redis://127.0.0.1:6380/2", "and formats back the same");
	ok(parse("redis://localhost") == 0 && u.hosts[0].port == 6379 && u.db == 0,
	   "redis:// defaults to port 6379 and db 0");
	ok(parse("redis://:s3cret@h:1") == 0 && strcmp(u.password, "s3cret") == 0,
	   "a password comes from the userinfo");
	is_str(canon, "redis://h:1/0", "and is never formatted back");
	ok(parse("redis://[::1]:7000") == 0 && strcmp(u.hosts[0].host, "::1") == 0 &&
	   u.hosts[0].port == 7000, "an IPv6 host in brackets");
	is_str(canon, "redis://[::1]:7000/0", "formats with brackets again");
	ok(parse("redis://h:0") < 0, "port 0 is refused");
	ok(parse("redis://h:99999") < 0, "port 99999 is refused");
	ok(parse("redis://h:1/x") < 0, "a database that is not a number is refused");
	ok(parse("redis://a:1,b:2") < 0 && strstr(err, "redis-cluster://"), "several hosts in redis:// point to redis-cluster://");
	ok(parse("redis-cluster://a:7000,b:7001,[::1]:7002") == 0 && u.n_hosts == 3 &&
	   u.hosts[2].port == 7002, "redis-cluster:// takes a list of seeds");
	ok(parse("redis-cluster://a:7000,") < 0, "an empty host in a list is refused");
	ok(parse("redlock://a,b,c") == 0 && u.kind == STORE_REDLOCK && u.n_hosts == 3 &&
	   u.hosts[1].port == 6379, "redlock:// hosts default to 6379");
	ok(parse("etcd://127.0.0.1") == 0 && u.kind == STORE_ETCD && u.hosts[0].port == 2379,
	   "etcd:// defaults to 2379");
	ok(!u.etcd_json, "etcd:// speaks gRPC");
	ok(parse("etcd+json://a:1,b") == 0 && u.kind == STORE_ETCD && u.etcd_json && u.n_hosts == 2 &&
	   u.hosts[1].port == 2379, "etcd+json:// is etcd through its JSON gateway, the same hosts");
	ok(parse("etcd+json:/a") < 0, "etcd+json: without // is refused");
	ok(parse("mysql://x") < 0 && strstr(err, "'mysql'"), "an unknown scheme is named in the error");
	ok(parse("") < 0, "an empty URL is refused");
	ok(parse("redis://h o:1") < 0, "a space in a host is refused");
	ok(parse("redis-cluster://[::1]x:1,b:2") < 0 && strstr(err, "in '[::1]x:1'") && !strstr(err, "b:2"),
	   "an error in one host of a list quotes that host only");
	ok(parse("redis-cluster://[],b:2") < 0 && strstr(err, "empty host in '[]'"),
	   "an empty bracketed host is named alone");
	/* found by tests/fuzz/fuzz_store_url: forms that parsed but did not
	 * format back into themselves */
	ok(parse("redis://[[2]") < 0 && strstr(err, "invalid character"), "a bracket inside a host is refused");
	ok(parse("redis://[abc]:1") < 0 && strstr(err, "IPv6"), "brackets around a name that is not IPv6 are refused");
	ok(parse("redis://a\tb:1") < 0, "a control character in a host is refused");
	ok(parse("file://////") == 0 && strcmp(u.path, "////") == 0, "file:////// is the path ////");
	is_str(canon, "file://////", "and formats back so that it reads the same");
	ok(parse(canon) == 0 && strcmp(u.path, "////") == 0, "... and it does");

	unsetenv("DSYS_STORE");
	setenv("REDIS_URL", "redis://r:1", 1);
	is_str(store_url_from_env("mem:"), "redis://r:1", "REDIS_URL is honoured");
	setenv("DSYS_STORE", "file:/x", 1);
	is_str(store_url_from_env("mem:"), "file:/x", "DSYS_STORE comes before REDIS_URL");
	unsetenv("DSYS_STORE");
	unsetenv("REDIS_URL");
	is_str(store_url_from_env("mem:"), "mem:", "the default comes last");
	return tap_done();
}
