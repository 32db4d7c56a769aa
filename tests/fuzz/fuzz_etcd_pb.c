/*
 * fuzz_etcd_pb.c -- libFuzzer target for lib/store/etcd_pb's gRPC answer
 * decoder (etcd_parse_grpc), what the etcd client reads from etcd.
 *
 * The first byte picks the call (its unary gRPC answer type), the rest is
 * the protobuf message.  Properties (trap on violation): the decoder
 * returns 0 or ETCD_E_PROTOCOL (or -ENOMEM); every kv's key and value
 * are NUL-terminated at their length; a txn's responses and their kinds
 * agree; freeing twice is harmless.
 *
 * And, differential, on every input whatever its first byte: the rest read
 * as a Range answer by etcd_parse_grpc (the direct reader, falling back
 * to protobuf-c when unsure) gives exactly what protobuf-c's unpacking
 * gives (etcd_pb_parse_unpacked): the same code, revision, more, count
 * and kvs, every kv's numbers and bytes.  A direct read that succeeds
 * where protobuf-c refuses, or reads a byte otherwise, traps.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/etcd.h"
#include "store/etcd_pb.h"

#include "etcd_resp_check.h"

static void check_same_kv(const struct etcd_kv *a, const struct etcd_kv *b)
{
	CHECK(a->key && b->key && a->value && b->value);
	CHECK(a->key_len == b->key_len && memcmp(a->key, b->key, a->key_len + 1) == 0);
	CHECK(a->value_len == b->value_len && memcmp(a->value, b->value, a->value_len + 1) == 0);
	CHECK(a->create_revision == b->create_revision && a->mod_revision == b->mod_revision);
	CHECK(a->version == b->version && a->lease == b->lease);
}

/* d: etcd_parse_grpc's; u: protobuf-c's.  Only a range's fields may be set. */
static void check_same_range(int rd, const struct etcd_resp *d, int ru, const struct etcd_resp *u)
{
	if (rd == -ENOMEM || ru == -ENOMEM)
		return;
	CHECK(rd == ru);
	CHECK(d->revision == u->revision && d->more == u->more && d->count == u->count);
	CHECK(d->n_kvs == u->n_kvs && (d->kvs == NULL) == (u->kvs == NULL));
	for (size_t i = 0; i < d->n_kvs; i++)
		check_same_kv(&d->kvs[i], &u->kvs[i]);
	CHECK(!d->prev_kvs && !d->n_responses && !d->lease_keys && !d->leases && !d->error_message);
	CHECK(d->deleted == 0 && !d->succeeded && d->lease_id == 0 && d->ttl == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const paths[] = {
		ETCD_PATH_RANGE, ETCD_PATH_PUT, ETCD_PATH_DELETE, ETCD_PATH_TXN, ETCD_PATH_GRANT,
		ETCD_PATH_REVOKE, ETCD_PATH_TTL, ETCD_PATH_KEEPALIVE, ETCD_PATH_LEASES,
	};
	if (size < 1 || size > 65536)
		return 0;
	const char *path = paths[data[0] % (sizeof paths / sizeof paths[0])];
	struct etcd_resp r;
	int rc = etcd_parse_grpc(path, data + 1, size - 1, &r);
	CHECK(rc == 0 || rc == ETCD_E_PROTOCOL || rc == -ENOMEM);
	if (rc == 0)
		check_resp(&r);
	etcd_resp_free(&r);
	etcd_resp_free(&r);

	struct etcd_resp d, u;
	int rd = etcd_parse_grpc(ETCD_PATH_RANGE, data + 1, size - 1, &d);
	int ru = etcd_pb_parse_unpacked(ETCD_PATH_RANGE, data + 1, size - 1, &u);
	check_same_range(rd, &d, ru, &u);
	etcd_resp_free(&d);
	etcd_resp_free(&u);
	return 0;
}
