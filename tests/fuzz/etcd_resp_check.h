/*
 * etcd_resp_check.h -- what fuzz_etcd and fuzz_etcd_pb hold true of any
 * struct etcd_resp a parser returned 0 for, JSON or protobuf: every kv's
 * key and value NUL-terminated at their length, a txn's responses and
 * their kinds agreeing, nested responses alike.  CHECK traps.
 */
#ifndef DSYS_FUZZ_ETCD_RESP_CHECK_H
#define DSYS_FUZZ_ETCD_RESP_CHECK_H

#include <stddef.h>

#include "store/etcd.h"

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

static void check_kvs(const struct etcd_kv *kv, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		CHECK(kv[i].key == NULL || kv[i].key[kv[i].key_len] == '\0');
		CHECK(kv[i].value == NULL || kv[i].value[kv[i].value_len] == '\0');
	}
}

static void check_resp(const struct etcd_resp *r)
{
	check_kvs(r->kvs, r->n_kvs);
	check_kvs(r->prev_kvs, r->n_prev_kvs);
	check_kvs(r->lease_keys, r->n_lease_keys);
	CHECK(r->n_responses == 0 || (r->responses && r->response_kinds));
	for (size_t i = 0; i < r->n_responses; i++) {
		CHECK(r->response_kinds[i] <= ETCD_OP_DELETE);
		check_resp(&r->responses[i]);
	}
}

#endif
