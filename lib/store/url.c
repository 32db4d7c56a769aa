/*
 * store/url.c -- parse store URLs.  Strict: every part is checked, and an
 * error names the part that is wrong, because a mistyped URL otherwise
 * shows up much later as "connection refused" on the wrong port.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/parse.h"
#include "store/url.h"

static int fail(char *err, size_t size, const char *fmt, const char *arg)
{
	snprintf(err, size, fmt, arg);
	return -1;
}

/* One HOST[:PORT] or [V6][:PORT] from s[0..n). */
static int parse_host(const char *s, size_t n, uint16_t def_port, struct store_host *h,
                      char *err, size_t err_size)
{
	char tmp[STORE_URL_MAX_HOST + 16], whole[sizeof tmp];   /* tmp is cut up; whole is for errors */
	if (n == 0)
		return fail(err, err_size, "empty host in store URL%s", "");
	if (n >= sizeof tmp)
		return fail(err, err_size, "host name too long in store URL%s", "");
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	memcpy(whole, tmp, n + 1);
	const char *port_text = NULL;
	char *host = tmp;
	if (tmp[0] == '[') {
		char *end = strchr(tmp, ']');
		if (!end)
			return fail(err, err_size, "missing ']' in '%s'", tmp);
		*end = '\0';
		host = tmp + 1;
		if (end[1] == ':')
			port_text = end + 2;
		else if (end[1] != '\0')
			return fail(err, err_size, "unexpected text after ']' in '%s'", whole);
	} else {
		char *colon = strchr(tmp, ':');
		if (colon) {
			if (strchr(colon + 1, ':'))
				return fail(err, err_size, "IPv6 address needs brackets: '%s'", tmp);
			*colon = '\0';
			port_text = colon + 1;
		}
	}
	if (!*host)
		return fail(err, err_size, "empty host in '%s'", whole);
	for (const char *p = host; *p; p++)
		if (*p == '/' || *p == '@' || *p == '?' || *p == '#' || *p == '[' || *p == ']' ||
		    (unsigned char)*p <= ' ' || *p == 0x7f)
			return fail(err, err_size, "invalid character in host '%s'", host);
	if (host != tmp && !strchr(host, ':'))
		return fail(err, err_size, "brackets are for IPv6 addresses: '%s'", whole);
	unsigned port = def_port;
	if (port_text && parse_uint(port_text, 1, 65535, &port) < 0)
		return fail(err, err_size, "invalid port '%s'", port_text);
	size_t hl = strlen(host);
	if (hl >= sizeof h->host)
		return fail(err, err_size, "host name too long in store URL%s", "");
	memcpy(h->host, host, hl + 1);
	h->port = (uint16_t)port;
	return 0;
}

static int parse_hosts(const char *s, uint16_t def_port, struct store_url *u,
                       char *err, size_t err_size)
{
	const char *p = s;
	if (!*p)
		return fail(err, err_size, "no host in store URL%s", "");
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		if (u->n_hosts == STORE_URL_MAX_HOSTS)
			return fail(err, err_size, "more than 16 hosts in store URL%s", "");
		if (parse_host(p, n, def_port, &u->hosts[u->n_hosts], err, err_size) < 0)
			return -1;
		u->n_hosts++;
		if (!comma)
			return 0;
		p = comma + 1;
	}
}

static const char *after(const char *text, const char *prefix)
{
	size_t n = strlen(prefix);
	return strncmp(text, prefix, n) == 0 ? text + n : NULL;
}

