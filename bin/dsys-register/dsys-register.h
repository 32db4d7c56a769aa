/*
 * dsys-register.h -- what the files of dsys-register share: the
 * configuration the one option table fills, and the entry points.
 */
#ifndef DSYS_REGISTER_PROG_H
#define DSYS_REGISTER_PROG_H

#include <stdbool.h>
#include <stdint.h>

#include "register/check.h"
#include "register/etcd.h"
#include "register/register.h"
#include "store/url.h"

#include <uv.h>

#define REG_DEFAULT_STORE "file:/tmp/dsys-registry"

struct reg_config {
	const char *store_text;
	struct store_url url;
	char url_text[4400];
	const char *addr, *id;
	char meta[REG_MAX_META + 1];
	uint64_t ttl_ms, interval_ms, dereg_ms;   /* dereg_ms 0: never */
	unsigned rise, fall;
	struct reg_check check;                   /* kind REG_CHECK_NONE: none */
	bool all;
	const char *template_path, *out_path, *check_cmd, *exec_cmd;   /* render */
	unsigned min;
	bool once;
	uint64_t wait_min_ms, wait_max_ms;        /* render --wait MIN:MAX */
	uint64_t timeout_ms;
	int64_t since;                            /* watch --since REV, 0: none */
};

/* etcd://: a client on loop, or NULL after printing why. */
struct etcd_client *reg_cli_etcd(struct reg_config *cfg, uv_loop_t *loop);
/* An etcd error as "cannot reach ..." or etcd's message; returns 3. */
int reg_cli_etcd_fail(const struct reg_config *cfg, int err);

int reg_add(struct reg_config *cfg, const char *service, char **cmd);
int reg_watch(struct reg_config *cfg, const char *service);
/* watch, for render: instead of printing, call fn with the passing set
 * (borrowed) after each change and once after the first read. */
typedef void (*reg_watch_hook)(void *ud, uv_loop_t *loop, const struct reg_instance *v, size_t n);
void reg_watch_set_hook(reg_watch_hook fn, void *ud);
int reg_render(struct reg_config *cfg, const char *service);
/* The live instances of service (NULL: every service); 0 or an exit code. */
int reg_load(struct reg_config *cfg, const char *service, struct reg_instance **v, size_t *n);

#endif
