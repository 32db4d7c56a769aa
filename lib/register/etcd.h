/*
 * register/etcd.h -- the registry on etcd (etcd://H:P,...), through
 * store/etcd's JSON-gateway client.
 *
 * Keys: REG_ETCD_PREFIX SERVICE "/" ID, holding the same endpoint-manager
 * value as a file: record (register.h) without expires_ms: the key is
 * attached to a lease of the TTL, which the keeper refreshes every third
 * of it, so etcd deletes the key when its add stops.  grpc-go's etcd
 * resolver, given the target "dsys/services/SERVICE", reads the keys
 * unchanged.
 *
 * The keeper (one per add) holds one key: reg_keeper_put writes it (a new
 * lease first when there is none, or when etcd lost it: an etcd restart
 * without its data, a lease expired during an outage -- so an add
 * registers again by itself when the cluster comes back);
 * reg_keeper_delete revokes the lease, which deletes the key.  Failed
 * calls are retried every 500 ms.  reg_keeper_idle says no call is in
 * flight and nothing is left to write.
 */
#ifndef DSYS_REGISTER_ETCD_H
#define DSYS_REGISTER_ETCD_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "register/register.h"
#include "store/etcd.h"

#define REG_ETCD_PREFIX "dsys/services/"

/* Sync calls for the CLI (etcd_sync): list a service's instances with the
 * answer's revision (service NULL: every instance, for the counts; rev 0:
 * the newest), remove one (-ENOENT when absent). */
int reg_etcd_list(struct etcd_client *c, const char *service, int64_t rev,
                  struct reg_instance **out, size_t *n, int64_t *revision);
int reg_etcd_remove(struct etcd_client *c, const char *service, const char *id);
/* Fill in from a key and value (0, or -EINVAL when not ours). */
int reg_etcd_decode(const char *key, size_t key_len, const char *value, size_t value_len,
                    struct reg_instance *in);

struct reg_keeper;
/* change_cb: the key was (re)written or its lease refreshed (err 0) or a call failed (err < 0,
 * msg says why; retried). */
typedef void (*reg_keeper_cb)(void *ud, int err, const char *msg);
struct reg_keeper *reg_keeper_new(uv_loop_t *loop, struct etcd_client *c, uint64_t ttl_ms,
                                  reg_keeper_cb cb, void *ud);
void reg_keeper_put(struct reg_keeper *k, const struct reg_instance *in);
void reg_keeper_delete(struct reg_keeper *k);
bool reg_keeper_idle(const struct reg_keeper *k);
void reg_keeper_free(struct reg_keeper *k);   /* after the loop has no call of it */
int64_t reg_keeper_lease(const struct reg_keeper *k);

#endif