int store_url_parse(const char *text, struct store_url *u, char *err, size_t err_size)
{
	const char *rest;
	memset(u, 0, sizeof *u);
	if (!text || !*text)
		return fail(err, err_size, "empty store URL%s", "");

	if (strcmp(text, "mem:") == 0 || strcmp(text, "mem") == 0) {
		u->kind = STORE_MEM;
		return 0;
	}
	if ((rest = after(text, "file:"))) {
		if (strncmp(rest, "//", 2) == 0)
			rest += 2; /* file:///abs/path */
		if (!*rest)
			return fail(err, err_size, "file: needs a path, as in file:/var/lib/dsys%s", "");
		if (strlen(rest) >= sizeof u->path)
			return fail(err, err_size, "path too long in '%s'", "file:");
		u->kind = STORE_FILE;
		snprintf(u->path, sizeof u->path, "%s", rest);
		return 0;
	}
	if ((rest = after(text, "redis://"))) {
		u->kind = STORE_REDIS;
		const char *at = strchr(rest, '@');
		const char *slash = strchr(rest, '/');
		if (at && (!slash || at < slash)) {
			/* userinfo: [user]:password; Redis 6 users are not supported */
			const char *colon = memchr(rest, ':', (size_t)(at - rest));
			if (!colon)
				return fail(err, err_size, "redis:// userinfo must be ':PASSWORD'%s", "");
			size_t n = (size_t)(at - colon - 1);
			if (n >= sizeof u->password)
				return fail(err, err_size, "password too long%s", "");
			memcpy(u->password, colon + 1, n);
			u->password[n] = '\0';
			rest = at + 1;
			slash = strchr(rest, '/');
		}
		size_t hn = slash ? (size_t)(slash - rest) : strlen(rest);
		if (memchr(rest, ',', hn))
			return fail(err, err_size, "redis:// takes one host; for several use redis-cluster://%s", "");
		if (parse_host(rest, hn, 6379, &u->hosts[0], err, err_size) < 0)
			return -1;
		u->n_hosts = 1;
		if (slash && slash[1]) {
			if (parse_uint(slash + 1, 0, 1000000, &u->db) < 0)
				return fail(err, err_size, "invalid database number '%s'", slash + 1);
		}
		return 0;
	}
	if ((rest = after(text, "redis-cluster://"))) {
		u->kind = STORE_REDIS_CLUSTER;
		return parse_hosts(rest, 6379, u, err, err_size);
	}
	if ((rest = after(text, "redlock://"))) {
		u->kind = STORE_REDLOCK;
		return parse_hosts(rest, 6379, u, err, err_size);
	}
	if ((rest = after(text, "etcd://")) || (rest = after(text, "etcd+json://"))) {
		u->kind = STORE_ETCD;
		u->etcd_json = text[4] == '+';
		return parse_hosts(rest, 2379, u, err, err_size);
	}
	char scheme[32];
	size_t n = strcspn(text, ":");
	snprintf(scheme, sizeof scheme, "%.*s", (int)(n < 31 ? n : 31), text);
	snprintf(err, err_size,
	         "unknown store '%s'; try mem:, file:PATH, redis://HOST:PORT, "
	         "redis-cluster://H:P,H:P, redlock://H:P,..., etcd://H:P,..., etcd+json://H:P,...", scheme);
	return -1;
}

const char *store_url_from_env(const char *def)
{
	const char *s = getenv("DSYS_STORE");
	if (s && *s)
		return s;
	s = getenv("REDIS_URL");
	if (s && *s)
		return s;
	return def;
}

const char *store_url_kind_name(enum store_kind k)
{
	switch (k) {
	case STORE_MEM: return "mem:";
	case STORE_FILE: return "file:";
	case STORE_REDIS: return "redis://";
	case STORE_REDIS_CLUSTER: return "redis-cluster://";
	case STORE_REDLOCK: return "redlock://";
	case STORE_ETCD: return "etcd://";
	}
	return "?";
}

void store_url_format(const struct store_url *u, char *out, size_t size)
{
	size_t n = 0;
	if (u->kind == STORE_MEM) {
		snprintf(out, size, "mem:");
		return;
	}
	if (u->kind == STORE_FILE) {
		/* "file://X" reads as X: a path that starts with // needs it */
		snprintf(out, size, "file:%s%s", strncmp(u->path, "//", 2) == 0 ? "//" : "", u->path);
		return;
	}
	n += (size_t)snprintf(out, size, "%s", store_url_kind_name(u->kind));
	for (unsigned i = 0; i < u->n_hosts && n < size; i++) {
		const struct store_host *h = &u->hosts[i];
		int v6 = strchr(h->host, ':') != NULL;
		n += (size_t)snprintf(out + n, size - n, "%s%s%s%s:%u", i ? "," : "",
		                      v6 ? "[" : "", h->host, v6 ? "]" : "", h->port);
	}
	if (u->kind == STORE_REDIS && n < size)
		snprintf(out + n, size - n, "/%u", u->db);
}
