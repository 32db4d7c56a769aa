/*
 * register/register.h -- service instances, their wire format, and the
 * file: registry.
 *
 * An instance is one running copy of a service: SERVICE, ID (default: its
 * address), ADDR (HOST:PORT), free-form meta (k=v strings), a status
 * (starting, passing, critical) and the time that status began.
 *
 * Wire format.  The value of an instance is the JSON that etcd's endpoint
 * manager (go.etcd.io/etcd/client/v3/naming/endpoints) writes, so grpc-go's
 * etcd resolver reads it unchanged; our own fields live in Metadata:
 *
 *   {"Op":0,"Addr":"10.0.0.1:8080","Metadata":{"service":"web","id":"a",
 *    "status":"passing","since_ms":1764930000000,"meta":{"k":"v"},
 *    "expires_ms":1764930010000}}
 *
 * expires_ms is written by the file: store only (etcd expires keys by
 * lease).  reg_value_format writes it, reg_value_parse reads it back and
 * refuses anything that is not such a value (fuzzed:
 * tests/fuzz/fuzz_register.c).
 *
 * The file: store.  file:DIR holds DIR/SERVICE/ID, one file per instance,
 * written whole to a temporary file (".ID.PID.tmp", skipped by readers)
 * and renamed over the old one, so a reader sees the old or the new value,
 * never a mix.  A live `add` rewrites its file every third of the TTL with
 * a new expires_ms; readers leave out files whose expiry has passed, so a
 * killed `add` vanishes from every list within its TTL without anyone
 * deleting it.
 *
 * Names (SERVICE and ID) are 1..128 bytes of printable ASCII without '/'
 * and not starting with '.': they are path components and etcd key parts.
 *
 * Ownership: every struct here is the caller's; reg_list_file fills a
 * growing array the caller frees with free().  Functions return 0 or a
 * negative errno value and never print.
 */
#ifndef DSYS_REGISTER_H
#define DSYS_REGISTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define REG_MAX_NAME 128
#define REG_MAX_ADDR 300
#define REG_MAX_META 2048     /* the meta object as JSON text */

enum reg_status { REG_STARTING = 0, REG_PASSING, REG_CRITICAL };

struct reg_instance {
	char service[REG_MAX_NAME + 1];
	char id[REG_MAX_NAME + 1];
	char addr[REG_MAX_ADDR + 1];
	char meta[REG_MAX_META + 1];     /* a JSON object, "{}" when empty */
	enum reg_status status;
	uint64_t since_ms;               /* Unix ms the status began */
	uint64_t expires_ms;             /* file: only; 0 for none */
};

const char *reg_status_name(enum reg_status s);

/* 0, or -1 with *why set to a reason (a static string). */
int reg_name_check(const char *s, const char **why);
/* HOST:PORT with a host and a port from 1 to 65535; 0 or -1 with *why. */
int reg_addr_check(const char *s, const char **why);

/* Append "k":"v" for one "k=v" to a meta object under construction (meta
 * holds "{...}"); 0, or -1 with *why (no '=', empty key, too long). */
int reg_meta_add(char *meta, size_t size, const char *kv, const char **why);

/* meta[key] as text into out ("" when absent; numbers and the like as
 * their JSON text); returns out. */
const char *reg_meta_get(const char *meta, const char *key, char *out, size_t size);

/* The value as above (expires_ms only when non-zero). */
void reg_value_format(struct buf *out, const struct reg_instance *in);
/* Read a value; service and id come from the key, not from the value's
 * copy.  0, or -EINVAL. */
int reg_value_parse(const char *text, size_t len, struct reg_instance *in);
/* The same through cJSON alone: reg_value_parse reads plain records
 * without it and asks it about the rest; for the tests that compare. */
int reg_value_parse_cjson(const char *text, size_t len, struct reg_instance *in);

/* An instance as list and watch print it (without the braces' event):
 * "service","id","addr","url","meta","status","since". */
struct json_writer;
void reg_instance_json(struct json_writer *w, const struct reg_instance *in);

/* An array for n (0: 1) instances, freed with free(); a thousand, 2.6 MB,
 * are taken in transparent huge pages where the kernel allows, so their
 * first touch is a few page faults instead of 650. */
struct reg_instance *reg_instances_alloc(size_t n);

/* ------------------------------------------------------------ file: */

/* Write DIR/SERVICE/ID atomically (creating DIR/SERVICE). */
int reg_file_put(const char *dir, const struct reg_instance *in);
/* Remove DIR/SERVICE/ID; -ENOENT when absent. */
int reg_file_remove(const char *dir, const char *service, const char *id);
/* The live instances of one service (now_ms: what "expired" means; 0
 * reads expired ones too, marked by expires_ms < now), in id order (as
 * strcmp sorts).  *out is malloc'd. */
int reg_file_list(const char *dir, const char *service, uint64_t now_ms,
                  struct reg_instance **out, size_t *n);
/* From how many records on reg_file_list reads them through io_uring
 * (default 32); a test sets it to compare both ways. */
extern unsigned reg_file_uring_min;
/* One record, DIR/SERVICE/ID, expired or not: 0, -ENOENT when there is
 * none, -EINVAL when the file is not a record (or ID not a name), or
 * -errno.  What watch reads when inotify names the one file that changed. */
int reg_file_get(const char *dir, const char *service, const char *id, struct reg_instance *in);
/* The service names under DIR (malloc'd array of REG_MAX_NAME+1 strings). */
int reg_file_services(const char *dir, char (**out)[REG_MAX_NAME + 1], size_t *n);

uint64_t reg_now_ms(void);

#endif
