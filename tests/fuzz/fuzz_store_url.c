/*
 * fuzz_store_url.c -- libFuzzer target for lib/store/url.
 *
 * The input, NUL-terminated, is a --store URL.  Properties (trap on
 * violation): the parse returns 0 or -1 with a non-empty message; a parsed
 * URL has a known kind, 1..STORE_URL_MAX_HOSTS hosts with non-zero ports
 * where the kind has hosts, and NUL-terminated fields; its canonical form
 * (store_url_format) parses again to the same kind, path, hosts, ports and
 * database (the password is never printed, so it is not compared).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/url.h"

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 8192)
		return 0;
	char *text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = 0;
	static struct store_url u, v;
	char err[256], canon[8192];
	memset(&u, 0xAB, sizeof u);
	err[0] = 0;
	int r = store_url_parse(text, &u, err, sizeof err);
	CHECK(r == 0 || r == -1);
	if (r < 0) {
		CHECK(err[0] != 0 && memchr(err, 0, sizeof err) != NULL);
		free(text);
		return 0;
	}
	CHECK(u.kind >= STORE_MEM && u.kind <= STORE_ETCD);
	CHECK(memchr(u.path, 0, sizeof u.path) != NULL);
	CHECK(memchr(u.password, 0, sizeof u.password) != NULL);
	CHECK(u.n_hosts <= STORE_URL_MAX_HOSTS);
	bool hosted = u.kind != STORE_MEM && u.kind != STORE_FILE;
	CHECK(!hosted || u.n_hosts >= 1);
	for (unsigned i = 0; i < u.n_hosts; i++) {
		CHECK(memchr(u.hosts[i].host, 0, sizeof u.hosts[i].host) != NULL);
		CHECK(u.hosts[i].port != 0);
	}
	CHECK(store_url_kind_name(u.kind) != NULL);

	store_url_format(&u, canon, sizeof canon);
	CHECK(memchr(canon, 0, sizeof canon) != NULL);
	r = store_url_parse(canon, &v, err, sizeof err);
	CHECK(r == 0);
	CHECK(v.kind == u.kind);
	CHECK(strcmp(v.path, u.path) == 0);
	CHECK(v.n_hosts == u.n_hosts);
	CHECK(v.db == u.db);
	for (unsigned i = 0; i < u.n_hosts; i++) {
		CHECK(strcmp(v.hosts[i].host, u.hosts[i].host) == 0);
		CHECK(v.hosts[i].port == u.hosts[i].port);
	}
	free(text);
	return 0;
}
