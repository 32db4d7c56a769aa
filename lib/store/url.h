/*
 * store/url.h -- the one place a store URL is read.
 *
 * Every program that keeps state takes --store URL (or DSYS_STORE), with
 * the URL forms of DESIGN.md:
 *
 *   mem:                          in this process only
 *   file:PATH                     one machine, crash-safe files under PATH
 *   redis://[:PASS@]HOST[:PORT][/DB]
 *   redis-cluster://H:P,H:P,...   seed nodes of a Redis Cluster
 *   redlock://H:P,H:P,H:P         independent Redis servers (locks only)
 *   etcd://H:P,H:P,...            etcd v3 endpoints, spoken to in gRPC
 *   etcd+json://H:P,H:P,...       the same etcd, through its JSON gateway
 *                                 (HTTP/1.1; kind STORE_ETCD, etcd_json set)
 *
 * Ports default to 6379 for the Redis forms and 2379 for etcd.  Hosts may
 * be names, IPv4 addresses or [IPv6] addresses.  store_url_parse checks the
 * whole URL and says what is wrong in a message the program prints after
 * its name; a program then decides which kinds it supports
 * (store_url_kind_name helps it say "dsys-counter: redlock:// holds locks,
 * not counters").
 *
 * store_url_from_env() picks the URL when no flag gave one: DSYS_STORE,
 * then REDIS_URL (taken as it is: it must be a redis:// URL), then the
 * program's default.
 *
 * Ownership: struct store_url is the caller's, filled in place (no
 * allocation); the string store_url_from_env returns is borrowed from the
 * environment or is def.
 */
#ifndef DSYS_STORE_URL_H
#define DSYS_STORE_URL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum store_kind {
	STORE_MEM = 1,
	STORE_FILE,
	STORE_REDIS,
	STORE_REDIS_CLUSTER,
	STORE_REDLOCK,
	STORE_ETCD,
};

#define STORE_URL_MAX_HOSTS 16
#define STORE_URL_MAX_HOST 256

struct store_host {
	char host[STORE_URL_MAX_HOST];   /* without brackets for IPv6 */
	uint16_t port;
};

struct store_url {
	enum store_kind kind;
	char path[4096];                 /* file: */
	struct store_host hosts[STORE_URL_MAX_HOSTS];
	unsigned n_hosts;
	unsigned db;                     /* redis: /DB, default 0 */
	char password[256];              /* redis: :PASS@, empty for none */
	bool etcd_json;                  /* etcd+json://: the JSON gateway, not gRPC */
};

/* Parse text into *u.  Returns 0, or -1 with a message in err (lowercase,
 * no full stop, e.g. "unknown store scheme 'mysql'; try mem:, file:PATH,
 * redis://HOST:PORT"). */
int store_url_parse(const char *text, struct store_url *u, char *err, size_t err_size);

/* DSYS_STORE, else REDIS_URL, else def.  Never NULL when def is not. */
const char *store_url_from_env(const char *def);

const char *store_url_kind_name(enum store_kind k);   /* "mem:", "redis://", ... */

/* Write the URL back in its canonical form (for logs and the ready line):
 * "redis://127.0.0.1:6379/0".  The password is never printed. */
void store_url_format(const struct store_url *u, char *out, size_t size);

#endif
